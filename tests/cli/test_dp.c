/* tests/cli/test_dp.c: data-parallel `remat train` under mpirun (2 and 4 ranks, oversubscribed)
 * against the one-process run of the whole batch: losses within 1e-6 relative at every step,
 * bitwise repeatable, bitwise equal under checkpointing; ZeRO-1/2/3's per-rank states, unit
 * buffers, parameter gathers and ring volumes against their byte arithmetic; bad launches
 * refused. The oracle is the one-process
 * trainer (tests/unit/test_model.c checks it against a float64 reference). */
#include "tests/common/cli_run.h"

#include "remat.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TINY "train --model tiny --seq 32 --device host --json --steps 3"

typedef struct {
    int n;
    double loss[16];
    cJSON *summary;
} run_out;

static void parse(const cli_result *r, run_out *o)
{
    cr_assert_eq(r->code, 0, "exit %d\nstdout:\n%.2000s\nstderr:\n%.4000s", r->code, r->out,
                 r->err);
    memset(o, 0, sizeof *o);
    char *text = strdup(r->out), *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *j = cJSON_Parse(line);
        cr_assert(j, "not JSON: %s", line);
        if (cJSON_GetObjectItem(j, "summary")) {
            o->summary = j;
            continue;
        }
        cJSON *l = cJSON_GetObjectItem(j, "loss");
        if (l && o->n < 16)
            o->loss[o->n++] = l->valuedouble;
        cJSON_Delete(j);
    }
    free(text);
    cr_assert(o->summary, "no summary line in:\n%s", r->out);
}

static double num(const run_out *o, const char *key)
{
    cJSON *v = cJSON_GetObjectItem(o->summary, key);
    cr_assert(v && cJSON_IsNumber(v), "summary has no number '%s'", key);
    return v->valuedouble;
}

static double tag_peak(const run_out *o, const char *tag)
{
    cJSON *t = cJSON_GetObjectItem(o->summary, "rank_peak_bytes");
    cr_assert(t, "summary has no rank_peak_bytes");
    cJSON *v = cJSON_GetObjectItem(t, tag);
    cr_assert(v && cJSON_IsNumber(v), "rank_peak_bytes has no '%s'", tag);
    return v->valuedouble;
}

static void expect_close(const run_out *a, const run_out *b, double rel, const char *what)
{
    cr_assert_eq(a->n, b->n, "%s: %d vs %d steps", what, a->n, b->n);
    for (int i = 0; i < a->n; i++)
        cr_expect(fabs(a->loss[i] - b->loss[i]) <= rel * fabs(b->loss[i]),
                  "%s: step %d loss %.6f vs %.6f", what, i + 1, a->loss[i], b->loss[i]);
}

static void expect_same(const cli_result *a, const cli_result *b, const char *what)
{
    /* the step lines' losses, bit for bit as printed */
    run_out x, y;
    parse(a, &x);
    parse(b, &y);
    cr_assert_eq(x.n, y.n);
    for (int i = 0; i < x.n; i++)
        cr_expect(x.loss[i] == y.loss[i], "%s: step %d %.6f vs %.6f", what, i + 1, x.loss[i],
                  y.loss[i]);
    cJSON_Delete(x.summary);
    cJSON_Delete(y.summary);
}

static void needs_mpi(void)
{
    if (!remat_built_with_mpi())
        cr_skip_test("built without MPI (REMAT_MPI=0)");
}

/* N ranks of batch B against one process of batch N*B, for ZeRO 0-3, store-all and optimal. */
static void ranks_match_one_process(int ranks, const char *policy)
{
    needs_mpi();
    static cli_result one, dp;
    run_out ref, got;
    parse(cli_run(&one, TINY " --batch %d %s", 2 * ranks, policy), &ref);
    for (int zero = 0; zero <= 3; zero++) {
        parse(cli_run_ranks(&dp, ranks, TINY " --batch 2 --zero %d %s", zero, policy), &got);
        char what[96];
        snprintf(what, sizeof what, "%d ranks, ZeRO-%d, %s", ranks, zero, policy);
        expect_close(&got, &ref, 1e-6, what);
        cr_expect_eq(num(&got, "ranks"), ranks);
        cr_expect_eq(num(&got, "global_batch"), 2 * ranks);
        cJSON_Delete(got.summary);
    }
    cJSON_Delete(ref.summary);
}

Test(dp, two_ranks_match_one_process_of_the_whole_batch, .timeout = 600)
{
    ranks_match_one_process(2, "");
}

Test(dp, four_ranks_match_one_process_of_the_whole_batch, .timeout = 600)
{
    ranks_match_one_process(4, "");
}

Test(dp, two_ranks_under_optimal_at_half_match_one_process, .timeout = 600)
{
    ranks_match_one_process(2, "--policy optimal --budget 50% --analytic");
}

Test(dp, runs_repeat_bitwise_and_checkpointing_changes_no_bit, .timeout = 600)
{
    needs_mpi();
    static cli_result a, b, c;
    cli_run_ranks(&a, 2, TINY " --batch 2 --zero 1");
    cli_run_ranks(&b, 2, TINY " --batch 2 --zero 1");
    expect_same(&a, &b, "two identical runs");
    cli_run_ranks(&c, 2, TINY " --batch 2 --zero 1 --policy optimal --budget 50%%");
    expect_same(&a, &c, "optimal at 50%% against store-all");
    cli_run_ranks(&c, 2, TINY " --batch 2 --zero 0 --policy periodic:1");
    cli_run_ranks(&b, 2, TINY " --batch 2 --zero 0");
    expect_same(&b, &c, "periodic:1 against store-all");
    /* ZeRO-3 gathers a recomputed block's weights again: the same weights, the same bits */
    cli_run_ranks(&a, 2, TINY " --batch 2 --zero 3");
    cli_run_ranks(&b, 2, TINY " --batch 2 --zero 3");
    expect_same(&a, &b, "two identical ZeRO-3 runs");
    cli_run_ranks(&c, 2, TINY " --batch 2 --zero 3 --policy optimal --budget 50%%");
    expect_same(&a, &c, "ZeRO-3, optimal at 50%% against store-all");
}

Test(dp, accumulation_matches_the_whole_batch, .timeout = 600)
{
    static cli_result one, acc;
    run_out ref, got;
    parse(cli_run(&one, TINY " --batch 8"), &ref);
    parse(cli_run(&acc, TINY " --batch 2 --accum 4"), &got);
    expect_close(&got, &ref, 1e-6, "1 process, 4 micro-steps of 2");
    cr_expect_eq(num(&got, "accum"), 4);
    cJSON_Delete(got.summary);
    if (remat_built_with_mpi()) {
        for (int zero = 1; zero <= 3; zero += 2) { /* ZeRO-3 reduces each micro-step's units */
            parse(cli_run_ranks(&acc, 2, TINY " --batch 2 --accum 2 --zero %d", zero), &got);
            expect_close(&got, &ref, 1e-6, "2 ranks x 2 micro-steps of 2");
            cJSON_Delete(got.summary);
        }
    }
    cJSON_Delete(ref.summary);
}

Test(dp, zero1_shards_the_optimizer_and_the_traffic_is_the_ring_volume, .timeout = 600)
{
    needs_mpi();
    static cli_result r0, r1;
    for (int ranks = 2; ranks <= 4; ranks += 2) {
        run_out z0, z1;
        parse(cli_run_ranks(&r0, ranks, TINY " --batch 2 --zero 0"), &z0);
        parse(cli_run_ranks(&r1, ranks, TINY " --batch 2 --zero 1"), &z1);
        uint64_t P = (uint64_t)num(&z0, "parameters"), shard = (P + ranks - 1) / ranks;
        uint64_t padded = shard * ranks;
        /* the tags count the bytes asked for */
        cr_expect_eq((uint64_t)tag_peak(&z0, "optim"), 2 * P * 4, "ZeRO-0: m and v whole");
        cr_expect_eq((uint64_t)tag_peak(&z1, "optim"), 2 * shard * 4,
                     "ZeRO-1 on %d ranks: m and v of a %llu-element shard", ranks,
                     (unsigned long long)shard);
        cr_expect_eq((uint64_t)tag_peak(&z1, "params"), padded * 4);
        cr_expect_eq((uint64_t)tag_peak(&z1, "grads"), padded * 4);
        /* per step: the gradients' all-reduce (ZeRO-0) or reduce-scatter + all-gather (ZeRO-1),
         * 2 (N - 1) / N of the buffer either way, plus the loss's 8-byte all-reduce */
        uint64_t loss = 2 * 8 * (ranks - 1) / ranks;
        cr_expect_eq((uint64_t)num(&z0, "comm_bytes_per_step"),
                     2 * P * 4 * (ranks - 1) / ranks + loss);
        cr_expect_eq((uint64_t)num(&z1, "comm_bytes_per_step"),
                     2 * shard * 4 * (ranks - 1) + loss);
        cJSON_Delete(z0.summary);
        cJSON_Delete(z1.summary);
    }
}

/* tiny's units (L 2, C 64, vocabulary 256, 64 positions): the embeddings, a block, the final
 * LayerNorm, in elements. */
enum { TINY_L = 2, TINY_OUTER = 256 * 64 + 64 * 64, TINY_BLOCK = 12 * 64 * 64 + 13 * 64,
       TINY_NORM = 2 * 64 };

Test(dp, zero2_and_zero3_shard_by_unit_and_gather_once_per_use, .timeout = 600)
{
    needs_mpi();
    static cli_result r2, r3, rc;
    for (int ranks = 2; ranks <= 4; ranks += 2) {
        run_out z2, z3, ck;
        parse(cli_run_ranks(&r2, ranks, TINY " --batch 2 --zero 2"), &z2);
        parse(cli_run_ranks(&r3, ranks, TINY " --batch 2 --zero 3"), &z3);
        uint64_t n = (uint64_t)ranks, co = (TINY_OUTER + n - 1) / n, cb = (TINY_BLOCK + n - 1) / n,
                 cn = (TINY_NORM + n - 1) / n, shard = co + TINY_L * cb + cn;
        cr_assert_eq(num(&z2, "parameters"), TINY_OUTER + TINY_L * TINY_BLOCK + TINY_NORM);
        /* ZeRO-2: full weights (every unit padded), the shard of the gradients and moments */
        cr_expect_eq((uint64_t)tag_peak(&z2, "params"), n * shard * 4);
        cr_expect_eq((uint64_t)tag_peak(&z2, "grads"), shard * 4);
        cr_expect_eq((uint64_t)tag_peak(&z2, "optim"), 2 * shard * 4);
        /* the embeddings' gradients held through the backward, plus one block's */
        cr_expect_eq((uint64_t)tag_peak(&z2, "units"), n * (co + cb) * 4);
        /* ZeRO-3: the shard of everything; a block's backward holds its gathered weights and
         * its gradients beside the embeddings' gradients (more, here, than the head's gathered
         * embeddings and norm) */
        cr_expect_eq((uint64_t)tag_peak(&z3, "params"), shard * 4);
        cr_expect_eq((uint64_t)tag_peak(&z3, "grads"), shard * 4);
        cr_expect_eq((uint64_t)tag_peak(&z3, "units"), n * (co * 4 + cb * 8));
        /* store-all gathers every unit for its forward (the embeddings twice: the embedding
         * and the head) and each block and the norm for its backward */
        cr_expect_eq(num(&z3, "param_gathers_per_step"), 2 * TINY_L + 4);
        cr_expect_eq(num(&z2, "param_gathers_per_step"), 0);
        uint64_t loss = 2 * 8 * (n - 1) / n;
        cr_expect_eq((uint64_t)num(&z2, "comm_bytes_per_step"), (n - 1) * shard * 8 + loss,
                     "ZeRO-2: each unit reduce-scattered and gathered once");
        cr_expect_eq((uint64_t)num(&z3, "comm_bytes_per_step"), (n - 1) * shard * 12 + loss,
                     "ZeRO-3: reduced once, gathered twice");
        /* a recomputed block is gathered once more: the traffic grows by its chunk each time */
        parse(cli_run_ranks(&rc, ranks,
                            TINY " --batch 2 --zero 3 --policy optimal --budget 50%% --analytic"),
              &ck);
        double extra = num(&ck, "param_gathers_per_step") - (2 * TINY_L + 4);
        cr_expect(extra >= 1, "optimal at 50%% recomputes: %g extra gathers", extra);
        cr_expect_eq(num(&ck, "comm_bytes_per_step") - num(&z3, "comm_bytes_per_step"),
                     extra * (double)((n - 1) * cb * 4), "%d ranks: %g extra block gathers", ranks,
                     extra);
        cJSON_Delete(z2.summary);
        cJSON_Delete(z3.summary);
        cJSON_Delete(ck.summary);
    }
}

/* ZeRO-3 over ranks: rank 0 profiles alone, so the gathers are timed by every rank and added to
 * the chain the schedule is planned on; only where there is a measured chain and gathers. */
Test(dp, zero3_times_its_gathers_into_the_measured_chain, .timeout = 300)
{
    needs_mpi();
    static cli_result r;
    const char *cases[] = {"--zero 3 --policy optimal --budget 50%", "--zero 2 --policy optimal",
                           "--zero 3 --policy optimal --analytic", "--zero 3"};
    for (int k = 0; k < 4; k++) {
        run_out o;
        parse(cli_run_ranks(&r, 2, TINY " --batch 2 --steps 1 %s", cases[k]), &o);
        cJSON *g = cJSON_GetObjectItem(o.summary, "chain_gather_ms");
        cr_assert(cJSON_IsObject(g), "%s", cases[k]);
        double e = cJSON_GetObjectItem(g, "embeddings")->valuedouble,
               b = cJSON_GetObjectItem(g, "block")->valuedouble;
        if (k == 0)
            cr_expect(e > 0 && b > 0, "ZeRO-3 optimal: gathers %g and %g ms", e, b);
        else
            cr_expect(e == 0 && b == 0, "%s: gathers %g and %g ms", cases[k], e, b);
        cJSON_Delete(o.summary);
    }
    cli_run_ranks(&r, 2, "train --model tiny --seq 32 --device host --steps 1 --batch 2 --zero 3 "
                         "--policy optimal");
    cr_expect_eq(r.code, 0, "%s", r.err);
    cr_expect(strstr(r.out, "zero-3: an all-gather takes"), "%s", r.out);
}

Test(dp, bad_launches_are_refused_clearly, .timeout = 300)
{
    static cli_result r;
    cli_run(&r, TINY " --zero 4");
    cr_expect_eq(r.code, 2);
    cr_expect(strstr(r.err, "--zero") && strstr(r.err, "4"), "%s", r.err);
    cli_run(&r, TINY " --accum 0");
    cr_expect_eq(r.code, 2);
    cli_run(&r, TINY " --accum 2 --baseline");
    cr_expect_eq(r.code, 2);
    cr_expect(strstr(r.err, "--accum"), "%s", r.err);
    if (!remat_built_with_mpi())
        return;
    /* two ranks started with different options (MPMD launch) */
    cli_run_ranks(&r, 1, TINY " --batch 2 : -np 1 %s " TINY " --batch 3", cli_sh_quote(cli_bin()));
    cr_expect_neq(r.code, 0);
    cr_expect(strstr(r.err, "differs between ranks") && strstr(r.err, "rank 1"), "%s", r.err);
    cli_run_ranks(&r, 2, TINY " --batch 2 --baseline");
    cr_expect_neq(r.code, 0);
    cr_expect(strstr(r.err, "--baseline runs in one process"), "%s", r.err);
}

Test(dp, a_parameter_count_the_ranks_do_not_divide_is_padded, .timeout = 600)
{
    needs_mpi();
    /* L 1, C 6: 2,442 parameters, padded to 2,444 on 4 ranks */
    static cli_result one, dp;
    run_out ref, got;
    parse(cli_run(&one, TINY " --layers 1 --channels 6 --heads 2 --batch 8"), &ref);
    parse(cli_run_ranks(&dp, 4, TINY " --layers 1 --channels 6 --heads 2 --batch 2 --zero 1"),
          &got);
    cr_assert_eq(num(&got, "parameters"), 2442);
    expect_close(&got, &ref, 1e-6, "4 ranks, ZeRO-1, padded");
    cr_expect_eq(tag_peak(&got, "params"), 2444 * 4);
    cr_expect_eq(tag_peak(&got, "optim"), 2 * 611 * 4);
    cJSON_Delete(got.summary);
    /* ZeRO-3 pads unit by unit: embeddings 64*6 + 256*6, a block 12*36 + 13*6, the norm 12 */
    parse(cli_run_ranks(&dp, 4, TINY " --layers 1 --channels 6 --heads 2 --batch 2 --zero 3"),
          &got);
    expect_close(&got, &ref, 1e-6, "4 ranks, ZeRO-3, padded");
    cr_expect_eq(tag_peak(&got, "params"), (480 + 128 + 3) * 4);
    cJSON_Delete(got.summary);
    cJSON_Delete(ref.summary);
}

/* `remat fit --zero K --gpus N` predicts each rank's states to the byte, padding included, and
 * ZeRO-2/3's unit buffers in its workspace (beyond the fixed 64 MiB). */
Test(dp, fit_predicts_every_ranks_states_to_the_byte, .timeout = 600)
{
    needs_mpi();
    static cli_result run, fit;
    for (int ranks = 2; ranks <= 4; ranks += 2)
        for (int zero = 0; zero <= 3; zero++) {
            run_out got;
            parse(cli_run_ranks(&run, ranks, TINY " --batch 2 --zero %d", zero), &got);
            cli_run(&fit, "fit --model tiny --zero %d --gpus %d --batch 2 --seq 32 --card 1GiB "
                          "--dtype fp32 --json", zero, ranks);
            cr_assert_eq(fit.code, 0, "%s", fit.err);
            cJSON *j = cJSON_Parse(fit.out);
            cr_assert(j, "fit printed no JSON: %s", fit.out);
            cJSON *pg = cJSON_GetObjectItem(j, "per_gpu_bytes");
            const char *fit_keys[] = {"weights", "gradients", "optimizer"};
            const char *tags[] = {"params", "grads", "optim"};
            for (int i = 0; i < 3; i++)
                cr_expect_eq(cJSON_GetObjectItem(pg, fit_keys[i])->valuedouble,
                             tag_peak(&got, tags[i]), "%d ranks ZeRO-%d: %s", ranks, zero,
                             fit_keys[i]);
            cr_expect_eq(cJSON_GetObjectItem(pg, "workspace")->valuedouble - (64 << 20),
                         tag_peak(&got, "units"), "%d ranks ZeRO-%d: unit buffers", ranks, zero);
            /* the traffic too, but for the loss's 8-byte all-reduce */
            cr_expect_eq(cJSON_GetObjectItem(j, "comm_bytes_per_step")->valuedouble,
                         num(&got, "comm_bytes_per_step") - 2 * 8 * (ranks - 1) / ranks,
                         "%d ranks ZeRO-%d: bytes sent a step", ranks, zero);
            cJSON_Delete(j);
            cJSON_Delete(got.summary);
        }
}

/* examples/zero1_trainer.c's output: its last loss. */
static double example_last_loss(int ranks)
{
    const char *bin = cli_bin(), *slash = strrchr(bin, '/');
    char exe[2048], cmd[4096];
    snprintf(exe, sizeof exe, "%.*s/examples/zero1_trainer", slash ? (int)(slash - bin) : 1,
             slash ? bin : ".");
    char launch[768] = "", dir[CLI_MPI_DIR] = "";
    if (ranks > 1)
        cr_assert_eq(cli_mpi_launcher(launch, sizeof launch, ranks, 120, dir), 0);
    snprintf(cmd, sizeof cmd, "%s%s 12 2>&1", launch, cli_sh_quote(exe));
    FILE *p = popen(cmd, "r");
    cr_assert(p, "cannot run %s", cmd);
    char line[512];
    double last = -1;
    int step;
    while (fgets(line, sizeof line, p))
        if (sscanf(line, "step %d loss %lf", &step, &last) == 2 && step != 12)
            last = -1;
    int st = pclose(p);
    cli_mpi_done(dir);
    cr_assert_eq(st, 0, "%s failed", cmd);
    return last;
}

Test(dp, the_zero1_example_trains_the_same_on_three_ranks, .timeout = 300)
{
    needs_mpi();
    double one = example_last_loss(1), three = example_last_loss(3);
    cr_assert_gt(one, 0, "no step 12 line");
    cr_expect(fabs(one - three) <= 1e-5 * one, "1 process %.6f, 3 ranks %.6f", one, three);
}

/* `mpirun -np N remat fit --zero K --gpus N --measure` trains every rank's part at each policy's
 * planned largest batch: each rank's pool peak is the plan (unit buffers included) within 1%, and
 * one sequence more does not fit but in the slack. */
Test(dp, fit_measure_runs_the_ranks_for_real, .timeout = 600)
{
    needs_mpi();
    static cli_result r;
    for (int zero = 1; zero <= 3; zero += 2) {
        cli_run_ranks(&r, 2, "fit --model tiny --card 520MiB --dtype fp32 --zero %d --gpus 2 "
                             "--measure --json", zero);
        cr_assert_eq(r.code, 0, "ZeRO-%d: %s", zero, r.err);
        const char *m = strstr(r.out, "{\"measure\"");
        cr_assert(m && !strstr(m + 1, "{\"measure\""), "one report, from rank 0: %s", r.out);
        cJSON *j = cJSON_Parse(m);
        cr_assert(j, "%s", m);
        const cJSON *rows = cJSON_GetObjectItem(j, "measure"), *row;
        cr_assert_eq(cJSON_GetArraySize(rows), 5, "%s", m);
        cJSON_ArrayForEach(row, rows)
        {
            const char *pol = cJSON_GetObjectItem(row, "policy")->valuestring;
            cr_expect(cJSON_IsTrue(cJSON_GetObjectItem(row, "ok")), "ZeRO-%d %s failed", zero,
                      pol);
            double err = cJSON_GetObjectItem(row, "error")->valuedouble;
            cr_expect_leq(fabs(err), 0.01, "ZeRO-%d %s: %+.2f%% off the plan", zero, pol,
                          100 * err);
            if (cJSON_IsTrue(cJSON_GetObjectItem(row, "one_more_fits")))
                cr_expect_lt(cJSON_GetObjectItem(row, "pool_limit_bytes")->valuedouble -
                                 cJSON_GetObjectItem(row, "one_more_measured_bytes")->valuedouble,
                             cJSON_GetObjectItem(row, "one_more_slack_bytes")->valuedouble,
                             "ZeRO-%d %s: batch + 1 fits outside the slack", zero, pol);
        }
        cJSON_Delete(j);
    }
    /* --gpus must be the ranks started */
    cli_run(&r, "fit --model tiny --card 520MiB --dtype fp32 --zero 1 --gpus 2 --measure");
    cr_expect_eq(r.code, 2);
    cr_expect(strstr(r.err, "mpirun -np 2"), "%s", r.err);
}

/* Under ZeRO-2/3 the weights live by unit (and ZeRO-3's in shards): `--save` gathers them back
 * into llm.c's layout, the same bytes as ZeRO-0's run. In bf16 the saved weights are the fp32
 * master weights, sharded from ZeRO-1 on, gathered the same way. */
Test(dp, zero1_to_zero3_save_the_weights_zero0_saves, .timeout = 300)
{
    needs_mpi();
    static cli_result r;
    static const char *dtype[] = {"fp32", "bf16"};
    char dir[] = "/tmp/remat-dp-XXXXXX", path[4][64];
    cr_assert(mkdtemp(dir));
    for (int d = 0; d < 2; d++) {
        for (int zero = 0; zero <= 3; zero++) {
            snprintf(path[zero], sizeof path[zero], "%s/z%d.bin", dir, zero);
            cli_run_ranks(&r, 2, TINY " --batch 2 --dtype %s --zero %d --save %s", dtype[d], zero,
                          cli_sh_quote(path[zero]));
            cr_assert_eq(r.code, 0, "%s ZeRO-%d: %s", dtype[d], zero, r.err);
        }
        for (int zero = 1; zero <= 3; zero++) {
            FILE *a = fopen(path[0], "rb"), *b = fopen(path[zero], "rb");
            cr_assert(a && b);
            int ca, cb;
            long at = 0;
            do {
                ca = fgetc(a), cb = fgetc(b);
            } while (ca == cb && ca != EOF && ++at);
            cr_expect_eq(ca, cb, "%s: ZeRO-%d's weights differ from ZeRO-0's at byte %ld",
                         dtype[d], zero, at);
            fclose(a), fclose(b);
        }
        for (int zero = 0; zero <= 3; zero++)
            remove(path[zero]);
    }
    remove(dir);
}
