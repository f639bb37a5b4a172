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
 * Training (setup saw pass != PASS_FWD; the backward is oracle_mega_bwd.cu): run() keeps what
 * the stages above overwrite in place and the backward needs, at no change to any value it
 * computes: V's pre-activation X~ . W_v + b_v (stage 5 writes it, then SiLU of it into V), the
 * attention's O and each query's softmax maximum and sum (stage 6 writes M beside O), Y
 * (stage 8 writes it to a buffer of its own; the output gets a copy before stage 11 adds
 * F . W2) and the FFN's pre-activation L . W1 (stage 10).  The rest the backward reads as the
 * forward left it or recomputes by the forward's own operations.  Memory: train_floats
 * (oracle_mega.h).
 *
 * ---- version index ---------------------------------------------------------------------------
 * v1 (the only version; the training path above added later, every value it computes
 *   unchanged).  Not yet run on a GPU when written (no device on the machine it was
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
#include "oracle_common.cuh" /* silu_f, ln_rows, bias_act, silu_copy, gate, qk_from_p, gemm_rows */
#include "op_inputs.h"
#include "oracle_mega.h"
#include "variant.h"

extern "C" {
DECLARE_VARIANT(mega_oracle_fp32);
}

using namespace mega_oracle;

namespace {

typedef oracle_state mega_oracle_state;

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
    ema_coeffs(alpha, delta, beta, eta, c, gain, rate, et);
#pragma unroll
    for (int j = 0; j < MEGA_EMA_H; j++) h[j] = 0.f;
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
 * M[t, j] = SiLU(G[t, j]) * sum_{s0 <= s <= t} softmax_s(q_t . k_s / sqrt(z)) v_s[j].
 * Training (o_raw, stat not NULL): O = M / SiLU(G) into o_raw, the row's score maximum and
 * exp-sum into stat[2 row], stat[2 row + 1]; M's value is the same either way. */
__global__ void __launch_bounds__(AT_THREADS)
chunk_attn(const float *__restrict__ q, const float *__restrict__ k, const float *__restrict__ val,
           const float *__restrict__ p, int np, int T, int z, int v, int chunk, float scale,
           float *__restrict__ m, float *__restrict__ o_raw, float *__restrict__ stat) {
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
    if (stat && threadIdx.x == 0) {
        stat[2 * row] = mx;
        stat[2 * row + 1] = sum;
    }
#pragma unroll
    for (int e = 0; e < AT_VMAX; e++) {
        const int j = (int)threadIdx.x + e * AT_THREADS;
        if (j < v) {
            const float o = acc[e] / sum;
            if (o_raw) o_raw[row * v + j] = o;
            m[row * v + j] = o * silu_f(p[row * np + z + j]);
        }
    }
}

void destroy_state(mega_oracle_state *st) {
    if (!st) return;
    if (st->handle) cublasDestroy(st->handle);
    float *bufs[] = {st->d_wproj, st->d_wv, st->d_uh, st->d_w1, st->d_w2, st->d_xln, st->d_xe,
                     st->d_p,     st->d_q,  st->d_k,  st->d_val, st->d_o, st->d_hm, st->d_ln2,
                     st->d_f,     st->d_vpre, st->d_m, st->d_stat, st->d_y, st->d_fpre, st->g_dy,
                     st->g_df,    st->g_dd, st->g_dproj, st->g_dm, st->g_dv, st->g_dq, st->g_dk,
                     st->g_delta, st->g_mean, st->g_rstd, st->g_cs, st->g_ema};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) cudaFree(bufs[i]);
    cudaFree(st->d_ws);
    free(st);
}

/* What the backward reads besides the forward's activations, and its scratch (oracle_mega.h;
 * train_floats counts the same). */
int alloc_train(const shape_t *s, mega_oracle_state *st) {
    const size_t N = (size_t)s->B * s->T, d = (size_t)s->d, z = (size_t)s->z, v = (size_t)s->v;
    const size_t np = (size_t)n_proj(s);
    st->train = 1;
    if (alloc_f32(&st->d_vpre, N * v) || alloc_f32(&st->d_m, N * v) ||
        alloc_f32(&st->d_stat, 2 * N) || alloc_f32(&st->d_y, N * d) ||
        alloc_f32(&st->d_fpre, N * 2 * d) || alloc_f32(&st->g_dy, N * d) ||
        alloc_f32(&st->g_df, N * 2 * d) || alloc_f32(&st->g_dd, N * d) ||
        alloc_f32(&st->g_dproj, N * np) || alloc_f32(&st->g_dm, N * v) ||
        alloc_f32(&st->g_dv, N * v) || alloc_f32(&st->g_dq, N * z) ||
        alloc_f32(&st->g_dk, N * z) || alloc_f32(&st->g_delta, N) ||
        alloc_f32(&st->g_mean, N) || alloc_f32(&st->g_rstd, N) ||
        alloc_f32(&st->g_cs, COLSUM_CHUNKS * np) ||
        alloc_f32(&st->g_ema, (size_t)s->B * d * MEGA_EMA_H * 2))
        return -1;
    return 0;
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
    if (s->pass != PASS_FWD && alloc_train(s, st)) return -1;
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
    /* 5. V = SiLU(X~ . W_v + b_v); training keeps the pre-activation */
    float *vpre = st->train ? st->d_vpre : st->d_val;
    if (gemm_rows(h, st->d_xln, N, d, st->d_wv, v, 0.0f, vpre)) return -1;
    bias_act<<<ew_blocks(N * v), EW_THREADS, 0, stream>>>(vpre, N * v, v, in[MEGA_IN_BV],
                                                         st->train ? 0 : 1);
    CUDA_CHECK(cudaGetLastError());
    if (st->train) {
        silu_copy<<<ew_blocks(N * v), EW_THREADS, 0, stream>>>(vpre, st->d_val, N * v);
        CUDA_CHECK(cudaGetLastError());
    }
    /* 6. M = SiLU(G) . chunked attention; training keeps O (d_o) and the softmax statistics */
    float *m = st->train ? st->d_m : st->d_o;
    chunk_attn<<<(unsigned)N, AT_THREADS, 0, stream>>>(
        st->d_q, st->d_k, st->d_val, st->d_p, np, T, z, v, st->chunk,
        (float)(1.0 / sqrt((double)z)), m, st->train ? st->d_o : NULL,
        st->train ? st->d_stat : NULL);
    CUDA_CHECK(cudaGetLastError());
    /* 7. Hm = M . U_h */
    if (gemm_rows(h, m, N, v, st->d_uh, d, 0.0f, st->d_hm)) return -1;
    /* 8-11. Y (-> out, or to d_y when training), L = LayerNorm2(Y), F = SiLU(L . W1) (training
     * keeps the pre-activation), Y' = Y + F . W2 -> out (oracle_common.cuh gate_ffn_fwd) */
    return gate_ffn_fwd<Tx>(st, np, z, v, in[MEGA_IN_BH], x, in[MEGA_IN_LN2_G], in[MEGA_IN_LN2_B],
                            out, N, d, stream);
}

} // namespace

extern "C" {

const char *mega_oracle_fp32_supports(const shape_t *s) {
    if (s->B <= 0 || s->T <= 0 || s->d <= 0 || s->z <= 0 || s->v <= 0) return "empty shape";
    if (s->z > AT_ZMAX) return "z must be <= 1024 (q staged in shared memory)";
    if (s->v > AT_VMAX * AT_THREADS) return "v must be <= 4096 (16 output columns a thread)";
    if ((long long)s->B * s->T > INT_MAX) return "B*T must be < 2^31";
    if ((long long)s->z + s->v + 2LL * s->d > INT_MAX / 2) return "z + v + 2d too large";
    return NULL;
}

/* Activations N * (6d + np + 2z + 2v) + weights d * (np + 2v + 4d), fp32, + cuBLAS's; for
 * pass != fwd also what the backward keeps and its scratch (oracle_mega.h, train_floats). */
size_t mega_oracle_fp32_workspace_bytes(const shape_t *s) {
    const size_t N = (size_t)s->B * s->T, d = (size_t)s->d, z = (size_t)s->z, v = (size_t)s->v;
    const size_t np = z + v + 2 * d;
    const size_t train = s->pass != PASS_FWD ? train_floats(s) : 0;
    return (N * (6 * d + np + 2 * z + 2 * v) + d * (np + 2 * v + 4 * d) + train) * sizeof(float) +
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

/* "fp32 gemm=32f_pedantic ema=scan attn=per-query chunk=1024"; when training " bwd=scan+rows"
 * (the EMA's backward by scans, the attention's by query rows then key rows). */
void mega_oracle_fp32_config(const void *state, char *buf, size_t len) {
    const mega_oracle_state *st = (const mega_oracle_state *)state;
    if (!len) return;
    buf[0] = 0;
    if (st)
        snprintf(buf, len, "fp32 gemm=32f_pedantic ema=scan attn=per-query chunk=%d%s", st->chunk,
                 st->train ? " bwd=scan+rows" : "");
}

} // extern "C"
