/* long_conv/toeplitz_kernels.cuh: the Toeplitz engine's mma.sync kernels (v3 lct_kernel, v4
 * lcr_kernel), its SiLU prologue pass and the setup kernel that makes the tap rows, included by
 * toeplitz.cu alone.  y_c = K_c u_c with K_c the channel's lower-triangular Toeplitz matrix
 * (toeplitz.cu has why and the numerics; toeplitz_wgmma.cu is v5).
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
 * [B,d,T] that the product then reads (v3; lct_prologue_kernel says why not inside the
 * product).  Without it the product reads x and converts bf16 to fp16 while staging.
 * Epilogue: accumulators * (1 / channel scale) -> run dtype -> shared memory [NT][BM + 8]
 * (transposed, conflict-free) -> 16-byte rows of y. */
#ifndef CHELA_LONG_CONV_TOEPLITZ_KERNELS_CUH
#define CHELA_LONG_CONV_TOEPLITZ_KERNELS_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "dtype_device.cuh"
#include "long_conv/toeplitz_io.cuh"
#include "common/math.cuh" /* silu */
#include "common/mma_sync.cuh"

#define LCT_THREADS 128
#define LCT_WARPS 4
/* Blocks per SM the register budget is set for: 3 (168 registers).  v2's 15 hoisted tap words
 * and 64 accumulators spilled at 4 blocks (128 registers). */
#define LCT_MINB 3
#define LCT_KC 64                 /* tokens of u per pipeline stage                      */
#define LCT_UPITCH (LCT_KC + 8)   /* shared row pitch of a stage, elements               */
#define LCT_ACC 2048              /* WM x NT: 64 fp32 accumulators per thread            */

namespace {

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
    for (int e = 0; e < 8; e++) o[e] = silu(fmaf(p0, f[e + 2], fmaf(p1, f[e + 1], p2 * f[e])));
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

} // namespace

#endif
