/* test_gpu_oracle_transformer_bwd.c: transformer/oracle_fp32's backward (run_bwd) against the
 * double CPU reference of the layer's backward (ref_transformer_bwd), through the oracle's own
 * functions (setup at pass fwdbwd, run, run_bwd), independent of the variant table and the
 * runner.  Exit 77 (skipped) when no CUDA device is present.
 *
 * Inputs are the harness's own: tf_describe's tensors filled from a seed by gpu_fill_tensor on
 * the device and tensor_fill_host on the host (the same bits, rounded to their storage type),
 * dy likewise (grad_dy_desc, GRAD_DY_INDEX), so the reference sees exactly what the GPU saw.
 * Every gradient buffer is fp32 (the oracle's convention, dX included) and poisoned with 0xFF
 * bytes (NaN) before each run_bwd, so an element never written fails.  run_bwd runs twice and
 * must give the same bits (no float atomics; cuBLAS is deterministic on one stream).  The
 * training forward's output (it now keeps u and the attention's log-sum-exp) is checked too,
 * and run_bwd after a pass-fwd setup must refuse.
 *
 * Shapes: T = 1 (one key: P = 1, dQ = 0 exactly), 7 (inside one chunk of 32 and one block of
 * 8 rows), 33 (one past a chunk), 70 and 300 (several chunks and row blocks); D = 32, 64, 128;
 * B = 1, 2; fp32, bf16 and fp16 runs (only the inputs' rounding differs: the oracle is fp32
 * after widening).
 *
 * Error measure: |got - ref| / scale, scale = the largest |ref| of the tensor.  For Wqkv and
 * bqkv, whose q, k and v thirds carry gradients of different sizes, each third is judged
 * against its own largest |ref|, but never less than 1% of the whole tensor's: at T = 1 the
 * exact dQ is 0, so the q third of the reference is 0 while the GPU's dS = P (dp - delta) is
 * fp32 rounding (~1e-7 of dp), which that floor admits.
 * Tolerance TOL = 1e-4: the GPU side is fp32 throughout on exactly the reference's inputs, so
 * its error is fp32 rounding alone: sums of at most 4d = 512 terms (~sqrt(512) 2^-24 ~ 1e-6
 * relative), a dozen chained stages, a LayerNorm backward whose two mean terms cancel, exp of
 * scores ~1.  1e-4 leaves ~10-100x room over that; a value rounded to bf16 anywhere (2^-9 =
 * 2e-3), a missed term, a wrong index or a wrong scale is off by far more. */
#include <check.h>
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_check.h"
#include "gpu_util.h"
#include "grad_ref.h"
#include "op.h"
#include "op_inputs.h"
#include "ref_grad_transformer.h"
#include "variant.h"

DECLARE_VARIANT(transformer_oracle_fp32);
DECLARE_BWD(transformer_oracle_fp32);

#define SEED 0x7f0a11beefull
#define TOL 1e-4
#define PART_FLOOR 1e-2 /* a third's scale is at least this fraction of the tensor's */

#define CK_CUDA_OK(call)                                                                     \
    do {                                                                                     \
        cudaError_t e_ = (call);                                                             \
        ck_assert_msg(e_ == cudaSuccess, "%s: %s", #call, cudaGetErrorString(e_));           \
    } while (0)

typedef struct {
    int B, T, d, H; /* head dim D = d / H */
    dtype_t dt;
} case_t;

static const case_t CASES[] = {
    {2, 1, 128, 2, DTYPE_F32},  {2, 1, 128, 2, DTYPE_BF16}, {2, 7, 128, 2, DTYPE_F32},
    {2, 7, 128, 2, DTYPE_BF16}, {2, 33, 128, 2, DTYPE_F32}, {2, 33, 128, 2, DTYPE_BF16},
    {2, 33, 64, 2, DTYPE_F32},  {2, 33, 64, 2, DTYPE_BF16}, {1, 70, 64, 2, DTYPE_F16},
    {1, 33, 128, 1, DTYPE_BF16}, {1, 300, 128, 2, DTYPE_BF16}, {1, 300, 64, 2, DTYPE_F32},
};
#define N_CASES ((int)(sizeof CASES / sizeof CASES[0]))

static shape_t case_shape(const case_t *c, pass_t pass) {
    shape_t s;
    memset(&s, 0, sizeof s);
    s.B = c->B;
    s.T = c->T;
    s.d = c->d;
    s.H = c->H;
    s.dk = s.dv = c->d / c->H;
    s.causal = 1;
    s.dtype = c->dt;
    s.pass = pass;
    return s;
}

/* Worst |got - ref| / scale over n elements (header), rows of `width` split into `parts`
 * equal column ranges judged on their own scales.  Non-finite got counts as failing. */
static void check_tensor(const char *label, const char *what, const double *ref, const float *got,
                         size_t n, size_t width, int parts) {
    double whole = 0, part_max[3] = {0, 0, 0};
    const size_t pw = width / (size_t)parts;
    for (size_t i = 0; i < n; i++) {
        const int p = (int)((i % width) / pw);
        whole = fmax(whole, fabs(ref[i]));
        part_max[p] = fmax(part_max[p], fabs(ref[i]));
    }
    ck_assert_msg(whole > 0, "%s %s: the reference is all zero", label, what);
    double worst = 0;
    size_t at = 0;
    long long nonfinite = 0;
    for (size_t i = 0; i < n; i++) {
        const int p = (int)((i % width) / pw);
        const double scale = fmax(part_max[p], PART_FLOOR * whole);
        if (!isfinite(got[i])) {
            if (!nonfinite++) at = i;
            worst = INFINITY;
            continue;
        }
        const double e = fabs((double)got[i] - ref[i]) / scale;
        if (e > worst && !nonfinite) {
            worst = e;
            at = i;
        }
    }
    printf("  %-34s %-6s max_rel %.3e (tol %.1e)%s\n", label, what, worst, TOL,
           nonfinite ? "  NON-FINITE" : "");
    ck_assert_msg(nonfinite == 0 && worst <= TOL,
                  "%s %s: max_rel %.3e > %.1e (%lld non-finite) at %zu (row %zu col %zu): got "
                  "%.8g ref %.8g",
                  label, what, worst, TOL, nonfinite, at, at / width, at % width, (double)got[at],
                  ref[at]);
}

static float *download_f32(const void *d, size_t n) {
    float *h = malloc((n ? n : 1) * sizeof(float));
    ck_assert_ptr_nonnull(h);
    CK_CUDA_OK(cudaMemcpy(h, d, n * sizeof(float), cudaMemcpyDeviceToHost));
    return h;
}

/* Row width of gradient i for the error report and the thirds of Wqkv / bqkv. */
static size_t grad_width(int i, int d, int *parts) {
    *parts = 1;
    switch (i) {
    case TRANSFORMER_IN_WQKV:
    case TRANSFORMER_IN_BQKV: *parts = 3; return 3 * (size_t)d;
    case TRANSFORMER_IN_W1:
    case TRANSFORMER_IN_B1: return 4 * (size_t)d;
    default: return (size_t)d;
    }
}

static void run_case(const case_t *c) {
    shape_t s = case_shape(c, PASS_FWDBWD);
    const size_t M = (size_t)c->B * c->T, nx = M * (size_t)c->d;
    char label[96];
    snprintf(label, sizeof label, "B=%d T=%d d=%d H=%d D=%d %s", c->B, c->T, c->d, c->H, s.dk,
             dtype_name(c->dt));
    const char *why = transformer_oracle_fp32_supports(&s);
    ck_assert_msg(why == NULL, "%s: supports: %s", label, why ? why : "");

    /* inputs (the harness's fill, host and device), dy, output and gradients (all fp32) */
    const op_desc_t *op = op_get(OP_TRANSFORMER);
    ck_assert_ptr_nonnull(op);
    tensor_desc_t desc[OP_MAX_INPUTS], outd;
    const int n_in = op->describe(&s, desc, &outd);
    ck_assert_int_eq(n_in, TRANSFORMER_N_IN);
    ck_assert_uint_eq(outd.elems, nx);
    double *hin[TRANSFORMER_N_IN], *gref[TRANSFORMER_N_IN];
    io_t io;
    grad_io_t g;
    memset(&io, 0, sizeof io);
    memset(&g, 0, sizeof g);
    io.shape = &s;
    io.n_in = n_in;
    size_t most = nx; /* the largest tensor: x, dy or a weight */
    for (int i = 0; i < n_in; i++) most = desc[i].elems > most ? desc[i].elems : most;
    float *tmp = malloc(most * sizeof(float));
    ck_assert_ptr_nonnull(tmp);
    for (int i = 0; i < n_in; i++) {
        const size_t n = desc[i].elems;
        tensor_fill_host(&desc[i], SEED, (uint32_t)i, c->dt, tmp);
        hin[i] = malloc(n * sizeof(double));
        gref[i] = malloc(n * sizeof(double));
        ck_assert(hin[i] && gref[i]);
        for (size_t k = 0; k < n; k++) hin[i][k] = tmp[k];
        void *p = NULL;
        CK_CUDA_OK(cudaMalloc(&p, tensor_bytes(&desc[i], c->dt)));
        ck_assert_int_eq(gpu_fill_tensor(&desc[i], SEED, (uint32_t)i, c->dt, p, 0), 0);
        io.in[i] = p;
        CK_CUDA_OK(cudaMalloc(&g.grad[i], n * sizeof(float)));
    }
    const tensor_desc_t dyd = grad_dy_desc(&outd);
    tensor_fill_host(&dyd, SEED, GRAD_DY_INDEX, c->dt, tmp);
    double *hdy = malloc(nx * sizeof(double)), *yref = malloc(nx * sizeof(double));
    ck_assert(hdy && yref);
    for (size_t k = 0; k < nx; k++) hdy[k] = tmp[k];
    free(tmp);
    void *ddy = NULL;
    CK_CUDA_OK(cudaMalloc(&ddy, tensor_bytes(&dyd, c->dt)));
    ck_assert_int_eq(gpu_fill_tensor(&dyd, SEED, GRAD_DY_INDEX, c->dt, ddy, 0), 0);
    g.dy = ddy;
    CK_CUDA_OK(cudaMalloc(&io.out, nx * sizeof(float))); /* the oracle writes fp32 */
    CK_CUDA_OK(cudaMemset(io.out, 0xFF, nx * sizeof(float)));

    /* GPU: setup (training), the forward, then run_bwd twice into poisoned gradients */
    void *state = NULL;
    ck_assert_msg(transformer_oracle_fp32_setup(&s, &io, &state) == 0, "%s: setup: %s", label,
                  bench_last_error());
    ck_assert_msg(transformer_oracle_fp32_run(state, &io, 0) == 0, "%s: run: %s", label,
                  bench_last_error());
    float *got[TRANSFORMER_N_IN];
    for (int rep = 0; rep < 2; rep++) {
        for (int i = 0; i < n_in; i++)
            ck_assert_int_eq(gpu_poison(g.grad[i], desc[i].elems * sizeof(float), 0), 0);
        ck_assert_msg(transformer_oracle_fp32_run_bwd(state, &io, &g, 0) == 0, "%s: run_bwd: %s",
                      label, bench_last_error());
        CK_CUDA_OK(cudaDeviceSynchronize());
        for (int i = 0; i < n_in; i++) {
            float *h = download_f32(g.grad[i], desc[i].elems);
            if (rep == 0) {
                got[i] = h;
                continue;
            }
            ck_assert_msg(memcmp(h, got[i], desc[i].elems * sizeof(float)) == 0,
                          "%s: the second run_bwd's d%s differs from the first's", label,
                          desc[i].name);
            free(h);
        }
    }
    float *y = download_f32(io.out, nx);
    char cfg[160];
    transformer_oracle_fp32_config(state, cfg, sizeof cfg);
    transformer_oracle_fp32_teardown(state);

    /* the reference in double on the same inputs and dy */
    ref_transformer_acts_t acts;
    ck_assert_msg(ref_transformer_fwd_d(&s, (const double *const *)hin, yref, &acts) == 0, "%s",
                  bench_last_error());
    ck_assert_msg(ref_transformer_bwd(&s, (const double *const *)hin, &acts, hdy, gref) == 0,
                  "%s", bench_last_error());
    ref_transformer_acts_free(&acts);

    printf("%s (%s)\n", label, cfg);
    check_tensor(label, "y", yref, y, nx, (size_t)c->d, 1);
    for (int i = 0; i < n_in; i++) {
        int parts;
        const size_t w = grad_width(i, c->d, &parts);
        char what[32];
        snprintf(what, sizeof what, "d%s", desc[i].name);
        check_tensor(label, what, gref[i], got[i], desc[i].elems, w, parts);
    }

    free(y);
    for (int i = 0; i < n_in; i++) {
        CK_CUDA_OK(cudaFree((void *)io.in[i]));
        CK_CUDA_OK(cudaFree(g.grad[i]));
        free(hin[i]);
        free(gref[i]);
        free(got[i]);
    }
    CK_CUDA_OK(cudaFree(ddy));
    CK_CUDA_OK(cudaFree(io.out));
    free(hdy);
    free(yref);
}

START_TEST(oracle_bwd_vs_reference) { run_case(&CASES[_i]); }
END_TEST

/* After a pass-fwd setup nothing is kept: run_bwd must refuse, not read NULL buffers. */
START_TEST(oracle_bwd_refuses_after_fwd_setup) {
    const case_t c = {1, 7, 64, 2, DTYPE_BF16};
    shape_t s = case_shape(&c, PASS_FWD);
    const op_desc_t *op = op_get(OP_TRANSFORMER);
    tensor_desc_t desc[OP_MAX_INPUTS], outd;
    const int n_in = op->describe(&s, desc, &outd);
    io_t io;
    grad_io_t g;
    memset(&io, 0, sizeof io);
    memset(&g, 0, sizeof g);
    io.shape = &s;
    io.n_in = n_in;
    for (int i = 0; i < n_in; i++) {
        void *p = NULL;
        CK_CUDA_OK(cudaMalloc(&p, tensor_bytes(&desc[i], c.dt)));
        ck_assert_int_eq(gpu_fill_tensor(&desc[i], SEED, (uint32_t)i, c.dt, p, 0), 0);
        io.in[i] = p;
        CK_CUDA_OK(cudaMalloc(&g.grad[i], desc[i].elems * sizeof(float)));
    }
    void *dy = NULL;
    CK_CUDA_OK(cudaMalloc(&dy, outd.elems * sizeof(float)));
    CK_CUDA_OK(cudaMemset(dy, 0, outd.elems * sizeof(float)));
    g.dy = dy;
    CK_CUDA_OK(cudaMalloc(&io.out, outd.elems * sizeof(float)));
    void *state = NULL;
    ck_assert_msg(transformer_oracle_fp32_setup(&s, &io, &state) == 0, "setup: %s",
                  bench_last_error());
    ck_assert_msg(transformer_oracle_fp32_run(state, &io, 0) == 0, "run: %s", bench_last_error());
    ck_assert_msg(transformer_oracle_fp32_run_bwd(state, &io, &g, 0) != 0,
                  "run_bwd after a pass-fwd setup ran");
    bench_clear_error();
    CK_CUDA_OK(cudaDeviceSynchronize());
    transformer_oracle_fp32_teardown(state);
    for (int i = 0; i < n_in; i++) {
        CK_CUDA_OK(cudaFree((void *)io.in[i]));
        CK_CUDA_OK(cudaFree(g.grad[i]));
    }
    CK_CUDA_OK(cudaFree(dy));
    CK_CUDA_OK(cudaFree(io.out));
}
END_TEST

/* Not a comparison (no reference reaches it): the oracle at the length the harness needs it,
 * B = 1, T = 65536, d = 1024, H = 16 (D = 64), bf16, the harness's inputs: one training
 * forward and two backwards timed by events (the first may include cuBLAS's warm-up), every
 * gradient checked finite (poisoned first: unwritten stays NaN).  Printed for the report. */
START_TEST(oracle_bwd_long_sequence) {
    const case_t c = {1, 65536, 1024, 16, DTYPE_BF16};
    shape_t s = case_shape(&c, PASS_FWDBWD);
    const op_desc_t *op = op_get(OP_TRANSFORMER);
    tensor_desc_t desc[OP_MAX_INPUTS], outd;
    const int n_in = op->describe(&s, desc, &outd);
    io_t io;
    grad_io_t g;
    memset(&io, 0, sizeof io);
    memset(&g, 0, sizeof g);
    io.shape = &s;
    io.n_in = n_in;
    for (int i = 0; i < n_in; i++) {
        void *p = NULL;
        CK_CUDA_OK(cudaMalloc(&p, tensor_bytes(&desc[i], c.dt)));
        ck_assert_int_eq(gpu_fill_tensor(&desc[i], SEED, (uint32_t)i, c.dt, p, 0), 0);
        io.in[i] = p;
        CK_CUDA_OK(cudaMalloc(&g.grad[i], desc[i].elems * sizeof(float)));
    }
    const tensor_desc_t dyd = grad_dy_desc(&outd);
    void *dy = NULL;
    CK_CUDA_OK(cudaMalloc(&dy, tensor_bytes(&dyd, c.dt)));
    ck_assert_int_eq(gpu_fill_tensor(&dyd, SEED, GRAD_DY_INDEX, c.dt, dy, 0), 0);
    g.dy = dy;
    CK_CUDA_OK(cudaMalloc(&io.out, outd.elems * sizeof(float)));
    void *state = NULL;
    ck_assert_msg(transformer_oracle_fp32_setup(&s, &io, &state) == 0, "setup: %s",
                  bench_last_error());
    for (int i = 0; i < n_in; i++)
        ck_assert_int_eq(gpu_poison(g.grad[i], desc[i].elems * sizeof(float), 0), 0);
    cudaEvent_t ev[4];
    for (int k = 0; k < 4; k++) CK_CUDA_OK(cudaEventCreate(&ev[k]));
    CK_CUDA_OK(cudaEventRecord(ev[0], 0));
    ck_assert_msg(transformer_oracle_fp32_run(state, &io, 0) == 0, "run: %s", bench_last_error());
    CK_CUDA_OK(cudaEventRecord(ev[1], 0));
    ck_assert_msg(transformer_oracle_fp32_run_bwd(state, &io, &g, 0) == 0, "run_bwd: %s",
                  bench_last_error());
    CK_CUDA_OK(cudaEventRecord(ev[2], 0));
    ck_assert_msg(transformer_oracle_fp32_run_bwd(state, &io, &g, 0) == 0, "run_bwd: %s",
                  bench_last_error());
    CK_CUDA_OK(cudaEventRecord(ev[3], 0));
    CK_CUDA_OK(cudaEventSynchronize(ev[3]));
    float ms[3];
    for (int k = 0; k < 3; k++) CK_CUDA_OK(cudaEventElapsedTime(&ms[k], ev[k], ev[k + 1]));
    printf("timing transformer/oracle_fp32 B=%d T=%d d=%d H=%d bf16: training fwd %.1f ms, "
           "bwd %.1f ms (first), %.1f ms (second)\n",
           c.B, c.T, c.d, c.H, ms[0], ms[1], ms[2]);
    for (int i = 0; i < n_in; i++) {
        unsigned long long bad = 0;
        ck_assert_int_eq(gpu_count_nonfinite(g.grad[i], desc[i].elems, DTYPE_F32, &bad, 0), 0);
        ck_assert_msg(bad == 0, "d%s: %llu non-finite of %zu", desc[i].name, bad, desc[i].elems);
    }
    for (int k = 0; k < 4; k++) CK_CUDA_OK(cudaEventDestroy(ev[k]));
    transformer_oracle_fp32_teardown(state);
    for (int i = 0; i < n_in; i++) {
        CK_CUDA_OK(cudaFree((void *)io.in[i]));
        CK_CUDA_OK(cudaFree(g.grad[i]));
    }
    CK_CUDA_OK(cudaFree(dy));
    CK_CUDA_OK(cudaFree(io.out));
}
END_TEST

int main(void) {
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("SKIP: no CUDA device\n");
        return 77;
    }
    Suite *su = suite_create("gpu_oracle_transformer_bwd");
    TCase *tc = tcase_create("gpu");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, oracle_bwd_vs_reference, 0, N_CASES);
    tcase_add_test(tc, oracle_bwd_refuses_after_fwd_setup);
    tcase_add_test(tc, oracle_bwd_long_sequence);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_set_fork_status(sr, CK_NOFORK); /* a forked child cannot use CUDA */
    srunner_run_all(sr, CK_VERBOSE);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
