/* tests/cli/test_bad_inputs.c: runs every case of tests/bad-inputs/cases.txt through the CLI and checks
 * the exit code, that stderr names the problem, that nothing crashed or tripped a sanitizer, and
 * that no partial output file was left behind; also that every file of the corpus is used. */
#include "alloc/pool.h"
#include "tests/common/cli_run.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { BAD_MAX_CASES = 256, BAD_LINE = 1024 };

/* One line of diagnosis on stderr (Criterion's own cr_log leaks under LeakSanitizer). */
#define bad_log(...) (fprintf(stderr, __VA_ARGS__), fputc('\n', stderr))

typedef struct {
    int line, code;
    char fragment[256], args[BAD_LINE];
} bad_case;

static char bad_dir[4096];

/* Parses cases.txt into cases; returns how many. */
static int bad_read_cases(bad_case *cases)
{
    snprintf(bad_dir, sizeof bad_dir, "%s/tests/bad-inputs", cli_root());
    char path[4200], line[BAD_LINE];
    snprintf(path, sizeof path, "%s/cases.txt", bad_dir);
    FILE *f = fopen(path, "r");
    cr_assert(f, "cannot open %s", path);
    int n = 0, lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        line[strcspn(line, "\n")] = '\0';
        if (!line[0] || line[0] == '#')
            continue;
        char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
        cr_assert(t1 && t2, "cases.txt:%d: expected three TAB-separated fields", lineno);
        cr_assert_lt(n, BAD_MAX_CASES);
        *t1 = *t2 = '\0';
        bad_case *c = &cases[n++];
        c->line = lineno;
        c->code = atoi(line);
        snprintf(c->fragment, sizeof c->fragment, "%s", t1 + 1);
        snprintf(c->args, sizeof c->args, "%s", t2 + 1);
    }
    fclose(f);
    return n;
}

/* Expands @TMP to tmp and @NAME to the quoted path of the corpus file NAME. */
static void bad_expand(const char *args, const char *tmp, char *out, size_t n)
{
    size_t o = 0;
    for (const char *p = args; *p && o + 1 < n;) {
        if (*p != '@') {
            out[o++] = *p++;
            continue;
        }
        p++;
        size_t len = strcspn(p, " \t/");
        if (len == 3 && !strncmp(p, "TMP", 3))
            o += (size_t)snprintf(out + o, n - o, "%s", cli_sh_quote(tmp));
        else {
            char path[4400];
            snprintf(path, sizeof path, "%s/%.*s", bad_dir, (int)len, p);
            o += (size_t)snprintf(out + o, n - o, "%s", cli_sh_quote(path));
        }
        p += len;
    }
    out[o < n ? o : n - 1] = '\0';
}

/* Number of entries in dir besides . and .. */
static int bad_dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

static int bad_run_case(const bad_case *c, cli_result *r)
{
    char tmp[] = "/tmp/remat-bad-XXXXXX", args[4 * BAD_LINE];
    cr_assert(mkdtemp(tmp));
    bad_expand(c->args, tmp, args, sizeof args);
    cli_run(r, "%s", args);
    int ok = 1;
    if (r->code != c->code) {
        bad_log("cases.txt:%d: remat %s: exit %d, expected %d; stderr: %s", c->line, args,
                     r->code, c->code, r->err);
        ok = 0;
    } else if (!strstr(r->err, c->fragment)) {
        bad_log("cases.txt:%d: remat %s: stderr lacks '%s': %s", c->line, args, c->fragment,
                     r->err);
        ok = 0;
    }
    if (strstr(r->err, "Sanitizer") || strstr(r->err, "runtime error")) {
        bad_log("cases.txt:%d: remat %s: sanitizer report: %s", c->line, args, r->err);
        ok = 0;
    }
    int left = bad_dir_entries(tmp);
    if (left != 0) {
        bad_log("cases.txt:%d: remat %s left %d file(s) behind", c->line, args, left);
        ok = 0;
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", cli_sh_quote(tmp));
        cr_assert_eq(system(cmd), 0);
    } else {
        rmdir(tmp);
    }
    return ok;
}

Test(bad_inputs, every_case_fails_cleanly_with_its_code_and_message, .timeout = 600)
{
    static bad_case cases[BAD_MAX_CASES];
    static cli_result r;
    int n = bad_read_cases(cases), failed = 0;
    cr_assert_geq(n, 40, "cases.txt lists only %d cases", n);
    for (int i = 0; i < n; i++)
        failed += !bad_run_case(&cases[i], &r);
    cr_assert_eq(failed, 0, "%d of %d bad-input cases failed (see the log above)", failed, n);
}

Test(bad_inputs, every_corpus_file_has_a_case)
{
    static bad_case cases[BAD_MAX_CASES];
    int n = bad_read_cases(cases), unused = 0;
    DIR *d = opendir(bad_dir);
    cr_assert(d);
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.' || !strcmp(e->d_name, "cases.txt"))
            continue;
        char needle[300];
        snprintf(needle, sizeof needle, "@%s", e->d_name);
        int used = 0;
        for (int i = 0; i < n && !used; i++) {
            const char *p = strstr(cases[i].args, needle);
            used = p && (p[strlen(needle)] == '\0' || p[strlen(needle)] == ' ');
        }
        if (!used) {
            bad_log("tests/bad-inputs/%s is in no case of cases.txt", e->d_name);
            unused++;
        }
    }
    closedir(d);
    cr_assert_eq(unused, 0);
}

/* ==== Inputs that steer a hash ================================================================ */

/* The 64-bit mixer the maps used before they were seeded (x ^= x >> 33; x *= K; x ^= x >> 33), and
 * its inverse: a hostile trace picks ids whose mixed values share their low 20 bits. */
#define BAD_MIX_K 0xff51afd7ed558ccdull

static uint64_t bad_unmix(uint64_t y)
{
    uint64_t inv = BAD_MIX_K; /* Newton's iteration for K^-1 mod 2^64 (K is odd) */
    for (int i = 0; i < 6; i++)
        inv *= 2 - BAD_MIX_K * inv;
    y ^= y >> 33;
    y *= inv;
    return y ^ (y >> 33);
}

/* Longest run of occupied slots: with keys spread over a table at most half full it stays short;
 * keys that all hash to one slot make one run of all of them, and every probe walks it. */
static size_t bad_longest_run(const pool_map *m)
{
    size_t best = 0, run = 0;
    for (size_t i = 0; i < 2 * m->cap; i++) {
        run = m->keys[i & (m->cap - 1)] ? run + 1 : 0;
        best = run > best ? run : best;
    }
    return best;
}

Test(hostile_hash, ids_chosen_to_collide_spread_over_the_map)
{
    enum { N = 50000 };
    pool_map m = {0};
    cr_assert_eq(pool_map_init(&m), REMAT_OK);
    for (uint64_t k = 1; k <= N; k++)
        cr_assert_eq(pool_map_put(&m, bad_unmix(k << 20), (void *)(uintptr_t)k), REMAT_OK);
    size_t run = bad_longest_run(&m);
    cr_expect_lt(run, 200, "%d crafted keys form a probe run of %zu slots", N, run);
    for (uint64_t k = 1; k <= N; k++)
        cr_assert_eq((uintptr_t)pool_map_get(&m, bad_unmix(k << 20)), k);
    pool_map_destroy(&m);
}

static const char *bad_name_at(const void *names, size_t i)
{
    return ((const char(*)[16])names)[i];
}

Test(hostile_hash, name_index_finds_each_of_many_names)
{
    enum { N = 50000 };
    static char names[N][16];
    pool_map idx = {0}; /* a zeroed index is valid: allocated on the first add */
    for (size_t i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "t%zu", i);
        cr_assert_eq(pool_names_find(&idx, names[i], bad_name_at, names, i), i, "%s", names[i]);
        cr_assert_eq(pool_names_add(&idx, names[i], i), REMAT_OK);
    }
    for (size_t i = 0; i < N; i++)
        cr_assert_eq(pool_names_find(&idx, names[i], bad_name_at, names, N), i, "%s", names[i]);
    cr_expect_eq(pool_names_find(&idx, "t50000", bad_name_at, names, N), (size_t)N);
    cr_expect_lt(bad_longest_run(&idx), 200);
    pool_map_destroy(&idx);
}

/* Writes a trace of n allocations whose ids collide under the old mixer, all live at once, or of n
 * distinct tags; returns its path. */
static const char *bad_hostile_trace(const char *dir, const char *kind, int n)
{
    static char path[4200];
    snprintf(path, sizeof path, "%s/%s.trace", dir, kind);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    for (int k = 1; k <= n; k++) {
        if (kind[0] == 'i')
            fprintf(f, "a %llu 512\n", (unsigned long long)bad_unmix((uint64_t)k << 20) - 1);
        else
            fprintf(f, "a %d 512 0 t%d\nf %d\n", k, k, k);
    }
    for (int k = 1; kind[0] == 'i' && k <= n; k++)
        fprintf(f, "f %llu\n", (unsigned long long)bad_unmix((uint64_t)k << 20) - 1);
    cr_assert_eq(fclose(f), 0);
    return path;
}

/* Not a benchmark: a guard against quadratic replays. Before the hash was seeded and the tag
 * tables indexed, these two traces took 19 s and 35 s; now well under a second each. */
Test(hostile_hash, replay_of_colliding_ids_and_many_tags_finishes, .timeout = 30)
{
    char dir[] = "/tmp/remat-hostile-XXXXXX";
    cr_assert(mkdtemp(dir));
    static cli_result r;
    const char *kinds[] = {"ids", "tags"};
    for (int i = 0; i < 2; i++) {
        const char *path = bad_hostile_trace(dir, kinds[i], 100000);
        cli_run(&r, "replay %s --json", cli_sh_quote(path));
        cr_expect_eq(r.code, 0, "%s: %s", kinds[i], r.err);
        cr_expect(strstr(r.out, "\"events\": 200000"), "%s: %s", kinds[i], r.out);
        remove(path);
    }
    rmdir(dir);
}
