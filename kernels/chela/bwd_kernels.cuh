/* bwd_kernels.cuh: chela/fused's own backward kernels (bwd.cu launches them), the layer's
 * element-wise and row passes between its GEMMs, the attention's and the long conv's
 * backwards.  Each undoes one forward stage of kernels/chela/stages.cuh, in its notation:
 *
 *   silu_copy_kernel      f = SiLU(f')                 the training forward's ffn1_silu,
 *                                                      out of place (f' kept for SiLU')
 *   silu_bias_kernel      V = SiLU(V' + b_v)           V for the attention's backward (the
 *                                                      forward applied it in registers)
 *   dsilu_kernel          dA *= SiLU'(A' (+ bias))     through a SiLU, in place
 *   gate_bwd_rows         through Y = sg SiLU(hpre) + (1 - sg) X,  sg = sigmoid(Go + b),
 *                         hpre = Hz + b + H' rstd + b_h: dX's residual part, dGo, dHz and
 *                         dH's scaled copy dhs = dhpre rstd (what both Uh products read)
 *   rms_gate_bwd_rows     through M = RMSNorm(O) sigmoid(Ga + b), from o = O sigmoid(Ga + b)
 *                         as the forward stored it: dO (in place over dm), dGa
 *   qk_bwd_kernel         through Q = kq SiLU(Zq + b) + mq, K = kk SiLU(Zq + b) + mk: dZq,
 *                         and per-token terms whose column sums are dmq, dmk, dkq, dkk
 *   dk_slices_kernel      dk3' and dk_m: the merged kernel's gradient's first taps
 *   unrev_transpose_kernel  dU: the long conv's backward leaves it [B,d,T] reversed in time;
 *                         the short conv's backward reads it [B,T,d]
 *   short_conv_bwd_kernel through U = SiLU(k3 * X~): dX~ += , and dk3's partial sums
 *
 * Derivations (M = o rstd, with m~ = o the stored product and dm~ = dhs . Uh^T = rstd dM):
 *   dO_k  = dm~_k s_k - O_k t / (v r^2),   t = sum_k dm~_k m~_k,  O_k = m~_k / s_k,
 *           r^2 = mean(O^2) + eps = 1 / rstd^2
 *   dGa_k = dm~_k m~_k (1 - s_k)
 * (the RMSNorm's Jacobian applied to dM s, written in the stored quantities: see
 * harness/ref_grad_chela.c for the same chain in double).
 *
 * All in fp32 arithmetic on 8-element groups (load8/store8: 16-byte accesses for 16-bit
 * types), rows strided over the grid; fast-divide SiLU and sigmoid as the forward's.  With
 * CHELA_EMULATE the file compiles under tests/emu/ (tests/test_emu_chela_bwd.cpp). */
#ifndef CHELA_CHELA_BWD_KERNELS_CUH
#define CHELA_CHELA_BWD_KERNELS_CUH

#include "common/math.cuh" /* silu, sigm, warp_sum */
#include "dtype_device.cuh"
#include "op_inputs.h" /* CHELA_RMS_EPS */

constexpr int CFB_EW_THREADS = 256;
constexpr int CFB_TR_TILE = 32;      /* unrev_transpose: 32 x 32 tiles, 256 threads      */
constexpr int CFB_SC_THREADS = 128;  /* short_conv_bwd: channels a block                 */

/* internal linkage: each including file has its own copy (as stages.cuh's kernels) */
namespace {

__device__ __forceinline__ float dsilu(float x) { /* d/dx x sigmoid(x) */
    const float s = sigm(x);
    return s + x * s * (1.f - s);
}

template <typename S>
__global__ void silu_copy_kernel(const S *__restrict__ in, S *__restrict__ out, long long n8) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n8;
         i += (long long)gridDim.x * blockDim.x) {
        float f[8];
        load8(in + i * 8, f);
#pragma unroll
        for (int e = 0; e < 8; e++) f[e] = silu(f[e]);
        store8(out + i * 8, f);
    }
}

/* out = SiLU(in + bias[col]), rows of `cols` elements (a multiple of 8). */
template <typename S>
__global__ void silu_bias_kernel(const S *__restrict__ in, const float *__restrict__ bias,
                                 int cols, S *__restrict__ out, long long n8) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n8;
         i += (long long)gridDim.x * blockDim.x) {
        const int c = (int)((i * 8) % cols);
        float f[8], b[8];
        load8(in + i * 8, f);
        load8(bias + c, b);
#pragma unroll
        for (int e = 0; e < 8; e++) f[e] = silu(f[e] + b[e]);
        store8(out + i * 8, f);
    }
}

/* dg *= SiLU'(pre + bias[col]) in place; bias may be NULL. */
template <typename S>
__global__ void dsilu_kernel(S *__restrict__ dg, const S *__restrict__ pre,
                             const float *__restrict__ bias, int cols, long long n8) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n8;
         i += (long long)gridDim.x * blockDim.x) {
        float g[8], a[8], b[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
        load8(dg + i * 8, g);
        load8(pre + i * 8, a);
        if (bias) load8(bias + (int)((i * 8) % cols), b);
#pragma unroll
        for (int e = 0; e < 8; e++) g[e] *= dsilu(a[e] + b[e]);
        store8(dg + i * 8, g);
    }
}

/* 1/rms(O) of row r from the attention's per-slice sums of squares rss[v/64][rows], as the
 * forward's gate_out_ln2 computes it (a warp; every lane gets it). */
__device__ __forceinline__ float cfb_rstd(const float *__restrict__ rss, long long rows,
                                          long long r, int v, int lane) {
    float ss = 0.f;
    for (int sl = lane; sl < v / 64; sl += 32) ss += rss[(long long)sl * rows + r];
    return rsqrtf(warp_sum(ss) / v + (float)CHELA_RMS_EPS);
}

/* A warp a row of d features (d a multiple of 8).  P's columns [Zq (z) | Ga (v) | Go (d) |
 * Hz (d)] with bias bp; h = H' (the Uh product of o); dy = dL/dY. */
template <typename S>
__global__ void __launch_bounds__(CFB_EW_THREADS)
gate_bwd_rows(const S *__restrict__ dy, const S *__restrict__ x, const S *__restrict__ p,
              const float *__restrict__ bp, int np, int z, int v, const S *__restrict__ h,
              const float *__restrict__ bh, const float *__restrict__ rss, int d,
              long long rows, S *__restrict__ dxres, S *__restrict__ dp, S *__restrict__ dhs) {
    const int lane = threadIdx.x & 31, wpb = blockDim.x / 32;
    const float *bgo = bp + z + v, *bhz = bgo + d;
    for (long long r = (long long)blockIdx.x * wpb + threadIdx.x / 32; r < rows;
         r += (long long)gridDim.x * wpb) {
        const float rstd = cfb_rstd(rss, rows, r, v, lane);
        const S *go = p + r * np + z + v, *hz = go + d;
        S *dgo = dp + r * np + z + v, *dhz = dgo + d;
        for (int j = lane * 8; j < d; j += 256) {
            float gy[8], xx[8], gg[8], zz[8], hh[8], pg[8], pz[8], ph[8];
            float o1[8], o2[8], o3[8], o4[8];
            load8(dy + r * d + j, gy);
            load8(x + r * d + j, xx);
            load8(go + j, gg);
            load8(hz + j, zz);
            load8(h + r * d + j, hh);
            load8(bgo + j, pg);
            load8(bhz + j, pz);
            load8(bh + j, ph);
#pragma unroll
            for (int e = 0; e < 8; e++) {
                const float sg = sigm(gg[e] + pg[e]);
                const float hpre = zz[e] + pz[e] + rstd * hh[e] + ph[e];
                const float dhpre = gy[e] * sg * dsilu(hpre);
                o1[e] = gy[e] * (1.f - sg);                           /* dX, residual part */
                o2[e] = gy[e] * (silu(hpre) - xx[e]) * sg * (1.f - sg); /* dGo            */
                o3[e] = dhpre;                                        /* dHz (and db_h)    */
                o4[e] = dhpre * rstd;                                 /* dhs               */
            }
            store8(dxres + r * d + j, o1);
            store8(dgo + j, o2);
            store8(dhz + j, o3);
            store8(dhs + r * d + j, o4);
        }
    }
}

/* A warp a row of v values: dm (in: dm~ = dhs . Uh^T; out: dO), o = O sigmoid(Ga + ba) as
 * stored by the forward, Ga at P's columns z.. with bias bp + z; dGa into dp's. */
template <typename S>
__global__ void __launch_bounds__(CFB_EW_THREADS)
rms_gate_bwd_rows(S *__restrict__ dm, const S *__restrict__ o, const S *__restrict__ p,
                  const float *__restrict__ bp, int np, int z, int v,
                  const float *__restrict__ rss, long long rows, S *__restrict__ dp) {
    const int lane = threadIdx.x & 31, wpb = blockDim.x / 32;
    for (long long r = (long long)blockIdx.x * wpb + threadIdx.x / 32; r < rows;
         r += (long long)gridDim.x * wpb) {
        const float rstd = cfb_rstd(rss, rows, r, v, lane);
        float t = 0.f;
        for (int j = lane * 8; j < v; j += 256) {
            float a[8], b[8];
            load8(dm + r * v + j, a);
            load8(o + r * v + j, b);
#pragma unroll
            for (int e = 0; e < 8; e++) t += a[e] * b[e];
        }
        const float c = warp_sum(t) * rstd * rstd / v; /* t / (v r^2) */
        const S *ga = p + r * np + z;
        for (int j = lane * 8; j < v; j += 256) {
            float a[8], b[8], g[8], bb[8], dO[8], dga[8];
            load8(dm + r * v + j, a);
            load8(o + r * v + j, b);
            load8(ga + j, g);
            load8(bp + z + j, bb);
#pragma unroll
            for (int e = 0; e < 8; e++) {
                const float s = sigm(g[e] + bb[e]);
                const float O = s > 0.f ? b[e] / s : 0.f;
                dO[e] = a[e] * s - O * c;
                dga[e] = a[e] * b[e] * (1.f - s);
            }
            store8(dm + r * v + j, dO);
            store8(dp + r * np + z + j, dga);
        }
    }
}

/* A thread an 8-group of a row's z columns: dZq into dp's first z columns; part4 (fp32,
 * [rows][4z]) = [dQ | dK | dQ zq | dK zq], whose column sums are dmq, dmk, dkq, dkk. */
template <typename S>
__global__ void qk_bwd_kernel(const S *__restrict__ dq, const S *__restrict__ dk,
                              const S *__restrict__ p, const float *__restrict__ bp, int np,
                              const float *__restrict__ kq, const float *__restrict__ kk, int z,
                              long long rows, S *__restrict__ dp, float *__restrict__ part4) {
    const int zg = z / 8;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < rows * zg;
         i += (long long)gridDim.x * blockDim.x) {
        const long long r = i / zg;
        const int j = (int)(i % zg) * 8;
        float a[8], b[8], pz[8], bz[8], q8[8], k8[8], out[8];
        load8(dq + r * z + j, a);
        load8(dk + r * z + j, b);
        load8(p + r * np + j, pz);
        load8(bp + j, bz);
        load8(kq + j, q8);
        load8(kk + j, k8);
        float *w = part4 + r * 4 * z;
#pragma unroll
        for (int e = 0; e < 8; e++) {
            const float pre = pz[e] + bz[e], zq = silu(pre);
            out[e] = (q8[e] * a[e] + k8[e] * b[e]) * dsilu(pre);
            w[j + e] = a[e];
            w[z + j + e] = b[e];
            w[2 * z + j + e] = a[e] * zq;
            w[3 * z + j + e] = b[e] * zq;
        }
        store8(dp + r * np + j, out);
    }
}

/* dk3'[c][j] = dKc[c][j] (j < 3), dk_m[c][j] = dKc[c][j] (j < km): a thread a (c, j < km). */
__global__ void dk_slices_kernel(const float *__restrict__ dkc, int T, int d, int km,
                                 float *__restrict__ dk3b, float *__restrict__ dkm) {
    const int w = km > 3 ? km : 3;
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)d * w) return;
    const int c = (int)(i / w), j = (int)(i % w);
    const float g = j < T ? dkc[(size_t)c * T + j] : 0.f;
    if (j < 3) dk3b[c * 3 + j] = g;
    if (j < km) dkm[(size_t)c * km + j] = g;
}

/* out[b][t][c] = rev[b][c][T-1-t]: 32 x 32 tiles of (channels, tokens) through shared memory
 * (a 33-float row pitch: the column reads do not conflict), 256 threads, a block a tile,
 * blockIdx.x = ((b * ct) + ci) * tt + ti. */
template <typename S>
__global__ void __launch_bounds__(256)
unrev_transpose_kernel(const S *__restrict__ rev, int d, int T, S *__restrict__ out) {
    __shared__ float tile[CFB_TR_TILE][CFB_TR_TILE + 1];
    const int ct = (d + CFB_TR_TILE - 1) / CFB_TR_TILE, tt = (T + CFB_TR_TILE - 1) / CFB_TR_TILE;
    const long long bid = blockIdx.x;
    const int ti = (int)(bid % tt), ci = (int)((bid / tt) % ct), b = (int)(bid / tt / ct);
    const int lx = threadIdx.x & 31, ly = threadIdx.x >> 5;
    const int c0 = ci * CFB_TR_TILE, t0 = ti * CFB_TR_TILE;
    for (int k = ly; k < CFB_TR_TILE; k += 8) { /* row c0 + k, token t0 + lx */
        const int c = c0 + k, t = t0 + lx;
        tile[k][lx] = (c < d && t < T) ? to_f32(rev[((size_t)b * d + c) * T + (T - 1 - t)]) : 0.f;
    }
    __syncthreads();
    for (int k = ly; k < CFB_TR_TILE; k += 8) { /* token t0 + k, channel c0 + lx */
        const int t = t0 + k, c = c0 + lx;
        if (c < d && t < T) out[((size_t)b * T + t) * d + c] = from_f32<S>(tile[lx][k]);
    }
}

/* The short conv's backward, pre[t] = k0 x~[t] + k1 x~[t-1] + k2 x~[t-2] (zeros before t = 0),
 * U = SiLU(pre):  dpre = dU SiLU'(pre);  dX~[t] += k0 dpre[t] + k1 dpre[t+1] + k2 dpre[t+2];
 * dk3[c][j] = sum over b, t of x~[t-j] dpre[t].  A thread a channel, walking the tokens of one
 * chunk of one batch row (blockIdx.y = b * chunks + chunk) with a sliding window of x~ and
 * dpre in registers; reads and writes [B,T,d] rows (consecutive threads, consecutive
 * channels).  part[blockIdx.y][c*3 + j] gets the chunk's dk3 sums (sum_chunks adds them). */
template <typename S>
__global__ void __launch_bounds__(CFB_SC_THREADS)
short_conv_bwd_kernel(const S *__restrict__ xln, const S *__restrict__ dut,
                      const float *__restrict__ k3, int T, int d, int chunk,
                      S *__restrict__ dxln, float *__restrict__ part) {
    const int c = blockIdx.x * CFB_SC_THREADS + threadIdx.x;
    if (c >= d) return;
    const int chunks = (T + chunk - 1) / chunk;
    const int b = blockIdx.y / chunks, t0 = (blockIdx.y % chunks) * chunk;
    const int t1 = t0 + chunk < T ? t0 + chunk : T;
    const size_t base = (size_t)b * T * d + c;
    const float k0 = k3[3 * c], k1 = k3[3 * c + 1], k2 = k3[3 * c + 2];
#define CFB_X(t) ((t) >= 0 && (t) < T ? to_f32(xln[base + (size_t)(t) * d]) : 0.f)
#define CFB_DU(t) ((t) < T ? to_f32(dut[base + (size_t)(t) * d]) : 0.f)
    float xm2 = CFB_X(t0 - 2), xm1 = CFB_X(t0 - 1), x0 = CFB_X(t0), x1 = CFB_X(t0 + 1);
    float dp0 = CFB_DU(t0) * dsilu(k0 * x0 + k1 * xm1 + k2 * xm2);
    float dp1 = t0 + 1 < T ? CFB_DU(t0 + 1) * dsilu(k0 * x1 + k1 * x0 + k2 * xm1) : 0.f;
    float g0 = 0.f, g1 = 0.f, g2 = 0.f;
    for (int t = t0; t < t1; t++) {
        const float x2 = CFB_X(t + 2);
        const float dp2 = t + 2 < T ? CFB_DU(t + 2) * dsilu(k0 * x2 + k1 * x1 + k2 * x0) : 0.f;
        const size_t at = base + (size_t)t * d;
        dxln[at] = from_f32<S>(to_f32(dxln[at]) + k0 * dp0 + k1 * dp1 + k2 * dp2);
        g0 += x0 * dp0;
        g1 += xm1 * dp0;
        g2 += xm2 * dp0;
        xm2 = xm1;
        xm1 = x0;
        x0 = x1;
        x1 = x2;
        dp0 = dp1;
        dp1 = dp2;
    }
#undef CFB_X
#undef CFB_DU
    float *w = part + (size_t)blockIdx.y * 3 * d + (size_t)c * 3;
    w[0] = g0;
    w[1] = g1;
    w[2] = g2;
}

} // namespace

#endif
