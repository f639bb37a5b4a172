/* settings.c: parse, look up and print variant settings (settings.h). */
#include "settings.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int setting_defs_count(const setting_def_t *defs) {
    int n = 0;
    while (defs && defs[n].name) n++;
    return n;
}

/* An integer with an optional k (x1024) suffix, in int range; 0 on success. */
static int parse_int_k(const char *s, size_t len, long long *out) {
    char buf[32];
    if (len == 0 || len >= sizeof buf) return -1;
    memcpy(buf, s, len);
    buf[len] = 0;
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (end == buf || errno) return -1;
    if (*end == 'k' || *end == 'K') {
        if (v > INT_MAX / 1024 || v < -(INT_MAX / 1024)) return -1;
        v *= 1024;
        end++;
    }
    if (*end || v < 0 || v > INT_MAX) return -1;
    *out = v;
    return 0;
}

/* Whether v is among the '|'-separated allowed values (integers or lo..hi ranges). */
static int allowed(const char *values, long long v) {
    const char *p = values;
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        const char *dots = memchr(p, '.', n);
        long long lo, hi;
        if (dots && dots + 1 < p + n && dots[1] == '.') {
            if (!parse_int_k(p, (size_t)(dots - p), &lo) &&
                !parse_int_k(dots + 2, n - (size_t)(dots + 2 - p), &hi) && v >= lo && v <= hi)
                return 1;
        } else if (!parse_int_k(p, n, &lo) && lo == v) {
            return 1;
        }
        if (!bar) break;
        p = bar + 1;
    }
    return 0;
}

int setting_parse(const setting_def_t *d, const char *text, int *out, char *err, size_t len) {
    long long v;
    if (!strcmp(text, "auto") && strstr(d->values, "auto")) {
        *out = SETTING_AUTO;
        return 0;
    }
    if (parse_int_k(text, strlen(text), &v) || !allowed(d->values, v)) {
        snprintf(err, len, "--set %s=%s: not one of %s", d->name, text, d->values);
        return -1;
    }
    *out = (int)v;
    return 0;
}

int settings_get(const settings_t *s, const char *name) {
    for (int i = 0; s && i < s->n; i++)
        if (!strcmp(s->def[i].name, name)) return s->val[i];
    return SETTING_AUTO;
}

void settings_format(const settings_t *s, int only_user, char *buf, size_t len) {
    size_t k = 0;
    if (len) buf[0] = 0;
    for (int i = 0; s && i < s->n && k < len; i++) {
        if (only_user && !(s->user_set & (1u << i))) continue;
        char v[16];
        if (s->val[i] == SETTING_AUTO) snprintf(v, sizeof v, "auto");
        else snprintf(v, sizeof v, "%d", s->val[i]);
        int w = snprintf(buf + k, len - k, "%s%s=%s", k ? " " : "", s->def[i].name, v);
        if (w < 0) break;
        k += (size_t)w;
    }
}
