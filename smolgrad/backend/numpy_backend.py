"""The NumPy backend: runs kernel lists on the CPU. It is the reference the WebGPU
backend is tested against, and it supports float64 for gradient checks.

Each distinct kernel is compiled once into a plan (NumpyBackend._plan): its expressions
become a flat list of whole-array NumPy calls over numbered slots, with result dtypes
settled and dead temporaries reused in place, so running it costs little Python."""

from __future__ import annotations

import math
import time
import weakref
from collections import Counter, OrderedDict

import numpy as np

from .. import philox, profiler
from ..dtypes import DType
from ..ops import Op
from ..scheduler import Acc, Apply, Const, Expr, Kernel, Load, Operand
from ..view import View
from .base import Backend, debug_level, index_out_of_range

PLAN_CACHE_SIZE = 1024  # compiled kernels kept (see NumpyBackend._plan)
BLOCKED_COPY_MIN = 16 * 1024  # elements from which a permuted operand is copied in blocks
COPY_BLOCK = 64  # ... of this many columns (see _copy_c)


def _sigmoid(x):
    # split by sign so exp never overflows
    x = np.asarray(x)  # a constant expression's value may be a NumPy scalar
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1 / (1 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1 + ex)
    return out


UNARY_FNS = {
    Op.NEG: np.negative,
    Op.EXP: np.exp,
    Op.LOG: np.log,
    Op.SQRT: np.sqrt,
    Op.RECIP: lambda x: np.divide(1, x, dtype=x.dtype),
    Op.SIN: np.sin,
    Op.COS: np.cos,
    Op.TANH: np.tanh,
    Op.SIGMOID: _sigmoid,
    Op.ABS: np.abs,
    Op.SIGN: np.sign,
    Op.FLOOR: np.floor,
    Op.CEIL: np.ceil,
    Op.ROUND: np.rint,  # half to even
    Op.TRUNC: np.trunc,
    Op.ASIN: np.arcsin,
    Op.ACOS: np.arccos,
    Op.ATAN: np.arctan,
    Op.LOG1P: np.log1p,
    Op.EXPM1: np.expm1,
    Op.COPY: np.copy,
}
BINARY_FNS = {
    Op.ADD: np.add,
    Op.SUB: np.subtract,
    Op.MUL: np.multiply,
    Op.DIV: np.divide,
    Op.POW: np.power,
    Op.ATAN2: np.arctan2,
    Op.MAX: np.maximum,
    Op.MIN: np.minimum,
    Op.LT: np.less,
    Op.LE: np.less_equal,
    Op.GT: np.greater,
    Op.GE: np.greater_equal,
    Op.EQ: np.equal,
    Op.NE: np.not_equal,
}
REDUCE_FNS = {Op.SUM: np.add, Op.RMAX: np.maximum, Op.RMIN: np.minimum}  # ufunc.reduce


def read_operand(x: Operand) -> np.ndarray:
    """The operand as a (possibly strided) NumPy array of x.view.shape."""
    return _Reader(x.view, x.dtype.np.itemsize).read(x.node.realized)


class _Reader:
    """How to see one operand's view in its flat buffer, worked out once per view."""

    __slots__ = ("view", "shape", "start", "stop", "strides")

    def __init__(self, view: View, itemsize: int) -> None:
        self.view = view
        self.shape = view.shape
        if view.is_contiguous or view.numel == 0:
            self.start, self.stop, self.strides = view.offset, view.offset + view.numel, None
        else:  # in bytes, for np.ndarray
            self.start, self.stop = view.offset * itemsize, None
            self.strides = tuple(s * itemsize for s in view.strides)

    def read(self, buf: np.ndarray) -> np.ndarray:
        if self.strides is None:
            return buf[self.start : self.stop].reshape(self.shape)
        return np.ndarray(self.shape, buf.dtype, buf, self.start, self.strides)


def _copy_c(x: np.ndarray) -> np.ndarray:
    """A fresh C-order copy of x. A large transposed array is copied a block of
    columns at a time, so the rows it reads stay in cache (twice as fast)."""
    if x.ndim < 2 or x.size < BLOCKED_COPY_MIN:
        return np.array(x, order="C")
    out = np.empty(x.shape, x.dtype)
    for i in range(0, x.shape[-1], COPY_BLOCK):
        out[..., i : i + COPY_BLOCK] = x[..., i : i + COPY_BLOCK]
    return out


def _cast_result(fn, dtype: np.dtype):
    def cast(*xs):
        return np.asarray(fn(*xs)).astype(dtype, copy=False)

    return cast


def _op_fn(e: Apply):
    """The NumPy function computing one elementwise op."""
    if e.op is Op.CAST:
        dtype = e.dtype.np
        return lambda x: np.asarray(x).astype(dtype)
    if e.op in UNARY_FNS:
        return UNARY_FNS[e.op]
    if e.op in BINARY_FNS:
        return BINARY_FNS[e.op]
    if e.op is Op.WHERE:
        return np.where
    if e.op is Op.RAND:
        stream, view = e.arg
        return _rand_fn(stream, view, e.dtype.np)
    raise NotImplementedError(f"numpy backend: no elementwise op {e.op.name}")


# ----- device-side random numbers (Op.RAND): the same Philox stream as the WGSL kernels
def element_index(view: View) -> tuple[np.ndarray, int, int]:
    """(the element index `view` maps each of its positions to (int64, view.shape), the
    smallest and one past the largest of them)."""
    index = np.full((1,) * len(view.shape), view.offset, dtype=np.int64)
    lo = hi = view.offset
    for d, (n, stride) in enumerate(zip(view.shape, view.strides)):
        if n != 1 and stride != 0:
            shape = [1] * len(view.shape)
            shape[d] = n
            index = index + np.arange(n, dtype=np.int64).reshape(shape) * stride
            lo, hi = lo + min(0, (n - 1) * stride), hi + max(0, (n - 1) * stride)
    return np.broadcast_to(index, view.shape), lo, hi + 1


def _rand_fn(stream: int, view: View, dtype: np.dtype):
    """slots -> uniforms in [0, 1): element i of Philox stream `stream` at each position."""

    def rand(key0, key1, offset):
        if key0.shape != view.shape:  # the one-element stand-in that settles dtypes
            return np.zeros(key0.shape, dtype)
        if key0.size == 0:
            return np.zeros(view.shape, dtype)
        at = (0,) * key0.ndim
        k0, k1, off = (int(x[at]) & 0xFFFFFFFF for x in (key0, key1, offset))
        if view.is_contiguous:
            words = philox.stream_words(view.offset, view.offset + view.numel, off, stream, k0, k1)
            return philox.uniform(words, dtype).reshape(view.shape)
        index, lo, hi = element_index(view)
        words = philox.stream_words(lo, hi, off, stream, k0, k1)
        return philox.uniform(words, dtype)[index - lo]

    return rand


class _Program:
    """A kernel's expressions compiled into a flat list of steps over numbered slots.

    Each step is (fn, a, b, c, out, into): slots[out] = fn(slots[a], slots[b], slots[c])
    with unused arguments -1; into >= 0 makes a ufunc write into slots[into], a
    temporary of the right shape and dtype that no later step reads. Every step's
    result has its expression's dtype (a cast is added where NumPy's promotion differs,
    found by running the step once on one-element stand-ins)."""

    def __init__(self, program: tuple[Expr, ...], exprs: tuple[Expr, ...], ndim: int, relayout=frozenset()) -> None:
        """`ndim`: the kernel's (or prologue's) rank; `relayout`: the srcs read through
        permuted views."""
        self.ndim = ndim
        self.init: list = []  # slot values before a run: the constants, else None
        self.loads: list[tuple[int, int]] = []  # (slot, src index)
        self.acc: tuple[int, np.dtype] | None = None
        self.steps: list[list] = []
        self.probe: list = []  # a one-element stand-in for each slot's value
        self.owned: list[bool] = []  # a fresh array no one else sees (may be written in place)
        self.full: list[bool] = []  # has the kernel's shape (else a 0-d constant expression)
        uses = Counter(id(a) for e in program if isinstance(e, Apply) for a in e.srcs)
        slot: dict[int, int] = {}  # id(expr) -> slot
        for e in program:
            if isinstance(e, Load):
                slot[id(e)] = self._slot(None, np.ones((1,) * ndim, e.dtype.np), owned=False, full=True)
                self.loads.append((slot[id(e)], e.src))
                if e.src in relayout and uses[id(e)] > 1:
                    # a permuted view read by several ops: mixing its order with the
                    # output's makes each of them slow; copy it to C order once
                    slot[id(e)] = self._step(_copy_c, [slot[id(e)]], e.dtype.np)
            elif isinstance(e, Const):
                value = np.array(e.value, dtype=e.dtype.np)
                slot[id(e)] = self._slot(value, value, owned=False, full=False)
            elif isinstance(e, Acc):
                if self.acc is None:
                    self.acc = (self._slot(None, np.ones((1,) * ndim, e.dtype.np), owned=True, full=True), e.dtype.np)
                slot[id(e)] = self.acc[0]
            else:
                slot[id(e)] = self._step(_op_fn(e), [slot[id(a)] for a in e.srcs], e.dtype.np)
        self._write_in_place({slot[id(e)] for e in exprs})
        self.steps = [tuple(step) for step in self.steps]
        results, seen = [], set()
        for e in exprs:
            s = slot[id(e)]
            results.append((s, self.owned[s] and s not in seen))
            seen.add(s)
        self.results = tuple(results)

    def _slot(self, value, probe, owned: bool, full: bool) -> int:
        self.init.append(value)
        self.probe.append(probe)
        self.owned.append(owned)
        self.full.append(full)
        return len(self.init) - 1

    def _step(self, fn, args: list[int], dtype: np.dtype) -> int:
        """Append the step slots[new] = fn(*args) whose result has `dtype`; return new."""
        try:
            with np.errstate(all="ignore"):
                probe = np.asarray(fn(*[self.probe[a] for a in args]))
        except Exception:  # e.g. an integer to a negative power: the real run will say so
            probe = None
        if probe is None or probe.dtype != dtype:
            fn = _cast_result(fn, dtype)
            probe = np.ones((1,) * self.ndim, dtype)
        out = self._slot(None, probe, owned=True, full=any(self.full[a] for a in args))
        self.steps.append([fn, *args, *[-1] * (3 - len(args)), out, -1])
        return out

    def _write_in_place(self, results: set[int]) -> None:
        """Let each ufunc step write into an argument that is a temporary of its shape
        and dtype read by no later step (nor a kernel result)."""
        last_use = {}
        for i, step in enumerate(self.steps):
            for a in step[1:4]:
                last_use[a] = i
        if self.ndim == 0:  # NumPy gives scalars, not arrays, for 0-d results
            return
        for i, step in enumerate(self.steps):
            fn, out = step[0], step[4]
            if not (isinstance(fn, np.ufunc) and self.full[out]):
                continue
            for a in step[1:4]:
                if (
                    a >= 0
                    and self.owned[a]
                    and self.full[a]
                    and last_use[a] == i
                    and a not in results
                    and self.probe[a].dtype == self.probe[out].dtype
                ):
                    step[5] = a
                    break

    def run(self, xs: list[np.ndarray], acc: np.ndarray | None) -> list:
        """The slot values, given the operands `xs` and the core's result `acc`."""
        r = self.init.copy()
        for s, i in self.loads:
            r[s] = xs[i]
        if self.acc is not None:
            s, dtype = self.acc
            r[s] = acc if acc.dtype == dtype else acc.astype(dtype)
        for fn, a, b, c, out, into in self.steps:
            if c >= 0:
                r[out] = fn(r[a], r[b], r[c])
            elif b >= 0:
                r[out] = fn(r[a], r[b]) if into < 0 else fn(r[a], r[b], out=r[into])
            else:
                r[out] = fn(r[a]) if into < 0 else fn(r[a], out=r[into])
        return r

    def outputs(self, xs: list[np.ndarray], acc: np.ndarray | None, outs, shape: tuple[int, ...]) -> list[np.ndarray]:
        """The flat output buffers: fresh contiguous results are used as they are."""
        r = self.run(xs, acc)
        bufs = []
        for (s, owned), out in zip(self.results, outs):
            v, dtype = r[s], out.dtype.np
            if owned and type(v) is np.ndarray and v.dtype == dtype and v.shape == shape and v.flags.c_contiguous:
                bufs.append(v.reshape(-1))
            else:
                buf = np.empty(math.prod(shape), dtype)
                np.copyto(buf.reshape(shape), v, casting="unsafe")
                bufs.append(buf)
        return bufs


def check_index(index: np.ndarray, size: int, op: str, dim: int) -> None:
    if index.size and (index.min() < 0 or index.max() >= size):
        bad = index.min() if index.min() < 0 else index.max()
        raise index_out_of_range(op, dim, size, int(bad), on_device=False)


def gather(src: np.ndarray, index: np.ndarray, dim: int) -> np.ndarray:
    check_index(index, src.shape[dim], "gather", dim)
    # torch.gather allows index to be smaller than src on the other dims
    src = src[tuple(slice(None) if d == dim else slice(0, n) for d, n in enumerate(index.shape))]
    return np.take_along_axis(src, index.astype(np.intp), axis=dim)


def scatter_add(src: np.ndarray, index: np.ndarray, dim: int, shape, dtype) -> np.ndarray:
    check_index(index, shape[dim], "scatter_add", dim)
    out = np.zeros(shape, dtype=dtype)
    coords = list(np.indices(index.shape, sparse=True))
    coords[dim] = index.astype(np.intp)
    src = src[tuple(slice(0, n) for n in index.shape)]
    np.add.at(out, tuple(coords), src)
    return out


FOLD_MAX_EXTENT = 16


def reduce_array(op: Op, x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Reduce over `axes`, keeping them as size 1.

    NumPy reduces a few strided elements per output slowly (max-pooling windows: 40x
    slower than it could be), so small extents are folded slice by slice instead."""
    extent = math.prod(x.shape[a] for a in axes)
    if 1 < extent <= FOLD_MAX_EXTENT and x.size >= 4096 * extent:
        fold = REDUCE_FNS[op]
        acc = None
        for index in np.ndindex(*(x.shape[a] for a in axes)):
            where = [slice(None)] * x.ndim
            for a, i in zip(axes, index):
                where[a] = slice(i, i + 1)
            part = x[tuple(where)]
            acc = np.array(part) if acc is None else fold(acc, part, out=acc)
        return acc
    return REDUCE_FNS[op].reduce(x, axis=axes, keepdims=True)


def _is_permuted(view: View) -> bool:
    """Whether the view walks its buffer out of order (e.g. a transpose), not counting
    broadcast and size-1 dims."""
    strides = [abs(s) for n, s in zip(view.shape, view.strides) if n > 1 and s != 0]
    return strides != sorted(strides, reverse=True)


class _Plan:
    """What running one distinct kernel needs that can be worked out once: how to read
    each operand and the compiled expressions (a reduction's prologue separately)."""

    def __init__(self, k: Kernel) -> None:
        self.readers = tuple(_Reader(s.view, s.dtype.np.itemsize) for s in k.srcs)
        permuted = {i for i, s in enumerate(k.srcs) if _is_permuted(s.view)}
        shape = k.arg.shape if k.kind == "assign" else k.shape  # the region an assign computes
        self.main = _Program(k.program, k.exprs, len(shape), permuted)
        self.pre = _Program(k.pre_program, (k.pre,), len(k.pre_shape), permuted) if k.kind == "reduce" else None

    def operands(self, srcs: tuple[Operand, ...]) -> list[np.ndarray]:
        return [r.read(s.node.realized) if s.view is r.view else read_operand(s) for s, r in zip(srcs, self.readers)]


def run_kernel(k: Kernel, plan: _Plan | None = None) -> list[np.ndarray]:
    """The flat output buffers of one kernel. NumPy warnings are the caller's to silence."""
    if plan is None:
        plan = _Plan(k)
    xs = plan.operands(k.srcs)
    acc = None
    if k.kind == "assign":  # xs[0] is the region: a strided view into the buffer updated in place
        target = k.srcs[0].node.realized
        if any(s.node.realized is target for s in k.srcs[1:]):  # storage.write_in_place rules this out
            raise RuntimeError(f"internal: in-place write {k.name} reads the buffer it writes")
        if xs[0].size:
            np.copyto(xs[0], plan.main.run(xs, None)[plan.main.results[0][0]], casting="unsafe")
        return [target]
    if k.kind == "reduce":
        x = plan.pre.run(xs, None)[plan.pre.results[0][0]]
        if x.shape != k.pre_shape:  # a constant prologue
            x = np.broadcast_to(x, k.pre_shape)
        acc = reduce_array(k.op, x, tuple(k.arg))
    elif k.kind == "pad":
        pads, value = k.arg
        acc = np.pad(xs[0], pads, constant_values=value)
    elif k.op is Op.MATMUL:
        acc = np.matmul(xs[0], xs[1])
    elif k.op is Op.GATHER:
        acc = gather(xs[0], xs[1], k.arg)
    elif k.op is Op.SCATTER_ADD:
        acc = scatter_add(xs[0], xs[1], k.arg, k.shape, k.out.dtype.np)
    elif k.kind != "elementwise":
        raise NotImplementedError(f"numpy backend: no kernel for {k.op.name}")
    if acc is not None:  # a reduction's epilogue may see its result reshaped (e.g. keepdim dropped)
        acc = acc.reshape(k.shape)
    return plan.main.outputs(xs, acc, k.outs, k.shape)


class NumpyBackend(Backend):
    """Buffers are flat NumPy arrays."""

    name = "numpy"

    def __init__(self) -> None:
        super().__init__()
        self._plans: OrderedDict = OrderedDict()  # see _plan
        self._live: dict[int, tuple[weakref.ref, int]] = {}  # see _track

    def upload(self, flat: np.ndarray, dtype: DType) -> np.ndarray:
        return self._track(np.array(flat, dtype=dtype.np, copy=True).reshape(-1))

    def download(self, buf: np.ndarray, dtype: DType, offset: int, count: int) -> np.ndarray:
        return buf[offset : offset + count].copy()

    def run(self, kernels: list[Kernel]) -> None:
        profiling = profiler.is_active()
        timed = profiling or debug_level() >= 1
        with np.errstate(all="ignore"):  # inf/nan follow IEEE like the GPU; no warnings
            for k in kernels:
                start = time.perf_counter() if timed else 0.0
                bufs = run_kernel(k, self._plan(k))
                for out, buf in zip(k.outs, bufs):
                    out.realized = buf if k.kind == "assign" else self._track(buf)  # (an assign's is counted)
                self.stats["kernels"] += 1
                self.stats["dispatches"] += 1
                if timed:
                    seconds = time.perf_counter() - start
                    self.log_kernel(k, math.prod(k.shape), seconds)
                    if profiling:
                        event = profiler.KernelEvent(
                            "numpy",
                            k.name,
                            tuple(k.fused_ops),
                            seconds,
                            profiler.bytes_moved(k),
                            1,
                            profiler.WALL_CLOCK_NUMPY,
                        )
                        profiler.record(event)

    def _plan(self, k: Kernel) -> _Plan:
        """The plan of kernel `k`, made once per distinct kernel.

        Kernels the scheduler re-creates from its cache share their expression objects
        (compared by identity) and views, so a training step compiles nothing after the
        first. An operand whose view is not the plan's is read without the plan's help."""
        key = (k.exprs, k.pre, k.shape, k.pre_shape)  # (the programs follow from the expressions)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = _Plan(k)
            if len(self._plans) > PLAN_CACHE_SIZE:
                self._plans.popitem(last=False)
        else:
            self._plans.move_to_end(key)
        return plan

    def _track(self, buf: np.ndarray) -> np.ndarray:
        """Count the buffer in stats until it is garbage-collected.

        A plain weak reference with a callback costs half of weakref.finalize; the
        references are kept by id (arrays are unhashable) until their callback runs."""
        nbytes = buf.nbytes
        self._allocated(nbytes)
        ref = weakref.ref(buf, self._freed)
        self._live[id(ref)] = (ref, nbytes)
        return buf

    def _freed(self, ref: weakref.ref) -> None:
        self.stats["bytes_allocated"] -= self._live.pop(id(ref))[1]

    def synchronize(self) -> None:
        pass

    def info(self) -> dict:
        return {"name": "NumPy " + np.__version__, "backend": "numpy", "type": "CPU"}
