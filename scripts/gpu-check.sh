#!/usr/bin/env bash
# scripts/gpu-check.sh BUILD: GPU tests and benchmarks (`make gpu-check`), one short table at the end.
# Where no usable GPU is present it says why and exits 1 without running anything.
set -u
build=${1:-build}
remat="$build/remat"
n=$("$remat" info --json | sed -n 's/.*"cuda_devices": \([0-9]*\).*/\1/p')
if [ "${n:-0}" -eq 0 ]; then
    note=$("$remat" info --json | sed -n 's/.*"cuda_note": "\([^"]*\)".*/\1/p')
    echo "gpu-check: no usable GPU here (${note:-unknown reason}); nothing was checked" >&2
    exit 1
fi
table=$(mktemp)
trap 'rm -f "$table"' EXIT
status=0
step() { # step NAME COMMAND...: runs one check, records pass/fail and its last line
    local name=$1; shift
    local out rc
    out=$("$@" 2>&1); rc=$?
    printf '%s\n' "$out"
    printf '%-28s %-6s %s\n' "$name" "$([ $rc -eq 0 ] && echo ok || echo FAIL)" "$(printf '%s' "$out" | tail -1 | cut -c1-90)" >> "$table"
    [ $rc -eq 0 ] || status=1
}
# A real training trace (small GPT, optimal at 50%, each buffer from the pool) for gpu_pool's
# fragmentation comparison with cudaMallocAsync; recorded on the host, replayed on the GPU.
export REMAT_GPU_TRACE="$table.trace"
"$remat" train --model small --batch 6 --steps 4 --policy optimal --budget 50% --layout pool \
    --analytic --device host --trace "$REMAT_GPU_TRACE" > /dev/null 2>&1 || unset REMAT_GPU_TRACE
trap 'rm -f "$table" "$table.trace"' EXIT
for s in "$build"/gpu/gpu_*; do
    [ -x "$s" ] && step "$(basename "$s")" "$s"
done
# The data-parallel path on one GPU: --zero 1 runs the NCCL collectives with one rank, and its
# losses must equal the plain run's (scripts/gpu-nccl.sh compares them).
[ -f "$build/lib/libnccl.so.2" ] && export REMAT_NCCL_LIBRARY="$build/lib/libnccl.so.2"
step nccl_one_rank bash "$(dirname "$0")/gpu-nccl.sh" "$remat"
# A PyTorch job on remat's pool, where torch >= 2.0 sees the GPU (bench/torch_gpu_pool.py).
py=${PYTHON:-/usr/bin/python3}
if "$py" -c 'import sys, torch; sys.exit(not (int(torch.__version__.split(".")[0]) >= 2 and torch.cuda.is_available()))' 2>/dev/null; then
    step torch_gpu_pool env GLIBC_TUNABLES=glibc.rtld.optional_static_tls=8192 \
        REMAT_LIBRARY="$PWD/$build/libremat.so" "$py" bench/torch_gpu_pool.py
else
    echo "torch_gpu_pool: skipped (needs torch >= 2.0 with CUDA for $py)"
fi
echo
echo "==== gpu-check summary"
cat "$table"
exit $status
