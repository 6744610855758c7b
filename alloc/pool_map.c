/* alloc/pool_map.c: a hash map from a nonzero 64-bit key to a pointer (open addressing, linear
 * probing, no tombstones): the pool's live map (address -> block) and the trace parser's ids; and
 * the name index built on it (the pool's and the trace's tag tables).
 *
 * Keys can come from input (trace ids, tag names), so the hash is keyed with a random per-process
 * seed: without it, ids chosen to share one slot (the mixer is invertible) made every probe walk
 * one cluster, and a 200k-event trace took seconds instead of milliseconds. */
#include "alloc/pool.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define MAP_MIN_CAP 1024u

static uint64_t map_seed[2];
static pthread_once_t map_seed_once = PTHREAD_ONCE_INIT;

static uint64_t map_mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static void map_seed_init(void)
{
    if (getrandom(map_seed, sizeof map_seed, GRND_NONBLOCK) != (ssize_t)sizeof map_seed) {
        /* no entropy yet (early boot): time and address-space layout still vary per run */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        map_seed[0] =
            map_mix((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)(uintptr_t)&ts);
        map_seed[1] = map_mix(map_seed[0] ^ (uint64_t)(uintptr_t)&map_seed_init);
    }
    map_seed[0] |= 1; /* never 0, so pool_map_init can tell it ran */
}

static size_t map_slot(const pool_map *m, uint64_t key)
{
    /* Seeded, then a full 64-bit mixer: aligned pointers and consecutive ids both spread over
     * the table, and no input can choose keys that collide. */
    return (size_t)map_mix(key ^ map_seed[0]) & (m->cap - 1);
}

static remat_status map_alloc(pool_map *m, size_t cap)
{
    m->keys = calloc(cap, sizeof *m->keys);
    m->vals = calloc(cap, sizeof *m->vals);
    if (!m->keys || !m->vals) {
        free(m->keys), free(m->vals);
        m->keys = NULL, m->vals = NULL;
        return remat_fail(REMAT_ENOMEM, "pool: out of host memory for the live-block map");
    }
    m->cap = cap;
    m->n = 0;
    return REMAT_OK;
}

remat_status pool_map_init(pool_map *m)
{
    pthread_once(&map_seed_once, map_seed_init);
    return map_alloc(m, MAP_MIN_CAP);
}

void pool_map_destroy(pool_map *m)
{
    free(m->keys), free(m->vals);
    m->keys = NULL, m->vals = NULL;
    m->cap = m->n = 0;
}

static void map_place(pool_map *m, uint64_t key, void *val)
{
    size_t i = map_slot(m, key);
    while (m->keys[i])
        i = (i + 1) & (m->cap - 1);
    m->keys[i] = key;
    m->vals[i] = val;
    m->n++;
}

static remat_status map_grow(pool_map *m)
{
    pool_map old = *m;
    REMAT_TRY(map_alloc(m, old.cap ? old.cap * 2 : MAP_MIN_CAP));
    for (size_t i = 0; i < old.cap; i++)
        if (old.keys[i])
            map_place(m, old.keys[i], old.vals[i]);
    pool_map_destroy(&old);
    return REMAT_OK;
}

remat_status pool_map_put(pool_map *m, uint64_t key, void *val)
{
    if ((m->n + 1) * 2 > m->cap)
        REMAT_TRY(map_grow(m));
    map_place(m, key, val);
    return REMAT_OK;
}

static size_t map_find(const pool_map *m, uint64_t key)
{
    if (!key || !m->cap)
        return SIZE_MAX;
    for (size_t i = map_slot(m, key);; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == key)
            return i;
        if (!m->keys[i])
            return SIZE_MAX;
    }
}

void *pool_map_get(const pool_map *m, uint64_t key)
{
    size_t i = map_find(m, key);
    return i == SIZE_MAX ? NULL : m->vals[i];
}

/* Removes slot i, shifting later entries of its probe run back (no tombstones). */
static void map_erase(pool_map *m, size_t i)
{
    size_t mask = m->cap - 1;
    for (size_t j = (i + 1) & mask; m->keys[j]; j = (j + 1) & mask) {
        size_t home = map_slot(m, m->keys[j]);
        /* Move j into the hole at i if its home slot is not in (i, j] cyclically. */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            m->keys[i] = m->keys[j];
            m->vals[i] = m->vals[j];
            i = j;
        }
    }
    m->keys[i] = 0;
    m->vals[i] = NULL;
    m->n--;
}

void *pool_map_take(pool_map *m, uint64_t key)
{
    size_t i = map_find(m, key);
    if (i == SIZE_MAX)
        return NULL;
    void *v = m->vals[i];
    map_erase(m, i);
    return v;
}

/* ==== Name index ============================================================================ */

/* A seeded hash of a name: 8-byte words mixed in turn, then the length; never 0 (the empty key). */
static uint64_t names_key(const char *name)
{
    pthread_once(&map_seed_once, map_seed_init);
    size_t n = strlen(name);
    uint64_t h = map_seed[1] ^ n;
    for (size_t i = 0; i < n; i += 8) {
        uint64_t w = 0;
        memcpy(&w, name + i, n - i < 8 ? n - i : 8);
        h = map_mix(h ^ w) + map_seed[0];
    }
    h = map_mix(h);
    return h ? h : 1;
}

size_t pool_names_find(const pool_map *index, const char *name, pool_name_at at, const void *names,
                       size_t n)
{
    void *v = pool_map_get(index, names_key(name));
    if (!v)
        return n;
    size_t i = (size_t)(uintptr_t)v - 1;
    if (i < n && strcmp(at(names, i), name) == 0)
        return i;
    /* two names with one 64-bit key (a chance of 2^-64 per pair, not one an input can steer):
     * the later one is not in the index, so look it up the slow way */
    for (i = 0; i < n; i++)
        if (strcmp(at(names, i), name) == 0)
            return i;
    return n;
}

remat_status pool_names_add(pool_map *index, const char *name, size_t i)
{
    uint64_t key = names_key(name);
    if (pool_map_get(index, key))
        return REMAT_OK; /* taken by another name: pool_names_find scans for this one */
    return pool_map_put(index, key, (void *)(uintptr_t)(i + 1));
}
