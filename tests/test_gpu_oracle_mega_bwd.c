/* test_gpu_oracle_mega_bwd.c: mega/oracle_fp32's backward (run_bwd) against the double CPU
 * reference of the layer's backward (ref_mega_bwd), through the oracle's own functions (setup
 * at pass fwdbwd, run, run_bwd), independent of the variant table and the runner.  Exit 77
 * (skipped) when no CUDA device is present.
 *
 * Inputs are the harness's own: mega_describe's tensors filled from a seed by gpu_fill_tensor
 * on the device and tensor_fill_host on the host (the same bits, rounded to their storage
 * type), dy likewise (grad_dy_desc, GRAD_DY_INDEX), so the reference sees exactly what the GPU
 * saw.  Every gradient buffer is fp32 (the oracle's convention, dX included) and poisoned with
 * 0xFF bytes (NaN) before each run_bwd, so an element never written fails.  run_bwd runs twice
 * and must give the same bits (no float atomics; cuBLAS is deterministic on one stream).  The
 * training forward's output (it keeps Y, O, the softmax statistics and the V and FFN
 * pre-activations apart) is checked too, and run_bwd after a pass-fwd setup must refuse.
 *
 * The attention chunk is the setting mega_chunk (ops.c, read by the oracle at setup and by the
 * reference from the same shape), here 64, its smallest allowed value: T = 1 and 7 and 33 are
 * one partial chunk (c = min(64, T)), T = 70 a full chunk and a partial one of 6, T = 150 two
 * full and one of 22; one case at auto (c = T = 100, a single chunk).  d = 64, z = 64, v = 128,
 * and odd widths d = 40, z = 37, v = 100 (partial warps in the dot products, a partial last
 * column block); B = 1, 2; fp32, bf16 and one fp16 run (only the inputs' rounding differs: the
 * oracle is fp32 after widening).
 *
 * Error measure: |got - ref| / scale, scale = the largest |ref| of the tensor (w_proj and b_proj
 * column group by column group: [Zq | G | F | Hz] come from four different paths, each judged
 * against its own largest |ref|, never less than 1% of the whole tensor's, so that an error in
 * the small attention-side groups cannot hide under the gate-side ones).  dmu_k is 0 in exact
 * arithmetic (mu_k shifts all of a query's scores alike: ref_grad_mega.h), so both sides return
 * rounding; it is judged against dmu_q's scale (the same kind of sum, of dQ rather than dK).
 * At T = 1 every query has one key, so dS = P (dP - D) is 0 in exact arithmetic and the four
 * attention-score parameters' reference is all zero: a tensor whose reference is all zero is
 * judged in absolute terms against db_proj's largest |ref| (order 1: what dQ, dK feed).
 *
 * Tolerance TOL = 1e-4 for every tensor.  The GPU side is fp32 throughout on exactly the
 * reference's inputs, so its error is fp32 rounding alone, through a dozen chained stages, sums
 * of up to T + 2d terms and two LayerNorm backwards whose mean terms cancel.  Measured without
 * a GPU (throwaway programs outside the repository):
 *   - this oracle's own sources (forward and backward, every kernel and the host code) run on
 *     the CPU emulation of tests/emu, cuBLAS replaced by plain-order fp32 sums (worse than
 *     cuBLAS's blocked ones), against ref_mega_bwd: at most 7.7e-7 on any tensor at T = 1, 7
 *     and 70 (chunk 64: a full chunk and a partial one; d = 64, z = 64, v = 128), at d = z = 16,
 *     v = 32, T = 33, at the odd widths d = 40, z = 37, v = 100 (B = 2, T = 70), and with bf16
 *     x, dy and weights (T = 9), the second run_bwd
 *     bit-identical each time;
 *   - the attention kernels alone against double sums, chunks 64 and 8 at T = 70 and 20, odd
 *     z = 37, v = 100: at most 2.6e-7 (O, dQ, dK, dV); the EMA kernels alone against the
 *     reference's route (the kernel's gradient dK by direct correlation, then the chain) up to
 *     T = 3000: at most 1.5e-6 (dX~ and the four parameters);
 *   - the reference's own code compiled with float for double, on every shape here: at most
 *     1.3e-6 on any tensor, kappa_q, mu_q, kappa_k, mu_k included (the four attention-score
 *     parameters are small, 2.7e-6 .. 2.3e-3 at ops.c's fills, and come from cancelling sums,
 *     dQ_t = sum_u dS_tu (k_u - mean k), sum_u dS_tu = 0, yet each is judged against its own
 *     largest |ref| and stays there).
 * 1e-4 leaves ~75x over the worst of these, while a value rounded to bf16 anywhere (2^-9 =
 * 2e-3), a missed term, a wrong index, chunk boundary or scale is off by far more. */
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
#include "ref_grad_mega.h"
#include "settings.h"
#include "variant.h"

DECLARE_VARIANT(mega_oracle_fp32);
DECLARE_BWD(mega_oracle_fp32);

#define SEED 0x3e6aba5eull
#define TOL 1e-4
#define PART_FLOOR 1e-2 /* a column group's scale is at least this fraction of the tensor's */
#define MAX_PARTS 4
#define CHUNK_MIN 64 /* mega_chunk's smallest allowed value (variants.c: auto|64..65536) */

#define CK_CUDA_OK(call)                                                                     \
    do {                                                                                     \
        cudaError_t e_ = (call);                                                             \
        ck_assert_msg(e_ == cudaSuccess, "%s: %s", #call, cudaGetErrorString(e_));           \
    } while (0)

static const setting_def_t CHUNK_DEF[] = {{"mega_chunk", "auto|64..65536", "test"},
                                          {NULL, NULL, NULL}};

typedef struct {
    int B, T, d, z, v;
    dtype_t dt;
    int chunk; /* the mega_chunk setting: CHUNK_MIN, or SETTING_AUTO */
} case_t;

static const case_t CASES[] = {
    {2, 1, 64, 64, 128, DTYPE_F32, CHUNK_MIN},   {2, 1, 64, 64, 128, DTYPE_BF16, CHUNK_MIN},
    {2, 7, 64, 64, 128, DTYPE_F32, CHUNK_MIN},   {2, 7, 64, 64, 128, DTYPE_BF16, CHUNK_MIN},
    {2, 33, 64, 64, 128, DTYPE_F32, CHUNK_MIN},  {2, 33, 64, 64, 128, DTYPE_BF16, CHUNK_MIN},
    {2, 70, 64, 64, 128, DTYPE_F32, CHUNK_MIN},  {2, 70, 64, 64, 128, DTYPE_BF16, CHUNK_MIN},
    {1, 70, 64, 64, 128, DTYPE_F16, CHUNK_MIN},  {1, 150, 64, 64, 128, DTYPE_BF16, CHUNK_MIN},
    {1, 100, 64, 64, 128, DTYPE_F32, SETTING_AUTO}, {2, 70, 40, 37, 100, DTYPE_F32, CHUNK_MIN},
};
#define N_CASES ((int)(sizeof CASES / sizeof CASES[0]))

/* The settings block s.set points at (one per test: the shape's lifetime). */
static settings_t g_set;

static shape_t case_shape(const case_t *c, pass_t pass) {
    shape_t s;
    memset(&s, 0, sizeof s);
    memset(&g_set, 0, sizeof g_set);
    g_set.def = CHUNK_DEF;
    g_set.n = 1;
    g_set.val[0] = c->chunk;
    s.B = c->B;
    s.T = c->T;
    s.d = c->d;
    s.z = c->z;
    s.v = c->v;
    s.H = 1; /* as for chela's shapes */
    s.dk = c->z;
    s.dv = c->v;
    s.causal = 1;
    s.dtype = c->dt;
    s.pass = pass;
    s.set = &g_set;
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
    const size_t h = MEGA_EMA_H;
    groups_t g = {.width = d, .parts = 1, .bounds = {0, d}};
    switch (i) {
    case MEGA_IN_WPROJ:
    case MEGA_IN_BPROJ:
        g = (groups_t){.width = np, .parts = 4, .bounds = {0, z, z + v, z + v + d, np}};
        break;
    case MEGA_IN_ALPHA:
    case MEGA_IN_DELTA:
    case MEGA_IN_BETA:
    case MEGA_IN_ETA: g = (groups_t){.width = h, .parts = 1, .bounds = {0, h}}; break;
    case MEGA_IN_KAPPA_Q:
    case MEGA_IN_MU_Q:
    case MEGA_IN_KAPPA_K:
    case MEGA_IN_MU_K: g = (groups_t){.width = z, .parts = 1, .bounds = {0, z}}; break;
    case MEGA_IN_WV:
    case MEGA_IN_BV: g = (groups_t){.width = v, .parts = 1, .bounds = {0, v}}; break;
    case MEGA_IN_W1: g = (groups_t){.width = 2 * d, .parts = 1, .bounds = {0, 2 * d}}; break;
    default: break; /* rows of d: x, the LayerNorms', u_h, b_h, w2 */
    }
    return g;
}

static int group_of(const groups_t *g, size_t col) {
    int p = 0;
    while (p + 1 < g->parts && col >= g->bounds[p + 1]) p++;
    return p;
}

/* Worst |got - ref| / scale over n elements (header); non-finite got counts as failing.
 * scale_over > 0 replaces the tensor's own largest |ref| (dmu_k's); fallback is the scale of a
 * reference that is all zero (header). */
static void check_tensor(const char *label, const char *what, const double *ref, const float *got,
                         size_t n, const groups_t *g, double tol, double scale_over,
                         double fallback) {
    double whole = 0, part_max[MAX_PARTS] = {0};
    for (size_t i = 0; i < n; i++) {
        const int p = group_of(g, i % g->width);
        whole = fmax(whole, fabs(ref[i]));
        part_max[p] = fmax(part_max[p], fabs(ref[i]));
    }
    if (scale_over > 0) {
        whole = scale_over;
        for (int p = 0; p < MAX_PARTS; p++) part_max[p] = scale_over;
    }
    if (whole == 0) {
        ck_assert_msg(fallback > 0, "%s %s: the reference is all zero", label, what);
        whole = fallback;
        for (int p = 0; p < MAX_PARTS; p++) part_max[p] = fallback;
    }
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
    printf("  %-44s %-11s max_rel %.3e (tol %.1e)%s\n", label, what, worst, tol,
           nonfinite ? "  NON-FINITE" : "");
    ck_assert_msg(nonfinite == 0 && worst <= tol,
                  "%s %s: max_rel %.3e > %.1e (%lld non-finite) at %zu (row %zu col %zu): got "
                  "%.8g ref %.8g",
                  label, what, worst, tol, nonfinite, at, at / g->width, at % g->width,
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
    const op_desc_t *op = op_get(OP_MEGA);
    ck_assert_ptr_nonnull(op);
    tensor_desc_t outd;
    const int n_in = op->describe(s, desc, &outd);
    ck_assert_int_eq(n_in, MEGA_N_IN);
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
        ck_assert_uint_eq(n, ref_mega_in_elems(s, i));
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

static double max_abs(const double *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}

static void run_case(const case_t *c) {
    shape_t s = case_shape(c, PASS_FWDBWD);
    const size_t nx = (size_t)c->B * c->T * (size_t)c->d;
    char label[112];
    snprintf(label, sizeof label, "B=%d T=%d d=%d z=%d v=%d c=%d %s", c->B, c->T, c->d, c->z,
             c->v, mega_chunk(&s), dtype_name(c->dt));
    const char *why = mega_oracle_fp32_supports(&s);
    ck_assert_msg(why == NULL, "%s: supports: %s", label, why ? why : "");

    tensor_desc_t desc[OP_MAX_INPUTS];
    io_t io;
    grad_io_t g;
    double *hin[MEGA_N_IN], *gref[MEGA_N_IN], *hdy = NULL;
    const int n_in = make_io(&s, desc, &io, &g, hin, &hdy);
    for (int i = 0; i < n_in; i++) {
        gref[i] = malloc(desc[i].elems * sizeof(double));
        ck_assert_ptr_nonnull(gref[i]);
    }
    double *yref = malloc(nx * sizeof(double));
    ck_assert_ptr_nonnull(yref);

    /* GPU: setup (training), the forward, then run_bwd twice into poisoned gradients */
    void *state = NULL;
    ck_assert_msg(mega_oracle_fp32_setup(&s, &io, &state) == 0, "%s: setup: %s", label,
                  bench_last_error());
    ck_assert_msg(mega_oracle_fp32_run(state, &io, 0) == 0, "%s: run: %s", label,
                  bench_last_error());
    float *got[MEGA_N_IN];
    for (int rep = 0; rep < 2; rep++) {
        for (int i = 0; i < n_in; i++)
            ck_assert_int_eq(gpu_poison(g.grad[i], desc[i].elems * sizeof(float), 0), 0);
        ck_assert_msg(mega_oracle_fp32_run_bwd(state, &io, &g, 0) == 0, "%s: run_bwd: %s", label,
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
    mega_oracle_fp32_config(state, cfg, sizeof cfg);
    mega_oracle_fp32_teardown(state);

    /* the reference in double on the same inputs and dy (it runs its own forward) */
    ck_assert_msg(ref_mega_fwd_d(&s, (const double *const *)hin, yref) == 0, "%s",
                  bench_last_error());
    ck_assert_msg(ref_mega_bwd(&s, (const double *const *)hin, NULL, hdy, gref) == 0, "%s",
                  bench_last_error());

    printf("%s (%s)\n", label, cfg);
    const groups_t gy = {.width = (size_t)c->d, .parts = 1, .bounds = {0, (size_t)c->d}};
    check_tensor(label, "y", yref, y, nx, &gy, TOL, 0, 0);
    const double mu_scale = max_abs(gref[MEGA_IN_MU_Q], (size_t)c->z);
    const double zero_scale = max_abs(gref[MEGA_IN_BPROJ], desc[MEGA_IN_BPROJ].elems);
    for (int i = 0; i < n_in; i++) {
        const groups_t gg = grad_groups(i, c);
        char what[32];
        snprintf(what, sizeof what, "d%s", desc[i].name);
        check_tensor(label, what, gref[i], got[i], desc[i].elems, &gg, TOL,
                     i == MEGA_IN_MU_K ? mu_scale : 0, zero_scale);
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
    const case_t c = {1, 7, 64, 64, 128, DTYPE_BF16, CHUNK_MIN};
    shape_t s = case_shape(&c, PASS_FWD);
    tensor_desc_t desc[OP_MAX_INPUTS];
    io_t io;
    grad_io_t g;
    const int n_in = make_io(&s, desc, &io, &g, NULL, NULL);
    void *state = NULL;
    ck_assert_msg(mega_oracle_fp32_setup(&s, &io, &state) == 0, "setup: %s", bench_last_error());
    ck_assert_msg(mega_oracle_fp32_run(state, &io, 0) == 0, "run: %s", bench_last_error());
    ck_assert_msg(mega_oracle_fp32_run_bwd(state, &io, &g, 0) != 0,
                  "run_bwd after a pass-fwd setup ran");
    bench_clear_error();
    CK_CUDA_OK(cudaDeviceSynchronize());
    mega_oracle_fp32_teardown(state);
    free_io(n_in, &io, &g);
}
END_TEST

/* Not a comparison (no reference reaches it): the oracle at the length the harness needs it,
 * B = 1, T = 65536, d = 1024, z = 128, v = 2048, bf16, the chunk at auto (1024), the harness's
 * inputs: one training forward and two backwards timed by events (the first may include
 * cuBLAS's warm-up), every gradient checked finite (poisoned first: unwritten stays NaN).
 * Printed for the report. */
START_TEST(oracle_bwd_long_sequence) {
    const case_t c = {1, 65536, 1024, 128, 2048, DTYPE_BF16, SETTING_AUTO};
    shape_t s = case_shape(&c, PASS_FWDBWD);
    const char *why = mega_oracle_fp32_supports(&s);
    ck_assert_msg(why == NULL, "supports: %s", why ? why : "");
    tensor_desc_t desc[OP_MAX_INPUTS];
    io_t io;
    grad_io_t g;
    const int n_in = make_io(&s, desc, &io, &g, NULL, NULL);
    void *state = NULL;
    ck_assert_msg(mega_oracle_fp32_setup(&s, &io, &state) == 0, "setup: %s", bench_last_error());
    for (int i = 0; i < n_in; i++)
        ck_assert_int_eq(gpu_poison(g.grad[i], desc[i].elems * sizeof(float), 0), 0);
    cudaEvent_t ev[4];
    for (int k = 0; k < 4; k++) CK_CUDA_OK(cudaEventCreate(&ev[k]));
    CK_CUDA_OK(cudaEventRecord(ev[0], 0));
    ck_assert_msg(mega_oracle_fp32_run(state, &io, 0) == 0, "run: %s", bench_last_error());
    CK_CUDA_OK(cudaEventRecord(ev[1], 0));
    ck_assert_msg(mega_oracle_fp32_run_bwd(state, &io, &g, 0) == 0, "run_bwd: %s",
                  bench_last_error());
    CK_CUDA_OK(cudaEventRecord(ev[2], 0));
    ck_assert_msg(mega_oracle_fp32_run_bwd(state, &io, &g, 0) == 0, "run_bwd: %s",
                  bench_last_error());
    CK_CUDA_OK(cudaEventRecord(ev[3], 0));
    CK_CUDA_OK(cudaEventSynchronize(ev[3]));
    float ms[3];
    for (int k = 0; k < 3; k++) CK_CUDA_OK(cudaEventElapsedTime(&ms[k], ev[k], ev[k + 1]));
    printf("timing mega/oracle_fp32 B=%d T=%d d=%d z=%d v=%d c=%d bf16: training fwd %.1f ms, "
           "bwd %.1f ms (first), %.1f ms (second)\n",
           c.B, c.T, c.d, c.z, c.v, mega_chunk(&s), ms[0], ms[1], ms[2]);
    for (int i = 0; i < n_in; i++) {
        unsigned long long bad = 0;
        ck_assert_int_eq(gpu_count_nonfinite(g.grad[i], desc[i].elems, DTYPE_F32, &bad, 0), 0);
        ck_assert_msg(bad == 0, "d%s: %llu non-finite of %zu", desc[i].name, bad, desc[i].elems);
    }
    for (int k = 0; k < 4; k++) CK_CUDA_OK(cudaEventDestroy(ev[k]));
    mega_oracle_fp32_teardown(state);
    free_io(n_in, &io, &g);
}
END_TEST

int main(void) {
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("SKIP: no CUDA device\n");
        return 77;
    }
    Suite *su = suite_create("gpu_oracle_mega_bwd");
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
