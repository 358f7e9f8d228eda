"""Gather and scatter-add of whole slices on the NumPy device (an embedding's forward and
backward: one index per slice along `dim`, broadcast along the other dims).

The fast paths must give the general paths' bits: np.take_along_axis's for gather, and
np.add.at's (the same additions in the same order) for scatter-add, compiled (numba) or
on NumPy alone. Each case checks that the fast path ran, so none can pass by falling
back to the general one."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import smolgrad as sg
from smolgrad import nn
from smolgrad.backend import numpy_backend as nb
from smolgrad.backend import numpy_jit
from smolgrad.backend.base import index_out_of_range

from helpers import assert_close, gradcheck


def same_bits(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape, want.dtype, want.shape)
    np.testing.assert_array_equal(np.ascontiguousarray(got).view(np.uint8), np.ascontiguousarray(want).view(np.uint8))


def per_slice(ids: np.ndarray, shape: tuple[int, ...], dim: int) -> np.ndarray:
    """An index of `shape` holding ids[k] along `dim` at k, broadcast (stride 0) elsewhere."""
    at = [1] * len(shape)
    at[dim] = len(ids)
    return np.broadcast_to(ids.reshape(at), shape)


def gather_ref(src: np.ndarray, index: np.ndarray, dim: int) -> np.ndarray:
    src = src[tuple(slice(None) if d == dim else slice(0, n) for d, n in enumerate(index.shape))]
    return np.take_along_axis(src, index.astype(np.intp), axis=dim)


def add_at_ref(src: np.ndarray, index: np.ndarray, dim: int, shape, dtype) -> np.ndarray:
    out = np.zeros(shape, dtype)
    coords = list(np.indices(index.shape, sparse=True))
    coords[dim] = index.astype(np.intp)
    np.add.at(out, tuple(coords), src[tuple(slice(0, n) for n in index.shape)])
    return out


@pytest.fixture
def checked(monkeypatch):
    """The sizes of the index arrays check_index is given (the fast paths check the ids once)."""
    sizes: list[int] = []
    original = nb.check_index

    def spy(index, size, op, dim):
        sizes.append(index.size)
        return original(index, size, op, dim)

    monkeypatch.setattr(nb, "check_index", spy)
    return sizes


def _src(rng, shape, dtype):
    if np.dtype(dtype).kind == "f":
        return (rng.standard_normal(shape) * 10).astype(dtype)
    return rng.integers(-100, 100, shape).astype(dtype)


# ----- gather
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int32, np.int64])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize(
    "src_shape, index_shape, dim",
    [
        ((13, 5), (29, 5), 0),  # more rows than src: ids repeat
        ((13, 5), (7, 3), 0),  # index smaller than src on dim 1
        ((4, 9, 3), (4, 11, 3), 1),
        ((4, 9, 3), (2, 5, 1), 1),  # size 1 (not broadcast) on the last dim
        ((3, 4, 8), (3, 4, 17), 2),
        ((6,), (10,), 0),
    ],
)
def test_gather_of_slices_equals_take_along_axis(dtype, index_dtype, src_shape, index_shape, dim, checked):
    rng = np.random.default_rng(0)
    src = _src(rng, src_shape, dtype)
    ids = rng.integers(0, src_shape[dim], index_shape[dim]).astype(index_dtype)
    index = per_slice(ids, index_shape, dim)
    assert nb._one_index_per_slice(index, dim)
    same_bits(nb.gather(src, index, dim), gather_ref(src, index, dim))
    assert checked == [len(ids)]  # the fast path: each id checked once


def test_gather_of_slices_from_strided_src(checked):
    rng = np.random.default_rng(1)
    base = rng.standard_normal((12, 10, 6)).astype(np.float32)
    for src in (base.transpose(2, 0, 1), base[::2, ::-3], base[:, 3:7].swapaxes(0, 1)):
        for dim in range(3):
            ids = rng.integers(0, src.shape[dim], 9)
            shape = tuple(9 if d == dim else n for d, n in enumerate(src.shape))
            index = per_slice(ids, shape, dim)
            same_bits(nb.gather(src, index, dim), gather_ref(src, index, dim))
    assert checked == [9] * 9


def test_gather_general_index_and_empty(checked):
    rng = np.random.default_rng(2)
    src = rng.standard_normal((6, 5))
    index = rng.integers(0, 6, (4, 5))  # varies along dim 1: the general path
    assert not nb._one_index_per_slice(index, 0)
    same_bits(nb.gather(src, index, 0), gather_ref(src, index, 0))
    assert checked == [20]
    for shape in [(0, 5), (3, 0), (0, 0)]:
        index = np.zeros(shape, np.int64)
        same_bits(nb.gather(src, index, 0), gather_ref(src, index, 0))
    index = per_slice(np.zeros(0, np.int64), (0, 5), 0)
    same_bits(nb.gather(src, index, 0), gather_ref(src, index, 0))


@pytest.mark.parametrize("bad", [-1, 7, 100])
@pytest.mark.parametrize("op", ["gather", "scatter_add"])
def test_out_of_range_index_same_error(bad, op):
    ids = np.array([0, 3, bad, 6, 2])
    index = per_slice(ids, (5, 4), 0)
    src = np.ones((7, 4), np.float32)
    want = str(index_out_of_range(op, 0, 7, bad, on_device=False))
    with pytest.raises(IndexError) as fast:
        nb.gather(src, index, 0) if op == "gather" else nb.scatter_add(src[:5], index, 0, (7, 4), np.float32)
    assert str(fast.value) == want
    general = np.ascontiguousarray(index)  # (no stride 0: the general path)
    with pytest.raises(IndexError) as slow:
        nb.gather(src, general, 0) if op == "gather" else nb.scatter_add(src[:5], general, 0, (7, 4), np.float32)
    assert str(slow.value) == want


def test_check_index_scans_broadcast_values_once():
    index = np.broadcast_to(np.array([[1], [2], [9]]), (3, 1000))
    with pytest.raises(IndexError, match="index 9 is out of bounds for dimension 1 with size 5"):
        nb.check_index(index, 5, "gather", 1)
    nb.check_index(index, 10, "gather", 1)
    nb.check_index(np.zeros((0, 3), np.int64), 0, "gather", 0)


# ----- scatter-add
@pytest.fixture(params=["numpy", "compiled"])
def adder(request, monkeypatch):
    """How scatter_add adds slices: on NumPy alone (SMOLGRAD_JIT=0) or compiled from its
    first call. Returns check(src, index, dim, shape, dtype): runs scatter_add, compares
    its bits with np.add.at's and checks the path asked for ran."""
    if request.param == "numpy":
        monkeypatch.setenv("SMOLGRAD_JIT", "0")
    else:
        pytest.importorskip("numba")
        monkeypatch.setenv("SMOLGRAD_JIT", "1")
        monkeypatch.setattr(numpy_jit, "AFTER", 0)
        monkeypatch.setattr(numpy_jit, "MIN_ELEMENTS", 0)

    def check(src, index, dim, shape, dtype):
        before = dict(nb._slices_jit)
        got = nb.scatter_add(src, index, dim, shape, dtype)
        same_bits(got, add_at_ref(src, index, dim, shape, dtype))
        key = (np.dtype(dtype).str, len(shape))
        if request.param == "compiled" and src.dtype == dtype:
            assert nb._slices_jit.get(key), "the compiled loop did not run"
        else:
            assert nb._slices_jit == before
        return got

    return check


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64, np.int8])
@pytest.mark.parametrize("skewed", [False, True])
def test_scatter_add_of_slices_bits(adder, dtype, skewed):
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 40, 500)
    if skewed:
        ids[rng.random(500) < 0.3] = 7  # one row ~150 times: past SCATTER_MAX_LEVELS
    src = _src(rng, (500, 6), dtype)
    index = per_slice(ids, (500, 6), 0)
    out = adder(src, index, 0, (45, 6), dtype)
    assert not out[40:].any()  # rows never added: zeros


@pytest.mark.parametrize("dim", [0, 1, 2])
def test_scatter_add_of_slices_any_dim_strided(adder, dim):
    rng = np.random.default_rng(4)
    base = rng.standard_normal((9, 70, 8)).astype(np.float32)
    src = base.transpose(1, 0, 2)[:, ::2]  # (70, 5, 8), strided
    src = np.moveaxis(src, 0, dim)
    n = src.shape[dim]
    ids = rng.integers(0, 6, n)
    ids[: n // 2] = 2  # row 2 hit 35 times or more
    shape = tuple(6 if d == dim else m for d, m in enumerate(src.shape))
    adder(src, per_slice(ids, src.shape, dim), dim, shape, np.float32)
    # index (and src used) smaller than the output on the other dims
    small = tuple(n if d == dim else m - 1 for d, m in enumerate(src.shape))
    adder(src, per_slice(ids, small, dim), dim, shape, np.float32)


@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_scatter_add_signed_zeros_nan_inf(adder):
    src = np.array([[-0.0, 1.0, np.nan, np.inf], [-0.0, -1.0, 2.0, -np.inf], [0.0, 0.0, 1.0, 1.0],
                    [-0.0, 5.0, -0.0, 3.0]], np.float32)
    ids = np.array([0, 0, 1, 2])  # row 0: -0 + -0 (gives +0 after 0 + -0), NaN, inf - inf
    out = adder(src, per_slice(ids, (4, 4), 0), 0, (4, 4), np.float32)
    assert not np.signbit(out[2, 0]) and not np.signbit(out[2, 2])  # 0.0 + -0.0 is +0.0, as np.add.at
    assert np.isnan(out[0, 2]) and np.isnan(out[0, 3])
    rows = np.zeros(200, np.int64)  # one row 200 times, with a NaN in the middle
    src = np.random.default_rng(5).standard_normal((200, 3))
    src[120, 1] = np.nan
    adder(src, per_slice(rows, (200, 3), 0), 0, (2, 3), np.float64)


def test_scatter_add_one_dim_and_mixed_dtypes(adder):
    rng = np.random.default_rng(6)
    ids = rng.integers(0, 5, 300)  # a histogram: each row many times
    adder(rng.standard_normal(300).astype(np.float32), ids, 0, (5,), np.float32)
    adder(rng.integers(0, 9, 300), ids, 0, (5,), np.int64)
    src = rng.standard_normal((300, 2)).astype(np.float32)  # float32 into float64: np.add.at
    adder(src, per_slice(ids, (300, 2), 0), 0, (5, 2), np.float64)
    adder(src[:0], per_slice(ids[:0], (0, 2), 0), 0, (5, 2), np.float32)  # (no slices: general path, zeros)


@pytest.mark.parametrize("max_levels, min_rows", [(64, 1), (64, 4), (8, 4), (1, 1), (64, 1000)])
def test_numpy_levels_then_accumulate(monkeypatch, max_levels, min_rows):
    """Every split between the levels and the per-row accumulates gives np.add.at's bits."""
    monkeypatch.setenv("SMOLGRAD_JIT", "0")
    monkeypatch.setattr(nb, "SCATTER_MAX_LEVELS", max_levels)
    monkeypatch.setattr(nb, "SCATTER_MIN_ROWS", min_rows)
    rng = np.random.default_rng(7)
    ids = rng.integers(0, 30, 1000)
    ids[rng.random(1000) < 0.2] = 3
    ids[rng.random(1000) < 0.1] = 29
    src = rng.standard_normal((1000, 5)).astype(np.float32) * np.float32(1e3)
    out = np.full((31, 5), 0.1, np.float32)  # (not zeros: the additions start from out's values)
    want = out.copy()
    np.add.at(want, ids, src)
    nb._add_slices(out, ids, src)
    same_bits(out, want)


def test_compiled_when_due(monkeypatch):
    """Compiled at the (AFTER + 1)-th call of a signature with MIN_ELEMENTS or more; small
    calls never; SMOLGRAD_JIT=0 later goes back to NumPy."""
    pytest.importorskip("numba")
    monkeypatch.setenv("SMOLGRAD_JIT", "auto")
    monkeypatch.setattr(nb, "_slices_jit", {})
    monkeypatch.setattr(nb, "_slices_runs", Counter())
    rng = np.random.default_rng(8)
    key = (np.dtype(np.float32).str, 2)
    small = rng.standard_normal((10, 4)).astype(np.float32)
    for _ in range(numpy_jit.AFTER + 3):
        nb.scatter_add(small, per_slice(rng.integers(0, 5, 10), (10, 4), 0), 0, (5, 4), np.float32)
    assert key not in nb._slices_jit
    n = numpy_jit.MIN_ELEMENTS // 8
    big = rng.standard_normal((n, 8)).astype(np.float32)
    index = per_slice(rng.integers(0, 100, n), (n, 8), 0)
    want = add_at_ref(big, index, 0, (100, 8), np.float32)
    for _ in range(numpy_jit.AFTER):
        same_bits(nb.scatter_add(big, index, 0, (100, 8), np.float32), want)
        assert key not in nb._slices_jit
    same_bits(nb.scatter_add(big, index, 0, (100, 8), np.float32), want)
    assert nb._slices_jit.get(key)

    def refuse(*args):
        raise AssertionError("compiled loop used with SMOLGRAD_JIT=0")

    monkeypatch.setitem(nb._slices_jit, key, refuse)
    monkeypatch.setenv("SMOLGRAD_JIT", "0")
    same_bits(nb.scatter_add(big, index, 0, (100, 8), np.float32), want)


def test_without_numba_and_when_numba_fails(monkeypatch):
    monkeypatch.setattr(nb, "_slices_jit", {})
    monkeypatch.setattr(nb, "_slices_runs", Counter())
    monkeypatch.setattr(numpy_jit, "AFTER", 0)
    monkeypatch.setattr(numpy_jit, "MIN_ELEMENTS", 0)
    rng = np.random.default_rng(9)
    src = rng.standard_normal((50, 3))
    index = per_slice(rng.integers(0, 4, 50), (50, 3), 0)
    want = add_at_ref(src, index, 0, (4, 3), np.float64)
    monkeypatch.setenv("SMOLGRAD_JIT", "auto")
    monkeypatch.setattr(numpy_jit, "_numba", False)  # not installed
    same_bits(nb.scatter_add(src, index, 0, (4, 3), np.float64), want)
    assert nb._slices_jit == {}
    monkeypatch.undo()

    pytest.importorskip("numba")
    monkeypatch.setattr(nb, "_slices_jit", {})
    monkeypatch.setattr(numpy_jit, "AFTER", 0)
    monkeypatch.setattr(numpy_jit, "MIN_ELEMENTS", 0)
    monkeypatch.setenv("SMOLGRAD_JIT", "auto")
    numpy_jit.available()
    monkeypatch.setattr(numpy_jit, "add_slices_source", lambda ndim: "def kernel(out, rows, src):\n    out[0] = 'x'\n")
    with pytest.warns(RuntimeWarning, match="numba could not compile"):
        got = nb.scatter_add(src, index, 0, (4, 3), np.float64)
    same_bits(got, want)  # (NumPy's result, and it stays on NumPy)
    assert nb._slices_jit[(np.dtype(np.float64).str, 2)] is False
    same_bits(nb.scatter_add(src, index, 0, (4, 3), np.float64), want)


def test_add_slices_source_runs_in_order():
    """The compiled loop's source, run as plain Python, adds in np.add.at's order."""
    rng = np.random.default_rng(10)
    for ndim in (1, 2, 3):
        namespace: dict = {}
        exec(numpy_jit.add_slices_source(ndim), namespace)  # noqa: S102
        rows = rng.integers(0, 3, 12)
        src = rng.standard_normal((12,) + (2,) * (ndim - 1))
        out, want = np.zeros((3,) + (3,) * (ndim - 1)), np.zeros((3,) + (3,) * (ndim - 1))
        namespace["kernel"](out, rows, src)
        np.add.at(want, (rows,) + tuple(slice(0, 2) for _ in range(ndim - 1)), src)
        same_bits(out, want)


# ----- the public API, on both devices
def test_embedding_forward_backward(device):
    rng = np.random.default_rng(11)
    weight = rng.standard_normal((20, 6)).astype(np.float32)
    idx = rng.integers(0, 20, (3, 40))
    idx[0] = 5  # row 5 at least 40 times
    emb = nn.Embedding(20, 6).to(device)
    emb.weight.data = sg.tensor(weight, device=device)
    g = rng.standard_normal((3, 40, 6)).astype(np.float32)
    out = emb(sg.tensor(idx, device=device))
    (out * sg.tensor(g, device=device)).sum().backward()
    ref = np.zeros((20, 6), np.float32)
    np.add.at(ref, idx.reshape(-1), g.reshape(-1, 6))
    if device == "numpy":
        same_bits(out.detach().numpy(), weight[idx])
        same_bits(emb.weight.grad.numpy(), ref)
    else:
        assert_close(out, weight[idx])
        assert_close(emb.weight.grad, ref)


@pytest.mark.parametrize("dim", [0, 1])
def test_gather_scatter_add_with_expanded_index(device, dim):
    rng = np.random.default_rng(12)
    x = rng.standard_normal((7, 5)).astype(np.float32)
    x = x if dim == 0 else np.ascontiguousarray(x.T)
    ids = rng.integers(0, 7, 9)
    shape = (9, 4) if dim == 0 else (4, 9)
    at = (9, 1) if dim == 0 else (1, 9)
    index = sg.tensor(ids.reshape(at), device=device).expand(*shape)
    np_index = per_slice(ids, shape, dim)
    t = sg.tensor(x, device=device)
    assert_close(t.gather(dim, index), gather_ref(x, np_index, dim), rtol=0, atol=0)
    src = rng.standard_normal(shape).astype(np.float32)
    got = sg.zeros(*x.shape, device=device).scatter_add(dim, index, sg.tensor(src, device=device))
    assert_close(got, add_at_ref(src, np_index, dim, x.shape, np.float32))


def test_gradients_through_the_slice_paths():
    rng = np.random.default_rng(13)
    index = sg.tensor(np.array([[2], [0], [2], [4], [2]]), device="numpy").expand(5, 3)
    gradcheck(lambda w: w.gather(0, index), rng.standard_normal((6, 3)))
    zeros = sg.zeros(6, 3, device="numpy", dtype=sg.float64)
    gradcheck(lambda s: zeros.scatter_add(0, index, s), rng.standard_normal((5, 3)), noncontiguous=True)


# ----- property test
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_slice_paths_property(adder, data):
    """Random ranks, dims, vocabularies and skew: the gather and scatter-add of whole
    slices give the general paths' bits (an index smaller than src on the other dims too)."""
    rank = data.draw(st.integers(1, 3))
    dim = data.draw(st.integers(0, rank - 1))
    shape = tuple(data.draw(st.integers(1, 6)) for _ in range(rank))
    index_shape = tuple(n if d == dim else data.draw(st.integers(1, n)) for d, n in enumerate(shape))
    vocab = shape[dim]
    count = index_shape[dim]
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    if data.draw(st.booleans()):  # (one id most of the time: rows added many times)
        ids = np.where(rng.random(count) < 0.7, 0, rng.integers(0, vocab, count))
    else:
        ids = rng.integers(0, vocab, count)
    index = per_slice(ids.astype(np.int64), index_shape, dim)
    src = _src(rng, shape, np.float32)
    same_bits(nb.gather(src, index, dim), gather_ref(src, index, dim))
    grads = _src(rng, index_shape, np.float32)
    adder(grads, index, dim, shape, np.float32)
