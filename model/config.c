/* model/config.c: GPT presets, configuration checks and llm.c's parameter layout. */
#include "core/core.h"
#include "model/gpt.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    const char *name;
    gpt_config cfg;
} gpt_preset_entry;

static const gpt_preset_entry gpt_presets[] = {
    {"tiny", {2, 64, 4, 256, 256, 64}},
    {"small", {4, 128, 4, 256, 256, 128}},
    {"gpt2-124m", {12, 768, 12, 50257, 50304, 1024}},
    {"gpt2-350m", {24, 1024, 16, 50257, 50304, 1024}},
};

const char *const gpt_param_names[GPT_N_PARAMS] = {
    "wte",  "wpe",  "ln1w", "ln1b", "qkvw",    "qkvb",    "attprojw", "attprojb",
    "ln2w", "ln2b", "fcw",  "fcb",  "fcprojw", "fcprojb", "lnfw",     "lnfb"};

remat_status gpt_preset(const char *name, gpt_config *out)
{
    if (!name || !out)
        return remat_fail(REMAT_EINVAL, "gpt_preset: name and out must not be NULL");
    for (size_t i = 0; i < sizeof gpt_presets / sizeof gpt_presets[0]; i++)
        if (strcmp(name, gpt_presets[i].name) == 0) {
            *out = gpt_presets[i].cfg;
            return REMAT_OK;
        }
    return remat_fail(
        REMAT_EINVAL,
        "unknown model '%s' (presets: tiny, small, gpt2-124m, gpt2-350m; or a weights file)", name);
}

int gpt_padded_vocab(int vocab)
{
    return (vocab + 127) / 128 * 128;
}

remat_status gpt_config_check(gpt_config *cfg)
{
    if (!cfg)
        return remat_fail(REMAT_EINVAL, "gpt_config_check: cfg must not be NULL");
    if (cfg->layers < 1 || cfg->layers > 1024)
        return remat_fail(REMAT_EINVAL, "layers %d out of range [1, 1024]", cfg->layers);
    if (cfg->channels < 1 || cfg->channels > 65536)
        return remat_fail(REMAT_EINVAL, "channels %d out of range [1, 65536]", cfg->channels);
    if (cfg->heads < 1 || cfg->channels % cfg->heads != 0)
        return remat_fail(REMAT_EINVAL, "heads %d must divide channels %d", cfg->heads,
                          cfg->channels);
    if (cfg->vocab < 2 || cfg->vocab > (1 << 24))
        return remat_fail(REMAT_EINVAL, "vocab %d out of range [2, 16777216]", cfg->vocab);
    if (cfg->padded_vocab == 0)
        cfg->padded_vocab = gpt_padded_vocab(cfg->vocab);
    if (cfg->padded_vocab < cfg->vocab)
        return remat_fail(REMAT_EINVAL, "padded vocab %d is below vocab %d", cfg->padded_vocab,
                          cfg->vocab);
    if (cfg->max_seq < 1 || cfg->max_seq > (1 << 20))
        return remat_fail(REMAT_EINVAL, "sequence length %d out of range [1, 1048576]",
                          cfg->max_seq);
    return REMAT_OK;
}

void gpt_layout_params(const gpt_config *cfg, gpt_param_layout *out)
{
    size_t L = (size_t)cfg->layers, C = (size_t)cfg->channels;
    size_t counts[GPT_N_PARAMS] = {(size_t)cfg->padded_vocab * C,
                                   (size_t)cfg->max_seq * C,
                                   L * C,
                                   L * C,
                                   L * 3 * C * C,
                                   L * 3 * C,
                                   L * C * C,
                                   L * C,
                                   L * C,
                                   L * C,
                                   L * 4 * C * C,
                                   L * 4 * C,
                                   L * C * 4 * C,
                                   L * C,
                                   C,
                                   C};
    size_t off = 0;
    for (int i = 0; i < GPT_N_PARAMS; i++) {
        out->count[i] = counts[i];
        out->offset[i] = off;
        off += counts[i];
    }
    out->total = off;
}

static int gpt_has_arch_overrides(const gpt_overrides *ov)
{
    return ov->layers || ov->channels || ov->heads || ov->vocab;
}

remat_status gpt_resolve(const char *model, const gpt_overrides *ov, gpt_config *cfg, int *T,
                         float **params)
{
    if (!ov || !cfg || !T || !params)
        return remat_fail(REMAT_EINVAL, "gpt_resolve: arguments must not be NULL");
    *params = NULL;
    const char *name = model ? model : "small";
    gpt_config c;
    if (gpt_preset(name, &c) != REMAT_OK) {
        if (access(name, F_OK) != 0 && !strchr(name, '/') && !strchr(name, '.'))
            return remat_fail(REMAT_EINVAL,
                              "unknown model '%s' (presets: tiny, small, gpt2-124m, gpt2-350m; or "
                              "a weights file)",
                              name);
        REMAT_TRY(gpt_weights_read(name, &c, params));
        if (gpt_has_arch_overrides(ov) || (ov->seq && ov->seq > c.max_seq)) {
            free(*params);
            *params = NULL;
            return remat_fail(REMAT_EINVAL,
                              "%s fixes the architecture (L %d, C %d, NH %d, V %d, maxT %d): "
                              "--layers/--channels/--heads/--vocab cannot change it and --seq may "
                              "not exceed maxT",
                              name, c.layers, c.channels, c.heads, c.vocab, c.max_seq);
        }
    } else {
        if (ov->layers)
            c.layers = ov->layers;
        if (ov->channels)
            c.channels = ov->channels;
        if (ov->heads)
            c.heads = ov->heads;
        if (ov->vocab) {
            c.vocab = ov->vocab;
            c.padded_vocab = 0;
        }
        if (ov->seq > c.max_seq)
            c.max_seq = ov->seq;
        remat_status s = gpt_config_check(&c);
        if (s != REMAT_OK)
            return s;
    }
    *cfg = c;
    *T = ov->seq ? ov->seq : c.max_seq;
    return REMAT_OK;
}
