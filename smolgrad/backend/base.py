"""The interface every backend implements: allocate/upload, download, run kernels."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from ..dtypes import DType
from ..scheduler import Kernel


class Backend(ABC):
    """A device that stores buffers and runs kernel lists.

    Buffers are opaque to the rest of smolgrad; a buffer is freed (or returned to a
    pool) when the last reference to it goes away."""

    name: str

    @abstractmethod
    def upload(self, flat: np.ndarray, dtype: DType) -> Any:
        """Store a 1-D host array of `dtype` and return the buffer."""

    @abstractmethod
    def download(self, buf: Any, dtype: DType, offset: int, count: int) -> np.ndarray:
        """Return elements [offset, offset+count) of `buf` as a new 1-D host array."""

    @abstractmethod
    def run(self, kernels: list[Kernel]) -> None:
        """Run `kernels` in order; set `k.out.realized` to each kernel's new buffer."""

    def synchronize(self) -> None:
        """Wait until all submitted work has finished."""

    def info(self) -> dict:
        """A description of the device for `smolgrad.devices()`."""
        return {"name": self.name}
