/* grad_ref.h: sampled CPU references of the ops' backward, for verifying a GPU backward at
 * any T, the way reference.h's sampled forwards verify the forward.
 *
 * The backward's loss is L = sum(dy . out) (variant.h): given the inputs and the upstream
 * gradient dy, gradient i is dL/d(input i).  Each gradient tensor is viewed as
 * [seq][t][col], like an op's output (op.h):
 *   linear_attn, softmax_attn  dQ, dK, dV [B,H,T,w]: seq = b*H + h, t = token, col = column
 *   long_conv                  dX [B,d,T]: seq = b, t = token, col = channel
 *                              dK [d,T]:   one seq, t = tap, col = channel
 *   short_long_conv            dX as long_conv's; dk3, dk_long, dk3', dk_m [d,len]: one seq,
 *                              t = tap (len 3, T, 3, k_m), col = channel
 * so a sample_t picks the elements to compute, and one function computes them in double
 * (direct sums, no FFT, no whole-tensor pass where a sampled one costs less).  Inputs are
 * the float images of what the GPU saw (already rounded to storage type); dy likewise.
 *
 * Costs (multiply-adds, for sizing samples against a budget) are stated next to each
 * reference in grad_ref_attn.c and grad_ref_conv.c; what a tensor's sample may shrink to
 * (grad_sample_choose) is in verify_grad.c.  An op without one (mega) has no entry:
 * grad_ref_get returns NULL.  The layers' (transformer, chela) are whole-tensor
 * (grad_ref_layers.c). */
#ifndef CHELA_GRAD_REF_H
#define CHELA_GRAD_REF_H

#include <stddef.h>
#include <stdint.h>

#include "op.h"
#include "verify.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Gradient tensor `tensor` as [n_seq][n_t][n_col]: element (seq, t, col) is at flat index
 * seq * seq_stride + t * t_stride + col * col_stride of the gradient buffer. */
typedef struct {
    int n_seq, n_t, n_col;
    size_t seq_stride, t_stride, col_stride;
} grad_view_t;

typedef struct {
    op_id op;
    /* The view of gradient `tensor` (0 .. n_in - 1, the op's input order). */
    void (*view)(const shape_t *s, int tensor, grad_view_t *v);
    /* Multiply-adds the reference spends on the sampled elements of gradient `tensor`. */
    double (*cost)(const shape_t *s, int tensor, const sample_t *smp);
    /* out[(si * n_t + ti) * n_col + ci] = gradient `tensor` at (seq[si], t[ti], col[ci]).
     * t ascending.  Returns 0, or -1 after bench_set_error. */
    int (*reference)(const shape_t *s, const float *const *in, const float *dy, int tensor,
                     const sample_t *smp, double *out);
    /* Instead of reference (a layer, grad_ref_layers.c: its gradients cannot be sampled):
     * every gradient whole, grad[i] with the elements of input i, in one call.  cost() is
     * then this whole computation's, for any tensor and sample. */
    int (*whole)(const shape_t *s, const float *const *in, const float *dy, double *const *grad);
} grad_ref_t;

/* NULL for an op with no backward reference. */
const grad_ref_t *grad_ref_get(op_id op);

/* A whole() reference's gradients, computed at the first tensor asked for and kept for the
 * point's others (zero-initialise; grad_whole_free releases). */
typedef struct {
    int n;
    double *grad[OP_MAX_INPUTS];
} grad_whole_t;
/* out = gradient `tensor` at smp's elements (reference()'s contract), through reference() or
 * whole() (then w holds every gradient after the first call).  0, or -1 after
 * bench_set_error. */
int grad_ref_eval(const grad_ref_t *g, const shape_t *s, const float *const *in, const float *dy,
                  int tensor, const sample_t *smp, double *out, grad_whole_t *w);
void grad_whole_free(grad_whole_t *w);


static inline size_t grad_view_index(const grad_view_t *v, int seq, int t, int col) {
    return (size_t)seq * v->seq_stride + (size_t)t * v->t_stride + (size_t)col * v->col_stride;
}

/* The upstream gradient of a point: the output's size, run dtype, uniform in +-1 and never
 * zero, from the point's seed on a stream of its own (no input uses index GRAD_DY_INDEX),
 * so host and device fill the same bits (tensor_fill_host / gpu_fill_tensor). */
#define GRAD_DY_INDEX 1000u
tensor_desc_t grad_dy_desc(const tensor_desc_t *out);

/* ---- samples (verify_grad.c) ------------------------------------------------------------ */

/* The sample of gradient `tensor` for a point: every element when the reference can afford
 * it; else as sample_choose shrinks a forward's sample (up to 4 seqs x 256 positions, first
 * and last always, x 64 columns, halved in that order of loss down to 1 x 16 x 8), then
 * columns down to 1; and where even that is over the budget (causal softmax attention's
 * dK / dV, which need every later row's softmax: O(T^2 D) a sequence), positions from the
 * last rows only, as many as fit (out->t_lo > 0 says from where).  Returns 0, or -1 (out of
 * memory); the caller compares grad_sample_cost with its cap. */
typedef struct {
    sample_buf_t b;
    int t_lo; /* 0, or the first position the suffix window allows */
} grad_sample_t;
/* What the reference spends on every tensor's sample together: whole() once, else the sum. */
double grad_ref_total_cost(const grad_ref_t *g, const shape_t *s, int n_in,
                           const grad_sample_t *smp);
int grad_sample_choose(const grad_ref_t *g, const shape_t *s, int tensor, uint64_t seed,
                       double budget_macs, grad_sample_t *out);
/* Every element of gradient `tensor` (the CPU backend, tests). */
int grad_sample_full(const grad_ref_t *g, const shape_t *s, int tensor, grad_sample_t *out);
void grad_sample_free(grad_sample_t *gs);

/* Tolerance on a gradient's max_rel_err for a dtype; why in verify.c. */
double verify_grad_tolerance(dtype_t dt);

#ifdef __cplusplus
}
#endif
#endif
