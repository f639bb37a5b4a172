/* long_conv_tc: the FFT path of long_conv/fast for bf16 / fp16 runs, its radix-16 stages done as
 * 16x16 complex matrix products on tensor cores (FlashFFTConv's idea) instead of CUDA-core
 * butterflies.  Same algorithm, plan, spectrum and position order as the fp32 kernel of
 * kernels/long_conv_fast.cu (read its header first); what differs is how a block transforms
 * its M points in shared memory.
 *
 * Why: Nsight Compute on the fp32 kernel (profiles/NOTES.md, session 5) showed it
 * instruction-bound at T = 4k (~227 thread instructions a complex point, 63 % issue) and
 * latency-bound from 8k (one 139 KiB block an SM).  A radix-16 stage costs it ~35 instructions
 * a point, two thirds of them the butterflies; on tensor cores the butterflies cost ~1.
 *
 * ---- layout ----------------------------------------------------------------------------------
 * The block's M points live in shared memory as fp16, real and imaginary parts in two planes of
 * M halves (4 bytes a point: T = 8k needs 64 KiB instead of 139, so two blocks fit an SM).
 * Index p is stored at swz(p): the 16-byte chunk (8 halves) index is XORed with three bits
 * folded from p's higher bits, so eight rows of any power-of-two stride >= 8 halves fall into
 * eight different chunks of a 128-byte line: every ldmatrix / stmatrix below is conflict-free.
 *
 * ---- a radix-16 stage of span s (s = S/16, ..., 16) as a matrix product --------------------
 * Points p = base + n s + j (n = 0..15 rows, j = 16 consecutive columns) form a 16x16 complex
 * tile X; one warp computes Y = F X with F[i][n] = W16^(i n) / 4 in the real form
 *     [Yr]   [Fr -Fi] [Xr]
 *     [Yi] = [Fi  Fr] [Xi]      (inverse: F* = Fr - i Fi),
 * i.e. 8 mma.m16n8k16 (fp16 in, fp32 out) for 256 points.  X arrives by ldmatrix.trans as the B
 * operand, Y leaves the accumulators through a twiddle multiply in fp32 and stmatrix, in place
 * (output i at the position of input i, as the fp32 kernel).  Forward stages apply their own
 * decimation-in-frequency twiddle W_(16s)^(i j); an inverse stage applies, at its outputs, the
 * conjugate twiddle the NEXT inverse stage needs at its inputs, so every stage ends the same way.
 * The 1/4 per stage keeps fp16 magnitudes where they were (the stages are unitary); the
 * spectrum is scaled by 16^q to undo the 2q quarters.
 *
 * ---- the span-1 stage, the product and the first inverse stage -------------------------------
 * One step on 256 contiguous points: rows = 16 groups of 16 points, taken by ldmatrix as the A
 * operand, Y^T = X^T F (F symmetric, so its B fragments are its A fragments), times the
 * spectrum (fp32, loaded in the accumulator layout), packed straight into A fragments (the
 * accumulator -> operand trick of flash attention), Z^T = Y^T F*, twiddled for the span-16
 * inverse stage, stored.  No shared-memory round trip between the two transforms.
 *
 * ---- the radix R0 = M / 16^q and the cluster digit -------------------------------------------
 * P = 1: the R0-point stage (R0 = 1, 2, 4, 8) is done on load, in registers, where half of its
 * inputs are the zero padding, and its inverse on store, where half of its outputs are dropped.
 * P > 1: the load does the cluster's P-point DFT (as the fp32 kernel), and the R0 stage runs as
 * its own CUDA-core pass over shared memory.
 *
 * Version index: v5 of long_conv/fast (the ladder is in kernels/long_conv_fast.cu).
 */
#include <cooperative_groups.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "bench_check.h"
#include "dtype_device.cuh"
#include "fft_radix.cuh"
#include "long_conv_tc.h"
#include "mma_sync.cuh"

namespace cg = cooperative_groups;

#define LCT_THREADS 256
#define LCT_MIN_M 256 /* one 16x16 tile */

namespace {

struct lct_params {
    const void *x;
    void *y;
    const float *pre3;
    const float2 *spec;
    const float2 *tw;
    int B, d, T, npairs;
    int N, lg_n, M, log_s, r0, rows, n_hi;
    float spec_scale; /* 16^q */
};

/* p -> its half index in a plane (see the header) */
__device__ __forceinline__ int swz(int p) {
    return p ^ ((((p >> 6) ^ (p >> 9) ^ (p >> 12)) & 7) << 3);
}

__device__ __forceinline__ uint32_t pack_h2(float lo, float hi) {
    __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&h);
}

__device__ __forceinline__ void stsm_x4(uint32_t addr, const uint32_t r[4]) {
    asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};\n"
                 :
                 : "r"(addr), "r"(r[0]), "r"(r[1]), "r"(r[2]), "r"(r[3])
                 : "memory");
}

__device__ __forceinline__ void mma16(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    mma_16816<false>(d, a, b0, b1);
}

/* F = W16^(i n) / 4 as A fragments (rows i, columns n): real part, imaginary part, minus the
 * imaginary part.  F is symmetric, so its B fragment for output columns 0-7 is {a[0], a[2]} and
 * for columns 8-15 {a[1], a[3]}. */
struct dft16_frags {
    uint32_t fr[4], fi[4], nfi[4];
};

__device__ __forceinline__ void make_dft16(dft16_frags &F) {
    const int lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
#pragma unroll
    for (int r = 0; r < 4; r++) {
        const int row = g + 8 * (r & 1), col = 2 * q + 8 * (r >> 1);
        const int e0 = (row * col) & 15, e1 = (row * (col + 1)) & 15;
        const float c0 = 0.25f * k16cos(e0), c1 = 0.25f * k16cos(e1);
        const float s0 = 0.25f * k16sin(e0), s1 = 0.25f * k16sin(e1);
        F.fr[r] = pack_h2(c0, c1);
        F.fi[r] = pack_h2(-s0, -s1);
        F.nfi[r] = pack_h2(s0, s1);
    }
}

/* (cr, ci) *= w or conj(w) */
template <bool CONJ> __device__ __forceinline__ void twiddle_acc(float &cr, float &ci, float2 w) {
    if (CONJ) w.y = -w.y;
    const float r = fmaf(cr, w.x, -ci * w.y);
    ci = fmaf(cr, w.y, ci * w.x);
    cr = r;
}

/* Accumulator element k (0..3) of n-tile nt of a 16x16 tile: row g + 8 (k >> 1), column
 * nt 8 + 2 q + (k & 1). */
__device__ __forceinline__ int acc_row(int k) { return ((threadIdx.x & 31) >> 2) + 8 * (k >> 1); }
__device__ __forceinline__ int acc_col(int nt, int k) {
    return nt * 8 + 2 * (threadIdx.x & 3) + (k & 1);
}

/* The lane's row / column in an x4 ldmatrix or stmatrix of a 16x16 tile: matrices (rows 0-7,
 * cols 0-7), (8-15, 0-7), (0-7, 8-15), (8-15, 8-15). */
__device__ __forceinline__ int ldm_row() { return (threadIdx.x & 7) + (threadIdx.x & 8); }
__device__ __forceinline__ int ldm_col() { return ((threadIdx.x & 31) >> 4) << 3; }

/* accumulators -> fp16 pairs in stmatrix / A-fragment order */
__device__ __forceinline__ void pack_tile(uint32_t u[4], const float c[2][4]) {
    u[0] = pack_h2(c[0][0], c[0][1]);
    u[1] = pack_h2(c[0][2], c[0][3]);
    u[2] = pack_h2(c[1][0], c[1][1]);
    u[3] = pack_h2(c[1][2], c[1][3]);
}

/* One radix-16 stage of span s = 2^ls >= 16 over the block's M points (see the header).
 * Forward: own twiddle W_(16s)^(i j); inverse: conj of the span-16s stage's twiddle if that
 * stage exists (16 s < S).  t16: this thread's W_256^(i j) for the span-16 forward stage. */
template <bool INV>
__device__ __forceinline__ void tc_stage(uint32_t re_s, uint32_t im_s, const lct_params &prm,
                                         int ls, const dft16_frags &F, const float2 *tw_hi,
                                         const float2 *tw_lo, const float2 (&t16)[2][4]) {
    const uint32_t *a_rr = F.fr, *a_ri = INV ? F.fi : F.nfi, *a_ir = INV ? F.nfi : F.fi;
    const int cpb_log = ls - 4; /* 16-column groups in a block of 16 s points */
    const int lr = ldm_row(), lc = ldm_col();
    const bool next_tw = INV && ls + 4 < prm.log_s;
    for (int tau = threadIdx.x >> 5; tau < (prm.M >> 8); tau += LCT_THREADS / 32) {
        const int blk = tau >> cpb_log, j0 = (tau & ((1 << cpb_log) - 1)) << 4;
        const int base = (blk << (ls + 4)) + j0;
        const uint32_t off = (uint32_t)swz(base + (lr << ls) + lc) * 2u;
        uint32_t br[4], bi[4];
        ldsm_x4_trans(br, re_s + off);
        ldsm_x4_trans(bi, im_s + off);
        float cr[2][4], ci[2][4];
#pragma unroll
        for (int nt = 0; nt < 2; nt++) {
#pragma unroll
            for (int k = 0; k < 4; k++) cr[nt][k] = ci[nt][k] = 0.0f;
            mma16(cr[nt], a_rr, br[2 * nt], br[2 * nt + 1]);
            mma16(cr[nt], a_ri, bi[2 * nt], bi[2 * nt + 1]);
            mma16(ci[nt], a_ir, br[2 * nt], br[2 * nt + 1]);
            mma16(ci[nt], a_rr, bi[2 * nt], bi[2 * nt + 1]);
        }
        if (!INV || next_tw) {
#pragma unroll
            for (int nt = 0; nt < 2; nt++) {
#pragma unroll
                for (int k = 0; k < 4; k++) {
                    const int i = acc_row(k), j = j0 + acc_col(nt, k);
                    if (!INV) {
                        const float2 w = ls == 4 ? t16[nt][k]
                                                 : twid(tw_hi, tw_lo, (i * j) << (prm.lg_n - ls - 4));
                        twiddle_acc<false>(cr[nt][k], ci[nt][k], w);
                    } else {
                        const int e = (blk & 15) * ((i << ls) + j) << (prm.lg_n - ls - 8);
                        twiddle_acc<true>(cr[nt][k], ci[nt][k], twid(tw_hi, tw_lo, e));
                    }
                }
            }
        }
        uint32_t u[4];
        pack_tile(u, cr);
        stsm_x4(re_s + off, u);
        pack_tile(u, ci);
        stsm_x4(im_s + off, u);
    }
}

/* The span-1 forward stage, the product with the spectrum, the span-1 inverse stage and the
 * span-16 inverse stage's twiddle, on tiles of 16 groups x 16 points (see the header).
 * spec: this block's spectrum row; mirror: K(p) = conj(row[M-1-p]) (cluster ranks > P/2). */
__device__ __forceinline__ void tc_middle(uint32_t re_s, uint32_t im_s, const lct_params &prm,
                                          const dft16_frags &F, const float4 *spec, bool mirror,
                                          const float2 (&t16)[2][4]) {
    const int lr = ldm_row(), lc = ldm_col();
    const int M = prm.M;
    const float sc = prm.spec_scale;
    for (int tau = threadIdx.x >> 5; tau < (M >> 8); tau += LCT_THREADS / 32) {
        const int base = tau << 8;
        const uint32_t off = (uint32_t)swz(base + lr * 16 + lc) * 2u;
        uint32_t xr[4], xi[4];
        ldsm_x4(xr, re_s + off);
        ldsm_x4(xi, im_s + off);
        float yr[2][4], yi[2][4];
#pragma unroll
        for (int nt = 0; nt < 2; nt++) {
            const int b0 = nt, b1 = nt + 2; /* F's B fragment for these 8 columns */
#pragma unroll
            for (int k = 0; k < 4; k++) yr[nt][k] = yi[nt][k] = 0.0f;
            mma16(yr[nt], xr, F.fr[b0], F.fr[b1]);
            mma16(yr[nt], xi, F.nfi[b0], F.nfi[b1]);
            mma16(yi[nt], xr, F.fi[b0], F.fi[b1]);
            mma16(yi[nt], xi, F.fr[b0], F.fr[b1]);
        }
        /* times the spectrum at p = base + 16 row + col; elements k, k+1 are p, p+1 */
#pragma unroll
        for (int nt = 0; nt < 2; nt++) {
#pragma unroll
            for (int k = 0; k < 4; k += 2) {
                const int p = base + 16 * acc_row(k) + acc_col(nt, k);
                float2 k0, k1;
                if (mirror) {
                    const float4 v = __ldg(spec + ((M - 2 - p) >> 1));
                    k0 = make_float2(v.z * sc, -v.w * sc);
                    k1 = make_float2(v.x * sc, -v.y * sc);
                } else {
                    const float4 v = __ldg(spec + (p >> 1));
                    k0 = make_float2(v.x * sc, v.y * sc);
                    k1 = make_float2(v.z * sc, v.w * sc);
                }
                twiddle_acc<false>(yr[nt][k], yi[nt][k], k0);
                twiddle_acc<false>(yr[nt][k + 1], yi[nt][k + 1], k1);
            }
        }
        uint32_t zr[4], zi[4];
        pack_tile(zr, yr);
        pack_tile(zi, yi);
        float or_[2][4], oi[2][4];
#pragma unroll
        for (int nt = 0; nt < 2; nt++) {
            const int b0 = nt, b1 = nt + 2;
#pragma unroll
            for (int k = 0; k < 4; k++) or_[nt][k] = oi[nt][k] = 0.0f;
            mma16(or_[nt], zr, F.fr[b0], F.fr[b1]);
            mma16(or_[nt], zi, F.fi[b0], F.fi[b1]);
            mma16(oi[nt], zr, F.nfi[b0], F.nfi[b1]);
            mma16(oi[nt], zi, F.fr[b0], F.fr[b1]);
#pragma unroll
            for (int k = 0; k < 4; k++) twiddle_acc<true>(or_[nt][k], oi[nt][k], t16[nt][k]);
        }
        uint32_t u[4];
        pack_tile(u, or_);
        stsm_x4(re_s + off, u);
        pack_tile(u, oi);
        stsm_x4(im_s + off, u);
    }
}

/* The in-block R-point stage of span S = M / R for P > 1 (CUDA cores, two points a thread):
 * forward DFT then W_M^(k n2); inverse conj twiddle then inverse DFT (unscaled both ways). */
template <int R, bool INV>
__device__ __forceinline__ void r0_pass(__half *re, __half *im, const lct_params &prm, int P,
                                        const float2 *tw_hi, const float2 *tw_lo) {
    const int S = prm.M / R;
    for (int n2 = 2 * threadIdx.x; n2 < S; n2 += 2 * LCT_THREADS) {
        float2 a0[R], a1[R];
#pragma unroll
        for (int k = 0; k < R; k++) {
            const int o = swz(k * S + n2);
            const float2 r = __half22float2(*reinterpret_cast<const __half2 *>(re + o));
            const float2 i = __half22float2(*reinterpret_cast<const __half2 *>(im + o));
            a0[k] = make_float2(r.x, i.x);
            a1[k] = make_float2(r.y, i.y);
        }
        if (INV) {
#pragma unroll
            for (int k = 1; k < R; k++) {
                a0[k] = cmul(a0[k], conjf2(twid(tw_hi, tw_lo, k * n2 * P)));
                a1[k] = cmul(a1[k], conjf2(twid(tw_hi, tw_lo, k * (n2 + 1) * P)));
            }
        }
        dft<R, INV>(a0);
        dft<R, INV>(a1);
        if (!INV) {
#pragma unroll
            for (int k = 1; k < R; k++) {
                a0[k] = cmul(a0[k], twid(tw_hi, tw_lo, k * n2 * P));
                a1[k] = cmul(a1[k], twid(tw_hi, tw_lo, k * (n2 + 1) * P));
            }
        }
#pragma unroll
        for (int k = 0; k < R; k++) {
            const int o = swz(k * S + n2);
            *reinterpret_cast<__half2 *>(re + o) = __floats2half2_rn(a0[k].x, a1[k].x);
            *reinterpret_cast<__half2 *>(im + o) = __floats2half2_rn(a0[k].y, a1[k].y);
        }
    }
}

template <bool INV>
__device__ __forceinline__ void r0_pass_any(__half *re, __half *im, const lct_params &prm, int P,
                                            const float2 *tw_hi, const float2 *tw_lo) {
    switch (prm.r0) {
    case 2: r0_pass<2, INV>(re, im, prm, P, tw_hi, tw_lo); break;
    case 4: r0_pass<4, INV>(re, im, prm, P, tw_hi, tw_lo); break;
    case 8: r0_pass<8, INV>(re, im, prm, P, tw_hi, tw_lo); break;
    default: break;
    }
}

__device__ __forceinline__ float silu(float v) { return v / (1.0f + __expf(-v)); }

/* x[t], x[t+1] of one row, 0 outside [0, T); t even.  Rows start 4-byte aligned iff T is even. */
template <typename Tx>
__device__ __forceinline__ float2 load_x2(const Tx *__restrict__ xr, int t, int T) {
    if (t >= 0 && t + 1 < T && !(T & 1)) {
        if (sizeof(Tx) == 2) {
            const uint32_t w = __ldg(reinterpret_cast<const unsigned int *>(xr + t));
            Tx lo, hi;
            const unsigned short l16 = (unsigned short)(w & 0xffffu), h16 = (unsigned short)(w >> 16);
            memcpy(&lo, &l16, 2);
            memcpy(&hi, &h16, 2);
            return make_float2(to_f32(lo), to_f32(hi));
        }
    }
    return make_float2(t >= 0 && t < T ? to_f32(xr[t]) : 0.0f,
                       t + 1 >= 0 && t + 1 < T ? to_f32(xr[t + 1]) : 0.0f);
}

/* u[t], u[t+1] of one row (t even): x, or SiLU of the short conv pre3 over x (zero past T). */
template <typename Tx>
__device__ __forceinline__ float2 load_u2(const Tx *__restrict__ xr, int t, int T, bool has_pre,
                                          float p0, float p1, float p2) {
    if (t >= T) return make_float2(0.0f, 0.0f);
    const float2 x0 = load_x2(xr, t, T);
    if (!has_pre) return x0;
    const float2 xm = load_x2(xr, t - 2, T);
    const float u0 = silu(fmaf(p0, x0.x, fmaf(p1, xm.y, p2 * xm.x)));
    const float u1 = t + 1 < T ? silu(fmaf(p0, x0.y, fmaf(p1, x0.x, p2 * xm.y))) : 0.0f;
    return make_float2(u0, u1);
}

template <typename Tx> __device__ __forceinline__ void store_y2(Tx *yr, int t, int T, float a, float b) {
    if (t + 1 < T && !(T & 1) && sizeof(Tx) == 2) {
        const Tx lo = from_f32<Tx>(a), hi = from_f32<Tx>(b);
        unsigned short l16, h16;
        memcpy(&l16, &lo, 2);
        memcpy(&h16, &hi, 2);
        *reinterpret_cast<unsigned int *>(yr + t) = (unsigned int)l16 | ((unsigned int)h16 << 16);
        return;
    }
    yr[t] = from_f32<Tx>(a);
    if (t + 1 < T) yr[t + 1] = from_f32<Tx>(b);
}

/* One cluster of P blocks per (channel, batch pair), blockIdx.x = (c npairs + pair) P + rank.
 * Q = P R0F: the radix done on load and store (R0F: the R0 stage fused there, P = 1 only). */
template <int P, int R0F, typename Tx>
__global__ void __launch_bounds__(LCT_THREADS, 2) lct_kernel(const lct_params prm) {
    constexpr int Q = P * R0F;
    constexpr int QH = Q == 1 ? 1 : Q / 2; /* input digits that can be nonzero (zero padding) */
    extern __shared__ float4 lct_smem[];
    const int M = prm.M;
    __half *re = reinterpret_cast<__half *>(lct_smem);
    __half *im = re + M;
    float2 *tw_hi = reinterpret_cast<float2 *>(im + M);
    float2 *tw_lo = tw_hi + prm.n_hi;
    const uint32_t re_s = smem_u32(re), im_s = smem_u32(im);
    const int tid = threadIdx.x;

    for (int i = tid; i < prm.n_hi + FFT_TW_LO; i += LCT_THREADS) tw_hi[i] = prm.tw[i];

    const int cid = blockIdx.x / P;
    const int rank = P > 1 ? (int)(blockIdx.x % P) : 0;
    const int pair = cid % prm.npairs, c = cid / prm.npairs;
    const int b0 = 2 * pair, b1 = 2 * pair + 1;
    const int T = prm.T, N = prm.N;
    const bool has1 = b1 < prm.B;
    const Tx *x0r = reinterpret_cast<const Tx *>(prm.x) + ((size_t)b0 * prm.d + c) * T;
    const Tx *x1r = reinterpret_cast<const Tx *>(prm.x) + ((size_t)(has1 ? b1 : b0) * prm.d + c) * T;
    const bool has_pre = prm.pre3 != nullptr;
    float p0 = 0.f, p1 = 0.f, p2 = 0.f;
    if (has_pre) {
        p0 = __ldg(prm.pre3 + 3 * c);
        p1 = __ldg(prm.pre3 + 3 * c + 1);
        p2 = __ldg(prm.pre3 + 3 * c + 2);
    }
    cg::cluster_group cluster = cg::this_cluster();
    if (P > 1) cluster.sync();
    else __syncthreads();

    /* ---- load: u, the Q-point DFT over the top digit, its twiddle, scatter ---- */
    const int SL = N / Q; /* points of one digit: P > 1: M; P = 1: S */
    {
        const int slice = SL / P, lo = rank * slice, hi = lo + slice;
        for (int n2 = lo + 2 * tid; n2 < hi; n2 += 2 * LCT_THREADS) {
            float2 a0[QH], a1[QH]; /* points n2, n2 + 1; x = batch row b0, y = row b1 */
#pragma unroll
            for (int n1 = 0; n1 < QH; n1++) {
                const int t = n1 * SL + n2;
                const float2 u0 = load_u2(x0r, t, T, has_pre, p0, p1, p2);
                const float2 u1 = has1 ? load_u2(x1r, t, T, has_pre, p0, p1, p2) : make_float2(0.f, 0.f);
                a0[n1] = make_float2(u0.x, u1.x);
                a1[n1] = make_float2(u0.y, u1.y);
            }
#pragma unroll
            for (int k1 = 0; k1 < Q; k1++) {
                float2 v0 = a0[0], v1 = a1[0];
#pragma unroll
                for (int n1 = 1; n1 < QH; n1++) {
                    v0 = cadd(v0, wmul16<false>(a0[n1], (n1 * k1 * (16 / Q)) & 15));
                    v1 = cadd(v1, wmul16<false>(a1[n1], (n1 * k1 * (16 / Q)) & 15));
                }
                if (k1) {
                    v0 = cmul(v0, twid(tw_hi, tw_lo, k1 * n2));
                    v1 = cmul(v1, twid(tw_hi, tw_lo, k1 * (n2 + 1)));
                }
                const int o = swz((k1 / P) * SL + n2);
                __half *dre = P > 1 ? cluster.map_shared_rank(re, k1 % P) : re;
                __half *dim = P > 1 ? cluster.map_shared_rank(im, k1 % P) : im;
                *reinterpret_cast<__half2 *>(dre + o) = __floats2half2_rn(v0.x, v1.x);
                *reinterpret_cast<__half2 *>(dim + o) = __floats2half2_rn(v0.y, v1.y);
            }
        }
    }
    if (P > 1) cluster.sync();
    else __syncthreads();

    if (P > 1 && prm.r0 > 1) {
        r0_pass_any<false>(re, im, prm, P, tw_hi, tw_lo);
        __syncthreads();
    }

    /* ---- tensor-core stages ---- */
    dft16_frags F;
    make_dft16(F);
    float2 t16[2][4]; /* W_256^(i j) at this thread's accumulator positions */
#pragma unroll
    for (int nt = 0; nt < 2; nt++)
#pragma unroll
        for (int k = 0; k < 4; k++)
            t16[nt][k] = twid(tw_hi, tw_lo, (acc_row(k) * acc_col(nt, k)) << (prm.lg_n - 8));

    for (int ls = prm.log_s - 4; ls >= 4; ls -= 4) {
        tc_stage<false>(re_s, im_s, prm, ls, F, tw_hi, tw_lo, t16);
        __syncthreads();
    }
    {
        const bool mirror = P > 1 && rank > P / 2;
        const int row = mirror ? P - rank : rank;
        const float4 *spec =
            reinterpret_cast<const float4 *>(prm.spec + ((size_t)c * prm.rows + row) * M);
        tc_middle(re_s, im_s, prm, F, spec, mirror, t16);
        __syncthreads();
    }
    for (int ls = 4; ls <= prm.log_s - 4; ls += 4) {
        tc_stage<true>(re_s, im_s, prm, ls, F, tw_hi, tw_lo, t16);
        __syncthreads();
    }
    if (P > 1 && prm.r0 > 1) r0_pass_any<true>(re, im, prm, P, tw_hi, tw_lo);
    if (P > 1) cluster.sync();
    else __syncthreads();

    /* ---- store: gather the Q digits, conj twiddle, inverse Q-point DFT, truncate ---- */
    Tx *y0r = reinterpret_cast<Tx *>(prm.y) + ((size_t)b0 * prm.d + c) * T;
    Tx *y1r = reinterpret_cast<Tx *>(prm.y) + ((size_t)(has1 ? b1 : b0) * prm.d + c) * T;
    {
        const int slice = SL / P, lo = rank * slice, hi = lo + slice;
        for (int n2 = lo + 2 * tid; n2 < hi && n2 < T; n2 += 2 * LCT_THREADS) {
            float2 v0[Q], v1[Q];
#pragma unroll
            for (int k1 = 0; k1 < Q; k1++) {
                const int o = swz((k1 / P) * SL + n2);
                const __half *sre = P > 1 ? cluster.map_shared_rank(re, k1 % P) : re;
                const __half *sim = P > 1 ? cluster.map_shared_rank(im, k1 % P) : im;
                const float2 r = __half22float2(*reinterpret_cast<const __half2 *>(sre + o));
                const float2 i = __half22float2(*reinterpret_cast<const __half2 *>(sim + o));
                v0[k1] = make_float2(r.x, i.x);
                v1[k1] = make_float2(r.y, i.y);
            }
#pragma unroll
            for (int k1 = 1; k1 < Q; k1++) {
                v0[k1] = cmul(v0[k1], conjf2(twid(tw_hi, tw_lo, k1 * n2)));
                v1[k1] = cmul(v1[k1], conjf2(twid(tw_hi, tw_lo, k1 * (n2 + 1))));
            }
#pragma unroll
            for (int n1 = 0; n1 < QH; n1++) {
                const int t = n1 * SL + n2;
                if (t >= T) break;
                float2 o0 = v0[0], o1 = v1[0];
#pragma unroll
                for (int k1 = 1; k1 < Q; k1++) {
                    o0 = cadd(o0, wmul16<true>(v0[k1], (n1 * k1 * (16 / Q)) & 15));
                    o1 = cadd(o1, wmul16<true>(v1[k1], (n1 * k1 * (16 / Q)) & 15));
                }
                store_y2(y0r, t, T, o0.x, o1.x);
                if (has1) store_y2(y1r, t, T, o0.y, o1.y);
            }
        }
    }
    if (P > 1) cluster.sync(); /* no block leaves while others read its shared memory */
}

template <int P, int R0F, typename Tx>
static int lct_launch(const lct_params &prm, unsigned nblocks, size_t smem, cudaStream_t stream) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(nblocks, 1, 1);
    cfg.blockDim = dim3(LCT_THREADS, 1, 1);
    cfg.dynamicSmemBytes = smem;
    cfg.stream = stream;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeClusterDimension;
    attr[0].val.clusterDim.x = P;
    attr[0].val.clusterDim.y = 1;
    attr[0].val.clusterDim.z = 1;
    cfg.attrs = attr;
    cfg.numAttrs = P > 1 ? 1 : 0;
    CUDA_CHECK(cudaLaunchKernelEx(&cfg, lct_kernel<P, R0F, Tx>, prm));
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

template <typename Tx>
static int lct_dispatch(const lct_params &prm, int P, unsigned nblocks, size_t smem,
                        cudaStream_t stream) {
    if (P == 1) {
        switch (prm.r0) {
        case 1: return lct_launch<1, 1, Tx>(prm, nblocks, smem, stream);
        case 2: return lct_launch<1, 2, Tx>(prm, nblocks, smem, stream);
        case 4: return lct_launch<1, 4, Tx>(prm, nblocks, smem, stream);
        case 8: return lct_launch<1, 8, Tx>(prm, nblocks, smem, stream);
        }
    }
    switch (P) {
    case 2: return lct_launch<2, 1, Tx>(prm, nblocks, smem, stream);
    case 4: return lct_launch<4, 1, Tx>(prm, nblocks, smem, stream);
    case 8: return lct_launch<8, 1, Tx>(prm, nblocks, smem, stream);
    }
    BENCH_FAIL("long_conv_tc: no kernel for cluster size %d, R0 %d", P, prm.r0);
}

template <int P, int R0F> static int lct_set_attr(size_t smem) {
    CUDA_CHECK(cudaFuncSetAttribute(lct_kernel<P, R0F, __nv_bfloat16>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    CUDA_CHECK(cudaFuncSetAttribute(lct_kernel<P, R0F, __half>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    return 0;
}

static int ilog2(int v) {
    int l = 0;
    while ((1 << l) < v) l++;
    return l;
}

} // namespace

extern "C" int long_conv_tc_supports(int M) { return M >= LCT_MIN_M; }

extern "C" size_t long_conv_tc_smem(int M, int n_hi) {
    return (size_t)M * 2 * sizeof(__half) + (size_t)(n_hi + FFT_TW_LO) * sizeof(float2);
}

extern "C" int long_conv_tc_prepare(int P, size_t smem) {
    switch (P) {
    case 1:
        if (lct_set_attr<1, 1>(smem) || lct_set_attr<1, 2>(smem) || lct_set_attr<1, 4>(smem) ||
            lct_set_attr<1, 8>(smem))
            return -1;
        return 0;
    case 2: return lct_set_attr<2, 1>(smem);
    case 4: return lct_set_attr<4, 1>(smem);
    case 8: return lct_set_attr<8, 1>(smem);
    }
    BENCH_FAIL("long_conv_tc: bad cluster size %d", P);
}

extern "C" int long_conv_tc_run(const long_conv_tc_args_t *a, dtype_t dtype, cudaStream_t stream) {
    if (!long_conv_tc_supports(a->M)) BENCH_FAIL("long_conv_tc: %d points a block < %d", a->M, LCT_MIN_M);
    lct_params prm = {};
    prm.x = a->x;
    prm.y = a->y;
    prm.pre3 = a->pre3;
    prm.spec = a->spec;
    prm.tw = a->tw;
    prm.B = a->B;
    prm.d = a->d;
    prm.T = a->T;
    prm.npairs = (a->B + 1) / 2;
    prm.N = a->N;
    prm.lg_n = ilog2(a->N);
    prm.M = a->M;
    const int log_m = ilog2(a->M);
    prm.r0 = 1 << (log_m & 3);
    prm.log_s = log_m - (log_m & 3);
    prm.rows = a->rows;
    prm.n_hi = a->n_hi;
    prm.spec_scale = ldexpf(1.0f, prm.log_s); /* 16^q = 2^(4q), q = log_s / 4 */
    const unsigned nblocks = (unsigned)((long long)a->d * prm.npairs * a->P);
    const size_t smem = long_conv_tc_smem(a->M, a->n_hi);
    switch (dtype) {
    case DTYPE_BF16: return lct_dispatch<__nv_bfloat16>(prm, a->P, nblocks, smem, stream);
    case DTYPE_F16: return lct_dispatch<__half>(prm, a->P, nblocks, smem, stream);
    default: break;
    }
    BENCH_FAIL("long_conv_tc: dtype must be bf16 or fp16");
}
