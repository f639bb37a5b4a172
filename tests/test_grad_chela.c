/* test_grad_chela.c: the CHELA layer's double backward (ref_grad_chela.h) against finite
 * differences of its own double forward, and that forward against the op's reference
 * ref_chela (ref_chela.c, written independently).
 *
 * Inputs are the op's own seeded fills (inputs_make: the tensors and magnitudes ops.c
 * describes, gains near 1, decaying long kernels), read as doubles; the upstream gradient
 * dY is seeded uniform in +-[0.05, 1].  L = sum(dY . y) has dL/dp = what ref_chela_bwd
 * returns for dY, so every element p of every input tensor is compared with the
 * fourth-order central difference
 *   fd = (8 (L(p+h) - L(p-h)) - (L(p+2h) - L(p-2h))) / 12h,  h = FD_STEP = 1e-4,
 * and accepted when |grad - fd| <= FD_ABS + FD_REL |fd| = 1e-8 + 1e-7 |fd|.
 *
 * Why not the plain two-point difference: at these shapes the attention output before its
 * RMSNorm has an rms as small as 5e-4 on some tokens, below sqrt(CHELA_RMS_EPS) = 1e-3, so
 * the norm works where it bends hardest and L has large higher derivatives in mu_k (which
 * moves every key at once).  The two-point difference at h = 1e-5 was off by 3.2e-7 there
 * (shrinking as h^2; at h = 1e-6 rounding, ~3e-9, takes over), too close to anything
 * that still tells a small error from noise.  The four-point one's truncation is
 * O(h^4 L^(5)): observed worst 1.5e-9 (dmu_k, T = 7), every other tensor <= 1.6e-10
 * (mostly ~1e-11, rounding: eps |L's terms| / h), i.e. <= 3% of the tolerance.  A wrong
 * term, sign or scale is off by O(|grad|) (each tensor's largest |grad|: 9e-3 .. 3.7):
 * flipping the sign of the gate's (H - X) term, of LayerNorm's x^ term, halving RMSNorm's
 * projection term, or scaling dkappa_q by 1.001 each failed every shape (errors 9e-6 ..
 * 1.2), and test_fd_detects_errors keeps checking that a gradient element moved by 1e-4 of
 * its tensor's largest |grad| is flagged. */
#include <stdio.h>

#include "ref_grad_chela.h"
#include "ref_test_util.h"

#define FD_STEP 1e-4
#define FD_ABS 1e-8
#define FD_REL 1e-7

/* The inputs' names, for messages (ops.c's names, CHELA_IN_* order). */
static const char *const IN_NAME[CHELA_N_IN] = {
    "x",      "ln1_g", "ln1_b",   "k3",   "k_long",  "k3b", "km",  "w_proj", "b_proj", "kappa_q",
    "mu_q",   "kappa_k", "mu_k",  "w_v",  "b_v",     "u_h", "b_h", "ln2_g",  "ln2_b",  "w1",
    "w2"};

/* ---------------- problems ---------------- */

typedef struct {
    shape_t s;
    size_t n[CHELA_N_IN], n_y;
    double *in[CHELA_N_IN], *grad[CHELA_N_IN];
    double *dY, *y; /* upstream gradient and forward scratch, [B,T,d] */
} problem_t;

static uint64_t xorshift64(uint64_t *state) {
    uint64_t v = *state;
    v ^= v << 13;
    v ^= v >> 7;
    v ^= v << 17;
    return *state = v;
}

/* Values in +-[0.05, 1]: no upstream gradient element is inert. */
static void fill_random(double *a, size_t n, uint64_t seed) {
    uint64_t st = seed ? seed : 1;
    for (size_t i = 0; i < n; i++) {
        const uint64_t r = xorshift64(&st);
        const double mag = 0.05 + 0.95 * (double)(r >> 11) / 9007199254740992.0; /* 2^53 */
        a[i] = (r & 1) ? -mag : mag;
    }
}

static shape_t chela_shape(int B, int T, int d, int z, int v) {
    return (shape_t){.B = B, .T = T, .d = d, .z = z, .v = v, .causal = 1, .dtype = DTYPE_F32};
}

/* The op's inputs for seed, as doubles; the float images stay in *x when x is not NULL. */
static void problem_make(problem_t *p, shape_t s, uint64_t seed, inputs_t *x) {
    memset(p, 0, sizeof *p);
    p->s = s;
    inputs_t own;
    inputs_t *fx = x ? x : &own;
    inputs_make(OP_CHELA, &s, seed, fx);
    ck_assert_int_eq(fx->n, CHELA_N_IN);
    for (int i = 0; i < CHELA_N_IN; i++) {
        p->n[i] = ref_chela_in_elems(&s, i);
        ck_assert_msg(p->n[i] == fx->desc[i].elems, "%s: %zu elements, ops.c says %zu",
                      IN_NAME[i], p->n[i], fx->desc[i].elems);
        ck_assert_str_eq(fx->desc[i].name, IN_NAME[i]);
        p->in[i] = dalloc(p->n[i]);
        p->grad[i] = dalloc(p->n[i]);
        to_double(fx->t[i], p->n[i], p->in[i]);
    }
    if (!x) inputs_free(&own);
    p->n_y = (size_t)s.B * s.T * s.d;
    p->dY = dalloc(p->n_y);
    p->y = dalloc(p->n_y);
    fill_random(p->dY, p->n_y, seed * 0x9E3779B97F4A7C15ull);
}

static void problem_free(problem_t *p) {
    for (int i = 0; i < CHELA_N_IN; i++) {
        free(p->in[i]);
        free(p->grad[i]);
    }
    free(p->dY);
    free(p->y);
}

static const double *const *ins(const problem_t *p) { return (const double *const *)p->in; }

static void backward(problem_t *p) {
    ck_assert_msg(ref_chela_bwd(&p->s, ins(p), NULL, p->dY, p->grad) == 0, "%s",
                  bench_last_error());
}

static double loss(problem_t *p) {
    ck_assert_msg(ref_chela_fwd_d(&p->s, ins(p), p->y) == 0, "%s", bench_last_error());
    double L = 0.0;
    for (size_t i = 0; i < p->n_y; i++) L += p->dY[i] * p->y[i];
    return L;
}

/* ---------------- finite differences ---------------- */

static double loss_of(void *p) { return loss((problem_t *)p); }

/* Compares grad[ti] with central differences over every element of tensor ti; keeps the
 * worst in *res (without asserting, so a caller can also expect a failure). */
static void fd_tensor(problem_t *p, int ti, const double *grad, fd_result_t *res) {
    fd_compare(p->in[ti], p->n[ti], ti, grad, loss_of, p, FD_STEP, FD_ABS, FD_REL, res);
}

static void fd_assert(const problem_t *p, const fd_result_t *r, const char *what) {
    ck_assert_msg(r->worst <= 1.0,
                  "%s (B %d T %d d %d z %d v %d): d%s[%zu] backward %.12g, finite difference "
                  "%.12g: error %.3g > %.1g + %.1g |fd|",
                  what, p->s.B, p->s.T, p->s.d, p->s.z, p->s.v, IN_NAME[r->tensor], r->elem, r->g,
                  r->fd, fabs(r->g - r->fd), FD_ABS, FD_REL);
}

/* B <= 2, T <= 16, d <= 8: T = 16 gives k_m = 3 (km overlaps k3b's taps), T = 7 gives
 * k_m = 1 and v != 2d, T = 2 leaves k3's and k3b's last tap unreachable (gradient 0). */
static const int SHAPES[][5] = {{2, 16, 8, 4, 8}, {1, 7, 4, 2, 6}, {2, 2, 3, 3, 5}};
#define N_SHAPES ((int)(sizeof SHAPES / sizeof SHAPES[0]))

static shape_t shape_at(int i) {
    return chela_shape(SHAPES[i][0], SHAPES[i][1], SHAPES[i][2], SHAPES[i][3], SHAPES[i][4]);
}

START_TEST(test_fd_every_input) {
    problem_t p;
    problem_make(&p, shape_at(_i), SEED + 100 + (uint64_t)_i, NULL);
    backward(&p);
    fd_result_t all = {0};
    double scale = 0.0;
    for (int ti = 0; ti < CHELA_N_IN; ti++) {
        fd_result_t r = {0};
        fd_tensor(&p, ti, p.grad[ti], &r);
        fd_assert(&p, &r, "finite differences");
        ck_assert_msg(max_abs(p.grad[ti], p.n[ti]) > 0.0, "d%s is all zero", IN_NAME[ti]);
        scale = fmax(scale, max_abs(p.grad[ti], p.n[ti]));
        if (r.worst > all.worst) all = r;
        all.worst_abs = fmax(all.worst_abs, r.worst_abs);
    }
    printf("chela bwd B %d T %d d %d z %d v %d: worst |grad - fd| %.3g (%.3g of the "
           "tolerance, at d%s), largest |grad| %.3g\n",
           p.s.B, p.s.T, p.s.d, p.s.z, p.s.v, all.worst_abs, all.worst, IN_NAME[all.tensor],
           scale);
    problem_free(&p);
}
END_TEST

/* The comparison is sharp enough to see a small error: one element of each gradient,
 * changed by 1e-4 of the largest |grad| of its tensor, must fail it. */
START_TEST(test_fd_detects_errors) {
    problem_t p;
    problem_make(&p, shape_at(1), SEED + 200, NULL);
    backward(&p);
    for (int ti = 0; ti < CHELA_N_IN; ti++) {
        const size_t j = p.n[ti] / 2;
        double *bad = dalloc(p.n[ti]);
        memcpy(bad, p.grad[ti], p.n[ti] * sizeof(double));
        bad[j] += 1e-4 * max_abs(p.grad[ti], p.n[ti]);
        fd_result_t r = {0};
        fd_tensor(&p, ti, bad, &r);
        ck_assert_msg(r.worst > 1.0 && r.elem == j,
                      "d%s[%zu] off by 1e-4 relative passed (worst %.3g at %zu)", IN_NAME[ti], j,
                      r.worst, r.elem);
        free(bad);
    }
    problem_free(&p);
}
END_TEST

/* ---------------- the forward against ref_chela ---------------- */

/* ref_chela (float inputs, streaming, merged kernel, state-form attention) and the double
 * forward (branches, pairwise attention) on the same values: both are double throughout,
 * so they differ only by rounding order. */
START_TEST(test_forward_matches_ref_chela) {
    static const int extra[5] = {2, 37, 16, 8, 32}; /* test_reference_layers.c's shape */
    const int *dims = _i < N_SHAPES ? SHAPES[_i] : extra;
    const shape_t s = chela_shape(dims[0], dims[1], dims[2], dims[3], dims[4]);
    problem_t p;
    inputs_t x;
    problem_make(&p, s, SEED + 300 + (uint64_t)_i, &x);
    double *want = run_full(OP_CHELA, &s, &x);
    ck_assert_int_eq(ref_chela_fwd_d(&s, ins(&p), p.y), 0);
    assert_close(p.y, want, p.n_y, 1e-12, "double forward vs ref_chela");
    double diff = 0.0;
    for (size_t i = 0; i < p.n_y; i++) diff = fmax(diff, fabs(p.y[i] - want[i]));
    printf("chela fwd B %d T %d d %d: max |y - ref_chela| %.3g (max |y| %.3g)\n", s.B, s.T, s.d,
           diff, max_abs(want, p.n_y));
    free(want);
    inputs_free(&x);
    problem_free(&p);
}
END_TEST

/* Its saved stages against ref_chela_stages for batch 1, so a disagreement is located. */
START_TEST(test_saved_stages_match) {
    const shape_t s = shape_at(0);
    problem_t p;
    inputs_t x;
    problem_make(&p, s, SEED + 400, &x);
    chela_acts_t a;
    ck_assert_int_eq(ref_chela_acts_alloc(&s, &a), 0);
    ck_assert_int_eq(ref_chela_fwd_save(&s, ins(&p), &a), 0);
    chela_stages_t st;
    const int b = 1;
    ck_assert_int_eq(ref_chela_stages(&s, cin(&x), b, s.T, &st), 0);
    const size_t T = (size_t)s.T, d = (size_t)s.d, z = (size_t)s.z, v = (size_t)s.v;
    const size_t np = (size_t)a.np, o = (size_t)b * T;
    assert_close(a.x_ln + o * d, st.x_ln, T * d, 1e-13, "X~");
    assert_close(a.u + o * d, st.u, T * d, 1e-13, "U");
    assert_close(a.zc + o * d, st.zc, T * d, 1e-13, "Z");
    assert_close(a.proj + o * np, st.proj, T * np, 1e-13, "proj");
    assert_close(a.q + o * z, st.q, T * z, 1e-13, "Q");
    assert_close(a.k + o * z, st.k, T * z, 1e-13, "K");
    assert_close(a.val + o * v, st.val, T * v, 1e-13, "V");
    assert_close(a.o_raw + o * v, st.o_raw, T * v, 1e-12, "O before the norm");
    assert_close(a.o + o * v, st.o, T * v, 1e-12, "O");
    assert_close(a.y + o * d, st.y, T * d, 1e-12, "Y");
    assert_close(a.y_out + o * d, st.y_out, T * d, 1e-12, "Y'");
    ref_chela_stages_free(&st);
    ref_chela_acts_free(&a);
    inputs_free(&x);
    problem_free(&p);
}
END_TEST

/* ---------------- structure ---------------- */

/* The reparameterisation: the three branches see the same U, so dk3b and dkm are the first
 * taps of dk_long (the merged kernel's gradient), exactly; taps that reach no output
 * (j >= T) have gradient 0.  The finite differences check each branch independently. */
START_TEST(test_branch_kernels_are_slices) {
    problem_t p;
    problem_make(&p, shape_at(_i), SEED + 500 + (uint64_t)_i, NULL);
    backward(&p);
    const int T = p.s.T, km = shape_km(T);
    const double *dkl = p.grad[CHELA_IN_KLONG];
    for (int c = 0; c < p.s.d; c++) {
        for (int j = 0; j < 3; j++)
            ck_assert_double_eq(p.grad[CHELA_IN_K3B][c * 3 + j],
                                j < T ? dkl[(size_t)c * T + j] : 0.0);
        for (int j = 0; j < km; j++)
            ck_assert_double_eq(p.grad[CHELA_IN_KM][c * km + j],
                                j < T ? dkl[(size_t)c * T + j] : 0.0);
        for (int j = T; j < 3; j++) ck_assert_double_eq(p.grad[CHELA_IN_K3][c * 3 + j], 0.0);
    }
    problem_free(&p);
}
END_TEST

/* bwd(dY1 + 2 dY2) = bwd(dY1) + 2 bwd(dY2), and saved activations give the same bits as
 * the backward's own forward. */
START_TEST(test_linear_in_dY_and_saved_acts) {
    problem_t p;
    problem_make(&p, shape_at(0), SEED + 600, NULL);
    double *g1[CHELA_N_IN], *g2[CHELA_N_IN], *dY2 = dalloc(p.n_y), *dYs = dalloc(p.n_y);
    for (int i = 0; i < CHELA_N_IN; i++) g1[i] = dalloc(p.n[i]), g2[i] = dalloc(p.n[i]);
    fill_random(dY2, p.n_y, 0xBADC0DEull);
    for (size_t i = 0; i < p.n_y; i++) dYs[i] = p.dY[i] + 2.0 * dY2[i];
    chela_acts_t a;
    ck_assert_int_eq(ref_chela_acts_alloc(&p.s, &a), 0);
    ck_assert_int_eq(ref_chela_fwd_save(&p.s, ins(&p), &a), 0);
    ck_assert_int_eq(ref_chela_bwd(&p.s, ins(&p), &a, p.dY, g1), 0);
    backward(&p);
    for (int i = 0; i < CHELA_N_IN; i++)
        ck_assert_msg(memcmp(g1[i], p.grad[i], p.n[i] * sizeof(double)) == 0,
                      "d%s differs with saved activations", IN_NAME[i]);
    ck_assert_int_eq(ref_chela_bwd(&p.s, ins(&p), &a, dY2, g2), 0);
    ck_assert_int_eq(ref_chela_bwd(&p.s, ins(&p), &a, dYs, p.grad), 0);
    for (int i = 0; i < CHELA_N_IN; i++) {
        const double scale = max_abs(p.grad[i], p.n[i]);
        for (size_t j = 0; j < p.n[i]; j++) {
            const double want = g1[i][j] + 2.0 * g2[i][j];
            ck_assert_msg(fabs(p.grad[i][j] - want) <= 1e-13 * fmax(scale, 1.0),
                          "d%s[%zu] not linear in dY: %.17g vs %.17g", IN_NAME[i], j,
                          p.grad[i][j], want);
        }
        free(g1[i]);
        free(g2[i]);
    }
    ref_chela_acts_free(&a);
    free(dY2);
    free(dYs);
    problem_free(&p);
}
END_TEST

START_TEST(test_bad_shapes) {
    problem_t p;
    problem_make(&p, shape_at(2), SEED + 700, NULL);
    shape_t bad = p.s;
    bad.z = 0;
    bench_clear_error();
    ck_assert_int_eq(ref_chela_bwd(&bad, ins(&p), NULL, p.dY, p.grad), -1);
    ck_assert_ptr_nonnull(strstr(bench_last_error(), "chela"));
    ck_assert_int_eq(ref_chela_fwd_d(&bad, ins(&p), p.y), -1);
    chela_acts_t a;
    ck_assert_int_eq(ref_chela_acts_alloc(&bad, &a), -1);
    /* Activations of another shape are refused, not misread. */
    ck_assert_int_eq(ref_chela_acts_alloc(&p.s, &a), 0);
    bad = p.s;
    bad.T = 1;
    ck_assert_int_eq(ref_chela_bwd(&bad, ins(&p), &a, p.dY, p.grad), -1);
    ck_assert_int_eq(ref_chela_fwd_save(&bad, ins(&p), &a), -1);
    ref_chela_acts_free(&a);
    problem_free(&p);
}
END_TEST

static Suite *grad_chela_suite(void) {
    Suite *su = suite_create("grad_chela");
    TCase *fd = tcase_create("finite_differences");
    tcase_add_loop_test(fd, test_fd_every_input, 0, N_SHAPES);
    tcase_add_test(fd, test_fd_detects_errors);
    tcase_set_timeout(fd, 120);
    suite_add_tcase(su, fd);

    TCase *fw = tcase_create("forward");
    tcase_add_loop_test(fw, test_forward_matches_ref_chela, 0, N_SHAPES + 1);
    tcase_add_test(fw, test_saved_stages_match);
    suite_add_tcase(su, fw);

    TCase *st = tcase_create("structure");
    tcase_add_loop_test(st, test_branch_kernels_are_slices, 0, N_SHAPES);
    tcase_add_test(st, test_linear_in_dY_and_saved_acts);
    tcase_add_test(st, test_bad_shapes);
    suite_add_tcase(su, st);
    return su;
}

int main(void) {
    SRunner *sr = srunner_create(grad_chela_suite());
    srunner_run_all(sr, CK_ENV);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
