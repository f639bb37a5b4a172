/* oracle_chela.cu: chela/oracle_fp32, the whole CHELA layer (chela-spec.md) in plain fp32 on
 * the GPU: the yardstick the optimised chela variants are checked against over the whole
 * sequence, itself checked against the CPU reference (ref_chela.c) on the first rows.
 *
 *   inputs CHELA_IN_* (reference.h; x and the GEMM weights in the run dtype, the rest fp32)
 *   ->  y' [B,T,d] fp32, whatever the run dtype
 *
 * It follows ref_chela.c stage by stage, with no algorithmic shortcut: no FFT, no chunked
 * attention, no reparameterised kernel, no tensor cores, nothing from kernels/ but the warp
 * sum of kernels/common/math.cuh.  Every intermediate is an fp32 [B*T, width] row-major
 * buffer (token-major, feature innermost), so a stage can be read against the reference line
 * by line:
 *   1. ln_rows<Tx>         X~ = LayerNorm1(X)            one warp per row, two-pass variance
 *   2. short_conv_silu     U  = SiLU(k3 * X~)            3 causal taps per channel
 *   3. long_conv_branches  Zc = K_long * U + k3b * U + km * U   (branches form, direct sum)
 *   4. GEMM + bias         P  = Zc . W_proj + b_proj     columns [Zq | Ga | Go | Hz]
 *   5. qk_from_p           Q  = kq . SiLU(Zq) + mq,  K = kk . SiLU(Zq) + mk
 *   6. GEMM + bias + SiLU  V  = SiLU(X~ . W_v + b_v)
 *   7. la_scan             O  = causal linear attention, o_t = (q_t/sqrt(z)) . sum_{s<=t} k_s^T v_s
 *   8. rms_gate            M  = RMSNorm(O) . sigmoid(Ga)         (in place over O, unless training)
 *   9. GEMM                Hm = M . U_h
 *  10. gate<Tx>            Y  = sg . SiLU(Hz + Hm + b_h) + (1 - sg) . X,  sg = sigmoid(Go)
 *  11. ln_rows<float>      L  = LayerNorm2(Y)       (Y is written to the output, or kept)
 *  12. GEMM + SiLU         F  = SiLU(L . W1)
 *  13. GEMM, beta = 1      Y' = Y + F . W2                       (accumulated into the output)
 * GEMMs are cublasGemmEx with fp32 operands, CUBLAS_COMPUTE_32F_PEDANTIC and the handle in
 * CUBLAS_PEDANTIC_MATH, so neither TF32 nor any reduced-precision emulation is allowed in.
 * The weights are converted to fp32 once in setup (they are parameters); x is read in its
 * storage type by stages 1 and 10, exactly the values the CPU reference sees.
 *
 * Training (setup saw pass != PASS_FWD; the backward is oracle_chela_bwd.cu): run() keeps what
 * the stages above overwrite in place and the backward needs, at no change to any value it
 * computes: V's pre-activation X~ . W_v + b_v (stage 6 writes it, then SiLU of it into V), the
 * attention's raw output O (stage 8 writes M beside it), Y (stage 10 writes it to a buffer of
 * its own; the output gets a copy before stage 13 adds F . W2) and the FFN's pre-activation
 * L . W1 (stage 12).  The rest the backward reads as the forward left it (X~, U, Zc, P, Q, K,
 * V, Hm, L, F) or recomputes from it by the forward's own operations (the norms' statistics,
 * the short conv's pre-activation, H^'s).  Cost: one more write and read of N (2v + 3d)
 * floats, ~4 GB of traffic, ~2 ms at the default point; memory: those buffers and the
 * backward's scratch, train_floats (oracle_chela.h), 7.4 GB at the default point.
 *
 * ---- version index ---------------------------------------------------------------------------
 *
 * v1 (the only version).
 *   Long conv (stage 3): the direct causal sum, O(T^2) per channel: 2.2e12 FMAs at T = 64k,
 *   d = 1024, B = 1.  A block owns 32 channels (one per lane) x 128 outputs (8 warps x 16
 *   consecutive outputs a thread) and walks the inputs s <= its last output in chunks of 64:
 *   u[s] (64 x 32) and the kernel taps it needs (192 x 32, rows padded to 33 floats so the
 *   column-wise fill from k_long [d,T] is conflict-free) are staged in shared memory; a thread
 *   keeps a 16-tap sliding window of k in registers, so each input costs 2 shared loads for
 *   16 FMAs.  Taps with j < 0 are stored as zeros, which is the causal mask.  Each chunk sums
 *   into its own accumulators before being added to the output's, so no output is one 64k-long
 *   fp32 chain.  The short branches (3 and k_m taps) are added in the epilogue, in the
 *   reference's order z_long + z_3 + z_m.  Tiles are launched heaviest (latest t) first.
 *   Attention (stage 7): the plain sequential scan.  G = 1, 2, 4 or 8 threads per value
 *   column j (the smallest G with 32 G >= z), each owning 32 rows of the column S[:, j] of the
 *   z x v state in registers; q_t (pre-scaled by 1/sqrt(z)), k_t and v_t[j] are staged 16
 *   steps at a time in shared memory; o_t[j] is a shuffle sum over the G threads.  Rows are
 *   dealt to the G threads in interleaved float4 groups so the broadcast loads of q_t, k_t are
 *   conflict-free.  Why two states: a plain fp32 running sum over 64k steps was off by 4.5e-4
 *   (max |err| / row rms of O, simulated in C with this layer's value ranges), 10x the fp32
 *   tolerance, because every step rounds a state that has grown ~t times larger than the
 *   step.  So the state is S_glob + S_loc: S_loc takes the steps, and every 256 steps it is
 *   folded into S_glob; o_t = q_t . (S_glob + S_loc).  That brought the same simulation to
 *   3.0e-5, which is the floor of any implementation that stores S in fp32 (o_t is a sum of
 *   large terms that mostly cancel: |o| ~ 2 while |S| ~ 1e4 at t = 64k).
 *   Everything else: one thread per element or one warp per row.
 *   Workspace (fp32), N = B*T tokens, np = z + v + 2d:
 *     N * (3d [X~, U, Zc] + np [P] + 2z [Q, K] + 2v [V, O/M] + 4d [Hm, L, F])
 *     + the fp32 weights d*np + 2*d*v + 4*d^2 + the cuBLAS workspace (32 MiB)
 *     = 4.13 GB + 51 MB + 32 MiB at N = 65536, d = 1024, z = 128, v = 2048.
 *   Predicted cost at T = 64k, B = 1, d = 1024 on an H100 SXM (67 TFLOP/s fp32 FMA peak):
 *   long conv 2.2e12 FMAs at 50-75% of peak -> 90-130 ms; GEMMs 8.3e11 MACs (12.7M a token)
 *   on cuBLAS's fp32 SIMT kernels -> 30-45 ms; scan 64k sequential steps, 64 blocks, ~7-12
 *   ms; the element-wise and row stages ~10 GB of HBM traffic -> ~4 ms.  ~130-200 ms in
 *   all.  At T = 1k (B = 64) the long conv is 64x smaller (~2 ms) and the GEMMs dominate.
 *   measured (H100 80GB HBM3, d = 1024, z = 128, v = 2048, best of 3 by events): T = 64k,
 *   B = 1: 305 ms bf16, 313 ms fp32; T = 1k, B = 64: 48 ms.  Slower than predicted: under ncu
 *   (its locked clocks) the long conv took 274 ms with the FMA pipe active only 40% of the
 *   time, the scan 49 ms (one step's dependent loads and shuffles, 64 blocks on 132 SMs),
 *   the five GEMMs 41 ms (cuBLAS's fp32 SIMT kernels at ~78% FMA), the rest < 3 ms.  Fine for
 *   an oracle run once per point; not tuned further.  Against ref_chela: max error / max(|ref|,
 *   row rms) 1.4e-6 to 4.7e-6, on whole sequences at T <= 4096 (odd widths, z = 1 to 256,
 *   B = 1 to 3, all three dtypes) and on the first 48 rows at T = 64k; compute-sanitizer
 *   memcheck and racecheck clean.
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
#include "oracle_chela.h" /* the state and tilings, shared with the backward */
#include "variant.h"

extern "C" {
DECLARE_VARIANT(chela_oracle_fp32);
}

using namespace chela_oracle;

namespace {

/* U[b,t,c] = SiLU(sum_{j<3, j<=t} k3[c,j] X~[b,t-j,c]) (oracle_chela.h: short_conv_pre). */
__global__ void short_conv_silu(const float *__restrict__ xln, const float *__restrict__ k3,
                                float *__restrict__ u, int T, int d, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        const int c = (int)(i % (size_t)d);
        const int t = (int)((i / (size_t)d) % (size_t)T);
        u[i] = silu_f(short_conv_pre(xln, k3, i, c, t, d));
    }
}

/* Zc[b,t,c] = sum_{s<=t} k_long[c,t-s] U[b,s,c] + sum_{j<3} k3b[c,j] U[b,t-j,c]
 *           + sum_{j<k_m} km[c,j] U[b,t-j,c].
 * Grid: x = channel group of 32, y = rank * B + b with tile = n_tiles - 1 - rank (the tiles
 * with the most inputs first).  Thread (lane, warp) owns channel c0 + lane and outputs
 * tb .. tb + 15, tb = t0 + 16 * warp.  Per chunk of inputs s0 .. s0 + 63 the taps j = t - s
 * range over [t0 - s0 - 64, t0 + 127 - s0]: ks row r holds tap jlo + r, jlo = t0 - s0 - 64.
 * Register window: before input s0 + q, kw[r] = tap tb + r - (s0 + q), i.e. ks row
 * 16 * warp + 64 + r - q; after it the window slides one tap down.
 * REV (the backward's dU = the adjoint, oracle_chela.h long_conv): t and s above are times
 * counted from the end, T - 1 - (time), for every read of U (then dZ) and write of Zc (then
 * dU): out[s] = sum_{t>=s} k_long[c,t-s] in[t] + sum_{j<3, s+j<T} k3b[c,j] in[s+j] + ... */
template <bool REV>
__global__ void __launch_bounds__(LC_WARPS * 32)
long_conv_branches(const float *__restrict__ u, const float *__restrict__ klong,
                   const float *__restrict__ k3b, const float *__restrict__ km, int k_m,
                   float *__restrict__ zc, int B, int T, int d, int n_tiles) {
    __shared__ float ks[LC_KROWS][LC_CH + 1];
    __shared__ float us[LC_SB][LC_CH];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int c0 = blockIdx.x * LC_CH, c = c0 + lane;
    const int b = (int)(blockIdx.y % (unsigned)B);
    const int tile = n_tiles - 1 - (int)(blockIdx.y / (unsigned)B);
    const int t0 = tile * LC_TB, tb = t0 + warp * LC_R;
    const float *ub = u + (size_t)b * T * d;
    /* the stored row of (reversed, when REV) time s, 0 <= s < T */
    auto row = [T](int s) { return (size_t)(REV ? T - 1 - s : s); };

    float y[LC_R];
#pragma unroll
    for (int r = 0; r < LC_R; r++) y[r] = 0.f;

    for (int s0 = 0; s0 < t0 + LC_TB && s0 < T; s0 += LC_SB) {
        const int jlo = t0 - s0 - LC_SB;
        __syncthreads(); /* the previous chunk's reads are done */
        for (int e = threadIdx.x; e < LC_KROWS * LC_CH; e += blockDim.x) {
            const int cl = e / LC_KROWS, r = e % LC_KROWS; /* consecutive threads: consecutive j */
            const int j = jlo + r, cc = c0 + cl;
            ks[r][cl] = (j >= 0 && j < T && cc < d) ? klong[(size_t)cc * T + j] : 0.f;
        }
        for (int e = threadIdx.x; e < LC_SB * LC_CH; e += blockDim.x) {
            const int sl = e / LC_CH, cl = e % LC_CH;
            const int s = s0 + sl, cc = c0 + cl;
            us[sl][cl] = (s < T && cc < d) ? ub[row(s) * d + cc] : 0.f;
        }
        __syncthreads();

        float acc[LC_R], kw[LC_R];
#pragma unroll
        for (int r = 0; r < LC_R; r++) {
            acc[r] = 0.f;
            kw[r] = ks[warp * LC_R + LC_SB + r][lane];
        }
#pragma unroll
        for (int q = 0; q < LC_SB; q++) {
            const float uq = us[q][lane];
#pragma unroll
            for (int r = 0; r < LC_R; r++) acc[r] = fmaf(kw[r], uq, acc[r]);
#pragma unroll
            for (int r = LC_R - 1; r > 0; r--) kw[r] = kw[r - 1];
            if (q + 1 < LC_SB) kw[0] = ks[warp * LC_R + LC_SB - q - 1][lane];
        }
#pragma unroll
        for (int r = 0; r < LC_R; r++) y[r] += acc[r];
    }

    if (c >= d) return;
#pragma unroll
    for (int r = 0; r < LC_R; r++) {
        const int t = tb + r;
        if (t >= T) break;
        float z3 = 0.f, zm = 0.f;
        for (int j = 0; j < 3 && j <= t; j++)
            z3 = fmaf(k3b[3 * c + j], ub[row(t - j) * d + c], z3);
        for (int j = 0; j < k_m && j <= t; j++)
            zm = fmaf(km[(size_t)c * k_m + j], ub[row(t - j) * d + c], zm);
        zc[((size_t)b * T + row(t)) * d + c] = y[r] + z3 + zm;
    }
}

/* Causal linear attention, one sequential pass over t.  Grid (ceil(v / JB), B), JB =
 * LA_THREADS / G value columns per block.  Thread (jl, g), jl = tid / G, g = tid % G (the G
 * threads of a column are consecutive lanes): column j = blockIdx.x * JB + jl, state rows
 * i = (4 * (i4 * G + g) + e) for i4 < LA_ZG / 4, e < 4, i.e. float4 group i4 * G + g.  Rows
 * i >= z are staged as zeros in q and k, so their state stays 0 and adds nothing.
 * o_t[j] = sum_i (q_t[i] / sqrt(z)) (S_glob[i] + S_loc[i]) after S_loc += k_t v_t[j].
 * REV (the backward's dV, oracle_chela.h la_scan_cols): the same scan with the roles of q and
 * k swapped and t counted from the end, T - 1 - (time), for every read and write: dV_t[j] =
 * sum_i k_t[i] R_t[i][j], R_t = sum_{s>=t} q^_s^T dO_s, the R in S's registers (dO as val).
 * Staging (q scaled, k as is) and the fmaf operand order are the same in both. */
template <bool REV>
__global__ void __launch_bounds__(LA_THREADS)
la_scan(const float *__restrict__ q, const float *__restrict__ k, const float *__restrict__ val,
        float *__restrict__ o, int T, int z, int v, int G, float scale) {
    __shared__ __align__(16) float qs[LA_TS][LA_ZMAX];
    __shared__ __align__(16) float kts[LA_TS][LA_ZMAX];
    __shared__ float vs[LA_TS][LA_THREADS];
    const int JB = LA_THREADS / G, zp = G * LA_ZG;
    const int g = threadIdx.x % G, jl = threadIdx.x / G;
    const int j = blockIdx.x * JB + jl;
    const size_t b = blockIdx.y;
    const float *qb = q + b * T * z, *kb = k + b * T * z, *vb = val + b * T * v;
    float *ob = o + b * T * v;
    /* the stored row of step t of the scan (reversed time when REV) */
    auto row = [T](int t) { return (size_t)(REV ? T - 1 - t : t); };

    float sg[LA_ZG], sl[LA_ZG];
#pragma unroll
    for (int i = 0; i < LA_ZG; i++) sg[i] = sl[i] = 0.f;

    for (int t0 = 0; t0 < T; t0 += LA_TS) {
        const int nt = T - t0 < LA_TS ? T - t0 : LA_TS;
        __syncthreads(); /* the previous tile's reads are done */
        for (int e = threadIdx.x; e < LA_TS * zp; e += LA_THREADS) {
            const int tt = e / zp, i = e % zp;
            const bool ok = tt < nt && i < z;
            qs[tt][i] = ok ? qb[row(t0 + tt) * z + i] * scale : 0.f;
            kts[tt][i] = ok ? kb[row(t0 + tt) * z + i] : 0.f;
        }
        for (int e = threadIdx.x; e < LA_TS * JB; e += LA_THREADS) {
            const int tt = e / JB, cl = e % JB, jj = blockIdx.x * JB + cl;
            vs[tt][cl] = (tt < nt && jj < v) ? vb[row(t0 + tt) * v + jj] : 0.f;
        }
        __syncthreads();

        for (int tt = 0; tt < nt; tt++) {
            const float vj = vs[tt][jl];
            /* a builds the state (S += a^T v), r reads it (o = r S) */
            const float4 *a4 = reinterpret_cast<const float4 *>(REV ? qs[tt] : kts[tt]);
            const float4 *r4 = reinterpret_cast<const float4 *>(REV ? kts[tt] : qs[tt]);
            float p0 = 0.f, p1 = 0.f, p2 = 0.f, p3 = 0.f;
#pragma unroll
            for (int i4 = 0; i4 < LA_ZG / 4; i4++) {
                const float4 aq = a4[i4 * G + g], rq = r4[i4 * G + g];
                float *l = sl + 4 * i4;
                const float *s = sg + 4 * i4;
                l[0] = fmaf(aq.x, vj, l[0]);
                l[1] = fmaf(aq.y, vj, l[1]);
                l[2] = fmaf(aq.z, vj, l[2]);
                l[3] = fmaf(aq.w, vj, l[3]);
                p0 = fmaf(rq.x, s[0] + l[0], p0);
                p1 = fmaf(rq.y, s[1] + l[1], p1);
                p2 = fmaf(rq.z, s[2] + l[2], p2);
                p3 = fmaf(rq.w, s[3] + l[3], p3);
            }
            float p = (p0 + p1) + (p2 + p3);
            /* over the G threads of this column only, not the warp: no warp_sum */
            for (int off = 1; off < G; off <<= 1) p += __shfl_xor_sync(0xffffffffu, p, off);
            if (g == 0 && j < v) ob[row(t0 + tt) * v + j] = p;
        }
        if ((t0 + LA_TS) % LA_FOLD == 0) {
#pragma unroll
            for (int i = 0; i < LA_ZG; i++) {
                sg[i] += sl[i];
                sl[i] = 0.f;
            }
        }
    }
}

/* M = RMSNorm(O) . sigmoid(Ga) into m: over O in place (m == o), or, when training, into a
 * buffer of its own so that O, the attention's raw output, stays for the backward.
 * Ga = P[:, z : z + v] (bias added).  One warp per row: the sum of squares is complete before
 * any element is written; each element is read and then written by the same lane, so o and m
 * may alias (neither is __restrict__). */
__global__ void __launch_bounds__(ROW_WARPS * 32)
rms_gate(const float *o, float *m, const float *__restrict__ p, int np, int z, int v,
         size_t rows) {
    const int lane = threadIdx.x & 31;
    const size_t row = (size_t)blockIdx.x * ROW_WARPS + (threadIdx.x >> 5);
    if (row >= rows) return;
    const float *orow = o + row * v;
    float *mrow = m + row * v;
    const float *ga = p + row * np + z;
    float ms = 0.f;
    for (int i = lane; i < v; i += 32) ms = fmaf(orow[i], orow[i], ms);
    ms = warp_sum(ms) / (float)v;
    const float inv = 1.0f / sqrtf(ms + (float)CHELA_RMS_EPS);
    for (int i = lane; i < v; i += 32) mrow[i] = orow[i] * inv * sigmoid_f(ga[i]);
}

/* ---------------- host side ---------------- */

/* Threads per value column of the scan: the smallest power of two with 32 G >= z. */
int la_group(int z) {
    int G = 1;
    while (G * LA_ZG < z) G *= 2;
    return G;
}

void destroy_state(oracle_state *st) {
    if (!st) return;
    if (st->handle) cublasDestroy(st->handle);
    float *bufs[] = {st->d_wproj, st->d_wv,   st->d_uh,   st->d_w1,   st->d_w2,    st->d_xln,
                     st->d_u,     st->d_zc,   st->d_p,    st->d_q,    st->d_k,     st->d_val,
                     st->d_o,     st->d_hm,   st->d_ln2,  st->d_f,    st->d_vpre,  st->d_m,
                     st->d_y,     st->d_fpre, st->g_dy,   st->g_df,   st->g_dd,    st->g_dproj,
                     st->g_dm,    st->g_dv,   st->g_dq,   st->g_dk,   st->g_part,  st->g_mean,
                     st->g_rstd,  st->g_cs};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) cudaFree(bufs[i]);
    cudaFree(st->d_ws);
    free(st);
}

/* What the backward reads besides the forward's activations, and its scratch (oracle_chela.h;
 * train_floats counts the same). */
int alloc_train(const shape_t *s, oracle_state *st) {
    const size_t N = (size_t)s->B * s->T, d = (size_t)s->d, z = (size_t)s->z, v = (size_t)s->v;
    const size_t np = (size_t)n_proj(s);
    st->train = 1;
    if (alloc_f32(&st->d_vpre, N * v) || alloc_f32(&st->d_m, N * v) ||
        alloc_f32(&st->d_y, N * d) || alloc_f32(&st->d_fpre, N * 2 * d) ||
        alloc_f32(&st->g_dy, N * d) || alloc_f32(&st->g_df, N * 2 * d) ||
        alloc_f32(&st->g_dd, N * d) || alloc_f32(&st->g_dproj, N * np) ||
        alloc_f32(&st->g_dm, N * v) || alloc_f32(&st->g_dv, N * v) ||
        alloc_f32(&st->g_dq, N * z) || alloc_f32(&st->g_dk, N * z) ||
        alloc_f32(&st->g_part, (size_t)lr_blocks(s) * N * z) || alloc_f32(&st->g_mean, N) ||
        alloc_f32(&st->g_rstd, N) || alloc_f32(&st->g_cs, COLSUM_CHUNKS * colsum_width(s)))
        return -1;
    return 0;
}

int setup_impl(const shape_t *s, const io_t *io, oracle_state *st) {
    st->G = la_group(s->z);
    const size_t N = (size_t)s->B * s->T, d = (size_t)s->d, z = (size_t)s->z, v = (size_t)s->v;
    const size_t np = (size_t)n_proj(s);
    if (alloc_f32(&st->d_wproj, d * np) || alloc_f32(&st->d_wv, d * v) ||
        alloc_f32(&st->d_uh, v * d) || alloc_f32(&st->d_w1, d * 2 * d) ||
        alloc_f32(&st->d_w2, 2 * d * d) || alloc_f32(&st->d_xln, N * d) ||
        alloc_f32(&st->d_u, N * d) || alloc_f32(&st->d_zc, N * d) ||
        alloc_f32(&st->d_p, N * np) || alloc_f32(&st->d_q, N * z) ||
        alloc_f32(&st->d_k, N * z) || alloc_f32(&st->d_val, N * v) ||
        alloc_f32(&st->d_o, N * v) || alloc_f32(&st->d_hm, N * d) ||
        alloc_f32(&st->d_ln2, N * d) || alloc_f32(&st->d_f, N * 2 * d))
        return -1;
    if (s->pass != PASS_FWD && alloc_train(s, st)) return -1;
    CUDA_CHECK(cudaMalloc(&st->d_ws, CUBLAS_WS_BYTES));
    CUBLAS_CHECK(cublasCreate(&st->handle));
    CUBLAS_CHECK(cublasSetMathMode(st->handle, CUBLAS_PEDANTIC_MATH));

    /* The weights are parameters: fp32 copies once, on the default stream, then a device
     * sync so the run stream sees them (and so the harness's fill is surely done first). */
    CUDA_CHECK(cudaDeviceSynchronize());
    if (to_f32_copy(s->dtype, io->in[CHELA_IN_WPROJ], st->d_wproj, d * np) ||
        to_f32_copy(s->dtype, io->in[CHELA_IN_WV], st->d_wv, d * v) ||
        to_f32_copy(s->dtype, io->in[CHELA_IN_UH], st->d_uh, v * d) ||
        to_f32_copy(s->dtype, io->in[CHELA_IN_W1], st->d_w1, d * 2 * d) ||
        to_f32_copy(s->dtype, io->in[CHELA_IN_W2], st->d_w2, 2 * d * d))
        return -1;
    CUDA_CHECK(cudaDeviceSynchronize());
    return 0;
}

/* Stages 1 and 10 read x in its storage type. */
template <typename Tx> int run_typed(const oracle_state *st, const io_t *io, cudaStream_t stream) {
    const shape_t *s = io->shape;
    const int B = s->B, T = s->T, d = s->d, z = s->z, v = s->v, np = n_proj(s);
    const size_t N = (size_t)B * T;
    const float *const *in = (const float *const *)io->in; /* the fp32 inputs */
    const Tx *x = (const Tx *)io->in[CHELA_IN_X];
    float *out = (float *)io->out;
    cublasHandle_t h = st->handle;

    /* cublasSetStream resets the workspace to cuBLAS's own pool, so set ours after it. */
    CUBLAS_CHECK(cublasSetStream(h, stream));
    CUBLAS_CHECK(cublasSetWorkspace(h, st->d_ws, CUBLAS_WS_BYTES));

    /* 1. X~ = LayerNorm1(X) */
    ln_rows<Tx><<<row_blocks(N), ROW_WARPS * 32, 0, stream>>>(
        x, in[CHELA_IN_LN1_G], in[CHELA_IN_LN1_B], st->d_xln, N, d);
    CUDA_CHECK(cudaGetLastError());
    /* 2. U = SiLU(k3 * X~) */
    short_conv_silu<<<ew_blocks(N * d), EW_THREADS, 0, stream>>>(st->d_xln, in[CHELA_IN_K3],
                                                                st->d_u, T, d, N * d);
    CUDA_CHECK(cudaGetLastError());
    /* 3. Zc = K_long * U + k3b * U + km * U */
    if (long_conv(st->d_u, in[CHELA_IN_KLONG], in[CHELA_IN_K3B], in[CHELA_IN_KM], st->d_zc, s,
                  false, stream))
        return -1;
    /* 4. P = Zc . W_proj + b_proj */
    if (gemm_rows(h, st->d_zc, N, d, st->d_wproj, np, 0.0f, st->d_p)) return -1;
    bias_act<<<ew_blocks(N * np), EW_THREADS, 0, stream>>>(st->d_p, N * np, np,
                                                          in[CHELA_IN_BPROJ], 0);
    CUDA_CHECK(cudaGetLastError());
    /* 5. Q, K */
    qk_from_p<<<ew_blocks(N * z), EW_THREADS, 0, stream>>>(
        st->d_p, np, in[CHELA_IN_KAPPA_Q], in[CHELA_IN_MU_Q], in[CHELA_IN_KAPPA_K],
        in[CHELA_IN_MU_K], st->d_q, st->d_k, z, N * z);
    CUDA_CHECK(cudaGetLastError());
    /* 6. V = SiLU(X~ . W_v + b_v); training keeps the pre-activation */
    float *vpre = st->train ? st->d_vpre : st->d_val;
    if (gemm_rows(h, st->d_xln, N, d, st->d_wv, v, 0.0f, vpre)) return -1;
    bias_act<<<ew_blocks(N * v), EW_THREADS, 0, stream>>>(vpre, N * v, v, in[CHELA_IN_BV],
                                                         st->train ? 0 : 1);
    CUDA_CHECK(cudaGetLastError());
    if (st->train) {
        silu_copy<<<ew_blocks(N * v), EW_THREADS, 0, stream>>>(vpre, st->d_val, N * v);
        CUDA_CHECK(cudaGetLastError());
    }
    /* 7. O = causal linear attention */
    if (la_scan_cols(st->d_q, st->d_k, st->d_val, st->d_o, s, la_group(z), false, stream))
        return -1;
    /* 8. M = RMSNorm(O) . sigmoid(Ga): in place over O, or beside it when training */
    float *m = st->train ? st->d_m : st->d_o;
    rms_gate<<<row_blocks(N), ROW_WARPS * 32, 0, stream>>>(st->d_o, m, st->d_p, np, z, v, N);
    CUDA_CHECK(cudaGetLastError());
    /* 9. Hm = M . U_h */
    if (gemm_rows(h, m, N, v, st->d_uh, d, 0.0f, st->d_hm)) return -1;
    /* 10-13. Y (-> out, or to d_y when training), L = LayerNorm2(Y), F = SiLU(L . W1) (training
     * keeps the pre-activation), Y' = Y + F . W2 -> out (oracle_common.cuh gate_ffn_fwd) */
    return gate_ffn_fwd<Tx>(st, np, z, v, in[CHELA_IN_BH], x, in[CHELA_IN_LN2_G],
                            in[CHELA_IN_LN2_B], out, N, d, stream);
}

} // namespace

/* oracle_chela.h: the forward's stage 3, and in reversed time the backward's dU. */
int chela_oracle::long_conv(const float *in, const float *klong, const float *k3b,
                            const float *km, float *out, const shape_t *s, bool reverse,
                            cudaStream_t stream) {
    const int n_tiles = lc_tiles(s);
    const dim3 grid((unsigned)((s->d + LC_CH - 1) / LC_CH), (unsigned)(n_tiles * s->B));
    if (reverse)
        long_conv_branches<true><<<grid, LC_WARPS * 32, 0, stream>>>(
            in, klong, k3b, km, shape_km(s->T), out, s->B, s->T, s->d, n_tiles);
    else
        long_conv_branches<false><<<grid, LC_WARPS * 32, 0, stream>>>(
            in, klong, k3b, km, shape_km(s->T), out, s->B, s->T, s->d, n_tiles);
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

/* oracle_chela.h: the forward's stage 7, and with q and k swapped in reversed time the
 * backward's dV. */
int chela_oracle::la_scan_cols(const float *q, const float *k, const float *val, float *out,
                               const shape_t *s, int G, bool reverse, cudaStream_t stream) {
    const int JB = LA_THREADS / G;
    const dim3 grid((unsigned)((s->v + JB - 1) / JB), (unsigned)s->B);
    const float scale = (float)(1.0 / sqrt((double)s->z));
    if (reverse)
        la_scan<true><<<grid, LA_THREADS, 0, stream>>>(q, k, val, out, s->T, s->z, s->v, G,
                                                       scale);
    else
        la_scan<false><<<grid, LA_THREADS, 0, stream>>>(q, k, val, out, s->T, s->z, s->v, G,
                                                        scale);
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

extern "C" {

const char *chela_oracle_fp32_supports(const shape_t *s) {
    if (s->B <= 0 || s->T <= 0 || s->d <= 0 || s->z <= 0 || s->v <= 0) return "empty shape";
    if (s->z > LA_ZMAX) return "z must be <= 256 (the scan keeps a state column in registers)";
    if ((long long)s->B * s->T > INT_MAX) return "B*T must be < 2^31";
    if ((long long)s->B * lc_tiles(s) > 65535) return "B*ceil(T/128) must be <= 65535";
    if ((long long)s->z + s->v + 2LL * s->d > INT_MAX / 2) return "z + v + 2d too large";
    return NULL;
}

/* Activations N * (7d + np + 2z + 2v) + weights d * (np + 2v + 4d), fp32, + cuBLAS's; for
 * pass != fwd also what the backward keeps and its scratch (oracle_chela.h, train_floats). */
size_t chela_oracle_fp32_workspace_bytes(const shape_t *s) {
    const size_t N = (size_t)s->B * s->T, d = (size_t)s->d, z = (size_t)s->z, v = (size_t)s->v;
    const size_t np = z + v + 2 * d;
    const size_t act = N * (7 * d + np + 2 * z + 2 * v);
    const size_t wts = d * (np + 2 * v + 4 * d);
    const size_t train = s->pass != PASS_FWD ? train_floats(s) : 0;
    return (act + wts + train) * sizeof(float) + CUBLAS_WS_BYTES;
}

int chela_oracle_fp32_setup(const shape_t *s, const io_t *io, void **state) {
    *state = NULL;
    const char *why = chela_oracle_fp32_supports(s);
    if (why) BENCH_FAIL("chela/oracle_fp32: %s", why);
    if (io->n_in < CHELA_N_IN) BENCH_FAIL("chela/oracle_fp32: %d inputs, need %d", io->n_in,
                                          CHELA_N_IN);
    oracle_state *st = (oracle_state *)calloc(1, sizeof(oracle_state));
    if (!st) BENCH_FAIL("chela/oracle_fp32: out of host memory");
    if (setup_impl(s, io, st) != 0) {
        destroy_state(st);
        (void)cudaGetLastError(); /* a failed cudaMalloc must not leak into the next launch check */
        return -1;
    }
    *state = st;
    return 0;
}

int chela_oracle_fp32_run(void *state, const io_t *io, cudaStream_t stream) {
    const oracle_state *st = (const oracle_state *)state;
    if (!st) BENCH_FAIL("chela/oracle_fp32: run without setup");
    switch (io->shape->dtype) {
    case DTYPE_F32: return run_typed<float>(st, io, stream);
    case DTYPE_F16: return run_typed<__half>(st, io, stream);
    case DTYPE_BF16: return run_typed<__nv_bfloat16>(st, io, stream);
    }
    BENCH_FAIL("chela/oracle_fp32: unknown dtype %d", (int)io->shape->dtype);
}

void chela_oracle_fp32_teardown(void *state) { destroy_state((oracle_state *)state); }

/* "fp32 gemm=32f_pedantic conv=direct attn=scan G=4": the definition in fp32, no shortcut
 * (header); G threads a value column in the scan.  When training, " bwd=direct+scan": the
 * backward's convs by direct sums, its attention by scans (oracle_chela_bwd.cu). */
void chela_oracle_fp32_config(const void *state, char *buf, size_t len) {
    const oracle_state *st = (const oracle_state *)state;
    if (!len) return;
    buf[0] = 0;
    if (st)
        snprintf(buf, len, "fp32 gemm=32f_pedantic conv=direct attn=scan G=%d%s", st->G,
                 st->train ? " bwd=direct+scan" : "");
}

} // extern "C"
