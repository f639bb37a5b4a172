/* tensor_init.h: the value of one input element, identical on host and device.
 *
 * The harness fills device buffers with a kernel and the CPU reference fills its
 * host copy with a loop; both call tensor_init_value() and the integer rounding
 * below, so the reference sees bit-for-bit what the GPU saw.  (We do not use
 * __float2bfloat16 on the device for this: its host twin would be a different
 * code path and a mismatch would look like a kernel bug.) */
#ifndef CHELA_TENSOR_INIT_H
#define CHELA_TENSOR_INIT_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "op.h"
#include "rng.h"

#if defined(__CUDACC__)
#define TI_FN static inline __host__ __device__
#else
#define TI_FN static inline
#endif

TI_FN uint32_t ti_f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
TI_FN float ti_u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* float -> bf16 bits, round to nearest even (inputs are finite). */
TI_FN uint16_t ti_bf16_bits(float f) {
    uint32_t u = ti_f2u(f);
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
TI_FN float ti_bf16_to_float(uint16_t b) { return ti_u2f((uint32_t)b << 16); }

/* float -> IEEE half bits, round to nearest even; handles normals, subnormals,
 * overflow to inf.  Inputs here are small and finite. */
TI_FN uint16_t ti_f16_bits(float f) {
    uint32_t u = ti_f2u(f);
    uint32_t sign = (u >> 16) & 0x8000u;
    int32_t exp = (int32_t)((u >> 23) & 0xFF) - 127 + 15;
    uint32_t mant = u & 0x7FFFFFu;
    if (exp >= 31) return (uint16_t)(sign | 0x7C00u);
    if (exp <= 0) {
        if (exp < -10) return (uint16_t)sign;
        mant |= 0x800000u;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t half = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1u);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1u))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | ((uint32_t)exp << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) half++;
    return (uint16_t)half;
}
TI_FN float ti_f16_to_float(uint16_t h) {
    uint32_t sign = ((uint32_t)h & 0x8000u) << 16;
    uint32_t exp = ((uint32_t)h >> 10) & 0x1F;
    uint32_t mant = (uint32_t)h & 0x3FFu;
    if (exp == 0) {
        float v = (float)mant * (1.0f / 16777216.0f); /* 2^-24 */
        return sign ? -v : v;
    }
    if (exp == 31) return ti_u2f(sign | 0x7F800000u | (mant << 13));
    return ti_u2f(sign | ((exp - 15 + 127) << 23) | (mant << 13));
}

/* The unrounded value of element i. */
TI_FN float tensor_init_value(init_t init, float scale, float offset, float tau, int row_len,
                              uint64_t seed, uint32_t index, uint64_t i) {
    float u = rng_uniform(seed, index, i);
    switch (init) {
    case INIT_OFFSET: return offset + scale * u;
    case INIT_DECAY: {
        float j = (float)(i % (uint64_t)row_len);
        return scale * u * expf(-j / tau);
    }
    default: return scale * u;
    }
}

#endif
