/* lt_gemm.cu: row-major GEMMs on cuBLASLt (lt_gemm.h).
 *
 * cuBLAS is column-major.  A row-major [R,C] matrix with row stride ld is the
 * column-major [C,R] matrix with leading dimension ld, so the row-major product
 * D = A.B is computed as the column-major D^T = B^T . A^T with no data movement:
 * m = N, n = M, k = K, first operand B (as stored: op N, or op T when B is stored
 * transposed), second operand A (op N, or op T when A is stored transposed).  The bias of the row-major columns is then the
 * bias over the column-major rows, which is what CUBLASLT_EPILOGUE_BIAS adds. */
#include <cublasLt.h>
#include <string.h>

#include "bench_check.h"
#include "lt_gemm.h"
#include "lt_tune.h"

static cudaDataType_t lt_type(dtype_t dt) {
    return dt == DTYPE_BF16 ? CUDA_R_16BF : dt == DTYPE_F16 ? CUDA_R_16F : CUDA_R_32F;
}

static int lt_layout(cublasLtMatrixLayout_t *l, cudaDataType_t t, long long rows, long long cols,
                     long long ld, int batch, long long stride) {
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(l, t, (uint64_t)rows, (uint64_t)cols, ld));
    if (batch > 1) {
        CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
                                                      &batch, sizeof batch));
        CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(
            *l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride));
    }
    return 0;
}

extern "C" int lt_gemm_create(cublasLtHandle_t h, const lt_gemm_shape_t *g, dtype_t dt,
                              size_t ws_bytes, lt_gemm_t *out) {
    memset(out, 0, sizeof *out);
    if (g->M < 1 || g->N < 1 || g->K < 1 || g->batch < 1)
        BENCH_FAIL("lt_gemm: bad shape M %d N %d K %d batch %d", g->M, g->N, g->K, g->batch);
    const cudaDataType_t t = lt_type(dt);
    const cublasComputeType_t ct = CUBLAS_COMPUTE_32F;
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&out->op, ct, CUDA_R_32F));
    cublasOperation_t opb = g->b_trans ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t opa = g->a_trans ? CUBLAS_OP_T : CUBLAS_OP_N;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(out->op, CUBLASLT_MATMUL_DESC_TRANSA, &opb, sizeof opb));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(out->op, CUBLASLT_MATMUL_DESC_TRANSB, &opa, sizeof opa));
    if (g->bias) {
        cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
        cudaDataType_t bt = CUDA_R_32F; /* biases are fp32 parameters (op.h) */
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(out->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(out->op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt));
    }
    /* column-major views: B^T is [N,K] ld ldb, or B as stored ([K,N] column-major, ld ldb)
     * transposed by op T; A^T is [K,M] ld lda, or A as stored ([M,K] column-major, ld lda)
     * transposed by op T; D^T is [N,M] ld ldd. */
    if (lt_layout(&out->a, t, g->b_trans ? g->K : g->N, g->b_trans ? g->N : g->K, g->ldb,
                  g->batch, g->stride_b) ||
        lt_layout(&out->b, t, g->a_trans ? g->M : g->K, g->a_trans ? g->K : g->M, g->lda,
                  g->batch, g->stride_a) ||
        lt_layout(&out->d, g->d_f32 ? CUDA_R_32F : t, g->N, g->M, g->ldd, g->batch, g->stride_d)) {
        lt_gemm_destroy(out);
        return -1;
    }
    cublasLtMatmulPreference_t pref;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    cublasStatus_t st = cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes, sizeof ws_bytes);
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulAlgoGetHeuristic(h, out->op, out->a, out->b, out->d, out->d, pref, 1,
                                            &res, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (st != CUBLAS_STATUS_SUCCESS || found < 1) {
        lt_gemm_destroy(out);
        BENCH_FAIL("cuBLASLt has no algorithm for M %d N %d K %d batch %d%s (%s)", g->M, g->N,
                   g->K, g->batch, g->bias ? " +bias" : "", cublasGetStatusString(st));
    }
    out->algo = res.algo;
    out->beta = g->beta;
    out->flops = 2.0 * g->M * (double)g->N * g->K * g->batch;
    return 0;
}

extern "C" int lt_gemm_run(cublasLtHandle_t h, const lt_gemm_t *g, const void *A, const void *B,
                           const void *C, void *D, const float *bias, void *ws, size_t ws_bytes,
                           cudaStream_t stream) {
    const float alpha = 1.0f;
    if (bias)
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(g->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                    &bias, sizeof bias));
    CUBLAS_CHECK(cublasLtMatmul(h, g->op, &alpha, B, g->a, A, g->b, &g->beta, C ? C : D, g->d, D,
                                g->d, &g->algo, ws, ws_bytes, stream));
    return 0;
}

extern "C" int lt_gemm_tune(cublasLtHandle_t h, lt_gemm_t *g, const void *A, const void *B,
                            const void *C, void *D, const float *bias, void *ws, size_t ws_bytes,
                            cudaStream_t stream, const char *what, lt_prologue_fn prologue,
                            void *prologue_ctx) {
    if (bias)
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(g->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                    &bias, sizeof bias));
    const lt_call_t call = {g->op, g->a, g->b, g->d, g->d, B, A, g->beta != 0.0f ? C : NULL,
                            D, g->beta, ws, ws_bytes, what, prologue, prologue_ctx};
    return lt_tune(h, &call, stream, &g->algo);
}

extern "C" void lt_gemm_destroy(lt_gemm_t *g) {
    if (g->a) cublasLtMatrixLayoutDestroy(g->a);
    if (g->b) cublasLtMatrixLayoutDestroy(g->b);
    if (g->d) cublasLtMatrixLayoutDestroy(g->d);
    if (g->op) cublasLtMatmulDescDestroy(g->op);
    memset(g, 0, sizeof *g);
}
