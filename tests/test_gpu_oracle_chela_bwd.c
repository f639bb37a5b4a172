/* test_gpu_oracle_chela_bwd.c: chela/oracle_fp32's backward (run_bwd) against the double CPU
 * reference of the layer's backward (ref_chela_bwd), through the oracle's own functions (setup
 * at pass fwdbwd, run, run_bwd), independent of the variant table and the runner.  Exit 77
 * (skipped) when no CUDA device is present.
 *
 * Inputs are the harness's own: chela_describe's tensors filled from a seed by gpu_fill_tensor
 * on the device and tensor_fill_host on the host (the same bits, rounded to their storage
 * type), dy likewise (grad_dy_desc, GRAD_DY_INDEX), so the reference sees exactly what the GPU
 * saw.  Every gradient buffer is fp32 (the oracle's convention, dX included) and poisoned with
 * 0xFF bytes (NaN) before each run_bwd, so an element never written fails.  run_bwd runs twice
 * and must give the same bits (no float atomics; cuBLAS is deterministic on one stream).  The
 * training forward's output (it now keeps Y, O, and the V and FFN pre-activations apart) is
 * checked too, and run_bwd after a pass-fwd setup must refuse.
 *
 * Shapes: T = 1 (one token: every sum has one term, k3's taps 1, 2 and k3b's get exactly 0),
 * 7, 33, 70 (one tile of the long conv, one fold-free scan), 130 (two conv tiles) and 300
 * (three tiles, and the scans fold their local state once, at step 256); d = 64, z = 64,
 * v = 128, and d = 16, z = 16, v = 32 (half-empty channel groups), and odd widths d = 40,
 * z = 37 (two threads a value column, half-empty warps in the row scans), v = 100 (a partial
 * last column block); B = 1, 2; fp32, bf16 and fp16 runs (only the inputs' rounding differs:
 * the oracle is fp32 after widening).
 *
 * Error measure: |got - ref| / scale, scale = the largest |ref| of the tensor.  For w_proj and
 * b_proj, whose column groups [Zq | Ga | Go | Hz] come from four different paths, each group is
 * judged against its own largest |ref| (never less than 1% of the whole tensor's), so that an
 * error in the small attention-side groups cannot hide under the large gate-side ones.
 * Tolerance TOL = 1e-4: the GPU side is fp32 throughout on exactly the reference's inputs, so
 * its error is fp32 rounding alone, through a dozen chained stages, sums of up to T + 2d terms,
 * LayerNorm backwards whose mean terms cancel, and an RMSNorm backward that amplifies the
 * rounding of the first tokens' gradients by (mean(o^2) + eps) / eps (o_raw is small there:
 * ref_grad_chela.c).  The same kernels run on a CPU emulation (threads, barriers and shuffles
 * emulated, fp32 GEMMs summed in plain order, which is worse than cuBLAS's blocked sums) gave
 * at most 1.9e-6 on these shapes, 2.7e-6 at T = 4096, and 3.1e-5 on a stress shape (T = 1,
 * z = 256, d = 8: kappa and mu through that amplification): 1e-4 leaves 50x over the tested
 * shapes, while a value rounded to bf16 anywhere (2^-9 = 2e-3), a missed term, a wrong index
 * or a wrong scale is off by far more. */
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
#include "ref_grad_chela.h"
#include "variant.h"

DECLARE_VARIANT(chela_oracle_fp32);
DECLARE_BWD(chela_oracle_fp32);

#define SEED 0x7f0a11beefull
#define TOL 1e-4
#define PART_FLOOR 1e-2 /* a column group's scale is at least this fraction of the tensor's */
#define MAX_PARTS 4

#define CK_CUDA_OK(call)                                                                     \
    do {                                                                                     \
        cudaError_t e_ = (call);                                                             \
        ck_assert_msg(e_ == cudaSuccess, "%s: %s", #call, cudaGetErrorString(e_));           \
    } while (0)

typedef struct {
    int B, T, d, z, v;
    dtype_t dt;
} case_t;

static const case_t CASES[] = {
    {2, 1, 64, 64, 128, DTYPE_F32},   {2, 1, 64, 64, 128, DTYPE_BF16},
    {2, 7, 64, 64, 128, DTYPE_F32},   {2, 7, 64, 64, 128, DTYPE_BF16},
    {2, 33, 64, 64, 128, DTYPE_F32},  {2, 33, 64, 64, 128, DTYPE_BF16},
    {2, 70, 64, 64, 128, DTYPE_F32},  {2, 70, 64, 64, 128, DTYPE_BF16},
    {1, 70, 64, 64, 128, DTYPE_F16},  {2, 1, 16, 16, 32, DTYPE_F32},
    {2, 33, 16, 16, 32, DTYPE_BF16},  {1, 130, 40, 37, 100, DTYPE_F32},
    {1, 300, 64, 64, 128, DTYPE_BF16},
};
#define N_CASES ((int)(sizeof CASES / sizeof CASES[0]))

static shape_t case_shape(const case_t *c, pass_t pass) {
    shape_t s;
    memset(&s, 0, sizeof s);
    s.B = c->B;
    s.T = c->T;
    s.d = c->d;
    s.z = c->z;
    s.v = c->v;
    s.H = 1; /* as the runner builds a chela shape */
    s.dk = c->z;
    s.dv = c->v;
    s.causal = 1;
    s.dtype = c->dt;
    s.pass = pass;
    return s;
}

/* Column groups of gradient i's rows (width wide, split at bounds[0] < ... < bounds[parts]). */
typedef struct {
    size_t width;
    int parts;
    size_t bounds[MAX_PARTS + 1];
} groups_t;

static groups_t grad_groups(int i, const case_t *c) {
    const size_t d = (size_t)c->d, z = (size_t)c->z, v = (size_t)c->v, np = z + v + 2 * d;
    groups_t g = {.width = d, .parts = 1, .bounds = {0, d}};
    switch (i) {
    case CHELA_IN_WPROJ:
    case CHELA_IN_BPROJ:
        g = (groups_t){.width = np, .parts = 4, .bounds = {0, z, z + v, z + v + d, np}};
        break;
    case CHELA_IN_K3:
    case CHELA_IN_K3B: g = (groups_t){.width = 3, .parts = 1, .bounds = {0, 3}}; break;
    case CHELA_IN_KLONG:
        g = (groups_t){.width = (size_t)c->T, .parts = 1, .bounds = {0, (size_t)c->T}};
        break;
    case CHELA_IN_KM: {
        const size_t km = (size_t)shape_km(c->T);
        g = (groups_t){.width = km, .parts = 1, .bounds = {0, km}};
        break;
    }
    case CHELA_IN_KAPPA_Q:
    case CHELA_IN_MU_Q:
    case CHELA_IN_KAPPA_K:
    case CHELA_IN_MU_K: g = (groups_t){.width = z, .parts = 1, .bounds = {0, z}}; break;
    case CHELA_IN_WV:
    case CHELA_IN_BV: g = (groups_t){.width = v, .parts = 1, .bounds = {0, v}}; break;
    case CHELA_IN_W1: g = (groups_t){.width = 2 * d, .parts = 1, .bounds = {0, 2 * d}}; break;
    default: break; /* rows of d: x, the LayerNorms', u_h, b_h, w2 */
    }
    return g;
}

static int group_of(const groups_t *g, size_t col) {
    int p = 0;
    while (p + 1 < g->parts && col >= g->bounds[p + 1]) p++;
    return p;
}

/* Worst |got - ref| / scale over n elements (header); non-finite got counts as failing. */
static void check_tensor(const char *label, const char *what, const double *ref, const float *got,
                         size_t n, const groups_t *g) {
    double whole = 0, part_max[MAX_PARTS] = {0};
    for (size_t i = 0; i < n; i++) {
        const int p = group_of(g, i % g->width);
        whole = fmax(whole, fabs(ref[i]));
        part_max[p] = fmax(part_max[p], fabs(ref[i]));
    }
    ck_assert_msg(whole > 0, "%s %s: the reference is all zero", label, what);
    double worst = 0;
    size_t at = 0;
    long long nonfinite = 0;
    for (size_t i = 0; i < n; i++) {
        const double scale = fmax(part_max[group_of(g, i % g->width)], PART_FLOOR * whole);
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
    printf("  %-36s %-9s max_rel %.3e (tol %.1e)%s\n", label, what, worst, TOL,
           nonfinite ? "  NON-FINITE" : "");
    ck_assert_msg(nonfinite == 0 && worst <= TOL,
                  "%s %s: max_rel %.3e > %.1e (%lld non-finite) at %zu (row %zu col %zu): got "
                  "%.8g ref %.8g",
                  label, what, worst, TOL, nonfinite, at, at / g->width, at % g->width,
                  (double)got[at], ref[at]);
}

static float *download_f32(const void *d, size_t n) {
    float *h = malloc((n ? n : 1) * sizeof(float));
    ck_assert_ptr_nonnull(h);
    CK_CUDA_OK(cudaMemcpy(h, d, n * sizeof(float), cudaMemcpyDeviceToHost));
    return h;
}

/* The harness's inputs for s on the device (and, when hin is given, their host images in
 * double), fp32 gradient buffers, dy (host image into hdy when given) and an fp32 output. */
static int make_io(shape_t *s, tensor_desc_t *desc, io_t *io, grad_io_t *g, double **hin,
                   double **hdy) {
    const op_desc_t *op = op_get(OP_CHELA);
    ck_assert_ptr_nonnull(op);
    tensor_desc_t outd;
    const int n_in = op->describe(s, desc, &outd);
    ck_assert_int_eq(n_in, CHELA_N_IN);
    memset(io, 0, sizeof *io);
    memset(g, 0, sizeof *g);
    io->shape = s;
    io->n_in = n_in;
    size_t most = outd.elems;
    for (int i = 0; i < n_in; i++) most = desc[i].elems > most ? desc[i].elems : most;
    float *tmp = malloc(most * sizeof(float));
    ck_assert_ptr_nonnull(tmp);
    for (int i = 0; i < n_in; i++) {
        const size_t n = desc[i].elems;
        ck_assert_uint_eq(n, ref_chela_in_elems(s, i));
        if (hin) {
            tensor_fill_host(&desc[i], SEED, (uint32_t)i, s->dtype, tmp);
            hin[i] = malloc(n * sizeof(double));
            ck_assert_ptr_nonnull(hin[i]);
            for (size_t k = 0; k < n; k++) hin[i][k] = tmp[k];
        }
        void *p = NULL;
        CK_CUDA_OK(cudaMalloc(&p, tensor_bytes(&desc[i], s->dtype)));
        ck_assert_int_eq(gpu_fill_tensor(&desc[i], SEED, (uint32_t)i, s->dtype, p, 0), 0);
        io->in[i] = p;
        CK_CUDA_OK(cudaMalloc(&g->grad[i], n * sizeof(float)));
    }
    const tensor_desc_t dyd = grad_dy_desc(&outd);
    if (hdy) {
        tensor_fill_host(&dyd, SEED, GRAD_DY_INDEX, s->dtype, tmp);
        *hdy = malloc(outd.elems * sizeof(double));
        ck_assert_ptr_nonnull(*hdy);
        for (size_t k = 0; k < outd.elems; k++) (*hdy)[k] = tmp[k];
    }
    free(tmp);
    void *dy = NULL;
    CK_CUDA_OK(cudaMalloc(&dy, tensor_bytes(&dyd, s->dtype)));
    ck_assert_int_eq(gpu_fill_tensor(&dyd, SEED, GRAD_DY_INDEX, s->dtype, dy, 0), 0);
    g->dy = dy;
    CK_CUDA_OK(cudaMalloc(&io->out, outd.elems * sizeof(float))); /* the oracle writes fp32 */
    CK_CUDA_OK(cudaMemset(io->out, 0xFF, outd.elems * sizeof(float)));
    return n_in;
}

static void free_io(int n_in, io_t *io, grad_io_t *g) {
    for (int i = 0; i < n_in; i++) {
        CK_CUDA_OK(cudaFree((void *)io->in[i]));
        CK_CUDA_OK(cudaFree(g->grad[i]));
    }
    CK_CUDA_OK(cudaFree((void *)g->dy));
    CK_CUDA_OK(cudaFree(io->out));
}

static void run_case(const case_t *c) {
    shape_t s = case_shape(c, PASS_FWDBWD);
    const size_t nx = (size_t)c->B * c->T * (size_t)c->d;
    char label[96];
    snprintf(label, sizeof label, "B=%d T=%d d=%d z=%d v=%d %s", c->B, c->T, c->d, c->z, c->v,
             dtype_name(c->dt));
    const char *why = chela_oracle_fp32_supports(&s);
    ck_assert_msg(why == NULL, "%s: supports: %s", label, why ? why : "");

    tensor_desc_t desc[OP_MAX_INPUTS];
    io_t io;
    grad_io_t g;
    double *hin[CHELA_N_IN], *gref[CHELA_N_IN], *hdy = NULL;
    const int n_in = make_io(&s, desc, &io, &g, hin, &hdy);
    for (int i = 0; i < n_in; i++) {
        gref[i] = malloc(desc[i].elems * sizeof(double));
        ck_assert_ptr_nonnull(gref[i]);
    }
    double *yref = malloc(nx * sizeof(double));
    ck_assert_ptr_nonnull(yref);

    /* GPU: setup (training), the forward, then run_bwd twice into poisoned gradients */
    void *state = NULL;
    ck_assert_msg(chela_oracle_fp32_setup(&s, &io, &state) == 0, "%s: setup: %s", label,
                  bench_last_error());
    ck_assert_msg(chela_oracle_fp32_run(state, &io, 0) == 0, "%s: run: %s", label,
                  bench_last_error());
    float *got[CHELA_N_IN];
    for (int rep = 0; rep < 2; rep++) {
        for (int i = 0; i < n_in; i++)
            ck_assert_int_eq(gpu_poison(g.grad[i], desc[i].elems * sizeof(float), 0), 0);
        ck_assert_msg(chela_oracle_fp32_run_bwd(state, &io, &g, 0) == 0, "%s: run_bwd: %s", label,
                      bench_last_error());
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
    chela_oracle_fp32_config(state, cfg, sizeof cfg);
    chela_oracle_fp32_teardown(state);

    /* the reference in double on the same inputs and dy (it runs its own forward) */
    ck_assert_msg(ref_chela_fwd_d(&s, (const double *const *)hin, yref) == 0, "%s",
                  bench_last_error());
    ck_assert_msg(ref_chela_bwd(&s, (const double *const *)hin, NULL, hdy, gref) == 0, "%s",
                  bench_last_error());

    printf("%s (%s)\n", label, cfg);
    const groups_t gy = {.width = (size_t)c->d, .parts = 1, .bounds = {0, (size_t)c->d}};
    check_tensor(label, "y", yref, y, nx, &gy);
    for (int i = 0; i < n_in; i++) {
        const groups_t gg = grad_groups(i, c);
        char what[32];
        snprintf(what, sizeof what, "d%s", desc[i].name);
        check_tensor(label, what, gref[i], got[i], desc[i].elems, &gg);
    }

    free(y);
    free_io(n_in, &io, &g);
    for (int i = 0; i < n_in; i++) {
        free(hin[i]);
        free(gref[i]);
        free(got[i]);
    }
    free(hdy);
    free(yref);
}

START_TEST(oracle_bwd_vs_reference) { run_case(&CASES[_i]); }
END_TEST

/* After a pass-fwd setup nothing is kept: run_bwd must refuse, not read NULL buffers. */
START_TEST(oracle_bwd_refuses_after_fwd_setup) {
    const case_t c = {1, 7, 64, 64, 128, DTYPE_BF16};
    shape_t s = case_shape(&c, PASS_FWD);
    tensor_desc_t desc[OP_MAX_INPUTS];
    io_t io;
    grad_io_t g;
    const int n_in = make_io(&s, desc, &io, &g, NULL, NULL);
    void *state = NULL;
    ck_assert_msg(chela_oracle_fp32_setup(&s, &io, &state) == 0, "setup: %s",
                  bench_last_error());
    ck_assert_msg(chela_oracle_fp32_run(state, &io, 0) == 0, "run: %s", bench_last_error());
    ck_assert_msg(chela_oracle_fp32_run_bwd(state, &io, &g, 0) != 0,
                  "run_bwd after a pass-fwd setup ran");
    bench_clear_error();
    CK_CUDA_OK(cudaDeviceSynchronize());
    chela_oracle_fp32_teardown(state);
    free_io(n_in, &io, &g);
}
END_TEST

/* Not a comparison (no reference reaches it): the oracle at the length the harness needs it,
 * B = 1, T = 65536, d = 1024, z = 128, v = 2048, bf16, the harness's inputs: one training
 * forward and two backwards timed by events (the first may include cuBLAS's warm-up), every
 * gradient checked finite (poisoned first: unwritten stays NaN).  Printed for the report. */
START_TEST(oracle_bwd_long_sequence) {
    const case_t c = {1, 65536, 1024, 128, 2048, DTYPE_BF16};
    shape_t s = case_shape(&c, PASS_FWDBWD);
    const char *why = chela_oracle_fp32_supports(&s);
    ck_assert_msg(why == NULL, "supports: %s", why ? why : "");
    tensor_desc_t desc[OP_MAX_INPUTS];
    io_t io;
    grad_io_t g;
    const int n_in = make_io(&s, desc, &io, &g, NULL, NULL);
    void *state = NULL;
    ck_assert_msg(chela_oracle_fp32_setup(&s, &io, &state) == 0, "setup: %s",
                  bench_last_error());
    for (int i = 0; i < n_in; i++)
        ck_assert_int_eq(gpu_poison(g.grad[i], desc[i].elems * sizeof(float), 0), 0);
    cudaEvent_t ev[4];
    for (int k = 0; k < 4; k++) CK_CUDA_OK(cudaEventCreate(&ev[k]));
    CK_CUDA_OK(cudaEventRecord(ev[0], 0));
    ck_assert_msg(chela_oracle_fp32_run(state, &io, 0) == 0, "run: %s", bench_last_error());
    CK_CUDA_OK(cudaEventRecord(ev[1], 0));
    ck_assert_msg(chela_oracle_fp32_run_bwd(state, &io, &g, 0) == 0, "run_bwd: %s",
                  bench_last_error());
    CK_CUDA_OK(cudaEventRecord(ev[2], 0));
    ck_assert_msg(chela_oracle_fp32_run_bwd(state, &io, &g, 0) == 0, "run_bwd: %s",
                  bench_last_error());
    CK_CUDA_OK(cudaEventRecord(ev[3], 0));
    CK_CUDA_OK(cudaEventSynchronize(ev[3]));
    float ms[3];
    for (int k = 0; k < 3; k++) CK_CUDA_OK(cudaEventElapsedTime(&ms[k], ev[k], ev[k + 1]));
    printf("timing chela/oracle_fp32 B=%d T=%d d=%d z=%d v=%d bf16: training fwd %.1f ms, "
           "bwd %.1f ms (first), %.1f ms (second)\n",
           c.B, c.T, c.d, c.z, c.v, ms[0], ms[1], ms[2]);
    for (int i = 0; i < n_in; i++) {
        unsigned long long bad = 0;
        ck_assert_int_eq(gpu_count_nonfinite(g.grad[i], desc[i].elems, DTYPE_F32, &bad, 0), 0);
        ck_assert_msg(bad == 0, "d%s: %llu non-finite of %zu", desc[i].name, bad, desc[i].elems);
    }
    for (int k = 0; k < 4; k++) CK_CUDA_OK(cudaEventDestroy(ev[k]));
    chela_oracle_fp32_teardown(state);
    free_io(n_in, &io, &g);
}
END_TEST

int main(void) {
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("SKIP: no CUDA device\n");
        return 77;
    }
    Suite *su = suite_create("gpu_oracle_chela_bwd");
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
