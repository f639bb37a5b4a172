/* long_conv/toeplitz.h: the causal long convolution as a Toeplitz matrix product on tensor cores
 * (kernels/long_conv/toeplitz.cu), the engine long_conv_fast uses for bf16 / fp16 at short T.
 *
 * Layouts as long_conv/fft_engine.h: x, y [B,d,T] in the run dtype (bf16 or fp16 only); taps [d,T]
 * fp32; pre3 [d,3] fp32 or NULL.  y[b,c,t] = sum_{j<=t} k[c,j] u[b,c,t-j], fp32 accumulation of
 * products of 16-bit operands (taps rounded to the run dtype after a per-channel power-of-two
 * scale, u rounded to the run dtype).  Its plan (kernel version, batch tile, tap-row geometry,
 * v5's schedule) is lct_plan_make's (long_conv/plan.h), made by long_conv_fast's planner. */
#ifndef CHELA_LONG_CONV_TOEPLITZ_H
#define CHELA_LONG_CONV_TOEPLITZ_H

#include <cuda_runtime_api.h>
#include <stddef.h>

#include "long_conv/plan.h"
#include "shape.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct long_conv_toeplitz long_conv_toeplitz_t;

/* Whether v5 (the wgmma kernel) can run on the current device: the wgmma unit was built for
 * sm_90a and the device is compute capability 9.0 (lc_device_t's wgmma_usable).  Never
 * launches anything. */
int long_conv_toeplitz_wgmma_here(void);

/* Converts device fp32 taps [d,T] into the kernel's tap rows and prepares the kernel plan picks,
 * once; may allocate and sync.  plan: lct_plan_make's for (B, d, T), T <= LONG_CONV_TOEPLITZ_MAX_T
 * (device bytes: lct_plan_workspace). */
int long_conv_toeplitz_create(const lct_plan_t *plan, const float *d_taps, cudaStream_t stream,
                              long_conv_toeplitz_t **out);

/* Enqueues y = k * u; dtype must be bf16 or fp16; no allocation, no sync. */
int long_conv_toeplitz_run(const long_conv_toeplitz_t *p, const void *d_x, void *d_y,
                           dtype_t dtype, const float *d_pre3, cudaStream_t stream);

/* What create planned, as config words: "toeplitz-wgmma W=2 sets=3", "toeplitz-mma v4 NT=32". */
void long_conv_toeplitz_describe(const long_conv_toeplitz_t *p, char *buf, size_t len);

void long_conv_toeplitz_destroy(long_conv_toeplitz_t *p);

#ifdef __cplusplus
}
#endif
#endif
