/* alloc/pool_device.c: the pool's only door to the device: every call is counted per fault site
 * so that remat_pool_fault_at can make the n-th one fail (a testing hook). */
#include "alloc/pool.h"

/* Counts a call at `site`; 1 if this is the call armed to fail. */
static int pool_fault_fires(remat_pool *pool, remat_fault_site site)
{
    uint64_t n = ++pool->fault_calls[site];
    if (pool->fault_at[site] && n == pool->fault_at[site]) {
        pool->fault_at[site] = 0;
        return 1;
    }
    return 0;
}

remat_status remat_pool_fault_at(remat_pool *pool, remat_fault_site site, uint64_t n)
{
    if (!pool || (unsigned)site >= REMAT_FAULT_SITES)
        return remat_fail(REMAT_EINVAL, "remat_pool_fault_at: bad pool or site %d", (int)site);
    pool_lock(pool);
    pool->fault_at[site] = n ? pool->fault_calls[site] + n : 0;
    pool_unlock(pool);
    return REMAT_OK;
}

uint64_t remat_pool_fault_calls(const remat_pool *pool, remat_fault_site site)
{
    if (!pool || (unsigned)site >= REMAT_FAULT_SITES)
        return 0;
    pool_lock(pool);
    uint64_t n = pool->fault_calls[site];
    pool_unlock(pool);
    return n;
}

remat_status pool_dev_malloc(remat_pool *pool, size_t bytes, void **out)
{
    if (pool_fault_fires(pool, REMAT_FAULT_DEVICE_ALLOC))
        return remat_fail(REMAT_ENOMEM, "%s: injected device allocation failure (%zu bytes)",
                          pool->dev->info.spec, bytes);
    return pool->dev->ops->malloc(pool->dev, bytes, out);
}

remat_status pool_dev_free(remat_pool *pool, void *ptr, size_t bytes)
{
    if (pool_fault_fires(pool, REMAT_FAULT_DEVICE_FREE))
        return remat_fail(REMAT_EDEVICE, "%s: injected device free failure (%zu bytes at %p)",
                          pool->dev->info.spec, bytes, ptr);
    return pool->dev->ops->free(pool->dev, ptr, bytes);
}

remat_status pool_dev_event_create(remat_pool *pool, device_event **out)
{
    if (pool_fault_fires(pool, REMAT_FAULT_EVENT))
        return remat_fail(REMAT_EDEVICE, "%s: injected event creation failure", pool->dev->info.spec);
    return pool->dev->ops->event_create(pool->dev, out);
}

remat_status pool_dev_event_record(remat_pool *pool, device_event *ev, remat_stream stream)
{
    if (pool_fault_fires(pool, REMAT_FAULT_EVENT))
        return remat_fail(REMAT_EDEVICE, "%s: injected event record failure", pool->dev->info.spec);
    return pool->dev->ops->event_record(pool->dev, ev, stream);
}

remat_status pool_dev_stream_wait(remat_pool *pool, remat_stream stream, device_event *ev)
{
    if (pool_fault_fires(pool, REMAT_FAULT_EVENT))
        return remat_fail(REMAT_EDEVICE, "%s: injected stream wait failure", pool->dev->info.spec);
    return pool->dev->ops->stream_wait(pool->dev, stream, ev);
}

remat_status pool_dev_event_query(remat_pool *pool, device_event *ev, int *done)
{
    if (!pool->dev->ops->event_query) {
        *done = 1;
        return REMAT_OK;
    }
    return pool->dev->ops->event_query(pool->dev, ev, done);
}

remat_status pool_dev_sync(remat_pool *pool)
{
    return pool->dev->ops->sync ? pool->dev->ops->sync(pool->dev) : REMAT_OK;
}

int pool_dev_has_vm(const remat_pool *pool)
{
    const device_ops *ops = pool->dev->ops;
    return ops->vm_granularity && ops->vm_reserve && ops->vm_release && ops->vm_map && ops->vm_unmap;
}

remat_status pool_dev_vm_map(remat_pool *pool, uintptr_t addr, size_t bytes)
{
    if (pool_fault_fires(pool, REMAT_FAULT_DEVICE_ALLOC))
        return remat_fail(REMAT_ENOMEM, "%s: injected mapping failure (%zu bytes)", pool->dev->info.spec,
                          bytes);
    return pool->dev->ops->vm_map(pool->dev, (void *)addr, bytes);
}

remat_status pool_dev_vm_unmap(remat_pool *pool, uintptr_t addr, size_t bytes)
{
    if (pool_fault_fires(pool, REMAT_FAULT_DEVICE_FREE))
        return remat_fail(REMAT_EDEVICE, "%s: injected unmapping failure (%zu bytes at %p)",
                          pool->dev->info.spec, bytes, (void *)addr);
    return pool->dev->ops->vm_unmap(pool->dev, (void *)addr, bytes);
}
