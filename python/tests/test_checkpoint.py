"""rt.checkpoint against plain autograd: bitwise-equal gradients (parameters and input) on an MLP
stack and a GPT-2 block stack, with and without dropout, at several budgets; the bytes the
executor holds at its peak within the budget and within 5% of the plan's prediction; the real
memory of a step (profiler allocation events) below store-all's."""
import json
import subprocess

import models
import pytest
import torch

import remat.torch as rt


def grads_of(model, run, x):
    """Parameter and input gradients (and the output) of run(x).square().mean().backward()."""
    for p in model.parameters():
        p.grad = None
    x = x.detach().requires_grad_(x.is_floating_point())
    torch.manual_seed(77)  # the same dropout masks for both runs
    y = run(x)
    (y.square().mean() if y.dim() else y).backward()
    return y.detach(), [p.grad.clone() for p in model.parameters()] + (
        [x.grad.clone()] if x.grad is not None else [])


def check_bitwise(model, x, budgets, chain):
    ref_y, ref = grads_of(model, model, x)
    for budget in budgets:
        ck = rt.checkpoint(model, x, budget, chain=chain)
        y, got = grads_of(model, ck, x)
        assert torch.equal(y, ref_y), f"outputs differ at budget {budget}"
        assert len(got) == len(ref)
        for k, (a, b) in enumerate(zip(ref, got)):
            assert torch.equal(a, b), f"gradient {k} differs at budget {budget}"
        plan = ck.plan
        assert plan["peak_bytes"] <= plan["budget_bytes"]
        held = ck.last_peak_bytes
        assert held <= plan["budget_bytes"], (budget, held, plan)
        assert abs(held - plan["held_bytes"]) <= 0.05 * plan["held_bytes"], (budget, held, plan)
        assert plan["peak_bytes"] < plan["store_all_bytes"], budget


@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_mlp_gradients_bitwise_at_several_budgets(dropout):
    model = models.mlp(8, 64, dropout)
    x = torch.randn(32, 64)
    chain = rt.profile(model, x, reps=1, min_time=0)
    check_bitwise(model, x, ["70%", 0.5, "35%"], chain)


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_gpt2_blocks_gradients_bitwise_at_several_budgets(dropout):
    model = torch.nn.Sequential(*[models.Block(64, 4, dropout) for _ in range(6)])
    x = torch.randn(2, 32, 64)
    chain = rt.profile(model, x, reps=1, min_time=0)
    check_bitwise(model, x, ["60%", "50%", "33%"], chain)


def test_whole_gpt2_with_token_input_and_tied_embedding():
    model = models.gpt2(layers=3, C=32, NH=4, vocab=200, max_seq=32, dropout=0.1)
    idx = torch.randint(0, 200, (2, 16))
    model[-1].targets = torch.randint(0, 200, (2, 16))
    chain = rt.profile(model, idx, reps=1, min_time=0)
    check_bitwise(model, idx, ["50%"], chain)


def test_schedule_really_recomputes_and_no_grad_is_plain():
    model = models.mlp(6, 32)
    x = torch.randn(64, 32)  # activations above the weights, whose gradients add in apart
    calls = []
    for i, m in enumerate(model):
        m.register_forward_hook(lambda mod, inp, out, i=i: calls.append(i))
    chain = rt.profile(model, x, reps=1, min_time=0)
    calls.clear()
    ck = rt.checkpoint(model, x, "40%", chain=chain)
    with torch.no_grad():
        assert torch.equal(ck(x), model(x))
    calls.clear()
    ck(x).sum().backward()
    n_fwd = sum(1 for op in ck.plan["ops"] if op.startswith("F_"))
    assert len(calls) == n_fwd > len(model)  # every F op ran the stage; some twice
    assert ck.plan["overhead"] > 0


def test_real_step_memory_is_below_store_all():
    """The CPU allocator's live bytes over a whole step (profiler allocation events) under a 40%
    plan stay below the plain step's, and within the plan's peak plus the parameter gradients."""
    from remat.torch import _MemoryWindow
    model = models.mlp(8, 128)
    x = torch.randn(512, 128)  # activations well above the parameter gradients
    chain = rt.profile(model, x, reps=1, min_time=0)
    ck = rt.checkpoint(model, x, "40%", chain=chain)
    grads = sum(p.numel() * 4 for p in model.parameters())

    def step_peak(run):
        for p in model.parameters():
            p.grad = None  # outside the window: the last step's gradients are not this step's
        with _MemoryWindow(x.device) as w:
            run(x).square().mean().backward()
        return w.peak

    plain, planned = step_peak(model), step_peak(ck)
    assert planned < 0.6 * plain, (planned, plain)
    assert planned <= ck.plan["peak_bytes"] + grads + 64 * 1024, (planned, ck.plan["peak_bytes"])


def test_real_step_peak_under_accumulation_is_within_the_plan():
    """With the parameter gradients already there (gradient accumulation), each weight's gradient
    is computed apart and then added in: the profile counts that transient in the backward's
    workspace, so a step's real peak (profiler allocation events) stays within the plan's at
    every budget. The weights here dwarf the activations, so missing it would show."""
    from remat.torch import _MemoryWindow
    model = models.mlp(4, 256)
    x = torch.randn(64, 256)
    chain = rt.profile(model, x, reps=1, min_time=0)
    loss_bytes = 2 * x.numel() * 4  # the loss's square and its gradient, outside the chain
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    for budget in ["100%", "60%"]:
        ck = rt.checkpoint(model, x, budget, chain=chain)
        with _MemoryWindow(x.device) as w:
            ck(x.detach().requires_grad_()).square().mean().backward()
        planned = ck.plan["peak_bytes"]
        assert 0.9 * planned <= w.peak <= planned + loss_bytes, (budget, w.peak, planned)


def test_profile_saves_the_chain_remat_plan_reads(tmp_path, remat_bin):
    model = models.mlp(5, 32)
    x = torch.randn(16, 32)
    chain = rt.profile(model, x, reps=1, min_time=0)
    path = tmp_path / "chain.json"
    chain.save(str(path))
    data = json.loads(path.read_text())
    assert len(data["stages"]) == 5 and data["input_bytes"] == 16 * 32 * 4
    assert data["stages"][0]["out_bytes"] == 16 * 32 * 4
    # Linear(32, 128) keeps its input (the stage input, not counted), GELU its input, Dropout(0)
    # nothing, the second Linear the GELU output: 2 x 16x128 floats, plus the output.
    assert data["stages"][0]["saved_bytes"] == 2 * 16 * 128 * 4 + 16 * 32 * 4
    ck = rt.checkpoint(model, x, "50%", chain=chain)
    out = subprocess.run([remat_bin, "plan", str(path), "--budget", "50%", "--json"],
                         capture_output=True, text=True, check=True).stdout
    cli = json.loads(out)
    assert cli["peak_bytes"] == ck.plan["peak_bytes"]
    assert cli["budget_bytes"] == ck.plan["budget_bytes"]
    assert [f"{o['op']} {o['stage']}" for o in cli["ops"]] == ck.plan["ops"]


def test_budget_forms_agree():
    model = models.mlp(4, 32)
    x = torch.randn(64, 32)
    chain = rt.profile(model, x, reps=1, min_time=0)
    full = chain.store_all_bytes()
    a = rt.checkpoint(model, x, "50%", chain=chain).plan
    b = rt.checkpoint(model, x, 0.5, chain=chain).plan
    c = rt.checkpoint(model, x, full // 2, chain=chain).plan
    d = rt.checkpoint(model, x, f"{full // 2}B", chain=chain).plan
    assert a["budget_bytes"] == b["budget_bytes"] == c["budget_bytes"] == d["budget_bytes"]
    assert a["budget_bytes"] == full // 2
    assert rt.checkpoint(model, x, "100%", chain=chain).plan["overhead"] == 0
    sqrt = rt.checkpoint(model, x, "100%", policy="sqrt", chain=chain).plan
    assert sqrt["policy"] == "sqrt"


def test_recomputation_keeps_the_forward_autocast_state():
    """Under CPU autocast (bf16) the recomputed stages run in bf16 as their first runs did, and
    a stage recomputed without grad and then with grad in the same backward gets its weights'
    gradients (autocast's cast cache must not hand the second run the first run's graphless
    copy), so gradients still equal plain autograd's."""
    model = models.mlp(10, 32)
    x = torch.randn(128, 32)  # activations above the weights, whose gradients add in apart
    measured = rt.profile(model, x, reps=1, min_time=0)
    # Equal times, so the schedule does not depend on timing noise.
    chain = rt.Chain("uniform", measured.input_bytes,
                     [dict(st, fwd=1.0, bwd=2.0) for st in measured.stages])
    ck = rt.checkpoint(model, x, "18%", chain=chain)
    ops = ck.plan["ops"]
    back = ops[next(k for k, o in enumerate(ops) if o.startswith("B")):]
    assert any(f"F_n {i}" in back and f"F_all {i}" in back for i in range(10)), ops

    def run(m):
        def f(inp):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return m(inp).float()
        return f

    ref_y, ref = grads_of(model, run(model), x)
    y, got = grads_of(model, run(ck), x)
    assert torch.equal(y, ref_y)
    assert all(torch.equal(a, b) for a, b in zip(ref, got))
