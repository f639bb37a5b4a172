/* bwd_plan.h: the host planner of linear_attn/chunked's backward (bwd_plan.c), plain C with no
 * CUDA call, unit-tested without a GPU (tests/test_plan_linear_attn_bwd.c).
 *
 * The backward (bwd_mma.cu) recomputes both state scans from q, k, v, dO ("bwd=recompute": the
 * forward keeps nothing for it).  With s = 1/sqrt(dk), chunks of C = 64 tokens, M the causal
 * mask within a chunk (diagonal included), S_i = sum_{chunks <= i} K^T V and
 * R_i = sum_{chunks > i} Q^T dO (both dk x dv fp32, R unscaled):
 *   dQ_[i] = s ( dO_[i] S_{i-1}^T + ((dO_[i] V_[i]^T) (.) M) K_[i] )
 *   dK_[i] = s ( V_[i] R_i^T      + ((dO_[i] V_[i]^T) (.) M)^T Q_[i] )
 *   dV_[i] = s ( K_[i] R_i        + ((Q_[i] K_[i]^T) (.) M)^T dO_[i] )
 * (harness/ref_grad_attn.c's regrouping, chunked.)  The work is split as the forward's: a block
 * owns one (b*H+h, segment, 64-column dv slice); dV is complete in its slice, dQ and dK are sums
 * over the dv/64 slices (reduced through fp32 atomics when there is more than one).
 *
 * What the planner decides: the segment length (segments fill the GPU when B*H*dv/64 blocks
 * alone leave SMs idle; each segment's incoming S and R come from a sums pass and a scan over
 * segments), and the workspace. */
#ifndef CHELA_LINEAR_ATTN_BWD_PLAN_H
#define CHELA_LINEAR_ATTN_BWD_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "linear_attn/plan.h" /* lac_problem, LAC_C, LAC_DVS */

#ifdef __cplusplus
extern "C" {
#endif

/* The walkers' waves count at most this many resident blocks an SM (as the forward's v5). */
#define LAB_PLAN_BPS 2

/* What the planner needs of the device: SMs and the resident blocks an SM of the slower-to-fill
 * of the two walking kernels (the smaller occupancy of the two). */
typedef struct {
    int sms;
    int bps;
} lab_device_facts;

typedef struct {
    int nslices;        /* dv / 64                                                         */
    int nchunks;        /* ceil(T / 64)                                                    */
    int seg_chunks;     /* chunks per segment                                              */
    int nseg;           /* segments per (b,h); 1: no sums pass, no scan, no state workspace */
    int reduce;         /* dQ, dK summed over slices in fp32 workspaces (nslices > 1)       */
    size_t state_bytes; /* each of S and R: B*H*nseg*dk*dv*4 (0 when nseg == 1)             */
    size_t acc_bytes;   /* each of dQ and dK in fp32: B*H*T*dk*4 (0 unless reduce)          */
} lab_plan;

/* Why the backward cannot run this problem, or NULL: the forward's reasons, and causal 16-bit
 * only (not causal and fp32 are refused for now). */
const char *lab_shape_reason(const lac_problem *pr);

/* The plan for pr on the device f describes; seg_tokens > 0 forces the segment length (rounded
 * up to a chunk; the setting la_bwd_seg), else auto.  Returns 0, or -1 after bench_set_error(). */
int lab_plan_make(const lac_problem *pr, int seg_tokens, const lab_device_facts *f, lab_plan *p);

/* "bwd=recompute bwd_seg=4096 bwd_red=atomic": the segment length in tokens, how dQ and dK are
 * reduced over slices (none: one slice writes them); prefixed, as the forward's words in the same
 * config cell say seg= too. */
void lab_plan_words(const lab_plan *p, char *buf, size_t len);

/* Device pointers of one backward: the operands and the workspace's parts. */
typedef struct {
    const void *q, *k, *v, *dO;
    void *dq, *dk, *dv;
    float *fstates; /* [B*H][nseg][dk][dv]: S entering each segment (after the scan)        */
    float *bstates; /* [B*H][nseg][dk][dv]: R entering each segment from the right           */
    float *dq32;    /* [B*H*T][dk] fp32 sums over slices (reduce)                            */
    float *dk32;
} lab_ptrs;

/* Workspace layout [fstates | bstates | dq32 | dk32], each part 256-byte aligned.  Returns the
 * total bytes and, when d is not NULL, points d's workspace parts into base (NULL where a part is
 * empty or base is NULL). */
size_t lab_ws_layout(const lab_plan *p, void *base, lab_ptrs *d);

/* The most workspace any plan can take for pr with la_bwd_seg = seg_tokens (<= 0: auto). */
size_t lab_workspace_bound(const lac_problem *pr, int seg_tokens);

#ifdef __cplusplus
}
#endif
#endif
