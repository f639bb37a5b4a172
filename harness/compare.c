/* compare.c: match rows of two results files and judge each change.
 *
 * Rows match by (device, backend, op, variant, dtype, batch, seq, heads, dk, dv, dim)
 * (key_of, the one place that says so); device drops out of the key with
 * --allow-device-mismatch.  For a row ok in both files, with
 * ratio = new median / base median:
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
 * MISSING (a regression unless --allow-missing).
 *
 * Duplicate keys: within one file the first row with a key wins, whatever its
 * status; later rows with that key are ignored and stderr says how many.  (NEW
 * rows whose key BASE lacks are never compared, so they are not counted.)
 *
 * Input is judged before anything is compared: a row that says ok must have a
 * positive, finite median and, where present, finite non-negative p10/p90;
 * anything else is unusable input (exit 2, one line naming file and line).
 *
 * Scale: BASE is kept as one compact record per row (its key in a hash table,
 * the few numbers judging needs), and NEW is streamed past it row by row, so
 * time is linear in the rows and memory grows with BASE alone. */
#include "compare.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "intern.h"
#include "keyhash.h"
#include "row_settings.h"

typedef enum { V_BROKEN = 0, V_MISSING, V_SLOWER, V_FASTER, V_SAME } verdict_t;
static const char *VNAME[] = {"BROKEN", "MISSING", "SLOWER", "FASTER", "SAME"};

/* ---------------- the match key ---------------- */

/* The atoms of a key, by column. */
enum {
    K_DEVICE, K_BACKEND, K_OP, K_VARIANT, K_DTYPE, K_BATCH, K_SEQ, K_HEADS, K_DK, K_DV, K_DIM,
    K_CAUSAL, K_PASS, K_SETTINGS, K_COUNT
};

/* A number as an atom: one NaN (an empty cell matches an empty cell) and one zero. */
static uint64_t num_atom(double x) {
    uint64_t a;
    if (isnan(x)) x = NAN;
    if (x == 0) x = 0;
    memcpy(&a, &x, sizeof a);
    return a;
}

static double atom_num(uint64_t a) {
    double x;
    memcpy(&x, &a, sizeof x);
    return x;
}

/* A string as an atom: its interned id.  BASE adds its strings; NEW only looks
 * them up (a string BASE never had matches nothing, and is not kept): 0 then,
 * or when out of memory. */
static uint64_t name_atom(intern_t *names, const char *s, int add) {
    return add ? intern_add(names, s) : intern_find(names, s);
}

/* The match key: the columns that say two rows measured the same thing: the shape,
 * causality, the pass and the settings the user set (row_settings.h).  To match on
 * another column, give it a K_ index above and a line here; nothing else changes.
 * Returns 0 when a string has no atom (see name_atom). */
static int key_of(const csv_row_t *r, int use_device, intern_t *names, int add,
                  uint64_t k[K_COUNT]) {
    k[K_DEVICE] = use_device ? name_atom(names, r->device, add) : 1;
    k[K_BACKEND] = name_atom(names, r->backend, add);
    k[K_OP] = name_atom(names, r->op, add);
    k[K_VARIANT] = name_atom(names, r->variant, add);
    k[K_DTYPE] = name_atom(names, r->dtype, add);
    k[K_BATCH] = num_atom(r->batch);
    k[K_SEQ] = num_atom(r->seq);
    k[K_HEADS] = num_atom(r->heads);
    k[K_DK] = num_atom(r->dk);
    k[K_DV] = num_atom(r->dv);
    k[K_DIM] = num_atom(r->dim);
    /* schema 2: a schema-1 row reads as causal 1, pass fwd and no settings (csv.c) */
    char set[256];
    k[K_CAUSAL] = num_atom(r->causal);
    k[K_PASS] = name_atom(names, r->pass, add);
    k[K_SETTINGS] = name_atom(names, row_user_settings(r, set, sizeof set), add);
    return k[K_DEVICE] && k[K_BACKEND] && k[K_OP] && k[K_VARIANT] && k[K_DTYPE] && k[K_PASS] &&
           k[K_SETTINGS];
}

/* ---------------- judging ---------------- */

/* What judging needs of a row. */
typedef struct {
    double median, p10, p90, stdrel, clock, hbm;
} stats_t;

static stats_t stats_of(const csv_row_t *r) {
    return (stats_t){r->median_ms, r->p10_ms, r->p90_ms, r->stdrel, r->sm_clock_mhz,
                     r->hbm_read_bytes + r->hbm_write_bytes};
}

static int is_ok(const csv_row_t *r) { return !strcmp(r->status, "ok"); }

static double or0(double x) { return isnan(x) ? 0 : x; }

/* The verdict on a row ok in BASE (b) found in NEW (n, ok or not), its reason in why. */
static verdict_t judge(const options_t *o, const stats_t *b, const stats_t *n, const char *n_status,
                       char *why, size_t why_len) {
    why[0] = 0;
    if (strcmp(n_status, "ok") != 0) {
        snprintf(why, why_len, "%s", n_status);
        return V_BROKEN;
    }
    double up = n->median / b->median - 1, noise = 2 * (or0(b->stdrel) + or0(n->stdrel));
    double bp10 = isnan(b->p10) ? b->median : b->p10;
    double bp90 = isnan(b->p90) ? b->median : b->p90;
    double np10 = isnan(n->p10) ? n->median : n->p10;
    double np90 = isnan(n->p90) ? n->median : n->p90;
    verdict_t v = V_SAME;
    if (up > o->max_slowdown && np10 > bp90 && up > noise) {
        v = V_SLOWER;
        snprintf(why, why_len, "+%.1f%% (spread allows %.1f%%)", 100 * up,
                 100 * fmax(o->max_slowdown, noise));
    } else if (-up > o->max_slowdown && bp10 > np90 && -up > noise) {
        v = V_FASTER;
        snprintf(why, why_len, "%.1f%%", 100 * up);
    }
    /* A time moves with the clock it ran at (sm_clock_mhz: the median over the row's samples,
     * clock_probe.h): say so beside a verdict, which stays the time's. */
    if (v != V_SAME && b->clock > 0 && n->clock > 0 && fabs(n->clock / b->clock - 1) > 0.03) {
        size_t l = strlen(why);
        snprintf(why + l, why_len - l, "%sSM clock %.0f -> %.0f MHz", l ? "; " : "", b->clock,
                 n->clock);
    }
    if (!isnan(b->hbm) && !isnan(n->hbm) && b->hbm > 0) {
        double dh = n->hbm / b->hbm - 1;
        if (dh > o->hbm_tolerance) {
            v = V_SLOWER;
            size_t l = strlen(why);
            snprintf(why + l, why_len - l, "%sHBM bytes +%.1f%% (> %.1f%%)", l ? "; " : "",
                     100 * dh, 100 * o->hbm_tolerance);
        }
    }
    return v;
}

/* ---------------- the table of BASE rows ---------------- */

/* One BASE row; its key is the key table's entry of the same id. */
typedef struct {
    stats_t s;
    double new_median; /* NEW's, once matched */
    uint32_t why;      /* the verdict's reason, interned in whys; 0 = none */
    uint32_t config;   /* BASE's resolved config, interned in whys; 0 = none */
    uint8_t ok, matched, verdict;
} base_t;

typedef struct {
    const options_t *o;
    int use_device;
    intern_t names, whys;
    keyhash_t keys;
    base_t *base; /* by key id */
    uint32_t cap;
    long rows[2], dups[2]; /* per file: rows read, rows ignored as duplicates */
    char device[2][96];    /* per file: the first row's device */
    long common;           /* ok BASE rows found in NEW */
} cmp_t;

/* p10/p90 may be empty (judge then uses the median); a value must be a time. */
static int bad_quantile(const char *name, double x, char *why, size_t len) {
    if (isnan(x) || (isfinite(x) && x >= 0)) return 0;
    snprintf(why, len, "status ok but %s is %g, not a time", name, x);
    return 1;
}

/* A row that says ok must carry times compare can divide and order: one line
 * in why when it does not. */
static int unusable(const csv_row_t *r, char *why, size_t len) {
    if (!is_ok(r)) return 0;
    if (isnan(r->median_ms)) {
        snprintf(why, len, "status ok but median_ms is empty");
        return 1;
    }
    if (!isfinite(r->median_ms) || r->median_ms <= 0) {
        snprintf(why, len, "status ok but median_ms is %g, not a positive time", r->median_ms);
        return 1;
    }
    return bad_quantile("p10_ms", r->p10_ms, why, len) ||
           bad_quantile("p90_ms", r->p90_ms, why, len);
}

static int add_base(cmp_t *c, const csv_row_t *r) {
    uint64_t k[K_COUNT];
    uint32_t id;
    if (!key_of(r, c->use_device, &c->names, 1, k)) return -1;
    int added = keyhash_add(&c->keys, k, &id);
    if (added < 0) return -1;
    if (!added) {
        c->dups[0]++;
        return 0;
    }
    if (id == c->cap) {
        uint32_t cap = c->cap ? 2 * c->cap : 1024;
        base_t *grown = realloc(c->base, cap * sizeof *grown);
        if (!grown) return -1;
        c->base = grown;
        c->cap = cap;
    }
    char cfg[256];
    uint32_t config = 0;
    if (row_resolved_config(r, cfg, sizeof cfg)[0] && !(config = intern_add(&c->whys, cfg)))
        return -1;
    c->base[id] = (base_t){stats_of(r), NAN, 0, config, (uint8_t)is_ok(r), 0, V_MISSING};
    return 0;
}

/* Judges a NEW row against the BASE row of its key, if BASE has one. */
static int match_new(cmp_t *c, const csv_row_t *r) {
    uint64_t k[K_COUNT];
    uint32_t id;
    if (!key_of(r, c->use_device, &c->names, 0, k) || !keyhash_find(&c->keys, k, &id)) return 0;
    base_t *b = &c->base[id];
    if (b->matched) {
        c->dups[1]++;
        return 0;
    }
    b->matched = 1;
    if (!b->ok) return 0; /* nothing measured to regress from */
    char why[512], cfg[256];
    stats_t n = stats_of(r);
    b->verdict = (uint8_t)judge(c->o, &b->s, &n, r->status, why, sizeof why);
    /* what ran changed (a plan, a kernel version): said beside the verdict, which stays
     * the time's; a schema-1 side has no config and says nothing */
    const char *was = b->config ? intern_str(&c->whys, b->config) : NULL;
    if (was && row_resolved_config(r, cfg, sizeof cfg)[0] && strcmp(was, cfg)) {
        size_t l = strlen(why);
        snprintf(why + l, sizeof why - l, "%sconfig %s -> %s", l ? "; " : "", was, cfg);
    }
    b->new_median = r->median_ms;
    c->common++;
    if (why[0] && !(b->why = intern_add(&c->whys, why))) return -1;
    return 0;
}

/* The first rows of both files name their devices: different ones are refused
 * unless --allow-device-mismatch. */
static int devices_differ(const cmp_t *c) {
    if (!c->use_device || !c->rows[0] || !c->rows[1] || !strcmp(c->device[0], c->device[1]))
        return 0;
    fprintf(stderr, "chela-bench compare: different devices ('%s' vs '%s'); "
                    "use --allow-device-mismatch to compare anyway\n",
            c->device[0], c->device[1]);
    return 1;
}

/* Reads file f (0 BASE, 1 NEW) row by row into the table.  0, or -1 after one
 * line on stderr. */
static int read_file(cmp_t *c, int f, const char *path) {
    char err[512], why[160];
    csv_reader *rd = csv_reader_open(path, err, sizeof err);
    if (!rd) {
        fprintf(stderr, "chela-bench compare: %s\n", err);
        return -1;
    }
    csv_row_t r;
    int got;
    while ((got = csv_reader_next(rd, &r, err, sizeof err)) == 1) {
        if (unusable(&r, why, sizeof why)) {
            snprintf(err, sizeof err, "%s:%ld: %s", path, csv_reader_line(rd), why);
            got = -1;
            break;
        }
        if (c->rows[f]++ == 0) {
            snprintf(c->device[f], sizeof c->device[f], "%s", r.device);
            if (f == 1 && devices_differ(c)) {
                got = -2; /* said already */
                break;
            }
        }
        if ((f == 0 ? add_base(c, &r) : match_new(c, &r)) != 0) {
            snprintf(err, sizeof err, "%s:%ld: out of memory", path, csv_reader_line(rd));
            got = -1;
            break;
        }
    }
    csv_reader_close(rd);
    if (got == -1) fprintf(stderr, "chela-bench compare: %s\n", err);
    return got == 0 ? 0 : -1;
}

/* ---------------- the report ---------------- */

typedef struct {
    double ratio; /* NaN sorts as 0 */
    uint32_t id;
    uint8_t v;
} item_t;

static double ratio_of(const base_t *b) {
    return b->verdict == V_BROKEN || b->verdict == V_MISSING ? NAN : b->new_median / b->s.median;
}

/* Worst first: by verdict, then the largest ratio, then BASE's order. */
static int worse(const void *pa, const void *pb) {
    const item_t *a = pa, *b = pb;
    if (a->v != b->v) return (a->v > b->v) - (a->v < b->v);
    if (a->ratio != b->ratio) return (a->ratio < b->ratio) - (a->ratio > b->ratio);
    return (a->id > b->id) - (a->id < b->id);
}

static const char *why_of(const cmp_t *c, const base_t *b) {
    if (b->verdict == V_MISSING) return "not in NEW";
    return b->why ? intern_str(&c->whys, b->why) : "";
}

static void print_row(const cmp_t *c, uint32_t id) {
    const base_t *b = &c->base[id];
    const uint64_t *k = keyhash_key(&c->keys, id);
    double heads = atom_num(k[K_HEADS]), batch = atom_num(k[K_BATCH]);
    char shape[64];
    if (!isnan(heads))
        snprintf(shape, sizeof shape, "B=%g H=%g %gx%g", batch, heads, atom_num(k[K_DK]),
                 atom_num(k[K_DV]));
    else
        snprintf(shape, sizeof shape, "B=%g d=%g", batch, atom_num(k[K_DIM]));
    printf("%-8s %-26s %-6s %-7g %-22s %10.4g %10.4g %7.3f  %s\n", VNAME[b->verdict],
           intern_str(&c->names, (uint32_t)k[K_VARIANT]),
           intern_str(&c->names, (uint32_t)k[K_DTYPE]),
           atom_num(k[K_SEQ]), shape, b->s.median, b->new_median, ratio_of(b), why_of(c, b));
}

/* The table, worst first, and the summary line.  Returns the exit status. */
static int report(const cmp_t *c) {
    item_t *items = malloc(((size_t)c->keys.n + 1) * sizeof *items);
    if (!items) {
        fprintf(stderr, "chela-bench compare: out of memory\n");
        return 2;
    }
    size_t m = 0;
    long counts[5] = {0};
    for (uint32_t id = 0; id < c->keys.n; id++) {
        const base_t *b = &c->base[id];
        if (!b->ok) continue;
        double r = ratio_of(b);
        items[m++] = (item_t){isnan(r) ? 0 : r, id, b->verdict};
        counts[b->verdict]++;
    }
    qsort(items, m, sizeof *items, worse);
    printf("%-8s %-26s %-6s %-7s %-22s %10s %10s %7s  %s\n", "verdict", "variant", "dtype", "seq",
           "shape", "base_ms", "new_ms", "ratio", "why");
    for (size_t i = 0; i < m; i++) print_row(c, items[i].id);
    free(items);
    const options_t *o = c->o;
    long regress = counts[V_BROKEN] + counts[V_SLOWER] + (o->allow_missing ? 0 : counts[V_MISSING]);
    printf("%zu compared: %ld SAME, %ld FASTER, %ld SLOWER, %ld BROKEN, %ld MISSING%s -> %s\n", m,
           counts[V_SAME], counts[V_FASTER], counts[V_SLOWER], counts[V_BROKEN], counts[V_MISSING],
           o->allow_missing && counts[V_MISSING] ? " (allowed)" : "",
           regress ? "REGRESSION" : "ok");
    return regress ? 1 : 0;
}

static void say_duplicates(const cmp_t *c) {
    for (int f = 0; f < 2; f++)
        if (c->dups[f])
            fprintf(stderr, "chela-bench compare: %s: %ld row%s repeating the key of an earlier "
                            "row ignored (the first wins)\n",
                    c->o->args[f], c->dups[f], c->dups[f] == 1 ? "" : "s");
}

int compare_main(const options_t *o) {
    if (o->n_args != 2) {
        fprintf(stderr, "chela-bench compare: needs BASE.csv NEW.csv\n");
        return 2;
    }
    cmp_t c = {.o = o, .use_device = !o->allow_device_mismatch};
    intern_init(&c.names);
    intern_init(&c.whys);
    keyhash_init(&c.keys, K_COUNT);
    int rc = 2;
    if (read_file(&c, 0, o->args[0]) || read_file(&c, 1, o->args[1])) goto out;
    if (c.common == 0) {
        fprintf(stderr, "chela-bench compare: no ok rows of %s match a row of %s\n", o->args[0],
                o->args[1]);
        goto out;
    }
    say_duplicates(&c);
    rc = report(&c);
out:
    intern_free(&c.names);
    intern_free(&c.whys);
    keyhash_free(&c.keys);
    free(c.base);
    return rc;
}
