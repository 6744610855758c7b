/* alloc/backend_cuda.c: the CUDA backend: segments from cudaMalloc, stream order through events,
 * and virtual memory (cuMemAddressReserve/cuMemCreate/cuMemMap) for expandable segments. The
 * driver API is reached through cudaGetDriverEntryPointByVersion, never linked (-lcuda), so the
 * binary starts on machines without a driver. Built only with REMAT_HAVE_CUDA; otherwise opening
 * "cuda:N" says this build has no CUDA. */
#include "alloc/device.h"

#include <stdio.h>
#include <string.h>

#ifdef REMAT_HAVE_CUDA
#include <cuda.h> /* driver API types only */
#include <cuda_runtime.h>
#include <pthread.h>
#include <stdlib.h>

/* Turns a CUDA error into a status with a message naming the call. */
static remat_status cuda_check(cudaError_t e, const char *what)
{
    if (e == cudaSuccess)
        return REMAT_OK;
    remat_status s = e == cudaErrorMemoryAllocation ? REMAT_ENOMEM : REMAT_EDEVICE;
    return remat_fail(s, "%s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
}

/* Makes dev's GPU current on this thread: every entry point calls it, since the pool may be used
 * from threads that never touched CUDA. */
static remat_status cuda_bind(remat_device *dev)
{
    return cuda_check(cudaSetDevice(dev->info.index), "cudaSetDevice");
}

static remat_status cuda_malloc(remat_device *dev, size_t bytes, void **out)
{
    REMAT_TRY(cuda_bind(dev));
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e == cudaErrorMemoryAllocation) {
        cudaGetLastError(); /* clear the sticky-free error so later calls succeed */
        size_t f = 0, t = 0;
        cudaMemGetInfo(&f, &t);
        char a[32], fb[32];
        return remat_fail(REMAT_ENOMEM, "cudaMalloc of %s on %s failed: %s free on the device",
                          remat_format_bytes(bytes, a, sizeof a), dev->info.spec,
                          remat_format_bytes(f, fb, sizeof fb));
    }
    REMAT_TRY(cuda_check(e, "cudaMalloc"));
    *out = p;
    return REMAT_OK;
}

static remat_status cuda_free(remat_device *dev, void *ptr, size_t bytes)
{
    (void)bytes;
    REMAT_TRY(cuda_bind(dev));
    return cuda_check(cudaFree(ptr), "cudaFree");
}

static remat_status cuda_mem_info(remat_device *dev, uint64_t *free_bytes, uint64_t *total_bytes)
{
    REMAT_TRY(cuda_bind(dev));
    size_t f = 0, t = 0;
    REMAT_TRY(cuda_check(cudaMemGetInfo(&f, &t), "cudaMemGetInfo"));
    *free_bytes = f;
    *total_bytes = t;
    return REMAT_OK;
}

static remat_status cuda_event_create(remat_device *dev, device_event **out)
{
    REMAT_TRY(cuda_bind(dev));
    cudaEvent_t ev;
    REMAT_TRY(cuda_check(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming), "cudaEventCreate"));
    *out = (device_event *)ev;
    return REMAT_OK;
}

static void cuda_event_destroy(remat_device *dev, device_event *ev)
{
    (void)dev;
    if (ev)
        cudaEventDestroy((cudaEvent_t)ev);
}

static remat_status cuda_event_record(remat_device *dev, device_event *ev, remat_stream stream)
{
    REMAT_TRY(cuda_bind(dev));
    return cuda_check(cudaEventRecord((cudaEvent_t)ev, (cudaStream_t)stream), "cudaEventRecord");
}

static remat_status cuda_stream_wait(remat_device *dev, remat_stream stream, device_event *ev)
{
    REMAT_TRY(cuda_bind(dev));
    return cuda_check(cudaStreamWaitEvent((cudaStream_t)stream, (cudaEvent_t)ev, 0), "cudaStreamWaitEvent");
}

static remat_status cuda_event_query(remat_device *dev, device_event *ev, int *done)
{
    (void)dev;
    cudaError_t e = cudaEventQuery((cudaEvent_t)ev);
    if (e == cudaErrorNotReady) {
        *done = 0;
        return REMAT_OK;
    }
    *done = 1;
    return cuda_check(e, "cudaEventQuery");
}

static remat_status cuda_copy(remat_device *dev, void *dst, const void *src, size_t bytes, int to_device)
{
    REMAT_TRY(cuda_bind(dev));
    enum cudaMemcpyKind kind = to_device == 1 ? cudaMemcpyHostToDevice
                               : to_device == 0 ? cudaMemcpyDeviceToHost
                                                : cudaMemcpyDeviceToDevice;
    return cuda_check(cudaMemcpy(dst, src, bytes, kind), "cudaMemcpy");
}

static remat_status cuda_sync(remat_device *dev)
{
    REMAT_TRY(cuda_bind(dev));
    return cuda_check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
}

/* ==== Virtual memory (expandable segments) ===================================================== */

typedef struct {
    CUresult (*address_reserve)(CUdeviceptr *, size_t, size_t, CUdeviceptr, unsigned long long);
    CUresult (*address_free)(CUdeviceptr, size_t);
    CUresult (*create)(CUmemGenericAllocationHandle *, size_t, const CUmemAllocationProp *,
                       unsigned long long);
    CUresult (*release)(CUmemGenericAllocationHandle);
    CUresult (*map)(CUdeviceptr, size_t, size_t, CUmemGenericAllocationHandle, unsigned long long);
    CUresult (*unmap)(CUdeviceptr, size_t);
    CUresult (*set_access)(CUdeviceptr, size_t, const CUmemAccessDesc *, size_t);
    CUresult (*granularity)(size_t *, const CUmemAllocationProp *, CUmemAllocationGranularity_flags);
} cuda_vm_api;

static cuda_vm_api vm_api;
static int vm_loaded; /* 1: every entry point found; -1: some missing */
static pthread_once_t vm_once = PTHREAD_ONCE_INIT;

static void *vm_entry(const char *name)
{
    void *fn = NULL;
    enum cudaDriverEntryPointQueryResult q;
    if (cudaGetDriverEntryPointByVersion(name, &fn, 12000, cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess) {
        cudaGetLastError();
        return NULL;
    }
    return fn;
}

static void vm_load(void)
{
    vm_api.address_reserve = (CUresult(*)(CUdeviceptr *, size_t, size_t, CUdeviceptr,
                                          unsigned long long))vm_entry("cuMemAddressReserve");
    vm_api.address_free = (CUresult(*)(CUdeviceptr, size_t))vm_entry("cuMemAddressFree");
    vm_api.create = (CUresult(*)(CUmemGenericAllocationHandle *, size_t, const CUmemAllocationProp *,
                                 unsigned long long))vm_entry("cuMemCreate");
    vm_api.release = (CUresult(*)(CUmemGenericAllocationHandle))vm_entry("cuMemRelease");
    vm_api.map = (CUresult(*)(CUdeviceptr, size_t, size_t, CUmemGenericAllocationHandle,
                              unsigned long long))vm_entry("cuMemMap");
    vm_api.unmap = (CUresult(*)(CUdeviceptr, size_t))vm_entry("cuMemUnmap");
    vm_api.set_access = (CUresult(*)(CUdeviceptr, size_t, const CUmemAccessDesc *, size_t))vm_entry(
        "cuMemSetAccess");
    vm_api.granularity = (CUresult(*)(size_t *, const CUmemAllocationProp *,
                                      CUmemAllocationGranularity_flags))vm_entry(
        "cuMemGetAllocationGranularity");
    vm_loaded = vm_api.address_reserve && vm_api.address_free && vm_api.create && vm_api.release &&
                        vm_api.map && vm_api.unmap && vm_api.set_access && vm_api.granularity
                    ? 1
                    : -1;
}

static remat_status vm_ready(remat_device *dev)
{
    REMAT_TRY(cuda_bind(dev)); /* the runtime initialises the driver and the context */
    pthread_once(&vm_once, vm_load);
    if (vm_loaded != 1)
        return remat_fail(REMAT_EUNSUPPORTED, "%s: the CUDA driver lacks the virtual memory API "
                                              "(cuMemCreate/cuMemMap)", dev->info.spec);
    return REMAT_OK;
}

static remat_status vm_check(CUresult r, const char *what, remat_device *dev)
{
    if (r == CUDA_SUCCESS)
        return REMAT_OK;
    return remat_fail(r == CUDA_ERROR_OUT_OF_MEMORY ? REMAT_ENOMEM : REMAT_EDEVICE,
                      "%s on %s failed: CUresult %d", what, dev->info.spec, (int)r);
}

static CUmemAllocationProp vm_prop(const remat_device *dev)
{
    CUmemAllocationProp prop;
    memset(&prop, 0, sizeof prop);
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    prop.location.id = dev->info.index;
    return prop;
}

/* One reservation: its granule-sized physical handles, mapped or 0. */
typedef struct vm_range {
    CUdeviceptr base;
    size_t size, gran;
    CUmemGenericAllocationHandle *handles;
    struct vm_range *next;
} vm_range;

static vm_range *vm_ranges;
static pthread_mutex_t vm_lock = PTHREAD_MUTEX_INITIALIZER;

/* The reservation holding [addr, addr + bytes), or NULL (call with vm_lock held). */
static vm_range *vm_find(CUdeviceptr addr, size_t bytes)
{
    for (vm_range *r = vm_ranges; r; r = r->next)
        if (addr >= r->base && addr + bytes <= r->base + r->size)
            return r;
    return NULL;
}

static remat_status cuda_vm_granularity(remat_device *dev, size_t *out)
{
    REMAT_TRY(vm_ready(dev));
    CUmemAllocationProp prop = vm_prop(dev);
    size_t g = 0;
    REMAT_TRY(vm_check(vm_api.granularity(&g, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM),
                       "cuMemGetAllocationGranularity", dev));
    size_t two_mib = (size_t)2 << 20;
    *out = g && two_mib % g == 0 ? two_mib : g;
    return REMAT_OK;
}

static remat_status cuda_vm_reserve(remat_device *dev, size_t bytes, void **out)
{
    size_t gran;
    REMAT_TRY(cuda_vm_granularity(dev, &gran));
    vm_range *r = calloc(1, sizeof *r);
    if (r)
        r->handles = calloc(bytes / gran + 1, sizeof *r->handles);
    if (!r || !r->handles) {
        if (r)
            free(r);
        return remat_fail(REMAT_ENOMEM, "cuda: out of host memory for a reservation's handles");
    }
    remat_status s = vm_check(vm_api.address_reserve(&r->base, bytes, 0, 0, 0), "cuMemAddressReserve", dev);
    if (s != REMAT_OK) {
        free(r->handles);
        free(r);
        return s;
    }
    r->size = bytes;
    r->gran = gran;
    pthread_mutex_lock(&vm_lock);
    r->next = vm_ranges;
    vm_ranges = r;
    pthread_mutex_unlock(&vm_lock);
    *out = (void *)(uintptr_t)r->base;
    return REMAT_OK;
}

static remat_status cuda_vm_release(remat_device *dev, void *base, size_t bytes)
{
    pthread_mutex_lock(&vm_lock);
    vm_range **at = &vm_ranges;
    while (*at && (*at)->base != (CUdeviceptr)(uintptr_t)base)
        at = &(*at)->next;
    vm_range *r = *at;
    if (r)
        *at = r->next;
    pthread_mutex_unlock(&vm_lock);
    if (!r)
        return remat_fail(REMAT_EINVAL, "cuda: %p is not a reservation", base);
    remat_status s = vm_check(vm_api.address_free(r->base, bytes), "cuMemAddressFree", dev);
    free(r->handles);
    free(r);
    return s;
}

/* Unmaps and releases granules [first, last) of r (call with vm_lock held). */
static remat_status vm_drop(remat_device *dev, vm_range *r, size_t first, size_t last)
{
    remat_status s = REMAT_OK;
    for (size_t i = first; i < last; i++) {
        if (!r->handles[i])
            continue;
        remat_status u = vm_check(vm_api.unmap(r->base + i * r->gran, r->gran), "cuMemUnmap", dev);
        remat_status v = vm_check(vm_api.release(r->handles[i]), "cuMemRelease", dev);
        r->handles[i] = 0;
        if (s == REMAT_OK)
            s = u != REMAT_OK ? u : v;
    }
    return s;
}

static remat_status cuda_vm_map(remat_device *dev, void *addr, size_t bytes)
{
    REMAT_TRY(vm_ready(dev));
    CUdeviceptr at = (CUdeviceptr)(uintptr_t)addr;
    CUmemAllocationProp prop = vm_prop(dev);
    CUmemAccessDesc access;
    memset(&access, 0, sizeof access);
    access.location = prop.location;
    access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
    pthread_mutex_lock(&vm_lock);
    vm_range *r = vm_find(at, bytes);
    remat_status s = r && (at - r->base) % r->gran == 0 && bytes % r->gran == 0
                         ? REMAT_OK
                         : remat_fail(REMAT_EINVAL, "cuda: cannot map %zu bytes at %p", bytes, addr);
    size_t first = r ? (size_t)(at - r->base) / r->gran : 0, i = first;
    for (; s == REMAT_OK && i < first + bytes / r->gran; i++) {
        CUmemGenericAllocationHandle h = 0;
        s = vm_check(vm_api.create(&h, r->gran, &prop, 0), "cuMemCreate", dev);
        if (s == REMAT_OK) {
            s = vm_check(vm_api.map(r->base + i * r->gran, r->gran, 0, h, 0), "cuMemMap", dev);
            if (s != REMAT_OK)
                vm_api.release(h);
            else
                r->handles[i] = h;
        }
    }
    if (s == REMAT_OK)
        s = vm_check(vm_api.set_access(at, bytes, &access, 1), "cuMemSetAccess", dev);
    if (s != REMAT_OK && r) {
        remat_status keep = s;
        vm_drop(dev, r, first, i);
        s = keep;
    }
    pthread_mutex_unlock(&vm_lock);
    if (s == REMAT_ENOMEM) {
        char a[32];
        return remat_fail(REMAT_ENOMEM, "mapping %s on %s failed: out of device memory",
                          remat_format_bytes(bytes, a, sizeof a), dev->info.spec);
    }
    return s;
}

static remat_status cuda_vm_unmap(remat_device *dev, void *addr, size_t bytes)
{
    REMAT_TRY(vm_ready(dev));
    /* Work queued on any stream may still touch the range: unmapping is not stream-ordered. */
    REMAT_TRY(cuda_check(cudaDeviceSynchronize(), "cudaDeviceSynchronize"));
    CUdeviceptr at = (CUdeviceptr)(uintptr_t)addr;
    pthread_mutex_lock(&vm_lock);
    vm_range *r = vm_find(at, bytes);
    remat_status s = r ? vm_drop(dev, r, (size_t)(at - r->base) / r->gran,
                                 (size_t)(at - r->base + bytes) / r->gran)
                       : remat_fail(REMAT_EINVAL, "cuda: cannot unmap %zu bytes at %p", bytes, addr);
    pthread_mutex_unlock(&vm_lock);
    return s;
}

const device_ops device_cuda_ops = {
    .name = "cuda",
    .malloc = cuda_malloc,
    .free = cuda_free,
    .mem_info = cuda_mem_info,
    .event_create = cuda_event_create,
    .event_destroy = cuda_event_destroy,
    .event_record = cuda_event_record,
    .stream_wait = cuda_stream_wait,
    .event_query = cuda_event_query,
    .copy = cuda_copy,
    .sync = cuda_sync,
    .host_accessible = 0,
    .vm_granularity = cuda_vm_granularity,
    .vm_reserve = cuda_vm_reserve,
    .vm_release = cuda_vm_release,
    .vm_map = cuda_vm_map,
    .vm_unmap = cuda_vm_unmap,
};

remat_status remat_cuda_device_count(int *out, const char **why)
{
    if (!out)
        return remat_fail(REMAT_EINVAL, "remat_cuda_device_count: out must not be NULL");
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    *out = 0;
    if (e == cudaErrorInsufficientDriver || e == cudaErrorNoDevice || e != cudaSuccess) {
        cudaGetLastError();
        if (why)
            *why = e == cudaErrorInsufficientDriver ? "no CUDA driver found"
                   : e == cudaErrorNoDevice         ? "no CUDA-capable GPU found"
                                                    : cudaGetErrorString(e);
        return REMAT_OK;
    }
    *out = n;
    if (why)
        *why = n ? "" : "no CUDA-capable GPU found";
    return REMAT_OK;
}

remat_status device_cuda_open(remat_device *dev, int index)
{
    int n = 0;
    const char *why = "";
    (void)!remat_cuda_device_count(&n, &why); /* a failure reads as no device: EDEVICE below */
    char spec[32];
    snprintf(spec, sizeof spec, "cuda:%d", index);
    if (n == 0)
        return remat_fail(REMAT_EDEVICE, "cannot open %s: %s", spec, why);
    if (index >= n)
        return remat_fail(REMAT_EINVAL, "cannot open %s: only %d CUDA device%s (cuda:0..cuda:%d)",
                          spec, n, n == 1 ? "" : "s", n - 1);
    struct cudaDeviceProp prop;
    REMAT_TRY(cuda_check(cudaGetDeviceProperties(&prop, index), "cudaGetDeviceProperties"));
    dev->ops = &device_cuda_ops;
    dev->info.kind = REMAT_DEVICE_CUDA;
    dev->info.index = index;
    snprintf(dev->info.spec, sizeof dev->info.spec, "%s", spec);
    snprintf(dev->info.name, sizeof dev->info.name, "%.127s", prop.name);
    REMAT_TRY(cuda_mem_info(dev, &dev->info.free_bytes, &dev->info.total_bytes));
    return REMAT_OK;
}

void device_cuda_close(remat_device *dev) { (void)dev; }

#else /* !REMAT_HAVE_CUDA */

const device_ops device_cuda_ops = {.name = "cuda"};

remat_status remat_cuda_device_count(int *out, const char **why)
{
    if (!out)
        return remat_fail(REMAT_EINVAL, "remat_cuda_device_count: out must not be NULL");
    *out = 0;
    if (why)
        *why = "this build has no CUDA support (built with REMAT_CUDA=0)";
    return REMAT_OK;
}

remat_status device_cuda_open(remat_device *dev, int index)
{
    (void)dev;
    return remat_fail(REMAT_EUNSUPPORTED, "cannot open cuda:%d: this build has no CUDA support "
                                          "(built with REMAT_CUDA=0)", index);
}

void device_cuda_close(remat_device *dev) { (void)dev; }

#endif
