#!/usr/bin/env python3
"""bench/torch_checkpoint.py: remat.torch.checkpoint against PyTorch's own tools at equal memory,
on a GPT-2-small-shaped block stack (12 blocks, C 768, 12 heads) on CPU, all measured in one run.

For every baseline (torch.utils.checkpoint per block, checkpoint_sequential with S segments) the
memory is that baseline's activation peak under remat's cost model (checkpoint_sequential with S
segments is remat's periodic:K, K = L/S: the same kept inputs, the last segment stored whole), and
remat's optimal schedule is planned for exactly that budget, twice: on the chain of whole blocks
(the stages the torch tools see) and on the fine chain (each block as its attention and MLP
halves, with the options of rt.profile(options=True): the attention core, GELU, LayerNorm and
softmax outputs recomputed). All run forward+backward and their median step times are compared
with the plain (store-all) step of the same run. Then remat alone, on both chains, at fractions of
the store-all activation memory: the overhead-versus-memory curve, measured and predicted. Each
configuration's real peak (the CPU allocator's events) is printed beside it.
The configurations compared are timed round by round, interleaved with the plain step, so each
overhead is against plain steps taken at the same moments: it is printed as the ratio of the
medians and, as "paired", the median of the per-round ratios.

On CPU, PyTorch's tensors come straight from glibc's malloc, which hands large blocks back to the
kernel and maps them again, so each fresh tensor pays page faults that a caching allocator (torch's
CUDA one, remat's pool) does not, and more so a schedule that frees and remakes activations. By
default (--heap warm) the bench therefore keeps glibc's heap mapped, for every configuration
alike: mallopt sets the mmap and trim thresholds to 1 GiB and the top pad to 256 MiB. --heap glibc
leaves glibc's defaults.

Lines starting "summary" are what scripts/run-bench.sh collects. REMAT_BENCH_REPS sets the timed
steps per configuration (default 3, after one warm-up step).
"""
import argparse
import ctypes
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))
sys.path.insert(0, os.path.join(HERE, "..", "python", "tests"))

import torch  # noqa: E402
import torch.utils.checkpoint as tck  # noqa: E402

import models  # noqa: E402
import remat.torch as rt  # noqa: E402
from remat.torch import _MemoryWindow  # noqa: E402


def step(model, run, x):
    for p in model.parameters():
        p.grad = None
    xin = x.detach().requires_grad_()
    run(xin).square().mean().backward()


def keep_heap_warm():
    """glibc's heap kept mapped (see the docstring); returns what was done, for the header."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return "not tuned (this C library has no mallopt)"
    M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
    ok = all(mallopt(k, v) == 1 for k, v in ((M_MMAP_THRESHOLD, 1 << 30),
                                             (M_TRIM_THRESHOLD, 1 << 30),
                                             (M_TOP_PAD, 256 << 20)))
    return "kept warm (mallopt)" if ok else "not tuned (mallopt refused a setting)"


def time_steps(model, runs, x, reps):
    """Seconds of a step of each of `runs`, interleaved round by round (one warm-up round), so a
    change of machine load hits every configuration alike: per run its median, and its median
    ratio to the first run (the plain step) round by round."""
    samples = [[] for _ in runs]
    for r in range(reps + 1):
        for k, run in enumerate(runs):
            t0 = time.perf_counter()
            step(model, run, x)
            if r:
                samples[k].append(time.perf_counter() - t0)
    medians = [statistics.median(s) for s in samples]
    paired = [statistics.median(t / p for t, p in zip(s, samples[0])) for s in samples]
    return medians, paired


def real_peak(model, run, x):
    """Peak live bytes of one step above its start, with the parameter gradients allocated
    before it (as under gradient accumulation): activations, their gradients and workspaces,
    and each weight gradient while it is being added in."""
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    xin = x.detach().requires_grad_()
    with _MemoryWindow(x.device) as w:
        run(xin).square().mean().backward()
    return w.peak


def mib(n):
    return n / 2**20


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--channels", type=int, default=768)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--reps", type=int, default=int(os.environ.get("REMAT_BENCH_REPS", "3")))
    ap.add_argument("--segments", default="2,3,4,6", help="checkpoint_sequential segment counts")
    ap.add_argument("--fractions", default="0.8,0.5,0.33,0.2,0.1",
                    help="remat budgets as fractions of the store-all activation memory")
    ap.add_argument("--heap", choices=("warm", "glibc"), default="warm",
                    help="keep glibc's heap mapped (default) or leave its defaults")
    a = ap.parse_args()
    heap = keep_heap_warm() if a.heap == "warm" else "glibc's defaults"
    torch.manual_seed(0)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    blocks = torch.nn.Sequential(*[models.Block(a.channels, a.heads) for _ in range(a.layers)])
    x = torch.randn(a.batch, a.seq, a.channels)
    L = a.layers
    print(f"torch_checkpoint: {L} blocks, C {a.channels}, {a.heads} heads, batch {a.batch}, "
          f"seq {a.seq}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"{a.reps} timed steps per configuration, heap {heap}")
    chain = rt.profile(blocks, x.requires_grad_(), reps=3, min_time=0.05)
    fine = rt.profile(blocks, x, reps=3, min_time=0.05, expand=True, options=True)
    full = chain.store_all_bytes()
    (base,), _ = time_steps(blocks, [blocks], x, a.reps)
    base_peak = real_peak(blocks, blocks, x)
    grads = sum(p.numel() * p.element_size() for p in blocks.parameters())
    print(f"plain autograd: {1000 * base:.1f} ms/step, modelled activations {mib(full):.1f} MiB, "
          f"real step peak {mib(base_peak):.1f} MiB (above {mib(grads):.1f} MiB of parameter "
          "gradients allocated before each measured step)")

    def per_block(inp):
        for b in blocks:
            inp = tck.checkpoint(b, inp, use_reentrant=True)
        return inp

    baselines = [("per-block checkpoint", per_block, "periodic:1")]
    for s in (int(v) for v in a.segments.split(",") if v):
        if 1 < s < L and L % s == 0:
            baselines.append((f"checkpoint_sequential({s})",
                              lambda inp, s=s: tck.checkpoint_sequential(blocks, s, inp),
                              f"periodic:{L // s}"))
    print(f"fine chain: {len(fine.stages)} stages, modelled store-all "
          f"{mib(fine.store_all_bytes()):.1f} MiB, options per stage "
          f"{[len(st.get('options', [])) for st in fine.stages[:2]]} (first block)")

    def pct(t, plain):
        return f"{100 * (t / plain - 1):+6.1f}%"

    def paired(r):
        return f"(paired {100 * (r - 1):+.1f}%)"

    for name, run, policy in baselines:
        mem = chain.plan(full, policy=policy)["peak_bytes"]
        ck = rt.checkpoint(blocks, x, mem, chain=chain)
        cf = rt.checkpoint(blocks, x, mem, chain=fine)
        (plain, t_torch, t_remat, t_fine), (_, r_torch, r_remat, r_fine) = time_steps(
            blocks, [blocks, run, ck, cf], x, a.reps)
        p_torch, p_remat, p_fine = (real_peak(blocks, r, x) for r in (run, ck, cf))
        print(f"summary torch_checkpoint {name:<26} memory {mib(mem):7.1f} MiB "
              f"({100 * mem / full:5.1f}% of store-all): "
              f"torch {pct(t_torch, plain)} {paired(r_torch)}  "
              f"remat {pct(t_remat, plain)} {paired(r_remat)} "
              f"(predicted {100 * ck.plan['overhead']:+.1f}%)  "
              f"remat fine {pct(t_fine, plain)} {paired(r_fine)} "
              f"(predicted {100 * cf.plan['overhead']:+.1f}%)  "
              f"remat/torch time {t_remat / t_torch:.3f} fine {t_fine / t_torch:.3f}  "
              f"real peaks torch {mib(p_torch):.1f} remat {mib(p_remat):.1f} "
              f"fine {mib(p_fine):.1f} MiB")
    for f in (float(v) for v in a.fractions.split(",") if v):
        for label, c in (("blocks", chain), ("fine", fine)):
            try:
                ck = rt.checkpoint(blocks, x, int(f * full), chain=c)
            except ValueError as e:
                print(f"summary torch_checkpoint remat {label} at {100 * f:.0f}%: {e}")
                continue
            (plain, t), (_, r) = time_steps(blocks, [blocks, ck], x, a.reps)
            print(f"summary torch_checkpoint remat {label:<6} at {100 * f:3.0f}% of store-all "
                  f"({mib(ck.plan['peak_bytes']):7.1f} MiB): overhead measured {pct(t, plain)} "
                  f"{paired(r)} "
                  f"predicted {100 * ck.plan['overhead']:+6.1f}%  "
                  f"real step peak {mib(real_peak(blocks, ck, x)):.1f} MiB")


if __name__ == "__main__":
    main()
