"""Finer stages (expand: a GPT-2 block as its attention and MLP halves) and per-stage options
measured from the module ("recompute:<sub-module>"): gradients bitwise equal to plain autograd
when the schedule runs options, and the held bytes within the budget and 5% of the plan."""
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
    assert "recompute:attn" in names, names
    chain = fixed_times(chain)
    ref_y, ref = grads_of(model, model, x)
    used = 0
    for budget in ["90%", "60%", "40%"]:
        ck = rt.checkpoint(model, x, budget, chain=chain)
        used += sum("recompute:" in op for op in ck.plan["ops"])
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
