"""The IDX file format of MNIST (http://yann.lecun.com/exdb/mnist/), read with NumPy.

An IDX file is: two zero bytes, a type code, the number of dims; each dim as a
big-endian uint32; then the values, big-endian, in C order."""

from __future__ import annotations

import gzip
import math
import os
import zlib

import numpy as np

from .download import DataError

IDX_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def decompress(data: bytes, name: str = "data") -> bytes:
    """gunzip `data` if it is gzip-compressed (by its magic bytes), else return it."""
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return gzip.decompress(data)
    except (EOFError, OSError, zlib.error) as e:  # truncated stream, bad CRC or length
        raise DataError(
            f"{name} is not a valid gzip file: it is truncated or corrupt ({type(e).__name__}: {e}). "
            "Delete it and download it again."
        ) from None


def parse_idx(data: bytes, name: str = "data") -> np.ndarray:
    """The array in uncompressed IDX bytes; a DataError if they are malformed."""
    if len(data) < 4:
        raise DataError(f"{name} is too short to be an IDX file ({len(data)} bytes; the header alone is 4+)")
    if data[0] != 0 or data[1] != 0 or data[2] not in IDX_TYPES:
        raise DataError(
            f"{name} is not an IDX file: its magic number is {data[:4].hex()}, expected 0000 then a "
            f"type code ({', '.join(f'{c:02x}' for c in IDX_TYPES)}) and the number of dims"
        )
    dtype, ndim = IDX_TYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{name} is truncated: its header needs {header} bytes for {ndim} dims, got {len(data)}")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = header + math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "longer than its header says"
        raise DataError(
            f"{name} is {what}: shape {shape} of {dtype.name} needs {expected} bytes, the file has {len(data)}. "
            "Delete it and download it again."
        )
    values = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return values.astype(dtype.newbyteorder("="))  # native byte order, and a writable copy


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file, gzip-compressed or not, into a NumPy array."""
    with open(path, "rb") as f:
        data = f.read()
    name = os.fspath(path)
    return parse_idx(decompress(data, name), name)
