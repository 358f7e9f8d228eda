"""Kernels compiled with numba on the NumPy device (backend/numpy_jit.py).

Compiling must never change a result, so every case runs twice from fresh kernel plans:
on NumPy alone (SMOLGRAD_JIT=0) and compiled from the first run, and the two results must
have the same bits. Each case also checks that compiled code ran (or, for ops left to
NumPy, that it did not), so none of these tests can pass by falling back to NumPy."""

from __future__ import annotations

import numpy as np
import pytest

import smolgrad as sg
import smolgrad.nn as nn
from smolgrad import optim
from smolgrad.backend import numpy_backend as nb
from smolgrad.backend import numpy_jit, numpy_rows
from smolgrad.device import get_backend

pytest.importorskip("numba")


def fresh_plans() -> None:
    """Forget the NumPy device's kernel plans, so the next kernels are planned (and
    compiled or not) anew."""
    get_backend("numpy")._plans.clear()
    numpy_rows._plans.clear()


@pytest.fixture
def jit(monkeypatch):
    """Returns run(fn): fn's results (NumPy arrays) on NumPy alone and compiled from the
    first run (two fresh sets of plans), with the count of compiled runs in the second."""

    monkeypatch.setenv("SMOLGRAD_FUSION", "1")  # (the cases are written as fused kernels, also in CI's fusion-off pass)

    def run(fn):
        monkeypatch.setenv("SMOLGRAD_JIT", "0")
        fresh_plans()
        plain = [np.asarray(x) for x in fn()]
        monkeypatch.setenv("SMOLGRAD_JIT", "1")
        monkeypatch.setattr(numpy_jit, "AFTER", 0)
        monkeypatch.setattr(numpy_jit, "MIN_ELEMENTS", 0)
        fresh_plans()
        before = numpy_jit.counts["runs"]
        compiled = [np.asarray(x) for x in fn()]
        return plain, compiled, numpy_jit.counts["runs"] - before

    yield run
    fresh_plans()


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal dtype, shape and bits (so -0.0 differs from 0.0); NaNs match any NaN."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.kind != "f":
        return np.array_equal(a, b)
    nan = np.isnan(a)
    return np.array_equal(nan, np.isnan(b)) and np.array_equal(np.signbit(a[~nan]), np.signbit(b[~nan])) and \
        np.array_equal(a[~nan], b[~nan])


def check(jit, fn, compiled=True):
    plain, got, runs = jit(fn)
    assert len(plain) == len(got)
    for a, b in zip(plain, got):
        assert same_bits(a, b), f"compiled result differs from NumPy's:\n{a}\n{b}"
    if compiled:
        assert runs > 0, "no kernel ran compiled"
    else:
        assert runs == 0, "a kernel with an op left to NumPy ran compiled"


def rand(*shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def t(a):
    return sg.tensor(a, device="numpy")


def test_arithmetic_chain(jit):
    x, y, z = rand(64, 33, seed=1), rand(64, 33, seed=2), rand(64, 33, seed=3)
    check(jit, lambda: [((t(x) * 2.5 + t(y)) / (t(z) - 1) - t(x) * t(y)).numpy()])


def test_broadcast_and_transposed_operands(jit):
    x, b, col, w = rand(64, 33), rand(33, seed=1), rand(64, 1, seed=2), rand(33, 64, seed=3)
    check(jit, lambda: [(t(x) + t(b) * t(col) - t(w).T).numpy(), (t(x)[:, ::2] * 3 + t(b)[::2]).numpy()])


def test_ieee_edge_cases(jit):
    """Division by zero, sqrt of negatives, NaN in maximum/minimum, signed zeros."""
    x = np.array([[0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 2.0]], np.float32).repeat(8, 0)
    y = np.array([[0.0, 0.0, -0.0, 1.0, np.nan, 3.0, 1.0, -np.inf]], np.float32).repeat(8, 0).T[:, :8].T
    check(jit, lambda: [
        (t(x) / t(y)).numpy(),
        (t(x).sqrt() + 1).numpy(),
        sg.maximum(t(x) * 1, t(y)).numpy(),
        sg.minimum(t(x) * 1, t(y)).numpy(),
        (t(x).reciprocal() * 2).numpy(),
        (-t(x) * 1).numpy(),
        (t(x).abs() + t(y).floor() + t(y).ceil() + t(x).trunc()).numpy(),
        ((t(x) * 0.5 + 0.5).round() + (t(y) * 2.5).round()).numpy(),  # (half to even)
    ])


def test_comparisons_where_and_relu(jit):
    x, y = rand(40, 50), rand(40, 50, seed=1)
    check(jit, lambda: [
        sg.where(t(x) > 0, t(x), t(y) * 0.1).numpy(),
        ((t(x) >= t(y)).float() * 2 + (t(x) != 0).float()).numpy(),
        (sg.relu(t(x) * 3) + t(y)).numpy(),
    ])


def test_casts(jit):
    x = rand(30, 20) * 100
    i = np.arange(600, dtype=np.int32).reshape(30, 20) * 1_000_003
    check(jit, lambda: [
        (t(x).double() * 1.5).float().numpy(),  # float64 rounded to float32
        (t(i).float() + 0.5).numpy(),  # int32 to float32, rounded
        ((t(x) > 0).int() + t(i)).numpy(),  # bool to int32
        ((t(x) * 0).bool()).numpy(),  # float to bool
        (t(i).long() * 3).int().numpy(),  # int64 wrapped to int32
    ])


def test_float16_rounding_stays_as_numpy(jit):
    """float16 values are computed in float32 and rounded where cast or stored."""
    x = rand(40, 30)
    plain, got, _ = jit(lambda: [((t(x) * 3).half() + 1).float().numpy(), (t(x).half() * 2).numpy()])
    for a, b in zip(plain, got):
        assert same_bits(a, b)
    check(jit, lambda: [((t(x) * 3).half().float() * 2 + t(x)).numpy()])  # (the cast itself by NumPy)


def test_integer_ops_wrap_as_numpy(jit):
    a = np.array([[2**31 - 1, -(2**31), 7, -7, 0, 123456789]], np.int32).repeat(4, 0)
    b = np.array([[1, -1, 3, 2, -5, 1000]], np.int32).repeat(4, 0)
    check(jit, lambda: [
        (t(a) + t(b)).numpy(), (t(a) * t(b)).numpy(), (-t(a) - t(b)).numpy(),
        (t(a).abs() + 0).numpy(), sg.maximum(t(a) + 0, t(b)).numpy(),
    ])


def test_float64(jit):
    x, y = rand(20, 30, dtype=np.float64), rand(20, 30, seed=1, dtype=np.float64)
    check(jit, lambda: [((t(x) * 0.1 + t(y)).sqrt() / 3).numpy()])


def test_matmul_epilogue(jit):
    x, w, b = rand(16, 40), rand(40, 24, seed=1), rand(24, seed=2)
    check(jit, lambda: [sg.relu(t(x) @ t(w) + t(b)).numpy()])


def test_large_kernels_run_in_pieces_on_threads(jit, monkeypatch):
    monkeypatch.setattr(nb, "PIECE", 1024)
    x, y = rand(300, 70), rand(70, seed=1)
    check(jit, lambda: [(t(x) * t(y) + t(x).T.T * 2 - 1).numpy(), (t(x).T * 3).numpy()])


def test_ops_left_to_numpy_alone_are_not_compiled(jit):
    """exp, tanh and pow round differently when compiled (NumPy's own vectorised
    versions against the C library's): a kernel of such ops alone stays on NumPy."""
    x = rand(20, 20)
    check(jit, lambda: [t(x).exp().numpy(), (t(x) ** 3).numpy(), t(x).tanh().tanh().numpy()], compiled=False)


def test_promoting_kernel_stays_exact(jit):
    """int32 with float32 is computed in float64 by NumPy and rounded: left to NumPy, or
    computed as NumPy does."""
    i, x = np.arange(12, dtype=np.int32).reshape(3, 4) * 16777217, rand(3, 4)
    plain, got, _ = jit(lambda: [(t(i) + t(x) * 1).numpy()])
    assert same_bits(plain[0], got[0])


def test_training_steps_compiled_after_a_few_runs(monkeypatch):
    """An MLP trained with Adam for a few steps: with the default settings its kernels
    are too small to compile; with MIN_ELEMENTS=0 they move to compiled code after AFTER
    runs (the default), and the parameters are bit-identical to NumPy's alone."""

    def train():
        sg.manual_seed(0)
        model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 5)).to("numpy")
        opt = optim.Adam(model.parameters(), lr=1e-2, weight_decay=0.01)
        rng = np.random.default_rng(0)
        for _ in range(6):
            x, y = t(rng.standard_normal((16, 20)).astype(np.float32)), t(rng.integers(0, 5, 16))
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return [p.detach().numpy() for p in model.parameters()]

    monkeypatch.setenv("SMOLGRAD_JIT", "0")
    fresh_plans()
    plain = train()
    monkeypatch.setenv("SMOLGRAD_JIT", "1")
    fresh_plans()
    before = dict(numpy_jit.counts)
    train()
    fresh_plans()
    assert numpy_jit.counts == before, "kernels below MIN_ELEMENTS were compiled"
    monkeypatch.setattr(numpy_jit, "MIN_ELEMENTS", 0)
    compiled = train()
    fresh_plans()
    assert numpy_jit.counts["runs"] > before["runs"]
    for a, b in zip(plain, compiled):
        assert same_bits(a, b)


def test_bad_setting_and_missing_numba(monkeypatch):
    monkeypatch.setenv("SMOLGRAD_JIT", "yes")
    with pytest.raises(ValueError, match="SMOLGRAD_JIT must be"):
        numpy_jit.available()
    monkeypatch.setenv("SMOLGRAD_JIT", "1")
    monkeypatch.setattr(numpy_jit, "_numba", False)
    with pytest.raises(ImportError, match="pip install numba"):
        numpy_jit.available()
    monkeypatch.setenv("SMOLGRAD_JIT", "auto")
    assert numpy_jit.available() is False  # auto without numba: NumPy alone


def test_generated_source_reads_broadcast_operands_once_per_value():
    """A bias broadcast along the rows is indexed by the column alone."""
    from smolgrad.dtypes import float32
    from smolgrad.engine.kernel import Apply, Load
    from smolgrad.ops import Op

    x, b = Load(0, float32), Load(1, float32)
    add = Apply(Op.ADD, (x, b), float32)
    code = numpy_jit.source((x, b, add), (add,), 2, [(True, True), (False, True)], [np.dtype(np.float32)],
                               nb.compute_np)
    assert "l0[i0, i1]" in code and "l1[0, i1]" in code and "o0[i0, i1] = v2" in code


def test_reduction_prologues(jit, monkeypatch):
    """A reduction's prologue is computed compiled, then reduced by NumPy as before:
    sums over kept and reduced pieces, keepdim, max and a mean of squares."""
    monkeypatch.setattr(nb, "PIECE", 256)
    x, y = rand(50, 70), rand(50, 70, seed=1)
    check(jit, lambda: [
        ((t(x) - t(y)) * t(x)).sum(1).numpy(),
        ((t(x) * 2 + 1) * t(y)).sum(0, keepdim=True).numpy(),
        (t(x) * t(y) - 1).amax(1).numpy(),
        ((t(x) - t(y)) ** 2).mean().numpy(),
        (t(x) * 3).sum().numpy(),
    ])


def test_compiled_kernels_are_cached_on_disk(tmp_path):
    """A second process finds the first one's machine code in SMOLGRAD_JIT_CACHE and
    compiles nothing."""
    import os
    import subprocess
    import sys

    script = (
        "import numpy as np, smolgrad as sg\n"
        "from smolgrad.backend import numpy_jit\n"
        "numpy_jit.MIN_ELEMENTS = 0\n"
        "x = sg.tensor(np.arange(12, dtype=np.float32).reshape(3, 4), device='numpy')\n"
        "for _ in range(4): y = (x * 0.5 + 1).numpy()\n"
        "fns = [p.main.compiled for p in sg.device.get_backend('numpy')._plans.values() if p.main.compiled]\n"
        "print(len(fns), sum(f.stats.cache_hits.get(s, 0) for f in fns for s in f.signatures), y[2, 3])\n"
    )
    env = dict(os.environ, SMOLGRAD_JIT="1", SMOLGRAD_JIT_CACHE=str(tmp_path), SMOLGRAD_DEVICE="numpy",
               SMOLGRAD_FUSION="1")
    first, second = (subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
                     for _ in range(2))
    assert first.stdout.split() == ["1", "0", "6.5"], first.stdout + first.stderr
    assert second.stdout.split() == ["1", "1", "6.5"], second.stdout + second.stderr
    assert list(tmp_path.glob("smolgrad_jit_*.py"))


# ----- segments: compiled loops around the ops left to NumPy (numpy_jit.segments)


@pytest.fixture
def segjit(jit):
    """run(fn): asserts that fn's results have the same bits on NumPy alone and
    compiled, and that segmented programs ran; returns how many calls (pieces) they made."""

    def run(fn):
        before = numpy_jit.counts["segmented"]
        plain, got, runs = jit(fn)
        calls = numpy_jit.counts["segmented"] - before
        assert calls > 0, "no program ran as segments"
        assert len(plain) == len(got)
        for a, b in zip(plain, got):
            assert same_bits(a, b), f"segmented result differs from NumPy's:\n{a}\n{b}"
        return calls

    return run


def grads(fn, *arrays):
    """fn's result and the gradients of its sum (times a fixed random weight) w.r.t. arrays."""

    def run():
        xs = [sg.tensor(a, device="numpy", requires_grad=True) for a in arrays]
        y = fn(*xs)
        (y * t(rand(*y.shape, seed=9, dtype=arrays[0].dtype))).sum().backward()
        return [y.detach().numpy()] + [x.grad.numpy() for x in xs]

    return run


def test_gelu_forward_and_backward_segmented(segjit):
    """GELU-tanh: a loop computing tanh's argument, np.tanh in place, a loop for the rest."""
    x = rand(64, 129) * 3
    segjit(grads(lambda a: nn.functional.gelu(a, approximate="tanh"), x))
    segjit(grads(lambda a: nn.functional.gelu(a), x))


def test_gelu_segments_are_two_loops_around_tanh():
    from smolgrad.dtypes import float32
    from smolgrad.engine.kernel import Apply, Const, Load
    from smolgrad.ops import Op

    program = []

    def node(e):
        program.append(e)
        return e

    def op(o, *srcs):
        return node(Apply(o, srcs, float32))

    x = node(Load(0, float32))
    half, one, k = (node(Const(v, float32)) for v in (0.5, 1.0, 0.7))
    th = op(Op.TANH, op(Op.MUL, x, op(Op.ADD, op(Op.MUL, x, x), k)))
    out = op(Op.MUL, op(Op.MUL, x, half), op(Op.ADD, one, th))
    args = (tuple(program), (out,), 2, [(True, True)], [np.dtype(np.float32)], nb.compute_np)
    assert numpy_jit.source(*args) is None
    seg = numpy_jit.segments(*args, lambda e: nb._numpy_call(e, 2))
    assert [p[0] for p in seg.phases] == ["jit", "numpy", "jit"]
    assert seg.phases[1][2] is np.tanh and seg.phases[1][4] == 0  # in place, into the temporary
    xs = rand(50, 70)
    o = np.empty_like(xs)
    seg(o, xs)
    expected = xs * np.float32(0.5) * (np.float32(1) + np.tanh(xs * (xs * xs + np.float32(0.7))))
    assert same_bits(o, expected)


def test_softmax_log_softmax_cross_entropy(segjit, monkeypatch):
    monkeypatch.setattr(nb, "PIECE", 512)
    x, w = rand(40, 67) * 4, rand(67, 67, seed=1)
    y = np.random.default_rng(0).integers(0, 67, 40)
    segjit(grads(lambda a: a.softmax(1), x))
    segjit(grads(lambda a: nn.functional.log_softmax(a * 2, 0), x))
    segjit(grads(lambda a, b: nn.functional.cross_entropy(a @ b, t(y)).reshape(1), x, w))


def test_transcendental_ops_in_sequence_and_in_parallel(segjit):
    x, y = rand(48, 65), rand(48, 65, seed=1)
    segjit(lambda: [
        ((t(x) * 0.5).exp().tanh() * 3 - t(y)).numpy(),  # two NumPy calls in a row
        ((t(x) * 2).tanh() * (t(y) - 1).exp() + t(x)).numpy(),  # two side by side
        (((t(x) * 2).sin() + 1).log() * t(y)).numpy(),  # NumPy, a loop, NumPy, a loop
        ((t(x).abs() + 1) ** (t(y) * 0.5) - 1).numpy(),  # pow of two computed values
    ])


def test_epilogues_of_matmul_and_reduction(segjit):
    """The core's result read by NumPy's call and by the compiled loops: a matmul's
    bias-tanh epilogue, logsumexp's log after the sum."""
    x, w, b = rand(40, 30), rand(30, 70, seed=1), rand(70, seed=2)
    segjit(lambda: [((t(x) @ t(w) + t(b)).tanh() * 2 + t(x) @ t(w)).numpy(),
                    ((t(x) @ t(w)).exp() * t(b) - 1).numpy(),
                    t(w).logsumexp(0).numpy(), (t(x).exp().sum(1).log() * 2 - 1).numpy()])


def test_several_outputs_some_from_numpy(segjit):
    """One kernel with outputs that are NumPy's results (written straight into the
    output, or copied where its dtype differs), computed ones, and a value that is both
    an output and NumPy's argument."""
    x = rand(40, 70)

    def run():
        a = t(x) * 2
        e = a.exp()
        outs = [a, e, e.half(), e * 3 + a, (a + 1).tanh()]
        sg.realize(*outs)
        return [o.numpy() for o in outs]

    segjit(run)


def test_float16_casts_round_as_numpy(segjit):
    """A cast to float16 rounds, then is computed on in float32: NumPy's call."""
    x = rand(40, 70) * 100
    segjit(lambda: [(t(x).half().float() * 3).numpy(), (t(x) * 3).half().exp().numpy(),
                    ((t(x) * 3).half() * 2).numpy()])


def test_broadcast_operands(segjit):
    """NumPy computes ops on broadcast values once per distinct value (as it does alone):
    exp of a bias, tanh of a row statistic computed in the kernel, a scalar's log."""
    x, b, col = rand(64, 33), rand(33, seed=1), rand(64, 1, seed=2)
    segjit(lambda: [
        (t(x) * t(b).exp() + 1).numpy(),
        ((t(col) * 2 + 1).tanh() * t(x) - t(b)).numpy(),
        (t(x) + (t(x) * 0 + 3).log()).numpy(),
        ((t(x) + t(b)).exp() * (t(col) * 0.5).sigmoid()).numpy(),
    ])


def test_non_contiguous_operands(segjit):
    x, w = rand(66, 40), rand(40, 66, seed=1)
    segjit(lambda: [
        ((t(w).T * 2).tanh() + t(x)).numpy(),  # a transposed operand into a computed value
        (t(w).T.exp() * t(x) + t(w).T).numpy(),  # read twice: copied to C order on NumPy alone
        ((t(x)[:, ::3] - 1).exp() + t(w).T[:, ::3]).numpy(),  # strided
        ((t(x).abs() + 1) ** t(w).T + 1).numpy(),
    ])


def test_pieces(segjit, monkeypatch):
    """Large kernels run piece by piece on threads: temporaries of a piece's size, odd
    last pieces."""
    monkeypatch.setattr(nb, "PIECE", 1000)
    x, b = rand(301, 77) * 3, rand(77, seed=1)
    calls = segjit(grads(lambda a: nn.functional.gelu(a * 1.5 + t(b), approximate="tanh"), x))
    assert calls > 2 * 20  # (two kernels, each in 24 pieces)
    segjit(lambda: [((t(x).T * 2).exp() - t(b)[:, None]).numpy()])


def test_float64_and_promotion(segjit):
    x, y = rand(30, 40, dtype=np.float64), rand(30, 40, seed=1, dtype=np.float64)
    i = np.arange(1200, dtype=np.int32).reshape(30, 40) * 16777
    segjit(grads(lambda a, b: ((a * 0.3).tanh() + 1) * b.exp() - a, x, y))
    segjit(lambda: [((t(i) + t(y.astype(np.float32)) * 1).exp() * 2).numpy(),  # int32 with float32: float64 on NumPy
                    ((t(y) * 7).floor().int() * 3 + t(i)).numpy()])  # float to int: NumPy's cast


def test_reduction_prologue_segmented(jit, monkeypatch):
    """A reduction's prologue with exp: a loop computes the argument, np.exp it, NumPy
    reduces it. A prologue reading an operand out of order is left to NumPy (computed
    in C order and reduced, its sum would differ)."""
    monkeypatch.setattr(nb, "PIECE", 512)
    x, y = rand(50, 70), rand(50, 70, seed=1)
    before = numpy_jit.counts["segmented"]
    check(jit, lambda: [
        (t(x) * 2 - 1).exp().sum(1).numpy(),
        ((t(x) - t(y)).tanh() * t(y)).sum(0).numpy(),
        (t(x).T * t(y).T * 3).sum(1).numpy(),
        ((t(x).T - 1).exp() * t(y).T).sum(0).numpy(),
    ])
    assert numpy_jit.counts["segmented"] > before


def test_prologues_reading_transposed_operands(jit, monkeypatch):
    """NumPy alone computes such a prologue in the operands' memory order (a transposed
    array) and sums it in that order: from the second run, the compiled value is laid
    out as NumPy's first one was, and the sums have the same bits."""
    monkeypatch.setattr(nb, "PIECE", 1024)
    x, y = rand(300, 70), rand(300, 70, seed=1)

    def run():
        for _ in range(3):
            a, b = t(x), t(y)
            got = [((a.T * 2) * b.T).sum(1).numpy(), ((a.T * 2) * b.T).sum(0).numpy(),
                   ((a.T - 1).exp() * b.T).sum(1).numpy(), (a.T * 2 + b.T.flip(0)).sum(1).numpy(),
                   (a.T.exp() * a.T).sum(0).numpy()]
        return got

    before = numpy_jit.counts["segmented"]
    check(jit, run)
    assert numpy_jit.counts["segmented"] > before
    orders = [getattr(p.pre, "value_order", None) for p in get_backend("numpy")._plans.values() if p.pre is not None]
    assert (1, 0) in orders  # (laid out as the transposed operands)


# ----- row kernels (numpy_jit_rows): one compiled pass per row -----


@pytest.mark.parametrize("shape, dtype", [((4, 16, 32), np.float32), ((64, 10), np.float32), ((8, 200), np.float64),
                                          ((3, 1000), np.float32), ((5, 129), np.float32)])
def test_row_kernels_layer_norm_and_softmax(jit, shape, dtype):
    """Layer norm forward and backward and softmax's backward run as compiled row
    kernels (rows of up to 128 values, and longer ones NumPy sums in halves), with NumPy's
    exact bits; zeros of both signs test the sums' start at 0."""
    x = rand(*shape, dtype=dtype)
    x[..., :3] = 0.0
    x[..., 3:5] = -0.0
    w, b, g = rand(shape[-1], seed=1, dtype=dtype), rand(shape[-1], seed=2, dtype=dtype), rand(*shape, seed=3, dtype=dtype)

    def run():
        xs, ws, bs = (sg.tensor(a, device="numpy", requires_grad=True) for a in (x, w, b))
        y = nn.functional.layer_norm(xs, (shape[-1],), ws, bs)
        (y * t(g)).sum().backward()
        s = nn.functional.softmax(xs * 1, -1)
        (s * t(g)).sum().backward()
        return [y.detach().numpy(), xs.grad.numpy(), ws.grad.numpy(), bs.grad.numpy()]

    before = numpy_jit.counts["rows"]
    check(jit, run)
    assert numpy_jit.counts["rows"] > before, "no row kernel ran compiled"


def test_a_row_kernel_that_differs_from_numpy_is_not_compiled_again():
    """The first compiled result is compared with NumPy's parts, bit for bit."""
    from smolgrad.backend.numpy_jit_rows import RowsJit

    jit = RowsJit()
    jit.fn = object()  # (stands for a compiled function)
    same = [np.arange(4, dtype=np.float32)]
    assert jit.check(same, [a.copy() for a in same]) and jit.fn
    other = RowsJit()
    other.fn = object()
    assert not other.check([np.array([0.0], np.float32)], [np.array([-0.0], np.float32)])
    assert other.fn is False and other.checked


def test_row_kernels_get_broadcast_operands_one_dimensional(jit, monkeypatch):
    """A layer norm's weight (one row for every row) and the mean and 1 / std its forward
    saved (one value per row) reach the compiled row kernels 1-d, where numba knows their
    layout and vectorises, with NumPy's exact bits."""
    from smolgrad.backend import numpy_jit_rows

    seen = []
    real = numpy_jit_rows.flat_operands

    def spy(k):
        forms = real(k)
        seen.append(set(forms.values()))
        return forms

    monkeypatch.setattr(numpy_jit_rows, "flat_operands", spy)
    x, w, b, g = rand(64, 32), rand(32, seed=1), rand(32, seed=2), rand(64, 32, seed=3)
    x[:, :2] = -0.0

    def run():
        xs, ws, bs = (sg.tensor(a, device="numpy", requires_grad=True) for a in (x, w, b))
        y = nn.functional.layer_norm(xs, (32,), ws, bs)
        y.realize()  # (the backward then reads the mean and 1 / std the forward saved)
        (y * t(g)).sum().backward()
        return [y.detach().numpy(), xs.grad.numpy(), ws.grad.numpy(), bs.grad.numpy()]

    check(jit, run)
    assert any("row" in forms for forms in seen)  # (the forward: weight and bias)
    assert any("column" in forms for forms in seen)  # (the backward: the saved mean and 1 / std)
