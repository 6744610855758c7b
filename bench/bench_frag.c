/* bench/bench_frag.c: fragmentation on a synthetic transformer training trace. A GPT-2-style model
 * (per-tensor parameters, gradients and AdamW states that persist; per-layer activations allocated
 * in the forward and freed in the backward; per-op temporaries) trains for several steps at several
 * batch sizes; the trace is replayed on a simulated card through the pool and through no cache.
 * Target: peak reserved / peak requested <= 1.05 for the pool. `bench_frag --trace-out FILE
 * [MODEL]` writes the mixed-batch trace for `remat replay`. Real training traces (`remat train
 * --trace`, with its step marks) are replayed too when REMAT_FRAG_TRACES names them as
 * NAME=FILE[,NAME=FILE...]; scripts/run-bench.sh records tiny and small ones. */
#include "bench/bench.h"
#include "remat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ==== The generator ============================================================================
 */

typedef struct {
    int layers, channels, heads, seq, vocab, steps;
    int batches[4];
    int n_batches;
} gen_model;

typedef struct {
    FILE *f;
    uint64_t next_id;
} gen_out;

static uint64_t gen_alloc(gen_out *g, uint64_t bytes, const char *tag)
{
    uint64_t id = g->next_id++;
    fprintf(g->f, "a %llu %llu 0 %s\n", (unsigned long long)id, (unsigned long long)bytes, tag);
    return id;
}

static void gen_free(gen_out *g, uint64_t id)
{
    fprintf(g->f, "f %llu\n", (unsigned long long)id);
}

/* A per-op temporary (a workspace): allocated and freed around the op. */
static void gen_tmp(gen_out *g, uint64_t bytes)
{
    gen_free(g, gen_alloc(g, bytes, "tmp"));
}

#define GEN_PARAMS_PER_LAYER 12
#define GEN_ACTS_PER_LAYER 11

/* Sizes (floats) of one layer's parameter tensors, in llm.c's order. */
static void gen_layer_params(const gen_model *m, uint64_t out[GEN_PARAMS_PER_LAYER])
{
    uint64_t C = (uint64_t)m->channels;
    uint64_t sizes[GEN_PARAMS_PER_LAYER] = {C, C, 3 * C * C, 3 * C, C * C,     C,
                                            C, C, 4 * C * C, 4 * C, 4 * C * C, C};
    memcpy(out, sizes, sizeof sizes);
}

/* Sizes (floats) of one layer's saved activations for batch B. */
static void gen_layer_acts(const gen_model *m, int B, uint64_t out[GEN_ACTS_PER_LAYER])
{
    uint64_t BT = (uint64_t)B * (uint64_t)m->seq, C = (uint64_t)m->channels;
    uint64_t att = (uint64_t)B * (uint64_t)m->heads * (uint64_t)m->seq * (uint64_t)m->seq;
    uint64_t sizes[GEN_ACTS_PER_LAYER] = {BT * C, BT * 3 * C, att,        BT * C, BT * C, BT * C,
                                          BT * C, BT * 4 * C, BT * 4 * C, BT * C, BT * C};
    memcpy(out, sizes, sizeof sizes);
}

/* One training step at batch B: forward (activations kept), loss, backward (activations freed in
 * reverse, gradient buffers flowing down), then the optimizer. */
static void gen_step(gen_out *g, const gen_model *m, int B, uint64_t *grads_live, int first)
{
    int L = m->layers;
    uint64_t BT = (uint64_t)B * (uint64_t)m->seq, C = (uint64_t)m->channels, V = (uint64_t)m->vocab;
    fprintf(g->f, "s\n"); /* a step mark: `remat replay --planned` records and repeats steps */
    uint64_t *acts = malloc(sizeof *acts * (size_t)L * GEN_ACTS_PER_LAYER);
    uint64_t sizes[GEN_ACTS_PER_LAYER];
    gen_layer_acts(m, B, sizes);
    uint64_t tokens = gen_alloc(g, BT * 4, "act"), emb = gen_alloc(g, BT * C * 4, "act");
    for (int l = 0; l < L; l++)
        for (int k = 0; k < GEN_ACTS_PER_LAYER; k++) {
            if (k == 2 || k == 7)
                gen_tmp(g, BT * C * 4); /* GEMM / softmax workspace */
            acts[l * GEN_ACTS_PER_LAYER + k] = gen_alloc(g, sizes[k] * 4, "act");
        }
    uint64_t lnf = gen_alloc(g, BT * C * 4, "act"), logits = gen_alloc(g, BT * V * 4, "act");
    uint64_t dlogits = gen_alloc(g, BT * V * 4, "act");
    gen_free(g, logits);
    uint64_t dres = gen_alloc(g, BT * C * 4, "act");
    gen_free(g, dlogits);
    gen_free(g, lnf);
    for (int l = L - 1; l >= 0; l--) {
        uint64_t dfc = gen_alloc(g, BT * 4 * C * 4, "act");
        uint64_t datt = gen_alloc(
            g, (uint64_t)B * (uint64_t)m->heads * (uint64_t)m->seq * (uint64_t)m->seq * 4, "act");
        gen_tmp(g, BT * 3 * C * 4);
        uint64_t dnext = gen_alloc(g, BT * C * 4, "act");
        gen_free(g, datt);
        gen_free(g, dfc);
        gen_free(g, dres);
        dres = dnext;
        for (int k = GEN_ACTS_PER_LAYER - 1; k >= 0; k--)
            gen_free(g, acts[l * GEN_ACTS_PER_LAYER + k]);
    }
    gen_free(g, dres);
    gen_free(g, emb);
    gen_free(g, tokens);
    if (first) /* gradients live from the first backward on, as PyTorch's .grad */
        for (int l = 0; l < L; l++) {
            uint64_t p[GEN_PARAMS_PER_LAYER];
            gen_layer_params(m, p);
            for (int k = 0; k < GEN_PARAMS_PER_LAYER; k++)
                grads_live[l * GEN_PARAMS_PER_LAYER + k] = gen_alloc(g, p[k] * 4, "grads");
        }
    gen_tmp(g, 4 << 20); /* optimizer scratch */
    free(acts);
}

/* Writes a whole trace: parameters, then steps at each batch size in turn. */
static void gen_trace(FILE *f, const gen_model *m)
{
    gen_out g = {f, 1};
    int L = m->layers;
    uint64_t C = (uint64_t)m->channels;
    fprintf(f, "# remat-trace 1\n# synthetic GPT-2-style training: L=%d C=%d T=%d V=%d\n", L,
            m->channels, m->seq, m->vocab);
    gen_alloc(&g, (uint64_t)m->vocab * C * 4, "params"); /* wte */
    gen_alloc(&g, (uint64_t)m->seq * C * 4, "params");   /* wpe */
    uint64_t *grads = calloc((size_t)L * GEN_PARAMS_PER_LAYER, sizeof *grads);
    for (int l = 0; l < L; l++) {
        uint64_t p[GEN_PARAMS_PER_LAYER];
        gen_layer_params(m, p);
        for (int k = 0; k < GEN_PARAMS_PER_LAYER; k++)
            gen_alloc(&g, p[k] * 4, "params");
    }
    for (int b = 0; b < m->n_batches; b++)
        for (int s = 0; s < m->steps; s++) {
            gen_step(&g, m, m->batches[b], grads, b == 0 && s == 0);
            if (b == 0 && s == 0) /* AdamW's m and v appear at the first optimizer step */
                for (int l = 0; l < L; l++) {
                    uint64_t p[GEN_PARAMS_PER_LAYER];
                    gen_layer_params(m, p);
                    for (int k = 0; k < 2 * GEN_PARAMS_PER_LAYER; k++)
                        gen_alloc(&g, p[k % GEN_PARAMS_PER_LAYER] * 4, "optim");
                }
        }
    free(grads);
}

static remat_trace *gen_parsed(const gen_model *m)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    gen_trace(f, m);
    fclose(f);
    FILE *in = fmemopen(buf, len, "r");
    remat_trace *t = NULL;
    if (remat_trace_parse(in, "synthetic", &t) != REMAT_OK)
        fprintf(stderr, "bench_frag: %s\n", remat_last_error());
    fclose(in);
    free(buf);
    return t;
}

/* ==== The benchmark ============================================================================
 */

enum { FRAG_POOL, FRAG_EXPANDABLE, FRAG_NO_CACHE, FRAG_PLANNED, FRAG_MODES };
static const char *frag_mode_names[FRAG_MODES] = {"pool", "pool-expandable", "nocache", "planned"};

typedef struct {
    char name[96];
    const gen_model *model;
    remat_trace *trace;
    int mode;
    double ratio;
    /* peak reserved / lower bound (the most 512-rounded bytes live at once); planned: over the
     * planned steps (bound) and over the whole trace, the recorded step included (whole) */
    double bound, whole, arena; /* arena: planned arena / the recorded step's own bound */
    uint64_t hits, misses;
} frag_case;

/* The most 512-rounded bytes live at once over the whole trace: no pool can reserve less. */
static uint64_t frag_lower_bound(const remat_trace *t)
{
    size_t n = remat_trace_events(t), n_alloc = 0;
    remat_trace_event e;
    for (size_t i = 0; i < n; i++)
        if (remat_trace_event_at(t, i, &e) == REMAT_OK && e.op == 'a')
            n_alloc++;
    uint64_t *size = calloc(n_alloc ? n_alloc : 1, sizeof *size), live = 0, best = 0;
    for (size_t i = 0; i < n && size; i++) {
        if (remat_trace_event_at(t, i, &e) != REMAT_OK)
            break;
        if (e.op == 'a') {
            size[e.alloc_index] = e.bytes ? (e.bytes + 511) / 512 * 512 : 512;
            live += size[e.alloc_index];
            best = live > best ? live : best;
        } else {
            live -= size[e.alloc_index];
        }
    }
    free(size);
    return best;
}

static remat_device *frag_dev;

#define FRAG_MAX_REAL 16

typedef struct {
    char name[48];
    remat_trace *trace;
} frag_real;

/* Loads the traces REMAT_FRAG_TRACES names (NAME=FILE, comma-separated); how many in *n. */
static int frag_real_load(frag_real *real, int *n)
{
    const char *list = getenv("REMAT_FRAG_TRACES");
    *n = 0;
    for (const char *p = list; p && *p;) {
        if (*n == FRAG_MAX_REAL) {
            fprintf(stderr, "bench_frag: REMAT_FRAG_TRACES names more than %d traces\n",
                    FRAG_MAX_REAL);
            return -1;
        }
        const char *end = strchr(p, ','), *eq = strchr(p, '=');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char item[512];
        if (!eq || eq >= p + len || len >= sizeof item || (size_t)(eq - p) >= sizeof real->name) {
            fprintf(stderr, "bench_frag: REMAT_FRAG_TRACES: '%.*s' is not NAME=FILE\n", (int)len,
                    p);
            return -1;
        }
        memcpy(item, p, len);
        item[len] = 0;
        item[eq - p] = 0;
        frag_real *r = &real[(*n)++];
        memcpy(r->name, item, (size_t)(eq - p) + 1); /* checked to fit above */
        if (remat_trace_load(item + (eq - p) + 1, &r->trace) != REMAT_OK) {
            fprintf(stderr, "bench_frag: %s\n", remat_last_error());
            return -1;
        }
        p = end ? end + 1 : p + len;
    }
    return 0;
}

static void bench_replay(remat_bench_state *st, void *arg)
{
    frag_case *c = arg;
    remat_pool_config cfg = {.expandable_segments = c->mode == FRAG_EXPANDABLE,
                             .no_cache = c->mode == FRAG_NO_CACHE};
    remat_replay_result r = {0};
    remat_planned_replay_result p = {0};
    while (remat_bench_running(st)) {
        remat_status s = c->mode == FRAG_PLANNED
                             ? remat_trace_replay_planned(c->trace, frag_dev, &cfg, &p)
                             : remat_trace_replay(c->trace, frag_dev, &cfg, &r);
        if (s != REMAT_OK)
            fprintf(stderr, "bench_frag: %s\n", remat_last_error());
    }
    uint64_t lb = frag_lower_bound(c->trace);
    if (c->mode == FRAG_PLANNED) {
        r = p.all;
        c->bound = p.lower_bound ? (double)p.peak_reserved / (double)p.lower_bound : 0;
        c->hits = p.hits, c->misses = p.misses;
        c->arena = p.arena_lower_bound ? (double)p.arena_bytes / (double)p.arena_lower_bound : 0;
        remat_bench_counter(st, "planned_hits", (double)p.hits);
        remat_bench_counter(st, "planned_misses", (double)p.misses);
    } else {
        c->bound = lb ? (double)r.peak_reserved / (double)lb : 0;
    }
    c->whole = lb ? (double)r.peak_reserved / (double)lb : 0;
    remat_bench_counter(st, "reserved_over_bound", c->bound);
    c->ratio = r.peak_requested ? (double)r.peak_reserved / (double)r.peak_requested : 0;
    remat_bench_counter(st, "reserved_over_requested", c->ratio);
    remat_bench_counter(st, "peak_reserved_MiB", (double)r.peak_reserved / 1048576.0);
    remat_bench_counter(st, "device_allocs", (double)r.device_allocs);
    remat_bench_counter(st, "ns_per_op", r.ns_per_op);
}

int main(int argc, char **argv)
{
    /* gpt2-124m-like shapes (12 layers, 768 channels, vocabulary 50304) at seq 1024 (and 512),
     * and a smaller model (6 layers, 512 channels) at seq 256; fixed and changing batch sizes. */
    static const struct {
        const char *name;
        gen_model model;
    } models[] = {
        {"gpt2-124m-b4", {12, 768, 12, 1024, 50304, 3, {4}, 1}},
        {"gpt2-124m-b8", {12, 768, 12, 1024, 50304, 3, {8}, 1}},
        {"gpt2-124m-b2-8-4", {12, 768, 12, 1024, 50304, 3, {2, 8, 4}, 3}},
        {"small-b1-16-3", {6, 512, 8, 256, 8192, 3, {1, 16, 3}, 3}},
        /* more fixed batches; at B=1 the activations lie on both sides of 10 MiB (buffer vs
         * exact-size segments) */
        {"gpt2-124m-b1", {12, 768, 12, 1024, 50304, 3, {1}, 1}},
        {"gpt2-124m-t512-b16", {12, 768, 12, 512, 50304, 3, {16}, 1}},
        {"small-b8", {6, 512, 8, 256, 8192, 3, {8}, 1}},
    };
    enum { N_MODELS = sizeof models / sizeof models[0] };
    if ((argc == 3 || argc == 4) && strcmp(argv[1], "--trace-out") == 0) {
        int which = 2; /* the mixed-batch trace unless a model is named */
        for (int m = 0; argc == 4 && m < N_MODELS; m++)
            if (strcmp(argv[3], models[m].name) == 0)
                which = m;
        FILE *f = fopen(argv[2], "w");
        if (!f)
            return perror(argv[2]), 1;
        gen_trace(f, &models[which].model);
        return fclose(f) == 0 ? 0 : 1;
    }
    if (remat_device_open("sim:1TiB", &frag_dev) != REMAT_OK) {
        fprintf(stderr, "bench_frag: %s\n", remat_last_error());
        return 1;
    }
    static frag_real real[FRAG_MAX_REAL];
    int n_real = 0;
    if (frag_real_load(real, &n_real) != 0)
        return 1;
    static frag_case cases[(N_MODELS + FRAG_MAX_REAL) * FRAG_MODES];
    remat_trace *traces[N_MODELS + FRAG_MAX_REAL];
    int n_traces = N_MODELS + n_real;
    for (int m = 0; m < n_traces; m++) {
        traces[m] = m < N_MODELS ? gen_parsed(&models[m].model) : real[m - N_MODELS].trace;
        if (!traces[m])
            return 1;
        for (int k = 0; k < FRAG_MODES; k++) {
            frag_case *c = &cases[m * FRAG_MODES + k];
            if (m < N_MODELS)
                snprintf(c->name, sizeof c->name, "frag/%s/%s", frag_mode_names[k], models[m].name);
            else /* a real training trace */
                snprintf(c->name, sizeof c->name, "frag/%s/train-%s", frag_mode_names[k],
                         real[m - N_MODELS].name);
            c->model = m < N_MODELS ? &models[m].model : NULL;
            c->trace = traces[m];
            c->mode = k;
            remat_bench_register(c->name, bench_replay, c);
        }
        remat_bench_compare(cases[m * FRAG_MODES].name, cases[m * FRAG_MODES + FRAG_NO_CACHE].name,
                            0);
    }
    int rc = remat_bench_main(argc, argv);
    printf("summary fragmentation: peak reserved / peak requested (target <= 1.05 for the pool)\n");
    for (int i = 0; i < n_traces * FRAG_MODES; i++)
        if (cases[i].mode != FRAG_PLANNED)
            printf("summary %-40s %6.3f%s\n", cases[i].name, cases[i].ratio,
                   cases[i].mode == FRAG_NO_CACHE ? ""
                   : cases[i].ratio <= 1.05       ? "  met"
                                                  : "  MISSED");
    printf(
        "summary peak reserved / lower bound (most 512-rounded bytes live at once); planned: over "
        "the planned steps (target <= 1.02), and over the whole trace with the recorded step\n");
    for (int i = 0; i < n_traces * FRAG_MODES; i++) {
        const frag_case *c = &cases[i];
        if (c->mode == FRAG_PLANNED)
            printf("summary %-40s %6.3f%s  whole %6.3f  arena/step-bound %6.4f  hits %llu misses "
                   "%llu\n",
                   c->name, c->bound, c->bound <= 1.02 ? "  met" : "  MISSED", c->whole, c->arena,
                   (unsigned long long)c->hits, (unsigned long long)c->misses);
        else if (c->mode != FRAG_NO_CACHE)
            printf("summary %-40s %6.3f\n", c->name, c->bound);
    }
    for (int m = 0; m < n_traces; m++)
        remat_trace_free(traces[m]);
    remat_device_close(frag_dev);
    return rc;
}
