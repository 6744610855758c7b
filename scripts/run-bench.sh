#!/usr/bin/env bash
# scripts/run-bench.sh BUILD: runs every benchmark suite and prints a compact summary of ratios.
# REMAT_BENCH_FILTER=regex limits the suites; REMAT_BENCH_REPS sets repetitions (default 5).
set -u
build=${1:-build}
summary=$(mktemp)
trap 'rm -f "$summary"' EXIT
for b in "$build"/bench/bench_*; do
    [ -x "$b" ] || continue
    name=$(basename "$b")
    [[ -n "${REMAT_BENCH_FILTER:-}" && ! "$name" =~ $REMAT_BENCH_FILTER ]] && continue
    echo "==== $name"
    "$b" 2>&1 | tee -a /dev/stderr | grep -E '^(ratio|summary)' >> "$summary" 2>/dev/null
done 2>&1
echo
echo "==== summary (medians, ratios against baselines measured in the same run)"
cat "$summary"
