/* tests/unit/test_checkpoint_profile.c: remat_chain_profile measures a user's chain through the
 * user's callbacks: times follow what the callbacks spend (a deliberately slow stage and a slow
 * option are measured as such), and the bytes the callbacks allocate themselves are counted
 * exactly. */
#include "remat.h"

#include "tests/common/cli_run.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { PROF_L = 4, PROF_SLOW = 2 };

typedef struct {
    remat_pool *pool;
    const remat_chain *chain;
    int calls[PROF_L][2]; /* forwards, backwards per stage */
    int bad_tmp;          /* a call got less workspace than declared */
    int saves, restores;
    int fail_stage; /* 1 + the stage whose forward fails (0: none) */
} prof_trainer;

static void prof_sleep_ms(double ms)
{
    struct timespec ts = {(time_t)(ms / 1000),
                          (long)((ms - 1000 * (double)(time_t)(ms / 1000)) * 1e6)};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* What each call allocates itself: forward 1000 (i + 1) bytes, option 0 of stage 1 5000; backward
 * 3000 + i. */
static uint64_t prof_fwd_self(int i, int option)
{
    return i == 1 && option == 0 ? 5000 : 1000 * (uint64_t)(i + 1);
}

static int prof_check_tmp(prof_trainer *t, void *tmp, uint64_t want)
{
    size_t have = 0;
    if (want == 0)
        return tmp == NULL;
    return tmp && remat_pool_block_size(t->pool, tmp, &have) == REMAT_OK && have >= want;
}

static remat_status prof_forward(void *ctx, int i, int option, const void *in, void *out, void *tmp)
{
    (void)in;
    (void)out;
    prof_trainer *t = ctx;
    t->calls[i][0]++;
    if (t->fail_stage == i + 1)
        return remat_callback_fail(REMAT_EDEVICE, "stage %d: the kernel crashed", i);
    if (!prof_check_tmp(t, tmp, t->chain->stages[i].fwd_tmp_bytes))
        t->bad_tmp++;
    void *own = remat_alloc_tagged(t->pool, (size_t)prof_fwd_self(i, option), NULL, "own");
    if (!own)
        return remat_callback_fail(REMAT_ENOMEM, "stage %d: no memory of its own", i);
    prof_sleep_ms(i == PROF_SLOW ? 30 : 1);
    remat_free(t->pool, own);
    return REMAT_OK;
}

static remat_status prof_backward(void *ctx, int i, int option, const void *in, const void *saved,
                                  const void *dout, void *din, void *tmp)
{
    (void)in;
    (void)saved;
    (void)dout;
    (void)din;
    prof_trainer *t = ctx;
    t->calls[i][1]++;
    uint64_t want = t->chain->stages[i].bwd_tmp_bytes +
                    (option >= 0 ? t->chain->stages[i].options[option].extra_bwd_tmp_bytes : 0);
    if (!prof_check_tmp(t, tmp, want))
        t->bad_tmp++;
    void *own = remat_alloc_tagged(t->pool, 3000 + (size_t)i, NULL, "own");
    if (!own)
        return REMAT_ENOMEM;
    prof_sleep_ms(i == PROF_SLOW ? 60 : i == 1 && option == 0 ? 20 : 2);
    remat_free(t->pool, own);
    return REMAT_OK;
}

static remat_status prof_input(void *ctx, void *a0)
{
    (void)ctx;
    memset(a0, 0, 64);
    return REMAT_OK;
}

static remat_status prof_zero(void *ctx, void *p, size_t bytes)
{
    (void)ctx;
    memset(p, 0, bytes);
    return REMAT_OK;
}

static void prof_save(void *ctx, int i)
{
    (void)i;
    ((prof_trainer *)ctx)->saves++;
}

static void prof_restore(void *ctx, int i)
{
    (void)i;
    ((prof_trainer *)ctx)->restores++;
}

static const remat_callbacks prof_cb = {prof_forward, prof_backward, prof_input, NULL,
                                        prof_save,    prof_restore,  prof_zero};

static remat_chain *prof_chain(void)
{
    remat_chain *c;
    cr_assert_eq(remat_chain_new(PROF_L, &c), REMAT_OK);
    c->input_bytes = 64;
    for (int i = 0; i < PROF_L; i++)
        c->stages[i] = (remat_stage){.out_bytes = 256,
                                     .saved_bytes = 512,
                                     .fwd_tmp_bytes = 100 * (uint64_t)i,
                                     .bwd_tmp_bytes = 700};
    c->stages[1].n_options = 1;
    c->stages[1].options = calloc(1, sizeof *c->stages[1].options);
    snprintf(c->stages[1].options[0].name, sizeof c->stages[1].options[0].name, "lean");
    c->stages[1].options[0].saved_bytes = 256;
    c->stages[1].options[0].extra_bwd_tmp_bytes = 900;
    return c;
}

Test(profile, times_follow_the_callbacks_and_self_allocations_are_counted_exactly)
{
    remat_device *dev;
    remat_pool *pool;
    cr_assert_eq(remat_device_open("host", &dev), REMAT_OK);
    cr_assert_eq(remat_pool_create(dev, NULL, &pool), REMAT_OK);
    remat_chain *c = prof_chain();
    static prof_trainer t;
    t.pool = pool;
    t.chain = c;
    remat_stage_profile sp[PROF_L];
    remat_profile_options opt = {.reps = 3};
    cr_assert_eq(remat_chain_profile(c, pool, NULL, &prof_cb, &t, &opt, sp), REMAT_OK, "%s",
                 remat_last_error());
    cr_assert_eq(t.bad_tmp, 0, "a callback got less workspace than the chain declares");
    for (int i = 0; i < PROF_L; i++) {
        /* a warm-up and 3 timed calls: no grad, and per variant with grad; backward per variant */
        int nv = c->stages[i].n_options + 1;
        cr_assert_eq(t.calls[i][0], 4 * (1 + nv), "stage %d forwards", i);
        cr_assert_eq(t.calls[i][1], 4 * nv, "stage %d backwards", i);
        cr_assert_gt(c->stages[i].fwd, 0);
        cr_assert_geq(c->stages[i].bwd, sp[i].bwd);
        cr_assert_eq(c->stages[i].fwd, sp[i].fwd);
        uint64_t most = i == 1 ? 5000 : 1000 * (uint64_t)(i + 1);
        cr_assert_eq(sp[i].fwd_alloc_bytes, most, "stage %d: %llu", i,
                     (unsigned long long)sp[i].fwd_alloc_bytes);
        cr_assert_eq(sp[i].bwd_alloc_bytes, 3000 + (uint64_t)i);
        if (i != PROF_SLOW) {
            cr_assert_lt(c->stages[i].fwd, c->stages[PROF_SLOW].fwd, "stage %d", i);
            cr_assert_lt(c->stages[i].bwd, c->stages[PROF_SLOW].bwd, "stage %d", i);
        }
    }
    cr_assert_geq(c->stages[PROF_SLOW].fwd, 30.0);
    cr_assert_geq(c->stages[PROF_SLOW].bwd, 60.0);
    cr_assert_geq(c->stages[1].options[0].bwd, 20.0);
    cr_assert_gt(c->stages[1].options[0].bwd, c->stages[1].bwd);
    cr_assert_eq(t.saves, PROF_L);
    cr_assert_gt(t.restores, 0);
    /* sizes stay as declared; the profiled chain plans */
    cr_assert_eq(c->stages[1].options[0].extra_bwd_tmp_bytes, 900);
    remat_policy p;
    cr_assert_eq(remat_policy_parse("optimal", &p), REMAT_OK);
    remat_schedule *plan;
    cr_assert_eq(remat_plan(c, &p, UINT64_MAX, &plan), REMAT_OK);
    remat_schedule_free(plan);
    remat_stat act;
    cr_assert_eq(remat_pool_tag_stats(pool, "act", &act), REMAT_OK);
    cr_assert_eq(act.current, 0, "the profile's buffers are all freed");
    remat_chain_free(c);
    remat_pool_destroy(pool);
    remat_device_close(dev);
}

Test(profile, failures_are_reported_and_bad_options_refused)
{
    remat_device *dev;
    remat_pool *pool;
    cr_assert_eq(remat_device_open("host", &dev), REMAT_OK);
    cr_assert_eq(remat_pool_create(dev, NULL, &pool), REMAT_OK);
    remat_chain *c = prof_chain();
    static prof_trainer t;
    t.pool = pool;
    t.chain = c;
    remat_profile_options bad = {.reps = -1};
    cr_assert_eq(remat_chain_profile(c, pool, NULL, &prof_cb, &t, &bad, NULL), REMAT_EINVAL);
    cr_assert(strstr(remat_last_error(), "reps"), "%s", remat_last_error());
    /* stage 3's forward fails: its status and message come back */
    t.fail_stage = 4;
    remat_profile_options one = {.reps = 1};
    cr_assert_eq(remat_chain_profile(c, pool, NULL, &prof_cb, &t, &one, NULL), REMAT_EDEVICE);
    cr_assert(strstr(remat_last_error(), "stage 3: the kernel crashed"), "%s", remat_last_error());
    cr_assert(strstr(remat_last_error(), "forward callback of stage 3"), "%s", remat_last_error());
    remat_stat act;
    cr_assert_eq(remat_pool_tag_stats(pool, "act", &act), REMAT_OK);
    cr_assert_eq(act.current, 0);
    remat_chain_free(c);
    remat_pool_destroy(pool);
    remat_device_close(dev);
}

/* The example trainer profiles its own chain, plans it, and checks gradients and peaks. */
Test(profile, the_mlp_example_profiles_plans_and_trains)
{
    char cmd[4200], out[8192];
    char exe[2048];
    const char *bin = cli_bin(), *slash = strrchr(bin, '/');
    int dir = slash ? (int)(slash - bin) : 1;
    snprintf(exe, sizeof exe, "%.*s/examples/mlp_checkpoint", dir, slash ? bin : ".");
    snprintf(cmd, sizeof cmd, "%s 2 2>&1", cli_sh_quote(exe));
    FILE *p = popen(cmd, "r");
    cr_assert(p, "%s", cmd);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int rc = pclose(p);
    cr_assert_eq(rc, 0, "%s: %s", cmd, out);
    cr_assert(strstr(out, "profiled: layer0 fwd"), "%s", out);
    cr_assert(strstr(out, "gradients bitwise identical"), "%s", out);
    cr_assert(strstr(out, "\nok\n"), "%s", out);
}
