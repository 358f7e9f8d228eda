"""In-place ops and the scatter / index_add families: Tensor methods (a mixin), with
PyTorch's storage semantics (smolgrad/storage.py: an in-place op rebinds the storage's
value and refreshes its views) and indexing kernels (smolgrad/indexing.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import storage
from .lazy import LazyBuffer
from .shapes import _broadcasts_to

if TYPE_CHECKING:
    from .tensor import Tensor


def _indexing():
    """smolgrad.indexing (it builds on Tensor, which this mixin is part of)."""
    from . import indexing

    return indexing


class InPlaceOps:
    __slots__ = ()

    def _inplace(self, op: str, compute) -> Tensor:
        """Set this tensor's value (and its views') to compute(current value), in place.

        compute gets a snapshot of the current value and builds the new one with ordinary
        (differentiable) ops; in grad mode this tensor becomes that op's output."""
        storage.check_inplace(self, op)
        value, root = storage.current(self)
        return storage.write(self, compute(value), op, root)

    def _assign(self, value: Tensor, op: str) -> Tensor:
        """Make this tensor share `value`'s storage, of any dtype and device (torch's
        `self.data = value`; nn.Module.to uses it)."""
        storage.alias(self, value)
        return self

    def add_(self, other, alpha=None) -> Tensor:
        """self += alpha * other, in place."""
        return self._inplace("add_", lambda s: s.add(other, alpha=alpha))

    def sub_(self, other, alpha=None) -> Tensor:
        """self -= alpha * other, in place."""
        return self._inplace("sub_", lambda s: s.sub(other, alpha=alpha))

    def mul_(self, other) -> Tensor:
        """self *= other, in place."""
        return self._inplace("mul_", lambda s: s.mul(other))

    def div_(self, other) -> Tensor:
        """self /= other, in place (an integer tensor cannot hold the result)."""
        return self._inplace("div_", lambda s: s.div(other))

    def pow_(self, exponent) -> Tensor:
        """self **= exponent, in place."""
        return self._inplace("pow_", lambda s: s.pow(exponent))

    def neg_(self) -> Tensor:
        return self._inplace("neg_", lambda s: -s)

    def exp_(self) -> Tensor:
        return self._inplace("exp_", lambda s: s.exp())

    def sqrt_(self) -> Tensor:
        return self._inplace("sqrt_", lambda s: s.sqrt())

    def log_(self) -> Tensor:
        return self._inplace("log_", lambda s: s.log())

    def relu_(self) -> Tensor:
        return self._inplace("relu_", lambda s: s.relu())

    def sigmoid_(self) -> Tensor:
        return self._inplace("sigmoid_", lambda s: s.sigmoid())

    def tanh_(self) -> Tensor:
        return self._inplace("tanh_", lambda s: s.tanh())

    def abs_(self) -> Tensor:
        return self._inplace("abs_", lambda s: s.abs())

    def clamp_(self, min=None, max=None) -> Tensor:
        """Clamp into [min, max], in place."""
        return self._inplace("clamp_", lambda s: s.clamp(min, max))

    clip_ = clamp_

    def addcmul_(self, tensor1, tensor2, *, value=1) -> Tensor:
        """self += value * tensor1 * tensor2, in place."""
        return self._inplace("addcmul_", lambda s: s.addcmul(tensor1, tensor2, value=value))

    def addcdiv_(self, tensor1, tensor2, *, value=1) -> Tensor:
        """self += value * tensor1 / tensor2, in place."""
        return self._inplace("addcdiv_", lambda s: s.addcdiv(tensor1, tensor2, value=value))

    def __iadd__(self, other) -> Tensor:
        return self.add_(other)

    def __isub__(self, other) -> Tensor:
        return self.sub_(other)

    def __imul__(self, other) -> Tensor:
        return self.mul_(other)

    def __itruediv__(self, other) -> Tensor:
        return self.div_(other)

    def masked_fill_(self, mask: Tensor, value) -> Tensor:
        """Set the elements where the bool `mask` is True to `value`, in place."""
        return self._inplace("masked_fill_", lambda s: s.masked_fill(mask, value))

    def copy_(self, src) -> Tensor:
        """Set this tensor's value to `src`, broadcast to its shape and converted to its dtype
        and device (differentiable with respect to src)."""
        if not isinstance(src, InPlaceOps):  # not a Tensor: data in this tensor's dtype and device
            src = self.new_tensor(src)
        if not _broadcasts_to(src.shape, self.shape):
            raise RuntimeError(f"copy_: source of shape {src.shape} does not broadcast to the tensor's shape {self.shape}")
        value = src.to(self.device).type(self.dtype)._broadcast_to(self.shape)
        storage.check_inplace(self, "copy_")
        return storage.write(self, value, "copy_")

    def fill_(self, value) -> Tensor:
        """Set every element to `value` (a Python number or a 0-d tensor)."""
        if isinstance(value, InPlaceOps):  # a Tensor
            if value.ndim != 0:
                raise RuntimeError(f"fill_ only supports a 0-dimensional value tensor, but got one with {value.ndim} dims")
            return self.copy_(value)
        storage.check_inplace(self, "fill_")
        return storage.write(self, self._from_lazy(LazyBuffer.const(value, self.shape, self.dtype, self.device)), "fill_")

    def zero_(self) -> Tensor:
        """Set every element to 0."""
        return self.fill_(0)

    def uniform_(self, a: float = 0.0, b: float = 1.0, *, generator=None) -> Tensor:
        """Fill with samples from U(a, b), drawn on the device from `generator` (None:
        smolgrad's global one, seeded by manual_seed)."""
        from .creation import rand

        self._check_floating("uniform_")
        storage.check_inplace(self, "uniform_")
        u = rand(self.shape, generator=generator, dtype=self.dtype, device=self.device)
        return storage.write(self, u * (b - a) + a, "uniform_")

    def normal_(self, mean: float = 0.0, std: float = 1.0, *, generator=None) -> Tensor:
        """Fill with samples from N(mean, std^2), drawn on the device from `generator` (None:
        smolgrad's global one, seeded by manual_seed)."""
        from .creation import randn

        if std < 0:
            raise RuntimeError(f"normal_ expects std >= 0.0, but found std {std}")
        self._check_floating("normal_")
        storage.check_inplace(self, "normal_")
        z = randn(self.shape, generator=generator, dtype=self.dtype, device=self.device)
        return storage.write(self, z * std + mean, "normal_")

    def _check_floating(self, op: str) -> None:
        if not self.dtype.is_floating_point:
            raise RuntimeError(f"{op}: expected a floating point tensor, got {self.dtype.name}")

    # ----- scatter and index_add families (smolgrad/_indexing().py) -----
    def scatter(self, dim: int, index: Tensor, src=None, value=None, reduce: str | None = None) -> Tensor:
        """A copy with src[i][j] (or value) written at [index[i][j]][j] for dim 0, and so on."""
        return _indexing().scatter(self, dim, index, src, value=value, reduce=reduce)

    def scatter_(self, dim: int, index: Tensor, src=None, value=None, reduce: str | None = None) -> Tensor:
        return self._inplace("scatter_", lambda s: _indexing().scatter(s, dim, index, src, value=value, reduce=reduce))

    def scatter_add(self, dim: int, index: Tensor, src: Tensor) -> Tensor:
        """A copy with src[i][j] added at [index[i][j]][j] for dim 0, and so on."""
        return _indexing().scatter_add(self, dim, index, src)

    def scatter_add_(self, dim: int, index: Tensor, src: Tensor) -> Tensor:
        return self._inplace("scatter_add_", lambda s: _indexing().scatter_add(s, dim, index, src))

    def scatter_reduce(self, dim: int, index: Tensor, src: Tensor, reduce: str, *, include_self: bool = True) -> Tensor:
        """A copy with src's values reduced ("sum", "mean", "amax", "amin") into the positions
        index sends them to along dim. Reads the indices on the host."""
        return _indexing().scatter_reduce(self, dim, index, src, reduce, include_self)

    def scatter_reduce_(self, dim: int, index: Tensor, src: Tensor, reduce: str, *, include_self: bool = True) -> Tensor:
        return self._inplace(
            "scatter_reduce_", lambda s: _indexing().scatter_reduce(s, dim, index, src, reduce, include_self)
        )

    def index_add(self, dim: int, index: Tensor, source: Tensor, alpha=1) -> Tensor:
        """A copy with alpha * source[i] added at row index[i] along dim."""
        return _indexing().index_add(self, dim, index, source, alpha=alpha)

    def index_add_(self, dim: int, index: Tensor, source: Tensor, alpha=1) -> Tensor:
        return self._inplace("index_add_", lambda s: _indexing().index_add(s, dim, index, source, alpha=alpha))

    def index_copy(self, dim: int, index: Tensor, source: Tensor) -> Tensor:
        """A copy with row index[i] along dim set to source[i]."""
        return _indexing().index_copy(self, dim, index, source)

    def index_copy_(self, dim: int, index: Tensor, source: Tensor) -> Tensor:
        return self._inplace("index_copy_", lambda s: _indexing().index_copy(s, dim, index, source))

    def index_fill(self, dim: int, index: Tensor, value) -> Tensor:
        """A copy with the rows index along dim set to value."""
        return _indexing().index_fill(self, dim, index, value)

    def index_fill_(self, dim: int, index: Tensor, value) -> Tensor:
        return self._inplace("index_fill_", lambda s: _indexing().index_fill(s, dim, index, value))
