"""Finer stages (expand: a GPT-2 block as its attention and MLP halves) and per-stage options
measured from the module ("recompute:<sub-module>", and the cheap "recompute-gelu",
"recompute-ln" and their combinations): gradients bitwise equal to plain autograd when the
schedule runs options, the saved bytes of each option against a count by hand, and the held bytes
within the budget and 5% of the plan."""
import models
import pytest
import torch

import remat.torch as rt
from test_checkpoint import grads_of


def fixed_times(chain):
    """The profiled bytes with fixed times (fwd 1, bwd 2, an option's backward 2.1), so the
    plan, and its use of the options, does not depend on this machine's timing noise."""
    stages = [dict(s, fwd=1.0, bwd=2.0, options=[dict(o, bwd=2.1) for o in s["options"]])
              if "options" in s else dict(s, fwd=1.0, bwd=2.0) for s in chain.stages]
    return rt.Chain(chain.name, chain.input_bytes, stages, chain.expand)


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_expanded_blocks_with_options_bitwise(dropout):
    model = torch.nn.Sequential(*[models.Block(64, 4, dropout) for _ in range(4)])
    x = torch.randn(2, 64, 64)
    chain = rt.profile(model, x, timing=False, expand=True, options=True)
    assert [s["name"].split(":")[1] for s in chain.stages] == ["AttnHalf", "MLPHalf"] * 4
    names = {o["name"] for s in chain.stages for o in s.get("options", [])}
    # The fewest-bytes option of each half is kept whatever the measured times.
    assert {"recompute-gelu-ln", "recompute-ln+recompute:attn"} <= names, names
    chain = fixed_times(chain)
    ref_y, ref = grads_of(model, model, x)
    used = 0
    for budget in ["90%", "60%", "40%"]:
        ck = rt.checkpoint(model, x, budget, chain=chain)
        used += sum("recompute" in op for op in ck.plan["ops"])
        y, got = grads_of(model, ck, x)
        assert torch.equal(y, ref_y), budget
        for k, (a, b) in enumerate(zip(ref, got)):
            assert torch.equal(a, b), f"gradient {k} differs at budget {budget}"
        held, plan = ck.last_peak_bytes, ck.plan
        assert held <= plan["budget_bytes"], (budget, held)
        assert abs(held - plan["held_bytes"]) <= 0.05 * plan["held_bytes"], (budget, held, plan)
    assert used > 0  # the options ran


def test_option_of_another_model_is_refused():
    model = torch.nn.Sequential(models.Block(32, 4))
    x = torch.randn(1, 8, 32)
    chain = rt.profile(model, x, timing=False, expand=True, options=True)
    other = torch.nn.Sequential(torch.nn.Linear(32, 32), torch.nn.Linear(32, 32))
    with pytest.raises(ValueError, match="names no sub-module"):
        rt.checkpoint(other, x, "90%", chain=chain)


def test_cheap_options_drop_exactly_the_gelu_and_layernorm_outputs():
    """MLPHalf keeps, for its backward: ln2's output (C per token, through fc's view of it), its
    mean and rstd, fc's output (4C, for the GELU), the GELU's output (4C, for fcproj) and the
    stage output (C). recompute-gelu drops the GELU's output, recompute-ln ln2's output,
    recompute-gelu-ln both; the bytes are counted by hand. A LayerNorm called as a function has no
    known eps and stays kept."""
    B, T, C = 2, 16, 32
    x = torch.randn(B, T, C)
    chain = rt.profile([models.MLPHalf(C)], x, timing=False, options=True)
    st = chain.stages[0]
    f, tok = 4, B * T
    full = f * tok * (C + 4 * C + 4 * C + C) + 2 * f * tok
    assert st["saved_bytes"] == full
    got = {o["name"]: o["saved_bytes"] for o in st["options"]}
    # recompute-gelu and recompute-ln alone stay where their measured backward is cheaper.
    want = {"recompute-gelu-ln": full - f * tok * 5 * C, "recompute-gelu": full - f * tok * 4 * C,
            "recompute-ln": full - f * tok * C}
    assert "recompute-gelu-ln" in got and all(got[k] == want[k] for k in got), (got, want)

    class Functional(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(C))
            self.fc = torch.nn.Linear(C, C)

        def forward(self, x):
            return self.fc(torch.nn.functional.layer_norm(x, (C,), self.w, None, 1e-5))

    chain = rt.profile([Functional()], x, timing=False, options=True)
    assert "options" not in chain.stages[0], chain.stages[0]


def test_gelu_and_layernorm_rebuilt_bitwise_with_dropout_and_token_input():
    """The whole GPT (token input, tied embedding) expanded, with dropout, planned tight enough
    that the cheap options run: gradients equal plain autograd's bit for bit."""
    model = models.gpt2(2, 64, 4, 96, 32, dropout=0.1)
    idx = torch.randint(0, 96, (2, 32))
    chain = fixed_times(rt.profile(model, idx, timing=False, expand=True, options=True))
    ref_y, ref = grads_of(model, model, idx)
    for budget in ["60%", "40%"]:
        ck = rt.checkpoint(model, idx, budget, chain=chain)
        assert any("recompute-gelu" in op for op in ck.plan["ops"]), (budget, ck.plan["ops"])
        y, got = grads_of(model, ck, idx)
        assert torch.equal(y, ref_y), budget
        for k, (a, b) in enumerate(zip(ref, got)):
            assert torch.equal(a, b), f"gradient {k} differs at budget {budget}"


def test_options_bitwise_under_bf16_autocast():
    """Under CPU autocast (bf16) each linear layer keeps its own bf16 copy of its input, so there
    is no GELU or LayerNorm output to drop, and the profile offers only sub-modules. A sub-module
    recomputed in the backward must not pick up autocast's cached, graphless weight copy that its
    no-grad forward made (its weight would get no gradient): the gradients equal plain
    autograd's."""
    model = torch.nn.Sequential(*[models.Block(64, 4) for _ in range(3)])
    x = torch.randn(2, 32, 64)

    def run(m):
        def f(inp):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return m(inp).float()
        return f

    with torch.autocast("cpu", dtype=torch.bfloat16):
        chain = rt.profile(model, x, timing=False, expand=True, options=True)
    names = {o["name"] for st in chain.stages for o in st.get("options", [])}
    assert "recompute:fc" in names and not any("-gelu" in n or "-ln" in n for n in names), names
    # A hand-made schedule, so the case does not depend on the solver: store nothing in the
    # forward but a_0, then recompute every stage inside the backward's autocast region, the
    # MLP halves (odd stages) under recompute:fc.
    from remat import _lib
    L = len(chain.stages)
    opt = [[o["name"] for o in st.get("options", [])].index("recompute:fc") if i % 2 else -1
           for i, st in enumerate(chain.stages)]
    ops = [(_lib.F_CK, 0, -1)] + [(_lib.F_N, i, -1) for i in range(1, L - 1)] + \
        [(_lib.F_ALL, L - 1, -1), (_lib.B, L - 1, -1)]
    for i in range(L - 2, -1, -1):
        ops += [(_lib.F_CK, 0, -1)] * (i > 0) + [(_lib.F_N, k, -1) for k in range(1, i)] + \
            [(_lib.F_ALL, i, opt[i]), (_lib.B, i, -1)]
    plan = dict(chain.plan("100%"), _ops=ops)
    ck = rt.Checkpointed(rt._stages(model, True), plan)
    ref_y, ref = grads_of(model, run(model), x)
    y, got = grads_of(model, run(ck), x)
    assert torch.equal(y, ref_y)
    for k, (a, b) in enumerate(zip(ref, got)):
        assert torch.equal(a, b), f"gradient {k} differs"


def test_bad_option_names_are_refused():
    stage = models.MLPHalf(8)
    for bad in ["recompute-relu", "recompute-gelu+recompute-ln", "recompute:nope", "gelu",
                "recompute-softmax-softmax",
                "recompute:fc+recompute:fc"]:
        with pytest.raises(ValueError, match="option"):
            rt._parse_option(stage, bad)
    sub, kinds = rt._parse_option(stage, "recompute-gelu-ln+recompute:fc")
    assert sub is stage.fc and kinds == {"gelu", "ln"}


def only_options(chain, kind):
    """The chain with, per stage, only the options whose name has `kind` in it."""
    stages = [dict(s, options=[o for o in s["options"] if kind in o["name"]])
              if "options" in s else s for s in chain.stages]
    return rt.Chain(chain.name, chain.input_bytes, [
        s if s.get("options") else {k: v for k, v in s.items() if k != "options"}
        for s in stages], chain.expand)


def test_softmax_option_drops_exactly_the_attention_probabilities():
    """The attention core keeps q, k and v (copies made by the batched products), the scale, the
    causal mask, the softmax output (B, NH, T, T) and its output; recompute-softmax drops exactly
    the softmax output, rebuilt from q and k in the backward."""
    B, T, C, NH = 2, 16, 32, 4
    chain = rt.profile([models.Attention(C, NH)], torch.randn(B, T, 3 * C), timing=False,
                       options=True)
    st = chain.stages[0]
    got = {o["name"]: o["saved_bytes"] for o in st["options"]}
    assert got == {"recompute-softmax": st["saved_bytes"] - 4 * B * NH * T * T}, (st, got)


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_softmax_rebuilt_bitwise_in_gpt2_blocks(dropout):
    """Blocks expanded, only the softmax options left in the chain and a tight budget, so the
    attention probabilities are dropped and rebuilt: gradients equal plain autograd's bit for
    bit, the held bytes within the budget and 5% of the plan."""
    model = torch.nn.Sequential(*[models.Block(64, 4, dropout) for _ in range(4)])
    x = torch.randn(2, 64, 64)
    chain = only_options(fixed_times(rt.profile(model, x, timing=False, expand=True,
                                                options=True)), "softmax")
    # The Pareto filter of the (untimed, so noisy) profile may drop some; one is enough.
    assert any(s.get("options") for s in chain.stages), chain.stages
    ref_y, ref = grads_of(model, model, x)
    used = 0
    for budget in ["70%", "50%"]:
        ck = rt.checkpoint(model, x, budget, chain=chain)
        used += sum("softmax" in op for op in ck.plan["ops"])
        y, got = grads_of(model, ck, x)
        assert torch.equal(y, ref_y), budget
        for k, (a, b) in enumerate(zip(ref, got)):
            assert torch.equal(a, b), f"gradient {k} differs at budget {budget}"
        held, plan = ck.last_peak_bytes, ck.plan
        assert held <= plan["budget_bytes"], (budget, held)
        assert abs(held - plan["held_bytes"]) <= 0.05 * plan["held_bytes"], (budget, held, plan)
    assert used > 0


class _Scores(torch.nn.Module):
    """softmax(q k^T / 2 masked with `fill`) v over a (B, T, 3C) input, one head; the causal
    mask is one (T, T) matrix, or with `per_sample` one per sample (B, T, T)."""

    def __init__(self, fill, per_sample=False):
        super().__init__()
        self.fill, self.per_sample = fill, per_sample

    def forward(self, qkv):
        q, k, v = qkv.chunk(3, dim=-1)
        B, T = qkv.shape[:2]
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)
        if self.per_sample:
            mask = mask.expand(B, T, T).clone()
        return (q @ k.transpose(-2, -1) / 2.0).masked_fill(mask, self.fill).softmax(-1) @ v


@pytest.mark.parametrize("per_sample", [False, True])
def test_softmax_is_kept_where_its_masked_outputs_are_not_zero(per_sample):
    """Autograd keeps a fill's mask but not its value; the rebuild uses -inf, which gives the
    forward's bits only where every masked output is exactly 0. A finite fill far below the
    scores (-1e4) underflows to 0 there and is rebuilt, bitwise; a fill of -1 leaves masked
    outputs above 0, and the softmax output stays kept (no option). One mask for every slice is
    checked by one product, a mask per sample slice by slice: both must decide alike."""
    x = torch.randn(2, 64, 24)
    far = rt.profile([_Scores(-1e4, per_sample)], x, timing=False, options=True).stages[0]
    assert [o["name"] for o in far["options"]] == ["recompute-softmax"], far
    near = rt.profile([_Scores(-1.0, per_sample)], x, timing=False, options=True).stages[0]
    assert "options" not in near, near
    model = torch.nn.Sequential(torch.nn.Linear(24, 24), _Scores(-1e4), torch.nn.Linear(8, 24))
    chain = only_options(fixed_times(rt.profile(model, x, timing=False, options=True)),
                         "softmax")
    # A hand-made schedule that stores every stage, the middle one under recompute-softmax.
    from remat import _lib
    assert [o["name"] for o in chain.stages[1]["options"]] == ["recompute-softmax"]
    ops = [(_lib.F_ALL, 0, -1), (_lib.F_ALL, 1, 0), (_lib.F_ALL, 2, -1), (_lib.B, 2, -1),
           (_lib.B, 1, -1), (_lib.B, 0, -1)]
    ck = rt.Checkpointed(list(model), dict(chain.plan("100%"), _ops=ops))
    ref_y, ref = grads_of(model, model, x)
    y, got = grads_of(model, ck, x)
    assert torch.equal(y, ref_y)
    for k, (a, b) in enumerate(zip(ref, got)):
        assert torch.equal(a, b), f"gradient {k} differs"


def test_a_step_with_options_leaves_no_memory_behind():
    """The CPU allocator's live bytes (profiler events) over a step under plans that run the
    options: what is live at the end is the input's gradient, as after a plain step, and the
    peak stays within the plan's (which counts the workspaces). Python's cycle collector is off
    during the step, so nothing the executor or the hooks keep in a reference cycle (holding the
    rebuilt tensors' sources) is freed behind the test's back."""
    import gc
    from remat.torch import _MemoryWindow
    model = torch.nn.Sequential(*[models.Block(64, 4) for _ in range(4)])
    x = torch.randn(2, 128, 64)
    chain = fixed_times(rt.profile(model, x, timing=False, expand=True, options=True))
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # allocated before the window, as under accumulation

    def step(run):
        xin = x.detach().requires_grad_()
        gc.collect()
        gc.disable()
        try:
            with _MemoryWindow(x.device) as w:
                run(xin).square().mean().backward()
                del xin
        finally:
            gc.enable()
        return w

    plain = step(model)
    assert plain.end == 0, plain.end
    used = 0
    for budget in ["90%", "60%", "40%"]:
        ck = rt.checkpoint(model, x, budget, chain=chain)
        used += sum("recompute-" in op for op in ck.plan["ops"])
        w = step(ck)
        assert w.end == 0, (budget, w.end)
        assert w.peak <= 1.05 * ck.plan["peak_bytes"], (budget, w.peak, ck.plan["peak_bytes"])
    assert used > 0  # the cheap options ran


def test_an_option_recomputing_a_sub_module_pays_at_least_its_forward():
    """The stage below is as slow without the option as with it (it waits in its default run
    as long as the recomputation takes), so the difference of the two timed runs is about 0, as
    on a loaded host it can be for an option that recomputes all of attention. The option's
    backward still costs at least the sub-module's forward, timed on its own."""
    import time
    pause = 0.03

    class Slow(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.randn(64, 256))

        def forward(self, x):
            time.sleep(pause)
            return torch.nn.functional.gelu(x @ self.w)

    class Stage(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.sub = Slow()

        def forward(self, x):
            if torch.is_grad_enabled() and "forward" not in vars(self.sub):
                time.sleep(pause)  # the default run with grad: as slow as the recomputing one
            return self.sub(x).sum(-1)  # keeps nothing: recomputing sub keeps the fewest bytes

    chain = rt.profile([Stage()], torch.randn(32, 64), reps=2, min_time=0, options=True)
    st = chain.stages[0]
    opt = next(o for o in st["options"] if o["name"] == "recompute:sub")
    assert opt["bwd"] - st["bwd"] >= 0.8 * pause * 1000, (opt, st)
