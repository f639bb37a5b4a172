/* cuda_runtime.h (CPU emulation, tests/emu/): what a kernel file of kernels/linear_attn/ needs
 * to compile as host C++ and run on the CPU (prims.cuh's LAC_EMULATE hook): the CUDA keywords
 * as nothing, the vector types, and the device primitives (mma_sync.cuh's, emulated in
 * warp_emu.cpp).  A block runs as one std::thread a CUDA thread; __syncthreads is a barrier of
 * the block, and each warp collective (ldmatrix, mma) a barrier of its 32 lanes around an
 * exchange, so that a lane left out of a collective deadlocks instead of passing.  cp.async
 * copies at once (its wait is then trivially satisfied); __shfl_xor_sync is an exchange of
 * the 32 lanes too.  A static __shared__ array is a function-local static: shared by the
 * block's threads, and blocks run one at a time.  Slow (a barrier a collective), for the
 * index algebra of small shapes. */
#ifndef CHELA_EMU_CUDA_RUNTIME_H
#define CHELA_EMU_CUDA_RUNTIME_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <atomic>

#include "cuda_bf16.h"
#include "cuda_runtime_api.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __align__(n) alignas(n)
#define __launch_bounds__(...)
#define __expf emu_expf /* glibc declares its own __expf */

struct uint3 {
    unsigned x, y, z;
};
struct float2 {
    float x, y;
};
struct float4 {
    float x, y, z, w;
};
struct uint4 {
    uint32_t x, y, z, w;
};
struct uint2 {
    uint32_t x, y;
};
static inline float2 make_float2(float a, float b) { return {a, b}; }
static inline float4 make_float4(float a, float b, float c, float d) { return {a, b, c, d}; }
static inline uint4 make_uint4(uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
    return {a, b, c, d};
}

extern thread_local uint3 threadIdx; /* set by emu_launch for each thread */
extern uint3 blockIdx;               /* one block at a time                */
extern uint3 gridDim;                /* set by emu_launch                  */
extern uint3 blockDim;               /* set by emu_launch                  */
extern unsigned char *emu_smem;      /* that block's dynamic shared memory */

void emu_syncthreads(void);
void emu_syncwarp(void);
void emu_ldsm(uint32_t r[4], uint32_t addr, bool trans);
void emu_mma(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1, bool bf16);

static inline void __syncthreads() { emu_syncthreads(); }
static inline void __syncwarp(unsigned = 0xffffffffu) { emu_syncwarp(); }
static inline float emu_expf(float x) { return expf(x); }
static inline float __fdividef(float a, float b) { return a / b; }
float emu_shfl_xor(float v, int mask);
static inline float __shfl_xor_sync(unsigned, float v, int mask) { return emu_shfl_xor(v, mask); }
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
template <class T> static inline T __ldg(const T *p) { return *p; }
static inline float atomicAdd(float *p, float v) { return std::atomic_ref<float>(*p).fetch_add(v); }

/* prims.cuh leaves these to the includer under LAC_EMULATE */
#define LAC_DYNAMIC_SMEM(name) unsigned char *name = emu_smem
static inline float lac_shfl_xor(float x, int) { return x; } /* not emulated */

/* mma_sync.cuh's primitives: shared addresses are offsets into emu_smem */
static inline uint32_t smem_u32(const void *p) {
    return (uint32_t)((const unsigned char *)p - emu_smem);
}
static inline void cp_async16(uint32_t dst, const void *src, int src_bytes) {
    memset(emu_smem + dst, 0, 16);
    if (src_bytes) memcpy(emu_smem + dst, src, (size_t)src_bytes);
}
static inline void cp_async_commit() {}
template <int N> static inline void cp_async_wait() {}
static inline void ldsm_x4(uint32_t r[4], uint32_t addr) { emu_ldsm(r, addr, false); }
static inline void ldsm_x4_trans(uint32_t r[4], uint32_t addr) { emu_ldsm(r, addr, true); }
static inline void stsm_x4_trans(uint32_t, uint32_t, uint32_t, uint32_t, uint32_t) {} /* unused */
template <bool BF16>
static inline void mma_16816(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    emu_mma(d, a, b0, b1, BF16);
}

/* Runs `grid` blocks of `threads` threads (at most 1024), one block at a time, each thread
 * calling body(); smem bytes of shared memory, filled with 0xAB first (a read before a write
 * shows as garbage). */
#include <functional>
void emu_launch(unsigned grid, int threads, size_t smem, const std::function<void()> &body);
/* The same over a grid of grid_x x grid_y blocks (blockIdx.y outer). */
void emu_launch2(unsigned grid_x, unsigned grid_y, int threads, size_t smem,
                 const std::function<void()> &body);

#endif
