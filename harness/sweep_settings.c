/* sweep_settings.c: --set axes (sweep_settings.h). */
#include "sweep_settings.h"

#include <stdio.h>
#include <string.h>

static int def_index(const variant_t *v, const char *name) {
    for (int i = 0; v->settings && v->settings[i].name; i++)
        if (!strcmp(v->settings[i].name, name)) return i;
    return -1;
}

static int declared_anywhere(const char *name) {
    for (int i = 0; i < N_VARIANTS; i++)
        if (def_index(&VARIANTS[i], name) >= 0) return 1;
    return 0;
}

/* Splits "name=a,b,c" into an axis whose text lives in out->buf. */
static int split_arg(const char *arg, set_axes_t *out, size_t *used, char *err, size_t len) {
    set_axis_t *ax = &out->ax[out->n];
    const char *eq = strchr(arg, '=');
    size_t nlen = (size_t)(eq - arg), vlen = strlen(eq + 1);
    if (nlen >= sizeof ax->name) {
        snprintf(err, len, "--set %.40s...: name too long", arg);
        return -1;
    }
    memcpy(ax->name, arg, nlen);
    ax->name[nlen] = 0;
    for (int j = 0; j < out->n; j++)
        if (!strcmp(out->ax[j].name, ax->name)) {
            snprintf(err, len, "--set %s given twice (one --set takes a list: %s=a,b)", ax->name,
                     ax->name);
            return -1;
        }
    if (*used + vlen + 1 > sizeof out->buf) {
        snprintf(err, len, "--set: values too long");
        return -1;
    }
    char *vals = out->buf + *used;
    memcpy(vals, eq + 1, vlen + 1);
    *used += vlen + 1;
    ax->n = 0;
    for (char *p = vals;;) {
        char *c = strchr(p, ',');
        if (c) *c = 0;
        if (!*p) {
            snprintf(err, len, "--set %s: empty value in the list", ax->name);
            return -1;
        }
        if (ax->n == SETTING_VALUES_MAX) {
            snprintf(err, len, "--set %s: more than %d values", ax->name, SETTING_VALUES_MAX);
            return -1;
        }
        ax->text[ax->n++] = p;
        if (!c) break;
        p = c + 1;
    }
    return 0;
}

int set_axes_parse(const options_t *o, int (*selected)(const options_t *, const variant_t *),
                   set_axes_t *out, char *err, size_t len) {
    size_t used = 0;
    memset(out, 0, sizeof *out);
    for (int k = 0; k < o->n_set; k++) {
        if (split_arg(o->set_args[k], out, &used, err, len)) return -1;
        set_axis_t *ax = &out->ax[out->n];
        if (!declared_anywhere(ax->name)) {
            snprintf(err, len, "--set %s: no variant has this setting (see --list)", ax->name);
            return -1;
        }
        int users = 0;
        for (int i = 0; i < N_VARIANTS; i++) {
            int d = def_index(&VARIANTS[i], ax->name);
            if (d < 0 || !selected(o, &VARIANTS[i])) continue;
            users++;
            for (int j = 0; j < ax->n; j++) { /* every value must suit every variant it reaches */
                int v;
                if (setting_parse(&VARIANTS[i].settings[d], ax->text[j], &v, err, len)) return -1;
            }
        }
        if (!users) {
            snprintf(err, len, "--set %s: none of the selected variants has this setting "
                     "(see --list)", ax->name);
            return -1;
        }
        out->n++;
    }
    return 0;
}

static const set_axis_t *axis_for(const set_axes_t *a, const char *name) {
    for (int j = 0; j < a->n; j++)
        if (!strcmp(a->ax[j].name, name)) return &a->ax[j];
    return NULL;
}

int set_combos(const set_axes_t *a, const variant_t *v) {
    int n = 1;
    for (int i = 0; v->settings && v->settings[i].name; i++) {
        const set_axis_t *ax = axis_for(a, v->settings[i].name);
        if (ax) n *= ax->n;
    }
    return n;
}

void set_combo(const set_axes_t *a, const variant_t *v, int k, settings_t *st) {
    memset(st, 0, sizeof *st);
    st->def = v->settings;
    st->n = setting_defs_count(v->settings);
    if (st->n > SETTINGS_MAX) st->n = SETTINGS_MAX;
    for (int i = 0; i < st->n; i++) { /* the first setting varies fastest */
        const set_axis_t *ax = axis_for(a, v->settings[i].name);
        st->val[i] = SETTING_AUTO;
        if (!ax) continue;
        char err[160];
        (void)setting_parse(&v->settings[i], ax->text[k % ax->n], &st->val[i], err, sizeof err);
        st->user_set |= 1u << i;
        k /= ax->n;
    }
}
