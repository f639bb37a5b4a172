/* softmax_attn/cudnn_graph.h: small builders over cuDNN 9's backend graph API (cudnn_graph.h),
 * so that a graph reads as its operations and not as attribute calls.
 *
 * The backend API is plain C: every object is an opaque descriptor, created, given its
 * attributes one cudnnBackendSetAttribute at a time, then finalized.  Here every descriptor a
 * graph needs is made through one pool (cg_pool_t) and destroyed with it, so an error half way
 * through a graph leaks nothing.  Each builder returns the finalized descriptor, or NULL after
 * bench_set_error (bench_check.h) with cuDNN's status and its last error message.
 *
 * Compiled only where CMake found cuDNN (CHELA_HAVE_CUDNN); cudnn_none.c stands in otherwise. */
#ifndef CHELA_SOFTMAX_ATTN_CUDNN_GRAPH_H
#define CHELA_SOFTMAX_ATTN_CUDNN_GRAPH_H

#include <cudnn_graph.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef cudnnBackendDescriptor_t cg_desc;

typedef struct {
    cg_desc *d; /* every descriptor made through the pool, in order */
    int n, cap;
} cg_pool_t;

/* Records a failed cuDNN call (status, its string and cudnnGetLastErrorString's message, on
 * one line) with bench_set_error and returns -1; returns 0 for CUDNN_STATUS_SUCCESS. */
int cg_check(cudnnStatus_t st, const char *call, const char *file, int line);
#define CG_CHECK(call)                                                 \
    do {                                                               \
        if (cg_check((call), #call, __FILE__, __LINE__)) return -1;    \
    } while (0)

/* A new descriptor of this type, owned by the pool; NULL after bench_set_error. */
cg_desc cg_new(cg_pool_t *p, cudnnBackendDescriptorType_t type);
/* Destroys every descriptor of the pool, newest first. */
void cg_pool_free(cg_pool_t *p);

/* Tensor flags. */
#define CG_VIRTUAL 1  /* an intermediate: never in memory, no data pointer     */
#define CG_BY_VALUE 2 /* a scalar passed by value: its data pointer is host memory */

/* A 4-d tensor, dims and strides in elements, 16-byte aligned, unique id uid. */
cg_desc cg_tensor(cg_pool_t *p, int64_t uid, cudnnDataType_t dt, const int64_t dim[4],
                  const int64_t stride[4], int flags);
/* y = mode(x [, b [, t]]) computed in prec: b for binary modes, t the condition of
 * CUDNN_POINTWISE_BINARY_SELECT (y = t ? x : b); axis >= 0 only for CUDNN_POINTWISE_GEN_INDEX. */
cg_desc cg_pointwise(cg_pool_t *p, cudnnPointwiseMode_t mode, cudnnDataType_t prec, cg_desc x,
                     cg_desc b, cg_desc t, cg_desc y, int axis);
/* y = op over the dims where y is 1 and x is not (fp32 arithmetic). */
cg_desc cg_reduction(cg_pool_t *p, cudnnReduceTensorOp_t op, cg_desc x, cg_desc y);
/* c = a b, batched over the leading dims (fp32 accumulation). */
cg_desc cg_matmul(cg_pool_t *p, cg_desc a, cg_desc b, cg_desc c);
/* y = x seen with y's dims, strides and data type (a transpose, by strides). */
cg_desc cg_reshape(cg_pool_t *p, cg_desc x, cg_desc y);
/* The operation graph of ops[0..n). */
cg_desc cg_graph(cg_pool_t *p, cudnnHandle_t h, const cg_desc *ops, int n);

/* The execution plan chosen for a graph. */
typedef struct {
    cg_desc plan;
    int64_t engine;       /* the engine's global index                           */
    int64_t ws_bytes;     /* the workspace the plan needs                         */
    char knobs[96];       /* its knob choices, "type:value" joined by '/'         */
    int candidates;       /* engine configs the heuristics offered                */
} cg_plan_t;

/* Asks the heuristics (mode A, then the fallback list) for engine configs and keeps the first
 * whose execution plan finalizes.  Returns 0, or -1 after bench_set_error saying why (the
 * last config's cuDNN message when none finalized). */
int cg_plan(cg_pool_t *p, cudnnHandle_t h, cg_desc graph, cg_plan_t *out);

/* A variant pack: the data pointer of each uid (device memory; host memory for a by-value
 * tensor) and the workspace.  *pack is destroyed first if set.  0, or -1 after bench_set_error. */
int cg_variant_pack(cg_desc *pack, int n, const int64_t *uids, void *const *ptrs, void *workspace);

#ifdef __cplusplus
}
#endif
#endif
