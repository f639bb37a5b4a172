/* long_conv/fft_engine.h: the fused FFT long-convolution engine (kernels/long_conv/), exported
 * for other kernels (the short-long conv variants, the whole CHELA layer).
 *
 * Layouts: x, y [B,d,T] row-major in the run dtype (bf16, fp16, fp32); taps [d,T] fp32;
 * pre3 [d,3] fp32.  y[b,c,t] = sum_{j<=t} k[c,j] u[b,c,t-j], accumulated in fp32.
 * Supported: any B, d >= 1 and 1 <= T <= 65536.  The engine owns its device memory (kernel
 * spectrum and twiddle tables, long_conv_fast_workspace() bytes); run() needs nothing else. */
#ifndef CHELA_LONG_CONV_FFT_ENGINE_H
#define CHELA_LONG_CONV_FFT_ENGINE_H

#include <cuda_runtime_api.h>
#include <stddef.h>

#include "long_conv/plan.h" /* the options, LONG_CONV_FAST_MAX_T */
#include "settings.h"
#include "shape.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct long_conv_fast long_conv_fast_t;

/* o from a variant's settings (set may be NULL: all auto). */
void long_conv_fast_opts_from(const struct settings *set, long_conv_fast_opts_t *o);

/* Device bytes the engine needs for (B, d, T) beyond x and y (kernel spectrum included), with
 * the plan o makes (NULL: all auto) on the current device (lc_plan_workspace). */
size_t long_conv_fast_workspace(int B, int d, int T, const long_conv_fast_opts_t *o);

/* Plans the engine under o (NULL: all auto) on the current device (lc_plan_make, long_conv/plan.h:
 * every choice is made here, once) and precomputes the kernel's spectrum (or whatever
 * per-kernel data) from device fp32 taps [d,T]; may allocate and may sync.  Returns 0 or -1
 * after bench_set_error. */
int long_conv_fast_create(int B, int d, int T, const float *d_taps,
                          const long_conv_fast_opts_t *o, cudaStream_t stream,
                          long_conv_fast_t **out);

/* Enqueues y = k * u on stream, no allocation, no sync.  x, y: [B,d,T] of dtype.  pre3: NULL, or
 * device fp32 [d,3] taps of a short causal conv applied on load, u = SiLU(pre3 * x)
 * (u_t = silu(pre3[c,0] x_t + pre3[c,1] x_{t-1} + pre3[c,2] x_{t-2}), zero before t = 0);
 * else u = x. */
int long_conv_fast_run(const long_conv_fast_t *p, const void *d_x, void *d_y, dtype_t dtype,
                       const float *d_pre3, cudaStream_t stream);

/* The path run() takes for dtype and the plan's choices, as config words (space-separated
 * name=value after the path): "fft N=16384 block=8192 P=2 threads=256 narrow=1 xpair=0",
 * "toeplitz-wgmma W=2 sets=3", "toeplitz-mma v4 NT=32". */
void long_conv_fast_describe(const long_conv_fast_t *p, dtype_t dtype, char *buf, size_t len);

/* ---- the backward's use of the FFT kernel (long_conv/bwd.cu; plan_bwd.h has the method) ---- */
/* The engine's plan (the backward plans from its FFT part). */
const lc_plan_t *long_conv_fast_plan(const long_conv_fast_t *p);

/* The engine's twiddle table on the device: [n_hi + 128] float2, hi[h] = W_N^(128 h) then
 * lo[l] = W_N^l (fft_kernels.cuh). */
const float2 *long_conv_fast_twiddles(const long_conv_fast_t *p);

/* Enqueues the stored spectra of nrows real rows u [nrows, T] of dtype (the layout and scale of
 * the kernel spectrum, FFT(u)/N: [nrows][rows][M] float2, lcf_plan_t), by the FFT kernel in the
 * mode create uses on the taps.  nrows * P blocks must stay below 2^31 (lcb_plan_make). */
int long_conv_fast_row_spectra(const long_conv_fast_t *p, const void *d_u, int nrows,
                               dtype_t dtype, float2 *d_spec, cudaStream_t stream);

/* Enqueues y = k' * u for d rows of fp32 u, y [d,T] (one row a channel), where k' is the real
 * kernel whose stored spectrum is d_spec ([d][rows][M], FFT(k')/N), on the FFT path.  u and y
 * may be the same buffer: a transform reads all of its row before it writes any of it. */
int long_conv_fast_run_spec(const long_conv_fast_t *p, const float *d_u, float *d_y,
                            const float2 *d_spec, cudaStream_t stream);

void long_conv_fast_destroy(long_conv_fast_t *p);

#ifdef __cplusplus
}
#endif
#endif
