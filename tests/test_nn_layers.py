"""Layers: PyTorch's default initialisation, forward against NumPy or the functional
form, repr; clip_grad_norm_; and a small model that trains on both devices."""

from __future__ import annotations

import math

import numpy as np
import pytest

import smolgrad as sg
import smolgrad.nn.functional as F
from smolgrad import nn
from smolgrad.nn.utils import clip_grad_norm_, clip_grad_value_
from helpers import assert_close, on, rand

# ----- default initialisation -----


def test_linear_default_init_is_uniform_within_one_over_sqrt_fan_in():
    lin = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    w, b = lin.weight.detach().numpy(), lin.bias.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert np.abs(b).max() <= bound and np.abs(b).max() > 0.9 * bound
    assert w.std() == pytest.approx(bound / math.sqrt(3), rel=0.02)


def test_conv2d_default_init_uses_receptive_field_in_fan_in():
    conv = nn.Conv2d(16, 64, 3)
    bound = 1 / math.sqrt(16 * 9)
    w, b = conv.weight.detach().numpy(), conv.bias.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert np.abs(b).max() <= bound


def test_embedding_default_init_is_standard_normal():
    w = nn.Embedding(1000, 64).weight.detach().numpy()
    assert w.mean() == pytest.approx(0, abs=0.01) and w.std() == pytest.approx(1, rel=0.02)


def test_embedding_padding_idx_row_starts_at_zero():
    w = nn.Embedding(5, 3, padding_idx=-1).weight.detach().numpy()
    np.testing.assert_array_equal(w[4], 0)
    assert np.abs(w[:4]).min() > 0


def test_layer_norm_default_init_is_ones_and_zeros():
    ln = nn.LayerNorm((2, 3))
    np.testing.assert_array_equal(ln.weight.detach().numpy(), np.ones((2, 3)))
    np.testing.assert_array_equal(ln.bias.detach().numpy(), np.zeros((2, 3)))


def test_layers_created_on_a_device_live_there(webgpu):
    for layer in (nn.Linear(2, 3, device=webgpu), nn.Conv2d(1, 2, 3, device=webgpu), nn.Embedding(4, 2, device=webgpu)):
        assert all(p.device == webgpu for p in layer.parameters())


# ----- forward -----


def test_linear_forward(device):
    lin = nn.Linear(3, 2).to(device)
    x = rand(4, 3)
    w, b = lin.weight.detach().numpy(), lin.bias.detach().numpy()
    assert_close(lin(on(device, x)[0]), x @ w.T + b)


def test_linear_without_bias():
    lin = nn.Linear(3, 2, bias=False)
    assert lin.bias is None and repr(lin) == "Linear(in_features=3, out_features=2, bias=False)"


def test_embedding_forward_and_repr(device):
    emb = nn.Embedding(6, 2, padding_idx=0).to(device)
    idx = np.array([[1, 0], [5, 5]])
    assert_close(emb(sg.tensor(idx, device=device)), emb.weight.detach().numpy()[idx])
    assert repr(emb) == "Embedding(6, 2, padding_idx=0)"


def test_layer_norm_module_matches_functional(device):
    ln = nn.LayerNorm(4).to(device)
    (x,) = on(device, rand(2, 4))
    assert_close(ln(x), F.layer_norm(x, (4,), ln.weight, ln.bias).detach().numpy())
    assert repr(ln) == "LayerNorm((4,), eps=1e-05, elementwise_affine=True)"


def test_layer_norm_without_affine_has_no_parameters():
    assert list(nn.LayerNorm(3, elementwise_affine=False).parameters()) == []
    assert [n for n, _ in nn.LayerNorm(3, bias=False).named_parameters()] == ["weight"]


@pytest.mark.parametrize(
    "module,fn",
    [
        (nn.ReLU(), lambda a: np.maximum(a, 0)),
        (nn.Tanh(), np.tanh),
        (nn.Sigmoid(), lambda a: 1 / (1 + np.exp(-a))),
        (nn.SiLU(), lambda a: a / (1 + np.exp(-a))),
        (nn.GELU(approximate="tanh"), lambda a: 0.5 * a * (1 + np.tanh(np.sqrt(2 / np.pi) * (a + 0.044715 * a**3)))),
        (nn.Softmax(dim=-1), lambda a: np.exp(a) / np.exp(a).sum(-1, keepdims=True)),
        (nn.LogSoftmax(dim=1), lambda a: a - np.log(np.exp(a).sum(1, keepdims=True))),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, nn.Module) else "",
)
def test_activation_modules(device, module, fn):
    a = rand(3, 4, low=-3, high=3)
    (x,) = on(device, a)
    assert_close(module(x), fn(a.astype(np.float64)).astype(np.float32), atol=1e-6)


def test_gelu_module_repr_and_validation():
    assert repr(nn.GELU()) == "GELU(approximate='none')"
    with pytest.raises(ValueError, match="approximate"):
        nn.GELU("erf")


def test_flatten_keeps_batch_dim():
    out = nn.Flatten()(sg.zeros(2, 3, 4, 5))
    assert out.shape == (2, 60)
    assert nn.Flatten(0, 1)(sg.zeros(2, 3, 4)).shape == (6, 4)


def test_dropout_module_drops_in_train_and_passes_in_eval():
    drop = nn.Dropout(0.5)
    x = sg.ones(1000)
    assert (drop(x).numpy() == 0).any()
    drop.eval()
    assert drop(x) is x
    assert repr(drop) == "Dropout(p=0.5, inplace=False)"  # (torch's)


# ----- clip_grad_norm_ / clip_grad_value_ -----


def _with_grads(*grads):
    params = []
    for g in grads:
        p = nn.Parameter(sg.zeros(*np.shape(g)))
        p.grad = sg.tensor(np.asarray(g, np.float32))
        params.append(p)
    return params


def test_clip_grad_norm_returns_total_norm_and_scales_to_max_norm():
    g1, g2 = rand(3, 4, seed=1) * 5, rand(5, seed=2) * 5
    params = _with_grads(g1, g2)
    total = clip_grad_norm_(params, max_norm=1.0)
    expected = np.sqrt((g1**2).sum() + (g2**2).sum())
    assert total.item() == pytest.approx(expected, rel=1e-5)
    clipped = np.sqrt(sum((p.grad.numpy() ** 2).sum() for p in params))
    assert clipped == pytest.approx(1.0, rel=1e-4)
    assert_close(params[1].grad, g2 / (expected + 1e-6), rtol=1e-4)


def test_clip_grad_norm_leaves_small_gradients_alone():
    g = np.array([0.3, -0.4], np.float32)
    (p,) = _with_grads(g)
    assert clip_grad_norm_([p], 1.0).item() == pytest.approx(0.5)
    assert_close(p.grad, g)


def test_clip_grad_norm_inf_and_p_norms():
    g1, g2 = np.array([1.0, -7.0]), np.array([[3.0, 2.0]])
    assert clip_grad_norm_(_with_grads(g1, g2), 100.0, norm_type=math.inf).item() == pytest.approx(7.0)
    expected = (np.abs(g1) ** 3).sum() + (np.abs(g2) ** 3).sum()
    assert clip_grad_norm_(_with_grads(g1, g2), 100.0, norm_type=3).item() == pytest.approx(expected ** (1 / 3), rel=1e-5)


def test_clip_grad_norm_does_not_read_back_from_the_device():
    params = _with_grads(rand(4, seed=1), rand(3, seed=2))
    total = clip_grad_norm_(params, 0.1)
    assert not total.lazydata.is_realized()
    assert not any(p.grad.lazydata.is_realized() for p in params)


def test_clip_grad_norm_skips_parameters_without_grad():
    (p,) = _with_grads(np.array([3.0, 4.0]))
    q = nn.Parameter(sg.zeros(2))
    assert clip_grad_norm_([p, q], 1.0).item() == pytest.approx(5.0)
    assert q.grad is None


def test_clip_grad_norm_on_webgpu(webgpu):
    (p,) = _with_grads(np.array([3.0, 4.0]))
    p.grad = p.grad.to(webgpu)
    assert clip_grad_norm_([p], 1.0).item() == pytest.approx(5.0)
    assert_close(p.grad, np.array([0.6, 0.8], np.float32), rtol=1e-5)


def test_clip_grad_value_clamps_elements():
    (p,) = _with_grads(np.array([-3.0, 0.5, 2.0]))
    clip_grad_value_([p], 1.0)
    assert_close(p.grad, np.array([-1.0, 0.5, 1.0], np.float32))


# ----- a model trains -----


def test_mlp_regression_loss_decreases_with_manual_sgd(device):
    sg.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 16), nn.GELU(), nn.LayerNorm(16), nn.Linear(16, 1)).to(device)
    x = sg.randn(32, 2, device=device)
    y = (x[:, :1] * 2 - x[:, 1:]).tanh()
    losses = []
    for _ in range(30):
        loss = F.mse_loss(model(x), y)
        model.zero_grad()
        loss.backward()
        with sg.no_grad():
            for p in model.parameters():
                p.copy_(p - 0.1 * p.grad)
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
