#!/usr/bin/env bash
# scripts/run-fuzz.sh BUILD SECONDS: runs each libFuzzer target for SECONDS on a copy of its seed
# corpus (tests/corpus/TARGET), with its dictionary tests/fuzz/TARGET.dict if there is one, prints
# executions per target; a crash fails and leaves the input in BUILD/fuzz-crashes/ (turn it into a
# regression test).
set -u
build=${1:-build-fuzz}
secs=${2:-30}
status=0
mkdir -p "$build/fuzz-crashes"
for f in "$build"/fuzz/fuzz_*; do
    [ -x "$f" ] || continue
    name=$(basename "$f")
    work=$(mktemp -d)
    [ -d "tests/corpus/$name" ] && cp -r "tests/corpus/$name/." "$work/"
    log=$(mktemp)
    dict=()
    [ -f "tests/fuzz/$name.dict" ] && dict=(-dict="tests/fuzz/$name.dict")
    ASAN_OPTIONS=detect_leaks=1 "$f" ${dict[@]+"${dict[@]}"} -max_total_time="$secs" -print_final_stats=1 -timeout=10 \
        -rss_limit_mb=4096 -close_fd_mask=3 -artifact_prefix="$build/fuzz-crashes/$name-" "$work" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    printf 'fuzz %-16s %8s s  %10s executions  %s\n' "$name" "$secs" "${execs:-?}" "$([ $rc -eq 0 ] && echo ok || echo FAILED)"
    if [ $rc -ne 0 ]; then
        grep -E 'ERROR|SUMMARY|==[0-9]+==' "$log" | head -20
        status=1
    fi
    rm -rf "$work" "$log"
done
exit $status
