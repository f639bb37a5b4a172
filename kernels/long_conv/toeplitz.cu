/* long_conv/toeplitz.cu: the Toeplitz engine (toeplitz.h), the causal depthwise long convolution
 * as a lower-triangular Toeplitz matrix times the input, on tensor cores.  long_conv_fast runs
 * it for bf16 / fp16 at short T (plan.c says where).
 *
 *   Y_c = K_c U_c,   K_c[t][s] = k[c, t-s] (0 for s > t),   U_c [T x B] = u[b,c,:] as columns
 *
 * Why a T x T product at all: per output the direct sum costs T MACs, the FFT route ~10 log2(2T)
 * fp32 flops on CUDA cores plus a shared-memory pass per radix stage.  At T = 1k that is 1024
 * MACs on tensor cores (~660 TFLOP/s with mma.sync on an H100) against ~110 flops on CUDA cores
 * (~25 effective TFLOP/s measured for long_conv_fast v3): the product is ~2.5x cheaper in time,
 * and its cost grows as T, so it loses again somewhere past 2k (the crossover is measured).
 *
 * This file is the host side: create() makes the fp16 tap rows and sets the shared-memory
 * limits of the kernel the plan (lct_plan_t) picks; run() enqueues the prologue pass where
 * there is one, then that kernel: v3 / v4 (mma.sync, toeplitz_kernels.cuh, which has the
 * algorithm) or v5 (wgmma, toeplitz_wgmma.cu).  Versions: fast.cu's index; their numbers:
 * profiles/NOTES.md (long_conv).
 *
 * Numerics: both MMA operands are fp16, whatever the run dtype.  The taps are rounded to fp16
 * after a per-channel power-of-two scale that puts max|k_c| in [2^14, 2^15) (small taps would
 * otherwise become subnormal; the scale is exact to undo); u is x (fp16 runs: as is; bf16 runs:
 * converted, exact for 2^-14 <= |x| < 65520 since bf16's 8-bit significand fits fp16's 11) or
 * SiLU(...) rounded to fp16; the sum is fp32, the output rounded once to the run dtype.
 * Limit: a bf16 u with |u| >= 65520 has no fp16 value: it becomes inf and its outputs inf/NaN
 * (loud, never a plausible wrong number); --set lcf_toeplitz_max_t=0 keeps the FFT path, which
 * has no such limit.  CHELA's u = SiLU(short conv of LayerNorm(x)) is bounded far below that.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdlib.h>

#include <type_traits>

#include "bench_check.h"
#include "long_conv/toeplitz.h"
#include "long_conv/toeplitz_kernels.cuh"
#include "long_conv/toeplitz_wgmma.h"

struct long_conv_toeplitz {
    lct_plan_t plan;        /* the kernel, its batch tile, the tap-row geometry (plan.h)   */
    uint16_t *d_rows;       /* [d][E | O], taps * scale as fp16; TW = 32 (mod 64) each     */
    float *d_inv_scale;     /* [d], 1 / scale (a power of two)                             */
    uint16_t *d_u16;        /* [B,d,T] fp16: u = SiLU(pre3 * x) when run with the prologue  */
};

namespace {

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
