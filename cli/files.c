/* cli/files.c: the files the CLI writes. Every output goes through one rule set: only a regular
 * file (or a name not yet taken) is replaced, a symlink is written through to the file it names,
 * the data goes to a unique temporary file beside the target (mkstemp) that is renamed over it
 * only when complete, the temporary files are removed on SIGINT/SIGTERM, and no output of a run
 * is one of its inputs or another of its outputs. */
#include "cli/cli.h"
#include "core/core.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ==== Removing temporary files on a signal ================================================= */

/* A fixed table the handler can walk without locks or allocation: a slot's path is written
 * before its flag is set and the flag cleared before the slot is reused. */
enum { FILES_SLOTS = 16 };
static char files_tmp[FILES_SLOTS][CLI_PATH_MAX + 32];
static volatile sig_atomic_t files_used[FILES_SLOTS];
static int files_handlers_set;

static void files_on_signal(int sig)
{
    for (int i = 0; i < FILES_SLOTS; i++)
        if (files_used[i])
            unlink(files_tmp[i]); /* async-signal-safe */
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Installs the handler for SIGINT and SIGTERM, except where the signal is ignored (nohup). */
static void files_set_handlers(void)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    files_handlers_set = 1;
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction old, sa;
        if (sigaction(sigs[i], NULL, &old) != 0 || old.sa_handler == SIG_IGN)
            continue;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = files_on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(sigs[i], &sa, NULL);
    }
}

int cli_cleanup_add(const char *path)
{
    if (!files_handlers_set)
        files_set_handlers();
    for (int i = 0; i < FILES_SLOTS; i++)
        if (!files_used[i] && strlen(path) < sizeof files_tmp[i]) {
            memcpy(files_tmp[i], path, strlen(path) + 1);
            files_used[i] = 1;
            return i;
        }
    return -1;
}

void cli_cleanup_remove(int slot)
{
    if (slot >= 0 && slot < FILES_SLOTS)
        files_used[slot] = 0;
}

/* ==== Which paths may be written =========================================================== */

/* Splits path into its directory ("." when none) and last component. */
static remat_status files_split(const char *path, char *dir, size_t n, const char **base)
{
    const char *slash = strrchr(path, '/');
    *base = slash ? slash + 1 : path;
    if (!**base || strcmp(*base, ".") == 0 || strcmp(*base, "..") == 0)
        return remat_fail(REMAT_EINVAL, "%s is a directory, not a file", path);
    size_t len = slash ? (size_t)(slash - path) : 1;
    if (slash && len == 0)
        len = 1; /* "/name" */
    if (len >= n)
        return remat_fail(REMAT_EINVAL, "path too long: %.64s...", path);
    memcpy(dir, slash ? path : ".", len);
    dir[len] = '\0';
    return REMAT_OK;
}

static const char *files_kind(mode_t m)
{
    return S_ISDIR(m)    ? "a directory"
           : S_ISFIFO(m) ? "a FIFO"
           : S_ISCHR(m)  ? "a character device"
           : S_ISBLK(m)  ? "a block device"
           : S_ISSOCK(m) ? "a socket"
                         : "not a regular file";
}

/* A missing file: its directory must exist and be writable; the resolved path is that
 * directory's real path plus the name. */
static remat_status files_check_new(const char *path, char *resolved, size_t n)
{
    char dir[CLI_PATH_MAX], real[PATH_MAX];
    const char *base;
    REMAT_TRY(files_split(path, dir, sizeof dir, &base));
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return remat_fail(REMAT_EIO, "%s: the directory %s does not exist", path, dir);
    if (access(dir, W_OK | X_OK) != 0)
        return remat_fail(REMAT_EIO, "%s: the directory %s is not writable", path, dir);
    if (!realpath(dir, real))
        return remat_fail(REMAT_EIO, "%s: %s: %s", path, dir, strerror(errno));
    if ((size_t)snprintf(resolved, n, "%s/%s", strcmp(real, "/") ? real : "", base) >= n)
        return remat_fail(REMAT_EINVAL, "path too long: %.64s...", path);
    return REMAT_OK;
}

remat_status cli_output_check(const char *path, char *resolved, size_t n)
{
    if (!path || !*path)
        return remat_fail(REMAT_EINVAL, "an empty output path");
    struct stat lst, st;
    if (lstat(path, &lst) != 0) {
        if (errno != ENOENT)
            return remat_fail(REMAT_EIO, "%s: %s", path, strerror(errno));
        return files_check_new(path, resolved, n);
    }
    if (stat(path, &st) != 0) /* a symlink to nothing: refused rather than followed */
        return remat_fail(REMAT_EINVAL, "%s is a symlink to a missing file", path);
    if (!S_ISREG(st.st_mode))
        return remat_fail(REMAT_EINVAL, "%s is %s: only regular files are replaced", path,
                          files_kind(st.st_mode));
    char real[PATH_MAX];
    if (!realpath(path, real))
        return remat_fail(REMAT_EIO, "%s: %s", path, strerror(errno));
    char dir[CLI_PATH_MAX];
    const char *base;
    REMAT_TRY(files_split(real, dir, sizeof dir, &base));
    if (access(dir, W_OK | X_OK) != 0)
        return remat_fail(REMAT_EIO, "%s: the directory %s is not writable", path, dir);
    if ((size_t)snprintf(resolved, n, "%s", real) >= n)
        return remat_fail(REMAT_EINVAL, "path too long: %.64s...", path);
    return REMAT_OK;
}

/* ==== Writing one output =================================================================== */

/* The mode a new file gets from open(2) with 0666 (the umask applied); an existing file keeps
 * its own. */
static mode_t files_mode(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0)
        return st.st_mode & 0777;
    mode_t mask = umask(022);
    umask(mask);
    return 0666 & ~mask;
}

remat_status cli_output_open(cli_output *o, const char *path)
{
    memset(o, 0, sizeof *o);
    o->slot = -1;
    REMAT_TRY(cli_output_check(path, o->path, sizeof o->path));
    snprintf(o->tmp, sizeof o->tmp, "%s.tmp.XXXXXX", o->path);
    int fd = mkstemp(o->tmp);
    if (fd < 0) {
        remat_status s = remat_fail(REMAT_EIO, "cannot write %s: %s", path, strerror(errno));
        o->tmp[0] = '\0';
        return s;
    }
    o->slot = cli_cleanup_add(o->tmp);
    if (fchmod(fd, files_mode(o->path)) != 0 || !(o->f = fdopen(fd, "w"))) {
        remat_status s = remat_fail(REMAT_EIO, "cannot write %s: %s", path, strerror(errno));
        close(fd);
        cli_output_close(o, 0);
        return s;
    }
    return REMAT_OK;
}

remat_status cli_output_close(cli_output *o, int ok)
{
    if (!o->tmp[0])
        return REMAT_OK;
    int bad = 0, err = 0;
    if (o->f) {
        bad = fflush(o->f) != 0 || ferror(o->f);
        err = errno;
        bad |= fclose(o->f) != 0;
        o->f = NULL;
    }
    if (ok && !bad && rename(o->tmp, o->path) != 0) {
        bad = 1;
        err = errno;
    }
    if (!ok || bad)
        unlink(o->tmp);
    cli_cleanup_remove(o->slot);
    o->slot = -1;
    o->tmp[0] = '\0';
    if (ok && bad)
        return remat_fail(REMAT_EIO, "cannot write %s: %s", o->path, strerror(err ? err : EIO));
    return REMAT_OK;
}

/* ==== Inputs and outputs of one run ======================================================== */

typedef struct {
    int exists;
    dev_t dev;
    ino_t ino;
    char real[CLI_PATH_MAX];
} files_id;

/* Identity of an input: its inode and real path, when it exists (a missing input is reported by
 * the command that reads it). */
static void files_input_id(const char *path, files_id *id)
{
    struct stat st;
    char real[PATH_MAX];
    memset(id, 0, sizeof *id);
    if (stat(path, &st) != 0 || !realpath(path, real))
        return;
    id->exists = 1;
    id->dev = st.st_dev;
    id->ino = st.st_ino;
    snprintf(id->real, sizeof id->real, "%s", real);
}

static int files_same(const files_id *a, const files_id *b)
{
    if (!a->real[0] || !b->real[0])
        return 0;
    if (a->exists && b->exists && a->dev == b->dev && a->ino == b->ino)
        return 1;
    return strcmp(a->real, b->real) == 0;
}

int cli_check_files(const char *cmd, const cli_file *files, size_t n)
{
    files_id *ids = calloc(n ? n : 1, sizeof *ids);
    if (!ids)
        return cli_fail(cmd, remat_fail(REMAT_ENOMEM, "out of host memory"), "");
    int rc = EXIT_OK;
    for (size_t i = 0; i < n && rc == EXIT_OK; i++) {
        if (!files[i].path)
            continue;
        if (!files[i].output) {
            files_input_id(files[i].path, &ids[i]);
            continue;
        }
        remat_status s = cli_output_check(files[i].path, ids[i].real, sizeof ids[i].real);
        if (s != REMAT_OK) {
            rc = cli_usage_error(cmd, "%s %s", files[i].opt, remat_last_error());
            break;
        }
        struct stat st;
        if (stat(ids[i].real, &st) == 0) {
            ids[i].exists = 1;
            ids[i].dev = st.st_dev;
            ids[i].ino = st.st_ino;
        }
    }
    for (size_t i = 0; i < n && rc == EXIT_OK; i++)
        for (size_t j = 0; j < n && rc == EXIT_OK; j++) {
            if (i == j || !files[i].output || !files[j].path || (files[j].output && j < i))
                continue;
            if (files_same(&ids[i], &ids[j]))
                rc = cli_usage_error(cmd, "%s %s is the same file as %s %s: %s", files[i].opt,
                                     files[i].path, files[j].opt, files[j].path,
                                     files[j].output ? "two outputs cannot share a file"
                                                     : "a run never writes over its inputs");
        }
    free(ids);
    return rc;
}
