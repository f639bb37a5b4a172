/* csv_write.c: the results file's writer (csv.h).
 *
 * Where -o points decides how the file is written, before any work is done:
 *   - nothing there yet, or a regular file: a temp file beside it (created with
 *     O_EXCL, so nothing already at the temp name is followed or reused), one
 *     flushed line a row, renamed onto the target on close; a reader never sees
 *     half a file, and a replaced file keeps its permission bits;
 *   - a symbolic link: followed (realpath) and its target handled as above, so the
 *     link itself stays a link;
 *   - a FIFO or a character device (/dev/null, /dev/stdout, a terminal): opened and
 *     written through, never renamed over; a FIFO with no reader is refused rather
 *     than waited on for ever;
 *   - a directory, a block device, a socket, a dangling link: refused.
 * The first failed write (a full disk: ENOSPC, a closed pipe: EPIPE) is kept with
 * its errno: the writer refuses every later row, and csv_close names the cause. */
#define _XOPEN_SOURCE 700 /* realpath */
#include "csv.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct csv_writer {
    FILE *f;
    int through;     /* 1: written in place (FIFO, character device), no temp file */
    int write_errno; /* first failed write's errno, 0 while all is well */
    mode_t keep_mode; /* the replaced file's permission bits; 0 for a new file */
    char path[PATH_MAX];
    char tmp[PATH_MAX + 32];
};

static csv_writer *fail_open(csv_writer *w, char *err, size_t err_len, const char *path,
                             const char *why) {
    snprintf(err, err_len, "cannot write results to '%s': %s", path, why);
    free(w);
    return NULL;
}

/* Opens a FIFO or character device for writing without blocking on a FIFO that
 * nobody reads (open(O_NONBLOCK) fails with ENXIO then), then makes it blocking. */
static FILE *open_through(const char *path) {
    int fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return NULL;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return NULL;
    }
    FILE *f = fdopen(fd, "w");
    if (!f) {
        int e = errno;
        close(fd);
        errno = e;
    }
    return f;
}

static FILE *open_temp(csv_writer *w) {
    snprintf(w->tmp, sizeof w->tmp, "%s.tmp.%ld", w->path, (long)getpid());
    int fd = open(w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) return NULL;
    if (w->keep_mode) (void)fchmod(fd, w->keep_mode);
    FILE *f = fdopen(fd, "w");
    if (!f) {
        int e = errno;
        close(fd);
        unlink(w->tmp);
        errno = e;
    }
    return f;
}

csv_writer *csv_open(const char *path, char *err, size_t err_len) {
    csv_writer *w = calloc(1, sizeof *w);
    struct stat st;
    if (!w) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    if (strlen(path) >= sizeof w->path) return fail_open(w, err, err_len, path, "path too long");
    strcpy(w->path, path);
    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
        /* follow the link: its target is what gets replaced or written */
        if (!realpath(path, w->path) || stat(w->path, &st) != 0)
            return fail_open(w, err, err_len, path, "a symbolic link to nothing that exists");
    } else if (stat(path, &st) != 0) {
        st.st_mode = 0; /* nothing there yet */
    }
    if (S_ISDIR(st.st_mode)) return fail_open(w, err, err_len, path, "is a directory");
    if (S_ISBLK(st.st_mode) || S_ISSOCK(st.st_mode))
        return fail_open(w, err, err_len, path, "not a regular file, FIFO or character device");
    if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)) {
        w->through = 1;
        w->f = open_through(w->path);
        if (!w->f)
            return fail_open(w, err, err_len, path,
                             errno == ENXIO ? "a FIFO nobody is reading" : strerror(errno));
    } else {
        if (S_ISREG(st.st_mode)) w->keep_mode = st.st_mode & 07777;
        w->f = open_temp(w);
        if (!w->f) return fail_open(w, err, err_len, path, strerror(errno));
    }
    if (fprintf(w->f, "%s\n", csv_header()) < 0 || fflush(w->f) != 0) {
        int e = errno;
        csv_abort(w);
        return fail_open(NULL, err, err_len, path, strerror(e));
    }
    return w;
}

int csv_write_row(csv_writer *w, const csv_row_t *r) {
    char line[4096];
    if (w->write_errno) return -1;
    if (csv_format_row(r, line, sizeof line)) {
        w->write_errno = EOVERFLOW;
        return -1;
    }
    errno = 0;
    if (fprintf(w->f, "%s\n", line) < 0 || fflush(w->f)) {
        w->write_errno = errno ? errno : EIO;
        return -1;
    }
    return 0;
}

const char *csv_write_error(const csv_writer *w) {
    return w && w->write_errno ? strerror(w->write_errno) : NULL;
}

const char *csv_temp_path(const csv_writer *w) { return w && !w->through ? w->tmp : NULL; }

int csv_close(csv_writer *w, char *err, size_t err_len) {
    int e = w->write_errno;
    errno = 0;
    if (fclose(w->f) != 0 && !e) e = errno ? errno : EIO;
    if (e) {
        snprintf(err, err_len, "cannot write results to '%s': %s", w->path, strerror(e));
        if (!w->through) unlink(w->tmp);
        free(w);
        return -1;
    }
    if (!w->through && rename(w->tmp, w->path)) {
        snprintf(err, err_len, "cannot rename '%s' to '%s': %s", w->tmp, w->path, strerror(errno));
        unlink(w->tmp);
        free(w);
        return -1;
    }
    free(w);
    return 0;
}

void csv_abort(csv_writer *w) {
    if (!w) return;
    fclose(w->f);
    if (!w->through) unlink(w->tmp);
    free(w);
}
