/* intern.c: string interning (intern.h): a text arena, an id -> offset array,
 * and an open-addressing table (linear probing, at most half full) of ids. */
#include "intern.h"

#include <stdlib.h>
#include <string.h>

void intern_init(intern_t *t) { memset(t, 0, sizeof *t); }

void intern_free(intern_t *t) {
    free(t->text);
    free(t->at);
    free(t->slot_id);
    free(t->slot_hash);
    intern_init(t);
}

/* FNV-1a, folded to 32 bits: names are short and few collide. */
static uint32_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return (uint32_t)(h ^ (h >> 32));
}

/* The slot holding s, or the empty slot where it would go. */
static size_t probe(const intern_t *t, const char *s, uint32_t h) {
    size_t mask = t->n_slots - 1, i = h & mask;
    while (t->slot_id[i] &&
           (t->slot_hash[i] != h || strcmp(t->text + t->at[t->slot_id[i]], s) != 0))
        i = (i + 1) & mask;
    return i;
}

/* Doubles the slot table (or makes the first), moving every id by its kept hash. */
static int grow_slots(intern_t *t) {
    size_t n = t->n_slots ? 2 * t->n_slots : 64, mask = n - 1;
    uint32_t *id = calloc(n, sizeof *id), *hash = malloc(n * sizeof *hash);
    if (!id || !hash) {
        free(id);
        free(hash);
        return -1;
    }
    for (size_t i = 0; i < t->n_slots; i++) {
        if (!t->slot_id[i]) continue;
        size_t j = t->slot_hash[i] & mask;
        while (id[j]) j = (j + 1) & mask;
        id[j] = t->slot_id[i];
        hash[j] = t->slot_hash[i];
    }
    free(t->slot_id);
    free(t->slot_hash);
    t->slot_id = id;
    t->slot_hash = hash;
    t->n_slots = n;
    return 0;
}

/* Room for one more string of len bytes (and its id). */
static int reserve(intern_t *t, size_t len) {
    if (t->text_len + len + 1 > t->text_cap) {
        size_t cap = t->text_cap ? t->text_cap : 4096;
        while (t->text_len + len + 1 > cap) cap *= 2;
        char *grown = realloc(t->text, cap);
        if (!grown) return -1;
        t->text = grown;
        t->text_cap = cap;
    }
    if (t->n + 1 >= t->cap) {
        if (t->cap >= UINT32_MAX / 2) return -1;
        uint32_t cap = t->cap ? 2 * t->cap : 64;
        size_t *grown = realloc(t->at, cap * sizeof *grown);
        if (!grown) return -1;
        t->at = grown;
        t->cap = cap;
    }
    if (2 * ((size_t)t->n + 1) > t->n_slots && grow_slots(t)) return -1;
    return 0;
}

uint32_t intern_add(intern_t *t, const char *s) {
    size_t len = strlen(s);
    if (reserve(t, len)) return 0; /* first: growing moves the slots */
    uint32_t h = hash_str(s);
    size_t i = probe(t, s, h);
    if (t->slot_id[i]) return t->slot_id[i];
    uint32_t id = ++t->n;
    t->at[id] = t->text_len;
    memcpy(t->text + t->text_len, s, len + 1);
    t->text_len += len + 1;
    t->slot_id[i] = id;
    t->slot_hash[i] = h;
    return id;
}

uint32_t intern_find(const intern_t *t, const char *s) {
    if (!t->n_slots) return 0;
    return t->slot_id[probe(t, s, hash_str(s))];
}

const char *intern_str(const intern_t *t, uint32_t id) { return t->text + t->at[id]; }
