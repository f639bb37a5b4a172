/* cuda_bf16.h (CPU emulation, tests/emu/): the 16-bit conversions prims.cuh uses, on the host,
 * round to nearest even as the device's. */
#ifndef CHELA_EMU_CUDA_BF16_H
#define CHELA_EMU_CUDA_BF16_H
#include <stdint.h>
#include <string.h>

struct emu_bf16 {
    uint16_t x;
};
struct emu_half {
    uint16_t x;
};
static inline float __uint_as_float(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline uint32_t __float_as_uint(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static inline emu_bf16 __float2bfloat16_rn(float f) {
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return {(uint16_t)0x7fc0}; /* NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return {(uint16_t)(u >> 16)};
}
static inline uint16_t __bfloat16_as_ushort(emu_bf16 b) { return b.x; }
/* fp16 through the compiler's _Float16 (IEEE binary16, round to nearest even) */
static inline emu_half __float2half_rn(float f) {
    const _Float16 h = (_Float16)f;
    emu_half r;
    memcpy(&r.x, &h, 2);
    return r;
}
static inline uint16_t __half_as_ushort(emu_half h) { return h.x; }
static inline emu_half __ushort_as_half(uint16_t x) { return {x}; }
/* dtype_device.cuh's names for the two types and the conversions it calls */
typedef emu_bf16 __nv_bfloat16;
typedef emu_half __half;
static inline float __bfloat162float(emu_bf16 b) { return __uint_as_float((uint32_t)b.x << 16); }
static inline emu_bf16 __ushort_as_bfloat16(uint16_t x) { return {x}; }
static inline float __half2float(emu_half h);
static inline float __half2float(emu_half h) {
    _Float16 v;
    memcpy(&v, &h.x, 2);
    return (float)v;
}
#endif
