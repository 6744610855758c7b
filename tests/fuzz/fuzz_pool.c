/* tests/fuzz/fuzz_pool.c: the pool driven by an op sequence (alloc, tagged alloc, free, bad free,
 * empty_cache, reset_peaks) on a sim and a host pool whose config (limit, max_split, expandable,
 * no_cache) comes from the first bytes. After every op an oracle checks: live blocks 512-aligned
 * and disjoint, each at least its rounded request, requested.current = the sum of live requests,
 * allocated.current = the sum of live block sizes, peaks >= currents, remat_pool_check OK (every
 * 64 ops and at the end); on the
 * host pool every block's first and last 8 bytes keep the id written at allocation. abort() on
 * any violation. */
#include "remat.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { POOL_FUZZ_SLOTS = 64, POOL_FUZZ_MAX_OPS = 512 };

typedef struct {
    char *ptr;
    size_t bytes, block;
    uint64_t id;
} fuzz_block;

typedef struct {
    const uint8_t *data;
    size_t n, at;
} fuzz_input;

static remat_device *fuzz_sim, *fuzz_host;

static unsigned fuzz_byte(fuzz_input *in)
{
    return in->at < in->n ? in->data[in->at++] : 0;
}

static void fuzz_die(const char *what, remat_pool *pool)
{
    fprintf(stderr, "fuzz_pool oracle: %s (%s)\n", what, remat_last_error());
    (void)!remat_pool_snapshot(pool, stderr); /* best effort: we abort next */
    abort();
}

static int fuzz_by_address(const void *a, const void *b)
{
    const fuzz_block *x = a, *y = b;
    return (x->ptr > y->ptr) - (x->ptr < y->ptr);
}

/* full: also run remat_pool_check (it walks every size bin, so only every 64 ops). */
static void fuzz_oracle(remat_pool *pool, const fuzz_block *live, int host, int full)
{
    fuzz_block sorted[POOL_FUZZ_SLOTS];
    int k = 0;
    uint64_t requested = 0, allocated = 0;
    for (int i = 0; i < POOL_FUZZ_SLOTS; i++) {
        if (!live[i].ptr)
            continue;
        if ((uintptr_t)live[i].ptr % 512 || live[i].block < live[i].bytes ||
            live[i].block % 512 || live[i].block == 0)
            fuzz_die("misaligned or short block", pool);
        if (host && (memcmp(live[i].ptr, &live[i].id, 8) ||
                     memcmp(live[i].ptr + live[i].block - 8, &live[i].id, 8)))
            fuzz_die("a live block's contents changed", pool);
        requested += live[i].bytes;
        allocated += live[i].block;
        sorted[k++] = live[i];
    }
    qsort(sorted, (size_t)k, sizeof sorted[0], fuzz_by_address);
    for (int i = 1; i < k; i++)
        if (sorted[i - 1].ptr + sorted[i - 1].block > sorted[i].ptr)
            fuzz_die("live blocks overlap", pool);
    remat_pool_stats st;
    if (remat_pool_stats_get(pool, &st) != REMAT_OK)
        fuzz_die("stats failed", pool);
    if (st.requested.current != requested || st.allocated.current != allocated)
        fuzz_die("stats disagree with the live blocks", pool);
    if (st.requested.peak < st.requested.current || st.allocated.peak < st.allocated.current ||
        st.reserved.peak < st.reserved.current || st.reserved.current < st.allocated.current)
        fuzz_die("a peak below its current value", pool);
    if (full && remat_pool_check(pool) != REMAT_OK)
        fuzz_die("remat_pool_check", pool);
}

/* Up to 64 KiB << 15 = 2 GiB on sim (only address space); host requests are capped at 8 MiB so
 * that the sanitizers' bookkeeping of real memory keeps the fuzzer fast. */
static size_t fuzz_size(fuzz_input *in, int host)
{
    unsigned shift = (fuzz_byte(in) % 4) * 5;
    size_t base = (size_t)fuzz_byte(in) << 8 | fuzz_byte(in);
    size_t bytes = base << shift;
    return host && bytes > (8u << 20) ? bytes % (8u << 20) : bytes;
}

static void fuzz_alloc(remat_pool *pool, fuzz_block *b, fuzz_input *in, int tagged, int host,
                       uint64_t id)
{
    static const char *tags[] = {"params", "grads", "act", NULL, "bad tag!"};
    size_t bytes = fuzz_size(in, host);
    remat_stream stream = (remat_stream)(uintptr_t)(fuzz_byte(in) % 3);
    void *p = tagged ? remat_alloc_tagged(pool, bytes, stream, tags[fuzz_byte(in) % 5])
                     : remat_alloc(pool, bytes, stream);
    if (!p) {
        if (!remat_last_error()[0])
            fuzz_die("a failed allocation without a message", pool);
        return;
    }
    size_t block = 0;
    if (remat_pool_block_size(pool, p, &block) != REMAT_OK)
        fuzz_die("a fresh block is not live", pool);
    *b = (fuzz_block){p, bytes, block, id};
    if (host) {
        memcpy(b->ptr, &id, 8);
        memcpy(b->ptr + block - 8, &id, 8);
    }
}

static void fuzz_run(remat_device *dev, fuzz_input *in, int host)
{
    unsigned flags = fuzz_byte(in);
    remat_pool_config cfg = {0};
    cfg.limit_bytes = (flags & 1) ? (uint64_t)(fuzz_byte(in) + 1) << 20 : 0;
    cfg.max_split_bytes = (flags & 2) ? (uint64_t)(fuzz_byte(in) % 64 + 1) << 20 : 0;
    cfg.expandable_segments = (flags >> 2) & 1;
    cfg.no_cache = (flags >> 3) & 1;
    if (host && (!cfg.limit_bytes || cfg.limit_bytes > (64u << 20)))
        cfg.limit_bytes = 64u << 20; /* the host pool commits real memory */
    remat_pool *pool = NULL;
    if (remat_pool_create(dev, &cfg, &pool) != REMAT_OK)
        return; /* e.g. expandable segments refused: fine */
    fuzz_block live[POOL_FUZZ_SLOTS] = {0};
    uint64_t next_id = 1;
    for (int op = 0; op < POOL_FUZZ_MAX_OPS && in->at < in->n; op++) {
        unsigned code = fuzz_byte(in);
        fuzz_block *b = &live[(code >> 3) % POOL_FUZZ_SLOTS];
        switch (code % 8) {
        case 0: case 1: case 2: case 3:
            if (b->ptr) {
                remat_free(pool, b->ptr);
                b->ptr = NULL;
            } else {
                fuzz_alloc(pool, b, in, code % 4 == 3, host, next_id++);
            }
            break;
        case 4:
            if (b->ptr)
                remat_free(pool, b->ptr + 8); /* not a pointer the pool handed out: ignored */
            break;
        case 5:
            if (remat_pool_empty_cache(pool) != REMAT_OK)
                fuzz_die("empty_cache failed", pool);
            break;
        case 6:
            if (remat_pool_reset_peaks(pool) != REMAT_OK)
                fuzz_die("reset_peaks failed", pool);
            break;
        case 7: {
            double frag = remat_pool_fragmentation(pool);
            if (!(frag >= 0.0 && frag <= 1.0))
                fuzz_die("fragmentation outside [0, 1]", pool);
            break;
        }
        }
        fuzz_oracle(pool, live, host, op % 64 == 63);
    }
    for (int i = 0; i < POOL_FUZZ_SLOTS; i++)
        if (live[i].ptr)
            remat_free(pool, live[i].ptr);
    memset(live, 0, sizeof live);
    fuzz_oracle(pool, live, host, 1);
    remat_pool_destroy(pool);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    if (!fuzz_sim && (remat_device_open("sim:8GiB", &fuzz_sim) != REMAT_OK ||
                      remat_device_open("host", &fuzz_host) != REMAT_OK))
        abort();
    fuzz_input in = {data, n, 0};
    fuzz_run(fuzz_sim, &in, 0);
    in.at = 0;
    fuzz_run(fuzz_host, &in, 1);
    return 0;
}
