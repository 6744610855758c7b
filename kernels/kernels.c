/* kernels/kernels.c: opening the kernel table and context that match a device. */
#include "kernels/internal.h"

#include <stdlib.h>

remat_status kern_open(remat_device *dev, const kern_table **table, kern_ctx **ctx)
{
    if (!dev || !table || !ctx)
        return remat_fail(REMAT_EINVAL, "kern_open: dev, table and ctx must not be NULL");
    remat_device_info info;
    REMAT_TRY(remat_device_info_get(dev, &info));
    if (info.kind == REMAT_DEVICE_SIM)
        return remat_fail(REMAT_EUNSUPPORTED,
                          "device %s is a simulated device: it has no memory to compute on, so "
                          "no kernels run there (use host or cuda:N)",
                          info.spec);
#ifndef REMAT_HAVE_CUDA
    if (info.kind == REMAT_DEVICE_CUDA)
        return remat_fail(REMAT_EUNSUPPORTED, "device %s: this build has no CUDA kernels",
                          info.spec);
#endif
    kern_ctx *k = calloc(1, sizeof *k);
    if (!k)
        return remat_fail(REMAT_ENOMEM, "kern_open: out of host memory for the kernel context");
    k->kind = info.kind;
    k->device_index = info.index;
    *table = &kern_cpu;
#ifdef REMAT_HAVE_CUDA
    if (info.kind == REMAT_DEVICE_CUDA) {
        remat_status s = kern_cuda_open(k, info.index);
        if (s != REMAT_OK) {
            free(k);
            return s;
        }
        *table = &kern_cuda;
    }
#endif
    *ctx = k;
    return REMAT_OK;
}

void kern_close(kern_ctx *ctx)
{
    if (!ctx)
        return;
#ifdef REMAT_HAVE_CUDA
    if (ctx->kind == REMAT_DEVICE_CUDA)
        kern_cuda_close(ctx);
#endif
    free(ctx->host_scratch);
    free(ctx);
}

remat_stream kern_stream(kern_ctx *ctx)
{
    return ctx ? ctx->stream : NULL;
}

uint64_t kern_syncs(const kern_ctx *ctx)
{
    return ctx ? ctx->syncs : 0;
}
