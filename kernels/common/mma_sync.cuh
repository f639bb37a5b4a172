/* mma_sync.cuh: the warp-level tensor-core primitives (sm_80+ mma.sync, ldmatrix) as inline PTX,
 * for kernels that feed the tensor cores from registers and padded shared memory.
 *
 * Fragment layouts (PTX ISA, mma.m16n8k16 with .row.col), lane l, g = l / 4, q = l % 4:
 *   A 16x16 row-major: a[0] = A[g][2q..2q+1], a[1] = A[g+8][2q..], a[2] = A[g][2q+8..],
 *                      a[3] = A[g+8][2q+8..]            (low half of each register first)
 *   B 16x8 col-major:  b0 = B[2q..2q+1][g], b1 = B[2q+8..2q+9][g]
 *   D 16x8 fp32:       d[0..1] = D[g][2q..2q+1], d[2..3] = D[g+8][2q..2q+1] */
#ifndef CHELA_MMA_SYNC_CUH
#define CHELA_MMA_SYNC_CUH

#include <stdint.h>

/* A shared-memory address as ldmatrix takes it. */
__device__ __forceinline__ uint32_t smem_u32(const void *p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}

/* 16-byte global->shared copy (cp.async, sm_80); src_bytes < 16 zero-fills the rest of the
 * destination (0: all of it).  Completion per thread: cp_async_commit() closes a group,
 * cp_async_wait<N>() waits until at most N of the thread's groups are still in flight. */
__device__ __forceinline__ void cp_async16(uint32_t dst, const void *src, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
                 "r"(src_bytes)
                 : "memory");
}
__device__ __forceinline__ void cp_async_commit() {
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}
template <int N> __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

/* Four 8x8 b16 matrices; lanes 8i..8i+7 give the row addresses of matrix i, register i of lane l
 * receives row l/4, elements 2(l%4), 2(l%4)+1 of matrix i. */
__device__ __forceinline__ void ldsm_x4(uint32_t r[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr)
                 : "memory");
}

/* As ldsm_x4, each matrix transposed. */
__device__ __forceinline__ void ldsm_x4_trans(uint32_t r[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr)
                 : "memory");
}

/* Stores four 8x8 b16 matrices transposed (sm_90): register i of lane l holds row l/4,
 * elements 2(l%4), 2(l%4)+1 of matrix i (an mma D fragment packed to 16 bits); lanes
 * 8i..8i+7 give the shared addresses of the 8 destination rows of matrix i, each of which
 * receives one column of it. */
__device__ __forceinline__ void stsm_x4_trans(uint32_t addr, uint32_t r0, uint32_t r1, uint32_t r2,
                                              uint32_t r3) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("stmatrix.sync.aligned.m8n8.x4.trans.shared.b16 [%0], {%1, %2, %3, %4};\n" ::"r"(
                     addr),
                 "r"(r0), "r"(r1), "r"(r2), "r"(r3)
                 : "memory");
#endif
}

/* d += a b, m16n8k16, bf16 (BF16) or fp16 operands, fp32 accumulators. */
template <bool BF16>
__device__ __forceinline__ void mma_16816(float d[4], const uint32_t a[4], uint32_t b0,
                                          uint32_t b1) {
    if (BF16) {
        asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
            "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    } else {
        asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, "
            "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
}

#endif
