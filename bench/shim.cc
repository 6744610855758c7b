// bench/shim.cc: the one C++ file: bench.h's C interface over Google Benchmark.
#include "bench/bench.h"

#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

struct remat_bench_state {
    benchmark::State *st;
};

namespace {

struct Compare {
    std::string name, baseline;
    double target;
};

std::vector<Compare> &compares()
{
    static std::vector<Compare> c;
    return c;
}

// Captures the median real time (ns) of every benchmark while printing as usual.
class MedianReporter : public benchmark::ConsoleReporter {
  public:
    std::map<std::string, double> median_ns;
    void ReportRuns(const std::vector<Run> &runs) override
    {
        for (const Run &r : runs) {
            if (r.run_type == Run::RT_Aggregate && r.aggregate_name == "median")
                median_ns[r.run_name.function_name] = r.GetAdjustedRealTime() *
                    (r.time_unit == benchmark::kNanosecond ? 1.0
                     : r.time_unit == benchmark::kMicrosecond ? 1e3
                     : r.time_unit == benchmark::kMillisecond ? 1e6 : 1e9);
            else if (r.run_type == Run::RT_Iteration && !median_ns.count(r.run_name.function_name))
                median_ns[r.run_name.function_name] = r.GetAdjustedRealTime() *
                    (r.time_unit == benchmark::kNanosecond ? 1.0
                     : r.time_unit == benchmark::kMicrosecond ? 1e3
                     : r.time_unit == benchmark::kMillisecond ? 1e6 : 1e9);
        }
        ConsoleReporter::ReportRuns(runs);
    }
};

} // namespace

extern "C" void remat_bench_register(const char *name, remat_bench_fn fn, void *arg)
{
    const char *env = getenv("REMAT_BENCH_REPS");
    int reps = env ? atoi(env) : 5;
    if (reps < 1)
        reps = 1;
    auto *b = benchmark::RegisterBenchmark(name, [fn, arg](benchmark::State &st) {
        remat_bench_state s{&st};
        fn(&s, arg);
    });
    b->Repetitions(reps)->ReportAggregatesOnly(true);
}

extern "C" int remat_bench_running(remat_bench_state *st) { return st->st->KeepRunning(); }
extern "C" void remat_bench_pause(remat_bench_state *st) { st->st->PauseTiming(); }
extern "C" void remat_bench_resume(remat_bench_state *st) { st->st->ResumeTiming(); }
extern "C" void remat_bench_set_items(remat_bench_state *st, int64_t items) { st->st->SetItemsProcessed(items); }
extern "C" void remat_bench_counter(remat_bench_state *st, const char *name, double value)
{
    st->st->counters[name] = value;
}

extern "C" void remat_bench_compare(const char *name, const char *baseline, double target)
{
    compares().push_back({name, baseline, target});
}

extern "C" int remat_bench_main(int argc, char **argv)
{
    benchmark::Initialize(&argc, argv);
    MedianReporter rep;
    benchmark::RunSpecifiedBenchmarks(&rep);
    for (const Compare &c : compares()) {
        auto a = rep.median_ns.find(c.name), b = rep.median_ns.find(c.baseline);
        if (a == rep.median_ns.end() || b == rep.median_ns.end() || b->second <= 0)
            continue;
        double ratio = a->second / b->second;
        std::printf("ratio %-40s / %-40s = %6.3f", c.name.c_str(), c.baseline.c_str(), ratio);
        if (c.target > 0)
            std::printf("  (target <= %.2f: %s)", c.target, ratio <= c.target ? "met" : "MISSED");
        std::printf("\n");
    }
    benchmark::Shutdown();
    return 0;
}
