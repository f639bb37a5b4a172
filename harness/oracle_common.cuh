/* oracle_common.cuh: what the layers' plain-fp32 GPU oracles share (oracle_chela*.cu,
 * oracle_mega.cu, oracle_transformer*.cu): IEEE SiLU and sigmoid, the fp32 conversion of an
 * input, LayerNorm over rows, a bias / SiLU pass, the gated residual, MEGA's shared-Z query and
 * key, the backwards' deterministic column sums, the stages chela's and MEGA's backwards share
 * (oracle_bwd), and row-major fp32 GEMMs (and their backwards) on cuBLAS with
 * CUBLAS_COMPUTE_32F_PEDANTIC (no TF32, no reduced-precision emulation).  Each oracle source
 * includes it (directly or through its own header); everything has internal linkage (an
 * unnamed namespace). */
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

/* Row xr's LayerNorm statistics in every lane of the calling warp: the mean, then the biased
 * variance as an fmaf chain of the centered values, inv = 1/sqrtf(var + CHELA_LN_EPS) (not
 * rsqrtf).  ln_rows normalises with them and chela's LayerNorm backward (oracle_chela_bwd.cu)
 * recomputes them with this same code, so it differentiates the forward's normalisation.
 * (transformer's oracle has its own, oracle_transformer.h ln_row_stats: the variance there is
 * a plain multiply-add, not fmaf, so the two are kept apart.) */
template <typename Tin>
__device__ __forceinline__ void ln_mean_rstd(const Tin *xr, int n, int lane, float &mean,
                                             float &inv) {
    float sum = 0.f;
    for (int i = lane; i < n; i += 32) sum += to_f32(xr[i]);
    mean = warp_sum(sum) / (float)n;
    float var = 0.f;
    for (int i = lane; i < n; i += 32) {
        const float dx = to_f32(xr[i]) - mean;
        var = fmaf(dx, dx, var);
    }
    var = warp_sum(var) / (float)n;
    inv = 1.0f / sqrtf(var + (float)CHELA_LN_EPS);
}

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
    float mean, inv;
    ln_mean_rstd(xr, n, lane, mean, inv);
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

/* out = SiLU(in), elementwise: training's form of bias_act's in-place SiLU, which keeps the
 * pre-activation in for the backward (the same silu_f of the same value: the same bits). */
__global__ void silu_copy(const float *__restrict__ in, float *__restrict__ out, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = silu_f(in[i]);
}

/* The gated residual (chela's eq. 14, MEGA's update gate; P's columns [Zq | G | F | Hz] as
 * both lay them out): Y = sg . SiLU(Hz + (Hm + b_h)) + (1 - sg) . X,  sg = sigmoid(F),
 * F = P[:, z+v : z+v+d], Hz = P[:, z+v+d : np] (bias added).  MEGA names sg phi. */
template <typename Tx>
__global__ void gate(const float *__restrict__ p, int np, int z, int v,
                     const float *__restrict__ hm, const float *__restrict__ bh,
                     const Tx *__restrict__ x, float *__restrict__ y, int d, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        const size_t row = i / (size_t)d;
        const int c = (int)(i % (size_t)d);
        const float *pr = p + row * np + z + v;
        const float h = silu_f(pr[d + c] + (hm[i] + bh[c]));
        const float sg = sigmoid_f(pr[c]);
        y[i] = sg * h + (1.0f - sg) * to_f32(x[i]);
    }
}

/* ---------------- chela's and MEGA's backwards (oracle_chela_bwd.cu, oracle_mega_bwd.cu) ----
 * The stages the two layers share (the FFN, LayerNorms, the gated residual and H^, the shared-Z
 * Q and K, the GEMMs' backwards).  In a namespace of their own, opened by those two backwards
 * (using namespace oracle_bwd), so that transformer's backward keeps its own ln_bwd_rows. */
namespace oracle_bwd {

/* d/dp SiLU(p) = s(p) (1 + p (1 - s(p))), s = sigmoid_f (IEEE, as the forward's). */
__device__ __forceinline__ float silu_deriv_f(float p) {
    const float s = sigmoid_f(p);
    return s * (1.0f + p * (1.0f - s));
}

/* g[i] *= SiLU'(pre[i]): the gradient of SiLU's output to its input's, in place. */
__global__ void silu_bwd(float *__restrict__ g, const float *__restrict__ pre, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        g[i] *= silu_deriv_f(pre[i]);
}

/* LayerNorm's backward, one warp per row of n features, y = xh . g + b, xh = (x - mean) rstd:
 * out = res + rstd (gy - mean(gy) - xh mean(gy xh)), gy = g . dyln.  mean and rstd are
 * recomputed from x by ln_rows's own code (ln_mean_rstd: the sum, then fmaf of the centered
 * squares, 1/sqrtf) and left in mean_out, rstd_out for the gain's column sum.  out may be res
 * (each element read, then written, by one lane): neither __restrict__. */
template <typename Tin>
__global__ void __launch_bounds__(ROW_WARPS * 32)
ln_bwd_rows(const Tin *__restrict__ x, const float *__restrict__ g,
            const float *__restrict__ dyln, const float *res, float *out,
            float *__restrict__ mean_out, float *__restrict__ rstd_out, size_t rows, int n) {
    const int lane = threadIdx.x & 31;
    const size_t row = (size_t)blockIdx.x * ROW_WARPS + (threadIdx.x >> 5);
    if (row >= rows) return; /* warp-uniform */
    const Tin *xr = x + row * n;
    const float *dr = dyln + row * n;
    float mean, inv;
    ln_mean_rstd(xr, n, lane, mean, inv);
    float s_gy = 0.f, s_gyxh = 0.f;
    for (int i = lane; i < n; i += 32) {
        const float gy = g[i] * dr[i], xh = (to_f32(xr[i]) - mean) * inv;
        s_gy += gy;
        s_gyxh = fmaf(gy, xh, s_gyxh);
    }
    const float m_gy = warp_sum(s_gy) / (float)n, m_gyxh = warp_sum(s_gyxh) / (float)n;
    const float *rr = res + row * n;
    float *orow = out + row * n;
    for (int i = lane; i < n; i += 32) {
        const float gy = g[i] * dr[i], xh = (to_f32(xr[i]) - mean) * inv;
        orow[i] = rr[i] + inv * (gy - m_gy - xh * m_gyxh);
    }
    if (lane == 0) {
        mean_out[row] = mean;
        rstd_out[row] = inv;
    }
}

/* gate's backward: Y = sg . H + (1 - sg) . X, sg = sigmoid(F), H = SiLU(A),
 * A = Hz + (Hm + b_h) as gate computed it (F, Hz from P).
 *   dX (the residual's part, LayerNorm1's is added last) = dY (1 - sg)
 *   dF  -> dproj[:, z+v+c]                               = dY (H - X) sg (1 - sg)
 *   dA  -> dproj[:, z+v+d+c] (= dHz, and dbh's, dUh's)   = dY sg SiLU'(A) */
template <typename Tx>
__global__ void gate_bwd(const float *__restrict__ p, int np, int z, int v,
                         const float *__restrict__ hm, const float *__restrict__ bh,
                         const Tx *__restrict__ x, const float *__restrict__ dy,
                         float *__restrict__ dx, float *__restrict__ dproj, int d, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        const size_t row = i / (size_t)d;
        const int c = (int)(i % (size_t)d);
        const float *pr = p + row * np + z + v;
        const float a = pr[d + c] + (hm[i] + bh[c]);
        const float h = silu_f(a), sg = sigmoid_f(pr[c]), g = dy[i];
        float *dr = dproj + row * np + z + v;
        dx[i] = g * (1.0f - sg);
        dr[c] = g * (h - to_f32(x[i])) * sg * (1.0f - sg);
        dr[d + c] = g * sg * silu_deriv_f(a);
    }
}

/* qk_from_p's backward: Q = kq . Zq + mq, K = kk . Zq + mk, Zq = SiLU(Pz) share Zq, so
 * dPz -> dproj[:, i] = (dQ kq + dK kk) SiLU'(Pz). */
__global__ void qk_bwd(const float *__restrict__ p, int np, const float *__restrict__ kq,
                       const float *__restrict__ kk, const float *__restrict__ dq,
                       const float *__restrict__ dk, float *__restrict__ dproj, int z, size_t n) {
    for (size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x; e < n;
         e += (size_t)gridDim.x * blockDim.x) {
        const size_t row = e / (size_t)z;
        const int i = (int)(e % (size_t)z);
        dproj[row * np + i] = (dq[e] * kq[i] + dk[e] * kk[i]) * silu_deriv_f(p[row * np + i]);
    }
}

} // namespace oracle_bwd

/* ---------------- column sums (the backwards' bias and gain gradients) ----------------
 * out[j] = sum over the rows r of f(r, j), in two passes: at most COLSUM_CHUNKS row chunks,
 * each summed in row order by one thread a column, then the chunks' partial sums added in
 * chunk order.  No float atomics, so a backward gives the same bits every call; enough
 * blocks at d = 1024.  f is a small functor saying what the summand is.  In a namespace of
 * their own, which a backward opens (using namespace / using oracle_colsum::...), so that an
 * oracle source with column sums of its own still compiles beside this header. */
namespace oracle_colsum {

constexpr int CS_THREADS = 256;     /* one thread a column                                 */
constexpr int COLSUM_CHUNKS = 256;  /* row chunks at most: partials [COLSUM_CHUNKS][n]      */

struct sum_of { /* g[row][col], rows of stride ld (a bias: the sum of its output's gradient) */
    const float *g;
    size_t ld;
    __device__ float operator()(size_t r, int j) const { return g[r * ld + j]; }
};
/* A LayerNorm gain's summand dyln . xh, xh = (x - mean) rstd from the statistics the
 * LayerNorm backward left per row (rows of n). */
template <typename Tin> struct ln_gain_term {
    const float *dyln;
    const Tin *x;
    const float *mean, *rstd;
    int n;
    __device__ float operator()(size_t r, int j) const {
        const size_t e = r * n + j;
        return dyln[e] * ((to_f32(x[e]) - mean[r]) * rstd[r]);
    }
};
/* kappa_q's (or kappa_k's) summand dQ (or dK) . Zq, Zq = SiLU(Pz) as qk_from_p computed it. */
struct kappa_term {
    const float *g, *p;
    int z, np;
    __device__ float operator()(size_t r, int i) const {
        return g[r * z + i] * silu_f(p[r * np + i]);
    }
};

/* Pass 1: part[k][j] = sum of f(r, j) over the rows r of chunk k (per rows, the last chunk
 * shorter), in row order.  Grid (ceil(n / CS_THREADS), chunks): consecutive threads read
 * consecutive columns of a row. */
template <class F>
__global__ void colsum_part(F f, size_t rows, int n, size_t per, float *__restrict__ part) {
    const int j = blockIdx.x * CS_THREADS + threadIdx.x;
    if (j >= n) return;
    const size_t r0 = (size_t)blockIdx.y * per, r1 = r0 + per < rows ? r0 + per : rows;
    float sum = 0.f;
    for (size_t r = r0; r < r1; r++) sum += f(r, j);
    part[(size_t)blockIdx.y * n + j] = sum;
}

/* Pass 2: out[j] = the chunks' partial sums added in chunk order. */
__global__ void colsum_final(const float *__restrict__ part, int chunks, int n,
                             float *__restrict__ out) {
    const int j = blockIdx.x * CS_THREADS + threadIdx.x;
    if (j >= n) return;
    float sum = 0.f;
    for (int k = 0; k < chunks; k++) sum += part[(size_t)k * n + j];
    out[j] = sum;
}

} // namespace oracle_colsum

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

/* chela's and MEGA's forwards end alike (oracle_chela.cu stages 10-13, oracle_mega.cu 8-11):
 *   Y  = gate<Tx> (x, P, Hm, b_h)   into out, or into st->d_y when training (the output then
 *                                   gets a copy before the last GEMM adds to it)
 *   L  = LayerNorm2(Y)              into st->d_ln2
 *   F  = SiLU(L . W1)               into st->d_f; training keeps L . W1 in st->d_fpre
 *   Y' = Y + F . W2                 into out
 * St: either oracle's state (handle, train, d_p, d_hm, d_y, d_ln2, d_w1, d_fpre, d_f, d_w2).
 * The handle's stream and workspace are the caller's, already set. */
template <typename Tx, class St>
inline int gate_ffn_fwd(const St *st, int np, int z, int v, const float *bh, const Tx *x,
                        const float *ln2_g, const float *ln2_b, float *out, size_t N, int d,
                        cudaStream_t stream) {
    cublasHandle_t h = st->handle;
    float *y = st->train ? st->d_y : out;
    gate<Tx><<<ew_blocks(N * d), EW_THREADS, 0, stream>>>(st->d_p, np, z, v, st->d_hm, bh, x, y,
                                                          d, N * d);
    CUDA_CHECK(cudaGetLastError());
    ln_rows<float><<<row_blocks(N), ROW_WARPS * 32, 0, stream>>>(y, ln2_g, ln2_b, st->d_ln2, N,
                                                                  d);
    CUDA_CHECK(cudaGetLastError());
    if (st->train) {
        if (gemm_rows(h, st->d_ln2, N, d, st->d_w1, 2 * d, 0.0f, st->d_fpre)) return -1;
        silu_copy<<<ew_blocks(N * 2 * d), EW_THREADS, 0, stream>>>(st->d_fpre, st->d_f,
                                                                   N * 2 * d);
    } else {
        if (gemm_rows(h, st->d_ln2, N, d, st->d_w1, 2 * d, 0.0f, st->d_f)) return -1;
        bias_act<<<ew_blocks(N * 2 * d), EW_THREADS, 0, stream>>>(st->d_f, N * 2 * d, 2 * d,
                                                                 NULL, 1);
    }
    CUDA_CHECK(cudaGetLastError());
    if (st->train)
        CUDA_CHECK(cudaMemcpyAsync(out, st->d_y, N * d * sizeof(float), cudaMemcpyDeviceToDevice,
                                   stream));
    if (gemm_rows(h, st->d_f, N, 2 * d, st->d_w2, d, 1.0f, out)) return -1;
    return 0;
}

template <typename Tin>
inline int convert_typed(const void *in, float *out, size_t n, cudaStream_t stream = 0) {
    convert_f32<Tin><<<ew_blocks(n), EW_THREADS, 0, stream>>>((const Tin *)in, out, n);
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

/* fp32 copy of a tensor in the run dtype: setup's weights on the default stream (setup syncs
 * after), or on a run's stream (transformer's inputs, the backwards' dy). */
inline int to_f32_copy(dtype_t dt, const void *in, float *out, size_t n, cudaStream_t stream = 0) {
    switch (dt) {
    case DTYPE_F32: return convert_typed<float>(in, out, n, stream);
    case DTYPE_F16: return convert_typed<__half>(in, out, n, stream);
    case DTYPE_BF16: return convert_typed<__nv_bfloat16>(in, out, n, stream);
    }
    BENCH_FAIL("oracle: unknown dtype %d", (int)dt);
}

namespace oracle_colsum {

/* out[j] = sum over the rows of f(r, j), j < n (colsum_part, then colsum_final), through
 * part, at least COLSUM_CHUNKS * n floats. */
template <class F>
inline int colsum(F f, size_t rows, int n, float *part, float *out, cudaStream_t stream) {
    const size_t per = (rows + COLSUM_CHUNKS - 1) / COLSUM_CHUNKS; /* >= 1 */
    const int chunks = (int)((rows + per - 1) / per);              /* <= COLSUM_CHUNKS */
    const dim3 grid((unsigned)((n + CS_THREADS - 1) / CS_THREADS), (unsigned)chunks);
    colsum_part<F><<<grid, CS_THREADS, 0, stream>>>(f, rows, n, per, part);
    CUDA_CHECK(cudaGetLastError());
    colsum_final<<<grid.x, CS_THREADS, 0, stream>>>(part, chunks, n, out);
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

} // namespace oracle_colsum

namespace oracle_bwd {

/* Row-major dX[rows, n_in] = dY[rows, n_out] W[n_in, n_out]^T, dY of row stride ld_dy: the
 * column-major dX^T = W^T' dY^T with W' = W read as column-major [n_out, n_in].  Rows go in
 * slices so that no operand passes 32-bit indexing (as gemm_rows). */
inline int gemm_dx(cublasHandle_t h, const float *dY, int ld_dy, size_t rows, int n_in, int n_out,
                   const float *W, float *dX) {
    const float one = 1.0f, zero = 0.0f;
    const size_t slice = (size_t)INT_MAX / (size_t)(ld_dy > n_in ? ld_dy : n_in);
    for (size_t r0 = 0; r0 < rows; r0 += slice) {
        const int n = (int)(rows - r0 < slice ? rows - r0 : slice);
        CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, n_in, n, n_out, &one, W,
                                  CUDA_R_32F, n_out, dY + r0 * ld_dy, CUDA_R_32F, ld_dy, &zero,
                                  dX + r0 * n_in, CUDA_R_32F, n_in, CUBLAS_COMPUTE_32F_PEDANTIC,
                                  CUBLAS_GEMM_DEFAULT));
    }
    return 0;
}

/* Row-major dW[n_in, n_out] = X[rows, n_in]^T dY[rows, n_out] (row strides ld_x, ld_dy): the
 * column-major dW^T = dY^T X.  Row slices as gemm_dx, the first with beta = 0 (dW is
 * overwritten), the next added in order. */
inline int gemm_dw(cublasHandle_t h, const float *X, int ld_x, const float *dY, int ld_dy,
                   size_t rows, int n_in, int n_out, float *dW) {
    const float one = 1.0f, zero = 0.0f;
    const size_t slice = (size_t)INT_MAX / (size_t)(ld_x > ld_dy ? ld_x : ld_dy);
    for (size_t r0 = 0; r0 < rows; r0 += slice) {
        const int n = (int)(rows - r0 < slice ? rows - r0 : slice);
        CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_T, n_out, n_in, n, &one,
                                  dY + r0 * ld_dy, CUDA_R_32F, ld_dy, X + r0 * ld_x, CUDA_R_32F,
                                  ld_x, r0 ? &one : &zero, dW, CUDA_R_32F, n_out,
                                  CUBLAS_COMPUTE_32F_PEDANTIC, CUBLAS_GEMM_DEFAULT));
    }
    return 0;
}

/* LayerNorm's backward for the rows of x (that LayerNorm's input) with gain g and upstream
 * dyln: out = res + dx (ln_bwd_rows, its row statistics left in mean, rstd, N floats each),
 * then the gain's and the bias's gradients (column sums through part, COLSUM_CHUNKS d). */
template <typename Tin>
inline int ln_bwd(const Tin *x, const float *g, const float *dyln, const float *res, float *out,
                  float *dg, float *db, float *mean, float *rstd, float *part, size_t rows, int d,
                  cudaStream_t stream) {
    ln_bwd_rows<Tin><<<row_blocks(rows), ROW_WARPS * 32, 0, stream>>>(x, g, dyln, res, out, mean,
                                                                      rstd, rows, d);
    CUDA_CHECK(cudaGetLastError());
    const oracle_colsum::ln_gain_term<Tin> gain{dyln, x, mean, rstd, d};
    if (oracle_colsum::colsum(gain, rows, d, part, dg, stream) ||
        oracle_colsum::colsum(oracle_colsum::sum_of{dyln, (size_t)d}, rows, d, part, db, stream))
        return -1;
    return 0;
}

} // namespace oracle_bwd

inline int alloc_f32(float **p, size_t elems) {
    CUDA_CHECK(cudaMalloc((void **)p, elems * sizeof(float)));
    return 0;
}

} // namespace

#endif
