/* csv.c: write and read schema-v1 results files (csv.h). */
#include "csv.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef enum { COL_STR, COL_NUM } col_kind;
typedef struct {
    const char *name;
    col_kind kind;
    size_t offset;
    size_t size; /* for strings */
} col_t;

#define S(f) {#f, COL_STR, offsetof(csv_row_t, f), sizeof(((csv_row_t *)0)->f)}
#define N(f) {#f, COL_NUM, offsetof(csv_row_t, f), 0}
static const col_t COLS[] = {
    {"schema", COL_NUM, (size_t)-1, 0}, /* written from CSV_SCHEMA, checked on read */
    S(git_sha), S(device), N(sm_clock_mhz), S(backend), S(op), S(variant), S(role), S(dtype),
    N(batch), N(seq), N(heads), N(dk), N(dv), N(dim),
    N(samples), N(median_ms), N(p10_ms), N(p90_ms), N(min_ms), N(stdrel),
    N(flops), N(ideal_bytes), N(tflops), N(gbps), N(floor_ms), N(floor_ratio),
    N(hbm_read_bytes), N(hbm_write_bytes), N(hbm_ratio), N(max_abs_err), N(max_rel_err),
    S(status), S(note),
};
#undef S
#undef N
#define NCOLS ((int)(sizeof COLS / sizeof COLS[0]))

void csv_row_init(csv_row_t *r) {
    memset(r, 0, sizeof *r);
    for (int i = 1; i < NCOLS; i++)
        if (COLS[i].kind == COL_NUM) *(double *)((char *)r + COLS[i].offset) = NAN;
}

const char *csv_header(void) {
    static char h[1024];
    if (!h[0]) {
        size_t n = 0;
        for (int i = 0; i < NCOLS; i++)
            n += (size_t)snprintf(h + n, sizeof h - n, "%s%s", i ? "," : "", COLS[i].name);
    }
    return h;
}

/* Cells never contain separators: commas become ';', line breaks and quotes spaces. */
static void put_str(char *dst, size_t len, const char *src) {
    size_t i = 0;
    for (; src[i] && i + 1 < len; i++) {
        char c = src[i];
        dst[i] = c == ',' ? ';' : (c == '\n' || c == '\r' || c == '"') ? ' ' : c;
    }
    dst[i] = 0;
}

static int put_num(char *dst, size_t len, double v) {
    if (isnan(v)) return snprintf(dst, len, "%s", "");
    if (isinf(v)) return snprintf(dst, len, "%s", v > 0 ? "inf" : "-inf");
    if (v == floor(v) && fabs(v) < 1e15) return snprintf(dst, len, "%.0f", v);
    return snprintf(dst, len, "%.6g", v);
}

int csv_format_row(const csv_row_t *r, char *buf, size_t len) {
    size_t n = 0;
    for (int i = 0; i < NCOLS && n < len; i++) {
        if (i) buf[n++] = ',';
        if (n >= len) break;
        if (i == 0) {
            n += (size_t)snprintf(buf + n, len - n, "%d", CSV_SCHEMA);
        } else if (COLS[i].kind == COL_STR) {
            put_str(buf + n, len - n, (const char *)r + COLS[i].offset);
            n += strlen(buf + n);
        } else {
            n += (size_t)put_num(buf + n, len - n, *(const double *)((const char *)r + COLS[i].offset));
        }
    }
    if (n >= len) return -1;
    return 0;
}

/* ---------------- reading ---------------- */

static int parse_num(const char *cell, double *out) {
    if (!*cell) {
        *out = NAN;
        return 0;
    }
    if (!strcmp(cell, "inf")) { *out = INFINITY; return 0; }
    if (!strcmp(cell, "-inf")) { *out = -INFINITY; return 0; }
    char *end;
    errno = 0;
    double v = strtod(cell, &end);
    if (*end || errno == ERANGE || end == cell || isnan(v)) return -1;
    *out = v;
    return 0;
}

int csv_parse_row(const char *line, csv_row_t *r, char *err, size_t err_len) {
    char buf[4096];
    if (strlen(line) >= sizeof buf) {
        snprintf(err, err_len, "line longer than %zu characters", sizeof buf - 1);
        return -1;
    }
    strcpy(buf, line);
    size_t L = strlen(buf);
    while (L && (buf[L - 1] == '\n' || buf[L - 1] == '\r')) buf[--L] = 0;
    csv_row_init(r);
    char *cells[64];
    int n = 0;
    char *p = buf;
    for (;;) {
        if (n == 64) break;
        cells[n++] = p;
        char *c = strchr(p, ',');
        if (!c) break;
        *c = 0;
        p = c + 1;
    }
    if (n != NCOLS) {
        snprintf(err, err_len, "%d columns, expected %d", n, NCOLS);
        return -1;
    }
    for (int i = 0; i < NCOLS; i++) {
        if (i == 0) {
            double s;
            if (parse_num(cells[0], &s) || s != CSV_SCHEMA) {
                snprintf(err, err_len, "schema '%s', this build reads schema %d", cells[0], CSV_SCHEMA);
                return -1;
            }
        } else if (COLS[i].kind == COL_STR) {
            char *dst = (char *)r + COLS[i].offset;
            snprintf(dst, COLS[i].size, "%s", cells[i]);
        } else if (parse_num(cells[i], (double *)((char *)r + COLS[i].offset))) {
            snprintf(err, err_len, "column %s: '%.40s' is not a number", COLS[i].name, cells[i]);
            return -1;
        }
    }
    return 0;
}

int csv_read(const char *path, csv_row_t **rows, char *err, size_t err_len) {
    FILE *f = fopen(path, "r");
    *rows = NULL;
    if (!f) {
        snprintf(err, err_len, "cannot read '%s': %s", path, strerror(errno));
        return -1;
    }
    char line[4096], why[256];
    int lineno = 0, n = 0, cap = 0;
    csv_row_t *out = NULL;
    int ok = 1;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t L = strlen(line);
        if (L == sizeof line - 1 && line[L - 1] != '\n') {
            snprintf(err, err_len, "%s:%d: line too long", path, lineno);
            ok = 0;
            break;
        }
        while (L && (line[L - 1] == '\n' || line[L - 1] == '\r')) line[--L] = 0;
        if (lineno == 1) {
            if (strcmp(line, csv_header()) != 0) {
                snprintf(err, err_len, "%s: not a chela-bench schema-%d results file (header differs)",
                         path, CSV_SCHEMA);
                ok = 0;
                break;
            }
            continue;
        }
        if (L == 0) continue;
        if (!strcmp(line, csv_header())) continue; /* concatenated files repeat the header */
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            csv_row_t *grown = realloc(out, (size_t)cap * sizeof *out);
            if (!grown) {
                snprintf(err, err_len, "%s: out of memory at line %d", path, lineno);
                ok = 0;
                break;
            }
            out = grown;
        }
        if (csv_parse_row(line, &out[n], why, sizeof why)) {
            snprintf(err, err_len, "%s:%d: %s", path, lineno, why);
            ok = 0;
            break;
        }
        n++;
    }
    if (ok && lineno == 0) {
        snprintf(err, err_len, "%s: empty file", path);
        ok = 0;
    }
    fclose(f);
    if (!ok) {
        free(out);
        return -1;
    }
    *rows = out;
    return n;
}
