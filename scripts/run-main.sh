#!/usr/bin/env bash
# scripts/run-main.sh BUILD: the main job (`make run`). Trains the `small` GPT-2 (4 layers, 128
# channels, batch 4 x 128) on the built-in corpus with its activations under remat's optimal plan at
# 50% of store-all's activation peak, and prints the loss falling, the pool's measured activation
# peak against the prediction and against store-all's, and the measured step-time overhead. The
# store-all reference runs inside the same job (`--baseline`: each step's forward and backward also
# under store-all, interleaved, with bitwise-equal losses checked).
# REMAT_RUN_STEPS (default 150), REMAT_RUN_DEVICE (default auto), REMAT_RUN_POLICY, REMAT_RUN_BUDGET.
set -eu
build=${1:-build}
# OpenMP workers wait passively unless told otherwise: on a shared machine spinning workers lose
# their time slices to other processes and steps run several times slower.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
remat="$build/remat"
steps=${REMAT_RUN_STEPS:-150}
device=${REMAT_RUN_DEVICE:-auto}
policy=${REMAT_RUN_POLICY:-optimal}
budget=${REMAT_RUN_BUDGET:-50%}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

cmd=("$remat" train --model small --batch 4 --steps "$steps" --policy "$policy" --budget "$budget"
     --device "$device" --baseline --json)
echo "== ${cmd[*]}"
"${cmd[@]}" > "$log"
awk -v every=$(( steps / 15 > 0 ? steps / 15 : 1 )) -F'[:,}]' '
    /"step"/ { s = $2 + 0; if (s == 1 || s % every == 0) printf "step %5d  loss %.4f  %7.1f ms  pool peak %.2f MiB\n", s, $4, $6, $8 / 1048576 }' "$log"

field() { grep '"summary"' "$log" | sed -n "s/.*\"$1\": \([-0-9.e]*\).*/\1/p"; }
awk -v first="$(field first_loss)" -v last="$(field final_loss)" -v steps="$steps" \
    -v pred="$(field predicted_act_peak_bytes)" -v meas="$(field measured_act_peak_bytes)" \
    -v all="$(field store_all_measured_act_peak_bytes)" -v ms="$(field fwd_bwd_median_ms)" \
    -v base_ms="$(field store_all_fwd_bwd_median_ms)" -v povh="$(field predicted_overhead)" \
    -v policy="$policy" -v budget="$budget" 'BEGIN {
    printf "\nloss: %.4f -> %.4f over %d steps (uniform guess: ln 256 = %.4f)\n", first, last, steps, log(256)
    printf "activation peak under %s at %s: measured %.2f MiB (predicted %.2f MiB), store-all measured %.2f MiB: %.0f%% of it\n",
           policy, budget, meas / 1048576, pred / 1048576, all / 1048576, 100 * meas / all
    printf "forward+backward: %.1f ms median vs store-all %.1f ms: measured overhead %+.1f%% (predicted %+.1f%%)\n",
           ms, base_ms, 100 * (ms / base_ms - 1), 100 * povh
}'
