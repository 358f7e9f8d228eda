"""Storage: what a tensor shares with its views, `.detach()` and `.data` (PyTorch's semantics).

smolgrad's values are immutable lazy graph nodes, so a storage is not memory: it is the
root tensor (whose `lazydata` is the storage's current value), a version counter, and
weak references to the live views. A view records the chain of movement ops that
derives it from the root, e.g. (("slice", bounds), ("permute", order), ("detach", None)).

An in-place op computes the new value with ordinary Tensor ops, places it into the root
(`where(mask, unchained value, root)`, one fused elementwise kernel), rebinds the root
to that node, bumps the version and re-derives every live view by replaying its chain.
In grad mode the rebinding takes the new node's autograd history too, so in-place ops
on non-leaf tensors are differentiated like any other op.

A write through a view of a root whose value nobody else can read any more is done in
place instead (`Op.ASSIGN`): one kernel over the written region only, storing into the
root's existing buffer, so `x[7] = row` costs one row, not a copy of x. See
`write_in_place` for when that is, and why it is safe.
"""

from __future__ import annotations

import math
import sys
import weakref
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from . import batching, dtypes
from . import function as F
from .autograd import forward_ad, is_grad_enabled
from .autograd.engine import set_grad_mode  # (record is only ever True in grad mode)
from .lazy import LazyBuffer
from .ops import Op
from .engine.schedule import fusion_enabled
from .view import View

if TYPE_CHECKING:
    from .tensor import Tensor

OVERLAP_ERROR = (
    "unsupported operation: more than one element of the written-to tensor refers to a single memory "
    "location. Please clone() the tensor before performing the operation."
)


class Storage:
    """The version counter and live views of one root tensor's value."""

    __slots__ = ("version", "views", "_prune_at")

    def __init__(self):
        self.version = 0
        self.views: list[weakref.ref] = []
        self._prune_at = 64

    def add(self, view: Tensor) -> None:
        self.views.append(weakref.ref(view))
        if len(self.views) >= self._prune_at:  # amortised: dead views are dropped in bulk
            self.views = [r for r in self.views if r() is not None]
            self._prune_at = max(64, 2 * len(self.views))

    def live_views(self) -> list[Tensor]:
        out = [v for v in (r() for r in self.views) if v is not None and v._storage is self]
        self.views = [weakref.ref(v) for v in out]
        return out


class ViewInfo(NamedTuple):
    """How a view derives from its storage's root: `abase` is the tensor autograd sees as
    its base (None: the view itself, as after a detach), `detached` whether the chain
    has a detach (writes through it are not recorded by autograd)."""

    root: Tensor
    chain: tuple
    abase: Tensor | None
    detached: bool


# ----- registering views -----


def storage_of(t: Tensor) -> Storage:
    """The storage of `t`'s root, created on first use."""
    root = t if t._view is None else t._view.root
    if root._storage is None:
        root._storage = Storage()
    return root._storage


def register_view(parent: Tensor, child: Tensor, *entries: tuple) -> Tensor:
    """Make `child` (just computed from `parent` by the movement ops `entries`) a view
    sharing `parent`'s storage, and return it."""
    if child is parent:
        return child
    if parent.requires_grad and not is_grad_enabled() and entries[-1][0] != "detach":
        entries = (*entries, ("detach", None))  # a view made under no_grad does not require grad
    info = parent._view
    if info is None:
        root, chain, abase, detached = parent, entries, parent, False
    else:
        root, chain, abase, detached = info.root, info.chain + entries, info.abase, info.detached
        if abase is None:
            abase = parent
    if any(e[0] == "detach" for e in entries):
        abase, detached = None, True
    storage = storage_of(parent)
    child._storage = storage
    child._view = ViewInfo(root, chain, abase, detached)
    storage.add(child)
    return child


def alias(target: Tensor, value: Tensor) -> None:
    """Make `target` share `value`'s storage as a detached alias (`target.data = value`),
    keeping target's identity, grad, requires_grad and autograd history."""
    rebind(target, value.lazydata)
    register_view(value, target, ("detach", None))


def rebind(target: Tensor, node: LazyBuffer) -> None:
    """`target.data = value` for a value that no tensor holds yet (a replayed step's new
    parameter): `target` becomes the root of its own storage rather than a detached alias
    of a tensor made only to be aliased. As with alias, views of its old value keep it."""
    old = target._storage
    if old is not None and target._view is None:
        _reroot(target, old)
    target.lazydata = node
    target._storage = target._view = None


def _reroot(root: Tensor, storage: Storage) -> None:
    """`root` leaves its storage: its live views keep the old value under a new root."""
    views = storage.live_views()
    if not views:
        return
    orphan = root._from_lazy(root.lazydata, root.requires_grad)
    orphan._ctx, orphan._storage = root._ctx, storage
    for v in views:
        info = v._view
        v._view = info._replace(root=orphan, abase=orphan if info.abase is root else info.abase)


def storage_view(t: Tensor) -> View:
    """Where `t`'s elements sit in its root's (contiguous) value."""
    info = t._view
    v = View.contiguous(t.shape if info is None else info.root.shape)
    if info is None:
        return v
    for kind, arg in info.chain:
        v = _step_view(v, kind, arg)
    return v


def _step_view(v: View, kind: str, arg) -> View:
    if kind == "reshape":
        out = v.reshape(arg)
        assert out is not None, "internal: a view chain holds a reshape that needed a copy"
        return out
    if kind == "permute":
        return v.permute(arg)
    if kind == "expand":
        return v.expand(arg)
    if kind == "slice":
        return v.slice(arg)
    if kind == "windows":
        return v.windows(*arg)
    return v  # detach


def reshape_is_view(t: Tensor, shape: tuple[int, ...]) -> bool:
    """Whether torch would return a view for t.reshape(shape) (else it copies)."""
    return t._view is None or storage_view(t).reshape(tuple(shape)) is not None


def is_storage_contiguous(t: Tensor) -> bool:
    return t._view is None or storage_view(t).is_contiguous


# ----- replaying and inverting chains -----


def replay(root: Tensor, chain: tuple) -> Tensor:
    """The view `chain` of `root`, rebuilt with differentiable ops (nothing registered)."""
    t = root
    for kind, arg in chain:
        if kind == "reshape":
            t = F.Reshape.apply(t, shape=arg)
        elif kind == "permute":
            t = F.Permute.apply(t, order=arg)
        elif kind == "expand":
            t = F.Expand.apply(t, shape=arg)
        elif kind == "slice":
            t = F.Slice.apply(t, bounds=arg)
        elif kind == "windows":
            dims, kernel, stride, dilation = arg
            t = F.Windows.apply(t, dims=dims, kernel=kernel, stride=stride, dilation=dilation)
        else:
            t = t._from_lazy(t.lazydata)
    return t


def replay_lazy(lb: LazyBuffer, chain: tuple) -> LazyBuffer:
    """The view `chain` of the value `lb` (no autograd)."""
    for kind, arg in chain:
        if kind == "reshape":
            lb = lb.reshape(arg)
        elif kind == "permute":
            lb = lb.permute(arg)
        elif kind == "expand":
            lb = lb.expand(arg)
        elif kind == "slice":
            lb = lb.slice(arg)
        elif kind == "windows":
            lb = lb._view(_step_view(lb.view, kind, arg))
    return lb


def unchain(value: Tensor, root_shape: tuple[int, ...], chain: tuple) -> Tensor:
    """A tensor of the root's shape holding `value` where the view `chain` reads (anything
    elsewhere: the caller masks it): each movement op undone in reverse, with
    differentiable ops."""
    shapes = [tuple(root_shape)]
    v = View.contiguous(tuple(root_shape))
    for kind, arg in chain:
        v = _step_view(v, kind, arg)
        shapes.append(v.shape)
    for (kind, arg), in_shape in zip(reversed(chain), reversed(shapes[:-1])):
        if kind == "reshape":
            value = F.Reshape.apply(value, shape=in_shape)
        elif kind == "permute":
            inverse = [0] * len(arg)
            for i, o in enumerate(arg):
                inverse[o] = i
            value = F.Permute.apply(value, order=tuple(inverse))
        elif kind == "slice":
            value = unslice(value, arg, in_shape)
        elif kind == "expand":
            raise RuntimeError(OVERLAP_ERROR)
    return value


def unslice(g: Tensor, bounds: tuple, in_shape: tuple[int, ...]) -> Tensor:
    """g placed where x[bounds] reads in a tensor of x's shape: zeros interleaved for steps,
    then padded; a dim that selects one element is expanded instead (a view, no kernel:
    the writer masks the positions the view does not read)."""
    if 0 in g.shape:
        return g._from_lazy(LazyBuffer.const(0, in_shape, g.dtype, g.device))
    one = [d for d, n in enumerate(in_shape) if g.shape[d] == 1 and n > 1]
    if one:
        shape = tuple(n if d in one else s for d, (s, n) in enumerate(zip(g.shape, in_shape)))
        g = F.Expand.apply(g, shape=shape)
        bounds = tuple((0, n, 1) if d in one else b for d, (b, n) in enumerate(zip(bounds, in_shape)))
    for d, ((start, _, step), n) in enumerate(zip(bounds, in_shape)):
        m = g.shape[d]
        if step > 1:
            shape = g.shape
            g = F.Reshape.apply(g, shape=(*shape[: d + 1], 1, *shape[d + 1 :]))
            pads = [(0, 0)] * len(g.shape)
            pads[d + 1] = (0, step - 1)
            g = F.Pad.apply(g, pads=tuple(pads))
            g = F.Reshape.apply(g, shape=(*shape[:d], m * step, *shape[d + 1 :]))
        length = min(g.shape[d], n - start)
        if length < g.shape[d]:
            g = F.Slice.apply(g, bounds=tuple((0, length if i == d else s, 1) for i, s in enumerate(g.shape)))
        if start or n - start - length:
            pads = [(0, 0)] * len(g.shape)
            pads[d] = (start, n - start - length)
            g = F.Pad.apply(g, pads=tuple(pads))
    return g


_MASKS: dict = {}


def positions(sview: View) -> np.ndarray:
    """The flat position in the root of each element of a view (an array of its shape)."""
    index = np.full(sview.shape, sview.offset, dtype=np.int64)
    for d, (n, s) in enumerate(zip(sview.shape, sview.strides)):
        index += np.arange(n, dtype=np.int64).reshape([-1 if i == d else 1 for i in range(len(sview.shape))]) * s
    return index


def write_mask(root_shape: tuple[int, ...], sview: View, device: str) -> LazyBuffer:
    """The bool mask, of the root's shape, of the elements a view reads (built on the host
    once per view layout and device, then reused)."""
    key = (tuple(root_shape), sview, device)
    if key not in _MASKS:
        flat = np.zeros(math.prod(root_shape), dtype=bool)
        flat[positions(sview).reshape(-1)] = True
        if len(_MASKS) >= 64:
            _MASKS.clear()
        _MASKS[key] = LazyBuffer.load(flat.reshape(root_shape), dtypes.bool_, device)
    return _MASKS[key]


# ----- in-place writes -----

_TORCH_NAMES = {"float32": "Float", "float64": "Double", "float16": "Half", "int32": "Int", "int64": "Long", "bool": "Bool"}


def torch_name(dt) -> str:
    return _TORCH_NAMES.get(dt.name, dt.name)


def check_inplace(t: Tensor, op: str) -> None:
    """PyTorch's errors for in-place ops that autograd cannot allow."""
    if not (t.requires_grad and is_grad_enabled()):
        return
    info = t._view
    if t._ctx is None and (info is None or info.abase is None):
        raise RuntimeError(
            f"{op}: a leaf Variable that requires grad is being used in an in-place operation. "
            "(Do it inside `with smolgrad.no_grad():`, as optimizers and nn.init do.)"
        )
    if info is not None and info.abase is not None and info.abase._ctx is None and info.abase.requires_grad:
        raise RuntimeError(
            f"{op}: a view of a leaf Variable that requires grad is being used in an in-place operation. "
            "(Do it inside `with smolgrad.no_grad():`, or on a clone().)"
        )


def snapshot(t: Tensor) -> Tensor:
    """A tensor with t's current value and autograd history, for t about to be rebound
    (so the two never share a history: the graph would visit it twice). A leaf that
    requires grad is itself: it is never rebound in grad mode, and its gradient must
    reach its .grad."""
    if t._ctx is None and t.requires_grad:
        return t
    s = t._from_lazy(t.lazydata, t.requires_grad)
    s._ctx, s._fw = t._ctx, t._fw
    return s


def current(t: Tensor) -> tuple[Tensor, Tensor]:
    """(t's current value, a snapshot of its root) for an in-place op about to rebind t's
    root: a view's value is re-derived from the root's snapshot, so the new value's history
    never runs through a tensor that the op rebinds."""
    info = t._view
    if info is None:
        s = snapshot(t)
        return s, s
    s = snapshot(info.root)
    if info.detached or not is_grad_enabled():
        return t._from_lazy(t.lazydata), s
    return replay(s, info.chain), s


def cast_result(new: Tensor, target: Tensor, op: str) -> Tensor:
    """`new` in target's dtype, refusing what PyTorch refuses in place (float into int, ...)."""
    if new.dtype == target.dtype:
        return new
    if (new.dtype.is_floating_point and not target.dtype.is_floating_point) or (
        target.dtype.is_bool and not new.dtype.is_bool
    ):
        raise RuntimeError(
            f"{op}: result type {torch_name(new.dtype)} can't be cast to the desired output type "
            f"{torch_name(target.dtype)}"
        )
    return new.type(target.dtype)


def write(target: Tensor, new: Tensor, op: str, root_snapshot: Tensor | None = None) -> Tensor:
    """Set target's value (a tensor or a view of some storage) to `new`, of target's shape
    and dtype: rebind the root, bump the version, refresh every live view. Everything
    that can fail is checked before anything is rebound. `root_snapshot` is the one
    `current` gave, if `new` was computed from it."""
    if new.shape != target.shape:
        raise RuntimeError(f"{op}: output with shape {list(target.shape)} doesn't match the broadcast shape {list(new.shape)}")
    new = cast_result(new, target, op)
    info = target._view
    record = is_grad_enabled() and (info is None or not info.detached)
    root = target if info is None else info.root
    if info is not None:
        sview = storage_view(target)
        if any(s == 0 and n > 1 for n, s in zip(sview.shape, sview.strides)):
            raise RuntimeError(f"{op}: {OVERLAP_ERROR}")
        if write_in_place(root, info.chain, new, record):
            root.lazydata = root.lazydata.assign(new.lazydata, sview)
            storage = storage_of(root)
            storage.version += 1
            _refresh(root, storage, record)
            return target
        with set_grad_mode(record):
            if sview == View.contiguous(root.shape):  # the view covers the root in order
                new = F.Reshape.apply(new, shape=root.shape) if new.shape != root.shape else new
            elif any(kind == "windows" for kind, _ in info.chain):  # unfold: no movement op undoes it
                from .indexing import put_flat

                s = snapshot(root) if root_snapshot is None else root_snapshot
                new = put_flat(s, positions(sview), new)
            else:
                placed = unchain(new, root.shape, info.chain)
                mask = root._from_lazy(write_mask(root.shape, sview, root.device))
                new = F.Where.apply(mask, placed, snapshot(root) if root_snapshot is None else root_snapshot)
    storage = storage_of(root)
    root.lazydata = new.lazydata
    if record:
        root._ctx, root.requires_grad = new._ctx, new.requires_grad
    if forward_ad._current is not None:  # the new value's tangent (write_in_place never runs under forward AD)
        root._fw = new._fw
    storage.version += 1
    _refresh(root, storage, record)
    return target


# ----- writing in place -----

IN_PLACE_CHAIN = frozenset({"slice", "permute", "reshape", "detach"})  # views whose positions are distinct


def write_in_place(root: Tensor, chain: tuple, new: Tensor, record: bool) -> bool:
    """Whether the write of `new` through the view `chain` of `root` may store into root's
    buffer in place (Op.ASSIGN) instead of computing where(mask, new, root) into a new one.

    The invariant: an ASSIGN overwrites its target's buffer, so when it is made nothing
    but this write may ever read the target's value again. The target is root's value
    `old`, a base node that is computed (or an ASSIGN that will be: repeated writes), and
    the only Python references to `old` are the ones storage accounts for and is about to
    move to the new value: `root.lazydata`, the `lazydata` of root's live views, and the
    sources of those views' VIEW nodes (each referenced by its views only). Python's
    reference counts are exact, so any other holder shows up as one reference too many:
    a pending lazy node reading x (`y = x * 2` not realized, or `new` itself computed
    from x), a clone not yet realized, a tensor sharing the node outside storage (saved
    for backward as another Tensor object, `Tensor._from_lazy(x.lazydata)`), a cache.
    The accounted holders are all rebound by the write, except one reader the count
    cannot tell apart: `new` itself when its node is one of them (`x[1:] = x[:-1]`, a
    live view as the value), which is refused by name. Once rebound, `old` is reachable
    only through the ASSIGN's sources, which realize drops, so nothing can get hold of
    it afterwards either. (A realized reader has dropped its sources: it holds its own
    buffer and no reference to `old`.) A buffer belongs to one base node (backends never
    share one between nodes; an ASSIGN takes over its target's), so counting references
    to the node counts every reader of the buffer. The scheduler and both backends
    still refuse, loudly, an assign kernel that would read the buffer it writes.

    Anything else keeps the copying path: writes that autograd records (with a tensor
    that requires grad), forward AD, vmap tracing, SMOLGRAD_FUSION=0 (the one-kernel-per-op
    baseline), views whose positions may repeat (windows), and a value on another device."""
    old = root.lazydata
    if (
        (record and (root.requires_grad or new.requires_grad))
        or forward_ad._current is not None
        or batching.tracing
        or not fusion_enabled()
        or new.device != root.device
        or new.lazydata.base is old  # the value is root's value or a view of it
        or old.op is Op.VIEW
        or (old.realized is None and old.op is not Op.ASSIGN)
        or any(kind not in IN_PLACE_CHAIN for kind, _ in chain)
    ):
        return False
    del old  # (a reference of our own would be counted)
    return all(_references(entry) == expected for entry, expected in _accounted_references(root))


def value_unshared(t: Tensor) -> bool:
    """Whether nothing but `t` (and the root of its storage, when an optimizer's
    `t.data = new` made it an alias) refers to t's current value, a computed base node:
    no lazy computation not yet run, no other tensor, no view (a view keeps the old value
    when `t.data` is replaced), no cache. Then storing t's next value into the same
    buffer changes nothing that anyone reads (step capture's in-place updates)."""
    root = t if t._view is None else t._view.root
    if root._storage is not None and any(v is not t for v in root._storage.live_views()):
        return False
    entry = [t.lazydata]
    if entry[0] is not root.lazydata or entry[0].op is Op.VIEW or entry[0].realized is None:
        return False
    return _references(entry) == (1 if root is t else 2)  # (Python's reference counts are exact)


def _accounted_references(root: Tensor) -> list[tuple[list, int]]:
    """([node], references to it that storage accounts for) for root's value and each VIEW
    node over it that a live view holds: one per distinct tensor holding the node, plus
    one per distinct VIEW node whose source it is."""
    old = root.lazydata
    counts: dict[int, list] = {id(old): [[old], 1]}  # root.lazydata
    seen = {id(root)}
    for v in storage_of(root).live_views():
        if id(v) in seen:
            continue
        seen.add(id(v))
        lb = v.lazydata
        if lb is not old and not (lb.op is Op.VIEW and lb.srcs[0] is old):
            continue  # not derived from root's current value: holds no reference to it
        if id(lb) not in counts:
            counts[id(lb)] = [[lb], 0]
            counts[id(old)][1] += 1  # lb.srcs holds old
        counts[id(lb)][1] += 1
    return [(entry, n) for entry, n in counts.values()]


def _references(entry: list) -> int:
    """References to entry[0] besides `entry` itself (calibrated below, so that the count
    does not depend on how the interpreter passes arguments)."""
    return sys.getrefcount(entry[0]) - _REFERENCE_OVERHEAD


_REFERENCE_OVERHEAD = 0
_REFERENCE_OVERHEAD = _references([object()])


def _refresh(root: Tensor, storage: Storage, record: bool) -> None:
    """Re-derive every live view of `storage` from its root's new value."""
    views = storage.live_views()
    if not views:
        return
    tangents = forward_ad.has_tangent(root)
    for v in views:
        info = v._view
        if (record or tangents) and not info.detached:
            with set_grad_mode(record):
                nv = replay(root, info.chain)  # differentiable ops: the view's history and tangent
            v.lazydata = nv.lazydata
            if record:
                v._ctx, v.requires_grad = nv._ctx, nv.requires_grad
            if tangents:
                v._fw = nv._fw
        else:
            v.lazydata = replay_lazy(root.lazydata, info.chain)
