"""Softmin, Softmax2d, GLU, Hardshrink, Softshrink and Threshold against NumPy versions of
PyTorch's formulas (forward, gradients, modules, errors), and the in-place activations
(Tensor.relu_ ..., F.relu_ ..., the `inplace=True` flag of the activation modules): the
tensor object is the result, views see it, autograd through it matches the out-of-place op."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from helpers import assert_close, gradcheck, noncontiguous_tensor, on, rand

import smolgrad as sg
import smolgrad.nn.functional as F
from smolgrad import nn

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def softmax_np(x, dim):
    e = np.exp(x - x.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)


def sigmoid_np(x):
    return 1 / (1 + np.exp(-x))


def elu_np(x, alpha=1.0):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def glu_np(x, dim=-1):
    a, b = np.split(x, 2, axis=dim)
    return a * sigmoid_np(b)


def softshrink_np(x, lambd=0.5):
    return np.where(x > lambd, x - lambd, np.where(x < -lambd, x + lambd, 0.0))


# name -> (functional, NumPy reference, module)
NEW_ACTIVATIONS = {
    "softmin_dim1": (lambda x: F.softmin(x, 1), lambda x: softmax_np(-x, 1), nn.Softmin(1)),
    "softmin_dim-1": (lambda x: F.softmin(x, dim=-1), lambda x: softmax_np(-x, -1), nn.Softmin(dim=-1)),
    "softmax2d": (lambda x: F.softmax(x, -3), lambda x: softmax_np(x, -3), nn.Softmax2d()),
    "glu": (F.glu, glu_np, nn.GLU()),
    "glu_dim1": (lambda x: F.glu(x, 1), lambda x: glu_np(x, 1), nn.GLU(dim=1)),
    "hardshrink": (F.hardshrink, lambda x: np.where(np.abs(x) > 0.5, x, 0.0), nn.Hardshrink()),
    "hardshrink_0.2": (lambda x: F.hardshrink(x, 0.2), lambda x: np.where(np.abs(x) > 0.2, x, 0.0), nn.Hardshrink(0.2)),
    "softshrink": (F.softshrink, softshrink_np, nn.Softshrink()),
    "softshrink_0.3": (lambda x: F.softshrink(x, lambd=0.3), lambda x: softshrink_np(x, 0.3), nn.Softshrink(0.3)),
    "threshold": (lambda x: F.threshold(x, 0.1, 20.0), lambda x: np.where(x > 0.1, x, 20.0), nn.Threshold(0.1, 20.0)),
}

SHAPES = [(3, 4, 6), (5, 2, 3, 4)]  # odd sizes; dim 1 and the last dim even for glu


def _input(shape, seed=0):
    x = rand(*shape, low=-2, high=2, seed=seed)
    # keep values off the kinks (|x| = 0.2, 0.3, 0.5, x = 0.1) so finite differences are smooth
    for k in (0.1, 0.2, 0.3, 0.5, -0.2, -0.3, -0.5):
        x = np.where(np.abs(x - k) < 0.02, x + 0.05, x)
    return x


@pytest.mark.parametrize("name", NEW_ACTIVATIONS)
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_matches_numpy(device, name, shape):
    fn, ref, module = NEW_ACTIVATIONS[name]
    a = _input(shape, seed=1)
    (x,) = on(device, a)
    expected = ref(a.astype(np.float64)).astype(np.float32)
    assert_close(fn(x), expected, rtol=1e-5, atol=1e-6)
    assert_close(module(x), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NEW_ACTIVATIONS)
def test_forward_on_a_noncontiguous_input(device, name):
    fn, ref, _ = NEW_ACTIVATIONS[name]
    a = _input((2, 4, 3, 6), seed=2)
    x = noncontiguous_tensor(a, device=device)
    assert_close(fn(x), ref(a.astype(np.float64)).astype(np.float32), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NEW_ACTIVATIONS)
def test_gradients_match_finite_differences(name):
    fn, _, _ = NEW_ACTIVATIONS[name]
    a = _input((2, 4, 3, 2), seed=3).astype(np.float64)
    gradcheck(fn, a)
    gradcheck(fn, a, noncontiguous=True)


def test_webgpu_gradients_match_numpy(webgpu):
    a = _input((2, 4, 3, 6), seed=4)
    w = rand(2, 2, 3, 6, seed=5)
    grads = {}
    for dev in ("numpy", webgpu):
        x, wt = on(dev, a, w)
        x.requires_grad_()
        y = F.glu(F.softshrink(x), 1) + F.softmin(F.hardshrink(x), 1)[:, :2] + F.threshold(x, 0.1, 2.0)[:, 2:]
        (y * wt).sum().backward()
        grads[dev] = x.grad.numpy()
    assert_close(grads[webgpu], grads["numpy"], rtol=1e-4, atol=1e-5)


def test_shrink_and_threshold_gradients_at_the_kinks():
    # torch: hardshrink and threshold pass no gradient at |x| = lambd / x = threshold, softshrink neither
    x = sg.tensor([-0.5, 0.5, 0.7, -0.7, 0.1], dtype=sg.float64, requires_grad=True)
    F.hardshrink(x).sum().backward()
    assert_close(x.grad, np.array([0, 0, 1, 1, 0.0]))
    x.grad = None
    F.softshrink(x).sum().backward()
    assert_close(x.grad, np.array([0, 0, 1, 1, 0.0]))
    x.grad = None
    F.threshold(x, 0.1, 5.0).sum().backward()
    assert_close(x.grad, np.array([0, 1, 1, 0, 0.0]))


def test_softmin_dtype_and_implicit_dim():
    a = rand(3, 4, seed=6)
    x = sg.tensor(a)
    out = F.softmin(x, 1, dtype=sg.float64)
    assert out.dtype == sg.float64
    assert_close(out, softmax_np(-a.astype(np.float64), 1))
    assert_close(F.softmin(sg.tensor([[0, 1]]), 1, dtype=sg.float32), softmax_np(-np.array([[0.0, 1.0]]), 1))
    with pytest.raises(TypeError, match="softmin: expected a Tensor"):
        F.softmin([1.0, 2.0], 0)
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmin"):
        out = F.softmin(x)  # 2-d: torch picks dim 1
    assert_close(out, softmax_np(-a, 1))
    with pytest.warns(UserWarning, match="Implicit dimension choice"):
        out = nn.Softmin()(sg.tensor(a[0]))  # 1-d: dim 0
    assert_close(out, softmax_np(-a[0], 0))


def test_softmin_and_softmax2d_stable_for_large_inputs(device):
    (x,) = on(device, np.array([[1e4, -1e4, 0.0]], dtype=np.float32))
    assert_close(F.softmin(x, 1), np.array([[0.0, 1.0, 0.0]]))
    (y,) = on(device, np.array([[[1e4]], [[-1e4]]], dtype=np.float32))
    assert_close(nn.Softmax2d()(y), np.array([[[1.0]], [[0.0]]]))


def test_threshold_keeps_an_integer_dtype():
    x = sg.tensor([-2, 0, 3, 5])
    out = F.threshold(x, 2, -1)
    assert out.dtype == x.dtype
    assert_close(out, np.array([-1, -1, 3, 5]))


def test_reprs():
    assert repr(nn.Softmin(dim=1)) == "Softmin(dim=1)"
    assert repr(nn.Softmax2d()) == "Softmax2d()"
    assert repr(nn.GLU()) == "GLU(dim=-1)"
    assert repr(nn.Hardshrink()) == "Hardshrink(0.5)"
    assert repr(nn.Softshrink(0.3)) == "Softshrink(0.3)"
    assert repr(nn.Threshold(0.1, 20)) == "Threshold(threshold=0.1, value=20)"
    assert repr(nn.Threshold(0.1, 20, inplace=True)) == "Threshold(threshold=0.1, value=20, inplace=True)"
    assert repr(nn.ReLU(inplace=True)) == "ReLU(inplace=True)" and repr(nn.ReLU()) == "ReLU()"
    assert repr(nn.SiLU(inplace=True)) == "SiLU(inplace=True)"


def test_errors_name_the_op_and_the_problem():
    with pytest.raises(RuntimeError, match=r"glu: Halving dimension must be even, but dimension 1 is size 3"):
        F.glu(sg.zeros(2, 3), 1)
    with pytest.raises(RuntimeError, match="glu"):
        nn.GLU()(sg.zeros(4, 5))
    with pytest.raises(RuntimeError, match="glu: does not support scalars"):
        F.glu(sg.tensor(1.0))
    with pytest.raises(IndexError, match="glu"):
        F.glu(sg.zeros(2, 4), 2)
    with pytest.raises(RuntimeError, match="softshrink: lambda must be greater or equal to 0, but found to be -0.1"):
        F.softshrink(sg.zeros(3), -0.1)
    with pytest.raises(ValueError, match="Softmax2d: expected input to be 3D or 4D, got 2D"):
        nn.Softmax2d()(sg.zeros(2, 3))
    for fn in (F.hardshrink, F.softshrink, F.glu, lambda t: F.softmin(t, 0)):
        with pytest.raises(RuntimeError, match="expected a floating point input"):
            fn(sg.tensor([1, 2]))
    with pytest.raises(TypeError, match="threshold: expected a Tensor"):
        F.threshold([1.0, 2.0], 0.0, 0.0)


# ----- in-place activations -----

# name -> (in-place call, out-of-place call, NumPy reference); inputs lie in (-2, 2), log_ gets
# |x| + 0.5, relu6 4x
INPLACE = {
    "Tensor.relu_": (lambda t: t.relu_(), lambda t: t.relu(), lambda x: np.maximum(x, 0)),
    "Tensor.sigmoid_": (lambda t: t.sigmoid_(), lambda t: t.sigmoid(), sigmoid_np),
    "Tensor.tanh_": (lambda t: t.tanh_(), lambda t: t.tanh(), np.tanh),
    "Tensor.log_": (lambda t: t.log_(), lambda t: t.log(), np.log),
    "F.relu_": (F.relu_, F.relu, lambda x: np.maximum(x, 0)),
    "F.relu(inplace)": (lambda t: F.relu(t, inplace=True), F.relu, lambda x: np.maximum(x, 0)),
    "F.elu_": (lambda t: F.elu_(t, 0.7), lambda t: F.elu(t, 0.7), lambda x: elu_np(x, 0.7)),
    "F.elu(inplace)": (lambda t: F.elu(t, inplace=True), F.elu, elu_np),
    "F.leaky_relu_": (lambda t: F.leaky_relu_(t, 0.2), lambda t: F.leaky_relu(t, 0.2), lambda x: np.where(x > 0, x, 0.2 * x)),
    "F.leaky_relu(inplace)": (lambda t: F.leaky_relu(t, inplace=True), F.leaky_relu, lambda x: np.where(x > 0, x, 0.01 * x)),
    "F.hardtanh_": (lambda t: F.hardtanh_(t, -0.5, 1.5), lambda t: F.hardtanh(t, -0.5, 1.5), lambda x: np.clip(x, -0.5, 1.5)),
    "F.hardtanh(inplace)": (lambda t: F.hardtanh(t, inplace=True), F.hardtanh, lambda x: np.clip(x, -1, 1)),
    "F.relu6(inplace)": (lambda t: F.relu6(t, inplace=True), F.relu6, lambda x: np.clip(x, 0, 6)),
    "F.selu_": (F.selu_, F.selu, lambda x: SELU_SCALE * elu_np(x, SELU_ALPHA)),
    "F.selu(inplace)": (lambda t: F.selu(t, inplace=True), F.selu, lambda x: SELU_SCALE * elu_np(x, SELU_ALPHA)),
    "F.celu_": (lambda t: F.celu_(t, 2.0), lambda t: F.celu(t, 2.0), lambda x: np.where(x > 0, x, 2 * np.expm1(x / 2))),
    "F.celu(inplace)": (lambda t: F.celu(t, inplace=True), F.celu, elu_np),
    "F.threshold_": (lambda t: F.threshold_(t, 0.1, 3.0), lambda t: F.threshold(t, 0.1, 3.0), lambda x: np.where(x > 0.1, x, 3.0)),
    "F.threshold(inplace)": (
        lambda t: F.threshold(t, 0.1, 3.0, inplace=True),
        lambda t: F.threshold(t, 0.1, 3.0),
        lambda x: np.where(x > 0.1, x, 3.0),
    ),
    "F.silu(inplace)": (lambda t: F.silu(t, inplace=True), F.silu, lambda x: x * sigmoid_np(x)),
    "F.mish(inplace)": (lambda t: F.mish(t, inplace=True), F.mish, lambda x: x * np.tanh(np.log1p(np.exp(x)))),
    "F.hardsigmoid(inplace)": (lambda t: F.hardsigmoid(t, inplace=True), F.hardsigmoid, lambda x: np.clip(x / 6 + 0.5, 0, 1)),
    "F.hardswish(inplace)": (lambda t: F.hardswish(t, inplace=True), F.hardswish, lambda x: x * np.clip(x + 3, 0, 6) / 6),
}


def _inplace_input(name, shape, seed):
    a = _input(shape, seed=seed)
    return {"Tensor.log_": np.abs(a) + 0.5, "F.relu6(inplace)": 4 * a}.get(name, a)


@pytest.mark.parametrize("name", INPLACE)
def test_inplace_writes_the_tensor_itself(device, name):
    inplace, _, ref = INPLACE[name]
    a = _inplace_input(name, (3, 5), seed=7)
    (x,) = on(device, a)
    out = inplace(x)
    assert out is x
    assert_close(x, ref(a.astype(np.float64)).astype(np.float32), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", INPLACE)
def test_inplace_through_a_view_changes_the_base(device, name):
    inplace, _, ref = INPLACE[name]
    a = _inplace_input(name, (4, 5), seed=8)
    (x,) = on(device, a)
    view, other = x.T[1:4:2], x[2]  # a strided, transposed view; and a sibling view overlapping it
    assert inplace(view) is view
    expected = a.copy()
    expected[:, 1:4:2] = ref(a[:, 1:4:2].astype(np.float64)).astype(np.float32)
    assert_close(x, expected, rtol=1e-5, atol=1e-6)
    assert_close(other, expected[2], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", INPLACE)
def test_autograd_through_inplace_matches_out_of_place(name):
    inplace, outplace, _ = INPLACE[name]
    a = _inplace_input(name, (3, 4), seed=9).astype(np.float64)
    w = rand(3, 4, seed=10).astype(np.float64)
    grads = []
    for fn in (inplace, outplace):
        x = sg.tensor(a, requires_grad=True)
        y = x * 1.0  # a non-leaf, as after a layer
        z = fn(y)
        (z * sg.tensor(w)).sum().backward()
        grads.append(x.grad.numpy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-12, atol=1e-12)
    gradcheck(lambda t: inplace(t * 1.0), a)


@pytest.mark.parametrize("name", INPLACE)
def test_inplace_on_a_leaf_that_requires_grad_raises(name):
    inplace, _, _ = INPLACE[name]
    x = sg.tensor(_inplace_input(name, (3,), seed=11), requires_grad=True)
    before = x.detach().numpy().copy()
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place operation"):
        inplace(x)
    with pytest.raises(RuntimeError, match="a view of a leaf Variable that requires grad"):
        inplace(x[1:])
    assert_close(x, before)  # unchanged
    with sg.no_grad():
        inplace(x)
    assert x.is_leaf and x.requires_grad


def test_inplace_relu_on_a_view_gives_the_base_the_right_gradient():
    a = np.array([[-1.0, 2.0, -3.0], [4.0, -5.0, 6.0]])
    x = sg.tensor(a, requires_grad=True)
    y = x * 2.0
    F.relu_(y[0])  # row 0 rectified, row 1 untouched
    y.sum().backward()
    assert_close(x.grad, np.array([[0.0, 2.0, 0.0], [2.0, 2.0, 2.0]]))


def test_saved_tensor_modified_in_place_is_refused_at_backward():
    x = sg.tensor([0.5, -1.0, 2.0], requires_grad=True)
    s = (x * 1.0).exp()  # exp saves its output for backward
    t = s * 2.0
    s.relu_()  # modifies exp's saved output
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        (t + s).sum().backward()


def test_inplace_errors_name_the_op():
    with pytest.raises(RuntimeError, match="elu_: expected a floating point input"):
        F.elu_(sg.tensor([1, 2]))
    with pytest.raises(ValueError, match="hardtanh_: max_val"):
        F.hardtanh_(sg.zeros(2), 1.0, -1.0)
    with pytest.raises(ValueError, match="celu_: alpha must be nonzero"):
        F.celu_(sg.zeros(2), 0.0)
    with pytest.raises(TypeError, match="relu_: expected a Tensor"):
        F.relu_([1.0])
    with pytest.raises(RuntimeError, match="sigmoid_.*Long"):
        sg.tensor([1, 2]).sigmoid_()
    x = sg.tensor([1, -2])
    assert F.relu_(x) is x and x.tolist() == [1, 0]  # relu keeps integer dtypes


# ----- the `inplace` flag of the activation modules -----

MODULES = {
    "ReLU": (nn.ReLU, F.relu),
    "LeakyReLU": (lambda inplace: nn.LeakyReLU(0.1, inplace=inplace), lambda t: F.leaky_relu(t, 0.1)),
    "ELU": (lambda inplace: nn.ELU(0.5, inplace=inplace), lambda t: F.elu(t, 0.5)),
    "CELU": (lambda inplace: nn.CELU(1.5, inplace=inplace), lambda t: F.celu(t, 1.5)),
    "SELU": (nn.SELU, F.selu),
    "Hardtanh": (lambda inplace: nn.Hardtanh(-0.5, 0.5, inplace=inplace), lambda t: F.hardtanh(t, -0.5, 0.5)),
    "ReLU6": (nn.ReLU6, F.relu6),
    "SiLU": (nn.SiLU, F.silu),
    "Mish": (nn.Mish, F.mish),
    "Hardsigmoid": (nn.Hardsigmoid, F.hardsigmoid),
    "Hardswish": (nn.Hardswish, F.hardswish),
    "Threshold": (lambda inplace: nn.Threshold(0.2, -1.0, inplace=inplace), lambda t: F.threshold(t, 0.2, -1.0)),
}


@pytest.mark.parametrize("name", MODULES)
def test_module_inplace_flag(device, name):
    make, fn = MODULES[name]
    a = rand(3, 5, low=-4, high=4, seed=12)
    (x,) = on(device, a)
    expected = fn(sg.tensor(a)).numpy()
    out = make(False)(x)
    assert out is not x
    assert_close(x, a)  # left alone
    assert_close(out, expected, rtol=1e-5, atol=1e-6)
    module = make(True)
    assert module.inplace and "inplace=True" in repr(module)
    assert module(x) is x
    assert_close(x, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", MODULES)
def test_module_inplace_in_a_network_trains_like_out_of_place(name):
    make, _ = MODULES[name]
    a = rand(4, 3, seed=13).astype(np.float64)
    grads = []
    for inplace in (False, True):
        sg.manual_seed(0)
        net = nn.Sequential(nn.Linear(3, 5, dtype=sg.float64), make(inplace), nn.Linear(5, 2, dtype=sg.float64))
        net(sg.tensor(a)).square().sum().backward()
        grads.append([p.grad.numpy() for p in net.parameters()])
    for g_out, g_in in zip(*grads):
        np.testing.assert_allclose(g_in, g_out, rtol=1e-12, atol=1e-12)


def test_module_inplace_on_a_leaf_that_requires_grad_raises():
    x = sg.tensor([1.0, -1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="relu_: a leaf Variable that requires grad"):
        nn.ReLU(inplace=True)(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with sg.no_grad():
            nn.ReLU(inplace=True)(x)
    assert_close(x, np.array([1.0, 0.0], dtype=np.float32))
