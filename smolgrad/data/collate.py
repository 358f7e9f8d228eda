"""Collating samples into batches: default_collate (tensors, in this process) and the
NumPy-only form that DataLoader worker processes use (the main process then makes the
tensors, so the workers never touch a device)."""

from __future__ import annotations

import numbers

import numpy as np


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
    if isinstance(first, (dict, tuple, list)) and not isinstance(first, (str, bytes)):
        return _fields(batch, lambda column: default_collate(column, device))
    leaf = _collate_leaf(batch)
    return Tensor(leaf, device=device) if isinstance(leaf, np.ndarray) else leaf


def collate_numpy(batch: list):
    """default_collate's batch with NumPy arrays where it has tensors (smolgrad tensors
    on the numpy device are read into arrays; tensors on a GPU cannot be read in a
    worker process and are an error)."""
    from ..tensor import Tensor

    if not batch:
        raise ValueError("default_collate: cannot collate an empty batch")
    first = batch[0]
    if isinstance(first, Tensor):
        devices = sorted({str(t.device) for t in batch if isinstance(t, Tensor)})
        if devices != ["numpy"]:
            raise TypeError(
                f"default_collate in a DataLoader worker: the samples are tensors on {devices}; worker "
                "processes cannot use a GPU. Return NumPy arrays (or numpy-device tensors) from the data "
                "set, or use num_workers=0"
            )
        return collate_numpy([t.detach().numpy() for t in batch])
    if isinstance(first, (dict, tuple, list)) and not isinstance(first, (str, bytes)):
        return _fields(batch, collate_numpy)
    return _collate_leaf(batch)


def to_tensors(batch, device=None):
    """The NumPy arrays in a batch from `collate_numpy` as tensors on `device`."""
    from ..tensor import Tensor

    if isinstance(batch, np.ndarray):
        return Tensor(batch, device=device)
    if isinstance(batch, dict):
        return {key: to_tensors(value, device) for key, value in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # a namedtuple
        return type(batch)(*(to_tensors(v, device) for v in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_tensors(v, device) for v in batch)
    return batch


def default_convert(data, device=None):
    """NumPy arrays (also inside tuples, lists and dicts) as tensors; other values as they are."""
    return to_tensors(data, device)


def _collate_leaf(batch: list):
    """A batch of arrays, numbers or strings: one stacked array, or the list of strings."""
    first = batch[0]
    if isinstance(first, (np.ndarray, np.generic)):
        arrays = [np.asarray(b) for b in batch]
        if any(a.shape != arrays[0].shape for a in arrays):
            shapes = sorted({a.shape for a in arrays})
            raise RuntimeError(f"default_collate: samples have different shapes {shapes}; they must match to be stacked")
        return np.stack(arrays)
    if isinstance(first, bool):
        return np.array(batch, dtype=np.bool_)
    if isinstance(first, numbers.Integral):
        return np.array(batch, dtype=np.int64)
    if isinstance(first, numbers.Real):
        return np.array(batch, dtype=np.float32)
    if isinstance(first, (str, bytes)):
        return list(batch)
    raise TypeError(
        f"default_collate: don't know how to batch samples of type {type(first).__name__}; "
        "return NumPy arrays, numbers, tensors, or tuples/lists/dicts of them, or pass a collate_fn"
    )


def _fields(batch: list, collate):
    """Collate dicts key by key and tuples/lists position by position."""
    first = batch[0]
    if isinstance(first, dict):
        return {key: collate([b[key] for b in batch]) for key in first}
    if any(len(b) != len(first) for b in batch):
        raise RuntimeError("default_collate: each sample in the batch must have the same number of fields")
    fields = [collate(list(column)) for column in zip(*batch)]
    if isinstance(first, tuple) and hasattr(first, "_fields"):  # a namedtuple
        return type(first)(*fields)
    return tuple(fields) if isinstance(first, tuple) else fields
