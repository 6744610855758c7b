/* cli/cmd_memviz.c: `remat memviz`: replays a trace through the pool and draws memory over its
 * events with gnuplot: one stacked band per tag, the peak marked with what was live, the pool's
 * allocated and reserved lines on top; the numbers go to a CSV beside the picture. */
#include "cli/cli.h"
#include "core/core.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
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
        "At most 12 bands are drawn: with more tags, the 11 with the highest peaks of their own\n"
        "and one band for all the others (the CSV has every tag).\n"
        "gnuplot is looked up on PATH (REMAT_GNUPLOT overrides it). Without it the CSV is still\n"
        "written and the command exits 1.\n"
        "Exit codes: 0 ok; 1 the trace does not fit the device, or gnuplot is missing or\n"
        "failed; 2 bad usage or a bad trace.\n");
}

/* ==== Options ============================================================================== */

typedef struct {
    const char *trace, *out, *device, *csv, *title;
    uint64_t ymax;
    char csv_buf[4096];
} memviz_opts;

static int memviz_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && strcmp(s + n - k, suffix) == 0;
}

static int memviz_finish_opts(memviz_opts *o)
{
    if (!o->trace)
        return cli_usage_error("memviz", "missing the TRACE file");
    if (!o->out)
        return cli_usage_error("memviz", "missing -o FILE.png or -o FILE.svg");
    if (!memviz_ends_with(o->out, ".png") && !memviz_ends_with(o->out, ".svg"))
        return cli_usage_error("memviz", "-o %s: the picture must end in .png or .svg", o->out);
    if (!o->csv) {
        size_t stem = strlen(o->out) - 4;
        if (stem + 5 > sizeof o->csv_buf)
            return cli_usage_error("memviz", "-o: path too long");
        snprintf(o->csv_buf, sizeof o->csv_buf, "%.*s.csv", (int)stem, o->out);
        o->csv = o->csv_buf;
    }
    const cli_file files[] = {{"TRACE", o->trace, 0}, {"-o", o->out, 1}, {"--csv", o->csv, 1}};
    return cli_check_files("memviz", files, sizeof files / sizeof files[0]);
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

/* ==== Tags ================================================================================= */

/* Bands drawn: every tag when there are at most this many, else the largest MEMVIZ_BANDS - 1
 * (by their own peak) and one band for all the others. The CSV always has every tag. */
#define MEMVIZ_BANDS 12

typedef struct {
    const char *name; /* owned by the trace */
    size_t first;     /* the event that first allocated with it */
    size_t draw;      /* its index in drawing order */
} memviz_tag;

typedef struct {
    size_t n_tags;
    memviz_tag *by_name;   /* sorted by name, for lookups */
    const char **tags;     /* names in drawing order, bottom band first */
    size_t *alloc_tag;     /* per trace allocation: its tag's drawing index */
    uint64_t *alloc_bytes; /* per trace allocation: its bytes */
    size_t n_rows;         /* events + 1 */
    uint64_t *pool;        /* n_rows x 2: the pool's allocated and reserved bytes */
    uint64_t *live;        /* per tag: bytes live now (while replaying) */
    uint64_t *tag_peak;    /* per tag: most bytes live at once */
    uint64_t *at_peak;     /* per tag: bytes live at peak_row */
    size_t peak_row;       /* the first row with the most bytes live (sum over tags) */
    uint64_t peak_live, top_reserved;
    size_t n_bands, *band; /* per tag: its band (bands keep drawing order) */
} memviz_data;

static void memviz_data_free(memviz_data *d)
{
    free(d->by_name);
    free(d->tags);
    free(d->alloc_tag);
    free(d->alloc_bytes);
    free(d->pool);
    free(d->live);
    free(d->tag_peak);
    free(d->at_peak);
    free(d->band);
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

static int memviz_cmp_name(const void *a, const void *b)
{
    const memviz_tag *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->first > y->first) - (x->first < y->first);
}

static const memviz_tag *memviz_sort_by_draw_tags; /* qsort has no context argument */
static int memviz_cmp_draw(const void *a, const void *b)
{
    const memviz_tag *x = &memviz_sort_by_draw_tags[*(const size_t *)a];
    const memviz_tag *y = &memviz_sort_by_draw_tags[*(const size_t *)b];
    int rx = memviz_tag_rank(x->name), ry = memviz_tag_rank(y->name);
    if (rx != ry)
        return rx < ry ? -1 : 1;
    return (x->first > y->first) - (x->first < y->first);
}

static size_t memviz_lookup(const memviz_data *d, const char *name)
{
    memviz_tag key = {.name = name, .first = 0};
    size_t lo = 0, hi = d->n_tags; /* the first entry not below the key */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(d->by_name[mid].name, key.name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return d->by_name[lo].draw;
}

/* Collects the trace's tags (sorted, so each lookup is a binary search) in drawing order, and
 * each allocation's tag and bytes. */
static remat_status memviz_tags(const remat_trace *tr, memviz_data *d)
{
    size_t n = remat_trace_events(tr), k = 0;
    memviz_tag *all = calloc(n + 1, sizeof *all);
    d->alloc_tag = calloc(n + 1, sizeof *d->alloc_tag);
    d->alloc_bytes = calloc(n + 1, sizeof *d->alloc_bytes);
    if (!all || !d->alloc_tag || !d->alloc_bytes) {
        free(all);
        return remat_fail(REMAT_ENOMEM, "memviz: out of host memory");
    }
    for (size_t i = 0; i < n; i++) {
        remat_trace_event e;
        remat_status s = remat_trace_event_at(tr, i, &e);
        if (s != REMAT_OK) {
            free(all);
            return s;
        }
        if (e.op == 'a')
            all[k++] = (memviz_tag){e.tag ? e.tag : MEMVIZ_UNTAGGED, i, 0};
    }
    qsort(all, k, sizeof *all, memviz_cmp_name);
    for (size_t i = 0; i < k; i++) /* keep the first of each name (the earliest event) */
        if (d->n_tags == 0 || strcmp(all[d->n_tags - 1].name, all[i].name) != 0)
            all[d->n_tags++] = all[i];
    d->by_name = all;
    size_t *order = malloc((d->n_tags + 1) * sizeof *order);
    d->tags = malloc((d->n_tags + 1) * sizeof *d->tags);
    if (!order || !d->tags) {
        free(order);
        return remat_fail(REMAT_ENOMEM, "memviz: out of host memory");
    }
    for (size_t t = 0; t < d->n_tags; t++)
        order[t] = t;
    memviz_sort_by_draw_tags = all;
    qsort(order, d->n_tags, sizeof *order, memviz_cmp_draw);
    for (size_t t = 0; t < d->n_tags; t++) {
        all[order[t]].draw = t;
        d->tags[t] = all[order[t]].name;
    }
    free(order);
    for (size_t i = 0; i < n; i++) {
        remat_trace_event e;
        REMAT_TRY(remat_trace_event_at(tr, i, &e));
        if (e.op == 'a') {
            d->alloc_tag[e.alloc_index] = memviz_lookup(d, e.tag ? e.tag : MEMVIZ_UNTAGGED);
            d->alloc_bytes[e.alloc_index] = e.bytes;
        }
    }
    return REMAT_OK;
}

/* ==== Replay =============================================================================== */

/* Row `row` (the state after event row - 1; row 0 is before the first): the pool's lines, the
 * peaks, and the CSV row. */
static void memviz_sample(const remat_pool *pool, memviz_data *d, size_t row, FILE *csv)
{
    remat_pool_stats ps;
    uint64_t live = 0;
    if (remat_pool_stats_get(pool, &ps) != REMAT_OK)
        memset(&ps, 0, sizeof ps);
    d->pool[2 * row] = ps.allocated.current;
    d->pool[2 * row + 1] = ps.reserved.current;
    if (ps.reserved.current > d->top_reserved)
        d->top_reserved = ps.reserved.current;
    fprintf(csv, "%zu", row);
    for (size_t t = 0; t < d->n_tags; t++) {
        fprintf(csv, ",%llu", (unsigned long long)d->live[t]);
        live += d->live[t];
    }
    fprintf(csv, ",%llu,%llu\n", (unsigned long long)ps.allocated.current,
            (unsigned long long)ps.reserved.current);
    if (row == 0 || live > d->peak_live) {
        d->peak_row = row;
        d->peak_live = live;
        memcpy(d->at_peak, d->live, d->n_tags * sizeof *d->live);
    }
}

static remat_status memviz_events(const remat_trace *tr, remat_pool *pool, void **ptrs,
                                  memviz_data *d, FILE *csv)
{
    memviz_sample(pool, d, 0, csv);
    for (size_t i = 0; i < remat_trace_events(tr); i++) {
        remat_trace_event e;
        REMAT_TRY(remat_trace_event_at(tr, i, &e));
        size_t t = d->alloc_tag[e.alloc_index];
        if (e.op == 'f') {
            remat_free(pool, ptrs[e.alloc_index]);
            ptrs[e.alloc_index] = NULL;
            d->live[t] -= d->alloc_bytes[e.alloc_index];
        } else {
            const char *tag = d->tags[t];
            ptrs[e.alloc_index] =
                remat_alloc_tagged(pool, (size_t)e.bytes, (remat_stream)(uintptr_t)e.stream,
                                   strcmp(tag, MEMVIZ_UNTAGGED) == 0 ? NULL : tag);
            if (!ptrs[e.alloc_index])
                return remat_fail_context(REMAT_ENOMEM, "trace line %llu",
                                          (unsigned long long)e.line);
            d->live[t] += e.bytes;
            if (d->live[t] > d->tag_peak[t])
                d->tag_peak[t] = d->live[t];
        }
        memviz_sample(pool, d, i + 1, csv);
    }
    return REMAT_OK;
}

/* Replays the trace on a fresh pool, writing the CSV's row after every event. */
static remat_status memviz_replay(const remat_trace *tr, remat_device *dev, memviz_data *d,
                                  FILE *csv)
{
    REMAT_TRY(memviz_tags(tr, d));
    size_t n = remat_trace_events(tr), k = d->n_tags + 1;
    d->n_rows = n + 1;
    d->pool = calloc(2 * d->n_rows, sizeof *d->pool);
    d->live = calloc(k, sizeof *d->live);
    d->tag_peak = calloc(k, sizeof *d->tag_peak);
    d->at_peak = calloc(k, sizeof *d->at_peak);
    void **ptrs = calloc(n + 1, sizeof *ptrs);
    if (!d->pool || !d->live || !d->tag_peak || !d->at_peak || !ptrs) {
        free(ptrs);
        return remat_fail(REMAT_ENOMEM, "memviz: out of host memory");
    }
    fprintf(csv, "event");
    for (size_t t = 0; t < d->n_tags; t++)
        fprintf(csv, ",%s", d->tags[t]);
    fprintf(csv, ",allocated,reserved\n");
    remat_pool *pool = NULL;
    remat_status s = remat_pool_create(dev, NULL, &pool);
    if (s == REMAT_OK)
        s = memviz_events(tr, pool, ptrs, d, csv);
    for (size_t i = 0; pool && i < n + 1; i++)
        remat_free(pool, ptrs[i]);
    remat_pool_destroy(pool);
    free(ptrs);
    return s;
}

/* ==== Picture ============================================================================== */

static int memviz_cmp_peak_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x < y) - (x > y);
}

/* Which band each tag goes into: its own, or the last ("other tags") for the smaller ones. */
static remat_status memviz_bands(memviz_data *d)
{
    d->band = calloc(d->n_tags + 1, sizeof *d->band);
    if (!d->band)
        return remat_fail(REMAT_ENOMEM, "memviz: out of host memory");
    if (d->n_tags <= MEMVIZ_BANDS) {
        for (size_t t = 0; t < d->n_tags; t++)
            d->band[t] = t;
        d->n_bands = d->n_tags;
        return REMAT_OK;
    }
    uint64_t *peaks = malloc(d->n_tags * sizeof *peaks);
    if (!peaks)
        return remat_fail(REMAT_ENOMEM, "memviz: out of host memory");
    memcpy(peaks, d->tag_peak, d->n_tags * sizeof *peaks);
    qsort(peaks, d->n_tags, sizeof *peaks, memviz_cmp_peak_desc);
    uint64_t cut = peaks[MEMVIZ_BANDS - 2]; /* the smallest peak that keeps its own band */
    free(peaks);
    size_t own = 0;
    for (size_t t = 0; t < d->n_tags; t++)
        d->band[t] = d->tag_peak[t] >= cut && own < MEMVIZ_BANDS - 1 ? own++ : SIZE_MAX;
    for (size_t t = 0; t < d->n_tags; t++)
        if (d->band[t] == SIZE_MAX)
            d->band[t] = own;
    d->n_bands = own + 1;
    return REMAT_OK;
}

/* The band's name, and the tag that gives its colour (or NULL for "other tags"). */
static const char *memviz_band_name(const memviz_data *d, size_t b, char *buf, size_t n)
{
    for (size_t t = 0; t < d->n_tags; t++)
        if (d->band[t] == b && (d->n_tags <= MEMVIZ_BANDS || b + 1 < d->n_bands))
            return d->tags[t];
    snprintf(buf, n, "%zu other tags", d->n_tags - (d->n_bands - 1));
    return buf;
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

/* The peak's lines: the total, then each band's bytes at that moment, top band first. Calls
 * line(text, ctx) for each. */
static void memviz_peak_lines(const memviz_data *d, void (*line)(const char *, void *), void *ctx)
{
    char text[256], b[32], nb[64];
    snprintf(text, sizeof text, "peak %s at event %zu",
             remat_format_bytes(d->peak_live, b, sizeof b), d->peak_row);
    line(text, ctx);
    for (size_t k = d->n_bands; k-- > 0;) {
        uint64_t bytes = 0;
        for (size_t t = 0; t < d->n_tags; t++)
            if (d->band[t] == k)
                bytes += d->at_peak[t];
        if (!bytes)
            continue;
        snprintf(text, sizeof text, "%s %s", memviz_band_name(d, k, nb, sizeof nb),
                 remat_format_bytes(bytes, b, sizeof b));
        line(text, ctx);
    }
}

typedef struct {
    FILE *f;
    int n;
} memviz_lines;

/* The label in the script: the lines as gnuplot strings joined by "\n". */
static void memviz_label_line(const char *text, void *ctx)
{
    memviz_lines *l = ctx;
    if (l->n++)
        fputs(".\"\\n\".", l->f);
    cli_plot_string(l->f, text);
}

/* The summary on stdout: the lines joined by ", ". */
static void memviz_summary_line(const char *text, void *ctx)
{
    memviz_lines *l = ctx;
    fprintf(l->f, "%s%s", l->n++ ? ", " : "", text);
}

/* The plotted numbers as a datablock in the script: event, each band's top (cumulative bytes,
 * bottom band first), allocated, reserved. The tags' bytes are replayed from the trace. */
static remat_status memviz_datablock(FILE *g, const remat_trace *tr, const memviz_data *d)
{
    uint64_t *band = calloc(d->n_bands + 1, sizeof *band);
    if (!band)
        return remat_fail(REMAT_ENOMEM, "memviz: out of host memory");
    fprintf(g, "$memviz << EOD\n");
    for (size_t row = 0; row < d->n_rows; row++) {
        if (row > 0) {
            remat_trace_event e;
            remat_status s = remat_trace_event_at(tr, row - 1, &e);
            if (s != REMAT_OK) {
                free(band);
                return s;
            }
            size_t b = d->band[d->alloc_tag[e.alloc_index]];
            uint64_t bytes = d->alloc_bytes[e.alloc_index];
            band[b] = e.op == 'a' ? band[b] + bytes : band[b] - bytes;
        }
        uint64_t sum = 0;
        fprintf(g, "%zu", row);
        for (size_t b = 0; b < d->n_bands; b++)
            fprintf(g, " %llu", (unsigned long long)(sum += band[b]));
        fprintf(g, " %llu %llu\n", (unsigned long long)d->pool[2 * row],
                (unsigned long long)d->pool[2 * row + 1]);
    }
    fprintf(g, "EOD\n");
    free(band);
    return REMAT_OK;
}

static void memviz_script(FILE *g, const memviz_opts *o, const memviz_data *d)
{
    uint64_t top = o->ymax ? o->ymax : d->top_reserved;
    double unit = top > (8ull << 30) ? 1073741824.0 : 1048576.0;
    fprintf(g, "set title ");
    cli_plot_string(g, o->title ? o->title : o->trace);
    fprintf(g, " noenhanced\nset xlabel 'trace event'\nset ylabel '%s'\n",
            unit > 1048576.0 ? "GiB" : "MiB");
    fprintf(g, "set xrange [0:%zu]\nset yrange [0:%.6f]\n", d->n_rows - 1,
            (o->ymax ? 1.0 : 1.5) * (double)top / unit);
    fprintf(g, "set key outside right top noenhanced\nset grid ytics\nset style fill solid 1.0 "
               "noborder\nset style textbox opaque noborder\n");
    fprintf(g, "set label 1 '' at %zu,%.6f front point pt 7 ps 1\n", d->peak_row,
            (double)d->peak_live / unit);
    fprintf(g, "set label 2 ");
    memviz_lines l = {g, 0};
    memviz_peak_lines(d, memviz_label_line, &l);
    int right = d->peak_row > d->n_rows / 2;
    fprintf(g, " at %zu, graph 0.97 %s offset %d,-0.5 front noenhanced boxed\n", d->peak_row,
            right ? "right" : "left", right ? -1 : 1);
    fprintf(g, "set arrow 1 from %zu, graph 0 to %zu, graph 1 nohead dt 2 lc rgb 'black' front\n",
            d->peak_row, d->peak_row);
    fprintf(g, "plot \\\n");
    char nb[64];
    for (size_t b = d->n_bands; b-- > 0;) { /* tallest (cumulative) band first */
        const char *name = memviz_band_name(d, b, nb, sizeof nb);
        fprintf(g, "  $memviz using 1:($%zu/%.1f) with fillsteps lc rgb '%s' title ", b + 2, unit,
                name == nb ? "#b0b0b0" : memviz_color(name, b));
        cli_plot_string(g, name);
        fprintf(g, ", \\\n");
    }
    fprintf(g,
            "  $memviz using 1:($%zu/%.1f) with steps lw 1 dt 2 lc rgb '#404040' "
            "title 'allocated', \\\n",
            d->n_bands + 2, unit);
    fprintf(g, "  $memviz using 1:($%zu/%.1f) with steps lw 2 lc rgb 'black' title 'reserved'\n",
            d->n_bands + 3, unit);
}

/* Draws the picture into o->out (replaced only by a checked, complete picture). */
static int memviz_draw(const memviz_opts *o, const remat_trace *tr, const memviz_data *d)
{
    cli_plot p;
    int svg = memviz_ends_with(o->out, ".svg"), missing = 0;
    remat_status s = cli_plot_begin(
        &p, o->out,
        svg ? "set terminal svg size 900,520 dynamic background rgb 'white' font 'sans,10'"
            : "set terminal pngcairo size 900,520 font 'sans,10'");
    if (s != REMAT_OK)
        return cli_fail("memviz", s, "-o");
    if ((s = memviz_datablock(p.script, tr, d)) != REMAT_OK) {
        cli_plot_abort(&p);
        return cli_fail("memviz", s, "-o");
    }
    memviz_script(p.script, o, d);
    s = cli_plot_finish(&p, &missing);
    if (missing) {
        fprintf(stderr,
                "remat memviz: gnuplot not found (install gnuplot, or set REMAT_GNUPLOT); "
                "wrote only %s\n",
                o->csv);
        return EXIT_RUNTIME;
    }
    if (s != REMAT_OK) {
        cli_fail("memviz", s, "");
        return EXIT_RUNTIME;
    }
    return EXIT_OK;
}

static void memviz_summary(const memviz_opts *o, const memviz_data *d)
{
    char b[32];
    printf("%s: %zu events, %zu tags; ", o->trace, d->n_rows - 1, d->n_tags);
    memviz_lines l = {stdout, 0};
    memviz_peak_lines(d, memviz_summary_line, &l);
    printf("; peak reserved %s\nwrote %s and %s\n",
           remat_format_bytes(d->top_reserved, b, sizeof b), o->out, o->csv);
}

/* Replays the trace into the CSV (put in place only when complete). */
static int memviz_numbers(const memviz_opts *o, const remat_trace *tr, remat_device *dev,
                          memviz_data *d)
{
    cli_output csv;
    remat_status s = cli_output_open(&csv, o->csv);
    if (s != REMAT_OK)
        return cli_fail("memviz", s, "--csv");
    s = memviz_replay(tr, dev, d, csv.f);
    if (s == REMAT_OK)
        s = memviz_bands(d);
    if (s != REMAT_OK) {
        cli_output_close(&csv, 0);
        return cli_fail("memviz", s == REMAT_EINVAL ? REMAT_EINTERNAL : s, "replay");
    }
    if ((s = cli_output_close(&csv, 1)) != REMAT_OK)
        return cli_fail("memviz", s, "--csv");
    return EXIT_OK;
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
    if (rc == EXIT_OK)
        rc = memviz_numbers(&o, tr, dev, &d);
    if (rc == EXIT_OK)
        rc = memviz_draw(&o, tr, &d);
    if (rc == EXIT_OK)
        memviz_summary(&o, &d);
    memviz_data_free(&d);
    remat_device_close(dev);
    remat_trace_free(tr);
    return rc;
}
