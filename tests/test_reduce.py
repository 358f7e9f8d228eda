"""Reductions against NumPy, on every device: sum mean max min amax amin var std
logsumexp argmax argmin, over all dims, one dim, several dims, with and without keepdim."""

from __future__ import annotations

import numpy as np
import pytest

import smolgrad as sg
from helpers import assert_close, on, rand


def np_logsumexp(a, axis=None, keepdims=False):
    a = a.astype(np.float64)
    m = np.max(a, axis=axis, keepdims=True)
    out = np.log(np.exp(a - m).sum(axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis) if axis is not None else out.reshape(())


# name, smolgrad call, numpy reference (a, axis, keepdims)
REDUCE = [
    ("sum", lambda t, d, k: t.sum(d, keepdim=k), lambda a, d, k: a.sum(axis=d, keepdims=k)),
    ("mean", lambda t, d, k: t.mean(d, keepdim=k), lambda a, d, k: a.mean(axis=d, keepdims=k)),
    ("amax", lambda t, d, k: t.amax(d, keepdim=k), lambda a, d, k: a.max(axis=d, keepdims=k)),
    ("amin", lambda t, d, k: t.amin(d, keepdim=k), lambda a, d, k: a.min(axis=d, keepdims=k)),
    ("var", lambda t, d, k: t.var(d, keepdim=k), lambda a, d, k: a.var(axis=d, keepdims=k, ddof=1)),
    ("std", lambda t, d, k: t.std(d, keepdim=k), lambda a, d, k: a.std(axis=d, keepdims=k, ddof=1)),
    ("logsumexp", lambda t, d, k: t.logsumexp(d, keepdim=k), np_logsumexp),
]
IDS = [r[0] for r in REDUCE]
DIMS = [
    pytest.param(None, id="all"),
    pytest.param(1, id="dim1"),
    pytest.param(-1, id="dim-1"),
    pytest.param((0, 2), id="dims0,2"),
    pytest.param((-3, -1), id="dims-3,-1"),
]


@pytest.mark.parametrize("keepdim", [False, True], ids=["nokeep", "keep"])
@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("name,fn,ref", REDUCE, ids=IDS)
def test_reduce(device, name, fn, ref, dim, keepdim):
    if name == "logsumexp" and dim is None:
        dim = (0, 1, 2)  # logsumexp needs dims, like torch
    a = rand(3, 4, 5, seed=1)
    (x,) = on(device, a)
    axis = dim if dim is None or isinstance(dim, int) else tuple(dim)
    expected = ref(a.astype(np.float64), axis, keepdim)
    if dim is None and keepdim:  # torch: no dim -> a 0-d result, keepdim is about dims
        expected = ref(a.astype(np.float64), None, False)
        out = fn(x, None, False)
    else:
        out = fn(x, dim, keepdim)
    assert out.dtype == sg.float32
    assert_close(out, np.asarray(expected, np.float32), rtol=1e-5, atol=1e-6)


def test_sum_over_no_dim_is_0d(device):
    a = rand(3, 4, seed=2)
    (x,) = on(device, a)
    out = x.sum()
    assert out.shape == ()
    assert_close(out, np.float32(a.astype(np.float64).sum()), rtol=1e-5)


def test_max_min_without_dim_are_0d_values(device):
    a = rand(3, 4, seed=3)
    (x,) = on(device, a)
    assert_close(x.max(), a.max())
    assert_close(x.min(), a.min())


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_max_dim_returns_values_and_indices(device, dim, keepdim):
    a = rand(4, 6, seed=4)
    (x,) = on(device, a)
    out = x.max(dim, keepdim=keepdim)
    values, indices = out
    assert out.values is values and out.indices is indices
    assert indices.dtype == sg.int64
    assert_close(values, a.max(axis=dim, keepdims=keepdim))
    assert_close(indices, a.argmax(axis=dim, keepdims=keepdim).astype(np.int64))


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_min_dim_returns_values_and_indices(device, dim, keepdim):
    a = rand(4, 6, seed=5)
    (x,) = on(device, a)
    values, indices = x.min(dim, keepdim=keepdim)
    assert_close(values, a.min(axis=dim, keepdims=keepdim))
    assert_close(indices, a.argmin(axis=dim, keepdims=keepdim).astype(np.int64))


def test_max_with_tensor_is_elementwise_maximum(device):
    a, b = rand(5, seed=6), rand(5, seed=7)
    x, y = on(device, a, b)
    assert_close(x.max(y), np.maximum(a, b))
    assert_close(x.min(y), np.minimum(a, b))


@pytest.mark.parametrize("fn", ["argmax", "argmin"])
@pytest.mark.parametrize("dim", [None, 0, 1, -1])
def test_argmax_argmin(device, fn, dim):
    a = rand(5, 7, seed=8)
    (x,) = on(device, a)
    out = getattr(x, fn)(dim)
    assert out.dtype == sg.int64
    assert_close(out, np.asarray(getattr(a, fn)(axis=dim), np.int64))


@pytest.mark.parametrize("fn", ["argmax", "argmin"])
def test_argmax_argmin_keepdim(device, fn):
    a = rand(5, 7, seed=9)
    (x,) = on(device, a)
    assert_close(getattr(x, fn)(1, keepdim=True), getattr(a, fn)(axis=1, keepdims=True).astype(np.int64))
    assert_close(getattr(x, fn)(None, keepdim=True), getattr(a, fn)(keepdims=True).reshape(1, 1).astype(np.int64))


def test_argmax_returns_first_index_on_ties(device):
    a = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [0.0, -1.0, 5.0, 5.0]], np.float32)
    (x,) = on(device, a)
    assert_close(x.argmax(1), np.array([1, 0, 2], np.int64))
    assert_close(x.argmax(), np.int64(10))  # flat: 5.0 at 10 and 11
    assert_close(x.max(1).indices, np.array([1, 0, 2], np.int64))


def test_argmin_returns_first_index_on_ties(device):
    a = np.array([[1.0, 0.0, 0.0], [4.0, 4.0, 4.0]], np.float32)
    (x,) = on(device, a)
    assert_close(x.argmin(1), np.array([1, 0], np.int64))
    assert_close(x.argmin(0), np.array([0, 0, 0], np.int64))


@pytest.mark.parametrize("fn", ["sum", "mean"])
def test_large_full_reduction_1m(device, fn):
    a = rand(1 << 20, low=0.0, high=1.0, seed=10)
    (x,) = on(device, a)
    expected = getattr(a.astype(np.float64), fn)()
    assert_close(getattr(x, fn)(), np.float32(expected), rtol=1e-4, atol=0)


def test_large_row_reduction(device):
    a = rand(64, 4099, seed=11)
    (x,) = on(device, a)
    assert_close(x.sum(1), a.astype(np.float64).sum(1).astype(np.float32), rtol=1e-4, atol=1e-4)
    assert_close(x.amax(0), a.max(0))


@pytest.mark.parametrize(
    "view,npview",
    [
        (lambda t: t.T, lambda a: a.T),
        (lambda t: t[::2, 1:].flip(1), lambda a: a[::2, 1:][:, ::-1]),
        (lambda t: t[:, :1].expand(6, 5), lambda a: np.broadcast_to(a[:, :1], (6, 5))),
    ],
    ids=["transposed", "sliced_flipped", "expanded"],
)
def test_reduction_over_non_contiguous_view(device, view, npview):
    a = rand(6, 5, seed=12)
    (x,) = on(device, a)
    v, na = view(x), npview(a)
    assert_close(v.sum(0), na.sum(0), rtol=1e-5)
    assert_close(v.sum(1), na.sum(1), rtol=1e-5)
    assert_close(v.amax(1), na.max(1))
    assert_close(v.argmax(0), na.argmax(0).astype(np.int64))


@pytest.mark.parametrize("dtype,npdtype", [(sg.int32, np.int32), (sg.int64, np.int64), (sg.bool_, np.bool_)])
def test_integer_and_bool_sums_are_int64(device, dtype, npdtype):
    a = np.array([[3, -1, 0, 7], [2, 2, -5, 1]]).astype(npdtype)
    (x,) = on(device, a, dtype=dtype)
    out = x.sum()
    assert out.dtype == sg.int64
    assert_close(out, np.int64(a.astype(np.int64).sum()))
    assert_close(x.sum(1), a.astype(np.int64).sum(1))


def test_integer_amax_keeps_dtype(device):
    a = np.array([[3, -1, 0, 7], [2, 2, -5, 1]], np.int32)
    (x,) = on(device, a, dtype=sg.int32)
    assert x.amax(1).dtype == sg.int32
    assert_close(x.amax(1), a.max(1))
    assert_close(x.amin(0), a.min(0))


def test_mean_of_int_raises(device):
    (x,) = on(device, np.array([1, 2], np.int64), dtype=sg.int64)
    with pytest.raises(RuntimeError, match="mean"):
        x.mean()


def test_logsumexp_of_huge_values_is_finite(device):
    a = np.array([[1e4, 1e4 - 1, -1e4], [-1e4, -1e4, -1e4 + 2]], np.float32)
    (x,) = on(device, a)
    out = x.logsumexp(1)
    assert np.isfinite(out.numpy()).all()
    assert_close(out, np_logsumexp(a, 1).astype(np.float32), rtol=1e-6)


def test_logsumexp_of_all_minus_inf_row_is_minus_inf(device):
    a = np.array([[-np.inf, -np.inf], [0.0, 0.0]], np.float32)
    (x,) = on(device, a)
    assert_close(x.logsumexp(1), np.array([-np.inf, np.log(2)], np.float32))


@pytest.mark.parametrize("correction", [0, 1])
@pytest.mark.parametrize("dim", [None, 0, (0, 2)])
def test_var_std_correction(device, correction, dim):
    a = rand(4, 3, 5, seed=13)
    (x,) = on(device, a)
    a64 = a.astype(np.float64)
    assert_close(x.var(dim, correction=correction), a64.var(axis=dim, ddof=correction).astype(np.float32), rtol=1e-5)
    assert_close(x.std(dim, correction=correction), a64.std(axis=dim, ddof=correction).astype(np.float32), rtol=1e-5)


def test_var_unbiased_flag(device):
    a = rand(10, seed=14)
    (x,) = on(device, a)
    assert_close(x.var(unbiased=False), np.float32(a.astype(np.float64).var()), rtol=1e-5)
    assert_close(x.var(unbiased=True), np.float32(a.astype(np.float64).var(ddof=1)), rtol=1e-5)


def test_softmax_and_log_softmax(device):
    a = rand(3, 6, low=-5, high=5, seed=15)
    (x,) = on(device, a)
    e = np.exp(a - a.max(1, keepdims=True))
    assert_close(x.softmax(1), e / e.sum(1, keepdims=True), rtol=1e-5, atol=1e-7)
    assert_close(x.log_softmax(-1), a - np_logsumexp(a, 1, keepdims=True).astype(np.float32), rtol=1e-5, atol=1e-6)


def test_softmax_of_huge_values_is_finite(device):
    (x,) = on(device, np.array([[1e4, 0.0, -1e4]], np.float32))
    assert_close(x.softmax(1), np.array([[1.0, 0.0, 0.0]], np.float32))


def test_reduce_over_size_one_dim_and_0d(device):
    a = rand(3, 1, seed=16)
    (x,) = on(device, a)
    assert_close(x.sum(1), a.sum(1))
    (s,) = on(device, np.array(2.5, np.float32))
    assert_close(s.sum(), np.float32(2.5))
    assert_close(s.amax(), np.float32(2.5))


def test_sum_of_empty_dim_is_zero(device):
    (x,) = on(device, np.zeros((0, 3), np.float32))
    assert_close(x.sum(0), np.zeros(3, np.float32))


def test_amax_of_empty_dim_raises(device):
    (x,) = on(device, np.zeros((0, 3), np.float32))
    with pytest.raises(RuntimeError):
        x.amax(0)


@pytest.mark.parametrize("dim", [2, -3, (0, 0)])
def test_bad_dims_raise(device, dim):
    (x,) = on(device, rand(2, 2))
    with pytest.raises((IndexError, RuntimeError)):
        x.sum(dim)


# ----- NaN and 0-d inputs -----


def test_amax_amin_propagate_nan(device):
    a = np.array([[1.0, np.nan, 3.0], [4.0, 1.0, 2.0]], np.float32)
    (x,) = on(device, a)
    assert_close(x.amax(1), a.max(1))
    assert_close(x.amin(1), a.min(1))
    assert np.isnan(x.amax().item())


@pytest.mark.parametrize("fn", ["argmax", "argmin"])
def test_argmax_argmin_point_at_nan(device, fn):
    a = np.array([[1.0, np.nan, 3.0], [4.0, 1.0, 2.0]], np.float32)
    (x,) = on(device, a)
    assert_close(getattr(x, fn)(1), np.array([1, 0 if fn == "argmax" else 1], np.int64))
    assert_close(getattr(x, fn)(), np.int64(1))


@pytest.mark.parametrize("fn", ["sum", "mean", "amax", "amin", "logsumexp", "softmax", "max"])
def test_reduce_0d_over_dim_0(device, fn):
    (x,) = on(device, np.array(2.5, np.float32))
    out = getattr(x, fn)(0)
    out = out.values if fn == "max" else out
    expected = 1.0 if fn == "softmax" else 2.5
    assert_close(out, np.float32(expected))


@pytest.mark.parametrize("op", ["sum", "amax", "amin"])
def test_small_extent_reduction_of_a_large_strided_view(device, op):
    # the numpy device folds small extents slice by slice; same values, NaN included
    x = np.random.default_rng(0).standard_normal((64, 64, 6)).astype(np.float32)
    x[3, 5, 1] = np.nan
    t = sg.tensor(x, device=device)[:, :, 1:5].permute(2, 0, 1)  # reduce a strided dim 0 of extent 4
    got = getattr(t, op)(0)
    want = getattr(np, {"sum": "sum", "amax": "max", "amin": "min"}[op])(x[:, :, 1:5].transpose(2, 0, 1), axis=0)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, equal_nan=True)
