"""WGSL generation for the WebGPU backend.

Everything here is pure text: a kernel's ops, shapes, strides, offsets and constants
are baked into the source, and the backend caches one pipeline per distinct source.

The generator is split into small reusable pieces so that a fusion pass can splice
fused expressions into the same templates:
- `literal`        a Python scalar as a WGSL literal (inf/nan included);
- `coords_lines`   decompose a linear index into named per-dim coordinates;
- `view_index`     the element index of a strided view at given coordinates;
- `load_expr`      one operand (buffer through a view, or a constant) as an expression;
- `op_expr`        one op applied to argument expressions (table-driven);
- `render`         fill a `shaders/*.wgsl` template's `{{placeholders}}`.
Then one `*_source` function per kernel kind assembles a complete shader.
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass
from typing import Any

from ..dtypes import DType
from ..graph import postorder
from ..ops import Op
from ..engine.kernel import Acc, Apply, Const, Expr, Kernel, Load, expr_children
from ..shaders import load_shader
from ..view import View

WORKGROUP = 256  # threads per workgroup of the 1-D kernels (must match the templates)
INT_MIN, INT_MAX = -(2**31), 2**31 - 1


# --------------------------------------------------------------------------- basics
def wgsl_type(dtype: DType) -> str:
    """The WGSL type a kernel computes a dtype's values in (f32 for float16; see
    storage_type), or a clear error for float64."""
    if dtype.wgsl is None:
        raise TypeError(
            f"{dtype.name} is only supported on the numpy device; WebGPU has no 64-bit floats. "
            "Use float32 on webgpu, or move the tensor to device='numpy'."
        )
    return dtype.wgsl


def is_half(dtype: DType) -> bool:
    return dtype.name == "float16"


def storage_type(dtype: DType) -> str:
    """The WGSL element type of a dtype's buffers: its compute type, except f16 for
    float16 (computed in f32; needs the adapter's `shader-f16` feature)."""
    return "f16" if is_half(dtype) else wgsl_type(dtype)


def stored(value: str, dtype: DType) -> str:
    """`value` (of the compute type) as the storage type of `dtype`."""
    return f"f16({value})" if is_half(dtype) else value


def loaded(value: str, dtype: DType) -> str:
    """`value` (of the storage type) as the compute type of `dtype`."""
    return f"f32({value})" if is_half(dtype) else value


def rounded(value: str, dtype: DType) -> str:
    """`value` (f32) rounded to the precision of `dtype`. A kernel computes float16 values
    in f32 and rounds them where they are stored, or cast to float16 within the kernel."""
    return f"f32(f16({value}))" if is_half(dtype) else value


def uses_f16(source: str) -> bool:
    """Whether a shader touches f16 values (it then needs `enable f16;`)."""
    return re.search(r"\bf16\b", source) is not None


def literal(value: Any, wgsl: str) -> str:
    """`value` as a WGSL literal of type `wgsl` ('f32', 'i32' or 'u32')."""
    if wgsl == "f32":
        v = float(value)
        if math.isnan(v):
            return "bitcast<f32>(0x7fc00000u)"
        if math.isinf(v) or abs(v) > 3.4028234663852886e38:
            return "bitcast<f32>(0x7f800000u)" if v > 0 else "bitcast<f32>(0xff800000u)"
        v32 = struct.unpack("<f", struct.pack("<f", v))[0]  # the f32 value, repr round-trips
        if v32 != 0.0 and abs(v32) < 1.1754943508222875e-38:  # subnormal: keep the exact bits
            return f"bitcast<f32>({struct.unpack('<I', struct.pack('<f', v32))[0]}u)"
        return f"{v32!r}f"
    if wgsl == "i32":
        v = int(value)
        if not INT_MIN <= v <= INT_MAX:
            raise OverflowError(f"constant {v} does not fit in 32 bits (webgpu stores int64 as int32)")
        return "(-2147483647i - 1i)" if v == INT_MIN else f"{v}i"
    if wgsl == "u32":
        return "1u" if value else "0u"
    raise ValueError(f"unknown WGSL type {wgsl!r}")


def render(template: str, **values: Any) -> str:
    """Replace every `{{name}}` in a template; a missing value is an error."""

    def sub(m: re.Match) -> str:
        key = m.group(1)
        if key not in values:
            raise KeyError(f"shader template needs a value for {{{{{key}}}}}")
        return str(values[key])

    text = re.sub(r"\{\{(\w+)\}\}", sub, template)
    return re.sub(r"\n{3,}", "\n\n", text)  # empty sections leave no gaps


def indent(lines: list[str], depth: int = 1) -> str:
    pad = "    " * depth
    return "\n".join(pad + line for line in lines)


# --------------------------------------------------------------------------- operands
@dataclass(frozen=True)
class Input:
    """One buffer operand as the generator sees it: its binding name, the view it is
    read through and its dtype."""

    binding: str
    view: View
    dtype: DType


def split_coords(shape: tuple[int, ...], dims, linear: str, prefix: str = "c") -> list[str]:
    """WGSL lines `let c{d} = ...;` for each d in `dims`, decomposing the i32 `linear`
    row-major over the sizes of those dims. Size-1 dims get no line (coordinate 0)."""
    dims = list(dims)
    lines, stride = [], 1
    for i in range(len(dims) - 1, -1, -1):
        d, n = dims[i], shape[dims[i]]
        if n != 1:
            expr = f"{linear} / {stride}i" if stride != 1 else linear
            if i != 0:
                expr = f"({expr}) % {n}i" if stride != 1 else f"{expr} % {n}i"
            lines.append(f"let {prefix}{d} = {expr};")
        stride *= n
    return list(reversed(lines))


def coords_lines(shape: tuple[int, ...], linear: str = "gid", prefix: str = "c") -> list[str]:
    """WGSL lines decomposing `linear` into the coordinates of every dim of `shape`."""
    return split_coords(shape, range(len(shape)), linear, prefix)


def view_index(view: View, coords: list[str | None]) -> str:
    """The i32 element index of `view` at per-dim coordinate expressions
    (`None` where the coordinate is known to be 0)."""
    expr = f"{view.offset}i" if view.offset else ""
    for c, n, s in zip(coords, view.shape, view.strides):
        if c is None or n == 1 or s == 0:
            continue
        term = c if abs(s) == 1 else f"{c} * {abs(s)}i"
        if not expr:
            expr = term if s > 0 else f"-{term}"
        else:
            expr += f" + {term}" if s > 0 else f" - {term}"
    return expr or "0i"


def dim_coords(shape: tuple[int, ...], prefix: str = "c") -> list[str | None]:
    """The coordinate names `coords_lines` defines for `shape`."""
    return [f"{prefix}{d}" if n != 1 else None for d, n in enumerate(shape)]


def load_expr(x: Input, coords: list[str | None], linear: str | None = "gid") -> str:
    """The value of operand `x` at the current element. A contiguous view is read at
    `linear` (the element's row-major index) when given; others through their strides."""
    if linear is not None and x.view.is_contiguous:
        index = f"{x.view.offset}i + {linear}" if x.view.offset else linear
    else:
        index = view_index(x.view, coords)
    return loaded(f"{x.binding}[{index}]", x.dtype)


def needs_coords(inputs: list[Input]) -> bool:
    return any(not x.view.is_contiguous for x in inputs)


# --------------------------------------------------------------------------- op table
INF = "bitcast<f32>(0x7f800000u)"
NAN = "bitcast<f32>(0x7fc00000u)"

# Helper functions, included in a shader only when an expression calls them.
HELPERS = {
    "sg_isnan": """fn sg_isnan(x: f32) -> bool {
    // a bit test: drivers may fold x != x to false (fast math)
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}""",
    "sg_log": f"""fn sg_log(x: f32) -> f32 {{
    // log(0) = -inf and log(<0) = nan, like numpy, whatever the driver does
    if (x == 0.0) {{ return -{INF}; }}
    if (x < 0.0) {{ return {NAN}; }}
    return log(x);
}}""",
    "sg_sqrt": f"""fn sg_sqrt(x: f32) -> f32 {{
    if (x < 0.0) {{ return {NAN}; }}
    return sqrt(x);
}}""",
    "sg_div": f"""fn sg_div(a: f32, b: f32) -> f32 {{
    // x/0 = +-inf and 0/0 = nan, like numpy, even on drivers with fast division
    if (b == 0.0) {{
        if (a == 0.0 || sg_isnan(a)) {{ return {NAN}; }}
        return select(-{INF}, {INF}, (a > 0.0) == (bitcast<u32>(b) == 0u));
    }}
    return a / b;
}}""",
    "sg_tanh": """fn sg_tanh(x: f32) -> f32 {
    // tanh(+-15) is +-1 in f32; clamping avoids exp overflow (nan) in some drivers
    // (clamp would turn nan into -15, so nan is passed through explicitly)
    return select(tanh(clamp(x, -15.0, 15.0)), x, sg_isnan(x));
}""",
    "sg_sigmoid": """fn sg_sigmoid(x: f32) -> f32 {
    // exp of a non-positive number never overflows
    let e = exp(-abs(x));
    return select(e / (1.0 + e), 1.0 / (1.0 + e), x >= 0.0);
}""",
    "sg_sign": """fn sg_sign(x: f32) -> f32 {
    return select(sign(x), x, sg_isnan(x));  // sign(nan) = nan
}""",
    # Inverse trig, log1p and expm1 are written out: WGSL's builtins may be off by 1e-4
    # (lavapipe's asin/acos/atan2), and its log near 1 has an absolute error of 2^-21.
    "sg_atan": """fn sg_atan(x: f32) -> f32 {
    // Cephes atanf: reduce |x| to [0, tan(pi/8)], then a degree-9 odd polynomial
    let a = abs(x);
    var base = 0.0;
    var t = a;
    if (a > 2.414213562373095) {
        base = 1.5707963267948966;
        t = -1.0 / a;
    } else if (a > 0.4142135623730950) {
        base = 0.7853981633974483;
        t = (a - 1.0) / (a + 1.0);
    }
    let z = t * t;
    let r = base + ((((8.05374449538e-2 * z - 1.38776856032e-1) * z + 1.99777106478e-1) * z - 3.33329491539e-1) * z * t + t);
    return select(r, -r, x < 0.0);
}""",
    "sg_atan2": f"""fn sg_atan2(y: f32, x: f32) -> f32 {{
    // numpy's atan2, signed zeros and infinities included
    if (sg_isnan(x) || sg_isnan(y)) {{ return {NAN}; }}
    let ax = abs(x);
    let ay = abs(y);
    let x_neg = (bitcast<u32>(x) >> 31u) == 1u;
    var r: f32;
    if (ax == {INF} && ay == {INF}) {{
        r = select(0.7853981633974483, 2.356194490192345, x_neg);
    }} else if (ay <= ax) {{
        r = select(sg_atan(ay / ax), 0.0, ay == 0.0);
        r = select(r, 3.141592653589793 - r, x_neg);
    }} else {{
        r = 1.5707963267948966 - sg_atan(ax / ay);
        r = select(r, 3.141592653589793 - r, x_neg);
    }}
    return select(r, -r, (bitcast<u32>(y) >> 31u) == 1u);
}}""",
    "sg_asin": f"""fn sg_asin(x: f32) -> f32 {{
    return select(sg_atan2(x, sqrt((1.0 - x) * (1.0 + x))), {NAN}, abs(x) > 1.0);  // nan outside [-1, 1]
}}""",
    "sg_acos": f"""fn sg_acos(x: f32) -> f32 {{
    return select(sg_atan2(sqrt((1.0 - x) * (1.0 + x)), x), {NAN}, abs(x) > 1.0);
}}""",
    "sg_log1p": f"""fn sg_log1p(x: f32) -> f32 {{
    // for 1 + x in [0.5, 2]: 2 atanh(s) with s = x / (2 + x), |s| <= 1/3, as a series in s^2
    if (x < -0.5 || x > 1.0 || sg_isnan(x)) {{ return sg_log(1.0 + x); }}
    let s = x / (2.0 + x);
    let z = s * s;
    var p = 1.0 / 19.0;
    p = p * z + 1.0 / 17.0;
    p = p * z + 1.0 / 15.0;
    p = p * z + 1.0 / 13.0;
    p = p * z + 1.0 / 11.0;
    p = p * z + 1.0 / 9.0;
    p = p * z + 1.0 / 7.0;
    p = p * z + 1.0 / 5.0;
    p = p * z + 1.0 / 3.0;
    return 2.0 * s * (1.0 + z * p);
}}""",
    "sg_expm1": f"""fn sg_expm1(x: f32) -> f32 {{
    // Taylor series for |x| < ln(2) / 2, where exp(x) - 1 would cancel
    if (abs(x) >= 0.34657359 || sg_isnan(x)) {{
        if (x > 88.72283) {{ return {INF}; }}
        return exp(x) - 1.0;
    }}
    var p = 1.0 + x / 11.0;
    p = 1.0 + x / 10.0 * p;
    p = 1.0 + x / 9.0 * p;
    p = 1.0 + x / 8.0 * p;
    p = 1.0 + x / 7.0 * p;
    p = 1.0 + x / 6.0 * p;
    p = 1.0 + x / 5.0 * p;
    p = 1.0 + x / 4.0 * p;
    p = 1.0 + x / 3.0 * p;
    p = 1.0 + x / 2.0 * p;
    return x * p;
}}""",
    "sg_round": """fn sg_round(x: f32) -> f32 {
    // half to even, like numpy and torch (written out: drivers differ on round())
    let f = floor(x);
    let d = x - f;
    let even = f - 2.0 * floor(f * 0.5) == 0.0;
    return select(select(f + 1.0, f, d < 0.5), select(f + 1.0, f, even), d == 0.5);
}""",
    "sg_max": """fn sg_max(a: f32, b: f32) -> f32 {
    return select(max(a, b), a + b, sg_isnan(a) || sg_isnan(b));  // nan propagates, like numpy
}""",
    "sg_min": """fn sg_min(a: f32, b: f32) -> f32 {
    return select(min(a, b), a + b, sg_isnan(a) || sg_isnan(b));  // nan propagates, like numpy
}""",
    "sg_pow": f"""fn sg_pow(a: f32, b: f32) -> f32 {{
    // numpy semantics: x**0 = 1, 0**-y = inf, (-x)**n = +-x**n for integer n, else nan
    if (b == 0.0) {{ return 1.0; }}
    if (a == 1.0) {{ return 1.0; }}
    if (a == 0.0) {{ return select(0.0, {INF}, b < 0.0); }}
    let m = exp2(b * log2(abs(a)));
    if (sg_isnan(a) || sg_isnan(b)) {{ return a + b; }}
    if (a > 0.0) {{ return m; }}
    if (floor(b) != b) {{ return {NAN}; }}
    let odd = abs(b) < 16777216.0 && (b - 2.0 * floor(b * 0.5)) == 1.0;
    return select(m, -m, odd);
}}""",
    "sg_pow_i32": """fn sg_pow_i32(a: i32, b: i32) -> i32 {
    // integer power by squaring (wraps on overflow like numpy); negative b gives 0
    if (b < 0i) {
        if (a == 1i) { return 1i; }
        if (a == -1i) { return select(-1i, 1i, (b & 1i) == 0i); }
        return 0i;
    }
    var result = 1i;
    var base = a;
    var e = b;
    loop {
        if (e == 0i) { break; }
        if ((e & 1i) == 1i) { result = result * base; }
        base = base * base;
        e = e >> 1u;
    }
    return result;
}""",
    "atomic_add_f32": """fn atomic_add_f32(i: i32, value: f32) {
    // out[i] += value for an atomic<u32> output holding f32 bits: compare-exchange loop
    var old = atomicLoad(&out[i]);
    loop {
        let new_bits = bitcast<u32>(bitcast<f32>(old) + value);
        let result = atomicCompareExchangeWeak(&out[i], old, new_bits);
        if (result.exchanged) {
            break;
        }
        old = result.old_value;
    }
}""",
    "sg_div_i32": """fn sg_div_i32(a: i32, b: i32) -> i32 {
    // truncating division; x/0 is undefined in numpy (inf cast to int): give 0
    if (b == 0i) { return 0i; }
    return a / b;
}""",
}

# op -> {wgsl type or "*": template}; {0}, {1}, {2} are the argument expressions.
EXPRESSIONS: dict[Op, dict[str, str]] = {
    Op.NEG: {"*": "(-{0})", "u32": "{0}"},
    Op.EXP: {"f32": "exp({0})"},
    Op.LOG: {"f32": "sg_log({0})"},
    Op.SQRT: {"f32": "sg_sqrt({0})"},
    Op.RECIP: {"f32": "sg_div(1.0, {0})"},
    Op.SIN: {"f32": "sin({0})"},
    Op.COS: {"f32": "cos({0})"},
    Op.TANH: {"f32": "sg_tanh({0})"},
    Op.SIGMOID: {"f32": "sg_sigmoid({0})"},
    Op.ABS: {"*": "abs({0})", "u32": "{0}"},
    Op.SIGN: {"f32": "sg_sign({0})", "i32": "sign({0})", "u32": "{0}"},
    Op.FLOOR: {"f32": "floor({0})"},
    Op.CEIL: {"f32": "ceil({0})"},
    Op.ROUND: {"f32": "sg_round({0})"},
    Op.TRUNC: {"f32": "trunc({0})"},
    Op.ASIN: {"f32": "sg_asin({0})"},
    Op.ACOS: {"f32": "sg_acos({0})"},
    Op.ATAN: {"f32": "sg_atan({0})"},
    Op.LOG1P: {"f32": "sg_log1p({0})"},
    Op.EXPM1: {"f32": "sg_expm1({0})"},
    Op.COPY: {"*": "{0}"},
    Op.ADD: {"*": "({0} + {1})", "u32": "({0} | {1})"},
    Op.SUB: {"*": "({0} - {1})", "u32": "({0} ^ {1})"},
    Op.MUL: {"*": "({0} * {1})", "u32": "({0} & {1})"},
    Op.DIV: {"f32": "sg_div({0}, {1})", "i32": "sg_div_i32({0}, {1})"},
    Op.POW: {"f32": "sg_pow({0}, {1})", "i32": "sg_pow_i32({0}, {1})"},
    Op.ATAN2: {"f32": "sg_atan2({0}, {1})"},
    Op.MAX: {"f32": "sg_max({0}, {1})", "*": "max({0}, {1})"},
    Op.MIN: {"f32": "sg_min({0}, {1})", "*": "min({0}, {1})"},
    Op.LT: {"*": "select(0u, 1u, {0} < {1})"},
    Op.LE: {"*": "select(0u, 1u, {0} <= {1})"},
    Op.GT: {"*": "select(0u, 1u, {0} > {1})"},
    Op.GE: {"*": "select(0u, 1u, {0} >= {1})"},
    Op.EQ: {"*": "select(0u, 1u, {0} == {1})"},
    # written as not-equal-to so NaN != x is true: lavapipe folds unordered != to false
    Op.NE: {"*": "select(1u, 0u, {0} == {1})"},
    Op.WHERE: {"*": "select({2}, {1}, {0} != 0u)"},
}


# ----- device-side random numbers (Op.RAND): Philox 4x32-10, as smolgrad/philox.py
HELPERS.update(
    {
        "sg_mulhi": """fn sg_mulhi(a: u32, b: u32) -> u32 {
    // the high 32 bits of a * b from 16-bit halves (WGSL has no 64-bit integers)
    let a0 = a & 0xffffu;
    let a1 = a >> 16u;
    let b0 = b & 0xffffu;
    let b1 = b >> 16u;
    let mid = ((a0 * b0) >> 16u) + ((a1 * b0) & 0xffffu) + (a0 * b1);  // < 2^32
    return (a1 * b1) + ((a1 * b0) >> 16u) + (mid >> 16u);
}""",
        "sg_philox": """fn sg_philox(c: vec4<u32>, key0: u32, key1: u32) -> vec4<u32> {
    // Philox 4x32-10: the block of four words at counter c with key (key0, key1)
    var x = c;
    var k = vec2<u32>(key0, key1);
    for (var r = 0i; r < 10i; r = r + 1i) {
        let hi0 = sg_mulhi(0xD2511F53u, x.x);
        let hi1 = sg_mulhi(0xCD9E8D57u, x.z);
        x = vec4<u32>(hi1 ^ x.y ^ k.x, 0xCD9E8D57u * x.z, hi0 ^ x.w ^ k.y, 0xD2511F53u * x.x);
        k = k + vec2<u32>(0x9E3779B9u, 0xBB67AE85u);
    }
    return x;
}""",
        "sg_rand": """fn sg_rand(i: u32, offset: u32, stream: u32, key0: u32, key1: u32) -> f32 {
    // element i of a draw: word i % 4 of the block at counter (i / 4, offset, stream, 0),
    // its top 24 bits * 2^-24: a float in [0, 1), exact
    let words = sg_philox(vec4<u32>(i >> 2u, offset, stream, 0u), key0, key1);
    return f32(words[i & 3u] >> 8u) * 5.9604644775390625e-08;
}""",
    }
)


def rand_expr(e: Apply, args: list[str], coords: list[str | None], linear: str | None) -> str:
    """A RAND expression: its element's index (the Philox counter) from its view at the
    current position, and the key and offset from its three int32 operands."""
    stream, view = e.arg
    if linear is not None and view.is_contiguous:
        index = f"{view.offset}i + {linear}" if view.offset else linear
    else:
        index = view_index(view, coords)
    k0, k1, offset = (f"bitcast<u32>({a})" for a in args)
    return f"sg_rand(u32({index}), {offset}, {stream}u, {k0}, {k1})"


def rand_needs_coords(exprs) -> bool:
    """Whether a RAND among `exprs` reads its index through a non-contiguous view."""
    return any(
        isinstance(e, Apply) and e.op is Op.RAND and not e.arg[1].is_contiguous
        for e in postorder([e for e in exprs if e is not None], expr_children)
    )


def cast_expr(x: str, src: str, dst: str) -> str:
    """Convert a value between WGSL storage types with numpy's casting rules."""
    if src == dst:
        return x
    if dst == "u32":  # to bool: nonzero (nan included) is true
        zero = "0.0" if src == "f32" else "0i"
        if src == "f32":
            return f"select(0u, 1u, {x} != 0.0 || sg_isnan({x}))"
        return f"select(0u, 1u, {x} != {zero})"
    return f"{dst}({x})"  # f32 -> i32 truncates toward zero; u32 -> f32/i32 gives 0/1


def op_expr(op: Op, args: list[str], in_type: str, arg: Any = None) -> str:
    """The WGSL expression of elementwise `op` over argument expressions of type
    `in_type` (for WHERE: the type of the two values)."""
    if op is Op.CAST:
        return rounded(cast_expr(args[0], in_type, wgsl_type(arg)), arg)
    table = EXPRESSIONS.get(op)
    if table is None:
        raise NotImplementedError(f"webgpu: no elementwise expression for {op.name}")
    template = table.get(in_type, table.get("*"))
    if template is None:
        kind = {"f32": "float32", "i32": "integer", "u32": "bool"}[in_type]
        raise TypeError(f"webgpu: {op.name} is not defined for {kind} tensors; cast to float first")
    return template.format(*args)


def helpers_for(code: str) -> str:
    """The helper functions that `code` calls, with the helpers they call in turn."""
    used: set[str] = set()
    pending = [code]
    while pending:
        text = pending.pop()
        for name, src in HELPERS.items():
            if name not in used and re.search(rf"\b{name}\(", text):
                used.add(name)
                pending.append(src)
    return "\n\n".join(src for name, src in HELPERS.items() if name in used)


def output_names(n: int) -> list[str]:
    """Binding names of a kernel's outputs: `out`, then `out1`, `out2`, ..."""
    return ["out"] + [f"out{i}" for i in range(1, n)]


def bindings_code(
    out_types: str | list[str], inputs: list[tuple[str, str]], out_atomic: bool = False, errors: bool = False
) -> str:
    """Storage buffer declarations: the outputs first (read-write), then with `errors` the
    device error flags (read-write, see ERROR_FLAGS), then the (deduplicated) read-only
    inputs in order."""
    if isinstance(out_types, str):
        out_types = [out_types]
    lines = []
    for i, (name, t) in enumerate(zip(output_names(len(out_types)), out_types)):
        elem = f"atomic<{t}>" if out_atomic else t
        lines.append(f"@group(0) @binding({i}) var<storage, read_write> {name}: array<{elem}>;")
    if errors:
        lines.append(f"@group(0) @binding({len(out_types)}) var<storage, read_write> sg_errors: array<atomic<u32>>;")
    for i, (name, t) in enumerate(inputs, start=len(out_types) + int(errors)):
        lines.append(f"@group(0) @binding({i}) var<storage, read> {name}: array<{t}>;")
    return "\n".join(lines)


def groups_for(threads: int) -> int:
    return max(1, -(-threads // WORKGROUP))


# --------------------------------------------------------------------------- kernels
def expression_lines(
    exprs, inputs: list, coords: list[str | None], linear: str | None, known: dict[int, str] | None = None
) -> tuple[list[str], list[str]]:
    """WGSL `let` lines computing a fused expression DAG (each shared value once).
    Returns the lines and the name (or literal) of each expression in `exprs`.
    `inputs[i]` is the Input of Load(i); Acc is the variable `acc`; `known` names
    expressions (by id) already computed elsewhere, which get no lines."""
    lines: list[str] = []
    names: dict[int, str] = dict(known or {})
    for e in postorder(exprs, lambda x: () if id(x) in names else expr_children(x)):
        if id(e) in names:
            continue
        if isinstance(e, Const):
            names[id(e)] = literal(e.value, wgsl_type(e.dtype))
            continue
        if isinstance(e, Acc):
            names[id(e)] = "acc"
            continue
        if isinstance(e, Load):
            code = load_expr(inputs[e.src], coords, linear)
        elif e.op is Op.RAND:
            code = rand_expr(e, [names[id(a)] for a in e.srcs], coords, linear)
        else:
            code = op_expr(e.op, [names[id(a)] for a in e.srcs], wgsl_type(e.srcs[-1].dtype), e.arg)
        names[id(e)] = f"v{len(lines)}"
        lines.append(f"let {names[id(e)]} = {code};")
    return lines, [names[id(e)] for e in exprs]


def loads_in(exprs) -> list[int]:
    """The operand indices a list of expressions reads, in order."""
    return sorted({e.src for e in postorder([e for e in exprs if e is not None], expr_children) if isinstance(e, Load)})


def kernel_detail(k: Kernel) -> str:
    outs = ", ".join(f"{o.shape} {o.dtype.name}" for o in k.outs)
    return f"fused ops: {', '.join(k.fused_ops) or 'none'}\n// output: {outs}"


def elementwise_source(k: Kernel, inputs: list, bindings: list[tuple[str, str]]) -> str:
    """One thread per output element: evaluate the fused expressions, store each output."""
    shape = k.shape
    coords = dim_coords(shape)
    lines, results = expression_lines(k.exprs, inputs, coords, "gid")
    used = [inputs[i] for i in loads_in(k.exprs)]
    body = coords_lines(shape) if needs_coords(used) or rand_needs_coords(k.exprs) else []
    body += lines
    body += [f"{name}[gid] = {stored(r, o.dtype)};" for name, r, o in zip(output_names(len(k.outs)), results, k.outs)]
    code = bindings_code([storage_type(o.dtype) for o in k.outs], bindings)
    return one_thread_per_element(k.name, shape, k.out.dtype, math.prod(shape), body, code, kernel_detail(k))


def assign_source(k: Kernel, inputs: list, bindings: list[tuple[str, str]]) -> str:
    """One thread per element of the region `k.arg` (a View into the output buffer, which
    holds the rest of the tensor already): evaluate the value there and store it through
    the view. No other element of the buffer is touched."""
    region: View = k.arg
    coords = dim_coords(region.shape)
    lines, (result,) = expression_lines(k.exprs, inputs, coords, "gid")
    used = [inputs[i] for i in loads_in(k.exprs)]
    needs = needs_coords(used) or rand_needs_coords(k.exprs) or not region.is_contiguous
    body = coords_lines(region.shape) if needs else []
    body += lines
    if region.is_contiguous:
        index = f"{region.offset}i + gid" if region.offset else "gid"
    else:
        index = view_index(region, coords)
    body.append(f"out[{index}] = {stored(result, k.out.dtype)};")
    code = bindings_code([storage_type(k.out.dtype)], bindings)
    detail = f"{kernel_detail(k)}\n// in place: writes {region} of it"
    return one_thread_per_element(k.name, region.shape, k.out.dtype, region.numel, body, code, detail)


def fill_source(shape: tuple[int, ...], dtype: DType, value) -> str:
    """out[i] = value (used to zero scatter-add's output)."""
    body = [f"out[gid] = {stored(literal(value, wgsl_type(dtype)), dtype)};"]
    return one_thread_per_element("FILL", shape, dtype, math.prod(shape), body, [], f"fill with {value!r}")


def wgsl_fn(signature: str, lines: list[str]) -> str:
    return f"fn {signature} {{\n{indent(lines, 1)}\n}}"


def segment_invariant(pre: Expr, inputs: list, in_shape: tuple[int, ...], axes: tuple[int, ...]) -> list[Expr]:
    """The largest sub-expressions of a reduction's prologue that do not change along the
    reduced dims (a row's maximum in softmax, its mean in a variance): computed once per
    segment instead of once per element. Constants are left inline."""
    reduced = [d for d in axes if in_shape[d] != 1]
    invariant: dict[int, bool] = {}
    for e in postorder([pre], expr_children):
        if isinstance(e, Load):
            invariant[id(e)] = all(inputs[e.src].view.strides[d] == 0 for d in reduced)
        elif isinstance(e, Apply):
            invariant[id(e)] = e.op is not Op.RAND and all(invariant[id(a)] for a in e.srcs)
        else:
            invariant[id(e)] = isinstance(e, Const)
    frontier: dict[int, Expr] = {}
    if invariant[id(pre)]:
        return [] if isinstance(pre, Const) else [pre]
    for e in postorder([pre], expr_children):
        if isinstance(e, Apply) and not invariant[id(e)]:
            for a in e.srcs:
                if invariant[id(a)] and not isinstance(a, Const):
                    frontier[id(a)] = a
    return list(frontier.values())


def input_value_fn(pre: Expr, inputs: list, in_shape: tuple[int, ...], axes: tuple[int, ...]) -> str:
    """The prologue as two functions: `segment_values(o)`, the values that stay the same
    along the reduced dims (see segment_invariant) in a struct, and `input_value(o, r, s)`,
    element r of the values reduced into output o, given them."""
    kept = [d for d in range(len(in_shape)) if d not in axes]
    red = [d for d in range(len(in_shape)) if d in axes]
    coords = dim_coords(in_shape)
    hoisted = segment_invariant(pre, inputs, in_shape, axes)
    fields = [f"h{i}: {wgsl_type(e.dtype)}" for i, e in enumerate(hoisted)] or ["unused: u32"]
    struct = "struct SegmentValues {\n" + indent([f + "," for f in fields], 1) + "\n}"
    kept_lines = split_coords(in_shape, kept, "o")
    seg_lines, seg_names = expression_lines(hoisted, inputs, coords, None)
    if hoisted:
        seg_lines = kept_lines + seg_lines
    values = ", ".join(seg_names) if hoisted else "0u"
    segment_fn = wgsl_fn("segment_values(o: i32) -> SegmentValues", [*seg_lines, f"return SegmentValues({values});"])
    known = {id(e): f"s.h{i}" for i, e in enumerate(hoisted)}
    lines = kept_lines + split_coords(in_shape, red, "r")
    expr_lines, (result,) = expression_lines([pre], inputs, coords, None, known)
    t = wgsl_type(pre.dtype)
    signature = f"input_value(o: i32, r: i32, s: SegmentValues) -> {t}"
    value_fn = wgsl_fn(signature, lines + expr_lines + [f"return {result};"])
    return "\n\n".join([struct, segment_fn, value_fn])


def reduce_epilogue_fn(expr: Expr, inputs: list, out_shape: tuple[int, ...], acc_type: str) -> str:
    """`fn epilogue(acc, o)`: the fused elementwise work after a reduction."""
    coords = dim_coords(out_shape)
    lines, (result,) = expression_lines([expr], inputs, coords, "o")
    used = [inputs[i] for i in loads_in([expr])]
    lines = (coords_lines(out_shape, "o") if needs_coords(used) or rand_needs_coords([expr]) else []) + lines
    sig = f"epilogue(acc: {acc_type}, o: i32) -> {storage_type(expr.dtype)}"
    return wgsl_fn(sig, lines + [f"return {stored(result, expr.dtype)};"])


def matmul_epilogue_fn(expr: Expr, inputs: list, out_shape: tuple[int, ...], acc_type: str) -> str:
    """`fn epilogue(acc, z, row, col)`: the fused elementwise work after a matmul."""
    nb = len(out_shape) - 2
    lines = split_coords(out_shape, range(nb), "z")
    lines += [f"let c{nb} = row;", f"let c{nb + 1} = col;"]
    coords = [f"c{d}" if out_shape[d] != 1 else None for d in range(nb)] + [f"c{nb}", f"c{nb + 1}"]
    expr_lines, (result,) = expression_lines([expr], inputs, coords, None)
    sig = f"epilogue(acc: {acc_type}, z: i32, row: i32, col: i32) -> {storage_type(expr.dtype)}"
    return wgsl_fn(sig, lines + expr_lines + [f"return {stored(result, expr.dtype)};"])


def one_thread_per_element(name, out_shape, out_dtype, numel, body, bindings, detail: str = "") -> str:
    """Render the elementwise template: `body` runs once per gid < numel. `bindings` is
    a list of (name, type) inputs, or finished binding code (scatter-add's atomic output)."""
    code = indent(body, 1)
    if not isinstance(bindings, str):
        bindings = bindings_code(storage_type(out_dtype), bindings)
    return render(
        load_shader("elementwise"),
        name=name,
        detail=detail or f"output {tuple(out_shape)} {out_dtype.name}",
        bindings=bindings,
        helpers=helpers_for(code),
        numel=f"{numel}i",
        body=code,
    )


REDUCE_COMBINE = {
    (Op.SUM, "f32"): "{a} + {b}",
    (Op.SUM, "i32"): "{a} + {b}",
    (Op.SUM, "u32"): "{a} | {b}",  # bool sum is "any", like numpy's cast back to bool
    (Op.RMAX, "f32"): "sg_max({a}, {b})",
    (Op.RMAX, "i32"): "max({a}, {b})",
    (Op.RMAX, "u32"): "max({a}, {b})",
    (Op.RMIN, "f32"): "sg_min({a}, {b})",
    (Op.RMIN, "i32"): "min({a}, {b})",
    (Op.RMIN, "u32"): "min({a}, {b})",
}
REDUCE_IDENTITY = {
    (Op.SUM, "f32"): 0.0,
    (Op.SUM, "i32"): 0,
    (Op.SUM, "u32"): 0,
    (Op.RMAX, "f32"): -math.inf,
    (Op.RMAX, "i32"): INT_MIN,
    (Op.RMAX, "u32"): 0,
    (Op.RMIN, "f32"): math.inf,
    (Op.RMIN, "i32"): INT_MAX,
    (Op.RMIN, "u32"): 1,
}


def offset_fn(name: str, arg: str, shape: tuple[int, ...], strides: tuple[int, ...], offset: int = 0) -> str:
    """A WGSL function `name(arg) -> i32` mapping a row-major linear index over
    `shape` to the element offset `offset + sum(coord * stride)`."""
    lines = coords_lines(shape, arg, "k")
    expr = view_index(View(shape, strides, offset), dim_coords(shape, "k"))
    body = indent([*lines, f"return {expr};"], 1)
    return f"fn {name}({arg}: i32) -> i32 {{\n{body}\n}}"


@dataclass(frozen=True)
class ReducePlan:
    """How a reduce kernel's work is laid out: `lanes` threads (a power of two) share
    each segment, `chunks` segments split each output's values (chunks > 1: a first pass
    of partials, then a second pass), `columns` orders the threads lane-major (adjacent
    threads: adjacent outputs) and `subgroups` combines lanes with subgroup shuffles."""

    lanes: int
    chunks: int = 1
    columns: bool = False
    subgroups: bool = False

    @property
    def per_group(self) -> int:
        return WORKGROUP // self.lanes


MAX_CHUNKS = 1024  # partials per output of a two-pass reduction
SPLIT_BELOW = 256  # fewer outputs than this (workgroups of a one-pass full-row layout) may split


def pow2_at_least(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def fast_dim(shape: tuple[int, ...], views: list[View]) -> int:
    """The dim of `shape` whose neighbours lie closest in memory: the smallest stride of
    the first view that moves along it, views that move along every dim first (the
    tensors that are read in full); row-major order's last dim without one; -1 when
    every dim has size 1."""
    dims = [d for d, n in enumerate(shape) if n != 1]
    full = [v for v in views if all(v.strides[d] != 0 for d in dims)]
    for v in full + views:
        moving = [d for d in dims if v.strides[d] != 0]
        if moving:
            return min(moving, key=lambda d: abs(v.strides[d]))
    return dims[-1] if dims else -1


def reduce_plan(
    in_shape: tuple[int, ...],
    axes: tuple[int, ...],
    work: int,
    subgroups: bool,
    split: bool = True,
    fast: int | None = None,
) -> ReducePlan:
    """The layout of a reduction over `axes` of `in_shape`: enough lanes per output that
    each reads about `work` values (at most a workgroup). When the dim `fast` (the one
    adjacent in memory, see fast_dim; default the last) is kept, as in a column sum,
    threads go lane-major with a few lanes each, so adjacent threads read adjacent
    elements. Few long outputs (a full sum; fewer than SPLIT_BELOW) are split, when
    `split`, into chunks of `work` values per lane, which a second pass reduces."""
    outputs = math.prod(n for d, n in enumerate(in_shape) if d not in axes)
    extent = math.prod(n for d, n in enumerate(in_shape) if d in axes)
    lanes = min(WORKGROUP, pow2_at_least(-(-extent // work)))
    inner = fast_dim(in_shape, []) if fast is None else fast
    columns = inner >= 0 and inner not in axes and lanes > 1
    if columns:  # keep at least 32 adjacent outputs (or all of them) in a workgroup
        lanes = min(lanes, WORKGROUP // min(32, pow2_at_least(outputs)))
    chunks = 1
    chunk_len = WORKGROUP * work
    if split and outputs < SPLIT_BELOW and extent >= 2 * chunk_len:
        chunks = min(MAX_CHUNKS, -(-extent // chunk_len))
        lanes, columns = WORKGROUP, False  # each segment a slice of one output: rows
    return ReducePlan(lanes, chunks, columns, subgroups and lanes > 1 and not columns)


def combine_lanes_lines(plan: ReducePlan) -> list[str]:
    """WGSL lines combining the `acc` of a segment's lanes into lane 0's `acc`."""
    if plan.lanes == 1:
        return []
    if plan.subgroups:
        # a segment's lanes are adjacent invocations, so (both being powers of two) those
        # within one subgroup form an aligned block: a butterfly over offsets below
        # min(LANES, subgroup size) gives each lane its block's value; lane 0 then adds
        # the other blocks' values through workgroup memory
        return [
            "for (var offset = 1u; offset < min(LANES, sg_size); offset = offset << 1u) {",
            "    acc = combine(acc, subgroupShuffleXor(acc, offset));",
            "}",
            "partial[lid] = acc;",
            "workgroupBarrier();",
            "if (lane == 0u) {",
            "    for (var k = sg_size; k < LANES; k += sg_size) {",
            "        acc = combine(acc, partial[lid + k]);",
            "    }",
            "}",
        ]
    stride = "SEGMENTS_PER_GROUP" if plan.columns else "1u"
    return [
        "partial[lid] = acc;",
        "workgroupBarrier();",
        "for (var step = LANES / 2u; step > 0u; step = step >> 1u) {",
        "    if (lane < step) {",
        f"        partial[lid] = combine(partial[lid], partial[lid + step * {stride}]);",
        "    }",
        "    workgroupBarrier();",
        "}",
        "acc = partial[lid];",
    ]


def reduce_source(
    name: str,
    op: Op,
    t: str,
    functions: str,
    bindings: str,
    in_shape: tuple[int, ...],
    axes: tuple[int, ...],
    plan: ReducePlan,
    epilogue: bool,
    detail: str,
) -> str:
    """Reduce `input_value(o, r, segment_values(o))` (type `t`) over `axes` of `in_shape`,
    laid out as `plan` says.

    The kept dims form the outputs, the reduced dims the extent R. `functions` defines
    input_value and, when `epilogue`, epilogue(acc, o), applied to each final value
    (without: the kernel stores plan.chunks partials per output, see reduce.wgsl)."""
    outputs = math.prod(n for d, n in enumerate(in_shape) if d not in axes)
    extent = math.prod(n for d, n in enumerate(in_shape) if d in axes)
    if epilogue and plan.chunks != 1:
        raise ValueError("internal: the epilogue runs in the last pass of a reduction (chunks == 1)")
    combine = REDUCE_COMBINE[(op, t)].format(a="acc", b="value")
    store = "out[segment] = epilogue(acc, segment);" if epilogue else "out[segment] = acc;"
    if plan.lanes == 1:
        slot, lane, how = "lid", "0u", "one thread per segment"
    elif plan.per_group == 1:  # a whole workgroup per segment: `segment` is uniform
        slot, lane = "0u", "lid"
        how = "subgroup shuffles, then workgroup memory" if plan.subgroups else "a tree in workgroup memory"
    elif plan.columns:
        slot, lane = "lid % SEGMENTS_PER_GROUP", "lid / SEGMENTS_PER_GROUP"
        how = "a tree in workgroup memory"
    else:
        slot, lane = "lid / LANES", "lid % LANES"
        how = "subgroup shuffles, then workgroup memory" if plan.subgroups else "a tree in workgroup memory"
    layout = f"{plan.lanes} lanes per segment, {'columns' if plan.columns else 'rows'}"
    if plan.chunks > 1:
        layout += f", {plan.chunks} chunks per output"
    if plan.subgroups:
        layout += ", subgroups"
    shared = f"var<workgroup> partial: array<{t}, {WORKGROUP}>;" if plan.lanes > 1 else ""
    builtins = "\n    @builtin(subgroup_size) sg_size: u32," if plan.subgroups else ""
    return render(
        load_shader("reduce"),
        name=name,
        layout=layout,
        detail=f"{detail}\n// input {tuple(in_shape)} over axes {tuple(axes)}: {outputs} outputs x {extent} reduced",
        combine_how=how,
        bindings=bindings,
        helpers=helpers_for(functions + combine),
        functions=functions,
        T=t,
        lanes=plan.lanes,
        per_group=plan.per_group,
        combine=combine,
        shared=shared,
        builtins=builtins,
        slot=slot,
        lane=lane,
        segments=f"{outputs * plan.chunks}i",
        identity=literal(REDUCE_IDENTITY[(op, t)], t),
        chunks=f"{plan.chunks}i",
        chunk_len=f"{-(-extent // plan.chunks)}i",
        extent=f"{extent}i",
        combine_lanes=indent(combine_lanes_lines(plan), 1),
        store=store,
    )


@dataclass(frozen=True)
class MatmulVariant:
    """One way to tile a matmul (the autotuner picks among these per adapter and shape class).

    kind "tiled":  workgroups of (tile/4)^2 threads, a tile x tile output block each, A and
                   B staged through workgroup memory 16 columns of K at a time, 4x4 per thread;
    kind "direct": workgroups of wx x wy threads, rm rows x rn (1 or a multiple of 4) columns
                   per thread, A and B read straight from memory (no barriers: suits small K,
                   and CPUs); with `vec4`, A and B are read 4 floats at a time where their
                   layouts allow it (see vec4_layout), else one at a time."""

    name: str
    kind: str
    tile: int = 64
    wx: int = 16
    wy: int = 16
    rm: int = 4
    rn: int = 4
    vec4: bool = False

    @property
    def block(self) -> tuple[int, int]:
        """(rows, columns) of the output one workgroup computes."""
        if self.kind == "tiled":
            return self.tile, self.tile
        return self.wy * self.rm, self.wx * self.rn  # (a subgroup variant: wx lanes, wy subgroups)

    def grid(self, m: int, n: int, batch: int) -> tuple[int, int, int]:
        rows, cols = self.block
        return (-(-n // cols), -(-m // rows), batch)


SUBGROUP_LANES = 8  # the lanes a "subgroup" variant assumes (a software adapter's 256-bit SIMD)


def _direct(wx: int, wy: int, rm: int, rn: int, vec4: bool = True) -> MatmulVariant:
    return MatmulVariant(f"direct{wx}x{wy}_{rm}x{rn}" + ("v" if vec4 else ""), "direct", wx=wx, wy=wy, rm=rm, rn=rn, vec4=vec4)


def _subgroup(rm: int, rn: int, subgroups: int = 1, vec4: bool = True) -> MatmulVariant:
    name = f"subgroup{subgroups}_{rm}x{rn}" + ("v" if vec4 else "")
    return MatmulVariant(name, "subgroup", wx=SUBGROUP_LANES, wy=subgroups, rm=rm, rn=rn, vec4=vec4)


# A few shapes of each kind: wide tiles for GPUs, register blocks of different aspect for
# CPUs (where each thread is a SIMD lane and big blocks with vec4 loads win) and narrow N.
# The subgroup ones are for software adapters (see autotune.MatmulTuner.candidates), where
# memory is read lane by lane: fewer loads per multiply-add win (measured on lavapipe, the
# GPT shapes: without its loads a kernel ran 2.5-3x faster), up to the ~128-192
# accumulators past which register spills cost more (64x4 and 32x8 were slower).
MATMUL_VARIANTS = {
    v.name: v
    for v in (
        MatmulVariant("tiled64", "tiled", tile=64),
        MatmulVariant("tiled32", "tiled", tile=32),
        _direct(64, 1, 8, 1, vec4=False),
        _direct(8, 8, 8, 8),
        _direct(32, 2, 8, 8),
        _direct(16, 1, 8, 16),
        _direct(16, 1, 16, 8),
        _direct(8, 16, 4, 4),
        _subgroup(8, 8),
        _subgroup(16, 8),
        _subgroup(32, 4),
        _subgroup(48, 4),
        _subgroup(16, 8, 4),
        _subgroup(32, 4, 2),
    )
}
DEFAULT_MATMUL = "tiled64"


def _mul_add(t: str, acc: str, a: str, b: str) -> str:
    if t == "f32":
        return f"{acc} = fma({a}, {b}, {acc});"
    if t == "i32":
        return f"{acc} = {acc} + {a} * {b};"
    return f"{acc} = {acc} | ({a} & {b});"  # bool: or of ands


def _store_lines(v: MatmulVariant, value, t: str = "f32") -> list[str]:
    """Store a direct variant's rm x rn results (`value(i, j)`: the WGSL of each): copied into
    one array, then stored by a loop with a single call of the epilogue (which can be long:
    unrolled rm x rn times it made shaders that take lavapipe minutes to compile)."""
    lines = [f"var res: array<{t}, {v.rm * v.rn}>;"]
    lines += [f"res[{i * v.rn + j}] = {value(i, j)};" for i in range(v.rm) for j in range(v.rn)]
    lines += [
        f"for (var i = 0i; i < {v.rm}i; i++) {{",
        f"    for (var j = 0i; j < {v.rn}i; j++) {{",
        "        let row = row0 + i;",
        "        let col = col0 + j;",
        "        if (row < M && col < N) {",
        f"            out[out_base + row * N + col] = epilogue(res[i * {v.rn}i + j], z, row, col);",
        "        }",
        "    }",
        "}",
    ]
    return lines


def _direct_body(v: MatmulVariant, t: str, a: str, b: str) -> dict[str, str]:
    """The setup, k-loop step and store of a direct variant, unrolled over its rm x rn block
    (rn = 1: a scalar per row; else rn / 4 vec4 accumulators per row)."""
    vec = t if v.rn == 1 else f"vec4<{t}>"
    groups = 1 if v.rn == 1 else v.rn // 4
    width = 1 if v.rn == 1 else 4
    setup = [f"let r{i} = a_base + min(row0 + {i}i, M - 1) * A_ROW_STRIDE;" for i in range(v.rm)]
    setup += [f"let c{j} = b_base + min(col0 + {j}i, N - 1) * B_COL_STRIDE;" for j in range(v.rn)]
    setup += [f"var acc{i}_{g} = {vec}({literal(0, t)});" for i in range(v.rm) for g in range(groups)]
    step = []
    for g in range(groups):
        loads = [f"{t}({b}[c{g * width + j} + k * B_ROW_STRIDE])" for j in range(width)]  # (f16 storage: to f32)
        step.append(f"let b{g} = {loads[0] if v.rn == 1 else f'{vec}(' + ', '.join(loads) + ')'};")
    for i in range(v.rm):
        a_val = f"{t}({a}[r{i} + k * A_COL_STRIDE])"
        step.append(f"let a{i} = {a_val if v.rn == 1 else f'{vec}({a_val})'};")
        step += [_mul_add(t, f"acc{i}_{g}", f"a{i}", f"b{g}") for g in range(groups)]
    store = _store_lines(v, lambda i, j: f"acc{i}_0" if v.rn == 1 else f"acc{i}_{j // 4}[{j % 4}]", t)
    return {"setup": indent(setup), "step": indent(step, 2), "store": indent(store), "k_step": "1i"}


def vec4_layout(a: Input, b: Input, epilogue_fn: str) -> str | None:
    """How a direct matmul may read A and B as vec4s, if at all:
    "kn": A 4 k's at a time, B 4 columns at a time (both row-major);
    "kk": A and B 4 k's at a time (a transposed B, as nn.Linear's weight): dot products;
    "mn": A 4 rows at a time (a transposed A, as in nn.Linear's weight gradient g^T x),
          B 4 columns at a time.
    Needs float32 storage, the vec4's dim contiguous and a multiple of 4, every other stride and the
    offset a multiple of 4, and neither buffer read by the epilogue (its binding is then
    declared array<vec4<f32>>)."""
    m, k = a.view.shape[-2:]
    n = b.view.shape[-1]
    if storage_type(a.dtype) != "f32" or storage_type(b.dtype) != "f32" or 0 in (m, k, n):
        return None  # (float16 is stored as f16; an empty operand's buffer is smaller than one vec4)

    def aligned(x: Input, unit: int) -> bool:
        strides = list(x.view.strides)
        if x.view.shape[unit] % 4 or strides.pop(unit) != 1 or x.view.offset % 4 or any(s % 4 for s in strides):
            return False
        return not re.search(rf"\b{x.binding}\[", epilogue_fn)

    if aligned(a, -1):
        if aligned(b, -1):
            return "kn"
        return "kk" if aligned(b, -2) else None
    return "mn" if aligned(a, -2) and aligned(b, -1) else None


def _direct_vec4_body(v: MatmulVariant, a: str, b: str) -> dict[str, str]:
    """Like _direct_body, reading A and B as vec4 (a and b bound as array<vec4<f32>>): per 4
    steps of K, one load per row of A and one per 4 columns of B and 4 k's."""
    groups = v.rn // 4
    setup = [f"let r{i} = a_base + min(row0 + {i}i, M - 1) * A_ROW_STRIDE;" for i in range(v.rm)]
    setup += [f"let c{g} = b_base + min(col0 + {4 * g}i, N - 4i);" for g in range(groups)]
    setup += [f"var acc{i}_{g} = vec4<f32>(0.0);" for i in range(v.rm) for g in range(groups)]
    step = [f"let a{i} = {a}[(r{i} + k) / 4i];" for i in range(v.rm)]
    for kk in range(4):
        step += [f"let b{g}_{kk} = {b}[(c{g} + (k + {kk}i) * B_ROW_STRIDE) / 4i];" for g in range(groups)]
        for i in range(v.rm):
            step += [f"acc{i}_{g} = fma(vec4<f32>(a{i}[{kk}]), b{g}_{kk}, acc{i}_{g});" for g in range(groups)]
    store = _store_lines(v, lambda i, j: f"acc{i}_{j // 4}[{j % 4}]")
    return {"setup": indent(setup), "step": indent(step, 2), "store": indent(store), "k_step": "4i"}


def _direct_vec4_k_body(v: MatmulVariant, a: str, b: str) -> dict[str, str]:
    """Like _direct_vec4_body for a B contiguous along K (a transposed B, as nn.Linear's
    weight): per 4 steps of K, one vec4 load per row of A and per column of B, and a dot
    product per output."""
    setup = [f"let r{i} = a_base + min(row0 + {i}i, M - 1) * A_ROW_STRIDE;" for i in range(v.rm)]
    setup += [f"let c{j} = b_base + min(col0 + {j}i, N - 1) * B_COL_STRIDE;" for j in range(v.rn)]
    setup += [f"var acc{i}_{j} = 0.0;" for i in range(v.rm) for j in range(v.rn)]
    step = [f"let a{i} = {a}[(r{i} + k) / 4i];" for i in range(v.rm)]
    step += [f"let b{j} = {b}[(c{j} + k) / 4i];" for j in range(v.rn)]
    step += [f"acc{i}_{j} = acc{i}_{j} + dot(a{i}, b{j});" for i in range(v.rm) for j in range(v.rn)]
    store = _store_lines(v, lambda i, j: f"acc{i}_{j}")
    return {"setup": indent(setup), "step": indent(step, 2), "store": indent(store), "k_step": "4i"}


def _direct_vec4_m_body(v: MatmulVariant, a: str, b: str) -> dict[str, str]:
    """Like _direct_vec4_body for an A contiguous along M (a transposed A): per step of K,
    one vec4 load per 4 rows of A and per 4 columns of B."""
    groups = v.rn // 4
    setup = [f"let r{q} = a_base + min(row0 + {4 * q}i, M - 4i);" for q in range(v.rm // 4)]
    setup += [f"let c{g} = b_base + min(col0 + {4 * g}i, N - 4i);" for g in range(groups)]
    setup += [f"var acc{i}_{g} = vec4<f32>(0.0);" for i in range(v.rm) for g in range(groups)]
    step = [f"let a{q} = {a}[(r{q} + k * A_COL_STRIDE) / 4i];" for q in range(v.rm // 4)]
    step += [f"let b{g} = {b}[(c{g} + k * B_ROW_STRIDE) / 4i];" for g in range(groups)]
    for i in range(v.rm):
        step += [f"acc{i}_{g} = fma(vec4<f32>(a{i // 4}[{i % 4}]), b{g}, acc{i}_{g});" for g in range(groups)]
    store = _store_lines(v, lambda i, j: f"acc{i}_{j // 4}[{j % 4}]")
    return {"setup": indent(setup), "step": indent(step, 2), "store": indent(store), "k_step": "1i"}


def _subgroup_body(v: MatmulVariant, t: str, a: Input, b: Input, layout: str | None) -> dict[str, str]:
    """The setup, k-loop steps and store of a subgroup variant: the lanes split the loads of
    A's rm rows between them and each lane loads its own rn columns of B; every A value is
    then broadcast from the lane that loaded it into all lanes' rm x rn accumulators.
    Four k's per step (then the last K % 4 one at a time). With a vec4 `layout` (see
    vec4_layout; a and b are then bound as array<vec4<f32>>) A is read 4 k's ("kn", "kk") or
    4 rows ("mn") at a time, B 4 columns ("kn", "mn") or 4 k's ("kk") at a time; without,
    lane l loads rows l, l + 8, ... one element at a time."""
    lanes = SUBGROUP_LANES
    a_mode = {"kn": "k4", "kk": "k4", "mn": "m4"}.get(layout, "s")
    b_mode = {"kn": "n4", "mn": "n4", "kk": "k4"}.get(layout, "s")
    a_loads = -(-v.rm // (4 * lanes)) if a_mode == "m4" else v.rm // lanes
    if a_mode == "m4":  # lane l loads rows 4l .. 4l + 3 (+ 32i) as one vec4
        setup = [f"let ra{i} = a_base + min(row0 + {4 * lanes * i}i + 4i * lane, M - 4i);" for i in range(a_loads)]
    else:
        setup = [f"let ra{i} = a_base + min(row0 + lane + {lanes * i}i, M - 1) * A_ROW_STRIDE;" for i in range(a_loads)]
    if b_mode == "n4":
        setup += [f"let cb{g} = b_base + min(col0 + {4 * g}i, N - 4i);" for g in range(v.rn // 4)]
    else:
        setup += [f"let cb{j} = b_base + min(col0 + {j}i, N - 1) * B_COL_STRIDE;" for j in range(v.rn)]
    setup += [f"var acc{r}_{j} = {literal(0, t)};" for r in range(v.rm) for j in range(v.rn)]

    def a_load(i: int, k: str) -> str:  # the value(s) of A at k that this lane loads
        if a_mode == "m4":
            return f"{a.binding}[(ra{i} + {k} * A_COL_STRIDE) / 4i]"
        if a_mode == "k4":
            return f"{a.binding}[(ra{i} + {k}) / 4i][({k}) % 4i]"  # (the tail only: no K % 4 there)
        return loaded(f"{a.binding}[ra{i} + {k} * A_COL_STRIDE]", a.dtype)

    def b_load(j: int, k: str) -> str:  # column j of B at k (s, k4) or columns 4j .. 4j + 3 (n4)
        if b_mode == "n4":
            return f"{b.binding}[(cb{j} + {k} * B_ROW_STRIDE) / 4i]"
        if b_mode == "k4":
            return f"{b.binding}[(cb{j} + {k}) / 4i][({k}) % 4i]"
        return loaded(f"{b.binding}[cb{j} + {k} * B_ROW_STRIDE]", b.dtype)

    def k_lines(kk: int, k: str, a_val, b_val) -> list[str]:
        """The loads (all but the vec4s along K) and multiply-adds of one k."""
        lines = []
        if a_mode != "k4" or k == "k":
            lines += [f"let a{i}_{kk} = {a_load(i, k)};" for i in range(a_loads)]
        if b_mode == "n4":
            lines += [f"let b{g}_{kk} = {b_load(g, k)};" for g in range(v.rn // 4)]
        elif b_mode != "k4" or k == "k":
            lines += [f"let b{j}_{kk} = {b_load(j, k)};" for j in range(v.rn)]
        for r in range(v.rm):
            if a_mode == "m4":
                owner, value = (r % (4 * lanes)) // 4, f"{a_val(r // (4 * lanes))}[{r % 4}]"
            else:
                owner, value = r % lanes, a_val(r // lanes)
            lines.append(f"let s{r}_{kk} = subgroupBroadcast({value}, {owner}u);")
            lines += [_mul_add(t, f"acc{r}_{j}", f"s{r}_{kk}", b_val(j)) for j in range(v.rn)]
        return lines

    step = []
    if a_mode == "k4":
        step += [f"let a{i} = {a.binding}[(ra{i} + k) / 4i];" for i in range(a_loads)]
    if b_mode == "k4":
        step += [f"let b{j} = {b.binding}[(cb{j} + k) / 4i];" for j in range(v.rn)]
    for kk in range(4):
        a_val = (lambda i, kk=kk: f"a{i}[{kk}]") if a_mode == "k4" else (lambda i, kk=kk: f"a{i}_{kk}")
        if b_mode == "k4":
            b_val = lambda j, kk=kk: f"b{j}[{kk}]"
        elif b_mode == "n4":
            b_val = lambda j, kk=kk: f"b{j // 4}_{kk}[{j % 4}]"
        else:
            b_val = lambda j, kk=kk: f"b{j}_{kk}"
        step += k_lines(kk, f"(k + {kk}i)", a_val, b_val)
    b_tail = (lambda j: f"b{j // 4}_0[{j % 4}]") if b_mode == "n4" else (lambda j: f"b{j}_0")
    tail = k_lines(0, "k", lambda i: f"a{i}_0", b_tail)
    store = _store_lines(v, lambda r, j: f"acc{r}_{j}", t)
    return {"setup": indent(setup), "step": indent(step, 2), "tail": indent(tail, 2), "store": indent(store), "k_step": "4i"}


def matmul_source(
    a: Input, b: Input, out_shape: tuple[int, ...], epilogue_fn: str, bindings: str, detail: str,
    variant: MatmulVariant | None = None,
) -> str:
    """Batched matmul (tiled as `variant`, by default DEFAULT_MATMUL); each operand read through
    its own (strided) view, each result passed through `epilogue_fn` (see matmul_epilogue_fn)
    before it is stored."""
    v = variant or MATMUL_VARIANTS[DEFAULT_MATMUL]
    t = wgsl_type(a.dtype)
    batch_shape = tuple(out_shape[:-2])
    m, k = a.view.shape[-2:]
    n = b.view.shape[-1]

    def operand_fns(x: Input, prefix: str) -> str:
        nb = len(batch_shape)
        batch = offset_fn(f"{prefix}_batch", "z", batch_shape, x.view.strides[:nb], x.view.offset)
        rs, cs = x.view.strides[-2], x.view.strides[-1]
        return batch + f"\n\nconst {prefix.upper()}_ROW_STRIDE = {rs}i;\nconst {prefix.upper()}_COL_STRIDE = {cs}i;"

    values = dict(
        detail=f"{a.view.shape} @ {b.view.shape} -> {tuple(out_shape)}; variant {v.name}; {detail}",
        bindings=bindings,
        epilogue_fn=epilogue_fn,
        helpers=helpers_for(epilogue_fn),
        a_fns=operand_fns(a, "a"),
        b_fns=operand_fns(b, "b"),
        M=f"{m}i",
        N=f"{n}i",
        K=f"{k}i",
    )
    if v.kind in ("direct", "subgroup"):
        layout = vec4_layout(a, b, epilogue_fn) if v.vec4 else None
        if layout is not None:
            for x in (a, b):
                values["bindings"] = values["bindings"].replace(
                    f"var<storage, read> {x.binding}: array<f32>;", f"var<storage, read> {x.binding}: array<vec4<f32>>;"
                )
    values["common"] = render(load_shader("matmul_common"), **values)
    if v.kind == "subgroup":
        values.update(WG=v.wx * v.wy, SUBGROUPS=v.wy, RM=v.rm, RN=v.rn, COLS=v.wx * v.rn)
        values.update(_subgroup_body(v, t, a, b, layout))
        return render(load_shader("matmul_subgroup"), **values)
    if v.kind == "direct":
        values.update(WX=v.wx, WY=v.wy, RM=v.rm, RN=v.rn)
        if layout is not None:
            body = {"kn": _direct_vec4_body, "kk": _direct_vec4_k_body, "mn": _direct_vec4_m_body}[layout]
            values.update(body(v, a.binding, b.binding))
        else:
            values.update(_direct_body(v, t, a.binding, b.binding))
        return render(load_shader("matmul_direct"), **values)
    wg = v.tile // 4
    return render(
        load_shader("matmul"),
        a=a.binding,
        b=b.binding,
        T=t,
        zero=literal(0, t),
        mul_add=_mul_add(t, "acc[i]", f"vec4<{t}>(a_val)", "b_reg"),
        TILE=v.tile,
        WG=wg,
        THREADS=wg * wg,
        LOADS=v.tile * 16 // (wg * wg),
        **values,
    )


# ----- device-side index errors: gather and scatter-add flag an out-of-range index
# A (count, op, dim, size, index) record of u32 words; the first thread to find a bad index
# fills it. The host reads it with its next readback (webgpu_backend) and raises.
ERROR_FLAGS = 5
ERROR_OPS = {1: "gather", 2: "scatter_add"}
HELPERS["sg_index_error"] = """fn sg_index_error(op: u32, dim: u32, size: u32, index: i32) {
    // record the first out-of-range index for the host (read back with its next readback)
    if (atomicAdd(&sg_errors[0], 1u) == 0u) {
        atomicStore(&sg_errors[1], op);
        atomicStore(&sg_errors[2], dim);
        atomicStore(&sg_errors[3], size);
        atomicStore(&sg_errors[4], bitcast<u32>(index));
    }
}"""


def checked_index_lines(index_expr: str, op: str, dim: int, size: int) -> list[str]:
    """WGSL lines defining `i`: the index, flagged to the host when outside [0, size) and
    clamped into range (the kernel never reads or writes out of bounds)."""
    code = next(c for c, name in ERROR_OPS.items() if name == op)
    return [
        f"let raw_index = {index_expr};",
        f"if (raw_index < 0i || raw_index >= {size}i) {{",
        f"    sg_index_error({code}u, {dim}u, {size}u, raw_index);",
        "}",
        f"let i = clamp(raw_index, 0i, {max(size - 1, 0)}i);",
    ]


def gather_source(src: Input, index: Input, dim: int, out_dtype: DType, bindings) -> str:
    """out[c] = src[c with c[dim] = index[c]]; an index out of range is flagged and clamped."""
    shape = index.view.shape
    coords = dim_coords(shape)
    size = src.view.shape[dim]
    body = coords_lines(shape)
    body += checked_index_lines(load_expr(index, coords), "gather", dim, size)
    src_coords = list(coords)
    src_coords[dim] = "i"
    src_view = View(src.view.shape, src.view.strides, src.view.offset)
    body.append(f"out[gid] = {src.binding}[{view_index(src_view, src_coords)}];")
    numel = math.prod(shape)
    detail = f"src {src.view.shape} index {shape} along dim {dim}"
    bindings = bindings_code(storage_type(out_dtype), bindings, errors=True)
    return one_thread_per_element("GATHER", shape, out_dtype, numel, body, bindings, detail)


def pad_source(xs: list[Input], pads, value, out_shape, out_dtype: DType, bindings) -> str:
    """out[c] = xs[i][c - lo_i] inside source i's region (pads[i]: its (lo, hi) per dim;
    the regions do not overlap), else `value`."""
    coords = dim_coords(out_shape)
    body = coords_lines(out_shape)
    body.append(f"var value = {stored(literal(value, wgsl_type(out_dtype)), out_dtype)};")  # (storage type)
    for i, (x, x_pads) in enumerate(zip(xs, pads)):
        if not math.prod(x.view.shape):  # (an empty source places nothing; its indexes could fold to negative constants)
            continue
        checks, src_coords = [], []
        for d, ((lo, _hi), n) in enumerate(zip(x_pads, x.view.shape)):
            c = coords[d] or "0i"
            name = f"s{i}_{d}"
            body.append(f"let {name} = {c} - {lo}i;" if lo else f"let {name} = {c};")
            checks.append(f"{name} >= 0i && {name} < {n}i")
            src_coords.append(name)
        inside = " && ".join(checks) if checks else "true"
        body.append(f"if ({inside}) {{")
        body.append(f"    value = {x.binding}[{view_index(x.view, src_coords)}];")
        body.append("}")
    body.append("out[gid] = value;")
    shapes = ", ".join(f"{x.view.shape} padded by {p}" for x, p in zip(xs, pads))
    detail = f"{shapes} with {value!r}"
    return one_thread_per_element("PAD", out_shape, out_dtype, math.prod(out_shape), body, bindings, detail)


def scatter_add_source(src: Input, index: Input, dim: int, out_shape, out_dtype: DType, bindings) -> str:
    """For each element c of index: out[c with c[dim] = index[c]] += src[c], atomically;
    an index out of range is flagged and clamped."""
    shape = index.view.shape
    coords = dim_coords(shape)
    t = wgsl_type(out_dtype)
    if is_half(out_dtype):  # LazyBuffer.scatter_add adds float16 values in float32
        raise TypeError("webgpu: scatter_add into a float16 buffer has no atomic; add in float32 and cast")
    body = coords_lines(shape)
    body += checked_index_lines(load_expr(index, coords), "scatter_add", dim, out_shape[dim])
    body.append(f"let value = {src.binding}[{view_index(src.view, coords)}];")
    out_coords = list(coords)
    out_coords[dim] = "i"
    body.append(f"let dest = {view_index(View.contiguous(tuple(out_shape)), out_coords)};")
    if t == "f32":
        body.append("atomic_add_f32(dest, value);")
    elif t == "i32":
        body.append("atomicAdd(&out[dest], value);")
    else:
        body.append("atomicOr(&out[dest], value);")
    # `out` is zero-filled earlier in the same pass; float adds use a compare-exchange
    # loop on the bit pattern because float atomics are not portable
    atomic_type = "u32" if t == "f32" else t
    detail = f"src {src.view.shape} index {shape} along dim {dim} into {tuple(out_shape)} {out_dtype.name}"
    bindings = bindings_code(atomic_type, bindings, out_atomic=True, errors=True)
    return one_thread_per_element("SCATTER_ADD", out_shape, out_dtype, math.prod(shape), body, bindings, detail)
