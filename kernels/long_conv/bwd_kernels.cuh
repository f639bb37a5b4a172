/* long_conv/bwd_kernels.cuh: the backward's fused per-channel dK kernel (bwd.cu launches it
 * where plan_bwd.h's rule takes it: the FFT in one block, M = N <= LCB_FUSED_MAX_M).
 *
 *   dK[c,j] = sum_b sum_s x[b,c,s] dY[b,c,s+j] = sum_b (x_b * dY'_b)[T-1-j],  dY'[t] = dY[T-1-t]
 *
 * x is any row set (long_conv's x, short_long_conv's u in fp32), dY the run dtype.
 * One block a channel loops over the batch two rows at a time: z = x_b0 + i x_b1 and
 * w = dY'_b0 - i dY'_b1 (dY read reversed as it loads: no copy), both transformed in the same
 * shared buffer by the engine's own stages (fft_kernels.cuh: the forward's decimation in
 * frequency, outputs in its position order, which a pointwise product does not mind).  Since
 *   Z W = (X0 D0 + X1 D1) + i (X1 D0 - X0 D1)
 * and both brackets are spectra of real rows, the real part of IFFT(sum Z W) is
 * sum_b x_b * dY'_b: no even/odd separation.  A thread keeps its span-1 group of Z and the
 * running sum in registers (M / 16 groups, one a thread); after the batch, one inverse
 * transform, the real part scaled by 1/N, written reversed.  Sums in fp32, the batch in order:
 * deterministic. */
#ifndef CHELA_LONG_CONV_BWD_KERNELS_CUH
#define CHELA_LONG_CONV_BWD_KERNELS_CUH

#include "long_conv/fft_kernels.cuh"

namespace {

/* all forward stages but the span-1 one, on buf (M = N points, one block) */
__device__ __forceinline__ void lcb_forward_stages(float2 *buf, int M, int log_m,
                                                   const float2 *tw_hi, const float2 *tw_lo) {
    const int r0 = log_m & 3, R0 = 1 << r0;
    if (r0) {
        fft_first_stage<false>(buf, M, r0, 1, tw_hi, tw_lo); /* tw_unit N / M = 1 */
        __syncthreads();
    }
    for (int s = M / (R0 * 16); s >= 16; s >>= 4) {
        fft_stage<16, false>(buf, M, s, M / (16 * s), tw_hi, tw_lo);
        __syncthreads();
    }
}

/* Block c of d; blockDim.x >= M / 16 (one span-1 group a thread, bwd.cu launches
 * max(64, M / 16) threads).  Shared memory: buf [M + M/16] float2, tw_hi [n_hi], tw_lo [128]. */
template <typename Tu, typename Tg>
__global__ void __launch_bounds__(LCF_MAX_THREADS)
    lcb_dk_kernel(const Tu *__restrict__ x, const Tg *__restrict__ dy, float *__restrict__ dk,
                  int B, int d, int T, int M, int log_m, int n_hi, const float2 *__restrict__ tw,
                  float inv_n) {
    extern __shared__ float4 lcb_smem[];
    float2 *buf = reinterpret_cast<float2 *>(lcb_smem);
    float2 *tw_hi = buf + M + (M >> 4);
    float2 *tw_lo = tw_hi + n_hi;
    const int tid = threadIdx.x, nt = blockDim.x, c = blockIdx.x;
    for (int i = tid; i < n_hi + LCF_TW_LO; i += nt) tw_hi[i] = tw[i];
    const bool own = tid < M / 16; /* this thread's span-1 group: positions 16 tid .. + 15 */
    float2 acc[16];
#pragma unroll
    for (int i = 0; i < 16; i++) acc[i] = make_float2(0.f, 0.f);
    __syncthreads();

    for (int b0 = 0; b0 < B; b0 += 2) {
        const bool has1 = b0 + 1 < B;
        /* x1 / g1 point one batch row on (past the end for the last row of an odd B: not read) */
        const Tu *x0 = x + ((size_t)b0 * d + c) * T, *x1 = x0 + (size_t)d * T;
        const Tg *g0 = dy + ((size_t)b0 * d + c) * T, *g1 = g0 + (size_t)d * T;
        /* z = x_b0 + i x_b1, zero padded */
        for (int n = tid; n < M; n += nt) {
            float2 v = make_float2(0.f, 0.f);
            if (n < T) {
                v.x = to_f32(x0[n]);
                if (has1) v.y = to_f32(x1[n]);
            }
            buf[padi(n)] = v;
        }
        __syncthreads();
        lcb_forward_stages(buf, M, log_m, tw_hi, tw_lo);
        float2 zk[16];
        if (own) {
#pragma unroll
            for (int i = 0; i < 16; i++) zk[i] = buf[padi(16 * tid + i)];
            dft<16, false>(zk);
        }
        __syncthreads(); /* every group read before w overwrites buf */
        /* w = dY'_b0 - i dY'_b1, dY'[n] = dY[T-1-n] */
        for (int n = tid; n < M; n += nt) {
            float2 v = make_float2(0.f, 0.f);
            if (n < T) {
                v.x = to_f32(g0[T - 1 - n]);
                if (has1) v.y = -to_f32(g1[T - 1 - n]);
            }
            buf[padi(n)] = v;
        }
        __syncthreads();
        lcb_forward_stages(buf, M, log_m, tw_hi, tw_lo);
        if (own) {
            float2 a[16];
#pragma unroll
            for (int i = 0; i < 16; i++) a[i] = buf[padi(16 * tid + i)];
            dft<16, false>(a);
#pragma unroll
            for (int i = 0; i < 16; i++) {
                acc[i].x = fmaf(zk[i].x, a[i].x, fmaf(-zk[i].y, a[i].y, acc[i].x));
                acc[i].y = fmaf(zk[i].x, a[i].y, fmaf(zk[i].y, a[i].x, acc[i].y));
            }
        }
        __syncthreads(); /* every group read before the next pair loads */
    }

    /* the inverse: span-1 stage from the registers, then the engine's inverse stages */
    if (own) {
        dft<16, true>(acc);
#pragma unroll
        for (int i = 0; i < 16; i++) buf[padi(16 * tid + i)] = acc[i];
    }
    __syncthreads();
    const int r0 = log_m & 3, R0 = 1 << r0;
    for (int s = 16; s <= M / (R0 * 16); s <<= 4) {
        fft_stage<16, true>(buf, M, s, M / (16 * s), tw_hi, tw_lo);
        __syncthreads();
    }
    if (r0) {
        fft_first_stage<true>(buf, M, r0, 1, tw_hi, tw_lo);
        __syncthreads();
    }
    float *dkr = dk + (size_t)c * T;
    for (int n = tid; n < T; n += nt) dkr[T - 1 - n] = buf[padi(n)].x * inv_n;
}

} // namespace

#endif
