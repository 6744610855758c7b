"""remat for PyTorch: optimal activation checkpointing of a sequence of modules, batch fitting from
a measured profile, and remat's pool as PyTorch's CUDA allocator.

    import remat.torch as rt
    ck = rt.checkpoint(torch.nn.Sequential(*blocks), sample_input, budget="50%")
    loss_fn(ck(x), y).backward()     # the schedule runs inside autograd
    rt.profile(seq, sample_input).save("chain.json")     # for `remat plan`
    rt.fit(seq, sample_input, card="a100-80gb")          # largest batch per policy

Everything that decides (the solver, the simulator, the fit arithmetic) is libremat's, called
through ctypes; this module measures the model and replays the schedule. Works with PyTorch 1.13
and 2.x. See docs/python.md.
"""
import ctypes
import itertools
import json
import math
import statistics
import time
import weakref

import torch
import torch.utils.checkpoint

from . import _lib
from ._lib import RematError

__all__ = ["RematError", "Chain", "Checkpointed", "profile", "checkpoint", "fit", "use_pool",
           "pool_stats"]

# ==== Inputs ===================================================================================


def _expanded(mods):
    """mods with every nn.Sequential among them replaced by its children, recursively."""
    out = []
    for m in mods:
        if isinstance(m, torch.nn.Sequential) and len(m) > 0:
            out.extend(_expanded(list(m.children())))
        else:
            out.append(m)
    return out


def _stages(module_or_list, expand=False):
    """The list of modules of an nn.Sequential or of a list/tuple of modules (TypeError else);
    with expand, nested nn.Sequential stages are replaced by their children."""
    if isinstance(module_or_list, torch.nn.Sequential):
        mods = list(module_or_list.children())
    elif isinstance(module_or_list, (list, tuple, torch.nn.ModuleList)):
        mods = list(module_or_list)
    else:
        raise TypeError("remat.torch: the model must be an nn.Sequential or a list of nn.Module "
                        f"(the chain's stages), not {type(module_or_list).__name__}")
    if not mods:
        raise ValueError("remat.torch: the model has no stages (an empty sequence)")
    for i, m in enumerate(mods):
        if not isinstance(m, torch.nn.Module):
            raise TypeError(f"remat.torch: stage {i} is a {type(m).__name__}, not an nn.Module")
    return _expanded(mods) if expand else mods


# ==== Recomputing in the backward ================================================================
#
# An option of a stage names what its forward with grad does not keep, to be recomputed in the
# backward: "+"-joined parts, each either "recompute:<path>" (that sub-module runs under
# torch.utils.checkpoint, only its inputs kept) or one of the cheap recomputations below (the
# output of every GELU, LayerNorm or attention softmax is dropped and rebuilt from the tensors
# that autograd keeps for the ops' own backwards anyway), as in "recompute-gelu-ln+recompute:attn"
# or "recompute-gelu-ln-softmax".

OPTION_PREFIX = "recompute:"
CHEAP_KINDS = ("gelu", "ln", "softmax")  # the order of their names
_CHEAP_NODES = {"GeluBackward0": "gelu", "NativeLayerNormBackward0": "ln",
                "SoftmaxBackward0": "softmax"}
OPTION_NAME_MAX = 47  # the chain format's name limit
_VIEW_NODES = ("ViewBackward0", "UnsafeViewBackward0", "ReshapeAliasBackward0")


def option_name(kinds, path=None):
    """The option that recomputes the outputs of `kinds` (a subset of CHEAP_KINDS) and the
    sub-module `path` (or none)."""
    parts = []
    if kinds:
        parts.append("recompute-" + "-".join(k for k in CHEAP_KINDS if k in kinds))
    if path:
        parts.append(OPTION_PREFIX + path)
    return "+".join(parts)


def _parse_option(stage, name):
    """(sub-module or None, frozenset of cheap kinds) of an option name of `stage`."""
    sub, kinds = None, set()
    for part in name.split("+"):
        cheap = part[len("recompute-"):].split("-") if part.startswith("recompute-") else None
        if cheap and not kinds and cheap == [k for k in CHEAP_KINDS if k in cheap]:
            kinds.update(cheap)
        elif part.startswith(OPTION_PREFIX) and sub is None:
            try:
                sub = stage.get_submodule(part[len(OPTION_PREFIX):])
            except AttributeError as e:
                raise ValueError(f"remat.torch: option {name!r} names no sub-module of "
                                 f"{type(stage).__name__} ({e})") from None
        else:
            raise ValueError(f"remat.torch: option {name!r} of {type(stage).__name__}: {part!r} is "
                             f"not {OPTION_PREFIX}<path> or recompute- followed by "
                             f"'-'-joined kinds of {', '.join(CHEAP_KINDS)} (at most one of "
                             "each)")
    return sub, frozenset(kinds)


class _recomputing:
    """Within this context, calls of `sub` with grad enabled keep only its inputs for backward
    and recompute its forward there (torch.utils.checkpoint, reentrant: the inputs are saved
    through save_for_backward, so saved-tensor hooks see them; the RNG state is replayed)."""

    def __init__(self, sub):
        self.sub = sub

    def __enter__(self):
        if self.sub is None:
            return self
        sub, inner = self.sub, self.sub.forward

        def uncached(*args):
            # Autocast caches a weight's low-precision copy for the rest of its region. One made
            # here, under the checkpoint's no_grad, has no graph, and the recomputation (run
            # inside the same region when the backward is) would reuse it and leave the weight
            # without a gradient; so these runs neither fill nor use the cache.
            was = torch.is_autocast_cache_enabled()
            torch.set_autocast_cache_enabled(False)
            try:
                return inner(*args)
            finally:
                torch.set_autocast_cache_enabled(was)

        def forward(*args, **kw):
            if kw or not torch.is_grad_enabled() or not any(
                    isinstance(a, torch.Tensor) and a.requires_grad for a in args):
                return inner(*args, **kw)
            return torch.utils.checkpoint.checkpoint(uncached, *args, use_reentrant=True,
                                                     preserve_rng_state=True)

        sub.forward = forward  # an instance attribute: Module.__call__ finds it first
        return self

    def __exit__(self, *exc):
        if self.sub is not None:
            del self.sub.forward
        return False


class _NotKept(Exception):
    """Raised while a saved tensor's producer is examined, where what it would be rebuilt from
    is itself not kept (rebuilding at that point would cost the recomputation in the forward)."""


class _Source:
    """What a dropped tensor is rebuilt from: `kind` and its `args` (the tensors the producing
    ops' own backwards keep anyway, and constants). The notes of every saved view of that tensor
    share one _Source, so the backward rebuilds it once: the tensor stays cached until the last
    of the `pending` notes is unpacked."""

    __slots__ = ("kind", "args", "pending", "cached")

    def __init__(self, kind, args):
        self.kind, self.args, self.pending, self.cached = kind, args, 0, None

    def tensors(self):
        out = []
        for a in self.args:
            if isinstance(a, torch.Tensor):
                out.append(a)
            elif isinstance(a, list):  # softmax's ops
                out.extend(v for _, v in a if isinstance(v, torch.Tensor))
        return out

    def get(self):
        t = self.cached if self.cached is not None else self.rebuild()
        self.pending -= 1
        self.cached = t if self.pending > 0 else None
        return t

    def rebuild(self):
        # The ops again, on the same inputs, so the bits are the forward's. Autocast had cast
        # the inputs before the ops saw them, so it stays off here.
        dev = self.tensors()[0].device.type
        with torch.no_grad(), torch.autocast(dev, enabled=False):
            if self.kind == "gelu":
                x, approximate = self.args
                return torch.nn.functional.gelu(x, approximate=approximate)
            if self.kind == "ln":
                x, shape, w, b, eps = self.args
                return torch.native_layer_norm(x, shape, w, b, eps)[0]
            a, b, ops, dim = self.args
            t = torch.bmm(a, b) if a.dim() == 3 else torch.mm(a, b)
            # In place on the product (the same kernels, so the same bits), so the rebuild
            # needs room for two tensors of the output's size, not one per op.
            for op, v in ops:
                if op == "view":
                    t = t.view(v)
                elif op == "mul":
                    t.mul_(v)
                elif op == "div":
                    t.div_(v)
                else:  # a fill's value is not kept: -inf, checked to give the forward's bits
                    t.masked_fill_(v, float("-inf"))
            return torch.softmax(t, dim)


class _Rebuilt:
    """A saved tensor that is not kept (the output of a GELU, LayerNorm or softmax, or a view
    of it): a note of its _Source and of the view."""

    __slots__ = ("source", "view")

    def __init__(self, source, t, base):
        self.source = source
        source.pending += 1
        self.view = None if t is base else (t.size(), t.stride(),
                                            t.storage_offset() - base.storage_offset())

    def rebuild(self):
        base = self.source.get()
        return base if self.view is None else base.as_strided(*self.view)


def _masked_outputs_zero(out, mask):
    """Whether every output of a softmax at a position its input's fill masked is exactly 0:
    then the fill's value (not kept by autograd) may be taken as -inf and the rebuilt output has
    the forward's bits, the zero terms adding nothing to each row's sum. A softmax's outputs are
    not negative, so they are all 0 where their sum is (a NaN sums to NaN): where one (rows,
    columns) mask serves every slice, one matrix-vector product of the output with the mask
    adds them, reading the output once; otherwise one slice at a time, so the check needs no
    workspace of the output's size."""
    if out.dim() >= 2 and out.is_contiguous() and mask.dim() <= out.dim() and \
            all(n == 1 for n in mask.shape[:-2]) and tuple(mask.shape[-2:]) == out.shape[-2:]:
        w = mask.reshape(-1).to(out.dtype)
        return not bool((out.reshape(-1, w.numel()) @ w).any())
    m = mask.expand(out.shape)
    if out.dim() < 2:
        return not bool(out.masked_fill(~m, 0).any())
    for idx in itertools.product(*(range(n) for n in out.shape[:-2])):
        if out[idx].masked_fill(~m[idx], 0).any():
            return False
    return True


def _softmax_source(node, base):
    """The _Source of a softmax output `base` whose input is a matrix product of kept operands,
    then views, then any of a scaling by a constant and masked fills (attention's scores), or
    None where the producer is not of that form."""
    ops, shape, n = [], tuple(base.shape), node.next_functions[0][0]
    fills = []
    while n is not None and type(n).__name__ in ("MulBackward0", "DivBackward0",
                                                  "MaskedFillBackward0"):
        name = type(n).__name__
        if name == "MaskedFillBackward0":
            mask = n._saved_mask
            ops.append(("fill", mask))
            fills.append(mask)
        else:
            other = n._saved_other
            if not isinstance(other, torch.Tensor) or other.dim() != 0:
                return None
            ops.append(("mul" if name == "MulBackward0" else "div", other))
        n = n.next_functions[0][0]
    while n is not None and type(n).__name__ in _VIEW_NODES:
        ops.append(("view", shape))
        shape = tuple(n._saved_self_sym_sizes)
        n = n.next_functions[0][0]
    if n is None or type(n).__name__ not in ("BmmBackward0", "MmBackward0"):
        return None
    a, b = n._saved_self, n._saved_mat2
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or \
            tuple(a.shape[:-1]) + (b.shape[-1],) != shape or a.dtype != base.dtype:
        return None
    if any(not _masked_outputs_zero(base, m) for m in fills):
        return None
    ops.reverse()
    dim = node._saved_dim  # torch 1.13 returns a negative dim as its unsigned 64-bit value
    dim = dim - (1 << 64) if dim >= 1 << 63 else dim
    return _Source("softmax", (a, b, ops, dim))


class _SavedHooks:
    """Saved-tensor hooks for one forward with grad: they record the storages autograd keeps
    (less `exclude`), and, for the cheap `kinds`, keep a _Rebuilt in place of each GELU,
    LayerNorm or softmax output. A LayerNorm is rebuilt only where its eps is known: an
    nn.LayerNorm module of `stage` (found by its weight); a softmax only where its input is
    attention's scores, formed from kept tensors (_softmax_source)."""

    def __init__(self, exclude, kinds=frozenset(), stage=None):
        self.exclude, self.kinds = exclude, kinds
        self.storages = {}
        self.eps = {}
        self.sources = {}  # id of a dropped tensor: (a weak reference to it, its _Source)
        self.probing = False
        if "ln" in kinds and stage is not None:
            self.eps = {_storage(m.weight)[0]: m.eps for m in stage.modules()
                        if isinstance(m, torch.nn.LayerNorm) and m.weight is not None}

    def record(self, t):
        ptr, n = _storage(t)
        if ptr not in self.exclude and n > 0:
            self.storages[ptr] = n

    def _source(self, kind, node, base):
        if kind == "softmax":
            return _softmax_source(node, base)
        x = node._saved_self if kind == "gelu" else node._saved_input
        # Only the op's main output is rebuilt (LayerNorm's mean and rstd are outputs too).
        if x.shape != base.shape or x.dtype != base.dtype:
            return None
        if kind == "gelu":
            return _Source(kind, (x, node._saved_approximate))
        w = node._saved_weight
        eps = self.eps.get(_storage(w)[0]) if isinstance(w, torch.Tensor) else None
        if eps is None:
            return None
        return _Source(kind, (x, node._saved_normalized_shape, w, node._saved_bias, eps))

    def _rebuilt(self, t):
        base = t._base if t._is_view() else t
        node = base.grad_fn
        kind = _CHEAP_NODES.get(type(node).__name__) if node is not None else None
        if kind not in self.kinds:
            return None
        known = self.sources.get(id(base))
        if known is not None and known[0]() is base:
            return _Rebuilt(known[1], t, base)
        self.probing = True
        try:
            src = self._source(kind, node, base)
        except _NotKept:
            src = None
        finally:
            self.probing = False
        if src is None:
            return None
        self.sources[id(base)] = (weakref.ref(base), src)
        for k in src.tensors():
            self.record(k)
        return _Rebuilt(src, t, base)

    def pack(self, t):
        if not isinstance(t, torch.Tensor):
            return t
        r = self._rebuilt(t) if self.kinds else None
        if r is None:
            self.record(t)
        return t if r is None else r

    def unpack(self, p):
        if isinstance(p, _Rebuilt):
            if self.probing:
                raise _NotKept()
            return p.rebuild()
        return p

    def __enter__(self):
        self._ctx = torch.autograd.graph.saved_tensors_hooks(self.pack, self.unpack)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc):
        # Neither the context (it holds these hooks: a cycle) nor the views' index outlives the
        # forward: kept, they would hold every source's tensors until Python's cycle collector
        # ran, long after the stage's backward had freed its graph. The notes keep their own
        # sources.
        ctx, self._ctx, self.sources = self._ctx, None, {}
        return ctx.__exit__(*exc)


class _OptionRun:
    """The context of a forward with grad of `stage` under option `name` (None: the default):
    the option's sub-module recomputed, and the saved-tensor hooks (its cheap kinds, the
    storages kept recorded in .storages)."""

    def __init__(self, stage, name, exclude):
        sub, kinds = _parse_option(stage, name) if name else (None, frozenset())
        self.sub = _recomputing(sub)
        self.hooks = _SavedHooks(exclude, kinds, stage)
        self.storages = self.hooks.storages

    def __enter__(self):
        self.sub.__enter__()
        try:
            self.hooks.__enter__()
        except BaseException:
            self.sub.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        try:
            self.hooks.__exit__(*exc)
        finally:
            self.sub.__exit__(*exc)
        return False


def _check_sample(mods, x):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"remat.torch: the sample input must be a tensor, not {type(x).__name__}")
    for i, m in enumerate(mods):
        for name, t in list(m.named_parameters()) + list(m.named_buffers()):
            if t.device != x.device:
                raise ValueError(f"remat.torch: the sample input is on {x.device} but stage {i} "
                                 f"({type(m).__name__}) has {name} on {t.device}; move the "
                                 "input or the model so both are on one device")


def _check_output(i, m, y):
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"remat.torch: stage {i} ({type(m).__name__}) returned a "
                        f"{type(y).__name__}, not a tensor: every stage must map one tensor to "
                        "one tensor")
    return y


def _storage(t):
    """(address, bytes) of the storage behind t: what holding t keeps alive."""
    s = t.untyped_storage() if hasattr(t, "untyped_storage") else t.storage()
    return s.data_ptr(), s.nbytes()


def _owned_storages(mods):
    """Storages of parameters and buffers: model state, never counted as activations."""
    return {_storage(t)[0] for m in mods for t in list(m.parameters()) + list(m.buffers())}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device, reps, min_time):
    """Median seconds of fn() over at least `reps` runs and at least `min_time` seconds."""
    samples, start = [], time.perf_counter()
    while len(samples) < reps or (time.perf_counter() - start < min_time and len(samples) < 100):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


# ==== Memory timelines =========================================================================


class _MemoryWindow:
    """Live bytes above the start of a window, and their peak. CUDA: the caching allocator's
    counters. CPU: every allocation and free the profiler records (its "[memory]" events, each
    with its time and size), replayed in order."""

    def __init__(self, device):
        self.device = device

    def __enter__(self):
        if self.device.type == "cuda":
            _sync(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self.prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                               profile_memory=True)
            self.prof.__enter__()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            _sync(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) - self.base
            self.end = torch.cuda.memory_allocated(self.device) - self.base
            return False
        self.prof.__exit__(*exc)
        if exc[0] is not None:
            return False
        events = [e for e in self.prof.profiler.kineto_results.events() if e.name() == "[memory]"]
        events.sort(key=lambda e: e.start_us())  # stable: same-time events keep their order
        live = peak = 0
        for e in events:
            live += e.nbytes()
            peak = max(peak, live)
        self.peak, self.end = peak, live
        return False


# ==== Profiling ================================================================================


class Chain:
    """A measured chain: per stage its times (ms) and bytes, in remat's chain format
    (docs/checkpoint.md). `save(path)` writes the file `remat plan` reads."""

    def __init__(self, name, input_bytes, stages, expand=False):
        self.name, self.input_bytes, self.stages = name, int(input_bytes), stages
        self.expand = expand  # profiled with nested nn.Sequential stages expanded
        self._c = None

    def to_dict(self):
        return {"name": self.name, "input_bytes": self.input_bytes, "stages": self.stages}

    def to_json(self):
        return json.dumps(self.to_dict())

    def c_chain(self):
        """The chain parsed (and validated) by libremat."""
        if self._c is None:
            self._c = _lib.OwnedChain.parse(self.to_json())
        return self._c

    def save(self, path):
        self.c_chain().save(path)

    def store_all_bytes(self):
        out = _lib.c_u64()
        _lib.call("remat_store_all_peak", self.c_chain().ptr, ctypes.byref(out))
        return out.value

    def plan(self, budget, policy="optimal"):
        """remat_plan at `budget` (see checkpoint()); returns the plan dict."""
        return _plan(self, budget, policy)

    def __repr__(self):
        return f"<remat Chain {self.name!r}: {len(self.stages)} stages>"


def _saved_by_forward(i, m, x, leaf, exclude, option=None):
    """One forward with grad of stage m under `option` on a fresh leaf: (output, the leaf, the
    storages autograd keeps for backward: parameters and the stage input excluded, the output
    included)."""
    xin = leaf()
    with torch.enable_grad(), _OptionRun(m, option, exclude | {_storage(x)[0]}) as run:
        out = _check_output(i, m, m(xin))
    saved = dict(run.storages)
    ptr, n = _storage(out)
    saved[ptr] = n
    return out, xin, saved


def _option_bytes(i, m, x, leaf, exclude, default):
    """The options of stage m worth timing, {name: saved bytes}: each sub-module recomputed, then
    the cheap recomputations (GELU, LayerNorm outputs), alone and with each of those sub-modules.
    An option is left out where it keeps no more than 1% fewer bytes than the default (a saving
    that small is not worth a measured time difference that noise could make look free), or
    where one that recomputes less keeps as few bytes."""
    memo = {}

    def kept(name):
        if name not in memo:
            o, _, k = _saved_by_forward(i, m, x, leaf, exclude, name)
            del o
            memo[name] = sum(k.values())
        return memo[name]

    found = {}
    paths = []
    for path, _ in m.named_modules():
        name = option_name((), path)
        if path and len(name) <= OPTION_NAME_MAX:
            n = kept(name)
            if n < 0.99 * default:
                found[name] = n
                paths.append(path)
    # A cheap kind that saves nothing in this stage is left out of every combination.
    kinds = [k for k in CHEAP_KINDS if kept(option_name((k,))) < default]
    subsets = sorted((tuple(k for bit, k in enumerate(kinds) if mask >> bit & 1)
                      for mask in range(1, 1 << len(kinds))), key=len)
    def simpler(ks, path):
        """The options that recompute part of what (ks, path) does."""
        for sub in [()] + subsets:
            for p in ((None, path) if path else (None,)):
                if set(sub) <= set(ks) and (set(sub), p) != (set(ks), path) and (sub or p):
                    yield option_name(sub, p)

    for ks in subsets:  # fewer kinds first: a combination is measured after its parts
        for path in [None] + paths:
            name = option_name(ks, path)
            if len(name) > OPTION_NAME_MAX:
                continue
            n = kept(name)
            if n < 0.99 * default and all(found.get(q, default) > n for q in simpler(ks, path)):
                found[name] = n
    return found


def _profile_stage(i, m, x, exclude, device, reps, min_time, timing, options):
    """One stage's row of the chain (times, output and saved bytes, workspaces, options) and its
    output without grad, for the next stage."""
    name = f"{i}:{type(m).__name__}"[:47]
    grad_in = x.is_floating_point()

    def leaf():
        return x.detach().requires_grad_(grad_in)

    _sync(device)
    t0 = time.perf_counter()
    with torch.no_grad():
        y_next = _check_output(i, m, m(x))
    _sync(device)
    t_fwd = t_fwd_grad = time.perf_counter() - t0
    seed = torch.ones_like(y_next) if y_next.is_floating_point() else None
    params = [p for p in m.parameters() if p.requires_grad]
    old = [p.grad for p in params]

    def measured(option=None):
        """One forward with grad under `option`, the saved-tensor hooks and a memory window, and
        its backward: (output bytes, the storages autograd keeps (parameters and the stage input
        excluded, the output included), the forward's workspace (its peak above what it
        leaves), the backward's (its peak above the input gradient it creates), the backward's
        seconds, whether there is a backward). The backward adds into parameter gradients that
        already exist, as under gradient accumulation: each weight's gradient is computed apart
        and then added in, and that transient is part of the backward's workspace."""
        with _MemoryWindow(device) as w:
            out, xin, saved = _saved_by_forward(i, m, x, leaf, exclude, option)
        f_tmp, out_bytes = max(0, w.peak - w.end), _storage(out)[1]
        has_backward = out.requires_grad and seed is not None
        b_tmp, t_b = 0, 0.0
        if has_backward:
            for p in params:
                p.grad = torch.zeros_like(p)
            t0 = time.perf_counter()
            with _MemoryWindow(device) as w:
                torch.autograd.backward(out, seed)
            t_b = time.perf_counter() - t0
            din = _storage(xin.grad)[1] if xin.grad is not None else 0
            b_tmp = max(0, w.peak - din)
        return out_bytes, saved, f_tmp, b_tmp, t_b, has_backward

    out_bytes, saved, fwd_tmp, bwd_tmp, t_bwd, needs_backward = measured()

    # Options: what the backward may recompute instead of keeping (_option_bytes), each with its
    # workspace beyond the default's.
    opts = []
    if options and needs_backward:
        found = _option_bytes(i, m, x, leaf, exclude, sum(saved.values()))
        for k, n in found.items():
            # What it recomputes needs room of its own: in the backward, the tensors rebuilt
            # and a sub-module's recomputed forward.
            _, _, f_tmp, b_tmp, _, _ = measured(k)
            opt = {"name": k, "saved_bytes": n}
            if f_tmp > fwd_tmp:
                opt["extra_fwd_tmp_bytes"] = int(f_tmp - fwd_tmp)
            if b_tmp > bwd_tmp:
                opt["extra_bwd_tmp_bytes"] = int(b_tmp - bwd_tmp)
            opts.append(opt)

    def fwd_bwd(option=None):
        with _OptionRun(m, option, set()):
            with torch.enable_grad():
                o = m(leaf())
            if not needs_backward:
                return 0.0
            _sync(device)
            t0 = time.perf_counter()
            torch.autograd.backward(o, seed)
            _sync(device)
            return time.perf_counter() - t0

    def whole(option=None):
        """Seconds of a forward with grad and its backward, under option."""
        _sync(device)
        t0 = time.perf_counter()
        fwd_bwd(option)
        _sync(device)
        return time.perf_counter() - t0

    if timing:
        def fwd_nograd():
            with torch.no_grad():
                m(x)

        def fwd_grad():
            with torch.enable_grad():
                return m(leaf())

        fwd_bwd()  # warm-up: first calls pay for allocation and kernel selection
        t_fwd = _timed(fwd_nograd, device, reps, min_time)
        t_fwd_grad = _timed(fwd_grad, device, reps, min_time)
        t_bwd = statistics.median([fwd_bwd() for _ in range(max(reps, 1))])
    ms = 1000.0
    bwd = (t_bwd + max(0.0, t_fwd_grad - t_fwd)) * ms
    # An option's backward: the default's plus what its forward+backward costs beyond the
    # default's: the median of the differences of pairs timed back to back, so a change of load
    # hits both halves of a pair alike. Recomputing adds work, so a difference below zero is
    # noise; and an option that recomputes a sub-module costs at least that sub-module's forward,
    # timed on its own, which is steadier than a difference of two whole steps.
    n = max(2 * reps, 1) if timing else 1
    for opt in opts:
        fwd_bwd(opt["name"])  # warm-up of the recomputing path
        extra = statistics.median(whole(opt["name"]) - whole() for _ in range(n))
        sub, _ = _parse_option(m, opt["name"])
        floor = _forward_seconds(m, sub, x, device, reps, min_time) if sub and timing else 0.0
        opt["bwd"] = bwd + max(0.0, floor, extra) * ms
    for p, g in zip(params, old):
        p.grad = g
    row = {"name": name, "fwd": t_fwd * ms, "bwd": bwd,
           "out_bytes": out_bytes, "saved_bytes": max(sum(saved.values()), out_bytes),
           "fwd_tmp_bytes": int(fwd_tmp), "bwd_tmp_bytes": int(bwd_tmp)}
    if opts:
        row["options"] = _pareto(opts)
    return row, y_next


def _forward_seconds(m, sub, x, device, reps, min_time):
    """Median seconds of a forward without grad of `sub`, a sub-module of stage m, on the input
    it gets when m runs on x."""
    args = []
    handle = sub.register_forward_pre_hook(lambda mod, inp: args.append(inp))
    try:
        with torch.no_grad():
            m(x)
    finally:
        handle.remove()
    if not args:
        return 0.0  # m never calls it on this input: no recomputation to pay for
    with torch.no_grad():
        return _timed(lambda: sub(*args[0]), device, reps, min_time)


def _pareto(opts):
    """The options no other one beats in both saved bytes and backward time, fewest bytes first."""
    opts = sorted(opts, key=lambda o: (o["saved_bytes"], o["bwd"]))
    kept = []
    for o in opts:
        if not kept or o["bwd"] < kept[-1]["bwd"]:
            kept.append(o)
    return kept


def profile(module_or_list, sample_input, reps=3, min_time=0.02, timing=True, name="torch",
            expand=False, options=False):
    """Measures each stage of the sequence on sample_input, as Rotor does: forward time without
    grad, backward time (plus what a forward with grad costs beyond one without), output bytes,
    the bytes autograd saves (saved-tensor hooks, parameters and the stage input excluded, the
    output included) and the forward and backward workspaces (peak live bytes above what the op
    leaves: CUDA's allocator counters, or on CPU the profiler's allocation events). Each time is
    the median of at least `reps` runs and `min_time` seconds after a warm-up; timing=False
    keeps the times of the single measuring run (enough where only bytes matter, as in fit).
    expand=True makes the children of nested nn.Sequential stages stages of their own (finer
    stages give the scheduler more choice). options=True adds, per stage, the options whose
    recomputation in the backward keeps fewer bytes than the default: "recompute:<path>" (that
    sub-module run under torch.utils.checkpoint, only its inputs kept), "recompute-gelu",
    "recompute-ln", "recompute-gelu-ln" (the outputs of GELUs and nn.LayerNorm modules rebuilt
    from their inputs) and their combinations with a sub-module. Each option's saved bytes and
    extra workspaces are measured as above, its backward time is the default's plus the
    measured extra of a forward+backward that recomputes; options beaten by another in both
    bytes and time are dropped. Parameter gradients are left as they were. Returns a Chain."""
    mods = _stages(module_or_list, expand)
    _check_sample(mods, sample_input)
    device = sample_input.device
    exclude = _owned_storages(mods)
    rows, x = [], sample_input
    for i, m in enumerate(mods):
        row, x = _profile_stage(i, m, x, exclude, device, reps, min_time, timing, options)
        rows.append(row)
    chain = Chain(name, _storage(sample_input)[1], rows, expand)
    chain.c_chain()  # validated by libremat now, not at first use
    return chain


# ==== Planning =================================================================================


def _budget_bytes(chain, budget):
    """Bytes from an int (bytes), a float in (0, 1] (fraction of store-all) or a string
    ("512MiB", "50%")."""
    if isinstance(budget, bool) or budget is None:
        raise TypeError(f"remat.torch: budget must be bytes, a size string, a percentage or a "
                        f"fraction, not {budget!r}")
    if isinstance(budget, int):
        if budget <= 0:
            raise ValueError(f"remat.torch: budget {budget} bytes must be positive")
        return budget
    if isinstance(budget, float):
        if not (0 < budget <= 1) or math.isnan(budget):
            raise ValueError(f"remat.torch: budget {budget} as a fraction of store-all must be in "
                             "(0, 1]; give bytes as an int")
        return max(1, int(chain.store_all_bytes() * budget))
    if isinstance(budget, str):
        try:
            nbytes, pct = _lib.parse_budget(budget)
        except RematError as e:
            raise ValueError(f"remat.torch: budget {budget!r}: {e}") from None
        if pct is not None:
            if pct <= 0:
                raise ValueError(f"remat.torch: budget {budget!r} must be above 0%")
            return max(1, int(chain.store_all_bytes() * pct / 100))
        if nbytes == 0:
            raise ValueError(f"remat.torch: budget {budget!r} must be positive")
        return nbytes
    raise TypeError(f"remat.torch: budget must be bytes, a size string, a percentage or a "
                    f"fraction, not {type(budget).__name__}")


def _ops_list(sched):
    return [(sched.ops[k].kind, sched.ops[k].stage, sched.ops[k].option)
            for k in range(sched.n_ops)]


def _simulate(c_chain, ops):
    arr = (_lib.Op * len(ops))(*[_lib.Op(k, s, o) for k, s, o in ops])
    res = _lib.SimResult()
    _lib.call("remat_simulate", c_chain.ptr, arr, len(ops), ctypes.byref(res))
    return res


def _plan(chain, budget, policy):
    nbytes = _budget_bytes(chain, budget)
    pol = _lib.Policy()
    try:
        _lib.call("remat_policy_parse", str(policy).encode(), ctypes.byref(pol))
    except RematError as e:
        raise ValueError(f"remat.torch: policy {policy!r}: {e}") from None
    sched_p = ctypes.POINTER(_lib.Schedule)()
    try:
        _lib.call("remat_plan", chain.c_chain().ptr, ctypes.byref(pol), nbytes,
                  ctypes.byref(sched_p))
    except RematError as e:
        if e.code == _lib.EINFEASIBLE:
            raise ValueError(f"remat.torch: budget {budget!r} ({nbytes} bytes): {e}") from None
        raise
    try:
        s = sched_p.contents
        ops = _ops_list(s)
        buf = ctypes.create_string_buffer(64)
        plan = {"policy": _lib.load().remat_policy_name(ctypes.byref(s.policy), buf, 64).decode(),
                "budget_bytes": s.budget_bytes, "peak_bytes": s.peak_bytes, "time": s.time,
                "base_time": s.base_time, "overhead": s.overhead}
    finally:
        _lib.load().remat_schedule_free(sched_p)
    # The same schedule with workspaces zeroed: the bytes the executor itself holds (checkpoints,
    # saved activations, gradients), which it measures while running.
    def bare_stage(st):
        st = dict(st, fwd_tmp_bytes=0, bwd_tmp_bytes=0)
        if "options" in st:
            st["options"] = [{k: v for k, v in o.items() if not k.startswith("extra_")}
                             for o in st["options"]]
        return st

    bare = dict(chain.to_dict(), stages=[bare_stage(st) for st in chain.stages])
    plan["held_bytes"] = _simulate(_lib.OwnedChain.parse(json.dumps(bare)), ops).peak_bytes
    plan["store_all_bytes"] = chain.store_all_bytes()
    plan["ops"] = [f"{_lib.OP_NAMES[k]} {s}" + (f" {chain.stages[s]['options'][o]['name']}"
                                                  if o >= 0 else "") for k, s, o in ops]
    plan["stages"] = [dict(st) for st in chain.stages]
    plan["_ops"] = ops
    return plan


# ==== Execution ================================================================================


class _Run:
    """State of one forward+backward under a schedule: plain activations a_i, stored ā_{i+1}
    (input leaf, output, storages saved), gradients d_i; and the bytes they hold."""

    def __init__(self, mods, ops, exclude, device, option_names):
        self.mods, self.ops, self.exclude, self.device = mods, ops, exclude, device
        self.option_names = option_names  # per stage, the names of its options by index
        self.acts, self.stored, self.grads = {}, {}, {}
        self.rng, self.pc, self.peak = {}, 0, 0
        self.autocast = (torch.is_autocast_cpu_enabled(), torch.get_autocast_cpu_dtype(),
                         torch.is_autocast_enabled(), torch.get_autocast_gpu_dtype())

    def held_bytes(self):
        seen = {}
        for t in list(self.acts.values()) + list(self.grads.values()):
            if t is not None:
                ptr, n = _storage(t)
                seen[ptr] = n
        for _, out, saved in self.stored.values():
            seen.update(saved)
            ptr, n = _storage(out)
            seen[ptr] = n
        return sum(seen.values())

    def measure(self):
        self.peak = max(self.peak, self.held_bytes())

    def activation(self, i):
        if i in self.acts:
            return self.acts[i]
        if i in self.stored:
            return self.stored[i][1].detach()
        raise RematError(_lib.EINTERNAL, f"schedule needs a_{i}, which is not live")

    def _call(self, i, x):
        """Stage i on x; its first run records the RNG state, every later one replays it."""
        cuda = [self.device] if self.device.type == "cuda" else []
        if i not in self.rng:
            self.rng[i] = (torch.get_rng_state(),
                           [torch.cuda.get_rng_state(d) for d in cuda])
            return _check_output(i, self.mods[i], self.mods[i](x))
        with torch.random.fork_rng(devices=cuda):
            cpu, gpu = self.rng[i]
            torch.set_rng_state(cpu)
            for d, st in zip(cuda, gpu):
                torch.cuda.set_rng_state(st, d)
            return _check_output(i, self.mods[i], self.mods[i](x))

    def forward_nograd(self, i, keep_input):
        x = self.activation(i)
        # Autocast caches a weight's low-precision copy for the rest of the region; made under
        # no_grad it has no graph, and a later forward with grad of the same stage would reuse
        # it and leave the weight without a gradient. So no-grad runs neither fill nor use it.
        ac = self.autocast
        with torch.no_grad(), \
                torch.autocast("cpu", dtype=ac[1], enabled=ac[0], cache_enabled=False), \
                torch.autocast("cuda", dtype=ac[3], enabled=ac[2], cache_enabled=False):
            y = self._call(i, x)
        if i + 1 not in self.acts and i + 1 not in self.stored:
            self.acts[i + 1] = y
        self.measure()
        if not keep_input and i > 0 and i in self.acts:
            del self.acts[i]

    def forward_all(self, i, option):
        x = self.activation(i)
        leaf = x.detach().requires_grad_(x.is_floating_point())
        name = self.option_names[i][option] if option >= 0 else None
        with torch.enable_grad(), _OptionRun(self.mods[i], name,
                                             self.exclude | {_storage(x)[0]}) as tracker:
            y = self._call(i, leaf)
        if i + 1 in self.stored:  # already stored: the recomputed copy is dropped
            self.measure()
            return
        self.stored[i + 1] = (leaf, y, tracker.storages)
        self.acts.pop(i + 1, None)  # a plain copy is absorbed into ā_{i+1}
        self.measure()

    def backward(self, i):
        leaf, y, _ = self.stored[i + 1]
        dout = self.grads[i + 1]
        if y.requires_grad:
            torch.autograd.backward(y, dout)
        din = None
        if leaf.requires_grad:
            din = leaf.grad if leaf.grad is not None else torch.zeros_like(leaf)
        self.grads[i] = din
        self.measure()
        del self.stored[i + 1], self.grads[i + 1]
        if i > 0:
            self.acts.pop(i, None)

    def step(self):
        kind, i, option = self.ops[self.pc]
        self.pc += 1
        if kind == _lib.F_CK:
            self.forward_nograd(i, keep_input=True)
        elif kind == _lib.F_N:
            self.forward_nograd(i, keep_input=False)
        elif kind == _lib.F_ALL:
            self.forward_all(i, option)
        else:
            self.backward(i)

    def run_forward(self, x):
        """The ops before the first backward; returns a_L."""
        self.acts[0] = x
        self.measure()
        while self.pc < len(self.ops) and self.ops[self.pc][0] != _lib.B:
            self.step()
        return self.activation(len(self.mods))

    def run_backward(self, d_last):
        self.grads[len(self.mods)] = d_last
        self.measure()
        # Recomputations run under the autocast state of the forward, as the first runs did.
        with torch.autocast("cpu", dtype=self.autocast[1], enabled=self.autocast[0]), \
                torch.autocast("cuda", dtype=self.autocast[3], enabled=self.autocast[2]):
            while self.pc < len(self.ops):
                self.step()
        return self.grads.get(0)


class _Schedule(torch.autograd.Function):
    @staticmethod
    def forward(ctx, run, x, *params):
        ctx.run = run
        ctx.x_requires_grad = x.requires_grad
        return run.run_forward(x.detach()).detach()

    @staticmethod
    def backward(ctx, d_last):
        run, ctx.run = ctx.run, None
        with torch.enable_grad():
            d0 = run.run_backward(d_last)
        run.owner._last_peak = run.peak
        # Parameter gradients were accumulated by the stages' own backward calls.
        return (None, d0 if ctx.x_requires_grad else None) + (None,) * run.n_params


class Checkpointed(torch.nn.Module):
    """The sequence of modules run under a remat schedule. Forward with grad enabled runs the
    schedule's forward part, and backward the rest, so only the planned activations are kept;
    without grad it is the plain sequence. `plan` describes the schedule; `last_peak_bytes` is
    the bytes the executor held at its peak in the last backward (checkpoints, saved activations
    and gradients, measured from the tensors' storages), the quantity `plan["held_bytes"]`
    predicts."""

    def __init__(self, mods, plan):
        super().__init__()
        self.stages = torch.nn.ModuleList(mods)
        self.plan = {k: v for k, v in plan.items() if not k.startswith("_")}
        self._ops = plan["_ops"]
        self._option_names = [[o["name"] for o in st.get("options", [])] for st in plan["stages"]]
        for i, names in enumerate(self._option_names):
            for n in names:
                _parse_option(mods[i], n)  # a chain of another model fails here, not in backward
        self._last_peak = None

    @property
    def last_peak_bytes(self):
        return self._last_peak

    def forward(self, x):
        mods = list(self.stages)
        if not torch.is_grad_enabled():
            for i, m in enumerate(mods):
                x = _check_output(i, m, m(x))
            return x
        params = [p for p in self.parameters() if p.requires_grad]
        run = _Run(mods, self._ops, _owned_storages(mods), x.device, self._option_names)
        run.owner, run.n_params = self, len(params)
        # The parameters are inputs only so that the output requires grad even when x does not
        # (token ids); their gradients reach .grad through the stages' own backward calls.
        return _Schedule.apply(run, x, *params)


def checkpoint(module_or_list, sample_input, budget, policy="optimal", chain=None, expand=None,
               **profile_kw):
    """Profiles the sequence on sample_input (or uses `chain`), plans it under `budget` (bytes,
    a size string "512MiB", a percentage "50%" or a fraction 0.5 of the store-all peak) with
    remat's `policy` (optimal, store-all, sqrt, periodic:K, revolve), and returns a Checkpointed
    module. expand and the profile's keywords (options=True: per-stage recompute options) are
    profile()'s (expand=None: the given chain's, else False). A budget below the policy's
    minimum raises ValueError naming the minimum."""
    if expand is None:
        expand = chain.expand if chain is not None else False
    mods = _stages(module_or_list, expand)
    if chain is None:
        chain = profile(mods, sample_input, **profile_kw)
    elif len(chain.stages) != len(mods):
        raise ValueError(f"remat.torch: the chain has {len(chain.stages)} stages, the model "
                         f"{len(mods)}")
    else:
        _check_sample(mods, sample_input)
    return Checkpointed(mods, _plan(chain, budget, policy))


# ==== Fit ======================================================================================


def _unique_params(mods):
    seen = {}
    for m in mods:
        for p in m.parameters():
            seen[id(p)] = p.numel()
    return sum(seen.values())


def _card(card):
    c = _lib.Card()
    try:
        _lib.call("remat_card_lookup", str(card).encode(), ctypes.byref(c))
        return c.name.decode(), c.bytes
    except RematError:
        pass
    try:
        return str(card), _lib.parse_size(card)
    except RematError:
        raise ValueError(f"remat.torch: card {card!r} is neither a preset (remat fit --list) "
                         "nor a size such as 80GB") from None


def _batch_of(x, b):
    """x with b samples along dim 0 (sliced or tiled from x)."""
    n = x.shape[0]
    if b <= n:
        return x[:b].contiguous()
    reps = [math.ceil(b / n)] + [1] * (x.dim() - 1)
    return x.repeat(*reps)[:b].contiguous()


def fit(module_or_list, sample_input, card="a100-80gb", optimizer="adamw", dtype="fp32", gpus=1,
        zero=0, batches=(1, 2), batch=1, policy="store-all", allocator=None, print_result=False,
        **profile_kw):
    """The largest batch per activation policy on `card` for this model: the chain is profiled
    at two batch sizes (`batches`, samples taken along dim 0 of sample_input) and extended
    linearly; model states come from the parameter count, `optimizer` and `dtype` (fp32, or
    bf16/fp16 mixed precision with fp32 master weights), ZeRO `zero` over `gpus`; then libremat's
    fit arithmetic (remat_fit_chain) answers. The profile runs once per stage (timing=False)
    unless timing=True is passed: times only shape the overheads. Activations are as measured,
    in the dtype the model ran in. `allocator`: "remat" (the training runs on remat's pool,
    use_pool: its rounding is computed, no slack), "torch" (PyTorch's caching allocator: 2% of
    the managed bytes assumed for its rounding and fragmentation), None = "remat" once
    use_pool() has run, else "torch". Returns a dict like `remat fit --json`, with `largest_batch`
    per policy (None where a policy is not available: the selective ones need stage options);
    print_result prints it as `remat fit` does."""
    mods = _stages(module_or_list)
    _check_sample(mods, sample_input)
    b1, b2 = (int(b) for b in batches)
    if not (1 <= b1 < b2):
        raise ValueError(f"remat.torch: batches {batches!r} must be two sizes 1 <= b1 < b2")
    card_name, card_bytes = _card(card)
    if allocator is None:
        allocator = "remat" if _pool_installed else "torch"
    if allocator not in ("remat", "torch"):
        raise ValueError(f"remat.torch: allocator {allocator!r}: give \"remat\" (use_pool) or "
                         "\"torch\" (PyTorch's caching allocator)")
    req = _lib.FitRequest()
    _lib.load().remat_fit_request_init(ctypes.byref(req))
    req.own_pool = int(allocator == "remat")
    req.model.params_only = _unique_params(mods)
    req.card_bytes = card_bytes
    req.gpus, req.zero, req.batch = int(gpus), int(zero), int(batch)
    for field, fn, text in (("dtype", "remat_dtype_parse", dtype),
                            ("optimizer", "remat_optimizer_parse", optimizer),
                            ("policy", "remat_act_policy_parse", policy)):
        try:
            setattr(req, field, _lib.parse_enum(fn, text))
        except RematError as e:
            raise ValueError(f"remat.torch: {field} {text!r}: {e}") from None
    profile_kw.setdefault("timing", False)
    chains = [profile(mods, _batch_of(sample_input, b), **profile_kw) for b in (b1, b2)]
    res = _lib.FitResult()
    try:
        _lib.call("remat_fit_chain", ctypes.byref(req), chains[0].c_chain().ptr, b1,
                  chains[1].c_chain().ptr, b2, ctypes.byref(res))
    except RematError as e:
        if e.code == _lib.EINVAL:
            raise ValueError(f"remat.torch: {e}") from None
        raise
    largest = {p: (None if res.max_batch[k] < 0 else int(res.max_batch[k]))
               for k, p in enumerate(_lib.ACT_POLICIES)}
    out = {"model": chains[0].name, "params": int(res.params), "mode": "training",
           "card": {"name": card_name, "bytes": card_bytes}, "gpus": int(gpus), "zero": int(zero),
           "batch": int(batch),
           "dtype": str(dtype), "optimizer": str(optimizer), "policy": str(policy),
           "allocator": allocator,
           "per_gpu_bytes": {f: int(getattr(res.per_gpu, f)) for f in _lib.FIT_PARTS},
           "max_batch": largest, "largest_batch": largest,
           "overhead": {p: float(res.overhead[k]) for k, p in enumerate(_lib.ACT_POLICIES)
                        if largest[p]},
           "fits": bool(res.fits), "batches_measured": [b1, b2], "chains": chains}
    if print_result:
        print(format_fit(out))
    return out


def format_fit(r):
    """The text `remat fit` prints, for a fit() result."""
    fb = _lib.format_bytes
    lines = [f"model      torch: {r['params']} parameters",
             f"mode       training: {r['dtype']} {r['optimizer']}, ZeRO-{r['zero']} over "
             f"{r['gpus']} GPU, batch {r['batch']}, policy {r['policy']} (activations measured "
             f"at batches {r['batches_measured'][0]} and {r['batches_measured'][1]}; "
             f"{r['allocator']} allocator)",
             f"card       {r['card']['name']}: {fb(r['card']['bytes'])} ({r['card']['bytes']} "
             "bytes)", "per GPU:"]
    for part, n in r["per_gpu_bytes"].items():
        lines.append(f"  {part:<14} {fb(n):>11}  {n}")
    total, cap = r["per_gpu_bytes"]["total"], r["card"]["bytes"]
    lines.append(f"fits: yes, {fb(cap - total)} headroom" if r["fits"] else
                 f"fits: no, {fb(total - cap)} over")
    lines.append("largest batch per policy:")
    for p, n in r["largest_batch"].items():
        if n is None:
            lines.append(f"  {p:<21} n/a")
        else:
            lines.append(f"  {p:<21} {n:<10} recompute overhead "
                         f"{100 * r['overhead'].get(p, 0.0):.2f}%")
    return "\n".join(lines)


# ==== The pool as PyTorch's CUDA allocator ======================================================

_pool_installed = False


def use_pool(limit=None):
    """Makes remat's caching pool PyTorch's CUDA allocator (torch >= 2.0 with a CUDA device;
    call before the first CUDA allocation), each device's pool limited to `limit` (bytes or a
    size string; None = the device). Raises RuntimeError saying why where it cannot."""
    global _pool_installed
    major = int(torch.__version__.split(".")[0])
    if major < 2 or not hasattr(torch.cuda, "memory") or \
            not hasattr(torch.cuda.memory, "CUDAPluggableAllocator"):
        raise RuntimeError(f"remat.torch.use_pool: PyTorch {torch.__version__} has no pluggable "
                           "CUDA allocator (torch.cuda.memory.CUDAPluggableAllocator, PyTorch "
                           ">= 2.0)")
    if not torch.cuda.is_available():
        raise RuntimeError("remat.torch.use_pool: no CUDA device is available to PyTorch")
    if limit is None:
        nbytes = 0
    elif isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
        nbytes = limit
    elif isinstance(limit, str):
        nbytes = _lib.parse_size(limit)
    else:
        raise ValueError(f"remat.torch.use_pool: limit {limit!r}: give bytes or a size string")
    _lib.call("remat_torch_configure", b"cuda", nbytes)
    alloc = torch.cuda.memory.CUDAPluggableAllocator(_lib.library_path(), "remat_torch_alloc",
                                                     "remat_torch_free")
    torch.cuda.memory.change_current_allocator(alloc)
    _pool_installed = True


def pool_stats(device=0):
    """remat's statistics for the pool of CUDA device `device` (PyTorch's own memory statistics
    stay empty under a pluggable allocator): bytes requested/allocated/reserved (current and
    peak) and the counters of remat_pool_stats."""
    st = _lib.PoolStats()
    _lib.call("remat_torch_stats", int(device), ctypes.byref(st))
    out = {}
    for f in ("requested", "allocated", "reserved"):
        s = getattr(st, f)
        out[f] = {"current": int(s.current), "peak": int(s.peak)}
    for f in _lib.POOL_COUNTERS:
        out[f] = int(getattr(st, f))
    return out
