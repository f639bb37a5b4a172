/* transformer/layer's backward (--pass bwd|fwdbwd): dX and every parameter's gradient of the
 * pre-LN layer (layer.cu has the forward), the way a bf16 training stack runs it.
 *
 * ---- version index ----------------------------------------------------------------------
 * b1  8 cuBLASLt GEMMs (tuned at setup as the forward's are), GELU' in the FF2 data-gradient
 *     GEMM's DGELU epilogue (cuBLASLt's own derivative of its tanh GELU, reading the
 *     pre-activation the forward's GELU_AUX_BIAS epilogue kept), the attention's backward
 *     (cuDNN's fused SDPA backward with the forward's stats, else softmax_attn/flash's FA2
 *     backward with its log-sum-exp), two LayerNorm backwards with the residual gradient
 *     added in the same pass, and deterministic column sums for the biases and norms.
 *     measured: not yet (no GPU run).
 *
 * The step, M = B*T rows, dout = dL/dY' [M,d] (dy), every GEMM accumulating in fp32:
 *   db2    = colsum(dout)                                 column sums          fp32 [d]
 *   dW2    = H^T dout                                     wgrad                fp32 [4d,d]
 *   dU     = (dout W2^T) * GELU'(U)                       dgrad + DGELU        [M,4d]
 *   db1    = colsum(dU);  dW1 = Yln^T dU;  dYln = dU W1^T
 *   dY     = dout + LN2'(dYln; Y)      (+ dg2, db_ln2)    LayerNorm backward   [M,d]
 *   dbo    = colsum(dY);  dWo = A^T dY;  dA = dY Wo^T
 *   dQKV   = attention backward(dA)                       cuDNN / flash        [M,3d]
 *   dbqkv  = colsum(dQKV);  dWqkv = X~^T dQKV;  dX~ = dQKV Wqkv^T
 *   dX     = dY + LN1'(dX~; X)         (+ dg1, db_ln1)
 * Activations' gradients are stored in the run dtype (as a bf16 model's are), parameters'
 * in fp32.  Scratch reuses buffers as the step frees them: dU's [M,4d] later holds dQKV, one
 * [M,d] holds dYln, then dA, then dX~; the forward's saved tensors are never written, so the
 * backward can run again after one forward (variant.h).
 *
 * Cost model at the default point (d 1024, 65536 tokens): the GEMMs are twice the forward's,
 * 48 d^2 MACs... 3.3 TFLOP, ~5 ms at ~660 TFLOP/s; the attention backward 2.5x its forward
 * (~1.1 ms at 1k, ~60 ms at 64k with cuDNN's ~330 TFLOP/s); column sums read 9 M d elements,
 * the LayerNorm backwards 4 M d each (~1.6 GB, ~0.6 ms together). */
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
#include "common/bwd_rows.cuh"
#include "dtype_device.cuh"
#include "lt_tune.h"
#include "op_inputs.h"
#include "softmax_attn/flash_bwd.h"
#include "transformer/layer_internal.cuh"

namespace tf_layer {
/* Named, not unnamed: nvcc rejects an unnamed namespace inside a named one beside the global
 * unnamed one of common/bwd_rows.cuh. */
namespace bwd_detail {

constexpr int CS_CHUNKS = 128; /* row chunks of a column sum: its partial sums a column     */
constexpr int EW_THREADS = 256;

/* ------------------------------------ kernels ------------------------------------ */

/* dU = dH * GELU'(u) in place, GELU's tanh form (cuBLASLt's GELU epilogue computed the
 * forward; this is its derivative), for a cuBLASLt without the DGELU epilogue. */
template <typename T>
__global__ void gelu_tanh_bwd(T *__restrict__ dh, const T *__restrict__ u, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        const float x = to_f32(u[i]), c = 0.7978845608028654f; /* sqrt(2 / pi) */
        const float th = tanhf(c * (x + 0.044715f * x * x * x));
        const float dg = 0.5f * (1.f + th) +
                         0.5f * x * (1.f - th * th) * c * (1.f + 3.f * 0.044715f * x * x);
        dh[i] = from_f32<T>(to_f32(dh[i]) * dg);
    }
}

/* ------------------------------------ GEMMs ------------------------------------ */

/* Shapes of the backward's products (row-major): dgrad dIn[M,K] = dZ[M,N] W[K,N]^T;
 * wgrad dW[K,N] = X[M,K]^T dZ[M,N].  n_mult / k_mult: N and K in units of d. */
struct bgemm_shape {
    int wgrad;
    int n_mult, k_mult;
    const char *what;
};
const bgemm_shape BSHAPE[N_BGEMM] = {
    {1, 1, 4, "transformer bwd dW2"}, {0, 1, 4, "transformer bwd dH"},
    {1, 4, 1, "transformer bwd dW1"}, {0, 4, 1, "transformer bwd dYln"},
    {1, 1, 1, "transformer bwd dWo"}, {0, 1, 1, "transformer bwd dA"},
    {1, 3, 1, "transformer bwd dWqkv"}, {0, 3, 1, "transformer bwd dXln"},
};

void bgemm_destroy(bgemm_t *g) {
    if (g->la) cublasLtMatrixLayoutDestroy(g->la);
    if (g->lb) cublasLtMatrixLayoutDestroy(g->lb);
    if (g->ld) cublasLtMatrixLayoutDestroy(g->ld);
    if (g->op) cublasLtMatmulDescDestroy(g->op);
    g->la = g->lb = g->ld = NULL;
    g->op = NULL;
}

/* Column-major terms (a row-major R[m][n] is the column-major R^T, n x m):
 *   dgrad  dIn^T (K x M) = W (op T of the stored N x K, ld N) . dZ^T (N x M, ld N)
 *   wgrad  dW^T  (N x K) = dZ^T (N x M, ld N) . X (op T of the stored K x M, ld K)
 * aux: the DGELU epilogue's pre-activation, laid out as D.  Returns 0, 1 when cuBLASLt has
 * no algorithm, -1 after bench_set_error. */
int bgemm_plan(cublasLtHandle_t lt, bgemm_t *g, cudaDataType ty, long long M, long long N,
               long long K, int wgrad, cublasLtEpilogue_t epi, const void *aux) {
    bgemm_destroy(g);
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&g->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t nop = CUBLAS_OP_N, top = CUBLAS_OP_T;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(g->op, CUBLASLT_MATMUL_DESC_TRANSA,
                                                wgrad ? &nop : &top, sizeof nop));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(g->op, CUBLASLT_MATMUL_DESC_TRANSB,
                                                wgrad ? &top : &nop, sizeof nop));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(g->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi,
                                                sizeof epi));
    if (aux) {
        const int64_t aux_ld = K;
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(g->op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER,
                                                    &aux, sizeof aux));
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(g->op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD,
                                                    &aux_ld, sizeof aux_ld));
    }
    if (wgrad) {
        CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&g->la, ty, (uint64_t)N, (uint64_t)M, N));
        CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&g->lb, ty, (uint64_t)K, (uint64_t)M, K));
        CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&g->ld, CUDA_R_32F, (uint64_t)N, (uint64_t)K, N));
    } else {
        CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&g->la, ty, (uint64_t)N, (uint64_t)K, N));
        CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&g->lb, ty, (uint64_t)N, (uint64_t)M, N));
        CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&g->ld, ty, (uint64_t)K, (uint64_t)M, K));
    }
    return lt_first_algo(lt, g->op, g->la, g->lb, g->ld, &g->algo);
}

int bgemm_run(const layer_state *st, int i, const void *A, const void *B, void *D,
              cudaStream_t stream) {
    const bgemm_t *g = &st->bg[i];
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_CHECK(cublasLtMatmul(st->lt, g->op, &one, A, g->la, B, g->lb, &zero, D, g->ld, D, g->ld,
                                &g->algo, st->d_ws, LT_WS_BYTES, stream));
    return 0;
}

/* ------------------------------------ the step ------------------------------------ */

enum {
    K_DB2 = 0, K_DW2, K_DH, K_DB1, K_DW1, K_DYLN, K_LN2, K_DBO, K_DWO, K_DA, K_ATTN, K_DBQKV,
    K_DWQKV, K_DXLN, K_LN1, N_BSTEPS
};

unsigned ew_blocks(size_t n) {
    const size_t b = (n + EW_THREADS - 1) / EW_THREADS;
    return (unsigned)(b < 65536 ? (b ? b : 1) : 65536);
}

template <typename T>
int colsum(const layer_state *st, const void *z, long long M, int N, float *out,
           cudaStream_t stream) {
    return bwd_colsum<T>(z, M, N, CS_CHUNKS, st->d_part, out, stream);
}

template <typename T>
int ln_bwd(const layer_state *st, const void *x, const void *dxln, const void *dres,
           const float *g, void *dx, long long rows, int d, float *dg, float *db,
           cudaStream_t stream) {
    return bwd_layer_norm<T>(st->ln_grid, st->d_part, x, dxln, dres, g, dx, rows, d, dg, db,
                             stream);
}

template <typename T>
int run_bwd_step(const layer_state *st, const io_t *io, const grad_io_t *g, int step,
                 cudaStream_t stream) {
    const shape_t *s = io->shape;
    const long long M = (long long)s->B * s->T;
    const int d = s->d;
    const void *const *in = io->in;
    const float *const *f = (const float *const *)io->in;
    float *const *gf = (float *const *)g->grad;
    const T *du = (const T *)st->d_du;
    switch (step) {
    case K_DB2: return colsum<T>(st, g->dy, M, d, gf[TRANSFORMER_IN_B2], stream);
    case K_DW2: return bgemm_run(st, B_DW2, g->dy, st->d_h, gf[TRANSFORMER_IN_W2], stream);
    case K_DH:
        if (bgemm_run(st, B_DH, in[TRANSFORMER_IN_W2], g->dy, st->d_du, stream)) return -1;
        if (!st->dgelu_epilogue) {
            const size_t n = (size_t)M * 4 * d;
            gelu_tanh_bwd<T><<<ew_blocks(n), EW_THREADS, 0, stream>>>((T *)st->d_du,
                                                                     (const T *)st->d_hpre, n);
            CUDA_CHECK(cudaGetLastError());
        }
        return 0;
    case K_DB1: return colsum<T>(st, st->d_du, M, 4 * d, gf[TRANSFORMER_IN_B1], stream);
    case K_DW1: return bgemm_run(st, B_DW1, st->d_du, st->d_yln, gf[TRANSFORMER_IN_W1], stream);
    case K_DYLN: return bgemm_run(st, B_DYLN, in[TRANSFORMER_IN_W1], st->d_du, st->d_dt, stream);
    case K_LN2:
        return ln_bwd<T>(st, st->d_y, st->d_dt, g->dy, f[TRANSFORMER_IN_LN2_G], st->d_dres, M, d,
                         gf[TRANSFORMER_IN_LN2_G], gf[TRANSFORMER_IN_LN2_B], stream);
    case K_DBO: return colsum<T>(st, st->d_dres, M, d, gf[TRANSFORMER_IN_BO], stream);
    case K_DWO: return bgemm_run(st, B_DWO, st->d_dres, st->d_a, gf[TRANSFORMER_IN_WO], stream);
    case K_DA: return bgemm_run(st, B_DA, in[TRANSFORMER_IN_WO], st->d_dres, st->d_dt, stream);
    case K_ATTN: {
        const T *qkv = (const T *)st->d_qkv;
        T *dq = (T *)st->d_du;
        if (st->cudnn_bwd)
            return sa_cudnn_bwd_launch(st->cudnn_bwd, qkv, qkv + d, qkv + 2 * d, st->d_a, st->d_dt,
                                       st->d_lse, dq, dq + d, dq + 2 * d, st->d_cudnn_ws, stream);
        const sa_layout_t lq = qkv_layout(s), lo = a_layout(s);
        return softmax_attn_flash_bwd_launch(qkv, qkv + d, qkv + 2 * d, lq, st->d_a, st->d_dt, lo,
                                             st->d_lse, st->d_delta, dq, dq + d, dq + 2 * d, lq,
                                             s->B, s->H, s->T, s->dk, s->dtype, stream);
    }
    case K_DBQKV: return colsum<T>(st, du, M, 3 * d, gf[TRANSFORMER_IN_BQKV], stream);
    case K_DWQKV:
        return bgemm_run(st, B_DWQKV, du, st->d_xln, gf[TRANSFORMER_IN_WQKV], stream);
    case K_DXLN: return bgemm_run(st, B_DXLN, in[TRANSFORMER_IN_WQKV], du, st->d_dt, stream);
    case K_LN1:
        return ln_bwd<T>(st, in[TRANSFORMER_IN_X], st->d_dt, st->d_dres, f[TRANSFORMER_IN_LN1_G],
                         g->grad[TRANSFORMER_IN_X], M, d, gf[TRANSFORMER_IN_LN1_G],
                         gf[TRANSFORMER_IN_LN1_B], stream);
    default: BENCH_FAIL("transformer/layer: no backward step %d", step);
    }
}

template <typename T>
int run_bwd_impl(const layer_state *st, const io_t *io, const grad_io_t *g, cudaStream_t stream) {
    for (int k = 0; k < N_BSTEPS; k++)
        if (run_bwd_step<T>(st, io, g, k, stream)) return -1;
    return 0;
}

/* Each product's algorithm timed as the forward's are (lt_tune.h), on stand-ins of its own
 * shape taken from the forward's activations (the gradients of the real step need a dy that
 * setup does not have): dout -> y [M,d], dU -> h [M,4d], dQKV -> qkv [M,3d]; the weight
 * gradients go to a scratch fp32 buffer. */
int bwd_tune(layer_state *st, const io_t *io) {
    const shape_t *s = io->shape;
    const size_t d = (size_t)s->d;
    float *d_w = NULL;
    CUDA_CHECK(cudaMalloc(&d_w, 4 * d * d * sizeof(float)));
    const void *const *in = io->in;
    /* {A, B, D} per product, in bgemm_run's order */
    const void *ops[N_BGEMM][3] = {
        {st->d_y, st->d_h, d_w},                      {in[TRANSFORMER_IN_W2], st->d_y, st->d_du},
        {st->d_h, st->d_yln, d_w},                    {in[TRANSFORMER_IN_W1], st->d_h, st->d_dt},
        {st->d_y, st->d_a, d_w},                      {in[TRANSFORMER_IN_WO], st->d_y, st->d_dt},
        {st->d_qkv, st->d_xln, d_w},                  {in[TRANSFORMER_IN_WQKV], st->d_qkv, st->d_dt},
    };
    int rc = 0;
    for (int i = 0; i < N_BGEMM && !rc; i++) {
        const bgemm_t *g = &st->bg[i];
        const lt_call_t call = {g->op, g->la, g->lb, g->ld, g->ld, ops[i][0], ops[i][1], NULL,
                                (void *)ops[i][2], 0.0f, st->d_ws, LT_WS_BYTES, BSHAPE[i].what,
                                NULL, NULL};
        rc = lt_tune(st->lt, &call, 0, &st->bg[i].algo);
    }
    cudaFree(d_w);
    return rc;
}

} // namespace bwd_detail
using namespace bwd_detail;

void bwd_destroy(layer_state *st) {
    for (int i = 0; i < N_BGEMM; i++) bgemm_destroy(&st->bg[i]);
    sa_cudnn_destroy(st->cudnn_bwd);
    st->cudnn_bwd = NULL;
    void *bufs[] = {st->d_hpre, st->d_lse, st->d_delta, st->d_du, st->d_dt, st->d_dres, st->d_part};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) cudaFree(bufs[i]);
    st->d_hpre = st->d_du = st->d_dt = st->d_dres = NULL;
    st->d_lse = st->d_delta = st->d_part = NULL;
}

/* Partial sums: the LayerNorm backward's grid (at most 4 blocks an SM of 132) x 2 d, or the
 * column sums' CS_CHUNKS x 4 d, whichever is larger. */
static int ln_grid_for(long long rows) { return bwd_ln_grid(rows); }

static size_t part_floats(const shape_t *s, int ln_grid) {
    const size_t d = (size_t)s->d, a = (size_t)ln_grid * 2 * d, b = (size_t)CS_CHUNKS * 4 * d;
    return a > b ? a : b;
}

/* The training forward's extra (hpre [M,4d], lse and delta [B*H*T] fp32) and the
 * backward's scratch (dU [M,4d], dt and dres [M,d], the partial sums). */
size_t bwd_workspace_bytes(const shape_t *s) {
    const size_t md = (size_t)s->B * (size_t)s->T * (size_t)s->d, e = dtype_size(s->dtype);
    const size_t rows = (size_t)s->B * s->H * (size_t)s->T;
    return 10 * md * e + 2 * rows * sizeof(float) +
           part_floats(s, ln_grid_for((long long)s->B * s->T)) * sizeof(float);
}

int bwd_setup(const shape_t *s, const io_t *io, layer_state *st) {
    const long long M = (long long)s->B * s->T, d = s->d;
    const size_t md = (size_t)M * (size_t)d, e = dtype_size(s->dtype);
    st->ln_grid = ln_grid_for(M);
    CUDA_CHECK(cudaMalloc(&st->d_du, 4 * md * e));
    CUDA_CHECK(cudaMalloc(&st->d_dt, md * e));
    CUDA_CHECK(cudaMalloc(&st->d_dres, md * e));
    CUDA_CHECK(cudaMalloc(&st->d_part, part_floats(s, st->ln_grid) * sizeof(float)));
    /* the LayerNorm backward's reduction: 2 d floats of shared memory, <= 32 KiB at d 4096 */
    const cudaDataType ty = cuda_type(s->dtype);
    for (int i = 0; i < N_BGEMM; i++) {
        const bgemm_shape *b = &BSHAPE[i];
        const long long N = b->n_mult * d, K = b->k_mult * d;
        int rc;
        if (i == B_DH) { /* GELU' in the epilogue where cuBLASLt has it, else a kernel after */
            rc = bgemm_plan(st->lt, &st->bg[i], ty, M, N, K, 0, CUBLASLT_EPILOGUE_DGELU, st->d_hpre);
            st->dgelu_epilogue = rc == 0;
            if (rc == 1)
                rc = bgemm_plan(st->lt, &st->bg[i], ty, M, N, K, 0, CUBLASLT_EPILOGUE_DEFAULT, NULL);
        } else {
            rc = bgemm_plan(st->lt, &st->bg[i], ty, M, N, K, b->wgrad, CUBLASLT_EPILOGUE_DEFAULT,
                            NULL);
        }
        if (rc == 1)
            BENCH_FAIL("transformer/layer: cuBLASLt has no algorithm for the backward's %s "
                       "(M %lld N %lld K %lld)", b->what, M, N, K);
        if (rc) return -1;
    }
    return st->lt_tune ? bwd_tune(st, io) : 0;
}

int run_bwd(const layer_state *st, const io_t *io, const grad_io_t *g, cudaStream_t stream) {
    return io->shape->dtype == DTYPE_F16 ? run_bwd_impl<__half>(st, io, g, stream)
                                         : run_bwd_impl<__nv_bfloat16>(st, io, g, stream);
}

} // namespace tf_layer

/* ------------------------------ backward stages (--breakdown) ------------------------------ */

using namespace tf_layer;

extern "C" {

DECLARE_BWD_STAGES(transformer_layer);

const char *const transformer_layer_bwd_stage_names[N_BSTEPS + 1] = {
    "db2", "dw2", "dh_dgelu", "db1", "dw1", "dyln", "ln2", "dbo", "dwo", "da", "attn", "dbqkv",
    "dwqkv", "dxln", "ln1", NULL};

int transformer_layer_run_bwd_stage(void *state, const io_t *io, const grad_io_t *g, int stage,
                                    cudaStream_t stream) {
    const layer_state *st = (const layer_state *)state;
    if (!st || !st->train) BENCH_FAIL("transformer/layer: a backward stage without a training setup");
    return io->shape->dtype == DTYPE_F16 ? run_bwd_step<__half>(st, io, g, stage, stream)
                                         : run_bwd_step<__nv_bfloat16>(st, io, g, stage, stream);
}

/* Each step's FLOPs and ideal bytes (its operands read once, its result written once):
 * a column sum reads [M,N] and writes N floats; a wgrad reads X and dZ and writes the fp32
 * weight gradient; a dgrad reads dZ and W (and the pre-activation for DGELU) and writes
 * dIn; a LayerNorm backward reads x, dxln and the residual gradient and writes dx (and 2 d
 * floats); the attention backward reads q, k, v, o, dO and lse, writes dq, dk, dv (2.5x
 * the forward's FLOPs, FlashAttention-2's count, as ops.c counts softmax_attn). */
void transformer_layer_bwd_stage_cost(const shape_t *s, int stage, double *flops, double *bytes) {
    const double M = (double)s->B * s->T, d = s->d, es = (double)dtype_size(s->dtype);
    double f = 0, b = 0;
    int gemm = -1;
    switch (stage) {
    case K_DB2: f = M * d; b = M * d * es + d * 4; break;
    case K_DB1: f = M * 4 * d; b = M * 4 * d * es + 4 * d * 4; break;
    case K_DBO: f = M * d; b = M * d * es + d * 4; break;
    case K_DBQKV: f = M * 3 * d; b = M * 3 * d * es + 3 * d * 4; break;
    case K_DW2: gemm = B_DW2; break;
    case K_DH: gemm = B_DH; break;
    case K_DW1: gemm = B_DW1; break;
    case K_DYLN: gemm = B_DYLN; break;
    case K_DWO: gemm = B_DWO; break;
    case K_DA: gemm = B_DA; break;
    case K_DWQKV: gemm = B_DWQKV; break;
    case K_DXLN: gemm = B_DXLN; break;
    case K_LN2:
    case K_LN1: f = 12 * M * d; b = 4 * M * d * es + 2 * d * 4; break;
    case K_ATTN: {
        const double fwd = (s->causal ? 2.0 : 4.0) * s->B * s->H * (double)s->T * s->T * s->dk;
        f = 2.5 * fwd;
        b = 8 * M * d * es + (double)s->B * s->H * s->T * 4;
        break;
    }
    default: break;
    }
    if (gemm >= 0) {
        const double N = BSHAPE[gemm].n_mult * d, K = BSHAPE[gemm].k_mult * d;
        f = 2 * M * N * K;
        b = BSHAPE[gemm].wgrad ? (M * K + M * N) * es + K * N * 4
                               : (M * N + K * N + M * K) * es + (gemm == B_DH ? M * K * es : 0);
    }
    *flops = f;
    *bytes = b;
}

} // extern "C"
