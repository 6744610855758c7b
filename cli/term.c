/* cli/term.c: what the CLI writes to the terminal. Names come from files and arguments (trace and
 * chain paths, stage and model names, messages quoting them) and may hold ESC, BEL, CR or other
 * control characters that would move the cursor, retitle the window or hide text. Rather than
 * escaping at each of the many places a name is printed, stdout and stderr themselves show every
 * control character other than newline and tab as \xNN (glibc's fopencookie; elsewhere the
 * streams are left as they are). */
#include "cli/cli.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

/* The original streams (stdout, stderr): the filters write through them, and cli_progress
 * writes to them directly. */
static FILE *term_raw_out, *term_raw_err;
static int term_errno; /* the first write error's errno, for the message at the end */

static int term_is_shown_raw(unsigned char c)
{
    return c >= 0x20 ? c != 0x7f : c == '\n' || c == '\t';
}

#if defined(__GLIBC__)
static ssize_t term_write(void *cookie, const char *buf, size_t n)
{
    FILE *raw = cookie;
    for (size_t i = 0; i < n;) {
        size_t run = 0;
        while (i + run < n && term_is_shown_raw((unsigned char)buf[i + run]))
            run++;
        if ((run && fwrite(buf + i, 1, run, raw) != run) ||
            (i + run < n && fprintf(raw, "\\x%02x", (unsigned char)buf[i + run]) < 0))
            break;
        i += run + (i + run < n);
    }
    if (!ferror(raw) && fflush(raw) == 0)
        return (ssize_t)n;
    if (raw == term_raw_out && !term_errno)
        term_errno = errno ? errno : EIO;
    return -1;
}

static FILE *term_filter(FILE *raw, int mode)
{
    cookie_io_functions_t io = {.read = NULL, .write = term_write, .seek = NULL, .close = NULL};
    FILE *f = fopencookie(raw, "w", io);
    if (f)
        setvbuf(f, NULL, mode, BUFSIZ);
    return f ? f : raw;
}
#endif

void cli_term_install(void)
{
    term_raw_out = stdout;
    term_raw_err = stderr;
#if defined(__GLIBC__)
    stdout = term_filter(term_raw_out, isatty(STDOUT_FILENO) ? _IOLBF : _IOFBF);
    stderr = term_filter(term_raw_err, _IONBF);
#endif
}

void cli_progress(FILE *f, const char *fmt, ...)
{
    FILE *raw = f == stdout && term_raw_out   ? term_raw_out
                : f == stderr && term_raw_err ? term_raw_err
                                              : f;
    fflush(f); /* what the filter holds goes first */
    va_list ap;
    va_start(ap, fmt);
    vfprintf(raw, fmt, ap);
    va_end(ap);
    fflush(raw);
}

int cli_finish_stdout(const char *cmd, int rc)
{
    errno = 0;
    int bad = fflush(stdout) != 0;
    bad |= ferror(stdout) != 0;
    if (term_raw_out && term_raw_out != stdout)
        bad |= fflush(term_raw_out) != 0 || ferror(term_raw_out);
    if (!bad)
        return rc;
    int err = term_errno ? term_errno : errno;
    fprintf(stderr, "remat%s%s: cannot write the standard output: %s\n", cmd ? " " : "",
            cmd ? cmd : "", err ? strerror(err) : "write error");
    clearerr(stdout);
    return rc == EXIT_OK ? EXIT_RUNTIME : rc;
}
