/* tests/unit/test_pool_dedicated.c: remat_alloc_dedicated: a block in a segment of its own at exactly
 * its rounded size, never shared with other blocks, returned to the device on free; the model's
 * persistent state uses it, so states never interleave with activations. */
#include "remat.h"

#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

static remat_device *dev;
static remat_pool *pool;

static void open_pool(uint64_t limit)
{
    remat_pool_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.limit_bytes = limit;
    cr_assert_eq(remat_device_open("host", &dev), REMAT_OK);
    cr_assert_eq(remat_pool_create(dev, &cfg, &pool), REMAT_OK);
}

static void close_pool(void)
{
    remat_pool_destroy(pool);
    remat_device_close(dev);
}

static remat_pool_stats stats(void)
{
    remat_pool_stats st;
    cr_assert_eq(remat_pool_stats_get(pool, &st), REMAT_OK);
    return st;
}

Test(dedicated, exact_size_segment_back_to_the_device_on_free)
{
    open_pool(0);
    const size_t sizes[] = {1, 3000, (3 << 20) + 17, 13 << 20};
    for (size_t i = 0; i < 4; i++) {
        remat_pool_stats before = stats();
        char *p = remat_alloc_dedicated(pool, sizes[i], NULL, "params");
        cr_assert(p, "%s", remat_last_error());
        remat_pool_stats mid = stats();
        uint64_t rounded = (sizes[i] + 511) / 512 * 512;
        cr_assert_eq(mid.reserved.current - before.reserved.current, rounded, "size %zu", sizes[i]);
        cr_assert_eq(mid.n_device_alloc, before.n_device_alloc + 1);
        size_t block = 0;
        cr_assert_eq(remat_pool_block_size(pool, p, &block), REMAT_OK);
        cr_assert_eq(block, rounded);
        memset(p, 0xab, sizes[i]); /* host memory: all of it is ours */
        cr_assert_eq(remat_pool_check(pool), REMAT_OK, "%s", remat_last_error());
        remat_free(pool, p);
        remat_pool_stats after = stats();
        cr_assert_eq(after.reserved.current, before.reserved.current, "size %zu", sizes[i]);
        cr_assert_eq(after.n_device_free, before.n_device_free + 1);
        cr_assert_eq(remat_pool_check(pool), REMAT_OK, "%s", remat_last_error());
    }
    close_pool();
}

Test(dedicated, never_shared_with_other_blocks)
{
    open_pool(0);
    char *d = remat_alloc_dedicated(pool, 5000, NULL, "optim");
    cr_assert(d);
    /* ordinary blocks of every size class land outside the dedicated segment */
    void *others[64];
    for (int i = 0; i < 64; i++) {
        size_t bytes = (size_t)(i % 8 + 1) * 512 * (i < 32 ? 1 : 300);
        char *q = others[i] = remat_alloc_tagged(pool, bytes, NULL, "act");
        cr_assert(q);
        cr_assert(q + bytes <= d || q >= d + 5120, "block %d at %p inside the dedicated %p", i,
                  (void *)q, (void *)d);
    }
    for (int i = 0; i < 64; i += 2)
        remat_free(pool, others[i]);
    for (int i = 0; i < 32; i++) {
        char *q = remat_alloc_tagged(pool, 512, NULL, "act");
        cr_assert(q + 512 <= d || q >= d + 5120);
        remat_free(pool, q);
    }
    remat_stat st;
    cr_assert_eq(remat_pool_tag_stats(pool, "optim", &st), REMAT_OK);
    cr_assert_eq(st.current, 5000);
    cr_assert_eq(remat_pool_check(pool), REMAT_OK, "%s", remat_last_error());
    remat_free(pool, d);
    for (int i = 1; i < 64; i += 2)
        remat_free(pool, others[i]);
    cr_assert_eq(remat_pool_check(pool), REMAT_OK, "%s", remat_last_error());
    close_pool();
}

Test(dedicated, within_the_limit_and_clean_failures)
{
    open_pool(4 << 20);
    void *a = remat_alloc_dedicated(pool, 3 << 20, NULL, "params");
    cr_assert(a, "%s", remat_last_error());
    /* 1 MiB is left: exactly that fits, one more byte does not */
    cr_assert_null(remat_alloc_dedicated(pool, (1 << 20) + 1, NULL, "grads"));
    cr_assert(strstr(remat_last_error(), "limit"), "%s", remat_last_error());
    void *b = remat_alloc_dedicated(pool, 1 << 20, NULL, "grads");
    cr_assert(b, "%s", remat_last_error());
    cr_assert_eq(stats().reserved.current, 4 << 20);
    remat_free(pool, a);
    remat_free(pool, b);
    cr_assert_eq(stats().reserved.current, 0);
    cr_assert_null(remat_alloc_dedicated(NULL, 512, NULL, "params"));
    cr_assert_null(remat_alloc_dedicated(pool, 512, NULL, "bad tag!"));
    cr_assert_eq(remat_pool_check(pool), REMAT_OK, "%s", remat_last_error());
    close_pool();
}
