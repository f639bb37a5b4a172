/* bwd_mma.cu: linear_attn/chunked's backward on mma.sync (causal, bf16 / fp16, dk 64 or 128, dv
 * a multiple of 64 up to 2048).  The algebra, the plan and the workspace: bwd_plan.h.
 *
 * Passes (a block = 4 warps, 128 threads, owns one (b*H+h, segment, 64-column dv slice); the
 * slice runs fastest in blockIdx.x, so the blocks re-reading one chunk's q and k run together):
 *   sums   (nseg > 1) block (bh, seg, slice) sums S_seg = K^T V (seg < nseg-1) and
 *          R_seg = Q^T dO (seg > 0) over its segment's chunks into fstates / bstates.
 *   scan   per (bh, 4 state elements): fstates slot j <- sum over segments < j (exclusive,
 *          forward), bstates slot j <- sum over segments > j (exclusive, reverse).
 *   dQ     block walks its segment's chunks forward from S entering it (zero for segment 0):
 *          dQ_c = s (dO_c S^T + P_c K_c), P_c = (dO_c V_c^T) (.) M, then S += K_c^T V_c.
 *   dK dV  block walks its chunks backward from R entering it from the right:
 *          dV_c = s (K_c R + A_c^T dO_c), A_c = (Q_c K_c^T) (.) M,
 *          dK_c = s (V_c R^T + P_c^T Q_c), then R += Q_c^T dO_c.
 *   conv   (dv > 64) dq32, dk32 (fp32 sums of every slice's part, by atomics) -> dQ, dK.
 * dV needs no reduction: a slice's dV columns are its own.  dQ and dK are sums over the slices;
 * with one slice (the LM shape) the walkers write them directly in the run dtype.
 *
 * Layouts in a block (the device code: bwd_tiles.cuh).  The running state X (S or R, dk x 64 of the slice, fp32) lives in mma
 * accumulators with warp w owning dk rows 16(MT w + m) .. +15, m < MT = dk/64, all 64 columns:
 * its update X += Y^T Z over a chunk (Y [C][dk], Z [C][64]) contracts over tokens inside the
 * warp.  Every product that reads X contracts over dk or over the slice, which that layout
 * splits across warps, so each chunk the state is first copied to shared memory (bf16 as hi + lo,
 * ~2^-16 relative, as v2's Q S operand; fp16 as one fp16), and the outputs are computed with
 * token rows per warp (warp w: tokens 16w..16w+15), reading X from there.  The chunk's masked
 * 64 x 64 products P and A are kept as fp16 in shared memory (bf16 runs convert the operand
 * they multiply to fp16 in registers, as v2 does with its A; |P|, |A| and the inputs must stay
 * in fp16's range, 65504); a warp computes its 16 rows, only the 16-column tiles at or left of
 * the diagonal (the rest is never read).
 *
 * Shared memory per block: dQ 117,760 B (dk 128) / 82,944 (dk 64); dK dV 161,792 / 110,592;
 * sums 106,496 / 73,728; dQ and dK + 33,792 / 17,408 where they are summed over slices (the
 * float4 reductions' staging).  MMAs per chunk and slice (dk 128, bf16): dQ 80 (P) + 512 (dO S^T, hi
 * and lo) + 160 (P K) + 256 (update) = 1008; dK dV 80 (P) + 160 (A) + 512 + 80 (dV) + 512 + 160
 * (dK) + 256 = 1760; sums 512.  dk 64: dQ 544, dK dV 960, sums 256 (the forward's v2: 544).  Nothing of this file has run on a GPU yet: tests/test_gpu_linear_attn_bwd.c
 * checks it against harness/ref_grad_attn.c's double reference. */
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "bench_check.h"
#include "linear_attn/bwd.h"
#include "linear_attn/bwd_tiles.cuh"

namespace {

constexpr int LAB_SCAN_THREADS = 256;
constexpr int LAB_CONV_THREADS = 256;

template <int DK> constexpr int lab_sums_smem() {
    return 2 * 2 * LAC_C * (DK + LAC_PAD) * 2 + 2 * 2 * LAC_C * LAB_LDV * 2;
}
/* The reduction's staging (lab_add_rows), only where dQ and dK are summed over slices. */
template <int DK> constexpr int lab_sum_smem(bool reduce) {
    return reduce ? LAC_C * (DK + 4) * 4 : 0;
}
template <int DK> constexpr int lab_dq_smem(bool reduce) {
    return 2 * 2 * LAC_C * LAB_LDV * 2         /* dO, V: two stages       */
           + 2 * LAC_C * (DK + LAC_PAD) * 2    /* K: two stages           */
           + LAC_C * LAB_LDV * 2               /* P                       */
           + 2 * DK * LAB_LDV * 2              /* S copy: hi, lo          */
           + lab_sum_smem<DK>(reduce);         /* dQ staging (reduce)     */
}
template <int DK> constexpr int lab_dkv_smem(bool reduce) {
    return 2 * 2 * LAC_C * (DK + LAC_PAD) * 2  /* Q, K: two stages        */
           + 2 * 2 * LAC_C * LAB_LDV * 2       /* V, dO: two stages       */
           + 2 * LAC_C * LAB_LDV * 2           /* P, A                    */
           + 2 * DK * LAB_LDV * 2              /* R copy: hi, lo          */
           + lab_sum_smem<DK>(reduce);         /* dK staging (reduce)     */
}

/* Sums.  grid = B*H*nseg*nslices, block 128, dynamic smem lab_sums_smem<DK>().  Every
 * segment but the last writes its K^T V to fstates, every one but the first its Q^T dO to
 * bstates (slot = the segment; the scan makes them incoming states). */
template <bool BF16, int DK>
__global__ void __launch_bounds__(LAC_THREADS)
    lab_sums_kernel(const uint16_t *__restrict__ d_q, const uint16_t *__restrict__ d_k,
                    const uint16_t *__restrict__ d_v, const uint16_t *__restrict__ d_do,
                    float *__restrict__ d_f, float *__restrict__ d_b, lab_args a) {
    constexpr int LDK = DK + LAC_PAD;
    LAC_DYNAMIC_SMEM(lab_smem);
    uint16_t *s_k = reinterpret_cast<uint16_t *>(lab_smem); /* [2][C][LDK] */
    uint16_t *s_q = s_k + 2 * LAC_C * LDK;                  /* [2][C][LDK] */
    uint16_t *s_v = s_q + 2 * LAC_C * LDK;                  /* [2][C][LDV] */
    uint16_t *s_do = s_v + 2 * LAC_C * LAB_LDV;             /* [2][C][LDV] */
    const lab_lane l = lab_lane_of();
    const lab_block blk = lab_block_of(a);
    const bool want_s = blk.seg < a.nseg - 1, want_r = blk.seg > 0; /* block-uniform */
    const uint16_t *k_bh = d_k + blk.row0 * DK, *q_bh = d_q + blk.row0 * DK;
    const uint16_t *v_bh = d_v + blk.row0 * a.dv + blk.slice * LAC_DVS;
    const uint16_t *do_bh = d_do + blk.row0 * a.dv + blk.slice * LAC_DVS;

    float xs[DK / 64][8][4], xr[DK / 64][8][4];
    lab_zero_state<DK>(xs);
    lab_zero_state<DK>(xr);
    /* Both tensors pairs are loaded (the unused pair of the first and last segments too):
     * one code path, and those are 2 of nseg segments. */
    lab_load_chunk<DK, 2, 2>(s_k, s_q, s_v, s_do, k_bh, q_bh, v_bh, do_bh, a.dv,
                                   blk.c_begin, a.T);
    for (int c = blk.c_begin; c < blk.c_end; ++c) {
        const int st = (c - blk.c_begin) & 1;
        cp_async_wait<0>();
        __syncthreads(); /* chunk c landed; everyone is done with chunk c-1's buffers */
        if (c + 1 < blk.c_end)
            lab_load_chunk<DK, 2, 2>(
                s_k + (st ^ 1) * LAC_C * LDK, s_q + (st ^ 1) * LAC_C * LDK,
                s_v + (st ^ 1) * LAC_C * LAB_LDV, s_do + (st ^ 1) * LAC_C * LAB_LDV, k_bh, q_bh,
                v_bh, do_bh, a.dv, c + 1, a.T);
        if (want_s)
            lab_state_update<BF16, DK>(xs, s_k + st * LAC_C * LDK, s_v + st * LAC_C * LAB_LDV, l);
        if (want_r)
            lab_state_update<BF16, DK>(xr, s_q + st * LAC_C * LDK, s_do + st * LAC_C * LAB_LDV,
                                       l);
    }
    if (want_s) lab_store_state<DK>(xs, d_f, a, blk.bh, blk.seg, blk.slice, l);
    if (want_r) lab_store_state<DK>(xr, d_b, a, blk.bh, blk.seg, blk.slice, l);
}

/* Scan.  Thread = (bh, float4 of the dk*dv state), in place over the nseg slots: fstates slot j
 * <- sum of slots < j (slot nseg-1 was never written and is not read), bstates slot j <- sum of
 * slots > j (slot 0 likewise).  Fixed order: deterministic. */
__global__ void __launch_bounds__(LAB_SCAN_THREADS)
    lab_scan_kernel(float4 *__restrict__ d_f, float4 *__restrict__ d_b, int64_t vec,
                    int64_t total, int nseg) {
    const int64_t i = (int64_t)blockIdx.x * LAB_SCAN_THREADS + threadIdx.x;
    if (i >= total) return;
    const int64_t bh = i / vec, e = i % vec;
    float4 *pf = d_f + bh * nseg * vec + e, *pb = d_b + bh * nseg * vec + e;
    float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
    for (int j = 0; j < nseg; ++j) {
        const float4 x = j < nseg - 1 ? pf[j * vec] : make_float4(0.f, 0.f, 0.f, 0.f);
        pf[j * vec] = acc;
        acc.x += x.x, acc.y += x.y, acc.z += x.z, acc.w += x.w;
    }
    acc = make_float4(0.f, 0.f, 0.f, 0.f);
    for (int j = nseg - 1; j >= 0; --j) {
        const float4 x = j > 0 ? pb[j * vec] : make_float4(0.f, 0.f, 0.f, 0.f);
        pb[j * vec] = acc;
        acc.x += x.x, acc.y += x.y, acc.z += x.z, acc.w += x.w;
    }
}

/* dQ.  grid = B*H*nseg*nslices, block 128, dynamic smem lab_dq_smem<DK>(reduce).  Barriers per chunk:
 * B0 (chunk landed, the previous chunk's P and S copy read by all), B1 (P and S copy written). */
template <bool BF16, int DK>
__global__ void __launch_bounds__(LAC_THREADS)
    lab_dq_kernel(const uint16_t *__restrict__ d_k, const uint16_t *__restrict__ d_v,
                  const uint16_t *__restrict__ d_do, const float *__restrict__ d_f,
                  uint16_t *__restrict__ d_dq, float *__restrict__ d_dq32, lab_args a) {
    constexpr int LDK = DK + LAC_PAD;
    LAC_DYNAMIC_SMEM(lab_smem);
    uint16_t *s_do = reinterpret_cast<uint16_t *>(lab_smem); /* [2][C][LDV]           */
    uint16_t *s_v = s_do + 2 * LAC_C * LAB_LDV;              /* [2][C][LDV]           */
    uint16_t *s_k = s_v + 2 * LAC_C * LAB_LDV;               /* [2][C][LDK]           */
    uint16_t *s_p = s_k + 2 * LAC_C * LDK;                   /* [C][LDV]  P[t][s]     */
    uint16_t *s_xh = s_p + LAC_C * LAB_LDV;                  /* [DK][LDV] S hi (fp16) */
    uint16_t *s_xl = s_xh + DK * LAB_LDV;                    /* [DK][LDV] S lo (bf16) */
    float *s_sum = reinterpret_cast<float *>(s_xl + DK * LAB_LDV); /* [C][DK+4] (reduce) */
    const lab_lane l = lab_lane_of();
    const lab_block blk = lab_block_of(a);
    const uint16_t *k_bh = d_k + blk.row0 * DK;
    const uint16_t *v_bh = d_v + blk.row0 * a.dv + blk.slice * LAC_DVS;
    const uint16_t *do_bh = d_do + blk.row0 * a.dv + blk.slice * LAC_DVS;
    uint16_t *dq_bh = d_dq + blk.row0 * DK;
    float *dq32_bh = d_dq32 ? d_dq32 + blk.row0 * DK : nullptr;

    lab_load_chunk<DK, 1, 2>(s_k, nullptr, s_do, s_v, k_bh, nullptr, do_bh, v_bh, a.dv,
                                   blk.c_begin, a.T);
    float x[DK / 64][8][4];
    if (a.nseg > 1)
        lab_load_state<DK>(x, d_f, a, blk.bh, blk.seg, blk.slice, l);
    else
        lab_zero_state<DK>(x);

    for (int c = blk.c_begin; c < blk.c_end; ++c) {
        const int st = (c - blk.c_begin) & 1;
        const uint16_t *sdo = s_do + st * LAC_C * LAB_LDV, *sv = s_v + st * LAC_C * LAB_LDV;
        const uint16_t *sk = s_k + st * LAC_C * LDK;
        cp_async_wait<0>();
        __syncthreads(); /* B0 */
        if (c + 1 < blk.c_end)
            lab_load_chunk<DK, 1, 2>(s_k + (st ^ 1) * LAC_C * LDK, nullptr,
                                     s_do + (st ^ 1) * LAC_C * LAB_LDV,
                                     s_v + (st ^ 1) * LAC_C * LAB_LDV, k_bh, nullptr, do_bh, v_bh,
                                     a.dv, c + 1, a.T);
        const int t0 = c * LAC_C, nvalid = lac_min(LAC_C, a.T - t0);
        lab_state_to_smem<BF16, DK>(x, s_xh, s_xl, l); /* S_{c-1}: before this chunk's update */
        lab_masked_product<BF16, LAC_DVS, LAB_LDV>(s_p, sdo, sv, l);
        __syncthreads(); /* B1 */

        float acc[DK / 8][4];
#pragma unroll
        for (int j = 0; j < DK / 8; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;
        /* dO S^T: A = dO rows (P1), B = S^T from the copy [dk][slice] = [n][k] (P2). */
#pragma unroll
        for (int ks = 0; ks < 4; ++ks) {
            uint32_t af[4];
            ldsm_x4(af, smem_u32(sdo + (16 * l.warp + l.p1_row) * LAB_LDV + 16 * ks + l.p1_col));
#pragma unroll
            for (int np = 0; np < DK / 16; ++np) {
                uint32_t bf[4];
                ldsm_x4(bf, smem_u32(s_xh + (16 * np + l.p2_row) * LAB_LDV + 16 * ks + l.p2_col));
                mma_16816<BF16>(acc[2 * np], af, bf[0], bf[1]);
                mma_16816<BF16>(acc[2 * np + 1], af, bf[2], bf[3]);
                if (LAB_HILO<BF16>) {
                    ldsm_x4(bf,
                            smem_u32(s_xl + (16 * np + l.p2_row) * LAB_LDV + 16 * ks + l.p2_col));
                    mma_16816<BF16>(acc[2 * np], af, bf[0], bf[1]);
                    mma_16816<BF16>(acc[2 * np + 1], af, bf[2], bf[3]);
                }
            }
        }
        /* P K: A = P rows (P1), k-steps of s up to the diagonal; B = K [s][dk] (P1, trans). */
#pragma unroll
        for (int ks = 0; ks < 4; ++ks) {
            if (ks <= l.warp) { /* warp-uniform */
                uint32_t af[4];
                ldsm_x4(af, smem_u32(s_p + (16 * l.warp + l.p1_row) * LAB_LDV + 16 * ks + l.p1_col));
#pragma unroll
                for (int jp = 0; jp < DK / 16; ++jp) {
                    uint32_t bf[4];
                    ldsm_x4_trans(bf, smem_u32(sk + (16 * ks + l.p1_row) * LDK + 16 * jp + l.p1_col));
                    lab_to_f16<BF16>(bf);
                    mma_16816<false>(acc[2 * jp], af, bf[0], bf[1]);
                    mma_16816<false>(acc[2 * jp + 1], af, bf[2], bf[3]);
                }
            }
        }
        lab_state_update<BF16, DK>(x, sk, sv, l); /* S_c, for the next chunk */
        if (dq32_bh) /* kernel-uniform */
            lab_add_rows<DK>(acc, a.scale, s_sum, dq32_bh + (int64_t)t0 * DK, nvalid, l);
        else
            lab_store_rows<BF16, DK / 8>(acc, a.scale, dq_bh + (int64_t)t0 * DK, DK, nvalid, l);
    }
}

/* dK, dV.  grid = B*H*nseg*nslices, block 128, dynamic smem lab_dkv_smem<DK>(reduce).  Walks its
 * chunks last to first.  Barriers per chunk: B0 (chunk landed; the previous chunk's P, A and R
 * copy read by all), B1 (P, A and R copy written). */
template <bool BF16, int DK>
__global__ void __launch_bounds__(LAC_THREADS)
    lab_dkv_kernel(const uint16_t *__restrict__ d_q, const uint16_t *__restrict__ d_k,
                   const uint16_t *__restrict__ d_v, const uint16_t *__restrict__ d_do,
                   const float *__restrict__ d_b, uint16_t *__restrict__ d_dk,
                   uint16_t *__restrict__ d_dv, float *__restrict__ d_dk32, lab_args a) {
    constexpr int LDK = DK + LAC_PAD;
    LAC_DYNAMIC_SMEM(lab_smem);
    uint16_t *s_q = reinterpret_cast<uint16_t *>(lab_smem); /* [2][C][LDK]           */
    uint16_t *s_k = s_q + 2 * LAC_C * LDK;                   /* [2][C][LDK]           */
    uint16_t *s_v = s_k + 2 * LAC_C * LDK;                   /* [2][C][LDV]           */
    uint16_t *s_do = s_v + 2 * LAC_C * LAB_LDV;              /* [2][C][LDV]           */
    uint16_t *s_p = s_do + 2 * LAC_C * LAB_LDV;              /* [C][LDV]  P[t][s]     */
    uint16_t *s_a = s_p + LAC_C * LAB_LDV;                   /* [C][LDV]  A[t][s]     */
    uint16_t *s_xh = s_a + LAC_C * LAB_LDV;                  /* [DK][LDV] R hi (fp16) */
    uint16_t *s_xl = s_xh + DK * LAB_LDV;                    /* [DK][LDV] R lo (bf16) */
    float *s_sum = reinterpret_cast<float *>(s_xl + DK * LAB_LDV); /* [C][DK+4] (reduce) */
    const lab_lane l = lab_lane_of();
    const lab_block blk = lab_block_of(a);
    const uint16_t *q_bh = d_q + blk.row0 * DK, *k_bh = d_k + blk.row0 * DK;
    const uint16_t *v_bh = d_v + blk.row0 * a.dv + blk.slice * LAC_DVS;
    const uint16_t *do_bh = d_do + blk.row0 * a.dv + blk.slice * LAC_DVS;
    uint16_t *dk_bh = d_dk + blk.row0 * DK;
    uint16_t *dv_bh = d_dv + blk.row0 * a.dv + blk.slice * LAC_DVS;
    float *dk32_bh = d_dk32 ? d_dk32 + blk.row0 * DK : nullptr;
    const int n = blk.c_end - blk.c_begin;

    if (n > 0)
        lab_load_chunk<DK, 2, 2>(s_q, s_k, s_v, s_do, q_bh, k_bh, v_bh, do_bh, a.dv,
                                       blk.c_end - 1, a.T);
    float x[DK / 64][8][4];
    if (a.nseg > 1)
        lab_load_state<DK>(x, d_b, a, blk.bh, blk.seg, blk.slice, l);
    else
        lab_zero_state<DK>(x);

    for (int it = 0; it < n; ++it) {
        const int c = blk.c_end - 1 - it, st = it & 1;
        const uint16_t *sq = s_q + st * LAC_C * LDK, *sk = s_k + st * LAC_C * LDK;
        const uint16_t *sv = s_v + st * LAC_C * LAB_LDV, *sdo = s_do + st * LAC_C * LAB_LDV;
        cp_async_wait<0>();
        __syncthreads(); /* B0 */
        if (c - 1 >= blk.c_begin)
            lab_load_chunk<DK, 2, 2>(
                s_q + (st ^ 1) * LAC_C * LDK, s_k + (st ^ 1) * LAC_C * LDK,
                s_v + (st ^ 1) * LAC_C * LAB_LDV, s_do + (st ^ 1) * LAC_C * LAB_LDV, q_bh, k_bh,
                v_bh, do_bh, a.dv, c - 1, a.T);
        const int t0 = c * LAC_C, nvalid = lac_min(LAC_C, a.T - t0);
        lab_state_to_smem<BF16, DK>(x, s_xh, s_xl, l); /* R_c: chunks after c */
        lab_masked_product<BF16, LAC_DVS, LAB_LDV>(s_p, sdo, sv, l); /* P = mask(dO V^T) */
        lab_masked_product<BF16, DK, LDK>(s_a, sq, sk, l);           /* A = mask(Q K^T) */
        __syncthreads(); /* B1 */

        { /* dV rows s = 16w..: K R (B = R [dk][slice] = [k][n], P1 trans) + A^T dO */
            float acc[8][4];
#pragma unroll
            for (int j = 0; j < 8; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;
#pragma unroll
            for (int kk = 0; kk < DK / 16; ++kk) {
                uint32_t af[4];
                ldsm_x4(af, smem_u32(sk + (16 * l.warp + l.p1_row) * LDK + 16 * kk + l.p1_col));
#pragma unroll
                for (int jp = 0; jp < 4; ++jp) {
                    uint32_t bf[4];
                    ldsm_x4_trans(bf, smem_u32(s_xh + (16 * kk + l.p1_row) * LAB_LDV + 16 * jp +
                                               l.p1_col));
                    mma_16816<BF16>(acc[2 * jp], af, bf[0], bf[1]);
                    mma_16816<BF16>(acc[2 * jp + 1], af, bf[2], bf[3]);
                    if (LAB_HILO<BF16>) {
                        ldsm_x4_trans(bf, smem_u32(s_xl + (16 * kk + l.p1_row) * LAB_LDV +
                                                   16 * jp + l.p1_col));
                        mma_16816<BF16>(acc[2 * jp], af, bf[0], bf[1]);
                        mma_16816<BF16>(acc[2 * jp + 1], af, bf[2], bf[3]);
                    }
                }
            }
            /* A^T rows s = 16w.. from A [t][s] = [k][m] (P2 trans); tokens t >= s only. */
#pragma unroll
            for (int kt = 0; kt < 4; ++kt) {
                if (kt >= l.warp) { /* warp-uniform */
                    uint32_t af[4];
                    ldsm_x4_trans(af, smem_u32(s_a + (16 * kt + l.p2_row) * LAB_LDV +
                                               16 * l.warp + l.p2_col));
#pragma unroll
                    for (int jp = 0; jp < 4; ++jp) {
                        uint32_t bf[4];
                        ldsm_x4_trans(bf, smem_u32(sdo + (16 * kt + l.p1_row) * LAB_LDV +
                                                   16 * jp + l.p1_col));
                        lab_to_f16<BF16>(bf);
                        mma_16816<false>(acc[2 * jp], af, bf[0], bf[1]);
                        mma_16816<false>(acc[2 * jp + 1], af, bf[2], bf[3]);
                    }
                }
            }
            lab_store_rows<BF16, 8>(acc, a.scale, dv_bh + (int64_t)t0 * a.dv, a.dv, nvalid, l);
        }
        { /* dK rows s = 16w..: V R^T (B = R^T, the copy [dk][slice] = [n][k], P2) + P^T Q */
            float acc[DK / 8][4];
#pragma unroll
            for (int j = 0; j < DK / 8; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;
#pragma unroll
            for (int ks = 0; ks < 4; ++ks) {
                uint32_t af[4];
                ldsm_x4(af, smem_u32(sv + (16 * l.warp + l.p1_row) * LAB_LDV + 16 * ks + l.p1_col));
#pragma unroll
                for (int np = 0; np < DK / 16; ++np) {
                    uint32_t bf[4];
                    ldsm_x4(bf, smem_u32(s_xh + (16 * np + l.p2_row) * LAB_LDV + 16 * ks +
                                         l.p2_col));
                    mma_16816<BF16>(acc[2 * np], af, bf[0], bf[1]);
                    mma_16816<BF16>(acc[2 * np + 1], af, bf[2], bf[3]);
                    if (LAB_HILO<BF16>) {
                        ldsm_x4(bf, smem_u32(s_xl + (16 * np + l.p2_row) * LAB_LDV + 16 * ks +
                                             l.p2_col));
                        mma_16816<BF16>(acc[2 * np], af, bf[0], bf[1]);
                        mma_16816<BF16>(acc[2 * np + 1], af, bf[2], bf[3]);
                    }
                }
            }
            /* P^T rows s = 16w.. from P [t][s] (P2 trans); B = Q [t][dk] = [k][n] (P1 trans). */
#pragma unroll
            for (int kt = 0; kt < 4; ++kt) {
                if (kt >= l.warp) {
                    uint32_t af[4];
                    ldsm_x4_trans(af, smem_u32(s_p + (16 * kt + l.p2_row) * LAB_LDV +
                                               16 * l.warp + l.p2_col));
#pragma unroll
                    for (int jp = 0; jp < DK / 16; ++jp) {
                        uint32_t bf[4];
                        ldsm_x4_trans(bf, smem_u32(sq + (16 * kt + l.p1_row) * LDK + 16 * jp +
                                                   l.p1_col));
                        lab_to_f16<BF16>(bf);
                        mma_16816<false>(acc[2 * jp], af, bf[0], bf[1]);
                        mma_16816<false>(acc[2 * jp + 1], af, bf[2], bf[3]);
                    }
                }
            }
            if (dk32_bh)
                lab_add_rows<DK>(acc, a.scale, s_sum, dk32_bh + (int64_t)t0 * DK, nvalid, l);
            else
                lab_store_rows<BF16, DK / 8>(acc, a.scale, dk_bh + (int64_t)t0 * DK, DK, nvalid,
                                             l);
        }
        lab_state_update<BF16, DK>(x, sq, sdo, l); /* R_{c-1} = R_c + Q_c^T dO_c */
    }
}

/* dq32, dk32 (fp32, n elements each) -> dQ, dK in the run dtype, 8 elements a thread. */
template <bool BF16>
__global__ void __launch_bounds__(LAB_CONV_THREADS)
    lab_convert_kernel(const float *__restrict__ d_q32, const float *__restrict__ d_k32,
                       uint16_t *__restrict__ d_dq, uint16_t *__restrict__ d_dk, int64_t n8) {
    int64_t i = (int64_t)blockIdx.x * LAB_CONV_THREADS + threadIdx.x;
    if (i >= 2 * n8) return;
    const float *src = i < n8 ? d_q32 : d_k32;
    uint16_t *dst = i < n8 ? d_dq : d_dk;
    if (i >= n8) i -= n8;
    const float4 x = reinterpret_cast<const float4 *>(src)[2 * i];
    const float4 y = reinterpret_cast<const float4 *>(src)[2 * i + 1];
    uint4 u;
    u.x = lac_pack<BF16>(x.x, x.y);
    u.y = lac_pack<BF16>(x.z, x.w);
    u.z = lac_pack<BF16>(y.x, y.y);
    u.w = lac_pack<BF16>(y.z, y.w);
    reinterpret_cast<uint4 *>(dst)[i] = u;
}

#ifndef LAB_EMULATE /* the host side (prims.cuh's LAC_EMULATE: kernels run on the CPU) */
/* Shared-memory limits of the kernels (the largest, with the reduction's staging), and the
 * walkers' smaller occupancy with (reduce) or without it. */
template <bool BF16, int DK> int lab_prepare_t(bool reduce, int *bps) {
    CUDA_CHECK(cudaFuncSetAttribute(lab_sums_kernel<BF16, DK>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    lab_sums_smem<DK>()));
    CUDA_CHECK(cudaFuncSetAttribute(lab_dq_kernel<BF16, DK>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    lab_dq_smem<DK>(true)));
    CUDA_CHECK(cudaFuncSetAttribute(lab_dkv_kernel<BF16, DK>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    lab_dkv_smem<DK>(true)));
    int b_dq = 0, b_dkv = 0;
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&b_dq, lab_dq_kernel<BF16, DK>,
                                                             LAC_THREADS,
                                                             (size_t)lab_dq_smem<DK>(reduce)));
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&b_dkv, lab_dkv_kernel<BF16, DK>,
                                                             LAC_THREADS,
                                                             (size_t)lab_dkv_smem<DK>(reduce)));
    *bps = b_dq < b_dkv ? b_dq : b_dkv;
    return 0;
}

template <bool BF16, int DK>
int lab_enqueue_t(const lab_plan *p, const lab_ptrs &d, const lac_problem &pr,
                  cudaStream_t stream) {
    lab_args a;
    a.T = pr.T;
    a.dv = pr.dv;
    a.nslices = p->nslices;
    a.nseg = p->nseg;
    a.seg_chunks = p->seg_chunks;
    a.scale = 1.0f / sqrtf((float)DK);
    const int64_t nbh = (int64_t)pr.B * pr.H;
    const unsigned grid = (unsigned)(nbh * p->nseg * p->nslices);
    const uint16_t *q = (const uint16_t *)d.q, *k = (const uint16_t *)d.k;
    const uint16_t *v = (const uint16_t *)d.v, *dO = (const uint16_t *)d.dO;
    if (p->reduce) {
        if (!d.dq32 || !d.dk32) BENCH_FAIL("linear_attn/chunked backward: no fp32 sums workspace");
        CUDA_CHECK(cudaMemsetAsync(d.dq32, 0, p->acc_bytes, stream));
        CUDA_CHECK(cudaMemsetAsync(d.dk32, 0, p->acc_bytes, stream));
    }
    if (p->nseg > 1) {
        if (!d.fstates || !d.bstates)
            BENCH_FAIL("linear_attn/chunked backward: no segment state workspace");
        lab_sums_kernel<BF16, DK><<<grid, LAC_THREADS, lab_sums_smem<DK>(), stream>>>(
            q, k, v, dO, d.fstates, d.bstates, a);
        CUDA_CHECK(cudaGetLastError());
        const int64_t vec = (int64_t)DK * pr.dv / 4, total = nbh * vec;
        const int64_t blocks = (total + LAB_SCAN_THREADS - 1) / LAB_SCAN_THREADS;
        lab_scan_kernel<<<(unsigned)blocks, LAB_SCAN_THREADS, 0, stream>>>(
            (float4 *)d.fstates, (float4 *)d.bstates, vec, total, p->nseg);
        CUDA_CHECK(cudaGetLastError());
    }
    const bool red = p->reduce != 0;
    lab_dq_kernel<BF16, DK><<<grid, LAC_THREADS, lab_dq_smem<DK>(red), stream>>>(
        k, v, dO, d.fstates, (uint16_t *)d.dq, p->reduce ? d.dq32 : nullptr, a);
    CUDA_CHECK(cudaGetLastError());
    lab_dkv_kernel<BF16, DK><<<grid, LAC_THREADS, lab_dkv_smem<DK>(red), stream>>>(
        q, k, v, dO, d.bstates, (uint16_t *)d.dk, (uint16_t *)d.dv, p->reduce ? d.dk32 : nullptr,
        a);
    CUDA_CHECK(cudaGetLastError());
    if (p->reduce) {
        const int64_t n8 = nbh * pr.T * DK / 8;
        const int64_t blocks = (2 * n8 + LAB_CONV_THREADS - 1) / LAB_CONV_THREADS;
        lab_convert_kernel<BF16><<<(unsigned)blocks, LAB_CONV_THREADS, 0, stream>>>(
            d.dq32, d.dk32, (uint16_t *)d.dq, (uint16_t *)d.dk, n8);
        CUDA_CHECK(cudaGetLastError());
    }
    return 0;
}

#endif /* LAB_EMULATE */
} /* namespace */

#ifndef LAB_EMULATE
int lab_make_plan(const lac_problem &pr, int seg_tokens, lab_plan *p) {
    const char *why = lab_shape_reason(&pr);
    if (why) BENCH_FAIL("linear_attn/chunked: %s", why);
    lab_device_facts f;
    int dev = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&f.sms, cudaDevAttrMultiProcessorCount, dev));
    const bool bf16 = pr.dtype == DTYPE_BF16, reduce = pr.dv > LAC_DVS; /* lab_plan.reduce */
    int rc;
    if (bf16)
        rc = pr.dk == 64 ? lab_prepare_t<true, 64>(reduce, &f.bps)
                         : lab_prepare_t<true, 128>(reduce, &f.bps);
    else
        rc = pr.dk == 64 ? lab_prepare_t<false, 64>(reduce, &f.bps)
                         : lab_prepare_t<false, 128>(reduce, &f.bps);
    if (rc) return -1;
    return lab_plan_make(&pr, seg_tokens, &f, p);
}

int lab_enqueue(const lab_plan *p, const lab_ptrs &d, const lac_problem &pr,
                cudaStream_t stream) {
    const void *ptrs[7] = {d.q, d.k, d.v, d.dO, d.dq, d.dk, d.dv};
    for (int i = 0; i < 7; i++)
        if (!ptrs[i] || ((uintptr_t)ptrs[i] & 15u))
            BENCH_FAIL("linear_attn/chunked backward: operands must be 16-byte aligned");
    if (pr.dtype == DTYPE_BF16)
        return pr.dk == 64 ? lab_enqueue_t<true, 64>(p, d, pr, stream)
                           : lab_enqueue_t<true, 128>(p, d, pr, stream);
    return pr.dk == 64 ? lab_enqueue_t<false, 64>(p, d, pr, stream)
                       : lab_enqueue_t<false, 128>(p, d, pr, stream);
}
#endif /* LAB_EMULATE */
