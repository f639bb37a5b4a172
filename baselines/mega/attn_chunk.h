/* mega/attn_chunk.h: MEGA's chunked causal softmax attention on cuBLAS (mega/layer's stages
 * attn_scores, attn_softmax, attn_pv).
 *
 *   q, k [B*T, z], v [B*T, nv], o [B*T, nv], row-major in the run dtype.  Each sequence is cut
 *   into chunks [kc, kc + c) (the last one T mod c long when c does not divide T); for a query
 *   t of a chunk starting at s0,  o_t = sum_{s0 <= s <= t} softmax_s(q_t . k_s / sqrt(z)) v_s.
 *
 * Why cuBLAS: the values are v = 2d = 2048 wide, one head.  cuDNN's fused SDPA takes head
 * dims up to 128 (256 on Hopper), and softmax_attn/flash needs dk == dv, so neither fits;
 * the chunk's scores S = Q K^T (fp32, c x c a chunk) and O = P V are strided-batched GEMMs
 * (a batch item a chunk) around a causal row softmax that writes P in the run dtype.  S is
 * fp32 for softmax_attn/naive's reason (bf16 scores put ~|s| 2^-8 inside the exponent).
 * Each GEMM runs as two, over the halves of a chunk's queries (the first half sees the first
 * half of the keys): 3/4 of the c x c square, the masked quarter skipped; the rest of the
 * masked half is the price of a batched GEMM. */
#ifndef CHELA_MEGA_ATTN_CHUNK_H
#define CHELA_MEGA_ATTN_CHUNK_H

#include <cuda_runtime_api.h>
#include <stddef.h>

#include "shape.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mega_attn mega_attn_t;

/* Device bytes the plan allocates: fp32 scores and run-dtype probabilities for every chunk,
 * B (floor(T/c) c^2 + (T mod c)^2) elements each, and cuBLAS's workspace. */
size_t mega_attn_workspace(int B, int T, int chunk, dtype_t dt);
/* Plans for these sizes (the GEMM groups, below) and allocates; 0, or -1 after bench_set_error. */
int mega_attn_create(int B, int T, int z, int nv, int chunk, dtype_t dt, mega_attn_t **out);
/* The three steps, each enqueued on stream (no allocation, no sync). */
int mega_attn_scores(const mega_attn_t *a, const void *q, const void *k, cudaStream_t stream);
int mega_attn_softmax(const mega_attn_t *a, cudaStream_t stream);
int mega_attn_pv(const mega_attn_t *a, const void *v, void *o, cudaStream_t stream);
/* "attn=cublas scores=fp32 chunk=1024 groups=1 cudnn_sdpa=no:v2048>256" (config words: the
 * path, the GEMM groups, and why not cuDNN's fused attention). */
void mega_attn_describe(const mega_attn_t *a, char *buf, size_t len);
void mega_attn_destroy(mega_attn_t *a);

#ifdef __cplusplus
}
#endif
#endif
