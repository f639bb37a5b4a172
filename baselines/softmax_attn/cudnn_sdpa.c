/* softmax_attn/cudnn_sdpa.c: cuDNN's fused flash attention forward through the backend graph
 * API (cudnn_sdpa.h is the interface, cudnn_graph.h the descriptor builders).
 *
 * cuDNN has no "attention" call in its backend API before the unified SDPA operation of recent
 * releases; what it has (since 8.9) is a runtime-fusion engine that recognises the attention
 * pattern in an operation graph and runs one fused flash-attention kernel for it.  The graph
 * below is that pattern, the one cudnn-frontend's SDPA node lowers to (tensors fp32 unless
 * said, [B,H,T,T] scores and [B,H,T,1] row statistics all virtual, never in memory):
 *
 *   S  = Q . K^T                          matmul; K^T is K's descriptor with its last two dims
 *                                         and strides swapped: no copy
 *   S' = S * scale                        pointwise MUL by a by-value fp32 scalar 1/sqrt(D)
 *   causal only:
 *     r = gen_index(S', axis 2)  c = gen_index(S', axis 3)      int32 row / column indices
 *     m = r >= c                                                 CMP_GE, boolean
 *     S' = m ? S' : lowest                BINARY_SELECT with a by-value -FLT_MAX (what the
 *                                         frontend uses, not -inf: exp(lowest - max) = 0)
 *   M  = max over keys of S'              reduction MAX      -> [B,H,T,1]
 *   E  = exp(S' - M)                      pointwise SUB, EXP
 *   L  = sum over keys of E               reduction ADD      -> [B,H,T,1]
 *   St = M + log(L)                       LOG, ADD -> the stats output [B,H,T,1] when asked
 *                                         for, else virtual (the frontend keeps the chain even
 *                                         then)
 *   P  = E / L                            DIV, in the I/O dtype: the second matmul's A operand
 *                                         must be bf16/fp16
 *   O  = P . V                            matmul -> the output, its own strides
 *
 * The heuristics (mode A, then the fallback list) then rank the engines that accept the
 * graph; the first config whose execution plan finalizes is kept, with its workspace size. */
#include "softmax_attn/cudnn_sdpa.h"

#include <cuda_runtime_api.h>
#include <cudnn_graph.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_check.h"
#include "softmax_attn/cudnn_sdpa_plan.h"

static void version_text(size_t v, char *buf, size_t len) {
    /* 9.x: major * 10000 + minor * 100 + patch */
    snprintf(buf, len, "%zu.%zu.%zu", v / 10000, (v / 100) % 100, v % 100);
}

const char *sa_cudnn_unavailable(void) {
    static int checked;
    static char why[200];
    if (checked) return why[0] ? why : NULL;
    checked = 1;
    if (cudnnGetVersion() < 90000) {
        char run[32];
        version_text(cudnnGetVersion(), run, sizeof run);
        snprintf(why, sizeof why, "cuDNN %s at run time: the graph API needs 9.0 or newer", run);
        return why;
    }
    /* No device, no cuDNN: asked first, so a GPU-less machine (CI's) never starts cuDNN up. */
    int devices = 0;
    const cudaError_t ce = cudaGetDeviceCount(&devices);
    if (ce != cudaSuccess || devices == 0) {
        snprintf(why, sizeof why, "cuDNN found at build but no CUDA device to run it on (%s)",
                 ce != cudaSuccess ? cudaGetErrorString(ce) : "no device");
        (void)cudaGetLastError();
        return why;
    }
    cudnnHandle_t h = NULL;
    const cudnnStatus_t st = cudnnCreate(&h);
    if (st != CUDNN_STATUS_SUCCESS) {
        char msg[160] = "";
        cudnnGetLastErrorString(msg, sizeof msg);
        for (char *c = msg; *c; c++)
            if (*c == '\n' || *c == '\r') *c = ' ';
        snprintf(why, sizeof why, "cuDNN found at build but cudnnCreate failed: %s%s%.120s",
                 cudnnGetErrorString(st), msg[0] ? ": " : "", msg);
        (void)cudaGetLastError();
        return why;
    }
    cudnnDestroy(h);
    return NULL;
}

static cudnnDataType_t io_type(dtype_t t) { return t == DTYPE_F16 ? CUDNN_DATA_HALF : CUDNN_DATA_BFLOAT16; }

cg_desc sa_cudnn_causal_mask(sa_cudnn_plan *pl, const int64_t dim[4], const int64_t stride[4],
                             cg_desc x, int64_t *uid, cg_desc *ops, int *n) {
    cg_pool_t *P = &pl->pool;
    const int64_t one[4] = {1, 1, 1, 1};
    cg_desc row = cg_tensor(P, (*uid)++, CUDNN_DATA_INT32, dim, stride, CG_VIRTUAL);
    cg_desc col = cg_tensor(P, (*uid)++, CUDNN_DATA_INT32, dim, stride, CG_VIRTUAL);
    cg_desc keep = cg_tensor(P, (*uid)++, CUDNN_DATA_BOOLEAN, dim, stride, CG_VIRTUAL);
    cg_desc masked = cg_tensor(P, (*uid)++, CUDNN_DATA_FLOAT, dim, stride, CG_VIRTUAL);
    cg_desc lowest = cg_tensor(P, UID_NEG, CUDNN_DATA_FLOAT, one, one, CG_BY_VALUE);
    if (!row || !col || !keep || !masked || !lowest) return NULL;
    if (!(ops[(*n)++] = cg_pointwise(P, CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_INT32, x, NULL, NULL,
                                     row, 2)) ||
        !(ops[(*n)++] = cg_pointwise(P, CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_INT32, x, NULL, NULL,
                                     col, 3)) ||
        !(ops[(*n)++] = cg_pointwise(P, CUDNN_POINTWISE_CMP_GE, CUDNN_DATA_BOOLEAN, row, col, NULL,
                                     keep, -1)) ||
        !(ops[(*n)++] = cg_pointwise(P, CUDNN_POINTWISE_BINARY_SELECT, CUDNN_DATA_FLOAT, x, lowest,
                                     keep, masked, -1)))
        return NULL;
    return masked;
}

int sa_cudnn_plan_new(const sa_cudnn_problem_t *p, sa_cudnn_plan **out) {
    *out = NULL;
    const char *why = sa_cudnn_unavailable();
    if (why) BENCH_FAIL("%s", why);
    if (p->dt != DTYPE_BF16 && p->dt != DTYPE_F16) BENCH_FAIL("cuDNN SDPA: bf16 or fp16 only");
    if (p->B <= 0 || p->H <= 0 || p->T <= 0 || p->D <= 0) BENCH_FAIL("cuDNN SDPA: empty shape");
    sa_cudnn_plan *pl = calloc(1, sizeof *pl);
    if (!pl) BENCH_FAIL("cuDNN SDPA: out of host memory");
    pl->stats = p->stats;
    pl->causal = p->causal;
    pl->scale = (float)(1.0 / sqrt((double)p->D));
    pl->lowest = -FLT_MAX;
    pl->one = 1.0f;
    if (cg_check(cudnnCreate(&pl->h), "cudnnCreate", __FILE__, __LINE__)) {
        free(pl);
        return -1;
    }
    *out = pl;
    return 0;
}

int sa_cudnn_execute(sa_cudnn_plan *pl, int n, const int64_t *uids, void *const *ptrs,
                     void *workspace, cudaStream_t s) {
    void *key[N_PACK] = {0};
    memcpy(key, ptrs, (size_t)n * sizeof *ptrs);
    key[N_PACK - 1] = workspace;
    if (!pl->pack || memcmp(key, pl->packed, sizeof key) != 0) {
        if (cg_variant_pack(&pl->pack, n, uids, ptrs, workspace)) {
            memset(pl->packed, 0, sizeof pl->packed);
            return -1;
        }
        memcpy(pl->packed, key, sizeof key);
    }
    CG_CHECK(cudnnSetStream(pl->h, s));
    CG_CHECK(cudnnBackendExecute(pl->h, pl->plan.plan, pl->pack));
    return 0;
}

/* The graph of the header comment; ops[] gets its operations in data-flow order. */
static int build_graph(sa_cudnn_plan *pl, const sa_cudnn_problem_t *p, cg_desc *graph) {
    cg_pool_t *P = &pl->pool;
    const int64_t B = p->B, H = p->H, T = p->T, D = p->D;
    const cudnnDataType_t io = io_type(p->dt), f32 = CUDNN_DATA_FLOAT;
    const int64_t dq[4] = {B, H, T, D}, sq[4] = {p->q.batch, p->q.head, p->q.row, 1};
    const int64_t dkt[4] = {B, H, D, T}, skt[4] = {p->k.batch, p->k.head, 1, p->k.row};
    const int64_t sv[4] = {p->v.batch, p->v.head, p->v.row, 1};
    const int64_t so[4] = {p->o.batch, p->o.head, p->o.row, 1};
    const int64_t ds[4] = {B, H, T, T}, ss[4] = {H * T * T, T * T, T, 1};
    const int64_t dr[4] = {B, H, T, 1}, sr[4] = {H * T, T, 1, 1};
    const int64_t one[4] = {1, 1, 1, 1};
    int64_t uid = UID_VIRTUAL;
#define VIRT(dt, dim, stride) cg_tensor(P, uid++, (dt), (dim), (stride), CG_VIRTUAL)
    cg_desc q = cg_tensor(P, UID_Q, io, dq, sq, 0), kt = cg_tensor(P, UID_K, io, dkt, skt, 0);
    cg_desc v = cg_tensor(P, UID_V, io, dq, sv, 0), o = cg_tensor(P, UID_O, io, dq, so, 0);
    cg_desc scale = cg_tensor(P, UID_SCALE, f32, one, one, CG_BY_VALUE);
    if (!q || !kt || !v || !o || !scale) return -1;
    cg_desc ops[16];
    int n = 0;
#define OP(x)                          \
    do {                               \
        if (!(ops[n++] = (x))) return -1; \
    } while (0)

    cg_desc s = VIRT(f32, ds, ss), s1 = VIRT(f32, ds, ss);
    if (!s || !s1) return -1;
    OP(cg_matmul(P, q, kt, s));
    OP(cg_pointwise(P, CUDNN_POINTWISE_MUL, f32, s, scale, NULL, s1, -1));
    if (p->causal && !(s1 = sa_cudnn_causal_mask(pl, ds, ss, s1, &uid, ops, &n))) return -1;
    cg_desc mx = VIRT(f32, dr, sr), z = VIRT(f32, ds, ss), e = VIRT(f32, ds, ss);
    cg_desc sum = VIRT(f32, dr, sr), lg = VIRT(f32, dr, sr);
    cg_desc st = p->stats ? cg_tensor(P, UID_STATS, f32, dr, sr, 0) : VIRT(f32, dr, sr);
    cg_desc prob = VIRT(io, ds, ss);
    if (!mx || !z || !e || !sum || !lg || !st || !prob) return -1;
    OP(cg_reduction(P, CUDNN_REDUCE_TENSOR_MAX, s1, mx));
    OP(cg_pointwise(P, CUDNN_POINTWISE_SUB, f32, s1, mx, NULL, z, -1));
    OP(cg_pointwise(P, CUDNN_POINTWISE_EXP, f32, z, NULL, NULL, e, -1));
    OP(cg_reduction(P, CUDNN_REDUCE_TENSOR_ADD, e, sum));
    OP(cg_pointwise(P, CUDNN_POINTWISE_LOG, f32, sum, NULL, NULL, lg, -1));
    OP(cg_pointwise(P, CUDNN_POINTWISE_ADD, f32, mx, lg, NULL, st, -1));
    OP(cg_pointwise(P, CUDNN_POINTWISE_DIV, f32, e, sum, NULL, prob, -1));
    OP(cg_matmul(P, prob, v, o));
#undef OP
#undef VIRT
    *graph = cg_graph(P, pl->h, ops, n);
    return *graph ? 0 : -1;
}

int sa_cudnn_plan_create(const sa_cudnn_problem_t *p, sa_cudnn_plan **out) {
    sa_cudnn_plan *pl = NULL;
    cg_desc graph = NULL;
    *out = NULL;
    if (sa_cudnn_plan_new(p, &pl)) return -1;
    if (build_graph(pl, p, &graph) || cg_plan(&pl->pool, pl->h, graph, &pl->plan)) {
        sa_cudnn_destroy(pl);
        return -1;
    }
    *out = pl;
    return 0;
}

size_t sa_cudnn_workspace_bytes(const sa_cudnn_plan *pl) {
    if (!pl) return 0;
    return pl->own_ws + (pl->plan.ws_bytes > 0 ? (size_t)pl->plan.ws_bytes : 0);
}

int sa_cudnn_launch(sa_cudnn_plan *pl, const void *q, const void *k, const void *v, void *o,
                    float *stats, void *workspace, cudaStream_t s) {
    if (!pl || pl->bwd) BENCH_FAIL("cuDNN SDPA: launch without a forward plan");
    if (pl->stats && !stats) BENCH_FAIL("cuDNN SDPA: the plan writes stats: give a buffer");
    /* By-value scalars travel as host pointers to the values kept in the plan.  The pack names
     * exactly the graph's non-virtual tensors: -FLT_MAX only when causal, stats only when kept
     * (an id the graph lacks is refused: CUDNN_STATUS_BAD_PARAM_NULL_POINTER). */
    void *ptrs[N_PACK] = {(void *)q, (void *)k, (void *)v, o, &pl->scale};
    int64_t uids[N_PACK] = {UID_Q, UID_K, UID_V, UID_O, UID_SCALE};
    int n = 5;
    if (pl->causal) {
        uids[n] = UID_NEG;
        ptrs[n++] = &pl->lowest;
    }
    if (pl->stats) {
        uids[n] = UID_STATS;
        ptrs[n++] = stats;
    }
    return sa_cudnn_execute(pl, n, uids, ptrs, workspace, s);
}

void sa_cudnn_describe(const sa_cudnn_plan *pl, char *buf, size_t len) {
    char run[32];
    if (!len) return;
    buf[0] = 0;
    if (!pl) return;
    version_text(cudnnGetVersion(), run, sizeof run);
    if (pl->bwd)
        snprintf(buf, len, "bwd_engine=%lld bwd_knobs=%s bwd_ws=%zu", (long long)pl->plan.engine,
                 pl->plan.knobs, sa_cudnn_workspace_bytes(pl));
    else
        snprintf(buf, len, "cudnn=%s engine=%lld knobs=%s ws=%lld", run, (long long)pl->plan.engine,
                 pl->plan.knobs, (long long)pl->plan.ws_bytes);
}

void sa_cudnn_destroy(sa_cudnn_plan *pl) {
    if (!pl) return;
    if (pl->pack) cudnnBackendDestroyDescriptor(pl->pack);
    cg_pool_free(&pl->pool);
    if (pl->h) cudnnDestroy(pl->h);
    free(pl);
}
