/* tests/unit/test_torch_alloc.c: the PyTorch pluggable-allocator entry points (remat_torch_alloc,
 * remat_torch_free, remat_torch_stats) on host and sim devices: one pool per device index, the
 * configured limit, statistics, refusal of late configuration, bad arguments and threads. Each
 * Criterion test runs in its own process, so every test starts with no pools. */
#include "remat.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>

#define KiB ((uint64_t)1 << 10)
#define MiB ((uint64_t)1 << 20)

static void configure(const char *kind, uint64_t limit)
{
    cr_assert_eq(remat_torch_configure(kind, limit), REMAT_OK, "%s", remat_last_error());
}

static remat_pool_stats stats_of(int device)
{
    remat_pool_stats st;
    cr_assert_eq(remat_torch_stats(device, &st), REMAT_OK, "%s", remat_last_error());
    return st;
}

Test(torch_alloc, host_alloc_write_free_and_stats)
{
    configure("host", 0);
    remat_pool_stats st = stats_of(0);
    cr_assert_eq(st.n_alloc, 0);
    cr_assert_eq(st.reserved.current, 0);
    unsigned char *p = remat_torch_alloc(1000, 0, NULL);
    cr_assert_not_null(p, "%s", remat_last_error());
    cr_assert_eq((uintptr_t)p % 512, 0);
    memset(p, 0xab, 1000);
    st = stats_of(0);
    cr_assert_eq(st.requested.current, 1000);
    cr_assert_eq(st.allocated.current, 1024); /* rounded to 512 */
    cr_assert_geq(st.reserved.current, 1024);
    cr_assert_eq(st.n_alloc, 1);
    remat_torch_free(p, 1000, 0, NULL);
    st = stats_of(0);
    cr_assert_eq(st.requested.current, 0);
    cr_assert_eq(st.requested.peak, 1000);
    cr_assert_eq(st.n_free, 1);
    /* The freed block is cached: the next request of that size is a cache hit. */
    void *q = remat_torch_alloc(900, 0, NULL);
    cr_assert_not_null(q);
    cr_assert_eq(stats_of(0).n_cache_hits, 1);
    remat_torch_free(q, 900, 0, NULL);
}

Test(torch_alloc, one_pool_per_device_index)
{
    configure("host", 0);
    void *a = remat_torch_alloc(4 * KiB, 0, NULL);
    void *b = remat_torch_alloc(12 * KiB, 1, NULL);
    cr_assert(a && b, "%s", remat_last_error());
    cr_assert_eq(stats_of(0).requested.current, 4 * KiB);
    cr_assert_eq(stats_of(1).requested.current, 12 * KiB);
    cr_assert_eq(stats_of(2).n_alloc, 0);
    /* A pointer freed on the wrong device is not that pool's: ignored with a message. */
    remat_clear_error();
    remat_torch_free(a, 4 * KiB, 1, NULL);
    cr_assert_neq(remat_last_error()[0], '\0');
    cr_assert_eq(stats_of(0).requested.current, 4 * KiB);
    cr_assert_eq(stats_of(1).requested.current, 12 * KiB);
    remat_torch_free(a, 4 * KiB, 0, NULL);
    remat_torch_free(b, 12 * KiB, 1, NULL);
    cr_assert_eq(stats_of(0).requested.current, 0);
    cr_assert_eq(stats_of(1).requested.current, 0);
}

Test(torch_alloc, limit_refuses_with_a_message)
{
    configure("sim:1GiB", 8 * MiB);
    void *a = remat_torch_alloc((ssize_t)(6 * MiB), 0, NULL);
    cr_assert_not_null(a, "%s", remat_last_error());
    void *b = remat_torch_alloc((ssize_t)(4 * MiB), 0, NULL);
    cr_assert_null(b);
    cr_assert(strstr(remat_last_error(), "limit 8.00 MiB"), "%s", remat_last_error());
    remat_pool_stats st = stats_of(0);
    cr_assert_geq(st.n_ooms, 1);
    cr_assert_leq(st.reserved.current, 8 * MiB);
    remat_torch_free(a, (ssize_t)(6 * MiB), 0, NULL);
    /* After the free the same request fits. */
    b = remat_torch_alloc((ssize_t)(4 * MiB), 0, NULL);
    cr_assert_not_null(b, "%s", remat_last_error());
    remat_torch_free(b, 0, 0, NULL);
}

Test(torch_alloc, configure_only_before_use_and_release)
{
    configure("host", 0);
    void *a = remat_torch_alloc(100, 0, NULL);
    cr_assert_not_null(a);
    cr_assert_eq(remat_torch_configure("host", 4096), REMAT_EINVAL);
    cr_assert(strstr(remat_last_error(), "already in use"), "%s", remat_last_error());
    cr_assert_eq(remat_torch_release(), REMAT_EINVAL);
    cr_assert(strstr(remat_last_error(), "1 blocks"), "%s", remat_last_error());
    cr_assert_eq(stats_of(0).requested.current, 100); /* nothing was destroyed */
    remat_torch_free(a, 100, 0, NULL);
    cr_assert_eq(remat_torch_release(), REMAT_OK, "%s", remat_last_error());
    cr_assert_eq(stats_of(0).n_alloc, 0);
    configure("sim:1GiB", 4 * MiB); /* allowed again, and the new limit applies */
    cr_assert_null(remat_torch_alloc((ssize_t)(8 * MiB), 0, NULL));
    cr_assert(strstr(remat_last_error(), "limit 4.00 MiB"), "%s", remat_last_error());
    void *b = remat_torch_alloc((ssize_t)MiB, 0, NULL);
    cr_assert_not_null(b, "%s", remat_last_error());
    remat_torch_free(b, (ssize_t)MiB, 0, NULL);
}

Test(torch_alloc, bad_arguments)
{
    cr_assert_eq(remat_torch_configure("tpu", 0), REMAT_EINVAL);
    cr_assert(strstr(remat_last_error(), "'tpu'"), "%s", remat_last_error());
    cr_assert_eq(remat_torch_configure("sim:lots", 0), REMAT_EINVAL);
    cr_assert(strstr(remat_last_error(), "'sim:lots'"), "%s", remat_last_error());
    configure("host", 0);
    cr_assert_null(remat_torch_alloc(-5, 0, NULL));
    cr_assert(strstr(remat_last_error(), "negative size -5"), "%s", remat_last_error());
    cr_assert_null(remat_torch_alloc(16, -1, NULL));
    cr_assert(strstr(remat_last_error(), "device -1"), "%s", remat_last_error());
    cr_assert_null(remat_torch_alloc(16, 64, NULL));
    remat_pool_stats st;
    cr_assert_eq(remat_torch_stats(64, &st), REMAT_EINVAL);
    cr_assert_eq(remat_torch_stats(0, NULL), REMAT_EINVAL);
    remat_torch_free(NULL, 0, 0, NULL); /* a no-op */
    int x = 0;
    remat_clear_error();
    remat_torch_free(&x, 4, 3, NULL); /* device 3 has no pool */
    cr_assert(strstr(remat_last_error(), "no pool"), "%s", remat_last_error());
}

/* Without a GPU (or without CUDA in this build) the default kind fails cleanly: NULL and a
 * message, never a crash; with one, it allocates. */
Test(torch_alloc, cuda_kind_without_or_with_a_gpu)
{
    int n = 0;
    cr_assert_eq(remat_cuda_device_count(&n, NULL), REMAT_OK);
    void *p = remat_torch_alloc(1 << 20, 0, NULL);
    if (n == 0) {
        cr_assert_null(p);
        cr_assert(strstr(remat_last_error(), "cuda:0"), "%s", remat_last_error());
    } else {
        cr_assert_not_null(p, "%s", remat_last_error());
        remat_torch_free(p, 1 << 20, 0, NULL);
    }
}

typedef struct {
    int device;
    uint64_t seed;
    int failures;
} torch_worker;

/* Allocates and frees a few hundred blocks of varying size on one device index. */
static void *torch_work(void *arg)
{
    torch_worker *w = arg;
    void *live[16] = {0};
    for (int i = 0; i < 400; i++) {
        w->seed = w->seed * 6364136223846793005ull + 1442695040888963407ull;
        int slot = (int)(w->seed >> 60);
        ssize_t size = (ssize_t)((w->seed >> 20) % (256 * KiB));
        if (live[slot]) {
            remat_torch_free(live[slot], 0, w->device, NULL);
            live[slot] = NULL;
        } else if (!(live[slot] = remat_torch_alloc(size, w->device, NULL))) {
            w->failures++;
        } else {
            memset(live[slot], slot, (size_t)size);
        }
    }
    for (int s = 0; s < 16; s++)
        remat_torch_free(live[s], 0, w->device, NULL);
    return NULL;
}

Test(torch_alloc, threads_create_pools_lazily_and_share_them)
{
    configure("host", 0);
    pthread_t t[6];
    torch_worker w[6];
    for (int i = 0; i < 6; i++) {
        w[i] = (torch_worker){.device = i % 2, .seed = (uint64_t)i + 1};
        cr_assert_eq(pthread_create(&t[i], NULL, torch_work, &w[i]), 0);
    }
    for (int i = 0; i < 6; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(w[i].failures, 0);
    }
    for (int d = 0; d < 2; d++) {
        remat_pool_stats st = stats_of(d);
        cr_assert_gt(st.n_alloc, 0);
        cr_assert_eq(st.n_alloc, st.n_free);
        cr_assert_eq(st.requested.current, 0);
    }
    cr_assert_eq(remat_torch_release(), REMAT_OK, "%s", remat_last_error());
}
