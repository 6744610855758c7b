/* core/size.c: byte counts on the command line ("80GB", "512MiB", "40%") and their human form. */
#include "core/core.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *suffix;
    double scale;
} size_unit;

static const size_unit units[] = {
    {"", 1.0},
    {"B", 1.0},
    {"KB", 1e3},
    {"MB", 1e6},
    {"GB", 1e9},
    {"TB", 1e12},
    {"KiB", 1024.0},
    {"MiB", 1048576.0},
    {"GiB", 1073741824.0},
    {"TiB", 1099511627776.0},
};

/* Reads the leading unsigned decimal number of s (digits, optional '.' and digits); returns the
 * number of characters used, 0 if there is no number. */
static size_t size_read_number(const char *s, long double *out, int *integral, uint64_t *whole)
{
    size_t i = 0, digits = 0;
    while (isdigit((unsigned char)s[i]))
        i++, digits++;
    *integral = 1;
    if (s[i] == '.') {
        *integral = 0;
        i++;
        while (isdigit((unsigned char)s[i]))
            i++, digits++;
    }
    if (digits == 0)
        return 0;
    char buf[64];
    if (i >= sizeof buf)
        return 0;
    memcpy(buf, s, i);
    buf[i] = '\0';
    *out = strtold(buf, NULL);
    errno = 0;
    *whole = strtoull(buf, NULL, 10);
    if (errno == ERANGE)
        *integral = 0; /* too large for exact arithmetic: the range check below rejects it */
    return i;
}

/* bytes = whole * scale exactly when both are integers and the product fits. */
static int size_exact_product(uint64_t whole, double scale, uint64_t *out)
{
    uint64_t k = (uint64_t)scale;
    if ((double)k != scale)
        return 0;
    if (k != 0 && whole > UINT64_MAX / k)
        return 0;
    *out = whole * k;
    return 1;
}

static remat_status size_parse(const char *text, uint64_t *out, double *percent, int *is_percent,
                               int allow_percent)
{
    if (!text || !out)
        return remat_fail(REMAT_EINVAL, "size: text and out must not be NULL");
    const char *s = text;
    while (isspace((unsigned char)*s))
        s++;
    if (*s == '\0')
        return remat_fail(REMAT_EINVAL,
                          "empty size '%s': expected a number and a unit "
                          "(B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)",
                          text);
    if (*s == '-')
        return remat_fail(REMAT_EINVAL, "negative size '%s'", text);
    long double value;
    int integral;
    uint64_t whole;
    const char *number = s;
    size_t used = size_read_number(s, &value, &integral, &whole);
    if (used == 0)
        return remat_fail(REMAT_EINVAL,
                          "bad size '%s': expected a number and a unit "
                          "(B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)",
                          text);
    s += used;
    while (*s == ' ')
        s++;
    char suffix[8];
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    if (n >= sizeof suffix)
        return remat_fail(REMAT_EINVAL, "bad size '%s': unknown unit '%.*s'", text, (int)n, s);
    memcpy(suffix, s, n);
    suffix[n] = '\0';
    if (strcmp(suffix, "%") == 0) {
        if (!allow_percent)
            return remat_fail(REMAT_EINVAL, "bad size '%s': a percentage is not allowed here",
                              text);
        if (!(value > 0.0L) || !isfinite((double)value))
            return remat_fail(REMAT_EINVAL, "bad percentage '%s': must be above 0", text);
        *percent = (double)value;
        *is_percent = 1;
        return REMAT_OK;
    }
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(suffix, units[i].suffix) != 0)
            continue;
        uint64_t bytes = 0;
        if (!(integral && size_exact_product(whole, units[i].scale, &bytes))) {
            long double v = value * (long double)units[i].scale;
            if (!isfinite((double)v) || v >= 18446744073709551616.0L)
                return remat_fail(REMAT_EINVAL,
                                  "size '%s' is too large (the maximum is 2^64-1 bytes)", text);
            bytes = (uint64_t)v;
        }
        /* A bare number is ambiguous (bytes? GB? a count?): only 0 may go without a unit. */
        if (suffix[0] == '\0' && value != 0.0L)
            return remat_fail(REMAT_EINVAL,
                              "size '%s' has no unit: write %.*sB for bytes, or %.*sGB, %.*sGiB "
                              "(units: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)",
                              text, (int)used, number, (int)used, number, (int)used, number);
        *out = bytes;
        if (is_percent)
            *is_percent = 0;
        return REMAT_OK;
    }
    return remat_fail(
        REMAT_EINVAL,
        "bad size '%s': unknown unit '%s' (use B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)", text,
        suffix);
}

remat_status remat_parse_size(const char *text, uint64_t *out)
{
    return size_parse(text, out, NULL, NULL, 0);
}

remat_status remat_parse_budget(const char *text, uint64_t *out, double *percent, int *is_percent)
{
    if (!percent || !is_percent)
        return remat_fail(REMAT_EINVAL,
                          "remat_parse_budget: percent and is_percent must not be NULL");
    *is_percent = 0;
    return size_parse(text, out, percent, is_percent, 1);
}

uint64_t remat_budget_of_percent(double percent, uint64_t reference)
{
    if (!(percent > 0.0)) /* also NaN */
        return 0;
    long double v = (long double)reference * (long double)percent / 100.0L;
    /* Saturate: a percentage far above 100 asks for more than any memory, never for 0 bytes. */
    if (!isfinite((double)v) || v >= 18446744073709551615.0L)
        return UINT64_MAX;
    return (uint64_t)v;
}

char *remat_format_bytes(uint64_t bytes, char *buf, size_t n)
{
    static const char *names[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (!buf || n == 0)
        return buf;
    if (bytes < 1024) {
        snprintf(buf, n, "%llu B", (unsigned long long)bytes);
        return buf;
    }
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024.0 && u < 6)
        v /= 1024.0, u++;
    /* three significant digits, but never "1024 KiB" */
    if (v >= 999.5 && u < 6)
        v /= 1024.0, u++;
    if (v >= 99.95)
        snprintf(buf, n, "%.0f %s", v, names[u]);
    else if (v >= 9.995)
        snprintf(buf, n, "%.1f %s", v, names[u]);
    else
        snprintf(buf, n, "%.2f %s", v, names[u]);
    return buf;
}
