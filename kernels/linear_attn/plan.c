/* plan.c: the host planner of linear_attn/chunked (plan.h).  Pure C: every device fact arrives as
 * a number in lac_device_facts, so the same problem, settings and facts always give the same
 * plan, here or in a unit test.
 *
 * The rules, and why (measured on the H100: profiles/NOTES.md, linear_attn):
 *   segments  nseg = 1 costs nothing extra (no pass A or B, no workspace), so it is kept while
 *             the B*H*dv/64 blocks alone give every SM >= 1.5 blocks.  Otherwise segments are
 *             added to fill the GPU: time ~ waves of equal blocks, each 1/nseg of the work, so
 *             cost(n) = waves(n)/n; the fewest segments within 5 % of the best cost (less
 *             workspace), never shorter than lac_seg_min_chunks (workspace traffic).  Since v5
 *             the waves count at most LAC_PLAN_BPS = 2 pass-C blocks an SM.
 *   parts     pass A splits each needed segment into `sub` parts (a block each, summed by the
 *             scan) when its blocks alone give the SMs fewer than 1.5 each, by the same
 *             waves/n cost on pass A's own occupancy, within the workspace bound.
 *   PDL       on unless la_pdl=0.
 * Settings force any of them: la_version, la_seg (tokens, rounded up to a chunk), la_sub, la_pdl. */
#include "linear_attn/plan.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench_check.h"
#include "settings.h"

static int lac_imin(int a, int b) { return a < b ? a : b; }
static int lac_imax(int a, int b) { return a > b ? a : b; }

lac_opts lac_opts_auto(void) {
    const lac_opts o = {SETTING_AUTO, SETTING_AUTO, SETTING_AUTO, SETTING_AUTO};
    return o;
}

lac_opts lac_opts_from(const struct settings *set) {
    const lac_opts o = {settings_get(set, "la_version"), settings_get(set, "la_seg"),
                        settings_get(set, "la_sub"), settings_get(set, "la_pdl")};
    return o;
}

static size_t lac_align256(size_t n) { return (n + 255) & ~(size_t)255; }

/* Shortest segment (in chunks) such that one pass over its dk x dv fp32 state costs at most
 * 1/LAC_WS_FRAC_INV of its q,k,v,o bytes (counted at 2 bytes per element): 16 chunks (1024
 * tokens) for dk = dv = 64, 61 (3904 tokens) for dk 128, dv 2048. */
static int lac_seg_min_chunks(int dk, int dv) {
    double lmin = (double)dk * dv * 4.0 * LAC_WS_FRAC_INV / ((2.0 * dk + 2.0 * dv) * 2.0);
    int ch = (int)ceil(lmin / LAC_C);
    return ch < 1 ? 1 : ch;
}

/* Largest number of segments the default plan can choose (workspace bound). */
static int lac_nseg_bound(int T, int dk, int dv) {
    int nchunks = (T + LAC_C - 1) / LAC_C;
    int minch = lac_seg_min_chunks(dk, dv);
    return (nchunks + minch - 1) / minch;
}

const char *lac_shape_reason(const lac_problem *pr) {
    const int B = pr->B, H = pr->H, T = pr->T, dk = pr->dk, dv = pr->dv;
    const dtype_t dt = pr->dtype;
    if (dk != 64 && dk != 128) return "dk must be 64 or 128";
    if (dv < 64 || dv > 2048 || dv % 64 != 0) return "dv must be a multiple of 64 in 64..2048";
    if (B < 1 || H < 1 || T < 1) return "B, H and T must be positive";
    if (dt != DTYPE_F32 && dt != DTYPE_BF16 && dt != DTYPE_F16) return "unknown dtype";
    double blocks = (double)B * H * (dv / 64) * lac_nseg_bound(T, dk, dv);
    if (blocks > (double)INT_MAX) return "B*H*T too large for a 1-D grid";
    return NULL;
}

/* v3 replaces v2's pass C where the per-slice Q K^T recompute exists (dv >= 128) and the chunk
 * recurrence runs (causal); v6 is v3 on wgmma. */
static int lac_v3_applies(int dv, int causal) { return causal && dv >= 2 * LAC_DVS; }

int lac_plan_version(const lac_problem *pr, const lac_opts *o, int v6_usable) {
    int version = o->version;
    if (version != 1 && version != 2 && version != 3 && version != 6)
        version = LAC_DEFAULT_VERSION;
    if (pr->dtype == DTYPE_F32) version = 1;
    if (version == 6 && !v6_usable) version = 3; /* no sm_90a build or not cc 9.0 */
    if (version >= 3 && !lac_v3_applies(pr->dv, pr->causal)) version = 2;
    return version;
}

/* cost(n) = waves(n) / n of `units` equal blocks each split n ways on `conc` resident slots:
 * the fewest n in nmin..nmax within 5 % of min(best0, the best cost there) (fewer blocks,
 * less workspace); 1 if none is. */
static int lac_fewest_parts(int64_t units, int64_t conc, int nmin, int nmax, double best0) {
    double best = best0;
    for (int n = nmin; n <= nmax; n++) {
        const double cost = (double)((units * n + conc - 1) / conc) / n;
        if (cost < best) best = cost;
    }
    for (int n = nmin; n <= nmax; n++)
        if ((double)((units * n + conc - 1) / conc) / n <= 1.05 * best) return n;
    return 1;
}

int lac_plan_make(const lac_problem *pr, const lac_opts *o, const lac_device_facts *f,
                  lac_plan *p) {
    const int B = pr->B, H = pr->H, T = pr->T, dk = pr->dk, dv = pr->dv, causal = pr->causal;
    memset(p, 0, sizeof(*p));
    const int version = lac_plan_version(pr, o, f->v6_usable);
    if (f->version != version)
        BENCH_FAIL("linear_attn/chunked: device facts describe v%d, the plan runs v%d", f->version,
                   version);
    p->version = version;
    p->pdl = o->pdl != 0; /* la_pdl=0: plain launches */
    p->nslices = dv / LAC_DVS;
    p->nchunks = (T + LAC_C - 1) / LAC_C;

    const int sms = f->sms, bps = f->bps_c, bps_a = f->bps_a;
    if (bps < 1 || bps_a < 1)
        BENCH_FAIL("linear_attn/chunked v%d: pass A or C kernel cannot be resident", version);

    const int seg_tokens = o->seg > 0 ? o->seg : 0;
    const int64_t units = (int64_t)B * H * p->nslices;
    int seg_chunks;
    if (seg_tokens > 0) {
        seg_chunks = (seg_tokens + LAC_C - 1) / LAC_C;
    } else {
        const int nseg_max = lac_nseg_bound(T, dk, dv);
        int nseg = 1;
        /* v5: the waves count at most LAC_PLAN_BPS pass-C blocks an SM.  Blocks sharing an SM
         * share its throughput, so a third one (the dk = 64 kernel fits 3) adds a wave of work,
         * not parallelism: at the LM shape (B*H = 32 / 16, H100) 384 blocks (12 / 24 segments,
         * ~3 an SM) measured 0.305 / 0.315 ms at 32k / 64k, 256 blocks (8 / 16 segments of
         * 4096 tokens, ~2 an SM) 0.290 / 0.297, 128 (one an SM) 0.374 / 0.391. */
        const int bps_plan = lac_imin(bps, LAC_PLAN_BPS);
        if (units * 2 < (int64_t)sms * 3 && nseg_max > 1) /* against nseg = 1's cost, 1 */
            nseg = lac_fewest_parts(units, (int64_t)sms * bps_plan, 2, nseg_max, 1.0);
        seg_chunks = (p->nchunks + nseg - 1) / nseg; /* balance: equal segments */
    }
    if (seg_chunks > p->nchunks) seg_chunks = p->nchunks;
    p->seg_chunks = seg_chunks;
    p->nseg = (p->nchunks + seg_chunks - 1) / seg_chunks;
    p->nseg_ws = causal ? p->nseg - 1 : p->nseg;
    /* Pass A's parts: the rule pass C's segments follow (blocks < 1.5 an SM), on pass A's own
     * occupancy, within the workspace bound (ws_per_bh <= the bound's states, what the
     * launchers' workspace promises).  Measured on the H100 (v4, v2's pass A at 3 blocks an
     * SM): CHELA head 16k / 32k (128 / 192 blocks -> 3 / 2 parts, one wave) 0.528 -> 0.502 and
     * 0.561 -> 0.544 ms; splitting at 64k (224 blocks, 2 parts, 1.13 waves) cost +0.04 ms, and
     * at the LM shape (256-368 blocks, v4's segments) +0.014-0.02 ms.  la_sub=<n> forces n
     * (parts of at least one chunk; may exceed the bound). */
    p->sub = 1;
    if (p->nseg_ws > 0) {
        const int nseg_bound = lac_nseg_bound(T, dk, dv);
        const int ws_bound = causal ? nseg_bound - 1 : nseg_bound;
        int sub_max = lac_imax(1, ws_bound / p->nseg_ws);
        sub_max = lac_imin(sub_max, seg_chunks); /* parts of at least one chunk */
        const int64_t blocks_a = units * p->nseg_ws;
        const int forced = o->sub > 0 ? o->sub : 0;
        if (forced > 0)
            p->sub = lac_imin(forced, seg_chunks);
        else if (blocks_a * 2 < (int64_t)sms * 3)
            p->sub = lac_fewest_parts(blocks_a, (int64_t)sms * bps_a, 1, sub_max, 1e30);
    }
    p->sub_chunks = (seg_chunks + p->sub - 1) / p->sub;
    p->ws_per_bh = p->nseg_ws * p->sub;
    if ((double)units * lac_imax(p->nseg, p->ws_per_bh) > (double)INT_MAX)
        BENCH_FAIL("linear_attn/chunked: %lld blocks exceed the grid limit",
                   (long long)(units * lac_imax(p->nseg, p->ws_per_bh)));
    p->state_bytes = (size_t)B * H * p->ws_per_bh * dk * dv * sizeof(float);
    p->rowpart_bytes = (size_t)p->nslices * B * H * T * sizeof(float);
    if (version == 3) {
        p->amat_bytes = (size_t)B * H * p->nchunks * LAC_C * LAC_C * 2;
        p->q16_bytes = pr->dtype == DTYPE_BF16 ? (size_t)B * H * T * dk * 2 : 0;
    }
    if (version == 6) p->img_bytes = lac_v6_image_bytes((int64_t)B * H, p->nchunks, dk);
    return 0;
}

void lac_plan_words(const lac_plan *p, const char *prefix, char *buf, size_t len) {
    snprintf(buf, len, "%sv%d seg=%d sub=%d pdl=%d", prefix, p->version, p->seg_chunks * LAC_C,
             p->sub, p->pdl ? 1 : 0);
}

/* ---- the workspace ------------------------------------------------------------------------ */

int lac_norm_mode(const lac_plan *p, int rms_norm, int gated) {
    if (!rms_norm) return 0;
    return (p->version >= 2 && p->nslices == 1 && !gated) ? 1 : 2;
}

size_t lac_ws_layout(const lac_plan *p, int norm_mode, void *base, lac_ptrs *d) {
    size_t off = 0;
    const size_t parts[5] = {p->state_bytes, norm_mode == 2 ? p->rowpart_bytes : 0,
                             p->amat_bytes, p->q16_bytes, p->img_bytes};
    void *ptr[5];
    for (int i = 0; i < 5; i++) {
        ptr[i] = parts[i] && base ? (char *)base + off : NULL;
        off += lac_align256(parts[i]);
    }
    if (d) {
        d->states = (float *)ptr[0];
        d->rowpart = (float *)ptr[1];
        d->amat = (uint16_t *)ptr[2];
        d->q16 = (uint16_t *)ptr[3];
        d->images = (uint16_t *)ptr[4];
    }
    return off;
}

size_t lac_v6_image_bytes(int64_t nbh, int nchunks, int dk) {
    return (size_t)nbh * nchunks * (size_t)(2 * LAC_C * dk + LAC_C * LAC_C) * 2;
}

/* Workspace bytes beyond the states of whichever of v3 (A and q16 buffers; q16 counted for any
 * 16-bit dtype) and v6 (operand images) may run: 0 where neither does. */
static size_t lac_v3_bytes(int B, int H, int T, int dk, int dv, int causal) {
    if (!lac_v3_applies(dv, causal)) return 0;
    const int nchunks = (T + LAC_C - 1) / LAC_C;
    const size_t v3 = lac_align256((size_t)B * H * nchunks * LAC_C * LAC_C * 2) +
                      lac_align256((size_t)B * H * T * dk * 2);
    const size_t v6 = lac_align256(lac_v6_image_bytes((int64_t)B * H, nchunks, dk));
    return v3 > v6 ? v3 : v6;
}

/* States per (b,h) any plan under o may keep: the default plan's bound, or more where la_seg /
 * la_sub force shorter segments or more parts. */
static int lac_states_bound(int T, int dk, int dv, const lac_opts *o) {
    const int nchunks = (T + LAC_C - 1) / LAC_C;
    int nseg = lac_nseg_bound(T, dk, dv);
    if (o->seg > 0) {
        const int sc = lac_imin((o->seg + LAC_C - 1) / LAC_C, nchunks);
        nseg = lac_imax(nseg, (nchunks + sc - 1) / sc);
    }
    return nseg * lac_imax(1, lac_imin(o->sub > 0 ? o->sub : 1, nchunks));
}

/* Causal plans keep one state fewer a part (the last segment's state is nobody's input). */
size_t lac_workspace_bound(const lac_problem *pr, const lac_opts *o) {
    if (lac_shape_reason(pr)) return 0;
    const int bound = lac_states_bound(pr->T, pr->dk, pr->dv, o);
    const int nws = pr->causal ? bound - 1 : bound;
    return lac_align256((size_t)pr->B * pr->H * nws * pr->dk * pr->dv * sizeof(float)) +
           lac_v3_bytes(pr->B, pr->H, pr->T, pr->dk, pr->dv, pr->causal);
}

size_t lac_launcher_workspace_bound(int B, int H, int T, int dk, int dv, const lac_opts *o) {
    const lac_problem pr = {B, H, T, dk, dv, 1, DTYPE_BF16};
    if (lac_shape_reason(&pr)) return 0;
    const size_t states =
        (size_t)B * H * lac_states_bound(T, dk, dv, o) * dk * dv * sizeof(float);
    const size_t rowpart = (size_t)(dv / LAC_DVS) * B * H * T * sizeof(float);
    return lac_align256(states) + lac_align256(rowpart) + lac_v3_bytes(B, H, T, dk, dv, 1);
}
