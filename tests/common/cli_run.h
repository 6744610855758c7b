/* tests/common/cli_run.h: runs the remat CLI from a test and captures its exit code and output. */
#ifndef REMAT_TESTS_CLI_RUN_H
#define REMAT_TESTS_CLI_RUN_H

#include <stddef.h>

typedef struct {
    int code;        /* exit status; -1 if it did not exit normally (signal) */
    char out[65536]; /* stdout */
    char err[65536]; /* stderr */
} cli_result;

/* Runs "$REMAT_BIN args" through /bin/sh (args is shell-quoted by the caller). Returns res. */
cli_result *cli_run(cli_result *res, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same under `mpirun -np ranks` (oversubscribed, root allowed, one OpenMP thread a rank,
 * a 300 s timeout), for the multi-process tests. */
cli_result *cli_run_ranks(cli_result *res, int ranks, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The command prefix that runs a program under `mpirun -np ranks` for a test (root allowed,
 * oversubscribed, one OpenMP thread a rank, `timeout timeout_s`), with an Open MPI session
 * directory of its own: `dir`, made here, which cli_mpi_done removes after the run. 0, or -1
 * when the directory cannot be made. */
enum { CLI_MPI_DIR = 64 };
int cli_mpi_launcher(char *buf, size_t n, int ranks, int timeout_s, char dir[CLI_MPI_DIR]);
void cli_mpi_done(const char *dir);
/* Path of the CLI under test ($REMAT_BIN, default build/remat) and of the repo ($REMAT_ROOT, ".").
 */
const char *cli_bin(void);
const char *cli_root(void);
/* s quoted for /bin/sh in single quotes (a quote inside becomes '\''), in one of 8 rotating
 * static buffers (so a format may hold several); for test paths under 2 KB. */
const char *cli_sh_quote(const char *s);

#endif
