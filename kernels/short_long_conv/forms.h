/* short_long_conv/forms.h: what the short-long convolution's two forms share (branches.cu,
 * reparam.cu): the long-convolution engine both run, with long_conv/fast's settings; the shapes
 * both take; their state and config.  C++ only (included by the two .cu files).
 *
 *   u = SiLU(k3 * x);   z = K_long * u + k3b * u + km * u          x, z [B,d,T]
 *
 * Inputs (op.h): x, k3 [d,3], k_long [d,T], k3b [d,3], km [d,k_m]. */
#ifndef CHELA_SHORT_LONG_CONV_FORMS_H
#define CHELA_SHORT_LONG_CONV_FORMS_H

#include <cuda_runtime_api.h>
#include <stdlib.h>
#include <string.h>

#include "long_conv/bwd.h"
#include "long_conv/fft_engine.h"
#include "shape.h"

/* Longest middle short kernel k_m: the branches form's pass holds the summed short taps in
 * shared memory (branches.cu); both forms take the same shapes. */
#define SLC_MAX_KM 32

static inline const char *slc_supports(const shape_t *s) {
    if (s->T > LONG_CONV_FAST_MAX_T) return "T beyond the long-conv engine's 65536";
    if (shape_km(s->T) > SLC_MAX_KM) return "k_m beyond 32";
    return NULL;
}

/* The long conv's engine takes long_conv/fast's settings (the same names: variants.c gives
 * both forms LC_FAST_SETTINGS), so a forced path is tested with the SiLU prologue too. */
static inline long_conv_fast_opts_t slc_opts(const shape_t *s) {
    long_conv_fast_opts_t o;
    long_conv_fast_opts_from(s->set, &o);
    return o;
}

/* Both variants' state: the engine, and the run dtype for the config column (the engine takes
 * the dtype per run, and its path depends on it). */
typedef struct {
    long_conv_fast_t *eng;
    dtype_t dtype;
    /* the backward's (setup saw a pass with one; NULL otherwise): the long correlations' buffers,
     * and [B,d,T] fp32 holding u = SiLU(k3 * x), then dL/dpre (bwd.cu) */
    lc_bwd_t *bwd;
    float *ubuf;
} slc_state_t;

static inline void slc_teardown(void *state) {
    slc_state_t *st = (slc_state_t *)state;
    if (!st) return;
    lc_bwd_destroy(st->bwd);
    if (st->ubuf) cudaFree(st->ubuf);
    long_conv_fast_destroy(st->eng);
    free(st);
}

/* The long conv's path.  The short branches' pass of `branches` is one kernel whose vector or
 * scalar build follows the run's pointers, not a plan: it is not reported. */
static inline void slc_config(const void *state, char *buf, size_t len) {
    const slc_state_t *st = (const slc_state_t *)state;
    if (st) {
        long_conv_fast_describe(st->eng, st->dtype, buf, len);
        const size_t used = strlen(buf);
        if (st->bwd && used < len) lc_bwd_describe(st->bwd, buf + used, len - used);
    } else if (len) {
        buf[0] = 0;
    }
}

#endif
