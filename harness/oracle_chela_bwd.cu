/* oracle_chela_bwd.cu: chela/oracle_fp32's backward (run_bwd), the CHELA layer's gradients in
 * plain fp32 on the GPU: the yardstick a fast backward of the chela layer is checked against at
 * lengths the double CPU reference (ref_grad_chela.c) cannot reach.
 *
 * Like the forward (oracle_chela.cu) it is written to be obviously the definition: the chain
 * rule of ref_grad_chela.c stage by stage in the reverse order, fp32 throughout, no shortcut:
 *   - dy arrives in the run dtype and is widened to fp32 first; every gradient is written in
 *     fp32, dX included (the oracle's convention: an fp32 [B,T,d] buffer), overwritten;
 *   - GEMMs: the forward's cuBLAS handle (CUBLAS_COMPUTE_32F_PEDANTIC, no TF32), beta = 0:
 *     dW = X^T dZ and dX = dZ W^T for each of W2, W1, U_h, W_v, W_proj (U_h's dZ, the
 *     gradient of H^'s pre-activation, read in place in dproj's Hz columns, row stride np);
 *   - bias, gain, kappa / mu and short-conv-tap gradients are column sums over the N = B T
 *     rows in two passes (oracle_common.cuh colsum: at most COLSUM_CHUNKS row chunks summed
 *     one thread a column, then the chunks in order), each summand a small functor saying what
 *     it is: no float atomics, so run_bwd gives the same bits every call;
 *   - LayerNorm (both), RMSNorm: one warp per row; the row statistics are recomputed by the
 *     forward's operations in the forward's order (ln_rows in oracle_common.cuh, rms_gate in
 *     oracle_chela.cu), so each backward differentiates the normalisation the forward applied;
 *   - pre-activations: what the forward overwrote in place is kept when training (X~ W_v + b_v,
 *     L W1, Y, and O beside M), the rest recomputed with the forward's expressions (Hz + Hm + b_h
 *     from P and Hm, the short conv's pre from X~: oracle_chela.h short_conv_pre);
 *   - the long conv: dU = the same three-branch conv in reversed time (the forward's kernel:
 *     dU[s] = sum_{t>=s} k_long[t-s] dZ[t] + the short branches), dk_long by direct sums
 *     (conv_dk), dk3b and dkm its first taps (the branches see the same U);
 *   - the attention: dQ by a forward scan of the state S, dK and dV by backward scans of
 *     R_t = sum_{s>=t} q^_s^T dO_s, fp32 states in two levels as the forward's
 *     (oracle_chela_bwd_seq.cu).
 * Buffers (oracle_chela.h): the kept pre-activations and the scratch g_* are allocated by
 * setup when pass != fwd; run_bwd reads the forward's activations and never writes them, so it
 * can be called again and again after one run().
 *
 * Cost at the default point (d = 1024, z = 128, v = 2048, B T = 65536 tokens; predicted,
 * measured: not yet), against the forward's measured 305 ms:
 *   - long conv: dU is the forward's kernel again (2.2e12 FMAs, 274 ms under ncu), dK the same
 *     count in the same tiling: ~550 ms;
 *   - GEMMs: twice the forward's 12.7M MACs a token: 1.7e12 MACs, ~80 ms;
 *   - scans: dV is la_scan's shape (49 ms); the row scans do the same FMAs with broadcast
 *     loads and no shuffles but 2 (not 1.3) warps an SM, plus 2 x 4.3 GB of partial sums
 *     through HBM (~3 ms): ~100-150 ms for the three;
 *   - element-wise, row and column-sum passes: ~25 GB of HBM traffic, ~10 ms.
 * About 0.7-0.8 s in all: fine for a reference run once per point.  Memory: the training
 * buffers are N (2v + 3d) kept + N (4d + np + 2v + 2z + 2) scratch + N z v / 32 partials
 * floats: 7.4 GB on top of the forward's 4.2 GB at the default point. */
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
#include "oracle_chela.h"
#include "oracle_common.cuh" /* silu_f, sigmoid_f, ln_mean_rstd, colsum, convert_typed, ... */
#include "variant.h"

extern "C" {
DECLARE_BWD(chela_oracle_fp32);
}

using namespace chela_oracle;
using namespace oracle_colsum; /* colsum, sum_of, ln_gain_term, kappa_term (oracle_common.cuh) */
using namespace oracle_bwd;    /* silu_bwd, ln_bwd, gate_bwd, qk_bwd, gemm_dx, gemm_dw (ditto) */

namespace {

/* ---------------------------------- kernels ---------------------------------- */

/* Eq. 9 and the RMSNorm, one warp per row of v: M = O . s, s = sigmoid(Ga), O = o rstd with o
 * the attention's raw output (kept) and rstd recomputed as rms_gate computed it.
 *   dGa -> dproj[:, z+j] = dM O s (1 - s);   dO = dM s;
 *   d o = rstd (dO - O mean(dO . O))          -> over dM, in place.
 * The first pass reads dM for both dGa and the mean, the second overwrites it. */
__global__ void __launch_bounds__(ROW_WARPS * 32)
rms_gate_bwd(const float *__restrict__ o, const float *__restrict__ p, int np, int z, int v,
             float *__restrict__ dm, float *__restrict__ dproj, size_t rows) {
    const int lane = threadIdx.x & 31;
    const size_t row = (size_t)blockIdx.x * ROW_WARPS + (threadIdx.x >> 5);
    if (row >= rows) return; /* warp-uniform */
    const float *orow = o + row * v, *ga = p + row * np + z;
    float *drow = dm + row * v, *dga = dproj + row * np + z;
    float ms = 0.f;
    for (int i = lane; i < v; i += 32) ms = fmaf(orow[i], orow[i], ms);
    ms = warp_sum(ms) / (float)v;
    const float inv = 1.0f / sqrtf(ms + (float)CHELA_RMS_EPS);
    float s_dot = 0.f;
    for (int i = lane; i < v; i += 32) {
        const float on = orow[i] * inv, s = sigmoid_f(ga[i]), g = drow[i];
        s_dot = fmaf(g * s, on, s_dot);
        dga[i] = g * on * s * (1.0f - s);
    }
    const float mean = warp_sum(s_dot) / (float)v;
    for (int i = lane; i < v; i += 32) {
        const float on = orow[i] * inv, s = sigmoid_f(ga[i]);
        drow[i] = inv * (drow[i] * s - on * mean);
    }
}

/* U = SiLU(pre): du becomes dpre in place, pre recomputed from X~ (short_conv_pre). */
__global__ void short_conv_dpre(const float *__restrict__ xln, const float *__restrict__ k3,
                                float *__restrict__ du, int T, int d, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        const int c = (int)(i % (size_t)d);
        const int t = (int)((i / (size_t)d) % (size_t)T);
        du[i] *= silu_deriv_f(short_conv_pre(xln, k3, i, c, t, d));
    }
}

/* pre = k3 * X~ (3 causal taps): dX~[b,t,c] += sum_{j<3, t+j<T} k3[c,j] dpre[b,t+j,c]. */
__global__ void short_conv_dx(const float *__restrict__ k3, const float *__restrict__ dpre,
                              float *__restrict__ dxln, int T, int d, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        const int c = (int)(i % (size_t)d);
        const int t = (int)((i / (size_t)d) % (size_t)T);
        float acc = 0.f;
        for (int j = 0; j < 3 && t + j < T; j++)
            acc = fmaf(k3[3 * c + j], dpre[i + (size_t)j * d], acc);
        dxln[i] += acc;
    }
}

/* A column sum's summand, f(row, col), beside oracle_common.cuh's sum_of, ln_gain_term and
 * kappa_term. */
struct k3_term { /* column 3c + j of dk3: X~[b,t-j,c] dpre[b,t,c] for t >= j, else 0 */
    const float *xln, *dpre;
    int T, d;
    __device__ float operator()(size_t r, int col) const {
        const int c = col / 3, j = col % 3, t = (int)(r % (size_t)T);
        return t >= j ? xln[(r - j) * d + c] * dpre[r * d + c] : 0.f;
    }
};

/* ---------------------------------- host ---------------------------------- */

/* The backward, stage by stage from the output back (ref_grad_chela.c's order); x (stages
 * gate and LayerNorm1) and dy in the run dtype Tx. */
template <typename Tx>
int run_bwd_typed(const oracle_state *st, const io_t *io, const grad_io_t *gio,
                  cudaStream_t stream) {
    const shape_t *s = io->shape;
    const int T = s->T, d = s->d, z = s->z, v = s->v, np = n_proj(s);
    const size_t N = (size_t)s->B * T;
    const float *const *in = (const float *const *)io->in; /* the fp32 inputs */
    float *const *gr = (float *const *)gio->grad;
    const Tx *x = (const Tx *)io->in[CHELA_IN_X];
    cublasHandle_t h = st->handle;
    float *dY = st->g_dy, *dF = st->g_df, *dD = st->g_dd, *dP = st->g_dproj;

    /* cublasSetStream resets the workspace to cuBLAS's own pool, so set ours after it. */
    CUBLAS_CHECK(cublasSetStream(h, stream));
    CUBLAS_CHECK(cublasSetWorkspace(h, st->d_ws, CUBLAS_WS_BYTES));
    if (convert_typed<Tx>(gio->dy, dY, N * d, stream)) return -1;

    /* FFN: Y' = Y + F W2, F = SiLU(Pf), Pf = L W1, L = LayerNorm2(Y); dY = dY' + LN2's. */
    if (gemm_dw(h, st->d_f, 2 * d, dY, d, N, 2 * d, d, gr[CHELA_IN_W2]) ||
        gemm_dx(h, dY, d, N, 2 * d, d, st->d_w2, dF)) /* dF */
        return -1;
    silu_bwd<<<ew_blocks(N * 2 * d), EW_THREADS, 0, stream>>>(dF, st->d_fpre, N * 2 * d);
    CUDA_CHECK(cudaGetLastError()); /* dPf */
    if (gemm_dw(h, st->d_ln2, d, dF, 2 * d, N, d, 2 * d, gr[CHELA_IN_W1]) ||
        gemm_dx(h, dF, 2 * d, N, d, 2 * d, st->d_w1, dD) || /* dL */
        ln_bwd<float>(st->d_y, in[CHELA_IN_LN2_G], dD, dY, dY, gr[CHELA_IN_LN2_G],
                      gr[CHELA_IN_LN2_B], st->g_mean, st->g_rstd, st->g_cs, N, d, stream))
        return -1;

    /* The gated residual and H^: dX's residual part, the Go and Hz columns of dproj. */
    gate_bwd<Tx><<<ew_blocks(N * d), EW_THREADS, 0, stream>>>(
        st->d_p, np, z, v, st->d_hm, in[CHELA_IN_BH], x, dY, gr[CHELA_IN_X], dP, d, N * d);
    CUDA_CHECK(cudaGetLastError());
    /* A = Hz + M U_h + b_h: dA sits in dproj's Hz columns (row stride np). */
    const float *dA = dP + z + v + d;
    if (gemm_dw(h, st->d_m, v, dA, np, N, v, d, gr[CHELA_IN_UH]) ||
        colsum(sum_of{dA, (size_t)np}, N, d, st->g_cs, gr[CHELA_IN_BH], stream) ||
        gemm_dx(h, dA, np, N, v, d, st->d_uh, st->g_dm)) /* dM */
        return -1;

    /* Eq. 9 and RMSNorm: the Ga columns of dproj; dM becomes d o_raw. */
    rms_gate_bwd<<<row_blocks(N), ROW_WARPS * 32, 0, stream>>>(st->d_o, st->d_p, np, z, v,
                                                               st->g_dm, dP, N);
    CUDA_CHECK(cudaGetLastError());

    /* The causal linear attention (oracle_chela_bwd_seq.cu). */
    if (la_bwd(st, s, st->g_dm, st->g_dq, st->g_dk, st->g_dv, stream)) return -1;

    /* V = SiLU(Pv), Pv = X~ W_v + b_v: dX~'s V part into dD (dL is spent). */
    silu_bwd<<<ew_blocks(N * v), EW_THREADS, 0, stream>>>(st->g_dv, st->d_vpre, N * v);
    CUDA_CHECK(cudaGetLastError()); /* dPv */
    if (gemm_dw(h, st->d_xln, d, st->g_dv, v, N, d, v, gr[CHELA_IN_WV]) ||
        colsum(sum_of{st->g_dv, (size_t)v}, N, v, st->g_cs, gr[CHELA_IN_BV], stream) ||
        gemm_dx(h, st->g_dv, v, N, d, v, st->d_wv, dD))
        return -1;

    /* Q, K from Zq: the Zq columns of dproj, kappa and mu. */
    qk_bwd<<<ew_blocks(N * z), EW_THREADS, 0, stream>>>(st->d_p, np, in[CHELA_IN_KAPPA_Q],
                                                        in[CHELA_IN_KAPPA_K], st->g_dq,
                                                        st->g_dk, dP, z, N * z);
    CUDA_CHECK(cudaGetLastError());
    if (colsum(kappa_term{st->g_dq, st->d_p, z, np}, N, z, st->g_cs, gr[CHELA_IN_KAPPA_Q],
               stream) ||
        colsum(sum_of{st->g_dq, (size_t)z}, N, z, st->g_cs, gr[CHELA_IN_MU_Q], stream) ||
        colsum(kappa_term{st->g_dk, st->d_p, z, np}, N, z, st->g_cs, gr[CHELA_IN_KAPPA_K],
               stream) ||
        colsum(sum_of{st->g_dk, (size_t)z}, N, z, st->g_cs, gr[CHELA_IN_MU_K], stream))
        return -1;

    /* The fused projection P = Zc W_proj + b_proj: dZ into dF's first N d (dPf is spent). */
    if (gemm_dw(h, st->d_zc, d, dP, np, N, d, np, gr[CHELA_IN_WPROJ]) ||
        colsum(sum_of{dP, (size_t)np}, N, np, st->g_cs, gr[CHELA_IN_BPROJ], stream) ||
        gemm_dx(h, dP, np, N, d, np, st->d_wproj, dF))
        return -1;

    /* The long stage: dU (into dY, spent) by the conv in reversed time, the kernels' gradients
     * from U and dZ. */
    if (long_conv(dF, in[CHELA_IN_KLONG], in[CHELA_IN_K3B], in[CHELA_IN_KM], dY, s, true,
                  stream) ||
        conv_kernel_grads(st->d_u, dF, gr[CHELA_IN_KLONG], gr[CHELA_IN_K3B], gr[CHELA_IN_KM], s,
                          stream))
        return -1;

    /* U = SiLU(k3 * X~): dpre (over dU), dk3, and the conv's part of dX~ added to dD. */
    short_conv_dpre<<<ew_blocks(N * d), EW_THREADS, 0, stream>>>(st->d_xln, in[CHELA_IN_K3], dY,
                                                                 T, d, N * d);
    CUDA_CHECK(cudaGetLastError());
    if (colsum(k3_term{st->d_xln, dY, T, d}, N, 3 * d, st->g_cs, gr[CHELA_IN_K3], stream))
        return -1;
    short_conv_dx<<<ew_blocks(N * d), EW_THREADS, 0, stream>>>(in[CHELA_IN_K3], dY, dD, T, d,
                                                               N * d);
    CUDA_CHECK(cudaGetLastError());

    /* X~ = LayerNorm1(X): dX = the residual's part (already in place) + LN1's. */
    return ln_bwd<Tx>(x, in[CHELA_IN_LN1_G], dD, gr[CHELA_IN_X], gr[CHELA_IN_X],
                      gr[CHELA_IN_LN1_G], gr[CHELA_IN_LN1_B], st->g_mean, st->g_rstd, st->g_cs,
                      N, d, stream);
}

} // namespace

extern "C" {

/* Every gradient fp32 (dX too), overwritten; L = sum(dy . out), dy in the run dtype. */
int chela_oracle_fp32_run_bwd(void *state, const io_t *io, const grad_io_t *g,
                              cudaStream_t stream) {
    const oracle_state *st = (const oracle_state *)state;
    if (!st) BENCH_FAIL("chela/oracle_fp32: run_bwd without setup");
    if (!st->train)
        BENCH_FAIL("chela/oracle_fp32: run_bwd after a pass-fwd setup (nothing kept)");
    if (!g || !g->dy) BENCH_FAIL("chela/oracle_fp32: run_bwd without dy");
    for (int i = 0; i < CHELA_N_IN; i++)
        if (!g->grad[i]) BENCH_FAIL("chela/oracle_fp32: run_bwd without gradient buffer %d", i);
    switch (io->shape->dtype) {
    case DTYPE_F32: return run_bwd_typed<float>(st, io, g, stream);
    case DTYPE_F16: return run_bwd_typed<__half>(st, io, g, stream);
    case DTYPE_BF16: return run_bwd_typed<__nv_bfloat16>(st, io, g, stream);
    }
    BENCH_FAIL("chela/oracle_fp32: unknown dtype %d", (int)io->shape->dtype);
}

} // extern "C"
