/* csv.c: the results file's columns, the row formatting for the writer
 * (csv_write.c), and the reader (csv.h): headers mapped by name, rows parsed
 * against that map, one row at a time or the whole file. */
#include "csv.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef enum { COL_STR, COL_NUM } col_kind;
typedef struct {
    const char *name;
    col_kind kind;
    size_t offset;
    size_t size; /* for strings */
    int since;   /* the schema that added it: a file of an older schema may lack it */
} col_t;

#define S(f) {#f, COL_STR, offsetof(csv_row_t, f), sizeof(((csv_row_t *)0)->f), 1}
#define N(f) {#f, COL_NUM, offsetof(csv_row_t, f), 0, 1}
#define S2(f) {#f, COL_STR, offsetof(csv_row_t, f), sizeof(((csv_row_t *)0)->f), 2}
#define N2(f) {#f, COL_NUM, offsetof(csv_row_t, f), 0, 2}
/* A reader needs every schema-1 column in a file's header (csv_layout_new); the columns
 * schema 2 appended may be absent (a schema-1 file) and then keep csv_row_init's
 * defaults: causal 1, pass fwd, config and build empty, peak_mem_bytes not measured. */
static const col_t COLS[] = {
    {"schema", COL_NUM, (size_t)-1, 0, 1}, /* written from CSV_SCHEMA, checked on read */
    S(git_sha), S(device), N(sm_clock_mhz), S(backend), S(op), S(variant), S(role), S(dtype),
    N(batch), N(seq), N(heads), N(dk), N(dv), N(dim),
    N(samples), N(median_ms), N(p10_ms), N(p90_ms), N(min_ms), N(stdrel),
    N(flops), N(ideal_bytes), N(tflops), N(gbps), N(floor_ms), N(floor_ratio),
    N(hbm_read_bytes), N(hbm_write_bytes), N(hbm_ratio), N(max_abs_err), N(max_rel_err),
    S(status), S(note),
    N2(causal), S2(pass), S2(config), N2(peak_mem_bytes), S2(build),
};
#undef S
#undef N
#undef S2
#undef N2
#define NCOLS ((int)(sizeof COLS / sizeof COLS[0]))

void csv_row_init(csv_row_t *r) {
    memset(r, 0, sizeof *r);
    for (int i = 1; i < NCOLS; i++)
        if (COLS[i].kind == COL_NUM) *(double *)((char *)r + COLS[i].offset) = NAN;
    r->causal = 1; /* what every schema-1 row but --noncausal linear attention measured */
    strcpy(r->pass, "fwd");
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

/* ---------------- reading: numbers ---------------- */

/* strtod is most of a large file's read time, and the cells the writer prints
 * (%.6g, integers) are short decimals: with at most 2^53 as the digits and a
 * power of ten up to 1e22, both are exact doubles and one multiply or divide
 * rounds once, to the double strtod would give (Clinger's fast path).  -1:
 * not that shape (or arithmetic wider than double: x87), ask strtod. */
static int fast_decimal(const char *p, const char *end, double *out) {
#if FLT_EVAL_METHOD != 0
    (void)p, (void)end, (void)out;
    return -1;
#endif
    static const double P10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    int neg = p < end && *p == '-';
    p += neg;
    uint64_t m = 0;
    int digits = 0, frac = 0, e = 0;
    for (; p < end && *p >= '0' && *p <= '9'; p++, digits++) m = m * 10 + (uint64_t)(*p - '0');
    if (p < end && *p == '.')
        for (p++; p < end && *p >= '0' && *p <= '9'; p++, digits++, frac++)
            m = m * 10 + (uint64_t)(*p - '0');
    if (digits == 0 || digits > 19) return -1; /* 19 digits cannot overflow 64 bits */
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        int eneg = p < end && (*p == '-' || *p == '+') ? *p++ == '-' : 0, ed = 0;
        for (; p < end && *p >= '0' && *p <= '9' && ed < 4; p++, ed++) e = e * 10 + (*p - '0');
        if (ed == 0) return -1;
        e = eneg ? -e : e;
    }
    e -= frac;
    if (p != end || m > (1ULL << 53) || e < -22 || e > 22) return -1;
    double v = e < 0 ? (double)m / P10[-e] : (double)m * P10[e];
    *out = neg ? -v : v;
    return 0;
}

/* strtod on a cell that is not NUL-terminated (it lies inside its line). */
static int slow_decimal(const char *cell, size_t len, double *out) {
    char small[128], *buf = len < sizeof small ? small : malloc(len + 1);
    if (!buf) return -1;
    memcpy(buf, cell, len);
    buf[len] = 0;
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    int bad = *end || errno == ERANGE || end == buf || isnan(v);
    if (buf != small) free(buf);
    if (bad) return -1;
    *out = v;
    return 0;
}

static int cell_is(const char *cell, size_t len, const char *word) {
    return strlen(word) == len && !memcmp(cell, word, len);
}

/* An empty cell is "not measured" (NaN); NaN written out is refused. */
static int parse_num(const char *cell, size_t len, double *out) {
    if (len == 0) {
        *out = NAN;
        return 0;
    }
    if (cell_is(cell, len, "inf")) { *out = INFINITY; return 0; }
    if (cell_is(cell, len, "-inf")) { *out = -INFINITY; return 0; }
    if (fast_decimal(cell, cell + len, out) == 0) return 0;
    return slow_decimal(cell, len, out);
}

/* ---------------- reading: the header's map ---------------- */

struct csv_layout {
    int n_cells;     /* cells every row under this header has */
    int col[];       /* per cell: its index in COLS, or -1 (a column this build does not know) */
};

/* The one place that says which schema numbers this build reads: a file of a
 * later schema whose extra columns the reader can skip is accepted here. */
int csv_schema_readable(double schema) { return schema == 1 || schema == CSV_SCHEMA; }


/* Length of a line without its line break. */
static size_t line_len(const char *line) {
    size_t L = strlen(line);
    while (L && (line[L - 1] == '\n' || line[L - 1] == '\r')) L--;
    return L;
}

/* The next cell of [*p, end): its start and length; *p moves past its comma
 * (to NULL after the last cell). */
static const char *next_cell(const char **p, const char *end, size_t *len) {
    const char *cell = *p, *comma = memchr(cell, ',', (size_t)(end - cell));
    *len = (size_t)((comma ? comma : end) - cell);
    *p = comma ? comma + 1 : NULL;
    return cell;
}

static int count_cells(const char *line, const char *end) {
    int n = 1;
    for (const char *p = line; (p = memchr(p, ',', (size_t)(end - p))) != NULL; p++) n++;
    return n;
}

static int find_col(const char *name, size_t len) {
    for (int k = 0; k < NCOLS; k++)
        if (cell_is(name, len, COLS[k].name)) return k;
    return -1;
}

csv_layout *csv_layout_new(const char *header, char *err, size_t err_len) {
    const char *end = header + line_len(header), *p = header;
    int n = count_cells(header, end), seen[NCOLS];
    csv_layout *l = malloc(sizeof *l + (size_t)n * sizeof l->col[0]);
    if (!l) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    memset(seen, 0, sizeof seen);
    l->n_cells = n;
    for (int i = 0; i < n; i++) {
        size_t len;
        const char *name = next_cell(&p, end, &len);
        int k = l->col[i] = find_col(name, len);
        if (k < 0) continue;
        if (seen[k]++) {
            snprintf(err, err_len, "header names column '%s' twice", COLS[k].name);
            free(l);
            return NULL;
        }
    }
    for (int k = 0; k < NCOLS; k++)
        if (!seen[k] && COLS[k].since == 1) {
            snprintf(err, err_len, "header has no '%s' column", COLS[k].name);
            free(l);
            return NULL;
        }
    return l;
}

void csv_layout_free(csv_layout *l) { free(l); }

int csv_cell(const csv_row_t *r, const char *name, char *buf, size_t len) {
    int k = find_col(name, strlen(name));
    if (k < 0) return -1;
    if (k == 0) snprintf(buf, len, "%d", CSV_SCHEMA);
    else if (COLS[k].kind == COL_STR) snprintf(buf, len, "%s", (const char *)r + COLS[k].offset);
    else put_num(buf, len, *(const double *)((const char *)r + COLS[k].offset));
    return 0;
}


/* ---------------- reading: one row ---------------- */

static int put_cell(int k, const char *cell, size_t len, csv_row_t *r, char *err, size_t err_len) {
    if (k == 0) {
        double s;
        if (parse_num(cell, len, &s) || !csv_schema_readable(s)) {
            snprintf(err, err_len, "schema '%.*s', this build reads schemas 1 to %d",
                     (int)(len < 40 ? len : 40), cell, CSV_SCHEMA);
            return -1;
        }
    } else if (COLS[k].kind == COL_STR) {
        size_t n = len < COLS[k].size - 1 ? len : COLS[k].size - 1; /* long text is cut, as ever */
        char *dst = (char *)r + COLS[k].offset;
        memcpy(dst, cell, n);
        dst[n] = 0;
    } else if (parse_num(cell, len, (double *)((char *)r + COLS[k].offset))) {
        snprintf(err, err_len, "column %s: '%.*s' is not a number", COLS[k].name,
                 (int)(len < 40 ? len : 40), cell);
        return -1;
    }
    return 0;
}

/* Whether one of a line's cells is word. */
static int has_cell(const char *line, const char *word) {
    const char *end = line + line_len(line), *p = line;
    while (p) {
        size_t len;
        const char *cell = next_cell(&p, end, &len);
        if (cell_is(cell, len, word)) return 1;
    }
    return 0;
}

int csv_parse_row(const csv_layout *l, const char *line, csv_row_t *r, char *err, size_t err_len) {
    const char *end = line + line_len(line), *p = line;
    int n = count_cells(line, end);
    if (n != l->n_cells) {
        snprintf(err, err_len, "%d columns, expected %d", n, l->n_cells);
        return -1;
    }
    csv_row_init(r);
    for (int i = 0; i < n; i++) {
        size_t len;
        const char *cell = next_cell(&p, end, &len);
        if (l->col[i] >= 0 && put_cell(l->col[i], cell, len, r, err, err_len)) return -1;
    }
    return 0;
}

/* ---------------- reading: a file ---------------- */

#define CSV_LINE_MAX 65536

struct csv_reader {
    FILE *f;
    char *path;
    csv_layout *lay;
    long line;
    char buf[CSV_LINE_MAX];
};

/* The next line into rd->buf without its line break: 1, 0 at the end, -1 with err. */
static int read_line(csv_reader *rd, char *err, size_t err_len) {
    if (!fgets(rd->buf, sizeof rd->buf, rd->f)) {
        if (!ferror(rd->f)) return 0;
        snprintf(err, err_len, "%s: read error: %s", rd->path, strerror(errno));
        return -1;
    }
    rd->line++;
    size_t L = strlen(rd->buf);
    if (L == sizeof rd->buf - 1 && rd->buf[L - 1] != '\n' && !feof(rd->f)) {
        snprintf(err, err_len, "%s:%ld: line longer than %d characters", rd->path, rd->line,
                 CSV_LINE_MAX - 2);
        return -1;
    }
    rd->buf[line_len(rd->buf)] = 0;
    return 1;
}

/* Maps the header in rd->buf (the first line, or one repeated mid-file). */
static int map_header(csv_reader *rd, char *err, size_t err_len) {
    char why[256];
    csv_layout *l = csv_layout_new(rd->buf, why, sizeof why);
    if (!l) {
        if (rd->line == 1)
            snprintf(err, err_len, "%s: not a chela-bench results file (%s)", rd->path, why);
        else
            snprintf(err, err_len, "%s:%ld: %s", rd->path, rd->line, why);
        return -1;
    }
    csv_layout_free(rd->lay);
    rd->lay = l;
    return 0;
}

/* fopen() opens a directory on Linux and only the first read fails, with a
 * message that names no file: ask what the path is first. */
static FILE *open_file(const char *path, char *err, size_t err_len) {
    FILE *f = fopen(path, "r");
    struct stat st;
    if (!f) {
        snprintf(err, err_len, "cannot read '%s': %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(err, err_len, "%s: is a directory", path);
        fclose(f);
        return NULL;
    }
    setvbuf(f, NULL, _IOFBF, 1 << 18); /* fewer read calls on a large file */
    return f;
}

csv_reader *csv_reader_open(const char *path, char *err, size_t err_len) {
    FILE *f = open_file(path, err, err_len);
    if (!f) return NULL;
    csv_reader *rd = calloc(1, sizeof *rd);
    if (!rd || !(rd->path = strdup(path))) {
        snprintf(err, err_len, "%s: out of memory", path);
        free(rd);
        fclose(f);
        return NULL;
    }
    rd->f = f;
    int got = read_line(rd, err, err_len);
    if (got == 0) snprintf(err, err_len, "%s: empty file", path);
    if (got <= 0 || map_header(rd, err, err_len)) {
        csv_reader_close(rd);
        return NULL;
    }
    return rd;
}

int csv_reader_next(csv_reader *rd, csv_row_t *r, char *err, size_t err_len) {
    char why[256];
    for (;;) {
        int got = read_line(rd, err, err_len);
        if (got <= 0) return got;
        if (!rd->buf[0]) continue; /* blank lines carry nothing */
        if (csv_parse_row(rd->lay, rd->buf, r, why, sizeof why) == 0) return 1;
        /* Not a row: concatenated files repeat the header, maybe in another
         * order, and it maps the rows after it (a row cannot have a cell
         * "schema": that column holds a number). */
        if (has_cell(rd->buf, "schema")) {
            if (map_header(rd, err, err_len)) return -1;
            continue;
        }
        snprintf(err, err_len, "%s:%ld: %s", rd->path, rd->line, why);
        return -1;
    }
}

long csv_reader_line(const csv_reader *rd) { return rd->line; }

void csv_reader_close(csv_reader *rd) {
    if (!rd) return;
    if (rd->f) fclose(rd->f);
    csv_layout_free(rd->lay);
    free(rd->path);
    free(rd);
}

int csv_read(const char *path, csv_row_t **rows, char *err, size_t err_len) {
    *rows = NULL;
    csv_reader *rd = csv_reader_open(path, err, err_len);
    if (!rd) return -1;
    csv_row_t *out = NULL;
    int n = 0, cap = 0, got;
    for (;;) {
        if (n == cap) {
            int grown_cap = cap ? 2 * cap : 64;
            csv_row_t *grown = cap < (1 << 29) ? realloc(out, (size_t)grown_cap * sizeof *out) : NULL;
            if (!grown) {
                snprintf(err, err_len, "%s: out of memory at line %ld", path, rd->line);
                got = -1;
                break;
            }
            out = grown;
            cap = grown_cap;
        }
        if ((got = csv_reader_next(rd, &out[n], err, err_len)) <= 0) break;
        n++;
    }
    csv_reader_close(rd);
    if (got < 0) {
        free(out);
        return -1;
    }
    *rows = out;
    return n;
}
