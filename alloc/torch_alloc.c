/* alloc/torch_alloc.c: remat's caching pool as PyTorch's CUDA allocator. PyTorch 2.x's
 * torch.cuda.memory.CUDAPluggableAllocator(path, "remat_torch_alloc", "remat_torch_free") loads
 * two plain C functions from a shared library and calls them for every CUDA tensor; they hold one
 * remat pool per device index, created on first use with the limit set by
 * remat_torch_configure. The device kind is configurable so the same code runs on host and sim
 * devices in the tests. */
#include "core/core.h"

#include <pthread.h>
#include <string.h>

#define TORCH_MAX_DEVICES 64

typedef struct {
    remat_device *dev;
    remat_pool *pool;
} torch_slot;

static pthread_mutex_t torch_lock = PTHREAD_MUTEX_INITIALIZER;
static torch_slot torch_slots[TORCH_MAX_DEVICES];
static char torch_kind[64] = "cuda";
static uint64_t torch_limit;

static int torch_any_pool(void)
{
    for (int i = 0; i < TORCH_MAX_DEVICES; i++)
        if (torch_slots[i].pool)
            return 1;
    return 0;
}

/* "cuda" and "host" and "sim:SIZE" are the kinds; anything else is refused here rather than at
 * the first allocation, where torch would only see NULL. */
static remat_status torch_check_kind(const char *kind)
{
    if (strcmp(kind, "cuda") == 0 || strcmp(kind, "host") == 0)
        return REMAT_OK;
    uint64_t size = 0;
    if (strncmp(kind, "sim:", 4) == 0 && remat_parse_size(kind + 4, &size) == REMAT_OK && size)
        return REMAT_OK;
    remat_clear_error();
    return remat_fail(REMAT_EINVAL, "torch allocator device kind '%s': use cuda, host or sim:SIZE",
                      kind);
}

remat_status remat_torch_configure(const char *kind, uint64_t limit_bytes)
{
    if (!kind)
        kind = "cuda";
    if (strlen(kind) >= sizeof torch_kind)
        return remat_fail(REMAT_EINVAL, "torch allocator device kind is too long (%zu chars)",
                          strlen(kind));
    REMAT_TRY(torch_check_kind(kind));
    pthread_mutex_lock(&torch_lock);
    int busy = torch_any_pool();
    if (!busy) {
        snprintf(torch_kind, sizeof torch_kind, "%s", kind);
        torch_limit = limit_bytes;
    }
    pthread_mutex_unlock(&torch_lock);
    if (busy)
        return remat_fail(REMAT_EINVAL, "the torch allocator is already in use: configure it "
                                        "before the first allocation");
    return REMAT_OK;
}

/* The pool of `device`, created on first use; NULL with the message set on failure. Called with
 * torch_lock held. */
static remat_pool *torch_pool_locked(int device)
{
    if (device < 0 || device >= TORCH_MAX_DEVICES) {
        remat_fail(REMAT_EINVAL, "torch allocator: device %d is out of range [0, %d)", device,
                   TORCH_MAX_DEVICES);
        return NULL;
    }
    torch_slot *s = &torch_slots[device];
    if (s->pool)
        return s->pool;
    char spec[96];
    if (strcmp(torch_kind, "cuda") == 0)
        snprintf(spec, sizeof spec, "cuda:%d", device);
    else
        snprintf(spec, sizeof spec, "%s", torch_kind); /* every index shares one host/sim kind */
    remat_pool_config cfg = {.limit_bytes = torch_limit};
    if (remat_device_open(spec, &s->dev) != REMAT_OK) {
        remat_fail_context(REMAT_EDEVICE, "torch allocator: device %s", spec);
        return NULL;
    }
    if (remat_pool_create(s->dev, &cfg, &s->pool) != REMAT_OK) {
        remat_device_close(s->dev);
        s->dev = NULL;
        return NULL;
    }
    return s->pool;
}

void *remat_torch_alloc(ssize_t size, int device, void *stream)
{
    if (size < 0) {
        remat_fail(REMAT_EINVAL, "torch allocator: negative size %zd", size);
        return NULL;
    }
    pthread_mutex_lock(&torch_lock);
    remat_pool *pool = torch_pool_locked(device);
    pthread_mutex_unlock(&torch_lock);
    /* The pool itself is thread-safe; only creation needs the lock. */
    return pool ? remat_alloc_tagged(pool, (size_t)size, stream, "torch") : NULL;
}

void remat_torch_free(void *ptr, ssize_t size, int device, void *stream)
{
    (void)size;   /* the pool knows each block's size */
    (void)stream; /* the block's stream was recorded at allocation */
    if (!ptr)
        return;
    pthread_mutex_lock(&torch_lock);
    remat_pool *pool = device >= 0 && device < TORCH_MAX_DEVICES ? torch_slots[device].pool : NULL;
    pthread_mutex_unlock(&torch_lock);
    if (!pool) {
        remat_fail(REMAT_EINVAL, "torch allocator: free of %p on device %d, which has no pool", ptr,
                   device);
        return;
    }
    remat_free(pool, ptr);
}

remat_status remat_torch_stats(int device, remat_pool_stats *out)
{
    if (!out)
        return remat_fail(REMAT_EINVAL, "remat_torch_stats: out must not be NULL");
    if (device < 0 || device >= TORCH_MAX_DEVICES)
        return remat_fail(REMAT_EINVAL, "torch allocator: device %d is out of range [0, %d)",
                          device, TORCH_MAX_DEVICES);
    pthread_mutex_lock(&torch_lock);
    remat_pool *pool = torch_slots[device].pool;
    remat_status s = REMAT_OK;
    if (pool)
        s = remat_pool_stats_get(pool, out);
    else
        memset(out, 0, sizeof *out);
    pthread_mutex_unlock(&torch_lock);
    return s;
}

remat_status remat_torch_release(void)
{
    pthread_mutex_lock(&torch_lock);
    uint64_t live = 0;
    for (int i = 0; i < TORCH_MAX_DEVICES; i++) {
        remat_pool_stats st;
        if (torch_slots[i].pool && remat_pool_stats_get(torch_slots[i].pool, &st) == REMAT_OK)
            live += st.n_alloc - st.n_free;
    }
    if (live == 0) {
        for (int i = 0; i < TORCH_MAX_DEVICES; i++) {
            remat_pool_destroy(torch_slots[i].pool);
            remat_device_close(torch_slots[i].dev);
            torch_slots[i] = (torch_slot){0};
        }
    }
    pthread_mutex_unlock(&torch_lock);
    if (live)
        return remat_fail(REMAT_EINVAL,
                          "torch allocator: %llu blocks are still allocated; free them first",
                          (unsigned long long)live);
    return REMAT_OK;
}
