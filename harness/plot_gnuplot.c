/* plot_gnuplot.c: finding gnuplot and its scripts, and running it (plot.h).
 *
 * gnuplot runs inside the output directory (fchdir on the open directory), so
 * the -e expression names only our own sanitised file names: no path from the
 * command line, with its quotes or a leading '<' or '|' that gnuplot would
 * read as a pipe, ever becomes gnuplot code.  The script's path travels as a
 * plain argument (gnuplot opens it as a file) and made absolute. */
#include "plot.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

int gp_found(void)
{
    const char *path = getenv("PATH");
    if (!path || !*path) return 0;
    char buf[4096];
    const char *p = path;
    while (*p) {
        const char *e = strchr(p, ':');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n > 0 && n < sizeof buf - 16) {
            memcpy(buf, p, n);
            strcpy(buf + n, "/gnuplot");
            if (access(buf, X_OK) == 0) return 1;
        }
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

static int has_time_gp(const char *dir)
{
    char buf[4096];
    struct stat st;
    if ((size_t)snprintf(buf, sizeof buf, "%s/time.gp", dir) >= sizeof buf) return 0;
    return stat(buf, &st) == 0 && S_ISREG(st.st_mode);
}

/* dir made absolute (malloc'ed): gnuplot runs in the output directory.  Not
 * realpath(): that is XSI, and a plain cwd prefix is as good here. */
static char *absolute(const char *dir)
{
    char cwd[4096];
    size_t n;
    if (dir[0] == '/') n = strlen(dir) + 1;
    else if (getcwd(cwd, sizeof cwd)) n = strlen(cwd) + 1 + strlen(dir) + 1;
    else return NULL;
    char *out = malloc(n);
    if (out && dir[0] == '/') memcpy(out, dir, n);
    else if (out) snprintf(out, n, "%s/%s", cwd, dir);
    return out;
}

/* $CHELA_PLOT_DIR, then plots/ beside or above the binary, then the source
 * tree's, then ./plots. */
char *gp_find_scripts(void)
{
    char buf[4096];
    const char *env = getenv("CHELA_PLOT_DIR");
    if (env && *env) return has_time_gp(env) ? absolute(env) : NULL;
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) *slash = '\0';
        static const char *rel[] = {"/plots", "/../plots", "/../../plots"};
        for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
            snprintf(buf, sizeof buf, "%s%s", exe, rel[i]);
            if (has_time_gp(buf)) return absolute(buf);
        }
    }
#ifdef CHELA_SOURCE_DIR
    snprintf(buf, sizeof buf, "%s/plots", CHELA_SOURCE_DIR);
    if (has_time_gp(buf)) return absolute(buf);
#endif
    return has_time_gp("plots") ? absolute("plots") : NULL;
}

/* Keeps the last non-empty line of what gnuplot said: its error, if any. */
static void last_line(const char *text, char *out, size_t len)
{
    const char *end = text + strlen(text);
    while (end > text && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ')) end--;
    const char *start = end;
    while (start > text && start[-1] != '\n') start--;
    while (start < end && *start == ' ') start++;
    snprintf(out, len, "%.*s", (int)(end - start), start);
}

/* Reads the child's output to EOF, keeping the tail (gnuplot says little, but
 * never let it block on a full pipe). */
static void drain(int fd, char *tail, size_t cap)
{
    size_t k = 0;
    char chunk[1024];
    tail[0] = '\0';
    for (;;) {
        ssize_t r = read(fd, chunk, sizeof chunk);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        for (ssize_t i = 0; i < r; i++) {
            if (k + 1 == cap) { /* keep the newer half */
                memmove(tail, tail + cap / 2, k - cap / 2);
                k -= cap / 2;
            }
            tail[k++] = chunk[i] ? chunk[i] : ' ';
        }
    }
    tail[k] = '\0';
}

static void child(const plot_ctx_t *c, int out_fd, const char *gp, const char *expr)
{
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0) dup2(null, 0);
    if (null > 2) close(null);
    dup2(out_fd, 1);
    dup2(out_fd, 2);
    if (out_fd > 2) close(out_fd);
    /* plot ignores SIGXFSZ to report its own write errors; gnuplot gets the default */
    signal(SIGXFSZ, SIG_DFL);
    if (fchdir(c->dirfd) != 0) {
        dprintf(2, "cannot enter the output directory: %s\n", strerror(errno));
        _exit(126);
    }
    execlp("gnuplot", "gnuplot", "-e", expr, gp, (char *)NULL);
    dprintf(2, "cannot run gnuplot: %s\n", strerror(errno));
    _exit(127);
}

int gp_run(const plot_ctx_t *c, const char *script, const char *expr, char *why, size_t len)
{
    char gp[8192], tail[4096];
    int fds[2];
    snprintf(gp, sizeof gp, "%s/%s", c->scripts, script);
    if (pipe(fds) != 0) {
        snprintf(why, len, "cannot start gnuplot: %s", strerror(errno));
        return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(why, len, "cannot start gnuplot: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        close(fds[0]);
        child(c, fds[1], gp, expr);
    }
    close(fds[1]);
    drain(fds[0], tail, sizeof tail);
    close(fds[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return 0;
    char said[512];
    last_line(tail, said, sizeof said);
    if (WIFSIGNALED(st))
        snprintf(why, len, "gnuplot killed by signal %d%s", WTERMSIG(st),
                 WTERMSIG(st) == SIGXFSZ ? " (file size limit)" : "");
    else if (said[0])
        snprintf(why, len, "%s", said);
    else
        snprintf(why, len, "gnuplot exited with status %d", WEXITSTATUS(st));
    return -1;
}
