/* flash_common.cuh: the device helpers softmax_attn/flash's forward (flash.cu) and backward
 * (flash_bwd.cu) share: the swizzled [rows][D] shared-memory tile, its cp.async loader, the
 * bf16/fp16 operand packing of mma.sync and the SFU's 2^x.  Each includer gets its own copy
 * (an unnamed namespace): the kernels of both files inline them. */
#ifndef CHELA_SOFTMAX_ATTN_FLASH_COMMON_CUH
#define CHELA_SOFTMAX_ATTN_FLASH_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stddef.h>
#include <stdint.h>

#include "common/mma_sync.cuh" /* cp.async (zero-fill form, .cg: past L1), ldmatrix, mma */

namespace {

/* Byte offset of 16-byte chunk `chunk` of row `row` in a [rows][D] bf16 tile. The chunk index
 * is XORed with row & 7, so the 8 rows of an ldmatrix 8x8 matrix (same logical chunk, 8
 * consecutive rows) hit 8 different 16-byte bank groups. Only the low 3 bits of the chunk
 * change, so the result stays inside the row for D = 64 (8 chunks) and D = 128 (16). */
template <int D> __device__ __forceinline__ uint32_t swz(int row, int chunk) {
    return (uint32_t)(row * (D * 2) + ((chunk ^ (row & 7)) << 4));
}

/* D(16x8, f32) += A(16x16, row) * B(16x8, col) is mma_sync.cuh's mma_16816<BF16>.  Fragments
 * (g = lane / 4, t = lane % 4):
 *   A: a[0] = (row g,   k 2t..2t+1)  a[1] = (row g+8, k 2t..2t+1)
 *      a[2] = (row g,   k 2t+8..+9)  a[3] = (row g+8, k 2t+8..+9)    (low half = lower k)
 *   B: b0 = (k 2t..2t+1, n g)        b1 = (k 2t+8..2t+9, n g)
 *   C: c[0..1] = (row g, n 2t..2t+1) c[2..3] = (row g+8, n 2t..2t+1)
 * mma_op<T>: T's operand flag for it, and the packing of two fp32 C values into one 32-bit
 * A-operand register of T. */
template <typename T> struct mma_op;
template <> struct mma_op<__nv_bfloat16> {
    static constexpr bool BF16 = true;
    /* lo -> low 16 bits (the lower column index of the fragment pair) */
    static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
        uint32_t r;
        asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
        return r;
    }
};
template <> struct mma_op<__half> {
    static constexpr bool BF16 = false;
    static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
        uint32_t r;
        asm("cvt.rn.f16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
        return r;
    }
};

/* 2^x on the SFU; ftz is harmless (probabilities below 2^-126 are noise) and -inf -> +0. */
__device__ __forceinline__ float ex2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

/* Copies rows [row0, row0 + ROWS) of a head's [T][D] matrix, rows ld elements apart (ld = D
 * when packed, a compile-time constant then), into a swizzled smem tile, NTHREADS threads
 * sharing the copy; rows >= T are zero-filled (src-size 0; the source address is then the
 * head's first row, a valid dummy). Consecutive threads take consecutive 16-byte chunks of a
 * row: a warp moves 512 contiguous bytes. Thread tid always owns chunk c = tid % CPR of rows
 * r + i * RSTEP, and RSTEP is a multiple of 8, so the swizzle of each of its rows is the same and every address
 * is one base plus a compile-time offset: no per-row pointers stay live across the main loop
 * (they did, and spilled, in the first draft of the D = 128 kernel). */
template <typename T, int D, int ROWS, int NTHREADS>
__device__ __forceinline__ void load_tile(uint32_t s_tile, const T *g_head, size_t ld, int row0,
                                          int seqlen, int tid) {
    constexpr int CPR = D / 8;
    constexpr int RSTEP = NTHREADS / CPR; /* rows covered by one pass of the block */
    static_assert(RSTEP % 8 == 0 && ROWS % RSTEP == 0, "loader assumes whole 8-row swizzle groups");
    const int r = tid / CPR, c = tid % CPR;
    const int grow = row0 + r;
    const T *src = g_head + (size_t)grow * ld + c * 8; /* only dereferenced when in range */
    const uint32_t dst = s_tile + swz<D>(r, c);
#pragma unroll
    for (int i = 0; i < ROWS / RSTEP; i++) {
        const bool ok = grow + i * RSTEP < seqlen;
        cp_async16(dst + i * RSTEP * D * 2, ok ? src + i * RSTEP * ld : g_head, ok ? 16 : 0);
    }
}

} // namespace

#endif
