"""`pip install ./python` offline (no build isolation, no downloads): the installed package
carries libremat.so and finds it next to itself with REMAT_LIBRARY unset."""
import os
import shutil
import subprocess
import sys

import remat

HERE = os.path.dirname(os.path.abspath(__file__))


def test_pip_install_finds_the_library_next_to_itself(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(os.path.dirname(HERE), src, ignore=shutil.ignore_patterns(
        "tests", "build", "*.egg-info", "__pycache__", ".pytest_cache", "libremat.so"))
    env = dict(os.environ, REMAT_LIBRARY=remat.library_path(), PIP_NO_INDEX="1")
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-build-isolation",
                        "--no-deps", "--target", str(tmp_path / "site"), str(src)], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    env.pop("REMAT_LIBRARY")
    env["PYTHONPATH"] = str(tmp_path / "site")
    r = subprocess.run([sys.executable, "-c", "import remat, remat.torch; "
                        "print(remat.library_path()); print(remat.version())"],
                       env=env, capture_output=True, text=True, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    path, version = r.stdout.split()
    assert path == str(tmp_path / "site" / "remat" / "libremat.so")
    assert version == remat.version()
