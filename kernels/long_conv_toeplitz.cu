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
 * Prologue: u = SiLU(pre3 * x) is computed while the chunk goes from registers to shared memory
 * (the two tokens before a group come from two scalar loads); without it u = x.
 * Epilogue: accumulators * (1 / channel scale) -> run dtype -> shared memory [NT][BM + 8]
 * (transposed, conflict-free) -> 16-byte rows of y.
 *
 * Numerics: both MMA operands are fp16, whatever the run dtype.  The taps are rounded to fp16
 * after a per-channel power-of-two scale that puts max|k_c| in [2^14, 2^15) (small taps would
 * otherwise become subnormal; the scale is exact to undo); u is x (fp16 runs: as is; bf16 runs:
 * converted, exact for 2^-14 <= |x| < 65520 since bf16's 8-bit significand fits fp16's 11) or
 * SiLU(...) rounded to fp16; the sum is fp32, the output rounded once to the run dtype.
 * Limit: a bf16 u with |u| >= 65520 has no fp16 value: it becomes inf and its outputs inf/NaN
 * (loud, never a plausible wrong number); CHELA_LCF_TOEPLITZ_MAX_T=0 keeps the FFT path, which
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
 * v2 (this file).  fp16 operands for both dtypes (above); the chunks wholly below a block's first
 *   token (all but the last two in a full tile) run a branch-free step loop whose 2 MT + 7 tap
 *   words are loaded once per chunk; warp tile 64 tokens x 32 batch rows (2 x 2 warps at NT = 64),
 *   so each B fragment from ldmatrix feeds 4 m-tiles instead of 2 (half the shared-memory bytes
 *   per MMA); 3 blocks per SM (up to 168 registers; 16 bytes spill at NT = 64 with the prologue).
 *   Predicted: error back to the output's rounding (~4e-3 bf16); 0.20-0.25 ms at 1k, 0.35-0.45
 *   at 2k.  measured: profiles/NOTES.md.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include <type_traits>

#include "bench_check.h"
#include "dtype_device.cuh"
#include "long_conv_toeplitz.h"
#include "mma_sync.cuh"

#define LCT_THREADS 128
#define LCT_WARPS 4
/* Blocks per SM the register budget is set for: 4 (128 registers) holds 64 accumulators, the
 * fragments and one stage in flight; with the prologue's halo values at NT = 64 that spilled
 * 68 bytes, so that variant gets 3 (168 registers). */
#define LCT_MINB(NT, PRE) 3
#define LCT_KC 64                 /* tokens of u per pipeline stage                      */
#define LCT_UPITCH (LCT_KC + 8)   /* shared row pitch of a stage, elements               */
#define LCT_ACC 2048              /* WM x NT: 64 fp32 accumulators per thread            */

struct long_conv_toeplitz {
    int B, d, T;
    int Tp;                 /* T rounded up to 64                                         */
    int TW;                 /* elements of E (and of O) per channel; TW = 32 (mod 64)      */
    int base;               /* E[i] = k[base - i]                                          */
    uint16_t *d_rows;       /* [d][E | O], taps * scale as fp16                            */
    float *d_inv_scale;     /* [d], 1 / scale (a power of two)                             */
};

namespace {

/* One argument struct for the kernel; shapes in the comments. */
struct lct_params {
    const void *x;          /* [B,d,T] run dtype                                           */
    void *y;                /* [B,d,T] run dtype                                           */
    const uint16_t *rows;   /* [d][2 TW] fp16 tap rows                                     */
    const float *inv_scale; /* [d]                                                         */
    const float *pre3;      /* [d,3] or NULL                                               */
    int B, d, T, TW, base;
    int ntt, nbt;           /* token tiles (of BM), batch tiles (of NT)                    */
    int vec;                /* rows of x and y start 16-byte aligned: 16-byte accesses     */
};

struct lct_geom {
    int Tp, TW, base;
};

static lct_geom lct_geometry(int T) {
    lct_geom g;
    g.Tp = (T + 63) / 64 * 64;
    g.base = g.Tp + 32;  /* m from -32 (below the diagonal) to T + 14 maps to 18 <= i <= base + 32 */
    g.TW = g.Tp + 96;    /* >= base + 33 (O's last read) and 32 (mod 64): banks of O = E's + 16 */
    return g;
}

__device__ __forceinline__ float lct_silu(float v) { return v / (1.0f + __expf(-v)); }

template <bool BF16> struct lct_type;
template <> struct lct_type<true> { typedef __nv_bfloat16 T; };
template <> struct lct_type<false> { typedef __half T; };

/* 8 tokens of one u row (s .. s+7 of batch row b), raw in the run dtype, plus the two tokens
 * before them when the prologue needs them. */
struct lct_group {
    uint4 raw;
    uint32_t halo; /* x[s-2] in the low half, x[s-1] in the high half (0 before t = 0) */
};

__device__ __forceinline__ uint16_t lct_bits(__nv_bfloat16 v) { return __bfloat16_as_ushort(v); }
__device__ __forceinline__ uint16_t lct_bits(__half v) { return __half_as_ushort(v); }

template <typename Tx, bool PRE>
__device__ __forceinline__ lct_group lct_load_group(const lct_params &prm, int c, int b, int s) {
    lct_group gr;
    gr.raw = make_uint4(0u, 0u, 0u, 0u);
    gr.halo = 0u;
    if (b >= prm.B || s >= prm.T) return gr;
    const Tx *xr = static_cast<const Tx *>(prm.x) + ((size_t)b * prm.d + c) * prm.T;
    if (prm.vec && s + 8 <= prm.T) {
        gr.raw = __ldg(reinterpret_cast<const uint4 *>(xr + s));
    } else {
        uint32_t w[4] = {0u, 0u, 0u, 0u};
#pragma unroll
        for (int e = 0; e < 8; e++)
            if (s + e < prm.T) w[e / 2] |= (uint32_t)lct_bits(xr[s + e]) << (16 * (e & 1));
        gr.raw = make_uint4(w[0], w[1], w[2], w[3]);
    }
    if (PRE) {
        if (s >= 1) gr.halo |= (uint32_t)lct_bits(xr[s - 1]) << 16;
        if (s >= 2) gr.halo |= (uint32_t)lct_bits(xr[s - 2]);
    }
    return gr;
}

/* The 8 tokens of a group as the MMA operand (fp16): u = x, or u = SiLU(p0 x_t + p1 x_{t-1} +
 * p2 x_{t-2}) with the prologue; 0 at t >= T. */
template <typename Tx, bool PRE>
__device__ __forceinline__ uint4 lct_operand(const lct_group &gr, int s, int T, float p0, float p1,
                                             float p2) {
    const uint32_t w[4] = {gr.raw.x, gr.raw.y, gr.raw.z, gr.raw.w};
    if (!PRE && std::is_same<Tx, __half>::value) return gr.raw; /* already the operand */
    float f[10];
    f[0] = lo16(gr.halo, (Tx *)nullptr);
    f[1] = hi16(gr.halo, (Tx *)nullptr);
#pragma unroll
    for (int u = 0; u < 4; u++) {
        f[2 + 2 * u] = lo16(w[u], (Tx *)nullptr);
        f[3 + 2 * u] = hi16(w[u], (Tx *)nullptr);
    }
    float o[8];
#pragma unroll
    for (int e = 0; e < 8; e++)
        o[e] = PRE ? (s + e < T ? lct_silu(fmaf(p0, f[e + 2], fmaf(p1, f[e + 1], p2 * f[e]))) : 0.0f)
                   : f[e + 2];
    uint4 r;
    r.x = pack16(o[0], o[1], (__half *)nullptr);
    r.y = pack16(o[2], o[3], (__half *)nullptr);
    r.z = pack16(o[4], o[5], (__half *)nullptr);
    r.w = pack16(o[6], o[7], (__half *)nullptr);
    return r;
}

template <int NT, bool BF16, bool PRE>
__global__ void __launch_bounds__(LCT_THREADS, LCT_MINB(NT, PRE)) lct_kernel(const lct_params prm) {
    typedef typename lct_type<BF16>::T Tx;
    constexpr int WN = NT < 32 ? NT : 32;        /* batch rows per warp          */
    constexpr int WARPS_N = NT / WN;
    constexpr int WARPS_M = LCT_WARPS / WARPS_N;
    constexpr int WM = LCT_ACC / WN;             /* tokens per warp              */
    constexpr int MT = WM / 16;                  /* m16 tiles per warp           */
    constexpr int BM = WARPS_M * WM;             /* tokens per block             */
    constexpr int NB = WN / 8;                   /* n8 tiles per warp            */
    constexpr int NAW = 2 * MT + 7;              /* tap words a warp uses per chunk */
    constexpr int OPITCH = BM + 8;
    constexpr int GPT = NT * LCT_KC / 8 / LCT_THREADS; /* 8-token groups per thread a stage */
    static_assert(GPT >= 1 && NT * LCT_KC / 8 == GPT * LCT_THREADS, "stage load split");
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
    float p0 = 0.f, p1 = 0.f, p2 = 0.f;
    if (PRE) {
        p0 = prm.pre3[3 * c];
        p1 = prm.pre3[3 * c + 1];
        p2 = prm.pre3[3 * c + 2];
    }

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
    lct_group pf[GPT];
    auto load_chunk = [&](int kc) {
#pragma unroll
        for (int i = 0; i < GPT; i++) {
            const int gi = tid + LCT_THREADS * i;
            pf[i] = lct_load_group<Tx, PRE>(prm, c, b0 + gi / 8, kc * LCT_KC + (gi % 8) * 8);
        }
    };
    auto store_chunk = [&](int kc) {
        uint16_t *buf = stage + (kc & 1) * NT * LCT_UPITCH;
#pragma unroll
        for (int i = 0; i < GPT; i++) {
            const int gi = tid + LCT_THREADS * i;
            const int s = kc * LCT_KC + (gi % 8) * 8;
            *reinterpret_cast<uint4 *>(buf + (gi / 8) * LCT_UPITCH + (gi % 8) * 8) =
                lct_operand<Tx, PRE>(pf[i], s, T, p0, p1, p2);
        }
    };

    float acc[MT][NB][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int nb = 0; nb < NB; nb++)
#pragma unroll
            for (int j = 0; j < 4; j++) acc[mt][nb][j] = 0.0f;

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
        if (kc < nfast) {
            /* Dense chunk: the tile (mt, ks) reads words w0 = wc - 8 mt + 8 ks and w0 -/+ 4, so
             * the chunk needs the 2 MT + 7 words wc + 4 j, j = 1 - 2 MT .. 7: load them once. */
            const int wc = ((prm.base - (tw - s0)) >> 1) + lane_off;
            uint32_t aw[NAW];
#pragma unroll
            for (int j = 0; j < NAW; j++) aw[j] = tapw[wc + 4 * (j - (2 * MT - 1))];
#pragma unroll
            for (int ks = 0; ks < LCT_KC / 16; ks++) {
                uint32_t bf[NB / 2][4];
#pragma unroll
                for (int np = 0; np < NB / 2; np++)
                    ldsm_x4(bf[np], smem_u32(ub + 16 * np * LCT_UPITCH + ks * 16));
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
        } else {
#pragma unroll
            for (int ks = 0; ks < LCT_KC / 16; ks++) {
                const int s = s0 + ks * 16;
                if (s > tw + WM - 1) break; /* every token of this warp is before s */
                uint32_t bf[NB / 2][4];
#pragma unroll
                for (int np = 0; np < NB / 2; np++)
                    ldsm_x4(bf[np], smem_u32(ub + 16 * np * LCT_UPITCH + ks * 16));
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    const int tm = tw + 16 * mt;
                    if (tm >= T || s > tm + 15) continue; /* tile past T, or above the diagonal */
                    const int w0 = ((prm.base - (tm - s)) >> 1) + lane_off;
                    uint32_t a[4];
                    a[0] = tapw[w0];     /* m = dlt + g - 2q      */
                    a[1] = tapw[w0 - 4]; /* m + 8 (row g + 8)     */
                    a[2] = tapw[w0 + 4]; /* m - 8 (column 2q + 8) */
                    a[3] = a[0];         /* m again               */
#pragma unroll
                    for (int nb = 0; nb < NB; nb++)
                        mma_16816<false>(acc[mt][nb], a, bf[nb / 2][(nb & 1) * 2],
                                         bf[nb / 2][(nb & 1) * 2 + 1]);
                }
            }
        }
        if (kc + 1 < nch) store_chunk(kc + 1);
        __syncthreads();
    }

    /* Epilogue: undo the tap scale, round, transpose through shared memory, 16-byte rows. */
    const float isc = prm.inv_scale[c];
    uint16_t *os = stage;
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        const int tl = wt * WM + 16 * mt + g;
#pragma unroll
        for (int nb = 0; nb < NB; nb++) {
            const int bl = wb * WN + 8 * nb + 2 * q;
            os[bl * OPITCH + tl] = lct_bits(from_f32<Tx>(acc[mt][nb][0] * isc));
            os[(bl + 1) * OPITCH + tl] = lct_bits(from_f32<Tx>(acc[mt][nb][1] * isc));
            os[bl * OPITCH + tl + 8] = lct_bits(from_f32<Tx>(acc[mt][nb][2] * isc));
            os[(bl + 1) * OPITCH + tl + 8] = lct_bits(from_f32<Tx>(acc[mt][nb][3] * isc));
        }
    }
    __syncthreads();
    for (int gi = tid; gi < NT * BM / 8; gi += LCT_THREADS) {
        const int row = gi / (BM / 8), t = t0 + (gi % (BM / 8)) * 8, b = b0 + row;
        if (b >= prm.B || t >= T) continue;
        const uint4 v = *reinterpret_cast<const uint4 *>(os + row * OPITCH + (gi % (BM / 8)) * 8);
        Tx *yr = static_cast<Tx *>(prm.y) + ((size_t)b * prm.d + c) * T;
        if (prm.vec && t + 8 <= T) {
            *reinterpret_cast<uint4 *>(yr + t) = v;
        } else {
            const uint32_t w[4] = {v.x, v.y, v.z, v.w};
            for (int e = 0; e < 8 && t + e < T; e++) {
                const uint16_t bits = (uint16_t)(w[e / 2] >> (16 * (e & 1)));
                *reinterpret_cast<uint16_t *>(yr + t + e) = bits;
            }
        }
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
    CUDA_CHECK(cudaFuncSetAttribute(lct_kernel<NT, true, false>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
    CUDA_CHECK(cudaFuncSetAttribute(lct_kernel<NT, false, false>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
    CUDA_CHECK(cudaFuncSetAttribute(lct_kernel<NT, true, true>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
    CUDA_CHECK(cudaFuncSetAttribute(lct_kernel<NT, false, true>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
    return 0;
}

template <int NT>
static int lct_launch(const long_conv_toeplitz_t *p, lct_params prm, bool bf16,
                      cudaStream_t stream) {
    constexpr int BM = LCT_WARPS * (LCT_ACC / NT);
    prm.ntt = (p->T + BM - 1) / BM;
    prm.nbt = (p->B + NT - 1) / NT;
    const long long nblocks = (long long)p->d * prm.nbt * prm.ntt;
    if (nblocks > 0x7fffffffLL) BENCH_FAIL("long_conv_toeplitz: grid of %lld blocks", nblocks);
    const size_t smem = lct_smem_bytes<NT>(p->TW);
    const unsigned grid = (unsigned)nblocks;
    if (bf16 && prm.pre3)
        lct_kernel<NT, true, true><<<grid, LCT_THREADS, smem, stream>>>(prm);
    else if (bf16)
        lct_kernel<NT, true, false><<<grid, LCT_THREADS, smem, stream>>>(prm);
    else if (prm.pre3)
        lct_kernel<NT, false, true><<<grid, LCT_THREADS, smem, stream>>>(prm);
    else
        lct_kernel<NT, false, false><<<grid, LCT_THREADS, smem, stream>>>(prm);
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

} // namespace

extern "C" size_t long_conv_toeplitz_workspace(int d, int T) {
    if (d < 1 || T < 1 || T > LONG_CONV_TOEPLITZ_MAX_T) return 0;
    const lct_geom g = lct_geometry(T);
    return (size_t)d * 2 * g.TW * sizeof(uint16_t) + (size_t)d * sizeof(float);
}

extern "C" void long_conv_toeplitz_destroy(long_conv_toeplitz_t *p) {
    if (!p) return;
    if (p->d_rows) cudaFree(p->d_rows);
    if (p->d_inv_scale) cudaFree(p->d_inv_scale);
    free(p);
}

static int lct_create_impl(long_conv_toeplitz_t *p, const float *d_taps, cudaStream_t stream) {
    const size_t row_bytes = (size_t)p->d * 2 * p->TW * sizeof(uint16_t);
    CUDA_CHECK(cudaMalloc((void **)&p->d_rows, row_bytes));
    CUDA_CHECK(cudaMalloc((void **)&p->d_inv_scale, (size_t)p->d * sizeof(float)));
    if (lct_set_smem<16>(p->TW) || lct_set_smem<32>(p->TW) || lct_set_smem<64>(p->TW)) return -1;
    lct_rows_kernel<<<(unsigned)p->d, 256, 0, stream>>>(d_taps, p->T, p->TW, p->base, p->d_rows,
                                                         p->d_inv_scale);
    CUDA_CHECK(cudaGetLastError());
    CUDA_CHECK(cudaStreamSynchronize(stream));
    return 0;
}

extern "C" int long_conv_toeplitz_create(int B, int d, int T, const float *d_taps,
                                         cudaStream_t stream, long_conv_toeplitz_t **out) {
    *out = NULL;
    if (B < 1 || d < 1 || T < 1) BENCH_FAIL("long_conv_toeplitz: empty shape B=%d d=%d T=%d", B, d, T);
    if (T > LONG_CONV_TOEPLITZ_MAX_T)
        BENCH_FAIL("long_conv_toeplitz: T = %d > %d", T, LONG_CONV_TOEPLITZ_MAX_T);
    if (d > 0x7fffffff / 2) BENCH_FAIL("long_conv_toeplitz: d = %d too large for the grid", d);
    long_conv_toeplitz_t *p = (long_conv_toeplitz_t *)calloc(1, sizeof *p);
    if (!p) BENCH_FAIL("long_conv_toeplitz: out of host memory");
    const lct_geom g = lct_geometry(T);
    p->B = B;
    p->d = d;
    p->T = T;
    p->Tp = g.Tp;
    p->TW = g.TW;
    p->base = g.base;
    if (lct_create_impl(p, d_taps, stream) != 0) {
        long_conv_toeplitz_destroy(p); /* keeps the recorded error */
        return -1;
    }
    *out = p;
    return 0;
}

extern "C" int long_conv_toeplitz_run(const long_conv_toeplitz_t *p, const void *d_x, void *d_y,
                                      dtype_t dtype, const float *d_pre3, cudaStream_t stream) {
    if (!p) BENCH_FAIL("long_conv_toeplitz: run without create");
    if (dtype != DTYPE_BF16 && dtype != DTYPE_F16)
        BENCH_FAIL("long_conv_toeplitz: dtype must be bf16 or fp16 (fp32 takes the FFT path)");
    lct_params prm = {};
    prm.x = d_x;
    prm.y = d_y;
    prm.rows = p->d_rows;
    prm.inv_scale = p->d_inv_scale;
    prm.pre3 = d_pre3;
    prm.B = p->B;
    prm.d = p->d;
    prm.T = p->T;
    prm.TW = p->TW;
    prm.base = p->base;
    prm.vec = p->T % 8 == 0 && ((uintptr_t)d_x & 15) == 0 && ((uintptr_t)d_y & 15) == 0;
    const bool bf16 = dtype == DTYPE_BF16;
    /* NT: the batch tile, as wide as B allows (wider tiles reuse each A fragment more) */
    if (p->B > 16 && p->B <= 32) return lct_launch<32>(p, prm, bf16, stream);
    if (p->B <= 16) return lct_launch<16>(p, prm, bf16, stream);
    return lct_launch<64>(p, prm, bf16, stream);
}
