/* softmax_attn/cudnn_none.c: cudnn_sdpa.h in a build without cuDNN (CMake found none: see
 * the README's "cuDNN" section).  Every entry point says so, and nothing here links cuDNN,
 * so softmax_attn/cudnn's rows are skip:unavailable and transformer/layer uses its flash
 * attention. */
#include <stdio.h>

#include "bench_check.h"
#include "softmax_attn/cudnn_sdpa.h"

#define NOT_BUILT "built without cuDNN: not found at configure time; set CUDNN_ROOT"

const char *sa_cudnn_unavailable(void) { return NOT_BUILT; }

int sa_cudnn_plan_create(const sa_cudnn_problem_t *p, sa_cudnn_plan **out) {
    (void)p;
    *out = NULL;
    BENCH_FAIL("%s", NOT_BUILT);
}

size_t sa_cudnn_workspace_bytes(const sa_cudnn_plan *plan) {
    (void)plan;
    return 0;
}

int sa_cudnn_launch(sa_cudnn_plan *plan, const void *q, const void *k, const void *v, void *o,
                    float *stats, void *workspace, cudaStream_t s) {
    (void)plan, (void)q, (void)k, (void)v, (void)o, (void)stats, (void)workspace, (void)s;
    BENCH_FAIL("%s", NOT_BUILT);
}

void sa_cudnn_describe(const sa_cudnn_plan *plan, char *buf, size_t len) {
    (void)plan;
    if (len) buf[0] = 0;
}

void sa_cudnn_destroy(sa_cudnn_plan *plan) { (void)plan; }

int sa_cudnn_bwd_plan_create(const sa_cudnn_problem_t *p, sa_cudnn_plan **out) {
    return sa_cudnn_plan_create(p, out);
}

int sa_cudnn_bwd_launch(sa_cudnn_plan *plan, const void *q, const void *k, const void *v,
                        const void *o, const void *d_o, const float *stats, void *dq, void *dk,
                        void *dv, void *workspace, cudaStream_t s) {
    (void)plan, (void)q, (void)k, (void)v, (void)o, (void)d_o, (void)stats, (void)dq, (void)dk;
    (void)dv, (void)workspace, (void)s;
    BENCH_FAIL("%s", NOT_BUILT);
}
