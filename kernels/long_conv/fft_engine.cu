/* long_conv/fast: causal depthwise long convolution as ONE fused kernel: load (+ optional short
 * conv + SiLU prologue), forward FFT, product with the precomputed kernel spectrum, inverse FFT,
 * truncation, all in shared memory; one read of x, one write of y, one read of the spectrum.
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
 *
 * ---- version index ---------------------------------------------------------------------------
 *
 * v1.  As above: fp32 CUDA-core FFT, one kernel, clusters of 2/4/8 for T = 16k,
 * 32k, 64k.  Scalar (2-byte) coalesced loads/stores of x and y, 4 points per thread in flight;
 * spectrum via float4 loads.  Run: chela-bench --ops long_conv --seq 1k..64k.
 * Predicted (H100, d = 1024, B*T = 65536, bf16): HBM bytes = x + y (268 MB) + spectrum
 * (16 MB at 1k ... 671 MB at 64k) -> 0.1 ms at 1k, 0.3 ms at 64k; FFT work 7.4 GFLOP (1k) to
 * 22 GFLOP (64k, B = 1 wastes half the complex transform) at ~25 effective TFLOP/s ->
 * 0.3 ms at 1k, ~0.9 ms at 64k: compute-bound, the 64k point over target.
 * Measured (H100 80GB HBM3, bf16, d = 1024, B*T = 65536, median ms; fft = long_conv/fft):
 *       T    fast    fft   fft/fast  floor_ratio   max_rel_err
 *      1k   1.613  1.747     1.08       17.6         3.9e-3
 *      2k   2.077  1.745     0.84       22.4         3.9e-3
 *      4k   2.240  1.734     0.77       23.4         3.9e-3
 *      8k   1.517  1.745     1.15       15.0         3.9e-3
 *     16k   1.643  1.916     1.17       14.6         3.9e-3
 *     32k   1.990  2.283     1.15       14.7         3.9e-3
 *     64k   5.965  3.616     0.61       33.1         3.8e-3
 *   fp32: 1.58 ms (1k, err 3.1e-6), 1.58 ms (16k, 1.3e-5), 5.87 ms (64k, 1.7e-5), all within
 *   5e-5; odd T (B = 3, d = 5: T = 1, 37, 64, 1000, 3000, 16k, 20000, 40000) all ok;
 *   compute-sanitizer memcheck clean (T = 37 and 64k).  ptxas: 93-101 registers (P = 1, 2),
 *   121-128 (P = 4, 8; P = 8 spills 56 bytes), no stack elsewhere.
 *   So: correct everywhere, and 5-10x slower than predicted: at T = 1k that is ~5 effective
 *   TFLOP/s, far from both the HBM floor and the CUDA-core peak.  Overlapping the HBM loads of
 *   step 1 (4 points in flight per thread instead of 1) changed nothing (1k 1.52 -> 1.61,
 *   64k 6.62 -> 5.97), so the time is spent inside the shared-memory FFT, not waiting on HBM.
 *   Not yet profiled; suspects, in the order I would check them with ncu: (a) occupancy: 93-128
 *   registers leave one 512-thread block per SM for M >= 8k and ~5 small blocks at 1k, and
 *   every stage ends in __syncthreads, so few warps hide each stage's latency chain (LDS ->
 *   twiddle LDS -> 4 radix-2 passes -> STS); (b) the twiddle-table lookups, W_N^{j tw_unit}
 *   with tw_unit a power of two, hit 2-8 banks per half-warp; (c) the spectrum loads of the
 *   middle step stride 128 B across a warp; (d) at 64k the cluster of 8 (148 KiB each, one per
 *   SM) waits on DSMEM scatters and 4 cluster barriers, and B = 1 wastes the imaginary half.
 *
 * Profile of v1 (ncu, H100, bf16, d = 1024; kernel alone under ncu: 1.95 ms at 1k, 7.27 at 64k).
 *   None of the suspects above was the main limiter.  At 1k: DRAM throughput 4%, yet L2 64%
 *   and L1 48% busy, with "local loads/stores, 1.0 of 32 bytes used per sector": the kernel
 *   talks to local memory.  The cause: k16cos / k16sin (the constant roots of the in-register
 *   radix-16 DFT) were recursive constexpr functions called with an ordinary argument, so
 *   nvcc compiled them as real recursive calls with a 16-byte stack frame (ptxas -v lists
 *   them), executed for every non-trivial root of every butterfly: 736 M warp instructions at
 *   1k (~350 per point), 2.2 G at 64k.  Issue slots 45% busy (IPC 1.79), 0.78 eligible of 3.96
 *   warps per scheduler, occupancy 25% (1k: 101 registers -> 4 blocks of 128 threads; 64k:
 *   1 block of 512, 128 registers); shared loads 2.2-way conflicted on average at 1k (13% extra
 *   wavefronts), 2.9-way at 64k; global loads use 18 of 32 bytes per sector.
 *
 * v2.  k16cos / k16sin as one flat switch, which folds to literals after unrolling (no stack
 *   anywhere: ptxas 93-96 registers for P = 1, 2; 115 for P = 4; 110 and no spill for P = 8),
 *   and the per-stage twiddle powers as a tree instead of a dependent chain.
 *   Predicted: ~3-4x fewer instructions, no local traffic -> ~0.4 ms at 1k, still compute-bound.
 *   Measured (same setup as v1; fft/fast = speedup over long_conv/fft):
 *       T    fast    fft   fft/fast  floor_ratio   max_rel_err
 *      1k   0.586  1.747     2.98        6.44        3.9e-3
 *      2k   0.709  1.743     2.46        7.67        3.9e-3
 *      4k   0.926  1.730     1.87        9.72        3.9e-3
 *      8k   0.862  1.741     2.02        8.55        3.9e-3
 *     16k   0.985  1.920     1.95        8.79        3.9e-3
 *     32k   1.260  2.271     1.80        9.38        3.9e-3
 *     64k   2.455  3.650     1.49       13.70        3.8e-3
 *   fp32: 0.542 ms (1k, err 3.0e-6), 0.909 (16k, 1.6e-5), 2.387 (64k, 1.7e-5); odd shapes
 *   (B = 3, d = 5, T = 1, 37, 1000, 3000, 20000, 40000; long_conv and short_long_conv) all ok.
 *   2.7x faster at 1k and 2.4x at 64k, short of the ~4x predicted at 1k: with the calls gone
 *   the remaining cost is the FFT itself at 25% occupancy, not a single bug.
 *
 * v3 (this file).  Transforms of M <= 8192 points (T <= 4k, one block each) run a second copy of
 *   the kernel compiled with __launch_bounds__(512, 2): at most 64 registers (ptxas spills ~130
 *   bytes, outside the stage loop's hot path judging by the result), so 8 blocks of 128 threads
 *   fit at 1k instead of 5, 4 of 256 at 2k instead of 2, 2 of 512 at 4k instead of 1.
 *   Predicted: +15-25% where occupancy rises.  Measured (bf16, as above):
 *       T    fast    fft   fft/fast  floor_ratio   max_rel_err
 *      1k   0.510  1.747     3.43        5.60        3.9e-3
 *      2k   0.564  1.743     3.09        6.09        3.9e-3
 *      4k   0.731  1.730     2.37        7.67        3.9e-3
 *      8k+  as v2 (the 64-register copy measured 0.901 ms at 8k, 4.5% slower than v2: only
 *           one 139 KiB block fits per SM there anyway, so the cap only adds spills).
 *   Each of the two builds was validated at every point it was timed; the combined file was
 *   compiled but not re-run on the GPU in this round.
 *   Targets not met: >= 4x over fft and <= 3x the HBM floor (0.27 ms at 1k ... 0.54 at 64k);
 *   v3 is 3.4x / 5.6x floor at 1k and 1.5x / 13.7x floor at 64k.  Not re-profiled since v1;
 *   what I expect limits it now, with the next levers: (a) occupancy and barrier stalls
 *   (16-32 warps per SM, a __syncthreads per stage): several short transforms per block and
 *   radix-16/32 with warp-shuffle exchanges for the low digits, fewer shared round trips;
 *   (b) integer work per stage (padded addresses, loop bounds unknown at compile time:
 *   template the kernel on log2 M); (c) 64k: the cluster of 8 scatters every point 8 times
 *   through DSMEM and B = 1 wastes the imaginary half: pack two channels (real-signal split)
 *   or a 2-kernel four-step path; (d) tf32/fp16 tensor-core DFT stages for bf16 runs.
 *
 * v4 (this file).  bf16 / fp16 runs with T <= 2048 (lcf_toeplitz_max_t) do not take the FFT at
 *   all: kernels/long_conv/toeplitz.cu computes the convolution as a lower-triangular Toeplitz
 *   matrix times u on tensor cores (T MACs per output instead of ~10 log2(2T) CUDA-core flops;
 *   its own version index has the numbers).  fp32 runs and T > 2048 keep the FFT above.
 *   Measured (H100, bf16, d = 1024): 0.221 ms at 1k (FFT 0.51), 0.396 at 2k (0.56); forced to
 *   4k the product takes 0.86 ms against the FFT's 0.73, hence the 2048 limit.
 *
 * v5 experiment, not kept (commit 6e7b7a9, taken out in the next): the radix-16 stages as
 *   16x16 complex matrix products on tensor cores (fp16 planar shared memory, ldmatrix /
 *   stmatrix, mma.m16n8k16) for 16-bit runs.  Predicted ~2-3x fewer instructions a point.
 *   Measured (bf16, d = 1024): 0.847 ms at T = 4k against this kernel's 0.730, and max_rel_err
 *   1.6e-2 .. 5.0e-2 from T = 8k (bf16 tolerance 1.56e-2; fp16 intermediates, worst at t = 0
 *   where outputs are small).  Nsight Compute: 176 thread instructions a point (butterflies gone,
 *   twiddle lookups, packing and addressing left), IPC 1.92 at 25 % occupancy, 3.7-way bank
 *   conflicts on the twiddle table.  profiles/NOTES.md has what a next attempt needs.
 *
 * v5.  Odd B (B = 1 is the 64k point of a 65536-token sweep, and any --batch 1 run): the last
 *   row's transform carried zeros in its imaginary half.  Now that row of channels c, c+1
 *   shares one transform, z = u_c + i u_c1, separated in the spectrum: with K0, K1 the two
 *   channels' spectra, A = (K0 + K1)/2 and B = (K0 - K1)/2 (formed in the pass from the stored
 *   rows), Y(k) = A(k) Z(k) + B(k) conj Z(N-k) is the spectrum of (k_c * u_c) + i (k_c1 * u_c1).
 *   Frequencies k and N-k meet at positions p and M-1-p of cluster blocks r and P-r (the
 *   mirror rule above); in block 0 (and P = 1) at p and pos(M - k(p)), hex digits reversed.
 *   The fused middle step becomes: span-1 stage, a pass over the (k, N-k) pairs (across DSMEM
 *   for P > 1), span-1 inverse stage.  Half the transforms of that row.  Predicted ~1.8x at
 *   B = 1.  Measured (H100; --set lcf_xpair=0 is the off switch): bf16 d = 1024 T = 64k 2.44 ->
 *   1.67 ms; fp32 B = 1, T = 1k..64k: 0.022 / 0.040 / 0.099 / 0.199 / 0.456 / 1.070 / 2.370 ->
 *   0.020 / 0.030 / 0.065 / 0.143 / 0.318 / 0.755 / 1.559 ms (1.4-1.5x from 4k; below that a
 *   few hundred blocks cannot fill the GPU either way).  The miss against 1.8x: the two span-1
 *   stages no longer share registers (two more shared-memory passes) and the pair pass adds
 *   two cluster barriers.  Error fp32 2.5e-5 at 64k (was 1.7e-5; tolerance 5e-5).
 *
 * v6 (this file).  (1) The block's radix-R0 digit (M = R0 16^q) was its own shared-memory pass
 *   that read the zero padding and wrote outputs past T.  It is now done on load together with
 *   the cluster's digit, as one Q = P R0-point DFT of the Q/2 inputs that can be nonzero (the
 *   first decimation-in-frequency split is free: two Q/2-point DFTs), and its inverse on store
 *   for the Q/2 outputs that can be < T; same positions and values, so the spectrum is
 *   unchanged.  Q <= LCF_FUSE_Q = 16 (64k's 32 keeps the pass).  (2) T = 8k (N = 16384) runs as
 *   a cluster of two 8192-point blocks, two blocks an SM, instead of one 139 KiB block
 *   (measured 0.863 -> 0.831 ms alone; the same cap at 16k / 32k was 7 % / 1 % slower, so only
 *   there).  Predicted 8-12 % from 4k to 32k.  Measured (H100, bf16, d = 1024, 65536 tokens):
 *   0.725 / 0.855 / 0.979 / 1.249 -> 0.634 / 0.762 / 0.914 / 1.070 ms at 4k / 8k / 16k / 32k;
 *   64k (B = 1) 1.655.  Error unchanged (3.7-4.2e-3).
 *
 * v7 (this file).  8192-point blocks (T = 4k single blocks, T = 8k clusters of two) on a wide
 *   grid run a third copy: 256 threads, __launch_bounds__(256, 3), so three blocks an SM (3 x 70 KiB,
 *   within the 227 KiB of shared memory) at up to 85 registers with no spill, where the 512-thread
 *   copy holds two at 64 registers with ~130 bytes of spill.  Each thread then does two of the
 *   block's 512 radix-16 columns a stage.  A session 6 probe measured bf16 4k 0.638 -> 0.616 and
 *   8k 0.766 -> 0.725 ms, and fp32 B = 1 (512-2048 blocks) 7-12 % slower: a grid of a few waves
 *   loses more to the half-size blocks' longer tail than it gains.  The rule therefore takes the
 *   narrow copy only when the grid is at least LCF_NARROW_MIN_WAVES waves of three blocks an SM;
 *   --set lcf_narrow=0 / 1 forces it off / on (A/B).  Measured on the H100 (0a78227, two
 *   alternating repeats): bf16 8k 0.766 / 0.761 -> 0.725 / 0.721 ms, bf16 4k on the FFT path
 *   0.639 / 0.638 -> 0.613 / 0.616; fp32 B = 1 at 4k / 8k kept the wide copy (unchanged).
 */
#include <cooperative_groups.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_check.h"
#include "dtype_device.cuh" /* to_f32 / from_f32 */
#include "long_conv/fft_engine.h"
#include "long_conv/toeplitz.h"
#include "variant.h"

extern "C" {
DECLARE_VARIANT(long_conv_fast_var);
}

namespace cg = cooperative_groups;

/* LCF_MAX_THREADS, LCF_TW_LO(_BITS), LCF_SMALL_M, LCF_NARROW_*, LCF_FUSE_Q: long_conv/plan.h,
 * whose planner sizes the blocks from them */
#define LCF_LOAD_UNROLL 4 /* points whose loads are in flight together, per thread */

/* The engine: its plan (every choice, made by lc_plan_make at create) and its device data. */
struct long_conv_fast {
    lc_plan_t plan;
    float2 *d_spec; /* [d][rows][M]: FFT(k)/N in the FFT's position order        */
    float2 *d_tw;   /* [n_hi + 128]: hi table then lo table                      */
    long_conv_toeplitz_t *toep; /* v4: where the plan has it (bf16 / fp16 runs), else NULL  */
};

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

__device__ __forceinline__ float silu(float v) { return v / (1.0f + __expf(-v)); }

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

typedef void (*lcf_kernel_fn)(const lcf_params);

/* The kernel copy the plan names (lcf_plan_t: minb, fused_radix): MINB 2 (64 registers, two
 * 512-thread blocks an SM) where a block holds <= LCF_SMALL_M points, LCF_NARROW_MINB for the
 * narrow copy, and (v6) the block's radix-R0 digit fused into load and store where the
 * combined digit P R0 is <= LCF_FUSE_Q. */
template <int P, typename Tx> static lcf_kernel_fn lcf_pick(const lcf_plan_t &f) {
    const int r0f = f.fused_radix;
    /* v7: 8192 = 2 x 16^3 points, so R0 = 2; the plan takes the narrow copy for clusters of 1
     * and 2 alone */
    if (f.minb == LCF_NARROW_MINB) {
        if constexpr (P <= 2) return lcf_kernel<P, Tx, LCF_NARROW_MINB, 2>;
    }
    if (f.minb == 2) {
        switch (r0f) {
        case 2: if constexpr (P * 2 <= LCF_FUSE_Q) return lcf_kernel<P, Tx, 2, 2>; break;
        case 4: if constexpr (P * 4 <= LCF_FUSE_Q) return lcf_kernel<P, Tx, 2, 4>; break;
        case 8: if constexpr (P * 8 <= LCF_FUSE_Q) return lcf_kernel<P, Tx, 2, 8>; break;
        default: break;
        }
        return lcf_kernel<P, Tx, 2, 1>;
    }
    if (r0f == 4) { /* M = 16384 = 4 x 16^3 */
        if constexpr (P * 4 <= LCF_FUSE_Q) return lcf_kernel<P, Tx, 1, 4>;
    }
    return lcf_kernel<P, Tx, 1, 1>;
}

template <int P, typename Tx>
static int lcf_launch(const lcf_plan_t &f, const lcf_params &prm, unsigned nblocks,
                      cudaStream_t stream) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(nblocks, 1, 1);
    cfg.blockDim = dim3((unsigned)f.threads, 1, 1);
    cfg.dynamicSmemBytes = f.smem_bytes;
    cfg.stream = stream;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeClusterDimension;
    attr[0].val.clusterDim.x = P;
    attr[0].val.clusterDim.y = 1;
    attr[0].val.clusterDim.z = 1;
    cfg.attrs = attr;
    cfg.numAttrs = P > 1 ? 1 : 0;
    CUDA_CHECK(cudaLaunchKernelEx(&cfg, lcf_pick<P, Tx>(f), prm));
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

template <typename Tx>
static int lcf_launch_p(const lcf_plan_t &f, const lcf_params &prm, unsigned nblocks,
                        cudaStream_t stream) {
    switch (f.P) {
    case 1: return lcf_launch<1, Tx>(f, prm, nblocks, stream);
    case 2: return lcf_launch<2, Tx>(f, prm, nblocks, stream);
    case 4: return lcf_launch<4, Tx>(f, prm, nblocks, stream);
    case 8: return lcf_launch<8, Tx>(f, prm, nblocks, stream);
    }
    BENCH_FAIL("long_conv_fast: no kernel for cluster size %d", f.P);
}

/* the shared-memory attribute of the copies this plan runs, every run dtype */
template <int P> static int lcf_set_attrs(const lcf_plan_t &f) {
    const int smem = (int)f.smem_bytes;
    CUDA_CHECK(cudaFuncSetAttribute(lcf_pick<P, float>(f), cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    CUDA_CHECK(cudaFuncSetAttribute(lcf_pick<P, __nv_bfloat16>(f),
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    CUDA_CHECK(cudaFuncSetAttribute(lcf_pick<P, __half>(f), cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    return 0;
}

static lcf_params lcf_base_params(const long_conv_fast_t *p) {
    const lcf_plan_t &f = p->plan.fft;
    lcf_params prm = {};
    prm.spec = p->d_spec;
    prm.tw = p->d_tw;
    prm.d = p->plan.d;
    prm.T = p->plan.T;
    prm.M = f.M;
    prm.log_m = f.log_m;
    prm.N = f.N;
    prm.rows = f.rows;
    prm.n_hi = f.n_hi;
    prm.inv_n = 1.0f / (float)f.N;
    return prm;
}

/* The device facts the plan needs (lc_device_t), asked once at create.  0, or -1 after
 * bench_set_error where the runtime cannot name the device or its SM count. */
static int lc_device_gather(lc_device_t *dev) {
    dev->wgmma_usable = long_conv_toeplitz_wgmma_here();
    dev->sm_count = 0;
    int id = 0;
    CUDA_CHECK(cudaGetDevice(&id));
    CUDA_CHECK(cudaDeviceGetAttribute(&dev->sm_count, cudaDevAttrMultiProcessorCount, id));
    return 0;
}

} // namespace

/* ---- engine API ------------------------------------------------------------------------------ */
extern "C" void long_conv_fast_opts_from(const struct settings *set, long_conv_fast_opts_t *o) {
    o->toeplitz_max_t = settings_get(set, "lcf_toeplitz_max_t");
    o->xpair = settings_get(set, "lcf_xpair");
    o->block_points = settings_get(set, "lcf_block_points");
    o->narrow = settings_get(set, "lcf_narrow");
    o->toep.version = settings_get(set, "lct_version");
    o->toep.lcw_w = settings_get(set, "lcw_w");
    o->toep.lcw_sets = settings_get(set, "lcw_sets");
}

extern "C" size_t long_conv_fast_workspace(int B, int d, int T, const long_conv_fast_opts_t *o) {
    /* the bytes depend on the Toeplitz limit, not on the SM count */
    const lc_device_t dev = {0, long_conv_toeplitz_wgmma_here()};
    return lc_plan_workspace(B, d, T, &dev, o);
}

extern "C" void long_conv_fast_destroy(long_conv_fast_t *p) {
    if (!p) return;
    if (p->d_spec) cudaFree(p->d_spec);
    if (p->d_tw) cudaFree(p->d_tw);
    long_conv_toeplitz_destroy(p->toep);
    free(p);
}

static int lcf_create_impl(long_conv_fast_t *p, const float *d_taps, cudaStream_t stream) {
    const lcf_plan_t &f = p->plan.fft;
    const size_t spec_bytes = (size_t)p->plan.d * f.rows * f.M * sizeof(float2);
    CUDA_CHECK(cudaMalloc((void **)&p->d_spec, spec_bytes));
    const int ntw = f.n_hi + LCF_TW_LO;
    CUDA_CHECK(cudaMalloc((void **)&p->d_tw, (size_t)ntw * sizeof(float2)));
    float2 *h_tw = (float2 *)malloc((size_t)ntw * sizeof(float2));
    if (!h_tw) BENCH_FAIL("long_conv_fast: out of host memory");
    /* hi[h] = W_N^(128 h), lo[l] = W_N^l, W_N = exp(-2 pi i / N), made in double */
    for (int i = 0; i < ntw; i++) {
        const long long e = i < f.n_hi ? (long long)i << LCF_TW_LO_BITS : i - f.n_hi;
        const double ang = -2.0 * M_PI * (double)e / (double)f.N;
        h_tw[i] = make_float2((float)cos(ang), (float)sin(ang));
    }
    const cudaError_t ce =
        cudaMemcpy(p->d_tw, h_tw, (size_t)ntw * sizeof(float2), cudaMemcpyHostToDevice);
    free(h_tw);
    CUDA_CHECK(ce);

    switch (f.P) {
    case 1: if (lcf_set_attrs<1>(f)) return -1; break;
    case 2: if (lcf_set_attrs<2>(f)) return -1; break;
    case 4: if (lcf_set_attrs<4>(f)) return -1; break;
    case 8: if (lcf_set_attrs<8>(f)) return -1; break;
    default: BENCH_FAIL("long_conv_fast: bad cluster size %d", f.P);
    }

    /* Spectrum: this very kernel on the taps (one real row per channel), stopped after the
     * forward transform, writing FFT(k)/N in its own position order. */
    lcf_params prm = lcf_base_params(p);
    prm.x = d_taps;
    prm.spec_out = p->d_spec;
    prm.B = 1;
    prm.npairs = 1;
    if (lcf_launch_p<float>(f, prm, (unsigned)p->plan.d * f.P, stream)) return -1;
    CUDA_CHECK(cudaStreamSynchronize(stream));
    /* the spectrum stays: fp32 runs always take the FFT */
    if (p->plan.toeplitz && long_conv_toeplitz_create(&p->plan.toep, d_taps, stream, &p->toep) != 0)
        return -1;
    return 0;
}

extern "C" int long_conv_fast_create(int B, int d, int T, const float *d_taps,
                                     const long_conv_fast_opts_t *o, cudaStream_t stream,
                                     long_conv_fast_t **out) {
    *out = NULL;
    if (B < 1 || d < 1 || T < 1) BENCH_FAIL("long_conv_fast: empty shape B=%d d=%d T=%d", B, d, T);
    if (T > LONG_CONV_FAST_MAX_T)
        BENCH_FAIL("long_conv_fast: T = %d > %d is not supported", T, LONG_CONV_FAST_MAX_T);
    lc_device_t dev;
    if (lc_device_gather(&dev) != 0) return -1;
    lc_plan_t plan;
    if (lc_plan_make(B, d, T, &dev, o, &plan) != 0)
        BENCH_FAIL("long_conv_fast: no plan for B=%d d=%d T=%d", B, d, T);
    const long long nblocks = (long long)d * ((B + 1) / 2) * plan.fft.P;
    if (nblocks > 0x7fffffffLL) BENCH_FAIL("long_conv_fast: grid of %lld blocks too large", nblocks);
    long_conv_fast_t *p = (long_conv_fast_t *)calloc(1, sizeof *p);
    if (!p) BENCH_FAIL("long_conv_fast: out of host memory");
    p->plan = plan;
    if (lcf_create_impl(p, d_taps, stream) != 0) {
        long_conv_fast_destroy(p); /* keeps the recorded error */
        return -1;
    }
    *out = p;
    return 0;
}

extern "C" void long_conv_fast_describe(const long_conv_fast_t *p, dtype_t dtype, char *buf,
                                       size_t len) {
    if (!len) return;
    buf[0] = 0;
    if (!p) return;
    lc_plan_describe(&p->plan, dtype, buf, len); /* long_conv_fast_run's path */
}

extern "C" int long_conv_fast_run(const long_conv_fast_t *p, const void *d_x, void *d_y,
                                  dtype_t dtype, const float *d_pre3, cudaStream_t stream) {
    if (!p) BENCH_FAIL("long_conv_fast: run without create");
    if (lc_plan_path(&p->plan, dtype) != LC_PATH_FFT)
        return long_conv_toeplitz_run(p->toep, d_x, d_y, dtype, d_pre3, stream);
    const lcf_plan_t &f = p->plan.fft;
    lcf_params prm = lcf_base_params(p);
    prm.x = d_x;
    prm.y = d_y;
    prm.pre3 = d_pre3;
    prm.B = p->plan.B;
    prm.xpair = f.xpair;
    prm.npairs = f.npairs; /* same-channel pairs a channel */
    const unsigned nblocks = (unsigned)f.blocks;
    switch (dtype) {
    case DTYPE_BF16: return lcf_launch_p<__nv_bfloat16>(f, prm, nblocks, stream);
    case DTYPE_F16: return lcf_launch_p<__half>(f, prm, nblocks, stream);
    case DTYPE_F32: return lcf_launch_p<float>(f, prm, nblocks, stream);
    }
    BENCH_FAIL("long_conv_fast: unknown dtype %d", (int)dtype);
}

/* ---- the variant long_conv/fast ---------------------------------------------------------------- */
extern "C" const char *long_conv_fast_var_supports(const shape_t *s) {
    if (s->dtype != DTYPE_F32 && s->dtype != DTYPE_BF16 && s->dtype != DTYPE_F16)
        return "dtype must be fp32, bf16 or fp16";
    if (s->B < 1 || s->d < 1 || s->T < 1) return "empty shape";
    if (s->T > LONG_CONV_FAST_MAX_T) return "T > 65536 (FFT of 2T beyond one cluster of 8)";
    long_conv_fast_opts_t o;
    long_conv_fast_opts_from(s->set, &o);
    lcf_plan_t g;
    lcf_plan_geometry(s->T, &o, &g);
    if ((long long)s->d * ((s->B + 1) / 2) * g.P > 0x7fffffffLL) return "B*d too large for the grid";
    return NULL;
}

extern "C" size_t long_conv_fast_var_workspace_bytes(const shape_t *s) {
    long_conv_fast_opts_t o;
    long_conv_fast_opts_from(s->set, &o);
    return long_conv_fast_workspace(s->B, s->d, s->T, &o);
}

/* The variant's state: the engine plus the run dtype (the engine itself takes it per run). */
typedef struct {
    long_conv_fast_t *eng;
    dtype_t dtype;
} lcf_var_state_t;

extern "C" int long_conv_fast_var_setup(const shape_t *s, const io_t *io, void **state) {
    *state = NULL;
    const char *why = long_conv_fast_var_supports(s);
    if (why) BENCH_FAIL("long_conv/fast: unsupported shape: %s", why);
    lcf_var_state_t *st = (lcf_var_state_t *)calloc(1, sizeof *st);
    if (!st) BENCH_FAIL("long_conv/fast: out of host memory");
    st->dtype = s->dtype;
    long_conv_fast_opts_t o; /* the settings, resolved once: the engine's plan keeps them */
    long_conv_fast_opts_from(s->set, &o);
    if (long_conv_fast_create(s->B, s->d, s->T, (const float *)io->in[1], &o, 0, &st->eng) != 0) {
        free(st);
        return -1;
    }
    *state = st;
    return 0;
}

extern "C" int long_conv_fast_var_run(void *state, const io_t *io, cudaStream_t stream) {
    const lcf_var_state_t *st = (const lcf_var_state_t *)state;
    if (!st) BENCH_FAIL("long_conv/fast: run without setup");
    return long_conv_fast_run(st->eng, io->in[0], io->out, st->dtype, NULL, stream);
}

extern "C" void long_conv_fast_var_teardown(void *state) {
    lcf_var_state_t *st = (lcf_var_state_t *)state;
    if (!st) return;
    long_conv_fast_destroy(st->eng);
    free(st);
}

extern "C" void long_conv_fast_var_config(const void *state, char *buf, size_t len) {
    const lcf_var_state_t *st = (const lcf_var_state_t *)state;
    if (st)
        long_conv_fast_describe(st->eng, st->dtype, buf, len);
    else if (len)
        buf[0] = 0;
}
