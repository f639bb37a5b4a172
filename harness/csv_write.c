/* csv_write.c: the results file's writer (csv.h): a temp file beside the
 * target, one flushed line a row, renamed onto the target on close. */
#include "csv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct csv_writer {
    FILE *f;
    char path[1024];
    char tmp[1100];
};

csv_writer *csv_open(const char *path, char *err, size_t err_len) {
    csv_writer *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    if (strlen(path) >= sizeof w->path) {
        snprintf(err, err_len, "output path too long: %s", path);
        free(w);
        return NULL;
    }
    strcpy(w->path, path);
    snprintf(w->tmp, sizeof w->tmp, "%s.tmp.%ld", path, (long)getpid());
    w->f = fopen(w->tmp, "w");
    if (!w->f) {
        snprintf(err, err_len, "cannot write results to '%s': %s", path, strerror(errno));
        free(w);
        return NULL;
    }
    fprintf(w->f, "%s\n", csv_header());
    fflush(w->f);
    return w;
}

int csv_write_row(csv_writer *w, const csv_row_t *r) {
    char line[4096];
    if (csv_format_row(r, line, sizeof line)) return -1;
    if (fprintf(w->f, "%s\n", line) < 0 || fflush(w->f)) return -1;
    return 0;
}

int csv_close(csv_writer *w, char *err, size_t err_len) {
    int bad = ferror(w->f);
    if (fclose(w->f)) bad = 1;
    if (bad) {
        snprintf(err, err_len, "error writing '%s'", w->tmp);
        remove(w->tmp);
        free(w);
        return -1;
    }
    if (rename(w->tmp, w->path)) {
        snprintf(err, err_len, "cannot rename '%s' to '%s': %s", w->tmp, w->path, strerror(errno));
        remove(w->tmp);
        free(w);
        return -1;
    }
    free(w);
    return 0;
}

void csv_abort(csv_writer *w) {
    if (!w) return;
    fclose(w->f);
    remove(w->tmp);
    free(w);
}
