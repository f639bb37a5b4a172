/* ref_grad.h: CPU references for the backward pass of the attention ops.
 *
 * Plain C, double precision in and out, whole tensors, one small shape at a time:
 * these are the oracles that GPU backward kernels (and the finite-difference test
 * that checks these) are compared with, so clarity wins over speed.  Layouts are
 * op.h's:
 *   linear_attn  : q,k [B,H,T,dk]  v [B,H,T,dv]  o, dO [B,H,T,dv]
 *   softmax_attn : q,k,v,o,dO [B,H,T,dk] (dk == dv)
 * Gradients have the shape of the tensor they belong to (dQ like q, ...).
 *
 * The loss seen by the backward is L = sum(dO . o): dO is the upstream gradient
 * dL/do, and every function returns dL/dq, dL/dk, dL/dv.  All return 0, or -1
 * after bench_set_error (bench_check.h) on a bad shape or no host memory.
 *
 * The *_fwd_d forwards are written independently of the backwards (a different
 * route to o), so the test's finite differences of the forward check the
 * backward's algebra rather than repeat it. */
#ifndef CHELA_REF_GRAD_H
#define CHELA_REF_GRAD_H

#include "shape.h"

#ifdef __cplusplus
extern "C" {
#endif

/* o_t = (q_t / sqrt(dk)) . sum_{s<=t} k_s^T v_s  (all s if !s->causal), O(T^2) form. */
int ref_linear_attn_fwd_d(const shape_t *s, const double *q, const double *k, const double *v,
                          double *o);
/* dQ, dK, dV of linear attention for upstream gradient dO, O(T dk dv) per sequence. */
int ref_linear_attn_bwd(const shape_t *s, const double *q, const double *k, const double *v,
                        const double *dO, double *dQ, double *dK, double *dV);

/* o_t = sum_{s<=t} softmax_s(q_t . k_s / sqrt(dk)) v_s  (all s if !s->causal; dk == dv). */
int ref_softmax_attn_fwd_d(const shape_t *s, const double *q, const double *k, const double *v,
                           double *o);
/* dQ, dK, dV of softmax attention (causal or not) for upstream gradient dO. */
int ref_softmax_attn_bwd(const shape_t *s, const double *q, const double *k, const double *v,
                         const double *dO, double *dQ, double *dK, double *dV);

#ifdef __cplusplus
}
#endif
#endif
