/* fuzz_csv.c: libFuzzer target for the results reader used by compare and plot.
 * The input is written to a file and read back whole; it must parse or fail
 * with one line.  Its first line is also mapped as a header and the others
 * parsed as rows against that map directly (csv_parse_row), the way the reader
 * does, so the by-name column map is fuzzed without the file around it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "csv.h"

static void one_line_or_abort(int rc, const char *err) {
    if (rc < 0 && (!err[0] || strchr(err, '\n'))) abort();
}

static void read_whole(const char *path) {
    csv_row_t *rows = NULL;
    char err[512] = "";
    int n = csv_read(path, &rows, err, sizeof err);
    if (n < -1) abort();
    one_line_or_abort(n, err);
    for (int i = 0; i < n; i++)
        if (memchr(rows[i].status, 0, sizeof rows[i].status) == NULL) abort();
    free(rows);
}

/* The next line of text (cut at its newline), or NULL at the end. */
static char *next_line(char **p) {
    if (!*p) return NULL;
    char *line = *p, *nl = strchr(line, '\n');
    if (nl) *nl = 0;
    *p = nl ? nl + 1 : NULL;
    return line;
}

/* The header map and the row parser on their own, line by line. */
static void parse_lines(const uint8_t *data, size_t size, int with_header) {
    char *text = malloc(size + 1), *p = text, err[256] = "";
    if (!text) return;
    memcpy(text, data, size);
    text[size] = 0;
    const char *first = with_header ? csv_header() : next_line(&p);
    csv_layout *l = csv_layout_new(first, err, sizeof err);
    one_line_or_abort(l ? 0 : -1, err);
    for (char *line; l && (line = next_line(&p)) != NULL;) {
        csv_row_t r;
        err[0] = 0;
        int rc = csv_parse_row(l, line, &r, err, sizeof err);
        if (rc != 0 && rc != -1) abort();
        one_line_or_abort(rc, err);
    }
    csv_layout_free(l);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[64];
    if (!path[0]) snprintf(path, sizeof path, "/tmp/fuzz_csv_%ld.csv", (long)getpid());
    /* half the inputs get the real header, so the fuzzer reaches the row parser */
    int with_header = size && (data[0] & 1);
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    if (with_header) fprintf(f, "%s\n", csv_header());
    fwrite(data, 1, size, f);
    fclose(f);
    read_whole(path);
    parse_lines(data, size, with_header);
    return 0;
}
