/* ref_grad_mega.c: the MEGA layer's backward in double, by the chain rule written out
 * (ref_grad_mega.h; the forward that saves the activations is ref_grad_mega_fwd.c).
 *
 * Per token row r (= b*T + t), walking the forward of chela-spec.md's "hybrid baseline"
 * backwards, with s(p) = 1/(1 + e^-p), SiLU'(p) = s(p)(1 + p(1 - s(p))), "." elementwise:
 *
 *   FFN     Y' = Y + F W2, F = SiLU(P), P = LN2(Y) W1:
 *           dW2 = F^T dY',  dF = dY' W2^T,  dP = dF . SiLU'(P),  dW1 = LN2(Y)^T dP,
 *           dLN2 = dP W1^T, then LayerNorm's backward (below) adds to dY = dY' + ...
 *   gate    Y = phi . H + (1 - phi) . X, phi = s(F):
 *           dH = dY . phi,  dF = dY . (H - X) . phi(1 - phi),  dX (residual) = dY . (1 - phi)
 *   H^      H = SiLU(A), A = Hz + M Uh + bh:  dA = dH . SiLU'(A) = dHz = dbh's rows,
 *           dUh = M^T dA,  dM = dA Uh^T
 *   reset   M = gamma . O, gamma = SiLU(G):  dO = dM . gamma,  dG = dM . O . SiLU'(G)
 *   attn    O = softmax attention within chunks: chunk_attn_bwd (below)
 *   V       V = SiLU(Pv), Pv = X~ Wv + bv:  dPv = dV . SiLU'(Pv), dWv = X~^T dPv,
 *           dX~ = dPv Wv^T
 *   Q, K    Q = kq . Zq + mq, K = kk . Zq + mk, Zq = SiLU(Pz):  dkq = sum dQ . Zq,
 *           dmq = sum dQ (likewise K),  dPz = (dQ . kq + dK . kk) . SiLU'(Pz)
 *   proj    [Pz | G | F | Hz] = X' Wp + bp:  dWp = X'^T dproj,  dX' = dproj Wp^T
 *   EMA     X' = k * X~ per channel (causal conv, kernel k [d,T]): ref_long_conv_bwd gives
 *           dX~ (correlation of dX' with k) and dk (correlation of dX' with X~, summed over
 *           the batch); then ema_params_bwd chains dk to alpha, delta, beta, eta
 *   LN      y = x^ . g + b, x^ = (x - mean) r:  dg = sum dy . x^,  db = sum dy,
 *           dx = r (dx^ - mean(dx^) - x^ mean(dx^ . x^)) with dx^ = dy . g
 * and dX = the residual's part + LayerNorm1's.  Bias and parameter gradients sum over
 * every token (b, t): parameters are shared by the whole batch. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench_check.h"
#include "ref_grad_layer.h"
#include "ref_grad_conv.h"
#include "ref_grad_mega.h"

/* ---------------- chunked softmax attention ---------------- */

/* Query row q_t's probabilities over keys s0..s0+i of its chunk (i = t - s0): the forward's
 * softmax again, for a caller without saved probabilities. */
static void chunk_probs(const double *q, const double *k, size_t r0, int i, int z, double *p) {
    const double scale = 1.0 / sqrt((double)z);
    double mx = -INFINITY, sum = 0.0;
    for (int u = 0; u <= i; u++) {
        double dot = 0.0;
        for (int e = 0; e < z; e++) dot += q[(r0 + i) * z + e] * k[(r0 + u) * z + e];
        p[u] = dot * scale;
        mx = fmax(mx, p[u]);
    }
    for (int u = 0; u <= i; u++) sum += (p[u] = exp(p[u] - mx));
    for (int u = 0; u <= i; u++) p[u] /= sum;
}

/* The attention's backward, written out rather than calling ref_softmax_attn_bwd
 * (ref_grad.h), which wants the value width equal to the query width (dk == dv) while
 * MEGA's V is v wide and Q, K z wide.  Per query row t of chunk [s0, s0 + L), with
 * P_tu = softmax_u(S_tu), S_tu = q_t . k_u / sqrt(z), u in [s0, t]:
 *   dV_u += P_tu dO_t;  dP_tu = dO_t . v_u;  dS_tu = P_tu (dP_tu - sum_u' P_tu' dP_tu');
 *   dQ_t = sum_u dS_tu k_u / sqrt(z);  dK_u += dS_tu q_t / sqrt(z).
 * Nothing crosses a chunk boundary: each chunk is an independent causal attention.
 * prob: the forward's [B*T, chunk] probabilities, or NULL to recompute them per row. */
static int chunk_attn_bwd(int B, int T, int z, int nv, int c, const double *q, const double *k,
                          const double *v, const double *prob, const double *dO, double *dQ,
                          double *dK, double *dV) {
    const double scale = 1.0 / sqrt((double)z);
    double *buf = malloc(2 * (size_t)c * sizeof(double));
    if (!buf) BENCH_FAIL("mega attention backward: out of host memory (%d doubles)", 2 * c);
    double *own_p = buf, *dS = buf + c;
    memset(dK, 0, (size_t)B * T * z * sizeof(double)); /* dK, dV accumulate over queries */
    memset(dV, 0, (size_t)B * T * nv * sizeof(double));
    for (int b = 0; b < B; b++)
        for (int s0 = 0; s0 < T; s0 += c) {
            const int L = T - s0 < c ? T - s0 : c;
            const size_t r0 = (size_t)b * T + s0;
            for (int i = 0; i < L; i++) {
                const size_t rt = r0 + i;
                const double *p = prob ? prob + rt * c : own_p, *g = dO + rt * nv;
                if (!prob) chunk_probs(q, k, r0, i, z, own_p);
                double row = 0.0;
                for (int u = 0; u <= i; u++) {
                    double dp = 0.0;
                    for (int j = 0; j < nv; j++) {
                        dp += g[j] * v[(r0 + u) * nv + j];
                        dV[(r0 + u) * nv + j] += p[u] * g[j];
                    }
                    dS[u] = dp;
                    row += p[u] * dp;
                }
                double *dq = dQ + rt * z;
                for (int e = 0; e < z; e++) dq[e] = 0.0;
                for (int u = 0; u <= i; u++) {
                    const double ds = p[u] * (dS[u] - row) * scale;
                    for (int e = 0; e < z; e++) {
                        dq[e] += ds * k[(r0 + u) * z + e];
                        dK[(r0 + u) * z + e] += ds * q[rt * z + e];
                    }
                }
            }
        }
    free(buf);
    return 0;
}

int ref_mega_chunk_attn_bwd(int B, int T, int z, int nv, int chunk, const double *q,
                            const double *k, const double *v, const double *dO, double *dQ,
                            double *dK, double *dV) {
    if (B <= 0 || T <= 0 || z <= 0 || nv <= 0 || chunk <= 0)
        BENCH_FAIL("mega attention backward: B, T, z, nv, chunk must be positive");
    if (!q || !k || !v || !dO || !dQ || !dK || !dV)
        BENCH_FAIL("mega attention backward: null tensor");
    return chunk_attn_bwd(B, T, z, nv, chunk < T ? chunk : T, q, k, v, NULL, dO, dQ, dK, dV);
}

/* ---------------- the EMA's parameters ---------------- */

/* dk [d,T] is dL/dk of the EMA kernel k[c][t] = sum_j w_j r_j^t, w = eta a beta,
 * r = 1 - a g, a = s(alpha), g = s(delta).  With S0 = sum_t dk[t] r^t and
 * S1 = sum_t dk[t] t r^(t-1) (the t = 0 term is 0):
 *   d eta = a beta S0,  d beta = eta a S0,
 *   dL/da = eta beta S0 - g w S1,  dL/dg = -a w S1,
 *   d alpha = dL/da a(1 - a),  d delta = dL/dg g(1 - g)   (through the sigmoids). */
static void ema_params_bwd(const double *const *in, int d, int T, const double *dk,
                           double *const *grad) {
    for (int c = 0; c < d; c++)
        for (int j = 0; j < MEGA_EMA_H; j++) {
            const size_t i = (size_t)c * MEGA_EMA_H + j;
            const double a = rg_logistic(in[MEGA_IN_ALPHA][i]);
            const double g = rg_logistic(in[MEGA_IN_DELTA][i]);
            const double eta = in[MEGA_IN_ETA][i], beta = in[MEGA_IN_BETA][i];
            const double w = eta * a * beta, r = 1.0 - a * g;
            double s0 = 0.0, s1 = 0.0, pw = 1.0, pw_prev = 0.0; /* r^t and r^(t-1) */
            for (int t = 0; t < T; t++) {
                s0 += dk[(size_t)c * T + t] * pw;
                if (t > 0) s1 += dk[(size_t)c * T + t] * t * pw_prev;
                pw_prev = pw;
                pw *= r;
            }
            grad[MEGA_IN_ETA][i] = a * beta * s0;
            grad[MEGA_IN_BETA][i] = eta * a * s0;
            grad[MEGA_IN_ALPHA][i] = (eta * beta * s0 - g * w * s1) * a * (1.0 - a);
            grad[MEGA_IN_DELTA][i] = -a * w * s1 * g * (1.0 - g);
        }
}

/* ---------------- the backward ---------------- */

/* Scratch of one backward, every array [n = B*T rows, width]. */
typedef struct {
    double *dy;      /* [n,d]   dL/dY (the residual stream before the FFN)     */
    double *df;      /* [n,2d]  dL/dF, then dL/dP in place                     */
    double *dln2;    /* [n,d]   dL/d LayerNorm2(Y)                             */
    double *dm;      /* [n,v]   dL/dM                                          */
    double *d_o;     /* [n,v]   dL/dO                                          */
    double *dq, *dk; /* [n,z]                                                  */
    double *dv;      /* [n,v]   dL/dV, then dL/dPv in place                    */
    double *dproj;   /* [n,np]  [dPz | dG | dF | dHz]                          */
    double *dxe;     /* [n,d]   dL/dX'                                         */
    double *dxln;    /* [n,d]   dL/dX~                                         */
    double *t_x, *t_dz, *t_dx; /* [B,d,T] the conv backward's layout           */
    double *dkern;   /* [d,T]   dL/dk of the EMA kernel                        */
    double *block_;
} bwd_scratch_t;

static int scratch_alloc(const mega_acts_t *a, bwd_scratch_t *w) {
    const size_t n = (size_t)a->B * a->T, d = (size_t)a->d, z = (size_t)a->z, v = (size_t)a->v;
    const size_t total =
        n * (d + 2 * d + d + 3 * v + 2 * z + (size_t)a->np + 2 * d + 3 * d) + d * (size_t)a->T;
    double *p = calloc(total, sizeof(double));
    if (!p) BENCH_FAIL("mega backward reference: out of host memory (%zu doubles)", total);
    w->block_ = p;
    w->dy = p, p += n * d;
    w->df = p, p += n * 2 * d;
    w->dln2 = p, p += n * d;
    w->dm = p, p += n * v;
    w->d_o = p, p += n * v;
    w->dv = p, p += n * v;
    w->dq = p, p += n * z;
    w->dk = p, p += n * z;
    w->dproj = p, p += n * (size_t)a->np;
    w->dxe = p, p += n * d;
    w->dxln = p, p += n * d;
    w->t_x = p, p += n * d;
    w->t_dz = p, p += n * d;
    w->t_dx = p, p += n * d;
    w->dkern = p;
    return 0;
}

/* FFN and LayerNorm2: from dY' to dL/dY in w->dy. */
static void bwd_ffn(const mega_acts_t *a, const double *const *in, const double *dY,
                    double *const *grad, bwd_scratch_t *w) {
    const size_t n = (size_t)a->B * a->T;
    const int d = a->d;
    rg_gemm_bwd_w(a->f, dY, n, 2 * d, d, grad[MEGA_IN_W2]);
    rg_gemm_bwd_x(dY, in[MEGA_IN_W2], n, 2 * d, d, w->df, 0);
    for (size_t i = 0; i < n * 2 * d; i++) w->df[i] *= rg_silu_deriv(a->f_pre[i]);
    rg_gemm_bwd_w(a->ln2, w->df, n, d, 2 * d, grad[MEGA_IN_W1]);
    rg_gemm_bwd_x(w->df, in[MEGA_IN_W1], n, d, 2 * d, w->dln2, 0);
    /* Y feeds the output directly (the FFN's residual) and through LayerNorm2. */
    memcpy(w->dy, dY, n * d * sizeof(double));
    rg_layer_norm_bwd(a->y_hat, a->ln2_rstd, in[MEGA_IN_LN2_G], w->dln2, n, d, w->dy,
                   grad[MEGA_IN_LN2_G], grad[MEGA_IN_LN2_B]);
}

/* The update gate, H^ and the reset gate: fills the F, Hz and G columns of dproj, dX's
 * residual part, dUh, dbh and dL/dO (w->d_o). */
static void bwd_gates(const mega_acts_t *a, const double *const *in, double *const *grad,
                      bwd_scratch_t *w) {
    const size_t n = (size_t)a->B * a->T;
    const int d = a->d, z = a->z, v = a->v, np = a->np;
    double *dX = grad[MEGA_IN_X];
    for (size_t r = 0; r < n; r++)
        for (int j = 0; j < d; j++) {
            const size_t e = r * d + j;
            const double g = a->gate[e], dy = w->dy[e];
            dX[e] = dy * (1.0 - g);
            w->dproj[r * np + z + v + j] = dy * (a->h[e] - in[MEGA_IN_X][e]) * g * (1.0 - g);
            /* dHz = dL/dA, A = Hz + M Uh + bh the pre-SiLU of H^. */
            w->dproj[r * np + z + v + d + j] = dy * g * rg_silu_deriv(a->h_pre[e]);
        }
    /* dL/dA as a dense [n,d] matrix for the GEMM backwards (dxe is free until the
     * projection's backward). */
    double *dA = w->dxe;
    for (size_t r = 0; r < n; r++)
        memcpy(dA + r * d, w->dproj + r * np + z + v + d, (size_t)d * sizeof(double));
    rg_gemm_bwd_w(a->m, dA, n, v, d, grad[MEGA_IN_UH]);
    rg_col_sum(dA, n, d, grad[MEGA_IN_BH]);
    rg_gemm_bwd_x(dA, in[MEGA_IN_UH], n, v, d, w->dm, 0);
    for (size_t r = 0; r < n; r++)
        for (int j = 0; j < v; j++) {
            const size_t e = r * v + j;
            w->d_o[e] = w->dm[e] * a->gam[e];
            w->dproj[r * np + z + j] = w->dm[e] * a->o[e] * rg_silu_deriv(a->proj[r * np + z + j]);
        }
}

/* The attention, V and Q/K: the Zq columns of dproj, the V path's part of dX~, and the
 * gradients of w_v, b_v, kappa and mu. */
static int bwd_attention(const mega_acts_t *a, const double *const *in, double *const *grad,
                         bwd_scratch_t *w) {
    const size_t n = (size_t)a->B * a->T;
    const int d = a->d, z = a->z, v = a->v, np = a->np;
    if (chunk_attn_bwd(a->B, a->T, z, v, a->chunk, a->q, a->k, a->val, a->prob, w->d_o, w->dq,
                       w->dk, w->dv))
        return -1;

    for (size_t i = 0; i < n * v; i++) w->dv[i] *= rg_silu_deriv(a->v_pre[i]);
    rg_gemm_bwd_w(a->x_ln, w->dv, n, d, v, grad[MEGA_IN_WV]);
    rg_col_sum(w->dv, n, v, grad[MEGA_IN_BV]);
    rg_gemm_bwd_x(w->dv, in[MEGA_IN_WV], n, d, v, w->dxln, 0);

    double *dkq = grad[MEGA_IN_KAPPA_Q], *dmq = grad[MEGA_IN_MU_Q];
    double *dkk = grad[MEGA_IN_KAPPA_K], *dmk = grad[MEGA_IN_MU_K];
    memset(dkq, 0, (size_t)z * sizeof(double));
    memset(dmq, 0, (size_t)z * sizeof(double));
    memset(dkk, 0, (size_t)z * sizeof(double));
    memset(dmk, 0, (size_t)z * sizeof(double));
    for (size_t r = 0; r < n; r++)
        for (int i = 0; i < z; i++) {
            const size_t e = r * z + i;
            dkq[i] += w->dq[e] * a->zq[e];
            dmq[i] += w->dq[e];
            dkk[i] += w->dk[e] * a->zq[e];
            dmk[i] += w->dk[e];
            /* Q and K share Zq, so its gradient is the sum of both paths. */
            const double dzq = w->dq[e] * in[MEGA_IN_KAPPA_Q][i] +
                               w->dk[e] * in[MEGA_IN_KAPPA_K][i];
            w->dproj[r * np + i] = dzq * rg_silu_deriv(a->proj[r * np + i]);
        }
    return 0;
}

/* The fused projection, the EMA and LayerNorm1: the rest of dX and the parameters before
 * the projection. */
static int bwd_input_side(const mega_acts_t *a, const double *const *in, double *const *grad,
                          bwd_scratch_t *w) {
    const size_t n = (size_t)a->B * a->T;
    const int B = a->B, T = a->T, d = a->d, np = a->np;
    rg_gemm_bwd_w(a->xe, w->dproj, n, d, np, grad[MEGA_IN_WPROJ]);
    rg_col_sum(w->dproj, n, np, grad[MEGA_IN_BPROJ]);
    rg_gemm_bwd_x(w->dproj, in[MEGA_IN_WPROJ], n, d, np, w->dxe, 0);

    /* X' = k * X~: the long conv's backward gives dX~ and the kernel's gradient. */
    rg_btd_to_bdt(a->x_ln, B, T, d, w->t_x);
    rg_btd_to_bdt(w->dxe, B, T, d, w->t_dz);
    if (ref_long_conv_bwd(B, d, T, w->t_x, a->ema_k, w->t_dz, w->t_dx, w->dkern)) return -1;
    ema_params_bwd(in, d, T, w->dkern, grad);
    /* X~ feeds both the V projection (dxln so far) and the EMA. */
    double *dx_ema = w->t_dz; /* dX' in [B,d,T] is no longer needed */
    rg_bdt_to_btd(w->t_dx, B, T, d, dx_ema);
    for (size_t i = 0; i < n * d; i++) w->dxln[i] += dx_ema[i];

    /* dX already holds the gated residual's part. */
    rg_layer_norm_bwd(a->x_hat, a->ln1_rstd, in[MEGA_IN_LN1_G], w->dxln, n, d, grad[MEGA_IN_X],
                   grad[MEGA_IN_LN1_G], grad[MEGA_IN_LN1_B]);
    return 0;
}

int ref_mega_bwd(const shape_t *s, const double *const *in, const mega_acts_t *acts,
                 const double *dY, double *const *grad) {
    if (!s || s->B <= 0 || s->T <= 0 || s->d <= 0 || s->z <= 0 || s->v <= 0)
        BENCH_FAIL("mega backward reference: B, T, d, z, v must be positive");
    if (!in || !dY || !grad) BENCH_FAIL("mega backward reference: null tensor");
    for (int i = 0; i < MEGA_N_IN; i++)
        if (!in[i] || !grad[i]) BENCH_FAIL("mega backward reference: null tensor %d", i);
    mega_acts_t own;
    memset(&own, 0, sizeof own);
    if (!acts) { /* no saved forward: run it here */
        if (ref_mega_acts_alloc(s, &own)) return -1;
        if (ref_mega_fwd_save(s, in, &own)) {
            ref_mega_acts_free(&own);
            return -1;
        }
        acts = &own;
    } else if (acts->B != s->B || acts->T != s->T || acts->d != s->d || acts->z != s->z ||
               acts->v != s->v || acts->chunk != mega_chunk(s)) {
        BENCH_FAIL("mega backward reference: activations saved for another shape or chunk");
    }
    bwd_scratch_t w;
    int rc = scratch_alloc(acts, &w);
    if (rc == 0) {
        bwd_ffn(acts, in, dY, grad, &w);
        bwd_gates(acts, in, grad, &w);
        rc = bwd_attention(acts, in, grad, &w);
        if (rc == 0) rc = bwd_input_side(acts, in, grad, &w);
        free(w.block_);
    }
    ref_mega_acts_free(&own);
    return rc;
}
