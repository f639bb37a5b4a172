/* keyhash.c: the key table (keyhash.h): one array of atoms, and an
 * open-addressing table (linear probing, at most half full) of ids. */
#include "keyhash.h"

#include <stdlib.h>
#include <string.h>

void keyhash_init(keyhash_t *k, int n_atoms) {
    memset(k, 0, sizeof *k);
    k->n_atoms = n_atoms;
}

void keyhash_free(keyhash_t *k) {
    free(k->atoms);
    free(k->slot_id);
    free(k->slot_hash);
    keyhash_init(k, k->n_atoms);
}

/* Each atom through a 64-bit finaliser (MurmurHash3's), so ids and numbers
 * that differ in a few low bits still spread over the whole table. */
static uint32_t hash_key(const uint64_t *key, int n) {
    uint64_t h = 0x9e3779b97f4a7c15ULL;
    for (int i = 0; i < n; i++) {
        h ^= key[i] + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
        h ^= h >> 33;
        h *= 0xff51afd7ed558ccdULL;
        h ^= h >> 33;
        h *= 0xc4ceb9fe1a85ec53ULL;
        h ^= h >> 33;
    }
    return (uint32_t)(h ^ (h >> 32));
}

static size_t key_bytes(const keyhash_t *k) { return (size_t)k->n_atoms * sizeof k->atoms[0]; }

/* The slot holding key, or the empty slot where it would go. */
static size_t probe(const keyhash_t *k, const uint64_t *key, uint32_t h) {
    size_t mask = k->n_slots - 1, i = h & mask;
    while (k->slot_id[i] && (k->slot_hash[i] != h ||
                             memcmp(keyhash_key(k, k->slot_id[i] - 1), key, key_bytes(k)) != 0))
        i = (i + 1) & mask;
    return i;
}

/* Doubles the slot table (or makes the first), moving every id by its kept hash. */
static int grow_slots(keyhash_t *k) {
    size_t n = k->n_slots ? 2 * k->n_slots : 64, mask = n - 1;
    uint32_t *id = calloc(n, sizeof *id), *hash = malloc(n * sizeof *hash);
    if (!id || !hash) {
        free(id);
        free(hash);
        return -1;
    }
    for (size_t i = 0; i < k->n_slots; i++) {
        if (!k->slot_id[i]) continue;
        size_t j = k->slot_hash[i] & mask;
        while (id[j]) j = (j + 1) & mask;
        id[j] = k->slot_id[i];
        hash[j] = k->slot_hash[i];
    }
    free(k->slot_id);
    free(k->slot_hash);
    k->slot_id = id;
    k->slot_hash = hash;
    k->n_slots = n;
    return 0;
}

/* Room for one more key. */
static int reserve(keyhash_t *k) {
    if (k->n == k->cap) {
        if (k->cap >= UINT32_MAX / 2) return -1;
        uint32_t cap = k->cap ? 2 * k->cap : 64;
        uint64_t *grown = realloc(k->atoms, cap * key_bytes(k));
        if (!grown) return -1;
        k->atoms = grown;
        k->cap = cap;
    }
    if (2 * ((size_t)k->n + 1) > k->n_slots && grow_slots(k)) return -1;
    return 0;
}

int keyhash_add(keyhash_t *k, const uint64_t *key, uint32_t *id) {
    if (reserve(k)) return -1; /* first: growing moves the slots */
    uint32_t h = hash_key(key, k->n_atoms);
    size_t i = probe(k, key, h);
    if (k->slot_id[i]) {
        *id = k->slot_id[i] - 1;
        return 0;
    }
    *id = k->n++;
    memcpy(k->atoms + (size_t)*id * (size_t)k->n_atoms, key, key_bytes(k));
    k->slot_id[i] = *id + 1;
    k->slot_hash[i] = h;
    return 1;
}

int keyhash_find(const keyhash_t *k, const uint64_t *key, uint32_t *id) {
    if (!k->n_slots) return 0;
    size_t i = probe(k, key, hash_key(key, k->n_atoms));
    if (!k->slot_id[i]) return 0;
    *id = k->slot_id[i] - 1;
    return 1;
}

const uint64_t *keyhash_key(const keyhash_t *k, uint32_t id) {
    return k->atoms + (size_t)id * (size_t)k->n_atoms;
}
