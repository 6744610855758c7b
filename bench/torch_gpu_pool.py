#!/usr/bin/env python3
"""bench/torch_gpu_pool.py: a PyTorch job on remat's pool (run by `make gpu-check` where a GPU and
torch >= 2.0 are present). Installs the pool as torch's CUDA allocator with a limit, trains a small
torch GPT for a few steps under an optimal checkpoint plan at 50% (gradients compared bitwise with
plain autograd on the same GPU), and checks remat's pool statistics: every allocation went through
the pool, the limit held, and the tensors freed returned their bytes. Exit 0 on success, 1 on a
failed check, 2 where it cannot run (says why)."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))
sys.path.insert(0, os.path.join(HERE, "..", "python", "tests"))

import torch  # noqa: E402

import models  # noqa: E402
import remat.torch as rt  # noqa: E402

LIMIT = 4 << 30


def main():
    if int(torch.__version__.split(".")[0]) < 2 or not torch.cuda.is_available():
        print(f"torch_gpu_pool: needs torch >= 2.0 and a CUDA device (torch {torch.__version__}, "
              f"cuda available: {torch.cuda.is_available()})")
        return 2
    rt.use_pool(limit=LIMIT)
    dev = torch.device("cuda:0")
    torch.manual_seed(0)
    model = models.gpt2(layers=4, C=256, NH=4, vocab=1024, max_seq=128, dropout=0.1).to(dev)
    idx = torch.randint(0, 1024, (8, 128), device=dev)
    model[-1].targets = torch.randint(0, 1024, (8, 128), device=dev)
    ck = rt.checkpoint(model, idx, "50%")
    after_profile = rt.pool_stats(0)

    def grads(run):
        for p in model.parameters():
            p.grad = None
        torch.manual_seed(7)
        loss = run(idx)
        loss.backward()
        return loss.item(), [p.grad.clone() for p in model.parameters()]

    ref_loss, ref = grads(model)
    loss, got = grads(ck)
    fails = []
    if loss != ref_loss or not all(torch.equal(a, b) for a, b in zip(ref, got)):
        fails.append("gradients under the plan differ from plain autograd")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(5):
        opt.zero_grad(set_to_none=True)
        loss = ck(idx)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    torch.cuda.synchronize()
    st = rt.pool_stats(0)
    if after_profile["n_alloc"] == 0 or st["n_alloc"] <= after_profile["n_alloc"]:
        fails.append(f"the pool saw no allocations ({st['n_alloc']})")
    if st["reserved"]["peak"] > LIMIT:
        fails.append(f"reserved peak {st['reserved']['peak']} above the limit {LIMIT}")
    if not losses[-1] < losses[0]:
        fails.append(f"loss did not fall: {losses}")
    live = st["requested"]["current"]
    del ref, got, opt, ck
    torch.cuda.synchronize()
    if rt.pool_stats(0)["requested"]["current"] >= live:
        fails.append("freeing tensors returned nothing to the pool")
    print(f"torch_gpu_pool: {st['n_alloc']} allocations through remat's pool, peak requested "
          f"{st['requested']['peak']} B, reserved {st['reserved']['peak']} B (limit {LIMIT}), "
          f"{st['n_cache_hits']} cache hits; losses {losses[0]:.3f} -> {losses[-1]:.3f}")
    for f in fails:
        print("torch_gpu_pool: FAIL:", f)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
