"""Row kernels (engine.kernel.RowsArg: layer norm, softmax and their backward passes)
compiled with numba into one pass per row, on the NumPy device.

Run as NumPy calls, a row kernel is its parts in turn, each a pass over all rows: the
prologue of each row sum, the sum, then the elementwise part. Compiled, each row is read
while it is in cache: its sums' prologues into a row-sized scratch array, the sums, then
the row's outputs.

As in numpy_jit, compiling never changes a result bit. The ops are those numpy_jit
compiles, and a sum adds the prologue's values in the order NumPy's `add.reduce` does
along a contiguous last axis (pairwise summation: eight running sums over blocks of up
to 128 values, halves above that, added to the identity 0). That order is NumPy's
implementation, not its documented behaviour, so the first compiled run of each kernel is
checked against NumPy's parts, bit for bit, and a kernel that differs stays on NumPy.
Only sums are compiled (a max's signed zeros follow NumPy's vector code)."""

from __future__ import annotations

import math

import numpy as np

from ..engine.kernel import Kernel, Load
from ..ops import Op
from . import numpy_jit
from .numpy_jit import _kind

_BLOCK = '''
@numba.njit(nogil=True, error_model="numpy")
def pairwise0(a, n):
    """NumPy's pairwise sum of a[:n], n <= 128: eight running sums (fewer than 8: one)."""
    if n < 8:
        res = a.dtype.type(0)
        for i in range(n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[0], a[1], a[2], a[3]
    r4, r5, r6, r7 = a[4], a[5], a[6], a[7]
    i = 8
    while i < n - n % 8:
        r0 += a[i]
        r1 += a[i + 1]
        r2 += a[i + 2]
        r3 += a[i + 3]
        r4 += a[i + 4]
        r5 += a[i + 5]
        r6 += a[i + 6]
        r7 += a[i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[i]
        i += 1
    return res
'''


def _halves(n: int) -> tuple[int, int]:
    """How NumPy's pairwise sum splits n > 128 values."""
    n2 = n // 2
    n2 -= n2 % 8
    return n2, n - n2


def _depth(n: int) -> int:
    """Levels of halving NumPy's pairwise sum takes for n values."""
    return 0 if n <= 128 else 1 + max(_depth(h) for h in _halves(n))


def pairwise_source(n: int) -> str:
    """numba functions pairwise0 ... pairwiseD(a, n) for sums of up to n values: level d
    halves its values as NumPy does and sums each half at level d - 1. (numba's cache
    cannot keep a recursive function, so the levels are written out.)"""
    code = [_BLOCK]
    for d in range(1, _depth(n) + 1):
        code.append(f'''
@numba.njit(nogil=True, error_model="numpy")
def pairwise{d}(a, n):
    if n <= 128:
        return pairwise0(a, n)
    n2 = n // 2
    n2 -= n2 % 8
    return pairwise{d - 1}(a[:n2], n2) + pairwise{d - 1}(a[n2:n], n - n2)
''')
    return "".join(code)


def _rows_view(shape: tuple[int, ...], strides: tuple[int, ...]) -> tuple[int, int] | None:
    """(row stride, last-axis stride) of a view seen as (rows, shape[-1]), or None when its
    leading dims do not merge into one."""
    row = None
    for d in reversed(range(len(shape) - 1)):
        if shape[d] == 1:
            continue
        if row is None:
            row, inner = strides[d], shape[d]
        elif strides[d] != row * inner:
            return None
        else:
            inner *= shape[d]
    return (row or 0, strides[-1] if shape[-1] > 1 else 0)


def _per_row(view, rows: int) -> bool:
    """Whether `view` reads a row value: one element per row, contiguous, broadcast along the row."""
    seen = _rows_view(view.shape, view.strides)
    return view.offset == 0 and seen is not None and seen[0] == (1 if rows > 1 else 0) and seen[1] == 0


def flat_operands(k: Kernel) -> dict[int, str]:
    """The operands of row kernel k that the compiled kernel gets 1-d: "row" for one row
    repeated along every row (a layer norm's weight and bias), given as that row;
    "column" for one value per row repeated along it (a saved mean), given as those
    values. numba then knows the layout of every array it indexes and vectorises the
    loops along a row (with 2-d broadcast views, of unknown strides, a layer norm ran at
    half the speed)."""
    rows, n = math.prod(k.shape[:-1]), k.shape[-1]
    flat = {}
    for i, s in enumerate(k.srcs):
        seen = _rows_view(s.view.shape, s.view.strides)
        if n > 1 and seen == (0, 1):
            flat[i] = "row"
        elif rows > 1 and seen == (1, 0):
            flat[i] = "column"
    return flat


def source(k: Kernel, compute) -> str | None:
    """The source of a module whose function `kernel(o0, ..., x0, ...)` computes row kernel
    k over 2-d (rows, last axis) views of its outputs and operands, or None where it might
    not give NumPy's exact result (see the module docstring)."""
    from .numpy_backend import FOLD_MAX_EXTENT  # (imported here: numpy_backend imports this module's user)

    parts, reads = k.arg.parts, k.arg.reads
    rows, n = math.prod(k.shape[:-1]), k.shape[-1]
    if parts[-1].kind != "elementwise" or any(o.dtype.np == np.float16 for o in k.outs):
        return None
    if len({o.slot for o in k.outs}) != len(k.outs):  # (local slot m is then output m: see kernel.local_slots)
        return None
    if n <= FOLD_MAX_EXTENT and rows >= 4096:  # (NumPy then sums short rows in another order: reduce_array)
        return None
    header = ["import numba", "import numpy as np", "", pairwise_source(n)]
    flat = flat_operands(k)  # (given 1-d: see RowsJit.run)
    row_values: list[str] = []  # the name of each row value, in order
    count = [0]  # names made so far

    def emit(program, exprs, ctx: str, part: Kernel, read):
        """(lines computing `exprs` of one part's program, their names, their NumPy
        dtypes), or None; ctx: "j" inside the loop along a row, "0" for one value per row."""

        def load(e: Load, name: str):
            where, index = read[e.src]
            view = part.srcs[e.src].view
            if where == "red":  # a row value
                return ("", row_values[index]) if _per_row(view, rows) else None
            if _rows_view(view.shape, view.strides) is None or k.srcs[index].view != view:
                return None
            at = ctx if view.shape[-1] > 1 else "0"
            at = {"row": at, "column": "r"}.get(flat.get(index), f"r, {at}")
            return f"{name} = x{index}[{at}]", name

        got = numpy_jit.emit(program, header, compute, load, "acc", count)
        if got is None:
            return None
        lines, names, dtypes = got
        return lines, [names[id(e)] for e in exprs], [dtypes[id(e)] for e in exprs]

    body: list[str] = []
    buffers = set()
    for p, read in zip(parts, reads):
        last = p is parts[-1]
        if p.kind == "reduce":
            if p.op is not Op.SUM or tuple(p.arg) != (len(p.pre_shape) - 1,):
                return None
            pre = emit(p.pre_program, (p.pre,), "j", p, read)
            if pre is None or _kind(pre[2][0]) != "f":
                return None
            # NumPy computes the prologue in its operands' memory order and sums it in that
            # order: compiled only where that is row by row (row-major or broadcast operands)
            for e in p.pre_program:
                if isinstance(e, Load) and read[e.src][0] == "src":
                    view = p.srcs[e.src].view
                    seen = _rows_view(view.shape, view.strides)
                    if seen[1] not in (0, 1) or (seen[1] == 1 and seen[0] not in (0, view.shape[-1])):
                        return None
            buf = f"buf_{pre[2][0].name}"
            buffers.add(pre[2][0])
            body += ["for j in range(n):"] + [f"    {line}" for line in pre[0]] + [f"    {buf}[j] = {pre[1][0]}"]
            body.append(f"acc = T_{pre[2][0].name}(0) + pairwise{_depth(n)}({buf}, n)")
        elif p.kind != "elementwise":
            return None
        got = emit(p.program, p.exprs, "j" if last else "0", p, read)
        if got is None:
            return None
        lines, values, _ = got
        if last:
            stores = [f"o{o.slot}[r, j] = {v}" for o, v in zip(p.outs, values)]
            body += ["for j in range(n):"] + [f"    {line}" for line in lines + stores]
        else:
            body += lines
            for o, v in zip(p.outs, values):
                row_values.append(v)
                if o.slot < len(k.outs):  # (a kernel output too: the local slots start with them)
                    body.append(f"o{o.slot}[r, 0] = {v}")
    args = [f"o{m}" for m in range(len(k.outs))] + [f"x{i}" for i in range(len(k.srcs))]
    code = [f"def kernel({', '.join(args)}):", "    n = o0.shape[1]"]  # (numpy_jit.build compiles it)
    code += [f"    buf_{d.name} = np.empty(n, np.{d.name})" for d in sorted(buffers, key=str)]
    code += ["    for r in range(o0.shape[0]):"] + [f"        {line}" for line in body]
    return "\n".join(header) + "\n\n" + "\n".join(code) + "\n"


class RowsJit:
    """One row kernel's compiled function, once it has run AFTER times (see numpy_jit)."""

    def __init__(self) -> None:
        self.runs = 0
        self.fn = None  # the module's kernel; False: not compiled
        self.flat: dict[int, str] = {}  # operands given 1-d (see flat_operands)
        self.checked = False  # whether its first result was compared with NumPy's

    def ready(self, k: Kernel, compute) -> bool:
        if self.fn is None:
            self.runs += 1
            due = numpy_jit.due(self.runs, math.prod(k.shape))
            if not due:
                if due is False:
                    self.fn = False
                return False
            src = source(k, compute)
            self.fn = False if src is None else numpy_jit.build(src)
            self.flat = flat_operands(k)
        return bool(self.fn)

    def check(self, got: list[np.ndarray], want: list[np.ndarray]) -> bool:
        """Compare the first compiled result with NumPy's, bit for bit; a kernel whose
        result differs is not compiled again. Whether they agree."""
        self.checked = True
        same = all(np.array_equal(a.view(np.uint8), b.view(np.uint8)) for a, b in zip(got, want))
        if not same:
            self.fn = False
        return same

    def run(self, k: Kernel, operands: list[np.ndarray], empty) -> list[np.ndarray] | None:
        """The kernel's flat outputs, or None when an operand cannot be seen as rows."""
        rows = math.prod(k.shape[:-1])
        args = []
        for i, x in enumerate(operands):
            view = x.view()
            try:
                view.shape = (rows, x.shape[-1])  # (raises where a copy would be needed)
            except AttributeError:
                return None
            form = self.flat.get(i)
            args.append(view if form is None else view[0] if form == "row" else view[:, 0])
        outs = [empty(math.prod(o.shape), o.dtype.np) for o in k.outs]
        self.fn(*[buf.reshape(rows, -1) for buf in outs], *args)
        numpy_jit.counts["runs"] += 1
        numpy_jit.counts["rows"] += 1
        return outs
