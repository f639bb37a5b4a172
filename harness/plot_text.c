/* plot_text.c: the one door from results-file text to gnuplot (plot.h).
 *
 * A results file is data someone else may have written: its device, variant,
 * op... strings end up in chart titles, legend labels and file names.  gnuplot
 * would run them as commands if they closed a quoted string (', newline), used
 * a macro (@), command substitution (`...`) or a piped file name ('<', '|'),
 * and its enhanced text mode reads ^ _ { } @ & as markup.  An allow-list is the
 * only filter that stays right when someone finds a character we forgot. */
#include "plot.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int text_ok(unsigned char ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')) return 1;
    /* '_' stays: variant names (naive_cumsum) and the harness's own d_k; the
     * titles and legends that show CSV text are set noenhanced in the scripts. */
    return ch != '\0' && strchr(" .,:=+-/()_", ch) != NULL;
}

void plot_text(char *dst, size_t len, const char *src)
{
    size_t i = 0;
    if (len == 0) return;
    for (; src[i] && i + 1 < len; i++) dst[i] = text_ok((unsigned char)src[i]) ? src[i] : '?';
    dst[i] = '\0';
}

void plot_stem(char *dst, size_t len, const char *src)
{
    size_t i = 0;
    if (len == 0) return;
    for (; src[i] && i + 1 < len; i++) {
        unsigned char ch = (unsigned char)src[i];
        int keep = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                   ch == '_' || ch == '-';
        dst[i] = keep ? (char)ch : '_';
    }
    dst[i] = '\0';
    if (i == 0 && len > 1) snprintf(dst, len, "_");
}

/* ---- -e expressions -------------------------------------------------------- */

void gx_init(gp_expr_t *e)
{
    e->s[0] = '\0';
    e->overflow = 0;
}

static void gx_append(gp_expr_t *e, const char *piece)
{
    size_t k = strlen(e->s), n = strlen(piece);
    if (k + n >= sizeof e->s) {
        /* a cut expression could end inside a string: refuse it (chart_render) */
        e->overflow = 1;
        return;
    }
    memcpy(e->s + k, piece, n + 1);
}

/* name must be the harness's own identifier, never CSV text */
void gx_str(gp_expr_t *e, const char *name, const char *value)
{
    char clean[1024], piece[1100];
    plot_text(clean, sizeof clean, value);
    snprintf(piece, sizeof piece, "%s%s='%s'", e->s[0] ? "; " : "", name, clean);
    gx_append(e, piece);
}

void gx_num(gp_expr_t *e, const char *name, double value)
{
    char piece[128];
    /* %.6g of a finite double is digits, '.', 'e', '-', '+'; inf/nan would be
     * names gnuplot does not know, so they are written as 0 */
    snprintf(piece, sizeof piece, "%s%s=%.6g", e->s[0] ? "; " : "", name,
             isfinite(value) ? value : 0.0);
    gx_append(e, piece);
}

/* ---- messages ----------------------------------------------------------------- */

void plot_fail(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    fprintf(stderr, "chela-bench: %s\n", msg);
}
