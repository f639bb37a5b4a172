/* long_conv_tc.h: the FFT path of long_conv/fast for bf16 / fp16 runs with its radix-16 stages
 * on tensor cores (kernels/long_conv_tc.cu).  long_conv_fast owns the plan (transform length,
 * cluster size, kernel spectrum, twiddle table); this file only runs the transform.
 *
 * Layouts as long_conv_fast.h: x, y [B,d,T] in the run dtype; pre3 [d,3] fp32 or NULL; spec
 * [d][rows][M] fp32 complex, FFT(k)/N in the fp32 kernel's position order (the tensor-core
 * stages keep that order: same radices, same spans, outputs written in place). */
#ifndef CHELA_LONG_CONV_TC_H
#define CHELA_LONG_CONV_TC_H

#include <cuda_runtime_api.h>
#include <stddef.h>

#include "shape.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const void *x;       /* [B,d,T] run dtype                                     */
    void *y;             /* [B,d,T] run dtype                                     */
    const float *pre3;   /* [d,3] or NULL                                         */
    const float2 *spec;  /* [d][rows][M]                                          */
    const float2 *tw;    /* [n_hi + 128]: W_N^(128 h), then W_N^l                 */
    int B, d, T;
    int N, P, M, rows, n_hi;
} long_conv_tc_args_t;

/* Whether the tensor-core path takes this plan (M = N / P points per block). */
int long_conv_tc_supports(int M);

/* Dynamic shared memory of one block (fp16 planar data + twiddle tables). */
size_t long_conv_tc_smem(int M, int n_hi);

/* Sets the kernels' shared-memory attribute for cluster size P; once, in setup. */
int long_conv_tc_prepare(int P, size_t smem);

/* Enqueues y = k * u; dtype bf16 or fp16; no allocation, no sync. */
int long_conv_tc_run(const long_conv_tc_args_t *a, dtype_t dtype, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
