"""smolgrad.linalg: the norms of torch.linalg (vector_norm, matrix_norm, norm), written in
Tensor ops so they get gradients on both devices."""

from __future__ import annotations

import math

from .autocast_mode import autocast_op
from .shapes import _norm_dim, _norm_dims
from .tensor import Tensor, where


def _check_float(x: Tensor, op: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise RuntimeError(f"{op}: Expected a floating point tensor as input. Got {x.dtype.name}; call .float() first")


def _safe_root(s: Tensor, p: float) -> Tensor:
    """s ** (1/p) with a zero gradient (not nan) where s == 0, as torch gives for a zero norm."""
    zero = s == 0
    root = where(zero, 1.0, s)
    root = root.sqrt() if p == 2 else root ** (1.0 / p)
    return where(zero, 0.0, root)


@autocast_op("float32")
def vector_norm(x: Tensor, ord: float = 2, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """(sum |x|^ord)^(1/ord) over `dim` (all elements by default); ord may be inf, -inf or 0."""
    _check_float(x, "linalg.vector_norm")
    if dtype is not None:
        x = x.type(dtype)
    if isinstance(ord, str):
        raise RuntimeError(f"linalg.vector_norm: ord must be a number, got {ord!r} (use linalg.matrix_norm for 'fro'/'nuc')")
    axes = _norm_dims(dim, x.ndim, "linalg.vector_norm")
    a = x.abs()
    if ord == math.inf or ord == -math.inf:
        if any(x.shape[d] == 0 for d in axes) or (dim is None and x.numel() == 0):
            raise RuntimeError(f"linalg.vector_norm: cannot compute the {ord} norm of an empty tensor (shape {x.shape})")
        return a.amax(axes, keepdim) if ord > 0 else a.amin(axes, keepdim)
    if ord == 0:
        return (x != 0).sum(axes, keepdim=keepdim).type(x.dtype)
    if ord == 1:
        return a.sum(axes, keepdim=keepdim)
    if ord == 2:
        return _safe_root((x * x).sum(axes, keepdim=keepdim), 2)
    if ord < 0:
        return a.pow(ord).sum(axes, keepdim=keepdim) ** (1.0 / ord)
    return _safe_root(a.pow(ord).sum(axes, keepdim=keepdim), ord)


def matrix_norm(A: Tensor, ord="fro", dim=(-2, -1), keepdim: bool = False, *, dtype=None) -> Tensor:
    """The matrix norm over the two dims `dim`: 'fro', or 1, -1, inf, -inf (max/min absolute
    column/row sum). 'nuc', 2 and -2 need singular values and are not supported."""
    _check_float(A, "linalg.matrix_norm")
    if dtype is not None:
        A = A.type(dtype)
    if A.ndim < 2:
        raise RuntimeError(f"linalg.matrix_norm: The input tensor A must have at least 2 dimensions, got shape {A.shape}")
    if isinstance(dim, int) or len(dim) != 2:
        raise RuntimeError(f"linalg.matrix_norm: dim must be a 2-tuple of ints, got {dim!r}")
    d0, d1 = (_norm_dim(d, A.ndim, "linalg.matrix_norm") for d in dim)
    if d0 == d1:
        raise RuntimeError(f"linalg.matrix_norm: dims must be different, got {dim!r}")
    if ord == "fro":
        return vector_norm(A, 2, (d0, d1), keepdim)
    if ord in ("nuc", 2, -2):
        raise NotImplementedError(
            f"linalg.matrix_norm: ord={ord!r} needs singular values (an SVD), which smolgrad does not have; "
            "use ord='fro', 1, -1, inf or -inf"
        )
    if ord not in (1, -1, math.inf, -math.inf):
        raise RuntimeError(f"linalg.matrix_norm: Order {ord!r} not supported (use 'fro', 1, -1, inf or -inf)")
    summed, pick = (d0, d1) if abs(ord) == 1 else (d1, d0)  # 1: max column sum; inf: max row sum
    sums = A.abs().sum(summed, keepdim=True)
    out = sums.amax(pick, keepdim=True) if ord > 0 else sums.amin(pick, keepdim=True)
    return out if keepdim else out.squeeze((d0, d1))


@autocast_op("float32")
def norm(A: Tensor, ord=None, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """torch.linalg.norm: a vector norm for one dim (or a flattened tensor without ord),
    a matrix norm for two dims (or a 2-D tensor with ord)."""
    _check_float(A, "linalg.norm")
    if isinstance(dim, int):
        dim = (dim,)
    if dim is None:
        if ord is None:
            return vector_norm(A, 2, None, keepdim, dtype=dtype)
        if A.ndim not in (1, 2):
            raise RuntimeError(f"linalg.norm: with ord={ord!r} and dim=None the input must be 1-D or 2-D, got shape {A.shape}")
        dim = tuple(range(A.ndim))
    if len(dim) == 1:
        return vector_norm(A, 2 if ord is None else ord, dim, keepdim, dtype=dtype)
    if len(dim) == 2:
        return matrix_norm(A, "fro" if ord is None else ord, dim, keepdim, dtype=dtype)
    raise RuntimeError(f"linalg.norm: dim must be one or two dims, got {dim!r}")


__all__ = ["vector_norm", "matrix_norm", "norm"]
