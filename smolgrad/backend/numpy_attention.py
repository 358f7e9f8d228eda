"""The ATTENTION kernel kind on the NumPy device: the unfused math (the scores are
materialised; NumPy has no workgroup memory to keep them in). See ops.AttentionArg."""

from __future__ import annotations

import numpy as np

from ..ops import AttentionArg


def _scores(arg: AttentionArg, q: np.ndarray, k: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """q k^T * scale (+ bias), -inf above the diagonal when causal."""
    s = np.matmul(q, np.swapaxes(k, -1, -2)) * q.dtype.type(arg.scale)
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
        out = np.matmul(p, v) / total
        return np.concatenate([out, m + np.log(total)], axis=-1)
    lse, delta, dout = xs[3:6]
    p = np.exp(s - lse)
    ds = p * (np.matmul(dout, np.swapaxes(v, -1, -2)) - delta)
    scale = q.dtype.type(arg.scale)
    if arg.part == "backward_q":
        return np.matmul(ds, k) * scale
    dk = np.matmul(np.swapaxes(ds, -1, -2), q) * scale
    dv = np.matmul(np.swapaxes(p, -1, -2), dout)
    return np.concatenate([dk, dv], axis=-1)
