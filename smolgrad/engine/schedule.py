"""Scheduler and fusion (DESIGN.md layer 4): graph in, ordered list of fused kernels out.

The kernels are over buffer slots (see kernel.py); `schedule` returns them with the
graph node of each slot.

`schedule(nodes)` finds the unrealized graph the nodes need and groups it into kernels.
Each kernel computes one or more *stored* values (written to memory); every other
elementwise value is computed in registers inside the kernels that use it.

A value is stored (it ends a kernel) when it is
- asked for (the nodes passed to `schedule`), or saved for backward by autograd;
- not elementwise: a reduction, matmul, gather, scatter-add or pad, unless a reduction
  or matmul can be the *core* of its only consumer's kernel (see below);
- read by a matmul, gather, scatter-add or pad, which read buffers;
- read through a view that cannot be folded into its consumer's indexing
  (`view.compose` fails);
- needed by more than MAX_RECOMPUTE kernels. An elementwise value needed by 2 or 3
  kernels is recomputed in each: recomputing reads its inputs again, storing writes and
  reads it back, and recomputing saves a dispatch;
- deeper than MAX_DEPTH ops below its kernel's output, or needed to keep a kernel within
  the device's storage-buffer limit (the largest fused sub-expression is stored).

A reduction is fused with the elementwise work before it (its *prologue*: `(x*y).sum()`
is one kernel). A reduction or matmul whose value is read only by one kernel, at that
kernel's own shape and index, becomes that kernel's core, and the elementwise work after
it is its *epilogue* (`relu(x @ w + b)` is one matmul kernel, `((a-b)**2).mean()` one
reduction). A matmul operand that is another value times or divided by a constant, read by nothing
else, is not stored either: the matmul reads that value and its result is scaled instead
(the "scaled matmul operand" rule, see _scaled_operand: `(q * scale) @ k.T` is one kernel).
Finally, elementwise kernels of the same shape are merged into one kernel
with several outputs when their dependencies allow (an optimizer step updating a
parameter and its two moment buffers is one dispatch).

`SMOLGRAD_FUSION=0` turns all of this off: one kernel per op, as a baseline.
"""

from __future__ import annotations

import bisect
import math
import os
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from typing import TYPE_CHECKING

from ..dtypes import DType
from ..graph import postorder
from ..ops import ELEMENTWISE, REDUCE, Op
from ..view import View, compose
from .kernel import DEFAULT_MAX_BUFFERS, Acc, Apply, Const, Expr, Kernel, Load, Operand, Out, local_slots, rows_kernel

if TYPE_CHECKING:
    from ..lazy import LazyBuffer

MAX_RECOMPUTE = 3  # an elementwise value needed by more kernels than this is stored
MAX_DEPTH = 64  # longest chain of fused ops below a kernel's output
MAX_MERGE_TRIES = 4  # candidate kernels tried when merging elementwise kernels
MAX_KERNEL_OPS = 256  # merging stops before a kernel computes more ops than this


def fusion_enabled() -> bool:
    return os.environ.get("SMOLGRAD_FUSION", "1") != "0"


def row_fusion_enabled() -> bool:
    """Whether row reductions and their elementwise consumer form one "rows" kernel
    (`SMOLGRAD_ROW_FUSION=0` turns it off; see _fuse_rows)."""
    return os.environ.get("SMOLGRAD_ROW_FUSION", "1") != "0"


# --------------------------------------------------------------------------- drafts
class _Src(NamedTuple):
    """An operand while kernels are formed: the computed base node `node` through `view`."""

    node: LazyBuffer
    view: View
    dtype: DType


@dataclass(eq=False)
class _Draft:
    """A kernel while kernels are formed: outputs and operands are graph nodes; `schedule`
    lowers it to a Kernel over slots (see kernel.Kernel for the fields)."""

    kind: str
    outs: tuple[LazyBuffer, ...]
    srcs: tuple[_Src, ...]
    exprs: tuple[Expr, ...]
    op: Op | None = None
    arg: Any = None
    pre: Expr | None = None
    pre_shape: tuple[int, ...] = ()

    @property
    def shape(self) -> tuple[int, ...]:
        return self.outs[0].shape


# --------------------------------------------------------------------------- grouping
@dataclass
class _Group:
    """A kernel being formed: its first stored value, core op and member regions."""

    root: LazyBuffer
    kind: str
    core: LazyBuffer | None = None


@dataclass
class _Use:
    gid: int
    region: str  # "main" (the kernel's output index) or "pre" (a reduction's input)
    view: View  # region coordinates -> the used node's contiguous index
    depth: int


@dataclass
class _Plan:
    groups: list[_Group] = field(default_factory=list)
    root_of: dict[int, int] = field(default_factory=dict)  # id(node) -> gid it is the root of
    core_of: dict[int, int] = field(default_factory=dict)  # id(node) -> gid it is the core of
    uses: dict[int, list[_Use]] = field(default_factory=dict)  # fused (not stored) nodes
    scaled: dict[int, LazyBuffer] = field(default_factory=dict)  # id(scaled operand) -> the matmul reading it


KIND_OF = {
    Op.MATMUL: "matmul",
    Op.GATHER: "gather",
    Op.SCATTER_ADD: "scatter_add",
    Op.PAD: "pad",
    Op.ASSIGN: "assign",
    Op.ATTENTION: "attention",
}


def _kind(node: LazyBuffer) -> str:
    if node.op in REDUCE:
        return "reduce"
    return KIND_OF.get(node.op, "elementwise")


def _composable(node: LazyBuffer, uses: list[_Use]) -> bool:
    """Whether every input of `node` can be read at the positions each use needs."""
    return all(
        compose(s.view, u.view) is not None for s in node.srcs if s.base.op is not Op.CONST for u in uses
    )


def _scale_parts(node: LazyBuffer) -> tuple[LazyBuffer, LazyBuffer] | None:
    """(operand, constant) of `node` = operand * constant, constant * operand or operand /
    constant, with the operand of node's own dtype, float32 or float64; else None. (Not
    float16: its product could overflow where the scaled operands' would not.)"""
    if node.op not in (Op.MUL, Op.DIV) or node.dtype.name not in ("float32", "float64"):
        return None
    x, c = node.srcs
    if node.op is Op.MUL and x.base.op is Op.CONST:
        x, c = c, x
    if c.base.op is not Op.CONST or c.base.realized is not None or x.base.op is Op.CONST or x.dtype != node.dtype:
        return None
    return x, c


def _scaled_operand(node: LazyBuffer, uses: list[tuple[LazyBuffer, int]]) -> LazyBuffer | None:
    """Rule "scaled matmul operand": when every use of `node` (x * c, c * x or x / c for a
    constant c) is as an operand of one matmul, through a view that composes with the view x
    is read through, that matmul (which then reads x and multiplies or divides its result
    by c) needs no copy of x * c."""
    parts = _scale_parts(node)
    if parts is None or not uses or any(c.op is not Op.MATMUL or c is not uses[0][0] for c, _ in uses):
        return None
    matmul = uses[0][0]
    if any(compose(parts[0].view, matmul.srcs[slot].view) is None for _, slot in uses):
        return None
    return matmul


def _plan(order: list[LazyBuffer], consumers, wanted: set[int], forced: set[int], fuse: bool) -> _Plan:
    """Decide, consumers before producers, which nodes are stored and where the others
    are computed (see the module docstring for the rules)."""
    plan = _Plan()

    def store(node: LazyBuffer) -> None:
        gid = len(plan.groups)
        kind = _kind(node)
        plan.groups.append(_Group(node, kind, node if kind != "elementwise" else None))
        plan.root_of[id(node)] = gid

    for node in reversed(order):
        uses: list[_Use] = []
        # (a saved constant is not stored: it is recreated for free wherever it is used)
        needs_buffer = id(node) in wanted or id(node) in forced or (fuse and node.saved and node.op is not Op.CONST)
        for consumer, slot in consumers[id(node)]:
            view = consumer.srcs[slot].view
            cid = id(consumer)
            if consumer.op in REDUCE:
                gid = plan.root_of.get(cid, plan.core_of.get(cid))
                uses.append(_Use(gid, "pre", view, 1))
            elif consumer.op is Op.ASSIGN:
                if slot == 0:
                    needs_buffer = True  # the buffer the assign updates in place
                else:  # the written value: computed in the assign's kernel, over the region
                    region = View.contiguous(consumer.srcs[1].shape)
                    composed = compose(view, region)
                    if composed is None:
                        needs_buffer = True
                    else:
                        uses.append(_Use(plan.root_of[cid], "main", composed, 1))
            elif cid in plan.scaled:  # the matmul reads this value (a buffer) and scales its result
                needs_buffer = needs_buffer or node.op is not Op.CONST
            elif consumer.op in ELEMENTWISE:
                if cid in plan.root_of:
                    contexts = [_Use(plan.root_of[cid], "main", View.contiguous(consumer.shape), 0)]
                else:
                    contexts = plan.uses[cid]
                for c in contexts:
                    composed = compose(view, c.view)
                    if composed is None:
                        needs_buffer = True
                    else:
                        uses.append(_Use(c.gid, c.region, composed, c.depth + 1))
            else:
                needs_buffer = True  # matmul, gather, scatter-add and pad read buffers

        if node.op is Op.CONST:
            if needs_buffer:
                store(node)  # a fill kernel; fused consumers still inline the constant
            continue
        if fuse and id(node) not in wanted and id(node) not in forced and not node.saved:
            matmul = _scaled_operand(node, consumers[id(node)])
            if matmul is not None:
                plan.scaled[id(node)] = matmul
                continue
        if not fuse or needs_buffer:
            store(node)
            continue
        gids = {u.gid for u in uses}
        if node.op in ELEMENTWISE:
            if len(gids) > MAX_RECOMPUTE or any(u.depth > MAX_DEPTH for u in uses) or not _composable(node, uses):
                store(node)
            else:
                plan.uses[id(node)] = uses
        elif node.op in REDUCE or node.op is Op.MATMUL:
            gid = next(iter(gids)) if len(gids) == 1 else None
            # the core's result must be read at the kernel's own output index; a matmul's
            # epilogue indexes by (batch, row, column), so there the shapes must match too
            absorbable = (
                gid is not None
                and plan.groups[gid].kind == "elementwise"
                and all(
                    u.region == "main" and u.view.is_identity and (node.op in REDUCE or u.view.shape == node.shape)
                    for u in uses
                )
            )
            if absorbable:
                group = plan.groups[gid]
                group.kind, group.core = _kind(node), node
                plan.core_of[id(node)] = gid
            else:
                store(node)
        else:
            store(node)
    return plan


# --------------------------------------------------------------------------- kernels
class _Builder:
    """Builds the expressions of one kernel: the groups `gids`, writing `roots`."""

    def __init__(self, plan: _Plan, gids: set[int], roots: list[LazyBuffer]):
        self.plan, self.gids, self.roots = plan, set(gids), {id(r) for r in roots}
        self.srcs: list[_Src] = []
        self.loads: dict[tuple, Load] = {}
        self.memo: dict[tuple, Expr] = {}
        self.leaves: dict[int, set[int]] = {}  # id(expr) -> ids of the buffers below it
        self.members: dict[int, LazyBuffer] = {}  # id(expr) -> fused node it computes
        self.heights: dict[int, int] = {}  # id(expr) -> ops on its longest path to a leaf
        self.height = 0  # the most of any expression built

    def load(self, node: LazyBuffer, view: View) -> Load:
        key = (id(node), view)
        if key not in self.loads:
            self.loads[key] = Load(len(self.srcs), node.dtype)
            self.srcs.append(_Src(node, view, node.dtype))
            self.leaves[id(self.loads[key])] = {id(node)}
        return self.loads[key]

    def fused_here(self, node: LazyBuffer, region: str) -> bool:
        uses = self.plan.uses.get(id(node))
        return uses is not None and any(u.gid in self.gids and u.region == region for u in uses)

    def value(self, node: LazyBuffer, view: View, region: str) -> Expr:
        """The expression of base `node` at the positions `view` reads, in `region`."""
        if node.op is Op.CONST and node.realized is None:
            return Const(node.arg, node.dtype)
        if region == "main" and self.plan.core_of.get(id(node)) in self.gids:
            return self.core_value(node)
        inline = node.realized is None and (
            self.fused_here(node, region) or (region == "main" and id(node) in self.roots and view.is_identity)
        )
        if not inline:
            return self.load(node, view)
        return self.compute(node, view, region)

    def core_value(self, core: LazyBuffer) -> Expr:
        """Acc, times or divided by the constant of each scaled operand (see _scaled_operand)."""
        key = ("core", id(core))
        if key not in self.memo:
            e: Expr = Acc(core.dtype)
            for s in core.srcs if core.op is Op.MATMUL else ():
                if id(s.base) in self.plan.scaled:
                    c = _scale_parts(s.base)[1].base
                    e = Apply(s.base.op, (e, Const(c.arg, c.dtype)), core.dtype)
            self.memo[key] = e
        return self.memo[key]

    def operand(self, s) -> _Src:
        """A matmul's (or gather's, ...) operand `s` as a buffer: for a scaled operand, the value it scales."""
        if id(s.base) in self.plan.scaled:
            x = _scale_parts(s.base)[0]
            return _Src(x.base, compose(x.view, s.view), x.base.dtype)
        return _Src(s.base, s.view, s.base.dtype)

    def compute(self, node: LazyBuffer, view: View, region: str) -> Expr:
        if node.op is Op.CONST:  # a constant stored for a kernel that reads buffers
            return Const(node.arg, node.dtype)
        key = (id(node), view, region)
        if key not in self.memo:
            args = tuple(self.value(s.base, compose(s.view, view), region) for s in node.srcs)
            # a random value is a function of its element's own index: keep the view that
            # maps the kernel's positions to that index
            arg = (node.arg, view) if node.op is Op.RAND else node.arg
            e = Apply(node.op, args, node.dtype, arg)
            self.leaves[id(e)] = set().union(*(self.leaves.get(id(a), set()) for a in args))
            self.members[id(e)] = node
            self.heights[id(e)] = 1 + max((self.heights.get(id(a), 0) for a in args), default=0)
            self.height = max(self.height, self.heights[id(e)])
            self.memo[key] = e
        return self.memo[key]

    def buffers(self, outs: int) -> int:
        return len({id(s.node) for s in self.srcs}) + outs


def _build(plan: _Plan, gids: set[int], roots: list[LazyBuffer]) -> tuple[_Draft, _Builder]:
    b = _Builder(plan, gids, roots)
    core = next((plan.groups[g].core for g in gids if plan.groups[g].core is not None), None)
    kind = next((plan.groups[g].kind for g in gids if plan.groups[g].kind != "elementwise"), "elementwise")
    if kind in ("matmul", "gather", "scatter_add", "pad", "attention"):
        for s in core.srcs:  # the core's operands come first, one each (x @ x reads x twice)
            b.srcs.append(b.operand(s))
    if kind == "assign":  # the updated buffer first (never loaded), then the value's operands
        target, value = core.srcs
        b.srcs.append(_Src(target, core.arg, target.dtype))
        expr = b.value(value.base, value.view, "main")
        if any(src.node is target for src in b.srcs[1:]):  # storage.write_in_place rules this out
            raise RuntimeError(f"internal: an in-place write of {target} reads the buffer it writes")
        return _Draft(kind, (core,), tuple(b.srcs), (expr,), op=core.op, arg=core.arg), b
    pre, pre_shape = None, ()
    if kind == "reduce":
        src = core.srcs[0]
        pre_shape = src.shape
        pre = b.value(src.base, src.view, "pre")
    exprs = tuple(
        b.core_value(r) if r is core else b.compute(r, View.contiguous(r.shape), "main") for r in roots
    )
    k = _Draft(
        kind,
        tuple(roots),
        tuple(b.srcs),
        exprs,
        op=core.op if core is not None else None,
        arg=core.arg if core is not None else None,
        pre=pre,
        pre_shape=pre_shape,
    )
    return k, b


def _split_candidate(b: _Builder) -> LazyBuffer | None:
    """The fused node whose storing frees the most buffer bindings."""
    best, best_count = None, 1
    for eid, node in b.members.items():
        count = len(b.leaves[eid])
        if count > best_count and id(node) not in b.roots:
            best, best_count = node, count
    return best


# A training loop realises graphs of the same structure every step. Fusion decisions
# depend only on that structure, so kernel lists are cached under a structural key; being
# over slots, the cached kernels run the new nodes' buffers as they are (this saves most
# of the scheduling time of a step, and the backends see the same kernel objects).
SCHEDULE_CACHE_SIZE = 256
_schedule_cache: OrderedDict[tuple, list[Kernel]] = OrderedDict()


def _structure(targets: list[LazyBuffer], fuse: bool, max_buffers: int) -> tuple[tuple, list[LazyBuffer]]:
    """(a key equal for graphs scheduled alike, the graph's nodes in a canonical order)."""
    nodes = postorder(targets, _unrealized_sources)
    index = {id(n): i for i, n in enumerate(nodes)}
    parts = []
    for n in nodes:
        if n.realized is not None:
            parts.append((n.shape, n.dtype.name))
            continue
        arg = n.arg
        if isinstance(arg, DType):
            arg = arg.name
        elif n.op is Op.CONST or n.op is Op.PAD:  # by repr: 0.0 == -0.0, and nan != nan
            arg = repr(arg)
        srcs = tuple((index[id(s)], None) if s.op is not Op.VIEW else (index[id(s.srcs[0])], s.arg) for s in n.srcs)
        parts.append((n.op, n.shape, n.dtype.name, n.saved, arg, srcs))
    key = (fuse, max_buffers, tuple(index[id(t)] for t in targets), tuple(parts))
    return key, nodes


def _unrealized_sources(n: LazyBuffer) -> list[LazyBuffer]:
    """The base nodes `n` reads, unless `n` is computed (then it is a leaf)."""
    if n.realized is not None:
        return []
    return [s if s.op is not Op.VIEW else s.srcs[0] for s in n.srcs]


def _lower(drafts: list[_Draft], index: dict[int, int]) -> list[Kernel]:
    """The drafts as kernels over slots (`index`: id(node) -> its slot)."""
    return [
        _lower_rows(d, index)
        if d.kind == "rows"
        else Kernel(
            d.kind,
            tuple(Out(index[id(o)], o.shape, o.dtype) for o in d.outs),
            tuple(Operand(index[id(s.node)], s.view, s.dtype) for s in d.srcs),
            d.exprs,
            d.op,
            d.arg,
            d.pre,
            d.pre_shape,
        )
        for d in drafts
    ]


class Schedule(NamedTuple):
    """Kernels over slots, and the graph node of each slot: the computed nodes a kernel
    reads hold their buffers, the nodes the kernels compute will get theirs."""

    kernels: list[Kernel]
    nodes: list[LazyBuffer]


def schedule(outputs: list[LazyBuffer], max_buffers: int = DEFAULT_MAX_BUFFERS) -> Schedule:
    """Kernels that compute `outputs` (base nodes) from what is already computed, in
    dependency order, fused as the module docstring describes."""
    targets = [b for b in outputs if b.realized is None and b.op is not Op.CONST]
    if not targets:
        return Schedule([], [])
    fuse = fusion_enabled()
    rows = fuse and row_fusion_enabled()
    key, nodes = _structure(targets, fuse, max_buffers)
    key = (key, rows)
    kernels = _schedule_cache.get(key)
    if kernels is not None:
        _schedule_cache.move_to_end(key)
        return Schedule(kernels, nodes)
    kernels = _lower(_schedule(targets, fuse, max_buffers, rows), {id(n): i for i, n in enumerate(nodes)})
    _schedule_cache[key] = kernels
    if len(_schedule_cache) > SCHEDULE_CACHE_SIZE:
        _schedule_cache.popitem(last=False)
    return Schedule(kernels, nodes)


def _schedule(targets: list[LazyBuffer], fuse: bool, max_buffers: int, rows: bool = False) -> list[_Draft]:
    order = postorder(targets, lambda n: [s.base for s in n.srcs if s.base.realized is None])
    consumers: dict[int, list[tuple[LazyBuffer, int]]] = defaultdict(list)
    for node in order:
        for slot, s in enumerate(node.srcs):
            if s.base.realized is None:
                consumers[id(s.base)].append((node, slot))
    position = {id(n): i for i, n in enumerate(order)}
    wanted = {id(b) for b in targets}
    forced: set[int] = set()
    while True:
        plan = _plan(order, consumers, wanted, forced, fuse)
        gids = sorted(range(len(plan.groups)), key=lambda g: position[id(plan.groups[g].root)])
        built, too_big = [], []
        for gid in gids:
            k, b = _build(plan, {gid}, [plan.groups[gid].root])
            if b.buffers(1) > max_buffers:
                split = _split_candidate(b)
                if split is None:
                    raise RuntimeError(f"internal: the kernel of {plan.groups[gid].root} needs more than {max_buffers} buffers")
                too_big.append(split)  # every oversized kernel of this plan, then one re-plan
            built.append((k, b))
        if not too_big:
            break
        forced.update(id(n) for n in too_big)
    if fuse:
        built = _merge(built, max_buffers)
    if rows:
        built = _fuse_rows(built, max_buffers)
    return [k for k, _ in built]


def _merge(built: list[tuple[_Draft, _Builder]], max_buffers: int) -> list[tuple[_Draft, _Builder]]:
    """Merge each elementwise kernel into an earlier one of the same shape, giving one
    kernel with several outputs, when
    - every kernel it depends on comes no later than that one (order stays valid),
    - it reads that kernel's outputs only at their own index (they stay in registers),
    - the result stays within the buffer limit, MAX_DEPTH and MAX_KERNEL_OPS."""
    merged: list[tuple[_Draft, _Builder]] = []
    where: dict[int, int] = {}  # id(stored node) -> index in merged
    by_shape: dict[tuple, list[int]] = defaultdict(list)  # elementwise kernels' indices, ascending
    for k, b in built:
        deps = [where[id(s.node)] for s in k.srcs if id(s.node) in where]
        first = max(deps, default=0)
        target = None
        if k.kind == "elementwise":
            same = by_shape[k.shape]
            start = bisect.bisect_left(same, first)
            for i in same[start : start + MAX_MERGE_TRIES]:
                if _can_merge(merged[i], (k, b), max_buffers):
                    target = i
                    break
        if target is None:
            merged.append((k, b))
            target = len(merged) - 1
            if k.kind == "elementwise":
                by_shape[k.shape].append(target)
        else:
            merged[target] = _merged(merged[target], (k, b))
        for o in k.outs:
            where[id(o)] = target
    return merged


def _can_merge(into: tuple[_Draft, _Builder], other: tuple[_Draft, _Builder], max_buffers: int) -> bool:
    (k1, b1), (k2, b2) = into, other
    outs1 = {id(o) for o in k1.outs}
    if any(id(s.node) in outs1 and not s.view.is_identity for s in k2.srcs):
        return False  # would read a buffer the same dispatch writes
    buffers = {id(s.node) for s in k1.srcs} | {id(s.node) for s in k2.srcs if id(s.node) not in outs1}
    return (
        len(buffers) + len(k1.outs) + len(k2.outs) <= max_buffers
        and b1.height + b2.height <= MAX_DEPTH
        and len(b1.members) + len(b2.members) <= MAX_KERNEL_OPS
    )


def _merged(into: tuple[_Draft, _Builder], other: tuple[_Draft, _Builder]) -> tuple[_Draft, _Builder]:
    """`into` extended with the outputs of `other`, computed in the same builder."""
    (k1, b), (k2, b2) = into, other
    b.gids |= b2.gids
    b.roots |= {id(o) for o in k2.outs}
    exprs = tuple(b.compute(o, View.contiguous(o.shape), "main") for o in k2.outs)
    k = _Draft("elementwise", k1.outs + k2.outs, tuple(b.srcs), k1.exprs + exprs)
    return k, b


# --------------------------------------------------------------------------- row kernels
ROW_REDUCTIONS = (Op.SUM, Op.RMAX, Op.RMIN)


def _fuse_rows(built: list[tuple[_Draft, _Builder]], max_buffers: int) -> list[tuple[_Draft, _Builder]]:
    """Fuse each elementwise kernel of shape (..., N) with the reductions over the last
    axis of the same shape that it reads (and those they read in turn), broadcast along
    the row, into one "rows" kernel (kernel.RowsArg) in the elementwise kernel's place:
    softmax's max, sum and divide; layer norm's mean, variance and normalise. Elementwise
    kernels of one value per row between them come along (layer norm's 1 / sqrt(var +
    eps), stored for backward). Its outputs are the elementwise kernel's and every other
    part's (whoever else reads them). Fused only when no kernel in between reads a part's
    result (it now comes later) and the buffers stay within `max_buffers`."""
    drafts = [k for k, _ in built]
    producer = {id(o): i for i, k in enumerate(drafts) for o in k.outs}
    taken: set[int] = set()
    groups: dict[int, list[int]] = {}  # elementwise draft -> its reductions, in order
    for i, k in enumerate(drafts):
        if k.kind != "elementwise" or not k.shape or math.prod(k.shape) == 0:
            continue
        members = _unread_between(drafts, _row_members(drafts, producer, i, taken), i)
        if not any(drafts[m].kind == "reduce" for m in members):
            continue
        if any(drafts[j].kind == "assign" for j in range(members[0], i)):
            continue  # (a reduction is not moved past an in-place write: it may read that buffer)
        parts = [*members, i]
        outs = {id(o) for j in parts for o in drafts[j].outs}
        external = {id(s.node) for j in parts for s in drafts[j].srcs if id(s.node) not in outs}
        if len(external) + len(outs) > max_buffers:
            continue
        taken.update(parts)
        groups[i] = members
    if not groups:
        return built
    fused = []
    for i, (k, b) in enumerate(built):
        if i in groups:
            fused.append((_rows_draft([drafts[j] for j in groups[i]], k), b))
        elif i not in taken:
            fused.append((k, b))
    return fused


def _row_members(drafts: list[_Draft], producer: dict[int, int], i: int, taken: set[int]) -> list[int]:
    """The reductions over the last axis of drafts[i]'s shape that drafts[i] reads, with
    those they read, and the elementwise kernels of one value per row among them that read
    one of those, in order; [] if one of them is read other than as its row's value."""
    shape = drafts[i].shape
    rows = math.prod(shape[:-1])
    members: set[int] = set()
    stack = [i]
    while stack:
        for s in drafts[stack.pop()].srcs:
            j = producer.get(id(s.node))
            if j is None or j in taken:
                continue
            if not (_is_row_reduction(drafts[j], shape) or _is_row_value(drafts[j], shape)):
                continue
            if not _reads_row_value(s.view, shape, rows):
                return []
            if j not in members:
                members.add(j)
                stack.append(j)
    while True:  # the per-row elementwise kernels that read no other part stay operands
        outs = {id(o) for m in members for o in drafts[m].outs}
        unrelated = {
            m
            for m in members
            if drafts[m].kind == "elementwise" and not any(id(s.node) in outs for s in drafts[m].srcs)
        }
        if not unrelated:
            return sorted(members)
        members -= unrelated


def _unread_between(drafts: list[_Draft], members: list[int], i: int) -> list[int]:
    """`members` less those whose result a kernel between them and drafts[i] reads (those
    stay where they are, as operands of the row kernel); [] if one that stays reads one
    that moves."""
    while members:
        moved = {id(o): m for m in members for o in drafts[m].outs}
        between = [j for j in range(members[0], i) if j not in members]
        stay = {moved[id(s.node)] for j in between for s in drafts[j].srcs if id(s.node) in moved}
        if not stay:
            return members
        members = [m for m in members if m not in stay]
        kept = {id(o) for m in members for o in drafts[m].outs}
        if any(id(s.node) in kept for m in stay for s in drafts[m].srcs):
            return []
    return []


def _is_row_reduction(k: _Draft, shape: tuple[int, ...]) -> bool:
    return (
        k.kind == "reduce"
        and k.op in ROW_REDUCTIONS
        and k.pre_shape == shape
        and tuple(k.arg) == (len(shape) - 1,)
        and len(k.outs) == 1
        and math.prod(k.shape) == math.prod(shape[:-1])
    )


def _is_row_value(k: _Draft, shape: tuple[int, ...]) -> bool:
    """Whether `k` is elementwise with one value per row of `shape` (rows longer than 1)."""
    return k.kind == "elementwise" and shape[-1] > 1 and math.prod(k.shape) == math.prod(shape[:-1])


def _reads_row_value(view: View, shape: tuple[int, ...], rows: int) -> bool:
    """Whether `view` reads a row reduction's result (`rows` values, row-major) at the
    row of each position: broadcast along the row over `shape`, or in order over an
    output of one value per row."""
    if view.offset != 0:
        return False
    if view.numel == rows and view.is_contiguous:
        return True
    if view.shape != shape or (shape[-1] != 1 and view.strides[-1] != 0):
        return False
    expected = View.contiguous(shape[:-1]).strides
    return all(n == 1 or s == e for n, s, e in zip(shape[:-1], view.strides[:-1], expected))


def _rows_draft(reductions: list[_Draft], elementwise: _Draft) -> _Draft:
    """The "rows" draft running `reductions` (with the per-row elementwise kernels among
    them) then `elementwise` (its `arg`)."""
    parts = (*reductions, elementwise)
    outs = elementwise.outs + tuple(o for r in reductions for o in r.outs)
    produced = {id(o) for o in outs}
    srcs: dict[tuple, _Src] = {}
    for p in parts:
        for s in p.srcs:
            if id(s.node) not in produced:
                srcs.setdefault((id(s.node), s.view, s.dtype), s)
    return _Draft("rows", outs, tuple(srcs.values()), (), arg=parts)


def _lower_rows(d: _Draft, index: dict[int, int]) -> Kernel:
    """A "rows" draft as a kernel over slots; its parts over local slots (kernel.RowsArg)."""
    outs = tuple(Out(index[id(o)], o.shape, o.dtype) for o in d.outs)
    srcs = tuple(Operand(index[id(s.node)], s.view, s.dtype) for s in d.srcs)
    local = {slot: i for i, slot in enumerate(local_slots(outs, srcs))}
    nodes = [o for p in d.arg for o in p.outs] + [s.node for p in d.arg for s in p.srcs]
    parts = _lower(list(d.arg), {id(n): local[index[id(n)]] for n in nodes})
    return rows_kernel(outs, srcs, tuple(parts))
