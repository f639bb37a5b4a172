/* settings.c: parse, look up and print variant settings (settings.h). */
#include "settings.h"

#include <ctype.h>
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

/* Word values (settings.h): a value that starts with a letter, "auto" aside.  Word n (from 0,
 * in the order listed) is stored as the integer n.  Returns 1 and the n-th word's start and
 * length, or 0 when values has fewer words. */
static int word_at(const char *values, int n, const char **w, size_t *wlen) {
    const char *p = values;
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t k = bar ? (size_t)(bar - p) : strlen(p);
        const int word = isalpha((unsigned char)*p) && !(k == 4 && !strncmp(p, "auto", 4));
        if (word && n-- == 0) {
            *w = p;
            *wlen = k;
            return 1;
        }
        if (!bar) break;
        p = bar + 1;
    }
    return 0;
}

/* The index of word text among values' words, or -1. */
static int word_index(const char *values, const char *text) {
    const char *w;
    size_t k;
    for (int n = 0; word_at(values, n, &w, &k); n++)
        if (strlen(text) == k && !strncmp(w, text, k)) return n;
    return -1;
}

int setting_parse(const setting_def_t *d, const char *text, int *out, char *err, size_t len) {
    long long v;
    if (!strcmp(text, "auto") && strstr(d->values, "auto")) {
        *out = SETTING_AUTO;
        return 0;
    }
    const int w = word_index(d->values, text);
    if (w >= 0) {
        *out = w;
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

int settings_is(const settings_t *s, const char *name, const char *word) {
    for (int i = 0; s && i < s->n; i++)
        if (!strcmp(s->def[i].name, name))
            return s->val[i] == SETTING_AUTO ? !strcmp(word, "auto")
                                             : word_index(s->def[i].values, word) == s->val[i];
    return !strcmp(word, "auto");
}

void setting_value_text(const setting_def_t *d, int v, char *buf, size_t len) {
    const char *w;
    size_t k;
    if (v == SETTING_AUTO) snprintf(buf, len, "auto");
    else if (word_at(d->values, v, &w, &k)) snprintf(buf, len, "%.*s", (int)k, w);
    else snprintf(buf, len, "%d", v);
}

void settings_format(const settings_t *s, int only_user, char *buf, size_t len) {
    size_t k = 0;
    if (len) buf[0] = 0;
    for (int i = 0; s && i < s->n && k < len; i++) {
        if (only_user && !(s->user_set & (1u << i))) continue;
        char v[32];
        setting_value_text(&s->def[i], s->val[i], v, sizeof v);
        int w = snprintf(buf + k, len - k, "%s%s=%s", k ? " " : "", s->def[i].name, v);
        if (w < 0) break;
        k += (size_t)w;
    }
}
