/* long_conv_toeplitz v5: the causal Toeplitz product Y_c = K_c U_c (kernels/long_conv_toeplitz.cu
 * has the algebra and v1..v4) on Hopper's warpgroup tensor cores, wgmma.m64nNk16 with the Toeplitz
 * operand in registers and u in shared memory.  Built for sm_90a (CMake's wgmma unit).
 *
 * Why: v4 (mma.sync) runs at ~350-390 TFLOP/s of executed MMA work, about 55 % of what mma.sync
 * can do on an H100 and a third of wgmma's dense fp16 rate; at T = 2k it is 4.3x its HBM floor.
 *
 * ---- the algorithm ---------------------------------------------------------------------------
 * Block = (channel c, NT batch rows); its u (NT x Tg tokens, fp16) stays in shared memory
 * (the block's 227 KiB bound Tg), in wgmma's K-major no-swizzle layout (the 16-byte piece of row n, tokens
 * 8 j .. 8 j + 7, is piece j NT + n), so the B operand of the k-step at token s is one
 * descriptor at byte 2 NT s.  N = NT: the batch rows are the product's columns.
 * A is the Toeplitz tile: 64 output tokens x 16 input tokens at lag dlt = t - s, built in
 * registers from the channel's fp16 tap rows exactly as v4 builds an mma.sync fragment (warp w
 * of the warpgroup holds rows 16 w .. 16 w + 15, i.e. lag dlt + 16 w; three 32-bit shared loads).
 * A group = G consecutive 64-token m-tiles of one warpgroup: G = 2 / 3 / 4 for NT = 64 / 32 / 16
 * (64 / 48 / 32 fp32 accumulators a thread; ptxas serialises the wgmmas of 4 x m64n32).  The warpgroup walks the lag downwards from tm0 + 64 (G - 1) to -48 in
 * steps of 16: at each lag ONE fragment feeds the wgmma of every m-tile of the group whose input
 * token s_i = tm_i - dlt is >= 0 (all of them after the first 4 (G - 1) steps).  So a
 * fragment's three loads serve G wgmmas, and the input tokens a step reads only grow.
 * Fragments are double-buffered in registers: step k's wgmmas run while step k+1's fragment is
 * loaded; wgmma.wait_group 1 frees the buffer of step k - 1 before it is overwritten.
 * Warps: 3 consumer warpgroups + 1 loader warpgroup (512 threads, so 128 registers a thread: a
 * fifth warpgroup would cap them at 96 and spill the accumulators).  The loaders stage u in
 * token order, 64-token chunks, each completed on its own mbarrier (cp.async, four 16 KiB
 * rounds in flight, bf16 converted to fp16 in place as a round lands); a consumer waits for the chunk of the highest token its next two steps read.  So
 * the block's compute starts after its first chunk, not after all of u.  The Tg / 64G groups
 * of a block are dealt longest first to the warpgroups in a snake (0 1 2 2 1 0 0 1 2 ...).
 * Epilogue per m-tile: accumulators x (1 / channel scale) -> run dtype -> the warpgroup's
 * staging tile [NT][72] (transposed) -> 16-byte rows of y; a named barrier per warpgroup.
 * Numerics: v4's (fp16 operands, taps scaled per channel by a power of two, fp32 sums).
 *
 * Shapes (65536 tokens a point): T = 1k: B = 64, NT = 64, G = 2 (8 groups); 2k: NT = 32, G = 3
 * (11 groups, Tg = 2112: 3 % of the work past T); 4k: B = 16, NT = 16, G = 4 (16 groups);
 * d = 1024 blocks, one an SM (7.8 waves).
 * Predicted (H100, bf16, d = 1024): executed MMA work 2 x 65536 x 1024 x (T/2 + 48) flops:
 * 72 / 141 / 278 GFLOP at 1k / 2k / 4k.  At ~600 TFLOP/s (wgmma at N <= 64, fed from registers
 * and shared memory, ~70 % of dense peak): 0.12 / 0.24 / 0.46 ms, plus a block's first chunk and
 * last epilogue (~3 us a wave, ~0.02 ms).  v4: 0.22 / 0.40 ms; the FFT path 0.63 at 4k.
 */
#include <cuda_runtime.h>
#include <stdint.h>

#include <type_traits>

#include "bench_check.h"
#include "long_conv_toeplitz_wgmma.h"
#include "mma_sync.cuh"
#include "wgmma.cuh"

namespace {

constexpr int LCW_WGS = 3;                                  /* consumer warpgroups          */
constexpr int LCW_LOADERS = 128;                            /* loader threads (a warpgroup) */
constexpr int LCW_THREADS = 128 * LCW_WGS + LCW_LOADERS;   /* 512: 128 registers a thread  */
constexpr size_t LCW_SMEM_MAX = 227 * 1024;                 /* an H100 block's shared memory */
constexpr int LCW_SPITCH = 72;                              /* staging pitch, = 8 (mod 64)  */
constexpr int LCW_PF = 4;    /* (row, 16 tokens) pairs a loader stages a round: 16 KiB a block */
constexpr int LCW_DEPTH = 4; /* rounds in flight (cp.async groups)                            */

/* m-tiles a group: the largest whose wgmma pipeline ptxas keeps without serialising (it does
 * serialise 4 x m64n32 with 64 accumulators, not 3, nor 2 x m64n64) */
__host__ __device__ constexpr int lcw_g(int nt) { return nt == 64 ? 2 : nt == 32 ? 3 : 4; }

/* Shared memory: [an mbarrier a 64-token chunk][taps E | O][u][staging, a tile a warpgroup]. */
__host__ __device__ constexpr int lcw_bar_bytes(int tg) { return (tg / 64 * 8 + 15) / 16 * 16; }
size_t lcw_smem_bytes(int nt, int tw, int tg) {
    return (size_t)lcw_bar_bytes(tg) + (size_t)2 * tw * 2 + (size_t)nt * tg * 2 +
           (size_t)LCW_WGS * nt * LCW_SPITCH * 2;
}

/* The Toeplitz fragment at word w0 of the tap rows (v4's algebra: m = dlt + g - 2q for the
 * rows g, m + 8 for rows g + 8, m - 8 for columns 2q + 8, and the fourth register = the first). */
__device__ __forceinline__ void lcw_frag(uint32_t (&a)[4], const uint32_t *tapw, int w0) {
    a[0] = tapw[w0];
    a[1] = tapw[w0 - 4];
    a[2] = tapw[w0 + 4];
    a[3] = a[0];
}

/* Where a warpgroup is in its walk down the lags of one group. */
struct lcw_walk {
    const uint32_t *tapw;
    int w0;        /* this lane's fragment word at the current step (+8 a step)            */
    int w0_last;   /* the walk's last step: reads past it are clamped there                 */
    uint32_t u_sa; /* shared address of u                                                    */
    int s_top;     /* input token of the group's last m-tile at the current step (+16)      */
    uint32_t bar_sa;
    int ready;     /* chunks of u known to have landed                                       */
};

/* Until u's chunk holding token tok has landed. */
__device__ __forceinline__ void lcw_need(lcw_walk &w, int tok) {
    const int ch = tok >> 6;
    while (w.ready <= ch) {
        mbar_wait(w.bar_sa + 8 * w.ready, 0);
        ++w.ready;
    }
}

/* One step's wgmmas: m-tiles P..G-1 of the group; tile i reads u at s_top - 64 (G - 1 - i). */
template <int P, int G, int NT>
__device__ __forceinline__ void lcw_issue(float (&acc)[G][NT / 8][4], const uint32_t (&a)[4],
                                          uint32_t u_sa, int s_top) {
    /* one descriptor; the tiles below are whole 64-token steps (8 NT in its 16-byte units)
     * before it, a constant subtracted from its address field (u lies below 256 KiB) */
    const uint64_t top = wg_desc(u_sa + (uint32_t)s_top * (2 * NT), 16 * NT, 128);
#pragma unroll
    for (int i = P; i < G; ++i)
        wgmma_rs<false, NT>(acc[i], a, top - (uint64_t)(8 * NT * (G - 1 - i)), 1);
}

/* Two steps: fragment buffer 0, then 1; each buffer is reloaded once the wgmmas that read it
 * have completed (wait_group 1 leaves only the step just issued in flight). */
template <int P, int G, int NT>
__device__ __forceinline__ void lcw_pair(float (&acc)[G][NT / 8][4], uint32_t (&a)[2][4],
                                         lcw_walk &w) {
    lcw_need(w, w.s_top + 31);
    wg_fence();
    lcw_issue<P, G, NT>(acc, a[0], w.u_sa, w.s_top);
    wg_commit();
    wg_wait<1>();
    wg_pin_u32<1>(*reinterpret_cast<uint32_t(*)[1][4]>(&a[1])); /* live until its wgmmas are done */
    lcw_frag(a[1], w.tapw, min(w.w0 + 8, w.w0_last));
    wg_fence();
    lcw_issue<P, G, NT>(acc, a[1], w.u_sa, w.s_top + 16);
    wg_commit();
    wg_wait<1>();
    wg_pin_u32<1>(*reinterpret_cast<uint32_t(*)[1][4]>(&a[0]));
    lcw_frag(a[0], w.tapw, min(w.w0 + 16, w.w0_last));
    w.w0 += 16;
    w.s_top += 32;
}

/* The first 4 (G - 1) steps, where m-tiles join one by one (phase P: tiles P..G-1, 4 steps). */
template <int P, int G, int NT> struct lcw_ramp {
    static __device__ __forceinline__ void run(float (&acc)[G][NT / 8][4], uint32_t (&a)[2][4],
                                               lcw_walk &w) {
        lcw_pair<P, G, NT>(acc, a, w);
        lcw_pair<P, G, NT>(acc, a, w);
        lcw_ramp<P - 1, G, NT>::run(acc, a, w);
    }
};
template <int G, int NT> struct lcw_ramp<0, G, NT> {
    static __device__ __forceinline__ void run(float (&)[G][NT / 8][4], uint32_t (&)[2][4],
                                               lcw_walk &) {}
};

/* Loader: pair p of the block's u -> batch row n and first token s (see the kernel). */
template <int NT> __device__ __forceinline__ void lcw_pair_at(int p, int &n, int &s) {
    const int ti = p / 32, l = p % 32;
    n = (ti % (NT / 8)) * 8 + l % 8;
    s = (ti / (NT / 8)) * 64 + (l / 8) * 16;
}

/* Loader: round p0's copies, each piece straight to its place in u, raw (cp.async; zero-filled
 * past B or T).  A piece that is partial (T not a multiple of 8, rows not 16-byte aligned) is
 * loaded and stored raw by the thread itself.  One cp.async group a round. */
template <int NT, typename Tin>
__device__ __forceinline__ void lcw_issue_round(const lct_params &prm, uint16_t *us, int c, int b0,
                                                int p0, int lt, int npairs) {
#pragma unroll
    for (int k = 0; k < LCW_PF; ++k) {
        const int p = p0 + lt + LCW_LOADERS * k;
        if (p >= npairs) continue;
        int n, s;
        lcw_pair_at<NT>(p, n, s);
        const int b = b0 + n;
        const Tin *xr = static_cast<const Tin *>(prm.x) + ((size_t)b * prm.d + c) * prm.T;
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int sp = s + 8 * h;
            uint4 *dst = reinterpret_cast<uint4 *>(us) + (sp / 8) * NT + n;
            if (b >= prm.B || sp >= prm.T)
                cp_async16(smem_u32(dst), prm.x, 0);
            else if (prm.vec && sp + 8 <= prm.T)
                cp_async16(smem_u32(dst), xr + sp, 16);
            else
                *dst = lct_load_group<Tin>(prm, c, b, sp);
        }
    }
    cp_async_commit();
}

/* Loader: round p0 has landed (this thread's pieces): bf16 converted in place to the fp16
 * operand, everything made visible to wgmma (async proxy), then an arrival on each chunk the
 * round completes. */
template <int NT, typename Tin>
__device__ __forceinline__ void lcw_finish_round(uint16_t *us, int p0, int lt, int npairs,
                                                 int nchunks, uint32_t bar_sa) {
    if (!std::is_same<Tin, __half>::value) {
#pragma unroll
        for (int k = 0; k < LCW_PF; ++k) {
            const int p = p0 + lt + LCW_LOADERS * k;
            if (p >= npairs) continue;
            int n, s;
            lcw_pair_at<NT>(p, n, s);
            uint4 *dst = reinterpret_cast<uint4 *>(us) + (s / 8) * NT + n;
            dst[0] = lct_operand<Tin>(dst[0]);
            dst[NT] = lct_operand<Tin>(dst[NT]);
        }
    }
    wg_fence_proxy_smem();
    const int j_end = min(nchunks, (p0 + LCW_LOADERS * LCW_PF) / (4 * NT));
    for (int j = p0 / (4 * NT); j < j_end; ++j) mbar_arrive(bar_sa + 8 * j);
}

template <int NT, typename Tin, typename Tout>
__global__ void __launch_bounds__(LCW_THREADS, 1) lcw_kernel(const lct_params prm) {
    constexpr int G = lcw_g(NT), NB = NT / 8;
    extern __shared__ __align__(16) unsigned char lcw_smem[];
    const int T = prm.T, TW = prm.TW, Tg = prm.tg, nchunks = Tg / 64, ngroups = Tg / (64 * G);
    uint16_t *taps = reinterpret_cast<uint16_t *>(lcw_smem + lcw_bar_bytes(Tg));
    uint16_t *us = taps + 2 * TW;
    uint16_t *stg = us + (size_t)NT * Tg;
    const uint32_t bar_sa = smem_u32(lcw_smem);

    const int tid = threadIdx.x;
    const int bt = blockIdx.x % prm.nbt, c = blockIdx.x / prm.nbt, b0 = bt * NT;

    {
        const uint4 *src = reinterpret_cast<const uint4 *>(prm.rows + (size_t)c * 2 * TW);
        for (int i = tid; i < TW / 4; i += LCW_THREADS) reinterpret_cast<uint4 *>(taps)[i] = src[i];
        if (tid == 0)
            for (int j = 0; j < nchunks; ++j) mbar_init(bar_sa + 8 * j, LCW_LOADERS);
    }
    __syncthreads();

    if (tid >= 128 * LCW_WGS) {
        /* Loaders.  Pair p (a row's 16 tokens, two pieces) in token order: 32 pairs = 8 rows x
         * 64 tokens, so a warp reads 128 contiguous bytes of each of 8 rows and writes 4 runs of
         * 128 contiguous bytes of shared memory; chunk j = pairs [4 NT j, 4 NT (j + 1)).  A round
         * = LCW_PF pairs a thread (16 KiB a block) as cp.async, LCW_DEPTH rounds in flight; a
         * round that has landed is converted in place and released. */
        const int lt = tid - 128 * LCW_WGS, npairs = NT * (Tg / 16);
        constexpr int ROUND = LCW_LOADERS * LCW_PF;
        const int nrounds = (npairs + ROUND - 1) / ROUND;
        for (int k = 0; k < nrounds + LCW_DEPTH - 1; ++k) {
            if (k < nrounds)
                lcw_issue_round<NT, Tin>(prm, us, c, b0, k * ROUND, lt, npairs);
            else
                cp_async_commit(); /* an empty group keeps the count */
            if (k >= LCW_DEPTH - 1) {
                cp_async_wait<LCW_DEPTH - 1>();
                lcw_finish_round<NT, Tin>(us, (k - LCW_DEPTH + 1) * ROUND, lt, npairs, nchunks,
                                          bar_sa);
            }
        }
        return;
    }

    const int warp = tid / 32, lane = tid % 32, g = lane / 4, q = lane % 4;
    const int wg = warp / 4, wq = warp % 4, wt = tid % 128;
    const int lane_off = (g & 1) ? TW / 2 + (2 * q - g - 1) / 2 : (2 * q - g) / 2;
    uint16_t *ws = stg + (size_t)wg * NT * LCW_SPITCH;
    const float isc = prm.inv_scale[c];
    lcw_walk w;
    w.tapw = reinterpret_cast<const uint32_t *>(taps);
    w.u_sa = smem_u32(us);
    w.bar_sa = bar_sa;
    w.ready = 0;
    /* groups from the longest down, dealt to the warpgroups in a snake (0 1 2 2 1 0 0 1 ...):
     * with 8 groups of cost 7.5, 6.5, ... 0.5 the loads are 11.5 / 10.5 / 10 */
    for (int kg = 0; kg < ngroups; ++kg) {
        const int pos = kg % LCW_WGS, owner = (kg / LCW_WGS) % 2 ? LCW_WGS - 1 - pos : pos;
        if (owner != wg) continue;
        const int tm0 = (ngroups - 1 - kg) * 64 * G;
        float acc[G][NB][4];
#pragma unroll
        for (int i = 0; i < G; ++i)
#pragma unroll
            for (int j = 0; j < NB; ++j)
#pragma unroll
                for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;
#pragma unroll
        for (int i = 0; i < G; ++i) wg_pin<NB>(acc[i]); /* zeroed before the walk's first fence */
        /* lag of warp wq at the first step: tm0 + 64 (G - 1) + 16 wq; at the last: -48 + 16 wq */
        w.w0 = ((prm.base - tm0 - 64 * (G - 1) - 16 * wq) >> 1) + lane_off;
        w.w0_last = ((prm.base + 48 - 16 * wq) >> 1) + lane_off;
        w.s_top = 0;
        uint32_t a[2][4];
        lcw_frag(a[0], w.tapw, w.w0);
        lcw_ramp<G - 1, G, NT>::run(acc, a, w);
        for (int k = 0; k < tm0 / 32 + 2; ++k) lcw_pair<0, G, NT>(acc, a, w);
        wg_wait<0>();
#pragma unroll
        for (int i = 0; i < G; ++i) wg_pin<NB>(acc[i]);

#pragma unroll
        for (int i = 0; i < G; ++i) {
            const int t_tile = tm0 + 64 * i;
            if (t_tile >= T) continue; /* uniform: the group's tiles past T */
            lct_acc_to_smem<1, NB, Tout>(*reinterpret_cast<const float(*)[1][NB][4]>(&acc[i]), isc,
                                         ws, LCW_SPITCH, 0, 16 * wq, g, q);
            named_bar_sync(1 + wg, 128);
            for (int gi = wt; gi < NT * 8; gi += 128) {
                const int row = gi / 8, t = t_tile + (gi % 8) * 8, b = b0 + row;
                if (b < prm.B && t < T)
                    lct_store8<Tout>(prm, b, c, t,
                                     *reinterpret_cast<const uint4 *>(ws + row * LCW_SPITCH + (gi % 8) * 8));
            }
            named_bar_sync(1 + wg, 128);
        }
    }
}

template <int NT> int lcw_prepare_t(size_t bytes) {
    CUDA_CHECK(cudaFuncSetAttribute(lcw_kernel<NT, __nv_bfloat16, __nv_bfloat16>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    CUDA_CHECK(cudaFuncSetAttribute(lcw_kernel<NT, __half, __half>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    CUDA_CHECK(cudaFuncSetAttribute(lcw_kernel<NT, __half, __nv_bfloat16>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    return 0;
}

template <int NT>
int lcw_launch_t(bool u_half, bool y_bf16, const lct_params &prm, cudaStream_t stream) {
    const long long nblocks = (long long)prm.d * prm.nbt;
    if (nblocks > 0x7fffffffLL) BENCH_FAIL("long_conv_toeplitz v5: grid of %lld blocks", nblocks);
    const size_t bytes = lcw_smem_bytes(NT, prm.TW, prm.tg);
    if (!u_half && y_bf16)
        lcw_kernel<NT, __nv_bfloat16, __nv_bfloat16><<<(unsigned)nblocks, LCW_THREADS, bytes, stream>>>(prm);
    else if (u_half && y_bf16)
        lcw_kernel<NT, __half, __nv_bfloat16><<<(unsigned)nblocks, LCW_THREADS, bytes, stream>>>(prm);
    else if (u_half)
        lcw_kernel<NT, __half, __half><<<(unsigned)nblocks, LCW_THREADS, bytes, stream>>>(prm);
    else
        BENCH_FAIL("long_conv_toeplitz v5: bf16 u with fp16 y is not a combination any run makes");
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

} // namespace

bool lcw_usable(int dev) {
#if defined(CHELA_WGMMA_BUILT)
    int major = 0, minor = 0;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess)
        return false;
    return major == 9 && minor == 0;
#else
    (void)dev;
    return false;
#endif
}

void lcw_geometry(int nt, int T, int *tg, int *base, int *tw) {
    const int span = 64 * lcw_g(nt);
    *tg = (T + span - 1) / span * span;
    /* lags read: tm0 + 64 (G - 1) + 48 + 15 at most (below Tg: i >= 65), down to -48 - 14 - 8
     * and one clamped step past it (i <= base + 62; O reads i + 1); TW = 32 (mod 64) as v4's */
    *base = *tg + 64;
    *tw = *tg + 224;
}

static bool lcw_fits(int nt, int T) {
    int tg, base, tw;
    lcw_geometry(nt, T, &tg, &base, &tw);
    return lcw_smem_bytes(nt, tw, tg) <= LCW_SMEM_MAX;
}

int lcw_nt(int B, int T) {
    int nt = 64;
    while (nt >= 16 && !lcw_fits(nt, T)) nt /= 2;
    if (nt < 16) return 0;
    while (nt > 16 && nt / 2 >= B && lcw_fits(nt / 2, T)) nt /= 2; /* no wider than B needs */
    return nt;
}

int lcw_prepare(int nt, int tw, int tg) {
    const size_t bytes = lcw_smem_bytes(nt, tw, tg);
    switch (nt) {
    case 64: return lcw_prepare_t<64>(bytes);
    case 32: return lcw_prepare_t<32>(bytes);
    case 16: return lcw_prepare_t<16>(bytes);
    }
    BENCH_FAIL("long_conv_toeplitz v5: batch tile %d", nt);
}

int lcw_launch(int nt, bool u_half, bool y_bf16, const lct_params &prm, cudaStream_t stream) {
    switch (nt) {
    case 64: return lcw_launch_t<64>(u_half, y_bf16, prm, stream);
    case 32: return lcw_launch_t<32>(u_half, y_bf16, prm, stream);
    case 16: return lcw_launch_t<16>(u_half, y_bf16, prm, stream);
    }
    BENCH_FAIL("long_conv_toeplitz v5: batch tile %d", nt);
}
