/* tests/cli/test_memviz.c: seeing memory: per-tag accounting against a model, trace lines with and
 * without tags, `remat memviz` (its CSV against an independent replay of the trace), `remat train
 * --trace / --profile-memory`, `remat fit --card all`, and bad arguments. */
#include "tests/common/test_rng.h"
#include "remat.h"
#include "tests/common/cli_run.h"

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ==== Helpers ============================================================================== */

static uint64_t rng_state; /* tests/common/test_rng.h draws from it */

static char tmpdir[64];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/remat-memviz-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void remove_tmpdir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", cli_sh_quote(tmpdir));
    cr_assert_eq(system(cmd), 0);
}

static const char *tmp_path(int slot, const char *name)
{
    static char paths[8][128];
    snprintf(paths[slot], sizeof paths[slot], "%s/%s", tmpdir, name);
    return paths[slot];
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && st.st_size > 0;
}

static int have_gnuplot(void)
{
    return system("command -v gnuplot >/dev/null 2>&1") == 0;
}

/* ==== Tag accounting against a model ======================================================== */

#define N_TAGS 5
static const char *tags[N_TAGS] = {NULL, "params", "grads", "act", "work-space.1"};

typedef struct {
    void *ptr;
    size_t bytes;
    int tag;
} live_block;

static void check_tags(remat_pool *pool, const uint64_t *cur, const uint64_t *peak)
{
    for (int t = 0; t < N_TAGS; t++) {
        remat_stat s;
        cr_assert_eq(remat_pool_tag_stats(pool, tags[t], &s), REMAT_OK, "%s", remat_last_error());
        cr_assert_eq(s.current, cur[t], "tag %s: current %llu, model %llu", tags[t] ? tags[t] : "-",
                     (unsigned long long)s.current, (unsigned long long)cur[t]);
        cr_assert_eq(s.peak, peak[t], "tag %s: peak %llu, model %llu", tags[t] ? tags[t] : "-",
                     (unsigned long long)s.peak, (unsigned long long)peak[t]);
    }
}

Test(memviz_tags, per_tag_current_and_peak_match_a_model)
{
    remat_device *dev;
    remat_pool *pool;
    cr_assert_eq(remat_device_open("sim:1GiB", &dev), REMAT_OK, "%s", remat_last_error());
    cr_assert_eq(remat_pool_create(dev, NULL, &pool), REMAT_OK);
    test_rng_seed(&rng_state, 42);
    enum { MAX_LIVE = 64 };
    live_block live[MAX_LIVE];
    int n_live = 0;
    uint64_t cur[N_TAGS] = {0}, peak[N_TAGS] = {0};
    for (int op = 0; op < 3000; op++) {
        if (op == 1500) { /* peaks drop to the current values */
            cr_assert_eq(remat_pool_reset_peaks(pool), REMAT_OK);
            memcpy(peak, cur, sizeof peak);
        }
        if (n_live < MAX_LIVE && (n_live == 0 || test_rng_next(&rng_state) % 100 < 55)) {
            int t = (int)(test_rng_next(&rng_state) % N_TAGS);
            size_t bytes = test_rng_next(&rng_state) % 4 == 0 ? test_rng_next(&rng_state) % (4 << 20) : test_rng_next(&rng_state) % 5000;
            void *p = remat_alloc_tagged(pool, bytes, NULL, tags[t]);
            cr_assert_not_null(p, "%s", remat_last_error());
            live[n_live++] = (live_block){p, bytes, t};
            cur[t] += bytes;
            if (cur[t] > peak[t])
                peak[t] = cur[t];
        } else {
            int k = (int)(test_rng_next(&rng_state) % (uint64_t)n_live);
            remat_free(pool, live[k].ptr);
            cur[live[k].tag] -= live[k].bytes;
            live[k] = live[--n_live];
        }
        check_tags(pool, cur, peak);
    }
    /* Every tag is listed once, "untagged" first. */
    cr_assert_eq(remat_pool_tag_count(pool), N_TAGS);
    char name[64];
    remat_stat s;
    cr_assert_eq(remat_pool_tag_at(pool, 0, name, sizeof name, &s), REMAT_OK);
    cr_assert_str_eq(name, "untagged");
    cr_assert_eq(s.current, cur[0]);
    for (int t = 1; t < N_TAGS; t++) {
        int found = 0;
        for (size_t i = 1; i < remat_pool_tag_count(pool); i++) {
            cr_assert_eq(remat_pool_tag_at(pool, i, name, sizeof name, &s), REMAT_OK);
            if (strcmp(name, tags[t]) == 0) {
                found++;
                cr_assert_eq(s.current, cur[t]);
                cr_assert_eq(s.peak, peak[t]);
            }
        }
        cr_assert_eq(found, 1, "tag %s listed %d times", tags[t], found);
    }
    cr_assert_eq(remat_pool_check(pool), REMAT_OK, "%s", remat_last_error());
    remat_pool_destroy(pool);
    remat_device_close(dev);
}

/* ==== Trace lines =========================================================================== */

static remat_trace *parse_text(const char *text)
{
    FILE *f = fmemopen((void *)text, strlen(text), "r");
    cr_assert_not_null(f);
    remat_trace *t = NULL;
    remat_status s = remat_trace_parse(f, "mem", &t);
    fclose(f);
    cr_assert_eq(s, REMAT_OK, "%s", remat_last_error());
    return t;
}

Test(memviz_trace, old_and_new_lines_load_with_their_tags)
{
    remat_trace *t = parse_text("# remat-trace 1\n"
                                "a 7 1000\n"       /* oldest: no stream, no tag */
                                "a 8 2000 3\n"     /* a stream, no tag */
                                "a 9 3000 0 act\n" /* stream and tag */
                                "f 8\n"
                                "a 8 512 1 params\n" /* an id may come back once freed */
                                "f 7\nf 9\nf 8\n");
    cr_assert_eq(remat_trace_events(t), 8);
    remat_trace_event e;
    struct {
        char op;
        size_t index;
        uint64_t bytes;
        uint32_t stream;
        const char *tag;
    } want[] = {{'a', 0, 1000, 0, NULL}, {'a', 1, 2000, 3, NULL},    {'a', 2, 3000, 0, "act"},
                {'f', 1, 0, 0, NULL},    {'a', 3, 512, 1, "params"}, {'f', 0, 0, 0, NULL},
                {'f', 2, 0, 0, NULL},    {'f', 3, 0, 0, NULL}};
    for (size_t i = 0; i < 8; i++) {
        cr_assert_eq(remat_trace_event_at(t, i, &e), REMAT_OK, "%s", remat_last_error());
        cr_assert_eq(e.op, want[i].op, "event %zu", i);
        cr_assert_eq(e.alloc_index, want[i].index, "event %zu", i);
        cr_assert_eq(e.bytes, want[i].bytes, "event %zu", i);
        cr_assert_eq(e.stream, want[i].stream, "event %zu", i);
        if (want[i].tag)
            cr_assert_str_eq(e.tag, want[i].tag, "event %zu", i);
        else
            cr_assert_null(e.tag, "event %zu", i);
    }
    cr_assert_neq(remat_trace_event_at(t, 8, &e), REMAT_OK);
    cr_assert_neq(remat_trace_event_at(NULL, 0, &e), REMAT_OK);
    remat_trace_free(t);
}

Test(memviz_trace, a_recorded_trace_reads_back_with_its_tags)
{
    remat_device *dev;
    remat_pool *pool;
    cr_assert_eq(remat_device_open("sim:1GiB", &dev), REMAT_OK);
    cr_assert_eq(remat_pool_create(dev, NULL, &pool), REMAT_OK);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_eq(remat_pool_trace_begin(pool, f), REMAT_OK);
    void *p = remat_alloc_tagged(pool, 4096, NULL, "params");
    void *q = remat_alloc(pool, 100, NULL);
    void *r = remat_alloc_tagged(pool, 70000, NULL, "act");
    remat_free(pool, q);
    remat_free(pool, r);
    cr_assert_eq(remat_pool_trace_end(pool), REMAT_OK);
    fclose(f);
    remat_trace *t = parse_text(buf);
    cr_assert_eq(remat_trace_events(t), 5);
    const char *want_tag[3] = {"params", NULL, "act"};
    uint64_t want_bytes[3] = {4096, 100, 70000};
    for (size_t i = 0; i < 3; i++) {
        remat_trace_event e;
        cr_assert_eq(remat_trace_event_at(t, i, &e), REMAT_OK);
        cr_assert_eq(e.op, 'a');
        cr_assert_eq(e.bytes, want_bytes[i]);
        if (want_tag[i])
            cr_assert_str_eq(e.tag, want_tag[i], "%s", buf);
        else
            cr_assert(!e.tag || strcmp(e.tag, "untagged") == 0, "%s", buf);
    }
    remat_trace_free(t);
    free(buf);
    remat_free(pool, p);
    remat_pool_destroy(pool);
    remat_device_close(dev);
}

/* ==== remat memviz ========================================================================== */

#define TRACE_TAGS 4
static const char *trace_tags[TRACE_TAGS] = {"params", "act", "optim", NULL};

/* Writes a random trace; per event, the oracle's bytes live per tag (requested bytes) go to
 * want[(event + 1) * TRACE_TAGS + t] (row 0: nothing live). Returns the number of events. */
static size_t write_random_trace(const char *path, uint64_t *want, size_t max_events)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "# remat-trace 1\n");
    enum { MAX_LIVE = 40 };
    struct trace_live {
        uint64_t id, bytes;
        int tag;
    } live[MAX_LIVE];
    int n_live = 0;
    uint64_t next_id = 1, cur[TRACE_TAGS] = {0};
    memset(want, 0, TRACE_TAGS * sizeof *want);
    size_t n = 0;
    for (; n < max_events; n++) {
        if (n_live < MAX_LIVE && (n_live == 0 || test_rng_next(&rng_state) % 100 < 55)) {
            int t = (int)(test_rng_next(&rng_state) % TRACE_TAGS);
            uint64_t bytes = test_rng_next(&rng_state) % 3 == 0 ? test_rng_next(&rng_state) % (8 << 20) : test_rng_next(&rng_state) % 9000;
            if (trace_tags[t])
                fprintf(f, "a %llu %llu 0 %s\n", (unsigned long long)next_id,
                        (unsigned long long)bytes, trace_tags[t]);
            else /* an old-style line: untagged */
                fprintf(f, "a %llu %llu\n", (unsigned long long)next_id, (unsigned long long)bytes);
            live[n_live++] = (struct trace_live){next_id++, bytes, t};
            cur[t] += bytes;
        } else {
            int k = (int)(test_rng_next(&rng_state) % (uint64_t)n_live);
            fprintf(f, "f %llu\n", (unsigned long long)live[k].id);
            cur[live[k].tag] -= live[k].bytes;
            live[k] = live[--n_live];
        }
        memcpy(want + (n + 1) * TRACE_TAGS, cur, sizeof cur);
    }
    fclose(f);
    return n;
}

/* Reads the CSV: its header names and rows of numbers. Returns the number of rows. */
static size_t read_csv(const char *path, char cols[][64], size_t *n_cols, uint64_t *vals,
                       size_t max_rows)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "no CSV at %s", path);
    static char line[65536];
    cr_assert_not_null(fgets(line, sizeof line, f));
    line[strcspn(line, "\n")] = 0;
    *n_cols = 0;
    for (char *tok = strtok(line, ","); tok; tok = strtok(NULL, ","))
        snprintf(cols[(*n_cols)++], 64, "%s", tok);
    size_t rows = 0;
    while (fgets(line, sizeof line, f)) {
        cr_assert_lt(rows, max_rows);
        char *s = line;
        for (size_t c = 0; c < *n_cols; c++) {
            char *end;
            vals[rows * *n_cols + c] = strtoull(s, &end, 10);
            cr_assert(end != s, "CSV row %zu column %zu: '%s'", rows, c, s);
            s = *end == ',' ? end + 1 : end;
        }
        rows++;
    }
    fclose(f);
    return rows;
}

static int csv_col(char cols[][64], size_t n_cols, const char *name)
{
    for (size_t c = 0; c < n_cols; c++)
        if (strcmp(cols[c], name) == 0)
            return (int)c;
    cr_assert_fail("CSV has no column %s", name);
    return -1;
}

Test(memviz_cli, csv_per_tag_bytes_match_the_trace_and_the_replay)
{
    make_tmpdir();
    enum { EVENTS = 400 };
    static uint64_t want[(EVENTS + 1) * TRACE_TAGS], vals[(EVENTS + 1) * 16];
    for (uint64_t seed = 1; seed <= 3; seed++) {
        rng_state = seed * 1000;
        const char *trace = tmp_path(0, "t.trace"), *png = tmp_path(1, "t.png");
        size_t n = write_random_trace(trace, want, EVENTS);
        cli_result r;
        cli_run(&r, "memviz %s -o %s", trace, png);
        if (have_gnuplot()) {
            cr_assert_eq(r.code, 0, "%s", r.err);
            FILE *f = fopen(png, "rb");
            unsigned char magic[8] = {0};
            cr_assert_not_null(f);
            cr_assert_eq(fread(magic, 1, 8, f), 8);
            fclose(f);
            cr_assert(memcmp(magic, "\x89PNG\r\n\x1a\n", 8) == 0, "not a PNG");
        } else {
            cr_assert_eq(r.code, 1, "%s", r.err);
        }
        char cols[16][64];
        size_t n_cols;
        size_t rows = read_csv(tmp_path(2, "t.csv"), cols, &n_cols, vals, EVENTS + 1);
        cr_assert_eq(rows, n + 1);
        cr_assert_str_eq(cols[0], "event");
        cr_assert_eq(n_cols, 1 + TRACE_TAGS + 2, "%zu columns", n_cols);
        int c_alloc = csv_col(cols, n_cols, "allocated"), c_res = csv_col(cols, n_cols, "reserved");
        uint64_t peak_live = 0, peak_alloc = 0, peak_res = 0;
        for (size_t row = 0; row < rows; row++) {
            const uint64_t *v = vals + row * n_cols;
            cr_assert_eq(v[0], row);
            uint64_t live = 0;
            for (int t = 0; t < TRACE_TAGS; t++) {
                int c = csv_col(cols, n_cols, trace_tags[t] ? trace_tags[t] : "untagged");
                cr_assert_eq(v[c], want[row * TRACE_TAGS + t], "row %zu tag %s", row, cols[c]);
                live += v[c];
            }
            cr_assert_leq(live, v[c_alloc]);
            cr_assert_leq(v[c_alloc], v[c_res]);
            peak_live = live > peak_live ? live : peak_live;
            peak_alloc = v[c_alloc] > peak_alloc ? v[c_alloc] : peak_alloc;
            peak_res = v[c_res] > peak_res ? v[c_res] : peak_res;
        }
        /* The same trace through remat_trace_replay on the same device gives the same peaks. */
        remat_trace *tr;
        remat_device *dev;
        remat_replay_result rep;
        cr_assert_eq(remat_trace_load(trace, &tr), REMAT_OK, "%s", remat_last_error());
        cr_assert_eq(remat_device_open("sim:1TiB", &dev), REMAT_OK);
        cr_assert_eq(remat_trace_replay(tr, dev, NULL, &rep), REMAT_OK, "%s", remat_last_error());
        cr_assert_eq(peak_live, rep.peak_requested);
        cr_assert_eq(peak_alloc, rep.peak_allocated);
        cr_assert_eq(peak_res, rep.peak_reserved);
        remat_device_close(dev);
        remat_trace_free(tr);
    }
    remove_tmpdir();
}

Test(memviz_cli, svg_and_an_explicit_csv)
{
    if (!have_gnuplot())
        cr_skip_test("gnuplot is not installed");
    make_tmpdir();
    test_rng_seed(&rng_state, 7);
    static uint64_t want[(60 + 1) * TRACE_TAGS];
    write_random_trace(tmp_path(0, "t.trace"), want, 60);
    cli_result r;
    cli_run(&r, "memviz %s -o %s --csv %s --title 'a title' --ymax 64MiB", tmp_path(0, "t.trace"),
            tmp_path(1, "t.svg"), tmp_path(2, "numbers.csv"));
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert(file_exists(tmp_path(1, "t.svg")));
    cr_assert(file_exists(tmp_path(2, "numbers.csv")));
    cr_assert(!file_exists(tmp_path(3, "t.csv")));
    cr_assert(strstr(r.out, "peak"), "%s", r.out);
    FILE *f = fopen(tmp_path(1, "t.svg"), "r");
    char head[512] = {0};
    cr_assert_gt(fread(head, 1, sizeof head - 1, f), 0);
    fclose(f);
    cr_assert(strstr(head, "<svg") || strstr(head, "<?xml"), "%s", head);
    remove_tmpdir();
}

Test(memviz_cli, without_gnuplot_the_csv_is_written_and_it_exits_1)
{
    make_tmpdir();
    test_rng_seed(&rng_state, 9);
    static uint64_t want[(30 + 1) * TRACE_TAGS];
    write_random_trace(tmp_path(0, "t.trace"), want, 30);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "REMAT_GNUPLOT=%s/no-such-gnuplot %s memviz %s -o %s 2>%s", tmpdir,
             cli_bin(), tmp_path(0, "t.trace"), tmp_path(1, "t.png"), tmp_path(4, "err"));
    int status = system(cmd);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1, "status %d", status);
    cr_assert(!file_exists(tmp_path(1, "t.png")));
    cr_assert(file_exists(tmp_path(2, "t.csv")));
    FILE *f = fopen(tmp_path(4, "err"), "r");
    char err[512] = {0};
    cr_assert_gt(fread(err, 1, sizeof err - 1, f), 0);
    fclose(f);
    cr_assert(strstr(err, "gnuplot not found"), "%s", err);
    remove_tmpdir();
}

/* Many tags: the CSV keeps every one, the picture draws the 11 largest and one band for the rest.
 */
Test(memviz_cli, many_tags_keep_every_column_and_draw_twelve_bands)
{
    make_tmpdir();
    const char *trace = tmp_path(0, "many.trace");
    FILE *f = fopen(trace, "w");
    for (int t = 0; t < 30; t++) /* tag t29 is the largest, t0 the smallest */
        fprintf(f, "a %d %d 0 t%d\n", t + 1, 4096 * (t + 1), t);
    for (int t = 0; t < 30; t++)
        fprintf(f, "f %d\n", t + 1);
    fclose(f);
    cli_result r;
    cli_run(&r, "memviz %s -o %s", trace, tmp_path(1, "many.png"));
    cr_assert_eq(r.code, have_gnuplot() ? 0 : 1, "%s", r.err);
    char cols[40][64];
    size_t n_cols;
    static uint64_t vals[61 * 40];
    cr_assert_eq(read_csv(tmp_path(2, "many.csv"), cols, &n_cols, vals, 61), 61);
    cr_assert_eq(n_cols, 1 + 30 + 2);
    for (int t = 0; t < 30; t++) { /* at event 30 (row 30) every tag holds its bytes */
        char name[16];
        snprintf(name, sizeof name, "t%d", t);
        cr_assert_eq(vals[30 * n_cols + (size_t)csv_col(cols, n_cols, name)],
                     4096u * (unsigned)(t + 1));
    }
    if (have_gnuplot()) {
        cr_assert(strstr(r.out, "19 other tags"), "%s", r.out);
        cr_assert(strstr(r.out, "t29 "), "%s", r.out);
        cr_assert_null(strstr(r.out, "t18 "), "%s", r.out);
    }
    remove_tmpdir();
}

Test(memviz_cli, bad_arguments_exit_2)
{
    make_tmpdir();
    const char *trace = tmp_path(0, "t.trace");
    FILE *f = fopen(trace, "w");
    fprintf(f, "a 1 100 0 act\nf 1\n");
    fclose(f);
    const char *bad = tmp_path(1, "bad.trace");
    f = fopen(bad, "w");
    fprintf(f, "a 1 100\nf 2\n");
    fclose(f);
    /* @T = a good trace, @B = a malformed one, @D = the temporary directory. */
    const char *cases[] = {"memviz",
                           "memviz @T",
                           "memviz -o @D/x.png",
                           "memviz @T -o @D/x.jpg",
                           "memviz @T @T -o @D/x.png",
                           "memviz @T -o @D/x.png --ymax lots",
                           "memviz @T -o @D/x.png --bogus",
                           "memviz @T -o @D/x.png --device",
                           "memviz @D/missing.trace -o @D/x.png",
                           "memviz @B -o @D/x.png",
                           "memviz @T -o @D/x.png --device nowhere:0",
                           "memviz @T -o @D/x.png --csv @D/x.png"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[512];
        size_t len = 0;
        for (const char *c = cases[i]; *c && len < sizeof args - 128; c++) {
            if (c[0] == '@' && (c[1] == 'T' || c[1] == 'B' || c[1] == 'D')) {
                const char *sub = c[1] == 'T' ? trace : c[1] == 'B' ? bad : tmpdir;
                len += (size_t)snprintf(args + len, sizeof args - len, "%s", sub);
                c++;
            } else
                args[len++] = *c;
        }
        args[len] = 0;
        cli_result r;
        cli_run(&r, "%s", args);
        cr_assert_eq(r.code, 2, "'%s' exited %d: %s", args, r.code, r.err);
        cr_assert_gt(strlen(r.err), 0, "'%s' said nothing", args);
        cr_assert(!file_exists(tmp_path(3, "x.png")), "'%s' drew a picture", args);
    }
    remove_tmpdir();
}

/* ==== remat train --trace / --profile-memory ================================================= */

static const char *train_args = "train --model tiny --steps 2 --batch 2 --device host --analytic";

Test(memviz_train, trace_records_every_tag_and_loads)
{
    make_tmpdir();
    const char *trace = tmp_path(0, "run.trace");
    cli_result r;
    cli_run(&r, "%s --policy optimal --budget 50%% --trace %s", train_args, trace);
    cr_assert_eq(r.code, 0, "%s", r.err);
    char ls[256];
    snprintf(ls, sizeof ls, "ls %s | grep -q '^run\\.trace\\.tmp'", cli_sh_quote(tmpdir));
    cr_assert_neq(system(ls), 0, "a temporary trace was left behind");
    remat_trace *t;
    cr_assert_eq(remat_trace_load(trace, &t), REMAT_OK, "%s", remat_last_error());
    const char *need[] = {"params", "grads", "optim", "act"};
    int seen[4] = {0}, untagged = 0;
    size_t allocs = 0, frees = 0;
    for (size_t i = 0; i < remat_trace_events(t); i++) {
        remat_trace_event e;
        cr_assert_eq(remat_trace_event_at(t, i, &e), REMAT_OK);
        if (e.op == 'f') {
            frees++;
            continue;
        }
        allocs++;
        untagged += !e.tag;
        for (int k = 0; k < 4; k++)
            seen[k] += e.tag && strcmp(e.tag, need[k]) == 0;
    }
    for (int k = 0; k < 4; k++)
        cr_assert_gt(seen[k], 0, "no %s allocation in the trace", need[k]);
    cr_assert_eq(untagged, 0, "%d untagged allocations", untagged);
    cr_assert_eq(allocs, frees, "the run frees everything it allocates (%zu vs %zu)", allocs,
                 frees);
    remat_trace_free(t);
    /* An unwritable trace path is bad input, and no run happens. */
    cli_run(&r, "%s --trace %s/no/such/dir/x.trace", train_args, tmpdir);
    cr_assert_eq(r.code, 2, "%s", r.err);
    remove_tmpdir();
}

Test(memviz_train, profile_memory_json_has_every_stage_and_tag)
{
    cli_result r;
    cli_run(&r, "%s --policy optimal --budget 50%% --json --profile-memory", train_args);
    cr_assert_eq(r.code, 0, "%s", r.err);
    const char *line = strstr(r.out, "{\"memory_profile\"");
    cr_assert_not_null(line, "%s", r.out);
    cJSON *j = cJSON_Parse(line);
    cr_assert_not_null(j, "%s", line);
    cJSON *mp = cJSON_GetObjectItem(j, "memory_profile");
    cJSON *tags_json = cJSON_GetObjectItem(mp, "tags"), *rows = cJSON_GetObjectItem(mp, "rows");
    const char *need_tags[] = {"params", "grads", "optim", "act"};
    for (int k = 0; k < 4; k++) {
        int found = 0;
        cJSON *t;
        cJSON_ArrayForEach(t, tags_json) found += strcmp(t->valuestring, need_tags[k]) == 0;
        cr_assert_eq(found, 1, "tag %s", need_tags[k]);
    }
    /* tiny has 2 layers: embed, block0, block1, head; forward and backward of each. */
    const char *stages[] = {"embed", "block0", "block1", "head"};
    cr_assert_eq(cJSON_GetArraySize(rows), 8);
    uint64_t prev_peak = UINT64_MAX, act_max = 0;
    for (int s = 0; s < 4; s++)
        for (int pass = 0; pass < 2; pass++) {
            int found = 0;
            cJSON *row;
            cJSON_ArrayForEach(row, rows)
            {
                if (strcmp(cJSON_GetObjectItem(row, "stage")->valuestring, stages[s]) != 0 ||
                    strcmp(cJSON_GetObjectItem(row, "pass")->valuestring,
                           pass ? "backward" : "forward") != 0)
                    continue;
                found++;
                cr_assert_geq(cJSON_GetObjectItem(row, "calls")->valuedouble, 2); /* 2 steps */
                cr_assert_gt(cJSON_GetObjectItem(row, "alloc_bytes")->valuedouble, 0);
                cJSON *peaks = cJSON_GetObjectItem(row, "peak_bytes");
                cr_assert_gt(cJSON_GetObjectItem(peaks, "params")->valuedouble, 0);
                double act = cJSON_GetObjectItem(peaks, "act")->valuedouble;
                act_max = act > (double)act_max ? (uint64_t)act : act_max;
            }
            cr_assert_eq(found, 1, "%s %s", stages[s], pass ? "backward" : "forward");
        }
    cJSON *row;
    cJSON_ArrayForEach(row, rows)
    { /* sorted by the bytes live, most first */
        uint64_t peak = (uint64_t)cJSON_GetObjectItem(row, "total_peak_bytes")->valuedouble;
        cr_assert_leq(peak, prev_peak);
        prev_peak = peak;
    }
    /* The activation peak seen by the profile is the plan's, which the summary reports. */
    cJSON *sum = cJSON_Parse(strstr(r.out, "{\"summary\""));
    cr_assert_not_null(sum);
    cr_assert_eq(act_max,
                 (uint64_t)cJSON_GetObjectItem(sum, "measured_act_peak_bytes")->valuedouble);
    cJSON_Delete(sum);
    cJSON_Delete(j);
}

Test(memviz_train, profile_memory_text_table)
{
    cli_result r;
    cli_run(&r, "%s --profile-memory", train_args);
    cr_assert_eq(r.code, 0, "%s", r.err);
    const char *table = strstr(r.out, "memory profile");
    cr_assert_not_null(table, "%s", r.out);
    const char *words[] = {"stage",  "calls", "time ms", "alloc",    "params",
                           "grads",  "optim", "act",     "embed",    "block0",
                           "block1", "head",  "forward", "backward", "total"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        cr_assert(strstr(table, words[i]), "no '%s' in:\n%s", words[i], table);
}

Test(memviz_train, profiling_does_not_change_training)
{
    static cli_result plain, prof;
    cli_run(&plain, "%s --policy optimal --budget 50%% --json", train_args);
    cli_run(&prof, "%s --policy optimal --budget 50%% --json --profile-memory", train_args);
    cr_assert_eq(plain.code, 0, "%s", plain.err);
    cr_assert_eq(prof.code, 0, "%s", prof.err);
    const char *a = strstr(plain.out, "\"final_loss\""), *b = strstr(prof.out, "\"final_loss\"");
    cr_assert(a && b);
    cr_assert_eq(strncmp(a, b, 30), 0, "%.30s vs %.30s", a, b);
    cr_assert_null(strstr(plain.out, "memory_profile"));
}

/* ==== remat fit --card all ================================================================== */

Test(memviz_fit, card_all_lists_every_preset_trained_and_served)
{
    const char *modes[] = {"", "--inference"};
    for (int m = 0; m < 2; m++) {
        cli_result r;
        cli_run(&r, "fit --model gpt2-124m --card all %s", modes[m]);
        cr_assert_eq(r.code, 0, "%s", r.err);
        for (size_t i = 0; i < remat_card_count(); i++) {
            char want[64];
            snprintf(want, sizeof want, "\n%s ", remat_card_at(i)->name);
            cr_assert(strstr(r.out, want), "%s missing from:\n%s", remat_card_at(i)->name, r.out);
        }
        cli_run(&r, "fit --model gpt2-124m --card all --json %s", modes[m]);
        cr_assert_eq(r.code, 0, "%s", r.err);
        cJSON *j = cJSON_Parse(r.out);
        cr_assert_not_null(j, "%s", r.out);
        cr_assert_eq((size_t)cJSON_GetArraySize(j), remat_card_count());
        cJSON *row;
        cJSON_ArrayForEach(row, j)
        {
            if (m == 1)
                continue;
            /* Training: optimal is answered on every card, and never below full recompute
             * (whose schedule is one of those it chooses among). */
            cJSON *mb = cJSON_GetObjectItem(row, "max_batch");
            cJSON *opt = cJSON_GetObjectItem(mb, "optimal");
            cJSON *full = cJSON_GetObjectItem(mb, "full-recompute");
            cr_assert(cJSON_IsNumber(opt), "optimal unanswered on %s",
                      cJSON_GetObjectItem(cJSON_GetObjectItem(row, "card"), "name")->valuestring);
            cr_assert_geq(opt->valuedouble, full->valuedouble);
        }
        cJSON_Delete(j);
    }
}
