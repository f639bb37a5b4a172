/* oracle_transformer.cu: transformer/oracle_fp32, the transformer op in plain fp32 on the GPU:
 * the oracle that checks transformer/layer over the whole sequence.
 *
 * Why it exists: every output row of the layer needs K and V of all earlier rows through a
 * d x 2d GEMM, so the CPU reference (double, one thread) can afford only the first few
 * thousand rows at d = 1024, never T = 64k. The harness runs this variant once per point,
 * checks it against the CPU reference on the rows the CPU can afford, then checks the other
 * variants against its output on a sample spanning the whole sequence (op.h, gpu_oracle).
 *
 * So it is written to be obviously the definition (ops.c), not to be fast:
 *   - inputs arrive in their storage types (act tensors in the run dtype, biases and norm
 *     parameters fp32) and are widened to fp32 copies first; everything after is fp32;
 *   - GEMMs: cublasGemmEx, fp32 in and out, CUBLAS_COMPUTE_32F_PEDANTIC on a handle in
 *     CUBLAS_PEDANTIC_MATH mode: no TF32, no bf16x9 emulation. The bias (and the residual)
 *     is written into the output first and the GEMM adds to it with beta = 1;
 *   - LayerNorm: one warp per row, mean then the centered variance, 1/sqrtf (not rsqrtf);
 *   - GELU: exact, 0.5 x (1 + erff(x / sqrt 2)), its own pass;
 *   - attention: one warp per (batch, head, query row), online softmax in fp32 with expf,
 *     keys in chunks of 32 (one key per lane for the score, then the 32 probabilities are
 *     shuffled out for P V, each lane owning D/32 output columns).
 * Output: io->out as fp32 [B,T,d] whatever the run dtype.
 * Training (setup saw pass != PASS_FWD): run() also keeps GELU's input u (the GEMM writes u,
 * GELU then writes h from it instead of in place) and each attention row's log-sum-exp
 * m + log l of its scaled scores, [B*H][T], so the backward (oracle_transformer_bwd.cu) can
 * rebuild any probability as exp(s - lse) without a second online softmax; LayerNorm's
 * statistics it recomputes. Cost of that: one more write of [M,4d] and B H T floats, a few
 * ms at the default point, nothing against the attention.
 * Cost (predicted; measured: not yet): fp32 GEMMs (~50 TFLOP/s) take ~35 ms at the default
 * point; the attention issues ~8 warp instructions per (row, key) pair, 0.52 T G pairs at
 * 65536 tokens a point: ~40 ms at T = 8k, ~0.3 s at 64k if it stays issue-bound.
 * Workspace (its own, not the harness's): x and the weights in fp32, xln, qkv, a, y, yln,
 * h: 12 M d + 12 d^2 floats (3.2 GB at the default point) + 32 MB for cuBLAS; training adds
 * u and the backward's scratch, 10 M d + 2 B H T + 2 M + 1024 d floats (oracle_transformer.h,
 * train_floats: 2.7 GB more at the default point). */
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_check.h"
#include "dtype_device.cuh"
#include "op_inputs.h"
#include "oracle_transformer.h" /* the state, shared with the backward; oracle_common.cuh */
#include "variant.h"

extern "C" {
DECLARE_VARIANT(transformer_oracle_fp32);
}

using namespace tf_oracle;

namespace {

/* d_wide[i] holds input WIDE_IN[i] widened (WIDE_*: oracle_transformer.h). */
constexpr int WIDE_IN[N_WIDE] = {TRANSFORMER_IN_X, TRANSFORMER_IN_WQKV, TRANSFORMER_IN_WO,
                                 TRANSFORMER_IN_W1, TRANSFORMER_IN_W2};
static_assert(WIDE_X == 0 && WIDE_WQKV == 1 && WIDE_WO == 2 && WIDE_W1 == 3 && WIDE_W2 == 4,
              "WIDE_IN follows the WIDE_* order");

/* ---------------------------------- kernels ---------------------------------- */

/* out[r][j] = bias[j] (+ res[r][j]): the GEMM then adds X W with beta = 1. */
__global__ void bias_rows(float *__restrict__ out, const float *__restrict__ bias,
                          const float *__restrict__ res, long long rows, int n) {
    const size_t total = (size_t)rows * n;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = bias[i % n] + (res ? res[i] : 0.0f);
}

/* h = GELU(u); in place (u == h, so no __restrict__) unless training keeps u. */
__global__ void gelu_erf(const float *u, float *h, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        const float x = u[i];
        h[i] = 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    }
}

/* One warp per row of d features; the row is re-read (from L1) for each pass. */
__global__ void __launch_bounds__(ROW_WARPS * 32)
layer_norm_f32(const float *__restrict__ x, float *__restrict__ y, const float *__restrict__ g,
               const float *__restrict__ b, long long rows, int d) {
    const long long row = (long long)blockIdx.x * ROW_WARPS + (threadIdx.x >> 5);
    if (row >= rows) return; /* warp-uniform */
    const int lane = threadIdx.x & 31;
    const float *xr = x + row * d;
    float mean, inv;
    ln_row_stats(xr, d, lane, mean, inv); /* oracle_transformer.h: the backward's too */
    float *yr = y + row * d;
    for (int i = lane; i < d; i += 32) yr[i] = (xr[i] - mean) * inv * g[i] + b[i];
}

/* Causal attention on qkv [B,T,3d] (q at column h*D, k at d + h*D, v at 2d + h*D) into
 * a [B,T,d]. One warp per (b, h, t); a block's warps take ROW_WARPS consecutive rows of one
 * head, so they read the same K and V rows (L1 hits, not 8x the L2 traffic), and blocks go
 * longest rows first across all heads. Per chunk of 32 keys: lane j
 * scores key s0 + j against the whole (pre-scaled) query held in its registers, the warp
 * updates the running max m and sum l (rescaling the accumulator by exp(m - m')), then
 * the 32 probabilities are broadcast one by one for P V, lane owning columns lane + 32 e.
 * lse (training; else NULL): [B*H][T], the row's m + log l, for the backward. */
template <int D>
__global__ void __launch_bounds__(ROW_WARPS * 32)
attention_f32(const float *__restrict__ qkv, float *__restrict__ a, float *__restrict__ lse,
              int B, int T, int H, float scale) {
    constexpr int E = D / 32;
    const unsigned bh_count = (unsigned)B * (unsigned)H;
    const int n_tb = (T + ROW_WARPS - 1) / ROW_WARPS;
    const int tb = n_tb - 1 - (int)(blockIdx.x / bh_count);
    const int t = tb * ROW_WARPS + (int)(threadIdx.x >> 5);
    if (t >= T) return; /* warp-uniform; no barriers below */
    const int lane = threadIdx.x & 31;
    const int bh = (int)(blockIdx.x % bh_count), b = bh / H, h = bh % H;
    const size_t d = (size_t)H * D, ld = 3 * d;
    const float *base = qkv + (size_t)b * T * ld;

    float q[D];
    const float4 *q4 = reinterpret_cast<const float4 *>(base + (size_t)t * ld + (size_t)h * D);
#pragma unroll
    for (int i = 0; i < D / 4; i++) {
        const float4 u = q4[i];
        q[4 * i] = u.x * scale;
        q[4 * i + 1] = u.y * scale;
        q[4 * i + 2] = u.z * scale;
        q[4 * i + 3] = u.w * scale;
    }
    float m = -INFINITY, l = 0.f, acc[E];
#pragma unroll
    for (int e = 0; e < E; e++) acc[e] = 0.f;

    for (int s0 = 0; s0 <= t; s0 += 32) {
        const int s = s0 + lane;
        float sc = -INFINITY;
        if (s <= t) {
            const float4 *k4 =
                reinterpret_cast<const float4 *>(base + (size_t)s * ld + d + (size_t)h * D);
            float dot = 0.f;
#pragma unroll
            for (int i = 0; i < D / 4; i++) {
                const float4 u = k4[i];
                dot = fmaf(q[4 * i], u.x, dot);
                dot = fmaf(q[4 * i + 1], u.y, dot);
                dot = fmaf(q[4 * i + 2], u.z, dot);
                dot = fmaf(q[4 * i + 3], u.w, dot);
            }
            sc = dot;
        }
        float mx = sc;
#pragma unroll
        for (int off = 16; off > 0; off >>= 1)
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
        const float mn = fmaxf(m, mx);       /* finite: key s0 <= t always exists */
        const float alpha = expf(m - mn);    /* m = -inf on the first chunk: 0 */
        const float p = s <= t ? expf(sc - mn) : 0.f;
        l = l * alpha + warp_sum(p);
#pragma unroll
        for (int e = 0; e < E; e++) acc[e] *= alpha;
        const int n = min(32, t - s0 + 1); /* warp-uniform */
        const float *v = base + (size_t)s0 * ld + 2 * d + (size_t)h * D;
        for (int j = 0; j < n; j++) {
            const float pj = __shfl_sync(0xffffffffu, p, j);
#pragma unroll
            for (int e = 0; e < E; e++)
                acc[e] = fmaf(pj, v[(size_t)j * ld + lane + 32 * e], acc[e]);
        }
        m = mn;
    }
    float *o = a + ((size_t)b * T + t) * d + (size_t)h * D;
#pragma unroll
    for (int e = 0; e < E; e++) o[lane + 32 * e] = acc[e] / l; /* l >= 1: the max's own term */
    if (lse && lane == 0) lse[(size_t)bh * T + t] = m + logf(l);
}

/* ---------------------------------- host ---------------------------------- */

/* Row-major Y[M,N] += X[M,K] W[K,N], fp32, as the column-major Y^T = W^T X^T. */
int gemm_acc(cublasHandle_t hd, const float *X, const float *W, float *Y, long long M, int N,
             int K) {
    const float one = 1.0f;
    CUBLAS_CHECK(cublasGemmEx(hd, CUBLAS_OP_N, CUBLAS_OP_N, N, (int)M, K, &one, W, CUDA_R_32F, N,
                              X, CUDA_R_32F, K, &one, Y, CUDA_R_32F, N,
                              CUBLAS_COMPUTE_32F_PEDANTIC, CUBLAS_GEMM_DEFAULT));
    return 0;
}

int bias_init(float *out, const float *bias, const float *res, long long rows, int n,
              cudaStream_t stream) {
    bias_rows<<<ew_blocks((size_t)rows * n), EW_THREADS, 0, stream>>>(out, bias, res, rows, n);
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

int ln_f32(const float *x, float *y, const float *g, const float *b, long long rows, int d,
           cudaStream_t stream) {
    const unsigned blocks = (unsigned)((rows + ROW_WARPS - 1) / ROW_WARPS);
    layer_norm_f32<<<blocks, ROW_WARPS * 32, 0, stream>>>(x, y, g, b, rows, d);
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

/* The act-dtype inputs widened to fp32 (oracle_common.cuh's convert_f32, on the run stream). */
template <typename T>
int widen_all(const oracle_state *st, const io_t *io, const size_t *elems, cudaStream_t stream) {
    for (int i = 0; i < N_WIDE; i++)
        if (convert_typed<T>(io->in[WIDE_IN[i]], st->d_wide[i], elems[i], stream)) return -1;
    return 0;
}

/* Elements of WIDE_IN's tensors. */
void wide_elems(const shape_t *s, size_t *n) {
    const size_t d = (size_t)s->d;
    n[0] = (size_t)s->B * (size_t)s->T * d; /* x     */
    n[1] = d * 3 * d;                       /* Wqkv  */
    n[2] = d * d;                           /* Wo    */
    n[3] = d * 4 * d;                       /* W1    */
    n[4] = 4 * d * d;                       /* W2    */
}

void destroy_state(oracle_state *st) {
    if (!st) return;
    if (st->handle) cublasDestroy(st->handle);
    for (int i = 0; i < N_WIDE; i++) cudaFree(st->d_wide[i]);
    void *bufs[] = {st->d_ws,   st->d_xln,  st->d_qkv,   st->d_a,    st->d_y,    st->d_yln,
                    st->d_h,    st->d_u,    st->d_lse,   st->d_dy,   st->d_dh,   st->d_gd,
                    st->d_delta, st->d_mean, st->d_rstd, st->d_part};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) cudaFree(bufs[i]);
    free(st);
}

int setup_impl(const shape_t *s, oracle_state *st) {
    const size_t md = (size_t)s->B * (size_t)s->T * (size_t)s->d, f = sizeof(float);
    size_t n[N_WIDE];
    wide_elems(s, n);
    for (int i = 0; i < N_WIDE; i++) CUDA_CHECK(cudaMalloc(&st->d_wide[i], n[i] * f));
    CUDA_CHECK(cudaMalloc(&st->d_ws, CUBLAS_WS_BYTES));
    CUDA_CHECK(cudaMalloc(&st->d_xln, md * f));
    CUDA_CHECK(cudaMalloc(&st->d_qkv, 3 * md * f));
    CUDA_CHECK(cudaMalloc(&st->d_a, md * f));
    CUDA_CHECK(cudaMalloc(&st->d_y, md * f));
    CUDA_CHECK(cudaMalloc(&st->d_yln, md * f));
    CUDA_CHECK(cudaMalloc(&st->d_h, 4 * md * f));
    if (s->pass != PASS_FWD) { /* what the backward reads and its scratch (train_floats) */
        const size_t M = (size_t)s->B * (size_t)s->T;
        const size_t rows_bh = (size_t)s->B * (size_t)s->H * (size_t)s->T;
        st->train = 1;
        CUDA_CHECK(cudaMalloc(&st->d_u, 4 * md * f));
        CUDA_CHECK(cudaMalloc(&st->d_lse, rows_bh * f));
        CUDA_CHECK(cudaMalloc(&st->d_dy, md * f));
        CUDA_CHECK(cudaMalloc(&st->d_dh, 4 * md * f));
        CUDA_CHECK(cudaMalloc(&st->d_gd, md * f));
        CUDA_CHECK(cudaMalloc(&st->d_delta, rows_bh * f));
        CUDA_CHECK(cudaMalloc(&st->d_mean, M * f));
        CUDA_CHECK(cudaMalloc(&st->d_rstd, M * f));
        CUDA_CHECK(cudaMalloc(&st->d_part, (size_t)COLSUM_CHUNKS * 4 * (size_t)s->d * f));
    }
    CUBLAS_CHECK(cublasCreate(&st->handle));
    CUBLAS_CHECK(cublasSetMathMode(st->handle, CUBLAS_PEDANTIC_MATH));
    return 0;
}

int attention(const oracle_state *st, const shape_t *s, cudaStream_t stream) {
    /* B*H heads x ceil(T / ROW_WARPS) row blocks (supports() keeps this < 2^31) */
    const long long row_blocks = (s->T + ROW_WARPS - 1) / ROW_WARPS;
    const unsigned blocks = (unsigned)((long long)s->B * s->H * row_blocks);
    const float scale = 1.0f / sqrtf((float)s->dk);
    switch (s->dk) {
    case 32:
        attention_f32<32><<<blocks, ROW_WARPS * 32, 0, stream>>>(st->d_qkv, st->d_a, st->d_lse,
                                                                 s->B, s->T, s->H, scale);
        break;
    case 64:
        attention_f32<64><<<blocks, ROW_WARPS * 32, 0, stream>>>(st->d_qkv, st->d_a, st->d_lse,
                                                                 s->B, s->T, s->H, scale);
        break;
    case 128:
        attention_f32<128><<<blocks, ROW_WARPS * 32, 0, stream>>>(st->d_qkv, st->d_a, st->d_lse,
                                                                  s->B, s->T, s->H, scale);
        break;
    default: BENCH_FAIL("transformer/oracle_fp32: head dim %d not in {32, 64, 128}", s->dk);
    }
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

} // namespace

extern "C" {

const char *transformer_oracle_fp32_supports(const shape_t *s) {
    if (s->B <= 0 || s->T <= 0 || s->d <= 0 || s->H <= 0) return "empty shape";
    if (s->dk != s->dv || (long long)s->H * s->dk != s->d) return "needs dk == dv and H * dk == d";
    if (s->dk != 32 && s->dk != 64 && s->dk != 128) return "head dim must be 32, 64 or 128";
    if ((long long)s->B * s->T > 2147483647LL) return "B*T must be < 2^31 (cuBLAS n)";
    if ((long long)s->B * s->H * ((s->T + ROW_WARPS - 1) / ROW_WARPS) >= 2147483647LL)
        return "B*H*T too large";
    return NULL;
}

size_t transformer_oracle_fp32_workspace_bytes(const shape_t *s) {
    const size_t md = (size_t)s->B * (size_t)s->T * (size_t)s->d, d = (size_t)s->d;
    const size_t train = s->pass != PASS_FWD ? train_floats(s) : 0;
    return (12 * md + 12 * d * d + train) * sizeof(float) + CUBLAS_WS_BYTES;
}

int transformer_oracle_fp32_setup(const shape_t *s, const io_t *io, void **state) {
    (void)io;
    *state = NULL;
    oracle_state *st = (oracle_state *)calloc(1, sizeof(oracle_state));
    if (!st) BENCH_FAIL("transformer/oracle_fp32: out of host memory");
    if (setup_impl(s, st)) {
        destroy_state(st);
        (void)cudaGetLastError(); /* a failed cudaMalloc must not leak into the next check */
        return -1;
    }
    *state = st;
    return 0;
}

int transformer_oracle_fp32_run(void *state, const io_t *io, cudaStream_t stream) {
    const oracle_state *st = (const oracle_state *)state;
    if (!st) BENCH_FAIL("transformer/oracle_fp32: run without setup");
    const shape_t *s = io->shape;
    const long long M = (long long)s->B * s->T;
    const int d = s->d;
    const float *const *f = (const float *const *)io->in; /* the fp32-stored inputs */
    size_t n[N_WIDE];
    wide_elems(s, n);
    int rc = s->dtype == DTYPE_F32   ? widen_all<float>(st, io, n, stream)
             : s->dtype == DTYPE_F16 ? widen_all<__half>(st, io, n, stream)
                                     : widen_all<__nv_bfloat16>(st, io, n, stream);
    if (rc) return -1;
    const float *x = st->d_wide[WIDE_X], *Wqkv = st->d_wide[WIDE_WQKV];
    const float *Wo = st->d_wide[WIDE_WO], *W1 = st->d_wide[WIDE_W1], *W2 = st->d_wide[WIDE_W2];
    float *out = (float *)io->out;
    float *u = st->train ? st->d_u : st->d_h; /* GELU's input: kept when training */

    /* cublasSetStream resets the workspace to cuBLAS's own pool, so set ours after it. */
    CUBLAS_CHECK(cublasSetStream(st->handle, stream));
    CUBLAS_CHECK(cublasSetWorkspace(st->handle, st->d_ws, CUBLAS_WS_BYTES));
    if (ln_f32(x, st->d_xln, f[TRANSFORMER_IN_LN1_G], f[TRANSFORMER_IN_LN1_B], M, d, stream) ||
        bias_init(st->d_qkv, f[TRANSFORMER_IN_BQKV], NULL, M, 3 * d, stream) ||
        gemm_acc(st->handle, st->d_xln, Wqkv, st->d_qkv, M, 3 * d, d) ||
        attention(st, s, stream) ||
        bias_init(st->d_y, f[TRANSFORMER_IN_BO], x, M, d, stream) ||
        gemm_acc(st->handle, st->d_a, Wo, st->d_y, M, d, d) ||
        ln_f32(st->d_y, st->d_yln, f[TRANSFORMER_IN_LN2_G], f[TRANSFORMER_IN_LN2_B], M, d,
               stream) ||
        bias_init(u, f[TRANSFORMER_IN_B1], NULL, M, 4 * d, stream) ||
        gemm_acc(st->handle, st->d_yln, W1, u, M, 4 * d, d))
        return -1;
    const size_t nh = (size_t)M * 4 * (size_t)d;
    gelu_erf<<<ew_blocks(nh), EW_THREADS, 0, stream>>>(u, st->d_h, nh);
    CUDA_CHECK(cudaGetLastError());
    if (bias_init(out, f[TRANSFORMER_IN_B2], st->d_y, M, d, stream) ||
        gemm_acc(st->handle, st->d_h, W2, out, M, d, 4 * d))
        return -1;
    return 0;
}

void transformer_oracle_fp32_teardown(void *state) { destroy_state((oracle_state *)state); }

/* "fp32 gemm=32f_pedantic attn=warp-online gelu=erf": the definition in fp32 (header); when
 * training, " bwd=warp-lse": the backward rebuilds P from the kept log-sum-exp, one warp a
 * query row (dQ) or a key row (dK, dV) (oracle_transformer_bwd.cu). */
void transformer_oracle_fp32_config(const void *state, char *buf, size_t len) {
    if (!len) return;
    buf[0] = 0;
    if (state)
        snprintf(buf, len, "fp32 gemm=32f_pedantic attn=warp-online gelu=erf%s",
                 ((const oracle_state *)state)->train ? " bwd=warp-lse" : "");
}

} // extern "C"
