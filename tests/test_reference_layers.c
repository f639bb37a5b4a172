/* test_reference_layers.c: the whole layers' CPU references (chela, transformer) checked
 * against their stages recomputed from the spec's formulas and against direct forms that
 * share as little code with them as possible (test_reference.c has the ops). */
#include "ref_test_util.h"

static shape_t chela_shape(void) {
    return (shape_t){.B = 2, .T = 37, .d = 16, .z = 8, .v = 32, .causal = 1, .dtype = DTYPE_BF16};
}

START_TEST(test_chela_deterministic_finite) {
    shape_t s = chela_shape();
    inputs_t x1, x2;
    inputs_make(OP_CHELA, &s, SEED + 30, &x1);
    inputs_make(OP_CHELA, &s, SEED + 30, &x2);
    double *y1 = run_full(OP_CHELA, &s, &x1), *y2 = run_full(OP_CHELA, &s, &x2);
    size_t n = (size_t)s.B * s.T * s.d;
    ck_assert_msg(memcmp(y1, y2, n * sizeof(double)) == 0, "two runs differ");
    assert_finite(y1, n, "chela y");
    ck_assert(max_abs(y1, n) > 0.1);
    /* A different seed must change the output (the inputs really are used). */
    inputs_t x3;
    inputs_make(OP_CHELA, &s, SEED + 31, &x3);
    double *y3 = run_full(OP_CHELA, &s, &x3);
    ck_assert(memcmp(y1, y3, n * sizeof(double)) != 0);
    free(y1);
    free(y2);
    free(y3);
    inputs_free(&x1);
    inputs_free(&x2);
    inputs_free(&x3);
}
END_TEST

/* LayerNorm written out: biased variance, gain, bias. */
static void ln_direct(const double *x, int n, const float *g, const float *b, double *y) {
    double mu = 0.0, var = 0.0;
    for (int i = 0; i < n; i++) mu += x[i] / n;
    for (int i = 0; i < n; i++) var += (x[i] - mu) * (x[i] - mu) / n;
    for (int i = 0; i < n; i++) y[i] = g[i] * (x[i] - mu) / sqrt(var + CHELA_LN_EPS) + b[i];
}

static double silu(double a) { return a / (1.0 + exp(-a)); }
static double sigm(double a) { return 1.0 / (1.0 + exp(-a)); }

/* Stages 1-2: X~, U, Z. */
static void check_chela_conv(const shape_t *s, const inputs_t *x, int b,
                             const chela_stages_t *st) {
    const int R = st->rows, d = s->d, T = s->T, km = shape_km(T);
    const float *const *in = cin(x);
    double *want = dalloc((size_t)R * d), *xr = dalloc(d);
    for (int t = 0; t < R; t++) {
        to_double(in[CHELA_IN_X] + ((size_t)b * T + t) * d, d, xr);
        ln_direct(xr, d, in[CHELA_IN_LN1_G], in[CHELA_IN_LN1_B], want + (size_t)t * d);
    }
    assert_close(st->x_ln, want, (size_t)R * d, 1e-13, "X~ = LayerNorm1(X)");
    for (int t = 0; t < R; t++)
        for (int c = 0; c < d; c++) {
            double a = 0.0;
            for (int j = 0; j < 3 && j <= t; j++)
                a += in[CHELA_IN_K3][3 * c + j] * st->x_ln[(size_t)(t - j) * d + c];
            want[(size_t)t * d + c] = silu(a);
        }
    assert_close(st->u, want, (size_t)R * d, 1e-13, "U = SiLU(k3 * X~)");
    for (int t = 0; t < R; t++) /* branches form, straight from the spec */
        for (int c = 0; c < d; c++) {
            double zl = 0.0, z3 = 0.0, zm = 0.0;
            for (int j = 0; j <= t; j++) {
                double uj = st->u[(size_t)(t - j) * d + c];
                zl += in[CHELA_IN_KLONG][(size_t)c * T + j] * uj;
                if (j < 3) z3 += in[CHELA_IN_K3B][3 * c + j] * uj;
                if (j < km) zm += in[CHELA_IN_KM][km * c + j] * uj;
            }
            want[(size_t)t * d + c] = zl + z3 + zm;
        }
    assert_close(st->zc, want, (size_t)R * d, 1e-12, "Z = long + k3b + km branches");
    free(want);
    free(xr);
}

/* Z against the op reference ref_short_long_conv run on X~ as its input [1,d,T]
 * (rounded to float: the op's inputs are floats, hence the loose tolerance). */
static void check_chela_vs_slc(const shape_t *s, const inputs_t *x, const chela_stages_t *st) {
    const int R = st->rows, d = s->d;
    shape_t cs = {.B = 1, .T = R, .d = d, .dtype = DTYPE_F32};
    float *xt = malloc(sizeof(float) * (size_t)d * R), *kl = malloc(sizeof(float) * (size_t)d * R);
    ck_assert(xt && kl);
    for (int c = 0; c < d; c++)
        for (int t = 0; t < R; t++) {
            xt[(size_t)c * R + t] = (float)st->x_ln[(size_t)t * d + c];
            kl[(size_t)c * R + t] = x->t[CHELA_IN_KLONG][(size_t)c * s->T + t]; /* T -> R taps */
        }
    /* shape_km is a function of T: the layer's k_m must be what the op sees at T = R. */
    ck_assert_int_eq(shape_km(R), shape_km(s->T));
    const float *in[] = {xt, x->t[CHELA_IN_K3], kl, x->t[CHELA_IN_K3B], x->t[CHELA_IN_KM]};
    sample_buf_t b;
    sample_full(&b, 1, R, d);
    double *z = dalloc((size_t)R * d);
    ck_assert_int_eq(ref_short_long_conv(&cs, in, &b.s, z), 0);
    assert_close(st->zc, z, (size_t)R * d, 1e-5, "Z vs ref_short_long_conv(X~)");
    free(z);
    free(xt);
    free(kl);
    sample_free(&b);
}

/* Stage 3: projection, Q/K/V, attention (vs the O(T^2) definition and vs the op
 * reference ref_linear_attn), RMSNorm. */
static void check_chela_attention(const shape_t *s, const inputs_t *x, const chela_stages_t *st) {
    const int R = st->rows, d = s->d, z = s->z, v = s->v, np = st->np;
    const float *const *in = cin(x);
    double *want = dalloc((size_t)R * (np > v ? np : v));
    for (int t = 0; t < R; t++)
        for (int j = 0; j < np; j++) {
            double a = in[CHELA_IN_BPROJ][j];
            for (int i = 0; i < d; i++)
                a += st->zc[(size_t)t * d + i] * in[CHELA_IN_WPROJ][(size_t)i * np + j];
            want[(size_t)t * np + j] = a;
        }
    assert_close(st->proj, want, (size_t)R * np, 1e-13, "proj = Z W + b");
    for (int t = 0; t < R; t++)
        for (int i = 0; i < z; i++) {
            double zq = silu(st->proj[(size_t)t * np + i]);
            double q = in[CHELA_IN_KAPPA_Q][i] * zq + in[CHELA_IN_MU_Q][i];
            double k = in[CHELA_IN_KAPPA_K][i] * zq + in[CHELA_IN_MU_K][i];
            ck_assert_double_eq_tol(st->q[t * z + i], q, 1e-14);
            ck_assert_double_eq_tol(st->k[t * z + i], k, 1e-14);
        }
    for (int t = 0; t < R; t++)
        for (int j = 0; j < v; j++) {
            double a = in[CHELA_IN_BV][j];
            for (int i = 0; i < d; i++)
                a += st->x_ln[(size_t)t * d + i] * in[CHELA_IN_WV][(size_t)i * v + j];
            want[(size_t)t * v + j] = silu(a);
        }
    assert_close(st->val, want, (size_t)R * v, 1e-13, "V = SiLU(X~ Wv + bv)");

    la_quadratic(st->q, st->k, st->val, 1, R, z, v, 1, want);
    assert_close(st->o_raw, want, (size_t)R * v, 1e-12, "O (pre-norm) vs quadratic definition");

    /* The op reference on the same Q, K, V, rounded to its float inputs. */
    float *qkv = malloc(sizeof(float) * (size_t)R * (2 * z + v));
    ck_assert_ptr_nonnull(qkv);
    for (size_t i = 0; i < (size_t)R * z; i++) qkv[i] = (float)st->q[i];
    for (size_t i = 0; i < (size_t)R * z; i++) qkv[(size_t)R * z + i] = (float)st->k[i];
    for (size_t i = 0; i < (size_t)R * v; i++) qkv[(size_t)R * 2 * z + i] = (float)st->val[i];
    const float *lin[] = {qkv, qkv + (size_t)R * z, qkv + (size_t)R * 2 * z};
    shape_t ls = {.B = 1, .T = R, .H = 1, .dk = z, .dv = v, .causal = 1, .dtype = DTYPE_F32};
    sample_buf_t b;
    sample_full(&b, 1, R, v);
    ck_assert_int_eq(ref_linear_attn(&ls, lin, &b.s, want), 0);
    assert_close(st->o_raw, want, (size_t)R * v, 1e-5, "O (pre-norm) vs ref_linear_attn");
    sample_free(&b);
    free(qkv);

    for (int t = 0; t < R; t++) {
        const double *o = st->o_raw + (size_t)t * v;
        double ms = 0.0;
        for (int j = 0; j < v; j++) ms += o[j] * o[j] / v;
        for (int j = 0; j < v; j++) want[(size_t)t * v + j] = o[j] / sqrt(ms + CHELA_RMS_EPS);
    }
    assert_close(st->o, want, (size_t)R * v, 1e-13, "O = RMSNorm(O_raw)");
    free(want);
}

/* Stage 4: gates and FFN, Y and Y'. */
static void check_chela_output(const shape_t *s, const inputs_t *x, int b,
                               const chela_stages_t *st) {
    const int R = st->rows, d = s->d, z = s->z, v = s->v, np = st->np;
    const float *const *in = cin(x);
    double *y = dalloc((size_t)R * d), *yo = dalloc((size_t)R * d), *ln = dalloc(d);
    double *m = dalloc(v), *f = dalloc(2 * (size_t)d);
    for (int t = 0; t < R; t++) {
        const double *p = st->proj + (size_t)t * np;
        const double *ga = p + z, *go = p + z + v, *hz = p + z + v + d;
        for (int j = 0; j < v; j++) m[j] = st->o[(size_t)t * v + j] * sigm(ga[j]);
        for (int i = 0; i < d; i++) {
            double a = hz[i] + in[CHELA_IN_BH][i];
            for (int j = 0; j < v; j++) a += m[j] * in[CHELA_IN_UH][(size_t)j * d + i];
            double g = sigm(go[i]), xi = in[CHELA_IN_X][((size_t)b * s->T + t) * d + i];
            y[(size_t)t * d + i] = g * silu(a) + (1.0 - g) * xi;
        }
        ln_direct(y + (size_t)t * d, d, in[CHELA_IN_LN2_G], in[CHELA_IN_LN2_B], ln);
        for (int h = 0; h < 2 * d; h++) {
            double a = 0.0;
            for (int i = 0; i < d; i++) a += ln[i] * in[CHELA_IN_W1][(size_t)i * 2 * d + h];
            f[h] = silu(a);
        }
        for (int i = 0; i < d; i++) {
            double a = 0.0;
            for (int h = 0; h < 2 * d; h++) a += f[h] * in[CHELA_IN_W2][(size_t)h * d + i];
            yo[(size_t)t * d + i] = y[(size_t)t * d + i] + a;
        }
    }
    assert_close(st->y, y, (size_t)R * d, 1e-13, "Y = gated residual");
    assert_close(st->y_out, yo, (size_t)R * d, 1e-13, "Y' = Y + FFN");
    free(y);
    free(yo);
    free(ln);
    free(m);
    free(f);
}

START_TEST(test_chela_stages) {
    shape_t s = chela_shape();
    const int b = 1;
    inputs_t x;
    inputs_make(OP_CHELA, &s, SEED + 40, &x);
    chela_stages_t st;
    ck_assert_msg(ref_chela_stages(&s, cin(&x), b, s.T, &st) == 0, "%s", bench_last_error());
    ck_assert_int_eq(st.np, s.z + s.v + 2 * s.d);
    check_chela_conv(&s, &x, b, &st);
    check_chela_vs_slc(&s, &x, &st);
    check_chela_attention(&s, &x, &st);
    check_chela_output(&s, &x, b, &st);

    /* The op's reference is the stages' last output, bit for bit. */
    sample_buf_t smp;
    const int seq[] = {b};
    sample_make(&smp, 1, seq, s.T, NULL, s.d, NULL);
    double *out = dalloc((size_t)s.T * s.d);
    ck_assert_int_eq(ref_chela(&s, cin(&x), &smp.s, out), 0);
    ck_assert(memcmp(out, st.y_out, sizeof(double) * (size_t)s.T * s.d) == 0);
    /* Fewer rows: the same prefix (causality of every stage). */
    chela_stages_t st2;
    ck_assert_int_eq(ref_chela_stages(&s, cin(&x), b, 11, &st2), 0);
    ck_assert(memcmp(st2.y_out, st.y_out, sizeof(double) * 11 * (size_t)s.d) == 0);
    ref_chela_stages_free(&st2);

    free(out);
    sample_free(&smp);
    ref_chela_stages_free(&st);
    inputs_free(&x);
}
END_TEST

/* ---------------- the Transformer layer (the baseline layer) ---------------- */

static shape_t tf_shape(int B, int T, int H, int D) {
    return (shape_t){.B = B, .T = T, .H = H, .dk = D, .dv = D, .d = H * D, .causal = 1,
                     .dtype = DTYPE_BF16};
}

/* The layer from its definition, every row, sharing no code with ref_transformer:
 * all of Q, K, V first, softmax without the max shift (logits here are O(1)), GELU
 * spelled with erfc.  out [B,T,d]. */
static void tf_direct(const shape_t *s, const inputs_t *x, double *out) {
    const int T = s->T, d = s->d, H = s->H, D = s->dk;
    const float *const *in = cin(x);
    const float *Wqkv = in[TRANSFORMER_IN_WQKV], *Wo = in[TRANSFORMER_IN_WO];
    const float *W1 = in[TRANSFORMER_IN_W1], *W2 = in[TRANSFORMER_IN_W2];
    double *xr = dalloc(d), *xln = dalloc(d), *qkv = dalloc((size_t)T * 3 * d);
    double *a = dalloc(d), *y = dalloc(d), *f = dalloc(4 * (size_t)d), *e = dalloc(T);
    for (int b = 0; b < s->B; b++) {
        const float *X = in[TRANSFORMER_IN_X] + (size_t)b * T * d;
        for (int t = 0; t < T; t++) {
            to_double(X + (size_t)t * d, d, xr);
            ln_direct(xr, d, in[TRANSFORMER_IN_LN1_G], in[TRANSFORMER_IN_LN1_B], xln);
            for (int j = 0; j < 3 * d; j++) {
                double acc = in[TRANSFORMER_IN_BQKV][j];
                for (int i = 0; i < d; i++) acc += xln[i] * Wqkv[(size_t)i * 3 * d + j];
                qkv[(size_t)t * 3 * d + j] = acc;
            }
        }
        for (int t = 0; t < T; t++) {
            const double *q = qkv + (size_t)t * 3 * d;
            for (int h = 0; h < H; h++) {
                double den = 0.0;
                for (int u = 0; u <= t; u++) {
                    const double *k = qkv + (size_t)u * 3 * d + d;
                    double dot = 0.0;
                    for (int i = 0; i < D; i++) dot += q[h * D + i] * k[h * D + i];
                    e[u] = exp(dot / sqrt((double)D));
                    den += e[u];
                }
                for (int c = 0; c < D; c++) {
                    double acc = 0.0;
                    for (int u = 0; u <= t; u++)
                        acc += e[u] * qkv[(size_t)u * 3 * d + 2 * d + h * D + c];
                    a[h * D + c] = acc / den;
                }
            }
            for (int j = 0; j < d; j++) {
                double acc = in[TRANSFORMER_IN_BO][j];
                for (int i = 0; i < d; i++) acc += a[i] * Wo[(size_t)i * d + j];
                y[j] = X[(size_t)t * d + j] + acc;
            }
            ln_direct(y, d, in[TRANSFORMER_IN_LN2_G], in[TRANSFORMER_IN_LN2_B], xln);
            for (int j = 0; j < 4 * d; j++) {
                double acc = in[TRANSFORMER_IN_B1][j];
                for (int i = 0; i < d; i++) acc += xln[i] * W1[(size_t)i * 4 * d + j];
                f[j] = 0.5 * acc * erfc(-acc / sqrt(2.0)); /* x Phi(x) */
            }
            for (int j = 0; j < d; j++) {
                double acc = in[TRANSFORMER_IN_B2][j];
                for (int i = 0; i < 4 * d; i++) acc += f[i] * W2[(size_t)i * d + j];
                out[((size_t)b * T + t) * d + j] = y[j] + acc;
            }
        }
    }
    free(xr);
    free(xln);
    free(qkv);
    free(a);
    free(y);
    free(f);
    free(e);
}

/* The reference against the definition: the LM head dim with 2 heads, and 3 heads of
 * 32 (head slicing not tied to 64), short and longer T. */
START_TEST(test_transformer_direct) {
    const shape_t shapes[] = {tf_shape(2, 5, 2, 64), tf_shape(1, 40, 3, 32),
                              tf_shape(2, 17, 2, 64)};
    for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
        const shape_t s = shapes[c];
        inputs_t x;
        inputs_make(OP_TRANSFORMER, &s, SEED + 60 + c, &x);
        double *ref = run_full(OP_TRANSFORMER, &s, &x);
        const size_t n = (size_t)s.B * s.T * s.d;
        double *want = dalloc(n);
        tf_direct(&s, &x, want);
        assert_finite(ref, n, "transformer y");
        assert_close(ref, want, n, 1e-12, "transformer vs definition");
        free(ref);
        free(want);
        inputs_free(&x);
    }
}
END_TEST

/* Both branches are residual: with Wo, bo, W2, b2 zero the layer is the identity,
 * exactly; with only W2, b2 zero it is X + attention, which must differ from X. */
START_TEST(test_transformer_residual) {
    const shape_t s = tf_shape(2, 12, 2, 64);
    const size_t n = (size_t)s.B * s.T * s.d;
    inputs_t x;
    inputs_make(OP_TRANSFORMER, &s, SEED + 70, &x);
    const float *X = x.t[TRANSFORMER_IN_X];
    const int zero[] = {TRANSFORMER_IN_W2, TRANSFORMER_IN_B2, TRANSFORMER_IN_WO,
                        TRANSFORMER_IN_BO};
    for (int i = 0; i < 2; i++) memset(x.t[zero[i]], 0, x.desc[zero[i]].elems * sizeof(float));
    double *attn_only = run_full(OP_TRANSFORMER, &s, &x);
    size_t moved = 0;
    for (size_t i = 0; i < n; i++) moved += attn_only[i] != (double)X[i];
    ck_assert_msg(moved > n / 2, "attention branch changed only %zu of %zu outputs", moved, n);
    for (int i = 2; i < 4; i++) memset(x.t[zero[i]], 0, x.desc[zero[i]].elems * sizeof(float));
    double *ident = run_full(OP_TRANSFORMER, &s, &x);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(ident[i] == (double)X[i], "identity broken at %zu: %g vs %g", i, ident[i],
                      (double)X[i]);
    free(attn_only);
    free(ident);
    inputs_free(&x);
}
END_TEST

/* Causality: new values of x after t0 leave rows <= t0 unchanged to the bit and change
 * row t0 + 1; a sample ending at t0 never reads x past t0 (NaN there stays out). */
START_TEST(test_transformer_causal) {
    const shape_t s = tf_shape(2, 24, 2, 64);
    const int t0 = 9, d = s.d, T = s.T;
    const size_t past = (size_t)(t0 + 1) * d, all = (size_t)T * d;
    inputs_t x, x2;
    inputs_make(OP_TRANSFORMER, &s, SEED + 80, &x);
    inputs_make(OP_TRANSFORMER, &s, SEED + 80, &x2);
    double *y = run_full(OP_TRANSFORMER, &s, &x);
    for (int b = 0; b < s.B; b++)
        for (size_t i = past; i < all; i++) x2.t[TRANSFORMER_IN_X][b * all + i] *= -0.5f;
    double *y2 = run_full(OP_TRANSFORMER, &s, &x2);
    for (int b = 0; b < s.B; b++) {
        const double *r1 = y + b * all, *r2 = y2 + b * all;
        ck_assert(memcmp(r1, r2, sizeof(double) * past) == 0);
        ck_assert(memcmp(r1 + past, r2 + past, sizeof(double) * d) != 0);
    }
    /* Poison the future: a sample that ends at t0 must not touch it. */
    for (int b = 0; b < s.B; b++)
        for (size_t i = past; i < all; i++) x2.t[TRANSFORMER_IN_X][b * all + i] = NAN;
    const int seq[] = {1, 0}, t[] = {0, 4, t0}, col[] = {5, d - 1};
    sample_buf_t smp;
    sample_make(&smp, 2, seq, 3, t, 2, col);
    double part[2 * 3 * 2];
    ck_assert_int_eq(ref_transformer(&s, cin(&x2), &smp.s, part), 0);
    for (int si = 0; si < 2; si++)
        for (int ti = 0; ti < 3; ti++)
            for (int ci = 0; ci < 2; ci++)
                ck_assert_double_eq(part[(si * 3 + ti) * 2 + ci],
                                    y[seq[si] * all + (size_t)t[ti] * d + col[ci]]);
    sample_free(&smp);
    free(y);
    free(y2);
    inputs_free(&x);
    inputs_free(&x2);
}
END_TEST

/* The op as the issue states it: 12 d^2 weights, the FLOP count, its oracle, the shape
 * rule the reference enforces, and a cost that grows with the rows it must compute. */
START_TEST(test_transformer_op) {
    const op_desc_t *op = op_find("transformer");
    ck_assert_ptr_nonnull(op);
    ck_assert_int_eq(op->id, OP_TRANSFORMER);
    ck_assert_str_eq(op->gpu_oracle, "transformer/oracle_fp32");
    shape_t s = tf_shape(3, 1024, 16, 64);
    tensor_desc_t in[OP_MAX_INPUTS], out;
    ck_assert_int_eq(op->describe(&s, in, &out), TRANSFORMER_N_IN);
    const double d = s.d, tokens = (double)s.B * s.T;
    double weights = 0.0;
    for (int i = 0; i < TRANSFORMER_N_IN; i++)
        if (in[i].store == STORE_ACT && i != TRANSFORMER_IN_X) weights += (double)in[i].elems;
    ck_assert_double_eq(weights, 12.0 * d * d);
    ck_assert_uint_eq(out.elems, (size_t)s.B * s.T * s.d);
    const double attn = 2.0 * s.B * (double)s.T * s.T * d;
    ck_assert_double_eq_tol(op->flops(&s), tokens * 24.0 * d * d + attn, 1.0);
    const int t_lo[] = {3}, t_hi[] = {900}, col[] = {0};
    sample_buf_t lo, hi;
    sample_make(&lo, 1, NULL, 1, t_lo, 1, col);
    sample_make(&hi, 1, NULL, 1, t_hi, 1, col);
    ck_assert(op->reference_cost(&s, &hi.s) > 100 * op->reference_cost(&s, &lo.s));
    /* d = 130 is not H * dk: refused with a reason, not computed wrongly. */
    s = tf_shape(1, 4, 2, 64);
    s.d = 130;
    float buf[4] = {0};
    const float *fake[TRANSFORMER_N_IN];
    for (int i = 0; i < TRANSFORMER_N_IN; i++) fake[i] = buf;
    double o[1];
    bench_clear_error();
    ck_assert_int_eq(ref_transformer(&s, fake, &lo.s, o), -1);
    ck_assert_ptr_nonnull(strstr(bench_last_error(), "H * dk == d"));
    sample_free(&lo);
    sample_free(&hi);
}
END_TEST

/* ---------------- runner ---------------- */

static Suite *reference_layers_suite(void) {
    Suite *su = suite_create("reference_layers");
    TCase *ch = tcase_create("chela");
    tcase_add_test(ch, test_chela_deterministic_finite);
    tcase_add_test(ch, test_chela_stages);
    tcase_set_timeout(ch, 60);
    suite_add_tcase(su, ch);

    TCase *tf = tcase_create("transformer");
    tcase_add_test(tf, test_transformer_direct);
    tcase_add_test(tf, test_transformer_residual);
    tcase_add_test(tf, test_transformer_causal);
    tcase_add_test(tf, test_transformer_op);
    tcase_set_timeout(tf, 60);
    suite_add_tcase(su, tf);
    return su;
}

int main(void) {
    SRunner *sr = srunner_create(reference_layers_suite());
    srunner_run_all(sr, CK_ENV); /* CK_VERBOSITY=verbose lists every test */
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
