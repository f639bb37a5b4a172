/* lt_gemm.h: one row-major GEMM through cuBLASLt, planned once, enqueued many times.
 *
 *   D[M,N] = A[M,K] . B[K,N]  (+ bias[N], fp32)  (+ beta * C[M,N], C laid out as D)
 *
 * every matrix row-major in the run dtype (bf16, fp16 or fp32), fp32 accumulation,
 * optionally batched with element strides (a stride of 0 shares a weight across the
 * batch).  a_trans says A is stored transposed, as [K,M] row-major with row stride lda:
 * that is how the CHELA layer multiplies its [d,T] convolution output by a weight
 * without a transpose pass; b_trans likewise B, as [N,K] (a backward's data gradient,
 * dX = dY W^T).  d_f32: C and D are fp32 whatever the run dtype (a parameter's gradient,
 * dW = X^T dY, accumulated and kept in fp32).  The algorithm is chosen once by cuBLASLt's heuristic at
 * create time, for the workspace size given, so running never allocates; lt_gemm_tune may
 * then replace it by the fastest of the heuristic's candidates, timed. */
#ifndef CHELA_LT_GEMM_H
#define CHELA_LT_GEMM_H

#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <stddef.h>

#include "lt_tune.h"
#include "shape.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int M, N, K, batch;            /* batch >= 1                                   */
    long long lda, ldb, ldd;       /* row strides in elements (C shares D's)       */
    long long stride_a, stride_b, stride_d; /* batch strides in elements           */
    int a_trans;                   /* A stored as [K,M] row-major                  */
    int b_trans;                   /* B stored as [N,K] row-major                  */
    int d_f32;                     /* C and D fp32 (A and B in the run dtype)      */
    int bias;                      /* add an fp32 bias over the N columns          */
    float beta;                    /* 0, or 1 to add C (same layout as D)          */
} lt_gemm_shape_t;

typedef struct {
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, d; /* cuBLAS's column-major view, see lt_gemm.cu */
    cublasLtMatmulAlgo_t algo;
    float beta;
    double flops;
} lt_gemm_t;

/* Returns 0, or -1 after bench_set_error (no algorithm for the shape, bad args). */
int lt_gemm_create(cublasLtHandle_t h, const lt_gemm_shape_t *g, dtype_t dt, size_t ws_bytes,
                   lt_gemm_t *out);
int lt_gemm_run(cublasLtHandle_t h, const lt_gemm_t *g, const void *A, const void *B,
                const void *C, void *D, const float *bias, void *ws, size_t ws_bytes,
                cudaStream_t stream);
/* Replaces the heuristic's first algorithm by the fastest of its candidates, timed on these
 * operands (lt_tune.h); what names the product ("chela proj"); prologue (may be NULL)
 * enqueues what runs before it in the caller's sequence. */
int lt_gemm_tune(cublasLtHandle_t h, lt_gemm_t *g, const void *A, const void *B, const void *C,
                 void *D, const float *bias, void *ws, size_t ws_bytes, cudaStream_t stream,
                 const char *what, lt_prologue_fn prologue, void *prologue_ctx);
void lt_gemm_destroy(lt_gemm_t *g);

#ifdef __cplusplus
}
#endif
#endif
