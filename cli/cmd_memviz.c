/* cli/cmd_memviz.c: `remat memviz`: replays a trace through the pool and draws memory over its
 * events with gnuplot: one stacked band per tag, the peak marked with what was live, the pool's
 * allocated and reserved lines on top; the numbers go to a CSV beside the picture. */
#include "cli/cli.h"
#include "core/core.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MEMVIZ_DEFAULT_DEVICE "sim:1TiB"
#define MEMVIZ_UNTAGGED "untagged"

void cmd_memviz_usage(FILE *f)
{
    fprintf(
        f,
        "usage: remat memviz TRACE -o FILE.png|FILE.svg [--device SPEC] [--csv FILE]\n"
        "                    [--title TEXT] [--ymax SIZE]\n\n"
        "Replays an allocation trace (`remat train --trace`, docs/contracts.md) through the pool\n"
        "and draws the bytes live over the trace's events with gnuplot: one stacked band per\n"
        "tag (params, grads, optim, workspace, act, ...), the pool's allocated and reserved\n"
        "bytes as lines on top, and the peak marked with each tag's bytes at that moment.\n"
        "  -o FILE        the picture: .png (pngcairo) or .svg\n"
        "  --device SPEC  where to replay (default " MEMVIZ_DEFAULT_DEVICE ")\n"
        "  --csv FILE     the numbers (default: FILE with .csv for its extension): event, bytes\n"
        "                 per tag, allocated, reserved; row 0 is before the first event\n"
        "  --title TEXT   the picture's title (default: the trace's name)\n"
        "  --ymax SIZE    top of the y axis, to draw several traces on one scale\n"
        "gnuplot is looked up on PATH (REMAT_GNUPLOT overrides it). Without it the CSV is still\n"
        "written and the command exits 1.\n"
        "Exit codes: 0 ok; 1 the trace does not fit the device, or gnuplot is missing or\n"
        "failed; 2 bad usage or a bad trace.\n");
}

/* ==== Options ============================================================================== */

typedef struct {
    const char *trace, *out, *device, *csv, *title;
    uint64_t ymax;
    int svg;
    char csv_buf[4096];
} memviz_opts;

static int memviz_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && strcmp(s + n - k, suffix) == 0;
}

/* Paths go into a gnuplot script between single quotes. */
static int memviz_check_path(const char *opt, const char *path)
{
    if (strpbrk(path, "'\n\r"))
        return cli_usage_error("memviz", "%s '%s': quotes and newlines are not allowed", opt, path);
    return 0;
}

static int memviz_finish_opts(memviz_opts *o)
{
    if (!o->trace)
        return cli_usage_error("memviz", "missing the TRACE file");
    if (!o->out)
        return cli_usage_error("memviz", "missing -o FILE.png or -o FILE.svg");
    if (!memviz_ends_with(o->out, ".png") && !memviz_ends_with(o->out, ".svg"))
        return cli_usage_error("memviz", "-o %s: the picture must end in .png or .svg", o->out);
    o->svg = memviz_ends_with(o->out, ".svg");
    if (!o->csv) {
        size_t stem = strlen(o->out) - 4;
        if (stem + 5 > sizeof o->csv_buf)
            return cli_usage_error("memviz", "-o: path too long");
        snprintf(o->csv_buf, sizeof o->csv_buf, "%.*s.csv", (int)stem, o->out);
        o->csv = o->csv_buf;
    }
    if (strcmp(o->csv, o->out) == 0)
        return cli_usage_error("memviz", "--csv %s is the picture itself", o->csv);
    if (o->title && strpbrk(o->title, "\"\\\n"))
        return cli_usage_error("memviz",
                               "--title: quotes, backslashes and newlines are not allowed");
    if (memviz_check_path("-o", o->out) || memviz_check_path("--csv", o->csv))
        return EXIT_USAGE;
    return 0;
}

static int memviz_parse(int argc, char **argv, memviz_opts *o)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'}, {"device", required_argument, NULL, 'D'},
        {"csv", required_argument, NULL, 'c'},    {"title", required_argument, NULL, 't'},
        {"ymax", required_argument, NULL, 'y'},   {NULL, 0, NULL, 0}};
    memset(o, 0, sizeof *o);
    o->device = MEMVIZ_DEFAULT_DEVICE;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "+o:", opts, NULL)) != -1 || optind < argc) {
        if (c == -1) { /* a positional argument; options may follow it */
            if (o->trace)
                return cli_usage_error("memviz", "unexpected argument '%s'", argv[optind]);
            o->trace = argv[optind++];
            continue;
        }
        switch (c) {
        case 'o': o->out = optarg; break;
        case 'D': o->device = optarg; break;
        case 'c': o->csv = optarg; break;
        case 't': o->title = optarg; break;
        case 'y':
            if (cli_parse_size("memviz", "--ymax", optarg, &o->ymax))
                return EXIT_USAGE;
            break;
        default:
            return cli_bad_option("memviz", argv);
        }
    }
    return memviz_finish_opts(o);
}

/* ==== Replay =============================================================================== */

typedef struct {
    size_t n_tags;
    char (*tags)[64];  /* in drawing order, bottom band first */
    size_t *alloc_tag; /* per trace allocation: its index into tags */
    size_t n_rows;     /* events + 1 */
    uint64_t *rows;    /* n_rows x (n_tags + 2): bytes per tag, allocated, reserved */
    size_t peak_row;   /* the row with the most bytes live (sum over tags) */
} memviz_data;

static void memviz_data_free(memviz_data *d)
{
    free(d->tags);
    free(d->alloc_tag);
    free(d->rows);
}

/* Known tags stack in this order from the bottom; others follow in order of appearance. */
static int memviz_tag_rank(const char *tag)
{
    static const char *order[] = {"params", "grads", "optim", "workspace", MEMVIZ_UNTAGGED, "act"};
    for (int i = 0; i < (int)(sizeof order / sizeof order[0]); i++)
        if (strcmp(tag, order[i]) == 0)
            return i == 5 ? 1000 : i; /* activations on top, above everything else */
    return 100;
}

static size_t memviz_find_tag(const memviz_data *d, const char *tag)
{
    size_t t = 0;
    while (t < d->n_tags && strcmp(d->tags[t], tag) != 0)
        t++;
    return t;
}

/* Collects the trace's tags in drawing order and each allocation's tag. */
static remat_status memviz_tags(const remat_trace *tr, memviz_data *d)
{
    size_t n = remat_trace_events(tr);
    d->tags = calloc(n + 1, sizeof *d->tags);
    d->alloc_tag = calloc(n + 1, sizeof *d->alloc_tag);
    if (!d->tags || !d->alloc_tag)
        return remat_fail(REMAT_ENOMEM, "memviz: out of host memory");
    for (size_t i = 0; i < n; i++) {
        remat_trace_event e;
        REMAT_TRY(remat_trace_event_at(tr, i, &e));
        const char *tag = e.op == 'a' && e.tag ? e.tag : MEMVIZ_UNTAGGED;
        if (e.op == 'a' && memviz_find_tag(d, tag) == d->n_tags)
            snprintf(d->tags[d->n_tags++], sizeof d->tags[0], "%s", tag);
    }
    for (size_t a = 1; a < d->n_tags; a++) /* insertion sort by rank: stable */
        for (size_t b = a; b > 0 && memviz_tag_rank(d->tags[b - 1]) > memviz_tag_rank(d->tags[b]);
             b--) {
            char tmp[64];
            memcpy(tmp, d->tags[b], sizeof tmp);
            memcpy(d->tags[b], d->tags[b - 1], sizeof tmp);
            memcpy(d->tags[b - 1], tmp, sizeof tmp);
        }
    for (size_t i = 0; i < n; i++) {
        remat_trace_event e;
        REMAT_TRY(remat_trace_event_at(tr, i, &e));
        if (e.op == 'a')
            d->alloc_tag[e.alloc_index] = memviz_find_tag(d, e.tag ? e.tag : MEMVIZ_UNTAGGED);
    }
    return REMAT_OK;
}

/* Writes the pool's state after event `row - 1` (row 0: before the first) into the row. */
static remat_status memviz_sample(const remat_pool *pool, memviz_data *d, size_t row)
{
    uint64_t *r = d->rows + row * (d->n_tags + 2), live = 0;
    for (size_t t = 0; t < d->n_tags; t++) {
        remat_stat st;
        const char *tag = strcmp(d->tags[t], MEMVIZ_UNTAGGED) == 0 ? NULL : d->tags[t];
        REMAT_TRY(remat_pool_tag_stats(pool, tag, &st));
        r[t] = st.current;
        live += st.current;
    }
    remat_pool_stats ps;
    REMAT_TRY(remat_pool_stats_get(pool, &ps));
    r[d->n_tags] = ps.allocated.current;
    r[d->n_tags + 1] = ps.reserved.current;
    const uint64_t *p = d->rows + d->peak_row * (d->n_tags + 2);
    uint64_t peak = 0;
    for (size_t t = 0; t < d->n_tags; t++)
        peak += p[t];
    if (live > peak)
        d->peak_row = row;
    return REMAT_OK;
}

static remat_status memviz_events(const remat_trace *tr, remat_pool *pool, void **ptrs,
                                  memviz_data *d)
{
    REMAT_TRY(memviz_sample(pool, d, 0));
    for (size_t i = 0; i < remat_trace_events(tr); i++) {
        remat_trace_event e;
        REMAT_TRY(remat_trace_event_at(tr, i, &e));
        if (e.op == 'f') {
            remat_free(pool, ptrs[e.alloc_index]);
            ptrs[e.alloc_index] = NULL;
        } else {
            const char *tag = d->tags[d->alloc_tag[e.alloc_index]];
            ptrs[e.alloc_index] =
                remat_alloc_tagged(pool, (size_t)e.bytes, (remat_stream)(uintptr_t)e.stream,
                                   strcmp(tag, MEMVIZ_UNTAGGED) == 0 ? NULL : tag);
            if (!ptrs[e.alloc_index])
                return remat_fail_context(REMAT_ENOMEM, "trace line %llu",
                                          (unsigned long long)e.line);
        }
        REMAT_TRY(memviz_sample(pool, d, i + 1));
    }
    return REMAT_OK;
}

/* Replays the trace on a fresh pool, sampling every tag after every event. */
static remat_status memviz_replay(const remat_trace *tr, remat_device *dev, memviz_data *d)
{
    REMAT_TRY(memviz_tags(tr, d));
    size_t n = remat_trace_events(tr);
    d->n_rows = n + 1;
    d->rows = calloc(d->n_rows * (d->n_tags + 2), sizeof *d->rows);
    void **ptrs = calloc(n + 1, sizeof *ptrs);
    if (!d->rows || !ptrs) {
        free(ptrs);
        return remat_fail(REMAT_ENOMEM, "memviz: out of host memory");
    }
    remat_pool *pool = NULL;
    remat_status s = remat_pool_create(dev, NULL, &pool);
    if (s == REMAT_OK)
        s = memviz_events(tr, pool, ptrs, d);
    for (size_t i = 0; pool && i < n + 1; i++)
        remat_free(pool, ptrs[i]);
    remat_pool_destroy(pool);
    free(ptrs);
    return s;
}

/* ==== Output =============================================================================== */

static int memviz_write_csv(const char *path, const memviz_data *d)
{
    cli_output out;
    if (cli_output_open(&out, path) != REMAT_OK)
        return cli_fail("memviz", REMAT_EIO, "--csv");
    FILE *f = out.f;
    fprintf(f, "event");
    for (size_t t = 0; t < d->n_tags; t++)
        fprintf(f, ",%s", d->tags[t]);
    fprintf(f, ",allocated,reserved\n");
    for (size_t row = 0; row < d->n_rows; row++) {
        fprintf(f, "%zu", row);
        for (size_t k = 0; k < d->n_tags + 2; k++)
            fprintf(f, ",%llu", (unsigned long long)d->rows[row * (d->n_tags + 2) + k]);
        fprintf(f, "\n");
    }
    if (cli_output_close(&out, 1) != REMAT_OK)
        return cli_fail("memviz", REMAT_EIO, "--csv");
    return EXIT_OK;
}

static const char *memviz_color(const char *tag, size_t t)
{
    static const char *known[][2] = {{"params", "#4c72b0"},        {"grads", "#dd8452"},
                                     {"optim", "#55a868"},         {"workspace", "#8172b3"},
                                     {MEMVIZ_UNTAGGED, "#937860"}, {"act", "#c44e52"}};
    static const char *others[] = {"#da8bc3", "#8c8c8c", "#ccb974", "#64b5cd"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(tag, known[i][0]) == 0)
            return known[i][1];
    return others[t % (sizeof others / sizeof others[0])];
}

/* The peak's label: total and each tag's bytes live at that moment. */
static void memviz_peak_label(const memviz_data *d, const uint64_t *p, char *buf, size_t n)
{
    uint64_t live = 0;
    for (size_t t = 0; t < d->n_tags; t++)
        live += p[t];
    char b[32];
    size_t len = (size_t)snprintf(buf, n, "peak %s at event %zu",
                                  remat_format_bytes(live, b, sizeof b), d->peak_row);
    for (size_t t = d->n_tags; t-- > 0 && len < n;)
        if (p[t])
            len += (size_t)snprintf(buf + len, n - len, "\\n%s %s", d->tags[t],
                                    remat_format_bytes(p[t], b, sizeof b));
}

static void memviz_script(FILE *g, const memviz_opts *o, const memviz_data *d, const char *out)
{
    const uint64_t *p = d->rows + d->peak_row * (d->n_tags + 2);
    uint64_t top = o->ymax, live = 0;
    for (size_t row = 0; !o->ymax && row < d->n_rows; row++) {
        uint64_t r = d->rows[row * (d->n_tags + 2) + d->n_tags + 1];
        top = r > top ? r : top;
    }
    for (size_t t = 0; t < d->n_tags; t++)
        live += p[t];
    double unit = top > (8ull << 30) ? 1073741824.0 : 1048576.0;
    char label[2048];
    memviz_peak_label(d, p, label, sizeof label);
    fprintf(g, "set terminal %s size 900,520 font 'sans,10'\n",
            o->svg ? "svg dynamic background rgb 'white'" : "pngcairo");
    fprintf(g, "set output '%s'\nset datafile separator ','\n", out);
    fprintf(g, "set title \"%s\" noenhanced\n", o->title ? o->title : o->trace);
    fprintf(g, "set xlabel 'trace event'\nset ylabel '%s'\n", unit > 1048576.0 ? "GiB" : "MiB");
    fprintf(g, "set xrange [0:%zu]\nset yrange [0:%.6f]\n", d->n_rows - 1,
            (o->ymax ? 1.0 : 1.5) * (double)top / unit);
    fprintf(g, "set key outside right top noenhanced\nset grid ytics\nset style fill solid 1.0 "
               "noborder\n");
    int right = d->peak_row > d->n_rows / 2;
    fprintf(g, "set style textbox opaque noborder\n");
    fprintf(g, "set label 1 '' at %zu,%.6f front point pt 7 ps 1\n", d->peak_row,
            (double)live / unit);
    fprintf(g, "set label 2 \"%s\" at %zu, graph 0.97 %s offset %d,-0.5 front noenhanced boxed\n",
            label, d->peak_row, right ? "right" : "left", right ? -1 : 1);
    fprintf(g, "set arrow 1 from %zu, graph 0 to %zu, graph 1 nohead dt 2 lc rgb 'black' front\n",
            d->peak_row, d->peak_row);
    fprintf(g, "plot \\\n");
    for (size_t t = d->n_tags; t-- > 0;) { /* tallest (cumulative) band first */
        fprintf(g, "  '%s' skip 1 using 1:((0", o->csv);
        for (size_t k = 0; k <= t; k++)
            fprintf(g, "+$%zu", k + 2);
        fprintf(g, ")/%.1f) with fillsteps lc rgb '%s' title '%s', \\\n", unit,
                memviz_color(d->tags[t], t), d->tags[t]);
    }
    fprintf(g,
            "  '%s' skip 1 using 1:($%zu/%.1f) with steps lw 1 dt 2 lc rgb '#404040' "
            "title 'allocated', \\\n",
            o->csv, d->n_tags + 2, unit);
    fprintf(g,
            "  '%s' skip 1 using 1:($%zu/%.1f) with steps lw 2 lc rgb 'black' title 'reserved'\n",
            o->csv, d->n_tags + 3, unit);
}

/* Runs gnuplot on the script; 127 when it cannot be started. */
static int memviz_run_gnuplot(const char *script)
{
    const char *prog = getenv("REMAT_GNUPLOT");
    if (!prog || !*prog)
        prog = "gnuplot";
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return 127;
    if (pid == 0) {
        execlp(prog, prog, script, (char *)NULL);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return 127;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* Writes the script beside the picture, draws into a temporary file, then renames it. */
static int memviz_draw(const memviz_opts *o, const memviz_data *d)
{
    char script[4200], tmp[4200];
    snprintf(script, sizeof script, "%s.gp.tmp", o->out);
    snprintf(tmp, sizeof tmp, "%s.tmp", o->out);
    FILE *g = fopen(script, "w");
    if (!g)
        return cli_fail("memviz", remat_fail(REMAT_EIO, "%s: %s", script, strerror(errno)), "-o");
    memviz_script(g, o, d, tmp);
    int bad = ferror(g);
    if (fclose(g) != 0 || bad) {
        remove(script);
        return cli_fail("memviz", remat_fail(REMAT_EIO, "cannot write %s", script), "-o");
    }
    int rc = memviz_run_gnuplot(script);
    remove(script);
    if (rc == 127) {
        remove(tmp);
        fprintf(stderr,
                "remat memviz: gnuplot not found (install gnuplot, or set REMAT_GNUPLOT); "
                "wrote only %s\n",
                o->csv);
        return EXIT_RUNTIME;
    }
    if (rc != 0 || rename(tmp, o->out) != 0) {
        remove(tmp);
        fprintf(stderr, "remat memviz: gnuplot failed (exit %d) drawing %s\n", rc, o->out);
        return EXIT_RUNTIME;
    }
    return EXIT_OK;
}

static void memviz_summary(const memviz_opts *o, const memviz_data *d)
{
    char label[2048], b[32];
    memviz_peak_label(d, d->rows + d->peak_row * (d->n_tags + 2), label, sizeof label);
    uint64_t reserved = 0;
    for (size_t row = 0; row < d->n_rows; row++) {
        uint64_t r = d->rows[row * (d->n_tags + 2) + d->n_tags + 1];
        reserved = r > reserved ? r : reserved;
    }
    printf("%s: %zu events, %zu tags; ", o->trace, d->n_rows - 1, d->n_tags);
    for (char *s = label; *s; s++) /* the label's "\n" escapes read as "; " here */
        if (s[0] == '\\' && s[1] == 'n') {
            fputs(", ", stdout);
            s++;
        } else
            putchar(*s);
    printf("; peak reserved %s\nwrote %s and %s\n", remat_format_bytes(reserved, b, sizeof b),
           o->out, o->csv);
}

int cmd_memviz(int argc, char **argv)
{
    memviz_opts o;
    if (memviz_parse(argc, argv, &o) != 0)
        return EXIT_USAGE;
    remat_trace *tr = NULL;
    remat_status s = remat_trace_load(o.trace, &tr);
    if (s != REMAT_OK)
        return cli_fail("memviz", s, "cannot read the trace");
    remat_device *dev = NULL;
    memviz_data d = {0};
    int rc = EXIT_OK;
    if ((s = remat_device_open(o.device, &dev)) != REMAT_OK)
        rc = cli_fail("memviz", s, "--device");
    else if ((s = memviz_replay(tr, dev, &d)) != REMAT_OK)
        rc = cli_fail("memviz", s == REMAT_EINVAL ? REMAT_EINTERNAL : s, "replay");
    if (rc == EXIT_OK)
        rc = memviz_write_csv(o.csv, &d);
    if (rc == EXIT_OK)
        rc = memviz_draw(&o, &d);
    if (rc == EXIT_OK)
        memviz_summary(&o, &d);
    memviz_data_free(&d);
    remat_device_close(dev);
    remat_trace_free(tr);
    return rc;
}
