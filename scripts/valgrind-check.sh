#!/usr/bin/env bash
# scripts/valgrind-check.sh [BUILD]: runs a short `remat train` (tiny, 2 steps), `remat plan` and
# `remat replay` under valgrind's memcheck (errors and definite/indirect leaks fail), plus a few
# failing commands whose error paths must be as clean (with their own exit code kept).
# OMP_WAIT_POLICY is set so that remat does not re-exec itself (cli/main.c): under valgrind,
# /proc/self/exe is valgrind's tool. jemalloc's malloc is intercepted through --soname-synonyms.
set -u
build=${1:-build}
remat="$build/remat"
[ -x "$remat" ] || { echo "valgrind-check: $remat not built" >&2; exit 2; }
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=2
vg=(valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect
    --show-leak-kinds=definite,indirect --soname-synonyms=somalloc=*jemalloc*)
status=0

# check EXPECTED_EXIT DESCRIPTION ARGS...: memcheck errors exit 99, so any other code is remat's.
check() {
    local want=$1 what=$2
    shift 2
    local t0=$SECONDS rc
    "${vg[@]}" --error-exitcode=99 "$remat" "$@" >/dev/null 2>"$tmp"
    rc=$?
    if [ "$rc" -eq "$want" ]; then
        printf 'valgrind %-34s ok (exit %d, %ds)\n' "$what" "$rc" $((SECONDS - t0))
    else
        printf 'valgrind %-34s FAILED (exit %d, expected %d)\n' "$what" "$rc" "$want"
        head -40 "$tmp"
        status=1
    fi
}

tmp=$(mktemp)
out=$(mktemp -d)
check 0 "train tiny, 2 steps" train --model tiny --steps 2 --batch 2 --seq 16 --device host \
    --policy sqrt --save "$out/w.bin"
check 0 "plan gpt2-small chain" plan examples/gpt2-small-chain.json --budget 50% --json
check 0 "replay small trace" replay tests/bad-inputs/trace_ok.trace --device host --baseline
check 2 "replay: free of an unknown id" replay tests/bad-inputs/trace_free_unknown.trace
check 1 "plan: infeasible budget" plan examples/gpt2-small-chain.json --budget 1MiB
check 2 "train: truncated weights file" train --model tests/bad-inputs/weights_truncated.bin \
    --steps 1 --device host
check 0 "train from the saved weights" train --model "$out/w.bin" --steps 1 --batch 2 \
    --seq 16 --device host
rm -rf "$tmp" "$out"
exit $status
