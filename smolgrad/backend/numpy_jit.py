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
round differently from the C library's that compiled code calls; a kernel with such ops
runs as compiled loops around NumPy's calls for them (see segments()). So a kernel may start on
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
# programs (or segments' phases) compiled, runs of compiled programs, calls of segmented
# ones (a call a piece) and runs of compiled row kernels (numpy_jit_rows), in this
# process (tests read them)
counts = {"compiled": 0, "runs": 0, "segmented": 0, "rows": 0}


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


def due(runs: int, numel: int) -> bool | None:
    """Whether a kernel of `numel` elements that has now run `runs` times is compiled now
    (True), later (None: fewer than AFTER + 1 runs) or never (False: too small, or no
    numba; see the module docstring). numba is imported only here, when one is due."""
    if numel < MIN_ELEMENTS:
        return False
    if runs <= AFTER:
        return None
    return available()  # (importing numba takes 0.6 s)


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
        if e.dtype.np == np.float16:  # rounded to float16 and computed on in float32: NumPy's
            return None
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


def emit(program, header: list[str], compute, load, acc: str, count: list[int]):
    """(lines of Python computing each expression of `program` in turn, each value's name
    and NumPy dtype, both by id), or None where an op might not give NumPy's exact bits.
    Dtypes and constants go to the module's `header`; `load(e, name)` gives (the line
    reading Load e, or "", the name of its value); `acc` is the core's result (Acc);
    `count` holds the number of names made so far (v0, v1, ...)."""
    lines, names, dtypes = [], {}, {}
    for e in program:
        rd = compute(e.dtype)
        t = f"T_{rd.name}"
        if f"{t} = np.{rd.name}" not in header:
            header.append(f"{t} = np.{rd.name}")
        name = f"v{count[0]}"
        count[0] += 1
        if isinstance(e, Load):
            got = load(e, name)
            if got is None:
                return None
            line, name = got
            if line:
                lines.append(line)
        elif isinstance(e, Const):
            header.append(f"{name} = {_literal(np.array(e.value, dtype=rd)[()])}")
        elif isinstance(e, Acc):
            lines.append(f"{name} = {t}({acc})")  # (as NumPy's astype)
        elif e.op is Op.RAND:
            return None
        else:
            code = _op_code(e, [names[id(s)] for s in e.srcs], [dtypes[id(s)] for s in e.srcs], rd, t)
            if code is None:
                return None
            lines.append(f"{name} = {code}")
        names[id(e)] = name
        dtypes[id(e)] = rd
    return lines, names, dtypes


def source(program: tuple[Expr, ...], exprs: tuple[Expr, ...], ndim: int, load_dims: list[tuple[bool, ...]],
           out_dtypes: list[np.dtype], compute) -> str | None:
    """The source of a module whose function `kernel` computes a program's results, or
    None where it cannot give NumPy's exact result.

    The function is `kernel(o0, ..., l0, ..., acc)`: outputs o_j (results, in order, of
    the program's shape), one array per Load in program order (load_dims: along which
    dims it varies; it has size 1 along the others) and, if the program reads the core's
    result, acc (of the program's shape). `compute(dtype)`: the NumPy dtype a DType's
    values are computed in."""
    if ndim == 0:
        return None
    header = ["import numpy as np", ""]  # the module's: dtypes and constants
    index = ", ".join(f"i{d}" for d in range(ndim))
    params: list[str] = []

    def load(e: Load, name: str) -> tuple[str, str]:
        at = ", ".join(f"i{d}" if varies else "0" for d, varies in enumerate(load_dims[len(params)]))
        params.append(f"l{len(params)}")
        return f"{name} = {params[-1]}[{at}]", name

    emitted = emit(program, header, compute, load, f"acc[{index}]", [0])
    if emitted is None:
        return None
    lines, names, dtypes = emitted
    uses_acc = any(isinstance(e, Acc) for e in program)
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


def add_slices_source(ndim: int) -> str:
    """The source of a module whose `kernel(out, rows, src)` adds src[i] into out[rows[i]]
    for i = 0, 1, ... in turn, elementwise: np.add.at's order, so its bits (IEEE additions
    in the arrays' dtype). out and src have `ndim` dims, the first the one rows index;
    src may be smaller than out along the others."""
    at = "".join(f", j{d}" for d in range(1, ndim))
    lines = ["def kernel(out, rows, src):", "    for i in range(rows.shape[0]):", "        r = rows[i]"]
    for d in range(1, ndim):
        lines.append("    " * (d + 1) + f"for j{d} in range(src.shape[{d}]):")
    lines.append("    " * (ndim + 1) + f"out[r{at}] += src[i{at}]")
    return "import numpy as np\n\n\n" + "\n".join(lines) + "\n"


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


# ----- segments: programs with ops left to NumPy
# A program that source() refuses for an op or two (GELU's tanh, softmax's exp) runs as
# phases: NumPy computes those ops (and the values of fewer dims they read, once per
# distinct value, as on NumPy alone), each with the call a kernel on NumPy alone makes,
# and compiled loops compute every other value between them, writing the ones NumPy's
# calls read into temporaries of the piece's size. Phase k of NumPy calls runs the ops
# whose arguments the compiled phases before it computed; compiled phase k then
# computes what they feed. E.g. GELU-tanh: a loop computing tanh's argument into a
# temporary, np.tanh on it in place, a loop computing the rest into the output.


class Segments:
    """A program run as compiled loops and NumPy calls (see segments()); called as
    source()'s kernel: `seg(o0, ..., l0, ..., acc)`."""

    def __init__(self, phases: list[tuple], n_out: int, load_index: dict[int, int], consts: dict[int, np.ndarray],
                 copies: list[tuple[int, Expr]], ndim: int) -> None:
        """`phases`: ("numpy", expr, fn, [(src, dtype)], index of the src it writes into or
        -1, output it writes into or -1) or ("jit", fn, targets, [(expr read, dtype)],
        whether fn reads acc); `load_index`: id(Load) -> its place among the loads;
        `consts`: id(Const) -> its value, as _Program.run has it; `copies`: (output, expr)
        of the outputs NumPy computed into arrays of their own."""
        self.phases, self.n_out, self.consts, self.copies, self.ndim = phases, n_out, consts, copies, ndim
        self.load_index, self.n_loads = load_index, len(load_index)

    def __call__(self, *args) -> None:
        outs, loads = args[: self.n_out], args[self.n_out : self.n_out + self.n_loads]
        acc = args[self.n_out + self.n_loads] if len(args) > self.n_out + self.n_loads else None
        counts["segmented"] += 1
        values = dict(self.consts)  # id(expr) -> its value, for the NumPy calls and temporaries

        def value(e: Expr, dtype: np.dtype):
            if isinstance(e, Load):
                return loads[self.load_index[id(e)]]
            if isinstance(e, Acc):  # (as _Program.run reads it)
                return acc if acc.dtype == dtype else acc.astype(dtype)
            return values[id(e)]

        for phase in self.phases:
            if phase[0] == "numpy":
                _, e, fn, srcs, into, dest = phase
                xs = [value(s, d) for s, d in srcs]
                if dest >= 0:
                    values[id(e)] = fn(*xs, out=outs[dest])
                elif into >= 0:
                    values[id(e)] = fn(*xs, out=xs[into])
                else:
                    values[id(e)] = fn(*xs)
            else:
                _, fn, targets, ins, uses_acc = phase
                dests = []
                for j, e, dtype in targets:
                    if j >= 0:
                        dests.append(outs[j])
                    else:
                        values[id(e)] = np.empty(outs[0].shape, dtype)
                        dests.append(values[id(e)])
                xs = []
                for e, d in ins:
                    x = value(e, d)
                    xs.append(x if np.ndim(x) == self.ndim else np.reshape(x, (1,) * self.ndim))  # (a NumPy scalar)
                fn(*dests, *xs, *([acc] if uses_acc else []))
        for j, e in self.copies:
            np.copyto(outs[j], values[id(e)], casting="unsafe")


def segments(program: tuple[Expr, ...], exprs: tuple[Expr, ...], ndim: int, load_dims: list[tuple[bool, ...]],
             out_dtypes: list[np.dtype], compute, numpy_fn) -> Segments | None:
    """A program that source() refuses run as compiled loops around NumPy's calls for
    the ops it refuses, or None where no loop would be left or one cannot be made.
    Arguments as source()'s; `numpy_fn(e)`: the NumPy function a kernel run on NumPy
    alone computes op e with (its result in e's compute dtype)."""
    if ndim == 0 or any(isinstance(e, Apply) and e.op is Op.RAND for e in program):
        return None
    full = (True,) * ndim
    dims: dict[int, tuple[bool, ...]] = {}
    numpy: set[int] = set()  # ids of the Apply exprs NumPy computes
    load_index: dict[int, int] = {}
    for e in program:
        if isinstance(e, Load):
            load_index[id(e)] = len(load_index)
            dims[id(e)] = tuple(load_dims[load_index[id(e)]])
        elif isinstance(e, Const):
            dims[id(e)] = (False,) * ndim
        elif isinstance(e, Acc):
            if compute(e.dtype) == np.float16:
                return None
            dims[id(e)] = full
        else:
            dims[id(e)] = tuple(any(dims[id(s)][d] for s in e.srcs) for d in range(ndim))
            ad = [compute(s.dtype) for s in e.srcs]
            rd = compute(e.dtype)
            if _op_code(e, ["a"] * len(e.srcs), ad, rd, f"T_{rd.name}") is None:
                numpy.add(id(e))
    if not numpy:
        return None
    for e in reversed(program):  # the values of fewer dims NumPy's ops read: NumPy's too
        if id(e) in numpy:
            numpy.update(id(s) for s in e.srcs if isinstance(s, Apply) and dims[id(s)] != full)

    def computed(e: Expr) -> bool:  # a value a compiled loop computes
        return isinstance(e, Apply) and id(e) not in numpy

    level: dict[int, int] = {}
    for e in program:
        srcs = e.srcs if isinstance(e, Apply) else ()
        if id(e) in numpy:  # after the compiled phase computing its arguments
            level[id(e)] = max((level[id(s)] + computed(s) for s in srcs), default=0)
        else:
            level[id(e)] = max((level[id(s)] for s in srcs), default=0)
    temps = list({id(s): s for e in program if id(e) in numpy for s in e.srcs if computed(s)}.values())
    results = {id(e): j for j, e in reversed(list(enumerate(exprs)))}  # (the first output of each)

    phases: list[list] = []  # ["numpy", e, srcs, into, dest] or ["jit", targets]
    for k in range(max(level.values()) + 1):
        for e in program:
            if id(e) in numpy and level[id(e)] == k:
                j = results.get(id(e), -1)
                dest = j if j >= 0 and dims[id(e)] == full and compute(e.dtype) == out_dtypes[j] else -1
                phases.append(["numpy", e, list(e.srcs), -1, dest])
        targets = [(j, e, out_dtypes[j]) for j, e in enumerate(exprs) if id(e) not in numpy and level[id(e)] == k]
        targets += [(-1, e, compute(e.dtype)) for e in temps if level[id(e)] == k]
        if targets:
            phases.append(["jit", targets])
    if not any(p[0] == "jit" for p in phases):
        return None

    built: list[tuple] = []
    reads = []  # per phase, the ids of the values it reads
    for p in phases:
        if p[0] == "numpy":
            reads.append({id(s) for s in p[2]})
        else:
            src, ins, uses_acc = _phase_source(p[1], ndim, numpy, dims, compute)
            if src is None:
                return None
            p.extend([src, ins, uses_acc])
            reads.append({id(e) for e in ins})
    owned = {id(e) for e in temps} | numpy  # fresh arrays of the run (may be written in place)
    for i, p in enumerate(phases):
        if p[0] == "numpy":
            e, srcs, dest = p[1], p[2], p[4]
            fn = numpy_fn(e)
            into = -1
            if dest < 0 and isinstance(fn, np.ufunc) and any(dims[id(e)]):
                later = set().union(*reads[i + 1 :], {id(x) for x in exprs})
                for a, s in enumerate(srcs):
                    if id(s) in owned and dims[id(s)] == dims[id(e)] and compute(s.dtype) == compute(e.dtype) \
                            and id(s) not in later:
                        into = a
                        break
            if dest >= 0 and not isinstance(fn, np.ufunc):
                dest = -1
            built.append(("numpy", e, fn, [(s, compute(s.dtype)) for s in srcs], into, dest))
        else:
            targets, src, ins, uses_acc = p[1], p[2], p[3], p[4]
            built.append(("jit", build(src), targets, [(e, compute(e.dtype)) for e in ins], uses_acc))
    copies = [(j, e) for j, e in enumerate(exprs) if id(e) in numpy and not any(
        b[0] == "numpy" and b[1] is e and b[5] == j for b in built)]
    consts = {id(e): np.array(e.value, dtype=compute(e.dtype)) for e in program if isinstance(e, Const)}
    return Segments(built, len(exprs), load_index, consts, copies, ndim)


def _phase_source(targets: list[tuple], ndim: int, numpy: set[int], dims: dict, compute):
    """source() of a compiled phase computing `targets` ((output index or -1, expr,
    dtype stored)): the values NumPy computes are read like loads. Returns (source,
    the exprs read in parameter order, whether it reads the core's result)."""
    memo: dict[int, Expr] = {}
    program: list[Expr] = []
    ins: list[Expr] = []

    def convert(e: Expr) -> Expr:
        if id(e) in memo:
            return memo[id(e)]
        if isinstance(e, Load) or id(e) in numpy:
            new = Load(len(ins), e.dtype)
            ins.append(e)
        elif isinstance(e, (Const, Acc)):
            new = e
        else:
            new = Apply(e.op, tuple(convert(s) for s in e.srcs), e.dtype, e.arg)
        memo[id(e)] = new
        program.append(new)
        return new

    outs = [convert(e) for _, e, _ in targets]
    src = source(tuple(program), tuple(outs), ndim, [dims[id(e)] for e in ins], [d for _, _, d in targets], compute)
    return src, ins, any(isinstance(e, Acc) for e in program)
