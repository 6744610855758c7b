/* model/weights.c: GPT-2 init from a seed and llm.c's weights file (read and write). */
#include "core/core.h"
#include "model/gpt.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { GPT_WEIGHTS_MAGIC = 20240326, GPT_WEIGHTS_VERSION = 3, GPT_HEADER_INTS = 256 };

/* ==== Random numbers ======================================================================= */

uint64_t gpt_rng_next(gpt_rng *r)
{
    uint64_t z = (r->state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double gpt_rng_uniform(gpt_rng *r)
{
    return ((double)(gpt_rng_next(r) >> 40) + 0.5) / (double)(1ull << 24);
}

/* One N(0, 1) draw: Box-Muller on two uniforms (the sine half is dropped, so every draw costs two).
 */
static double gpt_rng_normal(gpt_rng *r)
{
    double u1 = gpt_rng_uniform(r), u2 = gpt_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* ==== Init ================================================================================= */

static void gpt_fill_normal(gpt_rng *r, float *p, size_t n, double std)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (float)(std * gpt_rng_normal(r));
}

static void gpt_fill_const(float *p, size_t n, float v)
{
    for (size_t i = 0; i < n; i++)
        p[i] = v;
}

void gpt_init_params(const gpt_config *cfg, uint64_t seed, float *params)
{
    gpt_param_layout lay;
    gpt_layout_params(cfg, &lay);
    gpt_rng r = {seed};
    double std = 0.02, resid_std = 0.02 / sqrt(2.0 * cfg->layers);
    for (int i = 0; i < GPT_N_PARAMS; i++) {
        float *p = params + lay.offset[i];
        size_t n = lay.count[i];
        switch (i) {
        case GPT_WTE:
            gpt_fill_normal(&r, p, (size_t)cfg->vocab * cfg->channels, std);
            gpt_fill_const(p + (size_t)cfg->vocab * cfg->channels,
                           (size_t)(cfg->padded_vocab - cfg->vocab) * cfg->channels, 0.0f);
            break;
        case GPT_WPE:
        case GPT_QKVW:
        case GPT_FCW: gpt_fill_normal(&r, p, n, std); break;
        case GPT_ATTPROJW:
        case GPT_FCPROJW: gpt_fill_normal(&r, p, n, resid_std); break;
        case GPT_LN1W:
        case GPT_LN2W:
        case GPT_LNFW: gpt_fill_const(p, n, 1.0f); break;
        default: gpt_fill_const(p, n, 0.0f); break;
        }
    }
}

/* ==== Weights file ========================================================================= */

static remat_status gpt_header_to_config(const char *path, const int32_t *h, gpt_config *cfg)
{
    if (h[0] != GPT_WEIGHTS_MAGIC)
        return remat_fail(REMAT_EPARSE, "%s: bad magic %d (an llm.c weights file starts with %d)",
                          path, (int)h[0], GPT_WEIGHTS_MAGIC);
    if (h[1] != GPT_WEIGHTS_VERSION)
        return remat_fail(REMAT_EPARSE, "%s: unsupported version %d (only %d, fp32, is read)", path,
                          (int)h[1], GPT_WEIGHTS_VERSION);
    gpt_config c = {.max_seq = h[2],
                    .vocab = h[3],
                    .layers = h[4],
                    .heads = h[5],
                    .channels = h[6],
                    .padded_vocab = h[7]};
    if (gpt_config_check(&c) != REMAT_OK)
        return remat_fail_context(REMAT_EPARSE, "%s: bad header", path);
    *cfg = c;
    return REMAT_OK;
}

static remat_status gpt_read_error(const char *path, const char *what)
{
    return remat_fail(REMAT_EIO, "cannot read %s: read error in the %s: %s", path, what,
                      strerror(errno));
}

remat_status gpt_weights_read(const char *path, gpt_config *cfg, float **params)
{
    if (!path || !cfg || !params)
        return remat_fail(REMAT_EINVAL, "gpt_weights_read: arguments must not be NULL");
    FILE *f = fopen(path, "rb");
    if (!f)
        return remat_fail(REMAT_EIO, "cannot open %s: %s", path, strerror(errno));
    int32_t h[GPT_HEADER_INTS];
    remat_status s = REMAT_OK;
    float *p = NULL;
    if (fread(h, sizeof h, 1, f) != 1) {
        s = ferror(f)
                ? gpt_read_error(path, "header")
                : remat_fail(REMAT_EPARSE,
                             "%s: truncated header (an llm.c weights file starts with %zu bytes)",
                             path, sizeof h);
        goto done;
    }
    gpt_config c;
    if ((s = gpt_header_to_config(path, h, &c)) != REMAT_OK)
        goto done;
    gpt_param_layout lay;
    gpt_layout_params(&c, &lay);
    /* Check the file holds what the header announces before allocating it: a corrupt header must
     * be a parse error, not a multi-gigabyte allocation. */
    struct stat st;
    uint64_t want = (uint64_t)sizeof h + (uint64_t)lay.total * sizeof(float);
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size != want) {
        s = remat_fail(REMAT_EPARSE,
                       "%s: %s: the header announces %zu parameters (%llu bytes with the header), "
                       "the file has %llu bytes",
                       path, (uint64_t)st.st_size < want ? "truncated" : "trailing bytes",
                       lay.total, (unsigned long long)want, (unsigned long long)st.st_size);
        goto done;
    }
    p = malloc(lay.total * sizeof(float));
    if (!p) {
        s = remat_fail(REMAT_ENOMEM, "%s: cannot allocate %zu parameters", path, lay.total);
        goto done;
    }
    size_t got = fread(p, sizeof(float), lay.total, f);
    if (ferror(f)) { /* a read error is an error, not a short file */
        s = gpt_read_error(path, "parameters");
        goto done;
    }
    if (got != lay.total) {
        s = remat_fail(REMAT_EPARSE,
                       "%s: truncated: the header announces %zu parameters, the file holds %zu",
                       path, lay.total, got);
        goto done;
    }
    if (fgetc(f) != EOF) {
        s = remat_fail(REMAT_EPARSE,
                       "%s: trailing bytes after the %zu parameters the header announces", path,
                       lay.total);
        goto done;
    }
    *cfg = c;
    *params = p;
    p = NULL;
done:
    free(p);
    fclose(f);
    return s;
}

remat_status gpt_weights_fwrite(FILE *f, const gpt_config *cfg, const float *params)
{
    if (!f || !cfg || !params)
        return remat_fail(REMAT_EINVAL, "gpt_weights_fwrite: arguments must not be NULL");
    int32_t h[GPT_HEADER_INTS] = {GPT_WEIGHTS_MAGIC, GPT_WEIGHTS_VERSION, cfg->max_seq,
                                  cfg->vocab,        cfg->layers,         cfg->heads,
                                  cfg->channels,     cfg->padded_vocab};
    gpt_param_layout lay;
    gpt_layout_params(cfg, &lay);
    if (fwrite(h, sizeof h, 1, f) != 1 || fwrite(params, sizeof(float), lay.total, f) != lay.total)
        return remat_fail(REMAT_EIO, "cannot write the weights: %s", strerror(errno));
    return REMAT_OK;
}

remat_status gpt_weights_write(const char *path, const gpt_config *cfg, const float *params)
{
    if (!path || !cfg || !params)
        return remat_fail(REMAT_EINVAL, "gpt_weights_write: arguments must not be NULL");
    size_t n = strlen(path) + 16;
    char *tmp = malloc(n);
    if (!tmp)
        return remat_fail(REMAT_ENOMEM, "cannot write %s: out of memory", path);
    FILE *f;
    remat_status s = remat_tmp_open(path, tmp, n, &f);
    if (s == REMAT_OK) {
        s = gpt_weights_fwrite(f, cfg, params);
        remat_status fin = remat_tmp_finish(f, tmp, path, s == REMAT_OK);
        s = s != REMAT_OK ? s : fin;
    }
    free(tmp);
    return s;
}
