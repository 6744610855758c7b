/* tests/fuzz/fuzz_tokens.c: token files through gpt_tokens_load (it takes a path, so the input goes
 * to a temporary file first), then a data loader over what loaded. Every token must lie in
 * [0, max_token]; crashes, leaks and sanitizer reports are not fine. */
#include "model/gpt.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char fuzz_path[64];

static void fuzz_check_tokens(const gpt_tokens *t)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->tokens[i] < 0 || t->tokens[i] > t->max_token)
            abort();
    gpt_loader ld;
    if (gpt_loader_init(&ld, t, 2, 4, 1, 7) != REMAT_OK)
        return;
    int in[8], tg[8];
    for (int k = 0; k < 3; k++)
        gpt_loader_next(&ld, in, tg);
    gpt_loader_free(&ld);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    if (!fuzz_path[0])
        snprintf(fuzz_path, sizeof fuzz_path, "/tmp/remat-fuzz-tokens-%d.bin", (int)getpid());
    FILE *f = fopen(fuzz_path, "wb");
    if (!f)
        abort();
    if (n && fwrite(data, 1, n, f) != n)
        abort();
    fclose(f);
    gpt_tokens t;
    if (gpt_tokens_load(fuzz_path, &t) == REMAT_OK) {
        fuzz_check_tokens(&t);
        gpt_tokens_free(&t);
    }
    unlink(fuzz_path);
    return 0;
}
