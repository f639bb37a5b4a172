/* plot.c: `chela-bench plot` -- schema-v1 results to PNG/SVG via gnuplot.
 *
 * Rows are grouped into series keyed by op + variant + role + dtype + device +
 * shape (heads/dk/dv or dim), so one variant at two shapes is two lines.  For
 * every op family and chart this writes <chart>_<op>.dat (tab separated, one
 * block per series: a header row holding the legend label, then seq-sorted
 * points; a skipped or failed point is a NaN row followed by a blank line, a
 * gap in the line, never a zero) and runs plots/<chart>.gp on it twice, once
 * for .png and once for .svg.  The scripts take -e "in=..; out=..; title=..;
 * n=..; dts=..; xmin=..; xmax=.." (and ceil=.. for bandwidth).  Everything goes
 * to -o DIR, by default ./charts (never plots/: run from the repository root
 * that would overwrite the committed charts; `-o plots` regenerates them).
 *
 * Text from the results file (op, variant, device, dtype...) reaches gnuplot
 * only through plot_text() (labels, titles) and plot_stem() (file names);
 * the files themselves are made whole-or-not-at-all by plot_out.c. */
#include "plot.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "csv.h"
#include "row_settings.h"

#define PLOT_MAX_SERIES 128
#define PLOT_MAX_POINTS 64

typedef struct {
    const csv_row_t *key;      /* first row of the series */
    const csv_row_t *pt[PLOT_MAX_POINTS];
    int n, n_ok;
} series_t;

static int same_num(double a, double b) { return (isnan(a) && isnan(b)) || a == b; }
static int is_ok(const csv_row_t *r) { return !strcmp(r->status, "ok"); }
static int finite_pos(double x) { return isfinite(x) && x > 0; }

/* Rows measured alike: shape, dtype, device, causality and pass (a schema-1 row reads as
 * causal NaN and pass "", so two schema-1 files still pair with each other). */
static int same_shape(const csv_row_t *a, const csv_row_t *b)
{
    return same_num(a->heads, b->heads) && same_num(a->dk, b->dk) && same_num(a->dv, b->dv) &&
           same_num(a->dim, b->dim) && !strcmp(a->dtype, b->dtype) && !strcmp(a->device, b->device) &&
           same_num(a->causal, b->causal) && !strcmp(a->pass, b->pass);
}

/* One line of a chart: one variant at one shape and one set of user-set settings. */
static int same_series(const csv_row_t *a, const csv_row_t *b)
{
    char sa[256], sb[256];
    return !strcmp(a->op, b->op) && !strcmp(a->variant, b->variant) && !strcmp(a->role, b->role) &&
           same_shape(a, b) &&
           !strcmp(row_user_settings(a, sa, sizeof sa), row_user_settings(b, sb, sizeof sb));
}

static void shape_str(const csv_row_t *r, char *buf, size_t len)
{
    if (isfinite(r->heads) || isfinite(r->dk) || isfinite(r->dv)) {
        snprintf(buf, len, "H=%.0f d_k=%.0f d_v=%.0f", r->heads, r->dk, r->dv);
        if (isfinite(r->dim)) {
            size_t k = strlen(buf);
            snprintf(buf + k, len - k, " dim=%.0f", r->dim);
        }
    } else if (isfinite(r->dim)) {
        snprintf(buf, len, "dim=%.0f", r->dim);
    } else {
        snprintf(buf, len, "-");
    }
}

static const char *short_variant(const char *v)
{
    const char *s = strchr(v, '/');
    return s ? s + 1 : v;
}

static const char *short_device(const char *d)
{
    return strncmp(d, "NVIDIA ", 7) ? d : d + 7;
}

static int cmp_seq(const void *a, const void *b)
{
    const csv_row_t *x = *(const csv_row_t *const *)a, *y = *(const csv_row_t *const *)b;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

/* ---- charts --------------------------------------------------------------- */

typedef struct {
    series_t *s[PLOT_MAX_SERIES];
    int n;
    int shapes_vary, dtypes_vary, devices_vary;
    double xmin, xmax;
    char title_ctx[384]; /* "H100 80GB HBM3, bf16, H=16 d_k=64 d_v=64, 65536 tokens" */
} opset_t;

/* ", shape, dtype, device": whichever of them vary within the chart */
static void label_suffix(const opset_t *g, const csv_row_t *r, char *buf, size_t len)
{
    char shp[96];
    size_t k;
    buf[0] = '\0';
    if (g->shapes_vary) {
        shape_str(r, shp, sizeof shp);
        k = strlen(buf);
        snprintf(buf + k, len - k, ", %s", shp);
    }
    if (g->dtypes_vary) {
        k = strlen(buf);
        snprintf(buf + k, len - k, ", %s", r->dtype);
    }
    if (g->devices_vary) {
        k = strlen(buf);
        snprintf(buf + k, len - k, ", %s", short_device(r->device));
    }
    char set[256];
    if (row_user_settings(r, set, sizeof set)[0]) { /* a --set sweep: one line per value */
        k = strlen(buf);
        snprintf(buf + k, len - k, ", %s", set);
    }
    if (r->causal == 0) {
        k = strlen(buf);
        snprintf(buf + k, len - k, ", non-causal");
    }
    if (r->pass[0] && strcmp(r->pass, "fwd")) {
        k = strlen(buf);
        snprintf(buf + k, len - k, ", %s", r->pass);
    }
}

/* "chunked[, shape...]": the legend label of a series (plot_text'ed on write) */
static void label_for(const opset_t *g, const csv_row_t *r, char *buf, size_t len)
{
    char suffix[256];
    label_suffix(g, r, suffix, sizeof suffix);
    snprintf(buf, len, "%s%s", short_variant(r->variant), suffix);
}

/* A legend label or column header in a .dat file: a tab, newline, '#' or '"'
 * from the CSV would split or hide the row, so it goes through plot_text. */
static void put_label(FILE *f, const char *label)
{
    char clean[512];
    plot_text(clean, sizeof clean, label);
    fputs(clean, f);
}

static const char *dash_for(const csv_row_t *r)
{
    if (!strcmp(r->role, "kernel")) return "1";
    if (!strcmp(r->role, "baseline")) return "2";
    return "4";
}

typedef double (*value_fn)(const csv_row_t *r, double *lo, double *hi);

static double v_time(const csv_row_t *r, double *lo, double *hi)
{
    *lo = r->p10_ms;
    *hi = r->p90_ms;
    return r->median_ms;
}
static double v_gbps(const csv_row_t *r, double *lo, double *hi)
{
    *lo = *hi = NAN;
    if (isfinite(r->gbps)) return r->gbps;
    return finite_pos(r->median_ms) ? r->ideal_bytes / r->median_ms / 1e6 : NAN;
}
static double v_hbm(const csv_row_t *r, double *lo, double *hi)
{
    *lo = *hi = NAN;
    return (r->hbm_read_bytes + r->hbm_write_bytes) / 1e9;
}
static double v_ideal(const csv_row_t *r, double *lo, double *hi)
{
    *lo = *hi = NAN;
    return r->ideal_bytes / 1e9;
}

/* ideal bytes are a property of the shape: drawn whatever the row's status */
static int usable(const csv_row_t *r, value_fn fn)
{
    return is_ok(r) || fn == v_ideal;
}

static int count_good(const series_t *s, value_fn fn)
{
    int good = 0;
    for (int i = 0; i < s->n; i++) {
        double lo, hi, y = fn(s->pt[i], &lo, &hi);
        good += usable(s->pt[i], fn) && finite_pos(y);
    }
    return good;
}

/* One block: label row, then the points (NaN row + blank line = gap). */
static int write_block(FILE *f, const char *label, const series_t *s, value_fn fn)
{
    int good = 0;
    put_label(f, label);
    fprintf(f, "\ty\tlo\thi\n");
    for (int i = 0; i < s->n; i++) {
        const csv_row_t *r = s->pt[i];
        double lo, hi, y = fn(r, &lo, &hi);
        if (usable(r, fn) && finite_pos(y)) {
            fprintf(f, "%.6g\t%.6g\t%.6g\t%.6g\n", r->seq, y, finite_pos(lo) ? lo : y,
                    finite_pos(hi) ? hi : y);
            good++;
        } else {
            fprintf(f, "%.6g\tNaN\tNaN\tNaN\n\n", r->seq);
        }
    }
    fprintf(f, "\n\n");
    return good;
}

/* The title, subtitle and axis range every chart script takes. */
static void common_vars(gp_expr_t *e, const opset_t *g, const char *title, int n, const char *dts)
{
    gx_init(e);
    gx_str(e, "title", title);
    gx_str(e, "sub", g->title_ctx);
    gx_num(e, "n", n);
    if (dts) {
        gx_str(e, "dts", dts);
        gx_num(e, "xmin", g->xmin);
        gx_num(e, "xmax", g->xmax);
    }
}

/* Closes the .dat and renders it, or drops it when it holds nothing to draw. */
static int finish_chart(plot_ctx_t *c, chart_t *ch, FILE *f, int drawable, const char *script,
                        const gp_expr_t *vars)
{
    if (chart_dat_done(c, ch, f)) return -1;
    if (!drawable) {
        chart_abort(c, ch);
        return 0;
    }
    return chart_render(c, ch, script, vars);
}

static void append(char *buf, size_t len, const char *word)
{
    size_t k = strlen(buf);
    snprintf(buf + k, len - k, "%s%s", k ? " " : "", word);
}

/* ceiling: the bandwidth chart's copy ceiling (GB/s, 0 = none), NAN for other charts */
static int chart_series(plot_ctx_t *c, const opset_t *g, const char *chart, const char *op,
                        value_fn fn, const char *ytitle, double ceiling)
{
    char dts[512] = "", label[512], title[512], script[64];
    const char *parts[] = {chart, op};
    int blocks = 0;
    chart_t ch;
    if (chart_begin(c, &ch, parts, 2)) return -1;
    FILE *f = chart_dat(c, &ch);
    if (!f) return -1;
    for (int i = 0; i < g->n; i++) {
        if (count_good(g->s[i], fn) == 0) continue; /* nothing to draw */
        label_for(g, g->s[i]->key, label, sizeof label);
        write_block(f, label, g->s[i], fn);
        append(dts, sizeof dts, dash_for(g->s[i]->key));
        blocks++;
    }
    /* HBM chart: one ideal-bytes line per shape, dotted. */
    if (!strcmp(chart, "hbm")) {
        for (int i = 0; i < g->n; i++) {
            int seen = 0;
            for (int j = 0; j < i; j++) seen |= same_shape(g->s[i]->key, g->s[j]->key);
            if (seen) continue;
            char shp[96];
            shape_str(g->s[i]->key, shp, sizeof shp);
            snprintf(label, sizeof label, "ideal bytes%s%s", g->shapes_vary ? ", " : "",
                     g->shapes_vary ? shp : "");
            /* every seq any series of this shape has, once */
            series_t ideal;
            memset(&ideal, 0, sizeof ideal);
            for (int j = 0; j < g->n; j++) {
                if (!same_shape(g->s[i]->key, g->s[j]->key)) continue;
                for (int p = 0; p < g->s[j]->n && ideal.n < PLOT_MAX_POINTS; p++) {
                    const csv_row_t *r = g->s[j]->pt[p];
                    int dup = !finite_pos(r->ideal_bytes);
                    for (int q = 0; q < ideal.n && !dup; q++) dup = ideal.pt[q]->seq == r->seq;
                    if (!dup) ideal.pt[ideal.n++] = r;
                }
            }
            qsort(ideal.pt, (size_t)ideal.n, sizeof ideal.pt[0], cmp_seq);
            if (count_good(&ideal, v_ideal) == 0) continue;
            write_block(f, label, &ideal, v_ideal);
            append(dts, sizeof dts, "3");
            blocks++;
        }
    }
    snprintf(title, sizeof title, "%s: %s", op, ytitle);
    snprintf(script, sizeof script, "%s.gp", chart);
    gp_expr_t vars;
    common_vars(&vars, g, title, blocks, dts);
    if (!isnan(ceiling)) gx_num(&vars, "ceil", ceiling);
    return finish_chart(c, &ch, f, blocks > 0, script, &vars);
}

static int chart_speedup(plot_ctx_t *c, const opset_t *g, const char *op)
{
    char dts[512] = "", label[512], suffix[256], title[512];
    const char *parts[] = {"speedup", op};
    int blocks = 0, kdash = 0;
    /* pairs first: no pair, no chart */
    for (int i = 0; i < g->n; i++)
        for (int j = 0; j < g->n; j++)
            if (!strcmp(g->s[i]->key->role, "kernel") && !strcmp(g->s[j]->key->role, "baseline") &&
                same_shape(g->s[i]->key, g->s[j]->key))
                blocks++;
    if (blocks == 0) return 0;
    chart_t ch;
    if (chart_begin(c, &ch, parts, 2)) return -1;
    FILE *f = chart_dat(c, &ch);
    if (!f) return -1;
    int good_total = 0;
    blocks = 0;
    for (int i = 0; i < g->n; i++) {
        const series_t *k = g->s[i];
        if (strcmp(k->key->role, "kernel")) continue;
        for (int j = 0; j < g->n; j++) {
            const series_t *b = g->s[j];
            if (strcmp(b->key->role, "baseline") || !same_shape(k->key, b->key)) continue;
            /* "chunked vs naive_cumsum[, shape]" */
            label_suffix(g, k->key, suffix, sizeof suffix);
            snprintf(label, sizeof label, "%s vs %s%s", short_variant(k->key->variant),
                     short_variant(b->key->variant), suffix);
            double seq[PLOT_MAX_POINTS], y[PLOT_MAX_POINTS];
            int good = 0;
            for (int p = 0; p < k->n; p++) {
                const csv_row_t *kr = k->pt[p], *br = NULL;
                for (int q = 0; q < b->n; q++)
                    if (b->pt[q]->seq == kr->seq) br = b->pt[q];
                seq[p] = kr->seq;
                y[p] = NAN;
                if (br && is_ok(kr) && is_ok(br) && finite_pos(kr->median_ms) && finite_pos(br->median_ms)) {
                    y[p] = br->median_ms / kr->median_ms;
                    good++;
                }
            }
            if (good == 0) continue;
            put_label(f, label);
            fprintf(f, "\ty\tlo\thi\n");
            for (int p = 0; p < k->n; p++) {
                if (isfinite(y[p])) fprintf(f, "%.6g\t%.6g\t%.6g\t%.6g\n", seq[p], y[p], y[p], y[p]);
                else fprintf(f, "%.6g\tNaN\tNaN\tNaN\n\n", seq[p]);
            }
            fprintf(f, "\n\n");
            append(dts, sizeof dts, kdash % 2 ? "2" : "1");
            kdash++;
            good_total += good;
            blocks++;
        }
    }
    snprintf(title, sizeof title, "%s: speed-up of CHELA kernels over baselines", op);
    gp_expr_t vars;
    common_vars(&vars, g, title, blocks, dts);
    return finish_chart(c, &ch, f, good_total > 0, "speedup.gp", &vars);
}

/* (5) --breakdown rows (role "stage", variant "NAME:STAGE"): for each staged variant,
 * one stacked bar per T of its stages' median times, stages in the order they run,
 * with the whole variant's own median as a point on top (the gap between the two is
 * what running the stages back to back overlaps or adds). */
static int chart_breakdown(plot_ctx_t *c, const opset_t *g, series_t *all, int n_all,
                           const char *op)
{
    for (int w = 0; w < g->n; w++) {
        const csv_row_t *whole = g->s[w]->key;
        char prefix[80];
        snprintf(prefix, sizeof prefix, "%s:", whole->variant);
        const series_t *st[PLOT_MAX_SERIES];
        int ns = 0;
        for (int i = 0; i < n_all && ns < PLOT_MAX_SERIES; i++)
            if (!strcmp(all[i].key->role, "stage") && !strncmp(all[i].key->variant, prefix, strlen(prefix)) &&
                same_shape(all[i].key, whole) && all[i].n_ok > 0)
                st[ns++] = &all[i];
        if (ns == 0) continue;
        char title[512];
        /* a training pass's breakdown is a chart of its own (breakdown_OP_VARIANT_bwd) */
        const char *parts[] = {"breakdown", op, short_variant(whole->variant), whole->pass};
        const int fwd = !whole->pass[0] || !strcmp(whole->pass, "fwd");
        chart_t ch;
        if (chart_begin(c, &ch, parts, fwd ? 3 : 4)) return -1;
        FILE *f = chart_dat(c, &ch);
        if (!f) return -1;
        fprintf(f, "T");
        for (int k = 0; k < ns; k++) {
            fputc('\t', f);
            put_label(f, st[k]->key->variant + strlen(prefix));
        }
        fprintf(f, "\twhole\n");
        int bars = 0;
        for (int p = 0; p < g->s[w]->n; p++) {
            const csv_row_t *wr = g->s[w]->pt[p];
            if (!is_ok(wr)) continue;
            double t[PLOT_MAX_SERIES];
            int good = 1;
            for (int k = 0; k < ns && good; k++) {
                t[k] = NAN;
                for (int q = 0; q < st[k]->n; q++)
                    if (st[k]->pt[q]->seq == wr->seq && is_ok(st[k]->pt[q])) t[k] = st[k]->pt[q]->median_ms;
                good = finite_pos(t[k]);
            }
            if (!good) continue; /* a bar with a missing stage would mislead: leave the gap */
            if ((int)wr->seq % 1024 == 0) fprintf(f, "%dk", (int)wr->seq / 1024);
            else fprintf(f, "%d", (int)wr->seq);
            for (int k = 0; k < ns; k++) fprintf(f, "\t%.6g", t[k]);
            fprintf(f, "\t%.6g\n", wr->median_ms);
            bars++;
        }
        snprintf(title, sizeof title, "%s%s%s: where the time goes, stage by stage",
                 whole->variant, fwd ? "" : " ", fwd ? "" : whole->pass);
        gp_expr_t vars;
        common_vars(&vars, g, title, ns, NULL);
        if (finish_chart(c, &ch, f, bars > 0, "breakdown.gp", &vars)) return -1;
    }
    return 0;
}

static void build_title(opset_t *g)
{
    const csv_row_t *r = g->s[0]->key;
    char shp[96], tok[64] = "";
    double tokens = NAN;
    int tokens_vary = 0;
    for (int i = 0; i < g->n; i++)
        for (int p = 0; p < g->s[i]->n; p++) {
            double t = g->s[i]->pt[p]->batch * g->s[i]->pt[p]->seq;
            if (isnan(tokens)) tokens = t;
            else if (t != tokens) tokens_vary = 1;
        }
    if (!tokens_vary && isfinite(tokens)) snprintf(tok, sizeof tok, ", batch x T = %.0f tokens", tokens);
    shape_str(r, shp, sizeof shp);
    snprintf(g->title_ctx, sizeof g->title_ctx, "%s, %s%s%s%s", g->devices_vary ? "several devices" : short_device(r->device),
             g->dtypes_vary ? "several dtypes" : r->dtype, g->shapes_vary ? "" : ", ",
             g->shapes_vary ? "" : shp, tok);
}

static int plot_op(plot_ctx_t *c, series_t *all, int n_all, const char *op)
{
    opset_t g;
    memset(&g, 0, sizeof g);
    g.xmin = INFINITY;
    g.xmax = -INFINITY;
    int has_hbm = 0, has_bw = 0;
    double ceil_gbps = NAN;
    for (int i = 0; i < n_all; i++) {
        series_t *s = &all[i];
        if (strcmp(s->key->op, op) || s->n_ok == 0 || g.n == PLOT_MAX_SERIES) continue;
        if (!strcmp(s->key->role, "stage")) continue; /* the breakdown chart's */
        if (g.n) {
            const csv_row_t *a = g.s[0]->key, *b = s->key;
            if (!(same_num(a->heads, b->heads) && same_num(a->dk, b->dk) && same_num(a->dv, b->dv) &&
                  same_num(a->dim, b->dim)))
                g.shapes_vary = 1;
            if (strcmp(a->dtype, b->dtype)) g.dtypes_vary = 1;
            if (strcmp(a->device, b->device)) g.devices_vary = 1;
        }
        g.s[g.n++] = s;
        for (int p = 0; p < s->n; p++) {
            const csv_row_t *r = s->pt[p];
            if (r->seq < g.xmin) g.xmin = r->seq;
            if (r->seq > g.xmax) g.xmax = r->seq;
            if (!is_ok(r)) continue;
            if (isfinite(r->hbm_read_bytes) && isfinite(r->hbm_write_bytes)) has_hbm = 1;
            double lo, hi;
            if (finite_pos(v_gbps(r, &lo, &hi))) has_bw = 1;
            if (finite_pos(r->ideal_bytes) && finite_pos(r->floor_ms)) {
                double cg = r->ideal_bytes / r->floor_ms / 1e6;
                if (isnan(ceil_gbps) || cg > ceil_gbps) ceil_gbps = cg;
            }
        }
    }
    if (g.n == 0) return 0;
    build_title(&g);
    if (chart_breakdown(c, &g, all, n_all, op)) return -1;
    if (chart_series(c, &g, "time", op, v_time, "time per call", NAN)) return -1;
    if (chart_speedup(c, &g, op)) return -1;
    if (has_bw && chart_series(c, &g, "bandwidth", op, v_gbps, "achieved bandwidth",
                               isfinite(ceil_gbps) ? ceil_gbps : 0.0))
        return -1;
    if (has_hbm && chart_series(c, &g, "hbm", op, v_hbm, "measured vs ideal HBM traffic", NAN)) return -1;
    return 0;
}

/* ---- the layers chart: the whole layers side by side --------------------- */

static int is_layer_op(const char *op)
{
    return !strcmp(op, "chela") || !strcmp(op, "transformer") || !strcmp(op, "mega");
}

/* time_layers[_<pass>]: every whole-layer series (chela, transformer, mega: ours and the
 * peers'; no stages, no oracles) of one pass in one chart, labelled "op/variant" (the ops'
 * own head shapes differ, so the shape is not a line's identity here; a width, dtype or
 * device that varies is in the label).  The paper's comparison: one line per layer. */
static int plot_layers_pass(plot_ctx_t *c, series_t *all, int n_all, const char *pass)
{
    opset_t g;
    memset(&g, 0, sizeof g);
    g.xmin = INFINITY;
    g.xmax = -INFINITY;
    int dims_vary = 0;
    for (int i = 0; i < n_all && g.n < PLOT_MAX_SERIES; i++) {
        series_t *s = &all[i];
        const csv_row_t *k = s->key;
        const char *kp = k->pass[0] ? k->pass : "fwd"; /* a schema-1 row: forward */
        if (!is_layer_op(k->op) || s->n_ok == 0 || strcmp(kp, pass)) continue;
        if (strcmp(k->role, "kernel") && strcmp(k->role, "baseline")) continue;
        if (g.n) {
            const csv_row_t *a = g.s[0]->key;
            if (!same_num(a->dim, k->dim)) dims_vary = 1;
            if (strcmp(a->dtype, k->dtype)) g.dtypes_vary = 1;
            if (strcmp(a->device, k->device)) g.devices_vary = 1;
        }
        g.s[g.n++] = s;
        for (int p = 0; p < s->n; p++) {
            if (s->pt[p]->seq < g.xmin) g.xmin = s->pt[p]->seq;
            if (s->pt[p]->seq > g.xmax) g.xmax = s->pt[p]->seq;
        }
    }
    int ops = 0; /* a chart of one layer is the op's own time chart */
    for (int i = 0; i < g.n; i++) {
        int seen = 0;
        for (int j = 0; j < i; j++) seen |= !strcmp(g.s[i]->key->op, g.s[j]->key->op);
        ops += !seen;
    }
    if (ops < 2) return 0;
    const csv_row_t *r0 = g.s[0]->key;
    char dim[32] = "", dts[512] = "", label[512], title[128];
    if (!dims_vary && isfinite(r0->dim)) snprintf(dim, sizeof dim, ", d=%.0f", r0->dim);
    double tokens = r0->batch * r0->seq;
    snprintf(g.title_ctx, sizeof g.title_ctx, "%s, %s%s, batch x T = %.0f tokens",
             g.devices_vary ? "several devices" : short_device(r0->device),
             g.dtypes_vary ? "several dtypes" : r0->dtype, dim, tokens);
    const int fwd = !strcmp(pass, "fwd");
    const char *parts[] = {"time", "layers", pass};
    chart_t ch;
    if (chart_begin(c, &ch, parts, fwd ? 2 : 3)) return -1;
    FILE *f = chart_dat(c, &ch);
    if (!f) return -1;
    int blocks = 0;
    for (int i = 0; i < g.n; i++) {
        const csv_row_t *k = g.s[i]->key;
        if (count_good(g.s[i], v_time) == 0) continue;
        char set[256];
        snprintf(label, sizeof label, "%s", k->variant);
        size_t n = strlen(label);
        if (dims_vary && isfinite(k->dim)) snprintf(label + n, sizeof label - n, ", d=%.0f", k->dim);
        n = strlen(label);
        if (g.dtypes_vary) snprintf(label + n, sizeof label - n, ", %s", k->dtype);
        n = strlen(label);
        if (g.devices_vary) snprintf(label + n, sizeof label - n, ", %s", short_device(k->device));
        n = strlen(label);
        if (row_user_settings(k, set, sizeof set)[0])
            snprintf(label + n, sizeof label - n, ", %s", set);
        write_block(f, label, g.s[i], v_time);
        append(dts, sizeof dts, dash_for(k));
        blocks++;
    }
    snprintf(title, sizeof title, "layers: time per call%s%s", fwd ? "" : ", ", fwd ? "" : pass);
    gp_expr_t vars;
    common_vars(&vars, &g, title, blocks, dts);
    return finish_chart(c, &ch, f, blocks > 1, "time.gp", &vars);
}

static int plot_layers(plot_ctx_t *c, series_t *all, int n_all)
{
    static const char *const passes[] = {"fwd", "bwd", "fwdbwd"};
    for (size_t p = 0; p < sizeof passes / sizeof passes[0]; p++)
        if (plot_layers_pass(c, all, n_all, passes[p])) return -1;
    return 0;
}

/* Reads every file; a file of only skipped or failed rows is fine (gaps) as
 * long as some file has an ok row.  Returns the row count, or -1 after one line. */
static int read_all(const options_t *o, csv_row_t **out)
{
    char err[512], names[512] = "";
    csv_row_t *rows = NULL;
    int n_rows = 0, n_ok = 0;
    for (int a = 0; a < o->n_args; a++) {
        csv_row_t *part = NULL;
        int n = csv_read(o->args[a], &part, err, sizeof err);
        if (n < 0) {
            plot_fail("%s", err);
            free(rows);
            return -1;
        }
        for (int i = 0; i < n; i++) n_ok += is_ok(&part[i]);
        csv_row_t *grown = realloc(rows, (size_t)(n_rows + n + 1) * sizeof *rows);
        if (!grown) {
            plot_fail("out of memory");
            free(part);
            free(rows);
            return -1;
        }
        rows = grown;
        if (n) memcpy(rows + n_rows, part, (size_t)n * sizeof *rows);
        n_rows += n;
        free(part);
        size_t k = strlen(names);
        snprintf(names + k, sizeof names - k, "%s%s", a ? ", " : "", o->args[a]);
    }
    if (n_ok == 0) {
        plot_fail("no ok rows to plot in %s", names);
        free(rows);
        return -1;
    }
    *out = rows;
    return n_rows;
}

static int mkdirs(const char *dir)
{
    char buf[4096];
    if ((size_t)snprintf(buf, sizeof buf, "%s", dir) >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
    return 0;
}

/* gnuplot found, the scripts found (absolute), the output directory made and
 * open.  Returns 0, or -1 after one line. */
static int open_ctx(plot_ctx_t *c, const char *dir)
{
    memset(c, 0, sizeof *c);
    c->dirfd = -1;
    c->dir = dir;
    if (!gp_found()) {
        plot_fail("gnuplot not found: install gnuplot-nox (Debian) or gnuplot");
        return -1;
    }
    c->scripts = gp_find_scripts();
    if (!c->scripts) {
        plot_fail("gnuplot scripts (plots/*.gp) not found: set CHELA_PLOT_DIR to the source tree's plots/");
        return -1;
    }
    if (mkdirs(dir) != 0 || (c->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        plot_fail("cannot create output directory %s: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

static void close_ctx(plot_ctx_t *c)
{
    if (c->dirfd >= 0) close(c->dirfd);
    free((char *)c->scripts);
    free(c->stems);
}

/* Rows into series keyed by op, variant, role and shape; NULL when out of memory. */
static series_t *group(const csv_row_t *rows, int n_rows, int *n_series)
{
    series_t *series = calloc(PLOT_MAX_SERIES, sizeof *series);
    *n_series = 0;
    if (!series) return NULL;
    for (int i = 0; i < n_rows; i++) {
        const csv_row_t *r = &rows[i];
        if (!isfinite(r->seq) || !r->op[0]) continue;
        int k = 0;
        while (k < *n_series && !same_series(series[k].key, r)) k++;
        if (k == *n_series) {
            if (*n_series == PLOT_MAX_SERIES) continue;
            series[(*n_series)++].key = r;
        }
        if (series[k].n < PLOT_MAX_POINTS) {
            series[k].pt[series[k].n++] = r;
            series[k].n_ok += is_ok(r);
        }
    }
    for (int k = 0; k < *n_series; k++)
        qsort(series[k].pt, (size_t)series[k].n, sizeof series[k].pt[0], cmp_seq);
    return series;
}

int plot_main(const options_t *o)
{
    if (o->n_args < 1) {
        plot_fail("plot needs a results file: chela-bench plot results.csv [-o DIR]");
        return 2;
    }
    /* not plots/: run from the repository root, that would overwrite the
     * committed charts (regenerate those with -o plots) */
    const char *dir = o->out_given ? o->out : "charts";
    csv_row_t *rows = NULL;
    int n_rows = read_all(o, &rows);
    if (n_rows < 0) return 2;
    plot_ctx_t c;
    if (open_ctx(&c, dir)) {
        close_ctx(&c);
        free(rows);
        return 2;
    }
    /* a write past the file size limit is an error to report, not a kill */
    signal(SIGXFSZ, SIG_IGN);
    int n_series = 0, rc = 0;
    series_t *series = group(rows, n_rows, &n_series);
    if (!series) {
        plot_fail("out of memory");
        rc = 2;
    }
    /* one chart set per op family, in order of first appearance */
    for (int k = 0; k < n_series && rc == 0; k++) {
        int seen = 0;
        for (int j = 0; j < k; j++) seen |= !strcmp(series[j].key->op, series[k].key->op);
        if (!seen && plot_op(&c, series, n_series, series[k].key->op)) rc = 2;
    }
    if (rc == 0 && plot_layers(&c, series, n_series)) rc = 2;
    if (rc == 0) printf("plot: wrote %d charts (png + svg) to %s/\n", c.charts, dir);
    free(series);
    close_ctx(&c);
    free(rows);
    return rc;
}
