"""Reductions and scans of issue 12: cumsum, cumprod, prod, all, any, count_nonzero, norm,
linalg.vector_norm / matrix_norm / norm and dist."""

from __future__ import annotations

import math

import numpy as np
import pytest

import smolgrad as sg
from helpers import assert_close, gradcheck, on, rand


@pytest.mark.parametrize("shape,dim", [((7,), 0), ((3, 5), 1), ((3, 5), 0), ((2, 9, 3), -2), ((1,), 0), ((4, 0), 1)])
def test_cumsum_and_cumprod_match_numpy(shape, dim, device):
    a = rand(*shape, seed=1) + 0.5
    (t,) = on(device, a)
    assert_close(t.cumsum(dim), np.cumsum(a, dim), rtol=1e-5)
    assert_close(sg.cumprod(t, dim), np.cumprod(a, dim), rtol=1e-5)


def test_cumsum_on_noncontiguous_and_integer_inputs(device):
    a = rand(4, 6, seed=2)
    (t,) = on(device, a)
    assert_close(t.T.cumsum(1), np.cumsum(a.T, 1), rtol=1e-5)
    assert_close(t[:, ::2].cumsum(0), np.cumsum(a[:, ::2], 0), rtol=1e-5)
    i = sg.tensor([[3, -1, 4], [1, 5, -9]], device=device)
    assert i.cumsum(1).dtype == sg.int64
    assert_close(i.cumsum(1), np.cumsum([[3, -1, 4], [1, 5, -9]], 1))
    assert_close(i.cumprod(1), np.cumprod([[3, -1, 4], [1, 5, -9]], 1))
    b = sg.tensor([True, False, True, True], device=device)
    assert_close(b.cumsum(0), np.array([1, 1, 2, 3]))
    assert t.cumsum(0, dtype=sg.int32).dtype == sg.int32


def test_cumsum_and_cumprod_gradients():
    gradcheck(lambda t: t.cumsum(1), rand(3, 5, seed=3))
    gradcheck(lambda t: t.cumprod(0), rand(6, 2, seed=4))
    gradcheck(lambda t: t.cumprod(0), np.array([2.0, 0.0, 3.0, -1.5]))  # a zero in the running product


def test_cumsum_bad_dim():
    with pytest.raises(IndexError, match="cumsum"):
        sg.ones(2, 3).cumsum(2)


@pytest.mark.parametrize("shape,dim", [((7,), 0), ((3, 5), 1), ((3, 5), 0), ((2, 9, 3), 1), ((4, 0), 1), ((4, 0), 0)])
def test_prod_matches_numpy(shape, dim, device):
    a = rand(*shape, seed=5) + 0.5
    (t,) = on(device, a)
    assert_close(t.prod(dim), np.prod(a, dim), rtol=1e-5)
    assert_close(t.prod(dim, keepdim=True), np.prod(a, dim, keepdims=True), rtol=1e-5)
    assert_close(t.prod(), np.prod(a), rtol=1e-5)


def test_prod_of_integers_zeros_and_views(device):
    i = sg.tensor([[2, -3, 1], [4, 0, 5]], device=device)
    assert i.prod().dtype == sg.int64
    assert_close(i.prod(1), np.array([-6, 0]))
    assert_close(i.T.prod(1), np.array([8, 0, 5]))
    assert_close(sg.tensor(3.0, device=device).prod(), np.float32(3.0))


def test_prod_gradients_with_and_without_zeros():
    gradcheck(lambda t: t.prod(1), rand(3, 5, seed=6))
    gradcheck(lambda t: t.prod(), np.array([[2.0, 0.0], [3.0, -1.5], [0.5, 1.0]]))
    gradcheck(lambda t: t.prod(0), np.array([[2.0, 0.0], [0.0, -1.5], [0.5, 1.0]]))


def test_prod_rejects_dim_tuples():
    with pytest.raises(TypeError, match="prod"):
        sg.ones(2, 3).prod((0, 1))


def test_all_any_count_nonzero(device):
    a = np.array([[0.0, 1.0, 2.0], [0.0, 0.0, np.nan], [1.0, 1.0, 1.0]], np.float32)
    (t,) = on(device, a)
    assert_close(t.all(), np.array(np.all(a)))
    assert_close(t.any(), np.array(np.any(a)))
    assert_close(t.all(1), np.all(a, 1))
    assert_close(sg.any(t, 0, keepdim=True), np.any(a, 0, keepdims=True))
    assert_close(t.count_nonzero(1), np.count_nonzero(a, 1))
    b = sg.tensor([True, True], device=device)
    assert b.all().item() is True and (~b).any().item() is False
    assert_close(sg.zeros(0, device=device).all(), np.array(True))


# ----- norms -----


@pytest.mark.parametrize("ord", [2, 1, 3, 0.5, 0, math.inf, -math.inf, -1])
def test_vector_norm_matches_numpy(ord, device):
    a = rand(3, 4, seed=7)
    a[0, 0] = 0.0
    (t,) = on(device, a)
    assert_close(sg.linalg.vector_norm(t, ord), np.linalg.norm(a.reshape(-1), ord), rtol=1e-5)
    assert_close(sg.linalg.vector_norm(t, ord, dim=1), np.linalg.norm(a, ord, axis=1), rtol=1e-5)
    assert_close(sg.linalg.vector_norm(t, ord, dim=(0,), keepdim=True), np.linalg.norm(a, ord, axis=0, keepdims=True), rtol=1e-5)


def test_vector_norm_gradients_including_a_zero_vector():
    gradcheck(lambda t: sg.linalg.vector_norm(t, 2, dim=1), rand(3, 4, seed=8))
    gradcheck(lambda t: sg.linalg.vector_norm(t, 3, dim=0), rand(3, 4, seed=9))
    gradcheck(lambda t: t.norm(1), rand(3, 4, seed=10))
    x = sg.tensor(np.zeros((2, 3)), dtype=sg.float64, requires_grad=True)
    sg.linalg.vector_norm(x, dim=1).sum().backward()
    assert_close(x.grad, np.zeros((2, 3)))  # the subgradient 0, not nan (as torch)


@pytest.mark.parametrize("ord", ["fro", 1, -1, math.inf, -math.inf])
def test_matrix_norm_matches_numpy(ord, device):
    a = rand(2, 3, 4, seed=11)
    (t,) = on(device, a)
    expected = np.stack([np.linalg.norm(m, ord) for m in a])
    assert_close(sg.linalg.matrix_norm(t, ord), expected, rtol=1e-5)
    assert_close(sg.linalg.matrix_norm(t, ord, keepdim=True), expected.reshape(2, 1, 1), rtol=1e-5)
    assert_close(sg.linalg.norm(t[0], ord), np.linalg.norm(a[0], ord), rtol=1e-5)


def test_tensor_norm_linalg_norm_and_dist(device):
    a, b = rand(3, 4, seed=12), rand(4, seed=13)
    ta, tb = on(device, a, b)
    assert_close(ta.norm(), np.linalg.norm(a), rtol=1e-5)
    assert_close(sg.norm(ta, dim=1, keepdim=True), np.linalg.norm(a, axis=1, keepdims=True), rtol=1e-5)
    assert_close(ta.norm(p=1, dim=0), np.abs(a).sum(0), rtol=1e-5)
    assert_close(sg.linalg.norm(ta), np.linalg.norm(a), rtol=1e-5)
    assert_close(sg.linalg.norm(ta, dim=1), np.linalg.norm(a, axis=1), rtol=1e-5)
    assert_close(ta.dist(tb), np.linalg.norm((a - b).reshape(-1)), rtol=1e-5)
    assert_close(sg.dist(ta, tb, 1), np.abs(a - b).sum(), rtol=1e-5)
    gradcheck(lambda x, y: x.dist(y, 3), a, b)


def test_norm_bad_inputs():
    x = sg.ones(3, 3)
    with pytest.raises(NotImplementedError, match="nuc"):
        x.norm("nuc")
    with pytest.raises(NotImplementedError, match="SVD"):
        sg.linalg.matrix_norm(x, 2)
    with pytest.raises(RuntimeError, match="floating point"):
        sg.linalg.vector_norm(sg.tensor([1, 2]))
    with pytest.raises(RuntimeError, match="at least 2 dimensions"):
        sg.linalg.matrix_norm(sg.ones(3))
    with pytest.raises(RuntimeError, match="empty"):
        sg.linalg.vector_norm(sg.ones(0), math.inf)
    with pytest.raises(IndexError, match="vector_norm"):
        sg.linalg.vector_norm(x, dim=2)
