/* alloc/backend_sim.c: the sim backend: address space is reserved (PROT_NONE, no commit) so that
 * an 80 GB card's trace or plan can be replayed on a laptop; nothing may touch its memory. */
#include "alloc/device.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

/* The host refused the reservation (address space, ulimit -v, vm.max_map_count): say so with
 * its errno, since the simulated capacity was not the limit. */
static remat_status sim_mmap_failed(size_t bytes, int err)
{
    char a[32];
    return remat_fail(REMAT_ENOMEM,
                      "sim: the host refused to reserve %s of address space (mmap: %s, errno %d)",
                      remat_format_bytes(bytes, a, sizeof a), strerror(err), err);
}

static remat_status sim_malloc(remat_device *dev, size_t bytes, void **out)
{
    uint64_t cap = dev->info.total_bytes;
    if (bytes > cap - dev->sim_reserved) {
        char a[32], f[32], c[32];
        return remat_fail(REMAT_ENOMEM, "sim: cannot reserve %s: %s free of %s",
                          remat_format_bytes(bytes, a, sizeof a),
                          remat_format_bytes(cap - dev->sim_reserved, f, sizeof f),
                          remat_format_bytes(cap, c, sizeof c));
    }
    void *p = mmap(NULL, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return sim_mmap_failed(bytes, errno);
    dev->sim_reserved += bytes;
    *out = p;
    return REMAT_OK;
}

static remat_status sim_free(remat_device *dev, void *ptr, size_t bytes)
{
    if (!ptr)
        return REMAT_OK;
    if (munmap(ptr, bytes) != 0)
        return remat_fail(REMAT_EDEVICE, "sim: cannot release %zu bytes at %p", bytes, ptr);
    dev->sim_reserved -= bytes;
    return REMAT_OK;
}

static remat_status sim_mem_info(remat_device *dev, uint64_t *free_bytes, uint64_t *total_bytes)
{
    *total_bytes = dev->info.total_bytes;
    *free_bytes = dev->info.total_bytes - dev->sim_reserved;
    return REMAT_OK;
}

static remat_status sim_copy(remat_device *dev, void *dst, const void *src, size_t bytes, int to_device)
{
    (void)dev, (void)dst, (void)src, (void)bytes, (void)to_device;
    return remat_fail(REMAT_EUNSUPPORTED, "sim: device memory is reserved, not committed: it cannot be read or written");
}

/* ---- Virtual memory: a reservation is free; mapping counts against the capacity ---------- */

static remat_status sim_vm_granularity(remat_device *dev, size_t *out)
{
    (void)dev;
    *out = (size_t)2 << 20;
    return REMAT_OK;
}

static remat_status sim_vm_reserve(remat_device *dev, size_t bytes, void **out)
{
    (void)dev;
    void *p = mmap(NULL, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return sim_mmap_failed(bytes, errno);
    *out = p;
    return REMAT_OK;
}

static remat_status sim_vm_release(remat_device *dev, void *base, size_t bytes)
{
    (void)dev;
    if (munmap(base, bytes) != 0)
        return remat_fail(REMAT_EDEVICE, "sim: cannot release %zu bytes at %p", bytes, base);
    return REMAT_OK;
}

static remat_status sim_vm_map(remat_device *dev, void *addr, size_t bytes)
{
    uint64_t cap = dev->info.total_bytes;
    if (bytes > cap - dev->sim_reserved) {
        char a[32], f[32];
        return remat_fail(REMAT_ENOMEM, "sim: cannot map %s at %p: %s free",
                          remat_format_bytes(bytes, a, sizeof a), addr,
                          remat_format_bytes(cap - dev->sim_reserved, f, sizeof f));
    }
    dev->sim_reserved += bytes;
    return REMAT_OK;
}

static remat_status sim_vm_unmap(remat_device *dev, void *addr, size_t bytes)
{
    (void)addr;
    dev->sim_reserved -= bytes;
    return REMAT_OK;
}

const device_ops device_sim_ops = {
    .name = "sim",
    .malloc = sim_malloc,
    .free = sim_free,
    .mem_info = sim_mem_info,
    .copy = sim_copy,
    .host_accessible = 0,
    .vm_granularity = sim_vm_granularity,
    .vm_reserve = sim_vm_reserve,
    .vm_release = sim_vm_release,
    .vm_map = sim_vm_map,
    .vm_unmap = sim_vm_unmap,
};

remat_status device_sim_open(remat_device *dev, uint64_t capacity)
{
    dev->ops = &device_sim_ops;
    dev->info.kind = REMAT_DEVICE_SIM;
    snprintf(dev->info.spec, sizeof dev->info.spec, "sim:%llu", (unsigned long long)capacity);
    snprintf(dev->info.name, sizeof dev->info.name, "sim (address space only)");
    dev->info.total_bytes = capacity;
    dev->info.free_bytes = capacity;
    return REMAT_OK;
}
