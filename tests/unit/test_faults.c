/* tests/unit/test_faults.c: fault injection. A wrapping device backend fails the N-th device
 * allocation; tests walk N over every allocation of a trace replay, of a checkpointed executor run
 * (also through the pool's own hook, remat_pool_fault_at) and of a GPT training step on the host,
 * and require a failure status with a message, every device segment returned (and no leak under
 * LeakSanitizer in `make asan`), and the pool still consistent and usable. Short reads: every
 * truncation of a valid weights, token, chain and trace file fails cleanly. Failed writes (a file
 * size limit standing in for a full disk) leave no partial chain or weights file. */
#include "alloc/device.h"
#include "model/gpt.h"
#include "remat.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* ==== A device that fails the N-th allocation ============================================== */

typedef struct {
    const device_ops *base;
    device_ops ops;
    uint64_t allocs, fail_at; /* device allocation calls so far; the one to fail (0 = none) */
    int64_t live;             /* segments held now (allocations minus frees) */
} fault_device;

static fault_device fdev; /* one per test process: Criterion runs each test in its own */

/* No test here sets .timeout: with several timed tests running in parallel, Criterion's runner
 * leaks 48 bytes that LeakSanitizer reports under `make asan`. */

static remat_status fault_malloc(remat_device *dev, size_t bytes, void **out)
{
    if (++fdev.allocs == fdev.fail_at)
        return remat_fail(REMAT_ENOMEM, "injected failure of device allocation %llu (%zu bytes)",
                          (unsigned long long)fdev.allocs, bytes);
    remat_status s = fdev.base->malloc(dev, bytes, out);
    fdev.live += s == REMAT_OK;
    return s;
}

static remat_status fault_free(remat_device *dev, void *ptr, size_t bytes)
{
    remat_status s = fdev.base->free(dev, ptr, bytes);
    fdev.live -= s == REMAT_OK;
    return s;
}

/* Opens `spec` with its allocations going through the fault wrapper. */
static remat_device *fault_open(const char *spec)
{
    remat_device *dev = NULL;
    cr_assert_eq(remat_device_open(spec, &dev), REMAT_OK, "%s", remat_last_error());
    fdev = (fault_device){.base = dev->ops, .ops = *dev->ops};
    fdev.ops.malloc = fault_malloc;
    fdev.ops.free = fault_free;
    fdev.ops.vm_reserve = NULL; /* no expandable segments: every allocation is a malloc */
    fdev.ops.vm_map = NULL;
    dev->ops = &fdev.ops;
    return dev;
}

static void fault_close(remat_device *dev)
{
    dev->ops = fdev.base;
    remat_device_close(dev);
}

/* Arms the wrapper to fail allocation n (counted from now; 0 = none). */
static void fault_arm(uint64_t n)
{
    fdev.allocs = 0;
    fdev.fail_at = n;
    remat_clear_error();
}

static void assert_failed_cleanly(remat_status s, uint64_t n, const char *what)
{
    cr_assert_neq(s, REMAT_OK, "%s: allocation %llu failed but the call succeeded", what,
                  (unsigned long long)n);
    cr_assert(remat_last_error()[0], "%s: failure at allocation %llu without a message", what,
              (unsigned long long)n);
}

static void assert_pool_empty_and_ok(remat_pool *pool, const char *what, uint64_t n)
{
    cr_assert_eq(remat_pool_check(pool), REMAT_OK, "%s, fault %llu: %s", what,
                 (unsigned long long)n, remat_last_error());
    remat_pool_stats st;
    cr_assert_eq(remat_pool_stats_get(pool, &st), REMAT_OK);
    cr_assert_eq(st.requested.current, 0, "%s, fault %llu: %llu bytes still allocated", what,
                 (unsigned long long)n, (unsigned long long)st.requested.current);
}

/* ==== (a) trace replay ===================================================================== */

static remat_trace *fault_trace(int events)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    uint64_t rng = 7;
    int live[64] = {0};
    fprintf(f, "# remat-trace 1\n");
    for (int e = 0; e < events; e++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        int id = (int)(rng >> 58);
        if (live[id])
            fprintf(f, "f %d\n", id);
        else
            fprintf(f, "a %d %llu %d act\n", id,
                    (unsigned long long)((rng >> 20) % 8 ? (rng >> 24) % 200000 : (rng >> 24) % 30000000),
                    (int)(rng >> 40) % 2);
        live[id] = !live[id];
    }
    fclose(f);
    FILE *in = fmemopen(text, len, "r");
    remat_trace *t = NULL;
    cr_assert_eq(remat_trace_parse(in, "fault", &t), REMAT_OK, "%s", remat_last_error());
    fclose(in);
    free(text);
    return t;
}

static void replay_every_allocation_fails_cleanly(const char *spec, const remat_pool_config *cfg)
{
    remat_device *dev = fault_open(spec);
    remat_trace *t = fault_trace(600);
    remat_replay_result r;
    fault_arm(0);
    cr_assert_eq(remat_trace_replay(t, dev, cfg, &r), REMAT_OK, "%s", remat_last_error());
    uint64_t calls = fdev.allocs;
    cr_assert_gt(calls, 2);
    cr_assert_eq(fdev.live, 0, "the replay kept %lld segments", (long long)fdev.live);
    fprintf(stderr, "replay on %s: failing each of %llu device allocations\n", spec,
                (unsigned long long)calls);
    for (uint64_t n = 1; n <= calls; n++) {
        fault_arm(n);
        remat_status s = remat_trace_replay(t, dev, cfg, &r);
        /* The pool frees its cache and retries once, so a single failure may be absorbed. */
        if (s != REMAT_OK) {
            assert_failed_cleanly(s, n, "replay");
            cr_assert(strstr(remat_last_error(), "line"), "no trace line named: %s",
                      remat_last_error());
        }
        cr_assert_eq(fdev.live, 0, "replay with fault %llu kept %lld segments",
                     (unsigned long long)n, (long long)fdev.live);
    }
    remat_trace_free(t);
    fault_close(dev);
}

Test(faults, replay_on_host_survives_every_allocation_failure)
{
    replay_every_allocation_fails_cleanly("host", NULL);
}

Test(faults, replay_on_sim_without_cache_survives_every_allocation_failure)
{
    remat_pool_config cfg = {.no_cache = 1};
    replay_every_allocation_fails_cleanly("sim:8GiB", &cfg);
}

/* ==== (b) checkpointed executor run ======================================================== */

enum { FT_L = 8, FT_N = 32 };

/* A tiny CPU trainer: stage i computes y = tanh(w_i * x + b_i) elementwise on FT_N floats; the
 * default saved state keeps y and the pre-activation, option "lean" keeps y only. */
typedef struct {
    float w[FT_L], b[FT_L];
} ft_trainer;

static remat_status ft_forward(void *ctx, int i, int option, const void *in, void *out, void *tmp)
{
    (void)tmp;
    const ft_trainer *t = ctx;
    const float *x = in;
    float *y = out;
    for (int j = 0; j < FT_N; j++) {
        float pre = t->w[i] * x[j] + t->b[i];
        y[j] = tanhf(pre);
        if (option == -1)
            y[FT_N + j] = pre;
    }
    return REMAT_OK;
}

static remat_status ft_backward(void *ctx, int i, int option, const void *in, const void *saved,
                                const void *dout, void *din, void *tmp)
{
    (void)tmp;
    (void)in;
    const ft_trainer *t = ctx;
    const float *s = saved, *dy = dout;
    float *dx = din;
    for (int j = 0; j < FT_N; j++) {
        float y = option == -1 ? tanhf(s[FT_N + j]) : s[j];
        dx[j] += dy[j] * (1 - y * y) * t->w[i];
    }
    return REMAT_OK;
}

static remat_status ft_input(void *ctx, void *a0)
{
    (void)ctx;
    for (int j = 0; j < FT_N; j++)
        ((float *)a0)[j] = sinf((float)j);
    return REMAT_OK;
}

static remat_status ft_zero(void *ctx, void *p, size_t bytes)
{
    (void)ctx;
    memset(p, 0, bytes);
    return REMAT_OK;
}

static const remat_callbacks ft_callbacks = {ft_forward, ft_backward, ft_input, NULL,
                                             NULL,       NULL,        ft_zero};

static remat_chain *ft_chain(void)
{
    remat_chain *c = NULL;
    cr_assert_eq(remat_chain_new(FT_L, &c), REMAT_OK);
    c->input_bytes = FT_N * 4;
    for (int i = 0; i < FT_L; i++) {
        remat_stage *s = &c->stages[i];
        *s = (remat_stage){.fwd = 1, .bwd = 2, .out_bytes = FT_N * 4, .saved_bytes = FT_N * 8,
                           .fwd_tmp_bytes = (uint64_t)(i % 2) * 256, .bwd_tmp_bytes = 128};
        snprintf(s->name, sizeof s->name, "s%d", i);
        s->n_options = 1;
        s->options = calloc(1, sizeof *s->options);
        snprintf(s->options[0].name, sizeof s->options[0].name, "lean");
        s->options[0].saved_bytes = FT_N * 4;
        s->options[0].bwd = 2.5;
    }
    return c;
}

static remat_schedule *ft_plan(const remat_chain *c, const char *policy, double fraction)
{
    remat_policy p;
    uint64_t all = 0, min = 0;
    cr_assert_eq(remat_policy_parse(policy, &p), REMAT_OK);
    cr_assert_eq(remat_store_all_peak(c, &all), REMAT_OK);
    cr_assert_eq(remat_min_budget(c, &p, &min), REMAT_OK, "%s", remat_last_error());
    uint64_t budget = (uint64_t)(fraction * (double)all);
    remat_schedule *s = NULL;
    cr_assert_eq(remat_plan(c, &p, budget > min ? budget : min, &s), REMAT_OK, "%s",
                 remat_last_error());
    return s;
}

/* Runs sched once to count device allocations, then fails each in turn, through the wrapper
 * (use_hook 0) or the pool's fault hook (use_hook 1); after each failure the pool must be
 * consistent and empty, and a clean run must still succeed. */
static void run_walk(const char *policy, const remat_pool_config *cfg, int use_hook)
{
    remat_device *dev = fault_open("host");
    remat_chain *c = ft_chain();
    remat_schedule *sched = ft_plan(c, policy, 0.6);
    ft_trainer tr;
    for (int i = 0; i < FT_L; i++) {
        tr.w[i] = 0.8f + 0.05f * (float)i;
        tr.b[i] = 0.01f * (float)i;
    }
    remat_pool *pool = NULL;
    cr_assert_eq(remat_pool_create(dev, cfg, &pool), REMAT_OK);
    fault_arm(0);
    uint64_t hook0 = remat_pool_fault_calls(pool, REMAT_FAULT_DEVICE_ALLOC);
    cr_assert_eq(remat_run(sched, c, pool, NULL, &ft_callbacks, &tr), REMAT_OK, "%s",
                 remat_last_error());
    uint64_t calls = use_hook ? remat_pool_fault_calls(pool, REMAT_FAULT_DEVICE_ALLOC) - hook0
                              : fdev.allocs;
    cr_assert_geq(calls, 1);
    fprintf(stderr, "remat_run %s (%s): failing each of %llu device allocations\n", policy,
                use_hook ? "pool hook" : "device", (unsigned long long)calls);
    for (uint64_t n = 1; n <= calls; n++) {
        cr_assert_eq(remat_pool_empty_cache(pool), REMAT_OK); /* so the n-th call happens again */
        if (use_hook) {
            fault_arm(0);
            cr_assert_eq(remat_pool_fault_at(pool, REMAT_FAULT_DEVICE_ALLOC, n), REMAT_OK);
        } else {
            fault_arm(n);
        }
        remat_status s = remat_run(sched, c, pool, NULL, &ft_callbacks, &tr);
        if (s != REMAT_OK)
            assert_failed_cleanly(s, n, policy);
        cr_assert_eq(remat_pool_fault_at(pool, REMAT_FAULT_DEVICE_ALLOC, 0), REMAT_OK);
        assert_pool_empty_and_ok(pool, policy, n);
    }
    fault_arm(0);
    cr_assert_eq(remat_run(sched, c, pool, NULL, &ft_callbacks, &tr), REMAT_OK,
                 "the pool is unusable after the faults: %s", remat_last_error());
    remat_pool_destroy(pool);
    cr_assert_eq(fdev.live, 0, "%lld segments never returned", (long long)fdev.live);
    remat_schedule_free(sched);
    remat_chain_free(c);
    fault_close(dev);
}

Test(faults, executor_without_cache_survives_every_allocation_failure)
{
    remat_pool_config cfg = {.no_cache = 1};
    run_walk("optimal", &cfg, 0);
    run_walk("sqrt", &cfg, 0);
    run_walk("store-all", &cfg, 0);
}

Test(faults, executor_survives_every_failure_of_the_pool_hook)
{
    remat_pool_config cfg = {.no_cache = 1};
    run_walk("revolve", &cfg, 1);
    run_walk("optimal", NULL, 1);
}

/* ==== (c) a GPT training step on the host ================================================== */

/* One step of the tiny model (create, set parameters, forward-backward under sqrt, AdamW) on a
 * fresh pool of dev; everything is released before return, whatever fails. */
static remat_status gpt_step(remat_device *dev, const remat_pool_config *cfg, float *loss)
{
    enum { B = 2, T = 16 };
    gpt_config gc;
    remat_status s = gpt_preset("tiny", &gc);
    if (s != REMAT_OK)
        return s;
    gpt_param_layout lay;
    gpt_layout_params(&gc, &lay);
    float *params = malloc(lay.total * sizeof *params);
    int inputs[B * T], targets[B * T];
    for (int i = 0; i < B * T; i++) {
        inputs[i] = (i * 7) % gc.vocab;
        targets[i] = (i * 7 + 1) % gc.vocab;
    }
    gpt_init_params(&gc, 1, params);
    remat_pool *pool = NULL;
    gpt_model *m = NULL;
    remat_chain *chain = NULL;
    remat_schedule *sched = NULL;
    remat_policy p;
    gpt_adamw hp = gpt_adamw_defaults();
    uint64_t all = 0;
    if ((s = remat_pool_create(dev, cfg, &pool)) == REMAT_OK &&
        (s = gpt_model_create(dev, pool, &gc, B, T, &m)) == REMAT_OK &&
        (s = gpt_model_set_params(m, params)) == REMAT_OK &&
        (s = gpt_model_chain(m, &chain)) == REMAT_OK &&
        (s = remat_policy_parse("sqrt", &p)) == REMAT_OK &&
        (s = remat_store_all_peak(chain, &all)) == REMAT_OK &&
        (s = remat_plan(chain, &p, all, &sched)) == REMAT_OK &&
        (s = gpt_model_forward_backward(m, sched, chain, inputs, targets, loss)) == REMAT_OK)
        s = gpt_model_update(m, &hp, 1);
    remat_schedule_free(sched);
    remat_chain_free(chain);
    gpt_model_destroy(m);
    if (pool) {
        remat_status chk = remat_pool_check(pool);
        remat_pool_stats st;
        cr_assert_eq(remat_pool_stats_get(pool, &st), REMAT_OK);
        cr_assert_eq(chk, REMAT_OK, "pool inconsistent after the step");
        cr_assert_eq(st.requested.current, 0, "the step left %llu bytes allocated",
                     (unsigned long long)st.requested.current);
        remat_pool_destroy(pool);
    }
    free(params);
    return s;
}

Test(faults, gpt_training_step_survives_every_allocation_failure)
{
    remat_device *dev = fault_open("host");
    remat_pool_config no_cache = {.no_cache = 1};
    const remat_pool_config *cfgs[] = {NULL, &no_cache};
    for (int k = 0; k < 2; k++) {
        float clean = 0, loss = 0;
        fault_arm(0);
        cr_assert_eq(gpt_step(dev, cfgs[k], &clean), REMAT_OK, "%s", remat_last_error());
        cr_assert(isfinite(clean) && clean > 0);
        uint64_t calls = fdev.allocs;
        cr_assert_geq(calls, 1);
        fprintf(stderr, "training step (%s): failing each of %llu device allocations\n",
                    k ? "no cache" : "caching", (unsigned long long)calls);
        for (uint64_t n = 1; n <= calls; n++) {
            fault_arm(n);
            remat_status s = gpt_step(dev, cfgs[k], &loss);
            if (s != REMAT_OK)
                assert_failed_cleanly(s, n, "training step");
            else
                cr_assert_eq(loss, clean, "a retried step changed the loss");
            cr_assert_eq(fdev.live, 0, "fault %llu: %lld segments never returned",
                         (unsigned long long)n, (long long)fdev.live);
        }
    }
    fault_close(dev);
}

/* ==== Short reads: every truncation of a valid file fails cleanly ========================== */

static char *read_whole(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc(*n + 1);
    cr_assert_eq(fread(buf, 1, *n, f), *n);
    buf[*n] = '\0';
    fclose(f);
    return buf;
}

static const char *repo_file(const char *rel)
{
    static char path[4096];
    const char *root = getenv("REMAT_ROOT");
    snprintf(path, sizeof path, "%s/%s", root && *root ? root : ".", rel);
    return path;
}

static void write_prefix(const char *path, const char *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

/* Lengths to try: every one up to 2 KiB, then a spread up to n - 1. */
static size_t next_cut(size_t k, size_t n)
{
    return k < 2048 ? k + 1 : k + 1 + (n - k) / 16;
}

Test(faults, truncated_weights_files_fail_cleanly)
{
    size_t n;
    char *good = read_whole(repo_file("tests/corpus/fuzz_weights/tiny_l1_c8.bin"), &n);
    char tmp[] = "/tmp/remat-short-weights-XXXXXX";
    int fd = mkstemp(tmp);
    cr_assert_geq(fd, 0);
    close(fd);
    gpt_config cfg;
    float *params = NULL;
    write_prefix(tmp, good, n);
    cr_assert_eq(gpt_weights_read(tmp, &cfg, &params), REMAT_OK, "%s", remat_last_error());
    free(params);
    for (size_t k = 0; k < n; k = next_cut(k, n)) {
        write_prefix(tmp, good, k);
        params = NULL;
        remat_clear_error();
        remat_status s = gpt_weights_read(tmp, &cfg, &params);
        cr_assert_eq(s, REMAT_EPARSE, "%zu of %zu bytes: status %d", k, n, (int)s);
        cr_assert(strstr(remat_last_error(), tmp), "message does not name the file: %s",
                  remat_last_error());
        cr_assert_null(params);
    }
    unlink(tmp);
    free(good);
}

Test(faults, truncated_token_files_fail_cleanly)
{
    size_t n;
    char *good = read_whole(repo_file("tests/corpus/fuzz_tokens/llmc_64.bin"), &n);
    char tmp[] = "/tmp/remat-short-tokens-XXXXXX";
    int fd = mkstemp(tmp);
    cr_assert_geq(fd, 0);
    close(fd);
    gpt_tokens t;
    write_prefix(tmp, good, n);
    cr_assert_eq(gpt_tokens_load(tmp, &t), REMAT_OK, "%s", remat_last_error());
    cr_assert_eq(t.n, 64);
    gpt_tokens_free(&t);
    /* Under 4 bytes the magic is incomplete, so the file is plain bytes (vocabulary 256). */
    for (size_t k = 4; k < n; k = next_cut(k, n)) {
        write_prefix(tmp, good, k);
        remat_clear_error();
        remat_status s = gpt_tokens_load(tmp, &t);
        cr_assert_neq(s, REMAT_OK, "%zu of %zu bytes loaded", k, n);
        cr_assert(strstr(remat_last_error(), tmp), "message does not name the file: %s",
                  remat_last_error());
    }
    unlink(tmp);
    free(good);
}

Test(faults, truncated_chain_files_fail_cleanly)
{
    size_t n;
    char *good = read_whole(repo_file("tests/corpus/fuzz_chain/tiny.json"), &n);
    while (n && (good[n - 1] == '\n' || good[n - 1] == ' '))
        n--;
    remat_chain *c = NULL;
    cr_assert_eq(remat_chain_parse(good, n, &c), REMAT_OK, "%s", remat_last_error());
    remat_chain_free(c);
    for (size_t k = 0; k < n; k++) {
        c = NULL;
        remat_clear_error();
        remat_status s = remat_chain_parse(good, k, &c);
        cr_assert_eq(s, REMAT_EPARSE, "%zu of %zu bytes: status %d", k, n, (int)s);
        cr_assert(remat_last_error()[0]);
        cr_assert_null(c);
    }
    free(good);
}

Test(faults, truncated_traces_parse_or_fail_naming_the_line)
{
    size_t n;
    char *good = read_whole(repo_file("tests/bad-inputs/trace_ok.trace"), &n);
    remat_device *dev = NULL;
    cr_assert_eq(remat_device_open("sim:1GiB", &dev), REMAT_OK);
    for (size_t k = 0; k <= n; k++) {
        FILE *f = fmemopen(good, k ? k : 1, "r");
        if (!k)
            fgetc(f); /* an empty stream */
        remat_trace *t = NULL;
        remat_clear_error();
        remat_status s = remat_trace_parse(f, "cut", &t);
        fclose(f);
        if (s == REMAT_OK) {
            remat_replay_result r;
            cr_assert_eq(remat_trace_replay(t, dev, NULL, &r), REMAT_OK, "%s",
                         remat_last_error());
            remat_trace_free(t);
        } else {
            cr_assert_eq(s, REMAT_EPARSE, "%zu bytes: status %d", k, (int)s);
            cr_assert(strstr(remat_last_error(), "cut:"), "no line named: %s",
                      remat_last_error());
            cr_assert_null(t);
        }
    }
    remat_device_close(dev);
    free(good);
}

/* ==== Failed writes leave no partial file ================================================== */

/* 1 if path or a temporary file of it (path.tmp...) exists. */
static int file_or_tmp_exists(const char *path)
{
    char dir[4200], prefix[4200];
    const char *slash = strrchr(path, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
    snprintf(prefix, sizeof prefix, "%s.tmp", slash ? slash + 1 : path);
    int found = access(path, F_OK) == 0;
    DIR *d = opendir(dir);
    for (struct dirent *e; d && !found && (e = readdir(d));)
        found = strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    if (d)
        closedir(d);
    return found;
}

/* Makes writes past `bytes` fail with EFBIG (a full disk, as far as the writer can tell). Each
 * Criterion test runs in its own process, so the limit ends with the test. */
static void limit_file_size(rlim_t bytes)
{
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl;
    cr_assert_eq(getrlimit(RLIMIT_FSIZE, &rl), 0);
    rl.rlim_cur = bytes < rl.rlim_max ? bytes : rl.rlim_max; /* the soft limit only */
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
}

Test(faults, chain_and_weights_writes_that_fail_leave_no_file)
{
    char dir[] = "/tmp/remat-full-XXXXXX", chain_path[128], weights_path[128];
    cr_assert(mkdtemp(dir));
    snprintf(chain_path, sizeof chain_path, "%s/chain.json", dir);
    snprintf(weights_path, sizeof weights_path, "%s/w.bin", dir);
    remat_chain *c = ft_chain();
    size_t n;
    char *good = read_whole(repo_file("tests/corpus/fuzz_weights/tiny_l1_c8.bin"), &n);
    char src[160];
    snprintf(src, sizeof src, "%s/src.bin", dir);
    write_prefix(src, good, n);
    gpt_config cfg;
    float *params = NULL;
    cr_assert_eq(gpt_weights_read(src, &cfg, &params), REMAT_OK, "%s", remat_last_error());
    unlink(src);

    limit_file_size(512);
    cr_assert_eq(remat_chain_save(c, chain_path), REMAT_EIO);
    cr_assert(strstr(remat_last_error(), "chain.json"), "%s", remat_last_error());
    cr_assert_not(file_or_tmp_exists(chain_path), "a partial chain file was left behind");
    cr_assert_neq(gpt_weights_write(weights_path, &cfg, params), REMAT_OK);
    cr_assert(remat_last_error()[0]);
    cr_assert_not(file_or_tmp_exists(weights_path), "a partial weights file was left behind");

    limit_file_size(RLIM_INFINITY);
    cr_assert_eq(remat_chain_save(c, chain_path), REMAT_OK, "%s", remat_last_error());
    remat_chain *back = NULL;
    cr_assert_eq(remat_chain_load(chain_path, &back), REMAT_OK, "%s", remat_last_error());
    cr_assert_eq(back->n_stages, c->n_stages);
    remat_chain_free(back);
    unlink(chain_path);
    rmdir(dir);
    free(params);
    free(good);
    remat_chain_free(c);
}
