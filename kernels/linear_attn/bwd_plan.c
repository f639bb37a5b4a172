/* bwd_plan.c: the host planner of linear_attn/chunked's backward (bwd_plan.h).  Pure C: the same
 * problem, setting and facts always give the same plan, here or in a unit test.
 *
 * The rules, and why (estimates: nothing here has been timed yet):
 *   segments  one segment a sequence costs nothing extra (no sums pass, no scan, no state
 *             workspace), so it is kept while the B*H*dv/64 blocks of a walking kernel give
 *             every SM >= 1.5 blocks (the forward's rule).  Otherwise segments are added to fill
 *             the GPU, by the forward's cost waves(n)/n on at most LAB_PLAN_BPS blocks an SM,
 *             never shorter than the forward's minimum (one pass over a segment's fp32 state
 *             costs at most 1/32 of its token bytes).  H100 (132 SMs), the LM shape: 1024 / 128 /
 *             16 blocks at T = 1k / 8k / 64k -> 1 / 2 / 16 segments (2 blocks an SM); CHELA's
 *             head at 64k: 32 blocks -> 4 segments of 16384 tokens (1 block an SM).
 *   reduce    with one slice (dv = 64) the walking blocks own whole rows of dQ and dK and write
 *             them in the run dtype; with more, every slice adds its part into fp32 sums
 *             (atomics, dq32 / dk32) that one pass converts.  A workspace of per-slice partials
 *             would cost nslices * 4 bytes a dk element (32 x at CHELA's head: 1 GB at 64k) and
 *             a reduction that reads them all; the atomics cost 2 x 4 bytes a dk element a
 *             slice of L2 traffic and 8 bytes of HBM. */
#include "linear_attn/bwd_plan.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench_check.h"

static int lab_imin(int a, int b) { return a < b ? a : b; }

static size_t lab_align256(size_t n) { return (n + 255) & ~(size_t)255; }

/* The forward's minimum segment (plan.c, lac_seg_min_chunks): 16 chunks at dk = dv = 64, 61 at
 * dk 128, dv 2048. */
static int lab_seg_min_chunks(int dk, int dv) {
    const double lmin = (double)dk * dv * 4.0 * LAC_WS_FRAC_INV / ((2.0 * dk + 2.0 * dv) * 2.0);
    const int ch = (int)ceil(lmin / LAC_C);
    return ch < 1 ? 1 : ch;
}

static int lab_nseg_bound(int T, int dk, int dv) {
    const int nchunks = (T + LAC_C - 1) / LAC_C;
    const int minch = lab_seg_min_chunks(dk, dv);
    return (nchunks + minch - 1) / minch;
}

const char *lab_shape_reason(const lac_problem *pr) {
    const char *why = lac_shape_reason(pr);
    if (why) return why;
    if (!pr->causal) return "backward: causal only";
    if (pr->dtype != DTYPE_BF16 && pr->dtype != DTYPE_F16) return "backward: bf16 or fp16 only";
    return NULL;
}

/* The fewest n in nmin..nmax whose waves(n)/n is within 5 % of the best (plan.c's rule). */
static int lab_fewest_parts(int64_t units, int64_t conc, int nmin, int nmax) {
    double best = 1.0; /* n = 1: one wave of units <= conc */
    for (int n = nmin; n <= nmax; n++) {
        const double cost = (double)((units * n + conc - 1) / conc) / n;
        if (cost < best) best = cost;
    }
    for (int n = nmin; n <= nmax; n++)
        if ((double)((units * n + conc - 1) / conc) / n <= 1.05 * best) return n;
    return 1;
}

int lab_plan_make(const lac_problem *pr, int seg_tokens, const lab_device_facts *f, lab_plan *p) {
    memset(p, 0, sizeof(*p));
    const char *why = lab_shape_reason(pr);
    if (why) BENCH_FAIL("linear_attn/chunked: %s", why);
    if (f->sms < 1 || f->bps < 1)
        BENCH_FAIL("linear_attn/chunked backward: a walking kernel cannot be resident");
    const int B = pr->B, H = pr->H, T = pr->T, dk = pr->dk, dv = pr->dv;
    p->nslices = dv / LAC_DVS;
    p->nchunks = (T + LAC_C - 1) / LAC_C;
    const int64_t units = (int64_t)B * H * p->nslices;
    int seg_chunks;
    if (seg_tokens > 0) {
        seg_chunks = (seg_tokens + LAC_C - 1) / LAC_C;
    } else {
        const int nseg_max = lab_nseg_bound(T, dk, dv);
        int nseg = 1;
        const int bps = lab_imin(f->bps, LAB_PLAN_BPS);
        if (units * 2 < (int64_t)f->sms * 3 && nseg_max > 1)
            nseg = lab_fewest_parts(units, (int64_t)f->sms * bps, 2, nseg_max);
        seg_chunks = (p->nchunks + nseg - 1) / nseg;
    }
    if (seg_chunks > p->nchunks) seg_chunks = p->nchunks;
    p->seg_chunks = seg_chunks;
    p->nseg = (p->nchunks + seg_chunks - 1) / seg_chunks;
    if ((double)units * p->nseg > (double)INT_MAX)
        BENCH_FAIL("linear_attn/chunked backward: %lld blocks exceed the grid limit",
                   (long long)(units * p->nseg));
    p->reduce = p->nslices > 1;
    p->state_bytes = p->nseg > 1 ? (size_t)B * H * p->nseg * dk * dv * sizeof(float) : 0;
    p->acc_bytes = p->reduce ? (size_t)B * H * T * dk * sizeof(float) : 0;
    return 0;
}

void lab_plan_words(const lab_plan *p, char *buf, size_t len) {
    snprintf(buf, len, "bwd=recompute bwd_seg=%d bwd_red=%s", p->seg_chunks * LAC_C,
             p->reduce ? "atomic" : "none");
}

size_t lab_ws_layout(const lab_plan *p, void *base, lab_ptrs *d) {
    const size_t parts[4] = {p->state_bytes, p->state_bytes, p->acc_bytes, p->acc_bytes};
    void *ptr[4];
    size_t off = 0;
    for (int i = 0; i < 4; i++) {
        ptr[i] = parts[i] && base ? (char *)base + off : NULL;
        off += lab_align256(parts[i]);
    }
    if (d) {
        d->fstates = (float *)ptr[0];
        d->bstates = (float *)ptr[1];
        d->dq32 = (float *)ptr[2];
        d->dk32 = (float *)ptr[3];
    }
    return off;
}

size_t lab_workspace_bound(const lac_problem *pr, int seg_tokens) {
    if (lab_shape_reason(pr)) return 0;
    const int nchunks = (pr->T + LAC_C - 1) / LAC_C;
    int nseg = lab_nseg_bound(pr->T, pr->dk, pr->dv);
    if (seg_tokens > 0) {
        const int sc = lab_imin((seg_tokens + LAC_C - 1) / LAC_C, nchunks);
        const int forced = (nchunks + sc - 1) / sc;
        if (forced > nseg) nseg = forced;
    }
    const size_t states =
        nseg > 1 ? (size_t)pr->B * pr->H * nseg * pr->dk * pr->dv * sizeof(float) : 0;
    const size_t acc =
        pr->dv > LAC_DVS ? (size_t)pr->B * pr->H * pr->T * pr->dk * sizeof(float) : 0;
    return 2 * lab_align256(states) + 2 * lab_align256(acc);
}
