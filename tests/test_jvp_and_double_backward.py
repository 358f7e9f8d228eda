"""Every differentiable op: its JVP against central finite differences and against reverse
mode, its second derivative (double backward) against finite differences of its first
derivative, in float64 on numpy; and forward mode on webgpu against numpy."""

from __future__ import annotations

import numpy as np
import pytest

import smolgrad as sg
from smolgrad import function as Fn
from smolgrad.autograd import forward_ad as fwAD
from smolgrad.nn import functional as F

from helpers import assert_close

RNG = np.random.default_rng(0)


def _u(*shape, low=-1.0, high=1.0):
    return RNG.uniform(low, high, size=shape)


def _pos(*shape):
    return RNG.uniform(0.5, 2.0, size=shape)


# name -> (function of tensors, input arrays). One entry (at least) per Function in function.py.
CASES = {
    "neg": (lambda x: -x, [_u(3, 4)]),
    "exp": (lambda x: x.exp(), [_u(3, 4)]),
    "log": (lambda x: x.log(), [_pos(3, 4)]),
    "sqrt": (lambda x: x.sqrt(), [_pos(3, 4)]),
    "reciprocal": (lambda x: x.reciprocal(), [_pos(3, 4)]),
    "sin": (lambda x: x.sin(), [_u(3, 4)]),
    "cos": (lambda x: x.cos(), [_u(3, 4)]),
    "tanh": (lambda x: x.tanh(), [_u(3, 4)]),
    "sigmoid": (lambda x: x.sigmoid(), [_u(3, 4)]),
    "relu": (lambda x: x.relu() * x, [_u(3, 4)]),
    "abs": (lambda x: x.abs() * x, [_u(3, 4)]),
    "sign": (lambda x: x.sign() * x, [_u(3, 4)]),
    "erf": (lambda x: x.erf(), [_u(3, 4)]),
    "gelu": (lambda x: F.gelu(x), [_u(3, 4)]),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), [_u(3, 4)]),
    "layer_norm": (lambda x, w, b: F.layer_norm(x, (4,), w, b), [_u(3, 4), _u(4), _u(4)]),
    "layer_norm_2d_no_affine": (lambda x: F.layer_norm(x, (3, 4)), [_u(2, 3, 4)]),
    "contiguous": (lambda x: (x.T.contiguous() * x.T), [_u(3, 4)]),
    "add": (lambda x, y: (x + y) * x, [_u(3, 4), _u(3, 4)]),
    "sub": (lambda x, y: (x - y) * y, [_u(3, 4), _u(3, 4)]),
    "mul": (lambda x, y: x * y * x, [_u(3, 4), _u(3, 4)]),
    "div": (lambda x, y: x / y, [_u(3, 4), _pos(3, 4)]),
    "pow": (lambda x, y: x**y, [_pos(3, 4), _u(3, 4)]),
    "pow_scalar": (lambda x: x**3, [_u(3, 4)]),
    "maximum": (lambda x, y: x.maximum(y) * x, [_u(3, 4), _u(3, 4)]),
    "minimum": (lambda x, y: x.minimum(y) * y, [_u(3, 4), _u(3, 4)]),
    "where": (lambda x, y: sg.where(x > 0, x * x, y * x), [_u(3, 4), _u(3, 4)]),
    "sum": (lambda x: (x * x).sum(1), [_u(3, 4)]),
    "mean_keepdim": (lambda x: (x * x).mean(0, keepdim=True) * x, [_u(3, 4)]),
    "amax": (lambda x: (x * x).amax(1), [_u(3, 4)]),
    "amin": (lambda x: (x * x * x).amin(0), [_u(3, 4)]),
    "matmul": (lambda a, b: (a @ b) * (a @ b), [_u(2, 3, 4), _u(2, 4, 5)]),
    "linear": (lambda x, w, b: F.linear(x, w, b).tanh(), [_u(3, 4), _u(5, 4), _u(5)]),
    "linear_no_bias": (lambda x, w: F.linear(x, w) ** 2, [_u(3, 4), _u(5, 4)]),
    "cross_entropy_mean": (lambda x: F.cross_entropy(x, sg.tensor([1, 0, 3], device=x.device)), [_u(3, 4)]),
    "cross_entropy_sum": (lambda x: F.cross_entropy(x, sg.tensor([1, -100, 3], device=x.device), reduction="sum"), [_u(3, 4)]),
    "cross_entropy_none": (lambda x: F.cross_entropy(x, sg.tensor([2, 0, 3], device=x.device), reduction="none"), [_u(3, 4)]),
    "gather": (lambda x: x.gather(1, sg.tensor([[0, 2], [1, 1], [3, 0]], device=x.device)) ** 2, [_u(3, 4)]),
    "scatter_add": (
        lambda x: Fn.ScatterAdd.apply(x * x, sg.tensor([[0, 2], [1, 1], [3, 0]], device=x.device), dim=1, shape=(3, 4)),
        [_u(3, 2)],
    ),
    "index_rows": (lambda x: x[sg.tensor([2, 0, 2], device=x.device)] * x[0], [_u(3, 4)]),
    "reshape": (lambda x: x.reshape(4, 3) * x.reshape(4, 3), [_u(3, 4)]),
    "permute": (lambda x: x.permute(2, 0, 1) * x.permute(2, 0, 1), [_u(2, 3, 4)]),
    "expand": (lambda x: x.expand(3, 4) * x, [_u(1, 4)]),
    "flip": (lambda x: x.flip(1) * x, [_u(3, 4)]),
    "pad": (lambda x: F.pad(x * x, (1, 2, 0, 1), value=0.5), [_u(3, 4)]),
    "slice_steps": (lambda x: x[1:, ::2] * x[:2, 1::2], [_u(3, 4)]),
    "unslice": (lambda x: Fn.Unslice.apply(x * x, bounds=((1, 3, 1), (0, 4, 2)), shape=(3, 5)), [_u(2, 2)]),
    "unfold": (lambda x: x.unfold(1, 3, 2) ** 2, [_u(2, 7)]),
    "conv2d": (lambda x, w: F.conv2d(x, w, stride=2, padding=1) ** 2, [_u(1, 2, 5, 5), _u(3, 2, 3, 3)]),
    "window_sum": (
        lambda x: Fn.WindowSum.apply(x * x, in_shape=(2, 7), dims=(1,), kernel=(3,), stride=(2,), dilation=(1,)),
        [_u(2, 3, 3)],
    ),
    "cast": (lambda x: x.float().double() * x, [_u(3, 4)]),
    "softmax": (lambda x: x.softmax(1), [_u(3, 4)]),
    "log_softmax": (lambda x: x.log_softmax(0), [_u(3, 4)]),
    "layer_norm": (lambda x: F.layer_norm(x, (4,)), [_u(3, 4)]),
    # tensor ops of issue 12: their Functions, and a few compositions
    "clone": (lambda x: x.clone() * x, [_u(3, 4)]),
    "rounding": (lambda x: (x * 3).floor() * x + (x * 3).round() * x.ceil() + x.trunc(), [_u(3, 4)]),
    "asin": (lambda x: x.asin(), [_u(3, 4, low=-0.9, high=0.9)]),
    "acos": (lambda x: x.acos(), [_u(3, 4, low=-0.9, high=0.9)]),
    "atan": (lambda x: x.atan(), [_u(3, 4, low=-3.0, high=3.0)]),
    "log1p": (lambda x: x.log1p(), [_pos(3, 4)]),
    "expm1": (lambda x: x.expm1(), [_u(3, 4)]),
    "atan2": (lambda y, x: sg.atan2(y, x), [_u(3, 4), _u(3, 4)]),
    "cumsum_cumprod": (lambda x: x.cumsum(1) * x.cumprod(1), [_u(3, 5)]),
    "prod": (lambda x: x.prod(1), [_u(3, 5)]),
    "einsum": (lambda a, b: sg.einsum("bij,bkj->bik", a, b) ** 2, [_u(2, 3, 4), _u(2, 5, 4)]),
    "vector_norm": (lambda x: sg.linalg.vector_norm(x, 3, dim=1), [_u(3, 4)]),
    "sort_values": (lambda x: x.sort(1).values * x, [_u(3, 4)]),
    "remainder": (lambda x, y: (x * 4) % y, [_u(3, 4), _pos(3, 4)]),
}

# cast round-trips through float32: a large step (exact for its quadratic) and a float32 tolerance
TOLERANCE = {"cast": 1e-4}
EPS = {"cast": 1e-2}


def _tensors(arrays, device="numpy", dtype=sg.float64, requires_grad=False):
    return [sg.tensor(a, dtype=dtype, device=device, requires_grad=requires_grad) for a in arrays]


def _jvp(fn, arrays, tangents, device="numpy", dtype=sg.float64):
    with fwAD.dual_level():
        duals = [fwAD.make_dual(x, t) for x, t in zip(_tensors(arrays, device, dtype), _tensors(tangents, device, dtype))]
        out = fn(*duals)
        primal, tangent = fwAD.unpack_dual(out)
    assert tangent is not None
    return primal.numpy(), tangent.numpy()


@pytest.mark.parametrize("name", sorted(CASES))
def test_jvp_matches_finite_differences(name):
    fn, arrays = CASES[name]
    tangents = [_u(*a.shape) for a in arrays]
    value, tangent = _jvp(fn, arrays, tangents)
    np.testing.assert_allclose(value, fn(*_tensors(arrays)).numpy(), rtol=1e-12, atol=1e-12)
    eps = EPS.get(name, 1e-6)
    plus = fn(*_tensors([a + eps * t for a, t in zip(arrays, tangents)])).numpy()
    minus = fn(*_tensors([a - eps * t for a, t in zip(arrays, tangents)])).numpy()
    tol = TOLERANCE.get(name, 1e-6)
    np.testing.assert_allclose(tangent, (plus - minus) / (2 * eps), rtol=tol, atol=tol)


@pytest.mark.parametrize("name", sorted(CASES))
def test_jvp_is_the_transpose_of_vjp(name):
    """<u, J v> == <J^T u, v> for random u, v."""
    fn, arrays = CASES[name]
    tangents = [_u(*a.shape) for a in arrays]
    _, jv = _jvp(fn, arrays, tangents)
    u = _u(*jv.shape)
    xs = _tensors(arrays, requires_grad=True)
    grads = sg.autograd.grad(fn(*xs), xs, grad_outputs=sg.tensor(u, dtype=sg.float64))
    lhs = float((u * jv).sum())
    rhs = sum(float((g.numpy() * t).sum()) for g, t in zip(grads, tangents))
    tol = TOLERANCE.get(name, 1e-10)
    assert lhs == pytest.approx(rhs, rel=tol, abs=tol)


@pytest.mark.parametrize("name", sorted(CASES))
def test_second_derivative_matches_finite_differences_of_the_gradient(name):
    """Double backward: d/dx <grad_x <w, f(x)>, v> against (grad(x + eps v) - grad(x - eps v)) / 2 eps."""
    fn, arrays = CASES[name]
    w = _u(*fn(*_tensors(arrays)).shape)
    vs = [_u(*a.shape) for a in arrays]

    def gradient(arrs, create_graph=False):
        xs = _tensors(arrs, requires_grad=True)
        s = (fn(*xs) * sg.tensor(w, dtype=sg.float64)).sum()
        return xs, sg.autograd.grad(s, xs, create_graph=create_graph)

    xs, grads = gradient(arrays, create_graph=True)
    inner = sum((g * sg.tensor(v, dtype=sg.float64)).sum() for g, v in zip(grads, vs))
    if not inner.requires_grad:  # piecewise-linear functions: the gradient is locally constant
        second = [np.zeros_like(a) for a in arrays]
    else:
        second = [g.numpy() for g in sg.autograd.grad(inner, xs, allow_unused=True, materialize_grads=True)]
    eps = EPS.get(name, 1e-5)
    plus = gradient([a + eps * v for a, v in zip(arrays, vs)])[1]
    minus = gradient([a - eps * v for a, v in zip(arrays, vs)])[1]
    hv = [(p.numpy() - m.numpy()) / (2 * eps) for p, m in zip(plus, minus)]
    # the same second derivative read the other way: H is symmetric, so d/dx <grad, v> = H v
    tol = TOLERANCE.get(name, 1e-5)
    for got, want in zip(second, hv):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", sorted(n for n in CASES if n not in ("cast",)))
def test_forward_mode_on_webgpu_matches_numpy(name, webgpu):
    fn, arrays = CASES[name]
    arrays32 = [a.astype(np.float32) for a in arrays]
    tangents = [_u(*a.shape).astype(np.float32) for a in arrays]
    value_np, tangent_np = _jvp(fn, arrays32, tangents, "numpy", sg.float32)
    value_gpu, tangent_gpu = _jvp(fn, arrays32, tangents, webgpu, sg.float32)
    assert_close(value_gpu, value_np, rtol=1e-4, atol=1e-5)
    assert_close(tangent_gpu, tangent_np, rtol=1e-4, atol=1e-5)


def test_every_function_has_a_jvp_rule():
    from smolgrad.autograd import Function
    from smolgrad.tensor import ToDevice

    classes = [c for c in vars(Fn).values() if isinstance(c, type) and issubclass(c, Function) and c is not Function]
    missing = [c.__name__ for c in classes + [ToDevice] if c.jvp is Function.jvp]
    assert not missing, f"Functions without a JVP rule: {missing}"
