/* linear_attn/naive_cumsum: causal linear attention in the paper's slow "cumulative summation"
 * form, the one CHELA's tiled kernel is measured against.
 *
 * ---- version index (llm.c style) ------------------------------------------------------------
 * Run:  chela-bench --ops linear_attn --variants naive_cumsum --seq 1k..64k
 * v1  every prefix state S_t in HBM (fp32), written once and read once: a reduce-then-scan over
 *     128-token chunks, then a contraction.  13.43-13.62 ms at every T (H100, bf16, H 16,
 *     dk = dv = 64, 65536 tokens): 46-66x linear_attn/chunked.  profiles/NOTES.md, "linear_attn".
 *
 *   S_t = sum_{s<=t} k_s^T v_s            (dk x dv, fp32, materialised for EVERY t in HBM)
 *   o_t = (q_t / sqrt(dk)) . S_t
 *
 * Layouts (op.h): q,k [B,H,T,dk], v [B,H,T,dv], o [B,H,T,dv], run dtype; workspace S is fp32
 * [B*H, T, dk, dv] (element index e = i*dv + j innermost, so a token's state is one contiguous
 * dk*dv run).  The memory is the point of this baseline: B*H*T*dk*dv*4 bytes, 17.2 GB for the
 * LM shape (B*T = 65536 tokens, H = 16, dk = dv = 64) at every T, since B*T is held constant.
 * workspace_bytes() reports it so the harness can skip:oom what does not fit (CHELA's single
 * head dk = 128, dv = 2048 is refused by supports(): dv > 256).
 *
 * The scan over T is written to be a fair baseline, not a strawman: S is written exactly once
 * and read exactly once, with 16-byte coalesced accesses along e.
 *
 * ---- v1 in detail -----------------------------------------------------------------------------
 *
 * v1 (the only version; LA_CONTRACT_VEC / LA_STATE_VEC below switch the float4 paths off for
 * debugging).  A reduce-then-scan over chunks of LA_CHUNK = 128 tokens, then a contraction:
 *   pass A  chunk_state_kernel<WRITE_STATES=false>: block = (b*H+h, chunk, tile of 1024 state
 *           elements); k,v of 16 tokens at a time staged as fp32 in shared memory; each thread
 *           owns 4 elements (4 consecutive e when dv % 4 == 0, else 4 strided by 256) and sums
 *           k_s[i] v_s[j] over the chunk; writes the chunk total to d_carry [BH, C, dk*dv].
 *   pass B  carry_scan_kernel: per (b*H+h, e), an exclusive scan of the C chunk totals in place
 *           (8 loads in flight per thread); d_carry becomes S at the start of each chunk.
 *   pass C  chunk_state_kernel<WRITE_STATES=true>: same blocks as pass A, starting from the
 *           carry, writing the running sum S_t after every token (one st.global.v4 per thread
 *           per token, a block writes 4 KB contiguous per token).
 *   pass D  contract_kernel: one warp per (b*H+h, t); q_t/sqrt(dk) staged in shared memory;
 *           when dv/4 divides 32 (dv in 4,8,16,32,64,128) lane = (row group r, float4 column c)
 *           reads S_t as float4 rows (evict-first, it is dead after this), accumulates over its
 *           rows, then an xor-butterfly over the lanes of equal c; otherwise lane j reads
 *           columns j, j+32, ... (up to 8) of every row, no reduction needed.
 *   When T <= LA_CHUNK there is one chunk and passes A and B are skipped.
 *   Predicted cost, LM shape on an H100 (B*H*T = 2^20 token-heads, dk = dv = 64, bf16):
 *   S = 17.2 GB written (pass C) + 17.2 GB read (pass D) ~ 34.4 GB; carry = S/128 = 134 MB
 *   written, read+written, read ~ 0.5 GB; q,k,v,o 134 MB each, k,v read twice ~ 0.8 GB.
 *   Total ~ 35.7 GB -> ~ 12 ms at ~3.0 TB/s, against the op's ideal 537 MB (q,k,v,o once)
 *   -> 0.18 ms: hbm_ratio ~ 66, floor_ratio ~ 65.  FLOPs: 4*2^20*4096 = 17 GFLOP of fp32 FMA
 *   on CUDA cores (+ 8.6 GFLOP for pass A), negligible next to the bytes.
 *   Numerics: fp32 running sums; a chunk's states start from an fp32 carry that is itself a sum
 *   of chunk totals, so rounding grows with about T/128 + 128 additions, not T.
 *   measured: 13.43-13.62 ms (the index above), against ~12 predicted.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_check.h"
#include "variant.h"

extern "C" {
DECLARE_VARIANT(linear_attn_naive_cumsum);
DECLARE_BWD_STAGES(linear_attn_naive_cumsum);
}

/* Switches for debugging a first GPU run: 0 forces the scalar paths (any dk, dv). */
#define LA_STATE_VEC 1
#define LA_CONTRACT_VEC 1

#define LA_CHUNK 128                  /* tokens per chunk of the reduce-then-scan            */
#define LA_SUB 16                     /* tokens of k, v staged in shared memory at a time   */
#define LA_THREADS 256                /* threads of a scan block                             */
#define LA_EPT 4                      /* state elements per thread                           */
#define LA_TILE (LA_THREADS * LA_EPT) /* state elements per scan block                      */
#define LA_OUT_WARPS 8                /* tokens (warps) per contraction block               */
#define LA_MAX_D 256                  /* largest dk, dv supported                            */

#include "dtype_device.cuh" /* to_f32 / from_f32 */

/* Kernels have internal linkage: other variants in the same binary define their own
 * *_kernel names. */
namespace {


/* ---- passes A and C: chunk totals / per-token states ------------------------------------------
 * Grid: 1D, blockIdx.x = (bh * n_chunks + chunk) * n_tiles + tile (tile fastest, so the blocks
 * that re-read one chunk's k, v run together and hit L2).  Dynamic smem: LA_SUB*(dk+dv) floats.
 * VEC (dv % 4 == 0): thread owns e = tile*1024 + 4*tid + {0..3}, all in one row i (dv % 4 == 0),
 * so per token it reads one k value (broadcast) and one float4 of v, and stores one float4.
 * !VEC: thread owns e = tile*1024 + tid + 256*{0..3}: scalar, but coalesced across the warp.
 * d_carry [bh][n_chunks][dk*dv]: pass A writes chunk totals; pass C reads the exclusive prefix
 * (NULL when there is a single chunk: the state starts at 0). */
/* min 6 blocks/SM (<= 40 registers): without a minimum, ptxas picked 32 registers and spilled
 * in the pass-A instances; 6 x 256 threads keeps 75% occupancy for the store stream. */
/* REV (the backward's suffix sums): position r of the scan is token T-1-r, so the same
 * reduce-then-scan builds R_s = sum_{t>=s} q_t^T dO_t (k := q, v := dO), state written at
 * token T-1-r. */
template <typename Tin, bool VEC, bool WRITE_STATES, bool REV = false>
__global__ void __launch_bounds__(LA_THREADS, 6)
    chunk_state_kernel(const Tin *__restrict__ k, const Tin *__restrict__ v,
                       float *__restrict__ d_carry, float *__restrict__ d_S, int T, int dk, int dv,
                       int n_chunks, int n_tiles) {
    extern __shared__ float4 smem4[]; /* float4 so the v rows' float4 reads are aligned */
    float *ks = reinterpret_cast<float *>(smem4); /* [LA_SUB][dk] */
    float *vs = ks + LA_SUB * dk;                 /* [LA_SUB][dv]; LA_SUB*dk*4 B is 16B-aligned */

    const int dkdv = dk * dv;
    int blk = blockIdx.x;
    const int tile = blk % n_tiles;
    blk /= n_tiles;
    const int c = blk % n_chunks;
    const int bh = blk / n_chunks;
    const int t0 = c * LA_CHUNK;
    const int t1 = min(T, t0 + LA_CHUNK);
    const int tid = threadIdx.x;

    /* VEC: the 4 elements are e[0] + {0,1,2,3}, all in row ei[0] and all valid iff e[0] is
     * (dk*dv % 4 == 0); only slot 0's indices are kept live (fewer registers). */
    int e[LA_EPT], ei[LA_EPT], ej[LA_EPT];
    bool ok[LA_EPT];
#pragma unroll
    for (int q = 0; q < LA_EPT; q++) {
        if (VEC) {
            e[q] = tile * LA_TILE + tid * LA_EPT + q;
            ok[q] = (tile * LA_TILE + tid * LA_EPT) < dkdv;
        } else {
            e[q] = tile * LA_TILE + q * LA_THREADS + tid;
            ok[q] = e[q] < dkdv;
        }
        ei[q] = 0;
        ej[q] = 0;
        if (!VEC || q == 0) {
            ei[q] = ok[q] ? e[q] / dv : 0;
            ej[q] = ok[q] ? e[q] % dv : 0;
        }
    }

    const size_t carry_row = ((size_t)bh * n_chunks + c) * (size_t)dkdv;
    float acc[LA_EPT];
#pragma unroll
    for (int q = 0; q < LA_EPT; q++) acc[q] = 0.0f;
    if (WRITE_STATES && d_carry != nullptr) {
#pragma unroll
        for (int q = 0; q < LA_EPT; q++)
            if (ok[q]) acc[q] = d_carry[carry_row + e[q]];
    }

    const Tin *kb = k + (size_t)bh * T * dk;
    const Tin *vb = v + (size_t)bh * T * dv;
    /* This thread's first element in token t0's state; advanced by dk*dv per token (REV:
     * token T-1-t0's, moved back by dk*dv per step). */
    float *sp = d_S + ((size_t)bh * T + (REV ? T - 1 - t0 : t0)) * (size_t)dkdv;
    const long long sp_back = -(long long)dkdv; /* REV's step (the forward keeps += dkdv) */

    for (int ts = t0; ts < t1; ts += LA_SUB) {
        const int nt = min(LA_SUB, t1 - ts);
        __syncthreads(); /* everyone is done with the previous sub-chunk before it is replaced */
        /* nt rows of k: contiguous (REV: tokens T-ts-nt .. T-1-ts, step tt at row nt-1-tt) */
        const int row0 = REV ? T - ts - nt : ts;
        const Tin *kg = kb + (size_t)row0 * dk;
        const Tin *vg = vb + (size_t)row0 * dv;
        for (int idx = tid; idx < nt * dk; idx += LA_THREADS) ks[idx] = to_f32(kg[idx]);
        for (int idx = tid; idx < nt * dv; idx += LA_THREADS) vs[idx] = to_f32(vg[idx]);
        __syncthreads();

        if (VEC) {
            if (ok[0]) { /* dkdv % 4 == 0, so ok[0] implies ok[1..3] */
#pragma unroll 2
                for (int tt = 0; tt < nt; tt++) {
                    const int rr = REV ? nt - 1 - tt : tt;
                    const float kv = ks[rr * dk + ei[0]];
                    const float4 vv = *reinterpret_cast<const float4 *>(&vs[rr * dv + ej[0]]);
                    acc[0] = fmaf(kv, vv.x, acc[0]);
                    acc[1] = fmaf(kv, vv.y, acc[1]);
                    acc[2] = fmaf(kv, vv.z, acc[2]);
                    acc[3] = fmaf(kv, vv.w, acc[3]);
                    if (WRITE_STATES) {
                        *reinterpret_cast<float4 *>(sp + e[0]) =
                            make_float4(acc[0], acc[1], acc[2], acc[3]);
                        if (REV) sp += sp_back;
                        else sp += dkdv;
                    }
                }
            }
        } else {
#pragma unroll 2
            for (int tt = 0; tt < nt; tt++) {
                const int rr = REV ? nt - 1 - tt : tt;
#pragma unroll
                for (int q = 0; q < LA_EPT; q++) {
                    if (ok[q]) {
                        acc[q] = fmaf(ks[rr * dk + ei[q]], vs[rr * dv + ej[q]], acc[q]);
                        if (WRITE_STATES) sp[e[q]] = acc[q];
                    }
                }
                if (WRITE_STATES) {
                    if (REV) sp += sp_back;
                    else sp += dkdv;
                }
            }
        }
    }

    if (!WRITE_STATES) {
#pragma unroll
        for (int q = 0; q < LA_EPT; q++)
            if (ok[q]) d_carry[carry_row + e[q]] = acc[q];
    }
}

/* ---- pass B: exclusive scan of chunk totals, in place -----------------------------------------
 * One thread per (bh, e), 1D grid over B*H*dk*dv; consecutive threads take consecutive e, so
 * every access is coalesced.  Loads go in batches of 8 before any store, so 8 are in flight
 * (the compiler cannot move a load past a store to the same array on its own). */
__global__ void __launch_bounds__(256)
    carry_scan_kernel(float *__restrict__ d_carry, int n_chunks, int dkdv, long long n_cols) {
    const long long g = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (g >= n_cols) return;
    const long long bh = g / dkdv;
    const int e = (int)(g - bh * dkdv);
    float *p = d_carry + (size_t)bh * n_chunks * (size_t)dkdv + e;
    float run = 0.0f;
    for (int c0 = 0; c0 < n_chunks; c0 += 8) {
        float x[8];
#pragma unroll
        for (int u = 0; u < 8; u++) x[u] = (c0 + u < n_chunks) ? p[(size_t)(c0 + u) * dkdv] : 0.0f;
#pragma unroll
        for (int u = 0; u < 8; u++) {
            if (c0 + u < n_chunks) p[(size_t)(c0 + u) * dkdv] = run;
            run += x[u];
        }
    }
}

/* ---- pass D: o_t = (q_t / sqrt(dk)) . S_t ------------------------------------------------------
 * One warp per token-head (bht = (b*H+h)*T + t), LA_OUT_WARPS per block, 1D grid.
 * VEC (dv/4 divides 32): W = dv/4 float4 columns, R = 32/W rows per step; lane = r*W + col reads
 * rows r, r+R, ... of its float4 column; lanes of equal col differ only in the bits >= log2 W,
 * so an xor-butterfly over offsets W..16 sums them.  !VEC: lane j sums columns j + 32*jj. */
template <typename Tin, bool VEC>
__global__ void __launch_bounds__(LA_OUT_WARPS * 32)
    contract_kernel(const Tin *__restrict__ q, const float *__restrict__ d_S, Tin *__restrict__ o,
                    long long n_tok, int dk, int dv, float scale) {
    __shared__ float qs[LA_OUT_WARPS][LA_MAX_D];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const long long tok = (long long)blockIdx.x * LA_OUT_WARPS + warp;
    if (tok >= n_tok) return; /* whole warps leave; no block barrier below */

    const Tin *qr = q + (size_t)tok * dk;
    for (int i = lane; i < dk; i += 32) qs[warp][i] = to_f32(qr[i]) * scale;
    __syncwarp();

    const float *Sr = d_S + (size_t)tok * dk * (size_t)dv;
    Tin *orow = o + (size_t)tok * dv;

    if (VEC) {
        const int W = dv >> 2;
        const int R = 32 / W;
        const int col = lane % W, r0 = lane / W;
        const float4 *S4 = reinterpret_cast<const float4 *>(Sr) + col;
        float4 a = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll 8
        for (int i = r0; i < dk; i += R) {
            const float qi = qs[warp][i];
            const float4 s = __ldcs(S4 + (size_t)i * W);
            a.x = fmaf(qi, s.x, a.x);
            a.y = fmaf(qi, s.y, a.y);
            a.z = fmaf(qi, s.z, a.z);
            a.w = fmaf(qi, s.w, a.w);
        }
        /* over the lanes of equal column only (offsets W and up), not the warp: no warp_sum */
        for (int off = W; off < 32; off <<= 1) {
            a.x += __shfl_xor_sync(0xffffffffu, a.x, off);
            a.y += __shfl_xor_sync(0xffffffffu, a.y, off);
            a.z += __shfl_xor_sync(0xffffffffu, a.z, off);
            a.w += __shfl_xor_sync(0xffffffffu, a.w, off);
        }
        if (r0 == 0) {
            orow[4 * col + 0] = from_f32<Tin>(a.x);
            orow[4 * col + 1] = from_f32<Tin>(a.y);
            orow[4 * col + 2] = from_f32<Tin>(a.z);
            orow[4 * col + 3] = from_f32<Tin>(a.w);
        }
    } else {
        float a[LA_MAX_D / 32];
#pragma unroll
        for (int jj = 0; jj < LA_MAX_D / 32; jj++) a[jj] = 0.0f;
#pragma unroll 2
        for (int i = 0; i < dk; i++) {
            const float qi = qs[warp][i];
            const float *srow = Sr + (size_t)i * dv;
#pragma unroll
            for (int jj = 0; jj < LA_MAX_D / 32; jj++) {
                const int j = lane + 32 * jj;
                if (j < dv) a[jj] = fmaf(qi, __ldcs(srow + j), a[jj]);
            }
        }
#pragma unroll
        for (int jj = 0; jj < LA_MAX_D / 32; jj++) {
            const int j = lane + 32 * jj;
            if (j < dv) orow[j] = from_f32<Tin>(a[jj]);
        }
    }
}

/* ---- backward: contractions with a token's dk x dv state ---------------------------------------
 *   out_rows[tok][i] = scale * sum_c M_tok[i][c] w_tok[c]        (dQ: M = S, w = dO;
 *                                                                 dK: M = R, w = v)
 *   out_cols[tok][c] = scale * sum_i a_tok[i] M_tok[i][c]        (WITH_DV, dV: a = k)
 * One warp per token, as contract_kernel; M is read once (evict-first: dead after this).
 * VEC (dv/4 divides 32): lane = (row group r, float4 column col), W = dv/4 lanes a row, R =
 * 32/W rows a step.  Every lane runs the same number of steps (a row index past dk reads
 * zeros), because the row sum is an xor-butterfly over the W lanes of the row (offsets < W)
 * and a shuffle needs all 32 lanes; the column sums (WITH_DV) are a butterfly over the row
 * groups (offsets >= W) at the end.  !VEC: lane j owns columns j + 32 jj; a row's sum is a
 * whole-warp butterfly. */
template <typename Tin, bool VEC, bool WITH_DV>
__global__ void __launch_bounds__(LA_OUT_WARPS * 32)
    bwd_contract_kernel(const float *__restrict__ M, const Tin *__restrict__ w,
                        const Tin *__restrict__ a, Tin *__restrict__ out_rows,
                        Tin *__restrict__ out_cols, long long n_tok, int dk, int dv,
                        float scale) {
    __shared__ float ws[LA_OUT_WARPS][LA_MAX_D];
    __shared__ float as[LA_OUT_WARPS][LA_MAX_D];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const long long tok = (long long)blockIdx.x * LA_OUT_WARPS + warp;
    if (tok >= n_tok) return; /* whole warps leave; no block barrier below */

    for (int c = lane; c < dv; c += 32) ws[warp][c] = to_f32(w[(size_t)tok * dv + c]);
    if (WITH_DV)
        for (int i = lane; i < dk; i += 32) as[warp][i] = to_f32(a[(size_t)tok * dk + i]);
    __syncwarp();

    const float *Mr = M + (size_t)tok * dk * (size_t)dv;
    Tin *orow = out_rows + (size_t)tok * dk;

    if (VEC) {
        const int W = dv >> 2;
        const int R = 32 / W;
        const int col = lane % W, r0 = lane / W;
        const float4 *M4 = reinterpret_cast<const float4 *>(Mr) + col;
        const float4 w4 = make_float4(ws[warp][4 * col], ws[warp][4 * col + 1],
                                      ws[warp][4 * col + 2], ws[warp][4 * col + 3]);
        float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
        for (int i0 = 0; i0 < dk; i0 += R) {
            const int i = i0 + r0;
            const bool valid = i < dk;
            const float4 m = valid ? __ldcs(M4 + (size_t)i * W) : make_float4(0.f, 0.f, 0.f, 0.f);
            float part = m.x * w4.x + m.y * w4.y + m.z * w4.z + m.w * w4.w;
            for (int off = 1; off < W; off <<= 1) part += __shfl_xor_sync(0xffffffffu, part, off);
            if (valid && col == 0) orow[i] = from_f32<Tin>(scale * part);
            if (WITH_DV && valid) {
                const float ai = as[warp][i];
                acc.x = fmaf(ai, m.x, acc.x);
                acc.y = fmaf(ai, m.y, acc.y);
                acc.z = fmaf(ai, m.z, acc.z);
                acc.w = fmaf(ai, m.w, acc.w);
            }
        }
        if (WITH_DV) {
            for (int off = W; off < 32; off <<= 1) {
                acc.x += __shfl_xor_sync(0xffffffffu, acc.x, off);
                acc.y += __shfl_xor_sync(0xffffffffu, acc.y, off);
                acc.z += __shfl_xor_sync(0xffffffffu, acc.z, off);
                acc.w += __shfl_xor_sync(0xffffffffu, acc.w, off);
            }
            if (r0 == 0) {
                Tin *ocol = out_cols + (size_t)tok * dv + 4 * col;
                ocol[0] = from_f32<Tin>(scale * acc.x);
                ocol[1] = from_f32<Tin>(scale * acc.y);
                ocol[2] = from_f32<Tin>(scale * acc.z);
                ocol[3] = from_f32<Tin>(scale * acc.w);
            }
        }
    } else {
        float acc[LA_MAX_D / 32];
#pragma unroll
        for (int jj = 0; jj < LA_MAX_D / 32; jj++) acc[jj] = 0.0f;
        for (int i = 0; i < dk; i++) {
            const float *mrow = Mr + (size_t)i * dv;
            const float ai = WITH_DV ? as[warp][i] : 0.0f;
            float part = 0.0f;
#pragma unroll
            for (int jj = 0; jj < LA_MAX_D / 32; jj++) {
                const int c = lane + 32 * jj;
                if (c < dv) {
                    const float m = __ldcs(mrow + c);
                    part = fmaf(m, ws[warp][c], part);
                    if (WITH_DV) acc[jj] = fmaf(ai, m, acc[jj]);
                }
            }
            for (int off = 16; off > 0; off >>= 1) part += __shfl_xor_sync(0xffffffffu, part, off);
            if (lane == 0) orow[i] = from_f32<Tin>(scale * part);
        }
        if (WITH_DV) {
#pragma unroll
            for (int jj = 0; jj < LA_MAX_D / 32; jj++) {
                const int c = lane + 32 * jj;
                if (c < dv) out_cols[(size_t)tok * dv + c] = from_f32<Tin>(scale * acc[jj]);
            }
        }
    }
}

} // namespace

/* ---- host side ----------------------------------------------------------------------------- */
typedef struct {
    shape_t s;
    float *d_S;     /* [B*H, T, dk, dv] fp32: every token's state            */
    float *d_carry; /* [B*H, n_chunks, dk, dv] fp32, NULL when n_chunks == 1  */
    int n_chunks;
    int train;      /* s.pass != PASS_FWD: S kept for the backward, R below   */
    float *d_R;     /* [B*H, T, dk, dv] fp32: every token's suffix state       */
} la_state_t;

static int la_chunks(const shape_t *s) { return (s->T + LA_CHUNK - 1) / LA_CHUNK; }
static size_t la_states_bytes(const shape_t *s) {
    return (size_t)s->B * s->H * (size_t)s->T * s->dk * (size_t)s->dv * sizeof(float);
}
static size_t la_carry_bytes(const shape_t *s) {
    int C = la_chunks(s);
    return C > 1 ? (size_t)s->B * s->H * (size_t)C * s->dk * (size_t)s->dv * sizeof(float) : 0;
}

extern "C" const char *linear_attn_naive_cumsum_supports(const shape_t *s) {
    if (!s->causal) return "causal only (the cumulative-sum form has no bidirectional path)";
    if (s->dtype != DTYPE_F32 && s->dtype != DTYPE_BF16 && s->dtype != DTYPE_F16)
        return "dtype must be fp32, bf16 or fp16";
    if (s->B < 1 || s->H < 1 || s->T < 1 || s->dk < 1 || s->dv < 1) return "empty shape";
    if (s->dk > LA_MAX_D || s->dv > LA_MAX_D) return "dk and dv must be <= 256";
    /* 1D grids: scan blocks and contraction blocks must fit gridDim.x. */
    long long n_tiles = ((long long)s->dk * s->dv + LA_TILE - 1) / LA_TILE;
    long long scan_blocks = (long long)s->B * s->H * la_chunks(s) * n_tiles;
    long long out_blocks = ((long long)s->B * s->H * s->T + LA_OUT_WARPS - 1) / LA_OUT_WARPS;
    if (scan_blocks > INT_MAX || out_blocks > INT_MAX) return "B*H*T too large for a 1D grid";
    return NULL;
}

extern "C" size_t linear_attn_naive_cumsum_workspace_bytes(const shape_t *s) {
    return la_states_bytes(s) * (s->pass != PASS_FWD ? 2 : 1) + la_carry_bytes(s);
}

extern "C" void linear_attn_naive_cumsum_teardown(void *state) {
    la_state_t *st = (la_state_t *)state;
    if (!st) return;
    if (st->d_S) cudaFree(st->d_S);
    if (st->d_carry) cudaFree(st->d_carry);
    if (st->d_R) cudaFree(st->d_R);
    free(st);
}

static int la_setup_impl(la_state_t *st) {
    CUDA_CHECK(cudaMalloc((void **)&st->d_S, la_states_bytes(&st->s)));
    if (st->n_chunks > 1) CUDA_CHECK(cudaMalloc((void **)&st->d_carry, la_carry_bytes(&st->s)));
    if (st->train) CUDA_CHECK(cudaMalloc((void **)&st->d_R, la_states_bytes(&st->s)));
    return 0;
}

extern "C" int linear_attn_naive_cumsum_setup(const shape_t *s, const io_t *io, void **state) {
    (void)io;
    *state = NULL;
    const char *why = linear_attn_naive_cumsum_supports(s);
    if (why) BENCH_FAIL("linear_attn/naive_cumsum: unsupported shape: %s", why);
    la_state_t *st = (la_state_t *)calloc(1, sizeof *st);
    if (!st) BENCH_FAIL("linear_attn/naive_cumsum: out of host memory");
    st->s = *s;
    st->n_chunks = la_chunks(s);
    st->train = s->pass != PASS_FWD;
    if (la_setup_impl(st) != 0) {
        linear_attn_naive_cumsum_teardown(st); /* keeps the recorded error */
        return -1;
    }
    *state = st;
    return 0;
}

template <typename Tin, bool VEC>
static int la_launch_scan(const la_state_t *st, const io_t *io, cudaStream_t stream) {
    const shape_t *s = &st->s;
    const Tin *k = (const Tin *)io->in[1];
    const Tin *v = (const Tin *)io->in[2];
    const int dkdv = s->dk * s->dv;
    const int n_tiles = (dkdv + LA_TILE - 1) / LA_TILE;
    const int BH = s->B * s->H;
    const unsigned blocks = (unsigned)((long long)BH * st->n_chunks * n_tiles);
    const size_t smem = (size_t)LA_SUB * (s->dk + s->dv) * sizeof(float); /* <= 32 KB */
    if (st->n_chunks > 1) {
        chunk_state_kernel<Tin, VEC, false><<<blocks, LA_THREADS, smem, stream>>>(
            k, v, st->d_carry, st->d_S, s->T, s->dk, s->dv, st->n_chunks, n_tiles);
        CUDA_CHECK(cudaGetLastError());
        const long long n_cols = (long long)BH * dkdv;
        const unsigned scan_blocks = (unsigned)((n_cols + 255) / 256);
        carry_scan_kernel<<<scan_blocks, 256, 0, stream>>>(st->d_carry, st->n_chunks, dkdv,
                                                           n_cols);
        CUDA_CHECK(cudaGetLastError());
    }
    chunk_state_kernel<Tin, VEC, true><<<blocks, LA_THREADS, smem, stream>>>(
        k, v, st->n_chunks > 1 ? st->d_carry : nullptr, st->d_S, s->T, s->dk, s->dv,
        st->n_chunks, n_tiles);
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

template <typename Tin>
static int la_run_typed(const la_state_t *st, const io_t *io, cudaStream_t stream) {
    const shape_t *s = &st->s;
    const bool state_vec = LA_STATE_VEC && (s->dv % 4 == 0);
    if (state_vec) {
        if (la_launch_scan<Tin, true>(st, io, stream)) return -1;
    } else {
        if (la_launch_scan<Tin, false>(st, io, stream)) return -1;
    }

    const long long n_tok = (long long)s->B * s->H * s->T;
    const unsigned blocks = (unsigned)((n_tok + LA_OUT_WARPS - 1) / LA_OUT_WARPS);
    const float scale = 1.0f / sqrtf((float)s->dk);
    const Tin *q = (const Tin *)io->in[0];
    Tin *o = (Tin *)io->out;
    const bool out_vec = LA_CONTRACT_VEC && (s->dv % 4 == 0) && (32 % (s->dv / 4) == 0);
    if (out_vec)
        contract_kernel<Tin, true><<<blocks, LA_OUT_WARPS * 32, 0, stream>>>(
            q, st->d_S, o, n_tok, s->dk, s->dv, scale);
    else
        contract_kernel<Tin, false><<<blocks, LA_OUT_WARPS * 32, 0, stream>>>(
            q, st->d_S, o, n_tok, s->dk, s->dv, scale);
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

extern "C" int linear_attn_naive_cumsum_run(void *state, const io_t *io, cudaStream_t stream) {
    const la_state_t *st = (const la_state_t *)state;
    if (!st) BENCH_FAIL("linear_attn/naive_cumsum: run without setup");
    switch (st->s.dtype) {
    case DTYPE_BF16: return la_run_typed<__nv_bfloat16>(st, io, stream);
    case DTYPE_F16: return la_run_typed<__half>(st, io, stream);
    case DTYPE_F32: return la_run_typed<float>(st, io, stream);
    }
    BENCH_FAIL("linear_attn/naive_cumsum: unknown dtype %d", (int)st->s.dtype);
}

/* "cumsum chunks=8 state_vec=1 out_vec=1": every token's state in HBM, the reduce-then-scan's
 * chunks of LA_CHUNK tokens, and whether the scan / contraction run their float4 copies. */
extern "C" void linear_attn_naive_cumsum_config(const void *state, char *buf, size_t len) {
    const la_state_t *st = (const la_state_t *)state;
    if (!len) return;
    buf[0] = 0;
    if (!st) return;
    const int dv = st->s.dv;
    const bool state_vec = LA_STATE_VEC && (dv % 4 == 0); /* la_run_typed's choices */
    const bool out_vec = LA_CONTRACT_VEC && (dv % 4 == 0) && (32 % (dv / 4) == 0);
    snprintf(buf, len, "cumsum chunks=%d state_vec=%d out_vec=%d%s", st->n_chunks,
             state_vec ? 1 : 0, out_vec ? 1 : 0, st->train ? " suffix_states=1" : "");
}

/* ---- the backward ----------------------------------------------------------------------------
 * Through materialised prefix AND suffix sums, as naive as the forward and no more:
 *   dQ_t = (1/sqrt(dk)) S_t dO_t           S_t: the forward's states, kept (never overwritten)
 *   R_s  = sum_{t>=s} q_t^T dO_t           every token's suffix state in HBM (d_R, fp32), by
 *                                          the forward's reduce-then-scan run backwards in time
 *   dK_s = (1/sqrt(dk)) R_s v_s,  dV_s = (1/sqrt(dk)) k_s R_s    one pass reading R once
 * Stages (--breakdown): dq, suffix_totals, suffix_carry (both empty when T <= one chunk),
 * suffix_states, dkdv.  Bytes, LM shape: S read 17.2 GB, R written 17.2 GB and read 17.2 GB,
 * ~52 GB -> ~17-19 ms predicted on an H100 (the forward: ~34 GB, 13.5 ms); not yet measured.
 * Workspace in training: S and R, 34.4 GB at the LM shape. */
extern "C" const char *const linear_attn_naive_cumsum_bwd_stage_names[] = {
    "dq", "suffix_totals", "suffix_carry", "suffix_states", "dkdv", NULL};
enum { LAB_DQ, LAB_TOTALS, LAB_CARRY, LAB_STATES, LAB_DKDV, LAB_N };

template <typename Tin>
static int la_bwd_stage_typed(const la_state_t *st, const io_t *io, const grad_io_t *g,
                              int stage, cudaStream_t stream) {
    const shape_t *s = &st->s;
    const Tin *q = (const Tin *)io->in[0], *k = (const Tin *)io->in[1];
    const Tin *v = (const Tin *)io->in[2], *dO = (const Tin *)g->dy;
    const int dkdv = s->dk * s->dv, BH = s->B * s->H;
    const int n_tiles = (dkdv + LA_TILE - 1) / LA_TILE;
    const unsigned scan_blocks = (unsigned)((long long)BH * st->n_chunks * n_tiles);
    const size_t smem = (size_t)LA_SUB * (s->dk + s->dv) * sizeof(float);
    const bool state_vec = LA_STATE_VEC && (s->dv % 4 == 0);
    const long long n_tok = (long long)BH * s->T;
    const unsigned out_blocks = (unsigned)((n_tok + LA_OUT_WARPS - 1) / LA_OUT_WARPS);
    const bool out_vec = LA_CONTRACT_VEC && (s->dv % 4 == 0) && (32 % (s->dv / 4) == 0);
    const float scale = 1.0f / sqrtf((float)s->dk);
    switch (stage) {
    case LAB_DQ:
        if (out_vec)
            bwd_contract_kernel<Tin, true, false><<<out_blocks, LA_OUT_WARPS * 32, 0, stream>>>(
                st->d_S, dO, nullptr, (Tin *)g->grad[0], nullptr, n_tok, s->dk, s->dv, scale);
        else
            bwd_contract_kernel<Tin, false, false><<<out_blocks, LA_OUT_WARPS * 32, 0, stream>>>(
                st->d_S, dO, nullptr, (Tin *)g->grad[0], nullptr, n_tok, s->dk, s->dv, scale);
        break;
    case LAB_TOTALS: /* R's chunk totals (reversed time) into the carry */
        if (st->n_chunks <= 1) return 0;
        if (state_vec)
            chunk_state_kernel<Tin, true, false, true><<<scan_blocks, LA_THREADS, smem, stream>>>(
                q, dO, st->d_carry, st->d_R, s->T, s->dk, s->dv, st->n_chunks, n_tiles);
        else
            chunk_state_kernel<Tin, false, false, true><<<scan_blocks, LA_THREADS, smem, stream>>>(
                q, dO, st->d_carry, st->d_R, s->T, s->dk, s->dv, st->n_chunks, n_tiles);
        break;
    case LAB_CARRY: {
        if (st->n_chunks <= 1) return 0;
        const long long n_cols = (long long)BH * dkdv;
        carry_scan_kernel<<<(unsigned)((n_cols + 255) / 256), 256, 0, stream>>>(
            st->d_carry, st->n_chunks, dkdv, n_cols);
        break;
    }
    case LAB_STATES: {
        float *carry = st->n_chunks > 1 ? st->d_carry : nullptr;
        if (state_vec)
            chunk_state_kernel<Tin, true, true, true><<<scan_blocks, LA_THREADS, smem, stream>>>(
                q, dO, carry, st->d_R, s->T, s->dk, s->dv, st->n_chunks, n_tiles);
        else
            chunk_state_kernel<Tin, false, true, true><<<scan_blocks, LA_THREADS, smem, stream>>>(
                q, dO, carry, st->d_R, s->T, s->dk, s->dv, st->n_chunks, n_tiles);
        break;
    }
    case LAB_DKDV:
        if (out_vec)
            bwd_contract_kernel<Tin, true, true><<<out_blocks, LA_OUT_WARPS * 32, 0, stream>>>(
                st->d_R, v, k, (Tin *)g->grad[1], (Tin *)g->grad[2], n_tok, s->dk, s->dv, scale);
        else
            bwd_contract_kernel<Tin, false, true><<<out_blocks, LA_OUT_WARPS * 32, 0, stream>>>(
                st->d_R, v, k, (Tin *)g->grad[1], (Tin *)g->grad[2], n_tok, s->dk, s->dv, scale);
        break;
    default: BENCH_FAIL("linear_attn/naive_cumsum: no backward stage %d", stage);
    }
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

extern "C" int linear_attn_naive_cumsum_run_bwd_stage(void *state, const io_t *io,
                                                      const grad_io_t *g, int stage,
                                                      cudaStream_t stream) {
    const la_state_t *st = (const la_state_t *)state;
    if (!st || !st->train)
        BENCH_FAIL("linear_attn/naive_cumsum: backward without a training setup");
    switch (st->s.dtype) {
    case DTYPE_BF16: return la_bwd_stage_typed<__nv_bfloat16>(st, io, g, stage, stream);
    case DTYPE_F16: return la_bwd_stage_typed<__half>(st, io, g, stage, stream);
    case DTYPE_F32: return la_bwd_stage_typed<float>(st, io, g, stage, stream);
    }
    BENCH_FAIL("linear_attn/naive_cumsum: unknown dtype %d", (int)st->s.dtype);
}

extern "C" int linear_attn_naive_cumsum_run_bwd(void *state, const io_t *io, const grad_io_t *g,
                                                cudaStream_t stream) {
    for (int i = 0; i < LAB_N; i++)
        if (linear_attn_naive_cumsum_run_bwd_stage(state, io, g, i, stream)) return -1;
    return 0;
}

/* Each stage's FLOPs (2 a MAC) and fewest bytes: what it must read and write once. */
extern "C" void linear_attn_naive_cumsum_bwd_stage_cost(const shape_t *s, int stage,
                                                        double *flops, double *bytes) {
    const double tok = (double)s->B * s->H * s->T, dkdv = (double)s->dk * s->dv;
    const double esz = (double)dtype_size(s->dtype), states = tok * dkdv * 4;
    const double chunks = la_chunks(s) > 1 ? (double)s->B * s->H * la_chunks(s) * dkdv * 4 : 0;
    *flops = 0;
    switch (stage) {
    case LAB_DQ: *flops = 2 * tok * dkdv; *bytes = states + tok * (s->dv + s->dk) * esz; break;
    case LAB_TOTALS:
        *flops = chunks ? 2 * tok * dkdv : 0;
        *bytes = chunks ? tok * (s->dk + s->dv) * esz + chunks : 0;
        break;
    case LAB_CARRY: *bytes = 2 * chunks; break;
    case LAB_STATES:
        *flops = 2 * tok * dkdv;
        *bytes = tok * (s->dk + s->dv) * esz + chunks + states;
        break;
    default: *flops = 4 * tok * dkdv; *bytes = states + tok * 2 * (s->dk + s->dv) * esz; break;
    }
}
