/* cli/gnuplot.c: drawing a picture with gnuplot without letting user text run as gnuplot code.
 * gnuplot executes backquoted text (`cmd`) and system("cmd") and expands @macros; inside a
 * single-quoted string only the quote is special (and gnuplot 5.4 misreads a '' escape at the
 * start of a string), and a line break ends the command. So every piece of user text goes into
 * the script as a concatenation of single-quoted strings holding no quote, with quotes,
 * backquotes, '@' and control characters (line breaks included) spelled as octal escapes in
 * double-quoted pieces ("\047", "\140", "\100", "\012"): the string gnuplot builds is exactly
 * the text (a path still names its file). The script goes to gnuplot on a pipe. */
#include "cli/cli.h"
#include "core/core.h"

#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

void cli_plot_string(FILE *f, const char *s)
{
    fputs("(''", f); /* a parenthesised concatenation, valid wherever a string is */
    int open = 0;    /* inside a single-quoted piece */
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '`' || *c == '@' || *c == '\'' || *c < 0x20 || *c == 0x7f) {
            fprintf(f, "%s.\"\\%03o\"", open ? "'" : "", *c);
            open = 0;
            continue;
        }
        if (!open) {
            fputs(".'", f);
            open = 1;
        }
        fputc(*c, f);
    }
    fputs(open ? "')" : ")", f);
}

static int plot_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

remat_status cli_plot_begin(cli_plot *p, const char *path, const char *terminal)
{
    memset(p, 0, sizeof *p);
    p->svg = plot_ends_with(path, ".svg");
    REMAT_TRY(cli_output_open(&p->out, path));
    fclose(p->out.f); /* gnuplot opens the temporary file by name */
    p->out.f = NULL;
    p->script = open_memstream(&p->text, &p->len);
    if (!p->script) {
        cli_output_close(&p->out, 0);
        return remat_fail(REMAT_ENOMEM, "out of host memory");
    }
    fprintf(p->script, "%s\nset output ", terminal);
    cli_plot_string(p->script, p->out.tmp);
    fputc('\n', p->script);
    return REMAT_OK;
}

void cli_plot_abort(cli_plot *p)
{
    if (p->script)
        fclose(p->script);
    p->script = NULL;
    free(p->text);
    p->text = NULL;
    cli_output_close(&p->out, 0);
}

/* Starts gnuplot reading its script from a pipe; ENOENT and the like come back as the error. */
static int plot_spawn(pid_t *pid, int *to_child)
{
    const char *prog = getenv("REMAT_GNUPLOT");
    if (!prog || !*prog)
        prog = "gnuplot";
    int fds[2];
    if (pipe(fds) != 0)
        return errno;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[0], STDIN_FILENO);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    char *argv[] = {(char *)prog, NULL};
    fflush(NULL);
    int err = posix_spawnp(pid, prog, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[0]);
    if (err) {
        close(fds[1]);
        return err;
    }
    *to_child = fds[1];
    return 0;
}

/* Writes the whole script to gnuplot; a gnuplot that exits early is seen in its status. */
static void plot_feed(int fd, const char *text, size_t len)
{
    struct sigaction ign, old;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &ign, &old);
    while (len > 0) {
        ssize_t k = write(fd, text, len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        text += k;
        len -= (size_t)k;
    }
    close(fd);
    sigaction(SIGPIPE, &old, NULL);
}

/* Is the file a picture of the kind asked for: non-empty, PNG signature or an SVG header? */
static remat_status plot_check_picture(const char *path, int svg, const char *shown)
{
    FILE *f = fopen(path, "rb");
    char head[256] = {0};
    size_t got = f ? fread(head, 1, sizeof head - 1, f) : 0;
    if (f)
        fclose(f);
    if (got == 0)
        return remat_fail(REMAT_EIO, "gnuplot wrote nothing to %s", shown);
    if (svg ? !(strstr(head, "<svg") || strstr(head, "<?xml"))
            : (got < 8 || memcmp(head, "\x89PNG\r\n\x1a\n", 8) != 0))
        return remat_fail(REMAT_EIO, "gnuplot's output for %s is not %s", shown,
                          svg ? "an SVG file" : "a PNG file");
    return REMAT_OK;
}

remat_status cli_plot_finish(cli_plot *p, int *missing)
{
    *missing = 0;
    int bad = fclose(p->script) != 0;
    p->script = NULL;
    pid_t pid;
    int fd = -1, err = bad ? ENOMEM : plot_spawn(&pid, &fd);
    if (err) {
        *missing = !bad;
        cli_plot_abort(p);
        return remat_fail(REMAT_EIO, "cannot run gnuplot: %s", strerror(err));
    }
    plot_feed(fd, p->text, p->len);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            status = -1;
            break;
        }
    remat_status s = REMAT_OK;
    if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        s = remat_fail(REMAT_EIO, "gnuplot failed (%s %d) drawing %s",
                       status != -1 && WIFSIGNALED(status) ? "signal" : "exit",
                       status == -1          ? -1
                       : WIFSIGNALED(status) ? WTERMSIG(status)
                                             : WEXITSTATUS(status),
                       p->out.path);
    if (s == REMAT_OK)
        s = plot_check_picture(p->out.tmp, p->svg, p->out.path);
    if (s == REMAT_OK)
        s = cli_output_close(&p->out, 1);
    cli_plot_abort(p);
    return s;
}
