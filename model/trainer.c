/* model/trainer.c: the model on a device: its buffers in the pool, its chain, one training step. */
#include "core/core.h"
#include "model/stages.h"

#include <stdlib.h>
#include <string.h>

gpt_adamw gpt_adamw_defaults(void)
{
    return (gpt_adamw){
        .lr = 3e-4f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.0f};
}

/* ==== Precision ============================================================================ */

gpt_precision gpt_precision_default(void)
{
    return (gpt_precision){.dtype = GPT_FP32, .master_weights = 1, .seed = 0};
}

const char *gpt_dtype_name(gpt_dtype d)
{
    return d == GPT_BF16 ? "bf16" : "fp32";
}

remat_status gpt_dtype_parse(const char *s, gpt_dtype *out)
{
    if (s && strcmp(s, "fp32") == 0)
        *out = GPT_FP32;
    else if (s && strcmp(s, "bf16") == 0)
        *out = GPT_BF16;
    else
        return remat_fail(REMAT_EINVAL, "dtype '%s': the trainer runs fp32 or bf16",
                          s ? s : "(null)");
    return REMAT_OK;
}

/* Sets m's precision, element size and bf16 kernels (after kern_open). */
static remat_status gpt_set_precision(gpt_model *m, const gpt_precision *prec)
{
    m->prec = prec ? *prec : gpt_precision_default();
    m->elem = sizeof(float);
    m->kb = NULL;
    if (m->prec.dtype != GPT_BF16)
        return REMAT_OK;
    if (!m->k->bf16)
        return remat_fail(REMAT_EUNSUPPORTED,
                          "bf16 training: the %s kernels have no bf16 version in this build",
                          m->k->name);
    m->kb = m->k->bf16;
    m->elem = sizeof(kern_bf16);
    return REMAT_OK;
}

/* Sets m's data-parallel shape from par (NULL: one process): rank, ranks, ZeRO stage, padded
 * and shard sizes, the rows its loss is the mean over. After gpt_layout_params. */
static remat_status gpt_set_parallel(gpt_model *m, const gpt_parallel *par)
{
    int accum = par && par->accum > 0 ? par->accum : 1;
    m->comm = par ? par->comm : NULL;
    m->zero = par ? par->zero : 0;
    m->ranks = m->comm ? remat_comm_size(m->comm) : 1;
    m->rank = m->comm ? remat_comm_rank(m->comm) : 0;
    if (m->zero < 0 || m->zero > 3)
        return remat_fail(REMAT_EINVAL, "ZeRO stage %d: the stages are 0, 1, 2 and 3", m->zero);
    if (accum > 1 << 20)
        return remat_fail(REMAT_EINVAL, "%d micro-steps per update: at most %d", accum, 1 << 20);
    gpt_units_layout(m);
    m->loss_rows = m->N * m->ranks * accum;
    return REMAT_OK;
}

/* Pool bytes of the persistent buffers gpt_model_buffers allocates, each rounded to 512. */
static uint64_t gpt_persistent_of(const gpt_model *m)
{
    uint64_t w = (m->param_elems * m->elem + 511) / 512 * 512;
    uint64_t g = (m->grad_elems * m->elem + 511) / 512 * 512;
    uint64_t f = (m->states * sizeof(float) + 511) / 512 * 512;
    uint64_t states = m->kb && m->prec.master_weights ? 3 : 2;
    size_t held, work = gpt_units_work_elems(m, &held);
    uint64_t units = work ? (held * m->elem + 511) / 512 * 512 + (work * m->elem + 511) / 512 * 512
                          : 0;
    return w + g + states * f + units + (m->N * sizeof(int) + 511) / 512 * 512;
}

/* ==== Creation ============================================================================= */

/* Persistent state lives in segments of its own at exact sizes: it never interleaves with the
 * step's activations, and costs no segment rounding. */
static remat_status gpt_pool_alloc(gpt_model *m, size_t bytes, const char *tag, const char *what,
                                   void **out)
{
    *out = remat_alloc_dedicated(m->pool, bytes, m->stream, tag);
    if (!*out)
        return remat_fail_context(REMAT_ENOMEM, "cannot allocate the model's %s", what);
    m->persistent += (bytes + 511) / 512 * 512;
    return REMAT_OK;
}

static remat_status gpt_model_buffers(gpt_model *m)
{
    size_t bytes = m->param_elems * m->elem, gbytes = m->grad_elems * m->elem,
           fbytes = m->states * sizeof(float);
    REMAT_TRY(gpt_pool_alloc(m, bytes, "params", "parameters", &m->params));
    REMAT_TRY(gpt_pool_alloc(m, gbytes, "grads", "gradients", &m->grads));
    if (m->kb && m->prec.master_weights) {
        REMAT_TRY(gpt_pool_alloc(m, fbytes, "optim", "fp32 master weights", (void **)&m->master));
        m->k->zero(m->kc, m->master, fbytes);
    }
    REMAT_TRY(gpt_pool_alloc(m, fbytes, "optim", "AdamW first moments", (void **)&m->m));
    REMAT_TRY(gpt_pool_alloc(m, fbytes, "optim", "AdamW second moments", (void **)&m->v));
    REMAT_TRY(gpt_pool_alloc(m, m->N * sizeof(int), "workspace", "targets", (void **)&m->targets));
    size_t held, work = gpt_units_work_elems(m, &held);
    if (work) {
        REMAT_TRY(gpt_pool_alloc(m, held * m->elem, GPT_UNITS_TAG, "embedding gradients",
                                 &m->grad0));
        REMAT_TRY(gpt_pool_alloc(m, work * m->elem, GPT_UNITS_TAG, "unit buffer", &m->work));
    }
    m->losses_host = malloc(m->N * sizeof(float));
    if (!m->losses_host)
        return remat_fail(REMAT_ENOMEM, "cannot allocate %zu host losses", m->N);
    for (int i = 0; i < GPT_N_PARAMS && m->zero < 2; i++) { /* ZeRO-2/3 go by units */
        m->p[i] = (char *)m->params + m->lay.offset[i] * m->elem;
        m->g[i] = (char *)m->grads + m->lay.offset[i] * m->elem;
    }
    m->k->zero(m->kc, m->params, bytes);
    m->k->zero(m->kc, m->grads, gbytes);
    m->k->zero(m->kc, m->m, fbytes);
    m->k->zero(m->kc, m->v, fbytes);
    return m->k->status(m->kc);
}

remat_status gpt_model_create(remat_device *dev, remat_pool *pool, const gpt_config *cfg, int B,
                              int T, gpt_model **out)
{
    return gpt_model_create_precision(dev, pool, cfg, B, T, NULL, out);
}

remat_status gpt_model_create_precision(remat_device *dev, remat_pool *pool, const gpt_config *cfg,
                                        int B, int T, const gpt_precision *prec, gpt_model **out)
{
    return gpt_model_create_parallel(dev, pool, cfg, B, T, prec, NULL, out);
}

remat_status gpt_model_create_parallel(remat_device *dev, remat_pool *pool, const gpt_config *cfg,
                                       int B, int T, const gpt_precision *prec,
                                       const gpt_parallel *par, gpt_model **out)
{
    if (!dev || !pool || !cfg || !out)
        return remat_fail(REMAT_EINVAL, "gpt_model_create: arguments must not be NULL");
    gpt_config c = *cfg;
    REMAT_TRY(gpt_config_check(&c));
    if (B < 1 || T < 1 || T > c.max_seq)
        return remat_fail(
            REMAT_EINVAL,
            "batch %d x %d: need B >= 1 and 1 <= T <= %d (the model's sequence length)", B, T,
            c.max_seq);
    gpt_model *m = calloc(1, sizeof *m);
    if (!m)
        return remat_fail(REMAT_ENOMEM, "cannot allocate the model");
    m->dev = dev;
    m->pool = pool;
    m->cfg = c;
    m->B = B;
    m->T = T;
    m->N = (size_t)B * T;
    gpt_layout_params(&c, &m->lay);
    remat_device_info info;
    remat_status s = remat_device_info_get(dev, &info);
    if (s == REMAT_OK)
        s = kern_open(dev, &m->k, &m->kc);
    if (s == REMAT_OK)
        s = gpt_set_precision(m, prec);
    if (s == REMAT_OK)
        s = gpt_set_parallel(m, par);
    if (s == REMAT_OK) {
        m->host_memory = info.kind == REMAT_DEVICE_HOST;
        m->stream = kern_stream(m->kc);
        gpt_stages_layout(m);
        s = gpt_model_buffers(m);
    }
    if (s != REMAT_OK) {
        gpt_model_destroy(m);
        return s;
    }
    *out = m;
    return REMAT_OK;
}

void gpt_model_destroy(gpt_model *m)
{
    if (!m)
        return;
    void *bufs[] = {m->params, m->grads, m->master, m->m, m->v, m->targets, m->grad0, m->work};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i])
            remat_free(m->pool, bufs[i]);
    free(m->losses_host);
    if (m->kc)
        kern_close(m->kc);
    free(m);
}

const gpt_config *gpt_model_config(const gpt_model *m)
{
    return &m->cfg;
}

const gpt_param_layout *gpt_model_layout(const gpt_model *m)
{
    return &m->lay;
}

uint64_t gpt_model_gathers(const gpt_model *m)
{
    return m ? m->gathers : 0;
}

uint64_t gpt_model_persistent_bytes(const gpt_model *m)
{
    return m->persistent;
}

uint64_t gpt_model_syncs(const gpt_model *m)
{
    return m ? kern_syncs(m->kc) : 0;
}

const gpt_precision *gpt_model_precision(const gpt_model *m)
{
    return &m->prec;
}

/* ==== Memory estimate ====================================================================== */

/* The largest single buffer of a B x T model in bytes, in double (no wrap-around): a parameter
 * tensor set, an attention matrix [B,NH,T,T], or the logits [B*T,Vp]. */
static double gpt_largest_buffer(const gpt_config *c, int B, int T)
{
    gpt_param_layout lay;
    gpt_layout_params(c, &lay);
    double att = (double)B * c->heads * (double)T * T * 4,
           logits = (double)B * T * c->padded_vocab * 4;
    double params = (double)lay.total * 4, big = att > logits ? att : logits;
    return big > params ? big : params;
}

remat_status gpt_model_estimate(remat_device *dev, const gpt_config *cfg, int B, int T,
                                uint64_t *persistent, remat_chain **chain)
{
    return gpt_model_estimate_precision(dev, cfg, B, T, NULL, persistent, chain);
}

remat_status gpt_model_estimate_precision(remat_device *dev, const gpt_config *cfg, int B, int T,
                                          const gpt_precision *prec, uint64_t *persistent,
                                          remat_chain **chain)
{
    return gpt_model_estimate_parallel(dev, cfg, B, T, prec, NULL, persistent, chain);
}

remat_status gpt_model_estimate_parallel(remat_device *dev, const gpt_config *cfg, int B, int T,
                                         const gpt_precision *prec, const gpt_parallel *par,
                                         uint64_t *persistent, remat_chain **chain)
{
    if (!dev || !cfg || !persistent || !chain || B < 1 || T < 1)
        return remat_fail(REMAT_EINVAL, "gpt_model_estimate: bad arguments");
    gpt_config c = *cfg;
    REMAT_TRY(gpt_config_check(&c));
    double big = gpt_largest_buffer(&c, B, T);
    if (big > (double)(1ull << 47)) {
        char b[32];
        return remat_fail(REMAT_ENOMEM,
                          "batch %d x %d needs a single buffer of %s (attention, logits or "
                          "parameters): more than any machine has",
                          B, T, remat_format_bytes((uint64_t)big, b, sizeof b));
    }
    gpt_model *m = calloc(1, sizeof *m);
    if (!m)
        return remat_fail(REMAT_ENOMEM, "cannot allocate the model's estimate");
    m->cfg = c;
    m->B = B;
    m->T = T;
    m->N = (size_t)B * T;
    gpt_layout_params(&c, &m->lay);
    remat_status s = kern_open(dev, &m->k, &m->kc);
    if (s == REMAT_OK) {
        s = gpt_set_precision(m, prec);
        if (s == REMAT_OK)
            s = gpt_set_parallel(m, par);
        if (s == REMAT_OK) {
            gpt_stages_layout(m);
            s = gpt_model_chain(m, chain);
        }
        kern_close(m->kc);
    }
    /* As gpt_model_buffers allocates them: parameters and gradients, two or three float32
     * states and the targets, each rounded to the pool's 512 bytes. */
    *persistent = gpt_persistent_of(m);
    free(m);
    return s;
}

/* ==== Parameters =========================================================================== */

static remat_status gpt_copy(gpt_model *m, void *dst, const void *src, size_t bytes,
                             remat_copy_kind to_device)
{
    if (to_device == REMAT_COPY_HOST_TO_DEVICE) { /* queued: no wait for the work before it */
        m->k->upload(m->kc, dst, src, bytes);
        return m->k->check(m->kc);
    }
    REMAT_TRY(m->k->status(m->kc));
    if (m->host_memory) {
        memcpy(dst, src, bytes);
        return REMAT_OK;
    }
    return remat_device_copy(m->dev, dst, src, bytes, to_device);
}

float *gpt_model_host_params(gpt_model *m)
{
    return m && m->host_memory && !m->kb && m->zero < 2 ? m->params : NULL;
}

/* n host floats into bf16 memory of the device at dst, rounded to nearest even as to_bf16 does:
 * on the host in place, elsewhere through a host bf16 copy (no float32 staging on the device). */
static remat_status gpt_upload_bf16(gpt_model *m, kern_bf16 *dst, const float *host, size_t n)
{
    if (m->host_memory) {
        m->kb->to_bf16(m->kc, dst, host, n);
        return m->k->status(m->kc);
    }
    kern_bf16 *stage = malloc(n * sizeof *stage);
    if (!stage)
        return remat_fail(REMAT_ENOMEM, "cannot stage %zu bf16 parameters on the host", n);
    for (size_t i = 0; i < n; i++)
        stage[i] = kern_f32_to_bf16(host[i]);
    remat_status s = gpt_copy(m, dst, stage, n * sizeof *stage, REMAT_COPY_HOST_TO_DEVICE);
    if (s == REMAT_OK) /* the upload reads stage */
        s = m->k->status(m->kc);
    free(stage);
    return s;
}

/* n bf16 values of the device at src into host floats (exact). */
static remat_status gpt_download_bf16(gpt_model *m, float *host, const kern_bf16 *src, size_t n)
{
    if (m->host_memory) {
        m->kb->to_f32(m->kc, host, src, n);
        return m->k->status(m->kc);
    }
    kern_bf16 *stage = malloc(n * sizeof *stage);
    if (!stage)
        return remat_fail(REMAT_ENOMEM, "cannot stage %zu bf16 values on the host", n);
    remat_status s = gpt_copy(m, stage, src, n * sizeof *stage, REMAT_COPY_DEVICE_TO_HOST);
    for (size_t i = 0; s == REMAT_OK && i < n; i++)
        host[i] = kern_bf16_to_f32(stage[i]);
    free(stage);
    return s;
}

/* Every rank's `count` floats at `mine` (this device's memory) gathered rank after rank into
 * host. On a device that is not host memory the collective lands in a temporary pool buffer
 * first: the transport (NCCL) reads and writes device memory only. */
static remat_status gpt_gather_to_host(gpt_model *m, const float *mine, float *host, size_t count)
{
    if (m->host_memory)
        return remat_comm_allgather(m->comm, mine, host, count, REMAT_COMM_F32);
    size_t bytes = count * (size_t)m->ranks * sizeof(float);
    void *all = remat_alloc(m->pool, bytes, m->stream);
    if (!all)
        return remat_fail(REMAT_ENOMEM, "cannot gather %zu master weights on the device: %s",
                          count * (size_t)m->ranks, remat_last_error());
    remat_status s = remat_comm_allgather(m->comm, mine, all, count, REMAT_COMM_F32);
    if (s == REMAT_OK)
        s = gpt_copy(m, host, all, bytes, REMAT_COPY_DEVICE_TO_HOST);
    remat_free(m->pool, all);
    return s;
}

/* ZeRO-2/3: what this rank stores of host's parameters, put in the units' layout. */
static remat_status gpt_set_params_units(gpt_model *m, const float *host)
{
    size_t n = m->param_elems > m->states ? m->param_elems : m->states;
    float *stage = malloc(n * sizeof(float));
    if (!stage)
        return remat_fail(REMAT_ENOMEM, "cannot stage %zu parameters on the host", n);
    gpt_units_pack(m, host, stage, m->zero >= 3);
    remat_status s = REMAT_OK;
    if (!m->kb) {
        s = gpt_copy(m, m->params, stage, m->param_elems * sizeof(float),
                     REMAT_COPY_HOST_TO_DEVICE);
        if (s == REMAT_OK) /* the upload reads stage */
            s = m->k->status(m->kc);
    } else if ((s = gpt_upload_bf16(m, m->params, stage, m->param_elems)) == REMAT_OK &&
               m->master) {
        gpt_units_pack(m, host, stage, 1);
        s = gpt_copy(m, m->master, stage, m->states * sizeof(float), REMAT_COPY_HOST_TO_DEVICE);
        if (s == REMAT_OK)
            s = m->k->status(m->kc);
    }
    free(stage);
    return s;
}

/* ZeRO-2/3: every unit's parameters (the master weights where there are) gathered into padded,
 * the units' layout. Every rank calls it. */
static remat_status gpt_gather_units(gpt_model *m, float *padded)
{
    remat_status s = REMAT_OK;
    if (m->master) { /* bf16: each unit's master chunks over the ranks */
        for (int u = 0; u < gpt_unit_count(m) && s == REMAT_OK; u++) {
            size_t c = gpt_unit_chunk(m, u);
            float *mine = m->master + gpt_unit_shard_offset(m, u);
            float *all = padded + gpt_unit_full_offset(m, u);
            if (gpt_collective(m))
                s = gpt_gather_to_host(m, mine, all, c);
            else
                s = gpt_copy(m, all, mine, c * sizeof(float), REMAT_COPY_DEVICE_TO_HOST);
        }
        return s;
    }
    uint64_t gathers = m->gathers; /* not the step's */
    for (int u = 0; u < gpt_unit_count(m) && s == REMAT_OK; u++) {
        void *buf;
        size_t n = (size_t)m->ranks * gpt_unit_chunk(m, u);
        float *all = padded + gpt_unit_full_offset(m, u);
        if ((s = gpt_unit_params_get(m, u, &buf)) != REMAT_OK)
            break;
        if (!m->kb)
            s = gpt_copy(m, all, buf, n * sizeof(float), REMAT_COPY_DEVICE_TO_HOST);
        else
            s = gpt_download_bf16(m, all, buf, n);
    }
    m->gathers = gathers;
    return s;
}

static remat_status gpt_get_params_units(gpt_model *m, float *host)
{
    float *padded = malloc(m->padded * sizeof(float));
    if (!padded)
        return remat_fail(REMAT_ENOMEM, "cannot gather %zu parameters on the host", m->padded);
    remat_status s = gpt_gather_units(m, padded);
    if (s == REMAT_OK)
        gpt_units_unpack(m, padded, host);
    free(padded);
    return s;
}

remat_status gpt_model_set_params(gpt_model *m, const float *host)
{
    size_t n = m->lay.total;
    if (m->zero >= 2)
        return gpt_set_params_units(m, host);
    if (!m->kb)
        return gpt_copy(m, m->params, host, n * sizeof(float), REMAT_COPY_HOST_TO_DEVICE);
    if (m->master) { /* this rank's shard of them under ZeRO-1, the padding zero */
        size_t first = m->states < n ? (size_t)m->rank * m->shard : 0;
        size_t have = first < n ? n - first : 0;
        have = have < m->states ? have : m->states;
        m->k->zero(m->kc, m->master, m->states * sizeof(float));
        REMAT_TRY(gpt_copy(m, m->master, host + first, have * sizeof(float),
                           REMAT_COPY_HOST_TO_DEVICE));
    }
    return gpt_upload_bf16(m, m->params, host, n);
}

remat_status gpt_model_get_params(gpt_model *m, float *host)
{
    size_t n = m->lay.total;
    if (m->zero >= 2)
        return gpt_get_params_units(m, host);
    if (!m->kb)
        return gpt_copy(m, host, m->params, n * sizeof(float), REMAT_COPY_DEVICE_TO_HOST);
    if (m->master && m->states == n)
        return gpt_copy(m, host, m->master, n * sizeof(float), REMAT_COPY_DEVICE_TO_HOST);
    if (!m->master)
        return gpt_download_bf16(m, host, m->params, n);
    /* ZeRO-1: every rank's master shard, gathered */
    float *all = malloc(m->padded * sizeof(float));
    if (!all)
        return remat_fail(REMAT_ENOMEM, "cannot gather the master weights on the host");
    remat_status s = gpt_gather_to_host(m, m->master, all, m->shard);
    if (s == REMAT_OK)
        memcpy(host, all, n * sizeof(float));
    free(all);
    return s;
}

remat_status gpt_model_get_grads(gpt_model *m, float *host)
{
    size_t n = m->lay.total;
    if (m->zero >= 2)
        return remat_fail(REMAT_EUNSUPPORTED,
                          "the gradients: under ZeRO-%d each rank holds only its reduced shard",
                          m->zero);
    if (!m->kb)
        return gpt_copy(m, host, m->grads, n * sizeof(float), REMAT_COPY_DEVICE_TO_HOST);
    return gpt_download_bf16(m, host, m->grads, n);
}

/* ==== The chain ============================================================================ */

/* Analytic stage costs in GFLOP (multiply-adds count 2): what the planner uses before profiling. */
static double gpt_gflop_matmuls(const gpt_model *m)
{
    double N = (double)m->N, C = m->cfg.channels;
    return 2.0 * N * 12.0 * C * C / 1e9;
}

static double gpt_gflop_attention(const gpt_model *m)
{
    /* q.k and att.v over the causal half of T x T, per head. */
    return 2.0 * (double)m->B * m->T * (double)m->T * m->cfg.channels / 1e9;
}

static double gpt_gflop_elementwise(const gpt_model *m, double per_row_channel)
{
    return per_row_channel * (double)m->N * m->cfg.channels / 1e9;
}

static void gpt_stage_set(remat_stage *st, const char *name, double fwd, double bwd,
                          uint64_t out_bytes, uint64_t saved_bytes, uint64_t ftmp, uint64_t btmp)
{
    snprintf(st->name, sizeof st->name, "%s", name);
    st->fwd = fwd;
    st->bwd = bwd;
    st->out_bytes = out_bytes;
    st->saved_bytes = saved_bytes;
    st->fwd_tmp_bytes = ftmp;
    st->bwd_tmp_bytes = btmp;
}

double gpt_block_forward_gflop(const gpt_model *m)
{
    return gpt_gflop_matmuls(m) + gpt_gflop_attention(m) + gpt_gflop_elementwise(m, 60);
}

/* Extra backward GFLOP of each block option: what it recomputes. */
double gpt_option_extra_gflop(const gpt_model *m, int opt)
{
    double gelu = gpt_gflop_elementwise(m, 4 * 8), ln = gpt_gflop_elementwise(m, 2 * 8);
    double attn = gpt_gflop_attention(m) +
                  gpt_gflop_elementwise(m, (double)m->cfg.heads * m->T / m->cfg.channels * 5);
    switch (opt) {
    case GPT_OPT_RECOMPUTE_GELU: return gelu;
    case GPT_OPT_RECOMPUTE_GELU_LN: return gelu + ln;
    case GPT_OPT_RECOMPUTE_ATTN: return attn;
    default: return gelu + ln + attn;
    }
}

remat_status gpt_model_chain(const gpt_model *m, remat_chain **out)
{
    if (!m || !out)
        return remat_fail(REMAT_EINVAL, "gpt_model_chain: arguments must not be NULL");
    int L = m->cfg.layers;
    remat_chain *ch = NULL;
    REMAT_TRY(remat_chain_new(L + 2, &ch));
    snprintf(ch->name, sizeof ch->name, "gpt-L%d-C%d-H%d-V%d-b%d-t%d", L, m->cfg.channels,
             m->cfg.heads, m->cfg.vocab, m->B, m->T);
    ch->input_bytes = m->input_bytes;
    double embed = gpt_gflop_elementwise(m, 2);
    gpt_stage_set(&ch->stages[0], "embed", embed, 2 * embed, m->act_bytes, m->act_bytes, 0, 0);
    double blk = gpt_block_forward_gflop(m);
    for (int l = 0; l < L; l++) {
        remat_stage *st = &ch->stages[1 + l];
        char name[32];
        snprintf(name, sizeof name, "block%d", l);
        gpt_stage_set(st, name, blk, 2 * blk, m->act_bytes, m->saved[0].bytes, m->fwd_tmp.bytes,
                      m->bwd_tmp.bytes);
        st->options = calloc(GPT_N_BLOCK_OPTIONS, sizeof *st->options);
        if (!st->options) {
            remat_chain_free(ch);
            return remat_fail(REMAT_ENOMEM, "cannot allocate the chain's options");
        }
        st->n_options = GPT_N_BLOCK_OPTIONS;
        for (int o = 0; o < GPT_N_BLOCK_OPTIONS; o++) {
            snprintf(st->options[o].name, sizeof st->options[o].name, "%s",
                     gpt_block_option_names[o]);
            st->options[o].saved_bytes = m->saved[1 + o].bytes;
            st->options[o].bwd = st->bwd + gpt_option_extra_gflop(m, o);
        }
    }
    double head = 2.0 * (double)m->N * m->cfg.channels * m->cfg.padded_vocab / 1e9;
    gpt_stage_set(&ch->stages[L + 1], "head", 3 * head, gpt_gflop_elementwise(m, 10), m->loss_bytes,
                  m->head_saved.bytes, m->head_tmp.bytes, 0);
    *out = ch;
    return REMAT_OK;
}

/* ==== The step ============================================================================= */

static remat_status gpt_model_run(gpt_model *m, const remat_schedule *sched,
                                  const remat_chain *chain, const int *inputs, const int *targets,
                                  float *loss, int zero_grads)
{
    if (!m || !sched || !chain || !inputs || !targets || !loss)
        return remat_fail(REMAT_EINVAL, "gpt_model_forward_backward: arguments must not be NULL");
    if (chain->n_stages != m->cfg.layers + 2 || chain->input_bytes != m->input_bytes)
        return remat_fail(
            REMAT_EINVAL,
            "the chain '%s' does not describe this model (%d stages, input %llu bytes)",
            chain->name, chain->n_stages, (unsigned long long)chain->input_bytes);
    for (int i = 0; i < m->cfg.layers; i++)
        if (chain->stages[1 + i].n_options != GPT_N_BLOCK_OPTIONS)
            return remat_fail(REMAT_EINVAL,
                              "the chain's stage %d does not list the %d block options", 1 + i,
                              GPT_N_BLOCK_OPTIONS);
    for (size_t i = 0; i < m->N; i++)
        if (inputs[i] < 0 || inputs[i] >= m->cfg.vocab || targets[i] < 0 ||
            targets[i] >= m->cfg.vocab)
            return remat_fail(REMAT_EINVAL,
                              "token %d at position %zu is outside the vocabulary [0, %d)",
                              inputs[i] < 0 || inputs[i] >= m->cfg.vocab ? inputs[i] : targets[i],
                              i, m->cfg.vocab);
    REMAT_TRY(gpt_copy(m, m->targets, targets, m->N * sizeof(int), REMAT_COPY_HOST_TO_DEVICE));
    if (zero_grads) {
        m->k->zero(m->kc, m->grads, m->grad_elems * m->elem);
        m->gathers = 0;
    }
    m->step_inputs = inputs;
    m->head_grad_done = 0;
    m->loss = 0;
    remat_callbacks prof = gpt_memprof_callbacks();
    remat_status s = m->memprof ? remat_run(sched, chain, m->pool, m->stream, &prof, m->memprof)
                                : remat_run(sched, chain, m->pool, m->stream, &gpt_callbacks, m);
    gpt_unit_drop(m); /* held only by a step that failed half-way */
    REMAT_TRY(s);
    REMAT_TRY(m->k->status(m->kc));
    if (!m->head_grad_done)
        return remat_fail(REMAT_EINTERNAL, "the schedule never ran the head's forward-with-grad");
    *loss = (float)m->loss;
    return REMAT_OK;
}

remat_status gpt_model_forward_backward(gpt_model *m, const remat_schedule *sched,
                                        const remat_chain *chain, const int *inputs,
                                        const int *targets, float *loss)
{
    return gpt_model_run(m, sched, chain, inputs, targets, loss, 1);
}

remat_status gpt_model_accumulate(gpt_model *m, const remat_schedule *sched,
                                  const remat_chain *chain, const int *inputs, const int *targets,
                                  float *loss)
{
    return gpt_model_run(m, sched, chain, inputs, targets, loss, 0);
}

remat_status gpt_model_zero_grads(gpt_model *m)
{
    if (!m)
        return remat_fail(REMAT_EINVAL, "gpt_model_zero_grads: model must not be NULL");
    m->k->zero(m->kc, m->grads, m->grad_elems * m->elem);
    m->gathers = 0;
    return m->k->check(m->kc);
}

/* Elements a bucket of the gradient all-reduce holds: 4 Mi (16 MiB of fp32), so MPI's
 * temporary buffers stay small whatever the model. */
enum { GPT_BUCKET_ELEMS = 4 << 20 };

remat_status gpt_model_reduce_grads(gpt_model *m)
{
    if (!m)
        return remat_fail(REMAT_EINVAL, "gpt_model_reduce_grads: model must not be NULL");
    if (!gpt_collective(m) || m->zero >= 2) /* ZeRO-2/3 reduce each unit in its backward */
        return REMAT_OK;
    REMAT_TRY(m->k->status(m->kc)); /* the collectives read the gradients */
    remat_comm_dtype dt = m->kb ? REMAT_COMM_BF16 : REMAT_COMM_F32;
    if (m->zero >= 1) /* in place: the sums of this rank's shard land at its own offset */
        return remat_comm_reduce_scatter(m->comm, m->grads,
                                         (char *)m->grads + (size_t)m->rank * m->shard * m->elem,
                                         m->shard, dt);
    for (size_t at = 0; at < m->lay.total; at += GPT_BUCKET_ELEMS) {
        size_t n = m->lay.total - at < GPT_BUCKET_ELEMS ? m->lay.total - at : GPT_BUCKET_ELEMS;
        void *b = (char *)m->grads + at * m->elem;
        REMAT_TRY(remat_comm_allreduce(m->comm, b, b, n, dt));
    }
    return REMAT_OK;
}

/* AdamW on n elements: parameters p, gradients g, and the float32 states from element `at` of
 * m, v (and master); `first` (the elements' place in the model) picks bf16's rounding stream. */
static void gpt_adamw_span(gpt_model *m, const gpt_adamw *hp, int t, void *p, const void *g,
                           size_t at, size_t n, size_t first)
{
    /* step t's rounding stream: a function of the run's seed, t and the span */
    uint64_t seed = m->prec.seed ^ ((uint64_t)t * 0xd1b54a32d192ed03ull) ^
                    ((uint64_t)first * 0x9e3779b97f4a7c15ull);
    if (!m->kb)
        m->k->adamw(m->kc, p, g, m->m + at, m->v + at, n, hp->lr, hp->beta1, hp->beta2, hp->eps,
                    hp->weight_decay, t);
    else if (m->master)
        m->kb->adamw_master(m->kc, p, m->master + at, g, m->m + at, m->v + at, n, hp->lr,
                            hp->beta1, hp->beta2, hp->eps, hp->weight_decay, t);
    else
        m->kb->adamw_sr(m->kc, p, g, m->m + at, m->v + at, n, hp->lr, hp->beta1, hp->beta2,
                        hp->eps, hp->weight_decay, t, seed);
}

/* ZeRO-2: each unit's chunk of the full parameters is updated, then the unit gathered. */
static remat_status gpt_update_units(gpt_model *m, const gpt_adamw *hp, int t)
{
    for (int u = 0; u < gpt_unit_count(m); u++) {
        size_t c = gpt_unit_chunk(m, u), at = gpt_unit_shard_offset(m, u);
        size_t first = gpt_unit_full_offset(m, u) + (size_t)m->rank * c;
        void *p = (char *)m->params + first * m->elem;
        gpt_adamw_span(m, hp, t, p, (const char *)m->grads + at * m->elem, at, c, first);
        if (gpt_collective(m)) {
            REMAT_TRY(m->k->status(m->kc));
            REMAT_TRY(remat_comm_allgather(m->comm, p,
                                           (char *)m->params + gpt_unit_full_offset(m, u) * m->elem,
                                           c, m->kb ? REMAT_COMM_BF16 : REMAT_COMM_F32));
        }
    }
    return m->k->check(m->kc);
}

remat_status gpt_model_update(gpt_model *m, const gpt_adamw *hp, int t)
{
    if (!m || !hp || t < 1)
        return remat_fail(REMAT_EINVAL, "gpt_model_update: bad arguments (step %d)", t);
    if (m->zero == 2)
        return gpt_update_units(m, hp, t);
    /* ZeRO-1 updates this rank's shard (its padding has zero gradients and stays zero), then
     * gathers every rank's updated shard; ZeRO-3 its shard of every unit, which the stages
     * gather when they need it; otherwise every element, as every rank does alike. */
    size_t first = m->zero >= 1 ? (size_t)m->rank * m->shard : 0;
    void *p = (char *)m->params + (m->zero >= 3 ? 0 : first) * m->elem;
    const void *g = (const char *)m->grads + (m->zero >= 2 ? 0 : first) * m->elem;
    gpt_adamw_span(m, hp, t, p, g, 0, m->states, first);
    if (m->zero != 1 || !gpt_collective(m)) /* the next step's first read waits for it */
        return m->k->check(m->kc);
    REMAT_TRY(m->k->status(m->kc));
    return remat_comm_allgather(m->comm, p, m->params, m->shard,
                                m->kb ? REMAT_COMM_BF16 : REMAT_COMM_F32);
}
