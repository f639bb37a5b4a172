/* long_conv/toeplitz_wgmma.cu: the Toeplitz engine's v5, the causal Toeplitz product Y_c = K_c U_c
 * (toeplitz_kernels.cuh has the algebra of v3 / v4) on Hopper's warpgroup tensor cores,
 * wgmma.m64nNk16 with the Toeplitz operand in registers and u in shared memory.  Built for
 * sm_90a (CMake's wgmma unit); its plan (schedule, batch tile, geometry) is plan.c's.
 *
 * Why: v4 (mma.sync) runs at ~350-390 TFLOP/s of executed MMA work, about 55 % of what mma.sync
 * can do on an H100 and a third of wgmma's dense fp16 rate; at T = 2k it is 4.3x its HBM floor.
 *
 * ---- the algorithm ---------------------------------------------------------------------------
 * Block = (channel c, 8 batch rows), one or two warpgroups.  Its u is staged whole in shared memory
 * as fp16 pieces of 8 tokens x 8 rows (piece (s / 8) * 8 + n, 128 contiguous bytes a token group),
 * after ZERO = 64 (G - 1) tokens of zeros.  A is the Toeplitz tile: 64 output tokens x 16 input
 * tokens at lag dlt = t - s, built in registers from the channel's fp16 tap rows exactly as v4
 * builds an mma.sync fragment (warp w holds rows 16 w .. 16 w + 15, lag dlt + 16 w; three 32-bit
 * shared loads).  The trick: with 8 rows a block, ONE wgmma m64n64k16 computes G = 8 m-tiles at
 * once.  Column block i (8 columns) of B is the 8 rows at tokens s_i = tm0 + 64 i - dlt, and
 * since 64 tokens of the staged run are 1024 bytes, the K-major descriptor with LBO = 128 and
 * SBO = 1024 IS that matrix: m-tile i's input at the same lag, no copy.  A group (512 output
 * tokens) walks the lag down from tm0 + 64 (G - 1) to -48 in steps of 16, one fragment and one
 * wgmma a step; m-tiles not yet started read the zeros (the ramp: 4 (G - 1) steps).
 * Schedule (session 10): U = 4 steps a commit group, their fragments in S = 2 or 3 rotating
 * sets, so up to 8 wgmmas are in flight and (S = 3) each batch's loads run a batch ahead;
 * wgmma.wait_group 1 frees the set of the batch before last.  Fragment addresses are one index
 * with immediate offsets, descriptors move only their 32-bit start half (session 9's loop spent
 * ~27 instructions a step on 64-bit descriptor and clamp arithmetic; now ~10).
 * Staging: cp.async of raw pieces (zero-filled past B and T), bf16 converted in place; blocks
 * are small (29 / 49 / 106 KiB at T = 1k / 2k / 4k), so several share an SM and one's staging
 * overlaps another's product.  From 8 groups (T = 4k) a block has two warpgroups sharing the
 * staged u, which puts four warpgroups on an SM where one-warpgroup blocks of 90 KiB fit two.
 * Epilogue per group: accumulators x (1 / channel scale) -> run dtype -> transposed into u's own
 * piece layout -> 16-byte rows of y.  With one warpgroup the tile is the group's own u tokens
 * (groups run from the last down; group tm0 reads no token >= tm0 + 512); with two, a tile each.
 * Numerics: v4's (fp16 operands, taps scaled per channel by a power of two, fp32 sums).
 *
 * Why not G m-tiles as G wgmmas of N = batch rows sharing one fragment (this file's first form,
 * 1f7de17 / ab758f6, batch tiles 64 / 32 / 16 with a loader warpgroup): ptxas gave every wgmma its
 * own copy of the fragment and a 64-bit descriptor through R2UR, ~45 instructions a step for
 * 3 x m64n32k16; Nsight Compute at 2k: tensor pipe 40 %, issue 50 %; measured 0.224 / 0.385 /
 * 0.931 ms at 1k / 2k / 4k (v4 0.218 / 0.393; FFT at 4k 0.633).
 *
 * Tried (session 10, 3ce9add, not kept): persistent blocks of 4 warpgroups with taps and u
 * double-buffered, the next item's cp.async under this one's product, to break the lockstep in
 * which every SM stages at once.  0.309 / 0.461 ms at 2k / 4k against 0.262 / 0.423: each item
 * boundary drained the block's tensor pipe (the last groups' epilogues, the in-place bf16
 * conversion and a block barrier, all at once), where two one-shot blocks an SM cover each
 * other's boundaries.
 *
 * Work: a group executes 8 (tm0 / 16 + 32) tile-steps, of which the causal ones are the useful
 * sum; executed MMA flops 2 x 64 x 8 x 16 x tile-steps: 103 / 172 / 309 GFLOP at 1k / 2k / 4k
 * (useful 71 / 83 / 92 %).  Measured (H100, session 10): 0.192 / 0.264 / 0.423 ms, 540 / 650 /
 * 730 TFLOP/s executed; Nsight Compute at 2k: tensor pipe 69 %, the rest mostly staging and
 * epilogue phases no other warpgroup on the SM covers.
 */
#include <cuda_runtime.h>
#include <stdint.h>

#include <type_traits>

#include "bench_check.h"
#include "long_conv/toeplitz_wgmma.h"
#include "common/mma_sync.cuh"
#include "common/wgmma.cuh"

namespace {

/* LCW_NT (batch rows a block), LCW_G (m-tiles a group), LCW_ZERO (zero tokens staged before u):
 * long_conv/plan.h, whose lcw_smem_bytes sizes a block from them */
constexpr int LCW_N = LCW_NT * LCW_G;      /* the wgmma's N                                    */
constexpr int LCW_THREADS = 128;           /* one warpgroup                                    */
constexpr int LCW_U = 4;                   /* steps (wgmmas) a commit group                    */

/* The Toeplitz fragment at word w0 of the tap rows (v4's algebra: m = dlt + g - 2q for the
 * rows g, m + 8 for rows g + 8, m - 8 for columns 2q + 8, and the fourth register = the first). */
__device__ __forceinline__ void lcw_frag(uint32_t (&a)[4], const uint32_t *f, int w0) {
    a[0] = f[w0];
    a[1] = f[w0 - 4];
    a[2] = f[w0 + 4];
    a[3] = a[0];
}

/* U consecutive steps' fragments, the first at word pointer f (8 words, 16 taps, a step).  The
 * prefetch after a group's last step reads up to 8 U + 4 words past its last fragment with two
 * sets, 16 U + 4 with three (tg + 207 and tg + 239 words from the E row's start, against TW =
 * tg + 224, lcw_geometry): the O row's end, or the staged zero ramp right behind it, inside the
 * block's shared memory either way, and never fed to a wgmma. */
template <int U>
__device__ __forceinline__ void lcw_frags(uint32_t (&a)[U][4], const uint32_t *f) {
#pragma unroll
    for (int i = 0; i < U; ++i) lcw_frag(a[i], f, 8 * i);
}

/* U wgmmas, step i's B at descriptor (dhi, dlo + 16 i): only the 32-bit start-address half moves
 * (shared addresses stay below 2^18, so the 14-bit field never carries into the next). */
template <int U>
__device__ __forceinline__ void lcw_mma(float (&acc)[LCW_G][4], const uint32_t (&a)[U][4],
                                        uint32_t dlo, uint32_t dhi) {
    wg_fence();
#pragma unroll
    for (int i = 0; i < U; ++i)
        wgmma_rs<false, LCW_N>(acc, a[i], ((uint64_t)dhi << 32) | (uint64_t)(dlo + 16u * i), 1);
    wg_commit();
}

/* A barrier over the 128 threads of warpgroup wg (named barrier 1 + wg; 0 is __syncthreads'),
 * with immediate ids so that ptxas reserves W + 1 barriers, not 16; the block's own for W = 1. */
template <int W> __device__ __forceinline__ void lcw_wg_sync(int wg) {
    if (W == 1)
        __syncthreads();
    else if (wg == 0)
        asm volatile("bar.sync 1, 128;\n" ::: "memory");
    else if (W == 2 || wg == 1)
        asm volatile("bar.sync 2, 128;\n" ::: "memory");
    else if (wg == 2)
        asm volatile("bar.sync 3, 128;\n" ::: "memory");
    else
        asm volatile("bar.sync 4, 128;\n" ::: "memory");
}

/* ---- staging ---------------------------------------------------------------------------------
 * One 8-row tile's u into up (its zero ramp first, ZERO pieces, written elsewhere): raw pieces by
 * cp.async, zero-filled past B or T, a partial piece by hand.  NTHR threads; a thread's pieces are
 * tid + NTHR j, always batch row b0 + tid % 8, so its row pointer is computed once. */
template <typename Tin, int NTHR>
__device__ __forceinline__ void lcw_stage_u(uint4 *up, const lct_params &prm, int c, int b0, int tid) {
    const int my_b = b0 + tid % LCW_NT;
    const bool my_row = my_b < prm.B;
    const Tin *xr = static_cast<const Tin *>(prm.x) + ((size_t)(my_row ? my_b : 0) * prm.d + c) * prm.T;
    const int whole = my_row && prm.vec ? prm.T / 8 * 8 : 0; /* tokens in whole 16-byte pieces */
    const int last = my_row ? prm.T : 0;                       /* tokens that are not zeros      */
    for (int p = tid; p < prm.tg; p += NTHR) {
        const int s = (p / LCW_NT) * 8;
        uint4 *dst = up + LCW_ZERO + p;
        if (s < whole)
            cp_async16(smem_u32(dst), xr + s, 16);
        else if (s >= last)
            cp_async16(smem_u32(dst), prm.x, 0);
        else
            *dst = lct_load_group<Tin>(prm, c, my_b, s);
    }
}

/* The same thread's pieces, once its copies have landed: bf16 to the fp16 operand in place. */
template <typename Tin, int NTHR>
__device__ __forceinline__ void lcw_convert_u(uint4 *up, int tg, int tid) {
    if (!std::is_same<Tin, __half>::value)
        for (int p = tid; p < tg; p += NTHR) up[LCW_ZERO + p] = lct_operand<Tin>(up[LCW_ZERO + p]);
}

/* Channel c's tap rows (E | O, TW words) by cp.async. */
template <int NTHR>
__device__ __forceinline__ void lcw_stage_taps(uint16_t *taps, const lct_params &prm, int c, int tid) {
    const uint4 *src = reinterpret_cast<const uint4 *>(prm.rows + (size_t)c * 2 * prm.TW);
    for (int i = tid; i < prm.TW / 4; i += NTHR)
        cp_async16(smem_u32(reinterpret_cast<uint4 *>(taps) + i), src + i, 16);
}

template <int NTHR> __device__ __forceinline__ void lcw_zero_ramp(uint4 *up, int tid) {
    for (int i = tid; i < LCW_ZERO; i += NTHR) up[i] = make_uint4(0u, 0u, 0u, 0u);
}

/* ---- one group --------------------------------------------------------------------------------
 * Step k: lag dlt = tm0 + 64 (G - 1) - 16 k; column block i reads tokens s_i = tm0 + 64 i - dlt,
 * staged at ZERO + s_i: the descriptor starts at token 16 k of the staged run (16 units of 16 bytes
 * a step) and steps 1024 bytes a block.  Steps: tm0 / 16 + 4 G (dlt down to -48), a multiple of
 * 32, so of 2 U.  w: step 0's fragment word (lcw_group_word); dlo, dhi: the tile's descriptor. */
__device__ __forceinline__ int lcw_group_word(int base, int tm0, int warp, int lane_off) {
    return ((base - tm0 - 64 * (LCW_G - 1) - 16 * warp) >> 1) + lane_off;
}

template <int U, int S>
__device__ __forceinline__ void lcw_group(float (&acc)[LCW_G][4], const uint32_t *tapw, int w,
                                          uint32_t dlo, uint32_t dhi, int nsteps) {
#pragma unroll
    for (int i = 0; i < LCW_G; ++i)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[i][e] = 0.0f;
    wg_pin<LCW_G>(acc);
    if constexpr (S == 2) {
        uint32_t a[2][U][4];
        lcw_frags<U>(a[0], tapw + w);
        for (int k = 0; k < nsteps; k += 2 * U) {
            lcw_mma<U>(acc, a[0], dlo, dhi);
            wg_wait<1>();
            wg_pin_u32<U>(a[1]); /* its wgmmas are done */
            lcw_frags<U>(a[1], tapw + w + 8 * U);
            lcw_mma<U>(acc, a[1], dlo + 16u * U, dhi);
            wg_wait<1>();
            wg_pin_u32<U>(a[0]);
            lcw_frags<U>(a[0], tapw + w + 16 * U);
            w += 16 * U;
            dlo += 32u * U;
        }
    } else {
        /* three sets: batch j's fragments were loaded while batch j - 1 was issued, so the
         * loads' latency is behind a whole batch; the set of batch j - 1 (done at wait 1)
         * takes batch j + 2 */
        uint32_t a[3][U][4];
        lcw_frags<U>(a[0], tapw + w);
        lcw_frags<U>(a[1], tapw + w + 8 * U);
        const int nb = nsteps / U;
        for (int j = 0;; j += 3) {
            lcw_mma<U>(acc, a[0], dlo, dhi);
            wg_wait<1>();
            wg_pin_u32<U>(a[2]);
            lcw_frags<U>(a[2], tapw + w + 16 * U);
            if (j + 1 >= nb) break;
            lcw_mma<U>(acc, a[1], dlo + 16u * U, dhi);
            wg_wait<1>();
            wg_pin_u32<U>(a[0]);
            lcw_frags<U>(a[0], tapw + w + 24 * U);
            if (j + 2 >= nb) break;
            lcw_mma<U>(acc, a[2], dlo + 32u * U, dhi);
            wg_wait<1>();
            wg_pin_u32<U>(a[1]);
            lcw_frags<U>(a[1], tapw + w + 32 * U);
            if (j + 3 >= nb) break;
            w += 24 * U;
            dlo += 48u * U;
        }
    }
    wg_wait<0>();
    wg_pin<LCW_G>(acc);
}

/* y of a group: the G tiles (64 tokens x 8 rows each) scaled, rounded and transposed into the
 * tile yp in u's piece layout [token / 8][row][8 tokens] (a warp's 2-byte stores fall in 16
 * distinct words), then 16-byte rows of y (rows b0 + wtid % 8).  The first barrier: for a tile in
 * u (W = 1), every warp's share of the group's last wgmmas has read it; for a tile of its own, the
 * warpgroup's last group is out of it. */
template <typename Tout, int W>
__device__ __forceinline__ void lcw_store_group(const float (&acc)[LCW_G][4], float isc, uint4 *yp,
                                                const lct_params &prm, int c, int b0, int tm0,
                                                int wg, int wtid) {
    const int warp = wtid / 32, g = (wtid % 32) / 4, q = wtid % 4;
    uint16_t *ys = reinterpret_cast<uint16_t *>(yp);
    lcw_wg_sync<W>(wg);
#pragma unroll
    for (int i = 0; i < LCW_G; ++i)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const int tgi = 8 * i + 2 * warp + (e >> 1), row = 2 * q + (e & 1);
            ys[tgi * 64 + row * 8 + g] = lct_bits(from_f32<Tout>(acc[i][e] * isc));
        }
    lcw_wg_sync<W>(wg);
    const int my_b = b0 + wtid % LCW_NT;
    if (my_b < prm.B)
        for (int p = wtid; p < 64 * LCW_G; p += LCW_THREADS) {
            const int t = tm0 + (p / LCW_NT) * 8;
            if (t < prm.T) lct_store8<Tout>(prm, my_b, c, t, yp[p]);
        }
}

/* The lane's offset into the tap rows (v4's fragment algebra: E rows for even g, O for odd). */
__device__ __forceinline__ int lcw_lane_off(int TW, int lane) {
    const int g = lane / 4, q = lane % 4;
    return (g & 1) ? TW / 2 + (2 * q - g - 1) / 2 : (2 * q - g) / 2;
}

/* ---- the kernels ------------------------------------------------------------------------------
 * lcw_kernel: a block per (channel, 8 batch rows), W warpgroups sharing its staged u.  W = 1 runs
 * the groups from the last down and stages y in the u tokens the group has just finished with
 * (group tm0 reads no token >= tm0 + 512), so a block is taps + u only.  W = 2, 4 deal the groups
 * out in snake order (of the groups from the last down, warpgroup w takes ranks w, 2 W - 1 - w,
 * 2 W + w, ...: for W = 2 ranks 0, 3, 4, 7 and 1, 2, 5, 6, equal steps for 2 W k groups, as group g
 * runs 32 (g + 1) steps) and stage y in a tile each, since another warpgroup may still read any
 * token. */
template <typename Tin, typename Tout, int W, int S>
__global__ void __launch_bounds__(LCW_THREADS *W) lcw_kernel(const lct_params prm) {
    constexpr int U = LCW_U, NTHR = LCW_THREADS * W;
    extern __shared__ __align__(16) unsigned char lcw_smem[];
    const int TW = prm.TW, Tg = prm.tg;
    uint16_t *taps = reinterpret_cast<uint16_t *>(lcw_smem);
    uint16_t *us = taps + 2 * TW;
    uint4 *up = reinterpret_cast<uint4 *>(us); /* piece ((ZERO + s) / 8) * 8 + n = ZERO + p */
    const int tid = threadIdx.x;
    const int bt = blockIdx.x % prm.nbt, c = blockIdx.x / prm.nbt, b0 = bt * LCW_NT;

    lcw_stage_taps<NTHR>(taps, prm, c, tid);
    lcw_zero_ramp<NTHR>(up, tid);
    lcw_stage_u<Tin, NTHR>(up, prm, c, b0, tid);
    cp_async_commit();
    cp_async_wait<0>();
    lcw_convert_u<Tin, NTHR>(up, Tg, tid);
    wg_fence_proxy_smem(); /* the generic-proxy writes, before wgmma reads them */
    __syncthreads();

    const int wg = tid / LCW_THREADS, wtid = tid % LCW_THREADS, warp = wtid / 32;
    const int lane_off = lcw_lane_off(TW, tid % 32);
    const uint32_t *tapw = reinterpret_cast<const uint32_t *>(taps);
    const float isc = prm.inv_scale[c];
    const uint64_t desc_u = wg_desc(smem_u32(us), 128, 1024);
    const int ngroups = Tg / (64 * LCW_G);
    int step = 2 * (W - wg) - 1; /* to this warpgroup's next rank: 2 (W - wg) - 1, 2 wg + 1, ... */
    for (int rank = wg; rank < ngroups; rank += step, step = 2 * W - step) {
        const int tm0 = (ngroups - 1 - rank) * 64 * LCW_G;
        float acc[LCW_G][4];
        lcw_group<U, S>(acc, tapw, lcw_group_word(prm.base, tm0, warp, lane_off), (uint32_t)desc_u,
                        (uint32_t)(desc_u >> 32), tm0 / 16 + 4 * LCW_G);
        uint4 *yp = W == 1 ? up + LCW_ZERO + tm0 : up + LCW_ZERO + Tg + 64 * LCW_G * wg;
        lcw_store_group<Tout, W>(acc, isc, yp, prm, c, b0, tm0, wg, wtid);
    }
}

typedef void (*lcw_fn)(lct_params);

template <typename Tin, typename Tout> lcw_fn lcw_kernel_of(lcw_shape sh) {
    if (sh.w == 4) return lcw_kernel<Tin, Tout, 4, 3>;
    if (sh.w == 2) return lcw_kernel<Tin, Tout, 2, 3>;
    return sh.sets == 3 ? lcw_kernel<Tin, Tout, 1, 3> : lcw_kernel<Tin, Tout, 1, 2>;
}

/* The kernel a run takes: u_half / y_bf16 as lcw_launch's; NULL for bf16 u with fp16 y. */
lcw_fn lcw_pick(bool u_half, bool y_bf16, lcw_shape sh) {
    if (!u_half && y_bf16) return lcw_kernel_of<__nv_bfloat16, __nv_bfloat16>(sh);
    if (u_half && y_bf16) return lcw_kernel_of<__half, __nv_bfloat16>(sh);
    if (u_half) return lcw_kernel_of<__half, __half>(sh);
    return NULL;
}

} // namespace

bool lcw_usable(int dev) { return wg_unit_usable(dev); }

int lcw_prepare(int nt, int tw, int tg, lcw_shape sh) {
    if (nt != LCW_NT) BENCH_FAIL("long_conv_toeplitz v5: batch tile %d", nt);
    const int bytes = (int)lcw_smem_bytes(tw, tg, sh);
    const bool combos[3][2] = {{false, true}, {true, true}, {true, false}};
    for (const auto &cb : combos) { /* only raised: another plan of a longer T may share the kernel */
        const lcw_fn fn = lcw_pick(cb[0], cb[1], sh);
        cudaFuncAttributes attr;
        CUDA_CHECK(cudaFuncGetAttributes(&attr, fn));
        if (attr.maxDynamicSharedSizeBytes < bytes)
            CUDA_CHECK(cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
    }
    return 0;
}

int lcw_launch(int nt, lcw_shape sh, bool u_half, bool y_bf16, const lct_params &prm,
               cudaStream_t stream) {
    if (nt != LCW_NT) BENCH_FAIL("long_conv_toeplitz v5: batch tile %d", nt);
    const long long nblocks = (long long)prm.d * prm.nbt;
    if (nblocks > 0x7fffffffLL) BENCH_FAIL("long_conv_toeplitz v5: grid of %lld blocks", nblocks);
    const lcw_fn fn = lcw_pick(u_half, y_bf16, sh);
    if (!fn) BENCH_FAIL("long_conv_toeplitz v5: bf16 u with fp16 y is not a combination any run makes");
    const int bytes = (int)lcw_smem_bytes(prm.TW, prm.tg, sh);
    fn<<<(unsigned)nblocks, LCW_THREADS * sh.w, bytes, stream>>>(prm);
    CUDA_CHECK(cudaGetLastError());
    return 0;
}
