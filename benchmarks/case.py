"""A benchmark case: what to run, how big it is, and how its work is counted."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

# Sizes are capped on a software adapter (lavapipe runs shaders on the CPU, at well under
# 1 GB/s and about 2 GFLOP/s): elementwise, reduction and row cases stop at this many
# elements there, so that a full run takes minutes rather than an hour.
SOFTWARE_MAX_ELEMENTS = 4 * 2**20


@dataclass
class Case:
    """One benchmark case, run on every target.

    `build(target)` does the set-up (allocates and uploads inputs, creates modules) and
    returns the timed step: a callable that starts the work and returns the tensors to
    finish (realise and synchronise). `flops` and `bytes` count the work of one step by
    the model stated in `model`; `unit` picks which one the throughput column shows
    (GFLOP/s or GB/s). `items` (samples or tokens per step) gives end-to-end cases a
    rate. `series` and `size` place the case on the plot (throughput against size)."""

    suite: str
    name: str
    series: str
    size: int
    shape: tuple
    build: Callable[[Any], Callable[[], Any]]
    unit: str                      # "GFLOP/s" or "GB/s"
    model: str                     # how flops and bytes are counted
    flops: float | None = None
    bytes: float | None = None
    items: float | None = None
    item_name: str | None = None   # "samples" or "tokens"
    quick: bool = False
    elements: int = 0              # largest tensor, for the software-adapter cap
    gpu_time: bool = True          # False: time the whole step by the wall clock (end-to-end cases)
    skip: Callable[[Any], str | None] = field(default=lambda target: None)

    @property
    def id(self) -> str:
        return f"{self.suite}/{self.name}"
