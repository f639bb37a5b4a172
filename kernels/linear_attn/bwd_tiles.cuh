/* bwd_tiles.cuh: the device code of linear_attn/chunked's backward (bwd_mma.cu): its arguments,
 * where a block and a lane sit, the running state (fp32 mma accumulators, warp w owning dk rows
 * 16(MT w + m)..+15 of the dk x 64 slice state, MT = dk/64) and its 16-bit copy in shared
 * memory, the masked 64 x 64 chunk products, the gradients' stores and fp32 sums, the chunk
 * loads.  Builds on tiles.cuh (fragment conventions and ldmatrix patterns P1 / P2 there).
 * Internal linkage, as prims.cuh. */
#ifndef CHELA_LINEAR_ATTN_BWD_TILES_CUH
#define CHELA_LINEAR_ATTN_BWD_TILES_CUH

#include "linear_attn/tiles.cuh"

namespace {

#ifndef LAB_STATE_HILO
/* bf16: the state operand as hi + lo (0: one bf16, half of those MMAs: 28 % of all at dk 128).
 * Emulated (tests/emu/, T = 600..1500): max error 4.0e-3 with, 8.2e-3-1.0e-2 without, against the
 * bf16 tolerance 1.56e-2, and it grows with T: kept on. */
#define LAB_STATE_HILO 1
#endif
/* Whether a run's state operand is split hi + lo (bf16 runs, LAB_STATE_HILO). */
template <bool BF16> constexpr bool LAB_HILO = BF16 && LAB_STATE_HILO;

constexpr int LAB_LDV = LAC_DVS + LAC_PAD; /* pitch of 64-wide tiles (v, dO, P, A, X copies) */

/* The arguments every backward kernel shares (by value). */
struct lab_args {
    int T;          /* sequence length                                   */
    int dv;         /* value width (v, dO, dV row pitch)                 */
    int nslices;    /* dv / 64                                           */
    int nseg;       /* segments per (b,h)                                */
    int seg_chunks; /* chunks per segment (the last may be shorter)      */
    float scale;    /* 1/sqrt(dk)                                        */
};

/* A block's place: blockIdx.x = (bh * nseg + seg) * nslices + slice. */
struct lab_block {
    int slice, seg, c_begin, c_end;
    int64_t bh, row0;
};
__device__ __forceinline__ lab_block lab_block_of(const lab_args &a) {
    lab_block k;
    k.slice = blockIdx.x % a.nslices;
    const int rest = blockIdx.x / a.nslices;
    k.seg = rest % a.nseg;
    k.bh = rest / a.nseg;
    const int nchunks = (a.T + LAC_C - 1) / LAC_C;
    k.c_begin = k.seg * a.seg_chunks;
    k.c_end = lac_min(k.c_begin + a.seg_chunks, nchunks);
    k.row0 = k.bh * a.T;
    return k;
}

/* Lane geometry of the ldmatrix patterns (tiles.cuh). */
struct lab_lane {
    int warp, lane, gid, tig, p1_row, p1_col, p2_row, p2_col;
};
__device__ __forceinline__ lab_lane lab_lane_of() {
    lab_lane l;
    const int lane = threadIdx.x & 31, mi = lane >> 3, r8 = lane & 7;
    l.warp = threadIdx.x >> 5;
    l.lane = lane;
    l.gid = lane >> 2;
    l.tig = lane & 3;
    l.p1_row = (mi & 1) * 8 + r8;
    l.p1_col = (mi >> 1) * 8;
    l.p2_row = (mi >> 1) * 8 + r8;
    l.p2_col = (mi & 1) * 8;
    return l;
}

/* X (dk x 64 fp32, this warp's MT row tiles as accumulators) += Y^T Z over one chunk:
 * Y [C][DK] (pitch DK + pad), Z [C][64] (pitch LAB_LDV).  A = Y^T by ldmatrix.trans (P2 on a
 * [k][m] tile), B = Z by ldmatrix.trans (P1 on a [k][n] tile). */
template <bool BF16, int DK>
__device__ __forceinline__ void lab_state_update(float x[DK / 64][8][4], const uint16_t *sy,
                                                 const uint16_t *sz, const lab_lane &l) {
    constexpr int LDK = DK + LAC_PAD, MT = DK / 64;
#pragma unroll
    for (int ks = 0; ks < 4; ++ks) {
        uint32_t bf[4][4];
#pragma unroll
        for (int jp = 0; jp < 4; ++jp)
            ldsm_x4_trans(bf[jp], smem_u32(sz + (16 * ks + l.p1_row) * LAB_LDV + 16 * jp + l.p1_col));
#pragma unroll
        for (int m = 0; m < MT; ++m) {
            uint32_t af[4];
            ldsm_x4_trans(af, smem_u32(sy + (16 * ks + l.p2_row) * LDK + 16 * (MT * l.warp + m) +
                                       l.p2_col));
#pragma unroll
            for (int jp = 0; jp < 4; ++jp) {
                mma_16816<BF16>(x[m][2 * jp], af, bf[jp][0], bf[jp][1]);
                mma_16816<BF16>(x[m][2 * jp + 1], af, bf[jp][2], bf[jp][3]);
            }
        }
    }
}

/* B fragments of a bf16 run as fp16 (exact in fp16's normal range), to multiply the fp16 P, A. */
template <bool BF16> __device__ __forceinline__ void lab_to_f16(uint32_t b[4]) {
    if (BF16)
#pragma unroll
        for (int r = 0; r < 4; ++r) b[r] = lac_bf16x2_to_f16x2(b[r]);
}

template <int DK> __device__ __forceinline__ void lab_zero_state(float x[DK / 64][8][4]) {
#pragma unroll
    for (int m = 0; m < DK / 64; ++m)
#pragma unroll
        for (int j = 0; j < 8; ++j) x[m][j][0] = x[m][j][1] = x[m][j][2] = x[m][j][3] = 0.f;
}

/* The workspace address of this thread's first element of row tile m: states
 * [bh][seg][DK][dv], row 16(MT w + m) + gid, column slice*64 + 2 tig (8j and row + 8 follow). */
template <int DK>
__device__ __forceinline__ int64_t lab_state_off(const lab_args &a, int64_t bh, int seg,
                                                 int slice, int m, const lab_lane &l) {
    const int row = 16 * ((DK / 64) * l.warp + m) + l.gid;
    return ((bh * a.nseg + seg) * DK + row) * (int64_t)a.dv + slice * LAC_DVS + 2 * l.tig;
}

template <int DK>
__device__ __forceinline__ void lab_store_state(const float x[DK / 64][8][4], float *states,
                                                const lab_args &a, int64_t bh, int seg,
                                                int slice, const lab_lane &l) {
#pragma unroll
    for (int m = 0; m < DK / 64; ++m) {
        float *p = states + lab_state_off<DK>(a, bh, seg, slice, m, l);
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            *reinterpret_cast<float2 *>(p + 8 * j) = make_float2(x[m][j][0], x[m][j][1]);
            *reinterpret_cast<float2 *>(p + 8 * (int64_t)a.dv + 8 * j) =
                make_float2(x[m][j][2], x[m][j][3]);
        }
    }
}

template <int DK>
__device__ __forceinline__ void lab_load_state(float x[DK / 64][8][4], const float *states,
                                               const lab_args &a, int64_t bh, int seg, int slice,
                                               const lab_lane &l) {
#pragma unroll
    for (int m = 0; m < DK / 64; ++m) {
        const float *p = states + lab_state_off<DK>(a, bh, seg, slice, m, l);
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            const float2 lo = *reinterpret_cast<const float2 *>(p + 8 * j);
            const float2 hi = *reinterpret_cast<const float2 *>(p + 8 * (int64_t)a.dv + 8 * j);
            x[m][j][0] = lo.x;
            x[m][j][1] = lo.y;
            x[m][j][2] = hi.x;
            x[m][j][3] = hi.y;
        }
    }
}

/* The state as the 16-bit operand copy [DK][LAB_LDV]: bf16 hi (xh) + lo (xl), or fp16 in xh
 * alone.  Each warp writes its own rows; the caller's barrier publishes them. */
template <bool BF16, int DK>
__device__ __forceinline__ void lab_state_to_smem(const float x[DK / 64][8][4], uint16_t *xh,
                                                  uint16_t *xl, const lab_lane &l) {
#pragma unroll
    for (int m = 0; m < DK / 64; ++m) {
        const int ra = 16 * ((DK / 64) * l.warp + m) + l.gid, rb = ra + 8;
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            const int c = 8 * j + 2 * l.tig;
            uint32_t *ha = reinterpret_cast<uint32_t *>(xh + ra * LAB_LDV + c);
            uint32_t *hb = reinterpret_cast<uint32_t *>(xh + rb * LAB_LDV + c);
            if (LAB_HILO<BF16>) {
                uint32_t h0, l0, h1, l1;
                lac_split_bf16(x[m][j][0], x[m][j][1], h0, l0);
                lac_split_bf16(x[m][j][2], x[m][j][3], h1, l1);
                *ha = h0;
                *hb = h1;
                *reinterpret_cast<uint32_t *>(xl + ra * LAB_LDV + c) = l0;
                *reinterpret_cast<uint32_t *>(xl + rb * LAB_LDV + c) = l1;
            } else {
                *ha = lac_pack<BF16>(x[m][j][0], x[m][j][1]);
                *hb = lac_pack<BF16>(x[m][j][2], x[m][j][3]);
            }
        }
    }
}

/* Rows 16w..16w+15 of mask(X Y^T) into dst [C][LAB_LDV] as fp16 (any run dtype: bf16's 2^-8
 * rounding of P and A doubled the gradients' error, 7.5-9.5e-3 emulated, against ~4e-3 for the
 * output rounding alone), X, Y [C][NK] (pitch LDX); the 16-column tiles right of the diagonal
 * are neither computed nor written. */
template <bool BF16, int NK, int LDX>
__device__ __forceinline__ void lab_masked_product(uint16_t *dst, const uint16_t *sx,
                                                   const uint16_t *sy, const lab_lane &l) {
    float acc[8][4];
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < NK / 16; ++kk) {
        uint32_t af[4];
        ldsm_x4(af, smem_u32(sx + (16 * l.warp + l.p1_row) * LDX + 16 * kk + l.p1_col));
#pragma unroll
        for (int jp = 0; jp < 4; ++jp) {
            if (jp <= l.warp) { /* warp-uniform */
                uint32_t bf[4];
                ldsm_x4(bf, smem_u32(sy + (16 * jp + l.p2_row) * LDX + 16 * kk + l.p2_col));
                mma_16816<BF16>(acc[2 * jp], af, bf[0], bf[1]);
                mma_16816<BF16>(acc[2 * jp + 1], af, bf[2], bf[3]);
            }
        }
    }
    const int ta = 16 * l.warp + l.gid, tb = ta + 8;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
        if (j <= 2 * l.warp + 1) {
            const int s0 = 8 * j + 2 * l.tig;
            *reinterpret_cast<uint32_t *>(dst + ta * LAB_LDV + s0) = lac_pack<false>(
                s0 <= ta ? acc[j][0] : 0.f, s0 + 1 <= ta ? acc[j][1] : 0.f);
            *reinterpret_cast<uint32_t *>(dst + tb * LAB_LDV + s0) = lac_pack<false>(
                s0 <= tb ? acc[j][2] : 0.f, s0 + 1 <= tb ? acc[j][3] : 0.f);
        }
    }
}

/* acc (this warp's 16 token rows, NT 8-column tiles) * scale out to rows 16w + gid (+8) of a
 * gradient in the run dtype: dst16 already at the chunk's first row and the block's first column,
 * row pitch ld.  Rows >= nvalid (past T) are not written. */
template <bool BF16, int NT>
__device__ __forceinline__ void lab_store_rows(const float acc[NT][4], float scale,
                                               uint16_t *dst16, int64_t ld, int nvalid,
                                               const lab_lane &l) {
    const int ta = 16 * l.warp + l.gid, tb = ta + 8;
#pragma unroll
    for (int j = 0; j < NT; ++j) {
        const int c = 8 * j + 2 * l.tig;
        if (ta < nvalid)
            *reinterpret_cast<uint32_t *>(dst16 + ta * ld + c) =
                lac_pack<BF16>(acc[j][0] * scale, acc[j][1] * scale);
        if (tb < nvalid)
            *reinterpret_cast<uint32_t *>(dst16 + tb * ld + c) =
                lac_pack<BF16>(acc[j][2] * scale, acc[j][3] * scale);
    }
}

/* *p += v, four floats (one vector reduction on sm_90). */
__device__ __forceinline__ void lab_red4(float *p, float4 v) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    atomicAdd(reinterpret_cast<float4 *>(p), v);
#else
    atomicAdd(p, v.x);
    atomicAdd(p + 1, v.y);
    atomicAdd(p + 2, v.z);
    atomicAdd(p + 3, v.w);
#endif
}

/* As lab_store_rows, added into fp32 sums dst32 (row pitch DK) instead: the warp's 16 rows are
 * staged in its own part of s_sum ([64][DK + 4] fp32) and added as float4 reductions, a warp
 * instruction covering 512 contiguous bytes (dk 128), where the fragments' own pairs would be
 * twice the reductions over 8 rows' 32-byte pieces.  Warp-local: __syncwarp, no block barrier. */
template <int DK>
__device__ __forceinline__ void lab_add_rows(const float acc[DK / 8][4], float scale,
                                             float *s_sum, float *dst32, int nvalid,
                                             const lab_lane &l) {
    constexpr int LDS = DK + 4, V = DK / 4; /* fp32 pitch; float4 a row */
    float *mine = s_sum + 16 * l.warp * LDS;
#pragma unroll
    for (int j = 0; j < DK / 8; ++j) {
        const int c = 8 * j + 2 * l.tig;
        *reinterpret_cast<float2 *>(mine + l.gid * LDS + c) =
            make_float2(acc[j][0] * scale, acc[j][1] * scale);
        *reinterpret_cast<float2 *>(mine + (l.gid + 8) * LDS + c) =
            make_float2(acc[j][2] * scale, acc[j][3] * scale);
    }
    __syncwarp();
#pragma unroll 4
    for (int i = l.lane; i < 16 * V; i += 32) {
        const int r = i / V, c4 = i % V, t = 16 * l.warp + r;
        if (t < nvalid)
            lab_red4(dst32 + (int64_t)t * DK + 4 * c4,
                     *reinterpret_cast<const float4 *>(mine + r * LDS + 4 * c4));
    }
    __syncwarp(); /* read before the next chunk's staging */
}

/* One commit group: chunk c's rows of NX dk-wide tensors (x0, then x1) and of this slice's
 * columns of NY dv-wide ones (y0, then y1), zero past T.  y0, y1 already point at the slice. */
template <int DK, int NX, int NY>
__device__ __forceinline__ void lab_load_chunk(uint16_t *sx0, uint16_t *sx1, uint16_t *sy0,
                                               uint16_t *sy1, const uint16_t *x0,
                                               const uint16_t *x1, const uint16_t *y0,
                                               const uint16_t *y1, int dv, int c, int T) {
    const int tid = threadIdx.x, t0 = c * LAC_C, nvalid = lac_min(LAC_C, T - t0);
    if (NX >= 1) lac_load_rows<DK, DK + LAC_PAD>(sx0, x0 + (int64_t)t0 * DK, DK, nvalid, tid);
    if (NX >= 2) lac_load_rows<DK, DK + LAC_PAD>(sx1, x1 + (int64_t)t0 * DK, DK, nvalid, tid);
    if (NY >= 1) lac_load_rows<LAC_DVS, LAB_LDV>(sy0, y0 + (int64_t)t0 * dv, dv, nvalid, tid);
    if (NY >= 2) lac_load_rows<LAC_DVS, LAB_LDV>(sy1, y1 + (int64_t)t0 * dv, dv, nvalid, tid);
    cp_async_commit();
}

} /* namespace */

#endif
