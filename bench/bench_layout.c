/* bench/bench_layout.c: offset planning time and quality (remat_layout_plan) on 10^4-buffer steps:
 * a synthetic transformer training step (activations saved in the forward and freed in reverse in
 * the backward, per-op workspaces, gradients flowing down) and random lifetimes. Target: <= 10 ms
 * per plan of 10^4 buffers; the arena / lower bound ratio is printed with it. */
#include "bench/bench.h"
#include "remat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    const char *name;
    remat_layout_buffer *bufs;
    uint64_t *offsets;
    size_t n;
    double ms, ratio;
    const char *heuristic;
} layout_case;

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12, *s ^= *s << 25, *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1Dull;
}

/* A GPT-style step of `layers` layers at BT tokens, C channels: per layer in the forward 11 saved
 * activations and two one-op workspaces; per layer in the backward a gradient buffer, a workspace
 * and the residual gradient passed down, the layer's saved activations freed as its backward ends.
 * 16 buffers per layer. */
static size_t gen_training(remat_layout_buffer *b, size_t layers, uint64_t BT, uint64_t C)
{
    static const uint64_t act_c[11] = {1, 3, 4, 1, 1, 1, 1, 4, 4, 1, 1}; /* multiples of C */
    size_t n = 0, *saved = malloc(sizeof *saved * layers * 11);
    uint64_t op = 0;
    for (size_t l = 0; l < layers; l++)
        for (int k = 0; k < 11; k++, op++) {
            if (k == 2 || k == 7)
                b[n++] = (remat_layout_buffer){BT * C * 4, op, op};
            saved[l * 11 + k] = n;
            b[n++] = (remat_layout_buffer){BT * C * act_c[k] * 4, op, op};
        }
    uint64_t dres_from = op;
    for (size_t l = layers; l-- > 0;) {
        b[n++] = (remat_layout_buffer){BT * 4 * C * 4, op, op + 1};     /* dfc */
        b[n++] = (remat_layout_buffer){BT * C * 4 * 3, op + 1, op + 1}; /* workspace */
        b[n++] = (remat_layout_buffer){BT * C * 4, dres_from, op + 2};  /* dres from above */
        dres_from = op + 2;
        op += 3;
        for (int k = 0; k < 11; k++)
            b[saved[l * 11 + k]].last = op - 1;
    }
    free(saved);
    return n;
}

static size_t gen_random(remat_layout_buffer *b, size_t n, uint64_t ops, uint64_t seed)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t bytes = (rng_next(&seed) % ((uint64_t)1 << (rng_next(&seed) % 25))) + 1;
        uint64_t f = rng_next(&seed) % ops;
        uint64_t len =
            rng_next(&seed) % 8 == 0 ? rng_next(&seed) % ops : rng_next(&seed) % (ops / 50);
        b[i] = (remat_layout_buffer){bytes, f, f + len < ops ? f + len : ops - 1};
    }
    return n;
}

static void bench_plan(remat_bench_state *st, void *arg)
{
    layout_case *c = arg;
    remat_layout_result r = {0};
    while (remat_bench_running(st)) {
        struct timespec t0, t1; /* CPU time: the machine may be shared */
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
        if (remat_layout_plan(c->bufs, c->n, 0, c->offsets, &r) != REMAT_OK)
            fprintf(stderr, "bench_layout: %s\n", remat_last_error());
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
        double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
        if (c->ms == 0 || ms < c->ms)
            c->ms = ms;
    }
    c->ratio = r.lower_bound_bytes ? (double)r.arena_bytes / (double)r.lower_bound_bytes : 0;
    c->heuristic = r.heuristic;
    remat_bench_counter(st, "arena_over_bound", c->ratio);
    remat_bench_counter(st, "buffers", (double)c->n);
}

int main(int argc, char **argv)
{
    enum { N = 10000 };
    static layout_case cases[3] = {{.name = "layout/training-10k"},
                                   {.name = "layout/random-10k"},
                                   {.name = "layout/training-1k"}};
    for (int i = 0; i < 3; i++) {
        cases[i].bufs = malloc(sizeof *cases[i].bufs * N);
        cases[i].offsets = malloc(sizeof *cases[i].offsets * N);
    }
    cases[0].n = gen_training(cases[0].bufs, N / 16, 4 * 256, 512); /* 16 buffers a layer */
    cases[1].n = gen_random(cases[1].bufs, N, 4 * N, 12345);
    cases[2].n = gen_training(cases[2].bufs, N / 160, 4 * 256, 512);
    for (int i = 0; i < 3; i++)
        remat_bench_register(cases[i].name, bench_plan, &cases[i]);
    int rc = remat_bench_main(argc, argv);
    printf("summary layout: least CPU ms per plan (target <= 10 ms for the 10^4-buffer training "
           "step), arena / lower bound, the winning heuristic\n");
    for (int i = 0; i < 3; i++)
        printf("summary %-24s %5zu buffers  %8.2f ms%s  %6.4f  %s\n", cases[i].name, cases[i].n,
               cases[i].ms, i == 0 ? (cases[i].ms <= 10 ? "  met" : "  MISSED") : "",
               cases[i].ratio, cases[i].heuristic ? cases[i].heuristic : "?");
    for (int i = 0; i < 3; i++)
        free(cases[i].bufs), free(cases[i].offsets);
    return rc;
}
