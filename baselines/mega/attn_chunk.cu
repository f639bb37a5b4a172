/* mega/attn_chunk.cu: MEGA's chunked causal softmax attention on cuBLAS (attn_chunk.h says
 * what and why).
 *
 * The plan (which strided-batched GEMMs cover which chunks, the halves of each chunk's queries)
 * is mega/attn_plan.c's, a pure host function tested without a GPU; this file allocates, owns the
 * cuBLAS handle and enqueues the calls, and the causal row softmax between them:
 *   P = causal softmax of S's rows, zeros above the diagonal (chunk_softmax, a warp a row).
 * The layouts are softmax_attn/naive's (baselines/softmax_attn/naive.cu explains them).
 *
 * ---- version index ----------------------------------------------------------------------------
 * v1 (the only version).  Not yet timed (written without a GPU).  Predicted at d = 1024
 *   (z = 128, v = 2048), c = 1024, 65536 tokens on an H100: S 26 GFLOP and PV 206 GFLOP on
 *   tensor cores (3/4 of the squares: ~0.35 ms), the softmax's 256 MB of fp32 scores read
 *   about 1.5 times and 128 MB of P written (~0.15 ms).
 */
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_check.h"
#include "dtype_device.cuh"
#include "mega/attn_chunk.h"
#include "mega/attn_plan.h"

namespace {

constexpr size_t MA_CUBLAS_WS = (size_t)32 << 20;
constexpr int SM_WARPS = 8; /* chunk_softmax: rows a block */

/* Merges two online-softmax partials (max m, sum l of exp(x - m)); both -inf stays (-inf, 0). */
__device__ __forceinline__ void merge_ml(float &m, float &l, float m2, float l2) {
    const float mm = fmaxf(m, m2);
    l = mm == -INFINITY ? 0.f : l * expf(m - mm) + l2 * expf(m2 - mm);
    m = mm;
}

/* A warp a row of a group's slab: rows = count * L, row r is query i = r % L of its chunk,
 * which sees keys 0..i.  Writes the whole row of P (zeros for j > i, so the PV GEMM is exact). */
template <typename TP>
__global__ void __launch_bounds__(SM_WARPS * 32)
chunk_softmax(const float *__restrict__ S, TP *__restrict__ P, long long rows, int L) {
    const long long r = (long long)blockIdx.x * SM_WARPS + (threadIdx.x >> 5);
    if (r >= rows) return; /* warp-uniform */
    const int lane = threadIdx.x & 31, i = (int)(r % L);
    const float *s = S + r * L;
    TP *p = P + r * L;
    float m = -INFINITY, l = 0.f;
    for (int j = lane; j <= i; j += 32) {
        const float x = s[j];
        if (x > m) {
            l = l * expf(m - x) + 1.f; /* m = -inf the first time: 0 * 0 + 1 */
            m = x;
        } else {
            l += expf(x - m);
        }
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1)
        merge_ml(m, l, __shfl_xor_sync(0xffffffffu, m, off), __shfl_xor_sync(0xffffffffu, l, off));
    const float inv = 1.f / l; /* key 0 is always seen: l >= 1 */
    for (int j = lane; j < L; j += 32) p[j] = from_f32<TP>(j <= i ? expf(s[j] - m) * inv : 0.f);
}

cudaDataType cuda_type(dtype_t t) {
    return t == DTYPE_F32 ? CUDA_R_32F : (t == DTYPE_F16 ? CUDA_R_16F : CUDA_R_16BF);
}

} // namespace

struct mega_attn {
    cublasHandle_t h;
    void *ws;
    float *S;
    void *P;
    dtype_t dt;
    mega_attn_plan_t plan;
};

extern "C" size_t mega_attn_workspace(int B, int T, int chunk, dtype_t dt) {
    return mega_attn_slab_elems(B, T, chunk) * (sizeof(float) + dtype_size(dt)) + MA_CUBLAS_WS;
}

extern "C" void mega_attn_destroy(mega_attn_t *a) {
    if (!a) return;
    if (a->h) cublasDestroy(a->h);
    cudaFree(a->ws);
    cudaFree(a->S);
    cudaFree(a->P);
    mega_attn_plan_free(&a->plan);
    free(a);
}

extern "C" int mega_attn_create(int B, int T, int z, int nv, int chunk, dtype_t dt,
                                mega_attn_t **out) {
    *out = NULL;
    if (B < 1 || T < 1 || z < 1 || nv < 1 || chunk < 1 || chunk > T)
        BENCH_FAIL("mega attention: B %d T %d z %d nv %d chunk %d", B, T, z, nv, chunk);
    mega_attn_t *a = (mega_attn_t *)calloc(1, sizeof *a);
    if (!a) BENCH_FAIL("mega attention: out of host memory");
    a->dt = dt;
    if (mega_attn_plan_make(B, T, z, nv, chunk, &a->plan)) {
        free(a);
        BENCH_FAIL("mega attention: out of host memory");
    }
    const size_t n = mega_attn_slab_elems(B, T, chunk);
    if (cudaMalloc((void **)&a->S, n * sizeof(float)) != cudaSuccess ||
        cudaMalloc(&a->P, n * dtype_size(dt)) != cudaSuccess ||
        cudaMalloc(&a->ws, MA_CUBLAS_WS) != cudaSuccess) {
        (void)cudaGetLastError();
        mega_attn_destroy(a);
        BENCH_FAIL("mega attention: %.3g GB of scores and probabilities do not fit",
                   n * (4.0 + dtype_size(dt)) / 1e9);
    }
    if (cublasCreate(&a->h) != CUBLAS_STATUS_SUCCESS) {
        mega_attn_destroy(a);
        BENCH_FAIL("mega attention: cublasCreate failed");
    }
    *out = a;
    return 0;
}

static int ma_bind(const mega_attn_t *a, cudaStream_t stream) {
    /* cublasSetStream resets the workspace to cuBLAS's own pool, so set ours after it. */
    CUBLAS_CHECK(cublasSetStream(a->h, stream));
    CUBLAS_CHECK(cublasSetWorkspace(a->h, a->ws, MA_CUBLAS_WS));
    return 0;
}

static cublasComputeType_t ma_compute(const mega_attn_t *a) {
    return a->dt == DTYPE_F32 ? CUBLAS_COMPUTE_32F_PEDANTIC : CUBLAS_COMPUTE_32F;
}

/* The plan's calls, their element offsets made pointers (es: bytes an element of A and B;
 * ec of C). */
static int ma_gemm(const mega_attn_t *a, const mega_gemm_call_t &g, float alpha, const void *A,
                   const void *B, void *C, size_t es, cudaDataType tc, size_t ec) {
    const cudaDataType ty = cuda_type(a->dt);
    const float zero = 0.0f;
    CUBLAS_CHECK(cublasGemmStridedBatchedEx(
        a->h, g.transa ? CUBLAS_OP_T : CUBLAS_OP_N, CUBLAS_OP_N, g.m, g.n, g.k, &alpha,
        (const char *)A + g.a * es, ty, (int)g.lda, g.sa, (const char *)B + g.b * es, ty,
        (int)g.ldb, g.sb, &zero, (char *)C + g.c * ec, tc, (int)g.ldc, g.sc, g.count,
        ma_compute(a), CUBLAS_GEMM_DEFAULT));
    return 0;
}

extern "C" int mega_attn_scores(const mega_attn_t *a, const void *q, const void *k,
                                cudaStream_t stream) {
    if (ma_bind(a, stream)) return -1;
    const size_t es = dtype_size(a->dt);
    const float alpha = (float)(1.0 / sqrt((double)a->plan.z));
    mega_gemm_call_t c[2];
    for (int i = 0; i < a->plan.ng; i++)
        for (int j = 0, n = mega_attn_scores_calls(&a->plan, i, c); j < n; j++)
            if (ma_gemm(a, c[j], alpha, k, q, a->S, es, CUDA_R_32F, sizeof(float))) return -1;
    return 0;
}

template <typename TP> static int ma_softmax_typed(const mega_attn_t *a, cudaStream_t stream) {
    for (int i = 0; i < a->plan.ng; i++) {
        const mega_attn_group_t &g = a->plan.g[i];
        const long long rows = (long long)g.count * g.L;
        chunk_softmax<TP><<<(unsigned)((rows + SM_WARPS - 1) / SM_WARPS), SM_WARPS * 32, 0,
                            stream>>>(a->S + g.s_off, (TP *)a->P + g.s_off, rows, g.L);
        CUDA_CHECK(cudaGetLastError());
    }
    return 0;
}

extern "C" int mega_attn_softmax(const mega_attn_t *a, cudaStream_t stream) {
    switch (a->dt) {
    case DTYPE_F32: return ma_softmax_typed<float>(a, stream);
    case DTYPE_F16: return ma_softmax_typed<__half>(a, stream);
    default: return ma_softmax_typed<__nv_bfloat16>(a, stream);
    }
}

extern "C" int mega_attn_pv(const mega_attn_t *a, const void *v, void *o, cudaStream_t stream) {
    if (ma_bind(a, stream)) return -1;
    const size_t es = dtype_size(a->dt);
    mega_gemm_call_t c[2];
    for (int i = 0; i < a->plan.ng; i++)
        for (int j = 0, n = mega_attn_pv_calls(&a->plan, i, c); j < n; j++)
            if (ma_gemm(a, c[j], 1.0f, v, a->P, o, es, cuda_type(a->dt), es)) return -1;
    return 0;
}

extern "C" void mega_attn_describe(const mega_attn_t *a, char *buf, size_t len) {
    if (!len) return;
    buf[0] = 0;
    if (a)
        snprintf(buf, len,
                 "attn=cublas scores=fp32 chunk=%d groups=%d split=half cudnn_sdpa=no:v%d>256",
                 a->plan.chunk, a->plan.ng, a->plan.nv);
}
