/* ref_grad_transformer.h: CPU double reference of the transformer op's backward: the whole
 * pre-LN Transformer layer (ops.c has the definition), every gradient tensor, small shapes.
 *
 *   X~ = LN1(X);  [Q|K|V] = X~ Wqkv + bqkv;  A_h = softmax_causal(Q_h K_h^T / sqrt(D)) V_h
 *   Y  = X + A Wo + bo;  Y' = Y + GELU(LN2(Y) W1 + b1) W2 + b2      (GELU exact, erf)
 *   LN(x) = g (x - mean) / sqrt(var + CHELA_LN_EPS) + b, biased variance, over the d features.
 *
 * This is the oracle that a GPU backward of the layer (fp32, then bf16) is checked against,
 * so it is plain, whole-tensor and slow (O(B T (12 d^2 + T d)) a pass): meant for B <= 2,
 * T <= 16, d <= 128.  Any H, D with H * D == d and dk == dv == D works (the op itself uses
 * D = 64; tests also use small D to check every element cheaply).
 *
 * Layouts (row-major, token index outermost, as op_inputs.h):
 *   x, y, dY, dX        [B,T,d]
 *   w_qkv [d,3d], w_o [d,d], w1 [d,4d], w2 [4d,d]: [in,out], so Y = X . W
 *   b_qkv [3d], b_o [d], b1 [4d], b2 [d], ln*_g, ln*_b [d]
 *   QKV columns [q | k | v], head h = columns h*D .. h*D+D-1 of each third.
 * Tensors travel as arrays of TRANSFORMER_N_IN pointers indexed by TRANSFORMER_IN_*
 * (op_inputs.h), x included, in double: in[i] is input i, grad[i] its gradient, of the same
 * shape.  Gradients are overwritten, never accumulated into.
 *
 * Loss convention (as ref_grad.h): the backward's scalar is L = sum(dY . y), dY the upstream
 * gradient dL/dy; grad[i] = dL/d(in[i]).
 *
 * Both functions return 0, or -1 after bench_set_error (bench_check.h) on a bad shape or no
 * host memory. */
#ifndef CHELA_REF_GRAD_TRANSFORMER_H
#define CHELA_REF_GRAD_TRANSFORMER_H

#include "op_inputs.h"
#include "shape.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What the backward needs from the forward ("saved activations"), for all B*T rows, each
 * row-major with the row (b*T + t) outermost.  The attention probabilities are not kept:
 * ref_softmax_attn_bwd recomputes them from Q and K, row by row. */
typedef struct {
    int B, T, d, H, D;
    double *mean1, *rstd1; /* [B*T]      LN1's row mean and 1/sqrt(var + eps)             */
    double *x_ln1;         /* [B*T, d]   X~ = LN1(X)                                       */
    double *qkv;           /* [B*T, 3d]  X~ Wqkv + bqkv, unscaled ([q | k | v])            */
    double *attn;          /* [B*T, d]   A, heads side by side (head h = columns h*D..)    */
    double *y;             /* [B*T, d]   Y = X + A Wo + bo, the residual stream            */
    double *mean2, *rstd2; /* [B*T]      LN2's statistics of Y                             */
    double *x_ln2;         /* [B*T, d]   LN2(Y)                                            */
    double *h_pre;         /* [B*T, 4d]  LN2(Y) W1 + b1                                    */
    double *h_act;         /* [B*T, 4d]  GELU(h_pre)                                       */
} ref_transformer_acts_t;

/* y [B,T,d] = the layer of in[] (TRANSFORMER_IN_* order).  acts: NULL, or filled (its arrays
 * allocated here) with what ref_transformer_bwd needs; release it with
 * ref_transformer_acts_free.  Written from the definition, not from ref_transformer.c's
 * sampled code, so the two check each other. */
int ref_transformer_fwd_d(const shape_t *s, const double *const *in, double *y,
                          ref_transformer_acts_t *acts);
void ref_transformer_acts_free(ref_transformer_acts_t *acts);

/* grad[i] = dL/d(in[i]) for every i < TRANSFORMER_N_IN, L = sum(dY . y), dY [B,T,d].
 * acts: ref_transformer_fwd_d's for the same s and in, or NULL to have the forward rerun
 * here. */
int ref_transformer_bwd(const shape_t *s, const double *const *in,
                        const ref_transformer_acts_t *acts, const double *dY,
                        double *const *grad);

#ifdef __cplusplus
}
#endif
#endif
