"""DataLoader: batches of samples from a map-style data set, collated into tensors."""

from __future__ import annotations

import math
import numbers
from typing import Callable

import numpy as np


def _rng(generator) -> np.random.Generator:
    """A NumPy generator from None (smolgrad's global one, seeded by manual_seed),
    an int seed, or a NumPy Generator."""
    if generator is None:
        from ..creation import generator as global_generator

        return global_generator()
    if isinstance(generator, np.random.Generator):
        return generator
    if isinstance(generator, numbers.Integral) and not isinstance(generator, bool):
        return np.random.default_rng(int(generator))
    raise TypeError(
        f"generator must be None, an int seed or a numpy.random.Generator, got {type(generator).__name__}"
    )


def default_collate(batch: list, device=None):
    """Stack a list of samples into a batch, like torch's default_collate.

    NumPy arrays and scalars are stacked into one tensor on `device` (keeping their
    dtype); Python ints become int64, floats float32 (smolgrad's default float, as
    WebGPU has no float64), bools bool; smolgrad tensors are stacked with
    smolgrad.stack; tuples, lists and dicts are collated field by field; strings are
    returned as a list."""
    from ..creation import stack
    from ..tensor import Tensor

    if not batch:
        raise ValueError("default_collate: cannot collate an empty batch")
    first = batch[0]
    if isinstance(first, Tensor):
        return stack(batch).to(device) if device is not None else stack(batch)
    if isinstance(first, (np.ndarray, np.generic)):
        arrays = [np.asarray(b) for b in batch]
        if any(a.shape != arrays[0].shape for a in arrays):
            shapes = sorted({a.shape for a in arrays})
            raise RuntimeError(f"default_collate: samples have different shapes {shapes}; they must match to be stacked")
        return Tensor(np.stack(arrays), device=device)
    if isinstance(first, bool):
        return Tensor(np.array(batch, dtype=np.bool_), device=device)
    if isinstance(first, numbers.Integral):
        return Tensor(np.array(batch, dtype=np.int64), device=device)
    if isinstance(first, numbers.Real):
        return Tensor(np.array(batch, dtype=np.float32), device=device)
    if isinstance(first, (str, bytes)):
        return list(batch)
    if isinstance(first, dict):
        return {key: default_collate([b[key] for b in batch], device) for key in first}
    if isinstance(first, (tuple, list)):
        if any(len(b) != len(first) for b in batch):
            raise RuntimeError("default_collate: each sample in the batch must have the same number of fields")
        fields = [default_collate(list(column), device) for column in zip(*batch)]
        if isinstance(first, tuple) and hasattr(first, "_fields"):  # a namedtuple
            return type(first)(*fields)
        return tuple(fields) if isinstance(first, tuple) else fields
    raise TypeError(
        f"default_collate: don't know how to batch samples of type {type(first).__name__}; "
        "return NumPy arrays, numbers, tensors, or tuples/lists/dicts of them, or pass a collate_fn"
    )


class DataLoader:
    """Iterate over `dataset` in batches, like torch.utils.data.DataLoader.

    - batch_size: samples per batch;
    - shuffle: a new random order every epoch, drawn from `generator` (an int seed or a
      numpy.random.Generator; by default smolgrad's global generator, so
      smolgrad.manual_seed makes the order reproducible);
    - drop_last: drop the last batch when it is smaller than batch_size;
    - collate_fn: turns a list of samples into a batch (default: default_collate);
    - device: where default_collate puts the batch tensors (default: smolgrad's default
      device)."""

    def __init__(
        self,
        dataset,
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        collate_fn: Callable | None = None,
        generator=None,
        device=None,
    ):
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
            raise ValueError(f"batch_size should be a positive integer, got {batch_size!r}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.collate_fn = collate_fn
        self.device = device
        # Made once, so that successive epochs draw successive (different) orders.
        self.generator = _rng(generator) if generator is not None else None

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _order(self) -> np.ndarray:
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        return _rng(self.generator).permutation(n)

    def __iter__(self):
        order = self._order()
        n = len(order)
        stop = n - n % self.batch_size if self.drop_last else n
        for start in range(0, stop, self.batch_size):
            samples = [self.dataset[int(i)] for i in order[start:start + self.batch_size]]
            if self.collate_fn is not None:
                yield self.collate_fn(samples)
            else:
                yield default_collate(samples, self.device)
