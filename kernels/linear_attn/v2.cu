/* v2.cu: linear_attn/chunked v2 (la_version=2; what runs at dv = 64, the LM shape, and wherever
 * v3 does not apply: not causal, or 16-bit with dv = 64).  Tensor cores: mma.sync m16n8k16
 * (bf16/fp16 in, fp32 accumulate) fed by ldmatrix from padded shared memory (row pitch + 16 B:
 * conflict-free ldmatrix), cp.async double buffering of the next chunk's q,k,v (zero-filled past
 * T).  128 threads = 4 warps; warp w owns value rows 16w..16w+15 of the slice and keeps the
 * TRANSPOSED state S^T (16 x dk fp32, dk/4 registers per thread) as mma accumulators, so that the
 * accumulator layout is already the A-operand layout of the next product (the FlashAttention-2
 * register trick):
 *   step 1  A = mask(Q K^T) / sqrt(dk), 64 x 64 -> smem; warp w computes rows 16w..16w+15,
 *           only the n-tiles left of the diagonal (causal half skipped).
 *   step 2  O^T = (S^T / sqrt(dk)) Q^T        (A from registers, B = Q via ldmatrix)
 *           O^T += V^T A^T                    (V^T via ldmatrix.trans, A^T = rows of A;
 *                                             k-steps above the diagonal skipped)
 *           S^T += V^T K                      (K via ldmatrix.trans; after O used the old S)
 *   step 3  O^T staged through smem as dtype, written as 16-byte rows (128 B per row/slice).
 * Pass A (the segment states, also v3's) is steps 2's last product alone.
 *
 * Numerics.  The state accumulates in fp32.  Rounding it to bf16 as the operand of Q S (what FLA
 * does) and A to bf16 cost ~2.5x the error of the output rounding: modelled max_rel_err
 * (verify.c's |got-ref| / max(|ref|, rms)) 1.1-1.3e-2 at T >= 1k, over the harness's 1e-2 bf16
 * tolerance.  So for bf16 inputs (switches in prims.cuh):
 *   LAC_A_F16 = 1       A is stored as fp16 (2^-11) and multiplied by V^T converted to fp16 in
 *                       registers (exact for |v| in fp16's normal range), free;
 *   LAC_STATE_HILO = 1  the Q S operand is S = hi + lo (two bf16, ~2^-16): 2x the Q S MMAs.
 * With both, the modelled max_rel_err is 3.9e-3 at every T, the same as a pure-fp32 kernel whose
 * output is rounded to bf16.  fp16 inputs keep A and S in fp16 (1.1-1.5e-3); note
 * |S|/sqrt(dk) > 65504 would overflow there.
 *
 * Shared memory per block: pass C 107,520 B (dk 128) / 74,752 B (dk 64) -> 2 / 3 blocks per SM;
 * pass A 53,248 / 36,864.  MMAs per 64-token chunk and slice, bf16: pass C 1008 (dk 128) / 544
 * (dk 64) (fp16, or HILO = 0: 752 / 416); pass A 256 / 128.  Predictions, measurements and
 * Nsight Compute's view: profiles/NOTES.md, linear_attn. */
#include "bench_check.h"
#include "common/pdl_launch.cuh"
#include "linear_attn/passes.h"
#include "linear_attn/tiles.cuh"

namespace {

constexpr int lac_v2_output_smem(int dk) {
    return 2 * 2 * LAC_C * (dk + LAC_PAD) * 2     /* q, k: two stages                 */
           + 2 * LAC_C * (LAC_DVS + LAC_PAD) * 2  /* v: two stages                    */
           + LAC_C * (LAC_C + LAC_PAD) * 2        /* A = mask(Q K^T), bf16/fp16       */
           + LAC_C * (LAC_DVS + LAC_PAD) * 2      /* O staging                        */
           + LAC_WARPS * LAC_C * 4;               /* per-warp row sums of squares     */
}

constexpr int lac_v2_state_smem(int dk) {
    return 2 * LAC_C * (dk + LAC_PAD) * 2 + 2 * LAC_C * (LAC_DVS + LAC_PAD) * 2;
}

/* Issues (one commit group) the cp.async copies of chunk c: q rows (WITH_Q) and k rows plus this
 * block's 64 v columns (WITH_KV).  v_bh already points at the slice's first column. */
template <int DK, bool WITH_Q, bool WITH_KV>
__device__ __forceinline__ void lac_v2_load_chunk(uint16_t *sq, uint16_t *sk, uint16_t *sv,
                                                  const uint16_t *q_bh, const uint16_t *k_bh,
                                                  const uint16_t *v_bh, int dv, int c, int T,
                                                  int tid) {
    const int t0 = c * LAC_C;
    const int nvalid = lac_min(LAC_C, T - t0);
    if (WITH_Q) lac_load_rows<DK, DK + LAC_PAD>(sq, q_bh + (int64_t)t0 * DK, DK, nvalid, tid);
    if (WITH_KV) {
        lac_load_rows<DK, DK + LAC_PAD>(sk, k_bh + (int64_t)t0 * DK, DK, nvalid, tid);
        lac_load_rows<LAC_DVS, LAC_DVS + LAC_PAD>(sv, v_bh + (int64_t)t0 * dv, dv, nvalid, tid);
    }
    cp_async_commit();
}

/* Pass A.  grid = B*H*ws_per_bh*nslices (slice fastest), block = 128, dynamic smem
 * lac_v2_state_smem(DK).  Writes ws[bh][u][dv][dk] = (K_u^T V_u)^T for this slice (part u). */
template <bool BF16, int DK, bool VACT>
__global__ void __launch_bounds__(LAC_THREADS)
    lac_v2_state_kernel(const uint16_t *__restrict__ d_k, const uint16_t *__restrict__ d_v,
                        float *__restrict__ d_states, lac_args a) {
    constexpr int LDK = DK + LAC_PAD, LDV = LAC_DVS + LAC_PAD;
    LAC_DYNAMIC_SMEM(lac_smem);
    uint16_t *s_k = reinterpret_cast<uint16_t *>(lac_smem); /* [2][C][LDK] */
    uint16_t *s_v = s_k + 2 * LAC_C * LDK;                  /* [2][C][LDV] */

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int gid = lane >> 2, tig = lane & 3, mi = lane >> 3, r8 = lane & 7;
    const int p1_row = (mi & 1) * 8 + r8, p1_col = (mi >> 1) * 8;
    const int p2_row = (mi >> 1) * 8 + r8, p2_col = (mi & 1) * 8;

    const lac_part blk = lac_part_of(a);
    const int slice = blk.slice, c_begin = blk.c_begin, c_end = blk.c_end;
    const int64_t bh = blk.bh;
    const int64_t row0 = bh * a.T;
    const uint16_t *k_bh = d_k + row0 * DK;
    const uint16_t *v_bh = d_v + row0 * a.dv + slice * LAC_DVS;

    lac_v2_load_chunk<DK, false, true>(nullptr, s_k, s_v, nullptr, k_bh, v_bh, a.dv, c_begin,
                                       a.T, tid);
    float st[DK / 8][4];
#pragma unroll
    for (int j = 0; j < DK / 8; ++j) st[j][0] = st[j][1] = st[j][2] = st[j][3] = 0.f;
    float vb_lo = 0.f, vb_hi = 0.f;
    if (VACT) lac_v_bias_of(a.v_bias, slice, warp, gid, vb_lo, vb_hi);

    for (int c = c_begin; c < c_end; ++c) {
        const int stage = (c - c_begin) & 1;
        cp_async_wait<0>();
        __syncthreads(); /* chunk c visible to all; everyone is done with chunk c-1's buffer */
        if (c + 1 < c_end)
            lac_v2_load_chunk<DK, false, true>(nullptr, s_k + (stage ^ 1) * LAC_C * LDK,
                                               s_v + (stage ^ 1) * LAC_C * LDV, nullptr, k_bh,
                                               v_bh, a.dv, c + 1, a.T, tid);
        uint32_t vt[4][4];
        lac_v2_load_vt(vt, s_v + stage * LAC_C * LDV, warp, p2_row, p2_col);
        if (VACT) lac_v_act<BF16>(vt, vb_lo, vb_hi);
        lac_v2_state_update<BF16, DK>(st, vt, s_k + stage * LAC_C * LDK, p1_row, p1_col);
    }

    /* Thread holds S^T rows (gid, gid+8) of its warp, cols 8j+2tig..+1: float2 stores, each
     * quad of lanes writes one full 32-byte sector. */
    float *dst = d_states +
                 ((bh * a.ws_per_bh + blk.u) * a.dv + slice * LAC_DVS + warp * 16 + gid) * DK +
                 2 * tig;
#pragma unroll
    for (int j = 0; j < DK / 8; ++j) {
        *reinterpret_cast<float2 *>(dst + 8 * j) = make_float2(st[j][0], st[j][1]);
        *reinterpret_cast<float2 *>(dst + 8 * DK + 8 * j) = make_float2(st[j][2], st[j][3]);
    }
}

/* Pass C.  grid = B*H*nseg*nslices (slice fastest), block = 128, dynamic smem
 * lac_v2_output_smem(DK).  Barriers per chunk: B0 (chunk landed), B1 (A in smem, causal),
 * [Bn (row sums, fused norm)], B2 (O staged). */
template <bool BF16, int DK, bool CAUSAL, bool VACT>
__global__ void __launch_bounds__(LAC_THREADS, DK == 64 ? 3 : 2)
    lac_v2_output_kernel(const uint16_t *__restrict__ d_q, const uint16_t *__restrict__ d_k,
                         const uint16_t *__restrict__ d_v, uint16_t *__restrict__ d_o,
                         const float *__restrict__ d_states, float *__restrict__ d_rowpart,
                         lac_args a) {
    constexpr int LDK = DK + LAC_PAD, LDV = LAC_DVS + LAC_PAD, LDA = LAC_C + LAC_PAD;
    constexpr int LDO = LAC_DVS + LAC_PAD;
    /* Numerics (bf16 runs): A is stored as fp16 (2^-11 rounding instead of bf16's 2^-8) and
     * multiplied by V^T converted to fp16; the state operand of Q S is split hi + lo.  With
     * both, the output error is the bf16 rounding of o alone (this file's header). */
    constexpr bool A_BF16 = BF16 && !LAC_A_F16;
    constexpr bool HILO = BF16 && LAC_STATE_HILO;
    LAC_DYNAMIC_SMEM(lac_smem);
    uint16_t *s_q = reinterpret_cast<uint16_t *>(lac_smem); /* [2][C][LDK]            */
    uint16_t *s_k = s_q + 2 * LAC_C * LDK;                  /* [2][C][LDK]            */
    uint16_t *s_v = s_k + 2 * LAC_C * LDK;                  /* [2][C][LDV]            */
    uint16_t *s_a = s_v + 2 * LAC_C * LDV;                  /* [C][LDA]  A[t][s]      */
    uint16_t *s_o = s_a + LAC_C * LDA;                      /* [C][LDO]  O[t][dv]     */
    float *s_rss = reinterpret_cast<float *>(s_o + LAC_C * LDO); /* [WARPS][C]        */

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int gid = lane >> 2, tig = lane & 3, mi = lane >> 3, r8 = lane & 7;
    const int p1_row = (mi & 1) * 8 + r8, p1_col = (mi >> 1) * 8;
    const int p2_row = (mi >> 1) * 8 + r8, p2_col = (mi & 1) * 8;

    const lac_block blk = lac_block_of(a);
    lac_grid_dep_wait(); /* launched with PDL: pass B's states, prep's A and q16 */
    const int slice = blk.slice, seg = blk.seg;
    const int c_begin = blk.c_begin, c_end = blk.c_end;
    const int64_t bh = blk.bh, row0 = blk.row0;
    const uint16_t *q_bh = d_q + row0 * DK;
    const uint16_t *k_bh = d_k + row0 * DK;
    const uint16_t *v_bh = d_v + row0 * a.dv + slice * LAC_DVS;
    uint16_t *o_bh = d_o + row0 * a.dv + slice * LAC_DVS;

    lac_v2_load_chunk<DK, true, CAUSAL>(s_q, s_k, s_v, q_bh, k_bh, v_bh, a.dv, c_begin, a.T,
                                        tid);
    float vb_lo = 0.f, vb_hi = 0.f;
    if (VACT) lac_v_bias_of(a.v_bias, slice, warp, gid, vb_lo, vb_hi);

    /* Incoming state (transposed): segment seg-1's inclusive prefix (causal), the total (not). */
    float st[DK / 8][4];
    const int state_idx = CAUSAL ? seg - 1 : a.nseg_ws - 1;
    bool state_nonzero =
        lac_v2_state_in<DK>(st, d_states, a, bh, state_idx, slice, warp, gid, tig);

    for (int c = c_begin; c < c_end; ++c) {
        const int stage = (c - c_begin) & 1;
        const uint16_t *sq = s_q + stage * LAC_C * LDK;
        const uint16_t *sk = s_k + stage * LAC_C * LDK;
        const uint16_t *sv = s_v + stage * LAC_C * LDV;
        cp_async_wait<0>();
        __syncthreads(); /* B0: chunk c landed; chunk c-1's buffers, A and O staging are free */
        if (c + 1 < c_end)
            lac_v2_load_chunk<DK, true, CAUSAL>(
                s_q + (stage ^ 1) * LAC_C * LDK, s_k + (stage ^ 1) * LAC_C * LDK,
                s_v + (stage ^ 1) * LAC_C * LDV, q_bh, k_bh, v_bh, a.dv, c + 1, a.T, tid);
        const int t0 = c * LAC_C;
        const int nvalid = lac_min(LAC_C, a.T - t0);

        if (CAUSAL) {
            /* Step 1: rows t = 16w..16w+15 of A = mask(Q K^T)/sqrt(dk); n-tiles of s (8 wide)
             * 0..2w+1 only, the rest of the row is above the diagonal and never read. */
            float sacc[8][4];
#pragma unroll
            for (int j = 0; j < 8; ++j) sacc[j][0] = sacc[j][1] = sacc[j][2] = sacc[j][3] = 0.f;
#pragma unroll
            for (int kk = 0; kk < DK / 16; ++kk) {
                uint32_t af[4];
                ldsm_x4(af, smem_u32(sq + (16 * warp + p1_row) * LDK + 16 * kk + p1_col));
#pragma unroll
                for (int jp = 0; jp < 4; ++jp) {
                    if (jp <= warp) { /* warp-uniform */
                        uint32_t bf[4];
                        ldsm_x4(bf, smem_u32(sk + (16 * jp + p2_row) * LDK + 16 * kk + p2_col));
                        mma_16816<BF16>(sacc[2 * jp], af, bf[0], bf[1]);
                        mma_16816<BF16>(sacc[2 * jp + 1], af, bf[2], bf[3]);
                    }
                }
            }
            const int ta = 16 * warp + gid, tb = ta + 8;
#pragma unroll
            for (int j = 0; j < 8; ++j) {
                if (j <= 2 * warp + 1) {
                    const int s0 = 8 * j + 2 * tig;
                    *reinterpret_cast<uint32_t *>(s_a + ta * LDA + s0) =
                        lac_pack<A_BF16>(s0 <= ta ? sacc[j][0] * a.scale : 0.f,
                                         s0 + 1 <= ta ? sacc[j][1] * a.scale : 0.f);
                    *reinterpret_cast<uint32_t *>(s_a + tb * LDA + s0) =
                        lac_pack<A_BF16>(s0 <= tb ? sacc[j][2] * a.scale : 0.f,
                                         s0 + 1 <= tb ? sacc[j][3] * a.scale : 0.f);
                }
            }
            __syncthreads(); /* B1: A complete */
        }

        /* Step 2: O^T (16 value rows x 64 tokens) = bf16(S^T/sqrt(dk)) Q^T [+ V^T A^T]. */
        float oacc[8][4];
#pragma unroll
        for (int j = 0; j < 8; ++j) oacc[j][0] = oacc[j][1] = oacc[j][2] = oacc[j][3] = 0.f;
        if (state_nonzero) { /* block-uniform; false only on chunk 0 of a causal sequence */
#pragma unroll
            for (int kk = 0; kk < DK / 16; ++kk) {
                /* A-fragment of S^T/sqrt(dk) for dk columns 16kk..16kk+15 = accumulator
                 * n-tiles 2kk (regs 0,1) and 2kk+1 (regs 2,3). */
                uint32_t af[4], al[4];
#pragma unroll
                for (int h = 0; h < 2; ++h) {
                    const float *x = st[2 * kk + h];
                    if (HILO) {
                        lac_split_bf16(x[0] * a.scale, x[1] * a.scale, af[2 * h], al[2 * h]);
                        lac_split_bf16(x[2] * a.scale, x[3] * a.scale, af[2 * h + 1],
                                       al[2 * h + 1]);
                    } else {
                        af[2 * h] = lac_pack<BF16>(x[0] * a.scale, x[1] * a.scale);
                        af[2 * h + 1] = lac_pack<BF16>(x[2] * a.scale, x[3] * a.scale);
                    }
                }
#pragma unroll
                for (int np = 0; np < 4; ++np) {
                    uint32_t bf[4];
                    ldsm_x4(bf, smem_u32(sq + (16 * np + p2_row) * LDK + 16 * kk + p2_col));
                    mma_16816<BF16>(oacc[2 * np], af, bf[0], bf[1]);
                    mma_16816<BF16>(oacc[2 * np + 1], af, bf[2], bf[3]);
                    if (HILO) {
                        mma_16816<BF16>(oacc[2 * np], al, bf[0], bf[1]);
                        mma_16816<BF16>(oacc[2 * np + 1], al, bf[2], bf[3]);
                    }
                }
            }
        }
        if (CAUSAL) {
            uint32_t vt[4][4], va[4][4]; /* V^T in the input type, and in A's type */
            lac_v2_load_vt(vt, sv, warp, p2_row, p2_col);
            if (VACT) lac_v_act<BF16>(vt, vb_lo, vb_hi);
#pragma unroll
            for (int ks = 0; ks < 4; ++ks)
#pragma unroll
                for (int r = 0; r < 4; ++r)
                    va[ks][r] = (BF16 && !A_BF16) ? lac_bf16x2_to_f16x2(vt[ks][r]) : vt[ks][r];
            /* Token n-tiles (2p, 2p+1) need source k-steps ks <= p (s <= t). */
#pragma unroll
            for (int p = 0; p < 4; ++p) {
#pragma unroll
                for (int ks = 0; ks < 4; ++ks) {
                    if (ks <= p) {
                        uint32_t bf[4];
                        ldsm_x4(bf, smem_u32(s_a + (16 * p + p2_row) * LDA + 16 * ks + p2_col));
                        mma_16816<A_BF16>(oacc[2 * p], va[ks], bf[0], bf[1]);
                        mma_16816<A_BF16>(oacc[2 * p + 1], va[ks], bf[2], bf[3]);
                    }
                }
            }
            lac_v2_state_update<BF16, DK>(st, vt, sk, p1_row, p1_col); /* after O used old S */
            state_nonzero = true;
        }

        /* Step 3: epilogue.  oacc[nt] = O^T rows (gid, gid+8) of the warp, tokens 8nt+2tig..+1. */
        if (a.norm_mode != 0) {
            lac_v2_row_sumsq(oacc, s_rss, warp, gid, tig);
            if (a.norm_mode == 1) { /* dv == 64: the whole row is in this block */
                __syncthreads();    /* Bn: row sums of every warp visible */
#pragma unroll
                for (int nt = 0; nt < 8; ++nt) {
#pragma unroll
                    for (int e = 0; e < 2; ++e) {
                        const int t = 8 * nt + 2 * tig + e;
                        float ss = 0.f;
#pragma unroll
                        for (int w = 0; w < LAC_WARPS; ++w) ss += s_rss[w * LAC_C + t];
                        const float r = rsqrtf(ss / (float)a.dv + a.rms_eps);
                        oacc[nt][e] *= r;
                        oacc[nt][e + 2] *= r;
                    }
                }
            }
        }
        lac_v2_store_o<BF16, false>(oacc, s_o, s_rss, o_bh, d_rowpart, a, slice, row0, t0,
                                    nvalid, tid, warp, gid, tig);
    }
}

/* Sets the dynamic shared memory limits of the v2 kernels (above 48 KB) and returns the
 * resident blocks per SM of the pass C kernel (the plan's occupancy) and of its pass A kernel. */
template <bool BF16, int DK> int lac_prepare_v2(int *bps, int *bps_a) {
    const int so = lac_v2_output_smem(DK), ss = lac_v2_state_smem(DK);
    CUDA_CHECK(cudaFuncSetAttribute(lac_v2_output_kernel<BF16, DK, true, false>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, so));
    CUDA_CHECK(cudaFuncSetAttribute(lac_v2_output_kernel<BF16, DK, true, true>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, so));
    CUDA_CHECK(cudaFuncSetAttribute(lac_v2_output_kernel<BF16, DK, false, false>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, so));
    CUDA_CHECK(cudaFuncSetAttribute(lac_v2_state_kernel<BF16, DK, false>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, ss));
    CUDA_CHECK(cudaFuncSetAttribute(lac_v2_state_kernel<BF16, DK, true>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, ss));
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
        bps, lac_v2_output_kernel<BF16, DK, true, false>, LAC_THREADS, (size_t)so));
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
        bps_a, lac_v2_state_kernel<BF16, DK, false>, LAC_THREADS, (size_t)ss));
    return 0;
}

/* Passes A and B of v2 / v3 (nothing when no segment state is needed). */
template <bool BF16, int DK>
int lac_launch_states_v2(const lac_plan *p, const lac_ptrs &d, const lac_args &a, int64_t nbh,
                         cudaStream_t stream) {
    if (p->ws_per_bh == 0) return 0;
    const uint16_t *k = (const uint16_t *)d.k, *v = (const uint16_t *)d.v;
    const unsigned grid = (unsigned)(nbh * p->ws_per_bh * p->nslices);
    if (a.v_bias)
        lac_v2_state_kernel<BF16, DK, true><<<grid, LAC_THREADS, lac_v2_state_smem(DK), stream>>>(
            k, v, d.states, a);
    else
        lac_v2_state_kernel<BF16, DK, false><<<grid, LAC_THREADS, lac_v2_state_smem(DK), stream>>>(
            k, v, d.states, a);
    CUDA_CHECK(cudaGetLastError());
    return lac_launch_scan(p, d, nbh, DK, a.dv, stream);
}

template <bool BF16, int DK>
int lac_enqueue_v2(const lac_plan *p, const lac_ptrs &d, const lac_args &a, int64_t nbh,
                   int causal, cudaStream_t stream) {
    const uint16_t *q = (const uint16_t *)d.q, *k = (const uint16_t *)d.k,
                   *v = (const uint16_t *)d.v;
    if (lac_launch_states_v2<BF16, DK>(p, d, a, nbh, stream)) return -1;
    const int64_t grid = nbh * p->nseg * p->nslices;
    const int so = lac_v2_output_smem(DK);
    const bool pdl = p->pdl && p->ws_per_bh > 0; /* the first pass launches plainly */
    int rc;
    if (causal && a.v_bias)
        rc = pdl_launch(pdl, lac_v2_output_kernel<BF16, DK, true, true>, (unsigned)grid,
                        LAC_THREADS, so, stream, q, k, v, (uint16_t *)d.o,
                        (const float *)d.states, d.rowpart, a);
    else if (causal)
        rc = pdl_launch(pdl, lac_v2_output_kernel<BF16, DK, true, false>, (unsigned)grid,
                        LAC_THREADS, so, stream, q, k, v, (uint16_t *)d.o,
                        (const float *)d.states, d.rowpart, a);
    else /* not causal: pass C never reads v */
        rc = pdl_launch(pdl, lac_v2_output_kernel<BF16, DK, false, false>, (unsigned)grid,
                        LAC_THREADS, so, stream, q, k, v, (uint16_t *)d.o,
                        (const float *)d.states, d.rowpart, a);
    if (rc) return rc;
    if (a.norm_mode >= 2) return lac_launch_norm(BF16 ? DTYPE_BF16 : DTYPE_F16, d, a, stream);
    return 0;
}

} /* namespace */

int lac_v2_prepare(bool bf16, int dk, int *bps, int *bps_a) {
    if (bf16) return dk == 64 ? lac_prepare_v2<true, 64>(bps, bps_a)
                              : lac_prepare_v2<true, 128>(bps, bps_a);
    return dk == 64 ? lac_prepare_v2<false, 64>(bps, bps_a)
                    : lac_prepare_v2<false, 128>(bps, bps_a);
}

int lac_v2_enqueue_states(bool bf16, int dk, const lac_plan *p, const lac_ptrs &d,
                          const lac_args &a, int64_t nbh, cudaStream_t stream) {
    if (bf16)
        return dk == 64 ? lac_launch_states_v2<true, 64>(p, d, a, nbh, stream)
                        : lac_launch_states_v2<true, 128>(p, d, a, nbh, stream);
    return dk == 64 ? lac_launch_states_v2<false, 64>(p, d, a, nbh, stream)
                    : lac_launch_states_v2<false, 128>(p, d, a, nbh, stream);
}

int lac_v2_enqueue(bool bf16, int dk, const lac_plan *p, const lac_ptrs &d, const lac_args &a,
                   int64_t nbh, int causal, cudaStream_t stream) {
    if (bf16)
        return dk == 64 ? lac_enqueue_v2<true, 64>(p, d, a, nbh, causal, stream)
                        : lac_enqueue_v2<true, 128>(p, d, a, nbh, causal, stream);
    return dk == 64 ? lac_enqueue_v2<false, 64>(p, d, a, nbh, causal, stream)
                    : lac_enqueue_v2<false, 128>(p, d, a, nbh, causal, stream);
}
