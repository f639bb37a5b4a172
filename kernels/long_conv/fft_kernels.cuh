/* long_conv/fft_kernels.cuh: the FFT path's one fused kernel (lcf_kernel) and its device
 * helpers, included by fft_engine.cu alone (which launches it from the plan, plan.h).
 *
 * One kernel does it all in shared memory: load (+ optional short conv + SiLU prologue),
 * forward FFT, product with the precomputed kernel spectrum, inverse FFT, truncation; one read
 * of x, one write of y, one read of the spectrum.
 *
 *   y[b,c,t] = sum_{j<=t} k[c,j] u[b,c,t-j],   x [B,d,T] (run dtype), k [d,T] fp32, y [B,d,T]
 *
 * ---- the algorithm ---------------------------------------------------------------------------
 * Two batch rows of the same channel travel as one complex sequence z = u[b0] + i u[b1]: since
 * the kernel k is real and the convolution linear, IFFT(FFT(z) * K) = (k*u[b0]) + i (k*u[b1]),
 * so no even/odd separation is ever needed (an odd B leaves the last pair's imaginary part 0).
 * T' = max(64, next power of two >= T), N = 2T' (zero padding makes the circular convolution
 * linear; any T works, padded up).  One cluster of P = max(1, N / 16384) blocks owns one pair;
 * each block holds M = N / P complex points in shared memory (fp32, 128 KiB at most):
 *   1. load: n = M n1 + n2, block r takes n2 in its M/P slice, reads u[M n1 + n2] for the n1
 *      that can be nonzero (n1 < P/2), does the P-point DFT across n1 and the twiddle
 *      W_N^{n2 k1} in registers and stores output k1 into block k1's shared memory (distributed
 *      shared memory, map_shared_rank).  P = 1: just u, zero padded.
 *   2. forward length-M FFT in place, decimation in frequency: one stage of radix 2^(log2 M % 4)
 *      if needed, then radix-16 stages; each stage = 16 (or R) values per thread in registers,
 *      one read and one write of shared memory.  The output is in digit-reversed order and is
 *      never permuted: the kernel spectrum is stored in that same order (setup runs this very
 *      kernel on the taps and stores the spectrum instead of multiplying).
 *   3. the last forward stage (span 1), the product with the spectrum and the first inverse
 *      stage (span 1) are one step on the same 16 registers.
 *   4. inverse FFT (decimation in time, stages in reverse order, conjugate twiddles) -> natural
 *      order; 5. the inverse P-point DFT across the cluster (only outputs n < T), write y.
 * Spectrum: K = FFT(k)/N in position order; block k1 of a cluster needs K[k1 + P k2]; since k
 * is real, K[N-k] = conj(K[k]), and position M-1-p of block P-k1 holds the partner of position
 * p of block k1 (digit reversal with power-of-two radices is a bit permutation, and
 * N - (k1 + P k2) = (P-k1) + P (M-1-k2)).  So only rows k1 = 0..P/2 are stored (M points each):
 * 8 (N/2 + M) bytes per channel instead of 8N (P = 1 stores the full row).
 * Twiddles: W_N^e = hi[e >> 7] * lo[e & 127], two tables made in double on the host and copied
 * into shared memory (9 KiB at most); within a stage W_L^{j i} = (W_L^j)^i, the powers built
 * as a tree of products (v2; v1 used a chain of R-2 dependent products).
 * Shared memory is padded by one float2 per 16 (p -> p + p/16): every stage's accesses are
 * then conflict-free (spans are powers of 16, or 1 where thread stride 17 cycles the banks).
 * The versions (what each changed, its numbers): fast.cu's index, and profiles/NOTES.md. */
#ifndef CHELA_LONG_CONV_FFT_KERNELS_CUH
#define CHELA_LONG_CONV_FFT_KERNELS_CUH

#include <cooperative_groups.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "common/math.cuh" /* silu */
#include "dtype_device.cuh" /* to_f32 / from_f32 */
#include "long_conv/plan.h" /* LCF_TW_LO_BITS, LCF_MAX_THREADS, LCF_NARROW_*: the kernel copies */

namespace cg = cooperative_groups;

#define LCF_LOAD_UNROLL 4 /* points whose loads are in flight together, per thread */

namespace {

struct lcf_params {
    const void *x;       /* [B,d,T] run dtype (setup: taps [d,T] fp32, B = 1)           */
    void *y;             /* [B,d,T] run dtype                                           */
    const float *pre3;   /* [d,3] or NULL                                               */
    const float2 *spec;  /* [d][rows][M]                                                */
    float2 *spec_out;    /* setup: write FFT(u)/N here and stop; NULL at run time       */
    const float2 *tw;    /* [n_hi + 128]                                                */
    int B, d, T, npairs; /* same-channel batch pairs a channel: ceil(B / 2), xpair B / 2 */
    int M, log_m, N, rows, n_hi;
    int xpair;           /* v5: odd B, the last row two channels a transform (header)   */
    float inv_n;
};

__device__ __forceinline__ int padi(int p) { return p + (p >> 4); }
__device__ __forceinline__ float2 cadd(float2 a, float2 b) { return make_float2(a.x + b.x, a.y + b.y); }
__device__ __forceinline__ float2 csub(float2 a, float2 b) { return make_float2(a.x - b.x, a.y - b.y); }
__device__ __forceinline__ float2 cmul(float2 a, float2 b) {
    return make_float2(fmaf(a.x, b.x, -a.y * b.y), fmaf(a.x, b.y, a.y * b.x));
}
__device__ __forceinline__ float2 conjf2(float2 a) { return make_float2(a.x, -a.y); }

/* cos / sin (2 pi e / 16), e in 0..15, as one flat switch.  Why not recursion: v1 wrote these
 * as recursive constexpr functions, and since e is an ordinary argument nvcc compiled them as real
 * recursive calls with a stack frame, called for every twiddle of every in-register DFT (ncu:
 * local loads/stores, L2 busy with DRAM idle, ~5x the needed instructions).  A switch on a value
 * that is constant after unrolling folds to a literal. */
__host__ __device__ __forceinline__ float k16cos(int e) {
    switch (e & 15) {
    case 0: return 1.0f;
    case 1: case 15: return 0.92387953251128674f;
    case 2: case 14: return 0.70710678118654752f;
    case 3: case 13: return 0.38268343236508978f;
    case 4: case 12: return 0.0f;
    case 5: case 11: return -0.38268343236508978f;
    case 6: case 10: return -0.70710678118654752f;
    case 7: case 9: return -0.92387953251128674f;
    default: return -1.0f;
    }
}
__host__ __device__ __forceinline__ float k16sin(int e) { return k16cos((e + 12) & 15); }

/* a * W_16^e, W = exp(-2 pi i / 16) (INV: exp(+2 pi i / 16)); e is a compile-time constant
 * after unrolling, so the branches fold and the trivial roots cost no multiplies. */
template <bool INV> __device__ __forceinline__ float2 wmul16(float2 a, int e) {
    e &= 15;
    if (e == 0) return a;
    if (e == 8) return make_float2(-a.x, -a.y);
    if (e == 4) return INV ? make_float2(-a.y, a.x) : make_float2(a.y, -a.x);
    if (e == 12) return INV ? make_float2(a.y, -a.x) : make_float2(-a.y, a.x);
    const float c = k16cos(e), s = INV ? k16sin(e) : -k16sin(e); /* W = c + i s */
    return make_float2(a.x * c - a.y * s, a.x * s + a.y * c);
}

template <int R> __host__ __device__ constexpr int brev(int k) {
    int r = 0;
    for (int b = 1; b < R; b <<= 1) {
        r <<= 1;
        if (k & b) r |= 1;
    }
    return r;
}

/* In-register R-point DFT (R = 2..16), natural order in and out: radix-2 DIF passes
 * (template recursion over the pass length, so every index and root is a constant), then the
 * bit-reversed result renamed into order (free after register allocation). */
template <int R, int LEN, bool INV> struct dft_pass {
    static __device__ __forceinline__ void run(float2 (&a)[R]) {
        constexpr int half = LEN / 2;
#pragma unroll
        for (int st = 0; st < R; st += LEN) {
#pragma unroll
            for (int j = 0; j < half; j++) {
                const float2 u = a[st + j], v = a[st + j + half];
                a[st + j] = cadd(u, v);
                a[st + j + half] = wmul16<INV>(csub(u, v), j * (16 / LEN));
            }
        }
        dft_pass<R, LEN / 2, INV>::run(a);
    }
};
template <int R, bool INV> struct dft_pass<R, 1, INV> {
    static __device__ __forceinline__ void run(float2 (&)[R]) {}
};

template <int R, bool INV> __device__ __forceinline__ void dft(float2 (&a)[R]) {
    dft_pass<R, R, INV>::run(a);
    float2 t[R];
#pragma unroll
    for (int k = 0; k < R; k++) t[k] = a[brev<R>(k)];
#pragma unroll
    for (int k = 0; k < R; k++) a[k] = t[k];
}

__device__ __forceinline__ float2 twid(const float2 *tw_hi, const float2 *tw_lo, int e) {
    return cmul(tw_hi[e >> LCF_TW_LO_BITS], tw_lo[e & (LCF_TW_LO - 1)]);
}

/* a[i] *= w1^i, i = 1..R-1.  The powers are built as a tree (w^i = w^(i - hb) w^hb, hb the
 * highest bit of i) instead of a chain of R-2 dependent products: log2 R products deep, which
 * shortens the latency chain of every stage and rounds less. */
template <int R> __device__ __forceinline__ void twiddle_powers(float2 (&a)[R], float2 w1) {
    float2 wp[R];
    wp[1] = w1;
#pragma unroll
    for (int i = 2; i < R; i++) {
        int hb = 1;
        while (2 * hb <= i) hb *= 2;
        wp[i] = i == hb ? cmul(wp[i / 2], wp[i / 2]) : cmul(wp[i - hb], wp[hb]);
    }
#pragma unroll
    for (int i = 1; i < R; i++) a[i] = cmul(a[i], wp[i]);
}

/* One radix-R stage of span s over buf (M points): sub-length L = s R, twiddle W_L^{j i}
 * = W_N^{j i tw_unit}, tw_unit = N / L.  Forward: DFT then twiddle (DIF); inverse: conjugate
 * twiddle then inverse DFT (DIT), the exact inverse (times R) of the forward stage. */
template <int R, bool INV>
__device__ __forceinline__ void fft_stage(float2 *buf, int M, int s, int tw_unit,
                                          const float2 *tw_hi, const float2 *tw_lo) {
    const int nb = M / R;
    for (int w = threadIdx.x; w < nb; w += blockDim.x) {
        const int j = w & (s - 1);
        const int base = (w - j) * R + j;
        float2 a[R];
#pragma unroll
        for (int n = 0; n < R; n++) a[n] = buf[padi(base + n * s)];
        float2 w1 = twid(tw_hi, tw_lo, j * tw_unit);
        if (INV) {
            w1 = conjf2(w1);
            twiddle_powers<R>(a, w1);
            dft<R, true>(a);
        } else {
            dft<R, false>(a);
            twiddle_powers<R>(a, w1);
        }
#pragma unroll
        for (int n = 0; n < R; n++) buf[padi(base + n * s)] = a[n];
    }
}

template <bool INV>
__device__ __forceinline__ void fft_first_stage(float2 *buf, int M, int r0, int tw_unit,
                                                const float2 *tw_hi, const float2 *tw_lo) {
    const int s = M >> r0;
    if (r0 == 1) fft_stage<2, INV>(buf, M, s, tw_unit, tw_hi, tw_lo);
    else if (r0 == 2) fft_stage<4, INV>(buf, M, s, tw_unit, tw_hi, tw_lo);
    else if (r0 == 3) fft_stage<8, INV>(buf, M, s, tw_unit, tw_hi, tw_lo);
}

/* u[t] of one row (zero outside 0 <= t < T); pre3 = NULL: u = x. */
template <typename Tx>
__device__ __forceinline__ float load_u(const Tx *__restrict__ xr, int t, int T, bool has_pre,
                                        float p0, float p1, float p2) {
    if (t >= T) return 0.0f;
    const float x0 = to_f32(xr[t]);
    if (!has_pre) return x0;
    const float x1 = t >= 1 ? to_f32(xr[t - 1]) : 0.0f;
    const float x2 = t >= 2 ? to_f32(xr[t - 2]) : 0.0f;
    return silu(fmaf(p0, x0, fmaf(p1, x1, p2 * x2)));
}

/* The log_s / 4 hex digits of x (log_s bits) in reverse order: the position, inside one
 * S-point sub-transform, of frequency x (radix-16 decimation in frequency). */
__device__ __forceinline__ int rev16(int x, int log_s) {
    unsigned v = __brev((unsigned)x) >> (32 - log_s); /* bits reversed: digits reversed, and */
    v = ((v & 0x11111111u) << 3) | ((v & 0x22222222u) << 1) | ((v >> 1) & 0x22222222u) |
        ((v >> 3) & 0x11111111u); /* ... each digit's own bits put back */
    return (int)v;
}

/* v5 (xpair): Z at frequencies k and N-k of z = u_c + i u_c1; K0, K1 the two channels'
 * spectra at k; A = (K0 + K1)/2, B = (K0 - K1)/2.  Y(k) = A Z(k) + B conj Z(N-k) is the
 * spectrum of (k_c * u_c) + i (k_c1 * u_c1); Y(N-k) follows with conj(A), conj(B) (real taps). */
__device__ __forceinline__ void xpair_mul(float2 *zk, float2 *zm, float2 k0, float2 k1) {
    const float2 a = make_float2(0.5f * (k0.x + k1.x), 0.5f * (k0.y + k1.y));
    const float2 b = make_float2(0.5f * (k0.x - k1.x), 0.5f * (k0.y - k1.y));
    const float2 vk = *zk, vm = *zm;
    *zk = cadd(cmul(a, vk), cmul(b, conjf2(vm)));
    if (zm != zk) *zm = cadd(cmul(conjf2(a), vm), cmul(conjf2(b), conjf2(vk)));
}

/* The span-1 stage alone (forward or inverse), for the xpair path, which needs the whole
 * spectrum in shared memory between the two. */
template <bool INV> __device__ __forceinline__ void fft_span1(float2 *buf, int M) {
    for (int w = threadIdx.x; w < M / 16; w += blockDim.x) {
        float2 a[16];
#pragma unroll
        for (int i = 0; i < 16; i++) a[i] = buf[padi(16 * w + i)];
        dft<16, INV>(a);
#pragma unroll
        for (int i = 0; i < 16; i++) buf[padi(16 * w + i)] = a[i];
    }
}

/* xpair: every frequency pair (k, N-k) of the cluster's transform once.  P = 1 and rank 0:
 * both in this block, at positions p and pos(M - k(p)); rank r > 0: position p of block r
 * and M-1-p of block P-r (the header's mirror rule); block r takes its p < M/2. */
template <int P>
__device__ __forceinline__ void xpair_product(float2 *buf, const lcf_params &prm, int rank, int c,
                                              int c1, cg::cluster_group &cluster) {
    const int M = prm.M;
    const int row = rank <= P / 2 ? rank : P - rank;
    const float2 *A = prm.spec + ((size_t)c * prm.rows + row) * M;  /* K0 */
    const float2 *Bs = prm.spec + ((size_t)c1 * prm.rows + row) * M; /* K1 */
    const bool none1 = c1 == c; /* an odd d's last channel: paired with zero taps */
    if (P == 1 || rank == 0) {
        const int r0 = prm.log_m & 3, log_s = prm.log_m - r0;
        for (int p = threadIdx.x; p < M; p += blockDim.x) {
            const int k = (p >> log_s) + (rev16(p & ((1 << log_s) - 1), log_s) << r0);
            const int kn = (M - k) & (M - 1);
            const int q = ((kn & ((1 << r0) - 1)) << log_s) + rev16(kn >> r0, log_s);
            if (q < p) continue;
            xpair_mul(buf + padi(p), buf + padi(q), __ldg(A + p), none1 ? make_float2(0.f, 0.f) : __ldg(Bs + p));
        }
        return;
    }
    float2 *other = rank == P / 2 ? buf : cluster.map_shared_rank(buf, P - rank);
    for (int i = threadIdx.x; i < M / 2; i += blockDim.x) {
        const int m = M - 1 - i;
        if (rank <= P / 2) /* own i has frequency k (stored row rank) */
            xpair_mul(buf + padi(i), other + padi(m), __ldg(A + i), none1 ? make_float2(0.f, 0.f) : __ldg(Bs + i));
        else /* own i has N - k, k at the partner's M-1-i (stored row P - rank) */
            xpair_mul(other + padi(m), buf + padi(i), __ldg(A + m), none1 ? make_float2(0.f, 0.f) : __ldg(Bs + m));
    }
}

/* X[k] = sum_j a[j] W_Q^(j k), k < Q, from the Q/2 inputs that can be nonzero (the upper half
 * is the zero padding): the first decimation-in-frequency split is free, X[2m] =
 * DFT_(Q/2)(a)[m] and X[2m+1] = DFT_(Q/2)(a[j] W_Q^j)[m].  Q <= 16. */
template <int Q> __device__ __forceinline__ void dft_half_in(const float2 (&a)[Q / 2], float2 (&x)[Q]) {
    constexpr int H = Q / 2;
    float2 e[H], o[H];
#pragma unroll
    for (int j = 0; j < H; j++) {
        e[j] = a[j];
        o[j] = wmul16<false>(a[j], j * (16 / Q));
    }
    if constexpr (H > 1) {
        dft<H, false>(e);
        dft<H, false>(o);
    }
#pragma unroll
    for (int m = 0; m < H; m++) {
        x[2 * m] = e[m];
        x[2 * m + 1] = o[m];
    }
}

/* x[n] = sum_k v[k] W_Q^(-n k) for n < Q/2 only (the outputs past T are dropped): even and odd
 * k apart, x[n] = IDFT_(Q/2)(v[2m])[n] + W_Q^(-n) IDFT_(Q/2)(v[2m+1])[n].  Q <= 16. */
template <int Q> __device__ __forceinline__ void idft_half_out(const float2 (&v)[Q], float2 (&x)[Q / 2]) {
    constexpr int H = Q / 2;
    float2 e[H], o[H];
#pragma unroll
    for (int m = 0; m < H; m++) {
        e[m] = v[2 * m];
        o[m] = v[2 * m + 1];
    }
    if constexpr (H > 1) {
        dft<H, true>(e);
        dft<H, true>(o);
    }
#pragma unroll
    for (int n = 0; n < H; n++) x[n] = cadd(e[n], wmul16<true>(o[n], n * (16 / Q)));
}

/* One cluster of P blocks per (channel c, batch pair).  blockIdx.x = (c * npairs + pair) * P +
 * rank.  Shared memory: buf [M + M/16] float2, tw_hi [n_hi], tw_lo [128]. */
template <int P, typename Tx, int MINB, int R0F>
__global__ void __launch_bounds__(MINB == LCF_NARROW_MINB ? LCF_NARROW_THREADS : LCF_MAX_THREADS, MINB)
    lcf_kernel(const lcf_params prm) {
    extern __shared__ float4 lcf_smem[];
    float2 *buf = reinterpret_cast<float2 *>(lcf_smem);
    const int M = prm.M;
    float2 *tw_hi = buf + M + (M >> 4);
    float2 *tw_lo = tw_hi + prm.n_hi;
    const int tid = threadIdx.x, nt = blockDim.x;

    for (int i = tid; i < prm.n_hi + LCF_TW_LO; i += nt) tw_hi[i] = prm.tw[i];

    const int cid = blockIdx.x / P;
    const int rank = P > 1 ? (int)(blockIdx.x % P) : 0;
    const int T = prm.T;
    /* the two real rows of this transform: batch rows b0, b1 of channel c, or (xpair) the
     * single batch row of channels c and c1 = c + 1 */
    int c, c1, b0, b1;
    bool has1;
    /* xpair (odd B): clusters d * (B / 2) and on pair the last batch row across channels */
    const bool cross = prm.xpair && cid >= prm.d * prm.npairs;
    if (cross) {
        c = 2 * (cid - prm.d * prm.npairs);
        c1 = c + 1;
        b0 = b1 = prm.B - 1;
        has1 = c1 < prm.d;
    } else {
        const int pair = cid % prm.npairs;
        c = c1 = cid / prm.npairs;
        b0 = 2 * pair;
        b1 = 2 * pair + 1;
        has1 = b1 < prm.B;
    }
    if (!has1) { b1 = b0; c1 = c; }
    const Tx *x0r = reinterpret_cast<const Tx *>(prm.x) + ((size_t)b0 * prm.d + c) * T;
    const Tx *x1r = reinterpret_cast<const Tx *>(prm.x) + ((size_t)b1 * prm.d + c1) * T;
    const bool has_pre = prm.pre3 != nullptr;
    float p0 = 0.f, p1 = 0.f, p2 = 0.f, q0 = 0.f, q1 = 0.f, q2 = 0.f;
    if (has_pre) {
        p0 = __ldg(prm.pre3 + 3 * c);
        p1 = __ldg(prm.pre3 + 3 * c + 1);
        p2 = __ldg(prm.pre3 + 3 * c + 2);
        q0 = __ldg(prm.pre3 + 3 * c1);
        q1 = __ldg(prm.pre3 + 3 * c1 + 1);
        q2 = __ldg(prm.pre3 + 3 * c1 + 2);
    }

    cg::cluster_group cluster = cg::this_cluster();
    if (P > 1) cluster.sync(); /* every block of the cluster runs, and its tables are in */
    else __syncthreads();

    /* ---- 1. load, Q-point DFT over the top digit, twiddle, scatter ----
     * Q = P R0F: the cluster's digit, times (v6) the block's radix-R0 digit where it is fused
     * here.  n = SL n1 + n2 (SL = N / Q); only n1 < Q / 2 can hold input (the rest is the zero
     * padding).  Output k1 goes to block k1 % P, position (k1 / P) SL + n2, times W_N^(k1 n2):
     * the same positions and values as the separate R0 stage (same DFT, same digit order).
     * LCF_LOAD_UNROLL points per thread are loaded before any is stored, so their HBM latencies
     * overlap (a plain loop waits for each load: stores to shared memory / DSMEM go through
     * generic pointers the compiler cannot move loads above). */
    constexpr int Q = P * R0F;
    constexpr int NH = Q == 1 ? 1 : Q / 2; /* n1 with possibly nonzero input */
    constexpr int UNR = NH <= 2 ? LCF_LOAD_UNROLL : (NH <= 4 ? 2 : 1);
    const int SL = prm.N / Q;
    {
        const int slice = SL / P;
        const int lo = rank * slice, hi = lo + slice;
        for (int nb = lo + tid; nb < hi; nb += UNR * nt) {
            float2 a[UNR][NH];
#pragma unroll
            for (int u = 0; u < UNR; u++) {
                const int n2 = nb + u * nt;
#pragma unroll
                for (int n1 = 0; n1 < NH; n1++) {
                    const int t = n2 < hi ? n1 * SL + n2 : T; /* T: reads nothing, gives 0 */
                    a[u][n1].x = load_u(x0r, t, T, has_pre, p0, p1, p2);
                    a[u][n1].y = has1 ? load_u(x1r, t, T, has_pre, q0, q1, q2) : 0.0f;
                }
            }
#pragma unroll
            for (int u = 0; u < UNR; u++) {
                const int n2 = nb + u * nt;
                if (n2 >= hi) break;
                float2 xk[Q];
                if constexpr (Q == 1) xk[0] = a[u][0];
                else dft_half_in<Q>(a[u], xk);
#pragma unroll
                for (int k1 = 0; k1 < Q; k1++) {
                    float2 v = xk[k1];
                    if (k1) v = cmul(v, twid(tw_hi, tw_lo, n2 * k1));
                    float2 *dst = P > 1 ? cluster.map_shared_rank(buf, k1 % P) : buf;
                    dst[padi((k1 / P) * SL + n2)] = v;
                }
            }
        }
    }
    if (P > 1) cluster.sync();
    else __syncthreads();

    /* ---- 2. forward length-M FFT, all but the last (span-1) stage ---- */
    const int r0 = prm.log_m & 3;
    const int R0 = 1 << r0;
    const int N = prm.N;
    if (r0 && R0F == 1) {
        fft_first_stage<false>(buf, M, r0, N / M, tw_hi, tw_lo);
        __syncthreads();
    }
    for (int s = M / (R0 * 16); s >= 16; s >>= 4) {
        fft_stage<16, false>(buf, M, s, N / (16 * s), tw_hi, tw_lo);
        __syncthreads();
    }

    /* ---- 3. last forward stage, product with the spectrum, first inverse stage ---- */
    if (prm.spec_out) {
        if (P > 1 && rank > P / 2) return;
        float2 *so = prm.spec_out + ((size_t)c * prm.rows + rank) * M;
        for (int w = tid; w < M / 16; w += nt) {
            float2 a[16];
#pragma unroll
            for (int i = 0; i < 16; i++) a[i] = buf[padi(16 * w + i)];
            dft<16, false>(a);
#pragma unroll
            for (int i = 0; i < 16; i++)
                so[16 * w + i] = make_float2(a[i].x * prm.inv_n, a[i].y * prm.inv_n);
        }
        return;
    }
    if (cross) {
        fft_span1<false>(buf, M);
        if (P > 1) cluster.sync();
        else __syncthreads();
        xpair_product<P>(buf, prm, rank, c, c1, cluster);
        if (P > 1) cluster.sync();
        else __syncthreads();
        fft_span1<true>(buf, M);
    } else {
        const bool mirror = P > 1 && rank > P / 2;
        const int row = mirror ? P - rank : rank;
        const float4 *K4 =
            reinterpret_cast<const float4 *>(prm.spec + ((size_t)c * prm.rows + row) * M);
        for (int w = tid; w < M / 16; w += nt) {
            float2 a[16];
#pragma unroll
            for (int i = 0; i < 16; i++) a[i] = buf[padi(16 * w + i)];
            dft<16, false>(a);
            /* mirror: K(p) = conj(row[M-1-p]); p = 16w+i -> M-16(w+1) + (15-i).  Multiplied as
             * loaded, so only 16 values + one float4 are live (no spills). */
            const float4 *src = K4 + (mirror ? (M / 2 - 8 * (w + 1)) : 8 * w);
#pragma unroll
            for (int q = 0; q < 8; q++) {
                const float4 v = __ldg(src + q);
                if (mirror) {
                    a[15 - 2 * q] = cmul(a[15 - 2 * q], make_float2(v.x, -v.y));
                    a[14 - 2 * q] = cmul(a[14 - 2 * q], make_float2(v.z, -v.w));
                } else {
                    a[2 * q] = cmul(a[2 * q], make_float2(v.x, v.y));
                    a[2 * q + 1] = cmul(a[2 * q + 1], make_float2(v.z, v.w));
                }
            }
            dft<16, true>(a);
#pragma unroll
            for (int i = 0; i < 16; i++) buf[padi(16 * w + i)] = a[i];
        }
    }
    __syncthreads();

    /* ---- 4. inverse FFT, remaining stages in reverse order ---- */
    for (int s = 16; s <= M / (R0 * 16); s <<= 4) {
        fft_stage<16, true>(buf, M, s, N / (16 * s), tw_hi, tw_lo);
        __syncthreads();
    }
    if (r0 && R0F == 1) fft_first_stage<true>(buf, M, r0, N / M, tw_hi, tw_lo);
    if (P > 1) cluster.sync();
    else __syncthreads();

    /* ---- 5. inverse Q-point DFT over the top digit (across the cluster), truncate, write y */
    Tx *y0r = reinterpret_cast<Tx *>(prm.y) + ((size_t)b0 * prm.d + c) * T;
    Tx *y1r = reinterpret_cast<Tx *>(prm.y) + ((size_t)b1 * prm.d + c1) * T;
    {
        const int slice = SL / P;
        const int lo = rank * slice, hi = lo + slice;
        if constexpr (Q == 1) {
            for (int n2 = tid; n2 < T; n2 += nt) {
                const float2 v = buf[padi(n2)];
                y0r[n2] = from_f32<Tx>(v.x);
                if (has1) y1r[n2] = from_f32<Tx>(v.y);
            }
        } else {
            /* two points per iteration: their 2Q shared / DSMEM reads are issued before any y
             * store; only outputs n1 < Q / 2 can be < T */
            for (int nb = lo + tid; nb < hi && nb < T; nb += 2 * nt) {
                float2 cv[2][Q];
#pragma unroll
                for (int u = 0; u < 2; u++) {
                    const int n2 = nb + u * nt < hi ? nb + u * nt : nb;
#pragma unroll
                    for (int k1 = 0; k1 < Q; k1++) {
                        const float2 *src = P > 1 ? cluster.map_shared_rank(buf, k1 % P) : buf;
                        cv[u][k1] = src[padi((k1 / P) * SL + n2)];
                    }
                }
#pragma unroll
                for (int u = 0; u < 2; u++) {
                    const int n2 = nb + u * nt;
                    if (n2 >= hi) break;
#pragma unroll
                    for (int k1 = 1; k1 < Q; k1++)
                        cv[u][k1] = cmul(cv[u][k1], conjf2(twid(tw_hi, tw_lo, n2 * k1)));
                    float2 xo[NH];
                    idft_half_out<Q>(cv[u], xo);
#pragma unroll
                    for (int n1 = 0; n1 < NH; n1++) {
                        const int t = n1 * SL + n2;
                        if (t < T) {
                            y0r[t] = from_f32<Tx>(xo[n1].x);
                            if (has1) y1r[t] = from_f32<Tx>(xo[n1].y);
                        }
                    }
                }
            }
        }
    }
    if (P > 1) cluster.sync(); /* no block leaves while others read its shared memory */
}

} // namespace

#endif
