"""The ctypes structures of remat._lib against include/remat.h: a C program built here prints
each structure's size and each mirrored field's offset, which must equal ctypes'. A structure
that lacks the C side's trailing fields would let the library write past Python's buffer."""
import ctypes
import os
import shutil
import subprocess

import pytest

from remat import _lib

from conftest import ROOT

MIRRORS = {
    "StageOption": "remat_stage_option", "Stage": "remat_stage", "Chain": "remat_chain",
    "Op": "remat_op", "Policy": "remat_policy", "Schedule": "remat_schedule",
    "SimResult": "remat_sim_result", "ModelDesc": "remat_model_desc",
    "FitRequest": "remat_fit_request", "FitBytes": "remat_fit_bytes",
    "FitResult": "remat_fit_result", "Card": "remat_card", "Stat": "remat_stat",
    "PoolStats": "remat_pool_stats",
}


def test_structures_match_the_c_layout(tmp_path):
    cc = shutil.which(os.environ.get("CC", "cc"))
    if cc is None:
        pytest.skip("no C compiler to read the C layout with")
    lines = ["#include <stdio.h>", "#include <stddef.h>", '#include "remat.h"', "int main(void){"]
    for py, c in MIRRORS.items():
        lines.append(f'printf("{py} %zu\\n", sizeof({c}));')
        for field, _ in getattr(_lib, py)._fields_:
            lines.append(f'printf("{py}.{field} %zu\\n", offsetof({c}, {field}));')
    lines.append("return 0;}")
    src, exe = tmp_path / "layout.c", tmp_path / "layout"
    src.write_text("\n".join(lines) + "\n")
    subprocess.run([cc, "-std=c11", "-D_GNU_SOURCE", "-I", os.path.join(ROOT, "include"),
                    str(src), "-o", str(exe)], check=True)
    want = dict(line.split() for line in subprocess.run(
        [str(exe)], capture_output=True, text=True, check=True).stdout.splitlines())
    for py in MIRRORS:
        cls = getattr(_lib, py)
        assert ctypes.sizeof(cls) == int(want[py]), (py, ctypes.sizeof(cls), want[py])
        for field, _ in cls._fields_:
            got = getattr(cls, field).offset
            assert got == int(want[f"{py}.{field}"]), (py, field, got, want[f"{py}.{field}"])
