/* tests/fuzz/fuzz_trace.c: trace text through remat_trace_parse (from fmemopen), and a trace that
 * parses is replayed on a small sim device, with and without caching. Errors (parse, OOM) are fine;
 * crashes, leaks and sanitizer reports are not. */
#include "remat.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static remat_device *fuzz_dev;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    if (!fuzz_dev && remat_device_open("sim:4GiB", &fuzz_dev) != REMAT_OK)
        abort();
    if (n == 0)
        return 0;
    FILE *f = fmemopen((void *)data, n, "r");
    if (!f)
        return 0;
    remat_trace *trace = NULL;
    remat_status st = remat_trace_parse(f, "fuzz", &trace);
    fclose(f);
    if (st != REMAT_OK)
        return 0;
    if (remat_trace_events(trace) <= 4096) {
        remat_replay_result r;
        (void)!remat_trace_replay(trace, fuzz_dev, NULL, &r); /* failing cleanly is fine */
        remat_pool_config no_cache = {.no_cache = 1};
        (void)!remat_trace_replay(trace, fuzz_dev, &no_cache, &r);
        remat_pool_config limited = {.limit_bytes = 64u << 20, .max_split_bytes = 4u << 20};
        (void)!remat_trace_replay(trace, fuzz_dev, &limited, &r);
    }
    remat_trace_free(trace);
    return 0;
}
