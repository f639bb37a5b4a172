/* error.c: the last error message, set by the check macros (bench_check.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bench_check.h"

static char g_error[512];

void bench_set_error(const char *file, int line, const char *fmt, ...) {
    const char *base = strrchr(file, '/');
    int n = snprintf(g_error, sizeof g_error, "%s:%d: ", base ? base + 1 : file, line);
    if (n < 0 || (size_t)n >= sizeof g_error) n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_error + n, sizeof g_error - (size_t)n, fmt, ap);
    va_end(ap);
    /* One line: the message ends up in a CSV cell and a progress line. */
    for (char *p = g_error; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == ',' || *p == '"') *p = (*p == ',') ? ';' : ' ';
}

const char *bench_last_error(void) { return g_error[0] ? g_error : "unknown error"; }
void bench_clear_error(void) { g_error[0] = 0; }
