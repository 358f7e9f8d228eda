"""Tensor methods added for nn: in-place initialisers (zero_, fill_, uniform_, normal_,
copy_), masked_fill, triu/tril, unfold (sliding windows) and erf."""

from __future__ import annotations

import math

import numpy as np
import pytest

import smolgrad as sg
from helpers import assert_close, gradcheck, on, rand

# ----- in-place initialisers -----


def test_fill_sets_every_element_and_keeps_identity(device):
    (x,) = on(device, rand(2, 3))
    same = x.fill_(2.5)
    assert same is x
    assert_close(x, np.full((2, 3), 2.5, np.float32))


def test_zero_sets_zeros(device):
    (x,) = on(device, rand(4))
    assert_close(x.zero_(), np.zeros(4, np.float32))


def test_fill_with_0d_tensor(device):
    (x,) = on(device, rand(2, 2))
    x.fill_(sg.tensor(3.0, device=device))
    assert_close(x, np.full((2, 2), 3.0, np.float32))


def test_copy_broadcasts_and_converts_dtype(device):
    x = sg.zeros(2, 3, device=device)
    x.copy_(sg.tensor([1, 2, 3], device=device))
    assert x.dtype == sg.float32
    assert_close(x, np.array([[1, 2, 3], [1, 2, 3]], np.float32))


def test_copy_from_other_device_keeps_own_device():
    x = sg.zeros(3, device="numpy")
    x.copy_(np.array([1.0, 2.0, 3.0]))
    assert x.device == "numpy"
    assert_close(x, np.array([1, 2, 3], np.float32))


def test_copy_rejects_shape_that_does_not_broadcast():
    x = sg.zeros(2, 3)
    with pytest.raises(RuntimeError, match=r"copy_.*\(4,\).*\(2, 3\)"):
        x.copy_(sg.zeros(4))


def test_uniform_is_in_range_and_seeded(device):
    x = sg.zeros(1000, device=device)
    sg.manual_seed(3)
    a = x.uniform_(-2.0, 3.0).numpy()
    assert a.min() >= -2.0 and a.max() < 3.0
    assert abs(a.mean() - 0.5) < 0.15
    sg.manual_seed(3)
    np.testing.assert_array_equal(sg.zeros(1000, device=device).uniform_(-2.0, 3.0).numpy(), a)


def test_normal_has_requested_moments(device):
    a = sg.zeros(20000, device=device).normal_(1.5, 0.5).numpy()
    assert abs(a.mean() - 1.5) < 0.02
    assert abs(a.std() - 0.5) < 0.02


def test_inplace_on_leaf_requiring_grad_raises_in_grad_mode():
    w = sg.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad.*no_grad"):
        w.uniform_()


def test_inplace_on_leaf_requiring_grad_works_under_no_grad():
    w = sg.zeros(3, requires_grad=True)
    w.grad = sg.ones(3)
    with sg.no_grad():
        w.fill_(7.0)
    assert w.requires_grad and w.is_leaf
    assert_close(w.detach(), np.full(3, 7.0, np.float32))
    assert_close(w.grad, np.ones(3, np.float32))


def test_inplace_on_non_leaf_under_no_grad_changes_the_value_and_keeps_grad_fn():
    w = sg.ones(3, requires_grad=True)
    y = w * 2
    fn = y.grad_fn
    with sg.no_grad():
        y.zero_()
    assert y.grad_fn is fn and y.requires_grad
    assert_close(y.detach(), np.zeros(3, np.float32))


def test_uniform_on_integer_tensor_raises():
    with pytest.raises(RuntimeError, match="floating point"):
        sg.zeros(3, dtype=sg.int64).uniform_()


def test_param_after_fill_is_used_by_later_ops(device):
    w = sg.zeros(2, 2, device=device, requires_grad=True)
    with sg.no_grad():
        w.fill_(3.0)
    (w * w).sum().backward()
    assert_close(w.grad, np.full((2, 2), 6.0, np.float32))


# ----- masked_fill -----


def test_masked_fill_with_broadcast_mask(device):
    a = rand(2, 3, 4)
    (x,) = on(device, a)
    mask_np = np.array([True, False, True, False])
    out = x.masked_fill(sg.tensor(mask_np, device=device), -math.inf)
    assert_close(out, np.where(mask_np, -np.inf, a).astype(np.float32))


def test_masked_fill_keeps_integer_dtype(device):
    x = sg.tensor([1, 2, 3], device=device)
    out = x.masked_fill(x > 1, 0)
    assert out.dtype == sg.int64
    assert_close(out, np.array([1, 0, 0]))


def test_masked_fill_gradient_is_zero_where_filled():
    gradcheck(lambda t: t.masked_fill(sg.tensor([[True, False, False], [False, False, True]]), 5.0), rand(2, 3))


def test_masked_fill_rejects_non_bool_mask():
    with pytest.raises(RuntimeError, match="bool tensor"):
        sg.zeros(3).masked_fill(sg.tensor([1, 0, 1]), 0.0)


def test_masked_fill_rejects_mask_that_grows_the_tensor():
    with pytest.raises(RuntimeError, match="does not broadcast"):
        sg.zeros(3).masked_fill(sg.tensor([[True], [False]]), 0.0)


# ----- triu / tril -----


@pytest.mark.parametrize("diagonal", [-1, 0, 2])
def test_triu_and_tril_match_numpy_on_batched_rectangles(device, diagonal):
    a = rand(2, 3, 5)
    (x,) = on(device, a)
    assert_close(x.triu(diagonal), np.triu(a, diagonal))
    assert_close(x.tril(diagonal), np.tril(a, diagonal))


def test_triu_gradient_passes_only_the_kept_triangle():
    gradcheck(lambda t: t.triu(1), rand(4, 4))


def test_causal_mask_with_tril_and_masked_fill_gives_causal_softmax(device):
    scores = rand(2, 4, 4)
    (s,) = on(device, scores)
    causal = sg.ones(4, 4, device=device).tril() == 0
    probs = s.masked_fill(causal, -math.inf).softmax(-1).numpy()
    assert np.allclose(np.triu(probs, 1), 0)
    np.testing.assert_allclose(probs.sum(-1), 1, rtol=1e-5)


@pytest.mark.parametrize("dtype", [sg.bool, sg.int64, sg.float32])
def test_triu_and_tril_keep_the_dtype(device, dtype):
    # torch.ones(3, 4, dtype=torch.bool).triu(1) is a bool mask, ready for masked_fill
    x = sg.ones(3, 4, dtype=dtype, device=device)
    upper, lower = x.triu(1), x.tril()
    assert upper.dtype == dtype and lower.dtype == dtype
    np.testing.assert_array_equal(upper.numpy(), np.triu(np.ones((3, 4)), 1).astype(upper.numpy().dtype))
    scores = sg.zeros(3, 4, device=device).masked_fill(sg.ones(3, 4, dtype=sg.bool, device=device).triu(1), -1.0)
    np.testing.assert_array_equal(scores.numpy(), -np.triu(np.ones((3, 4)), 1))


def test_triu_on_1d_raises():
    with pytest.raises(RuntimeError, match="at least 2 dimensions"):
        sg.zeros(3).triu()


# ----- unfold (sliding windows) -----


@pytest.mark.parametrize("size,step", [(2, 1), (3, 2), (1, 3), (5, 5)])
def test_unfold_matches_numpy_windows(device, size, step):
    a = rand(3, 7)
    (x,) = on(device, a)
    expected = np.lib.stride_tricks.sliding_window_view(a, size, axis=1)[:, ::step]
    assert_close(x.unfold(1, size, step), expected)


def test_unfold_is_a_zero_copy_view():
    x = sg.tensor(rand(4, 6)).realize()
    w = x.unfold(1, 3, 1)
    assert w.lazydata.base is x.lazydata


@pytest.mark.parametrize("size,step", [(2, 1), (3, 2), (2, 3)])
def test_unfold_gradient_adds_overlapping_windows(size, step):
    gradcheck(lambda t: t.unfold(1, size, step), rand(2, 8))


def test_unfold_too_large_raises():
    with pytest.raises(RuntimeError, match="maximum size for tensor at dimension 0 is 3 but size is 4"):
        sg.zeros(3).unfold(0, 4, 1)


# ----- erf -----


def test_erf_matches_math_erf(device):
    a = np.linspace(-5, 5, 101).astype(np.float32)
    (x,) = on(device, a)
    assert_close(x.erf(), np.array([math.erf(v) for v in a], np.float32), atol=3e-7, rtol=0)


def test_erf_gradient_is_exact_derivative():
    a = np.linspace(-3, 3, 13)
    x = sg.tensor(a, requires_grad=True)
    x.erf().sum().backward()
    assert_close(x.grad, 2 / np.sqrt(np.pi) * np.exp(-a * a), rtol=1e-12, atol=1e-12)


def test_erf_gradient_matches_finite_differences():
    gradcheck(lambda t: t.erf(), rand(3, 4, low=-2, high=2))


def test_top_level_functional_forms(device):
    a = rand(3, 3)
    (x,) = on(device, a)
    assert_close(sg.tril(x), np.tril(a))
    assert_close(sg.triu(x, 1), np.triu(a, 1))
    assert_close(sg.masked_fill(x, x > 0, 0.0), np.where(a > 0, 0, a).astype(np.float32))
    assert_close(sg.erf(x), np.vectorize(math.erf)(a).astype(np.float32), atol=3e-7)
