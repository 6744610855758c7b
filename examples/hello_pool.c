/* examples/hello_pool.c: the smallest program that links libremat: open a device, allocate from
 * the caching pool, print what the pool holds. `remat_device_open("auto")` takes the first GPU, or
 * host memory where there is none. */
#include <remat.h>

#include <stdio.h>

int main(void)
{
    remat_device *dev;
    remat_pool *pool;
    if (remat_device_open("auto", &dev) != REMAT_OK) {
        fprintf(stderr, "hello_pool: %s\n", remat_last_error());
        return 1;
    }
    if (remat_pool_create(dev, NULL, &pool) != REMAT_OK) {
        fprintf(stderr, "hello_pool: %s\n", remat_last_error());
        remat_device_close(dev);
        return 1;
    }
    void *blocks[8];
    for (int i = 0; i < 8; i++)
        blocks[i] = remat_alloc(pool, (size_t)1000 << i, NULL);
    for (int i = 0; i < 8; i++)
        remat_free(pool, blocks[i]);
    void *again = remat_alloc(pool, 64000, NULL); /* served from the cache, no device call */
    remat_free(pool, again);

    remat_pool_stats st;
    if (remat_pool_stats_get(pool, &st) != REMAT_OK) {
        fprintf(stderr, "hello_pool: %s\n", remat_last_error());
        return 1;
    }
    char req[32], res[32];
    printf("hello_pool: %llu allocations, %llu cache hits, %llu device allocations; peak requested %s, "
           "reserved %s\n",
           (unsigned long long)st.n_alloc, (unsigned long long)st.n_cache_hits,
           (unsigned long long)st.n_device_alloc,
           remat_format_bytes(st.requested.peak, req, sizeof req),
           remat_format_bytes(st.reserved.peak, res, sizeof res));
    remat_pool_destroy(pool);
    remat_device_close(dev);
    return 0;
}
