/* bench/bench_pool.c: a cached allocation + free pair through the pool (host device) against
 * jemalloc's mallocx/dallocx at 256 B, 64 KiB, 1 MiB, 16 MiB and 64 MiB, in the same run.
 * Target: remat within 1.5x of jemalloc at every size. The pool is biased to the thread that
 * allocates first (alloc/pool_lock.c); `remat_pair_shared` measures a pool that another thread
 * has touched, which takes the spinlock on every call: the cost for multi-threaded programs. */
#include "bench/bench.h"
#include "remat.h"

#include <jemalloc/jemalloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
    size_t bytes;
    const char *label;
    remat_pool *pool;
} pair_case;

static void bench_remat_pair(remat_bench_state *st, void *arg)
{
    pair_case *c = arg;
    void *volatile sink;
    remat_free(c->pool, remat_alloc(c->pool, c->bytes, NULL)); /* warm: the block is cached */
    while (remat_bench_running(st)) {
        void *p = remat_alloc(c->pool, c->bytes, NULL);
        sink = p;
        remat_free(c->pool, p);
    }
    (void)sink;
}

static void bench_jemalloc_pair(remat_bench_state *st, void *arg)
{
    pair_case *c = arg;
    void *volatile sink;
    dallocx(mallocx(c->bytes, 0), 0);
    while (remat_bench_running(st)) {
        void *p = mallocx(c->bytes, 0);
        sink = p;
        dallocx(p, 0);
    }
    (void)sink;
}

/* Touches the pool from another thread: the pool is no longer biased to the benchmark's thread. */
static void *touch_pool(void *arg)
{
    remat_pool_stats st;
    (void)!remat_pool_stats_get(arg, &st); /* only to make the pool shared */
    return NULL;
}

int main(int argc, char **argv)
{
    static pair_case cases[] = {{256, "256B", NULL},
                                {64 << 10, "64KiB", NULL},
                                {1 << 20, "1MiB", NULL},
                                {16 << 20, "16MiB", NULL},
                                {64 << 20, "64MiB", NULL}};
    remat_device *dev = NULL;
    remat_pool *pool = NULL, *shared = NULL;
    pthread_t toucher;
    if (remat_device_open("host", &dev) != REMAT_OK || remat_pool_create(dev, NULL, &pool) != REMAT_OK ||
        remat_pool_create(dev, NULL, &shared) != REMAT_OK) {
        fprintf(stderr, "bench_pool: %s\n", remat_last_error());
        return 1;
    }
    remat_free(shared, remat_alloc(shared, 256, NULL));
    if (pthread_create(&toucher, NULL, touch_pool, shared) != 0 || pthread_join(toucher, NULL) != 0) {
        fprintf(stderr, "bench_pool: cannot start a thread\n");
        return 1;
    }
    static pair_case shared_case = {256, "256B", NULL};
    shared_case.pool = shared;
    remat_bench_register("pool/remat_pair_shared/256B", bench_remat_pair, &shared_case);
    static char names[5][2][64];
    for (int i = 0; i < 5; i++) {
        cases[i].pool = pool;
        snprintf(names[i][0], 64, "pool/remat_pair/%s", cases[i].label);
        snprintf(names[i][1], 64, "pool/jemalloc_pair/%s", cases[i].label);
        remat_bench_register(names[i][0], bench_remat_pair, &cases[i]);
        remat_bench_register(names[i][1], bench_jemalloc_pair, &cases[i]);
        remat_bench_compare(names[i][0], names[i][1], 1.5);
    }
    remat_bench_compare("pool/remat_pair_shared/256B", "pool/jemalloc_pair/256B", 0);
    int rc = remat_bench_main(argc, argv);
    remat_pool_destroy(pool);
    remat_pool_destroy(shared);
    remat_device_close(dev);
    return rc;
}
