/* mega/attn_plan.h: the plan of MEGA's chunked attention on cuBLAS (attn_chunk.cu runs it): which
 * strided-batched GEMMs cover which chunks, as a pure host function, so that its offsets, strides
 * and leading dimensions are tested without a GPU (tests/test_reference_mega.c runs the calls
 * through a plain column-major GEMM and checks the attention against the reference).
 *
 * Groups.  A strided-batched GEMM takes one stride between its items, so the chunks go in groups
 * of equal length and stride:
 *   c divides T (every power-of-two sweep point, and T <= c where c = T):  one group, all B T / c
 *     chunks, stride c rows;
 *   otherwise: one group a sequence for its floor(T / c) full chunks (stride c rows) and one group
 *     of the B partial last chunks (length T mod c, stride T rows);
 * each cut into calls of at most MEGA_ATTN_MAX_BATCH chunks.  Each group has its own slab of the
 * scores S (and of P, the same layout): its chunks' L x L matrices one after another.
 *
 * Calls, in cuBLAS's column-major terms (a row-major [r][c] matrix with leading dimension ld is the
 * column-major c x r one), for a group of chunk length L and h = L / 2:
 *   scores  S^T = K Q^T / sqrt(z): the queries [0, h) against the keys [0, h), then the queries
 *           [h, L) against all L keys (the first half's queries need the first half's keys only:
 *           3/4 of the square; S's quadrant above the diagonal is never written nor read);
 *   pv      O^T = V^T P^T, the same two halves of the queries.
 * Offsets and strides are in elements of the operand's own array (K, Q, V, O: rows of z or nv;
 * S, P: the slabs). */
#ifndef CHELA_MEGA_ATTN_PLAN_H
#define CHELA_MEGA_ATTN_PLAN_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MEGA_ATTN_MAX_BATCH 65535 /* chunks a cuBLAS call (as softmax_attn/naive's heads: clear
                                   * of any grid-dimension limit inside cuBLAS) */

typedef struct {
    long long row0;   /* the first chunk's first row in [B*T]   */
    long long stride; /* rows between consecutive chunks         */
    int count, L;     /* chunks, and their length                */
    size_t s_off;     /* the group's slab in S and P, elements   */
} mega_attn_group_t;

typedef struct {
    int B, T, z, nv, chunk;
    int ng;
    mega_attn_group_t *g;
} mega_attn_plan_t;

/* One cublasGemmStridedBatchedEx call: C = op(A) B over `count` items. */
typedef struct {
    int transa;         /* 1: A is used transposed (CUBLAS_OP_T); B is never  */
    int m, n, k, count;
    long long a, lda, sa; /* offset, leading dimension, item stride: elements */
    long long b, ldb, sb;
    long long c, ldc, sc;
} mega_gemm_call_t;

/* Plans (B, T, z, nv, chunk), 1 <= chunk <= T.  Returns 0, or -1 (bad sizes, out of memory). */
int mega_attn_plan_make(int B, int T, int z, int nv, int chunk, mega_attn_plan_t *p);
void mega_attn_plan_free(mega_attn_plan_t *p);
/* Elements of S (and of P) for every chunk: B (floor(T/c) c^2 + (T mod c)^2). */
size_t mega_attn_slab_elems(int B, int T, int chunk);
/* Group gi's calls (1 or 2, returned) for the scores (A = K, B = Q, C = S) or for P V (A = V,
 * B = P, C = O). */
int mega_attn_scores_calls(const mega_attn_plan_t *p, int gi, mega_gemm_call_t out[2]);
int mega_attn_pv_calls(const mega_attn_plan_t *p, int gi, mega_gemm_call_t out[2]);
/* Score elements the calls compute a head dim: the sum over chunks of L^2 - h (L - h). */
double mega_attn_gemm_elems(int B, int T, int chunk);

#ifdef __cplusplus
}
#endif
#endif
