/* oracle_chela_bwd_seq.cu: the sequence passes of chela/oracle_fp32's backward, the ones that
 * walk the time axis (oracle_chela_bwd.cu says where they sit in the chain rule and what they
 * cost at the default point):
 *   - conv_dk: the long-stage kernels' gradient dk_long[c,j] = sum_b sum_{t>=j} U[b,t-j,c]
 *     dZ[b,t,c], by direct sums tiled as the forward's long_conv_branches (the dU half of the
 *     conv's backward is that very kernel run in reversed time: oracle_chela.cu);
 *   - la_row_scan + la_part_sum: dQ and dK of the causal linear attention, whose sums run over
 *     the v value columns, one scan forward and one backward in time;
 *   - dV, whose sum runs over the z state rows, is the forward's la_scan backwards, with q
 *     and k swapped (oracle_chela.cu la_scan<true>, through la_scan_cols).
 *
 * The attention's backward, from ref_linear_attn_bwd (ref_grad_attn.c), q^ = q / sqrt(z):
 *   o_t = q^_t S_t,  S_t = sum_{s<=t} k_s^T v_s                        (z x v)
 *   dQ_t = (dO_t S_t^T) / sqrt(z)            forward scan of S
 *   dK_t = R_t v_t^T,  dV_t = k_t R_t,       R_t = sum_{s>=t} q^_s^T dO_s, backward scan of R
 * (dO here is d o_raw, after the RMSNorm's backward.)  dQ and dK each sum a state row against
 * a v-long vector: a scan that keeps the state in value columns (la_scan's layout, which fits
 * dV) would need a reduction across its v / 32 blocks at every step.  So these two scans keep
 * one state row a thread and LR_NC = 32 columns a block, each block writes its partial row
 * sums for every token to global memory ([v / 32][N][z] floats, 2.1 GB at the default point),
 * and a second pass adds the blocks' parts in block order.  The state is S_glob + S_loc, folded
 * every LA_FOLD steps, as in the forward and for the same reason (its header: a plain fp32
 * running sum over 64k steps loses ~10x the tolerance).  No atomics anywhere: every output
 * has one writer, so a run gives the same bits every time. */
#include <cuda_runtime.h>
#include <math.h>
#include <stddef.h>

#include "bench_check.h"
#include "oracle_chela.h"
#include "oracle_common.cuh" /* ew_blocks, EW_THREADS */

using namespace chela_oracle;

namespace {

/* dk[c][j] = sum_b sum_{t=j}^{T-1} U[b,t-j,c] dZ[b,t,c], [d,T].  Grid: x = channel group of
 * 32, y = lag tile of LC_TB lags (tile 0, which has the most terms, first).  Thread (lane,
 * warp): channel c0 + lane, lags jb .. jb + 15, jb = j0 + 16 warp.  Per batch and chunk of
 * inputs t0 .. t0 + 63 (t0 = j0, j0 + 64, ...), U rows m = t - j lie in [mlo, mlo + 190],
 * mlo = t0 - j0 - 127: us row r holds U[mlo + r], zero for m < 0 (t < j: the causal mask).
 * For lag jb + r and input t0 + q that is us row 127 + q - 16 warp - r, so a 16-row window
 * of U in registers slides one row up per input: 2 shared loads for 16 FMAs, as the forward.
 * Each chunk sums into its own accumulators before they are added to the lag's total. */
__global__ void __launch_bounds__(LC_WARPS * 32)
conv_dk(const float *__restrict__ u, const float *__restrict__ dz, float *__restrict__ dk, int B,
        int T, int d) {
    __shared__ float us[LC_KROWS][LC_CH];
    __shared__ float gs[LC_SB][LC_CH];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int c0 = blockIdx.x * LC_CH, c = c0 + lane;
    const int j0 = blockIdx.y * LC_TB, jb = j0 + warp * LC_R;

    float y[LC_R];
#pragma unroll
    for (int r = 0; r < LC_R; r++) y[r] = 0.f;

    for (int b = 0; b < B; b++) {
        const float *ub = u + (size_t)b * T * d, *gb = dz + (size_t)b * T * d;
        for (int t0 = j0; t0 < T; t0 += LC_SB) {
            const int mlo = t0 - j0 - (LC_TB - 1);
            __syncthreads(); /* the previous chunk's reads are done */
            for (int e = threadIdx.x; e < LC_KROWS * LC_CH; e += blockDim.x) {
                const int r = e / LC_CH, cl = e % LC_CH; /* consecutive threads: channels */
                const int m = mlo + r, cc = c0 + cl;
                us[r][cl] = (m >= 0 && m < T && cc < d) ? ub[(size_t)m * d + cc] : 0.f;
            }
            for (int e = threadIdx.x; e < LC_SB * LC_CH; e += blockDim.x) {
                const int q = e / LC_CH, cl = e % LC_CH;
                const int t = t0 + q, cc = c0 + cl;
                gs[q][cl] = (t < T && cc < d) ? gb[(size_t)t * d + cc] : 0.f;
            }
            __syncthreads();

            float acc[LC_R], uw[LC_R];
#pragma unroll
            for (int r = 0; r < LC_R; r++) {
                acc[r] = 0.f;
                uw[r] = us[LC_TB - 1 - warp * LC_R - r][lane];
            }
#pragma unroll
            for (int q = 0; q < LC_SB; q++) {
                const float gq = gs[q][lane];
#pragma unroll
                for (int r = 0; r < LC_R; r++) acc[r] = fmaf(uw[r], gq, acc[r]);
#pragma unroll
                for (int r = LC_R - 1; r > 0; r--) uw[r] = uw[r - 1];
                if (q + 1 < LC_SB) uw[0] = us[LC_TB + q - warp * LC_R][lane];
            }
#pragma unroll
            for (int r = 0; r < LC_R; r++) y[r] += acc[r];
        }
    }

    if (c >= d) return;
#pragma unroll
    for (int r = 0; r < LC_R; r++)
        if (jb + r < T) dk[(size_t)c * T + jb + r] = y[r];
}

/* dk3b[c][j] = dk_long[c][j], dkm[c][j] likewise: the branches see the same U, so each branch
 * kernel's gradient is the merged kernel's on its taps (ref_grad_conv.h); taps j >= T reach no
 * output and get 0. */
__global__ void tap_slices(const float *__restrict__ dklong, float *__restrict__ dk3b,
                           float *__restrict__ dkm, int T, int d, int k_m) {
    const size_t n3 = (size_t)d * 3, n = n3 + (size_t)d * k_m;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        const bool short3 = i < n3;
        const size_t e = short3 ? i : i - n3;
        const int len = short3 ? 3 : k_m;
        const size_t c = e / (size_t)len;
        const int j = (int)(e % (size_t)len);
        (short3 ? dk3b : dkm)[e] = j < T ? dklong[c * T + j] : 0.f;
    }
}

/* One of the two v-long reductions (header).  The state St (z x v) takes a_t^T b_t at each
 * step (a scaled by a_scale), then part[blk][b,t][i] = sum over this block's columns j of
 * St[i][j] e_t[j].  REV false, a = K, b = V, e = dO: St = S_t and the parts add up to
 * sqrt(z) dQ_t.  REV true (t from T - 1 down), a = Q with a_scale = 1/sqrt(z), b = dO, e = V:
 * St = R_t and the parts add up to dK_t.  Grid (lr_blocks, B); blockDim = 32 ceil(z / 32):
 * thread i owns state row i, columns j0 .. j0 + LR_NC - 1 (j0 = blockIdx.x LR_NC), both
 * levels in registers.  Rows i >= z and columns j >= v are staged as zeros, so their state
 * stays 0 and adds nothing.  b_t and e_t are read as broadcasts (every thread the same
 * address), a_t[i] by its own thread. */
template <bool REV>
__global__ void __launch_bounds__(LA_ZMAX)
la_row_scan(const float *__restrict__ a, float a_scale, const float *__restrict__ bv,
            const float *__restrict__ ev, float *__restrict__ part, int B, int T, int z, int v) {
    __shared__ float as[LA_TS][LA_ZMAX];
    __shared__ __align__(16) float bs[LA_TS][LR_NC];
    __shared__ __align__(16) float es[LA_TS][LR_NC];
    const int i = threadIdx.x, zt = blockDim.x;
    const int j0 = blockIdx.x * LR_NC, b = blockIdx.y;
    const float *ab = a + (size_t)b * T * z;
    const float *bb = bv + (size_t)b * T * v, *eb = ev + (size_t)b * T * v;
    float *pb = part + (size_t)blockIdx.x * B * T * z + (size_t)b * T * z;

    float sg[LR_NC], sl[LR_NC];
#pragma unroll
    for (int c = 0; c < LR_NC; c++) sg[c] = sl[c] = 0.f;

    for (int k0 = 0; k0 < T; k0 += LA_TS) { /* k: steps in scan order */
        const int nt = T - k0 < LA_TS ? T - k0 : LA_TS;
        __syncthreads(); /* the previous tile's reads are done */
        for (int tt = 0; tt < LA_TS; tt++) {
            const int t = REV ? T - 1 - (k0 + tt) : k0 + tt;
            as[tt][i] = (tt < nt && i < z) ? ab[(size_t)t * z + i] * a_scale : 0.f;
        }
        for (int e = i; e < LA_TS * LR_NC; e += zt) {
            const int tt = e / LR_NC, cl = e % LR_NC, j = j0 + cl;
            const int t = REV ? T - 1 - (k0 + tt) : k0 + tt;
            const bool ok = tt < nt && j < v;
            bs[tt][cl] = ok ? bb[(size_t)t * v + j] : 0.f;
            es[tt][cl] = ok ? eb[(size_t)t * v + j] : 0.f;
        }
        __syncthreads();

        for (int tt = 0; tt < nt; tt++) {
            const float ai = as[tt][i];
            const float4 *b4 = reinterpret_cast<const float4 *>(bs[tt]);
            const float4 *e4 = reinterpret_cast<const float4 *>(es[tt]);
            float p0 = 0.f, p1 = 0.f, p2 = 0.f, p3 = 0.f;
#pragma unroll
            for (int c4 = 0; c4 < LR_NC / 4; c4++) {
                const float4 bq = b4[c4], eq = e4[c4];
                float *l = sl + 4 * c4;
                const float *s = sg + 4 * c4;
                l[0] = fmaf(ai, bq.x, l[0]);
                l[1] = fmaf(ai, bq.y, l[1]);
                l[2] = fmaf(ai, bq.z, l[2]);
                l[3] = fmaf(ai, bq.w, l[3]);
                p0 = fmaf(s[0] + l[0], eq.x, p0);
                p1 = fmaf(s[1] + l[1], eq.y, p1);
                p2 = fmaf(s[2] + l[2], eq.z, p2);
                p3 = fmaf(s[3] + l[3], eq.w, p3);
            }
            const int t = REV ? T - 1 - (k0 + tt) : k0 + tt;
            if (i < z) pb[(size_t)t * z + i] = (p0 + p1) + (p2 + p3);
        }
        if ((k0 + LA_TS) % LA_FOLD == 0) {
#pragma unroll
            for (int c = 0; c < LR_NC; c++) {
                sg[c] += sl[c];
                sl[c] = 0.f;
            }
        }
    }
}

/* out[e] = scale * sum_{blk < nblk} part[blk][e], blocks in order, e < n = N z. */
__global__ void la_part_sum(const float *__restrict__ part, int nblk, size_t n, float scale,
                            float *__restrict__ out) {
    for (size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x; e < n;
         e += (size_t)gridDim.x * blockDim.x) {
        float sum = 0.f;
        for (int k = 0; k < nblk; k++) sum += part[(size_t)k * n + e];
        out[e] = scale * sum;
    }
}

} // namespace

int chela_oracle::conv_kernel_grads(const float *u, const float *dz, float *dklong, float *dk3b,
                                    float *dkm, const shape_t *s, cudaStream_t stream) {
    const dim3 grid((unsigned)((s->d + LC_CH - 1) / LC_CH), (unsigned)lc_tiles(s));
    conv_dk<<<grid, LC_WARPS * 32, 0, stream>>>(u, dz, dklong, s->B, s->T, s->d);
    CUDA_CHECK(cudaGetLastError());
    const int k_m = shape_km(s->T);
    const size_t n = (size_t)s->d * (3 + (size_t)k_m);
    tap_slices<<<ew_blocks(n), EW_THREADS, 0, stream>>>(dklong, dk3b, dkm, s->T, s->d, k_m);
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

int chela_oracle::la_bwd(const oracle_state *st, const shape_t *s, const float *d_o, float *dq,
                         float *dk, float *dv, cudaStream_t stream) {
    const int B = s->B, T = s->T, z = s->z, v = s->v, nblk = lr_blocks(s);
    const float scale = (float)(1.0 / sqrt((double)z)); /* the forward's */
    const size_t nz = (size_t)B * T * z;
    const dim3 rgrid((unsigned)nblk, (unsigned)B);
    const int zt = (z + 31) / 32 * 32; /* <= LA_ZMAX (supports) */

    la_row_scan<false><<<rgrid, zt, 0, stream>>>(st->d_k, 1.0f, st->d_val, d_o, st->g_part, B, T,
                                                 z, v);
    CUDA_CHECK(cudaGetLastError());
    la_part_sum<<<ew_blocks(nz), EW_THREADS, 0, stream>>>(st->g_part, nblk, nz, scale, dq);
    CUDA_CHECK(cudaGetLastError());
    la_row_scan<true><<<rgrid, zt, 0, stream>>>(st->d_q, scale, d_o, st->d_val, st->g_part, B, T,
                                                z, v);
    CUDA_CHECK(cudaGetLastError());
    la_part_sum<<<ew_blocks(nz), EW_THREADS, 0, stream>>>(st->g_part, nblk, nz, 1.0f, dk);
    CUDA_CHECK(cudaGetLastError());

    /* dV: the forward's scan with q and k swapped, in reversed time (oracle_chela.cu). */
    return la_scan_cols(st->d_q, st->d_k, d_o, dv, s, st->G, true, stream);
}
