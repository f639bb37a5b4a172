/* softmax_attn/flash: causal softmax attention without materialising the scores: tiled online
 * softmax (FlashAttention-2's forward), on tensor cores.
 *
 * ---- version index (llm.c style) ------------------------------------------------------------
 * Run:  chela-bench --ops softmax_attn --variants flash --seq 1k..64k
 * Both versions are always built; SA_FLASH_VERSION picks the one launched (default 2), e.g.
 *       cmake -S . -B build -DCMAKE_CUDA_FLAGS=-DSA_FLASH_VERSION=1
 * v1  scalar online softmax, a warp a query row, fp32 expf: v2's check, never timed.
 * v2  FlashAttention-2's forward on mma.sync.  0.550 ms at T = 1k, 26.26 ms at 64k (H100, bf16,
 *     H 16, D 64, 65536 tokens): 250-335 TFLOP/s, 1.28-1.52x PyTorch SDPA (cuDNN), 0.79-0.96x
 *     its FA2 backend.  profiles/NOTES.md, "softmax_attn".
 * v2 training form (--pass bwd|fwdbwd): the same forward with a template flag (LSE) that also
 *     writes each row's log-sum-exp L, fp32 [B*H][T], into the variant's state; the backward
 *     (flash_bwd.cu, its own version index) recomputes P from it.  The inference kernels are
 *     unchanged (ptxas: 242/245 registers packed, 251/244 strided, as before); the LSE ones use
 *     255 (D = 64) and 244 (D = 128) packed, no spills.  Not yet timed.
 *       chela-bench --ops softmax_attn --variants flash --pass fwd,bwd,fwdbwd --seq 1k..64k
 *
 *   q, k, v [B,H,T,D] (bf16 or fp16)  ->  o [B,H,T,D],  D = dk = dv in {64, 128}
 *   o_i = sum_{j <= i} softmax_j(q_i . k_j / sqrt(D)) v_j
 *
 * Cost model (LM shape H = 16, D = 64, 65536 tokens a point): the op's FLOPs are
 * 4 * B*H * T^2 * D / 2 = 2^20 * 128 * T -> 0.14 TFLOP at T = 1k, 8.8 TFLOP at T = 64k. HBM is
 * tiny: q, k, v, o once = 537 MB (0.18 ms at 2.97 TB/s), plus K/V re-reads that mostly hit the
 * 50 MB L2 because the blocks of one head sweep K/V together. So this is compute-bound: the
 * tensor cores for the two GEMMs and the SFU for one exp per score (FA3's observation that at
 * D = 64 the exp rate, 16/clk/SM, is within 2x of the mma.sync rate).
 * Targets (peer: PyTorch SDPA, FA2 backend, on the H100 of anchors/h100-peers.csv): 0.45 ms at
 * T = 1k, 2.4 ms at 8k, 18.6 ms at 64k; this baseline aims at <= 1.5x of that (~310 TFLOP/s).
 *
 * The versions in detail.
 *
 * v1: obviously-correct scalar version. One warp per query row, lanes own D/32 columns of q and
 *   of the output accumulator; for each key j <= i the warp computes q.k_j (shuffle all-reduce),
 *   then the online-softmax update (running max m, running sum l, rescale acc by exp(m - m')).
 *   fp32 throughout, expf. Rows are handed out longest-first across all heads. No tensor cores,
 *   no shared memory: ~20 instructions per (row, key) pair -> ~11 ms at T = 1k, ~0.7 s at
 *   T = 64k. It exists to check v2 against, not to be timed.
 *   measured: never timed (the check for v2).
 *
 * v2: FlashAttention-2 forward with mma.sync.m16n8k16 (bf16/fp16 in, fp32 accumulate).
 *   - Block: 128 query rows, 4 warps, each warp owns 32 contiguous rows (two m16 tiles), so each
 *     K/V fragment loaded from shared memory feeds two mma's (halves smem traffic vs 16 rows).
 *   - grid = (B*H, ceil(T/128)): x is the head (no 65535 limit), y walks the query blocks in
 *     reverse so that blocks are issued heaviest-first (longest causal rows), across all heads:
 *     a greedy longest-first schedule for the causal triangle.
 *   - K/V tiles of 64 keys (32 at D = 128, for registers), double-buffered in shared memory
 *     with 16-byte cp.async (zero-filled past T, so masked keys multiply exact zeros, never
 *     stale NaNs); one wait + barrier per tile, the next tile's copy in flight during this
 *     tile's math.
 *   - Shared tiles are [rows][D] with the 16-byte chunk index XOR-swizzled by (row & 7): the 8
 *     row addresses of every ldmatrix 8x8 matrix land in 8 distinct 16-byte bank groups.
 *   - S = Q K^T: Q's A fragments live in registers for D = 64 (32 regs, loaded once); for
 *     D = 128 they are re-read from shared memory each tile (registers: O alone is 128/thread).
 *     K's B fragments by ldmatrix.x4 (two n8 tiles x k16 per instruction).
 *   - Online softmax in registers: exp2 with the scale folded in (log2(e)/sqrt(D)), one FFMA +
 *     ex2.approx per score; row max via two quad shuffles; the row sum stays per-thread partial
 *     until the end (FA2's trick). Masking only on the tiles that touch the diagonal or T's
 *     tail (a template flag, so the common tile has no compares); a warp whose 32 rows are all
 *     above a diagonal tile skips it entirely.
 *   - O += P V: the S accumulators, converted to bf16/fp16 pairs in registers, are exactly the
 *     A fragments of the next mma (C layout of m16n8 == A layout of m16k16 halves); V's B
 *     fragments by ldmatrix.x4.trans.
 *   - Epilogue: O / l staged through the (now free) Q tile in shared memory and written with
 *     coalesced 16-byte stores, rows >= T dropped.
 *   Resources (ptxas, CUDA 13.0, sm_90): D = 64: 242 registers, 48 KB smem (Q 16 + K,V
 *   2 x 2 x 8); D = 128: 245 registers, 64 KB smem (Q 32 + K,V 2 x 2 x 8); no spills; 128
 *   threads -> 2 blocks (8 warps) per SM. SASS of an unmasked D = 64 tile, per warp: 128 HMMA,
 *   32 LDSM, 68 MUFU.EX2 and ~350 other FP/integer instructions, so the issue slots and the
 *   SFU are nearly as busy as the tensor pipe: predicted ~300-350 TFLOP/s at D = 64, like FA2
 *   on H100: ~0.45 ms at T = 1k, ~26 ms at 64k.
 *   measured: 0.550 ms at T = 1k, 3.588 at 8k, 26.26 at 64k (the index above).
 *
 * Exported launcher (softmax_attn/flash.h): the same kernels with each tensor's batch, head and
 * row strides, so transformer/layer runs attention straight on its QKV GEMM output [B,T,3d].
 * The variant's packed [B,H,T,D] layout is its own instantiation (PACKED = true) whose offsets
 * are the compile-time expressions of before: ptxas reports the same registers as before the
 * change (242 at D = 64, 245 at D = 128, no spills); the strided one uses 251 / 244.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_check.h"
#include "common/math.cuh"     /* warp_sum */
#include "common/mma_sync.cuh" /* cp.async (zero-fill form, .cg: past L1), ldmatrix, mma */
#include "dtype_device.cuh"    /* to_f32, from_f32 */
#include "softmax_attn/flash.h"
#include "softmax_attn/flash_bwd.h"
#include "softmax_attn/flash_common.cuh" /* swz, mma_op, ex2, load_tile */
#include "variant.h"

#ifndef SA_FLASH_VERSION
#define SA_FLASH_VERSION 2
#endif

extern "C" {
DECLARE_VARIANT(softmax_attn_flash);
DECLARE_BWD(softmax_attn_flash);
}

/* Both versions are always compiled (so v1 cannot rot); this constant picks the one launched. */
static constexpr int kVersion = SA_FLASH_VERSION;

namespace {

/* ================================ v1: one warp per query row ============================== */

constexpr int V1_WARPS = 8;

template <typename T, int D>
__global__ void __launch_bounds__(V1_WARPS * 32)
flash_fwd_v1(const T *__restrict__ d_q, const T *__restrict__ d_k, const T *__restrict__ d_v,
             T *__restrict__ d_o, int seqlen, int n_heads, int bh_count, float scale,
             sa_layout_t in, sa_layout_t out) {
    constexpr int E = D / 32; /* columns per lane: d = lane + 32 e (coalesced across the warp) */
    const long long n_rows = (long long)bh_count * seqlen;
    const long long wid = (long long)blockIdx.x * V1_WARPS + (threadIdx.x >> 5);
    if (wid >= n_rows) return; /* warp-uniform; no barriers in this kernel */
    const int lane = threadIdx.x & 31;
    /* Longest rows first, across heads: consecutive warps take row i of consecutive heads. */
    const int i = seqlen - 1 - (int)(wid / bh_count);
    const long long bh = wid % bh_count, b = bh / n_heads, h = bh % n_heads;
    const long long head = b * in.batch + h * in.head, ld = in.row;
    const T *qh = d_q + head, *kh = d_k + head, *vh = d_v + head;

    float qr[E], acc[E];
#pragma unroll
    for (int e = 0; e < E; e++) {
        qr[e] = to_f32(qh[(long long)i * ld + lane + 32 * e]) * scale;
        acc[e] = 0.f;
    }
    float m = -INFINITY, l = 0.f;
    for (int j = 0; j <= i; j++) {
        float sc = 0.f;
#pragma unroll
        for (int e = 0; e < E; e++) sc += qr[e] * to_f32(kh[(long long)j * ld + lane + 32 * e]);
        sc = warp_sum(sc);
        const float mn = fmaxf(m, sc);
        const float a = expf(m - mn); /* m = -inf on the first key: a = 0 */
        const float p = expf(sc - mn);
        l = l * a + p;
#pragma unroll
        for (int e = 0; e < E; e++)
            acc[e] = acc[e] * a + p * to_f32(vh[(long long)j * ld + lane + 32 * e]);
        m = mn;
    }
    const float inv_l = 1.f / l; /* l >= 1: the row's max contributes exp(0) */
#pragma unroll
    for (int e = 0; e < E; e++)
        d_o[b * out.batch + h * out.head + (long long)i * out.row + lane + 32 * e] =
            from_f32<T>(acc[e] * inv_l);
}

/* ================================ v2: FA2 forward, mma.sync ================================ */

constexpr int BM = 128;          /* query rows per block                   */
constexpr int NWARPS = 4;
constexpr int NTHREADS = NWARPS * 32;
constexpr int WROWS = BM / NWARPS; /* 32 query rows per warp = two m16 tiles */
constexpr int MT = WROWS / 16;   /* m16 tiles per warp                     */
static_assert(MT == 2, "the fragment code below assumes two m16 tiles per warp");

template <int D> struct fcfg {
    /* keys per K/V tile: 32 at D = 128, where 64 keys of fp32 scores on top of the 128
     * registers of O spilled (ptxas, CUDA 13.0: 80 B of spills at BN = 64, none at 32) */
    static constexpr int BN = (D == 64) ? 64 : 32;
    static constexpr bool Q_IN_REGS = (D == 64);  /* D = 128 keeps Q in smem (registers)   */
    static constexpr int CPR = D / 8;             /* 16-byte chunks per row                */
    static constexpr int Q_BYTES = BM * D * 2;
    static constexpr int KV_BYTES = BN * D * 2;   /* one K or one V tile                   */
    static constexpr int SMEM_BYTES = Q_BYTES + 4 * KV_BYTES; /* Q + 2 stages x (K, V)     */
    static_assert(BM % BN == 0, "query blocks must start on a K/V tile boundary");
    static_assert((BM * CPR) % NTHREADS == 0 && (BN * CPR) % NTHREADS == 0, "tile loaders");
};

/* One K/V tile for one warp: S = Q K^T, online softmax, O += P V.
 * MASK: some (row, key) pair of this warp's rows x this tile has key > row or key >= T. */
template <typename T, int D, bool MASK>
__device__ __forceinline__ void tile_step(uint32_t s_q, uint32_t s_k, uint32_t s_v,
                                          const uint32_t (&q_frag)[MT][D / 16][4],
                                          float (&o_acc)[MT][D / 8][4], float (&m_row)[MT][2],
                                          float (&l_row)[MT][2], int warp, int lane, int n0,
                                          int warp_row0, int seqlen, float scale_log2) {
    using C = fcfg<D>;
    constexpr int BN = C::BN;
    const int g = lane >> 2, t = lane & 3;
    const int mi = lane >> 3, r8 = lane & 7; /* ldmatrix: which 8x8 matrix / which of its rows */

    /* ---- S = Q K^T (raw dot products; the scale is applied inside the exp2) ---- */
    float s[MT][BN / 8][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int nt = 0; nt < BN / 8; nt++)
#pragma unroll
            for (int c = 0; c < 4; c++) s[mt][nt][c] = 0.f;

    /* With Q in smem (D = 128), a fully unrolled k loop lets the scheduler hoist every Q and
     * K fragment load (64 + 64 registers) and spill; 2 k-steps at a time keep enough loads in
     * flight. kk indexes no register array on that path, so partial unrolling is safe. */
#pragma unroll(C::Q_IN_REGS ? D / 16 : 2)
    for (int kk = 0; kk < D / 16; kk++) {
        uint32_t a[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
            if constexpr (C::Q_IN_REGS) {
#pragma unroll
                for (int c = 0; c < 4; c++) a[mt][c] = q_frag[mt][kk][c];
            } else {
                /* matrices: 0 = rows 0-7 / k 0-7, 1 = rows 8-15 / k 0-7, 2 = rows 0-7 / k 8-15,
                 * 3 = rows 8-15 / k 8-15  ->  a[0..3] of the A fragment */
                const int row = warp * WROWS + mt * 16 + r8 + (mi & 1) * 8;
                ldsm_x4(a[mt], s_q + swz<D>(row, 2 * kk + (mi >> 1)));
            }
        }
#pragma unroll
        for (int np = 0; np < BN / 16; np++) {
            /* matrices: 0 = keys 0-7 / d 0-7, 1 = keys 0-7 / d 8-15, 2 = keys 8-15 / d 0-7,
             * 3 = keys 8-15 / d 8-15  ->  (b0, b1) of n-tile 2np, then of n-tile 2np + 1 */
            uint32_t b[4];
            const int key = np * 16 + r8 + (mi >> 1) * 8;
            ldsm_x4(b, s_k + swz<D>(key, 2 * kk + (mi & 1)));
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                mma_16816<mma_op<T>::BF16>(s[mt][2 * np], a[mt], b[0], b[1]);
                mma_16816<mma_op<T>::BF16>(s[mt][2 * np + 1], a[mt], b[2], b[3]);
            }
        }
    }

    if constexpr (MASK) {
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int nt = 0; nt < BN / 8; nt++)
#pragma unroll
                for (int c = 0; c < 4; c++) {
                    const int row = warp_row0 + mt * 16 + g + (c >> 1) * 8;
                    const int key = n0 + nt * 8 + 2 * t + (c & 1);
                    if (key > row || key >= seqlen) s[mt][nt][c] = -INFINITY;
                }
    }

    /* ---- online softmax; h = 0: row g (c = 0, 1), h = 1: row g + 8 (c = 2, 3) ---- */
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
#pragma unroll
        for (int h = 0; h < 2; h++) {
            float mx = m_row[mt][h];
#pragma unroll
            for (int nt = 0; nt < BN / 8; nt++)
                mx = fmaxf(mx, fmaxf(s[mt][nt][2 * h], s[mt][nt][2 * h + 1]));
            /* the 4 threads of a quad hold the same row */
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
            /* A row with every key masked so far has mx = -inf: use 0 as the reference so
             * exp2(-inf - ref) = 0 instead of NaN. Unmasked tiles always have a finite max. */
            float ref = mx;
            if constexpr (MASK) ref = (mx == -INFINITY) ? 0.f : mx;
            const float ref_s = ref * scale_log2;
            const float alpha = ex2(m_row[mt][h] * scale_log2 - ref_s); /* old -inf -> 0 */
            m_row[mt][h] = mx;
            float lsum = 0.f;
#pragma unroll
            for (int nt = 0; nt < BN / 8; nt++) {
#pragma unroll
                for (int c = 2 * h; c < 2 * h + 2; c++) {
                    const float p = ex2(fmaf(s[mt][nt][c], scale_log2, -ref_s));
                    s[mt][nt][c] = p;
                    lsum += p;
                }
            }
            l_row[mt][h] = l_row[mt][h] * alpha + lsum; /* per-thread partial, reduced at end */
#pragma unroll
            for (int dt = 0; dt < D / 8; dt++) {
                o_acc[mt][dt][2 * h] *= alpha;
                o_acc[mt][dt][2 * h + 1] *= alpha;
            }
        }
    }

    /* ---- O += P V. The C fragments of n-tiles 2kk and 2kk+1 are the A fragment of k-step kk:
     * a[0] = (row g, keys 2t..) = S tile 2kk c0,c1;  a[1] = (row g+8) = tile 2kk c2,c3;
     * a[2] = (row g, keys 8+2t..) = tile 2kk+1 c0,c1; a[3] = tile 2kk+1 c2,c3. ---- */
#pragma unroll
    for (int kk = 0; kk < BN / 16; kk++) {
        uint32_t a[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
            a[mt][0] = mma_op<T>::pack(s[mt][2 * kk][0], s[mt][2 * kk][1]);
            a[mt][1] = mma_op<T>::pack(s[mt][2 * kk][2], s[mt][2 * kk][3]);
            a[mt][2] = mma_op<T>::pack(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
            a[mt][3] = mma_op<T>::pack(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
        }
#pragma unroll
        for (int dp = 0; dp < D / 16; dp++) {
            /* .trans matrices: 0 = keys 0-7 / d 0-7, 1 = keys 8-15 / d 0-7, 2 = keys 0-7 /
             * d 8-15, 3 = keys 8-15 / d 8-15  ->  (b0, b1) of d-tile 2dp, then of 2dp + 1 */
            uint32_t b[4];
            const int key = kk * 16 + r8 + (mi & 1) * 8;
            ldsm_x4_trans(b, s_v + swz<D>(key, 2 * dp + (mi >> 1)));
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                mma_16816<mma_op<T>::BF16>(o_acc[mt][2 * dp], a[mt], b[0], b[1]);
                mma_16816<mma_op<T>::BF16>(o_acc[mt][2 * dp + 1], a[mt], b[2], b[3]);
            }
        }
    }
}

/* PACKED: q, k, v, o are [B*H][T][D] (softmax_attn's layout): head and row offsets are
 * compile-time multiples of D, the code the variant was measured with.  Otherwise the
 * offsets come from the layouts (softmax_attn/flash.h).
 * LSE (the training forward): also writes each row's log-sum-exp of its scaled scores,
 * d_lse[bh * T + row] = ln sum_{j <= row} exp(q.k_j / sqrt(D)), natural log, fp32, for the
 * backward to recompute P from.  The inference instantiations (LSE = false) never touch
 * d_lse: ptxas reports the same registers for them as before the flag existed. */
template <typename T, int D, bool PACKED, bool LSE>
__global__ void __launch_bounds__(NTHREADS, 2)
flash_fwd_v2(const T *__restrict__ d_q, const T *__restrict__ d_k, const T *__restrict__ d_v,
             T *__restrict__ d_o, int seqlen, float scale_log2, int n_heads, sa_layout_t in,
             sa_layout_t out, float *__restrict__ d_lse) {
    using C = fcfg<D>;
    constexpr int BN = C::BN;
    extern __shared__ __align__(128) unsigned char smem[];

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int bh = blockIdx.x;
    const int qb = (int)gridDim.y - 1 - (int)blockIdx.y; /* heaviest query blocks first */
    const int m0 = qb * BM;
    const int hb = bh / n_heads, hh = bh % n_heads;
    /* all offsets are >= 0: size_t, as the packed code always computed them */
    const size_t head = PACKED ? (size_t)bh * (size_t)seqlen * D
                               : (size_t)(hb * in.batch + hh * in.head);
    const size_t head_o = PACKED ? head : (size_t)(hb * out.batch + hh * out.head);
    const size_t ld = PACKED ? (size_t)D : (size_t)in.row;
    const size_t ld_o = PACKED ? (size_t)D : (size_t)out.row;
    const T *qh = d_q + head, *kh = d_k + head, *vh = d_v + head;

    const uint32_t s_q = smem_u32(smem);
    const uint32_t s_k0 = s_q + C::Q_BYTES;          /* K stages 0, 1 */
    const uint32_t s_v0 = s_k0 + 2 * C::KV_BYTES;    /* V stages 0, 1 */

    /* Causal: the last row of the block is min(m0 + BM, T) - 1, so keys [0, kv_end). */
    const int kv_end = min(m0 + BM, seqlen);
    const int n_tiles = (kv_end + BN - 1) / BN;

    load_tile<T, D, BM, NTHREADS>(s_q, qh, ld, m0, seqlen, tid);
    cp_async_commit();                                  /* group: Q            */
    load_tile<T, D, BN, NTHREADS>(s_k0, kh, ld, 0, seqlen, tid);
    load_tile<T, D, BN, NTHREADS>(s_v0, vh, ld, 0, seqlen, tid);
    cp_async_commit();                                  /* group: K0, V0       */

    uint32_t q_frag[MT][D / 16][4];
    float o_acc[MT][D / 8][4];
    float m_row[MT][2], l_row[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
#pragma unroll
        for (int dt = 0; dt < D / 8; dt++)
#pragma unroll
            for (int c = 0; c < 4; c++) o_acc[mt][dt][c] = 0.f;
        m_row[mt][0] = m_row[mt][1] = -INFINITY;
        l_row[mt][0] = l_row[mt][1] = 0.f;
    }

    cp_async_wait<1>(); /* this thread's Q chunks have landed */
    __syncthreads();    /* ... and everyone else's            */
    if constexpr (C::Q_IN_REGS) {
        const int mi = lane >> 3, r8 = lane & 7;
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int kk = 0; kk < D / 16; kk++) {
                const int row = warp * WROWS + mt * 16 + r8 + (mi & 1) * 8;
                ldsm_x4(q_frag[mt][kk], s_q + swz<D>(row, 2 * kk + (mi >> 1)));
            }
    } else {
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int kk = 0; kk < D / 16; kk++)
#pragma unroll
                for (int c = 0; c < 4; c++) q_frag[mt][kk][c] = 0u; /* unused: Q read from smem */
    }

    const int warp_row0 = m0 + warp * WROWS; /* this warp's first query row */
    for (int it = 0; it < n_tiles; it++) {
        const int st = it & 1;
        /* Prefetch tile it+1 into the other stage; that stage was last read in iteration it-1,
         * which ended with a barrier. Always commit (maybe an empty group) so that
         * wait_group<1> below means "everything up to tile it has landed". */
        if (it + 1 < n_tiles) {
            load_tile<T, D, BN, NTHREADS>(s_k0 + (st ^ 1) * C::KV_BYTES, kh, ld, (it + 1) * BN,
                                          seqlen, tid);
            load_tile<T, D, BN, NTHREADS>(s_v0 + (st ^ 1) * C::KV_BYTES, vh, ld, (it + 1) * BN,
                                          seqlen, tid);
        }
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();

        const int n0 = it * BN;
        /* Skip the tile if every key is above every row of this warp (warp-uniform). */
        if (n0 <= warp_row0 + WROWS - 1) {
            const uint32_t s_k = s_k0 + st * C::KV_BYTES, s_v = s_v0 + st * C::KV_BYTES;
            const bool need_mask = (n0 + BN - 1 > warp_row0) || (n0 + BN > seqlen);
            if (need_mask)
                tile_step<T, D, true>(s_q, s_k, s_v, q_frag, o_acc, m_row, l_row, warp, lane, n0,
                                      warp_row0, seqlen, scale_log2);
            else
                tile_step<T, D, false>(s_q, s_k, s_v, q_frag, o_acc, m_row, l_row, warp, lane, n0,
                                       warp_row0, seqlen, scale_log2);
        }
        __syncthreads(); /* stage st is free for the prefetch of iteration it+1 */
    }

    /* ---- epilogue: O / l through the Q tile (free: the loop ended with a barrier) ---- */
    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
#pragma unroll
        for (int h = 0; h < 2; h++) {
            float l = l_row[mt][h];
            l += __shfl_xor_sync(0xffffffffu, l, 1);
            l += __shfl_xor_sync(0xffffffffu, l, 2);
            const float inv = l > 0.f ? 1.f / l : 0.f; /* l >= 1 for every row < T */
            const int row = warp * WROWS + mt * 16 + g + h * 8;
            if constexpr (LSE) {
                /* l sums exp2((s - m) scale_log2), so ln sum exp(s scale) = (m scale_log2 +
                 * log2 l) ln 2; m is the same in the quad's 4 threads (tile_step's shuffles) */
                if (t == 0 && m0 + row < seqlen)
                    d_lse[(size_t)bh * seqlen + m0 + row] =
                        (m_row[mt][h] * scale_log2 + __log2f(l)) * 0.6931471805599453f;
            }
#pragma unroll
            for (int dt = 0; dt < D / 8; dt++) {
                const uint32_t v = mma_op<T>::pack(o_acc[mt][dt][2 * h] * inv,
                                                   o_acc[mt][dt][2 * h + 1] * inv);
                /* chunk dt holds columns 8dt..8dt+7; this thread's pair starts at 8dt + 2t */
                *reinterpret_cast<uint32_t *>(smem + swz<D>(row, dt) + 4 * t) = v;
            }
        }
    }
    __syncthreads();
    T *oh = d_o + head_o;
#pragma unroll
    for (int it = 0; it < BM * C::CPR / NTHREADS; it++) {
        const int idx = it * NTHREADS + tid;
        const int r = idx / C::CPR, c = idx % C::CPR;
        const int grow = m0 + r;
        if (grow < seqlen)
            *reinterpret_cast<uint4 *>(oh + (size_t)grow * ld_o + c * 8) =
                *reinterpret_cast<const uint4 *>(smem + swz<D>(r, c));
    }
}

/* ------------------------------------------------------------------------------------------ */
/* host side                                                                                   */
/* ------------------------------------------------------------------------------------------ */

struct flash_state {
    int version; /* SA_FLASH_VERSION at build time, kept for debugging */
    int D;       /* head width: the tile shape of the config column   */
    /* Training (setup saw pass != fwd): the forward's log-sum-exp and the backward's delta,
     * fp32 [B*H][T] each; NULL for inference. */
    float *d_lse, *d_delta;
};

template <typename T, int D, bool PACKED, bool LSE> int prepare_v2_one() {
    /* > 48 KB of dynamic smem needs an opt-in; ask for the max-shared carveout so that two
     * 96 KB blocks (D = 128) fit on an SM beside each other. */
    CUDA_CHECK(cudaFuncSetAttribute(flash_fwd_v2<T, D, PACKED, LSE>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    fcfg<D>::SMEM_BYTES));
    CUDA_CHECK(cudaFuncSetAttribute(flash_fwd_v2<T, D, PACKED, LSE>,
                                    cudaFuncAttributePreferredSharedMemoryCarveout,
                                    (int)cudaSharedmemCarveoutMaxShared));
    return 0;
}

template <typename T, int D> int prepare_v2() {
    return prepare_v2_one<T, D, true, false>() || prepare_v2_one<T, D, false, false>() ||
                   prepare_v2_one<T, D, true, true>() || prepare_v2_one<T, D, false, true>()
               ? -1
               : 0;
}

bool is_packed(sa_layout_t l, int H, int T, int D) {
    return l.row == D && l.head == (long long)T * D && l.batch == (long long)H * T * D;
}

/* cp.async and the epilogue's uint4 stores move 16 bytes: every row start must be 16-byte
 * aligned, so the base pointers and all strides (2-byte elements) too. */
bool aligned16(const void *p, sa_layout_t l) {
    return ((uintptr_t)p & 15u) == 0 && l.batch % 8 == 0 && l.head % 8 == 0 && l.row % 8 == 0;
}

/* lse: NULL for inference, else the training forward's [B*H][T] log-sum-exp (v2 only). */
template <typename T, int D>
int launch(const void *q, const void *k, const void *v, sa_layout_t in, void *o,
           sa_layout_t out, float *lse, int B, int H, int seqlen, cudaStream_t stream) {
    const int bh = B * H;
    const T *d_q = (const T *)q, *d_k = (const T *)k, *d_v = (const T *)v;
    T *d_o = (T *)o;
    if (kVersion == 1) {
        if (lse) BENCH_FAIL("softmax_attn flash: v1 has no training forward (log-sum-exp)");
        const long long n_rows = (long long)bh * seqlen;
        const unsigned blocks = (unsigned)((n_rows + V1_WARPS - 1) / V1_WARPS);
        flash_fwd_v1<T, D><<<blocks, V1_WARPS * 32, 0, stream>>>(
            d_q, d_k, d_v, d_o, seqlen, H, bh, 1.0f / sqrtf((float)D), in, out);
    } else {
        const dim3 grid((unsigned)bh, (unsigned)((seqlen + BM - 1) / BM));
        const float scale_log2 = 1.4426950408889634f / sqrtf((float)D); /* log2(e) / sqrt(D) */
        constexpr int SMEM = fcfg<D>::SMEM_BYTES;
        const bool packed = is_packed(in, H, seqlen, D) && is_packed(out, H, seqlen, D);
        if (packed && !lse)
            flash_fwd_v2<T, D, true, false><<<grid, NTHREADS, SMEM, stream>>>(
                d_q, d_k, d_v, d_o, seqlen, scale_log2, H, in, out, lse);
        else if (!lse)
            flash_fwd_v2<T, D, false, false><<<grid, NTHREADS, SMEM, stream>>>(
                d_q, d_k, d_v, d_o, seqlen, scale_log2, H, in, out, lse);
        else if (packed)
            flash_fwd_v2<T, D, true, true><<<grid, NTHREADS, SMEM, stream>>>(
                d_q, d_k, d_v, d_o, seqlen, scale_log2, H, in, out, lse);
        else
            flash_fwd_v2<T, D, false, true><<<grid, NTHREADS, SMEM, stream>>>(
                d_q, d_k, d_v, d_o, seqlen, scale_log2, H, in, out, lse);
    }
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

} // namespace

extern "C" {

const char *softmax_attn_flash_problem(int B, int H, int T, int D, dtype_t dt) {
    if (dt == DTYPE_F32) return "flash needs bf16 or fp16 (tensor-core mma)";
    if (D != 64 && D != 128) return "head dim must be 64 or 128";
    if (T <= 0 || B <= 0 || H <= 0) return "empty shape";
    if ((long long)B * H > 2147483647LL) return "B*H must be < 2^31";
    if ((T + BM - 1) / BM > 65535) return "T must be <= 65535*128 (grid.y)";
    if ((long long)B * H * T / V1_WARPS >= 2147483647LL) return "B*H*T too large";
    return NULL;
}

int softmax_attn_flash_prepare(int D, dtype_t dt) {
    const char *why = softmax_attn_flash_problem(1, 1, 1, D, dt);
    if (why) BENCH_FAIL("softmax_attn flash: %s", why);
    if (dt == DTYPE_F16) return D == 64 ? prepare_v2<__half, 64>() : prepare_v2<__half, 128>();
    return D == 64 ? prepare_v2<__nv_bfloat16, 64>() : prepare_v2<__nv_bfloat16, 128>();
}

int softmax_attn_flash_launch_lse(const void *q, const void *k, const void *v, sa_layout_t in,
                                  void *o, sa_layout_t out, float *lse, int B, int H, int T,
                                  int D, dtype_t dt, cudaStream_t s) {
    const char *why = softmax_attn_flash_problem(B, H, T, D, dt);
    if (why) BENCH_FAIL("softmax_attn flash: %s", why);
    if (!aligned16(q, in) || !aligned16(k, in) || !aligned16(v, in) || !aligned16(o, out))
        BENCH_FAIL("softmax_attn flash: base pointers and strides must be 16-byte aligned");
    if (dt == DTYPE_F16)
        return D == 64 ? launch<__half, 64>(q, k, v, in, o, out, lse, B, H, T, s)
                       : launch<__half, 128>(q, k, v, in, o, out, lse, B, H, T, s);
    return D == 64 ? launch<__nv_bfloat16, 64>(q, k, v, in, o, out, lse, B, H, T, s)
                   : launch<__nv_bfloat16, 128>(q, k, v, in, o, out, lse, B, H, T, s);
}

int softmax_attn_flash_launch(const void *q, const void *k, const void *v, sa_layout_t in,
                              void *o, sa_layout_t out, int B, int H, int T, int D, dtype_t dt,
                              cudaStream_t s) {
    return softmax_attn_flash_launch_lse(q, k, v, in, o, out, NULL, B, H, T, D, dt, s);
}

const char *softmax_attn_flash_supports(const shape_t *s) {
    if (!s->causal) return "causal only (the kernel skips the masked half)";
    if (s->dk != s->dv) return "dk must equal dv";
    if (s->pass != PASS_FWD) {
        if (kVersion == 1) return "flash v1 has no backward (build with SA_FLASH_VERSION=2)";
        const char *why = softmax_attn_flash_bwd_problem(s->B, s->H, s->T, s->dk, s->dtype);
        if (why) return why;
    }
    return softmax_attn_flash_problem(s->B, s->H, s->T, s->dk, s->dtype);
}

/* Training keeps L and delta, fp32 [B*H][T] each; inference nothing. */
size_t softmax_attn_flash_workspace_bytes(const shape_t *s) {
    if (s->pass == PASS_FWD) return 0;
    return 2 * (size_t)s->B * s->H * s->T * sizeof(float);
}

void softmax_attn_flash_teardown(void *state) {
    flash_state *st = (flash_state *)state;
    if (!st) return;
    /* teardown cannot fail: a free that errs leaves the error to the next checked call */
    if (st->d_lse) (void)cudaFree(st->d_lse);
    if (st->d_delta) (void)cudaFree(st->d_delta);
    free(st);
}

int softmax_attn_flash_setup(const shape_t *s, const io_t *io, void **state) {
    (void)io;
    *state = NULL;
    if (softmax_attn_flash_prepare(s->dk, s->dtype)) return -1;
    if (s->pass != PASS_FWD && softmax_attn_flash_bwd_prepare(s->dk, s->dtype)) return -1;
    flash_state *st = (flash_state *)calloc(1, sizeof(flash_state));
    if (!st) BENCH_FAIL("softmax_attn/flash: out of host memory");
    st->version = kVersion;
    st->D = s->dk;
    if (s->pass != PASS_FWD) {
        const size_t bytes = (size_t)s->B * s->H * s->T * sizeof(float);
        cudaError_t e = cudaMalloc((void **)&st->d_lse, bytes);
        if (e == cudaSuccess) e = cudaMalloc((void **)&st->d_delta, bytes);
        if (e != cudaSuccess) {
            softmax_attn_flash_teardown(st);
            BENCH_FAIL("softmax_attn/flash: cudaMalloc of 2 x %zu bytes (L, delta): %s", bytes,
                       cudaGetErrorString(e));
        }
    }
    *state = st;
    return 0;
}

/* q, k, v, o [B,H,T,D]: the packed layout.  Training also writes L (the backward's input). */
int softmax_attn_flash_run(void *state, const io_t *io, cudaStream_t stream) {
    const flash_state *st = (const flash_state *)state;
    const shape_t *s = io->shape;
    const long long D = s->dk;
    const sa_layout_t packed = {(long long)s->H * s->T * D, (long long)s->T * D, D};
    return softmax_attn_flash_launch_lse(io->in[0], io->in[1], io->in[2], packed, io->out,
                                         packed, st ? st->d_lse : NULL, s->B, s->H, s->T, s->dk,
                                         s->dtype, stream);
}

/* dQ, dK, dV [B,H,T,D] (run dtype) from dO = g->dy, the forward's o (io->out) and its L. */
int softmax_attn_flash_run_bwd(void *state, const io_t *io, const grad_io_t *g,
                               cudaStream_t stream) {
    const flash_state *st = (const flash_state *)state;
    if (!st || !st->d_lse)
        BENCH_FAIL("softmax_attn/flash: run_bwd after a setup for the forward pass only");
    const shape_t *s = io->shape;
    const long long D = s->dk;
    const sa_layout_t packed = {(long long)s->H * s->T * D, (long long)s->T * D, D};
    return softmax_attn_flash_bwd_launch(io->in[0], io->in[1], io->in[2], packed, io->out, g->dy,
                                         packed, st->d_lse, st->d_delta, g->grad[0], g->grad[1],
                                         g->grad[2], packed, s->B, s->H, s->T, s->dk, s->dtype,
                                         stream);
}

void softmax_attn_flash_describe(int D, char *buf, size_t len) {
    if (kVersion == 1)
        snprintf(buf, len, "warp-row warps=%d", V1_WARPS);
    else
        snprintf(buf, len, "fa2 Br=%d Bc=%d", BM, D == 64 ? fcfg<64>::BN : fcfg<128>::BN);
}

void softmax_attn_flash_config(const void *state, char *buf, size_t len) {
    const flash_state *st = (const flash_state *)state;
    if (!st) {
        if (len) buf[0] = 0;
        return;
    }
    softmax_attn_flash_describe(st->D, buf, len);
    const size_t used = strlen(buf);
    if (st->d_lse && used + 1 < len) {
        buf[used] = ' ';
        softmax_attn_flash_bwd_describe(st->D, buf + used + 1, len - used - 1);
    }
}

} // extern "C"
