/* bench/bench.h: a small C interface to Google Benchmark, so benchmarks are written in C.
 * Every benchmark is repeated (REMAT_BENCH_REPS, default 5) and reported by its median; pairs
 * registered with remat_bench_compare print the ratio of their medians, measured in the same run. */
#ifndef REMAT_BENCH_H
#define REMAT_BENCH_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct remat_bench_state remat_bench_state;
typedef void (*remat_bench_fn)(remat_bench_state *st, void *arg);

/* Registers fn under name; arg is passed through. */
void remat_bench_register(const char *name, remat_bench_fn fn, void *arg);
/* The benchmark loop: `while (remat_bench_running(st)) { ... }` */
int remat_bench_running(remat_bench_state *st);
void remat_bench_pause(remat_bench_state *st);
void remat_bench_resume(remat_bench_state *st);
/* Items processed per iteration in total (for items/s), and a named counter. */
void remat_bench_set_items(remat_bench_state *st, int64_t items);
void remat_bench_counter(remat_bench_state *st, const char *name, double value);
/* After the run, print "name / baseline = ratio" of median real times; with target > 0 also
 * "target <= target: met|MISSED". */
void remat_bench_compare(const char *name, const char *baseline, double target);
/* Runs the registered benchmarks (Google Benchmark flags accepted), prints the comparisons, returns
 * 0 on success. */
int remat_bench_main(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif
