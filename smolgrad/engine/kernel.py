"""The kernel IR: what the scheduler produces and the backends run.

A kernel list runs over a list of *buffer slots*: `Backend.run(kernels, buffers)` gets a
list whose entry i is slot i's buffer, or None for a slot a kernel of the list computes.
Operands and outputs name slots, never graph nodes, so one kernel list can be run again
over other buffers (the schedule cache and step capture do exactly that).

This module imports only leaf modules (dtypes, ops, view, graph): the backends import it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..dtypes import DType
from ..graph import postorder
from ..ops import Op
from ..view import View

DEFAULT_MAX_BUFFERS = 8  # the WebGPU default of storage buffers per shader stage, outputs included


class Operand(NamedTuple):
    """A buffer a kernel reads: slot `slot` seen through `view`."""

    slot: int
    view: View
    dtype: DType


class Out(NamedTuple):
    """A buffer a kernel writes: slot `slot`, contiguous, of `shape` and `dtype`."""

    slot: int
    shape: tuple[int, ...]
    dtype: DType


class Expr:
    """A node of a fused kernel's expression DAG (compared by identity)."""

    __slots__ = ()
    dtype: DType


@dataclass(eq=False)
class Load(Expr):
    """The value of operand `kernel.srcs[src]` at the current element."""

    src: int
    dtype: DType


@dataclass(eq=False)
class Const(Expr):
    value: Any
    dtype: DType


@dataclass(eq=False)
class Acc(Expr):
    """The result of the kernel's core (reduction or matmul) at the current element."""

    dtype: DType


@dataclass(eq=False)
class Apply(Expr):
    """An elementwise op over argument expressions. For RAND, arg is (stream, view): the
    view maps the kernel's positions to the random node's own element index (its counter)."""

    op: Op
    srcs: tuple[Expr, ...]
    dtype: DType
    arg: Any = None


def expr_children(e: Expr) -> tuple[Expr, ...]:
    return e.srcs if isinstance(e, Apply) else ()


@dataclass(eq=False)
class Kernel:
    """One dispatch (two for a long reduction): compute `outs` (contiguous, same shape).

    kind "elementwise": outs[i] = exprs[i] at each element.
    kind "reduce":      op (SUM/RMAX/RMIN) over `arg` axes of `pre` evaluated over
                        `pre_shape`; then outs[0] = exprs[0] with Acc = the reduction.
    kind "matmul":      Acc = srcs[0] @ srcs[1]; outs[0] = exprs[0] (the epilogue).
    kind "gather", "scatter_add", "pad", "attention": `op` over srcs with `arg`; exprs[0] is Acc.
                        A pad places each of its srcs in its own region (arg: (the pads of
                        each src, the value elsewhere); see LazyBuffer.pad).
    kind "rows":        reductions along the last axis, then elementwise work reading them,
                        run as the kernels `arg.parts` (see RowsArg below); no exprs.
    kind "assign":      outs[0] is srcs[0]'s slot, its buffer updated in place: exprs[0],
                        evaluated over the region `arg` (a View into that buffer, also
                        srcs[0].view), is stored through that view; nothing else is
                        written. exprs never load srcs[0].
    Load(i) reads srcs[i]; its view has the shape of the region it is used in
    (`pre_shape` in a reduction's prologue, the written region in an assign, the output
    shape elsewhere).

    `key` is the kernel's structure without its slots, worked out once: two kernels with
    equal keys compile to the same code. `code` numbers the distinct keys (a small int,
    cheap to hash), and the backends' compile caches use it."""

    kind: str
    outs: tuple[Out, ...]
    srcs: tuple[Operand, ...]
    exprs: tuple[Expr, ...]
    op: Op | None = None
    arg: Any = None
    pre: Expr | None = None
    pre_shape: tuple[int, ...] = ()
    program: tuple[Expr, ...] = ()  # the expressions' nodes in evaluation order, inputs first
    pre_program: tuple[Expr, ...] = ()
    key: tuple = ()
    code: int = -1

    def __post_init__(self) -> None:
        if not self.program:
            self.program = tuple(postorder(self.exprs, expr_children))
        if self.pre is not None and not self.pre_program:
            self.pre_program = tuple(postorder([self.pre], expr_children))
        if not self.key:
            self.key = structural_key(self)
        if self.code < 0:
            self.code = _codes.setdefault(self.key, len(_codes))

    @property
    def shape(self) -> tuple[int, ...]:
        return self.outs[0].shape

    @property
    def out(self) -> Out:
        return self.outs[0]

    @property
    def fused_ops(self) -> list[str]:
        """Names of the ops this kernel runs, inputs first."""
        if self.kind == "rows":  # a row kernel (see RowsArg): its parts' ops in turn
            return [name for part in self.arg.parts for name in part.fused_ops]
        names = [e.op.name.lower() for e in self.pre_program if isinstance(e, Apply)]
        if self.op is not None:
            names.append(self.op.name.lower())
        names += [e.op.name.lower() for e in self.program if isinstance(e, Apply)]
        return names

    @functools.cached_property
    def name(self) -> str:
        prefix = {"elementwise": "E", "reduce": "R", "matmul": "MM"}.get(self.kind, self.kind.upper())
        ops = self.fused_ops
        if self.kind not in ("elementwise", "reduce", "matmul", "rows"):
            ops = ops[1:]  # the kind already names the core op
        if len(ops) > 6:
            ops = ops[:3] + [f"{len(ops) - 5}more"] + ops[-2:]
        suffix = "_".join(ops)
        if len(self.outs) > 1:
            suffix += f"_x{len(self.outs)}"
        return f"{prefix}_{suffix}" if suffix else prefix


# structural key -> code. It only grows: a process meets a bounded number of distinct
# kernels (each training step the same few hundred), and the entries are small.
_codes: dict[tuple, int] = {}


def _hashable(value: Any) -> Any:
    """A constant or argument in a key: by repr for floats (0.0 vs -0.0; nan != nan)."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, tuple):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, DType):
        return value.name
    return value


def _program_key(program: tuple[Expr, ...]) -> tuple:
    index = {id(e): i for i, e in enumerate(program)}
    parts = []
    for e in program:
        if isinstance(e, Apply):
            parts.append(("A", e.op, e.dtype.name, _hashable(e.arg), tuple(index[id(s)] for s in e.srcs)))
        elif isinstance(e, Load):
            parts.append(("L", e.src, e.dtype.name))
        elif isinstance(e, Const):
            parts.append(("C", _hashable(e.value), e.dtype.name))
        else:
            parts.append(("Acc", e.dtype.name))
    return tuple(parts)


def structural_key(k: Kernel) -> tuple:
    """Everything the code of kernel `k` depends on: its kind, core op and argument,
    shapes, operand views and dtypes, which operands share a buffer, the output dtypes and
    the expressions' structure; not which slots it reads and writes."""
    first = {}
    sharing = tuple(first.setdefault(s.slot, i) for i, s in enumerate(k.srcs))
    return (
        k.kind,
        k.op,
        _hashable(k.arg),
        k.shape,
        k.pre_shape,
        tuple((s.view, s.dtype.name) for s in k.srcs),
        sharing,
        tuple(o.dtype.name for o in k.outs),
        _program_key(k.program),
        tuple(index_of(k.program, e) for e in k.exprs),
        _program_key(k.pre_program),
    )


def index_of(program: tuple[Expr, ...], e: Expr) -> int:
    return next(i for i, p in enumerate(program) if p is e)


# --------------------------------------------------------------------------- row kernels
# The "rows" kind: reductions along the last axis and the elementwise work that reads
# them, as one kernel (softmax, log-softmax, layer norm, RMS norm, cross-entropy...).
#
# A row kernel is a short list of *parts*, ordinary kernels run in turn: reductions over
# the last axis of the same (rows, N) shape (each may read the results of the ones before
# it, broadcast along the row) and elementwise kernels of one value per row (which read
# them: layer norm's 1 / sqrt(var + eps)), then one elementwise kernel of shape (rows, N)
# that reads them. The parts before the last give the *row values*: their outputs, one
# value per row, numbered in order. A backend may run the parts one by one (the NumPy
# device does; the WebGPU device does when a row does not fit in a workgroup) or as one
# pass that reads each row once (backend/wgsl_rows.py). The scheduler forms them
# (schedule._fuse_rows).
#
# The parts run over *local* slots: local slot i is the kernel's i-th distinct slot, its
# outputs first, then its operands' (`local_slots`). So renumbering the kernel's slots
# (step capture does) leaves the parts as they are.


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
    """The row kernel writing `outs` (the elementwise part's outputs, then the other parts')
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
