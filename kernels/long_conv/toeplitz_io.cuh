/* long_conv/toeplitz_io.cuh: what the Toeplitz product's kernels share (kernels/long_conv/toeplitz.cu,
 * the mma.sync versions, and kernels/long_conv/toeplitz_wgmma.cu, the wgmma one): the launch
 * arguments, the staging of u as fp16 MMA operands, and the epilogue that writes y. */
#ifndef CHELA_LONG_CONV_TOEPLITZ_IO_CUH
#define CHELA_LONG_CONV_TOEPLITZ_IO_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#include <type_traits>

#include "dtype_device.cuh"

/* One argument struct for the kernel; shapes in the comments. */
struct lct_params {
    const void *x;          /* [B,d,T] run dtype                                           */
    void *y;                /* [B,d,T] run dtype                                           */
    const uint16_t *rows;   /* [d][2 TW] fp16 tap rows                                     */
    const float *inv_scale; /* [d]                                                         */
    int B, d, T, TW, base;
    int ntt, nbt;           /* token tiles (of BM), batch tiles (of NT)                    */
    int tg;                 /* v5: tokens of u a block stages (whole groups of m-tiles)    */
    int vec;                /* rows of x and y start 16-byte aligned: 16-byte accesses     */
};

__device__ __forceinline__ uint16_t lct_bits(__nv_bfloat16 v) { return __bfloat16_as_ushort(v); }
__device__ __forceinline__ uint16_t lct_bits(__half v) { return __half_as_ushort(v); }

/* 8 tokens (s .. s+7) of one u row, raw in the input type; zeros past T and past B. */
template <typename Tin>
__device__ __forceinline__ uint4 lct_load_group(const lct_params &prm, int c, int b, int s) {
    uint4 raw = make_uint4(0u, 0u, 0u, 0u);
    if (b >= prm.B || s >= prm.T) return raw;
    const Tin *xr = static_cast<const Tin *>(prm.x) + ((size_t)b * prm.d + c) * prm.T;
    if (prm.vec && s + 8 <= prm.T) return __ldg(reinterpret_cast<const uint4 *>(xr + s));
    uint32_t w[4] = {0u, 0u, 0u, 0u};
#pragma unroll
    for (int e = 0; e < 8; e++)
        if (s + e < prm.T) w[e / 2] |= (uint32_t)lct_bits(xr[s + e]) << (16 * (e & 1));
    return make_uint4(w[0], w[1], w[2], w[3]);
}

/* The MMA operand (fp16) of 8 raw tokens: fp16 input as is; bf16 two at a time through fp32
 * (a shift, a mask and one cvt.rn.f16x2.f32 per pair: this runs once per token per block). */
__device__ __forceinline__ uint32_t lct_bf16x2_to_f16x2(uint32_t w) {
    const __half2 h = __floats2half2_rn(__uint_as_float(w << 16), __uint_as_float(w & 0xffff0000u));
    return *reinterpret_cast<const uint32_t *>(&h);
}
template <typename Tin> __device__ __forceinline__ uint4 lct_operand(uint4 raw) {
    if (std::is_same<Tin, __half>::value) return raw;
    return make_uint4(lct_bf16x2_to_f16x2(raw.x), lct_bf16x2_to_f16x2(raw.y),
                      lct_bf16x2_to_f16x2(raw.z), lct_bf16x2_to_f16x2(raw.w));
}


/* The accumulators times 1/scale, rounded, transposed into shared memory [batch row][token]
 * (rows bl0 + 8 nb + 2 q (+1), tokens tl0 + 16 mt + g (+8); conflict-free for pitch = 8 mod 64). */
template <int MT, int NB, typename Tout>
__device__ __forceinline__ void lct_acc_to_smem(const float (&acc)[MT][NB][4], float isc,
                                                uint16_t *os, int pitch, int bl0, int tl0, int g,
                                                int q) {
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        const int tl = tl0 + 16 * mt + g;
#pragma unroll
        for (int nb = 0; nb < NB; nb++) {
            const int bl = bl0 + 8 * nb + 2 * q;
            os[bl * pitch + tl] = lct_bits(from_f32<Tout>(acc[mt][nb][0] * isc));
            os[(bl + 1) * pitch + tl] = lct_bits(from_f32<Tout>(acc[mt][nb][1] * isc));
            os[bl * pitch + tl + 8] = lct_bits(from_f32<Tout>(acc[mt][nb][2] * isc));
            os[(bl + 1) * pitch + tl + 8] = lct_bits(from_f32<Tout>(acc[mt][nb][3] * isc));
        }
    }
}

/* 8 outputs t .. t+7 of one y row: one 16-byte store, or element by element at a tail. */
template <typename Tout>
__device__ __forceinline__ void lct_store8(const lct_params &prm, int b, int c, int t, uint4 v) {
    Tout *yr = static_cast<Tout *>(prm.y) + ((size_t)b * prm.d + c) * prm.T;
    if (prm.vec && t + 8 <= prm.T) {
        *reinterpret_cast<uint4 *>(yr + t) = v;
        return;
    }
    const uint32_t w[4] = {v.x, v.y, v.z, v.w};
    for (int e = 0; e < 8 && t + e < prm.T; e++)
        *reinterpret_cast<uint16_t *>(yr + t + e) = (uint16_t)(w[e / 2] >> (16 * (e & 1)));
}

#endif
