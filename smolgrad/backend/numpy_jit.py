"""Fused elementwise kernels compiled to machine code with numba, on the NumPy device.

NumPy runs a fused kernel of n ops as n passes over its elements, each a call with its
own overhead and a temporary array. A compiled loop computes all of an element's ops in
registers and writes its results once: Adam's update of a 100K-float parameter took
103 us compiled against 390 us as NumPy calls, and 1 us against 12 us for a bias of 128.

numba is optional (`pip install smolgrad[jit]`). `SMOLGRAD_JIT` chooses: "auto" (the
default) compiles when numba is installed, "0" never, "1" always and fails without numba.

Compiling never changes a result. Only kernels whose every op gives NumPy's bits when
compiled are compiled: IEEE arithmetic, sqrt, comparisons, selects and exact casts, each
computed in the dtype NumPy computes it in (a program whose ops NumPy would promote is
left to NumPy). exp, tanh, pow and the like stay with NumPy: its vectorised versions
round differently from the C library's that compiled code calls. So a kernel may start on
NumPy and move to compiled code: it is compiled when it runs for the (AFTER + 1)-th time
with MIN_ELEMENTS elements or more, which a training step's kernels soon do and one-off or
small kernels never pay for (numba takes about 0.3 s a kernel)."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from ..engine.kernel import Acc, Apply, Const, Expr, Load
from ..ops import Op

AFTER = 2  # runs of a program on NumPy before it is compiled (see the module docstring)
# elements of a program's shape from which it is compiled: below, NumPy's per-call overhead
# is most of a kernel's time whether compiled or not, and compiling the many small kernels
# of a short script (or a test suite) would cost more than it saves
MIN_ELEMENTS = 16 * 1024

_numba = None  # the numba module once imported; False when it is not installed
# programs compiled, and runs of compiled programs, in this process (tests read them)
counts = {"compiled": 0, "runs": 0}


def mode() -> str:
    """SMOLGRAD_JIT: "auto" (the default), "0" or "1"."""
    value = os.environ.get("SMOLGRAD_JIT", "auto")
    if value not in ("auto", "0", "1"):
        raise ValueError(f"SMOLGRAD_JIT must be 'auto', '0' or '1', got {value!r}")
    return value


def available() -> bool:
    """Whether kernels are compiled: numba is importable and SMOLGRAD_JIT is not "0"."""
    global _numba
    if mode() == "0":
        return False
    if _numba is None:
        try:
            import numba
        except ImportError:
            _numba = False
        else:
            _numba = numba
    if _numba is False and mode() == "1":
        raise ImportError("SMOLGRAD_JIT=1 needs numba: pip install numba (or smolgrad[jit]), or unset SMOLGRAD_JIT")
    return _numba is not False


_COMPARE = {Op.LT: "<", Op.LE: "<=", Op.GT: ">", Op.GE: ">=", Op.EQ: "==", Op.NE: "!="}
_ARITH = {Op.ADD: "+", Op.SUB: "-", Op.MUL: "*", Op.DIV: "/"}
_FLOAT_UNARY = {Op.SQRT: "np.sqrt", Op.FLOOR: "np.floor", Op.CEIL: "np.ceil", Op.TRUNC: "np.trunc", Op.ROUND: "np.rint"}


def _kind(dtype: np.dtype) -> str:
    return "b" if dtype == np.bool_ else dtype.kind


def _op_code(e: Apply, a: list[str], ad: list[np.dtype], rd: np.dtype, t: str) -> str | None:
    """The Python expression computing op e on the values named `a` (of NumPy dtypes `ad`)
    into dtype `rd` (named `t` in the generated code) with NumPy's exact result, or None
    where compiled code might round or promote differently."""
    op, k = e.op, _kind(rd)
    same = all(d == rd for d in ad)
    if op in _COMPARE:
        return f"({a[0]} {_COMPARE[op]} {a[1]})" if ad[0] == ad[1] and k == "b" else None
    if op is Op.WHERE:
        return f"({a[1]} if {a[0]} else {a[2]})" if ad[0] == np.bool_ and ad[1] == ad[2] == rd else None
    if op is Op.CAST:
        src = _kind(ad[0])
        if k == "b":
            return f"({a[0]} != 0)"
        if (k == "f" and rd != np.float16) or (k in "iu" and src in "biu"):
            return f"{t}({a[0]})"  # (float to int is left to NumPy: NaN and overflow differ)
        return None
    if not same or k not in "fiu" or rd == np.float16:
        return None
    if op is Op.COPY:
        return a[0]
    if op is Op.MAX:  # NumPy's: NaN if either is NaN, the second of two equal values (-0.0, 0.0)
        return f"({a[0]} if ({a[0]} > {a[1]} or {a[0]} != {a[0]}) else {a[1]})"
    if op is Op.MIN:
        return f"({a[0]} if ({a[0]} < {a[1]} or {a[0]} != {a[0]}) else {a[1]})"
    if op is Op.NEG:
        return f"{t}(-{a[0]})"
    if op is Op.ABS:
        return f"{t}(abs({a[0]}))"
    if op in _ARITH and not (op is Op.DIV and k != "f"):  # (integer division is NumPy's)
        return f"{t}({a[0]} {_ARITH[op]} {a[1]})"
    if k != "f":
        return None
    if op is Op.RECIP:
        return f"({t}(1) / {a[0]})"
    if op in _FLOAT_UNARY:
        return f"{t}({_FLOAT_UNARY[op]}({a[0]}))"
    return None


def source(program: tuple[Expr, ...], exprs: tuple[Expr, ...], ndim: int, load_dims: list[tuple[bool, ...]],
           out_dtypes: list[np.dtype], compute) -> str | None:
    """The source of a module whose function `kernel` computes a program's results, or
    None where it cannot give NumPy's exact result.

    The function is `kernel(o0, ..., l0, ..., acc)`: outputs o_j (results, in order, of
    the program's shape), one array per Load in program order (load_dims: along which
    dims it varies; it has size 1 along the others) and, if the program reads the core's
    result, acc (of the program's shape). `compute(dtype)`: the NumPy dtype a DType's
    values are computed in."""
    if ndim == 0 or any(isinstance(e, Apply) and e.op is Op.RAND for e in program):
        return None
    names: dict[int, str] = {}
    dtypes: dict[int, np.dtype] = {}
    header = ["import numpy as np", ""]  # the module's: dtypes and constants
    lines: list[str] = []
    index = ", ".join(f"i{d}" for d in range(ndim))
    params: list[str] = []
    loads = 0
    uses_acc = False
    for n, e in enumerate(program):
        rd = compute(e.dtype)
        t = f"T_{rd.name}"
        if f"{t} = np.{rd.name}" not in header:
            header.append(f"{t} = np.{rd.name}")
        name = f"v{n}"
        if isinstance(e, Load):
            at = ", ".join(f"i{d}" if varies else "0" for d, varies in enumerate(load_dims[loads]))
            params.append(f"l{loads}")
            lines.append(f"{name} = l{loads}[{at}]")
            loads += 1
        elif isinstance(e, Const):
            header.append(f"c{n} = {_literal(np.array(e.value, dtype=rd)[()])}")
            name = f"c{n}"
        elif isinstance(e, Acc):
            if rd == np.float16:
                return None
            uses_acc = True
            lines.append(f"{name} = {t}(acc[{index}])")  # (as NumPy's astype)
        elif e.op is Op.CAST and e.dtype.np == np.float16:
            return None  # (rounds to float16, computed on in float32: left to NumPy)
        else:
            code = _op_code(e, [names[id(s)] for s in e.srcs], [dtypes[id(s)] for s in e.srcs], rd, t)
            if code is None:
                return None
            lines.append(f"{name} = {code}")
        names[id(e)] = name
        dtypes[id(e)] = rd
    stores = []
    for j, (e, od) in enumerate(zip(exprs, out_dtypes)):
        vd, ok, vk = dtypes[id(e)], _kind(od), _kind(dtypes[id(e)])
        if not (od == vd or (ok == "f" and od != np.float16 and vk in "fiub") or (ok in "iu" and vk in "biu")):
            return None  # (as np.copyto with casting="unsafe" would; float to int is NumPy's)
        stores.append(f"o{j}[{index}] = {names[id(e)]}")
    outs = [f"o{j}" for j in range(len(exprs))]
    args = outs + params + (["acc"] if uses_acc else [])
    body = ["", "", f"def kernel({', '.join(args)}):"]
    for d in range(ndim):
        body.append("    " * (d + 1) + f"for i{d} in range(o0.shape[{d}]):")
    pad = "    " * (ndim + 1)
    body += [pad + line for line in lines + stores]
    return "\n".join(header + body) + "\n"


def _literal(value: np.generic) -> str:
    """Source giving NumPy scalar `value` exactly (floats through their hex form)."""
    if isinstance(value, np.floating):
        return f"np.{value.dtype.name}(float.fromhex({float(value).hex()!r}))"
    if isinstance(value, np.bool_):
        return f"np.bool_({bool(value)})"
    return f"np.{value.dtype.name}({int(value)})"


def cache_dir() -> Path:
    """Where compiled kernels are kept between runs: SMOLGRAD_JIT_CACHE, else
    ~/.cache/smolgrad/numba."""
    folder = os.environ.get("SMOLGRAD_JIT_CACHE")
    return Path(folder) if folder else Path.home() / ".cache" / "smolgrad" / "numba"


def build(src: str):
    """The numba function (compiled at its first call, for the types it gets) of
    `source`'s module.

    The module is written to cache_dir() under a name from its text's hash, so numba
    keeps the machine code beside it and a later run loads it instead of compiling
    again (numba caches only functions defined in a file). Where that folder cannot be
    written, the function is compiled in memory only."""
    counts["compiled"] += 1
    name = "smolgrad_jit_" + hashlib.sha1(src.encode()).hexdigest()[:20]
    # error_model="numpy": a float division by zero gives inf/nan, as in NumPy
    options = {"nogil": True, "error_model": "numpy"}
    try:
        folder = cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.py"
        if not path.exists() or path.read_text() != src:
            tmp = folder / f"{name}.{os.getpid()}.tmp"
            tmp.write_text(src)
            os.replace(tmp, path)  # (atomic: another process may read it meanwhile)
        spec = importlib.util.spec_from_file_location(name, path)
        module = sys.modules[name] = importlib.util.module_from_spec(spec)  # (numba's cache looks it up)
        spec.loader.exec_module(module)
        return _numba.njit(cache=True, **options)(module.kernel)
    except OSError:
        namespace: dict = {}
        exec(compile(src, f"<{name}>", "exec"), namespace)  # noqa: S102 (generated from the kernel IR above)
        return _numba.njit(**options)(namespace["kernel"])


def compile_errors() -> tuple[type, ...]:
    """The exceptions numba raises when it cannot compile a function."""
    return (_numba.core.errors.NumbaError,)


def failed(exc: Exception) -> None:
    """numba failed on a kernel (a bug of source()): raise with SMOLGRAD_JIT=1, else warn
    (the kernel stays on NumPy)."""
    if mode() == "1":
        raise exc
    warnings.warn(f"smolgrad: numba could not compile a kernel; it stays on NumPy ({exc!r})", RuntimeWarning)
