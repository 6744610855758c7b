/* model/rig.h: one training rig, what `remat train`, `curve`, `profile`, `fit --measure`, the
 * benchmarks and the tests open to train our GPT: the device, a pool, the model with its weights,
 * a batch of token buffers and the model's chain; and one measured step under a schedule. Also the
 * one wall-clock timer and median of these measurements. Internal to remat (not in remat.h). */
#ifndef REMAT_MODEL_RIG_H
#define REMAT_MODEL_RIG_H

#include "model/gpt.h"

#include <stdio.h>

/* What to open. Zeroed fields take the defaults named. */
typedef struct {
    const char *device;             /* device spec (NULL: "host") */
    const remat_pool_config *pool;  /* NULL: the pool's defaults */
    FILE *trace;                    /* non-NULL: the pool's trace from its creation on */
    gpt_config cfg;                 /* checked by gpt_rig_open */
    int B, T;
    const gpt_precision *prec;      /* NULL: fp32 */
    const gpt_parallel *par;        /* NULL: one process; its comm is given the device */
    const float *params;            /* host fp32 weights in llm.c's layout; NULL: GPT-2 init */
    uint64_t seed;                  /* of the init when params is NULL */
} gpt_rig_spec;

typedef struct {
    remat_device *dev;
    remat_pool *pool;
    gpt_model *model;
    remat_chain *chain;  /* gpt_model_chain's (analytic times); a caller may replace it */
    int *inputs, *targets; /* B * T tokens each, host, zeroed: the caller fills them */
    size_t tokens;
    const char *failed;  /* after a failed gpt_rig_open: what it was doing ("cannot open the
                          * device", ...), for the caller's message */
    int tracing;         /* the pool's trace was begun (gpt_rig_close ends it) */
} gpt_rig;

/* Opens everything spec names into *r (zeroed first); on failure *r holds what was opened (close
 * it with gpt_rig_close) and r->failed says what failed. */
remat_status gpt_rig_open(gpt_rig *r, const gpt_rig_spec *spec);
/* Frees everything the rig holds (ends its pool trace first); a zeroed rig is a no-op. */
void gpt_rig_close(gpt_rig *r);

/* One measured step. */
typedef struct {
    float loss;        /* this rank's mean loss */
    double ms;         /* wall time of the forward and backward (and the update, when asked) */
    uint64_t act_peak; /* the schedule's activation peak: the pool's "act" tag, the executor's */
    uint64_t pool_peak; /* the pool's allocated peak over the step */
} gpt_rig_step;

/* One forward and backward of r's batch under sched and r->chain, then (hp non-NULL) the
 * gradients' reduction and AdamW step t. */
remat_status gpt_rig_run(gpt_rig *r, const remat_schedule *sched, const gpt_adamw *hp, int t,
                         gpt_rig_step *out);

/* Milliseconds of CLOCK_MONOTONIC. */
double gpt_now_ms(void);
/* Median of v's n values (sorted in place); 0 for none. */
double gpt_median(double *v, size_t n);

#endif
