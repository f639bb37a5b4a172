/* runner_cpu_train.c: the CPU backend at a bwd / fwdbwd point (--pass).
 *
 * What the CPU backend times for the forward is the double reference on every output; for
 * the training passes it is the same thing for the backward: the gradient references
 * (grad_ref.h) on every element of every gradient tensor, plus, for fwdbwd, the forward
 * reference on every output first.  These are oracles timed on one thread's CPU clock, not a
 * training implementation (the sampled references recompute per element what a real
 * backward would share, e.g. short_long_conv's dU for each of dX and dk3), and the rows
 * say so.  An op without a gradient reference (chela, mega) is a skip:unsupported row. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_check.h"
#include "grad_ref.h"
#include "measure.h"
#include "runner.h"
#include "stop_signal.h"

typedef struct {
    const op_desc_t *op;
    const grad_ref_t *gr;
    const shape_t *s;
    int n_in;
    const float *const *in;
    const float *dy;
    const sample_t *fwd_smp;         /* fwdbwd: every output */
    double *fwd_out;
    const grad_sample_t *smp;        /* [n_in], every element */
    double *const *res;              /* [n_in] */
} cpu_train_ctx;

static int cpu_train_sample(void *c, double *ms, double *mhz) {
    const cpu_train_ctx *x = (const cpu_train_ctx *)c;
    const double t0 = measure_thread_cpu_ms();
    if (x->fwd_smp && x->op->reference(x->s, x->in, x->fwd_smp, x->fwd_out)) return -1;
    grad_whole_t w = {0}; /* a whole() reference: computed once a sample, for every tensor */
    for (int i = 0; i < x->n_in; i++)
        if (grad_ref_eval(x->gr, x->s, x->in, x->dy, i, &x->smp[i].b.s, x->res[i], &w)) {
            grad_whole_free(&w);
            return -1;
        }
    grad_whole_free(&w);
    *ms = measure_thread_cpu_ms() - t0;
    *mhz = NAN;
    return 0;
}

static int cpu_train_stop(void *c) {
    (void)c;
    return stop_requested();
}

void run_point_cpu_train(sweep_t *sw, const op_desc_t *op, const shape_t *s) {
    csv_row_t r;
    char variant[64];
    snprintf(variant, sizeof variant, "%s/reference", op->name);
    row_context(sw, &r, op, s, variant, "reference");
    snprintf(r.config, sizeof r.config, "reference fp64 threads=1 clock=thread-cpu");
    const grad_ref_t *gr = grad_ref_get(op->id);
    if (!gr) {
        snprintf(r.status, sizeof r.status, "skip:unsupported");
        snprintf(r.note, sizeof r.note, "%s has no backward reference (forward only)", op->name);
        row_emit(sw, &r);
        return;
    }
    tensor_desc_t in[OP_MAX_INPUTS], out;
    const int n_in = op->describe(s, in, &out);
    const tensor_desc_t dyd = grad_dy_desc(&out);
    float *host[OP_MAX_INPUTS] = {0}, *dy = NULL;
    grad_sample_t smp[OP_MAX_INPUTS] = {0};
    double *res[OP_MAX_INPUTS] = {0}, *fwd_out = NULL;
    sample_buf_t fwd = {0};
    double macs = 0;
    int unfinished = 0;
    for (int i = 0; i < n_in; i++)
        if (grad_sample_full(gr, s, i, &smp[i])) goto oom;
    macs += grad_ref_total_cost(gr, s, n_in, smp);
    if (s->pass == PASS_FWDBWD) {
        if (sample_full(op, s, &fwd)) goto oom;
        macs += op->reference_cost(s, &fwd.s);
    }
    if (macs > CPU_MAX_MACS) {
        snprintf(r.status, sizeof r.status, "skip:too-large");
        snprintf(r.note, sizeof r.note, "cpu gradient references need %.3g MACs > cap %.3g", macs,
                 CPU_MAX_MACS);
        goto done;
    }
    for (int i = 0; i < n_in; i++) {
        if (!(host[i] = malloc(in[i].elems * sizeof(float)))) goto oom;
        tensor_fill_host(&in[i], sw->o->seed, (uint32_t)i, s->dtype, host[i]);
        if (!(res[i] = malloc(sample_count(&smp[i].b.s) * sizeof(double) + 1))) goto oom;
    }
    if (!(dy = malloc(dyd.elems * sizeof(float)))) goto oom;
    tensor_fill_host(&dyd, sw->o->seed, GRAD_DY_INDEX, s->dtype, dy);
    if (s->pass == PASS_FWDBWD && !(fwd_out = malloc(sample_count(&fwd.s) * sizeof(double))))
        goto oom;
    {
        cpu_train_ctx x = {op, gr, s, n_in, (const float *const *)host, dy,
                           s->pass == PASS_FWDBWD ? &fwd.s : NULL, fwd_out, smp, res};
        const stop_rule_t rule = stop_rule_default(0, sw->o->repeat, sw->o->budget_ms);
        const sampler_t sampler = {cpu_train_sample, NULL, cpu_train_stop, &x};
        static measurement_t m; /* 16 KB: off the stack */
        if (measure_run(&rule, &sampler, &m)) {
            snprintf(r.status, sizeof r.status, "fail:reference");
            snprintf(r.note, sizeof r.note, "%s", bench_last_error());
            goto done;
        }
        if (m.n < sw->o->repeat) { /* interrupted mid-point: not a finished row */
            unfinished = 1;
            goto done;
        }
        r.samples = m.n;
        r.median_ms = m.time.median;
        r.p10_ms = m.time.p10;
        r.p90_ms = m.time.p90;
        r.min_ms = m.time.min;
        r.stdrel = m.time.stdrel;
        snprintf(r.status, sizeof r.status, "ok");
        snprintf(r.note, sizeof r.note,
                 "cpu gradient references (double; one thread; every element of every "
                 "gradient%s; timed by its thread's CPU clock): oracles, not a training "
                 "implementation", s->pass == PASS_FWDBWD ? ", after the forward reference" : "");
    }
    goto done;
oom:
    snprintf(r.status, sizeof r.status, "skip:oom");
    snprintf(r.note, sizeof r.note, "host memory for the gradient references");
done:
    if (!unfinished) row_emit(sw, &r);
    for (int i = 0; i < n_in; i++) {
        free(host[i]);
        free(res[i]);
        grad_sample_free(&smp[i]);
    }
    free(dy);
    free(fwd_out);
    sample_free(&fwd);
}
