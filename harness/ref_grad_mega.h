/* ref_grad_mega.h: CPU double reference of the whole MEGA layer's backward (the mega op,
 * chela-spec.md "The hybrid baseline" and "Training: the backward pass"), and the forward
 * that saves what it needs.
 *
 * Whole tensors, double in and out, tiny shapes (B <= 2, T <= 16, d <= 8 run in
 * microseconds): this is the oracle an fp32 GPU backward of mega is checked against, so it
 * is written for clarity, step by step in the spec's order.
 *
 * Inputs: in[MEGA_IN_*] (op_inputs.h), each a dense double array in ops.c's layout:
 *   x [B,T,d]; ln1_g, ln1_b, ln2_g, ln2_b, b_h [d]; ema_alpha, ema_delta (both before
 *   their sigmoid), ema_beta, ema_eta [d,h] with h = MEGA_EMA_H; w_proj [d,np],
 *   np = z + v + 2d, columns [Zq (z) | gamma (v) | phi (d) | Hz (d)]; b_proj [np];
 *   kappa_q, mu_q, kappa_k, mu_k [z]; w_v [d,v]; b_v [v]; u_h [v,d]; w1 [d,2d]; w2 [2d,d].
 *   Weights are [in,out] row-major, Y = X . W.  The FFN has no biases (ops.c lists none).
 * ref_mega_in_elems gives each tensor's element count.
 *
 * The attention chunk c is mega_chunk(s) (the shape's mega_chunk setting, auto = 1024,
 * at most T): it changes the function, so the activations remember the c they were saved
 * with and the backward refuses a shape that resolves to another.
 *
 * Loss convention (as ref_grad.h): the backward returns the gradient of L = sum(dY . y)
 * for the upstream gradient dY = dL/dy [B,T,d] (y = the layer's output Y'), i.e.
 * grad[i] = dL/d in[i], with the shape of in[i].  Every function returns 0, or -1 after
 * bench_set_error (bench_check.h) on a bad shape or no host memory.
 *
 * The forward is written from the spec again, not from ref_mega.c (which runs the EMA by
 * its recurrence and the attention row by row on float inputs), so the two can be
 * compared: here the EMA is the causal convolution with its kernel k[t] (kept in the
 * activations: its gradient is the long conv's dK), and each chunk's attention is one
 * masked score matrix whose probabilities are kept for the backward. */
#ifndef CHELA_REF_GRAD_MEGA_H
#define CHELA_REF_GRAD_MEGA_H

#include <stddef.h>

#include "op_inputs.h"
#include "shape.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What the forward saves for the backward, each row-major with the token (b, t) outermost
 * ([B,T,w]: element (b, t, j) at (b*T + t)*w + j); per-token statistics are [B,T]. */
typedef struct {
    int B, T, d, z, v, np, chunk;
    double *ln1_mean, *ln1_rstd; /* [B,T]     LayerNorm1 mean and 1/sqrt(var + eps)       */
    double *x_hat;               /* [B,T,d]   (X - mean) * rstd, before gain and bias     */
    double *x_ln;                /* [B,T,d]   X~ = x_hat . ln1_g + ln1_b                  */
    double *ema_k;               /* [d,T]     the EMA's kernel k[c][t]                    */
    double *xe;                  /* [B,T,d]   X' = EMA(X~) = k * X~ along t              */
    double *proj;                /* [B,T,np]  X' . w_proj + b_proj: [Zq | G | F | Hz] pre */
    double *zq;                  /* [B,T,z]   SiLU of the Zq columns                      */
    double *q, *k;               /* [B,T,z]   kappa . Zq + mu                             */
    double *v_pre;               /* [B,T,v]   X~ . w_v + b_v                              */
    double *val;                 /* [B,T,v]   V = SiLU(v_pre)                             */
    double *prob;                /* [B,T,chunk] row t's softmax over the keys of its chunk,
                                    key s at column s - s0 (s0 = t's chunk start; 0 past t) */
    double *o;                   /* [B,T,v]   O = chunked causal softmax attention        */
    double *gam;                 /* [B,T,v]   gamma = SiLU(G), the reset gate             */
    double *m;                   /* [B,T,v]   M = gamma . O                               */
    double *h_pre;               /* [B,T,d]   Hz + M . u_h + b_h                          */
    double *h;                   /* [B,T,d]   H^ = SiLU(h_pre)                            */
    double *gate;                /* [B,T,d]   phi = sigmoid(F), the update gate           */
    double *y;                   /* [B,T,d]   Y = phi . H^ + (1 - phi) . X                */
    double *ln2_mean, *ln2_rstd; /* [B,T]     LayerNorm2 statistics                       */
    double *y_hat;               /* [B,T,d]   (Y - mean) * rstd                           */
    double *ln2;                 /* [B,T,d]   y_hat . ln2_g + ln2_b                       */
    double *f_pre;               /* [B,T,2d]  LayerNorm2(Y) . w1                          */
    double *f;                   /* [B,T,2d]  SiLU(f_pre)                                 */
    double *y_out;               /* [B,T,d]   Y' = Y + f . w2: the layer's output         */
    double *block_;              /* the one allocation all of the above point into        */
} mega_acts_t;

/* Elements of input i (MEGA_IN_*) at shape s; 0 for an index out of range. */
size_t ref_mega_in_elems(const shape_t *s, int i);

/* Allocates a's arrays for shape s (B, T, d, z, v and the chunk mega_chunk(s));
 * ref_mega_acts_free releases them. */
int ref_mega_acts_alloc(const shape_t *s, mega_acts_t *a);
void ref_mega_acts_free(mega_acts_t *a);

/* The forward, keeping every intermediate in a (allocated by ref_mega_acts_alloc at s). */
int ref_mega_fwd_save(const shape_t *s, const double *const *in, mega_acts_t *a);

/* The forward alone: y [B,T,d] = the layer's output Y'. */
int ref_mega_fwd_d(const shape_t *s, const double *const *in, double *y);

/* Gradients of every input for upstream gradient dY [B,T,d]: grad[i] = dL/d in[i]
 * (MEGA_N_IN arrays, each shaped as in[i], overwritten).  a: the forward's saved
 * activations for the same s and in, or NULL to have the backward run the forward itself.
 * The EMA's parameters get the chain of the kernel's gradient dk (ref_long_conv_bwd's dK)
 * through k[t] = sum_j eta_j a_j beta_j (1 - a_j g_j)^t, a = sigmoid(alpha),
 * g = sigmoid(delta).
 * For a GPU backward checked against this: dmu_k is 0 in exact arithmetic (mu_k shifts all
 * of a query's scores alike, which its softmax ignores), so what either returns is rounding
 * and is to be compared in absolute terms; and at ops.c's fills the scores vary little, so
 * dkappa_q, dmu_q, dkappa_k are small (largest 2.7e-6 .. 2.3e-3 at T <= 37) next to the other
 * gradients (order 0.1 .. 6): a tolerance relative to the largest gradient says nothing
 * about them. */
int ref_mega_bwd(const shape_t *s, const double *const *in, const mega_acts_t *a,
                 const double *dY, double *const *grad);

/* The chunked attention's backward alone: q, k [B,T,z]; v, dO [B,T,nv]; each sequence's
 * tokens split into chunks [kc, kc + chunk) (the last one partial), a query attending
 * causally to the keys of its own chunk with scale 1/sqrt(z).  Writes dQ, dK [B,T,z] and
 * dV [B,T,nv].  ref_softmax_attn_bwd (ref_grad.h) does one chunk when nv == z; this one
 * allows nv != z, as MEGA's value width v is not its query width z. */
int ref_mega_chunk_attn_bwd(int B, int T, int z, int nv, int chunk, const double *q,
                            const double *k, const double *v, const double *dO, double *dQ,
                            double *dK, double *dV);

#ifdef __cplusplus
}
#endif
#endif
