/* softmax_attn/flash backward: FlashAttention-2's backward on mma.sync (bf16/fp16 operands,
 * fp32 accumulators), causal, D = 64 or 128.  The forward (flash.cu, training form) leaves the
 * per-row log-sum-exp L; nothing T x T is ever stored.
 *
 * ---- version index (llm.c style) ------------------------------------------------------------
 * Run:  chela-bench --ops softmax_attn --variants flash --pass bwd,fwdbwd --seq 1k..64k
 *       (GPU check against the double reference: ctest --test-dir build -R test_gpu_flash_bwd)
 * v1  FA2's algorithm in three kernels (delta, dK/dV, dQ), dQ by a separate deterministic
 *     kernel.  Not yet measured (written without a GPU; ptxas resources below).  Before any
 *     GPU run, the dK/dV and dQ kernels' index logic (tiles, swizzle, fragments, masks, stages,
 *     epilogues) was replayed lane by lane in a numpy model of ldmatrix / mma.sync (the PTX
 *     ISA's fragment layouts) at D = 64, 128 and T = 1, 17, 64, 130, 200: gradients within
 *     1e-15 of a float64 reference (the model kept no roundings).
 *
 * Math (per head; s_ij = q_i.k_j, scale = 1/sqrt(D), P_ij = exp(s_ij scale - L_i), j <= i):
 *   delta_i = dO_i . o_i                     (= sum_j P_ij dP_ij: the softmax Jacobian's row term)
 *   dV_j = sum_i P_ij dO_i,   dP_ij = dO_i . v_j,   dS_ij = P_ij (dP_ij - delta_i)
 *   dK_j = scale sum_i dS_ij q_i,             dQ_i = scale sum_j dS_ij k_j
 *
 * v1 in detail.
 *   1. flash_bwd_delta: delta_i from the stored o (bf16, as FA2 does), one 16-byte chunk a
 *      thread, a row's D/8 lanes reduced by shuffles.  Memory-bound, ~2 x 2 B*H*T*D bytes.
 *      Accuracy: in rows whose softmax is peaked on few keys, dP_ij - delta_i nearly cancels
 *      and o's rounding (through delta) is most of dQ's and dK's error there, up to ~1/3 of
 *      such a row's small rms in bf16 (tests/test_gpu_flash_bwd.c says how that is checked).
 *      Keeping o's rounding residual in training would remove it for one more activation-size
 *      buffer; not done, FA2 does not either.
 *   2. flash_bwd_dkdv: a block owns Bc = 64 keys (4 warps x 16 keys), holds K and V in shared
 *      memory (and, at D = 64, its warp's K and V A-fragments in registers), and the dK, dV
 *      accumulators in registers (fp32, 2 x D per thread).  It walks the query tiles of Br = 64
 *      rows at or after its keys, Q and dO double-buffered with cp.async (L and delta of the
 *      next tile prefetched into registers and stored to shared memory after this tile's math).
 *      Each warp computes its keys' rows of the transposed products, so everything stays in
 *      registers: S^T = K Q^T, P^T = exp2(S^T scale log2e - L log2e), dV += P^T dO (P^T's C
 *      fragments are the A fragments, as in the forward's P V), dP^T = V dO^T,
 *      dS^T = P^T (dP^T - delta), dK += dS^T Q.  4 mma GEMMs a tile pair.
 *   3. flash_bwd_dq: a block owns 64 query rows (4 warps x 16), Q and dO in shared memory (and
 *      in registers at D = 64), L and delta of its rows in registers, and walks the key tiles
 *      of 64 up to the diagonal, K and V double-buffered: S = Q K^T, P, dP = dO V^T,
 *      dS = P (dP - delta), dQ += dS K.  3 mma GEMMs a tile pair.
 *   Why a separate dQ kernel rather than FA2's fp32 atomicAdd of dQ into a workspace: FA2's
 *   single kernel does 5 GEMMs a tile pair instead of our 7 (S and dP recomputed), but each
 *   (key block, query tile) pair then adds Br x D fp32 partials to dQ with atomics (16-32 KB a
 *   pair, ~2 TB/s of L2 atomics at the forward's rate on H100), needs dS staged through shared
 *   memory in the other warp orientation, a zeroed workspace and a convert pass, and its sums
 *   land in a different order every run.  The separate kernel is deterministic (bitwise the
 *   same gradients every run, what a benchmark's verification wants), keeps every product in
 *   registers and needs no workspace beyond delta; its cost is 40% more tensor-core work and a
 *   second exp per score.  Whether the atomic form wins on H100 is the next thing to measure.
 *   Masking only on tiles that touch the diagonal or T's tail (template flag); masked scores
 *   give P = 0, so padding rows (zero-filled loads) and keys above the diagonal contribute
 *   exact zeros.  A warp whose rows are all above (dQ) or keys all after (dK/dV) the tile
 *   skips it.  Epilogues stage the gradients through the (free) Q/dO tiles and store them
 *   with 16-byte coalesced stores, rows >= T dropped.
 *   Resources (ptxas -v, CUDA 13.0, sm_90, bf16 and fp16 alike; 128 threads, launch bounds
 *   (128, 2): two blocks, 8 warps, an SM), no spills anywhere:
 *     flash_bwd_dkdv  D = 64: 245 registers, 49 KB smem;  D = 128: 254 registers, 97 KB smem
 *     flash_bwd_dq    D = 64: 210 registers, 48 KB smem;  D = 128: 185 registers, 96 KB smem
 *     flash_bwd_delta 28 registers, no smem.
 *   (dkdv at D = 128 is at the register limit: dK, dV 128 a thread, P^T and dS^T 32 each.)
 *   Predicted: 7 GEMMs of the forward's 2 plus two exps a score: ~3-3.5x the forward's time
 *   (FA2's target is ~2.5x); not measured yet.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include "bench_check.h"
#include "common/mma_sync.cuh"
#include "dtype_device.cuh" /* to_f32 */
#include "softmax_attn/flash_bwd.h"
#include "softmax_attn/flash_common.cuh" /* swz, mma_op, ex2, load_tile */

namespace {

constexpr int BW_WARPS = 4;
constexpr int BW_THREADS = BW_WARPS * 32;
constexpr float LOG2E = 1.4426950408889634f;

/* Tiles of both main kernels.  MT: m16 tiles a warp owns (keys in dkdv, query rows in dq).
 * One m16 tile a warp: at D = 128 the dK and dV accumulators alone are 2 x 64 registers a
 * thread for 16 keys; 32 keys a warp would need 256. */
template <int D> struct bcfg {
    static constexpr int MT = 1;
    static constexpr int WROWS = 16 * MT;            /* keys (dkdv) or query rows (dq) a warp */
    static constexpr int BC = BW_WARPS * WROWS;      /* dkdv: keys a block                    */
    static constexpr int BR = 64;                    /* dkdv: query rows a streamed tile      */
    static constexpr int BQ = BW_WARPS * WROWS;      /* dq: query rows a block                */
    static constexpr int BN = 64;                    /* dq: keys a streamed tile              */
    static constexpr bool A_IN_REGS = (D == 64);     /* the warp's fixed A operands (K, V in
                                                        dkdv; Q, dO in dq) kept in registers */
    static constexpr int ROW_BYTES = D * 2;
    /* dkdv: K, V [BC][D]; Q, dO [2 stages][BR][D]; L (log2 units), delta [2 stages][BR] */
    static constexpr int KV_SMEM = BC * ROW_BYTES;
    static constexpr int QT_SMEM = BR * ROW_BYTES;
    static constexpr int DKDV_LD_OFF = 2 * KV_SMEM + 4 * QT_SMEM;
    static constexpr int DKDV_SMEM = DKDV_LD_OFF + 2 * 2 * BR * 4;
    /* dq: Q, dO [BQ][D]; K, V [2 stages][BN][D] */
    static constexpr int Q_SMEM = BQ * ROW_BYTES;
    static constexpr int KT_SMEM = BN * ROW_BYTES;
    static constexpr int DQ_SMEM = 2 * Q_SMEM + 4 * KT_SMEM;
    static_assert(BW_THREADS >= 2 * BR, "dkdv: one thread a value of the next tile's L, delta");
    static_assert(2 * QT_SMEM >= KV_SMEM, "dkdv epilogue stages dK (dV) in the Q (dO) stages");
    static_assert(BR % 16 == 0 && BN % 16 == 0 && D % 16 == 0, "k16 steps");
};

/* ---- the two warp-level GEMM shapes every product of the backward is ------------------- */

/* acc[mt][nt] += A_mt B^T over k = D: A's 16 MT rows from rows a_row0.. of the swizzled smem
 * tile s_a, B's N rows from rows b_row0.. of s_b (both [rows][D]).  The ldmatrix matrices and
 * fragments are the forward's S = Q K^T (flash.cu's tile_step).  The k loop stays rolled:
 * with A from smem an unrolled loop lets the scheduler hoist loads and spill (ptxas, dkdv at
 * D = 128: unrolled by 2, 255 registers and 4 bytes of spills; rolled, 254 and none); kk
 * indexes no register array. */
template <bool BF16, int D, int MT, int N>
__device__ __forceinline__ void gemm_abt_smem(float (&acc)[MT][N / 8][4], uint32_t s_a,
                                              int a_row0, uint32_t s_b, int b_row0, int lane) {
    const int mi = lane >> 3, r8 = lane & 7;
#pragma unroll 1
    for (int kk = 0; kk < D / 16; kk++) {
        uint32_t a[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
            ldsm_x4(a[mt], s_a + swz<D>(a_row0 + mt * 16 + r8 + (mi & 1) * 8, 2 * kk + (mi >> 1)));
#pragma unroll
        for (int np = 0; np < N / 16; np++) {
            uint32_t b[4];
            ldsm_x4(b, s_b + swz<D>(b_row0 + np * 16 + r8 + (mi >> 1) * 8, 2 * kk + (mi & 1)));
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                mma_16816<BF16>(acc[mt][2 * np], a[mt], b[0], b[1]);
                mma_16816<BF16>(acc[mt][2 * np + 1], a[mt], b[2], b[3]);
            }
        }
    }
}

/* As gemm_abt_smem, A's fragments already in registers (load_a_frags). */
template <bool BF16, int D, int MT, int N>
__device__ __forceinline__ void gemm_abt_regs(float (&acc)[MT][N / 8][4],
                                              const uint32_t (&a)[MT][D / 16][4], uint32_t s_b,
                                              int b_row0, int lane) {
    const int mi = lane >> 3, r8 = lane & 7;
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++)
#pragma unroll
        for (int np = 0; np < N / 16; np++) {
            uint32_t b[4];
            ldsm_x4(b, s_b + swz<D>(b_row0 + np * 16 + r8 + (mi >> 1) * 8, 2 * kk + (mi & 1)));
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                mma_16816<BF16>(acc[mt][2 * np], a[mt][kk], b[0], b[1]);
                mma_16816<BF16>(acc[mt][2 * np + 1], a[mt][kk], b[2], b[3]);
            }
        }
}

/* The A fragments of rows a_row0.. (16 MT of them) of the swizzled tile s_a, all k-steps. */
template <int D, int MT>
__device__ __forceinline__ void load_a_frags(uint32_t (&a)[MT][D / 16][4], uint32_t s_a,
                                             int a_row0, int lane) {
    const int mi = lane >> 3, r8 = lane & 7;
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            const int row = a_row0 + mt * 16 + r8 + (mi & 1) * 8;
            ldsm_x4(a[mt][kk], s_a + swz<D>(row, 2 * kk + (mi >> 1)));
        }
}

/* acc[mt][dt] += P_mt B over k = K: P is K / 8 C fragments (fp32, rows of this warp) packed to
 * T pairs in registers (C layout of m16n8 = A layout of m16k16), B's K rows from rows b_row0..
 * of s_b ([rows][D], n = d) by ldmatrix.trans: the forward's O += P V. */
template <typename T, int D, int MT, int K>
__device__ __forceinline__ void gemm_pv(float (&acc)[MT][D / 8][4], const float (&p)[MT][K / 8][4],
                                        uint32_t s_b, int b_row0, int lane) {
    const int mi = lane >> 3, r8 = lane & 7;
#pragma unroll
    for (int kk = 0; kk < K / 16; kk++) {
        uint32_t a[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
            a[mt][0] = mma_op<T>::pack(p[mt][2 * kk][0], p[mt][2 * kk][1]);
            a[mt][1] = mma_op<T>::pack(p[mt][2 * kk][2], p[mt][2 * kk][3]);
            a[mt][2] = mma_op<T>::pack(p[mt][2 * kk + 1][0], p[mt][2 * kk + 1][1]);
            a[mt][3] = mma_op<T>::pack(p[mt][2 * kk + 1][2], p[mt][2 * kk + 1][3]);
        }
#pragma unroll
        for (int dp = 0; dp < D / 16; dp++) {
            uint32_t b[4];
            const int row = b_row0 + kk * 16 + r8 + (mi & 1) * 8;
            ldsm_x4_trans(b, s_b + swz<D>(row, 2 * dp + (mi >> 1)));
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                mma_16816<mma_op<T>::BF16>(acc[mt][2 * dp], a[mt], b[0], b[1]);
                mma_16816<mma_op<T>::BF16>(acc[mt][2 * dp + 1], a[mt], b[2], b[3]);
            }
        }
    }
}

template <int MT, int N> __device__ __forceinline__ void zero(float (&x)[MT][N][4]) {
#pragma unroll
    for (int i = 0; i < MT; i++)
#pragma unroll
        for (int j = 0; j < N; j++)
#pragma unroll
            for (int c = 0; c < 4; c++) x[i][j][c] = 0.f;
}

/* Stages acc * mul (this warp's 16 MT rows from row0 of the tile, C layout) into the swizzled
 * [rows][D] tile at s (generic pointer to shared memory) as T pairs. */
template <typename T, int D, int MT>
__device__ __forceinline__ void stage_rows(unsigned char *s, const float (&acc)[MT][D / 8][4],
                                           float mul, int row0, int lane) {
    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int row = row0 + mt * 16 + g + h * 8;
#pragma unroll
            for (int dt = 0; dt < D / 8; dt++)
                *reinterpret_cast<uint32_t *>(s + swz<D>(row, dt) + 4 * t) =
                    mma_op<T>::pack(acc[mt][dt][2 * h] * mul, acc[mt][dt][2 * h + 1] * mul);
        }
}

/* Copies ROWS staged rows of s (swizzled [ROWS][D]) to rows row0.. of a head (rows ld
 * elements apart), rows >= T dropped: 16-byte stores, consecutive threads along a row. */
template <typename T, int D, int ROWS>
__device__ __forceinline__ void store_rows(T *g_head, size_t ld, const unsigned char *s, int row0,
                                           int seqlen, int tid) {
    constexpr int CPR = D / 8;
    static_assert((ROWS * CPR) % BW_THREADS == 0, "store loop");
#pragma unroll
    for (int it = 0; it < ROWS * CPR / BW_THREADS; it++) {
        const int idx = it * BW_THREADS + tid;
        const int r = idx / CPR, c = idx % CPR;
        if (row0 + r < seqlen)
            *reinterpret_cast<uint4 *>(g_head + (size_t)(row0 + r) * ld + c * 8) =
                *reinterpret_cast<const uint4 *>(s + swz<D>(r, c));
    }
}

/* ================================ 1. delta_i = dO_i . o_i ================================= */

constexpr int DELTA_THREADS = 256;

template <typename T, int D>
__global__ void __launch_bounds__(DELTA_THREADS)
flash_bwd_delta(const T *__restrict__ d_o, const T *__restrict__ d_do, float *__restrict__ delta,
                long long n_rows, int seqlen, int n_heads, sa_layout_t out) {
    constexpr int LPR = D / 8; /* lanes a row, one 16-byte chunk each: 8 or 16, in one warp */
    const long long row = (long long)blockIdx.x * (DELTA_THREADS / LPR) + threadIdx.x / LPR;
    const int c = threadIdx.x % LPR;
    float acc = 0.f;
    if (row < n_rows) {
        const long long bh = row / seqlen, t = row % seqlen;
        const long long off = (bh / n_heads) * out.batch + (bh % n_heads) * out.head +
                              t * out.row + c * 8;
        const uint4 a = *reinterpret_cast<const uint4 *>(d_o + off);
        const uint4 b = *reinterpret_cast<const uint4 *>(d_do + off);
        const T *pa = reinterpret_cast<const T *>(&a), *pb = reinterpret_cast<const T *>(&b);
#pragma unroll
        for (int i = 0; i < 8; i++) acc = fmaf(to_f32(pa[i]), to_f32(pb[i]), acc);
    }
    /* every lane shuffles (rows past the end add zeros); offsets < LPR stay inside a row */
#pragma unroll
    for (int o = LPR / 2; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (row < n_rows && c == 0) delta[row] = acc;
}

/* ================================ 2. dK, dV: a block a key tile ============================ */

/* Offsets of head (b, h) in a layout, in elements. */
__device__ __forceinline__ size_t head_off(sa_layout_t l, int bh, int n_heads) {
    return (size_t)((long long)(bh / n_heads) * l.batch + (long long)(bh % n_heads) * l.head);
}

/* One query tile (rows m0.., stage s_q / s_do, L log2 and delta at s_ld) for one warp's keys
 * kw0..kw0+16MT-1.  MASK: some (query, key) pair of the tile has key > query or query >= T. */
template <typename T, int D, bool MASK>
__device__ __forceinline__ void dkdv_tile(uint32_t s_k, uint32_t s_v, uint32_t s_q, uint32_t s_do,
                                          const float *s_ld,
                                          const uint32_t (&k_frag)[bcfg<D>::MT][D / 16][4],
                                          const uint32_t (&v_frag)[bcfg<D>::MT][D / 16][4],
                                          float (&dk)[bcfg<D>::MT][D / 8][4],
                                          float (&dv)[bcfg<D>::MT][D / 8][4], int warp, int lane,
                                          int kw0, int m0, int seqlen, float scale_log2) {
    using C = bcfg<D>;
    constexpr int MT = C::MT, BR = C::BR;
    constexpr bool BF16 = mma_op<T>::BF16;
    const int g = lane >> 2, t = lane & 3;
    const int a_row0 = warp * C::WROWS; /* the warp's keys, as rows of the K / V tiles */

    /* ---- P^T = exp2(S^T scale_log2 - L log2e): rows = the warp's keys, columns = queries ---- */
    float p[MT][BR / 8][4];
    zero(p);
    if constexpr (C::A_IN_REGS)
        gemm_abt_regs<BF16, D, MT, BR>(p, k_frag, s_q, 0, lane);
    else
        gemm_abt_smem<BF16, D, MT, BR>(p, s_k, a_row0, s_q, 0, lane);
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int nt = 0; nt < BR / 8; nt++) {
            const float2 l = *reinterpret_cast<const float2 *>(s_ld + nt * 8 + 2 * t);
#pragma unroll
            for (int c = 0; c < 4; c++) {
                float e = ex2(fmaf(p[mt][nt][c], scale_log2, -((c & 1) ? l.y : l.x)));
                if constexpr (MASK) {
                    const int key = kw0 + mt * 16 + g + (c >> 1) * 8;
                    const int query = m0 + nt * 8 + 2 * t + (c & 1);
                    if (key > query || query >= seqlen) e = 0.f;
                }
                p[mt][nt][c] = e;
            }
        }

    /* ---- dV += P^T dO ---- */
    gemm_pv<T, D, MT, BR>(dv, p, s_do, 0, lane);

    /* ---- dP^T = V dO^T, then dS^T = P^T (dP^T - delta) in place ---- */
    float ds[MT][BR / 8][4];
    zero(ds);
    if constexpr (C::A_IN_REGS)
        gemm_abt_regs<BF16, D, MT, BR>(ds, v_frag, s_do, 0, lane);
    else
        gemm_abt_smem<BF16, D, MT, BR>(ds, s_v, a_row0, s_do, 0, lane);
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int nt = 0; nt < BR / 8; nt++) {
            const float2 dl = *reinterpret_cast<const float2 *>(s_ld + BR + nt * 8 + 2 * t);
#pragma unroll
            for (int c = 0; c < 4; c++)
                ds[mt][nt][c] = p[mt][nt][c] * (ds[mt][nt][c] - ((c & 1) ? dl.y : dl.x));
        }

    /* ---- dK += dS^T Q (the scale at the end) ---- */
    gemm_pv<T, D, MT, BR>(dk, ds, s_q, 0, lane);
}

/* grid = (B*H, ceil(T / BC)): blockIdx.y = 0, the key tile with the most query tiles, first. */
template <typename T, int D>
__global__ void __launch_bounds__(BW_THREADS, 2)
flash_bwd_dkdv(const T *__restrict__ d_q, const T *__restrict__ d_k, const T *__restrict__ d_v,
               const T *__restrict__ d_do, const float *__restrict__ lse,
               const float *__restrict__ delta, T *__restrict__ d_dk, T *__restrict__ d_dv,
               int seqlen, float scale_log2, float scale, int n_heads, sa_layout_t in,
               sa_layout_t out, sa_layout_t grad) {
    using C = bcfg<D>;
    constexpr int MT = C::MT, BR = C::BR, BC = C::BC;
    extern __shared__ __align__(128) unsigned char smem[];
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int bh = blockIdx.x;
    const int n0 = blockIdx.y * BC;
    const size_t ld = (size_t)in.row, ld_o = (size_t)out.row, ld_g = (size_t)grad.row;
    const T *qh = d_q + head_off(in, bh, n_heads), *kh = d_k + head_off(in, bh, n_heads);
    const T *vh = d_v + head_off(in, bh, n_heads), *doh = d_do + head_off(out, bh, n_heads);
    const float *lse_h = lse + (size_t)bh * seqlen, *dl_h = delta + (size_t)bh * seqlen;

    const uint32_t s_k = smem_u32(smem), s_v = s_k + C::KV_SMEM;
    const uint32_t s_q0 = s_v + C::KV_SMEM;          /* Q stages 0, 1  */
    const uint32_t s_do0 = s_q0 + 2 * C::QT_SMEM;    /* dO stages 0, 1 */
    float *s_ld = reinterpret_cast<float *>(smem + C::DKDV_LD_OFF); /* [2][L | delta][BR] */

    /* Query tiles with a row >= n0, to the end of the sequence (causal). */
    const int qt0 = n0 / BR;
    const int n_qt = (seqlen + BR - 1) / BR - qt0; /* >= 1: n0 < T */

    load_tile<T, D, BC, BW_THREADS>(s_k, kh, ld, n0, seqlen, tid);
    load_tile<T, D, BC, BW_THREADS>(s_v, vh, ld, n0, seqlen, tid);
    cp_async_commit(); /* group: K, V      */
    load_tile<T, D, BR, BW_THREADS>(s_q0, qh, ld, qt0 * BR, seqlen, tid);
    load_tile<T, D, BR, BW_THREADS>(s_do0, doh, ld_o, qt0 * BR, seqlen, tid);
    cp_async_commit(); /* group: Q0, dO0   */
    /* L (in log2 units) and delta of a tile: threads 0..BR-1 take L, BR..2BR-1 delta; rows
     * >= T read 0 (their P is masked to 0). */
    auto ld_value = [&](int m) -> float {
        const int row = m + (tid % BR);
        if (tid >= 2 * BR || row >= seqlen) return 0.f;
        return tid < BR ? lse_h[row] * LOG2E : dl_h[row];
    };
    if (tid < 2 * BR) s_ld[tid] = ld_value(qt0 * BR);

    uint32_t k_frag[MT][D / 16][4], v_frag[MT][D / 16][4];
    float dk[MT][D / 8][4], dv[MT][D / 8][4];
    zero(dk);
    zero(dv);
    cp_async_wait<1>(); /* K, V landed (this thread's chunks) */
    __syncthreads();    /* ... everyone's; s_ld stage 0 too  */
    if constexpr (C::A_IN_REGS) {
        load_a_frags<D, MT>(k_frag, s_k, warp * C::WROWS, lane);
        load_a_frags<D, MT>(v_frag, s_v, warp * C::WROWS, lane);
    } else {
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int kk = 0; kk < D / 16; kk++)
#pragma unroll
                for (int c = 0; c < 4; c++) k_frag[mt][kk][c] = v_frag[mt][kk][c] = 0u; /* unused */
    }

    const int kw0 = n0 + warp * C::WROWS; /* this warp's first key */
    for (int it = 0; it < n_qt; it++) {
        const int st = it & 1;
        const int m0 = (qt0 + it) * BR;
        const bool next = it + 1 < n_qt;
        /* Prefetch tile it+1 into the other stage, last read in iteration it-1 (which ended
         * with a barrier); always commit so that wait_group<1> means "tile it has landed". */
        float ld_next = 0.f;
        if (next) {
            load_tile<T, D, BR, BW_THREADS>(s_q0 + (st ^ 1) * C::QT_SMEM, qh, ld, m0 + BR, seqlen,
                                            tid);
            load_tile<T, D, BR, BW_THREADS>(s_do0 + (st ^ 1) * C::QT_SMEM, doh, ld_o, m0 + BR,
                                            seqlen, tid);
            ld_next = ld_value(m0 + BR); /* in flight during this tile's math */
        }
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();

        /* Skip when every key of the warp is after every query of the tile, or past T. */
        if (kw0 <= m0 + BR - 1 && kw0 < seqlen) {
            const uint32_t s_q = s_q0 + st * C::QT_SMEM, s_do = s_do0 + st * C::QT_SMEM;
            const float *ldt = s_ld + st * 2 * BR;
            const bool need_mask = (kw0 + C::WROWS - 1 > m0) || (m0 + BR > seqlen);
            if (need_mask)
                dkdv_tile<T, D, true>(s_k, s_v, s_q, s_do, ldt, k_frag, v_frag, dk, dv, warp,
                                      lane, kw0, m0, seqlen, scale_log2);
            else
                dkdv_tile<T, D, false>(s_k, s_v, s_q, s_do, ldt, k_frag, v_frag, dk, dv, warp,
                                       lane, kw0, m0, seqlen, scale_log2);
        }
        /* the other stage's L / delta: its readers (iteration it-1) passed the barrier above */
        if (next && tid < 2 * BR) s_ld[(st ^ 1) * 2 * BR + tid] = ld_next;
        __syncthreads(); /* stage st is free for the prefetch of iteration it+1 */
    }

    /* ---- epilogue: dK scale, dV through the Q and dO stages (free: the loop ended with a
     * barrier), 16-byte stores of the keys < T ---- */
    unsigned char *st_k = smem + 2 * C::KV_SMEM, *st_v = st_k + 2 * C::QT_SMEM;
    stage_rows<T, D, MT>(st_k, dk, scale, warp * C::WROWS, lane);
    stage_rows<T, D, MT>(st_v, dv, 1.f, warp * C::WROWS, lane);
    __syncthreads();
    store_rows<T, D, BC>(d_dk + head_off(grad, bh, n_heads), ld_g, st_k, n0, seqlen, tid);
    store_rows<T, D, BC>(d_dv + head_off(grad, bh, n_heads), ld_g, st_v, n0, seqlen, tid);
}

/* ================================ 3. dQ: a block a query tile ============================== */

/* One key tile (keys n0.., stage s_k / s_v) for one warp's query rows wr0..wr0+16MT-1, whose
 * L (log2 units) and delta are lrow, drow (h = 0: row g, h = 1: row g + 8).
 * MASK: some (row, key) pair has key > row or key >= T. */
template <typename T, int D, bool MASK>
__device__ __forceinline__ void dq_tile(uint32_t s_q, uint32_t s_do, uint32_t s_k, uint32_t s_v,
                                        const uint32_t (&q_frag)[bcfg<D>::MT][D / 16][4],
                                        const uint32_t (&do_frag)[bcfg<D>::MT][D / 16][4],
                                        float (&dq)[bcfg<D>::MT][D / 8][4],
                                        const float (&lrow)[bcfg<D>::MT][2],
                                        const float (&drow)[bcfg<D>::MT][2], int warp, int lane,
                                        int n0, int wr0, int seqlen, float scale_log2) {
    using C = bcfg<D>;
    constexpr int MT = C::MT, BN = C::BN;
    constexpr bool BF16 = mma_op<T>::BF16;
    const int g = lane >> 2, t = lane & 3;
    const int a_row0 = warp * C::WROWS;

    float p[MT][BN / 8][4];
    zero(p);
    if constexpr (C::A_IN_REGS)
        gemm_abt_regs<BF16, D, MT, BN>(p, q_frag, s_k, 0, lane);
    else
        gemm_abt_smem<BF16, D, MT, BN>(p, s_q, a_row0, s_k, 0, lane);
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int nt = 0; nt < BN / 8; nt++)
#pragma unroll
            for (int c = 0; c < 4; c++) {
                float e = ex2(fmaf(p[mt][nt][c], scale_log2, -lrow[mt][c >> 1]));
                if constexpr (MASK) {
                    const int row = wr0 + mt * 16 + g + (c >> 1) * 8;
                    const int key = n0 + nt * 8 + 2 * t + (c & 1);
                    if (key > row || key >= seqlen) e = 0.f;
                }
                p[mt][nt][c] = e;
            }

    float ds[MT][BN / 8][4];
    zero(ds);
    if constexpr (C::A_IN_REGS)
        gemm_abt_regs<BF16, D, MT, BN>(ds, do_frag, s_v, 0, lane);
    else
        gemm_abt_smem<BF16, D, MT, BN>(ds, s_do, a_row0, s_v, 0, lane);
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int nt = 0; nt < BN / 8; nt++)
#pragma unroll
            for (int c = 0; c < 4; c++)
                ds[mt][nt][c] = p[mt][nt][c] * (ds[mt][nt][c] - drow[mt][c >> 1]);

    gemm_pv<T, D, MT, BN>(dq, ds, s_k, 0, lane);
}

/* grid = (B*H, ceil(T / BQ)), y walked in reverse: the longest query tiles first. */
template <typename T, int D>
__global__ void __launch_bounds__(BW_THREADS, 2)
flash_bwd_dq(const T *__restrict__ d_q, const T *__restrict__ d_k, const T *__restrict__ d_v,
             const T *__restrict__ d_do, const float *__restrict__ lse,
             const float *__restrict__ delta, T *__restrict__ d_dq, int seqlen, float scale_log2,
             float scale, int n_heads, sa_layout_t in, sa_layout_t out, sa_layout_t grad) {
    using C = bcfg<D>;
    constexpr int MT = C::MT, BN = C::BN, BQ = C::BQ;
    extern __shared__ __align__(128) unsigned char smem[];
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int g = lane >> 2;
    const int bh = blockIdx.x;
    const int m0 = ((int)gridDim.y - 1 - (int)blockIdx.y) * BQ;
    const size_t ld = (size_t)in.row, ld_o = (size_t)out.row, ld_g = (size_t)grad.row;
    const T *qh = d_q + head_off(in, bh, n_heads), *kh = d_k + head_off(in, bh, n_heads);
    const T *vh = d_v + head_off(in, bh, n_heads), *doh = d_do + head_off(out, bh, n_heads);

    const uint32_t s_q = smem_u32(smem), s_do = s_q + C::Q_SMEM;
    const uint32_t s_k0 = s_do + C::Q_SMEM;       /* K stages 0, 1 */
    const uint32_t s_v0 = s_k0 + 2 * C::KT_SMEM;  /* V stages 0, 1 */

    const int kv_end = min(m0 + BQ, seqlen); /* causal: keys [0, kv_end) */
    const int n_tiles = (kv_end + BN - 1) / BN;

    load_tile<T, D, BQ, BW_THREADS>(s_q, qh, ld, m0, seqlen, tid);
    load_tile<T, D, BQ, BW_THREADS>(s_do, doh, ld_o, m0, seqlen, tid);
    cp_async_commit(); /* group: Q, dO   */
    load_tile<T, D, BN, BW_THREADS>(s_k0, kh, ld, 0, seqlen, tid);
    load_tile<T, D, BN, BW_THREADS>(s_v0, vh, ld, 0, seqlen, tid);
    cp_async_commit(); /* group: K0, V0  */

    const int wr0 = m0 + warp * C::WROWS; /* this warp's first query row */
    float lrow[MT][2], drow[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int row = wr0 + mt * 16 + g + h * 8;
            const bool ok = row < seqlen; /* rows >= T: any finite value (never stored) */
            lrow[mt][h] = ok ? lse[(size_t)bh * seqlen + row] * LOG2E : 0.f;
            drow[mt][h] = ok ? delta[(size_t)bh * seqlen + row] : 0.f;
        }

    uint32_t q_frag[MT][D / 16][4], do_frag[MT][D / 16][4];
    float dq[MT][D / 8][4];
    zero(dq);
    cp_async_wait<1>(); /* Q, dO landed */
    __syncthreads();
    if constexpr (C::A_IN_REGS) {
        load_a_frags<D, MT>(q_frag, s_q, warp * C::WROWS, lane);
        load_a_frags<D, MT>(do_frag, s_do, warp * C::WROWS, lane);
    } else {
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int kk = 0; kk < D / 16; kk++)
#pragma unroll
                for (int c = 0; c < 4; c++) q_frag[mt][kk][c] = do_frag[mt][kk][c] = 0u;
    }

    for (int it = 0; it < n_tiles; it++) {
        const int st = it & 1;
        if (it + 1 < n_tiles) {
            load_tile<T, D, BN, BW_THREADS>(s_k0 + (st ^ 1) * C::KT_SMEM, kh, ld, (it + 1) * BN,
                                            seqlen, tid);
            load_tile<T, D, BN, BW_THREADS>(s_v0 + (st ^ 1) * C::KT_SMEM, vh, ld, (it + 1) * BN,
                                            seqlen, tid);
        }
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();

        const int n0 = it * BN;
        /* Skip when every key is after every row of the warp, or the warp's rows are past T. */
        if (n0 <= wr0 + C::WROWS - 1 && wr0 < seqlen) {
            const uint32_t s_k = s_k0 + st * C::KT_SMEM, s_v = s_v0 + st * C::KT_SMEM;
            const bool need_mask = (n0 + BN - 1 > wr0) || (n0 + BN > seqlen);
            if (need_mask)
                dq_tile<T, D, true>(s_q, s_do, s_k, s_v, q_frag, do_frag, dq, lrow, drow, warp,
                                    lane, n0, wr0, seqlen, scale_log2);
            else
                dq_tile<T, D, false>(s_q, s_do, s_k, s_v, q_frag, do_frag, dq, lrow, drow, warp,
                                     lane, n0, wr0, seqlen, scale_log2);
        }
        __syncthreads(); /* stage st is free for the prefetch of iteration it+1 */
    }

    /* ---- epilogue: dQ scale through the Q tile (free: the loop ended with a barrier) ---- */
    stage_rows<T, D, MT>(smem, dq, scale, warp * C::WROWS, lane);
    __syncthreads();
    store_rows<T, D, BQ>(d_dq + head_off(grad, bh, n_heads), ld_g, smem, m0, seqlen, tid);
}

/* ------------------------------------------------------------------------------------------ */
/* host side                                                                                   */
/* ------------------------------------------------------------------------------------------ */

template <typename T, int D> int prepare() {
    using C = bcfg<D>;
    CUDA_CHECK(cudaFuncSetAttribute(flash_bwd_dkdv<T, D>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, C::DKDV_SMEM));
    CUDA_CHECK(cudaFuncSetAttribute(flash_bwd_dkdv<T, D>,
                                    cudaFuncAttributePreferredSharedMemoryCarveout,
                                    (int)cudaSharedmemCarveoutMaxShared));
    CUDA_CHECK(cudaFuncSetAttribute(flash_bwd_dq<T, D>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, C::DQ_SMEM));
    CUDA_CHECK(cudaFuncSetAttribute(flash_bwd_dq<T, D>,
                                    cudaFuncAttributePreferredSharedMemoryCarveout,
                                    (int)cudaSharedmemCarveoutMaxShared));
    return 0;
}

template <typename T, int D>
int launch(const void *q, const void *k, const void *v, sa_layout_t in, const void *o,
           const void *dO, sa_layout_t out, const float *lse, float *delta, void *dq, void *dk,
           void *dv, sa_layout_t grad, int B, int H, int seqlen, cudaStream_t stream) {
    using C = bcfg<D>;
    const int bh = B * H;
    const T *d_q = (const T *)q, *d_k = (const T *)k, *d_v = (const T *)v;
    const T *d_o = (const T *)o, *d_do = (const T *)dO;
    const float scale = 1.0f / sqrtf((float)D), scale_log2 = LOG2E * scale;

    const long long n_rows = (long long)bh * seqlen;
    const long long rows_per_block = DELTA_THREADS / (D / 8);
    const unsigned delta_blocks = (unsigned)((n_rows + rows_per_block - 1) / rows_per_block);
    flash_bwd_delta<T, D><<<delta_blocks, DELTA_THREADS, 0, stream>>>(d_o, d_do, delta, n_rows,
                                                                     seqlen, H, out);
    CUDA_CHECK(cudaGetLastError());

    const dim3 grid_kv((unsigned)bh, (unsigned)((seqlen + C::BC - 1) / C::BC));
    flash_bwd_dkdv<T, D><<<grid_kv, BW_THREADS, C::DKDV_SMEM, stream>>>(
        d_q, d_k, d_v, d_do, lse, delta, (T *)dk, (T *)dv, seqlen, scale_log2, scale, H, in, out,
        grad);
    CUDA_CHECK(cudaGetLastError());

    const dim3 grid_q((unsigned)bh, (unsigned)((seqlen + C::BQ - 1) / C::BQ));
    flash_bwd_dq<T, D><<<grid_q, BW_THREADS, C::DQ_SMEM, stream>>>(
        d_q, d_k, d_v, d_do, lse, delta, (T *)dq, seqlen, scale_log2, scale, H, in, out, grad);
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

bool aligned16(const void *p, sa_layout_t l) {
    return ((uintptr_t)p & 15u) == 0 && l.batch % 8 == 0 && l.head % 8 == 0 && l.row % 8 == 0;
}

} // namespace

extern "C" {

const char *softmax_attn_flash_bwd_problem(int B, int H, int T, int D, dtype_t dt) {
    if (dt == DTYPE_F32) return "flash backward needs bf16 or fp16 (tensor-core mma)";
    if (D != 64 && D != 128) return "head dim must be 64 or 128";
    if (T <= 0 || B <= 0 || H <= 0) return "empty shape";
    if ((long long)B * H > 2147483647LL) return "B*H must be < 2^31";
    if ((T + 63) / 64 > 65535) return "T must be <= 65535*64 (grid.y)";
    if ((long long)B * H * T / 16 >= 2147483647LL) return "B*H*T too large";
    return NULL;
}

int softmax_attn_flash_bwd_prepare(int D, dtype_t dt) {
    const char *why = softmax_attn_flash_bwd_problem(1, 1, 1, D, dt);
    if (why) BENCH_FAIL("softmax_attn flash backward: %s", why);
    if (dt == DTYPE_F16) return D == 64 ? prepare<__half, 64>() : prepare<__half, 128>();
    return D == 64 ? prepare<__nv_bfloat16, 64>() : prepare<__nv_bfloat16, 128>();
}

int softmax_attn_flash_bwd_launch(const void *q, const void *k, const void *v, sa_layout_t in,
                                  const void *o, const void *dO, sa_layout_t out,
                                  const float *lse, float *delta, void *dq, void *dk, void *dv,
                                  sa_layout_t grad, int B, int H, int T, int D, dtype_t dt,
                                  cudaStream_t s) {
    const char *why = softmax_attn_flash_bwd_problem(B, H, T, D, dt);
    if (why) BENCH_FAIL("softmax_attn flash backward: %s", why);
    if (!aligned16(q, in) || !aligned16(k, in) || !aligned16(v, in) || !aligned16(o, out) ||
        !aligned16(dO, out) || !aligned16(dq, grad) || !aligned16(dk, grad) ||
        !aligned16(dv, grad))
        BENCH_FAIL("softmax_attn flash backward: base pointers and strides must be 16-byte "
                   "aligned");
    if (!lse || !delta) BENCH_FAIL("softmax_attn flash backward: no log-sum-exp / delta buffer");
#define SA_BWD_ARGS q, k, v, in, o, dO, out, lse, delta, dq, dk, dv, grad, B, H, T, s
    if (dt == DTYPE_F16)
        return D == 64 ? launch<__half, 64>(SA_BWD_ARGS) : launch<__half, 128>(SA_BWD_ARGS);
    return D == 64 ? launch<__nv_bfloat16, 64>(SA_BWD_ARGS)
                   : launch<__nv_bfloat16, 128>(SA_BWD_ARGS);
#undef SA_BWD_ARGS
}

void softmax_attn_flash_bwd_describe(int D, char *buf, size_t len) {
    const int bc = D == 64 ? bcfg<64>::BC : bcfg<128>::BC;
    const int br = D == 64 ? bcfg<64>::BR : bcfg<128>::BR;
    snprintf(buf, len, "bwd=fa2 Bc=%d Br=%d dq=separate", bc, br);
}

} // extern "C"
