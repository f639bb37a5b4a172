/* oracle_test_util.h: what the GPU tests of the plain-fp32 oracles' backwards share
 * (test_gpu_oracle_transformer_bwd.c, test_gpu_oracle_chela_bwd.c,
 * test_gpu_oracle_mega_bwd.c; oracle_test_util.c).
 *
 * An oracle is driven through its own functions (oracle_t below), not the variant table's
 * row or the runner.  Its inputs are the harness's own: op->describe's tensors filled from
 * ORACLE_SEED (or the oracle's own seed) by gpu_fill_tensor on the device and tensor_fill_host on the host (the same bits,
 * rounded to their storage type), dy likewise (grad_dy_desc, GRAD_DY_INDEX), so a double
 * reference fed the host images sees exactly what the GPU saw.  Every gradient buffer is fp32
 * (the oracles' convention, dX included) and poisoned with 0xFF bytes (NaN) before each
 * run_bwd, so an element never written fails.  What differs per layer stays in its test: the
 * shapes, the double reference, each gradient's column groups and the tolerance (with its
 * reasoning). */
#ifndef CHELA_ORACLE_TEST_UTIL_H
#define CHELA_ORACLE_TEST_UTIL_H

#include <check.h>
#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdint.h>

#include "op.h"
#include "variant.h"

#define ORACLE_SEED 0x7f0a11beefull
#define ORACLE_MAX_PARTS 4 /* column groups of one gradient at most */

#define CK_CUDA_OK(call)                                                                     \
    do {                                                                                     \
        cudaError_t e_ = (call);                                                             \
        ck_assert_msg(e_ == cudaSuccess, "%s: %s", #call, cudaGetErrorString(e_));           \
    } while (0)

/* The oracle under test: its op, its own functions (DECLARE_VARIANT / DECLARE_BWD names) and,
 * when the reference has one, its per-input element count to check describe's against. */
typedef struct {
    op_id op;
    int n_in; /* op->describe must give exactly this many inputs */
    const char *(*supports)(const shape_t *s);
    int (*setup)(const shape_t *s, const io_t *io, void **state);
    int (*run)(void *state, const io_t *io, cudaStream_t stream);
    int (*run_bwd)(void *state, const io_t *io, const grad_io_t *g, cudaStream_t stream);
    void (*teardown)(void *state);
    void (*config)(const void *state, char *buf, size_t len);
    size_t (*ref_elems)(const shape_t *s, int i); /* NULL: not checked */
    uint64_t seed; /* the inputs' and dy's fill seed; 0: ORACLE_SEED */
} oracle_t;

/* oracle_t's functions by the C prefix P of its DECLARE_VARIANT(P) and DECLARE_BWD(P). */
#define ORACLE_FNS(P)                                                                        \
    .supports = P##_supports, .setup = P##_setup, .run = P##_run, .run_bwd = P##_run_bwd,    \
    .teardown = P##_teardown, .config = P##_config

/* A causal shape of B T tokens of width d, dtype dt, pass; every other field 0 for the test to
 * set its layer's (heads, z, v). */
shape_t oracle_shape(int B, int T, int d, dtype_t dt, pass_t pass);

/* One point's buffers: the inputs on the device (and, when asked for, their host images in
 * double), fp32 gradient buffers, dy (and its host image) and an fp32 output of ny elements
 * poisoned with 0xFF (the oracle writes fp32 whatever the run dtype). */
typedef struct {
    int n_in;
    tensor_desc_t desc[OP_MAX_INPUTS];
    size_t ny; /* the output's elements: B T d */
    io_t io;
    grad_io_t g;
    double *hin[OP_MAX_INPUTS]; /* NULL unless host images were asked for */
    double *hdy;
} oracle_io_t;

void oracle_io_make(const oracle_t *o, shape_t *s, int host, oracle_io_t *x);
void oracle_io_free(oracle_io_t *x);

/* A gradient's rows (width wide) split at bounds[0] = 0 < ... < bounds[parts] = width into
 * column groups, each judged against its own largest |ref|. */
typedef struct {
    size_t width;
    int parts;
    size_t bounds[ORACLE_MAX_PARTS + 1];
} oracle_groups_t;

/* Rows of width in `parts` equal column ranges (1: the whole row). */
oracle_groups_t oracle_groups_even(size_t width, int parts);

/* Worst |got - ref| / scale over n elements, scale = the largest |ref| of the element's column
 * group, but never less than part_floor times the whole tensor's; fails above tol, on a
 * non-finite got, or on an all-zero reference.  Prints one line. */
void oracle_check_tensor(const char *label, const char *what, const double *ref, const float *got,
                         size_t n, const oracle_groups_t *g, double tol, double part_floor);
/* oracle_check_tensor with two overrides: scale_over > 0 replaces the largest |ref| (the
 * tensor's and every group's) by itself, and fallback > 0 is the scale (likewise) of a reference
 * that is all zero, judged then in absolute terms rather than failed.  0, 0: oracle_check_tensor. */
void oracle_check_tensor_scaled(const char *label, const char *what, const double *ref,
                                const float *got, size_t n, const oracle_groups_t *g, double tol,
                                double part_floor, double scale_over, double fallback);

/* A whole point at pass fwdbwd against a double reference: the GPU side, then the reference
 * (the caller's, on hin and hdy into yref and gref), then every tensor compared. */
typedef struct {
    oracle_io_t x;                /* with host images                                   */
    float *got[OP_MAX_INPUTS];    /* the first run_bwd's gradients, host                */
    float *y;                     /* the training forward's output, host                */
    char cfg[160];                /* the oracle's config                                */
    double *gref[OP_MAX_INPUTS];  /* the reference's gradients, allocated for the caller */
    double *yref;                 /* the reference's output, likewise                   */
} oracle_run_t;

/* supports, the buffers, setup (training), run, then run_bwd twice into poisoned gradients
 * (the second must give the same bits: no float atomics, cuBLAS deterministic on one
 * stream), the output and config read back, teardown. */
void oracle_run_gpu(const oracle_t *o, shape_t *s, const char *label, oracle_run_t *r);
/* y (rows of s->d) and every gradient (groups(i, ctx)) against r->yref and r->gref. */
void oracle_compare(const oracle_run_t *r, const char *label, int d,
                    oracle_groups_t (*groups)(int i, const void *ctx), const void *ctx,
                    double tol, double part_floor);
void oracle_run_free(oracle_run_t *r);

/* After a pass-fwd setup (s->pass == PASS_FWD) nothing is kept: run_bwd must refuse, not
 * read NULL buffers. */
void oracle_bwd_refuses_after_fwd(const oracle_t *o, shape_t *s);

/* Not a comparison (no reference reaches it): one training forward and two backwards at s
 * timed by events (the first may include cuBLAS's warm-up), every gradient checked finite
 * (poisoned first: unwritten stays NaN).  Prints "timing <label>: ...". */
void oracle_bwd_timed(const oracle_t *o, shape_t *s, const char *label);

/* main: exit 77 (skipped) when no CUDA device is present, else the suite (one tcase, 600 s,
 * in-process: a forked child cannot use CUDA) of the three tests; the exit status. */
int oracle_test_main(const char *suite, const TTest *vs_reference, int n_cases,
                     const TTest *refuses, const TTest *long_sequence);

#endif
