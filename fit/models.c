/* fit/models.c: model presets (GPT-2 family, our GPT presets, Llama, DeepSeek-R1 and its distills)
 * and their parameter counts. Shapes are the Hugging Face config.json values (docs/planner.md). */
#include "fit/fit.h"

#include <string.h>
#include <strings.h>

/* ==== Presets ============================================================================== */

#define GPT2(n, l, c, h, v, vp, t)                                                                 \
    {                                                                                              \
        .name = n, .arch = REMAT_ARCH_GPT2, .layers = l, .hidden = c, .heads = h, .kv_heads = h,   \
        .ffn = 4 * (c), .vocab = v, .padded_vocab = vp, .max_seq = t, .tied = 1                    \
    }
#define LLAMA(n, l, c, h, kv, f, v, t, bias)                                                       \
    {                                                                                              \
        .name = n, .arch = REMAT_ARCH_LLAMA, .layers = l, .hidden = c, .heads = h, .kv_heads = kv, \
        .ffn = f, .vocab = v, .padded_vocab = v, .max_seq = t, .qkv_bias = bias                    \
    }

static const remat_model_desc presets[] = {
    /* Our GPT (model/): the same numbers the training loop uses. */
    GPT2("tiny", 2, 64, 4, 256, 256, 64),
    GPT2("small", 4, 128, 4, 256, 256, 128),
    /* GPT-2 (llm.c train_gpt2.py; vocabulary padded to 50304 as llm.c stores it). */
    GPT2("gpt2-124m", 12, 768, 12, 50257, 50304, 1024),
    GPT2("gpt2-350m", 24, 1024, 16, 50257, 50304, 1024),
    GPT2("gpt2-774m", 36, 1280, 20, 50257, 50304, 1024),
    GPT2("gpt2-1558m", 48, 1600, 25, 50257, 50304, 1024),
    LLAMA("llama2-7b", 32, 4096, 32, 32, 11008, 32000, 4096, 0),
    LLAMA("llama3-8b", 32, 4096, 32, 8, 14336, 128256, 8192, 0),
    /* DeepSeek-V3 / R1 (config_671B.json; R1's config.json is identical in these fields). */
    {.name = "deepseek-r1",
     .arch = REMAT_ARCH_DEEPSEEK,
     .layers = 61,
     .hidden = 7168,
     .heads = 128,
     .kv_heads = 128,
     .head_dim = 128,
     .ffn = 18432,
     .vocab = 129280,
     .padded_vocab = 129280,
     .max_seq = 163840,
     .dense_layers = 3,
     .moe_ffn = 2048,
     .routed_experts = 256,
     .shared_experts = 1,
     .active_experts = 8,
     .q_lora_rank = 1536,
     .kv_lora_rank = 512,
     .qk_nope_dim = 128,
     .qk_rope_dim = 64,
     .v_head_dim = 128,
     .mtp_layers = 1},
    LLAMA("r1-distill-qwen-1.5b", 28, 1536, 12, 2, 8960, 151936, 131072, 1),
    LLAMA("r1-distill-qwen-7b", 28, 3584, 28, 4, 18944, 152064, 131072, 1),
    LLAMA("r1-distill-llama-8b", 32, 4096, 32, 8, 14336, 128256, 131072, 0),
    LLAMA("r1-distill-qwen-14b", 48, 5120, 40, 8, 13824, 152064, 131072, 1),
    LLAMA("r1-distill-qwen-32b", 64, 5120, 40, 8, 27648, 152064, 131072, 1),
    LLAMA("r1-distill-llama-70b", 80, 8192, 64, 8, 28672, 128256, 131072, 0),
};
static const size_t n_presets = sizeof presets / sizeof presets[0];

size_t remat_model_count(void)
{
    return n_presets;
}

const remat_model_desc *remat_model_at(size_t i)
{
    return i < n_presets ? &presets[i] : NULL;
}

static const char *model_name_at(size_t i)
{
    return i < n_presets ? presets[i].name : NULL;
}

remat_status remat_model_lookup(const char *name, remat_model_desc *out)
{
    if (!name || !out)
        return remat_fail(REMAT_EINVAL, "remat_model_lookup: name and out must not be NULL");
    for (size_t i = 0; i < n_presets; i++) {
        if (strcasecmp(presets[i].name, name) == 0) {
            *out = presets[i];
            if (out->head_dim == 0)
                out->head_dim = out->hidden / out->heads;
            return REMAT_OK;
        }
    }
    char near[200];
    fit_suggest(name, model_name_at, n_presets, near, sizeof near);
    return remat_fail(REMAT_EINVAL, "unknown model '%s'%s (see 'remat fit --list')", name, near);
}

/* ==== Validation =========================================================================== */

static remat_status model_check_range(const char *field, long v, long lo, long hi)
{
    if (v < lo || v > hi)
        return remat_fail(REMAT_EINVAL, "model %s = %ld is out of range [%ld, %ld]", field, v, lo,
                          hi);
    return REMAT_OK;
}

remat_status remat_model_validate(const remat_model_desc *m)
{
    if (!m)
        return remat_fail(REMAT_EINVAL, "remat_model_validate: model is NULL");
    if (m->params_only) {
        if (m->params_only > 1000000000000000ull)
            return remat_fail(REMAT_EINVAL, "model parameters %llu: absurd (more than 1e15)",
                              (unsigned long long)m->params_only);
        return REMAT_OK;
    }
    if (m->arch != REMAT_ARCH_GPT2 && m->arch != REMAT_ARCH_LLAMA && m->arch != REMAT_ARCH_DEEPSEEK)
        return remat_fail(REMAT_EINVAL, "model arch %d is unknown", (int)m->arch);
    REMAT_TRY(model_check_range("layers", m->layers, 1, 10000));
    REMAT_TRY(model_check_range("hidden", m->hidden, 1, 1 << 20));
    REMAT_TRY(model_check_range("heads", m->heads, 1, 1 << 16));
    REMAT_TRY(model_check_range("kv_heads", m->kv_heads, 1, m->heads));
    REMAT_TRY(model_check_range("ffn", m->ffn, 1, 1 << 24));
    REMAT_TRY(model_check_range("vocab", m->vocab, 1, 1 << 26));
    REMAT_TRY(model_check_range("padded_vocab", m->padded_vocab, m->vocab, 1 << 26));
    REMAT_TRY(model_check_range("max_seq", m->max_seq, 1, 1 << 24));
    REMAT_TRY(model_check_range("head_dim", m->head_dim ? m->head_dim : m->hidden / m->heads, 1,
                                1 << 16));
    if (!m->head_dim && m->hidden % m->heads)
        return remat_fail(REMAT_EINVAL, "model heads = %d does not divide hidden = %d", m->heads,
                          m->hidden);
    if (m->heads % m->kv_heads)
        return remat_fail(REMAT_EINVAL, "model kv_heads = %d does not divide heads = %d",
                          m->kv_heads, m->heads);
    if (m->arch == REMAT_ARCH_DEEPSEEK) {
        REMAT_TRY(model_check_range("dense_layers", m->dense_layers, 0, m->layers));
        REMAT_TRY(model_check_range("routed_experts", m->routed_experts, 1, 1 << 16));
        REMAT_TRY(model_check_range("active_experts", m->active_experts, 1, m->routed_experts));
        REMAT_TRY(model_check_range("moe_ffn", m->moe_ffn, 1, 1 << 24));
        REMAT_TRY(model_check_range("shared_experts", m->shared_experts, 0, 1 << 16));
        REMAT_TRY(model_check_range("q_lora_rank", m->q_lora_rank, 0, 1 << 16));
        REMAT_TRY(model_check_range("kv_lora_rank", m->kv_lora_rank, 1, 1 << 16));
        REMAT_TRY(model_check_range("qk_nope_dim", m->qk_nope_dim, 0, 1 << 16));
        REMAT_TRY(model_check_range("qk_rope_dim", m->qk_rope_dim, 1, 1 << 16));
        REMAT_TRY(model_check_range("v_head_dim", m->v_head_dim, 1, 1 << 16));
        REMAT_TRY(model_check_range("mtp_layers", m->mtp_layers, 0, 1000));
    }
    uint64_t total = fit_stored_params(m);
    if (total > 1000000000000000ull)
        return remat_fail(REMAT_EINVAL, "model has %llu parameters: absurd (more than 1e15)",
                          (unsigned long long)total);
    return REMAT_OK;
}

/* ==== Parameter counts ===================================================================== */

static uint64_t head_dim_of(const remat_model_desc *m)
{
    return m->head_dim ? (uint64_t)m->head_dim : (uint64_t)(m->hidden / m->heads);
}

/* GPT-2 block: ln1, qkv (+bias), proj (+bias), ln2, fc 4C (+bias), fcproj (+bias). */
static uint64_t gpt2_block(const remat_model_desc *m)
{
    uint64_t c = (uint64_t)m->hidden, f = (uint64_t)m->ffn;
    return 2 * c + (3 * c * c + 3 * c) + (c * c + c) + 2 * c + (c * f + f) + (f * c + c);
}

/* Llama / Qwen2 block: two RMSNorms, q/k/v/o (Qwen2: q/k/v biases), SwiGLU (gate, up, down). */
static uint64_t llama_block(const remat_model_desc *m)
{
    uint64_t h = (uint64_t)m->hidden, hd = head_dim_of(m);
    uint64_t q = (uint64_t)m->heads * hd, kv = (uint64_t)m->kv_heads * hd;
    uint64_t attn = h * q + 2 * h * kv + q * h + (m->qkv_bias ? q + 2 * kv : 0);
    return 2 * h + attn + 3 * h * (uint64_t)m->ffn;
}

/* DeepSeek MLA (inference/model.py): wq_a, q_norm, wq_b, wkv_a, kv_norm, wkv_b, wo. */
static uint64_t mla_attention(const remat_model_desc *m)
{
    uint64_t h = (uint64_t)m->hidden, nh = (uint64_t)m->heads;
    uint64_t qk = (uint64_t)(m->qk_nope_dim + m->qk_rope_dim);
    uint64_t ql = (uint64_t)m->q_lora_rank, kl = (uint64_t)m->kv_lora_rank;
    uint64_t q = ql ? h * ql + ql + ql * nh * qk : h * nh * qk;
    uint64_t kv = h * (kl + (uint64_t)m->qk_rope_dim) + kl +
                  kl * nh * (uint64_t)(m->qk_nope_dim + m->v_head_dim);
    return q + kv + nh * (uint64_t)m->v_head_dim * h;
}

static uint64_t swiglu(uint64_t h, uint64_t f)
{
    return 3 * h * f;
}

/* One MoE layer's routing gate (weight and the noaux_tc correction bias). */
static uint64_t moe_gate(const remat_model_desc *m)
{
    return (uint64_t)m->routed_experts * (uint64_t)m->hidden + (uint64_t)m->routed_experts;
}

/* Parameters of the blocks; *active gets those a token uses. */
static uint64_t deepseek_blocks(const remat_model_desc *m, uint64_t *active)
{
    uint64_t h = (uint64_t)m->hidden;
    uint64_t attn = mla_attention(m) + 2 * h;
    uint64_t dense = (uint64_t)m->dense_layers, moe = (uint64_t)(m->layers - m->dense_layers);
    uint64_t expert = swiglu(h, (uint64_t)m->moe_ffn);
    uint64_t all = (uint64_t)(m->routed_experts + m->shared_experts);
    uint64_t used = (uint64_t)(m->active_experts + m->shared_experts);
    uint64_t fixed =
        (uint64_t)m->layers * attn + dense * swiglu(h, (uint64_t)m->ffn) + moe * moe_gate(m);
    /* Saturating: a described (not yet validated) MoE can exceed 2^64 parameters. */
    *active = remat_sat_add(fixed, remat_sat_mul(moe * used, expert));
    return remat_sat_add(fixed, remat_sat_mul(moe * all, expert));
}

/* Counts with `rows` vocabulary rows; active per token in *active. */
static uint64_t model_count(const remat_model_desc *m, uint64_t rows, uint64_t *active)
{
    if (m->params_only) {
        *active = m->params_only;
        return m->params_only;
    }
    uint64_t h = (uint64_t)m->hidden, L = (uint64_t)m->layers;
    uint64_t embed = rows * h, head = m->tied ? 0 : rows * h;
    switch (m->arch) {
    case REMAT_ARCH_GPT2: {
        uint64_t n = embed + (uint64_t)m->max_seq * h + L * gpt2_block(m) + 2 * h;
        *active = n;
        return n;
    }
    case REMAT_ARCH_LLAMA: {
        uint64_t n = embed + head + L * llama_block(m) + h;
        *active = n;
        return n;
    }
    case REMAT_ARCH_DEEPSEEK: {
        uint64_t act = 0, blocks = deepseek_blocks(m, &act);
        *active = remat_sat_add(embed + head + h, act);
        return remat_sat_add(embed + head + h, blocks);
    }
    }
    *active = 0;
    return 0;
}

uint64_t fit_stored_params(const remat_model_desc *m)
{
    uint64_t active;
    uint64_t rows = m->padded_vocab > m->vocab ? (uint64_t)m->padded_vocab : (uint64_t)m->vocab;
    return model_count(m, rows, &active);
}

remat_status remat_model_params(const remat_model_desc *m, uint64_t *total, uint64_t *active)
{
    if (!m)
        return remat_fail(REMAT_EINVAL, "remat_model_params: model is NULL");
    REMAT_TRY(remat_model_validate(m)); /* a zeroed description has no heads to divide by */
    uint64_t a = 0, t = model_count(m, (uint64_t)m->vocab, &a);
    if (total)
        *total = t;
    if (active)
        *active = a;
    return REMAT_OK;
}

uint64_t remat_model_mtp_params(const remat_model_desc *m)
{
    if (!m || m->params_only || m->arch != REMAT_ARCH_DEEPSEEK || m->mtp_layers <= 0)
        return 0;
    if (remat_model_validate(m) != REMAT_OK)
        return 0; /* the message says why; an invalid description has no module to count */
    /* Each MTP module: enorm, hnorm, eh_proj (2h -> h), one MoE layer, the shared head's norm,
     * plus its own copies of the embedding and the output head (README_WEIGHTS.md). */
    uint64_t h = (uint64_t)m->hidden;
    uint64_t expert = swiglu(h, (uint64_t)m->moe_ffn);
    uint64_t layer = mla_attention(m) + 2 * h + moe_gate(m) +
                     (uint64_t)(m->routed_experts + m->shared_experts) * expert;
    uint64_t own = 2 * h + 2 * h * h + layer + h + 2 * (uint64_t)m->vocab * h;
    return (uint64_t)m->mtp_layers * own;
}

void fit_units_of(const remat_model_desc *m, fit_units *u)
{
    memset(u, 0, sizeof *u);
    uint64_t total = fit_stored_params(m), h = (uint64_t)m->hidden, L = (uint64_t)m->layers;
    if (m->params_only) {
        u->outer = total;
        return;
    }
    switch (m->arch) {
    case REMAT_ARCH_GPT2:
        u->norm = 2 * h;
        u->block[0] = gpt2_block(m);
        u->blocks[0] = L;
        break;
    case REMAT_ARCH_LLAMA:
        u->norm = h;
        u->block[0] = llama_block(m);
        u->blocks[0] = L;
        break;
    case REMAT_ARCH_DEEPSEEK: {
        uint64_t attn = mla_attention(m) + 2 * h;
        uint64_t experts =
            (uint64_t)(m->routed_experts + m->shared_experts) * swiglu(h, (uint64_t)m->moe_ffn);
        u->norm = h;
        u->block[0] = attn + swiglu(h, (uint64_t)m->ffn);
        u->blocks[0] = (uint64_t)m->dense_layers;
        u->block[1] = attn + moe_gate(m) + experts;
        u->blocks[1] = L - (uint64_t)m->dense_layers;
        break;
    }
    }
    uint64_t inside = u->norm;
    for (int k = 0; k < 2; k++)
        inside = remat_sat_add(inside, remat_sat_mul(u->blocks[k], u->block[k]));
    u->outer = total > inside ? total - inside : 0;
}

/* ==== Weight formats ======================================================================= */

/* Adds `count` matrices of in x out weights stored in the integer or fp8 format q: packed values
 * plus the format's scales. fp8: one fp32 scale per 128x128 block (DeepSeek-V3's
 * weight_block_size); int8: one fp16 scale per output row; int4: two values a byte and one fp16
 * scale per group of 128 inputs of an output row (GPTQ/AWQ group size 128, zero points not
 * counted). */
static void weights_add_linear(fit_weights *w, remat_dtype q, uint64_t in, uint64_t out,
                               uint64_t count)
{
    uint64_t n = in * out, values = q == REMAT_DTYPE_INT4 ? (n + 1) / 2 : n, scales = 0;
    if (q == REMAT_DTYPE_FP8)
        scales = 4 * ((out + 127) / 128) * ((in + 127) / 128);
    else if (q == REMAT_DTYPE_INT8)
        scales = 2 * out;
    else if (q == REMAT_DTYPE_INT4)
        scales = 2 * out * ((in + 127) / 128);
    w->quant_params += count * n;
    w->quant_bytes += count * (values + scales);
    w->scale_bytes += count * scales;
}

/* The linear layers inside the blocks (attention projections, MLPs, every expert) of m. */
static void weights_linears(const remat_model_desc *m, remat_dtype q, fit_weights *w)
{
    uint64_t h = (uint64_t)m->hidden, L = (uint64_t)m->layers, f = (uint64_t)m->ffn;
    uint64_t hd = head_dim_of(m), nq = (uint64_t)m->heads * hd, nkv = (uint64_t)m->kv_heads * hd;
    switch (m->arch) {
    case REMAT_ARCH_GPT2:
        weights_add_linear(w, q, h, 3 * h, L); /* qkv */
        weights_add_linear(w, q, h, h, L);     /* attention projection */
        weights_add_linear(w, q, h, f, L);     /* fc */
        weights_add_linear(w, q, f, h, L);     /* fc projection */
        return;
    case REMAT_ARCH_LLAMA:
        weights_add_linear(w, q, h, nq, L);      /* q */
        weights_add_linear(w, q, h, nkv, 2 * L); /* k, v */
        weights_add_linear(w, q, nq, h, L);      /* o */
        weights_add_linear(w, q, h, f, 2 * L);   /* gate, up */
        weights_add_linear(w, q, f, h, L);       /* down */
        return;
    case REMAT_ARCH_DEEPSEEK: {
        uint64_t nh = (uint64_t)m->heads, ql = (uint64_t)m->q_lora_rank;
        uint64_t kl = (uint64_t)m->kv_lora_rank, rope = (uint64_t)m->qk_rope_dim;
        uint64_t qk = (uint64_t)m->qk_nope_dim + rope, v = (uint64_t)m->v_head_dim;
        uint64_t dense = (uint64_t)m->dense_layers, moe = L - dense, e = (uint64_t)m->moe_ffn;
        uint64_t experts = moe * (uint64_t)(m->routed_experts + m->shared_experts);
        if (ql) {
            weights_add_linear(w, q, h, ql, L);       /* wq_a */
            weights_add_linear(w, q, ql, nh * qk, L); /* wq_b */
        } else {
            weights_add_linear(w, q, h, nh * qk, L); /* wq */
        }
        weights_add_linear(w, q, h, kl + rope, L);                            /* wkv_a */
        weights_add_linear(w, q, kl, nh * ((uint64_t)m->qk_nope_dim + v), L); /* wkv_b */
        weights_add_linear(w, q, nh * v, h, L);                               /* wo */
        weights_add_linear(w, q, h, f, 2 * dense);                            /* dense w1, w3 */
        weights_add_linear(w, q, f, h, dense);                                /* dense w2 */
        weights_add_linear(w, q, h, e, 2 * experts);                          /* expert w1, w3 */
        weights_add_linear(w, q, e, h, experts);                              /* expert w2 */
        return;
    }
    }
}

void fit_weights_split(const remat_model_desc *m, remat_dtype q, fit_weights *out)
{
    memset(out, 0, sizeof *out);
    uint64_t total = fit_stored_params(m);
    int integer = q == REMAT_DTYPE_FP8 || q == REMAT_DTYPE_INT8 || q == REMAT_DTYPE_INT4;
    if (!integer) { /* fp32 / bf16 / fp16: every weight in that format */
        out->plain_params = total;
        out->plain_bytes = total * fit_dtype_bytes(q);
        return;
    }
    if (m->params_only) { /* no layers to tell apart: all of them in q */
        out->quant_params = total;
        out->quant_bytes = fit_weight_bytes(total, q, 0);
        out->scale_bytes = out->quant_bytes - (q == REMAT_DTYPE_INT4 ? (total + 1) / 2 : total);
        return;
    }
    weights_linears(m, q, out);
    out->plain_params = total - out->quant_params;
    out->plain_bytes = 2 * out->plain_params;
}
