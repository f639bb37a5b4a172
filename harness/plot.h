/* plot.h: `chela-bench plot results.csv... [-o DIR]` -- charts from schema-v1
 * results through gnuplot (the plots/NAME.gp scripts).  Per op family: time_<op>,
 * speedup_<op>, bandwidth_<op>, hbm_<op>, each as .png and .svg, plus the
 * tab-separated .dat file the chart was drawn from. */
#ifndef CHELA_PLOT_H
#define CHELA_PLOT_H

#include "cli.h"

/* Returns 0, or 2 with one line on stderr (unreadable or malformed CSV, no ok
 * rows, gnuplot missing or failing, output directory not writable). */
int plot_main(const options_t *o);

#endif
