/* gpu_util.cu: fill / poison / count / flush kernels and the device ceilings. */
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "bench_check.h"
#include "gpu_util.h"
#include "measure.h"
#include "tensor_init.h"

/* ---------------- fill ---------------- */

__global__ void fill_kernel(init_t init, float scale, float offset, float tau, int row_len,
                            uint64_t seed, uint32_t index, int store_dt, void *out, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float x = tensor_init_value(init, scale, offset, tau, row_len, seed, index, i);
        if (store_dt == DTYPE_BF16) ((uint16_t *)out)[i] = ti_bf16_bits(x);
        else if (store_dt == DTYPE_F16) ((uint16_t *)out)[i] = ti_f16_bits(x);
        else ((float *)out)[i] = x;
    }
}

static unsigned grid_for(size_t n, int threads) {
    size_t g = (n + threads - 1) / threads;
    return (unsigned)std::min<size_t>(std::max<size_t>(g, 1), 132 * 32);
}

extern "C" int gpu_fill_tensor(const tensor_desc_t *t, uint64_t seed, uint32_t index, dtype_t act,
                               void *d_ptr, cudaStream_t st) {
    int dt = t->store == STORE_F32 ? DTYPE_F32 : act;
    fill_kernel<<<grid_for(t->elems, 256), 256, 0, st>>>(t->init, t->scale, t->offset, t->tau,
                                                         t->row_len, seed, index, dt, d_ptr,
                                                         t->elems);
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

extern "C" int gpu_poison(void *d_ptr, size_t bytes, cudaStream_t st) {
    CUDA_CHECK(cudaMemsetAsync(d_ptr, 0xFF, bytes, st));
    return 0;
}

/* ---------------- non-finite count ---------------- */

__global__ void nonfinite_kernel(const void *p, size_t n, int dt, unsigned long long *count) {
    unsigned long long local = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        bool bad;
        if (dt == DTYPE_F32) {
            bad = !isfinite(((const float *)p)[i]);
        } else {
            uint16_t b = ((const uint16_t *)p)[i];
            /* exponent all ones: bf16 0x7F80 mask, fp16 0x7C00 mask */
            bad = dt == DTYPE_BF16 ? (b & 0x7F80u) == 0x7F80u : (b & 0x7C00u) == 0x7C00u;
        }
        local += bad;
    }
    if (local) atomicAdd(count, local);
}

extern "C" int gpu_count_nonfinite(const void *d_ptr, size_t elems, dtype_t dt,
                                   unsigned long long *count, cudaStream_t st) {
    unsigned long long *d_count = nullptr;
    CUDA_CHECK(cudaMallocAsync((void **)&d_count, sizeof *d_count, st));
    CUDA_CHECK(cudaMemsetAsync(d_count, 0, sizeof *d_count, st));
    nonfinite_kernel<<<grid_for(elems, 256), 256, 0, st>>>(d_ptr, elems, dt, d_count);
    CUDA_CHECK(cudaGetLastError());
    CUDA_CHECK(cudaMemcpyAsync(count, d_count, sizeof *count, cudaMemcpyDeviceToHost, st));
    CUDA_CHECK(cudaFreeAsync(d_count, st));
    CUDA_CHECK(cudaStreamSynchronize(st));
    return 0;
}

/* ---------------- L2 flush ---------------- */

/* Reads every 16-byte word; the sum is stored only if it hits an impossible
 * value, so the compiler must keep the loads but nothing is written. */
__global__ void l2_sweep_kernel(const uint4 *p, size_t n, unsigned *sink) {
    unsigned acc = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        uint4 v = __ldcg(p + i);
        acc ^= v.x ^ v.y ^ v.z ^ v.w;
    }
    if (acc == 0x9E3779B9u) *sink = acc;
}

extern "C" int l2_flusher_init(l2_flusher_t *f) {
    int dev, l2 = 0;
    memset(f, 0, sizeof *f);
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev));
    f->bytes = std::max<size_t>((size_t)l2 * 2, 8u << 20);
    CUDA_CHECK(cudaMalloc(&f->d_buf, f->bytes));
    CUDA_CHECK(cudaMemset(f->d_buf, 0x5A, f->bytes));
    CUDA_CHECK(cudaMalloc((void **)&f->d_sink, sizeof(unsigned)));
    return 0;
}

extern "C" int l2_flush(l2_flusher_t *f, cudaStream_t st) {
    size_t n = f->bytes / sizeof(uint4);
    l2_sweep_kernel<<<grid_for(n, 512), 512, 0, st>>>((const uint4 *)f->d_buf, n, f->d_sink);
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

extern "C" void l2_flusher_free(l2_flusher_t *f) {
    if (f->d_buf) cudaFree(f->d_buf);
    if (f->d_sink) cudaFree(f->d_sink);
    memset(f, 0, sizeof *f);
}

/* ---------------- device facts and ceilings ---------------- */

extern "C" int gpu_device_open(int device, device_info_t *info) {
    int n = 0;
    memset(info, 0, sizeof *info);
    CUDA_CHECK(cudaGetDeviceCount(&n));
    if (device < 0 || device >= n)
        BENCH_FAIL("--device %d: this machine has %d CUDA device(s) (valid: 0..%d)", device, n, n - 1);
    CUDA_CHECK(cudaSetDevice(device));
    cudaDeviceProp p;
    CUDA_CHECK(cudaGetDeviceProperties(&p, device));
    size_t len = std::min(strlen(p.name), sizeof info->name - 1);
    memcpy(info->name, p.name, len); /* NUL kept by the memset */
    info->sm_count = p.multiProcessorCount;
    info->l2_bytes = (size_t)p.l2CacheSize;
    info->total_mem = p.totalGlobalMem;
    int khz = 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, device));
    info->peak_clock_mhz = khz / 1000.0;
    return 0;
}

__global__ void spin_kernel(long long cycles, long long *out) {
    long long start = clock64(), now = start;
    while (now - start < cycles) now = clock64();
    if (threadIdx.x == 0 && blockIdx.x == 0) *out = now - start;
}

/* Clocks as found: cycles counted by clock64() over the event-timed duration of
 * a spin, after a short warm-up spin so an idle GPU has left its lowest state. */
extern "C" double gpu_measure_sm_clock_mhz(void) {
    long long *d_out = nullptr, cycles = 0;
    cudaEvent_t a, b;
    float ms = 0;
    if (cudaMalloc((void **)&d_out, sizeof *d_out) != cudaSuccess) return NAN;
    cudaEventCreate(&a);
    cudaEventCreate(&b);
    spin_kernel<<<1, 32>>>(200000000LL, d_out);
    cudaEventRecord(a);
    spin_kernel<<<1, 32>>>(100000000LL, d_out);
    cudaEventRecord(b);
    cudaEventSynchronize(b);
    cudaEventElapsedTime(&ms, a, b);
    cudaMemcpy(&cycles, d_out, sizeof cycles, cudaMemcpyDeviceToHost);
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    cudaFree(d_out);
    if (cudaGetLastError() != cudaSuccess || ms <= 0) return NAN;
    return (double)cycles / (ms * 1e3);
}

/* One event-timed call of body on st (measure.h's sampler; no L2 sweep: the ceilings are
 * steady-state rates, the copy 1 GiB each way, far beyond L2). */
struct event_sample_ctx {
    cudaStream_t st;
    cudaEvent_t a, b;
    int (*body)(void *ctx, cudaStream_t st);
    void *ctx;
};
static int event_sample(void *c, double *ms_out, double *mhz) {
    event_sample_ctx *x = (event_sample_ctx *)c;
    CUDA_CHECK(cudaEventRecord(x->a, x->st));
    if (x->body(x->ctx, x->st)) return -1;
    CUDA_CHECK(cudaEventRecord(x->b, x->st));
    CUDA_CHECK(cudaEventSynchronize(x->b));
    float ms;
    CUDA_CHECK(cudaEventElapsedTime(&ms, x->a, x->b));
    *ms_out = ms;
    *mhz = NAN;
    return 0;
}

/* The median of reps calls after one warm-up (stop_rule_fixed). */
static int time_events(cudaStream_t st, int reps, double *median_ms,
                       int (*body)(void *ctx, cudaStream_t st), void *ctx) {
    event_sample_ctx x = {st, nullptr, nullptr, body, ctx};
    static measurement_t m;
    CUDA_CHECK(cudaEventCreate(&x.a));
    CUDA_CHECK(cudaEventCreate(&x.b));
    const stop_rule_t rule = stop_rule_fixed(1, reps);
    const sampler_t smp = {event_sample, nullptr, nullptr, &x};
    const int rc = measure_run(&rule, &smp, &m);
    cudaEventDestroy(x.a);
    cudaEventDestroy(x.b);
    if (rc) return -1;
    *median_ms = m.time.median;
    return 0;
}

struct copy_ctx { void *dst; const void *src; size_t bytes; };
static int copy_body(void *c, cudaStream_t st) {
    copy_ctx *x = (copy_ctx *)c;
    CUDA_CHECK(cudaMemcpyAsync(x->dst, x->src, x->bytes, cudaMemcpyDeviceToDevice, st));
    return 0;
}

struct gemm_ctx { cublasHandle_t h; int n; cudaDataType_t t; cublasComputeType_t ct; void *A, *B, *C; };
static int gemm_body(void *c, cudaStream_t st) {
    gemm_ctx *g = (gemm_ctx *)c;
    float one = 1.0f, zero = 0.0f;
    (void)st;
    CUBLAS_CHECK(cublasGemmEx(g->h, CUBLAS_OP_N, CUBLAS_OP_N, g->n, g->n, g->n, &one, g->A, g->t,
                              g->n, g->B, g->t, g->n, &zero, g->C, g->t, g->n, g->ct,
                              CUBLAS_GEMM_DEFAULT));
    return 0;
}

__global__ void fill_random_kernel(void *p, size_t n, int dt) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float x = rng_uniform(7, 0, i);
        if (dt == DTYPE_BF16) ((uint16_t *)p)[i] = ti_bf16_bits(x);
        else ((float *)p)[i] = x;
    }
}

/* One GEMM rate on random (never zero) data: zeros run measurably faster. */
static int measure_gemm(cublasHandle_t h, cudaStream_t st, int dt, int n, double *tflops) {
    size_t es = dt == DTYPE_BF16 ? 2 : 4, elems = (size_t)n * n;
    void *A = nullptr, *B = nullptr, *C = nullptr;
    CUDA_CHECK(cudaMalloc(&A, elems * es));
    CUDA_CHECK(cudaMalloc(&B, elems * es));
    CUDA_CHECK(cudaMalloc(&C, elems * es));
    fill_random_kernel<<<grid_for(elems, 256), 256, 0, st>>>(A, elems, dt);
    fill_random_kernel<<<grid_for(elems, 256), 256, 0, st>>>(B, elems, dt);
    CUDA_CHECK(cudaGetLastError());
    gemm_ctx g = {h, n, dt == DTYPE_BF16 ? CUDA_R_16BF : CUDA_R_32F,
                  dt == DTYPE_BF16 ? CUBLAS_COMPUTE_32F : CUBLAS_COMPUTE_32F_PEDANTIC, A, B, C};
    double ms = 0;
    int rc = time_events(st, dt == DTYPE_BF16 ? 10 : 4, &ms, gemm_body, &g);
    cudaFree(A);
    cudaFree(B);
    cudaFree(C);
    if (rc) return -1;
    *tflops = 2.0 * n * (double)n * n / (ms * 1e-3) / 1e12;
    return 0;
}

extern "C" int gpu_measure_ceilings(device_info_t *info) {
    cudaStream_t st;
    CUDA_CHECK(cudaStreamCreate(&st));
    info->sm_clock_mhz = gpu_measure_sm_clock_mhz();

    size_t free_b = 0, total_b = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    /* 1 GiB each way (far beyond L2), smaller on small cards. */
    size_t bytes = std::min<size_t>(1ull << 30, free_b / 4);
    void *src = nullptr, *dst = nullptr;
    CUDA_CHECK(cudaMalloc(&src, bytes));
    CUDA_CHECK(cudaMalloc(&dst, bytes));
    CUDA_CHECK(cudaMemset(src, 1, bytes));
    copy_ctx c = {dst, src, bytes};
    double ms = 0;
    if (time_events(st, 10, &ms, copy_body, &c)) return -1;
    info->copy_gbps = 2.0 * bytes / (ms * 1e-3) / 1e9;
    CUDA_CHECK(cudaFree(src));
    CUDA_CHECK(cudaFree(dst));

    cublasHandle_t h;
    CUBLAS_CHECK(cublasCreate(&h));
    CUBLAS_CHECK(cublasSetStream(h, st));
    int n = 8192;
    while (n > 1024 && 3.0 * n * n * 4 > free_b / 2) n /= 2;
    if (measure_gemm(h, st, DTYPE_BF16, n, &info->bf16_gemm_tflops)) return -1;
    if (measure_gemm(h, st, DTYPE_F32, n, &info->fp32_gemm_tflops)) return -1;
    CUBLAS_CHECK(cublasDestroy(h));
    CUDA_CHECK(cudaStreamDestroy(st));
    return 0;
}

extern "C" void host_to_float(const void *h_raw, size_t n, dtype_t dt, float *out) {
    if (dt == DTYPE_F32) {
        memcpy(out, h_raw, n * 4);
        return;
    }
    const uint16_t *b = (const uint16_t *)h_raw;
    for (size_t i = 0; i < n; i++)
        out[i] = dt == DTYPE_BF16 ? ti_bf16_to_float(b[i]) : ti_f16_to_float(b[i]);
}
