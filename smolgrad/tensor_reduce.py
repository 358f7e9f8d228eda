"""Reductions and scans of Tensor beyond sum/mean/max in tensor.py: prod, all, any,
cumsum, cumprod, norm and dist. A mixin of Tensor.

Scans and products are composed from slices, pads and elementwise ops (log2(n) steps
each), so they run on either device, stay exact for integers, and get gradients,
double gradients and JVPs from the ops they are made of."""

from __future__ import annotations

from . import dtypes
from .autocast_mode import autocast_op
from .shapes import _norm_dim


def _accumulating(x, dtype, op: str):
    """x cast for a sum-like op: `dtype` if given, else int64 for bool and integer inputs."""
    if dtype is not None:
        return x.type(dtype)
    if not x.dtype.is_floating_point and x.dtype != dtypes.int64:
        return x.long()
    return x


def _scan(x, dim: int, combine, identity):
    """Inclusive scan along `dim` (Hillis-Steele): after the step with shift s, each element
    combines the 2s elements ending at it."""
    n, shift = x.shape[dim], 1
    while shift < n:
        pads = [(0, 0)] * x.ndim
        pads[dim] = (shift, 0)
        x = combine(x, x.narrow(dim, 0, n - shift).pad(pads, value=identity))
        shift *= 2
    return x


class ReduceOps:
    """Reduction and scan methods of Tensor."""

    __slots__ = ()

    @autocast_op("float32")
    def cumsum(self, dim: int, dtype=None):
        """Running sums along `dim` (integers and bools sum into int64)."""

        dim = _norm_dim(dim, self.ndim, "cumsum")
        x = _accumulating(self, dtype, "cumsum")
        return _scan(x, dim, lambda a, b: a + b, 0) if x.ndim else x

    def cumprod(self, dim: int, dtype=None):
        """Running products along `dim` (integers and bools multiply into int64)."""

        dim = _norm_dim(dim, self.ndim, "cumprod")
        x = _accumulating(self, dtype, "cumprod")
        return _scan(x, dim, lambda a, b: a * b, 1) if x.ndim else x

    @autocast_op("float32")
    def prod(self, dim: int | None = None, keepdim: bool = False, dtype=None):
        """The product of all elements, or along one dim (integers and bools into int64)."""
        from .creation import ones

        x = _accumulating(self, dtype, "prod")
        if dim is None:
            return x.reshape(-1).prod(0) if x.ndim else x
        if not isinstance(dim, int):
            raise TypeError(f"prod: dim must be an int (one dimension), got {dim!r}")
        dim = _norm_dim(dim, x.ndim, "prod")
        if x.ndim == 0:
            return x
        if x.shape[dim] == 0:
            shape = tuple(1 if i == dim else n for i, n in enumerate(x.shape))
            out = ones(shape, dtype=x.dtype, device=x.device)
        else:
            out = x
            while out.shape[dim] > 1:  # multiply the two halves: log2(n) steps
                n = out.shape[dim]
                if n % 2:
                    pads = [(0, 0)] * out.ndim
                    pads[dim] = (0, 1)
                    out, n = out.pad(pads, value=1), n + 1
                out = out.narrow(dim, 0, n // 2) * out.narrow(dim, n // 2, n // 2)
        return out if keepdim else out.squeeze(dim)

    def any(self, dim=None, keepdim: bool = False):
        """Whether any element (along `dim`) is nonzero; a bool tensor."""
        return (self != 0).sum(dim, keepdim=keepdim) > 0

    def all(self, dim=None, keepdim: bool = False):
        """Whether every element (along `dim`) is nonzero; a bool tensor."""
        return (self == 0).sum(dim, keepdim=keepdim) == 0

    def count_nonzero(self, dim=None):
        """How many elements (along `dim`) are nonzero, as int64."""
        return (self != 0).sum(dim)

    @autocast_op("float32")
    def norm(self, p="fro", dim=None, keepdim: bool = False, dtype=None):
        """The p-norm over `dim` (all elements by default) as in torch.norm: 'fro' is the
        2-norm of the elements; 'nuc' is refused (it needs an SVD)."""
        from . import linalg

        if p == "fro":
            if dim is not None and not isinstance(dim, int) and len(dim) > 2:
                raise RuntimeError(f"norm: 'fro' norm expects at most 2 dims, got dim={dim}")
            p = 2
        elif p == "nuc":
            return linalg.matrix_norm(self, "nuc", dim=(-2, -1) if dim is None else dim, keepdim=keepdim)
        return linalg.vector_norm(self, p, dim, keepdim, dtype=dtype)

    def dist(self, other, p: float = 2):
        """The p-norm of self - other (broadcast)."""
        from . import linalg

        return linalg.vector_norm(self - other, p)
