/* test_gpu_grad_conv.c: the backward of long_conv/fast and both short_long_conv forms against
 * the double references (harness/ref_grad_conv.c), through the variants' own entry points
 * (setup with pass = bwd, run, run_bwd twice), independent of the harness's runner.  Exit 77
 * (skipped) when no CUDA device is present.
 *
 * Shapes: T = 1, 3, 37, 130 (the Toeplitz path for 16-bit runs), 2048 (Toeplitz: v5 at B = 17,
 * mma.sync at B = 3), 2100 (the FFT in one block: dK by the fused per-channel kernel up to
 * here), 4500 and 9000 (clusters of 2: dK from the row spectra), 20000 (a cluster of 4);
 * B = 1, 3, 17 (odd B: the forward engine's channel pairs in the dX run, the fused dK kernel's
 * lone last row); d = 3..8; bf16, fp16, fp32;
 * then some settings forced (every Toeplitz kernel, the FFT at short T, no channel pairs).
 * Inputs and dY are seeded random, never zero, rounded to their storage type (the references
 * see exactly what the GPU sees); every gradient is poisoned with NaN before each run_bwd, so
 * a gradient not written, or accumulated into, fails.  Last, informal timings at the benchmark's
 * shapes (printed, not checked).
 *
 * Tolerances (normwise per row, verify_compare: |err| / max(|ref|, rms of its row)):
 *   dX: verify_tolerance(dtype) for long_conv (the forward's own engine on dY reversed: the
 *       forward's error, one rounding to the run dtype); twice that for short_long_conv (dU is
 *       rounded to the run dtype before SiLU' and the 3-tap correlation, dX rounded again).
 *   dK, dk_long, dk3b, dkm: TOL_SPECTRAL = 2e-4 whatever the run dtype: the inputs are exact
 *       (x or u in fp32, dY already rounded), so only fp32 arithmetic errs: the FFTs of length
 *       N <= 65536 err by ~eps log2 N = 1e-6 of the spectra's norm, and summing B spectra
 *       in fp32 adds ~B eps relative to sum_b |X_b||DY_b|, which for random rows is ~sqrt(B)
 *       times the sum's own norm: ~1e-6 at B = 17.  dK[j] sums B (T - j) products; its row's
 *       rms is dominated by small j, where the sum is largest, and the normwise test judges
 *       the small late taps against that, as the FFT's error is spread over all taps.  A wrong
 *       value is off by O(1) of the row's rms.
 *   dk3: 2 verify_tolerance(dtype), at least TOL_SPECTRAL: a sum of B T products x dpre whose
 *       dpre carries dU's rounding to the run dtype (independent errors, averaging down). */
#include <check.h>
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_check.h"
#include "ref_grad_conv.h"
#include "settings.h"
#include "tensor_init.h"
#include "variant.h"
#include "verify.h"

#define TOL_SPECTRAL 2e-4

static const variant_t *find_variant(const char *name) {
    for (int i = 0; i < N_VARIANTS; i++)
        if (!strcmp(VARIANTS[i].name, name)) return &VARIANTS[i];
    return NULL;
}

/* uniform in (-1, 1), never 0 (splitmix64) */
static double rnd(uint64_t *st) {
    uint64_t z = (*st += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return ((double)(z >> 40) + 0.5) / (double)(1ULL << 23) - 1.0;
}

static float round_to(float v, dtype_t dt) {
    if (dt == DTYPE_BF16) return ti_bf16_to_float(ti_bf16_bits(v));
    if (dt == DTYPE_F16) return ti_f16_to_float(ti_f16_bits(v));
    return v;
}

/* a device tensor of n values of dt made from host doubles h (already representable in dt) */
static void *upload(const double *h, size_t n, dtype_t dt) {
    const size_t es = dtype_size(dt);
    unsigned char *buf = malloc(n * es);
    ck_assert_ptr_nonnull(buf);
    for (size_t i = 0; i < n; i++) {
        const float f = (float)h[i];
        if (dt == DTYPE_BF16) {
            const uint16_t b = ti_bf16_bits(f);
            memcpy(buf + 2 * i, &b, 2);
        } else if (dt == DTYPE_F16) {
            const uint16_t b = ti_f16_bits(f);
            memcpy(buf + 2 * i, &b, 2);
        } else {
            memcpy(buf + 4 * i, &f, 4);
        }
    }
    void *d = NULL;
    ck_assert_int_eq(cudaMalloc(&d, n * es), cudaSuccess);
    ck_assert_int_eq(cudaMemcpy(d, buf, n * es, cudaMemcpyHostToDevice), cudaSuccess);
    free(buf);
    return d;
}

static float *download(const void *d, size_t n, dtype_t dt) {
    const size_t es = dtype_size(dt);
    unsigned char *buf = malloc(n * es);
    float *out = malloc(n * sizeof(float));
    ck_assert(buf && out);
    ck_assert_int_eq(cudaMemcpy(buf, d, n * es, cudaMemcpyDeviceToHost), cudaSuccess);
    for (size_t i = 0; i < n; i++) {
        uint16_t b;
        if (dt == DTYPE_BF16) {
            memcpy(&b, buf + 2 * i, 2);
            out[i] = ti_bf16_to_float(b);
        } else if (dt == DTYPE_F16) {
            memcpy(&b, buf + 2 * i, 2);
            out[i] = ti_f16_to_float(b);
        } else {
            memcpy(&out[i], buf + 4 * i, 4);
        }
    }
    free(buf);
    return out;
}

/* values rounded to dt: scale u, or (decay > 0) scale u exp(-j / decay), j = i % row */
static double *make(size_t n, dtype_t dt, double scale, double decay, int row, uint64_t *st) {
    double *h = malloc((n ? n : 1) * sizeof(double));
    ck_assert_ptr_nonnull(h);
    for (size_t i = 0; i < n; i++) {
        double v = scale * rnd(st);
        if (decay > 0) v *= exp(-(double)(i % (size_t)row) / decay);
        h[i] = round_to((float)v, dt);
    }
    return h;
}

static float got_at(void *ctx, size_t i) { return ((const float *)ctx)[i]; }

static void check_grad(const char *what, const char *label, const double *ref, const void *dgrad,
                       size_t n, size_t row, dtype_t dt, double tol) {
    float *got = download(dgrad, n, dt);
    const verify_result_t r = verify_compare(ref, n, row, got_at, got);
    free(got);
    ck_assert_msg(r.nonfinite == 0 && r.max_rel_err <= tol,
                  "%s %s: max_rel_err %.3g (tol %.3g) at %lld, %lld non-finite", label, what,
                  r.max_rel_err, tol, r.worst, r.nonfinite);
}

typedef struct {
    int T, B, d;
} case_t;

static const case_t CASES[] = {
    {1, 1, 4},     {1, 17, 5},   {3, 3, 6},     {37, 17, 8},  {130, 3, 7},   {2048, 3, 4},
    {2048, 17, 4}, {2100, 1, 5}, {4500, 17, 3}, {9000, 3, 4}, {20000, 1, 4},
};
#define N_CASES ((int)(sizeof CASES / sizeof CASES[0]))
static const dtype_t DTYPES[] = {DTYPE_BF16, DTYPE_F16, DTYPE_F32};

/* one variant at one shape: setup (pass bwd), run, then twice (poison, run_bwd, check) */
static void one_case(const char *vname, int is_slc, const case_t *c, dtype_t dt,
                     const settings_t *set, uint64_t seed) {
    const variant_t *v = find_variant(vname);
    ck_assert_msg(v && v->run_bwd, "%s: no backward", vname);
    shape_t s;
    memset(&s, 0, sizeof s);
    s.B = c->B;
    s.T = c->T;
    s.d = c->d;
    s.H = 1;
    s.causal = 1;
    s.dtype = dt;
    s.pass = PASS_BWD;
    s.set = set;
    char label[160], sw[96];
    settings_format(set, 1, sw, sizeof sw);
    snprintf(label, sizeof label, "%s %s T=%d B=%d d=%d %s", vname, dtype_name(dt), c->T, c->B,
             c->d, sw);
    if (v->supports(&s)) return;
    const int B = c->B, d = c->d, T = c->T, km = shape_km(T);
    const size_t nx = (size_t)B * d * T;
    uint64_t st = seed;
    /* inputs: x, then the kernels in the op's order (op.h descriptors) */
    const int n_in = is_slc ? 5 : 2;
    size_t len[5];
    double *h[5];
    len[0] = nx;
    h[0] = make(nx, dt, 1.0, 0, 1, &st);
    if (is_slc) {
        len[1] = (size_t)d * 3, len[2] = (size_t)d * T, len[3] = (size_t)d * 3,
        len[4] = (size_t)d * km;
        h[1] = make(len[1], DTYPE_F32, 0.5, 0, 1, &st);
        h[2] = make(len[2], DTYPE_F32, 0.5, 1.0 + T / 4.0, T, &st);
        h[3] = make(len[3], DTYPE_F32, 0.5, 0, 1, &st);
        h[4] = make(len[4], DTYPE_F32, 0.3, 0, 1, &st);
    } else {
        len[1] = (size_t)d * T;
        h[1] = make(len[1], DTYPE_F32, 0.5, 1.0 + T / 4.0, T, &st);
    }
    double *hdy = make(nx, dt, 1.0, 0, 1, &st);
    /* references */
    double *rg[5];
    for (int i = 0; i < n_in; i++) {
        rg[i] = malloc(len[i] * sizeof(double));
        ck_assert_ptr_nonnull(rg[i]);
    }
    if (is_slc)
        ck_assert_int_eq(ref_short_long_conv_bwd(B, d, T, h[0], h[1], h[2], h[3], h[4], hdy, rg[0],
                                                 rg[1], rg[2], rg[3], rg[4]),
                         0);
    else
        ck_assert_int_eq(ref_long_conv_bwd(B, d, T, h[0], h[1], hdy, rg[0], rg[1]), 0);
    /* device */
    io_t io;
    grad_io_t g;
    memset(&io, 0, sizeof io);
    memset(&g, 0, sizeof g);
    io.shape = &s;
    io.n_in = n_in;
    for (int i = 0; i < n_in; i++) io.in[i] = upload(h[i], len[i], i == 0 ? dt : DTYPE_F32);
    ck_assert_int_eq(cudaMalloc(&io.out, nx * dtype_size(dt)), cudaSuccess);
    g.dy = upload(hdy, nx, dt);
    for (int i = 0; i < n_in; i++)
        ck_assert_int_eq(cudaMalloc(&g.grad[i], len[i] * dtype_size(i == 0 ? dt : DTYPE_F32)),
                         cudaSuccess);
    void *state = NULL;
    ck_assert_msg(v->setup(&s, &io, &state) == 0, "%s: setup: %s", label, bench_last_error());
    ck_assert_msg(v->run(state, &io, 0) == 0, "%s: run: %s", label, bench_last_error());
    for (int rep = 0; rep < 2; rep++) {
        for (int i = 0; i < n_in; i++)
            ck_assert_int_eq(
                cudaMemset(g.grad[i], 0xff, len[i] * dtype_size(i == 0 ? dt : DTYPE_F32)),
                cudaSuccess);
        ck_assert_msg(v->run_bwd(state, &io, &g, 0) == 0, "%s: run_bwd: %s", label,
                      bench_last_error());
        const cudaError_t e = cudaDeviceSynchronize();
        ck_assert_msg(e == cudaSuccess, "%s: %s", label, cudaGetErrorString(e));
        const double tx = verify_tolerance(dt) * (is_slc ? 2.0 : 1.0);
        check_grad("dX", label, rg[0], g.grad[0], nx, (size_t)T, dt, tx);
        if (is_slc) {
            const double t3 = fmax(2.0 * verify_tolerance(dt), TOL_SPECTRAL);
            check_grad("dk3", label, rg[1], g.grad[1], len[1], 3, DTYPE_F32, t3);
            check_grad("dk_long", label, rg[2], g.grad[2], len[2], (size_t)T, DTYPE_F32,
                       TOL_SPECTRAL);
            check_grad("dk3b", label, rg[3], g.grad[3], len[3], 3, DTYPE_F32, TOL_SPECTRAL);
            check_grad("dkm", label, rg[4], g.grad[4], len[4], (size_t)km, DTYPE_F32, TOL_SPECTRAL);
        } else {
            check_grad("dK", label, rg[1], g.grad[1], len[1], (size_t)T, DTYPE_F32, TOL_SPECTRAL);
        }
    }
    char cfg[256];
    v->config(state, cfg, sizeof cfg);
    ck_assert_msg(strstr(cfg, " bwd "), "%s: config '%s' has no backward words", label, cfg);
    printf("ok %s: %s\n", label, cfg);
    v->teardown(state);
    for (int i = 0; i < n_in; i++) {
        cudaFree((void *)io.in[i]);
        cudaFree(g.grad[i]);
        free(h[i]);
        free(rg[i]);
    }
    cudaFree(io.out);
    cudaFree((void *)g.dy);
    free(hdy);
}

/* a settings_t of v's table, all auto but name = value (name NULL: all auto) */
static settings_t settings_with(const char *vname, const char *name, int value) {
    settings_t s;
    memset(&s, 0, sizeof s);
    const variant_t *v = find_variant(vname);
    s.def = v->settings;
    s.n = setting_defs_count(v->settings);
    for (int i = 0; i < s.n; i++) {
        s.val[i] = SETTING_AUTO;
        if (name && !strcmp(s.def[i].name, name)) {
            s.val[i] = value;
            s.user_set |= 1u << i;
        }
    }
    return s;
}

static void all_cases(const char *vname, int is_slc) {
    const settings_t none = settings_with(vname, NULL, 0);
    for (int k = 0; k < N_CASES; k++)
        for (int t = 0; t < 3; t++)
            one_case(vname, is_slc, &CASES[k], DTYPES[t], &none, 1000 + 7 * k + t);
    /* forced paths: each Toeplitz kernel, the FFT at Toeplitz lengths, no channel pairs */
    static const struct {
        const char *name;
        int value;
    } FORCED[] = {
        {"lct_version", 3}, {"lct_version", 4}, {"lcf_toeplitz_max_t", 0}, {"lcf_xpair", 0}};
    static const case_t SMALL[] = {{130, 3, 5}, {2048, 17, 4}, {37, 1, 3}};
    for (int f = 0; f < 4; f++) {
        const settings_t one = settings_with(vname, FORCED[f].name, FORCED[f].value);
        for (int k = 0; k < 3; k++) one_case(vname, is_slc, &SMALL[k], DTYPE_BF16, &one, 77 + k);
    }
}

/* ---- timing at the benchmark's shapes (no check: numbers for the report) ----------------------
 * d = 1024, 65536 tokens a point (B = 65536 / T), bf16, every input and dY a finite constant
 * pattern: the median of 11 of run() and of run_bwd() alone, by CUDA events on one stream, as
 * an informal number until the harness times --pass bwd / fwdbwd itself. */
static int cmp_float(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static float median_ms(const variant_t *v, void *state, const io_t *io, const grad_io_t *g, int bwd,
                       cudaStream_t st) {
    enum { REPS = 11 };
    float ms[REPS];
    cudaEvent_t e0, e1;
    ck_assert_int_eq(cudaEventCreate(&e0), cudaSuccess);
    ck_assert_int_eq(cudaEventCreate(&e1), cudaSuccess);
    for (int r = 0; r < REPS; r++) {
        ck_assert_int_eq(cudaEventRecord(e0, st), cudaSuccess);
        const int rc = bwd ? v->run_bwd(state, io, g, st) : v->run(state, io, st);
        ck_assert_msg(rc == 0, "%s: %s", v->name, bench_last_error());
        ck_assert_int_eq(cudaEventRecord(e1, st), cudaSuccess);
        ck_assert_int_eq(cudaEventSynchronize(e1), cudaSuccess);
        ck_assert_int_eq(cudaEventElapsedTime(&ms[r], e0, e1), cudaSuccess);
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    qsort(ms, REPS, sizeof ms[0], cmp_float);
    return ms[REPS / 2];
}

static void time_one(const char *vname, int is_slc, int T) {
    const variant_t *v = find_variant(vname);
    ck_assert_ptr_nonnull(v);
    shape_t s;
    memset(&s, 0, sizeof s);
    s.B = 65536 / T;
    s.T = T;
    s.d = 1024;
    s.H = 1;
    s.causal = 1;
    s.dtype = DTYPE_BF16;
    s.pass = PASS_FWDBWD;
    const size_t nx = (size_t)s.B * s.d * T;
    const int n_in = is_slc ? 5 : 2;
    size_t bytes[5];
    bytes[0] = nx * 2;
    if (is_slc) {
        bytes[1] = (size_t)s.d * 3 * 4, bytes[2] = (size_t)s.d * T * 4, bytes[3] = bytes[1];
        bytes[4] = (size_t)s.d * shape_km(T) * 4;
    } else {
        bytes[1] = (size_t)s.d * T * 4;
    }
    io_t io;
    grad_io_t g;
    memset(&io, 0, sizeof io);
    memset(&g, 0, sizeof g);
    io.shape = &s;
    io.n_in = n_in;
    void *dy = NULL;
    /* 0x3c bytes: 0.0115 in bf16 and in fp32, finite through every step */
    for (int i = 0; i < n_in; i++) {
        void *p = NULL;
        ck_assert_int_eq(cudaMalloc(&p, bytes[i]), cudaSuccess);
        ck_assert_int_eq(cudaMemset(p, 0x3c, bytes[i]), cudaSuccess);
        io.in[i] = p;
        ck_assert_int_eq(cudaMalloc(&g.grad[i], bytes[i]), cudaSuccess);
    }
    ck_assert_int_eq(cudaMalloc(&io.out, nx * 2), cudaSuccess);
    ck_assert_int_eq(cudaMalloc(&dy, nx * 2), cudaSuccess);
    ck_assert_int_eq(cudaMemset(dy, 0x3c, nx * 2), cudaSuccess);
    g.dy = dy;
    cudaStream_t st;
    ck_assert_int_eq(cudaStreamCreate(&st), cudaSuccess);
    void *state = NULL;
    ck_assert_msg(v->setup(&s, &io, &state) == 0, "%s T=%d: setup: %s", vname, T,
                  bench_last_error());
    ck_assert_int_eq(v->run(state, &io, st), 0);
    ck_assert_int_eq(v->run_bwd(state, &io, &g, st), 0);
    const float f = median_ms(v, state, &io, &g, 0, st), b = median_ms(v, state, &io, &g, 1, st);
    char cfg[256];
    v->config(state, cfg, sizeof cfg);
    printf("timing %s bf16 d=1024 T=%d B=%d: fwd %.3f ms, bwd %.3f ms, fwd+bwd %.3f ms (%s)\n",
           vname, T, s.B, f, b, f + b, cfg);
    v->teardown(state);
    cudaStreamDestroy(st);
    for (int i = 0; i < n_in; i++) {
        cudaFree((void *)io.in[i]);
        cudaFree(g.grad[i]);
    }
    cudaFree(io.out);
    cudaFree(dy);
}

START_TEST(timing_benchmark_shapes) {
    static const int TS[] = {1024, 8192, 65536};
    for (int k = 0; k < 3; k++) {
        time_one("long_conv/fast", 0, TS[k]);
        time_one("short_long_conv/branches", 1, TS[k]);
        time_one("short_long_conv/reparam", 1, TS[k]);
    }
}
END_TEST

START_TEST(long_conv_fast_bwd) { all_cases("long_conv/fast", 0); }
END_TEST
START_TEST(short_long_conv_reparam_bwd) { all_cases("short_long_conv/reparam", 1); }
END_TEST
START_TEST(short_long_conv_branches_bwd) { all_cases("short_long_conv/branches", 1); }
END_TEST

int main(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
        printf("SKIP: no CUDA device\n");
        return 77;
    }
    Suite *s = suite_create("gpu_grad_conv");
    TCase *tc = tcase_create("gpu");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, long_conv_fast_bwd);
    tcase_add_test(tc, short_long_conv_reparam_bwd);
    tcase_add_test(tc, short_long_conv_branches_bwd);
    tcase_add_test(tc, timing_benchmark_shapes);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK); /* a forked child cannot use CUDA */
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
