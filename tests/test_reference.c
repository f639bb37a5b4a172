/* test_reference.c: the op references checked against independent computations: linear
 * attention against its O(T^2) definition and the chunked algebra, sampled against whole
 * outputs, the long convolution against a dense Toeplitz product and an impulse, the
 * reparameterized kernel against the branches, softmax against hand-computed numbers.
 * (The layers' references: test_reference_layers.c.)
 *
 * The references are the oracle for every GPU variant, so each one is checked here against
 * something that shares as little code with it as possible.  Inputs come from the ops' own
 * describe() and tensor_fill_host (seeded, never zero), except where a test needs exact
 * values (impulse, hand-computed softmax). */
#include "ref_test_util.h"

static double *la_quadratic_from(const shape_t *s, const inputs_t *x) {
    size_t nq = (size_t)s->B * s->H * s->T * s->dk, nv = (size_t)s->B * s->H * s->T * s->dv;
    double *q = dalloc(nq), *k = dalloc(nq), *v = dalloc(nv), *o = dalloc(nv);
    to_double(x->t[0], nq, q);
    to_double(x->t[1], nq, k);
    to_double(x->t[2], nv, v);
    la_quadratic(q, k, v, s->B * s->H, s->T, s->dk, s->dv, s->causal, o);
    free(q);
    free(k);
    free(v);
    return o;
}

/* _i = causal flag. */
START_TEST(test_linear_attn_matches_quadratic) {
    shape_t s = {.B = 2, .T = 23, .H = 2, .dk = 5, .dv = 7, .causal = _i, .dtype = DTYPE_F32};
    inputs_t x;
    inputs_make(OP_LINEAR_ATTN, &s, SEED, &x);
    double *ref = run_full(OP_LINEAR_ATTN, &s, &x);
    double *want = la_quadratic_from(&s, &x);
    assert_close(ref, want, (size_t)s.B * s.H * s.T * s.dv, 1e-12,
                 _i ? "causal linear_attn" : "bidirectional linear_attn");
    free(ref);
    free(want);
    inputs_free(&x);
}
END_TEST

/* The chunked model against the reference: T not a multiple of the chunk, T < chunk,
 * chunk 1 (pure inter-chunk) and chunk = T (pure intra-chunk).  _i = causal. */
START_TEST(test_linear_attn_chunked) {
    static const int cases[][2] = {{37, 8}, {5, 16}, {37, 1}, {37, 37}, {64, 16}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        shape_t s = {.B = 2, .T = cases[c][0], .H = 2, .dk = 6, .dv = 4, .causal = _i,
                     .dtype = DTYPE_BF16};
        inputs_t x;
        inputs_make(OP_LINEAR_ATTN, &s, SEED + c, &x);
        double *ref = run_full(OP_LINEAR_ATTN, &s, &x);
        size_t n = (size_t)s.B * s.H * s.T * s.dv;
        double *got = dalloc(n);
        ck_assert_int_eq(ref_linear_attn_chunked(&s, cin(&x), cases[c][1], got), 0);
        assert_close(got, ref, n, 1e-12, "chunked model vs reference");
        free(ref);
        free(got);
        inputs_free(&x);
    }
}
END_TEST

/* ---------------- sampled == full, every op ---------------- */

static shape_t sampled_shape(int which) {
    switch (which) {
    case OP_LINEAR_ATTN: return (shape_t){.B = 2, .T = 29, .H = 2, .dk = 6, .dv = 5, .causal = 1};
    case OP_SOFTMAX_ATTN: return (shape_t){.B = 2, .T = 29, .H = 2, .dk = 6, .dv = 6, .causal = 1};
    case OP_LONG_CONV:
    case OP_SHORT_LONG_CONV: return (shape_t){.B = 2, .T = 120, .d = 5}; /* k_m = 5 */
    case OP_CHELA: return (shape_t){.B = 2, .T = 37, .d = 16, .z = 8, .v = 32, .causal = 1};
    case OP_MEGA: return (shape_t){.B = 2, .T = 37, .d = 16, .z = 8, .v = 32, .causal = 1};
    case OP_TRANSFORMER:
        return (shape_t){.B = 2, .T = 29, .H = 2, .dk = 64, .dv = 64, .d = 128, .causal = 1};
    case OP_COUNT: /* bidirectional linear attention */
        return (shape_t){.B = 2, .T = 29, .H = 2, .dk = 6, .dv = 5, .causal = 0};
    default: /* OP_COUNT + 1: bidirectional softmax attention */
        return (shape_t){.B = 2, .T = 29, .H = 2, .dk = 6, .dv = 6, .causal = 0};
    }
}

/* _i = op id, OP_COUNT for bidirectional linear attention, OP_COUNT + 1 for bidirectional
 * softmax attention (its sampled rows read keys past the last sampled t). */
START_TEST(test_sampled_equals_full) {
    op_id id = _i == OP_COUNT ? OP_LINEAR_ATTN : _i == OP_COUNT + 1 ? OP_SOFTMAX_ATTN : (op_id)_i;
    const op_desc_t *op = op_get(id);
    shape_t s = sampled_shape(_i);
    s.dtype = DTYPE_BF16;
    inputs_t x;
    inputs_make(id, &s, SEED + 7, &x);
    double *full = run_full(id, &s, &x);

    const int S = op->seq_count(&s), T = s.T, C = op->col_count(&s);
    /* Out of order seqs and cols; t ascending, not reaching T-1 (rows < T path). */
    const int seq[] = {S - 1, 0};
    const int t[] = {0, 1, T / 3, T - 2};
    const int col[] = {C - 1, C / 2, 0};
    sample_buf_t b;
    sample_make(&b, 2, seq, 4, t, 3, col);
    double *part = dalloc(2 * 4 * 3);
    ck_assert_msg(op->reference(&s, cin(&x), &b.s, part) == 0, "%s", bench_last_error());
    double *want = dalloc(2 * 4 * 3);
    for (int si = 0; si < 2; si++)
        for (int ti = 0; ti < 4; ti++)
            for (int ci = 0; ci < 3; ci++)
                want[(si * 4 + ti) * 3 + ci] = full[((size_t)seq[si] * T + t[ti]) * C + col[ci]];
    /* Same arithmetic per output in both modes: agreement to the last bits or so. */
    assert_close(part, want, 2 * 4 * 3, 1e-14, op->name);
    free(part);
    free(want);
    free(full);
    sample_free(&b);
    inputs_free(&x);
}
END_TEST

/* ---------------- convolutions ---------------- */

/* y = M x with M the dense lower-triangular Toeplitz matrix M[t][s] = k[t-s]. */
START_TEST(test_long_conv_toeplitz) {
    shape_t s = {.B = 2, .T = 40, .d = 3, .dtype = DTYPE_F32};
    inputs_t x;
    inputs_make(OP_LONG_CONV, &s, SEED + 11, &x);
    double *ref = run_full(OP_LONG_CONV, &s, &x);
    const int T = s.T;
    double *M = dalloc((size_t)T * T), *want = dalloc((size_t)s.B * T * s.d);
    for (int c = 0; c < s.d; c++) {
        for (int r = 0; r < T; r++)
            for (int q = 0; q < T; q++) M[r * T + q] = q <= r ? x.t[1][c * T + r - q] : 0.0;
        for (int b = 0; b < s.B; b++) {
            const float *xr = x.t[0] + ((size_t)b * s.d + c) * T;
            for (int r = 0; r < T; r++) {
                double acc = 0.0;
                for (int q = 0; q < T; q++) acc += M[r * T + q] * xr[q];
                want[((size_t)b * T + r) * s.d + c] = acc; /* output is [b][t][c] */
            }
        }
    }
    assert_close(ref, want, (size_t)s.B * T * s.d, 1e-13, "long_conv vs Toeplitz");
    free(M);
    free(want);
    free(ref);
    inputs_free(&x);
}
END_TEST

/* x = e_0 in every channel gives the kernel back, tap for tap, exactly. */
START_TEST(test_long_conv_impulse) {
    shape_t s = {.B = 2, .T = 50, .d = 4, .dtype = DTYPE_F32};
    inputs_t x;
    inputs_make(OP_LONG_CONV, &s, SEED + 12, &x);
    memset(x.t[0], 0, x.desc[0].elems * sizeof(float));
    for (int bc = 0; bc < s.B * s.d; bc++) x.t[0][(size_t)bc * s.T] = 1.0f;
    double *y = run_full(OP_LONG_CONV, &s, &x);
    for (int b = 0; b < s.B; b++)
        for (int t = 0; t < s.T; t++)
            for (int c = 0; c < s.d; c++)
                ck_assert_msg(y[((size_t)b * s.T + t) * s.d + c] == (double)x.t[1][c * s.T + t],
                              "impulse response b %d t %d c %d", b, t, c);
    free(y);
    inputs_free(&x);
}
END_TEST

/* ref_causal_conv_row against the plain definition, kernels shorter and longer than T. */
START_TEST(test_causal_conv_row) {
    enum { T = 17 };
    double xr[T], k[T + 5], y[T];
    for (int i = 0; i < T; i++) xr[i] = sin(1.0 + i) + 0.25;
    for (int i = 0; i < T + 5; i++) k[i] = cos(0.3 * i) * exp(-0.1 * i);
    const int lens[] = {1, 3, 9, T, T + 5};
    for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++) {
        ref_causal_conv_row(xr, T, k, lens[l], y);
        for (int t = 0; t < T; t++) {
            double want = 0.0;
            for (int q = 0; q <= t; q++)
                if (t - q < lens[l]) want += k[t - q] * xr[q];
            ck_assert_double_eq_tol(y[t], want, 1e-14);
        }
    }
}
END_TEST

/* Reparameterized form (merged kernel, one long conv on u) == branches form.
 * u is written out from the spec here, not taken from the reference. */
START_TEST(test_reparam_equals_branches) {
    static const int Ts[] = {150, 37, 2, 1}; /* k_m = 5 and 3; T < the short kernels */
    for (size_t c_ = 0; c_ < sizeof Ts / sizeof Ts[0]; c_++) {
        shape_t s = {.B = 2, .T = Ts[c_], .d = 3, .dtype = DTYPE_BF16};
        const int T = s.T, d = s.d;
        inputs_t x;
        inputs_make(OP_SHORT_LONG_CONV, &s, SEED + 20 + c_, &x);
        double *ref = run_full(OP_SHORT_LONG_CONV, &s, &x);
        double *kc = dalloc((size_t)d * T), *u = dalloc(T), *y = dalloc(T);
        double *want = dalloc((size_t)s.B * T * d);
        ref_reparam_kernel(d, T, x.t[2], x.t[3], x.t[4], shape_km(T), kc);
        for (int b = 0; b < s.B; b++)
            for (int c = 0; c < d; c++) {
                const float *xr = x.t[0] + ((size_t)b * d + c) * T, *k3 = x.t[1] + 3 * c;
                for (int t = 0; t < T; t++) {
                    double a = k3[0] * (double)xr[t];
                    if (t >= 1) a += k3[1] * (double)xr[t - 1];
                    if (t >= 2) a += k3[2] * (double)xr[t - 2];
                    u[t] = a / (1.0 + exp(-a));
                }
                ref_causal_conv_row(u, T, kc + (size_t)c * T, T, y);
                for (int t = 0; t < T; t++) want[((size_t)b * T + t) * d + c] = y[t];
            }
        assert_close(ref, want, (size_t)s.B * T * d, 1e-12, "reparam vs branches");
        free(kc);
        free(u);
        free(y);
        free(want);
        free(ref);
        inputs_free(&x);
    }
}
END_TEST

/* ---------------- softmax attention ---------------- */

/* Three tokens, dk = dv = 2, worked by hand:
 *   q = (1,0) (0,1) (1,1);  k = (1,0) (0,2) (1,-1);  v = (1,2) (3,-1) (0,4);  scale 1/sqrt 2.
 *   t=0: only s=0: o = v0 = (1, 2).
 *   t=1: logits q1.k = (0, 2)/sqrt2 = (0, sqrt2): o = (v0 + e^sqrt2 v1) / (1 + e^sqrt2).
 *   t=2: logits q2.k = (1, 2, 0)/sqrt2: o = (e^(1/sqrt2) v0 + e^sqrt2 v1 + v2) / sum. */
START_TEST(test_softmax_hand) {
    float q[] = {1, 0, 0, 1, 1, 1}, k[] = {1, 0, 0, 2, 1, -1}, v[] = {1, 2, 3, -1, 0, 4};
    const float *in[] = {q, k, v};
    shape_t s = {.B = 1, .T = 3, .H = 1, .dk = 2, .dv = 2, .causal = 1, .dtype = DTYPE_F32};
    sample_buf_t b;
    sample_full(&b, 1, 3, 2);
    double o[6];
    ck_assert_int_eq(ref_softmax_attn(&s, in, &b.s, o), 0);
    const double r2 = sqrt(2.0), e1 = exp(r2), a = exp(1.0 / r2), sum2 = a + e1 + 1.0;
    const double want[6] = {1.0,
                            2.0,
                            (1.0 + 3.0 * e1) / (1.0 + e1),
                            (2.0 - 1.0 * e1) / (1.0 + e1),
                            (a * 1.0 + e1 * 3.0 + 0.0) / sum2,
                            (a * 2.0 - e1 * 1.0 + 4.0) / sum2};
    /* The same numbers typed out (worked separately), so a slip in the formulas
     * above cannot agree with the same slip in the reference. */
    const double typed[4] = {2.608859365, -0.413289048, 2.011921445, 0.552132454};
    for (int i = 0; i < 4; i++) ck_assert_double_eq_tol(want[2 + i], typed[i], 1e-9);
    for (int i = 0; i < 6; i++) ck_assert_double_eq_tol(o[i], want[i], 1e-14);
    sample_free(&b);
}
END_TEST

/* Random heads against the textbook formula (no max subtraction: logits are small).
 * _i = causal flag. */
START_TEST(test_softmax_matches_direct) {
    shape_t s = {.B = 2, .T = 29, .H = 2, .dk = 6, .dv = 6, .causal = _i, .dtype = DTYPE_BF16};
    inputs_t x;
    inputs_make(OP_SOFTMAX_ATTN, &s, SEED + 50, &x);
    double *ref = run_full(OP_SOFTMAX_ATTN, &s, &x);
    const int T = s.T, D = s.dk;
    double *want = dalloc((size_t)s.B * s.H * T * D);
    for (int sq = 0; sq < s.B * s.H; sq++) {
        const float *q = x.t[0] + (size_t)sq * T * D, *k = x.t[1] + (size_t)sq * T * D;
        const float *v = x.t[2] + (size_t)sq * T * D;
        for (int t = 0; t < T; t++) {
            double den = 0.0, *o = want + ((size_t)sq * T + t) * D;
            for (int r = 0; r <= (s.causal ? t : T - 1); r++) {
                double a = 0.0;
                for (int i = 0; i < D; i++) a += (double)q[t * D + i] * k[r * D + i];
                double e = exp(a / sqrt((double)D));
                den += e;
                for (int c = 0; c < D; c++) o[c] += e * v[r * D + c];
            }
            for (int c = 0; c < D; c++) o[c] /= den;
        }
    }
    assert_close(ref, want, (size_t)s.B * s.H * T * D, 1e-13,
                 s.causal ? "softmax_attn vs direct" : "bidirectional softmax_attn vs direct");
    free(ref);
    free(want);
    inputs_free(&x);
}
END_TEST

/* Logits near 1400 overflow exp() unless the row maximum is subtracted first. */
START_TEST(test_softmax_large_logits) {
    float q[] = {2000, 2000, 2000}, k[] = {1, 0.7f, -1}, v[] = {5, -2, 9};
    const float *in[] = {q, k, v};
    shape_t s = {.B = 1, .T = 3, .H = 1, .dk = 1, .dv = 1, .causal = 1, .dtype = DTYPE_F32};
    sample_buf_t b;
    sample_full(&b, 1, 3, 1);
    double o[3];
    ck_assert_int_eq(ref_softmax_attn(&s, in, &b.s, o), 0);
    /* Logit gaps of 600+ make the softmax one-hot on token 0 to double precision. */
    ck_assert_double_eq(o[0], 5.0);
    ck_assert_double_eq(o[1], 5.0);
    ck_assert_double_eq(o[2], 5.0);
    sample_free(&b);
}
END_TEST

/* ---------------- errors ---------------- */

START_TEST(test_errors) {
    float buf[64] = {1};
    const float *in[] = {buf, buf, buf};
    sample_buf_t b;
    sample_full(&b, 1, 2, 2);
    double o[8];
    shape_t s = {.B = 1, .T = 2, .H = 1, .dk = 2, .dv = 3, .causal = 1};
    bench_clear_error();
    ck_assert_int_eq(ref_softmax_attn(&s, in, &b.s, o), -1);
    ck_assert_ptr_nonnull(strstr(bench_last_error(), "dk == dv"));
    s.dv = 2;
    b.t[1] = 2; /* t out of range */
    ck_assert_int_eq(ref_linear_attn(&s, in, &b.s, o), -1);
    b.t[0] = 1;
    b.t[1] = 0; /* descending */
    ck_assert_int_eq(ref_softmax_attn(&s, in, &b.s, o), -1);
    ck_assert_int_eq(ref_linear_attn_chunked(&s, in, 0, o), -1);
    sample_free(&b);
}
END_TEST

/* ---------------- the CHELA layer ---------------- */

/* ---------------- runner ---------------- */

static Suite *reference_suite(void) {
    Suite *su = suite_create("reference");
    TCase *la = tcase_create("linear_attn");
    tcase_add_loop_test(la, test_linear_attn_matches_quadratic, 0, 2);
    tcase_add_loop_test(la, test_linear_attn_chunked, 0, 2);
    tcase_set_timeout(la, 60);
    suite_add_tcase(su, la);

    TCase *smp = tcase_create("sampled");
    tcase_add_loop_test(smp, test_sampled_equals_full, 0, OP_COUNT + 2);
    tcase_set_timeout(smp, 60);
    suite_add_tcase(su, smp);

    TCase *conv = tcase_create("conv");
    tcase_add_test(conv, test_long_conv_toeplitz);
    tcase_add_test(conv, test_long_conv_impulse);
    tcase_add_test(conv, test_causal_conv_row);
    tcase_add_test(conv, test_reparam_equals_branches);
    tcase_set_timeout(conv, 60);
    suite_add_tcase(su, conv);

    TCase *sa = tcase_create("softmax_attn");
    tcase_add_test(sa, test_softmax_hand);
    tcase_add_loop_test(sa, test_softmax_matches_direct, 0, 2);
    tcase_add_test(sa, test_softmax_large_logits);
    tcase_add_test(sa, test_errors);
    tcase_set_timeout(sa, 60);
    suite_add_tcase(su, sa);
    return su;
}

int main(void) {
    SRunner *sr = srunner_create(reference_suite());
    srunner_run_all(sr, CK_ENV); /* CK_VERBOSITY=verbose lists every test */
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
