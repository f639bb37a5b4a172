/* long_conv/fft_engine.cu: the long-convolution engine's API (fft_engine.h: create, run,
 * describe, used by long_conv/fast, both short_long_conv forms and chela/fused) and the host
 * side of its FFT path.
 *
 * create() gathers the device facts, takes every decision from lc_plan_make (plan.c), makes the
 * FFT's twiddle tables and the kernel spectrum (the FFT kernel itself, run on the taps and
 * stopped after the forward transform), and builds the Toeplitz engine (toeplitz.cu) where the
 * plan has it; run() enqueues the plan's kernel copy (fft_kernels.cuh), or hands a bf16 / fp16
 * run to the Toeplitz engine. */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdlib.h>

#include "bench_check.h"
#include "long_conv/fft_engine.h"
#include "long_conv/fft_kernels.cuh"
#include "long_conv/toeplitz.h"

/* The engine: its plan (every choice, made by lc_plan_make at create) and its device data. */
struct long_conv_fast {
    lc_plan_t plan;
    float2 *d_spec; /* [d][rows][M]: FFT(k)/N in the FFT's position order        */
    float2 *d_tw;   /* [n_hi + 128]: hi table then lo table                      */
    long_conv_toeplitz_t *toep; /* v4: where the plan has it (bf16 / fp16 runs), else NULL  */
};

namespace {

typedef void (*lcf_kernel_fn)(const lcf_params);

/* The kernel copy the plan names (lcf_plan_t: minb, fused_radix): MINB 2 (64 registers, two
 * 512-thread blocks an SM) where a block holds <= LCF_SMALL_M points, LCF_NARROW_MINB for the
 * narrow copy, and (v6) the block's radix-R0 digit fused into load and store where the
 * combined digit P R0 is <= LCF_FUSE_Q. */
template <int P, typename Tx> static lcf_kernel_fn lcf_pick(const lcf_plan_t &f) {
    const int r0f = f.fused_radix;
    /* v7: 8192 = 2 x 16^3 points, so R0 = 2; the plan takes the narrow copy for clusters of 1
     * and 2 alone */
    if (f.minb == LCF_NARROW_MINB) {
        if constexpr (P <= 2) return lcf_kernel<P, Tx, LCF_NARROW_MINB, 2>;
    }
    if (f.minb == 2) {
        switch (r0f) {
        case 2: if constexpr (P * 2 <= LCF_FUSE_Q) return lcf_kernel<P, Tx, 2, 2>; break;
        case 4: if constexpr (P * 4 <= LCF_FUSE_Q) return lcf_kernel<P, Tx, 2, 4>; break;
        case 8: if constexpr (P * 8 <= LCF_FUSE_Q) return lcf_kernel<P, Tx, 2, 8>; break;
        default: break;
        }
        return lcf_kernel<P, Tx, 2, 1>;
    }
    if (r0f == 4) { /* M = 16384 = 4 x 16^3 */
        if constexpr (P * 4 <= LCF_FUSE_Q) return lcf_kernel<P, Tx, 1, 4>;
    }
    return lcf_kernel<P, Tx, 1, 1>;
}

template <int P, typename Tx>
static int lcf_launch(const lcf_plan_t &f, const lcf_params &prm, unsigned nblocks,
                      cudaStream_t stream) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(nblocks, 1, 1);
    cfg.blockDim = dim3((unsigned)f.threads, 1, 1);
    cfg.dynamicSmemBytes = f.smem_bytes;
    cfg.stream = stream;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeClusterDimension;
    attr[0].val.clusterDim.x = P;
    attr[0].val.clusterDim.y = 1;
    attr[0].val.clusterDim.z = 1;
    cfg.attrs = attr;
    cfg.numAttrs = P > 1 ? 1 : 0;
    CUDA_CHECK(cudaLaunchKernelEx(&cfg, lcf_pick<P, Tx>(f), prm));
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

template <typename Tx>
static int lcf_launch_p(const lcf_plan_t &f, const lcf_params &prm, unsigned nblocks,
                        cudaStream_t stream) {
    switch (f.P) {
    case 1: return lcf_launch<1, Tx>(f, prm, nblocks, stream);
    case 2: return lcf_launch<2, Tx>(f, prm, nblocks, stream);
    case 4: return lcf_launch<4, Tx>(f, prm, nblocks, stream);
    case 8: return lcf_launch<8, Tx>(f, prm, nblocks, stream);
    }
    BENCH_FAIL("long_conv_fast: no kernel for cluster size %d", f.P);
}

/* the shared-memory attribute of the copies this plan runs, every run dtype */
template <int P> static int lcf_set_attrs(const lcf_plan_t &f) {
    const int smem = (int)f.smem_bytes;
    CUDA_CHECK(cudaFuncSetAttribute(lcf_pick<P, float>(f), cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    CUDA_CHECK(cudaFuncSetAttribute(lcf_pick<P, __nv_bfloat16>(f),
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    CUDA_CHECK(cudaFuncSetAttribute(lcf_pick<P, __half>(f), cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    return 0;
}

static lcf_params lcf_base_params(const long_conv_fast_t *p) {
    const lcf_plan_t &f = p->plan.fft;
    lcf_params prm = {};
    prm.spec = p->d_spec;
    prm.tw = p->d_tw;
    prm.d = p->plan.d;
    prm.T = p->plan.T;
    prm.M = f.M;
    prm.log_m = f.log_m;
    prm.N = f.N;
    prm.rows = f.rows;
    prm.n_hi = f.n_hi;
    prm.inv_n = 1.0f / (float)f.N;
    return prm;
}

/* The device facts the plan needs (lc_device_t), asked once at create.  0, or -1 after
 * bench_set_error where the runtime cannot name the device or its SM count. */
static int lc_device_gather(lc_device_t *dev) {
    dev->wgmma_usable = long_conv_toeplitz_wgmma_here();
    dev->sm_count = 0;
    int id = 0;
    CUDA_CHECK(cudaGetDevice(&id));
    CUDA_CHECK(cudaDeviceGetAttribute(&dev->sm_count, cudaDevAttrMultiProcessorCount, id));
    return 0;
}

} // namespace

/* ---- engine API ------------------------------------------------------------------------------ */
extern "C" void long_conv_fast_opts_from(const struct settings *set, long_conv_fast_opts_t *o) {
    o->toeplitz_max_t = settings_get(set, "lcf_toeplitz_max_t");
    o->xpair = settings_get(set, "lcf_xpair");
    o->block_points = settings_get(set, "lcf_block_points");
    o->narrow = settings_get(set, "lcf_narrow");
    o->toep.version = settings_get(set, "lct_version");
    o->toep.lcw_w = settings_get(set, "lcw_w");
    o->toep.lcw_sets = settings_get(set, "lcw_sets");
}

extern "C" size_t long_conv_fast_workspace(int B, int d, int T, const long_conv_fast_opts_t *o) {
    /* the bytes depend on the Toeplitz limit, not on the SM count */
    const lc_device_t dev = {0, long_conv_toeplitz_wgmma_here()};
    return lc_plan_workspace(B, d, T, &dev, o);
}

extern "C" void long_conv_fast_destroy(long_conv_fast_t *p) {
    if (!p) return;
    if (p->d_spec) cudaFree(p->d_spec);
    if (p->d_tw) cudaFree(p->d_tw);
    long_conv_toeplitz_destroy(p->toep);
    free(p);
}

static int lcf_create_impl(long_conv_fast_t *p, const float *d_taps, cudaStream_t stream) {
    const lcf_plan_t &f = p->plan.fft;
    const size_t spec_bytes = (size_t)p->plan.d * f.rows * f.M * sizeof(float2);
    CUDA_CHECK(cudaMalloc((void **)&p->d_spec, spec_bytes));
    const int ntw = f.n_hi + LCF_TW_LO;
    CUDA_CHECK(cudaMalloc((void **)&p->d_tw, (size_t)ntw * sizeof(float2)));
    float2 *h_tw = (float2 *)malloc((size_t)ntw * sizeof(float2));
    if (!h_tw) BENCH_FAIL("long_conv_fast: out of host memory");
    /* hi[h] = W_N^(128 h), lo[l] = W_N^l, W_N = exp(-2 pi i / N), made in double */
    for (int i = 0; i < ntw; i++) {
        const long long e = i < f.n_hi ? (long long)i << LCF_TW_LO_BITS : i - f.n_hi;
        const double ang = -2.0 * M_PI * (double)e / (double)f.N;
        h_tw[i] = make_float2((float)cos(ang), (float)sin(ang));
    }
    const cudaError_t ce =
        cudaMemcpy(p->d_tw, h_tw, (size_t)ntw * sizeof(float2), cudaMemcpyHostToDevice);
    free(h_tw);
    CUDA_CHECK(ce);

    switch (f.P) {
    case 1: if (lcf_set_attrs<1>(f)) return -1; break;
    case 2: if (lcf_set_attrs<2>(f)) return -1; break;
    case 4: if (lcf_set_attrs<4>(f)) return -1; break;
    case 8: if (lcf_set_attrs<8>(f)) return -1; break;
    default: BENCH_FAIL("long_conv_fast: bad cluster size %d", f.P);
    }

    /* Spectrum: this very kernel on the taps (one real row per channel), stopped after the
     * forward transform, writing FFT(k)/N in its own position order. */
    lcf_params prm = lcf_base_params(p);
    prm.x = d_taps;
    prm.spec_out = p->d_spec;
    prm.B = 1;
    prm.npairs = 1;
    if (lcf_launch_p<float>(f, prm, (unsigned)p->plan.d * f.P, stream)) return -1;
    CUDA_CHECK(cudaStreamSynchronize(stream));
    /* the spectrum stays: fp32 runs always take the FFT */
    if (p->plan.toeplitz && long_conv_toeplitz_create(&p->plan.toep, d_taps, stream, &p->toep) != 0)
        return -1;
    return 0;
}

extern "C" int long_conv_fast_create(int B, int d, int T, const float *d_taps,
                                     const long_conv_fast_opts_t *o, cudaStream_t stream,
                                     long_conv_fast_t **out) {
    *out = NULL;
    if (B < 1 || d < 1 || T < 1) BENCH_FAIL("long_conv_fast: empty shape B=%d d=%d T=%d", B, d, T);
    if (T > LONG_CONV_FAST_MAX_T)
        BENCH_FAIL("long_conv_fast: T = %d > %d is not supported", T, LONG_CONV_FAST_MAX_T);
    lc_device_t dev;
    if (lc_device_gather(&dev) != 0) return -1;
    lc_plan_t plan;
    if (lc_plan_make(B, d, T, &dev, o, &plan) != 0)
        BENCH_FAIL("long_conv_fast: no plan for B=%d d=%d T=%d", B, d, T);
    const long long nblocks = (long long)d * ((B + 1) / 2) * plan.fft.P;
    if (nblocks > 0x7fffffffLL) BENCH_FAIL("long_conv_fast: grid of %lld blocks too large", nblocks);
    long_conv_fast_t *p = (long_conv_fast_t *)calloc(1, sizeof *p);
    if (!p) BENCH_FAIL("long_conv_fast: out of host memory");
    p->plan = plan;
    if (lcf_create_impl(p, d_taps, stream) != 0) {
        long_conv_fast_destroy(p); /* keeps the recorded error */
        return -1;
    }
    *out = p;
    return 0;
}

extern "C" void long_conv_fast_describe(const long_conv_fast_t *p, dtype_t dtype, char *buf,
                                       size_t len) {
    if (!len) return;
    buf[0] = 0;
    if (!p) return;
    lc_plan_describe(&p->plan, dtype, buf, len); /* long_conv_fast_run's path */
}

extern "C" int long_conv_fast_run(const long_conv_fast_t *p, const void *d_x, void *d_y,
                                  dtype_t dtype, const float *d_pre3, cudaStream_t stream) {
    if (!p) BENCH_FAIL("long_conv_fast: run without create");
    if (lc_plan_path(&p->plan, dtype) != LC_PATH_FFT)
        return long_conv_toeplitz_run(p->toep, d_x, d_y, dtype, d_pre3, stream);
    const lcf_plan_t &f = p->plan.fft;
    lcf_params prm = lcf_base_params(p);
    prm.x = d_x;
    prm.y = d_y;
    prm.pre3 = d_pre3;
    prm.B = p->plan.B;
    prm.xpair = f.xpair;
    prm.npairs = f.npairs; /* same-channel pairs a channel */
    const unsigned nblocks = (unsigned)f.blocks;
    switch (dtype) {
    case DTYPE_BF16: return lcf_launch_p<__nv_bfloat16>(f, prm, nblocks, stream);
    case DTYPE_F16: return lcf_launch_p<__half>(f, prm, nblocks, stream);
    case DTYPE_F32: return lcf_launch_p<float>(f, prm, nblocks, stream);
    }
    BENCH_FAIL("long_conv_fast: unknown dtype %d", (int)dtype);
}

/* ---- the backward's use of the FFT kernel (fft_engine.h) ------------------------------------ */
extern "C" const lc_plan_t *long_conv_fast_plan(const long_conv_fast_t *p) { return &p->plan; }

extern "C" const float2 *long_conv_fast_twiddles(const long_conv_fast_t *p) { return p->d_tw; }

extern "C" int long_conv_fast_row_spectra(const long_conv_fast_t *p, const void *d_u, int nrows,
                                          dtype_t dtype, float2 *d_spec, cudaStream_t stream) {
    if (!p) BENCH_FAIL("long_conv_fast: row spectra without create");
    const lcf_plan_t &f = p->plan.fft;
    if (nrows < 1 || (long long)nrows * f.P > 0x7fffffffLL)
        BENCH_FAIL("long_conv_fast: %d rows of spectra", nrows);
    /* create's mode: one real row a transform (B = 1, one pair, no xpair), the rows taken as
     * channels, FFT(u)/N written to spec_out and nothing else */
    lcf_params prm = lcf_base_params(p);
    prm.x = d_u;
    prm.spec_out = d_spec;
    prm.d = nrows;
    prm.B = 1;
    prm.npairs = 1;
    prm.xpair = 0;
    const unsigned nblocks = (unsigned)nrows * (unsigned)f.P;
    switch (dtype) {
    case DTYPE_BF16: return lcf_launch_p<__nv_bfloat16>(f, prm, nblocks, stream);
    case DTYPE_F16: return lcf_launch_p<__half>(f, prm, nblocks, stream);
    case DTYPE_F32: return lcf_launch_p<float>(f, prm, nblocks, stream);
    }
    BENCH_FAIL("long_conv_fast: unknown dtype %d", (int)dtype);
}

extern "C" int long_conv_fast_run_spec(const long_conv_fast_t *p, const float *d_u, float *d_y,
                                       const float2 *d_spec, cudaStream_t stream) {
    if (!p) BENCH_FAIL("long_conv_fast: run without create");
    const lcf_plan_t &f = p->plan.fft;
    lcf_params prm = lcf_base_params(p);
    prm.spec = d_spec;
    prm.x = d_u;
    prm.y = d_y;
    prm.B = 1; /* one row a channel: one transform (with an empty imaginary half) a channel */
    prm.npairs = 1;
    prm.xpair = 0;
    return lcf_launch_p<float>(f, prm, (unsigned)p->plan.d * (unsigned)f.P, stream);
}
