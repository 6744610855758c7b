/* alloc/trace.c: allocation traces: recording a pool's calls, reading a trace file, and replaying
 * it through a fresh pool (shared by `remat replay`, the tests and the benchmarks). */
#include "alloc/pool.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ==== Recording ================================================================================ */

remat_status remat_pool_trace_begin(remat_pool *pool, FILE *f)
{
    if (!pool || !f)
        return remat_fail(REMAT_EINVAL, "remat_pool_trace_begin: pool and f must not be NULL");
    remat_status s = REMAT_OK;
    pool_lock(pool);
    if (pool->trace) {
        s = remat_fail(REMAT_EINVAL, "remat_pool_trace_begin: this pool is already recording");
    } else {
        /* Blocks of an earlier recording must not write frees of ids this trace never saw. */
        for (size_t i = 0; i < pool->live.cap; i++)
            if (pool->live.keys[i])
                ((pool_block *)pool->live.vals[i])->trace_id = 0;
        fprintf(f, "# remat-trace 1\n");
        pool->trace = f;
    }
    pool_unlock(pool);
    return s;
}

remat_status remat_pool_trace_end(remat_pool *pool)
{
    if (!pool)
        return remat_fail(REMAT_EINVAL, "remat_pool_trace_end: pool must not be NULL");
    pool_lock(pool);
    FILE *f = pool->trace;
    pool->trace = NULL;
    int bad = f && (fflush(f) != 0 || ferror(f));
    pool_unlock(pool);
    if (!f)
        return remat_fail(REMAT_EINVAL, "remat_pool_trace_end: this pool is not recording");
    return bad ? remat_fail(REMAT_EIO, "remat_pool_trace_end: writing the trace failed") : REMAT_OK;
}

remat_status remat_pool_trace_step(remat_pool *pool)
{
    if (!pool)
        return remat_fail(REMAT_EINVAL, "remat_pool_trace_step: pool must not be NULL");
    pool_lock(pool);
    if (pool->trace)
        fprintf(pool->trace, "s\n");
    pool_unlock(pool);
    return REMAT_OK;
}

/* ==== Parsing ================================================================================== */

/* A trace line is a few numbers and a tag of at most 63 characters: 4 KiB is plenty, and a file
 * of one huge line (or /dev/zero) is refused at once. 16 GiB of trace is some 400 million
 * events, beyond any one run's. */
#define TRACE_MAX_LINE 4096
#define TRACE_MAX_LINE_TEXT "4096"
#define TRACE_MAX_BYTES ((uint64_t)16 << 30)
#define TRACE_MAX_BYTES_TEXT "16 GiB"

typedef struct {
    uint64_t bytes;
    uint64_t line;
    size_t slot;     /* index of the allocation this event makes or frees */
    uint32_t stream; /* trace stream number */
    uint32_t tag;    /* index into tags; 0 = untagged */
    char op;         /* 'a' or 'f' */
    char dedicated;  /* 'd' lines: an allocation with a segment of its own */
} trace_event;

struct remat_trace {
    trace_event *ev;
    size_t n, cap;
    size_t n_allocs;
    char (*tags)[64];
    size_t n_tags, cap_tags;
    size_t *steps; /* step marks: the index of the first event of each step */
    size_t n_steps, cap_steps;
};

typedef struct {
    remat_trace *t;
    pool_map live;      /* id + 1 -> slot + 1 of the live allocation */
    pool_map tag_index; /* tag name -> index in t->tags (pool_names_*) */
    const char *name;
    uint64_t line;
} trace_parser;

static remat_status parse_error(const trace_parser *p, const char *fmt, const char *arg)
{
    char why[200];
    snprintf(why, sizeof why, fmt, arg);
    return remat_fail(REMAT_EPARSE, "%s:%llu: %s", p->name, (unsigned long long)p->line, why);
}

/* A whole unsigned decimal number (digits only, no overflow). */
static int parse_u64(const char *s, uint64_t *out)
{
    if (!*s)
        return 0;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return 0;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    *out = v;
    return 1;
}

static const char *trace_tag_at(const void *tags, size_t i)
{
    return ((const char(*)[64])tags)[i];
}

static remat_status trace_intern_tag(trace_parser *p, const char *tag, uint32_t *out)
{
    remat_trace *t = p->t;
    if (!pool_tag_is_word(tag))
        return parse_error(p, "bad tag '%.60s' (a word of letters, digits, '_', '-', '.')", tag);
    if (strcmp(tag, "untagged") == 0) {
        *out = 0;
        return REMAT_OK;
    }
    size_t i = pool_names_find(&p->tag_index, tag, trace_tag_at, t->tags, t->n_tags);
    if (i < t->n_tags) {
        *out = (uint32_t)i;
        return REMAT_OK;
    }
    if (t->n_tags > UINT32_MAX - 1)
        return parse_error(p, "%s", "more than 2^32 - 1 distinct tags");
    if (t->n_tags == t->cap_tags) {
        size_t cap = t->cap_tags * 2;
        char(*tags)[64] = realloc(t->tags, cap * sizeof *tags);
        if (!tags)
            return remat_fail(REMAT_ENOMEM, "trace: out of host memory");
        t->tags = tags;
        t->cap_tags = cap;
    }
    REMAT_TRY(pool_names_add(&p->tag_index, tag, t->n_tags));
    snprintf(t->tags[t->n_tags], 64, "%s", tag);
    *out = (uint32_t)t->n_tags++;
    return REMAT_OK;
}

static remat_status trace_push(remat_trace *t, const trace_event *e)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 1024;
        trace_event *ev = realloc(t->ev, cap * sizeof *ev);
        if (!ev)
            return remat_fail(REMAT_ENOMEM, "trace: out of host memory");
        t->ev = ev;
        t->cap = cap;
    }
    t->ev[t->n++] = *e;
    return REMAT_OK;
}

/* "a ..." or, dedicated, "d ..." (the same fields). */
static remat_status parse_alloc(trace_parser *p, char **tok, int n_tok, int dedicated)
{
    uint64_t id, stream = 0;
    trace_event e = {.op = 'a', .dedicated = (char)dedicated, .line = p->line};
    if (n_tok < 3 || n_tok > 5)
        return parse_error(p, "expected '%s <id> <bytes> [<stream> [<tag>]]'",
                           dedicated ? "d" : "a");
    if (!parse_u64(tok[1], &id) || id == UINT64_MAX)
        return parse_error(p, "bad allocation id '%.40s'", tok[1]);
    if (!parse_u64(tok[2], &e.bytes))
        return parse_error(p, "bad byte count '%.40s'", tok[2]);
    if (n_tok >= 4 && (!parse_u64(tok[3], &stream) || stream > UINT32_MAX))
        return parse_error(p, "bad stream number '%.40s'", tok[3]);
    e.stream = (uint32_t)stream;
    if (n_tok == 5)
        REMAT_TRY(trace_intern_tag(p, tok[4], &e.tag));
    if (pool_map_get(&p->live, id + 1))
        return parse_error(p, "allocation id %s is already live", tok[1]);
    e.slot = p->t->n_allocs++;
    REMAT_TRY(pool_map_put(&p->live, id + 1, (void *)(uintptr_t)(e.slot + 1)));
    return trace_push(p->t, &e);
}

static remat_status parse_free(trace_parser *p, char **tok, int n_tok)
{
    uint64_t id;
    if (n_tok != 2)
        return parse_error(p, "%s", "expected 'f <id>'");
    if (!parse_u64(tok[1], &id) || id == UINT64_MAX)
        return parse_error(p, "bad allocation id '%.40s'", tok[1]);
    void *slot = pool_map_take(&p->live, id + 1);
    if (!slot)
        return parse_error(p, "free of id %s, which is not live", tok[1]);
    trace_event e = {.op = 'f', .line = p->line, .slot = (size_t)(uintptr_t)slot - 1};
    return trace_push(p->t, &e);
}

/* A step mark "s": the next event starts a step (planned replay records and repeats steps). */
static remat_status parse_step(trace_parser *p, int n_tok)
{
    remat_trace *t = p->t;
    if (n_tok != 1)
        return parse_error(p, "%s", "expected 's' alone (a step mark)");
    if (t->n_steps == t->cap_steps) {
        size_t cap = t->cap_steps ? t->cap_steps * 2 : 64;
        size_t *st = realloc(t->steps, cap * sizeof *st);
        if (!st)
            return remat_fail(REMAT_ENOMEM, "trace: out of host memory");
        t->steps = st;
        t->cap_steps = cap;
    }
    t->steps[t->n_steps++] = t->n;
    return REMAT_OK;
}

/* Parses one line (comments already cut); blank lines are fine. */
static remat_status parse_line(trace_parser *p, char *line)
{
    char *tok[6];
    int n_tok = 0;
    for (char *save = NULL, *w = strtok_r(line, " \t\r\n", &save); w;
         w = strtok_r(NULL, " \t\r\n", &save)) {
        if (n_tok == 6)
            return parse_error(p, "%s", "too many fields");
        tok[n_tok++] = w;
    }
    if (n_tok == 0)
        return REMAT_OK;
    if (strcmp(tok[0], "a") == 0 || strcmp(tok[0], "d") == 0)
        return parse_alloc(p, tok, n_tok, tok[0][0] == 'd');
    if (strcmp(tok[0], "f") == 0)
        return parse_free(p, tok, n_tok);
    if (strcmp(tok[0], "s") == 0)
        return parse_step(p, n_tok);
    return parse_error(p, "unknown event '%.40s' (expected 'a', 'd', 'f' or 's')", tok[0]);
}

/* Reads the next line (its newline dropped) into buf, which holds TRACE_MAX_LINE + 1 bytes, and
 * counts it in p->line; *got is 0 at the end of the file. A line or a file above the limits, a NUL
 * byte and a read error are errors (never an early end that would drop the rest of the trace). */
static remat_status trace_read_line(trace_parser *p, FILE *f, char *buf, uint64_t *total, int *got)
{
    size_t n = 0;
    int c;
    *got = 0;
    while ((c = getc_unlocked(f)) != EOF && c != '\n') {
        if (n == TRACE_MAX_LINE) {
            p->line++;
            return parse_error(
                p, "%s", "the line is longer than the limit of " TRACE_MAX_LINE_TEXT " bytes");
        }
        if (c == '\0') {
            p->line++;
            return parse_error(p, "%s", "a NUL byte: a trace is text");
        }
        buf[n++] = (char)c;
    }
    if (ferror(f))
        return remat_fail(REMAT_EIO, "%s:%llu: read error: %s", p->name,
                          (unsigned long long)p->line + 1, strerror(errno));
    if (c == EOF && n == 0)
        return REMAT_OK;
    *total += n + (c == '\n');
    p->line++;
    if (*total > TRACE_MAX_BYTES)
        return parse_error(p, "%s", "the trace is larger than the limit of " TRACE_MAX_BYTES_TEXT);
    buf[n] = '\0';
    *got = 1;
    return REMAT_OK;
}

void remat_trace_free(remat_trace *trace)
{
    if (!trace)
        return;
    free(trace->ev);
    free(trace->tags);
    free(trace->steps);
    free(trace);
}

remat_status remat_trace_parse(FILE *f, const char *name, remat_trace **out)
{
    if (!f || !out)
        return remat_fail(REMAT_EINVAL, "remat_trace_parse: f and out must not be NULL");
    *out = NULL;
    trace_parser p = {.name = name ? name : "trace"};
    p.t = calloc(1, sizeof *p.t);
    if (p.t) {
        p.t->cap_tags = 8;
        p.t->tags = calloc(p.t->cap_tags, sizeof *p.t->tags);
    }
    if (!p.t || !p.t->tags || pool_map_init(&p.live) != REMAT_OK) {
        remat_trace_free(p.t);
        return remat_fail(REMAT_ENOMEM, "trace: out of host memory");
    }
    snprintf(p.t->tags[0], 64, "untagged");
    p.t->n_tags = 1;
    char line[TRACE_MAX_LINE + 1];
    uint64_t total = 0;
    int got = 0;
    remat_status s;
    while ((s = trace_read_line(&p, f, line, &total, &got)) == REMAT_OK && got) {
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        if ((s = parse_line(&p, line)) != REMAT_OK)
            break;
    }
    pool_map_destroy(&p.live);
    pool_map_destroy(&p.tag_index);
    if (s != REMAT_OK) {
        remat_trace_free(p.t);
        return s;
    }
    *out = p.t;
    return REMAT_OK;
}

remat_status remat_trace_load(const char *path, remat_trace **out)
{
    if (!path || !out)
        return remat_fail(REMAT_EINVAL, "remat_trace_load: path and out must not be NULL");
    FILE *f = fopen(path, "r");
    if (!f)
        return remat_fail(REMAT_EIO, "cannot open trace '%s': %s", path, strerror(errno));
    remat_status s = remat_trace_parse(f, path, out);
    fclose(f);
    return s;
}

size_t remat_trace_events(const remat_trace *trace) { return trace ? trace->n : 0; }

size_t remat_trace_steps(const remat_trace *trace) { return trace ? trace->n_steps : 0; }

remat_status remat_trace_event_at(const remat_trace *trace, size_t i, remat_trace_event *out)
{
    if (!trace || !out)
        return remat_fail(REMAT_EINVAL, "remat_trace_event_at: trace and out must not be NULL");
    if (i >= trace->n)
        return remat_fail(REMAT_EINVAL, "remat_trace_event_at: event %zu out of range (%zu events)",
                          i, trace->n);
    const trace_event *e = &trace->ev[i];
    *out = (remat_trace_event){.op = e->op, .alloc_index = e->slot, .line = e->line};
    if (e->op == 'a') {
        out->bytes = e->bytes;
        out->stream = e->stream;
        out->tag = e->tag ? trace->tags[e->tag] : NULL;
    }
    return REMAT_OK;
}

/* ==== Replay =================================================================================== */

/* Allocation event e of t as the recorded pool served it: a dedicated segment for 'd' lines. */
static void *trace_alloc(remat_pool *pool, const remat_trace *t, const trace_event *e,
                         remat_stream stream)
{
    const char *tag = e->tag ? t->tags[e->tag] : NULL;
    return e->dedicated ? remat_alloc_dedicated(pool, (size_t)e->bytes, stream, tag)
                        : remat_alloc_tagged(pool, (size_t)e->bytes, stream, tag);
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Runs the events; *done counts those that ran. */
static remat_status replay_events(const remat_trace *t, remat_pool *pool, int real_streams,
                                  void **ptrs, size_t *done)
{
    for (size_t i = 0; i < t->n; i++) {
        const trace_event *e = &t->ev[i];
        if (e->op == 'f') {
            remat_free(pool, ptrs[e->slot]);
            ptrs[e->slot] = NULL;
        } else {
            remat_stream stream = real_streams ? (remat_stream)(uintptr_t)e->stream : NULL;
            ptrs[e->slot] = trace_alloc(pool, t, e, stream);
            if (!ptrs[e->slot])
                return remat_fail_context(REMAT_ENOMEM, "trace line %llu", (unsigned long long)e->line);
        }
        *done = i + 1;
    }
    return REMAT_OK;
}

remat_status remat_trace_replay(const remat_trace *trace, remat_device *dev,
                                const remat_pool_config *cfg, remat_replay_result *out)
{
    if (!trace || !dev || !out)
        return remat_fail(REMAT_EINVAL, "remat_trace_replay: trace, dev and out must not be NULL");
    memset(out, 0, sizeof *out);
    remat_pool *pool = NULL;
    REMAT_TRY(remat_pool_create(dev, cfg, &pool));
    void **ptrs = calloc(trace->n_allocs ? trace->n_allocs : 1, sizeof *ptrs);
    if (!ptrs) {
        remat_pool_destroy(pool);
        return remat_fail(REMAT_ENOMEM, "trace replay: out of host memory");
    }
    /* Trace streams are numbers; on CUDA they are no real streams, so all map to the default. */
    int real_streams = dev->info.kind != REMAT_DEVICE_CUDA;
    size_t done = 0;
    double t0 = now_ns();
    remat_status s = replay_events(trace, pool, real_streams, ptrs, &done);
    double t1 = now_ns();
    remat_pool_stats st = {0};
    if (s == REMAT_OK)
        s = remat_pool_stats_get(pool, &st);
    out->events = done;
    out->peak_requested = st.requested.peak;
    out->peak_allocated = st.allocated.peak;
    out->peak_reserved = st.reserved.peak;
    out->device_allocs = st.n_device_alloc;
    out->device_frees = st.n_device_free;
    out->ns_per_op = done ? (t1 - t0) / (double)done : 0.0;
    for (size_t i = 0; i < trace->n_allocs; i++)
        remat_free(pool, ptrs[i]);
    free(ptrs);
    remat_pool_destroy(pool);
    return s;
}

/* ==== Planned replay ========================================================================== */

typedef struct {
    const remat_trace *t;
    remat_pool *pool;
    int real_streams;
    void **ptrs;
    uint64_t *sizes;         /* 512-rounded size of each allocation */
    uint64_t live;           /* 512-rounded bytes live now */
    remat_pool_stats before; /* the stats when the planned part began */
    int planned;
} planned_run;

/* Step mark `mark`: the first starts the recording, the second plans it and starts the first
 * planned step, every later one starts another. */
static remat_status planned_mark(planned_run *r, size_t mark, remat_planned_replay_result *out)
{
    if (mark == 0)
        return remat_pool_plan_record_begin(r->pool);
    if (mark == 1) {
        remat_layout_result layout;
        REMAT_TRY(remat_pool_plan_record_end(r->pool, &layout));
        out->arena_bytes = layout.arena_bytes;
        out->arena_lower_bound = layout.lower_bound_bytes;
        out->heuristic = layout.heuristic;
        REMAT_TRY(remat_pool_stats_get(r->pool, &r->before));
        REMAT_TRY(remat_pool_reset_peaks(r->pool));
        r->planned = 1;
        out->lower_bound = r->live;
    }
    out->planned_steps += mark >= 1;
    return remat_pool_plan_step_begin(r->pool);
}

static uint64_t planned_round(uint64_t b)
{
    return b ? (b + POOL_ALIGN - 1) / POOL_ALIGN * POOL_ALIGN : POOL_ALIGN;
}

static remat_status planned_events(planned_run *r, remat_planned_replay_result *out, size_t *done)
{
    const remat_trace *t = r->t;
    size_t mark = 0;
    for (size_t i = 0; i <= t->n; i++) {
        for (; mark < t->n_steps && t->steps[mark] == i; mark++)
            REMAT_TRY(planned_mark(r, mark, out));
        if (i == t->n)
            break;
        const trace_event *e = &t->ev[i];
        if (e->op == 'f') {
            remat_free(r->pool, r->ptrs[e->slot]);
            r->ptrs[e->slot] = NULL;
            r->live -= r->sizes[e->slot];
        } else {
            remat_stream stream = r->real_streams ? (remat_stream)(uintptr_t)e->stream : NULL;
            r->ptrs[e->slot] = trace_alloc(r->pool, t, e, stream);
            if (!r->ptrs[e->slot])
                return remat_fail_context(REMAT_ENOMEM, "trace line %llu",
                                          (unsigned long long)e->line);
            r->sizes[e->slot] = planned_round(e->bytes);
            r->live += r->sizes[e->slot];
            if (r->planned && r->live > out->lower_bound)
                out->lower_bound = r->live;
        }
        *done = i + 1;
    }
    return REMAT_OK;
}

remat_status remat_trace_replay_planned(const remat_trace *trace, remat_device *dev,
                                        const remat_pool_config *cfg,
                                        remat_planned_replay_result *out)
{
    if (!trace || !dev || !out)
        return remat_fail(REMAT_EINVAL,
                          "remat_trace_replay_planned: trace, dev and out must not be NULL");
    memset(out, 0, sizeof *out);
    out->heuristic = "none";
    out->steps = trace->n_steps;
    if (trace->n_steps < 2)
        return remat_fail(REMAT_EINVAL,
                          "planned replay: the trace has %zu step mark%s ('s' lines); "
                          "it needs one before the step to record and one after it",
                          trace->n_steps, trace->n_steps == 1 ? "" : "s");
    remat_pool *pool = NULL;
    REMAT_TRY(remat_pool_create(dev, cfg, &pool));
    size_t cap = trace->n_allocs ? trace->n_allocs : 1;
    planned_run r = {.t = trace,
                     .pool = pool,
                     .real_streams = dev->info.kind != REMAT_DEVICE_CUDA,
                     .ptrs = calloc(cap, sizeof(void *)),
                     .sizes = calloc(cap, sizeof(uint64_t))};
    if (!r.ptrs || !r.sizes) {
        free(r.ptrs), free(r.sizes);
        remat_pool_destroy(pool);
        return remat_fail(REMAT_ENOMEM, "trace replay: out of host memory");
    }
    size_t done = 0;
    double t0 = now_ns();
    remat_status s = planned_events(&r, out, &done);
    double t1 = now_ns();
    remat_pool_stats st;
    if (s == REMAT_OK)
        s = remat_pool_stats_get(pool, &st);
    else
        (void)!remat_pool_stats_get(pool, &st); /* the failure above is the one to report */
    out->peak_reserved = st.reserved.peak;
    out->hits = st.n_planned_hits;
    out->misses = st.n_planned_misses;
    out->all.events = done;
#define PLANNED_MAX(a, b) ((a) > (b) ? (a) : (b))
    out->all.peak_requested = PLANNED_MAX(st.requested.peak, r.before.requested.peak);
    out->all.peak_allocated = PLANNED_MAX(st.allocated.peak, r.before.allocated.peak);
    out->all.peak_reserved = PLANNED_MAX(st.reserved.peak, r.before.reserved.peak);
    out->all.device_allocs = st.n_device_alloc;
    out->all.device_frees = st.n_device_free;
    out->all.ns_per_op = done ? (t1 - t0) / (double)done : 0.0;
    for (size_t i = 0; i < trace->n_allocs; i++)
        remat_free(pool, r.ptrs[i]);
    free(r.ptrs), free(r.sizes);
    remat_pool_destroy(pool);
    return s;
}
