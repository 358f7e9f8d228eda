"""Scheduler (DESIGN.md layer 4): graph in, ordered kernel list out.

This version emits one kernel per primitive op. The fusion pass will replace
`schedule` behind the same interface: it takes the nodes to compute and returns a list
of Kernels whose order respects their data dependencies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .dtypes import DType
from .graph import postorder
from .lazy import LazyBuffer
from .ops import ELEMENTWISE, Op
from .view import View


@dataclass(frozen=True)
class Operand:
    """One input of a kernel: a computed base node read through `view`, or a constant.

    For a constant, `node` is None and `const` holds the Python scalar."""

    node: LazyBuffer | None
    view: View
    dtype: DType
    const: Any = None

    @property
    def is_const(self) -> bool:
        return self.node is None


@dataclass(frozen=True)
class Kernel:
    """Compute `op` over `srcs` into a fresh contiguous buffer for the base node `out`.

    Operand views have the op's input shapes: for elementwise ops that is out.shape;
    for reductions the input shape (out.shape has the reduced axes as 1); see ops.Op
    for MATMUL, GATHER, SCATTER_ADD and PAD. CONST as a kernel op fills out with arg."""

    op: Op
    out: LazyBuffer
    srcs: tuple[Operand, ...]
    arg: Any = None

    @property
    def name(self) -> str:
        return self.op.name.lower()


def operand(lb: LazyBuffer, inline_consts: bool) -> Operand:
    base = lb.base
    if inline_consts and base.op is Op.CONST and base.realized is None:
        return Operand(None, lb.view, lb.dtype, base.arg)
    return Operand(base, lb.view, lb.dtype)


def schedule(outputs: list[LazyBuffer]) -> list[Kernel]:
    """Kernels that compute `outputs` (base nodes) from what is already computed,
    in dependency order. Iterative post-order DFS, so deep graphs are fine.

    Constant operands are inlined into elementwise kernels; for any other kernel
    they are filled into a (one-element) buffer first."""

    def inputs_to_compute(node: LazyBuffer) -> list[LazyBuffer]:
        found = []
        for src in node.srcs:
            base = src.base
            # constants are inlined into elementwise kernels; other kernels read buffers
            inline = base.op is Op.CONST and node.op in ELEMENTWISE
            if base.realized is None and not inline:
                found.append(base)
        return found

    order = postorder([b for b in outputs if b.realized is None], inputs_to_compute)
    kernels = []
    for node in order:
        if node.op is Op.CONST:
            kernels.append(Kernel(Op.CONST, node, (), node.arg))
        else:
            inline = node.op in ELEMENTWISE
            kernels.append(Kernel(node.op, node, tuple(operand(s, inline) for s in node.srcs), node.arg))
    return kernels
