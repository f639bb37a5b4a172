/* bwd.h: what bwd_mma.cu (the backward's kernels) exports to the variant (chunked.cu).  C++ only.
 * The int functions return 0, or -1 after bench_set_error(). */
#ifndef CHELA_LINEAR_ATTN_BWD_H
#define CHELA_LINEAR_ATTN_BWD_H

#include <cuda_runtime_api.h>

#include "linear_attn/bwd_plan.h"

/* The backward's plan for pr on the current device (its kernels' shared-memory limits set,
 * their occupancy asked, lab_plan_make called); seg_tokens > 0 forces the segment length.
 * Call outside any timed region. */
int lab_make_plan(const lac_problem &pr, int seg_tokens, lab_plan *p);

/* Enqueues the backward of plan p for pr on stream: d's operands and gradients (run dtype,
 * layouts of q, k, v), its workspace parts from lab_ws_layout.  Overwrites dq, dk, dv. */
int lab_enqueue(const lab_plan *p, const lab_ptrs &d, const lac_problem &pr, cudaStream_t stream);

#endif
