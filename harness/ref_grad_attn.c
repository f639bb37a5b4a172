/* ref_grad_attn.c: double-precision CPU references for the backward pass of
 * linear_attn and softmax_attn (ref_grad.h), and independent double forwards.
 *
 * Notation, per sequence (one (b,h) pair): q' = q / sqrt(dk), rows indexed by
 * token, A(t) = the keys token t attends to ({s <= t} causal, all s otherwise).
 * L = sum_t dO_t . o_t is the scalar whose gradient the backward returns.
 *
 * ---- linear attention ------------------------------------------------------
 * o_t[c] = sum_i q'_t[i] S_t[i][c],  S_t[i][c] = sum_{s in A(t)} k_s[i] v_s[c].
 * So L = sum_t sum_{s in A(t)} sum_{i,c} dO_t[c] q'_t[i] k_s[i] v_s[c].
 *   dQ_t[i] = (1/sqrt(dk)) sum_c S_t[i][c] dO_t[c]        ("dO_t S_t^T")
 * Regrouping the same sum by key s, with the suffix state
 *   R_s[i][c] = sum_{t : s in A(t)} q'_t[i] dO_t[c]       (t >= s causal, all t otherwise)
 * gives L = sum_s sum_{i,c} k_s[i] v_s[c] R_s[i][c], hence
 *   dK_s[i] = sum_c R_s[i][c] v_s[c]                       (R_s v_s)
 *   dV_s[c] = sum_i k_s[i] R_s[i][c]                       (k_s R_s)
 * S is built by a forward scan and R by a backward scan: O(T dk dv) per
 * sequence, no T x T matrix.  Non-causal: S_t and R_s are the same for every
 * token (the full sums), computed once.
 *
 * ---- softmax attention (dk == dv = D) ---------------------------------------
 * a_ts = q_t . k_s / sqrt(D), P_ts = softmax over s in A(t) of a_ts,
 * o_t = sum_{s in A(t)} P_ts v_s.
 *   dV_s  = sum_{t : s in A(t)} P_ts dO_t
 *   dP_ts = dO_t . v_s
 *   dA_ts = P_ts (dP_ts - sum_{u in A(t)} P_tu dP_tu) = P_ts (dP_ts - dO_t . o_t)
 *           (softmax Jacobian; the row sum equals dO_t . o_t since o_t = sum P v)
 *   dQ_t  = (1/sqrt(D)) sum_{s in A(t)} dA_ts k_s
 *   dK_s  = (1/sqrt(D)) sum_{t : s in A(t)} dA_ts q_t
 * Row by row, keeping one row of P: O(T^2 D) per sequence, like the forward. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench_check.h"
#include "ref_grad.h"

static int la_shape_ok(const shape_t *s) {
    return s && s->B > 0 && s->H > 0 && s->T > 0 && s->dk > 0 && s->dv > 0;
}

static int sa_shape_ok(const shape_t *s) {
    return s && s->B > 0 && s->H > 0 && s->T > 0 && s->dk > 0 && s->dv == s->dk;
}

static double dot(const double *a, const double *b, int n) {
    double acc = 0.0;
    for (int i = 0; i < n; i++) acc += a[i] * b[i];
    return acc;
}

/* y += a * x over n elements. */
static void axpy(double a, const double *x, double *y, int n) {
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

/* ---------------- linear attention: forward (O(T^2), pairwise) ---------------- */

/* Pairwise rather than the state form on purpose: the backward uses the state
 * form, so finite differences of this forward test its regrouping. */
int ref_linear_attn_fwd_d(const shape_t *s, const double *q, const double *k, const double *v,
                          double *o) {
    if (!la_shape_ok(s)) BENCH_FAIL("linear_attn forward: B, H, T, dk, dv must be positive");
    const int T = s->T, dk = s->dk, dv = s->dv;
    const double scale = 1.0 / sqrt((double)dk);
    for (int seq = 0; seq < s->B * s->H; seq++) {
        const double *qs = q + (size_t)seq * T * dk, *ks = k + (size_t)seq * T * dk;
        const double *vs = v + (size_t)seq * T * dv;
        double *os = o + (size_t)seq * T * dv;
        for (int t = 0; t < T; t++) {
            double *ot = os + (size_t)t * dv;
            for (int c = 0; c < dv; c++) ot[c] = 0.0;
            const int last = s->causal ? t : T - 1;
            for (int u = 0; u <= last; u++) {
                const double a = scale * dot(qs + (size_t)t * dk, ks + (size_t)u * dk, dk);
                axpy(a, vs + (size_t)u * dv, ot, dv);
            }
        }
    }
    return 0;
}

/* ---------------- linear attention: backward (O(T dk dv), two scans) ---------------- */

/* M[i][c] += x[i] y[c], M is [nx][ny]. */
static void outer_add(double *M, const double *x, int nx, const double *y, int ny) {
    for (int i = 0; i < nx; i++) axpy(x[i], y, M + (size_t)i * ny, ny);
}

/* out[i] = scale * sum_c M[i][c] y[c]  (M y). */
static void mat_vec(const double *M, int nx, int ny, const double *y, double scale, double *out) {
    for (int i = 0; i < nx; i++) out[i] = scale * dot(M + (size_t)i * ny, y, ny);
}

/* out[c] = sum_i x[i] M[i][c]  (x^T M). */
static void vec_mat(const double *x, const double *M, int nx, int ny, double *out) {
    for (int c = 0; c < ny; c++) out[c] = 0.0;
    for (int i = 0; i < nx; i++) axpy(x[i], M + (size_t)i * ny, out, ny);
}

int ref_linear_attn_bwd(const shape_t *s, const double *q, const double *k, const double *v,
                        const double *dO, double *dQ, double *dK, double *dV) {
    if (!la_shape_ok(s)) BENCH_FAIL("linear_attn backward: B, H, T, dk, dv must be positive");
    const int T = s->T, dk = s->dk, dv = s->dv;
    const double scale = 1.0 / sqrt((double)dk);
    const size_t n_state = (size_t)dk * dv;
    /* S and R [dk][dv], plus one scaled query row q' [dk]. */
    double *buf = malloc((2 * n_state + (size_t)dk) * sizeof(double));
    if (!buf) BENCH_FAIL("linear_attn backward: out of host memory (%zu doubles)", 2 * n_state);
    double *S = buf, *R = buf + n_state, *qp = buf + 2 * n_state;

    for (int seq = 0; seq < s->B * s->H; seq++) {
        const size_t ok = (size_t)seq * T * dk, ov = (size_t)seq * T * dv;
        const double *qs = q + ok, *ks = k + ok, *vs = v + ov, *g = dO + ov;
        double *dq = dQ + ok, *dk_ = dK + ok, *dv_ = dV + ov;

        /* dQ_t = (1/sqrt(dk)) S_t dO_t.  Causal: S_t grows with t (forward scan);
         * non-causal: S is the full sum for every t. */
        memset(S, 0, n_state * sizeof(double));
        if (!s->causal)
            for (int u = 0; u < T; u++)
                outer_add(S, ks + (size_t)u * dk, dk, vs + (size_t)u * dv, dv);
        for (int t = 0; t < T; t++) {
            if (s->causal) outer_add(S, ks + (size_t)t * dk, dk, vs + (size_t)t * dv, dv);
            mat_vec(S, dk, dv, g + (size_t)t * dv, scale, dq + (size_t)t * dk);
        }

        /* dK_s = R_s v_s, dV_s = k_s^T R_s.  Causal: R_s = sum_{t>=s} q'_t^T dO_t
         * (backward scan, token s included before use); non-causal: the full sum. */
        memset(R, 0, n_state * sizeof(double));
        if (!s->causal)
            for (int t = 0; t < T; t++) {
                for (int i = 0; i < dk; i++) qp[i] = scale * qs[(size_t)t * dk + i];
                outer_add(R, qp, dk, g + (size_t)t * dv, dv);
            }
        for (int u = T - 1; u >= 0; u--) {
            if (s->causal) {
                for (int i = 0; i < dk; i++) qp[i] = scale * qs[(size_t)u * dk + i];
                outer_add(R, qp, dk, g + (size_t)u * dv, dv);
            }
            mat_vec(R, dk, dv, vs + (size_t)u * dv, 1.0, dk_ + (size_t)u * dk);
            vec_mat(ks + (size_t)u * dk, R, dk, dv, dv_ + (size_t)u * dv);
        }
    }
    free(buf);
    return 0;
}

/* ---------------- softmax attention ---------------- */

/* p[0..last] = softmax over u <= last of q_t . k_u / sqrt(D) (last = t causal, T - 1 not);
 * the row maximum is subtracted before exp so large logits cannot overflow. */
static void sa_probs(const double *qt, const double *ks, int D, int last, double *p) {
    const double scale = 1.0 / sqrt((double)D);
    double mx = -INFINITY;
    for (int u = 0; u <= last; u++) {
        p[u] = scale * dot(qt, ks + (size_t)u * D, D);
        if (p[u] > mx) mx = p[u];
    }
    double sum = 0.0;
    for (int u = 0; u <= last; u++) {
        p[u] = exp(p[u] - mx);
        sum += p[u];
    }
    for (int u = 0; u <= last; u++) p[u] /= sum;
}

int ref_softmax_attn_fwd_d(const shape_t *s, const double *q, const double *k, const double *v,
                           double *o) {
    if (!sa_shape_ok(s))
        BENCH_FAIL("softmax_attn forward: B, H, T, dk must be positive and dv == dk");
    const int T = s->T, D = s->dk;
    double *p = malloc((size_t)T * sizeof(double));
    if (!p) BENCH_FAIL("softmax_attn forward: out of host memory (%d doubles)", T);
    for (int seq = 0; seq < s->B * s->H; seq++) {
        const size_t off = (size_t)seq * T * D;
        for (int t = 0; t < T; t++) {
            const int last = s->causal ? t : T - 1;
            sa_probs(q + off + (size_t)t * D, k + off, D, last, p);
            double *ot = o + off + (size_t)t * D;
            for (int c = 0; c < D; c++) ot[c] = 0.0;
            for (int u = 0; u <= last; u++) axpy(p[u], v + off + (size_t)u * D, ot, D);
        }
    }
    free(p);
    return 0;
}

int ref_softmax_attn_bwd(const shape_t *s, const double *q, const double *k, const double *v,
                         const double *dO, double *dQ, double *dK, double *dV) {
    if (!sa_shape_ok(s))
        BENCH_FAIL("softmax_attn backward: B, H, T, dk must be positive and dv == dk");
    const int T = s->T, D = s->dk;
    const double scale = 1.0 / sqrt((double)D);
    /* One row of P and of dA, plus o_t (recomputed: the backward takes no o). */
    double *buf = malloc((2 * (size_t)T + (size_t)D) * sizeof(double));
    if (!buf) BENCH_FAIL("softmax_attn backward: out of host memory (%d doubles)", 2 * T + D);
    double *p = buf, *dA = buf + T, *ot = buf + 2 * (size_t)T;
    const size_t n = (size_t)s->B * s->H * T * D;
    memset(dK, 0, n * sizeof(double)); /* dK and dV accumulate over the query rows that see s */
    memset(dV, 0, n * sizeof(double));
    for (int seq = 0; seq < s->B * s->H; seq++) {
        const size_t off = (size_t)seq * T * D;
        const double *ks = k + off, *vs = v + off;
        for (int t = 0; t < T; t++) {
            const double *qt = q + off + (size_t)t * D, *gt = dO + off + (size_t)t * D;
            const int last = s->causal ? t : T - 1;
            sa_probs(qt, ks, D, last, p);
            for (int c = 0; c < D; c++) ot[c] = 0.0;
            for (int u = 0; u <= last; u++) axpy(p[u], vs + (size_t)u * D, ot, D);
            const double row = dot(gt, ot, D); /* sum_u P_tu dP_tu */
            double *dqt = dQ + off + (size_t)t * D;
            for (int c = 0; c < D; c++) dqt[c] = 0.0;
            for (int u = 0; u <= last; u++) {
                dA[u] = p[u] * (dot(gt, vs + (size_t)u * D, D) - row);
                axpy(p[u], gt, dV + off + (size_t)u * D, D);
                axpy(scale * dA[u], ks + (size_t)u * D, dqt, D);
                axpy(scale * dA[u], qt, dK + off + (size_t)u * D, D);
            }
        }
    }
    free(buf);
    return 0;
}
