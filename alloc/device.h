/* alloc/device.h: the narrow primitive interface the pool stands on. Each backend (host, sim,
 * cuda) fills one device_ops table; the pool never calls jemalloc, mmap or CUDA directly. */
#ifndef REMAT_ALLOC_DEVICE_H
#define REMAT_ALLOC_DEVICE_H

#include "core/core.h"

typedef struct device_event device_event; /* an opaque stream-ordered marker (cudaEvent_t) */

typedef struct {
    const char *name; /* "host", "sim", "cuda" */
    /* Raw device memory: one call per segment. malloc returns REMAT_ENOMEM when the device is
     * full (with a message), REMAT_EDEVICE for other device failures. */
    remat_status (*malloc)(remat_device *dev, size_t bytes, void **out);
    remat_status (*free)(remat_device *dev, void *ptr, size_t bytes);
    /* Free and total bytes as the device reports them now. */
    remat_status (*mem_info)(remat_device *dev, uint64_t *free_bytes, uint64_t *total_bytes);
    /* Stream ordering. Host and sim backends run everything in order, so their events are
     * trivially complete (NULL ops mean "always complete"). */
    remat_status (*event_create)(remat_device *dev, device_event **out);
    void (*event_destroy)(remat_device *dev, device_event *ev);
    remat_status (*event_record)(remat_device *dev, device_event *ev, remat_stream stream);
    /* Makes `stream` wait on the device for `ev` (no host blocking). */
    remat_status (*stream_wait)(remat_device *dev, remat_stream stream, device_event *ev);
    /* 1 if the work before ev has completed, 0 if not. */
    remat_status (*event_query)(remat_device *dev, device_event *ev, int *done);
    remat_status (*copy)(remat_device *dev, void *dst, const void *src, size_t bytes, int to_device);
    remat_status (*sync)(remat_device *dev);
    /* May the host read and write this device's memory directly? (host: yes; sim, cuda: no) */
    int host_accessible;
    /* Virtual memory, for expandable segments (all NULL where the device cannot): reserve address
     * space without memory, back [addr, addr + bytes) of it with memory and undo that, release the
     * reservation. Offsets and sizes are multiples of vm_granularity's answer. vm_map returns
     * REMAT_ENOMEM when the device is full. */
    remat_status (*vm_granularity)(remat_device *dev, size_t *out);
    remat_status (*vm_reserve)(remat_device *dev, size_t bytes, void **out);
    remat_status (*vm_release)(remat_device *dev, void *base, size_t bytes);
    remat_status (*vm_map)(remat_device *dev, void *addr, size_t bytes);
    remat_status (*vm_unmap)(remat_device *dev, void *addr, size_t bytes);
} device_ops;

struct remat_device {
    const device_ops *ops;
    remat_device_info info;
    uint64_t sim_reserved; /* sim: bytes of address space reserved now */
    void *backend;         /* backend-private state */
};

extern const device_ops device_host_ops;
extern const device_ops device_sim_ops;
extern const device_ops device_cuda_ops;

/* Backend openers: fill dev->info and dev->backend. */
remat_status device_host_open(remat_device *dev);
remat_status device_sim_open(remat_device *dev, uint64_t capacity);
remat_status device_cuda_open(remat_device *dev, int index);
void device_cuda_close(remat_device *dev);

#endif
