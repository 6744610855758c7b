/* tests/unit/test_device.c: device specs, the sim device's capacity, missing CUDA handled cleanly. */
#include "remat.h"

#include <criterion/criterion.h>
#include <string.h>

Test(device, host_opens_and_reports_memory)
{
    remat_device *dev = NULL;
    cr_assert_eq(remat_device_open("host", &dev), REMAT_OK, "%s", remat_last_error());
    remat_device_info info;
    cr_assert_eq(remat_device_info_get(dev, &info), REMAT_OK);
    cr_assert_eq(info.kind, REMAT_DEVICE_HOST);
    cr_assert_str_eq(info.spec, "host");
    cr_assert_gt(info.total_bytes, 1ull << 28);
    cr_assert_leq(info.free_bytes, info.total_bytes);
    remat_device_close(dev);
}

Test(device, auto_opens_something_usable)
{
    remat_device *dev = NULL;
    cr_assert_eq(remat_device_open("auto", &dev), REMAT_OK, "%s", remat_last_error());
    remat_device_info info;
    cr_assert_eq(remat_device_info_get(dev, &info), REMAT_OK);
    int n = 0;
    cr_assert_eq(remat_cuda_device_count(&n, NULL), REMAT_OK);
    cr_assert_eq(info.kind, n > 0 ? REMAT_DEVICE_CUDA : REMAT_DEVICE_HOST);
    remat_device_close(dev);
}

Test(device, sim_capacity_is_the_spec)
{
    remat_device *dev = NULL;
    cr_assert_eq(remat_device_open("sim:80GB", &dev), REMAT_OK, "%s", remat_last_error());
    remat_device_info info;
    cr_assert_eq(remat_device_info_get(dev, &info), REMAT_OK);
    cr_assert_eq(info.kind, REMAT_DEVICE_SIM);
    cr_assert_eq(info.total_bytes, 80000000000ull);
    cr_assert_eq(info.free_bytes, 80000000000ull);
    char dst[8];
    cr_assert_eq(remat_device_copy(dev, dst, "abc", 3, REMAT_COPY_DEVICE_TO_HOST),
                 REMAT_EUNSUPPORTED);
    remat_device_close(dev);
}

Test(device, missing_cuda_is_a_status_not_a_crash)
{
    int n = -1;
    const char *why = NULL;
    cr_assert_eq(remat_cuda_device_count(&n, &why), REMAT_OK);
    cr_assert_geq(n, 0);
    if (n > 0)
        return;
    cr_assert(why && *why);
    remat_device *dev = (remat_device *)0x1;
    remat_status s = remat_device_open("cuda:0", &dev);
    cr_assert(s == REMAT_EDEVICE || s == REMAT_EUNSUPPORTED, "status %d", s);
    cr_assert_null(dev);
    cr_assert(strstr(remat_last_error(), "cuda:0"), "%s", remat_last_error());
}

Test(device, bad_specs_name_the_value)
{
    static const char *bad[] = {"cuda:-1", "sim:12XB", "sim:99999999999TB", "sim:", "sim:0",
                                "gpu", "cuda:", "cuda:abc", "cuda:99999999999", "hostx", "Host"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        remat_device *dev = (remat_device *)0x1;
        cr_assert_eq(remat_device_open(bad[i], &dev), REMAT_EINVAL, "'%s' should be EINVAL", bad[i]);
        cr_assert_null(dev);
        cr_assert(strstr(remat_last_error(), bad[i]), "'%s': %s", bad[i], remat_last_error());
    }
    remat_device *dev = NULL;
    cr_assert_eq(remat_device_open("", &dev), REMAT_EINVAL);
    cr_assert(strstr(remat_last_error(), "empty"));
    cr_assert_eq(remat_device_open(NULL, &dev), REMAT_EINVAL);
    cr_assert_eq(remat_device_open("host", NULL), REMAT_EINVAL);
    remat_device_close(NULL);
}

Test(device, host_copy_moves_bytes)
{
    remat_device *dev = NULL;
    cr_assert_eq(remat_device_open("host", &dev), REMAT_OK);
    char a[6] = "hello", b[6] = {0};
    cr_assert_eq(remat_device_copy(dev, b, a, 6, REMAT_COPY_HOST_TO_DEVICE), REMAT_OK);
    cr_assert_str_eq(b, "hello");
    cr_assert_eq(remat_device_copy(dev, b, a, 6, (remat_copy_kind)7), REMAT_EINVAL);
    cr_assert_eq(remat_device_sync(dev), REMAT_OK);
    remat_device_close(dev);
}
