/* tests/common/cli_run.c: runs the remat CLI from a test and captures its exit code and output. */
#include "tests/common/cli_run.h"

#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

const char *cli_bin(void)
{
    const char *b = getenv("REMAT_BIN");
    return b && *b ? b : "build/remat";
}

const char *cli_root(void)
{
    const char *r = getenv("REMAT_ROOT");
    return r && *r ? r : ".";
}

static void cli_slurp(const char *path, char *buf, size_t n)
{
    FILE *f = fopen(path, "rb");
    size_t got = 0;
    if (f) {
        got = fread(buf, 1, n - 1, f);
        fclose(f);
    }
    buf[got] = '\0';
}

static cli_result *cli_vrun(cli_result *res, const char *launcher, const char *fmt, va_list ap)
{
    char args[8192], cmd[16384];
    char out_path[] = "/tmp/remat-cli-out-XXXXXX", err_path[] = "/tmp/remat-cli-err-XXXXXX";
    int fo = mkstemp(out_path), fe = mkstemp(err_path);
    vsnprintf(args, sizeof args, fmt, ap);
    snprintf(cmd, sizeof cmd, "%s%s %s >%s 2>%s </dev/null", launcher, cli_sh_quote(cli_bin()), args,
             out_path, err_path);
    int st = system(cmd);
    res->code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    cli_slurp(out_path, res->out, sizeof res->out);
    cli_slurp(err_path, res->err, sizeof res->err);
    if (fo >= 0)
        close(fo);
    if (fe >= 0)
        close(fe);
    unlink(out_path);
    unlink(err_path);
    return res;
}

cli_result *cli_run(cli_result *res, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cli_vrun(res, "", fmt, ap);
    va_end(ap);
    return res;
}

int cli_mpi_launcher(char *buf, size_t n, int ranks, int timeout_s, char dir[CLI_MPI_DIR])
{
    /* Open MPI refuses root without the two ALLOW variables; set for this test run only. Under
     * ASan, Open MPI's own never-freed allocations (in plugins it has unloaded, so no
     * suppression can name them) would fail every rank: leak checking is off for the ranks, kept
     * for every single-process run of the same code. Its session directory is this launch's
     * own: two mpiruns at once (Criterion runs tests in parallel) otherwise share
     * /tmp/ompi.HOST.UID, and one's cleanup can remove it while the other creates its own below
     * it ("A call to mkdir was unable to create the desired directory"). */
    snprintf(dir, CLI_MPI_DIR, "/tmp/remat-ompi-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(buf, n,
             "env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ASAN_OPTIONS=detect_leaks=0 "
             "OMPI_MCA_rmaps_base_oversubscribe=1 OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive "
             "OMPI_MCA_orte_tmpdir_base=%s PRTE_MCA_prte_tmpdir_base=%s "
             "timeout %d mpirun -np %d ",
             dir, dir, timeout_s, ranks);
    return 0;
}

static int cli_remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

void cli_mpi_done(const char *dir)
{
    if (dir && *dir)
        nftw(dir, cli_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

cli_result *cli_run_ranks(cli_result *res, int ranks, const char *fmt, ...)
{
    char launcher[768], dir[CLI_MPI_DIR];
    if (cli_mpi_launcher(launcher, sizeof launcher, ranks, 300, dir) != 0) {
        res->code = -1;
        snprintf(res->err, sizeof res->err, "cannot make a session directory for mpirun");
        res->out[0] = '\0';
        return res;
    }
    va_list ap;
    va_start(ap, fmt);
    cli_vrun(res, launcher, fmt, ap);
    va_end(ap);
    cli_mpi_done(dir);
    return res;
}

/* s quoted for /bin/sh (single quotes; a quote inside becomes '\''). */
const char *cli_sh_quote(const char *s)
{
    static char bufs[8][2048];
    static int next;
    char *b = bufs[next++ % 8];
    size_t n = 0;
    b[n++] = '\'';
    for (; *s && n < sizeof bufs[0] - 8; s++) {
        if (*s == '\'') {
            memcpy(b + n, "'\\''", 4);
            n += 4;
        } else
            b[n++] = *s;
    }
    b[n++] = '\'';
    b[n] = '\0';
    return b;
}
