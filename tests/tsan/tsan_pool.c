/* tests/tsan/tsan_pool.c: the pool under ThreadSanitizer (`make tsan`). Criterion cannot start under
 * TSan (its inheritable arena fails: Snaipe/Criterion#274), so this is a plain program: four
 * threads allocate, write, check and free on one host pool while an observer thread reads stats,
 * tags, fragmentation and snapshots, checks invariants, empties the cache, resets peaks and records
 * a trace. Exit 0 when every check holds (TSan itself exits non-zero on a race). */
#include "remat.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TSAN_WORKERS = 4, TSAN_SLOTS = 64, TSAN_OPS = 20000 };

typedef struct {
    remat_pool *pool;
    uint64_t seed;
    int failed;
} tsan_worker;

static volatile int tsan_done; /* written once by main after the workers joined */
static pthread_mutex_t tsan_done_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t tsan_rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int tsan_fill_or_check(unsigned char *p, size_t n, unsigned char v, int check)
{
    size_t step = n / 7 + 1;
    for (size_t i = 0; i < n; i += step) {
        if (check && p[i] != v)
            return 1;
        p[i] = v;
    }
    return 0;
}

static void *tsan_worker_main(void *argp)
{
    tsan_worker *w = argp;
    static const char *tags[] = {"params", "grads", "act", NULL};
    unsigned char *live[TSAN_SLOTS] = {0};
    size_t bytes[TSAN_SLOTS];
    uint64_t rng = w->seed;
    for (int op = 0; op < TSAN_OPS; op++) {
        uint64_t r = tsan_rng(&rng);
        int i = (int)(r % TSAN_SLOTS);
        if (live[i]) {
            w->failed |= tsan_fill_or_check(live[i], bytes[i], (unsigned char)i, 1);
            remat_free(w->pool, live[i]);
            live[i] = NULL;
            continue;
        }
        bytes[i] = (r >> 8) % 16 ? 1 + (r >> 16) % 65536 : 1 + (r >> 16) % (3u << 20);
        remat_stream stream = (remat_stream)(uintptr_t)(w->seed % 2);
        live[i] = remat_alloc_tagged(w->pool, bytes[i], stream, tags[(r >> 40) % 4]);
        if (!live[i] || (uintptr_t)live[i] % 512) {
            fprintf(stderr, "tsan_pool: allocation failed: %s\n", remat_last_error());
            w->failed = 1;
            break;
        }
        tsan_fill_or_check(live[i], bytes[i], (unsigned char)i, 0);
    }
    for (int i = 0; i < TSAN_SLOTS; i++)
        if (live[i]) {
            w->failed |= tsan_fill_or_check(live[i], bytes[i], (unsigned char)i, 1);
            remat_free(w->pool, live[i]);
        }
    return NULL;
}

static int tsan_is_done(void)
{
    pthread_mutex_lock(&tsan_done_lock);
    int d = tsan_done;
    pthread_mutex_unlock(&tsan_done_lock);
    return d;
}

static void *tsan_observer_main(void *argp)
{
    tsan_worker *w = argp;
    FILE *trace = tmpfile(), *null = fopen("/dev/null", "w");
    if (!trace || !null) {
        w->failed = 1;
        return NULL;
    }
    for (int round = 0; !tsan_is_done(); round++) {
        remat_pool_stats st;
        remat_stat tag;
        w->failed |= remat_pool_stats_get(w->pool, &st) != REMAT_OK;
        w->failed |= st.allocated.current > st.reserved.current;
        w->failed |= remat_pool_tag_stats(w->pool, "act", &tag) != REMAT_OK;
        w->failed |= remat_pool_fragmentation(w->pool) < 0.0;
        if (remat_pool_check(w->pool) != REMAT_OK) {
            fprintf(stderr, "tsan_pool: %s\n", remat_last_error());
            w->failed = 1;
        }
        if (round % 16 == 0)
            w->failed |= remat_pool_snapshot(w->pool, null) != REMAT_OK;
        if (round % 8 == 0)
            w->failed |= remat_pool_empty_cache(w->pool) != REMAT_OK;
        if (round % 8 == 4)
            w->failed |= remat_pool_reset_peaks(w->pool) != REMAT_OK;
        if (round % 32 == 0)
            w->failed |= remat_pool_trace_begin(w->pool, trace) != REMAT_OK;
        if (round % 32 == 16)
            w->failed |= remat_pool_trace_end(w->pool) != REMAT_OK;
    }
    (void)!remat_pool_trace_end(w->pool); /* ends a recording if one is on */
    fclose(trace);
    fclose(null);
    return NULL;
}

int main(void)
{
    remat_device *dev = NULL;
    remat_pool *pool = NULL;
    if (remat_device_open("host", &dev) != REMAT_OK || remat_pool_create(dev, NULL, &pool)) {
        fprintf(stderr, "tsan_pool: %s\n", remat_last_error());
        return 1;
    }
    pthread_t th[TSAN_WORKERS + 1];
    tsan_worker w[TSAN_WORKERS + 1];
    for (int t = 0; t <= TSAN_WORKERS; t++) {
        w[t] = (tsan_worker){pool, (uint64_t)t + 1, 0};
        pthread_create(&th[t], NULL, t < TSAN_WORKERS ? tsan_worker_main : tsan_observer_main, &w[t]);
    }
    for (int t = 0; t < TSAN_WORKERS; t++)
        pthread_join(th[t], NULL);
    pthread_mutex_lock(&tsan_done_lock);
    tsan_done = 1;
    pthread_mutex_unlock(&tsan_done_lock);
    pthread_join(th[TSAN_WORKERS], NULL);
    int failed = 0;
    for (int t = 0; t <= TSAN_WORKERS; t++)
        failed |= w[t].failed;
    remat_pool_stats st;
    failed |= remat_pool_stats_get(pool, &st) != REMAT_OK;
    if (st.requested.current || st.allocated.current || st.n_alloc != st.n_free ||
        remat_pool_check(pool) != REMAT_OK)
        failed = 1;
    printf("tsan_pool: %d threads x %d ops, %llu allocations: %s\n", TSAN_WORKERS, TSAN_OPS,
           (unsigned long long)st.n_alloc, failed ? "FAILED" : "ok");
    remat_pool_destroy(pool);
    remat_device_close(dev);
    return failed;
}
