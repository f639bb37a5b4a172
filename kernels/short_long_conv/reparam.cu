/* short_long_conv/reparam: CHELA's short-long convolution in its inference form (chela-spec.md):
 * structural reparameterization (forms.h has the op).  The three kernels are merged once in
 * setup, kc = K_long + pad(k3b) + pad(km) (merge.cu), the merged kernel's spectrum (or Toeplitz
 * rows) precomputed by the long-conv engine, then one pass z = kc * SiLU(k3 * x) with the short
 * conv + SiLU done as the engine loads (at T <= 4k two: the SiLU prologue into an fp16 scratch,
 * then the Toeplitz product).  What it saves against branches.cu is that form's pass (2);
 * profiles/NOTES.md (short_long_conv) compares the two. */
#include <cuda_runtime.h>
#include <stdlib.h>

#include "bench_check.h"
#include "long_conv/fft_engine.h"
#include "short_long_conv/bwd.h"
#include "short_long_conv/forms.h"
#include "short_long_conv/merge.h"
#include "variant.h"

extern "C" {
DECLARE_VARIANT(short_long_conv_reparam);
DECLARE_BWD(short_long_conv_reparam);
}

extern "C" const char *short_long_conv_reparam_supports(const shape_t *s) { return slc_supports(s); }

extern "C" size_t short_long_conv_reparam_workspace_bytes(const shape_t *s) {
    const long_conv_fast_opts_t o = slc_opts(s);
    return long_conv_fast_workspace(s->B, s->d, s->T, &o) + (size_t)s->d * s->T * sizeof(float) +
           slc_bwd_workspace(s);
}

extern "C" int short_long_conv_reparam_setup(const shape_t *s, const io_t *io, void **state) {
    *state = NULL;
    slc_state_t *st = (slc_state_t *)calloc(1, sizeof *st);
    if (!st) BENCH_FAIL("short_long_conv/reparam: out of host memory");
    st->dtype = s->dtype;
    *state = st;
    float *kc = NULL;
    CUDA_CHECK(cudaMalloc(&kc, (size_t)s->d * s->T * sizeof(float)));
    int rc = slc_merge_kernels((const float *)io->in[2], (const float *)io->in[3],
                               (const float *)io->in[4], shape_km(s->T), s->d, s->T, kc, 0);
    const long_conv_fast_opts_t o = slc_opts(s);
    if (!rc) rc = long_conv_fast_create(s->B, s->d, s->T, kc, &o, 0, &st->eng);
    if (!rc && cudaDeviceSynchronize() != cudaSuccess) {
        bench_set_error(__FILE__, __LINE__, "reparam setup: %s", cudaGetErrorString(cudaGetLastError()));
        rc = -1;
    }
    cudaFree(kc);
    if (!rc) rc = slc_bwd_setup(s, st);
    return rc;
}

extern "C" int short_long_conv_reparam_run(void *state, const io_t *io, cudaStream_t st) {
    return long_conv_fast_run(((const slc_state_t *)state)->eng, io->in[0], io->out,
                              io->shape->dtype, (const float *)io->in[1], st);
}

/* bwd.cu: one long correlation with kc; the branches' kernel gradients sliced from dkc */
extern "C" int short_long_conv_reparam_run_bwd(void *state, const io_t *io, const grad_io_t *g,
                                             cudaStream_t st) {
    return slc_bwd_run((slc_state_t *)state, io, g, 0, st);
}

extern "C" void short_long_conv_reparam_teardown(void *state) { slc_teardown(state); }

extern "C" void short_long_conv_reparam_config(const void *state, char *buf, size_t len) {
    slc_config(state, buf, len);
}
