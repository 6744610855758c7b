/* alloc/backend_cuda.c: the CUDA backend: segments from cudaMalloc, stream order through events.
 * Built only with REMAT_HAVE_CUDA; otherwise opening "cuda:N" says this build has no CUDA. */
#include "alloc/device.h"

#include <stdio.h>
#include <string.h>

#ifdef REMAT_HAVE_CUDA
#include <cuda_runtime.h>

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
    remat_cuda_device_count(&n, &why);
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
