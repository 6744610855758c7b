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
# Multi-process tests (build/mpi/*, built when Open MPI is there) under mpirun at 2 and 4 ranks,
# oversubscribed on this 2-core machine. Open MPI refuses root unless told: the two variables are
# set here for the test runs only, never for users. Each program prints "NAME: R ranks, N checks,
# F failed"; `timeout` turns a hang into a failure.
mpi_env=(env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
         OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
         ASAN_OPTIONS=detect_leaks=0)  # Open MPI never frees its own allocations (see tests/common/cli_run.c)
for t in "$build"/mpi/*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    for np in 2 4; do
        out=$("${mpi_env[@]}" timeout 300 mpirun -np $np "$t" 2>&1); rc=$?
        line=$(printf '%s\n' "$out" | grep -E "^$name: [0-9]+ ranks" | tail -1)
        n=$(printf '%s' "$line" | sed -n 's/.* \([0-9]*\) checks.*/\1/p')
        f=$(printf '%s' "$line" | sed -n 's/.* \([0-9]*\) failed.*/\1/p')
        echo "$name -np $np: ${line:-no summary (rc $rc)}"
        if [ $rc -ne 0 ] || [ -z "$line" ] || [ "${f:-1}" -ne 0 ]; then
            printf '%s\n' "$out" | tail -40
            bins_failed+=("$name-np$np"); failed=$((failed + 1))
        else
            passed=$((passed + 1))
        fi
    done
done
# A rank that dies mid-collective ends the job with a non-zero status, well before the timeout.
if [ -x "$build/mpi/mpi_comm" ]; then
    start=$(date +%s)
    log=$(mktemp)
    "${mpi_env[@]}" timeout 120 mpirun -np 2 "$build/mpi/mpi_comm" die >"$log" 2>&1; rc=$?
    took=$(( $(date +%s) - start )); rm -f "$log"
    if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $took -lt 60 ]; then
        echo "mpi_comm die: job ended with status $rc in ${took}s"; passed=$((passed + 1))
    else
        echo "mpi_comm die: status $rc after ${took}s (want a non-zero exit, no hang)"
        bins_failed+=("mpi_comm-die"); failed=$((failed + 1))
    fi
fi
# The Python suite (python/tests, pytest) joins the counts wherever PyTorch imports. libremat links
# jemalloc, whose static TLS must be reserved at start-up for a later dlopen: GLIBC_TUNABLES.
py=${PYTHON:-/usr/bin/python3}
if ldd "$build/libremat.so" 2>/dev/null | grep -q 'lib[at]san'; then
    echo "python tests: skipped (a sanitizer build: its runtime cannot be dlopen'ed by Python)"
elif ! "$py" -c 'import torch, pytest' 2>/dev/null; then
    echo "python tests: skipped (torch or pytest is not importable by $py; scripts/deps.sh installs them)"
else
    out=$(GLIBC_TUNABLES=glibc.rtld.optional_static_tls=8192 PYTHONPATH="$PWD/python" \
          REMAT_LIBRARY="$PWD/$build/libremat.so" OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} \
          OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} PYTHONDONTWRITEBYTECODE=1 \
          "$py" -m pytest -q -p no:cacheprovider python/tests 2>&1); rc=$?
    last=$(printf '%s\n' "$out" | grep -E '[0-9]+ (passed|failed|error)' | tail -1)
    p=$(printf '%s' "$last" | sed -n 's/.*\b\([0-9][0-9]*\) passed.*/\1/p')
    f=$(printf '%s' "$last" | sed -n 's/.*\b\([0-9][0-9]*\) failed.*/\1/p')
    e=$(printf '%s' "$last" | sed -n 's/.*\b\([0-9][0-9]*\) error.*/\1/p')
    echo "python tests: ${last:-no summary}"
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0} + ${e:-0}))
    if [ $rc -ne 0 ]; then
        printf '%s\n' "$out" | tail -60
        bins_failed+=("python/tests")
        [ $((${f:-0} + ${e:-0})) -eq 0 ] && failed=$((failed + 1))
    fi
fi
echo "[====] Synthesis: Tested: $((passed + failed)) | Passing: $passed | Failing: $failed | Crashing: 0"
echo "$passed passed, $failed failed"
[ ${#bins_failed[@]} -eq 0 ] || { echo "failing test binaries: ${bins_failed[*]}"; exit 1; }
