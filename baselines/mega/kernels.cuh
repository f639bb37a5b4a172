/* mega/kernels.cuh: mega/layer's own kernels, the passes between its GEMMs, the EMA's long conv
 * and the attention (baselines/mega/layer.cu numbers the stages and launches these):
 *   ln1           mg_ln_dual_kernel       X~ = LayerNorm1(X), written [B,T,d] (for the V GEMM)
 *                                         and [B,d,T] (the long-conv engine's layout), one tile
 *   qkv_act       mg_qkv_act_kernel       Q, K from Zq = SiLU(P[:, :z] + bz); V = SiLU(V' + bv)
 *   gate_o        mg_gate_o_kernel        M = SiLU(G + bg) . O (into V's buffer, free by then)
 *   gate_out_ln2  mg_gate_out_ln2_kernel  Y = phi SiLU(Hz + bhz + H' + bh) + (1 - phi) X; LN2(Y)
 *   ffn1_silu     silu_kernel             F = SiLU(F') in place: chela/fused's
 *                                         (kernels/chela/stages.cuh, with block_sum, blocks_for)
 * Templates on the storage type S (bf16, fp16, fp32), fp32 arithmetic; groups of 8 elements
 * (16 B in bf16) where the widths allow (d, z, v multiples of 8: mega_layer_supports).
 * Included by layer.cu alone: internal linkage (an unnamed namespace; the mg_ prefix keeps
 * them apart from chela/stages.cuh's, which share it). */
#ifndef CHELA_MEGA_KERNELS_CUH
#define CHELA_MEGA_KERNELS_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stddef.h>

#include "chela/stages.cuh" /* silu_kernel, block_sum, blocks_for, CF_EW_THREADS, CF_SILU_BATCH */
#include "common/math.cuh"  /* silu, sigm (fast divides), warp_sum */
#include "dtype_device.cuh" /* to_f32, from_f32, load8, store8 */
#include "op_inputs.h"      /* CHELA_LN_EPS */

#define MG_LN_TT 32      /* ln_dual: tokens a block                           */
#define MG_LN_TC 64      /* ln_dual: channels a step of the transposed write  */
#define MG_EW_THREADS 256
#define MG_ROW_THREADS 128 /* gate_out_ln2: threads a row                     */

namespace {

/* Block = MG_LN_TT tokens of one sequence, all d channels.  Each warp computes its rows' mean
 * and rstd (two passes over the row: the centred variance), then MG_LN_TC channels at a time
 * the tile is normalised (x read with c fastest, X~ written row-major), staged in shared memory
 * and written transposed with t fastest.  x is read twice (the second time mostly from L2). */
template <typename S>
__global__ void __launch_bounds__(MG_EW_THREADS)
mg_ln_dual_kernel(const S *__restrict__ x, const float *__restrict__ g, const float *__restrict__ bta,
               int T, int d, S *__restrict__ xln, S *__restrict__ xlt) {
    __shared__ float mean[MG_LN_TT], rstd[MG_LN_TT];
    __shared__ float tile[MG_LN_TT][MG_LN_TC + 1];
    const int tiles = (T + MG_LN_TT - 1) / MG_LN_TT;
    const int b = blockIdx.x / tiles, t0 = (blockIdx.x % tiles) * MG_LN_TT;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nw = blockDim.x / 32;
    const S *xb = x + (size_t)b * T * d;
    for (int r = warp; r < MG_LN_TT; r += nw) {
        const int t = t0 + r;
        float m = 0.f, var = 0.f;
        if (t < T) {
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
    for (int c0 = 0; c0 < d; c0 += MG_LN_TC) {
        for (int i = threadIdx.x; i < MG_LN_TT * MG_LN_TC; i += blockDim.x) {
            const int r = i / MG_LN_TC, cc = i % MG_LN_TC, c = c0 + cc, t = t0 + r;
            float v = 0.f;
            if (t < T && c < d) {
                v = (to_f32(xb[(size_t)t * d + c]) - mean[r]) * rstd[r] * g[c] + bta[c];
                xln[((size_t)b * T + t) * d + c] = from_f32<S>(v);
            }
            tile[r][cc] = v;
        }
        __syncthreads();
        for (int i = threadIdx.x; i < MG_LN_TT * MG_LN_TC; i += blockDim.x) {
            const int cc = i / MG_LN_TT, r = i % MG_LN_TT, c = c0 + cc, t = t0 + r;
            if (t < T && c < d) xlt[((size_t)b * d + c) * T + t] = from_f32<S>(tile[r][cc]);
        }
        __syncthreads(); /* the tile is read before the next step overwrites it */
    }
}

/* A thread a group of 8: groups [0, rows z/8) make Q and K from P's Zq (its bias bp[0..z)),
 * groups after them apply V = SiLU(V' + bv) in place. */
template <typename S>
__global__ void __launch_bounds__(MG_EW_THREADS)
mg_qkv_act_kernel(const S *__restrict__ p, int np, const float *__restrict__ bp,
               const float *__restrict__ kq, const float *__restrict__ mq,
               const float *__restrict__ kk, const float *__restrict__ mk, long long rows, int z,
               S *__restrict__ q, S *__restrict__ k, S *__restrict__ val, int v,
               const float *__restrict__ bv) {
    const long long nqk = rows * (z / 8), n = nqk + rows * (v / 8);
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        float a[8], bb[8], o[8];
        if (i < nqk) {
            const long long r = i / (z / 8);
            const int j = (int)(i - r * (z / 8)) * 8;
            float aq[8], bq[8], ak[8], bk[8];
            load8(p + r * np + j, a);
            load8(bp + j, bb);
            load8(kq + j, aq);
            load8(mq + j, bq);
            load8(kk + j, ak);
            load8(mk + j, bk);
#pragma unroll
            for (int e = 0; e < 8; e++) {
                const float s = silu(a[e] + bb[e]);
                o[e] = aq[e] * s + bq[e];
                a[e] = ak[e] * s + bk[e];
            }
            store8(q + r * z + j, o);
            store8(k + r * z + j, a);
        } else {
            const long long e8 = i - nqk, r = e8 / (v / 8);
            const int j = (int)(e8 - r * (v / 8)) * 8;
            load8(val + r * v + j, a);
            load8(bv + j, bb);
#pragma unroll
            for (int e = 0; e < 8; e++) o[e] = silu(a[e] + bb[e]);
            store8(val + r * v + j, o);
        }
    }
}

/* M = SiLU(G + bg) . O; G = P[:, z : z + v], bg = bp[z : z + v]. */
template <typename S>
__global__ void __launch_bounds__(MG_EW_THREADS)
mg_gate_o_kernel(const S *__restrict__ o, const S *__restrict__ p, int np, int z, int v,
              const float *__restrict__ bp, long long rows, S *__restrict__ m) {
    const long long n = rows * (v / 8);
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        const long long r = i / (v / 8);
        const int j = (int)(i - r * (v / 8)) * 8;
        float oo[8], gg[8], bb[8];
        load8(o + r * v + j, oo);
        load8(p + r * np + z + j, gg);
        load8(bp + z + j, bb);
#pragma unroll
        for (int e = 0; e < 8; e++) oo[e] *= silu(gg[e] + bb[e]);
        store8(m + r * v + j, oo);
    }
}

/* A block a row: the update gate's residual (phi = sigmoid(F + bf)) and LayerNorm2 of its
 * result; the row kept in fp32 in shared memory (d floats) between the passes.
 * F = P[:, z+v : z+v+d], Hz = P[:, z+v+d : np], their biases bp[z+v ..]. */
template <typename S>
__global__ void __launch_bounds__(MG_ROW_THREADS)
mg_gate_out_ln2_kernel(const S *__restrict__ h, const float *__restrict__ bh, const S *__restrict__ p,
                    const float *__restrict__ bp, int np, int z, int v, const S *__restrict__ x,
                    const float *__restrict__ g2, const float *__restrict__ b2, int d,
                    S *__restrict__ y, S *__restrict__ ln) {
    extern __shared__ float yrow[];
    __shared__ float red[MG_ROW_THREADS / 32];
    const long long r = blockIdx.x;
    const S *f = p + r * np + z + v, *hz = f + d;
    const float *bf = bp + z + v, *bhz = bf + d;
    float s = 0.f;
    for (int j = threadIdx.x * 8; j < d; j += MG_ROW_THREADS * 8) {
        float hh[8], ff[8], zz[8], xx[8], yy[8], pf[8], pz[8], ph[8];
        load8(h + r * d + j, hh);
        load8(f + j, ff);
        load8(hz + j, zz);
        load8(x + r * d + j, xx);
        load8(bf + j, pf);
        load8(bhz + j, pz);
        load8(bh + j, ph);
#pragma unroll
        for (int e = 0; e < 8; e++) {
            const float phi = sigm(ff[e] + pf[e]);
            yy[e] = phi * silu(zz[e] + pz[e] + hh[e] + ph[e]) + (1.f - phi) * xx[e];
            s += yy[e];
            yrow[j + e] = yy[e];
        }
        store8(y + r * d + j, yy);
    }
    const float mean = block_sum<MG_ROW_THREADS>(s, red) / d;
    float q = 0.f;
    for (int j = threadIdx.x * 8; j < d; j += MG_ROW_THREADS * 8)
#pragma unroll
        for (int e = 0; e < 8; e++) q += (yrow[j + e] - mean) * (yrow[j + e] - mean);
    const float rs = rsqrtf(block_sum<MG_ROW_THREADS>(q, red) / d + (float)CHELA_LN_EPS);
    for (int j = threadIdx.x * 8; j < d; j += MG_ROW_THREADS * 8) {
        float o[8], gg[8], bb[8];
        load8(g2 + j, gg);
        load8(b2 + j, bb);
#pragma unroll
        for (int e = 0; e < 8; e++) o[e] = (yrow[j + e] - mean) * rs * gg[e] + bb[e];
        store8(ln + r * d + j, o);
    }
}

} // namespace

#endif
