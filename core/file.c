/* core/file.c: files in and out. Reading a whole input file with a size limit, so that /dev/zero,
 * a FIFO or a runaway file is refused with a message instead of filling memory, and a read error
 * is an error, never an early end of file. Writing a file whole or not at all: the data goes to a
 * unique temporary file beside the target (mkstemp, so never a fixed name another process may
 * own) that is renamed over the target only when complete. */
#include "core/core.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

remat_status remat_read_capped(FILE *f, const char *name, size_t max, size_t have,
                               unsigned char **buf, size_t *len)
{
    if (!f || !name || !buf || !len || (have && !*buf) || have > max)
        return remat_fail(REMAT_EINVAL, "remat_read_capped: bad arguments");
    size_t cap = have + ((size_t)1 << 16), n = have;
    unsigned char *b = realloc(*buf, cap + 1); /* *buf: NULL or the caller's header */
    if (!b) {
        free(*buf);
        *buf = NULL;
        return remat_fail(REMAT_ENOMEM, "cannot read %s: out of memory", name);
    }
    for (;;) {
        if (n == cap) {
            /* one byte past the limit tells a file of exactly max bytes from a longer one */
            size_t next = cap > max / 2 ? max + 1 : cap * 2;
            if (cap > max || next <= cap)
                break;
            unsigned char *nb = realloc(b, next + 1);
            if (!nb) {
                free(b);
                *buf = NULL;
                return remat_fail(REMAT_ENOMEM, "cannot read %s: out of memory after %zu bytes",
                                  name, n);
            }
            b = nb;
            cap = next;
        }
        size_t got = fread(b + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    *buf = b;
    if (ferror(f)) {
        int err = errno;
        free(b);
        *buf = NULL;
        return remat_fail(REMAT_EIO, "cannot read %s: read error after %zu bytes: %s", name, n,
                          strerror(err));
    }
    if (n > max) {
        free(b);
        *buf = NULL;
        return remat_fail(REMAT_EPARSE, "%s: the file is larger than the limit of %zu bytes", name,
                          max);
    }
    b[n] = '\0';
    *len = n;
    return REMAT_OK;
}

remat_status remat_tmp_open(const char *path, char *tmp, size_t n, FILE **f)
{
    *f = NULL;
    if ((size_t)snprintf(tmp, n, "%s.tmp.XXXXXX", path) >= n)
        return remat_fail(REMAT_EINVAL, "path too long: '%.64s...'", path);
    int fd = mkstemp(tmp);
    if (fd < 0)
        return remat_fail(REMAT_EIO, "cannot create a file beside '%s': %s", path, strerror(errno));
    /* mkstemp makes it 0600; give it the mode open(2) would (0666 less the umask) */
    mode_t mask = umask(022);
    umask(mask);
    if (fchmod(fd, 0666 & ~mask) != 0 || !(*f = fdopen(fd, "w"))) {
        int err = errno;
        close(fd);
        unlink(tmp);
        return remat_fail(REMAT_EIO, "cannot write '%s': %s", path, strerror(err));
    }
    return REMAT_OK;
}

remat_status remat_tmp_finish(FILE *f, const char *tmp, const char *path, int ok)
{
    int bad = fflush(f) != 0 || ferror(f);
    int err = errno;
    bad |= fclose(f) != 0;
    if (ok && !bad && rename(tmp, path) == 0)
        return REMAT_OK;
    if (ok && !bad)
        err = errno;
    unlink(tmp);
    return ok ? remat_fail(REMAT_EIO, "cannot write '%s': %s", path, strerror(err ? err : EIO))
              : REMAT_OK;
}
