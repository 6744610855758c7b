#!/usr/bin/env bash
# scripts/run-bench.sh BUILD: runs every benchmark suite (every BUILD/bench/bench_*, PyTorch side by
# side where torch is importable, and `remat curve` on the `small` preset) and prints a compact
# summary of ratios, each against a baseline measured in the same run.
# REMAT_BENCH_FILTER=regex limits the suites (names: bench_pool, ..., torch_compare,
# torch_checkpoint, dp_compare, curve);
# REMAT_BENCH_REPS sets repetitions (default here 3, to keep the whole run near 10 minutes on a
# loaded 2-core machine); REMAT_BENCH_CURVE_STEPS sets the curve's measured steps per point (8).
set -u
build=${1:-build}
# The CPU kernels use OpenMP: with the default spin-waiting, idle workers burn the time slices other
# processes need and, on a shared machine, a step runs 5-300x slower. Every suite runs passive.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
export REMAT_BENCH_REPS=${REMAT_BENCH_REPS:-3}
summary=$(mktemp)
trap 'rm -f "$summary"' EXIT
want() { [[ -z "${REMAT_BENCH_FILTER:-}" || "$1" =~ $REMAT_BENCH_FILTER ]]; }
started=$(date +%s)
# Real training traces for bench_frag (`remat train --trace` writes a step mark per step): tiny at
# batch 32 and small at batch 6 (about what `remat fit` plans on 520 and 540 MiB cards), store-all
# and optimal at 50%, each buffer from the pool as it comes (--layout pool).
traces=$(mktemp -d)
trap 'rm -f "$summary"; rm -rf "$traces"' EXIT
if want bench_frag; then
    frag=""
    for mb in "tiny 32" "small 6"; do
        m=${mb% *} b=${mb#* }
        for p in "store-all" "optimal --budget 50%"; do
            name="$m-b$b-${p%% *}"
            f="$traces/$name.trace"
            # shellcheck disable=SC2086 # $p is a policy and its options
            if "$build/remat" train --model "$m" --batch "$b" --steps 4 --policy $p --layout pool --analytic \
                --device host --trace "$f" > /dev/null 2>&1; then
                frag="${frag:+$frag,}$name=$f"
            else
                echo "summary bench_frag: recording the $name training trace FAILED" >> "$summary"
            fi
        done
    done
    export REMAT_FRAG_TRACES="$frag"
fi
for b in "$build"/bench/bench_*; do
    [ -x "$b" ] || continue
    name=$(basename "$b")
    want "$name" || continue
    echo "==== $name"
    t0=$(date +%s)
    # no colours: an escape sequence at the start of a line would hide it from the summary
    "$b" --benchmark_color=false 2>&1 | tee -a /dev/stderr | sed 's/\x1b\[[0-9;]*m//g' |
        grep -E '^(ratio|summary)' >> "$summary" 2>/dev/null
    echo "($name: $(( $(date +%s) - t0 )) s)" >&2
done 2>&1
if want torch_compare; then
    echo "==== torch_compare"
    bench/torch_compare.sh "$build" 2>&1 | tee -a /dev/stderr | grep -E '^(ratio|summary|torch_compare)' >> "$summary" 2>/dev/null
fi 2>&1
if want torch_checkpoint; then
    echo "==== torch_checkpoint (remat.torch against torch.utils.checkpoint at equal memory)"
    py=${PYTHON:-/usr/bin/python3}
    if "$py" -c 'import torch' 2>/dev/null; then
        GLIBC_TUNABLES=glibc.rtld.optional_static_tls=8192 REMAT_LIBRARY="$PWD/$build/libremat.so" \
            OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} "$py" bench/torch_checkpoint.py 2>&1 |
            tee -a /dev/stderr | grep -E '^summary' >> "$summary" 2>/dev/null
    else
        echo "summary torch_checkpoint skipped: PyTorch is not installed for $py" >> "$summary"
    fi
fi 2>&1
if want dp_compare; then
    echo "==== dp_compare (2 ranks x 1 thread against 1 process x 2 threads, same global batch)"
    bench/dp_compare.sh "$build" 2>&1 | tee -a /dev/stderr | grep -E '^summary' >> "$summary" 2>/dev/null
fi 2>&1
if want curve; then
    echo "==== curve (remat curve --model small)"
    out="$build/bench-curve"
    steps=${REMAT_BENCH_CURVE_STEPS:-8}
    if "$build/remat" curve --model small --batch 4 --points 5 --steps "$steps" --out "$out"; then
        # Per point: measured against predicted overhead (percentage points) and peak (%).
        awk -F, 'NR > 1 {
            dpk = 100 * ($4 - $3) / $3; dov = 100 * ($7 - $8);
            printf "summary curve/small %-18s peak %5.1f%% of store-all (measured vs predicted %+.2f%%)  overhead measured %+6.1f%% predicted %+6.1f%% (%+.1f pp)\n",
                $1, 100 * $4 / $10, dpk, 100 * $7, 100 * $8, dov }' "$out/curve.csv" >> "$summary"
    else
        echo "summary curve/small FAILED (exit $?)" >> "$summary"
    fi
fi 2>&1
echo
echo "==== summary (medians, ratios against baselines measured in the same run; $(( $(date +%s) - started )) s)"
cat "$summary"
