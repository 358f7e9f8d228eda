"""Elementwise tensor ops of issue 12: rounding, inverse/hyperbolic trig, log1p/expm1 and
friends, remainders and floor division, float tests, isclose, nan_to_num, lerp, hypot,
logaddexp, clone: forward against NumPy, gradients by finite differences, both devices."""

from __future__ import annotations

import math

import numpy as np
import pytest

import smolgrad as sg
from helpers import assert_close, gradcheck, on, rand

SPECIAL = np.array([0.0, -0.0, 0.5, -0.5, 1.5, 2.5, -2.5, 1e-8, -1e-8, 3.7, -3.7, np.inf, -np.inf, np.nan], np.float32)

UNARY = {  # name -> (numpy reference, input array)
    "floor": (np.floor, SPECIAL),
    "ceil": (np.ceil, SPECIAL),
    "round": (np.round, SPECIAL),  # half to even, like torch.round
    "trunc": (np.trunc, SPECIAL),
    "frac": (lambda x: x - np.trunc(x), SPECIAL[:11]),
    "log1p": (np.log1p, np.array([0, 1e-7, -1e-7, 1e-3, 0.5, 3, -0.5, -1, -2, np.inf, np.nan], np.float32)),
    "expm1": (np.expm1, np.array([0, 1e-7, -1e-7, 1e-3, 0.5, 3, -0.5, -20, -np.inf, 100, np.nan], np.float32)),
    "log2": (np.log2, np.array([0.25, 1, 3, 8, 1e-3, 0, -1], np.float32)),
    "log10": (np.log10, np.array([0.1, 1, 3, 100, 0, -1], np.float32)),
    "exp2": (np.exp2, np.array([-3, -0.5, 0, 1, 10, 20.5], np.float32)),
    "asin": (np.arcsin, np.array([-1, -0.5, 0, 1e-6, 0.7, 1, 1.5, -2, np.nan], np.float32)),
    "acos": (np.arccos, np.array([-1, -0.5, 0, 1e-6, 0.7, 1, 1.5, -2, np.nan], np.float32)),
    "atan": (np.arctan, np.array([-1e6, -2, -0.5, 0, 1e-6, 0.7, 3, np.inf, -np.inf], np.float32)),
    "sinh": (np.sinh, np.array([-5, -0.5, -1e-6, 0, 1e-6, 0.3, 2, 10], np.float32)),
    "cosh": (np.cosh, np.array([-5, -0.5, 0, 1e-6, 0.3, 2, 10], np.float32)),
    "asinh": (np.arcsinh, np.array([-1e4, -5, -0.5, -1e-6, 0, 1e-6, 0.3, 2, 1e4], np.float32)),
    "acosh": (np.arccosh, np.array([1, 1.5, 2, 10, 1e4, 0.5], np.float32)),
    "atanh": (np.arctanh, np.array([-0.99, -0.5, -1e-6, 0, 1e-6, 0.3, 0.9, 1, -1, 2], np.float32)),
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_matches_numpy_including_special_values(name, device):
    ref, x = UNARY[name]
    with np.errstate(all="ignore"):
        expected = ref(x.astype(np.float64)).astype(np.float32)
    out = getattr(sg, name)(sg.tensor(x, device=device))
    assert out.dtype == sg.float32
    assert_close(out, expected, rtol=2e-6 if device == "numpy" else 2e-5, atol=1e-7 if name not in ("cosh", "sinh", "exp2") else 1e-6)


SWEEP = {  # the WGSL versions of these are written out: check them densely against float64
    "atan": (np.arctan, np.concatenate([np.linspace(-5, 5, 4001), np.geomspace(1e-6, 1e6, 2000)])),
    "asin": (np.arcsin, np.linspace(-1, 1, 4001)),
    "acos": (np.arccos, np.linspace(-1, 1, 4001)),
    "log1p": (np.log1p, np.concatenate([np.linspace(-0.999, 3, 4001), np.geomspace(1e-8, 1e3, 2000)])),
    "expm1": (np.expm1, np.concatenate([np.linspace(-5, 5, 4001), -np.geomspace(1e-8, 1, 2000)])),
}


@pytest.mark.parametrize("name", sorted(SWEEP))
def test_written_out_functions_are_accurate_over_their_range(name, device):
    ref, x = SWEEP[name]
    x32 = x.astype(np.float32)
    got = getattr(sg.tensor(x32, device=device), name)().numpy()
    want = ref(x32.astype(np.float64))
    np.testing.assert_allclose(got, want, rtol=3e-6, atol=1e-30 if name != "acos" else 3e-7)


def test_atan2_is_accurate_in_every_quadrant(device):
    angles = np.linspace(-np.pi, np.pi, 2001)
    radii = np.geomspace(1e-3, 1e3, 2001)
    y, x = (radii * np.sin(angles)).astype(np.float32), (radii * np.cos(angles)).astype(np.float32)
    got = sg.atan2(sg.tensor(y, device=device), sg.tensor(x, device=device)).numpy()
    np.testing.assert_allclose(got, np.arctan2(y.astype(np.float64), x.astype(np.float64)), rtol=3e-6, atol=3e-7)


def test_round_is_half_to_even_and_decimals(device):
    x = sg.tensor([0.5, 1.5, 2.5, -0.5, -1.5, 2.4999, 3.5001], device=device)
    assert_close(x.round(), np.array([0, 2, 2, -0, -2, 2, 4], np.float32))
    assert_close(sg.tensor([1.2345, -2.5678], device=device).round(decimals=2), np.array([1.23, -2.57], np.float32))


def test_rounding_keeps_integer_tensors(device):
    x = sg.tensor([-3, 0, 7], device=device)
    for name in ("floor", "ceil", "round", "trunc"):
        out = getattr(x, name)()
        assert out.dtype == sg.int64
        assert_close(out, np.array([-3, 0, 7]))
    with pytest.raises(RuntimeError, match="frac"):
        x.frac()


@pytest.mark.parametrize("name", ["log1p", "expm1", "asin", "atan", "sinh", "cosh", "asinh", "atanh", "exp2", "frac"])
def test_unary_gradients(name):
    x = np.array([[0.3, -0.4, 0.1], [0.7, -0.2, 0.55]])
    gradcheck(lambda t: getattr(t, name)(), x)


def test_gradients_on_restricted_domains():
    gradcheck(lambda t: t.acos(), np.array([0.3, -0.4, 0.1]))
    gradcheck(lambda t: t.acosh(), np.array([1.3, 2.4, 5.1]))
    gradcheck(lambda t: t.log2() + t.log10(), np.array([0.3, 2.4, 5.1]))


def test_rounding_gradient_is_zero():
    x = sg.tensor([0.3, 1.7, -2.2], dtype=sg.float64, requires_grad=True)
    (x.floor() + x.ceil() + x.round() + x.trunc()).sum().backward()
    assert_close(x.grad, np.zeros(3))


def test_log1p_and_expm1_are_accurate_near_zero(device):
    x = np.array([1e-10, -3e-9, 2e-6], np.float32)
    assert_close(sg.tensor(x, device=device).log1p(), np.log1p(x.astype(np.float64)), rtol=1e-6, atol=0)
    assert_close(sg.tensor(x, device=device).expm1(), np.expm1(x.astype(np.float64)), rtol=1e-6, atol=0)
    assert_close(sg.tensor(x, device=device).sinh(), np.sinh(x.astype(np.float64)), rtol=1e-6, atol=0)


def test_integer_inputs_of_float_functions_become_float(device):
    x = sg.tensor([1, 2, 3], device=device)
    assert x.log1p().dtype == sg.float32
    assert_close(x.log2(), np.log2([1, 2, 3]).astype(np.float32))


# ----- atan2, hypot, logaddexp -----


def test_atan2_quadrants_and_broadcasting(device):
    y = np.array([[1, -1, 0, 0, 2, -0.0]], np.float32)
    x = np.array([[1], [-1], [0]], np.float32)
    ys, xs = on(device, y, x)
    assert_close(sg.atan2(ys, xs), np.arctan2(y, x))
    assert_close(ys.arctan2(2.0), np.arctan2(y, 2.0).astype(np.float32))


def test_atan2_hypot_logaddexp_gradients():
    y, x = np.array([0.3, -1.2, 2.0]), np.array([-0.5, 0.7, 1.1])
    gradcheck(lambda a, b: a.atan2(b), y, x)
    gradcheck(lambda a, b: a.hypot(b), y, x)
    gradcheck(lambda a, b: a.logaddexp(b), y, x)
    gradcheck(lambda a: a.logaddexp(a), y)  # a tie: d/da log(2 e^a) = 1


def test_hypot_and_logaddexp_match_numpy(device):
    a, b = rand(3, 4, seed=1) * 5, rand(4, seed=2) * 5
    ts, tb = on(device, a, b)
    assert_close(ts.hypot(tb), np.hypot(a, b), rtol=1e-5)
    assert_close(sg.logaddexp(ts, tb), np.logaddexp(a, b), rtol=1e-5)
    big = sg.tensor([1e4, -1e4, -np.inf, np.inf, -np.inf], device=device)
    other = sg.tensor([1e4, 3.0, -np.inf, np.inf, 1.0], device=device)
    assert_close(big.logaddexp(other), np.logaddexp(big.numpy(), other.numpy()))


# ----- remainders and floor division -----

DIVIDENDS = np.array([7, -7, 7, -7, 0, 5, -5, 3], np.int64)
DIVISORS = np.array([3, 3, -3, -3, 2, 5, 1, -7], np.int64)


def test_integer_remainder_fmod_and_floor_divide(device):
    a, b = sg.tensor(DIVIDENDS, device=device), sg.tensor(DIVISORS, device=device)
    assert_close(a % b, np.remainder(DIVIDENDS, DIVISORS))  # sign of the divisor
    assert_close(sg.fmod(a, b), np.fmod(DIVIDENDS, DIVISORS))  # sign of the dividend
    assert_close(a // b, np.floor_divide(DIVIDENDS, DIVISORS))
    assert (a % b).dtype == sg.int64 and (a // b).dtype == sg.int64
    assert_close(a % 4, np.remainder(DIVIDENDS, 4))
    assert_close(17 % b, np.remainder(17, DIVISORS))
    assert_close(17 // b, np.floor_divide(17, DIVISORS))


def test_float_remainder_fmod_and_floor_divide(device):
    a = np.array([5.5, -5.5, 5.5, -5.5, 0.25, 1e3, -0.0], np.float32)
    b = np.array([2.0, 2.0, -2.0, -2.0, 0.1, 7.0, 3.0], np.float32)
    ta, tb = on(device, a, b)
    assert_close(ta % tb, a - np.floor(a / b) * b, rtol=1e-6, atol=1e-6)
    assert_close(ta.remainder(tb), np.remainder(a, b), rtol=1e-5, atol=1e-5)
    assert_close(ta.fmod(tb), np.fmod(a, b), rtol=1e-5, atol=1e-5)
    assert_close(ta // tb, np.floor_divide(a, b))
    assert_close(ta.fmod(0.0), np.full(7, np.nan, np.float32))
    assert_close(ta.remainder(0.0), np.full(7, np.nan, np.float32))
    assert_close(sg.remainder(3.0, tb[:4]), np.remainder(np.float32(3.0), b[:4]))


def test_float_remainder_keeps_the_divisors_sign_where_the_quotient_rounds(device):
    # 3 / 0.1 rounds to 30 in float32: x - 30 * y is a tiny negative number, lifted by y
    a = np.array([-1e-8, 1e-8, 3.0], np.float32)
    b = np.array([1.0, -1.0, 0.1], np.float32)
    r = sg.tensor(a, device=device) % sg.tensor(b, device=device)
    assert (np.where(b > 0, r.numpy() >= 0, r.numpy() <= 0)).all()
    assert_close(r[:2], np.remainder(a[:2], b[:2]))
    f = sg.tensor([1e-8, -3.0], device=device).fmod(sg.tensor([1.0, 0.1], device=device)).numpy()
    assert f[0] >= 0 and f[1] <= 0


def test_remainder_and_fmod_gradients():
    a, b = np.array([5.3, -5.3, 2.2]), np.array([2.0, 2.0, -0.7])
    gradcheck(lambda x, y: x % y, a, b)
    gradcheck(lambda x, y: x.fmod(y), a, b)


def test_integer_floor_division_of_large_int64_is_exact():
    # (true division through float64 rounded 2^62 + 1 to 2^62)
    a = np.array([2**62 + 1, -(2**62) - 3, 2**63 - 1], np.int64)
    b = np.array([1, 2, 3], np.int64)
    ta, tb = sg.tensor(a), sg.tensor(b)
    np.testing.assert_array_equal((ta // (tb * 1)).numpy(), a // b)
    np.testing.assert_array_equal((ta % (tb * 1)).numpy(), a % b)


def test_integer_division_by_a_computed_zero_gives_the_same_on_both_devices(device):
    # a divisor computed on the device is not read back to check it: x // 0 is what the
    # composition gives with a truncating 0 (0, or -1 below zero) on every device
    a = sg.tensor([5, -7, 0, 6], device=device, dtype=sg.int32)
    divisor = sg.tensor([0, 0, 0, 4], device=device, dtype=sg.int32)
    assert (a // (divisor * 1)).numpy().tolist() == [0, -1, 0, 1]
    assert (a % (divisor * 1)).numpy().tolist() == [5, -7, 0, 2]  # (a new one: not yet computed)


def test_integer_division_by_zero_raises(device):
    a = sg.tensor([1, 2], device=device)
    for fn in (lambda: a % 0, lambda: a // sg.tensor([1, 0], device=device), lambda: a.fmod(0)):
        with pytest.raises(ZeroDivisionError, match="division by zero"):
            fn()


# ----- float tests -----


def test_isnan_isinf_isfinite(device):
    x = np.array([0, 1, -np.inf, np.inf, np.nan, -np.nan, 3e38, -0.0], np.float32)
    t = sg.tensor(x, device=device)
    assert_close(t.isnan(), np.isnan(x))
    assert_close(t.isinf(), np.isinf(x))
    assert_close(t.isfinite(), np.isfinite(x))
    assert_close(t.isposinf(), np.isposinf(x))
    assert_close(t.isneginf(), np.isneginf(x))
    i = sg.tensor([1, 2], device=device)
    assert_close(i.isnan(), np.array([False, False]))
    assert_close(i.isfinite(), np.array([True, True]))


def test_isnan_of_a_computed_nan_on_a_fused_kernel(device):
    x = sg.tensor([-1.0, 0.0, 4.0], device=device)
    assert_close(x.sqrt().isnan(), np.array([True, False, False]))
    assert_close((x / 0).isinf(), np.array([True, False, True]))


def test_nan_to_num(device):
    x = np.array([np.nan, np.inf, -np.inf, 1.5], np.float32)
    t = sg.tensor(x, device=device)
    assert_close(t.nan_to_num(), np.nan_to_num(x))
    assert_close(sg.nan_to_num(t, nan=2.0, posinf=9.0, neginf=-9.0), np.array([2, 9, -9, 1.5], np.float32))
    assert_close(sg.tensor([1, 2], device=device).nan_to_num(), np.array([1, 2]))


def test_nan_to_num_float64_gradient():
    gradcheck(lambda t: t.nan_to_num() * t, np.array([0.5, -2.0]))


def test_isclose_and_allclose(device):
    a = np.array([1.0, 1.0, np.inf, np.inf, np.nan, 0.0, 1e-9], np.float32)
    b = np.array([1.0 + 1e-6, 1.1, np.inf, -np.inf, np.nan, 1e-9, 0.0], np.float32)
    ta, tb = on(device, a, b)
    assert_close(ta.isclose(tb), np.isclose(a, b))
    assert_close(sg.isclose(ta, tb, equal_nan=True), np.isclose(a, b, equal_nan=True))
    assert_close(ta.isclose(tb, rtol=0.2, atol=0), np.isclose(a, b, rtol=0.2, atol=0))
    assert not sg.allclose(ta, tb)
    assert sg.allclose(ta[:1], tb[:1]) and ta.allclose(ta, equal_nan=True)
    assert sg.tensor([1, 2], device=device).allclose(sg.tensor([1, 2], device=device))
    with pytest.raises(RuntimeError, match="isclose"):
        ta.isclose(tb, rtol=-1)


# ----- lerp, clone -----


def test_lerp_matches_formula_and_gradients(device):
    s, e, w = rand(2, 3, seed=3), rand(3, seed=4), rand(2, 3, seed=5)
    ts, te, tw = on(device, s, e, w)
    assert_close(ts.lerp(te, tw), s + w * (e - s))
    assert_close(sg.lerp(ts, te, 0.25), s + 0.25 * (e - s))
    gradcheck(lambda a, b, c: a.lerp(b, c), s, e, w)
    with pytest.raises(RuntimeError, match="lerp"):
        sg.tensor([1, 2], device=device).lerp(sg.tensor([3, 4], device=device), 0.5)


def test_clone_is_a_new_tensor_with_the_same_value(device):
    (x,) = on(device, rand(2, 3))
    y = x.T.clone()
    assert y is not x and y.shape == (3, 2)
    assert_close(y, x.numpy().T)
    y.fill_(0.0)
    assert float(x.abs().sum().item()) > 0  # the original is untouched
    gradcheck(lambda t: t.clone() * t, np.array([1.0, -2.0]))


def test_rounding_on_noncontiguous_views(device):
    a = rand(4, 5, seed=6) * 10
    (t,) = on(device, a)
    assert_close(t.T.floor(), np.floor(a.T))
    assert_close(t[::2, 1::2].round(), np.round(a[::2, 1::2]))
    assert_close(t.flip(0).abs().log1p().expm1(), np.expm1(np.log1p(np.abs(a[::-1]))), rtol=1e-4, atol=1e-4)


def test_fused_chain_of_new_ops_is_one_kernel(webgpu, monkeypatch):
    monkeypatch.setenv("SMOLGRAD_FUSION", "1")  # a test about fusion (CI also runs the suite with it off)
    (x,) = on(webgpu, rand(64, seed=7))
    y = x.asin().atan().floor() + x.log1p().expm1().ceil() + sg.atan2(x, x + 2).round()
    sg.realize(x)
    sg.reset_stats(webgpu)
    y.realize()
    assert sg.stats(webgpu)["dispatches"] == 1
