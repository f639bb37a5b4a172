/* oracle_common.cuh: what the layers' plain-fp32 GPU oracles share (oracle_chela.cu,
 * oracle_mega.cu): IEEE SiLU and sigmoid, the fp32 conversion of an input, LayerNorm over rows,
 * a bias / SiLU pass, MEGA's shared-Z query and key, and row-major fp32 GEMMs on cuBLAS with
 * CUBLAS_COMPUTE_32F_PEDANTIC (no TF32, no reduced-precision emulation).  Each oracle includes
 * it once; everything has internal linkage (an unnamed namespace). */
#ifndef CHELA_ORACLE_COMMON_CUH
#define CHELA_ORACLE_COMMON_CUH

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <limits.h>
#include <stddef.h>

#include "bench_check.h"
#include "common/math.cuh" /* warp_sum */
#include "dtype_device.cuh"
#include "op_inputs.h"     /* CHELA_LN_EPS */

namespace {

/* cuBLAS's recommended workspace on Hopper; ours so run() never allocates. */
constexpr size_t CUBLAS_WS_BYTES = (size_t)32 << 20;

constexpr int EW_THREADS = 256;    /* element-wise kernels                              */
constexpr int ROW_WARPS = 8;       /* row kernels: one warp per row, 8 rows a block      */

/* ---------------- device helpers ---------------- */

/* SiLU and the sigmoid with IEEE expf and divides, not common/math.cuh's silu / sigm: those
 * use __fdividef (2 ulp, and 0 where 1 + e^-x >= 2^126), and the fp32 yardstick the kernels
 * are checked against must not share the kernels' approximations.  (warp_sum is math.cuh's,
 * the same xor butterfly: the same additions in the same order.) */
__device__ __forceinline__ float silu_f(float x) { return x / (1.0f + expf(-x)); }
__device__ __forceinline__ float sigmoid_f(float x) { return 1.0f / (1.0f + expf(-x)); }

/* ---------------- kernels ---------------- */

template <typename Tin>
__global__ void convert_f32(const Tin *__restrict__ in, float *__restrict__ out, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = to_f32(in[i]);
}

/* LayerNorm over rows of n features: biased variance, gain and bias, eps CHELA_LN_EPS.  One
 * warp per row; the whole warp leaves together when its row is past the end. */
template <typename Tin>
__global__ void __launch_bounds__(ROW_WARPS * 32)
ln_rows(const Tin *__restrict__ x, const float *__restrict__ g, const float *__restrict__ b,
        float *__restrict__ y, size_t rows, int n) {
    const int lane = threadIdx.x & 31;
    const size_t row = (size_t)blockIdx.x * ROW_WARPS + (threadIdx.x >> 5);
    if (row >= rows) return;
    const Tin *xr = x + row * n;
    float *yr = y + row * n;
    float sum = 0.f;
    for (int i = lane; i < n; i += 32) sum += to_f32(xr[i]);
    const float mean = warp_sum(sum) / (float)n;
    float var = 0.f;
    for (int i = lane; i < n; i += 32) {
        const float dx = to_f32(xr[i]) - mean;
        var = fmaf(dx, dx, var);
    }
    var = warp_sum(var) / (float)n;
    const float inv = 1.0f / sqrtf(var + (float)CHELA_LN_EPS);
    for (int i = lane; i < n; i += 32) yr[i] = (to_f32(xr[i]) - mean) * inv * g[i] + b[i];
}

/* y[row, col] = act(y[row, col] + bias[col]); bias may be NULL, act: 0 none, 1 SiLU. */
__global__ void bias_act(float *__restrict__ y, size_t n, int cols,
                         const float *__restrict__ bias, int act) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float x = y[i];
        if (bias) x += bias[i % (size_t)cols];
        y[i] = act ? silu_f(x) : x;
    }
}

/* Zq = SiLU(P[:, 0:z]);  Q = kappa_q Zq + mu_q;  K = kappa_k Zq + mu_k  (MEGA's shared Z). */
__global__ void qk_from_p(const float *__restrict__ p, int np, const float *__restrict__ kq,
                          const float *__restrict__ mq, const float *__restrict__ kk,
                          const float *__restrict__ mk, float *__restrict__ q,
                          float *__restrict__ k, int z, size_t n) {
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < n;
         idx += (size_t)gridDim.x * blockDim.x) {
        const size_t row = idx / (size_t)z;
        const int i = (int)(idx % (size_t)z);
        const float zq = silu_f(p[row * np + i]);
        q[idx] = kq[i] * zq + mq[i];
        k[idx] = kk[i] * zq + mk[i];
    }
}

/* ---------------- host side ---------------- */

inline unsigned ew_blocks(size_t n) {
    const size_t b = (n + EW_THREADS - 1) / EW_THREADS;
    return b > 65536 ? 65536u : (unsigned)b;
}

inline unsigned row_blocks(size_t rows) { return (unsigned)((rows + ROW_WARPS - 1) / ROW_WARPS); }

/* Y[rows, n_out] (+)= X[rows, n_in] . W[n_in, n_out], all row-major fp32.  Column-major, that
 * is Y^T = W^T X^T: m = n_out, n = rows, k = n_in, A = W (lda n_out), B = X (ldb n_in).  Rows
 * go in slices of at most 2^31 / max(n_in, n_out) so no operand exceeds 32-bit indexing. */
inline int gemm_rows(cublasHandle_t h, const float *X, size_t rows, int n_in, const float *W, int n_out,
                     float beta, float *Y) {
    const float one = 1.0f;
    const int wide = n_in > n_out ? n_in : n_out;
    const size_t slice = (size_t)INT_MAX / (size_t)wide;
    for (size_t r0 = 0; r0 < rows; r0 += slice) {
        const int n = (int)(rows - r0 < slice ? rows - r0 : slice);
        CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, n_out, n, n_in, &one, W,
                                  CUDA_R_32F, n_out, X + r0 * n_in, CUDA_R_32F, n_in, &beta,
                                  Y + r0 * n_out, CUDA_R_32F, n_out,
                                  CUBLAS_COMPUTE_32F_PEDANTIC, CUBLAS_GEMM_DEFAULT));
    }
    return 0;
}

template <typename Tin> inline int convert_typed(const void *in, float *out, size_t n) {
    convert_f32<Tin><<<ew_blocks(n), EW_THREADS>>>((const Tin *)in, out, n);
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

/* fp32 copy of an input in the run dtype (default stream; setup syncs after). */
inline int to_f32_copy(dtype_t dt, const void *in, float *out, size_t n) {
    switch (dt) {
    case DTYPE_F32: return convert_typed<float>(in, out, n);
    case DTYPE_F16: return convert_typed<__half>(in, out, n);
    case DTYPE_BF16: return convert_typed<__nv_bfloat16>(in, out, n);
    }
    BENCH_FAIL("oracle: unknown dtype %d", (int)dt);
}

inline int alloc_f32(float **p, size_t elems) {
    CUDA_CHECK(cudaMalloc((void **)p, elems * sizeof(float)));
    return 0;
}

} // namespace

#endif
