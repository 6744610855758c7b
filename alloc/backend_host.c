/* alloc/backend_host.c: the host backend: segments are jemalloc allocations in host memory. */
#include "alloc/device.h"

#include <jemalloc/jemalloc.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define HOST_SEGMENT_ALIGN 4096

static remat_status host_malloc(remat_device *dev, size_t bytes, void **out)
{
    (void)dev;
    void *p = bytes ? mallocx(bytes, MALLOCX_ALIGN(HOST_SEGMENT_ALIGN)) : NULL;
    if (!p) {
        char h[32];
        return remat_fail(REMAT_ENOMEM, "host: cannot allocate %s", remat_format_bytes(bytes, h, sizeof h));
    }
    *out = p;
    return REMAT_OK;
}

static remat_status host_free(remat_device *dev, void *ptr, size_t bytes)
{
    (void)dev, (void)bytes;
    if (ptr)
        dallocx(ptr, MALLOCX_ALIGN(HOST_SEGMENT_ALIGN));
    return REMAT_OK;
}

static remat_status host_mem_info(remat_device *dev, uint64_t *free_bytes, uint64_t *total_bytes)
{
    (void)dev;
    long pages = sysconf(_SC_PHYS_PAGES), avail = sysconf(_SC_AVPHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || size <= 0)
        return remat_fail(REMAT_EDEVICE, "host: cannot read the amount of physical memory");
    *total_bytes = (uint64_t)pages * (uint64_t)size;
    *free_bytes = avail > 0 ? (uint64_t)avail * (uint64_t)size : 0;
    return REMAT_OK;
}

static remat_status host_copy(remat_device *dev, void *dst, const void *src, size_t bytes, int to_device)
{
    (void)dev, (void)to_device;
    memmove(dst, src, bytes);
    return REMAT_OK;
}

/* ---- Virtual memory: reserve with PROT_NONE, map by making pages accessible --------------- */

static remat_status host_vm_granularity(remat_device *dev, size_t *out)
{
    (void)dev;
    *out = (size_t)2 << 20;
    return REMAT_OK;
}

static remat_status host_vm_reserve(remat_device *dev, size_t bytes, void **out)
{
    (void)dev;
    void *p = mmap(NULL, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        char a[32];
        return remat_fail(REMAT_ENOMEM, "host: cannot reserve %s of address space",
                          remat_format_bytes(bytes, a, sizeof a));
    }
    *out = p;
    return REMAT_OK;
}

static remat_status host_vm_release(remat_device *dev, void *base, size_t bytes)
{
    (void)dev;
    if (munmap(base, bytes) != 0)
        return remat_fail(REMAT_EDEVICE, "host: cannot release %zu bytes at %p", bytes, base);
    return REMAT_OK;
}

static remat_status host_vm_map(remat_device *dev, void *addr, size_t bytes)
{
    (void)dev;
    if (mprotect(addr, bytes, PROT_READ | PROT_WRITE) != 0) {
        char a[32];
        return remat_fail(REMAT_ENOMEM, "host: cannot map %s at %p", remat_format_bytes(bytes, a, sizeof a), addr);
    }
    return REMAT_OK;
}

static remat_status host_vm_unmap(remat_device *dev, void *addr, size_t bytes)
{
    (void)dev;
    /* Give the pages back, then make the range inaccessible again. */
    if (madvise(addr, bytes, MADV_DONTNEED) != 0 || mprotect(addr, bytes, PROT_NONE) != 0)
        return remat_fail(REMAT_EDEVICE, "host: cannot unmap %zu bytes at %p", bytes, addr);
    return REMAT_OK;
}

const device_ops device_host_ops = {
    .name = "host",
    .malloc = host_malloc,
    .free = host_free,
    .mem_info = host_mem_info,
    .copy = host_copy,
    .host_accessible = 1,
    .vm_granularity = host_vm_granularity,
    .vm_reserve = host_vm_reserve,
    .vm_release = host_vm_release,
    .vm_map = host_vm_map,
    .vm_unmap = host_vm_unmap,
};

remat_status device_host_open(remat_device *dev)
{
    dev->ops = &device_host_ops;
    dev->info.kind = REMAT_DEVICE_HOST;
    dev->info.index = 0;
    strcpy(dev->info.spec, "host");
    strcpy(dev->info.name, "host (jemalloc)");
    return host_mem_info(dev, &dev->info.free_bytes, &dev->info.total_bytes);
}
