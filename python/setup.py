"""Copies libremat.so into the package when one is found ($REMAT_LIBRARY, else ../build), so an
installed `remat` finds the library next to itself; the metadata is in pyproject.toml."""
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


class build_with_library(build_py):
    def run(self):
        super().run()
        src = os.environ.get("REMAT_LIBRARY") or os.path.join(HERE, "..", "build", "libremat.so")
        if os.path.exists(src):
            dst = os.path.join(self.build_lib, "remat", "libremat.so")
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copyfile(src, dst)
        else:
            print(f"remat: no libremat.so at {src}; the installed package will look for it in "
                  "the install prefix or through REMAT_LIBRARY at run time")


setup(cmdclass={"build_py": build_with_library})
