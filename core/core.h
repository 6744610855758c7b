/* core/core.h: library-private helpers shared by every module: failure reporting and small
 * utilities. */
#ifndef REMAT_CORE_H
#define REMAT_CORE_H

#include "remat.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

#if defined(__GNUC__)
#define REMAT_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define REMAT_PRINTF(f, a)
#endif

/* Sets this thread's last-error message (printf-style) and returns `s`, so failures read
 * `return remat_fail(REMAT_EINVAL, "bad spec '%s'", spec);`. */
remat_status remat_fail(remat_status s, const char *fmt, ...) REMAT_PRINTF(2, 3);
remat_status remat_failv(remat_status s, const char *fmt, va_list ap);
/* Prepends "context: " to the current message (for errors bubbling up through layers). */
remat_status remat_fail_context(remat_status s, const char *fmt, ...) REMAT_PRINTF(2, 3);

/* Writes s to f as a JSON string literal (quotes, escapes for '"', '\\' and control characters). */
void remat_json_string(FILE *f, const char *s);

/* Saturating byte arithmetic: UINT64_MAX stands for "more than 2^64 - 1", so a size that would
 * wrap modulo 2^64 stays larger than every card instead of becoming small. */
static inline uint64_t remat_sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}
static inline uint64_t remat_sat_mul(uint64_t a, uint64_t b)
{
    return a != 0 && b > UINT64_MAX / a ? UINT64_MAX : a * b;
}

/* Reads f to its end into *buf (malloc'd, NUL-terminated, *len bytes without the NUL), refusing a
 * file of more than max bytes (REMAT_EPARSE, naming max) before holding much more than that. The
 * first `have` bytes may already be in *buf (a header read to choose max; *buf is NULL or a
 * malloc'd buffer, taken over even when have is 0); the buffer is freed and *buf set to NULL on
 * failure. A read error is REMAT_EIO with its errno, never an end of file. */
remat_status remat_read_capped(FILE *f, const char *name, size_t max, size_t have,
                               unsigned char **buf, size_t *len);

/* Writes v as a JSON number, or null when it is not finite (JSON has no nan or inf). */
void remat_json_number(FILE *f, double v);

/* A file written whole or not at all: remat_tmp_open creates a unique temporary file beside path
 * (path.tmp.XXXXXX, mkstemp) and opens *f on it; remat_tmp_finish closes it and, with ok and no
 * write error, renames it over path, otherwise removes it (REMAT_EIO naming path when ok). */
remat_status remat_tmp_open(const char *path, char *tmp, size_t n, FILE **f);
remat_status remat_tmp_finish(FILE *f, const char *tmp, const char *path, int ok);

#define REMAT_TRY(expr)                                                                            \
    do {                                                                                           \
        remat_status try_s_ = (expr);                                                              \
        if (try_s_ != REMAT_OK)                                                                    \
            return try_s_;                                                                         \
    } while (0)

#endif
