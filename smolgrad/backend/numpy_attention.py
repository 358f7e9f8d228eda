"""The ATTENTION kernel kind on the NumPy device: the unfused math (the scores are
materialised; NumPy has no workgroup memory to keep them in). See ops.AttentionArg."""

from __future__ import annotations

import numpy as np

from ..ops import AttentionArg


def _mm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b with both in row order first (NumPy's batched matmul is several times slower on
    transposed or strided matrices, such as the heads of a qkv projection)."""
    return np.matmul(np.ascontiguousarray(a), np.ascontiguousarray(b))


def _scores(arg: AttentionArg, q: np.ndarray, k: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """q k^T * scale (+ bias), -inf above the diagonal when causal."""
    s = _mm(q * q.dtype.type(arg.scale), np.swapaxes(k, -1, -2))
    if bias is not None:
        s = s + bias
    if arg.causal:
        L, S = s.shape[-2:]
        s = np.where(np.tri(L, S, dtype=bool), s, s.dtype.type(-np.inf))
    return s


def attention(arg: AttentionArg, xs: list[np.ndarray]) -> np.ndarray:
    """The value of an ATTENTION node from its operands' arrays."""
    q, k, v = xs[:3]
    bias = xs[-1] if arg.bias else None
    s = _scores(arg, q, k, bias)
    if arg.part == "forward":
        m = s.max(axis=-1, keepdims=True)
        p = np.exp(s - m)
        total = p.sum(axis=-1, keepdims=True)
        out = _mm(p, v) / total
        return np.concatenate([out, m + np.log(total)], axis=-1)
    lse, delta, dout = xs[3:6]
    p = np.exp(s - lse)
    ds = p * (_mm(dout, np.swapaxes(v, -1, -2)) - delta)
    scale = q.dtype.type(arg.scale)
    if arg.part == "backward_q":
        return _mm(ds, k) * scale
    dk = _mm(np.swapaxes(ds, -1, -2), q) * scale
    dv = _mm(np.swapaxes(p, -1, -2), dout)
    return np.concatenate([dk, dv], axis=-1)
