/* oracle_mega.cu: mega/oracle_fp32, MEGA's gated attention layer (ops.c, chela-spec.md "The
 * hybrid baseline") in plain fp32 on the GPU: the yardstick mega/layer is checked against over
 * the whole sequence, itself checked against the CPU reference (ref_mega.c) on the first rows.
 *
 *   inputs MEGA_IN_* (op_inputs.h; x and the GEMM weights in the run dtype, the rest fp32)
 *   ->  y' [B,T,d] fp32, whatever the run dtype;  the chunk c = mega_chunk(s) (its setting)
 *
 * It follows ref_mega.c stage by stage, with no algorithmic shortcut: the EMA by its
 * recurrence (not the FFT convolution the variant runs), the attention query by query over the
 * keys of its chunk, no tensor cores.  Every intermediate is an fp32 [B*T, width] row-major
 * buffer:
 *   1. ln_rows<Tx>     X~ = LayerNorm1(X)                 (oracle_common.cuh)
 *   2. ema_scan        X' = EMA(X~), a thread per (b, c) walking t, its h = 16 states in
 *                      registers: h += a beta x - (a g) h (the decay 1 - a g written this way so
 *                      that a slow dim's small a g keeps its fp32 precision: 1 - a g rounded to
 *                      fp32 would move a 4000-token time constant by ~1e-4)
 *   3. GEMM + bias     P  = X' . W_proj + b_proj          columns [Zq | G | F | Hz]
 *   4. qk_from_p       Q, K                               (oracle_common.cuh)
 *   5. GEMM + SiLU     V  = SiLU(X~ . W_v + b_v)
 *   6. chunk_attn      O  = softmax over the chunk's keys s0..t of q.k / sqrt(z), times V; a
 *                      block a query, two passes over the keys (the max, then exp / sum / PV:
 *                      no rescaling), each thread owning v / 256 output columns;
 *                      the reset gate applied as it writes: M = SiLU(G) . O
 *   7. GEMM            Hm = M . U_h
 *   8. gate<Tx>        Y  = phi . SiLU(Hz + Hm + b_h) + (1 - phi) . X,  phi = sigmoid(F)
 *   9. ln_rows<float>  L  = LayerNorm2(Y)                 (Y is written to the output)
 *  10. GEMM + SiLU     F  = SiLU(L . W1)
 *  11. GEMM, beta = 1  Y' = Y + F . W2
 *
 * ---- version index ---------------------------------------------------------------------------
 * v1 (the only version).  Not yet run on a GPU when written (no device on the machine it was
 *   written on); predicted at T = 64k, B = 1, d = 1024, c = 1024 on an H100: the attention
 *   ~65536 queries x 1024 keys x (z + 2v) FMAs = 2.9e11, its K/V chunk (9 MB) L2-resident,
 *   ~20-60 ms; the GEMMs 30-45 ms (as chela's oracle); the EMA scan 1024 threads x 64k x 16
 *   steps, ~2-5 ms.
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
#include "common/math.cuh" /* warp_sum */
#include "dtype_device.cuh"
#include "oracle_common.cuh" /* silu_f, sigmoid_f, ln_rows, bias_act, qk_from_p, gemm_rows */
#include "op_inputs.h"
#include "variant.h"

extern "C" {
DECLARE_VARIANT(mega_oracle_fp32);
}

namespace {

constexpr int EMA_THREADS = 128;
constexpr int AT_THREADS = 256;             /* chunk_attn: threads a query               */
constexpr int AT_VMAX = 16;                 /* output columns a thread: v <= 4096        */
constexpr int AT_ZMAX = 1024;               /* q staged in shared memory: z <= 1024      */

struct mega_oracle_state {
    cublasHandle_t handle;
    void *d_ws;
    int chunk;       /* mega_chunk(s), resolved at setup */
    float *d_wproj, *d_wv, *d_uh, *d_w1, *d_w2;        /* fp32 copies of the weights */
    float *d_xln, *d_xe, *d_p, *d_q, *d_k, *d_val, *d_o, *d_hm, *d_ln2, *d_f;
};

/* X'[b,t,c] = sum_j eta_j h_{t,j},  h_t = h_{t-1} + a beta X~[b,t,c] - (a g) h_{t-1}. */
__global__ void __launch_bounds__(EMA_THREADS)
ema_scan(const float *__restrict__ xln, const float *__restrict__ alpha,
         const float *__restrict__ delta, const float *__restrict__ beta,
         const float *__restrict__ eta, float *__restrict__ xe, int B, int T, int d) {
    const long long i = (long long)blockIdx.x * EMA_THREADS + threadIdx.x;
    if (i >= (long long)B * d) return;
    const int c = (int)(i % d);
    const size_t b = (size_t)(i / d);
    float gain[MEGA_EMA_H], rate[MEGA_EMA_H], et[MEGA_EMA_H], h[MEGA_EMA_H];
#pragma unroll
    for (int j = 0; j < MEGA_EMA_H; j++) {
        const size_t pi = (size_t)c * MEGA_EMA_H + j;
        const float a = sigmoid_f(alpha[pi]), g = sigmoid_f(delta[pi]);
        gain[j] = a * beta[pi];
        rate[j] = a * g;
        et[j] = eta[pi];
        h[j] = 0.f;
    }
    const float *xb = xln + b * T * d + c;
    float *yb = xe + b * T * d + c;
    for (int t = 0; t < T; t++) {
        const float x = xb[(size_t)t * d];
        float acc = 0.f;
#pragma unroll
        for (int j = 0; j < MEGA_EMA_H; j++) {
            h[j] = fmaf(-rate[j], h[j], fmaf(gain[j], x, h[j]));
            acc = fmaf(et[j], h[j], acc);
        }
        yb[(size_t)t * d] = acc;
    }
}

/* Block sums and maxima over AT_THREADS threads (red: AT_THREADS / 32 floats). */
__device__ float block_reduce(float x, float *red, bool is_max) {
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float y = __shfl_xor_sync(0xffffffffu, x, o);
        x = is_max ? fmaxf(x, y) : x + y;
    }
    __syncthreads(); /* red[] may still be read by the previous call */
    if (lane == 0) red[w] = x;
    __syncthreads();
    float r = red[0];
    for (int i = 1; i < AT_THREADS / 32; i++) r = is_max ? fmaxf(r, red[i]) : r + red[i];
    return r;
}

/* One query row t (blockIdx.x over B*T) of the chunked attention, times the reset gate:
 * M[t, j] = SiLU(G[t, j]) * sum_{s0 <= s <= t} softmax_s(q_t . k_s / sqrt(z)) v_s[j]. */
__global__ void __launch_bounds__(AT_THREADS)
chunk_attn(const float *__restrict__ q, const float *__restrict__ k, const float *__restrict__ val,
           const float *__restrict__ p, int np, int T, int z, int v, int chunk, float scale,
           float *__restrict__ m) {
    __shared__ float qs[AT_ZMAX];
    __shared__ float ps[AT_THREADS];
    __shared__ float red[AT_THREADS / 32];
    const size_t row = blockIdx.x;
    const int t = (int)(row % (size_t)T);
    const size_t base = row - (size_t)t;  /* the sequence's row 0 */
    const int s0 = t / chunk * chunk;
    for (int i = threadIdx.x; i < z; i += AT_THREADS) qs[i] = q[row * z + i];
    __syncthreads();
    /* pass 1: the largest score */
    float mx = -INFINITY;
    for (int s = s0 + (int)threadIdx.x; s <= t; s += AT_THREADS) {
        const float *ks = k + (base + s) * z;
        float a = 0.f;
        for (int i = 0; i < z; i++) a = fmaf(qs[i], ks[i], a);
        mx = fmaxf(mx, a * scale);
    }
    mx = block_reduce(mx, red, true);
    /* pass 2: a tile of AT_THREADS keys at a time, the weights in shared memory */
    float acc[AT_VMAX], sum = 0.f;
#pragma unroll
    for (int e = 0; e < AT_VMAX; e++) acc[e] = 0.f;
    for (int s1 = s0; s1 <= t; s1 += AT_THREADS) {
        const int s = s1 + (int)threadIdx.x;
        float w = 0.f;
        if (s <= t) {
            const float *ks = k + (base + s) * z;
            float a = 0.f;
            for (int i = 0; i < z; i++) a = fmaf(qs[i], ks[i], a);
            w = expf(a * scale - mx);
        }
        sum += w;
        __syncthreads(); /* the previous tile's weights are read */
        ps[threadIdx.x] = w;
        __syncthreads();
        const int n = t - s1 + 1 < AT_THREADS ? t - s1 + 1 : AT_THREADS;
        for (int kk = 0; kk < n; kk++) {
            const float pk = ps[kk];
            const float *vs = val + (base + s1 + kk) * v;
#pragma unroll
            for (int e = 0; e < AT_VMAX; e++) {
                const int j = (int)threadIdx.x + e * AT_THREADS;
                if (j < v) acc[e] = fmaf(pk, vs[j], acc[e]);
            }
        }
    }
    sum = block_reduce(sum, red, false);
#pragma unroll
    for (int e = 0; e < AT_VMAX; e++) {
        const int j = (int)threadIdx.x + e * AT_THREADS;
        if (j < v) m[row * v + j] = acc[e] / sum * silu_f(p[row * np + z + j]);
    }
}

/* Y = phi . SiLU(Hz + (Hm + b_h)) + (1 - phi) . X,  phi = sigmoid(F);  F = P[:, z+v : z+v+d],
 * Hz = P[:, z+v+d : np] (bias added). */
template <typename Tx>
__global__ void gate(const float *__restrict__ p, int np, int z, int v,
                     const float *__restrict__ hm, const float *__restrict__ bh,
                     const Tx *__restrict__ x, float *__restrict__ y, int d, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        const size_t row = i / (size_t)d;
        const int c = (int)(i % (size_t)d);
        const float *pr = p + row * np + z + v;
        const float h = silu_f(pr[d + c] + (hm[i] + bh[c]));
        const float phi = sigmoid_f(pr[c]);
        y[i] = phi * h + (1.0f - phi) * to_f32(x[i]);
    }
}

int n_proj(const shape_t *s) { return s->z + s->v + 2 * s->d; }

void destroy_state(mega_oracle_state *st) {
    if (!st) return;
    if (st->handle) cublasDestroy(st->handle);
    float *bufs[] = {st->d_wproj, st->d_wv, st->d_uh, st->d_w1, st->d_w2, st->d_xln, st->d_xe,
                     st->d_p,     st->d_q,  st->d_k,  st->d_val, st->d_o, st->d_hm, st->d_ln2,
                     st->d_f};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) cudaFree(bufs[i]);
    cudaFree(st->d_ws);
    free(st);
}

int setup_impl(const shape_t *s, const io_t *io, mega_oracle_state *st) {
    const size_t N = (size_t)s->B * s->T, d = (size_t)s->d, z = (size_t)s->z, v = (size_t)s->v;
    const size_t np = (size_t)n_proj(s);
    st->chunk = mega_chunk(s);
    if (alloc_f32(&st->d_wproj, d * np) || alloc_f32(&st->d_wv, d * v) ||
        alloc_f32(&st->d_uh, v * d) || alloc_f32(&st->d_w1, d * 2 * d) ||
        alloc_f32(&st->d_w2, 2 * d * d) || alloc_f32(&st->d_xln, N * d) ||
        alloc_f32(&st->d_xe, N * d) || alloc_f32(&st->d_p, N * np) ||
        alloc_f32(&st->d_q, N * z) || alloc_f32(&st->d_k, N * z) ||
        alloc_f32(&st->d_val, N * v) || alloc_f32(&st->d_o, N * v) ||
        alloc_f32(&st->d_hm, N * d) || alloc_f32(&st->d_ln2, N * d) ||
        alloc_f32(&st->d_f, N * 2 * d))
        return -1;
    CUDA_CHECK(cudaMalloc(&st->d_ws, CUBLAS_WS_BYTES));
    CUBLAS_CHECK(cublasCreate(&st->handle));
    CUBLAS_CHECK(cublasSetMathMode(st->handle, CUBLAS_PEDANTIC_MATH));
    /* the weights' fp32 copies, once, after the harness's fill (hence the syncs) */
    CUDA_CHECK(cudaDeviceSynchronize());
    if (to_f32_copy(s->dtype, io->in[MEGA_IN_WPROJ], st->d_wproj, d * np) ||
        to_f32_copy(s->dtype, io->in[MEGA_IN_WV], st->d_wv, d * v) ||
        to_f32_copy(s->dtype, io->in[MEGA_IN_UH], st->d_uh, v * d) ||
        to_f32_copy(s->dtype, io->in[MEGA_IN_W1], st->d_w1, d * 2 * d) ||
        to_f32_copy(s->dtype, io->in[MEGA_IN_W2], st->d_w2, 2 * d * d))
        return -1;
    CUDA_CHECK(cudaDeviceSynchronize());
    return 0;
}

template <typename Tx> int run_typed(const mega_oracle_state *st, const io_t *io, cudaStream_t stream) {
    const shape_t *s = io->shape;
    const int B = s->B, T = s->T, d = s->d, z = s->z, v = s->v, np = n_proj(s);
    const size_t N = (size_t)B * T;
    const float *const *in = (const float *const *)io->in;
    const Tx *x = (const Tx *)io->in[MEGA_IN_X];
    float *out = (float *)io->out;
    cublasHandle_t h = st->handle;
    CUBLAS_CHECK(cublasSetStream(h, stream));
    CUBLAS_CHECK(cublasSetWorkspace(h, st->d_ws, CUBLAS_WS_BYTES));

    /* 1. X~ */
    ln_rows<Tx><<<row_blocks(N), ROW_WARPS * 32, 0, stream>>>(x, in[MEGA_IN_LN1_G],
                                                               in[MEGA_IN_LN1_B], st->d_xln, N, d);
    CUDA_CHECK(cudaGetLastError());
    /* 2. X' = EMA(X~) */
    const long long lanes = (long long)B * d;
    ema_scan<<<(unsigned)((lanes + EMA_THREADS - 1) / EMA_THREADS), EMA_THREADS, 0, stream>>>(
        st->d_xln, in[MEGA_IN_ALPHA], in[MEGA_IN_DELTA], in[MEGA_IN_BETA], in[MEGA_IN_ETA],
        st->d_xe, B, T, d);
    CUDA_CHECK(cudaGetLastError());
    /* 3. P = X' . W_proj + b_proj */
    if (gemm_rows(h, st->d_xe, N, d, st->d_wproj, np, 0.0f, st->d_p)) return -1;
    bias_act<<<ew_blocks(N * np), EW_THREADS, 0, stream>>>(st->d_p, N * np, np,
                                                          in[MEGA_IN_BPROJ], 0);
    CUDA_CHECK(cudaGetLastError());
    /* 4. Q, K */
    qk_from_p<<<ew_blocks(N * z), EW_THREADS, 0, stream>>>(
        st->d_p, np, in[MEGA_IN_KAPPA_Q], in[MEGA_IN_MU_Q], in[MEGA_IN_KAPPA_K], in[MEGA_IN_MU_K],
        st->d_q, st->d_k, z, N * z);
    CUDA_CHECK(cudaGetLastError());
    /* 5. V = SiLU(X~ . W_v + b_v) */
    if (gemm_rows(h, st->d_xln, N, d, st->d_wv, v, 0.0f, st->d_val)) return -1;
    bias_act<<<ew_blocks(N * v), EW_THREADS, 0, stream>>>(st->d_val, N * v, v, in[MEGA_IN_BV], 1);
    CUDA_CHECK(cudaGetLastError());
    /* 6. M = SiLU(G) . chunked attention */
    chunk_attn<<<(unsigned)N, AT_THREADS, 0, stream>>>(st->d_q, st->d_k, st->d_val, st->d_p, np,
                                                        T, z, v, st->chunk,
                                                        (float)(1.0 / sqrt((double)z)), st->d_o);
    CUDA_CHECK(cudaGetLastError());
    /* 7. Hm = M . U_h */
    if (gemm_rows(h, st->d_o, N, v, st->d_uh, d, 0.0f, st->d_hm)) return -1;
    /* 8. Y -> out */
    gate<Tx><<<ew_blocks(N * d), EW_THREADS, 0, stream>>>(st->d_p, np, z, v, st->d_hm,
                                                          in[MEGA_IN_BH], x, out, d, N * d);
    CUDA_CHECK(cudaGetLastError());
    /* 9. L = LayerNorm2(Y) */
    ln_rows<float><<<row_blocks(N), ROW_WARPS * 32, 0, stream>>>(out, in[MEGA_IN_LN2_G],
                                                                  in[MEGA_IN_LN2_B], st->d_ln2, N, d);
    CUDA_CHECK(cudaGetLastError());
    /* 10. F = SiLU(L . W1) */
    if (gemm_rows(h, st->d_ln2, N, d, st->d_w1, 2 * d, 0.0f, st->d_f)) return -1;
    bias_act<<<ew_blocks(N * 2 * d), EW_THREADS, 0, stream>>>(st->d_f, N * 2 * d, 2 * d, NULL, 1);
    CUDA_CHECK(cudaGetLastError());
    /* 11. Y' = Y + F . W2 */
    if (gemm_rows(h, st->d_f, N, 2 * d, st->d_w2, d, 1.0f, out)) return -1;
    return 0;
}

} // namespace

extern "C" {

const char *mega_oracle_fp32_supports(const shape_t *s) {
    if (s->B <= 0 || s->T <= 0 || s->d <= 0 || s->z <= 0 || s->v <= 0) return "empty shape";
    if (s->pass != PASS_FWD) return "no backward yet";
    if (s->z > AT_ZMAX) return "z must be <= 1024 (q staged in shared memory)";
    if (s->v > AT_VMAX * AT_THREADS) return "v must be <= 4096 (16 output columns a thread)";
    if ((long long)s->B * s->T > INT_MAX) return "B*T must be < 2^31";
    if ((long long)s->z + s->v + 2LL * s->d > INT_MAX / 2) return "z + v + 2d too large";
    return NULL;
}

/* Activations N * (6d + np + 2z + 2v) + weights d * (np + 2v + 4d), fp32, + cuBLAS's. */
size_t mega_oracle_fp32_workspace_bytes(const shape_t *s) {
    const size_t N = (size_t)s->B * s->T, d = (size_t)s->d, z = (size_t)s->z, v = (size_t)s->v;
    const size_t np = z + v + 2 * d;
    return (N * (6 * d + np + 2 * z + 2 * v) + d * (np + 2 * v + 4 * d)) * sizeof(float) +
           CUBLAS_WS_BYTES;
}

int mega_oracle_fp32_setup(const shape_t *s, const io_t *io, void **state) {
    *state = NULL;
    const char *why = mega_oracle_fp32_supports(s);
    if (why) BENCH_FAIL("mega/oracle_fp32: %s", why);
    if (io->n_in < MEGA_N_IN) BENCH_FAIL("mega/oracle_fp32: %d inputs, need %d", io->n_in, MEGA_N_IN);
    mega_oracle_state *st = (mega_oracle_state *)calloc(1, sizeof *st);
    if (!st) BENCH_FAIL("mega/oracle_fp32: out of host memory");
    if (setup_impl(s, io, st) != 0) {
        destroy_state(st);
        (void)cudaGetLastError();
        return -1;
    }
    *state = st;
    return 0;
}

int mega_oracle_fp32_run(void *state, const io_t *io, cudaStream_t stream) {
    const mega_oracle_state *st = (const mega_oracle_state *)state;
    if (!st) BENCH_FAIL("mega/oracle_fp32: run without setup");
    switch (io->shape->dtype) {
    case DTYPE_F32: return run_typed<float>(st, io, stream);
    case DTYPE_F16: return run_typed<__half>(st, io, stream);
    case DTYPE_BF16: return run_typed<__nv_bfloat16>(st, io, stream);
    }
    BENCH_FAIL("mega/oracle_fp32: unknown dtype %d", (int)io->shape->dtype);
}

void mega_oracle_fp32_teardown(void *state) { destroy_state((mega_oracle_state *)state); }

/* "fp32 gemm=32f_pedantic ema=scan attn=per-query chunk=1024". */
void mega_oracle_fp32_config(const void *state, char *buf, size_t len) {
    const mega_oracle_state *st = (const mega_oracle_state *)state;
    if (!len) return;
    buf[0] = 0;
    if (st) snprintf(buf, len, "fp32 gemm=32f_pedantic ema=scan attn=per-query chunk=%d", st->chunk);
}

} // extern "C"
