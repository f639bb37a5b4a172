/* short_long_conv/merge.cu: the reparam form's kernel merge (merge.h), used by
 * short_long_conv/reparam and chela/fused at setup: kc = K_long + pad(k3b) + pad(km). */
#include <cuda_runtime.h>
#include <stddef.h>

#include "bench_check.h"
#include "short_long_conv/merge.h"

namespace {

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

} // namespace

extern "C" int slc_merge_kernels(const float *k_long, const float *k3b, const float *km, int k_m,
                                 int d, int T, float *kc, cudaStream_t stream) {
    const size_t n = (size_t)d * T;
    const unsigned blocks = (unsigned)((n + 255) / 256 < 4096 ? (n + 255) / 256 : 4096);
    merge_kernel<<<blocks, 256, 0, stream>>>(k_long, k3b, km, k_m, d, T, kc);
    CUDA_CHECK(cudaGetLastError());
    return 0;
}
