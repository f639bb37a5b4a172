/* long_conv/plan_bwd.h: the long convolution's backward plan (kernels/long_conv/bwd.cu), a pure
 * host function of numbers like plan.h's, checked by tests/test_plan_long_conv_bwd.c.
 *
 * The backward of y = k * x (per channel, causal, x [B,d,T], k [d,T] fp32), given dY:
 *   dX[b,c,s] = sum_{t>=s} k[c,t-s] dY[b,c,t]: with dY'[t] = dY[T-1-t] (time reversal),
 *               dX[T-1-s] = (k * dY')[s], so the forward engine itself makes dX from a
 *               reversed copy of dY (its FFT path or its Toeplitz paths, whichever the forward
 *               plan picks for the run dtype), and a reversing copy puts dX in order.
 *   dK[c,j]   = sum_b sum_s x[b,c,s] dY[b,c,s+j] = sum_b (x_b * dY'_b)[T-1-j]: a convolution
 *               of two length-T rows summed over the batch.
 *               "fft-chan" (the FFT in one block, N <= LCB_FUSED_MAX_M: T <= 4096 by default):
 *               one kernel a channel (bwd_kernels.cuh) transforms the batch's rows two at a
 *               time, sums the products in registers, one inverse; nothing else is stored.
 *               "fft-spectra" (clusters: T > 4096): the engine's FFT kernel makes
 *               every row's spectrum (its setup mode: FFT(row)/N, the half it stores of a real
 *               row's spectrum); one product-and-sum kernel over the batch gives
 *               S = N sum_b X_b DY'_b, itself the stored spectrum of the real row
 *               sum_b x_b * dY'_b; the engine's run with S as its kernel spectrum on a unit
 *               impulse per channel returns that row, and a reversing copy gives dK.  B = 1:
 *               the row is u * dY' itself, the engine's run on u with dY''s spectrum as its
 *               kernel (the spectrum of u and the product kernel skipped; no acc buffer).
 * The batch goes through the spectra in chunks so the two chunks' spectra stay within
 * LCB_SPEC_BUDGET bytes whatever B. */
#ifndef CHELA_LONG_CONV_PLAN_BWD_H
#define CHELA_LONG_CONV_PLAN_BWD_H

#include <stddef.h>

#include "long_conv/plan.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest transform the fused per-channel dK kernel takes: one block of M = N points, one
 * span-1 group of 16 a thread (M / 16 <= LCF_MAX_THREADS), the buffer within 70 KiB. */
#define LCB_FUSED_MAX_M 8192

/* Device bytes the two spectra of one batch chunk (x and dY') may hold together. */
#define LCB_SPEC_BUDGET ((size_t)512 << 20)

typedef struct {
    int B, d, T;
    int fused_dk;      /* 1: dK by the per-channel kernel ("fft-chan"): P = 1, M <= LCB_FUSED_MAX_M;
                        * the spectra's fields below are then 0 (chunk B, nchunks 1)            */
    int dk_threads;    /* fused: threads a block, max(64, M / 16)                                 */
    size_t dk_smem;    /* fused: dynamic shared memory a block, the FFT plan's smem_bytes         */
    size_t spec_row;   /* float2 elements of one row's stored spectrum: rows x M of the FFT plan */
    int chunk;         /* batch rows a chunk of the dK spectra (1..B)                             */
    int nchunks;       /* ceil(B / chunk)                                                         */
    /* device bytes of each buffer */
    size_t rev_bytes;  /* dY' and the engine's reversed dX: [B,d,T] of the run dtype, each       */
    size_t spec_bytes; /* the x and dY' spectra of one chunk: chunk x d x spec_row float2, each
                        * (B = 1: dY''s alone)                                                  */
    size_t acc_bytes;  /* S: d x spec_row float2 (0 at B = 1)                                    */
    size_t imp_bytes;  /* the impulse rows and dK reversed, in place: [d,T] fp32                 */
} lcb_plan_t;

/* The backward plan for (B, d, T) whose FFT plan is fft (lcf_plan_t of lc_plan_make: N, P, M,
 * rows), activations of elem_bytes bytes, spectra within budget bytes a chunk (0: the default
 * LCB_SPEC_BUDGET).  A chunk is at least one batch row, and its spectrum grid (chunk x d x P
 * blocks) stays below 2^31.  0, or -1 (plan untouched) for an empty shape. */
int lcb_plan_make(int B, int d, int T, const lcf_plan_t *fft, size_t elem_bytes, size_t budget,
                  lcb_plan_t *plan);

/* Device bytes of all of the plan's buffers. */
size_t lcb_plan_workspace(const lcb_plan_t *plan);

#ifdef __cplusplus
}
#endif
#endif
