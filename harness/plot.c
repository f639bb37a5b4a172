/* plot.c: `chela-bench plot` -- schema-v1 results to PNG/SVG via gnuplot.
 *
 * Rows are grouped into series keyed by op + variant + role + dtype + device +
 * shape (heads/dk/dv or dim), so one variant at two shapes is two lines.  For
 * every op family and chart this writes <chart>_<op>.dat (tab separated, one
 * block per series: a header row holding the legend label, then seq-sorted
 * points; a skipped or failed point is a NaN row followed by a blank line, a
 * gap in the line, never a zero) and runs plots/<chart>.gp on it twice, once
 * for .png and once for .svg.  The scripts take -e "in=..; out=..; title=..;
 * n=..; dts=..; xmin=..; xmax=.." (and ceil=.. for bandwidth). */
#include "plot.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "csv.h"

#define PLOT_MAX_SERIES 128
#define PLOT_MAX_POINTS 64

typedef struct {
    const csv_row_t *key;      /* first row of the series */
    const csv_row_t *pt[PLOT_MAX_POINTS];
    int n, n_ok;
} series_t;

typedef struct {
    const char *dir;      /* output directory */
    const char *scripts;  /* folder holding the .gp files */
    int charts;
} plot_ctx_t;

static void fail_line(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "chela-bench: ");
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
}

static int same_num(double a, double b) { return (isnan(a) && isnan(b)) || a == b; }
static int is_ok(const csv_row_t *r) { return !strcmp(r->status, "ok"); }
static int finite_pos(double x) { return isfinite(x) && x > 0; }

static int same_shape(const csv_row_t *a, const csv_row_t *b)
{
    return same_num(a->heads, b->heads) && same_num(a->dk, b->dk) && same_num(a->dv, b->dv) &&
           same_num(a->dim, b->dim) && !strcmp(a->dtype, b->dtype) && !strcmp(a->device, b->device);
}

static int same_series(const csv_row_t *a, const csv_row_t *b)
{
    return !strcmp(a->op, b->op) && !strcmp(a->variant, b->variant) && !strcmp(a->role, b->role) &&
           same_shape(a, b);
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

/* ---- running gnuplot ---------------------------------------------------- */

static int find_gnuplot(void)
{
    const char *path = getenv("PATH");
    if (!path || !*path) return 0;
    char buf[4096];
    const char *p = path;
    while (*p) {
        const char *e = strchr(p, ':');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n > 0 && n < sizeof buf - 16) {
            memcpy(buf, p, n);
            strcpy(buf + n, "/gnuplot");
            if (access(buf, X_OK) == 0) return 1;
        }
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

static int file_exists(const char *dir, const char *name)
{
    char buf[4096];
    struct stat st;
    if ((size_t)snprintf(buf, sizeof buf, "%s/%s", dir, name) >= sizeof buf) return 0;
    return stat(buf, &st) == 0 && S_ISREG(st.st_mode);
}

/* $CHELA_PLOT_DIR, then plots/ beside or above the binary, then ./plots. */
static const char *find_scripts(void)
{
    static char buf[4096];
    const char *env = getenv("CHELA_PLOT_DIR");
    if (env && *env) return file_exists(env, "time.gp") ? env : NULL;
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) *slash = '\0';
        static const char *rel[] = {"/plots", "/../plots", "/../../plots"};
        for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
            snprintf(buf, sizeof buf, "%s%s", exe, rel[i]);
            if (file_exists(buf, "time.gp")) return buf;
        }
    }
#ifdef CHELA_SOURCE_DIR
    snprintf(buf, sizeof buf, "%s/plots", CHELA_SOURCE_DIR);
    if (file_exists(buf, "time.gp")) return buf;
#endif
    if (file_exists("plots", "time.gp")) return "plots";
    return NULL;
}

static int mkdirs(const char *dir)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
    struct stat st;
    return stat(buf, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
}

/* gnuplot strings are single-quoted; keep the title's quotes out. */
static void gp_quote_safe(char *s)
{
    for (; *s; s++)
        if (*s == '\'' || *s == '\n') *s = ' ';
}

/* Renders <dir>/<stem>.png and .svg from <dir>/<stem>.dat with <script>. */
static int render(plot_ctx_t *c, const char *script, const char *stem, const char *vars)
{
    static const char *ext[] = {"png", "svg"};
    char gp[4096], dat[4096], out[4096], log[4096], expr[16384];
    snprintf(gp, sizeof gp, "%s/%s", c->scripts, script);
    snprintf(dat, sizeof dat, "%s/%s.dat", c->dir, stem);
    snprintf(log, sizeof log, "%s/%s.log", c->dir, stem);
    for (int k = 0; k < 2; k++) {
        snprintf(out, sizeof out, "%s/%s.%s", c->dir, stem, ext[k]);
        snprintf(expr, sizeof expr, "in='%s'; out='%s'; %s", dat, out, vars);
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
            fail_line("cannot start gnuplot: %s%s", strerror(errno), "");
            return -1;
        }
        if (pid == 0) {
            if (!freopen(log, "w", stdout) || dup2(fileno(stdout), 2) < 0) _exit(126);
            execlp("gnuplot", "gnuplot", "-e", expr, gp, (char *)NULL);
            _exit(127);
        }
        int st = 0;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
        struct stat sb;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || stat(out, &sb) != 0 || sb.st_size == 0) {
            fail_line("gnuplot failed on %s (see %s)", out, log);
            return -1;
        }
    }
    remove(log);
    c->charts++;
    return 0;
}

/* ---- charts --------------------------------------------------------------- */

typedef struct {
    series_t *s[PLOT_MAX_SERIES];
    int n;
    int shapes_vary, dtypes_vary, devices_vary;
    double xmin, xmax;
    char title_ctx[384]; /* "H100 80GB HBM3, bf16, H=16 d_k=64 d_v=64, 65536 tokens" */
} opset_t;

static void label_for(const opset_t *g, const csv_row_t *r, char *buf, size_t len)
{
    char shp[96];
    size_t k;
    snprintf(buf, len, "%s", short_variant(r->variant));
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
    fprintf(f, "%s\ty\tlo\thi\n", label);
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

static FILE *open_dat(plot_ctx_t *c, const char *stem)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.dat", c->dir, stem);
    FILE *f = fopen(path, "w");
    if (!f) fail_line("cannot write %s: %s", path, strerror(errno));
    return f;
}

static void append(char *buf, size_t len, const char *word)
{
    size_t k = strlen(buf);
    snprintf(buf + k, len - k, "%s%s", k ? " " : "", word);
}

static int chart_series(plot_ctx_t *c, const opset_t *g, const char *chart, const char *op,
                        value_fn fn, const char *ytitle, const char *extra)
{
    char stem[128], dts[512] = "", label[256], vars[2048], title[512];
    int blocks = 0;
    snprintf(stem, sizeof stem, "%s_%s", chart, op);
    FILE *f = open_dat(c, stem);
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
    fclose(f);
    snprintf(title, sizeof title, "%s: %s", op, ytitle);
    gp_quote_safe(title);
    snprintf(vars, sizeof vars, "title='%s'; sub='%s'; n=%d; dts='%s'; xmin=%g; xmax=%g; %s", title, g->title_ctx, blocks, dts,
             g->xmin, g->xmax, extra ? extra : "");
    char script[64];
    snprintf(script, sizeof script, "%s.gp", chart);
    return render(c, script, stem, vars);
}

static int chart_speedup(plot_ctx_t *c, const opset_t *g, const char *op)
{
    char stem[128], dts[512] = "", label[256], vars[2048], title[512];
    int blocks = 0, kdash = 0;
    snprintf(stem, sizeof stem, "speedup_%s", op);
    /* pairs first: no pair, no chart */
    for (int i = 0; i < g->n; i++)
        for (int j = 0; j < g->n; j++)
            if (!strcmp(g->s[i]->key->role, "kernel") && !strcmp(g->s[j]->key->role, "baseline") &&
                same_shape(g->s[i]->key, g->s[j]->key))
                blocks++;
    if (blocks == 0) return 0;
    FILE *f = open_dat(c, stem);
    if (!f) return -1;
    int good_total = 0;
    blocks = 0;
    for (int i = 0; i < g->n; i++) {
        const series_t *k = g->s[i];
        if (strcmp(k->key->role, "kernel")) continue;
        for (int j = 0; j < g->n; j++) {
            const series_t *b = g->s[j];
            if (strcmp(b->key->role, "baseline") || !same_shape(k->key, b->key)) continue;
            char base[128];
            label_for(g, k->key, label, sizeof label);
            size_t len = strlen(label);
            const char *comma = strchr(label, ',');
            /* "chunked vs naive_cumsum[, shape]" */
            snprintf(base, sizeof base, "%s", comma ? comma : "");
            snprintf(label + (comma ? (size_t)(comma - label) : len),
                     sizeof label - (comma ? (size_t)(comma - label) : len), " vs %s%s",
                     short_variant(b->key->variant), base);
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
            fprintf(f, "%s\ty\tlo\thi\n", label);
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
    fclose(f);
    if (good_total == 0) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.dat", c->dir, stem);
        remove(path);
        return 0;
    }
    snprintf(title, sizeof title, "%s: speed-up of CHELA kernels over baselines", op);
    gp_quote_safe(title);
    snprintf(vars, sizeof vars, "title='%s'; sub='%s'; n=%d; dts='%s'; xmin=%g; xmax=%g", title, g->title_ctx,
             blocks, dts, g->xmin, g->xmax);
    return render(c, "speedup.gp", stem, vars);
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
        char stem[160], vars[2048], title[512], names[1024] = "";
        snprintf(stem, sizeof stem, "breakdown_%s_%s", op, short_variant(whole->variant));
        for (char *q = stem; *q; q++)
            if (*q == '/' || *q == ':') *q = '_';
        FILE *f = open_dat(c, stem);
        if (!f) return -1;
        fprintf(f, "T");
        for (int k = 0; k < ns; k++) {
            fprintf(f, "\t%s", st[k]->key->variant + strlen(prefix));
            append(names, sizeof names, st[k]->key->variant + strlen(prefix));
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
        fclose(f);
        if (bars == 0) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s.dat", c->dir, stem);
            remove(path);
            continue;
        }
        snprintf(title, sizeof title, "%s: where the time goes, stage by stage", whole->variant);
        gp_quote_safe(title);
        snprintf(vars, sizeof vars, "title='%s'; sub='%s'; n=%d", title, g->title_ctx, ns);
        if (render(c, "breakdown.gp", stem, vars)) return -1;
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
    gp_quote_safe(g.title_ctx);
    if (chart_series(c, &g, "time", op, v_time, "time per call", NULL)) return -1;
    if (chart_speedup(c, &g, op)) return -1;
    if (has_bw) {
        char extra[64];
        snprintf(extra, sizeof extra, "ceil=%.6g", isfinite(ceil_gbps) ? ceil_gbps : 0.0);
        if (chart_series(c, &g, "bandwidth", op, v_gbps, "achieved bandwidth", extra)) return -1;
    }
    if (has_hbm && chart_series(c, &g, "hbm", op, v_hbm, "measured vs ideal HBM traffic", NULL)) return -1;
    return 0;
}

int plot_main(const options_t *o)
{
    char err[512];
    if (o->n_args < 1) {
        fprintf(stderr, "chela-bench: plot needs a results file: chela-bench plot results.csv [-o DIR]\n");
        return 2;
    }
    const char *dir = o->out_given ? o->out : "plots";
    csv_row_t *rows = NULL;
    int n_rows = 0;
    for (int a = 0; a < o->n_args; a++) {
        csv_row_t *part = NULL;
        int n = csv_read(o->args[a], &part, err, sizeof err);
        if (n < 0) {
            fprintf(stderr, "chela-bench: %s\n", err);
            free(rows);
            return 2;
        }
        int ok = 0;
        for (int i = 0; i < n; i++) ok += is_ok(&part[i]);
        if (ok == 0) {
            fail_line("no ok rows to plot in %s%s", o->args[a], "");
            free(part);
            free(rows);
            return 2;
        }
        csv_row_t *grown = realloc(rows, (size_t)(n_rows + n + 1) * sizeof *rows);
        if (!grown) {
            fail_line("out of memory%s%s", "", "");
            free(part);
            free(rows);
            return 2;
        }
        rows = grown;
        if (n) memcpy(rows + n_rows, part, (size_t)n * sizeof *rows);
        n_rows += n;
        free(part);
    }
    if (!find_gnuplot()) {
        fail_line("gnuplot not found: install gnuplot-nox (Debian) or gnuplot%s%s", "", "");
        free(rows);
        return 2;
    }
    plot_ctx_t c = {dir, find_scripts(), 0};
    if (!c.scripts) {
        fail_line("gnuplot scripts (plots/*.gp) not found: set CHELA_PLOT_DIR to the source tree's plots/%s%s", "", "");
        free(rows);
        return 2;
    }
    if (strchr(dir, '\'') || strchr(c.scripts, '\'')) {
        fail_line("output directory %s must not contain a quote%s", dir, "");
        free(rows);
        return 2;
    }
    if (mkdirs(dir) != 0) {
        fail_line("cannot create output directory %s: %s", dir, strerror(errno));
        free(rows);
        return 2;
    }

    series_t *series = calloc(PLOT_MAX_SERIES, sizeof *series);
    int n_series = 0, rc = 0;
    for (int i = 0; i < n_rows && series; i++) {
        const csv_row_t *r = &rows[i];
        if (!isfinite(r->seq) || !r->op[0]) continue;
        int k = 0;
        while (k < n_series && !same_series(series[k].key, r)) k++;
        if (k == n_series) {
            if (n_series == PLOT_MAX_SERIES) continue;
            series[n_series++].key = r;
        }
        if (series[k].n < PLOT_MAX_POINTS) {
            series[k].pt[series[k].n++] = r;
            series[k].n_ok += is_ok(r);
        }
    }
    if (!series) {
        fail_line("out of memory%s%s", "", "");
        free(rows);
        return 2;
    }
    for (int k = 0; k < n_series; k++)
        qsort(series[k].pt, (size_t)series[k].n, sizeof series[k].pt[0], cmp_seq);
    /* one chart set per op family, in order of first appearance */
    for (int k = 0; k < n_series && rc == 0; k++) {
        int seen = 0;
        for (int j = 0; j < k; j++) seen |= !strcmp(series[j].key->op, series[k].key->op);
        if (!seen && plot_op(&c, series, n_series, series[k].key->op)) rc = 2;
    }
    if (rc == 0) printf("plot: wrote %d charts (png + svg) to %s/\n", c.charts, dir);
    free(series);
    free(rows);
    return rc;
}
