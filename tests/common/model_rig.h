/* tests/common/model_rig.h: what the model tests share: a GPT model on the host with its pool and chain,
 * a planned schedule at a percentage of store-all, fixture paths and a relative L2 error. */
#ifndef REMAT_TESTS_MODEL_RIG_H
#define REMAT_TESTS_MODEL_RIG_H

#include "model/rig.h"

#include <stddef.h>

/* The library's training rig (model/rig.h): dev, pool, model, chain, a batch's token buffers. */
typedef gpt_rig rig;

/* Opens the host device, a pool, a B x T model of cfg in precision prec (NULL: fp32) with GPT-2
 * init weights (seed 1) and its chain; any failure fails the test. */
void rig_open(rig *r, const gpt_config *cfg, int B, int T, const gpt_precision *prec);
void rig_close(rig *r);
/* A schedule of `policy` (remat_policy_parse's names) at pct percent of store-all, laid out. */
remat_schedule *rig_plan(const remat_chain *chain, const char *policy, double pct);
/* $REMAT_ROOT/tests/fixtures/NAME, in one of 4 rotating static buffers. */
char *rig_fixture(const char *name);
/* ||a - ref|| / ||ref|| over n floats (||a - ref|| when ref is 0). */
double rig_rel_l2(const float *a, const float *ref, size_t n);

#endif
