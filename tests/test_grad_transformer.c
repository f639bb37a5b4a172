/* test_grad_transformer.c: the Transformer layer's double forward and backward
 * (ref_grad_transformer.h) checked against ref_transformer.c and against central finite
 * differences of the forward.
 *
 * Inputs are the op's own (inputs_make: ops.c's describe and seeded fill, bf16-rounded
 * activations), so magnitudes are the benchmark's; converted to double once.  dY is a
 * seeded xorshift64* in [-1, 1), never zero.
 *
 * Finite differences of L = sum(dY . y), the fourth-order central stencil
 *   fd_j = (8 (L(+h) - L(-h)) - (L(+2h) - L(-2h))) / (12 h),  L(+h) = L(p + h e_j),
 * checked as |g_j - fd_j| <= FD_TOL * max(|fd_j|, FD_FLOOR).  Why four points: the plain
 * two-point difference has truncation h^2/6 |L'''| and rounding about eps sum|dY y| / h
 * (sum|dY y| is a few hundred here); no h made both small: its best, h = 1e-5, left a worst
 * error of 5.4e-7 at D = 64, too close to any tolerance worth having.  The four-point
 * stencil's truncation is O(h^4), so h = 1e-3 keeps rounding near 1e-12 / 1e-3 = 1e-9 and
 * truncation below it.  Observed worst error (relative, or absolute / FD_FLOOR): 6.1e-10
 * (d = 24, every element), 3.2e-9 (d = 64), 4.1e-9 (d = 128), against FD_TOL = 1e-7: a
 * margin of 25x.  A wrong gradient is off by far more: flipping one sign in the LayerNorm
 * backward, the GELU derivative, the FFN residual or one dK column, or scaling dW by 1.0001,
 * each failed every backward case (errors 1e-4 .. 3).
 *
 * Elements checked: at a tiny shape (d = 24: 3 heads of 8) every element of every tensor;
 * at the op's head width (D = 64, d = 64 and 128), of every tensor, the first, the last and
 * FD_SAMPLES seeded random elements (every element of the vectors there cost 4 forwards each,
 * ~1700 elements a shape: minutes under the sanitizers, and the tiny shape already covers
 * every element of every tensor). */
#include <stdio.h>

#include "ref_grad_transformer.h"
#include "ref_test_util.h"

#define FD_STEP 1e-3
#define FD_TOL 1e-7
#define FD_FLOOR 1e-2
#define FD_SAMPLES 24

static const char *const TF_NAMES[TRANSFORMER_N_IN] = {
    "x", "ln1_g", "ln1_b", "w_qkv", "b_qkv", "w_o", "b_o", "ln2_g", "ln2_b", "w1", "b1", "w2",
    "b2"};

/* xorshift64* in [-1, 1), zero redrawn; also gives indices. */
static uint64_t rng_next(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1Dull;
}
static double rng_uniform(uint64_t *s) {
    for (;;) {
        const double u = (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0;
        if (u != 0.0) return u;
    }
}

static shape_t tf_shape(int B, int T, int H, int D) {
    return (shape_t){.B = B, .T = T, .H = H, .dk = D, .dv = D, .d = H * D, .causal = 1,
                     .dtype = DTYPE_BF16};
}

/* One problem: the op's float inputs, their double copies, dY, gradients, forward scratch. */
typedef struct {
    shape_t s;
    inputs_t x;
    size_t n[TRANSFORMER_N_IN];
    double *in[TRANSFORMER_N_IN], *grad[TRANSFORMER_N_IN];
    size_t ny;
    double *dY, *y;
} problem_t;

static void problem_make(problem_t *p, shape_t s, uint64_t seed) {
    memset(p, 0, sizeof *p);
    p->s = s;
    inputs_make(OP_TRANSFORMER, &p->s, seed, &p->x);
    ck_assert_int_eq(p->x.n, TRANSFORMER_N_IN);
    for (int i = 0; i < TRANSFORMER_N_IN; i++) {
        p->n[i] = p->x.desc[i].elems;
        p->in[i] = dalloc(p->n[i]);
        p->grad[i] = dalloc(p->n[i]);
        to_double(p->x.t[i], p->n[i], p->in[i]);
    }
    p->ny = (size_t)s.B * s.T * s.d;
    ck_assert_uint_eq(p->n[TRANSFORMER_IN_X], p->ny);
    p->dY = dalloc(p->ny);
    p->y = dalloc(p->ny);
    uint64_t r = seed * 0x9E3779B97F4A7C15ull | 1;
    for (size_t i = 0; i < p->ny; i++) p->dY[i] = rng_uniform(&r);
}

static void problem_free(problem_t *p) {
    for (int i = 0; i < TRANSFORMER_N_IN; i++) {
        free(p->in[i]);
        free(p->grad[i]);
    }
    free(p->dY);
    free(p->y);
    inputs_free(&p->x);
}

static const double *const *din(const problem_t *p) { return (const double *const *)p->in; }

static double loss(problem_t *p) {
    ck_assert_msg(ref_transformer_fwd_d(&p->s, din(p), p->y, NULL) == 0, "%s",
                  bench_last_error());
    double L = 0.0;
    for (size_t i = 0; i < p->ny; i++) L += p->dY[i] * p->y[i];
    return L;
}

static void run_bwd(problem_t *p) {
    ref_transformer_acts_t acts;
    ck_assert_msg(ref_transformer_fwd_d(&p->s, din(p), p->y, &acts) == 0, "%s",
                  bench_last_error());
    ck_assert_msg(ref_transformer_bwd(&p->s, din(p), &acts, p->dY, p->grad) == 0, "%s",
                  bench_last_error());
    ref_transformer_acts_free(&acts);
}

/* Error of gradient element j of tensor i against its central difference; asserts it. */
static double fd_one(problem_t *p, int i, size_t j) {
    double *x = p->in[i];
    const double x0 = x[j];
    double L[4]; /* at x0 + 2h, x0 + h, x0 - h, x0 - 2h */
    const double offs[4] = {2.0 * FD_STEP, FD_STEP, -FD_STEP, -2.0 * FD_STEP};
    for (int k = 0; k < 4; k++) {
        x[j] = x0 + offs[k];
        L[k] = loss(p);
    }
    x[j] = x0;
    const double fd = (8.0 * (L[1] - L[2]) - (L[0] - L[3])) / (12.0 * FD_STEP);
    const double g = p->grad[i][j];
    const double err = fabs(g - fd) / fmax(fabs(fd), FD_FLOOR);
    ck_assert_msg(err <= FD_TOL,
                  "d%s[%zu] (B %d T %d H %d D %d): backward %.12g, finite difference %.12g, "
                  "error %.3g > %.1g",
                  TF_NAMES[i], j, p->s.B, p->s.T, p->s.H, p->s.dk, g, fd, err, FD_TOL);
    return err;
}

/* Checks every tensor's gradient: all elements if `all`, else the first, the last and
 * FD_SAMPLES random ones.  Prints each tensor's
 * worst error and largest |g|; returns the worst error. */
static double fd_check(problem_t *p, int all, uint64_t seed) {
    run_bwd(p);
    uint64_t r = seed | 1;
    double worst_all = 0.0;
    for (int i = 0; i < TRANSFORMER_N_IN; i++) {
        const size_t n = p->n[i];
        double worst = 0.0;
        size_t checked = 0;
        if (all || n <= 2 + FD_SAMPLES) {
            for (size_t j = 0; j < n; j++) worst = fmax(worst, fd_one(p, i, j));
            checked = n;
        } else {
            worst = fmax(fd_one(p, i, 0), fd_one(p, i, n - 1));
            for (int k = 0; k < FD_SAMPLES; k++)
                worst = fmax(worst, fd_one(p, i, (size_t)(rng_next(&r) % n)));
            checked = 2 + FD_SAMPLES;
        }
        /* A gradient that is all zero would pass trivially against a broken forward. */
        const double gmax = max_abs(p->grad[i], n);
        ck_assert_msg(gmax > 1e-3, "d%s is (nearly) all zero: max %.3g", TF_NAMES[i], gmax);
        printf("  d%-6s %6zu of %6zu checked, max|g| %8.3g, worst error %.3g\n", TF_NAMES[i],
               checked, n, gmax, worst);
        worst_all = fmax(worst_all, worst);
    }
    return worst_all;
}

/* ---------------- (a) the double forward against ref_transformer ---------------- */

/* Same inputs, two codes (whole-tensor stages here, sampled rows and tiles there), both in
 * double: they may differ only by summation order.  Observed max|diff| 4.4e-16 .. 8.9e-16 at
 * max|y| about 1.6; the check allows 1e-12 of max|y|.  The shapes: the op's (D = 64, one and
 * two heads), three narrow heads, and T = 1 (a token attending only to itself). */

START_TEST(test_fwd_matches_reference) {
    const shape_t shapes[] = {tf_shape(2, 16, 2, 64), tf_shape(2, 5, 1, 64),
                              tf_shape(2, 7, 3, 8), tf_shape(1, 1, 1, 64)};
    for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
        problem_t p;
        problem_make(&p, shapes[c], SEED + 100 + c);
        double *want = run_full(OP_TRANSFORMER, &p.s, &p.x);
        ref_transformer_acts_t acts;
        ck_assert_int_eq(ref_transformer_fwd_d(&p.s, din(&p), p.y, &acts), 0);
        assert_finite(p.y, p.ny, "fwd_d y");
        double diff = 0.0;
        for (size_t i = 0; i < p.ny; i++) diff = fmax(diff, fabs(p.y[i] - want[i]));
        printf("forward B %d T %d H %d D %d: max|fwd_d - ref_transformer| %.3g (max|y| %.3g)\n",
               p.s.B, p.s.T, p.s.H, p.s.dk, diff, max_abs(want, p.ny));
        assert_close(p.y, want, p.ny, 1e-12, "fwd_d vs ref_transformer");
        /* Without acts the output is the same, bit for bit. */
        double *y2 = dalloc(p.ny);
        ck_assert_int_eq(ref_transformer_fwd_d(&p.s, din(&p), y2, NULL), 0);
        ck_assert(memcmp(y2, p.y, p.ny * sizeof(double)) == 0);
        free(y2);
        ref_transformer_acts_free(&acts);
        free(want);
        problem_free(&p);
    }
}
END_TEST

/* ---------------- (b) the backward against finite differences ---------------- */

/* Every element of every tensor, at a shape small enough for that: 3 heads of 8. */
START_TEST(test_bwd_fd_every_element) {
    problem_t p;
    problem_make(&p, tf_shape(2, 7, 3, 8), SEED + 200);
    printf("backward B 2 T 7 H 3 D 8, every element:\n");
    const double w = fd_check(&p, 1, 0x1234);
    printf("  worst %.3g (tolerance %.1g)\n", w, FD_TOL);
    problem_free(&p);
}
END_TEST

/* The op's head width: d = 64 (one head) and d = 128 (two heads), T = 16. */
START_TEST(test_bwd_fd_head64) {
    const shape_t s = _i == 0 ? tf_shape(2, 16, 1, 64) : tf_shape(2, 16, 2, 64);
    problem_t p;
    problem_make(&p, s, SEED + 300 + _i);
    printf("backward B %d T %d H %d D %d, sampled:\n", s.B, s.T, s.H, s.dk);
    const double w = fd_check(&p, 0, 0xABCDull + _i);
    printf("  worst %.3g (tolerance %.1g)\n", w, FD_TOL);
    problem_free(&p);
}
END_TEST

/* acts = NULL reruns the forward: the same gradients, bit for bit. */
START_TEST(test_bwd_without_acts) {
    problem_t p;
    problem_make(&p, tf_shape(2, 6, 2, 8), SEED + 400);
    run_bwd(&p);
    for (int i = 0; i < TRANSFORMER_N_IN; i++) {
        double *g = dalloc(p.n[i]);
        double *grad2[TRANSFORMER_N_IN];
        for (int k = 0; k < TRANSFORMER_N_IN; k++) grad2[k] = k == i ? g : dalloc(p.n[k]);
        ck_assert_int_eq(ref_transformer_bwd(&p.s, din(&p), NULL, p.dY, grad2), 0);
        ck_assert_msg(memcmp(g, p.grad[i], p.n[i] * sizeof(double)) == 0, "d%s differs",
                      TF_NAMES[i]);
        for (int k = 0; k < TRANSFORMER_N_IN; k++) free(grad2[k]);
    }
    problem_free(&p);
}
END_TEST

START_TEST(test_bad_shapes) {
    double z[8] = {0};
    const double *in[TRANSFORMER_N_IN];
    double *g[TRANSFORMER_N_IN];
    for (int i = 0; i < TRANSFORMER_N_IN; i++) in[i] = z, g[i] = z;
    shape_t bad = tf_shape(1, 2, 2, 4);
    bad.d = 6; /* H * D != d */
    bench_clear_error();
    ck_assert_int_eq(ref_transformer_fwd_d(&bad, in, z, NULL), -1);
    ck_assert_ptr_nonnull(strstr(bench_last_error(), "H * dk == d"));
    ck_assert_int_eq(ref_transformer_bwd(&bad, in, NULL, z, g), -1);
    bad = tf_shape(1, 0, 1, 4);
    ck_assert_int_eq(ref_transformer_bwd(&bad, in, NULL, z, g), -1);
}
END_TEST

static Suite *grad_transformer_suite(void) {
    Suite *su = suite_create("grad_transformer");
    TCase *fw = tcase_create("forward");
    tcase_add_test(fw, test_fwd_matches_reference);
    tcase_set_timeout(fw, 60);
    suite_add_tcase(su, fw);

    TCase *bw = tcase_create("backward");
    tcase_add_test(bw, test_bwd_fd_every_element);
    tcase_add_loop_test(bw, test_bwd_fd_head64, 0, 2);
    tcase_add_test(bw, test_bwd_without_acts);
    tcase_add_test(bw, test_bad_shapes);
    tcase_set_timeout(bw, 300);
    suite_add_tcase(su, bw);
    return su;
}

int main(void) {
    SRunner *sr = srunner_create(grad_transformer_suite());
    srunner_run_all(sr, CK_ENV);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
