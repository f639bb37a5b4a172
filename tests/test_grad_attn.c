/* test_grad_attn.c: the attention backward references (ref_grad.h) checked
 * against central finite differences of their own double forwards.
 *
 * The scalar is L(q,k,v) = sum(dO . fwd(q,k,v)) with a fixed random dO, so
 * dL/dq etc. are exactly what the backward returns for upstream gradient dO.
 * Every element of every gradient is compared with
 *   fd = (L(x + h e_j) - L(x - h e_j)) / (2h),  h = 1e-6.
 * Error of fd: truncation h^2/6 |L'''| (zero for linear attention, which is
 * linear in each single element; O(1e-12) for softmax) plus rounding about
 * a few eps |L| / h with eps = 2.2e-16 and |L| up to about 13 here, i.e.
 * O(1e-8) (observed worst: 1.5e-8 absolute).  The test accepts
 *   |g - fd| <= FD_TOL * max(|fd|, FD_FLOOR),  FD_TOL = 1e-6, FD_FLOOR = 0.1:
 * relative 1e-6 for large gradients and an absolute 1e-7 near zero, several
 * times the rounding, while a wrong sign, a missing term or a wrong scale is
 * off by O(|g|) = O(0.1 .. 10) on these inputs.
 *
 * Inputs come from a seeded xorshift64* in [-1, 1), never exactly zero, so
 * no gradient vanishes by accident of the data.  Also cheap structural
 * checks: the backward is linear in dO, and for softmax the key gradients of a
 * sequence sum to zero (a shift of every key by one vector c changes row t's
 * logits by the same q_t . c, which softmax ignores). */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_check.h"
#include "ref_grad.h"

#define FD_STEP 1e-6
#define FD_TOL 1e-6
#define FD_FLOOR 1e-1

/* ---------------- helpers ---------------- */

typedef struct {
    uint64_t s;
} rng_t;

/* xorshift64* mapped to [-1, 1); zero is redrawn so no input is exactly 0. */
static double rng_uniform(rng_t *r) {
    for (;;) {
        r->s ^= r->s >> 12;
        r->s ^= r->s << 25;
        r->s ^= r->s >> 27;
        const uint64_t x = r->s * 0x2545F4914F6CDD1Dull;
        const double u = (double)(x >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0;
        if (u != 0.0) return u;
    }
}

static double *dalloc(size_t n) {
    double *p = calloc(n ? n : 1, sizeof(double));
    ck_assert_ptr_nonnull(p);
    return p;
}

static double *drandom(rng_t *r, size_t n) {
    double *p = dalloc(n);
    for (size_t i = 0; i < n; i++) p[i] = rng_uniform(r);
    return p;
}

typedef int (*fwd_fn)(const shape_t *, const double *, const double *, const double *,
                      double *);
typedef int (*bwd_fn)(const shape_t *, const double *, const double *, const double *,
                      const double *, double *, double *, double *);

/* One problem: inputs, upstream gradient and the backward's answer. */
typedef struct {
    shape_t s;
    size_t n_qk, n_v; /* elements of q (= k) and of v (= o = dO) */
    double *q, *k, *v, *dO;
    double *dQ, *dK, *dV;
    double *o; /* scratch for the forward */
} problem_t;

static void problem_make(problem_t *p, int T, int dk, int dv, int causal, uint64_t seed) {
    memset(p, 0, sizeof *p);
    p->s = (shape_t){.B = 2, .H = 2, .T = T, .dk = dk, .dv = dv, .causal = causal};
    rng_t r = {seed ? seed : 1};
    p->n_qk = (size_t)2 * 2 * T * dk;
    p->n_v = (size_t)2 * 2 * T * dv;
    p->q = drandom(&r, p->n_qk);
    p->k = drandom(&r, p->n_qk);
    p->v = drandom(&r, p->n_v);
    p->dO = drandom(&r, p->n_v);
    p->dQ = dalloc(p->n_qk);
    p->dK = dalloc(p->n_qk);
    p->dV = dalloc(p->n_v);
    p->o = dalloc(p->n_v);
}

static void problem_free(problem_t *p) {
    double *all[] = {p->q, p->k, p->v, p->dO, p->dQ, p->dK, p->dV, p->o};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
}

static double loss(problem_t *p, fwd_fn fwd) {
    ck_assert_int_eq(fwd(&p->s, p->q, p->k, p->v, p->o), 0);
    double L = 0.0;
    for (size_t i = 0; i < p->n_v; i++) L += p->dO[i] * p->o[i];
    return L;
}

/* Compares grad[j] with the central difference of L in x[j], for every j;
 * returns the largest |g - fd| / max(|fd|, FD_FLOOR) seen. */
static double fd_check(problem_t *p, fwd_fn fwd, double *x, const double *grad, size_t n,
                       const char *what) {
    double worst = 0.0;
    for (size_t j = 0; j < n; j++) {
        const double x0 = x[j];
        x[j] = x0 + FD_STEP;
        const double Lp = loss(p, fwd);
        x[j] = x0 - FD_STEP;
        const double Lm = loss(p, fwd);
        x[j] = x0;
        const double fd = (Lp - Lm) / (2.0 * FD_STEP);
        const double err = fabs(grad[j] - fd) / fmax(fabs(fd), FD_FLOOR);
        if (err > worst) worst = err;
        ck_assert_msg(err <= FD_TOL,
                      "%s[%zu] (T %d dk %d dv %d causal %d): backward %.12g, finite "
                      "difference %.12g, error %.3g > %.1g",
                      what, j, p->s.T, p->s.dk, p->s.dv, p->s.causal, grad[j], fd, err, FD_TOL);
    }
    return worst;
}

/* Runs the backward on p and checks all three gradients; returns the worst error. */
static double check_problem(problem_t *p, fwd_fn fwd, bwd_fn bwd) {
    ck_assert_int_eq(bwd(&p->s, p->q, p->k, p->v, p->dO, p->dQ, p->dK, p->dV), 0);
    double w = fd_check(p, fwd, p->q, p->dQ, p->n_qk, "dQ");
    w = fmax(w, fd_check(p, fwd, p->k, p->dK, p->n_qk, "dK"));
    return fmax(w, fd_check(p, fwd, p->v, p->dV, p->n_v, "dV"));
}

/* bwd(dO1 + 2 dO2) == bwd(dO1) + 2 bwd(dO2): the backward is linear in dO. */
static void check_linear_in_dO(problem_t *p, bwd_fn bwd, uint64_t seed) {
    rng_t r = {seed};
    double *dO2 = drandom(&r, p->n_v), *dOs = dalloc(p->n_v);
    double *g1[3] = {dalloc(p->n_qk), dalloc(p->n_qk), dalloc(p->n_v)};
    double *g2[3] = {dalloc(p->n_qk), dalloc(p->n_qk), dalloc(p->n_v)};
    double *gs[3] = {dalloc(p->n_qk), dalloc(p->n_qk), dalloc(p->n_v)};
    for (size_t i = 0; i < p->n_v; i++) dOs[i] = p->dO[i] + 2.0 * dO2[i];
    ck_assert_int_eq(bwd(&p->s, p->q, p->k, p->v, p->dO, g1[0], g1[1], g1[2]), 0);
    ck_assert_int_eq(bwd(&p->s, p->q, p->k, p->v, dO2, g2[0], g2[1], g2[2]), 0);
    ck_assert_int_eq(bwd(&p->s, p->q, p->k, p->v, dOs, gs[0], gs[1], gs[2]), 0);
    const size_t n[3] = {p->n_qk, p->n_qk, p->n_v};
    for (int a = 0; a < 3; a++) {
        for (size_t i = 0; i < n[a]; i++) {
            const double want = g1[a][i] + 2.0 * g2[a][i];
            ck_assert_msg(fabs(gs[a][i] - want) <= 1e-12 * fmax(fabs(want), 1.0),
                          "gradient %d[%zu] not linear in dO: %.17g vs %.17g", a, i, gs[a][i],
                          want);
        }
        free(g1[a]);
        free(g2[a]);
        free(gs[a]);
    }
    free(dO2);
    free(dOs);
}

/* ---------------- linear attention ---------------- */

static const int Ts[] = {1, 5, 17};

START_TEST(test_linear_attn_fd) {
    const int causal = _i; /* loop test: 0 = non-causal, 1 = causal */
    double worst = 0.0;
    for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++)
        for (int dk = 3; dk <= 8; dk += 5)     /* 3 and 8 */
            for (int dv = 4; dv <= 8; dv += 4) { /* 4 and 8 */
                problem_t p;
                problem_make(&p, Ts[ti], dk, dv, causal,
                             0x9E3779B97F4A7C15ull ^ ((uint64_t)Ts[ti] << 16 | dk << 8 | dv));
                worst = fmax(worst, check_problem(&p, ref_linear_attn_fwd_d,
                                                  ref_linear_attn_bwd));
                problem_free(&p);
            }
    printf("linear_attn causal=%d: worst finite-difference error %.3g (tolerance %.1g)\n",
           causal, worst, FD_TOL);
}
END_TEST

START_TEST(test_linear_attn_linear_in_dO) {
    problem_t p;
    problem_make(&p, 17, 5, 6, _i, 0xC0FFEEull);
    check_linear_in_dO(&p, ref_linear_attn_bwd, 0xBADC0DEull);
    problem_free(&p);
}
END_TEST

/* Homogeneity: o is linear in v, so scaling v by a scales dQ and dK by a and
 * leaves dV (which does not depend on v) unchanged. */
START_TEST(test_linear_attn_scale_v) {
    problem_t p, p2;
    problem_make(&p, 5, 4, 7, 1, 0x1234ull);
    problem_make(&p2, 5, 4, 7, 1, 0x1234ull);
    for (size_t i = 0; i < p2.n_v; i++) p2.v[i] *= 3.0;
    ck_assert_int_eq(ref_linear_attn_bwd(&p.s, p.q, p.k, p.v, p.dO, p.dQ, p.dK, p.dV), 0);
    ck_assert_int_eq(ref_linear_attn_bwd(&p2.s, p2.q, p2.k, p2.v, p2.dO, p2.dQ, p2.dK, p2.dV), 0);
    for (size_t i = 0; i < p.n_qk; i++) {
        ck_assert_double_eq_tol(p2.dQ[i], 3.0 * p.dQ[i], 1e-12);
        ck_assert_double_eq_tol(p2.dK[i], 3.0 * p.dK[i], 1e-12);
    }
    for (size_t i = 0; i < p.n_v; i++) ck_assert_double_eq_tol(p2.dV[i], p.dV[i], 1e-12);
    problem_free(&p);
    problem_free(&p2);
}
END_TEST

/* ---------------- softmax attention ---------------- */

START_TEST(test_softmax_attn_fd) {
    const int causal = _i; /* loop test: 0 = non-causal, 1 = causal */
    double worst = 0.0;
    for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++)
        for (int d = 3; d <= 8; d++) {
            if (d != 3 && d != 4 && d != 8) continue;
            problem_t p;
            problem_make(&p, Ts[ti], d, d, causal,
                         0xD1B54A32D192ED03ull ^ ((uint64_t)Ts[ti] << 16 | d));
            worst = fmax(worst, check_problem(&p, ref_softmax_attn_fwd_d, ref_softmax_attn_bwd));
            problem_free(&p);
        }
    printf("softmax_attn causal=%d: worst finite-difference error %.3g (tolerance %.1g)\n", causal,
           worst, FD_TOL);
}
END_TEST

START_TEST(test_softmax_attn_linear_in_dO) {
    problem_t p;
    problem_make(&p, 17, 6, 6, 1, 0xFACEull);
    check_linear_in_dO(&p, ref_softmax_attn_bwd, 0xBEEFull);
    problem_free(&p);
}
END_TEST

START_TEST(test_softmax_attn_dK_sums_to_zero) {
    problem_t p;
    problem_make(&p, 17, 5, 5, 1, 0x5EEDull);
    ck_assert_int_eq(ref_softmax_attn_bwd(&p.s, p.q, p.k, p.v, p.dO, p.dQ, p.dK, p.dV), 0);
    const int T = p.s.T, D = p.s.dk;
    for (int seq = 0; seq < p.s.B * p.s.H; seq++)
        for (int c = 0; c < D; c++) {
            double sum = 0.0, mag = 0.0;
            for (int u = 0; u < T; u++) {
                const double g = p.dK[((size_t)seq * T + u) * D + c];
                sum += g;
                mag += fabs(g);
            }
            ck_assert_msg(mag > 0.0, "dK of sequence %d column %d is all zero", seq, c);
            ck_assert_msg(fabs(sum) <= 1e-12 * mag, "sequence %d column %d: sum of dK %.3g", seq,
                          c, sum);
        }
    problem_free(&p);
}
END_TEST

/* ---------------- errors ---------------- */

START_TEST(test_bad_shapes) {
    double x[64] = {0};
    shape_t bad_T = {.B = 1, .H = 1, .T = 0, .dk = 2, .dv = 2, .causal = 1};
    shape_t bad_dv = {.B = 1, .H = 1, .T = 2, .dk = 2, .dv = 3, .causal = 1};
    bench_clear_error();
    ck_assert_int_eq(ref_linear_attn_bwd(&bad_T, x, x, x, x, x, x, x), -1);
    ck_assert_ptr_nonnull(strstr(bench_last_error(), "linear_attn"));
    ck_assert_int_eq(ref_linear_attn_fwd_d(&bad_T, x, x, x, x), -1);
    ck_assert_int_eq(ref_softmax_attn_bwd(&bad_T, x, x, x, x, x, x, x), -1);
    ck_assert_int_eq(ref_softmax_attn_fwd_d(&bad_T, x, x, x, x), -1);
    /* softmax needs dk == dv; linear attention does not. */
    ck_assert_int_eq(ref_softmax_attn_bwd(&bad_dv, x, x, x, x, x, x, x), -1);
    ck_assert_ptr_nonnull(strstr(bench_last_error(), "dv == dk"));
    ck_assert_int_eq(ref_linear_attn_bwd(&bad_dv, x, x, x, x, x, x, x), 0);
}
END_TEST

static Suite *grad_attn_suite(void) {
    Suite *su = suite_create("grad_attn");
    TCase *la = tcase_create("linear_attn");
    tcase_add_loop_test(la, test_linear_attn_fd, 0, 2);
    tcase_add_loop_test(la, test_linear_attn_linear_in_dO, 0, 2);
    tcase_add_test(la, test_linear_attn_scale_v);
    tcase_set_timeout(la, 60);
    suite_add_tcase(su, la);

    TCase *sa = tcase_create("softmax_attn");
    tcase_add_loop_test(sa, test_softmax_attn_fd, 0, 2);
    tcase_add_test(sa, test_softmax_attn_linear_in_dO);
    tcase_add_test(sa, test_softmax_attn_dK_sums_to_zero);
    tcase_set_timeout(sa, 60);
    suite_add_tcase(su, sa);

    TCase *er = tcase_create("errors");
    tcase_add_test(er, test_bad_shapes);
    suite_add_tcase(su, er);
    return su;
}

int main(void) {
    SRunner *sr = srunner_create(grad_attn_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
