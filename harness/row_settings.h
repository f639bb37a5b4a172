/* row_settings.h: the part of a row's `config` cell that says which settings the user
 * set ("... (set la_seg=512 la_sub=2)", runner_gpu.c writes it): part of what a row
 * measured, so compare keys and plot series include it. */
#ifndef CHELA_ROW_SETTINGS_H
#define CHELA_ROW_SETTINGS_H

#include <stddef.h>

#include "csv.h"

/* Copies the user-set settings of r ("la_seg=512 la_sub=2") into buf; "" when none.
 * Returns buf. */
const char *row_user_settings(const csv_row_t *r, char *buf, size_t len);
/* The config with the user-set part cut off: what the variant resolved. */
const char *row_resolved_config(const csv_row_t *r, char *buf, size_t len);

#endif
