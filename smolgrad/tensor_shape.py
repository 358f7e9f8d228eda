"""Shape and indexing methods of Tensor beyond tensor.py's movement ops: repeat, tile,
repeat_interleave, roll, index_select, take_along_dim, movedim, swapaxes, unflatten,
view_as, reshape_as and the new_* creators. A mixin of Tensor; all are views, copies or
gathers composed of existing ops, so they are differentiable on both devices."""

from __future__ import annotations

import math

import numpy as np
from .shapes import _norm_dim, broadcast_shapes, shape_arg


def _dims_arg(dims) -> tuple[int, ...]:
    """Accept f(2, 3), f((2, 3)) and f([2, 3])."""
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = dims[0]
    return tuple(int(d) for d in dims)


def _check_int_index(index, op: str) -> None:
    from .tensor import Tensor

    if not isinstance(index, Tensor) or index.dtype.is_floating_point or index.dtype.is_bool:
        got = index.dtype.name if isinstance(index, Tensor) else type(index).__name__
        raise RuntimeError(f"{op}: Expected an integer (int64 or int32) index tensor, got {got}")


class ShapeOps:
    """Shape and indexing methods of Tensor."""

    __slots__ = ()

    # ----- repeating -----
    def repeat(self, *sizes):
        """The tensor tiled `sizes[i]` times along each dim (torch.Tensor.repeat); extra
        leading sizes add new dims."""
        sizes = _dims_arg(sizes)
        if len(sizes) < self.ndim:
            raise RuntimeError(
                f"repeat: Number of dimensions of repeat dims ({len(sizes)}) can not be smaller than number of "
                f"dimensions of tensor ({self.ndim})"
            )
        if any(r < 0 for r in sizes):
            raise RuntimeError(f"repeat: repeats must be non-negative, got {sizes}")
        shape = (1,) * (len(sizes) - self.ndim) + self.shape
        x = self.reshape(tuple(d for n in shape for d in (1, n)))  # (1, s0, 1, s1, ...)
        x = x.expand(tuple(d for r, n in zip(sizes, shape) for d in (r, n)))
        return x.reshape(tuple(r * n for r, n in zip(sizes, shape)))

    def tile(self, *dims):
        """The tensor repeated `dims[i]` times along each dim; missing leading dims count as 1."""
        dims = _dims_arg(dims)
        return self.repeat((1,) * (self.ndim - len(dims)) + dims)

    def repeat_interleave(self, repeats, dim: int | None = None, *, output_size: int | None = None):
        """Each element repeated `repeats` times in place along `dim` (flattened when None).
        A tensor of per-element repeats gives a data-dependent shape: it is read back to the host."""
        from .tensor import Tensor

        x = self.reshape(-1) if dim is None else self
        dim = 0 if dim is None else _norm_dim(dim, x.ndim, "repeat_interleave")
        if x.ndim == 0:
            x = x.reshape(1)
        n = x.shape[dim]
        if isinstance(repeats, Tensor):
            if repeats.dtype.is_floating_point or repeats.ndim > 1:
                raise RuntimeError(
                    "repeat_interleave: repeats must be an int or a 0-d/1-d integer tensor, "
                    f"got {repeats.dtype.name} of shape {repeats.shape}"
                )
            counts = repeats.detach().numpy().reshape(-1)
            if counts.size == 1:
                repeats = int(counts[0])
            else:
                if counts.size != n:
                    raise RuntimeError(
                        f"repeat_interleave: repeats must have the same size as input along dim ({n}), "
                        f"but got repeats of size {counts.size}"
                    )
                if (counts < 0).any():
                    raise RuntimeError("repeat_interleave: repeats can not be negative")
                index = Tensor(np.repeat(np.arange(n), counts), device=x.device)
                return x.index_select(dim, index)
        if not isinstance(repeats, int) or repeats < 0:
            raise RuntimeError(f"repeat_interleave: repeats must be a non-negative int, got {repeats!r}")
        shape = x.shape[: dim + 1] + (repeats,) + x.shape[dim + 1 :]
        return x.unsqueeze(dim + 1).expand(shape).reshape(x.shape[:dim] + (n * repeats,) + x.shape[dim + 1 :])

    def roll(self, shifts, dims=None):
        """Elements shifted by `shifts` along `dims`, wrapping around (flattened when dims is None)."""
        from .creation import cat

        if dims is None:
            if not isinstance(shifts, int):
                if len(shifts) != 1:
                    raise RuntimeError(f"roll: with dims=None, shifts must be one int, got {shifts}")
                shifts = shifts[0]
            return self.reshape(-1).roll(shifts, 0).reshape(self.shape)
        shifts = (shifts,) if isinstance(shifts, int) else tuple(shifts)
        dims = (dims,) if isinstance(dims, int) else tuple(dims)
        if len(shifts) != len(dims):
            raise RuntimeError(f"roll: shifts and dimensions must align. shifts: {len(shifts)}, dims: {len(dims)}")
        out = self
        for shift, d in zip(shifts, dims):
            d = _norm_dim(d, self.ndim, "roll")
            n = out.shape[d]
            s = shift % n if n else 0
            if s:
                out = cat([out.narrow(d, n - s, s), out.narrow(d, 0, n - s)], d)
        return out

    # ----- indexing -----
    def index_select(self, dim: int, index):
        """The slices of `dim` at the positions in a 1-D integer `index` (torch.index_select)."""
        from .indexing import _index_rows
        from .tensor import _check_index_range

        dim = _norm_dim(dim, self.ndim, "index_select")
        _check_int_index(index, "index_select")
        if index.ndim > 1:
            raise IndexError(f"index_select(): Index is supposed to be a vector, got shape {index.shape}")
        if self.ndim == 0:
            return self.reshape(1).index_select(0, index).reshape(())
        _check_index_range(index, self.shape[dim], "index_select", allow_negative=False)
        return _index_rows(self, dim, index.reshape(-1))

    def take_along_dim(self, indices, dim: int | None = None):
        """Values at `indices` along `dim` (broadcasting the other dims), or in the flattened
        tensor when dim is None (torch.take_along_dim)."""
        from .tensor import _check_index_range

        _check_int_index(indices, "take_along_dim")
        if dim is None:
            flat = self.reshape(-1)
            _check_index_range(indices, flat.shape[0], "take_along_dim", allow_negative=False)
            return flat.gather(0, indices.reshape(-1)).reshape(indices.shape)
        dim = _norm_dim(dim, self.ndim, "take_along_dim")
        if indices.ndim != self.ndim:
            raise RuntimeError(
                f"take_along_dim: input and indices should have the same number of dimensions, got {self.ndim} and {indices.ndim}"
            )
        _check_index_range(indices, self.shape[dim], "take_along_dim", allow_negative=False)
        shape = broadcast_shapes(
            tuple(1 if i == dim else n for i, n in enumerate(self.shape)),
            tuple(1 if i == dim else n for i, n in enumerate(indices.shape)),
            op="take_along_dim",
        )
        x = self.expand(tuple(self.shape[dim] if i == dim else n for i, n in enumerate(shape)))
        idx = indices.expand(tuple(indices.shape[dim] if i == dim else n for i, n in enumerate(shape)))
        return x.gather(dim, idx)

    # ----- dims -----
    def movedim(self, source, destination):
        """The dims at `source` moved to `destination`, the others keeping their order."""

        src = (source,) if isinstance(source, int) else tuple(source)
        dst = (destination,) if isinstance(destination, int) else tuple(destination)
        if len(src) != len(dst):
            raise RuntimeError(
                f"movedim: Invalid source or destination dims: source ({list(src)} dims) should contain "
                f"the same number of dims as destination ({list(dst)} dims)"
            )
        src = tuple(_norm_dim(d, self.ndim, "movedim") for d in src)
        dst = tuple(_norm_dim(d, self.ndim, "movedim") for d in dst)
        if len(set(src)) != len(src) or len(set(dst)) != len(dst):
            raise RuntimeError(f"movedim: repeated dim in source {src} or destination {dst}")
        order = [None] * self.ndim
        for s, d in zip(src, dst):
            order[d] = s
        rest = iter(d for d in range(self.ndim) if d not in src)
        return self.permute(tuple(o if o is not None else next(rest) for o in order))

    moveaxis = movedim

    def swapaxes(self, axis0: int, axis1: int):
        """The tensor with two dims swapped (transpose)."""
        return self.transpose(axis0, axis1)

    swapdims = swapaxes

    def unflatten(self, dim: int, sizes):
        """Dim `dim` split into `sizes` (one of them may be -1)."""

        dim = _norm_dim(dim, self.ndim, "unflatten")
        sizes = tuple(int(s) for s in sizes)
        if not sizes:
            raise RuntimeError("unflatten: sizes must be non-empty")
        known = math.prod(s for s in sizes if s != -1)
        n = self.shape[dim]
        if sizes.count(-1) > 1 or (-1 in sizes and (known == 0 or n % known)) or (-1 not in sizes and known != n):
            raise RuntimeError(
                f"unflatten: Provided sizes {list(sizes)} don't multiply up to the size of dim {dim} ({n}) in the input tensor"
            )
        if -1 in sizes:
            sizes = tuple(n // known if s == -1 else s for s in sizes)
        return self.reshape(self.shape[:dim] + sizes + self.shape[dim + 1 :])

    def view_as(self, other):
        """self.view(other.shape)."""
        return self.view(other.shape)

    def reshape_as(self, other):
        """self.reshape(other.shape)."""
        return self.reshape(other.shape)

    # ----- broadcasting, uneven splits and metadata -----
    def broadcast_to(self, *shape):
        """A view of the tensor expanded to `shape` (-1 keeps a size; torch.broadcast_to)."""
        try:
            return self.expand(*shape)
        except RuntimeError as e:
            raise RuntimeError(f"broadcast_to: cannot broadcast shape {self.shape} to {shape_arg(shape, True)}: {e}") from None

    def tensor_split(self, indices_or_sections, dim: int = 0):
        """Views splitting `dim` into n parts (an int: the first size % n parts one longer) or at
        the given indices (slice rules: out of range clamps, a decreasing index gives an empty part)."""
        from .tensor import Tensor

        if self.ndim == 0:
            raise RuntimeError("tensor_split expected at least a 1-dimensional tensor, but got a tensor with 0 dims")
        dim = _norm_dim(dim, self.ndim, "tensor_split")
        n = self.shape[dim]
        spec = indices_or_sections
        if isinstance(spec, Tensor):
            if spec.dtype.is_floating_point or spec.dtype.is_bool or spec.ndim > 1:
                raise RuntimeError(
                    "tensor_split expected tensor_indices_or_sections to be a zero-dimensional or one-dimensional "
                    f"integer tensor, but got a {spec.dtype.name} tensor of shape {spec.shape}"
                )
            spec = spec.tolist()
        if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
            sections = int(spec)
            if sections <= 0:
                raise RuntimeError(f"tensor_split: number of sections must be larger than 0, got {sections}")
            size, extra = divmod(n, sections)
            bounds, start = [], 0
            for i in range(sections):
                length = size + (1 if i < extra else 0)
                bounds.append((start, length))
                start += length
        elif isinstance(spec, (list, tuple)) and all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in spec):
            edges = [0] + [min(max(i + n if i < 0 else i, 0), n) for i in spec] + [n]
            bounds = [(a, max(b - a, 0)) for a, b in zip(edges[:-1], edges[1:])]
        else:
            raise TypeError(
                f"tensor_split(): argument 'indices_or_sections' must be an int or a sequence of ints, got {spec!r}"
            )
        return tuple(self.narrow(dim, start, length) for start, length in bounds)

    def type_as(self, other):
        """The tensor cast to other's dtype."""
        return self.type(other.dtype)

    def element_size(self) -> int:
        """Bytes per element of the dtype (as torch reports it: int64 is 8)."""
        return self.dtype.itemsize

    def nelement(self) -> int:
        """The number of elements (numel)."""
        return self.numel()

    def ndimension(self) -> int:
        """The number of dims (dim)."""
        return self.ndim

    # ----- new tensors with this tensor's dtype and device -----
    def _new(self, dtype, device):
        return dtype or self.dtype, device or self.device

    def new_zeros(self, *size, dtype=None, device=None, requires_grad: bool = False):
        """zeros(size) with this tensor's dtype and device (unless given)."""
        from .creation import zeros

        dtype, device = self._new(dtype, device)
        return zeros(*size, dtype=dtype, device=device, requires_grad=requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad: bool = False):
        """ones(size) with this tensor's dtype and device (unless given)."""
        from .creation import ones

        dtype, device = self._new(dtype, device)
        return ones(*size, dtype=dtype, device=device, requires_grad=requires_grad)

    def new_empty(self, *size, dtype=None, device=None, requires_grad: bool = False):
        """Like new_zeros (smolgrad never hands out uninitialised memory)."""
        return self.new_zeros(*size, dtype=dtype, device=device, requires_grad=requires_grad)

    def new_full(self, size, fill_value, *, dtype=None, device=None, requires_grad: bool = False):
        """full(size, fill_value) with this tensor's dtype and device (unless given)."""
        from .creation import full

        dtype, device = self._new(dtype, device)
        return full(size, fill_value, dtype=dtype, device=device, requires_grad=requires_grad)

    def new_tensor(self, data, *, dtype=None, device=None, requires_grad: bool = False):
        """tensor(data) with this tensor's dtype and device (unless given)."""
        from .tensor import Tensor

        dtype, device = self._new(dtype, device)
        return Tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)
