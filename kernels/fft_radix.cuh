/* fft_radix.cuh: the complex arithmetic and in-register small DFTs shared by the FFT kernels of
 * long_conv/fast (kernels/long_conv_fast.cu, fp32 CUDA cores; kernels/long_conv_tc.cu, tensor
 * cores).  float2 = one complex number (x real, y imaginary); W = exp(-2 pi i / n). */
#ifndef CHELA_FFT_RADIX_CUH
#define CHELA_FFT_RADIX_CUH

#include <cuda_runtime.h>

/* twiddle tables: W_N^e = hi[e >> FFT_TW_LO_BITS] * lo[e & (FFT_TW_LO - 1)] */
#define FFT_TW_LO_BITS 7
#define FFT_TW_LO (1 << FFT_TW_LO_BITS)

__device__ __forceinline__ float2 cadd(float2 a, float2 b) { return make_float2(a.x + b.x, a.y + b.y); }
__device__ __forceinline__ float2 csub(float2 a, float2 b) { return make_float2(a.x - b.x, a.y - b.y); }
__device__ __forceinline__ float2 cmul(float2 a, float2 b) {
    return make_float2(fmaf(a.x, b.x, -a.y * b.y), fmaf(a.x, b.y, a.y * b.x));
}
__device__ __forceinline__ float2 conjf2(float2 a) { return make_float2(a.x, -a.y); }

/* cos / sin (2 pi e / 16), e in 0..15, as one flat switch.  Why not recursion: v1 wrote these
 * as recursive constexpr functions, and since e is an ordinary argument nvcc compiled them as real
 * recursive calls with a stack frame, called for every twiddle of every in-register DFT (ncu:
 * local loads/stores, L2 busy with DRAM idle, ~5x the needed instructions).  A switch on a value
 * that is constant after unrolling folds to a literal. */
__host__ __device__ __forceinline__ float k16cos(int e) {
    switch (e & 15) {
    case 0: return 1.0f;
    case 1: case 15: return 0.92387953251128674f;
    case 2: case 14: return 0.70710678118654752f;
    case 3: case 13: return 0.38268343236508978f;
    case 4: case 12: return 0.0f;
    case 5: case 11: return -0.38268343236508978f;
    case 6: case 10: return -0.70710678118654752f;
    case 7: case 9: return -0.92387953251128674f;
    default: return -1.0f;
    }
}
__host__ __device__ __forceinline__ float k16sin(int e) { return k16cos((e + 12) & 15); }

/* a * W_16^e, W = exp(-2 pi i / 16) (INV: exp(+2 pi i / 16)); e is a compile-time constant
 * after unrolling, so the branches fold and the trivial roots cost no multiplies. */
template <bool INV> __device__ __forceinline__ float2 wmul16(float2 a, int e) {
    e &= 15;
    if (e == 0) return a;
    if (e == 8) return make_float2(-a.x, -a.y);
    if (e == 4) return INV ? make_float2(-a.y, a.x) : make_float2(a.y, -a.x);
    if (e == 12) return INV ? make_float2(a.y, -a.x) : make_float2(-a.y, a.x);
    const float c = k16cos(e), s = INV ? k16sin(e) : -k16sin(e); /* W = c + i s */
    return make_float2(a.x * c - a.y * s, a.x * s + a.y * c);
}

template <int R> __host__ __device__ constexpr int brev(int k) {
    int r = 0;
    for (int b = 1; b < R; b <<= 1) {
        r <<= 1;
        if (k & b) r |= 1;
    }
    return r;
}

/* In-register R-point DFT (R = 2..16), natural order in and out: radix-2 DIF passes
 * (template recursion over the pass length, so every index and root is a constant), then the
 * bit-reversed result renamed into order (free after register allocation). */
template <int R, int LEN, bool INV> struct dft_pass {
    static __device__ __forceinline__ void run(float2 (&a)[R]) {
        constexpr int half = LEN / 2;
#pragma unroll
        for (int st = 0; st < R; st += LEN) {
#pragma unroll
            for (int j = 0; j < half; j++) {
                const float2 u = a[st + j], v = a[st + j + half];
                a[st + j] = cadd(u, v);
                a[st + j + half] = wmul16<INV>(csub(u, v), j * (16 / LEN));
            }
        }
        dft_pass<R, LEN / 2, INV>::run(a);
    }
};
template <int R, bool INV> struct dft_pass<R, 1, INV> {
    static __device__ __forceinline__ void run(float2 (&)[R]) {}
};

template <int R, bool INV> __device__ __forceinline__ void dft(float2 (&a)[R]) {
    dft_pass<R, R, INV>::run(a);
    float2 t[R];
#pragma unroll
    for (int k = 0; k < R; k++) t[k] = a[brev<R>(k)];
#pragma unroll
    for (int k = 0; k < R; k++) a[k] = t[k];
}

__device__ __forceinline__ float2 twid(const float2 *tw_hi, const float2 *tw_lo, int e) {
    return cmul(tw_hi[e >> FFT_TW_LO_BITS], tw_lo[e & (FFT_TW_LO - 1)]);
}

#endif
