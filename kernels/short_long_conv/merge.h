/* short_long_conv/merge.h: structural reparameterization of CHELA's short-long convolution, the
 * kernel merge (kernels/short_long_conv/merge.cu), exported for short_long_conv/reparam and the
 * whole layer. */
#ifndef CHELA_SHORT_LONG_CONV_MERGE_H
#define CHELA_SHORT_LONG_CONV_MERGE_H

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Enqueues kc = K_long + pad(k3b) + pad(km) (tap j of each short kernel added to tap j
 * of the long one), all fp32: k_long, kc [d,T]; k3b [d,3]; km [d,k_m].  Returns 0 or -1
 * after bench_set_error. */
int slc_merge_kernels(const float *k_long, const float *k3b, const float *km, int k_m, int d,
                      int T, float *kc, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
