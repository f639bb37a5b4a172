/* sweep_settings.h: --set as sweep axes (nvbench's habit): each --set name=a,b,c is
 * one axis; a variant that declares `name` runs once per value, and once per
 * combination of several axes; a variant that does not declare it runs once. */
#ifndef CHELA_SWEEP_SETTINGS_H
#define CHELA_SWEEP_SETTINGS_H

#include <stddef.h>

#include "cli.h"
#include "settings.h"
#include "variant.h"

typedef struct {
    char name[32];
    int n;
    const char *text[SETTING_VALUES_MAX]; /* the values as typed, parsed per variant */
} set_axis_t;

typedef struct {
    set_axis_t ax[8];
    int n;
    char buf[1024]; /* the values' text */
} set_axes_t;

/* Parses o->set_args into axes and checks each name and value against the variants the
 * run selects (selected(o, v)).  Returns 0, or -1 with one line naming the setting. */
int set_axes_parse(const options_t *o, int (*selected)(const options_t *, const variant_t *),
                   set_axes_t *out, char *err, size_t len);
/* How many settings combinations v runs (1 when no axis names one of its settings). */
int set_combos(const set_axes_t *a, const variant_t *v);
/* The settings of v's combination k (0 <= k < set_combos), user-set bits marked. */
void set_combo(const set_axes_t *a, const variant_t *v, int k, settings_t *st);

#endif
