"""Strided views: how a kernel reads a contiguous buffer as a tensor of some shape.

A View is (shape, strides, offset) in elements. Strides may be 0 (broadcast) or
negative (flip). Every movement op is a function View -> View, so movement ops never
copy; only a reshape that no strides can express needs a copy (see `View.reshape`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass


def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, acc = [], 1
    for n in reversed(shape):
        strides.append(acc)
        acc *= n
    return tuple(reversed(strides))


@dataclass(frozen=True)
class View:
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    offset: int = 0

    @staticmethod
    @functools.lru_cache(maxsize=4096)
    def contiguous(shape: tuple[int, ...], offset: int = 0) -> View:
        return View(tuple(shape), contiguous_strides(tuple(shape)), offset)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @functools.cached_property
    def is_contiguous(self) -> bool:
        """True when the view reads numel consecutive elements starting at offset."""
        expected = 1
        for n, s in zip(reversed(self.shape), reversed(self.strides)):
            if n != 1 and s != expected:
                return False
            expected *= n
        return True

    def permute(self, order: tuple[int, ...]) -> View:
        return View(tuple(self.shape[i] for i in order), tuple(self.strides[i] for i in order), self.offset)

    def expand(self, shape: tuple[int, ...]) -> View:
        """Broadcast size-1 dims to `shape` (same rank) with stride 0."""
        if len(shape) != len(self.shape):
            raise ValueError(f"internal: View.expand from {self.shape} to {shape} of another rank (reshape first)")
        strides = tuple(0 if old != new else s for old, new, s in zip(self.shape, shape, self.strides))
        return View(tuple(shape), strides, self.offset)

    def slice(self, bounds: tuple[tuple[int, int, int], ...]) -> View:
        """Per dim (start, stop, step) with 0 <= start <= stop <= size and step > 0."""
        shape, strides, offset = [], [], self.offset
        for (start, stop, step), s in zip(bounds, self.strides):
            shape.append(max(0, -(-(stop - start) // step)))
            strides.append(s * step)
            offset += start * s
        return View(tuple(shape), tuple(strides), offset)

    def flip(self, axes: tuple[int, ...]) -> View:
        strides, offset = list(self.strides), self.offset
        for a in axes:
            if self.shape[a] > 0:
                offset += (self.shape[a] - 1) * strides[a]
            strides[a] = -strides[a]
        return View(self.shape, tuple(strides), offset)

    def windows(self, dims, kernel, stride, dilation) -> View:
        """Sliding windows over `dims` (see function.Windows): each window dim becomes the
        number of windows, and one trailing dim per window dim holds the window's taps."""
        shape, strides = list(self.shape), list(self.strides)
        for d, k, s, dl in zip(dims, kernel, stride, dilation):
            shape[d] = (self.shape[d] - dl * (k - 1) - 1) // s + 1
            strides[d] = self.strides[d] * s
        shape += list(kernel)
        strides += [self.strides[d] * dl for d, dl in zip(dims, dilation)]
        return View(tuple(shape), tuple(strides), self.offset)

    def reshape(self, shape: tuple[int, ...]) -> View | None:
        """The same elements seen with a new shape, or None when that needs a copy.

        Follows PyTorch's rule for `view`: dims can be split or merged only where the
        old strides are compatible with a contiguous layout of that chunk."""
        shape = tuple(shape)
        if self.is_contiguous:
            return View.contiguous(shape, self.offset)
        if self.numel == 0:
            return View.contiguous(shape, self.offset)
        old_shape = [n for n in self.shape]
        old_strides = [s for s in self.strides]
        new_strides = [0] * len(shape)
        view_d = len(shape) - 1
        chunk_base_stride = old_strides[-1]
        tensor_numel = 1
        view_numel = 1
        for tensor_d in range(len(old_shape) - 1, -1, -1):
            tensor_numel *= old_shape[tensor_d]
            chunk_ends = tensor_d == 0 or (
                old_shape[tensor_d - 1] != 1 and old_strides[tensor_d - 1] != tensor_numel * chunk_base_stride
            )
            if chunk_ends:
                while view_d >= 0 and (view_numel < tensor_numel or shape[view_d] == 1):
                    new_strides[view_d] = view_numel * chunk_base_stride
                    view_numel *= shape[view_d]
                    view_d -= 1
                if view_numel != tensor_numel:
                    return None
                if tensor_d > 0:
                    chunk_base_stride = old_strides[tensor_d - 1]
                    tensor_numel = 1
                    view_numel = 1
        if view_d != -1:
            return None
        return View(shape, tuple(new_strides), self.offset)

    @property
    def is_identity(self) -> bool:
        """True when the view reads the whole contiguous buffer of its shape in order."""
        return self.offset == 0 and self.is_contiguous


def _merged_dims(view: View) -> tuple[list[int], list[int]]:
    """`view`'s shape and strides with size-1 dims dropped and adjacent dims merged where
    the strides allow; the row-major linear index of each element is unchanged."""
    shape: list[int] = []
    strides: list[int] = []
    for n, s in zip(view.shape, view.strides):
        if n == 1:
            continue
        if shape and strides[-1] == s * n:
            shape[-1] *= n
            strides[-1] = s
        else:
            shape.append(n)
            strides.append(s)
    return shape, strides


@functools.lru_cache(maxsize=16384)
def compose(inner: View, outer: View) -> View | None:
    """One view equal to reading through `outer`, then `inner`, or None if no strides can.

    `outer` indexes the contiguous layout of `inner.shape` (it is how a consumer reads a
    value that `inner` maps onto a buffer). This is what lets a fused kernel compute a
    value at the positions its consumer reads, without storing it first.

    Each dim of `outer` must step along one (merged) dim of `inner` without carrying into
    the next: we check that every coordinate stays in range over the whole view."""
    if outer.numel == 0:
        return View(outer.shape, (0,) * len(outer.shape), inner.offset)
    if inner.is_contiguous:  # the common cases first: reading a plain buffer...
        return View(outer.shape, outer.strides, outer.offset + inner.offset)
    if outer.is_identity and outer.shape == inner.shape:  # ...or reading every element in order
        return inner
    shape, strides = _merged_dims(inner)
    dense = contiguous_strides(tuple(shape))
    coords, rest = [], outer.offset
    for d in dense:
        coords.append(rest // d)
        rest %= d
    if rest:
        return None
    lo, hi = list(coords), list(coords)
    new_strides = []
    for n, s in zip(outer.shape, outer.strides):
        if n == 1 or s == 0:
            new_strides.append(0)
            continue
        # the outermost dim whose step divides s is the only one it can move along
        for k, d in enumerate(dense):
            if s % d == 0:
                break
        else:
            return None
        m = s // d
        if m > 0:
            hi[k] += m * (n - 1)
        else:
            lo[k] += m * (n - 1)
        new_strides.append(m * strides[k])
    if any(lo[k] < 0 or hi[k] >= shape[k] for k in range(len(shape))):
        return None
    offset = inner.offset + sum(c * s for c, s in zip(coords, strides))
    return View(outer.shape, tuple(new_strides), offset)
