/* launch.cu: the host side of linear_attn/chunked between the planner (plan.c) and the kernel
 * files (passes.h): the device facts the planner needs, gathered when a plan is made; the
 * enqueue that turns a plan into its passes; and the exported launchers of chunked.h: the plan
 * API (a plan made once, in the caller's setup, then launches that only enqueue) and the older
 * one-call launchers, which plan at every call. */
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bench_check.h"
#include "linear_attn/chunked.h"
#include "linear_attn/passes.h"
#include "linear_attn/plan.h"

namespace {

/* Sets the kernels' attributes and returns the resident blocks per SM of pass C and pass A of
 * this version (passes.h). */
int lac_prepare(int version, int dk, dtype_t dt, int *bps, int *bps_a) {
    const bool bf16 = dt == DTYPE_BF16;
    if (version == 6) return lac_v6_prepare(bf16, dk, bps, bps_a);
    if (version == 3) return lac_v3_prepare(bf16, dk, bps, bps_a);
    if (version == 2) return lac_v2_prepare(bf16, dk, bps, bps_a);
    return lac_v1_prepare(dt, dk, bps, bps_a);
}

/* lac_prepare once per (device, version, dk, dtype): the one-call launchers plan on every call,
 * inside the caller's timed region, and the attributes and occupancies do not change.  Single-
 * threaded use, as the harness and the layer make. */
int lac_prepare_cached(int dev, int version, int dk, dtype_t dt, int *bps, int *bps_a) {
    enum { DEVS = 16 };
    static int cache[DEVS][7][2][3][2]; /* [dev][version][dk 64/128][dtype][bps, bps_a] + 1 */
    const int di = dev, vi = version, ki = dk == 128, ti = (int)dt;
    if (di < 0 || di >= DEVS || vi < 1 || vi > 6 || ti < 0 || ti > 2)
        return lac_prepare(version, dk, dt, bps, bps_a);
    int *c = cache[di][vi][ki][ti];
    if (c[0] == 0) {
        int b = 0, ba = 0;
        if (lac_prepare(version, dk, dt, &b, &ba)) return -1;
        c[0] = b + 1;
        c[1] = ba + 1;
    }
    *bps = c[0] - 1;
    *bps_a = c[1] - 1;
    return 0;
}

/* What the planner needs of the device (plan.h), for the version it picks for pr under o. */
int lac_device_facts_get(const lac_problem &pr, const lac_opts &o, lac_device_facts *f) {
    int dev = 0;
    memset(f, 0, sizeof(*f));
    CUDA_CHECK(cudaGetDevice(&dev));
    f->v6_usable = lac_v6_usable(dev) ? 1 : 0;
    f->version = lac_plan_version(&pr, &o, f->v6_usable);
    CUDA_CHECK(cudaDeviceGetAttribute(&f->sms, cudaDevAttrMultiProcessorCount, dev));
    return lac_prepare_cached(dev, f->version, pr.dk, pr.dtype, &f->bps_c, &f->bps_a);
}

} /* namespace */

/* The plan for pr under o on the current device. */
int lac_make_plan(const lac_problem &pr, const lac_opts &o, lac_plan *p) {
    lac_device_facts f;
    if (lac_device_facts_get(pr, o, &f)) return -1;
    return lac_plan_make(&pr, &o, &f, p);
}

/* Enqueues passes A, B, C (and the norm pass) of a plan. */
int lac_enqueue(const lac_plan *p, const lac_ptrs &d, int B, int H, int T, int dk, int dv,
                int causal, int rms_norm, float rms_eps, const void *gate, int64_t gate_ld,
                const float *gate_bias, const float *v_bias, bool deferred, dtype_t dt,
                cudaStream_t stream) {
    lac_args a;
    a.rows = (int64_t)B * H * T;
    a.T = T;
    a.dv = dv;
    a.nslices = p->nslices;
    a.nseg = p->nseg;
    a.seg_chunks = p->seg_chunks;
    a.nseg_ws = p->nseg_ws;
    a.sub = p->sub;
    a.sub_chunks = p->sub_chunks;
    a.ws_per_bh = p->ws_per_bh;
    a.norm_mode = deferred ? 3 : lac_norm_mode(p, rms_norm, gate != NULL);
    a.gate = gate;
    a.gate_ld = gate_ld;
    a.gate_bias = gate_bias;
    a.v_bias = v_bias;
    a.scale = 1.0f / sqrtf((float)dk);
    a.rms_eps = rms_eps;
    const int64_t nbh = (int64_t)B * H;
    const bool bf16 = dt == DTYPE_BF16;
    if (p->version == 6) return lac_v6_enqueue(bf16, dk, p, d, a, nbh, stream);
    if (p->version == 3) return lac_v3_enqueue(bf16, dk, p, d, a, nbh, stream);
    if (p->version == 2) {
        if (dt != DTYPE_BF16 && dt != DTYPE_F16)
            BENCH_FAIL("linear_attn/chunked v2 needs bf16 or fp16");
        return lac_v2_enqueue(bf16, dk, p, d, a, nbh, causal, stream);
    }
    return lac_v1_enqueue(dt, dk, p, d, a, nbh, causal, stream);
}


/* ---- the plan API (chunked.h) ---------------------------------------------------------------- */

struct linear_attn_plan {
    lac_problem pr;
    lac_plan plan;
};

namespace {

/* The operands' checks every launch makes (who: the function named in the message). */
int lac_check_operands(const char *who, const lac_problem &pr, const void *d_q, const void *d_k,
                       const void *d_v, void *d_o, int rms_norm, const void *d_gate,
                       long long gate_ld, const float *d_gate_bias, const float *d_rss) {
    const void *ptrs[4] = {d_q, d_k, d_v, d_o};
    for (int i = 0; i < 4; i++)
        if (!ptrs[i] || ((uintptr_t)ptrs[i] & 15u))
            BENCH_FAIL("%s: q, k, v, o must be 16-byte aligned", who);
    if (d_gate) {
        const size_t esize = pr.dtype == DTYPE_F32 ? 4 : 2;
        if (!rms_norm) BENCH_FAIL("%s: the gate rides the RMSNorm pass", who);
        if (!d_gate_bias || ((uintptr_t)d_gate & 15u) || gate_ld < pr.dv ||
            ((size_t)gate_ld * esize) % 16 != 0)
            BENCH_FAIL("%s: gate needs a bias, 16-byte aligned rows and gate_ld >= dv", who);
    }
    if (d_rss && ((uintptr_t)d_rss & 3u))
        BENCH_FAIL("%s: row sums of squares need 4-byte alignment", who);
    return 0;
}

/* The deferred launch's own checks. */
int lac_check_deferred(const char *who, const float *d_v_bias, const float *d_rowsumsq) {
    if (!d_rowsumsq) BENCH_FAIL("%s: deferred norm without a row-sum buffer", who);
    if (d_v_bias && ((uintptr_t)d_v_bias & 3u))
        BENCH_FAIL("%s: v bias needs 4-byte alignment", who);
    return 0;
}

/* A planned launch: the workspace checked against the plan, carved, the passes enqueued;
 * d_rss != NULL is the deferred-norm mode (norm_mode 3). */
int lac_launch_planned(const char *who, const linear_attn_plan &h, const void *d_q,
                       const void *d_k, const void *d_v, void *d_o, int rms_norm, float rms_eps,
                       const void *d_gate, long long gate_ld, const float *d_gate_bias,
                       const float *d_v_bias, float *d_rss, void *d_workspace,
                       size_t workspace_bytes, cudaStream_t stream) {
    const lac_problem &pr = h.pr;
    const lac_plan *p = &h.plan;
    const int norm_mode = d_rss ? 3 : lac_norm_mode(p, rms_norm, d_gate != NULL);
    const size_t need = lac_ws_layout(p, norm_mode, NULL, NULL);
    if (need > 0 && (!d_workspace || need > workspace_bytes))
        BENCH_FAIL("%s: workspace %zu B < %zu B needed", who,
                   d_workspace ? workspace_bytes : (size_t)0, need);
    if ((uintptr_t)d_workspace & 15u) BENCH_FAIL("%s: workspace must be 16-byte aligned", who);
    lac_ptrs d = {d_q, d_k, d_v, d_o, NULL, NULL, NULL, NULL, NULL};
    lac_ws_layout(p, norm_mode, d_workspace, &d);
    if (d_rss) d.rowpart = d_rss;
    return lac_enqueue(p, d, pr.B, pr.H, pr.T, pr.dk, pr.dv, pr.causal, rms_norm, rms_eps, d_gate,
                       (int64_t)gate_ld, d_gate_bias, d_v_bias, d_rss != NULL, pr.dtype, stream);
}

} /* namespace */

extern "C" linear_attn_plan_t *linear_attn_plan_create(int B, int H, int T, int dk, int dv,
                                                       int causal, dtype_t dtype,
                                                       const struct settings *set) {
    const lac_problem pr = {B, H, T, dk, dv, causal ? 1 : 0, dtype};
    const char *why = lac_shape_reason(&pr);
    if (why) {
        bench_set_error(__FILE__, __LINE__, "linear_attn_plan_create: %s", why);
        return NULL;
    }
    linear_attn_plan_t *h = (linear_attn_plan_t *)calloc(1, sizeof(*h));
    if (!h) {
        bench_set_error(__FILE__, __LINE__, "linear_attn_plan_create: out of host memory");
        return NULL;
    }
    h->pr = pr;
    if (lac_make_plan(pr, lac_opts_from(set), &h->plan)) {
        free(h);
        return NULL;
    }
    return h;
}

extern "C" void linear_attn_plan_destroy(linear_attn_plan_t *p) { free(p); }

extern "C" size_t linear_attn_plan_workspace(const linear_attn_plan_t *p, linear_attn_out_t out) {
    if (!p) return 0;
    const int norm_mode = out == LINEAR_ATTN_OUT_DEFERRED
                              ? 3
                              : lac_norm_mode(&p->plan, out != LINEAR_ATTN_OUT_PLAIN,
                                              out == LINEAR_ATTN_OUT_RMSNORM_GATED);
    return lac_ws_layout(&p->plan, norm_mode, NULL, NULL);
}

extern "C" size_t linear_attn_workspace_bound(int B, int H, int T, int dk, int dv,
                                              const struct settings *set) {
    const lac_opts o = lac_opts_from(set);
    return lac_launcher_workspace_bound(B, H, T, dk, dv, &o);
}

extern "C" int linear_attn_plan_describe(const linear_attn_plan_t *p, const char *prefix,
                                         char *buf, size_t len) {
    if (len) buf[0] = 0;
    if (!p) BENCH_FAIL("linear_attn_plan_describe: no plan");
    if (len) lac_plan_words(&p->plan, prefix ? prefix : "", buf, len);
    return 0;
}

extern "C" int linear_attn_plan_launch(const linear_attn_plan_t *p, const void *d_q,
                                       const void *d_k, const void *d_v, void *d_o,
                                       int rms_norm, float rms_eps, const void *d_gate,
                                       long long gate_ld, const float *d_gate_bias,
                                       void *d_workspace, size_t workspace_bytes,
                                       cudaStream_t stream) {
    static const char who[] = "linear_attn_plan_launch";
    if (!p) BENCH_FAIL("%s: no plan", who);
    if (lac_check_operands(who, p->pr, d_q, d_k, d_v, d_o, rms_norm, d_gate, gate_ld,
                           d_gate_bias, NULL))
        return -1;
    return lac_launch_planned(who, *p, d_q, d_k, d_v, d_o, rms_norm, rms_eps, d_gate, gate_ld,
                              d_gate_bias, NULL, NULL, d_workspace, workspace_bytes, stream);
}

extern "C" int linear_attn_plan_launch_gated_deferred(
    const linear_attn_plan_t *p, const void *d_q, const void *d_k, const void *d_v, void *d_o,
    const void *d_gate, long long gate_ld, const float *d_gate_bias, const float *d_v_bias,
    float *d_rowsumsq, void *d_workspace, size_t workspace_bytes, cudaStream_t stream) {
    static const char who[] = "linear_attn_plan_launch_gated_deferred";
    if (!p) BENCH_FAIL("%s: no plan", who);
    if (lac_check_deferred(who, d_v_bias, d_rowsumsq) ||
        lac_check_operands(who, p->pr, d_q, d_k, d_v, d_o, 1, d_gate, gate_ld, d_gate_bias,
                           d_rowsumsq))
        return -1;
    return lac_launch_planned(who, *p, d_q, d_k, d_v, d_o, 1, 0.f, d_gate, gate_ld, d_gate_bias,
                              d_v_bias, d_rowsumsq, d_workspace, workspace_bytes, stream);
}

/* ---- the one-call launchers (chunked.h): plan with every setting auto, launch -------------- */

extern "C" int linear_attn_chunked_describe(int B, int H, int T, int dk, int dv, int causal,
                                            dtype_t dtype, const char *prefix, char *buf,
                                            size_t len) {
    if (len) buf[0] = 0;
    const lac_problem pr = {B, H, T, dk, dv, causal ? 1 : 0, dtype};
    const char *why = lac_shape_reason(&pr);
    if (why) BENCH_FAIL("linear_attn_chunked_describe: %s", why);
    lac_plan p;
    if (lac_make_plan(pr, lac_opts_auto(), &p)) return -1;
    if (len) lac_plan_words(&p, prefix ? prefix : "", buf, len);
    return 0;
}

extern "C" size_t linear_attn_chunked_workspace(int B, int H, int T, int dk, int dv) {
    return linear_attn_workspace_bound(B, H, T, dk, dv, NULL);
}

namespace {

/* The one-call launchers' body: the plan on the stack (no allocation in the caller's timed
 * region), made at every call; d_rss != NULL is the deferred-norm mode. */
int lac_launch_any(const void *d_q, const void *d_k, const void *d_v, void *d_o, int B, int H,
                   int T, int dk, int dv, int causal, int rms_norm, float rms_eps,
                   const void *d_gate, long long gate_ld, const float *d_gate_bias,
                   const float *d_v_bias, float *d_rss, dtype_t dtype, void *d_workspace,
                   size_t workspace_bytes, cudaStream_t stream) {
    static const char who[] = "linear_attn_chunked_launch";
    linear_attn_plan h;
    h.pr = {B, H, T, dk, dv, causal ? 1 : 0, dtype};
    const char *why = lac_shape_reason(&h.pr);
    if (why) BENCH_FAIL("%s: %s", who, why);
    if (lac_check_operands(who, h.pr, d_q, d_k, d_v, d_o, rms_norm, d_gate, gate_ld, d_gate_bias,
                           d_rss))
        return -1;
    if (lac_make_plan(h.pr, lac_opts_auto(), &h.plan)) return -1;
    return lac_launch_planned(who, h, d_q, d_k, d_v, d_o, rms_norm, rms_eps, d_gate, gate_ld,
                              d_gate_bias, d_v_bias, d_rss, d_workspace, workspace_bytes, stream);
}

} /* namespace */

extern "C" int linear_attn_chunked_launch_gated(const void *d_q, const void *d_k,
                                                const void *d_v, void *d_o, int B, int H, int T,
                                                int dk, int dv, int causal, int rms_norm,
                                                float rms_eps, const void *d_gate,
                                                long long gate_ld, const float *d_gate_bias,
                                                dtype_t dtype, void *d_workspace,
                                                size_t workspace_bytes, cudaStream_t stream) {
    return lac_launch_any(d_q, d_k, d_v, d_o, B, H, T, dk, dv, causal, rms_norm, rms_eps, d_gate,
                          gate_ld, d_gate_bias, NULL, NULL, dtype, d_workspace, workspace_bytes,
                          stream);
}

extern "C" int linear_attn_chunked_launch_gated_deferred(
    const void *d_q, const void *d_k, const void *d_v, void *d_o, int B, int H, int T, int dk,
    int dv, int causal, const void *d_gate, long long gate_ld, const float *d_gate_bias,
    const float *d_v_bias, float *d_rowsumsq, dtype_t dtype, void *d_workspace,
    size_t workspace_bytes, cudaStream_t stream) {
    if (lac_check_deferred("linear_attn_chunked_launch", d_v_bias, d_rowsumsq)) return -1;
    return lac_launch_any(d_q, d_k, d_v, d_o, B, H, T, dk, dv, causal, 1, 0.f, d_gate, gate_ld,
                          d_gate_bias, d_v_bias, d_rowsumsq, dtype, d_workspace, workspace_bytes,
                          stream);
}

extern "C" int linear_attn_chunked_launch(const void *d_q, const void *d_k, const void *d_v,
                                          void *d_o, int B, int H, int T, int dk, int dv,
                                          int causal, int rms_norm, float rms_eps,
                                          dtype_t dtype, void *d_workspace,
                                          size_t workspace_bytes, cudaStream_t stream) {
    return linear_attn_chunked_launch_gated(d_q, d_k, d_v, d_o, B, H, T, dk, dv, causal,
                                            rms_norm, rms_eps, NULL, 0, NULL, dtype, d_workspace,
                                            workspace_bytes, stream);
}
