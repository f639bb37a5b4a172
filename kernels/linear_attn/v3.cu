/* v3.cu: linear_attn/chunked v3 (la_version=3; the default where v3 applies and v6 cannot run:
 * causal, dv >= 128, bf16 / fp16, no sm_90a build or not cc 9.0).  What v2's CHELA-head numbers
 * pointed at: per chunk and 64-column slice, 160 of v2's 1008 MMAs recompute Q K^T (the same for
 * all 32 slices) behind a barrier whose wait is set by warp 3 (4x warp 0's share of the causal
 * triangle), and 256 are the lo half of the hi/lo state.  v3 removes both:
 *   prep kernel  block (bh, chunk): A = mask(Q K^T) / sqrt(dk) once per chunk, stored fp16
 *                [bh][chunk][64][64] in the workspace (8 KB a chunk, read by the slices from L2);
 *                for bf16 also q16 = fp16(q) [bh][T][dk] (exact for |q| in fp16's normal range;
 *                q below 2^-14 becomes subnormal, an absolute error under 2^-25).
 *   pass C       as v2 but loads A with the chunk (cp.async into an XOR-swizzled 64 x 64 tile:
 *                no padding, conflict-free ldmatrix, two stages still fit two blocks an SM) and
 *                multiplies q16 by the state rounded to fp16 after a per-row power-of-two scale
 *                that puts the row's largest |S|/sqrt(dk) in [2^14, 2^15) (exact to undo):
 *                fp16's 2^-12 rounding instead of bf16 hi + lo.  MMAs per chunk and slice: 592
 *                (from 1008), one barrier fewer.
 *   pass A and the scan are v2's.  Error as v2 (fp16 S's 2^-12 is under the output's bf16
 *   rounding).  Shared memory: pass C 114,688 B (dk 128), two blocks an SM.
 * Numbers: profiles/NOTES.md, linear_attn. */
#include "bench_check.h"
#include "common/pdl_launch.cuh"
#include "linear_attn/passes.h"
#include "linear_attn/tiles.cuh"

namespace {

constexpr int lac_v3_output_smem(int dk) {
    return 2 * 2 * LAC_C * (dk + LAC_PAD) * 2     /* q16, k: two stages                */
           + 2 * LAC_C * (LAC_DVS + LAC_PAD) * 2  /* v: two stages                     */
           + 2 * LAC_C * LAC_C * 2                /* A (fp16, swizzled): two stages    */
           + LAC_C * (LAC_DVS + LAC_PAD) * 2      /* O staging                         */
           + LAC_WARPS * LAC_C * 4;               /* per-warp row sums of squares      */
}

constexpr int lac_v3_prep_smem(int dk) { return 2 * LAC_C * (dk + LAC_PAD) * 2; }

/* Element (r, c) of a 64 x 64 16-bit tile whose 16-byte pieces are XOR-swizzled by row. */
__device__ __forceinline__ int lac_swz64(int r, int c) {
    return r * LAC_C + ((((c >> 3) ^ r) & 7) << 3) + (c & 7);
}

/* Prep.  grid = B*H*nchunks, block = 128, dynamic smem lac_v3_prep_smem(DK). */
template <bool BF16, int DK>
__global__ void __launch_bounds__(LAC_THREADS)
    lac_v3_prep_kernel(const uint16_t *__restrict__ d_q, const uint16_t *__restrict__ d_k,
                       uint16_t *__restrict__ d_a, uint16_t *__restrict__ d_q16, lac_args a) {
    constexpr int LDK = DK + LAC_PAD;
    LAC_DYNAMIC_SMEM(lac_smem);
    uint16_t *s_q = reinterpret_cast<uint16_t *>(lac_smem); /* [C][LDK] */
    uint16_t *s_k = s_q + LAC_C * LDK;                      /* [C][LDK] */
    const int tid = threadIdx.x;
    const int nchunks = (a.T + LAC_C - 1) / LAC_C;
    const int c = blockIdx.x % nchunks;
    const int64_t bh = blockIdx.x / nchunks;
    const int t0 = c * LAC_C;
    const int nvalid = lac_min(LAC_C, a.T - t0);
    const int64_t row0 = bh * a.T + t0;
    lac_prep_chunk<BF16, DK>(d_q, d_k, s_q, s_k, a, row0, nvalid,
                             d_a + (bh * nchunks + c) * (int64_t)(LAC_C * LAC_C), LAC_C);
    if (BF16) { /* q16 rows of this chunk, 8 elements a thread per step */
        for (int p = tid; p < nvalid * (DK / 8); p += LAC_THREADS) {
            const int r = p / (DK / 8), c8 = (p % (DK / 8)) * 8;
            const uint4 u = *reinterpret_cast<const uint4 *>(s_q + r * LDK + c8);
            const uint4 h = make_uint4(lac_bf16x2_to_f16x2(u.x), lac_bf16x2_to_f16x2(u.y),
                                       lac_bf16x2_to_f16x2(u.z), lac_bf16x2_to_f16x2(u.w));
            *reinterpret_cast<uint4 *>(d_q16 + (row0 + r) * DK + c8) = h;
        }
    }
}

/* One chunk of q16, k, this slice's v columns and A (cp.async, one commit group). */
template <int DK>
__device__ __forceinline__ void lac_v3_load_chunk(uint16_t *sq, uint16_t *sk, uint16_t *sv,
                                                  uint16_t *sa, const uint16_t *q_bh,
                                                  const uint16_t *k_bh, const uint16_t *v_bh,
                                                  const uint16_t *a_bh, int dv, int c, int T,
                                                  int tid) {
    const int t0 = c * LAC_C;
    const int nvalid = lac_min(LAC_C, T - t0);
    lac_load_rows<DK, DK + LAC_PAD>(sq, q_bh + (int64_t)t0 * DK, DK, nvalid, tid);
    lac_load_rows<DK, DK + LAC_PAD>(sk, k_bh + (int64_t)t0 * DK, DK, nvalid, tid);
    lac_load_rows<LAC_DVS, LAC_DVS + LAC_PAD>(sv, v_bh + (int64_t)t0 * dv, dv, nvalid, tid);
    const uint16_t *ga = a_bh + (int64_t)c * (LAC_C * LAC_C);
#pragma unroll
    for (int i = 0; i < LAC_C * 8 / LAC_THREADS; ++i) { /* 512 pieces of 16 B */
        const int p = tid + i * LAC_THREADS;
        const int r = p >> 3, c8 = (p & 7) << 3;
        cp_async16(smem_u32(sa + lac_swz64(r, c8)), ga + r * LAC_C + c8, 16);
    }
    cp_async_commit();
}

/* Pass C, v3 (causal only).  grid = B*H*nseg*nslices, block = 128, dynamic smem
 * lac_v3_output_smem(DK).  Barriers per chunk: B0 (chunk landed), [Bn], B2 (O staged).
 * GATE: the copy for norm_mode 3 (gate in the store); its gate registers changed the
 * ungated kernel's schedule (CHELA head 0.40 -> 0.415 ms), so the ungated one is its own. */
template <bool BF16, int DK, bool GATE>
__global__ void __launch_bounds__(LAC_THREADS, 2)
    lac_v3_output_kernel(const uint16_t *__restrict__ d_q16, const uint16_t *__restrict__ d_k,
                         const uint16_t *__restrict__ d_v, const uint16_t *__restrict__ d_a,
                         uint16_t *__restrict__ d_o, const float *__restrict__ d_states,
                         float *__restrict__ d_rowpart, lac_args a) {
    constexpr int LDK = DK + LAC_PAD, LDV = LAC_DVS + LAC_PAD, LDO = LAC_DVS + LAC_PAD;
    constexpr int ATILE = LAC_C * LAC_C;
    LAC_DYNAMIC_SMEM(lac_smem);
    uint16_t *s_q = reinterpret_cast<uint16_t *>(lac_smem); /* [2][C][LDK]  fp16           */
    uint16_t *s_k = s_q + 2 * LAC_C * LDK;                  /* [2][C][LDK]                 */
    uint16_t *s_v = s_k + 2 * LAC_C * LDK;                  /* [2][C][LDV]                 */
    uint16_t *s_a = s_v + 2 * LAC_C * LDV;                  /* [2][C*C] A[t][s], swizzled  */
    uint16_t *s_o = s_a + 2 * ATILE;                        /* [C][LDO]  O[t][dv]          */
    float *s_rss = reinterpret_cast<float *>(s_o + LAC_C * LDO); /* [WARPS][C]             */

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int gid = lane >> 2, tig = lane & 3, mi = lane >> 3, r8 = lane & 7;
    const int p1_row = (mi & 1) * 8 + r8, p1_col = (mi >> 1) * 8;
    const int p2_row = (mi >> 1) * 8 + r8, p2_col = (mi & 1) * 8;

    const lac_block blk = lac_block_of(a);
    lac_grid_dep_wait(); /* launched with PDL: pass B's states, prep's A and q16 */
    const int slice = blk.slice, seg = blk.seg, nchunks = blk.nchunks;
    const int c_begin = blk.c_begin, c_end = blk.c_end;
    const int64_t bh = blk.bh, row0 = blk.row0;
    const uint16_t *q_bh = d_q16 + row0 * DK;
    const uint16_t *k_bh = d_k + row0 * DK;
    const uint16_t *v_bh = d_v + row0 * a.dv + slice * LAC_DVS;
    const uint16_t *a_bh = d_a + bh * nchunks * (int64_t)ATILE;
    uint16_t *o_bh = d_o + row0 * a.dv + slice * LAC_DVS;

    lac_v3_load_chunk<DK>(s_q, s_k, s_v, s_a, q_bh, k_bh, v_bh, a_bh, a.dv, c_begin, a.T, tid);
    /* v_bias (V's SiLU) rides the GATE copy only, CHELA's path: the plain kernel's schedule
     * stays as measured. */
    const bool vact = GATE && a.v_bias != nullptr;
    float vb_lo = 0.f, vb_hi = 0.f;
    if (vact) lac_v_bias_of(a.v_bias, slice, warp, gid, vb_lo, vb_hi);

    float st[DK / 8][4];
    bool state_nonzero = lac_v2_state_in<DK>(st, d_states, a, bh, seg - 1, slice, warp, gid, tig);

    for (int c = c_begin; c < c_end; ++c) {
        const int stage = (c - c_begin) & 1;
        const uint16_t *sq = s_q + stage * LAC_C * LDK;
        const uint16_t *sk = s_k + stage * LAC_C * LDK;
        const uint16_t *sv = s_v + stage * LAC_C * LDV;
        const uint16_t *sa = s_a + stage * ATILE;
        cp_async_wait<0>();
        __syncthreads(); /* B0: chunk c landed; chunk c-1's buffers and O staging are free */
        if (c + 1 < c_end)
            lac_v3_load_chunk<DK>(s_q + (stage ^ 1) * LAC_C * LDK, s_k + (stage ^ 1) * LAC_C * LDK,
                                  s_v + (stage ^ 1) * LAC_C * LDV, s_a + (stage ^ 1) * ATILE,
                                  q_bh, k_bh, v_bh, a_bh, a.dv, c + 1, a.T, tid);
        const int t0 = c * LAC_C;
        const int nvalid = lac_min(LAC_C, a.T - t0);
        if (GATE && a.norm_mode == 3 && a.gate && tid < nvalid) /* rows this chunk's store reads */
            lac_prefetch_l2(static_cast<const uint16_t *>(a.gate) + (row0 + t0 + tid) * a.gate_ld +
                            slice * LAC_DVS);

        /* Step 2a: O^T = 2^-p (fp16(2^p S^T / sqrt(dk)) Q16^T), p per value row. */
        float oacc[8][4];
#pragma unroll
        for (int j = 0; j < 8; ++j) oacc[j][0] = oacc[j][1] = oacc[j][2] = oacc[j][3] = 0.f;
        if (state_nonzero) { /* block-uniform */
            float ma = 0.f, mb = 0.f; /* rows gid, gid+8: max |S| over this lane's columns */
#pragma unroll
            for (int j = 0; j < DK / 8; ++j) {
                ma = fmaxf(ma, fmaxf(fabsf(st[j][0]), fabsf(st[j][1])));
                mb = fmaxf(mb, fmaxf(fabsf(st[j][2]), fabsf(st[j][3])));
            }
#pragma unroll
            for (int m = 1; m < 4; m <<= 1) { /* over tig: the row's 4 lanes */
                ma = fmaxf(ma, lac_shfl_xor(ma, m));
                mb = fmaxf(mb, lac_shfl_xor(mb, m));
            }
            const int pa = lac_fp16_scale_exp(ma * a.scale), pb = lac_fp16_scale_exp(mb * a.scale);
            const float sa_ = a.scale * lac_exp2i(pa), sb_ = a.scale * lac_exp2i(pb);
#pragma unroll
            for (int kk = 0; kk < DK / 16; ++kk) {
                uint32_t af[4];
#pragma unroll
                for (int h = 0; h < 2; ++h) {
                    const float *x = st[2 * kk + h];
                    af[2 * h] = lac_pack<false>(x[0] * sa_, x[1] * sa_);
                    af[2 * h + 1] = lac_pack<false>(x[2] * sb_, x[3] * sb_);
                }
#pragma unroll
                for (int np = 0; np < 4; ++np) {
                    uint32_t bf[4];
                    ldsm_x4(bf, smem_u32(sq + (16 * np + p2_row) * LDK + 16 * kk + p2_col));
                    mma_16816<false>(oacc[2 * np], af, bf[0], bf[1]);
                    mma_16816<false>(oacc[2 * np + 1], af, bf[2], bf[3]);
                }
            }
            const float ia = lac_exp2i(-pa), ib = lac_exp2i(-pb);
#pragma unroll
            for (int j = 0; j < 8; ++j) {
                oacc[j][0] *= ia;
                oacc[j][1] *= ia;
                oacc[j][2] *= ib;
                oacc[j][3] *= ib;
            }
        }
        /* Step 2b: O^T += V^T A^T (fp16), then S^T += V^T K. */
        {
            uint32_t vt[4][4], va[4][4];
            lac_v2_load_vt(vt, sv, warp, p2_row, p2_col);
            if (vact) lac_v_act<BF16>(vt, vb_lo, vb_hi);
#pragma unroll
            for (int ks = 0; ks < 4; ++ks)
#pragma unroll
                for (int r = 0; r < 4; ++r)
                    va[ks][r] = BF16 ? lac_bf16x2_to_f16x2(vt[ks][r]) : vt[ks][r];
#pragma unroll
            for (int p = 0; p < 4; ++p) {
#pragma unroll
                for (int ks = 0; ks < 4; ++ks) {
                    if (ks <= p) {
                        uint32_t bf[4];
                        ldsm_x4(bf, smem_u32(sa + lac_swz64(16 * p + p2_row, 16 * ks + p2_col)));
                        mma_16816<false>(oacc[2 * p], va[ks], bf[0], bf[1]);
                        mma_16816<false>(oacc[2 * p + 1], va[ks], bf[2], bf[3]);
                    }
                }
            }
            lac_v2_state_update<BF16, DK>(st, vt, sk, p1_row, p1_col);
            state_nonzero = true;
        }

        /* Step 3: epilogue, as v2. */
        if (a.norm_mode != 0) lac_v2_row_sumsq(oacc, s_rss, warp, gid, tig);
        lac_v2_store_o<BF16, GATE>(oacc, s_o, s_rss, o_bh, d_rowpart, a, slice, row0, t0, nvalid,
                             tid, warp, gid, tig);
    }
}

template <bool BF16, int DK> int lac_prepare_v3(int *bps, int *bps_a) {
    int unused = 0;
    if (lac_v2_prepare(BF16, DK, &unused, bps_a)) return -1; /* pass A is v2's */
    const int so = lac_v3_output_smem(DK);
    CUDA_CHECK(cudaFuncSetAttribute(lac_v3_output_kernel<BF16, DK, false>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, so));
    CUDA_CHECK(cudaFuncSetAttribute(lac_v3_output_kernel<BF16, DK, true>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, so));
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
        bps, lac_v3_output_kernel<BF16, DK, false>, LAC_THREADS, (size_t)so));
    return 0;
}

template <bool BF16, int DK>
int lac_enqueue_v3(const lac_plan *p, const lac_ptrs &d, const lac_args &a, int64_t nbh,
                   cudaStream_t stream) {
    const uint16_t *q = (const uint16_t *)d.q, *k = (const uint16_t *)d.k,
                   *v = (const uint16_t *)d.v;
    if (lac_v2_enqueue_states(BF16, DK, p, d, a, nbh, stream)) return -1;
    const int64_t prep_grid = nbh * p->nchunks;
    if (pdl_launch(p->pdl && p->ws_per_bh > 0, lac_v3_prep_kernel<BF16, DK>, (unsigned)prep_grid,
                   LAC_THREADS, lac_v3_prep_smem(DK), stream, q, k, d.amat, d.q16, a))
        return -1;
    const int64_t grid = nbh * p->nseg * p->nslices;
    const uint16_t *qc = BF16 ? d.q16 : q;
    /* the GATE copy carries the gate and V's SiLU */
    int rc;
    if ((a.norm_mode == 3 && a.gate) || a.v_bias)
        rc = pdl_launch(p->pdl, lac_v3_output_kernel<BF16, DK, true>, (unsigned)grid,
                        LAC_THREADS, lac_v3_output_smem(DK), stream, qc, k, v,
                        (const uint16_t *)d.amat, (uint16_t *)d.o, (const float *)d.states,
                        d.rowpart, a);
    else
        rc = pdl_launch(p->pdl, lac_v3_output_kernel<BF16, DK, false>, (unsigned)grid,
                        LAC_THREADS, lac_v3_output_smem(DK), stream, qc, k, v,
                        (const uint16_t *)d.amat, (uint16_t *)d.o, (const float *)d.states,
                        d.rowpart, a);
    if (rc) return rc;
    if (a.norm_mode == 2) return lac_launch_norm(BF16 ? DTYPE_BF16 : DTYPE_F16, d, a, stream);
    return 0;
}

} /* namespace */

int lac_v3_prepare(bool bf16, int dk, int *bps, int *bps_a) {
    if (bf16) return dk == 64 ? lac_prepare_v3<true, 64>(bps, bps_a)
                              : lac_prepare_v3<true, 128>(bps, bps_a);
    return dk == 64 ? lac_prepare_v3<false, 64>(bps, bps_a)
                    : lac_prepare_v3<false, 128>(bps, bps_a);
}

int lac_v3_enqueue(bool bf16, int dk, const lac_plan *p, const lac_ptrs &d, const lac_args &a,
                   int64_t nbh, cudaStream_t stream) {
    if (bf16)
        return dk == 64 ? lac_enqueue_v3<true, 64>(p, d, a, nbh, stream)
                        : lac_enqueue_v3<true, 128>(p, d, a, nbh, stream);
    return dk == 64 ? lac_enqueue_v3<false, 64>(p, d, a, nbh, stream)
                    : lac_enqueue_v3<false, 128>(p, d, a, nbh, stream);
}
