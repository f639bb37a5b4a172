/* plot.h: `chela-bench plot results.csv... [-o DIR]` -- charts from schema-v1
 * results through gnuplot (the plots/NAME.gp scripts).  Per op family: time_<op>,
 * speedup_<op>, bandwidth_<op>, hbm_<op>, breakdown_<op>_<variant>; across the layers
 * (chela, transformer, mega, ours and the peers'), time_layers[_bwd|_fwdbwd]; each as .png
 * and .svg, plus the tab-separated .dat file the chart was drawn from, in DIR
 * (default ./charts; `-o plots` regenerates the committed charts).
 *
 * Data is never code: text from a results file reaches gnuplot only as data
 * (.dat files) or as a single-quoted string that went through plot_text(), and
 * file names made from it go through plot_stem().  A file is never clobbered:
 * each chart is written to temp files beside its final names and renamed onto
 * them only once gnuplot succeeded and the files are whole. */
#ifndef CHELA_PLOT_H
#define CHELA_PLOT_H

#include <stddef.h>
#include <stdio.h>

#include "cli.h"

/* Returns 0, or 2 with one line on stderr (unreadable or malformed CSV, no ok
 * rows in any file, gnuplot missing or failing, output not writable, an output
 * name taken by something that is not a regular file). */
int plot_main(const options_t *o);

/* ---- shared by the plot_*.c files; not for other callers ------------------ */

#define PLOT_STEM_MAX 112  /* a chart's file name without extension */
#define PLOT_NAME_MAX 160  /* a temp or final file name inside the output dir */
#define PLOT_EXPR_MAX 4096 /* one gnuplot -e expression */

/* plot_text.c -- the one door from CSV text to gnuplot. */

/* Copies src into dst (len > 0, always terminated) keeping only letters,
 * digits, space and . , : = + - / ( ) _ ; any other byte becomes '?'.  Safe
 * inside a single-quoted gnuplot string, in a .dat label (no tab, newline,
 * '#' or '"') and in noenhanced text; truncates at len - 1. */
void plot_text(char *dst, size_t len, const char *src);

/* Copies src into dst keeping [A-Za-z0-9_-], anything else becoming '_' (so
 * "../x" cannot leave the output directory); "" becomes "_". */
void plot_stem(char *dst, size_t len, const char *src);

/* An -e expression built from name=value pairs; strings go through plot_text
 * and are single-quoted, numbers are printed with %.6g. */
typedef struct {
    char s[PLOT_EXPR_MAX];
    int overflow;
} gp_expr_t;
void gx_init(gp_expr_t *e);
void gx_str(gp_expr_t *e, const char *name, const char *value);
void gx_num(gp_expr_t *e, const char *name, double value);

/* One line on stderr, "chela-bench: " first; control characters in the
 * message (a path or CSV text holding a newline) are shown as '?'. */
void plot_fail(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* plot_out.c -- whole files or none. */

typedef struct {
    int dirfd;            /* the output directory, open */
    const char *dir;      /* its name, for messages */
    const char *scripts;  /* absolute folder holding the .gp files */
    int charts;           /* charts committed so far */
    char (*stems)[PLOT_STEM_MAX]; /* stems committed in this run */
    int n_stems, cap_stems;
} plot_ctx_t;

enum { PLOT_DAT = 0, PLOT_PNG, PLOT_SVG, PLOT_NFILES };

/* One chart's files: temp names while it is being made, final names after. */
typedef struct {
    char stem[PLOT_STEM_MAX];
    char tmp[PLOT_NFILES][PLOT_NAME_MAX];
    char final[PLOT_NFILES][PLOT_NAME_MAX];
    int made[PLOT_NFILES]; /* temp file exists (ours to remove) */
} chart_t;

/* Picks the chart's stem (plot_stem of the parts joined by '_', with -2, -3..
 * when another chart of this run already has it) and refuses, with one line,
 * if a final name exists and is not a regular file. */
int chart_begin(plot_ctx_t *c, chart_t *ch, const char *const parts[], int n_parts);
/* Creates the temp .dat (never following a link) and returns it open. */
FILE *chart_dat(plot_ctx_t *c, chart_t *ch);
/* Closes the .dat; a write error (disk full) is one line and -1. */
int chart_dat_done(plot_ctx_t *c, chart_t *ch, FILE *f);
/* Renders PNG and SVG from the .dat with the script and vars (plus in= and
 * out=), checks both are whole and renames the three onto their final names;
 * on any failure removes the temp files, leaves older charts as they were and
 * prints one line. */
int chart_render(plot_ctx_t *c, chart_t *ch, const char *script, const gp_expr_t *vars);
/* Removes whatever temp files the chart made. */
void chart_abort(plot_ctx_t *c, chart_t *ch);

/* plot_gnuplot.c -- finding and running gnuplot. */

int gp_found(void);                 /* gnuplot on PATH */
/* The folder of the .gp scripts as an absolute path (malloc'ed), or NULL. */
char *gp_find_scripts(void);
/* Runs `gnuplot -e EXPR SCRIPTS/SCRIPT` inside the output directory.  Returns 0
 * when it exited 0, else -1 with the reason (gnuplot's last line) in why. */
int gp_run(const plot_ctx_t *c, const char *script, const char *expr, char *why, size_t len);

#endif
