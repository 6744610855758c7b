/* tests/unit/test_pool.c: the caching pool against an independent model: random operation sequences
 * (overlap, alignment, data survival, stats = the model's sums), limits and OOM, fault injection
 * at every device call, threads, bad frees, tags, snapshots, traces and `remat replay`. */
#include "tests/common/test_rng.h"
#include "alloc/device.h" /* only for the fake-event device below */
#include "remat.h"
#include "tests/common/cli_run.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

/* ==== Helpers: rng, devices ================================================================== */


/* Log-uniform in [1, max], with some exact edge sizes. */
static size_t rng_size(uint64_t *s, size_t max)
{
    switch (test_rng_below(s, 40)) {
    case 0: return 0;
    case 1: return 512;
    case 2: return 513;
    case 3: return MiB <= max ? MiB : max;
    case 4: return MiB + 1 <= max ? MiB + 1 : max;
    default: break;
    }
    int bits = 63 - __builtin_clzll(max);
    size_t hi = (size_t)1 << test_rng_below(s, (size_t)bits + 1);
    size_t v = hi + test_rng_below(s, hi);
    return v > max ? max : v;
}

static remat_device *open_dev(const char *spec)
{
    remat_device *dev = NULL;
    cr_assert_eq(remat_device_open(spec, &dev), REMAT_OK, "%s", remat_last_error());
    return dev;
}

static remat_pool *open_pool(remat_device *dev, const remat_pool_config *cfg)
{
    remat_pool *pool = NULL;
    cr_assert_eq(remat_pool_create(dev, cfg, &pool), REMAT_OK, "%s", remat_last_error());
    return pool;
}

static void assert_pool_ok(const remat_pool *pool)
{
    remat_status s = remat_pool_check(pool);
    cr_assert_eq(s, REMAT_OK, "invariant broken: %s", remat_last_error());
}

static size_t round512(size_t b) { return b ? (b + 511) / 512 * 512 : 512; }

/* ==== The model: live blocks sorted by address, and the sums the stats must equal ============ */

#define N_TAGS 4
static const char *tag_names[N_TAGS] = {NULL, "params", "act", "grads"};

typedef struct {
    uintptr_t addr;
    size_t bytes;
    uint64_t id;
    int tag;
} model_block;

typedef struct {
    model_block *v;
    size_t n, cap;
    uint64_t requested, allocated, peak_requested, peak_allocated, n_alloc, n_free;
    uint64_t tag_bytes[N_TAGS];
} model;

static void model_destroy(model *m) { free(m->v); }

/* Position of the first block at or after addr. */
static size_t model_lower(const model *m, uintptr_t addr)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (m->v[mid].addr < addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Adds a block, asserting alignment and no overlap with its neighbours in address order. */
static void model_add(model *m, uintptr_t addr, size_t bytes, uint64_t id, int tag)
{
    size_t size = round512(bytes);
    cr_assert_eq(addr % 512, 0, "pointer %p is not 512-byte aligned", (void *)addr);
    size_t i = model_lower(m, addr);
    if (i > 0)
        cr_assert_leq(m->v[i - 1].addr + round512(m->v[i - 1].bytes), addr,
                      "block %p overlaps the live block %p", (void *)addr, (void *)m->v[i - 1].addr);
    if (i < m->n)
        cr_assert_leq(addr + size, m->v[i].addr, "block %p (%zu bytes) overlaps the live block %p",
                      (void *)addr, size, (void *)m->v[i].addr);
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 256;
        m->v = realloc(m->v, m->cap * sizeof *m->v);
        cr_assert(m->v);
    }
    memmove(&m->v[i + 1], &m->v[i], (m->n - i) * sizeof *m->v);
    m->v[i] = (model_block){addr, bytes, id, tag};
    m->n++;
    m->requested += bytes, m->allocated += size, m->n_alloc++;
    m->tag_bytes[tag] += bytes;
    if (m->requested > m->peak_requested)
        m->peak_requested = m->requested;
    if (m->allocated > m->peak_allocated)
        m->peak_allocated = m->allocated;
}

static model_block model_remove(model *m, size_t i)
{
    model_block b = m->v[i];
    memmove(&m->v[i], &m->v[i + 1], (m->n - i - 1) * sizeof *m->v);
    m->n--;
    m->requested -= b.bytes, m->allocated -= round512(b.bytes), m->n_free++;
    m->tag_bytes[b.tag] -= b.bytes;
    return b;
}

/* The pool's stats must be exactly the model's sums (default config: every block is its request
 * rounded to 512 B), and reserved >= allocated >= requested. */
static void model_check_stats(const model *m, const remat_pool *pool)
{
    remat_pool_stats st;
    cr_assert_eq(remat_pool_stats_get(pool, &st), REMAT_OK);
    cr_assert_eq(st.requested.current, m->requested);
    cr_assert_eq(st.allocated.current, m->allocated);
    cr_assert_eq(st.requested.peak, m->peak_requested);
    cr_assert_eq(st.allocated.peak, m->peak_allocated);
    cr_assert_eq(st.n_alloc, m->n_alloc);
    cr_assert_eq(st.n_free, m->n_free);
    cr_assert_geq(st.reserved.current, st.allocated.current);
    cr_assert_geq(st.allocated.current, st.requested.current);
    cr_assert_geq(st.reserved.peak, st.reserved.current);
    cr_assert_leq(st.largest_free_block, st.reserved.current - st.allocated.current);
}

static void model_check_tags(const model *m, const remat_pool *pool)
{
    for (int t = 0; t < N_TAGS; t++) {
        remat_stat s;
        cr_assert_eq(remat_pool_tag_stats(pool, tag_names[t], &s), REMAT_OK);
        cr_assert_eq(s.current, m->tag_bytes[t], "tag %s", tag_names[t] ? tag_names[t] : "untagged");
    }
}

/* ---- Data written into host blocks must survive until their free ---------------------------- */

static uint8_t pattern_byte(uint64_t id, size_t i) { return (uint8_t)(id * 131 + i * 7 + (i >> 9)); }

/* Touches the whole block when small; else its head, tail and one byte every 64 KiB. */
#define PATTERN_EDGE 1024
static void pattern_visit(uint8_t *p, size_t bytes, uint64_t id, int write)
{
    for (size_t i = 0; i < bytes;) {
        if (write)
            p[i] = pattern_byte(id, i);
        else
            cr_assert_eq(p[i], pattern_byte(id, i), "byte %zu of block %llu (%zu bytes) changed", i,
                         (unsigned long long)id, bytes);
        if (i < PATTERN_EDGE || i + PATTERN_EDGE >= bytes)
            i++;
        else if (i + 65536 < bytes - PATTERN_EDGE)
            i += 65536;
        else
            i = bytes - PATTERN_EDGE;
    }
}

/* ==== Random operation sequences ============================================================= */

typedef struct {
    const char *spec;
    size_t max_size;
    long ops;
    int touch; /* host: write and verify data */
    uint64_t seed;
    int expandable;
} random_run;

static void run_random(const random_run *r)
{
    remat_device *dev = open_dev(r->spec);
    remat_pool_config cfg = {.expandable_segments = r->expandable};
    remat_pool *pool = open_pool(dev, &cfg);
    model m = {0};
    uint64_t rng = r->seed, next_id = 1;
    for (long op = 0; op < r->ops; op++) {
        size_t target = 64 + (size_t)(op / 50000 % 4) * 128; /* the live count drifts in phases */
        int do_alloc = m.n == 0 || (test_rng_below(&rng, 2 * target) >= m.n);
        if (do_alloc) {
            size_t bytes = rng_size(&rng, r->max_size);
            int tag = (int)test_rng_below(&rng, N_TAGS);
            remat_stream stream = (remat_stream)(uintptr_t)test_rng_below(&rng, 3);
            void *p = remat_alloc_tagged(pool, bytes, stream, tag_names[tag]);
            cr_assert(p, "alloc of %zu bytes failed: %s", bytes, remat_last_error());
            model_add(&m, (uintptr_t)p, bytes, next_id, tag);
            if (r->touch)
                pattern_visit(p, bytes, next_id, 1);
            next_id++;
        } else {
            model_block b = model_remove(&m, test_rng_below(&rng, m.n));
            if (r->touch)
                pattern_visit((uint8_t *)b.addr, b.bytes, b.id, 0);
            remat_free(pool, (void *)b.addr);
        }
        model_check_stats(&m, pool);
        if (op % 4999 == 0) {
            assert_pool_ok(pool);
            model_check_tags(&m, pool);
        }
        if (op % 100003 == 100002)
            cr_assert_eq(remat_pool_empty_cache(pool), REMAT_OK, "%s", remat_last_error());
    }
    assert_pool_ok(pool);
    while (m.n) {
        model_block b = model_remove(&m, m.n - 1);
        if (r->touch)
            pattern_visit((uint8_t *)b.addr, b.bytes, b.id, 0);
        remat_free(pool, (void *)b.addr);
    }
    model_check_stats(&m, pool);
    cr_assert_eq(remat_pool_empty_cache(pool), REMAT_OK);
    remat_pool_stats st;
    cr_assert_eq(remat_pool_stats_get(pool, &st), REMAT_OK);
    cr_assert_eq(st.reserved.current, 0, "an empty pool still holds %llu bytes",
                 (unsigned long long)st.reserved.current);
    if (!r->expandable)
        cr_assert_eq(st.n_device_alloc, st.n_device_free);
    assert_pool_ok(pool);
    model_destroy(&m);
    remat_pool_destroy(pool);
    remat_device_close(dev);
}

Test(pool, random_ops_on_sim_match_the_model, .timeout = 120)
{
    random_run r = {.spec = "sim:1TiB", .max_size = 256 * MiB, .ops = 1000000, .seed = 0x9e3779b97f4a7c15ull};
    run_random(&r);
}

Test(pool, random_ops_on_host_keep_data, .timeout = 120)
{
    random_run r = {.spec = "host", .max_size = 4 * MiB, .ops = 200000, .touch = 1, .seed = 12345};
    run_random(&r);
}

Test(pool, random_ops_with_expandable_segments, .timeout = 120)
{
    random_run r = {.spec = "sim:1TiB", .max_size = 256 * MiB, .ops = 200000, .seed = 31, .expandable = 1};
    run_random(&r);
    random_run h = {.spec = "host", .max_size = 4 * MiB, .ops = 50000, .touch = 1, .seed = 32, .expandable = 1};
    run_random(&h);
}

Test(soak, ten_million_random_ops, .timeout = 3600)
{
    const char *soak = getenv("REMAT_SOAK");
    if (!soak || strcmp(soak, "1") != 0)
        cr_skip_test("set REMAT_SOAK=1 (make soak) to run 10^7 operations");
    random_run r = {.spec = "sim:1TiB", .max_size = 256 * MiB, .ops = 10000000, .seed = 777};
    run_random(&r);
    random_run h = {.spec = "host", .max_size = 4 * MiB, .ops = 2000000, .touch = 1, .seed = 778};
    run_random(&h);
}

/* ==== Edge cases =============================================================================== */

Test(pool, size_max_and_null_and_zero)
{
    remat_device *dev = open_dev("sim:1GiB");
    remat_pool *pool = open_pool(dev, NULL);
    remat_clear_error();
    volatile size_t max = SIZE_MAX; /* a constant would be refused at compile time (alloc_size) */
    cr_assert_null(remat_alloc(pool, max, NULL));
    cr_assert(strstr(remat_last_error(), "cannot allocate"), "%s", remat_last_error());
    cr_assert_null(remat_alloc(pool, max - 100, NULL));
    cr_assert_null(remat_alloc(pool, ((size_t)1 << 62) + 1, NULL));
    remat_free(pool, NULL);
    void *a = remat_alloc(pool, 0, NULL), *b = remat_alloc(pool, 0, NULL);
    cr_assert(a && b && a != b);
    remat_pool_stats st;
    cr_assert_eq(remat_pool_stats_get(pool, &st), REMAT_OK);
    cr_assert_eq(st.requested.current, 0);
    cr_assert_eq(st.allocated.current, 1024);
    cr_assert_eq(st.n_ooms, 3);
    remat_free(pool, a), remat_free(pool, b);
    assert_pool_ok(pool);
    cr_assert_null(remat_alloc(NULL, 10, NULL));
    cr_assert_neq(remat_pool_create(NULL, NULL, &pool), REMAT_OK);
    remat_pool_destroy(pool);
    remat_pool_destroy(NULL);
    remat_device_close(dev);
}

Test(pool, bad_and_double_frees_leave_the_pool_intact)
{
    remat_device *dev = open_dev("host");
    remat_pool *pool = open_pool(dev, NULL);
    char *a = remat_alloc(pool, 4096, NULL), *b = remat_alloc(pool, 100, NULL);
    remat_pool_stats before, after;
    cr_assert_eq(remat_pool_stats_get(pool, &before), REMAT_OK);
    int on_stack;
    remat_clear_error();
    remat_free(pool, &on_stack);
    cr_assert(strstr(remat_last_error(), "not allocated by this pool"), "%s", remat_last_error());
    remat_free(pool, a + 512);
    cr_assert(strstr(remat_last_error(), "inside the block"), "%s", remat_last_error());
    remat_free(pool, a);
    remat_clear_error();
    remat_free(pool, a);
    cr_assert(strstr(remat_last_error(), "double free"), "%s", remat_last_error());
    cr_assert_eq(remat_pool_stats_get(pool, &after), REMAT_OK);
    cr_assert_eq(after.n_free, before.n_free + 1);
    cr_assert_eq(after.requested.current, before.requested.current - 4096);
    assert_pool_ok(pool);
    remat_free(pool, b);
    assert_pool_ok(pool);
    cr_assert_eq(remat_pool_record_stream(pool, a, (remat_stream)1), REMAT_EINVAL);
    remat_pool_destroy(pool);
    remat_device_close(dev);
}

/* ==== Policy ================================================================================== */

Test(pool, small_requests_share_2mib_segments)
{
    remat_device *dev = open_dev("sim:1GiB");
    remat_pool *pool = open_pool(dev, NULL);
    void *p[4096];
    for (int i = 0; i < 4096; i++)
        cr_assert(p[i] = remat_alloc(pool, 512, NULL));
    remat_pool_stats st;
    cr_assert_eq(remat_pool_stats_get(pool, &st), REMAT_OK);
    cr_assert_eq(st.reserved.current, 2 * MiB, "4096 x 512 B should fill exactly one 2 MiB segment");
    cr_assert_eq(st.n_device_alloc, 1);
    for (int i = 0; i < 4096; i += 2)
        remat_free(pool, p[i]);
    for (int i = 1; i < 4096; i += 2)
        remat_free(pool, p[i]);
    cr_assert_eq(remat_pool_stats_get(pool, &st), REMAT_OK);
    cr_assert_eq(st.largest_free_block, 2 * MiB, "freed neighbours must merge back");
    assert_pool_ok(pool);
    remat_pool_destroy(pool);
    remat_device_close(dev);
}

Test(pool, large_requests_grow_in_steps_and_best_fit)
{
    remat_device *dev = open_dev("sim:1TiB");
    remat_pool *pool = open_pool(dev, NULL);
    remat_pool_stats st;
    void *big = remat_alloc(pool, 80 * MiB, NULL); /* a quarter of 80 MiB: full 20 MiB buffers */
    void *a = remat_alloc(pool, 3 * MiB, NULL);
    cr_assert_eq(remat_pool_stats_get(pool, &st), REMAT_OK);
    cr_assert_eq(st.reserved.current, 80 * MiB + 18 * MiB,
                 "below 10 MiB: room for 6 x 3 MiB (<= 20 MiB)");
    void *b = remat_alloc(pool, 5 * MiB, NULL); /* fits in the same segment */
    cr_assert_eq(remat_pool_stats_get(pool, &st), REMAT_OK);
    cr_assert_eq(st.n_device_alloc, 2);
    void *c = remat_alloc(pool, 33 * MiB + 1, NULL);
    cr_assert_eq(remat_pool_stats_get(pool, &st), REMAT_OK);
    cr_assert_eq(st.reserved.current, 98 * MiB + 34 * MiB, "at least 10 MiB: rounded up to 2 MiB");
    remat_free(pool, c);
    remat_free(pool, a);
    /* free now: 3 MiB (segment 2, head), 10 MiB (segment 2, tail), 34 MiB: best fit for 2 MiB is
     * the 3 MiB hole */
    void *d = remat_alloc(pool, 2 * MiB, NULL);
    cr_assert_eq(d, a);
    remat_free(pool, b), remat_free(pool, d), remat_free(pool, big);
    assert_pool_ok(pool);
    remat_pool_destroy(pool);
    remat_device_close(dev);
}

Test(pool, buffers_of_a_small_pool_follow_its_size)
{
    remat_device *dev = open_dev("sim:1TiB");
    remat_pool *pool = open_pool(dev, NULL);
    remat_pool_stats st;
    void *s = remat_alloc(pool, 100 << 10, NULL); /* a 2 MiB small segment */
    void *a = remat_alloc(pool, 3 * MiB, NULL);   /* no large segment yet: one copy, 4 MiB */
    cr_assert_eq(remat_pool_stats_get(pool, &st), REMAT_OK);
    cr_assert_eq(st.reserved.current, 2 * MiB + 4 * MiB);
    void *b = remat_alloc(pool, 3 * MiB, NULL); /* a quarter of 4 MiB holds no copy: 4 MiB */
    cr_assert_eq(remat_pool_stats_get(pool, &st), REMAT_OK);
    cr_assert_eq(st.reserved.current, 2 * MiB + 8 * MiB);
    void *c = remat_alloc(pool, 40 * MiB, NULL); /* from 10 MiB: exact */
    void *d = remat_alloc(pool, 3 * MiB, NULL);  /* a quarter of 48 MiB: 4 copies, 12 MiB */
    cr_assert_eq(remat_pool_stats_get(pool, &st), REMAT_OK);
    cr_assert_eq(st.reserved.current, 2 * MiB + 48 * MiB + 12 * MiB);
    cr_assert_eq(st.n_device_alloc, 5);
    void *e = remat_alloc(pool, 9 * MiB, NULL); /* the 12 MiB buffer's 9 MiB tail serves it */
    cr_assert_eq(remat_pool_stats_get(pool, &st), REMAT_OK);
    cr_assert_eq(st.n_device_alloc, 5);
    remat_free(pool, a), remat_free(pool, b), remat_free(pool, c);
    remat_free(pool, s), remat_free(pool, d), remat_free(pool, e);
    assert_pool_ok(pool);
    remat_pool_destroy(pool);
    remat_device_close(dev);
}

/* A toy training loop: every step allocates the same activations of at least 10 MiB (exact
 * segments) and frees them all; after the first step, gradients under 10 MiB appear and stay. The
 * gradients must not take the freed activation segments (every later step would then need new
 * ones): the peak is the activations plus the gradients' own buffers, and steps 2 and 3 make no
 * device call. Plain best fit puts each gradient in a 12 MiB segment and regrows 6 of them. */
Test(pool, lasting_medium_blocks_spare_the_segments_of_large_ones)
{
    enum { ACTS = 8, GRADS = 6, STEPS = 3 };
    remat_device *dev = open_dev("sim:1TiB");
    remat_pool *pool = open_pool(dev, NULL);
    void *grads[GRADS];
    for (int step = 0; step < STEPS; step++) {
        void *acts[ACTS];
        for (int i = 0; i < ACTS; i++)
            cr_assert(acts[i] = remat_alloc(pool, 12 * MiB, NULL), "%s", remat_last_error());
        for (int i = ACTS; i-- > 0;)
            remat_free(pool, acts[i]);
        for (int i = 0; step == 0 && i < GRADS; i++)
            cr_assert(grads[i] = remat_alloc(pool, 9 * MiB, NULL), "%s", remat_last_error());
        assert_pool_ok(pool);
    }
    remat_pool_stats st;
    cr_assert_eq(remat_pool_stats_get(pool, &st), REMAT_OK);
    /* a quarter of >= 96 MiB of large segments caps the buffer at 20 MiB: two 9 MiB per 18 MiB */
    cr_assert_eq(st.reserved.peak, ACTS * 12 * MiB + GRADS / 2 * 18 * MiB, "peak %llu MiB",
                 (unsigned long long)(st.reserved.peak / MiB));
    cr_assert_eq(st.n_device_alloc, ACTS + GRADS / 2);
    cr_assert_eq(st.n_device_free, 0);
    for (int i = 0; i < GRADS; i++)
        remat_free(pool, grads[i]);
    assert_pool_ok(pool);
    remat_pool_destroy(pool);
    remat_device_close(dev);
}

/* The spared segment is a preference: when the pool cannot grow, a medium request gets it. */
Test(pool, a_spared_segment_serves_when_the_pool_cannot_grow)
{
    const char *specs[] = {"sim:1TiB", "sim:20MiB"};
    remat_pool_config limited = {.limit_bytes = 20 * MiB};
    for (int k = 0; k < 2; k++) {
        remat_device *dev = open_dev(specs[k]);
        remat_pool *pool = open_pool(dev, k == 0 ? &limited : NULL);
        void *big = remat_alloc(pool, 20 * MiB, NULL);
        cr_assert(big, "%s", remat_last_error());
        remat_free(pool, big);
        void *m = remat_alloc(pool, 4 * MiB, NULL);
        cr_assert(m, "%s: %s", specs[k], remat_last_error());
        remat_pool_stats st;
        cr_assert_eq(remat_pool_stats_get(pool, &st), REMAT_OK);
        cr_assert_leq(st.reserved.peak, 20 * MiB);
        cr_assert_eq(st.n_ooms, 0);
        remat_free(pool, m);
        assert_pool_ok(pool);
        remat_pool_destroy(pool);
        remat_device_close(dev);
    }
}

/* Before growing, the pool returns wholly free large segments smaller than the request, and only
 * those: a partly used or a larger free segment stays cached. */
Test(pool, growth_returns_free_segments_too_small_for_the_request)
{
    remat_device *dev = open_dev("sim:1TiB");
    remat_pool *pool = open_pool(dev, NULL);
    void *x = remat_alloc(pool, 12 * MiB, NULL), *y = remat_alloc(pool, 100 * MiB, NULL);
    void *z = remat_alloc(pool, 300 * MiB, NULL);
    remat_free(pool, x), remat_free(pool, y), remat_free(pool, z);
    void *a = remat_alloc(pool, 64 * MiB, NULL); /* best fit: the 100 MiB segment, no growth */
    cr_assert_eq(a, y);
    void *b = remat_alloc(pool, 200 * MiB, NULL); /* the 300 MiB one, no growth either */
    cr_assert_eq(b, z);
    remat_pool_stats st;
    cr_assert_eq(remat_pool_stats_get(pool, &st), REMAT_OK);
    cr_assert_eq(st.n_device_free, 0);
    void *c = remat_alloc(pool, 150 * MiB, NULL); /* grows; the free 12 MiB segment goes */
    cr_assert(c, "%s", remat_last_error());
    cr_assert_eq(remat_pool_stats_get(pool, &st), REMAT_OK);
    cr_assert_eq(st.n_device_free, 1);
    cr_assert_eq(st.reserved.current, (100 + 300 + 150) * MiB);
    remat_free(pool, a), remat_free(pool, b), remat_free(pool, c);
    assert_pool_ok(pool);
    remat_pool_destroy(pool);
    remat_device_close(dev);
}

Test(pool, oversize_blocks_are_not_split)
{
    remat_device *dev = open_dev("sim:1TiB");
    remat_pool_config cfg = {.max_split_bytes = 64 * MiB};
    remat_pool *pool = open_pool(dev, &cfg);
    void *big = remat_alloc(pool, 100 * MiB, NULL);
    remat_free(pool, big);
    remat_pool_stats st;
    void *small_large = remat_alloc(pool, 12 * MiB, NULL);
    cr_assert_eq(remat_pool_stats_get(pool, &st), REMAT_OK);
    cr_assert_eq(st.n_device_alloc, 2, "a 12 MiB request must not split the 100 MiB cached block");
    void *again = remat_alloc(pool, 90 * MiB, NULL);
    cr_assert_eq(again, big, "an oversize request wasting under 20 MiB reuses the block whole");
    size_t sz = 0;
    cr_assert_eq(remat_pool_block_size(pool, again, &sz), REMAT_OK);
    cr_assert_eq(sz, 100 * MiB);
    remat_free(pool, again);
    void *far = remat_alloc(pool, 70 * MiB, NULL); /* would waste 30 MiB */
    cr_assert_neq(far, big);
    remat_free(pool, far), remat_free(pool, small_large);
    assert_pool_ok(pool);
    remat_pool_destroy(pool);
    remat_device_close(dev);
}

Test(pool, streams_reuse_without_events_on_sim)
{
    remat_device *dev = open_dev("sim:1GiB");
    remat_pool *pool = open_pool(dev, NULL);
    void *a = remat_alloc(pool, 4096, (remat_stream)1);
    cr_assert_eq(remat_pool_record_stream(pool, a, (remat_stream)2), REMAT_OK);
    remat_free(pool, a);
    void *b = remat_alloc(pool, 4096, (remat_stream)2);
    cr_assert_eq(a, b, "host and sim run in order: a freed block is reusable on any stream");
    remat_free(pool, b);
    assert_pool_ok(pool);
    remat_pool_destroy(pool);
    remat_device_close(dev);
}

Test(pool, expandable_segments_grow_in_place_and_trim)
{
    remat_device *dev = open_dev("sim:1TiB");
    remat_pool_config cfg = {.expandable_segments = 1};
    remat_pool *pool = open_pool(dev, &cfg);
    size_t act = 12582912 + 4096; /* 12 MiB + 4 KiB: a plain segment would round to 14 MiB */
    void *p[10];
    for (int i = 0; i < 10; i++)
        cr_assert(p[i] = remat_alloc(pool, act, NULL), "%s", remat_last_error());
    for (int i = 1; i < 10; i++)
        cr_assert_eq((char *)p[i], (char *)p[i - 1] + act, "blocks follow each other in one range");
    remat_pool_stats st;
    cr_assert_eq(remat_pool_stats_get(pool, &st), REMAT_OK);
    cr_assert_lt(st.reserved.current, 10 * act + 2 * MiB, "reserved %llu", (unsigned long long)st.reserved.current);
    for (int i = 0; i < 10; i++)
        remat_free(pool, p[i]);
    assert_pool_ok(pool);
    cr_assert_eq(remat_pool_empty_cache(pool), REMAT_OK);
    cr_assert_eq(remat_pool_stats_get(pool, &st), REMAT_OK);
    cr_assert_eq(st.reserved.current, 0);
    remat_device_info info;
    cr_assert_eq(remat_device_info_get(dev, &info), REMAT_OK);
    cr_assert_eq(info.free_bytes, info.total_bytes);
    void *again = remat_alloc(pool, 30 * MiB, NULL); /* the range is reused after a full trim */
    cr_assert(again);
    remat_free(pool, again);
    assert_pool_ok(pool);
    remat_pool_destroy(pool);
    remat_pool_config bad = {.expandable_segments = 1, .no_cache = 1};
    cr_assert_eq(remat_pool_create(dev, &bad, &pool), REMAT_EINVAL);
    remat_device_close(dev);
}

/* ==== Streams with events: a sim device given fake events ===================================== */
/* host and sim have no events, so the fence logic (record on free, device-side wait on reuse by
 * another stream, split/merge sharing, fallback on failure) is checked on a sim device whose ops
 * table gains counting fake events. */

struct device_event {
    remat_stream stream;
    int recorded;
};

static struct {
    int created, destroyed, records, waits, syncs, same_stream_waits;
} fake;

static remat_status fake_event_create(remat_device *dev, device_event **out)
{
    (void)dev;
    *out = calloc(1, sizeof **out);
    fake.created++;
    return *out ? REMAT_OK : REMAT_ENOMEM;
}

static void fake_event_destroy(remat_device *dev, device_event *ev)
{
    (void)dev;
    fake.destroyed++;
    free(ev);
}

static remat_status fake_event_record(remat_device *dev, device_event *ev, remat_stream stream)
{
    (void)dev;
    ev->stream = stream;
    ev->recorded = 1;
    fake.records++;
    return REMAT_OK;
}

static remat_status fake_stream_wait(remat_device *dev, remat_stream stream, device_event *ev)
{
    (void)dev;
    cr_assert(ev->recorded, "waiting on an event never recorded");
    fake.waits++;
    fake.same_stream_waits += ev->stream == stream;
    return REMAT_OK;
}

static remat_status fake_event_query(remat_device *dev, device_event *ev, int *done)
{
    (void)dev, (void)ev;
    *done = 0;
    return REMAT_OK;
}

static remat_status fake_sync(remat_device *dev)
{
    (void)dev;
    fake.syncs++;
    return REMAT_OK;
}

static device_ops fake_ops;

static remat_device *open_fake_event_dev(void)
{
    remat_device *dev = open_dev("sim:1TiB");
    fake_ops = *dev->ops;
    fake_ops.event_create = fake_event_create;
    fake_ops.event_destroy = fake_event_destroy;
    fake_ops.event_record = fake_event_record;
    fake_ops.stream_wait = fake_stream_wait;
    fake_ops.event_query = fake_event_query;
    fake_ops.sync = fake_sync;
    dev->ops = &fake_ops;
    memset(&fake, 0, sizeof fake);
    return dev;
}

#define S1 ((remat_stream)(uintptr_t)1)
#define S2 ((remat_stream)(uintptr_t)2)
#define S3 ((remat_stream)(uintptr_t)3)

Test(pool, cross_stream_reuse_waits_on_the_device)
{
    remat_device *dev = open_fake_event_dev();
    remat_pool *pool = open_pool(dev, NULL);
    void *a = remat_alloc(pool, 4096, S1);
    remat_free(pool, a);
    cr_assert_eq(fake.records, 1, "a free records one event on the freeing stream");
    void *b = remat_alloc(pool, 4096, S1);
    cr_assert_eq(b, a);
    cr_assert_eq(fake.waits, 0, "reuse on the same stream needs no wait");
    remat_free(pool, b);
    void *c = remat_alloc(pool, 4096, S2);
    cr_assert_eq(c, a, "another stream reuses the block at once");
    cr_assert_eq(fake.waits, 1, "after a device-side wait on the freeing stream's event");
    cr_assert_eq(remat_pool_record_stream(pool, c, S3), REMAT_OK);
    remat_free(pool, c);
    cr_assert_eq(fake.records, 4, "freed on S2 and recorded on S3: two more events");
    void *d = remat_alloc(pool, 4096, S2);
    cr_assert_eq(fake.waits, 2, "S2 waits only for S3's event");
    remat_free(pool, d);
    cr_assert_eq(fake.same_stream_waits, 0);
    cr_assert_eq(fake.syncs, 0, "no host synchronisation on the normal path");
    assert_pool_ok(pool);
    remat_pool_destroy(pool);
    cr_assert_eq(fake.created, fake.destroyed, "every event is destroyed with the pool");
    remat_device_close(dev);
}

/* Random ops on three streams: fences are shared on split and kept on merge; nothing leaks. */
Test(pool, fences_survive_split_and_merge)
{
    remat_device *dev = open_fake_event_dev();
    remat_pool *pool = open_pool(dev, NULL);
    model m = {0};
    uint64_t rng = 17, id = 1;
    for (int op = 0; op < 20000; op++) {
        if (m.n < 40 && (m.n == 0 || test_rng_below(&rng, 2))) {
            size_t bytes = rng_size(&rng, 32 * MiB);
            void *p = remat_alloc(pool, bytes, (remat_stream)(uintptr_t)(1 + test_rng_below(&rng, 3)));
            cr_assert(p, "%s", remat_last_error());
            if (test_rng_below(&rng, 4) == 0)
                cr_assert_eq(remat_pool_record_stream(
                                 pool, p, (remat_stream)(uintptr_t)(1 + test_rng_below(&rng, 3))),
                             REMAT_OK);
            model_add(&m, (uintptr_t)p, bytes, id++, 0);
        } else {
            remat_free(pool, (void *)model_remove(&m, test_rng_below(&rng, m.n)).addr);
        }
        if (op % 1000 == 0)
            assert_pool_ok(pool);
        if (op % 5000 == 4999)
            cr_assert_eq(remat_pool_empty_cache(pool), REMAT_OK);
    }
    cr_assert_gt(fake.waits, 100);
    cr_assert_eq(fake.same_stream_waits, 0);
    while (m.n)
        remat_free(pool, (void *)model_remove(&m, 0).addr);
    model_check_stats(&m, pool);
    assert_pool_ok(pool);
    remat_pool_destroy(pool);
    cr_assert_eq(fake.created, fake.destroyed);
    model_destroy(&m);
    remat_device_close(dev);
}

/* A fixed two-stream workload; every allocation must succeed whatever event call fails. */
static void event_workload(remat_pool *pool)
{
    void *p[8];
    for (int round = 0; round < 6; round++) {
        for (int i = 0; i < 8; i++) {
            p[i] = remat_alloc(pool, (size_t)(i + 1) * 300 * KiB, (round + i) % 2 ? S1 : S2);
            cr_assert(p[i], "allocation failed after an event fault: %s", remat_last_error());
            if (i % 3 == 0)
                cr_assert_eq(remat_pool_record_stream(pool, p[i], S3), REMAT_OK);
        }
        for (int i = 0; i < 8; i++)
            remat_free(pool, p[i]);
        assert_pool_ok(pool);
    }
}

Test(pool, every_event_call_may_fail)
{
    remat_device *dev = open_fake_event_dev();
    remat_pool *pool = open_pool(dev, NULL);
    event_workload(pool);
    uint64_t calls = remat_pool_fault_calls(pool, REMAT_FAULT_EVENT);
    remat_pool_destroy(pool);
    cr_assert_gt(calls, 50);
    for (uint64_t n = 1; n <= calls; n++) {
        memset(&fake, 0, sizeof fake);
        pool = open_pool(dev, NULL);
        cr_assert_eq(remat_pool_fault_at(pool, REMAT_FAULT_EVENT, n), REMAT_OK);
        event_workload(pool);
        cr_assert_eq(fake.syncs, 1, "fault %llu: the pool falls back to one device sync",
                     (unsigned long long)n);
        cr_assert(strstr(remat_last_error(), "injected"), "the failure is reported: %s", remat_last_error());
        remat_pool_destroy(pool);
        cr_assert_eq(fake.created, fake.destroyed, "fault %llu leaks events", (unsigned long long)n);
    }
    remat_device_close(dev);
}

/* ==== Limit, OOM and recovery ================================================================ */

Test(pool, limit_acts_as_a_smaller_card)
{
    remat_device *dev = open_dev("sim:1TiB");
    remat_pool_config cfg = {.limit_bytes = 100 * MiB};
    remat_pool *pool = open_pool(dev, &cfg);
    void *a = remat_alloc(pool, 60 * MiB, NULL);
    cr_assert(a);
    remat_clear_error();
    cr_assert_null(remat_alloc(pool, 60 * MiB, NULL));
    const char *msg = remat_last_error();
    static const char *parts[] = {"cannot allocate 60.0 MiB", "62914560 bytes", "limit 100 MiB",
                                  "60.0 MiB reserved", "60.0 MiB allocated", "0 B cached but free",
                                  "largest free block 0 B", "fragmentation 0.0%"};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        cr_assert(strstr(msg, parts[i]), "'%s' lacks '%s'", msg, parts[i]);
    remat_pool_stats st;
    cr_assert_eq(remat_pool_stats_get(pool, &st), REMAT_OK);
    cr_assert_eq(st.n_ooms, 1);
    cr_assert_leq(st.reserved.peak, 100 * MiB);
    remat_free(pool, a);
    void *b = remat_alloc(pool, 60 * MiB, NULL);
    cr_assert_eq(b, a, "the pool recovers and reuses its cache");
    remat_free(pool, b);
    assert_pool_ok(pool);
    remat_pool_destroy(pool);
    remat_device_close(dev);
}

/* Fills the cache with small segments, then asks for a large block that only fits once they go. */
static void check_release_and_retry(const char *spec, const remat_pool_config *cfg)
{
    remat_device *dev = open_dev(spec);
    remat_pool *pool = open_pool(dev, cfg);
    void *p[32];
    for (int i = 0; i < 32; i++)
        cr_assert(p[i] = remat_alloc(pool, MiB, NULL), "%s", remat_last_error());
    for (int i = 0; i < 32; i++)
        remat_free(pool, p[i]);
    remat_pool_stats st;
    cr_assert_eq(remat_pool_stats_get(pool, &st), REMAT_OK);
    cr_assert_eq(st.reserved.current, 32 * MiB);
    void *big = remat_alloc(pool, 48 * MiB, NULL);
    cr_assert(big, "the cache should have been released: %s", remat_last_error());
    cr_assert_eq(remat_pool_stats_get(pool, &st), REMAT_OK);
    cr_assert_eq(st.n_retries, 1);
    cr_assert_eq(st.n_ooms, 0);
    cr_assert_eq(st.reserved.current, 48 * MiB);
    remat_free(pool, big);
    assert_pool_ok(pool);
    remat_pool_destroy(pool);
    remat_device_close(dev);
}

Test(pool, oom_releases_the_cache_and_retries)
{
    remat_pool_config cfg = {.limit_bytes = 64 * MiB};
    check_release_and_retry("sim:1TiB", &cfg);
    check_release_and_retry("sim:64MiB", NULL); /* the device itself is full */
}

Test(pool, device_oom_message_names_device_free_memory)
{
    remat_device *dev = open_dev("sim:64MiB");
    remat_pool *pool = open_pool(dev, NULL);
    cr_assert_null(remat_alloc(pool, 100 * MiB, NULL));
    cr_assert(strstr(remat_last_error(), "64.0 MiB free on the device"), "%s", remat_last_error());
    cr_assert(strstr(remat_last_error(), "sim:"), "%s", remat_last_error());
    remat_pool_destroy(pool);
    remat_device_close(dev);
}

/* ==== Fault injection ========================================================================= */

/* A fixed workload that tolerates failed allocations; returns how many failed. Every failure must
 * come with a message; the pool's invariants hold throughout. */
static int faulty_workload(remat_pool *pool, uint64_t seed)
{
    uint64_t rng = seed + 1; /* xorshift must not start at 0 */
    void *live[64] = {0};
    int failed = 0;
    for (int op = 0; op < 600; op++) {
        int i = (int)test_rng_below(&rng, 64);
        if (live[i]) {
            remat_free(pool, live[i]);
            live[i] = NULL;
            continue;
        }
        size_t bytes = rng_size(&rng, 64 * MiB);
        remat_clear_error();
        live[i] = remat_alloc(pool, bytes, NULL);
        if (!live[i]) {
            failed++;
            cr_assert(strstr(remat_last_error(), "cannot allocate"), "failure without a message: '%s'",
                      remat_last_error());
        }
        if (op % 50 == 0)
            assert_pool_ok(pool);
        if (op % 100 == 99) { /* start over: segments come and go, more device calls */
            for (int k = 0; k < 64; k++)
                remat_free(pool, live[k]), live[k] = NULL;
            (void)!remat_pool_empty_cache(pool); /* may meet an injected device fault */
        }
    }
    for (int i = 0; i < 64; i++)
        remat_free(pool, live[i]);
    assert_pool_ok(pool);
    return failed;
}

/* After a workload: everything can be returned and nothing leaked on the device. */
static void assert_returns_everything(remat_pool *pool, remat_device *dev)
{
    remat_status s = remat_pool_empty_cache(pool);
    if (s != REMAT_OK) /* an injected free failure keeps the segment; the next try frees it */
        s = remat_pool_empty_cache(pool);
    cr_assert_eq(s, REMAT_OK, "%s", remat_last_error());
    remat_pool_stats st;
    cr_assert_eq(remat_pool_stats_get(pool, &st), REMAT_OK);
    cr_assert_eq(st.reserved.current, 0);
    remat_device_info info;
    cr_assert_eq(remat_device_info_get(dev, &info), REMAT_OK);
    cr_assert_eq(info.free_bytes, info.total_bytes, "the device still holds %llu bytes",
                 (unsigned long long)(info.total_bytes - info.free_bytes));
}

Test(pool, every_device_allocation_may_fail, .timeout = 120)
{
    remat_device *dev = open_dev("sim:256MiB");
    remat_pool_config cfg = {.limit_bytes = 160 * MiB}; /* tight: OOM and retry paths run too */
    remat_pool *pool = open_pool(dev, &cfg);
    faulty_workload(pool, 99);
    uint64_t calls = remat_pool_fault_calls(pool, REMAT_FAULT_DEVICE_ALLOC);
    assert_returns_everything(pool, dev);
    remat_pool_destroy(pool);
    cr_assert_gt(calls, 20, "the workload should make many device calls (made %llu)",
                 (unsigned long long)calls);
    int failed = 0;
    for (uint64_t n = 1; n <= calls; n++) {
        pool = open_pool(dev, &cfg);
        cr_assert_eq(remat_pool_fault_at(pool, REMAT_FAULT_DEVICE_ALLOC, n), REMAT_OK);
        failed += faulty_workload(pool, 99);
        assert_returns_everything(pool, dev);
        remat_pool_destroy(pool);
    }
    cr_assert_gt(failed, 0, "injected failures should surface as NULL");
    remat_device_close(dev);
}

Test(pool, random_device_failures)
{
    remat_device *dev = open_dev("sim:1GiB");
    remat_pool *pool = open_pool(dev, NULL);
    uint64_t rng = 5;
    int failed = 0;
    for (int round = 0; round < 40; round++) {
        cr_assert_eq(remat_pool_fault_at(pool, REMAT_FAULT_DEVICE_ALLOC, 1 + test_rng_below(&rng, 3)),
                     REMAT_OK);
        cr_assert_eq(remat_pool_fault_at(pool, REMAT_FAULT_DEVICE_FREE, 1 + test_rng_below(&rng, 3)),
                     REMAT_OK);
        failed += faulty_workload(pool, round);
        cr_assert_eq(remat_pool_empty_cache(pool), REMAT_OK);
        assert_pool_ok(pool);
    }
    cr_assert_gt(failed, 0, "some allocations should have failed");
    cr_assert_eq(remat_pool_fault_at(pool, REMAT_FAULT_DEVICE_FREE, 0), REMAT_OK);
    assert_returns_everything(pool, dev);
    remat_pool_destroy(pool);
    remat_device_close(dev);
}

Test(pool, every_device_free_may_fail)
{
    remat_device *dev = open_dev("sim:1GiB");
    for (uint64_t n = 1; n <= 8; n++) {
        remat_pool *pool = open_pool(dev, NULL);
        faulty_workload(pool, 7);
        static const size_t sizes[] = {1000, 100 * KiB, 5 * MiB, 30 * MiB};
        void *keep[4];
        for (int i = 0; i < 4; i++) /* leave three segments cached */
            cr_assert(keep[i] = remat_alloc(pool, sizes[i], NULL));
        for (int i = 0; i < 4; i++)
            remat_free(pool, keep[i]);
        uint64_t before = remat_pool_fault_calls(pool, REMAT_FAULT_DEVICE_FREE);
        cr_assert_eq(remat_pool_fault_at(pool, REMAT_FAULT_DEVICE_FREE, n), REMAT_OK);
        remat_status s = remat_pool_empty_cache(pool);
        uint64_t frees = remat_pool_fault_calls(pool, REMAT_FAULT_DEVICE_FREE) - before;
        cr_assert_eq(frees, 3);
        if (n <= 3) {
            cr_assert_eq(s, REMAT_EDEVICE);
            cr_assert(strstr(remat_last_error(), "injected"), "%s", remat_last_error());
        } else {
            cr_assert_eq(s, REMAT_OK);
        }
        assert_pool_ok(pool);
        assert_returns_everything(pool, dev);
        remat_pool_destroy(pool);
    }
    remat_device_close(dev);
}

Test(pool, every_mapping_may_fail_in_expandable_mode, .timeout = 120)
{
    remat_device *dev = open_dev("sim:512MiB");
    remat_pool_config cfg = {.limit_bytes = 200 * MiB, .expandable_segments = 1};
    remat_pool *pool = open_pool(dev, &cfg);
    faulty_workload(pool, 3);
    uint64_t calls = remat_pool_fault_calls(pool, REMAT_FAULT_DEVICE_ALLOC);
    uint64_t frees = remat_pool_fault_calls(pool, REMAT_FAULT_DEVICE_FREE);
    remat_pool_destroy(pool);
    for (uint64_t n = 1; n <= calls; n++) {
        pool = open_pool(dev, &cfg);
        cr_assert_eq(remat_pool_fault_at(pool, REMAT_FAULT_DEVICE_ALLOC, n), REMAT_OK);
        faulty_workload(pool, 3);
        assert_returns_everything(pool, dev);
        remat_pool_destroy(pool);
    }
    for (uint64_t n = 1; n <= frees; n++) {
        pool = open_pool(dev, &cfg);
        cr_assert_eq(remat_pool_fault_at(pool, REMAT_FAULT_DEVICE_FREE, n), REMAT_OK);
        faulty_workload(pool, 3);
        assert_returns_everything(pool, dev);
        remat_pool_destroy(pool);
    }
    remat_device_close(dev);
}

/* ==== Threads ================================================================================= */

typedef struct {
    remat_pool *pool;
    uint64_t seed;
    long ops;
} thread_arg;

static void *thread_main(void *argp)
{
    thread_arg *a = argp;
    void *live[128] = {0};
    size_t bytes[128];
    uint64_t ids[128], rng = a->seed, next = a->seed << 32;
    for (long op = 0; op < a->ops; op++) {
        int i = (int)test_rng_below(&rng, 128);
        if (live[i]) {
            pattern_visit(live[i], bytes[i], ids[i], 0);
            remat_free(a->pool, live[i]);
            live[i] = NULL;
            continue;
        }
        bytes[i] = test_rng_below(&rng, 16) ? rng_size(&rng, 64 * KiB) : rng_size(&rng, 3 * MiB);
        ids[i] = next++;
        live[i] = remat_alloc(a->pool, bytes[i], (remat_stream)(uintptr_t)(a->seed % 2));
        cr_assert(live[i], "%s", remat_last_error());
        cr_assert_eq((uintptr_t)live[i] % 512, 0);
        pattern_visit(live[i], bytes[i], ids[i], 1);
    }
    for (int i = 0; i < 128; i++)
        if (live[i]) {
            pattern_visit(live[i], bytes[i], ids[i], 0);
            remat_free(a->pool, live[i]);
        }
    return NULL;
}

Test(pool, four_threads_share_one_pool, .timeout = 120)
{
    remat_device *dev = open_dev("host");
    remat_pool *pool = open_pool(dev, NULL);
    pthread_t th[4];
    thread_arg args[4];
    for (int t = 0; t < 4; t++) {
        args[t] = (thread_arg){pool, (uint64_t)t + 1, 100000};
        cr_assert_eq(pthread_create(&th[t], NULL, thread_main, &args[t]), 0);
    }
    for (int t = 0; t < 4; t++)
        pthread_join(th[t], NULL);
    remat_pool_stats st;
    cr_assert_eq(remat_pool_stats_get(pool, &st), REMAT_OK);
    cr_assert_eq(st.requested.current, 0);
    cr_assert_eq(st.allocated.current, 0);
    cr_assert_eq(st.n_alloc, st.n_free);
    assert_pool_ok(pool);
    remat_pool_destroy(pool);
    remat_device_close(dev);
}

/* The pool is biased to the first thread that allocates (alloc/pool_lock.c): that thread enters
 * without the lock until another thread takes it. Many short rounds, each handing a fresh pool
 * from its owner to a second thread while the owner is busy in it, so the hand-over happens at
 * every point of the owner's alloc and free; blocks carry patterns, so an overlap shows. */
static void *stats_reader_main(void *argp)
{
    remat_pool *pool = argp;
    remat_pool_stats st;
    for (int i = 0; i < 50; i++) {
        cr_assert_eq(remat_pool_stats_get(pool, &st), REMAT_OK);
        cr_assert(st.allocated.current <= st.reserved.current);
    }
    return NULL;
}

Test(pool, owner_bias_is_revoked_safely_while_the_owner_runs, .timeout = 120)
{
    remat_device *dev = open_dev("host");
    for (int round = 0; round < 600; round++) {
        remat_pool *pool = open_pool(dev, NULL);
        remat_free(pool, remat_alloc(pool, 256, NULL)); /* this thread is now the owner */
        pthread_t th;
        thread_arg mine = {pool, (uint64_t)round * 2 + 1, 1000};
        thread_arg theirs = {pool, (uint64_t)round * 2 + 2, 1000};
        if (round % 2)
            cr_assert_eq(pthread_create(&th, NULL, thread_main, &theirs), 0);
        else
            cr_assert_eq(pthread_create(&th, NULL, stats_reader_main, pool), 0);
        thread_main(&mine);
        pthread_join(th, NULL);
        thread_main(&mine); /* and the old owner keeps working, now through the lock */
        remat_pool_stats st;
        cr_assert_eq(remat_pool_stats_get(pool, &st), REMAT_OK);
        cr_assert_eq(st.requested.current, 0);
        cr_assert_eq(st.n_alloc, st.n_free);
        assert_pool_ok(pool);
        remat_pool_destroy(pool);
    }
    remat_device_close(dev);
}

/* ==== Tags, peaks, snapshot =================================================================== */

Test(pool, tags_count_requested_bytes)
{
    remat_device *dev = open_dev("sim:1GiB");
    remat_pool *pool = open_pool(dev, NULL);
    void *p = remat_alloc_tagged(pool, 1000, NULL, "params");
    void *a1 = remat_alloc_tagged(pool, 2000, NULL, "act");
    void *a2 = remat_alloc_tagged(pool, 2000, NULL, "act");
    void *u = remat_alloc(pool, 300, NULL);
    remat_free(pool, a1);
    remat_stat s;
    cr_assert_eq(remat_pool_tag_stats(pool, "act", &s), REMAT_OK);
    cr_assert_eq(s.current, 2000);
    cr_assert_eq(s.peak, 4000);
    cr_assert_eq(remat_pool_tag_stats(pool, NULL, &s), REMAT_OK);
    cr_assert_eq(s.current, 300);
    cr_assert_eq(remat_pool_tag_stats(pool, "never", &s), REMAT_OK);
    cr_assert_eq(s.current, 0);
    cr_assert_eq(remat_pool_tag_count(pool), 3);
    char name[64];
    cr_assert_eq(remat_pool_tag_at(pool, 1, name, sizeof name, &s), REMAT_OK);
    cr_assert_str_eq(name, "params");
    cr_assert_eq(s.current, 1000);
    cr_assert_neq(remat_pool_tag_at(pool, 3, name, sizeof name, &s), REMAT_OK);
    cr_assert_null(remat_alloc_tagged(pool, 10, NULL, "two words"));
    cr_assert(strstr(remat_last_error(), "bad allocation tag"), "%s", remat_last_error());
    cr_assert_null(remat_alloc_tagged(pool, 10, NULL, ""));
    cr_assert_eq(remat_pool_reset_peaks(pool), REMAT_OK);
    cr_assert_eq(remat_pool_tag_stats(pool, "act", &s), REMAT_OK);
    cr_assert_eq(s.peak, 2000);
    remat_pool_stats st;
    cr_assert_eq(remat_pool_stats_get(pool, &st), REMAT_OK);
    cr_assert_eq(st.requested.peak, 3300);
    remat_free(pool, p), remat_free(pool, a2), remat_free(pool, u);
    assert_pool_ok(pool);
    remat_pool_destroy(pool);
    remat_device_close(dev);
}

Test(pool, snapshot_lists_every_segment_and_block)
{
    remat_device *dev = open_dev("sim:1TiB");
    remat_pool *pool = open_pool(dev, NULL);
    void *a = remat_alloc_tagged(pool, 5000, (remat_stream)3, "act");
    void *b = remat_alloc(pool, 30 * MiB, NULL);
    void *c = remat_alloc(pool, 700, NULL);
    remat_free(pool, a);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_eq(remat_pool_snapshot(pool, f), REMAT_OK);
    fclose(f);
    cJSON *j = cJSON_Parse(buf);
    cr_assert(j, "snapshot is not JSON: %s", buf);
    cJSON *segs = cJSON_GetObjectItem(j, "segments");
    cr_assert_eq(cJSON_GetArraySize(segs), 2);
    double reserved = 0, allocated = 0;
    int n_alloc = 0;
    cJSON *seg, *blk;
    cJSON_ArrayForEach(seg, segs)
    {
        reserved += cJSON_GetObjectItem(seg, "size")->valuedouble;
        double off = 0;
        cJSON_ArrayForEach(blk, cJSON_GetObjectItem(seg, "blocks"))
        {
            cr_assert_eq(cJSON_GetObjectItem(blk, "offset")->valuedouble, off);
            off += cJSON_GetObjectItem(blk, "size")->valuedouble;
            if (strcmp(cJSON_GetObjectItem(blk, "state")->valuestring, "allocated") == 0)
                n_alloc++, allocated += cJSON_GetObjectItem(blk, "size")->valuedouble;
        }
        cr_assert_eq(off, cJSON_GetObjectItem(seg, "size")->valuedouble);
    }
    remat_pool_stats st;
    cr_assert_eq(remat_pool_stats_get(pool, &st), REMAT_OK);
    cr_assert_eq(n_alloc, 2);
    cr_assert_eq((uint64_t)reserved, st.reserved.current);
    cr_assert_eq((uint64_t)allocated, st.allocated.current);
    cJSON *stats = cJSON_GetObjectItem(j, "stats");
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(stats, "requested"), "current")->valuedouble,
                 30 * MiB + 700);
    cJSON_Delete(j);
    free(buf);
    cr_assert_lt(remat_pool_fragmentation(pool), 1.0);
    cr_assert_gt(remat_pool_fragmentation(pool), 0.0);
    remat_free(pool, b), remat_free(pool, c);
    remat_pool_destroy(pool);
    remat_device_close(dev);
}

/* ==== Traces and replay ======================================================================= */

Test(pool, trace_round_trip_gives_the_same_peaks)
{
    remat_device *dev = open_dev("sim:1TiB");
    remat_pool *pool = open_pool(dev, NULL);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    void *before = remat_alloc(pool, 12345, NULL); /* allocated before recording: never in it */
    cr_assert_eq(remat_pool_trace_begin(pool, f), REMAT_OK);
    cr_assert_neq(remat_pool_trace_begin(pool, f), REMAT_OK);
    uint64_t rng = 42;
    void *live[200] = {0};
    for (int op = 0; op < 20000; op++) {
        int i = (int)test_rng_below(&rng, 200);
        if (live[i]) {
            remat_free(pool, live[i]);
            live[i] = NULL;
        } else {
            live[i] = remat_alloc_tagged(pool, rng_size(&rng, 64 * MiB),
                                         (remat_stream)(uintptr_t)test_rng_below(&rng, 2),
                                         tag_names[test_rng_below(&rng, N_TAGS)]);
        }
    }
    remat_free(pool, before);
    cr_assert_eq(remat_pool_trace_end(pool), REMAT_OK);
    fclose(f);
    remat_pool_stats st;
    cr_assert_eq(remat_pool_stats_get(pool, &st), REMAT_OK);

    FILE *in = fmemopen(buf, len, "r");
    remat_trace *trace = NULL;
    cr_assert_eq(remat_trace_parse(in, "mem", &trace), REMAT_OK, "%s", remat_last_error());
    fclose(in);
    cr_assert_eq(remat_trace_events(trace), st.n_alloc - 1 + st.n_free - 1);
    remat_replay_result r;
    cr_assert_eq(remat_trace_replay(trace, dev, NULL, &r), REMAT_OK, "%s", remat_last_error());
    /* The recorded pool also held `before` (12345 B in a 2 MiB segment) for the whole run. */
    cr_assert_eq(r.peak_requested + 12345, st.requested.peak);
    cr_assert_eq(r.peak_allocated + 12800, st.allocated.peak);
    /* Reserved bytes need not match: the recorded pool's extra small segment changes where
     * small blocks land, and with buffer sizes that follow the pool's size (docs/allocator.md)
     * the layouts then diverge; trace_replay_is_exact_when_recorded_from_scratch checks the
     * exact case. The replay never holds more than the recording did with the extra block. */
    cr_assert_leq(r.peak_reserved, st.reserved.peak);
    remat_replay_result r2;
    cr_assert_eq(remat_trace_replay(trace, dev, NULL, &r2), REMAT_OK);
    cr_assert_eq(r2.peak_reserved, r.peak_reserved, "replays are deterministic");
    cr_assert_eq(r2.device_allocs, r.device_allocs);
    remat_pool_config base = {.no_cache = 1};
    cr_assert_eq(remat_trace_replay(trace, dev, &base, &r2), REMAT_OK);
    cr_assert_eq(r2.peak_reserved, r.peak_allocated, "no cache: reserved is what was allocated");
    cr_assert_eq(r2.device_allocs, st.n_alloc - 1);
    remat_trace_free(trace);
    free(buf);
    for (int i = 0; i < 200; i++)
        remat_free(pool, live[i]);
    remat_pool_destroy(pool);
    remat_device_close(dev);
}

Test(pool, trace_replay_is_exact_when_recorded_from_scratch)
{
    remat_device *dev = open_dev("sim:1TiB");
    remat_pool *pool = open_pool(dev, NULL);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_eq(remat_pool_trace_begin(pool, f), REMAT_OK);
    uint64_t rng = 7;
    void *live[50] = {0};
    for (int op = 0; op < 5000; op++) {
        int i = (int)test_rng_below(&rng, 50);
        if (live[i])
            remat_free(pool, live[i]), live[i] = NULL;
        else
            live[i] = remat_alloc(pool, rng_size(&rng, 128 * MiB), NULL);
    }
    cr_assert_eq(remat_pool_trace_end(pool), REMAT_OK);
    fclose(f);
    remat_pool_stats st;
    cr_assert_eq(remat_pool_stats_get(pool, &st), REMAT_OK);
    FILE *in = fmemopen(buf, len, "r");
    remat_trace *trace = NULL;
    cr_assert_eq(remat_trace_parse(in, "mem", &trace), REMAT_OK, "%s", remat_last_error());
    fclose(in);
    remat_replay_result r;
    cr_assert_eq(remat_trace_replay(trace, dev, NULL, &r), REMAT_OK);
    cr_assert_eq(r.peak_requested, st.requested.peak);
    cr_assert_eq(r.peak_allocated, st.allocated.peak);
    cr_assert_eq(r.peak_reserved, st.reserved.peak);
    cr_assert_eq(r.device_allocs, st.n_device_alloc);
    cr_assert_eq(r.device_frees, st.n_device_free);
    remat_trace_free(trace);
    free(buf);
    for (int i = 0; i < 50; i++)
        remat_free(pool, live[i]);
    remat_pool_destroy(pool);
    remat_device_close(dev);
}

static remat_status parse_text(const char *text, remat_trace **out)
{
    FILE *in = fmemopen((void *)text, strlen(text), "r");
    remat_status s = remat_trace_parse(in, "t", out);
    fclose(in);
    return s;
}

Test(pool, trace_parser_names_the_bad_line)
{
    static const struct {
        const char *text;
        const char *why;
    } bad[] = {
        {"a 1 10\nf 2\n", "t:2: free of id 2"},
        {"a 1 10\na 1 20\n", "t:2: allocation id 1 is already live"},
        {"# c\n\na 1\n", "t:3: expected"},
        {"a 1 10 0 act extra\n", "t:1: expected"},
        {"a x 10\n", "t:1: bad allocation id"},
        {"a 1 -5\n", "t:1: bad byte count"},
        {"a 1 5 s\n", "t:1: bad stream"},
        {"a 1 5 0 b@d\n", "t:1: bad tag"},
        {"z 1\n", "t:1: unknown event"},
        {"f\n", "t:1: expected 'f <id>'"},
        {"a 1 99999999999999999999999\n", "t:1: bad byte count"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        remat_trace *t = NULL;
        cr_assert_eq(parse_text(bad[i].text, &t), REMAT_EPARSE, "accepted: %s", bad[i].text);
        cr_assert(strstr(remat_last_error(), bad[i].why), "'%s' lacks '%s'", remat_last_error(), bad[i].why);
        cr_assert_null(t);
    }
    remat_trace *t = NULL;
    cr_assert_eq(parse_text("# remat-trace 1\na 1 10\na 2 20 1\na 3 30 2 act # comment\nf 1\na 1 5\n", &t),
                 REMAT_OK, "%s", remat_last_error());
    cr_assert_eq(remat_trace_events(t), 5);
    remat_trace_free(t);
}

/* ---- The CLI --------------------------------------------------------------------------------- */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
}

Test(pool, replay_cli_exit_codes_and_json)
{
    char dir[] = "/tmp/remat-replay-XXXXXX";
    cr_assert(mkdtemp(dir));
    char good[256], bad[256], unknown[256], big[256];
    snprintf(good, sizeof good, "%s/good.trace", dir);
    snprintf(bad, sizeof bad, "%s/bad.trace", dir);
    snprintf(unknown, sizeof unknown, "%s/unknown.trace", dir);
    snprintf(big, sizeof big, "%s/big.trace", dir);
    write_file(good, "# remat-trace 1\na 1 1000 0 act\na 2 5000000 1\nf 1\na 3 300\nf 2\nf 3\n");
    write_file(bad, "a 1 1000\n\nbogus line\n");
    write_file(unknown, "a 1 1000\nf 1\nf 1\n");
    write_file(big, "a 1 2000000000\n");
    cli_result *res = malloc(sizeof *res);

    cli_run(res, "replay %s --json --baseline", cli_sh_quote(good));
    cr_assert_eq(res->code, 0, "%s", res->err);
    cJSON *j = cJSON_Parse(res->out);
    cr_assert(j, "not JSON: %s", res->out);
    static const char *keys[] = {"events", "peak_requested", "peak_allocated", "peak_reserved",
                                 "device_allocs", "device_frees", "ns_per_op"};
    for (size_t i = 0; i < 7; i++) {
        cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(j, keys[i])), "missing %s", keys[i]);
        cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "baseline"), keys[i])));
    }
    cr_assert_eq(cJSON_GetObjectItem(j, "events")->valuedouble, 6);
    cr_assert_eq(cJSON_GetObjectItem(j, "peak_requested")->valuedouble, 5001000);
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "baseline"), "device_allocs")->valuedouble, 3);
    cJSON_Delete(j);

    cli_run(res, "replay %s --json", cli_sh_quote(good));
    cr_assert_eq(res->code, 0);
    j = cJSON_Parse(res->out);
    cr_assert(j && !cJSON_GetObjectItem(j, "baseline"));
    cJSON_Delete(j);

    cli_run(res, "replay %s", cli_sh_quote(good));
    cr_assert_eq(res->code, 0);
    cr_assert(strstr(res->out, "peak reserved"), "%s", res->out);

    cli_run(res, "replay %s", cli_sh_quote(bad));
    cr_assert_eq(res->code, 2);
    cr_assert(strstr(res->err, ":3:"), "should name line 3: %s", res->err);
    cli_run(res, "replay %s", cli_sh_quote(unknown));
    cr_assert_eq(res->code, 2);
    cr_assert(strstr(res->err, ":3:"), "should name line 3: %s", res->err);
    cli_run(res, "replay %s --device sim:1GB", cli_sh_quote(big));
    cr_assert_eq(res->code, 1, "OOM is a runtime failure: %s", res->err);
    cr_assert(strstr(res->err, "cannot allocate"), "%s", res->err);
    cli_run(res, "replay %s --limit 1GiB", cli_sh_quote(big));
    cr_assert_eq(res->code, 1);
    cli_run(res, "replay '%s/none.trace'", dir);
    cr_assert_eq(res->code, 2);
    cli_run(res, "replay");
    cr_assert_eq(res->code, 2);
    cli_run(res, "replay %s --device nowhere", cli_sh_quote(good));
    cr_assert_eq(res->code, 2);
    cli_run(res, "replay %s --bogus", cli_sh_quote(good));
    cr_assert_eq(res->code, 2);
    cli_run(res, "replay --help");
    cr_assert_eq(res->code, 0);
    cr_assert(strstr(res->out, "sim:1TiB"));
    free(res);
    unlink(good), unlink(bad), unlink(unknown), unlink(big);
    rmdir(dir);
}

/* ==== Quick cache, unified expandable range, segments under a limit ========================= */

Test(pool, small_freed_blocks_are_reused_exactly_and_stay_checked)
{
    remat_device *dev = open_dev("sim:1GiB");
    remat_pool *pool = open_pool(dev, NULL);
    void *a = remat_alloc(pool, 256, NULL), *b = remat_alloc(pool, 300, NULL);
    void *keep = remat_alloc(pool, 4096, NULL);
    remat_free(pool, a);
    remat_free(pool, b);
    assert_pool_ok(pool);
    remat_pool_stats st;
    cr_assert_eq(remat_pool_stats_get(pool, &st), REMAT_OK);
    cr_assert_eq(st.allocated.current, 4096, "freed blocks count as free at once");
    cr_assert_eq(st.requested.current, 4096);
    size_t size = 0;
    cr_assert_neq(remat_pool_block_size(pool, b, &size), REMAT_OK, "a freed block is not live");
    remat_free(pool, b); /* double free of a cached block */
    cr_assert(strstr(remat_last_error(), "double free"), "%s", remat_last_error());
    assert_pool_ok(pool);
    void *c = remat_alloc(pool, 512, NULL); /* same 512-B size: the last one freed comes back */
    cr_assert_eq(c, b, "exact-size reuse is last in, first out");
    void *d = remat_alloc(pool, 1, NULL);
    cr_assert_eq(d, a);
    cr_assert_eq(remat_pool_stats_get(pool, &st), REMAT_OK);
    cr_assert_eq(st.requested.current, 4096 + 512 + 1);
    cr_assert_eq(st.allocated.current, 4096 + 512 + 512);
    remat_free(pool, c), remat_free(pool, d), remat_free(pool, keep);
    cr_assert_eq(remat_pool_stats_get(pool, &st), REMAT_OK);
    cr_assert_eq(st.largest_free_block, 2 * MiB, "cached blocks count as merged");
    cr_assert_eq(remat_pool_empty_cache(pool), REMAT_OK);
    cr_assert_eq(remat_pool_stats_get(pool, &st), REMAT_OK);
    cr_assert_eq(st.reserved.current, 0, "emptying the cache merges cached blocks and releases");
    assert_pool_ok(pool);
    remat_pool_destroy(pool);
    remat_device_close(dev);
}

Test(pool, cached_small_blocks_never_make_the_pool_grow)
{
    remat_device *dev = open_dev("sim:1GiB");
    remat_pool *pool = open_pool(dev, NULL);
    void *p[4096];
    for (int i = 0; i < 4096; i++) /* one 2 MiB segment of 512-B blocks */
        cr_assert(p[i] = remat_alloc(pool, 512, NULL));
    for (int i = 0; i < 4096; i++)
        remat_free(pool, p[i]);
    void *big = remat_alloc(pool, 1 << 20, NULL); /* needs the cached blocks merged */
    cr_assert(big);
    remat_pool_stats st;
    cr_assert_eq(remat_pool_stats_get(pool, &st), REMAT_OK);
    cr_assert_eq(st.reserved.current, 2 * MiB, "reserved %llu", (unsigned long long)st.reserved.current);
    cr_assert_eq(st.n_device_alloc, 1);
    remat_free(pool, big);
    assert_pool_ok(pool);
    remat_pool_destroy(pool);
    remat_device_close(dev);
}

Test(pool, expandable_mode_puts_small_requests_in_the_range)
{
    remat_device *dev = open_dev("sim:1TiB");
    remat_pool_config cfg = {.expandable_segments = 1};
    remat_pool *pool = open_pool(dev, &cfg);
    void *big = remat_alloc(pool, 3 * MiB, NULL);
    void *small = remat_alloc(pool, 64 << 10, NULL);
    cr_assert_eq((char *)small, (char *)big + 3 * MiB, "the small block follows in the same range");
    remat_pool_stats st;
    cr_assert_eq(remat_pool_stats_get(pool, &st), REMAT_OK);
    cr_assert_eq(st.reserved.current, 4 * MiB, "one range of two granules, no 2 MiB small segment");
    remat_free(pool, small), remat_free(pool, big);
    assert_pool_ok(pool);
    remat_pool_destroy(pool);
    remat_device_close(dev);
}

/* The checkpoint executor's pattern that failed at a 30 MiB limit with 20 MiB shared segments
 * (tiny GPT, optimal schedule at its largest batch): ~26.6 MiB live at most. */
Test(pool, executor_pattern_fits_a_tight_limit)
{
    static const long ops[][2] = {
        {1, 482304}, {2, 482304}, {3, 482304}, {4, 482304}, {5, 19200}, {6, 19456}, {7, 19456},
        {8, 1228800}, {9, 1228800}, {10, 12359168}, {-10, 0}, {-8, 0}, {11, 11136000},
        {12, 12359168}, {-12, 0}, {-11, 0}};
    for (int expandable = 0; expandable <= 1; expandable++) {
        remat_device *dev = open_dev("sim:1GiB");
        remat_pool_config cfg = {.limit_bytes = 30 * MiB, .expandable_segments = expandable};
        remat_pool *pool = open_pool(dev, &cfg);
        void *live[16] = {0};
        for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
            long id = ops[k][0];
            if (id > 0)
                cr_assert(live[id] = remat_alloc(pool, (size_t)ops[k][1], NULL),
                          "expandable %d, op %zu: %s", expandable, k, remat_last_error());
            else
                remat_free(pool, live[-id]), live[-id] = NULL;
        }
        assert_pool_ok(pool);
        remat_pool_destroy(pool);
        remat_device_close(dev);
    }
}

/* ==== Planned mode: record one step, serve the next from one arena =========================== */

/* A toy trainer's step on host memory: per layer a saved activation (freed in reverse in the
 * backward) and a workspace; the backward passes a gradient down; every block carries a pattern
 * checked at its free, and the pool is checked after every allocation (which checks that live
 * planned blocks never overlap). `wide` changes one layer's size from that layer on (a shape
 * change mid-step); returns the number of requests made. */
typedef struct {
    uint8_t *p;
    size_t bytes;
    uint64_t id;
} plan_block;

static uint64_t plan_next_id = 1;

static plan_block plan_get(remat_pool *pool, size_t bytes, const char *tag)
{
    plan_block b = {remat_alloc_tagged(pool, bytes, NULL, tag), bytes, plan_next_id++};
    cr_assert(b.p, "%s", remat_last_error());
    pattern_visit(b.p, bytes, b.id, 1);
    assert_pool_ok(pool);
    return b;
}

static void plan_put(remat_pool *pool, plan_block b)
{
    pattern_visit(b.p, b.bytes, b.id, 0);
    remat_free(pool, b.p);
}

#define PLAN_LAYERS 6
#define PLAN_REQUESTS (PLAN_LAYERS * 4 + 1) /* per step */

static int plan_step(remat_pool *pool, size_t batch, int wide_from)
{
    plan_block act[PLAN_LAYERS], grad, next;
    int n = 0;
    for (int l = 0; l < PLAN_LAYERS; l++, n += 2) {
        size_t bytes = batch * (size_t)(l + 1) * 40000 + (l >= wide_from ? 4096 : 0);
        plan_block ws = plan_get(pool, batch * 30000, "tmp");
        act[l] = plan_get(pool, bytes, "act");
        plan_put(pool, ws);
    }
    grad = plan_get(pool, batch * 50000, "act"), n++;
    for (int l = PLAN_LAYERS; l-- > 0; n += 2) {
        plan_block ws = plan_get(pool, batch * 70000, "tmp");
        next = plan_get(pool, batch * 50000, "act");
        plan_put(pool, ws);
        plan_put(pool, grad);
        plan_put(pool, act[l]);
        grad = next;
    }
    plan_put(pool, grad);
    return n;
}

static remat_pool_stats plan_stats(const remat_pool *pool)
{
    remat_pool_stats st;
    cr_assert_eq(remat_pool_stats_get(pool, &st), REMAT_OK);
    return st;
}

Test(pool, planned_steps_come_from_one_arena_of_the_planned_size)
{
    remat_device *dev = open_dev("host");
    remat_pool *pool = open_pool(dev, NULL);
    cr_assert_eq(remat_pool_plan_record_begin(pool), REMAT_OK, "%s", remat_last_error());
    cr_assert_eq(plan_step(pool, 4, PLAN_LAYERS), PLAN_REQUESTS);
    remat_layout_result layout;
    cr_assert_eq(remat_pool_plan_record_end(pool, &layout), REMAT_OK, "%s", remat_last_error());
    cr_assert_gt(layout.arena_bytes, 0);
    cr_assert_leq((double)layout.arena_bytes, 1.02 * (double)layout.lower_bound_bytes);
    remat_pool_stats st = plan_stats(pool);
    cr_assert_eq(st.planned_arena_bytes, layout.arena_bytes);
    cr_assert_eq(st.reserved.current, layout.arena_bytes, "the recording's segments are returned");
    cr_assert_eq(st.n_plans, 1);
    cr_assert_eq(remat_pool_reset_peaks(pool), REMAT_OK);
    for (int step = 0; step < 5; step++) {
        cr_assert_eq(remat_pool_plan_step_begin(pool), REMAT_OK, "%s", remat_last_error());
        plan_step(pool, 4, PLAN_LAYERS);
    }
    st = plan_stats(pool);
    cr_assert_eq(st.n_planned_hits, 5 * PLAN_REQUESTS);
    cr_assert_eq(st.n_planned_misses, 0);
    cr_assert_eq(st.reserved.peak, layout.arena_bytes, "planned steps reserve exactly the arena");
    cr_assert_eq(st.requested.current, 0);
    remat_stat act;
    cr_assert_eq(remat_pool_tag_stats(pool, "act", &act), REMAT_OK);
    cr_assert_gt(act.peak, 0, "planned requests count under their tags");
    cr_assert_eq(remat_pool_plan_stop(pool), REMAT_OK);
    st = plan_stats(pool);
    cr_assert_eq(st.planned_arena_bytes, 0);
    cr_assert_eq(st.allocated.current, 0, "the arena went back to the cache");
    assert_pool_ok(pool);
    remat_pool_destroy(pool);
    remat_device_close(dev);
}

/* A trainer whose step changes shape never fails: a different batch departs at the first request
 * (one miss; that step is recorded and planned next), a size change mid-step sends the rest of the
 * step to the caching path, and the stats count exactly those requests. */
Test(pool, planned_mode_falls_back_when_the_step_changes_shape)
{
    remat_device *dev = open_dev("host");
    remat_pool *pool = open_pool(dev, NULL);
    plan_block params = plan_get(pool, 3 * MiB, "params"); /* persistent: the caching path's */
    cr_assert_eq(remat_pool_plan_record_begin(pool), REMAT_OK);
    plan_step(pool, 4, PLAN_LAYERS);
    cr_assert_eq(remat_pool_plan_record_end(pool, NULL), REMAT_OK);
    cr_assert_eq(remat_pool_plan_step_begin(pool), REMAT_OK);
    plan_step(pool, 2, PLAN_LAYERS); /* batch 2: a new shape */
    remat_pool_stats st = plan_stats(pool);
    cr_assert_eq(st.n_planned_hits, 0);
    cr_assert_eq(st.n_planned_misses, 1, "only the first request misses; the step is recorded");
    cr_assert_eq(remat_pool_plan_step_begin(pool), REMAT_OK, "%s", remat_last_error());
    cr_assert_eq(plan_stats(pool).n_plans, 2, "the batch-2 step was planned");
    plan_step(pool, 2, PLAN_LAYERS);
    st = plan_stats(pool);
    cr_assert_eq(st.n_planned_hits, PLAN_REQUESTS);
    cr_assert_eq(st.n_planned_misses, 1);
    /* mid-step change: layer 3 onwards is 4 KiB wider. The forward's first 3 layers hit (2
     * requests each); from the 7th request on everything misses. */
    cr_assert_eq(remat_pool_plan_step_begin(pool), REMAT_OK);
    plan_step(pool, 2, 3);
    st = plan_stats(pool);
    cr_assert_eq(st.n_planned_hits, PLAN_REQUESTS + 7, "the workspace of layer 3 still matches");
    cr_assert_eq(st.n_planned_misses, 1 + PLAN_REQUESTS - 7);
    /* that step missed more than it hit: the next one is recorded, then planned again */
    cr_assert_eq(remat_pool_plan_step_begin(pool), REMAT_OK);
    plan_step(pool, 2, 3);
    cr_assert_eq(remat_pool_plan_step_begin(pool), REMAT_OK);
    plan_step(pool, 2, 3);
    st = plan_stats(pool);
    cr_assert_eq(st.n_plans, 3);
    cr_assert_eq(st.n_planned_hits, 2 * PLAN_REQUESTS + 7);
    cr_assert_eq(st.n_planned_misses, 1 + PLAN_REQUESTS - 7);
    plan_put(pool, params);
    cr_assert_eq(plan_stats(pool).requested.current, 0);
    assert_pool_ok(pool);
    remat_pool_destroy(pool);
    remat_device_close(dev);
}

/* A planned block kept past its recorded free (here: into the next step) must not be overlapped:
 * the arena hands nothing out while it is live, and everything resumes once it is freed. */
Test(pool, planned_blocks_kept_too_long_block_the_arena_safely)
{
    remat_device *dev = open_dev("host");
    remat_pool *pool = open_pool(dev, NULL);
    cr_assert_eq(remat_pool_plan_record_begin(pool), REMAT_OK);
    for (int i = 0; i < 3; i++) /* three blocks in turn: the plan puts them all at offset 0 */
        plan_put(pool, plan_get(pool, 100000, "act"));
    cr_assert_eq(remat_pool_plan_record_end(pool, NULL), REMAT_OK);
    cr_assert_eq(remat_pool_plan_step_begin(pool), REMAT_OK);
    plan_block a = plan_get(pool, 100000, "act"); /* hit, at offset 0; not freed in time */
    plan_block b = plan_get(pool, 100000, "act"); /* its recorded place is a's: a miss */
    cr_assert_neq(a.p, b.p);
    cr_assert_eq(plan_stats(pool).n_planned_hits, 1);
    cr_assert_eq(plan_stats(pool).n_planned_misses, 1);
    plan_put(pool, a);
    plan_block c = plan_get(pool, 100000, "act"); /* a is gone: a hit again */
    cr_assert_eq(plan_stats(pool).n_planned_hits, 2);
    cr_assert_eq(remat_pool_plan_step_begin(pool), REMAT_OK); /* c lives on into the next step */
    plan_block d = plan_get(pool, 100000, "act");
    cr_assert_eq(plan_stats(pool).n_planned_misses, 2, "c is overdue: d is not placed on it");
    plan_put(pool, c), plan_put(pool, b), plan_put(pool, d);
    assert_pool_ok(pool);
    remat_pool_destroy(pool);
    remat_device_close(dev);
}

Test(pool, planned_mode_refuses_bad_calls_and_bad_frees)
{
    remat_device *dev = open_dev("sim:8GiB");
    remat_pool *pool = open_pool(dev, NULL);
    cr_assert_eq(remat_pool_plan_record_end(pool, NULL), REMAT_EINVAL);
    cr_assert_eq(remat_pool_plan_step_begin(pool), REMAT_EINVAL);
    cr_assert(strstr(remat_last_error(), "no plan"), "%s", remat_last_error());
    cr_assert_eq(remat_pool_plan_stop(pool), REMAT_OK, "stop without a plan is a no-op");
    cr_assert_eq(remat_pool_plan_record_begin(pool), REMAT_OK);
    cr_assert_eq(remat_pool_plan_record_begin(pool), REMAT_EINVAL);
    cr_assert_eq(remat_pool_plan_step_begin(pool), REMAT_EINVAL);
    remat_free(pool, remat_alloc(pool, 5000, NULL));
    cr_assert_eq(remat_pool_plan_record_end(pool, NULL), REMAT_OK);
    cr_assert_eq(remat_pool_plan_step_begin(pool), REMAT_OK);
    void *p = remat_alloc(pool, 5000, NULL);
    cr_assert_eq(plan_stats(pool).n_planned_hits, 1);
    size_t size = 0;
    cr_assert_eq(remat_pool_block_size(pool, p, &size), REMAT_OK);
    cr_assert_eq(size, 5120);
    cr_assert_eq(remat_pool_record_stream(pool, p, (remat_stream)0x10), REMAT_EUNSUPPORTED);
    cr_assert_eq(remat_pool_plan_record_begin(pool), REMAT_EINVAL, "a planned block is live");
    remat_free(pool, (char *)p + 512);
    cr_assert(strstr(remat_last_error(), "planned arena"), "%s", remat_last_error());
    remat_free(pool, p);
    remat_free(pool, p);
    cr_assert(strstr(remat_last_error(), "not a live planned block"), "%s", remat_last_error());
    assert_pool_ok(pool);
    cr_assert_eq(remat_pool_plan_stop(pool), REMAT_OK);
    cr_assert_eq(remat_pool_plan_step_begin(pool), REMAT_EINVAL);
    cr_assert_eq(plan_stats(pool).planned_arena_bytes, 0);
    assert_pool_ok(pool);
    remat_pool_destroy(pool);
    remat_device_close(dev);
}

/* Stopping with planned blocks live keeps the arena until the last one is freed. */
Test(pool, plan_stop_waits_for_the_last_planned_block)
{
    remat_device *dev = open_dev("sim:8GiB");
    remat_pool *pool = open_pool(dev, NULL);
    cr_assert_eq(remat_pool_plan_record_begin(pool), REMAT_OK);
    remat_free(pool, remat_alloc(pool, 3 * MiB, NULL));
    cr_assert_eq(remat_pool_plan_record_end(pool, NULL), REMAT_OK);
    cr_assert_eq(remat_pool_plan_step_begin(pool), REMAT_OK);
    void *p = remat_alloc(pool, 3 * MiB, NULL);
    cr_assert_eq(remat_pool_plan_stop(pool), REMAT_OK);
    cr_assert_eq(plan_stats(pool).planned_arena_bytes, 3 * MiB);
    void *q = remat_alloc(pool, 3 * MiB, NULL);
    cr_assert_eq(plan_stats(pool).n_planned_hits, 1, "no hand-outs after stop");
    assert_pool_ok(pool);
    remat_free(pool, p);
    cr_assert_eq(plan_stats(pool).planned_arena_bytes, 0);
    remat_free(pool, q);
    assert_pool_ok(pool);
    remat_pool_destroy(pool);
    remat_device_close(dev);
}

/* Traces of planned runs carry step marks; `remat replay --planned` records the first marked step
 * and serves the rest from its arena; a trace without marks is bad input for it. */
Test(pool, replay_planned_cli_reports_arena_and_bound)
{
    char dir[] = "/tmp/remat-planned-XXXXXX";
    cr_assert(mkdtemp(dir));
    char path[256], plain[256];
    snprintf(path, sizeof path, "%s/steps.trace", dir);
    snprintf(plain, sizeof plain, "%s/plain.trace", dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    remat_device *dev = open_dev("sim:8GiB");
    remat_pool *pool = open_pool(dev, NULL);
    cr_assert_eq(remat_pool_trace_begin(pool, f), REMAT_OK);
    cr_assert_eq(remat_pool_plan_record_begin(pool), REMAT_OK);
    for (int step = 0; step < 4; step++) {
        if (step == 1)
            cr_assert_eq(remat_pool_plan_record_end(pool, NULL), REMAT_OK);
        if (step >= 1)
            cr_assert_eq(remat_pool_plan_step_begin(pool), REMAT_OK);
        void *a = remat_alloc_tagged(pool, 3 * MiB, NULL, "act");
        void *b = remat_alloc_tagged(pool, 5 * MiB, NULL, "act");
        remat_free(pool, a);
        void *c = remat_alloc_tagged(pool, 2 * MiB, NULL, "act");
        remat_free(pool, c), remat_free(pool, b);
    }
    cr_assert_eq(remat_pool_trace_end(pool), REMAT_OK);
    fclose(f);
    remat_pool_destroy(pool);
    remat_trace *t = NULL;
    cr_assert_eq(remat_trace_load(path, &t), REMAT_OK, "%s", remat_last_error());
    cr_assert_eq(remat_trace_steps(t), 4);
    remat_planned_replay_result pr;
    cr_assert_eq(remat_trace_replay_planned(t, dev, NULL, &pr), REMAT_OK, "%s", remat_last_error());
    cr_assert_eq(pr.arena_bytes, 8 * MiB, "b overlaps a and c; a and c share an offset");
    cr_assert_eq(pr.peak_reserved, pr.arena_bytes, "planned replay peak == arena size");
    cr_assert_eq(pr.lower_bound, 8 * MiB);
    cr_assert_eq(pr.hits, 9);
    cr_assert_eq(pr.misses, 0);
    cr_assert_eq(pr.planned_steps, 3);
    remat_trace_free(t);
    remat_device_close(dev);

    cli_result *res = malloc(sizeof *res);
    cli_run(res, "replay %s --planned --json", cli_sh_quote(path));
    cr_assert_eq(res->code, 0, "%s", res->err);
    cJSON *j = cJSON_Parse(res->out);
    cr_assert(j, "not JSON: %s", res->out);
    cJSON *p = cJSON_GetObjectItem(j, "planned");
    cr_assert(p, "%s", res->out);
    cr_assert_eq(cJSON_GetObjectItem(p, "peak_reserved")->valuedouble, 8.0 * MiB);
    cr_assert_eq(cJSON_GetObjectItem(p, "arena_bytes")->valuedouble, 8.0 * MiB);
    cr_assert_eq(cJSON_GetObjectItem(p, "ratio")->valuedouble, 1.0);
    cr_assert_eq(cJSON_GetObjectItem(p, "hits")->valuedouble, 9);
    cr_assert(cJSON_IsString(cJSON_GetObjectItem(p, "heuristic")));
    cJSON_Delete(j);
    cli_run(res, "replay %s --planned", cli_sh_quote(path));
    cr_assert_eq(res->code, 0);
    cr_assert(strstr(res->out, "reserved / lower bound"), "%s", res->out);
    write_file(plain, "a 1 1000\nf 1\n");
    cli_run(res, "replay %s --planned", cli_sh_quote(plain));
    cr_assert_eq(res->code, 2, "no step marks is bad input");
    cr_assert(strstr(res->err, "0 step marks"), "%s", res->err);
    cli_run(res, "replay %s", cli_sh_quote(path));
    cr_assert_eq(res->code, 0, "step marks are ignored by a plain replay: %s", res->err);
    free(res);
    unlink(path), unlink(plain);
    rmdir(dir);
}

/* What a recorded step leaves live (gradients allocated after its backward, optimizer states)
 * sits in segments of its own exact size: it never pins the segments of the step's freed
 * activations, so after record_end and in every planned step the pool reserves the arena plus the
 * persistent bytes and nothing more. */
Test(pool, planned_recording_puts_what_persists_in_exact_segments)
{
    remat_device *dev = open_dev("host");
    remat_pool *pool = open_pool(dev, NULL);
    static const size_t act_bytes[4] = {4 * MiB, 3 * MiB + 5000, 6 * MiB, 2 * MiB};
    static const size_t grad_bytes[3] = {3 * MiB, MiB + 512, 200 * 1024};
    plan_block grads[3];
    size_t persistent = 0;
    for (int step = 0; step < 4; step++) {
        if (step == 0)
            cr_assert_eq(remat_pool_plan_record_begin(pool), REMAT_OK);
        else
            cr_assert_eq(remat_pool_plan_step_begin(pool), REMAT_OK, "%s", remat_last_error());
        plan_block act[4];
        for (int i = 0; i < 4; i++)
            act[i] = plan_get(pool, act_bytes[i], "act");
        for (int i = 4; i-- > 0;)
            plan_put(pool, act[i]);
        for (int i = 0; step == 0 && i < 3; i++) { /* into the room the activations left */
            grads[i] = plan_get(pool, grad_bytes[i], "grads");
            persistent += (grad_bytes[i] + 511) / 512 * 512;
        }
        if (step == 0) {
            remat_layout_result layout;
            cr_assert_eq(remat_pool_plan_record_end(pool, &layout), REMAT_OK, "%s",
                         remat_last_error());
            remat_pool_stats st = plan_stats(pool);
            cr_assert_eq(st.reserved.current, layout.arena_bytes + persistent,
                         "reserved %llu, arena %llu + persistent %zu",
                         (unsigned long long)st.reserved.current,
                         (unsigned long long)layout.arena_bytes, persistent);
            cr_assert_eq(remat_pool_reset_peaks(pool), REMAT_OK);
        }
    }
    remat_pool_stats st = plan_stats(pool);
    cr_assert_eq(st.n_planned_hits, 3 * 4);
    cr_assert_eq(st.n_planned_misses, 0);
    cr_assert_eq(st.reserved.peak, st.planned_arena_bytes + persistent);
    for (int i = 0; i < 3; i++)
        plan_put(pool, grads[i]);
    cr_assert_eq(plan_stats(pool).reserved.current, st.planned_arena_bytes,
                 "freed, the exact segments went back to the device");
    assert_pool_ok(pool);
    remat_pool_destroy(pool);
    remat_device_close(dev);
}

/* Requests the recorded step made and later steps skip (gradients allocated once, in step 0)
 * do not end matching: the step resumes at the next recorded request like its own, so the
 * optimizer's scratch after them still comes from the arena. A resumption never hands out a block
 * over one that the recording had freed by then and that is still live. */
Test(pool, planned_steps_resume_matching_past_requests_they_skip)
{
    remat_device *dev = open_dev("host");
    remat_pool *pool = open_pool(dev, NULL);
    plan_block grads[5];
    cr_assert_eq(remat_pool_plan_record_begin(pool), REMAT_OK);
    plan_step(pool, 4, PLAN_LAYERS);
    for (int i = 0; i < 5; i++)
        grads[i] = plan_get(pool, (size_t)(i + 1) * 100000, "grads");
    plan_put(pool, plan_get(pool, 4 * MiB, "tmp")); /* the optimizer's scratch */
    cr_assert_eq(remat_pool_plan_record_end(pool, NULL), REMAT_OK);
    for (int step = 0; step < 3; step++) {
        cr_assert_eq(remat_pool_plan_step_begin(pool), REMAT_OK, "%s", remat_last_error());
        plan_step(pool, 4, PLAN_LAYERS);
        plan_put(pool, plan_get(pool, 4 * MiB, "tmp"));
    }
    remat_pool_stats st = plan_stats(pool);
    cr_assert_eq(st.n_planned_misses, 0);
    cr_assert_eq(st.n_planned_hits, 3 * (PLAN_REQUESTS + 1));
    for (int i = 0; i < 5; i++)
        plan_put(pool, grads[i]);
    cr_assert_eq(remat_pool_plan_stop(pool), REMAT_OK);

    /* recorded: a, b, free a, c (may take a's place), ... A step keeps a past b's place and
     * skips b: c must not be placed over a. */
    cr_assert_eq(remat_pool_plan_record_begin(pool), REMAT_OK);
    plan_block a = plan_get(pool, 300000, "act"), b = plan_get(pool, 200000, "act");
    plan_put(pool, a);
    plan_block c = plan_get(pool, 300000, "act");
    plan_put(pool, b), plan_put(pool, c);
    cr_assert_eq(remat_pool_plan_record_end(pool, NULL), REMAT_OK);
    cr_assert_eq(remat_pool_plan_step_begin(pool), REMAT_OK);
    uint64_t hits = plan_stats(pool).n_planned_hits, misses = plan_stats(pool).n_planned_misses;
    a = plan_get(pool, 300000, "act");
    c = plan_get(pool, 300000, "act"); /* b skipped; a is overdue: a miss */
    cr_assert_neq(a.p, c.p);
    cr_assert_eq(plan_stats(pool).n_planned_hits, hits + 1);
    cr_assert_eq(plan_stats(pool).n_planned_misses, misses + 1);
    plan_put(pool, a), plan_put(pool, c);
    assert_pool_ok(pool);
    remat_pool_destroy(pool);
    remat_device_close(dev);
}

/* A recorded request that cannot have a segment of its own (the card is full) is served by the
 * caching path from room it already holds: recording never fails where the pool alone would not. */
Test(pool, planned_recording_falls_back_to_the_cache_when_the_card_is_full)
{
    remat_device *dev = open_dev("sim:5MiB");
    remat_pool *pool = open_pool(dev, NULL);
    void *pinned = remat_alloc(pool, 5 * MiB / 2, NULL); /* a 4 MiB segment, 1.5 MiB left free */
    cr_assert(pinned, "%s", remat_last_error());
    cr_assert_eq(plan_stats(pool).reserved.current, 4 * MiB);
    cr_assert_eq(remat_pool_plan_record_begin(pool), REMAT_OK);
    void *p = remat_alloc(pool, 1200 * 1024, NULL); /* 4 MiB + its own 1.2 MiB: over the card */
    cr_assert(p, "%s", remat_last_error());
    remat_free(pool, p);
    remat_pool_stats st = plan_stats(pool);
    cr_assert_eq(st.n_ooms, 0, "the refused exact segment is no out-of-memory");
    cr_assert_eq(st.reserved.peak, 4 * MiB, "served inside the segment the pool held");
    remat_free(pool, pinned);
    cr_assert_eq(remat_pool_plan_record_end(pool, NULL), REMAT_OK, "%s", remat_last_error());
    cr_assert_eq(plan_stats(pool).reserved.current, 1200 * 1024, "the cache made room");
    cr_assert_eq(remat_pool_plan_stop(pool), REMAT_OK);
    assert_pool_ok(pool);
    remat_pool_destroy(pool);
    remat_device_close(dev);
}

/* A new shape is recorded in segments of its own: the old arena (and anything else the cache
 * holds wholly free) goes back to the device first instead of sitting idle next to them, so the
 * recorded step reserves exactly what it has live. */
Test(pool, planned_shape_change_records_without_holding_the_old_arena)
{
    remat_device *dev = open_dev("host");
    remat_pool *pool = open_pool(dev, NULL);
    for (int step = 0; step < 4; step++) {
        size_t mib = step < 2 ? 1 : 2; /* sizes 1, 2, 3 MiB, then 2, 3, 4 MiB */
        if (step == 1)
            cr_assert_eq(remat_pool_plan_record_end(pool, NULL), REMAT_OK);
        if (step == 0)
            cr_assert_eq(remat_pool_plan_record_begin(pool), REMAT_OK);
        else
            cr_assert_eq(remat_pool_plan_step_begin(pool), REMAT_OK, "%s", remat_last_error());
        if (step == 2)
            cr_assert_eq(remat_pool_reset_peaks(pool), REMAT_OK);
        plan_block b[3];
        for (int i = 0; i < 3; i++)
            b[i] = plan_get(pool, (mib + (size_t)i) * MiB, "act");
        for (int i = 3; i-- > 0;)
            plan_put(pool, b[i]);
        if (step == 2) {
            remat_pool_stats st = plan_stats(pool);
            cr_assert_eq(st.n_planned_misses, 1, "the new shape's first request");
            cr_assert_eq(st.reserved.peak, 9 * MiB, "reserved %llu while recording 9 MiB live",
                         (unsigned long long)st.reserved.peak);
        }
    }
    remat_pool_stats st = plan_stats(pool);
    cr_assert_eq(st.n_plans, 2);
    cr_assert_eq(st.planned_arena_bytes, 9 * MiB);
    cr_assert_eq(st.reserved.current, 9 * MiB);
    cr_assert_eq(st.n_planned_hits, 3 + 3);
    assert_pool_ok(pool);
    remat_pool_destroy(pool);
    remat_device_close(dev);
}
