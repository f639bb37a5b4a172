/* softmax_attn/naive: causal softmax attention the textbook way, with the T x T score matrix
 * materialised in HBM (the O(T^2)-memory baseline).
 *
 * ---- version index (llm.c style) ------------------------------------------------------------
 * Run:  chela-bench --ops softmax_attn --variants naive --seq 1k..8k  (from 16k the scores pass
 *       80 GB: skip:oom rows)
 * v1  cuBLAS S = Q K^T / sqrt(D) in fp32, a row softmax kernel to P, cuBLAS O = P V.  7.53 ms
 *     at T = 1k, 34.04 ms at 8k (H100, bf16, H 16, D 64, 65536 tokens): 14x and 9.5x flash.
 *     profiles/NOTES.md, "softmax_attn".
 *
 *   q, k, v [B,H,T,D] (run dtype)  ->  o [B,H,T,D] (run dtype),  D = dk = dv
 *   S = (Q K^T) / sqrt(D)   (fp32, HBM)       cuBLAS strided-batched GEMM, one batch per head
 *   P = causal_softmax(S)   (run dtype, HBM)  our row kernel: masked, max-subtracted
 *   O = P V                                   cuBLAS strided-batched GEMM
 *
 * v1 in detail:
 *
 * v1 (the only version). Two cublasGemmStridedBatchedEx calls around a row-softmax kernel.
 *   The scores are stored in fp32 (not the run dtype): rounding S to bf16 before the softmax
 *   would add an error of ~|s| * 2^-8 inside the exponent, which at |s| ~ 8 is 3% of a
 *   probability; fp32 S keeps this baseline's error at the level of the bf16 P and O roundings,
 *   so the comparison with flash is about speed, not accuracy. P is stored in the run dtype
 *   because it is the A operand of the second tensor-core GEMM. The 1/sqrt(D) scale is folded
 *   into the first GEMM's alpha. No causal skipping: both GEMMs do the full T x T (it is the
 *   naive baseline); the softmax writes zeros above the diagonal so the second GEMM is exact.
 *   bf16/fp16 use tensor cores (CUBLAS_COMPUTE_32F: fp32 accumulate); fp32 uses
 *   CUBLAS_COMPUTE_32F_PEDANTIC so no TF32 or bf16x9 emulation sneaks in.
 *   Softmax kernel: one 256-thread block per row; pass 1 reads s[0..i] and keeps a per-thread
 *   online (max, sum) pair, merged across the block; pass 2 rereads s[0..i] (mostly L2 hits) and
 *   writes the whole row of P (exp(s - max) / sum, zeros for j > i).
 *   Predicted cost (LM shape: H = 16, D = 64, bf16, 65536 tokens a point, so B*H*T^2 =
 *   2^20 * T score elements): S written 4 B + read ~4 B (half the row twice) + P written 2 B +
 *   read 2 B = 12 B per score element -> 12.9 GB at T = 1k (~4.3 ms at 2.97 TB/s), 103 GB at
 *   T = 8k (~35 ms); the GEMMs' 2 * 2 * 2^20 * T * 64 FLOPs (275 GFLOP at T = 1k) are ~0.4 ms at
 *   760 TFLOP/s, so this is purely HBM-bound and grows linearly in T at fixed tokens.
 *   Memory: B*H*T^2 * (4 + 2) B = 6.4 GB at T = 1k, 51.5 GB at T = 8k, 103 GB at T = 16k
 *   (skip:oom on an 80 GB H100), 412 GB at T = 64k.
 *   measured: 7.53 / 10.94 / 18.03 / 34.04 ms at T = 1k / 2k / 4k / 8k (~4.3 and ~35 predicted).
 *
 * Layouts. cuBLAS is column-major; a row-major X[r][c] with leading dimension ld is the
 * column-major matrix X^T (c x r). So:
 *   S (row-major T x T, ld T) is column-major S^T = K Q^T: m = T (keys), n = T (queries), k = D;
 *     A = K: row-major [T][D] = column-major D x T, used transposed (OP_T, lda = D);
 *     B = Q: row-major [T][D] = column-major D x T = Q^T, used as is (OP_N, ldb = D).
 *   O (row-major T x D) is column-major O^T = V^T P^T: m = D, n = T, k = T;
 *     A = V: row-major [T][D] = column-major V^T (D x T), OP_N, lda = D;
 *     B = P: row-major [T][T] = column-major P^T (T x T), OP_N, ldb = T.
 */
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_check.h"
#include "dtype_device.cuh" /* from_f32 */
#include "variant.h"

extern "C" {
DECLARE_VARIANT(softmax_attn_naive);
}

namespace {

/* cuBLAS's recommended workspace on Hopper; we own it so run() never allocates. */
constexpr size_t CUBLAS_WS_BYTES = (size_t)32 << 20;
constexpr int SOFTMAX_THREADS = 256;

struct naive_state {
    cublasHandle_t handle;
    void *d_ws;        /* cuBLAS workspace                       */
    float *d_s;        /* scores, [B*H][T][T] fp32               */
    void *d_p;         /* probabilities, [B*H][T][T] run dtype   */
    int per, f32;      /* heads a cuBLAS call; fp32 run (pedantic GEMMs): config column */
};

/* Merges two online-softmax partials (max m, sum l of exp(x - m)). Both -inf means "nothing
 * seen yet" and must stay (-inf, 0) instead of producing exp(-inf - -inf) = NaN. */
__device__ __forceinline__ void merge_ml(float &m, float &l, float m2, float l2) {
    float mm = fmaxf(m, m2);
    if (mm == -INFINITY) {
        l = 0.f;
    } else {
        l = l * expf(m - mm) + l2 * expf(m2 - mm);
    }
    m = mm;
}

/* One block per score row. Row r of the flattened [B*H*T][T] matrix is query i = r % T; only
 * columns j <= i are kept (causal). Writes the full row of P (zeros above the diagonal). */
template <typename TP>
__global__ void __launch_bounds__(SOFTMAX_THREADS)
causal_softmax_rows(const float *__restrict__ d_s, TP *__restrict__ d_p, int T) {
    __shared__ float s_m[SOFTMAX_THREADS / 32];
    __shared__ float s_l[SOFTMAX_THREADS / 32];
    const size_t row = blockIdx.x;
    const int i = (int)(row % (size_t)T);
    const float *s = d_s + row * (size_t)T;
    TP *p = d_p + row * (size_t)T;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;

    /* Pass 1: per-thread online max / sum over this thread's columns j <= i. */
    float m = -INFINITY, l = 0.f;
    for (int j = tid; j <= i; j += SOFTMAX_THREADS) {
        float x = s[j];
        if (x > m) {
            l = l * expf(m - x) + 1.f; /* m = -inf the first time: 0 * 0 + 1 */
            m = x;
        } else {
            l += expf(x - m);
        }
    }
    for (int off = 16; off > 0; off >>= 1) {
        float m2 = __shfl_xor_sync(0xffffffffu, m, off);
        float l2 = __shfl_xor_sync(0xffffffffu, l, off);
        merge_ml(m, l, m2, l2);
    }
    if (lane == 0) {
        s_m[warp] = m;
        s_l[warp] = l;
    }
    __syncthreads();
    m = s_m[0];
    l = s_l[0];
    for (int w = 1; w < SOFTMAX_THREADS / 32; w++) merge_ml(m, l, s_m[w], s_l[w]);
    /* Column 0 is always kept, so m is finite and l >= 1 here. */
    const float inv_l = 1.f / l;

    /* Pass 2: the whole row, so the P V GEMM reads exact zeros above the diagonal. */
    for (int j = tid; j < T; j += SOFTMAX_THREADS) {
        float y = (j <= i) ? expf(s[j] - m) * inv_l : 0.f;
        p[j] = from_f32<TP>(y);
    }
}

cudaDataType cuda_type(dtype_t t) {
    return t == DTYPE_F32 ? CUDA_R_32F : (t == DTYPE_F16 ? CUDA_R_16F : CUDA_R_16BF);
}

/* Heads per cuBLAS call: at most 65535 batches and about 2^31 score elements per call, to stay
 * clear of any 32-bit indexing or grid-dimension limit inside cuBLAS. Only matters at shapes
 * that are near or past the memory limit anyway. */
int heads_per_call(const shape_t *s) {
    long long bh = (long long)s->B * s->H;
    long long tt = (long long)s->T * s->T;
    long long per = (long long)INT_MAX / tt;
    if (per < 1) per = 1;
    if (per > 65535) per = 65535;
    if (per > bh) per = bh;
    return (int)per;
}

void destroy_state(naive_state *st) {
    if (!st) return;
    if (st->handle) cublasDestroy(st->handle);
    cudaFree(st->d_ws);
    cudaFree(st->d_s);
    cudaFree(st->d_p);
    free(st);
}

int setup_impl(const shape_t *s, naive_state *st) {
    const size_t bh = (size_t)s->B * (size_t)s->H;
    const size_t n_scores = bh * (size_t)s->T * (size_t)s->T;
    CUDA_CHECK(cudaMalloc(&st->d_s, n_scores * sizeof(float)));
    CUDA_CHECK(cudaMalloc(&st->d_p, n_scores * dtype_size(s->dtype)));
    CUDA_CHECK(cudaMalloc(&st->d_ws, CUBLAS_WS_BYTES));
    CUBLAS_CHECK(cublasCreate(&st->handle));
    st->per = heads_per_call(s);
    st->f32 = s->dtype == DTYPE_F32;
    return 0;
}

} // namespace

extern "C" {

const char *softmax_attn_naive_supports(const shape_t *s) {
    if (!s->causal) return "causal only (its softmax kernel masks)";
    if (s->dk != s->dv) return "dk must equal dv";
    if (s->dk <= 0 || s->T <= 0 || s->B <= 0 || s->H <= 0) return "empty shape";
    /* One softmax block per score row on grid.x. */
    if ((long long)s->B * s->H * s->T > INT_MAX) return "B*H*T must be < 2^31";
    return NULL;
}

/* Scores (fp32) + probabilities (run dtype) for every head, plus the cuBLAS workspace.
 * Computed in double first: at T = 64k the product is ~4e11 and the caller only needs to know
 * that it will not fit. */
size_t softmax_attn_naive_workspace_bytes(const shape_t *s) {
    double n = (double)s->B * s->H * (double)s->T * s->T;
    double bytes = n * (4.0 + (double)dtype_size(s->dtype)) + (double)CUBLAS_WS_BYTES;
    if (bytes >= 9.0e18) return (size_t)9000000000000000000ull; /* "far too big", no overflow */
    return (size_t)s->B * s->H * (size_t)s->T * (size_t)s->T * (4 + dtype_size(s->dtype)) +
           CUBLAS_WS_BYTES;
}

int softmax_attn_naive_setup(const shape_t *s, const io_t *io, void **state) {
    (void)io;
    *state = NULL;
    naive_state *st = (naive_state *)calloc(1, sizeof(naive_state));
    if (!st) BENCH_FAIL("softmax_attn/naive: out of host memory");
    if (setup_impl(s, st) != 0) {
        destroy_state(st);
        (void)cudaGetLastError(); /* a failed cudaMalloc must not leak into the next launch check */
        return -1;
    }
    *state = st;
    return 0;
}

int softmax_attn_naive_run(void *state, const io_t *io, cudaStream_t stream) {
    naive_state *st = (naive_state *)state;
    const shape_t *s = io->shape;
    const int T = s->T, D = s->dk;
    const int bh = s->B * s->H;
    const size_t esz = dtype_size(s->dtype);
    const cudaDataType ty = cuda_type(s->dtype);
    const cublasComputeType_t ct =
        s->dtype == DTYPE_F32 ? CUBLAS_COMPUTE_32F_PEDANTIC : CUBLAS_COMPUTE_32F;
    const long long stride_x = (long long)T * D; /* q, k, v, o per head */
    const long long stride_s = (long long)T * T; /* S, P per head       */
    const float alpha_s = 1.0f / sqrtf((float)D), one = 1.0f, zero = 0.0f;

    /* cublasSetStream resets the workspace to cuBLAS's own pool, so set ours after it. */
    CUBLAS_CHECK(cublasSetStream(st->handle, stream));
    CUBLAS_CHECK(cublasSetWorkspace(st->handle, st->d_ws, CUBLAS_WS_BYTES));

    const char *d_q = (const char *)io->in[0];
    const char *d_k = (const char *)io->in[1];
    const char *d_v = (const char *)io->in[2];
    char *d_o = (char *)io->out;
    char *d_p = (char *)st->d_p;
    const int per = heads_per_call(s);

    /* S^T (column-major, m = keys, n = queries) = K Q^T * alpha for each head. */
    for (int h0 = 0; h0 < bh; h0 += per) {
        const int n = (bh - h0 < per) ? bh - h0 : per;
        const size_t xo = (size_t)h0 * (size_t)stride_x * esz;
        float *d_s = st->d_s + (size_t)h0 * (size_t)stride_s;
        CUBLAS_CHECK(cublasGemmStridedBatchedEx(
            st->handle, CUBLAS_OP_T, CUBLAS_OP_N, T, T, D, &alpha_s, d_k + xo, ty, D, stride_x,
            d_q + xo, ty, D, stride_x, &zero, d_s, CUDA_R_32F, T, stride_s, n, ct,
            CUBLAS_GEMM_DEFAULT));
    }

    const unsigned rows = (unsigned)((size_t)bh * (size_t)T);
    switch (s->dtype) {
    case DTYPE_F32:
        causal_softmax_rows<float><<<rows, SOFTMAX_THREADS, 0, stream>>>(st->d_s,
                                                                          (float *)st->d_p, T);
        break;
    case DTYPE_F16:
        causal_softmax_rows<__half><<<rows, SOFTMAX_THREADS, 0, stream>>>(st->d_s,
                                                                           (__half *)st->d_p, T);
        break;
    default:
        causal_softmax_rows<__nv_bfloat16><<<rows, SOFTMAX_THREADS, 0, stream>>>(
            st->d_s, (__nv_bfloat16 *)st->d_p, T);
        break;
    }
    CUDA_CHECK(cudaGetLastError());

    /* O^T (column-major D x T) = V^T P^T for each head. */
    for (int h0 = 0; h0 < bh; h0 += per) {
        const int n = (bh - h0 < per) ? bh - h0 : per;
        const size_t xo = (size_t)h0 * (size_t)stride_x * esz;
        const size_t po = (size_t)h0 * (size_t)stride_s * esz;
        CUBLAS_CHECK(cublasGemmStridedBatchedEx(
            st->handle, CUBLAS_OP_N, CUBLAS_OP_N, D, T, T, &one, d_v + xo, ty, D, stride_x,
            d_p + po, ty, T, stride_s, &zero, d_o + xo, ty, D, stride_x, n, ct,
            CUBLAS_GEMM_DEFAULT));
    }
    return 0;
}

void softmax_attn_naive_teardown(void *state) { destroy_state((naive_state *)state); }

/* "cublas-gemm+softmax compute=32f heads_per_call=16": two strided-batched cuBLAS GEMMs around
 * the row softmax, their compute type (32f_pedantic for fp32 runs: no TF32), heads a call. */
void softmax_attn_naive_config(const void *state, char *buf, size_t len) {
    const naive_state *st = (const naive_state *)state;
    if (!len) return;
    buf[0] = 0;
    if (st)
        snprintf(buf, len, "cublas-gemm+softmax compute=%s heads_per_call=%d",
                 st->f32 ? "32f_pedantic" : "32f", st->per);
}

} // extern "C"
