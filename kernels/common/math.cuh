/* math.cuh: the device math every kernel shares, defined once.
 *
 * SiLU and the sigmoid use __fdividef: the IEEE divide costs ~10 instructions where every
 * element takes one, and __fdividef is within 2 ulp for 1 + e^-x < 2^126 and gives 0 beyond,
 * where the true values are below 1e-37 in magnitude (x finite); the rounding to bf16 that
 * follows is 2^-8.  (The fp32 oracles, which are the yardstick, keep IEEE expf and divides
 * of their own: harness/oracle_*.cu.) */
#ifndef CHELA_COMMON_MATH_CUH
#define CHELA_COMMON_MATH_CUH

__device__ __forceinline__ float silu(float x) { return __fdividef(x, 1.0f + __expf(-x)); }
__device__ __forceinline__ float sigm(float x) { return __fdividef(1.0f, 1.0f + __expf(-x)); }

/* The sum of v over the warp, in every lane (xor butterfly). */
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

#endif
