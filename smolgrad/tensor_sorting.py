"""Sorting and sampling methods of Tensor: sort, argsort, topk, multinomial. A mixin of Tensor.

The sort order is computed on the host: the values are read back, NumPy's stable argsort
orders them, and the indices go back to the tensor's device. The sorted values are then
gathered on the device, so they are differentiable (the gradient goes to the elements the
values came from)."""

from __future__ import annotations

from collections import namedtuple

import numpy as np
from .shapes import _norm_dim

SortResult = namedtuple("sort", ["values", "indices"])
TopKResult = namedtuple("topk", ["values", "indices"])


def _order(x, dim: int, descending: bool) -> np.ndarray:
    """The stable sort order of x along `dim` (reads x back): nan sorts as the largest value."""
    a = np.moveaxis(x.detach().numpy(), dim, -1)
    if descending:  # reverse, sort stably, reverse back: ties keep their original order
        n = a.shape[-1]
        idx = n - 1 - np.argsort(a[..., ::-1], axis=-1, kind="stable")[..., ::-1]
    else:
        idx = np.argsort(a, axis=-1, kind="stable")
    return np.ascontiguousarray(np.moveaxis(idx, -1, dim))


def _check_probabilities(p, op: str) -> None:
    """Refuse negative, inf or nan probabilities and rows that sum to 0 (reads back one row of stats)."""
    from .lazy import realize

    bad = ((p < 0) | ~p.isfinite()).any()
    empty = (p.sum(-1) <= 0).any()
    realize(bad.lazydata, empty.lazydata)  # one run for both
    if bad.item():
        raise RuntimeError(f"{op}: probability tensor contains either `inf`, `nan` or element < 0")
    if empty.item():
        raise RuntimeError(f"{op}: invalid multinomial distribution (sum of probabilities <= 0)")


class SortingOps:
    """Sorting and sampling methods of Tensor."""

    __slots__ = ()

    def sort(self, dim: int = -1, descending: bool = False, stable: bool = False):
        """(values, indices) sorted along `dim`; ties keep their order (always stable);
        nan counts as the largest value. Reads the tensor back to the host to order it."""
        from .tensor import Tensor

        if self.ndim == 0:
            return SortResult(self.clone(), Tensor(np.zeros((), np.int64), device=self.device))
        dim = _norm_dim(dim, self.ndim, "sort")
        indices = Tensor(_order(self, dim, descending), device=self.device)
        return SortResult(self.gather(dim, indices), indices)

    def argsort(self, dim: int = -1, descending: bool = False, stable: bool = False):
        """The indices that sort the tensor along `dim` (stable). Reads the tensor back."""
        return self.sort(dim, descending, stable).indices

    def msort(self):
        """The tensor sorted along its first dim."""
        return self.sort(0).values

    def topk(self, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):
        """(values, indices) of the k largest (or smallest) elements along `dim`, in sorted
        order; among equal values the first comes first. Reads the tensor back to order it."""
        from .tensor import Tensor

        dim = _norm_dim(dim, self.ndim, "topk")
        n = self.shape[dim] if self.ndim else 1
        if not isinstance(k, int) or not 0 <= k <= n:
            raise RuntimeError(f"topk: k ({k}) is out of range for dimension {dim} of size {n} (shape {self.shape})")
        if self.ndim == 0:
            return TopKResult(self.clone(), Tensor(np.zeros((), np.int64), device=self.device))
        order = _order(self, dim, descending=largest)
        indices = Tensor(np.ascontiguousarray(np.take(order, np.arange(k), axis=dim)), device=self.device)
        return TopKResult(self.gather(dim, indices), indices)

    def multinomial(self, num_samples: int, replacement: bool = False, *, generator=None):
        """Category indices drawn from the (unnormalised) probabilities along the last dim
        of a 1-D or 2-D tensor (torch.multinomial). With replacement: inverse-CDF sampling
        on the device (cumsum of the probabilities against uniform draws); without: the
        num_samples largest of p / Exp(1) draws (exponential race). The uniforms come from
        `generator` (default: the global one seeded by smolgrad.manual_seed). Reads back a
        validity check of the probabilities (negative, inf or nan values are refused)."""
        from . import random
        from .tensor import Tensor

        if self.ndim not in (1, 2):
            raise RuntimeError(f"multinomial: prob_dist must be 1 or 2 dim, got shape {self.shape}")
        if not self.dtype.is_floating_point:
            raise RuntimeError(f"multinomial: expected a floating point probability tensor, got {self.dtype.name}")
        if not isinstance(num_samples, int) or num_samples <= 0:
            raise RuntimeError(f"multinomial: cannot sample num_samples={num_samples} samples (must be a positive int)")
        n = self.shape[-1]
        if n == 0:
            raise RuntimeError("multinomial: the probability tensor has no categories (last dim is 0)")
        if not replacement and num_samples > n:
            raise RuntimeError(
                f"multinomial: cannot sample n_sample ({num_samples}) > prob_dist.size(-1) ({n}) samples without replacement"
            )
        rng = random.resolve(generator)
        p = self.detach()
        rows = p.reshape(-1, n)
        _check_probabilities(rows, "multinomial")
        if not replacement and num_samples > 1:
            if ((rows > 0).sum(-1) < num_samples).any().item():
                raise RuntimeError(
                    f"multinomial: invalid multinomial distribution (with replacement=False, not enough "
                    f"categories with nonzero probability to draw {num_samples} samples)"
                )
            q = Tensor(rng.exponential(size=rows.shape), dtype=p.dtype, device=p.device)
            out = (rows / q).topk(num_samples, dim=-1).indices
        else:
            out = _inverse_cdf(rows, num_samples, rng)
        return out.reshape(*self.shape[:-1], num_samples)


def _inverse_cdf(rows, num_samples: int, rng: np.random.Generator):
    """For each row of probabilities (R, n), num_samples category indices: the number of
    cumulative sums below u * total for uniform u in (0, 1] (zero-probability categories
    are never picked: their cumulative sum equals the previous one)."""
    from .tensor import Tensor

    r, n = rows.shape
    cdf = rows.cumsum(-1)
    u = Tensor((1.0 - rng.random((r, num_samples))).astype(rows.dtype.np), dtype=rows.dtype, device=rows.device)
    threshold = (u * cdf[:, n - 1 :]).reshape(r, num_samples, 1)
    return (cdf.reshape(r, 1, n) < threshold).sum(-1)


__all__ = ["SortingOps", "SortResult", "TopKResult"]
