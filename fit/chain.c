/* fit/chain.c: the analytic chain of one training step of a model (embedding, blocks, head and
 * loss as stages, docs/checkpoint.md's model) and the closed-form peaks of the fixed policies. */
#include "core/gpt_layout.h"
#include "fit/fit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Stage sizes are clamped here: far above any card (remat_fit refuses cards above 2^47 bytes), so
 * a clamped stage never fits, and sums over 10,000 stages cannot overflow. */
#define CHAIN_CLAMP ((long double)(1ull << 48))

/* What one transformer block keeps and costs, per token of the batch. Bytes, FLOPs. */
typedef struct {
    long double saved;      /* everything the backward needs, the output included */
    long double act_drop;   /* bytes recompute-act does not keep (MLP activation outputs) */
    long double attn_drop;  /* bytes recompute-attn does not keep (attention scores) */
    long double largest;    /* the largest single intermediate tensor */
    long double fwd;        /* FLOPs of the forward */
    long double act_flops;  /* FLOPs to recompute the MLP activation */
    long double attn_flops; /* FLOPs to recompute the attention core */
} chain_block;

static uint64_t chain_bytes(long double per_token, long double tokens)
{
    long double v = ceill(per_token * tokens);
    return v >= CHAIN_CLAMP ? (uint64_t)CHAIN_CLAMP : (uint64_t)v;
}

static long double maxl(long double a, long double b)
{
    return a > b ? a : b;
}

/* Llama / Qwen2 block without dropout: norm outputs, q, k, v (after RoPE), attention output,
 * the mid residual, SwiGLU gate, up, silu(gate) and the product, the output; fp32 RMS
 * statistics; the softmax output (heads x T per token). */
static chain_block llama_block(const remat_model_desc *m, long double T, long double e)
{
    long double h = m->hidden, hd = m->head_dim ? m->head_dim : m->hidden / m->heads;
    long double q = m->heads * hd, kv = m->kv_heads * hd, F = m->ffn;
    chain_block b;
    b.saved = (4 * h + 2 * q + 2 * kv + 4 * F) * e + 2 * 4 + m->heads * T * e;
    b.act_drop = 2 * F * e;
    b.attn_drop = m->heads * T * e;
    b.largest = maxl(F, m->heads * T) * e;
    b.fwd = 2 * (2 * h * q + 2 * h * kv + 3 * h * F) + 4 * T * q;
    b.act_flops = 6 * F;
    b.attn_flops = 4 * T * q + 5 * m->heads * T;
    return b;
}

/* DeepSeek MLA block, dense MLP (moe = 0) or MoE: MLA intermediates (q_a and its norm, q, the
 * compressed kv and its norm, k, v, attention output), the residual and norms, then either a
 * SwiGLU of width ffn or the router logits, the tokens dispatched to the active experts, every
 * used expert's SwiGLU intermediates and the expert outputs. */
static chain_block deepseek_block(const remat_model_desc *m, int moe, long double T, long double e)
{
    long double h = m->hidden, nh = m->heads, ql = m->q_lora_rank, kl = m->kv_lora_rank;
    long double rope = m->qk_rope_dim, qk = m->qk_nope_dim + m->qk_rope_dim, v = m->v_head_dim;
    long double used = m->active_experts + m->shared_experts;
    long double attn = h + 2 * ql + nh * qk + (kl + rope) + kl + nh * qk + 2 * nh * v + 2 * h;
    long double mlp_inner = moe ? used * m->moe_ffn : m->ffn;
    long double mlp = 4 * mlp_inner + (moe ? 2 * m->active_experts * h : 0);
    long double router = moe ? 4.0L * m->routed_experts : 0;
    chain_block b;
    b.saved = (attn + mlp + h) * e + 4 * 4 + router + nh * T * e;
    b.act_drop = 2 * mlp_inner * e;
    b.attn_drop = nh * T * e;
    b.largest = maxl(maxl(m->moe_ffn * used, m->ffn * (moe ? 0 : 1)), maxl(nh * qk, nh * T)) * e;
    long double mla =
        h * ql + ql * nh * qk + h * (kl + rope) + kl * nh * (qk - rope + v) + nh * v * h;
    b.fwd =
        2 * (mla + 3 * h * mlp_inner + (moe ? h * m->routed_experts : 0)) + 2 * T * nh * (qk + v);
    b.act_flops = 6 * mlp_inner;
    b.attn_flops = 2 * T * nh * (qk + v) + 5 * nh * T;
    return b;
}

static chain_block model_block(const remat_model_desc *m, int layer, long double T, long double e)
{
    return m->arch == REMAT_ARCH_DEEPSEEK ? deepseek_block(m, layer >= m->dense_layers, T, e)
                                          : llama_block(m, T, e);
}

static void chain_set_option(remat_stage_option *o, const char *name, uint64_t saved, double bwd)
{
    snprintf(o->name, sizeof o->name, "%s", name);
    o->saved_bytes = saved;
    o->bwd = bwd;
}

/* Fills stage s as block `layer` for `tokens` tokens; options must hold 3 entries. */
static void chain_fill_block(remat_stage *s, const chain_block *b, long double tokens, int layer,
                             long double h_bytes, remat_stage_option *options)
{
    snprintf(s->name, sizeof s->name, "block%d", layer);
    s->fwd = (double)(b->fwd * tokens);
    s->bwd = 2 * s->fwd;
    s->out_bytes = chain_bytes(h_bytes, tokens);
    s->saved_bytes = chain_bytes(b->saved, tokens);
    s->fwd_tmp_bytes = chain_bytes(b->largest, tokens);
    s->bwd_tmp_bytes = chain_bytes(2 * b->largest, tokens);
    double act = (double)(b->act_flops * tokens), attn = (double)(b->attn_flops * tokens);
    chain_set_option(&options[0], "recompute-act", chain_bytes(b->saved - b->act_drop, tokens),
                     s->bwd + act);
    chain_set_option(&options[1], "recompute-attn", chain_bytes(b->saved - b->attn_drop, tokens),
                     s->bwd + attn);
    chain_set_option(&options[2], "recompute-both",
                     chain_bytes(b->saved - b->act_drop - b->attn_drop, tokens),
                     s->bwd + act + attn);
    s->n_options = 3;
    s->options = options;
}

/* Final norm, head and loss: the norm output and statistics, fp32 logits, the per-token losses.
 * Output: the losses (4 bytes a token). */
static void chain_fill_head(remat_stage *s, const remat_model_desc *m, long double tokens,
                            long double e)
{
    long double h = m->hidden, V = m->padded_vocab > m->vocab ? m->padded_vocab : m->vocab;
    snprintf(s->name, sizeof s->name, "head");
    s->fwd = (double)(2 * h * V * tokens);
    s->bwd = 2 * s->fwd;
    s->out_bytes = chain_bytes(4, tokens);
    s->saved_bytes = chain_bytes(h * e + 4 + V * 4 + 4, tokens);
    s->fwd_tmp_bytes = 0;
    s->bwd_tmp_bytes = chain_bytes(V * 4 + h * e, tokens);
}

/* Llama-family and DeepSeek chains from the per-token formulas above. */
static remat_status chain_build_generic(const remat_model_desc *m, uint64_t batch, uint64_t seq,
                                        unsigned act_bytes, remat_chain **out)
{
    int L = m->layers, n = L + 2;
    remat_chain *c = NULL;
    REMAT_TRY(remat_chain_new(n, &c));
    remat_stage *stages = c->stages;
    for (int l = 0; l < L; l++) {
        stages[1 + l].options = calloc(3, sizeof(remat_stage_option));
        if (!stages[1 + l].options) {
            remat_chain_free(c);
            return remat_fail(REMAT_ENOMEM, "fit_chain_build: out of host memory (%d stages)", n);
        }
    }
    long double tokens = (long double)batch * (long double)seq, e = act_bytes, h = m->hidden;
    snprintf(c->name, sizeof c->name, "%s-b%llu-t%llu", m->name, (unsigned long long)batch,
             (unsigned long long)seq);
    c->input_bytes = chain_bytes(8, tokens); /* int32 inputs and targets */
    snprintf(stages[0].name, sizeof stages[0].name, "embed");
    stages[0].fwd = (double)(h * tokens);
    stages[0].bwd = 2 * stages[0].fwd;
    stages[0].out_bytes = stages[0].saved_bytes = chain_bytes(h * e, tokens);
    for (int l = 0; l < L; l++) {
        chain_block b = model_block(m, l, (long double)seq, e);
        chain_fill_block(&stages[1 + l], &b, tokens, l, h * e, stages[1 + l].options);
    }
    chain_fill_head(&stages[n - 1], m, tokens, e);
    *out = c;
    return REMAT_OK;
}

/* ==== Our GPT: the training loop's exact layout ============================================== */
/* core/gpt_layout.h is the layout model/stages.c allocates, so the planner predicts what the pool
 * will hold; only the times (FLOPs) are the planner's own. */

static void gpt_fill_block(remat_stage *s, const gptl_layout *lay, const remat_model_desc *m, int l,
                           long double N, long double T)
{
    long double C = m->hidden, NH = m->heads;
    snprintf(s->name, sizeof s->name, "block%d", l);
    s->fwd = (double)(N * (24 * C * C + 4 * T * C + 60 * C));
    s->bwd = 2 * s->fwd;
    s->out_bytes = lay->act;
    s->saved_bytes = lay->saved[0].bytes;
    s->fwd_tmp_bytes = lay->fwd.bytes;
    s->bwd_tmp_bytes = lay->bwd.bytes;
    double gelu = (double)(N * 32 * C), ln = (double)(N * 16 * C);
    double attn = (double)(N * (4 * T * C + 5 * NH * T));
    for (int k = 0; k < GPTL_N_BLOCK_OPTIONS; k++) {
        gptl_option o = gptl_block_option(k);
        snprintf(s->options[k].name, sizeof s->options[k].name, "%s", o.name);
        s->options[k].saved_bytes = lay->saved[1 + k].bytes;
        s->options[k].bwd = s->bwd + (o.gelu ? 0 : gelu) + (o.ln ? 0 : ln) + (o.attn ? 0 : attn);
    }
    s->n_options = GPTL_N_BLOCK_OPTIONS;
}

/* The head: forward-with-grad computes the head's gradient at once, so ā holds the losses, the
 * gradient of the final LayerNorm's output and its statistics; the logits are workspace. */
static void gpt_fill_head(remat_stage *s, const gptl_layout *lay, long double N, long double C,
                          long double Vp)
{
    snprintf(s->name, sizeof s->name, "head");
    s->fwd = (double)(3 * 2 * N * C * Vp);
    s->bwd = (double)(10 * N * C);
    s->out_bytes = lay->loss;
    s->saved_bytes = lay->head_saved.bytes;
    s->fwd_tmp_bytes = lay->head_tmp.bytes;
    s->bwd_tmp_bytes = 0;
}

remat_status fit_chain_build_gpt(const remat_model_desc *m, uint64_t batch, uint64_t seq,
                                  unsigned act_bytes, uint64_t scratch, remat_chain **out)
{
    int L = m->layers;
    remat_chain *c = NULL;
    REMAT_TRY(remat_chain_new(L + 2, &c));
    for (int l = 0; l < L; l++) {
        c->stages[1 + l].options = calloc(GPTL_N_BLOCK_OPTIONS, sizeof(remat_stage_option));
        if (!c->stages[1 + l].options) {
            remat_chain_free(c);
            return remat_fail(REMAT_ENOMEM, "fit_chain_build: out of host memory (%d stages)",
                              L + 2);
        }
    }
    gptl_dims d = {.B = batch,
                   .T = seq,
                   .C = (uint64_t)m->hidden,
                   .NH = (uint64_t)m->heads,
                   .Vp = (uint64_t)m->padded_vocab,
                   .elem = act_bytes,
                   .scratch = scratch};
    gptl_layout lay;
    gptl_compute(&d, &lay);
    long double N = (long double)batch * (long double)seq, C = m->hidden;
    snprintf(c->name, sizeof c->name, "%s-b%llu-t%llu", m->name, (unsigned long long)batch,
             (unsigned long long)seq);
    c->input_bytes = lay.input;
    snprintf(c->stages[0].name, sizeof c->stages[0].name, "embed");
    c->stages[0].fwd = (double)(2 * N * C);
    c->stages[0].bwd = 2 * c->stages[0].fwd;
    c->stages[0].out_bytes = c->stages[0].saved_bytes = lay.act;
    for (int l = 0; l < L; l++)
        gpt_fill_block(&c->stages[1 + l], &lay, m, l, N, (long double)seq);
    gpt_fill_head(&c->stages[L + 1], &lay, N, C, (long double)m->padded_vocab);
    *out = c;
    return REMAT_OK;
}

uint64_t fit_chain_extra_bytes(const remat_model_desc *m, uint64_t batch, uint64_t seq)
{
    if (m->arch != REMAT_ARCH_GPT2)
        return 0; /* the generic chains count targets in a_0 */
    return gptl_total(remat_sat_mul(remat_sat_mul(batch, seq), 4));
}

remat_status fit_chain_build(const remat_model_desc *m, uint64_t batch, uint64_t seq,
                              unsigned act_bytes, remat_chain **out)
{
    if (!m || !out || batch == 0 || seq == 0 || act_bytes == 0 || m->params_only)
        return remat_fail(REMAT_EINVAL, "fit_chain_build: needs a shaped model, batch and seq");
    if (m->arch != REMAT_ARCH_GPT2)
        return chain_build_generic(m, batch, seq, act_bytes, out);
    /* The CUDA attention kernel's backward scratch: one batch row of NH x T x T floats. */
    long double scratch = (long double)m->heads * (long double)seq * (long double)seq * 4;
    return fit_chain_build_gpt(m, batch, seq, act_bytes, chain_bytes(scratch, 1), out);
}

void fit_chain_free(remat_chain *c)
{
    remat_chain_free(c);
}

/* ==== Closed-form peaks ==================================================================== */

/* The saved bytes and backward time of stage s under p: those of the option p runs on it
 * (remat_policy_stage_option, the scheduler's own choice), else its default's. */
static uint64_t stage_saved(const remat_stage *s, const remat_policy *p)
{
    int k = remat_policy_stage_option(p, s);
    return k >= 0 ? s->options[k].saved_bytes : s->saved_bytes;
}

static double stage_bwd(const remat_stage *s, const remat_policy *p)
{
    int k = remat_policy_stage_option(p, s);
    return k >= 0 ? s->options[k].bwd : s->bwd;
}

static uint64_t in_bytes(const remat_chain *c, int i)
{
    return i == 0 ? c->input_bytes : c->stages[i - 1].out_bytes;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

/* F_all 0..n-1 then B n-1..0. Forward: a_0 + d_L + the stored ā so far + the op's tmp. Backward
 * B i: a_0 + ā_1..ā_{i+1} + d_{i+1} + d_i + tmp. */
static uint64_t peak_store_all(const remat_chain *c, const remat_policy *p)
{
    int n = c->n_stages;
    uint64_t d_last = c->stages[n - 1].out_bytes, stored = 0, peak = c->input_bytes + d_last;
    uint64_t *prefix = malloc(((size_t)n + 1) * sizeof *prefix);
    if (!prefix)
        return UINT64_MAX;
    prefix[0] = 0;
    for (int i = 0; i < n; i++) {
        const remat_stage *s = &c->stages[i];
        stored += stage_saved(s, p);
        prefix[i + 1] = stored;
        peak = max_u64(peak, c->input_bytes + d_last + stored + s->fwd_tmp_bytes);
    }
    for (int i = n - 1; i >= 0; i--) {
        const remat_stage *s = &c->stages[i];
        peak = max_u64(peak, c->input_bytes + prefix[i + 1] + s->out_bytes + in_bytes(c, i) +
                                 s->bwd_tmp_bytes);
    }
    free(prefix);
    return peak;
}

/* F_ck 0..n-2 keeping every stage input, then for i = n-1..0: F_all i, B i. */
static uint64_t peak_full(const remat_chain *c)
{
    int n = c->n_stages;
    uint64_t d_last = c->stages[n - 1].out_bytes, kept = c->input_bytes;
    uint64_t peak = kept + d_last;
    uint64_t *inputs = malloc((size_t)n * sizeof *inputs); /* a_0 + ... + a_i */
    if (!inputs)
        return UINT64_MAX;
    for (int i = 0; i < n; i++) {
        const remat_stage *s = &c->stages[i];
        inputs[i] = kept;
        if (i < n - 1) {
            peak = max_u64(peak, kept + d_last + s->out_bytes + s->fwd_tmp_bytes);
            kept += s->out_bytes;
        }
    }
    for (int i = n - 1; i >= 0; i--) {
        const remat_stage *s = &c->stages[i];
        uint64_t base = inputs[i] + s->out_bytes + s->saved_bytes; /* a_0..a_i, d_{i+1}, ā_{i+1} */
        peak = max_u64(peak, base + s->fwd_tmp_bytes);
        peak = max_u64(peak, base + in_bytes(c, i) + s->bwd_tmp_bytes);
    }
    free(inputs);
    return peak;
}

uint64_t fit_chain_peak(const remat_chain *c, const remat_policy *p)
{
    if (!c || c->n_stages < 1)
        return 0;
    return p->kind == REMAT_POLICY_FULL_RECOMPUTE ? peak_full(c) : peak_store_all(c, p);
}

double fit_chain_overhead(const remat_chain *c, const remat_policy *p)
{
    if (!c || c->n_stages < 1)
        return 0;
    double base = 0, time = 0;
    for (int i = 0; i < c->n_stages; i++) {
        const remat_stage *s = &c->stages[i];
        base += s->fwd + s->bwd;
        time += s->fwd + stage_bwd(s, p);
        if (p->kind == REMAT_POLICY_FULL_RECOMPUTE && i < c->n_stages - 1)
            time += s->fwd;
    }
    return base > 0 ? time / base - 1 : 0;
}
