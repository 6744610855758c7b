#!/usr/bin/env bash
# bench/dp_compare.sh BUILD: data parallel on this machine. The same global batch of gpt2-124m at
# T=256 trained three ways, interleaved round by round so each sees the same load: one process
# with 2 OpenMP threads (--batch 2B), and 2 ranks x 1 thread under mpirun (--batch B each) with
# ZeRO-0, 1, 2 and 3. Prints per configuration the median step time over rounds (each round's
# value is that run's median step), tokens/s relative to the one process, the share of the step
# spent in the collectives and the bytes sent a step. REMAT_DP_MODEL, REMAT_DP_SEQ,
# REMAT_DP_BATCH (per rank), REMAT_DP_STEPS, REMAT_BENCH_REPS (rounds) and REMAT_DP_CONFIGS
# change the defaults (gpt2-124m, 256, 2, 5, 3, "one zero0 zero1 zero2 zero3"; "one" is the
# baseline and always runs).
set -u
build=${1:-build}
model=${REMAT_DP_MODEL:-gpt2-124m} seq=${REMAT_DP_SEQ:-256} b=${REMAT_DP_BATCH:-2}
steps=${REMAT_DP_STEPS:-5} rounds=${REMAT_BENCH_REPS:-3}
configs="one"
for c in ${REMAT_DP_CONFIGS:-zero0 zero1 zero2 zero3}; do
    case $c in
    one) ;;
    zero[0-3]) configs="$configs $c" ;;
    *) echo "dp_compare: REMAT_DP_CONFIGS: unknown configuration '$c' (one, zero0..zero3)" >&2; exit 2 ;;
    esac
done
if ! command -v mpirun >/dev/null 2>&1; then
    echo "summary dp_compare skipped: mpirun is not installed"; exit 0
fi
export OMP_WAIT_POLICY=passive
mpi=(env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
     OMP_NUM_THREADS=1 mpirun -np 2)
common=(train --model "$model" --seq "$seq" --steps "$steps" --device host --json)
results=$(mktemp)
trap 'rm -f "$results"' EXIT
field() { sed -n "s/.*\"$1\": \([0-9.e+-]*\).*/\1/p" | tail -1; }
for ((r = 1; r <= rounds; r++)); do
    for cfg in $configs; do
        case $cfg in
        one) out=$(OMP_NUM_THREADS=2 "$build/remat" "${common[@]}" --batch $((2 * b)) 2>&1) ;;
        *) out=$("${mpi[@]}" "$build/remat" "${common[@]}" --batch "$b" --zero "${cfg#zero}" 2>&1) ;;
        esac
        ms=$(printf '%s\n' "$out" | grep '"summary"' | field median_ms)
        cm=$(printf '%s\n' "$out" | grep '"summary"' | field comm_ms_per_step)
        cb=$(printf '%s\n' "$out" | grep '"summary"' | field comm_bytes_per_step)
        if [ -z "$ms" ]; then
            echo "summary dp_compare: $cfg FAILED"; printf '%s\n' "$out" | tail -5; exit 1
        fi
        echo "round $r $cfg median step ${ms} ms, collectives ${cm:-0} ms"
        echo "$cfg $ms ${cm:-0} ${cb:-0}" >> "$results"
    done
done
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
base=$(awk '$1 == "one" {print $2}' "$results" | median)
for cfg in $configs; do
    ms=$(awk -v c=$cfg '$1 == c {print $2}' "$results" | median)
    cm=$(awk -v c=$cfg '$1 == c {print $3}' "$results" | median)
    cb=$(awk -v c=$cfg '$1 == c {print $4}' "$results" | median)
    awk -v c=$cfg -v ms="$ms" -v cm="$cm" -v cb="$cb" -v base="$base" -v m="$model" -v t="$seq" -v b="$b" 'BEGIN {
        printf "summary dp_compare %s T=%d global batch %d: %-5s step %8.1f ms  tokens/s x%.3f of 1 process x 2 threads  collectives %.1f%% of the step  sent %.1f MB a step\n",
            m, t, 2 * b, c, ms, base / ms, 100 * cm / ms, cb / 1e6 }'
done
