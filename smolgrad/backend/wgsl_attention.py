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


def operand_fn(name: str, view: View) -> str:
    """`fn <name>_at(z, r, c) -> i32`: the element index of batch z, row r, column c."""
    nb = len(view.shape) - 2
    batch = offset_fn(f"{name}_batch", "z", view.shape[:nb], view.strides[:nb], view.offset)
    rs, cs = view.strides[-2], view.strides[-1]
    return batch + f"\n\nfn {name}_at(z: i32, r: i32, c: i32) -> i32 {{\n    return {name}_batch(z) + r * {rs}i + c * {cs}i;\n}}"


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
    fns = "\n\n".join(operand_fn(n, x.view) for n, x in ops.items())
    values = dict(
        detail=detail,
        bindings=bindings_code(["f32"], bindings),
        operand_fns=fns,
        L=f"{L}i",
        S=f"{S}i",
        D=f"{D}i",
        DV=f"{DV}i",
        BR=f"{ROWS}",
        scale=literal(arg.scale, "f32"),
        causal_test=" || j > i" if arg.causal else "",
        **{n: x.binding for n, x in ops.items()},
    )
    if arg.part == "backward_kv":
        bc = tile_rows(D + DV + 2, workgroup_floats)
        values.update(q_tile_size=bc * D, do_tile_size=bc * DV, query_start="key0" if arg.causal else "0i")
        bias_at = "i, kj"
    else:
        bc = tile_rows(D + DV, workgroup_floats)
        values.update(k_tile_size=bc * D, v_tile_size=bc * DV, key_end="min(S, row0 + BR)" if arg.causal else "S")
        bias_at = "qi, min(j, S - 1)"
    values.update(BC=f"{bc}i", add_bias=f"x = x + {ops['bias'].binding}[bias_at(z, {bias_at})];" if arg.bias else "")
    values["helpers"] = helpers_for(fns)
    return render(load_shader(f"attention_{arg.part}"), **values)
