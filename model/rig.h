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
    int comm_alone; /* hand the device to par->comm with one rank at ZeRO-0 too (its NCCL path) */
} gpt_rig_spec;

typedef struct gpt_rig {
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
/* gpt_rig_open in two halves, for a caller that checks the run against the device's memory
 * before anything large is allocated (`remat train`): the device (zeroing *r first) and its
 * comm, then the pool, the model, its weights, the batch buffers and the chain (replacing a chain
 * the caller left in r->chain). */
remat_status gpt_rig_open_device(gpt_rig *r, const gpt_rig_spec *spec);
remat_status gpt_rig_open_model(gpt_rig *r, const gpt_rig_spec *spec);
/* Ends the pool's trace begun from spec->trace (a no-op without one), before the rig closes, for
 * a caller that records frees after the trace's writer has to be finished. */
remat_status gpt_rig_trace_end(gpt_rig *r);
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

/* ==== A/B: a plan against store-all, in the same steps ==================================== */
/* `remat curve` and `remat train --baseline` run a schedule and store-all on the same batch back
 * to back in every step, in gpt_ab_order's order, and compare them with gpt_ab_compare. */

/* The order of the runs in step `step` (0..): index 0 is store-all, 1.. the n_arms arms (1 or 2).
 * With one arm, store-all first on even steps; with two, six orders in turn, each odd step the
 * reverse of the step before, so over any even number of steps each arm runs first as often as
 * the other and store-all runs first, second and last alike over six. */
const int *gpt_ab_order(size_t n_arms, long step);

typedef struct {
    double overhead;     /* median over the steps of arm / store-all, minus 1 */
    double overhead_se;  /* its standard error from the per-step spread; NAN below 3 steps */
    double ms, base_ms;  /* each side's median */
    double overhead_min; /* the least disturbed run of each: fastest / fastest - 1 */
} gpt_ab;

/* From n steps' times of the arm (ms) and of store-all (base): the median of the per-step
 * ratios cancels a change of load between steps, as a shared machine has. */
remat_status gpt_ab_compare(const double *ms, const double *base, size_t n, gpt_ab *out);

/* Median of v's n values and its standard error, estimated from the median absolute deviation
 * (sigma = 1.4826 MAD for normal noise; a median's error is 1.2533 sigma / sqrt(n)): NAN below 3
 * values, where the spread says nothing. Overwrites v. */
double gpt_median_se(double *v, size_t n, double *se);

/* Milliseconds of CLOCK_MONOTONIC. */
double gpt_now_ms(void);
/* Median of v's n values (sorted in place); 0 for none. */
double gpt_median(double *v, size_t n);

#endif
