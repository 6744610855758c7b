#!/usr/bin/env bash
# scripts/gpu-nccl.sh REMAT: on cuda:0, `remat train --zero K` for K = 1, 2, 3 (NCCL with one
# rank: ZeRO-1's reduce-scatter and all-gather of the flat buffers, ZeRO-2/3's per-unit
# reduce-scatters and gathers, all through NCCL on device buffers) against the same run without
# --zero; the losses of every step must agree within 1e-6 relative. In fp32 and in bf16 (the CUDA
# bf16 kernels, bf16 gradients through NCCL, fp32 master shards). Run by scripts/gpu-check.sh.
set -u
remat=${1:-build/remat}
args=(train --model small --batch 4 --seq 128 --steps 3 --device cuda:0 --json)
losses() { printf '%s\n' "$1" | sed -n 's/.*"step": [0-9]*, "loss": \([0-9.]*\).*/\1/p' | tr '\n' ' '; }
status=0
for dt in fp32 bf16; do
    a=$("$remat" "${args[@]}" --dtype "$dt" 2>&1) || { printf '%s\n' "$a" | tail -3; echo "gpu-nccl: $dt plain run failed"; status=1; continue; }
    la=$(losses "$a")
    for k in 1 2 3; do
        b=$("$remat" "${args[@]}" --dtype "$dt" --zero "$k" 2>&1) ||
            { printf '%s\n' "$b" | tail -3; echo "gpu-nccl: $dt --zero $k failed"; status=1; continue; }
        backend=$(printf '%s\n' "$b" | sed -n 's/.*"comm_backend": "\([a-z]*\)".*/\1/p')
        lb=$(losses "$b")
        ok=$(awk -v a="$la" -v b="$lb" 'BEGIN { n = split(a, x, " "); m = split(b, y, " "); bad = n != m || n == 0;
            for (i = 1; i <= n; i++) { d = x[i] - y[i]; if (d < 0) d = -d; if (d > 1e-6 * x[i]) bad = 1 }; print bad ? 0 : 1 }')
        echo "gpu-nccl: backend ${backend:-?}; losses plain [$la] $dt zero-$k [$lb]"
        if [ "$ok" = 1 ] && [ "$backend" = nccl ]; then
            echo "gpu-nccl: $dt zero-$k ok (NCCL, 1 rank, losses equal)"
        else
            echo "gpu-nccl: $dt zero-$k FAILED"; status=1
        fi
    done
done
exit $status
