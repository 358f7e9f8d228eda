"""Matrix products against NumPy, on every device, with PyTorch's rules for 1-D,
2-D, batched and broadcast-batched operands."""

from __future__ import annotations

import numpy as np
import pytest

import smolgrad as sg
from helpers import assert_close, on, rand


def np_matmul(a, b):
    return np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(np.float32)


SHAPES = [
    pytest.param((5,), (5,), id="1d@1d"),
    pytest.param((4,), (4, 3), id="1d@2d"),
    pytest.param((3, 4), (4,), id="2d@1d"),
    pytest.param((3, 4), (4, 5), id="2d@2d"),
    pytest.param((2, 3, 4), (2, 4, 5), id="3d@3d"),
    pytest.param((2, 1, 4, 5), (3, 5, 6), id="broadcast_batch_4d@3d"),
    pytest.param((4, 5), (2, 5, 3), id="2d@3d"),
    pytest.param((2, 3, 4), (4, 5), id="3d@2d"),
    pytest.param((2, 3, 4), (4,), id="3d@1d"),
    pytest.param((4,), (2, 4, 3), id="1d@3d"),
    pytest.param((1, 1), (1, 1), id="1x1@1x1"),
    pytest.param((1, 7), (7, 1), id="1xK@Kx1"),
    pytest.param((7, 1), (1, 6), id="Mx1@1xN"),
    pytest.param((1, 9), (9, 4), id="1xK@KxN"),
]


@pytest.mark.parametrize("sa,sb", SHAPES)
def test_matmul_shapes(device, sa, sb):
    a, b = rand(*sa, seed=1), rand(*sb, seed=2)
    x, y = on(device, a, b)
    out = x @ y
    assert out.dtype == sg.float32
    assert_close(out, np_matmul(a, b), rtol=1e-5, atol=1e-5)


def test_matmul_function_and_method_match_operator(device):
    a, b = rand(3, 4, seed=3), rand(4, 2, seed=4)
    x, y = on(device, a, b)
    assert_close(sg.matmul(x, y), np_matmul(a, b), rtol=1e-5)
    assert_close(x.matmul(y), np_matmul(a, b), rtol=1e-5)


def test_dot(device):
    a, b = rand(6, seed=5), rand(6, seed=6)
    x, y = on(device, a, b)
    out = sg.dot(x, y)
    assert out.shape == ()
    assert_close(out, np.float32(a.astype(np.float64) @ b.astype(np.float64)), rtol=1e-5)


def test_matmul_257x130_at_130x67(device):
    a, b = rand(257, 130, seed=7), rand(130, 67, seed=8)
    x, y = on(device, a, b)
    assert_close(x @ y, np_matmul(a, b), rtol=1e-4, atol=1e-4)


def test_matmul_256_square(device):
    a, b = rand(256, 256, seed=9), rand(256, 256, seed=10)
    x, y = on(device, a, b)
    assert_close(x @ y, np_matmul(a, b), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("which", ["a", "b", "both"])
def test_matmul_transposed_operands(device, which):
    a, b = rand(5, 3, seed=11), rand(4, 5, seed=12)  # a.T is 3x5, b.T is 5x4
    x, y = on(device, a, b)
    if which == "a":
        na, nb, ta, tb = a.T, b.T.copy(), x.T, y.T.contiguous()
    elif which == "b":
        na, nb, ta, tb = a.T.copy(), b.T, x.T.contiguous(), y.T
    else:
        na, nb, ta, tb = a.T, b.T, x.T, y.T
    assert_close(ta @ tb, np_matmul(na, nb), rtol=1e-5)


def test_matmul_batched_transposed_and_sliced_operands(device):
    a, b = rand(2, 6, 3, seed=13), rand(2, 8, 4, seed=14)
    x, y = on(device, a, b)
    xa = x.transpose(1, 2)  # (2, 3, 6)
    yb = y[:, ::2, :].flip(2)  # (2, 4, 4)
    na, nb = a.transpose(0, 2, 1), b[:, ::2, :][:, :, ::-1]
    assert_close(xa[:, :, 2:] @ yb, np_matmul(na[:, :, 2:], nb), rtol=1e-5)


def test_matmul_with_expanded_operand(device):
    a, b = rand(1, 4, seed=15), rand(4, 3, seed=16)
    x, y = on(device, a, b)
    assert_close(x.expand(5, 4) @ y, np_matmul(np.broadcast_to(a, (5, 4)), b), rtol=1e-5)


def test_matmul_promotes_int_with_float(device):
    a = np.array([[1, 2], [3, 4]], np.int32)
    b = rand(2, 3, seed=17)
    (x,) = on(device, a, dtype=sg.int32)
    (y,) = on(device, b)
    out = x @ y
    assert out.dtype == sg.float32
    assert_close(out, np_matmul(a.astype(np.float32), b), rtol=1e-5)


def test_matmul_float64_on_numpy():
    a, b = np.random.default_rng(0).standard_normal((3, 4)), np.random.default_rng(1).standard_normal((4, 2))
    out = sg.tensor(a) @ sg.tensor(b)
    assert out.dtype == sg.float64
    np.testing.assert_allclose(out.numpy(), a @ b, rtol=1e-12)


@pytest.mark.parametrize(
    "sa,sb",
    [((3, 4), (5, 6)), ((4,), (5,)), ((2, 3), (4,)), ((2, 3, 4), (2, 5, 6))],
    ids=["2d", "1d", "2d@1d", "3d"],
)
def test_matmul_shape_mismatch_names_both_shapes(device, sa, sb):
    x, y = on(device, rand(*sa), rand(*sb))
    pattern = rf"{tuple(sa)!r}.*{tuple(sb)!r}".replace("(", r"\(").replace(")", r"\)")
    with pytest.raises(RuntimeError, match=pattern):
        x @ y


def test_matmul_incompatible_batch_raises(device):
    x, y = on(device, rand(2, 3, 4), rand(3, 4, 5))
    with pytest.raises(RuntimeError):
        x @ y


def test_matmul_of_0d_raises(device):
    x, y = on(device, np.array(2.0, np.float32), rand(3))
    with pytest.raises(RuntimeError):
        x @ y


def test_matmul_of_int_tensors_raises(device):
    x, y = on(device, np.ones((2, 2), np.int32), np.ones((2, 2), np.int32), dtype=sg.int32)
    with pytest.raises(TypeError):
        x @ y


def test_matmul_with_zero_inner_dim_is_zeros(device):
    x, y = on(device, np.zeros((3, 0), np.float32), np.zeros((0, 4), np.float32))
    assert_close(x @ y, np.zeros((3, 4), np.float32))


def test_rmatmul_with_numpy_array_left(device):
    a, b = rand(2, 3, seed=18), rand(3, 2, seed=19)
    (y,) = on(device, b)
    out = a @ y
    assert isinstance(out, sg.Tensor)
    assert_close(out, np_matmul(a, b), rtol=1e-5)
