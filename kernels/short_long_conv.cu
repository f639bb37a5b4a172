/* short_long_conv/branches and short_long_conv/reparam: CHELA's short-long convolution in
 * its training form and in its inference form (chela-spec.md):
 *
 *   u = SiLU(k3 * x);   z = K_long * u + k3b * u + km * u          x, z [B,d,T]
 *
 * Both run the long convolution on kernels/long_conv_fast with the short conv + SiLU done
 * in its load step, so neither pays a pass for u.
 *   branches: 2 passes.  (1) z_long = K_long * SiLU(k3 * x) -> z; (2) one fused pass for
 *             both short branches: reads x and z_long, recomputes u over a halo of
 *             k_m + 2 samples, adds k3b * u + km * u (the two short kernels summed tap by
 *             tap in shared memory first, so one loop of max(3, k_m) taps), writes z.  The short branches are
 *             fused with each other and with the sum: the best this form can be built.
 *   reparam:  1 pass.  The three kernels are merged once in setup (slc_merge_kernels),
 *             the merged kernel's spectrum precomputed, then z = Kc * SiLU(k3 * x).
 * What reparameterization saves is therefore pass (2): a read of x and of z_long and a
 * write of z (3 * B*d*T elements) and one launch; NOTES.md compares that with the
 * measured difference. */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdlib.h>

#include "bench_check.h"
#include "dtype_device.cuh"
#include "long_conv_fast.h"
#include "short_long_conv.h"
#include "variant.h"

extern "C" {
DECLARE_VARIANT(short_long_conv_branches);
DECLARE_VARIANT(short_long_conv_reparam);
}

#define SLC_TILE 1024  /* outputs per block in the short-branch pass */
#define SLC_THREADS 256 /* 4 outputs a thread, strided so a warp's accesses stay contiguous */
#define SLC_MAX_KM 32

namespace {

__device__ __forceinline__ float silu(float x) { return x / (1.0f + __expf(-x)); }

__global__ void merge_kernel(const float *__restrict__ klong, const float *__restrict__ k3b,
                             const float *__restrict__ km, int k_m, int d, int T,
                             float *__restrict__ kc) {
    const size_t n = (size_t)d * T;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        const int c = (int)(i / T), j = (int)(i % T);
        float v = klong[i];
        if (j < 3) v += k3b[3 * c + j];
        if (j < k_m) v += km[(size_t)c * k_m + j];
        kc[i] = v;
    }
}

/* Pass (2) of the branches form.  Block: SLC_TILE outputs of one (b, c) row.  x over
 * [t0 - k_m - 1, t0 + SLC_TILE) is staged, u = SiLU(k3 * x) over [t0 - k_m + 1, t0 + SLC_TILE),
 * then each thread sums its taps onto z_long in place. */
template <typename S>
__global__ void __launch_bounds__(SLC_THREADS)
short_branches_kernel(const S *__restrict__ x, const float *__restrict__ k3,
                      const float *__restrict__ k3b, const float *__restrict__ km, int k_m, int d,
                      int T, S *__restrict__ z) {
    __shared__ float xs[SLC_TILE + SLC_MAX_KM + 2], us[SLC_TILE + SLC_MAX_KM], ks[SLC_MAX_KM];
    const int row = blockIdx.x, c = row % d, t0 = blockIdx.y * SLC_TILE; /* rows in x: B*d can pass 65535 */
    /* halos: u over the longest short kernel (3 or k_m taps), x 2 more for the k3 conv */
    const int nk = k_m > 3 ? k_m : 3, hu = nk - 1, hx = hu + 2;
    /* the two short branches are one kernel of nk taps (their sum, tap by tap) */
    for (int j = threadIdx.x; j < nk; j += blockDim.x)
        ks[j] = (j < 3 ? k3b[3 * c + j] : 0.0f) + (j < k_m ? km[(size_t)c * k_m + j] : 0.0f);
    const S *xr = x + (size_t)row * T;
    for (int i = threadIdx.x; i < SLC_TILE + hx; i += blockDim.x) {
        const int t = t0 - hx + i;
        xs[i] = (t >= 0 && t < T) ? to_f32(xr[t]) : 0.0f;
    }
    __syncthreads();
    const float a0 = k3[3 * c], a1 = k3[3 * c + 1], a2 = k3[3 * c + 2];
    for (int i = threadIdx.x; i < SLC_TILE + hu; i += blockDim.x) {
        const int t = t0 - hu + i, ix = i + 2; /* xs index of x_t */
        us[i] = t >= 0 ? silu(a0 * xs[ix] + a1 * xs[ix - 1] + a2 * xs[ix - 2]) : 0.0f;
    }
    __syncthreads();
    S *zr = z + (size_t)row * T;
    for (int i = threadIdx.x; i < SLC_TILE && t0 + i < T; i += blockDim.x) {
        const int iu = i + hu; /* us index of u_t */
        float s = 0.0f;
        for (int j = 0; j < nk; j++) s += ks[j] * us[iu - j];
        zr[t0 + i] = from_f32<S>(to_f32(zr[t0 + i]) + s);
    }
}

template <typename S>
int launch_branches(const io_t *io, cudaStream_t st) {
    const shape_t *s = io->shape;
    const int k_m = shape_km(s->T);
    dim3 grid((unsigned)(s->B * s->d), (unsigned)((s->T + SLC_TILE - 1) / SLC_TILE));
    short_branches_kernel<S><<<grid, SLC_THREADS, 0, st>>>(
        (const S *)io->in[0], (const float *)io->in[1], (const float *)io->in[3],
        (const float *)io->in[4], k_m, s->d, s->T, (S *)io->out);
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

} // namespace

extern "C" int slc_merge_kernels(const float *k_long, const float *k3b, const float *km, int k_m,
                                 int d, int T, float *kc, cudaStream_t stream) {
    const size_t n = (size_t)d * T;
    const unsigned blocks = (unsigned)((n + 255) / 256 < 4096 ? (n + 255) / 256 : 4096);
    merge_kernel<<<blocks, 256, 0, stream>>>(k_long, k3b, km, k_m, d, T, kc);
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

/* ---------------- the two variants (inputs: x, k3, k_long, k3b, km; op.h) ---------------- */

static const char *slc_supports(const shape_t *s) {
    if (s->T > LONG_CONV_FAST_MAX_T) return "T beyond the long-conv engine's 65536";
    if (shape_km(s->T) > SLC_MAX_KM) return "k_m beyond 32";
    return NULL;
}

extern "C" const char *short_long_conv_branches_supports(const shape_t *s) { return slc_supports(s); }
extern "C" const char *short_long_conv_reparam_supports(const shape_t *s) { return slc_supports(s); }

extern "C" size_t short_long_conv_branches_workspace_bytes(const shape_t *s) {
    return long_conv_fast_workspace(s->B, s->d, s->T);
}
extern "C" size_t short_long_conv_reparam_workspace_bytes(const shape_t *s) {
    return long_conv_fast_workspace(s->B, s->d, s->T) + (size_t)s->d * s->T * sizeof(float);
}

extern "C" void short_long_conv_branches_teardown(void *state) {
    if (state) long_conv_fast_destroy((long_conv_fast_t *)state);
}
extern "C" void short_long_conv_reparam_teardown(void *state) {
    if (state) long_conv_fast_destroy((long_conv_fast_t *)state);
}

extern "C" int short_long_conv_branches_setup(const shape_t *s, const io_t *io, void **state) {
    long_conv_fast_t *p = NULL;
    int rc = long_conv_fast_create(s->B, s->d, s->T, (const float *)io->in[2], 0, &p);
    *state = p;
    return rc;
}

extern "C" int short_long_conv_reparam_setup(const shape_t *s, const io_t *io, void **state) {
    float *kc = NULL;
    long_conv_fast_t *p = NULL;
    CUDA_CHECK(cudaMalloc(&kc, (size_t)s->d * s->T * sizeof(float)));
    int rc = slc_merge_kernels((const float *)io->in[2], (const float *)io->in[3],
                               (const float *)io->in[4], shape_km(s->T), s->d, s->T, kc, 0);
    if (!rc) rc = long_conv_fast_create(s->B, s->d, s->T, kc, 0, &p);
    if (!rc && cudaDeviceSynchronize() != cudaSuccess) {
        bench_set_error(__FILE__, __LINE__, "reparam setup: %s", cudaGetErrorString(cudaGetLastError()));
        rc = -1;
    }
    cudaFree(kc);
    *state = p;
    return rc;
}

extern "C" int short_long_conv_branches_run(void *state, const io_t *io, cudaStream_t st) {
    const shape_t *s = io->shape;
    if (long_conv_fast_run((const long_conv_fast_t *)state, io->in[0], io->out, s->dtype,
                           (const float *)io->in[1], st))
        return -1;
    switch (s->dtype) {
    case DTYPE_BF16: return launch_branches<__nv_bfloat16>(io, st);
    case DTYPE_F16: return launch_branches<__half>(io, st);
    default: return launch_branches<float>(io, st);
    }
}

extern "C" int short_long_conv_reparam_run(void *state, const io_t *io, cudaStream_t st) {
    return long_conv_fast_run((const long_conv_fast_t *)state, io->in[0], io->out, io->shape->dtype,
                              (const float *)io->in[1], st);
}
