/* mega/layer: MEGA's gated attention layer (ops.c, chela-spec.md "The hybrid baseline"), the
 * hybrid CHELA modifies, built as well as the tools at hand allow: bf16 activations (fp16 /
 * fp32 selectable), fp32 accumulation, the same GEMM plumbing as chela/fused (cuBLASLt plans,
 * algorithms timed at setup with lt_tune), the EMA through kernels/long_conv's engine and the
 * chunked softmax attention on cuBLAS (mega/attn_chunk.cu).  This file is the variant: state,
 * setup, the stage launches and their costs; its kernels are in mega/kernels.cuh.
 *
 * ---- version index (llm.c style) ------------------------------------------------------------
 * Run:  chela-bench --ops mega --variants layer --seq 1k..64k [--breakdown] [--set mega_chunk=..]
 * v1  the 14 stages below.  Not yet timed (written without a GPU).  Predicted at d 1024, z 128,
 *     v 2048, c 1024, 65536 tokens on an H100: the GEMMs as chela/fused's (~2.3 ms: the same
 *     widths), the EMA's long conv as chela's (~0.2-0.5 ms), the attention ~0.7 ms (its PV GEMM
 *     275 GFLOP with the masked half), the element-wise passes ~0.8 ms: ~4-4.5 ms at every T
 *     (the chunk bounds the attention's cost), against chela/fused's 3.6-5.2.
 *
 * Stages (one NVTX range each; --breakdown times each alone):
 *   0 ln1           X~ = LayerNorm1(X) -> [B,T,d] (the V GEMM's A) and [B,d,T] (the conv's input)
 *   1 ema_conv      X' = k * X~, k[c,t] = sum_j eta a beta (1 - a g)^t computed once at setup
 *                   (mega/ema.cu), long_conv/fast's engine in [B,d,T] (a Toeplitz product on
 *                   tensor cores at short T, the fused FFT above)
 *   2 proj_gemm     P = X' . [Wz|Wg|Wf|Wh]: one batched cuBLASLt GEMM reading X' in its [d,T]
 *                   layout (op T), as chela/fused's projection; its bias added where P is read
 *   3 v_gemm        V' = X~ . Wv
 *   4 qkv_act       Q, K = kappa SiLU(Zq + bz) + mu;  V = SiLU(V' + bv) in place (the PV GEMM
 *                   reads V as stored, so its SiLU cannot ride on the attention as chela's does)
 *   5 attn_scores   S = Q K^T / sqrt(z) a chunk (fp32), strided-batched cuBLAS (two GEMMs over
 *                   the halves of the chunk's queries: 3/4 of the square)
 *   6 attn_softmax  P = causal softmax(S) a chunk row, run dtype, zeros above the diagonal
 *   7 attn_pv       O = P V a chunk, strided-batched cuBLAS (halves as attn_scores)
 *   8 gate_o        M = SiLU(G + bg) . O (the reset gate), written over V (read by then): no
 *                   buffer more, and each stage stays repeatable alone (--breakdown, tuning)
 *   9 uh_gemm       H' = M . Uh
 *  10 gate_out_ln2  Y = phi SiLU(Hz + bhz + H' + bh) + (1 - phi) X, phi = sigmoid(F + bf); LN2(Y)
 *  11 ffn1_gemm     F' = LN2(Y) . W1
 *  12 ffn1_silu     F = SiLU(F') in place
 *  13 ffn2_gemm     Y' = Y + F . W2 (the residual through beta = 1)
 * Why no cuDNN: its fused attention takes head dims up to 128 (256 on Hopper) and MEGA's values
 * are v = 2d wide; softmax_attn/flash needs dk == dv (mega/attn_chunk.h).
 */
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_check.h"
#include "dtype_device.cuh"
#include "long_conv/fft_engine.h"
#include "lt_gemm.h"
#include "lt_tune.h"
#include "mega/attn_chunk.h"
#include "mega/attn_plan.h" /* mega_attn_gemm_elems */
#include "mega/ema.h"
#include "mega/kernels.cuh"
#include "nvtx_ranges.h"
#include "op_inputs.h"
#include "variant.h"

extern "C" {
DECLARE_STAGED_VARIANT(mega_layer);
}

#define MG_LT_WS (32u << 20) /* cuBLASLt workspace, as chela/fused's */

enum {
    ST_LN1,
    ST_EMA_CONV,
    ST_PROJ_GEMM,
    ST_V_GEMM,
    ST_QKV_ACT,
    ST_ATTN_SCORES,
    ST_ATTN_SOFTMAX,
    ST_ATTN_PV,
    ST_GATE_O,
    ST_UH_GEMM,
    ST_GATE_OUT_LN2,
    ST_FFN1_GEMM,
    ST_FFN1_SILU,
    ST_FFN2_GEMM,
    N_STAGES
};

extern "C" const char *const mega_layer_stage_names[N_STAGES + 1] = {
    "ln1",     "ema_conv", "proj_gemm",    "v_gemm",    "qkv_act",   "attn_scores", "attn_softmax",
    "attn_pv", "gate_o",   "uh_gemm", "gate_out_ln2", "ffn1_gemm", "ffn1_silu",   "ffn2_gemm",
    NULL};

typedef struct {
    shape_t s;
    int np, chunk, lt_tune;
    cublasLtHandle_t lt;
    void *lt_ws;
    lt_gemm_t g_proj, g_v, g_uh, g_ffn1, g_ffn2;
    long_conv_fast_t *conv;
    mega_attn_t *attn;
    /* activations, run dtype: xln [N,d], xlt and xe [B,d,T], p [N,np], q k [N,z], val (V, then
     * M) and o [N,v], h y ln2 [N,d], f [N,2d] */
    void *xln, *xlt, *xe, *p, *q, *k, *val, *o, *h, *y, *ln2, *f;
} mg_state;

static size_t mg_buffer_bytes(const shape_t *s) {
    const size_t bt = (size_t)s->B * s->T, d = s->d, z = s->z, v = s->v;
    return dtype_size(s->dtype) * bt * (3 * d + (z + v + 2 * d) + 2 * z + 2 * v + 3 * d + 2 * d);
}

extern "C" const char *mega_layer_supports(const shape_t *s) {
    if (s->pass != PASS_FWD) return "no backward yet";
    if (s->B < 1 || s->T < 1) return "empty shape";
    if (s->d % 8 || s->z % 8 || s->v % 8 || s->d < 8 || s->z < 8 || s->v < 8)
        return "d, z and v must be multiples of 8 (16-byte groups)";
    if (s->T > LONG_CONV_FAST_MAX_T) return "T beyond the long-conv engine's 65536";
    if ((long long)s->B * s->T > 0x7fffffffLL) return "B*T must be < 2^31";
    return NULL;
}

extern "C" size_t mega_layer_workspace_bytes(const shape_t *s) {
    return mg_buffer_bytes(s) + MG_LT_WS + mega_attn_workspace(s->B, s->T, mega_chunk(s), s->dtype) +
           long_conv_fast_workspace(s->B, s->d, s->T, NULL) + (size_t)s->d * s->T * sizeof(float);
}

extern "C" void mega_layer_teardown(void *state) {
    mg_state *st = (mg_state *)state;
    if (!st) return;
    lt_gemm_t *g[] = {&st->g_proj, &st->g_v, &st->g_uh, &st->g_ffn1, &st->g_ffn2};
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++) lt_gemm_destroy(g[i]);
    if (st->lt) cublasLtDestroy(st->lt);
    if (st->conv) long_conv_fast_destroy(st->conv);
    mega_attn_destroy(st->attn);
    void *bufs[] = {st->lt_ws, st->xln, st->xlt, st->xe, st->p, st->q, st->k,
                    st->val,   st->o,   st->h,   st->y,  st->ln2, st->f};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) cudaFree(bufs[i]);
    free(st);
}

static lt_gemm_shape_t gshape(int M, int N, int K, long long lda, long long ldb, long long ldd,
                              float beta) {
    lt_gemm_shape_t g;
    memset(&g, 0, sizeof g);
    g.M = M, g.N = N, g.K = K, g.batch = 1, g.lda = lda, g.ldb = ldb, g.ldd = ldd, g.beta = beta;
    return g;
}

/* Row-major GEMM plans for the five products (lt_gemm.h), chela/fused's shapes. */
static int mg_plan_gemms(mg_state *st) {
    const shape_t *s = &st->s;
    const int d = s->d, v = s->v, np = st->np, T = s->T, B = s->B, BT = B * T;
    lt_gemm_shape_t proj = gshape(T, np, d, T, np, np, 0.0f);
    proj.batch = B;
    proj.a_trans = 1; /* X' is [d,T] a sequence: A stored transposed */
    proj.stride_a = (long long)d * T;
    proj.stride_d = (long long)T * np;
    lt_gemm_shape_t gv = gshape(BT, v, d, d, v, v, 0.0f);
    lt_gemm_shape_t uh = gshape(BT, d, v, v, d, d, 0.0f);
    lt_gemm_shape_t f1 = gshape(BT, 2 * d, d, d, 2 * d, 2 * d, 0.0f);
    lt_gemm_shape_t f2 = gshape(BT, d, 2 * d, 2 * d, d, d, 1.0f); /* + Y, the residual */
    if (lt_gemm_create(st->lt, &proj, s->dtype, MG_LT_WS, &st->g_proj) ||
        lt_gemm_create(st->lt, &gv, s->dtype, MG_LT_WS, &st->g_v) ||
        lt_gemm_create(st->lt, &uh, s->dtype, MG_LT_WS, &st->g_uh) ||
        lt_gemm_create(st->lt, &f1, s->dtype, MG_LT_WS, &st->g_ffn1) ||
        lt_gemm_create(st->lt, &f2, s->dtype, MG_LT_WS, &st->g_ffn2))
        return -1;
    return 0;
}

/* gate_out_ln2 keeps a row in shared memory: past the default 48 KB beyond d = 12288. */
template <typename S> static int mg_opt_in(const shape_t *s) {
    if ((size_t)s->d * sizeof(float) > (48u << 10))
        CUDA_CHECK(cudaFuncSetAttribute(mg_gate_out_ln2_kernel<S>,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        (int)(s->d * sizeof(float))));
    return 0;
}

static int mg_tune_gemms(mg_state *st, const io_t *io);

extern "C" int mega_layer_setup(const shape_t *s, const io_t *io, void **state) {
    *state = NULL;
    const char *why = mega_layer_supports(s);
    if (why) BENCH_FAIL("mega/layer: %s", why);
    mg_state *st = (mg_state *)calloc(1, sizeof *st);
    if (!st) BENCH_FAIL("mega/layer: out of host memory");
    *state = st;
    st->s = *s;
    st->s.set = NULL; /* resolved here; never read after setup */
    st->lt_tune = lt_tune_resolve(settings_get(s->set, "lt_tune"));
    st->chunk = mega_chunk(s);
    st->np = s->z + s->v + 2 * s->d;
    const size_t bt = (size_t)s->B * s->T, es = dtype_size(s->dtype), d = s->d;
    CUBLAS_CHECK(cublasLtCreate(&st->lt));
    CUDA_CHECK(cudaMalloc(&st->lt_ws, MG_LT_WS));
    struct { void **p; size_t n; } bufs[] = {
        {&st->xln, bt * d},  {&st->xlt, bt * d},  {&st->xe, bt * d},       {&st->p, bt * st->np},
        {&st->q, bt * s->z}, {&st->k, bt * s->z}, {&st->val, bt * s->v},   {&st->o, bt * s->v},
        {&st->h, bt * d},    {&st->y, bt * d},    {&st->ln2, bt * d},      {&st->f, bt * 2 * d}};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        CUDA_CHECK(cudaMalloc(bufs[i].p, bufs[i].n * es));
    if (mega_attn_create(s->B, s->T, s->z, s->v, st->chunk, s->dtype, &st->attn) ||
        mg_plan_gemms(st))
        return -1;
    const int opt = s->dtype == DTYPE_BF16 ? mg_opt_in<__nv_bfloat16>(s)
                    : s->dtype == DTYPE_F16 ? mg_opt_in<__half>(s)
                                            : mg_opt_in<float>(s);
    if (opt) return -1;

    /* The EMA's taps, once, then the engine's plan and spectrum from them. */
    float *taps = NULL;
    CUDA_CHECK(cudaDeviceSynchronize()); /* the harness's fill of the parameters is done */
    CUDA_CHECK(cudaMalloc(&taps, d * s->T * sizeof(float)));
    const float *const *pf = (const float *const *)io->in;
    int rc = mega_ema_taps(pf[MEGA_IN_ALPHA], pf[MEGA_IN_DELTA], pf[MEGA_IN_BETA],
                           pf[MEGA_IN_ETA], s->d, s->T, taps, 0);
    if (!rc) rc = long_conv_fast_create(s->B, s->d, s->T, taps, NULL, 0, &st->conv);
    if (!rc) {
        const cudaError_t e = cudaDeviceSynchronize();
        if (e != cudaSuccess) {
            bench_set_error(__FILE__, __LINE__, "mega/layer setup: %s", cudaGetErrorString(e));
            rc = -1;
        }
    }
    cudaFree(taps);
    if (!rc) rc = mg_tune_gemms(st, io);
    return rc;
}

/* "lt_tune=1 chunk=1024 attn=cublas scores=fp32 chunk=1024 groups=1 cudnn_sdpa=no:v2048>256
 * ema=fft N=2048 ...": the GEMM tuning, the attention's path and the EMA conv's plan. */
extern "C" void mega_layer_config(const void *state, char *buf, size_t len) {
    const mg_state *st = (const mg_state *)state;
    if (!len) return;
    buf[0] = 0;
    if (!st) return;
    char at[128], lc[128];
    mega_attn_describe(st->attn, at, sizeof at);
    long_conv_fast_describe(st->conv, st->s.dtype, lc, sizeof lc);
    snprintf(buf, len, "lt_tune=%d %s ema=%s", st->lt_tune, at, lc);
}

template <typename S> static int mg_stage(mg_state *st, const io_t *io, int stage, cudaStream_t cs) {
    const shape_t *s = &st->s;
    const int d = s->d, z = s->z, v = s->v, np = st->np, T = s->T, B = s->B;
    const long long rows = (long long)B * T;
    const void *const *in = io->in;
    const float *const *pf = (const float *const *)io->in;
    switch (stage) {
    case ST_LN1:
        mg_ln_dual_kernel<S><<<(unsigned)(((T + MG_LN_TT - 1) / MG_LN_TT) * B), MG_EW_THREADS, 0, cs>>>(
            (const S *)in[MEGA_IN_X], pf[MEGA_IN_LN1_G], pf[MEGA_IN_LN1_B], T, d, (S *)st->xln,
            (S *)st->xlt);
        break;
    case ST_EMA_CONV: return long_conv_fast_run(st->conv, st->xlt, st->xe, s->dtype, NULL, cs);
    case ST_PROJ_GEMM:
        return lt_gemm_run(st->lt, &st->g_proj, st->xe, in[MEGA_IN_WPROJ], NULL, st->p, NULL,
                           st->lt_ws, MG_LT_WS, cs);
    case ST_V_GEMM:
        return lt_gemm_run(st->lt, &st->g_v, st->xln, in[MEGA_IN_WV], NULL, st->val, NULL,
                           st->lt_ws, MG_LT_WS, cs);
    case ST_QKV_ACT:
        mg_qkv_act_kernel<S><<<blocks_for(rows * ((z + v) / 8), MG_EW_THREADS), MG_EW_THREADS, 0, cs>>>(
            (const S *)st->p, np, pf[MEGA_IN_BPROJ], pf[MEGA_IN_KAPPA_Q], pf[MEGA_IN_MU_Q],
            pf[MEGA_IN_KAPPA_K], pf[MEGA_IN_MU_K], rows, z, (S *)st->q, (S *)st->k, (S *)st->val,
            v, pf[MEGA_IN_BV]);
        break;
    case ST_ATTN_SCORES: return mega_attn_scores(st->attn, st->q, st->k, cs);
    case ST_ATTN_SOFTMAX: return mega_attn_softmax(st->attn, cs);
    case ST_ATTN_PV: return mega_attn_pv(st->attn, st->val, st->o, cs);
    case ST_GATE_O:
        mg_gate_o_kernel<S><<<blocks_for(rows * (v / 8), MG_EW_THREADS), MG_EW_THREADS, 0, cs>>>(
            (const S *)st->o, (const S *)st->p, np, z, v, pf[MEGA_IN_BPROJ], rows, (S *)st->val);
        break;
    case ST_UH_GEMM:
        return lt_gemm_run(st->lt, &st->g_uh, st->val, in[MEGA_IN_UH], NULL, st->h, NULL,
                           st->lt_ws, MG_LT_WS, cs);
    case ST_GATE_OUT_LN2:
        mg_gate_out_ln2_kernel<S><<<(unsigned)rows, MG_ROW_THREADS, d * sizeof(float), cs>>>(
            (const S *)st->h, pf[MEGA_IN_BH], (const S *)st->p, pf[MEGA_IN_BPROJ], np, z, v,
            (const S *)in[MEGA_IN_X], pf[MEGA_IN_LN2_G], pf[MEGA_IN_LN2_B], d, (S *)st->y,
            (S *)st->ln2);
        break;
    case ST_FFN1_GEMM:
        return lt_gemm_run(st->lt, &st->g_ffn1, st->ln2, in[MEGA_IN_W1], NULL, st->f, NULL,
                           st->lt_ws, MG_LT_WS, cs);
    case ST_FFN1_SILU:
        silu_kernel<S><<<blocks_for(rows * 2 * d / 8, CF_EW_THREADS * CF_SILU_BATCH), CF_EW_THREADS,
                         0, cs>>>((S *)st->f, rows * 2 * d / 8);
        break;
    case ST_FFN2_GEMM:
        return lt_gemm_run(st->lt, &st->g_ffn2, st->f, in[MEGA_IN_W2], st->y, io->out, NULL,
                           st->lt_ws, MG_LT_WS, cs);
    default: BENCH_FAIL("mega/layer: no stage %d", stage);
    }
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

extern "C" int mega_layer_run_stage(void *state, const io_t *io, int stage, cudaStream_t cs) {
    mg_state *st = (mg_state *)state;
    switch (st->s.dtype) {
    case DTYPE_BF16: return mg_stage<__nv_bfloat16>(st, io, stage, cs);
    case DTYPE_F16: return mg_stage<__half>(st, io, stage, cs);
    default: return mg_stage<float>(st, io, stage, cs);
    }
}

extern "C" int mega_layer_run(void *state, const io_t *io, cudaStream_t cs) {
    char name[64];
    for (int i = 0; i < N_STAGES; i++) {
        snprintf(name, sizeof name, "mega/layer:%s", mega_layer_stage_names[i]);
        nvtx_push(name);
        const int rc = mega_layer_run_stage(state, io, i, cs);
        nvtx_pop();
        if (rc) return -1;
    }
    return 0;
}

/* Each product's algorithm timed at setup in its place in the layer, as chela/fused does
 * (fused.cu says why: one forward pass first fills the buffers, and each sample of a product
 * runs after the stages that feed it).  ffn2's prologue is ffn1 and its in-place SiLU. */
struct mg_stages_ctx {
    mg_state *st;
    const io_t *io;
    int first, last; /* stages [first, last) */
};
static int mg_run_stages(void *ctx, cudaStream_t cs) {
    const mg_stages_ctx *c = (const mg_stages_ctx *)ctx;
    for (int i = c->first; i < c->last; i++)
        if (mega_layer_run_stage(c->st, c->io, i, cs)) return -1;
    return 0;
}
static int mg_tune_gemms(mg_state *st, const io_t *io) {
    if (!st->lt_tune) return 0;
    if (mega_layer_run(st, io, 0)) return -1;
    CUDA_CHECK(cudaStreamSynchronize(0));
    const void *const *in = io->in;
    mg_stages_ctx before_proj = {st, io, ST_EMA_CONV, ST_PROJ_GEMM};
    mg_stages_ctx before_v = {st, io, ST_PROJ_GEMM, ST_V_GEMM};
    mg_stages_ctx before_uh = {st, io, ST_GATE_O, ST_UH_GEMM};
    mg_stages_ctx before_ffn1 = {st, io, ST_GATE_OUT_LN2, ST_FFN1_GEMM};
    mg_stages_ctx before_ffn2 = {st, io, ST_FFN1_GEMM, ST_FFN2_GEMM};
    if (lt_gemm_tune(st->lt, &st->g_proj, st->xe, in[MEGA_IN_WPROJ], NULL, st->p, NULL,
                     st->lt_ws, MG_LT_WS, 0, "mega proj", mg_run_stages, &before_proj) ||
        lt_gemm_tune(st->lt, &st->g_v, st->xln, in[MEGA_IN_WV], NULL, st->val, NULL, st->lt_ws,
                     MG_LT_WS, 0, "mega v", mg_run_stages, &before_v) ||
        lt_gemm_tune(st->lt, &st->g_uh, st->val, in[MEGA_IN_UH], NULL, st->h, NULL, st->lt_ws,
                     MG_LT_WS, 0, "mega uh", mg_run_stages, &before_uh) ||
        lt_gemm_tune(st->lt, &st->g_ffn1, st->ln2, in[MEGA_IN_W1], NULL, st->f, NULL, st->lt_ws,
                     MG_LT_WS, 0, "mega ffn1", mg_run_stages, &before_ffn1) ||
        lt_gemm_tune(st->lt, &st->g_ffn2, st->f, in[MEGA_IN_W2], st->y, io->out, NULL, st->lt_ws,
                     MG_LT_WS, 0, "mega ffn2", mg_run_stages, &before_ffn2))
        return -1;
    return 0;
}

/* Each stage's FLOPs and ideal bytes (its inputs read once, its outputs written once, in their
 * storage types), so each stage row has a floor.  The attention's GEMMs are counted as run
 * (3/4 of each chunk's L x L square, attn_chunk.h), the op's FLOPs (ops.c) the causal half. */
extern "C" void mega_layer_stage_cost(const shape_t *s, int stage, double *flops, double *bytes) {
    const double bt = (double)s->B * s->T, d = s->d, z = s->z, v = s->v;
    const double es = (double)dtype_size(s->dtype), np = z + v + 2 * d, N = 2.0 * s->T;
    const double c = mega_chunk(s), full = floor(s->T / c), rem = s->T - full * c;
    const double sq = s->B * (full * c * c + rem * rem);             /* score elements  */
    const double sg = mega_attn_gemm_elems(s->B, s->T, mega_chunk(s)); /* ... the GEMMs' */
    double f = 0, b = 0;
    switch (stage) {
    case ST_LN1: f = bt * d * 8; b = 3 * bt * d * es; break;
    case ST_EMA_CONV:
        f = s->B * d * (2 * 2.5 * N * log2(N) + 6 * (N / 2 + 1));
        b = 2 * bt * d * es + d * s->T * 4.0;
        break;
    case ST_PROJ_GEMM: f = 2 * bt * d * np; b = (bt * d + d * np + bt * np) * es; break;
    case ST_V_GEMM: f = 2 * bt * d * v; b = (bt * d + d * v + bt * v) * es; break;
    case ST_QKV_ACT: f = bt * (6 * z + 4 * v); b = bt * (3 * z + 2 * v) * es; break;
    case ST_ATTN_SCORES: f = 2 * sg * z; b = 2 * bt * z * es + sg * 4; break;
    case ST_ATTN_SOFTMAX: f = 4 * sq; b = sq * (4 + es); break;
    case ST_ATTN_PV: f = 2 * sg * v; b = (sg + 2 * bt * v) * es; break;
    case ST_GATE_O: f = bt * v * 5; b = 3 * bt * v * es; break;
    case ST_UH_GEMM: f = 2 * bt * v * d; b = (bt * v + v * d + bt * d) * es; break;
    case ST_GATE_OUT_LN2: f = bt * d * 20; b = 6 * bt * d * es; break;
    case ST_FFN1_GEMM: f = 2 * bt * d * 2 * d; b = (bt * d + 2 * d * d + 2 * bt * d) * es; break;
    case ST_FFN1_SILU: f = bt * 2 * d * 4; b = 2 * 2 * bt * d * es; break;
    case ST_FFN2_GEMM: f = 2 * bt * 2 * d * d; b = (2 * bt * d + 2 * d * d + 2 * bt * d) * es; break;
    default: break;
    }
    *flops = f;
    *bytes = b;
}
