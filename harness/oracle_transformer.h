/* oracle_transformer.h: what transformer/oracle_fp32's forward (oracle_transformer.cu) and
 * backward (oracle_transformer_bwd.cu) share: the state, the sizes of the training buffers and
 * LayerNorm's row statistics; what all the oracles share (launch sizes, the widening of a
 * run-dtype tensor to fp32, the column sums) is oracle_common.cuh's.  CUDA C++ only, included
 * by those two files alone.
 *
 * Why LayerNorm's statistics live here: the backward recomputes each row's mean and 1/sigma
 * rather than keeping them; with one definition (the same operations in the same order) it
 * recomputes the forward's values, so it differentiates the normalization the forward applied. */
#ifndef CHELA_ORACLE_TRANSFORMER_H
#define CHELA_ORACLE_TRANSFORMER_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stddef.h>

#include "common/math.cuh" /* warp_sum (only: its fast-divide silu / sigm are not for the oracle) */
#include "op_inputs.h"     /* CHELA_LN_EPS */
#include "oracle_common.cuh" /* CUBLAS_WS_BYTES, ROW_WARPS, EW_THREADS, ew_blocks, oracle_colsum */
#include "shape.h"

/* (This oracle's own ew_blocks, now oracle_common.cuh's, also turned n = 0 into one block; no
 * launch here has n = 0: supports() refuses an empty shape.) */

namespace tf_oracle {

/* The backward's column sums go through d_part, COLSUM_CHUNKS partial rows (oracle_common.cuh). */
using oracle_colsum::COLSUM_CHUNKS;

/* The act-dtype inputs, widened to fp32 at the start of every run: oracle_state.d_wide[]. */
enum { WIDE_X, WIDE_WQKV, WIDE_WO, WIDE_W1, WIDE_W2, N_WIDE };

/* Layouts row-major, token row b*T + t outermost; M = B*T rows. */
struct oracle_state {
    cublasHandle_t handle;
    void *d_ws;
    float *d_wide[N_WIDE]; /* fp32 copies of x, Wqkv, Wo, W1, W2 (WIDE_*) */
    /* The forward's activations, all fp32: xln = LN1(x) [M,d], qkv [M,3d], a (attention,
     * heads side by side) [M,d], y (residual stream) [M,d], yln = LN2(y) [M,d],
     * h = GELU(u) [M,4d]. */
    float *d_xln, *d_qkv, *d_a, *d_y, *d_yln, *d_h;
    /* Training only (setup saw pass != PASS_FWD; else all NULL and train 0). */
    int train;
    float *d_u;   /* [M,4d] GELU's input, kept by run()                                    */
    float *d_lse; /* [B*H][T] each attention row's log-sum-exp of its scaled scores, run() */
    /* The backward's scratch, rewritten by every run_bwd: */
    float *d_dy;    /* [M,d]  dy widened, then dY = dy + LN2's backward (the residual)    */
    float *d_dh;    /* [M,4d] dHact, then dU in place; later dQKV in its first [M,3d]       */
    float *d_gd;    /* [M,d]  dYln, then dA, then dX~                                       */
    float *d_delta; /* [B*H][T] dA_i . A_i                                                  */
    float *d_mean, *d_rstd; /* [M] LN statistics of the row being differentiated          */
    float *d_part;  /* [COLSUM_CHUNKS][4d] column sums' partials                            */
};

/* Floats of the training buffers (oracle_state, training only), for setup and
 * workspace_bytes alike: u, dh 4 M d each; dy, gd M d each; lse, delta B H T each; mean,
 * rstd M each; the partials. */
inline size_t train_floats(const shape_t *s) {
    const size_t M = (size_t)s->B * (size_t)s->T, d = (size_t)s->d;
    const size_t rows_bh = (size_t)s->B * (size_t)s->H * (size_t)s->T;
    return 10 * M * d + 2 * rows_bh + 2 * M + (size_t)COLSUM_CHUNKS * 4 * d;
}

/* Row xr's LayerNorm statistics in every lane of the calling warp: the mean, then the
 * biased variance of the centered values, inv = 1/sqrtf(var + eps) (not rsqrtf). */
__device__ __forceinline__ void ln_row_stats(const float *xr, int d, int lane, float &mean,
                                             float &inv) {
    float sum = 0.f;
    for (int i = lane; i < d; i += 32) sum += xr[i];
    mean = warp_sum(sum) / (float)d;
    float sq = 0.f;
    for (int i = lane; i < d; i += 32) sq += (xr[i] - mean) * (xr[i] - mean);
    inv = 1.0f / sqrtf(warp_sum(sq) / (float)d + (float)CHELA_LN_EPS);
}

} // namespace tf_oracle

#endif
