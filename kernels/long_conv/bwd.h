/* long_conv/bwd.h: the long convolution's backward on the engine (kernels/long_conv/bwd.cu), for
 * long_conv/fast and both short_long_conv forms.  The method and its buffers: plan_bwd.h.
 *
 * A run goes: lc_bwd_reverse_dy (dY' = dY reversed in time, kept), then any of
 *   lc_bwd_dx_rev      the engine on dY': dX reversed in time, in the backward's buffer
 *                      (lc_bwd_dx_rev_buf), for a consumer that reads it reversed;
 *   lc_bwd_unreverse   that buffer put in order into a caller's [B,d,T];
 *   lc_bwd_dk          dK [d,T] fp32 = sum_b corr(u_b, dY_b) for rows u of any dtype.
 * All enqueue only (create allocates and syncs). */
#ifndef CHELA_LONG_CONV_BWD_H
#define CHELA_LONG_CONV_BWD_H

#include <cuda_runtime_api.h>
#include <stddef.h>

#include "long_conv/fft_engine.h"
#include "long_conv/plan_bwd.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lc_bwd lc_bwd_t;

/* Device bytes lc_bwd_create allocates for (B, d, T) of dtype under o (NULL: auto). */
size_t lc_bwd_workspace(int B, int d, int T, const long_conv_fast_opts_t *o, dtype_t dtype);

/* The backward of the engine eng (which it keeps using: destroy it after) for its shape, run
 * dtype dtype.  0, or -1 after bench_set_error. */
int lc_bwd_create(const long_conv_fast_t *eng, dtype_t dtype, lc_bwd_t **out);
void lc_bwd_destroy(lc_bwd_t *b);

int lc_bwd_reverse_dy(lc_bwd_t *b, const void *d_dy, cudaStream_t stream);
int lc_bwd_dx_rev(lc_bwd_t *b, cudaStream_t stream);
const void *lc_bwd_dx_rev_buf(const lc_bwd_t *b);
int lc_bwd_unreverse(lc_bwd_t *b, void *d_dx, cudaStream_t stream);
int lc_bwd_dk(lc_bwd_t *b, const void *d_u, dtype_t u_dtype, float *d_dk, cudaStream_t stream);

/* The backward's config words: " bwd dx=rev-<engine path> dk=fft-chan threads=<n>" (the fused
 * per-channel kernel), " dk=fft-spectra chunks=<n>" (row spectra), " dk=fft-run" (B = 1). */
void lc_bwd_describe(const lc_bwd_t *b, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
