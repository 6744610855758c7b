#!/usr/bin/env bash
# scripts/gpu-nccl.sh REMAT: on cuda:0, `remat train --zero 1` (NCCL with one rank: gradients
# reduce-scattered, parameters all-gathered through NCCL) against the same run without --zero;
# the losses of every step must agree within 1e-6 relative. Run by scripts/gpu-check.sh.
set -u
remat=${1:-build/remat}
args=(train --model small --batch 4 --seq 128 --steps 3 --device cuda:0 --json)
a=$("$remat" "${args[@]}" 2>&1) || { printf '%s\n' "$a" | tail -3; echo "gpu-nccl: plain run failed"; exit 1; }
b=$("$remat" "${args[@]}" --zero 1 2>&1) || { printf '%s\n' "$b" | tail -3; echo "gpu-nccl: --zero 1 failed"; exit 1; }
backend=$(printf '%s\n' "$b" | sed -n 's/.*"comm_backend": "\([a-z]*\)".*/\1/p')
la=$(printf '%s\n' "$a" | sed -n 's/.*"step": [0-9]*, "loss": \([0-9.]*\).*/\1/p' | tr '\n' ' ')
lb=$(printf '%s\n' "$b" | sed -n 's/.*"step": [0-9]*, "loss": \([0-9.]*\).*/\1/p' | tr '\n' ' ')
ok=$(awk -v a="$la" -v b="$lb" 'BEGIN { n = split(a, x, " "); m = split(b, y, " "); bad = n != m || n == 0;
    for (i = 1; i <= n; i++) { d = x[i] - y[i]; if (d < 0) d = -d; if (d > 1e-6 * x[i]) bad = 1 }; print bad ? 0 : 1 }')
echo "gpu-nccl: backend ${backend:-?}; losses plain [$la] zero-1 [$lb]"
[ "$ok" = 1 ] && [ "$backend" = nccl ] && echo "gpu-nccl: ok (NCCL, 1 rank, losses equal)" && exit 0
echo "gpu-nccl: FAILED"; exit 1
