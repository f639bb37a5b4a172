/* runner_train.c: one variant at a bwd or fwdbwd point on the GPU (--pass).
 *
 * The point's upstream gradient dy (seeded, never zero, the output's dtype) and one gradient
 * buffer per input (grad_storage: fp32 for parameters, the run dtype for activations) are
 * allocated once, when the first variant with a backward needs them, and shared by the
 * point's variants like the inputs.  Per variant: supports? fits? setup (it sees s->pass);
 * the output and every gradient poisoned (all-ones bytes, NaN); run then run_bwd once; every
 * gradient (and the output) counted for unwritten elements; every gradient compared with
 * its sampled CPU reference (grad_ref.h), the row's max_rel_err the worst over tensors, the
 * failing tensor named; only then timed, cold, by the forward's loop (runner_gpu.c): bwd =
 * run_bwd alone on what the verification's forward left (run_bwd is repeatable,
 * variant.h), fwdbwd = run then run_bwd.  A variant without run_bwd is a skip:unsupported
 * row. */
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_check.h"
#include "grad_ref.h"
#include "nvtx_ranges.h"
#include "runner_gpu.h"

#define GiB (1024.0 * 1024.0 * 1024.0)
#define MEM_MARGIN_BYTES (512ull << 20)

struct train_point {
    const op_desc_t *op;
    const grad_ref_t *gr;
    shape_t s; /* the point's shape, its settings pointer cleared (the references ignore it) */
    int n_in;
    tensor_desc_t in[OP_MAX_INPUTS], out;
    uint64_t seed;
    /* device buffers, allocated at the first variant that has a backward */
    int allocated;
    void *d_dy;
    grad_io_t g;
    size_t grad_elems[OP_MAX_INPUTS];
    dtype_t grad_dt[OP_MAX_INPUTS];
    double bytes; /* dy + gradients */
    /* the sampled references, computed once */
    int ready, failed;
    grad_sample_t smp[OP_MAX_INPUTS];
    double *ref[OP_MAX_INPUTS];
    char note[200];
};

train_point_t *train_point_new(sweep_t *sw, const op_desc_t *op, const shape_t *s,
                               double *bytes, char *why, size_t len) {
    (void)bytes;
    train_point_t *tp = calloc(1, sizeof *tp);
    if (!tp) {
        snprintf(why, len, "host memory for the backward's bookkeeping");
        return NULL;
    }
    tp->op = op;
    tp->gr = grad_ref_get(op->id);
    tp->s = *s;
    tp->s.set = NULL;
    tp->n_in = op->describe(s, tp->in, &tp->out);
    tp->seed = sw->o->seed;
    return tp;
}

void train_point_free(train_point_t *tp) {
    if (!tp) return;
    if (tp->d_dy) cudaFree(tp->d_dy);
    for (int i = 0; i < tp->n_in; i++) {
        if (tp->g.grad[i]) cudaFree(tp->g.grad[i]);
        grad_sample_free(&tp->smp[i]);
        free(tp->ref[i]);
    }
    free(tp);
}

/* dy and the gradients on the device; 0, or -1 with why (they do not fit). */
static int train_alloc(sweep_t *sw, train_point_t *tp, char *why, size_t len) {
    if (tp->allocated) return 0;
    const shape_t *s = &tp->s;
    const tensor_desc_t dy = grad_dy_desc(&tp->out);
    double need = (double)tensor_bytes(&dy, s->dtype);
    for (int i = 0; i < tp->n_in; i++) {
        tensor_desc_t gt = tp->in[i];
        gt.store = grad_storage(&tp->in[i]);
        tp->grad_elems[i] = gt.elems;
        tp->grad_dt[i] = gt.store == STORE_F32 ? DTYPE_F32 : s->dtype;
        need += (double)tensor_bytes(&gt, s->dtype);
    }
    size_t free_b = free_device_bytes();
    int ok = need + MEM_MARGIN_BYTES <= (double)free_b &&
             cudaMalloc(&tp->d_dy, tensor_bytes(&dy, s->dtype)) == cudaSuccess &&
             gpu_fill_tensor(&dy, tp->seed, GRAD_DY_INDEX, s->dtype, tp->d_dy, sw->stream) == 0;
    for (int i = 0; ok && i < tp->n_in; i++)
        ok = cudaMalloc(&tp->g.grad[i], tp->grad_elems[i] * dtype_size(tp->grad_dt[i])) ==
             cudaSuccess;
    if (ok) ok = cudaStreamSynchronize(sw->stream) == cudaSuccess;
    if (!ok) {
        (void)cudaGetLastError();
        if (tp->d_dy) cudaFree(tp->d_dy);
        tp->d_dy = NULL;
        for (int i = 0; i < tp->n_in; i++) {
            if (tp->g.grad[i]) cudaFree(tp->g.grad[i]);
            tp->g.grad[i] = NULL;
        }
        snprintf(why, len, "dy + gradients need %.3g GiB > %.3g GiB free", need / GiB,
                 free_b > MEM_MARGIN_BYTES ? (free_b - MEM_MARGIN_BYTES) / GiB : 0.0);
        return -1;
    }
    tp->g.dy = tp->d_dy;
    tp->bytes = need;
    tp->allocated = 1;
    return 0;
}

/* The op's fp32 GPU oracle, when it has a backward (grad_oracle.c); NULL when none. */
static const variant_t *grad_oracle_variant(const op_desc_t *op) {
    for (int i = 0; op->gpu_oracle && i < N_VARIANTS; i++)
        if (strcmp(VARIANTS[i].name, op->gpu_oracle) == 0)
            return VARIANTS[i].run_bwd ? &VARIANTS[i] : NULL;
    return NULL;
}

/* Where the double reference is over its cap and the op has a GPU oracle with a backward
 * (the layers): every element of every gradient from the oracle. */
static int train_reference_oracle(sweep_t *sw, train_point_t *tp, const io_t *io,
                                  const variant_t *ov) {
    const shape_t *s = &tp->s;
    for (int i = 0; i < tp->n_in; i++) {
        grad_sample_free(&tp->smp[i]);
        free(tp->ref[i]);
        tp->ref[i] = NULL;
    }
    for (int i = 0; i < tp->n_in; i++) {
        if (grad_sample_full(tp->gr, s, i, &tp->smp[i]) ||
            !(tp->ref[i] = malloc(sample_count(&tp->smp[i].b.s) * sizeof(double)))) {
            bench_set_error(__FILE__, __LINE__, "host memory for the oracle's gradients");
            return -1;
        }
    }
    if (grad_oracle_reference(ov, s, io, tp->d_dy, tp->n_in, tp->in, &tp->out, tp->gr, tp->smp,
                              tp->ref, sw->stream))
        return -1;
    snprintf(tp->note, sizeof tp->note, "grad ref: gpu %s (fp32; its backward checked against "
             "the double one by tests/test_gpu_oracle_*_bwd), every element", ov->name);
    return 0;
}

/* The sampled gradient references, once per point: samples within VERIFY_BUDGET_MACS each
 * (verify_grad.c), refused above 20x it as the forward's oracle is, unless the op's GPU
 * oracle has a backward (then that, train_reference_oracle). */
static int train_reference(sweep_t *sw, train_point_t *tp, const io_t *io) {
    const shape_t *s = &tp->s;
    float *host[OP_MAX_INPUTS] = {0}, *dy = NULL;
    grad_whole_t whole = {0}; /* a layer's reference: every gradient at once (grad_ref.h) */
    const tensor_desc_t dyd = grad_dy_desc(&tp->out);
    int rc = -1;
    size_t k = 0;
    tp->note[0] = 0;
    if (!tp->gr) {
        bench_set_error(__FILE__, __LINE__, "%s has no gradient reference", tp->op->name);
        goto out;
    }
    for (int i = 0; i < tp->n_in; i++) {
        if (grad_sample_choose(tp->gr, s, i, tp->seed, VERIFY_BUDGET_MACS, &tp->smp[i])) {
            bench_set_error(__FILE__, __LINE__, "host memory for the gradient samples");
            goto out;
        }
        const double cost = tp->gr->cost(s, i, &tp->smp[i].b.s);
        const variant_t *ov = cost > 20 * VERIFY_BUDGET_MACS ? grad_oracle_variant(tp->op) : NULL;
        if (ov) {
            rc = train_reference_oracle(sw, tp, io, ov);
            goto out;
        }
        if (cost > 20 * VERIFY_BUDGET_MACS) {
            bench_set_error(__FILE__, __LINE__, "the cpu reference of d%s would need %.2g MACs",
                            tp->in[i].name, cost);
            goto out;
        }
    }
    for (int i = 0; i < tp->n_in; i++) {
        if (!(host[i] = malloc(tp->in[i].elems * sizeof(float)))) {
            bench_set_error(__FILE__, __LINE__, "host memory for input %s", tp->in[i].name);
            goto out;
        }
        tensor_fill_host(&tp->in[i], tp->seed, (uint32_t)i, s->dtype, host[i]);
    }
    if (!(dy = malloc(dyd.elems * sizeof(float)))) {
        bench_set_error(__FILE__, __LINE__, "host memory for dy");
        goto out;
    }
    tensor_fill_host(&dyd, tp->seed, GRAD_DY_INDEX, s->dtype, dy);
    k = (size_t)snprintf(tp->note, sizeof tp->note, "grad ref: cpu");
    for (int i = 0; i < tp->n_in; i++) {
        const sample_t *m = &tp->smp[i].b.s;
        if (!(tp->ref[i] = malloc((sample_count(m) ? sample_count(m) : 1) * sizeof(double)))) {
            bench_set_error(__FILE__, __LINE__, "host memory for the gradient references");
            goto out;
        }
        if (grad_ref_eval(tp->gr, s, (const float *const *)host, dy, i, m, tp->ref[i], &whole))
            goto out;
        if (k < sizeof tp->note) {
            char lo[32] = ""; /* a suffix window: the last rows only (verify_grad.c) */
            if (tp->smp[i].t_lo) snprintf(lo, sizeof lo, " last rows t>=%d", tp->smp[i].t_lo);
            int w = tp->smp[i].b.exhaustive
                        ? snprintf(tp->note + k, sizeof tp->note - k, " d%s all", tp->in[i].name)
                        : snprintf(tp->note + k, sizeof tp->note - k, " d%s %dx%dx%d%s",
                                   tp->in[i].name, m->n_seq, m->n_t, m->n_col, lo);
            if (w > 0) k += (size_t)w;
        }
    }
    rc = 0;
out:
    grad_whole_free(&whole);
    for (int i = 0; i < tp->n_in; i++) free(host[i]);
    free(dy);
    return rc;
}

typedef struct {
    const grad_view_t *v;
    const sample_t *smp;
    const void *raw;
    dtype_t dt;
} grad_got_t;

static float grad_got_at(void *c, size_t i) {
    const grad_got_t *g = c;
    size_t nc = (size_t)g->smp->n_col, nt = (size_t)g->smp->n_t;
    size_t k = grad_view_index(g->v, g->smp->seq[i / nc / nt], g->smp->t[(i / nc) % nt],
                               g->smp->col[i % nc]);
    float f;
    host_to_float((const char *)g->raw + k * dtype_size(g->dt), 1, g->dt, &f);
    return f;
}

static int fail_row(sweep_t *sw, csv_row_t *r, const char *status, const char *note, int sticky) {
    snprintf(r->status, sizeof r->status, "%s", status);
    snprintf(r->note, sizeof r->note, "%.*s", (int)sizeof r->note - 1, note); /* cut to fit */
    if (sticky) note_failure(sw);
    return -1;
}

/* The verification run: 0 when every gradient is right, else the row is filled. */
static int verify_train(sweep_t *sw, const variant_t *v, void *state, const io_t *io,
                        train_point_t *tp, size_t out_elems, csv_row_t *r) {
    const shape_t *s = io->shape;
    char msg[512];
    bench_clear_error();
    int rc = gpu_poison(io->out, out_elems * dtype_size(s->dtype), sw->stream);
    for (int i = 0; !rc && i < tp->n_in; i++)
        rc = gpu_poison(tp->g.grad[i], tp->grad_elems[i] * dtype_size(tp->grad_dt[i]), sw->stream);
    if (!rc) rc = v->run(state, io, sw->stream) || v->run_bwd(state, io, &tp->g, sw->stream);
    if (!rc) {
        cudaError_t e = cudaStreamSynchronize(sw->stream);
        if (e != cudaSuccess) {
            bench_set_error(__FILE__, __LINE__, "running %s: %s", v->name, cudaGetErrorString(e));
            rc = -1;
        }
    }
    if (rc) return fail_row(sw, r, "fail:cuda", bench_last_error(), 1);
    /* every element written: the output (the training forward's) and each gradient */
    for (int i = -1; i < tp->n_in; i++) {
        unsigned long long bad = 0;
        const size_t n = i < 0 ? out_elems : tp->grad_elems[i];
        if (gpu_count_nonfinite(i < 0 ? io->out : tp->g.grad[i], n,
                                i < 0 ? s->dtype : tp->grad_dt[i], &bad, sw->stream))
            return fail_row(sw, r, "fail:cuda", bench_last_error(), 1);
        if (bad) {
            snprintf(msg, sizeof msg, "%llu of %zu elements of %s%s are NaN/inf (unwritten or "
                     "overflow)", bad, n, i < 0 ? "" : "d", i < 0 ? tp->out.name : tp->in[i].name);
            return fail_row(sw, r, "fail:unwritten", msg, 0);
        }
    }
    if (!sw->o->check) {
        snprintf(r->note, sizeof r->note, "not verified (--no-check); every gradient written");
        return 0;
    }
    if (!tp->ready) {
        tp->failed = train_reference(sw, tp, io) != 0;
        if (tp->failed) snprintf(tp->note, sizeof tp->note, "%s", bench_last_error());
        tp->ready = 1;
    }
    if (tp->failed) {
        snprintf(msg, sizeof msg, "gradient reference failed: %s", tp->note);
        return fail_row(sw, r, "fail:reference", msg, 0);
    }
    const double tol =
        verify_grad_tolerance(s->dtype) * (tp->op->tol_scale > 0 ? tp->op->tol_scale : 1);
    r->max_abs_err = r->max_rel_err = 0;
    for (int i = 0; i < tp->n_in; i++) {
        const size_t bytes = tp->grad_elems[i] * dtype_size(tp->grad_dt[i]);
        void *raw = malloc(bytes);
        if (!raw) {
            snprintf(msg, sizeof msg, "host memory to copy back d%s (%.3g GiB)", tp->in[i].name,
                     bytes / GiB);
            return fail_row(sw, r, "skip:oom", msg, 0);
        }
        if (cudaMemcpy(raw, tp->g.grad[i], bytes, cudaMemcpyDeviceToHost) != cudaSuccess) {
            free(raw);
            snprintf(msg, sizeof msg, "copy back d%s: %s", tp->in[i].name,
                     cudaGetErrorString(cudaGetLastError()));
            return fail_row(sw, r, "fail:cuda", msg, 1);
        }
        grad_view_t view;
        tp->gr->view(s, i, &view);
        const sample_t *m = &tp->smp[i].b.s;
        grad_got_t g = {&view, m, raw, tp->grad_dt[i]};
        verify_result_t vr = verify_compare(tp->ref[i], sample_count(m), (size_t)m->n_col,
                                            grad_got_at, &g);
        free(raw);
        /* the row's errors: the worst over the tensors */
        if (!(vr.max_abs_err <= r->max_abs_err)) r->max_abs_err = vr.max_abs_err;
        if (!(vr.max_rel_err <= r->max_rel_err)) r->max_rel_err = vr.max_rel_err;
        if (!(vr.max_rel_err <= tol)) {
            size_t nc = (size_t)m->n_col, nt = (size_t)m->n_t, w = (size_t)vr.worst;
            snprintf(msg, sizeof msg, "d%s: max_rel_err %.3g > tol %.3g at seq %d t %d col %d "
                     "(ref %.6g); %s", tp->in[i].name, vr.max_rel_err, tol, m->seq[w / nc / nt],
                     m->t[(w / nc) % nt], m->col[w % nc], tp->ref[i][w], tp->note);
            return fail_row(sw, r, "fail:wrong", msg, 0);
        }
    }
    snprintf(r->note, sizeof r->note, "%s; tol %.0e", tp->note, tol);
    return 0;
}

void run_variant_train(sweep_t *sw, const variant_t *v, const io_t *io, train_point_t *tp,
                       size_t out_elems, csv_row_t *r, csv_row_t *stage_rows, int *n_stage_rows,
                       double io_bytes) {
    *n_stage_rows = 0;
    const shape_t *s = io->shape;
    char why[200];
    const char *unavailable = v->available ? v->available() : NULL;
    if (unavailable) {
        fail_row(sw, r, "skip:unavailable", unavailable, 0);
        return;
    }
    if (!v->run_bwd) {
        fail_row(sw, r, "skip:unsupported", "no backward (the variant is forward-only)", 0);
        return;
    }
    const char *unsupported = v->supports(s);
    if (unsupported) {
        fail_row(sw, r, "skip:unsupported", unsupported, 0);
        return;
    }
    if (train_alloc(sw, tp, why, sizeof why)) {
        fail_row(sw, r, "skip:oom", why, 0);
        return;
    }
    size_t ws = v->workspace_bytes(s), free_b = free_device_bytes();
    if (ws + MEM_MARGIN_BYTES > free_b) {
        snprintf(why, sizeof why, "workspace needs %.3g GiB > %.3g GiB free", ws / GiB,
                 free_b > MEM_MARGIN_BYTES ? (free_b - MEM_MARGIN_BYTES) / GiB : 0.0);
        fail_row(sw, r, "skip:oom", why, 0);
        return;
    }
    char range[160];
    snprintf(range, sizeof range, "%s %s T=%d B=%d", v->name, pass_name(s->pass), s->T, s->B);
    void *state = NULL;
    bench_clear_error();
    const size_t free_before = free_device_bytes();
    const int set = v->setup(s, io, &state);
    if (set) { /* 1: the planner declined the shape (variant.h), a skip; else a failure */
        fail_row(sw, r, set > 0 ? "skip:unsupported" : "fail:setup", bench_last_error(), set < 0);
        v->teardown(state);
        return;
    }
    row_config(v, state, s, r);
    nvtx_push(range);
    int bad = verify_train(sw, v, state, io, tp, out_elems, r);
    nvtx_pop();
    /* inputs, output, dy, gradients, and what setup and the first forward + backward took:
     * the saved activations and the backward's workspaces */
    const size_t free_after = free_device_bytes();
    r->peak_mem_bytes = io_bytes + tp->bytes +
                        (free_before > free_after ? (double)(free_before - free_after) : 0);
    if (!bad) {
        if (time_variant(sw, v, state, io, &tp->g, range, -1, r)) {
            snprintf(r->status, sizeof r->status, "fail:cuda");
            snprintf(r->note, sizeof r->note, "while timing: %s", bench_last_error());
            r->median_ms = NAN;
            note_failure(sw);
        } else {
            snprintf(r->status, sizeof r->status, "ok");
            if (sw->o->profile) profile_variant(sw, v, state, io, &tp->g, range, -1, r);
            if (sw->o->breakdown && variant_stage_rows(v, s->pass) > 0)
                *n_stage_rows = run_stages(sw, v, state, io, &tp->g, r, stage_rows);
        }
    }
    v->teardown(state);
}
