/* tests/unit/test_profile.c: the stage profile's estimator on injected samples (no wall time: which
 * samples it keeps and which quantile it takes, against sums worked out by hand), and what a real
 * profile reports about its samples (counts, not times). */
#include "model/gpt.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

/* The estimate of n samples, disturbed where mask[i] is 'x'. */
static double estimate(const double *ms, const char *mask, int n)
{
    unsigned char disturbed[64];
    double work[64];
    cr_assert_leq(n, 64);
    for (int i = 0; i < n; i++)
        disturbed[i] = mask && mask[i] == 'x';
    return gpt_profile_estimate(ms, disturbed, n, work);
}

/* Preempted calls are no measurement of the stage: with enough clean samples they are left out
 * even when they look fast (a clock read around a preemption can land anywhere). Clean: 2.0, 2.2,
 * 2.4, 2.6, 2.8 (shuffled); q25 of five = the second, 2.2. With the disturbed 1.0s kept it would
 * be 1.0. */
Test(profile_estimate, leaves_out_preempted_samples_when_enough_are_clean)
{
    const double ms[] = {2.6, 1.0, 2.0, 1.0, 2.8, 2.4, 1.0, 2.2};
    const char *mask = ".x.x..x.";
    cr_expect_float_eq(estimate(ms, mask, 8), 2.2, 1e-12, "got %.6f", estimate(ms, mask, 8));
    cr_expect_float_eq(estimate(ms, NULL, 8), 1.0, 1e-12, "all clean: q25 of 8 is 1.0");
}

/* Fewer clean samples than GPT_PROFILE_MIN_CLEAN (a busy machine): every sample counts, since
 * the profile must still give a time. Clean 2.0, 2.2, 2.4 (3 < 4), disturbed 5, 6, 7, 8, 9: q25
 * of all eight at position 1.75 of 2.0 2.2 2.4 5 ... = 2.2 + 0.75 * 0.2 = 2.35. */
Test(profile_estimate, falls_back_to_every_sample_when_few_are_clean)
{
    cr_assert_eq(GPT_PROFILE_MIN_CLEAN, 4);
    const double ms[] = {9, 2.4, 8, 2.0, 7, 6, 2.2, 5};
    const char *mask = "x.x.xx.x";
    cr_expect_float_eq(estimate(ms, mask, 8), 2.35, 1e-12, "got %.6f", estimate(ms, mask, 8));
}

/* A low quantile, not the least sample: one lucky call does not set the time, and slow outliers
 * (undetected interference) do not move it. 16 clean samples: one 1.0, twelve 3.0, three 30.0:
 * q25 at position 3.75 is 3.0 (the minimum would say 1.0, the mean 8.3). */
Test(profile_estimate, is_a_low_quantile_robust_to_outliers_on_both_sides)
{
    double ms[16];
    for (int i = 0; i < 16; i++)
        ms[i] = 3.0;
    ms[5] = 1.0;
    ms[0] = ms[9] = ms[15] = 30.0;
    cr_expect_float_eq(estimate(ms, NULL, 16), 3.0, 1e-12, "got %.6f", estimate(ms, NULL, 16));
    cr_expect_eq(estimate(ms, NULL, 0), 0);
    double one = 4.5;
    cr_expect_float_eq(estimate(&one, NULL, 1), 4.5, 1e-12);
    cr_expect_float_eq(estimate(&one, "x", 1), 4.5, 1e-12, "a lone disturbed sample still counts");
}

/* The samples' order does not matter and the caller's arrays are not changed (the sort works in
 * the scratch). */
Test(profile_estimate, leaves_its_inputs_alone)
{
    const double ms[] = {5, 4, 3, 2, 1, 0.5};
    double copy[6];
    memcpy(copy, ms, sizeof ms);
    cr_expect_float_eq(estimate(ms, "......", 6), 1.25, 1e-12,
                       "q25 at position 1.25 of 0.5 1 2 3 4 5");
    cr_expect_eq(memcmp(copy, ms, sizeof ms), 0);
}

/* A real profile of `tiny` at batch 2 x 16: its calls shorter than 1 ms are repeated within a
 * round, so there are more samples than the 18 times times the rounds; disturbed samples are
 * counted among them; the times that lacked clean samples are at most the 18 measured. */
Test(profile_estimate, a_profile_counts_its_samples)
{
    gpt_config cfg;
    cr_assert_eq(gpt_preset("tiny", &cfg), REMAT_OK);
    remat_device *dev = NULL;
    remat_pool *pool = NULL;
    gpt_model *m = NULL;
    cr_assert_eq(remat_device_open("host", &dev), REMAT_OK, "%s", remat_last_error());
    cr_assert_eq(remat_pool_create(dev, NULL, &pool), REMAT_OK, "%s", remat_last_error());
    cr_assert_eq(gpt_model_create(dev, pool, &cfg, 2, 16, &m), REMAT_OK, "%s", remat_last_error());
    size_t total = gpt_model_layout(m)->total;
    float *w = malloc(total * sizeof(float));
    int in[32];
    cr_assert(w);
    gpt_init_params(&cfg, 5, w);
    cr_assert_eq(gpt_model_set_params(m, w), REMAT_OK);
    for (int i = 0; i < 32; i++)
        in[i] = (i * 7) % cfg.vocab;
    remat_chain *ch = NULL;
    gpt_profile_info info;
    cr_assert_eq(gpt_model_profile(m, in, 2, &ch, &info), REMAT_OK, "%s", remat_last_error());
    cr_expect_geq(info.rounds, 2);
    cr_expect_gt(info.samples, 18 * info.rounds, "%d samples in %d rounds", info.samples,
                 info.rounds);
    cr_expect_leq(info.disturbed, info.samples);
    cr_expect_leq(info.unclean_times, 18);
    remat_chain_free(ch);
    free(w);
    gpt_model_destroy(m);
    remat_pool_destroy(pool);
    remat_device_close(dev);
}
