/* oracle_mega_bwd_seq.cu: the sequence stages of mega/oracle_fp32's backward (oracle_mega.h):
 * the chunked softmax attention's and the EMA's, fp32, no float atomics (every sum has one
 * owner and a fixed order, so run_bwd gives the same bits every call).
 *
 * Attention (ref_grad_mega.c chunk_attn_bwd), per chunk [s0, s0 + L) and query t in it, keys
 * u in [s0, t], S_tu = q_t . k_u / sqrt(z), P_tu = exp(S_tu - mx_t) / sum_t with the forward's
 * maximum and sum (kept in st->d_stat):
 *   dP_tu = dO_t . v_u;  D_t = sum_u P_tu dP_tu = dO_t . O_t (the same sum: O_t = sum_u P_tu
 *   v_u; O is kept, so D_t costs one dot, not a pass over the keys);
 *   dS_tu = P_tu (dP_tu - D_t) / sqrt(z);  dQ_t = sum_u dS_tu k_u;
 *   dK_u = sum_{t >= u} dS_tu q_t;  dV_u = sum_{t >= u} P_tu dO_t   (t in u's chunk).
 * Two kernels, a block a row as the forward's chunk_attn: attn_bwd_q owns query t (D_t, dQ_t),
 * attn_bwd_kv owns key u (dK_u, dV_u) and walks the queries of its chunk from u on.  Each
 * (t, u) pair's score and dP are warp dot products (lanes strided over z or v, then
 * warp_sum), computed the same way in both kernels, so both see the same P.  Nothing crosses a
 * chunk.  Cost at T = 64k, c = 1024, z = 128, v = 2048: 3.4e7 (t, u) pairs, each z + 2v FMAs in
 * the query pass and 2z + 3v in the key pass: ~3e11 FMAs, 4x the forward's attention.
 *
 * EMA (ref_grad_mega.c: ref_long_conv_bwd then ema_params_bwd).  X' = k * X~ per channel,
 * k[m] = sum_j w_j r_j^m, w = eta a beta, r = 1 - a g.  Both of the reference's sums are
 * done by recurrences over t instead of O(T^2) correlations; the same sums reordered:
 *   dX~[s] = sum_{t >= s} k[t - s] dX'[t] = sum_j a_j beta_j U_j[s],
 *            U_j[s] = eta_j dX'[s] + r_j U_j[s + 1]            (the EMA in reversed time);
 *   S0_j = sum_m dK[m] r^m         = sum_b sum_t dX'[t] H_j[t],  H_j[t] = r H_j[t-1] + X~[t];
 *   S1_j = sum_m dK[m] m r^(m - 1) = sum_b sum_t dX'[t] D_j[t],  D_j[t] = r D_j[t-1] + H_j[t-1]
 *   (dK[m] = sum_b sum_t X~[t - m] dX'[t], the kernel's gradient; H is the state of the unit
 *   gain EMA, D = dH/dr); then the chain through the sigmoids as ema_params_bwd.  Each
 *   recurrence steps as the forward's scan does, u + x - (a g) u, so that a slow dim's small
 *   a g keeps its precision.  A thread per (b, c) walks t (B d threads, h = 16 states in
 *   registers, as the forward's ema_scan); per-sequence sums S0, S1 go to st->g_ema and a
 *   second kernel adds them over b in order.  Cost: ~4 B T d h FMAs, a few ms at T = 64k. */
#include <cuda_runtime.h>
#include <math.h>
#include <stddef.h>

#include "bench_check.h"
#include "common/math.cuh" /* warp_sum */
#include "op_inputs.h"
#include "oracle_common.cuh" /* sigmoid_f */
#include "oracle_mega.h"

namespace mega_oracle {

namespace {

/* Sum over the block's AT_THREADS threads, the same value in every thread (red: AT_WARPS
 * floats); the warps' sums added in warp order. */
__device__ float block_sum(float x, float *red) {
    x = warp_sum(x);
    __syncthreads(); /* red[] may still be read by an earlier call */
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = x;
    __syncthreads();
    float r = red[0];
    for (int i = 1; i < AT_WARPS; i++) r += red[i];
    return r;
}

/* a . b over n floats by one warp: lane-strided partial sums, then warp_sum (all lanes). */
__device__ __forceinline__ float warp_dot(const float *a, const float *b, int n) {
    float acc = 0.f;
    for (int i = (int)(threadIdx.x & 31); i < n; i += 32) acc = fmaf(a[i], b[i], acc);
    return warp_sum(acc);
}

/* Query row t = blockIdx.x (over B*T): D_t = dO_t . O_t (to delta[t]) and
 * dQ_t = sum_{u in [s0, t]} dS_tu k_u, the keys in tiles of AT_THREADS: the tile's dS by a
 * warp a key into shared memory, then one thread a column of dQ. */
__global__ void __launch_bounds__(AT_THREADS)
attn_bwd_q(const float *__restrict__ q, const float *__restrict__ k,
           const float *__restrict__ val, const float *__restrict__ o,
           const float *__restrict__ stat, const float *__restrict__ dout, int T, int z, int v,
           int chunk, float scale, float *__restrict__ delta, float *__restrict__ dq) {
    __shared__ float qs[AT_ZMAX];
    __shared__ float dos[AT_VMAX * AT_THREADS];
    __shared__ float ds[AT_THREADS];
    __shared__ float red[AT_WARPS];
    const size_t row = blockIdx.x;
    const int t = (int)(row % (size_t)T);
    const size_t base = row - (size_t)t; /* the sequence's row 0 */
    const int s0 = t / chunk * chunk;
    const int warp = (int)(threadIdx.x >> 5), lane = (int)(threadIdx.x & 31);
    for (int i = threadIdx.x; i < z; i += AT_THREADS) qs[i] = q[row * z + i];
    float dd = 0.f;
    for (int j = threadIdx.x; j < v; j += AT_THREADS) {
        const float g = dout[row * v + j];
        dos[j] = g;
        dd = fmaf(g, o[row * v + j], dd);
    }
    const float D = block_sum(dd, red); /* its barriers also publish qs and dos */
    if (threadIdx.x == 0) delta[row] = D;
    const float mx = stat[2 * row], sum = stat[2 * row + 1];
    float acc[AT_ZPER];
#pragma unroll
    for (int e = 0; e < AT_ZPER; e++) acc[e] = 0.f;
    for (int s1 = s0; s1 <= t; s1 += AT_THREADS) {
        const int n = t - s1 + 1 < AT_THREADS ? t - s1 + 1 : AT_THREADS;
        for (int kk = warp; kk < n; kk += AT_WARPS) {
            const size_t ku = base + (size_t)(s1 + kk);
            const float a = warp_dot(qs, k + ku * z, z);
            const float dp = warp_dot(dos, val + ku * v, v);
            const float p = expf(a * scale - mx) / sum;
            if (lane == 0) ds[kk] = p * (dp - D) * scale;
        }
        __syncthreads();
        for (int kk = 0; kk < n; kk++) {
            const float g = ds[kk];
            const float *kr = k + (base + (size_t)(s1 + kk)) * z;
#pragma unroll
            for (int e = 0; e < AT_ZPER; e++) {
                const int i = (int)threadIdx.x + e * AT_THREADS;
                if (i < z) acc[e] = fmaf(g, kr[i], acc[e]);
            }
        }
        __syncthreads(); /* ds is rewritten by the next tile */
    }
#pragma unroll
    for (int e = 0; e < AT_ZPER; e++) {
        const int i = (int)threadIdx.x + e * AT_THREADS;
        if (i < z) dq[row * z + i] = acc[e];
    }
}

/* Key row u = blockIdx.x: dK_u = sum_t dS_tu q_t and dV_u = sum_t P_tu dO_t over the queries
 * t in [u, end of u's chunk], in tiles of AT_THREADS: P and dS by a warp a query into shared
 * memory, then one thread a column of dK and of dV (AT_VMAX columns of V a thread). */
__global__ void __launch_bounds__(AT_THREADS)
attn_bwd_kv(const float *__restrict__ q, const float *__restrict__ k,
            const float *__restrict__ val, const float *__restrict__ stat,
            const float *__restrict__ delta, const float *__restrict__ dout, int T, int z, int v,
            int chunk, float scale, float *__restrict__ dk, float *__restrict__ dv) {
    __shared__ float ks[AT_ZMAX];
    __shared__ float vs[AT_VMAX * AT_THREADS];
    __shared__ float ps[AT_THREADS];
    __shared__ float ds[AT_THREADS];
    const size_t row = blockIdx.x;
    const int u = (int)(row % (size_t)T);
    const size_t base = row - (size_t)u;
    const int s0 = u / chunk * chunk;
    const int last = (s0 + chunk < T ? s0 + chunk : T) - 1; /* the chunk's last query */
    const int warp = (int)(threadIdx.x >> 5), lane = (int)(threadIdx.x & 31);
    for (int i = threadIdx.x; i < z; i += AT_THREADS) ks[i] = k[row * z + i];
    for (int j = threadIdx.x; j < v; j += AT_THREADS) vs[j] = val[row * v + j];
    __syncthreads();
    float ak[AT_ZPER], av[AT_VMAX];
#pragma unroll
    for (int e = 0; e < AT_ZPER; e++) ak[e] = 0.f;
#pragma unroll
    for (int e = 0; e < AT_VMAX; e++) av[e] = 0.f;
    for (int t1 = u; t1 <= last; t1 += AT_THREADS) {
        const int n = last - t1 + 1 < AT_THREADS ? last - t1 + 1 : AT_THREADS;
        for (int kk = warp; kk < n; kk += AT_WARPS) {
            const size_t qt = base + (size_t)(t1 + kk);
            /* the same operands in the same order as attn_bwd_q: the same P */
            const float a = warp_dot(q + qt * z, ks, z);
            const float dp = warp_dot(dout + qt * v, vs, v);
            const float p = expf(a * scale - stat[2 * qt]) / stat[2 * qt + 1];
            if (lane == 0) {
                ps[kk] = p;
                ds[kk] = p * (dp - delta[qt]) * scale;
            }
        }
        __syncthreads();
        for (int kk = 0; kk < n; kk++) {
            const size_t qt = base + (size_t)(t1 + kk);
            const float p = ps[kk], g = ds[kk];
#pragma unroll
            for (int e = 0; e < AT_ZPER; e++) {
                const int i = (int)threadIdx.x + e * AT_THREADS;
                if (i < z) ak[e] = fmaf(g, q[qt * z + i], ak[e]);
            }
#pragma unroll
            for (int e = 0; e < AT_VMAX; e++) {
                const int j = (int)threadIdx.x + e * AT_THREADS;
                if (j < v) av[e] = fmaf(p, dout[qt * v + j], av[e]);
            }
        }
        __syncthreads(); /* ps, ds are rewritten by the next tile */
    }
#pragma unroll
    for (int e = 0; e < AT_ZPER; e++) {
        const int i = (int)threadIdx.x + e * AT_THREADS;
        if (i < z) dk[row * z + i] = ak[e];
    }
#pragma unroll
    for (int e = 0; e < AT_VMAX; e++) {
        const int j = (int)threadIdx.x + e * AT_THREADS;
        if (j < v) dv[row * v + j] = av[e];
    }
}

/* dX~[b,s,c] += sum_j a_j beta_j U_j[s],  U_j[s] = eta_j dX'[b,s,c] + r_j U_j[s+1]: a thread
 * per (b, c) walking s down from T - 1. */
__global__ void __launch_bounds__(EMA_THREADS)
ema_bwd_x(const float *__restrict__ dxe, const float *__restrict__ alpha,
          const float *__restrict__ delta, const float *__restrict__ beta,
          const float *__restrict__ eta, float *__restrict__ dxln, int B, int T, int d) {
    const long long i = (long long)blockIdx.x * EMA_THREADS + threadIdx.x;
    if (i >= (long long)B * d) return;
    const int c = (int)(i % d);
    const size_t b = (size_t)(i / d);
    float gain[MEGA_EMA_H], rate[MEGA_EMA_H], et[MEGA_EMA_H], st[MEGA_EMA_H];
    ema_coeffs(alpha, delta, beta, eta, c, gain, rate, et); /* the forward's (oracle_mega.h) */
#pragma unroll
    for (int j = 0; j < MEGA_EMA_H; j++) st[j] = 0.f;
    const float *gb = dxe + b * T * d + c;
    float *xb = dxln + b * T * d + c;
    for (int s = T - 1; s >= 0; s--) {
        const float g = gb[(size_t)s * d];
        float acc = 0.f;
#pragma unroll
        for (int j = 0; j < MEGA_EMA_H; j++) {
            st[j] = fmaf(-rate[j], st[j], fmaf(et[j], g, st[j]));
            acc = fmaf(gain[j], st[j], acc);
        }
        xb[(size_t)s * d] += acc;
    }
}

/* Per sequence b and channel c: S0_j = sum_t dX'[t] H_j[t], S1_j = sum_t dX'[t] D_j[t]
 * (header) into part[((b d + c) h + j) 2 + {0, 1}]. */
__global__ void __launch_bounds__(EMA_THREADS)
ema_bwd_sums(const float *__restrict__ xln, const float *__restrict__ dxe,
             const float *__restrict__ alpha, const float *__restrict__ delta,
             float *__restrict__ part, int B, int T, int d) {
    const long long i = (long long)blockIdx.x * EMA_THREADS + threadIdx.x;
    if (i >= (long long)B * d) return;
    const int c = (int)(i % d);
    const size_t b = (size_t)(i / d);
    float rate[MEGA_EMA_H], h[MEGA_EMA_H], dh[MEGA_EMA_H], s0[MEGA_EMA_H], s1[MEGA_EMA_H];
#pragma unroll
    for (int j = 0; j < MEGA_EMA_H; j++) {
        const size_t pi = (size_t)c * MEGA_EMA_H + j;
        rate[j] = sigmoid_f(alpha[pi]) * sigmoid_f(delta[pi]);
        h[j] = dh[j] = s0[j] = s1[j] = 0.f;
    }
    const float *xb = xln + b * T * d + c, *gb = dxe + b * T * d + c;
    for (int t = 0; t < T; t++) {
        const float x = xb[(size_t)t * d], g = gb[(size_t)t * d];
#pragma unroll
        for (int j = 0; j < MEGA_EMA_H; j++) {
            dh[j] = fmaf(-rate[j], dh[j], dh[j] + h[j]); /* D[t] from D[t-1], H[t-1] */
            h[j] = fmaf(-rate[j], h[j], h[j] + x);
            s0[j] = fmaf(g, h[j], s0[j]);
            s1[j] = fmaf(g, dh[j], s1[j]);
        }
    }
    float *pr = part + (size_t)i * MEGA_EMA_H * 2;
#pragma unroll
    for (int j = 0; j < MEGA_EMA_H; j++) {
        pr[2 * j] = s0[j];
        pr[2 * j + 1] = s1[j];
    }
}

/* Per (c, j): S0, S1 summed over b in order, then (ref_grad_mega.c ema_params_bwd)
 *   d eta = a beta S0,  d beta = eta a S0,
 *   d alpha = (eta beta S0 - g w S1) a (1 - a),  d delta = -a w S1 g (1 - g),  w = eta a beta. */
__global__ void ema_bwd_params(const float *__restrict__ part, const float *__restrict__ alpha,
                               const float *__restrict__ delta, const float *__restrict__ beta,
                               const float *__restrict__ eta, float *__restrict__ dalpha,
                               float *__restrict__ ddelta, float *__restrict__ dbeta,
                               float *__restrict__ deta, int B, int d) {
    const int pi = blockIdx.x * blockDim.x + threadIdx.x;
    const int n = d * MEGA_EMA_H;
    if (pi >= n) return;
    float s0 = 0.f, s1 = 0.f;
    for (int b = 0; b < B; b++) {
        s0 += part[((size_t)b * n + pi) * 2];
        s1 += part[((size_t)b * n + pi) * 2 + 1];
    }
    const float a = sigmoid_f(alpha[pi]), g = sigmoid_f(delta[pi]);
    const float et = eta[pi], be = beta[pi], w = et * a * be;
    deta[pi] = a * be * s0;
    dbeta[pi] = et * a * s0;
    dalpha[pi] = (et * be * s0 - g * w * s1) * a * (1.0f - a);
    ddelta[pi] = -a * w * s1 * g * (1.0f - g);
}

} // namespace

int attn_bwd(const oracle_state *st, const shape_t *s, const float *d_o, float *dq, float *dk,
             float *dv, cudaStream_t stream) {
    const size_t N = (size_t)s->B * s->T;
    const float scale = (float)(1.0 / sqrt((double)s->z)); /* the forward's */
    attn_bwd_q<<<(unsigned)N, AT_THREADS, 0, stream>>>(st->d_q, st->d_k, st->d_val, st->d_o,
                                                       st->d_stat, d_o, s->T, s->z, s->v,
                                                       st->chunk, scale, st->g_delta, dq);
    CUDA_CHECK(cudaGetLastError());
    attn_bwd_kv<<<(unsigned)N, AT_THREADS, 0, stream>>>(st->d_q, st->d_k, st->d_val, st->d_stat,
                                                        st->g_delta, d_o, s->T, s->z, s->v,
                                                        st->chunk, scale, dk, dv);
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

int ema_bwd(const oracle_state *st, const shape_t *s, const float *const *in, const float *dxe,
            float *dxln, float *const *grad, cudaStream_t stream) {
    const long long lanes = (long long)s->B * s->d;
    const unsigned blocks = (unsigned)((lanes + EMA_THREADS - 1) / EMA_THREADS);
    ema_bwd_x<<<blocks, EMA_THREADS, 0, stream>>>(dxe, in[MEGA_IN_ALPHA], in[MEGA_IN_DELTA],
                                                  in[MEGA_IN_BETA], in[MEGA_IN_ETA], dxln, s->B,
                                                  s->T, s->d);
    CUDA_CHECK(cudaGetLastError());
    ema_bwd_sums<<<blocks, EMA_THREADS, 0, stream>>>(st->d_xln, dxe, in[MEGA_IN_ALPHA],
                                                     in[MEGA_IN_DELTA], st->g_ema, s->B, s->T,
                                                     s->d);
    CUDA_CHECK(cudaGetLastError());
    const int n = s->d * MEGA_EMA_H;
    ema_bwd_params<<<(unsigned)((n + 255) / 256), 256, 0, stream>>>(
        st->g_ema, in[MEGA_IN_ALPHA], in[MEGA_IN_DELTA], in[MEGA_IN_BETA], in[MEGA_IN_ETA],
        grad[MEGA_IN_ALPHA], grad[MEGA_IN_DELTA], grad[MEGA_IN_BETA], grad[MEGA_IN_ETA], s->B,
        s->d);
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

} // namespace mega_oracle
