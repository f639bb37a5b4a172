/* plan.h: the host planner of linear_attn/chunked, plain C with no CUDA call (plan.c), so that
 * its choices can be unit-tested on a machine without a GPU (tests/test_plan_linear_attn.c).
 *
 * What it decides for one problem (B, H, T, dk, dv, causal, dtype), given the settings and a
 * few numbers about the device (lac_device_facts): the kernel version, the segment length of
 * the scan, pass A's parts a segment, PDL, and the workspace each buffer takes.  Why each rule
 * is what it is: plan.c, beside the rule.  The CUDA side (launch.cu) gathers the facts once,
 * with the version's kernels' occupancy, and calls lac_plan_make; nothing here touches a
 * device. */
#ifndef CHELA_LINEAR_ATTN_PLAN_H
#define CHELA_LINEAR_ATTN_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "shape.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The plan's units, which the kernels share (kernels/linear_attn/prims.cuh). */
#define LAC_C 64   /* tokens per chunk                                 */
#define LAC_DVS 64 /* value columns per block (dv slice)                */

#ifndef LAC_DEFAULT_VERSION
#define LAC_DEFAULT_VERSION 6 /* the version auto picks where it can run (lac_plan_version) */
#endif
/* Segments are never so short that one pass over the segment's fp32 state costs more than
 * 1/LAC_WS_FRAC_INV of its q, k, v, o bytes (lac_seg_min_chunks). */
#define LAC_WS_FRAC_INV 32
/* v5: the segment rule's waves count at most this many resident pass-C blocks an SM (plan.c). */
#define LAC_PLAN_BPS 2

/* One problem: layouts q, k [B,H,T,dk], v, o [B,H,T,dv] (op.h). */
typedef struct {
    int B, H, T, dk, dv;
    int causal; /* 0 or 1 */
    dtype_t dtype;
} lac_problem;

/* The settings (harness/variants.c's LA_CHUNKED_SETTINGS), resolved once; SETTING_AUTO (or any
 * value outside a field's range) leaves the choice to the planner. */
typedef struct {
    int version; /* la_version: 1|2|3|6                      */
    int seg;     /* la_seg: tokens a segment, > 0            */
    int sub;     /* la_sub: pass A parts a segment, > 0      */
    int pdl;     /* la_pdl: 0 plain launches, 1 PDL          */
} lac_opts;

/* Every setting auto. */
lac_opts lac_opts_auto(void);
/* The settings' values from set (NULL: all auto). */
lac_opts lac_opts_from(const struct settings *set);

/* What the planner needs to know of the device, as plain numbers (launch.cu gathers them). */
typedef struct {
    int sms;       /* multiprocessors                                                       */
    int v6_usable; /* the sm_90a unit was built and the device is cc 9.0 (lac_v6_usable)     */
    int version;   /* the version whose kernels the two occupancies below describe: what     */
                   /* lac_plan_version picks for the problem, settings and v6_usable         */
    int bps_c;     /* resident blocks an SM of that version's pass C kernel                  */
    int bps_a;     /* ... and of its pass A kernel                                           */
} lac_device_facts;

/* A plan: what runs and the workspace it takes. */
typedef struct {
    int version;          /* 1, 2, 3 or 6 (the version that runs for this shape)         */
    int nslices;          /* dv / 64                                                      */
    int nchunks;          /* ceil(T / 64)                                                 */
    int seg_chunks;       /* chunks per segment                                           */
    int nseg;             /* segments per (b,h)                                           */
    int nseg_ws;          /* states pass C reads: nseg-1 causal, nseg not                 */
    int sub;              /* pass A parts per segment                                     */
    int sub_chunks;       /* chunks per pass A part                                       */
    int ws_per_bh;        /* states per (b,h) in the workspace: nseg_ws * sub             */
    int pdl;              /* launch each pass after the first with PDL                    */
    size_t state_bytes;   /* B*H*ws_per_bh*dk*dv*4                                        */
    size_t rowpart_bytes; /* nslices*B*H*T*4 (norm partials, if used)                     */
    size_t amat_bytes;    /* v3: B*H*nchunks*64*64*2 (fp16 A per chunk)                   */
    size_t q16_bytes;     /* v3, bf16: B*H*T*dk*2 (q as fp16)                             */
    size_t img_bytes;     /* v6: the per-chunk operand images (lac_v6_image_bytes)        */
} lac_plan;

/* Why the kernels cannot run this problem, or NULL. */
const char *lac_shape_reason(const lac_problem *pr);

/* The version that runs: la_version where it applies (auto: LAC_DEFAULT_VERSION); fp32 always
 * v1; v6 only where usable (else v3); v3 and v6 only where v3 applies (else v2). */
int lac_plan_version(const lac_problem *pr, const lac_opts *o, int v6_usable);

/* The plan for pr under o on the device f describes.  Returns 0, or -1 after bench_set_error()
 * (a kernel that cannot be resident, f describing another version, a grid past the limit). */
int lac_plan_make(const lac_problem *pr, const lac_opts *o, const lac_device_facts *f,
                  lac_plan *p);

/* "<prefix>v6 seg=8192 sub=2 pdl=1": the version, the segment length in tokens (T rounded up to
 * a chunk when there is one segment), pass A's parts a segment, PDL. */
void lac_plan_words(const lac_plan *p, const char *prefix, char *buf, size_t len);

/* ---- the workspace ------------------------------------------------------------------------ */

/* What a launch does with the norm, as the kernels' lac_args.norm_mode: 0 none, 1 fused in pass
 * C (v2+, one slice, no gate), 2 partial row sums for the norm pass, 3 partials to the caller
 * and the gate in pass C's store (the deferred launcher, set by the caller, not here). */
int lac_norm_mode(const lac_plan *p, int rms_norm, int gated);

/* Device pointers of one launch: the operands and the workspace's parts. */
typedef struct {
    const void *q, *k, *v;
    void *o;
    float *states, *rowpart;
    uint16_t *amat, *q16; /* v3 */
    uint16_t *images;     /* v6 */
} lac_ptrs;

/* Workspace layout of a plan: [states | rowpart (norm_mode 2) | A (v3) | q16 (v3, bf16) |
 * images (v6)], each part 256-byte aligned.  Returns the total bytes and, when d is not NULL,
 * points d's workspace parts into base (NULL parts where a part is empty or base is NULL). */
size_t lac_ws_layout(const lac_plan *p, int norm_mode, void *base, lac_ptrs *d);

/* Workspace bytes of v6's per-chunk operand images (q16, A, k^T) for nbh sequences. */
size_t lac_v6_image_bytes(int64_t nbh, int nchunks, int dk);

/* The most workspace any plan under o can take for this problem without norm partials
 * (the variant's upper bound, for the harness's memory check before setup). */
size_t lac_workspace_bound(const lac_problem *pr, const lac_opts *o);
/* The most workspace any plan under o can take for (B, H, T, dk, dv) with any causal, dtype and
 * norm mode (norm partials included): what the exported launchers may need. */
size_t lac_launcher_workspace_bound(int B, int H, int T, int dk, int dv, const lac_opts *o);

#ifdef __cplusplus
}
#endif
#endif
