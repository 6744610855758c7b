"""remat from Python: the checkpoint scheduler, the fit planner and the caching pool of libremat.

`remat.torch` is the PyTorch face (profile, checkpoint, fit, use_pool); this package itself only
loads libremat.so (see `remat._lib.load`) and needs nothing but the standard library.
"""
from ._lib import RematError, library_path, load, version

__all__ = ["RematError", "library_path", "load", "version"]
