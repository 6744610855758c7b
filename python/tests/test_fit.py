"""rt.fit: a torch GPT-2 124M against `remat fit --model gpt2-124m` on the same settings, and
the prediction for a small torch model against a real CPU step's peak."""
import json
import subprocess

import models
import torch

import remat.torch as rt
from remat.torch import _MemoryWindow


def test_torch_gpt2_124m_fits_like_remat_fit(remat_bin):
    """Same card, fp32 AdamW, dropout off, sequence 16 (the profile runs on CPU), both planned
    in remat's pool (allocator="remat", as under use_pool: rounding computed, no slack): the
    store-all, full-recompute and optimal largest batches within 2% of the planner's for its
    GPT-2. Under PyTorch's own allocator (2% slack assumed) every batch is smaller."""
    seq = 16
    model = models.gpt2(**models.GPT2_124M)
    idx = torch.randint(0, 50257, (1, seq))
    got = rt.fit(model, idx, card="a100-80gb", optimizer="adamw", dtype="fp32", allocator="remat")
    slack = rt.fit(model, idx, card="a100-80gb", optimizer="adamw", dtype="fp32",
                   allocator="torch")
    cli = subprocess.run([remat_bin, "fit", "--model", "gpt2-124m", "--seq", str(seq), "--card",
                          "a100-80gb", "--json"], capture_output=True, text=True, check=True)
    want = json.loads(cli.stdout)
    assert got["params"] == 124475904  # the planner's stored count (vocabulary padded to 50304)
    for part in ("weights", "gradients", "optimizer", "workspace"):
        assert got["per_gpu_bytes"][part] == want["per_gpu_bytes"][part], part
    for policy in ("store-all", "full-recompute", "optimal"):
        a, b = got["largest_batch"][policy], want["max_batch"][policy]
        assert abs(a - b) <= 0.02 * b, (policy, a, b)
        assert slack["largest_batch"][policy] < a, policy
    assert got["allocator"] == "remat" and slack["allocator"] == "torch"
    assert slack["per_gpu_bytes"]["reserve"] > got["per_gpu_bytes"]["reserve"]
    assert got["largest_batch"]["llmc-selective"] is None  # no stage options in a torch chain
    assert got["fits"]


def test_small_model_prediction_matches_a_real_cpu_step(capsys):
    """fit's activation bytes at batch 6 (measured at batches 2 and 4, extended linearly) against
    the peak live bytes of a real store-all step at batch 6 (the CPU allocator's events). The
    peak is at the end of the forward, before any parameter gradient exists."""
    model = models.gpt2(layers=4, C=128, NH=4, vocab=256, max_seq=128)
    idx = torch.randint(0, 256, (2, 128))
    r = rt.fit(model, idx, card="16GiB", batch=6, batches=(2, 4), print_result=True)
    text = capsys.readouterr().out
    assert "largest batch per policy:" in text and "store-all" in text
    predicted = r["per_gpu_bytes"]["activations"]
    x = idx.repeat(3, 1)
    for p in model.parameters():
        p.grad = None
    with _MemoryWindow(x.device) as w:
        model(x).backward()
    assert abs(w.peak - predicted) <= 0.05 * predicted, (w.peak, predicted)
    assert r["largest_batch"]["store-all"] < r["largest_batch"]["full-recompute"]
