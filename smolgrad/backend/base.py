"""The interface every backend implements: allocate/upload, download, run kernels;
plus the counters (`stats`) and the SMOLGRAD_DEBUG kernel log they share."""

from __future__ import annotations

import os
import sys
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from ..dtypes import DType
from ..engine.kernel import DEFAULT_MAX_BUFFERS, Kernel

STAT_KEYS = (
    "kernels",  # fused kernels run (one Kernel of the schedule)
    "dispatches",  # compute dispatches (a long reduction takes two)
    "kernels_compiled",  # shader pipelines compiled (webgpu), kernel plans built (numpy)
    "pipeline_cache_hits",  # kernels that reused a compiled pipeline or plan
    "bytes_allocated",  # bytes of device buffers that exist now (in use or pooled)
    "peak_bytes",  # the most bytes_allocated has been
    "submits",  # command buffers submitted (webgpu)
    "pool_hits",  # buffers reused from the pool (webgpu)
    "readbacks",  # copies of device buffers to the host (webgpu; synchronize counts one)
)


def debug_level() -> int:
    try:
        return int(os.environ.get("SMOLGRAD_DEBUG", "0") or 0)
    except ValueError:
        return 0


def index_out_of_range(op: str, dim: int, size: int, index: int, on_device: bool) -> IndexError:
    """The error of a gather/scatter-add index outside [0, size): the same on every device;
    `on_device` says it was found by a kernel (and reported when the host read back)."""
    found = (
        ", detected on the device (reported at the first readback after the kernel ran; reading a "
        "value computed from it raises this again)"
        if on_device
        else ""
    )
    valid = f"0 to {size - 1}" if size else "none: the dimension is empty"
    return IndexError(
        f"index out of range in {op} (dimension size {size}): index {index} is out of bounds for dimension "
        f"{dim} with size {size}{found}. The index tensor was probably computed: check the values it "
        f"produces (valid: {valid})"
    )


class Backend(ABC):
    """A device that stores buffers and runs kernel lists.

    Buffers are opaque to the rest of smolgrad; a buffer is freed (or returned to a
    pool) when the last reference to it goes away."""

    name: str
    max_storage_buffers: int = DEFAULT_MAX_BUFFERS  # per kernel, outputs included

    def __init__(self) -> None:
        self.stats: dict[str, int] = dict.fromkeys(STAT_KEYS, 0)

    def reset_stats(self) -> None:
        """Zero the counters; peak_bytes restarts from the bytes allocated now."""
        for key in STAT_KEYS:
            if key not in ("bytes_allocated", "peak_bytes"):
                self.stats[key] = 0
        self.stats["peak_bytes"] = self.stats["bytes_allocated"]

    def _allocated(self, nbytes: int) -> None:
        self.stats["bytes_allocated"] += nbytes
        self.stats["peak_bytes"] = max(self.stats["peak_bytes"], self.stats["bytes_allocated"])

    @abstractmethod
    def upload(self, flat: np.ndarray, dtype: DType) -> Any:
        """Store a 1-D host array of `dtype` and return the buffer."""

    @abstractmethod
    def write(self, buf: Any, flat: np.ndarray, dtype: DType) -> None:
        """Overwrite `buf` (from `upload` of as many elements) with a 1-D host array of
        `dtype`, ordered after the work already submitted."""

    @abstractmethod
    def download(self, buf: Any, dtype: DType, offset: int, count: int) -> np.ndarray:
        """Return elements [offset, offset+count) of `buf` as a new 1-D host array."""

    @abstractmethod
    def run(self, kernels: list[Kernel], buffers: list) -> None:
        """Run `kernels` in order over the slots `buffers` (see engine/kernel.py). An output
        slot that holds None gets a new buffer; one that holds a buffer is written into
        (step capture's static memory plan); an assign's output is its target's buffer."""

    def run_program(self, kernels: list[Kernel], buffers: list, memo: dict) -> None:
        """Run the kernel list of a captured step (engine/capture.py) as `run` does. `memo`
        belongs to that program: a backend may keep there what it can work out once for
        every run (the WebGPU backend keeps its dispatches: pipelines, bindings, grids)."""
        self.run(kernels, buffers)

    def empty_cache(self) -> None:
        """Release the unused buffers kept for reuse (none by default)."""

    def synchronize(self) -> None:
        """Wait until all submitted work has finished."""

    def info(self) -> dict:
        """A description of the device for `smolgrad.devices()`."""
        return {"name": self.name}

    def log_kernel(self, k: Kernel, size: int, seconds: float | None = None, source: str | None = None) -> None:
        """With SMOLGRAD_DEBUG=1 print one line per dispatched kernel; with 2 also its source."""
        level = debug_level()
        if level < 1:
            return
        timing = f"{seconds * 1e3:9.3f} ms" if seconds is not None else "   time n/a"
        outs = ", ".join(f"{o.shape}" for o in k.outs)
        print(
            f"[smolgrad {self.name}] {k.name:<40} ops={','.join(k.fused_ops) or '-'} out={outs} "
            f"global={size} {timing}",
            file=sys.stderr,
        )
        if level >= 2 and source:
            print(source, file=sys.stderr)
