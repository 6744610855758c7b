"""Models the Python tests and bench/torch_checkpoint.py run: an MLP stack, and GPT-2 written in
torch as stages (embedding, blocks, head with the loss), the block as in bench/torch_compare.sh.
The head computes the loss's gradient in its forward, as remat's trainer (and llm.c) do, so it
keeps dlogits' product, not the logits: the layout `remat fit --model gpt2-*` plans."""
import math

import torch
import torch.nn.functional as F


def mlp(layers, width, dropout=0.0):
    return torch.nn.Sequential(*[
        torch.nn.Sequential(torch.nn.Linear(width, 4 * width), torch.nn.GELU(),
                            torch.nn.Dropout(dropout), torch.nn.Linear(4 * width, width))
        for _ in range(layers)])


class Attention(torch.nn.Module):
    """The causal attention core: qkv (B, T, 3C) to y (B, T, C); its softmax output (B, NH, T, T)
    is what the block saves most of at long sequences."""

    def __init__(self, C, NH, dropout=0.0):
        super().__init__()
        self.C, self.NH, self.p = C, NH, dropout

    def forward(self, qkv):
        B, T, _ = qkv.shape
        C, hs = self.C, self.C // self.NH
        q, k, v = qkv.split(C, dim=2)
        q, k, v = (t.view(B, T, self.NH, hs).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        mask = torch.ones(T, T, dtype=torch.bool, device=qkv.device).tril()
        att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        att = F.dropout(att, self.p, self.training)
        return (att @ v).transpose(1, 2).contiguous().view(B, T, C)


class AttnHalf(torch.nn.Module):
    """x + proj(attention(qkv(ln1(x)))): the first residual half of a block."""

    def __init__(self, C, NH, dropout=0.0):
        super().__init__()
        self.p = dropout
        self.ln1, self.qkv = torch.nn.LayerNorm(C), torch.nn.Linear(C, 3 * C)
        self.attn, self.proj = Attention(C, NH, dropout), torch.nn.Linear(C, C)

    def forward(self, x):
        return x + F.dropout(self.proj(self.attn(self.qkv(self.ln1(x)))), self.p, self.training)


class MLPHalf(torch.nn.Module):
    """x + fcproj(gelu(fc(ln2(x)))): the second residual half of a block."""

    def __init__(self, C, dropout=0.0):
        super().__init__()
        self.p = dropout
        self.ln2, self.fc = torch.nn.LayerNorm(C), torch.nn.Linear(C, 4 * C)
        self.fcproj = torch.nn.Linear(4 * C, C)

    def forward(self, x):
        h = self.fcproj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))
        return x + F.dropout(h, self.p, self.training)


class Block(torch.nn.Sequential):
    """A GPT-2 block, as the two residual halves in sequence: one stage, or two where the model
    is expanded (rt.profile(..., expand=True))."""

    def __init__(self, C, NH, dropout=0.0):
        super().__init__(AttnHalf(C, NH, dropout), MLPHalf(C, dropout))


class Embed(torch.nn.Module):
    def __init__(self, wte, max_seq, C):
        super().__init__()
        self.wte, self.wpe = wte, torch.nn.Embedding(max_seq, C)

    def forward(self, idx):
        pos = torch.arange(idx.shape[1], device=idx.device)
        return self.wte(idx) + self.wpe(pos)


class _LMLoss(torch.autograd.Function):
    """Mean cross-entropy of x @ w.T against targets; the gradients are formed in the forward
    (softmax in place over the logits), so only d x and d w are kept."""

    @staticmethod
    def forward(ctx, x, w, targets):
        N = x.shape[0] * x.shape[1]
        x2 = x.reshape(N, -1)
        p = x2 @ w.t()
        p.sub_(p.max(dim=1, keepdim=True).values).exp_()
        p.div_(p.sum(dim=1, keepdim=True))
        t = targets.reshape(N)
        rows = torch.arange(N, device=x.device)
        loss = -p[rows, t].log().mean()
        p[rows, t] -= 1
        p.div_(N)
        dx, dw = (p @ w).view_as(x), p.t() @ x2
        del p
        ctx.save_for_backward(dx, dw)
        return loss

    @staticmethod
    def backward(ctx, g):
        dx, dw = ctx.saved_tensors
        return dx * g, dw * g, None


class Head(torch.nn.Module):
    """Final LayerNorm and the tied-embedding loss. Targets: `self.targets` when its shape fits
    the batch, else zeros (the memory and time do not depend on their values)."""

    def __init__(self, wte, C):
        super().__init__()
        self.lnf, self.wte = torch.nn.LayerNorm(C), wte
        self.targets = None

    def forward(self, x):
        t = self.targets
        if t is None or t.shape != x.shape[:2]:
            t = torch.zeros(x.shape[:2], dtype=torch.long, device=x.device)
        return _LMLoss.apply(self.lnf(x), self.wte.weight, t)


def gpt2(layers, C, NH, vocab, max_seq, dropout=0.0):
    """The list of stages: Embed, `layers` blocks, Head; vocab rows padded to 128 as llm.c."""
    wte = torch.nn.Embedding((vocab + 127) // 128 * 128, C)
    return torch.nn.Sequential(Embed(wte, max_seq, C),
                               *[Block(C, NH, dropout) for _ in range(layers)], Head(wte, C))


GPT2_124M = dict(layers=12, C=768, NH=12, vocab=50257, max_seq=1024)
