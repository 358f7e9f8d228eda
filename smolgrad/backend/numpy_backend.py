"""The NumPy backend: runs kernel lists on the CPU. It is the reference the WebGPU
backend is tested against, and it supports float64 for gradient checks.

Each distinct kernel is compiled once into a plan (NumpyBackend._plan): its expressions
become a flat list of whole-array NumPy calls over numbered slots, with result dtypes
settled and dead temporaries reused in place, so running it costs little Python.

A large kernel runs that list piece by piece (see _pieces): each NumPy call then works on
an array that stays in the CPU's cache, and the temporaries are small, instead of every op
streaming a fresh array the size of the kernel through memory (2-3x faster at 1M floats)."""

from __future__ import annotations

import functools
import math
import sys
import time
import weakref
from collections import Counter, OrderedDict, defaultdict

import numpy as np

from .. import philox, profiler
from ..dtypes import DType
from ..ops import Op
from ..engine.kernel import Acc, Apply, Const, Expr, Kernel, Load, Operand
from ..view import View
from . import blas_threads, numpy_jit, numpy_threads
from .numpy_threads import each as _each
from .base import Backend, debug_level, index_out_of_range
from .numpy_attention import Pairing, attention
from .numpy_jit_rows import RowsJit
from .numpy_rows import run_rows

PLAN_CACHE_SIZE = 1024  # compiled kernels kept (see NumpyBackend._plan)
BLOCKED_COPY_MIN = 16 * 1024  # elements from which a permuted operand is copied in blocks
COPY_BLOCK = 64  # ... of this many columns (see _copy_c)
PIECE = 64 * 1024  # elements of one piece of a kernel evaluated piecewise (see _pieces)
# multiply-adds of one matrix product below which BLAS uses one thread (products of up
# to a few ms): on a shared 2-core machine the default GPT step ran 3x faster with all
# its products (up to 2^27) on one thread than with OpenBLAS's two (see blas_threads)
SMALL_GEMM = 1 << 28
SPLIT_GEMM = 1 << 25  # multiply-adds of a product from which it is split over THREADS (see _gemm_parts)
POOL_MIN_BYTES = 256 * 1024  # arrays from this size are recycled (see _Pool) ...
POOL_MAX_BYTES = 512 * 1024 * 1024  # ... keeping at most this much memory unused


def _sigmoid(x):
    # split by sign so exp never overflows
    x = np.asarray(x)  # a constant expression's value may be a NumPy scalar
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1 / (1 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1 + ex)
    return out


def _copy(x, out=None):
    if out is None:
        return np.copy(x)
    np.copyto(out, x)
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
    Op.COPY: _copy,
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


def _refs_unused() -> int:
    """sys.getrefcount of an array popped from a list into a local, with no view of it."""
    bases = [np.empty(1)]
    base = bases.pop()
    return sys.getrefcount(base)


class _Pool:
    """Flat arrays whose memory is recycled when they die (a caching allocator, as
    PyTorch's for CUDA): the first touch of fresh memory costs page faults, on some
    machines as long as the kernel that fills the array; recycled memory is mapped.

    An array handed out is a view of a byte array (its base) that the pool gets back when
    the view is garbage-collected. The backend makes views of its buffers only while they
    are alive; a base that some view still holds is never handed out again all the same."""

    UNUSED = _refs_unused()

    def __init__(self) -> None:
        self._free: defaultdict[int, list[np.ndarray]] = defaultdict(list)  # nbytes -> unused bases
        self._free_bytes = 0
        self._out: dict[int, tuple[weakref.ref, np.ndarray]] = {}  # id(ref) -> (ref, base) handed out

    def empty(self, n: int, dtype: np.dtype) -> np.ndarray:
        """An uninitialised flat array of n elements."""
        nbytes = n * dtype.itemsize
        if nbytes < POOL_MIN_BYTES:
            return np.empty(n, dtype)
        bases, base = self._free[nbytes], None
        while bases and base is None:
            base = bases.pop()
            self._free_bytes -= nbytes
            if sys.getrefcount(base) != self.UNUSED:  # a view outlived its array: let it go
                base = None
        if base is None:
            base = np.empty(nbytes, np.uint8)
        flat = base.view(dtype)
        ref = weakref.ref(flat, self._returned)
        self._out[id(ref)] = (ref, base)
        return flat

    def clear(self) -> None:
        """Drop the unused arrays."""
        self._free.clear()
        self._free_bytes = 0

    def _returned(self, ref: weakref.ref) -> None:
        base = self._out.pop(id(ref))[1]
        if self._free_bytes + base.nbytes <= POOL_MAX_BYTES:
            self._free[base.nbytes].append(base)
            self._free_bytes += base.nbytes


def _copy_c(x: np.ndarray) -> np.ndarray:
    """A fresh C-order copy of x. A large transposed array is copied a block of
    columns at a time, so the rows it reads stay in cache (twice as fast)."""
    if x.ndim < 2 or x.size < BLOCKED_COPY_MIN:
        return np.array(x, order="C")
    out = np.empty(x.shape, x.dtype)
    for i in range(0, x.shape[-1], COPY_BLOCK):
        out[..., i : i + COPY_BLOCK] = x[..., i : i + COPY_BLOCK]
    return out


_BITS = {4: np.int32, 8: np.int64}


def _select(cond: np.ndarray, a, b):
    """np.where(cond, a, b) for a boolean cond and a, b of one 4- or 8-byte dtype, as bit
    operations: b ^ ((a ^ b) & -cond). The same bits, without a branch per element
    (np.where runs 7x slower on a random mask, as ReLU's backward has, 1.5x on a causal one)."""
    a, b = np.asarray(a), np.asarray(b)
    bits = _BITS[a.dtype.itemsize]
    mask = np.array(cond, dtype=bits)
    np.negative(mask, out=mask)
    x = np.bitwise_and(np.bitwise_xor(a.view(bits), b.view(bits)), mask)  # (of the broadcast shape)
    x ^= b.view(bits)
    return x.view(a.dtype)


def _where(cond, a, b, out=None):
    """np.where(cond, a, b); with out=b (a temporary no later step reads), only the
    elements where cond holds are written, in place (a causal mask: four times faster)."""
    if out is None:
        dtype = getattr(a, "dtype", None)
        if (
            getattr(cond, "dtype", None) == np.bool_
            and dtype is not None
            and dtype == getattr(b, "dtype", None)
            and dtype.kind in "fiu"
            and dtype.itemsize in _BITS
        ):
            return _select(cond, a, b)
        return np.where(cond, a, b)
    if out is not b:
        np.copyto(out, b)
    np.copyto(out, a, where=cond if cond.dtype == np.bool_ else cond.astype(np.bool_))
    return out


def _takes_out(fn) -> bool:
    """Whether fn(*args, out=array) writes its result into that array."""
    return isinstance(fn, np.ufunc) or fn is _copy


def compute_np(dtype: DType) -> np.dtype:
    """The NumPy dtype a kernel computes a dtype's values in: float16 is stored as
    float16 but read as float32, computed (and accumulated) in float32 and rounded where
    it is stored or cast to float16, as on webgpu."""
    return np.dtype(np.float32) if dtype.np == np.float16 else dtype.np


def _empty(n: int, dtype: np.dtype) -> np.ndarray:
    return np.empty(n, dtype)


def _cast_result(fn, dtype: np.dtype):
    def cast(*xs):
        return np.asarray(fn(*xs)).astype(dtype, copy=False)

    return cast


def _settled(fn, probes: list, dtype: np.dtype, ndim: int):
    """(fn, or fn with its result cast to `dtype` where NumPy's promotion gives another,
    a one-element stand-in for its result), found by running fn on one-element stand-ins
    `probes` for its arguments."""
    try:
        with np.errstate(all="ignore"):
            probe = np.asarray(fn(*probes))
    except Exception:  # e.g. an integer to a negative power: the real run will say so
        probe = None
    if probe is None or probe.dtype != dtype:
        return _cast_result(fn, dtype), np.ones((1,) * ndim, dtype)
    return fn, probe


def _numpy_call(e: Apply, ndim: int):
    """The function a _Program step computes op e with (see _Program._step), for
    numpy_jit.segments: _op_fn(e), its result cast where NumPy's promotion differs."""
    probes = [
        np.array(s.value, compute_np(s.dtype)) if isinstance(s, Const) else np.ones((1,) * ndim, compute_np(s.dtype))
        for s in e.srcs
    ]
    return _settled(_op_fn(e), probes, compute_np(e.dtype), ndim)[0]


def _int_div(a, b):
    """Integer division rounding toward zero, exactly (true division through float64 rounds
    large int64 values), and 0 where b is 0, as the WGSL kernels give."""
    q = np.floor_divide(a, b)  # (0 where b is 0)
    return q + ((np.remainder(a, b) != 0) & ((np.asarray(a) < 0) != (np.asarray(b) < 0)))


def _op_fn(e: Apply):
    """The NumPy function computing one elementwise op."""
    if e.op is Op.DIV and e.dtype.np.kind in "iu":
        return _int_div
    if e.op is Op.CAST:
        dtype = e.dtype.np
        if dtype == np.float16:  # rounded to float16, computed on in float32
            return lambda x: np.asarray(x).astype(dtype).astype(np.float32)
        return lambda x: np.asarray(x).astype(dtype)
    if e.op in UNARY_FNS:
        return UNARY_FNS[e.op]
    if e.op in BINARY_FNS:
        return BINARY_FNS[e.op]
    if e.op is Op.WHERE:
        return _where
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


@functools.lru_cache(maxsize=PLAN_CACHE_SIZE)
def _pieces(shape: tuple[int, ...], split: int, size: int) -> tuple[tuple[tuple, tuple[int, ...]], ...] | None:
    """(basic index, its shape) of pieces of about `size` elements that together cover
    `shape`, cut along its first `split` axes only; None for a shape too small to cut."""
    if math.prod(shape) < 4 * size:  # (below that the arrays fit in cache anyway)
        return None
    inner = 1  # elements of one index of axis `a`
    for a in reversed(range(len(shape))):
        if a < split and inner * shape[a] > size:
            break
        inner *= shape[a]
    else:
        return None  # the axes that may be cut hold at most `size` elements in all
    step = max(1, size // inner)
    pieces = []
    for lead in np.ndindex(*shape[:a]):  # (slices, not integers: every axis is kept)
        for i in range(0, shape[a], step):
            at = (*(slice(j, j + 1) for j in lead), slice(i, i + step))
            pieces.append((at, (1,) * a + (min(step, shape[a] - i),) + shape[a + 1 :]))
    return tuple(pieces) if len(pieces) > 1 else None


class _Program:
    """A kernel's expressions compiled into a flat list of steps over numbered slots.

    Each step is (fn, a, b, c, out, into): slots[out] = fn(slots[a], slots[b], slots[c])
    with unused arguments -1; into >= 0 makes a ufunc write into slots[into], a
    temporary of the right shape and dtype that no later step reads. Every step's
    result has its expression's dtype (a cast is added where NumPy's promotion differs,
    found by running the step once on one-element stand-ins).

    An operand broadcast along some dims (a bias, a row statistic, a scalar) is read
    with those dims of size 1, so the ops on it alone run once per distinct value
    instead of once per element (NumPy broadcasts where it meets full-size values);
    an op repeated on the same slots is computed once."""

    def __init__(
        self, program: tuple[Expr, ...], exprs: tuple[Expr, ...], ndim: int, relayout=frozenset(), bcast=None
    ) -> None:
        """`ndim`: the kernel's (or prologue's) rank; `relayout`: the srcs read through
        permuted views; `bcast`: per src, the dims along which its view repeats one value
        (stride 0), or None to read every operand at the full shape."""
        self.ndim = ndim
        self.init: list = []  # slot values before a run: the constants, else None
        self.loads: list[tuple[int, int, tuple | None]] = []  # (slot, src index, compacting index)
        self.acc: tuple[int, np.dtype] | None = None
        self.steps: list[list] = []
        self.probe: list = []  # a one-element stand-in for each slot's value
        self.owned: list[bool] = []  # a fresh array no one else sees (may be written in place)
        self.dims: list[tuple[bool, ...]] = []  # per dim, whether the value varies along it
        if any(isinstance(e, Apply) and e.op is Op.RAND for e in program):
            bcast = None  # random numbers are drawn at the full shape (see _rand_fn)
        uses = Counter(id(a) for e in program if isinstance(e, Apply) for a in e.srcs)
        slot: dict[int, int] = {}  # id(expr) -> slot
        done: dict[tuple, int] = {}  # (op, dtype, argument slots) -> slot, for repeated ops
        full = (True,) * ndim
        for e in program:
            if isinstance(e, Load):
                fixed = bcast[e.src] if bcast is not None else ()
                dims = tuple(d not in fixed for d in range(ndim))
                index = tuple(slice(0, 1) if d in fixed else slice(None) for d in range(ndim)) if fixed else None
                slot[id(e)] = self._slot(None, np.ones((1,) * ndim, compute_np(e.dtype)), owned=False, dims=dims)
                self.loads.append((slot[id(e)], e.src, index))
                if e.src in relayout and uses[id(e)] > 1:
                    # a permuted view read by several ops: mixing its order with the
                    # output's makes each of them slow; copy it to C order once
                    slot[id(e)] = self._step(_copy_c, [slot[id(e)]], compute_np(e.dtype))
            elif isinstance(e, Const):
                value = np.array(e.value, dtype=compute_np(e.dtype))
                slot[id(e)] = self._slot(value, value, owned=False, dims=(False,) * ndim)
            elif isinstance(e, Acc):
                if self.acc is None:
                    dtype = compute_np(e.dtype)
                    self.acc = (self._slot(None, np.ones((1,) * ndim, dtype), owned=True, dims=full), dtype)
                slot[id(e)] = self.acc[0]
            else:
                args = [slot[id(a)] for a in e.srcs]
                key = (e.op, e.dtype, *args)
                if e.op in (Op.RAND, Op.CAST) or key not in done:
                    done[key] = self._step(_op_fn(e), args, compute_np(e.dtype))
                slot[id(e)] = done[key]
        self._piece_loads: dict[int, tuple] = {}  # see piece_loads
        self.whole_loads = self.load_indexes(None)
        self._write_in_place({slot[id(e)] for e in exprs})
        self.steps = [tuple(step) for step in self.steps]
        # worth cutting into pieces when it computes something; not random numbers, a
        # function of the element's index in the whole kernel
        self.piecewise = (
            ndim > 0 and bool(self.steps) and not any(isinstance(e, Apply) and e.op is Op.RAND for e in program)
        )
        # the kernel's one result is its core's (a matmul's with no epilogue, say)
        self.bare = len(exprs) == 1 and isinstance(exprs[0], Acc)
        results, seen = [], set()
        for e in exprs:
            s = slot[id(e)]
            results.append((s, self.owned[s] and s not in seen))
            seen.add(s)
        self.results = tuple(results)
        self._direct_steps()
        self.program, self.exprs = program, exprs
        self.runs = 0  # runs through outputs() before compiling (see numpy_jit)
        self.compiled = None  # the numba function; False: not compiled (see _compiled)
        self.value_order = None  # a prologue's memory order on NumPy alone (see compiled_value)

    def _direct_steps(self) -> None:
        """Steps for a run over pieces of the outputs: a ufunc (or where) step computing
        a result writes it into its output, loaded into a slot of its own (self.dests)."""
        self.dests: list[int | None] = []  # per result: the slot of its output, or None
        self.piece_steps = list(self.steps)
        for s, owned in self.results:
            i = next((i for i, step in enumerate(self.steps) if step[4] == s), None)
            if not owned or i is None or not _takes_out(self.steps[i][0]):
                self.dests.append(None)
                continue
            dest = self._slot(None, self.probe[s], owned=False, dims=(True,) * self.ndim)
            self.piece_steps[i] = (*self.steps[i][:5], dest)
            self.dests.append(dest)

    def _slot(self, value, probe, owned: bool, dims: tuple[bool, ...]) -> int:
        self.init.append(value)
        self.probe.append(probe)
        self.owned.append(owned)
        self.dims.append(dims)
        return len(self.init) - 1

    def _step(self, fn, args: list[int], dtype: np.dtype) -> int:
        """Append the step slots[new] = fn(*args) whose result has `dtype`; return new."""
        fn, probe = _settled(fn, [self.probe[a] for a in args], dtype, self.ndim)
        dims = tuple(any(self.dims[a][d] for a in args) for d in range(self.ndim))
        out = self._slot(None, probe, owned=True, dims=dims)
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
            if not ((isinstance(fn, np.ufunc) or fn is _where) and any(self.dims[out])):
                continue  # (an op on constants alone gives a NumPy scalar)
            for a in step[1:4] if fn is not _where else step[3:4]:  # where writes into its `else`
                if (
                    a >= 0
                    and self.owned[a]
                    and self.dims[a] == self.dims[out]
                    and last_use[a] == i
                    and a not in results
                    and self.probe[a].dtype == self.probe[out].dtype
                ):
                    step[5] = a
                    break

    def load_indexes(self, at: tuple | None) -> list[tuple | None]:
        """Each load's basic index into its operand for the piece `at` (None: all of it)."""
        if at is None:
            return [index for _, _, index in self.loads]
        return [
            at if index is None else tuple(index[d] if index[d].stop == 1 else a for d, a in enumerate(at)) + index[len(at) :]
            for _, _, index in self.loads
        ]

    def piece_loads(self, pieces: tuple) -> list[list[tuple | None]]:
        """load_indexes of every piece, worked out once per pieces tuple (see _pieces)."""
        got = self._piece_loads.get(id(pieces))
        if got is None or got[0] is not pieces:
            got = self._piece_loads[id(pieces)] = (pieces, [self.load_indexes(at) for at, _ in pieces])
        return got[1]

    def run(self, xs: list[np.ndarray], acc: np.ndarray | None, at: tuple | None = None, outs=None, loads=None) -> list:
        """The slot values, given the operands `xs` and the core's result `acc` (both of
        the program's shape), over all of it or over the piece `at` (a basic index;
        `loads`: its load_indexes, if worked out already). With `outs` (the outputs, of
        the program's shape), results go straight into outs[at] where self.dests says so."""
        r = self.init.copy()
        for (s, i, _), index in zip(self.loads, loads or (self.whole_loads if at is None else self.load_indexes(at))):
            r[s] = xs[i] if index is None else xs[i][index]
        if self.acc is not None:
            s, dtype = self.acc
            if at is not None:
                acc = acc[at]
            r[s] = acc if acc.dtype == dtype else acc.astype(dtype)
        steps = self.steps
        if outs is not None:
            steps = self.piece_steps
            for dest, out in zip(self.dests, outs):
                if dest is not None:
                    r[dest] = out[at]
        for fn, a, b, c, out, into in steps:
            if c >= 0:
                r[out] = fn(r[a], r[b], r[c]) if into < 0 else fn(r[a], r[b], r[c], out=r[into])
            elif b >= 0:
                r[out] = fn(r[a], r[b]) if into < 0 else fn(r[a], r[b], out=r[into])
            else:
                r[out] = fn(r[a]) if into < 0 else fn(r[a], out=r[into])
        return r

    def outputs(self, xs: list[np.ndarray], acc: np.ndarray | None, outs, shape: tuple[int, ...], empty=_empty) -> list:
        """The flat output buffers, made by `empty(n, dtype)`, or fresh contiguous results
        of a kernel run whole, as they are."""
        if self.compiled is not False and self._compiled([o.dtype.np for o in outs], shape) is not None:
            bufs = [empty(math.prod(shape), out.dtype.np) for out in outs]
            if self._run_compiled(xs, acc, [buf.reshape(shape) for buf in bufs], shape):
                return bufs
        pieces = _pieces(shape, len(shape), PIECE) if self.piecewise else None
        if pieces is not None:
            bufs = [empty(math.prod(shape), out.dtype.np) for out in outs]
            views = [buf.reshape(shape) for buf in bufs]

            def piece(item) -> None:
                (at, _), loads = item
                r = self.run(xs, acc, at, views, loads)
                for (s, _), view, dest in zip(self.results, views, self.dests):
                    if dest is None:
                        np.copyto(view[at], r[s], casting="unsafe")

            _each(piece, list(zip(pieces, self.piece_loads(pieces))))
            return bufs
        r = self.run(xs, acc)
        bufs = []
        for (s, owned), out in zip(self.results, outs):
            v, dtype = r[s], out.dtype.np
            if owned and type(v) is np.ndarray and v.dtype == dtype and v.shape == shape and v.flags.c_contiguous:
                bufs.append(v.reshape(-1))
            else:
                buf = empty(math.prod(shape), dtype)
                np.copyto(buf.reshape(shape), v, casting="unsafe")
                bufs.append(buf)
        return bufs

    def _compiled(self, out_dtypes: list[np.dtype], shape: tuple[int, ...]):
        """The program's numba function (see numpy_jit) once it has run AFTER times, else
        None; sets self.compiled to False for good where it is not compiled. `out_dtypes`:
        the NumPy dtypes its results are stored in; `shape`: the program's (a plan's
        kernels all have the same)."""
        if self.compiled is None:
            self.runs += 1
            due = numpy_jit.due(self.runs, math.prod(shape)) if self.steps else False
            if not due:
                if due is False:
                    self.compiled = False
                return None
            dims = [self.dims[s] for s, _, _ in self.loads]
            src = numpy_jit.source(self.program, self.exprs, self.ndim, dims, out_dtypes, compute_np)
            if src is not None:
                self.compiled = numpy_jit.build(src)
            else:  # compiled loops around the ops left to NumPy, if any loop is left
                ndim = self.ndim
                segments = numpy_jit.segments(
                    self.program, self.exprs, ndim, dims, out_dtypes, compute_np, lambda e: _numpy_call(e, ndim)
                )
                self.compiled = segments or False
        return self.compiled or None

    def compiled_value(self, xs: list[np.ndarray], at: tuple | None, shape: tuple[int, ...], loads) -> np.ndarray | None:
        """The one result of a program (a reduction's prologue) over the piece `at` of
        `shape` (None: all of it; `loads`: its load_indexes), computed into a fresh array
        by its numba function; None if it is not compiled (see ready)."""
        fn = self.compiled
        if not fn:
            return None
        indexes = loads or (self.whole_loads if at is None else self.load_indexes(at))
        args = [xs[i] if index is None else xs[i][index] for (_, i, _), index in zip(self.loads, indexes)]
        dtype = self.probe[self.results[0][0]].dtype
        if any(_walks_out_of_order(a) for a in args):
            # NumPy alone computes the value in its operands' memory order, and its sum
            # adds in that order: computed into an array laid out as NumPy's value was
            order = self.value_order
            if order is None:  # (the first run: NumPy's value)
                value = self.run(xs, None, at, None, loads)[self.results[0][0]]
                self.value_order = _memory_order(value, shape)
                return value
            if order is False:
                return None
            x = np.empty([shape[d] for d in order], dtype).transpose(np.argsort(order))
        else:
            x = np.empty(shape, dtype)
        try:  # (numba compiles at the first call, for the argument types it gets)
            fn(x, *args)
        except numpy_jit.compile_errors() as exc:
            numpy_jit.failed(exc)
            self.compiled = False
            return None
        return x

    def ready(self, dtype: np.dtype, shape: tuple[int, ...]) -> bool:
        """Count a run of a program of `shape` whose one result is stored in `dtype`;
        whether it is compiled (see _compiled)."""
        if self.compiled is False or self._compiled([dtype], shape) is None:
            return False
        numpy_jit.counts["runs"] += 1
        return True

    def _run_compiled(self, xs: list[np.ndarray], acc: np.ndarray | None, views: list[np.ndarray], shape) -> bool:
        """Compute the results into `views` (the outputs, of the program's shape) with the
        numba function, piece by piece on the device's threads; False if numba fails to
        compile it (it then stays on NumPy)."""
        pieces = _pieces(shape, len(shape), PIECE) or (((slice(None),) * len(shape), shape),)
        loads = self.piece_loads(pieces) if len(pieces) > 1 else [self.whole_loads]
        fn = self.compiled

        def piece(item) -> None:
            (at, _), indexes = item
            args = [view[at] for view in views]
            args += [xs[i] if index is None else xs[i][index] for (_, i, _), index in zip(self.loads, indexes)]
            if acc is not None and self.acc is not None:
                args.append(acc[at])
            fn(*args)

        items = list(zip(pieces, loads))
        try:  # the first piece here: numba compiles the function for its argument types
            piece(items[0])
        except Exception as exc:
            if not isinstance(exc, numpy_jit.compile_errors()):
                raise
            numpy_jit.failed(exc)
            self.compiled = False
            return False
        _each(piece, items[1:])
        numpy_jit.counts["runs"] += 1
        return True


def check_index(index: np.ndarray, size: int, op: str, dim: int) -> None:
    """Raise index_out_of_range unless every value of `index` is in [0, size)."""
    if not index.size:
        return
    # a broadcast index (stride 0) repeats its values: each is checked once
    index = index[tuple(slice(0, 1) if stride == 0 else slice(None) for stride in index.strides)]
    low, high = index.min(), index.max()
    if low < 0 or high >= size:
        raise index_out_of_range(op, dim, size, int(low if low < 0 else high), on_device=False)


def _one_index_per_slice(index: np.ndarray, dim: int) -> bool:
    """Whether `index` is constant along every dim but `dim` (an embedding's: one row id
    per slice), so whole slices of the data are moved."""
    return index.size > 0 and all(
        n == 1 or stride == 0 for d, (n, stride) in enumerate(zip(index.shape, index.strides)) if d != dim
    )


def _slice_ids(index: np.ndarray, dim: int) -> np.ndarray:
    """The indices of an index that _one_index_per_slice accepts, once each, as intp."""
    return index[tuple(slice(None) if d == dim else 0 for d in range(index.ndim))].astype(np.intp)


def _index_part(index: np.ndarray, dim: int) -> tuple:
    """The part of an array that `index` covers: all of `dim`, index's size along the others
    (torch's gather and scatter allow an index smaller than the data there)."""
    return tuple(slice(None) if d == dim else slice(0, n) for d, n in enumerate(index.shape))


def gather(src: np.ndarray, index: np.ndarray, dim: int) -> np.ndarray:
    src = src[_index_part(index, dim)]
    if _one_index_per_slice(index, dim):  # whole slices (an embedding): 10x faster than take_along_axis
        ids = _slice_ids(index, dim)
        check_index(ids, src.shape[dim], "gather", dim)
        return np.take(src, ids, axis=dim)  # (of index's shape: src is sliced to it on the other dims)
    check_index(index, src.shape[dim], "gather", dim)
    return np.take_along_axis(src, index.astype(np.intp), axis=dim)


def scatter_add(src: np.ndarray, index: np.ndarray, dim: int, shape, dtype) -> np.ndarray:
    src = src[tuple(slice(0, n) for n in index.shape)]
    if _one_index_per_slice(index, dim):  # an embedding's backward: whole slices are added
        rows = _slice_ids(index, dim)
        check_index(rows, shape[dim], "scatter_add", dim)
        out = np.zeros(shape, dtype=dtype)
        part = out[_index_part(index, dim)]  # (only the part index covers is added to)
        _add_slices(np.moveaxis(part, dim, 0), rows, np.moveaxis(src, dim, 0))
        return out
    check_index(index, shape[dim], "scatter_add", dim)
    out = np.zeros(shape, dtype=dtype)
    coords = list(np.indices(index.shape, sparse=True))
    coords[dim] = index.astype(np.intp)
    np.add.at(out, tuple(coords), src)
    return out


SCATTER_MAX_LEVELS = 64  # see _add_slices
SCATTER_MIN_ROWS = 4  # see _add_slices

# _add_slices's compiled loops (numpy_jit.add_slices_source), by (dtype, ndim): the function,
# or False where numba failed; and the calls made on NumPy before one is due (numpy_jit.due)
_slices_jit: dict[tuple[str, int], object] = {}
_slices_runs: Counter = Counter()


def _slices_kernel(out: np.ndarray, src: np.ndarray):
    """The compiled loop adding slices of src into out, once numpy_jit.due says so; else None."""
    if src.dtype != out.dtype or out.dtype.kind not in "fiu" or out.dtype == np.float16:
        return None
    key = (out.dtype.str, out.ndim)
    fn = _slices_jit.get(key)
    if fn is None:
        runs = _slices_runs[key] + 1
        due = numpy_jit.due(runs, src.size)
        if due is None:
            _slices_runs[key] = runs
        if not due:
            return None
        fn = _slices_jit[key] = numpy_jit.build(numpy_jit.add_slices_source(out.ndim))
    return fn if fn and numpy_jit.available() else None  # (SMOLGRAD_JIT=0 set since)


def _add_slices(out: np.ndarray, rows: np.ndarray, src: np.ndarray) -> None:
    """out[rows[i]] += src[i] for each i in turn, as np.add.at adds (the same sums, in the
    same order, so the same bits), faster: for an embedding's (2048, 128) into (512, 128),
    about 60 us compiled and 0.5-0.8 ms on NumPy, against 0.8 ms (np.add.at: 2.5 ms where a
    token is 30% of the batch) before either.

    Compiled (numba), it is that loop. On NumPy, the k-th additions to each row of out are
    made together, one fancy-indexed add per k (no row repeats within one), for the first
    levels that hold SCATTER_MIN_ROWS rows or more (at most SCATTER_MAX_LEVELS); the few rows
    added to more often then get their remaining additions in turn from one
    np.add.accumulate each (a sequential sum by definition)."""
    fn = _slices_kernel(out, src)
    if fn is not None:
        try:
            fn(out, rows, src)
            return
        except numpy_jit.compile_errors() as exc:  # (raised before the loop runs: out is untouched)
            numpy_jit.failed(exc)
            _slices_jit[(out.dtype.str, out.ndim)] = False
    n = len(rows)
    if src.dtype != out.dtype:
        np.add.at(out, rows, src)
        return
    if not n:
        return
    # (a stable argsort of 16-bit keys is a radix sort: 8x faster than of intp)
    order = np.argsort(rows.astype(np.uint16) if len(out) <= 1 << 16 else rows, kind="stable")
    sorted_rows = rows[order]
    first = np.ones(n, dtype=bool)
    first[1:] = sorted_rows[1:] != sorted_rows[:-1]
    start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    rank = np.arange(n) - start  # how many earlier i add to the same row
    counts = np.bincount(rank)  # rows at each rank (non-increasing)
    levels = min(len(counts), SCATTER_MAX_LEVELS, 65535)
    while levels > 1 and counts[levels - 1] < SCATTER_MIN_ROWS:
        levels -= 1
    by_rank = order[np.argsort(np.minimum(rank, levels).astype(np.uint16), kind="stable")]  # (i ascending within one)
    lo = 0
    for count in counts[:levels]:
        i = by_rank[lo : lo + count]
        lo += count
        r = rows[i]
        out[r] = out[r] + src[i]
    if levels < len(counts):  # the rows added to more often than that: the rest of their additions
        starts = np.flatnonzero(first)
        ends = np.append(starts[1:], n)
        for s in np.flatnonzero(ends - starts > levels):
            r = sorted_rows[starts[s]]
            more = src[order[starts[s] + levels : ends[s]]]
            out[r] = np.add.accumulate(np.concatenate([out[r : r + 1], more]), axis=0)[-1]


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


def _walks_out_of_order(a: np.ndarray) -> bool:
    """_is_permuted for an array: whether its strides walk memory out of order."""
    strides = [abs(s) for n, s in zip(a.shape, a.strides) if n > 1 and s != 0]
    return strides != sorted(strides, reverse=True)


def _memory_order(value: np.ndarray, shape: tuple[int, ...]) -> tuple[int, ...] | bool:
    """The axes of a reduction prologue's value on NumPy alone, slowest first: an array
    allocated in that order has its layout; False where the value is not laid out as a
    fresh array is (NumPy reduces a value of another shape, broadcast, in C order)."""
    if value.shape != shape:
        return tuple(range(len(shape)))
    order = tuple(sorted(range(value.ndim), key=lambda d: -abs(value.strides[d])))
    like = np.empty([shape[d] for d in order], value.dtype).transpose(np.argsort(order))
    return order if all(n == 1 or a == b for n, a, b in zip(shape, like.strides, value.strides)) else False


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
        # float16 operands are read as float32 (not an assign's target region: written through)
        self.upcast = tuple(s.dtype.np == np.float16 and not (k.kind == "assign" and i == 0) for i, s in enumerate(k.srcs))
        permuted = {i for i, s in enumerate(k.srcs) if _is_permuted(s.view)}
        self.bcast = tuple(_repeated_dims(s.view) for s in k.srcs)
        shape = k.arg.shape if k.kind == "assign" else k.shape  # the region an assign computes
        self.main = _Program(k.program, k.exprs, len(shape), permuted, self.bcast)
        self.pre = _Program(k.pre_program, (k.pre,), len(k.pre_shape), permuted, self.bcast) if k.kind == "reduce" else None
        self.rows = RowsJit() if k.kind == "rows" else None  # a row kernel's compiled pass (numpy_jit_rows)

    def operands(self, srcs: tuple[Operand, ...], buffers: list) -> list[np.ndarray]:
        # (kernels sharing a plan have equal structural keys, so equal operand views)
        xs = [r.read(buffers[s.slot]) for s, r in zip(srcs, self.readers)]
        if any(self.upcast):
            xs = [_as_float32(x) if up else x for x, up in zip(xs, self.upcast)]
        return xs


def _as_float32(x: np.ndarray) -> np.ndarray:
    """x as float32; broadcast (stride-0) dims stay broadcast (matmul's fast path for a
    weight shared by every batch needs them)."""
    if x.size and 0 in x.strides:
        distinct = x[tuple(slice(0, 1) if s == 0 else slice(None) for s in x.strides)]
        return np.broadcast_to(distinct.astype(np.float32), x.shape)
    return x.astype(np.float32)


def _repeated_dims(view: View) -> tuple[int, ...]:
    """The dims along which the view repeats one value (stride 0, more than one index)."""
    return tuple(d for d, (n, stride) in enumerate(zip(view.shape, view.strides)) if stride == 0 and n > 1)


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray, empty=_empty) -> None:
    """out = a @ b, for operands of out's rank (batch dims already broadcast).

    NumPy's batched matmul is about twice as slow when b's matrices are stored column by
    column (a transposed view, as in q @ k.transpose(-2, -1)): such a b is copied to row
    order first. A b broadcast along every batch dim (a weight) makes one 2-d product.
    With THREADS > 1, a product of SPLIT_GEMM multiply-adds or more is cut into THREADS
    parts (see _gemm_parts) run by _each, each on one BLAS thread; otherwise products of
    fewer than SMALL_GEMM multiply-adds per matrix run on one BLAS thread (see
    blas_threads)."""
    if b.ndim > 2:
        if all(n == 1 or stride == 0 for n, stride in zip(b.shape[:-2], b.strides[:-2])):
            a, b, out = a.reshape(-1, a.shape[-1]), b[(0,) * (b.ndim - 2)], out.reshape(-1, out.shape[-1])
        elif b.strides[-1] != b.itemsize and b.shape[-1] > 1:
            flat = empty(b.size, b.dtype)  # (held until the product is done: see _Pool)
            np.copyto(flat.reshape(b.shape), b)
            b = flat.reshape(b.shape)
    parts = _gemm_parts(a, b, out)
    small = a.shape[-2] * a.shape[-1] * b.shape[-1] < SMALL_GEMM
    threads = blas_threads.one_thread() if parts or small else None
    try:
        if parts:
            _each(lambda part: np.matmul(*part[:2], out=part[2]), parts)
        else:
            np.matmul(a, b, out=out)
    finally:
        blas_threads.restore(threads)


def _gemm_parts(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> list[tuple] | None:
    """(a, b, out) parts of a product for THREADS threads: blocks of rows of a 2-d product,
    of matrices of a batched one; None for one thread or a small product.

    Splitting the product ourselves, rather than letting OpenBLAS use its threads, keeps
    a busy machine from stalling it: _each never waits for a part that no thread has
    started, while OpenBLAS waits (spinning) for all of its threads."""
    threads = numpy_threads.THREADS
    if threads <= 1 or out.size * a.shape[-1] < SPLIT_GEMM:
        return None
    if out.ndim == 2:
        rows = out.shape[0]
        step = -(-rows // (8 * threads)) * 8  # (whole blocks of 8 rows)
        if step >= rows:
            return None
        return [(a[i : i + step], b, out[i : i + step]) for i in range(0, rows, step)]
    n = out.shape[0]
    if n < threads:
        return None
    step = -(-n // threads)
    return [(a[i : i + step], b[i : i + step], out[i : i + step]) for i in range(0, n, step)]


@functools.lru_cache(maxsize=PLAN_CACHE_SIZE)
def _reduce_pieces(shape: tuple[int, ...], axes: tuple[int, ...], size: int):
    """_pieces of a reduction's input, cut along its leading axes that are all reduced or
    all kept; None for small windows (as in pooling), reduced fastest whole by folding."""
    if math.prod(shape[a] for a in axes) <= FOLD_MAX_EXTENT:
        return None
    lead = 0
    while lead < len(shape) and (lead in axes) == (0 in axes):
        lead += 1
    return _pieces(shape, lead, size)


def reduce_kernel(k: Kernel, pre: _Program, xs: list[np.ndarray]) -> np.ndarray:
    """A reduction kernel's core: its prologue reduced over k.arg, axes kept as size 1.

    A large prologue is evaluated piece by piece (see _reduce_pieces): pieces along kept
    axes give separate parts of the result, pieces along reduced axes partial results
    that are folded together."""
    axes = tuple(k.arg)
    pieces = _reduce_pieces(k.pre_shape, axes, PIECE) if pre.piecewise else None
    compiled = pre.ready(compute_np(k.pre.dtype), k.pre_shape)

    def part(at, shape, loads) -> np.ndarray:
        x = pre.compiled_value(xs, at, shape, loads) if compiled else None
        if x is None:
            x = pre.run(xs, None, at, None, loads)[pre.results[0][0]]
        if x.shape != shape:  # a prologue constant along some dims
            x = np.broadcast_to(x, shape)
            if pre.loads:  # (reduced as a C-order array, as when it was computed at full size)
                x = np.array(x)
        return reduce_array(k.op, x, axes)

    if pieces is None:
        return part(None, k.pre_shape, None)
    items = list(zip(pieces, pre.piece_loads(pieces)))
    if 0 in axes:  # partial results over some of the reduced elements, folded in order
        acc = None
        for (at, shape), loads in items:
            p = part(at, shape, loads)
            acc = p if acc is None else REDUCE_FNS[k.op](acc, p, out=acc)
        return acc
    # pieces along kept axes: separate parts of the result (the first settles its dtype)
    (at, shape), loads = items[0]
    first = part(at, shape, loads)
    acc = np.empty(tuple(1 if d in axes else n for d, n in enumerate(k.pre_shape)), first.dtype)
    acc[at] = first

    def piece(item) -> None:
        (at, shape), loads = item
        acc[at] = part(at, shape, loads)

    _each(piece, items[1:])
    return acc


def place(out: np.ndarray, xs: list[np.ndarray], pads: tuple, value) -> None:
    """A PAD kernel: each xs[i] copied into its region of `out` (before-padding pads[i][d][0]
    along dim d), `value` elsewhere. The regions do not overlap (see lazy._placed_sum)."""
    regions = [tuple(slice(lo, lo + n) for (lo, _), n in zip(p, x.shape)) for p, x in zip(pads, xs)]
    if len(xs) == 1:  # only the border is filled:
        region = regions[0]
        for d, ((lo, hi), n) in enumerate(zip(pads[0], xs[0].shape)):
            if lo:  # the slabs before and after the region along dim d, within it along the dims before
                out[(*region[:d], slice(0, lo))] = value
            if hi:
                out[(*region[:d], slice(lo + n, None))] = value
    elif sum(x.size for x in xs) < out.size:  # (disjoint regions covering it all leave nothing to fill)
        out.fill(value)
    copies = list(zip(regions, xs))
    if len(copies) > 1 and out.size >= PIECE:
        _each(lambda c: out.__setitem__(*c), copies)
    else:
        for region, x in copies:
            out[region] = x


def run_kernel(
    k: Kernel, buffers: list, plan: _Plan | None = None, empty=_empty, pairing: Pairing | None = None
) -> list[np.ndarray]:
    """The flat output buffers of one kernel; `empty(n, dtype)` makes new flat arrays;
    `pairing`: where an attention's backward part finds the result its sibling computed.
    NumPy warnings are the caller's to silence."""
    if k.kind == "rows":  # reductions along rows, then their elementwise consumer
        jit = plan.rows if plan is not None else None
        got = jit.run(k, plan.operands(k.srcs, buffers), empty) if jit is not None and jit.ready(k, compute_np) else None
        if got is None:  # (not compiled: its parts in turn)
            return run_rows(k, buffers, run_kernel, _Plan, empty)
        if jit.checked:
            return got
        want = run_rows(k, buffers, run_kernel, _Plan, empty)  # (the first compiled run is checked)
        return got if jit.check(got, want) else want
    if plan is None:
        plan = _Plan(k)
    xs = plan.operands(k.srcs, buffers)
    acc = None
    if k.kind == "assign":  # xs[0] is the region: a strided view into the buffer updated in place
        target = buffers[k.srcs[0].slot]
        if any(buffers[s.slot] is target for s in k.srcs[1:]):  # storage.write_in_place rules this out
            raise RuntimeError(f"internal: in-place write {k.name} reads the buffer it writes")
        if xs[0].size:
            np.copyto(xs[0], plan.main.run(xs, None)[plan.main.results[0][0]], casting="unsafe")
        return [target]
    if k.kind == "reduce":
        acc = reduce_kernel(k, plan.pre, xs)
    elif k.kind == "pad":
        pads, value = k.arg
        flat = empty(math.prod(k.shape), xs[0].dtype)  # (held until the kernel is done: see _Pool)
        acc = flat.reshape(k.shape)
        place(acc, xs, pads, value)
    elif k.op is Op.MATMUL:
        a, b = xs[0], xs[1]
        flat = empty(math.prod(k.shape), a.dtype if a.dtype == b.dtype else np.result_type(a, b))
        acc = flat.reshape(k.shape)
        matmul(a, b, acc, empty)
        if plan.main.bare and flat.dtype == k.out.dtype.np:
            return [flat]
    elif k.op is Op.GATHER:
        acc = gather(xs[0], xs[1], k.arg)
    elif k.op is Op.SCATTER_ADD:
        acc = scatter_add(xs[0], xs[1], k.arg, k.shape, k.out.dtype.np)
    elif k.op is Op.ATTENTION:
        if pairing is None or k.arg.part == "forward":
            acc = attention(k.arg, xs)
        else:
            acc = pairing.backward(k.arg, xs, tuple((buffers[s.slot], s.view) for s in k.srcs))
    elif k.kind != "elementwise":
        raise NotImplementedError(f"numpy backend: no kernel for {k.op.name}")
    if acc is not None:  # a reduction's epilogue may see its result reshaped (e.g. keepdim dropped)
        acc = acc.reshape(k.shape)
    return plan.main.outputs(xs, acc, k.outs, k.shape, empty)


class NumpyBackend(Backend):
    """Buffers are flat NumPy arrays."""

    name = "numpy"

    def __init__(self) -> None:
        super().__init__()
        self._plans: OrderedDict = OrderedDict()  # see _plan
        self._live: dict[int, tuple[weakref.ref, int]] = {}  # see _track
        self._pool = _Pool()

    def upload(self, flat: np.ndarray, dtype: DType) -> np.ndarray:
        return self._track(np.array(flat, dtype=dtype.np, copy=True).reshape(-1))

    def write(self, buf: np.ndarray, flat: np.ndarray, dtype: DType) -> None:
        np.copyto(buf, np.asarray(flat).reshape(-1), casting="unsafe")

    def download(self, buf: np.ndarray, dtype: DType, offset: int, count: int) -> np.ndarray:
        return buf[offset : offset + count].copy()

    def run(self, kernels: list[Kernel], buffers: list, release: dict[int, list[int]] | None = None) -> None:
        """`release`: kernel index -> slots whose last reader it is, dropped after it runs
        (so their arrays return to the pool while the rest of the list runs)."""
        profiling = profiler.is_active()
        timed = profiling or debug_level() >= 1
        pairing = Pairing()
        with np.errstate(all="ignore"):  # inf/nan follow IEEE like the GPU; no warnings
            for i, k in enumerate(kernels):
                start = time.perf_counter() if timed else 0.0
                if k.kind == "assign":  # (writes into a buffer that a kept result may have read)
                    pairing.clear()
                bufs = run_kernel(k, buffers, self._plan(k), self._pool.empty, pairing)
                for out, buf in zip(k.outs, bufs):
                    given = buffers[out.slot]
                    if k.kind == "assign" or given is None:
                        buffers[out.slot] = buf if k.kind == "assign" else self._track(buf)  # (an assign's is counted)
                    elif buf is not given:  # a planned buffer (step capture): the value goes into it
                        np.copyto(given, buf)
                self.stats["kernels"] += 1
                self.stats["dispatches"] += 1
                if release is not None:
                    for slot in release.get(i, ()):
                        buffers[slot] = None
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
                            start,
                        )
                        profiler.record(event)

    def run_program(self, kernels: list[Kernel], buffers: list, memo: dict) -> None:
        """A captured step: as `run`, over the kernels' plans looked up once (kept in
        `memo`), dropping each temporary after its last reader (memo["release"], worked
        out by the program). Under the profiler or SMOLGRAD_DEBUG it runs through `run`,
        which times each kernel."""
        if profiler.is_active() or debug_level() >= 1:
            return self.run(kernels, buffers, memo.get("release"))
        steps = memo.get("steps")
        if steps is None:  # (kernel, its plan, its output slots, the slots it reads last)
            release = memo.get("release") or {}
            steps = memo["steps"] = [
                (k, self._plan(k), tuple(o.slot for o in k.outs), tuple(release.get(i, ()))) for i, k in enumerate(kernels)
            ]
        pairing = Pairing()
        empty, track = self._pool.empty, self._track
        with np.errstate(all="ignore"):  # (as in run)
            for k, plan, outs, dropped in steps:
                if k.kind == "assign":  # (as in run)
                    pairing.clear()
                bufs = run_kernel(k, buffers, plan, empty, pairing)
                if k.kind == "assign":  # (its buffer is its target's, counted already)
                    buffers[outs[0]] = bufs[0]
                else:
                    for slot, buf in zip(outs, bufs):
                        buffers[slot] = track(buf)
                for slot in dropped:
                    buffers[slot] = None
        for name in ("kernels", "dispatches", "pipeline_cache_hits"):
            self.stats[name] += len(steps)

    def _plan(self, k: Kernel) -> _Plan:
        """The plan of kernel `k`, made once per distinct kernel (its structural key), so a
        training step compiles nothing after the first. The plan refers to expressions by
        position; an operand whose view is not the plan's is read without the plan's help."""
        key = k.code
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = _Plan(k)
            self.stats["kernels_compiled"] += 1
            if len(self._plans) > PLAN_CACHE_SIZE:
                self._plans.popitem(last=False)
        else:
            self._plans.move_to_end(key)
            self.stats["pipeline_cache_hits"] += 1
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

    def empty_cache(self) -> None:
        self._pool.clear()

    def synchronize(self) -> None:
        pass

    def info(self) -> dict:
        return {"name": "NumPy " + np.__version__, "backend": "numpy", "type": "CPU"}
