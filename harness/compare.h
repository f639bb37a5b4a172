/* compare.h: chela-bench compare BASE.csv NEW.csv: the performance-regression gate. */
#ifndef CHELA_COMPARE_H
#define CHELA_COMPARE_H

#include "cli.h"

/* Exit status: 0 nothing regressed, 1 a regression (SLOWER, BROKEN, or MISSING
 * without --allow-missing), 2 unusable input. */
int compare_main(const options_t *o);

#endif
