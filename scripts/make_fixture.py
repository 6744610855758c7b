#!/usr/bin/python3
"""scripts/make_fixture.py: the PyTorch reference fixture of tests/unit/test_model.c.

Builds the `tiny` GPT-2 (layers 2, channels 64, heads 4, vocab 256, seq 64) in PyTorch exactly as
llm.c's train_gpt2.py does, and writes under tests/fixtures/ (about 0.97 MB in all):
  gpt_tiny_weights.bin  initial weights, llm.c checkpoint format (magic 20240326, version 3, fp32)
  gpt_tiny_grads.bin    every parameter's gradient of the first step, same format and order
  gpt_tiny_batch.bin    the B*T+1 tokens of the batch, llm.c token format (magic 20240520, uint16)
  gpt_tiny_ref.txt      B T lr, the first loss, then the losses of 10 AdamW steps on that batch
Run with Debian's python3-torch: /usr/bin/python3 scripts/make_fixture.py [OUTDIR]
"""
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F

L, C, NH, V, VP, MAXT = 2, 64, 4, 256, 256, 64
B, T = 4, 64
LR, BETAS, EPS, WD = 1e-3, (0.9, 0.95), 1e-8, 0.0
SEED = 1234
NAMES = ["wte", "wpe", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
         "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb"]


def init_params(gen):
    def normal(*shape, std=0.02):
        return torch.randn(*shape, generator=gen) * std
    rstd = 0.02 / math.sqrt(2 * L)
    wte = torch.zeros(VP, C)
    wte[:V] = normal(V, C)
    p = {
        "wte": wte, "wpe": normal(MAXT, C),
        "ln1w": 1 + normal(L, C, std=0.1), "ln1b": normal(L, C, std=0.1),
        "qkvw": normal(L, 3 * C, C), "qkvb": normal(L, 3 * C, std=0.1),
        "attprojw": normal(L, C, C, std=rstd), "attprojb": normal(L, C, std=0.1),
        "ln2w": 1 + normal(L, C, std=0.1), "ln2b": normal(L, C, std=0.1),
        "fcw": normal(L, 4 * C, C), "fcb": normal(L, 4 * C, std=0.1),
        "fcprojw": normal(L, C, 4 * C, std=rstd), "fcprojb": normal(L, C, std=0.1),
        "lnfw": 1 + normal(C, std=0.1), "lnfb": normal(C, std=0.1),
    }
    return {k: v.float().requires_grad_(True) for k, v in p.items()}


def forward(p, idx, targets):
    x = p["wte"][idx] + p["wpe"][:T]
    hs = C // NH
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for l in range(L):
        h = F.layer_norm(x, (C,), p["ln1w"][l], p["ln1b"][l], eps=1e-5)
        qkv = h @ p["qkvw"][l].T + p["qkvb"][l]
        q, k, v = qkv.split(C, dim=2)
        q = q.view(B, T, NH, hs).transpose(1, 2)
        k = k.view(B, T, NH, hs).transpose(1, 2)
        v = v.view(B, T, NH, hs).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        x = x + y @ p["attprojw"][l].T + p["attprojb"][l]
        h = F.layer_norm(x, (C,), p["ln2w"][l], p["ln2b"][l], eps=1e-5)
        h = F.gelu(h @ p["fcw"][l].T + p["fcb"][l], approximate="tanh")
        x = x + h @ p["fcprojw"][l].T + p["fcprojb"][l]
    x = F.layer_norm(x, (C,), p["lnfw"], p["lnfb"], eps=1e-5)
    logits = x @ p["wte"][:V].T
    return F.cross_entropy(logits.view(-1, V), targets.reshape(-1))


def write_llmc(path, tensors):
    header = [0] * 256
    header[:8] = [20240326, 3, MAXT, V, L, NH, C, VP]
    with open(path, "wb") as f:
        f.write(struct.pack("<256i", *header))
        for name in NAMES:
            f.write(tensors[name].detach().contiguous().float().numpy().tobytes())


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures")
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(SEED)
    # LayerNorm weights and all biases get random values too, so their gradients are all checked.
    p = init_params(gen)
    tokens = torch.randint(0, V, (B * T + 1,), generator=gen)
    idx, targets = tokens[:-1].view(B, T), tokens[1:].view(B, T)
    write_llmc(os.path.join(out, "gpt_tiny_weights.bin"), p)
    with open(os.path.join(out, "gpt_tiny_batch.bin"), "wb") as f:
        header = [0] * 256
        header[:3] = [20240520, 1, B * T + 1]
        f.write(struct.pack("<256i", *header))
        f.write(struct.pack("<%dH" % (B * T + 1), *tokens.tolist()))

    loss = forward(p, idx, targets)
    loss.backward()
    write_llmc(os.path.join(out, "gpt_tiny_grads.bin"), {k: v.grad for k, v in p.items()})
    first = loss.item()

    opt = torch.optim.AdamW(list(p.values()), lr=LR, betas=BETAS, eps=EPS, weight_decay=WD)
    losses = []
    for _ in range(10):
        opt.zero_grad()
        loss = forward(p, idx, targets)
        losses.append(loss.item())
        loss.backward()
        opt.step()
    with open(os.path.join(out, "gpt_tiny_ref.txt"), "w") as f:
        f.write("# B T lr; first loss; then the loss before each of 10 AdamW steps on the same batch\n")
        f.write("%d %d %.9g\n%.9g\n" % (B, T, LR, first))
        f.write(" ".join("%.9g" % x for x in losses) + "\n")


if __name__ == "__main__":
    main()
