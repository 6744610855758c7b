/* tests/cli/test_train_trace.c: real training traces carry step marks. `remat train --trace` writes
 * an `s` line at the start of every training step, so `remat replay TRACE --planned` records one
 * real step and serves the others from one planned arena. */
#include "tests/common/cli_run.h"

#include "remat.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static void make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/remat-trace-XXXXXX");
    cr_assert(mkdtemp(dir), "mkdtemp");
}

static void remove_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", cli_sh_quote(dir));
    cr_assert_eq(system(cmd), 0);
}

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItem(o, key);
    cr_assert(cJSON_IsNumber(v), "no number '%s'", key);
    return v->valuedouble;
}

/* Trains `steps` steps of tiny at batch 2 under `policy` with --trace, then checks the marks and
 * replays the trace planned: every step after the recorded one is served from the arena, the
 * arena is its step's lower bound, and the planned steps reserve no more than 2% above the most
 * bytes live in them (issue 15's target). At batch 2 the persistent state is most of it: the
 * trace's `d` lines give it its own segments again, as in the run. */
static void trace_replays_planned(const char *policy, const char *layout, int steps)
{
    make_dir();
    char trace[128];
    snprintf(trace, sizeof trace, "%s/run.trace", dir);
    cli_result r;
    cli_run(&r,
            "train --model tiny --steps %d --batch 2 --device host --analytic --policy %s "
            "--layout %s --trace %s",
            steps, policy, layout, trace);
    cr_assert_eq(r.code, 0, "%s", r.err);
    remat_trace *t = NULL;
    cr_assert_eq(remat_trace_load(trace, &t), REMAT_OK, "%s", remat_last_error());
    cr_expect_eq(remat_trace_steps(t), (size_t)steps, "%zu step marks for %d steps",
                 remat_trace_steps(t), steps);
    remat_trace_free(t);
    cli_run(&r, "replay %s --planned --json", trace);
    cr_assert_eq(r.code, 0, "%s", r.err);
    cJSON *j = cJSON_Parse(r.out);
    cr_assert(j, "%s", r.out);
    const cJSON *p = cJSON_GetObjectItem(j, "planned");
    cr_assert(p, "%s", r.out);
    cr_expect_eq(num(p, "steps"), steps);
    cr_expect_eq(num(p, "planned_steps"), steps - 1);
    cr_expect_eq(num(p, "misses"), 0, "%s", r.out);
    cr_expect_gt(num(p, "hits"), 0, "%s", r.out);
    cr_expect_eq(num(p, "arena_bytes"), num(p, "arena_lower_bound"), "%s", r.out);
    cr_expect_leq(num(p, "ratio"), 1.02, "%s %s: planned steps reserve %.4f x the bound", policy,
                  layout, num(p, "ratio"));
    cJSON_Delete(j);
    remove_dir();
}

Test(train_trace, pool_layout_steps_are_marked_and_replay_planned)
{
    trace_replays_planned("store-all", "pool", 4);
}

Test(train_trace, optimal_steps_are_marked_and_replay_planned)
{
    trace_replays_planned("optimal --budget 50%", "pool", 3);
}

/* A `d` line is replayed as the pool served it, in a segment of exactly its rounded size; the same
 * line as `a` takes a 2 MiB small segment. Both read as allocations. */
Test(train_trace, dedicated_lines_replay_in_segments_of_their_own)
{
    const char *text[2] = {"# remat-trace 1\nd 1 1000 0 params\nf 1\n",
                           "# remat-trace 1\na 1 1000 0 params\nf 1\n"};
    const uint64_t want[2] = {1024, 2u << 20};
    remat_device *dev = NULL;
    cr_assert_eq(remat_device_open("sim:1GiB", &dev), REMAT_OK, "%s", remat_last_error());
    for (int k = 0; k < 2; k++) {
        FILE *f = fmemopen((void *)text[k], strlen(text[k]), "r");
        remat_trace *t = NULL;
        cr_assert_eq(remat_trace_parse(f, "d", &t), REMAT_OK, "%s", remat_last_error());
        fclose(f);
        remat_trace_event e;
        cr_assert_eq(remat_trace_event_at(t, 0, &e), REMAT_OK);
        cr_expect_eq(e.op, 'a');
        cr_expect_eq(e.bytes, 1000);
        remat_replay_result r;
        cr_assert_eq(remat_trace_replay(t, dev, NULL, &r), REMAT_OK, "%s", remat_last_error());
        cr_expect_eq(r.peak_reserved, want[k], "%s: reserved %llu", text[k],
                     (unsigned long long)r.peak_reserved);
        remat_trace_free(t);
    }
    remat_device_close(dev);
}

/* The recorder writes `d` for the trainer's states: parameters, gradients, both AdamW moments and
 * the targets. */
Test(train_trace, the_trainers_states_are_recorded_as_dedicated)
{
    make_dir();
    char trace[128];
    snprintf(trace, sizeof trace, "%s/run.trace", dir);
    cli_result r;
    cli_run(&r, "train --model tiny --steps 1 --batch 2 --device host --analytic --trace %s",
            trace);
    cr_assert_eq(r.code, 0, "%s", r.err);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "grep -c '^d ' %s", cli_sh_quote(trace));
    FILE *p = popen(cmd, "r");
    int n = -1;
    cr_assert(p && fscanf(p, "%d", &n) == 1);
    pclose(p);
    cr_expect_eq(n, 5, "%d dedicated lines", n);
    remove_dir();
}
