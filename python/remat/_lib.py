"""ctypes declarations of the parts of include/remat.h the Python package calls.

The structures mirror the C declarations field for field; every call goes through `check`, which
turns a failing remat_status into RematError carrying the library's message.
"""
import ctypes
import ctypes.util
import os
import sys

c_u64 = ctypes.c_uint64
c_int = ctypes.c_int
c_double = ctypes.c_double
c_char_p = ctypes.c_char_p
c_void_p = ctypes.c_void_p

STATUS = ["ok", "invalid argument", "out of memory", "device error", "infeasible", "I/O error",
          "parse error", "unsupported", "internal error"]
OK, EINVAL, ENOMEM, EDEVICE, EINFEASIBLE, EIO, EPARSE, EUNSUPPORTED, EINTERNAL = range(9)


class RematError(RuntimeError):
    """A libremat call failed; `status` is the remat_status name, the message is the library's."""

    def __init__(self, status, message):
        self.status = STATUS[status] if 0 <= status < len(STATUS) else str(status)
        self.code = status
        super().__init__(message)


class StageOption(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char * 48), ("saved_bytes", c_u64), ("bwd", c_double),
                ("extra_fwd_tmp_bytes", c_u64), ("extra_bwd_tmp_bytes", c_u64)]


class Stage(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char * 48), ("fwd", c_double), ("bwd", c_double),
                ("out_bytes", c_u64), ("saved_bytes", c_u64), ("fwd_tmp_bytes", c_u64),
                ("bwd_tmp_bytes", c_u64), ("n_options", c_int),
                ("options", ctypes.POINTER(StageOption))]


class Chain(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char * 128), ("input_bytes", c_u64), ("n_stages", c_int),
                ("stages", ctypes.POINTER(Stage)), ("input_no_grad", c_int)]


class Op(ctypes.Structure):
    _fields_ = [("kind", c_int), ("stage", c_int), ("option", c_int)]


OP_NAMES = ["F_ck", "F_n", "F_all", "B"]
F_CK, F_N, F_ALL, B = range(4)


POLICY_OPTION_MAX = 48  # REMAT_POLICY_OPTION_MAX


class Policy(ctypes.Structure):
    _fields_ = [("kind", c_int), ("period", c_int), ("slots", c_int),
                ("option", ctypes.c_char * POLICY_OPTION_MAX)]


class Schedule(ctypes.Structure):
    _fields_ = [("ops", ctypes.POINTER(Op)), ("n_ops", ctypes.c_size_t), ("policy", Policy),
                ("budget_bytes", c_u64), ("feasible", c_int), ("peak_bytes", c_u64),
                ("time", c_double), ("base_time", c_double), ("overhead", c_double),
                ("layout", c_void_p)]  # remat_schedule_layout *, unused here


class SimResult(ctypes.Structure):
    _fields_ = [("valid", c_int), ("bad_op", ctypes.c_size_t), ("why", ctypes.c_char * 160),
                ("peak_bytes", c_u64), ("time", c_double)]


class ModelDesc(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char * 48), ("arch", c_int)] + [
        (f, c_int) for f in (
            "layers", "hidden", "heads", "kv_heads", "head_dim", "ffn", "vocab", "padded_vocab",
            "max_seq", "tied", "qkv_bias", "dense_layers", "moe_ffn", "routed_experts",
            "shared_experts", "active_experts", "q_lora_rank", "kv_lora_rank", "qk_nope_dim",
            "qk_rope_dim", "v_head_dim", "mtp_layers")] + [("params_only", c_u64)]


class FitRequest(ctypes.Structure):
    _fields_ = [("model", ModelDesc), ("card_bytes", c_u64)] + [
        (f, c_int) for f in ("inference", "gpus", "zero", "batch", "seq", "dtype", "optimizer",
                             "policy", "quant", "kv_dtype", "own_pool")] + [
        ("option", ctypes.c_char * POLICY_OPTION_MAX), ("no_master_weights", ctypes.c_int)]


FIT_PARTS = ["weights", "gradients", "optimizer", "activations", "kv_cache", "workspace",
             "reserve", "total"]
ACT_POLICIES = ["store-all", "llmc-selective", "megatron-selective", "full-recompute", "optimal"]


class FitBytes(ctypes.Structure):
    _fields_ = [(f, c_u64) for f in FIT_PARTS]


class FitResult(ctypes.Structure):
    _fields_ = [("params", c_u64), ("active_params", c_u64), ("per_gpu", FitBytes),
                ("fits", c_int), ("max_batch", ctypes.c_long * 5), ("overhead", c_double * 5),
                ("max_tokens", ctypes.c_long), ("pool_bytes", c_u64)] + [
        (f, c_u64) for f in ("weights_quantized", "weights_scales", "weights_16bit",
                             "quant_params", "comm_bytes_per_step")]


class Card(ctypes.Structure):
    _fields_ = [("name", c_char_p), ("label", c_char_p), ("bytes", c_u64)]


class Stat(ctypes.Structure):
    _fields_ = [("current", c_u64), ("peak", c_u64)]


POOL_COUNTERS = ["n_alloc", "n_free", "n_cache_hits", "n_device_alloc", "n_device_free",
                 "n_retries", "n_ooms", "largest_free_block", "n_planned_hits",
                 "n_planned_misses", "planned_arena_bytes", "n_plans"]


class PoolStats(ctypes.Structure):
    _fields_ = [("requested", Stat), ("allocated", Stat), ("reserved", Stat)] + [
        (f, c_u64) for f in POOL_COUNTERS]


P = ctypes.POINTER
# name: (restype, argtypes); restype int means a remat_status checked by `check`.
_SIGNATURES = {
    "remat_version": (c_char_p, []),
    "remat_last_error": (c_char_p, []),
    "remat_clear_error": (None, []),
    "remat_built_with_cuda": (c_int, []),
    "remat_parse_size": (c_int, [c_char_p, P(c_u64)]),
    "remat_parse_budget": (c_int, [c_char_p, P(c_u64), P(c_double), P(c_int)]),
    "remat_format_bytes": (c_char_p, [c_u64, ctypes.c_char_p, ctypes.c_size_t]),
    "remat_chain_parse": (c_int, [c_char_p, ctypes.c_size_t, P(P(Chain))]),
    "remat_chain_load": (c_int, [c_char_p, P(P(Chain))]),
    "remat_chain_save": (c_int, [P(Chain), c_char_p]),
    "remat_chain_free": (None, [P(Chain)]),
    "remat_policy_parse": (c_int, [c_char_p, P(Policy)]),
    "remat_policy_name": (c_char_p, [P(Policy), ctypes.c_char_p, ctypes.c_size_t]),
    "remat_plan": (c_int, [P(Chain), P(Policy), c_u64, P(P(Schedule))]),
    "remat_schedule_free": (None, [P(Schedule)]),
    "remat_simulate": (c_int, [P(Chain), P(Op), ctypes.c_size_t, P(SimResult)]),
    "remat_min_budget": (c_int, [P(Chain), P(Policy), P(c_u64)]),
    "remat_store_all_peak": (c_int, [P(Chain), P(c_u64)]),
    "remat_card_lookup": (c_int, [c_char_p, P(Card)]),
    "remat_dtype_parse": (c_int, [c_char_p, P(c_int)]),
    "remat_optimizer_parse": (c_int, [c_char_p, P(c_int)]),
    "remat_act_policy_parse": (c_int, [c_char_p, P(c_int)]),
    "remat_fit_request_init": (None, [P(FitRequest)]),
    "remat_fit_chain": (c_int, [P(FitRequest), P(Chain), c_u64, P(Chain), c_u64, P(FitResult)]),
    "remat_torch_configure": (c_int, [c_char_p, c_u64]),
    "remat_torch_stats": (c_int, [c_int, P(PoolStats)]),
    "remat_torch_release": (c_int, []),
}

_lib = None
_path = None
# jemalloc (which libremat links) keeps its thread state in static TLS, which glibc can only grow
# at process start-up; a process started without room for it cannot load it later.
_TLS_HINT = ("cannot load {path}: {err}. libremat links jemalloc, whose thread-local state needs "
             "static TLS reserved at start-up: start Python with "
             "GLIBC_TUNABLES=glibc.rtld.optional_static_tls=8192 (or "
             "LD_PRELOAD=libjemalloc.so.2) in the environment")


def _candidates():
    """Where libremat.so may be, in order: $REMAT_LIBRARY, next to this package, the install
    prefix, the system's library path, then an in-tree build (python/../build)."""
    env = os.environ.get("REMAT_LIBRARY")
    if env:
        yield env
        return
    here = os.path.dirname(os.path.abspath(__file__))
    yield os.path.join(here, "libremat.so")
    for prefix in dict.fromkeys([sys.prefix, sys.base_prefix, "/usr/local"]):
        yield os.path.join(prefix, "lib", "libremat.so")
    found = ctypes.util.find_library("remat")
    if found:
        yield found
    yield os.path.normpath(os.path.join(here, "..", "..", "build", "libremat.so"))


def load():
    """Loads libremat.so once and returns it; raises RematError (status "I/O error") listing the
    places searched when it cannot be found or loaded."""
    global _lib, _path
    if _lib is not None:
        return _lib
    tried = []
    for path in _candidates():
        if os.sep in path and not os.path.exists(path):
            tried.append(path + " (missing)")
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            if "static TLS" in str(e):
                raise RematError(EIO, _TLS_HINT.format(path=path, err=e)) from None
            tried.append(f"{path} ({e})")
            continue
        missing = [n for n in _SIGNATURES if not hasattr(lib, n)]
        if missing:
            tried.append(f"{path} (too old: lacks {', '.join(missing[:3])})")
            continue
        for name, (res, args) in _SIGNATURES.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = res, args
        _lib, _path = lib, path
        return lib
    hint = "set REMAT_LIBRARY=/path/to/libremat.so (build it with `make lib`)"
    raise RematError(EIO, "cannot load libremat.so: " + "; ".join(tried) + "; " + hint)


def library_path():
    """The path libremat.so was loaded from."""
    load()
    return _path


def version():
    return load().remat_version().decode()


def check(status):
    """Raises RematError for a failing remat_status, with remat_last_error()'s message."""
    if status != OK:
        msg = load().remat_last_error().decode(errors="replace")
        raise RematError(status, msg or STATUS[status])


def call(name, *args):
    check(getattr(load(), name)(*args))


def parse_size(text):
    out = c_u64()
    call("remat_parse_size", str(text).encode(), ctypes.byref(out))
    return out.value


def parse_budget(text):
    """(bytes, None) or (None, percent) for "512MiB" / "40%"."""
    out, pct, is_pct = c_u64(), c_double(), c_int()
    call("remat_parse_budget", str(text).encode(), ctypes.byref(out), ctypes.byref(pct),
         ctypes.byref(is_pct))
    return (None, pct.value) if is_pct.value else (out.value, None)


def format_bytes(n):
    buf = ctypes.create_string_buffer(32)
    return load().remat_format_bytes(int(n), buf, 32).decode()


def parse_enum(fn, text):
    out = c_int()
    call(fn, str(text).encode(), ctypes.byref(out))
    return out.value


class OwnedChain:
    """A remat_chain owned by Python (freed with remat_chain_free)."""

    def __init__(self, ptr):
        self.ptr = ptr

    @classmethod
    def parse(cls, text):
        data = text.encode()
        ptr = P(Chain)()
        call("remat_chain_parse", data, len(data), ctypes.byref(ptr))
        return cls(ptr)

    def save(self, path):
        call("remat_chain_save", self.ptr, os.fsencode(path))

    def __del__(self):
        if getattr(self, "ptr", None) and _lib is not None:
            _lib.remat_chain_free(self.ptr)
            self.ptr = None
