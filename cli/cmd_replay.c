/* cli/cmd_replay.c: `remat replay TRACE`: runs an allocation trace through the pool (and, with
 * --baseline, through no cache at all) and reports peaks, device calls and time per operation. */
#include "cli/cli.h"

#include <getopt.h>
#include <string.h>

#define REPLAY_DEFAULT_DEVICE "sim:1TiB"

void cmd_replay_usage(FILE *f)
{
    fprintf(f,
            "usage: remat replay TRACE [--device SPEC] [--limit SIZE] [--expandable] [--baseline]\n"
            "                    [--planned] [--json]\n\n"
            "Runs the allocation trace TRACE (lines 'a <id> <bytes> [<stream> [<tag>]]' and\n"
            "'f <id>', '#' comments) through a fresh caching pool and prints the peak requested,\n"
            "allocated and reserved bytes, the device allocations and frees, and the time per\n"
            "operation.\n\n"
            "  --device SPEC  where to run it (default " REPLAY_DEFAULT_DEVICE ": a simulated 1 TiB\n"
            "                 card, so any trace replays without touching memory; use\n"
            "                 sim:80GB to replay as on an 80 GB card, host or cuda:N for real)\n"
            "  --limit SIZE   cap the pool at SIZE (at least 1 byte), as a smaller card would\n"
            "  --expandable   grow one segment in place for large requests (virtual memory)\n"
            "                 instead of adding segments: less fragmentation\n"
            "  --baseline     also run it with no cache (one device call per request)\n"
            "  --planned      planned mode: record the step between the first two step marks\n"
            "                 ('s' lines), lay it out in one arena, serve every later step from\n"
            "                 it; prints the planned steps' peak reserved against the lower\n"
            "                 bound (most bytes live at once) and the arena's hits and misses\n"
            "  --json         one JSON object: events, peak_requested, peak_allocated,\n"
            "                 peak_reserved, device_allocs, device_frees, ns_per_op, and\n"
            "                 baseline (same keys) with --baseline, and planned (steps,\n"
            "                 planned_steps, peak_reserved, lower_bound, ratio, arena_bytes,\n"
            "                 arena_lower_bound, heuristic, hits, misses) with --planned\n\n"
            "Exit codes: 0 ok; 1 the trace does not fit the device or limit; 2 bad usage or a\n"
            "malformed trace (the message names the line).\n");
}

static void replay_json_object(const remat_replay_result *r)
{
    printf("{\"events\": %llu, \"peak_requested\": %llu, \"peak_allocated\": %llu, "
           "\"peak_reserved\": %llu, \"device_allocs\": %llu, \"device_frees\": %llu, "
           "\"ns_per_op\": %.1f",
           (unsigned long long)r->events, (unsigned long long)r->peak_requested,
           (unsigned long long)r->peak_allocated, (unsigned long long)r->peak_reserved,
           (unsigned long long)r->device_allocs, (unsigned long long)r->device_frees, r->ns_per_op);
}

static void replay_text_row(const char *name, uint64_t pool, uint64_t base, int baseline, int bytes)
{
    char a[32], b[32];
    if (bytes) {
        remat_format_bytes(pool, a, sizeof a);
        remat_format_bytes(base, b, sizeof b);
    } else {
        snprintf(a, sizeof a, "%llu", (unsigned long long)pool);
        snprintf(b, sizeof b, "%llu", (unsigned long long)base);
    }
    if (baseline)
        printf("  %-22s %14s %14s\n", name, a, b);
    else
        printf("  %-22s %14s\n", name, a);
}

static void replay_text(const char *path, const char *spec, const remat_replay_result *r,
                        const remat_replay_result *b, int baseline)
{
    printf("trace %s: %llu events on %s\n", path, (unsigned long long)r->events, spec);
    if (baseline)
        printf("  %-22s %14s %14s\n", "", "pool", "no cache");
    replay_text_row("peak requested", r->peak_requested, b->peak_requested, baseline, 1);
    replay_text_row("peak allocated", r->peak_allocated, b->peak_allocated, baseline, 1);
    replay_text_row("peak reserved", r->peak_reserved, b->peak_reserved, baseline, 1);
    replay_text_row("device allocations", r->device_allocs, b->device_allocs, baseline, 0);
    replay_text_row("device frees", r->device_frees, b->device_frees, baseline, 0);
    double ratio = r->peak_requested ? (double)r->peak_reserved / (double)r->peak_requested : 0;
    double bratio = b->peak_requested ? (double)b->peak_reserved / (double)b->peak_requested : 0;
    if (baseline) {
        printf("  %-22s %14.3f %14.3f\n", "reserved / requested", ratio, bratio);
        printf("  %-22s %14.1f %14.1f\n", "ns per operation", r->ns_per_op, b->ns_per_op);
    } else {
        printf("  %-22s %14.3f\n", "reserved / requested", ratio);
        printf("  %-22s %14.1f\n", "ns per operation", r->ns_per_op);
    }
}

/* --planned: what the planned steps reserved against the least any pool could. */
static void replay_planned_text(const remat_planned_replay_result *p)
{
    char a[32], b[32], c[32];
    printf("planned: %llu steps marked, step 1 recorded, %llu served from its layout\n",
           (unsigned long long)p->steps, (unsigned long long)p->planned_steps);
    printf("  %-30s %14s\n", "peak reserved (planned steps)",
           remat_format_bytes(p->peak_reserved, a, sizeof a));
    printf("  %-30s %14s\n", "lower bound (most bytes live)",
           remat_format_bytes(p->lower_bound, b, sizeof b));
    printf("  %-30s %14.4f\n", "reserved / lower bound",
           p->lower_bound ? (double)p->peak_reserved / (double)p->lower_bound : 0.0);
    printf("  %-30s %14s  (%s; step bound %s)\n", "arena", remat_format_bytes(p->arena_bytes, a, sizeof a),
           p->heuristic, remat_format_bytes(p->arena_lower_bound, c, sizeof c));
    printf("  %-30s %14llu\n", "requests from the arena", (unsigned long long)p->hits);
    printf("  %-30s %14llu\n", "requests missed (cache path)", (unsigned long long)p->misses);
}

static void replay_planned_json(const remat_planned_replay_result *p)
{
    printf(", \"planned\": {\"steps\": %llu, \"planned_steps\": %llu, \"peak_reserved\": %llu, "
           "\"lower_bound\": %llu, \"ratio\": %.6f, \"arena_bytes\": %llu, "
           "\"arena_lower_bound\": %llu, \"heuristic\": ",
           (unsigned long long)p->steps, (unsigned long long)p->planned_steps,
           (unsigned long long)p->peak_reserved, (unsigned long long)p->lower_bound,
           p->lower_bound ? (double)p->peak_reserved / (double)p->lower_bound : 0.0,
           (unsigned long long)p->arena_bytes, (unsigned long long)p->arena_lower_bound);
    cli_json_string(stdout, p->heuristic);
    printf(", \"hits\": %llu, \"misses\": %llu}", (unsigned long long)p->hits,
           (unsigned long long)p->misses);
}

typedef struct {
    const char *device, *path;
    uint64_t limit;
    int baseline, json, expandable, planned;
} replay_args;

/* Parses the options; returns -1 after printing a usage error. */
static int replay_parse(int argc, char **argv, replay_args *a)
{
    static const struct option opts[] = {{"device", required_argument, NULL, 'd'},
                                         {"limit", required_argument, NULL, 'l'},
                                         {"baseline", no_argument, NULL, 'b'},
                                         {"expandable", no_argument, NULL, 'e'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"planned", no_argument, NULL, 'p'},
                                         {NULL, 0, NULL, 0}};
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'd')
            a->device = optarg;
        else if (c == 'l') {
            if (cli_parse_size("replay", "--limit", optarg, &a->limit) != 0)
                return -1;
            /* 0 is the pool's "no limit": a limit that rounds to 0 bytes would silently be none */
            if (a->limit == 0)
                return cli_usage_error("replay",
                                       "--limit '%s' is 0 bytes; a limit must be at least 1 byte "
                                       "(leave --limit out for no limit)",
                                       optarg),
                       -1;
        } else if (c == 'b')
            a->baseline = 1;
        else if (c == 'e')
            a->expandable = 1;
        else if (c == 'j')
            a->json = 1;
        else if (c == 'p')
            a->planned = 1;
        else
            return cli_bad_option("replay", argv), -1;
    }
    if (optind >= argc)
        return cli_usage_error("replay", "missing TRACE"), -1;
    if (optind + 1 < argc)
        return cli_usage_error("replay", "unexpected argument '%s'", argv[optind + 1]), -1;
    a->path = argv[optind];
    return 0;
}

int cmd_replay(int argc, char **argv)
{
    replay_args a = {.device = REPLAY_DEFAULT_DEVICE};
    if (replay_parse(argc, argv, &a) != 0)
        return EXIT_USAGE;
    remat_trace *trace = NULL;
    remat_status s = remat_trace_load(a.path, &trace);
    if (s != REMAT_OK)
        return cli_fail("replay", s, "");
    remat_device *dev = NULL;
    s = remat_device_open(a.device, &dev);
    if (s != REMAT_OK) {
        remat_trace_free(trace);
        return cli_fail("replay", s, "");
    }
    remat_pool_config cfg = {.limit_bytes = a.limit, .expandable_segments = a.expandable};
    remat_replay_result r, b;
    remat_planned_replay_result pr;
    memset(&b, 0, sizeof b);
    if (a.planned) {
        s = remat_trace_replay_planned(trace, dev, &cfg, &pr);
        r = pr.all;
    } else {
        s = remat_trace_replay(trace, dev, &cfg, &r);
    }
    if (s == REMAT_OK && a.baseline) {
        cfg.no_cache = 1;
        cfg.expandable_segments = 0;
        s = remat_trace_replay(trace, dev, &cfg, &b);
    }
    remat_device_info info;
    if (s == REMAT_OK)
        s = remat_device_info_get(dev, &info);
    remat_device_close(dev);
    remat_trace_free(trace);
    if (s != REMAT_OK)
        return cli_fail("replay", s, a.baseline && r.events ? "no-cache baseline" : "");
    if (a.json) {
        replay_json_object(&r);
        if (a.baseline) {
            printf(", \"baseline\": ");
            replay_json_object(&b);
            printf("}");
        }
        if (a.planned)
            replay_planned_json(&pr);
        printf("}\n");
    } else {
        replay_text(a.path, info.spec, &r, &b, a.baseline);
        if (a.planned)
            replay_planned_text(&pr);
    }
    return EXIT_OK;
}
