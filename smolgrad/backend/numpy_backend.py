"""The NumPy backend: runs kernel lists on the CPU. It is the reference the WebGPU
backend is tested against, and it supports float64 for gradient checks."""

from __future__ import annotations

import math
import time
import weakref

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import profiler
from ..dtypes import DType
from ..graph import postorder
from ..ops import Op
from ..scheduler import Acc, Const, Kernel, Load, Operand, expr_children
from .base import Backend, debug_level


def _sigmoid(x):
    # split by sign so exp never overflows
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
    Op.COPY: np.copy,
}
BINARY_FNS = {
    Op.ADD: np.add,
    Op.SUB: np.subtract,
    Op.MUL: np.multiply,
    Op.DIV: np.divide,
    Op.POW: np.power,
    Op.MAX: np.maximum,
    Op.MIN: np.minimum,
    Op.LT: np.less,
    Op.LE: np.less_equal,
    Op.GT: np.greater,
    Op.GE: np.greater_equal,
    Op.EQ: np.equal,
    Op.NE: np.not_equal,
}
REDUCE_FNS = {Op.SUM: np.sum, Op.RMAX: np.max, Op.RMIN: np.min}


def read_operand(x: Operand) -> np.ndarray:
    """The operand as a (possibly strided, read-only) NumPy array of x.view.shape."""
    v = x.view
    buf: np.ndarray = x.node.realized
    if v.is_contiguous:
        return buf[v.offset : v.offset + v.numel].reshape(v.shape)
    item = buf.itemsize
    return as_strided(buf[v.offset :], v.shape, tuple(s * item for s in v.strides), writeable=False)


def apply_op(op: Op, xs: list[np.ndarray], arg, dtype: DType) -> np.ndarray:
    """One elementwise op on NumPy arrays (or 0-d constants)."""
    if op is Op.CAST:
        return np.asarray(xs[0]).astype(dtype.np)
    if op in UNARY_FNS:
        res = UNARY_FNS[op](np.asarray(xs[0]))
    elif op in BINARY_FNS:
        res = BINARY_FNS[op](xs[0], xs[1])
    elif op is Op.WHERE:
        res = np.where(xs[0], xs[1], xs[2])
    else:
        raise NotImplementedError(f"numpy backend: no elementwise op {op.name}")
    return np.asarray(res).astype(dtype.np, copy=False)


def evaluate(exprs, srcs: tuple[Operand, ...], acc: np.ndarray | None = None, program=None) -> list[np.ndarray]:
    """The values of a fused kernel's expressions, each op applied to whole arrays.
    `program` is the expressions' nodes in evaluation order, when already known."""
    values: dict[int, np.ndarray] = {}
    for e in program if program is not None else postorder(exprs, expr_children):
        if isinstance(e, Load):
            values[id(e)] = read_operand(srcs[e.src])
        elif isinstance(e, Const):
            values[id(e)] = np.array(e.value, dtype=e.dtype.np)
        elif isinstance(e, Acc):
            values[id(e)] = acc
        else:
            values[id(e)] = apply_op(e.op, [values[id(a)] for a in e.srcs], e.arg, e.dtype)
    return [values[id(e)] for e in exprs]


def check_index(index: np.ndarray, size: int, op: str, dim: int) -> None:
    if index.size and (index.min() < 0 or index.max() >= size):
        bad = index.min() if index.min() < 0 else index.max()
        raise IndexError(f"{op}: index {bad} is out of bounds for dimension {dim} with size {size}")


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


FOLD_FNS = {Op.SUM: np.add, Op.RMAX: np.maximum, Op.RMIN: np.minimum}
FOLD_MAX_EXTENT = 16


def reduce_array(op: Op, x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Reduce over `axes`, keeping them as size 1.

    NumPy reduces a few strided elements per output slowly (max-pooling windows: 40x
    slower than it could be), so small extents are folded slice by slice instead."""
    extent = math.prod(x.shape[a] for a in axes)
    if 1 < extent <= FOLD_MAX_EXTENT and x.size >= 4096 * extent:
        fold = FOLD_FNS[op]
        acc = None
        for index in np.ndindex(*(x.shape[a] for a in axes)):
            where = [slice(None)] * x.ndim
            for a, i in zip(axes, index):
                where[a] = slice(i, i + 1)
            part = x[tuple(where)]
            acc = np.array(part) if acc is None else fold(acc, part)
        return acc
    return REDUCE_FNS[op](x, axis=axes, keepdims=True)


def core_value(k: Kernel) -> np.ndarray | None:
    """The result of a kernel's core op (reduction, matmul, gather, ...), if it has one."""
    if k.kind == "elementwise":
        return None
    if k.kind == "reduce":
        (x,) = evaluate([k.pre], k.srcs, program=k.pre_program)
        return reduce_array(k.op, np.broadcast_to(x, k.pre_shape), tuple(k.arg))
    a, b = read_operand(k.srcs[0]), read_operand(k.srcs[1])
    if k.op is Op.MATMUL:
        return np.matmul(a, b)
    if k.op is Op.GATHER:
        return gather(a, b, k.arg)
    if k.op is Op.SCATTER_ADD:
        return scatter_add(a, b, k.arg, k.shape, k.out.dtype.np)
    raise NotImplementedError(f"numpy backend: no kernel for {k.op.name}")


def run_kernel(k: Kernel) -> list[np.ndarray]:
    """The flat output buffers of one kernel."""
    with np.errstate(all="ignore"):  # inf/nan follow IEEE like the GPU; no warnings
        if k.kind == "pad":
            pads, value = k.arg
            acc = np.pad(read_operand(k.srcs[0]), pads, constant_values=value)
        else:
            acc = core_value(k)
        if acc is not None:  # a reduction's epilogue may see its result reshaped (e.g. keepdim dropped)
            acc = acc.reshape(k.shape)
        values = evaluate(k.exprs, k.srcs, acc, k.program)
    return [
        np.ascontiguousarray(np.broadcast_to(v, out.shape), dtype=out.dtype.np).reshape(-1)
        for v, out in zip(values, k.outs)
    ]


class NumpyBackend(Backend):
    """Buffers are flat NumPy arrays."""

    name = "numpy"

    def upload(self, flat: np.ndarray, dtype: DType) -> np.ndarray:
        return self._track(np.array(flat, dtype=dtype.np, copy=True).reshape(-1))

    def download(self, buf: np.ndarray, dtype: DType, offset: int, count: int) -> np.ndarray:
        return buf[offset : offset + count].copy()

    def run(self, kernels: list[Kernel]) -> None:
        profiling = profiler.is_active()
        timed = profiling or debug_level() >= 1
        for k in kernels:
            start = time.perf_counter() if timed else 0.0
            for out, buf in zip(k.outs, run_kernel(k)):
                out.realized = self._track(buf)
            self.stats["kernels"] += 1
            self.stats["dispatches"] += 1
            if timed:
                seconds = time.perf_counter() - start
                self.log_kernel(k, math.prod(k.shape), seconds)
                if profiling:
                    event = profiler.KernelEvent(
                        "numpy", k.name, tuple(k.fused_ops), seconds, profiler.bytes_moved(k), 1, profiler.WALL_CLOCK_NUMPY
                    )
                    profiler.record(event)

    def _track(self, buf: np.ndarray) -> np.ndarray:
        """Count the buffer in stats until it is garbage-collected."""
        self._allocated(buf.nbytes)
        weakref.finalize(buf, self._freed, buf.nbytes)
        return buf

    def _freed(self, nbytes: int) -> None:
        self.stats["bytes_allocated"] -= nbytes

    def synchronize(self) -> None:
        pass

    def info(self) -> dict:
        return {"name": "NumPy " + np.__version__, "backend": "numpy", "type": "CPU"}
