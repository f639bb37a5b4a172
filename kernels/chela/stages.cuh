/* chela/stages.cuh: the CHELA layer's own stage kernels, the elementwise and row passes between
 * its GEMMs, the long conv and the attention (kernels/chela/fused.cu numbers the stages and
 * launches these):
 *   stage 0 ln_shortconv   ln_shortconv_tile_kernel (v3/v6, a 32-token tile staged in shared
 *                          memory), ln_shortconv_kernel (v1, rows too long for the tile)
 *   stage 4 qkv_act        qkv_act_kernel
 *   stage 7 gate_out_ln2   gate_out_ln2_warp_kernel (v3, a warp a row, d <= 2048),
 *                          gate_out_ln2_kernel (v1, a block a row, any d)
 *   stage 9 ffn1_silu      silu_kernel
 * and the host-side geometry their launches need (blocks_for, the ln tile's pitch and shared
 * memory).  Templates on the storage type S (bf16, fp16, fp32), fp32 arithmetic.
 *
 * Included by fused.cu, and by baselines/mega/kernels.cuh for silu_kernel, block_sum and
 * blocks_for (MEGA's layer has chela's FFN): the kernels have internal linkage (an unnamed
 * namespace), and the launches, with their template arguments, are the including file's. */
#ifndef CHELA_CHELA_STAGES_CUH
#define CHELA_CHELA_STAGES_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stddef.h>

#include "common/math.cuh"     /* silu, sigm (fast divides, v5), warp_sum */
#include "common/mma_sync.cuh" /* smem_u32, cp_async16, cp_async_commit, cp_async_wait */
#include "dtype_device.cuh"    /* to_f32, from_f32, load8 / load4 / store8 */
#include "op_inputs.h"         /* CHELA_LN_EPS, CHELA_RMS_EPS */

#define CF_TILE_T 64         /* ln_shortconv v1 (general path): tokens per block        */
#define CF_TILE_C 64         /* ln_shortconv v1: channels per inner step                */
#define CF_ROW_THREADS 128   /* gate_out_ln2 v1 (d > 2048): threads per row             */
#define CF_LN_TT 32          /* ln_shortconv v3: tokens per block                       */
#define CF_LN_ROWS (CF_LN_TT + 2) /* ... plus the 2 before them that the 3-tap conv reads */
#define CF_EW_THREADS 256    /* v3 elementwise kernels: threads per block (8 warps)     */
#define CF_EW_ROW_NG 8       /* gate_out_ln2 v3: most 8-element groups a lane holds     */
#define CF_SILU_BATCH 4      /* ffn1_silu v3: groups a thread loads before using any    */

namespace {

/* Stage 0, v1: the general path, kept for rows too long for v3's shared-memory tile.
 * Block = CF_TILE_T tokens of one batch row (plus the 2 before them, which the
 * 3-tap conv needs), all d channels.  Row statistics first (two passes over each row,
 * the second from L1/L2), then CF_TILE_C channels at a time: normalise, write X~ row-major,
 * stage the tile in shared memory, write U transposed with t fastest (coalesced). */
template <typename S>
__global__ void __launch_bounds__(256)
ln_shortconv_kernel(const S *__restrict__ x, const float *__restrict__ g, const float *__restrict__ bta,
                    const float *__restrict__ k3, int T, int d, S *__restrict__ xln, S *__restrict__ u) {
    __shared__ float mean[CF_TILE_T + 2], rstd[CF_TILE_T + 2];
    __shared__ float xs[CF_TILE_T + 2][CF_TILE_C + 1];
    const int tiles = (T + CF_TILE_T - 1) / CF_TILE_T; /* one flat grid: B can pass 65535 */
    const int b = blockIdx.x / tiles, t0 = (blockIdx.x % tiles) * CF_TILE_T;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nwarps = blockDim.x / 32;
    const S *xb = x + (size_t)b * T * d;
    for (int r = warp; r < CF_TILE_T + 2; r += nwarps) {
        const int t = t0 + r - 2;
        float m = 0.f, var = 0.f;
        if (t >= 0 && t < T) {
            const S *row = xb + (size_t)t * d;
            float s = 0.f;
            for (int c = lane; c < d; c += 32) s += to_f32(row[c]);
            m = warp_sum(s) / d;
            float q = 0.f;
            for (int c = lane; c < d; c += 32) {
                const float e = to_f32(row[c]) - m;
                q += e * e;
            }
            var = warp_sum(q) / d;
        }
        if (lane == 0) {
            mean[r] = m;
            rstd[r] = rsqrtf(var + (float)CHELA_LN_EPS);
        }
    }
    __syncthreads();
    for (int c0 = 0; c0 < d; c0 += CF_TILE_C) {
        for (int i = threadIdx.x; i < (CF_TILE_T + 2) * CF_TILE_C; i += blockDim.x) {
            const int r = i / CF_TILE_C, cc = i % CF_TILE_C, c = c0 + cc, t = t0 + r - 2;
            float v = 0.f; /* the conv sees zeros before t = 0 */
            if (t >= 0 && t < T && c < d) {
                v = (to_f32(xb[(size_t)t * d + c]) - mean[r]) * rstd[r] * g[c] + bta[c];
                if (r >= 2) xln[((size_t)b * T + t) * d + c] = from_f32<S>(v);
            }
            xs[r][cc] = v;
        }
        __syncthreads();
        for (int i = threadIdx.x; i < CF_TILE_T * CF_TILE_C; i += blockDim.x) {
            const int cc = i / CF_TILE_T, tt = i % CF_TILE_T, c = c0 + cc, t = t0 + tt;
            if (t < T && c < d) {
                const float a = k3[3 * c] * xs[tt + 2][cc] + k3[3 * c + 1] * xs[tt + 1][cc] +
                                k3[3 * c + 2] * xs[tt][cc];
                u[((size_t)b * d + c) * T + t] = from_f32<S>(silu(a));
            }
        }
        __syncthreads();
    }
}

/* ---- v3 helper: the staged tile's layout ---- */

/* Group gi (8 channels, 16 B; 32 B for fp32) of staged row r.  The row pitch is a multiple
 * of 128 B, so without the XOR every row puts channel c in the same banks, and the U pass,
 * whose warp reads one column in 4 rows 8 apart, would be 4-way conflicted.  XOR-ing the
 * group index with (r / 8) % 4 moves those 4 rows to 4 different 16 B (32 B) bank slots;
 * it permutes groups inside aligned runs of 4, so row passes stay conflict-free and the
 * padded pitch (a multiple of 4 groups) still holds every group. */
template <typename S>
__device__ __forceinline__ S *ln_tile_group(unsigned char *tile, int pitch, int r, int gi) {
    return reinterpret_cast<S *>(tile + (size_t)r * pitch) + ((gi ^ ((r >> 3) & 3)) << 3);
}

/* Stage 0, v3.  Block = CF_LN_TT tokens of one batch row plus the 2 before them, all d
 * channels, staged once in shared memory by cp.async (every row of the tile in flight at
 * once, 68 KB at d = 1024 bf16, so 3 blocks an SM keep ~200 KB of x moving).  v1 read each
 * row 3 times with 2-byte loads; here x is read from HBM once, 16 B at a time.
 *   phase 1  warp w loads rows w, w+8, ... and computes their mean and rstd itself (two
 *            passes over shared memory, the v1 formulas), so it needs only __syncwarp;
 *   phase 2  after the one __syncthreads: X~ row-major, a warp per row, 16 B stores;
 *            U, a lane per 4 channels x a run of 8 tokens (v6; see phase 2b), X~ of the
 *            10 rows a run needs recomputed from the staged x (the same fp32 expression as
 *            X~'s, before its rounding, as in v1), each channel's 8 tokens stored as one
 *            16 B vector (a channel's 32 tokens are 4 such runs, from 4 lanes).
 *            Odd T: scalar stores (the vector store needs T % 8 == 0 for alignment).
 * The dynamic shared memory is CF_LN_ROWS rows of `pitch` bytes, then mean[] and rstd[];
 * the host checks it fits (ln_tile_smem_bytes) and falls back to v1 if not. */
template <typename S>
__global__ void __launch_bounds__(CF_EW_THREADS, 3) /* 3 blocks an SM: what 68 KB tiles allow */
ln_shortconv_tile_kernel(const S *__restrict__ x, const float *__restrict__ g,
                         const float *__restrict__ bta, const float *__restrict__ k3, int T,
                         int d, int pitch, S *__restrict__ xln, S *__restrict__ u) {
    extern __shared__ __align__(128) unsigned char cf_tile[];
    float *mean = reinterpret_cast<float *>(cf_tile + (size_t)CF_LN_ROWS * pitch);
    float *rstd = mean + CF_LN_ROWS;
    const int tiles = (T + CF_LN_TT - 1) / CF_LN_TT; /* one flat grid: B can pass 65535 */
    const int b = blockIdx.x / tiles, t0 = (blockIdx.x % tiles) * CF_LN_TT;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nwarps = blockDim.x / 32;
    const int ng = d / 8; /* d % 8 == 0: chela_fused_supports */
    const S *xb = x + (size_t)b * T * d;

    /* phase 1: stage rows t0-2 .. t0+CF_LN_TT-1 that exist; rows outside [0, T) are never
     * read (the conv's zeros before t = 0 are written as zeros below, not staged) */
    for (int r = warp; r < CF_LN_ROWS; r += nwarps) {
        const int t = t0 - 2 + r;
        if (t < 0 || t >= T) continue;
        const S *src = xb + (size_t)t * d;
        for (int gi = lane; gi < ng; gi += 32) {
            unsigned char *dst =
                reinterpret_cast<unsigned char *>(ln_tile_group<S>(cf_tile, pitch, r, gi));
            const unsigned char *from = reinterpret_cast<const unsigned char *>(src + gi * 8);
#pragma unroll
            for (int h = 0; h < (int)sizeof(S) / 2; h++) /* 16 B chunks in a group of 8 */
                cp_async16(smem_u32(dst + 16 * h), from + 16 * h, 16);
        }
    }
    cp_async_commit();
    cp_async_wait<0>();
    __syncwarp(); /* the warp's own rows, written by its own lanes' copies */
    for (int r = warp; r < CF_LN_ROWS; r += nwarps) {
        const int t = t0 - 2 + r;
        if (t < 0 || t >= T) continue;
        float s = 0.f, f[8];
        for (int gi = lane; gi < ng; gi += 32) {
            load8(ln_tile_group<S>(cf_tile, pitch, r, gi), f);
#pragma unroll
            for (int e = 0; e < 8; e++) s += f[e];
        }
        const float m = warp_sum(s) / d;
        float q = 0.f;
        for (int gi = lane; gi < ng; gi += 32) {
            load8(ln_tile_group<S>(cf_tile, pitch, r, gi), f);
#pragma unroll
            for (int e = 0; e < 8; e++) q += (f[e] - m) * (f[e] - m);
        }
        const float var = warp_sum(q) / d;
        if (lane == 0) {
            mean[r] = m;
            rstd[r] = rsqrtf(var + (float)CHELA_LN_EPS);
        }
    }
    __syncthreads(); /* every staged row and its statistics, for the column pass */

    /* phase 2a: X~ for the block's tokens (rows 2..), row-major */
    for (int r = 2 + warp; r < CF_LN_ROWS; r += nwarps) {
        const int t = t0 - 2 + r;
        if (t >= T) break;
        const float m = mean[r], rs = rstd[r];
        S *dst = xln + ((size_t)b * T + t) * d;
        for (int gi = lane; gi < ng; gi += 32) {
            float f[8], gg[8], bb[8];
            load8(ln_tile_group<S>(cf_tile, pitch, r, gi), f);
            load8(g + gi * 8, gg);
            load8(bta + gi * 8, bb);
#pragma unroll
            for (int e = 0; e < 8; e++) f[e] = (f[e] - m) * rs * gg[e] + bb[e];
            store8(dst + gi * 8, f);
        }
    }

    /* phase 2b: U = SiLU(k3 * X~), [B,d,T].  v6: a lane takes 4 channels (half a group) and a
     * run of 8 tokens: the 10 staged rows the run needs (2 before it for the conv) come as one
     * 8-byte load each, X~ of a row once a row with its statistics, and the 3-tap conv slides
     * over them (v3 took one channel a lane: 2-byte loads, each with its own address and
     * statistics loads, ~2.5x the issue slots the pass's bytes need: Nsight Compute, NOTES).
     * The same fp32 expressions in the same order as v3, so U is bit-identical.  The 4 runs
     * of a half group go to 4 consecutive lanes, so each channel's stores form 64 B runs as in
     * v3 (consecutive lanes on consecutive half groups of one row, conflict-free loads, wrote
     * 16 B pieces of 32 channel rows an instruction and measured 2x slower: 0.48 ms). */
    const bool vec = T % 8 == 0;
    constexpr int RUNS = CF_LN_TT / 8;
    const int nh = 2 * ng; /* half groups */
    for (int item = threadIdx.x; item < nh * RUNS; item += blockDim.x) {
        const int hg = item / RUNS, run = item % RUNS; /* 4 lanes: one channel's 64 B run */
        const int tb = t0 + run * 8; /* the run's first token */
        if (tb >= T) continue;
        const int gi = hg >> 1, c0 = hg * 4; /* group, first channel */
        const int sub = (hg & 1) * 4;        /* the half inside the staged group */
        float gc[4], bc[4], k0[4], k1[4], k2[4];
#pragma unroll
        for (int e = 0; e < 4; e++) {
            gc[e] = g[c0 + e];
            bc[e] = bta[c0 + e];
            k0[e] = k3[3 * (c0 + e)];
            k1[e] = k3[3 * (c0 + e) + 1];
            k2[e] = k3[3 * (c0 + e) + 2];
        }
        float w0[4], w1[4], o[4][8]; /* X~ two rows and one row back; outputs [channel][token] */
#pragma unroll
        for (int j = 0; j < 10; j++) {
            const int r = run * 8 + j, t = t0 - 2 + r;
            float xv[4] = {0.f, 0.f, 0.f, 0.f}; /* the conv sees zeros before t = 0 */
            if (t >= 0 && t < T) {
                load4(ln_tile_group<S>(cf_tile, pitch, r, gi) + sub, xv);
                const float m = mean[r], rs = rstd[r];
#pragma unroll
                for (int e = 0; e < 4; e++) xv[e] = (xv[e] - m) * rs * gc[e] + bc[e];
            }
            if (j >= 2) {
#pragma unroll
                for (int e = 0; e < 4; e++)
                    o[e][j - 2] = silu(k0[e] * xv[e] + k1[e] * w1[e] + k2[e] * w0[e]);
            }
#pragma unroll
            for (int e = 0; e < 4; e++) {
                w0[e] = w1[e];
                w1[e] = xv[e];
            }
        }
#pragma unroll
        for (int e = 0; e < 4; e++) {
            S *dst = u + ((size_t)b * d + c0 + e) * T + tb;
            if (vec) {
                store8(dst, o[e]); /* T % 8 == 0: the whole run is inside [0, T) */
            } else {
#pragma unroll
                for (int i = 0; i < 8; i++)
                    if (tb + i < T) dst[i] = from_f32<S>(o[e][i]);
            }
        }
    }
}

/* Stage 4, v5: Q, K from the shared Zq (P's first z columns); V's SiLU is the attention's
 * (stage 5).  A thread a group of 8 of a row's Zq (z a multiple of 8: supports() checks, so
 * every group is 16 B aligned); the parameters are z floats each, read from L1. */
template <typename S>
__global__ void __launch_bounds__(CF_EW_THREADS)
qkv_act_kernel(const S *__restrict__ p, int np, const float *__restrict__ bp,
               const float *__restrict__ kq, const float *__restrict__ mq,
               const float *__restrict__ kk, const float *__restrict__ mk, long long rows, int z,
               S *__restrict__ q, S *__restrict__ k) {
    const int zg = z / 8;
    const long long n = rows * zg;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        const long long r = i / zg;
        const int j = (int)(i - r * zg) * 8;
        float zq[8], bb[8], aq[8], bq[8], ak[8], bk[8], a[8], o[8];
        load8(p + r * np + j, zq);
        load8(bp + j, bb);
        load8(kq + j, aq);
        load8(mq + j, bq);
        load8(kk + j, ak);
        load8(mk + j, bk);
#pragma unroll
        for (int e = 0; e < 8; e++) {
            const float s = silu(zq[e] + bb[e]);
            a[e] = aq[e] * s + bq[e];
            o[e] = ak[e] * s + bk[e];
        }
        store8(q + r * z + j, a);
        store8(k + r * z + j, o);
    }
}

template <int N> __device__ __forceinline__ float block_sum(float v, float *red) {
    v = warp_sum(v);
    const int w = threadIdx.x / 32, lane = threadIdx.x % 32;
    __syncthreads(); /* red[] may still be read by the previous call */
    if (lane == 0) red[w] = v;
    __syncthreads();
    float s = 0.f;
#pragma unroll
    for (int i = 0; i < N / 32; i++) s += red[i];
    return s;
}

/* Stage 5 leaves the attention's RMSNorm to this stage (v4): M = Norm(O) * sigmoid(Ga) is
 * rstd_row * (O * sigmoid(Ga)), and H' = M . Uh = rstd_row * ((O * sigmoid(Ga)) . Uh), so the
 * per-row scalar rstd = 1 / sqrt(sum_j O_j^2 / v + eps) is applied to H' here, from the
 * attention's per-slice row sums of squares rss[slice][row] (v / 64 slices, fp32).  Part of the
 * sum: the slices s = first, first + step, ... */
__device__ __forceinline__ float cf_attn_rstd_part(const float *__restrict__ rss, long long rows,
                                                   long long r, int v, int first, int step) {
    float ss = 0.f;
    for (int sl = first; sl < v / 64; sl += step) ss += rss[(long long)sl * rows + r];
    return ss;
}
__device__ __forceinline__ float cf_attn_rstd(const float *__restrict__ rss, long long rows,
                                              long long r, int v, int first, int step) {
    return rsqrtf(cf_attn_rstd_part(rss, rows, r, v, first, step) / v + (float)CHELA_RMS_EPS);
}

/* Stage 7, v1: the general path, kept for d > 32 * 8 * CF_EW_ROW_NG (2048).  One block a
 * row: the gated residual (eq. 14) and LayerNorm2 of its result.  The row lives in shared
 * memory in fp32 between the passes (d floats). */
template <typename S>
__global__ void __launch_bounds__(CF_ROW_THREADS)
gate_out_ln2_kernel(const S *__restrict__ h, const float *__restrict__ bh, const S *__restrict__ p,
                    const float *__restrict__ bp, int np, int z, int v,
                    const S *__restrict__ x, const float *__restrict__ g2,
                    const float *__restrict__ b2, int d, const float *__restrict__ rss,
                    long long rows, S *__restrict__ y, S *__restrict__ ln) {
    extern __shared__ float yrow[];
    __shared__ float red[CF_ROW_THREADS / 32];
    const long long r = blockIdx.x;
    const S *go = p + r * np + z + v, *hz = go + d;
    const float rn = cf_attn_rstd(rss, rows, r, v, 0, 1); /* every thread sums all partials */
    float s = 0.f;
    for (int j = threadIdx.x * 8; j < d; j += CF_ROW_THREADS * 8) {
        float hh[8], gg[8], zz[8], xx[8], yy[8];
        load8(h + r * d + j, hh);
        load8(go + j, gg);
        load8(hz + j, zz);
        load8(x + r * d + j, xx);
#pragma unroll
        for (int e = 0; e < 8; e++) {
            const float gate = sigm(gg[e] + bp[z + v + j + e]);
            yy[e] = gate * silu(zz[e] + bp[z + v + d + j + e] + rn * hh[e] + bh[j + e]) +
                    (1.f - gate) * xx[e];
            s += yy[e];
        }
        store8(y + r * d + j, yy);
        store8(yrow + j, yy);
    }
    const float mean = block_sum<CF_ROW_THREADS>(s, red) / d;
    float q = 0.f;
    for (int j = threadIdx.x * 8; j < d; j += CF_ROW_THREADS * 8)
        for (int e = 0; e < 8; e++) q += (yrow[j + e] - mean) * (yrow[j + e] - mean);
    const float rs = rsqrtf(block_sum<CF_ROW_THREADS>(q, red) / d + (float)CHELA_LN_EPS);
    for (int j = threadIdx.x * 8; j < d; j += CF_ROW_THREADS * 8) {
        float o[8];
#pragma unroll
        for (int e = 0; e < 8; e++) o[e] = (yrow[j + e] - mean) * rs * g2[j + e] + b2[j + e];
        store8(ln + r * d + j, o);
    }
}

/* Stage 7, v3: a warp a row, the row's fp32 Y in registers (NG groups of 8 a lane, d <=
 * 32 * 8 * NG), so the LayerNorm's two passes cost shuffles, not block barriers and a
 * shared-memory round trip.  All 4 NG loads of 16 B a lane (h, Go, Hz, x) are issued before
 * the first is used: 8 KB a warp in flight at d = 1024 bf16.  v1 (a 128-thread block a
 * row, two block reductions, the 5 parameter vectors read 4 B at a time) measured 0.45 ms
 * against a 0.27 ms floor.  Same formulas and order of operations as v1.
 * v5: Nsight Compute (H100, T = 2k) found it at 25 % occupancy (92 registers, 2 blocks an SM),
 * DRAM 67 %, warps stalled on L1TEX 67 % of their cycles: 3 blocks an SM where NG <= 4 (80
 * registers, 32 bytes of spill at NG = 4) took it from 0.343 to 0.294 ms (floor 0.274). */
template <typename S, int NG>
__global__ void __launch_bounds__(CF_EW_THREADS, NG <= 4 ? 3 : 2)
gate_out_ln2_warp_kernel(const S *__restrict__ h, const float *__restrict__ bh,
                         const S *__restrict__ p, const float *__restrict__ bp, int np, int z,
                         int v, const S *__restrict__ x, const float *__restrict__ g2,
                         const float *__restrict__ b2, int d, const float *__restrict__ rss,
                         long long rows, S *__restrict__ y, S *__restrict__ ln) {
    const int lane = threadIdx.x % 32, wpb = blockDim.x / 32;
    const float *bgo = bp + z + v, *bhz = bgo + d;
    for (long long r = (long long)blockIdx.x * wpb + threadIdx.x / 32; r < rows;
         r += (long long)gridDim.x * wpb) {
        const S *go = p + r * np + z + v, *hz = go + d;
        const float rn = warp_sum(cf_attn_rstd_part(rss, rows, r, v, lane, 32));
        const float rstd = rsqrtf(rn / v + (float)CHELA_RMS_EPS);
        float yy[NG][8], s = 0.f;
#pragma unroll
        for (int i = 0; i < NG; i++) {
            const int j = (lane + 32 * i) * 8;
            if (j < d) {
                float hh[8], gg[8], zz[8], xx[8], pg[8], pz[8], ph[8];
                load8(h + r * d + j, hh);
                load8(go + j, gg);
                load8(hz + j, zz);
                load8(x + r * d + j, xx);
                load8(bgo + j, pg);
                load8(bhz + j, pz);
                load8(bh + j, ph);
#pragma unroll
                for (int e = 0; e < 8; e++) {
                    const float gate = sigm(gg[e] + pg[e]);
                    yy[i][e] = gate * silu(zz[e] + pz[e] + rstd * hh[e] + ph[e]) + (1.f - gate) * xx[e];
                    s += yy[i][e];
                }
            }
        }
        const float mean = warp_sum(s) / d;
        float q = 0.f;
#pragma unroll
        for (int i = 0; i < NG; i++) {
            const int j = (lane + 32 * i) * 8;
            if (j < d) {
                store8(y + r * d + j, yy[i]);
#pragma unroll
                for (int e = 0; e < 8; e++) q += (yy[i][e] - mean) * (yy[i][e] - mean);
            }
        }
        const float rs = rsqrtf(warp_sum(q) / d + (float)CHELA_LN_EPS);
#pragma unroll
        for (int i = 0; i < NG; i++) {
            const int j = (lane + 32 * i) * 8;
            if (j < d) {
                float gg[8], bb[8], o[8];
                load8(g2 + j, gg);
                load8(b2 + j, bb);
#pragma unroll
                for (int e = 0; e < 8; e++) o[e] = (yy[i][e] - mean) * rs * gg[e] + bb[e];
                store8(ln + r * d + j, o);
            }
        }
    }
}

/* Stage 9, v3: SiLU in place.  A block owns CF_EW_THREADS * CF_SILU_BATCH groups of 8 and a
 * thread loads all its CF_SILU_BATCH before using any: v1 had one 16 B load in flight a
 * thread (the in-place store of one iteration keeps the compiler from hoisting the next
 * load above it), ~32 KB an SM, too few to cover HBM latency. */
template <typename S> __global__ void __launch_bounds__(CF_EW_THREADS)
silu_kernel(S *__restrict__ a, long long n8) {
    const long long per_block = (long long)CF_EW_THREADS * CF_SILU_BATCH;
    for (long long i0 = (long long)blockIdx.x * per_block + threadIdx.x; i0 < n8;
         i0 += (long long)gridDim.x * per_block) {
        float f[CF_SILU_BATCH][8];
#pragma unroll
        for (int w = 0; w < CF_SILU_BATCH; w++) {
            const long long i = i0 + (long long)w * CF_EW_THREADS;
            if (i < n8) load8(a + i * 8, f[w]);
        }
#pragma unroll
        for (int w = 0; w < CF_SILU_BATCH; w++) {
            const long long i = i0 + (long long)w * CF_EW_THREADS;
            if (i < n8) {
#pragma unroll
                for (int e = 0; e < 8; e++) f[w][e] = silu(f[w][e]);
                store8(a + i * 8, f[w]);
            }
        }
    }
}

/* Blocks for `work` items at `per_block` a block; the kernels above loop over the rest, so
 * the cap only bounds the grid, it never drops work. */
inline unsigned blocks_for(long long work, long long per_block) {
    const long long b = (work + per_block - 1) / per_block;
    return (unsigned)(b < 1 ? 1 : b > (1 << 20) ? (1 << 20) : b);
}

/* v3's ln_shortconv tile: CF_LN_ROWS rows of a 128 B-multiple pitch, then mean[] and rstd[]. */
inline int ln_tile_pitch_bytes(int d, size_t es) { return (int)((d * es + 127) / 128 * 128); }
inline size_t ln_tile_smem_bytes(int d, size_t es) {
    return (size_t)CF_LN_ROWS * ln_tile_pitch_bytes(d, es) + 2 * CF_LN_ROWS * sizeof(float);
}

} // namespace

#endif
