"""The lazy graph (DESIGN.md layer 3).

A LazyBuffer is a node: a primitive op over source nodes. Nothing runs until
`realize` is called on some nodes; then the scheduler turns the unrealized part of the
graph that those nodes need into a kernel list and the device's backend runs it.

There are two kinds of node:
- base nodes (every op but VIEW): their value is a contiguous buffer of `shape`;
- view nodes (op VIEW): srcs=(base,), arg=View, a zero-copy window on the base.
Views always point straight at a base node, so views of views are composed here.
"""

from __future__ import annotations

import math

import numpy as np

from . import dtypes
from .dtypes import DType
from .engine import realize as engine
from .engine.kernel import DEFAULT_MAX_BUFFERS
from .ops import BINARY, COMPARE, ELEMENTWISE, REDUCE, TERNARY, UNARY, Op
from .view import View

MAX_ELEMENTS = 2**31 - 1  # WGSL indexes with 32-bit integers
MAX_PLACED = DEFAULT_MAX_BUFFERS - 1  # sources of one PAD node: its kernel binds each, and its output


class LazyBuffer:
    __slots__ = ("shape", "dtype", "device", "op", "srcs", "arg", "realized", "saved", "__weakref__")

    def __init__(self, shape, dtype: DType, device: str, op: Op, srcs=(), arg=None, realized=None):
        self.shape: tuple[int, ...] = tuple(shape)
        self.dtype = dtype
        self.device = device
        self.op = op
        self.srcs: tuple[LazyBuffer, ...] = tuple(srcs)
        self.arg = arg
        self.realized = realized  # the backend's buffer once computed
        self.saved = False  # saved for backward: the scheduler stores it rather than fusing it away
        n = math.prod(self.shape)
        if n > MAX_ELEMENTS:
            raise ValueError(
                f"tensor of shape {self.shape} has {n} elements; smolgrad supports at most 2^31-1 "
                "elements per tensor (WGSL indices are 32-bit). Split the tensor into chunks."
            )

    def __repr__(self) -> str:
        state = "realized" if self.realized is not None else "lazy"
        return f"<LazyBuffer {self.op.name} {self.shape} {self.dtype.name} {self.device} {state}>"

    # ----- structure -----
    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def base(self) -> LazyBuffer:
        return self.srcs[0] if self.op is Op.VIEW else self

    @property
    def view(self) -> View:
        return self.arg if self.op is Op.VIEW else View.contiguous(self.shape)

    def is_realized(self) -> bool:
        return self.base.realized is not None

    def value_known(self) -> bool:
        """Whether an input check may read this value on the host: it is computed, and no
        step capture is recording (a replay runs no checks, so the recording must not
        depend on one; out-of-range indices are then caught on the device)."""
        return self.base.realized is not None and not engine.observers

    # ----- sources -----
    @staticmethod
    def load(array: np.ndarray, dtype: DType, device: str) -> LazyBuffer:
        from .device import get_backend

        array = np.asarray(array)  # (np.ascontiguousarray would turn 0-d into 1-d)
        buf = get_backend(device).upload(array.astype(dtype.np, copy=False).reshape(-1), dtype)
        node = LazyBuffer(array.shape, dtype, device, Op.LOAD, realized=buf)
        if engine.observers:
            engine.note_load(node, array)
        return node

    @staticmethod
    def const(value, shape, dtype: DType, device: str) -> LazyBuffer:
        value = dtype.np.type(value).item()
        scalar = LazyBuffer((), dtype, device, Op.CONST, arg=value)
        if not shape:
            return scalar
        shape = tuple(shape)  # the scalar broadcast to `shape`: one zero-stride view
        return LazyBuffer(shape, dtype, device, Op.VIEW, (scalar,), View(shape, (0,) * len(shape)))

    @staticmethod
    def rand(key: LazyBuffer, shape, dtype: DType, stream: int = 0) -> LazyBuffer:
        """Uniform floats in [0, 1), one per element, computed in the kernel that uses them:
        element i is Philox 4x32-10 at counter (i // 4, offset, stream, 0), word i % 4, with
        key (key0, key1), where `key` is an int32 buffer (key0, key1, offset) on the device
        (a buffer, not constants baked into the shader, so a new draw compiles nothing).
        See smolgrad/philox.py."""
        if key.shape != (3,) or key.dtype != dtypes.int32 or key.op is Op.VIEW:
            raise RuntimeError(f"internal: rand needs a base int32 key of shape (3,), got {key}")
        if not 0 <= stream < 2**32:
            raise RuntimeError(f"internal: rand stream must be a 32-bit unsigned integer, got {stream}")
        shape = tuple(shape)
        scalars = [key._view(View.contiguous((), i)) for i in range(3)]
        srcs = [s.reshape((1,) * len(shape)).expand(shape) if shape else s for s in scalars]
        return LazyBuffer(shape, dtype, key.device, Op.RAND, srcs, stream)

    def const_like(self, value) -> LazyBuffer:
        return LazyBuffer.const(value, self.shape, self.dtype, self.device)

    # ----- elementwise -----
    def e(self, op: Op, *others: LazyBuffer, arg=None) -> LazyBuffer:
        """Elementwise op over self and `others`, which must match in shape and device."""
        srcs = (self, *others)
        assert op in ELEMENTWISE, op
        for s in srcs[1:]:
            if s.shape != self.shape or s.device != self.device:
                raise RuntimeError(f"internal: elementwise {op.name} on {[x.shape for x in srcs]}")
        if op is Op.ADD:
            placed = _placed_sum(self, others[0])
            if placed is not None:
                return placed
        if op in UNARY:
            assert len(srcs) == 1
            out_dtype = arg if op is Op.CAST else self.dtype
        elif op in BINARY:
            assert len(srcs) == 2 and srcs[0].dtype == srcs[1].dtype, (op, srcs)
            out_dtype = dtypes.bool_ if op in COMPARE else self.dtype
        else:
            assert op in TERNARY and srcs[0].dtype == dtypes.bool_ and srcs[1].dtype == srcs[2].dtype
            out_dtype = srcs[1].dtype
        return LazyBuffer(self.shape, out_dtype, self.device, op, srcs, arg)

    def cast(self, dtype: DType) -> LazyBuffer:
        return self if dtype == self.dtype else self.e(Op.CAST, arg=dtype)

    def contiguous(self) -> LazyBuffer:
        """A base node with this value: self when it already is one, else a copy."""
        if self.op is not Op.VIEW:
            return self
        placed = _permuted_pad(self)
        if placed is not None:
            return placed
        return self.e(Op.COPY)

    # ----- reductions -----
    def r(self, op: Op, axes: tuple[int, ...]) -> LazyBuffer:
        assert op in REDUCE
        axes = tuple(sorted(set(axes)))
        if not axes:
            return self
        shape = tuple(1 if i in axes else n for i, n in enumerate(self.shape))
        return LazyBuffer(shape, self.dtype, self.device, op, (self,), axes)

    # ----- other compute -----
    def matmul(self, other: LazyBuffer) -> LazyBuffer:
        assert self.shape[:-2] == other.shape[:-2] and self.shape[-1] == other.shape[-2], (self.shape, other.shape)
        shape = (*self.shape[:-1], other.shape[-1])
        return LazyBuffer(shape, self.dtype, self.device, Op.MATMUL, (self, other))

    def gather(self, index: LazyBuffer, dim: int) -> LazyBuffer:
        return LazyBuffer(index.shape, self.dtype, self.device, Op.GATHER, (self, index), dim)

    def scatter_add(self, index: LazyBuffer, dim: int, shape: tuple[int, ...]) -> LazyBuffer:
        """zeros(shape) with self[i] added at index[i] along dim (the backward of gather)."""
        if self.dtype == dtypes.float16:  # summed in float32, rounded once (webgpu has no f16 atomics)
            return self.cast(dtypes.float32).scatter_add(index, dim, shape).cast(dtypes.float16)
        return LazyBuffer(shape, self.dtype, self.device, Op.SCATTER_ADD, (self, index), dim)

    @staticmethod
    def attention(srcs: tuple[LazyBuffer, ...], arg) -> LazyBuffer:
        """A fused attention node (see ops.AttentionArg for the parts and their shapes)."""
        q, k, v = srcs[:3]
        batch, (L, D), (S, Dv) = q.shape[:-2], q.shape[-2:], v.shape[-2:]
        width = {"forward": Dv + 1, "backward_q": D, "backward_kv": D + Dv}[arg.part]
        rows = S if arg.part == "backward_kv" else L
        return LazyBuffer((*batch, rows, width), q.dtype, q.device, Op.ATTENTION, srcs, arg)

    def assign(self, value: LazyBuffer, view: View) -> LazyBuffer:
        """This (base) node's value with `value` written where `view` (of value's shape)
        points, computed in place in this node's buffer: the caller guarantees that
        nothing else reads this node any more (see storage.write_in_place)."""
        if self.op is Op.VIEW or value.shape != view.shape or value.dtype != self.dtype or value.device != self.device:
            raise RuntimeError(f"internal: assign of {value} through {view} into {self}")
        return LazyBuffer(self.shape, self.dtype, self.device, Op.ASSIGN, (self, value), view)

    def pad(self, pads: tuple[tuple[int, int], ...], value=0.0) -> LazyBuffer:
        """This value with `pads` (before, after) elements of `value` around it per dim.

        A PAD node may place several sources (see _placed_sum): its arg is (the pads of
        each source, value), each source's region disjoint from the others'."""
        pads = tuple((int(lo), int(hi)) for lo, hi in pads)
        shape = tuple(lo + n + hi for n, (lo, hi) in zip(self.shape, pads))
        return LazyBuffer(shape, self.dtype, self.device, Op.PAD, (self,), ((pads,), value))

    # ----- movement (zero-copy views) -----
    def _view(self, view: View) -> LazyBuffer:
        if self.op is not Op.VIEW and view == View.contiguous(self.shape):
            return self
        return LazyBuffer(view.shape, self.dtype, self.device, Op.VIEW, (self.base,), view)

    def reshape(self, shape: tuple[int, ...]) -> LazyBuffer:
        if tuple(shape) == self.shape:
            return self
        v = self.view.reshape(tuple(shape))
        if v is None:  # the strides cannot express it: copy first, like torch.reshape
            return self.contiguous()._view(View.contiguous(tuple(shape)))
        return self._view(v)

    def permute(self, order: tuple[int, ...]) -> LazyBuffer:
        return self._view(self.view.permute(tuple(order)))

    def expand(self, shape: tuple[int, ...]) -> LazyBuffer:
        return self if tuple(shape) == self.shape else self._view(self.view.expand(tuple(shape)))

    def slice(self, bounds: tuple[tuple[int, int, int], ...]) -> LazyBuffer:
        return self._view(self.view.slice(tuple(bounds)))

    def flip(self, axes: tuple[int, ...]) -> LazyBuffer:
        return self._view(self.view.flip(tuple(axes)))

    # ----- evaluation -----
    def realize(self) -> LazyBuffer:
        realize(self)
        return self

    def numpy(self) -> np.ndarray:
        """Compute (if needed) and return the value as a new NumPy array."""
        from .device import get_backend

        src = self if self.op is not Op.VIEW or self.view.is_contiguous else self.contiguous()
        base = src.base
        realize(base)
        if engine.observers:
            engine.note_read(base)
        if base.op is Op.CONST and base.realized is None:  # a bare constant nothing computed
            return np.full(self.shape, base.arg, dtype=self.dtype.np)
        from . import profiler

        with profiler.span("wait (read back)"):
            flat = get_backend(self.device).download(base.realized, self.dtype, src.view.offset, self.numel)
        return flat.reshape(self.shape)


def _placed_sum(a: LazyBuffer, b: LazyBuffer) -> LazyBuffer | None:
    """a + b as one PAD node placing the sources of both, when a and b are unrealized
    zero pads whose regions do not overlap; None otherwise.

    `cat` and the gradient of several slices of one tensor (q, k and v of a fused
    projection) add such pads: placed together they are one kernel that copies each source
    once, instead of a full-size buffer per source and an add that reads them all. Inside
    a region the value is the source's own, as torch.cat keeps it (x + 0.0 would turn a
    -0.0 into 0.0)."""
    if not (_zero_pad(a) and _zero_pad(b)) or a.dtype != b.dtype or a.shape != b.shape:
        return None
    if len(a.srcs) + len(b.srcs) > MAX_PLACED:
        return None
    boxes_a = [_region(p, s.shape) for p, s in zip(a.arg[0], a.srcs)]
    boxes_b = [_region(p, s.shape) for p, s in zip(b.arg[0], b.srcs)]
    if any(_overlap(x, y) for x in boxes_a for y in boxes_b):
        return None
    return LazyBuffer(a.shape, a.dtype, a.device, Op.PAD, a.srcs + b.srcs, (a.arg[0] + b.arg[0], a.arg[1]))


def _permuted_pad(x: LazyBuffer) -> LazyBuffer | None:
    """A copy of view x, when x permutes the dims of an unrealized PAD node, as a PAD of
    its sources permuted alike (the pad writes the copy's layout directly, and the PAD
    node itself need not be stored); None otherwise. (The gradient of q, k and v sliced
    from a permuted qkv projection is such a copy.)"""
    base = x.srcs[0]
    if base.op is not Op.PAD or base.realized is not None or base.saved:
        return None
    order = _permutation(x.arg, base.shape)
    if order is None:
        return None
    pads = tuple(tuple(p[d] for d in order) for p in base.arg[0])
    srcs = tuple(s.permute(order) for s in base.srcs)
    return LazyBuffer(x.shape, x.dtype, x.device, Op.PAD, srcs, (pads, base.arg[1]))


def _permutation(view: View, shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """The order with View.contiguous(shape).permute(order) == view, or None."""
    strides = View.contiguous(shape).strides
    order: list[int] = []
    for n, stride in zip(view.shape, view.strides):
        d = next((d for d in range(len(shape)) if d not in order and shape[d] == n and strides[d] == stride), None)
        if d is None:
            return None
        order.append(d)
    order_t = tuple(order)
    return order_t if len(order_t) == len(shape) and View.contiguous(shape).permute(order_t) == view else None


def _zero_pad(x: LazyBuffer) -> bool:
    """Whether x is an unrealized PAD with +0 outside its regions (x + y is then y there)."""
    if x.op is not Op.PAD or x.realized is not None or x.saved or x.dtype == dtypes.bool_:
        return False
    value = x.arg[1]
    return value == 0 and math.copysign(1.0, value) > 0


def _region(pads: tuple[tuple[int, int], ...], shape: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """The [start, stop) per dim that a source of `shape` padded by `pads` fills."""
    return tuple((lo, lo + n) for (lo, _), n in zip(pads, shape))


def _overlap(a: tuple[tuple[int, int], ...], b: tuple[tuple[int, int], ...]) -> bool:
    """Whether two boxes share an element."""
    return all(max(lo_a, lo_b) < min(hi_a, hi_b) for (lo_a, hi_a), (lo_b, hi_b) in zip(a, b))


def realize(*lbs: LazyBuffer) -> None:
    """Compute every given node that is not yet computed (see engine/realize.py)."""
    from . import batching
    from .engine.realize import realize as run_realize

    if batching.tracing:
        batching.check_no_placeholders([lb.base for lb in lbs if lb.base.realized is None and lb.base.op is not Op.CONST])
    run_realize(*lbs)
