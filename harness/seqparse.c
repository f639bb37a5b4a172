/* seqparse.c: parse --seq (grammar in seqparse.h).  Every failure names the
 * offending text, because a user typing 1k..64k wrong wants to know which part. */
#include "seqparse.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* Parses n at *p, advances *p; what names it in a message ("sequence length", "step").
 * Returns 0 or -1 with err set. */
static int parse_num(const char **p, long long *val, const char *item, const char *what, char *err,
                     size_t n) {
    const char *s = *p;
    if (!isdigit((unsigned char)*s)) {
        snprintf(err, n, "--seq: '%s': expected a number at '%s'", item, *s ? s : "(end)");
        return -1;
    }
    long long v = 0;
    while (isdigit((unsigned char)*s)) {
        v = v * 10 + (*s - '0');
        if (v > SEQ_MAX_T) {
            snprintf(err, n, "--seq: '%s': number too large (max %d)", item, SEQ_MAX_T);
            return -1;
        }
        s++;
    }
    if (*s == 'k' || *s == 'K') {
        v *= 1024;
        s++;
    }
    if (v > SEQ_MAX_T) {
        snprintf(err, n, "--seq: '%s': %lld is too large (max %d)", item, v, SEQ_MAX_T);
        return -1;
    }
    if (v == 0) {
        snprintf(err, n, "--seq: '%s': %s must be at least 1 (got 0)", item, what);
        return -1;
    }
    *val = v;
    *p = s;
    return 0;
}

static int push(int *out, int *count, int max_out, long long v, char *err, size_t n) {
    for (int i = 0; i < *count; i++)
        if (out[i] == v) return 0;
    if (*count >= max_out) {
        snprintf(err, n, "--seq: more than %d lengths", max_out);
        return -1;
    }
    out[(*count)++] = (int)v;
    return 0;
}

static int parse_item(const char *item, int *out, int *count, int max_out, char *err, size_t n) {
    const char *p = item;
    long long a, b, step = 0;
    if (parse_num(&p, &a, item, "a sequence length", err, n)) return -1;
    if (*p == 0) return push(out, count, max_out, a, err, n);
    if (strncmp(p, "..", 2) != 0) {
        snprintf(err, n, "--seq: '%s': unexpected '%s' (write 1k..64k, 1k..8k:1k or 1024,2k)",
                 item, p);
        return -1;
    }
    p += 2;
    if (parse_num(&p, &b, item, "a sequence length", err, n)) return -1;
    if (*p == ':') {
        p++;
        if (parse_num(&p, &step, item, "the step", err, n)) return -1;
    }
    if (*p != 0) {
        snprintf(err, n, "--seq: '%s': unexpected '%s' after the range", item, p);
        return -1;
    }
    if (a > b) {
        snprintf(err, n, "--seq: '%s': range start %lld is above its end %lld", item, a, b);
        return -1;
    }
    for (long long v = a; v <= b; v = step ? v + step : v * 2)
        if (push(out, count, max_out, v, err, n)) return -1;
    return 0;
}

int seq_parse(const char *spec, int *out, int max_out, char *err, size_t err_len) {
    char buf[512];
    if (!spec || !*spec) {
        snprintf(err, err_len, "--seq: empty (write e.g. 1k..64k)");
        return -1;
    }
    if (strlen(spec) >= sizeof buf) {
        snprintf(err, err_len, "--seq: value too long");
        return -1;
    }
    strcpy(buf, spec);
    int count = 0;
    char *save = NULL;
    if (buf[0] == ',' || buf[strlen(buf) - 1] == ',' || strstr(buf, ",,")) {
        snprintf(err, err_len, "--seq: '%s': empty item in the list", spec);
        return -1;
    }
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save))
        if (parse_item(item, out, &count, max_out, err, err_len)) return -1;
    return count;
}
