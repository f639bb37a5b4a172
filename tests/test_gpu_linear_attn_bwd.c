/* test_gpu_linear_attn_bwd.c: linear_attn/chunked's backward (kernels/linear_attn/bwd_mma.cu)
 * against the double-precision reference harness/ref_grad_attn.c (ref_linear_attn_bwd, itself
 * checked by central differences in test_grad_attn), through the variant's own entry points:
 * setup (pass bwd) / run / run_bwd, independent of the harness's sweep.
 *
 * Shapes chosen to break the tiling: T = 1, T below a chunk, T not a multiple of a chunk, one and
 * many segments (la_bwd_seg forced), B*H from 1 to 32, dk/dv 64/64 (one slice: dQ, dK written
 * directly), 128/256 and 128/2048 (several slices: fp32 atomics and the conversion), bf16 and
 * fp16, causal.  q, k, v, dO are seeded uniform in [-1, 1) (never zero), rounded to the dtype; the
 * reference sees the rounded values.  The gradients are poisoned with NaN before each backward,
 * which runs twice (a backward overwrites, never accumulates).
 *
 * Tolerance: the harness's (verify.c), normwise per row: |got - ref| / max(|ref|, rms(ref row))
 * <= 2^-6 (bf16) / 1e-2 (fp16) for every element of dQ, dK (rows of dk) and dV (rows of dv).
 * Expected error: the output rounding (bf16 2^-9) plus the 16-bit operands P, A (run dtype) and
 * the state (bf16 hi + lo, or fp16); not measured yet (no GPU where this was written).
 * Exit 77 (skipped) when no CUDA device is present. */
#include <check.h>
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_check.h"
#include "ref_grad.h"
#include "rng.h"
#include "settings.h"
#include "tensor_init.h"
#include "variant.h"
#include "verify.h"

typedef struct {
    int B, H, T, dk, dv;
    int seg; /* la_bwd_seg (tokens), or SETTING_AUTO */
} bwd_case;

static const bwd_case CASES[] = {
    {1, 1, 1, 64, 64, SETTING_AUTO},      {1, 1, 37, 64, 64, SETTING_AUTO},
    {2, 1, 64, 64, 64, SETTING_AUTO},     {1, 3, 130, 64, 64, SETTING_AUTO},
    {1, 2, 1000, 64, 64, 128},            {2, 16, 130, 64, 64, SETTING_AUTO},
    {1, 1, 5000, 64, 64, 256},            {1, 2, 130, 64, 128, 64},
    {1, 1, 130, 128, 256, SETTING_AUTO},  {2, 2, 1000, 128, 256, 192},
    {1, 1, 37, 128, 2048, SETTING_AUTO},  {1, 1, 1000, 128, 2048, 320},
    {1, 1, 5000, 128, 2048, SETTING_AUTO}, {1, 1, 5000, 128, 2048, 1024},
};
enum { N_CASES = sizeof CASES / sizeof CASES[0] };

static const variant_t *find_variant(const char *name) {
    for (int i = 0; i < N_VARIANTS; i++)
        if (!strcmp(VARIANTS[i].name, name)) return &VARIANTS[i];
    return NULL;
}

static int have_device(void) {
    int n = 0;
    return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

static float h16_to_float(uint16_t h, dtype_t dt) {
    return dt == DTYPE_BF16 ? ti_bf16_to_float(h) : ti_f16_to_float(h);
}

typedef struct {
    const uint16_t *h;
    dtype_t dt;
} got_ctx;
static float got_at(void *ctx, size_t i) {
    const got_ctx *g = (const got_ctx *)ctx;
    return h16_to_float(g->h[i], g->dt);
}

/* Fills n elements of tensor `id` (seeded) in the dtype and their values as doubles. */
static void fill(uint16_t *h, double *d, size_t n, dtype_t dt, uint32_t id) {
    for (size_t i = 0; i < n; i++) {
        const float f = rng_uniform(1234u, id, i);
        h[i] = dt == DTYPE_BF16 ? ti_bf16_bits(f) : ti_f16_bits(f);
        d[i] = h16_to_float(h[i], dt);
    }
}

static void run_case(const bwd_case *c, dtype_t dt) {
    const variant_t *var = find_variant("linear_attn/chunked");
    ck_assert_ptr_nonnull(var);
    ck_assert_ptr_nonnull(var->run_bwd);
    settings_t set;
    memset(&set, 0, sizeof set);
    set.def = var->settings;
    set.n = setting_defs_count(var->settings);
    for (int i = 0; i < set.n; i++)
        set.val[i] = !strcmp(set.def[i].name, "la_bwd_seg") ? c->seg : SETTING_AUTO;
    shape_t s;
    memset(&s, 0, sizeof s);
    s.B = c->B, s.H = c->H, s.T = c->T, s.dk = c->dk, s.dv = c->dv;
    s.causal = 1;
    s.dtype = dt;
    s.pass = PASS_BWD;
    s.set = &set;
    char what[160];
    snprintf(what, sizeof what, "B=%d H=%d T=%d dk=%d dv=%d seg=%d %s", c->B, c->H, c->T, c->dk,
             c->dv, c->seg, dt == DTYPE_BF16 ? "bf16" : "fp16");
    const char *why = var->supports(&s);
    ck_assert_msg(why == NULL, "%s: refused: %s", what, why);

    const size_t nk = (size_t)c->B * c->H * c->T * c->dk, nv = (size_t)c->B * c->H * c->T * c->dv;
    const size_t n_all = 2 * nk + 2 * nv;
    uint16_t *h = malloc(n_all * 2 + (2 * nk + nv) * 2);
    double *d = malloc((n_all + 2 * nk + nv) * sizeof(double));
    ck_assert(h && d);
    uint16_t *hq = h, *hk = hq + nk, *hv = hk + nk, *hdo = hv + nv, *hg = hdo + nv;
    double *q = d, *k = q + nk, *v = k + nk, *dO = v + nv, *rq = dO + nv, *rk = rq + nk,
           *rv = rk + nk;
    fill(hq, q, nk, dt, 11);
    fill(hk, k, nk, dt, 12);
    fill(hv, v, nv, dt, 13);
    fill(hdo, dO, nv, dt, 14);
    ck_assert_msg(ref_linear_attn_bwd(&s, q, k, v, dO, rq, rk, rv) == 0, "%s", bench_last_error());

    void *dbuf = NULL;
    ck_assert(cudaMalloc(&dbuf, (n_all + 2 * nk + 2 * nv) * 2) == cudaSuccess);
    uint16_t *dq_in = dbuf, *dk_in = dq_in + nk, *dv_in = dk_in + nk, *ddo = dv_in + nv;
    uint16_t *dout = ddo + nv, *gq = dout + nv, *gk = gq + nk, *gv = gk + nk;
    ck_assert(cudaMemcpy(dbuf, h, n_all * 2, cudaMemcpyHostToDevice) == cudaSuccess);

    io_t io;
    memset(&io, 0, sizeof io);
    io.shape = &s;
    io.n_in = 3;
    io.in[0] = dq_in, io.in[1] = dk_in, io.in[2] = dv_in;
    io.out = dout;
    grad_io_t g;
    memset(&g, 0, sizeof g);
    g.dy = ddo;
    g.grad[0] = gq, g.grad[1] = gk, g.grad[2] = gv;
    void *state = NULL;
    ck_assert_msg(var->setup(&s, &io, &state) == 0, "%s: setup: %s", what, bench_last_error());
    char config[256];
    var->config(state, config, sizeof config);
    ck_assert_msg(strstr(config, "bwd=recompute") != NULL, "%s: config '%s'", what, config);
    for (int rep = 0; rep < 2; rep++) {
        /* 0xff bytes: NaN in bf16 and fp16 */
        ck_assert(cudaMemset(gq, 0xff, (2 * nk + nv) * 2) == cudaSuccess);
        ck_assert_msg(var->run(state, &io, 0) == 0, "%s: run: %s", what, bench_last_error());
        ck_assert_msg(var->run_bwd(state, &io, &g, 0) == 0, "%s: run_bwd: %s", what,
                      bench_last_error());
        const cudaError_t e = cudaDeviceSynchronize();
        ck_assert_msg(e == cudaSuccess, "%s: %s", what, cudaGetErrorString(e));
    }
    ck_assert(cudaMemcpy(hg, gq, (2 * nk + nv) * 2, cudaMemcpyDeviceToHost) == cudaSuccess);
    var->teardown(state);
    cudaFree(dbuf);

    const double tol = verify_tolerance(dt);
    const char *names[3] = {"dQ", "dK", "dV"};
    const double *refs[3] = {rq, rk, rv};
    const uint16_t *gots[3] = {hg, hg + nk, hg + 2 * nk};
    const size_t ns[3] = {nk, nk, nv}, rows[3] = {(size_t)c->dk, (size_t)c->dk, (size_t)c->dv};
    for (int i = 0; i < 3; i++) {
        got_ctx ctx = {gots[i], dt};
        const verify_result_t r = verify_compare(refs[i], ns[i], rows[i], got_at, &ctx);
        printf("%-48s %s max_rel_err %.3e (tol %.3e) nonfinite %lld [%s]\n", what, names[i],
               r.max_rel_err, tol, (long long)r.nonfinite, config);
        ck_assert_msg(r.nonfinite == 0 && r.max_rel_err <= tol,
                      "%s: %s max_rel_err %.3e > %.3e (nonfinite %lld, worst element %lld)", what,
                      names[i], r.max_rel_err, tol, (long long)r.nonfinite, r.worst);
    }
    free(h);
    free(d);
}

START_TEST(bwd_bf16) { run_case(&CASES[_i], DTYPE_BF16); }
END_TEST

START_TEST(bwd_fp16) { run_case(&CASES[_i], DTYPE_F16); }
END_TEST

int main(void) {
    if (!have_device()) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    Suite *s = suite_create("gpu_linear_attn_bwd");
    TCase *tc = tcase_create("bwd");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, bwd_bf16, 0, N_CASES);
    tcase_add_loop_test(tc, bwd_fp16, 0, N_CASES);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK); /* a forked child cannot use CUDA */
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
