/* model/rig.c: the training rig (model/rig.h). */
#include "model/rig.h"
#include "core/core.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

remat_status gpt_rig_open_device(gpt_rig *r, const gpt_rig_spec *sp)
{
    memset(r, 0, sizeof *r);
    if (!sp || sp->B < 1 || sp->T < 1)
        return remat_fail(REMAT_EINVAL, "gpt_rig_open: no spec or a batch below 1 x 1");
    gpt_config cfg = sp->cfg;
    r->failed = "bad model dimensions";
    REMAT_TRY(gpt_config_check(&cfg));
    r->failed = "cannot open the device";
    REMAT_TRY(remat_device_open(sp->device ? sp->device : "host", &r->dev));
    const gpt_parallel *par = sp->par;
    r->failed = "cannot communicate between the ranks' devices";
    if (par && par->comm && (remat_comm_size(par->comm) > 1 || par->zero > 0 || sp->comm_alone))
        REMAT_TRY(remat_comm_use_device(par->comm, r->dev, NULL));
    r->failed = NULL;
    return REMAT_OK;
}

remat_status gpt_rig_open_model(gpt_rig *r, const gpt_rig_spec *sp)
{
    gpt_config cfg = sp->cfg;
    r->failed = "bad model dimensions";
    REMAT_TRY(gpt_config_check(&cfg));
    r->failed = "cannot create the pool";
    REMAT_TRY(remat_pool_create(r->dev, sp->pool, &r->pool));
    if (sp->trace) {
        r->failed = "--trace";
        REMAT_TRY(remat_pool_trace_begin(r->pool, sp->trace));
        r->tracing = 1;
    }
    r->failed = "cannot create the model";
    REMAT_TRY(gpt_model_create_parallel(r->dev, r->pool, &cfg, sp->B, sp->T, sp->prec, sp->par,
                                        &r->model));
    r->failed = "cannot set the weights";
    if (sp->params) {
        REMAT_TRY(gpt_model_set_params(r->model, sp->params));
    } else if (gpt_model_host_params(r->model)) { /* straight into the model, no host copy */
        gpt_init_params(&cfg, sp->seed, gpt_model_host_params(r->model));
    } else {
        float *w = malloc(gpt_model_layout(r->model)->total * sizeof(float));
        if (!w)
            return remat_fail(REMAT_ENOMEM, "out of host memory for the weights");
        gpt_init_params(&cfg, sp->seed, w);
        remat_status s = gpt_model_set_params(r->model, w);
        free(w);
        REMAT_TRY(s);
    }
    r->failed = "out of host memory";
    r->tokens = (size_t)sp->B * (size_t)sp->T;
    r->inputs = calloc(r->tokens, sizeof(int));
    r->targets = calloc(r->tokens, sizeof(int));
    if (!r->inputs || !r->targets)
        return remat_fail(REMAT_ENOMEM, "out of host memory for a batch of %zu tokens", r->tokens);
    r->failed = "cannot describe the model's stages";
    remat_chain_free(r->chain);
    r->chain = NULL;
    REMAT_TRY(gpt_model_chain(r->model, &r->chain));
    r->failed = NULL;
    return REMAT_OK;
}

remat_status gpt_rig_open(gpt_rig *r, const gpt_rig_spec *sp)
{
    REMAT_TRY(gpt_rig_open_device(r, sp));
    return gpt_rig_open_model(r, sp);
}

remat_status gpt_rig_trace_end(gpt_rig *r)
{
    if (!r->tracing)
        return REMAT_OK;
    r->tracing = 0;
    return remat_pool_trace_end(r->pool);
}

void gpt_rig_close(gpt_rig *r)
{
    (void)!gpt_rig_trace_end(r); /* a write error shows when the file is closed */
    remat_chain_free(r->chain);
    gpt_model_destroy(r->model);
    remat_pool_destroy(r->pool);
    remat_device_close(r->dev);
    free(r->inputs);
    free(r->targets);
    memset(r, 0, sizeof *r);
}

remat_status gpt_rig_run(gpt_rig *r, const remat_schedule *sched, const gpt_adamw *hp, int t,
                         gpt_rig_step *out)
{
    remat_pool_stats after;
    remat_stat before = {0, 0}, act = {0, 0};
    REMAT_TRY(remat_pool_reset_peaks(r->pool));
    if (remat_pool_tag_stats(r->pool, "act", &before) != REMAT_OK) /* none allocated yet */
        before = (remat_stat){0, 0};
    double t0 = gpt_now_ms();
    REMAT_TRY(gpt_model_forward_backward(r->model, sched, r->chain, r->inputs, r->targets,
                                         &out->loss));
    if (hp) {
        REMAT_TRY(gpt_model_reduce_grads(r->model));
        REMAT_TRY(gpt_model_update(r->model, hp, t));
    }
    out->ms = gpt_now_ms() - t0;
    REMAT_TRY(remat_pool_stats_get(r->pool, &after));
    if (remat_pool_tag_stats(r->pool, "act", &act) != REMAT_OK)
        act = (remat_stat){0, 0};
    out->act_peak = act.peak - before.current;
    out->pool_peak = after.allocated.peak;
    return REMAT_OK;
}

double gpt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int rig_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double gpt_median(double *v, size_t n)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, rig_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double gpt_median_se(double *v, size_t n, double *se)
{
    double med = gpt_median(v, n);
    for (size_t i = 0; i < n; i++)
        v[i] = fabs(v[i] - med);
    *se = n < 3 ? NAN : 1.2533 * 1.4826 * gpt_median(v, n) / sqrt((double)n);
    return med;
}

const int *gpt_ab_order(size_t n_arms, long step)
{
    static const int two[2][2] = {{0, 1}, {1, 0}};
    static const int three[6][3] = {{0, 1, 2}, {2, 1, 0}, {1, 2, 0},
                                    {0, 2, 1}, {2, 0, 1}, {1, 0, 2}};
    return n_arms == 1 ? two[step % 2] : three[step % 6];
}

remat_status gpt_ab_compare(const double *ms, const double *base, size_t n, gpt_ab *out)
{
    memset(out, 0, sizeof *out);
    out->overhead_se = NAN;
    if (n == 0)
        return REMAT_OK;
    double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    if (!a || !b) {
        free(a), free(b);
        return remat_fail(REMAT_ENOMEM, "out of host memory for %zu steps' times", n);
    }
    for (size_t i = 0; i < n; i++)
        a[i] = ms[i] / base[i];
    out->overhead = gpt_median_se(a, n, &out->overhead_se) - 1;
    memcpy(a, ms, n * sizeof *a);
    memcpy(b, base, n * sizeof *b);
    out->ms = gpt_median(a, n);
    out->base_ms = gpt_median(b, n);
    out->overhead_min = a[0] / b[0] - 1; /* sorted by gpt_median */
    free(a), free(b);
    return REMAT_OK;
}
