#!/usr/bin/env bash
# scripts/run-tests.sh BUILD: runs every Criterion test binary and prints one closing line.
set -u
build=${1:-build}
export REMAT_BIN="$PWD/$build/remat"
export REMAT_ROOT="$PWD"
passed=0 failed=0 bins_failed=()
for t in "$build"/tests/test_*; do
    [ -x "$t" ] || continue
    out=$("$t" --jobs "${CRITERION_JOBS:-2}" 2>&1); rc=$?
    synth=$(printf '%s\n' "$out" | grep 'Synthesis:' | tail -1)
    echo "$(basename "$t"): ${synth#*Synthesis: }"
    p=$(printf '%s' "$synth" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p')
    f=$(printf '%s' "$synth" | sed -n 's/.*Failing: \([0-9]*\).*/\1/p')
    cr=$(printf '%s' "$synth" | sed -n 's/.*Crashing: \([0-9]*\).*/\1/p')
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0}))
    if [ $rc -ne 0 ] || [ -z "$synth" ]; then
        printf '%s\n' "$out" | grep -vE '^\[====\] Running' | head -60
        bins_failed+=("$(basename "$t")")
        [ "${f:-0}" -eq 0 ] && failed=$((failed + 1))
    fi
done
echo "[====] Synthesis: Tested: $((passed + failed)) | Passing: $passed | Failing: $failed | Crashing: 0"
echo "$passed passed, $failed failed"
[ ${#bins_failed[@]} -eq 0 ] || { echo "failing test binaries: ${bins_failed[*]}"; exit 1; }
