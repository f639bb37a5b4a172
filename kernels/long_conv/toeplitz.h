/* long_conv/toeplitz.h: the causal long convolution as a Toeplitz matrix product on tensor cores
 * (kernels/long_conv/toeplitz.cu), the engine long_conv_fast uses for bf16 / fp16 at short T.
 *
 * Layouts as long_conv/fft_engine.h: x, y [B,d,T] in the run dtype (bf16 or fp16 only); taps [d,T]
 * fp32; pre3 [d,3] fp32 or NULL.  y[b,c,t] = sum_{j<=t} k[c,j] u[b,c,t-j], fp32 accumulation of
 * products of 16-bit operands (taps rounded to the run dtype after a per-channel power-of-two
 * scale, u rounded to the run dtype). */
#ifndef CHELA_LONG_CONV_TOEPLITZ_H
#define CHELA_LONG_CONV_TOEPLITZ_H

#include <cuda_runtime_api.h>
#include <stddef.h>

#include "settings.h"
#include "shape.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct long_conv_toeplitz long_conv_toeplitz_t;

/* What the settings of long_conv/fast choose in this engine (harness/variants.c: lct_version,
 * lcw_w, lcw_sets), resolved by the caller at setup; SETTING_AUTO (settings.h) in a field, or
 * a NULL pointer for all of them, is the engine's own choice. */
typedef struct {
    int version; /* 3 or 4 keep an older mma.sync kernel (v4 where its resident tile fits,
                  * else v3); 5 / auto: the newest this device runs                          */
    int lcw_w;   /* v5: warpgroups a block, 1|2|4 (auto: 4 from 16 groups, 2 from 8, else 1) */
    int lcw_sets;/* v5: fragment sets at one warpgroup, 2|3 (auto: 3 from 4 groups, else 2)  */
} long_conv_toeplitz_opts_t;

/* Largest T the Toeplitz engine accepts (its work grows as T per output; the FFT is used above). */
#define LONG_CONV_TOEPLITZ_MAX_T 16384

/* Longest T long_conv_fast hands v5 (the wgmma kernel) by default, where B >= 8 fills its
 * 8-row blocks (profiles/NOTES.md has the crossover with the FFT path). */
#define LONG_CONV_TOEPLITZ_V5_MAX_T 4096

/* The largest T long_conv_fast should hand this engine by default for a batch of B: 4096 where
 * v5 runs on the current device (and o leaves it the version) and B >= 8, else 2048 (the
 * crossovers measured on the H100).  o may be NULL (all auto). */
int long_conv_toeplitz_default_max_t(int B, const long_conv_toeplitz_opts_t *o);

/* Device bytes of the per-channel fp16 tap rows and scales, and the prologue's fp16 u [B,d,T],
 * for the kernels o picks (NULL: all auto). */
size_t long_conv_toeplitz_workspace(int B, int d, int T, const long_conv_toeplitz_opts_t *o);

/* Converts device fp32 taps [d,T] into the kernel's tap rows and plans the kernel o picks (NULL:
 * all auto), once; may allocate and sync. */
int long_conv_toeplitz_create(int B, int d, int T, const float *d_taps,
                              const long_conv_toeplitz_opts_t *o, cudaStream_t stream,
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
