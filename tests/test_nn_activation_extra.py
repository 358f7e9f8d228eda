"""Activations of issue 12 (LeakyReLU, ELU, CELU, SELU, Softplus, Mish, Hardtanh, ReLU6,
Hardsigmoid, Hardswish, PReLU, LogSigmoid, Softsign, Tanhshrink) against NumPy versions of
PyTorch's documented formulas: forward, gradients, torch's gradients at the kinks, extreme
values, modules and bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

import smolgrad as sg
import smolgrad.nn.functional as F
from smolgrad import nn
from helpers import assert_close, gradcheck, on, rand, strided_variants

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def softplus_np(x, beta=1.0, threshold=20.0):
    bx = beta * x
    with np.errstate(over="ignore"):
        soft = np.log1p(np.exp(-np.abs(bx))) + np.maximum(bx, 0)
    return np.where(bx > threshold, x, soft / beta)


def elu_np(x, alpha=1.0):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


# name -> (functional, NumPy reference of torch's formula, module)
ACTIVATIONS = {
    "leaky_relu": (F.leaky_relu, lambda x: np.where(x > 0, x, 0.01 * x), nn.LeakyReLU()),
    "leaky_relu_0.2": (lambda x: F.leaky_relu(x, 0.2), lambda x: np.where(x > 0, x, 0.2 * x), nn.LeakyReLU(0.2)),
    "elu": (F.elu, elu_np, nn.ELU()),
    "elu_0.5": (lambda x: F.elu(x, alpha=0.5), lambda x: elu_np(x, 0.5), nn.ELU(alpha=0.5)),
    "celu_2": (
        lambda x: F.celu(x, alpha=2.0),
        lambda x: np.maximum(x, 0) + np.minimum(0, 2.0 * np.expm1(np.minimum(x, 0) / 2.0)),
        nn.CELU(alpha=2.0),
    ),
    "selu": (F.selu, lambda x: SELU_SCALE * elu_np(x, SELU_ALPHA), nn.SELU()),
    "softplus": (F.softplus, softplus_np, nn.Softplus()),
    "softplus_beta": (
        lambda x: F.softplus(x, beta=2.0, threshold=3.0),
        lambda x: softplus_np(x, 2.0, 3.0),
        nn.Softplus(beta=2.0, threshold=3.0),
    ),
    "mish": (F.mish, lambda x: x * np.tanh(softplus_np(x, 1.0, np.inf)), nn.Mish()),
    "hardtanh": (F.hardtanh, lambda x: np.clip(x, -1, 1), nn.Hardtanh()),
    "hardtanh_range": (lambda x: F.hardtanh(x, -2.0, 0.5), lambda x: np.clip(x, -2, 0.5), nn.Hardtanh(-2.0, 0.5)),
    "relu6": (F.relu6, lambda x: np.minimum(np.maximum(x, 0), 6), nn.ReLU6()),
    "hardsigmoid": (F.hardsigmoid, lambda x: np.clip(x / 6 + 0.5, 0, 1), nn.Hardsigmoid()),
    "hardswish": (F.hardswish, lambda x: x * np.clip(x + 3, 0, 6) / 6, nn.Hardswish()),
    "logsigmoid": (F.logsigmoid, lambda x: -softplus_np(-x, 1.0, np.inf), nn.LogSigmoid()),
    "softsign": (F.softsign, lambda x: x / (1 + np.abs(x)), nn.Softsign()),
    "tanhshrink": (F.tanhshrink, lambda x: x - np.tanh(x), nn.Tanhshrink()),
}
NAMES = list(ACTIVATIONS)
# the kinks and thresholds of the formulas above, and values around them
SPECIAL = np.array([-8, -3.0, -2.5, -1, -0.5, 0, 0.5, 1, 1.5, 2.5, 3, 6, 7, 25], dtype=np.float32)


@pytest.mark.parametrize("name", NAMES)
def test_forward_matches_torch_formula(device, name):
    fn, ref, _ = ACTIVATIONS[name]
    a = np.concatenate([rand(5, 7, low=-8, high=8).ravel(), SPECIAL]).reshape(7, 7)
    (x,) = on(device, a)
    assert_close(fn(x), ref(a.astype(np.float64)).astype(np.float32), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_forward_on_non_contiguous_views(device, name):
    fn, ref, _ = ACTIVATIONS[name]
    a = rand(6, 5, low=-6, high=6)
    for _, view, np_view in strided_variants(a):
        (x,) = on(device, a)
        assert_close(fn(view(x)), ref(np_view(a).astype(np.float64)).astype(np.float32), atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_match_finite_differences(name):
    fn, _, _ = ACTIVATIONS[name]
    a = rand(3, 5, low=-5, high=5, seed=3).astype(np.float64)
    a[np.abs(a) < 0.05] += 0.1  # keep finite differences off the kink at 0
    gradcheck(fn, a)


@pytest.mark.parametrize("name", NAMES)
def test_module_matches_functional(device, name):
    fn, _, module = ACTIVATIONS[name]
    (x,) = on(device, rand(2, 3, 4, low=-5, high=5))
    assert_close(module(x), fn(x).numpy(), rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_rejects_integer_input(name):
    fn, _, _ = ACTIVATIONS[name]
    op = name.rsplit("_", 1)[0] if name not in ("leaky_relu",) and "_" in name else name
    with pytest.raises(RuntimeError, match=f"^{op}: expected a floating point input, got int64"):
        fn(sg.tensor([1, 2, 3]))


def grad_at(fn, values, device="numpy"):
    x = sg.tensor(np.asarray(values, dtype=np.float32), device=device, requires_grad=True)
    fn(x).sum().backward()
    return x.grad.numpy()


def test_gradients_at_kinks_follow_torch(device):
    # torch: leaky_relu/elu take the negative branch at 0; hardtanh, relu6 and hardsigmoid
    # pass no gradient at their bounds; hardswish's is (2x + 3) / 6 on [-3, 3] inclusive
    assert_close(grad_at(lambda x: F.leaky_relu(x, 0.2), [0.0], device), [0.2])
    assert_close(grad_at(lambda x: F.elu(x, 0.5), [0.0], device), [0.5])
    assert_close(grad_at(F.hardtanh, [-1.0, 1.0, 0.0], device), [0.0, 0.0, 1.0])
    assert_close(grad_at(F.relu6, [0.0, 6.0, 3.0], device), [0.0, 0.0, 1.0])
    assert_close(grad_at(F.hardsigmoid, [-3.0, 3.0, 0.0], device), [0.0, 0.0, 1 / 6])
    assert_close(grad_at(F.hardswish, [-3.5, -3.0, 3.0, 3.5], device), [0.0, -0.5, 1.5, 1.0])
    assert_close(grad_at(F.softsign, [0.0], device), [1.0])


@pytest.mark.parametrize("name", ["softplus", "logsigmoid", "mish", "elu", "selu", "celu_2", "softplus_beta", "tanhshrink"])
def test_extreme_inputs_give_finite_values_and_gradients(device, name):
    fn, ref, _ = ACTIVATIONS[name]
    a = np.array([-1e4, -200.0, -90.0, 90.0, 200.0, 1e4], dtype=np.float32)
    x = sg.tensor(a, device=device, requires_grad=True)
    out = fn(x)
    out.sum().backward()
    got = out.detach().numpy()
    assert np.isfinite(got).all() and np.isfinite(x.grad.numpy()).all()
    with np.errstate(over="ignore"):
        assert_close(got, ref(a.astype(np.float64)).astype(np.float32), rtol=1e-6, atol=1e-30)  # GPUs flush denormals


def test_softplus_and_logsigmoid_keep_precision_in_the_tails(device):
    # log(1 + exp(-30)) rounds to 0 in float32; torch's log1p gives exp(-30)
    a = np.array([-30.0, -17.0, -1e-3, 1e-3, 17.0, 30.0], dtype=np.float32)
    (x,) = on(device, a)
    a64 = a.astype(np.float64)
    assert_close(F.softplus(x), np.log1p(np.exp(a64)), rtol=1e-5, atol=0)
    assert_close(F.logsigmoid(x), -np.log1p(np.exp(-a64)), rtol=1e-5, atol=0)


def test_softplus_gradient_is_sigmoid_for_large_magnitudes(device):
    a = np.array([-1e4, -50.0, -5.0, 0.0, 5.0, 19.0, 50.0, 1e4], dtype=np.float32)
    expected = 1 / (1 + np.exp(-np.clip(a.astype(np.float64), -700, 700)))
    expected[a > 20] = 1.0  # linear above the threshold
    assert_close(grad_at(F.softplus, a, device), expected.astype(np.float32), rtol=1e-6, atol=1e-7)
    sigmoid_neg = 1 / (1 + np.exp(np.clip(a.astype(np.float64), -700, 700)))  # d logsigmoid / dx
    assert_close(grad_at(F.logsigmoid, a, device), sigmoid_neg.astype(np.float32), rtol=1e-5, atol=1e-7)


def test_elu_and_selu_are_accurate_near_zero_in_float64():
    a = np.array([-1e-9, -1e-5, -0.009, -0.011, -0.5])
    x = sg.tensor(a, device="numpy")
    assert_close(F.elu(x), np.expm1(a), rtol=1e-13, atol=0)
    assert_close(F.selu(x), SELU_SCALE * SELU_ALPHA * np.expm1(a), rtol=1e-13, atol=0)
    assert_close(F.softplus(sg.tensor(-a - 30)), np.log1p(np.exp(-a - 30)), rtol=1e-13, atol=0)


# ----- PReLU -----


def prelu_np(x, w):
    w = w.reshape((1, -1) + (1,) * (x.ndim - 2)) if w.size > 1 else w.reshape(())
    return np.where(x > 0, x, w * x)


@pytest.mark.parametrize("shape", [(3, 4, 5, 2), (3, 4), (5, 4, 3)])
def test_prelu_per_channel_matches_formula(device, shape):
    a = rand(*shape, low=-3, high=3)
    w = np.array([0.1, -0.5, 0.25, 2.0], dtype=np.float32)
    x, wt = on(device, a, w)
    assert_close(F.prelu(x, wt), prelu_np(a, w), atol=1e-6)


def test_prelu_shared_weight_on_any_rank(device):
    w = np.array([0.3], dtype=np.float32)
    for shape in [(), (5,), (2, 3, 4)]:
        a = rand(*shape, low=-2, high=2) if shape else np.float32(-1.5)
        x, wt = on(device, np.asarray(a), w)
        assert_close(F.prelu(x, wt), np.where(a > 0, a, 0.3 * a).astype(np.float32), atol=1e-7)


def test_prelu_gradients_for_input_and_weight():
    a = rand(3, 4, 2, low=-2, high=2, seed=5).astype(np.float64)
    a[np.abs(a) < 0.05] += 0.1
    gradcheck(F.prelu, a, np.array([0.2, -0.3, 0.5, 1.5]))
    gradcheck(F.prelu, a, np.array([0.2]))


def test_prelu_rejects_weight_that_matches_no_channel_count():
    with pytest.raises(RuntimeError, match="prelu: weight must be 1-D with 1 or 4"):
        F.prelu(sg.zeros(2, 4, 3), sg.zeros(3))
    with pytest.raises(RuntimeError, match="prelu: weight must be 1-D"):
        F.prelu(sg.zeros(2, 4), sg.zeros(2, 2))


def test_prelu_module_parameter_init_state_dict_and_training(device):
    m = nn.PReLU(num_parameters=3, init=0.1, device=device)
    assert [k for k, _ in m.named_parameters()] == ["weight"]
    assert m.weight.shape == (3,) and m.weight.requires_grad
    assert_close(m.weight, np.full(3, 0.1, dtype=np.float32))
    w = np.array([0.5, -1.0, 2.0], dtype=np.float32)
    m.load_state_dict({"weight": sg.tensor(w)})
    a = rand(2, 3, 4, low=-2, high=2)
    (x,) = on(device, a)
    out = m(x)
    assert_close(out, prelu_np(a, w), atol=1e-6)
    out.sum().backward()
    expected = np.where(a > 0, 0.0, a).sum(axis=(0, 2))
    assert_close(m.weight.grad, expected, atol=1e-5)
    assert repr(m) == "PReLU(num_parameters=3)"


# ----- modules: arguments, repr, bad arguments -----


def test_module_attributes_and_repr_follow_torch():
    assert repr(nn.LeakyReLU(0.2, inplace=True)) == "LeakyReLU(negative_slope=0.2, inplace=True)"
    assert repr(nn.ELU()) == "ELU(alpha=1.0)"
    assert repr(nn.Softplus(beta=2, threshold=10)) == "Softplus(beta=2, threshold=10)"
    assert repr(nn.Hardtanh(-2.0, 2.0)) == "Hardtanh(min_val=-2.0, max_val=2.0)"
    assert repr(nn.ReLU6()) == "ReLU6()"
    r6 = nn.ReLU6()
    assert (r6.min_val, r6.max_val) == (0.0, 6.0) and isinstance(r6, nn.Hardtanh)
    assert nn.LeakyReLU().negative_slope == 0.01 and nn.CELU().alpha == 1.0


def test_inplace_flag_writes_the_result_into_the_input(device):
    a = rand(4, 3, low=-3, high=3)
    (x,) = on(device, a)
    assert nn.LeakyReLU(0.1, inplace=True)(x) is x  # as torch: the input is overwritten
    assert_close(x, np.where(a > 0, a, 0.1 * a), atol=1e-7)


def test_bad_hyperparameters_raise_clear_errors():
    with pytest.raises(ValueError, match="Hardtanh: max_val"):
        nn.Hardtanh(1.0, -1.0)
    with pytest.raises(ValueError, match="hardtanh: max_val"):
        F.hardtanh(sg.zeros(3), 2.0, 1.0)
    with pytest.raises(ValueError, match="celu: alpha must be nonzero"):
        F.celu(sg.zeros(3), alpha=0.0)
    with pytest.raises(ValueError, match="PReLU: num_parameters"):
        nn.PReLU(0)


def test_activations_train_a_tiny_model_identically_on_both_devices(webgpu):
    # a forward and backward through a stack of the new activations, webgpu against numpy
    a = rand(4, 6, low=-4, high=4)
    results = []
    for dev in ("numpy", webgpu):
        x = sg.tensor(a, device=dev, requires_grad=True)
        y = nn.Sequential(nn.LeakyReLU(0.1), nn.ELU(), nn.Softplus(2.0, 5.0), nn.Hardswish(), nn.Mish())(x)
        y = F.logsigmoid(y).sum() + F.selu(x).sum() + F.softsign(x).sum() + F.hardtanh(x, -2, 2).sum()
        y.backward()
        results.append((y.item(), x.grad.numpy()))
    assert math.isclose(results[0][0], results[1][0], rel_tol=1e-5)
    assert_close(results[1][1], results[0][1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_each_activation_is_one_fused_kernel(device, name, monkeypatch):
    monkeypatch.setenv("SMOLGRAD_FUSION", "1")
    fn, ref, _ = ACTIVATIONS[name]
    a = rand(33, low=-8, high=8)
    (x,) = on(device, a)
    x.realize()
    out = fn(x)
    sg.reset_stats(device)
    sg.realize(out)
    assert sg.stats(device)["dispatches"] == 1
    assert_close(out, ref(a.astype(np.float64)).astype(np.float32), atol=1e-6)
