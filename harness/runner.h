/* runner.h: the sweep: for each length, each op, each variant: size, fill,
 * verify, time, (profile), write one CSV row. */
#ifndef CHELA_RUNNER_H
#define CHELA_RUNNER_H

#include <cuda_runtime_api.h>

#include "cli.h"
#include "csv.h"
#include "gpu_util.h"
#include "op.h"
#include "sweep_settings.h"
#include "variant.h"
#include "verify.h"

/* CPU backend caps: the default CPU sweep, the dims it uses, and the most
 * reference work one point may cost before it is skipped as too large. */
#define CPU_DEFAULT_SEQ "256..1k"
/* The CPU backend's minimum samples a point when --repeat is not given: enough for a
 * p10 / p90 that compare can judge, while the default CPU sweep stays well under a
 * minute (about 20 s on one core of a 2-core CI machine). */
#define CPU_DEFAULT_REPEAT 5
#define CPU_DEFAULT_DIM 256
#define CPU_MAX_MACS 8e9
/* Multiply-adds the CPU reference may spend verifying one GPU op point. */
#define VERIFY_BUDGET_MACS 1.5e9

typedef struct sweep {
    const options_t *o;
    csv_writer *csv;
    int use_gpu;
    device_info_t dev;
    l2_flusher_t flush;
    cudaStream_t stream;
    void *profiler;          /* hbm_counters* when --profile and counters work */
    char profile_note[160];  /* why HBM cells are empty, if they are */
    int n_rows, n_fail, n_skip;
    int sticky;              /* a CUDA error that poisons the context: stop */
    int interrupted;
    int write_failed;        /* a row could not be written (disk full, ...): stop */
    set_axes_t axes;         /* --set: the settings axes every variant is swept over */
} sweep_t;

int run_sweep(const options_t *o);

/* shared by runner.c and runner_gpu.c */
shape_t make_shape(const options_t *o, op_id op, int T, int cpu);
void row_context(const sweep_t *sw, csv_row_t *r, const op_desc_t *op, const shape_t *s,
                 const char *variant, const char *role);
void row_emit(sweep_t *sw, csv_row_t *r);
int variant_selected(const options_t *o, const variant_t *v);
/* 0 when every name of --variants matches at least one variant the backend would run
 * among the --ops selected, else -1 with a one-line message naming the filter. */
int filters_check(const options_t *o, int use_gpu, char *err, size_t len);
/* Writes a skip:shape row for the point's variants (or its reference on the CPU)
 * and returns 1 when the op is not defined for the shape; 0 otherwise. */
int skip_if_shape_undefined(sweep_t *sw, const op_desc_t *op, const shape_t *s);
void run_point_gpu(sweep_t *sw, const op_desc_t *op, const shape_t *s);
void run_point_cpu(sweep_t *sw, const op_desc_t *op, const shape_t *s);
/* The CPU backend at a bwd / fwdbwd point: the op's double gradient references, whole
 * tensors, timed like the forward's (runner_cpu_train.c). */
void run_point_cpu_train(sweep_t *sw, const op_desc_t *op, const shape_t *s);
const char *git_sha(void);

#endif
