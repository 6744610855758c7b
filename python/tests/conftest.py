"""Shared fixtures: the repository root, the CLI, and a deterministic CPU setup."""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # models.py
ROOT = os.environ.get("REMAT_ROOT", os.path.normpath(os.path.join(HERE, "..", "..")))


@pytest.fixture(scope="session")
def remat_bin():
    path = os.environ.get("REMAT_BIN", os.path.join(ROOT, "build", "remat"))
    if not os.path.exists(path):
        pytest.fail(f"the remat CLI is not built at {path} (make cli)")
    return path


@pytest.fixture(autouse=True)
def _seeded():
    import torch
    torch.manual_seed(1234)
    yield
