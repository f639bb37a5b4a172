/* linear_attn/chunked: CHELA's "tiled" (chunked, hardware-efficient) linear attention, with the
 * chunk states combined by a scan over segments so that B*H = 1 still fills the GPU.
 *
 *   o_t = (q_t / sqrt(dk)) . S_t,   S_t = sum_{s<=t} k_s^T v_s   (causal; s over all T if not)
 *
 * Chunks of C = 64 tokens (chela-spec.md): with the state S (dk x dv, fp32) entering chunk i,
 *   O_[i] = Q_[i] S + ((Q_[i] K_[i]^T) (.) causal mask) V_[i],   then   S += K_[i]^T V_[i].
 * Layouts (op.h): q,k [B,H,T,dk], v,o [B,H,T,dv], run dtype; dk in {64,128}, dv a multiple of 64
 * up to 2048.  A block owns one (b*H+h, segment, 64-column dv slice) and a dk x 64 fp32 state;
 * the slice index runs fastest in blockIdx.x, so the dv/64 blocks that re-read one segment's q
 * and k run side by side and L2 serves the re-reads (CHELA: dv = 2048 -> 32 slices).
 *
 * The passes (every version):
 *   pass A  block (bh, part, slice) sums dS = K^T V over one part of a segment, for the segments
 *           whose state someone needs (0..nseg-2 causal, all not), into the workspace
 *           ([B*H][nseg_ws*sub][dv][dk] fp32, transposed); each such segment is split into
 *           `sub` parts where that fills the GPU.  Skipped when nseg_ws == 0.
 *   pass B  (scan.cu) per (bh, state element) an in-place inclusive scan over the parts: slot j
 *           then holds the state entering segment j+1 (causal) or the whole sum (not causal).
 *   pass C  block (bh, seg, slice) starts from its segment's incoming state and walks its chunks
 *           (causal: the recurrence above; not causal: O = Q S only).
 *   norm    (the exported launchers' rms_norm; the variant never norms) a row reduction over
 *           all dv/64 slice blocks without atomics: pass C writes o and each slice's per-row sum
 *           of squares ([dv/64][B*H*T] fp32), the norm pass (scan.cu, a warp a row) adds them
 *           and rescales o in place (+ 2|o| + 4*B*H*T*dv/64 bytes, o rounded twice); v2 at
 *           dv = 64 (one slice) fuses it into pass C instead.
 *   backward  (run_bwd, set up when the point's pass is bwd or fwdbwd; causal 16-bit only,
 *           supports() refuses the rest) bwd_mma.cu on its own plan (bwd_plan.c): dQ walking
 *           forward from S, dK and dV walking backward from R = sum Q^T dO, both recomputed
 *           from q, k, v, dO ("bwd=recompute": the forward keeps nothing for it); segments by
 *           la_bwd_seg or the planner, dQ and dK summed over dv slices in fp32 by atomics.
 *           Config words "bwd=recompute bwd_seg=<tokens> bwd_red=atomic|none".  Checked against the
 *           double reference by tests/test_gpu_linear_attn_bwd.c.
 * The plan (plan.c: plain C, checked on the CPU by tests/test_plan_linear_attn.c) picks the
 * version, the segment length, pass A's parts and PDL from the shape, the settings and the
 * device's SM count and occupancy; the variant's config column reports it ("v6 seg=8192 sub=2
 * pdl=1").  Every pass after a plan's first is launched with programmatic dependent launch and
 * waits (griddepcontrol.wait) before its first read.
 *
 * Settings (harness/variants.c, resolved once at setup, nothing reads the environment):
 * la_version=1|2|3|6 (auto: 6 where it runs: causal, dv >= 128, 16-bit, an sm_90a build on a
 * cc 9.0 GPU; else 3 where v3 applies; else 2; fp32 always 1), la_seg=<tokens> (rounded up to a
 * chunk), la_sub=<parts>, la_pdl=0|1, la_bwd_seg=<tokens> (the backward's segments).
 *
 * Files (kernels/linear_attn/): chunked.cu, the variant (this file); bwd_plan.c / bwd_plan.h,
 * bwd.h, bwd_mma.cu, bwd_tiles.cuh, the backward's planner, kernels and their device code;
 * launch.cu, the device facts, the enqueue and chunked.h's exported launchers and plan API;
 * plan.c / plan.h, the planner; passes.h, what each kernel file exports; v1.cu, v2.cu, v3.cu,
 * v6_wgmma.cu, scan.cu, the kernels by version, each file's header saying how they work;
 * prims.cuh, tiles.cuh, the device code they share.
 *
 * ---- version index: --set la_version=N; one number each (H100, bf16, causal, 65536 tokens a
 * point; CHELA head = H 1, dk 128, dv 2048; LM shape = H 16, dk = dv = 64).  Predictions,
 * measurements and tables: profiles/NOTES.md, linear_attn. -----------------------------------
 *
 * v1  CUDA cores, the per-token recurrence, a value column a thread (la_version=1; the fp32
 *     path).  Verified on the GPU, never timed.
 * v2  mma.sync, the transposed state as accumulators, a bf16 hi/lo state operand and fp16 A for
 *     accuracy (la_version=2; what runs at dv = 64, the LM shape).  CHELA head 0.56 ms at 4k.
 * v3  A = mask(Q K^T)/sqrt(dk) once a chunk in a prep pass, an fp16 state operand with a
 *     power-of-two row scale (la_version=3).  CHELA head 0.40 ms at 4k.
 * v4  plan: pass A in parts where its blocks leave SMs idle (la_sub), PDL (la_pdl), V's SiLU in
 *     the kernels (the CHELA layer).  CHELA head 16k 0.528 -> 0.502 ms.
 * v5  plan: segments sized for 2 pass-C blocks an SM (la_seg).  LM shape 0.295 ms at 64k
 *     (v4 0.306).
 * v6  v3's passes A and C on Hopper's wgmma, the prep writing wgmma's operand layout
 *     (la_version=6; auto on an sm_90a build at cc 9.0).  CHELA head 0.27 ms at 4k.
 */
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bench_check.h"
#include "linear_attn/bwd.h"
#include "linear_attn/passes.h"
#include "linear_attn/plan.h"
#include "settings.h"
#include "variant.h"

extern "C" {
DECLARE_VARIANT(linear_attn_chunked);
DECLARE_BWD(linear_attn_chunked);
}

/* ---- the variant: setup plans (plan.c, on the facts launch.cu gathers) and allocates, run
 * enqueues the plan's passes, config reports the plan ---------------------------------------- */
namespace {

struct lac_state {
    shape_t shape;
    lac_plan plan;
    void *d_ws;      /* states, A, q16 (lac_ws_layout, no norm partials) */
    int has_bwd;     /* setup saw pass != fwd: bplan and d_bws are made   */
    lab_plan bplan;  /* the backward's plan (bwd_plan.h)                  */
    void *d_bws;     /* its workspace (lab_ws_layout)                     */
};

lac_problem lac_problem_of(const shape_t *s) {
    const lac_problem pr = {s->B, s->H, s->T, s->dk, s->dv, s->causal ? 1 : 0, s->dtype};
    return pr;
}

} /* namespace */

/* The backward (bwd_mma.cu) is causal, 16-bit: other points of pass bwd / fwdbwd are refused. */
extern "C" const char *linear_attn_chunked_supports(const shape_t *s) {
    const lac_problem pr = lac_problem_of(s);
    if (s->pass != PASS_FWD) return lab_shape_reason(&pr);
    return lac_shape_reason(&pr);
}

/* Upper bound of what setup allocates under the run's settings (the backward's too). */
extern "C" size_t linear_attn_chunked_workspace_bytes(const shape_t *s) {
    const lac_problem pr = lac_problem_of(s);
    const lac_opts o = lac_opts_from(s->set);
    size_t bytes = lac_workspace_bound(&pr, &o);
    if (s->pass != PASS_FWD) bytes += lab_workspace_bound(&pr, settings_get(s->set, "la_bwd_seg"));
    return bytes;
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
    if (s->pass != PASS_FWD) { /* the backward recomputes its states: the forward keeps nothing */
        if (lab_make_plan(pr, settings_get(s->set, "la_bwd_seg"), &st->bplan)) {
            linear_attn_chunked_teardown(st);
            return -1;
        }
        st->has_bwd = 1;
        const size_t bbytes = lab_ws_layout(&st->bplan, NULL, NULL);
        if (bbytes > 0) {
            cudaError_t e = cudaMalloc(&st->d_bws, bbytes);
            if (e != cudaSuccess) {
                st->d_bws = NULL;
                linear_attn_chunked_teardown(st);
                BENCH_FAIL("linear_attn/chunked: cudaMalloc(%zu B of backward workspace): %s",
                           bbytes, cudaGetErrorString(e));
            }
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

/* dQ, dK, dV of L = sum(dy . o) (bwd_plan.h), overwritten in the run dtype. */
extern "C" int linear_attn_chunked_run_bwd(void *state, const io_t *io, const grad_io_t *g,
                                           cudaStream_t stream) {
    const lac_state *st = (const lac_state *)state;
    if (!st->has_bwd) BENCH_FAIL("linear_attn/chunked: run_bwd without a backward setup");
    const shape_t *s = &st->shape;
    const lac_problem pr = lac_problem_of(s);
    lab_ptrs d;
    d.q = io->in[0];
    d.k = io->in[1];
    d.v = io->in[2];
    d.dO = g->dy;
    d.dq = g->grad[0];
    d.dk = g->grad[1];
    d.dv = g->grad[2];
    lab_ws_layout(&st->bplan, st->d_bws, &d);
    return lab_enqueue(&st->bplan, d, pr, stream);
}

extern "C" void linear_attn_chunked_teardown(void *state) {
    lac_state *st = (lac_state *)state;
    if (!st) return;
    if (st->d_ws) cudaFree(st->d_ws);
    if (st->d_bws) cudaFree(st->d_bws);
    free(st);
}

extern "C" void linear_attn_chunked_config(const void *state, char *buf, size_t len) {
    if (!len) return;
    buf[0] = 0;
    if (!state) return;
    const lac_state *st = (const lac_state *)state;
    lac_plan_words(&st->plan, "", buf, len);
    if (st->has_bwd) {
        const size_t used = strlen(buf);
        if (used + 1 < len) {
            buf[used] = ' ';
            lab_plan_words(&st->bplan, buf + used + 1, len - used - 1);
        }
    }
}
