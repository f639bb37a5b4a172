/* softmax_attn/flash.h: softmax_attn/flash's kernel as a launcher other variants call.
 *
 * The whole-layer baseline (transformer/layer) runs flash attention straight on its QKV
 * GEMM's output [B,T,3d] and writes A [B,T,d], with no transpose pass: the launcher takes
 * each tensor's layout as strides.  Element (b, h, t, i) of q, k, v (one layout, three
 * base pointers) and of o (its own layout) lives at
 *     base + b * batch + h * head + t * row + i          (strides in elements, i < D)
 *   softmax_attn [B,H,T,D]:          batch = H*T*D, head = T*D, row = D
 *   the layer's QKV [B,T,3d] in:     batch = T*3d,  head = D,   row = 3d  (q = base,
 *                                    k = base + d, v = base + 2d);  o [B,T,d]: T*d, D, d
 * The packed [B,H,T,D] case runs the kernel compiled for it (every offset a compile-time
 * constant, as softmax_attn/flash always did); other layouts run the same kernel with the
 * row strides as arguments. */
#ifndef CHELA_SOFTMAX_ATTN_FLASH_H
#define CHELA_SOFTMAX_ATTN_FLASH_H

#include <cuda_runtime_api.h>

#include "shape.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    long long batch, head, row; /* strides in elements */
} sa_layout_t;

/* NULL when the launcher can run this problem, else a static reason.  Needs bf16 or fp16,
 * D = 64 or 128, strides and base pointers 16-byte aligned (multiples of 8 elements). */
const char *softmax_attn_flash_problem(int B, int H, int T, int D, dtype_t dt);

/* Setup-time, once per (D, dtype) before the first launch: opts the kernels into the
 * shared memory they need (cudaFuncSetAttribute).  Returns 0, or -1 after bench_set_error. */
int softmax_attn_flash_prepare(int D, dtype_t dt);

/* Enqueues causal attention o = softmax(q k^T / sqrt(D)) v for B*H heads of T rows on
 * stream s: no allocation, no synchronisation.  Returns 0, or -1 after bench_set_error
 * (bad layout, or a launch error). */
int softmax_attn_flash_launch(const void *q, const void *k, const void *v, sa_layout_t in,
                              void *o, sa_layout_t out, int B, int H, int T, int D, dtype_t dt,
                              cudaStream_t s);

/* As softmax_attn_flash_launch, the training forward: also writes lse [B*H][T] fp32, each
 * row's natural log-sum-exp of its scaled scores (ln sum_{j<=i} exp(q_i.k_j / sqrt(D))), which
 * the backward (flash_bwd.h) recomputes the probabilities from.  lse = NULL: inference. */
int softmax_attn_flash_launch_lse(const void *q, const void *k, const void *v, sa_layout_t in,
                                  void *o, sa_layout_t out, float *lse, int B, int H, int T,
                                  int D, dtype_t dt, cudaStream_t s);

/* The kernel the launcher runs at head width D, as config words: "fa2 Br=128 Bc=64" (the
 * FlashAttention-2 forward on mma.sync, query and key tile rows), or "warp-row warps=8" (v1). */
void softmax_attn_flash_describe(int D, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
