#!/usr/bin/env bash
# bench/torch_compare.sh [BUILD]: remat's training step against PyTorch CPU on the same GPT-2
# configuration, batch, sequence length and thread count (2), measured side by side. Both run the
# store-all forward, backward and AdamW step; each reports the median step time after the first
# step. Skips with a message where PyTorch is not installed (PYTHON, default /usr/bin/python3).
set -u
build=${1:-build}
py=${PYTHON:-/usr/bin/python3}
threads=${REMAT_COMPARE_THREADS:-2}
if ! "$py" -c 'import torch' 2>/dev/null; then
    echo "torch_compare: PyTorch is not installed for $py; skipped"
    exit 0
fi
# Passive OpenMP waiting (both sides): on a shared machine spinning workers lose their time
# slices to other processes and a step can run several times slower.
export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads MKL_NUM_THREADS=$threads
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

torch_step_ms() { # MODEL B T STEPS -> median ms of one training step in PyTorch
    "$py" - "$@" <<'PY'
import math, sys, time
import torch
import torch.nn.functional as F
presets = {"tiny": (2, 64, 4, 256, 64), "small": (4, 128, 4, 256, 128),
           "gpt2-124m": (12, 768, 12, 50257, 1024), "gpt2-350m": (24, 1024, 16, 50257, 1024)}
L, C, NH, V, MAXT = presets[sys.argv[1]]
B, T, steps = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
VP = (V + 127) // 128 * 128
torch.set_num_threads(int(__import__("os").environ.get("OMP_NUM_THREADS", "2")))
torch.manual_seed(1337)

class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = torch.nn.LayerNorm(C), torch.nn.LayerNorm(C)
        self.qkv, self.proj = torch.nn.Linear(C, 3 * C), torch.nn.Linear(C, C)
        self.fc, self.fcproj = torch.nn.Linear(C, 4 * C), torch.nn.Linear(4 * C, C)
    def forward(self, x):
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        hs = C // NH
        q, k, v = (t.view(B, T, NH, hs).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
        att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        x = x + self.proj((att @ v).transpose(1, 2).contiguous().view(B, T, C))
        return x + self.fcproj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))

class GPT(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.wte, self.wpe = torch.nn.Embedding(VP, C), torch.nn.Embedding(MAXT, C)
        self.blocks = torch.nn.ModuleList(Block() for _ in range(L))
        self.lnf = torch.nn.LayerNorm(C)
    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(T))
        for b in self.blocks:
            x = b(x)
        logits = self.lnf(x) @ self.wte.weight[:V].T
        return F.cross_entropy(logits.view(-1, V), targets.view(-1))

model = GPT()
opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0)
idx = torch.randint(0, V, (B, T)); tgt = torch.randint(0, V, (B, T))
times = []
for _ in range(steps):
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    loss = model(idx, tgt)
    loss.backward()
    opt.step()
    times.append((time.perf_counter() - t0) * 1e3)
times = sorted(times[1:] if len(times) > 1 else times)
n = len(times)
print("%.3f" % (times[n // 2] if n % 2 else 0.5 * (times[n // 2 - 1] + times[n // 2])))
PY
}

remat_step_ms() { # MODEL B T STEPS -> median ms of one remat training step (store-all)
    "$build/remat" train --model "$1" --batch "$2" --seq "$3" --steps "$4" --device host \
        --policy store-all --analytic --json | tail -1 | sed -n 's/.*"median_ms": \([0-9.]*\).*/\1/p'
}

echo "remat vs PyTorch $("$py" -c 'import torch; print(torch.__version__)') on CPU, $threads threads, store-all, median step"
printf '%-10s %3s %5s %12s %12s %14s %14s %8s\n' model B T "remat ms" "torch ms" "remat tok/s" "torch tok/s" ratio
# REMAT_COMPARE_CONFIGS: comma-separated MODEL:B:T:STEPS entries.
IFS=, read -r -a configs <<< "${REMAT_COMPARE_CONFIGS:-small:8:128:12,gpt2-124m:1:64:4}"
for cfg in "${configs[@]}"; do
    IFS=: read -r -a f <<< "$cfg"
    set -- "${f[@]}"
    r=$(remat_step_ms "$@")
    t=$(torch_step_ms "$@")
    if [ -z "$r" ] || [ -z "$t" ]; then
        echo "torch_compare: $1 failed (remat '${r}', torch '${t}')" >&2
        continue
    fi
    awk -v m="$1" -v b="$2" -v T="$3" -v r="$r" -v t="$t" 'BEGIN {
        printf "%-10s %3d %5d %12.1f %12.1f %14.0f %14.0f %7.2fx\n", m, b, T, r, t,
               b * T / (r / 1e3), b * T / (t / 1e3), t / r }'
    echo "ratio torch_compare/$1-b$2-t$3 remat_tokens_per_s/torch_tokens_per_s = $(awk -v r="$r" -v t="$t" 'BEGIN { printf "%.3f", t / r }') (target >= 1.0)"
done
