/* passes.h: what each kernel file of linear_attn/chunked exports to the host side (launch.cu):
 * per version, `prepare` (sets the kernels' shared-memory limits and returns the resident blocks
 * an SM of its pass C kernel in *bps and of its pass A kernel in *bps_a: the occupancy the plan
 * needs) and `enqueue` (the plan's kernels on a stream, nothing else).  The kernels themselves
 * stay inside their files, each compiled once.  C++ only.  The int functions return 0, or -1
 * after bench_set_error(). */
#ifndef CHELA_LINEAR_ATTN_PASSES_H
#define CHELA_LINEAR_ATTN_PASSES_H

#include <cuda_runtime_api.h>
#include <stdint.h>

#include "linear_attn/args.h"
#include "linear_attn/plan.h"

/* v1.cu: CUDA cores; any dtype (fp32 runs nothing else). */
int lac_v1_prepare(dtype_t dt, int dk, int *bps, int *bps_a);
int lac_v1_enqueue(dtype_t dt, int dk, const lac_plan *p, const lac_ptrs &d, const lac_args &a,
                   int64_t nbh, int causal, cudaStream_t stream);

/* v2.cu: mma.sync, bf16 (bf16) or fp16.  enqueue_states is passes A and B alone, which v3
 * shares. */
int lac_v2_prepare(bool bf16, int dk, int *bps, int *bps_a);
int lac_v2_enqueue_states(bool bf16, int dk, const lac_plan *p, const lac_ptrs &d,
                          const lac_args &a, int64_t nbh, cudaStream_t stream);
int lac_v2_enqueue(bool bf16, int dk, const lac_plan *p, const lac_ptrs &d, const lac_args &a,
                   int64_t nbh, int causal, cudaStream_t stream);

/* v3.cu: the prep (A once a chunk, q16) and v3's pass C; causal, dv >= 128. */
int lac_v3_prepare(bool bf16, int dk, int *bps, int *bps_a);
int lac_v3_enqueue(bool bf16, int dk, const lac_plan *p, const lac_ptrs &d, const lac_args &a,
                   int64_t nbh, cudaStream_t stream);

/* v6_wgmma.cu: v3 on Hopper's wgmma, built for sm_90a alone.  lac_v6_usable: whether that unit
 * was built for sm_90a (CMake does so when the architectures list names 90) and device dev is
 * compute capability 9.0, the only one that runs sm_90a code; launches nothing. */
bool lac_v6_usable(int dev);
int lac_v6_prepare(bool bf16, int dk, int *bps, int *bps_a);
int lac_v6_enqueue(bool bf16, int dk, const lac_plan *p, const lac_ptrs &d, const lac_args &a,
                   int64_t nbh, cudaStream_t stream);

/* scan.cu: pass B (the scan over the part states; nothing when the plan keeps at most one a
 * sequence) and the norm pass (norm_mode 2: RMSNorm, with the gate when a.gate; norm_mode 3:
 * the gate alone). */
int lac_launch_scan(const lac_plan *p, const lac_ptrs &d, int64_t nbh, int dk, int dv,
                    cudaStream_t stream);
int lac_launch_norm(dtype_t dt, const lac_ptrs &d, const lac_args &a, cudaStream_t stream);

/* launch.cu: the plan for pr under o on the current device (the facts gathered, lac_plan_make
 * called), and the enqueue of a plan's passes (norm_mode 3 when deferred, else lac_norm_mode's),
 * which the variant (chunked.cu) shares with the exported launchers. */
int lac_make_plan(const lac_problem &pr, const lac_opts &o, lac_plan *p);
int lac_enqueue(const lac_plan *p, const lac_ptrs &d, int B, int H, int T, int dk, int dv,
                int causal, int rms_norm, float rms_eps, const void *gate, int64_t gate_ld,
                const float *gate_bias, const float *v_bias, bool deferred, dtype_t dt,
                cudaStream_t stream);

#endif
