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
 * Files: plan.c (the decisions, plain C), passes.h (what each kernel file exports), v1.cu, v2.cu,
 * v3.cu, v6_wgmma.cu, scan.cu (the kernels, each compiled once), prims.cuh and tiles.cuh (the
 * device code they share).
 */
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdlib.h>

#include "bench_check.h"
#include "linear_attn/passes.h"
#include "linear_attn/plan.h"
#include "variant.h"

extern "C" {
DECLARE_VARIANT(linear_attn_chunked);
}

/* ---- the variant: setup plans (plan.c, on the facts launch.cu gathers) and allocates, run
 * enqueues the plan's passes, config reports the plan ---------------------------------------- */
namespace {

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
