/* show.c: print a results file's chosen columns as a table (show.h).
 *
 * Columns are named, as the header names them, so a script that reads a run keeps working
 * when the schema grows.  Rows are read one at a time; only the chosen cells are kept,
 * to size the columns.  --where filters are ANDed: col=value matches the cell exactly,
 * col~text matches a cell that contains text. */
#include "show.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"

#define SHOW_MAX_COLS 24
#define SHOW_DEFAULT_COLS "op,variant,dtype,batch,seq,median_ms,floor_ratio,config,status"

typedef struct {
    char *cells; /* n_cols NUL-separated cells a row, rows back to back */
    size_t used, cap;
    long rows;
} table_t;

static int split_cols(const char *list, char names[][40], int max, char *err, size_t len) {
    int n = 0;
    const char *p = list;
    while (*p) {
        const char *c = strchr(p, ',');
        size_t k = c ? (size_t)(c - p) : strlen(p);
        if (k == 0 || k >= 40 || n == max) {
            snprintf(err, len, "--cols: '%s': empty, too long a name or more than %d columns", list, max);
            return -1;
        }
        memcpy(names[n], p, k);
        names[n++][k] = 0;
        if (!c) break;
        p = c + 1;
    }
    return n;
}

static int append(table_t *t, const char *cell) {
    size_t k = strlen(cell) + 1;
    if (t->used + k > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 1 << 16;
        while (cap < t->used + k) cap *= 2;
        char *g = realloc(t->cells, cap);
        if (!g) return -1;
        t->cells = g;
        t->cap = cap;
    }
    memcpy(t->cells + t->used, cell, k);
    t->used += k;
    return 0;
}

/* Whether r passes every --where; -1 (err set) for an unknown column. */
static int row_passes(const options_t *o, const csv_row_t *r, char *err, size_t len) {
    for (int i = 0; i < o->n_where; i++) {
        const char *w = o->where[i], *op = strpbrk(w, "=~");
        char col[40], cell[512];
        size_t k = (size_t)(op - w);
        if (k >= sizeof col) k = sizeof col - 1;
        memcpy(col, w, k);
        col[k] = 0;
        if (csv_cell(r, col, cell, sizeof cell)) {
            snprintf(err, len, "--where: no column named '%s'", col);
            return -1;
        }
        if (*op == '=' ? strcmp(cell, op + 1) != 0 : strstr(cell, op + 1) == NULL) return 0;
    }
    return 1;
}

int show_main(const options_t *o) {
    char names[SHOW_MAX_COLS][40], err[512];
    if (o->n_args != 1) {
        fprintf(stderr, "chela-bench show: needs one results file: chela-bench show FILE [--cols a,b]\n");
        return 2;
    }
    int nc = split_cols(o->show_cols ? o->show_cols : SHOW_DEFAULT_COLS, names, SHOW_MAX_COLS, err,
                        sizeof err);
    if (nc < 0) {
        fprintf(stderr, "chela-bench show: %s\n", err);
        return 2;
    }
    csv_reader *rd = csv_reader_open(o->args[0], err, sizeof err);
    if (!rd) {
        fprintf(stderr, "chela-bench show: %s\n", err);
        return 2;
    }
    csv_row_t r;
    table_t t = {0};
    size_t width[SHOW_MAX_COLS];
    int rc = 0, got;
    char cell[512];
    for (int c = 0; c < nc; c++) width[c] = strlen(names[c]);
    while ((got = csv_reader_next(rd, &r, err, sizeof err)) == 1) {
        int pass = row_passes(o, &r, err, sizeof err);
        if (pass < 0) {
            rc = 2;
            break;
        }
        if (!pass) continue;
        for (int c = 0; c < nc && rc == 0; c++) {
            if (csv_cell(&r, names[c], cell, sizeof cell)) {
                snprintf(err, sizeof err, "--cols: no column named '%.39s'", names[c]);
                rc = 2;
            } else if (append(&t, cell)) {
                snprintf(err, sizeof err, "out of memory at row %ld", t.rows + 1);
                rc = 2;
            } else if (strlen(cell) > width[c]) {
                width[c] = strlen(cell);
            }
        }
        if (rc) break;
        t.rows++;
    }
    if (got < 0 || rc) {
        fprintf(stderr, "chela-bench show: %s\n", err);
        rc = 2;
    } else {
        for (int c = 0; c < nc; c++) printf("%-*s%s", (int)width[c], names[c], c + 1 < nc ? "  " : "\n");
        const char *p = t.cells;
        for (long i = 0; i < t.rows; i++)
            for (int c = 0; c < nc; c++) {
                printf("%-*s%s", (int)width[c], p, c + 1 < nc ? "  " : "\n");
                p += strlen(p) + 1;
            }
    }
    free(t.cells);
    csv_reader_close(rd);
    return rc;
}
