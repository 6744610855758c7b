"""Bad input to remat.torch: each a Python exception with a clear message, never a crash."""
import os
import subprocess
import sys

import models
import pytest
import torch

import remat
import remat.torch as rt


class Pair(torch.nn.Module):
    def forward(self, x):
        return x, x


@pytest.fixture(scope="module")
def small():
    model = models.mlp(4, 16)
    x = torch.randn(4, 16)
    return model, x, rt.profile(model, x, reps=1, min_time=0)


def test_not_a_sequence():
    with pytest.raises(TypeError, match="nn.Sequential or a list of nn.Module.*Linear"):
        rt.checkpoint(torch.nn.Linear(4, 4), torch.randn(2, 4), "50%")
    with pytest.raises(TypeError, match="stage 1 is a str"):
        rt.profile([torch.nn.Linear(4, 4), "relu"], torch.randn(2, 4))
    with pytest.raises(ValueError, match="no stages"):
        rt.profile([], torch.randn(2, 4))
    with pytest.raises(TypeError, match="sample input must be a tensor, not list"):
        rt.profile([torch.nn.Linear(4, 4)], [1, 2])


def test_child_returning_a_non_tensor():
    with pytest.raises(TypeError, match=r"stage 1 \(Pair\) returned a tuple, not a tensor"):
        rt.profile([torch.nn.Linear(4, 4), Pair(), torch.nn.Linear(4, 4)], torch.randn(2, 4))


def test_budget_below_the_minimum_names_it(small, remat_bin, tmp_path):
    model, x, chain = small
    with pytest.raises(ValueError, match=r"budget 1000 \(1000 bytes\).*minimum") as e:
        rt.checkpoint(model, x, 1000, chain=chain)
    # The minimum named is the one `remat plan` names for the same chain.
    path = tmp_path / "c.json"
    chain.save(str(path))
    cli = subprocess.run([remat_bin, "plan", str(path), "--budget", "1000B"], capture_output=True,
                         text=True)
    assert cli.returncode == 1
    minimum = [w for w in cli.stderr.replace("(", " ").split() if w.isdigit() and int(w) > 1000]
    assert minimum and minimum[0] in str(e.value), (cli.stderr, str(e.value))


@pytest.mark.parametrize("budget,err,msg", [
    (0, ValueError, "must be positive"), (-5, ValueError, "must be positive"),
    (1.5, ValueError, r"\(0, 1\]"), (0.0, ValueError, r"\(0, 1\]"),
    ("lots", ValueError, "'lots'"), ("-3%", ValueError, "'-3%'"), (True, TypeError, "True"),
    (None, TypeError, "None"), ([1], TypeError, "list")])
def test_bad_budgets(small, budget, err, msg):
    model, x, chain = small
    with pytest.raises(err, match=msg):
        rt.checkpoint(model, x, budget, chain=chain)


def test_bad_policy(small):
    model, x, chain = small
    with pytest.raises(ValueError, match="policy 'fastest'"):
        rt.checkpoint(model, x, "50%", policy="fastest", chain=chain)


def test_sample_on_the_wrong_device():
    model = models.mlp(2, 8).to("meta")
    with pytest.raises(ValueError, match="sample input is on cpu but stage 0 .* on meta"):
        rt.profile(model, torch.randn(2, 8))


def test_chain_of_another_model(small):
    model, x, chain = small
    with pytest.raises(ValueError, match="the chain has 4 stages, the model 2"):
        rt.checkpoint(list(model)[:2], x, "50%", chain=chain)


def test_fit_bad_arguments(small):
    model, x, _ = small
    with pytest.raises(ValueError, match="card 'a-potato'"):
        rt.fit(model, x, card="a-potato")
    with pytest.raises(ValueError, match="optimizer 'adam'"):
        rt.fit(model, x, card="h200", optimizer="adam")
    with pytest.raises(ValueError, match="dtype int8: use fp32"):
        rt.fit(model, x, card="h200", dtype="int8")
    with pytest.raises(ValueError, match="batches"):
        rt.fit(model, x, card="h200", batches=(2, 2))


def test_use_pool_refuses_here_with_a_reason():
    if int(torch.__version__.split(".")[0]) >= 2 and torch.cuda.is_available():
        pytest.skip("a CUDA device and torch >= 2: the pool can be installed here")
    with pytest.raises(RuntimeError, match="pluggable|no CUDA device"):
        rt.use_pool(limit="1GiB")
    # remat's statistics of a device without a pool are zeros, not an error.
    st = rt.pool_stats(0)
    assert st["n_alloc"] == 0 and st["reserved"]["current"] == 0
    with pytest.raises(remat.RematError, match="device 99 is out of range"):
        rt.pool_stats(99)


def test_library_not_found_is_a_clear_error(tmp_path):
    env = dict(os.environ, REMAT_LIBRARY=str(tmp_path / "nope.so"))
    r = subprocess.run([sys.executable, "-c", "import remat; remat.version()"], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert "cannot load libremat.so" in r.stderr and "nope.so (missing)" in r.stderr
    assert "REMAT_LIBRARY" in r.stderr
