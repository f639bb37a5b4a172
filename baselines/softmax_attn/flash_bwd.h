/* softmax_attn/flash_bwd.h: the backward of softmax_attn/flash (FlashAttention-2's algorithm on
 * mma.sync) as a launcher, with strided layouts like flash.h's, so that transformer/layer can
 * later run it on its own [B,T,3d] buffers.
 *
 * The forward must have run in training form (softmax_attn_flash_launch_lse, flash.h), which
 * leaves lse [B*H][T] fp32: each row's natural log-sum-exp of its scaled scores.  Tensors:
 *   q, k, v      layout `in`   (as the forward read them)
 *   o, dO        layout `out`  (the forward's output and the upstream gradient dL/do)
 *   dq, dk, dv   layout `grad` (written, never accumulated; run dtype)
 *   lse          [B*H][T] fp32, read;  delta [B*H][T] fp32, scratch the launcher overwrites
 *                (delta_i = dO_i . o_i, the softmax Jacobian's row term)
 * Strides are in elements; base pointers and strides must be 16-byte aligned (multiples of 8
 * elements), as for the forward. */
#ifndef CHELA_SOFTMAX_ATTN_FLASH_BWD_H
#define CHELA_SOFTMAX_ATTN_FLASH_BWD_H

#include <cuda_runtime_api.h>
#include <stddef.h>

#include "shape.h"
#include "softmax_attn/flash.h" /* sa_layout_t */

#ifdef __cplusplus
extern "C" {
#endif

/* NULL when the backward can run this problem, else a static reason. */
const char *softmax_attn_flash_bwd_problem(int B, int H, int T, int D, dtype_t dt);

/* Setup-time, once per (D, dtype): the backward kernels' shared-memory opt-in.  Returns 0, or
 * -1 after bench_set_error. */
int softmax_attn_flash_bwd_prepare(int D, dtype_t dt);

/* Enqueues the three kernels of the backward on stream s (delta, then dK/dV, then dQ): no
 * allocation, no synchronisation.  Returns 0, or -1 after bench_set_error. */
int softmax_attn_flash_bwd_launch(const void *q, const void *k, const void *v, sa_layout_t in,
                                  const void *o, const void *dO, sa_layout_t out,
                                  const float *lse, float *delta, void *dq, void *dk, void *dv,
                                  sa_layout_t grad, int B, int H, int T, int D, dtype_t dt,
                                  cudaStream_t s);

/* The backward's tiles as config words: "bwd=fa2 Bc=64 Br=64 dq=separate". */
void softmax_attn_flash_bwd_describe(int D, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
