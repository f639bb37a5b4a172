/* softmax_attn/cudnn_graph.c: builders over cuDNN's backend graph API (cudnn_graph.h says
 * what each does).  Attribute names and types are cuDNN's (cudnn_graph.h of the toolkit or
 * package); nothing here knows about attention. */
#include "softmax_attn/cudnn_graph.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_check.h"

#define SET(d, name, type, n, ptr) CG_CHECK(cudnnBackendSetAttribute((d), (name), (type), (n), (ptr)))
/* The same in a builder that returns a descriptor: NULL on failure. */
#define SETD(d, name, type, n, ptr)                                                          \
    do {                                                                                     \
        if (cg_check(cudnnBackendSetAttribute((d), (name), (type), (n), (ptr)),              \
                     "cudnnBackendSetAttribute(" #name ")", __FILE__, __LINE__))             \
            return NULL;                                                                     \
    } while (0)
#define FINALIZE(d)                                                                          \
    do {                                                                                     \
        if (cg_check(cudnnBackendFinalize(d), "cudnnBackendFinalize", __FILE__, __LINE__))   \
            return NULL;                                                                     \
    } while (0)

int cg_check(cudnnStatus_t st, const char *call, const char *file, int line) {
    if (st == CUDNN_STATUS_SUCCESS) return 0;
    char msg[512] = "";
    cudnnGetLastErrorString(msg, sizeof msg); /* cuDNN 9: why, in words (empty if nothing) */
    for (char *c = msg; *c; c++) /* the CSV note keeps one line */
        if (*c == '\n' || *c == '\r') *c = ' ';
    bench_set_error(file, line, "%s: %s%s%.300s", call, cudnnGetErrorString(st), msg[0] ? ": " : "",
                    msg);
    return -1;
}

cg_desc cg_new(cg_pool_t *p, cudnnBackendDescriptorType_t type) {
    if (p->n == p->cap) {
        const int cap = p->cap ? 2 * p->cap : 64;
        cg_desc *d = realloc(p->d, (size_t)cap * sizeof *d);
        if (!d) {
            bench_set_error(__FILE__, __LINE__, "cuDNN graph: out of host memory");
            return NULL;
        }
        p->d = d;
        p->cap = cap;
    }
    cg_desc d = NULL;
    if (cg_check(cudnnBackendCreateDescriptor(type, &d), "cudnnBackendCreateDescriptor", __FILE__,
                 __LINE__))
        return NULL;
    p->d[p->n++] = d;
    return d;
}

void cg_pool_free(cg_pool_t *p) {
    for (int i = p->n - 1; i >= 0; i--) cudnnBackendDestroyDescriptor(p->d[i]);
    free(p->d);
    p->d = NULL;
    p->n = p->cap = 0;
}

cg_desc cg_tensor(cg_pool_t *p, int64_t uid, cudnnDataType_t dt, const int64_t dim[4],
                  const int64_t stride[4], int flags) {
    cg_desc t = cg_new(p, CUDNN_BACKEND_TENSOR_DESCRIPTOR);
    if (!t) return NULL;
    const int64_t align = 16;
    const bool is_virtual = (flags & CG_VIRTUAL) != 0, by_value = (flags & CG_BY_VALUE) != 0;
    SETD(t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt);
    SETD(t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dim);
    SETD(t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, stride);
    SETD(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid);
    SETD(t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align);
    SETD(t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &is_virtual);
    if (by_value) SETD(t, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &by_value);
    FINALIZE(t);
    return t;
}

cg_desc cg_pointwise(cg_pool_t *p, cudnnPointwiseMode_t mode, cudnnDataType_t prec, cg_desc x,
                     cg_desc b, cg_desc t, cg_desc y, int axis) {
    cg_desc pw = cg_new(p, CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
    if (!pw) return NULL;
    SETD(pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode);
    SETD(pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec);
    if (axis >= 0) {
        const int64_t ax = axis;
        SETD(pw, CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &ax);
    }
    FINALIZE(pw);
    cg_desc op = cg_new(p, CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
    if (!op) return NULL;
    const float one = 1.0f;
    SETD(op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &pw);
    SETD(op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
    if (b) SETD(op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b);
    if (t) SETD(op, CUDNN_ATTR_OPERATION_POINTWISE_TDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &t);
    SETD(op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
    SETD(op, CUDNN_ATTR_OPERATION_POINTWISE_ALPHA1, CUDNN_TYPE_FLOAT, 1, &one);
    if (b) SETD(op, CUDNN_ATTR_OPERATION_POINTWISE_ALPHA2, CUDNN_TYPE_FLOAT, 1, &one);
    FINALIZE(op);
    return op;
}

cg_desc cg_reduction(cg_pool_t *p, cudnnReduceTensorOp_t red, cg_desc x, cg_desc y) {
    cg_desc rd = cg_new(p, CUDNN_BACKEND_REDUCTION_DESCRIPTOR);
    if (!rd) return NULL;
    const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
    SETD(rd, CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &red);
    SETD(rd, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32);
    FINALIZE(rd);
    cg_desc op = cg_new(p, CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR);
    if (!op) return NULL;
    SETD(op, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
    SETD(op, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
    SETD(op, CUDNN_ATTR_OPERATION_REDUCTION_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &rd);
    FINALIZE(op);
    return op;
}

cg_desc cg_matmul(cg_pool_t *p, cg_desc a, cg_desc b, cg_desc c) {
    cg_desc md = cg_new(p, CUDNN_BACKEND_MATMUL_DESCRIPTOR);
    if (!md) return NULL;
    const cudnnDataType_t f32 = CUDNN_DATA_FLOAT;
    SETD(md, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32);
    FINALIZE(md);
    cg_desc op = cg_new(p, CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR);
    if (!op) return NULL;
    SETD(op, CUDNN_ATTR_OPERATION_MATMUL_ADESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &a);
    SETD(op, CUDNN_ATTR_OPERATION_MATMUL_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b);
    SETD(op, CUDNN_ATTR_OPERATION_MATMUL_CDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &c);
    SETD(op, CUDNN_ATTR_OPERATION_MATMUL_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &md);
    FINALIZE(op);
    return op;
}

cg_desc cg_reshape(cg_pool_t *p, cg_desc x, cg_desc y) {
    cg_desc op = cg_new(p, CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR);
    if (!op) return NULL;
    SETD(op, CUDNN_ATTR_OPERATION_RESHAPE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
    SETD(op, CUDNN_ATTR_OPERATION_RESHAPE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
    FINALIZE(op);
    return op;
}

cg_desc cg_graph(cg_pool_t *p, cudnnHandle_t h, const cg_desc *ops, int n) {
    cg_desc g = cg_new(p, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
    if (!g) return NULL;
    SETD(g, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &h);
    SETD(g, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, n, ops);
    FINALIZE(g);
    return g;
}

/* The engine a config names and its knob choices, for the row's config. */
static int describe_config(cg_pool_t *p, cg_desc cfg, cg_plan_t *out) {
    int64_t n = 0;
    cg_desc engine = cg_new(p, CUDNN_BACKEND_ENGINE_DESCRIPTOR);
    if (!engine) return -1;
    CG_CHECK(cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_ENGINE,
                                      CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n, &engine));
    CG_CHECK(cudnnBackendGetAttribute(engine, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64,
                                      1, &n, &out->engine));
    enum { MAX_KNOBS = 16 };
    cg_desc knob[MAX_KNOBS];
    for (int i = 0; i < MAX_KNOBS; i++)
        if (!(knob[i] = cg_new(p, CUDNN_BACKEND_KNOB_CHOICE_DESCRIPTOR))) return -1;
    CG_CHECK(cudnnBackendGetAttribute(cfg, CUDNN_ATTR_ENGINECFG_KNOB_CHOICES,
                                      CUDNN_TYPE_BACKEND_DESCRIPTOR, MAX_KNOBS, &n, knob));
    size_t k = 0;
    out->knobs[0] = 0;
    for (int i = 0; i < n && i < MAX_KNOBS && k < sizeof out->knobs; i++) {
        cudnnBackendKnobType_t type;
        int64_t value = 0, m = 0;
        CG_CHECK(cudnnBackendGetAttribute(knob[i], CUDNN_ATTR_KNOB_CHOICE_KNOB_TYPE,
                                          CUDNN_TYPE_KNOB_TYPE, 1, &m, &type));
        CG_CHECK(cudnnBackendGetAttribute(knob[i], CUDNN_ATTR_KNOB_CHOICE_KNOB_VALUE,
                                          CUDNN_TYPE_INT64, 1, &m, &value));
        const int w = snprintf(out->knobs + k, sizeof out->knobs - k, "%s%d:%lld", k ? "/" : "",
                               (int)type, (long long)value);
        if (w < 0) break;
        k += (size_t)w;
    }
    if (!out->knobs[0]) snprintf(out->knobs, sizeof out->knobs, "none");
    return 0;
}

/* Engine configs for graph g by heuristic mode `mode`; *cfgs (pool-owned) and their count. */
static int heuristics(cg_pool_t *p, cg_desc g, cudnnBackendHeurMode_t mode, cg_desc **cfgs,
                      int64_t *count) {
    cg_desc heur = cg_new(p, CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
    if (!heur) return -1;
    SET(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &g);
    SET(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode);
    CG_CHECK(cudnnBackendFinalize(heur));
    int64_t n = 0;
    CG_CHECK(cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                      CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &n, NULL));
    *count = 0;
    if (n <= 0) return 0;
    *cfgs = malloc((size_t)n * sizeof **cfgs);
    if (!*cfgs) BENCH_FAIL("cuDNN heuristics: out of host memory");
    for (int64_t i = 0; i < n; i++)
        if (!((*cfgs)[i] = cg_new(p, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR))) return -1;
    CG_CHECK(cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                      CUDNN_TYPE_BACKEND_DESCRIPTOR, n, count, *cfgs));
    return 0;
}

int cg_plan(cg_pool_t *p, cudnnHandle_t h, cg_desc graph, cg_plan_t *out) {
    static const cudnnBackendHeurMode_t modes[] = {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK};
    char last[320] = "the heuristics offered no engine config";
    memset(out, 0, sizeof *out);
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        cg_desc *cfgs = NULL;
        int64_t n = 0;
        if (heuristics(p, graph, modes[m], &cfgs, &n)) {
            free(cfgs);
            snprintf(last, sizeof last, "%s", bench_last_error());
            continue;
        }
        out->candidates += (int)n;
        for (int64_t i = 0; i < n; i++) {
            cg_desc plan = cg_new(p, CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
            if (!plan) {
                free(cfgs);
                return -1;
            }
            /* A config the engine cannot build for this graph fails here: try the next. */
            if (cg_check(cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE,
                                                  CUDNN_TYPE_HANDLE, 1, &h),
                         "execution plan handle", __FILE__, __LINE__) ||
                cg_check(cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG,
                                                  CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cfgs[i]),
                         "execution plan engine config", __FILE__, __LINE__) ||
                cg_check(cudnnBackendFinalize(plan), "execution plan finalize", __FILE__,
                         __LINE__)) {
                snprintf(last, sizeof last, "%s", bench_last_error());
                continue;
            }
            int64_t k = 0;
            if (cg_check(cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                                                  CUDNN_TYPE_INT64, 1, &k, &out->ws_bytes),
                         "execution plan workspace size", __FILE__, __LINE__) ||
                describe_config(p, cfgs[i], out)) {
                free(cfgs);
                return -1;
            }
            out->plan = plan;
            free(cfgs);
            return 0;
        }
        free(cfgs);
    }
    bench_clear_error();
    BENCH_FAIL("no cuDNN engine for this graph (%d configs tried): %s", out->candidates, last);
}

int cg_variant_pack(cg_desc *pack, int n, const int64_t *uids, void *const *ptrs, void *workspace) {
    if (*pack) cudnnBackendDestroyDescriptor(*pack);
    *pack = NULL;
    cg_desc vp = NULL;
    CG_CHECK(cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &vp));
    *pack = vp;
    SET(vp, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids);
    SET(vp, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, ptrs);
    SET(vp, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace);
    CG_CHECK(cudnnBackendFinalize(vp));
    return 0;
}
