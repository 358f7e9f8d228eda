"""The NumPy backend: runs kernel lists on the CPU. It is the reference the WebGPU
backend is tested against, and it supports float64 for gradient checks."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..dtypes import DType
from .base import Backend
from ..ops import Op
from ..scheduler import Kernel, Operand


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
    if x.is_const:
        return np.broadcast_to(np.array(x.const, dtype=x.dtype.np), v.shape)
    buf: np.ndarray = x.node.realized
    if v.is_contiguous:
        return buf[v.offset : v.offset + v.numel].reshape(v.shape)
    item = buf.itemsize
    return as_strided(buf[v.offset :], v.shape, tuple(s * item for s in v.strides), writeable=False)


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


def run_kernel(k: Kernel) -> np.ndarray:
    op, out = k.op, k.out
    xs = [read_operand(s) for s in k.srcs]
    with np.errstate(all="ignore"):  # inf/nan follow IEEE like the GPU; no warnings
        if op is Op.CONST:
            res = np.full(out.shape, k.arg, dtype=out.dtype.np)
        elif op is Op.CAST:
            res = xs[0].astype(out.dtype.np)
        elif op in UNARY_FNS:
            res = UNARY_FNS[op](xs[0])
        elif op in BINARY_FNS:
            res = BINARY_FNS[op](xs[0], xs[1])
        elif op is Op.WHERE:
            res = np.where(xs[0], xs[1], xs[2])
        elif op in REDUCE_FNS:
            res = REDUCE_FNS[op](xs[0], axis=k.arg, keepdims=True)
        elif op is Op.MATMUL:
            res = np.matmul(xs[0], xs[1])
        elif op is Op.GATHER:
            res = gather(xs[0], xs[1], k.arg)
        elif op is Op.SCATTER_ADD:
            res = scatter_add(xs[0], xs[1], k.arg, out.shape, out.dtype.np)
        elif op is Op.PAD:
            pads, value = k.arg
            res = np.pad(xs[0], pads, constant_values=value)
        else:
            raise NotImplementedError(f"numpy backend: no kernel for {op.name}")
    return np.ascontiguousarray(res, dtype=out.dtype.np).reshape(-1)


class NumpyBackend(Backend):
    """Buffers are flat NumPy arrays."""

    name = "numpy"

    def upload(self, flat: np.ndarray, dtype: DType) -> np.ndarray:
        return np.array(flat, dtype=dtype.np, copy=True).reshape(-1)

    def download(self, buf: np.ndarray, dtype: DType, offset: int, count: int) -> np.ndarray:
        return buf[offset : offset + count].copy()

    def run(self, kernels: list[Kernel]) -> None:
        for k in kernels:
            k.out.realized = run_kernel(k)

    def synchronize(self) -> None:
        pass

    def info(self) -> dict:
        return {"name": "NumPy " + np.__version__, "backend": "numpy", "type": "CPU"}
