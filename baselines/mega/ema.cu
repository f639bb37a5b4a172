/* mega/ema.cu: the EMA's convolution taps (ema.h), computed once at setup. */
#include <cuda_runtime.h>
#include <math.h>

#include "bench_check.h"
#include "mega/ema.h"
#include "op_inputs.h" /* MEGA_EMA_H */

namespace {

constexpr int EMA_TAP_THREADS = 256;

/* A thread a tap (c, t); the h dims' weights and log-decays in double. */
__global__ void __launch_bounds__(EMA_TAP_THREADS)
ema_taps_kernel(const float *__restrict__ alpha, const float *__restrict__ delta,
                const float *__restrict__ beta, const float *__restrict__ eta, int d, int T,
                float *__restrict__ taps) {
    const long long n = (long long)d * T;
    for (long long i = (long long)blockIdx.x * EMA_TAP_THREADS + threadIdx.x; i < n;
         i += (long long)gridDim.x * EMA_TAP_THREADS) {
        const int c = (int)(i / T), t = (int)(i % T);
        double k = 0.0;
        for (int j = 0; j < MEGA_EMA_H; j++) {
            const size_t p = (size_t)c * MEGA_EMA_H + j;
            const double a = 1.0 / (1.0 + exp(-(double)alpha[p]));
            const double g = 1.0 / (1.0 + exp(-(double)delta[p]));
            k += (double)eta[p] * a * (double)beta[p] * exp((double)t * log1p(-a * g));
        }
        taps[i] = (float)k;
    }
}

} // namespace

extern "C" int mega_ema_taps(const float *alpha, const float *delta, const float *beta,
                             const float *eta, int d, int T, float *taps, cudaStream_t stream) {
    if (d < 1 || T < 1) BENCH_FAIL("mega_ema_taps: d %d, T %d", d, T);
    const long long n = (long long)d * T, blocks = (n + EMA_TAP_THREADS - 1) / EMA_TAP_THREADS;
    ema_taps_kernel<<<(unsigned)(blocks < 65536 ? blocks : 65536), EMA_TAP_THREADS, 0, stream>>>(
        alpha, delta, beta, eta, d, T, taps);
    CUDA_CHECK(cudaGetLastError());
    return 0;
}
