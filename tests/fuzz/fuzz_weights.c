/* tests/fuzz/fuzz_weights.c: llm.c weights files through gpt_weights_read (it takes a path, so the
 * input goes to a temporary file first). Errors are fine; a parse that succeeds must describe a
 * config that passes gpt_config_check; crashes, leaks and sanitizer reports are not fine. */
#include "model/gpt.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char fuzz_path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    if (!fuzz_path[0])
        snprintf(fuzz_path, sizeof fuzz_path, "/tmp/remat-fuzz-weights-%d.bin", (int)getpid());
    FILE *f = fopen(fuzz_path, "wb");
    if (!f)
        abort();
    if (n && fwrite(data, 1, n, f) != n)
        abort();
    fclose(f);
    gpt_config cfg;
    float *params = NULL;
    if (gpt_weights_read(fuzz_path, &cfg, &params) == REMAT_OK) {
        if (gpt_config_check(&cfg) != REMAT_OK)
            abort();
        free(params);
    }
    unlink(fuzz_path);
    return 0;
}
