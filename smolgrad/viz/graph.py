"""Draw the graph behind a tensor as Graphviz DOT, like torchviz's make_dot.

    g = smolgrad.viz.graph(loss, params=dict(model.named_parameters()))
    g.save("loss.dot"); g.render("loss.svg")      # SVG/PNG/PDF need Graphviz
    smolgrad.viz.graph(loss, kernels=True)         # the primitive ops, boxed by fused kernel

The autograd graph (the default) has one node per recorded op (its backward Function,
with the shape of its output), one per leaf tensor that requires grad (named from
`params`), and, dotted, what each op saved for backward. With `kernels=True` it is the
lazy graph of primitive ops that computing the tensor needs, each kernel of the fusion
pass's schedule a box around the ops it runs: the same kernel list, in the same order,
that SMOLGRAD_DEBUG=1 prints when the tensor is computed. Nothing is run either way.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from ..autograd.engine import Function
from ..graph import postorder
from ..ops import Op

if TYPE_CHECKING:
    from ..lazy import LazyBuffer
    from ..engine.kernel import Kernel
    from ..tensor import Tensor

_RENDER_FORMATS = ("svg", "png", "pdf")
_HOW_TO_RENDER = ("install the Python package (pip install graphviz) and the Graphviz `dot` program "
                  "(apt install graphviz, brew install graphviz, or https://graphviz.org/download/)")


class Graph:
    """A drawn graph: `.source` is its DOT text; `save`/`render` write it to a file."""

    def __init__(self, source: str, kernels: list[Kernel] | None = None):
        self.source = source
        self.kernels = kernels  # with kernels=True: the schedule drawn, in order

    def __repr__(self) -> str:
        return f"<smolgrad.viz.Graph: {self.source.count(' -> ')} edges>"

    def __str__(self) -> str:
        return self.source

    def save(self, path: str | Path) -> Path:
        """Write the DOT source to `path` (a .dot or .gv file), or render it for .svg/.png/.pdf."""
        path = Path(path)
        if path.suffix.lstrip(".").lower() in _RENDER_FORMATS:
            return self.render(path)
        path.write_text(self.source)
        return path

    def render(self, path: str | Path) -> Path:
        """Write the graph to `path` in the format its suffix names: .dot/.gv (DOT text, no
        Graphviz needed), or .svg/.png/.pdf (through the graphviz package and `dot`)."""
        path = Path(path)
        fmt = path.suffix.lstrip(".").lower()
        if fmt in ("dot", "gv"):
            path.write_text(self.source)
            return path
        if fmt not in _RENDER_FORMATS:
            raise ValueError(f"Graph.render: cannot write {path.name!r}: use a .dot, .gv, .svg, .png or .pdf path")
        try:
            import graphviz
        except ImportError:
            raise RuntimeError(f"Graph.render: drawing {path.name} needs Graphviz: {_HOW_TO_RENDER}; "
                               "or save the DOT text with .save('graph.dot')") from None
        if shutil.which("dot") is None:
            raise RuntimeError(f"Graph.render: the Graphviz `dot` program is not on PATH, so {path.name} cannot be "
                               f"drawn: {_HOW_TO_RENDER}; or save the DOT text with .save('graph.dot')")
        path.write_bytes(graphviz.Source(self.source).pipe(format=fmt))
        return path

    def _repr_svg_(self) -> str | None:  # Jupyter shows the drawing when Graphviz is there
        try:
            import graphviz
        except ImportError:
            return None
        return graphviz.Source(self.source).pipe(format="svg").decode() if shutil.which("dot") else None


def graph(tensor: Tensor, params: Mapping[str, Tensor] | None = None, kernels: bool = False) -> Graph:
    """The autograd graph behind `tensor` (or, with `kernels=True`, its primitive ops grouped
    into fused kernels) as a Graph with DOT `.source`; leaves named from `params`
    (e.g. dict(model.named_parameters()))."""
    from ..tensor import Tensor

    if not isinstance(tensor, Tensor):
        raise TypeError(f"viz.graph: expected a Tensor, got {type(tensor).__name__}")
    params = dict(params or {})
    for name, p in params.items():
        if not isinstance(p, Tensor):
            raise TypeError(f"viz.graph: params[{name!r}] is a {type(p).__name__}, not a Tensor; "
                            "pass dict(model.named_parameters())")
    if kernels:
        return _kernel_graph(tensor, params)
    return _autograd_graph(tensor, params)


# ----- DOT helpers -----

def _q(text: str) -> str:
    """A DOT string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _shape(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _dot(name: str, lines: list[str]) -> str:
    head = [f"digraph {name} {{", "  rankdir=BT;",
            '  node [fontname="Helvetica", fontsize=11, shape=box, style=filled, fillcolor="#ffffff"];',
            '  edge [fontname="Helvetica", fontsize=9];']
    return "\n".join(head + ["  " + line for line in lines] + ["}"]) + "\n"


# ----- the autograd graph -----

def _leaf_label(t: Tensor, names: dict[int, str]) -> str:
    name = names.get(id(t))
    return (f"{name}\n" if name else "") + f"{_shape(t.shape)} {t.dtype.name}"


def _autograd_graph(tensor: Tensor, params: dict[str, Tensor]) -> Graph:
    names = {id(p): name for name, p in params.items()}
    ids: dict[int, str] = {}

    def node_id(obj) -> str:
        return ids.setdefault(id(obj), f"n{len(ids)}")

    lines = []
    root = tensor._ctx if tensor._ctx is not None else tensor
    order = postorder([root], lambda n: [x for x in n.next if x is not None] if isinstance(n, Function) else [])
    for n in order:
        if isinstance(n, Function):
            shape = getattr(n, "out_shape", None)
            label = n.name + (f"\n{_shape(shape)}" if shape is not None else "")
            if n.released:
                label += "\n(freed by backward)"
            lines.append(f"{node_id(n)} [label={_q(label)}, fillcolor=\"#dddddd\"];")
            for i, nxt in enumerate(n.next):
                if nxt is not None:
                    lines.append(f"{node_id(nxt)} -> {node_id(n)};")
            for i, saved in enumerate(getattr(n, "_saved", ()) if not n.released else ()):
                if saved is None:
                    continue
                name = names.get(id(saved))
                what = f"saved: {name}" if name else f"saved {i}"
                sid = f"{node_id(n)}_s{i}"
                label = f"{what}\n{_shape(saved.shape)}"
                lines.append(f"{sid} [label={_q(label)}, shape=note, fillcolor=\"#ffe0b0\"];")
                lines.append(f"{sid} -> {node_id(n)} [style=dotted, arrowhead=none];")
        else:  # a leaf tensor that requires grad: AccumulateGrad in PyTorch
            lines.append(f"{node_id(n)} [label={_q(_leaf_label(n, names))}, fillcolor=\"#b0e0ff\"];")
    out_label = f"{_shape(tensor.shape)} {tensor.dtype.name}"
    if tensor._ctx is not None:
        lines.append(f"out [label={_q('output ' + out_label)}, fillcolor=\"#c0f0c0\"];")
        lines.append(f"{node_id(root)} -> out;")
    elif not tensor.requires_grad:
        label = f"output {out_label}\n(no autograd history)"
        lines.append(f"out [label={_q(label)}];")
    return Graph(_dot("autograd", lines))


# ----- the lazy graph, boxed by kernel -----

def _kernel_members(k: Kernel, nodes: list[LazyBuffer]) -> list[LazyBuffer]:
    """The unrealized nodes kernel `k` computes: from its outputs back to the buffers it
    reads (`nodes`: the graph node of each of the schedule's slots)."""
    boundary = {id(nodes[s.slot]) for s in k.srcs}
    outputs = [nodes[o.slot] for o in k.outs]
    outs = {id(o) for o in outputs}

    def sources(n: LazyBuffer) -> list[LazyBuffer]:
        if n.realized is not None or (id(n) in boundary and id(n) not in outs):
            return []
        return [s.base for s in n.srcs]

    return [n for n in postorder(outputs, sources)
            if n.realized is None and (id(n) not in boundary or id(n) in outs)]


def _kernel_graph(tensor: Tensor, params: dict[str, Tensor]) -> Graph:
    from ..device import get_backend
    from ..engine.schedule import schedule

    names = {id(p.lazydata.base): name for name, p in params.items()}
    base = tensor.lazydata.base
    kernel_list, nodes = schedule([base], get_backend(base.device).max_storage_buffers)
    ids: dict[int, str] = {}

    def node_id(n) -> str:
        return ids.setdefault(id(n), f"n{len(ids)}")

    def op_label(n: LazyBuffer) -> str:
        if n.op is Op.CONST:
            return f"{n.arg:g}" if isinstance(n.arg, float) else str(n.arg)
        name = names.get(id(n))
        return (f"{name} = " if name else "") + f"{n.op.name.lower()}\n{_shape(n.shape)}"

    lines, placed, edges = [], set(), []
    for i, k in enumerate(kernel_list):
        members = _kernel_members(k, nodes)
        lines.append(f"subgraph cluster_k{i} {{")
        title = f"kernel {i}: {k.name}"
        lines.append(f"  label={_q(title)}; style=rounded; color=\"#6060c0\";")
        for n in members:
            if id(n) in placed:  # recomputed here too: drawn in its first kernel only
                continue
            placed.add(id(n))
            if n.op is Op.CONST:  # a constant baked into the kernel's source
                lines.append(f"  {node_id(n)} [label={_q(op_label(n))}, shape=plaintext, style=\"\"];")
                continue
            stored = any(n is nodes[o.slot] for o in k.outs)
            fill = "#c0f0c0" if stored else "#eeeeee"
            label = op_label(n) + (" (stored)" if stored else "")
            lines.append(f"  {node_id(n)} [label={_q(label)}, fillcolor=\"{fill}\"];")
        lines.append("}")
        for n in members:
            for s in n.srcs:
                edges.append((s.base, n))
    # inputs: realized buffers (parameters, data) and constants
    for src, dst in edges:
        if id(src) not in placed:
            placed.add(id(src))
            if src.op is Op.CONST:
                label = op_label(src)
            else:
                label = (names.get(id(src)) or "input") + f"\n{_shape(src.shape)} {src.dtype.name}"
            lines.append(f"{node_id(src)} [label={_q(label)}, fillcolor=\"#b0e0ff\"];")
    lines += sorted({f"{node_id(s)} -> {node_id(d)};" for s, d in edges})
    if not kernel_list:
        lines.append(f"out [label={_q('already computed ' + _shape(tensor.shape))}];")
    return Graph(_dot("kernels", lines), kernel_list)
