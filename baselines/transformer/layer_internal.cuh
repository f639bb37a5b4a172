/* layer_internal.cuh: what transformer/layer's forward (layer.cu) and backward (layer_bwd.cu)
 * share: the state setup builds, the GEMM descriptor type, the layouts of the attention's
 * operands inside the layer's buffers.  Not a public interface: variants.c sees only the
 * extern "C" functions. */
#ifndef CHELA_TRANSFORMER_LAYER_INTERNAL_CUH
#define CHELA_TRANSFORMER_LAYER_INTERNAL_CUH

#include <cublasLt.h>
#include <cuda_runtime.h>
#include <stddef.h>

#include "softmax_attn/cudnn_sdpa.h"
#include "softmax_attn/flash.h" /* sa_layout_t */
#include "variant.h"

namespace tf_layer {

constexpr size_t LT_WS_BYTES = (size_t)32 << 20; /* cuBLASLt's suggested size on Hopper */
constexpr int LN_WARPS = 8;                     /* rows per LayerNorm block         */
constexpr int LN_MAX_VPL = 16;                  /* d <= 16 * 256 = 4096             */

enum { G_QKV = 0, G_O, G_FF1, G_FF2, N_GEMM };

/* One row-major GEMM Y[M,N] = X[M,K] W[K,N] + bias (+ beta C), planned once in setup. */
struct gemm_t {
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, lc; /* W^T (N x K), X^T (K x M), Y^T (N x M); D uses lc */
    cublasLtMatmulAlgo_t algo;
    float beta;          /* 1: residual add through C */
    const void *bias;    /* device; NULL = take io's fp32 bias at run time */
    int bias_in;         /* io input index of the fp32 bias */
};

/* The backward's products (layer_bwd.cu), in the order they run.  Row-major, M = B*T:
 *   dgrad  dIn[M,K] = dZ[M,N] W[K,N]^T      run dtype out
 *   wgrad  dW[K,N]  = X[M,K]^T dZ[M,N]      fp32 out (a parameter's gradient)          */
enum { B_DW2 = 0, B_DH, B_DW1, B_DYLN, B_DWO, B_DA, B_DWQKV, B_DXLN, N_BGEMM };

struct bgemm_t {
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, ld;
    cublasLtMatmulAlgo_t algo;
};

struct layer_state {
    cublasLtHandle_t lt;
    void *d_ws;
    void *d_xln, *d_qkv, *d_a, *d_y, *d_yln, *d_h; /* run dtype */
    void *d_bias_act[N_GEMM]; /* biases rounded to the run dtype, only on the fallback path */
    gemm_t g[N_GEMM];
    int lt_tune; /* the setting lt_tune, resolved: time the GEMMs' candidates at setup */
    int D;       /* head width, for the config column's attention tiles               */
    sa_cudnn_plan *cudnn; /* the attention's cuDNN plan; NULL: flash's kernel runs   */
    void *d_cudnn_ws;     /* its workspace (the backward plan's too, when larger)      */

    /* ---- training (setup saw pass != fwd): what the forward keeps, the backward's buffers */
    int train;
    void *d_hpre;          /* [M,4d] run dtype: LN2(Y) W1 + b1 before GELU (the FF1 epilogue's aux) */
    float *d_lse;          /* [B*H][T] fp32: the attention's row log-sum-exp (cuDNN: its stats) */
    float *d_delta;        /* [B*H][T] fp32: flash backward's scratch                         */
    sa_cudnn_plan *cudnn_bwd;
    bgemm_t bg[N_BGEMM];
    int dgelu_epilogue;    /* 1: B_DH applies GELU' in cuBLASLt's DGELU epilogue; 0: a kernel */
    void *d_du;            /* [M,4d] run dtype: dU = dL/d(hpre), later dQKV [M,3d]           */
    void *d_dt;            /* [M,d]  run dtype: dL/d(yln), later dA, later dL/d(xln)          */
    void *d_dres;          /* [M,d]  run dtype: dL/dY, the residual stream's gradient         */
    float *d_part;         /* partial column sums (LayerNorm parameters, biases)             */
    int ln_grid;           /* blocks of the LayerNorm backward (each writes 2 d partials)    */
};

cudaDataType cuda_type(dtype_t t);

/* layer.cu: the heuristic's first algorithm for op on layouts a, b, d (c = d), within
 * LT_WS_BYTES of workspace.  0, 1 when cuBLASLt has none, or -1 after bench_set_error. */
int lt_first_algo(cublasLtHandle_t lt, cublasLtMatmulDesc_t op, cublasLtMatrixLayout_t a,
                  cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t d, cublasLtMatmulAlgo_t *algo);

/* Head h of row t: q at column h*D of qkv's row [B,T,3d], k at d + h*D, v at 2d + h*D. */
sa_layout_t qkv_layout(const shape_t *s);
/* a [B,T,d] */
sa_layout_t a_layout(const shape_t *s);

/* layer_bwd.cu.  bwd_setup: after the forward's setup, for pass != fwd: buffers, the
 * backward's GEMM plans (tuned on the forward's activations when lt_tune), the attention's
 * backward.  0, or -1 after bench_set_error. */
int bwd_setup(const shape_t *s, const io_t *io, layer_state *st);
void bwd_destroy(layer_state *st);
size_t bwd_workspace_bytes(const shape_t *s);
int run_bwd(const layer_state *st, const io_t *io, const grad_io_t *g, cudaStream_t stream);

} // namespace tf_layer

#endif
