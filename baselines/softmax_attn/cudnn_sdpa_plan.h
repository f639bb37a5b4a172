/* softmax_attn/cudnn_sdpa_plan.h: what the forward (cudnn_sdpa.c) and the backward
 * (cudnn_sdpa_bwd.c) plans share: the plan object, the tensor ids, the causal mask's
 * sub-graph, the executing launch.  Private to those two files. */
#ifndef CHELA_SOFTMAX_ATTN_CUDNN_SDPA_PLAN_H
#define CHELA_SOFTMAX_ATTN_CUDNN_SDPA_PLAN_H

#include "softmax_attn/cudnn_graph.h"
#include "softmax_attn/cudnn_sdpa.h"

/* Unique ids of the tensors a variant pack names; virtual ones count up from UID_VIRTUAL. */
enum {
    UID_Q = 1, UID_K, UID_V, UID_O, UID_STATS, UID_SCALE, UID_NEG, /* the forward's */
    UID_DO, UID_DQ, UID_DK, UID_DV, UID_ONE, UID_SOFTMAX_SUM, UID_DQ_ACCUM, /* the backward's */
    UID_VIRTUAL = 100
};
enum { N_PACK = 16 }; /* pointers a pack names (at most 14), the last slot the workspace's */

struct sa_cudnn_plan {
    cudnnHandle_t h;
    cg_pool_t pool;
    cg_plan_t plan;
    int stats;          /* forward: the stats tensor is an output                        */
    int causal;         /* the graph has the mask (and the -FLT_MAX scalar)              */
    int bwd;            /* a backward plan                                               */
    size_t own_ws;      /* backward: bytes of softmax_sum and dQ_accum ahead of cuDNN's    */
    size_t sum_bytes;   /* backward: softmax_sum's share of own_ws                        */
    float scale, lowest, one; /* host memory of the by-value scalars (a pack points here) */
    cg_desc pack;       /* the variant pack of the last launch's pointers                */
    void *packed[N_PACK];
};

/* Checks the problem, makes the plan object and its handle.  0, or -1 after bench_set_error. */
int sa_cudnn_plan_new(const sa_cudnn_problem_t *p, sa_cudnn_plan **out);
/* Masks x (fp32 [B,H,T,T], virtual) above the diagonal with the by-value -FLT_MAX: appends its
 * four operations to ops[*n] and returns the masked tensor; NULL after bench_set_error. */
cg_desc sa_cudnn_causal_mask(sa_cudnn_plan *pl, const int64_t dim[4], const int64_t stride[4],
                             cg_desc x, int64_t *uid, cg_desc *ops, int *n);
/* Enqueues the plan with these n (uid, pointer) pairs on stream s, the variant pack rebuilt only
 * when the pointers changed.  0, or -1 after bench_set_error. */
int sa_cudnn_execute(sa_cudnn_plan *pl, int n, const int64_t *uids, void *const *ptrs,
                     void *workspace, cudaStream_t s);

#endif
