"""Data types and PyTorch-style type promotion."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=True)
class DType:
    """A tensor element type. `np` is the NumPy dtype used on the numpy device;
    `wgsl` is the 32-bit WGSL type webgpu computes in (None: not supported there);
    float16 computes in f32 and is stored as f16 (see backend/wgsl.storage_type)."""

    name: str
    np: np.dtype
    wgsl: str | None
    priority: int  # position in the promotion lattice bool < int < float

    @property
    def is_floating_point(self) -> bool:
        return self.name.startswith("float")

    @property
    def is_int(self) -> bool:
        return self.name.startswith("int")

    @property
    def is_bool(self) -> bool:
        return self.name == "bool"

    @property
    def itemsize(self) -> int:
        return self.np.itemsize

    def __repr__(self) -> str:
        return f"smolgrad.{self.name}"


bool_ = DType("bool", np.dtype(np.bool_), "u32", 0)
int32 = DType("int32", np.dtype(np.int32), "i32", 1)
int64 = DType("int64", np.dtype(np.int64), "i32", 2)  # stored as i32 on webgpu, range-checked
# stored as 16-bit floats, computed in float32 and rounded to float16 after each op
float16 = DType("float16", np.dtype(np.float16), "f32", 3)
float32 = DType("float32", np.dtype(np.float32), "f32", 4)
float64 = DType("float64", np.dtype(np.float64), None, 5)  # numpy device only

ALL = (bool_, int32, int64, float16, float32, float64)
_BY_NAME = {d.name: d for d in ALL}
_BY_NAME.update(
    {"bool_": bool_, "half": float16, "float": float32, "double": float64, "int": int32, "long": int64}
)

default_float = float32


def to_dtype(x) -> DType:
    """Turn a smolgrad dtype, a NumPy dtype, a Python type or a name into a DType."""
    if isinstance(x, DType):
        return x
    if x is float:
        return default_float
    if x is int:
        return int64
    if x is bool:
        return bool_
    if isinstance(x, str) and x in _BY_NAME:
        return _BY_NAME[x]
    try:
        npd = np.dtype(x)
    except TypeError:
        raise TypeError(f"unsupported dtype {x!r}; use one of {', '.join(d.name for d in ALL)}") from None
    if npd == np.bool_:
        return bool_
    if npd.kind in "iu":
        return int32 if npd.itemsize <= 4 and npd.kind == "i" else int64
    if npd.kind == "f":
        return {2: float16, 8: float64}.get(npd.itemsize, float32)
    raise TypeError(f"unsupported dtype {x!r}; use one of {', '.join(d.name for d in ALL)}")


def promote(a: DType, b: DType) -> DType:
    """Result type of a binary op between two tensors (PyTorch's lattice, restricted)."""
    return a if a.priority >= b.priority else b


def promote_scalar(t: DType, scalar) -> DType:
    """Result type of tensor <op> Python scalar: a scalar only lifts the category."""
    if isinstance(scalar, bool):
        return t
    if isinstance(scalar, int):
        return int64 if t.is_bool else t
    if isinstance(scalar, float):
        return t if t.is_floating_point else default_float
    raise TypeError(f"unsupported scalar operand of type {type(scalar).__name__}")
