/* cli/cli.c: error output, exit codes and option-value parsing shared by the subcommands. */
#include "cli/cli.h"
#include "core/core.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "remat %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see 'remat %s --help')\n", cmd);
    va_end(ap);
    return EXIT_USAGE;
}

int cli_bad_option(const char *cmd, char **argv)
{
    if (optopt)
        return cli_usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
    return cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
}

int cli_exit_code(remat_status s)
{
    switch (s) {
    case REMAT_OK: return EXIT_OK;
    case REMAT_EINVAL:
    case REMAT_EPARSE:
    case REMAT_EIO:
    /* a request this build or device cannot do (kernels on a sim device, a chain beyond the
     * solvers' limits) is fixed by changing the command, not by retrying it */
    case REMAT_EUNSUPPORTED: return EXIT_USAGE;
    default: return EXIT_RUNTIME;
    }
}

int cli_fail(const char *cmd, remat_status s, const char *what)
{
    const char *detail = remat_last_error();
    if (what && *what)
        fprintf(stderr, "remat %s: %s: %s\n", cmd, what, *detail ? detail : remat_strerror(s));
    else
        fprintf(stderr, "remat %s: %s\n", cmd, *detail ? detail : remat_strerror(s));
    return cli_exit_code(s);
}

int cli_parse_int(const char *cmd, const char *opt, const char *text, long lo, long hi, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = text ? strtol(text, &end, 10) : 0;
    if (!text || !*text || *end || errno) {
        cli_usage_error(cmd, "%s expects a whole number, got '%s'", opt, text ? text : "");
        return -1;
    }
    if (v < lo || v > hi) {
        cli_usage_error(cmd, "%s %s is out of range [%ld, %ld]", opt, text, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_double(const char *cmd, const char *opt, const char *text, double lo, double hi, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = text ? strtod(text, &end) : 0;
    if (!text || !*text || *end || errno || !isfinite(v)) {
        cli_usage_error(cmd, "%s expects a number, got '%s'", opt, text ? text : "");
        return -1;
    }
    if (v < lo || v > hi) {
        cli_usage_error(cmd, "%s %s is out of range [%g, %g]", opt, text, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_size(const char *cmd, const char *opt, const char *text, uint64_t *out)
{
    if (remat_parse_size(text ? text : "", out) != REMAT_OK) {
        cli_usage_error(cmd, "%s: %s", opt, remat_last_error());
        return -1;
    }
    return 0;
}

int cli_is_help(const char *arg) { return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0; }

void cli_json_string(FILE *f, const char *s) { remat_json_string(f, s); }

remat_status cli_quiet_stdout(void)
{
    fflush(stdout);
    int fd = open("/dev/null", O_WRONLY);
    if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0) {
        if (fd >= 0)
            close(fd);
        return remat_fail(REMAT_EIO, "cannot send stdout to /dev/null: %s", strerror(errno));
    }
    close(fd);
    return REMAT_OK;
}
