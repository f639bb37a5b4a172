/* long_conv_toeplitz: the causal depthwise long convolution as a lower-triangular Toeplitz
 * matrix times the input, on tensor cores.  long_conv_fast runs it for bf16 / fp16 at short T.
 *
 *   Y_c = K_c U_c,   K_c[t][s] = k[c, t-s] (0 for s > t),   U_c [T x B] = u[b,c,:] as columns
 *
 * Why a T x T product at all: per output the direct sum costs T MACs, the FFT route ~10 log2(2T)
 * fp32 flops on CUDA cores plus a shared-memory pass per radix stage.  At T = 1k that is 1024
 * MACs on tensor cores (~660 TFLOP/s with mma.sync on an H100) against ~110 flops on CUDA cores
 * (~25 effective TFLOP/s measured for long_conv_fast v3): the product is ~2.5x cheaper in time,
 * and its cost grows as T, so it loses again somewhere past 2k (the crossover is measured).
 *
 * ---- the algorithm ---------------------------------------------------------------------------
 * Two kernels share the fragment algebra below.  v4 (lcr_kernel, T <= 2048): a block holds its
 * channel's u for NT batch rows whole in shared memory (NT x T <= 32768 tokens, 64 KB), staged
 * once, and each warp computes bands of WM output tokens from it with no block barrier after
 * the staging; bands go to warps boustrophedon (0..7, then 7..0) so the causal triangle's cost
 * evens out; each warp stages its band's y through its own shared tile.  v3 (lct_kernel, longer
 * T, only when forced past the default range):
 * Block = one channel c, NT batch rows (the GEMM's N; NT in {16, 32, 64}) and BM output tokens
 * (M); 4 warps, warp w owns WM = 2048 / NT consecutive tokens, so every warp holds 64 fp32
 * accumulators whatever NT is.  The K loop walks u in chunks of 64 tokens up to the block's last
 * token (causal), double-buffered through shared memory as [NT][64 + 8] (row pitch + 16 B:
 * conflict-free ldmatrix); B fragments come from ldmatrix, A fragments are built from the taps:
 * - a 16x16 tile of K at (tm, s) depends only on dlt = tm - s; a lane's register pairs are
 *   (k[m], k[m-1]) with m = dlt + g - 2q + {0, +8, -8} (g = lane/4, q = lane%4), and the fourth
 *   register equals the first, so one A fragment is three 32-bit shared loads;
 * - the taps of the channel sit in shared memory reversed, E[i] = k[base - i] (0 outside
 *   0 <= j < T: that IS the causal mask, no compare in the loop), twice: E, and O[i] = E[i+1].
 *   A pair starts at an even element of E when m is even and of O when m is odd, so every load
 *   is an aligned 32-bit word; O sits TW/2 = 16 (mod 32) words after E, so the two halves of a
 *   warp (even / odd g) hit disjoint banks.
 * - k-steps above a warp's last token are skipped, and m-tiles above the diagonal within a step.
 * Prologue (short_long_conv): u = SiLU(pre3 * x) is a pass of its own into an fp16 scratch
 * [B,d,T] that the product then reads (v3; see there why not inside the product).  Without it
 * the product reads x and converts bf16 to fp16 while staging.
 * Epilogue: accumulators * (1 / channel scale) -> run dtype -> shared memory [NT][BM + 8]
 * (transposed, conflict-free) -> 16-byte rows of y.
 *
 * Numerics: both MMA operands are fp16, whatever the run dtype.  The taps are rounded to fp16
 * after a per-channel power-of-two scale that puts max|k_c| in [2^14, 2^15) (small taps would
 * otherwise become subnormal; the scale is exact to undo); u is x (fp16 runs: as is; bf16 runs:
 * converted, exact for 2^-14 <= |x| < 65520 since bf16's 8-bit significand fits fp16's 11) or
 * SiLU(...) rounded to fp16; the sum is fp32, the output rounded once to the run dtype.
 * Limit: a bf16 u with |u| >= 65520 has no fp16 value: it becomes inf and its outputs inf/NaN
 * (loud, never a plausible wrong number); --set lcf_toeplitz_max_t=0 keeps the FFT path, which
 * has no such limit.  CHELA's u = SiLU(short conv of LayerNorm(x)) is bounded far below that.
 *
 * ---- version index ---------------------------------------------------------------------------
 * v1.  Operands in the run dtype (bf16 taps for bf16 runs), warp tile 32 tokens x 64 batch rows,
 *   A fragments loaded per step with the causal tests inside the step loop, 4 blocks per SM.
 *   Predicted, H100, d = 1024, 65536 tokens, bf16: executed MMA flops 2 x 65536 x 1024 x T / 2
 *   x ~1.12 (diagonal tiles) = 77 GFLOP at T = 1k, 154 at 2k; at ~400-500 TFLOP/s -> 0.15-0.20
 *   ms at 1k, 0.30-0.40 at 2k (the FFT path, long_conv_fast v3: 0.51, 0.56).
 *   Measured (H100, bf16): 0.342 ms at 1k, 0.545 at 2k; forced further, 1.31 ms at 4k, 4.7 at 8k
 *   (B = 8 fills half of a 16-row batch tile), 27 at 16k.  max_rel_err 1.0e-2 at 1k, 8.6e-3 at
 *   2k (FFT path 3.9e-3), and 1.65e-2 > 1.56e-2 on a GPU test shape (T = 1000, B = 2, d = 5):
 *   the bf16 rounding of the taps (2^-9, the same for every output) adds to the output's own.
 *   Nsight Compute at 1k: issue slots 46 %, tensor (shared) pipe 31.5 %, L1/shared 69 %, 16
 *   warps per SM (register-limited), stalls mostly fixed-latency dependencies (3.2 of 8.1 cycles
 *   between issues): the step loop's tests and A-fragment loads sit between the MMAs.
 * v2.  fp16 operands for both dtypes (above); the chunks wholly below a block's first
 *   token (all but the last two in a full tile) run a branch-free step loop whose 2 MT + 7 tap
 *   words are loaded once per chunk; warp tile 64 tokens x 32 batch rows (2 x 2 warps at NT = 64),
 *   so each B fragment from ldmatrix feeds 4 m-tiles instead of 2 (half the shared-memory bytes
 *   per MMA); 3 blocks per SM (up to 168 registers; 16 bytes spill at NT = 64 with the prologue).
 *   Predicted: error back to the output's rounding (~4e-3 bf16); 0.20-0.25 ms at 1k, 0.35-0.45
 *   at 2k.  Measured (H100, bf16): long_conv 0.317 ms at 1k, 0.473 at 2k (error 4.2e-3);
 *   forced further 0.86 ms at 4k (the FFT path: 0.73), so the default range stays T <= 2048.
 *   Nsight Compute at 1k: issue slots 45 %, tensor pipe 34 %, L1/shared 60 %, 11.7 warps/SM,
 *   IPC 1.88 of which only ~12 % are MMAs: the staging of u costs more issue slots than the
 *   MMAs it feeds (each 64-token chunk is staged by every token tile after it, 4.5x at 1k, and
 *   the bf16 -> fp16 conversion took ~7 instructions a pair).  With the prologue
 *   (short_long_conv/reparam) far worse: 1.16 ms at 1k (FFT path 0.62), the SiLU's exp and
 *   divide done 4.5 times per token.
 * v3.  The prologue moved into its own pass (u once per token, fp16 scratch, 0.27 GB
 *   of extra traffic ~ 0.09 ms); the bf16 -> fp16 staging conversion is a shift, a mask and one
 *   cvt.rn.f16x2.f32 per pair.  Predicted: long_conv 0.27-0.29 ms at 1k, 0.43 at 2k;
 *   short_long_conv/reparam ~0.40 ms at 1k (FFT path 0.62).  Measured: long_conv 0.314 ms at 1k,
 *   0.468 at 2k (the conversion was not what held it); short_long_conv/reparam 0.402 / 0.552 ms
 *   (FFT path 0.62 / 0.68; v2 1.16 / 1.29).  Nsight Compute at 1k as v2: tensor pipe 34.5 %,
 *   IPC 1.84.  Counting the PTX: per 64-token chunk a warp issues 64 MMAs and ~170 other
 *   instructions (staging with bounds logic, fragment loads, barrier), plus per block the tap
 *   copy and the epilogue: the staging is repeated by every token tile (4.5x at 1k).
 *   A variant with 8 warps (BM = 256, half the staging per MMA, 2 blocks at 128 registers with
 *   56 bytes of spills) measured 0.326 / 0.480 ms: no better, reverted.
 * v4 (lcr_kernel).  u resident (above): staged once per block instead of once per token tile,
 *   the taps copied once per block, no barrier in the product loop.  256 threads, 2 blocks per
 *   SM (127 registers; NT = 16 spills 28 bytes), NT = 32 at 1k and 16 at 2k.
 *   Predicted: ~2.5 instead of ~5 issue slots per MMA: 0.18 ms at 1k, 0.28 at 2k.
 *   Measured (H100, bf16, same run as v3 beside it, lct_version=3): 0.221 ms at 1k
 *   (v3 0.314), 0.396 at 2k (v3 0.467); short_long_conv/reparam 0.313 / 0.486 ms.  Nsight
 *   Compute at 1k: tensor pipe 50 % (from 34.5), issue slots 46 %, 15.4 warps per SM.  The 2k
 *   point gains less: NT = 16 halves the batch rows each B fragment feeds and its 23 hoisted
 *   tap words spill.  --set lct_version=3 selects v3 at every T.
 *   Tried: NT x T up to 65536 tokens (one 177 KB block an SM, so 2k gets NT = 32 without the
 *   spill): 0.310 ms at 1k and 0.438 at 2k, worse than two blocks an SM; not kept.
 * v5 (kernels/long_conv/toeplitz_wgmma.cu, sm_90a).  wgmma m64n64k16: a block of 8 batch rows,
 *   one wgmma a lag for 8 m-tiles.  Measured 0.202 ms at 1k, 0.345 at 2k, 0.633 at 4k (a tie
 *   with the FFT path, so the default range there is 4096 for B >= 8); session 10's schedule
 *   (4 wgmmas a commit group, 2-3 fragment sets, 2 warpgroups a block at 4k, leaner loops):
 *   0.190 / 0.261 / 0.418 ms.  The default where it runs; --set lct_version=4 (or 3) keeps this
 *   file's kernels.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <type_traits>

#include "bench_check.h"
#include "dtype_device.cuh"
#include "long_conv/toeplitz.h"
#include "long_conv/toeplitz_io.cuh"
#include "long_conv/toeplitz_wgmma.h"
#include "common/mma_sync.cuh"

#define LCT_THREADS 128
#define LCT_WARPS 4
/* Blocks per SM the register budget is set for: 3 (168 registers).  v2's 15 hoisted tap words
 * and 64 accumulators spilled at 4 blocks (128 registers). */
#define LCT_MINB 3
#define LCT_KC 64                 /* tokens of u per pipeline stage                      */
#define LCT_UPITCH (LCT_KC + 8)   /* shared row pitch of a stage, elements               */
#define LCT_ACC 2048              /* WM x NT: 64 fp32 accumulators per thread            */

struct long_conv_toeplitz {
    lct_plan_t plan;        /* the kernel, its batch tile, the tap-row geometry (plan.h)   */
    uint16_t *d_rows;       /* [d][E | O], taps * scale as fp16; TW = 32 (mod 64) each     */
    float *d_inv_scale;     /* [d], 1 / scale (a power of two)                             */
    uint16_t *d_u16;        /* [B,d,T] fp16: u = SiLU(pre3 * x) when run with the prologue  */
};

namespace {

__device__ __forceinline__ float lct_silu(float v) { return v / (1.0f + __expf(-v)); }

/* The short-conv + SiLU prologue as its own pass, once per token: u = SiLU(p0 x_t + p1 x_{t-1}
 * + p2 x_{t-2}) as fp16, [B,d,T].  (v2 did it inside the product kernel, where each u chunk is
 * staged by every token tile after it: 4.5x at T = 1k, and the SiLU's exp and divide cost more
 * issue slots than the MMAs; measured 1.16 ms for short_long_conv/reparam at 1k.)  One thread
 * per 8 tokens. */
template <typename Tx>
__global__ void __launch_bounds__(256)
lct_prologue_kernel(const Tx *__restrict__ x, const float *__restrict__ pre3,
                    uint16_t *__restrict__ u, int d, int T, long long rows, int vec) {
    const int groups = (T + 7) / 8;
    const long long gi = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (gi >= rows * groups) return;
    const long long row = gi / groups;
    const int s = (int)(gi % groups) * 8, c = (int)(row % d);
    const Tx *xr = x + row * T;
    const float p0 = pre3[3 * c], p1 = pre3[3 * c + 1], p2 = pre3[3 * c + 2];
    float f[10];
    f[0] = s >= 2 ? to_f32(xr[s - 2]) : 0.0f;
    f[1] = s >= 1 ? to_f32(xr[s - 1]) : 0.0f;
    if (vec && s + 8 <= T) {
        load8(xr + s, f + 2);
    } else {
#pragma unroll
        for (int e = 0; e < 8; e++) f[2 + e] = s + e < T ? to_f32(xr[s + e]) : 0.0f;
    }
    float o[8];
#pragma unroll
    for (int e = 0; e < 8; e++) o[e] = lct_silu(fmaf(p0, f[e + 2], fmaf(p1, f[e + 1], p2 * f[e])));
    __half *ur = reinterpret_cast<__half *>(u) + row * T;
    if (vec && s + 8 <= T) {
        store8(ur + s, o);
    } else {
        for (int e = 0; e < 8 && s + e < T; e++) ur[s + e] = __float2half_rn(o[e]);
    }
}

/* ---- the product steps both kernels share ------------------------------------------------------
 * acc[MT][NB] (a warp's WM = 16 MT tokens from tw, 8 NB batch rows) += K_c(tw.., s0..s0+63) U.
 * ub points at this lane's ldmatrix row and column of the chunk's first token, pitch in elements. */

template <int MT, int NB> __device__ __forceinline__ void lct_zero(float (&acc)[MT][NB][4]) {
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int nb = 0; nb < NB; nb++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[mt][nb][e] = 0.0f;
}

/* A chunk wholly below the warp's first token: the tile (mt, ks) reads words w0 = wc - 8 mt +
 * 8 ks and w0 -/+ 4, so the chunk needs the 2 MT + 7 words wc + 4 j, j = 1 - 2 MT .. 7, loaded
 * once; no tests in the loop. */
template <int MT, int NB>
__device__ __forceinline__ void lct_chunk_dense(float (&acc)[MT][NB][4], const uint32_t *tapw,
                                                int wc, const uint16_t *ub, int pitch) {
    constexpr int NAW = 2 * MT + 7;
    uint32_t aw[NAW];
#pragma unroll
    for (int j = 0; j < NAW; j++) aw[j] = tapw[wc + 4 * (j - (2 * MT - 1))];
#pragma unroll
    for (int ks = 0; ks < LCT_KC / 16; ks++) {
        uint32_t bf[NB / 2][4];
#pragma unroll
        for (int np = 0; np < NB / 2; np++) ldsm_x4(bf[np], smem_u32(ub + 16 * np * pitch + ks * 16));
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
            const int u = 2 * ks - 2 * mt + 2 * MT - 1;
            const uint32_t a[4] = {aw[u], aw[u - 1], aw[u + 1], aw[u]};
#pragma unroll
            for (int nb = 0; nb < NB; nb++)
                mma_16816<false>(acc[mt][nb], a, bf[nb / 2][(nb & 1) * 2],
                                 bf[nb / 2][(nb & 1) * 2 + 1]);
        }
    }
}

/* A chunk that reaches the diagonal (or a band past T): each 16 x 16 tile tested. */
template <int MT, int NB>
__device__ __forceinline__ void lct_chunk_diag(float (&acc)[MT][NB][4], const uint32_t *tapw,
                                               int base, int lane_off, const uint16_t *ub,
                                               int pitch, int s0, int tw, int T) {
#pragma unroll
    for (int ks = 0; ks < LCT_KC / 16; ks++) {
        const int s = s0 + ks * 16;
        if (s > tw + 16 * MT - 1) break; /* every token of this warp is before s */
        uint32_t bf[NB / 2][4];
#pragma unroll
        for (int np = 0; np < NB / 2; np++) ldsm_x4(bf[np], smem_u32(ub + 16 * np * pitch + ks * 16));
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
            const int tm = tw + 16 * mt;
            if (tm >= T || s > tm + 15) continue; /* tile past T, or above the diagonal */
            const int w0 = ((base - (tm - s)) >> 1) + lane_off;
            /* m = dlt + g - 2q; m + 8 (row g + 8); m - 8 (column 2q + 8); m again */
            const uint32_t a[4] = {tapw[w0], tapw[w0 - 4], tapw[w0 + 4], tapw[w0]};
#pragma unroll
            for (int nb = 0; nb < NB; nb++)
                mma_16816<false>(acc[mt][nb], a, bf[nb / 2][(nb & 1) * 2],
                                 bf[nb / 2][(nb & 1) * 2 + 1]);
        }
    }
}

template <int NT, typename Tin, typename Tout>
__global__ void __launch_bounds__(LCT_THREADS, LCT_MINB) lct_kernel(const lct_params prm) {
    constexpr int WN = NT < 32 ? NT : 32;        /* batch rows per warp          */
    constexpr int WARPS_N = NT / WN;
    constexpr int WARPS_M = LCT_WARPS / WARPS_N;
    constexpr int WM = LCT_ACC / WN;             /* tokens per warp              */
    constexpr int MT = WM / 16;                  /* m16 tiles per warp           */
    constexpr int BM = WARPS_M * WM;             /* tokens per block             */
    constexpr int NB = WN / 8;                   /* n8 tiles per warp            */
    constexpr int OPITCH = BM + 8;
    constexpr int NGROUPS = NT * LCT_KC / 8;              /* 8-token groups a stage        */
    constexpr int GPT = (NGROUPS + LCT_THREADS - 1) / LCT_THREADS; /* per thread         */
    static_assert(NGROUPS % LCT_THREADS == 0 || GPT == 1, "stage load split");
    static_assert(WARPS_M * WARPS_N == LCT_WARPS && NB % 2 == 0, "warp grid");
    static_assert(BM == LCT_WARPS * (LCT_ACC / NT), "the host's BM (lct_launch, lct_smem_bytes)");

    extern __shared__ __align__(16) unsigned char lct_smem[];
    uint16_t *taps = reinterpret_cast<uint16_t *>(lct_smem); /* [E | O], 2 TW elements */
    uint16_t *stage = taps + 2 * prm.TW; /* [2][NT][UPITCH], then [NT][OPITCH] for y */

    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, q = lane % 4;
    const int wt = warp / WARPS_N, wb = warp % WARPS_N;
    int bid = blockIdx.x;
    const int tt = prm.ntt - 1 - bid % prm.ntt; /* the longest (latest) tiles start first */
    bid /= prm.ntt;
    const int bt = bid % prm.nbt, c = bid / prm.nbt;
    const int T = prm.T, t0 = tt * BM, b0 = bt * NT;

    /* Taps: only lags m <= t0 + BM + 16 are ever read, i.e. i >= base - t0 - BM - 16. */
    {
        int ilo = prm.base - t0 - BM - 24;
        ilo = ilo < 0 ? 0 : ilo / 8 * 8;
        const uint4 *src = reinterpret_cast<const uint4 *>(prm.rows + (size_t)c * 2 * prm.TW);
        uint4 *dst = reinterpret_cast<uint4 *>(taps);
        const int n8 = prm.TW / 8, lo8 = ilo / 8;
        for (int i = lo8 + tid; i < n8; i += LCT_THREADS) {
            dst[i] = src[i];
            dst[n8 + i] = src[n8 + i];
        }
    }

    const int t_end = t0 + BM < T ? t0 + BM : T;
    const int nch = (t_end + LCT_KC - 1) / LCT_KC;
    /* chunks wholly below the block's first token, in a full tile, need no per-step test */
    const int nfast = t0 + BM <= T ? (t0 + 1) / LCT_KC : 0;
    uint4 pf[GPT];
    auto load_chunk = [&](int kc) {
#pragma unroll
        for (int i = 0; i < GPT; i++) {
            const int gi = tid + LCT_THREADS * i;
            if (NGROUPS < LCT_THREADS && gi >= NGROUPS) break;
            pf[i] = lct_load_group<Tin>(prm, c, b0 + gi / 8, kc * LCT_KC + (gi % 8) * 8);
        }
    };
    auto store_chunk = [&](int kc) {
        uint16_t *buf = stage + (kc & 1) * NT * LCT_UPITCH;
#pragma unroll
        for (int i = 0; i < GPT; i++) {
            const int gi = tid + LCT_THREADS * i;
            if (NGROUPS < LCT_THREADS && gi >= NGROUPS) break;
            *reinterpret_cast<uint4 *>(buf + (gi / 8) * LCT_UPITCH + (gi % 8) * 8) =
                lct_operand<Tin>(pf[i]);
        }
    };

    float acc[MT][NB][4];
    lct_zero(acc);

    const int tw = t0 + wt * WM;
    /* word index of this lane's pair (k[m], k[m-1]) is (base - dlt - off) / 2 + lane_off */
    const int lane_off = (g & 1) ? prm.TW / 2 + (2 * q - g - 1) / 2 : (2 * q - g) / 2;
    const uint32_t *tapw = reinterpret_cast<const uint32_t *>(taps);
    /* ldmatrix row of this lane within a 16-row (n) x 16-token (k) step */
    const int ld_row = wb * WN + (lane / 16) * 8 + lane % 8, ld_col = ((lane / 8) & 1) * 8;

    load_chunk(0);
    store_chunk(0);
    __syncthreads();
    for (int kc = 0; kc < nch; kc++) {
        if (kc + 1 < nch) load_chunk(kc + 1);
        const uint16_t *ub = stage + (kc & 1) * NT * LCT_UPITCH + ld_row * LCT_UPITCH + ld_col;
        const int s0 = kc * LCT_KC;
        if (kc < nfast)
            lct_chunk_dense<MT, NB>(acc, tapw, ((prm.base - (tw - s0)) >> 1) + lane_off, ub,
                                    LCT_UPITCH);
        else
            lct_chunk_diag<MT, NB>(acc, tapw, prm.base, lane_off, ub, LCT_UPITCH, s0, tw, T);
        if (kc + 1 < nch) store_chunk(kc + 1);
        __syncthreads();
    }

    /* Epilogue: undo the tap scale, round, transpose through shared memory, 16-byte rows. */
    uint16_t *os = stage;
    lct_acc_to_smem<MT, NB, Tout>(acc, prm.inv_scale[c], os, OPITCH, wb * WN, wt * WM, g, q);
    __syncthreads();
    for (int gi = tid; gi < NT * BM / 8; gi += LCT_THREADS) {
        const int row = gi / (BM / 8), t = t0 + (gi % (BM / 8)) * 8, b = b0 + row;
        if (b >= prm.B || t >= T) continue;
        lct_store8<Tout>(prm, b, c, t,
                         *reinterpret_cast<const uint4 *>(os + row * OPITCH + (gi % (BM / 8)) * 8));
    }
}

/* ---- v4: the block's u resident in shared memory ---------------------------------------------
 * Block = (channel, NT batch rows) with NT x T <= LCR_TOKENS: u is staged once (fp16) and every
 * output band of WM tokens is computed from it, warps independent after one barrier. */
#define LCR_THREADS 256
#define LCR_WARPS 8
/* LCR_TOKENS (NT x T a block: 64 KB of fp16 u, two blocks an SM): long_conv/plan.h */

template <int NT> struct lcr_tile {
    static constexpr int WN = NT < 32 ? NT : 32;        /* batch rows per warp        */
    static constexpr int WARPS_N = NT / WN;
    static constexpr int WARPS_M = LCR_WARPS / WARPS_N;
    static constexpr int WM = LCT_ACC / WN;             /* tokens per band (warp)     */
    static constexpr int SPITCH = WM + 8;               /* per-warp y staging pitch   */
};

template <int NT, typename Tin, typename Tout>
__global__ void __launch_bounds__(LCR_THREADS, 2) lcr_kernel(const lct_params prm) {
    typedef lcr_tile<NT> L;
    constexpr int WN = L::WN, WARPS_N = L::WARPS_N, WARPS_M = L::WARPS_M, WM = L::WM;
    constexpr int MT = WM / 16, NB = WN / 8, SPITCH = L::SPITCH;
    static_assert(NB % 2 == 0 && WARPS_M * WARPS_N == LCR_WARPS, "warp grid");

    extern __shared__ __align__(16) unsigned char lct_smem[];
    const int T = prm.T, TW = prm.TW, Tp = (T + 63) / 64 * 64, UP = Tp + 8;
    uint16_t *taps = reinterpret_cast<uint16_t *>(lct_smem); /* [E | O]                    */
    uint16_t *us = taps + 2 * TW;                            /* [NT][UP] fp16 u            */
    uint16_t *stg = us + NT * UP;                            /* [warp][WN][SPITCH] y tiles */

    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, q = lane % 4;
    const int bt = blockIdx.x % prm.nbt, c = blockIdx.x / prm.nbt, b0 = bt * NT;

    /* Phase 1: taps and u, four 16-byte loads in flight per thread. */
    {
        const uint4 *src = reinterpret_cast<const uint4 *>(prm.rows + (size_t)c * 2 * TW);
        for (int i = tid; i < TW / 4; i += LCR_THREADS) reinterpret_cast<uint4 *>(taps)[i] = src[i];
        const int n = NT * (Tp / 8);
        for (int base = tid; base < n; base += 4 * LCR_THREADS) {
            uint4 r[4];
#pragma unroll
            for (int k = 0; k < 4; k++) {
                const int gi = base + k * LCR_THREADS;
                r[k] = gi < n ? lct_load_group<Tin>(prm, c, b0 + gi / (Tp / 8), (gi % (Tp / 8)) * 8)
                              : make_uint4(0u, 0u, 0u, 0u);
            }
#pragma unroll
            for (int k = 0; k < 4; k++) {
                const int gi = base + k * LCR_THREADS;
                if (gi < n)
                    *reinterpret_cast<uint4 *>(us + (gi / (Tp / 8)) * UP + (gi % (Tp / 8)) * 8) =
                        lct_operand<Tin>(r[k]);
            }
        }
    }
    __syncthreads();

    /* Phase 2: warp (wm, wn) takes bands wm, then 2 WARPS_M - 1 - wm, ... (boustrophedon, so
     * the causal triangle's cost evens out over the warps). */
    const int wm = warp / WARPS_N, wn = warp % WARPS_N;
    const int nbands = (T + WM - 1) / WM;
    const int lane_off = (g & 1) ? TW / 2 + (2 * q - g - 1) / 2 : (2 * q - g) / 2;
    const uint32_t *tapw = reinterpret_cast<const uint32_t *>(taps);
    const uint16_t *ub = us + (wn * WN + (lane / 16) * 8 + lane % 8) * UP + ((lane / 8) & 1) * 8;
    uint16_t *ws = stg + warp * WN * SPITCH;
    const float isc = prm.inv_scale[c];
    for (int r = 0; r * WARPS_M < nbands; r++) {
        const int j = r * WARPS_M + ((r & 1) ? WARPS_M - 1 - wm : wm);
        if (j >= nbands) continue;
        const int tw = j * WM;
        float acc[MT][NB][4];
        lct_zero(acc);
        const int t_end = tw + WM < T ? tw + WM : T;
        /* chunks wholly below the band run without tests, unless the band passes T (its
         * m-tiles past T would index taps below the stored range) */
        const int nch = (t_end + LCT_KC - 1) / LCT_KC, nfast = tw + WM <= T ? tw / LCT_KC : 0;
        for (int kc = 0; kc < nfast; kc++) /* wholly below the band: no tests */
            lct_chunk_dense<MT, NB>(acc, tapw, ((prm.base - (tw - kc * LCT_KC)) >> 1) + lane_off,
                                    ub + kc * LCT_KC, UP);
        for (int kc = nfast; kc < nch; kc++) /* the diagonal: per-tile tests */
            lct_chunk_diag<MT, NB>(acc, tapw, prm.base, lane_off, ub + kc * LCT_KC, UP, kc * LCT_KC,
                                   tw, T);
        /* the band's y: scale, round, transpose through the warp's staging tile, 16-byte rows */
        lct_acc_to_smem<MT, NB, Tout>(acc, isc, ws, SPITCH, 0, 0, g, q);
        __syncwarp();
        for (int gi = lane; gi < WN * (WM / 8); gi += 32) {
            const int row = gi / (WM / 8), t = tw + (gi % (WM / 8)) * 8, b = b0 + wn * WN + row;
            if (b >= prm.B || t >= T) continue;
            lct_store8<Tout>(prm, b, c, t,
                             *reinterpret_cast<const uint4 *>(ws + row * SPITCH + (gi % (WM / 8)) * 8));
        }
        __syncwarp();
    }
}

/* Setup: per channel, max |k| -> power-of-two scale -> the E and O rows in fp16. */
__global__ void lct_rows_kernel(const float *__restrict__ taps, int T, int TW, int base,
                                uint16_t *__restrict__ rows, float *__restrict__ inv_scale) {
    __shared__ float part[32];
    const int c = blockIdx.x;
    const float *k = taps + (size_t)c * T;
    float m = 0.0f;
    for (int j = threadIdx.x; j < T; j += blockDim.x) m = fmaxf(m, fabsf(k[j]));
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = m;
    __syncthreads();
    m = 0.0f;
    for (int w = 0; w < (int)(blockDim.x / 32); w++) m = fmaxf(m, part[w]);
    int e = 15; /* m in [2^(e-1), 2^e) -> scale 2^(15 - e) puts it in [2^14, 2^15) */
    if (m > 0.0f && isfinite(m)) frexpf(m, &e);
    const float scale = ldexpf(1.0f, 15 - e);
    if (threadIdx.x == 0) inv_scale[c] = ldexpf(1.0f, e - 15);
    for (int i = threadIdx.x; i < 2 * TW; i += blockDim.x) {
        const int j = base - (i % TW) - i / TW; /* O[i] = E[i + 1] */
        const float v = j >= 0 && j < T ? k[j] * scale : 0.0f;
        rows[(size_t)c * 2 * TW + i] = __half_as_ushort(__float2half_rn(v));
    }
}

template <int NT> static size_t lct_smem_bytes(int TW) {
    constexpr int BM = LCT_WARPS * (LCT_ACC / NT);
    const size_t u = (size_t)2 * NT * LCT_UPITCH, o = (size_t)NT * (BM + 8);
    return (size_t)2 * TW * 2 + (u > o ? u : o) * 2;
}

template <int NT> static int lct_set_smem(int TW) {
    const int bytes = (int)lct_smem_bytes<NT>(TW);
    CUDA_CHECK(cudaFuncSetAttribute(lct_kernel<NT, __nv_bfloat16, __nv_bfloat16>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
    CUDA_CHECK(cudaFuncSetAttribute(lct_kernel<NT, __half, __half>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
    CUDA_CHECK(cudaFuncSetAttribute(lct_kernel<NT, __half, __nv_bfloat16>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
    return 0;
}

template <int NT> static size_t lcr_smem_bytes(int T, int TW) {
    typedef lcr_tile<NT> L;
    const int Tp = (T + 63) / 64 * 64;
    return ((size_t)2 * TW + (size_t)NT * (Tp + 8) + (size_t)LCR_WARPS * L::WN * L::SPITCH) * 2;
}

template <int NT> static int lcr_set_smem(int T, int TW) {
    const int bytes = (int)lcr_smem_bytes<NT>(T, TW);
    CUDA_CHECK(cudaFuncSetAttribute(lcr_kernel<NT, __nv_bfloat16, __nv_bfloat16>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
    CUDA_CHECK(cudaFuncSetAttribute(lcr_kernel<NT, __half, __half>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
    CUDA_CHECK(cudaFuncSetAttribute(lcr_kernel<NT, __half, __nv_bfloat16>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
    return 0;
}

template <int NT, typename Tin, typename Tout>
static int lcr_launch(const long_conv_toeplitz_t *p, lct_params prm, cudaStream_t stream) {
    const lct_plan_t &pl = p->plan;
    prm.nbt = (pl.B + NT - 1) / NT;
    const long long nblocks = (long long)pl.d * prm.nbt;
    if (nblocks > 0x7fffffffLL) BENCH_FAIL("long_conv_toeplitz: grid of %lld blocks", nblocks);
    lcr_kernel<NT, Tin, Tout><<<(unsigned)nblocks, LCR_THREADS, lcr_smem_bytes<NT>(pl.T, pl.TW),
                                stream>>>(prm);
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

template <int NT, typename Tin, typename Tout>
static int lct_launch(const long_conv_toeplitz_t *p, lct_params prm, cudaStream_t stream) {
    constexpr int BM = LCT_WARPS * (LCT_ACC / NT);
    const lct_plan_t &pl = p->plan;
    prm.ntt = (pl.T + BM - 1) / BM;
    prm.nbt = (pl.B + NT - 1) / NT;
    const long long nblocks = (long long)pl.d * prm.nbt * prm.ntt;
    if (nblocks > 0x7fffffffLL) BENCH_FAIL("long_conv_toeplitz: grid of %lld blocks", nblocks);
    lct_kernel<NT, Tin, Tout><<<(unsigned)nblocks, LCT_THREADS, lct_smem_bytes<NT>(pl.TW), stream>>>(prm);
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

/* The plan's kernel at its batch tile (lct_plan_make: v3's as wide as B allows, since wider
 * tiles reuse each A fragment more). */
template <typename Tin, typename Tout>
static int lct_launch_nt(const long_conv_toeplitz_t *p, const lct_params &prm, cudaStream_t stream) {
    const lct_plan_t &pl = p->plan;
    if (pl.version == 5) { /* kernels/long_conv/toeplitz_wgmma.cu */
        lct_params p5 = prm;
        p5.nbt = (pl.B + pl.nt - 1) / pl.nt;
        return lcw_launch(pl.nt, pl.wg, std::is_same<Tin, __half>::value,
                          std::is_same<Tout, __nv_bfloat16>::value, p5, stream);
    }
    if (pl.version == 4) {
        switch (pl.nt) {
        case 64: return lcr_launch<64, Tin, Tout>(p, prm, stream);
        case 32: return lcr_launch<32, Tin, Tout>(p, prm, stream);
        case 16: return lcr_launch<16, Tin, Tout>(p, prm, stream);
        }
    }
    if (pl.nt == 32) return lct_launch<32, Tin, Tout>(p, prm, stream);
    if (pl.nt == 16) return lct_launch<16, Tin, Tout>(p, prm, stream);
    return lct_launch<64, Tin, Tout>(p, prm, stream);
}

template <typename Tx>
static int lct_run_prologue(const long_conv_toeplitz_t *p, const void *d_x, const float *d_pre3,
                            int vec, cudaStream_t stream) {
    const lct_plan_t &pl = p->plan;
    const long long rows = (long long)pl.B * pl.d, groups = rows * ((pl.T + 7) / 8);
    const long long blocks = (groups + 255) / 256;
    if (blocks > 0x7fffffffLL) BENCH_FAIL("long_conv_toeplitz: prologue grid of %lld blocks", blocks);
    lct_prologue_kernel<Tx><<<(unsigned)blocks, 256, 0, stream>>>(
        static_cast<const Tx *>(d_x), d_pre3, p->d_u16, pl.d, pl.T, rows, vec);
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

} // namespace

/* v5 needs the sm_90a build and a compute capability 9.0 device (the current one). */
extern "C" int long_conv_toeplitz_wgmma_here(void) {
    int dev = 0;
    return cudaGetDevice(&dev) == cudaSuccess && lcw_usable(dev);
}

extern "C" void long_conv_toeplitz_destroy(long_conv_toeplitz_t *p) {
    if (!p) return;
    if (p->d_rows) cudaFree(p->d_rows);
    if (p->d_inv_scale) cudaFree(p->d_inv_scale);
    if (p->d_u16) cudaFree(p->d_u16);
    free(p);
}

static int lct_create_impl(long_conv_toeplitz_t *p, const float *d_taps, cudaStream_t stream) {
    const lct_plan_t &pl = p->plan;
    const size_t row_bytes = (size_t)pl.d * 2 * pl.TW * sizeof(uint16_t);
    CUDA_CHECK(cudaMalloc((void **)&p->d_rows, row_bytes));
    CUDA_CHECK(cudaMalloc((void **)&p->d_inv_scale, (size_t)pl.d * sizeof(float)));
    CUDA_CHECK(cudaMalloc((void **)&p->d_u16, (size_t)pl.B * pl.d * pl.T * sizeof(uint16_t)));
    if (lct_set_smem<16>(pl.TW) || lct_set_smem<32>(pl.TW) || lct_set_smem<64>(pl.TW)) return -1;
    if (pl.version == 5) {
        if (lcw_prepare(pl.nt, pl.TW, pl.tg, pl.wg)) return -1;
    } else if (pl.version == 4) {
        switch (pl.nt) {
        case 64: if (lcr_set_smem<64>(pl.T, pl.TW)) return -1; break;
        case 32: if (lcr_set_smem<32>(pl.T, pl.TW)) return -1; break;
        case 16: if (lcr_set_smem<16>(pl.T, pl.TW)) return -1; break;
        }
    }
    lct_rows_kernel<<<(unsigned)pl.d, 256, 0, stream>>>(d_taps, pl.T, pl.TW, pl.base, p->d_rows,
                                                         p->d_inv_scale);
    CUDA_CHECK(cudaGetLastError());
    CUDA_CHECK(cudaStreamSynchronize(stream));
    return 0;
}

extern "C" int long_conv_toeplitz_create(const lct_plan_t *plan, const float *d_taps,
                                         cudaStream_t stream, long_conv_toeplitz_t **out) {
    *out = NULL;
    const int B = plan->B, d = plan->d, T = plan->T;
    if (B < 1 || d < 1 || T < 1) BENCH_FAIL("long_conv_toeplitz: empty shape B=%d d=%d T=%d", B, d, T);
    if (T > LONG_CONV_TOEPLITZ_MAX_T)
        BENCH_FAIL("long_conv_toeplitz: T = %d > %d", T, LONG_CONV_TOEPLITZ_MAX_T);
    if (d > 0x7fffffff / 2) BENCH_FAIL("long_conv_toeplitz: d = %d too large for the grid", d);
    long_conv_toeplitz_t *p = (long_conv_toeplitz_t *)calloc(1, sizeof *p);
    if (!p) BENCH_FAIL("long_conv_toeplitz: out of host memory");
    p->plan = *plan;
    if (lct_create_impl(p, d_taps, stream) != 0) {
        long_conv_toeplitz_destroy(p); /* keeps the recorded error */
        return -1;
    }
    *out = p;
    return 0;
}

extern "C" void long_conv_toeplitz_describe(const long_conv_toeplitz_t *p, char *buf, size_t len) {
    if (!len) return;
    if (!p)
        buf[0] = 0;
    else
        lct_plan_describe(&p->plan, buf, len);
}

extern "C" int long_conv_toeplitz_run(const long_conv_toeplitz_t *p, const void *d_x, void *d_y,
                                      dtype_t dtype, const float *d_pre3, cudaStream_t stream) {
    if (!p) BENCH_FAIL("long_conv_toeplitz: run without create");
    if (dtype != DTYPE_BF16 && dtype != DTYPE_F16)
        BENCH_FAIL("long_conv_toeplitz: dtype must be bf16 or fp16 (fp32 takes the FFT path)");
    const lct_plan_t &pl = p->plan;
    lct_params prm = {};
    prm.x = d_x;
    prm.tg = pl.tg;
    prm.y = d_y;
    prm.rows = p->d_rows;
    prm.inv_scale = p->d_inv_scale;
    prm.B = pl.B;
    prm.d = pl.d;
    prm.T = pl.T;
    prm.TW = pl.TW;
    prm.base = pl.base;
    prm.vec = pl.T % 8 == 0 && ((uintptr_t)d_x & 15) == 0 && ((uintptr_t)d_y & 15) == 0;
    const bool bf16 = dtype == DTYPE_BF16;
    if (d_pre3) { /* the prologue's fp16 u, then the product reads it */
        if (bf16 ? lct_run_prologue<__nv_bfloat16>(p, d_x, d_pre3, prm.vec, stream)
                 : lct_run_prologue<__half>(p, d_x, d_pre3, prm.vec, stream))
            return -1;
        prm.x = p->d_u16;
        return bf16 ? lct_launch_nt<__half, __nv_bfloat16>(p, prm, stream)
                    : lct_launch_nt<__half, __half>(p, prm, stream);
    }
    return bf16 ? lct_launch_nt<__nv_bfloat16, __nv_bfloat16>(p, prm, stream)
                : lct_launch_nt<__half, __half>(p, prm, stream);
}
