/* ref_grad_transformer.c: the transformer op's layer, forward and backward, whole tensors
 * in double (ref_grad_transformer.h).
 *
 * The forward is the definition, stage by stage over all B*T rows (ref_transformer.c instead
 * samples rows and columns; the test compares the two).  The attention is the op's:
 * ref_softmax_attn_fwd_d / ref_softmax_attn_bwd on heads gathered from the QKV columns into
 * ref_grad.h's [B,H,T,D], so the layer does not re-derive the softmax backward that
 * test_grad_attn already checks.
 *
 * The backward, with R = B*T rows and dZ meaning dL/dZ:
 *   GEMM  Z = X W + b:       dX = dZ W^T,  dW = X^T dZ,  db = sum over rows of dZ
 *   GELU  a = x Phi(x):      da/dx = Phi(x) + x phi(x)     (phi the standard normal pdf)
 *   LN    y = g xh + b, xh = (x - mean) r, r = 1/sqrt(var + eps), var biased:
 *         dg = sum_rows dy xh,  db = sum_rows dy,  and with gh = g dy,
 *         dx = r (gh - mean(gh) - xh mean(gh xh))       (means over the d features)
 *         (mean and var both depend on every x_i of the row; differentiating
 *          xh_j = (x_j - mean) r gives r (delta_ij - 1/d - xh_i xh_j / d).)
 *   Residuals add the incoming gradient: Y' = Y + F(Y) gives dY = dY' + dF/dY^T dY';
 *   Y = X + ... gives dX = dY + (LN1 branch).
 * Order: FFN (W2, GELU, W1, LN2), then the attention output (Wo), the attention (op
 * backward), QKV, LN1. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench_check.h"
#include "ref_grad.h"
#include "ref_grad_transformer.h"

/* ---------------- row helpers ---------------- */

/* The exact GELU, x Phi(x), and its derivative Phi(x) + x phi(x). */
static double gelu(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }
static double gelu_grad(double x) {
    const double Phi = 0.5 * (1.0 + erf(x / sqrt(2.0)));
    const double phi = exp(-0.5 * x * x) * 0.39894228040143267794; /* 1/sqrt(2 pi) */
    return Phi + x * phi;
}

/* Y [R,m] = X [R,k] W [k,m] (+ b [m] if non-NULL). */
static void gemm_fwd(const double *X, const double *W, const double *b, int R, int k, int m,
                     double *Y) {
    for (int r = 0; r < R; r++) {
        double *y = Y + (size_t)r * m;
        for (int j = 0; j < m; j++) y[j] = b ? b[j] : 0.0;
        for (int i = 0; i < k; i++) {
            const double xi = X[(size_t)r * k + i];
            const double *w = W + (size_t)i * m;
            for (int j = 0; j < m; j++) y[j] += xi * w[j];
        }
    }
}

/* Backward of Y = X W + b for upstream dY [R,m]: dX [R,k] = dY W^T, dW [k,m] = X^T dY,
 * db [m] = sum_r dY.  All three overwritten; dX may be NULL (not needed). */
static void gemm_bwd(const double *X, const double *W, const double *dY, int R, int k, int m,
                     double *dX, double *dW, double *db) {
    memset(dW, 0, (size_t)k * m * sizeof(double));
    memset(db, 0, (size_t)m * sizeof(double));
    for (int r = 0; r < R; r++) {
        const double *g = dY + (size_t)r * m, *x = X + (size_t)r * k;
        for (int j = 0; j < m; j++) db[j] += g[j];
        for (int i = 0; i < k; i++) {
            double *dw = dW + (size_t)i * m;
            const double xi = x[i];
            for (int j = 0; j < m; j++) dw[j] += xi * g[j];
        }
        if (dX)
            for (int i = 0; i < k; i++) {
                const double *w = W + (size_t)i * m;
                double acc = 0.0;
                for (int j = 0; j < m; j++) acc += g[j] * w[j];
                dX[(size_t)r * k + i] = acc;
            }
    }
}

/* LayerNorm of R rows of width n: Y = g (X - mean) rstd + b; keeps mean and rstd a row. */
static void ln_fwd(const double *X, const double *g, const double *b, int R, int n,
                   double *mean, double *rstd, double *Y) {
    for (int r = 0; r < R; r++) {
        const double *x = X + (size_t)r * n;
        double mu = 0.0, var = 0.0;
        for (int i = 0; i < n; i++) mu += x[i];
        mu /= n;
        for (int i = 0; i < n; i++) var += (x[i] - mu) * (x[i] - mu);
        var /= n;
        const double rs = 1.0 / sqrt(var + CHELA_LN_EPS);
        mean[r] = mu;
        rstd[r] = rs;
        for (int i = 0; i < n; i++) Y[(size_t)r * n + i] = g[i] * (x[i] - mu) * rs + b[i];
    }
}

/* Backward of ln_fwd for upstream dY [R,n] (header formula): dX [R,n], dg, db [n]
 * overwritten.  xh is recomputed from X, mean and rstd rather than stored. */
static void ln_bwd(const double *X, const double *g, const double *mean, const double *rstd,
                   const double *dY, int R, int n, double *dX, double *dg, double *db) {
    memset(dg, 0, (size_t)n * sizeof(double));
    memset(db, 0, (size_t)n * sizeof(double));
    for (int r = 0; r < R; r++) {
        const double *x = X + (size_t)r * n, *dy = dY + (size_t)r * n;
        double *dx = dX + (size_t)r * n;
        double m_gh = 0.0, m_ghxh = 0.0;
        for (int i = 0; i < n; i++) {
            const double xh = (x[i] - mean[r]) * rstd[r];
            dg[i] += dy[i] * xh;
            db[i] += dy[i];
            m_gh += g[i] * dy[i];
            m_ghxh += g[i] * dy[i] * xh;
        }
        m_gh /= n;
        m_ghxh /= n;
        for (int i = 0; i < n; i++) {
            const double xh = (x[i] - mean[r]) * rstd[r];
            dx[i] = rstd[r] * (g[i] * dy[i] - m_gh - xh * m_ghxh);
        }
    }
}

/* Heads between the layer's rows and ref_grad.h's [B,H,T,D]: the d columns col0 .. col0+d-1
 * of a [B*T, width] row block (col0 = 0, d, 2d picks q, k or v of QKV, width 3d; A and dA
 * are width d, col0 0), head h being columns col0 + h*D ...  to_heads copies rows -> heads,
 * from_heads the other way. */
static void to_heads(const ref_transformer_acts_t *a, const double *rows, int width, int col0,
                     double *heads) {
    const int B = a->B, T = a->T, H = a->H, D = a->D;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++)
                memcpy(heads + (((size_t)b * H + h) * T + t) * D,
                       rows + ((size_t)b * T + t) * width + col0 + (size_t)h * D,
                       (size_t)D * sizeof(double));
}
static void from_heads(const ref_transformer_acts_t *a, const double *heads, int width, int col0,
                       double *rows) {
    const int B = a->B, T = a->T, H = a->H, D = a->D;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++)
                memcpy(rows + ((size_t)b * T + t) * width + col0 + (size_t)h * D,
                       heads + (((size_t)b * H + h) * T + t) * D, (size_t)D * sizeof(double));
}

/* The attention op's shape for the layer's heads. */
static shape_t head_shape(const ref_transformer_acts_t *a) {
    return (shape_t){.B = a->B, .H = a->H, .T = a->T, .dk = a->D, .dv = a->D, .d = a->d,
                     .causal = 1};
}

static int shape_check(const shape_t *s, const char *what) {
    if (!s || s->B <= 0 || s->T <= 0 || s->d <= 0 || s->H <= 0 || s->dk <= 0)
        BENCH_FAIL("transformer %s: B, T, d, H, dk must be positive", what);
    if (s->dv != s->dk || (long long)s->H * s->dk != s->d)
        BENCH_FAIL("transformer %s: needs dk == dv and H * dk == d (got H %d, dk %d, dv %d, "
                   "d %d)",
                   what, s->H, s->dk, s->dv, s->d);
    return 0;
}

/* ---------------- activations ---------------- */

void ref_transformer_acts_free(ref_transformer_acts_t *a) {
    if (!a) return;
    /* One block holds every array; mean1 is its start (acts_alloc). */
    free(a->mean1);
    memset(a, 0, sizeof *a);
}

static int acts_alloc(const shape_t *s, ref_transformer_acts_t *a) {
    const size_t R = (size_t)s->B * s->T, d = (size_t)s->d;
    /* 4 row statistics, widths d (x_ln1, attn, y, x_ln2), 3d (qkv), 4d (h_pre, h_act). */
    const size_t n = R * (4 + 4 * d + 3 * d + 8 * d);
    memset(a, 0, sizeof *a);
    double *p = malloc(n * sizeof(double));
    if (!p) BENCH_FAIL("transformer forward: out of host memory (%zu doubles)", n);
    *a = (ref_transformer_acts_t){.B = s->B, .T = s->T, .d = s->d, .H = s->H, .D = s->dk};
    a->mean1 = p, p += R;
    a->rstd1 = p, p += R;
    a->mean2 = p, p += R;
    a->rstd2 = p, p += R;
    a->x_ln1 = p, p += R * d;
    a->qkv = p, p += R * 3 * d;
    a->attn = p, p += R * d;
    a->y = p, p += R * d;
    a->x_ln2 = p, p += R * d;
    a->h_pre = p, p += R * 4 * d;
    a->h_act = p;
    return 0;
}

/* ---------------- forward ---------------- */

int ref_transformer_fwd_d(const shape_t *s, const double *const *in, double *y,
                          ref_transformer_acts_t *acts) {
    if (shape_check(s, "forward")) return -1;
    ref_transformer_acts_t local, *a = acts ? acts : &local;
    if (acts_alloc(s, a)) return -1;
    const int R = s->B * s->T, d = s->d;
    const size_t nh = (size_t)R * d; /* elements of one of q, k, v in [B,H,T,D] */
    double *heads = malloc(4 * nh * sizeof(double));
    if (!heads) {
        ref_transformer_acts_free(a);
        BENCH_FAIL("transformer forward: out of host memory (%zu doubles)", 4 * nh);
    }
    double *q = heads, *k = q + nh, *v = k + nh, *o = v + nh;

    ln_fwd(in[TRANSFORMER_IN_X], in[TRANSFORMER_IN_LN1_G], in[TRANSFORMER_IN_LN1_B], R, d,
           a->mean1, a->rstd1, a->x_ln1);
    gemm_fwd(a->x_ln1, in[TRANSFORMER_IN_WQKV], in[TRANSFORMER_IN_BQKV], R, d, 3 * d, a->qkv);
    to_heads(a, a->qkv, 3 * d, 0, q);
    to_heads(a, a->qkv, 3 * d, d, k);
    to_heads(a, a->qkv, 3 * d, 2 * d, v);
    const shape_t hs = head_shape(a);
    int rc = ref_softmax_attn_fwd_d(&hs, q, k, v, o); /* scales by 1/sqrt(D) itself */
    if (rc == 0) {
        from_heads(a, o, d, 0, a->attn);
        /* Y = X + A Wo + bo */
        gemm_fwd(a->attn, in[TRANSFORMER_IN_WO], in[TRANSFORMER_IN_BO], R, d, d, a->y);
        for (size_t i = 0; i < nh; i++) a->y[i] += in[TRANSFORMER_IN_X][i];
        ln_fwd(a->y, in[TRANSFORMER_IN_LN2_G], in[TRANSFORMER_IN_LN2_B], R, d, a->mean2,
               a->rstd2, a->x_ln2);
        gemm_fwd(a->x_ln2, in[TRANSFORMER_IN_W1], in[TRANSFORMER_IN_B1], R, d, 4 * d, a->h_pre);
        for (size_t i = 0; i < 4 * nh; i++) a->h_act[i] = gelu(a->h_pre[i]);
        /* Y' = Y + GELU(..) W2 + b2 */
        gemm_fwd(a->h_act, in[TRANSFORMER_IN_W2], in[TRANSFORMER_IN_B2], R, 4 * d, d, y);
        for (size_t i = 0; i < nh; i++) y[i] += a->y[i];
    }
    free(heads);
    if (rc != 0 || !acts) ref_transformer_acts_free(a);
    return rc;
}

/* ---------------- backward ---------------- */

int ref_transformer_bwd(const shape_t *s, const double *const *in,
                        const ref_transformer_acts_t *acts, const double *dY,
                        double *const *grad) {
    if (shape_check(s, "backward")) return -1;
    ref_transformer_acts_t local;
    const ref_transformer_acts_t *a = acts;
    double *y_scratch = NULL;
    const int R = s->B * s->T, d = s->d;
    const size_t nh = (size_t)R * d;
    if (!a) { /* rerun the forward for its activations; its output is not needed */
        y_scratch = malloc(nh * sizeof(double));
        if (!y_scratch) BENCH_FAIL("transformer backward: out of host memory (%zu doubles)", nh);
        if (ref_transformer_fwd_d(s, in, y_scratch, &local)) {
            free(y_scratch);
            return -1;
        }
        a = &local;
    } else if (a->B != s->B || a->T != s->T || a->d != s->d || a->H != s->H || a->D != s->dk) {
        BENCH_FAIL("transformer backward: activations are for another shape");
    }

    /* Scratch: d_hid [R,4d]; d_ln, d_y, d_attn [R,d]; d_qkv [R,3d]; q,k,v,dO,dQ,dK,dV in
     * heads [B,H,T,D], nh each: 17 nh in all. */
    const size_t n = 17 * nh;
    double *buf = malloc(n * sizeof(double));
    if (!buf) {
        if (!acts) ref_transformer_acts_free(&local);
        free(y_scratch);
        BENCH_FAIL("transformer backward: out of host memory (%zu doubles)", n);
    }
    double *d_hid = buf, *d_ln = d_hid + 4 * nh, *d_y = d_ln + nh, *d_attn = d_y + nh;
    double *d_qkv = d_attn + nh, *q = d_qkv + 3 * nh, *k = q + nh, *v = k + nh, *dO = v + nh;
    double *dQ = dO + nh, *dK = dQ + nh, *dV = dK + nh;

    /* FFN: Y' = Y + GELU(H_pre) W2 + b2, H_pre = LN2(Y) W1 + b1. */
    gemm_bwd(a->h_act, in[TRANSFORMER_IN_W2], dY, R, 4 * d, d, d_hid, grad[TRANSFORMER_IN_W2],
             grad[TRANSFORMER_IN_B2]);
    for (size_t i = 0; i < 4 * nh; i++) d_hid[i] *= gelu_grad(a->h_pre[i]);
    gemm_bwd(a->x_ln2, in[TRANSFORMER_IN_W1], d_hid, R, d, 4 * d, d_ln, grad[TRANSFORMER_IN_W1],
             grad[TRANSFORMER_IN_B1]);
    ln_bwd(a->y, in[TRANSFORMER_IN_LN2_G], a->mean2, a->rstd2, d_ln, R, d, d_y,
           grad[TRANSFORMER_IN_LN2_G], grad[TRANSFORMER_IN_LN2_B]);
    for (size_t i = 0; i < nh; i++) d_y[i] += dY[i]; /* the FFN's residual */

    /* Y = X + A Wo + bo. */
    gemm_bwd(a->attn, in[TRANSFORMER_IN_WO], d_y, R, d, d, d_attn, grad[TRANSFORMER_IN_WO],
             grad[TRANSFORMER_IN_BO]);

    /* A = attention of the QKV heads: the op's backward on [B,H,T,D]. */
    to_heads(a, a->qkv, 3 * d, 0, q);
    to_heads(a, a->qkv, 3 * d, d, k);
    to_heads(a, a->qkv, 3 * d, 2 * d, v);
    to_heads(a, d_attn, d, 0, dO);
    const shape_t hs = head_shape(a);
    int rc = ref_softmax_attn_bwd(&hs, q, k, v, dO, dQ, dK, dV);
    if (rc == 0) {
        from_heads(a, dQ, 3 * d, 0, d_qkv);
        from_heads(a, dK, 3 * d, d, d_qkv);
        from_heads(a, dV, 3 * d, 2 * d, d_qkv);
        /* QKV = LN1(X) Wqkv + bqkv, then LN1; dX = d_y (the attention's residual) + LN1's. */
        gemm_bwd(a->x_ln1, in[TRANSFORMER_IN_WQKV], d_qkv, R, d, 3 * d, d_ln,
                 grad[TRANSFORMER_IN_WQKV], grad[TRANSFORMER_IN_BQKV]);
        ln_bwd(in[TRANSFORMER_IN_X], in[TRANSFORMER_IN_LN1_G], a->mean1, a->rstd1, d_ln, R, d,
               grad[TRANSFORMER_IN_X], grad[TRANSFORMER_IN_LN1_G], grad[TRANSFORMER_IN_LN1_B]);
        for (size_t i = 0; i < nh; i++) grad[TRANSFORMER_IN_X][i] += d_y[i];
    }
    free(buf);
    if (!acts) ref_transformer_acts_free(&local);
    free(y_scratch);
    return rc;
}
