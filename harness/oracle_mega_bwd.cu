/* oracle_mega_bwd.cu: mega/oracle_fp32's backward (run_bwd), MEGA's gated attention layer's
 * gradients in plain fp32 on the GPU: the yardstick a fast backward of the mega layer is checked
 * against at lengths the double CPU reference (ref_grad_mega.c) cannot reach.
 *
 * Like the forward (oracle_mega.cu) it is written to be obviously the definition: the chain
 * rule of ref_grad_mega.c stage by stage in the reverse order, fp32 throughout, no shortcut:
 *   - dy arrives in the run dtype and is widened to fp32 first; every gradient is written in
 *     fp32, dX included (the oracle's convention: an fp32 [B,T,d] buffer), overwritten;
 *   - GEMMs: the forward's cuBLAS handle (CUBLAS_COMPUTE_32F_PEDANTIC, no TF32), beta = 0:
 *     dW = X^T dZ and dX = dZ W^T for each of W2, W1, U_h, W_v, W_proj (U_h's dZ, the gradient
 *     of H^'s pre-activation, read in place in dproj's Hz columns, row stride np);
 *   - bias, gain, kappa / mu gradients are column sums over the N = B T rows in two passes (at
 *     most COLSUM_CHUNKS row chunks summed one thread a column, then the chunks in order), each
 *     summand a small functor saying what it is: no float atomics, so run_bwd gives the same
 *     bits every call;
 *   - both LayerNorms: one warp per row, the row statistics recomputed by the forward's
 *     operations in the forward's order (ln_rows in oracle_common.cuh);
 *   - pre-activations: what the forward overwrote in place is kept when training (X~ W_v + b_v,
 *     L W1, Y, O beside M and the softmax statistics), the rest recomputed with the forward's
 *     expressions (Hz + Hm + b_h from P and Hm; SiLU(G), sigmoid(F), Zq from P);
 *   - the attention and the EMA: oracle_mega_bwd_seq.cu (the attention by query rows then key
 *     rows, each chunk alone; the EMA's input and parameter gradients by recurrences over t).
 * Buffers (oracle_mega.h): the kept activations and the scratch g_* are allocated by setup when
 * pass != fwd; run_bwd reads the forward's activations and never writes them, so it can be
 * called again and again after one run().
 *
 * Cost at the default point (d = 1024, z = 128, v = 2048, c = 1024, B T = 65536; predicted,
 * not yet measured: written without a GPU): GEMMs twice the forward's (~1.7e12 MACs, ~80 ms);
 * the attention ~3e11 FMAs in warp dot products and column sweeps, ~0.1-0.3 s; the EMA's
 * scans a few ms; element-wise, row and column-sum passes ~10 ms.  Memory: train_floats. */
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>

#include "bench_check.h"
#include "common/math.cuh" /* warp_sum */
#include "dtype_device.cuh"
#include "op_inputs.h"
#include "oracle_common.cuh" /* silu_f, sigmoid_f, convert_f32, CUBLAS_WS_BYTES, ROW_WARPS */
#include "oracle_mega.h"
#include "variant.h"

extern "C" {
DECLARE_BWD(mega_oracle_fp32);
}

/* Everything here is in mega_oracle's own unnamed namespace, so that a helper of the same name
 * in oracle_common.cuh (which other oracles are reshaping as this is written: column sums, GEMM
 * backwards) is hidden here rather than redefined; these may move there once it settles. */
namespace mega_oracle {
namespace {

constexpr int CS_THREADS = 256; /* column sums: one thread a column */

/* d/dp SiLU(p) = s(p) (1 + p (1 - s(p))), s = sigmoid_f (IEEE, as the forward's). */
__device__ __forceinline__ float silu_deriv_f(float p) {
    const float s = sigmoid_f(p);
    return s * (1.0f + p * (1.0f - s));
}

/* ---------------------------------- kernels ---------------------------------- */

/* g[i] *= SiLU'(pre[i]): the gradient of SiLU's output to its input's, in place. */
__global__ void silu_bwd(float *__restrict__ g, const float *__restrict__ pre, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        g[i] *= silu_deriv_f(pre[i]);
}

/* LayerNorm's backward, one warp per row of n features, y = xh . g + b, xh = (x - mean) rstd:
 * out = res + rstd (gy - mean(gy) - xh mean(gy xh)), gy = g . dyln.  mean and rstd are
 * recomputed from x by ln_rows' own code (ln_mean_rstd) and left in mean_out, rstd_out for the gain's column sum.  out may be res
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
    ln_mean_rstd(xr, n, lane, mean, inv); /* ln_rows' own statistics (oracle_common.cuh) */
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

/* The update gate and H^: Y = phi . H + (1 - phi) . X, phi = sigmoid(F), H = SiLU(A),
 * A = Hz + (Hm + b_h) as the forward's gate computed it (F, Hz from P).
 *   dX (the residual's part, LayerNorm1's is added last) = dY (1 - phi)
 *   dF  -> dproj[:, z+v+c]                               = dY (H - X) phi (1 - phi)
 *   dA  -> dproj[:, z+v+d+c] (= dHz, and dbh's, dUh's)   = dY phi SiLU'(A) */
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
        const float h = silu_f(a), phi = sigmoid_f(pr[c]), g = dy[i];
        float *dr = dproj + row * np + z + v;
        dx[i] = g * (1.0f - phi);
        dr[c] = g * (h - to_f32(x[i])) * phi * (1.0f - phi);
        dr[d + c] = g * phi * silu_deriv_f(a);
    }
}

/* The reset gate M = gamma . O, gamma = SiLU(G) (G = P[:, z : z+v]), O kept:
 *   dG -> dproj[:, z+j] = dM O SiLU'(G);   dO = dM gamma   (over dM, in place). */
__global__ void reset_bwd(const float *__restrict__ o, const float *__restrict__ p, int np, int z,
                          int v, float *__restrict__ dm, float *__restrict__ dproj, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        const size_t row = i / (size_t)v;
        const int j = (int)(i % (size_t)v);
        const float gp = p[row * np + z + j], g = dm[i];
        dproj[row * np + z + j] = g * o[i] * silu_deriv_f(gp);
        dm[i] = g * silu_f(gp);
    }
}

/* Q = kq . Zq + mq, K = kk . Zq + mk, Zq = SiLU(Pz): Q and K share Zq, so
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

/* Column sums' summands, f(row, col), one struct per kind of parameter gradient. */
struct sum_of { /* g[row][col], rows of stride ld (a bias: the sum of its output's gradient) */
    const float *g;
    size_t ld;
    __device__ float operator()(size_t r, int j) const { return g[r * ld + j]; }
};
template <typename Tin> struct ln_gain_term { /* dyln . xh, xh from x and ln_bwd_rows' stats */
    const float *dyln;
    const Tin *x;
    const float *mean, *rstd;
    int n;
    __device__ float operator()(size_t r, int j) const {
        const size_t e = r * n + j;
        return dyln[e] * ((to_f32(x[e]) - mean[r]) * rstd[r]);
    }
};
struct kappa_term { /* dQ (or dK) . Zq, Zq = SiLU(Pz) as qk_from_p computed it */
    const float *g, *p;
    int z, np;
    __device__ float operator()(size_t r, int i) const {
        return g[r * z + i] * silu_f(p[r * np + i]);
    }
};

/* Column sums, pass 1: part[k][j] = sum of f(r, j) over the rows r of chunk k (per rows, the
 * last chunk shorter), in row order.  Grid (ceil(n / CS_THREADS), chunks). */
template <class F>
__global__ void colsum_part(F f, size_t rows, int n, size_t per, float *__restrict__ part) {
    const int j = blockIdx.x * CS_THREADS + threadIdx.x;
    if (j >= n) return;
    const size_t r0 = (size_t)blockIdx.y * per, r1 = r0 + per < rows ? r0 + per : rows;
    float sum = 0.f;
    for (size_t r = r0; r < r1; r++) sum += f(r, j);
    part[(size_t)blockIdx.y * n + j] = sum;
}

/* Column sums, pass 2: out[j] = the chunks' partial sums added in chunk order. */
__global__ void colsum_final(const float *__restrict__ part, int chunks, int n,
                             float *__restrict__ out) {
    const int j = blockIdx.x * CS_THREADS + threadIdx.x;
    if (j >= n) return;
    float sum = 0.f;
    for (int k = 0; k < chunks; k++) sum += part[(size_t)k * n + j];
    out[j] = sum;
}

/* ---------------------------------- host ---------------------------------- */

/* Row-major dX[rows, n_in] = dY[rows, n_out] W[n_in, n_out]^T, dY of row stride ld_dy: the
 * column-major dX^T = W^T' dY^T with W' = W read as column-major [n_out, n_in].  Rows go in
 * slices so that no operand passes 32-bit indexing (as the forward's gemm_rows). */
int gemm_dx(cublasHandle_t h, const float *dY, int ld_dy, size_t rows, int n_in, int n_out,
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
int gemm_dw(cublasHandle_t h, const float *X, int ld_x, const float *dY, int ld_dy, size_t rows,
            int n_in, int n_out, float *dW) {
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

/* out[j] = sum over the rows of f(r, j), j < n <= np (two passes through st->g_cs). */
template <class F>
int colsum(const oracle_state *st, F f, size_t rows, int n, float *out, cudaStream_t stream) {
    const size_t per = (rows + CS_CHUNKS - 1) / CS_CHUNKS; /* >= 1 */
    const int chunks = (int)((rows + per - 1) / per);      /* <= CS_CHUNKS */
    const dim3 grid((unsigned)((n + CS_THREADS - 1) / CS_THREADS), (unsigned)chunks);
    colsum_part<F><<<grid, CS_THREADS, 0, stream>>>(f, rows, n, per, st->g_cs);
    CUDA_CHECK(cudaGetLastError());
    colsum_final<<<grid.x, CS_THREADS, 0, stream>>>(st->g_cs, chunks, n, out);
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

/* LayerNorm's backward for the rows of x (that LayerNorm's input) with gain g and upstream
 * dyln: out = res + dx, then the gain's and the bias's gradients. */
template <typename Tin>
int ln_bwd(const oracle_state *st, const Tin *x, const float *g, const float *dyln,
           const float *res, float *out, float *dg, float *db, size_t rows, int d,
           cudaStream_t stream) {
    ln_bwd_rows<Tin><<<row_blocks(rows), ROW_WARPS * 32, 0, stream>>>(
        x, g, dyln, res, out, st->g_mean, st->g_rstd, rows, d);
    CUDA_CHECK(cudaGetLastError());
    if (colsum(st, ln_gain_term<Tin>{dyln, x, st->g_mean, st->g_rstd, d}, rows, d, dg, stream) ||
        colsum(st, sum_of{dyln, (size_t)d}, rows, d, db, stream))
        return -1;
    return 0;
}

/* The backward, stage by stage from the output back (ref_grad_mega.c's order); x (stages gate
 * and LayerNorm1) and dy in the run dtype Tx. */
template <typename Tx>
int run_bwd_typed(const oracle_state *st, const io_t *io, const grad_io_t *gio,
                  cudaStream_t stream) {
    const shape_t *s = io->shape;
    const int d = s->d, z = s->z, v = s->v, np = n_proj(s);
    const size_t N = (size_t)s->B * s->T;
    const float *const *in = (const float *const *)io->in; /* the fp32 inputs */
    float *const *gr = (float *const *)gio->grad;
    const Tx *x = (const Tx *)io->in[MEGA_IN_X];
    cublasHandle_t h = st->handle;
    float *dY = st->g_dy, *dF = st->g_df, *dD = st->g_dd, *dP = st->g_dproj;

    /* cublasSetStream resets the workspace to cuBLAS's own pool, so set ours after it. */
    CUBLAS_CHECK(cublasSetStream(h, stream));
    CUBLAS_CHECK(cublasSetWorkspace(h, st->d_ws, CUBLAS_WS_BYTES));
    convert_f32<Tx><<<ew_blocks(N * d), EW_THREADS, 0, stream>>>((const Tx *)gio->dy, dY, N * d);
    CUDA_CHECK(cudaGetLastError());

    /* FFN: Y' = Y + F W2, F = SiLU(Pf), Pf = L W1, L = LayerNorm2(Y); dY = dY' + LN2's. */
    if (gemm_dw(h, st->d_f, 2 * d, dY, d, N, 2 * d, d, gr[MEGA_IN_W2]) ||
        gemm_dx(h, dY, d, N, 2 * d, d, st->d_w2, dF)) /* dF */
        return -1;
    silu_bwd<<<ew_blocks(N * 2 * d), EW_THREADS, 0, stream>>>(dF, st->d_fpre, N * 2 * d);
    CUDA_CHECK(cudaGetLastError()); /* dPf */
    if (gemm_dw(h, st->d_ln2, d, dF, 2 * d, N, d, 2 * d, gr[MEGA_IN_W1]) ||
        gemm_dx(h, dF, 2 * d, N, d, 2 * d, st->d_w1, dD) || /* dL */
        ln_bwd<float>(st, st->d_y, in[MEGA_IN_LN2_G], dD, dY, dY, gr[MEGA_IN_LN2_G],
                      gr[MEGA_IN_LN2_B], N, d, stream))
        return -1;

    /* The update gate and H^: dX's residual part, the F and Hz columns of dproj. */
    gate_bwd<Tx><<<ew_blocks(N * d), EW_THREADS, 0, stream>>>(
        st->d_p, np, z, v, st->d_hm, in[MEGA_IN_BH], x, dY, gr[MEGA_IN_X], dP, d, N * d);
    CUDA_CHECK(cudaGetLastError());
    /* A = Hz + M U_h + b_h: dA sits in dproj's Hz columns (row stride np). */
    const float *dA = dP + z + v + d;
    if (gemm_dw(h, st->d_m, v, dA, np, N, v, d, gr[MEGA_IN_UH]) ||
        colsum(st, sum_of{dA, (size_t)np}, N, d, gr[MEGA_IN_BH], stream) ||
        gemm_dx(h, dA, np, N, v, d, st->d_uh, st->g_dm)) /* dM */
        return -1;

    /* The reset gate: the G columns of dproj; dM becomes dO. */
    reset_bwd<<<ew_blocks(N * v), EW_THREADS, 0, stream>>>(st->d_o, st->d_p, np, z, v, st->g_dm,
                                                           dP, N * v);
    CUDA_CHECK(cudaGetLastError());

    /* The chunked attention (oracle_mega_bwd_seq.cu). */
    if (attn_bwd(st, s, st->g_dm, st->g_dq, st->g_dk, st->g_dv, stream)) return -1;

    /* V = SiLU(Pv), Pv = X~ W_v + b_v: dX~'s V part into dD (dL is spent). */
    silu_bwd<<<ew_blocks(N * v), EW_THREADS, 0, stream>>>(st->g_dv, st->d_vpre, N * v);
    CUDA_CHECK(cudaGetLastError()); /* dPv */
    if (gemm_dw(h, st->d_xln, d, st->g_dv, v, N, d, v, gr[MEGA_IN_WV]) ||
        colsum(st, sum_of{st->g_dv, (size_t)v}, N, v, gr[MEGA_IN_BV], stream) ||
        gemm_dx(h, st->g_dv, v, N, d, v, st->d_wv, dD))
        return -1;

    /* Q, K from Zq: the Zq columns of dproj, kappa and mu. */
    qk_bwd<<<ew_blocks(N * z), EW_THREADS, 0, stream>>>(st->d_p, np, in[MEGA_IN_KAPPA_Q],
                                                        in[MEGA_IN_KAPPA_K], st->g_dq,
                                                        st->g_dk, dP, z, N * z);
    CUDA_CHECK(cudaGetLastError());
    if (colsum(st, kappa_term{st->g_dq, st->d_p, z, np}, N, z, gr[MEGA_IN_KAPPA_Q], stream) ||
        colsum(st, sum_of{st->g_dq, (size_t)z}, N, z, gr[MEGA_IN_MU_Q], stream) ||
        colsum(st, kappa_term{st->g_dk, st->d_p, z, np}, N, z, gr[MEGA_IN_KAPPA_K], stream) ||
        colsum(st, sum_of{st->g_dk, (size_t)z}, N, z, gr[MEGA_IN_MU_K], stream))
        return -1;

    /* The fused projection P = X' W_proj + b_proj: dX' into dF's first N d (dPf is spent). */
    if (gemm_dw(h, st->d_xe, d, dP, np, N, d, np, gr[MEGA_IN_WPROJ]) ||
        colsum(st, sum_of{dP, (size_t)np}, N, np, gr[MEGA_IN_BPROJ], stream) ||
        gemm_dx(h, dP, np, N, d, np, st->d_wproj, dF))
        return -1;

    /* X' = EMA(X~): its part of dX~ added to dD, the EMA's parameters' gradients. */
    if (ema_bwd(st, s, in, dF, dD, gr, stream)) return -1;

    /* X~ = LayerNorm1(X): dX = the residual's part (already in place) + LN1's. */
    return ln_bwd<Tx>(st, x, in[MEGA_IN_LN1_G], dD, gr[MEGA_IN_X], gr[MEGA_IN_X],
                      gr[MEGA_IN_LN1_G], gr[MEGA_IN_LN1_B], N, d, stream);
}

} // namespace
} // namespace mega_oracle

extern "C" {

/* Every gradient fp32 (dX too), overwritten; L = sum(dy . out), dy in the run dtype. */
int mega_oracle_fp32_run_bwd(void *state, const io_t *io, const grad_io_t *g,
                             cudaStream_t stream) {
    using namespace mega_oracle;
    const oracle_state *st = (const oracle_state *)state;
    if (!st) BENCH_FAIL("mega/oracle_fp32: run_bwd without setup");
    if (!st->train)
        BENCH_FAIL("mega/oracle_fp32: run_bwd after a pass-fwd setup (nothing kept)");
    if (!g || !g->dy) BENCH_FAIL("mega/oracle_fp32: run_bwd without dy");
    for (int i = 0; i < MEGA_N_IN; i++)
        if (!g->grad[i]) BENCH_FAIL("mega/oracle_fp32: run_bwd without gradient buffer %d", i);
    switch (io->shape->dtype) {
    case DTYPE_F32: return run_bwd_typed<float>(st, io, g, stream);
    case DTYPE_F16: return run_bwd_typed<__half>(st, io, g, stream);
    case DTYPE_BF16: return run_bwd_typed<__nv_bfloat16>(st, io, g, stream);
    }
    BENCH_FAIL("mega/oracle_fp32: unknown dtype %d", (int)io->shape->dtype);
}

} // extern "C"
