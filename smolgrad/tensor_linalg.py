"""Matrix methods of Tensor: mm, bmm, addmm, baddbmm, outer, diagonal, diag, trace.
A mixin of Tensor, composed of matmul, reshapes and slices."""

from __future__ import annotations

from .autocast_mode import autocast_op

from .shapes import _broadcasts_to, _norm_dim


def _require_ndim(x, ndim: int, op: str, name: str) -> None:
    if x.ndim != ndim:
        raise RuntimeError(f"{op}: {name} must be a {ndim}D tensor, got shape {x.shape}")


class LinalgOps:
    """Matrix methods of Tensor."""

    __slots__ = ()

    def mm(self, mat2):
        """The matrix product of two 2-D tensors."""
        _require_ndim(self, 2, "mm", "self")
        _require_ndim(mat2, 2, "mm", "mat2")
        return self.matmul(mat2)

    def bmm(self, mat2):
        """Batched matrix product of (b, n, m) and (b, m, p) tensors (no broadcasting)."""
        _require_ndim(self, 3, "bmm", "batch1")
        _require_ndim(mat2, 3, "bmm", "batch2")
        if self.shape[0] != mat2.shape[0]:
            raise RuntimeError(f"bmm: batch1 and batch2 must have the same number of batches, got {self.shape} and {mat2.shape}")
        return self.matmul(mat2)

    @autocast_op("lower")
    def addmm(self, mat1, mat2, *, beta=1, alpha=1):
        """beta * self + alpha * (mat1 @ mat2); self broadcasts to the product's shape."""
        return _scaled_sum(self, mat1.mm(mat2), beta, alpha, "addmm")

    @autocast_op("lower")
    def baddbmm(self, batch1, batch2, *, beta=1, alpha=1):
        """beta * self + alpha * (batch1 @ batch2), batched; self broadcasts to the product's shape."""
        return _scaled_sum(self, batch1.bmm(batch2), beta, alpha, "baddbmm")

    def outer(self, vec2):
        """The outer product of two 1-D tensors: out[i, j] = self[i] * vec2[j]."""
        _require_ndim(self, 1, "outer", "self")
        _require_ndim(vec2, 1, "outer", "vec2")
        return self.reshape(-1, 1) * vec2.reshape(1, -1)

    ger = outer

    def diagonal(self, offset: int = 0, dim1: int = 0, dim2: int = 1):
        """The diagonal of the (dim1, dim2) planes, as the last dim (a strided slice).
        offset > 0 is above the main diagonal, < 0 below."""

        if self.ndim < 2:
            raise RuntimeError(f"diagonal: expected a tensor with at least 2 dims, got shape {self.shape}")
        d1, d2 = _norm_dim(dim1, self.ndim, "diagonal"), _norm_dim(dim2, self.ndim, "diagonal")
        if d1 == d2:
            raise RuntimeError(f"diagonal: diagonal dimensions cannot be identical {dim1}, {dim2}")
        x = self.movedim((d1, d2), (-2, -1))
        n, m = x.shape[-2:]
        length = max(0, min(n, m - offset) if offset >= 0 else min(n + offset, m))
        batch = x.shape[:-2]
        if length == 0:
            return x.reshape(*batch, n * m)._slice([(0, n, 1) for n in batch] + [(0, 0, 1)])
        start = offset if offset >= 0 else -offset * m
        flat = x.reshape(*batch, n * m)  # element (i, i + offset) sits at start + i * (m + 1)
        bounds = [(0, s, 1) for s in batch] + [(start, start + (length - 1) * (m + 1) + 1, m + 1)]
        return flat._slice(bounds)

    def diag(self, diagonal: int = 0):
        """A 1-D tensor -> the square matrix with it on the `diagonal`-th diagonal;
        a 2-D tensor -> its `diagonal`-th diagonal."""
        if self.ndim == 2:
            return self.diagonal(diagonal)
        if self.ndim != 1:
            raise RuntimeError(f"diag: matrix or a vector expected, got shape {self.shape}")
        n, k = self.shape[0], abs(diagonal)
        # each value followed by n zeros, read as (n, n) rows: the values land on the diagonal
        square = self.reshape(n, 1).pad([(0, 0), (0, n)]).reshape(n * (n + 1))[: n * n].reshape(n, n)
        if k == 0:
            return square
        return square.pad([(0, k), (k, 0)] if diagonal > 0 else [(k, 0), (0, k)])

    def trace(self):
        """The sum of the main diagonal of a 2-D tensor."""
        _require_ndim(self, 2, "trace", "self")
        return self.diagonal().sum()


def _scaled_sum(input, product, beta, alpha, op: str):

    if not _broadcasts_to(input.shape, product.shape):
        raise RuntimeError(f"{op}: input of shape {input.shape} does not broadcast to the product's shape {product.shape}")
    scaled = product if alpha == 1 else product * alpha
    if beta == 0:  # input is ignored, nan and inf included (as in torch)
        return scaled
    return scaled + (input if beta == 1 else input * beta)
