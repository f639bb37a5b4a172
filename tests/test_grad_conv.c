/* test_grad_conv.c: the backward references of ref_grad_conv.c against central
 * finite differences, and the reparameterization slice identity.
 *
 * For random inputs and a random upstream gradient G (seeded xorshift, values in
 * +-[0.05, 1], never zero), L(p) = sum(G * fwd(p)) has dL/dp equal to what the
 * backward returns for dout = G, so every gradient element is compared with
 * (L(p + h e) - L(p - h e)) / 2h, h = 1e-6.
 *
 * Tolerance, |fd - grad| <= (16 eps / h + h^2) * S, with S = sum(|G| * fwd(|p|)):
 * - rounding: each forward is double, and every partial sum in L is bounded by
 *   S (the same sums with all terms made non-negative; SiLU(|p|) >= |SiLU(p)|
 *   and SiLU is increasing on p >= 0, so this holds through the short conv too).
 *   The rounding error of one L is then a small multiple of eps * S, and the
 *   difference quotient divides it by 2h: O(eps S / h); 16 eps / h = 3.6e-9.
 * - truncation: O(h^2 L''') -- exactly 0 for long_conv (L is linear in each
 *   single element), and for short_long_conv L''' is bounded by about S times
 *   SiLU''' (< 1), so h^2 S covers it with room (1e-12 S).
 * The bound runs from ~1e-10 (T = 1) to ~7e-5 (B = 3, d = 4, T = 130), and the
 * observed errors stay below 4% of it.  A wrong gradient is off by O(|grad|),
 * ~0.01 .. 10, orders of magnitude above it. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bench_check.h"
#include "ref_grad_conv.h"
#include "shape.h"

#define SEED 0x6AD0C0DEull
#define FD_STEP 1e-6
#define MAX_PARAMS 5

/* ---------------- inputs ---------------- */

static uint64_t xorshift64(uint64_t *state) {
    uint64_t v = *state;
    v ^= v << 13;
    v ^= v >> 7;
    v ^= v << 17;
    return *state = v;
}

/* Values in +-[0.05, 1]: bounded away from zero so no tap or input is inert. */
static void fill_random(double *a, size_t n, uint64_t *state) {
    for (size_t i = 0; i < n; i++) {
        const uint64_t r = xorshift64(state);
        const double mag = 0.05 + 0.95 * (double)(r >> 11) / 9007199254740992.0; /* 2^53 */
        a[i] = (r & 1) ? -mag : mag;
    }
}

static double *alloc_doubles(size_t n) {
    double *p = calloc(n, sizeof(double));
    ck_assert_ptr_nonnull(p);
    return p;
}

/* B in {1,3}, d in {1,4}, T in {1,2,5,17,130}: k_m = 1, 3 and 5 all occur, and
 * T < 3 exercises short-kernel taps that reach no output. */
static const int SHAPE_B[] = {1, 3};
static const int SHAPE_D[] = {1, 4};
static const int SHAPE_T[] = {1, 2, 5, 17, 130};
#define N_SHAPES 20

static void shape_of(int i, int *B, int *d, int *T) {
    *T = SHAPE_T[i % 5];
    *d = SHAPE_D[(i / 5) % 2];
    *B = SHAPE_B[(i / 10) % 2];
}

/* ---------------- a problem: parameters, upstream gradient, forward ---------------- */

typedef enum { OP_LONG, OP_SHORT_LONG } which_op;

typedef struct {
    which_op op;
    int B, d, T, k_m;
    int n_params;
    const char *name[MAX_PARAMS];
    double *param[MAX_PARAMS]; /* x first, then the kernels in the bwd's order */
    size_t len[MAX_PARAMS];
    double *grad[MAX_PARAMS];
    double *dout; /* G, [B,d,T] */
    double *out;  /* forward scratch, [B,d,T] */
} problem_t;

static void problem_make(problem_t *p, which_op op, int B, int d, int T, uint64_t seed) {
    memset(p, 0, sizeof *p);
    p->op = op;
    p->B = B, p->d = d, p->T = T, p->k_m = shape_km(T);
    const size_t bdt = (size_t)B * d * T;
    if (op == OP_LONG) {
        p->n_params = 2;
        p->name[0] = "dX", p->len[0] = bdt;
        p->name[1] = "dK", p->len[1] = (size_t)d * T;
    } else {
        p->n_params = 5;
        p->name[0] = "dX", p->len[0] = bdt;
        p->name[1] = "dk3", p->len[1] = (size_t)d * 3;
        p->name[2] = "dklong", p->len[2] = (size_t)d * T;
        p->name[3] = "dk3b", p->len[3] = (size_t)d * 3;
        p->name[4] = "dkm", p->len[4] = (size_t)d * p->k_m;
    }
    uint64_t state = seed;
    for (int i = 0; i < p->n_params; i++) {
        p->param[i] = alloc_doubles(p->len[i]);
        p->grad[i] = alloc_doubles(p->len[i]);
        fill_random(p->param[i], p->len[i], &state);
    }
    p->dout = alloc_doubles(bdt);
    p->out = alloc_doubles(bdt);
    fill_random(p->dout, bdt, &state);
}

static void problem_free(problem_t *p) {
    for (int i = 0; i < p->n_params; i++) free(p->param[i]), free(p->grad[i]);
    free(p->dout);
    free(p->out);
}

static void forward(const problem_t *p, double *const *param, double *out) {
    int rc;
    if (p->op == OP_LONG)
        rc = ref_long_conv_fwd_d(p->B, p->d, p->T, param[0], param[1], out);
    else
        rc = ref_short_long_conv_fwd_d(p->B, p->d, p->T, param[0], param[1], param[2],
                                       param[3], param[4], out);
    ck_assert_msg(rc == 0, "forward failed: %s", bench_last_error());
}

static void backward(problem_t *p) {
    int rc;
    if (p->op == OP_LONG)
        rc = ref_long_conv_bwd(p->B, p->d, p->T, p->param[0], p->param[1], p->dout, p->grad[0],
                               p->grad[1]);
    else
        rc = ref_short_long_conv_bwd(p->B, p->d, p->T, p->param[0], p->param[1], p->param[2],
                                     p->param[3], p->param[4], p->dout, p->grad[0],
                                     p->grad[1], p->grad[2], p->grad[3], p->grad[4]);
    ck_assert_msg(rc == 0, "backward failed: %s", bench_last_error());
}

/* L = sum(G * fwd(params)). */
static double loss(problem_t *p) {
    forward(p, p->param, p->out);
    const size_t n = (size_t)p->B * p->d * p->T;
    double acc = 0.0;
    for (size_t i = 0; i < n; i++) acc += p->dout[i] * p->out[i];
    return acc;
}

/* S = sum(|G| * fwd(|params|)): bounds every partial sum of L (see the top). */
static double loss_scale(const problem_t *p) {
    double *absp[MAX_PARAMS] = {0};
    for (int i = 0; i < p->n_params; i++) {
        absp[i] = alloc_doubles(p->len[i]);
        for (size_t e = 0; e < p->len[i]; e++) absp[i][e] = fabs(p->param[i][e]);
    }
    const size_t n = (size_t)p->B * p->d * p->T;
    double *y = alloc_doubles(n);
    forward(p, absp, y);
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += fabs(p->dout[i]) * y[i];
    free(y);
    for (int i = 0; i < p->n_params; i++) free(absp[i]);
    return s;
}

/* Every element of every gradient against its central difference. */
static void check_against_fd(problem_t *p) {
    backward(p);
    const double h = FD_STEP;
    const double tol = (16.0 * DBL_EPSILON / h + h * h) * loss_scale(p);
    for (int i = 0; i < p->n_params; i++) {
        for (size_t e = 0; e < p->len[i]; e++) {
            double *v = &p->param[i][e];
            const double saved = *v;
            *v = saved + h;
            const double lp = loss(p);
            *v = saved - h;
            const double lm = loss(p);
            *v = saved;
            const double fd = (lp - lm) / (2.0 * h);
            const double g = p->grad[i][e];
            ck_assert_msg(fabs(fd - g) <= tol,
                          "%s B=%d d=%d T=%d: %s[%zu] = %.12g, finite difference %.12g "
                          "(|diff| %.3g > tol %.3g)",
                          p->op == OP_LONG ? "long_conv" : "short_long_conv", p->B, p->d, p->T,
                          p->name[i], e, g, fd, fabs(fd - g), tol);
        }
    }
}

/* ---------------- tests ---------------- */

START_TEST(test_long_conv_fd) {
    int B, d, T;
    shape_of(_i, &B, &d, &T);
    problem_t p;
    problem_make(&p, OP_LONG, B, d, T, SEED + (uint64_t)_i);
    check_against_fd(&p);
    problem_free(&p);
}
END_TEST

START_TEST(test_short_long_conv_fd) {
    int B, d, T;
    shape_of(_i, &B, &d, &T);
    problem_t p;
    problem_make(&p, OP_SHORT_LONG, B, d, T, SEED + 1000 + (uint64_t)_i);
    check_against_fd(&p);
    problem_free(&p);
}
END_TEST

/* The branches' kernel gradients are the merged kernel's gradient restricted to
 * their taps: dKc is computed here as long_conv's dK of u = SiLU(k3 * x) (u from
 * the test's own loop) with Kc = klong + pad(k3b) + pad(km), then compared with
 * dklong (all taps), dk3b (taps 0..2) and dkm (taps 0..k_m-1); taps >= T must
 * be 0, since they reach no output. */
START_TEST(test_reparam_slices) {
    int B, d, T;
    shape_of(_i, &B, &d, &T);
    problem_t p;
    problem_make(&p, OP_SHORT_LONG, B, d, T, SEED + 2000 + (uint64_t)_i);
    backward(&p);
    const double *x = p.param[0], *k3 = p.param[1], *klong = p.param[2], *k3b = p.param[3],
                 *km = p.param[4];
    const int k_m = p.k_m;
    const size_t bdt = (size_t)B * d * T;

    double *u = alloc_doubles(bdt), *kc = alloc_doubles((size_t)d * T);
    for (size_t r = 0; r < (size_t)B * d; r++) {
        const double *k3c = k3 + (r % (size_t)d) * 3;
        for (int t = 0; t < T; t++) {
            double pre = k3c[0] * x[r * T + t];
            if (t >= 1) pre += k3c[1] * x[r * T + t - 1];
            if (t >= 2) pre += k3c[2] * x[r * T + t - 2];
            u[r * T + t] = pre / (1.0 + exp(-pre));
        }
    }
    for (int c = 0; c < d; c++)
        for (int j = 0; j < T; j++)
            kc[(size_t)c * T + j] = klong[(size_t)c * T + j] +
                                    (j < 3 ? k3b[(size_t)c * 3 + j] : 0.0) +
                                    (j < k_m ? km[(size_t)c * k_m + j] : 0.0);
    double *dU = alloc_doubles(bdt), *dKc = alloc_doubles((size_t)d * T);
    ck_assert_int_eq(ref_long_conv_bwd(B, d, T, u, kc, p.dout, dU, dKc), 0);

    const double *dklong = p.grad[2], *dk3b = p.grad[3], *dkm = p.grad[4];
    /* Same sums, possibly in a different order: allow a few ulps of the size. */
#define CLOSE(a, b) (fabs((a) - (b)) <= 1e-12 * (1.0 + fabs(b)))
    for (int c = 0; c < d; c++) {
        const double *g = dKc + (size_t)c * T;
        for (int j = 0; j < T; j++)
            ck_assert_msg(CLOSE(dklong[(size_t)c * T + j], g[j]), "dklong[%d,%d] %.17g != dKc %.17g",
                          c, j, dklong[(size_t)c * T + j], g[j]);
        for (int j = 0; j < 3; j++) {
            const double want = j < T ? g[j] : 0.0;
            ck_assert_msg(CLOSE(dk3b[(size_t)c * 3 + j], want), "dk3b[%d,%d] %.17g != dKc %.17g",
                          c, j, dk3b[(size_t)c * 3 + j], want);
        }
        for (int j = 0; j < k_m; j++) {
            const double want = j < T ? g[j] : 0.0;
            ck_assert_msg(CLOSE(dkm[(size_t)c * k_m + j], want), "dkm[%d,%d] %.17g != dKc %.17g",
                          c, j, dkm[(size_t)c * k_m + j], want);
        }
    }
#undef CLOSE
    free(u), free(kc), free(dU), free(dKc);
    problem_free(&p);
}
END_TEST

START_TEST(test_errors) {
    double v[4] = {1, 2, 3, 4}, w[4];
    bench_clear_error();
    ck_assert_int_eq(ref_long_conv_fwd_d(0, 1, 1, v, v, w), -1);
    ck_assert_str_ne(bench_last_error(), "");
    ck_assert_int_eq(ref_long_conv_bwd(1, 1, 1, v, v, NULL, w, w), -1);
    ck_assert_int_eq(ref_short_long_conv_fwd_d(1, -1, 1, v, v, v, v, v, w), -1);
    ck_assert_int_eq(ref_short_long_conv_bwd(1, 1, 0, v, v, v, v, v, v, w, w, w, w, w), -1);
}
END_TEST

static Suite *grad_conv_suite(void) {
    Suite *su = suite_create("grad_conv");
    TCase *tc = tcase_create("grad_conv");
    tcase_add_loop_test(tc, test_long_conv_fd, 0, N_SHAPES);
    tcase_add_loop_test(tc, test_short_long_conv_fd, 0, N_SHAPES);
    tcase_add_loop_test(tc, test_reparam_slices, 0, N_SHAPES);
    tcase_add_test(tc, test_errors);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(su, tc);
    return su;
}

int main(void) {
    SRunner *sr = srunner_create(grad_conv_suite());
    srunner_run_all(sr, CK_ENV); /* CK_VERBOSITY=verbose lists every test */
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
