"""Elementwise ops against NumPy, on every device: arithmetic, unary math, comparisons,
where/clamp, broadcasting, type promotion, non-contiguous inputs, sizes and edge values."""

from __future__ import annotations

import numpy as np
import pytest

import smolgrad as sg
from helpers import assert_close, on, rand

# ----- binary arithmetic -----

BINARY = [
    ("add", lambda a, b: a + b),
    ("sub", lambda a, b: a - b),
    ("mul", lambda a, b: a * b),
    ("div", lambda a, b: a / b),
    ("maximum", lambda a, b: a.maximum(b) if isinstance(a, sg.Tensor) else np.maximum(a, b)),
    ("minimum", lambda a, b: a.minimum(b) if isinstance(a, sg.Tensor) else np.minimum(a, b)),
]


@pytest.mark.parametrize("name,fn", BINARY, ids=[n for n, _ in BINARY])
def test_binary_tensor_tensor(device, name, fn):
    a, b = rand(3, 5, seed=1), rand(3, 5, low=0.5, high=2.0, seed=2)
    x, y = on(device, a, b)
    assert_close(fn(x, y), fn(a, b))


@pytest.mark.parametrize("name,fn", BINARY[:4], ids=[n for n, _ in BINARY[:4]])
def test_binary_tensor_scalar(device, name, fn):
    a = rand(4, 3, low=0.5, high=2.0, seed=3)
    (x,) = on(device, a)
    assert_close(fn(x, 1.5), fn(a, np.float32(1.5)))


@pytest.mark.parametrize("name,fn", BINARY[:4], ids=[n for n, _ in BINARY[:4]])
def test_binary_scalar_tensor_reversed(device, name, fn):
    a = rand(4, 3, low=0.5, high=2.0, seed=4)
    (x,) = on(device, a)
    assert_close(fn(2, x), fn(np.float32(2), a))


def test_reversed_sub_is_scalar_minus_tensor(device):
    (x,) = on(device, np.array([1.0, 5.0], np.float32))
    assert_close(2 - x, np.array([1.0, -3.0], np.float32))


def test_reversed_div_is_scalar_over_tensor(device):
    (x,) = on(device, np.array([4.0, 0.5], np.float32))
    assert_close(2 / x, np.array([0.5, 4.0], np.float32))


def test_reversed_pow_is_scalar_to_the_tensor(device):
    (x,) = on(device, np.array([0.0, 3.0, -1.0], np.float32))
    assert_close(2**x, np.array([1.0, 8.0, 0.5], np.float32))


def test_pow_tensor_scalar(device):
    a = rand(3, 4, low=0.1, high=3.0, seed=5)
    (x,) = on(device, a)
    assert_close(x**2.5, a**2.5, rtol=1e-5)
    assert_close(x**2, a**2, rtol=1e-5)


def test_pow_tensor_tensor(device):
    a, b = rand(3, 4, low=0.1, high=3.0, seed=6), rand(3, 4, low=-2.0, high=2.0, seed=7)
    x, y = on(device, a, b)
    assert_close(x**y, a**b, rtol=1e-5)


def test_pow_method_and_functional_agree_with_operator(device):
    a = rand(5, low=0.5, high=2.0, seed=8)
    (x,) = on(device, a)
    assert_close(x.pow(3), a**3)
    assert_close(sg.pow(x, 3), a**3)


def test_neg(device):
    a = rand(2, 7, seed=9)
    (x,) = on(device, a)
    assert_close(-x, -a)
    assert_close(x.neg(), -a)


def test_functional_forms_match_methods(device):
    a, b = rand(6, seed=10), rand(6, low=0.5, high=1.0, seed=11)
    x, y = on(device, a, b)
    assert_close(sg.add(x, y), a + b)
    assert_close(sg.sub(x, y), a - b)
    assert_close(sg.mul(x, y), a * b)
    assert_close(sg.div(x, y), a / b)
    assert_close(sg.maximum(x, y), np.maximum(a, b))
    assert_close(sg.minimum(x, y), np.minimum(a, b))


def test_add_with_alpha(device):
    a, b = rand(4, seed=12), rand(4, seed=13)
    x, y = on(device, a, b)
    assert_close(x.add(y, alpha=3), a + 3 * b)
    assert_close(x.sub(y, alpha=2), a - 2 * b)


# ----- clamp and where -----


def test_clamp_min_only(device):
    a = rand(10, seed=14)
    (x,) = on(device, a)
    assert_close(x.clamp(min=-0.2), np.clip(a, -0.2, None))


def test_clamp_max_only(device):
    a = rand(10, seed=15)
    (x,) = on(device, a)
    assert_close(x.clamp(max=0.3), np.clip(a, None, 0.3))


def test_clamp_both(device):
    a = rand(10, seed=16)
    (x,) = on(device, a)
    assert_close(x.clamp(-0.2, 0.3), np.clip(a, -0.2, 0.3))
    assert_close(sg.clamp(x, min=-0.2, max=0.3), np.clip(a, -0.2, 0.3))


def test_clamp_without_bounds_raises(device):
    (x,) = on(device, rand(3))
    with pytest.raises(RuntimeError):
        x.clamp()


def test_where_tensor_tensor(device):
    c = np.array([[True, False, True], [False, False, True]])
    a, b = rand(2, 3, seed=17), rand(2, 3, seed=18)
    x, y = on(device, a, b)
    cond = sg.tensor(c, device=device)
    assert_close(sg.where(cond, x, y), np.where(c, a, b))


def test_where_tensor_scalar(device):
    a = rand(2, 3, seed=19)
    (x,) = on(device, a)
    assert_close(sg.where(x > 0, x, 0.0), np.where(a > 0, a, np.float32(0)))


def test_where_scalar_tensor(device):
    a = rand(2, 3, seed=20)
    (x,) = on(device, a)
    assert_close(sg.where(x > 0, -1.0, x), np.where(a > 0, np.float32(-1), a))


def test_where_scalar_scalar(device):
    a = rand(2, 3, seed=21)
    (x,) = on(device, a)
    out = sg.where(x > 0, 1.0, -1.0)
    assert out.dtype == sg.float32
    assert_close(out, np.where(a > 0, 1.0, -1.0).astype(np.float32))


def test_where_broadcasts_condition_and_values(device):
    c = np.array([True, False, True, False])
    a, b = rand(3, 1, seed=22), rand(4, seed=23)
    x, y = on(device, a, b)
    assert_close(sg.where(sg.tensor(c, device=device), x, y), np.where(c, a, b))


# ----- comparisons -----

COMPARE = [
    ("lt", lambda a, b: a < b),
    ("le", lambda a, b: a <= b),
    ("gt", lambda a, b: a > b),
    ("ge", lambda a, b: a >= b),
    ("eq", lambda a, b: a == b),
    ("ne", lambda a, b: a != b),
]


@pytest.mark.parametrize("name,fn", COMPARE, ids=[n for n, _ in COMPARE])
def test_compare_tensors_gives_bool(device, name, fn):
    a = np.array([1.0, 2.0, 3.0, -1.0, 0.0], np.float32)
    b = np.array([2.0, 2.0, 1.0, -1.0, 0.5], np.float32)
    x, y = on(device, a, b)
    out = fn(x, y)
    assert out.dtype == sg.bool_
    assert_close(out, fn(a, b))


@pytest.mark.parametrize("name,fn", COMPARE, ids=[n for n, _ in COMPARE])
def test_compare_with_scalar_gives_bool(device, name, fn):
    a = np.array([1.0, 2.0, 3.0], np.float32)
    (x,) = on(device, a)
    assert_close(fn(x, 2), fn(a, 2))
    assert_close(fn(x, 2.0), fn(a, 2.0))


def test_compare_int_tensors(device):
    a, b = np.array([1, 5, -3], np.int64), np.array([1, 4, 0], np.int64)
    x, y = on(device, a, b, dtype=sg.int64)
    assert_close(x < y, a < b)
    assert_close(x == y, a == b)


# ----- unary math -----

UNARY = [
    ("exp", lambda t: t.exp(), np.exp, (-3, 3), 1e-5),
    ("log", lambda t: t.log(), np.log, (0.01, 10), 1e-5),
    ("sqrt", lambda t: t.sqrt(), np.sqrt, (0.0, 10), 1e-5),
    ("rsqrt", lambda t: t.rsqrt(), lambda a: 1 / np.sqrt(a), (0.01, 10), 1e-5),
    ("reciprocal", lambda t: t.reciprocal(), lambda a: 1 / a, (0.1, 10), 1e-5),
    ("sin", lambda t: t.sin(), np.sin, (-10, 10), 1e-5),
    ("cos", lambda t: t.cos(), np.cos, (-10, 10), 1e-5),
    ("tanh", lambda t: t.tanh(), np.tanh, (-5, 5), 1e-5),
    ("sigmoid", lambda t: t.sigmoid(), lambda a: 1 / (1 + np.exp(-a)), (-10, 10), 1e-5),
    ("relu", lambda t: t.relu(), lambda a: np.maximum(a, 0), (-1, 1), 1e-6),
    ("abs", lambda t: t.abs(), np.abs, (-1, 1), 1e-6),
    ("sign", lambda t: t.sign(), np.sign, (-1, 1), 0),
    ("square", lambda t: t.square(), np.square, (-3, 3), 1e-6),
]


@pytest.mark.parametrize("name,fn,ref,domain,rtol", UNARY, ids=[u[0] for u in UNARY])
def test_unary(device, name, fn, ref, domain, rtol):
    a = rand(4, 9, low=domain[0], high=domain[1], seed=24)
    (x,) = on(device, a)
    out = fn(x)
    assert out.dtype == sg.float32
    assert_close(out, ref(a.astype(np.float64)).astype(np.float32), rtol=rtol, atol=1e-6)


@pytest.mark.parametrize("name,fn,ref,domain,rtol", UNARY, ids=[u[0] for u in UNARY])
def test_unary_functional_form(device, name, fn, ref, domain, rtol):
    a = rand(5, low=domain[0], high=domain[1], seed=25)
    (x,) = on(device, a)
    assert_close(getattr(sg, name)(x), fn(x).numpy())


def test_sign_of_zero_is_zero(device):
    (x,) = on(device, np.array([-2.0, 0.0, 3.0], np.float32))
    assert_close(x.sign(), np.array([-1.0, 0.0, 1.0], np.float32))


def test_relu_and_abs_keep_int_dtype(device):
    a = np.array([-3, 0, 4], np.int32)
    (x,) = on(device, a, dtype=sg.int32)
    assert x.relu().dtype == sg.int32
    assert_close(x.relu(), np.maximum(a, 0))
    assert_close(x.abs(), np.abs(a))


def test_float_unary_of_int_tensor_is_float32(device):
    (x,) = on(device, np.array([1, 4, 9], np.int64), dtype=sg.int64)
    out = x.sqrt()
    assert out.dtype == sg.float32
    assert_close(out, np.array([1.0, 2.0, 3.0], np.float32))


# ----- broadcasting -----


def test_broadcast_across_ranks(device):
    a, b = rand(3, 1, 5, seed=26), rand(4, 1, seed=27)
    x, y = on(device, a, b)
    out = x + y
    assert out.shape == (3, 4, 5)
    assert_close(out, a + b)
    assert_close(y * x, b * a)


def test_broadcast_scalar_tensor(device):
    a, b = rand(2, 3, seed=28), np.array(1.5, np.float32)
    x, y = on(device, a, b)
    assert_close(x - y, a - b)
    assert_close(y - x, b - a)


def test_broadcast_incompatible_shapes_raise(device):
    x, y = on(device, rand(3, 4), rand(5))
    with pytest.raises(RuntimeError, match=r"\(3, 4\).*\(5,\)"):
        x + y


# ----- type promotion -----


def test_int_tensor_plus_float_scalar_is_float32(device):
    (x,) = on(device, np.array([1, 2], np.int64), dtype=sg.int64)
    out = x + 0.5
    assert out.dtype == sg.float32
    assert_close(out, np.array([1.5, 2.5], np.float32))


def test_int_tensor_plus_int_scalar_stays_int(device):
    (x,) = on(device, np.array([1, 2], np.int32), dtype=sg.int32)
    out = x + 3
    assert out.dtype == sg.int32
    assert_close(out, np.array([4, 5], np.int32))


def test_int_true_division_is_float(device):
    x, y = on(device, np.array([1, 7], np.int64), np.array([2, 2], np.int64), dtype=sg.int64)
    out = x / y
    assert out.dtype == sg.float32
    assert_close(out, np.array([0.5, 3.5], np.float32))
    assert_close(x / 2, np.array([0.5, 3.5], np.float32))


def test_int64_plus_int32_is_int64(device):
    (x,) = on(device, np.array([1, 2], np.int64), dtype=sg.int64)
    (y,) = on(device, np.array([10, 20], np.int32), dtype=sg.int32)
    out = x + y
    assert out.dtype == sg.int64
    assert_close(out, np.array([11, 22], np.int64))


def test_int_plus_float_tensor_is_float(device):
    (x,) = on(device, np.array([1, 2], np.int32), dtype=sg.int32)
    (y,) = on(device, np.array([0.25, 0.5], np.float32))
    assert (x + y).dtype == sg.float32
    assert_close(x + y, np.array([1.25, 2.5], np.float32))


def test_bool_plus_int_scalar_is_int64(device):
    (x,) = on(device, np.array([1.0, -1.0], np.float32))
    out = (x > 0) + 1
    assert out.dtype == sg.int64
    assert_close(out, np.array([2, 1], np.int64))


def test_int_pow_int_scalar_stays_int(device):
    (x,) = on(device, np.array([2, 3, -2], np.int32), dtype=sg.int32)
    out = x**3
    assert out.dtype == sg.int32
    assert_close(out, np.array([8, 27, -8], np.int32))


def test_float64_arithmetic_on_numpy_keeps_float64():
    x = sg.tensor(np.array([1.0, 2.0]), dtype=sg.float64)
    out = x * 0.1 + 1
    assert out.dtype == sg.float64
    np.testing.assert_array_equal(out.numpy(), np.array([1.0, 2.0]) * 0.1 + 1)


# ----- non-contiguous inputs -----

VIEWS = [
    ("transposed", lambda t: t.T, lambda a: a.T),
    ("flipped", lambda t: t.flip(0), lambda a: a[::-1]),
    ("step_sliced", lambda t: t[::2, 1::3], lambda a: a[::2, 1::3]),
    ("expanded", lambda t: t[:1].expand(6, 6), lambda a: np.broadcast_to(a[:1], (6, 6))),
]


@pytest.mark.parametrize("name,view,npview", VIEWS, ids=[v[0] for v in VIEWS])
def test_binary_on_non_contiguous_views(device, name, view, npview):
    a, b = rand(6, 6, seed=29), rand(6, 6, seed=30)
    x, y = on(device, a, b)
    vx = view(x)
    vy = view(y.flip(1))
    assert_close(vx * vy + 1, npview(a) * npview(b[:, ::-1]) + 1)


@pytest.mark.parametrize("name,view,npview", VIEWS, ids=[v[0] for v in VIEWS])
def test_unary_on_non_contiguous_views(device, name, view, npview):
    a = rand(6, 6, seed=31)
    (x,) = on(device, a)
    assert_close(view(x).exp(), np.exp(npview(a)), rtol=1e-5)


# ----- sizes -----


@pytest.mark.parametrize("n", [1, 7])
def test_small_odd_sizes(device, n):
    a, b = rand(n, seed=32), rand(n, seed=33)
    x, y = on(device, a, b)
    assert_close(x * y - x, a * b - a)


def test_zero_dim_tensor(device):
    x, y = on(device, np.array(2.0, np.float32), np.array(3.0, np.float32))
    out = x * y
    assert out.shape == ()
    assert out.item() == 6.0


def test_large_odd_size_1000003(device):
    a, b = rand(1000003, seed=34), rand(1000003, seed=35)
    x, y = on(device, a, b)
    assert_close(x * y + x, a * b + a)


def test_empty_tensor(device):
    x, y = on(device, np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32))
    assert (x + y).shape == (0, 3)
    assert (x + y).numpy().shape == (0, 3)


# ----- edge values -----


def test_exp_of_large_is_inf(device):
    (x,) = on(device, np.array([100.0, -100.0, 0.0], np.float32))
    assert_close(x.exp(), np.array([np.inf, 0.0, 1.0], np.float32))


def test_log_of_zero_is_minus_inf(device):
    (x,) = on(device, np.array([0.0, 1.0], np.float32))
    assert_close(x.log(), np.array([-np.inf, 0.0], np.float32))


def test_log_of_negative_is_nan(device):
    (x,) = on(device, np.array([-1.0], np.float32))
    assert np.isnan(x.log().numpy()).all()


def test_sigmoid_of_huge_magnitudes_is_finite(device):
    (x,) = on(device, np.array([1e4, -1e4, 0.0], np.float32))
    out = x.sigmoid().numpy()
    assert np.isfinite(out).all()
    assert_close(out, np.array([1.0, 0.0, 0.5], np.float32), atol=1e-7)


def test_tanh_of_huge_magnitudes_is_plus_minus_one(device):
    (x,) = on(device, np.array([1e4, -1e4, 50.0, -50.0], np.float32))
    assert_close(x.tanh(), np.array([1.0, -1.0, 1.0, -1.0], np.float32), rtol=0, atol=0)


def test_zero_to_the_zero_is_one(device):
    x, y = on(device, np.array([0.0], np.float32), np.array([0.0], np.float32))
    assert_close(x**y, np.array([1.0], np.float32))
    assert_close(x**0, np.array([1.0], np.float32))
    assert_close(0**y, np.array([1.0], np.float32))


def test_negative_base_integer_exponent(device):
    (x,) = on(device, np.array([-2.0, -3.0], np.float32))
    assert_close(x**3, np.array([-8.0, -27.0], np.float32))
    assert_close(x**2, np.array([4.0, 9.0], np.float32))
    assert_close(x**3.0, np.array([-8.0, -27.0], np.float32))


def test_negative_base_fractional_exponent_is_nan(device):
    (x,) = on(device, np.array([-8.0], np.float32))
    out = (x ** (1 / 3)).numpy()
    assert np.isnan(out).all(), out


def test_division_by_zero(device):
    x, y = on(device, np.array([1.0, -1.0, 0.0], np.float32), np.zeros(3, np.float32))
    assert_close(x / y, np.array([np.inf, -np.inf, np.nan], np.float32))


def test_sqrt_of_negative_is_nan(device):
    (x,) = on(device, np.array([-4.0, 4.0], np.float32))
    out = x.sqrt().numpy()
    assert np.isnan(out[0]) and out[1] == 2.0


def test_device_mismatch_raises(webgpu):
    x = sg.tensor([1.0, 2.0], device="numpy")
    y = sg.tensor([1.0, 2.0], device="webgpu")
    with pytest.raises(RuntimeError, match="same device"):
        x + y


# ----- NaN handling and PyTorch integer-power semantics  -----


def test_nan_compares_unequal(device):
    a = np.array([np.nan, 1.0, np.nan], np.float32)
    b = np.array([np.nan, np.nan, 2.0], np.float32)
    x, y = on(device, a, b)
    assert_close(x != y, a != b)
    assert_close(x != 1.0, a != 1.0)


def test_nan_compares_false_with_ordering_and_eq(device):
    a = np.array([np.nan, 1.0, np.nan], np.float32)
    b = np.array([np.nan, np.nan, 2.0], np.float32)
    x, y = on(device, a, b)
    for op in (lambda p, q: p < q, lambda p, q: p <= q, lambda p, q: p > q, lambda p, q: p >= q, lambda p, q: p == q):
        assert_close(op(x, y), op(a, b))


@pytest.mark.parametrize("name", ["exp", "log", "sqrt", "sin", "cos", "sigmoid", "abs", "relu", "neg"])
def test_nan_propagates_through_unary(device, name):
    (x,) = on(device, np.array([np.nan], np.float32))
    assert np.isnan(getattr(x, name)().numpy()).all()


def test_tanh_of_nan_is_nan(device):
    (x,) = on(device, np.array([np.nan], np.float32))
    assert np.isnan(x.tanh().numpy()).all()


def test_maximum_minimum_propagate_nan(device):
    a, b = np.array([np.nan, 1.0], np.float32), np.array([1.0, np.nan], np.float32)
    x, y = on(device, a, b)
    assert_close(x.maximum(y), np.maximum(a, b))
    assert_close(x.minimum(y), np.minimum(a, b))


def test_scalar_to_the_int_tensor_stays_int(device):
    (x,) = on(device, np.array([1, 2, 3], np.int64), dtype=sg.int64)
    out = 2**x
    assert out.dtype == sg.int64
    assert_close(out, np.array([2, 4, 8], np.int64))


def test_int_tensor_to_negative_int_power_raises(device):
    (x,) = on(device, np.array([3, -2], np.int64), dtype=sg.int64)
    with pytest.raises(RuntimeError):
        (x**-1).numpy()
