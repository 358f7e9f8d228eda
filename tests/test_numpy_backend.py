"""The NumPy backend's compiled kernels: results written in place, result dtypes,
the plan cache, and the buffer statistics."""

import gc
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

import smolgrad as sg
from smolgrad import dtypes
from smolgrad.backend.numpy_backend import _Program
from smolgrad.device import get_backend
from smolgrad.graph import postorder
from smolgrad.ops import Op
from smolgrad.engine.kernel import Acc, Apply, Const, Load, expr_children
from helpers import assert_close

f32, i32 = dtypes.float32, dtypes.int32


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def compile_exprs(*exprs, ndim=1):
    return _Program(tuple(postorder(list(exprs), expr_children)), exprs, ndim)


def test_in_place_steps_never_overwrite_inputs_results_or_values_read_later():
    x = Load(0, f32)
    t = Apply(Op.MUL, (x, Const(2.0, f32)), f32)  # read by three steps and a result
    u = Apply(Op.ADD, (t, Const(1.0, f32)), f32)
    v = Apply(Op.MUL, (u, t), f32)  # u is dead after this step: written in place
    w = Apply(Op.SUB, (t, Apply(Op.EXP, (v,), f32)), f32)
    prog = compile_exprs(w, t, w)
    assert any(step[5] >= 0 for step in prog.steps)
    a = rand(100)
    a_before = a.copy()
    r = prog.run([a], None)
    t_ref = a_before * 2
    w_ref = t_ref - np.exp((t_ref + 1) * t_ref)
    np.testing.assert_allclose(r[prog.results[0][0]], w_ref, rtol=1e-6)
    np.testing.assert_allclose(r[prog.results[1][0]], t_ref, rtol=1e-6)
    np.testing.assert_array_equal(a, a_before)
    # a value asked for twice is a fresh array only once; the second one gets copied
    assert [owned for _, owned in prog.results] == [True, True, False]


def test_acc_is_written_in_place_only_at_its_last_use():
    acc = Acc(f32)
    y = Apply(Op.ADD, (acc, Load(0, f32)), f32)
    z = Apply(Op.MUL, (y, acc), f32)  # acc is read again here: the add cannot use it
    prog = compile_exprs(z)
    a, core = rand(8), rand(8, seed=1)
    core_before = core.copy()
    r = prog.run([a], core)
    np.testing.assert_allclose(r[prog.results[0][0]], (core_before + a) * core_before, rtol=1e-6)
    assert prog.steps[0][5] == -1
    # a core result of another dtype (NumPy sums int32 to int64, say) is cast first
    assert prog.run([a], core.astype(np.float64))[prog.results[0][0]].dtype == np.float32


def test_only_fresh_results_become_output_buffers():
    x = Load(0, f32)
    prog = compile_exprs(x, Apply(Op.NEG, (x,), f32))
    out = SimpleNamespace(dtype=f32)
    a = rand(6)
    loaded, negated = prog.outputs([a], None, [out, out], (6,))
    assert not np.shares_memory(loaded, a)
    np.testing.assert_array_equal(loaded, a)
    np.testing.assert_array_equal(negated, -a)


@pytest.mark.parametrize(
    "make, np_dtype",
    [
        (lambda x, i: Apply(Op.GT, (Apply(Op.MUL, (x, x), f32), Const(0.5, f32)), dtypes.bool_), np.bool_),
        (lambda x, i: Apply(Op.DIV, (i, Apply(Op.ADD, (i, Const(1, i32)), i32)), f32), np.float32),
        (lambda x, i: Apply(Op.ADD, (Apply(Op.MUL, (i, i), i32), Const(7, i32)), i32), np.int32),
        (lambda x, i: Apply(Op.CAST, (Apply(Op.EXP, (x,), f32),), dtypes.float64, dtypes.float64), np.float64),
    ],
)
def test_each_step_gives_its_declared_dtype(make, np_dtype):
    e = make(Load(0, f32), Load(1, i32))
    prog = compile_exprs(e)
    r = prog.run([rand(5), np.arange(5, dtype=np.int32)], None)
    assert r[prog.results[0][0]].dtype == np_dtype


def test_fused_kernels_leave_their_inputs_alone():
    a, b = rand(64, 32), rand(64, 32, seed=1)
    x, y = sg.tensor(a, device="numpy"), sg.tensor(b, device="numpy")
    t = x * 2 + y
    out = ((t + 1) * t).exp() - t
    out2 = (x - 1) * (x + 1)
    sg.realize(out, out2)
    t_ref = a * 2 + b
    assert_close(out, np.exp((t_ref + 1) * t_ref) - t_ref, rtol=1e-5)
    assert_close(out2, (a - 1) * (a + 1))
    np.testing.assert_array_equal(x.numpy(), a)
    np.testing.assert_array_equal(y.numpy(), b)


@pytest.mark.parametrize("shape", [(48, 80), (130, 200)])  # the larger is copied in blocks
def test_transposed_operand_read_by_several_ops(shape):
    a, m = rand(*shape), rand(*shape[::-1], seed=1)
    x, y = sg.tensor(a, device="numpy"), sg.tensor(m, device="numpy")
    t = x.t()
    out = t * 0.5 + y * 2 + t * t
    assert_close(out, a.T * 0.5 + m * 2 + a.T * a.T)
    np.testing.assert_array_equal(x.numpy(), a)


def test_permuted_3d_operand_read_by_several_ops():
    a = rand(8, 70, 60)  # permuted to (60, 4, 70): large enough to be copied in blocks
    x = sg.tensor(a, device="numpy")
    p = x.permute(2, 0, 1)[:, ::2]
    out = (p + 1) * p
    ref = a.transpose(2, 0, 1)[:, ::2]
    assert_close(out, (ref + 1) * ref)


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_integer_kernels_keep_their_dtype(dtype):
    a = np.arange(-6, 6, dtype=dtype).reshape(3, 4)
    x = sg.tensor(a, device="numpy")
    out = (x + 3) * 2 - x.abs()
    assert out.dtype == dtypes.to_dtype(dtype)
    assert out.numpy().dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out.numpy(), (a + 3) * 2 - np.abs(a))
    q = x / 4  # true division of integers gives the default float
    assert q.numpy().dtype == np.float32
    np.testing.assert_allclose(q.numpy(), a / 4, rtol=1e-6)


def test_bool_and_where_kernels():
    a = rand(5, 6)
    x = sg.tensor(a, device="numpy")
    mask = (x > 0) == (x < 0.5)
    assert mask.numpy().dtype == np.bool_
    np.testing.assert_array_equal(mask.numpy(), (a > 0) == (a < 0.5))
    picked = sg.where(mask, x, x * 0 - 1)
    np.testing.assert_allclose(picked.numpy(), np.where((a > 0) == (a < 0.5), a, -1))


def test_float64_stays_float64():
    a = np.abs(np.random.default_rng(0).standard_normal(50))
    x = sg.tensor(a, dtype=sg.float64, device="numpy")
    out = (x * 0.1 + 1e-12).sqrt() * x
    assert out.numpy().dtype == np.float64
    np.testing.assert_allclose(out.numpy(), np.sqrt(a * 0.1 + 1e-12) * a, rtol=1e-15)


def test_zero_dim_kernels():
    x = sg.tensor(2.0, device="numpy")
    out = (x * 3).sigmoid() + x.exp()
    assert out.shape == ()
    np.testing.assert_allclose(out.numpy(), 1 / (1 + np.exp(-6.0)) + np.exp(2.0), rtol=1e-6)
    assert_close(sg.ones(4, 3, device="numpy").sum(), np.float32(12))


def test_ieee_results_without_warnings():
    x = sg.tensor(np.array([0.0, -1.0, 1000.0], dtype=np.float32), device="numpy")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = (1 / x, x.log(), x.sqrt(), x.exp())
        sg.realize(*out)
    recip, log, sqrt, exp = (t.numpy() for t in out)
    assert np.isinf(recip[0]) and np.isneginf(log[0]) and np.isnan(sqrt[1]) and np.isinf(exp[2])


def test_plan_cache_is_reused_across_steps():
    backend = get_backend("numpy")
    w = sg.tensor(rand(16, 8), device="numpy")

    def step(seed):
        x = sg.tensor(rand(4, 16, seed=seed), device="numpy")
        out = ((x @ w).relu() * 2 + 1).sum(dim=1)
        sg.realize(out)
        return x.numpy(), out

    step(0)
    plans = len(backend._plans)
    for seed in (1, 2, 3):
        xv, out = step(seed)
        assert_close(out, (np.maximum(xv @ w.numpy(), 0) * 2 + 1).sum(axis=1), rtol=1e-5)
    assert len(backend._plans) == plans


def test_bytes_allocated_follows_buffers():
    sg.reset_stats("numpy")
    gc.collect()
    before = sg.stats("numpy")["bytes_allocated"]
    x = sg.tensor(rand(1000), device="numpy")
    y = (x * 2 + 1).realize()
    assert sg.stats("numpy")["bytes_allocated"] >= before + 2 * 4000
    assert sg.stats("numpy")["peak_bytes"] >= before + 2 * 4000
    del x, y
    gc.collect()
    assert sg.stats("numpy")["bytes_allocated"] == before


# ----- where as a bit select
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64])
def test_where_selects_the_same_bits_as_numpy(dtype):
    from smolgrad.backend.numpy_backend import _where

    rng = np.random.default_rng(0)
    a = (rng.standard_normal((7, 33)) * 100).astype(dtype)
    b = (rng.standard_normal((7, 33)) * 100).astype(dtype)
    if a.dtype.kind == "f":
        a[0, :4] = [np.nan, -0.0, np.inf, -np.inf]
        b[0, :4] = [-0.0, np.nan, 0.0, 1.0]
    cond = rng.random((7, 33)) > 0.5  # a random mask, as in ReLU's backward
    cases = [
        (cond, a, b),
        (cond, a[:, :1], b[:1]),  # operands narrower than the condition
        (cond[:1], a, b),  # a condition narrower than the operands
        (cond, np.asarray(a[0, 1]), b),  # a 0-d constant
        (np.bool_(True), a[0, 0], b[0, 0]),  # scalars only
        (cond.T, a.T, b.T[::-1]),  # strided
    ]
    for c, x, y in cases:
        got, ref = _where(c, x, y), np.where(c, x, y)
        assert got.dtype == ref.dtype and got.shape == ref.shape
        np.testing.assert_array_equal(np.asarray(got).reshape(-1).view(np.uint8), np.asarray(ref).reshape(-1).view(np.uint8))


def test_where_kernel_with_a_random_mask_matches_numpy():
    a, g = rand(40, 30), rand(40, 30, seed=1)
    x, grad = sg.tensor(a, device="numpy"), sg.tensor(g, device="numpy")
    assert_close(sg.where(x > 0, grad, 0.0), np.where(a > 0, g, np.float32(0)))
    assert_close(sg.where(x > 0, x * 2, -x), np.where(a > 0, a * 2, -a))


# ----- scatter-add of whole slices (an embedding's backward)
def _add_at(src, index, dim, shape, dtype):
    out = np.zeros(shape, dtype)
    coords = list(np.indices(index.shape, sparse=True))
    coords[dim] = index.astype(np.intp)
    np.add.at(out, tuple(coords), src[tuple(slice(0, n) for n in index.shape)])
    return out


@pytest.mark.parametrize(
    "rows, n, size, dtype",
    [(512, 300, 17, np.float32), (7, 61, 5, np.float64), (3, 200, 4, np.float32), (9, 40, 1, np.int64)],
)
@pytest.mark.parametrize("dim", [0, 1])
def test_scatter_add_of_slices_adds_as_np_add_at(rows, n, size, dtype, dim, monkeypatch):
    """The same sums in the same order (the same bits), also when a row is hit more
    often than the levels allow (np.add.at then), on views broadcasting the index."""
    from smolgrad.backend.numpy_backend import scatter_add

    monkeypatch.setattr(nb_module(), "SCATTER_MAX_LEVELS", 8)
    rng = np.random.default_rng(1)
    index = rng.integers(0, rows, n)
    if rows == 3:
        index[:150] = 1  # one row hit 150 times: more than 8 levels
    src = (rng.standard_normal((n, size + 2)) * 10).astype(dtype)
    shape = [rows, size]
    index = np.broadcast_to(index[:, None], (n, size))
    if dim == 1:
        src, index, shape = src.T, index.T, shape[::-1]
    got = scatter_add(src, index, dim, tuple(shape), dtype)
    ref = _add_at(src, index, dim, tuple(shape), dtype)
    np.testing.assert_array_equal(got.view(np.uint8), ref.view(np.uint8))


def test_embedding_backward_through_the_slice_path():
    from smolgrad import nn

    rng = np.random.default_rng(0)
    idx = rng.integers(0, 11, (4, 9))
    emb = nn.Embedding(11, 6).to("numpy")
    g = rand(4, 9, 6)
    (emb(sg.tensor(idx, device="numpy")) * sg.tensor(g, device="numpy")).sum().backward()
    ref = np.zeros((11, 6), np.float32)
    np.add.at(ref, idx.reshape(-1), g.reshape(-1, 6))
    np.testing.assert_array_equal(emb.weight.grad.numpy(), ref)
    with pytest.raises(IndexError, match="scatter_add"):
        sg.zeros(3, 2, device="numpy").scatter_add(0, sg.tensor([[0, 0], [5, 5]], device="numpy"), sg.ones(2, 2, device="numpy")).numpy()


def nb_module():
    from smolgrad.backend import numpy_backend

    return numpy_backend


def test_pad_fills_every_element_outside_the_region(monkeypatch):
    # the kernel fills only the border: new buffers here hold garbage, as recycled ones do
    backend = get_backend("numpy")
    monkeypatch.setattr(backend._pool, "empty", lambda n, dtype: np.full(n, 99, dtype))
    a = rand(2, 3, 4)
    got = sg.nn.functional.pad(sg.tensor(a), (1, 2, 0, 1, 2, 0), value=-1.5).numpy()
    np.testing.assert_array_equal(got, np.pad(a, ((2, 0), (0, 1), (1, 2)), constant_values=-1.5))
