/* dtype_device.cuh: float <-> storage-type conversions for device code, one set
 * shared by every variant (to_f32 reads any storage type; from_f32<T> rounds to
 * nearest even). */
#ifndef CHELA_DTYPE_DEVICE_CUH
#define CHELA_DTYPE_DEVICE_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>

__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_f32(__half x) { return __half2float(x); }

template <typename T> __device__ __forceinline__ T from_f32(float x);
template <> __device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float x) {
    return __float2bfloat16_rn(x);
}
template <> __device__ __forceinline__ __half from_f32<__half>(float x) {
    return __float2half_rn(x);
}

/* ---- 8 consecutive elements at a time (16-byte accesses), shared by the elementwise kernels */

/* 8 consecutive elements <-> 8 floats; p must be 16-byte aligned for 16-bit types and for
 * float (8 floats = two 16-byte halves). */
__device__ __forceinline__ void load8(const float *p, float f[8]) {
    const float4 a = *reinterpret_cast<const float4 *>(p);
    const float4 b = *reinterpret_cast<const float4 *>(p + 4);
    f[0] = a.x; f[1] = a.y; f[2] = a.z; f[3] = a.w;
    f[4] = b.x; f[5] = b.y; f[6] = b.z; f[7] = b.w;
}
/* 16-bit types travel as one uint4 (8 values, low half of each 32-bit word first in memory);
 * values are unpacked and packed through their bit patterns, not through pointer casts of a
 * local, so no strict-aliasing assumption is involved. */
__device__ __forceinline__ float lo16(unsigned w, __nv_bfloat16 *) {
    return __bfloat162float(__ushort_as_bfloat16((unsigned short)(w & 0xffffu)));
}
__device__ __forceinline__ float hi16(unsigned w, __nv_bfloat16 *) {
    return __bfloat162float(__ushort_as_bfloat16((unsigned short)(w >> 16)));
}
__device__ __forceinline__ float lo16(unsigned w, __half *) {
    return __half2float(__ushort_as_half((unsigned short)(w & 0xffffu)));
}
__device__ __forceinline__ float hi16(unsigned w, __half *) {
    return __half2float(__ushort_as_half((unsigned short)(w >> 16)));
}
__device__ __forceinline__ unsigned pack16(float a, float b, __nv_bfloat16 *) {
    return (unsigned)__bfloat16_as_ushort(__float2bfloat16_rn(a)) |
           ((unsigned)__bfloat16_as_ushort(__float2bfloat16_rn(b)) << 16);
}
__device__ __forceinline__ unsigned pack16(float a, float b, __half *) {
    return (unsigned)__half_as_ushort(__float2half_rn(a)) |
           ((unsigned)__half_as_ushort(__float2half_rn(b)) << 16);
}
template <typename T16> __device__ __forceinline__ void load8(const T16 *p, float f[8]) {
    const uint4 raw = *reinterpret_cast<const uint4 *>(p);
    const unsigned w[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
    for (int u = 0; u < 4; u++) {
        f[2 * u] = lo16(w[u], (T16 *)nullptr);
        f[2 * u + 1] = hi16(w[u], (T16 *)nullptr);
    }
}
/* 4 consecutive elements -> 4 floats (8-byte aligned for 16-bit types, 16-byte for float) */
template <typename T16> __device__ __forceinline__ void load4(const T16 *p, float f[4]) {
    const uint2 raw = *reinterpret_cast<const uint2 *>(p);
    f[0] = lo16(raw.x, (T16 *)nullptr);
    f[1] = hi16(raw.x, (T16 *)nullptr);
    f[2] = lo16(raw.y, (T16 *)nullptr);
    f[3] = hi16(raw.y, (T16 *)nullptr);
}
__device__ __forceinline__ void load4(const float *p, float f[4]) {
    const float4 v = *reinterpret_cast<const float4 *>(p);
    f[0] = v.x; f[1] = v.y; f[2] = v.z; f[3] = v.w;
}
template <typename T16> __device__ __forceinline__ void store8(T16 *p, const float f[8]) {
    uint4 raw;
    raw.x = pack16(f[0], f[1], (T16 *)nullptr);
    raw.y = pack16(f[2], f[3], (T16 *)nullptr);
    raw.z = pack16(f[4], f[5], (T16 *)nullptr);
    raw.w = pack16(f[6], f[7], (T16 *)nullptr);
    *reinterpret_cast<uint4 *>(p) = raw;
}
__device__ __forceinline__ void store8(float *p, const float f[8]) {
    *reinterpret_cast<float4 *>(p) = make_float4(f[0], f[1], f[2], f[3]);
    *reinterpret_cast<float4 *>(p + 4) = make_float4(f[4], f[5], f[6], f[7]);
}


#endif
