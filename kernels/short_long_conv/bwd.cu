/* short_long_conv/bwd.cu: the backward of both forms (chela-spec.md "Training";
 * harness/ref_grad_conv.h has the math and the double references):
 *
 *   pre = k3 * x,  u = SiLU(pre),  z = Kc * u (reparam)  or  K_long * u + (k3b + km) * u (branches)
 *
 *   1. u into an fp32 buffer (the forward makes it on the fly and keeps nothing);
 *   2. dU = corr(dZ, K) on the long-conv engine (long_conv/bwd.h: the engine on dZ reversed),
 *      K = Kc or K_long; dK = sum_b corr(u_b, dZ_b) from the row spectra: dKc or dK_long;
 *   3. reparam: dk3b = dKc[:, :3], dkm = dKc[:, :k_m] (exact: ref_grad_conv.h says why);
 *      branches: dk3b and dkm by their own short correlation of u with dZ, one pass for both
 *      (the taps of both branches are the same sums, as the forward fuses both branches);
 *   4. dpre = (dU + branches' corr(dZ, k3b + km)) SiLU'(pre), into the same fp32 buffer;
 *   5. dX = corr(dpre, k3) (3 taps), dk3 = sum_b sum_t x[t-j] dpre[t] (j < 3).
 * The per-channel sums (3, 5) are one block a channel over all (b, t), fixed order within a
 * thread and a fixed reduction tree: deterministic. */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "bench_check.h"
#include "common/math.cuh" /* silu, sigm, warp_sum */
#include "dtype_device.cuh"
#include "short_long_conv/bwd.h"

namespace {

#define SLB_THREADS 256

__device__ __forceinline__ float silu_grad(float p) {
    const float s = sigm(p);
    return s * (1.0f + p * (1.0f - s));
}

/* the k3 conv at t of row xr (zero before t = 0) */
template <typename S>
__device__ __forceinline__ float pre_at(const S *__restrict__ xr, int t, float a0, float a1,
                                        float a2) {
    const float x0 = to_f32(xr[t]);
    const float x1 = t >= 1 ? to_f32(xr[t - 1]) : 0.0f;
    const float x2 = t >= 2 ? to_f32(xr[t - 2]) : 0.0f;
    return fmaf(a0, x0, fmaf(a1, x1, a2 * x2));
}

/* u[b,c,t] = SiLU(pre) as fp32, rows x T elements (row = b d + c) */
template <typename S>
__global__ void slb_u_kernel(const S *__restrict__ x, const float *__restrict__ k3,
                             float *__restrict__ u, long long n, int d, int T) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        const long long row = i / T;
        const int t = (int)(i - row * T), c = (int)(row % d);
        u[i] = silu(pre_at(x + row * T, t, k3[3 * c], k3[3 * c + 1], k3[3 * c + 2]));
    }
}

/* dpre[b,c,t] = (dU[t] + sum_{j < nk} ks[c][j] dZ[t + j]) SiLU'(pre[t]); dU read reversed
 * (du_rev[T-1-t], the engine's output on dZ reversed).  nk = 0: no short branches (reparam);
 * else ks = k3b + km tap by tap (j < 3, j < k_m). */
template <typename S>
__global__ void slb_dpre_kernel(const S *__restrict__ x, const float *__restrict__ k3,
                                const S *__restrict__ du_rev, const S *__restrict__ dz,
                                const float *__restrict__ k3b, const float *__restrict__ km,
                                int k_m, int nk, float *__restrict__ dpre, long long n, int d,
                                int T) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        const long long row = i / T;
        const int t = (int)(i - row * T), c = (int)(row % d);
        float du = to_f32(du_rev[row * T + (T - 1 - t)]);
        for (int j = 0; j < nk && t + j < T; j++) {
            const float kj =
                (j < 3 ? k3b[3 * c + j] : 0.0f) + (j < k_m ? km[(long long)c * k_m + j] : 0.0f);
            du = fmaf(kj, to_f32(dz[i + j]), du);
        }
        const float p = pre_at(x + row * T, t, k3[3 * c], k3[3 * c + 1], k3[3 * c + 2]);
        dpre[i] = du * silu_grad(p);
    }
}

/* dX[b,c,s] = sum_{j < 3, s + j < T} k3[c][j] dpre[b,c,s+j] */
template <typename S>
__global__ void slb_dx_kernel(const float *__restrict__ dpre, const float *__restrict__ k3,
                              S *__restrict__ dx, long long n, int d, int T) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        const long long row = i / T;
        const int s = (int)(i - row * T), c = (int)(row % d);
        float v = k3[3 * c] * dpre[i];
        if (s + 1 < T) v = fmaf(k3[3 * c + 1], dpre[i + 1], v);
        if (s + 2 < T) v = fmaf(k3[3 * c + 2], dpre[i + 2], v);
        dx[i] = from_f32<S>(v);
    }
}

/* r[j] = sum_b sum_{t >= j} a[b,c,t-j] g[b,c,t] for j < J <= JM, one block a channel (blockIdx.x
 * = c), written as o1[c][j] for j < l1 and (o2 non-NULL) o2[c][j] for j < l2, J = max(l1, l2).
 * A thread walks (b, t) with stride SLB_THREADS, in order; then each warp's sums by the xor
 * tree, the warps' in order by thread 0. */
template <int JM, typename TA, typename TG>
__global__ void __launch_bounds__(SLB_THREADS)
    slb_tap_corr_kernel(const TA *__restrict__ a, const TG *__restrict__ g, int B, int d, int T,
                        float *__restrict__ o1, int l1, float *__restrict__ o2, int l2) {
    __shared__ float part[SLB_THREADS / 32][JM];
    const int c = blockIdx.x, J = l1 > l2 ? l1 : l2;
    float acc[JM];
#pragma unroll
    for (int j = 0; j < JM; j++) acc[j] = 0.0f;
    const long long n = (long long)B * T;
    for (long long k = threadIdx.x; k < n; k += SLB_THREADS) {
        const long long b = k / T;
        const int t = (int)(k - b * T);
        const long long base = (b * d + c) * T;
        const float gv = to_f32(g[base + t]);
#pragma unroll
        for (int j = 0; j < JM; j++)
            if (j < J && t - j >= 0) acc[j] = fmaf(to_f32(a[base + t - j]), gv, acc[j]);
    }
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
#pragma unroll
    for (int j = 0; j < JM; j++) {
        const float v = warp_sum(acc[j]);
        if (lane == 0) part[w][j] = v;
    }
    __syncthreads();
    for (int j = threadIdx.x; j < J; j += SLB_THREADS) {
        float v = 0.0f;
        for (int q = 0; q < SLB_THREADS / 32; q++) v += part[q][j];
        if (j < l1) o1[(long long)c * l1 + j] = v;
        if (o2 && j < l2) o2[(long long)c * l2 + j] = v;
    }
}

/* reparam: dk3b[c][j] = dkc[c][j] (j < 3), dkm[c][j] = dkc[c][j] (j < k_m); 0 for taps past T */
__global__ void slb_slice_kernel(const float *__restrict__ dkc, int T, int d,
                                 float *__restrict__ dk3b, float *__restrict__ dkm, int k_m) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < d * 3) {
        const int c = i / 3, j = i % 3;
        dk3b[i] = j < T ? dkc[(long long)c * T + j] : 0.0f;
    }
    if (i < d * k_m) {
        const int c = i / k_m, j = i % k_m;
        dkm[i] = j < T ? dkc[(long long)c * T + j] : 0.0f;
    }
}

static unsigned slb_grid(long long n) {
    long long g = (n + SLB_THREADS - 1) / SLB_THREADS;
    if (g > 132 * 8) g = 132 * 8;
    return (unsigned)(g < 1 ? 1 : g);
}

/* the per-channel sum for taps J = max(l1, l2) <= SLC_MAX_KM */
template <typename TA, typename TG>
static int slb_tap_corr(const TA *a, const TG *g, const shape_t *s, float *o1, int l1, float *o2,
                        int l2, cudaStream_t st) {
    const int J = l1 > l2 ? l1 : l2;
    const dim3 grid((unsigned)s->d);
    if (J <= 3)
        slb_tap_corr_kernel<3, TA, TG>
            <<<grid, SLB_THREADS, 0, st>>>(a, g, s->B, s->d, s->T, o1, l1, o2, l2);
    else if (J <= 9)
        slb_tap_corr_kernel<9, TA, TG>
            <<<grid, SLB_THREADS, 0, st>>>(a, g, s->B, s->d, s->T, o1, l1, o2, l2);
    else if (J <= SLC_MAX_KM)
        slb_tap_corr_kernel<SLC_MAX_KM, TA, TG>
            <<<grid, SLB_THREADS, 0, st>>>(a, g, s->B, s->d, s->T, o1, l1, o2, l2);
    else
        BENCH_FAIL("short_long_conv bwd: %d taps beyond %d", J, SLC_MAX_KM);
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

template <typename S>
static int slb_run(slc_state_t *st, const io_t *io, const grad_io_t *gr, int branches,
                   cudaStream_t stream) {
    const shape_t *s = io->shape;
    const int d = s->d, T = s->T, k_m = shape_km(T);
    const long long n = (long long)s->B * d * T;
    const unsigned grid = slb_grid(n);
    const S *x = (const S *)io->in[0], *dz = (const S *)gr->dy;
    const float *k3 = (const float *)io->in[1], *k3b = (const float *)io->in[3];
    const float *km = (const float *)io->in[4];
    float *dk3 = (float *)gr->grad[1], *dklong = (float *)gr->grad[2];
    float *dk3b = (float *)gr->grad[3], *dkm = (float *)gr->grad[4];
    /* 1. u */
    slb_u_kernel<S><<<grid, SLB_THREADS, 0, stream>>>(x, k3, st->ubuf, n, d, T);
    CUDA_CHECK(cudaGetLastError());
    /* 2. dU reversed (the engine on dZ reversed), dK of the engine's kernel */
    if (lc_bwd_reverse_dy(st->bwd, dz, stream)) return -1;
    if (lc_bwd_dx_rev(st->bwd, stream)) return -1;
    if (lc_bwd_dk(st->bwd, st->ubuf, DTYPE_F32, dklong, stream)) return -1;
    /* 3. the short kernels' gradients */
    if (branches) {
        if (slb_tap_corr<float, S>(st->ubuf, dz, s, dk3b, 3, dkm, k_m, stream)) return -1;
    } else {
        const int m = d * (k_m > 3 ? k_m : 3);
        slb_slice_kernel<<<(m + SLB_THREADS - 1) / SLB_THREADS, SLB_THREADS, 0, stream>>>(
            dklong, T, d, dk3b, dkm, k_m);
        CUDA_CHECK(cudaGetLastError());
    }
    /* 4. dpre over u's buffer (u is not read again: stream order) */
    const int nk = branches ? (k_m > 3 ? k_m : 3) : 0;
    slb_dpre_kernel<S><<<grid, SLB_THREADS, 0, stream>>>(
        x, k3, (const S *)lc_bwd_dx_rev_buf(st->bwd), dz, k3b, km, k_m, nk, st->ubuf, n, d, T);
    CUDA_CHECK(cudaGetLastError());
    /* 5. dX, dk3 */
    slb_dx_kernel<S><<<grid, SLB_THREADS, 0, stream>>>(st->ubuf, k3, (S *)gr->grad[0], n, d, T);
    CUDA_CHECK(cudaGetLastError());
    return slb_tap_corr<S, float>(x, st->ubuf, s, dk3, 3, NULL, 0, stream);
}

} // namespace

size_t slc_bwd_workspace(const shape_t *s) {
    if (s->pass == PASS_FWD) return 0;
    const long_conv_fast_opts_t o = slc_opts(s);
    return lc_bwd_workspace(s->B, s->d, s->T, &o, s->dtype) +
           (size_t)s->B * s->d * s->T * sizeof(float);
}

int slc_bwd_setup(const shape_t *s, slc_state_t *st) {
    if (s->pass == PASS_FWD) return 0;
    CUDA_CHECK(cudaMalloc((void **)&st->ubuf, (size_t)s->B * s->d * s->T * sizeof(float)));
    return lc_bwd_create(st->eng, s->dtype, &st->bwd);
}

int slc_bwd_run(slc_state_t *st, const io_t *io, const grad_io_t *g, int branches,
                cudaStream_t stream) {
    if (!st || !st->bwd || !st->ubuf)
        BENCH_FAIL("short_long_conv: run_bwd without a backward setup");
    switch (io->shape->dtype) {
    case DTYPE_BF16: return slb_run<__nv_bfloat16>(st, io, g, branches, stream);
    case DTYPE_F16: return slb_run<__half>(st, io, g, branches, stream);
    case DTYPE_F32: return slb_run<float>(st, io, g, branches, stream);
    }
    BENCH_FAIL("short_long_conv bwd: unknown dtype %d", (int)io->shape->dtype);
}
