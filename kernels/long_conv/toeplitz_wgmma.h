/* long_conv/toeplitz_wgmma.h: the Toeplitz engine's v5, the Toeplitz product on Hopper's warpgroup
 * tensor cores (kernels/long_conv/toeplitz_wgmma.cu), as kernels/long_conv/toeplitz.cu's host
 * code calls it.  C++ only (its one caller is a .cu file).  Its plan (lcw_plan, lcw_nt,
 * lcw_geometry, lcw_smem_bytes) is host C in long_conv/plan.h. */
#ifndef CHELA_LONG_CONV_TOEPLITZ_WGMMA_H
#define CHELA_LONG_CONV_TOEPLITZ_WGMMA_H

#include <cuda_runtime_api.h>

#include "long_conv/plan.h"
#include "long_conv/toeplitz_io.cuh"

/* Whether v5 can run on device dev: its translation unit was built for sm_90a and dev is
 * compute capability 9.0.  Never launches anything. */
bool lcw_usable(int dev);

/* Sets the shared-memory limit of the kernels of schedule sh (lcw_plan) for batch tile nt.  0,
 * or -1 after bench_set_error(). */
int lcw_prepare(int nt, int tw, int tg, lcw_shape sh);

/* Enqueues y = K u for prm (prm.tg, prm.TW and prm.base from lcw_geometry) with schedule sh.
 * u_half: x holds fp16 (the prologue's u, or an fp16 run), else bf16; y_bf16: y is bf16, else
 * fp16.  0, or -1 after bench_set_error(). */
int lcw_launch(int nt, lcw_shape sh, bool u_half, bool y_bf16, const lct_params &prm,
               cudaStream_t stream);

#endif
