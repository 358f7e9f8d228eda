"""Tensor creation and joining functions (torch.zeros, torch.randn, torch.cat, ...)."""

from __future__ import annotations

import functools
import math
import operator
from typing import Sequence

import numpy as np

from . import dtypes
from .device import canonical
from .engine import realize as engine
from .lazy import MAX_PLACED, LazyBuffer
from . import random
from .random import Generator, default_generator
from .tensor import Tensor, _norm_dim, shape_arg


def manual_seed(seed: int) -> Generator:
    """Seed the global generator behind rand, randn, randint, multinomial and dropout; returns it."""
    return default_generator.manual_seed(seed)


def seed() -> int:
    """Seed the global generator non-deterministically; returns the seed."""
    return default_generator.seed()


def initial_seed() -> int:
    """The seed of the global generator."""
    return default_generator.initial_seed()


def _next_key(device: str, gen: Generator | None = None) -> LazyBuffer:
    """The key of one device-side draw from `gen` (None: the global generator): (seed low
    word, seed high word, offset) as an int32 buffer on `device` (12 bytes uploaded)."""
    gen = random.checked(gen)
    node = LazyBuffer.load(_key_words(gen), dtypes.int32, device)
    if engine.observers:  # a captured step draws a new key at each replay
        engine.note_feed(node, lambda: _key_words(gen))
    return node


def _key_words(gen: Generator) -> np.ndarray:
    seed, offset = gen.philox_key()
    return np.array([seed & 0xFFFFFFFF, seed >> 32, offset & 0xFFFFFFFF], np.uint32).view(np.int32)


def uniform_lazy(shape: tuple[int, ...], dtype, device: str, streams: int = 1, generator: Generator | None = None
                 ) -> list[LazyBuffer]:
    """`streams` independent lazy uniform [0, 1) tensors of `shape`, drawn on the device in
    whatever kernel uses them (one draw: they share a key and offset, not a stream), from
    `generator` (None: the global one)."""
    key = _next_key(device, generator)
    return [LazyBuffer.rand(key, shape, dtype, s) for s in range(streams)]


def generator() -> np.random.Generator:
    """The NumPy generator smolgrad draws random values from (seeded by manual_seed)."""
    return default_generator.numpy_generator


def tensor(data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of `data` (nested lists, scalars, NumPy arrays)."""
    return Tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of `size` filled with `fill_value` (stored as one value, broadcast)."""
    shape = shape_arg((size,) if isinstance(size, int) else tuple(size))
    if dtype is None:
        dtype = dtypes.promote_scalar(dtypes.bool_, fill_value) if not isinstance(fill_value, bool) else dtypes.bool_
    dtype = dtypes.to_dtype(dtype)
    device = canonical(device)
    if dtype == dtypes.float64 and device == "webgpu":
        raise TypeError("float64 is only supported on the numpy device; use dtype=smolgrad.float32 on webgpu")
    out = Tensor._from_lazy(LazyBuffer.const(fill_value, shape, dtype, device))
    return out.requires_grad_() if requires_grad else out


def zeros(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return full(shape_arg(size), 0.0, dtype or dtypes.default_float, device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return full(shape_arg(size), 1.0, dtype or dtypes.default_float, device, requires_grad)


def empty(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Like zeros (smolgrad never hands out uninitialised memory)."""
    return zeros(*size, dtype=dtype, device=device, requires_grad=requires_grad)


def _like(t: Tensor, dtype, device):
    return dtype or t.dtype, device or t.device


def zeros_like(t: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    dtype, device = _like(t, dtype, device)
    return zeros(t.shape, dtype=dtype, device=device, requires_grad=requires_grad)


def ones_like(t: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    dtype, device = _like(t, dtype, device)
    return ones(t.shape, dtype=dtype, device=device, requires_grad=requires_grad)


def full_like(t: Tensor, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    dtype, device = _like(t, dtype, device)
    return full(t.shape, fill_value, dtype=dtype, device=device, requires_grad=requires_grad)


def empty_like(t: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return zeros_like(t, dtype=dtype, device=device, requires_grad=requires_grad)


def _random_args(op: str, dtype, device) -> tuple:
    dtype = dtypes.to_dtype(dtype or dtypes.default_float)
    device = canonical(device)
    if not dtype.is_floating_point:
        raise TypeError(f"{op}: expected a floating point dtype, got {dtype.name} (use randint for integers)")
    if dtype == dtypes.float64 and device == "webgpu":
        raise TypeError(f"{op}: float64 is only supported on the numpy device; use dtype=smolgrad.float32 on webgpu")
    return dtype, device


def rand(*size, generator=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Uniform samples from [0, 1), drawn on the device (Philox) from `generator` (None:
    the global one, seeded by manual_seed). Values are multiples of 2^-24 (float32
    resolution, also for float64)."""
    dtype, device = _random_args("rand", dtype, device)
    (u,) = uniform_lazy(shape_arg(size), dtype, device, generator=generator)
    out = Tensor._from_lazy(u)
    return out.requires_grad_() if requires_grad else out


def randn(*size, generator=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples, drawn on the device (Box-Muller over two Philox uniforms)
    from `generator` (None: the global one, seeded by manual_seed). |values| stay below
    about 5.8 (24-bit uniforms)."""
    dtype, device = _random_args("randn", dtype, device)
    uniforms = uniform_lazy(shape_arg(size), dtype, device, streams=2, generator=generator)
    u1, u2 = (Tensor._from_lazy(u) for u in uniforms)
    # 1 - u1 is in (0, 1], so the log is finite
    out = ((1.0 - u1).log() * -2.0).sqrt() * (u2 * (2 * math.pi)).cos()
    return out.requires_grad_() if requires_grad else out


def randint(low, high=None, size=None, *, generator=None, dtype=None, device=None) -> Tensor:
    """Integers uniform in [low, high), like torch.randint(low, high, size), from
    `generator` (None: the global one)."""
    if size is None:
        if high is None or not isinstance(high, (tuple, list)):
            raise TypeError("randint() missing the size argument, e.g. randint(0, 10, (3,))")
        low, high, size = 0, low, high
    if high is None:
        low, high = 0, low
    if high <= low:
        raise RuntimeError(f"randint: expected low < high, got low={low}, high={high}")
    dtype = dtypes.to_dtype(dtype or dtypes.int64)
    values = random.resolve(generator).integers(low, high, size=shape_arg((size,) if isinstance(size, int) else tuple(size)))
    return Tensor(values.astype(dtype.np), dtype=dtype, device=device)


def rand_like(t: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    dtype, device = _like(t, dtype, device)
    return rand(t.shape, dtype=dtype, device=device, requires_grad=requires_grad)


def randn_like(t: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    dtype, device = _like(t, dtype, device)
    return randn(t.shape, dtype=dtype, device=device, requires_grad=requires_grad)


def eye(n: int, m: int | None = None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """The identity matrix of n rows and m (default n) columns."""
    dtype = dtypes.to_dtype(dtype or dtypes.default_float)
    return Tensor(np.eye(n, m, dtype=dtype.np), dtype=dtype, device=device, requires_grad=requires_grad)


def linspace(start, end, steps: int, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """`steps` evenly spaced values from start to end inclusive (torch.linspace)."""
    if not isinstance(steps, int) or steps < 0:
        raise RuntimeError(f"linspace: number of steps must be a non-negative int, got {steps!r}")
    start, end = float(start), float(end)
    i = np.arange(steps, dtype=np.float64)
    step = (end - start) / (steps - 1) if steps > 1 else 0.0
    # like torch: the first half counts up from start, the second half down from end
    values = np.where(i < max(steps // 2, 1), start + i * step, end - (steps - 1 - i) * step)
    dtype = dtypes.to_dtype(dtype or dtypes.default_float)
    if not dtype.is_floating_point:
        values = np.trunc(values)
    return Tensor(values.astype(dtype.np), dtype=dtype, device=device, requires_grad=requires_grad)


def logspace(start, end, steps: int, base: float = 10.0, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """`steps` values from base**start to base**end, evenly spaced in the exponent (torch.logspace)."""
    exponents = linspace(start, end, steps, dtype=dtypes.float64, device="numpy").numpy()
    dtype = dtypes.to_dtype(dtype or dtypes.default_float)
    values = np.power(float(base), exponents)
    return Tensor(values.astype(dtype.np), dtype=dtype, device=device, requires_grad=requires_grad)


def meshgrid(*tensors: Tensor, indexing: str = "ij") -> tuple[Tensor, ...]:
    """Coordinate grids from 1-D tensors: 'ij' gives shape (len(t0), len(t1), ...); 'xy'
    swaps the first two dims (Cartesian, like NumPy's default). Each grid is an expanded view."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if indexing not in ("ij", "xy"):
        raise RuntimeError(f"meshgrid: indexing must be 'ij' or 'xy', got {indexing!r}")
    for t in tensors:
        if not isinstance(t, Tensor) or t.ndim > 1:
            raise RuntimeError(f"meshgrid: expects 0-D or 1-D tensors, got {getattr(t, 'shape', type(t).__name__)}")
    vecs = [t.reshape(-1) for t in tensors]
    if indexing == "xy" and len(vecs) >= 2:
        vecs[0], vecs[1] = vecs[1], vecs[0]
    shape = tuple(v.shape[0] for v in vecs)
    grids = [v.reshape(tuple(-1 if i == k else 1 for i in range(len(vecs)))).expand(shape) for k, v in enumerate(vecs)]
    if indexing == "xy" and len(grids) >= 2:
        grids[0], grids[1] = grids[1], grids[0]
    return tuple(grids)


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Join tensors along an existing dim; all other dims must match."""
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("cat(): expected a non-empty list of Tensors")
    ref = tensors[0]
    dim = _norm_dim(dim, ref.ndim, "cat")
    for i, t in enumerate(tensors):
        if t.ndim != ref.ndim or any(a != b for d, (a, b) in enumerate(zip(t.shape, ref.shape)) if d != dim):
            raise RuntimeError(
                f"cat(): Sizes of tensors must match except in dimension {dim}. Expected shape like "
                f"{ref.shape} but got {t.shape} for tensor number {i} in the list."
            )
        if t.device != ref.device:
            raise RuntimeError(f"cat(): all tensors must be on one device; tensor {i} is on {t.device}, tensor 0 on {ref.device}")
    dt = ref.dtype
    for t in tensors[1:]:
        dt = dtypes.promote(dt, t.dtype)
    total = sum(t.shape[dim] for t in tensors)
    pieces, start = [], 0
    for t in tensors:
        n = t.shape[dim]
        pads = [(0, 0)] * ref.ndim
        pads[dim] = (start, total - start - n)
        pieces.append(t.type(dt).pad(pads))
        start += n
    # zero pads that do not overlap add up to one kernel placing up to MAX_PLACED of them
    # (see lazy._placed_sum): added a group at a time, then the groups
    groups = [functools.reduce(operator.add, pieces[i : i + MAX_PLACED]) for i in range(0, len(pieces), MAX_PLACED)]
    return functools.reduce(operator.add, groups)


def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Join same-shaped tensors along a new dim."""
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("stack expects a non-empty list of tensors")
    for i, t in enumerate(tensors):
        if t.shape != tensors[0].shape:
            raise RuntimeError(
                f"stack expects each tensor to be equal size, but got {tensors[0].shape} at entry 0 and {t.shape} at entry {i}"
            )
    dim = _norm_dim(dim, tensors[0].ndim + 1, "stack")
    return cat([t.unsqueeze(dim) for t in tensors], dim)


# ----- broadcasting, atleast_*d and the *stack family -----


def broadcast_tensors(*tensors: Tensor) -> tuple[Tensor, ...]:
    """The tensors expanded (as views) to their common broadcast shape."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"broadcast_tensors(): expected Tensors, got {type(t).__name__} at position {i}")
    from .shapes import broadcast_shapes

    shape = broadcast_shapes(*(t.shape for t in tensors), op="broadcast_tensors")
    return tuple(t.expand(shape) for t in tensors)


def _atleast(tensors, ndim: int, op: str, place):
    """place(t) for each tensor of fewer than ndim dims; one tensor in, one out, else a tuple."""
    single = len(tensors) == 1 and isinstance(tensors[0], Tensor)
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    out = []
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}(): expected Tensors, got {type(t).__name__} at position {i}")
        out.append(place(t) if t.ndim < ndim else t)
    return out[0] if single else tuple(out)


def atleast_1d(*tensors: Tensor):
    """Each tensor viewed with at least 1 dim (0-d becomes shape (1,))."""
    return _atleast(tensors, 1, "atleast_1d", lambda t: t.reshape(1))


def atleast_2d(*tensors: Tensor):
    """Each tensor viewed with at least 2 dims: () -> (1, 1), (n,) -> (1, n)."""
    return _atleast(tensors, 2, "atleast_2d", lambda t: t.reshape((1, t.numel())))


def atleast_3d(*tensors: Tensor):
    """Each tensor viewed with at least 3 dims: () -> (1, 1, 1), (n,) -> (1, n, 1), (m, n) -> (m, n, 1)."""
    return _atleast(tensors, 3, "atleast_3d", lambda t: t.reshape((1, t.numel(), 1) if t.ndim < 2 else t.shape + (1,)))


def _stack_list(tensors, op: str) -> list[Tensor]:
    if isinstance(tensors, Tensor) or not isinstance(tensors, (list, tuple)):
        raise TypeError(f"{op}(): argument 'tensors' must be a tuple or list of Tensors, not {type(tensors).__name__}")
    if not tensors:
        raise RuntimeError(f"{op}(): expected a non-empty list of Tensors")
    return list(tensors)


def hstack(tensors: Sequence[Tensor]) -> Tensor:
    """Join along dim 1 (along dim 0 for 1-D tensors), after atleast_1d."""
    ts = atleast_1d(_stack_list(tensors, "hstack"))
    return cat(ts, 0 if ts[0].ndim == 1 else 1)


def vstack(tensors: Sequence[Tensor]) -> Tensor:
    """Join along dim 0 after atleast_2d (1-D tensors become rows)."""
    return cat(atleast_2d(_stack_list(tensors, "vstack")), 0)


row_stack = vstack


def dstack(tensors: Sequence[Tensor]) -> Tensor:
    """Join along dim 2 after atleast_3d."""
    return cat(atleast_3d(_stack_list(tensors, "dstack")), 2)


def column_stack(tensors: Sequence[Tensor]) -> Tensor:
    """Join along dim 1, with 0-D and 1-D tensors made columns of shape (n, 1) first."""
    ts = [t.reshape((t.numel(), 1)) if t.ndim <= 1 else t for t in _stack_list(tensors, "column_stack")]
    return cat(ts, 1)


# ----- index sets and permutations -----


def _triangle_indices(op: str, row: int, col: int, offset: int, dtype, device, lower: bool) -> Tensor:
    for name, v in (("row", row), ("col", col), ("offset", offset)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
            raise TypeError(f"{op}(): argument '{name}' must be int, not {type(v).__name__}")
    if row < 0 or col < 0:
        raise RuntimeError(f"{op}: row and col must be non-negative, got row={row}, col={col}")
    dtype = dtypes.to_dtype(dtype)
    if dtype not in (dtypes.int32, dtypes.int64):
        raise RuntimeError(f"{op}: dtype must be int32 or int64, got {dtype.name}")
    rows, cols = (np.tril_indices if lower else np.triu_indices)(row, offset, col)
    return Tensor(np.stack([rows, cols]).astype(dtype.np).reshape(2, -1), dtype=dtype, device=device)


def tril_indices(row: int, col: int, offset: int = 0, *, dtype=dtypes.int64, device=None) -> Tensor:
    """The (2, N) row and column indices of the lower triangle of a row x col matrix, row by row
    (offset > 0 takes diagonals above the main one, < 0 leaves some out)."""
    return _triangle_indices("tril_indices", row, col, offset, dtype, device, lower=True)


def triu_indices(row: int, col: int, offset: int = 0, *, dtype=dtypes.int64, device=None) -> Tensor:
    """The (2, N) row and column indices of the upper triangle of a row x col matrix, row by row
    (offset > 0 leaves diagonals out, < 0 takes some below the main one)."""
    return _triangle_indices("triu_indices", row, col, offset, dtype, device, lower=False)


def randperm(n: int, *, generator=None, dtype=dtypes.int64, device=None, requires_grad: bool = False) -> Tensor:
    """A random permutation of 0..n-1: the order that sorts n uniforms drawn on the device from
    `generator` (None: the global one, seeded by manual_seed)."""
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool):
        raise TypeError(f"randperm(): argument 'n' must be int, not {type(n).__name__}")
    if n < 0:
        raise RuntimeError(f"randperm: n must be non-negative, got {n}")
    dtype, device = dtypes.to_dtype(dtype), canonical(device)
    if dtype.is_bool or (dtype.is_int and n - 1 > np.iinfo(dtype.np).max) or (dtype == dtypes.float16 and n > 2049):
        raise RuntimeError(f"randperm: n={n} values do not fit in dtype {dtype.name}")
    if dtype == dtypes.float64 and device == "webgpu":
        raise TypeError("randperm: float64 is only supported on the numpy device; use dtype=smolgrad.float32 on webgpu")
    if requires_grad and not dtype.is_floating_point:
        raise RuntimeError(f"randperm: only Tensors of floating point dtype can require gradients (got {dtype.name})")
    # two uniforms per element (48 random bits) make ties, which would keep index order, negligible
    u1, u2 = (Tensor._from_lazy(u) for u in uniform_lazy((n,), dtypes.float32, device, streams=2, generator=generator))
    from .lazy import realize

    realize(u1.lazydata, u2.lazydata)
    order = np.lexsort((u2.numpy(), u1.numpy()))
    return Tensor(order.astype(dtype.np), dtype=dtype, device=device, requires_grad=requires_grad)
