/* bench/gpu_pool.c: the pool on a real GPU (run by `make gpu-check`): cached alloc+free pairs
 * against cudaMalloc/cudaFree and cudaMallocAsync (pool release threshold raised), stream-ordered
 * reuse through events, every event call failing in turn, and expandable segments (cuMemMap) with
 * data copied through them. Exit 0 when every correctness check passes; speed targets (>= 100x
 * cudaMalloc, >= 2x cudaMallocAsync) are printed as met or MISSED. */
#include "remat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef REMAT_HAVE_CUDA
#include <cuda_runtime.h>

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                            \
            printf(__VA_ARGS__);                                                                   \
            printf(" (%s)\n", remat_last_error());                                                 \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* ns per cached alloc+free pair through the pool. */
static double time_pool(remat_pool *pool, size_t bytes, int reps)
{
    remat_free(pool, remat_alloc(pool, bytes, NULL));
    double t0 = now_ns();
    for (int i = 0; i < reps; i++)
        remat_free(pool, remat_alloc(pool, bytes, NULL));
    return (now_ns() - t0) / reps;
}

static double time_cuda_malloc(size_t bytes, int reps)
{
    void *p = NULL;
    double t0 = now_ns();
    for (int i = 0; i < reps; i++) {
        if (cudaMalloc(&p, bytes) != cudaSuccess)
            return -1;
        cudaFree(p);
    }
    return (now_ns() - t0) / reps;
}

static double time_cuda_malloc_async(size_t bytes, int reps, cudaStream_t s)
{
    void *p = NULL;
    cudaMallocAsync(&p, bytes, s);
    cudaFreeAsync(p, s);
    double t0 = now_ns();
    for (int i = 0; i < reps; i++) {
        if (cudaMallocAsync(&p, bytes, s) != cudaSuccess)
            return -1;
        cudaFreeAsync(p, s);
    }
    double t = (now_ns() - t0) / reps;
    cudaStreamSynchronize(s);
    return t;
}

static void check_speed(remat_device *dev)
{
    remat_pool *pool = NULL;
    CHECK(remat_pool_create(dev, NULL, &pool) == REMAT_OK, "pool");
    if (!pool)
        return;
    cudaMemPool_t mp;
    cudaDeviceGetDefaultMemPool(&mp, 0);
    unsigned long long threshold = ~0ull;
    cudaMemPoolSetAttribute(mp, cudaMemPoolAttrReleaseThreshold, &threshold);
    cudaStream_t s;
    cudaStreamCreate(&s);
    static const size_t sizes[] = {256, 64 << 10, 1 << 20, 16 << 20, 64 << 20};
    for (int i = 0; i < 5; i++) {
        double r = time_pool(pool, sizes[i], 200000);
        double m = time_cuda_malloc(sizes[i], 200);
        double a = time_cuda_malloc_async(sizes[i], 20000, s);
        printf("pair %9zu B: remat %8.1f ns, cudaMalloc %10.1f ns (%7.1fx, target >= 100: %s), "
               "cudaMallocAsync %8.1f ns (%5.2fx, target >= 2: %s)\n",
               sizes[i], r, m, m / r, m / r >= 100 ? "met" : "MISSED", a, a / r,
               a / r >= 2 ? "met" : "MISSED");
    }
    cudaStreamDestroy(s);
    remat_pool_destroy(pool);
}

/* A block freed on one stream and reused on another is reused at once, with a device-side wait;
 * every event call may fail and the pool stays usable. */
static void check_streams(remat_device *dev)
{
    cudaStream_t s1, s2;
    cudaStreamCreate(&s1);
    cudaStreamCreate(&s2);
    remat_pool *pool = NULL;
    CHECK(remat_pool_create(dev, NULL, &pool) == REMAT_OK, "pool");
    void *a = remat_alloc(pool, 4 << 20, s1);
    CHECK(a != NULL, "alloc on s1");
    remat_free(pool, a);
    void *b = remat_alloc(pool, 4 << 20, s2);
    CHECK(b == a, "reuse on another stream");
    CHECK(remat_pool_record_stream(pool, b, s1) == REMAT_OK, "record_stream");
    remat_free(pool, b);
    uint64_t events = remat_pool_fault_calls(pool, REMAT_FAULT_EVENT);
    CHECK(events >= 3, "events recorded and waited on (%llu calls)", (unsigned long long)events);
    CHECK(remat_pool_check(pool) == REMAT_OK, "invariants");
    remat_pool_destroy(pool);
    for (uint64_t n = 1; n <= events + 2; n++) {
        pool = NULL;
        CHECK(remat_pool_create(dev, NULL, &pool) == REMAT_OK, "pool");
        if (!pool)
            break;
        CHECK(remat_pool_fault_at(pool, REMAT_FAULT_EVENT, n) == REMAT_OK, "fault_at");
        void *x = remat_alloc(pool, 4 << 20, s1);
        remat_free(pool, x);
        void *y = remat_alloc(pool, 4 << 20, s2);
        CHECK(y != NULL, "alloc after event fault %llu", (unsigned long long)n);
        if (y)
            (void)!remat_pool_record_stream(pool, y, s1); /* may meet the injected fault */
        remat_free(pool, y);
        CHECK(remat_pool_check(pool) == REMAT_OK, "invariants after event fault %llu", (unsigned long long)n);
        CHECK(remat_pool_empty_cache(pool) == REMAT_OK, "empty cache");
        remat_pool_destroy(pool);
    }
    cudaStreamDestroy(s1);
    cudaStreamDestroy(s2);
}

/* Expandable segments: data written through one block reads back; the range trims to nothing. */
static void check_expandable(remat_device *dev)
{
    remat_pool_config cfg = {.expandable_segments = 1};
    remat_pool *pool = NULL;
    remat_status st = remat_pool_create(dev, &cfg, &pool);
    CHECK(st == REMAT_OK, "expandable pool");
    if (st != REMAT_OK)
        return;
    size_t n = 12u << 20;
    unsigned char *host = malloc(n), *back = malloc(n);
    void *blocks[8];
    for (int i = 0; i < 8; i++) {
        blocks[i] = remat_alloc(pool, n + 4096 * (size_t)i, NULL);
        CHECK(blocks[i] != NULL, "expandable alloc %d", i);
    }
    for (int i = 0; i < 8 && blocks[i]; i++) {
        for (size_t k = 0; k < n; k++)
            host[k] = (unsigned char)(k * 7 + (size_t)i);
        CHECK(remat_device_copy(dev, blocks[i], host, n, REMAT_COPY_HOST_TO_DEVICE) == REMAT_OK,
              "copy in");
        CHECK(remat_device_copy(dev, back, blocks[i], n, REMAT_COPY_DEVICE_TO_HOST) == REMAT_OK,
              "copy out");
        CHECK(memcmp(host, back, n) == 0, "data through block %d", i);
    }
    remat_pool_stats s;
    CHECK(remat_pool_stats_get(pool, &s) == REMAT_OK, "stats");
    CHECK(s.reserved.current < s.allocated.current + (2u << 20), "slack under one granule");
    for (int i = 0; i < 8; i++)
        remat_free(pool, blocks[i]);
    CHECK(remat_pool_check(pool) == REMAT_OK, "invariants");
    CHECK(remat_pool_empty_cache(pool) == REMAT_OK, "trim");
    CHECK(remat_pool_stats_get(pool, &s) == REMAT_OK, "stats");
    CHECK(s.reserved.current == 0, "trimmed to nothing");
    free(host);
    free(back);
    remat_pool_destroy(pool);
}

int main(void)
{
    remat_device *dev = NULL;
    if (remat_device_open("cuda:0", &dev) != REMAT_OK) {
        printf("gpu_pool: %s\n", remat_last_error());
        return 1;
    }
    check_streams(dev);
    check_expandable(dev);
    check_speed(dev);
    remat_device_close(dev);
    printf("gpu_pool: %s (%d failed checks)\n", failures ? "FAILED" : "ok", failures);
    return failures ? 1 : 0;
}

#else

int main(void)
{
    printf("gpu_pool: this build has no CUDA (REMAT_CUDA=0)\n");
    return 1;
}

#endif
