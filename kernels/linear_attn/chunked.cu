/* linear_attn/chunked: CHELA's "tiled" (chunked, hardware-efficient) linear attention, with the
 * chunk states combined by a scan over segments so that B*H = 1 still fills the GPU.
 *
 *   o_t = (q_t / sqrt(dk)) . S_t,   S_t = sum_{s<=t} k_s^T v_s   (causal; s over all T if not)
 *
 * Chunks of C = 64 tokens (chela-spec.md): with the state S (dk x dv, fp32) entering chunk i,
 *   O_[i] = Q_[i] S + ((Q_[i] K_[i]^T) (.) causal mask) V_[i],   then   S += K_[i]^T V_[i].
 * Layouts (op.h): q,k [B,H,T,dk], v,o [B,H,T,dv], run dtype.  dk in {64,128}; dv a multiple of
 * 64 up to 2048.  A block owns one (b*H+h, segment, dv slice of 64 columns) and a dk x 64 fp32
 * state; slice index fastest in blockIdx.x, so the dv/64 blocks that re-read one segment's q and
 * k run side by side and L2 serves the re-reads (CHELA: dv = 2048 -> 32 slices).
 *
 * The three passes (every version):
 *   pass A  state kernel: block (bh, part, slice) sums dS = K^T V over one part of a segment
 *           (stored transposed, [B*H][nseg_ws*sub][dv][dk] fp32 in the workspace) for the
 *           segments whose state someone needs: 0..nseg-2 when causal, all when not; each
 *           such segment is split into `sub` parts so that pass A fills the GPU too (v4).
 *           Skipped when nseg_ws == 0.
 *   pass B  scan kernel: per (bh, state element), an in-place inclusive scan over the parts,
 *           float4-coalesced along the element index, the running sum stored after each
 *           segment's last part into slot j: ws[j] then holds the state entering segment j+1
 *           (causal) and ws[nseg-1] the whole sum (not causal).  Skipped when there is one
 *           part in all.
 *   pass C  output kernel: block (bh, seg, slice) starts from its segment's incoming state and
 *           walks its chunks (causal: the chunk recurrence above; not causal: O = Q S only).
 *   norm    (only through linear_attn_chunked_launch with rms_norm; the variant never norms)
 *           o_t / sqrt(mean_j o_tj^2 + eps) needs a row reduction over all dv/64 slice blocks.
 *           Scheme: partial sums, no atomics.  Pass C writes the unnormalised o and each slice
 *           block's per-row sum of squares (fp32, from the fp32 accumulators) to a
 *           [dv/64][B*H*T] buffer; a second pass (rmsnorm kernel, one warp per row) adds the
 *           partials and rescales o in place: + 2*|o| + 4*B*H*T*dv/64 HBM bytes, and o is
 *           rounded twice (fp32 -> dtype -> scaled -> dtype).  When dv == 64 (one slice) v2
 *           fuses the norm into pass C instead (block-level reduction, no extra bytes, one
 *           rounding).
 *
 * Segment length (host plan, lac_make_plan): nseg = 1 when B*H*dv/64 >= 1.5 x SMs (no pass A or
 * B at all); otherwise the fewest segments within 5 % of the best waves/nseg for the measured
 * occupancy counted at most LAC_PLAN_BPS = 2 blocks an SM (v5), subject to L >= L_min, the length
 * at which one pass over the state workspace costs at most 1/32 of the segment's q,k,v,o bytes:
 * L_min = 1024 for dk = dv = 64, 3904 for dk = 128, dv = 2048.  Plans on an H100 (132 SMs; 3
 * resp. 2 pass-C blocks fit an SM), 65536 tokens per point: LM shape (H 16, dk = dv = 64):
 * T <= 4k nseg 1; 8k, 16k, 32k, 64k -> nseg 2, 4, 8, 16 (L = 4096, 256 blocks; v4 counted 3
 * blocks an SM: 3, 6, 12, 24 segments of 2752, 384 blocks).  CHELA shape (H 1, dk 128, dv 2048): T <= 8k nseg 1 (256+ blocks);
 * 16k, 32k, 64k -> nseg 2, 4, 8 (L = 8192, 256 blocks).  --set la_seg=<tokens> overrides.
 * Pass A parts (v4): where pass A's blocks would give the SMs fewer than 1.5 each, each needed
 * segment is split into the parts that the waves/n cost picks on pass A's occupancy, within
 * the same workspace bound (--set la_sub=<n> overrides).  H100: CHELA head 16k -> 3 parts,
 * 32k -> 2, elsewhere 1.  The variant's config column reports each plan (version, segment
 * length, parts, PDL).
 * Launches (v4): every pass after a plan's first is launched with programmatic dependent launch
 * and waits (griddepcontrol.wait) before its first read; --set la_pdl=0 launches them plainly.
 *
 * Settings (harness/variants.c; resolved once at setup into lac_opts, nothing reads the
 * environment): la_version=1|2|3|6 picks the version (auto: LAC_DEFAULT_VERSION = 6, which runs
 * where it applies: causal with dv >= 128, 16-bit, an sm_90a build on a cc 9.0 GPU; else v3
 * where that applies and v2 elsewhere); fp32 always runs v1.  la_seg=<tokens> forces the
 * segment length (rounded up to a multiple of 64).  The exported launchers (the CHELA layer)
 * always plan with every setting auto.
 *
 * ---- version index ---------------------------------------------------------------------------
 *
 * v1 (la_version=1; also the fp32 path).  The obviously-correct rung, CUDA cores only,
 *   same passes and workspace layout as v2.  A block is 64 threads, thread j owning value column
 *   slice*64 + j and its state column S[:, j] (dk fp32 registers).  Tokens go through shared
 *   memory 16 at a time as fp32; per token the thread does S[:,j] += k_t v_tj (causal) then
 *   o_tj = q_t . S[:,j] / sqrt(dk): the per-token recurrence, no chunk algebra at all.
 *   Predicted cost: the recurrence is 2*dk*dv FMAs per token (pass A adds dk*dv): LM shape
 *   (2^20 token-heads, dk = dv = 64) 8.6 G FMA in pass C + 4.3 G in pass A ~ 0.4 ms at ~33 TFMA/s
 *   fp32 if the FMA pipe were saturated, which one-column-per-thread with smem broadcasts will
 *   not do: expect ~1-2 ms.  CHELA (dk = 128, dv = 2048, 65536 tokens): 34 G + 17 G FMA
 *   -> ~2-4 ms.  Bytes as v2.  measured: not yet.
 *
 * v2 (default).  Tensor cores, mma.sync m16n8k16 (bf16/fp16 in, fp32 accumulate) fed by ldmatrix
 *   from padded shared memory (row pitch + 16 B: conflict-free ldmatrix), cp.async double
 *   buffering of the next chunk's q,k,v (zero-filled past T).  128 threads = 4 warps; warp w owns
 *   value rows 16w..16w+15 of the slice and keeps the TRANSPOSED state S^T (16 x dk fp32,
 *   dk/4 registers per thread) as mma accumulators, so that the accumulator layout is already
 *   the A-operand layout of the next product (the FlashAttention-2 register trick):
 *     step 1  A = mask(Q K^T) / sqrt(dk), 64 x 64 -> smem; warp w computes rows 16w..16w+15,
 *             only the n-tiles left of the diagonal (causal half skipped).
 *     step 2  O^T = (S^T / sqrt(dk)) Q^T        (A from registers, B = Q via ldmatrix)
 *             O^T += V^T A^T                    (V^T via ldmatrix.trans, A^T = rows of A;
 *                                               k-steps above the diagonal skipped)
 *             S^T += V^T K                      (K via ldmatrix.trans; after O used the old S)
 *     step 3  O^T staged through smem as dtype, written as 16-byte rows (128 B per row/slice).
 *   Numerics.  The state accumulates in fp32.  Rounding it to bf16 as the operand of Q S (what
 *   FLA does) and A to bf16 cost ~2.5x the error of the output rounding: modelled max_rel_err
 *   (verify.c's |got-ref| / max(|ref|, rms)) 1.1-1.3e-2 at T >= 1k, 1.0e-2 at T = 64, over the
 *   harness's 1e-2 bf16 tolerance.  So for bf16 inputs (switches at the top):
 *     LAC_A_F16 = 1       A is stored as fp16 (2^-11) and multiplied by V^T converted to fp16
 *                         in registers (exact for |v| in fp16's normal range), free;
 *     LAC_STATE_HILO = 1  the Q S operand is S = hi + lo (two bf16, ~2^-16): 2x the Q S MMAs.
 *   With both, the modelled max_rel_err is 3.9e-3 at every T, the same as a pure-fp32 kernel
 *   whose output is rounded to bf16 (bf16's unit roundoff 2^-8 is the floor).  fp16 inputs keep
 *   A and S in fp16 (1.1-1.5e-3); note |S|/sqrt(dk) > 65504 would overflow there.
 *   Shared memory per block: pass C 107,520 B (dk 128) / 74,752 B (dk 64) -> 2 / 3 blocks per
 *   SM; pass A 53,248 / 36,864.  MMAs per 64-token chunk and slice, bf16: pass C 1008 (dk 128)
 *   / 544 (dk 64) (fp16, or HILO = 0: 752 / 416); pass A 256 / 128.
 *   Predicted cost, H100, 65536 tokens per point, bf16, causal (mma.sync at ~450 TFLOP/s):
 *   - LM shape (H 16, dk = dv = 64): ideal bytes 537 MB (0.18 ms at 3.0 TB/s); 37 GFLOP of mma
 *     in pass C, under the memory time.  nseg = 1 (T <= 4k): ~0.20 ms.  nseg > 1 (T >= 8k):
 *     pass A re-reads k and v (+268 MB, +8.6 GFLOP) and the workspace adds ~4 x 6 MB
 *     -> ~830 MB -> ~0.28-0.30 ms (target 0.30).
 *   - CHELA shape (H 1, dk 128, dv 2048): ideal 570 MB (0.19 ms).  Pass C: 135 GFLOP of mma
 *     (the per-slice recompute of Q K^T is 16 % of it, HILO 25 %) -> ~0.30 ms, compute-bound;
 *     q,k re-reads by the 32 slices come from L2.  nseg > 1 (T >= 16k) adds pass A: 285 MB of
 *     k,v + 34 GFLOP ~ 0.1 ms -> ~0.40 ms (target 0.40); T <= 8k ~0.30 ms.  LAC_STATE_HILO=0
 *     would save ~0.07 ms but fails the 1e-2 tolerance (above).
 *   The k,v re-read of pass A (+50 % bytes whenever nseg > 1) and the hi/lo MMAs are the gaps
 *   to the floor.  Ideas for a v3: fuse A and C with a decoupled look-back (ticket-ordered
 *   segments, published states, k,v re-read from L2 or kept in smem); fp16 state with a
 *   per-warp power-of-two scale (q converted to fp16 in smem) instead of hi/lo.
 *   Checked on the CPU (no GPU here) by running these very kernels under an emulation of
 *   ldmatrix / mma / cp.async / shuffles against a double reference: causal and not, dk 64/128,
 *   dv 64..2048, T = 1..640 with tails, 1..5 segments, fused and two-pass RMSNorm, bf16/fp16/fp32.
 *   measured (H100, 2026-11-23, 65536 tokens per point, bf16 causal): LM shape 0.20-0.31 ms
 *   (1.12-1.72x the 0.179 ms floor); CHELA head 0.55-0.56 ms at T <= 8k and 0.69-0.74 ms at
 *   16k-64k (2.9-3.9x the 0.192 ms floor), 135 GFLOP at ~240 TFLOP/s.  Nsight Compute at the
 *   CHELA head, T = 4k: tensor pipe 40 %, issue slots 35 %, L1/shared 53 %, L2 37 %, DRAM 24 %,
 *   7.6 warps per SM (2 blocks x 4): no unit near its limit, latency-bound.
 *
 * v3 (default where it applies: causal, dv >= 128, bf16/fp16).  What v2's CHELA head numbers
 *   pointed at: per chunk and 64-column slice, 160 of the 1008 MMAs recompute Q K^T (the same
 *   for all 32 slices) behind a barrier whose wait is set by warp 3 (4x warp 0's share of the
 *   causal triangle), and 256 are the lo half of the hi/lo state.  v3 removes both:
 *   - a prep kernel computes A = mask(Q K^T)/sqrt(dk) once per chunk (fp16, 8 KB per chunk in
 *     the workspace: 8 MB per 65536 tokens, read by the slices from L2) and, for bf16, q as
 *     fp16 (q16);
 *   - pass C loads A with the chunk (cp.async into an XOR-swizzled 64 x 64 tile, so two stages
 *     still fit two blocks per SM: 114,688 B) and multiplies q16 by the state in fp16 after a
 *     per-row power-of-two scale (row max of |S|/sqrt(dk) into [2^14, 2^15); exact to undo):
 *     fp16's 2^-12 rounding, no lo half.  MMAs per chunk and slice: 592 (from 1008), one barrier
 *     fewer.  Pass A (segment states) and the scan are v2's.
 *   Predicted, CHELA head: if the MMA rate held, 0.56 x 592/1008 = 0.33 ms at T <= 8k, plus the
 *   prep pass (~60 MB, ~0.02 ms); less well if the kernel stays latency-bound, as ncu says:
 *   ~0.35-0.40 ms.  From 16k pass A adds its ~0.15 ms: ~0.50 ms.  Error: as v2 (fp16 S's
 *   2^-12 is under the output's bf16 rounding).  LM shape (dv = 64): unchanged, v2 runs.
 *   ptxas (sm_90): pass C 247 regs (dk 128) / 187 (dk 64), no spills; prep 56-69 regs.
 *   measured (H100, 2026-11-23): CHELA head 0.399-0.402 ms at T = 1k..8k (v2 0.554-0.571 in
 *   the same run, 1.39-1.42x faster), 0.530 / 0.561 / 0.575 ms at 16k / 32k / 64k (v2 0.688 /
 *   0.723 / 0.737); max_rel_err 4.0-4.3e-3 (v2 3.9-4.2e-3).  The prediction held at the upper
 *   end: time fell 28 % for 41 % fewer MMAs, the kernel is still latency-bound.  Bytes rose by
 *   the prep pass: hbm_ratio 1.09-1.12 at T <= 8k (v2 0.98-1.00).
 *
 * v4 (kernels as v3, plan and launches changed; profiles/NOTES.md "Session 5").
 *   - Pass A in parts: where its blocks give the SMs fewer than 1.5 each, each needed segment's
 *     state is summed by several blocks and the scan adds the parts.  Predicted -0.07 / -0.09
 *     ms at the CHELA head 16k / 64k; measured -0.026 at 16k (0.528 -> 0.502) and -0.017 at 32k,
 *     and splitting at 64k (a second wave) or at the LM shape (not latency-bound) cost +0.014-
 *     0.04, hence the 1.5-an-SM rule (fitted to that run).
 *   - Programmatic dependent launch for every pass after the first: -0.8 to -1.5 % where there
 *     are three or four passes, within the spread at T <= 4k.
 *   - v_bias (CHELA's V = SiLU(V' + bv), applied to the V^T fragments after ldmatrix) in pass A
 *     and in the gated copies of pass C: the layer loses its qkv_act V pass (-0.26 ms) for
 *     +0.03 ms here.
 *   Measured (H100, aba0724): CHELA head 0.399 / 0.400 / 0.404 / 0.402 / 0.499 / 0.543 / 0.575
 *   ms at T = 1k..64k; LM shape 0.204 / 0.257 / 0.203 / 0.272 / 0.290 / 0.300 / 0.306.
 * v5 (this file; kernels as v4, the segment rule changed; profiles/NOTES.md "Session 6").  The
 *   rule's waves count at most 2 resident pass-C blocks an SM (LAC_PLAN_BPS): a third block on
 *   an SM shares its throughput instead of adding any.  A segment sweep at the LM shape
 *   measured 384 blocks (~3 an SM) 0.305 / 0.315 ms at 32k / 64k, 256 (~2) 0.290 / 0.297, 128
 *   (1) 0.374 / 0.391.  LM plans 8k..64k: 2, 4, 8, 16 segments of 4096 tokens (256 blocks).
 *   Measured (H100, aebb5cc and again beside naive_cumsum): LM shape 0.204 / 0.258 / 0.203 /
 *   0.256 / 0.281 / 0.288 / 0.295 ms (<= 0.30 at every T); CHELA head unchanged (its kernel fits
 *   2 an SM already): 0.402 / 0.402 / 0.402 / 0.403 / 0.501 / 0.544 / 0.573.
 * v6 (default on an sm_90a build on cc 9.0; kernels/linear_attn_wgmma.cu, profiles/NOTES.md
 *   "Session 7").  Where v3 applies, its passes A and C on Hopper's warpgroup MMA (wgmma):
 *   v3's warps each read the chunk's q16, k and A through ldmatrix (4x the shared-memory
 *   traffic of one warpgroup read) and issued 16x8x16 pieces that 8 warps an SM could not keep
 *   busy.  The prep writes each chunk's q16, A and k^T in wgmma's canonical B layout (40 KB a
 *   chunk at dk 128), fetched by one bulk copy on an mbarrier; the state and V^T stay the
 *   A operand in registers (v3's fragments); O is staged with stmatrix; pass A is the state
 *   update alone, 4 chunks in flight.  Predicted (pass C, T <= 8k): ~0.25-0.30 ms, the MMA time
 *   falling ~3x but the per-chunk scalar work (state to fp16, V^T, the store) staying.
 *   Measured (H100): CHELA head 0.274 / 0.272 / 0.269 / 0.273 / 0.339 / 0.381 / 0.393 ms at
 *   T = 1k..64k (v3 in the same session 0.40-0.57); the layer's gated copy 0.54 ms at T <= 8k
 *   (v3 0.59).  ptxas (sm_90a): pass C 225 registers (gated copy 255, 12 B spill), pass A 135,
 *   prep 60; no spills elsewhere.
 *
 * Build hooks: LAC_KERNELS_ONLY compiles the kernels without the host code and LAC_EMULATE
 * expects the device primitives (ldmatrix, mma, cp.async, shuffles) from an includer that runs
 * the kernels on the CPU for checking index algebra without a GPU.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef LAC_EMULATE
#include "common/mma_sync.cuh"
#endif
#include <string.h>

#include "linear_attn/args.h"
#include "linear_attn/plan.h" /* LAC_C, LAC_DVS, LAC_DEFAULT_VERSION */

#ifndef LAC_KERNELS_ONLY
#include "bench_check.h"
#include "linear_attn/chunked.h"
#include "linear_attn/v6_wgmma.h"
#include "common/pdl_launch.cuh"
#include "variant.h"

extern "C" {
DECLARE_VARIANT(linear_attn_chunked);
}
#endif

#ifndef LAC_STATE_HILO
#define LAC_STATE_HILO 1      /* v2 bf16: Q S with S split into bf16 hi + lo (two MMAs)      */
#endif
#ifndef LAC_A_F16
#define LAC_A_F16 1           /* v2 bf16: A = mask(Q K^T) kept as fp16, V^T converted to fp16 */
#endif
#define LAC_WARPS 4           /* v2: warps per block, each owning 16 value rows of S^T      */
#define LAC_THREADS 128       /* v2: threads per block                                      */
#define LAC_PAD 8             /* v2: smem row padding in 16-bit elements (16 B)             */
#define LAC_V1_TILE 16        /* v1: tokens staged in shared memory at a time               */
#define LAC_SCAN_THREADS 256
#define LAC_NORM_ROWS 8       /* rmsnorm: rows (warps) per block                            */

/* Kernels and helpers have internal linkage: other variants in the binary have their own. */
namespace {

static_assert(LAC_C == 16 * LAC_WARPS && LAC_DVS == 16 * LAC_WARPS, "v2 warp tiling");
static_assert(LAC_THREADS == 32 * LAC_WARPS, "v2 block size");

/* ---- device primitives ----------------------------------------------------------------------
 * ldmatrix / mma / cp.async as inline PTX.  lac_saddr is a shared-memory address as the
 * instructions take it (32 bits on the device). */
#ifndef LAC_EMULATE
typedef uint32_t lac_saddr;
#define LAC_DYNAMIC_SMEM(name) extern __shared__ __align__(16) unsigned char name[]

__device__ __forceinline__ lac_saddr lac_sa(const void *p) { return smem_u32(p); }
/* 16-byte global->shared copy; src_bytes = 0 zero-fills the destination (rows past T). */
__device__ __forceinline__ void lac_cp_async16(lac_saddr dst, const void *src, int src_bytes) {
    cp_async16(dst, src, src_bytes);
}
__device__ __forceinline__ void lac_cp_async_commit() { cp_async_commit(); }
__device__ __forceinline__ void lac_cp_async_wait_all() { cp_async_wait<0>(); }
/* ldmatrix and mma.sync come from mma_sync.cuh (fragment layouts there). */
__device__ __forceinline__ void lac_ldsm_x4(uint32_t r[4], lac_saddr addr) { ldsm_x4(r, addr); }
__device__ __forceinline__ void lac_ldsm_x4_trans(uint32_t r[4], lac_saddr addr) {
    ldsm_x4_trans(r, addr);
}
template <bool BF16>
__device__ __forceinline__ void lac_mma(float d[4], const uint32_t a[4], uint32_t b0,
                                        uint32_t b1) {
    mma_16816<BF16>(d, a, b0, b1);
}
__device__ __forceinline__ float lac_shfl_xor(float x, int mask) {
    return __shfl_xor_sync(0xffffffffu, x, mask);
}
/* Brings one 128-byte line toward L2 without waiting for it (no register is written). */
__device__ __forceinline__ void lac_prefetch_l2(const void *p) {
    asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p));
}
/* Programmatic dependent launch: a kernel launched with the PDL attribute (lac_launch) may be
 * scheduled while the kernel before it drains; it waits here, before reading anything that
 * kernel wrote, until that kernel has completed and its writes are visible.  A no-op when
 * launched without the attribute, and below sm_90. */
__device__ __forceinline__ void lac_grid_dep_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}
#else
__device__ __forceinline__ void lac_prefetch_l2(const void *) {}
__device__ __forceinline__ void lac_grid_dep_wait() {}
#endif /* LAC_EMULATE */

__host__ __device__ __forceinline__ int lac_min(int a, int b) { return a < b ? a : b; }

/* ---- dtype helpers: bf16 / fp16 travel as raw 16-bit words ----------------------------------- */
template <bool BF16> __device__ __forceinline__ uint16_t lac_cvt(float x) {
    if (BF16) return __bfloat16_as_ushort(__float2bfloat16_rn(x));
    return __half_as_ushort(__float2half_rn(x));
}
template <bool BF16> __device__ __forceinline__ float lac_f32(uint16_t b) {
    if (BF16) return __uint_as_float((uint32_t)b << 16);
    return __half2float(__ushort_as_half(b));
}
/* (lo, hi) -> one 32-bit register, lo in the low half: the order mma fragments use. */
template <bool BF16> __device__ __forceinline__ uint32_t lac_pack(float lo, float hi) {
    return (uint32_t)lac_cvt<BF16>(lo) | ((uint32_t)lac_cvt<BF16>(hi) << 16);
}
/* A pair of fp32 values as bf16 hi + bf16 lo (x ~ hi + lo to ~2^-16 relative). */
__device__ __forceinline__ void lac_split_bf16(float x, float y, uint32_t &hi, uint32_t &lo) {
    const uint16_t hx = lac_cvt<true>(x), hy = lac_cvt<true>(y);
    hi = (uint32_t)hx | ((uint32_t)hy << 16);
    lo = lac_pack<true>(x - lac_f32<true>(hx), y - lac_f32<true>(hy));
}
/* bf16x2 -> fp16x2 (exact for |x| in fp16's normal range). */
__device__ __forceinline__ uint32_t lac_bf16x2_to_f16x2(uint32_t u) {
    return lac_pack<false>(__uint_as_float(u << 16), __uint_as_float(u & 0xffff0000u));
}
/* SiLU with the fast divide (the IEEE one costs ~10 instructions where this runs per element). */
__device__ __forceinline__ float lac_silu(float x) { return __fdividef(x, 1.0f + __expf(-x)); }

/* Storage per dtype_t value (0 fp32, 1 bf16, 2 fp16), for v1 and the norm pass. */
template <int DT> struct lac_io {
    typedef uint16_t s_t;
    static __device__ __forceinline__ float ld(s_t x) { return lac_f32<DT == 1>(x); }
    static __device__ __forceinline__ s_t st(float x) { return lac_cvt<DT == 1>(x); }
};
template <> struct lac_io<0> {
    typedef float s_t;
    static __device__ __forceinline__ float ld(float x) { return x; }
    static __device__ __forceinline__ float st(float x) { return x; }
};

/* ============================================================================================
 * v1: CUDA cores, one value column per thread, per-token recurrence.
 * ========================================================================================== */

/* v1's read of v[row_off + j], through SiLU(v + v_bias[j]) rounded to the dtype when v_bias. */
template <int DT>
__device__ __forceinline__ float lac_v1_ld_v(const typename lac_io<DT>::s_t *d_v, int64_t row_off,
                                             int j, const lac_args &a) {
    const float x = lac_io<DT>::ld(d_v[row_off + j]);
    if (!a.v_bias) return x;
    return lac_io<DT>::ld(lac_io<DT>::st(lac_silu(x + a.v_bias[j])));
}

/* A pass-A block's place: grid = B*H*ws_per_bh*nslices (slice fastest); part u of (b,h)
 * covers chunks [c_begin, c_end) of segment u / sub (empty past the sequence's end). */
/* Grids of passes A and C: blockIdx.x = (bh * per_bh + idx) * nslices + slice, the slice
 * fastest so that the blocks re-reading one chunk's q and k run together. */
__device__ __forceinline__ void lac_grid_place(const lac_args &a, int per_bh, int &slice,
                                               int &idx, int64_t &bh) {
    slice = blockIdx.x % a.nslices;
    const int rest = blockIdx.x / a.nslices;
    idx = rest % per_bh;
    bh = rest / per_bh;
}

struct lac_part {
    int slice, u, c_begin, c_end;
    int64_t bh;
};
__device__ __forceinline__ lac_part lac_part_of(const lac_args &a) {
    lac_part k;
    lac_grid_place(a, a.ws_per_bh, k.slice, k.u, k.bh);
    const int nchunks = (a.T + LAC_C - 1) / LAC_C;
    const int seg = k.u / a.sub, part = k.u % a.sub;
    const int seg_end = lac_min((seg + 1) * a.seg_chunks, nchunks);
    k.c_begin = lac_min(seg * a.seg_chunks + part * a.sub_chunks, seg_end);
    k.c_end = lac_min(k.c_begin + a.sub_chunks, seg_end);
    return k;
}

/* Pass A.  grid = B*H*ws_per_bh*nslices, block = 64.  ws[bh][u][dv][dk] = (K_u^T V_u)^T. */
template <int DT, int DK>
__global__ void __launch_bounds__(LAC_DVS)
    lac_v1_state_kernel(const typename lac_io<DT>::s_t *__restrict__ d_k,
                        const typename lac_io<DT>::s_t *__restrict__ d_v,
                        float *__restrict__ d_states, lac_args a) {
    __shared__ float s_k[LAC_V1_TILE][DK];
    __shared__ float s_v[LAC_V1_TILE][LAC_DVS];
    const int j = threadIdx.x;
    const lac_part blk = lac_part_of(a);
    const int slice = blk.slice;
    const int64_t bh = blk.bh;
    const int64_t row0 = bh * a.T;
    const int t_begin = blk.c_begin * LAC_C;
    const int t_end = lac_min(blk.c_end * LAC_C, a.T);

    float s[DK];
#pragma unroll
    for (int c = 0; c < DK; ++c) s[c] = 0.f;

    for (int tt = t_begin; tt < t_end; tt += LAC_V1_TILE) {
        for (int i = j; i < LAC_V1_TILE * DK; i += LAC_DVS) {
            const int r = i / DK, c = i % DK, t = tt + r;
            s_k[r][c] = t < t_end ? lac_io<DT>::ld(d_k[(row0 + t) * DK + c]) : 0.f;
        }
        for (int i = j; i < LAC_V1_TILE * LAC_DVS; i += LAC_DVS) {
            const int r = i / LAC_DVS, c = i % LAC_DVS, t = tt + r;
            s_v[r][c] = t < t_end ? lac_v1_ld_v<DT>(d_v, (row0 + t) * a.dv, slice * LAC_DVS + c, a)
                                  : 0.f;
        }
        __syncthreads();
#pragma unroll 1
        for (int r = 0; r < LAC_V1_TILE; ++r) {
            const float vj = s_v[r][j];
#pragma unroll
            for (int c = 0; c < DK; ++c) s[c] += s_k[r][c] * vj;
        }
        __syncthreads();
    }
    float *dst = d_states + ((bh * a.ws_per_bh + blk.u) * a.dv + slice * LAC_DVS + j) * DK;
#pragma unroll
    for (int c = 0; c < DK; ++c) dst[c] = s[c];
}

/* Pass C.  grid = B*H*nseg*nslices, block = 64.  Writes o (unnormalised) and, when norm_mode
 * != 0, each row's sum of squares over this slice to rowpart[slice][row]. */
template <int DT, int DK, bool CAUSAL>
__global__ void __launch_bounds__(LAC_DVS)
    lac_v1_output_kernel(const typename lac_io<DT>::s_t *__restrict__ d_q,
                         const typename lac_io<DT>::s_t *__restrict__ d_k,
                         const typename lac_io<DT>::s_t *__restrict__ d_v,
                         typename lac_io<DT>::s_t *__restrict__ d_o,
                         const float *__restrict__ d_states, float *__restrict__ d_rowpart,
                         lac_args a) {
    __shared__ float s_q[LAC_V1_TILE][DK];
    __shared__ float s_k[LAC_V1_TILE][DK];
    __shared__ float s_v[LAC_V1_TILE][LAC_DVS];
    __shared__ float s_o[LAC_V1_TILE][LAC_DVS + 1]; /* +1: the row sums read down columns */
    const int j = threadIdx.x;
    const int slice = blockIdx.x % a.nslices;
    const int rest = blockIdx.x / a.nslices;
    const int seg = rest % a.nseg;
    const int64_t bh = rest / a.nseg;
    const int64_t row0 = bh * a.T;
    const int t_begin = seg * a.seg_chunks * LAC_C;
    const int t_end = lac_min(t_begin + a.seg_chunks * LAC_C, a.T);

    float s[DK];
    const int state_idx = CAUSAL ? seg - 1 : a.nseg_ws - 1;
    if (state_idx >= 0) {
        const float *src =
            d_states + ((bh * a.ws_per_bh + state_idx) * a.dv + slice * LAC_DVS + j) * DK;
#pragma unroll
        for (int c = 0; c < DK; ++c) s[c] = src[c];
    } else {
#pragma unroll
        for (int c = 0; c < DK; ++c) s[c] = 0.f;
    }

    for (int tt = t_begin; tt < t_end; tt += LAC_V1_TILE) {
        for (int i = j; i < LAC_V1_TILE * DK; i += LAC_DVS) {
            const int r = i / DK, c = i % DK, t = tt + r;
            const bool ok = t < t_end;
            s_q[r][c] = ok ? lac_io<DT>::ld(d_q[(row0 + t) * DK + c]) : 0.f;
            if (CAUSAL) s_k[r][c] = ok ? lac_io<DT>::ld(d_k[(row0 + t) * DK + c]) : 0.f;
        }
        if (CAUSAL) {
            for (int i = j; i < LAC_V1_TILE * LAC_DVS; i += LAC_DVS) {
                const int r = i / LAC_DVS, c = i % LAC_DVS, t = tt + r;
                s_v[r][c] = t < t_end
                                ? lac_v1_ld_v<DT>(d_v, (row0 + t) * a.dv, slice * LAC_DVS + c, a)
                                : 0.f;
            }
        }
        __syncthreads();
        for (int r = 0; r < LAC_V1_TILE; ++r) {
            if (CAUSAL) {
                const float vj = s_v[r][j];
#pragma unroll
                for (int c = 0; c < DK; ++c) s[c] += s_k[r][c] * vj;
            }
            float acc = 0.f;
#pragma unroll
            for (int c = 0; c < DK; ++c) acc += s_q[r][c] * s[c];
            s_o[r][j] = acc * a.scale;
        }
        __syncthreads();
        for (int i = j; i < LAC_V1_TILE * LAC_DVS; i += LAC_DVS) {
            const int r = i / LAC_DVS, c = i % LAC_DVS, t = tt + r;
            if (t < t_end)
                d_o[(row0 + t) * a.dv + slice * LAC_DVS + c] = lac_io<DT>::st(s_o[r][c]);
        }
        if (a.norm_mode != 0 && j < LAC_V1_TILE && tt + j < t_end) {
            float ss = 0.f;
            for (int c = 0; c < LAC_DVS; ++c) ss += s_o[j][c] * s_o[j][c];
            d_rowpart[(int64_t)slice * a.rows + row0 + tt + j] = ss;
        }
        __syncthreads();
    }
}

/* ============================================================================================
 * v2: tensor cores.  Fragment conventions (PTX ISA, mma.m16n8k16, gid = lane/4, tig = lane%4):
 *   A 16x16: reg0 = (row gid,   cols 2tig..+1)  reg1 = (row gid+8, cols 2tig..+1)
 *            reg2 = (row gid,   cols 2tig+8..)  reg3 = (row gid+8, cols 2tig+8..)
 *   B 16x8:  reg0 = (k 2tig..+1, col gid)       reg1 = (k 2tig+8..+9, col gid)
 *   C 16x8:  c0,c1 = (row gid, cols 2tig, 2tig+1)   c2,c3 = (row gid+8, same cols)
 * ldmatrix.x4 lane patterns (mi = lane/8 picks the matrix, r8 = lane%8 its row):
 *   P1: row (mi&1)*8 + r8, col (mi>>1)*8  -> an A fragment (non-trans), or the B fragments of
 *       n-tiles (j, j+1) from a [k][n] tile with .trans (matrices: (k lo, j) (k hi, j)
 *       (k lo, j+1) (k hi, j+1)).
 *   P2: row (mi>>1)*8 + r8, col (mi&1)*8  -> the B fragments of n-tiles (j, j+1) from an
 *       [n][k] tile (non-trans), or an A fragment from a [k][m] tile with .trans.
 * ========================================================================================== */

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
        lac_cp_async16(lac_sa(s + r * LDS + c), ok ? g + r * ld_g + c : g, ok ? 16 : 0);
    }
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
    lac_cp_async_commit();
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
            lac_ldsm_x4_trans(bf, lac_sa(sk + (16 * ks + p1_row) * LDK + 16 * jp + p1_col));
            lac_mma<BF16>(st[2 * jp], vt[ks], bf[0], bf[1]);
            lac_mma<BF16>(st[2 * jp + 1], vt[ks], bf[2], bf[3]);
        }
    }
}

/* V^T A-fragments of this warp's 16 value rows for the 4 k-steps (16 tokens each) of a chunk. */
__device__ __forceinline__ void lac_v2_load_vt(uint32_t vt[4][4], const uint16_t *sv, int warp,
                                               int p2_row, int p2_col) {
    constexpr int LDV = LAC_DVS + LAC_PAD;
#pragma unroll
    for (int ks = 0; ks < 4; ++ks)
        lac_ldsm_x4_trans(vt[ks], lac_sa(sv + (16 * ks + p2_row) * LDV + 16 * warp + p2_col));
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
            vt[ks][r] = lac_pack<BF16>(lac_silu(x), lac_silu(y));
        }
}
/* This lane's two biases (value rows gid and gid + 8 of warp w in the slice). */
__device__ __forceinline__ void lac_v_bias_of(const float *v_bias, int slice, int warp, int gid,
                                              float &b_lo, float &b_hi) {
    const float *b = v_bias + slice * LAC_DVS + 16 * warp + gid;
    b_lo = __ldg(b);
    b_hi = __ldg(b + 8);
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
        lac_cp_async_wait_all();
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

/* Epilogue helpers of the output kernels (v2, v3).  oacc[nt] holds O^T rows (gid, gid+8) of
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

/* A pass-C block's place: grid = B*H*nseg*nslices with the slice fastest (v2 and v3). */
struct lac_block {
    int slice, seg, nchunks, c_begin, c_end;
    int64_t bh, row0; /* (b*H + h) and its first token row */
};
__device__ __forceinline__ lac_block lac_block_of(const lac_args &a) {
    lac_block k;
    lac_grid_place(a, a.nseg, k.slice, k.seg, k.bh);
    k.nchunks = (a.T + LAC_C - 1) / LAC_C;
    k.c_begin = k.seg * a.seg_chunks;
    k.c_end = lac_min(k.c_begin + a.seg_chunks, k.nchunks);
    k.row0 = k.bh * a.T;
    return k;
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
            stsm_x4_trans(lac_sa(s_o + (8 * (nt + (mi >> 1)) + j) * LDO + 16 * warp + 8 * (mi & 1)),
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
                    /* fast divide: 1 + e^-g in (1, inf], where __fdividef is exact to 2 ulp
                     * up to 2^126 and gives 0 beyond (sigmoid(g) < 1e-38 there) */
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
     * both, the output error is the bf16 rounding of o alone (see the version index). */
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
        lac_cp_async_wait_all();
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
                lac_ldsm_x4(af, lac_sa(sq + (16 * warp + p1_row) * LDK + 16 * kk + p1_col));
#pragma unroll
                for (int jp = 0; jp < 4; ++jp) {
                    if (jp <= warp) { /* warp-uniform */
                        uint32_t bf[4];
                        lac_ldsm_x4(bf, lac_sa(sk + (16 * jp + p2_row) * LDK + 16 * kk + p2_col));
                        lac_mma<BF16>(sacc[2 * jp], af, bf[0], bf[1]);
                        lac_mma<BF16>(sacc[2 * jp + 1], af, bf[2], bf[3]);
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
                    lac_ldsm_x4(bf, lac_sa(sq + (16 * np + p2_row) * LDK + 16 * kk + p2_col));
                    lac_mma<BF16>(oacc[2 * np], af, bf[0], bf[1]);
                    lac_mma<BF16>(oacc[2 * np + 1], af, bf[2], bf[3]);
                    if (HILO) {
                        lac_mma<BF16>(oacc[2 * np], al, bf[0], bf[1]);
                        lac_mma<BF16>(oacc[2 * np + 1], al, bf[2], bf[3]);
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
                        lac_ldsm_x4(bf, lac_sa(s_a + (16 * p + p2_row) * LDA + 16 * ks + p2_col));
                        lac_mma<A_BF16>(oacc[2 * p], va[ks], bf[0], bf[1]);
                        lac_mma<A_BF16>(oacc[2 * p + 1], va[ks], bf[2], bf[3]);
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

/* ============================================================================================
 * v3: v2's pass C without the per-slice Q K^T and without the hi/lo state (causal, bf16 / fp16,
 * dv >= 128).  See the version index for the why and the numbers.
 *   prep kernel  block (bh, chunk): A = mask(Q K^T) / sqrt(dk) once per chunk, stored fp16
 *                [bh][chunk][64][64] in the workspace; for bf16 also q16 = fp16(q) [bh][T][dk]
 *                (exact for |q| in fp16's normal range; q below 2^-14 becomes subnormal, an
 *                absolute error under 2^-25).
 *   pass C       as v2 but loads A (cp.async, XOR-swizzled rows: no padding, conflict-free
 *                ldmatrix) instead of computing it, and multiplies q16 by the state rounded to
 *                fp16 after a per-row power-of-two scale that puts the row's largest |S|/sqrt(dk)
 *                in [2^14, 2^15): fp16's 2^-12 relative rounding instead of bf16 hi + lo.
 * ========================================================================================== */

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
    lac_cp_async_commit();
    lac_cp_async_wait_all();
    __syncthreads();

    float sacc[8][4];
#pragma unroll
    for (int j = 0; j < 8; ++j) sacc[j][0] = sacc[j][1] = sacc[j][2] = sacc[j][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < DK / 16; ++kk) {
        uint32_t af[4];
        lac_ldsm_x4(af, lac_sa(s_q + (16 * warp + p1_row) * LDK + 16 * kk + p1_col));
#pragma unroll
        for (int jp = 0; jp < 4; ++jp) {
            if (jp <= warp) {
                uint32_t bf[4];
                lac_ldsm_x4(bf, lac_sa(s_k + (16 * jp + p2_row) * LDK + 16 * kk + p2_col));
                lac_mma<BF16>(sacc[2 * jp], af, bf[0], bf[1]);
                lac_mma<BF16>(sacc[2 * jp + 1], af, bf[2], bf[3]);
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
        lac_cp_async16(lac_sa(sa + lac_swz64(r, c8)), ga + r * LAC_C + c8, 16);
    }
    lac_cp_async_commit();
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
        lac_cp_async_wait_all();
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
                    lac_ldsm_x4(bf, lac_sa(sq + (16 * np + p2_row) * LDK + 16 * kk + p2_col));
                    lac_mma<false>(oacc[2 * np], af, bf[0], bf[1]);
                    lac_mma<false>(oacc[2 * np + 1], af, bf[2], bf[3]);
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
                        lac_ldsm_x4(bf, lac_sa(sa + lac_swz64(16 * p + p2_row, 16 * ks + p2_col)));
                        lac_mma<false>(oacc[2 * p], va[ks], bf[0], bf[1]);
                        lac_mma<false>(oacc[2 * p + 1], va[ks], bf[2], bf[3]);
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

/* ============================================================================================
 * Shared passes.
 * ========================================================================================== */

/* Pass B: in-place inclusive scan over the ws_per_bh part states of a (b,h); after the last
 * part of segment j the running sum is stored to slot j (slot j <= every part index read so
 * far, so nothing unread is overwritten).  Thread = (bh, float4 of the dv*dk state): 4 loads
 * in flight before the dependent adds.  The sum order is fixed: results are deterministic. */
__global__ void __launch_bounds__(LAC_SCAN_THREADS)
    lac_scan_kernel(float4 *__restrict__ d_states, int64_t vec_per_seg, int64_t total,
                    int ws_per_bh, int sub) {
    lac_grid_dep_wait(); /* pass A's states */
    const int64_t i = (int64_t)blockIdx.x * LAC_SCAN_THREADS + threadIdx.x;
    if (i >= total) return;
    const int64_t bh = i / vec_per_seg, e = i % vec_per_seg;
    float4 *p = d_states + bh * ws_per_bh * vec_per_seg + e;
    float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
    for (int s = 0; s < ws_per_bh; s += 4) {
        float4 x[4];
#pragma unroll
        for (int u = 0; u < 4; ++u)
            if (s + u < ws_per_bh) x[u] = p[(int64_t)(s + u) * vec_per_seg];
#pragma unroll
        for (int u = 0; u < 4; ++u) {
            if (s + u < ws_per_bh) {
                acc.x += x[u].x;
                acc.y += x[u].y;
                acc.z += x[u].z;
                acc.w += x[u].w;
                if ((s + u + 1) % sub == 0) p[(int64_t)((s + u) / sub) * vec_per_seg] = acc;
            }
        }
    }
}

/* 8 consecutive elements <-> fp32 (16-bit types: one 16-byte access; fp32: two). */
template <int DT>
__device__ __forceinline__ void lac_ld8(const typename lac_io<DT>::s_t *p, float f[8]) {
    if (DT == 0) {
        const float4 a = reinterpret_cast<const float4 *>(p)[0];
        const float4 b = reinterpret_cast<const float4 *>(p)[1];
        f[0] = a.x, f[1] = a.y, f[2] = a.z, f[3] = a.w, f[4] = b.x, f[5] = b.y, f[6] = b.z,
        f[7] = b.w;
    } else {
        const uint4 u = *reinterpret_cast<const uint4 *>(p);
        const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            f[2 * e] = lac_f32<DT == 1>((uint16_t)(w[e] & 0xffffu));
            f[2 * e + 1] = lac_f32<DT == 1>((uint16_t)(w[e] >> 16));
        }
    }
}
template <int DT>
__device__ __forceinline__ void lac_st8(typename lac_io<DT>::s_t *p, const float f[8]) {
    if (DT == 0) {
        reinterpret_cast<float4 *>(p)[0] = make_float4(f[0], f[1], f[2], f[3]);
        reinterpret_cast<float4 *>(p)[1] = make_float4(f[4], f[5], f[6], f[7]);
    } else {
        uint4 u;
        u.x = lac_pack<DT == 1>(f[0], f[1]);
        u.y = lac_pack<DT == 1>(f[2], f[3]);
        u.z = lac_pack<DT == 1>(f[4], f[5]);
        u.w = lac_pack<DT == 1>(f[6], f[7]);
        *reinterpret_cast<uint4 *>(p) = u;
    }
}

/* RMSNorm over each row of o from the per-slice partial sums of squares, and optionally the
 * gate o *= sigmoid(g + g_bias) (CHELA's M = Norm(O) * sigmoid(Ga), fused here so that O is
 * read and written once more, not twice).  One warp per row, 8 elements a lane per access
 * (a warp moves 512 B of 16-bit o per instruction); dv is a multiple of 64. */
template <int DT, bool GATE, bool NORM = true>
__global__ void __launch_bounds__(32 * LAC_NORM_ROWS)
    lac_rmsnorm_kernel(typename lac_io<DT>::s_t *__restrict__ d_o,
                       const float *__restrict__ d_rowpart, int64_t rows, int dv, int nslices,
                       float eps, const typename lac_io<DT>::s_t *__restrict__ d_gate,
                       int64_t gate_ld, const float *__restrict__ gate_bias) {
    const int lane = threadIdx.x & 31;
    const int64_t row = (int64_t)blockIdx.x * LAC_NORM_ROWS + (threadIdx.x >> 5);
    if (row >= rows) return; /* whole warps leave together */
    float ss = 0.f;
    if (NORM)
        for (int s = lane; s < nslices; s += 32) ss += d_rowpart[(int64_t)s * rows + row];
#pragma unroll
    for (int m = 16; m >= 1; m >>= 1) ss += lac_shfl_xor(ss, m);
    const float r = NORM ? rsqrtf(ss / (float)dv + eps) : 1.0f; /* !NORM: the gate alone */
    typename lac_io<DT>::s_t *o = d_o + row * dv;
#pragma unroll 4
    for (int c = 8 * lane; c < dv; c += 256) {
        float f[8];
        lac_ld8<DT>(o + c, f);
        if (GATE) {
            float g[8];
            lac_ld8<DT>(d_gate + row * gate_ld + c, g);
#pragma unroll
            for (int e = 0; e < 8; ++e)
                f[e] = f[e] * r * (1.0f / (1.0f + __expf(-(g[e] + gate_bias[c + e]))));
        } else {
#pragma unroll
            for (int e = 0; e < 8; ++e) f[e] *= r;
        }
        lac_st8<DT>(o + c, f);
    }
}

} /* namespace */

/* ============================================================================================
 * Host side: device facts, launch, the variant and the exported launcher.  The decisions are
 * plan.c's (plain C); here the device is asked what the planner needs to know.
 * ========================================================================================== */
#ifndef LAC_KERNELS_ONLY
namespace {

/* Sets the dynamic shared memory limits of the v2 kernels (above 48 KB) and returns the
 * resident blocks per SM of the pass C kernel of this version (the plan's occupancy) and of
 * its pass A kernel. */
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
template <int DT, int DK> int lac_prepare_v1(int *bps, int *bps_a) {
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
        bps, lac_v1_output_kernel<DT, DK, true>, LAC_DVS, (size_t)0));
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
        bps_a, lac_v1_state_kernel<DT, DK>, LAC_DVS, (size_t)0));
    return 0;
}
template <bool BF16, int DK> int lac_prepare_v3(int *bps, int *bps_a) {
    int unused = 0;
    if (lac_prepare_v2<BF16, DK>(&unused, bps_a)) return -1; /* pass A is v2's */
    const int so = lac_v3_output_smem(DK);
    CUDA_CHECK(cudaFuncSetAttribute(lac_v3_output_kernel<BF16, DK, false>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, so));
    CUDA_CHECK(cudaFuncSetAttribute(lac_v3_output_kernel<BF16, DK, true>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, so));
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
        bps, lac_v3_output_kernel<BF16, DK, false>, LAC_THREADS, (size_t)so));
    return 0;
}
int lac_prepare(int version, int dk, dtype_t dt, int *bps, int *bps_a) {
    if (version == 6) return lac_v6_prepare(dt == DTYPE_BF16, dk, bps, bps_a);
    if (version == 3) {
        if (dt == DTYPE_BF16) return dk == 64 ? lac_prepare_v3<true, 64>(bps, bps_a)
                                              : lac_prepare_v3<true, 128>(bps, bps_a);
        return dk == 64 ? lac_prepare_v3<false, 64>(bps, bps_a)
                        : lac_prepare_v3<false, 128>(bps, bps_a);
    }
    if (version == 2) {
        if (dt == DTYPE_BF16) return dk == 64 ? lac_prepare_v2<true, 64>(bps, bps_a)
                                              : lac_prepare_v2<true, 128>(bps, bps_a);
        return dk == 64 ? lac_prepare_v2<false, 64>(bps, bps_a)
                        : lac_prepare_v2<false, 128>(bps, bps_a);
    }
    if (dt == DTYPE_F32)
        return dk == 64 ? lac_prepare_v1<0, 64>(bps, bps_a) : lac_prepare_v1<0, 128>(bps, bps_a);
    if (dt == DTYPE_BF16)
        return dk == 64 ? lac_prepare_v1<1, 64>(bps, bps_a) : lac_prepare_v1<1, 128>(bps, bps_a);
    return dk == 64 ? lac_prepare_v1<2, 64>(bps, bps_a) : lac_prepare_v1<2, 128>(bps, bps_a);
}

/* lac_prepare once per (device, version, dk, dtype): the launchers plan on every call, inside
 * the caller's timed region, and the attributes and occupancies do not change.  Single-
 * threaded use, as the harness and the layer make. */
int lac_prepare_cached(int dev, int version, int dk, dtype_t dt, int *bps, int *bps_a) {
    enum { DEVS = 16 };
    static int cache[DEVS][7][2][3][2]; /* [dev][version][dk 64/128][dtype][bps, bps_a] + 1 */
    const int di = dev, vi = version, ki = dk == 128, ti = (int)dt;
    if (di < 0 || di >= DEVS || vi < 1 || vi > 6 || ti < 0 || ti > 2)
        return lac_prepare(version, dk, dt, bps, bps_a);
    int *c = cache[di][vi][ki][ti];
    if (c[0] == 0) {
        int b = 0, ba = 0;
        if (lac_prepare(version, dk, dt, &b, &ba)) return -1;
        c[0] = b + 1;
        c[1] = ba + 1;
    }
    *bps = c[0] - 1;
    *bps_a = c[1] - 1;
    return 0;
}

/* What the planner needs of the device (plan.h), for the version it picks for pr under o. */
int lac_device_facts_get(const lac_problem &pr, const lac_opts &o, lac_device_facts *f) {
    int dev = 0;
    memset(f, 0, sizeof(*f));
    CUDA_CHECK(cudaGetDevice(&dev));
    f->v6_usable = lac_v6_usable(dev) ? 1 : 0;
    f->version = lac_plan_version(&pr, &o, f->v6_usable);
    CUDA_CHECK(cudaDeviceGetAttribute(&f->sms, cudaDevAttrMultiProcessorCount, dev));
    return lac_prepare_cached(dev, f->version, pr.dk, pr.dtype, &f->bps_c, &f->bps_a);
}

/* The plan for pr under o on the current device. */
int lac_make_plan(const lac_problem &pr, const lac_opts &o, lac_plan *p) {
    lac_device_facts f;
    if (lac_device_facts_get(pr, o, &f)) return -1;
    return lac_plan_make(&pr, &o, &f, p);
}

template <int DT> int lac_launch_norm(const lac_ptrs &d, const lac_args &a, cudaStream_t stream) {
    typedef typename lac_io<DT>::s_t S;
    const int64_t blocks = (a.rows + LAC_NORM_ROWS - 1) / LAC_NORM_ROWS;
    if (a.norm_mode == 3) { /* v1's deferred mode: the gate alone, the norm is the caller's */
        if (a.gate)
            lac_rmsnorm_kernel<DT, true, false><<<(unsigned)blocks, 32 * LAC_NORM_ROWS, 0, stream>>>(
                (S *)d.o, d.rowpart, a.rows, a.dv, a.nslices, a.rms_eps, (const S *)a.gate,
                a.gate_ld, a.gate_bias);
    } else if (a.gate)
        lac_rmsnorm_kernel<DT, true><<<(unsigned)blocks, 32 * LAC_NORM_ROWS, 0, stream>>>(
            (S *)d.o, d.rowpart, a.rows, a.dv, a.nslices, a.rms_eps, (const S *)a.gate,
            a.gate_ld, a.gate_bias);
    else
        lac_rmsnorm_kernel<DT, false><<<(unsigned)blocks, 32 * LAC_NORM_ROWS, 0, stream>>>(
            (S *)d.o, d.rowpart, a.rows, a.dv, a.nslices, a.rms_eps, NULL, 0, NULL);
    CUDA_CHECK(cudaGetLastError());
    return 0;
}

int lac_launch_scan(const lac_plan *p, const lac_ptrs &d, int64_t nbh, int dk, int dv,
                    cudaStream_t stream) {
    if (p->ws_per_bh <= 1) return 0;
    const int64_t vec = (int64_t)dk * dv / 4, total = nbh * vec;
    const int64_t blocks = (total + LAC_SCAN_THREADS - 1) / LAC_SCAN_THREADS;
    return pdl_launch(p->pdl, lac_scan_kernel, (unsigned)blocks, LAC_SCAN_THREADS, 0, stream,
                      (float4 *)d.states, vec, total, p->ws_per_bh, p->sub);
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
    if (a.norm_mode >= 2) return lac_launch_norm<BF16 ? 1 : 2>(d, a, stream);
    return 0;
}

template <bool BF16, int DK>
int lac_enqueue_v3(const lac_plan *p, const lac_ptrs &d, const lac_args &a, int64_t nbh,
                   cudaStream_t stream) {
    const uint16_t *q = (const uint16_t *)d.q, *k = (const uint16_t *)d.k,
                   *v = (const uint16_t *)d.v;
    if (lac_launch_states_v2<BF16, DK>(p, d, a, nbh, stream)) return -1;
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
    if (a.norm_mode == 2) return lac_launch_norm<BF16 ? 1 : 2>(d, a, stream);
    return 0;
}

/* v6 (linear_attn_wgmma.cu): prep, pass A, the scan, pass C. */
template <bool BF16, int DK>
int lac_enqueue_v6(const lac_plan *p, const lac_ptrs &d, const lac_args &a, int64_t nbh,
                   cudaStream_t stream) {
    const lac_v6_io io = {d.q, d.k, d.v, d.o, d.images, d.states, d.rowpart, p->pdl != 0};
    if (lac_v6_enqueue_front(BF16, DK, io, a, nbh, p->nchunks, stream)) return -1;
    if (lac_launch_scan(p, d, nbh, DK, a.dv, stream)) return -1;
    const bool gated = (a.norm_mode == 3 && a.gate) || a.v_bias; /* gate and V's SiLU */
    if (lac_v6_enqueue_output(BF16, DK, io, a, nbh, gated, stream)) return -1;
    if (a.norm_mode == 2) return lac_launch_norm<BF16 ? 1 : 2>(d, a, stream);
    return 0;
}

template <int DT, int DK>
int lac_enqueue_v1(const lac_plan *p, const lac_ptrs &d, const lac_args &a, int64_t nbh,
                   int causal, cudaStream_t stream) {
    typedef typename lac_io<DT>::s_t S;
    const S *q = (const S *)d.q, *k = (const S *)d.k, *v = (const S *)d.v;
    if (p->ws_per_bh > 0) {
        const int64_t grid = nbh * p->ws_per_bh * p->nslices;
        lac_v1_state_kernel<DT, DK><<<(unsigned)grid, LAC_DVS, 0, stream>>>(k, v, d.states, a);
        CUDA_CHECK(cudaGetLastError());
        if (lac_launch_scan(p, d, nbh, DK, a.dv, stream)) return -1;
    }
    const int64_t grid = nbh * p->nseg * p->nslices;
    if (causal)
        lac_v1_output_kernel<DT, DK, true><<<(unsigned)grid, LAC_DVS, 0, stream>>>(
            q, k, v, (S *)d.o, d.states, d.rowpart, a);
    else
        lac_v1_output_kernel<DT, DK, false><<<(unsigned)grid, LAC_DVS, 0, stream>>>(
            q, k, v, (S *)d.o, d.states, d.rowpart, a);
    CUDA_CHECK(cudaGetLastError());
    if (a.norm_mode >= 2) return lac_launch_norm<DT>(d, a, stream);
    return 0;
}

/* Enqueues passes A, B, C (and the norm pass) of a plan. */
int lac_enqueue(const lac_plan *p, const lac_ptrs &d, int B, int H, int T, int dk, int dv,
                int causal, int rms_norm, float rms_eps, const void *gate, int64_t gate_ld,
                const float *gate_bias, const float *v_bias, bool deferred, dtype_t dt,
                cudaStream_t stream) {
    lac_args a;
    a.rows = (int64_t)B * H * T;
    a.T = T;
    a.dv = dv;
    a.nslices = p->nslices;
    a.nseg = p->nseg;
    a.seg_chunks = p->seg_chunks;
    a.nseg_ws = p->nseg_ws;
    a.sub = p->sub;
    a.sub_chunks = p->sub_chunks;
    a.ws_per_bh = p->ws_per_bh;
    a.norm_mode = deferred ? 3 : lac_norm_mode(p, rms_norm, gate != NULL);
    a.gate = gate;
    a.gate_ld = gate_ld;
    a.gate_bias = gate_bias;
    a.v_bias = v_bias;
    a.scale = 1.0f / sqrtf((float)dk);
    a.rms_eps = rms_eps;
    const int64_t nbh = (int64_t)B * H;
    if (p->version == 6) {
        if (dt == DTYPE_BF16)
            return dk == 64 ? lac_enqueue_v6<true, 64>(p, d, a, nbh, stream)
                            : lac_enqueue_v6<true, 128>(p, d, a, nbh, stream);
        return dk == 64 ? lac_enqueue_v6<false, 64>(p, d, a, nbh, stream)
                        : lac_enqueue_v6<false, 128>(p, d, a, nbh, stream);
    }
    if (p->version == 3) {
        if (dt == DTYPE_BF16)
            return dk == 64 ? lac_enqueue_v3<true, 64>(p, d, a, nbh, stream)
                            : lac_enqueue_v3<true, 128>(p, d, a, nbh, stream);
        return dk == 64 ? lac_enqueue_v3<false, 64>(p, d, a, nbh, stream)
                        : lac_enqueue_v3<false, 128>(p, d, a, nbh, stream);
    }
    if (p->version == 2) {
        if (dt == DTYPE_BF16)
            return dk == 64 ? lac_enqueue_v2<true, 64>(p, d, a, nbh, causal, stream)
                            : lac_enqueue_v2<true, 128>(p, d, a, nbh, causal, stream);
        if (dt == DTYPE_F16)
            return dk == 64 ? lac_enqueue_v2<false, 64>(p, d, a, nbh, causal, stream)
                            : lac_enqueue_v2<false, 128>(p, d, a, nbh, causal, stream);
        BENCH_FAIL("linear_attn/chunked v2 needs bf16 or fp16");
    }
    if (dt == DTYPE_F32)
        return dk == 64 ? lac_enqueue_v1<0, 64>(p, d, a, nbh, causal, stream)
                        : lac_enqueue_v1<0, 128>(p, d, a, nbh, causal, stream);
    if (dt == DTYPE_BF16)
        return dk == 64 ? lac_enqueue_v1<1, 64>(p, d, a, nbh, causal, stream)
                        : lac_enqueue_v1<1, 128>(p, d, a, nbh, causal, stream);
    return dk == 64 ? lac_enqueue_v1<2, 64>(p, d, a, nbh, causal, stream)
                    : lac_enqueue_v1<2, 128>(p, d, a, nbh, causal, stream);
}

struct lac_state {
    shape_t shape;
    lac_plan plan;
    void *d_ws; /* states, A, q16 (lac_ws_layout, no norm partials) */
};

lac_problem lac_problem_of(const shape_t *s) {
    const lac_problem pr = {s->B, s->H, s->T, s->dk, s->dv, s->causal ? 1 : 0, s->dtype};
    return pr;
}

} /* namespace */

/* ---- the variant ----------------------------------------------------------------------------- */

extern "C" const char *linear_attn_chunked_supports(const shape_t *s) {
    const lac_problem pr = lac_problem_of(s);
    return lac_shape_reason(&pr);
}

/* Upper bound of what setup allocates under the run's settings. */
extern "C" size_t linear_attn_chunked_workspace_bytes(const shape_t *s) {
    const lac_problem pr = lac_problem_of(s);
    const lac_opts o = lac_opts_from(s->set);
    return lac_workspace_bound(&pr, &o);
}

extern "C" int linear_attn_chunked_setup(const shape_t *s, const io_t *io, void **state) {
    (void)io;
    *state = NULL;
    const lac_problem pr = lac_problem_of(s);
    const char *why = lac_shape_reason(&pr);
    if (why) BENCH_FAIL("linear_attn/chunked: %s", why);
    lac_state *st = (lac_state *)calloc(1, sizeof(lac_state));
    if (!st) BENCH_FAIL("linear_attn/chunked: out of host memory");
    st->shape = *s;
    st->shape.set = NULL; /* resolved here, into the plan; never read after setup */
    if (lac_make_plan(pr, lac_opts_from(s->set), &st->plan)) {
        free(st);
        return -1;
    }
    const size_t bytes = lac_ws_layout(&st->plan, 0, NULL, NULL);
    if (bytes > 0) {
        cudaError_t e = cudaMalloc(&st->d_ws, bytes);
        if (e != cudaSuccess) {
            free(st);
            BENCH_FAIL("linear_attn/chunked: cudaMalloc(%zu B of workspace): %s", bytes,
                       cudaGetErrorString(e));
        }
    }
    *state = st;
    return 0;
}

extern "C" int linear_attn_chunked_run(void *state, const io_t *io, cudaStream_t stream) {
    const lac_state *st = (const lac_state *)state;
    const shape_t *s = &st->shape;
    lac_ptrs d = {io->in[0], io->in[1], io->in[2], io->out, NULL, NULL, NULL, NULL, NULL};
    lac_ws_layout(&st->plan, 0, st->d_ws, &d);
    return lac_enqueue(&st->plan, d, s->B, s->H, s->T, s->dk, s->dv, s->causal, 0, 0.f, NULL,
                       0, NULL, NULL, false, s->dtype, stream);
}

extern "C" void linear_attn_chunked_teardown(void *state) {
    lac_state *st = (lac_state *)state;
    if (!st) return;
    if (st->d_ws) cudaFree(st->d_ws);
    free(st);
}

extern "C" void linear_attn_chunked_config(const void *state, char *buf, size_t len) {
    if (!len) return;
    buf[0] = 0;
    if (state) lac_plan_words(&((const lac_state *)state)->plan, "", buf, len);
}

/* ---- exported launcher (linear_attn_chunked.h) ---------------------------------------------- */

extern "C" int linear_attn_chunked_describe(int B, int H, int T, int dk, int dv, int causal,
                                            dtype_t dtype, const char *prefix, char *buf,
                                            size_t len) {
    if (len) buf[0] = 0;
    const lac_problem pr = {B, H, T, dk, dv, causal ? 1 : 0, dtype};
    const char *why = lac_shape_reason(&pr);
    if (why) BENCH_FAIL("linear_attn_chunked_describe: %s", why);
    lac_plan p;
    if (lac_make_plan(pr, lac_opts_auto(), &p)) return -1;
    if (len) lac_plan_words(&p, prefix ? prefix : "", buf, len);
    return 0;
}

extern "C" size_t linear_attn_chunked_workspace(int B, int H, int T, int dk, int dv) {
    const lac_opts o = lac_opts_auto();
    return lac_launcher_workspace_bound(B, H, T, dk, dv, &o);
}

/* The launchers' common body; d_rss != NULL is the deferred-norm mode (norm_mode 3). */
static int lac_launch_any(const void *d_q, const void *d_k, const void *d_v, void *d_o, int B,
                          int H, int T, int dk, int dv, int causal, int rms_norm, float rms_eps,
                          const void *d_gate, long long gate_ld, const float *d_gate_bias,
                          const float *d_v_bias, float *d_rss, dtype_t dtype, void *d_workspace,
                          size_t workspace_bytes, cudaStream_t stream) {
    const lac_problem pr = {B, H, T, dk, dv, causal ? 1 : 0, dtype};
    const char *why = lac_shape_reason(&pr);
    if (why) BENCH_FAIL("linear_attn_chunked_launch: %s", why);
    const void *ptrs[4] = {d_q, d_k, d_v, d_o};
    for (int i = 0; i < 4; i++)
        if (!ptrs[i] || ((uintptr_t)ptrs[i] & 15u))
            BENCH_FAIL("linear_attn_chunked_launch: q, k, v, o must be 16-byte aligned");
    if (d_gate) {
        const size_t esize = dtype == DTYPE_F32 ? 4 : 2;
        if (!rms_norm) BENCH_FAIL("linear_attn_chunked_launch: the gate rides the RMSNorm pass");
        if (!d_gate_bias || ((uintptr_t)d_gate & 15u) || gate_ld < dv ||
            ((size_t)gate_ld * esize) % 16 != 0)
            BENCH_FAIL("linear_attn_chunked_launch: gate needs a bias, 16-byte aligned rows "
                       "and gate_ld >= dv");
    }
    if (d_rss && ((uintptr_t)d_rss & 3u))
        BENCH_FAIL("linear_attn_chunked_launch: row sums of squares need 4-byte alignment");
    lac_plan p;
    if (lac_make_plan(pr, lac_opts_auto(), &p)) return -1;
    const int norm_mode = d_rss ? 3 : lac_norm_mode(&p, rms_norm, d_gate != NULL);
    const size_t need = lac_ws_layout(&p, norm_mode, NULL, NULL);
    if (need > 0 && (!d_workspace || need > workspace_bytes))
        BENCH_FAIL("linear_attn_chunked_launch: workspace %zu B < %zu B needed",
                   d_workspace ? workspace_bytes : (size_t)0, need);
    if ((uintptr_t)d_workspace & 15u)
        BENCH_FAIL("linear_attn_chunked_launch: workspace must be 16-byte aligned");
    lac_ptrs d = {d_q, d_k, d_v, d_o, NULL, NULL, NULL, NULL, NULL};
    lac_ws_layout(&p, norm_mode, d_workspace, &d);
    if (d_rss) d.rowpart = d_rss;
    return lac_enqueue(&p, d, B, H, T, dk, dv, causal ? 1 : 0, rms_norm, rms_eps, d_gate,
                       (int64_t)gate_ld, d_gate_bias, d_v_bias, d_rss != NULL, dtype, stream);
}

extern "C" int linear_attn_chunked_launch_gated(const void *d_q, const void *d_k,
                                                const void *d_v, void *d_o, int B, int H, int T,
                                                int dk, int dv, int causal, int rms_norm,
                                                float rms_eps, const void *d_gate,
                                                long long gate_ld, const float *d_gate_bias,
                                                dtype_t dtype, void *d_workspace,
                                                size_t workspace_bytes, cudaStream_t stream) {
    return lac_launch_any(d_q, d_k, d_v, d_o, B, H, T, dk, dv, causal, rms_norm, rms_eps, d_gate,
                          gate_ld, d_gate_bias, NULL, NULL, dtype, d_workspace, workspace_bytes,
                          stream);
}

extern "C" int linear_attn_chunked_launch_gated_deferred(
    const void *d_q, const void *d_k, const void *d_v, void *d_o, int B, int H, int T, int dk,
    int dv, int causal, const void *d_gate, long long gate_ld, const float *d_gate_bias,
    const float *d_v_bias, float *d_rowsumsq, dtype_t dtype, void *d_workspace,
    size_t workspace_bytes, cudaStream_t stream) {
    if (!d_rowsumsq) BENCH_FAIL("linear_attn_chunked_launch: deferred norm without a row-sum buffer");
    if (d_v_bias && ((uintptr_t)d_v_bias & 3u))
        BENCH_FAIL("linear_attn_chunked_launch: v bias needs 4-byte alignment");
    return lac_launch_any(d_q, d_k, d_v, d_o, B, H, T, dk, dv, causal, 1, 0.f, d_gate, gate_ld,
                          d_gate_bias, d_v_bias, d_rowsumsq, dtype, d_workspace, workspace_bytes,
                          stream);
}

extern "C" int linear_attn_chunked_launch(const void *d_q, const void *d_k, const void *d_v,
                                          void *d_o, int B, int H, int T, int dk, int dv,
                                          int causal, int rms_norm, float rms_eps,
                                          dtype_t dtype, void *d_workspace,
                                          size_t workspace_bytes, cudaStream_t stream) {
    return linear_attn_chunked_launch_gated(d_q, d_k, d_v, d_o, B, H, T, dk, dv, causal,
                                            rms_norm, rms_eps, NULL, 0, NULL, dtype, d_workspace,
                                            workspace_bytes, stream);
}
#endif /* LAC_KERNELS_ONLY */
