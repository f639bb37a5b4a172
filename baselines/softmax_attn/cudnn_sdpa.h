/* softmax_attn/cudnn_sdpa.h: cuDNN's fused flash attention (SDPA) forward as a plan other code
 * creates once and launches many times, behind a plain C interface.
 *
 *   o = softmax(q k^T / sqrt(D) [+ causal mask]) v        for B*H heads of T rows, D = dk = dv
 *   stats = rowmax + log(rowsum(exp(. - rowmax)))         fp32 [B,H,T,1], the log-sum-exp a
 *                                                          backward needs (optional)
 * q, k, v and o are bf16 or fp16, each with its own layout (softmax_attn/flash.h's sa_layout_t:
 * batch, head and row strides in elements, the D elements of a row contiguous), so the
 * transformer layer hands its QKV GEMM output [B,T,3d] over without a transpose.
 *
 * The plan is built at setup (the graph, cuDNN's engine heuristics, an execution plan and its
 * workspace size, engines compiled at run time included); a launch only enqueues the plan on
 * the stream.  Built without cuDNN, or where the library cannot start (no driver, a version
 * the build cannot use), sa_cudnn_unavailable() says why and plan creation fails with that
 * reason: cudnn_none.c is then the implementation. */
#ifndef CHELA_SOFTMAX_ATTN_CUDNN_SDPA_H
#define CHELA_SOFTMAX_ATTN_CUDNN_SDPA_H

#include <cuda_runtime_api.h>
#include <stddef.h>

#include "shape.h"
#include "softmax_attn/flash.h" /* sa_layout_t */

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sa_cudnn_plan sa_cudnn_plan;

typedef struct {
    int B, H, T, D; /* D = dk = dv                                   */
    int causal;     /* 1: key s <= query t only (top-left aligned)    */
    dtype_t dt;     /* DTYPE_BF16 or DTYPE_F16                        */
    sa_layout_t q, k, v, o;
    int stats;      /* 1: the launch also writes the fp32 stats tensor */
} sa_cudnn_problem_t;

/* NULL when cuDNN can run here, else a static reason ("built without cuDNN: ...", or why
 * cudnnCreate failed).  The first call creates and destroys one handle; later calls are free. */
const char *sa_cudnn_unavailable(void);

/* Builds the graph and picks its execution plan.  0, or -1 after bench_set_error: the reason
 * cuDNN gave (no engine for this head dim, layout or version) or why it is unavailable. */
int sa_cudnn_plan_create(const sa_cudnn_problem_t *p, sa_cudnn_plan **out);
/* Device workspace the plan needs at launch (bytes; may be 0). */
size_t sa_cudnn_workspace_bytes(const sa_cudnn_plan *plan);
/* Enqueues the plan on stream s.  stats is NULL unless the plan was made with stats = 1;
 * workspace holds sa_cudnn_workspace_bytes.  No allocation, no synchronisation: the variant
 * pack is rebuilt (host descriptors only) when the pointers differ from the last launch's. */
int sa_cudnn_launch(sa_cudnn_plan *plan, const void *q, const void *k, const void *v, void *o,
                    float *stats, void *workspace, cudaStream_t s);
/* "cudnn=9.14.0 engine=4 knobs=2:3/18:1 ws=0": the runtime's version, the engine's global
 * index, its knob choices (cudnnBackendKnobType_t:value) and the workspace in bytes. */
void sa_cudnn_describe(const sa_cudnn_plan *plan, char *buf, size_t len);
void sa_cudnn_destroy(sa_cudnn_plan *plan);

/* The backward (cudnn_sdpa_bwd.c): dQ, dK, dV of L = sum(dO . o) from q, k, v, the forward's o
 * and stats (a plan made with stats = 1) and dO, by cuDNN's fused flash-attention backward.
 * Layouts: dO as o, dQ as q, dK as k, dV as v (p->stats is ignored).  Its workspace
 * (sa_cudnn_workspace_bytes) also holds two fp32 tensors of the graph: the row sums dO . o
 * [B,H,T] and dQ's accumulator [B,H,T,D].  describe says "bwd_engine=.. bwd_knobs=.. bwd_ws=..". */
int sa_cudnn_bwd_plan_create(const sa_cudnn_problem_t *p, sa_cudnn_plan **out);
int sa_cudnn_bwd_launch(sa_cudnn_plan *plan, const void *q, const void *k, const void *v,
                        const void *o, const void *d_o, const float *stats, void *dq, void *dk,
                        void *dv, void *workspace, cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif
