/* oracle_mega.h: what mega/oracle_fp32's forward (oracle_mega.cu) and backward
 * (oracle_mega_bwd.cu, oracle_mega_bwd_seq.cu) share: the state, the attention's and the EMA
 * scan's launch shapes and coefficients, the sizes of the training buffers and the launchers one file lends
 * another.  CUDA C++ only, included by those three files alone. */
#ifndef CHELA_ORACLE_MEGA_H
#define CHELA_ORACLE_MEGA_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stddef.h>

#include "op_inputs.h"
#include "oracle_common.cuh" /* sigmoid_f; oracle_colsum: the backward's column sums */
#include "shape.h"

namespace mega_oracle {

constexpr int EMA_THREADS = 128; /* the EMA scans: a thread per (b, c)                        */
constexpr int AT_THREADS = 256;  /* attention: threads a query (forward) or a row (backward)  */
constexpr int AT_WARPS = AT_THREADS / 32;
constexpr int AT_VMAX = 16;      /* value columns a thread: v <= 4096                         */
constexpr int AT_ZMAX = 1024;    /* q (or k) staged in shared memory: z <= 1024               */
constexpr int AT_ZPER = AT_ZMAX / AT_THREADS; /* backward: dQ / dK columns a thread          */

/* The backward's column sums (bias, gain, kappa / mu gradients) go through g_cs,
 * COLSUM_CHUNKS partial rows (oracle_common.cuh). */
using oracle_colsum::COLSUM_CHUNKS;

/* The EMA's coefficients for channel c as its scans (oracle_mega.cu ema_scan, the backward's
 * ema_bwd_x) use them, a = sigmoid(alpha), g = sigmoid(delta): gain_j = a beta_j,
 * rate_j = a g (the decay 1 - a g kept as a rate: oracle_mega.cu says why), et_j = eta_j. */
static __device__ __forceinline__ void ema_coeffs(const float *__restrict__ alpha,
                                                  const float *__restrict__ delta,
                                                  const float *__restrict__ beta,
                                                  const float *__restrict__ eta, int c,
                                                  float *gain, float *rate, float *et) {
#pragma unroll
    for (int j = 0; j < MEGA_EMA_H; j++) {
        const size_t pi = (size_t)c * MEGA_EMA_H + j;
        const float a = sigmoid_f(alpha[pi]), g = sigmoid_f(delta[pi]);
        gain[j] = a * beta[pi];
        rate[j] = a * g;
        et[j] = eta[pi];
    }
}

/* Buffers fp32, [N, width] row-major (token row b*T + t outermost), N = B*T,
 * np = z + v + 2d. */
struct oracle_state {
    cublasHandle_t handle;
    void *d_ws;      /* cuBLAS workspace                                                */
    int chunk;       /* mega_chunk(s), resolved at setup                                */
    /* fp32 copies of the GEMM weights, row-major [in, out] as in the inputs */
    float *d_wproj, *d_wv, *d_uh, *d_w1, *d_w2;
    /* the forward's activations */
    float *d_xln;    /* X~                        [N, d]  */
    float *d_xe;     /* X' = EMA(X~)              [N, d]  */
    float *d_p;      /* P = X' W_proj + b_proj    [N, np] */
    float *d_q, *d_k;/* Q, K                      [N, z]  */
    float *d_val;    /* V                         [N, v]  */
    float *d_o;      /* M (inference), or the attention's O when training (M in d_m) */
    float *d_hm;     /* M . U_h                   [N, d]  */
    float *d_ln2;    /* LayerNorm2(Y)             [N, d]  */
    float *d_f;      /* F = SiLU(L W1)            [N, 2d] */
    /* Training only (setup saw pass != PASS_FWD; else all NULL and train 0). */
    int train;
    /* kept by run(): */
    float *d_vpre;   /* X~ W_v + b_v              [N, v]  */
    float *d_m;      /* M = SiLU(G) . O           [N, v]  */
    float *d_stat;   /* [N][2]: each query's score maximum and exp-sum (the softmax's) */
    float *d_y;      /* Y                         [N, d]  (out = Y + F W2)      */
    float *d_fpre;   /* L W1                      [N, 2d] */
    /* the backward's scratch, rewritten by every run_bwd (oracle_mega_bwd.cu): */
    float *g_dy;     /* [N, d]  dY', then dY                                     */
    float *g_df;     /* [N, 2d] dF, then dPf; later dX' in its first N d         */
    float *g_dd;     /* [N, d]  dL (LayerNorm2's output), then dX~               */
    float *g_dproj;  /* [N, np] [dPz | dG | dF | dHz]                            */
    float *g_dm;     /* [N, v]  dM, then dO in place                             */
    float *g_dv;     /* [N, v]  dV, then dPv in place                            */
    float *g_dq, *g_dk; /* [N, z]                                                */
    float *g_delta;  /* [N]     dO_t . O_t, the softmax backward's row term      */
    float *g_mean, *g_rstd; /* [N] LayerNorm statistics of the rows being differentiated */
    float *g_cs;     /* [COLSUM_CHUNKS][np] column sums' partials (oracle_common.cuh) */
    float *g_ema;    /* [B][d h][2] the EMA's per-sequence sums S0, S1          */
};

inline int n_proj(const shape_t *s) { return s->z + s->v + 2 * s->d; }

/* Floats of the training buffers (kept and scratch), for setup and workspace_bytes alike. */
inline size_t train_floats(const shape_t *s) {
    const size_t N = (size_t)s->B * s->T, d = (size_t)s->d, z = (size_t)s->z, v = (size_t)s->v;
    const size_t np = (size_t)n_proj(s);
    const size_t kept = N * (2 * v + 3 * d + 2);
    const size_t scratch = N * (4 * d + np + 2 * v + 2 * z + 3) + COLSUM_CHUNKS * np +
                           (size_t)s->B * d * MEGA_EMA_H * 2;
    return kept + scratch;
}

/* oracle_mega_bwd_seq.cu.  The chunked attention's backward from dO [N,v] and the kept Q, K,
 * V, O and softmax statistics: dQ, dK [N,z], dV [N,v] (and st->g_delta). */
int attn_bwd(const oracle_state *st, const shape_t *s, const float *d_o, float *dq, float *dk,
             float *dv, cudaStream_t stream);

/* oracle_mega_bwd_seq.cu.  The EMA's backward from dX' [N,d]: dX~ += its adjoint (the EMA in
 * reversed time), and the gradients of alpha, delta, beta, eta (grad, MEGA_IN_* order). */
int ema_bwd(const oracle_state *st, const shape_t *s, const float *const *in, const float *dxe,
            float *dxln, float *const *grad, cudaStream_t stream);

} // namespace mega_oracle

#endif
