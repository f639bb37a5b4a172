/* oracle_transformer_bwd.cu: transformer/oracle_fp32's backward (run_bwd), the layer's
 * gradients in plain fp32 on the GPU: the yardstick a fast backward of transformer/layer is
 * checked against at lengths the double CPU reference (ref_grad_transformer.c) cannot reach.
 *
 * Like the forward (oracle_transformer.cu) it is written to be obviously the definition, the
 * chain rule stage by stage in the reverse order (ops.c, ref_grad_transformer.h), fp32
 * throughout, not to be fast:
 *   - dy arrives in the run dtype and is widened to fp32 first; every gradient is written in
 *     fp32, dX included (the oracle's convention: an fp32 [B,T,d] buffer), overwritten;
 *   - GEMMs: the forward's cuBLAS handle (CUBLAS_COMPUTE_32F_PEDANTIC, no TF32), beta = 0:
 *     dW = X^T dZ and dX = dZ W^T for each of W2, W1, Wo, Wqkv;
 *   - bias and LayerNorm-parameter gradients are column sums over the M = B T rows, in two
 *     passes (oracle_common.cuh colsum: each of at most COLSUM_CHUNKS row chunks summed by one
 *     thread a column, then the chunks in order): no float atomics, so run_bwd gives the same
 *     bits every call;
 *   - LayerNorm backward: one warp per row, the statistics recomputed by the forward's own
 *     code (oracle_transformer.h), dx = rstd (gy - mean(gy) - xh mean(gy xh)), gy = g dyln,
 *     added to the residual's gradient;
 *   - GELU' exact: Phi(u) + u phi(u), from the kept pre-activation u;
 *   - attention: P is rebuilt as exp(s - lse) from the forward's kept log-sum-exp, the score s
 *     computed as the forward computes it (q pre-scaled, the same fmaf chain), so P is the
 *     forward's. Three kernels, one warp a row: delta_i = dA_i . A_i; dQ_i = scale sum_j dS_ij
 *     K_j over j <= i (one warp a query row, keys in chunks of 32: lane j scores key j, then
 *     the 32 dS are shuffled out, lane owning columns lane + 32 e); dK_j = scale sum_i dS_ij
 *     Q_i and dV_j = sum_i P_ij dA_i over i >= j (one warp a key row, query rows in chunks of
 *     32 likewise), dS_ij = P_ij (dA_i . V_j - delta_i). A warp's fixed row pair (q_i and dA_i,
 *     or k_j and v_j) sits in shared memory, read as broadcasts: 2 D floats a lane in
 *     registers would spill at D = 128. No atomics: every gradient row has one owner warp.
 * Buffers (oracle_transformer.h): dY [M,d] (dy, then dy + LN2's backward), dH [M,4d] (dHact,
 * dU, then dQKV), gd [M,d] (dYln, dA, dX~), allocated by setup when pass != fwd; run_bwd
 * reads the forward's activations and never writes them, so it can be called again.
 *
 * Cost (predicted; measured: not yet): the GEMMs are twice the forward's (24 d^2 MACs a
 * token): ~70 ms at the default point at ~50 TFLOP/s; the element-wise, row and column-sum
 * passes move ~45 M d floats: ~5 ms. The attention dominates at long T: dQ issues ~11 warp
 * instructions per (row, key) pair at D = 64 (two D-long dots a lane, then D/32 FMAs and loads
 * a key), dK/dV ~15 (the same dots, two accumulators); with the forward's ~8 that is ~3.3x the
 * forward's attention: ~1 s at T = 64k, H = 16, B = 1 if it stays issue-bound as the forward. */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stddef.h>

#include "bench_check.h"
#include "op_inputs.h"
#include "oracle_transformer.h"
#include "variant.h"

extern "C" {
DECLARE_BWD(transformer_oracle_fp32);
}

using namespace tf_oracle;
using namespace oracle_colsum; /* colsum, sum_of, ln_gain_term (oracle_common.cuh) */

namespace {

/* ---------------------------------- kernels ---------------------------------- */

/* dh[i] *= GELU'(u[i]) = Phi(u) + u phi(u), exact (erff, expf): dHact -> dU in place. */
__global__ void gelu_erf_bwd(const float *__restrict__ u, float *__restrict__ dh, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        const float x = u[i];
        const float Phi = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
        const float phi = 0.39894228040143267794f * expf(-0.5f * x * x); /* 1/sqrt(2 pi) */
        dh[i] *= Phi + x * phi;
    }
}

/* LayerNorm backward, one warp per row of d features, for y = g xh + b, xh = (x - mean) rstd:
 * out = res + rstd (gy - mean(gy) - xh mean(gy xh)), gy = g dyln (means over the row). The
 * statistics are recomputed from x as the forward computed them and left in mean[], rstd[]
 * for the gain's column sum. out may be res (dY = dy + ..., in place): each element is read
 * and then written by the same lane, so neither is __restrict__. */
__global__ void __launch_bounds__(ROW_WARPS * 32)
ln_bwd_rows(const float *__restrict__ x, const float *__restrict__ g,
            const float *__restrict__ dyln, const float *res, float *out,
            float *__restrict__ mean_out, float *__restrict__ rstd_out, long long rows, int d) {
    const long long row = (long long)blockIdx.x * ROW_WARPS + (threadIdx.x >> 5);
    if (row >= rows) return; /* warp-uniform */
    const int lane = threadIdx.x & 31;
    const float *xr = x + row * d, *dr = dyln + row * d;
    float mean, rstd;
    ln_row_stats(xr, d, lane, mean, rstd);
    float s_gy = 0.f, s_gyxh = 0.f;
    for (int i = lane; i < d; i += 32) {
        const float gy = g[i] * dr[i], xh = (xr[i] - mean) * rstd;
        s_gy += gy;
        s_gyxh += gy * xh;
    }
    const float m_gy = warp_sum(s_gy) / (float)d, m_gyxh = warp_sum(s_gyxh) / (float)d;
    const float *rr = res + row * d;
    float *orow = out + row * d;
    for (int i = lane; i < d; i += 32) {
        const float gy = g[i] * dr[i], xh = (xr[i] - mean) * rstd;
        orow[i] = rr[i] + rstd * (gy - m_gy - xh * m_gyxh);
    }
    if (lane == 0) {
        mean_out[row] = mean;
        rstd_out[row] = rstd;
    }
}

/* delta[bh][t] = dA_t . A_t over head h's D columns, one warp per (b, h, t) row; A is the
 * forward's output (kept), dA [M,d] as the attention's output. */
__global__ void __launch_bounds__(ROW_WARPS * 32)
attn_delta(const float *__restrict__ a, const float *__restrict__ da, float *__restrict__ delta,
           int B, int T, int H, int D) {
    const long long row = (long long)blockIdx.x * ROW_WARPS + (threadIdx.x >> 5);
    if (row >= (long long)B * H * T) return; /* warp-uniform */
    const int lane = threadIdx.x & 31;
    const int t = (int)(row % T), bh = (int)(row / T), b = bh / H, h = bh % H;
    const size_t at = ((size_t)b * T + t) * ((size_t)H * D) + (size_t)h * D;
    float sum = 0.f;
    for (int c = lane; c < D; c += 32) sum += da[at + c] * a[at + c];
    sum = warp_sum(sum);
    if (lane == 0) delta[row] = sum;
}

/* A D-long dot of a shared-memory row (broadcast) and a global row, 4 at a time in order:
 * with sv the pre-scaled query this is the forward's score, the same fmaf chain. */
template <int D>
__device__ __forceinline__ float dot_row(const float4 *sv, const float4 *gv) {
    float dot = 0.f;
#pragma unroll
    for (int i = 0; i < D / 4; i++) {
        const float4 p = sv[i], u = gv[i];
        dot = fmaf(p.x, u.x, dot);
        dot = fmaf(p.y, u.y, dot);
        dot = fmaf(p.z, u.z, dot);
        dot = fmaf(p.w, u.w, dot);
    }
    return dot;
}

/* dQ: one warp per (b, h, query row i), blocks of ROW_WARPS consecutive rows of one head,
 * longest rows first (the forward's order). The warp keeps q_i scale and dA_i in shared
 * memory; per chunk of 32 keys j <= i, lane j computes s = q_i scale . k_j, P = exp(s - lse_i),
 * dS = P (dA_i . v_j - delta_i); then the dS are broadcast one by one and each lane adds
 * dS_j K_j to its columns lane + 32 e. dQ_i = scale sum_j dS_ij K_j into dqkv's q columns. */
template <int D>
__global__ void __launch_bounds__(ROW_WARPS * 32)
attn_bwd_dq(const float *__restrict__ qkv, const float *__restrict__ da,
            const float *__restrict__ lse, const float *__restrict__ delta,
            float *__restrict__ dqkv, int B, int T, int H, float scale) {
    constexpr int E = D / 32;
    __shared__ float4 sm[ROW_WARPS][2][D / 4]; /* q_i scale, dA_i */
    const unsigned bh_count = (unsigned)B * (unsigned)H;
    const int n_tb = (T + ROW_WARPS - 1) / ROW_WARPS;
    const int tb = n_tb - 1 - (int)(blockIdx.x / bh_count);
    const int w = (int)(threadIdx.x >> 5), i = tb * ROW_WARPS + w;
    if (i >= T) return; /* warp-uniform; only __syncwarp below */
    const int lane = threadIdx.x & 31;
    const int bh = (int)(blockIdx.x % bh_count), b = bh / H, h = bh % H;
    const size_t d = (size_t)H * D, ld = 3 * d;
    const float *base = qkv + (size_t)b * T * ld;
    const float4 *q4 = reinterpret_cast<const float4 *>(base + (size_t)i * ld + (size_t)h * D);
    const float4 *da4 =
        reinterpret_cast<const float4 *>(da + ((size_t)b * T + i) * d + (size_t)h * D);
    for (int c = lane; c < D / 4; c += 32) {
        float4 u = q4[c];
        u.x *= scale, u.y *= scale, u.z *= scale, u.w *= scale; /* as the forward's q */
        sm[w][0][c] = u;
        sm[w][1][c] = da4[c];
    }
    __syncwarp();
    const float lse_i = lse[(size_t)bh * T + i], delta_i = delta[(size_t)bh * T + i];
    float acc[E];
#pragma unroll
    for (int e = 0; e < E; e++) acc[e] = 0.f;
    for (int j0 = 0; j0 <= i; j0 += 32) {
        const int j = j0 + lane;
        float ds = 0.f;
        if (j <= i) {
            const float *kv = base + (size_t)j * ld + (size_t)h * D;
            const float s = dot_row<D>(sm[w][0], reinterpret_cast<const float4 *>(kv + d));
            const float dp = dot_row<D>(sm[w][1], reinterpret_cast<const float4 *>(kv + 2 * d));
            ds = expf(s - lse_i) * (dp - delta_i);
        }
        const int n = min(32, i - j0 + 1); /* warp-uniform */
        const float *k = base + (size_t)j0 * ld + d + (size_t)h * D;
        for (int jj = 0; jj < n; jj++) {
            const float dsj = __shfl_sync(0xffffffffu, ds, jj);
#pragma unroll
            for (int e = 0; e < E; e++)
                acc[e] = fmaf(dsj, k[(size_t)jj * ld + lane + 32 * e], acc[e]);
        }
    }
    float *o = dqkv + ((size_t)b * T + i) * ld + (size_t)h * D;
#pragma unroll
    for (int e = 0; e < E; e++) o[lane + 32 * e] = scale * acc[e];
}

/* dK, dV: one warp per (b, h, key row j), blocks of ROW_WARPS consecutive rows of one head,
 * longest first (small j: T - j query rows). The warp keeps k_j and v_j in shared memory; per
 * chunk of 32 query rows i >= j, lane i computes s = q_i scale . k_j (the forward's score),
 * P = exp(s - lse_i), dS = P (dA_i . v_j - delta_i); then P and dS are broadcast one by one:
 * dV_j += P_ij dA_i, dK_j += dS_ij q_i, each lane on its columns lane + 32 e. dK_j is scaled
 * at the end (dK_j = scale sum_i dS_ij q_i) and both go to dqkv's k and v columns. */
template <int D>
__global__ void __launch_bounds__(ROW_WARPS * 32)
attn_bwd_dkv(const float *__restrict__ qkv, const float *__restrict__ da,
             const float *__restrict__ lse, const float *__restrict__ delta,
             float *__restrict__ dqkv, int B, int T, int H, float scale) {
    constexpr int E = D / 32;
    __shared__ float4 sm[ROW_WARPS][2][D / 4]; /* k_j, v_j */
    const unsigned bh_count = (unsigned)B * (unsigned)H;
    const int tb = (int)(blockIdx.x / bh_count);
    const int w = (int)(threadIdx.x >> 5), j = tb * ROW_WARPS + w;
    if (j >= T) return; /* warp-uniform; only __syncwarp below */
    const int lane = threadIdx.x & 31;
    const int bh = (int)(blockIdx.x % bh_count), b = bh / H, h = bh % H;
    const size_t d = (size_t)H * D, ld = 3 * d;
    const float *base = qkv + (size_t)b * T * ld;
    const float *dab = da + (size_t)b * T * d;
    const float *kj = base + (size_t)j * ld + d + (size_t)h * D;
    for (int c = lane; c < D / 4; c += 32) {
        sm[w][0][c] = reinterpret_cast<const float4 *>(kj)[c];
        sm[w][1][c] = reinterpret_cast<const float4 *>(kj + d)[c]; /* v_j */
    }
    __syncwarp();
    const float *lse_bh = lse + (size_t)bh * T, *delta_bh = delta + (size_t)bh * T;
    float acc_k[E], acc_v[E];
#pragma unroll
    for (int e = 0; e < E; e++) acc_k[e] = acc_v[e] = 0.f;
    for (int i0 = j; i0 < T; i0 += 32) {
        const int i = i0 + lane;
        float p = 0.f, ds = 0.f;
        if (i < T) {
            const float4 *q4 =
                reinterpret_cast<const float4 *>(base + (size_t)i * ld + (size_t)h * D);
            const float4 *kv = sm[w][0];
            float s = 0.f; /* the forward's score: q pre-scaled, then the same fmaf chain */
#pragma unroll
            for (int c = 0; c < D / 4; c++) {
                const float4 u = q4[c], k = kv[c];
                s = fmaf(u.x * scale, k.x, s);
                s = fmaf(u.y * scale, k.y, s);
                s = fmaf(u.z * scale, k.z, s);
                s = fmaf(u.w * scale, k.w, s);
            }
            const float dp = dot_row<D>(
                sm[w][1], reinterpret_cast<const float4 *>(dab + (size_t)i * d + (size_t)h * D));
            p = expf(s - lse_bh[i]);
            ds = p * (dp - delta_bh[i]);
        }
        const int n = min(32, T - i0); /* warp-uniform */
        const float *q = base + (size_t)i0 * ld + (size_t)h * D;
        const float *dai = dab + (size_t)i0 * d + (size_t)h * D;
        for (int ii = 0; ii < n; ii++) {
            const float pi = __shfl_sync(0xffffffffu, p, ii);
            const float dsi = __shfl_sync(0xffffffffu, ds, ii);
#pragma unroll
            for (int e = 0; e < E; e++) {
                acc_v[e] = fmaf(pi, dai[(size_t)ii * d + lane + 32 * e], acc_v[e]);
                acc_k[e] = fmaf(dsi, q[(size_t)ii * ld + lane + 32 * e], acc_k[e]);
            }
        }
    }
    float *o = dqkv + ((size_t)b * T + j) * ld + (size_t)h * D;
#pragma unroll
    for (int e = 0; e < E; e++) {
        o[d + lane + 32 * e] = scale * acc_k[e];
        o[2 * d + lane + 32 * e] = acc_v[e];
    }
}

/* ---------------------------------- host ---------------------------------- */

/* Row-major C[M,K] = A[M,N] W[K,N]^T (dX = dZ W^T), fp32: the column-major C^T = W A^T. */
int gemm_nt(cublasHandle_t hd, const float *A, const float *W, float *C, long long M, int K,
            int N) {
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_CHECK(cublasGemmEx(hd, CUBLAS_OP_T, CUBLAS_OP_N, K, (int)M, N, &one, W, CUDA_R_32F, N,
                              A, CUDA_R_32F, N, &zero, C, CUDA_R_32F, K,
                              CUBLAS_COMPUTE_32F_PEDANTIC, CUBLAS_GEMM_DEFAULT));
    return 0;
}

/* Row-major C[K,N] = A[M,K]^T B[M,N] (dW = X^T dZ), fp32: the column-major C^T = B^T A. */
int gemm_tn(cublasHandle_t hd, const float *A, const float *B, float *C, long long M, int K,
            int N) {
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_CHECK(cublasGemmEx(hd, CUBLAS_OP_N, CUBLAS_OP_T, N, K, (int)M, &one, B, CUDA_R_32F, N,
                              A, CUDA_R_32F, K, &zero, C, CUDA_R_32F, N,
                              CUBLAS_COMPUTE_32F_PEDANTIC, CUBLAS_GEMM_DEFAULT));
    return 0;
}

/* LayerNorm's backward for rows of x (the forward's input of that LayerNorm) with gain g and
 * upstream dyln: out = res + dx, then the gain's and the bias's gradients. */
int ln_bwd(const oracle_state *st, const float *x, const float *g, const float *dyln,
           const float *res, float *out, float *dg, float *db, long long rows, int d,
           cudaStream_t stream) {
    const unsigned blocks = (unsigned)((rows + ROW_WARPS - 1) / ROW_WARPS);
    ln_bwd_rows<<<blocks, ROW_WARPS * 32, 0, stream>>>(x, g, dyln, res, out, st->d_mean,
                                                        st->d_rstd, rows, d);
    CUDA_CHECK(cudaGetLastError());
    const ln_gain_term<float> gain{dyln, x, st->d_mean, st->d_rstd, d};
    if (colsum(gain, rows, d, st->d_part, dg, stream) ||
        colsum(sum_of{dyln, (size_t)d}, rows, d, st->d_part, db, stream))
        return -1;
    return 0;
}

template <int D>
int attention_bwd_d(const oracle_state *st, const shape_t *s, const float *da, float *dqkv,
                    cudaStream_t stream) {
    const long long row_blocks = (s->T + ROW_WARPS - 1) / ROW_WARPS;
    const unsigned blocks = (unsigned)((long long)s->B * s->H * row_blocks); /* supports() */
    const float scale = 1.0f / sqrtf((float)D);                              /* the forward's */
    attn_delta<<<blocks, ROW_WARPS * 32, 0, stream>>>(st->d_a, da, st->d_delta, s->B, s->T, s->H,
                                                       D);
    CUDA_CHECK(cudaGetLastError());
    attn_bwd_dq<D><<<blocks, ROW_WARPS * 32, 0, stream>>>(st->d_qkv, da, st->d_lse, st->d_delta,
                                                          dqkv, s->B, s->T, s->H, scale);
    CUDA_CHECK(cudaGetLastError());
    attn_bwd_dkv<D><<<blocks, ROW_WARPS * 32, 0, stream>>>(st->d_qkv, da, st->d_lse, st->d_delta,
                                                           dqkv, s->B, s->T, s->H, scale);
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

/* dQKV [M,3d] from dA [M,d], the kept qkv, A and lse. */
int attention_bwd(const oracle_state *st, const shape_t *s, const float *da, float *dqkv,
                  cudaStream_t stream) {
    switch (s->dk) {
    case 32: return attention_bwd_d<32>(st, s, da, dqkv, stream);
    case 64: return attention_bwd_d<64>(st, s, da, dqkv, stream);
    case 128: return attention_bwd_d<128>(st, s, da, dqkv, stream);
    default: BENCH_FAIL("transformer/oracle_fp32: head dim %d not in {32, 64, 128}", s->dk);
    }
}

} // namespace

extern "C" {

/* Every gradient fp32 (dX too), overwritten; L = sum(dy . out), dy in the run dtype. */
int transformer_oracle_fp32_run_bwd(void *state, const io_t *io, const grad_io_t *g,
                                    cudaStream_t stream) {
    const oracle_state *st = (const oracle_state *)state;
    if (!st) BENCH_FAIL("transformer/oracle_fp32: run_bwd without setup");
    if (!st->train)
        BENCH_FAIL("transformer/oracle_fp32: run_bwd after a pass-fwd setup (nothing kept)");
    const shape_t *s = io->shape;
    const long long M = (long long)s->B * s->T;
    const int d = s->d;
    const float *const *f = (const float *const *)io->in; /* the fp32-stored inputs */
    float *const *gr = (float *const *)g->grad;
    const float *x = st->d_wide[WIDE_X], *Wqkv = st->d_wide[WIDE_WQKV];
    const float *Wo = st->d_wide[WIDE_WO], *W1 = st->d_wide[WIDE_W1], *W2 = st->d_wide[WIDE_W2];
    float *dY = st->d_dy, *dH = st->d_dh, *gd = st->d_gd;
    const size_t nh = (size_t)M * 4 * (size_t)d;

    /* cublasSetStream resets the workspace to cuBLAS's own pool, so set ours after it. */
    CUBLAS_CHECK(cublasSetStream(st->handle, stream));
    CUBLAS_CHECK(cublasSetWorkspace(st->handle, st->d_ws, CUBLAS_WS_BYTES));
    if (to_f32_copy(s->dtype, g->dy, dY, (size_t)M * d, stream)) return -1;

    /* FFN: Y' = Y + Hact W2 + b2, Hact = GELU(U), U = Yln W1 + b1, Yln = LN2(Y). */
    if (colsum(sum_of{dY, (size_t)d}, M, d, st->d_part, gr[TRANSFORMER_IN_B2], stream) ||
        gemm_tn(st->handle, st->d_h, dY, gr[TRANSFORMER_IN_W2], M, 4 * d, d) ||
        gemm_nt(st->handle, dY, W2, dH, M, 4 * d, d))
        return -1;
    gelu_erf_bwd<<<ew_blocks(nh), EW_THREADS, 0, stream>>>(st->d_u, dH, nh);
    CUDA_CHECK(cudaGetLastError());
    if (colsum(sum_of{dH, (size_t)(4 * d)}, M, 4 * d, st->d_part, gr[TRANSFORMER_IN_B1], stream) ||
        gemm_tn(st->handle, st->d_yln, dH, gr[TRANSFORMER_IN_W1], M, d, 4 * d) ||
        gemm_nt(st->handle, dH, W1, gd, M, d, 4 * d) || /* dYln */
        ln_bwd(st, st->d_y, f[TRANSFORMER_IN_LN2_G], gd, dY, dY, gr[TRANSFORMER_IN_LN2_G],
               gr[TRANSFORMER_IN_LN2_B], M, d, stream)) /* dY = dy + LN2's */
        return -1;

    /* Y = X + A Wo + bo. */
    if (colsum(sum_of{dY, (size_t)d}, M, d, st->d_part, gr[TRANSFORMER_IN_BO], stream) ||
        gemm_tn(st->handle, st->d_a, dY, gr[TRANSFORMER_IN_WO], M, d, d) ||
        gemm_nt(st->handle, dY, Wo, gd, M, d, d)) /* dA */
        return -1;

    /* A = attention(Q, K, V); dQKV in dH's first [M,3d]. */
    if (attention_bwd(st, s, gd, dH, stream)) return -1;

    /* QKV = X~ Wqkv + bqkv, X~ = LN1(X); dX = dY (the residual) + LN1's. */
    if (colsum(sum_of{dH, (size_t)(3 * d)}, M, 3 * d, st->d_part, gr[TRANSFORMER_IN_BQKV],
               stream) ||
        gemm_tn(st->handle, st->d_xln, dH, gr[TRANSFORMER_IN_WQKV], M, d, 3 * d) ||
        gemm_nt(st->handle, dH, Wqkv, gd, M, d, 3 * d) || /* dX~ */
        ln_bwd(st, x, f[TRANSFORMER_IN_LN1_G], gd, dY, gr[TRANSFORMER_IN_X],
               gr[TRANSFORMER_IN_LN1_G], gr[TRANSFORMER_IN_LN1_B], M, d, stream))
        return -1;
    return 0;
}

} // extern "C"
