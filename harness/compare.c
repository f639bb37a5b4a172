/* compare.c: match rows of two results files and judge each change.
 *
 * Rows match by (device, backend, op, variant, dtype, batch, seq, heads, dk, dv, dim);
 * device drops out of the key with --allow-device-mismatch.  For a row ok in
 * both files, with ratio = new median / base median:
 *   SLOWER  ratio - 1 > max_slowdown  AND  new p10 > base p90  AND
 *           ratio - 1 > 2 (stdrel_base + stdrel_new)
 *   FASTER  the mirror image (1 - ratio beyond the threshold, base p10 > new p90, ...)
 *   SAME    otherwise: a difference the recorded spread of the two runs can explain.
 * Why three conditions: the threshold says what size of change matters, the
 * p10/p90 condition says the two distributions do not even overlap, and the
 * stdrel one keeps a pair of very noisy runs from flagging on medians alone.
 * HBM bytes, when both rows have them, are nearly deterministic: more than
 * --hbm-tolerance (default 2%) more bytes is SLOWER too.
 * A row ok in BASE and not ok in NEW is BROKEN; ok in BASE and absent in NEW is
 * MISSING (a regression unless --allow-missing). */
#include "compare.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"

typedef enum { V_BROKEN = 0, V_MISSING, V_SLOWER, V_FASTER, V_SAME } verdict_t;
static const char *VNAME[] = {"BROKEN", "MISSING", "SLOWER", "FASTER", "SAME"};

typedef struct {
    const csv_row_t *base, *cur;
    verdict_t v;
    double ratio;
    char why[128];
} result_t;

static int same_num(double a, double b) { return (isnan(a) && isnan(b)) || a == b; }

static int same_key(const csv_row_t *a, const csv_row_t *b, int use_device) {
    return (!use_device || !strcmp(a->device, b->device)) && !strcmp(a->backend, b->backend) &&
           !strcmp(a->op, b->op) && !strcmp(a->variant, b->variant) &&
           !strcmp(a->dtype, b->dtype) && same_num(a->batch, b->batch) &&
           same_num(a->seq, b->seq) && same_num(a->heads, b->heads) && same_num(a->dk, b->dk) &&
           same_num(a->dv, b->dv) && same_num(a->dim, b->dim);
}

static double or0(double x) { return isnan(x) ? 0 : x; }

static void judge(const options_t *o, result_t *r) {
    const csv_row_t *b = r->base, *n = r->cur;
    r->ratio = NAN;
    if (!n) {
        r->v = V_MISSING;
        snprintf(r->why, sizeof r->why, "not in NEW");
        return;
    }
    if (strcmp(n->status, "ok") != 0) {
        r->v = V_BROKEN;
        snprintf(r->why, sizeof r->why, "%s", n->status);
        return;
    }
    r->ratio = n->median_ms / b->median_ms;
    double up = r->ratio - 1, noise = 2 * (or0(b->stdrel) + or0(n->stdrel));
    double bp10 = isnan(b->p10_ms) ? b->median_ms : b->p10_ms;
    double bp90 = isnan(b->p90_ms) ? b->median_ms : b->p90_ms;
    double np10 = isnan(n->p10_ms) ? n->median_ms : n->p10_ms;
    double np90 = isnan(n->p90_ms) ? n->median_ms : n->p90_ms;
    r->v = V_SAME;
    if (up > o->max_slowdown && np10 > bp90 && up > noise) {
        r->v = V_SLOWER;
        snprintf(r->why, sizeof r->why, "+%.1f%% (spread allows %.1f%%)", 100 * up,
                 100 * fmax(o->max_slowdown, noise));
    } else if (-up > o->max_slowdown && bp10 > np90 && -up > noise) {
        r->v = V_FASTER;
        snprintf(r->why, sizeof r->why, "%.1f%%", 100 * up);
    }
    /* A time moves with the clock it ran at (sm_clock_mhz: the median over the row's samples,
     * clock_probe.h): say so beside a verdict, which stays the time's. */
    if (r->v != V_SAME && b->sm_clock_mhz > 0 && n->sm_clock_mhz > 0 &&
        fabs(n->sm_clock_mhz / b->sm_clock_mhz - 1) > 0.03) {
        size_t l = strlen(r->why);
        snprintf(r->why + l, sizeof r->why - l, "%sSM clock %.0f -> %.0f MHz", l ? "; " : "",
                 b->sm_clock_mhz, n->sm_clock_mhz);
    }
    double hb = b->hbm_read_bytes + b->hbm_write_bytes, hn = n->hbm_read_bytes + n->hbm_write_bytes;
    if (!isnan(hb) && !isnan(hn) && hb > 0) {
        double dh = hn / hb - 1;
        if (dh > o->hbm_tolerance) {
            r->v = V_SLOWER;
            size_t l = strlen(r->why);
            snprintf(r->why + l, sizeof r->why - l, "%sHBM bytes +%.1f%% (> %.1f%%)", l ? "; " : "",
                     100 * dh, 100 * o->hbm_tolerance);
        }
    }
}

static int worse(const void *pa, const void *pb) {
    const result_t *a = pa, *b = pb;
    if (a->v != b->v) return (a->v > b->v) - (a->v < b->v);
    double x = isnan(a->ratio) ? 0 : a->ratio, y = isnan(b->ratio) ? 0 : b->ratio;
    return (x < y) - (x > y);
}

int compare_main(const options_t *o) {
    char err[512];
    csv_row_t *base = NULL, *cur = NULL;
    if (o->n_args != 2) {
        fprintf(stderr, "chela-bench compare: needs BASE.csv NEW.csv\n");
        return 2;
    }
    int nb = csv_read(o->args[0], &base, err, sizeof err);
    if (nb < 0) {
        fprintf(stderr, "chela-bench compare: %s\n", err);
        return 2;
    }
    int nn = csv_read(o->args[1], &cur, err, sizeof err);
    if (nn < 0) {
        fprintf(stderr, "chela-bench compare: %s\n", err);
        free(base);
        return 2;
    }
    int rc = 2;
    result_t *res = calloc((size_t)nb + 1, sizeof *res);
    if (!res) {
        fprintf(stderr, "chela-bench compare: out of memory\n");
        goto out;
    }
    if (!o->allow_device_mismatch && nb && nn && strcmp(base[0].device, cur[0].device) != 0) {
        fprintf(stderr, "chela-bench compare: different devices ('%s' vs '%s'); "
                        "use --allow-device-mismatch to compare anyway\n",
                base[0].device, cur[0].device);
        goto out;
    }
    int m = 0, common = 0;
    for (int i = 0; i < nb; i++) {
        if (strcmp(base[i].status, "ok") != 0) continue; /* nothing measured to regress from */
        result_t *r = &res[m++];
        r->base = &base[i];
        for (int j = 0; j < nn; j++)
            if (same_key(&base[i], &cur[j], !o->allow_device_mismatch)) {
                r->cur = &cur[j];
                common++;
                break;
            }
        judge(o, r);
    }
    if (common == 0) {
        fprintf(stderr, "chela-bench compare: no ok rows of %s match a row of %s\n", o->args[0],
                o->args[1]);
        goto out;
    }
    qsort(res, (size_t)m, sizeof *res, worse);
    int counts[5] = {0};
    printf("%-8s %-26s %-6s %-7s %-22s %10s %10s %7s  %s\n", "verdict", "variant", "dtype", "seq",
           "shape", "base_ms", "new_ms", "ratio", "why");
    for (int i = 0; i < m; i++) {
        const result_t *r = &res[i];
        const csv_row_t *b = r->base;
        char shape[64];
        if (!isnan(b->heads))
            snprintf(shape, sizeof shape, "B=%g H=%g %gx%g", b->batch, b->heads, b->dk, b->dv);
        else
            snprintf(shape, sizeof shape, "B=%g d=%g", b->batch, b->dim);
        counts[r->v]++;
        printf("%-8s %-26s %-6s %-7g %-22s %10.4g %10.4g %7.3f  %s\n", VNAME[r->v], b->variant,
               b->dtype, b->seq, shape, b->median_ms, r->cur ? r->cur->median_ms : NAN, r->ratio,
               r->why);
    }
    int regress = counts[V_BROKEN] + counts[V_SLOWER] + (o->allow_missing ? 0 : counts[V_MISSING]);
    printf("%d compared: %d SAME, %d FASTER, %d SLOWER, %d BROKEN, %d MISSING%s -> %s\n", m,
           counts[V_SAME], counts[V_FASTER], counts[V_SLOWER], counts[V_BROKEN], counts[V_MISSING],
           o->allow_missing && counts[V_MISSING] ? " (allowed)" : "",
           regress ? "REGRESSION" : "ok");
    rc = regress ? 1 : 0;
out:
    free(res);
    free(base);
    free(cur);
    return rc;
}
