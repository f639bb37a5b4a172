/* mega/ema.h: MEGA's multi-dimensional damped EMA as the taps of a causal convolution
 * (chela-spec.md): the EMA is linear and time-invariant, so
 *   x'_t = sum_j eta_j h_{t,j},  h_t = a beta x_t + (1 - a g) h_{t-1}
 * equals x' = k * x with k[t] = sum_j eta_j a_j beta_j (1 - a_j g_j)^t, a = sigmoid(alpha),
 * g = sigmoid(delta).  mega/layer computes k once at setup and runs the convolution through
 * the long-conv engine (long_conv/fft_engine.h), as MEGA's own code does with an FFT. */
#ifndef CHELA_MEGA_EMA_H
#define CHELA_MEGA_EMA_H

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* taps [d, T] fp32 (device) from the device parameters alpha, delta, beta, eta [d, h] fp32
 * (h = MEGA_EMA_H; alpha, delta before their sigmoid).  Each tap is summed in double and
 * rounded once (the powers as exp(t log1p(-a g)), so a slow dim's decay keeps its precision).
 * Enqueued on stream; returns 0, or -1 after bench_set_error. */
int mega_ema_taps(const float *alpha, const float *delta, const float *beta, const float *eta,
                  int d, int T, float *taps, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
