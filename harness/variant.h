/* variant.h: one implementation of one op, as the harness sees it.
 *
 * A variant is a row of the table in variants.c.  It answers "can you run this
 * problem?" (supports) and "how much device memory beyond inputs and output?"
 * (workspace_bytes), then setup / run / teardown.  run() only enqueues work on
 * the given stream: no allocation, no plan creation, no synchronisation, so the
 * harness can time it with events.  setup() may read the inputs (parameters),
 * e.g. to precompute a kernel's spectrum or merge reparameterized kernels, since
 * those are fixed at inference time.
 *
 * All functions return 0 on success or -1 after bench_set_error() (bench_check.h); setup may
 * also return 1 after bench_set_error() to decline a shape its planner found no way to run
 * (a vendor library with no engine for it): the row is skip:unsupported with that reason. */
#ifndef CHELA_VARIANT_H
#define CHELA_VARIANT_H

#include <cuda_runtime_api.h>
#include <stddef.h>

#include "op.h"
#include "settings.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const shape_t *shape;
    int n_in;
    const void *in[OP_MAX_INPUTS]; /* device pointers; storage per the op's tensor_desc_t */
    void *out;                     /* device pointer, run dtype                          */
} io_t;

/* The backward's tensors (chela-spec.md "Training: the backward pass").  The loss is
 * L = sum(dy . out): dy is the upstream gradient, seeded random, never zero.  grad[i] is
 * dL/d(input i), in input i's layout and in grad_storage() of its descriptor (op.h): the
 * run dtype for activations, fp32 for parameters.  A backward overwrites every gradient,
 * never accumulates into it (the harness poisons them first). */
typedef struct {
    const void *dy;            /* the output's layout, run dtype */
    void *grad[OP_MAX_INPUTS]; /* device pointers, one per input  */
} grad_io_t;

typedef struct {
    const char *name;  /* "op/variant": stable, the key of CI baselines */
    op_id op;
    const char *role;  /* "kernel" (CHELA's own) or "baseline"          */
    const char *where; /* source file, for --list                      */
    /* NULL when the variant can run the shape, else a short static reason
     * ("dk must be 64 or 128"), recorded as status skip:unsupported. */
    const char *(*supports)(const shape_t *s);
    /* Optional (NULL = always there): NULL when the variant can run in this build on this
     * machine, else why not ("built without cuDNN: ..."), recorded as skip:unavailable.  For
     * variants on an optional library; asked before supports(), may be slow the first time. */
    const char *(*available)(void);
    size_t (*workspace_bytes)(const shape_t *s);
    int (*setup)(const shape_t *s, const io_t *io, void **state);
    int (*run)(void *state, const io_t *io, cudaStream_t stream);
    void (*teardown)(void *state);
    /* Optional: the backward (NULL = none; bwd and fwdbwd points are skip:unsupported rows).
     * Called after run() on the same io, when setup saw s->pass != PASS_FWD, so the forward
     * kept in state what the backward needs (or what it recomputes from).  Like run() it only
     * enqueues.  bwd times run_bwd alone; fwdbwd times run then run_bwd.  supports() may
     * refuse a pass it has no backward for (s->pass).  run_bwd may be called many times after
     * one run() (bwd's samples time it alone): it must leave what the forward saved intact,
     * and gives the same gradients each time.  workspace_bytes(s) counts, for s->pass !=
     * PASS_FWD, what the forward keeps and the backward needs. */
    int (*run_bwd)(void *state, const io_t *io, const grad_io_t *g, cudaStream_t stream);
    /* Optional (NULL for most): the backward's stages, for --breakdown of bwd and fwdbwd
     * points, as the forward's below; stage i enqueued alone on what the last run_bwd left
     * (the harness has called run_bwd before), rows named "NAME:bwd:STAGE". */
    const char *const *bwd_stage_names; /* NULL-terminated; NULL when no stages */
    int (*run_bwd_stage)(void *state, const io_t *io, const grad_io_t *g, int stage,
                         cudaStream_t stream);
    void (*bwd_stage_cost)(const shape_t *s, int stage, double *flops, double *bytes);
    /* Optional (NULL for most variants): the stages of a multi-kernel variant,
     * for --breakdown.  run_stage enqueues stage i alone on what earlier stages
     * left in the state's buffers (the harness has called run() before);
     * stage_cost gives stage i's FLOPs and ideal HBM bytes, so each stage row
     * has its own floor. */
    const char *const *stage_names; /* NULL-terminated; NULL when no stages */
    int (*run_stage)(void *state, const io_t *io, int stage, cudaStream_t stream);
    void (*stage_cost)(const shape_t *s, int stage, double *flops, double *bytes);
    /* Its settings (settings.h), NULL-name terminated; NULL when it has none. */
    const setting_def_t *settings;
    /* What setup resolved for this shape and these settings, for the row's `config`
     * column: the path taken and every choice the planner made ("v6 seg=512 sub=1
     * pdl=1", "fft block=8192 narrow=1"), as name=value words. */
    void (*config)(const void *state, char *buf, size_t len);
} variant_t;

extern const variant_t VARIANTS[];
/* How many stages v reports for --breakdown (0 for most). */
int variant_n_stages(const variant_t *v);
/* How many backward stages (0 for most). */
int variant_n_bwd_stages(const variant_t *v);
extern const int N_VARIANTS;

/* Declares the five functions of a variant whose C prefix is P, e.g.
 * DECLARE_VARIANT(linear_attn_chunked) declares linear_attn_chunked_supports, ... */
#define DECLARE_VARIANT(P)                                                 \
    const char *P##_supports(const shape_t *s);                            \
    size_t P##_workspace_bytes(const shape_t *s);                          \
    int P##_setup(const shape_t *s, const io_t *io, void **state);         \
    int P##_run(void *state, const io_t *io, cudaStream_t stream);         \
    void P##_teardown(void *state);                                        \
    void P##_config(const void *state, char *buf, size_t len)

/* A variant with a backward also defines P##_run_bwd (ROW_TRAIN in variants.c). */
#define DECLARE_BWD(P) int P##_run_bwd(void *state, const io_t *io, const grad_io_t *g, cudaStream_t stream)

/* A variant with backward stages also defines P##_bwd_stage_names, P##_run_bwd_stage and
 * P##_bwd_stage_cost (ROW_TRAIN_STAGED in variants.c). */
#define DECLARE_BWD_STAGES(P)                                                                \
    DECLARE_BWD(P);                                                                          \
    extern const char *const P##_bwd_stage_names[];                                          \
    int P##_run_bwd_stage(void *state, const io_t *io, const grad_io_t *g, int stage,        \
                          cudaStream_t stream);                                              \
    void P##_bwd_stage_cost(const shape_t *s, int stage, double *flops, double *bytes)

/* A variant with stages also defines P##_stage_names, P##_run_stage and P##_stage_cost. */
#define DECLARE_STAGED_VARIANT(P)                                                      \
    DECLARE_VARIANT(P);                                                                \
    extern const char *const P##_stage_names[];                                        \
    int P##_run_stage(void *state, const io_t *io, int stage, cudaStream_t stream);    \
    void P##_stage_cost(const shape_t *s, int stage, double *flops, double *bytes)

#ifdef __cplusplus
}
#endif
#endif
