/* runner_gpu.c: one op at one shape on the GPU, for every selected variant.
 *
 * Inputs are allocated and filled once per op point, so every variant sees the
 * same bytes; the CPU reference for the sampled outputs is computed once too.
 * Per variant: supports? fits? setup; poison the output, run once, count
 * unwritten elements and compare the sample; only a verified variant is timed
 * (cold: L2 swept before each sample, events on the run's stream); then the
 * optional CUPTI pass; teardown; one row whatever happened. */
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_check.h"
#include "clock_probe.h"
#include "hbm_counters.h"
#include "nvtx_ranges.h"
#include "measure.h"
#include "runner_gpu.h"
#include "stop_signal.h"
#include "stats.h"

#define GiB (1024.0 * 1024.0 * 1024.0)
/* Memory kept free for cuBLAS/cuFFT internals and the allocator's slack. */
#define MEM_MARGIN_BYTES (512ull << 20)

typedef struct {
    const op_desc_t *op;
    const shape_t *s;
    const sample_t *smp;
    const void *raw; /* whole output as copied back */
    dtype_t dt;
} got_ctx_t;

static float got_at(void *c, size_t i) {
    got_ctx_t *g = c;
    size_t nc = (size_t)g->smp->n_col, nt = (size_t)g->smp->n_t;
    int col = g->smp->col[i % nc], t = g->smp->t[(i / nc) % nt], seq = g->smp->seq[i / nc / nt];
    size_t k = g->op->out_index(g->s, seq, t, col);
    float f;
    host_to_float((const char *)g->raw + k * dtype_size(g->dt), 1, g->dt, &f);
    return f;
}

/* After a failure: clear a launch error; if the device cannot synchronize, the
 * context is poisoned (illegal address, ...) and the sweep must stop. */
void note_failure(sweep_t *sw) {
    (void)cudaGetLastError();
    if (cudaDeviceSynchronize() != cudaSuccess) sw->sticky = 1;
}

typedef struct {
    const op_desc_t *op;
    const shape_t *s;  /* the point's shape; its settings when the op's definition reads one */
    shape_t shape;     /* ... held here then (oracle_follow), with a copy of the settings    */
    settings_t set;
    const io_t *io;    /* the point's inputs, for a GPU oracle */
    cudaStream_t stream;
    sample_buf_t smp;
    double *ref;
    int ready, failed;
    char note[160];
} oracle_t;

/* The CPU reference for sample smp, from host images of the inputs. */
static int cpu_reference(const op_desc_t *op, const shape_t *s, uint64_t seed,
                         const sample_t *smp, double **ref) {
    tensor_desc_t in[OP_MAX_INPUTS], out;
    float *host[OP_MAX_INPUTS] = {0};
    int n_in = op->describe(s, in, &out), rc = -1;
    for (int i = 0; i < n_in; i++) {
        host[i] = malloc(in[i].elems * sizeof(float));
        if (!host[i]) {
            bench_set_error(__FILE__, __LINE__, "host memory for input %s", in[i].name);
            goto out;
        }
        tensor_fill_host(&in[i], seed, (uint32_t)i, s->dtype, host[i]);
    }
    *ref = malloc(sample_count(smp) * sizeof(double));
    if (!*ref) {
        bench_set_error(__FILE__, __LINE__, "host memory for the reference sample");
        goto out;
    }
    rc = op->reference(s, (const float *const *)host, smp, *ref);
out:
    for (int i = 0; i < n_in; i++) free(host[i]);
    return rc;
}

static const variant_t *variant_named(const char *name) {
    for (int i = 0; name && i < N_VARIANTS; i++)
        if (strcmp(VARIANTS[i].name, name) == 0) return &VARIANTS[i];
    return NULL;
}

/* Runs the op's fp32 GPU oracle on the point's inputs; *host gets its whole output. */
static int gpu_oracle_output(const oracle_t *o, const variant_t *v, size_t n_out, float **host) {
    const char *why = v->available ? v->available() : NULL;
    if (!why) why = v->supports(o->s);
    if (why) BENCH_FAIL("%s cannot run this shape: %s", v->name, why);
    void *d_out = NULL, *state = NULL;
    io_t io = *o->io;
    CUDA_CHECK(cudaMalloc(&d_out, n_out * sizeof(float)));
    io.out = d_out;
    io.shape = o->s; /* with the settings the op's definition reads (oracle_follow) */
    int rc = v->setup(o->s, &io, &state);
    if (!rc) rc = gpu_poison(d_out, n_out * sizeof(float), o->stream) || v->run(state, &io, o->stream);
    if (!rc && cudaStreamSynchronize(o->stream) != cudaSuccess) {
        bench_set_error(__FILE__, __LINE__, "running %s: %s", v->name,
                        cudaGetErrorString(cudaGetLastError()));
        rc = -1;
    }
    v->teardown(state);
    *host = rc ? NULL : malloc(n_out * sizeof(float));
    if (!rc && !*host) {
        bench_set_error(__FILE__, __LINE__, "host memory for the oracle's output");
        rc = -1;
    }
    if (!rc && cudaMemcpy(*host, d_out, n_out * sizeof(float), cudaMemcpyDeviceToHost) != cudaSuccess) {
        bench_set_error(__FILE__, __LINE__, "copying %s back: %s", v->name,
                        cudaGetErrorString(cudaGetLastError()));
        rc = -1;
    }
    cudaFree(d_out);
    if (rc) {
        free(*host);
        *host = NULL;
    }
    return rc;
}

/* The oracle through the GPU: checked against the CPU reference on the first rows
 * (all that the CPU can afford), then sampled over the whole sequence. */
static int oracle_from_gpu(oracle_t *o, const variant_t *v, uint64_t seed) {
    tensor_desc_t in[OP_MAX_INPUTS], out;
    o->op->describe(o->s, in, &out);
    sample_buf_t cs = {0};
    double *cref = NULL;
    float *host = NULL;
    int rc = -1;
    if (sample_prefix(o->op, o->s, seed, VERIFY_BUDGET_MACS, &cs) ||
        cpu_reference(o->op, o->s, seed, &cs.s, &cref) ||
        gpu_oracle_output(o, v, out.elems, &host))
        goto out;
    got_ctx_t g = {o->op, o->s, &cs.s, host, DTYPE_F32};
    verify_result_t vr = verify_compare(cref, sample_count(&cs.s), (size_t)cs.s.n_col, got_at, &g);
    const int rows = cs.s.t[cs.s.n_t - 1] + 1;
    if (!(vr.max_rel_err <= verify_tolerance(DTYPE_F32))) {
        bench_set_error(__FILE__, __LINE__, "%s differs from the cpu reference: %.3g > %.0e on rows 0..%d",
                        v->name, vr.max_rel_err, verify_tolerance(DTYPE_F32), rows - 1);
        goto out;
    }
    if (sample_spread(o->op, o->s, seed, 4, 2048, &o->smp)) goto out;
    size_t n = sample_count(&o->smp.s);
    o->ref = malloc(n * sizeof(double));
    if (!o->ref) goto out;
    got_ctx_t all = {o->op, o->s, &o->smp.s, host, DTYPE_F32};
    for (size_t i = 0; i < n; i++) o->ref[i] = got_at(&all, i);
    snprintf(o->note, sizeof o->note, "oracle: %s (cpu-checked to %.1e on rows <%d), %dx%dx%d",
             v->name, vr.max_rel_err, rows, o->smp.s.n_seq, o->smp.s.n_t, o->smp.s.n_col);
    rc = 0;
out:
    sample_free(&cs);
    free(cref);
    free(host);
    return rc;
}

/* The reference for the sampled outputs, computed once per point. */
static int oracle_compute(oracle_t *o, uint64_t seed) {
    const variant_t *gv = variant_named(o->op->gpu_oracle);
    int rc;
    if (gv) {
        rc = oracle_from_gpu(o, gv, seed);
    } else {
        rc = sample_choose(o->op, o->s, seed, VERIFY_BUDGET_MACS, &o->smp);
        /* The smallest sample of a whole layer still needs every row up to its last t. */
        const double cost = rc ? 0 : o->op->reference_cost(o->s, &o->smp.s);
        if (!rc && cost > 20 * VERIFY_BUDGET_MACS) {
            bench_set_error(__FILE__, __LINE__, "the cpu reference would need %.2g MACs and "
                            "no gpu oracle is available", cost);
            rc = -1;
        }
        if (!rc) rc = cpu_reference(o->op, o->s, seed, &o->smp.s, &o->ref);
        snprintf(o->note, sizeof o->note, "oracle: cpu reference, %s %dx%dx%d",
                 o->smp.exhaustive ? "exhaustive" : "sampled", o->smp.s.n_seq, o->smp.s.n_t,
                 o->smp.s.n_col);
    }
    if (rc) snprintf(o->note, sizeof o->note, "%s", bench_last_error()); /* for every variant */
    o->ready = 1;
    o->failed = rc != 0;
    return rc;
}

static void oracle_free(oracle_t *o) {
    sample_free(&o->smp);
    free(o->ref);
}

/* An op whose definition reads settings (op_desc_t.fn_settings: mega's chunk) has one
 * reference a combination of their values: when the combination sc gives one of them another
 * value than the oracle was made for, the oracle is dropped and will be computed again, on sc's
 * settings (the first variant's combinations each pay for it; later ones with the same values
 * reuse it). */
static void oracle_follow(oracle_t *o, const shape_t *sc) {
    const char *const *names = o->op->fn_settings;
    int same = 1;
    for (int i = 0; names && names[i]; i++)
        same &= settings_get(o->s->set, names[i]) == settings_get(sc->set, names[i]);
    if (same) return;
    oracle_free(o);
    memset(&o->smp, 0, sizeof o->smp);
    o->ref = NULL;
    o->ready = o->failed = 0;
    o->note[0] = 0;
    o->shape = *sc;
    o->set = *sc->set;
    o->shape.set = &o->set;
    o->s = &o->shape;
}

/* Verification run.  Returns 0 when the result is right; else fills the row. */
static int verify_variant(sweep_t *sw, const variant_t *v, void *state, const io_t *io,
                          size_t out_elems, oracle_t *orc, csv_row_t *r) {
    const shape_t *s = io->shape;
    size_t out_bytes = out_elems * dtype_size(s->dtype);
    bench_clear_error();
    int rc = gpu_poison(io->out, out_bytes, sw->stream) || v->run(state, io, sw->stream);
    if (!rc) {
        cudaError_t e = cudaStreamSynchronize(sw->stream);
        if (e != cudaSuccess) {
            bench_set_error(__FILE__, __LINE__, "running %s: %s", v->name, cudaGetErrorString(e));
            rc = -1;
        }
    }
    if (rc) {
        snprintf(r->status, sizeof r->status, "fail:cuda");
        snprintf(r->note, sizeof r->note, "%s", bench_last_error());
        note_failure(sw);
        return -1;
    }
    unsigned long long bad = 0;
    if (gpu_count_nonfinite(io->out, out_elems, s->dtype, &bad, sw->stream)) {
        snprintf(r->status, sizeof r->status, "fail:cuda");
        snprintf(r->note, sizeof r->note, "%s", bench_last_error());
        note_failure(sw);
        return -1;
    }
    if (bad) {
        snprintf(r->status, sizeof r->status, "fail:unwritten");
        snprintf(r->note, sizeof r->note, "%llu of %zu outputs are NaN/inf (unwritten or overflow)",
                 bad, out_elems);
        return -1;
    }
    if (!sw->o->check) {
        snprintf(r->note, sizeof r->note, "not verified (--no-check); every output written");
        return 0;
    }
    if (!orc->ready) oracle_compute(orc, sw->o->seed);
    if (orc->failed) {
        snprintf(r->status, sizeof r->status, "fail:reference");
        snprintf(r->note, sizeof r->note, "reference failed: %s", orc->note);
        return -1;
    }
    void *raw = malloc(out_bytes);
    if (!raw) {
        snprintf(r->status, sizeof r->status, "skip:oom");
        snprintf(r->note, sizeof r->note, "host memory to copy back %.3g GiB", out_bytes / GiB);
        return -1;
    }
    if (cudaMemcpy(raw, io->out, out_bytes, cudaMemcpyDeviceToHost) != cudaSuccess) {
        free(raw);
        snprintf(r->status, sizeof r->status, "fail:cuda");
        snprintf(r->note, sizeof r->note, "copy back: %s", cudaGetErrorString(cudaGetLastError()));
        note_failure(sw);
        return -1;
    }
    got_ctx_t g = {orc->op, s, &orc->smp.s, raw, s->dtype};
    verify_result_t vr = verify_compare(orc->ref, sample_count(&orc->smp.s),
                                        (size_t)orc->smp.s.n_col, got_at, &g);
    free(raw);
    r->max_abs_err = vr.max_abs_err;
    r->max_rel_err = vr.max_rel_err;
    double tol = verify_tolerance(s->dtype) * (orc->op->tol_scale > 0 ? orc->op->tol_scale : 1);
    if (!(vr.max_rel_err <= tol)) {
        size_t nc = (size_t)orc->smp.s.n_col, nt = (size_t)orc->smp.s.n_t, w = (size_t)vr.worst;
        snprintf(r->status, sizeof r->status, "fail:wrong");
        snprintf(r->note, sizeof r->note,
                 "max_rel_err %.3g > tol %.3g at seq %d t %d col %d (ref %.6g); %s", vr.max_rel_err,
                 tol, orc->smp.s.seq[w / nc / nt], orc->smp.s.t[(w / nc) % nt], orc->smp.s.col[w % nc],
                 orc->ref[w], orc->note);
        return -1;
    }
    snprintf(r->note, sizeof r->note, "%s; tol %.0e", orc->note, tol);
    return 0;
}

/* Cold timing: warm-up, then samples with L2 swept before each, until at least
 * --repeat samples and (noise under 0.5% or the point's budget spent).  Each sample's SM
 * clock is stamped around it (clock_probe.h, outside its events): the row's sm_clock_mhz
 * is their median, and a spread of more than 5 % is said in the note. */
/* stage: runner_gpu.h (-1 the whole pass, i >= 0 a forward stage, RUN_STAGE_BWD(i)). */
static int run_once(const variant_t *v, void *state, const io_t *io, const grad_io_t *g,
                    int stage, cudaStream_t st) {
    if (stage >= 0) return v->run_stage(state, io, stage, st);
    if (stage <= RUN_STAGE_BWD(0)) return v->run_bwd_stage(state, io, g, -2 - stage, st);
    const pass_t pass = io->shape->pass;
    if (pass == PASS_FWD) return v->run(state, io, st);
    if (pass == PASS_FWDBWD && v->run(state, io, st)) return -1;
    return v->run_bwd(state, io, g, st);
}

/* One cold sample of a variant (or one stage of it): the L2 swept, the SM clock stamped
 * before and after (outside the events), CUDA events around the run alone. */
typedef struct {
    sweep_t *sw;
    const variant_t *v;
    void *state;
    const io_t *io;
    const grad_io_t *g; /* NULL for the forward */
    const char *range;
    int stage;
    cudaEvent_t a, b;
    clock_probe_t *clk;
    unsigned tag; /* unique over the process, so that no stale stamp matches */
} gpu_sample_ctx;

static int gpu_sample(void *c, double *ms_out, double *mhz) {
    gpu_sample_ctx *x = (gpu_sample_ctx *)c;
    static unsigned tag;
    cudaStream_t st = x->sw->stream;
    x->tag = ++tag;
    if (l2_flush(&x->sw->flush, st) || clock_probe_stamp(x->clk, 0, x->tag, st)) return -1;
    nvtx_push(x->range);
    CUDA_CHECK(cudaEventRecord(x->a, st));
    int rc = run_once(x->v, x->state, x->io, x->g, x->stage, st);
    CUDA_CHECK(cudaEventRecord(x->b, st));
    nvtx_pop();
    if (rc || clock_probe_stamp(x->clk, 1, x->tag, st)) return -1;
    CUDA_CHECK(cudaEventSynchronize(x->b));
    float ms;
    CUDA_CHECK(cudaEventElapsedTime(&ms, x->a, x->b));
    *ms_out = ms;
    *mhz = clock_probe_mhz(x->clk, x->tag, st);
    return 0;
}

/* A warm-up run, waited for: the budget's clock starts after the warm-ups are done. */
static int gpu_warm(void *c) {
    gpu_sample_ctx *x = (gpu_sample_ctx *)c;
    if (run_once(x->v, x->state, x->io, x->g, x->stage, x->sw->stream)) return -1;
    CUDA_CHECK(cudaStreamSynchronize(x->sw->stream));
    return 0;
}

static int gpu_stop(void *c) { return ((gpu_sample_ctx *)c)->sw->interrupted || stop_requested(); }

/* Times a variant (stage < 0) or one stage by the harness's stop rule (measure.h). */
int time_variant(sweep_t *sw, const variant_t *v, void *state, const io_t *io,
                 const grad_io_t *g, const char *range, int stage, csv_row_t *r) {
    gpu_sample_ctx x = {sw, v, state, io, g, range, stage, NULL, NULL, NULL, 0};
    static measurement_t m; /* 16 KB: off the stack */
    int rc = -1;
    x.clk = clock_probe_create();
    if (!x.clk) return -1;
    if (cudaEventCreate(&x.a) != cudaSuccess || cudaEventCreate(&x.b) != cudaSuccess) {
        bench_set_error(__FILE__, __LINE__, "cudaEventCreate: %s", cudaGetErrorString(cudaGetLastError()));
        goto out;
    }
    {
        const stop_rule_t rule = stop_rule_default(sw->o->warmup, sw->o->repeat, sw->o->budget_ms);
        const sampler_t smp = {gpu_sample, gpu_warm, gpu_stop, &x};
        if (measure_run(&rule, &smp, &m)) goto out;
    }
    if (cudaGetLastError() != cudaSuccess) {
        bench_set_error(__FILE__, __LINE__, "after timing: %s", cudaGetErrorString(cudaGetLastError()));
        goto out;
    }
    r->samples = m.n;
    r->median_ms = m.time.median;
    r->p10_ms = m.time.p10;
    r->p90_ms = m.time.p90;
    r->min_ms = m.time.min;
    r->stdrel = m.time.stdrel;
    if (m.n_mhz > 0) {
        r->sm_clock_mhz = m.clock.median;
        size_t len = strlen(r->note);
        if (m.mhz_hi > 1.05 * m.mhz_lo && len < sizeof r->note)
            snprintf(r->note + len, sizeof r->note - len, "%sSM clock %.0f-%.0f MHz over the samples",
                     len ? "; " : "", m.mhz_lo, m.mhz_hi);
    }
    rc = 0;
out:
    if (x.a) cudaEventDestroy(x.a);
    if (x.b) cudaEventDestroy(x.b);
    clock_probe_destroy(x.clk);
    return rc;
}

/* One more run with CUPTI counting DRAM bytes, L2 swept first (read-only, so no
 * dirty lines of ours are written back inside the range). */
void profile_variant(sweep_t *sw, const variant_t *v, void *state, const io_t *io,
                     const grad_io_t *g, const char *range, int stage, csv_row_t *r) {
    double rd = NAN, wr = NAN, ns = NAN;
    if (!sw->profiler) return;
    if (l2_flush(&sw->flush, sw->stream) || cudaStreamSynchronize(sw->stream) != cudaSuccess)
        return;
    if (hbm_counters_begin(sw->profiler, range)) goto fail;
    int rc = run_once(v, state, io, g, stage, sw->stream);
    if (hbm_counters_end(sw->profiler, &rd, &wr, &ns) || rc) goto fail;
    r->hbm_read_bytes = rd;
    r->hbm_write_bytes = wr;
    return;
fail:
    fprintf(stderr, "chela-bench: HBM counters failed for %s: %s\n", v->name, bench_last_error());
}

int variant_stage_rows(const variant_t *v, pass_t pass) {
    return (pass != PASS_BWD ? variant_n_stages(v) : 0) +
           (pass != PASS_FWD ? variant_n_bwd_stages(v) : 0);
}

/* --breakdown: each stage of a verified staged variant timed alone (its inputs
 * are what the last whole run left), one row each in rows[]: the forward's stages
 * ("NAME:STAGE") for fwd and fwdbwd, the backward's ("NAME:bwd:STAGE") for bwd and fwdbwd. */
int run_stages(sweep_t *sw, const variant_t *v, void *state, const io_t *io, const grad_io_t *g,
               const csv_row_t *whole, csv_row_t *rows) {
    int n = 0;
    const pass_t pass = io->shape->pass;
    const int n_fwd = pass != PASS_BWD ? variant_n_stages(v) : 0;
    const int n_stages = variant_stage_rows(v, pass);
    for (int k = 0; k < n_stages && k < MAX_STAGES && !sw->interrupted; k++) {
        const int bwd = k >= n_fwd, i = bwd ? k - n_fwd : k;
        csv_row_t *r = &rows[n++];
        *r = *whole;
        if (bwd) {
            snprintf(r->variant, sizeof r->variant, "%s:bwd:%s", v->name, v->bwd_stage_names[i]);
            v->bwd_stage_cost(io->shape, i, &r->flops, &r->ideal_bytes);
        } else {
            snprintf(r->variant, sizeof r->variant, "%s:%s", v->name, v->stage_names[i]);
            v->stage_cost(io->shape, i, &r->flops, &r->ideal_bytes);
        }
        snprintf(r->role, sizeof r->role, "stage");
        r->median_ms = r->p10_ms = r->p90_ms = r->min_ms = r->stdrel = NAN;
        r->hbm_read_bytes = r->hbm_write_bytes = r->max_abs_err = r->max_rel_err = NAN;
        r->samples = 0;
        char range[160];
        snprintf(range, sizeof range, "%s T=%d B=%d", r->variant, io->shape->T, io->shape->B);
        bench_clear_error();
        snprintf(r->note, sizeof r->note, "%sstage %d of %d; verified as part of %s",
                 bwd ? "backward " : "", i + 1, bwd ? n_stages - n_fwd : n_fwd, v->name);
        const int stage = bwd ? RUN_STAGE_BWD(i) : i;
        if (time_variant(sw, v, state, io, g, range, stage, r)) {
            snprintf(r->status, sizeof r->status, "fail:cuda");
            snprintf(r->note, sizeof r->note, "while timing: %s", bench_last_error());
            r->median_ms = NAN;
            note_failure(sw);
            break;
        }
        snprintf(r->status, sizeof r->status, "ok");
        if (sw->o->profile) profile_variant(sw, v, state, io, g, range, stage, r);
    }
    return n;
}

/* config: what setup resolved, then the settings the user set ("(set la_seg=512)"). */
void row_config(const variant_t *v, const void *state, const shape_t *s, csv_row_t *r) {
    char set[160];
    size_t k;
    r->config[0] = 0;
    if (v->config) v->config(state, r->config, sizeof r->config);
    settings_format(s->set, 1, set, sizeof set);
    k = strlen(r->config);
    if (set[0]) snprintf(r->config + k, sizeof r->config - k, "%s(set %s)", k ? " " : "", set);
    for (char *c = r->config; *c; c++) /* a cell never holds the separator */
        if (*c == ',') *c = ';';
}

size_t free_device_bytes(void) {
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return free_b;
}

static void run_variant(sweep_t *sw, const variant_t *v, const io_t *io, size_t out_elems,
                        oracle_t *orc, csv_row_t *r, csv_row_t *stage_rows, int *n_stage_rows,
                        double io_bytes) {
    *n_stage_rows = 0;
    const shape_t *s = io->shape;
    const char *why = v->available ? v->available() : NULL;
    if (why) {
        snprintf(r->status, sizeof r->status, "skip:unavailable");
        snprintf(r->note, sizeof r->note, "%s", why);
        return;
    }
    why = v->supports(s);
    if (why) {
        snprintf(r->status, sizeof r->status, "skip:unsupported");
        snprintf(r->note, sizeof r->note, "%s", why);
        return;
    }
    size_t free_b = 0, total_b = 0, ws = v->workspace_bytes(s);
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) free_b = 0;
    if (ws + MEM_MARGIN_BYTES > free_b) {
        snprintf(r->status, sizeof r->status, "skip:oom");
        snprintf(r->note, sizeof r->note, "workspace needs %.3g GiB > %.3g GiB free", ws / GiB,
                 free_b > MEM_MARGIN_BYTES ? (free_b - MEM_MARGIN_BYTES) / GiB : 0.0);
        return;
    }
    char range[160];
    snprintf(range, sizeof range, "%s T=%d B=%d", v->name, s->T, s->B);
    void *state = NULL;
    bench_clear_error();
    const size_t free_before = free_device_bytes();
    const int set = v->setup(s, io, &state);
    if (set) { /* 1: the planner declined the shape (variant.h), a skip; else a failure */
        snprintf(r->status, sizeof r->status, set > 0 ? "skip:unsupported" : "fail:setup");
        snprintf(r->note, sizeof r->note, "%s", bench_last_error());
        if (set < 0) note_failure(sw);
        v->teardown(state);
        return;
    }
    row_config(v, state, s, r);
    nvtx_push(range);
    int bad = verify_variant(sw, v, state, io, out_elems, orc, r);
    nvtx_pop();
    /* What the point holds: its inputs and output, and what setup and the first run took
     * (cuFFT plans, workspaces, cuBLAS's lazily made workspace), at the driver's 2 MiB
     * granularity.  The oracle's buffers are gone by now. */
    const size_t free_after = free_device_bytes();
    r->peak_mem_bytes = io_bytes + (free_before > free_after ? (double)(free_before - free_after) : 0);
    if (!bad) {
        if (time_variant(sw, v, state, io, NULL, range, -1, r)) {
            snprintf(r->status, sizeof r->status, "fail:cuda");
            snprintf(r->note, sizeof r->note, "while timing: %s", bench_last_error());
            r->median_ms = NAN;
            note_failure(sw);
        } else {
            snprintf(r->status, sizeof r->status, "ok");
            if (sw->o->profile) profile_variant(sw, v, state, io, NULL, range, -1, r);
            if (sw->o->breakdown && variant_n_stages(v) > 0)
                *n_stage_rows = run_stages(sw, v, state, io, NULL, r, stage_rows);
        }
    }
    v->teardown(state);
}

void run_point_gpu(sweep_t *sw, const op_desc_t *op, const shape_t *s) {
    const variant_t *vs[64];
    int nv = 0;
    for (int i = 0; i < N_VARIANTS && nv < 64; i++)
        if (VARIANTS[i].op == op->id && variant_selected(sw->o, &VARIANTS[i])) vs[nv++] = &VARIANTS[i];
    if (!nv || skip_if_shape_undefined(sw, op, s)) return;

    tensor_desc_t in[OP_MAX_INPUTS], out;
    int n_in = op->describe(s, in, &out);
    io_t io = {.shape = s, .n_in = n_in};
    double need = (double)tensor_bytes(&out, s->dtype);
    for (int i = 0; i < n_in; i++) need += (double)tensor_bytes(&in[i], s->dtype);
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    csv_row_t r;
    int alloc_ok = need + MEM_MARGIN_BYTES <= (double)free_b;
    for (int i = 0; alloc_ok && i < n_in; i++)
        alloc_ok = cudaMalloc((void **)&io.in[i], tensor_bytes(&in[i], s->dtype)) == cudaSuccess &&
                   gpu_fill_tensor(&in[i], sw->o->seed, (uint32_t)i, s->dtype, (void *)io.in[i],
                                   sw->stream) == 0;
    if (alloc_ok) alloc_ok = cudaMalloc(&io.out, tensor_bytes(&out, s->dtype)) == cudaSuccess;
    if (alloc_ok) alloc_ok = cudaStreamSynchronize(sw->stream) == cudaSuccess;
    /* bwd / fwdbwd: dy and the gradients too, shared by the point's variants */
    train_point_t *tp = NULL;
    char why[160] = "";
    if (!alloc_ok) {
        (void)cudaGetLastError();
        snprintf(why, sizeof why, "inputs + output need %.3g GiB > %.3g GiB free", need / GiB,
                 free_b / GiB);
    } else if (s->pass != PASS_FWD && !(tp = train_point_new(sw, op, s, &need, why, sizeof why))) {
        alloc_ok = 0;
    }
    if (!alloc_ok) {
        for (int k = 0; k < nv; k++) {
            row_context(sw, &r, op, s, vs[k]->name, vs[k]->role);
            snprintf(r.status, sizeof r.status, "skip:oom");
            snprintf(r.note, sizeof r.note, "%s", why);
            row_emit(sw, &r);
        }
    } else {
        oracle_t orc = {.op = op, .s = s, .io = &io, .stream = sw->stream};
        csv_row_t stage_rows[MAX_STAGES];
        for (int k = 0; k < nv && !sw->sticky && !sw->interrupted && !sw->write_failed; k++) {
            /* one row per combination of the --set axes this variant declares */
            const int combos = set_combos(&sw->axes, vs[k]);
            for (int c = 0; c < combos && !sw->sticky && !sw->interrupted && !sw->write_failed; c++) {
                settings_t set;
                set_combo(&sw->axes, vs[k], c, &set);
                shape_t sc = *s;
                sc.set = &set;
                io_t ioc = io;
                ioc.shape = &sc;
                int n_stage = 0;
                row_context(sw, &r, op, &sc, vs[k]->name, vs[k]->role);
                oracle_follow(&orc, &sc);
                if (variant_stage_rows(vs[k], s->pass) > MAX_STAGES) {
                    snprintf(r.status, sizeof r.status, "fail:setup");
                    snprintf(r.note, sizeof r.note, "%d stages > %d",
                             variant_stage_rows(vs[k], s->pass), MAX_STAGES);
                } else if (tp) {
                    run_variant_train(sw, vs[k], &ioc, tp, out.elems, &r, stage_rows, &n_stage,
                                      need);
                } else {
                    run_variant(sw, vs[k], &ioc, out.elems, &orc, &r, stage_rows, &n_stage, need);
                }
                row_emit(sw, &r);
                for (int i = 0; i < n_stage; i++) row_emit(sw, &stage_rows[i]);
            }
        }
        oracle_free(&orc);
    }
    train_point_free(tp);
    for (int i = 0; i < n_in; i++)
        if (io.in[i]) cudaFree((void *)io.in[i]);
    if (io.out) cudaFree(io.out);
}
