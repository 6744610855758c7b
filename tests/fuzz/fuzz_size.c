/* tests/fuzz/fuzz_size.c: size and budget strings: never crash; what parses formats and re-parses. */
#include "remat.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    char text[256];
    if (n >= sizeof text)
        n = sizeof text - 1;
    memcpy(text, data, n);
    text[n] = '\0';
    uint64_t v;
    double pct;
    int is_pct;
    if (remat_parse_size(text, &v) == REMAT_OK) {
        char buf[32];
        remat_format_bytes(v, buf, sizeof buf);
        if (strlen(buf) == 0)
            abort();
    }
    if (remat_parse_budget(text, &v, &pct, &is_pct) == REMAT_OK && is_pct && !(pct > 0))
        abort();
    return 0;
}
