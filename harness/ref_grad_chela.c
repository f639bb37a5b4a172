/* ref_grad_chela.c: the CHELA layer's backward in double, by the chain rule written out
 * (ref_grad_chela.h; the forward that saves the activations is ref_grad_chela_fwd.c).
 *
 * Per token row r (= b*T + t), walking the forward of chela-spec.md backwards, with
 * s(p) = 1/(1 + e^-p), SiLU'(p) = s(p)(1 + p(1 - s(p))) and "." elementwise:
 *
 *   FFN     Y' = Y + F W2, F = SiLU(P), P = LN2(Y) W1:
 *           dW2 = F^T dY',  dF = dY' W2^T,  dP = dF . SiLU'(P),  dW1 = LN2(Y)^T dP,
 *           dLN2 = dP W1^T, then LayerNorm's backward (below) adds to dY = dY' + ...
 *   gate    Y = G . H + (1 - G) . X, G = s(Go):
 *           dH = dY . G,  dGo = dY . (H - X) . G(1 - G),  dX (residual) = dY . (1 - G)
 *   H^      H = SiLU(A), A = Hz + M Uh + bh:  dA = dH . SiLU'(A) = dHz = dbh's rows,
 *           dUh = M^T dA,  dM = dA Uh^T
 *   eq. 9   M = O . s(Ga):  dO = dM . s(Ga),  dGa = dM . O . s(Ga)(1 - s(Ga))
 *   RMSNorm O = o r, r = (mean(o^2) + eps)^-1/2 over v:  do = r (dO - O mean(dO . O))
 *   attn    o = causal linear attention of (Q/sqrt(z), K, V): ref_linear_attn_bwd
 *   V       V = SiLU(Pv), Pv = X~ Wv + bv:  dPv = dV . SiLU'(Pv), dWv = X~^T dPv,
 *           dX~ = dPv Wv^T
 *   Q, K    Q = kq . Zq + mq, K = kk . Zq + mk, Zq = SiLU(Pz):  dkq = sum dQ . Zq,
 *           dmq = sum dQ (likewise K),  dPz = (dQ . kq + dK . kk) . SiLU'(Pz)
 *   proj    [Pz | Ga | Go | Hz] = Z Wp + bp:  dWp = Z^T dproj,  dZ = dproj Wp^T
 *   convs   Z = (k_long + k3b + km) * SiLU(k3 * X~): ref_short_long_conv_bwd, which also
 *           slices the branch kernels' gradients out of the merged kernel's
 *   LN      y = x^ . g + b, x^ = (x - mean) r:  dg = sum dy . x^,  db = sum dy,
 *           dx = r (dx^ - mean(dx^) - x^ mean(dx^ . x^)) with dx^ = dy . g
 *           (r holds eps, so this is exact for var + eps, not an approximation)
 * and dX = the residual's part + LayerNorm1's.  Bias and parameter gradients sum over
 * every token (b, t): parameters are shared by the whole batch.
 *
 * The two op-level backwards are reused rather than re-derived: ref_linear_attn_bwd
 * ([B,H,T,w] with H = 1 is our [B,T,w]) and ref_short_long_conv_bwd (which wants [B,d,T],
 * so X~ and dZ are transposed into it and dX~ out of it). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench_check.h"
#include "ref_grad_layer.h"
#include "ref_grad.h"
#include "ref_grad_chela.h"
#include "ref_grad_conv.h"

/* ---------------- norms ---------------- */

/* RMSNorm without gain, O = o rstd: do = rstd (dO - O mean(dO . O)), per row.
 * Worth knowing for the GPU backwards checked against this: with ops.c's fills the first
 * tokens' o_raw is small (o_raw_0 is a single q.k term), rms 4e-4 .. 2.4e-3 from d = 8 to
 * d = 1024 (mean 0.1 at d = 1024, T = 256), so rstd reaches 380 .. 930, near its
 * 1/sqrt(eps) = 1000 ceiling: this step amplifies the upstream gradient's error most. */
static void rms_norm_bwd(const double *o, const double *rstd, const double *dO, size_t n,
                         int w, double *do_raw) {
    for (size_t r = 0; r < n; r++) {
        double mean = 0.0;
        for (int j = 0; j < w; j++) mean += dO[r * w + j] * o[r * w + j];
        mean /= w;
        for (int j = 0; j < w; j++)
            do_raw[r * w + j] = rstd[r] * (dO[r * w + j] - o[r * w + j] * mean);
    }
}

/* ---------------- the backward ---------------- */

/* Scratch of one backward, every array [n = B*T rows, width]. */
typedef struct {
    double *dy;    /* [n,d]   dL/dY (the residual stream before the FFN)     */
    double *df;    /* [n,2d]  dL/dF, then dL/dP in place                     */
    double *dln2;  /* [n,d]   dL/d LayerNorm2(Y)                             */
    double *dm;    /* [n,v]   dL/dM                                          */
    double *d_o;   /* [n,v]   dL/dO (after the norm)                         */
    double *do_raw;/* [n,v]   dL/d o_raw                                     */
    double *dq, *dk; /* [n,z]                                                */
    double *dv;    /* [n,v]   dL/dV, then dL/dPv in place                    */
    double *dproj; /* [n,np]  [dPz | dGa | dGo | dHz]                        */
    double *dzc;   /* [n,d]   dL/dZ                                          */
    double *dxln;  /* [n,d]   dL/dX~                                         */
    double *t_x, *t_dz, *t_dx; /* [B,d,T] the conv backward's layout         */
    double *block_;
} bwd_scratch_t;

static int scratch_alloc(const chela_acts_t *a, bwd_scratch_t *w) {
    const size_t n = (size_t)a->B * a->T, d = (size_t)a->d, z = (size_t)a->z, v = (size_t)a->v;
    const size_t total = n * (d + 2 * d + d + 3 * v + 2 * z + v + (size_t)a->np + 2 * d + 3 * d);
    double *p = calloc(total, sizeof(double));
    if (!p) BENCH_FAIL("chela backward reference: out of host memory (%zu doubles)", total);
    w->block_ = p;
    w->dy = p, p += n * d;
    w->df = p, p += n * 2 * d;
    w->dln2 = p, p += n * d;
    w->dm = p, p += n * v;
    w->d_o = p, p += n * v;
    w->do_raw = p, p += n * v;
    w->dq = p, p += n * z;
    w->dk = p, p += n * z;
    w->dv = p, p += n * v;
    w->dproj = p, p += n * (size_t)a->np;
    w->dzc = p, p += n * d;
    w->dxln = p, p += n * d;
    w->t_x = p, p += n * d;
    w->t_dz = p, p += n * d;
    w->t_dx = p;
    return 0;
}

/* FFN and LayerNorm2: from dY' to dL/dY in w->dy. */
static void bwd_ffn(const chela_acts_t *a, const double *const *in, const double *dY,
                    double *const *grad, bwd_scratch_t *w) {
    const size_t n = (size_t)a->B * a->T;
    const int d = a->d;
    rg_gemm_bwd_w(a->f, dY, n, 2 * d, d, grad[CHELA_IN_W2]);
    rg_gemm_bwd_x(dY, in[CHELA_IN_W2], n, 2 * d, d, w->df, 0);
    for (size_t i = 0; i < n * 2 * d; i++) w->df[i] *= rg_silu_deriv(a->f_pre[i]);
    rg_gemm_bwd_w(a->ln2, w->df, n, d, 2 * d, grad[CHELA_IN_W1]);
    rg_gemm_bwd_x(w->df, in[CHELA_IN_W1], n, d, 2 * d, w->dln2, 0);
    /* Y feeds the output directly (the FFN's residual) and through LayerNorm2. */
    memcpy(w->dy, dY, n * d * sizeof(double));
    rg_layer_norm_bwd(a->y_hat, a->ln2_rstd, in[CHELA_IN_LN2_G], w->dln2, n, d, w->dy,
                   grad[CHELA_IN_LN2_G], grad[CHELA_IN_LN2_B]);
}

/* The gated residual, H^ and eq. 9: fills the Go, Hz and Ga columns of dproj, dX's
 * residual part, dUh, dbh and dL/dO (w->d_o). */
static void bwd_gates(const chela_acts_t *a, const double *const *in, double *const *grad,
                      bwd_scratch_t *w) {
    const size_t n = (size_t)a->B * a->T;
    const int d = a->d, z = a->z, v = a->v, np = a->np;
    double *dX = grad[CHELA_IN_X];
    for (size_t r = 0; r < n; r++)
        for (int j = 0; j < d; j++) {
            const size_t e = r * d + j;
            const double g = a->gate[e], dy = w->dy[e];
            dX[e] = dy * (1.0 - g);
            w->dproj[r * np + z + v + j] = dy * (a->h[e] - in[CHELA_IN_X][e]) * g * (1.0 - g);
            /* dHz = dL/dA, A = Hz + M Uh + bh the pre-SiLU of H^. */
            w->dproj[r * np + z + v + d + j] = dy * g * rg_silu_deriv(a->h_pre[e]);
        }
    /* The Hz columns of dproj are dL/dA: read them in place as an [n,d] matrix of stride np
     * would need strided GEMMs, so gather once. */
    double *dA = w->dzc; /* free until the projection's backward */
    for (size_t r = 0; r < n; r++)
        memcpy(dA + r * d, w->dproj + r * np + z + v + d, (size_t)d * sizeof(double));
    rg_gemm_bwd_w(a->m, dA, n, v, d, grad[CHELA_IN_UH]);
    rg_col_sum(dA, n, d, grad[CHELA_IN_BH]);
    rg_gemm_bwd_x(dA, in[CHELA_IN_UH], n, v, d, w->dm, 0);
    for (size_t r = 0; r < n; r++)
        for (int j = 0; j < v; j++) {
            const size_t e = r * v + j;
            const double sg = a->ga_sig[e];
            w->d_o[e] = w->dm[e] * sg;
            w->dproj[r * np + z + j] = w->dm[e] * a->o[e] * sg * (1.0 - sg);
        }
}

/* RMSNorm, the attention, V and Q/K: the Zq columns of dproj, the V path's part of dX~,
 * and the gradients of w_v, b_v, kappa and mu. */
static int bwd_attention(const chela_acts_t *a, const double *const *in, double *const *grad,
                         bwd_scratch_t *w) {
    const size_t n = (size_t)a->B * a->T;
    const int d = a->d, z = a->z, v = a->v, np = a->np;
    rms_norm_bwd(a->o, a->o_rstd, w->d_o, n, v, w->do_raw);
    const shape_t as = {.B = a->B, .H = 1, .T = a->T, .dk = z, .dv = v, .causal = 1};
    if (ref_linear_attn_bwd(&as, a->q, a->k, a->val, w->do_raw, w->dq, w->dk, w->dv))
        return -1;

    for (size_t i = 0; i < n * v; i++) w->dv[i] *= rg_silu_deriv(a->v_pre[i]);
    rg_gemm_bwd_w(a->x_ln, w->dv, n, d, v, grad[CHELA_IN_WV]);
    rg_col_sum(w->dv, n, v, grad[CHELA_IN_BV]);
    rg_gemm_bwd_x(w->dv, in[CHELA_IN_WV], n, d, v, w->dxln, 0);

    double *dkq = grad[CHELA_IN_KAPPA_Q], *dmq = grad[CHELA_IN_MU_Q];
    double *dkk = grad[CHELA_IN_KAPPA_K], *dmk = grad[CHELA_IN_MU_K];
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
            const double dzq = w->dq[e] * in[CHELA_IN_KAPPA_Q][i] +
                               w->dk[e] * in[CHELA_IN_KAPPA_K][i];
            w->dproj[r * np + i] = dzq * rg_silu_deriv(a->proj[r * np + i]);
        }
    return 0;
}

/* The fused projection, the convolutions and LayerNorm1: the rest of dX and the
 * parameters before the projection. */
static int bwd_input_side(const chela_acts_t *a, const double *const *in, double *const *grad,
                          bwd_scratch_t *w) {
    const size_t n = (size_t)a->B * a->T;
    const int B = a->B, T = a->T, d = a->d, np = a->np;
    rg_gemm_bwd_w(a->zc, w->dproj, n, d, np, grad[CHELA_IN_WPROJ]);
    rg_col_sum(w->dproj, n, np, grad[CHELA_IN_BPROJ]);
    rg_gemm_bwd_x(w->dproj, in[CHELA_IN_WPROJ], n, d, np, w->dzc, 0);

    rg_btd_to_bdt(a->x_ln, B, T, d, w->t_x);
    rg_btd_to_bdt(w->dzc, B, T, d, w->t_dz);
    if (ref_short_long_conv_bwd(B, d, T, w->t_x, in[CHELA_IN_K3], in[CHELA_IN_KLONG],
                                in[CHELA_IN_K3B], in[CHELA_IN_KM], w->t_dz, w->t_dx,
                                grad[CHELA_IN_K3], grad[CHELA_IN_KLONG], grad[CHELA_IN_K3B],
                                grad[CHELA_IN_KM]))
        return -1;
    /* X~ feeds both the V projection (dxln so far) and the short conv. */
    double *dx_conv = w->t_dz; /* dZ in [B,d,T] is no longer needed */
    rg_bdt_to_btd(w->t_dx, B, T, d, dx_conv);
    for (size_t i = 0; i < n * d; i++) w->dxln[i] += dx_conv[i];

    /* dX already holds the gated residual's part. */
    rg_layer_norm_bwd(a->x_hat, a->ln1_rstd, in[CHELA_IN_LN1_G], w->dxln, n, d, grad[CHELA_IN_X],
                   grad[CHELA_IN_LN1_G], grad[CHELA_IN_LN1_B]);
    return 0;
}

int ref_chela_bwd(const shape_t *s, const double *const *in, const chela_acts_t *acts,
                  const double *dY, double *const *grad) {
    if (!s || s->B <= 0 || s->T <= 0 || s->d <= 0 || s->z <= 0 || s->v <= 0)
        BENCH_FAIL("chela backward reference: B, T, d, z, v must be positive");
    if (!in || !dY || !grad) BENCH_FAIL("chela backward reference: null tensor");
    for (int i = 0; i < CHELA_N_IN; i++)
        if (!in[i] || !grad[i]) BENCH_FAIL("chela backward reference: null tensor %d", i);
    chela_acts_t own;
    memset(&own, 0, sizeof own);
    if (!acts) { /* no saved forward: run it here */
        if (ref_chela_acts_alloc(s, &own)) return -1;
        if (ref_chela_fwd_save(s, in, &own)) {
            ref_chela_acts_free(&own);
            return -1;
        }
        acts = &own;
    } else if (acts->B != s->B || acts->T != s->T || acts->d != s->d || acts->z != s->z ||
               acts->v != s->v) {
        BENCH_FAIL("chela backward reference: activations saved for another shape");
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
    ref_chela_acts_free(&own);
    return rc;
}
