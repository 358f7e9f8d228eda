"""Replay: run a pure function of tensors from a kernel list recorded on an earlier call.

A training loop calls some functions with inputs of the same shapes every step: an
optimizer's update is the clearest case. Building their lazy graph and scheduling it
costs Python time on every call, though the kernels come out the same. A `Replay`
records the kernels of the first call and afterwards runs them on the new inputs
directly: no graph, no scheduling.

What may be replayed: `fn(*tensors)` must build its outputs from its input tensors with
lazy Tensor ops only, the same ops for the same key and input layouts. It must not read
other tensors, the host (`item`, `numpy`), or Python values that change between calls
unless they are part of the key. A recording whose kernels read a buffer that is not an
input is not kept, so a function that captures a tensor runs eagerly, correctly, every
time; a Python value it bakes in without putting it in the key is the caller's bug.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Hashable, Sequence

from ..autograd import no_grad
from ..device import get_backend
from ..lazy import LazyBuffer, realize
from ..ops import Op
from ..tensor import Tensor
from ..view import View
from . import realize as engine
from .kernel import Kernel
from .schedule import fusion_enabled, schedule


@dataclass(frozen=True)
class _Recording:
    """Kernels over slots; which slot each input fills, and each output's slot and view."""

    slots: int  # how many slots the kernels use
    input_slots: tuple[int | None, ...]  # slot of each distinct input buffer (None: not read)
    kernels: list[Kernel]
    outputs: tuple[tuple, ...]  # (slot or None, input or None, shape, dtype, view or None) of each


def _layout(lb: LazyBuffer) -> tuple:
    return (lb.base.shape, lb.dtype, lb.arg if lb.op is Op.VIEW else None)


class Replay:
    """A cache of recorded kernel lists for one function, under caller-given keys.

    `replay(key, fn, tensors)` returns fn(*tensors) as a list of tensors, realized. The
    key must determine everything fn does besides the tensors' values; the input shapes,
    dtypes, views and devices are added to it here."""

    def __init__(self, max_entries: int = 16):
        self.max_entries = max_entries
        self._recordings: OrderedDict[Hashable, _Recording | None] = OrderedDict()
        self.recorded = 0  # recordings made (kept or not); replays reuse them
        self.replayed = 0

    def __call__(self, key: Hashable, fn: Callable[..., Sequence[Tensor]], tensors: Sequence[Tensor]) -> list[Tensor]:
        lbs = [t.lazydata for t in tensors]
        realize(*lbs)
        device = lbs[0].device if lbs else None
        if any(lb.base.realized is None for lb in lbs) or any(lb.device != device for lb in lbs):
            # a constant input (an unrealized broadcast) or mixed devices: not replayable
            return self._eager(fn, tensors)
        bases: list[LazyBuffer] = []  # the inputs' distinct buffers, in order: the first slots
        slots: dict[int, int] = {}  # id(base) -> its slot (inputs sharing a buffer share one)
        for lb in lbs:
            if id(lb.base) not in slots:
                slots[id(lb.base)] = len(bases)
                bases.append(lb.base)
        sharing = tuple(slots[id(lb.base)] for lb in lbs)
        full_key = (key, device, fusion_enabled(), sharing, tuple(_layout(lb) for lb in lbs))
        recording = self._recordings.get(full_key)
        if recording is not None:
            self._recordings.move_to_end(full_key)
            self.replayed += 1
            return self._run(recording, bases, device)
        outs, recording = self._record(fn, tensors, slots, device)
        self._recordings[full_key] = recording
        if len(self._recordings) > self.max_entries:
            self._recordings.popitem(last=False)
        return outs

    @staticmethod
    def _eager(fn, tensors) -> list[Tensor]:
        with no_grad():
            outs = list(fn(*tensors))
        realize(*[o.lazydata for o in outs])
        return outs

    def _record(self, fn, tensors, slots: dict[int, int], device: str) -> tuple[list[Tensor], _Recording | None]:
        """Run fn eagerly, keeping its kernel list if it can be replayed."""
        self.recorded += 1
        with no_grad():
            outs = list(fn(*tensors))
        out_lbs = [o.lazydata for o in outs]
        backend = get_backend(device)
        kernels, nodes = schedule([lb.base for lb in out_lbs], backend.max_storage_buffers)
        recording = self._recording(kernels, nodes, slots, out_lbs, device)
        if kernels:
            engine.run(device, kernels, nodes)
        return outs, recording

    @staticmethod
    def _recording(
        kernels: list[Kernel], nodes: list[LazyBuffer], slots: dict[int, int], out_lbs: list[LazyBuffer], device: str
    ) -> _Recording | None:
        """`slots` maps the inputs' bases to 0, 1, ...; None if the kernels read anything else."""
        index = {id(n): i for i, n in enumerate(nodes)}
        input_slots = [None] * len(slots)
        for i, n in enumerate(nodes):
            if n.realized is not None:
                if id(n) not in slots:
                    return None  # reads a buffer that is not an input
                input_slots[slots[id(n)]] = i
        if any(k.kind == "assign" for k in kernels):
            return None  # it writes into a buffer it was given: the inputs' must stay as they are
        outputs = []
        for lb in out_lbs:
            slot = index.get(id(lb.base))
            if id(lb.base) in slots:  # an input, passed through
                slot = None
            elif slot is None or lb.device != device:
                return None  # a constant, or a value from outside the inputs and results
            view = lb.arg if lb.op is Op.VIEW else None
            outputs.append((slot, slots.get(id(lb.base)), lb.base.shape, lb.dtype, view))
        return _Recording(len(nodes), tuple(input_slots), kernels, tuple(outputs))

    def _run(self, rec: _Recording, bases: list[LazyBuffer], device: str) -> list[Tensor]:
        buffers: list = [None] * rec.slots
        for base, slot in zip(bases, rec.input_slots):
            if slot is not None:
                buffers[slot] = base.realized
        get_backend(device).run(rec.kernels, buffers)
        results = []
        for slot, given, shape, dtype, view in rec.outputs:
            node = bases[given] if slot is None else LazyBuffer(shape, dtype, device, Op.LOAD, realized=buffers[slot])
            results.append(Tensor._from_lazy(node if view is None else node._view(view)))
        return results
