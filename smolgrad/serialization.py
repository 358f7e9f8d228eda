"""smolgrad.save / smolgrad.load: state dicts in the safetensors format, without pickle.

A file is an 8-byte little-endian header size N, N bytes of JSON header, then the raw
little-endian bytes of every tensor. The header maps each tensor's name to its dtype,
shape and data_offsets (begin, end, relative to the end of the header), plus a
`__metadata__` map of strings. Loading parses JSON and copies bytes: it never runs code.

A model state dict (name -> Tensor) is stored under its names, so other safetensors
readers see the same tensors. Anything nested (an optimizer state dict: dicts, lists,
tuples, numbers, strings, None) is kept in `__metadata__["smolgrad.structure"]` as JSON
in which each tensor is a reference {"__tensor__": name}.

Saving writes a temporary file in the target's directory, fsyncs it, and renames it over
the target, so a crash mid-save leaves the old checkpoint (or none), never a torn one.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import tempfile
import zipfile
from typing import Any

import numpy as np

from . import dtypes, serialization_torch
from .device import canonical
from .tensor import Tensor

STRUCTURE_KEY = "smolgrad.structure"
MAX_HEADER_BYTES = 100_000_000  # the limit of the reference safetensors implementation

_TO_SAFETENSORS = {
    dtypes.float16: "F16",
    dtypes.float32: "F32",
    dtypes.float64: "F64",
    dtypes.int32: "I32",
    dtypes.int64: "I64",
    dtypes.bool_: "BOOL",
}
_FROM_SAFETENSORS = {code: dt for dt, code in _TO_SAFETENSORS.items()}


class CheckpointError(ValueError):
    """The file is not a valid safetensors checkpoint (corrupt, truncated, or not one at all)."""


# --------------------------------------------------------------------------- save
def save(obj: Any, path: str | os.PathLike) -> None:
    """Save a state dict (or any nesting of dicts, lists and tuples of tensors, numbers,
    strings, bools and None) to `path` in the safetensors format, atomically."""
    tensors: dict[str, Tensor] = {}
    structure = _encode(obj, "", tensors)
    names = sorted(tensors)
    arrays = _host_arrays([tensors[n] for n in names])

    header: dict[str, Any] = {
        "__metadata__": {"format": "smolgrad", STRUCTURE_KEY: json.dumps(structure, allow_nan=False)}
    }
    offset = 0
    for name, arr in zip(names, arrays):
        header[name] = {
            "dtype": _TO_SAFETENSORS[tensors[name].dtype],
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + arr.nbytes],
        }
        offset += arr.nbytes
    header_bytes = json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")
    header_bytes += b" " * (-len(header_bytes) % 8)  # align the data to 8 bytes, as safetensors does

    def write(f) -> None:
        f.write(len(header_bytes).to_bytes(8, "little"))
        f.write(header_bytes)
        for arr in arrays:
            f.write(arr.tobytes())

    _atomic_write(os.fspath(path), write)


def _encode(obj: Any, path: str, tensors: dict[str, Tensor], names: dict[int, str] | None = None) -> Any:
    """`obj` as JSON-able data, with each tensor replaced by a reference into `tensors`
    (named after where it sits; one tensor object found twice is stored once)."""
    names = {} if names is None else names
    if isinstance(obj, Tensor):
        if id(obj) not in names:
            name = path or "tensor"
            if name.startswith("__") or name in tensors:
                name = f"{name}#{len(tensors)}"
            tensors[name] = obj
            names[id(obj)] = name
        return {"__tensor__": names[id(obj)]}
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"__float__": repr(obj)}
    if isinstance(obj, np.generic) and obj.dtype.kind in "biuf":
        return _encode(obj.item(), path, tensors, names)
    if isinstance(obj, (list, tuple)):
        items = [_encode(v, _join(path, i), tensors, names) for i, v in enumerate(obj)]
        return items if isinstance(obj, list) else {"__tuple__": items}
    if isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise TypeError(f"smolgrad.save: dict keys must be str or int, got {type(k).__name__} key {k!r}")
            items.append([k, _encode(v, _join(path, k), tensors, names)])
        return {"__dict__": items}
    raise TypeError(
        f"smolgrad.save can't store a {type(obj).__name__}{' at ' + repr(path) if path else ''}: it stores tensors, "
        "numbers, strings, bools, None, and dicts (str or int keys), lists and tuples of them"
    )


def _join(path: str, key) -> str:
    return f"{path}.{key}" if path else str(key)


def _host_arrays(tensors: list[Tensor]) -> list[np.ndarray]:
    """The values as contiguous little-endian NumPy arrays (computed in one realize per device)."""
    if tensors:
        from . import realize

        realize(*[t.detach() for t in tensors])
    out = []
    for t in tensors:
        arr = t.detach().numpy()
        out.append(arr.astype(arr.dtype.newbyteorder("<"), order="C", copy=False))  # (keeps 0-d shapes)
    return out


def _atomic_write(path: str, write) -> None:
    """Write via a temporary file in the same directory, fsync, then rename over `path`."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _file_mode(path))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)


def _file_mode(path: str) -> int:
    """The target's current permissions, or those a new file gets (0o666 less the umask)."""
    try:
        return os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_directory(directory: str) -> None:
    """Make the rename itself durable (where the platform can open directories)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- load
def load(path: str | os.PathLike, device: str | None = None) -> Any:
    """Load what `save` stored, with tensors on `device` (default: the default device).

    A safetensors file written by another tool loads as a dict of name -> Tensor, and a
    PyTorch checkpoint (torch.save's zip format: .pt, .pth, .bin) as the object it holds,
    read without running its code (see serialization_torch). Raises CheckpointError (a
    ValueError) for a corrupt or truncated file."""
    path = os.fspath(path)
    device = canonical(device)
    with open(path, "rb") as f:
        raw = f.read()
    if serialization_torch.is_torch_checkpoint(raw):
        try:
            return serialization_torch.load_torch(raw, device)
        except (pickle.UnpicklingError, zipfile.BadZipFile, KeyError, EOFError, ValueError) as e:
            raise CheckpointError(f"{path}: cannot read this PyTorch checkpoint: {e}") from None
    if raw[:2] == b"\x80\x02":  # a pickle: torch.save's format before PyTorch 1.6
        raise CheckpointError(f"{path}: a PyTorch checkpoint in the legacy (pre-1.6) format, which smolgrad does not "
                              "read; load it in PyTorch and save it again with torch.save (the zip format) or "
                              "safetensors.torch.save_file")
    header, data_start = _parse_header(raw, path)
    metadata = header.pop("__metadata__", None) or {}
    arrays = _read_tensors(header, memoryview(raw)[data_start:], path)
    tensors = {name: Tensor(arr, dtype=_FROM_SAFETENSORS[header[name]["dtype"]], device=device) for name, arr in arrays.items()}
    if STRUCTURE_KEY not in metadata:
        return tensors
    try:
        structure = json.loads(metadata[STRUCTURE_KEY])
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: the stored structure is not valid JSON ({e})") from None
    used: set[str] = set()
    obj = _decode(structure, tensors, used, path)
    unused = sorted(set(tensors) - used)
    if unused:
        raise CheckpointError(f"{path}: tensors {unused[:5]} are stored but the structure does not refer to them")
    return obj


def _parse_header(raw: bytes, path: str) -> tuple[dict[str, Any], int]:
    if len(raw) < 8:
        raise CheckpointError(
            f"{path}: file is {len(raw)} bytes, too short for a safetensors checkpoint (it starts with an 8-byte "
            "header size); the file is truncated or not a checkpoint"
        )
    n = int.from_bytes(raw[:8], "little")
    if n > MAX_HEADER_BYTES:
        raise CheckpointError(
            f"{path}: header size field says {n} bytes (limit {MAX_HEADER_BYTES}); the file is corrupt or not a "
            "safetensors checkpoint"
        )
    if 8 + n > len(raw):
        raise CheckpointError(
            f"{path}: header size field says {n} bytes but only {len(raw) - 8} follow; the file is truncated or corrupt"
        )
    try:
        header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: the header is not valid JSON ({e}); the file is corrupt or not a checkpoint") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: the header is JSON but not an object; the file is not a safetensors checkpoint")
    metadata = header.get("__metadata__")
    if metadata is not None and not (
        isinstance(metadata, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    ):
        raise CheckpointError(f"{path}: __metadata__ must map strings to strings")
    return header, 8 + n


def _read_tensors(header: dict[str, Any], data: memoryview, path: str) -> dict[str, np.ndarray]:
    """Check every entry against the data section and return the arrays (copies)."""
    spans = []
    for name, info in header.items():
        where = f"{path}: tensor {name!r}"
        if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= set(info):
            raise CheckpointError(f"{where}: entry must have dtype, shape and data_offsets")
        if info["dtype"] not in _FROM_SAFETENSORS:
            raise CheckpointError(
                f"{where}: dtype {info['dtype']!r} is not one smolgrad reads ({', '.join(_FROM_SAFETENSORS)})"
            )
        shape, offsets = info["shape"], info["data_offsets"]
        if not isinstance(shape, list) or not all(type(s) is int and s >= 0 for s in shape):
            raise CheckpointError(f"{where}: shape {shape!r} is not a list of non-negative integers")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)):
            raise CheckpointError(f"{where}: data_offsets {offsets!r} is not a pair of integers")
        begin, end = offsets
        if not 0 <= begin <= end:
            raise CheckpointError(f"{where}: data_offsets {offsets} are not an increasing pair of non-negative integers")
        if end > len(data):
            raise CheckpointError(
                f"{where}: data ends at byte {end} but the data section has {len(data)} bytes; the file is truncated"
            )
        itemsize = _FROM_SAFETENSORS[info["dtype"]].itemsize
        if end - begin != math.prod(shape) * itemsize:
            raise CheckpointError(
                f"{where}: shape {shape} of {info['dtype']} needs {math.prod(shape) * itemsize} bytes but "
                f"data_offsets {offsets} span {end - begin}"
            )
        spans.append((begin, end))
    covered = 0
    for begin, end in sorted(spans):
        if begin != covered:
            raise CheckpointError(f"{path}: tensor data overlaps or leaves a gap at byte {covered}; the file is corrupt")
        covered = end
    if covered != len(data):
        raise CheckpointError(
            f"{path}: the tensors account for {covered} bytes of data but the file holds {len(data)}; "
            "the file is corrupt or was written incompletely"
        )
    arrays = {}
    for name, info in header.items():
        dt = _FROM_SAFETENSORS[info["dtype"]]
        begin, end = info["data_offsets"]
        np_dtype = np.dtype(np.bool_) if dt.is_bool else dt.np.newbyteorder("<")
        arr = np.frombuffer(data[begin:end], dtype=np_dtype).reshape(info["shape"])
        arrays[name] = arr.astype(dt.np)  # a native-order copy that owns its memory
    return arrays


def _decode(obj: Any, tensors: dict[str, Tensor], used: set[str], path: str) -> Any:
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, list):
        return [_decode(v, tensors, used, path) for v in obj]
    if isinstance(obj, dict) and len(obj) == 1:
        (tag, value), = obj.items()
        if tag == "__tensor__" and isinstance(value, str):
            if value not in tensors:
                raise CheckpointError(f"{path}: the structure refers to tensor {value!r}, which the file does not hold")
            used.add(value)
            return tensors[value]
        if tag == "__tuple__" and isinstance(value, list):
            return tuple(_decode(v, tensors, used, path) for v in value)
        if tag == "__float__" and value in ("inf", "-inf", "nan"):
            return float(value)
        if tag == "__dict__" and isinstance(value, list) and all(
            isinstance(kv, list) and len(kv) == 2 and isinstance(kv[0], (str, int)) for kv in value
        ):
            return {k: _decode(v, tensors, used, path) for k, v in value}
    raise CheckpointError(f"{path}: unexpected entry {str(obj)[:80]!r} in the stored structure; the file is corrupt")
