"""WGSL for the "rows" kernel kind (shaders/rows.wgsl): reductions along each row in turn,
then the elementwise work reading them, with the row read from memory once (see
engine/rows.py for the kind and its parts)."""

from __future__ import annotations

from collections import Counter
from typing import NamedTuple

from ..engine.kernel import Kernel, Load
from ..engine.rows import row_count
from ..graph import postorder
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
    (held in registers on a GPU; a CPU adapter keeps them in its cache, and prefers a row
    per SIMD vector of lanes, with no barriers, to many lanes with barriers)."""

    work: int
    max_per_lane: int


GPU_LAYOUT = RowLayout(8, 16)  # rows of up to 16 * 256 = 4096 elements in one pass
CPU_LAYOUT = RowLayout(128, 512)


def layout(n: int, device: RowLayout = GPU_LAYOUT) -> tuple[int, int]:
    """(lanes per row, elements per lane) for rows of `n` elements."""
    lanes = min(WORKGROUP, pow2_at_least(-(-n // device.work)))
    return lanes, -(-n // lanes)


def cached_operands(k: Kernel) -> list[int]:
    """The operands read at the row's elements by more than one part: loaded once."""
    uses: Counter = Counter()
    for part, reads in zip(k.arg.parts, k.arg.reads):
        exprs = [part.pre] if part.kind == "reduce" else list(part.exprs)
        used = {reads[e.src] for e in postorder(exprs, expr_children) if isinstance(e, Load)}
        uses.update(j for kind, j in used if kind == "src")
    return sorted(j for j, n in uses.items() if n > 1)


def fits(k: Kernel, device: RowLayout = GPU_LAYOUT) -> bool:
    """Whether a workgroup can hold the rows of `k` (else the backend runs its parts)."""
    _, per_lane = layout(k.shape[-1], device)
    return per_lane * max(1, len(cached_operands(k))) <= 4 * device.max_per_lane and per_lane <= device.max_per_lane


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


def _over_row(lines: list[str]) -> list[str]:
    """`lines` for each of this lane's elements `col` of the row (`t`-th of the lane)."""
    return [
        "for (var t = 0i; t < PER_LANE; t++) {",
        "    let col = i32(lane) + t * i32(LANES);",
        "    if (live && col < N) {",
        "        let gid = row * N + col;",
        *("        " + line for line in lines),
        "    }",
        "}",
    ]


def rows_source(
    k: Kernel, inputs: list[Input], bindings: list[tuple[str, str]], subgroups: bool, device: RowLayout = GPU_LAYOUT
) -> str:
    """The shader of row kernel `k` over its operands `inputs` (aligned with k.srcs)."""
    shape, parts, reads = k.shape, k.arg.parts, k.arg.reads
    lanes, per_lane = layout(shape[-1], device)
    coord_lines, coords = _element_coords(shape)
    cached = cached_operands(k)
    outs = output_names(len(k.outs))  # by the parts' (local) slot: the outputs come first
    body: list[str] = []

    def names(p: int, region: str) -> tuple[list, dict[int, str]]:
        """Part p's operands as Inputs (None for a reduction's result) and the names of its
        loads that are registers or earlier results."""
        part_inputs = [inputs[j] if kind == "src" else None for kind, j in reads[p]]
        exprs = [parts[p].pre] if region == "pre" else list(parts[p].exprs)
        known = {}
        for e in postorder(exprs, expr_children):
            if isinstance(e, Load):
                kind, j = reads[p][e.src]
                if kind == "red":
                    known[id(e)] = f"red{j}"
                elif region != "epilogue" and j in cached:
                    known[id(e)] = f"x{cached.index(j)}[t]"
        return part_inputs, known

    def needs_coords(exprs, part_inputs, known) -> bool:
        loads = [e for e in postorder(exprs, expr_children) if isinstance(e, Load) and id(e) not in known]
        return rand_needs_coords(exprs) or any(not part_inputs[e.src].view.is_contiguous for e in loads)

    # the cached operands, loaded once
    loads = [Load(c, inputs[j].dtype) for c, j in enumerate(cached)]
    lines, values = expression_lines(loads, [inputs[j] for j in cached], coords, "gid")
    loads = lines + [f"x{c}[t] = {v};" for c, v in enumerate(values)]
    for c, j in enumerate(cached):
        body.append(f"var x{c}: array<{wgsl_type(inputs[j].dtype)}, {per_lane}>;")
    if cached:
        needs = any(not inputs[j].view.is_contiguous for j in cached)
        body += _over_row((coord_lines if needs else []) + loads)

    shared_types: set[str] = set()
    for p, part in enumerate(parts[:-1]):  # the reductions
        t = wgsl_type(part.pre.dtype)
        shared_types.add(t)
        combine = REDUCE_COMBINE[(part.op, t)]
        part_inputs, known = names(p, "pre")
        lines, (value,) = expression_lines([part.pre], part_inputs, coords, "gid", known)
        pre_coords = coord_lines if needs_coords([part.pre], part_inputs, known) else []
        body.append(f"var acc{p} = {literal(REDUCE_IDENTITY[(part.op, t)], t)};")
        body += _over_row([*pre_coords, *lines, f"acc{p} = {combine.format(a=f'acc{p}', b=value)};"])
        body += _combine_lines(f"acc{p}", combine, f"partial_{t}", subgroups, lanes)
        # the epilogue: the reduction's stored value, at its row
        part_inputs, known = names(p, "epilogue")
        expr = part.exprs[0]
        lines, (value,) = expression_lines([expr], part_inputs, dim_coords(part.shape), "row", known)
        epi_coords = coords_lines(part.shape, "row") if needs_coords([expr], part_inputs, known) else []
        out_t = wgsl_type(part.out.dtype)
        body += [
            f"var red{p} = {literal(0, out_t)};",
            "if (live) {",
            f"    let acc = acc{p};",
            *("    " + line for line in [*epi_coords, *lines]),
            f"    red{p} = {rounded(value, part.out.dtype)};",
            "    if (lane == 0u) {",
            f"        {outs[part.out.slot]}[row] = {stored(value, part.out.dtype)};",
            "    }",
            "}",
        ]
    # the elementwise part
    p = len(parts) - 1
    part = parts[p]
    part_inputs, known = names(p, "main")
    lines, values = expression_lines(part.exprs, part_inputs, coords, "gid", known)
    main_coords = coord_lines if needs_coords(part.exprs, part_inputs, known) else []
    stores = [f"{outs[o.slot]}[gid] = {stored(v, o.dtype)};" for o, v in zip(part.outs, values)]
    body += _over_row([*main_coords, *lines, *stores])

    code = indent(body, 1)
    shared = "\n".join(f"var<workgroup> partial_{t}: array<{t}, {WORKGROUP}>;" for t in sorted(shared_types)) if lanes > 1 else ""
    how = "subgroup shuffles, then workgroup memory" if subgroups else "a tree in workgroup memory"
    return render(
        load_shader("rows"),
        name=k.name,
        layout=f"{lanes} lanes per row, {per_lane} elements per lane" + (", subgroups" if subgroups and lanes > 1 else ""),
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
        builtins="\n    @builtin(subgroup_size) sg_size: u32," if subgroups and lanes > 1 else "",
        body=code,
    )
