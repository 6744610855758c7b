/* core/error.c: statuses, their names, and the thread-local last-error message. */
#include "core/core.h"

#include <stdio.h>
#include <string.h>

#define ERROR_MAX 1024

static _Thread_local char last_error[ERROR_MAX];

const char *remat_strerror(remat_status s)
{
    switch (s) {
    case REMAT_OK: return "ok";
    case REMAT_EINVAL: return "invalid argument";
    case REMAT_ENOMEM: return "out of memory";
    case REMAT_EDEVICE: return "device error";
    case REMAT_EINFEASIBLE: return "infeasible budget";
    case REMAT_EIO: return "input/output error";
    case REMAT_EPARSE: return "parse error";
    case REMAT_EUNSUPPORTED: return "unsupported";
    case REMAT_EINTERNAL: return "internal error";
    }
    return "unknown status";
}

const char *remat_last_error(void) { return last_error; }

void remat_clear_error(void) { last_error[0] = '\0'; }

const char *remat_version(void) { return REMAT_VERSION; }

int remat_built_with_cuda(void)
{
#ifdef REMAT_HAVE_CUDA
    return 1;
#else
    return 0;
#endif
}

remat_status remat_failv(remat_status s, const char *fmt, va_list ap)
{
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    return s;
}

remat_status remat_fail(remat_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    remat_failv(s, fmt, ap);
    va_end(ap);
    return s;
}

remat_status remat_fail_context(remat_status s, const char *fmt, ...)
{
    char prefix[ERROR_MAX], old[ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_error, sizeof old);
    size_t n = strlen(prefix);
    if (n > ERROR_MAX - 3)
        n = ERROR_MAX - 3;
    memcpy(last_error, prefix, n);
    memcpy(last_error + n, ": ", 2);
    size_t rest = ERROR_MAX - n - 3, m = strlen(old);
    if (m > rest)
        m = rest;
    memcpy(last_error + n + 2, old, m);
    last_error[n + 2 + m] = '\0';
    return s;
}
