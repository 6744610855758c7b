/* core/file.c: writing a file whole or not at all: the data goes to a unique temporary file
 * beside the target (mkstemp, so never a fixed name another process may own) that is renamed
 * over the target only when complete. */
#include "core/core.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
