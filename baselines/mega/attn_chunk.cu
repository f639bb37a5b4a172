/* mega/attn_chunk.cu: MEGA's chunked causal softmax attention on cuBLAS (attn_chunk.h says
 * what and why).
 *
 * GEMM groups.  A strided-batched GEMM takes one stride between its items, so the chunks go
 * in groups of equal length and stride:
 *   c divides T (every power-of-two sweep point, and T <= c where c = T):  one group, all
 *     B T / c chunks, stride c rows;
 *   otherwise: one group a sequence for its floor(T / c) full chunks (stride c rows) and one
 *     group of the B partial last chunks (length T mod c, stride T rows).
 * Each group has its own slab of S (fp32) and P (run dtype), items L x L apart.  Per group:
 *   S^T = K Q^T * (1/sqrt z)  (cuBLAS column-major: m = n = L keys/queries, k = z)
 *   P   = causal softmax of S's rows, zeros above the diagonal (chunk_softmax, a warp a row)
 *   O^T = V^T P^T             (m = nv, n = L, k = L)
 * each GEMM as two over the halves of the chunk's queries (the first half needs the first half
 * of the keys only): 3/4 of the L x L square, for twice the calls.
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

namespace {

constexpr size_t MA_CUBLAS_WS = (size_t)32 << 20;
constexpr int MA_MAX_BATCH = 65535; /* chunks a cuBLAS call, as softmax_attn/naive's heads: clear
                                     * of any grid-dimension limit inside cuBLAS */
constexpr int SM_WARPS = 8; /* chunk_softmax: rows a block */

struct ma_group {
    long long row0;   /* the group's first chunk's first row in [B*T]      */
    long long stride; /* rows between consecutive chunks of the group       */
    int count, L;     /* chunks, and their length                           */
    size_t s_off;     /* the group's slab in S / P, elements                */
};

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

/* Elements of S (and of P) for every chunk. */
size_t slab_elems(int B, int T, int c) {
    const size_t full = (size_t)(T / c), rem = (size_t)(T % c);
    return (size_t)B * (full * c * c + rem * rem);
}

} // namespace

struct mega_attn {
    cublasHandle_t h;
    void *ws;
    float *S;
    void *P;
    int B, T, z, nv, c;
    dtype_t dt;
    int ng;
    ma_group *g;
};

/* Appends the group of `count` chunks of length L from row0, `stride` rows apart, in calls of at
 * most MA_MAX_BATCH chunks, their slabs from *off on. */
static void ma_push(mega_attn_t *a, long long row0, long long stride, long long count, int L,
                    size_t *off) {
    for (long long k0 = 0; k0 < count; k0 += MA_MAX_BATCH) {
        const int n = (int)(count - k0 < MA_MAX_BATCH ? count - k0 : MA_MAX_BATCH);
        a->g[a->ng++] = {row0 + k0 * stride, stride, n, L, *off};
        *off += (size_t)n * L * L;
    }
}

extern "C" double mega_attn_gemm_elems(int B, int T, int chunk) {
    const int full = T / chunk, rem = T % chunk;
    const double fc = (double)chunk * chunk - (double)(chunk / 2) * (chunk - chunk / 2);
    const double fr = (double)rem * rem - (double)(rem / 2) * (rem - rem / 2);
    return (double)B * (full * fc + fr);
}

extern "C" size_t mega_attn_workspace(int B, int T, int chunk, dtype_t dt) {
    return slab_elems(B, T, chunk) * (sizeof(float) + dtype_size(dt)) + MA_CUBLAS_WS;
}

extern "C" void mega_attn_destroy(mega_attn_t *a) {
    if (!a) return;
    if (a->h) cublasDestroy(a->h);
    cudaFree(a->ws);
    cudaFree(a->S);
    cudaFree(a->P);
    free(a->g);
    free(a);
}

extern "C" int mega_attn_create(int B, int T, int z, int nv, int chunk, dtype_t dt,
                                mega_attn_t **out) {
    *out = NULL;
    if (B < 1 || T < 1 || z < 1 || nv < 1 || chunk < 1 || chunk > T)
        BENCH_FAIL("mega attention: B %d T %d z %d nv %d chunk %d", B, T, z, nv, chunk);
    mega_attn_t *a = (mega_attn_t *)calloc(1, sizeof *a);
    if (!a) BENCH_FAIL("mega attention: out of host memory");
    a->B = B, a->T = T, a->z = z, a->nv = nv, a->c = chunk, a->dt = dt;
    const int full = T / chunk, rem = T % chunk;
    const long long items = rem == 0 ? (long long)B * full : (long long)B * (full + 1);
    a->g = (ma_group *)calloc((size_t)B + 2 + (size_t)(items / MA_MAX_BATCH), sizeof(ma_group));
    if (!a->g) {
        mega_attn_destroy(a);
        BENCH_FAIL("mega attention: out of host memory");
    }
    size_t off = 0;
    if (rem == 0) {
        ma_push(a, 0, chunk, (long long)B * full, chunk, &off);
    } else {
        for (int b = 0; full > 0 && b < B; b++) ma_push(a, (long long)b * T, chunk, full, chunk, &off);
        ma_push(a, (long long)full * chunk, T, B, rem, &off);
    }
    const size_t n = slab_elems(B, T, chunk);
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

/* Queries [0, h) of a chunk see keys [0, h) only, h = L / 2: each GEMM is two, the first
 * half's queries against the first half's keys, the second half's against all L, 3/4 of the
 * square (the quadrant of S above the diagonal is never written, and never read: the softmax
 * reads j <= i). */
extern "C" int mega_attn_scores(const mega_attn_t *a, const void *q, const void *k,
                                cudaStream_t stream) {
    if (ma_bind(a, stream)) return -1;
    const cudaDataType ty = cuda_type(a->dt);
    const size_t es = dtype_size(a->dt);
    const float alpha = (float)(1.0 / sqrt((double)a->z)), zero = 0.0f;
    for (int i = 0; i < a->ng; i++) {
        const ma_group &g = a->g[i];
        const int h = g.L / 2;
        const char *k0 = (const char *)k + (size_t)g.row0 * a->z * es;
        const char *q0 = (const char *)q + (size_t)g.row0 * a->z * es;
        const long long sx = g.stride * a->z, ss = (long long)g.L * g.L;
        if (h > 0) /* S[0:h, 0:h] */
            CUBLAS_CHECK(cublasGemmStridedBatchedEx(
                a->h, CUBLAS_OP_T, CUBLAS_OP_N, h, h, a->z, &alpha, k0, ty, a->z, sx, q0, ty,
                a->z, sx, &zero, a->S + g.s_off, CUDA_R_32F, g.L, ss, g.count, ma_compute(a),
                CUBLAS_GEMM_DEFAULT));
        /* S[h:L, 0:L] */
        CUBLAS_CHECK(cublasGemmStridedBatchedEx(
            a->h, CUBLAS_OP_T, CUBLAS_OP_N, g.L, g.L - h, a->z, &alpha, k0, ty, a->z, sx,
            q0 + (size_t)h * a->z * es, ty, a->z, sx, &zero, a->S + g.s_off + (size_t)h * g.L,
            CUDA_R_32F, g.L, ss, g.count, ma_compute(a), CUBLAS_GEMM_DEFAULT));
    }
    return 0;
}

template <typename TP> static int ma_softmax_typed(const mega_attn_t *a, cudaStream_t stream) {
    for (int i = 0; i < a->ng; i++) {
        const ma_group &g = a->g[i];
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
    const cudaDataType ty = cuda_type(a->dt);
    const size_t es = dtype_size(a->dt);
    const float one = 1.0f, zero = 0.0f;
    for (int i = 0; i < a->ng; i++) {
        const ma_group &g = a->g[i];
        const int h = g.L / 2; /* as mega_attn_scores: queries [0, h) read keys [0, h) */
        const size_t x0 = (size_t)g.row0 * a->nv * es;
        const char *v0 = (const char *)v + x0, *p0 = (const char *)a->P + g.s_off * es;
        char *o0 = (char *)o + x0;
        const long long sx = g.stride * a->nv, ss = (long long)g.L * g.L;
        if (h > 0) /* O[0:h] = P[0:h, 0:h] V[0:h] */
            CUBLAS_CHECK(cublasGemmStridedBatchedEx(
                a->h, CUBLAS_OP_N, CUBLAS_OP_N, a->nv, h, h, &one, v0, ty, a->nv, sx, p0, ty, g.L,
                ss, &zero, o0, ty, a->nv, sx, g.count, ma_compute(a), CUBLAS_GEMM_DEFAULT));
        /* O[h:L] = P[h:L, 0:L] V[0:L] */
        CUBLAS_CHECK(cublasGemmStridedBatchedEx(
            a->h, CUBLAS_OP_N, CUBLAS_OP_N, a->nv, g.L - h, g.L, &one, v0, ty, a->nv, sx,
            p0 + (size_t)h * g.L * es, ty, g.L, ss, &zero, o0 + (size_t)h * a->nv * es, ty, a->nv,
            sx, g.count, ma_compute(a), CUBLAS_GEMM_DEFAULT));
    }
    return 0;
}

extern "C" void mega_attn_describe(const mega_attn_t *a, char *buf, size_t len) {
    if (!len) return;
    buf[0] = 0;
    if (a)
        snprintf(buf, len,
                 "attn=cublas scores=fp32 chunk=%d groups=%d split=half cudnn_sdpa=no:v%d>256",
                 a->c, a->ng, a->nv);
}
