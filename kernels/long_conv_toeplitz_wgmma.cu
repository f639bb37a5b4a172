/* long_conv_toeplitz v5: the causal Toeplitz product Y_c = K_c U_c (kernels/long_conv_toeplitz.cu
 * has the algebra and v1..v4) on Hopper's warpgroup tensor cores, wgmma.m64nNk16 with the Toeplitz
 * operand in registers and u in shared memory.  Built for sm_90a (CMake's wgmma unit).
 *
 * Why: v4 (mma.sync) runs at ~350-390 TFLOP/s of executed MMA work, about 55 % of what mma.sync
 * can do on an H100 and a third of wgmma's dense fp16 rate; at T = 2k it is 4.3x its HBM floor.
 *
 * ---- the algorithm ---------------------------------------------------------------------------
 * Block = one warpgroup = (channel c, 8 batch rows).  Its u is staged whole in shared memory as
 * fp16 pieces of 8 tokens x 8 rows (piece (s / 8) * 8 + n, 128 contiguous bytes a token group),
 * after ZERO = 64 (G - 1) tokens of zeros.  A is the Toeplitz tile: 64 output tokens x 16 input
 * tokens at lag dlt = t - s, built in registers from the channel's fp16 tap rows exactly as v4
 * builds an mma.sync fragment (warp w holds rows 16 w .. 16 w + 15, lag dlt + 16 w; three 32-bit
 * shared loads).  The trick: with 8 rows a block, ONE wgmma m64n64k16 computes G = 8 m-tiles at
 * once.  Column block i (8 columns) of B is the 8 rows at tokens s_i = tm0 + 64 i - dlt, and
 * since 64 tokens of the staged run are 1024 bytes, the K-major descriptor with LBO = 128 and
 * SBO = 1024 IS that matrix: m-tile i's input at the same lag, no copy.  A group (512 output
 * tokens) walks the lag down from tm0 + 64 (G - 1) to -48 in steps of 16, one fragment and one
 * wgmma a step; m-tiles not yet started read the zeros (the ramp: 4 (G - 1) steps).
 * Fragments are double-buffered: step k's wgmma runs while step k+1's fragment is loaded;
 * wgmma.wait_group 1 frees the buffer of step k - 1 before it is overwritten.
 * Staging: cp.async of raw pieces (zero-filled past B and T), bf16 converted in place; blocks
 * are small (38 / 58 / 99 KiB at T = 1k / 2k / 4k), so several share an SM and one's staging
 * overlaps another's product.
 * Epilogue per group: accumulators x (1 / channel scale) -> run dtype -> staging tiles [8][72]
 * (transposed) -> 16-byte rows of y.  Numerics: v4's (fp16 operands, taps scaled per channel by a
 * power of two, fp32 sums).
 *
 * Why not G m-tiles as G wgmmas of N = batch rows sharing one fragment (this file's first form,
 * 1f7de17 / ab758f6, batch tiles 64 / 32 / 16 with a loader warpgroup): ptxas gave every wgmma its
 * own copy of the fragment and a 64-bit descriptor through R2UR, ~45 instructions a step for
 * 3 x m64n32k16; Nsight Compute at 2k: tensor pipe 40 %, issue 50 %; measured 0.224 / 0.385 /
 * 0.931 ms at 1k / 2k / 4k (v4 0.218 / 0.393; FFT at 4k 0.633).
 *
 * Work: a group executes 8 (tm0 / 16 + 32) tile-steps, of which the causal ones are the useful
 * sum; executed MMA flops 2 x 64 x 8 x 16 x tile-steps: 103 / 172 / 309 GFLOP at 1k / 2k / 4k
 * (useful 71 / 83 / 92 %).  Predicted at ~600 TFLOP/s (one m64n64k16 a step, ~15 instructions):
 * 0.17 / 0.29 / 0.52 ms.
 */
#include <cuda_runtime.h>
#include <stdint.h>

#include <type_traits>

#include "bench_check.h"
#include "long_conv_toeplitz_wgmma.h"
#include "mma_sync.cuh"
#include "wgmma.cuh"

namespace {

constexpr int LCW_NT = 8;                  /* batch rows a block: the wgmma's column block    */
constexpr int LCW_G = 8;                   /* m-tiles a group = column blocks of one wgmma     */
constexpr int LCW_N = LCW_NT * LCW_G;      /* the wgmma's N                                    */
constexpr int LCW_ZERO = 64 * (LCW_G - 1); /* zero tokens staged before u (tiles not started)  */
constexpr int LCW_THREADS = 128;           /* one warpgroup                                    */
constexpr int LCW_SPITCH = 72;             /* staging pitch (tokens), = 8 (mod 64)             */
constexpr size_t LCW_SMEM_MAX = 227 * 1024;

/* Shared memory: [taps E | O][u: (ZERO + Tg) tokens x 8 rows][staging: G tiles x 8 rows]. */
size_t lcw_smem_bytes(int tw, int tg) {
    return (size_t)2 * tw * 2 + (size_t)(LCW_ZERO + tg) * LCW_NT * 2 +
           (size_t)LCW_G * LCW_NT * LCW_SPITCH * 2;
}

/* The Toeplitz fragment at word w0 of the tap rows (v4's algebra: m = dlt + g - 2q for the
 * rows g, m + 8 for rows g + 8, m - 8 for columns 2q + 8, and the fourth register = the first). */
__device__ __forceinline__ void lcw_frag(uint32_t (&a)[4], const uint32_t *tapw, int w0) {
    a[0] = tapw[w0];
    a[1] = tapw[w0 - 4];
    a[2] = tapw[w0 + 4];
    a[3] = a[0];
}

template <typename Tin, typename Tout>
__global__ void __launch_bounds__(LCW_THREADS) lcw_kernel(const lct_params prm) {
    extern __shared__ __align__(16) unsigned char lcw_smem[];
    const int T = prm.T, TW = prm.TW, Tg = prm.tg;
    uint16_t *taps = reinterpret_cast<uint16_t *>(lcw_smem);
    uint16_t *us = taps + 2 * TW;
    uint16_t *stg = us + (size_t)(LCW_ZERO + Tg) * LCW_NT;
    uint4 *up = reinterpret_cast<uint4 *>(us); /* piece ((ZERO + s) / 8) * 8 + n = ZERO + p */
    const int tid = threadIdx.x;
    const int bt = blockIdx.x % prm.nbt, c = blockIdx.x / prm.nbt, b0 = bt * LCW_NT;

    /* Stage: taps; zeros; u as raw pieces (cp.async, zero-filled past B or T; a partial piece
     * by hand), then bf16 converted in place to the fp16 operand. */
    {
        const uint4 *src = reinterpret_cast<const uint4 *>(prm.rows + (size_t)c * 2 * TW);
        for (int i = tid; i < TW / 4; i += LCW_THREADS) reinterpret_cast<uint4 *>(taps)[i] = src[i];
        for (int i = tid; i < LCW_ZERO; i += LCW_THREADS) up[i] = make_uint4(0u, 0u, 0u, 0u);
        for (int p = tid; p < Tg; p += LCW_THREADS) {
            const int n = p % LCW_NT, s = (p / LCW_NT) * 8, b = b0 + n;
            uint4 *dst = up + LCW_ZERO + p;
            const Tin *xr = static_cast<const Tin *>(prm.x) + ((size_t)b * prm.d + c) * prm.T;
            if (b >= prm.B || s >= T)
                cp_async16(smem_u32(dst), prm.x, 0);
            else if (prm.vec && s + 8 <= T)
                cp_async16(smem_u32(dst), xr + s, 16);
            else
                *dst = lct_load_group<Tin>(prm, c, b, s);
        }
        cp_async_commit();
        cp_async_wait<0>();
        if (!std::is_same<Tin, __half>::value)
            for (int p = tid; p < Tg; p += LCW_THREADS) up[LCW_ZERO + p] = lct_operand<Tin>(up[LCW_ZERO + p]);
        wg_fence_proxy_smem(); /* the generic-proxy writes, before wgmma reads them */
    }
    __syncthreads();

    const int warp = tid / 32, lane = tid % 32, g = lane / 4, q = lane % 4;
    const int lane_off = (g & 1) ? TW / 2 + (2 * q - g - 1) / 2 : (2 * q - g) / 2;
    const uint32_t *tapw = reinterpret_cast<const uint32_t *>(taps);
    const float isc = prm.inv_scale[c];
    const uint64_t desc_u = wg_desc(smem_u32(us), 128, 1024);
    for (int grp = Tg / (64 * LCW_G) - 1; grp >= 0; --grp) {
        const int tm0 = grp * 64 * LCW_G;
        float acc[LCW_G][4];
#pragma unroll
        for (int i = 0; i < LCW_G; ++i)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[i][e] = 0.0f;
        wg_pin<LCW_G>(acc);
        /* Step k: lag dlt = tm0 + 64 (G - 1) - 16 k; column block i reads tokens
         * s_i = tm0 + 64 i - dlt, staged at ZERO + s_i: the descriptor starts at token 16 k of
         * the staged run (16 units of 16 bytes a step) and steps 1024 bytes a block. */
        int w0 = ((prm.base - tm0 - 64 * (LCW_G - 1) - 16 * warp) >> 1) + lane_off;
        const int w0_last = ((prm.base + 48 - 16 * warp) >> 1) + lane_off;
        uint64_t desc = desc_u;
        uint32_t a[2][4];
        lcw_frag(a[0], tapw, w0);
        const int npairs = tm0 / 32 + 2 * LCW_G; /* tm0 / 16 + 4 G steps: dlt down to -48 */
        for (int k = 0; k < npairs; ++k) {
            wg_fence();
            wgmma_rs<false, LCW_N>(acc, a[0], desc, 1);
            wg_commit();
            wg_wait<1>();
            wg_pin_u32<1>(*reinterpret_cast<uint32_t(*)[1][4]>(&a[1])); /* its wgmma is done */
            lcw_frag(a[1], tapw, min(w0 + 8, w0_last));
            wg_fence();
            wgmma_rs<false, LCW_N>(acc, a[1], desc + 16, 1);
            wg_commit();
            wg_wait<1>();
            wg_pin_u32<1>(*reinterpret_cast<uint32_t(*)[1][4]>(&a[0]));
            lcw_frag(a[0], tapw, min(w0 + 16, w0_last));
            w0 += 16;
            desc += 32;
        }
        wg_wait<0>();
        wg_pin<LCW_G>(acc);

        /* y: the G tiles (64 tokens x 8 rows each) scaled, rounded, transposed into the
         * staging tiles, then 16-byte rows */
#pragma unroll
        for (int i = 0; i < LCW_G; ++i)
            lct_acc_to_smem<1, 1, Tout>(*reinterpret_cast<const float(*)[1][1][4]>(&acc[i]), isc,
                                        stg + i * LCW_NT * LCW_SPITCH, LCW_SPITCH, 0, 16 * warp, g, q);
        __syncthreads();
        for (int gi = tid; gi < LCW_G * LCW_NT * 8; gi += LCW_THREADS) {
            const int i = gi / (LCW_NT * 8), row = (gi / 8) % LCW_NT, t = tm0 + 64 * i + (gi % 8) * 8;
            const int b = b0 + row;
            if (b < prm.B && t < T)
                lct_store8<Tout>(prm, b, c, t,
                                 *reinterpret_cast<const uint4 *>(stg + (i * LCW_NT + row) * LCW_SPITCH +
                                                                  (gi % 8) * 8));
        }
        __syncthreads();
    }
}

template <typename Tin, typename Tout> int lcw_prepare_t(size_t bytes) {
    CUDA_CHECK(cudaFuncSetAttribute(lcw_kernel<Tin, Tout>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    return 0;
}

} // namespace

bool lcw_usable(int dev) { return wg_unit_usable(dev); }

void lcw_geometry(int nt, int T, int *tg, int *base, int *tw) {
    (void)nt;
    const int span = 64 * LCW_G;
    *tg = (T + span - 1) / span * span;
    /* lags read: tm0 + 64 (G - 1) + 48 + 15 at most (below Tg: i >= 65), down to -48 - 14 - 8
     * and one clamped step past it (i <= base + 62; O reads i + 1); TW = 32 (mod 64) as v4's */
    *base = *tg + 64;
    *tw = *tg + 224;
}

int lcw_nt(int B, int T) {
    (void)B;
    int tg, base, tw;
    lcw_geometry(LCW_NT, T, &tg, &base, &tw);
    return lcw_smem_bytes(tw, tg) <= LCW_SMEM_MAX ? LCW_NT : 0;
}

int lcw_prepare(int nt, int tw, int tg) {
    if (nt != LCW_NT) BENCH_FAIL("long_conv_toeplitz v5: batch tile %d", nt);
    const size_t bytes = lcw_smem_bytes(tw, tg);
    if (lcw_prepare_t<__nv_bfloat16, __nv_bfloat16>(bytes) || lcw_prepare_t<__half, __half>(bytes) ||
        lcw_prepare_t<__half, __nv_bfloat16>(bytes))
        return -1;
    return 0;
}

int lcw_launch(int nt, bool u_half, bool y_bf16, const lct_params &prm, cudaStream_t stream) {
    if (nt != LCW_NT) BENCH_FAIL("long_conv_toeplitz v5: batch tile %d", nt);
    const long long nblocks = (long long)prm.d * prm.nbt;
    if (nblocks > 0x7fffffffLL) BENCH_FAIL("long_conv_toeplitz v5: grid of %lld blocks", nblocks);
    const size_t bytes = lcw_smem_bytes(prm.TW, prm.tg);
    if (!u_half && y_bf16)
        lcw_kernel<__nv_bfloat16, __nv_bfloat16><<<(unsigned)nblocks, LCW_THREADS, bytes, stream>>>(prm);
    else if (u_half && y_bf16)
        lcw_kernel<__half, __nv_bfloat16><<<(unsigned)nblocks, LCW_THREADS, bytes, stream>>>(prm);
    else if (u_half)
        lcw_kernel<__half, __half><<<(unsigned)nblocks, LCW_THREADS, bytes, stream>>>(prm);
    else
        BENCH_FAIL("long_conv_toeplitz v5: bf16 u with fp16 y is not a combination any run makes");
    CUDA_CHECK(cudaGetLastError());
    return 0;
}
