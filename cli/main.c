/* cli/main.c: the `remat` program's entry point (main); the subcommands are dispatched by cli/dispatch.c. */
#include "cli/cli.h"

#include <stdlib.h>
#include <unistd.h>

/* The CPU kernels run on OpenMP. libgomp's default wait policy spins idle threads for a long time,
 * which on a machine shared with other work (a CI runner, a laptop compiling) makes a training
 * step 5-300x slower (docs/RESULTS.md). libgomp reads its settings when it loads, before main, so
 * when the user set neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT we set a passive policy and start
 * again once. Set either variable to keep your own choice. */
static void remat_prefer_passive_openmp(char **argv)
{
    const char *policy = getenv("OMP_WAIT_POLICY"), *spin = getenv("GOMP_SPINCOUNT");
    if ((policy && *policy) || (spin && *spin))
        return;
    if (setenv("OMP_WAIT_POLICY", "passive", 1) != 0)
        return;
    execv("/proc/self/exe", argv);
    /* exec failed (no /proc): carry on with libgomp's defaults */
}

int main(int argc, char **argv)
{
    remat_prefer_passive_openmp(argv);
    cli_term_install();
    return cli_main(argc, argv);
}
