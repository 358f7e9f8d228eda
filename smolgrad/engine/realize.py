"""The realize loop: schedule the graph that some nodes need, run it on their device, and
hand the buffers to the computed nodes. Step capture (capture.py) watches this loop."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import profiler
from ..device import get_backend
from ..ops import Op
from .kernel import Kernel
from .schedule import schedule

if TYPE_CHECKING:
    from ..lazy import LazyBuffer

# Captures being recorded (capture.Recorder): told of every kernel list run (before it
# runs), of every upload and fed upload, and of every host read.
observers: list = []


def note_load(node: LazyBuffer, array) -> None:
    for observer in observers:
        observer.loaded(node, array)


def note_feed(node: LazyBuffer, producer) -> None:
    """`node` was uploaded from a value that changes at every call (a random key, a
    step's learning rate): a captured step calls `producer()` for the next value."""
    for observer in observers:
        observer.fed(node, producer)


def note_read(node: LazyBuffer) -> None:
    for observer in observers:
        observer.read(node)


def realize(*lbs: LazyBuffer) -> None:
    """Compute every given node that is not yet computed, one backend run per device."""
    by_device: dict[str, list[LazyBuffer]] = {}
    for lb in lbs:
        base = lb.base
        if base.realized is None and base.op is not Op.CONST:
            by_device.setdefault(base.device, []).append(base)
    if by_device:
        profiler.mark_graph_build()
    for device, bases in by_device.items():
        backend = get_backend(device)
        with profiler.span("schedule"):
            kernels, nodes = schedule(bases, backend.max_storage_buffers)
        if kernels:
            run(device, kernels, nodes)


def run(device: str, kernels: list[Kernel], nodes: list[LazyBuffer]) -> None:
    """Run kernels over the slots of `nodes` and give the computed nodes their buffers
    (they drop their sources, so the graph behind them can be freed)."""
    for observer in observers:
        observer.ran(device, kernels, nodes)
    buffers = [n.realized for n in nodes]
    get_backend(device).run(kernels, buffers)
    for k in kernels:
        for o in k.outs:
            node = nodes[o.slot]
            node.realized = buffers[o.slot]
            node.srcs = ()
