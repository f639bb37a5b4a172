/* chela/fused's backward (--pass bwd|fwdbwd): dX and every parameter's gradient of the CHELA
 * layer (chela-spec.md "Training: the backward pass"), on what the training forward of
 * fused.cu keeps (its buffers, plus f' = LN2(Y) W1 before SiLU).
 *
 * ---- version index ----------------------------------------------------------------------
 * b1  simple first: 10 cuBLASLt products (tuned at setup as the forward's are; weight
 *     gradients in fp32), linear_attn/chunked's backward at the layer's head (its own plan),
 *     the long conv's backward on the forward's engine (kernels/long_conv/bwd.h), the
 *     LayerNorms' backward and the column sums of kernels/common/bwd_rows.cuh, and the
 *     layer's own passes (bwd_kernels.cuh).  Nothing fused across stages yet.
 *     measured: not yet (no GPU run).
 *
 * The step, in order (M = B T rows; dout = dL/dY'; P = [Zq | Ga | Go | Hz] pre-bias):
 *   v_act      V = SiLU(V' + b_v)                   for the attention's backward
 *   dw2        dW2 = F^T dout                        fp32 [2d, d]
 *   df         dF = dout W2^T;  dF' = dF SiLU'(F')   (dsilu in place)
 *   dw1        dW1 = LN2^T dF'                        fp32 [d, 2d]
 *   dln2       dLN2 = dF' W1^T
 *   ln2        dY = dout + LN2'(dLN2; Y)  (+ dg2, db2)
 *   gate       dXres = dY (1 - sg);  dP[Go];  dP[Hz] = dhpre;  dhs = dhpre rstd
 *   duh        dUh = o^T dhs                          fp32 [v, d]
 *   dm         dm~ = dhs Uh^T                         [M, v]
 *   rms_gate   dO (in place), dP[Ga]
 *   attn       dQ, dK, dV = the linear attention's backward of (Q, K, V; dO)
 *   dv         dV' = dV SiLU'(V' + b_v)
 *   qk         dP[Zq]; the column-sum terms of dmq, dmk, dkq, dkk; their sums
 *   biases     db_proj = colsum(dP);  db_h = its Hz part;  db_v = colsum(dV')
 *   dwproj     dWproj = sum_b Zc_b dP_b                fp32 [d, np] (Zc is [B,d,T])
 *   dzc        dZc_b = Wproj dP_b^T                    [B, d, T], a strided batched GEMM
 *   dwv        dWv = X~^T dV'                          fp32 [d, v]
 *   dxln       dX~ = dV' Wv^T
 *   conv       dU = the long conv's backward (reversed in time), dK_c = sum_b corr(U_b, dZc_b)
 *              into dk_long; dk3', dk_m its first taps
 *   short      dU put in [B,T,d] order; dX~ += the short conv's backward; dk3
 *   ln1        dX = dXres + LN1'(dX~; X)  (+ dg1, db1)
 * Training needs d a multiple of 256 (the LayerNorm backward's row tiles) and a 16-bit dtype
 * (the attention's backward).
 *
 * Cost model at the default point (d 1024, z 128, v 2048, 65536 tokens): the products are
 * twice the forward's GEMMs (2 x 1.66 TFLOP, ~5 ms at ~660 TFLOP/s); the attention's
 * backward ~2x its forward's passes; the long conv's ~2x; the element-wise and row passes
 * read and write ~40 bytes a token-feature (~2.7 GB, ~1 ms).  Predicted ~9-10 ms at 1k. */
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_check.h"
#include "chela/bwd_kernels.cuh"
#include "chela/fused_state.cuh"
#include "common/bwd_rows.cuh"
#include "linear_attn/bwd.h"
#include "linear_attn/plan.h"
#include "long_conv/bwd.h"
#include "lt_gemm.h"
#include "op_inputs.h"

enum {
    BK_V_ACT = 0, BK_DW2, BK_DF, BK_DW1, BK_DLN2, BK_LN2, BK_GATE, BK_DUH, BK_DM, BK_RMS_GATE,
    BK_ATTN, BK_DV, BK_QK, BK_BIASES, BK_DWPROJ, BK_DZC, BK_DWV, BK_DXLN, BK_CONV, BK_SHORT,
    BK_LN1, N_BSTEPS
};

extern "C" const char *const chela_fused_bwd_stage_names[N_BSTEPS + 1] = {
    "v_act", "dw2",   "df",     "dw1",    "dln2", "ln2",  "gate",  "duh",   "dm",  "rms_gate",
    "attn",  "dv",    "qk",     "biases", "dwproj", "dzc", "dwv",  "dxln",  "conv", "short",
    "ln1",   NULL};

/* The products, row-major (lt_gemm.h). */
enum { BG_DW2 = 0, BG_DF, BG_DW1, BG_DLN2, BG_DUH, BG_DM, BG_DWPROJ, BG_DZC, BG_DWV, BG_DXLN, N_BG };

constexpr int CFB_CS_CHUNKS = 128; /* row chunks of a column sum */

struct cf_bwd {
    lt_gemm_t g[N_BG];
    lab_plan aplan;     /* the attention's backward (bwd_plan.h) */
    void *a_ws;
    lc_bwd_t *conv;     /* the long conv's backward, on the forward's engine */
    /* run dtype [M, width] unless said */
    void *vact;         /* [M, v]  V = SiLU(V' + b_v)                              */
    void *df;           /* [M, 2d] dF, then dF'                                   */
    void *dt;           /* [M, d]  dLN2, later dX~                                 */
    void *dy;           /* [M, d]  dY                                              */
    void *dxres;        /* [M, d]  dX's residual part                              */
    void *dhs;          /* [M, d]                                                  */
    void *dp;           /* [M, np]                                                 */
    void *dm;           /* [M, v]  dm~, then dO                                    */
    void *dq, *dk;      /* [M, z]                                                  */
    void *dv;           /* [M, v]  dV, then dV'                                    */
    void *dzc;          /* [B, d, T]                                               */
    void *dut;          /* [M, d]  dU in [B,T,d] order                             */
    float *part4;       /* [M, 4z] fp32: dQ | dK | dQ zq | dK zq                    */
    float *part;        /* partial column sums                                     */
    int ln_grid, sc_chunk;
};

/* ---------------------------------------------------------------------------------------- */

static unsigned cfb_blocks(long long work, int per_block) {
    const long long b = (work + per_block - 1) / per_block;
    return (unsigned)(b < 1 ? 1 : b < 65535LL * 16 ? b : 65535LL * 16);
}

static int cfb_ln_grid(long long rows) { return bwd_ln_grid(rows); }

/* The short conv's chunk of tokens: 64, or more where B * chunks would pass a grid's y. */
static int cfb_sc_chunk(int B, int T) {
    int c = 64;
    while ((long long)B * ((T + c - 1) / c) > 65535) c *= 2;
    return c;
}

static size_t cfb_part_floats(const shape_t *s) {
    const size_t d = s->d, np = (size_t)s->z + s->v + 2 * d;
    const size_t ln = (size_t)cfb_ln_grid((long long)s->B * s->T) * 2 * d;
    const size_t cs = (size_t)CFB_CS_CHUNKS * (np > 4 * (size_t)s->z ? np : 4 * (size_t)s->z);
    const int ch = cfb_sc_chunk(s->B, s->T);
    const size_t sc = (size_t)s->B * ((s->T + ch - 1) / ch) * 3 * d;
    size_t m = ln > cs ? ln : cs;
    return m > sc ? m : sc;
}

static lac_problem cfb_attn_problem(const shape_t *s) {
    const lac_problem pr = {s->B, 1, s->T, s->z, s->v, 1, s->dtype};
    return pr;
}

const char *cf_bwd_supports(const shape_t *s) {
    if (s->dtype == DTYPE_F32) return "training needs bf16 or fp16 (the attention's backward)";
    if (s->d % 256 || s->d > 4096)
        return "training needs d a multiple of 256, <= 4096 (the LayerNorm backward's rows)";
    const lac_problem pr = cfb_attn_problem(s);
    return lab_shape_reason(&pr);
}

size_t cf_bwd_workspace_bytes(const shape_t *s) {
    const size_t M = (size_t)s->B * s->T, d = s->d, z = s->z, v = s->v, es = dtype_size(s->dtype);
    const size_t np = z + v + 2 * d;
    const lac_problem pr = cfb_attn_problem(s);
    /* fpre 2d; vact v; df 2d; dt, dy, dxres, dhs, dzc, dut 6d; dp np; dm v; dq, dk 2z; dv v */
    return es * M * (2 * d + v + 2 * d + 6 * d + np + v + 2 * z + v) +
           M * 4 * z * sizeof(float) + cfb_part_floats(s) * sizeof(float) +
           lab_workspace_bound(&pr, 0) + lc_bwd_workspace(s->B, s->d, s->T, NULL, s->dtype);
}

static lt_gemm_shape_t cfb_shape(int M, int N, int K, long long lda, long long ldb,
                                 long long ldd) {
    lt_gemm_shape_t g;
    memset(&g, 0, sizeof g);
    g.M = M, g.N = N, g.K = K, g.batch = 1, g.lda = lda, g.ldb = ldb, g.ldd = ldd;
    return g;
}

/* The ten products' shapes (row-major, lt_gemm.h). */
static void cfb_gemm_shapes(const shape_t *s, lt_gemm_shape_t g[N_BG]) {
    const int d = s->d, z = s->z, v = s->v, np = z + v + 2 * d, T = s->T, M = s->B * s->T;
    g[BG_DW2] = cfb_shape(2 * d, d, M, 2 * d, d, d);   /* F^T dout: A = F stored [M, 2d]     */
    g[BG_DW2].a_trans = 1, g[BG_DW2].d_f32 = 1;
    g[BG_DF] = cfb_shape(M, 2 * d, d, d, d, 2 * d);    /* dout W2^T: W2 stored [2d, d]       */
    g[BG_DF].b_trans = 1;
    g[BG_DW1] = cfb_shape(d, 2 * d, M, d, 2 * d, 2 * d); /* LN2^T dF'                        */
    g[BG_DW1].a_trans = 1, g[BG_DW1].d_f32 = 1;
    g[BG_DLN2] = cfb_shape(M, d, 2 * d, 2 * d, 2 * d, d); /* dF' W1^T: W1 stored [d, 2d]     */
    g[BG_DLN2].b_trans = 1;
    g[BG_DUH] = cfb_shape(v, d, M, v, d, d);           /* o^T dhs                            */
    g[BG_DUH].a_trans = 1, g[BG_DUH].d_f32 = 1;
    g[BG_DM] = cfb_shape(M, v, d, d, d, v);            /* dhs Uh^T: Uh stored [v, d]         */
    g[BG_DM].b_trans = 1;
    g[BG_DWPROJ] = cfb_shape(d, np, T, T, np, np);     /* Zc_b [d,T] dP_b [T,np], += over b  */
    g[BG_DWPROJ].d_f32 = 1, g[BG_DWPROJ].beta = 1.0f;
    g[BG_DZC] = cfb_shape(d, T, np, np, np, T);        /* Wproj [d,np] dP_b^T, a batch per b */
    g[BG_DZC].b_trans = 1, g[BG_DZC].batch = s->B;
    g[BG_DZC].stride_a = 0, g[BG_DZC].stride_b = (long long)T * np, g[BG_DZC].stride_d = (long long)d * T;
    g[BG_DWV] = cfb_shape(d, v, M, d, v, v);           /* X~^T dV'                           */
    g[BG_DWV].a_trans = 1, g[BG_DWV].d_f32 = 1;
    g[BG_DXLN] = cfb_shape(M, d, v, v, v, d);          /* dV' Wv^T: Wv stored [d, v]         */
    g[BG_DXLN].b_trans = 1;
}

/* {A, B, D} of product i in the real step (io: the inputs; g: the gradients). */
static void cfb_operands(const cf_state *st, const io_t *io, const grad_io_t *gr, int i,
                         const void **A, const void **B, void **D) {
    const cf_bwd *w = st->bwd;
    const void *const *in = io->in;
    void *const *gd = gr->grad;
    switch (i) {
    case BG_DW2: *A = st->f, *B = gr->dy, *D = gd[CHELA_IN_W2]; break;
    case BG_DF: *A = gr->dy, *B = in[CHELA_IN_W2], *D = w->df; break;
    case BG_DW1: *A = st->ln2, *B = w->df, *D = gd[CHELA_IN_W1]; break;
    case BG_DLN2: *A = w->df, *B = in[CHELA_IN_W1], *D = w->dt; break;
    case BG_DUH: *A = st->o, *B = w->dhs, *D = gd[CHELA_IN_UH]; break;
    case BG_DM: *A = w->dhs, *B = in[CHELA_IN_UH], *D = w->dm; break;
    case BG_DWPROJ: *A = st->zc, *B = w->dp, *D = gd[CHELA_IN_WPROJ]; break; /* batch row 0 */
    case BG_DZC: *A = in[CHELA_IN_WPROJ], *B = w->dp, *D = w->dzc; break;
    case BG_DWV: *A = st->xln, *B = w->dv, *D = gd[CHELA_IN_WV]; break;
    default: *A = w->dv, *B = in[CHELA_IN_WV], *D = w->dt; break; /* BG_DXLN */
    }
}

static int cfb_gemm(const cf_state *st, const io_t *io, const grad_io_t *gr, int i,
                    cudaStream_t cs) {
    const void *A, *B;
    void *D;
    cfb_operands(st, io, gr, i, &A, &B, &D);
    return lt_gemm_run(st->lt, &st->bwd->g[i], A, B, D, D, NULL, st->lt_ws, CF_LT_WS, cs);
}

template <typename S>
static int cfb_colsum(const cf_bwd *w, const void *z, long long M, int N, float *out,
                      cudaStream_t cs) {
    return bwd_colsum<S>(z, M, N, CFB_CS_CHUNKS, w->part, out, cs);
}

template <typename S>
static int cfb_ln_bwd(const cf_bwd *w, const void *x, const void *dy, const void *dres,
                      const float *g, void *dx, long long rows, int d, float *dg, float *db,
                      cudaStream_t cs) {
    return bwd_layer_norm<S>(w->ln_grid, w->part, x, dy, dres, g, dx, rows, d, dg, db, cs);
}

template <typename S>
static int cfb_step(cf_state *st, const io_t *io, const grad_io_t *gr, int step, cudaStream_t cs) {
    const shape_t *s = &st->s;
    cf_bwd *w = st->bwd;
    const int d = s->d, z = s->z, v = s->v, np = st->np, T = s->T, B = s->B;
    const long long M = (long long)B * T;
    const void *const *in = io->in;
    const float *const *pf = (const float *const *)io->in;
    float *const *gf = (float *const *)gr->grad;
    const float *bp = pf[CHELA_IN_BPROJ];
    const unsigned row_blocks = cfb_blocks(M, CFB_EW_THREADS / 32);
    switch (step) {
    case BK_V_ACT:
        silu_bias_kernel<S><<<cfb_blocks(M * v / 8, CFB_EW_THREADS), CFB_EW_THREADS, 0, cs>>>(
            (const S *)st->val, pf[CHELA_IN_BV], v, (S *)w->vact, M * v / 8);
        break;
    case BK_DW2: return cfb_gemm(st, io, gr, BG_DW2, cs);
    case BK_DF:
        if (cfb_gemm(st, io, gr, BG_DF, cs)) return -1;
        dsilu_kernel<S><<<cfb_blocks(M * 2 * d / 8, CFB_EW_THREADS), CFB_EW_THREADS, 0, cs>>>(
            (S *)w->df, (const S *)st->fpre, NULL, 2 * d, M * 2 * d / 8);
        break;
    case BK_DW1: return cfb_gemm(st, io, gr, BG_DW1, cs);
    case BK_DLN2: return cfb_gemm(st, io, gr, BG_DLN2, cs);
    case BK_LN2:
        return cfb_ln_bwd<S>(w, st->y, w->dt, gr->dy, pf[CHELA_IN_LN2_G], w->dy, M, d,
                             gf[CHELA_IN_LN2_G], gf[CHELA_IN_LN2_B], cs);
    case BK_GATE:
        gate_bwd_rows<S><<<row_blocks, CFB_EW_THREADS, 0, cs>>>(
            (const S *)w->dy, (const S *)in[CHELA_IN_X], (const S *)st->p, bp, np, z, v,
            (const S *)st->h, pf[CHELA_IN_BH], st->rss, d, M, (S *)w->dxres, (S *)w->dp,
            (S *)w->dhs);
        break;
    case BK_DUH: return cfb_gemm(st, io, gr, BG_DUH, cs);
    case BK_DM: return cfb_gemm(st, io, gr, BG_DM, cs);
    case BK_RMS_GATE:
        rms_gate_bwd_rows<S><<<row_blocks, CFB_EW_THREADS, 0, cs>>>(
            (S *)w->dm, (const S *)st->o, (const S *)st->p, bp, np, z, v, st->rss, M, (S *)w->dp);
        break;
    case BK_ATTN: {
        const lac_problem pr = cfb_attn_problem(s);
        lab_ptrs a;
        memset(&a, 0, sizeof a);
        a.q = st->q, a.k = st->k, a.v = w->vact, a.dO = w->dm;
        a.dq = w->dq, a.dk = w->dk, a.dv = w->dv;
        lab_ws_layout(&w->aplan, w->a_ws, &a);
        return lab_enqueue(&w->aplan, a, pr, cs);
    }
    case BK_DV:
        dsilu_kernel<S><<<cfb_blocks(M * v / 8, CFB_EW_THREADS), CFB_EW_THREADS, 0, cs>>>(
            (S *)w->dv, (const S *)st->val, pf[CHELA_IN_BV], v, M * v / 8);
        break;
    case BK_QK:
        qk_bwd_kernel<S><<<cfb_blocks(M * z / 8, CFB_EW_THREADS), CFB_EW_THREADS, 0, cs>>>(
            (const S *)w->dq, (const S *)w->dk, (const S *)st->p, bp, np, pf[CHELA_IN_KAPPA_Q],
            pf[CHELA_IN_KAPPA_K], z, M, (S *)w->dp, w->part4);
        CUDA_CHECK(cudaGetLastError());
        colsum_partial<float><<<dim3((unsigned)((4 * z + BWD_CS_COLS - 1) / BWD_CS_COLS),
                                     CFB_CS_CHUNKS), BWD_CS_WARPS * 32, 0, cs>>>(w->part4, M, 4 * z,
                                                                                 w->part);
        CUDA_CHECK(cudaGetLastError());
        {
            float *outs[4] = {gf[CHELA_IN_MU_Q], gf[CHELA_IN_MU_K], gf[CHELA_IN_KAPPA_Q],
                              gf[CHELA_IN_KAPPA_K]};
            for (int k = 0; k < 4; k++) {
                sum_chunks<<<(unsigned)((z + 255) / 256), 256, 0, cs>>>(
                    w->part + (size_t)k * z, CFB_CS_CHUNKS, (size_t)4 * z, z, outs[k]);
                CUDA_CHECK(cudaGetLastError());
            }
        }
        return 0;
    case BK_BIASES:
        if (cfb_colsum<S>(w, w->dp, M, np, gf[CHELA_IN_BPROJ], cs) ||
            cfb_colsum<S>(w, w->dv, M, v, gf[CHELA_IN_BV], cs))
            return -1;
        /* db_h = colsum(dhpre) = db_proj's Hz columns (Hz and b_h enter hpre alike) */
        CUDA_CHECK(cudaMemcpyAsync(gf[CHELA_IN_BH], gf[CHELA_IN_BPROJ] + z + v + d,
                                   (size_t)d * sizeof(float), cudaMemcpyDeviceToDevice, cs));
        return 0;
    case BK_DWPROJ: { /* sum over batch rows: beta = 1 onto a zeroed gradient */
        CUDA_CHECK(cudaMemsetAsync(gf[CHELA_IN_WPROJ], 0, (size_t)d * np * sizeof(float), cs));
        for (int b = 0; b < B; b++) {
            const S *zc = (const S *)st->zc + (size_t)b * d * T;
            const S *dp = (const S *)w->dp + (size_t)b * T * np;
            if (lt_gemm_run(st->lt, &w->g[BG_DWPROJ], zc, dp, gf[CHELA_IN_WPROJ],
                            gf[CHELA_IN_WPROJ], NULL, st->lt_ws, CF_LT_WS, cs))
                return -1;
        }
        return 0;
    }
    case BK_DZC: return cfb_gemm(st, io, gr, BG_DZC, cs);
    case BK_DWV: return cfb_gemm(st, io, gr, BG_DWV, cs);
    case BK_DXLN: return cfb_gemm(st, io, gr, BG_DXLN, cs);
    case BK_CONV: {
        if (lc_bwd_reverse_dy(w->conv, w->dzc, cs) || lc_bwd_dx_rev(w->conv, cs) ||
            lc_bwd_dk(w->conv, st->u, s->dtype, gf[CHELA_IN_KLONG], cs))
            return -1;
        const int km = st->k_m, wdt = km > 3 ? km : 3;
        dk_slices_kernel<<<cfb_blocks((long long)d * wdt, 256), 256, 0, cs>>>(
            gf[CHELA_IN_KLONG], T, d, km, gf[CHELA_IN_K3B], gf[CHELA_IN_KM]);
        break;
    }
    case BK_SHORT: {
        const long long tiles = (long long)B * ((d + CFB_TR_TILE - 1) / CFB_TR_TILE) *
                                ((T + CFB_TR_TILE - 1) / CFB_TR_TILE);
        unrev_transpose_kernel<S><<<(unsigned)tiles, 256, 0, cs>>>(
            (const S *)lc_bwd_dx_rev_buf(w->conv), d, T, (S *)w->dut);
        CUDA_CHECK(cudaGetLastError());
        const int ch = w->sc_chunk, nch = (T + ch - 1) / ch;
        short_conv_bwd_kernel<S><<<dim3((unsigned)((d + CFB_SC_THREADS - 1) / CFB_SC_THREADS),
                                        (unsigned)(B * nch)), CFB_SC_THREADS, 0, cs>>>(
            (const S *)st->xln, (const S *)w->dut, pf[CHELA_IN_K3], T, d, ch, (S *)w->dt, w->part);
        CUDA_CHECK(cudaGetLastError());
        sum_chunks<<<(unsigned)((3 * d + 255) / 256), 256, 0, cs>>>(w->part, B * nch,
                                                                    (size_t)3 * d, 3 * d,
                                                                    gf[CHELA_IN_K3]);
        break;
    }
    case BK_LN1:
        return cfb_ln_bwd<S>(w, in[CHELA_IN_X], w->dt, w->dxres, pf[CHELA_IN_LN1_G],
                             gr->grad[CHELA_IN_X], M, d, gf[CHELA_IN_LN1_G], gf[CHELA_IN_LN1_B],
                             cs);
    default: BENCH_FAIL("chela/fused: no backward step %d", step);
    }
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

static int cfb_step_any(cf_state *st, const io_t *io, const grad_io_t *gr, int step,
                        cudaStream_t cs) {
    if (!st || !st->bwd) BENCH_FAIL("chela/fused: a backward without a training setup");
    return st->s.dtype == DTYPE_F16 ? cfb_step<__half>(st, io, gr, step, cs)
                                    : cfb_step<__nv_bfloat16>(st, io, gr, step, cs);
}

int cf_bwd_run(cf_state *st, const io_t *io, const grad_io_t *g, cudaStream_t cs) {
    for (int k = 0; k < N_BSTEPS; k++)
        if (cfb_step_any(st, io, g, k, cs)) return -1;
    return 0;
}

int cf_silu_copy(const cf_state *st, cudaStream_t cs) {
    const long long n8 = (long long)st->s.B * st->s.T * 2 * st->s.d / 8;
    if (st->s.dtype == DTYPE_F16)
        silu_copy_kernel<__half><<<cfb_blocks(n8, CFB_EW_THREADS), CFB_EW_THREADS, 0, cs>>>(
            (const __half *)st->fpre, (__half *)st->f, n8);
    else if (st->s.dtype == DTYPE_BF16)
        silu_copy_kernel<__nv_bfloat16><<<cfb_blocks(n8, CFB_EW_THREADS), CFB_EW_THREADS, 0, cs>>>(
            (const __nv_bfloat16 *)st->fpre, (__nv_bfloat16 *)st->f, n8);
    else
        silu_copy_kernel<float><<<cfb_blocks(n8, CFB_EW_THREADS), CFB_EW_THREADS, 0, cs>>>(
            (const float *)st->fpre, (float *)st->f, n8);
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

void cf_bwd_destroy(cf_state *st) {
    cf_bwd *w = st ? st->bwd : NULL;
    if (!w) return;
    for (int i = 0; i < N_BG; i++) lt_gemm_destroy(&w->g[i]);
    lc_bwd_destroy(w->conv);
    void *bufs[] = {w->a_ws, w->vact, w->df, w->dt, w->dy, w->dxres, w->dhs, w->dp, w->dm,
                    w->dq, w->dk, w->dv, w->dzc, w->dut, w->part4, w->part};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) cudaFree(bufs[i]);
    free(w);
    st->bwd = NULL;
}

/* Each product's algorithm timed as the forward's are (lt_tune.h), on stand-ins of its own
 * shapes from the forward's buffers (setup has no dy): dout -> y, dF -> f, dhs -> h,
 * dP -> p, dV' -> val; a weight gradient into a scratch fp32 buffer. */
static int cfb_tune(cf_state *st, const io_t *io) {
    cf_bwd *w = st->bwd;
    const shape_t *s = &st->s;
    const size_t d = s->d, np = st->np, v = s->v;
    size_t wmax = d * np > 2 * d * d ? d * np : 2 * d * d;
    if (d * v > wmax) wmax = d * v;
    float *scratch = NULL;
    CUDA_CHECK(cudaMalloc(&scratch, wmax * sizeof(float)));
    CUDA_CHECK(cudaMemset(scratch, 0, wmax * sizeof(float))); /* dWproj's tuning adds to it */
    const void *const *in = io->in;
    const void *ops[N_BG][3] = {
        {st->f, st->y, scratch},            {st->y, in[CHELA_IN_W2], w->df},
        {st->ln2, st->f, scratch},          {st->f, in[CHELA_IN_W1], w->dt},
        {st->o, st->h, scratch},            {st->h, in[CHELA_IN_UH], w->dm},
        {st->zc, st->p, scratch},           {in[CHELA_IN_WPROJ], st->p, w->dzc},
        {st->xln, st->val, scratch},        {st->val, in[CHELA_IN_WV], w->dt},
    };
    static const char *const what[N_BG] = {"chela bwd dW2", "chela bwd dF", "chela bwd dW1",
                                           "chela bwd dLN2", "chela bwd dUh", "chela bwd dm",
                                           "chela bwd dWproj", "chela bwd dZc", "chela bwd dWv",
                                           "chela bwd dXln"};
    int rc = 0;
    for (int i = 0; i < N_BG && !rc; i++)
        rc = lt_gemm_tune(st->lt, &w->g[i], ops[i][0], ops[i][1], ops[i][2], (void *)ops[i][2],
                          NULL, st->lt_ws, CF_LT_WS, 0, what[i], NULL, NULL);
    cudaFree(scratch);
    return rc;
}

int cf_bwd_setup(cf_state *st, const io_t *io) {
    const shape_t *s = &st->s;
    cf_bwd *w = (cf_bwd *)calloc(1, sizeof *w);
    if (!w) BENCH_FAIL("chela/fused: out of host memory");
    st->bwd = w;
    const size_t M = (size_t)s->B * s->T, d = s->d, z = s->z, v = s->v, es = st->es;
    const size_t np = st->np;
    w->ln_grid = cfb_ln_grid((long long)M);
    w->sc_chunk = cfb_sc_chunk(s->B, s->T);
    struct { void **p; size_t n; } bufs[] = {
        {&w->vact, M * v * es}, {&w->df, M * 2 * d * es}, {&w->dt, M * d * es},
        {&w->dy, M * d * es},   {&w->dxres, M * d * es},  {&w->dhs, M * d * es},
        {&w->dp, M * np * es},  {&w->dm, M * v * es},     {&w->dq, M * z * es},
        {&w->dk, M * z * es},   {&w->dv, M * v * es},     {&w->dzc, M * d * es},
        {&w->dut, M * d * es},  {(void **)&w->part4, M * 4 * z * sizeof(float)},
        {(void **)&w->part, cfb_part_floats(s) * sizeof(float)}};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        CUDA_CHECK(cudaMalloc(bufs[i].p, bufs[i].n));
    lt_gemm_shape_t g[N_BG];
    cfb_gemm_shapes(s, g);
    for (int i = 0; i < N_BG; i++)
        if (lt_gemm_create(st->lt, &g[i], s->dtype, CF_LT_WS, &w->g[i])) return -1;
    const lac_problem pr = cfb_attn_problem(s);
    if (lab_make_plan(pr, 0, &w->aplan)) return -1;
    const size_t abytes = lab_ws_layout(&w->aplan, NULL, NULL);
    if (abytes) CUDA_CHECK(cudaMalloc(&w->a_ws, abytes));
    if (lc_bwd_create(st->conv, s->dtype, &w->conv)) return -1;
    return st->lt_tune ? cfb_tune(st, io) : 0;
}

void cf_bwd_describe(const cf_state *st, char *buf, size_t len) {
    if (!len) return;
    buf[0] = 0;
    if (!st->bwd) return;
    char a[96] = "", c[128] = "";
    lab_plan_words(&st->bwd->aplan, a, sizeof a);
    lc_bwd_describe(st->bwd->conv, c, sizeof c);
    /* what the training forward keeps beyond inference's buffers, and what the backward
     * recomputes instead of saving (the issue's "saved or recomputed, recorded") */
    snprintf(buf, len, " bwd=b1 saved=fpre recomputed=v_act,ln_stats,conv_pre,o_raw la_%s lc%s",
             a, c);
}

/* ---------------------------------- the variant's hooks ---------------------------------- */

extern "C" {
DECLARE_BWD_STAGES(chela_fused);

int chela_fused_run_bwd(void *state, const io_t *io, const grad_io_t *g, cudaStream_t cs) {
    return cf_bwd_run((cf_state *)state, io, g, cs);
}

int chela_fused_run_bwd_stage(void *state, const io_t *io, const grad_io_t *g, int stage,
                              cudaStream_t cs) {
    return cfb_step_any((cf_state *)state, io, g, stage, cs);
}

/* Each step's FLOPs and ideal bytes (operands read once, results written once, in their
 * storage types; parameter gradients fp32).  es = the run dtype's bytes. */
void chela_fused_bwd_stage_cost(const shape_t *s, int stage, double *flops, double *bytes) {
    const double M = (double)s->B * s->T, d = s->d, z = s->z, v = s->v, T = s->T;
    const double np = z + v + 2 * d, es = (double)dtype_size(s->dtype), N = 2.0 * T;
    double f = 0, b = 0;
    switch (stage) {
    case BK_V_ACT: f = 4 * M * v; b = 2 * M * v * es; break;
    case BK_DW2: f = 2 * M * 2 * d * d; b = (M * 2 * d + M * d) * es + 2 * d * d * 4; break;
    case BK_DF: f = 2 * M * d * 2 * d + 6 * M * 2 * d; b = (M * d + 2 * d * d + 2 * M * 2 * d) * es; break;
    case BK_DW1: f = 2 * M * d * 2 * d; b = (M * d + M * 2 * d) * es + 2 * d * d * 4; break;
    case BK_DLN2: f = 2 * M * 2 * d * d; b = (M * 2 * d + 2 * d * d + M * d) * es; break;
    case BK_LN2:
    case BK_LN1: f = 12 * M * d; b = 4 * M * d * es + 2 * d * 4; break;
    case BK_GATE: f = 30 * M * d; b = (5 * M * d + 2 * M * d + 4 * M * d) * es; break;
    case BK_DUH: f = 2 * M * v * d; b = (M * v + M * d) * es + v * d * 4; break;
    case BK_DM: f = 2 * M * d * v; b = (M * d + v * d + M * v) * es; break;
    case BK_RMS_GATE: f = 12 * M * v; b = 4 * M * v * es; break;
    case BK_ATTN: f = 8 * M * z * v; b = (2 * M * z + 2 * M * v) * es + (2 * M * z + M * v) * es; break;
    case BK_DV: f = 6 * M * v; b = 3 * M * v * es; break;
    case BK_QK: f = 12 * M * z; b = 4 * M * z * es + 4 * M * z * 4 + 4 * z * 4; break;
    case BK_BIASES: f = M * (np + v); b = M * (np + v) * es + (np + v + d) * 4; break;
    case BK_DWPROJ: f = 2 * M * d * np; b = (M * d + M * np) * es + d * np * 4; break;
    case BK_DZC: f = 2 * M * np * d; b = (M * np + d * np + M * d) * es; break;
    case BK_DWV: f = 2 * M * d * v; b = (M * d + M * v) * es + d * v * 4; break;
    case BK_DXLN: f = 2 * M * v * d; b = (M * v + d * v + M * d) * es; break;
    case BK_CONV:
        f = s->B * d * 3 * (2.5 * N * log2(N)) + s->B * d * 14 * (N / 2 + 1);
        b = (2 * M * d) * es + (d * T + d * T) * 4;
        break;
    case BK_SHORT: f = 20 * M * d; b = 5 * M * d * es + 3 * d * 4; break;
    default: break;
    }
    *flops = f;
    *bytes = b;
}

} // extern "C"
