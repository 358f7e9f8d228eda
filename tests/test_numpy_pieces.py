"""The NumPy backend's fast paths for large kernels: kernels evaluated piece by piece,
recycled output memory, and matmuls of transposed or broadcast operands. Each is checked
against NumPy on odd shapes, non-contiguous views and float64; most tests shrink the
piece size so small arrays are cut into many pieces."""

from __future__ import annotations

import gc
import os

import numpy as np
import pytest

import smolgrad as sg
import smolgrad.nn.functional as F
from smolgrad import dtypes
from smolgrad.backend import numpy_backend as nb
from smolgrad.backend import numpy_threads
from smolgrad.backend.numpy_backend import _pieces, _Program, _where
from smolgrad.device import get_backend
from smolgrad.graph import postorder
from smolgrad.ops import Op
from smolgrad.engine.kernel import Apply, Const, Load, expr_children
from helpers import assert_close


def randn(*shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def t(a):
    return sg.tensor(a, device="numpy")


@pytest.fixture
def small_pieces(monkeypatch):
    """Pieces of 64 elements, so test-sized kernels run piecewise."""
    monkeypatch.setattr(nb, "PIECE", 64)


@pytest.mark.parametrize(
    "shape, split",
    [((7, 9, 13), 3), ((3, 200), 2), ((5, 40, 3), 1), ((2, 3, 700), 3), ((1, 1, 900), 3), ((33, 65), 1)],
)
def test_pieces_cover_the_shape_exactly_once(shape, split):
    pieces = _pieces(shape, split, 64)
    assert pieces is not None and len(pieces) > 1
    count = np.zeros(shape, dtype=int)
    for at, piece_shape in pieces:
        assert count[at].shape == piece_shape and len(at) <= split  # cut along the first `split` axes
        count[at] += 1
    np.testing.assert_array_equal(count, 1)


def test_small_or_uncuttable_shapes_are_not_cut():
    assert _pieces((15, 17), 2, 64) is None  # fewer than four pieces' worth
    assert _pieces((4, 1000), 0, 64) is None  # nothing may be cut
    assert _pieces((1, 1000), 1, 64) is None  # one piece only


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_piecewise_elementwise_with_strided_broadcast_and_masked_operands(small_pieces, dtype):
    a, b = randn(37, 29, dtype=dtype), randn(29, 37, seed=1, dtype=dtype)
    row, col = randn(29, seed=2, dtype=dtype), randn(37, 1, seed=3, dtype=dtype)
    big = randn(74, 29, seed=4, dtype=dtype)
    x, y, r, c, s = t(a), t(b), t(row), t(col), t(big)
    mask = x > 0.3
    out = ((x * 2 + y.T).exp() - r * c + s[::2]).masked_fill(mask, -1.5) / (c.abs() + 1)
    ref = np.where(a > 0.3, -1.5, np.exp(a * 2 + b.T) - row * col + big[::2]) / (np.abs(col) + 1)
    assert out.dtype == dtypes.to_dtype(np.dtype(dtype).name)
    assert_close(out, ref.astype(dtype), rtol=1e-6 if dtype == np.float32 else 1e-13)
    np.testing.assert_array_equal(x.numpy(), a)  # inputs untouched


def test_piecewise_kernel_with_several_outputs(small_pieces):
    a = randn(41, 23)
    x = t(a)
    h = x * 0.5
    outs = (h, (h * x).tanh(), h + 1, (x > 0).float(), x.T.contiguous().T * 1)  # one merged kernel
    sg.realize(*outs)
    refs = (a * 0.5, np.tanh(a * 0.5 * a), a * 0.5 + 1, (a > 0).astype(np.float32), a)
    for out, ref in zip(outs, refs):
        assert_close(out, ref, rtol=1e-6)


def test_piecewise_results_written_straight_into_outputs(small_pieces):
    x, y = Load(0, dtypes.float32), Load(1, dtypes.float32)
    u = Apply(Op.MUL, (x, y), dtypes.float32)
    v = Apply(Op.ADD, (u, Const(1.0, dtypes.float32)), dtypes.float32)
    w = Apply(Op.WHERE, (Apply(Op.GT, (x, y), dtypes.bool_), x, v), dtypes.float32)
    prog = _Program(tuple(postorder([v, w, u, x], expr_children)), (v, w, u, x), 2)
    assert [d is not None for d in prog.dests] == [True, False, True, False]  # where and a load are copied
    a, b = randn(300, 7), randn(300, 7, seed=1)
    outs = [type("Out", (), {"dtype": dtypes.float32}) for _ in range(4)]
    got = prog.outputs([a, b], None, outs, (300, 7))
    refs = (a * b + 1, np.where(a > b, a, a * b + 1), a * b, a)
    for g, ref in zip(got, refs):
        np.testing.assert_allclose(g.reshape(300, 7), ref, rtol=1e-6)


@pytest.mark.parametrize("cond_dtype", [np.bool_, np.int32, np.float32])
def test_where_function_matches_numpy_in_place_or_not(cond_dtype):
    cond = (randn(50, 3) > 0).astype(cond_dtype)
    a, b = np.float32(2.5), randn(50, 3, seed=1)
    ref = np.where(cond, a, b)
    np.testing.assert_array_equal(_where(cond, a, b), ref)
    into = b.copy()
    assert _where(cond, a, into, out=into) is into
    np.testing.assert_array_equal(into, ref)
    other = np.full_like(b, np.nan)
    _where(cond, a, b, out=other)
    np.testing.assert_array_equal(other, ref)
    assert _where(np.bool_(True), np.int32(1), np.float64(2.0)).dtype == np.float64  # NumPy's promotion


@pytest.mark.parametrize(
    "shape, dims, op",
    [
        ((23, 31, 17), (2,), "sum"),  # kept leading axes: independent pieces
        ((23, 31, 17), (1, 2), "amax"),
        ((40, 9, 11), (0,), "sum"),  # reduced leading axes: partial results folded
        ((40, 9, 11), (0, 1), "amin"),
        ((9, 40, 11), (0, 2), "sum"),  # only the first axis may be cut
        ((300, 5), (0,), "mean"),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_piecewise_reductions_of_fused_prologues(small_pieces, shape, dims, op, dtype):
    a, b = randn(*shape, dtype=dtype), randn(*shape, seed=1, dtype=dtype)
    x, y = t(a), t(b)
    prologue = x * y + x.exp()
    ref_in = a * b + np.exp(a)
    out = getattr(prologue, op)(dim=dims, keepdim=True)
    ref = {"sum": np.sum, "amax": np.max, "amin": np.min, "mean": np.mean}[op](ref_in, axis=dims, keepdims=True)
    assert_close(out, ref.astype(dtype), rtol=1e-5 if dtype == np.float32 else 1e-12)
    # and with the epilogue fused: the reduced result used right away
    out2 = prologue.sum(dim=dims) * 2 - 1
    assert_close(out2, (ref_in.sum(axis=dims) * 2 - 1).astype(dtype), rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_piecewise_softmax_and_integer_sums(small_pieces):
    a = randn(6, 5, 40)
    mask = np.triu(np.ones((5, 40), dtype=bool), k=3)
    out = t(a).masked_fill(t(mask), float("-inf")).softmax(dim=-1)
    e = np.exp(np.where(mask, -np.inf, a) - np.where(mask, -np.inf, a).max(-1, keepdims=True))
    assert_close(out, e / e.sum(-1, keepdims=True), rtol=1e-6)
    counts = (t(a) > 0).sum(dim=1)
    assert_close(counts, (a > 0).sum(axis=1))


def test_random_kernels_are_not_cut(small_pieces, monkeypatch):
    """Random numbers are a function of the element's index in the whole kernel."""
    a = randn(64, 50)

    def dropped(piece):
        monkeypatch.setattr(nb, "PIECE", piece)
        sg.manual_seed(3)
        return F.dropout(t(a) * 1, p=0.5).numpy()

    small, large = dropped(64), dropped(1 << 20)
    np.testing.assert_array_equal(small, large)
    kept = small != 0
    assert 0.4 < kept.mean() < 0.6
    np.testing.assert_allclose(small[kept], (a * 2)[kept], rtol=1e-6)


# ----- matmul -----

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batched_matmul_of_transposed_operands(dtype):
    q, k = randn(3, 2, 17, 8, dtype=dtype), randn(3, 2, 19, 8, seed=1, dtype=dtype)
    s = randn(3, 2, 17, 19, seed=2, dtype=dtype)
    Q, K, S = t(q), t(k), t(s)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    assert_close(Q @ K.transpose(-2, -1), q @ k.swapaxes(-2, -1), rtol=rtol)  # b stored by columns
    assert_close(S.transpose(-2, -1) @ Q, s.swapaxes(-2, -1) @ q, rtol=rtol)  # a stored by columns
    assert_close(S.transpose(-2, -1) @ Q.transpose(-2, -1).transpose(-2, -1), s.swapaxes(-2, -1) @ q, rtol=rtol)
    # a permuted view from a packed qkv, as in attention
    qkv = randn(3, 17, 3, 2, 8, seed=3, dtype=dtype)
    P = t(qkv).permute(2, 0, 3, 1, 4)
    p = qkv.transpose(2, 0, 3, 1, 4)
    assert_close(P[0] @ P[1].transpose(-2, -1), p[0] @ p[1].swapaxes(-2, -1), rtol=rtol)
    assert_close((P[0] @ P[1].transpose(-2, -1)).relu() + 1, np.maximum(p[0] @ p[1].swapaxes(-2, -1), 0) + 1, rtol=rtol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batched_matmul_with_operands_broadcast_along_the_batch(dtype):
    x, w = randn(4, 3, 11, 6, dtype=dtype), randn(9, 6, seed=1, dtype=dtype)
    X, W = t(x), t(w)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    assert_close(X @ W.T, x @ w.T, rtol=rtol)  # a weight broadcast over (4, 3)
    assert_close(X[:, :, ::2] @ W.T, x[:, :, ::2] @ w.T, rtol=rtol)  # and a strided a
    assert_close(X.transpose(-2, -1)[..., :5] @ W[:5], x.swapaxes(-2, -1)[..., :5] @ w[:5], rtol=rtol)
    v = randn(1, 3, 6, 5, seed=2, dtype=dtype)
    assert_close(X @ t(v), x @ v, rtol=rtol)  # broadcast along the first batch dim only
    u, z = randn(1, 1, 11, 6, seed=4, dtype=dtype), randn(1, 1, 6, 5, seed=5, dtype=dtype)
    assert_close(t(u) @ t(z), u @ z, rtol=rtol)  # batch dims of size 1
    y = randn(11, 6, seed=3, dtype=dtype)
    assert_close(t(y) @ t(x).transpose(-2, -1), y @ x.swapaxes(-2, -1), rtol=rtol)  # a broadcast


def test_matmul_gradients_through_the_fast_paths():
    q, k = randn(2, 3, 5, 4, dtype=np.float64), randn(2, 3, 6, 4, seed=1, dtype=np.float64)
    w = randn(7, 4, seed=2, dtype=np.float64)
    Q = sg.tensor(q, device="numpy", requires_grad=True)
    K = sg.tensor(k, device="numpy", requires_grad=True)
    W = sg.tensor(w, device="numpy", requires_grad=True)
    g = randn(2, 3, 5, 6, seed=3, dtype=np.float64)
    ((Q @ K.transpose(-2, -1)) * t(g)).sum().backward()
    np.testing.assert_allclose(Q.grad.numpy(), g @ k, rtol=1e-12)
    np.testing.assert_allclose(K.grad.numpy(), g.swapaxes(-2, -1) @ q, rtol=1e-12)
    gw = randn(2, 3, 5, 7, seed=4, dtype=np.float64)
    ((Q @ W.T) * t(gw)).sum().backward()
    np.testing.assert_allclose(W.grad.numpy(), np.einsum("bhij,bhik->jk", gw, q), rtol=1e-12)


# ----- recycled memory -----

@pytest.fixture
def small_pool(monkeypatch):
    """Arrays of 1 KiB and more come from the pool."""
    monkeypatch.setattr(nb, "POOL_MIN_BYTES", 1024)


def address(x: sg.Tensor) -> int:
    return x.lazydata.realized.__array_interface__["data"][0]


def test_a_dead_buffers_memory_is_reused_with_correct_values(small_pool, small_pieces):
    # (run piecewise: the outputs come from the pool, where a kernel run whole hands
    # over NumPy's fresh result, whose memory malloc may or may not reuse)
    gc.collect()  # (earlier tests' garbage of the same size would be recycled first)
    a = randn(41, 31)  # (a size no other test makes)
    x = t(a)
    first = (x * 2).realize()
    where = address(first)
    del first
    gc.collect()
    second = (x + 1).realize()
    assert address(second) == where  # recycled ...
    assert_close(second, a + 1)  # ... and fully overwritten
    third = (x - 1).realize()  # second is alive: new memory
    assert address(third) != where
    assert_close(second, a + 1)
    assert_close(third, a - 1)


def test_values_stay_right_over_many_recycled_steps(small_pool, small_pieces):
    a, w = randn(33, 20), randn(20, 20, seed=1)
    x, W = t(a), t(w)
    ref = a.astype(np.float64)
    kept = []
    for i in range(12):
        x = ((x @ W) * 0.1).tanh() + x.T.T * 0.5  # matmul, epilogue, piecewise kernel
        ref = np.tanh(ref @ w * 0.1) + ref * 0.5
        kept.append((x.realize(), ref.copy()))
        if len(kept) > 3:
            kept.pop(0)
        for old, old_ref in kept:  # earlier results not overwritten by later steps
            assert_close(old, old_ref.astype(np.float32), rtol=1e-4, atol=1e-5)


def test_a_base_some_view_still_holds_is_not_reused(small_pool):
    pool = nb._Pool()
    flat = pool.empty(1000, np.dtype(np.float32))
    flat[:] = 7
    view = flat.reshape(10, 100)[2:5]  # outlives the array handed out
    del flat
    gc.collect()
    again = pool.empty(1000, np.dtype(np.float32))
    again[:] = 0
    np.testing.assert_array_equal(view, 7)
    del view, again
    gc.collect()
    reused = pool.empty(1000, np.dtype(np.float32))  # now nothing holds it: recycled
    assert reused.base is not None and len(pool._free[4000]) == 0


def test_bytes_allocated_counts_recycled_buffers(small_pool):
    sg.reset_stats("numpy")
    gc.collect()
    before = sg.stats("numpy")["bytes_allocated"]
    x = t(randn(100, 50))
    y = (x * 2).realize()
    assert sg.stats("numpy")["bytes_allocated"] == before + 2 * 20000
    del y
    gc.collect()
    y = (x * 3).realize()
    assert sg.stats("numpy")["bytes_allocated"] == before + 2 * 20000
    del x, y
    gc.collect()
    assert sg.stats("numpy")["bytes_allocated"] == before


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.bool_])
def test_pad_values_and_dtypes(small_pool, dtype):
    a = (randn(20, 30) * 3).astype(dtype)
    x = sg.tensor(a, device="numpy")
    value = True if dtype == np.bool_ else 2
    out = x.pad(((1, 2), (0, 3)), value=value)
    assert_close(out, np.pad(a, ((1, 2), (0, 3)), constant_values=value))


def test_numpy_backend_still_runs_small_kernels_whole():
    backend = get_backend("numpy")
    x = t(randn(5, 4))
    out = (x * 2 + 1).exp()
    assert_close(out, np.exp(randn(5, 4) * 2 + 1), rtol=1e-6)
    assert backend.stats["kernels"] > 0


# ----- operands broadcast along some dims are read at their compact shape
def _capture_kernels(fn, buffers_of: dict | None = None):
    """The kernels (and plans) the numpy backend runs while fn() realises its result;
    `buffers_of`, if given, gets each kernel's buffer slots (by id of the kernel)."""
    got = []
    original = nb.run_kernel

    def hook(k, buffers, plan=None, empty=nb._empty, pairing=None):
        got.append((k, plan))
        if buffers_of is not None:
            buffers_of[id(k)] = list(buffers)
        return original(k, buffers, plan, empty, pairing)

    nb.run_kernel = hook
    try:
        out = fn()
    finally:
        nb.run_kernel = original
    return out, got


@pytest.mark.parametrize("pieces", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ops_on_broadcast_operands_run_at_their_compact_shape(monkeypatch, pieces, dtype):
    monkeypatch.setenv("SMOLGRAD_FUSION", "1")  # (looks at the plan of the one fused kernel)
    if pieces:
        monkeypatch.setattr(nb, "PIECE", 64)
    a = randn(37, 29, dtype=dtype)
    mean, var = a.mean(1, keepdims=True), a.var(1, keepdims=True)
    w, b = randn(29, seed=1, dtype=dtype), randn(29, seed=2, dtype=dtype)
    x, m, v, wt, bt = t(a), t(mean), t(var), t(w), t(b)
    buffers_of = {}
    out, kernels = _capture_kernels(lambda: (((x - m) * (v + 1e-5).rsqrt() * 2.0) * wt + bt).numpy(), buffers_of)
    ref = ((a - mean) * (1 / np.sqrt(var + 1e-5)) * 2.0) * w + b
    np.testing.assert_allclose(out, ref.astype(dtype), rtol=1e-6 if dtype == np.float32 else 1e-13)
    (k, plan), = [(k, p) for k, p in kernels if k.kind == "elementwise"]
    prog = plan.main
    # var + eps and its rsqrt vary along dim 0 only: they are computed on 37 values
    row_steps = [i for i, step in enumerate(prog.steps) if prog.dims[step[4]] == (True, False)]
    assert len(row_steps) >= 2
    xs = plan.operands(k.srcs, buffers_of[id(k)])
    r = prog.run(xs, None)
    assert all(r[prog.steps[i][4]].shape == (37, 1) for i in row_steps)


def test_compact_and_full_size_evaluation_give_the_same_bits(small_pieces):
    """The same program, its operands read at full size (no bcast) or compact: same bits."""
    x, r, s = Load(0, dtypes.float32), Load(1, dtypes.float32), Load(2, dtypes.float32)
    e = Apply(Op.EXP, (Apply(Op.SUB, (x, r), dtypes.float32),), dtypes.float32)
    d = Apply(Op.DIV, (e, Apply(Op.MUL, (s, Apply(Op.SQRT, (s,), dtypes.float32)), dtypes.float32)), dtypes.float32)
    f = Apply(Op.ADD, (d, Apply(Op.TANH, (r,), dtypes.float32)), dtypes.float32)
    program = tuple(postorder([f, d], expr_children))
    shape = (23, 41)
    a = randn(*shape)
    row = np.broadcast_to(randn(23, 1, seed=1), shape)
    col = np.broadcast_to(np.abs(randn(1, 41, seed=2)) + 0.5, shape)
    full = _Program(program, (f, d), 2)
    compact = _Program(program, (f, d), 2, bcast=((), (1,), (0,)))
    assert len(compact.steps) == len(full.steps)
    outs = [type("Out", (), {"dtype": dtypes.float32}) for _ in range(2)]
    for got, ref in zip(compact.outputs([a, row, col], None, outs, shape), full.outputs([a, row, col], None, outs, shape)):
        np.testing.assert_array_equal(got.view(np.int32), ref.view(np.int32))


@pytest.mark.parametrize("dims", [(0,), (1,), (0, 2)])
def test_reduction_of_a_prologue_constant_along_some_dims(small_pieces, dims):
    a = randn(1, 40, 1)
    x = t(a)
    got = (x.expand(9, 40, 11) * 2.0).sum(dims)
    ref = (np.broadcast_to(a, (9, 40, 11)) * 2.0).sum(dims)
    assert_close(got, ref.astype(np.float32), rtol=1e-6)


def test_a_broadcast_operand_and_a_full_one_get_different_plans():
    """A plan that reads an operand once per row is never used for a view that is not
    broadcast along those dims: plans are keyed by the kernel's structural key, which
    holds the operands' views."""
    a, row, full = randn(6, 5), randn(6, 1, seed=1), randn(6, 5, seed=2)
    x, r, f = t(a), t(row), t(full)
    _, kernels = _capture_kernels(lambda: (x * r.expand(6, 5)).numpy())
    (k, plan), = kernels
    assert plan.bcast == ((), (1,))
    out, kernels = _capture_kernels(lambda: (x * f).numpy())
    (k2, plan2), = kernels
    assert k2.key != k.key and k2.code != k.code and plan2 is not plan and plan2.bcast == ((), ())
    np.testing.assert_array_equal(out, a * full)


def test_an_op_repeated_on_the_same_values_is_computed_once():
    x, y = Load(0, dtypes.float32), Load(1, dtypes.float32)
    u1, u2 = Apply(Op.MUL, (x, y), dtypes.float32), Apply(Op.MUL, (x, y), dtypes.float32)
    f = Apply(Op.ADD, (Apply(Op.EXP, (u1,), dtypes.float32), u2), dtypes.float32)
    prog = _Program(tuple(postorder([f], expr_children)), (f,), 1)
    assert [step[0] for step in prog.steps].count(np.multiply) == 1
    a, b = randn(10), randn(10, seed=1)
    np.testing.assert_array_equal(prog.run([a, b], None)[prog.results[0][0]], np.exp(a * b) + a * b)


# ----- pieces on several threads
@pytest.fixture
def threads(monkeypatch):
    monkeypatch.setattr(nb, "PIECE", 64)
    monkeypatch.setattr(numpy_threads, "THREADS", 3)


def _run_with_threads(monkeypatch, fn, n):
    monkeypatch.setattr(numpy_threads, "THREADS", n)
    return fn()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_threaded_pieces_give_the_same_bits_as_one_thread(monkeypatch, dtype):
    monkeypatch.setattr(nb, "PIECE", 64)
    a, b = randn(37, 29, dtype=dtype), randn(29, 37, seed=1, dtype=dtype)

    def compute():
        x, y = t(a), t(b)
        z = (x * 2 + y.T).exp() - x.tanh()
        outs = (z, z.sum(1), z.amax(1, keepdim=True), z.sum(0), (x * y.T).sum())
        return [o.numpy() for o in outs]

    one = _run_with_threads(monkeypatch, compute, 1)
    three = _run_with_threads(monkeypatch, compute, 3)
    for g, r in zip(three, one):
        assert g.dtype == r.dtype
        np.testing.assert_array_equal(g, r)
    np.testing.assert_allclose(one[0], np.exp(a * 2 + b.T) - np.tanh(a), rtol=1e-6)


def test_each_runs_every_item_once_and_raises_the_first_error(threads):
    import threading
    import time

    seen, idents = [], set()

    def note(i):
        seen.append(i)
        idents.add(threading.get_ident())
        deadline = time.monotonic() + 5
        while len(idents) < 2 and time.monotonic() < deadline:  # until a pool thread takes one
            time.sleep(0.001)

    numpy_threads.each(note, list(range(10)))
    assert sorted(seen) == list(range(10))
    assert len(idents) > 1

    def fail(i):
        if i == 7:
            raise ValueError("piece 7")

    with pytest.raises(ValueError, match="piece 7"):
        numpy_threads.each(fail, list(range(10)))


def test_threaded_pieces_keep_ieee_results_without_warnings(threads):
    import warnings

    a = np.linspace(-2, 2, 600).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = (t(a).log() / t(a)).numpy()
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(got, np.log(a) / a)


def test_thread_count_setting(monkeypatch):
    monkeypatch.delenv("SMOLGRAD_NUMPY_THREADS", raising=False)
    assert numpy_threads.default_threads() == min(8, len(os.sched_getaffinity(0)))  # "auto"
    monkeypatch.setenv("SMOLGRAD_NUMPY_THREADS", "3")
    assert numpy_threads.default_threads() == 3
    monkeypatch.setenv("SMOLGRAD_NUMPY_THREADS", "auto")
    assert 1 <= numpy_threads.default_threads() <= 8
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("SMOLGRAD_NUMPY_THREADS", bad)
        with pytest.raises(ValueError, match="SMOLGRAD_NUMPY_THREADS must be a positive integer or 'auto'"):
            numpy_threads.default_threads()


# ----- small matrix products on one BLAS thread
def test_small_products_run_on_one_blas_thread_and_restore_the_count(monkeypatch):
    from smolgrad.backend import blas_threads

    if not blas_threads.available():
        pytest.skip("NumPy's BLAS here is not its bundled OpenBLAS: nothing to set")
    get, set_ = blas_threads._FUNCS
    before = get()
    set_(2)
    try:
        seen = []
        matmul = np.matmul

        def spy(*args, **kwargs):
            seen.append(get())
            return matmul(*args, **kwargs)

        monkeypatch.setattr(np, "matmul", spy)
        a, b = randn(3, 5, 17), randn(3, 17, 4, seed=1)
        out = np.empty((3, 5, 4), np.float32)
        nb.matmul(a, b, out)  # 5 x 17 x 4 multiply-adds per matrix: one thread
        monkeypatch.setattr(nb, "SMALL_GEMM", 8)
        out2 = np.empty((3, 5, 4), np.float32)
        nb.matmul(a, b, out2)  # now "large": BLAS keeps its two threads
        assert seen == [1, 2] and get() == 2
        np.testing.assert_array_equal(out, out2)
        np.testing.assert_allclose(out, a @ b, rtol=1e-5)
    finally:
        set_(before)


@pytest.mark.parametrize("shapes", [((37, 29), (29, 11)), ((5, 7, 29), (5, 29, 11)), ((4, 3, 7, 4), (4, 3, 4, 5))])
def test_products_split_over_threads_cover_every_row_once(monkeypatch, shapes):
    monkeypatch.setattr(numpy_threads, "THREADS", 3)
    monkeypatch.setattr(nb, "SPLIT_GEMM", 1)
    a, b = randn(*shapes[0]), randn(*shapes[1], seed=1)
    out = np.full((a @ b).shape, np.nan, np.float32)
    parts = nb._gemm_parts(a, b, out)
    assert parts is not None and len(parts) > 1
    nb.matmul(a, b, out)
    np.testing.assert_allclose(out, a @ b, rtol=1e-5, atol=1e-6)  # (no row left unwritten: nan)


def test_small_products_or_one_thread_are_not_split(monkeypatch):
    a, b, out = randn(64, 64), randn(64, 64, seed=1), np.empty((64, 64), np.float32)
    monkeypatch.setattr(numpy_threads, "THREADS", 1)
    assert nb._gemm_parts(a, b, out) is None
    monkeypatch.setattr(numpy_threads, "THREADS", 2)
    assert nb._gemm_parts(a, b, out) is None  # 2^18 multiply-adds, below SPLIT_GEMM
