/* plot_out.c: a chart's files, whole or not at all (plot.h).
 *
 * A full disk used to leave truncated SVGs and 0-byte PNGs where the previous
 * charts had been.  Now every file of a chart (.dat, .png, .svg) is first
 * written under a hidden temp name in the output directory itself (a rename
 * within one directory is atomic), checked to be whole, and only then renamed
 * onto its final name; on any failure the temp files go and the older chart
 * stays.  All names are relative to the directory's descriptor, and nothing is
 * opened through, or renamed over, a symlink, directory or device. */
#include "plot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const EXT[PLOT_NFILES] = {"dat", "png", "svg"};

static int stem_taken(const plot_ctx_t *c, const char *stem)
{
    for (int i = 0; i < c->n_stems; i++)
        if (!strcmp(c->stems[i], stem)) return 1;
    return 0;
}

static int remember_stem(plot_ctx_t *c, const char *stem)
{
    if (c->n_stems == c->cap_stems) {
        int cap = c->cap_stems ? 2 * c->cap_stems : 64;
        char(*grown)[PLOT_STEM_MAX] = realloc(c->stems, (size_t)cap * sizeof *grown);
        if (!grown) return -1;
        c->stems = grown;
        c->cap_stems = cap;
    }
    snprintf(c->stems[c->n_stems++], PLOT_STEM_MAX, "%s", stem);
    return 0;
}

/* Two ops or variants that differ only in replaced characters ("a;b", "a_b")
 * must not overwrite each other's chart in one run: the later gets -2, -3... */
static int unique_stem(const plot_ctx_t *c, char *stem, size_t len)
{
    char base[PLOT_STEM_MAX];
    snprintf(base, sizeof base, "%s", stem);
    for (int k = 2; stem_taken(c, stem); k++) {
        if (k > 999) return -1;
        snprintf(stem, len, "%.*s-%d", PLOT_STEM_MAX - 8, base, k);
    }
    return 0;
}

/* The final name may be an older chart (a regular file, replaced); anything
 * else there (a symlink to somewhere else, a directory, a device) is refused. */
static int dest_ok(const plot_ctx_t *c, const char *name)
{
    struct stat st;
    if (fstatat(c->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) return 0;
        plot_fail("cannot check %s/%s: %s", c->dir, name, strerror(errno));
        return -1;
    }
    if (S_ISREG(st.st_mode)) return 0;
    plot_fail("%s/%s exists and is not a regular file: not replacing it", c->dir, name);
    return -1;
}

int chart_begin(plot_ctx_t *c, chart_t *ch, const char *const parts[], int n_parts)
{
    char joined[PLOT_STEM_MAX] = "";
    memset(ch, 0, sizeof *ch);
    for (int i = 0; i < n_parts; i++) {
        size_t k = strlen(joined);
        snprintf(joined + k, sizeof joined - k, "%s%s", i ? "_" : "", parts[i]);
    }
    /* room for a "-NN" suffix */
    plot_stem(ch->stem, PLOT_STEM_MAX - 8, joined);
    if (unique_stem(c, ch->stem, sizeof ch->stem)) {
        plot_fail("too many charts named %s", ch->stem);
        return -1;
    }
    long pid = (long)getpid();
    for (int k = 0; k < PLOT_NFILES; k++) {
        snprintf(ch->final[k], PLOT_NAME_MAX, "%s.%s", ch->stem, EXT[k]);
        /* hidden, ours (pid), and ending in .png/.svg: common.gp picks the
         * terminal from the output name's last three letters */
        snprintf(ch->tmp[k], PLOT_NAME_MAX, ".%s.%ld.tmp.%s", ch->stem, pid, EXT[k]);
        if (dest_ok(c, ch->final[k])) return -1;
    }
    return 0;
}

/* Creates tmp[k] empty; O_EXCL + O_NOFOLLOW: never through a planted link. */
static int create_tmp(plot_ctx_t *c, chart_t *ch, int k)
{
    int fd = openat(c->dirfd, ch->tmp[k], O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd < 0) {
        plot_fail("cannot write %s/%s: %s", c->dir, ch->tmp[k], strerror(errno));
        return -1;
    }
    ch->made[k] = 1;
    return fd;
}

FILE *chart_dat(plot_ctx_t *c, chart_t *ch)
{
    int fd = create_tmp(c, ch, PLOT_DAT);
    if (fd < 0) return NULL;
    FILE *f = fdopen(fd, "w");
    if (!f) {
        plot_fail("cannot write %s/%s: %s", c->dir, ch->tmp[PLOT_DAT], strerror(errno));
        close(fd);
        chart_abort(c, ch);
    }
    return f;
}

int chart_dat_done(plot_ctx_t *c, chart_t *ch, FILE *f)
{
    int bad = fflush(f) != 0 || ferror(f) || fsync(fileno(f)) != 0;
    int err = errno;
    if (fclose(f) != 0 && !bad) {
        bad = 1;
        err = errno;
    }
    if (!bad) return 0;
    plot_fail("cannot write %s/%s: %s", c->dir, ch->final[PLOT_DAT], strerror(err ? err : EIO));
    chart_abort(c, ch);
    return -1;
}

void chart_abort(plot_ctx_t *c, chart_t *ch)
{
    for (int k = 0; k < PLOT_NFILES; k++)
        if (ch->made[k]) {
            unlinkat(c->dirfd, ch->tmp[k], 0);
            ch->made[k] = 0;
        }
}

/* ---- whole files ------------------------------------------------------------- */

/* A cut PNG lacks its closing IEND chunk, a cut SVG its </svg>: gnuplot does
 * not always notice a failed write (ENOSPC) and may exit 0 on a partial file. */
static int whole(int fd, int k)
{
    static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    static const unsigned char png_end[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82};
    struct stat st;
    unsigned char head[8], tail[64];
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 32) return 0;
    if (k == PLOT_PNG) {
        return pread(fd, head, 8, 0) == 8 && !memcmp(head, png_sig, 8) &&
               pread(fd, tail, 12, st.st_size - 12) == 12 && !memcmp(tail, png_end, 12);
    }
    off_t at = st.st_size > (off_t)(sizeof tail - 1) ? st.st_size - (off_t)(sizeof tail - 1) : 0;
    ssize_t n = pread(fd, tail, sizeof tail - 1, at);
    if (n <= 0) return 0;
    tail[n] = '\0';
    return strstr((const char *)tail, "</svg>") != NULL;
}

static int check_whole(plot_ctx_t *c, chart_t *ch, int k)
{
    int fd = openat(c->dirfd, ch->tmp[k], O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    /* fsync: a delayed write error (disk full) shows here, before the rename */
    int ok = fd >= 0 && whole(fd, k) && fsync(fd) == 0;
    if (fd >= 0) close(fd);
    if (!ok) plot_fail("gnuplot wrote an incomplete %s/%s (disk full?): older chart kept", c->dir, ch->final[k]);
    return ok ? 0 : -1;
}

static int draw(plot_ctx_t *c, chart_t *ch, int k, const char *script, const gp_expr_t *vars)
{
    gp_expr_t e;
    char why[512];
    int fd = create_tmp(c, ch, k);
    if (fd < 0) return -1;
    close(fd);
    gx_init(&e);
    gx_str(&e, "in", ch->tmp[PLOT_DAT]);
    gx_str(&e, "out", ch->tmp[k]);
    if (vars->s[0] && !e.overflow) {
        size_t n = strlen(e.s);
        if (n + 2 + strlen(vars->s) < sizeof e.s) snprintf(e.s + n, sizeof e.s - n, "; %s", vars->s);
        else e.overflow = 1;
    }
    if (e.overflow || vars->overflow) {
        plot_fail("chart %s: gnuplot expression too long", ch->stem);
        return -1;
    }
    if (gp_run(c, script, e.s, why, sizeof why)) {
        plot_fail("gnuplot failed on %s/%s: %s", c->dir, ch->final[k], why);
        return -1;
    }
    return check_whole(c, ch, k);
}

static int commit(plot_ctx_t *c, chart_t *ch)
{
    for (int k = 0; k < PLOT_NFILES; k++) {
        /* checked again: something may have appeared there since chart_begin */
        if (dest_ok(c, ch->final[k])) return -1;
        if (renameat(c->dirfd, ch->tmp[k], c->dirfd, ch->final[k]) != 0) {
            plot_fail("cannot rename %s/%s onto %s: %s", c->dir, ch->tmp[k], ch->final[k], strerror(errno));
            return -1;
        }
        ch->made[k] = 0;
    }
    return 0;
}

int chart_render(plot_ctx_t *c, chart_t *ch, const char *script, const gp_expr_t *vars)
{
    if (draw(c, ch, PLOT_PNG, script, vars) || draw(c, ch, PLOT_SVG, script, vars) || commit(c, ch)) {
        chart_abort(c, ch);
        return -1;
    }
    if (remember_stem(c, ch->stem)) {
        plot_fail("out of memory");
        return -1;
    }
    c->charts++;
    return 0;
}
