/* model/data.c: llm.c token files, byte files, the built-in corpus and the batch loader. */
#include "core/core.h"
#include "model/gpt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { GPT_TOKENS_MAGIC = 20240520, GPT_HEADER_INTS = 256 };

/* ==== Files ================================================================================ */

/* A file with NUL bytes is no text: most likely a token file of another format or a damaged
 * header, and reading it as text would train on garbage. */
static remat_status gpt_not_text(const char *path, int32_t magic, size_t nul_at)
{
    return remat_fail(REMAT_EPARSE,
                      "%s: not a token file: it starts with magic %d (an llm.c token file starts "
                      "with %d) and it is not text (a NUL byte at offset %zu)",
                      path, (int)magic, GPT_TOKENS_MAGIC, nul_at);
}

/* A text file is read as one token per byte, 4 bytes each in memory: 1 GiB of text is the most. */
#define GPT_TEXT_MAX ((size_t)1 << 30)

/* The header checks of an llm.c token file (len bytes of it in b). */
static remat_status gpt_llmc_header(const char *path, const unsigned char *b, size_t len,
                                    size_t *tokens)
{
    int32_t h[GPT_HEADER_INTS];
    if (len < sizeof h)
        return remat_fail(REMAT_EPARSE, "%s: truncated token file header", path);
    memcpy(h, b, sizeof h);
    if (h[1] != 1)
        return remat_fail(REMAT_EPARSE, "%s: unsupported token file version %d (expected 1)", path,
                          (int)h[1]);
    if (h[2] < 0)
        return remat_fail(REMAT_EPARSE, "%s: negative token count %d", path, (int)h[2]);
    *tokens = (size_t)h[2];
    return REMAT_OK;
}

static remat_status gpt_too_large(const char *path, int llmc, size_t tokens)
{
    if (llmc)
        return remat_fail(REMAT_EPARSE,
                          "%s: trailing bytes: the header announces %zu tokens, the file holds "
                          "more than %zu bytes of tokens",
                          path, tokens, 2 * tokens);
    return remat_fail(REMAT_EPARSE,
                      "%s: a text file is read as one token per byte, and this one is larger than "
                      "the limit of 1 GiB",
                      path);
}

/* Reads the rest of f after the `have` bytes in b, up to what the header allows: /dev/zero, a FIFO
 * or a runaway file is refused instead of read until memory runs out. Frees b on failure. */
static remat_status gpt_read_rest(FILE *f, const char *path, unsigned char *b, size_t have,
                                  unsigned char **buf, size_t *len)
{
    int32_t magic = 0;
    if (have >= 4)
        memcpy(&magic, b, 4);
    int llmc = magic == GPT_TOKENS_MAGIC;
    size_t tokens = 0;
    const unsigned char *nul = llmc ? NULL : memchr(b, 0, have);
    struct stat st;
    remat_status s = llmc ? gpt_llmc_header(path, b, have, &tokens) : REMAT_OK;
    /* an llm.c file holds exactly what its header announces (one byte more shows trailing
     * bytes); text holds up to GPT_TEXT_MAX */
    size_t max = llmc ? have + 2 * tokens + 1 : GPT_TEXT_MAX;
    if (s != REMAT_OK)
        ;
    else if (nul) /* binary from its first bytes on: refused before the rest is read */
        s = gpt_not_text(path, magic, (size_t)(nul - b));
    else if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size > max)
        s = gpt_too_large(path, llmc, tokens);
    else if ((s = remat_read_capped(f, path, max, have, &b, len)) == REMAT_EPARSE)
        return gpt_too_large(path, llmc, tokens); /* remat_read_capped freed b */
    else if (s == REMAT_OK)
        *buf = b;
    if (s != REMAT_OK && b)
        free(b);
    return s;
}

static remat_status gpt_read_all(const char *path, unsigned char **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return remat_fail(REMAT_EIO, "cannot open %s: %s", path, strerror(errno));
    unsigned char *b = malloc(GPT_HEADER_INTS * 4);
    remat_status s;
    if (!b) {
        s = remat_fail(REMAT_ENOMEM, "cannot read %s: out of memory", path);
    } else {
        size_t have = fread(b, 1, GPT_HEADER_INTS * 4, f);
        if (ferror(f)) {
            int err = errno;
            free(b);
            s = remat_fail(REMAT_EIO, "cannot read %s: %s", path, strerror(err));
        } else {
            s = gpt_read_rest(f, path, b, have, buf, len);
        }
    }
    fclose(f);
    return s;
}

static remat_status gpt_tokens_alloc(gpt_tokens *out, size_t n)
{
    out->tokens = malloc((n ? n : 1) * sizeof(int));
    out->n = n;
    out->max_token = 0;
    if (!out->tokens)
        return remat_fail(REMAT_ENOMEM, "cannot allocate %zu tokens", n);
    return REMAT_OK;
}

static remat_status gpt_tokens_from_llmc(const char *path, const unsigned char *b, size_t len,
                                         gpt_tokens *out)
{
    int32_t h[GPT_HEADER_INTS];
    size_t n;
    REMAT_TRY(gpt_llmc_header(path, b, len, &n));
    size_t have = (len - sizeof h) / 2;
    if (have != n || (len - sizeof h) % 2)
        return remat_fail(REMAT_EPARSE,
                          "%s: the header announces %zu tokens, the file holds %zu bytes of tokens",
                          path, n, len - sizeof h);
    REMAT_TRY(gpt_tokens_alloc(out, n));
    for (size_t i = 0; i < n; i++) {
        uint16_t t;
        memcpy(&t, b + sizeof h + 2 * i, 2);
        out->tokens[i] = t;
        if (t > out->max_token)
            out->max_token = t;
    }
    return REMAT_OK;
}

remat_status gpt_tokens_load(const char *path, gpt_tokens *out)
{
    if (!path || !out)
        return remat_fail(REMAT_EINVAL, "gpt_tokens_load: arguments must not be NULL");
    unsigned char *b = NULL;
    size_t len = 0;
    REMAT_TRY(gpt_read_all(path, &b, &len));
    int32_t magic = 0;
    if (len >= 4)
        memcpy(&magic, b, 4);
    remat_status s = REMAT_OK;
    const unsigned char *nul = memchr(b, 0, len);
    if (magic == GPT_TOKENS_MAGIC) {
        s = gpt_tokens_from_llmc(path, b, len, out);
    } else if (nul) {
        s = gpt_not_text(path, magic, (size_t)(nul - b));
    } else if ((s = gpt_tokens_alloc(out, len)) == REMAT_OK) {
        for (size_t i = 0; i < len; i++) {
            out->tokens[i] = b[i];
            if (b[i] > out->max_token)
                out->max_token = b[i];
        }
    }
    free(b);
    return s;
}

void gpt_tokens_free(gpt_tokens *t)
{
    if (!t)
        return;
    free(t->tokens);
    t->tokens = NULL;
    t->n = 0;
}

/* ==== The built-in corpus ================================================================== */

static const char *const gpt_subjects[] = {"the cat",   "a dog",          "the old man",
                                           "my sister", "the small bird", "our teacher",
                                           "a farmer",  "the queen"};
static const char *const gpt_verbs[] = {"sees",    "likes",   "finds",  "follows",
                                        "watches", "carries", "paints", "forgets"};
static const char *const gpt_objects[] = {"the ball",   "a red apple",   "the green door",
                                          "some bread", "a long letter", "the blue boat",
                                          "an old map", "the key"};
static const char *const gpt_endings[] = {
    " in the garden", " every morning", " near the river", "", " at night", " with great care"};

#define GPT_PICK(r, list) list[gpt_rng_next(r) % (sizeof list / sizeof list[0])]

remat_status gpt_tokens_builtin(size_t n, gpt_tokens *out)
{
    if (!out)
        return remat_fail(REMAT_EINVAL, "gpt_tokens_builtin: out must not be NULL");
    REMAT_TRY(gpt_tokens_alloc(out, n));
    gpt_rng r = {20240520};
    char sentence[160];
    size_t i = 0;
    while (i < n) {
        int len =
            snprintf(sentence, sizeof sentence, "%s %s %s%s. ", GPT_PICK(&r, gpt_subjects),
                     GPT_PICK(&r, gpt_verbs), GPT_PICK(&r, gpt_objects), GPT_PICK(&r, gpt_endings));
        for (int k = 0; k < len && i < n; k++, i++) {
            out->tokens[i] = (unsigned char)sentence[k];
            if (out->tokens[i] > out->max_token)
                out->max_token = out->tokens[i];
        }
    }
    return REMAT_OK;
}

/* ==== The loader =========================================================================== */

static void gpt_loader_shuffle(gpt_loader *ld)
{
    for (size_t i = 0; i < ld->n_batches; i++)
        ld->order[i] = i;
    for (size_t i = ld->n_batches; i > 1; i--) {
        size_t j = gpt_rng_next(&ld->rng) % i;
        size_t t = ld->order[i - 1];
        ld->order[i - 1] = ld->order[j];
        ld->order[j] = t;
    }
}

remat_status gpt_loader_init(gpt_loader *ld, const gpt_tokens *data, int B, int T, int shuffle,
                             uint64_t seed)
{
    if (!ld || !data || B < 1 || T < 1)
        return remat_fail(REMAT_EINVAL, "gpt_loader_init: bad arguments (B %d, T %d)", B, T);
    memset(ld, 0, sizeof *ld);
    size_t need = (size_t)B * T + 1;
    if (data->n < need)
        return remat_fail(REMAT_EINVAL, "the data holds %zu tokens, a batch of %d x %d needs %zu",
                          data->n, B, T, need);
    ld->data = data;
    ld->B = B;
    ld->T = T;
    ld->n_batches = (data->n - 1) / ((size_t)B * T);
    ld->rng.state = seed ^ 0x5eed5eed5eedull;
    if (shuffle) {
        ld->order = malloc(ld->n_batches * sizeof *ld->order);
        if (!ld->order)
            return remat_fail(REMAT_ENOMEM, "cannot allocate the shuffle order");
        gpt_loader_shuffle(ld);
    }
    return REMAT_OK;
}

void gpt_loader_next(gpt_loader *ld, int *inputs, int *targets)
{
    if (ld->next >= ld->n_batches) {
        ld->next = 0;
        if (ld->order)
            gpt_loader_shuffle(ld);
    }
    size_t k = ld->order ? ld->order[ld->next] : ld->next;
    ld->next++;
    size_t bt = (size_t)ld->B * ld->T;
    const int *src = ld->data->tokens + k * bt;
    memcpy(inputs, src, bt * sizeof(int));
    memcpy(targets, src + 1, bt * sizeof(int));
}

void gpt_loader_free(gpt_loader *ld)
{
    if (!ld)
        return;
    free(ld->order);
    ld->order = NULL;
}
