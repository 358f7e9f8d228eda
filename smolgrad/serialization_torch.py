"""Reading PyTorch checkpoints: the zip files `torch.save` writes (.pt, .pth, .bin).

Such a file holds `data.pkl`, a pickle of the saved object whose tensors refer to
storages kept as raw bytes beside it (`data/<key>`). The pickle is read with a
restricted unpickler, as `torch.load(weights_only=True)` reads it: it builds only
tensors, dicts (OrderedDict too), lists, tuples, sets, numbers, strings and None, and
refuses any other class (a pickled nn.Module, say) with an error, so loading never runs
the file's code.

Tensors keep their values exactly. Those of a dtype smolgrad lacks are widened:
bfloat16 to float32, int8, uint8 and int16 to int32. The legacy (non-zip) format of
torch < 1.6 is refused with an error saying how to convert it."""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from typing import Any

import numpy as np

from . import dtypes
from .tensor import Tensor

ZIP_MAGIC = b"PK\x03\x04"

# torch's storage classes: the NumPy dtype of their bytes, and the dtype smolgrad keeps them in
_STORAGES = {
    "DoubleStorage": (np.float64, dtypes.float64),
    "FloatStorage": (np.float32, dtypes.float32),
    "HalfStorage": (np.float16, dtypes.float16),
    "BFloat16Storage": (np.uint16, dtypes.float32),  # (the high half of a float32)
    "LongStorage": (np.int64, dtypes.int64),
    "IntStorage": (np.int32, dtypes.int32),
    "ShortStorage": (np.int16, dtypes.int32),
    "CharStorage": (np.int8, dtypes.int32),
    "ByteStorage": (np.uint8, dtypes.int32),
    "BoolStorage": (np.bool_, dtypes.bool_),
}


class _StorageType:
    """Stands for one of torch's storage classes in the pickle."""

    def __init__(self, name: str):
        self.np, self.dtype = _STORAGES[name]


class _Loaded:
    """A tensor's values and the smolgrad dtype to keep them in, until the pickle is read."""

    def __init__(self, values: np.ndarray, dtype: dtypes.DType):
        self.values, self.dtype = values, dtype


def _rebuild_tensor(storage: tuple, offset: int, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    """torch._utils._rebuild_tensor_v2: the elements of a storage at (offset, size, stride)."""
    flat, dtype = storage
    size, stride = tuple(size), tuple(stride)
    if 0 in size:
        values = np.empty(size, flat.dtype)
    else:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if offset < 0 or any(s < 0 for s in stride) or last >= len(flat):
            raise pickle.UnpicklingError(f"a tensor of size {size} and stride {stride} at offset {offset} reaches "
                                         f"outside its storage of {len(flat)} elements")
        itemsize = flat.dtype.itemsize
        values = np.array(np.lib.stride_tricks.as_strided(flat[offset:], size, tuple(s * itemsize for s in stride)))
    if flat.dtype == np.uint16 and dtype == dtypes.float32:  # bfloat16: its bits are a float32's high half
        values = (values.astype(np.uint32) << 16).view(np.float32)
    return _Loaded(values.astype(dtype.np, copy=False), dtype)


def _rebuild_parameter(data, requires_grad, backward_hooks, *rest):
    """torch._utils._rebuild_parameter: a Parameter's data, as a plain tensor (a state dict's)."""
    return data


_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    **{("torch", name): _StorageType(name) for name in _STORAGES},
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, archive: zipfile.ZipFile, prefix: str, big_endian: bool):
        super().__init__(file)
        self.archive, self.prefix, self.big_endian = archive, prefix, big_endian
        self.storages: dict[str, np.ndarray] = {}

    def find_class(self, module: str, name: str):
        if module == "__builtin__":  # (protocol 2 names Python 3's builtins so)
            module = "builtins"
        found = _GLOBALS.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(
                f"refuses {module}.{name}: only tensors, dicts, lists, tuples, numbers and strings are read (as "
                "torch.load(weights_only=True) does); save a state_dict rather than a whole module or object"
            )
        return found

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
        _, kind, key, _location, numel = pid
        flat = self.storages.get(key)
        if flat is None:  # (tensors may share a storage)
            raw = self.archive.read(f"{self.prefix}data/{key}")
            order = np.dtype(kind.np).newbyteorder(">" if self.big_endian else "<")
            flat = np.frombuffer(raw, order).astype(kind.np)
            if len(flat) < numel:
                raise pickle.UnpicklingError(f"storage {key} has {len(flat)} elements, the pickle says {numel}")
            self.storages[key] = flat
        return flat, kind.dtype


def is_torch_checkpoint(raw: bytes) -> bool:
    """Whether the file's first bytes are a zip file's (torch.save's format)."""
    return raw[:4] == ZIP_MAGIC


def load_torch(raw: bytes, device: str) -> Any:
    """The object a PyTorch checkpoint (the file's bytes, `raw`) holds, with its tensors as
    smolgrad tensors on `device`. Raises pickle.UnpicklingError or zipfile.BadZipFile for
    a file it cannot read."""
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("data.pkl") and n.count("/") <= 1]
        if len(pickles) != 1:
            raise pickle.UnpicklingError("a zip file, but not a PyTorch checkpoint (no single data.pkl in it)")
        prefix = pickles[0][: -len("data.pkl")]
        order = f"{prefix}byteorder"
        big = order in archive.namelist() and archive.read(order).strip() == b"big"
        with archive.open(pickles[0]) as f:
            obj = _Unpickler(f, archive, prefix, big).load()
    return _to_tensors(obj, device)


def _to_tensors(obj: Any, device: str) -> Any:
    """obj with every rebuilt tensor made a Tensor on device."""
    if isinstance(obj, _Loaded):
        return Tensor(obj.values, dtype=obj.dtype, device=device)
    if isinstance(obj, dict):
        out = type(obj)((k, _to_tensors(v, device)) for k, v in obj.items())
        if hasattr(obj, "_metadata"):  # (a state dict's module versions)
            out._metadata = obj._metadata
        return out
    if isinstance(obj, (list, tuple, set, frozenset)):
        return type(obj)(_to_tensors(v, device) for v in obj)
    return obj
