/* chunked.h: the chunked, segment-scanned linear attention of kernels/linear_attn/ (the variant
 * linear_attn/chunked), exported for other kernels (the CHELA layer).
 *
 * Layouts (op.h): q, k [B,H,T,dk]; v, o [B,H,T,dv]; row-major, run dtype (bf16, fp16, fp32),
 * contiguous, 16-byte aligned.  o_t = (q_t/sqrt(dk)) . sum_{s<=t} k_s^T v_s (all s when
 * causal == 0).  With rms_norm != 0 each output row is then divided by
 * sqrt(mean_j(o_tj^2) + rms_eps) over all dv columns (RMSNorm without gain).
 * Supported: dk in {64, 128}; dv a multiple of 64 in 64..2048; any B, H, T >= 1.
 *
 * Two ways in:
 *   the plan API: linear_attn_plan_create in the caller's setup (it asks the device and makes
 *     every choice: the version, v6 = v3 on Hopper's wgmma where v3 applies on a cc 9.0 GPU
 *     with the sm_90a unit built, else v3: causal with dv >= 128; v2 elsewhere; fp32 always v1;
 *     the segment length of the scan, pass A's parts, PDL), then linear_attn_plan_launch* in
 *     the timed region, which only check the operands and enqueue.  The settings passed to
 *     create (the caller's own la_version / la_seg / la_sub / la_pdl, where its table declares
 *     them; NULL = all auto) force those choices as they do for the variant.
 *   the one-call launchers (linear_attn_chunked_launch*): plan with every setting auto at every
 *     call, then launch.  Kept for callers that have no setup. */
#ifndef CHELA_LINEAR_ATTN_CHUNKED_H
#define CHELA_LINEAR_ATTN_CHUNKED_H

#include <cuda_runtime_api.h>
#include <stddef.h>

#include "shape.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the plan API ------------------------------------------------------------------------ */

typedef struct linear_attn_plan linear_attn_plan_t;

/* What a launch does with o's rows; the workspace a plan needs depends on it. */
typedef enum {
    LINEAR_ATTN_OUT_PLAIN = 0,     /* o as computed (linear_attn_plan_launch, rms_norm 0)      */
    LINEAR_ATTN_OUT_RMSNORM,       /* RMS-normed (rms_norm != 0, no gate)                      */
    LINEAR_ATTN_OUT_RMSNORM_GATED, /* RMS-normed, then gated (rms_norm != 0 with a gate)       */
    LINEAR_ATTN_OUT_DEFERRED       /* gated, the norm left to the caller (..._gated_deferred) */
} linear_attn_out_t;

/* The plan for this problem on the current device under set (NULL: every setting auto).  Asks
 * the device (SMs, compute capability, the kernels' occupancy) and sets the kernels' shared-
 * memory limits: call it outside any timed region.  NULL after bench_set_error(). */
linear_attn_plan_t *linear_attn_plan_create(int B, int H, int T, int dk, int dv, int causal,
                                            dtype_t dtype, const struct settings *set);
void linear_attn_plan_destroy(linear_attn_plan_t *p);

/* Device workspace bytes launches of plan p with output mode `out` need (0: none). */
size_t linear_attn_plan_workspace(const linear_attn_plan_t *p, linear_attn_out_t out);

/* The most workspace any plan under set (NULL: all auto) can need for (B, H, T, dk, dv), any
 * causal, dtype and output mode: a bound to report before setup (and to allocate where the
 * plan is not made yet); it honours forced la_seg / la_sub. */
size_t linear_attn_workspace_bound(int B, int H, int T, int dk, int dv,
                                   const struct settings *set);

/* The plan as config words after prefix (NULL: none): "<prefix>v6 seg=8192 sub=1 pdl=1".
 * Returns 0, or -1 after bench_set_error() (buf then holds ""). */
int linear_attn_plan_describe(const linear_attn_plan_t *p, const char *prefix, char *buf,
                              size_t len);

/* As linear_attn_chunked_launch_gated, with plan p (its shape); d_workspace holds at least
 * linear_attn_plan_workspace(p, the mode these arguments select) bytes.  0, or -1 after
 * bench_set_error(). */
int linear_attn_plan_launch(const linear_attn_plan_t *p, const void *d_q, const void *d_k,
                            const void *d_v, void *d_o, int rms_norm, float rms_eps,
                            const void *d_gate, long long gate_ld, const float *d_gate_bias,
                            void *d_workspace, size_t workspace_bytes, cudaStream_t stream);

/* As linear_attn_chunked_launch_gated_deferred, with plan p; d_workspace holds at least
 * linear_attn_plan_workspace(p, LINEAR_ATTN_OUT_DEFERRED) bytes. */
int linear_attn_plan_launch_gated_deferred(const linear_attn_plan_t *p, const void *d_q,
                                           const void *d_k, const void *d_v, void *d_o,
                                           const void *d_gate, long long gate_ld,
                                           const float *d_gate_bias, const float *d_v_bias,
                                           float *d_rowsumsq, void *d_workspace,
                                           size_t workspace_bytes, cudaStream_t stream);

/* ---- the one-call launchers: plan (every setting auto) and launch at each call ------------- */

/* The plan the launchers make for this problem, as config words after prefix (NULL: none):
 * "<prefix>v6 seg=8192 sub=1 pdl=1" (the CHELA layer's config column, with prefix "la=").
 * Plans (device attributes, cached kernel attributes), launches nothing.
 * Returns 0, or -1 after bench_set_error() (buf then holds ""). */
int linear_attn_chunked_describe(int B, int H, int T, int dk, int dv, int causal, dtype_t dtype,
                                 const char *prefix, char *buf, size_t len);

/* Device workspace bytes the launcher needs for this problem (any causal / rms_norm / dtype):
 * the fp32 segment states, the per-slice row sums of squares of the RMSNorm, and v3's per-chunk
 * A and fp16 copy of q or v6's per-chunk operand images, whichever is larger
 * (linear_attn_workspace_bound with every setting auto). */
size_t linear_attn_chunked_workspace(int B, int H, int T, int dk, int dv);

/* Enqueues the whole op on `stream` (no allocation, no synchronisation).  d_workspace holds at
 * least linear_attn_chunked_workspace(B, H, T, dk, dv) bytes (may be NULL when that is 0).
 * Returns 0, or -1 after bench_set_error() (bench_check.h). */
int linear_attn_chunked_launch(const void *d_q, const void *d_k, const void *d_v, void *d_o, int B,
                               int H, int T, int dk, int dv, int causal, int rms_norm,
                               float rms_eps, dtype_t dtype, void *d_workspace,
                               size_t workspace_bytes, cudaStream_t stream);

/* As linear_attn_chunked_launch, with rms_norm != 0, and then each output row gated:
 *   o_tj *= sigmoid(gate[row * gate_ld + j] + gate_bias[j])     (row = (b*H + h)*T + t)
 * in the norm pass (CHELA's M = Norm(O) * sigmoid(Ga)).  gate: run dtype, 16-byte aligned
 * rows (gate_ld * element size a multiple of 16, gate_ld >= dv); gate_bias: dv fp32 values. */
int linear_attn_chunked_launch_gated(const void *d_q, const void *d_k, const void *d_v,
                                     void *d_o, int B, int H, int T, int dk, int dv, int causal,
                                     int rms_norm, float rms_eps, const void *d_gate,
                                     long long gate_ld, const float *d_gate_bias, dtype_t dtype,
                                     void *d_workspace, size_t workspace_bytes,
                                     cudaStream_t stream);

/* As linear_attn_chunked_launch_gated with the RMSNorm left to the caller, so that no pass
 * reads and writes o for it:
 *   o_tj = O_tj * sigmoid(gate[row * gate_ld + j] + gate_bias[j])          (O unnormalised)
 *   d_rowsumsq[s * B*H*T + row] = sum of O_tj^2 over the 64 columns j of slice s, s < dv/64
 * (fp32, from the fp32 accumulators).  Norm(O) * sigmoid(gate) is then o_t scaled by
 * 1 / sqrt(sum_s d_rowsumsq[s][row] / dv + eps), one scalar a row, which a consumer that is
 * linear in the row (CHELA's M . Uh) can apply to its own output instead.
 * d_v_bias (NULL, or dv fp32 values): the attention uses SiLU(v_tj + d_v_bias[j]), rounded to
 * the dtype, in place of v_tj, computed as v is read (CHELA's V = SiLU(V' + bv) without a pass
 * that reads and writes V); d_v itself is not modified. */
int linear_attn_chunked_launch_gated_deferred(const void *d_q, const void *d_k, const void *d_v,
                                              void *d_o, int B, int H, int T, int dk, int dv,
                                              int causal, const void *d_gate, long long gate_ld,
                                              const float *d_gate_bias, const float *d_v_bias,
                                              float *d_rowsumsq,
                                              dtype_t dtype, void *d_workspace,
                                              size_t workspace_bytes, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
