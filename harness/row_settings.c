/* row_settings.c: the user-set settings inside a row's config (row_settings.h). */
#include "row_settings.h"

#include <stdio.h>
#include <string.h>

/* The "(set " that opens the user-set part: the last one, at the end of the cell. */
static const char *set_part(const char *config) {
    const char *p = NULL, *q = config;
    while ((q = strstr(q, "(set ")) != NULL) p = q++;
    if (!p) return NULL;
    size_t n = strlen(p);
    return n >= 6 && p[n - 1] == ')' ? p : NULL;
}

const char *row_user_settings(const csv_row_t *r, char *buf, size_t len) {
    const char *p = set_part(r->config);
    if (len) buf[0] = 0;
    if (p && len) snprintf(buf, len, "%.*s", (int)(strlen(p) - 6), p + 5);
    return buf;
}

const char *row_resolved_config(const csv_row_t *r, char *buf, size_t len) {
    const char *p = set_part(r->config);
    size_t n = p ? (size_t)(p - r->config) : strlen(r->config);
    while (n && r->config[n - 1] == ' ') n--;
    if (len) snprintf(buf, len, "%.*s", (int)n, r->config);
    return buf;
}
