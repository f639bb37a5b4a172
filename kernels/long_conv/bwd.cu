/* long_conv/bwd.cu: the long convolution's backward on the engine (bwd.h; the method, its
 * buffers and their sizes: plan_bwd.h).
 *
 * dX is the engine's own FFT or Toeplitz kernel between two reversing copies of [B,d,T]
 * activations (dY in, dX out): 4 B d T elements moved beyond the engine's run, 0.17 ms at
 * bf16 and 65536 x 1024 (the engine's kernels taking a reversed load and store would save it).
 * dK: the fused per-channel kernel (bwd_kernels.cuh) where the FFT is one block; at longer T
 * the engine's kernel makes the batch's spectra in device memory (written once, read once:
 * 2 x 8 N bytes a row, where the forward keeps its transform in shared memory), one
 * product-and-sum kernel, the engine's run on unit impulses and a reversing copy of [d,T]. */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_check.h"
#include "dtype_device.cuh"
#include "long_conv/bwd.h"
#include "long_conv/bwd_kernels.cuh"

struct lc_bwd {
    const long_conv_fast_t *eng;
    dtype_t dtype;
    lcb_plan_t plan;
    int N; /* the FFT's length (the spectra's scale 1/N each) */
    const void *dy; /* the last dY given, in order (the fused dK kernel reads it reversed itself) */
    void *dy_rev; /* [B,d,T] run dtype: dY reversed in time            */
    void *dx_rev; /* [B,d,T] run dtype: the engine's output on dy_rev  */
    float2 *spec_u; /* [chunk][d][spec_row]: FFT(u)/N of a chunk's rows   */
    float2 *spec_g; /* [chunk][d][spec_row]: FFT(dY')/N                   */
    float2 *acc; /* [d][spec_row]: N sum_b FFT(u_b) FFT(dY'_b) / N^2    */
    float *imp; /* [d][T] fp32: unit impulses between runs; dK reversed within one */
};

namespace {

#define LCB_THREADS 256

/* dst[r][t] = src[r][T-1-t], rows x T elements */
template <typename S>
__global__ void lcb_reverse_kernel(const S *__restrict__ src, S *__restrict__ dst, long long n,
                                   int T) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        const long long r = i / T;
        const int t = (int)(i - r * T);
        dst[i] = src[r * T + (T - 1 - t)];
    }
}

/* acc[c][i] (= when first, else +=) N sum_{b < nb} su[b][c][i] sg[b][c][i]: the stored spectrum
 * of sum_b u_b * dY'_b (product of two FFT/N is FFT(conv)/N^2; times N is the engine's scale).
 * Each element by one thread, the batch in order: deterministic. */
__global__ void lcb_accumulate_kernel(const float2 *__restrict__ su, const float2 *__restrict__ sg,
                                      float2 *__restrict__ acc, int nb, int d, long long srow,
                                      float scale, int first) {
    const long long n = (long long)d * srow;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        float re = 0.f, im = 0.f;
        for (int b = 0; b < nb; b++) {
            const float2 a = su[(long long)b * n + i], g = sg[(long long)b * n + i];
            re = fmaf(a.x, g.x, fmaf(-a.y, g.y, re));
            im = fmaf(a.x, g.y, fmaf(a.y, g.x, im));
        }
        float2 v = make_float2(re * scale, im * scale);
        if (!first) {
            const float2 o = acc[i];
            v.x += o.x;
            v.y += o.y;
        }
        acc[i] = v;
    }
}

/* dst = src as fp32 (B = 1: x itself is the input of the engine's run, bwd.h) */
template <typename S>
__global__ void lcb_to_f32_kernel(const S *__restrict__ src, float *__restrict__ dst, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        dst[i] = to_f32(src[i]);
}

/* imp[c][t] = (t == 0): the unit impulse of every channel */
__global__ void lcb_impulse_kernel(float *__restrict__ imp, long long n, int T) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        imp[i] = (i % T) == 0 ? 1.0f : 0.0f;
}

/* dk[c][j] = imp[c][T-1-j] (the engine's output, dK reversed), and the element read is put back
 * to the impulse for the next run: each thread reads and rewrites its own element alone. */
__global__ void lcb_dk_finish_kernel(float *__restrict__ imp, float *__restrict__ dk, long long n,
                                     int T) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        const long long r = i / T;
        const int j = (int)(i - r * T);
        const long long src = r * T + (T - 1 - j);
        dk[i] = imp[src];
        imp[src] = (T - 1 - j) == 0 ? 1.0f : 0.0f;
    }
}

/* a grid-stride launch for n elements: at most 8 blocks an SM's worth (132 SMs x 8) */
static unsigned lcb_grid(long long n) {
    long long g = (n + LCB_THREADS - 1) / LCB_THREADS;
    if (g > 132 * 8) g = 132 * 8;
    return (unsigned)(g < 1 ? 1 : g);
}

static int lcb_reverse(const void *src, void *dst, long long n, int T, dtype_t dt,
                       cudaStream_t st) {
    const unsigned g = lcb_grid(n);
    switch (dt) {
    case DTYPE_BF16:
        lcb_reverse_kernel<<<g, LCB_THREADS, 0, st>>>((const __nv_bfloat16 *)src,
                                                      (__nv_bfloat16 *)dst, n, T);
        break;
    case DTYPE_F16:
        lcb_reverse_kernel<<<g, LCB_THREADS, 0, st>>>((const __half *)src, (__half *)dst, n, T);
        break;
    case DTYPE_F32:
        lcb_reverse_kernel<<<g, LCB_THREADS, 0, st>>>((const float *)src, (float *)dst, n, T);
        break;
    default: BENCH_FAIL("long_conv bwd: unknown dtype %d", (int)dt);
    }
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

static const char *lcb_path_word(lc_path_t p) {
    switch (p) {
    case LC_PATH_FFT: return "fft";
    case LC_PATH_TOEPLITZ_MMA: return "toeplitz-mma";
    case LC_PATH_TOEPLITZ_WGMMA: return "toeplitz-wgmma";
    }
    return "?";
}

} // namespace

extern "C" size_t lc_bwd_workspace(int B, int d, int T, const long_conv_fast_opts_t *o,
                                   dtype_t dtype) {
    lcf_plan_t g;
    lcf_plan_geometry(T, o, &g);
    lcb_plan_t p;
    if (lcb_plan_make(B, d, T, &g, dtype_size(dtype), 0, &p) != 0) return 0;
    return lcb_plan_workspace(&p);
}

extern "C" void lc_bwd_destroy(lc_bwd_t *b) {
    if (!b) return;
    cudaFree(b->dy_rev);
    cudaFree(b->dx_rev);
    cudaFree(b->spec_u);
    cudaFree(b->spec_g);
    cudaFree(b->acc);
    cudaFree(b->imp);
    free(b);
}

/* the fused dK kernel's copies: (x, dY) of one run dtype (long_conv), (fp32 u, dY)
 * (short_long_conv) */
template <typename Tu, typename Tg> static int lcb_dk_attr(size_t smem) {
    CUDA_CHECK(cudaFuncSetAttribute(lcb_dk_kernel<Tu, Tg>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    return 0;
}

template <typename Tu, typename Tg>
static int lcb_dk_launch(const lc_bwd_t *b, const void *u, const void *g, float *dk,
                         cudaStream_t st) {
    const lcb_plan_t &p = b->plan;
    const lcf_plan_t &f = long_conv_fast_plan(b->eng)->fft;
    lcb_dk_kernel<Tu, Tg><<<(unsigned)p.d, (unsigned)p.dk_threads, p.dk_smem, st>>>(
        (const Tu *)u, (const Tg *)g, dk, p.B, p.d, p.T, f.M, f.log_m, f.n_hi,
        long_conv_fast_twiddles(b->eng), 1.0f / (float)f.N);
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

static int lc_bwd_alloc(lc_bwd_t *b) {
    const lcb_plan_t &p = b->plan;
    CUDA_CHECK(cudaMalloc(&b->dy_rev, p.rev_bytes));
    CUDA_CHECK(cudaMalloc(&b->dx_rev, p.rev_bytes));
    if (p.fused_dk) {
        if (lcb_dk_attr<__nv_bfloat16, __nv_bfloat16>(p.dk_smem) ||
            lcb_dk_attr<__half, __half>(p.dk_smem) || lcb_dk_attr<float, float>(p.dk_smem) ||
            lcb_dk_attr<float, __nv_bfloat16>(p.dk_smem) || lcb_dk_attr<float, __half>(p.dk_smem))
            return -1;
        return 0;
    }
    CUDA_CHECK(cudaMalloc((void **)&b->spec_g, p.spec_bytes));
    if (p.B > 1) { /* B = 1 needs neither u's spectra nor their product sum (lc_bwd_dk) */
        CUDA_CHECK(cudaMalloc((void **)&b->spec_u, p.spec_bytes));
        CUDA_CHECK(cudaMalloc((void **)&b->acc, p.acc_bytes));
    }
    CUDA_CHECK(cudaMalloc((void **)&b->imp, p.imp_bytes));
    const long long n = (long long)p.d * p.T;
    lcb_impulse_kernel<<<lcb_grid(n), LCB_THREADS>>>(b->imp, n, p.T);
    CUDA_CHECK(cudaGetLastError());
    CUDA_CHECK(cudaDeviceSynchronize());
    return 0;
}

extern "C" int lc_bwd_create(const long_conv_fast_t *eng, dtype_t dtype, lc_bwd_t **out) {
    *out = NULL;
    if (!eng) BENCH_FAIL("long_conv bwd: no engine");
    const lc_plan_t *lp = long_conv_fast_plan(eng);
    lc_bwd_t *b = (lc_bwd_t *)calloc(1, sizeof *b);
    if (!b) BENCH_FAIL("long_conv bwd: out of host memory");
    b->eng = eng;
    b->dtype = dtype;
    b->N = lp->fft.N;
    if (lcb_plan_make(lp->B, lp->d, lp->T, &lp->fft, dtype_size(dtype), 0, &b->plan) != 0) {
        free(b);
        BENCH_FAIL("long_conv bwd: no plan for B=%d d=%d T=%d", lp->B, lp->d, lp->T);
    }
    if (lc_bwd_alloc(b) != 0) {
        lc_bwd_destroy(b); /* keeps the recorded error */
        return -1;
    }
    *out = b;
    return 0;
}

extern "C" int lc_bwd_reverse_dy(lc_bwd_t *b, const void *d_dy, cudaStream_t stream) {
    const lcb_plan_t &p = b->plan;
    b->dy = d_dy;
    return lcb_reverse(d_dy, b->dy_rev, (long long)p.B * p.d * p.T, p.T, b->dtype, stream);
}

extern "C" int lc_bwd_dx_rev(lc_bwd_t *b, cudaStream_t stream) {
    return long_conv_fast_run(b->eng, b->dy_rev, b->dx_rev, b->dtype, NULL, stream);
}

extern "C" const void *lc_bwd_dx_rev_buf(const lc_bwd_t *b) { return b->dx_rev; }

extern "C" int lc_bwd_unreverse(lc_bwd_t *b, void *d_dx, cudaStream_t stream) {
    const lcb_plan_t &p = b->plan;
    return lcb_reverse(b->dx_rev, d_dx, (long long)p.B * p.d * p.T, p.T, b->dtype, stream);
}

extern "C" int lc_bwd_dk(lc_bwd_t *b, const void *d_u, dtype_t u_dtype, float *d_dk,
                         cudaStream_t stream) {
    const lcb_plan_t &p = b->plan;
    if (p.fused_dk) {
        if (!b->dy) BENCH_FAIL("long_conv bwd: dK before dY");
        const dtype_t g = b->dtype;
        if (u_dtype == g && g == DTYPE_BF16)
            return lcb_dk_launch<__nv_bfloat16, __nv_bfloat16>(b, d_u, b->dy, d_dk, stream);
        if (u_dtype == g && g == DTYPE_F16)
            return lcb_dk_launch<__half, __half>(b, d_u, b->dy, d_dk, stream);
        if (u_dtype == DTYPE_F32 && g == DTYPE_F32)
            return lcb_dk_launch<float, float>(b, d_u, b->dy, d_dk, stream);
        if (u_dtype == DTYPE_F32 && g == DTYPE_BF16)
            return lcb_dk_launch<float, __nv_bfloat16>(b, d_u, b->dy, d_dk, stream);
        if (u_dtype == DTYPE_F32 && g == DTYPE_F16)
            return lcb_dk_launch<float, __half>(b, d_u, b->dy, d_dk, stream);
        BENCH_FAIL("long_conv bwd: no dK kernel for rows of dtype %d and dY of %d", (int)u_dtype,
                   (int)g);
    }
    const long long n = (long long)p.d * p.T;
    if (p.B == 1) {
        /* one batch row: sum_b u_b * dY'_b is u * dY' itself, the engine's run on u with dY''s
         * spectrum as its kernel (no spectrum of u, no product kernel, no impulses) */
        if (long_conv_fast_row_spectra(b->eng, b->dy_rev, p.d, b->dtype, b->spec_g, stream))
            return -1;
        const float *u32 = (const float *)d_u;
        if (u_dtype != DTYPE_F32) {
            const unsigned gr = lcb_grid(n);
            if (u_dtype == DTYPE_BF16)
                lcb_to_f32_kernel<<<gr, LCB_THREADS, 0, stream>>>((const __nv_bfloat16 *)d_u,
                                                                  b->imp, n);
            else if (u_dtype == DTYPE_F16)
                lcb_to_f32_kernel<<<gr, LCB_THREADS, 0, stream>>>((const __half *)d_u, b->imp, n);
            else
                BENCH_FAIL("long_conv bwd: unknown dtype %d", (int)u_dtype);
            CUDA_CHECK(cudaGetLastError());
            u32 = b->imp;
        }
        if (long_conv_fast_run_spec(b->eng, u32, b->imp, b->spec_g, stream)) return -1;
        /* dK reversed -> dK; the impulses it puts back are not read on this path */
        lcb_dk_finish_kernel<<<lcb_grid(n), LCB_THREADS, 0, stream>>>(b->imp, d_dk, n, p.T);
        CUDA_CHECK(cudaGetLastError());
        return 0;
    }
    const size_t ue = dtype_size(u_dtype), ge = dtype_size(b->dtype);
    const size_t row_elems = (size_t)p.d * p.T; /* one batch row of [B,d,T] */
    const long long nacc = (long long)p.d * (long long)p.spec_row;
    for (int b0 = 0; b0 < p.B; b0 += p.chunk) {
        const int nb = p.B - b0 < p.chunk ? p.B - b0 : p.chunk;
        const char *u = (const char *)d_u + (size_t)b0 * row_elems * ue;
        const char *g = (const char *)b->dy_rev + (size_t)b0 * row_elems * ge;
        if (long_conv_fast_row_spectra(b->eng, u, nb * p.d, u_dtype, b->spec_u, stream)) return -1;
        if (long_conv_fast_row_spectra(b->eng, g, nb * p.d, b->dtype, b->spec_g, stream)) return -1;
        lcb_accumulate_kernel<<<lcb_grid(nacc), LCB_THREADS, 0, stream>>>(
            b->spec_u, b->spec_g, b->acc, nb, p.d, (long long)p.spec_row, (float)b->N, b0 == 0);
        CUDA_CHECK(cudaGetLastError());
    }
    /* the row sum_b u_b * dY'_b, [0, T): the engine with acc as its kernel on unit impulses */
    if (long_conv_fast_run_spec(b->eng, b->imp, b->imp, b->acc, stream)) return -1;
    lcb_dk_finish_kernel<<<lcb_grid(n), LCB_THREADS, 0, stream>>>(b->imp, d_dk, n, p.T);
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

extern "C" void lc_bwd_describe(const lc_bwd_t *b, char *buf, size_t len) {
    if (!len) return;
    buf[0] = 0;
    if (!b) return;
    const lc_path_t path = lc_plan_path(long_conv_fast_plan(b->eng), b->dtype);
    if (b->plan.fused_dk)
        snprintf(buf, len, " bwd dx=rev-%s dk=fft-chan threads=%d", lcb_path_word(path),
                 b->plan.dk_threads);
    else if (b->plan.B == 1) /* the engine's run with dY''s spectrum as its kernel */
        snprintf(buf, len, " bwd dx=rev-%s dk=fft-run", lcb_path_word(path));
    else
        snprintf(buf, len, " bwd dx=rev-%s dk=fft-spectra chunks=%d", lcb_path_word(path),
                 b->plan.nchunks);
}
