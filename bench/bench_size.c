/* bench/bench_size.c: remat_parse_size against strtoull on plain digits (exercises the shim). */
#include "bench/bench.h"
#include "remat.h"

#include <stdlib.h>

static const char *inputs[] = {"80GB", "512MiB", "1.5GiB", "123456789B", "40 KiB", "7TB"};

static void bench_parse_size(remat_bench_state *st, void *arg)
{
    (void)arg;
    uint64_t sum = 0, v;
    while (remat_bench_running(st))
        for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++)
            if (remat_parse_size(inputs[i], &v) == REMAT_OK)
                sum += v;
    remat_bench_set_items(st, 0);
    remat_bench_counter(st, "checksum", (double)(sum & 1));
}

static void bench_strtoull(remat_bench_state *st, void *arg)
{
    (void)arg;
    uint64_t sum = 0;
    while (remat_bench_running(st))
        for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++)
            sum += strtoull(inputs[i], NULL, 10);
    remat_bench_counter(st, "checksum", (double)(sum & 1));
}

int main(int argc, char **argv)
{
    remat_bench_register("size/remat_parse_size", bench_parse_size, NULL);
    remat_bench_register("size/strtoull", bench_strtoull, NULL);
    remat_bench_compare("size/remat_parse_size", "size/strtoull", 0);
    return remat_bench_main(argc, argv);
}
