/* short_long_conv/bwd.h: both forms' backward (kernels/short_long_conv/bwd.cu).  C++ only. */
#ifndef CHELA_SHORT_LONG_CONV_BWD_H
#define CHELA_SHORT_LONG_CONV_BWD_H

#include <cuda_runtime_api.h>
#include <stddef.h>

#include "short_long_conv/forms.h"
#include "variant.h"

/* Device bytes the backward allocates for s (0 for PASS_FWD). */
size_t slc_bwd_workspace(const shape_t *s);
/* After the engine is made: the backward's buffers, when s->pass has a backward.  0 or -1. */
int slc_bwd_setup(const shape_t *s, slc_state_t *st);
/* The gradients of x, k3, k_long, k3b, km (io's inputs, g's grad[0..4]).  branches = 1: the
 * branches form (the engine's kernel is k_long; the short branches' gradients by their own
 * correlations), 0: reparam (the engine's kernel is kc; dk3b, dkm sliced from dkc). */
int slc_bwd_run(slc_state_t *st, const io_t *io, const grad_io_t *g, int branches,
                cudaStream_t stream);

#endif
