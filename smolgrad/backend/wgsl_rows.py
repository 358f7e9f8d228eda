"""WGSL for the "rows" kernel kind (shaders/rows.wgsl): reductions along each row in turn,
then the elementwise work reading them, with the row read from memory once (see
engine.kernel.RowsArg for the kind and its parts)."""

from __future__ import annotations

from collections import Counter
from typing import NamedTuple

from ..engine.kernel import Apply, Expr, Kernel, Load, _hashable, row_count
from ..graph import postorder
from ..ops import Op
from ..shaders import load_shader
from .wgsl import (
    REDUCE_COMBINE,
    REDUCE_IDENTITY,
    WORKGROUP,
    Input,
    bindings_code,
    coords_lines,
    dim_coords,
    expression_lines,
    expr_children,
    helpers_for,
    indent,
    kernel_detail,
    literal,
    output_names,
    pow2_at_least,
    rand_needs_coords,
    render,
    rounded,
    split_coords,
    storage_type,
    stored,
    wgsl_type,
)


class RowLayout(NamedTuple):
    """How a device lays rows out: about `work` elements per lane, at most `max_per_lane`
    (the loops over them unrolled), and at most `max_values` values kept per lane (a
    lane's elements times the operands and values it keeps for later steps)."""

    work: int
    max_per_lane: int
    max_values: int


GPU_LAYOUT = RowLayout(8, 16, 64)  # rows of up to 16 * 256 = 4096 elements in one pass
# lavapipe keeps a lane's values in registers only with constant indices, and its loads and
# stores are gathers and scatters: more work per lane pays there (rows of up to 8192)
CPU_LAYOUT = RowLayout(32, 32, 256)


def layout(n: int, device: RowLayout = GPU_LAYOUT) -> tuple[int, int]:
    """(lanes per row, elements per lane) for rows of `n` elements."""
    lanes = min(WORKGROUP, pow2_at_least(-(-n // device.work)))
    return lanes, -(-n // lanes)


class RegisterPlan:
    """What a lane keeps in registers across the steps (the reductions' prologues, then the
    elementwise part) of row kernel `k`: the operands more than one step reads (`cached`:
    x0, x1, ...) and the values a step computes that a later one needs again (`saved[i]`,
    computed in step i: y0, y1, ...; softmax's exp(x - max), layer norm's x - mean). Steps
    name a value by its structure (`keys`), each part's loads by where they read."""

    def __init__(self, k: Kernel) -> None:
        parts, reads = k.arg.parts, k.arg.reads
        self.steps = [(p, [part.pre]) for p, part in enumerate(parts[:-1]) if part.kind == "reduce"]
        self.steps.append((len(parts) - 1, list(parts[-1].exprs)))
        self.keys: dict[int, tuple] = {}
        self.varies: dict[int, bool] = {}  # whether a value changes along the row
        step_keys = []
        for p, exprs in self.steps:
            for e in postorder(exprs, expr_children):
                if isinstance(e, Load):
                    self.keys[id(e)] = ("L", reads[p][e.src], e.dtype.name)
                    self.varies[id(e)] = reads[p][e.src][0] == "src"
                elif isinstance(e, Apply):
                    args = tuple(self.keys[id(a)] for a in e.srcs)
                    self.keys[id(e)] = ("A", e.op, e.dtype.name, _hashable(e.arg), args)
                    self.varies[id(e)] = e.op is Op.RAND or any(self.varies[id(a)] for a in e.srcs)
                else:
                    self.keys[id(e)] = ("C", _hashable(getattr(e, "value", None)), e.dtype.name)
                    self.varies[id(e)] = False
            step_keys.append({self.keys[id(e)] for e in postorder(exprs, expr_children)})
        self.available: list[dict[tuple, str]] = []  # per step: saved values known before it
        self.saved: list[list[Expr]] = []
        names: dict[tuple, str] = {}
        for i, (p, exprs) in enumerate(self.steps):
            self.available.append(dict(names))
            later = set().union(*step_keys[i + 1 :])
            wanted = [
                e
                for e in self.evaluated(i)
                if isinstance(e, Apply) and self.varies[id(e)] and self.keys[id(e)] in later - names.keys()
            ]
            inner = {id(d) for e in wanted for d in postorder([e], expr_children) if d is not e}
            chosen: dict[tuple, Expr] = {}
            for e in wanted:
                if id(e) not in inner:
                    chosen.setdefault(self.keys[id(e)], e)
            for key in chosen:
                names[key] = f"y{len(names)}[t]"
            self.saved.append(list(chosen.values()))
        uses: Counter = Counter()
        for i, (p, _) in enumerate(self.steps):
            loads = {reads[p][e.src] for e in self.evaluated(i) if isinstance(e, Load)}
            uses.update(j for kind, j in loads if kind == "src")
        self.cached = sorted(j for j, n in uses.items() if n > 1)

    def row_values(self, i: int) -> list[Expr]:
        """The largest values step i computes that are the same along the row (made of
        reductions' results and constants): computed once per row."""
        frontier: dict[int, Expr] = {}
        for e in self.evaluated(i):
            if isinstance(e, Apply) and self.keys[id(e)] not in self.available[i]:
                if not self.varies[id(e)] and e in self.steps[i][1]:
                    frontier[id(e)] = e
                elif self.varies[id(e)]:
                    for a in e.srcs:
                        if isinstance(a, Apply) and not self.varies[id(a)]:
                            frontier[id(a)] = a
        return list(frontier.values())

    def evaluated(self, i: int) -> list[Expr]:
        """The values step i computes (or reads), given the values saved before it."""
        known = self.available[i]
        return postorder(self.steps[i][1], lambda e: () if self.keys[id(e)] in known else expr_children(e))

    @property
    def registers(self) -> int:
        """Values of the row each lane keeps per element it holds."""
        return len(self.cached) + sum(len(s) for s in self.saved)


def fits(k: Kernel, device: RowLayout = GPU_LAYOUT) -> bool:
    """Whether a workgroup can hold the rows of `k` (else the backend runs its parts)."""
    _, per_lane = layout(k.shape[-1], device)
    return per_lane <= device.max_per_lane and per_lane * max(1, RegisterPlan(k).registers) <= device.max_values


def groups(k: Kernel, device: RowLayout = GPU_LAYOUT) -> int:
    """Workgroups of one dispatch of `k`."""
    lanes, _ = layout(k.shape[-1], device)
    return -(-row_count(k) // (WORKGROUP // lanes))


def _element_coords(shape: tuple[int, ...]) -> tuple[list[str], list[str | None]]:
    """Lines naming the coordinates of element `col` of row `row`, and the names."""
    nd = len(shape)
    lines = split_coords(shape, range(nd - 1), "row")
    if shape[-1] != 1:
        lines.append(f"let c{nd - 1} = col;")
    return lines, dim_coords(shape)


def _combine_lines(acc: str, combine: str, shared: str, subgroups: bool, lanes: int) -> list[str]:
    """WGSL lines leaving in `acc`, in every lane, the combination of the segment's `acc`s.
    With subgroups: a butterfly within each subgroup's block of the segment (every lane of
    the block then holds its value: a + b == b + a, so the same one), then the blocks'
    values through workgroup memory. Without: a tree in workgroup memory."""
    if lanes == 1:
        return []
    step = combine.format(a=acc, b="{}")
    if subgroups:
        return [
            "for (var offset = 1u; offset < min(LANES, sg_size); offset = offset << 1u) {",
            f"    {acc} = {step.format(f'subgroupShuffleXor({acc}, offset)')};",
            "}",
            "if (LANES > sg_size) {  // the blocks' values: lane 0 combines them",
            f"    {shared}[lid] = {acc};",
            "    workgroupBarrier();",
            "    if (lane == 0u) {",
            "        for (var k = sg_size; k < LANES; k += sg_size) {",
            f"            {acc} = {step.format(f'{shared}[first + k]')};",
            "        }",
            f"        {shared}[first] = {acc};",
            "    }",
            "    workgroupBarrier();",
            f"    {acc} = {shared}[first];",
            "    workgroupBarrier();",
            "}",
        ]
    return [
        f"{shared}[lid] = {acc};",
        "workgroupBarrier();",
        "for (var step = LANES / 2u; step > 0u; step = step >> 1u) {",
        "    if (lane < step) {",
        f"        {shared}[lid] = {combine.format(a=f'{shared}[lid]', b=f'{shared}[lid + step]')};",
        "    }",
        "    workgroupBarrier();",
        "}",
        f"{acc} = {shared}[first];",
        "workgroupBarrier();",
    ]


def _over_row(lines: list[str], per_lane: int, lanes: int, n: int, stores: list[str] = ()) -> list[str]:
    """`lines` (then `stores`, in live rows only) for each of this lane's elements `col`
    of the row, unrolled: the `t`-th of the lane's elements is x0[t], y0[t], ... with t a
    constant, so that a compiler keeps those arrays in registers (a dynamic index makes
    lavapipe gather and scatter them). Only the elements past the row's end that some
    lanes have are tested for (a dead lane's row is clamped to the last one: it computes
    but stores nothing)."""
    out = []
    for t in range(per_lane):
        body = ["let gid = row * N + col;", *lines]
        if stores:
            body += ["if (live) {", *("    " + line for line in stores), "}"]
        body = [line.replace("[t]", f"[{t}]") for line in body]
        if (t + 1) * lanes > n:
            body = ["if (col < N) {", *("    " + line for line in body), "}"]
        out += ["{", f"    let col = i32(lane) + {t}i * i32(LANES);", *("    " + line for line in body), "}"]
    return out


def rows_source(
    k: Kernel, inputs: list[Input], bindings: list[tuple[str, str]], subgroups: bool, device: RowLayout = GPU_LAYOUT
) -> str:
    """The shader of row kernel `k` over its operands `inputs` (aligned with k.srcs)."""
    shape, parts, reads = k.shape, k.arg.parts, k.arg.reads
    lanes, per_lane = layout(shape[-1], device)
    coord_lines, coords = _element_coords(shape)
    plan = RegisterPlan(k)
    cached = plan.cached
    outs = output_names(len(k.outs))  # by the parts' (local) slot: the outputs come first
    body: list[str] = []

    def step_lines(i: int, roots: list[Expr]) -> tuple[list[str], list[str], list[str]]:
        """The lines of step i before the row (the values that are the same along it: a
        row's mean, its 1 / sqrt(variance + eps)), for this lane's element `col` (saving
        what later steps need), and the names of `roots`."""
        p = plan.steps[i][0]
        part_inputs = [inputs[j] if kind == "src" else None for kind, j in reads[p]]
        known = {}
        for e in plan.evaluated(i):
            key = plan.keys[id(e)]
            if key in plan.available[i]:
                known[id(e)] = plan.available[i][key]
            elif isinstance(e, Load):
                kind, j = reads[p][e.src]
                if kind == "red":
                    known[id(e)] = f"red{j}"
                elif j in cached:
                    known[id(e)] = f"x{cached.index(j)}[t]"
        hoisted = plan.row_values(i)
        before, names = expression_lines(hoisted, part_inputs, coords, None, known)
        for m, (e, name) in enumerate(zip(hoisted, names)):
            before += [f"h{i}_{m} = {name};"]
            known[id(e)] = f"h{i}_{m}"
        if hoisted:
            before = [f"var h{i}_{m}: {wgsl_type(e.dtype)};" for m, e in enumerate(hoisted)] + ["{", *before, "}"]
        saved = plan.saved[i]
        lines, values = expression_lines([*roots, *saved], part_inputs, coords, "gid", known)
        first = len(plan.available[i])
        lines += [f"y{first + m}[t] = {v};" for m, v in enumerate(values[len(roots):])]
        loads = [e for e in plan.evaluated(i) if isinstance(e, Load) and id(e) not in known]
        needs = rand_needs_coords([*roots, *saved]) or any(not part_inputs[e.src].view.is_contiguous for e in loads)
        return before, (coord_lines if needs else []) + lines, values[: len(roots)]

    # the operands read by several steps, loaded once
    loads = [Load(c, inputs[j].dtype) for c, j in enumerate(cached)]
    lines, values = expression_lines(loads, [inputs[j] for j in cached], coords, "gid")
    loads = lines + [f"x{c}[t] = {v};" for c, v in enumerate(values)]
    for c, j in enumerate(cached):
        body.append(f"var x{c}: array<{wgsl_type(inputs[j].dtype)}, {per_lane}>;")
    saved = [e for step in plan.saved for e in step]
    body += [f"var y{m}: array<{wgsl_type(e.dtype)}, {per_lane}>;" for m, e in enumerate(saved)]
    if cached:
        needs = any(not inputs[j].view.is_contiguous for j in cached)
        body += _over_row((coord_lines if needs else []) + loads, per_lane, lanes, shape[-1])

    def row_value_lines(p: int, first: int) -> list[str]:
        """Part p's outputs (row values first, first + 1, ...) at this lane's row: a
        reduction's epilogue (of `acc`), or a per-row elementwise part; lane 0 stores them."""
        part = parts[p]
        part_inputs = [inputs[j] if kind == "src" else None for kind, j in reads[p]]
        exprs = list(part.exprs)
        known = {id(e): f"red{reads[p][e.src][1]}" for e in postorder(exprs, expr_children)
                 if isinstance(e, Load) and reads[p][e.src][0] == "red"}
        lines, values = expression_lines(exprs, part_inputs, dim_coords(part.shape), "row", known)
        direct = [e for e in postorder(exprs, expr_children) if isinstance(e, Load) and id(e) not in known]
        needs = rand_needs_coords(exprs) or any(not part_inputs[e.src].view.is_contiguous for e in direct)
        inner = (coords_lines(part.shape, "row") if needs else []) + lines
        stores = []
        for v, (o, value) in enumerate(zip(part.outs, values), start=first):
            inner.append(f"red{v} = {rounded(value, o.dtype)};")
            stores.append(f"    {outs[o.slot]}[row] = {stored(value, o.dtype)};")
        if part.kind == "reduce":
            inner.insert(0, f"let acc = acc{p};")
        declared = [f"var red{v} = {literal(0, wgsl_type(o.dtype))};" for v, o in enumerate(part.outs, start=first)]
        return [*declared, "{", *("    " + line for line in inner), "    if (live && lane == 0u) {",
                *("    " + line for line in stores), "    }", "}"]

    shared_types: set[str] = set()
    step_of = {p: i for i, (p, _) in enumerate(plan.steps)}
    first = 0  # the number of the part's first row value
    for p, part in enumerate(parts[:-1]):
        if part.kind == "reduce":
            t = wgsl_type(part.pre.dtype)
            shared_types.add(t)
            combine = REDUCE_COMBINE[(part.op, t)]
            before, lines, (value,) = step_lines(step_of[p], [part.pre])
            body += before
            body.append(f"var acc{p} = {literal(REDUCE_IDENTITY[(part.op, t)], t)};")
            accumulate = f"acc{p} = {combine.format(a=f'acc{p}', b=value)};"
            body += _over_row([*lines, accumulate], per_lane, lanes, shape[-1])
            body += _combine_lines(f"acc{p}", combine, f"partial_{t}", subgroups, lanes)
        body += row_value_lines(p, first)
        first += len(part.outs)
    # the elementwise part
    part = parts[-1]
    before, lines, values = step_lines(len(plan.steps) - 1, list(part.exprs))
    body += before
    stores = [f"{outs[o.slot]}[gid] = {stored(v, o.dtype)};" for o, v in zip(part.outs, values)]
    body += _over_row(lines, per_lane, lanes, shape[-1], stores)

    code = indent(body, 1)
    shared = "\n".join(f"var<workgroup> partial_{t}: array<{t}, {WORKGROUP}>;" for t in sorted(shared_types))
    how = "subgroup shuffles, then workgroup memory" if subgroups else "a tree in workgroup memory"
    grouped = subgroups and lanes > 1
    if lanes == 1:
        shared = ""
    return render(
        load_shader("rows"),
        name=k.name,
        layout=f"{lanes} lanes per row, {per_lane} elements per lane" + (", subgroups" if grouped else ""),
        detail=f"{kernel_detail(k)}\n// {row_count(k)} rows of {k.shape[-1]}",
        combine_how=how if lanes > 1 else "none (one lane per row)",
        bindings=bindings_code([storage_type(o.dtype) for o in k.outs], bindings),
        helpers=helpers_for(code),
        lanes=lanes,
        per_group=WORKGROUP // lanes,
        per_lane=per_lane,
        rows=row_count(k),
        n=k.shape[-1],
        shared=shared,
        builtins="\n    @builtin(subgroup_size) sg_size: u32," if grouped else "",
        body=code,
    )
