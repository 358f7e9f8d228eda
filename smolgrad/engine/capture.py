"""Step capture (DESIGN.md layer 4): record every kernel list that one call of a function
runs, as one program over buffer slots, and run that program again over new buffers.

A `Recorder` watches the realize loop (engine/realize.py) while the function runs. Each
node the recorded kernels read or write gets a slot; a node that was already computed
when a kernel list first read it is *external*: its buffer is given anew at each run (an
input, a parameter, a constant uploaded once). The caller (smolgrad/compile.py, which
knows tensors and modules) works out where each external buffer comes from.

A `Program` is the recording made runnable: its kernels, which slots are external, and
a static memory plan for the slots that live only inside the step (each gets an arena
buffer, reused across slots whose lifetimes do not overlap). Slots that outlive the step
(its results, new parameter values) get new buffers at each run, so what a run returns
stays valid after the next run.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections import Counter
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..device import get_backend
from . import realize as engine
from .kernel import Kernel, Operand, Out

if TYPE_CHECKING:
    from ..lazy import LazyBuffer


class Recorder:
    """Watches the realize loop while active (a context manager): the kernels run, over
    one slot space; the nodes uploaded (with their data, or the producer of the next
    value for a fed upload); and host reads, which a captured step cannot replay."""

    def __init__(self) -> None:
        self.kernels: list[Kernel] = []
        self.nodes: list[LazyBuffer] = []  # slot -> node (kept alive, so ids stay unique)
        self.slot_of: dict[int, int] = {}  # id(node) -> slot
        self.external: list[int] = []  # slots computed before the kernel that first read them
        self.uploads: dict[int, np.ndarray] = {}  # id(node) -> host data, for nodes uploaded while recording
        self.feeds: dict[int, Callable[[], np.ndarray]] = {}  # id(node) -> producer of its next value
        self.reads: list[str] = []  # host reads seen (descriptions)
        self.devices: set[str] = set()

    def __enter__(self) -> Recorder:
        engine.observers.append(self)
        return self

    def __exit__(self, *exc) -> bool:
        engine.observers.remove(self)
        return False

    def slot(self, node: LazyBuffer) -> int | None:
        return self.slot_of.get(id(node))

    # ----- the observer protocol (engine/realize.py)
    def ran(self, device: str, kernels: list[Kernel], nodes: list[LazyBuffer]) -> None:
        self.devices.add(device)
        local = []
        for n in nodes:
            s = self.slot_of.get(id(n))
            if s is None:
                s = self.slot_of[id(n)] = len(self.nodes)
                self.nodes.append(n)
                if n.realized is not None:
                    self.external.append(s)
            local.append(s)
        self.kernels += [_remap(k, local) for k in kernels]

    def loaded(self, node: LazyBuffer, array: np.ndarray) -> None:
        self.nodes.append(node)  # keeps it alive: its id identifies it
        self.uploads[id(node)] = np.array(array, copy=True)

    def fed(self, node: LazyBuffer, producer: Callable[[], np.ndarray]) -> None:
        self.feeds[id(node)] = producer

    def read(self, node: LazyBuffer) -> None:
        self.reads.append(f"a read of a {node.dtype.name} tensor of shape {node.shape} into host memory")


def _remap(k: Kernel, local: list[int]) -> Kernel:
    """Kernel `k` with its slots renumbered (its structure, and so its key, unchanged)."""
    return dataclasses.replace(
        k,
        outs=tuple(Out(local[o.slot], o.shape, o.dtype) for o in k.outs),
        srcs=tuple(Operand(local[s.slot], s.view, s.dtype) for s in k.srcs),
    )


class Program:
    """A recording made runnable on one device (see the module docstring).

    `keep`: computed slots whose buffers outlive a run; they get new buffers at each run.
    `double`: computed slots that outlive a run but are read only by the next run (the
    new values of parameters and optimizer state, held by tensors whose storage the caller
    rebinds at each run): on webgpu each gets two buffers used in turn, so the next run
    reads one while writing the other, and the bind groups repeat. Every other computed
    slot gets a buffer of the static plan."""

    def __init__(self, kernels: list[Kernel], slots: int, external: list[int], keep: set[int], device: str,
                 double: set[int] = frozenset(), updates: dict[int, int] | None = None):
        """`updates`: double slot -> the external slot of the value it replaces (a parameter's
        new value -> its old one); those that in_place_updates allows may be written into the
        old value's buffer (see run)."""
        self.kernels = kernels
        self.slots = slots
        self.external = list(external)
        self.device = device
        self.double = sorted(set(double) - set(keep) - set(external))
        self.in_place = in_place_updates(kernels, {d: e for d, e in (updates or {}).items() if d in self.double})
        # whether the device runs the static plan (webgpu, where buffers cost; the numpy
        # device gets fresh arrays from its allocator's cache, as eagerly)
        self.planned = hasattr(get_backend(device), "pool")
        self.plan, self.arena_bytes = plan_memory(kernels, slots, set(external) | set(keep) | set(self.double))
        self._arena: list[Any] | None = None  # the plan's buffers, made at the first run
        self._pairs: dict[int, list] = {}  # slot -> its two buffers (double)
        self._sizes: dict[int, int] = {}  # slot -> bytes of each of its two buffers
        self._runs = 0
        # the backend's own (see Backend.run_program); "release": kernel index -> the
        # temporaries it reads last, which a backend without the plan may drop after it
        self._memo: dict = {"release": last_reads(kernels, set(external) | set(keep) | set(self.double))}
        self._memos: dict[frozenset, dict] = {}  # the backend's own, per set of slots written in place

    def run(self, given: dict[int, Any], in_place: set[int] = frozenset()) -> list:
        """Run the kernels with `given` (slot -> buffer) for the external slots; return
        every slot's buffer. `in_place`: slots of self.in_place whose old value no one else
        holds: on webgpu their new value is written into the old value's buffer."""
        backend = get_backend(self.device)
        buffers: list = [None] * self.slots
        for slot, buf in given.items():
            buffers[slot] = buf
        memo = self._memo
        if self.planned:
            if self._arena is None:
                self._arena = [backend.pool.allocate(n, "step capture arena") for n in self.arena_bytes]
                sizes = {o.slot: _nbytes(o) for k in self.kernels for o in k.outs}
                # each pair's buffers are allocated at their first use: the second one comes
                # from the pool once the first run's rebinding has returned the value from
                # before the capture, so the step holds two copies of its state, as eagerly
                self._pairs = {s: [None, None] for s in self.double}
                self._sizes = {s: sizes[s] for s in self.double}
            for slot, i in self.plan.items():
                buffers[slot] = self._arena[i]
            inputs = Counter(id(b) for b in given.values())
            written = set()
            for slot in in_place:
                old = given[self.in_place[slot]]
                if inputs[id(old)] == 1:  # (not also another input)
                    buffers[slot] = old
                    written.add(slot)
            if written:  # (the dispatches bind such a kernel's operand through its output)
                memo = self._memos.setdefault(frozenset(written), {"release": self._memo["release"]})
            for slot, pair in self._pairs.items():
                if slot in written:
                    continue
                turn = self._runs % 2
                if pair[turn] is None or sys.getrefcount(pair[turn]) > 2:  # (the list's reference and the argument)
                    # (or) the value this buffer got two runs ago is still held: by a lazy
                    # computation not yet run (`ema = ema * 0.9 + w * 0.1`), a tensor
                    # sharing it. Overwriting it would change what they read; they keep it,
                    # and the pair takes a new buffer
                    pair[turn] = backend.pool.allocate(self._sizes[slot], "step capture state")
                buf = pair[turn]
                buffers[slot] = buf if id(buf) not in inputs else None  # (never write a buffer the run reads)
        self._runs += 1
        if engine.observers:
            raise RuntimeError("internal: a captured program ran while a capture was recording")
        backend.run_program(self.kernels, buffers, memo)
        return buffers


def in_place_updates(kernels: list[Kernel], updates: dict[int, int]) -> dict[int, int]:
    """The `updates` (new value's slot -> old value's external slot) whose new value may
    be written into the old value's buffer: one elementwise kernel computes it, reading
    the old value only at the element it writes (a contiguous view of the whole buffer),
    and no later kernel reads the old value."""
    first, last = lifetimes(kernels)
    writers = Counter(o.slot for k in kernels for o in k.outs)
    olds = Counter(updates.values())
    allowed = {}
    for new, old in updates.items():
        if writers[new] != 1 or olds[old] != 1 or last.get(old) != first[new]:
            continue
        k = kernels[first[new]]
        out = next(o for o in k.outs if o.slot == new)
        reads = [s for s in k.srcs if s.slot == old]
        if k.kind == "elementwise" and reads and all(
            s.view.shape == out.shape and s.view.is_contiguous and s.view.offset == 0 and s.dtype == out.dtype
            for s in reads
        ):
            allowed[new] = old
    return allowed


def _nbytes(out: Out) -> int:
    """Bytes of a planned buffer for output `out` (4 per element: enough for every dtype a
    device stores)."""
    return max(4, math.prod(out.shape) * 4)


def lifetimes(kernels: list[Kernel]) -> tuple[dict[int, int], dict[int, int]]:
    """For each computed slot, the index of the kernel that first writes it; for every slot,
    the index of the last kernel that reads or writes it."""
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for i, k in enumerate(kernels):
        for s in k.srcs:
            last[s.slot] = i
        for o in k.outs:
            first.setdefault(o.slot, i)
            last[o.slot] = i
    return first, last


def last_reads(kernels: list[Kernel], kept: set[int]) -> dict[int, list[int]]:
    """kernel index -> the computed slots (not in `kept`) that no later kernel reads."""
    first, last = lifetimes(kernels)
    out: dict[int, list[int]] = {}
    for slot in first:
        if slot not in kept:
            out.setdefault(last[slot], []).append(slot)
    return out


def plan_memory(kernels: list[Kernel], slots: int, unplanned: set[int]) -> tuple[dict[int, int], list[int]]:
    """A static memory plan: slot -> arena buffer, and each arena buffer's size in bytes.

    Each computed slot lives from the kernel that writes it to the last kernel that reads
    it; a buffer is reused only by a slot written after the last read of its previous
    slot (so never by an output of the kernel that reads it last). In-place writes
    (`assign`) and the slots they update are left out of the plan, as are `unplanned`."""
    first, last = lifetimes(kernels)
    excluded = set(unplanned)
    for k in kernels:
        if k.kind == "assign":
            excluded.add(k.srcs[0].slot)
            excluded.update(o.slot for o in k.outs)
    plan: dict[int, int] = {}
    arena: list[int] = []
    free: list[int] = []  # arena buffers free for reuse
    ending: dict[int, list[int]] = {}
    for i, k in enumerate(kernels):
        for o in k.outs:
            s = o.slot
            if s in excluded or s in plan or first[s] != i:
                continue
            need = _nbytes(o)
            fit = min((b for b in free if arena[b] >= need), key=lambda b: arena[b], default=None)
            if fit is None or arena[fit] > 2 * need:  # (a much larger buffer would waste memory)
                fit = len(arena)
                arena.append(need)
            else:
                free.remove(fit)
            plan[s] = fit
            ending.setdefault(last[s], []).append(fit)
        free += ending.pop(i, [])
    return plan, arena
