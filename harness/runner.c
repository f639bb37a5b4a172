/* runner.c: the sweep loop, shapes, rows and the CPU backend.  The GPU point
 * lives in runner_gpu.c.  Nothing here knows any variant by name. */
#include "runner.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_check.h"
#include "build_describe.h"
#include "reference.h"
#include "measure.h"
#include "stats.h"
#include "stop_signal.h"



shape_t make_shape(const options_t *o, op_id op, int T, int cpu) {
    shape_t s = {0};
    s.T = T;
    s.dtype = o->dtype;
    s.causal = o->causal;
    if (o->batch) s.B = o->batch;
    else if (cpu && !o->tokens) s.B = 1;
    else {
        long long tokens = o->tokens ? o->tokens : 65536;
        s.B = tokens / T > 1 ? (int)(tokens / T) : 1;
    }
    int dim = o->dim_given ? o->dim : (cpu ? CPU_DEFAULT_DIM : 1024);
    switch (op) {
    case OP_LINEAR_ATTN:
        s.H = o->heads;
        s.dk = o->dk;
        s.dv = o->dv;
        break;
    case OP_SOFTMAX_ATTN: /* one head dim: --dk sets it; --noncausal as for linear_attn */
        s.H = o->heads;
        s.dk = s.dv = o->dk;
        break;
    case OP_LONG_CONV:
    case OP_SHORT_LONG_CONV:
        s.d = dim;
        break;
    case OP_CHELA:
    case OP_MEGA: /* the same shape as chela's: MEGA is the layer CHELA modifies */
        s.H = 1;
        s.d = dim;
        s.z = o->z;
        s.v = o->v_given ? o->v : 2 * dim;
        s.dk = s.z;
        s.dv = s.v;
        break;
    case OP_TRANSFORMER: /* head dim 64, as many heads as fill the width */
        s.d = dim;
        s.dk = s.dv = 64;
        s.H = dim / 64;
        s.causal = 1;
        break;
    default: break;
    }
    return s;
}

static double cell(int v) { return v ? (double)v : NAN; }

void row_context(const sweep_t *sw, csv_row_t *r, const op_desc_t *op, const shape_t *s,
                 const char *variant, const char *role) {
    csv_row_init(r);
    snprintf(r->git_sha, sizeof r->git_sha, "%s", git_sha());
    snprintf(r->device, sizeof r->device, "%s", sw->use_gpu ? sw->dev.name : "cpu");
    r->sm_clock_mhz = sw->use_gpu ? sw->dev.sm_clock_mhz : NAN;
    snprintf(r->backend, sizeof r->backend, "%s", sw->use_gpu ? "cuda" : "cpu");
    snprintf(r->op, sizeof r->op, "%s", op->name);
    snprintf(r->variant, sizeof r->variant, "%s", variant);
    snprintf(r->role, sizeof r->role, "%s", role);
    snprintf(r->dtype, sizeof r->dtype, "%s", dtype_name(s->dtype));
    r->batch = s->B;
    r->seq = s->T;
    int conv = op->id == OP_LONG_CONV || op->id == OP_SHORT_LONG_CONV;
    r->heads = conv ? NAN : cell(s->H);
    r->dk = conv ? NAN : cell(s->dk);
    r->dv = conv ? NAN : cell(s->dv);
    r->dim = cell(s->d);
    r->causal = s->causal ? 1 : 0;
    snprintf(r->pass, sizeof r->pass, "%s", pass_name(s->pass));
    snprintf(r->build, sizeof r->build, "%s", build_describe());
    r->flops = op_pass_flops(op, s);
    r->ideal_bytes = op_ideal_bytes(op, s);
}

void row_emit(sweep_t *sw, csv_row_t *r) {
    if (!isnan(r->median_ms)) {
        r->tflops = r->flops / r->median_ms / 1e9;
        r->gbps = r->ideal_bytes / r->median_ms / 1e6;
        if (sw->use_gpu && sw->dev.copy_gbps > 0) {
            double rate = r->dtype[0] == 'f' && !strcmp(r->dtype, "fp32") ? sw->dev.fp32_gemm_tflops
                                                                          : sw->dev.bf16_gemm_tflops;
            double bytes_ms = r->ideal_bytes / (sw->dev.copy_gbps * 1e6);
            double flops_ms = r->flops / (rate * 1e9);
            r->floor_ms = bytes_ms > flops_ms ? bytes_ms : flops_ms;
            r->floor_ratio = r->median_ms / r->floor_ms;
        }
        if (!isnan(r->hbm_read_bytes) && !isnan(r->hbm_write_bytes))
            r->hbm_ratio = (r->hbm_read_bytes + r->hbm_write_bytes) / r->ideal_bytes;
    }
    if (csv_write_row(sw->csv, r)) sw->write_failed = 1; /* the sweep stops; csv_close says why */
    else sw->n_rows++;
    if (!strncmp(r->status, "fail", 4)) sw->n_fail++;
    if (!strncmp(r->status, "skip", 4)) sw->n_skip++;

    /* progress line */
    char shape[96];
    if (!isnan(r->heads))
        snprintf(shape, sizeof shape, "B=%.0f H=%.0f dk=%.0f dv=%.0f", r->batch, r->heads, r->dk,
                 r->dv);
    else
        snprintf(shape, sizeof shape, "B=%.0f d=%.0f", r->batch, r->dim);
    fprintf(stderr, "  %-28s T=%-6.0f %-28s %s%s%s ", r->variant, r->seq, shape, r->dtype,
            strcmp(r->pass, "fwd") ? " " : "", strcmp(r->pass, "fwd") ? r->pass : "");
    if (!isnan(r->median_ms)) {
        fprintf(stderr, "%9.4f ms", r->median_ms);
        if (!isnan(r->floor_ratio)) fprintf(stderr, "  %5.2fx floor", r->floor_ratio);
        fprintf(stderr, "  %7.1f GB/s", r->gbps);
        if (!isnan(r->max_rel_err)) fprintf(stderr, "  err %.2e", r->max_rel_err);
        fprintf(stderr, "  ok\n");
    } else {
        fprintf(stderr, "%s%s%s\n", r->status, r->note[0] ? ": " : "", r->note);
    }
}

static int matches_list(const char *list, const char *name) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
        if (strstr(name, t)) return 1;
    return 0;
}

int variant_selected(const options_t *o, const variant_t *v) {
    if (o->op_mask && !(o->op_mask & (1u << v->op))) return 0;
    /* An oracle writes fp32 and exists to check the others (runner_gpu.c). */
    if (strcmp(v->role, "oracle") == 0) return 0;
    return !o->variant_filter || matches_list(o->variant_filter, v->name);
}

int filters_check(const options_t *o, int use_gpu, char *err, size_t len) {
    char buf[256];
    if (!o->variant_filter) return 0;
    if (strlen(o->variant_filter) >= sizeof buf) {
        snprintf(err, len, "--variants: list too long (%zu characters, at most %zu)",
                 strlen(o->variant_filter), sizeof buf - 1);
        return -1;
    }
    snprintf(buf, sizeof buf, "%s", o->variant_filter);
    int names = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save), names++) {
        int hit = 0;
        for (int op = 0; op < OP_COUNT && !hit; op++) {
            if (o->op_mask && !(o->op_mask & (1u << op))) continue;
            if (!use_gpu) { /* the CPU backend runs op/reference only */
                char ref[64];
                snprintf(ref, sizeof ref, "%s/reference", op_get((op_id)op)->name);
                hit = strstr(ref, t) != NULL;
            }
            for (int i = 0; use_gpu && i < N_VARIANTS && !hit; i++)
                hit = VARIANTS[i].op == (op_id)op && strcmp(VARIANTS[i].role, "oracle") != 0 &&
                      strstr(VARIANTS[i].name, t) != NULL;
        }
        if (!hit) {
            snprintf(err, len, "--variants: '%s' matches no variant%s%s (see --list)", t,
                     use_gpu ? "" : " of the cpu backend (it runs op/reference)",
                     o->op_mask ? " among the ops of --ops" : "");
            return -1;
        }
    }
    if (names == 0) {
        snprintf(err, len, "--variants: '%s' names no variant (give e.g. chunked,fft)",
                 o->variant_filter);
        return -1;
    }
    return 0;
}

int skip_if_shape_undefined(sweep_t *sw, const op_desc_t *op, const shape_t *s) {
    char why[160];
    if (!op->shape_problem || !op->shape_problem(s, why, sizeof why)) return 0;
    csv_row_t r;
    if (!sw->use_gpu) {
        char variant[64];
        snprintf(variant, sizeof variant, "%s/reference", op->name);
        if (sw->o->variant_filter && !matches_list(sw->o->variant_filter, variant)) return 1;
        row_context(sw, &r, op, s, variant, "reference");
        snprintf(r.status, sizeof r.status, "skip:shape");
        snprintf(r.note, sizeof r.note, "%s: %s", op->name, why);
        row_emit(sw, &r);
        return 1;
    }
    for (int i = 0; i < N_VARIANTS && !sw->write_failed; i++) {
        if (VARIANTS[i].op != op->id || !variant_selected(sw->o, &VARIANTS[i])) continue;
        row_context(sw, &r, op, s, VARIANTS[i].name, VARIANTS[i].role);
        snprintf(r.status, sizeof r.status, "skip:shape");
        snprintf(r.note, sizeof r.note, "%s: %s", op->name, why);
        row_emit(sw, &r);
    }
    return 1;
}

/* ---------------- CPU backend ---------------- */

/* One sample of the CPU reference: its thread's CPU time (measure.h). */
typedef struct {
    const op_desc_t *op;
    const shape_t *s;
    const float *const *in;
    const sample_t *smp;
    double *res;
} cpu_sample_ctx;

static int cpu_sample(void *c, double *ms, double *mhz) {
    const cpu_sample_ctx *x = (const cpu_sample_ctx *)c;
    const double t0 = measure_thread_cpu_ms();
    if (x->op->reference(x->s, x->in, x->smp, x->res)) return -1;
    *ms = measure_thread_cpu_ms() - t0;
    *mhz = NAN;
    return 0;
}

static int cpu_stop(void *c) {
    (void)c;
    return stop_requested();
}

void run_point_cpu(sweep_t *sw, const op_desc_t *op, const shape_t *s) {
    csv_row_t r;
    char variant[64];
    snprintf(variant, sizeof variant, "%s/reference", op->name);
    if (sw->o->variant_filter && !matches_list(sw->o->variant_filter, variant)) return;
    if (skip_if_shape_undefined(sw, op, s)) return;
    if (s->pass != PASS_FWD) { /* --pass bwd|fwdbwd: the gradient references (runner_cpu_train.c) */
        run_point_cpu_train(sw, op, s);
        return;
    }
    row_context(sw, &r, op, s, variant, "reference");
    snprintf(r.config, sizeof r.config, "reference fp64 threads=1 clock=thread-cpu");

    sample_buf_t smp;
    tensor_desc_t in[OP_MAX_INPUTS], out;
    float *host[OP_MAX_INPUTS] = {0};
    double *res = NULL;
    int n_in = op->describe(s, in, &out);
    if (sample_full(op, s, &smp)) {
        snprintf(r.status, sizeof r.status, "skip:oom");
        snprintf(r.note, sizeof r.note, "host memory for the sample index");
        row_emit(sw, &r);
        return;
    }
    double macs = op->reference_cost(s, &smp.s);
    if (macs > CPU_MAX_MACS) {
        snprintf(r.status, sizeof r.status, "skip:too-large");
        snprintf(r.note, sizeof r.note, "cpu reference needs %.3g MACs > cap %.3g", macs,
                 CPU_MAX_MACS);
        goto done;
    }
    for (int i = 0; i < n_in; i++) {
        host[i] = malloc(in[i].elems * sizeof(float));
        if (!host[i]) {
            snprintf(r.status, sizeof r.status, "skip:oom");
            snprintf(r.note, sizeof r.note, "host memory: input %s needs %.3g GB", in[i].name,
                     in[i].elems * 4e-9);
            goto done;
        }
        tensor_fill_host(&in[i], sw->o->seed, (uint32_t)i, s->dtype, host[i]);
    }
    res = malloc(sample_count(&smp.s) * sizeof(double));
    if (!res) {
        snprintf(r.status, sizeof r.status, "skip:oom");
        snprintf(r.note, sizeof r.note, "host memory for %zu outputs", sample_count(&smp.s));
        goto done;
    }
    /* Timed by the thread's CPU clock, by the GPU's stop rule (measure.h): at least --repeat
     * samples (the CPU backend's default is CPU_DEFAULT_REPEAT), then more while the spread
     * is above 0.5 % and the point's --budget-ms lasts.  One sample a point (the old rule at
     * T >= 1k) gave p10 = p90 and stdrel 0, so compare judged two runs of one build as a
     * regression. */
    cpu_sample_ctx x = {op, s, (const float *const *)host, &smp.s, res};
    const stop_rule_t rule = stop_rule_default(0, sw->o->repeat, sw->o->budget_ms);
    const sampler_t sampler = {cpu_sample, NULL, cpu_stop, &x};
    static measurement_t m; /* 16 KB: off the stack */
    if (measure_run(&rule, &sampler, &m)) {
        snprintf(r.status, sizeof r.status, "fail:reference");
        snprintf(r.note, sizeof r.note, "%s", bench_last_error());
        goto done;
    }
    const int n = m.n;
    if (n < sw->o->repeat) goto unfinished; /* interrupted mid-point: not a finished row */
    const stats_t st = m.time;
    r.samples = n;
    r.median_ms = st.median;
    r.p10_ms = st.p10;
    r.p90_ms = st.p90;
    r.min_ms = st.min;
    r.stdrel = st.stdrel;
    snprintf(r.status, sizeof r.status, "ok");
    snprintf(r.note, sizeof r.note, "cpu reference (double accumulation; one thread; timed by "
                                    "its thread's CPU clock): the oracle itself; nothing to "
                                    "check it against");
done:
    row_emit(sw, &r);
unfinished:
    for (int i = 0; i < n_in; i++) free(host[i]);
    free(res);
    sample_free(&smp);
}
