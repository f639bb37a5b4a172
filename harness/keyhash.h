/* keyhash.h: keys of a fixed number of 64-bit atoms (interned ids, the bits of
 * numbers), each stored once and named by a dense id (0, 1, ...): the order in
 * which keys were first added.  Adding and finding take constant time, so
 * matching the rows of two files is linear, not quadratic. */
#ifndef CHELA_KEYHASH_H
#define CHELA_KEYHASH_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int n_atoms;     /* atoms per key */
    uint64_t *atoms; /* key id i is atoms[i * n_atoms ...] */
    uint32_t n, cap;
    uint32_t *slot_id, *slot_hash; /* open addressing: id + 1 (0 = empty) and its hash */
    size_t n_slots;
} keyhash_t;

/* An empty table of keys of n_atoms atoms. */
void keyhash_init(keyhash_t *k, int n_atoms);
void keyhash_free(keyhash_t *k);
/* Adds key: 1 with *id the new key's id; 0 with *id the id of the equal key
 * added before (nothing added); -1 when out of memory. */
int keyhash_add(keyhash_t *k, const uint64_t *key, uint32_t *id);
/* 1 with *id when an equal key was added, else 0. */
int keyhash_find(const keyhash_t *k, const uint64_t *key, uint32_t *id);
/* The atoms of key id. */
const uint64_t *keyhash_key(const keyhash_t *k, uint32_t id);

#endif
