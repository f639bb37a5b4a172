/* oracle_chela.h: what chela/oracle_fp32's forward (oracle_chela.cu) and backward
 * (oracle_chela_bwd.cu, oracle_chela_bwd_seq.cu) share: the state, the tilings of the long
 * conv and the scans, the short conv's pre-activation, the sizes of the training buffers and
 * the launchers one file lends another.  CUDA C++ only, included by those three files alone.
 *
 * Why the short conv's pre-activation lives here: the backward recomputes it (3 taps a value)
 * rather than keeping another [N,d] buffer; with one definition, the same fmaf chain, it
 * recomputes the forward's value, so SiLU' is taken where the forward took SiLU.  LayerNorm's
 * and RMSNorm's row statistics are recomputed the same way, by the forward's operations in
 * the forward's order (oracle_chela_bwd.cu says where). */
#ifndef CHELA_ORACLE_CHELA_H
#define CHELA_ORACLE_CHELA_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stddef.h>

#include "oracle_common.cuh" /* oracle_colsum: the backward's column sums */
#include "shape.h"

namespace chela_oracle {

/* The backward's column sums go through g_cs, COLSUM_CHUNKS partial rows (oracle_common.cuh). */
using oracle_colsum::COLSUM_CHUNKS;

/* Long conv tiling: the forward's long_conv_branches, which the backward also runs in reversed
 * time for dU, and the backward's dK pass (conv_dk). */
constexpr int LC_CH = 32;               /* channels per block, one per lane            */
constexpr int LC_WARPS = 8;             /* warps per block                             */
constexpr int LC_R = 16;                /* consecutive outputs (or lags) per thread    */
constexpr int LC_TB = LC_WARPS * LC_R;  /* outputs per block: 128                      */
constexpr int LC_SB = 64;               /* inputs per staged chunk                     */
constexpr int LC_KROWS = LC_TB + LC_SB; /* taps staged per chunk                       */

/* Linear-attention scans: the forward's la_scan, which in reverse is the backward's dV scan
 * (state columns in registers, G threads a value column), and the backward's row scans (one
 * state row a thread, LR_NC columns). */
constexpr int LA_THREADS = 128;
constexpr int LA_ZG = 32;                /* state rows per thread                          */
constexpr int LA_GMAX = 8;               /* threads per value column at most               */
constexpr int LA_ZMAX = LA_ZG * LA_GMAX; /* 256: the largest z the oracle supports         */
constexpr int LA_TS = 16;                /* steps staged in shared memory at a time        */
constexpr int LA_FOLD = 256;             /* steps between folding S_loc into S_glob        */
constexpr int LR_NC = 32;                /* row scans: state columns a thread (and a block) */
static_assert(LA_FOLD % LA_TS == 0, "fold on a tile boundary");
static_assert(LA_ZG % 4 == 0 && LR_NC % 4 == 0, "float4 groups");

/* Buffers fp32, [N, width] row-major (token row b*T + t outermost, feature innermost),
 * N = B*T, np = z + v + 2d. */
struct oracle_state {
    cublasHandle_t handle;
    void *d_ws;     /* cuBLAS workspace                                     */
    int G;          /* the scan's threads a value column (config column)    */
    /* fp32 copies of the GEMM weights, row-major [in, out] as in the inputs */
    float *d_wproj; /* [d, np] */
    float *d_wv;    /* [d, v]  */
    float *d_uh;    /* [v, d]  */
    float *d_w1;    /* [d, 2d] */
    float *d_w2;    /* [2d, d] */
    /* the forward's activations */
    float *d_xln;   /* X~      [N, d]  */
    float *d_u;     /* U       [N, d]  */
    float *d_zc;    /* Zc      [N, d]  */
    float *d_p;     /* P       [N, np] (bias added) */
    float *d_q;     /* Q       [N, z]  */
    float *d_k;     /* K       [N, z]  */
    float *d_val;   /* V       [N, v]  */
    float *d_o;     /* O; M in place unless training, then O stays the attention's raw output */
    float *d_hm;    /* M . U_h [N, d]  */
    float *d_ln2;   /* LayerNorm2(Y) [N, d] */
    float *d_f;     /* F       [N, 2d] */
    /* Training only (setup saw pass != PASS_FWD; else all NULL and train 0). */
    int train;
    /* kept by run(): */
    float *d_vpre;  /* X~ . W_v + b_v  [N, v]  (V = SiLU of it)                */
    float *d_m;     /* M               [N, v]  (so d_o keeps O)                */
    float *d_y;     /* Y               [N, d]  (out = Y + F . W2)              */
    float *d_fpre;  /* L . W1          [N, 2d] (F = SiLU of it)                */
    /* the backward's scratch, rewritten by every run_bwd (oracle_chela_bwd.cu): */
    float *g_dy;    /* [N, d]  dY', then dY, then dU, then dpre in place       */
    float *g_df;    /* [N, 2d] dF, then dP in place; later dZ in its first N d */
    float *g_dd;    /* [N, d]  dL (LayerNorm2's output), then dX~             */
    float *g_dproj; /* [N, np] [dPz | dGa | dGo | dHz]                         */
    float *g_dm;    /* [N, v]  dM, then d o_raw in place                       */
    float *g_dv;    /* [N, v]  dV, then dPv in place                           */
    float *g_dq;    /* [N, z]                                                  */
    float *g_dk;    /* [N, z]                                                  */
    float *g_part;  /* [nblk][N][z] the row scans' partial sums, nblk = ceil(v / LR_NC) */
    float *g_mean;  /* [N]     LayerNorm statistics of the rows being differentiated   */
    float *g_rstd;  /* [N]                                                     */
    float *g_cs;    /* [COLSUM_CHUNKS][max(np, 3d)] column sums' partials (oracle_common.cuh) */
};

inline int n_proj(const shape_t *s) { return s->z + s->v + 2 * s->d; }
inline int lc_tiles(const shape_t *s) { return (s->T + LC_TB - 1) / LC_TB; }
inline int lr_blocks(const shape_t *s) { return (s->v + LR_NC - 1) / LR_NC; }
inline size_t colsum_width(const shape_t *s) {
    const size_t np = (size_t)n_proj(s), k3 = 3 * (size_t)s->d;
    return np > k3 ? np : k3;
}

/* Floats of the training buffers (kept and scratch), for setup and workspace_bytes alike. */
inline size_t train_floats(const shape_t *s) {
    const size_t N = (size_t)s->B * s->T, d = (size_t)s->d, z = (size_t)s->z, v = (size_t)s->v;
    const size_t np = (size_t)n_proj(s);
    const size_t kept = N * (2 * v + 3 * d);
    const size_t scratch = N * (4 * d + np + 2 * v + 2 * z + 2) +
                           (size_t)lr_blocks(s) * N * z + COLSUM_CHUNKS * colsum_width(s);
    return kept + scratch;
}

/* pre[b,t,c] = sum_{j<3, j<=t} k3[c,j] X~[b,t-j,c], taps in order j = 0, 1, 2; i is the
 * element (b*T + t)*d + c. */
__device__ __forceinline__ float short_conv_pre(const float *__restrict__ xln,
                                                const float *__restrict__ k3, size_t i, int c,
                                                int t, int d) {
    float acc = 0.f;
    for (int j = 0; j < 3 && j <= t; j++) acc = fmaf(k3[3 * c + j], xln[i - (size_t)j * d], acc);
    return acc;
}

/* oracle_chela.cu.  out = the three-branch long conv of in [B,T,d] (the forward's stage 3):
 * out[t] = sum_{s<=t} k_long[t-s] in[s] + the k3b and km branches.  reverse: the same in
 * reversed time, out[s] = sum_{t>=s} k_long[t-s] in[t] + ..., which is the conv's adjoint:
 * dU from dZ. */
int long_conv(const float *in, const float *klong, const float *k3b, const float *km,
              float *out, const shape_t *s, bool reverse, cudaStream_t stream);

/* oracle_chela.cu.  The attention's column scan (the forward's stage 7), q^ = q / sqrt(z), G
 * threads a value column (la_group): out_t[j] = q^_t . S_t[:, j], S_t = sum_{s<=t} k_s^T val_s
 * (O from V).  reverse: q and k swapped, in reversed time, out_t[j] = k_t . R_t[:, j], R_t =
 * sum_{s>=t} q^_s^T val_s, which is the backward's dV from dO. */
int la_scan_cols(const float *q, const float *k, const float *val, float *out, const shape_t *s,
                 int G, bool reverse, cudaStream_t stream);

/* oracle_chela_bwd_seq.cu.  dk_long[c,j] = sum_b sum_{t>=j} U[b,t-j,c] dZ[b,t,c] ([d,T]), and
 * dk3b, dkm its first 3 and k_m taps (0 for taps >= T). */
int conv_kernel_grads(const float *u, const float *dz, float *dklong, float *dk3b, float *dkm,
                      const shape_t *s, cudaStream_t stream);

/* oracle_chela_bwd_seq.cu.  The causal linear attention's backward from d o_raw [N,v] and the
 * kept Q, K [N,z], V [N,v]: dQ, dK [N,z], dV [N,v] (scratch: st->g_part). */
int la_bwd(const oracle_state *st, const shape_t *s, const float *d_o, float *dq, float *dk,
           float *dv, cudaStream_t stream);

} // namespace chela_oracle

#endif
