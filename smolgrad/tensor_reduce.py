"""Reductions and scans of Tensor beyond sum/mean/max in tensor.py: prod, all, any,
cumsum, cumprod, norm, dist, nansum, nanmean and diff (a mixin of Tensor), and the
functions var_mean and std_mean.

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

    # ----- nan-ignoring reductions and differences -----
    def nansum(self, dim=None, keepdim: bool = False, *, dtype=None):
        """The sum (over `dim`, all elements by default), treating nan as zero."""
        from .tensor import where

        x = where(self.isnan(), 0, self) if self.dtype.is_floating_point else self
        return x.sum(dim, keepdim=keepdim, dtype=dtype)

    def nanmean(self, dim=None, keepdim: bool = False, *, dtype=None):
        """The mean of the non-nan elements (over `dim`, all by default); nan where all are nan."""
        x = self if dtype is None else self.type(dtype)
        if not x.dtype.is_floating_point:
            raise RuntimeError(
                f"nanmean(): expected input to have floating point dtype but got {x.dtype.name}; "
                "call .float() first or pass dtype=smolgrad.float32"
            )
        count = (~x.isnan()).sum(dim, keepdim=keepdim)
        return x.nansum(dim, keepdim=keepdim) / count

    def diff(self, n: int = 1, dim: int = -1, prepend=None, append=None):
        """The n-th forward difference along `dim` (out[i] = x[i + 1] - x[i], applied n times),
        after joining `prepend` and `append` along dim; bool tensors give x[i + 1] != x[i]."""
        from .creation import cat
        from .tensor import Tensor

        if self.ndim == 0:
            raise RuntimeError("diff expects input to be at least one-dimensional")
        if not isinstance(n, int) or n < 0:
            raise RuntimeError(f"diff expects n to be a non-negative int, but got n={n!r}")
        dim = _norm_dim(dim, self.ndim, "diff")
        parts = []
        for name, extra in (("prepend", prepend), (None, self), ("append", append)):
            if extra is None:
                continue
            if not isinstance(extra, Tensor):
                raise TypeError(f"diff(): argument '{name}' must be Tensor, not {type(extra).__name__}")
            if extra.ndim != self.ndim:
                raise RuntimeError(
                    f"diff expects prepend or append to be the same dimension as input, "
                    f"but got {name} of shape {extra.shape} for input of shape {self.shape}"
                )
            parts.append(extra)
        x = cat(parts, dim) if len(parts) > 1 else self
        for _ in range(n):
            m = x.shape[dim]
            if m == 0:
                break
            hi, lo = x.narrow(dim, 1, m - 1), x.narrow(dim, 0, m - 1)
            x = hi != lo if x.dtype.is_bool else hi - lo
        return x


def _moments_args(dim, unbiased, correction, op: str):
    """torch's overloads: (dim, unbiased) positionally, unbiased in dim's place, or correction=."""
    if isinstance(dim, bool):  # var_mean(x, True): the unbiased overload
        dim, unbiased = None, dim
    if unbiased is not None and correction is not None:
        raise RuntimeError(f"{op}: pass either unbiased or correction, not both")
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    return dim, correction


def var_mean(input, dim=None, unbiased: bool | None = None, keepdim: bool = False, *, correction=None):
    """(var, mean) over `dim` (all elements by default), var with `correction` (default 1)."""
    dim, correction = _moments_args(dim, unbiased, correction, "var_mean")
    return input.var(dim, keepdim=keepdim, correction=correction), input.mean(dim, keepdim=keepdim)


def std_mean(input, dim=None, unbiased: bool | None = None, keepdim: bool = False, *, correction=None):
    """(std, mean) over `dim` (all elements by default), std with `correction` (default 1)."""
    dim, correction = _moments_args(dim, unbiased, correction, "std_mean")
    return input.std(dim, keepdim=keepdim, correction=correction), input.mean(dim, keepdim=keepdim)
