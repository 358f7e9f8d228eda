"""Ops whose output shape depends on the values: nonzero, argwhere, masked_select, unique,
bincount and histc. A mixin of Tensor. Each reads values back to the host to learn the
shape (a device sync), then does the rest on the device where it can (masked_select
gathers there, so it stays differentiable; bincount and histc scatter-add there)."""

from __future__ import annotations

import numpy as np
from .shapes import _norm_dim, broadcast_shapes


class SelectOps:
    """Data-dependent selection and counting methods of Tensor."""

    __slots__ = ()

    def nonzero(self, *, as_tuple: bool = False):
        """Indices of the nonzero elements: an (n, ndim) int64 tensor in row-major order, or a
        tuple of ndim 1-D tensors with as_tuple=True. Reads the tensor back to the host."""
        from .tensor import Tensor

        a = self.detach().numpy()
        if as_tuple:
            if a.ndim == 0:
                return (Tensor(np.nonzero(a.reshape(1))[0], dtype="int64", device=self.device),)
            return tuple(Tensor(i, dtype="int64", device=self.device) for i in np.nonzero(a))
        return Tensor(np.argwhere(a).astype(np.int64), dtype="int64", device=self.device)

    def argwhere(self):
        """nonzero(): an (n, ndim) int64 tensor of the nonzero elements' indices. Reads back."""
        return self.nonzero()

    def masked_select(self, mask):
        """The elements where the bool `mask` (broadcast with self) is True, as a 1-D tensor.
        Reads the mask back to the host; the values are gathered on the device (differentiable)."""
        from .tensor import Tensor

        if not isinstance(mask, Tensor) or not mask.dtype.is_bool:
            got = mask.dtype.name if isinstance(mask, Tensor) else type(mask).__name__
            raise RuntimeError(f"masked_select: expected a bool tensor as mask, got {got}")
        if mask.device != self.device:
            raise RuntimeError(f"masked_select: mask is on {mask.device} but the tensor is on {self.device}")
        shape = broadcast_shapes(self.shape, mask.shape, op="masked_select")
        flat_mask = np.broadcast_to(mask.numpy(), shape).reshape(-1)
        index = Tensor(np.flatnonzero(flat_mask), dtype="int64", device=self.device)
        return self._broadcast_to(shape).reshape(-1).gather(0, index)

    def unique(self, sorted: bool = True, return_inverse: bool = False, return_counts: bool = False, dim=None):
        """The distinct values (always sorted), and optionally the inverse indices (where each
        element's value is in the result) and the counts. With `dim`, the distinct slices
        along it. Reads the tensor back to the host."""
        from .tensor import Tensor

        a = self.detach().numpy()
        axis = None if dim is None else _norm_dim(dim, self.ndim, "unique")
        values, inverse, counts = np.unique(a, return_inverse=True, return_counts=True, axis=axis)
        out = [Tensor(values, dtype=self.dtype, device=self.device)]
        if return_inverse:
            inverse = inverse.reshape(a.shape if axis is None else a.shape[axis])
            out.append(Tensor(inverse.astype(np.int64), dtype="int64", device=self.device))
        if return_counts:
            out.append(Tensor(counts.astype(np.int64), dtype="int64", device=self.device))
        return out[0] if len(out) == 1 else tuple(out)

    def bincount(self, weights=None, minlength: int = 0):
        """How often each value 0..max occurs in a 1-D non-negative integer tensor (summing
        `weights` instead of ones when given). Reads the maximum back to size the result."""
        from . import function as F
        from .creation import ones

        if self.ndim != 1 or self.dtype.is_floating_point or self.dtype.is_bool:
            raise RuntimeError(
                f"bincount: only 1-d non-negative integral inputs are supported, got {self.dtype.name} of shape {self.shape}"
            )
        if minlength < 0:
            raise RuntimeError(f"bincount: minlength should be >= 0, got {minlength}")
        if weights is not None and weights.shape != self.shape:
            raise RuntimeError(
                f"bincount: weights should be 1-d and have the same length as input, got {weights.shape} and {self.shape}"
            )
        values = self.detach().numpy()
        if values.size and values.min() < 0:
            raise RuntimeError(f"bincount: input must be non-negative, got {values.min()}")
        length = max(int(values.max()) + 1 if values.size else 0, minlength)
        if weights is None:
            src = ones(self.shape, dtype="int64", device=self.device)
        else:
            src = weights if weights.dtype.is_floating_point else weights.float()
        if length == 0 or self.shape[0] == 0:
            return src.new_zeros(length)
        return F.ScatterAdd.apply(src, self.detach(), dim=0, shape=(length,))

    def histc(self, bins: int = 100, min: float = 0, max: float = 0):
        """A histogram of the elements in `bins` equal-width bins over [min, max] (the data's
        range when min == max); elements outside are ignored. Reads the range back when min == max."""
        from . import function as F
        from .tensor import where

        if not self.dtype.is_floating_point:
            raise RuntimeError(f"histc: expected a floating point tensor, got {self.dtype.name}")
        if bins <= 0:
            raise RuntimeError(f"histc: bins must be > 0, got {bins}")
        lo, hi = float(min), float(max)
        if lo == hi and self.numel():
            a = self.detach().numpy()
            lo, hi = float(a.min()), float(a.max())
        if lo == hi:
            lo, hi = lo - 1, hi + 1
        if lo > hi:
            raise RuntimeError(f"histc: max must be larger than min, got min={min} and max={max}")
        x = self.detach().reshape(-1)
        if x.shape[0] == 0:
            return x.new_zeros(bins)
        inside = (x >= lo) & (x <= hi)
        index = ((x - lo) * (bins / (hi - lo))).floor().clamp(0, bins - 1)  # max goes in the last bin
        index = where(inside, index, 0).long()
        return F.ScatterAdd.apply(inside.type(x.dtype), index, dim=0, shape=(bins,))
