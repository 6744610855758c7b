/* model/stages.c: the model's stages as remat callbacks: embedding, transformer blocks with their
 * save options, and the head (final LayerNorm, tied output matrix, softmax cross-entropy). */
#include "model/stages.h"
#include "core/core.h"

#include <string.h>

const char *const gpt_block_option_names[GPT_N_BLOCK_OPTIONS] = {
    "recompute-gelu", "recompute-gelu-ln", "recompute-attn", "recompute-attn-gelu-ln"};

/* ==== Layouts ============================================================================== */

/* core/gpt_layout.h numbers the options in the order of gpt.h's enum. */
_Static_assert((int)GPT_N_BLOCK_OPTIONS == (int)GPTL_N_BLOCK_OPTIONS &&
                   GPT_OPT_RECOMPUTE_GELU == 0 && GPT_OPT_RECOMPUTE_GELU_LN == 1 &&
                   GPT_OPT_RECOMPUTE_ATTN == 2 && GPT_OPT_RECOMPUTE_ATTN_GELU_LN == 3,
               "the block options of gpt.h and core/gpt_layout.h differ");

void gpt_stages_layout(gpt_model *m)
{
    gptl_dims d = {.B = (uint64_t)m->B,
                   .T = (uint64_t)m->T,
                   .C = (uint64_t)m->cfg.channels,
                   .NH = (uint64_t)m->cfg.heads,
                   .Vp = (uint64_t)m->cfg.padded_vocab,
                   .elem = sizeof(float),
                   .scratch =
                       m->k->attention_scratch_bytes(m->B, m->T, m->cfg.channels, m->cfg.heads)};
    gptl_layout l;
    gptl_compute(&d, &l);
    m->input_bytes = l.input;
    m->act_bytes = l.act;
    m->loss_bytes = l.loss;
    for (int i = 0; i <= GPT_N_BLOCK_OPTIONS; i++)
        m->saved[i] = l.saved[i];
    m->fwd_tmp = l.fwd;
    m->bwd_tmp = l.bwd;
    m->head_tmp = l.head_tmp;
    m->head_saved = l.head_saved;
}

static float *gpt_at(const void *base, size_t off)
{
    return (float *)((char *)base + off);
}

/* ==== Per-layer parameters ================================================================= */

typedef struct {
    const float *ln1w, *ln1b, *qkvw, *qkvb, *attprojw, *attprojb, *ln2w, *ln2b, *fcw, *fcb,
        *fcprojw, *fcprojb;
} gpt_layer_params;

typedef struct {
    float *ln1w, *ln1b, *qkvw, *qkvb, *attprojw, *attprojb, *ln2w, *ln2b, *fcw, *fcb, *fcprojw,
        *fcprojb;
} gpt_layer_grads;

/* Tensor `t` of layer l inside a flat buffer whose tensors start at base[]. */
static float *gpt_layer_tensor(const gpt_model *m, float *const *base, int t, int l)
{
    return base[t] + (size_t)l * (m->lay.count[t] / (size_t)m->cfg.layers);
}

static gpt_layer_params gpt_layer_p(const gpt_model *m, int l)
{
    float *const *b = m->p;
    return (gpt_layer_params){
        gpt_layer_tensor(m, b, GPT_LN1W, l),     gpt_layer_tensor(m, b, GPT_LN1B, l),
        gpt_layer_tensor(m, b, GPT_QKVW, l),     gpt_layer_tensor(m, b, GPT_QKVB, l),
        gpt_layer_tensor(m, b, GPT_ATTPROJW, l), gpt_layer_tensor(m, b, GPT_ATTPROJB, l),
        gpt_layer_tensor(m, b, GPT_LN2W, l),     gpt_layer_tensor(m, b, GPT_LN2B, l),
        gpt_layer_tensor(m, b, GPT_FCW, l),      gpt_layer_tensor(m, b, GPT_FCB, l),
        gpt_layer_tensor(m, b, GPT_FCPROJW, l),  gpt_layer_tensor(m, b, GPT_FCPROJB, l)};
}

static gpt_layer_grads gpt_layer_g(const gpt_model *m, int l)
{
    float *const *b = m->g;
    return (gpt_layer_grads){
        gpt_layer_tensor(m, b, GPT_LN1W, l),     gpt_layer_tensor(m, b, GPT_LN1B, l),
        gpt_layer_tensor(m, b, GPT_QKVW, l),     gpt_layer_tensor(m, b, GPT_QKVB, l),
        gpt_layer_tensor(m, b, GPT_ATTPROJW, l), gpt_layer_tensor(m, b, GPT_ATTPROJB, l),
        gpt_layer_tensor(m, b, GPT_LN2W, l),     gpt_layer_tensor(m, b, GPT_LN2B, l),
        gpt_layer_tensor(m, b, GPT_FCW, l),      gpt_layer_tensor(m, b, GPT_FCB, l),
        gpt_layer_tensor(m, b, GPT_FCPROJW, l),  gpt_layer_tensor(m, b, GPT_FCPROJB, l)};
}

/* ==== Embedding ============================================================================ */

static void gpt_embed_forward(gpt_model *m, const int *tokens, float *out)
{
    m->k->encoder_forward(m->kc, out, tokens, m->p[GPT_WTE], m->p[GPT_WPE], m->B, m->T,
                          m->cfg.channels);
}

static void gpt_embed_backward(gpt_model *m, const int *tokens, const float *dout)
{
    m->k->encoder_backward(m->kc, m->g[GPT_WTE], m->g[GPT_WPE], dout, tokens, m->B, m->T,
                           m->cfg.channels);
}

/* ==== Blocks =============================================================================== */

/* Forward of block l from x into out. saved = NULL: no grad (every intermediate lives in tmp);
 * else saved is ā laid out by s (out == saved) and what s omits goes to tmp. */
static void gpt_block_forward(gpt_model *m, int l, const float *x, float *out, void *saved,
                              const gpt_block_saved *s, void *tmp)
{
    const kern_table *k = m->k;
    kern_ctx *kc = m->kc;
    int N = (int)m->N, C = m->cfg.channels, B = m->B, T = m->T, NH = m->cfg.heads;
    const gpt_block_fwd_tmp *ft = &m->fwd_tmp;
    gpt_layer_params w = gpt_layer_p(m, l);
    float *t1 = gpt_at(tmp, ft->t1), *t2 = gpt_at(tmp, ft->t2), *t3 = gpt_at(tmp, ft->t3),
          *t4 = gpt_at(tmp, ft->t4);
    void *scratch = gpt_at(tmp, ft->scratch);
    float *stats = saved ? gpt_at(saved, s->stats) : gpt_at(tmp, ft->stats);
    float *ln2stats = saved ? stats + 2 * m->N : stats;
    /* Where each intermediate goes: saved if the option keeps it, else workspace. */
    float *ln1 = saved && s->ln1 != GPT_ABSENT ? gpt_at(saved, s->ln1) : t1;
    float *qkv = saved ? gpt_at(saved, s->qkv) : t2;
    float *atty = saved && s->atty != GPT_ABSENT ? gpt_at(saved, s->atty) : t4;
    float *att = saved && s->att != GPT_ABSENT ? gpt_at(saved, s->att) : t3;
    float *res2 = saved ? gpt_at(saved, s->res2) : out;
    float *ln2 = saved && s->ln2 != GPT_ABSENT ? gpt_at(saved, s->ln2) : t4;
    float *fch = saved ? gpt_at(saved, s->fch) : t2;
    float *gelu = saved && s->gelu != GPT_ABSENT ? gpt_at(saved, s->gelu) : t3;

    k->layernorm_forward(kc, ln1, stats, stats + m->N, x, w.ln1w, w.ln1b, N, C);
    k->matmul_forward(kc, qkv, ln1, w.qkvw, w.qkvb, N, C, 3 * C);
    k->attention_forward(kc, atty, att, qkv, scratch, B, T, C, NH);
    k->matmul_forward(kc, t1, atty, w.attprojw, w.attprojb, N, C, C);
    k->residual_forward(kc, res2, x, t1, m->N * C);
    k->layernorm_forward(kc, ln2, ln2stats, ln2stats + m->N, res2, w.ln2w, w.ln2b, N, C);
    k->matmul_forward(kc, fch, ln2, w.fcw, w.fcb, N, C, 4 * C);
    k->gelu_forward(kc, gelu, fch, m->N * 4 * C);
    k->matmul_forward(kc, t1, gelu, w.fcprojw, w.fcprojb, N, 4 * C, C);
    k->residual_forward(kc, out, res2, t1, m->N * C);
}

/* What the backward of one block works with: its weights and gradients, the saved tensors (or
 * NULL for those its save option recomputes) and the workspace regions g1..g4 (see stages.h). */
typedef struct {
    gpt_model *m;
    int N, C;
    size_t NC;
    gpt_layer_params w;
    gpt_layer_grads dw;
    const gpt_block_saved *s;
    const void *saved;
    const float *x, *qkv, *res2, *fch, *stats; /* stats: ln1 mean, ln1 rstd, ln2 mean, ln2 rstd */
    float *g1, *g2, *g3, *g4, *rs;
    void *scratch;
} gpt_block_bwd;

/* A saved tensor, or NULL when the option omits it. */
static const float *gpt_saved_at(const gpt_block_bwd *b, size_t off)
{
    return off == GPT_ABSENT ? NULL : gpt_at(b->saved, off);
}

/* MLP, out = res2 + fcproj(gelu(fc(ln2(res2)))): leaves dres2 (dout plus the LayerNorm's share)
 * in g3. */
static void gpt_block_backward_mlp(const gpt_block_bwd *b, const float *dout)
{
    gpt_model *m = b->m;
    const kern_table *k = m->k;
    kern_ctx *kc = m->kc;
    int N = b->N, C = b->C;
    size_t f = sizeof(float);
    const float *gelu = gpt_saved_at(b, b->s->gelu), *ln2 = gpt_saved_at(b, b->s->ln2);
    if (!gelu) {
        k->gelu_forward(kc, b->g2, b->fch, 4 * b->NC);
        gelu = b->g2;
    }
    k->zero(kc, b->g1, 4 * b->NC * f);
    k->matmul_backward(kc, b->g1, b->dw.fcprojw, b->dw.fcprojb, dout, gelu, b->w.fcprojw, N, 4 * C,
                       C);
    k->zero(kc, b->g2, 4 * b->NC * f);
    k->gelu_backward(kc, b->g2, b->fch, b->g1, 4 * b->NC);
    if (!ln2) {
        k->layernorm_forward(kc, b->g3, b->rs, b->rs + m->N, b->res2, b->w.ln2w, b->w.ln2b, N, C);
        ln2 = b->g3;
    }
    k->zero(kc, b->g4, b->NC * f);
    k->matmul_backward(kc, b->g4, b->dw.fcw, b->dw.fcb, b->g2, ln2, b->w.fcw, N, C, 4 * C);
    k->copy(kc, b->g3, dout, b->NC * f);
    k->layernorm_backward(kc, b->g3, b->dw.ln2w, b->dw.ln2b, b->g4, b->res2, b->w.ln2w,
                          b->stats + 2 * m->N, b->stats + 3 * m->N, N, C);
}

/* Attention, res2 = x + attproj(attention(qkv(ln1(x)))), from dres2 in g3: din = dres2 plus the
 * branch's share. */
static void gpt_block_backward_attention(const gpt_block_bwd *b, float *din)
{
    gpt_model *m = b->m;
    const kern_table *k = m->k;
    kern_ctx *kc = m->kc;
    int N = b->N, C = b->C;
    size_t f = sizeof(float);
    k->copy(kc, din, b->g3, b->NC * f);
    const float *atty = gpt_saved_at(b, b->s->atty), *att = gpt_saved_at(b, b->s->att),
                *ln1 = gpt_saved_at(b, b->s->ln1);
    if (!att) {
        k->attention_forward(kc, b->g2, b->g1, b->qkv, b->scratch, m->B, m->T, C, m->cfg.heads);
        atty = b->g2;
        att = b->g1;
    }
    k->zero(kc, b->g4, b->NC * f);
    k->matmul_backward(kc, b->g4, b->dw.attprojw, b->dw.attprojb, b->g3, atty, b->w.attprojw, N, C,
                       C);
    k->zero(kc, b->g2, 3 * b->NC * f);
    k->attention_backward(kc, b->g2, b->g4, b->qkv, att, b->scratch, m->B, m->T, C, m->cfg.heads);
    if (!ln1) {
        k->layernorm_forward(kc, b->g3, b->rs, b->rs + m->N, b->x, b->w.ln1w, b->w.ln1b, N, C);
        ln1 = b->g3;
    }
    k->zero(kc, b->g1, b->NC * f);
    k->matmul_backward(kc, b->g1, b->dw.qkvw, b->dw.qkvb, b->g2, ln1, b->w.qkvw, N, C, 3 * C);
    k->layernorm_backward(kc, din, b->dw.ln1w, b->dw.ln1b, b->g1, b->x, b->w.ln1w, b->stats,
                          b->stats + m->N, N, C);
}

/* Backward of block l: din (= dx) from x, ā (saved, laid out by s) and dout; recomputes into the
 * workspace whatever s omits, with the same kernels on the same inputs, so the bits are equal. */
static void gpt_block_backward(gpt_model *m, int l, const float *x, const void *saved,
                               const gpt_block_saved *s, const float *dout, float *din, void *tmp)
{
    const gpt_block_bwd_tmp *bt = &m->bwd_tmp;
    gpt_block_bwd b = {.m = m,
                       .N = (int)m->N,
                       .C = m->cfg.channels,
                       .NC = m->N * m->cfg.channels,
                       .w = gpt_layer_p(m, l),
                       .dw = gpt_layer_g(m, l),
                       .s = s,
                       .saved = saved,
                       .x = x,
                       .qkv = gpt_at(saved, s->qkv),
                       .res2 = gpt_at(saved, s->res2),
                       .fch = gpt_at(saved, s->fch),
                       .stats = gpt_at(saved, s->stats),
                       .g1 = gpt_at(tmp, bt->g1),
                       .g2 = gpt_at(tmp, bt->g2),
                       .g3 = gpt_at(tmp, bt->g3),
                       .g4 = gpt_at(tmp, bt->g4),
                       .rs = gpt_at(tmp, bt->stats),
                       .scratch = gpt_at(tmp, bt->scratch)};
    gpt_block_backward_mlp(&b, dout);
    gpt_block_backward_attention(&b, din);
}

/* ==== Head ================================================================================= */

/* Reads the losses back and sets m->loss to their mean (summed in order, in double). */
static remat_status gpt_head_record_loss(gpt_model *m, const float *losses)
{
    REMAT_TRY(m->k->status(m->kc));
    if (m->host_memory)
        memcpy(m->losses_host, losses, m->N * sizeof(float));
    else
        REMAT_TRY(remat_device_copy(m->dev, m->losses_host, losses, m->N * sizeof(float),
                                    REMAT_COPY_DEVICE_TO_HOST));
    double sum = 0;
    for (size_t i = 0; i < m->N; i++)
        sum += m->losses_host[i];
    m->loss = sum / (double)m->N;
    return REMAT_OK;
}

/* Forward of the head from x: losses into out. With saved (ā), also the gradient of the mean loss
 * w.r.t. the final LayerNorm's output (saved there) and the head's share of dwte, added once. */
static remat_status gpt_head_forward(gpt_model *m, const float *x, float *out, void *saved,
                                     void *tmp)
{
    const kern_table *k = m->k;
    kern_ctx *kc = m->kc;
    int N = (int)m->N, C = m->cfg.channels, V = m->cfg.vocab, Vp = m->cfg.padded_vocab;
    float *lnf = gpt_at(tmp, m->head_tmp.lnf), *logits = gpt_at(tmp, m->head_tmp.logits);
    float *stats = saved ? gpt_at(saved, m->head_saved.stats) : gpt_at(tmp, m->head_tmp.stats);
    if (saved && m->head_grad_done)
        return remat_fail(REMAT_EINTERNAL,
                          "the head's forward-with-grad ran twice in one step (its weight gradient "
                          "would be added twice)");
    k->layernorm_forward(kc, lnf, stats, stats + m->N, x, m->p[GPT_LNFW], m->p[GPT_LNFB], N, C);
    k->matmul_forward(kc, logits, lnf, m->p[GPT_WTE], NULL, N, C, Vp);
    k->softmax_xent(kc, out, saved ? logits : NULL, logits, m->targets, 1.0f / (float)N, N, V, Vp);
    if (saved) {
        float *dlnf = gpt_at(saved, m->head_saved.dlnf);
        k->zero(kc, dlnf, m->N * C * sizeof(float));
        k->matmul_backward(kc, dlnf, m->g[GPT_WTE], NULL, logits, lnf, m->p[GPT_WTE], N, C, Vp);
        m->head_grad_done = 1;
    }
    return gpt_head_record_loss(m, out);
}

static void gpt_head_backward(gpt_model *m, const float *x, const void *saved, float *din)
{
    int N = (int)m->N, C = m->cfg.channels;
    const float *stats = gpt_at(saved, m->head_saved.stats);
    m->k->zero(m->kc, din, m->N * C * sizeof(float));
    m->k->layernorm_backward(m->kc, din, m->g[GPT_LNFW], m->g[GPT_LNFB],
                             gpt_at(saved, m->head_saved.dlnf), x, m->p[GPT_LNFW], stats,
                             stats + m->N, N, C);
}

/* ==== Callbacks ============================================================================ */

static const gpt_block_saved *gpt_saved_of(const gpt_model *m, int option)
{
    return &m->saved[option < 0 ? 0 : 1 + option];
}

static remat_status gpt_check_option(const gpt_model *m, int stage, int option)
{
    int is_block = stage >= 1 && stage <= m->cfg.layers;
    if (option < -2 || option >= (is_block ? GPT_N_BLOCK_OPTIONS : 0))
        return remat_fail(REMAT_EINTERNAL, "stage %d has no save option %d", stage, option);
    return REMAT_OK;
}

static remat_status gpt_cb_forward(void *ctx, int stage, int option, const void *in, void *out,
                                   void *tmp)
{
    gpt_model *m = ctx;
    REMAT_TRY(gpt_check_option(m, stage, option));
    int L = m->cfg.layers;
    void *saved = option == -2 ? NULL : out;
    if (stage == 0)
        gpt_embed_forward(m, in, out);
    else if (stage <= L)
        gpt_block_forward(m, stage - 1, in, out, saved, gpt_saved_of(m, option), tmp);
    else if (stage == L + 1)
        return gpt_head_forward(m, in, out, saved, tmp);
    else
        return remat_fail(REMAT_EINTERNAL, "the model has no stage %d", stage);
    return m->k->status(m->kc);
}

static remat_status gpt_cb_backward(void *ctx, int stage, int option, const void *in,
                                    const void *saved, const void *dout, void *din, void *tmp)
{
    gpt_model *m = ctx;
    REMAT_TRY(gpt_check_option(m, stage, option));
    int L = m->cfg.layers;
    if (stage == 0) {
        gpt_embed_backward(m, in, dout);
        m->k->zero(m->kc, din, m->input_bytes); /* tokens have no gradient */
    } else if (stage <= L)
        gpt_block_backward(m, stage - 1, in, saved, gpt_saved_of(m, option), dout, din, tmp);
    else if (stage == L + 1)
        gpt_head_backward(m, in, saved, din);
    else
        return remat_fail(REMAT_EINTERNAL, "the model has no stage %d", stage);
    return m->k->status(m->kc);
}

static remat_status gpt_cb_input(void *ctx, void *a0)
{
    gpt_model *m = ctx;
    size_t bytes = m->N * sizeof(int);
    if (m->host_memory) {
        memcpy(a0, m->step_inputs, bytes);
        return REMAT_OK;
    }
    /* The copy is synchronous and not on the kernels' stream: let their queued work (which may
     * still use this block's previous life) finish first. */
    REMAT_TRY(m->k->status(m->kc));
    return remat_device_copy(m->dev, a0, m->step_inputs, bytes, REMAT_COPY_HOST_TO_DEVICE);
}

/* The loss stage ignores its output gradient (it seeds 1/N itself), so d_L is simply zeroed. */
static remat_status gpt_cb_seed(void *ctx, void *d_last)
{
    gpt_model *m = ctx;
    m->k->zero(m->kc, d_last, m->loss_bytes);
    return REMAT_OK;
}

/* zero is NULL: every backward overwrites all of its din. */
const remat_callbacks gpt_callbacks = {
    .forward = gpt_cb_forward,
    .backward = gpt_cb_backward,
    .input = gpt_cb_input,
    .seed = gpt_cb_seed,
    .save_rng = NULL,
    .restore_rng = NULL,
    .zero = NULL,
};
