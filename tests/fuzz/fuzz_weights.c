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

/* 1 if the input's header announces more than 4 Mi parameters (16 MiB). gpt_weights_read allocates
 * what the header announces before it reads, so such inputs only measure malloc (and a header
 * announcing terabytes makes the sanitizer's allocator abort): they are skipped until the reader
 * checks the file's size first (reported to the model module). */
static int fuzz_announces_too_much(const uint8_t *data, size_t n)
{
    int32_t h[8];
    if (n < sizeof h)
        return 0;
    memcpy(h, data, sizeof h);
    gpt_config c = {.max_seq = h[2], .vocab = h[3], .layers = h[4], .heads = h[5],
                    .channels = h[6], .padded_vocab = h[7]};
    if (gpt_config_check(&c) != REMAT_OK)
        return 0;
    gpt_param_layout lay;
    gpt_layout_params(&c, &lay);
    return lay.total > (4u << 20);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    if (fuzz_announces_too_much(data, n))
        return 0;
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
