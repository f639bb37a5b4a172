/* prims.cuh: the device vocabulary every linear_attn/chunked kernel shares: block geometry, the
 * few primitives kernels/common/ does not have, 16-bit conversions, and where a block of pass A
 * or pass C sits in its grid.  Included by each kernel file (v1.cu, v2.cu, v3.cu, v6_wgmma.cu,
 * scan.cu); everything here has internal linkage, so each translation unit keeps its own copy
 * and no kernel is compiled twice.
 *
 * Build hook: with LAC_EMULATE the device primitives (smem_u32, cp_async16, ldsm_x4, mma_16816,
 * the shuffles) are left to an includer that runs the kernels on the CPU to check their index
 * algebra without a GPU, as v2 was first checked; tests/emu/ is such an includer, used by
 * tests/test_emu_linear_attn_bwd.cpp for the backward's kernels (bwd_mma.cu). */
#ifndef CHELA_LINEAR_ATTN_PRIMS_CUH
#define CHELA_LINEAR_ATTN_PRIMS_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "common/math.cuh"
#ifndef LAC_EMULATE
#include "common/mma_sync.cuh"
#endif
#include "linear_attn/args.h"
#include "linear_attn/plan.h" /* LAC_C, LAC_DVS: the plan's units */

#ifndef LAC_STATE_HILO
#define LAC_STATE_HILO 1      /* v2 bf16: Q S with S split into bf16 hi + lo (two MMAs)      */
#endif
#ifndef LAC_A_F16
#define LAC_A_F16 1           /* v2 bf16: A = mask(Q K^T) kept as fp16, V^T converted to fp16 */
#endif
#define LAC_WARPS 4           /* v2+: warps per block, each owning 16 value rows of S^T     */
#define LAC_THREADS 128       /* v2+: threads per block                                     */
#define LAC_PAD 8             /* v2+: smem row padding in 16-bit elements (16 B)            */
#define LAC_V1_TILE 16        /* v1: tokens staged in shared memory at a time               */
#define LAC_SCAN_THREADS 256
#define LAC_NORM_ROWS 8       /* rmsnorm: rows (warps) per block                            */

/* Kernels and helpers have internal linkage: other variants in the binary have their own. */
namespace {

static_assert(LAC_C == 16 * LAC_WARPS && LAC_DVS == 16 * LAC_WARPS, "v2 warp tiling");
static_assert(LAC_THREADS == 32 * LAC_WARPS, "v2 block size");

/* ---- device primitives ----------------------------------------------------------------------
 * ldmatrix, mma.sync, cp.async and SiLU come from kernels/common/ (mma_sync.cuh, math.cuh);
 * these are the ones only this op uses. */
#ifndef LAC_EMULATE
#define LAC_DYNAMIC_SMEM(name) extern __shared__ __align__(16) unsigned char name[]
__device__ __forceinline__ float lac_shfl_xor(float x, int mask) {
    return __shfl_xor_sync(0xffffffffu, x, mask);
}

/* Brings one 128-byte line toward L2 without waiting for it (no register is written). */
__device__ __forceinline__ void lac_prefetch_l2(const void *p) {
    asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p));
}

/* Programmatic dependent launch: a kernel launched with the PDL attribute (pdl_launch) may be
 * scheduled while the kernel before it drains; it waits here, before reading anything that
 * kernel wrote, until that kernel has completed and its writes are visible.  A no-op when
 * launched without the attribute, and below sm_90. */
__device__ __forceinline__ void lac_grid_dep_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}
#else
__device__ __forceinline__ void lac_prefetch_l2(const void *) {}
__device__ __forceinline__ void lac_grid_dep_wait() {}
#endif /* LAC_EMULATE */

__host__ __device__ __forceinline__ int lac_min(int a, int b) { return a < b ? a : b; }

/* ---- dtype helpers: bf16 / fp16 travel as raw 16-bit words ----------------------------------- */
template <bool BF16> __device__ __forceinline__ uint16_t lac_cvt(float x) {
    if (BF16) return __bfloat16_as_ushort(__float2bfloat16_rn(x));
    return __half_as_ushort(__float2half_rn(x));
}

template <bool BF16> __device__ __forceinline__ float lac_f32(uint16_t b) {
    if (BF16) return __uint_as_float((uint32_t)b << 16);
    return __half2float(__ushort_as_half(b));
}

/* (lo, hi) -> one 32-bit register, lo in the low half: the order mma fragments use. */
template <bool BF16> __device__ __forceinline__ uint32_t lac_pack(float lo, float hi) {
    return (uint32_t)lac_cvt<BF16>(lo) | ((uint32_t)lac_cvt<BF16>(hi) << 16);
}

/* A pair of fp32 values as bf16 hi + bf16 lo (x ~ hi + lo to ~2^-16 relative). */
__device__ __forceinline__ void lac_split_bf16(float x, float y, uint32_t &hi, uint32_t &lo) {
    const uint16_t hx = lac_cvt<true>(x), hy = lac_cvt<true>(y);
    hi = (uint32_t)hx | ((uint32_t)hy << 16);
    lo = lac_pack<true>(x - lac_f32<true>(hx), y - lac_f32<true>(hy));
}

/* bf16x2 -> fp16x2 (exact for |x| in fp16's normal range). */
__device__ __forceinline__ uint32_t lac_bf16x2_to_f16x2(uint32_t u) {
    return lac_pack<false>(__uint_as_float(u << 16), __uint_as_float(u & 0xffff0000u));
}

/* Storage per dtype_t value (0 fp32, 1 bf16, 2 fp16), for v1 and the norm pass. */
template <int DT> struct lac_io {
    typedef uint16_t s_t;
    static __device__ __forceinline__ float ld(s_t x) { return lac_f32<DT == 1>(x); }
    static __device__ __forceinline__ s_t st(float x) { return lac_cvt<DT == 1>(x); }
};
template <> struct lac_io<0> {
    typedef float s_t;
    static __device__ __forceinline__ float ld(float x) { return x; }
    static __device__ __forceinline__ float st(float x) { return x; }
};

/* ---- where a block sits --------------------------------------------------------------------- */

/* Grids of passes A and C: blockIdx.x = (bh * per_bh + idx) * nslices + slice, the slice
 * fastest so that the blocks re-reading one chunk's q and k run together. */
__device__ __forceinline__ void lac_grid_place(const lac_args &a, int per_bh, int &slice,
                                               int &idx, int64_t &bh) {
    slice = blockIdx.x % a.nslices;
    const int rest = blockIdx.x / a.nslices;
    idx = rest % per_bh;
    bh = rest / per_bh;
}

/* A pass-A block's place: grid = B*H*ws_per_bh*nslices (slice fastest); part u of (b,h)
 * covers chunks [c_begin, c_end) of segment u / sub (empty past the sequence's end). */
struct lac_part {
    int slice, u, c_begin, c_end;
    int64_t bh;
};
__device__ __forceinline__ lac_part lac_part_of(const lac_args &a) {
    lac_part k;
    lac_grid_place(a, a.ws_per_bh, k.slice, k.u, k.bh);
    const int nchunks = (a.T + LAC_C - 1) / LAC_C;
    const int seg = k.u / a.sub, part = k.u % a.sub;
    const int seg_end = lac_min((seg + 1) * a.seg_chunks, nchunks);
    k.c_begin = lac_min(seg * a.seg_chunks + part * a.sub_chunks, seg_end);
    k.c_end = lac_min(k.c_begin + a.sub_chunks, seg_end);
    return k;
}

/* A pass-C block's place: grid = B*H*nseg*nslices with the slice fastest (v2, v3, v6). */
struct lac_block {
    int slice, seg, nchunks, c_begin, c_end;
    int64_t bh, row0; /* (b*H + h) and its first token row */
};
__device__ __forceinline__ lac_block lac_block_of(const lac_args &a) {
    lac_block k;
    lac_grid_place(a, a.nseg, k.slice, k.seg, k.bh);
    k.nchunks = (a.T + LAC_C - 1) / LAC_C;
    k.c_begin = k.seg * a.seg_chunks;
    k.c_end = lac_min(k.c_begin + a.seg_chunks, k.nchunks);
    k.row0 = k.bh * a.T;
    return k;
}

} /* namespace */

#endif
