/* tests/common/model_rig.c: the model tests' shared rig (tests/common/model_rig.h). */
#include "tests/common/model_rig.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rig_open(rig *r, const gpt_config *cfg, int B, int T, const gpt_precision *prec)
{
    gpt_rig_spec spec = {.cfg = *cfg, .B = B, .T = T, .prec = prec, .seed = 1};
    cr_assert_eq(gpt_rig_open(r, &spec), REMAT_OK, "%s: %s", r->failed ? r->failed : "rig",
                 remat_last_error());
}

void rig_close(rig *r)
{
    gpt_rig_close(r);
}

remat_schedule *rig_plan(const remat_chain *chain, const char *policy, double pct)
{
    remat_policy p;
    cr_assert_eq(remat_policy_parse(policy, &p), REMAT_OK, "%s", remat_last_error());
    uint64_t all = 0;
    cr_assert_eq(remat_store_all_peak(chain, &all), REMAT_OK, "%s", remat_last_error());
    remat_schedule *s = NULL;
    remat_status st = remat_plan(chain, &p, (uint64_t)(all * pct / 100.0), &s);
    cr_assert_eq(st, REMAT_OK, "plan %s at %.0f%%: %s", policy, pct, remat_last_error());
    return s;
}

char *rig_fixture(const char *name)
{
    static char path[4][1024];
    static int next;
    const char *root = getenv("REMAT_ROOT");
    char *p = path[next++ % 4];
    snprintf(p, sizeof path[0], "%s/tests/fixtures/%s", root ? root : ".", name);
    return p;
}

double rig_rel_l2(const float *a, const float *ref, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}
