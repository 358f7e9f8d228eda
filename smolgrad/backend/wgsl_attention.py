"""WGSL for the ATTENTION kernel kind (flash attention: shaders/attention_*.wgsl).

Every operand is read through its own view: an operand of view shape (*B, R, C) is read
at (z, r, c) by `<name>_at(z, r, c)`, so transposed, sliced (the GPT's q, k and v are
views of one qkv buffer) and broadcast (a mask) operands need no copy."""

from __future__ import annotations

import math

from ..ops import AttentionArg
from ..shaders import load_shader
from ..view import View
from .wgsl import Input, bindings_code, helpers_for, literal, offset_fn, render

ROWS = 64  # query (or key) rows per workgroup: one per thread
MAX_TILE_ROWS = 32  # rows of keys (or queries) staged per step
WORKGROUP_FLOATS = 4096  # 16 KiB, the WebGPU default max_compute_workgroup_storage_size

OPERANDS = {
    "forward": ("q", "k", "v"),
    "backward_q": ("q", "k", "v", "lse", "delta", "dout"),
    "backward_kv": ("q", "k", "v", "lse", "delta", "dout"),
}


def operand_fn(name: str, binding: str, view: View, width: int) -> str:
    """`fn <name>_at(z, r, c) -> i32`: the element index of batch z, row r, column c; and
    `fn <name>_load(z, r, c4)`: columns width*c4 .. width*c4 + width - 1 of that row (a
    vec4 for width 4, else one f32)."""
    nb = len(view.shape) - 2
    batch = offset_fn(f"{name}_batch", "z", view.shape[:nb], view.strides[:nb], view.offset)
    rs, cs = view.strides[-2], view.strides[-1]
    at = f"fn {name}_at(z: i32, r: i32, c: i32) -> i32 {{\n    return {name}_batch(z) + r * {rs}i + c * {cs}i;\n}}"
    if width == 1:
        load = f"fn {name}_load(z: i32, r: i32, c: i32) -> f32 {{\n    return {binding}[{name}_at(z, r, c)];\n}}"
    else:
        parts = ", ".join(f"{binding}[i + {t * cs}i]" for t in range(4))
        load = (f"fn {name}_load(z: i32, r: i32, c4: i32) -> vec4<f32> {{\n    let i = {name}_at(z, r, 4i * c4);\n"
                f"    return vec4<f32>({parts});\n}}")
    return f"{batch}\n\n{at}\n\n{load}"


VECTOR_FNS = {
    1: "fn vdot(a: f32, b: f32) -> f32 {\n    return a * b;\n}\n\nfn part(x: f32, t: i32) -> f32 {\n    return x;\n}",
    4: "fn vdot(a: vec4<f32>, b: vec4<f32>) -> f32 {\n    return dot(a, b);\n}\n\n"
    "fn part(x: vec4<f32>, t: i32) -> f32 {\n    return x[t];\n}",
}


def tile_rows(floats_per_row: int, workgroup_floats: int = WORKGROUP_FLOATS) -> int:
    """Rows staged per step so that the tiles fit in workgroup memory."""
    return max(1, min(MAX_TILE_ROWS, workgroup_floats // floats_per_row))


def grid(arg: AttentionArg, out_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """Workgroups: (row blocks, batch, 1)."""
    return (-(-out_shape[-2] // ROWS), math.prod(out_shape[:-2]), 1)


def attention_source(arg: AttentionArg, inputs: list[Input], bindings: list[tuple[str, str]], detail: str,
                     workgroup_floats: int = WORKGROUP_FLOATS) -> str:
    """The shader of one ATTENTION node (part `arg.part`) over operands `inputs`."""
    names = OPERANDS[arg.part] + (("bias",) if arg.bias else ())
    ops = dict(zip(names, inputs))
    q, v = ops["q"].view.shape, ops["v"].view.shape
    L, D, S, DV = q[-2], q[-1], v[-2], v[-1]
    width = 4 if D % 4 == 0 and DV % 4 == 0 else 1  # rows read and kept as vec4s
    fns = "\n\n".join(operand_fn(n, x.binding, x.view, width) for n, x in ops.items())
    values = dict(
        detail=detail,
        bindings=bindings_code(["f32"], bindings),
        operand_fns=fns,
        L=f"{L}i",
        S=f"{S}i",
        D=f"{D}i",
        DV=f"{DV}i",
        BR=f"{ROWS}",
        W=str(width),
        V="vec4<f32>" if width == 4 else "f32",
        vector_fns=VECTOR_FNS[width],
        scale=literal(arg.scale, "f32"),
        causal_test=" || j > i" if arg.causal else "",
        **{n: x.binding for n, x in ops.items()},
    )
    if arg.part == "backward_kv":
        bc = tile_rows(D + DV + 2, workgroup_floats)
        values.update(q_tile_size=bc * D // width, do_tile_size=bc * DV // width, query_start="key0" if arg.causal else "0i")
        bias_at = "i, kj"
    else:
        bc = tile_rows(D + DV, workgroup_floats)
        values.update(k_tile_size=bc * D // width, v_tile_size=bc * DV // width, key_end="min(S, row0 + BR)" if arg.causal else "S")
        bias_at = "qi, min(j, S - 1)"
    values.update(BC=f"{bc}i", add_bias=f"x = x + {ops['bias'].binding}[bias_at(z, {bias_at})];" if arg.bias else "")
    values["helpers"] = helpers_for(fns)
    values["common"] = render(load_shader("attention_common"), **values)
    return render(load_shader(f"attention_{arg.part}"), **values)
