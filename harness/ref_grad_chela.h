/* ref_grad_chela.h: CPU double reference of the whole CHELA layer's backward
 * (chela-spec.md, "Training: the backward pass"), and the forward that saves what it needs.
 *
 * Whole tensors, double in and out, tiny shapes (B <= 2, T <= 16, d <= 8 run in
 * microseconds): this is the oracle an fp32 GPU backward of chela is checked against, so
 * it is written for clarity, step by step in the spec's order.
 *
 * Inputs: in[CHELA_IN_*] (op_inputs.h), each a dense double array in ops.c's layout:
 *   x [B,T,d]; ln1_g, ln1_b, ln2_g, ln2_b, b_h [d]; k3, k3b [d,3]; k_long [d,T];
 *   km [d,k_m] with k_m = shape_km(T); w_proj [d,np], np = z + v + 2d, columns
 *   [Zq (z) | Ga (v) | Go (d) | Hz (d)]; b_proj [np]; kappa_q, mu_q, kappa_k, mu_k [z];
 *   w_v [d,v]; b_v [v]; u_h [v,d]; w1 [d,2d]; w2 [2d,d].  Weights are [in,out] row-major,
 *   Y = X . W.  The FFN has no biases (ops.c lists none).
 * ref_chela_in_elems gives each tensor's element count.
 *
 * Loss convention (as ref_grad.h): the backward returns the gradient of L = sum(dY . y)
 * for the upstream gradient dY = dL/dy [B,T,d] (y = the layer's output Y'), i.e.
 * grad[i] = dL/d in[i], with the shape of in[i].  Every function returns 0, or -1 after
 * bench_set_error (bench_check.h) on a bad shape or no host memory.
 *
 * The forward is written from the spec again, not from ref_chela.c (which streams float
 * inputs), so the two can be compared; it runs the long stage as three separate branches
 * (the training form), so finite differences in k3b and km test the backward's slicing of
 * the merged kernel's gradient rather than assume it. */
#ifndef CHELA_REF_GRAD_CHELA_H
#define CHELA_REF_GRAD_CHELA_H

#include <stddef.h>

#include "op_inputs.h"
#include "shape.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What the forward saves for the backward, each row-major with the token (b, t) outermost
 * ([B,T,w]: element (b, t, j) at (b*T + t)*w + j); per-token statistics are [B,T]. */
typedef struct {
    int B, T, d, z, v, np, k_m;
    double *ln1_mean, *ln1_rstd; /* [B,T]     LayerNorm1 mean and 1/sqrt(var + eps)      */
    double *x_hat;               /* [B,T,d]   (X - mean) * rstd, before gain and bias    */
    double *x_ln;                /* [B,T,d]   X~ = x_hat . ln1_g + ln1_b                 */
    double *pre;                 /* [B,T,d]   k3 * X~, the short conv before SiLU        */
    double *u;                   /* [B,T,d]   U = SiLU(pre)                              */
    double *zc;                  /* [B,T,d]   Z = (k_long + k3b + km branches) * U       */
    double *proj;                /* [B,T,np]  Z . w_proj + b_proj: [Zq pre | Ga | Go | Hz] */
    double *zq;                  /* [B,T,z]   SiLU of the Zq columns                     */
    double *q, *k;               /* [B,T,z]   kappa . Zq + mu                            */
    double *v_pre;               /* [B,T,v]   X~ . w_v + b_v                             */
    double *val;                 /* [B,T,v]   V = SiLU(v_pre)                            */
    double *o_raw;               /* [B,T,v]   causal linear attention of (Q/sqrt(z), K, V) */
    double *o_rstd;              /* [B,T]     RMSNorm's 1/sqrt(mean(o_raw^2) + eps)       */
    double *o;                   /* [B,T,v]   O = o_raw * o_rstd (no gain)               */
    double *ga_sig;              /* [B,T,v]   sigmoid(Ga)                                */
    double *m;                   /* [B,T,v]   M = O . sigmoid(Ga)                        */
    double *h_pre;               /* [B,T,d]   Hz + M . u_h + b_h                         */
    double *h;                   /* [B,T,d]   H^ = SiLU(h_pre)                           */
    double *gate;                /* [B,T,d]   sigmoid(Go)                                */
    double *y;                   /* [B,T,d]   Y = gate . H^ + (1 - gate) . X             */
    double *ln2_mean, *ln2_rstd; /* [B,T]     LayerNorm2 statistics                      */
    double *y_hat;               /* [B,T,d]   (Y - mean) * rstd                          */
    double *ln2;                 /* [B,T,d]   y_hat . ln2_g + ln2_b                      */
    double *f_pre;               /* [B,T,2d]  LayerNorm2(Y) . w1                         */
    double *f;                   /* [B,T,2d]  SiLU(f_pre)                                */
    double *y_out;               /* [B,T,d]   Y' = Y + f . w2: the layer's output        */
    double *block_;              /* the one allocation all of the above point into       */
} chela_acts_t;

/* Elements of input i (CHELA_IN_*) at shape s; 0 for an index out of range. */
size_t ref_chela_in_elems(const shape_t *s, int i);

/* Allocates a's arrays for shape s (B, T, d, z, v); ref_chela_acts_free releases them. */
int ref_chela_acts_alloc(const shape_t *s, chela_acts_t *a);
void ref_chela_acts_free(chela_acts_t *a);

/* The forward, keeping every intermediate in a (allocated by ref_chela_acts_alloc at s). */
int ref_chela_fwd_save(const shape_t *s, const double *const *in, chela_acts_t *a);

/* The forward alone: y [B,T,d] = the layer's output Y'. */
int ref_chela_fwd_d(const shape_t *s, const double *const *in, double *y);

/* Gradients of every input for upstream gradient dY [B,T,d]: grad[i] = dL/d in[i]
 * (CHELA_N_IN arrays, each shaped as in[i], overwritten).  a: the forward's saved
 * activations for the same s and in, or NULL to have the backward run the forward itself.
 * dk3b and dkm are the first taps of dk_long (the merged kernel's gradient: the branches
 * see the same U, ref_grad_conv.h). */
int ref_chela_bwd(const shape_t *s, const double *const *in, const chela_acts_t *a,
                  const double *dY, double *const *grad);

#ifdef __cplusplus
}
#endif
#endif
