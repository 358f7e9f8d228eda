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

from .autograd import no_grad
from .device import get_backend
from .lazy import LazyBuffer, realize
from .ops import Op
from .scheduler import Kernel, _instantiate, _template, fusion_enabled, schedule
from .tensor import Tensor
from .view import View


@dataclass(frozen=True)
class _Recording:
    """Kernels over node slots: inputs' bases first, then the nodes the kernels compute."""

    inputs: int  # slots [0, inputs) are the inputs' base nodes
    computed: tuple[tuple, ...]  # (shape, dtype, op, arg) of each later slot
    template: list  # scheduler._template of the kernel list
    outputs: tuple[tuple[int, View | None], ...]  # (slot, view or None) of each output


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
        kernels = schedule([lb.base for lb in out_lbs], backend.max_storage_buffers)
        if kernels:
            backend.run(kernels)
        for k in kernels:
            for out in k.outs:
                out.srcs = ()
        return outs, self._recording(kernels, dict(slots), out_lbs, device)

    @staticmethod
    def _recording(
        kernels: list[Kernel], slots: dict[int, int], out_lbs: list[LazyBuffer], device: str
    ) -> _Recording | None:
        """`slots` maps the inputs' bases to slots 0, 1, ...; computed nodes are added."""
        n_inputs = len(slots)
        computed = []
        for k in kernels:
            if k.kind == "assign":
                return None  # it writes into a buffer it was given: the inputs' must stay as they are
            for s in k.srcs:
                if id(s.node) not in slots:
                    return None  # reads a buffer that is not an input
            for o in k.outs:
                slots[id(o)] = n_inputs + len(computed)
                computed.append((o.shape, o.dtype, o.op, o.arg))
        outputs = []
        for lb in out_lbs:
            slot = slots.get(id(lb.base))
            if slot is None or lb.device != device:
                return None  # a constant, or a value from outside the inputs
            outputs.append((slot, lb.arg if lb.op is Op.VIEW else None))
        return _Recording(n_inputs, tuple(computed), _template(kernels, slots), tuple(outputs))

    def _run(self, rec: _Recording, bases: list[LazyBuffer], device: str) -> list[Tensor]:
        nodes = bases + [LazyBuffer(shape, dtype, device, op, (), arg) for shape, dtype, op, arg in rec.computed]
        kernels = _instantiate(rec.template, nodes)
        if kernels:
            get_backend(device).run(kernels)
        return [Tensor._from_lazy(nodes[slot] if view is None else nodes[slot]._view(view)) for slot, view in rec.outputs]
