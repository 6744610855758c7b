/* alloc/device.c: device specs ("auto", "host", "sim:SIZE", "cuda:N") and dispatch to backends. */
#include "alloc/device.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Parses the N of "cuda:N": decimal digits only, at most 1023. */
static remat_status device_parse_index(const char *spec, const char *digits, int *out)
{
    if (*digits == '\0')
        return remat_fail(REMAT_EINVAL, "bad device '%s': expected cuda:N with N a device number", spec);
    for (const char *p = digits; *p; p++)
        if (!isdigit((unsigned char)*p))
            return remat_fail(REMAT_EINVAL, "bad device '%s': '%s' is not a device number", spec, digits);
    errno = 0;
    long v = strtol(digits, NULL, 10);
    if (errno || v > 1023)
        return remat_fail(REMAT_EINVAL, "bad device '%s': device number '%s' is out of range", spec, digits);
    *out = (int)v;
    return REMAT_OK;
}

static remat_status device_open_spec(const char *spec, remat_device *dev)
{
    if (strcmp(spec, "host") == 0)
        return device_host_open(dev);
    if (strncmp(spec, "sim:", 4) == 0) {
        uint64_t cap;
        if (remat_parse_size(spec + 4, &cap) != REMAT_OK)
            return remat_fail_context(REMAT_EINVAL, "bad device '%s'", spec);
        if (cap == 0)
            return remat_fail(REMAT_EINVAL, "bad device '%s': the sim size must be above 0", spec);
        return device_sim_open(dev, cap);
    }
    if (strncmp(spec, "cuda:", 5) == 0) {
        int index = 0;
        REMAT_TRY(device_parse_index(spec, spec + 5, &index));
        return device_cuda_open(dev, index);
    }
    if (strcmp(spec, "cuda") == 0)
        return device_cuda_open(dev, 0);
    if (strcmp(spec, "auto") == 0) {
        int n = 0;
        (void)!remat_cuda_device_count(&n, NULL); /* a failure leaves n = 0: host */
        if (n > 0 && device_cuda_open(dev, 0) == REMAT_OK)
            return REMAT_OK;
        memset(dev, 0, sizeof *dev);
        return device_host_open(dev);
    }
    return remat_fail(REMAT_EINVAL, "unknown device '%s' (use auto, host, sim:SIZE or cuda:N)", spec);
}

remat_status remat_device_open(const char *spec, remat_device **out)
{
    if (!out)
        return remat_fail(REMAT_EINVAL, "remat_device_open: out must not be NULL");
    *out = NULL;
    if (!spec || !*spec)
        return remat_fail(REMAT_EINVAL, "empty device spec (use auto, host, sim:SIZE or cuda:N)");
    remat_device *dev = calloc(1, sizeof *dev);
    if (!dev)
        return remat_fail(REMAT_ENOMEM, "remat_device_open: out of host memory");
    remat_status s = device_open_spec(spec, dev);
    if (s != REMAT_OK) {
        free(dev);
        return s;
    }
    *out = dev;
    return REMAT_OK;
}

void remat_device_close(remat_device *dev)
{
    if (!dev)
        return;
    if (dev->info.kind == REMAT_DEVICE_CUDA)
        device_cuda_close(dev);
    free(dev);
}

remat_status remat_device_info_get(const remat_device *dev, remat_device_info *out)
{
    if (!dev || !out)
        return remat_fail(REMAT_EINVAL, "remat_device_info_get: dev and out must not be NULL");
    *out = dev->info;
    uint64_t free_b, total_b;
    if (dev->ops->mem_info((remat_device *)dev, &free_b, &total_b) == REMAT_OK) {
        out->free_bytes = free_b;
        out->total_bytes = total_b;
    }
    return REMAT_OK;
}

remat_status remat_device_copy(remat_device *dev, void *dst, const void *src, size_t bytes,
                               remat_copy_kind to_device)
{
    if (!dev || (bytes && (!dst || !src)))
        return remat_fail(REMAT_EINVAL, "remat_device_copy: NULL device or buffer");
    if ((int)to_device < 0 || (int)to_device > 2)
        return remat_fail(REMAT_EINVAL, "remat_device_copy: direction %d is not 0, 1 or 2", to_device);
    if (bytes == 0)
        return REMAT_OK;
    return dev->ops->copy(dev, dst, src, bytes, to_device);
}

remat_status remat_device_sync(remat_device *dev)
{
    if (!dev)
        return remat_fail(REMAT_EINVAL, "remat_device_sync: dev must not be NULL");
    return dev->ops->sync ? dev->ops->sync(dev) : REMAT_OK;
}
