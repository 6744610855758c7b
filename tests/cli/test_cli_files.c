/* tests/cli/test_cli_files.c: what the CLI may do with names and files: no user text runs as gnuplot
 * code (memviz and curve, with a real gnuplot), control characters are shown escaped, a failed
 * write (gnuplot's picture, stdout) is a failure, only regular files are replaced (symlinks are
 * written through), temporary files are unique and removed on SIGTERM, and no run writes over
 * its own inputs or checks its outputs only after the work. */
#include "remat.h"
#include "tests/common/cli_run.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ==== Helpers ============================================================================== */

static char dir[64];

static void make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/remat-files-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", cli_sh_quote(dir));
    cr_assert_eq(system(cmd), 0);
}

/* dir/name in one of a few rotating buffers. */
static const char *in_dir(const char *name)
{
    static char paths[8][1024];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, sizeof paths[0], "%.60s/%.900s", dir, name);
    return p;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot create %s", path);
    fputs(text, f);
    fclose(f);
}

static size_t read_file(const char *path, char *buf, size_t n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    size_t got = fread(buf, 1, n - 1, f);
    fclose(f);
    buf[got] = '\0';
    return got;
}

static int is_png(const char *path)
{
    char head[16] = {0};
    return read_file(path, head, sizeof head) >= 8 && memcmp(head, "\x89PNG\r\n\x1a\n", 8) == 0;
}

static int have_gnuplot(void)
{
    return system("command -v gnuplot >/dev/null 2>&1") == 0;
}

/* Names in dir other than the ones a run was asked to write (temporary leftovers, PWNED). */
static int count_entries(const char *prefix)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
            n++;
    closedir(d);
    return n;
}

static const char *trace_text = "a 1 1048576 0 params\na 2 4096 0 act\nf 2\na 3 65536 0 act\n"
                                "f 3\nf 1\n";

/* Runs `$REMAT_BIN args` through sh with stdout going where `redirect` says; the exit code. */
static int run_sh(const char *args, const char *redirect, char *err, size_t n)
{
    char cmd[8192];
    const char *errf = in_dir("stderr.txt");
    snprintf(cmd, sizeof cmd, "%s %s %s 2>%s </dev/null", cli_sh_quote(cli_bin()), args, redirect,
             cli_sh_quote(errf));
    int st = system(cmd);
    if (err)
        read_file(errf, err, n);
    unlink(errf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ==== No command runs from data ============================================================ */

/* File names and titles that, pasted into a gnuplot script, would run `touch PWNED...` (in the
 * directory the command runs in). */
static const char *hostile_names[] = {
    "x\";system(\"touch PWNED1\");print \"y",
    "x';system('touch PWNED2');print 'y",
    "x`touch PWNED3`y",
    "x\nsystem(\"touch PWNED4\")\n",
    "x'\nsystem('touch PWNED5')\n'",
    "$(touch PWNED6);`touch PWNED7`",
    "x@y ${HOME} \\' \\\" ;set output 'PWNED8'",
};

/* Runs `remat args` inside dir (so a relative PWNED lands there); the exit code, stderr in err. */
static int run_in_dir(const char *args, char *err, size_t n)
{
    char bin[4096], cmd[8192];
    cr_assert_not_null(realpath(cli_bin(), bin));
    snprintf(cmd, sizeof cmd, "cd %s && %s %s >out.txt 2>err.txt </dev/null", cli_sh_quote(dir),
             cli_sh_quote(bin), args);
    int st = system(cmd);
    read_file(in_dir("err.txt"), err, n);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(files_gnuplot, memviz_hostile_trace_names_and_titles_run_nothing)
{
    if (!have_gnuplot())
        cr_skip_test("gnuplot is not installed");
    make_dir();
    for (size_t i = 0; i < sizeof hostile_names / sizeof hostile_names[0]; i++) {
        char trace[1024], args[4096], err[4096];
        snprintf(trace, sizeof trace, "%.500s.trace", hostile_names[i]);
        write_file(in_dir(trace), trace_text);
        snprintf(args, sizeof args, "memviz %s -o t.png", cli_sh_quote(trace));
        int code = run_in_dir(args, err, sizeof err);
        cr_assert_eq(count_entries("PWNED"), 0, "name %zu ran a command", i);
        cr_assert_eq(code, 0, "name %zu: exit %d: %s", i, code, err);
        cr_assert(is_png(in_dir("t.png")), "name %zu: no PNG", i);
        snprintf(args, sizeof args, "memviz %s -o u.svg --title %s", cli_sh_quote(trace),
                 cli_sh_quote(hostile_names[i]));
        code = run_in_dir(args, err, sizeof err);
        cr_assert_eq(count_entries("PWNED"), 0, "title %zu ran a command", i);
        cr_assert_eq(code, 0, "title %zu: exit %d: %s", i, code, err);
        unlink(in_dir(trace));
    }
    cr_assert_eq(count_entries("PWNED"), 0, "a name ran a command");
    remove_dir();
}

Test(files_gnuplot, curve_hostile_out_dir_run_nothing, .timeout = 300)
{
    if (!have_gnuplot())
        cr_skip_test("gnuplot is not installed");
    make_dir();
    /* run inside dir, so the commands' relative PWNED files would land there */
    char bin[4096], out[] = "o'`touch PWNED1`'$(touch PWNED2)\";system(\"touch PWNED3\");'\n@x";
    cr_assert_not_null(realpath(cli_bin(), bin));
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "cd %s && %s curve --model tiny --batch 1 --seq 8 --device host --policies "
             "store-all,sqrt --steps 1 --reps 1 --out %s >out.txt 2>err.txt",
             cli_sh_quote(dir), cli_sh_quote(bin), cli_sh_quote(out));
    int st = system(cmd);
    char err[4096] = "";
    read_file(in_dir("err.txt"), err, sizeof err);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d: %s", st, err);
    char png[1200];
    snprintf(png, sizeof png, "%s/%s/curve.png", dir, out);
    cr_assert(is_png(png), "no curve.png: %s", err);
    cr_assert_eq(count_entries("PWNED"), 0, "a name ran a command");
    remove_dir();
}

/* ==== Terminal output ====================================================================== */

Test(files_term, control_characters_in_names_are_shown_escaped)
{
    make_dir();
    const char *trace = in_dir("a\x1b]0;title\x07\x1b[2J\rb\x7f.trace");
    write_file(trace, trace_text);
    cli_result r;
    cli_run(&r, "replay %s", cli_sh_quote(trace));
    cr_assert_eq(r.code, 0, "%s", r.err);
    cli_result m;
    cli_run(&m, "replay %s", cli_sh_quote(in_dir("missing\x1b[31m\x07.trace")));
    cr_assert_eq(m.code, 2);
    const cli_result *all[] = {&r, &m};
    for (size_t i = 0; i < 2; i++) {
        const char *texts[] = {all[i]->out, all[i]->err};
        for (size_t k = 0; k < 2; k++)
            for (const unsigned char *c = (const unsigned char *)texts[k]; *c; c++)
                cr_assert(*c >= 0x20 ? *c != 0x7f : *c == '\n' || *c == '\t',
                          "raw control character 0x%02x in %s", *c, k ? "stderr" : "stdout");
    }
    cr_assert(strstr(r.out, "a\\x1b]0;title\\x07\\x1b[2J\\x0db\\x7f.trace"), "%s", r.out);
    cr_assert(strstr(m.err, "missing\\x1b[31m\\x07.trace"), "%s", m.err);
    remove_dir();
}

/* JSON escapes every control character and DEL itself, so the terminal filter never changes it
 * and a saved name reads back the same. */
Test(files_term, json_escapes_control_characters_and_del)
{
    remat_chain *c = NULL;
    cr_assert_eq(remat_chain_new(2, &c), REMAT_OK);
    snprintf(c->name, sizeof c->name, "n\x1b[2J\x07\x7fm\"\\");
    c->input_bytes = 100;
    for (int i = 0; i < 2; i++) {
        snprintf(c->stages[i].name, sizeof c->stages[i].name, "s%d\x7f", i);
        c->stages[i].fwd = 1;
        c->stages[i].bwd = 2;
        c->stages[i].out_bytes = 100;
        c->stages[i].saved_bytes = 200;
    }
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert_eq(remat_chain_write(c, f), REMAT_OK, "%s", remat_last_error());
    fclose(f);
    for (size_t i = 0; i < len; i++)
        cr_assert((unsigned char)text[i] >= 0x20 ? text[i] != 0x7f : text[i] == '\n',
                  "raw 0x%02x in %s", (unsigned char)text[i], text);
    cr_assert(strstr(text, "n\\u001b[2J\\u0007\\u007fm\\\"\\\\"), "%s", text);
    remat_chain *back = NULL;
    cr_assert_eq(remat_chain_parse(text, len, &back), REMAT_OK, "%s", remat_last_error());
    cr_assert_str_eq(back->name, c->name);
    cr_assert_str_eq(back->stages[1].name, "s1\x7f");
    remat_chain_free(back);
    remat_chain_free(c);
    free(text);
}

/* ==== A failed write is a failure ========================================================== */

Test(files_write, stdout_write_errors_exit_1_with_a_message)
{
    if (access("/dev/full", W_OK) != 0)
        cr_skip_test("no /dev/full");
    make_dir();
    const char *chain = in_dir("c.json");
    write_file(chain, "{\"name\": \"c\", \"input_bytes\": 100, \"stages\": ["
                      "{\"name\": \"s\", \"fwd\": 1, \"bwd\": 2, \"out_bytes\": 100, "
                      "\"saved_bytes\": 200, \"fwd_tmp_bytes\": 0, \"bwd_tmp_bytes\": 0}]}");
    write_file(in_dir("t.trace"), trace_text);
    char plan[1200], replay[1200];
    snprintf(plan, sizeof plan, "plan %s --budget 100%% --json", chain);
    snprintf(replay, sizeof replay, "replay %s", in_dir("t.trace"));
    const char *cases[] = {plan,
                           replay,
                           "info",
                           "info --json",
                           "--help",
                           "fit --list",
                           "fit --model gpt2-124m --card a100-80gb",
                           "train --model tiny --steps 1 --batch 1 --seq 8 --device host"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[4096];
        int code = run_sh(cases[i], ">/dev/full", err, sizeof err);
        cr_assert_eq(code, 1, "'%s' > /dev/full exited %d: %s", cases[i], code, err);
        cr_assert(strstr(err, "standard output"), "'%s': %s", cases[i], err);
        cr_assert_eq(run_sh(cases[i], ">/dev/null", NULL, 0), 0, "'%s' fails anyway", cases[i]);
    }
    remove_dir();
}

/* A gnuplot stand-in: reads the script (from its argument or stdin), creates the file named by
 * the script's set output line, writes `what` into it and exits with `code`. */
static const char *fake_gnuplot(const char *name, int code, const char *what)
{
    const char *path = in_dir(name);
    char text[1024];
    snprintf(text, sizeof text,
             "#!/bin/sh\nout=$(sed -n -e \"s/^set output (''\\.'\\(.*\\)')$/\\1/p\" "
             "-e \"s/^set output '\\(.*\\)'$/\\1/p\" \"${1:-/dev/stdin}\")\n"
             "printf '%s' > \"$out\"\nexit %d\n",
             what, code);
    write_file(path, text);
    chmod(path, 0755);
    return path;
}

Test(files_write, a_bad_picture_never_replaces_a_good_one)
{
    make_dir();
    write_file(in_dir("t.trace"), trace_text);
    write_file(in_dir("t.png"), "the old picture");
    struct {
        const char *name, *what;
        int code;
    } fakes[] = {{"empty-ok", "", 0}, {"text-ok", "not a picture", 0}, {"png-fails", "", 3}};
    for (size_t i = 0; i < sizeof fakes / sizeof fakes[0]; i++) {
        char args[2048], err[4096];
        snprintf(args, sizeof args, "memviz %s -o %s", in_dir("t.trace"), in_dir("t.png"));
        char env[1200];
        snprintf(env, sizeof env, "REMAT_GNUPLOT=%s",
                 fake_gnuplot(fakes[i].name, fakes[i].code, fakes[i].what));
        char cmd[4096];
        snprintf(cmd, sizeof cmd, "%s %s %s 2>%s", env, cli_sh_quote(cli_bin()), args,
                 cli_sh_quote(in_dir("err")));
        int st = system(cmd);
        read_file(in_dir("err"), err, sizeof err);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "%s: status %d: %s", fakes[i].name, st,
                  err);
        char now[64];
        read_file(in_dir("t.png"), now, sizeof now);
        cr_assert_str_eq(now, "the old picture", "%s replaced the picture", fakes[i].name);
        cr_assert(strstr(err, "gnuplot"), "%s: %s", fakes[i].name, err);
    }
    cr_assert_eq(count_entries("t.png."), 0, "a temporary file was left");
    remove_dir();
}

/* ==== Only regular files are replaced ====================================================== */

/* Device nodes take the same path as FIFOs (anything but a regular file is refused); no test
 * names a real one such as /dev/null: a broken build run as root would replace it. */
Test(files_kinds, directories_and_fifos_are_refused_before_any_work)
{
    make_dir();
    write_file(in_dir("t.trace"), trace_text);
    mkdir(in_dir("d.png"), 0755);
    cr_assert_eq(mkfifo(in_dir("f.png"), 0644), 0);
    cr_assert_eq(mkfifo(in_dir("f.bin"), 0644), 0);
    mkdir(in_dir("d.bin"), 0755);
    char cases[][1024] = {"", "", "", "", "", "", "", ""};
    const char *train = "train --model tiny --steps 2 --batch 1 --seq 8 --device host";
    snprintf(cases[0], 1024, "memviz %s -o %s", in_dir("t.trace"), in_dir("d.png"));
    snprintf(cases[1], 1024, "memviz %s -o %s", in_dir("t.trace"), in_dir("f.png"));
    snprintf(cases[2], 1024, "memviz %s -o %s --csv %s", in_dir("t.trace"), in_dir("x.png"),
             in_dir("f.bin"));
    snprintf(cases[3], 1024, "%s --save %s", train, in_dir("d.bin"));
    snprintf(cases[4], 1024, "%s --save %s", train, in_dir("f.bin"));
    snprintf(cases[5], 1024, "%s --trace %s", train, in_dir("f.bin"));
    snprintf(cases[6], 1024, "profile --model tiny --batch 1 --seq 8 --device host -o %s",
             in_dir("d.bin"));
    snprintf(cases[7], 1024, "%s --save %s", train, in_dir("no/such/dir/w.bin"));
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cli_result r;
        cli_run(&r, "%s", cases[i]);
        cr_assert_eq(r.code, 2, "'%s' exited %d: %s", cases[i], r.code, r.err);
        cr_assert_null(strstr(r.out, "step"), "'%s' trained first: %s", cases[i], r.out);
        cr_assert(strstr(r.err, "directory") || strstr(r.err, "FIFO") || strstr(r.err, "device") ||
                      strstr(r.err, "does not exist"),
                  "'%s': %s", cases[i], r.err);
    }
    struct stat st;
    cr_assert(stat(in_dir("f.png"), &st) == 0 && S_ISFIFO(st.st_mode));
    cr_assert(stat(in_dir("d.png"), &st) == 0 && S_ISDIR(st.st_mode));
    cr_assert_neq(stat(in_dir("x.png"), &st), 0);
    remove_dir();
}

Test(files_kinds, a_symlink_is_written_through_and_a_dangling_one_refused)
{
    make_dir();
    write_file(in_dir("t.trace"), trace_text);
    write_file(in_dir("real.csv"), "old");
    cr_assert_eq(symlink(in_dir("real.csv"), in_dir("link.csv")), 0);
    cr_assert_eq(symlink(in_dir("nothing.csv"), in_dir("dangling.csv")), 0);
    cli_result r;
    cli_run(&r, "memviz %s -o %s --csv %s", in_dir("t.trace"), in_dir("t.png"), in_dir("link.csv"));
    struct stat st;
    cr_assert(lstat(in_dir("link.csv"), &st) == 0 && S_ISLNK(st.st_mode), "the link was replaced");
    char text[256];
    read_file(in_dir("real.csv"), text, sizeof text);
    cr_assert(strncmp(text, "event,", 6) == 0, "the file behind the link: '%s'", text);
    cli_run(&r, "memviz %s -o %s --csv %s", in_dir("t.trace"), in_dir("t.png"),
            in_dir("dangling.csv"));
    cr_assert_eq(r.code, 2, "%s", r.err);
    cr_assert(strstr(r.err, "symlink"), "%s", r.err);
    cr_assert_neq(stat(in_dir("nothing.csv"), &st), 0);
    remove_dir();
}

/* ==== Temporary files ====================================================================== */

Test(files_tmp, a_file_named_like_the_old_fixed_temporary_is_not_touched)
{
    make_dir();
    write_file(in_dir("t.trace"), trace_text);
    write_file(in_dir("victim"), "precious");
    cr_assert_eq(symlink(in_dir("victim"), in_dir("t.csv.tmp")), 0);
    mkdir(in_dir("c.json.tmp"), 0755);
    cli_result r;
    cli_run(&r, "memviz %s -o %s", in_dir("t.trace"), in_dir("t.png"));
    char text[64];
    read_file(in_dir("victim"), text, sizeof text);
    cr_assert_str_eq(text, "precious", "written through someone else's X.tmp");
    char csv[64];
    cr_assert_gt(read_file(in_dir("t.csv"), csv, sizeof csv), 0, "%s", r.err);
    cli_run(&r, "profile --model tiny --batch 1 --seq 8 --reps 1 --device host -o %s",
            in_dir("c.json"));
    cr_assert_eq(r.code, 0, "a directory c.json.tmp stopped it: %s", r.err);
    remove_dir();
}

Test(files_tmp, sigterm_removes_the_temporary_files, .timeout = 120)
{
    make_dir();
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int null = open("/dev/null", 1);
        dup2(null, 1);
        dup2(null, 2);
        execl(cli_bin(), cli_bin(), "train", "--model", "tiny", "--steps", "100000000", "--batch",
              "1", "--seq", "8", "--device", "host", "--trace", in_dir("t.trace"), (char *)NULL);
        _exit(127);
    }
    int seen = 0;
    for (int i = 0; i < 600 && !seen; i++) { /* up to 60 s for the trace to be opened */
        seen = count_entries("t.trace") > 0;
        if (!seen)
            nanosleep(&(struct timespec){0, 100000000}, NULL);
    }
    cr_assert(seen, "no temporary trace appeared");
    nanosleep(&(struct timespec){0, 300000000}, NULL);
    kill(pid, SIGTERM);
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM, "status %d", st);
    cr_assert_eq(count_entries("t.trace"), 0, "the temporary trace was left behind");
    remove_dir();
}

/* ==== One run never writes over its own inputs ============================================= */

Test(files_same, outputs_equal_to_inputs_or_each_other_exit_2_before_training)
{
    make_dir();
    write_file(in_dir("data.txt"), "some text to train on, some text to train on, again and again");
    cr_assert_eq(link(in_dir("data.txt"), in_dir("hard.txt")), 0);
    write_file(in_dir("t.trace"), trace_text);
    const char *train = "train --model tiny --steps 2 --batch 1 --seq 8 --device host";
    char cases[6][2048];
    snprintf(cases[0], 2048, "%s --data %s --save %s", train, in_dir("data.txt"),
             in_dir("data.txt"));
    snprintf(cases[1], 2048, "%s --data %s --save %s", train, in_dir("data.txt"),
             in_dir("hard.txt"));
    snprintf(cases[2], 2048, "%s --save %s --trace %s/../%s/w.bin", train, in_dir("w.bin"), dir,
             strrchr(dir, '/') + 1);
    snprintf(cases[3], 2048, "%s --data %s --trace %s", train, in_dir("data.txt"),
             in_dir("data.txt"));
    snprintf(cases[4], 2048, "memviz %s -o %s --csv %s", in_dir("t.trace"), in_dir("t.png"),
             in_dir("t.trace"));
    snprintf(cases[5], 2048, "memviz %s -o %s --csv %s/./t.png", in_dir("t.trace"), in_dir("t.png"),
             dir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cli_result r;
        cli_run(&r, "%s", cases[i]);
        cr_assert_eq(r.code, 2, "'%s' exited %d: %s", cases[i], r.code, r.err);
        cr_assert(strstr(r.err, "same file"), "'%s': %s", cases[i], r.err);
        cr_assert_null(strstr(r.out, "step"), "'%s' trained first", cases[i]);
    }
    char text[128];
    read_file(in_dir("data.txt"), text, sizeof text);
    cr_assert(strncmp(text, "some text", 9) == 0, "the data was overwritten");
    read_file(in_dir("t.trace"), text, sizeof text);
    cr_assert(strncmp(text, "a 1 ", 4) == 0, "the trace was overwritten");
    remove_dir();
}
