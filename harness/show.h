/* show.h: `chela-bench show FILE [--cols a,b] [--where col=value|col~text]`: a results file
 * as an aligned table, columns chosen by header name (never by position). */
#ifndef CHELA_SHOW_H
#define CHELA_SHOW_H

#include "cli.h"

/* Exit status: 0, or 2 with one line (unreadable file, unknown column). */
int show_main(const options_t *o);

#endif
