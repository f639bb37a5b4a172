/* tiles.cuh: the mma.sync tile code that the tensor-core versions share (v2.cu, v3.cu,
 * v6_wgmma.cu): staging rows into padded shared memory, V^T fragments (with V's SiLU), the
 * transposed state as accumulators, the output epilogue (row sums, gate, store) and the prep's
 * A = mask(Q K^T)/sqrt(dk).  Internal linkage, as prims.cuh.
 *
 * Fragment conventions (PTX ISA, mma.m16n8k16, gid = lane/4, tig = lane%4):
 *   A 16x16: reg0 = (row gid,   cols 2tig..+1)  reg1 = (row gid+8, cols 2tig..+1)
 *            reg2 = (row gid,   cols 2tig+8..)  reg3 = (row gid+8, cols 2tig+8..)
 *   B 16x8:  reg0 = (k 2tig..+1, col gid)       reg1 = (k 2tig+8..+9, col gid)
 *   C 16x8:  c0,c1 = (row gid, cols 2tig, 2tig+1)   c2,c3 = (row gid+8, same cols)
 * ldmatrix.x4 lane patterns (mi = lane/8 picks the matrix, r8 = lane%8 its row):
 *   P1: row (mi&1)*8 + r8, col (mi>>1)*8  -> an A fragment (non-trans), or the B fragments of
 *       n-tiles (j, j+1) from a [k][n] tile with .trans (matrices: (k lo, j) (k hi, j)
 *       (k lo, j+1) (k hi, j+1)).
 *   P2: row (mi>>1)*8 + r8, col (mi&1)*8  -> the B fragments of n-tiles (j, j+1) from an
 *       [n][k] tile (non-trans), or an A fragment from a [k][m] tile with .trans. */
#ifndef CHELA_LINEAR_ATTN_TILES_CUH
#define CHELA_LINEAR_ATTN_TILES_CUH

#include "linear_attn/prims.cuh"

namespace {

/* Copies LAC_C rows of NCOL 16-bit elements (global row pitch ld_g elements) into smem rows of
 * pitch LDS; rows >= nvalid are zero-filled (their source is never read). */
template <int NCOL, int LDS>
__device__ __forceinline__ void lac_load_rows(uint16_t *s, const uint16_t *g, int64_t ld_g,
                                              int nvalid, int tid) {
    constexpr int PPR = NCOL / 8; /* 16-byte pieces per row */
    static_assert((LAC_C * PPR) % LAC_THREADS == 0, "pieces must split evenly over threads");
#pragma unroll
    for (int i = 0; i < LAC_C * PPR / LAC_THREADS; ++i) {
        const int p = tid + i * LAC_THREADS;
        const int r = p / PPR, c = (p % PPR) * 8;
        const bool ok = r < nvalid;
        cp_async16(smem_u32(s + r * LDS + c), ok ? g + r * ld_g + c : g, ok ? 16 : 0);
    }
}

/* S^T (16 x dk per warp, fp32 accumulators) += V^T K over one chunk.  vt: this warp's V^T
 * A-fragments for the 4 k-steps of s; sk: the chunk's k rows. */
template <bool BF16, int DK>
__device__ __forceinline__ void lac_v2_state_update(float st[DK / 8][4], const uint32_t vt[4][4],
                                                    const uint16_t *sk, int p1_row, int p1_col) {
    constexpr int LDK = DK + LAC_PAD;
#pragma unroll
    for (int ks = 0; ks < 4; ++ks) {
#pragma unroll
        for (int jp = 0; jp < DK / 16; ++jp) {
            uint32_t bf[4];
            ldsm_x4_trans(bf, smem_u32(sk + (16 * ks + p1_row) * LDK + 16 * jp + p1_col));
            mma_16816<BF16>(st[2 * jp], vt[ks], bf[0], bf[1]);
            mma_16816<BF16>(st[2 * jp + 1], vt[ks], bf[2], bf[3]);
        }
    }
}

/* V^T A-fragments of this warp's 16 value rows for the 4 k-steps (16 tokens each) of a chunk. */
__device__ __forceinline__ void lac_v2_load_vt(uint32_t vt[4][4], const uint16_t *sv, int warp,
                                               int p2_row, int p2_col) {
    constexpr int LDV = LAC_DVS + LAC_PAD;
#pragma unroll
    for (int ks = 0; ks < 4; ++ks)
        ldsm_x4_trans(vt[ks], smem_u32(sv + (16 * ks + p2_row) * LDV + 16 * warp + p2_col));
}

/* v_bias: V = SiLU(V' + b) applied to the warp's V^T fragments in registers, rounded back to
 * the 16-bit type (as a separate pass storing V would round it), so that the caller needs no
 * pass that reads and writes V.  Register r of vt[ks] holds value row gid + 8 (r & 1) of the
 * warp's 16 (two tokens); b_lo / b_hi are the biases of rows gid and gid + 8.  Rows past T
 * become SiLU(b), not 0: harmless, as the k rows and A columns they multiply are 0 there. */
template <bool BF16>
__device__ __forceinline__ void lac_v_act(uint32_t vt[4][4], float b_lo, float b_hi) {
#pragma unroll
    for (int ks = 0; ks < 4; ++ks)
#pragma unroll
        for (int r = 0; r < 4; ++r) {
            const float b = (r & 1) ? b_hi : b_lo;
            const uint32_t u = vt[ks][r];
            const float x = lac_f32<BF16>((uint16_t)(u & 0xffffu)) + b;
            const float y = lac_f32<BF16>((uint16_t)(u >> 16)) + b;
            vt[ks][r] = lac_pack<BF16>(silu(x), silu(y));
        }
}

/* This lane's two biases (value rows gid and gid + 8 of warp w in the slice). */
__device__ __forceinline__ void lac_v_bias_of(const float *v_bias, int slice, int warp, int gid,
                                              float &b_lo, float &b_hi) {
    const float *b = v_bias + slice * LAC_DVS + 16 * warp + gid;
    b_lo = __ldg(b);
    b_hi = __ldg(b + 8);
}

/* The transposed state rows (gid, gid+8) of this thread from ws[...][dv][dk] (src already at
 * row gid, column 2tig), as mma accumulators; or zero. */
template <int DK>
__device__ __forceinline__ void lac_v2_load_state(float st[DK / 8][4], const float *src) {
#pragma unroll
    for (int j = 0; j < DK / 8; ++j) {
        const float2 lo = *reinterpret_cast<const float2 *>(src + 8 * j);
        const float2 hi = *reinterpret_cast<const float2 *>(src + 8 * DK + 8 * j);
        st[j][0] = lo.x;
        st[j][1] = lo.y;
        st[j][2] = hi.x;
        st[j][3] = hi.y;
    }
}

template <int DK> __device__ __forceinline__ void lac_v2_zero_state(float st[DK / 8][4]) {
#pragma unroll
    for (int j = 0; j < DK / 8; ++j) st[j][0] = st[j][1] = st[j][2] = st[j][3] = 0.f;
}

/* A pass-C block's incoming state: slot state_idx of (b,h) in the workspace (this warp's rows
 * of its slice), or zero when state_idx < 0.  Returns whether it can be nonzero. */
template <int DK>
__device__ __forceinline__ bool lac_v2_state_in(float st[DK / 8][4], const float *d_states,
                                                const lac_args &a, int64_t bh, int state_idx,
                                                int slice, int warp, int gid, int tig) {
    if (state_idx < 0) {
        lac_v2_zero_state<DK>(st);
        return false;
    }
    lac_v2_load_state<DK>(st, d_states +
                                  ((bh * a.ws_per_bh + state_idx) * a.dv + slice * LAC_DVS +
                                   warp * 16 + gid) * DK +
                                  2 * tig);
    return true;
}

/* Epilogue helpers of the output kernels (v2, v3, v6).  oacc[nt] holds O^T rows (gid, gid+8) of
 * the warp, tokens 8nt+2tig..+1.  Per-warp row sums of squares of O into s_rss[warp][t]. */
__device__ __forceinline__ void lac_v2_row_sumsq(const float oacc[8][4], float *s_rss, int warp,
                                                 int gid, int tig) {
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) {
        float pa = oacc[nt][0] * oacc[nt][0] + oacc[nt][2] * oacc[nt][2];
        float pb = oacc[nt][1] * oacc[nt][1] + oacc[nt][3] * oacc[nt][3];
#pragma unroll
        for (int m = 4; m < 32; m <<= 1) { /* over gid: lanes of equal tig */
            pa += lac_shfl_xor(pa, m);
            pb += lac_shfl_xor(pb, m);
        }
        if (gid == 0) {
            s_rss[warp * LAC_C + 8 * nt + 2 * tig] = pa;
            s_rss[warp * LAC_C + 8 * nt + 2 * tig + 1] = pb;
        }
    }
}

/* O^T staged through smem as the run dtype (barrier B2: every thread calls this), written as
 * 16-byte rows; with norm_mode >= 2 the block's row sums go to the norm partials.  GATE (v3
 * only: v2's dk = 64 kernel spilled with it, and the LM shape runs there) applies norm_mode 3's
 * gate on the way out; v2 leaves it to a gate-only pass. */
template <bool BF16, bool GATE, bool STMATRIX = false>
__device__ __forceinline__ void lac_v2_store_o(const float oacc[8][4], uint16_t *s_o,
                                               const float *s_rss, uint16_t *o_bh,
                                               float *d_rowpart, const lac_args &a, int slice,
                                               int64_t row0, int t0, int nvalid, int tid,
                                               int warp, int gid, int tig) {
    constexpr int LDO = LAC_DVS + LAC_PAD;
    constexpr int NI = LAC_C * (LAC_DVS / 8) / LAC_THREADS; /* 16-byte pieces a thread */
    const int dvl = 16 * warp + gid;
    /* norm_mode 3's gate: this thread's NI pieces all lie in the same 8 columns (c8 below does
     * not depend on i); their gate values are requested before the staging and its barrier,
     * so that the loads' latency overlaps them (issued in the store loop, behind the stores
     * they might alias, they ran one round trip at a time: 0.24 ms at the CHELA shape). */
    const bool gated = GATE && a.norm_mode == 3 && a.gate;
    const int c8 = (tid % (LAC_DVS / 8)) * 8, col = slice * LAC_DVS + c8;
    uint4 gv[GATE ? NI : 1];
    float gb[8];
    if (gated) {
#pragma unroll
        for (int i = 0; i < NI; ++i) {
            const int r = (tid + i * LAC_THREADS) / (LAC_DVS / 8);
            gv[i] = r < nvalid ? __ldg(reinterpret_cast<const uint4 *>(
                                     static_cast<const uint16_t *>(a.gate) +
                                     (row0 + t0 + r) * a.gate_ld + col))
                               : make_uint4(0u, 0u, 0u, 0u);
        }
#pragma unroll
        for (int e = 0; e < 8; ++e) gb[e] = __ldg(a.gate_bias + col + e);
    }
    if (STMATRIX) { /* v6 (sm_90): 4 transposing matrix stores instead of 32 2-byte ones */
        const int mi = (tid & 31) >> 3, j = tid & 7;
#pragma unroll
        for (int nt = 0; nt < 8; nt += 2)
            stsm_x4_trans(smem_u32(s_o + (8 * (nt + (mi >> 1)) + j) * LDO + 16 * warp +
                                   8 * (mi & 1)),
                          lac_pack<BF16>(oacc[nt][0], oacc[nt][1]),
                          lac_pack<BF16>(oacc[nt][2], oacc[nt][3]),
                          lac_pack<BF16>(oacc[nt + 1][0], oacc[nt + 1][1]),
                          lac_pack<BF16>(oacc[nt + 1][2], oacc[nt + 1][3]));
    } else {
#pragma unroll
        for (int nt = 0; nt < 8; ++nt) {
            const int t = 8 * nt + 2 * tig;
            s_o[t * LDO + dvl] = lac_cvt<BF16>(oacc[nt][0]);
            s_o[(t + 1) * LDO + dvl] = lac_cvt<BF16>(oacc[nt][1]);
            s_o[t * LDO + dvl + 8] = lac_cvt<BF16>(oacc[nt][2]);
            s_o[(t + 1) * LDO + dvl + 8] = lac_cvt<BF16>(oacc[nt][3]);
        }
    }
    __syncthreads(); /* B2: O staged */
#pragma unroll
    for (int i = 0; i < NI; ++i) {
        const int r = (tid + i * LAC_THREADS) / (LAC_DVS / 8);
        if (r >= nvalid) continue;
        uint4 ov = *reinterpret_cast<const uint4 *>(s_o + r * LDO + c8);
        if (gated) { /* o *= sigmoid(g + b), 8 columns of a row */
            const uint32_t ow[4] = {ov.x, ov.y, ov.z, ov.w};
            const uint32_t gw[4] = {gv[GATE ? i : 0].x, gv[GATE ? i : 0].y, gv[GATE ? i : 0].z,
                                    gv[GATE ? i : 0].w};
            uint32_t rw[4];
#pragma unroll
            for (int u = 0; u < 4; ++u) {
                float f[2];
#pragma unroll
                for (int e = 0; e < 2; ++e) {
                    const float g = lac_f32<BF16>((uint16_t)(gw[u] >> (16 * e))) + gb[2 * u + e];
                    /* o / (1 + e^-g), one fast divide (math.cuh's o * sigm(g) would round
                     * twice): 1 + e^-g in (1, inf], where __fdividef is exact to 2 ulp up to
                     * 2^126 and gives 0 beyond (sigmoid(g) < 1e-38 there) */
                    f[e] = __fdividef(lac_f32<BF16>((uint16_t)(ow[u] >> (16 * e))),
                                      1.0f + __expf(-g));
                }
                rw[u] = lac_pack<BF16>(f[0], f[1]);
            }
            ov = make_uint4(rw[0], rw[1], rw[2], rw[3]);
        }
        *reinterpret_cast<uint4 *>(o_bh + (int64_t)(t0 + r) * a.dv + c8) = ov;
    }
    if (a.norm_mode >= 2 && tid < nvalid) {
        float ss = 0.f;
#pragma unroll
        for (int w = 0; w < LAC_WARPS; ++w) ss += s_rss[w * LAC_C + tid];
        d_rowpart[(int64_t)slice * a.rows + row0 + t0 + tid] = ss;
    }
}

/* The prep kernels' common part (v3, v6): block (bh, chunk c) of grid B*H*nchunks loads the
 * chunk's q and k rows into s_q, s_k (pitch DK + LAC_PAD, zero past T) and writes
 * A = mask(Q K^T)/sqrt(dk) as fp16 rows of pitch lda to a_dst (global or shared memory); warp w
 * computes rows 16w..16w+15, and the n-tiles right of the diagonal are stored as 0 without
 * being computed. */
template <bool BF16, int DK>
__device__ __forceinline__ void lac_prep_chunk(const uint16_t *d_q, const uint16_t *d_k,
                                               uint16_t *s_q, uint16_t *s_k, const lac_args &a,
                                               int64_t row0, int nvalid, uint16_t *a_dst,
                                               int lda) {
    constexpr int LDK = DK + LAC_PAD;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int gid = lane >> 2, tig = lane & 3, mi = lane >> 3, r8 = lane & 7;
    const int p1_row = (mi & 1) * 8 + r8, p1_col = (mi >> 1) * 8;
    const int p2_row = (mi >> 1) * 8 + r8, p2_col = (mi & 1) * 8;
    lac_grid_dep_wait(); /* after pass B with PDL: ordered as any stream successor would be */
    lac_load_rows<DK, LDK>(s_q, d_q + row0 * DK, DK, nvalid, tid);
    lac_load_rows<DK, LDK>(s_k, d_k + row0 * DK, DK, nvalid, tid);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();

    float sacc[8][4];
#pragma unroll
    for (int j = 0; j < 8; ++j) sacc[j][0] = sacc[j][1] = sacc[j][2] = sacc[j][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < DK / 16; ++kk) {
        uint32_t af[4];
        ldsm_x4(af, smem_u32(s_q + (16 * warp + p1_row) * LDK + 16 * kk + p1_col));
#pragma unroll
        for (int jp = 0; jp < 4; ++jp) {
            if (jp <= warp) {
                uint32_t bf[4];
                ldsm_x4(bf, smem_u32(s_k + (16 * jp + p2_row) * LDK + 16 * kk + p2_col));
                mma_16816<BF16>(sacc[2 * jp], af, bf[0], bf[1]);
                mma_16816<BF16>(sacc[2 * jp + 1], af, bf[2], bf[3]);
            }
        }
    }
    const int ta = 16 * warp + gid, tb = ta + 8;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
        const int s0 = 8 * j + 2 * tig;
        *reinterpret_cast<uint32_t *>(a_dst + ta * lda + s0) =
            lac_pack<false>(s0 <= ta ? sacc[j][0] * a.scale : 0.f,
                            s0 + 1 <= ta ? sacc[j][1] * a.scale : 0.f);
        *reinterpret_cast<uint32_t *>(a_dst + tb * lda + s0) =
            lac_pack<false>(s0 <= tb ? sacc[j][2] * a.scale : 0.f,
                            s0 + 1 <= tb ? sacc[j][3] * a.scale : 0.f);
    }
}

/* 2^e for e in [-126, 127] as a float. */
__device__ __forceinline__ float lac_exp2i(int e) {
    e = e < -126 ? -126 : (e > 127 ? 127 : e);
    return __uint_as_float((uint32_t)(e + 127) << 23);
}

/* The power-of-two exponent p with m * 2^p in [2^14, 2^15) (m > 0 finite); 0 for m == 0. */
__device__ __forceinline__ int lac_fp16_scale_exp(float m) {
    if (!(m > 0.f)) return 0;
    const int e = (int)((__float_as_uint(m) >> 23) & 255u) - 127; /* floor(log2 m), normal m */
    const int p = 14 - e;
    return p > 126 ? 126 : p; /* |S| < 2^-112: both 2^p and 2^-p stay normal floats */
}

} /* namespace */

#endif
