/* v6_wgmma.cu: linear_attn/chunked v6 (la_version=6; the default where v3 applies, on an sm_90a
 * build at cc 9.0): v3's output pass (pass C), and its pass A, on Hopper's warpgroup tensor cores.
 *
 * Why (profiles/NOTES.md, session 7): v3's pass C at the CHELA head (dk 128, dv 2048) is 0.40 ms
 * against a 0.19 ms HBM floor, latency-bound on mma.sync.  Per chunk and 64-column slice each
 * of its 4 warps reads the whole chunk's q16, k and A through ldmatrix (40 KB a warp, 160 KB a
 * block, ~1250 cycles of the SM's 128 B/cycle shared-memory port for ~600 cycles of MMA), and
 * every product is issued as 16x8x16 pieces whose latency 8 warps an SM cannot hide.  A
 * warpgroup MMA reads its shared-memory operand once for the 4 warps and runs asynchronously.
 *
 * The block is v3's (128 threads = one warpgroup, one (b*h, segment, 64-column slice), the
 * transposed state S^T (64 value rows x dk, fp32) in registers, warp w owning rows 16w..16w+15);
 * wgmma's register fragments are mma.m16n8k16's per warp (wgmma.cuh), so v3's fragment code
 * carries over.  Per chunk of 64 tokens:
 *   O1^T = fp16(2^p S^T / sqrt(dk)) Q16^T     m64n64k16 x dk/16, A = state (registers), B = q16
 *   O2^T = V^T A^T                            m64n64k16 x 4,  A = V^T (registers), B = A tile
 *   S^T += V^T K                              m64n{dk}k16 x 4, A = V^T (registers), B = k^T
 *   O^T  = 2^-p O1^T + O2^T, staged and stored as v3 (gate and row sums as v3).
 * The first two are one commit group and the state update a second: the output's epilogue
 * runs while the state update is still on the tensor cores.
 * B operands must sit in shared memory in wgmma's canonical layout; a prep kernel (one block a
 * chunk, as v3's) writes each chunk's three tiles in exactly that layout (no swizzle, K-major,
 * wg_kmajor_index): q16 (N = 64 tokens, K = dk), A = mask(Q K^T)/sqrt(dk) in fp16 (N = t,
 * K = s) and k^T (N = dk, K = 64 tokens), 40 KB a chunk at dk 128 (v3 wrote 24 KB: A and q16),
 * so pass C loads them as one contiguous 16-byte-piece copy.  V stays in padded rows for v3's
 * ldmatrix.trans into the A-operand registers (and V's SiLU for CHELA, as v3).
 * Numerics as v3: fp16 state operand after a per-row power-of-two scale, fp16 A, fp32
 * accumulation everywhere, state kept in fp32.
 *
 * Shared memory (dk 128): images 2 x 40 KB, v 2 x 9 KB, O staging 9 KB, row sums 1 KB:
 * 110,592 B, two blocks an SM as v3.
 *
 * Build: this file is compiled for sm_90a only (CMakeLists.txt), the one target that has wgmma;
 * lac_v6_usable() says on the host whether that happened and the device is cc 9.0.  It shares
 * v3's tile code through tiles.cuh; passes B and the norm pass are scan.cu's. */
#include "bench_check.h"
#include "common/pdl_launch.cuh"
#include "common/wgmma.cuh"
#include "linear_attn/passes.h"
#include "linear_attn/tiles.cuh"

namespace {

/* The buffers one v6 launch reads and writes (device pointers), and whether the kernels after
 * the plan's first are launched with programmatic dependent launch. */
struct lac_v6_io {
    const void *q, *k, *v;
    void *o;
    uint16_t *images;     /* lac_v6_image_bytes of workspace                           */
    float *states_out;    /* segment states: pass A writes, pass C reads after the scan */
    float *rowpart;       /* norm partials (norm_mode 2 or 3), else unused             */
    bool pdl;
};

/* One chunk's operand images, offsets in 16-bit elements. */
template <int DK> struct lac_v6_img {
    static constexpr int Q = 0;                           /* q16: N = 64 tokens, K = dk   */
    static constexpr int A = LAC_C * DK;                  /* A:   N = 64 (t), K = 64 (s)  */
    static constexpr int KT = LAC_C * DK + LAC_C * LAC_C; /* k^T: N = dk, K = 64 (s)      */
    static constexpr int ELEMS = 2 * LAC_C * DK + LAC_C * LAC_C;
    /* Byte steps between core-matrix columns along K (LBO = 16 N): */
    static constexpr uint32_t LBO_Q = 16 * LAC_C, LBO_A = 16 * LAC_C, LBO_KT = 16 * DK;
};

constexpr int lac_v6_prep_smem(int dk) {
    return 2 * LAC_C * (dk + LAC_PAD) * 2 + LAC_C * (LAC_C + LAC_PAD) * 2;
}

constexpr int lac_v6_output_smem(int dk) {
    return 2 * (2 * LAC_C * dk + LAC_C * LAC_C) * 2 /* images: two stages            */
           + 2 * LAC_C * (LAC_DVS + LAC_PAD) * 2    /* v rows: two stages            */
           + LAC_C * (LAC_DVS + LAC_PAD) * 2        /* O staging                     */
           + LAC_WARPS * LAC_C * 4                  /* per-warp row sums of squares  */
           + 2 * 8;                                 /* the images' mbarriers         */
}

/* Piece p (16 bytes = 8 consecutive k) of an N x K image: its column n and first k. */
template <int N> __device__ __forceinline__ void lac_v6_piece(int p, int &n, int &k8) {
    const int cm = p >> 3; /* core matrix, N direction innermost (wg_kmajor_index) */
    n = (cm % (N / 8)) * 8 + (p & 7);
    k8 = (cm / (N / 8)) * 8;
}

/* Prep.  grid = B*H*nchunks, block = 128, dynamic smem lac_v6_prep_smem(DK).  Writes chunk c's
 * three images to d_img[(bh * nchunks + c) * ELEMS ...]; rows past T are zero (q, k rows are
 * zero-filled, so A's rows and columns there are too). */
template <bool BF16, int DK>
__global__ void __launch_bounds__(LAC_THREADS)
    lac_v6_prep_kernel(const uint16_t *__restrict__ d_q, const uint16_t *__restrict__ d_k,
                       uint16_t *__restrict__ d_img, lac_args a) {
    typedef lac_v6_img<DK> I;
    constexpr int LDK = DK + LAC_PAD, LDA = LAC_C + LAC_PAD;
    LAC_DYNAMIC_SMEM(lac_smem);
    uint16_t *s_q = reinterpret_cast<uint16_t *>(lac_smem); /* [C][LDK]                   */
    uint16_t *s_k = s_q + LAC_C * LDK;                      /* [C][LDK]                   */
    uint16_t *s_a = s_k + LAC_C * LDK;                      /* [C][LDA] fp16 A[t][s]      */

    const int tid = threadIdx.x;
    const int nchunks = (a.T + LAC_C - 1) / LAC_C;
    const int c = blockIdx.x % nchunks;
    const int64_t bh = blockIdx.x / nchunks;
    const int t0 = c * LAC_C;
    const int64_t row0 = bh * a.T + t0;
    lac_prep_chunk<BF16, DK>(d_q, d_k, s_q, s_k, a, row0, lac_min(LAC_C, a.T - t0), s_a, LDA);
    __syncthreads(); /* A complete */

    /* The images, one 16-byte piece a thread per step, consecutive pieces to consecutive
     * threads (coalesced stores). */
    uint16_t *img = d_img + (bh * nchunks + c) * (int64_t)I::ELEMS;
    for (int p = tid; p < LAC_C * DK / 8; p += LAC_THREADS) { /* q16: row n = token */
        int n, k8;
        lac_v6_piece<LAC_C>(p, n, k8);
        uint4 u = *reinterpret_cast<const uint4 *>(s_q + n * LDK + k8);
        if (BF16)
            u = make_uint4(lac_bf16x2_to_f16x2(u.x), lac_bf16x2_to_f16x2(u.y),
                           lac_bf16x2_to_f16x2(u.z), lac_bf16x2_to_f16x2(u.w));
        *reinterpret_cast<uint4 *>(img + I::Q + 8 * p) = u;
    }
    for (int p = tid; p < LAC_C * LAC_C / 8; p += LAC_THREADS) { /* A: row n = target t */
        int n, k8;
        lac_v6_piece<LAC_C>(p, n, k8);
        *reinterpret_cast<uint4 *>(img + I::A + 8 * p) =
            *reinterpret_cast<const uint4 *>(s_a + n * LDA + k8);
    }
    for (int p = tid; p < DK * LAC_C / 8; p += LAC_THREADS) { /* k^T: column n = dk index */
        int n, s8;
        lac_v6_piece<DK>(p, n, s8);
        uint32_t w[4]; /* 32 lanes read 32 consecutive columns of one k row: no conflicts */
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            w[i] = (uint32_t)s_k[(s8 + 2 * i) * LDK + n] |
                   ((uint32_t)s_k[(s8 + 2 * i + 1) * LDK + n] << 16);
            if (BF16) w[i] = lac_bf16x2_to_f16x2(w[i]);
        }
        *reinterpret_cast<uint4 *>(img + I::KT + 8 * p) = make_uint4(w[0], w[1], w[2], w[3]);
    }
}

/* Chunk c's images, `bytes` from src (one bulk copy issued by thread 0, completing on bar),
 * and this slice's v rows (cp.async, one group). */
__device__ __forceinline__ void lac_v6_load_chunk(uint32_t simg, uint32_t bar, const uint16_t *src,
                                                  uint32_t bytes, uint16_t *sv,
                                                  const uint16_t *v_bh, int dv, int c, int T,
                                                  int tid) {
    if (tid == 0) {
        mbar_expect_tx(bar, bytes);
        bulk_g2s(simg, src, bytes, bar);
    }
    const int t0 = c * LAC_C;
    lac_load_rows<LAC_DVS, LAC_DVS + LAC_PAD>(sv, v_bh + (int64_t)t0 * dv, dv,
                                              lac_min(LAC_C, T - t0), tid);
    cp_async_commit();
}

/* The gate of chunk rows [0, nvalid) and this slice's 64 columns into the O staging tile (one
 * cp.async group), each warp copying the 16 columns that it alone reads back and overwrites
 * (lac_v6_gate_o), so that the tile needs no block barrier: 64 rows x 2 pieces a warp. */
__device__ __forceinline__ void lac_v6_load_gate(uint16_t *s_o, const uint16_t *g, int64_t ld_g,
                                                 int nvalid, int warp, int lane) {
    constexpr int LDO = LAC_DVS + LAC_PAD;
#pragma unroll
    for (int i = 0; i < 2 * LAC_C / 32; ++i) {
        const int p = lane + 32 * i, r = p >> 1, col = 16 * warp + 8 * (p & 1);
        const bool ok = r < nvalid;
        cp_async16(smem_u32(s_o + r * LDO + col), ok ? g + r * ld_g + col : g, ok ? 16 : 0);
    }
    cp_async_commit();
}

/* O *= sigmoid(G + b) in registers: gf holds the gate as V^T's fragments (lac_v2_load_vt on
 * the staged tile), which are the accumulator positions of oacc (register r of k-step ks:
 * value row gid + 8 (r & 1), tokens 16 ks + 8 (r >> 1) + 2 tig, +1 = oacc[2 ks + (r >> 1)]
 * [2 (r & 1)], [+1]).  nb_lo / nb_hi: -log2(e) times the biases of rows gid and gid + 8, so
 * that e^-(g+b) is one FMA and one ex2.  O is rounded once, when staged (the store-loop gate
 * of v3 rounded O, then O * sigmoid). */
template <bool BF16>
__device__ __forceinline__ void lac_v6_gate_o(float oacc[8][4], const uint32_t gf[4][4],
                                              float nb_lo, float nb_hi) {
    constexpr float NLOG2E = -1.4426950408889634f;
#pragma unroll
    for (int ks = 0; ks < 4; ++ks)
#pragma unroll
        for (int r = 0; r < 4; ++r) {
            float *o = oacc[2 * ks + (r >> 1)] + 2 * (r & 1);
            const float nb = (r & 1) ? nb_hi : nb_lo;
            const uint32_t u = gf[ks][r];
            const float g0 = lac_f32<BF16>((uint16_t)(u & 0xffffu));
            const float g1 = lac_f32<BF16>((uint16_t)(u >> 16));
            float e0, e1;
            asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(e0) : "f"(fmaf(g0, NLOG2E, nb)));
            asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(e1) : "f"(fmaf(g1, NLOG2E, nb)));
            /* 1 + e in (1, inf]: the fast divide is exact to 2 ulp up to 2^126, 0 beyond */
            o[0] = __fdividef(o[0], 1.0f + e0);
            o[1] = __fdividef(o[1], 1.0f + e1);
        }
}

/* Pass C, v6 (causal).  grid = B*H*nseg*nslices (slice fastest), block = 128 (one warpgroup),
 * dynamic smem lac_v6_output_smem(DK).  Barriers per chunk: B0 (chunk landed), B2 (O staged).
 * GATE: the copy that carries norm_mode 3's gate and V's SiLU (CHELA's path).  The gate tile
 * of a chunk is copied into the O staging tile as the chunk starts and applied to O in
 * registers before O is staged (v3's store loop loaded it into registers held across the
 * staging barrier: 255 registers with spills, and its loads' latency exposed each chunk). */
template <bool BF16, int DK, bool GATE>
__global__ void __launch_bounds__(LAC_THREADS, 2)
    lac_v6_output_kernel(const uint16_t *__restrict__ d_img, const uint16_t *__restrict__ d_v,
                         uint16_t *__restrict__ d_o, const float *__restrict__ d_states,
                         float *__restrict__ d_rowpart, lac_args a) {
    typedef lac_v6_img<DK> I;
    constexpr int LDV = LAC_DVS + LAC_PAD, LDO = LAC_DVS + LAC_PAD;
    LAC_DYNAMIC_SMEM(lac_smem);
    uint16_t *s_img = reinterpret_cast<uint16_t *>(lac_smem); /* [2][ELEMS] images        */
    uint16_t *s_v = s_img + 2 * I::ELEMS;                     /* [2][C][LDV]              */
    uint16_t *s_o = s_v + 2 * LAC_C * LDV;                    /* [C][LDO]  O[t][dv]       */
    float *s_rss = reinterpret_cast<float *>(s_o + LAC_C * LDO); /* [WARPS][C]            */

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int gid = lane >> 2, tig = lane & 3, mi = lane >> 3, r8 = lane & 7;
    const int p2_row = (mi >> 1) * 8 + r8, p2_col = (mi & 1) * 8;

    const lac_block blk = lac_block_of(a);
    lac_grid_dep_wait(); /* launched with PDL: pass B's states, prep's images */
    const int slice = blk.slice, seg = blk.seg, nchunks = blk.nchunks;
    const int c_begin = blk.c_begin, c_end = blk.c_end;
    const int64_t bh = blk.bh, row0 = blk.row0;
    const uint16_t *img_bh = d_img + bh * nchunks * (int64_t)I::ELEMS;
    const uint16_t *v_bh = d_v + row0 * a.dv + slice * LAC_DVS;
    uint16_t *o_bh = d_o + row0 * a.dv + slice * LAC_DVS;

    const uint32_t img_sa = smem_u32(s_img);
    const uint32_t bar_sa = smem_u32(s_rss + LAC_WARPS * LAC_C); /* [2] mbarriers, 8-aligned */
    constexpr uint32_t IMG_BYTES = I::ELEMS * 2;
    if (tid == 0) {
        mbar_init(bar_sa, 1);
        mbar_init(bar_sa + 8, 1);
    }
    __syncthreads(); /* the barriers initialised before anyone waits on them */
    if (c_begin < c_end)
        lac_v6_load_chunk(img_sa, bar_sa, img_bh + (int64_t)c_begin * I::ELEMS, IMG_BYTES, s_v,
                          v_bh, a.dv, c_begin, a.T, tid);
    const bool vact = GATE && a.v_bias != nullptr;
    float vb_lo = 0.f, vb_hi = 0.f;
    if (vact) lac_v_bias_of(a.v_bias, slice, warp, gid, vb_lo, vb_hi);
    const bool gated = GATE && a.norm_mode == 3 && a.gate;
    const uint16_t *gate_bh =
        gated ? static_cast<const uint16_t *>(a.gate) + row0 * a.gate_ld + slice * LAC_DVS : nullptr;
    float nb_lo = 0.f, nb_hi = 0.f;
    if (gated) {
        lac_v_bias_of(a.gate_bias, slice, warp, gid, nb_lo, nb_hi);
        nb_lo *= -1.4426950408889634f;
        nb_hi *= -1.4426950408889634f;
    }

    float st[DK / 8][4];
    bool state_nonzero = lac_v2_state_in<DK>(st, d_states, a, bh, seg - 1, slice, warp, gid, tig);
    float o1[8][4], o2[8][4]; /* written by wgmma (scale-d 0 on each chunk's first k-step) */
#pragma unroll
    for (int j = 0; j < 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) o1[j][e] = o2[j][e] = 0.f;

    for (int c = c_begin; c < c_end; ++c) {
        const int stage = (c - c_begin) & 1;
        const uint16_t *sv = s_v + stage * LAC_C * LDV;
        cp_async_wait<0>();
        __syncthreads(); /* B0: v of chunk c landed; chunk c-1's buffers and O staging free */
        const int t0 = c * LAC_C;
        const int nvalid = lac_min(LAC_C, a.T - t0);
        if (gated) { /* this chunk's gate (its group before v's of c+1); the next one's rows to L2 */
            lac_v6_load_gate(s_o, gate_bh + t0 * a.gate_ld, a.gate_ld, nvalid, warp, lane);
            if (c + 1 < c_end && tid < lac_min(LAC_C, a.T - t0 - LAC_C))
                lac_prefetch_l2(gate_bh + (t0 + LAC_C + tid) * a.gate_ld);
        }
        if (c + 1 < c_end)
            lac_v6_load_chunk(img_sa + (stage ^ 1) * IMG_BYTES, bar_sa + 8 * (stage ^ 1),
                              img_bh + (int64_t)(c + 1) * I::ELEMS, IMG_BYTES,
                              s_v + (stage ^ 1) * LAC_C * LDV, v_bh, a.dv, c + 1, a.T, tid);
        mbar_wait(bar_sa + 8 * stage, ((c - c_begin) >> 1) & 1); /* chunk c's images */
        const uint32_t base = img_sa + (uint32_t)(stage * I::ELEMS * 2);
        const uint32_t q_sa = base + I::Q * 2, a_sa = base + I::A * 2, kt_sa = base + I::KT * 2;

        /* The state as fp16 A-fragments, row r scaled by 2^p_r (v3's scaling); zeros on a
         * sequence's first chunk, so that O1 is issued unconditionally (a branch around it
         * makes ptxas fence the warpgroup's registers at the merge). */
        uint32_t af[DK / 16][4];
        float ia = 1.f, ib = 1.f;
        {
            float ma = 0.f, mb = 0.f;
#pragma unroll
            for (int j = 0; j < DK / 8; ++j) {
                ma = fmaxf(ma, fmaxf(fabsf(st[j][0]), fabsf(st[j][1])));
                mb = fmaxf(mb, fmaxf(fabsf(st[j][2]), fabsf(st[j][3])));
            }
#pragma unroll
            for (int m = 1; m < 4; m <<= 1) {
                ma = fmaxf(ma, lac_shfl_xor(ma, m));
                mb = fmaxf(mb, lac_shfl_xor(mb, m));
            }
            const int pa = lac_fp16_scale_exp(ma * a.scale), pb = lac_fp16_scale_exp(mb * a.scale);
            const float sa_ = state_nonzero ? a.scale * lac_exp2i(pa) : 0.f;
            const float sb_ = state_nonzero ? a.scale * lac_exp2i(pb) : 0.f;
#pragma unroll
            for (int kk = 0; kk < DK / 16; ++kk)
#pragma unroll
                for (int h = 0; h < 2; ++h) {
                    const float *x = st[2 * kk + h];
                    af[kk][2 * h] = lac_pack<false>(x[0] * sa_, x[1] * sa_);
                    af[kk][2 * h + 1] = lac_pack<false>(x[2] * sb_, x[3] * sb_);
                }
            ia = lac_exp2i(-pa);
            ib = lac_exp2i(-pb);
        }
        uint32_t va[4][4]; /* V^T, rounded to the input type (SiLU), then as fp16 */
        lac_v2_load_vt(va, sv, warp, p2_row, p2_col);
        if (vact) lac_v_act<BF16>(va, vb_lo, vb_hi);
        if (BF16)
#pragma unroll
            for (int ks = 0; ks < 4; ++ks)
#pragma unroll
                for (int r = 0; r < 4; ++r) va[ks][r] = lac_bf16x2_to_f16x2(va[ks][r]);

        /* Every register operand is final before the fence (the pins keep the compiler from
         * sinking their computation past it). */
        wg_pin_u32<DK / 16>(af);
        wg_pin_u32<4>(va);
        wg_pin<DK / 8>(st);
        wg_pin<8>(o1);
        wg_pin<8>(o2);
        wg_fence();
#pragma unroll
        for (int kk = 0; kk < DK / 16; ++kk)
            wgmma_rs<false, 64>(o1, af[kk], wg_desc(q_sa + 2 * kk * I::LBO_Q, I::LBO_Q, 128),
                                kk > 0);
#pragma unroll
        for (int ks = 0; ks < 4; ++ks)
            wgmma_rs<false, 64>(o2, va[ks], wg_desc(a_sa + 2 * ks * I::LBO_A, I::LBO_A, 128),
                                ks > 0);
        wg_commit();
#pragma unroll
        for (int ks = 0; ks < 4; ++ks)
            wgmma_rs<false, DK>(st, va[ks], wg_desc(kt_sa + 2 * ks * I::LBO_KT, I::LBO_KT, 128), 1);
        wg_commit();
        wg_wait<1>(); /* O1, O2 done; the state update may still run */
        wg_pin<8>(o1);
        wg_pin<8>(o2);
        wg_pin_u32<DK / 16>(af);

        float oacc[8][4];
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            oacc[j][0] = fmaf(o1[j][0], ia, o2[j][0]);
            oacc[j][1] = fmaf(o1[j][1], ia, o2[j][1]);
            oacc[j][2] = fmaf(o1[j][2], ib, o2[j][2]);
            oacc[j][3] = fmaf(o1[j][3], ib, o2[j][3]);
        }
        if (a.norm_mode != 0) lac_v2_row_sumsq(oacc, s_rss, warp, gid, tig); /* of O, ungated */
        if (gated) { /* the warp's own gate columns landed (v of c+1 may still be in flight) */
            if (c + 1 < c_end)
                cp_async_wait<1>();
            else
                cp_async_wait<0>();
            __syncwarp();
            uint32_t gf[4][4];
            lac_v2_load_vt(gf, s_o, warp, p2_row, p2_col);
            lac_v6_gate_o<BF16>(oacc, gf, nb_lo, nb_hi);
            __syncwarp(); /* every lane's gate read before any lane stages O over it */
        }
        lac_v2_store_o<BF16, false, true>(oacc, s_o, s_rss, o_bh, d_rowpart, a, slice, row0, t0,
                                          nvalid, tid, warp, gid, tig);
        wg_wait<0>(); /* the state update; its V^T operand registers are free after this */
        wg_pin<DK / 8>(st);
        wg_pin_u32<4>(va);
        state_nonzero = true;
    }
}

/* Pass A's pipeline depth: chunks in flight a block.  Its blocks stream k^T and v with little
 * work on each (4 wgmma a chunk): with two stages DRAM ran at 55 % of peak (ncu, 64k). */
#define LAC_V6_A_STAGES 4
constexpr int lac_v6_state_smem(int dk) {
    return LAC_V6_A_STAGES * (dk * LAC_C * 2 + LAC_C * (LAC_DVS + LAC_PAD) * 2) /* k^T, v    */
           + LAC_V6_A_STAGES * 8;                                             /* mbarriers */
}

/* Pass A, v6.  grid = B*H*ws_per_bh*nslices (slice fastest), block = 128 (one warpgroup),
 * dynamic smem lac_v6_state_smem(DK).  As v2's pass A (part u of a segment, the transposed
 * state of this slice into ws[bh][u][dv][dk]), with S^T += V^T K as 4 wgmma a chunk whose B
 * is the prep's k^T image (so the prep runs first): v2's warps each read the whole k tile
 * through ldmatrix, 4x the shared-memory traffic. */
template <bool BF16, int DK>
__global__ void __launch_bounds__(LAC_THREADS)
    lac_v6_state_kernel(const uint16_t *__restrict__ d_img, const uint16_t *__restrict__ d_v,
                        float *__restrict__ d_states, lac_args a) {
    typedef lac_v6_img<DK> I;
    constexpr int LDV = LAC_DVS + LAC_PAD, KTE = DK * LAC_C; /* k^T image elements */
    LAC_DYNAMIC_SMEM(lac_smem);
    constexpr int NS = LAC_V6_A_STAGES;
    uint16_t *s_kt = reinterpret_cast<uint16_t *>(lac_smem); /* [NS][KTE]                */
    uint16_t *s_v = s_kt + NS * KTE;                          /* [NS][C][LDV]             */

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int gid = lane >> 2, tig = lane & 3, mi = lane >> 3, r8 = lane & 7;
    const int p2_row = (mi >> 1) * 8 + r8, p2_col = (mi & 1) * 8;

    const lac_part blk = lac_part_of(a);
    lac_grid_dep_wait(); /* launched with PDL after the prep: its images */
    const int slice = blk.slice, c_begin = blk.c_begin, c_end = blk.c_end;
    const int64_t bh = blk.bh;
    const int nchunks = (a.T + LAC_C - 1) / LAC_C;
    const uint16_t *img_bh = d_img + bh * nchunks * (int64_t)I::ELEMS + I::KT;
    const uint16_t *v_bh = d_v + bh * a.T * a.dv + slice * LAC_DVS;
    const uint32_t kt_base = smem_u32(s_kt);
    const uint32_t bar_sa = smem_u32(s_v + NS * LAC_C * LDV); /* [NS] mbarriers, 8-aligned */
    if (tid == 0)
        for (int i = 0; i < NS; ++i) mbar_init(bar_sa + 8 * i, 1);
    __syncthreads();
    auto load = [&](int c, int stg) {
        lac_v6_load_chunk(kt_base + stg * KTE * 2, bar_sa + 8 * stg,
                          img_bh + (int64_t)c * I::ELEMS, KTE * 2, s_v + stg * LAC_C * LDV, v_bh,
                          a.dv, c, a.T, tid);
    };
    /* Chunks c_begin .. c_begin+NS-2 in flight; always NS-1 cp.async groups (empty past the
     * part's end) so that wait_group<NS-2> below means "chunk c's v has landed". */
#pragma unroll
    for (int i = 0; i < NS - 1; ++i) {
        if (c_begin + i < c_end) load(c_begin + i, i);
        else cp_async_commit();
    }
    float st[DK / 8][4];
#pragma unroll
    for (int j = 0; j < DK / 8; ++j) st[j][0] = st[j][1] = st[j][2] = st[j][3] = 0.f;
    const bool vact = a.v_bias != nullptr;
    float vb_lo = 0.f, vb_hi = 0.f;
    if (vact) lac_v_bias_of(a.v_bias, slice, warp, gid, vb_lo, vb_hi);

    for (int c = c_begin; c < c_end; ++c) {
        const int i = c - c_begin, stage = i % NS;
        cp_async_wait<NS - 2>();
        __syncthreads(); /* v of chunk c landed; chunk c-1's stage is free (its wgmma waited) */
        if (c + NS - 1 < c_end) load(c + NS - 1, (i + NS - 1) % NS);
        else cp_async_commit(); /* keeps the group count */
        mbar_wait(bar_sa + 8 * stage, (i / NS) & 1); /* chunk c's k^T image */
        uint32_t va[4][4];
        lac_v2_load_vt(va, s_v + stage * LAC_C * LDV, warp, p2_row, p2_col);
        if (vact) lac_v_act<BF16>(va, vb_lo, vb_hi);
        if (BF16)
#pragma unroll
            for (int ks = 0; ks < 4; ++ks)
#pragma unroll
                for (int r = 0; r < 4; ++r) va[ks][r] = lac_bf16x2_to_f16x2(va[ks][r]);
        wg_pin_u32<4>(va);
        wg_pin<DK / 8>(st);
        wg_fence();
        const uint32_t kt_sa = kt_base + (uint32_t)(stage * KTE * 2);
#pragma unroll
        for (int ks = 0; ks < 4; ++ks)
            wgmma_rs<false, DK>(st, va[ks], wg_desc(kt_sa + 2 * ks * I::LBO_KT, I::LBO_KT, 128), 1);
        wg_commit();
        wg_wait<0>();
        wg_pin<DK / 8>(st);
        wg_pin_u32<4>(va);
    }

    /* As v2: thread holds S^T rows (gid, gid+8) of its warp, columns 8j+2tig..+1. */
    float *dst = d_states +
                 ((bh * a.ws_per_bh + blk.u) * a.dv + slice * LAC_DVS + warp * 16 + gid) * DK +
                 2 * tig;
#pragma unroll
    for (int j = 0; j < DK / 8; ++j) {
        *reinterpret_cast<float2 *>(dst + 8 * j) = make_float2(st[j][0], st[j][1]);
        *reinterpret_cast<float2 *>(dst + 8 * DK + 8 * j) = make_float2(st[j][2], st[j][3]);
    }
}

template <bool BF16, int DK> int lac_v6_prepare_t(int *bps, int *bps_a) {
    const int so = lac_v6_output_smem(DK), ss = lac_v6_state_smem(DK);
    CUDA_CHECK(cudaFuncSetAttribute(lac_v6_state_kernel<BF16, DK>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, ss));
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
        bps_a, lac_v6_state_kernel<BF16, DK>, LAC_THREADS, (size_t)ss));
    CUDA_CHECK(cudaFuncSetAttribute(lac_v6_output_kernel<BF16, DK, false>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, so));
    CUDA_CHECK(cudaFuncSetAttribute(lac_v6_output_kernel<BF16, DK, true>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, so));
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
        bps, lac_v6_output_kernel<BF16, DK, false>, LAC_THREADS, (size_t)so));
    return 0;
}

template <bool BF16, int DK>
int lac_v6_enqueue_front_t(const lac_v6_io &io, const lac_args &a, int64_t nbh, int nchunks,
                           cudaStream_t stream) {
    const uint16_t *q = (const uint16_t *)io.q, *k = (const uint16_t *)io.k;
    static_assert(lac_v6_prep_smem(128) <= 48 * 1024, "prep fits the default smem limit");
    if (pdl_launch(false, lac_v6_prep_kernel<BF16, DK>, (unsigned)(nbh * nchunks), LAC_THREADS,
                   lac_v6_prep_smem(DK), stream, q, k, io.images, a))
        return -1;
    if (a.ws_per_bh == 0) return 0;
    return pdl_launch(io.pdl, lac_v6_state_kernel<BF16, DK>,
                      (unsigned)(nbh * a.ws_per_bh * a.nslices), LAC_THREADS,
                      lac_v6_state_smem(DK), stream, (const uint16_t *)io.images,
                      (const uint16_t *)io.v, io.states_out, a);
}

template <bool BF16, int DK>
int lac_v6_enqueue_output_t(const lac_v6_io &io, const lac_args &a, int64_t nbh, bool gated,
                            cudaStream_t stream) {
    const unsigned grid = (unsigned)(nbh * a.nseg * a.nslices);
    void (*kern)(const uint16_t *, const uint16_t *, uint16_t *, const float *, float *,
                 lac_args) = gated ? lac_v6_output_kernel<BF16, DK, true>
                                   : lac_v6_output_kernel<BF16, DK, false>;
    return pdl_launch(io.pdl, kern, grid, LAC_THREADS, lac_v6_output_smem(DK), stream,
                      (const uint16_t *)io.images, (const uint16_t *)io.v, (uint16_t *)io.o,
                      (const float *)io.states_out, io.rowpart, a);
}

/* A v6 plan: the prep, pass A, the scan, pass C (and the norm pass). */
template <bool BF16, int DK>
int lac_v6_enqueue_t(const lac_plan *p, const lac_ptrs &d, const lac_args &a, int64_t nbh,
                     cudaStream_t stream) {
    const lac_v6_io io = {d.q, d.k, d.v, d.o, d.images, d.states, d.rowpart, p->pdl != 0};
    if (lac_v6_enqueue_front_t<BF16, DK>(io, a, nbh, p->nchunks, stream)) return -1;
    if (lac_launch_scan(p, d, nbh, DK, a.dv, stream)) return -1;
    const bool gated = (a.norm_mode == 3 && a.gate) || a.v_bias; /* gate and V's SiLU */
    if (lac_v6_enqueue_output_t<BF16, DK>(io, a, nbh, gated, stream)) return -1;
    if (a.norm_mode == 2) return lac_launch_norm(BF16 ? DTYPE_BF16 : DTYPE_F16, d, a, stream);
    return 0;
}

} /* namespace */

bool lac_v6_usable(int dev) { return wg_unit_usable(dev); }

int lac_v6_prepare(bool bf16, int dk, int *bps, int *bps_a) {
    if (bf16)
        return dk == 64 ? lac_v6_prepare_t<true, 64>(bps, bps_a)
                        : lac_v6_prepare_t<true, 128>(bps, bps_a);
    return dk == 64 ? lac_v6_prepare_t<false, 64>(bps, bps_a)
                    : lac_v6_prepare_t<false, 128>(bps, bps_a);
}

int lac_v6_enqueue(bool bf16, int dk, const lac_plan *p, const lac_ptrs &d, const lac_args &a,
                   int64_t nbh, cudaStream_t stream) {
    if (bf16)
        return dk == 64 ? lac_v6_enqueue_t<true, 64>(p, d, a, nbh, stream)
                        : lac_v6_enqueue_t<true, 128>(p, d, a, nbh, stream);
    return dk == 64 ? lac_v6_enqueue_t<false, 64>(p, d, a, nbh, stream)
                    : lac_v6_enqueue_t<false, 128>(p, d, a, nbh, stream);
}
