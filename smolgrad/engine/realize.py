"""The realize loop: schedule the graph that some nodes need, run it on their device, and
hand the buffers to the computed nodes. Step capture (capture.py) watches this loop."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..device import get_backend
from ..ops import Op
from .kernel import Kernel
from .schedule import schedule

if TYPE_CHECKING:
    from ..lazy import LazyBuffer

# A capture being recorded (capture.py): told of every kernel list run, before it runs.
observers: list = []


def realize(*lbs: LazyBuffer) -> None:
    """Compute every given node that is not yet computed, one backend run per device."""
    by_device: dict[str, list[LazyBuffer]] = {}
    for lb in lbs:
        base = lb.base
        if base.realized is None and base.op is not Op.CONST:
            by_device.setdefault(base.device, []).append(base)
    for device, bases in by_device.items():
        backend = get_backend(device)
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
