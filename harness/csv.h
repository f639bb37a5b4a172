/* csv.h: the results file, schema 2 (DESIGN.md): schema 1's columns, then causal, pass,
 * config, peak_mem_bytes and build.
 *
 * One row per variant x shape whatever its status; the header is always
 * present; context (device, git sha) is repeated on every row so files
 * concatenate and grep cleanly.  Numbers are printed with %.6g (integers as
 * integers), never localised; an empty cell means "not measured" (NaN here).
 * The writer fills a temp file beside the target and renames it on close, so
 * a reader never sees a half-written results file. */
#ifndef CHELA_CSV_H
#define CHELA_CSV_H

#include <stdio.h>

#define CSV_SCHEMA 2

typedef struct {
    char git_sha[48];
    char device[96];
    double sm_clock_mhz;
    char backend[8];
    char op[32];
    char variant[64];
    char role[16];
    char dtype[8];
    double batch, seq, heads, dk, dv, dim;
    double samples, median_ms, p10_ms, p90_ms, min_ms, stdrel;
    double flops, ideal_bytes, tflops, gbps, floor_ms, floor_ratio;
    double hbm_read_bytes, hbm_write_bytes, hbm_ratio;
    double max_abs_err, max_rel_err;
    char status[96];
    char note[256];
    /* schema 2 */
    double causal;          /* 1 causal, 0 not; NaN where a schema-1 file had no column */
    char pass[8];           /* fwd (bwd, fwdbwd: the training passes) */
    char config[256];       /* what ran: the variant's resolved path and choices, then
                             * "(set a=1 b=2)" for the settings given with --set */
    double peak_mem_bytes;  /* device bytes the point held: inputs, output, what the
                             * variant's setup and first run allocated */
    char build[160];        /* the build: arch list, nvcc and library versions */
} csv_row_t;

/* A row with every numeric cell empty and every string "". */
void csv_row_init(csv_row_t *r);

/* The header line, without newline (locked by a golden test). */
const char *csv_header(void);

typedef struct csv_writer csv_writer;
/* Opens the temp file; returns NULL with a one-line message in err (e.g. the
 * directory is not writable) before any work is done. */
csv_writer *csv_open(const char *path, char *err, size_t err_len);
int csv_write_row(csv_writer *w, const csv_row_t *r); /* flushed at once */
/* Renames the temp file onto path.  Returns 0, or -1 with err naming the first
 * failed write's cause (the temp file is then removed). */
int csv_close(csv_writer *w, char *err, size_t err_len);
/* Removes the temp file (nothing is left behind). */
void csv_abort(csv_writer *w);
/* NULL while every write succeeded, else the first failure's cause (strerror). */
const char *csv_write_error(const csv_writer *w);
/* The temp file being filled, or NULL when written in place (FIFO, device). */
const char *csv_temp_path(const csv_writer *w);

/* Formats one row (no newline) into buf. */
int csv_format_row(const csv_row_t *r, char *buf, size_t len);

/* ---------------- reading ----------------
 * A file is read by its header's names, not its positions: the columns may come
 * in any order and unknown extra columns are read past, so a file of a later
 * schema that only adds columns maps onto csv_row_t unchanged.  A header that
 * lacks a column this build needs is refused, naming it.  Every row's schema
 * cell must be one this build reads (csv_schema_readable, the one place that
 * says so).  A later line that is not a row and has a cell "schema" is a
 * header again (concatenated files) and maps the rows after it. */

/* How one header's cells map onto csv_row_t. */
typedef struct csv_layout csv_layout;
/* Maps a header line (newline optional).  NULL with a one-line reason in err
 * (a missing or repeated column, out of memory). */
csv_layout *csv_layout_new(const char *header, char *err, size_t err_len);
void csv_layout_free(csv_layout *l);

/* Whether rows of this schema number can be read by this build (1 and 2). */
int csv_schema_readable(double schema);
/* One cell of r by its column name, as the writer prints it; -1 for an unknown name. */
int csv_cell(const csv_row_t *r, const char *name, char *buf, size_t len);

/* Parses one data line (newline optional) against a layout: 0 with *r filled,
 * or -1 with a one-line reason (column count, schema, number). */
int csv_parse_row(const csv_layout *l, const char *line, csv_row_t *r, char *err, size_t err_len);

/* A results file read one row at a time, in constant memory. */
typedef struct csv_reader csv_reader;
/* Opens path and maps its header.  NULL with a one-line message naming the file
 * (missing, a directory, empty, not a results header). */
csv_reader *csv_reader_open(const char *path, char *err, size_t err_len);
/* The next row: 1, 0 at the end, or -1 with a message naming file and line. */
int csv_reader_next(csv_reader *rd, csv_row_t *r, char *err, size_t err_len);
/* The line number (from 1) of the row csv_reader_next last returned. */
long csv_reader_line(const csv_reader *rd);
void csv_reader_close(csv_reader *rd);

/* Reads a whole results file.  Returns the number of rows (>= 0) with *rows
 * malloc'ed, or -1 with a one-line message naming the file, line and problem
 * (missing file, a directory, wrong header or schema, wrong column count,
 * non-numeric number). */
int csv_read(const char *path, csv_row_t **rows, char *err, size_t err_len);

#endif
