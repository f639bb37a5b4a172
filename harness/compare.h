/* compare.h: chela-bench compare BASE.csv NEW.csv: the performance-regression gate. */
#ifndef CHELA_COMPARE_H
#define CHELA_COMPARE_H

#include "cli.h"

/* Exit status: 0 nothing regressed, 1 a regression (SLOWER, BROKEN, or MISSING
 * without --allow-missing), 2 unusable input (one line on stderr: a file that
 * cannot be read as results, or an ok row without a usable time).  Within a
 * file the first row of a key wins; stderr counts the others.  Time is linear
 * in the rows, memory in BASE's rows (compare.c says how). */
int compare_main(const options_t *o);

#endif
