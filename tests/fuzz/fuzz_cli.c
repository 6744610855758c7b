/* tests/fuzz/fuzz_cli.c: argument vectors for the CLI's cheap commands, run in-process: any exit
 * code is fine, a crash, leak or sanitizer report is not. Input: NUL-separated arguments; the
 * first byte picks the command so the fuzzer cannot start a long training run. Run it with
 * -close_fd_mask=3 (scripts/run-fuzz.sh does) to silence the CLI's own output. */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *fuzz_commands[] = {"info", "fit", "plan", "replay", "--help", "bogus"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    if (n == 0 || n > 4096)
        return 0;
    char *buf = malloc(n + 1);
    memcpy(buf, data + 1, n - 1);
    buf[n - 1] = '\0';
    char *argv[34];
    int argc = 0;
    argv[argc++] = "remat";
    argv[argc++] = (char *)fuzz_commands[data[0] % (sizeof fuzz_commands / sizeof fuzz_commands[0])];
    for (size_t i = 0; i < n - 1 && argc < 33;) {
        argv[argc++] = buf + i;
        i += strlen(buf + i) + 1;
    }
    argv[argc] = NULL;
    cli_main(argc, argv);
    free(buf);
    return 0;
}
