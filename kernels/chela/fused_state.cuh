/* fused_state.cuh: chela/fused's state, shared by its forward (fused.cu) and its backward
 * (bwd.cu, bwd_kernels.cuh): the buffers the forward fills, which the backward reads.  Not a
 * public interface: variants.c sees only the extern "C" functions. */
#ifndef CHELA_CHELA_FUSED_STATE_CUH
#define CHELA_CHELA_FUSED_STATE_CUH

#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <stddef.h>

#include "linear_attn/chunked.h"
#include "long_conv/fft_engine.h"
#include "lt_gemm.h"
#include "variant.h"

#define CF_LT_WS (32u << 20) /* cuBLASLt workspace: what its large-GEMM kernels ask for */

enum {
    ST_LN_SHORTCONV,
    ST_LONG_CONV,
    ST_PROJ_GEMM,
    ST_V_GEMM,
    ST_QKV_ACT,
    ST_LINEAR_ATTN,
    ST_UH_GEMM,
    ST_GATE_OUT_LN2,
    ST_FFN1_GEMM,
    ST_FFN1_SILU,
    ST_FFN2_GEMM,
    N_STAGES
};

struct cf_bwd; /* the backward's plans and buffers (bwd.cu) */

typedef struct {
    shape_t s;
    int np, k_m;
    size_t es; /* bytes per activation element */
    cublasLtHandle_t lt;
    void *lt_ws;
    lt_gemm_t g_proj, g_v, g_uh, g_ffn1, g_ffn2;
    long_conv_fast_t *conv;
    void *xln, *u, *zc, *p, *q, *k, *val, *o, *h, *y, *ln2, *f;
    linear_attn_plan_t *la_plan; /* the attention's plan, made in setup with la_seg / la_sub */
    void *la_ws;
    size_t la_ws_bytes;
    float *rss; /* [v/64][B*T] the attention's row sums of squares (stage 5 -> stage 7) */
    int ln_pitch;       /* v3 ln_shortconv tile row pitch in bytes; 0: v1's general path  */
    size_t ln_smem;     /* ... and its dynamic shared memory                                */
    int go_ng;          /* v3 gate_out_ln2: groups of 8 a lane; 0: v1's block-a-row path    */
    int lt_tune;        /* the setting lt_tune, resolved: time the GEMMs' candidates at setup */
    char la_cfg[64];    /* the attention's plan, "la=v6 seg=8192 sub=1 pdl=1" (config column) */
    /* training (setup saw pass != fwd) */
    int train;
    void *fpre;          /* [B*T, 2d] LN2(Y) W1 before SiLU: the training forward keeps it    */
    struct cf_bwd *bwd;
} cf_state;

/* bwd.cu.  What the training forward and the backward add to the workspace; the backward's
 * setup (after the forward's: its activations tune the GEMMs); teardown; one step; all. */
size_t cf_bwd_workspace_bytes(const shape_t *s);
const char *cf_bwd_supports(const shape_t *s);
int cf_bwd_setup(cf_state *st, const io_t *io);
void cf_bwd_destroy(cf_state *st);
int cf_bwd_run(cf_state *st, const io_t *io, const grad_io_t *g, cudaStream_t cs);
/* " bwd=b1 <the attention's backward words> <the long conv's>" for the config column */
void cf_bwd_describe(const cf_state *st, char *buf, size_t len);
/* The training forward's FFN SiLU out of place: f = SiLU(fpre) (stage ffn1_silu). */
int cf_silu_copy(const cf_state *st, cudaStream_t cs);

#endif
