/* wgmma.cuh: Hopper warpgroup tensor-core primitives (wgmma.mma_async, sm_90a) as inline PTX, for
 * kernels whose A operand lives in registers (the FlashAttention-2 register trick carried over)
 * and whose B operand is a tile in shared memory in the canonical no-swizzle layout below.
 *
 * Fragment layouts (PTX ISA, wgmma .m64nNk16): warp w of the warpgroup owns rows 16w..16w+15 of
 * A and D, and inside its 16 rows the layouts are those of mma.m16n8k16 (mma_sync.cuh):
 *   A 64x16:  a[0] = A[g][2q..2q+1], a[1] = A[g+8][2q..], a[2] = A[g][2q+8..], a[3] = A[g+8][2q+8..]
 *   D 64xN:   d[j][0..1] = D[g][8j+2q..+1], d[j][2..3] = D[g+8][8j+2q..+1]   (j < N/8)
 * with g = lane / 4, q = lane % 4 and rows counted from 16w.
 *
 * B (K x N, "K-major": every column n of B has its K elements contiguous in 16-byte pieces).  The
 * no-swizzle canonical layout is built of core matrices of 8 columns n x 8 elements k, each 128
 * contiguous bytes (column n's 8 elements = 16 bytes, columns one after another).  Core matrix
 * (n / 8, k / 8) sits at byte (k / 8) * LBO + (n / 8) * SBO from the tile's start: LBO ("leading
 * dimension byte offset") steps along K, SBO ("stride dimension byte offset") along N.  The
 * tiles here put the N direction innermost: SBO = 128, LBO = 16 N (wg_kmajor_index).  One
 * instruction (k16) reads the two core-matrix columns k / 8 = 2s, 2s + 1 of k-step s: its
 * descriptor starts at tile + 2 s LBO.
 *
 * Ordering (PTX ISA): wgmma reads its register operands and shared memory asynchronously.
 *   wg_fence()        before the first wgmma that reads registers written since the last one
 *   wg_commit()       closes a group of issued wgmmas
 *   wg_wait<N>()      until at most N groups are pending; only then may their D (and A)
 *                     registers be touched: wg_pin() tells the compiler so
 *   shared memory written by the threads (st.shared, cp.async) must be made visible to the
 *   async proxy with wg_fence_proxy_smem() (each writer, then a barrier) before wgmma reads it.
 * Every function compiles to nothing outside sm_90a (__CUDA_ARCH_FEAT_SM90_ALL): callers check
 * wgmma_compiled() on the host-side plan before launching a kernel built on them. */
#ifndef CHELA_WGMMA_CUH
#define CHELA_WGMMA_CUH

#include <stdint.h>

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define CHELA_WGMMA_ON 1
#else
#define CHELA_WGMMA_ON 0
#endif

/* Host side: whether this translation unit's wgmma kernels can run on device dev: the unit was
 * built for sm_90a (CMake defines CHELA_WGMMA_BUILT then) and dev is compute capability 9.0,
 * the only one that runs sm_90a code.  Never launches anything. */
#ifdef __CUDACC__
#include <cuda_runtime_api.h>
static inline bool wg_unit_usable(int dev) {
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
#endif

/* Index (in 16-bit elements) of element (n, k) of an N x K tile in the layout above. */
__host__ __device__ constexpr int wg_kmajor_index(int n, int k, int N) {
    return ((k >> 3) * (N >> 3) + (n >> 3)) * 64 + (n & 7) * 8 + (k & 7);
}

/* Descriptor of a no-swizzle K-major tile at shared address saddr (16-byte aligned). */
__device__ __forceinline__ uint64_t wg_desc(uint32_t saddr, uint32_t lbo, uint32_t sbo) {
    return (uint64_t)((saddr >> 4) & 0x3FFFu) | ((uint64_t)((lbo >> 4) & 0x3FFFu) << 16) |
           ((uint64_t)((sbo >> 4) & 0x3FFFu) << 32); /* base offset 0, swizzle mode 0 */
}

__device__ __forceinline__ void wg_fence() {
#if CHELA_WGMMA_ON
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void wg_commit() {
#if CHELA_WGMMA_ON
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}
template <int N> __device__ __forceinline__ void wg_wait() {
#if CHELA_WGMMA_ON
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#endif
}
__device__ __forceinline__ void wg_fence_proxy_smem() {
#if CHELA_WGMMA_ON
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}
/* Bulk copies into shared memory completed on an mbarrier (sm_90: the copy engine moves a
 * contiguous run of bytes, one instruction from one thread, instead of a cp.async per 16 bytes
 * per thread; its writes belong to the async proxy, which wgmma reads, so no proxy fence).
 *   mbar_init       one thread, before the block's first barrier; count = expected arrivals
 *   mbar_expect_tx  the issuing thread's arrival, announcing the bytes the copies will bring
 *   bulk_g2s        dst, src 16-byte aligned, bytes a multiple of 16
 *   mbar_wait       every consumer, with the phase parity of the use it waits for */
__device__ __forceinline__ void mbar_init(uint32_t bar, int count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes)
                 : "memory");
}
__device__ __forceinline__ void bulk_g2s(uint32_t dst, const void *src, uint32_t bytes,
                                         uint32_t bar) {
    asm volatile(
        "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n"
        ::"r"(dst), "l"(src), "r"(bytes), "r"(bar)
        : "memory");
}
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
    asm volatile(
        "{\n.reg .pred done;\nLAB_WAIT:\n"
        "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
        "@!done bra LAB_WAIT;\n}\n" ::"r"(bar),
        "r"(parity)
        : "memory");
}

/* Keeps the compiler from moving or reading accumulators while a wgmma may write them. */
template <int ROWS> __device__ __forceinline__ void wg_pin(float (&d)[ROWS][4]) {
#pragma unroll
    for (int j = 0; j < ROWS; ++j)
        asm volatile("" : "+f"(d[j][0]), "+f"(d[j][1]), "+f"(d[j][2]), "+f"(d[j][3])::"memory");
}

/* The same for register operands (wgmma A fragments) read by wgmmas still in flight. */
template <int R> __device__ __forceinline__ void wg_pin_u32(uint32_t (&x)[R][4]) {
#pragma unroll
    for (int i = 0; i < R; ++i)
        asm volatile("" : "+r"(x[i][0]), "+r"(x[i][1]), "+r"(x[i][2]), "+r"(x[i][3])::"memory");
}

/* D (64 x N, fp32) = A (64 x 16, registers) B (16 x N, shared, desc_b) + (scale_d ? D : 0);
 * BF16 picks bf16 operands, else fp16.  N = 64 or 128. */
template <bool BF16, int N>
__device__ __forceinline__ void wgmma_rs(float (&d)[N / 8][4], const uint32_t (&a)[4],
                                         uint64_t desc_b, int scale_d);

#if CHELA_WGMMA_ON
/* One specialisation per (operand type, N): the accumulator list is N/2 registers long. */
#define WG_D4(j) "+f"(d[j][0]), "+f"(d[j][1]), "+f"(d[j][2]), "+f"(d[j][3])
#define WG_D32 WG_D4(0), WG_D4(1), WG_D4(2), WG_D4(3), WG_D4(4), WG_D4(5), WG_D4(6), WG_D4(7)
#define WG_D64 WG_D32, WG_D4(8), WG_D4(9), WG_D4(10), WG_D4(11), WG_D4(12), WG_D4(13), \
               WG_D4(14), WG_D4(15)
#define WG_R32 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
#define WG_R64 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
#define WG_RS(BF, TY, N, DREGS, DLIST, A0, A1, A2, A3, DESC, SCALE)                                \
    template <> __device__ __forceinline__ void wgmma_rs<BF, N>(                                  \
        float(&d)[N / 8][4], const uint32_t(&a)[4], uint64_t desc_b, int scale_d) {                \
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, " SCALE ", 0;\n"                             \
                     "wgmma.mma_async.sync.aligned.m64n" #N "k16.f32." TY "." TY " " DREGS        \
                     "{" A0 ", " A1 ", " A2 ", " A3 "}, " DESC ", p, 1, 1, 0;\n}\n"                \
                     : DLIST                                                                      \
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d)      \
                     : "memory");                                                                 \
    }
WG_RS(false, "f16", 64, WG_R32, WG_D32, "%32", "%33", "%34", "%35", "%36", "%37")
WG_RS(true, "bf16", 64, WG_R32, WG_D32, "%32", "%33", "%34", "%35", "%36", "%37")
WG_RS(false, "f16", 128, WG_R64, WG_D64, "%64", "%65", "%66", "%67", "%68", "%69")
WG_RS(true, "bf16", 128, WG_R64, WG_D64, "%64", "%65", "%66", "%67", "%68", "%69")
#undef WG_RS
#undef WG_R64
#undef WG_R32
#undef WG_D64
#undef WG_D32
#undef WG_D4
#else
template <bool BF16, int N>
__device__ __forceinline__ void wgmma_rs(float (&)[N / 8][4], const uint32_t (&)[4], uint64_t,
                                         int) {}
#endif

#endif
