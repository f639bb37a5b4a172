/* linear_attn_wgmma.h: linear_attn/chunked v6, the causal output pass on Hopper's warpgroup
 * tensor cores (kernels/linear_attn_wgmma.cu), as linear_attn_chunked.cu's host code calls it.
 * That file plans, runs passes A and B and the norm pass; this one adds v6's prep and pass C.
 * C++ only (both callers are .cu files). */
#ifndef CHELA_LINEAR_ATTN_WGMMA_H
#define CHELA_LINEAR_ATTN_WGMMA_H

#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdint.h>

#include "linear_attn/args.h"

/* Whether v6 can run on device dev: its translation unit was built for sm_90a (CMake does so
 * when the architectures list names 90) and dev is compute capability 9.0, the only one that
 * runs sm_90a code.  Never launches anything. */
bool lac_v6_usable(int dev);

/* Sets the v6 kernels' shared-memory limits and returns the resident blocks an SM of pass C in
 * *bps and of pass A in *bps_a.  bf16: bf16 inputs (else fp16); dk 64 or 128.  0, or -1 after
 * bench_set_error(). */
int lac_v6_prepare(bool bf16, int dk, int *bps, int *bps_a);

/* The buffers one v6 launch reads and writes (device pointers), and whether the kernels after
 * the plan's first are launched with programmatic dependent launch. */
struct lac_v6_io {
    const void *q, *k, *v;
    void *o;
    uint16_t *images;     /* lac_v6_image_bytes of workspace                           */
    float *states_out;    /* segment states: pass A writes, pass C reads after the scan */
    float *rowpart;       /* norm partials (norm_mode 2 or 3), else unused             */
    bool pdl;
};

/* The front of a v6 plan: the prep (the plan's first kernel: plain launch), then pass A when
 * a.ws_per_bh > 0 (its part states, for the caller's scan).  0, or -1 after bench_set_error(). */
int lac_v6_enqueue_front(bool bf16, int dk, const lac_v6_io &io, const lac_args &a,
                         int64_t nbh, int nchunks, cudaStream_t stream);

/* v6's pass C, after the scan.  gated picks the copy that carries the gate of norm_mode 3 and
 * V's SiLU.  0, or -1 after bench_set_error(). */
int lac_v6_enqueue_output(bool bf16, int dk, const lac_v6_io &io, const lac_args &a,
                          int64_t nbh, bool gated, cudaStream_t stream);

#endif
