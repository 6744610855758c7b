/* alloc/pool_map.c: a hash map from a nonzero 64-bit key to a pointer (open addressing, linear
 * probing, no tombstones): the pool's live map (address -> block) and the trace parser's ids. */
#include "alloc/pool.h"

#include <stdlib.h>

#define MAP_MIN_CAP 1024u

static size_t map_slot(const pool_map *m, uint64_t key)
{
    /* A 64-bit mixer: aligned pointers and consecutive ids both spread over the table. */
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdull;
    key ^= key >> 33;
    return (size_t)key & (m->cap - 1);
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

remat_status pool_map_init(pool_map *m) { return map_alloc(m, MAP_MIN_CAP); }

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
    REMAT_TRY(map_alloc(m, old.cap * 2));
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
