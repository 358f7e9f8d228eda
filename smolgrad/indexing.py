"""Indexing: `x[key]`, `x[key] = value`, and the scatter / index_add family.

Basic indexing (ints, slices, None, ...) gives a view sharing x's storage; a write
through it is an in-place write of that view (smolgrad.storage). Advanced indexing
(integer tensors and lists, bool masks) works on flat positions computed on the host
(reading the indices, as PyTorch's CPU kernels do) and gathers or scatters them.
"""

from __future__ import annotations

import math

import numpy as np

from . import dtypes
from . import function as F
from . import storage
from .lazy import LazyBuffer
from .tensor import Tensor, _broadcasts_to, _check_index_range, _norm_dim, where


# ----- keys -----


def _expand_key(x: Tensor, key) -> list:
    """The key as a list with `...` expanded and trailing full slices added."""
    if not isinstance(key, tuple):
        key = (key,)
    ellipses = [i for i, k in enumerate(key) if k is Ellipsis]
    if len(ellipses) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")

    def dims_used(k) -> int:
        if k is None or k is Ellipsis:
            return 0
        if isinstance(k, Tensor) and k.dtype.is_bool:
            return max(k.ndim, 1)
        if isinstance(k, np.ndarray) and k.dtype == bool:
            return max(k.ndim, 1)
        return 1

    used = sum(dims_used(k) for k in key)
    if used > x.ndim:
        raise IndexError(f"too many indices for tensor of dimension {x.ndim} (got {used})")
    key = list(key)
    if ellipses:
        i = ellipses[0]
        key[i : i + 1] = [slice(None)] * (x.ndim - used)
    return key + [slice(None)] * (x.ndim - sum(dims_used(k) for k in key))


def _as_int(k, d: int, n: int) -> int:
    try:
        i = int(k.__index__() if hasattr(k, "__index__") else k)
    except TypeError:
        raise IndexError(f"unsupported index {k!r}: use ints, slices, None, ..., bool masks or integer tensors") from None
    if not -n <= i < n:
        raise IndexError(f"index {i} is out of bounds for dimension {d} with size {n}")
    return i % n


def _basic_view(x: Tensor, key: list) -> tuple[Tensor, list]:
    """x indexed by the basic items of `key` (advanced ones kept as full slices), as a view
    of x's storage; and the advanced items, each paired with its first dim in that view."""
    bounds, final, advanced = [], [], []  # final: per output dim, a real dim of x or None (new)
    d = 0
    for k in key:
        if k is None:
            final.append(None)
        elif isinstance(k, slice):
            start, stop, step = k.indices(x.shape[d])
            if step <= 0:
                raise ValueError("step must be greater than zero")
            bounds.append((start, max(stop, start), step))
            final.append(d)
            d += 1
        elif isinstance(k, (Tensor, list, np.ndarray, range)):
            advanced.append((len(final), k))
            for _ in range(max(k.ndim, 1) if _is_bool(k) else 1):
                bounds.append((0, x.shape[d], 1))
                final.append(d)
                d += 1
        else:
            i = _as_int(k, d, x.shape[d])
            bounds.append((i, i + 1, 1))
            d += 1
    out = x._slice_view(bounds) if any(b != (0, n, 1) for b, n in zip(bounds, x.shape)) else x
    shape = tuple(1 if r is None else out.shape[r] for r in final)
    return (out.reshape(shape) if shape != out.shape else out), advanced


def _is_bool(k) -> bool:
    return (isinstance(k, Tensor) and k.dtype.is_bool) or (isinstance(k, np.ndarray) and k.dtype == bool)


def _host_indices(v: Tensor, advanced: list) -> tuple[list[int], list[np.ndarray]]:
    """Each advanced item as host integer arrays (a bool mask gives one per dim it covers),
    range-checked and wrapped, with the view dims they index."""
    dims, arrays = [], []
    for d, k in advanced:
        if isinstance(k, Tensor):
            if k.device != v.device:
                raise RuntimeError(f"indexing: index is on {k.device} but the tensor is on {v.device}")
            k = k.detach().numpy()
        arr = np.asarray(k)
        if arr.dtype == bool:
            mask_shape = v.shape[d : d + max(arr.ndim, 1)]
            if arr.shape != mask_shape:
                bad = next((i for i, (a, b) in enumerate(zip(arr.shape, mask_shape)) if a != b), 0)
                raise IndexError(
                    f"The shape of the mask {list(arr.shape)} at index {bad} does not match the shape of the "
                    f"indexed tensor {list(mask_shape)} at index {d + bad}"
                )
            for j, idx in enumerate(np.nonzero(arr)):
                dims.append(d + j)
                arrays.append(idx.astype(np.int64))
            continue
        if arr.size and arr.dtype.kind not in "iu":
            raise IndexError(f"tensors used as indices must be long, int or bool tensors, got {arr.dtype}")
        arr = arr.astype(np.int64)
        n = v.shape[d]
        if arr.size and (arr.min() < -n or arr.max() >= n):
            bad = arr.min() if arr.min() < -n else arr.max()
            raise IndexError(f"index {bad} is out of bounds for dimension {d} with size {n}")
        dims.append(d)
        arrays.append(np.where(arr < 0, arr + n, arr))
    return dims, arrays


def _positions(v: Tensor, dims: list[int], arrays: list[np.ndarray]) -> np.ndarray:
    """Flat positions in v (row-major) of v indexed by `arrays` on `dims` (PyTorch's rule:
    the broadcast index dims replace the indexed dims when those are adjacent, else lead)."""
    try:
        b_shape = np.broadcast_shapes(*[a.shape for a in arrays])
    except ValueError:
        raise IndexError(
            f"shape mismatch: indexing tensors could not be broadcast together with shapes "
            f"{', '.join(str(list(a.shape)) for a in arrays)}"
        ) from None
    adjacent = dims == list(range(dims[0], dims[0] + len(dims)))
    rest = [d for d in range(v.ndim) if d not in dims]
    before = [d for d in rest if d < dims[0]] if adjacent else []
    after = [d for d in rest if d not in before]
    out_ndim = len(before) + len(b_shape) + len(after)
    b_at = len(before)
    strides = [math.prod(v.shape[d + 1 :]) for d in range(v.ndim)]
    pos = np.zeros((), dtype=np.int64)
    for d, a in zip(dims, arrays):
        a = np.broadcast_to(a, b_shape).reshape((1,) * b_at + b_shape + (1,) * len(after))
        pos = pos + a * strides[d]
    for i, d in enumerate(before + after):
        axis = i if i < b_at else i + len(b_shape)
        shape = [1] * out_ndim
        shape[axis] = v.shape[d]
        pos = pos + np.arange(v.shape[d]).reshape(shape) * strides[d]
    full = tuple(v.shape[d] for d in before) + tuple(b_shape) + tuple(v.shape[d] for d in after)
    return np.broadcast_to(pos, full)


def _int_index(positions: np.ndarray, device: str) -> Tensor:
    return Tensor(np.ascontiguousarray(positions, dtype=np.int32), dtype=dtypes.int32, device=device)


# ----- get -----


def getitem(x: Tensor, key) -> Tensor:
    """x[key] with PyTorch's rules: a view for basic keys, a copy for advanced ones."""
    key = _expand_key(x, key)
    arrays = [k for k in key if isinstance(k, (Tensor, list, np.ndarray, range))]
    if len(arrays) == 1 and not _is_bool(arrays[0]) and not isinstance(arrays[0], range):
        return _getitem_one_array(x, key)
    v, advanced = _basic_view(x, key)
    if not advanced:
        return v
    dims, arrays = _host_indices(v, advanced)
    pos = _positions(v, dims, arrays)
    flat = v._reshape((v.numel(),))
    if pos.size == 0:
        return Tensor._from_lazy(LazyBuffer.const(0, pos.shape, v.dtype, v.device))
    out = F.Gather.apply(flat, _int_index(pos.reshape(-1), v.device), dim=0)
    return out._reshape(pos.shape)


def _getitem_one_array(x: Tensor, key: list) -> Tensor:
    """Basic indexing plus one integer tensor: a gather that reads the index lazily."""
    bounds, out_shape, tensor_dim, tensor_index = [], [], None, None
    d = 0
    for k in key:
        if k is None:
            out_shape.append(("new",))
            continue
        n = x.shape[d]
        if isinstance(k, slice):
            start, stop, step = k.indices(n)
            if step <= 0:
                raise ValueError("step must be greater than zero")
            bounds.append((start, max(stop, start), step))
            out_shape.append(("dim", d))
        elif isinstance(k, (Tensor, list, np.ndarray)):
            bounds.append((0, n, 1))
            tensor_dim = d
            tensor_index = k if isinstance(k, Tensor) else Tensor(np.asarray(k, dtype=np.int64), device=x.device)
            out_shape.append(("tensor", d))
        else:
            i = _as_int(k, d, n)
            bounds.append((i, i + 1, 1))
        d += 1
    out = _index_rows(x._slice(bounds), tensor_dim, tensor_index)
    shape = []
    for item in out_shape:
        if item[0] == "new":
            shape.append(1)
        elif item[0] == "dim":
            shape.append(out.shape[item[1]] if item[1] < tensor_dim else out.shape[item[1] + tensor_index.ndim - 1])
        else:
            shape.extend(tensor_index.shape)
    return out._reshape(tuple(shape))


def _index_rows(x: Tensor, dim: int, index: Tensor) -> Tensor:
    """x indexed along `dim` by an integer tensor: shape x[:dim] + index.shape + x[dim+1:]."""
    if index.dtype.is_floating_point or index.dtype.is_bool:
        raise IndexError(f"tensors used as indices must be integer tensors, got {index.dtype.name}")
    if index.device != x.device:
        raise RuntimeError(f"indexing: index is on {index.device} but the tensor is on {x.device}")
    n = x.shape[dim]
    _check_index_range(index, n, "index")
    flat = index.detach()._reshape((index.numel(),))
    flat = where(flat < 0, flat + n, flat)
    p = flat.shape[0]
    idx_shape = tuple(p if i == dim else 1 for i in range(x.ndim))
    target = tuple(p if i == dim else s for i, s in enumerate(x.shape))
    gathered = F.Gather.apply(x, flat._reshape(idx_shape)._broadcast_to(target).detach(), dim=dim)
    return gathered._reshape(x.shape[:dim] + index.shape + x.shape[dim + 1 :])


# ----- set -----


def _value_tensor(value, like: Tensor, op: str) -> Tensor:
    """`value` as a tensor of like's dtype on like's device (copy_ semantics: any dtype casts)."""
    if isinstance(value, Tensor):
        if value.device != like.device:
            raise RuntimeError(f"{op}: value is on {value.device} but the tensor is on {like.device}")
        return value.type(like.dtype)
    if isinstance(value, (bool, int, float, np.generic)):
        return Tensor._from_lazy(LazyBuffer.const(value, (), like.dtype, like.device))
    return Tensor(np.asarray(value), dtype=like.dtype, device=like.device)


def _fit(value: Tensor, shape: tuple[int, ...], op: str) -> Tensor:
    """value broadcast to `shape` (leading size-1 dims beyond it dropped, as torch allows)."""
    while value.ndim > len(shape) and value.shape[0] == 1:
        value = value._reshape(value.shape[1:])
    if not _broadcasts_to(value.shape, shape):
        raise RuntimeError(f"{op}: shape mismatch: value tensor of shape {list(value.shape)} cannot be broadcast to indexing result of shape {list(shape)}")
    return value._broadcast_to(shape)


def setitem(x: Tensor, key, value) -> None:
    """x[key] = value, in place, with PyTorch's rules (see the module docstring)."""
    key = _expand_key(x, key)
    val = _value_tensor(value, x, "setitem")
    only_mask = isinstance(key[0], Tensor) and key[0].dtype.is_bool and all(
        isinstance(k, slice) and k == slice(None) for k in key[1:]
    )
    if only_mask:
        storage.check_inplace(x, "setitem")  # index_put_ on x itself, as in torch
        if _mask_where(x, key[0], val):
            return
    v, advanced = _basic_view(x, key)
    storage.check_inplace(v, "setitem")
    if not advanced:
        storage.write(v, _fit(val, v.shape, "setitem"), "setitem")
        return
    dims, arrays = _host_indices(v, advanced)
    pos = _positions(v, dims, arrays)
    value, root = storage.current(v)
    storage.write(v, put_flat(value, pos, _fit(val, pos.shape, "setitem")), "setitem", root)


def _mask_where(x: Tensor, mask: Tensor, val: Tensor) -> bool:
    """x[mask] = val as where(mask, val, x) when val broadcasts over the masked elements
    (a scalar, or one row per masked position's trailing dims): no host round trip."""
    if mask.device != x.device:
        raise RuntimeError(f"setitem: mask is on {mask.device} but the tensor is on {x.device}")
    if mask.shape != x.shape[: mask.ndim]:
        bad = next((i for i, (a, b) in enumerate(zip(mask.shape, x.shape)) if a != b), 0)
        raise IndexError(
            f"The shape of the mask {list(mask.shape)} at index {bad} does not match the shape of the "
            f"indexed tensor {list(x.shape)} at index {bad}"
        )
    trailing = x.shape[mask.ndim :]
    v = val
    while v.ndim > len(trailing) and v.shape[0] == 1:
        v = v._reshape(v.shape[1:])
    if not _broadcasts_to(v.shape, trailing):
        return False
    m = mask.detach()._reshape(mask.shape + (1,) * len(trailing))._broadcast_to(x.shape)
    placed = v._reshape((1,) * (x.ndim - v.ndim) + v.shape)._broadcast_to(x.shape)
    value, root = storage.current(x)
    storage.write(x, F.Where.apply(m, placed, value), "setitem", root)
    return True


def put_flat(x: Tensor, positions: np.ndarray, values: Tensor) -> Tensor:
    """x with values[i] written at flat position positions[i] (row-major); where a position
    repeats, the last write wins (as PyTorch's CPU kernels do). Differentiable."""
    pos = np.asarray(positions, dtype=np.int64).reshape(-1)
    vals = values._reshape((pos.size,))
    if pos.size == 0:
        return x
    _, first_from_end = np.unique(pos[::-1], return_index=True)
    if len(first_from_end) < pos.size:  # duplicates: keep the last of each
        keep = np.sort(pos.size - 1 - first_from_end)
        vals = F.Gather.apply(vals, _int_index(keep, x.device), dim=0)
        pos = pos[keep]
    hit = np.zeros(x.numel(), dtype=bool)
    hit[pos] = True
    placed = F.ScatterAdd.apply(vals, _int_index(pos, x.device), dim=0, shape=(x.numel(),))
    mask = Tensor(hit, dtype=dtypes.bool_, device=x.device)
    flat = x._reshape((x.numel(),))
    return F.Where.apply(mask, placed, flat)._reshape(x.shape)


# ----- scatter, scatter_add, index_add, index_copy, index_fill -----


def _check_scatter_index(x: Tensor, dim: int, index: Tensor, src_shape, op: str) -> None:
    if not isinstance(index, Tensor) or index.dtype.is_floating_point or index.dtype.is_bool:
        raise RuntimeError(f"{op}(): Expected dtype int64 for index")
    if index.device != x.device:
        raise RuntimeError(f"{op}(): index is on {index.device} but self is on {x.device}")
    if index.ndim != x.ndim or (src_shape is not None and len(src_shape) != x.ndim):
        raise RuntimeError(
            f"{op}(): Index tensor must have the same number of dimensions as self tensor ({index.shape} vs {x.shape})"
            + ("" if src_shape is None else f" and src ({tuple(src_shape)})")
        )
    for d in range(x.ndim):
        if (d != dim and index.shape[d] > x.shape[d]) or (src_shape is not None and index.shape[d] > src_shape[d]):
            raise RuntimeError(
                f"{op}(): Expected index {list(index.shape)} to be smaller than self {list(x.shape)} apart from "
                f"dimension {dim}" + ("" if src_shape is None else f" and to be smaller size than src {list(src_shape)}")
            )


def _src_tensor(x: Tensor, index: Tensor, src, op: str) -> Tensor:
    """The src (a tensor, cropped to index's shape) or a scalar value (filled to it)."""
    if isinstance(src, Tensor):
        if src.device != x.device:
            raise RuntimeError(f"{op}(): src is on {src.device} but self is on {x.device}")
        if src.dtype != x.dtype:
            raise RuntimeError(
                f"{op}(): Expected self.dtype to be equal to src.dtype (got {x.dtype.name} and {src.dtype.name}); "
                "convert one with .to(dtype)"
            )
        return src._slice(tuple((0, n, 1) for n in index.shape))
    return Tensor._from_lazy(LazyBuffer.const(src, index.shape, x.dtype, x.device))


def scatter(x: Tensor, dim: int, index: Tensor, src=None, value=None, reduce: str | None = None) -> Tensor:
    """x with x[index[i][j]][j] = src[i][j] for dim 0 (and so on), like torch.scatter."""
    if src is None:
        src = value
    if src is None:
        raise TypeError("scatter() missing the src tensor or value")
    if reduce == "add":
        return scatter_add(x, dim, index, src if isinstance(src, Tensor) else _src_tensor(x, index, src, "scatter"))
    if reduce is not None:
        raise RuntimeError(f"scatter(): reduce argument must be either add or None, got {reduce!r} (multiply is not supported)")
    dim = _norm_dim(dim, x.ndim, "scatter")
    _check_scatter_index(x, dim, index, src.shape if isinstance(src, Tensor) else None, "scatter")
    idx = index.detach().numpy().astype(np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= x.shape[dim]):
        bad = idx.min() if idx.min() < 0 else idx.max()
        raise RuntimeError(f"scatter(): index {bad} is out of bounds for dimension {dim} with size {x.shape[dim]}")
    coords = list(np.indices(idx.shape))
    coords[dim] = idx
    pos = np.ravel_multi_index(tuple(coords), x.shape) if idx.size else np.zeros(idx.shape, dtype=np.int64)
    return put_flat(x, pos, _src_tensor(x, index, src, "scatter"))


def scatter_add(x: Tensor, dim: int, index: Tensor, src: Tensor) -> Tensor:
    """x with src[i][j] added at x[index[i][j]][j] for dim 0 (and so on), like torch.scatter_add."""
    dim = _norm_dim(dim, x.ndim, "scatter_add")
    if not isinstance(src, Tensor):
        raise TypeError(f"scatter_add(): src must be a Tensor, got {type(src).__name__}")
    _check_scatter_index(x, dim, index, src.shape, "scatter_add")
    _check_index_range(index, x.shape[dim], "scatter_add", allow_negative=False)
    s = _src_tensor(x, index, src, "scatter_add")
    added = F.ScatterAdd.apply(s, index.detach(), dim=dim, shape=x.shape)
    return x + added


_REDUCE_PAD = {"sum": 0.0, "mean": 0.0, "amax": -math.inf, "amin": math.inf}


def scatter_reduce(x: Tensor, dim: int, index: Tensor, src: Tensor, reduce: str, include_self: bool = True) -> Tensor:
    """x with the src values sent to each position (x[index[i][j]][j] for dim 0, and so on)
    reduced into it by "sum", "mean", "amax" or "amin" (with x's own value unless
    include_self=False), like torch.scatter_reduce. Reads the indices on the host: the
    values sent to each position are gathered into one padded row and reduced (so the
    gradient of amax/amin is shared evenly among ties, as in torch)."""
    from .creation import cat

    if reduce not in _REDUCE_PAD:
        raise RuntimeError(f"scatter_reduce(): reduce must be one of {', '.join(map(repr, _REDUCE_PAD))}, got {reduce!r}")
    dim = _norm_dim(dim, x.ndim, "scatter_reduce")
    if not isinstance(src, Tensor):
        raise TypeError(f"scatter_reduce(): src must be a Tensor, got {type(src).__name__}")
    _check_scatter_index(x, dim, index, src.shape, "scatter_reduce")
    idx = index.detach().numpy().astype(np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= x.shape[dim]):
        bad = idx.min() if idx.min() < 0 else idx.max()
        raise RuntimeError(f"scatter_reduce(): index {bad} is out of bounds for dimension {dim} with size {x.shape[dim]}")
    if idx.size == 0:
        return x
    coords = list(np.indices(idx.shape))
    coords[dim] = idx
    pos = np.ravel_multi_index(tuple(coords), x.shape).reshape(-1)  # the target of each src value
    targets, slot_of, counts = np.unique(pos, return_inverse=True, return_counts=True)
    # rows[t] lists the src values sent to targets[t]; pad = one extra element past the values
    order = np.argsort(slot_of, kind="stable")
    column = np.arange(pos.size) - np.repeat(np.cumsum(counts) - counts, counts)
    rows = np.full((targets.size, counts.max()), pos.size, dtype=np.int64)
    rows[slot_of[order], column] = order
    values = _src_tensor(x, index, src, "scatter_reduce")._reshape((pos.size,))
    padded = F.Pad.apply(values, pads=((0, 1),), value=_REDUCE_PAD[reduce])
    gathered = F.Gather.apply(padded, _int_index(rows.reshape(-1), x.device), dim=0)._reshape(rows.shape)
    if include_self:
        own = F.Gather.apply(x._reshape((x.numel(),)), _int_index(targets, x.device), dim=0)
        gathered = cat([own._reshape((targets.size, 1)), gathered], dim=1)
    if reduce in ("amax", "amin"):
        reduced = gathered.amax(1) if reduce == "amax" else gathered.amin(1)
    else:
        reduced = gathered.sum(1)
        if reduce == "mean":
            n = Tensor(counts + int(include_self), dtype=x.dtype, device=x.device)
            reduced = reduced // n if not x.dtype.is_floating_point else reduced / n
    return put_flat(x, targets, reduced.type(x.dtype))


def _index_src(x: Tensor, dim: int, index: Tensor, source, op: str) -> tuple[Tensor, Tensor]:
    """(index expanded to source's shape along dim, source) for the index_* ops."""
    if not isinstance(index, Tensor) or index.dtype.is_floating_point or index.dtype.is_bool:
        raise RuntimeError(f"{op}_(): Expected dtype int64 for index")
    if index.ndim > 1:
        raise IndexError(f"{op}_(): Index is supposed to be a vector, got shape {list(index.shape)}")
    if index.device != x.device:
        raise RuntimeError(f"{op}_(): index is on {index.device} but self is on {x.device}")
    n = index.numel()
    shape = tuple(n if d == dim else s for d, s in enumerate(x.shape))
    if isinstance(source, Tensor):
        if source.shape != shape and not (x.ndim == 0 and source.numel() == n):
            raise RuntimeError(
                f"{op}_(): source of shape {list(source.shape)} does not match self {list(x.shape)} with "
                f"{n} indices along dim {dim} (expected {list(shape)})"
            )
        source = source._reshape(shape)
    idx = index.detach()._reshape((n,) if x.ndim else ())
    idx = idx._reshape(tuple(n if d == dim else 1 for d in range(x.ndim)))._broadcast_to(shape)
    return idx, source


def index_add(x: Tensor, dim: int, index: Tensor, source: Tensor, alpha=1) -> Tensor:
    """x with alpha * source[i] added at x[index[i]] along dim (torch.index_add)."""
    dim = _norm_dim(dim, x.ndim, "index_add")
    idx, source = _index_src(x, dim, index, source, "index_add")
    _check_index_range(index, x.shape[dim] if x.ndim else 1, "index_add", allow_negative=False)
    if alpha != 1:
        source = source * alpha
    return scatter_add(x, dim, idx, source)


def index_copy(x: Tensor, dim: int, index: Tensor, source: Tensor) -> Tensor:
    """x with x[index[i]] = source[i] along dim (torch.index_copy)."""
    dim = _norm_dim(dim, x.ndim, "index_copy")
    idx, source = _index_src(x, dim, index, source, "index_copy")
    return scatter(x, dim, idx, source)


def index_fill(x: Tensor, dim: int, index: Tensor, value) -> Tensor:
    """x with every element at index along dim set to value (torch.index_fill)."""
    dim = _norm_dim(dim, x.ndim, "index_fill")
    if isinstance(value, Tensor):
        if value.ndim != 0:
            raise RuntimeError(f"index_fill_(): only supports a 0-dimensional value tensor, but got one with {value.ndim} dims")
    idx, _ = _index_src(x, dim, index, None, "index_fill")
    if isinstance(value, Tensor):
        value = value.type(x.dtype)._reshape((1,) * x.ndim)._broadcast_to(idx.shape)
    return scatter(x, dim, idx, value)
