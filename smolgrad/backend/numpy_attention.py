"""The ATTENTION kernel kind on the NumPy device (see ops.AttentionArg).

NumPy has no workgroup memory to keep the scores in, so they are materialised, but a few
heads at a time (CHUNK score elements): the scores, probabilities and their gradient
are worked on in place in two arrays that stay in the CPU's cache, instead of a fresh
(B, H, L, S) array per op streaming through memory. The chunks are shared out to the
device's threads (numpy_threads).

The scores are held transposed, keys by queries (S, L): the softmax's reductions then
run down the columns, which NumPy vectorises (a max along short rows is 4x slower), the
row sums are a matrix-vector product, and only the small (L, D) and (S, D) operands and
results are ever transposed."""

from __future__ import annotations

import threading

import numpy as np

from ..ops import AttentionArg
from .numpy_threads import each

CHUNK = 64 * 1024  # score elements worked on at a time (256 KiB in float32)


def _t(x: np.ndarray) -> np.ndarray:
    return np.swapaxes(x, -1, -2)


def _mm(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """a @ b with both in row order first (NumPy's batched matmul is several times slower on
    transposed or strided matrices, such as the heads of a qkv projection)."""
    return np.matmul(np.ascontiguousarray(a), np.ascontiguousarray(b), out=out)


class _Chunks:
    """The batch cut into chunks of a few whole matrices, and two (S, L) scratch arrays per
    thread that works on them."""

    def __init__(self, batch: tuple[int, ...], L: int, S: int, dtype: np.dtype):
        self.batch, self.dtype = batch, dtype
        self.step = max(1, CHUNK // (L * S)) if batch else 1
        self.shape = (min(self.step, batch[-1]), S, L) if batch else (S, L)
        self.buffers: dict[int, list[np.ndarray]] = {}  # thread -> its scratch arrays

    def __iter__(self):
        """Basic indexes over the batch dims, each covering a few whole matrices."""
        if not self.batch:
            yield ()
            return
        for lead in np.ndindex(*self.batch[:-1]):
            for i in range(0, self.batch[-1], self.step):
                yield (*lead, slice(i, i + self.step))

    def scratch(self, c: tuple) -> list[np.ndarray]:
        """This thread's two scratch arrays, for chunk c."""
        buffers = self.buffers.get(threading.get_ident())
        if buffers is None:
            buffers = self.buffers[threading.get_ident()] = [np.empty(self.shape, self.dtype) for _ in range(2)]
        if not self.batch:
            return buffers
        n = len(range(*c[-1].indices(self.batch[-1])))
        return [b[:n] for b in buffers]


def _scores_t(arg: AttentionArg, q, k, bias, above, c: tuple, out: np.ndarray) -> np.ndarray:
    """s^T (S, L) for chunk c: k q^T * scale (+ bias^T), -inf where key j > query i when causal."""
    s = _mm(k[c], _t(q[c] * q.dtype.type(arg.scale)), out=out)
    if bias is not None:
        np.add(s, _t(bias[c]), out=s)
    if above is not None:
        np.copyto(s, s.dtype.type(-np.inf), where=above)
    return s


def attention(arg: AttentionArg, xs: list[np.ndarray]) -> np.ndarray:
    """The value of an ATTENTION node from its operands' arrays."""
    if arg.part == "forward":
        return _forward(arg, xs)
    return _backward(arg, xs)[arg.part]


def _forward(arg: AttentionArg, xs: list[np.ndarray]) -> np.ndarray:
    q, k, v = xs[:3]
    bias = xs[-1] if arg.bias else None
    batch, L, S = q.shape[:-2], q.shape[-2], k.shape[-2]
    chunks = _Chunks(batch, L, S, q.dtype)
    above = np.tri(S, L, -1, dtype=bool) if arg.causal else None  # (key j, query i) with j > i
    ones = np.ones(S, q.dtype)
    out = np.empty((*batch, L, v.shape[-1] + 1), q.dtype)

    def forward(c: tuple) -> None:
        p = _scores_t(arg, q, k, bias, above, c, chunks.scratch(c)[0])
        m = p.max(axis=-2, keepdims=True)  # (.., 1, L)
        np.subtract(p, m, out=p)
        np.exp(p, out=p)
        total = np.matmul(ones, p)[..., None]  # (.., L, 1)
        o = out[c]
        np.divide(_t(_mm(_t(v[c]), p)), total, out=o[..., :-1])
        np.add(_t(m), np.log(total), out=o[..., -1:])

    each(forward, list(chunks))
    return out


def _backward(arg: AttentionArg, xs: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Both backward parts ("backward_q": dq; "backward_kv": dk then dv), which share the
    probabilities and their gradient."""
    q, k, v, lse, delta, dout = xs[:6]
    bias = xs[-1] if arg.bias else None
    batch, L, S, d = q.shape[:-2], q.shape[-2], k.shape[-2], q.shape[-1]
    chunks = _Chunks(batch, L, S, q.dtype)
    above = np.tri(S, L, -1, dtype=bool) if arg.causal else None
    scale = q.dtype.type(arg.scale)
    dq = np.empty((*batch, L, d), q.dtype)
    dkv = np.empty((*batch, S, d + v.shape[-1]), q.dtype)

    def backward(c: tuple) -> None:
        scores, grads = chunks.scratch(c)
        p = _scores_t(arg, q, k, bias, above, c, scores)
        np.subtract(p, _t(lse[c]), out=p)
        np.exp(p, out=p)
        ds = _mm(v[c], _t(dout[c]), out=grads)  # dp^T
        np.subtract(ds, _t(delta[c]), out=ds)
        np.multiply(ds, p, out=ds)  # ds^T = p^T * (dp^T - delta^T)
        np.multiply(_t(_mm(_t(k[c]), ds)), scale, out=dq[c])  # dq = ds k = (k^T ds^T)^T
        o = dkv[c]
        np.multiply(_mm(ds, q[c]), scale, out=o[..., :d])  # dk = ds^T q
        np.copyto(o[..., d:], _mm(p, dout[c]))  # dv = p^T dout

    each(backward, list(chunks))
    return {"backward_q": dq, "backward_kv": dkv}


class Pairing:
    """An attention's two backward parts, which read the same operands, computed together
    by whichever runs first; the other's result is kept for it. Valid within one backend
    run while no kernel writes into an existing buffer (the caller clears it then)."""

    def __init__(self) -> None:
        self.kept: tuple | None = None  # (arg, sources, result) of the part not yet asked for

    def clear(self) -> None:
        self.kept = None

    def backward(self, arg: AttentionArg, xs: list[np.ndarray], sources: tuple) -> np.ndarray:
        """The result of backward part `arg.part`; `sources`: (buffer, view) per operand."""
        if self.kept is not None:
            kept_arg, kept_sources, result = self.kept
            if kept_arg == arg and len(kept_sources) == len(sources) and all(
                a[0] is b[0] and a[1] == b[1] for a, b in zip(kept_sources, sources)
            ):
                self.kept = None
                return result
        results = _backward(arg, xs)
        other = "backward_kv" if arg.part == "backward_q" else "backward_q"
        self.kept = (arg._replace(part=other), sources, results[other])
        return results[arg.part]
