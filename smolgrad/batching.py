"""Batching a lazy graph: the engine of `smolgrad.func.vmap`.

vmap runs the user's function once on *placeholders*: unrealized LOAD nodes with the shape
of one example. That builds the lazy graph of one example (autograd included, so
`vmap(grad(f))` gives per-example gradients). `batch` then rewrites that graph into one
graph over the whole batch, with one rule per primitive op: every node that depends on a
placeholder gets a leading batch dim (elementwise ops and matmul take it as an outer dim,
reductions, gathers and scatters shift their axis by one, pads get (0, 0) for it, views get
a batch stride), and nodes that do not (weights, constants) are broadcast to it with a
zero-stride view. Nothing is computed per example.
"""

from __future__ import annotations

import math

from .dtypes import DType
from .graph import postorder
from .lazy import LazyBuffer
from .ops import REDUCE, Op
from .view import View

tracing = 0  # how many vmap traces are running: realize() refuses placeholders meanwhile


def placeholder(shape: tuple[int, ...], dtype: DType, device: str) -> LazyBuffer:
    """A node standing for one example of a batched input: it has no value."""
    return LazyBuffer(shape, dtype, device, Op.LOAD)


def is_placeholder(lb: LazyBuffer) -> bool:
    return lb.op is Op.LOAD and lb.realized is None


def check_no_placeholders(bases: list[LazyBuffer]) -> None:
    """Raise if computing `bases` needs a vmap placeholder's value (a host read inside vmap)."""
    nodes = postorder(bases, lambda n: [s.base for s in n.srcs if s.base.realized is None])
    if any(is_placeholder(n) for n in nodes):
        raise RuntimeError(
            "vmap: the function read a value that depends on the batched input (.item(), .numpy(), .tolist(), "
            "printing, or Python control flow on a tensor); vmap cannot batch data-dependent code. Use "
            "tensor ops instead (smolgrad.where for branches), or loop in Python."
        )


def batch(outputs: list[LazyBuffer], inputs: dict[int, LazyBuffer], size: int) -> list[LazyBuffer]:
    """`outputs` of the one-example graph, rewritten over a batch of `size`.

    `inputs` maps id(placeholder) to its batched value: a contiguous base node of shape
    (size, *placeholder.shape). Returns batched nodes (size, *output.shape)."""
    batched: dict[int, LazyBuffer | None] = {}  # id(node) -> its batched node, None where unbatched

    def lift(node: LazyBuffer) -> LazyBuffer:
        """The batched node, or the unbatched one broadcast along a new leading dim."""
        b = batched[id(node)]
        if b is not None:
            return b
        return node.reshape((1, *node.shape)).expand((size, *node.shape))

    for node in postorder(outputs, lambda n: list(n.srcs)):
        if is_placeholder(node):
            batched[id(node)] = inputs[id(node)]
        elif not any(batched[id(s)] is not None for s in node.srcs):
            batched[id(node)] = None
        elif node.op is Op.ASSIGN:  # storage.write makes none while tracing
            raise RuntimeError("internal: vmap cannot batch an in-place write (Op.ASSIGN)")
        elif node.op is Op.VIEW:
            batched[id(node)] = _batched_view(lift(node.srcs[0]), node.arg, size)
        else:
            arg = node.arg
            if node.op in REDUCE:
                arg = tuple(a + 1 for a in arg)
            elif node.op in (Op.GATHER, Op.SCATTER_ADD):
                arg = arg + 1
            elif node.op is Op.PAD:  # (the pads of each source, value)
                arg = (tuple(((0, 0), *pads) for pads in arg[0]), arg[1])
            srcs = [lift(s) for s in node.srcs]
            batched[id(node)] = LazyBuffer((size, *node.shape), node.dtype, node.device, node.op, srcs, arg)
    return [lift(o) for o in outputs]


def _batched_view(base: LazyBuffer, view: View, size: int) -> LazyBuffer:
    """`view` (of one example's base) applied to every example of a batched base."""
    if base.op is Op.VIEW or not base.view.is_contiguous:  # a broadcast (unbatched) base: materialise it
        base = base.contiguous()
    per_example = math.prod(base.shape[1:])
    v = View((size, *view.shape), (per_example, *view.strides), view.offset)
    return LazyBuffer(v.shape, base.dtype, base.device, Op.VIEW, (base,), v)
