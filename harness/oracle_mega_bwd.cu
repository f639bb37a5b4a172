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
 *   - bias, gain, kappa / mu gradients are column sums over the N = B T rows in two passes
 *     (oracle_common.cuh colsum: at most COLSUM_CHUNKS row chunks summed one thread a column,
 *     then the chunks in order), each
 *     summand a small functor saying what it is: no float atomics, so run_bwd gives the same
 *     bits every call;
 *   - both LayerNorms: one warp per row, the row statistics recomputed by the forward's
 *     operations in the forward's order (ln_rows in oracle_common.cuh);
 *   - the stages MEGA shares with chela (the FFN, LayerNorms, the update gate and H^, Q and K
 *     from the shared Zq, the GEMMs' backwards) are oracle_common.cuh's oracle_bwd, the same
 *     code chela's backward runs;
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
#include "oracle_common.cuh" /* oracle_bwd, oracle_colsum, convert_typed, CUBLAS_WS_BYTES */
#include "oracle_mega.h"
#include "variant.h"

extern "C" {
DECLARE_BWD(mega_oracle_fp32);
}

using namespace mega_oracle;
using namespace oracle_colsum; /* colsum, sum_of, ln_gain_term, kappa_term (oracle_common.cuh) */
using namespace oracle_bwd;    /* silu_bwd, ln_bwd, gate_bwd, qk_bwd, gemm_dx, gemm_dw (ditto) */

namespace {

/* ---------------------------------- kernels ---------------------------------- */

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

/* ---------------------------------- host ---------------------------------- */

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
    if (convert_typed<Tx>(gio->dy, dY, N * d, stream)) return -1;

    /* FFN: Y' = Y + F W2, F = SiLU(Pf), Pf = L W1, L = LayerNorm2(Y); dY = dY' + LN2's. */
    if (gemm_dw(h, st->d_f, 2 * d, dY, d, N, 2 * d, d, gr[MEGA_IN_W2]) ||
        gemm_dx(h, dY, d, N, 2 * d, d, st->d_w2, dF)) /* dF */
        return -1;
    silu_bwd<<<ew_blocks(N * 2 * d), EW_THREADS, 0, stream>>>(dF, st->d_fpre, N * 2 * d);
    CUDA_CHECK(cudaGetLastError()); /* dPf */
    if (gemm_dw(h, st->d_ln2, d, dF, 2 * d, N, d, 2 * d, gr[MEGA_IN_W1]) ||
        gemm_dx(h, dF, 2 * d, N, d, 2 * d, st->d_w1, dD) || /* dL */
        ln_bwd<float>(st->d_y, in[MEGA_IN_LN2_G], dD, dY, dY, gr[MEGA_IN_LN2_G],
                      gr[MEGA_IN_LN2_B], st->g_mean, st->g_rstd, st->g_cs, N, d, stream))
        return -1;

    /* The update gate and H^: dX's residual part, the F and Hz columns of dproj. */
    gate_bwd<Tx><<<ew_blocks(N * d), EW_THREADS, 0, stream>>>(
        st->d_p, np, z, v, st->d_hm, in[MEGA_IN_BH], x, dY, gr[MEGA_IN_X], dP, d, N * d);
    CUDA_CHECK(cudaGetLastError());
    /* A = Hz + M U_h + b_h: dA sits in dproj's Hz columns (row stride np). */
    const float *dA = dP + z + v + d;
    if (gemm_dw(h, st->d_m, v, dA, np, N, v, d, gr[MEGA_IN_UH]) ||
        colsum(sum_of{dA, (size_t)np}, N, d, st->g_cs, gr[MEGA_IN_BH], stream) ||
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
        colsum(sum_of{st->g_dv, (size_t)v}, N, v, st->g_cs, gr[MEGA_IN_BV], stream) ||
        gemm_dx(h, st->g_dv, v, N, d, v, st->d_wv, dD))
        return -1;

    /* Q, K from Zq: the Zq columns of dproj, kappa and mu. */
    qk_bwd<<<ew_blocks(N * z), EW_THREADS, 0, stream>>>(st->d_p, np, in[MEGA_IN_KAPPA_Q],
                                                        in[MEGA_IN_KAPPA_K], st->g_dq,
                                                        st->g_dk, dP, z, N * z);
    CUDA_CHECK(cudaGetLastError());
    if (colsum(kappa_term{st->g_dq, st->d_p, z, np}, N, z, st->g_cs, gr[MEGA_IN_KAPPA_Q],
               stream) ||
        colsum(sum_of{st->g_dq, (size_t)z}, N, z, st->g_cs, gr[MEGA_IN_MU_Q], stream) ||
        colsum(kappa_term{st->g_dk, st->d_p, z, np}, N, z, st->g_cs, gr[MEGA_IN_KAPPA_K],
               stream) ||
        colsum(sum_of{st->g_dk, (size_t)z}, N, z, st->g_cs, gr[MEGA_IN_MU_K], stream))
        return -1;

    /* The fused projection P = X' W_proj + b_proj: dX' into dF's first N d (dPf is spent). */
    if (gemm_dw(h, st->d_xe, d, dP, np, N, d, np, gr[MEGA_IN_WPROJ]) ||
        colsum(sum_of{dP, (size_t)np}, N, np, st->g_cs, gr[MEGA_IN_BPROJ], stream) ||
        gemm_dx(h, dP, np, N, d, np, st->d_wproj, dF))
        return -1;

    /* X' = EMA(X~): its part of dX~ added to dD, the EMA's parameters' gradients. */
    if (ema_bwd(st, s, in, dF, dD, gr, stream)) return -1;

    /* X~ = LayerNorm1(X): dX = the residual's part (already in place) + LN1's. */
    return ln_bwd<Tx>(x, in[MEGA_IN_LN1_G], dD, gr[MEGA_IN_X], gr[MEGA_IN_X],
                      gr[MEGA_IN_LN1_G], gr[MEGA_IN_LN1_B], st->g_mean, st->g_rstd, st->g_cs, N,
                      d, stream);
}

} // namespace

extern "C" {

/* Every gradient fp32 (dX too), overwritten; L = sum(dy . out), dy in the run dtype. */
int mega_oracle_fp32_run_bwd(void *state, const io_t *io, const grad_io_t *g,
                             cudaStream_t stream) {
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
