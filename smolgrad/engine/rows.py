"""The "rows" kernel kind: reductions along the last axis and the elementwise work that
reads them, as one kernel (softmax, log-softmax, layer norm, RMS norm, cross-entropy...).

A row kernel is a short list of *parts*, ordinary kernels run in turn: reductions over
the last axis of the same (rows, N) shape (each may read the results of the ones before
it, broadcast along the row) and elementwise kernels of one value per row (which read
them: layer norm's 1 / sqrt(var + eps)), then one elementwise kernel of shape (rows, N)
that reads them. The parts before the last are the *row values*: each output is one
value per row, numbered in order (value v is "red" v). A backend may run the parts one by one (the NumPy device does; the WebGPU device
does when a row does not fit in a workgroup's registers) or as one pass that reads each
row once (backend/wgsl_rows.py). The scheduler forms them (schedule._fuse_rows).

The parts run over *local* slots: local slot i is the kernel's i-th distinct slot, its
outputs first, then its operands (`local_slots`). So renumbering the kernel's slots
(step capture does) leaves the parts as they are.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from .kernel import Kernel, Operand, Out

class RowsArg(NamedTuple):
    """A row kernel's parts (over local slots, the elementwise part last) and, per part and
    operand, where the operand comes from: ("src", j) is the row kernel's operand j,
    ("red", v) row value v (the v-th output of the parts before the last)."""

    parts: tuple[Kernel, ...]
    reads: tuple[tuple[tuple[str, int], ...], ...]


def local_slots(outs: tuple[Out, ...], srcs: tuple[Operand, ...]) -> list[int]:
    """The distinct slots of a row kernel: its outputs in order, then its operands'."""
    slots: list[int] = []
    for s in [o.slot for o in outs] + [s.slot for s in srcs]:
        if s not in slots:
            slots.append(s)
    return slots


def rows_kernel(outs: tuple[Out, ...], srcs: tuple[Operand, ...], parts: tuple[Kernel, ...]) -> Kernel:
    """The row kernel writing `outs` (the elementwise part's outputs, then each reduction's)
    from `srcs`, running `parts` (over local slots, see local_slots)."""
    local = local_slots(outs, srcs)
    produced = {o.slot: v for v, o in enumerate(o for p in parts[:-1] for o in p.outs)}
    reads = []
    for p in parts:
        where = []
        for s in p.srcs:
            if s.slot in produced:
                where.append(("red", produced[s.slot]))
            else:
                where.append(("src", srcs.index(Operand(local[s.slot], s.view, s.dtype))))
        reads.append(tuple(where))
    arg = RowsArg(tuple(parts), tuple(reads))
    key = (
        "rows",
        tuple(p.key for p in parts),
        tuple((tuple(o.slot for o in p.outs), tuple(s.slot for s in p.srcs)) for p in parts),
        tuple((s.view, s.dtype.name) for s in srcs),
        tuple(local.index(s.slot) for s in srcs),
        tuple((o.shape, o.dtype.name) for o in outs),
    )
    return Kernel("rows", outs, srcs, (), arg=arg, key=key)


def row_count(k: Kernel) -> int:
    """Rows of a row kernel (its elementwise part's shape without the last axis)."""
    return math.prod(k.shape[:-1])
