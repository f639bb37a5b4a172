/* runner_gpu.h: what the GPU point (runner_gpu.c) shares with its training passes
 * (runner_train.c): one timing loop, one CUPTI pass, one stage reporter for every pass.
 *
 * Which work a timed call does is one int, `stage`:
 *   -1      the whole pass of io->shape->pass: run (fwd), run_bwd (bwd: the forward's state
 *           kept, so run_bwd alone), run then run_bwd (fwdbwd);
 *   i >= 0  forward stage i alone (run_stage);
 *   -2 - i  backward stage i alone (run_bwd_stage). */
#ifndef CHELA_RUNNER_GPU_H
#define CHELA_RUNNER_GPU_H

#include "grad_ref.h"
#include "runner.h"

#define RUN_STAGE_BWD(i) (-2 - (i))

/* Most stage rows a variant may report with --breakdown, forward and backward together. */
#define MAX_STAGES 16

void note_failure(sweep_t *sw);
size_t free_device_bytes(void);
void row_config(const variant_t *v, const void *state, const shape_t *s, csv_row_t *r);
int time_variant(sweep_t *sw, const variant_t *v, void *state, const io_t *io,
                 const grad_io_t *g, const char *range, int stage, csv_row_t *r);
void profile_variant(sweep_t *sw, const variant_t *v, void *state, const io_t *io,
                     const grad_io_t *g, const char *range, int stage, csv_row_t *r);
/* --breakdown rows of a verified, timed variant: its forward stages (fwd, fwdbwd) and its
 * backward stages (bwd, fwdbwd), one row each in rows[] (at most MAX_STAGES). */
int run_stages(sweep_t *sw, const variant_t *v, void *state, const io_t *io, const grad_io_t *g,
               const csv_row_t *whole, csv_row_t *rows);
/* Stage rows a variant reports at a pass with --breakdown. */
int variant_stage_rows(const variant_t *v, pass_t pass);

/* ---- the training passes (runner_train.c) ---- */

/* The point's backward buffers: dy (seeded) and one gradient per input, and the gradient
 * references, computed once per point when a variant first needs them. */
typedef struct train_point train_point_t;
/* Allocates and fills; NULL with *why set (skip:oom) when they do not fit. */
train_point_t *train_point_new(sweep_t *sw, const op_desc_t *op, const shape_t *s,
                               double *bytes, char *why, size_t len);
void train_point_free(train_point_t *tp);
/* grad_oracle.c: every sampled element of every gradient (ref[i], smp[i]) from the fp32 GPU
 * oracle ov (a variant with run_bwd, writing every gradient in fp32) on the point's inputs
 * and dy.  0, or -1 after bench_set_error. */
int grad_oracle_reference(const variant_t *ov, const shape_t *s, const io_t *io, const void *d_dy,
                          int n_in, const tensor_desc_t *in, const tensor_desc_t *out,
                          const grad_ref_t *gr, const grad_sample_t *smp, double *const *ref,
                          cudaStream_t stream);
/* One variant at a bwd / fwdbwd point: as run_variant for the forward. */
void run_variant_train(sweep_t *sw, const variant_t *v, const io_t *io, train_point_t *tp,
                       size_t out_elems, csv_row_t *r, csv_row_t *stage_rows, int *n_stage_rows,
                       double io_bytes);

#endif
