/* reference.h: the CPU references, one per op: plain C, double accumulation.
 *
 * Each is the oracle for every test and the body of the `cpu` backend.  Each
 * computes only the outputs named by the sample (op.h), so verification at
 * T = 64k costs what the sample costs, not what the whole op costs.  Inputs
 * are the float images of what the GPU saw (already rounded to storage type).
 *
 * Stage functions are exposed so the whole-layer reference (ref_chela) is
 * built from the op references, and tests can check that it is. */
#ifndef CHELA_REFERENCE_H
#define CHELA_REFERENCE_H

#include "op.h"

#ifdef __cplusplus
extern "C" {
#endif

/* in: q, k, v.  o_t = (q_t / sqrt(dk)) . sum_{s<=t} k_s^T v_s  (all s if !causal). */
int ref_linear_attn(const shape_t *s, const float *const *in, const sample_t *smp, double *out);
/* in: q, k, v (dk == dv).  o_t = sum_{s<=t} softmax_s(q_t.k_s / sqrt(dk)) v_s. */
int ref_softmax_attn(const shape_t *s, const float *const *in, const sample_t *smp, double *out);
/* in: x [B,d,T], k [d,T].  y[b,c,t] = sum_{j<=t} k[c,j] x[b,c,t-j]. */
int ref_long_conv(const shape_t *s, const float *const *in, const sample_t *smp, double *out);
/* in: x [B,d,T], k3 [d,3], k_long [d,T], k3b [d,3], km [d,k_m].
 * u = SiLU(k3 * x);  z = k_long * u + k3b * u + km * u   (branches form, summed). */
int ref_short_long_conv(const shape_t *s, const float *const *in, const sample_t *smp,
                        double *out);
/* in: CHELA_IN_* below.  The layer of chela-spec.md. */
int ref_chela(const shape_t *s, const float *const *in, const sample_t *smp, double *out);
/* in: TRANSFORMER_IN_* below.  The pre-LN Transformer layer of ops.c (the baseline layer):
 * Y = X + MHA(LN1(X)) Wo + bo,  Y' = Y + GELU(LN2(Y) W1 + b1) W2 + b2, H = d / dk heads. */
int ref_transformer(const shape_t *s, const float *const *in, const sample_t *smp,
                    double *out);

/* ---- stages, double in / double out, one sequence at a time ---------------- */

/* Structural reparameterization: kc[c,j] = k_long[c,j] + k3b[c,j] (j<3) + km[c,j] (j<k_m),
 * kc is [d,T].  The reparam form of short_long_conv is long_conv with kc on u. */
void ref_reparam_kernel(int d, int T, const float *k_long, const float *k3b, const float *km,
                        int k_m, double *kc);
/* Causal depthwise conv of one channel's row: y[t] = sum_{j<min(len,t+1)} k[j] x[t-j], t < T. */
void ref_causal_conv_row(const double *x, int T, const double *k, int len, double *y);

/* Indices of the chela op's inputs (op_chela.c describes their shapes). */
enum {
    CHELA_IN_X = 0,   /* [B,T,d]        act                                   */
    CHELA_IN_LN1_G,   /* [d]            LayerNorm(X) gain                     */
    CHELA_IN_LN1_B,   /* [d]            LayerNorm(X) bias                     */
    CHELA_IN_K3,      /* [d,3]          short conv before SiLU                */
    CHELA_IN_KLONG,   /* [d,T]          long kernel                           */
    CHELA_IN_K3B,     /* [d,3]          parallel short branch                 */
    CHELA_IN_KM,      /* [d,k_m]        parallel short branch, k_m taps       */
    CHELA_IN_WPROJ,   /* [d, z+v+2d]    act  fused projection [Wz|Wa|Wo|Wh]   */
    CHELA_IN_BPROJ,   /* [z+v+2d]                                             */
    CHELA_IN_KAPPA_Q, /* [z]                                                  */
    CHELA_IN_MU_Q,    /* [z]                                                  */
    CHELA_IN_KAPPA_K, /* [z]                                                  */
    CHELA_IN_MU_K,    /* [z]                                                  */
    CHELA_IN_WV,      /* [d, v]         act                                   */
    CHELA_IN_BV,      /* [v]                                                  */
    CHELA_IN_UH,      /* [v, d]         act                                   */
    CHELA_IN_BH,      /* [d]                                                  */
    CHELA_IN_LN2_G,   /* [d]            FFN LayerNorm gain                    */
    CHELA_IN_LN2_B,   /* [d]                                                  */
    CHELA_IN_W1,      /* [d, 2d]        act                                   */
    CHELA_IN_W2,      /* [2d, d]        act                                   */
    CHELA_N_IN
};

/* Indices of the transformer op's inputs (ops.c describes their shapes).  Weights are
 * [in, out] row-major, so Y = X . W. */
enum {
    TRANSFORMER_IN_X = 0, /* [B,T,d]   act                                        */
    TRANSFORMER_IN_LN1_G, /* [d]       LayerNorm1 gain                            */
    TRANSFORMER_IN_LN1_B, /* [d]       LayerNorm1 bias                            */
    TRANSFORMER_IN_WQKV,  /* [d, 3d]   act  [Wq | Wk | Wv]; head h = columns h*dk.. */
    TRANSFORMER_IN_BQKV,  /* [3d]                                                 */
    TRANSFORMER_IN_WO,    /* [d, d]    act  output projection                     */
    TRANSFORMER_IN_BO,    /* [d]                                                  */
    TRANSFORMER_IN_LN2_G, /* [d]       LayerNorm2 gain                            */
    TRANSFORMER_IN_LN2_B, /* [d]                                                  */
    TRANSFORMER_IN_W1,    /* [d, 4d]   act                                        */
    TRANSFORMER_IN_B1,    /* [4d]                                                 */
    TRANSFORMER_IN_W2,    /* [4d, d]   act                                        */
    TRANSFORMER_IN_B2,    /* [d]                                                  */
    TRANSFORMER_N_IN
};

/* Norm epsilons, fixed by the spec reading in chela-spec.md. */
#define CHELA_LN_EPS 1e-5
#define CHELA_RMS_EPS 1e-6

#ifdef __cplusplus
}
#endif
#endif
