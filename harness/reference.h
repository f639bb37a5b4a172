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
#include "op_inputs.h"

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

/* in: MEGA_IN_* (op_inputs.h).  MEGA's gated attention layer of ops.c (the hybrid baseline):
 * EMA, chunked causal softmax attention (chunk mega_chunk(s), read from s->set), gates, FFN. */
int ref_mega(const shape_t *s, const float *const *in, const sample_t *smp, double *out);

/* ---- stages, double in / double out, one sequence at a time ---------------- */

/* Structural reparameterization: kc[c,j] = k_long[c,j] + k3b[c,j] (j<3) + km[c,j] (j<k_m),
 * kc is [d,T].  The reparam form of short_long_conv is long_conv with kc on u. */
void ref_reparam_kernel(int d, int T, const float *k_long, const float *k3b, const float *km,
                        int k_m, double *kc);
/* Causal depthwise conv of one channel's row: y[t] = sum_{j<min(len,t+1)} k[j] x[t-j], t < T. */
void ref_causal_conv_row(const double *x, int T, const double *k, int len, double *y);

#ifdef __cplusplus
}
#endif
#endif
