/* intern.h: strings stored once each and named by a dense id (1, 2, ...), so a
 * table of a million rows holds each device, op or variant name once and its
 * rows compare names by comparing ids. */
#ifndef CHELA_INTERN_H
#define CHELA_INTERN_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *text; /* every string, each NUL-terminated */
    size_t text_len, text_cap;
    size_t *at; /* id -> offset in text; at[0] unused */
    uint32_t n, cap;
    uint32_t *slot_id, *slot_hash; /* open addressing: id (0 = empty) and its hash */
    size_t n_slots;
} intern_t;

/* An empty table (a zeroed intern_t is one too). */
void intern_init(intern_t *t);
void intern_free(intern_t *t);
/* The id of s, added if new: > 0, or 0 when out of memory. */
uint32_t intern_add(intern_t *t, const char *s);
/* The id of s, or 0 when it was never added (nothing is added). */
uint32_t intern_find(const intern_t *t, const char *s);
/* The string of an id intern_add returned. */
const char *intern_str(const intern_t *t, uint32_t id);

#endif
