"""nn.functional activations, softmax, linear, embedding, one_hot, layer_norm and
dropout against NumPy versions of PyTorch's documented formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

import smolgrad as sg
import smolgrad.nn.functional as F
from helpers import assert_close, gradcheck, on, rand

erf_np = np.vectorize(math.erf)


def log_softmax_np(x, axis):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


# ----- activations -----


def test_gelu_exact_matches_erf_formula(device):
    a = np.linspace(-6, 6, 49).astype(np.float32)
    (x,) = on(device, a)
    assert_close(F.gelu(x), 0.5 * a * (1 + erf_np(a / np.sqrt(2))), atol=1e-6)


def test_gelu_tanh_matches_formula(device):
    a = np.linspace(-6, 6, 49).astype(np.float32)
    (x,) = on(device, a)
    expected = 0.5 * a * (1 + np.tanh(np.sqrt(2 / np.pi) * (a + 0.044715 * a**3)))
    assert_close(F.gelu(x, approximate="tanh"), expected, atol=1e-6)


def test_gelu_exact_gradient_is_phi_plus_x_times_density():
    a = np.linspace(-4, 4, 17)
    x = sg.tensor(a, requires_grad=True)
    F.gelu(x).sum().backward()
    expected = 0.5 * (1 + erf_np(a / np.sqrt(2))) + a * np.exp(-a * a / 2) / np.sqrt(2 * np.pi)
    assert_close(x.grad, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_gradients(approximate):
    gradcheck(lambda t: F.gelu(t, approximate=approximate), rand(3, 4, low=-3, high=3))


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_keeps_only_its_input_for_backward(device, approximate, monkeypatch):
    # composed of ops, autograd kept six intermediates, each written out by the forward kernel
    monkeypatch.setenv("SMOLGRAD_FUSION", "1")  # (one fused kernel)
    x = sg.tensor(rand(1000), device=device, requires_grad=True)
    with sg.profile() as prof:
        y = F.gelu(x, approximate=approximate)
        y.detach().numpy()
    assert len(prof.events) == 1 and prof.events[0].bytes == 2 * 4 * 1000  # x read, y written
    y.sum().backward()
    a = x.detach().numpy().astype(np.float64)
    if approximate == "tanh":
        t = np.tanh(np.sqrt(2 / np.pi) * (a + 0.044715 * a**3))
        expected = 0.5 * (1 + t) + 0.5 * a * (1 - t * t) * np.sqrt(2 / np.pi) * (1 + 3 * 0.044715 * a * a)
    else:
        expected = 0.5 * (1 + erf_np(a / np.sqrt(2))) + a * np.exp(-a * a / 2) / np.sqrt(2 * np.pi)
    assert_close(x.grad, expected, rtol=1e-5, atol=1e-6)


def test_gelu_of_integers_is_computed_in_float32():
    assert_close(F.gelu(sg.tensor([0, 1, -2])), [0.0, 0.8413447, -0.04550026], atol=1e-6)


def test_gelu_rejects_unknown_approximation():
    with pytest.raises(ValueError, match="'none' or 'tanh'"):
        F.gelu(sg.zeros(2), approximate="fast")


def test_silu_matches_formula_and_gradient(device):
    a = rand(5, 3, low=-5, high=5)
    (x,) = on(device, a)
    assert_close(F.silu(x), a / (1 + np.exp(-a)), atol=1e-6)
    gradcheck(F.silu, rand(4, low=-3, high=3))


# ----- softmax and log_softmax -----


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_and_log_softmax_match_numpy(device, dim):
    a = rand(3, 4, 5, low=-3, high=3)
    (x,) = on(device, a)
    ls = log_softmax_np(a.astype(np.float64), dim)
    assert_close(F.log_softmax(x, dim), ls.astype(np.float32), atol=1e-5)
    assert_close(F.softmax(x, dim), np.exp(ls).astype(np.float32), atol=1e-6)


def test_softmax_is_finite_for_logits_of_magnitude_1e4(device):
    a = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 9999.0]], np.float32)
    (x,) = on(device, a)
    assert_close(F.softmax(x, 1), np.exp(log_softmax_np(a.astype(np.float64), 1)).astype(np.float32), atol=1e-6)
    out = F.log_softmax(x, 1).numpy()
    assert np.isfinite(out).all()
    assert_close(out, log_softmax_np(a.astype(np.float64), 1).astype(np.float32))


def test_log_softmax_gradient_is_finite_for_huge_logits():
    x = sg.tensor(np.array([[1e4, -1e4, 0.0]]), requires_grad=True)
    (F.log_softmax(x, 1) * sg.tensor([[1.0, 2.0, 3.0]], dtype=sg.float64)).sum().backward()
    g = x.grad.numpy()
    assert np.isfinite(g).all()
    np.testing.assert_allclose(g, [[1 - 6.0, 2.0, 3.0]], atol=1e-9)  # g - softmax * sum(g)


def test_softmax_gradients():
    gradcheck(lambda t: F.softmax(t, -1), rand(3, 5))
    gradcheck(lambda t: F.log_softmax(t, 0), rand(3, 5))


def test_softmax_dtype_argument_casts_first():
    out = F.softmax(sg.tensor([1.0, 2.0]), 0, dtype=sg.float64)
    assert out.dtype == sg.float64


# ----- linear -----


def test_linear_matches_numpy(device):
    x, w, b = rand(4, 3, seed=1), rand(5, 3, seed=2), rand(5, seed=3)
    xs, ws, bs = on(device, x, w, b)
    assert_close(F.linear(xs, ws, bs), x @ w.T + b)
    assert_close(F.linear(xs, ws), x @ w.T)


def test_linear_over_leading_batch_dims(device):
    x, w, b = rand(2, 3, 4, seed=1), rand(5, 4, seed=2), rand(5, seed=3)
    xs, ws, bs = on(device, x, w, b)
    assert_close(F.linear(xs, ws, bs), x @ w.T + b)


def test_linear_gradients():
    gradcheck(F.linear, rand(2, 3, 4, seed=1), rand(5, 4, seed=2), rand(5, seed=3))


def test_linear_feature_mismatch_error():
    with pytest.raises(RuntimeError, match=r"3 features.*expects 4"):
        F.linear(sg.zeros(2, 3), sg.zeros(5, 4))


# ----- embedding -----


def test_embedding_picks_rows(device):
    w = rand(6, 3)
    (ws,) = on(device, w)
    idx = np.array([[0, 5, 2], [2, 2, 1]])
    assert_close(F.embedding(sg.tensor(idx, device=device), ws), w[idx])


def test_embedding_gradient_accumulates_repeated_indices():
    idx = sg.tensor([[0, 2], [2, 2]])
    gradcheck(lambda w: F.embedding(idx, w), rand(4, 3))


def test_embedding_padding_idx_row_gets_no_gradient():
    w = sg.tensor(rand(4, 2).astype(np.float64), requires_grad=True)
    F.embedding(sg.tensor([1, 0, 1, 3]), w, padding_idx=1).sum().backward()
    assert_close(w.grad, np.array([[1, 1], [0, 0], [0, 0], [1, 1]], np.float64))


def test_embedding_out_of_range_index_raises():
    with pytest.raises(IndexError, match="index 4 is out of range for an embedding with 4 rows"):
        F.embedding(sg.tensor([0, 4]), sg.zeros(4, 2))


def test_embedding_float_index_raises():
    with pytest.raises(RuntimeError, match="integer index tensor"):
        F.embedding(sg.tensor([0.0, 1.0]), sg.zeros(4, 2))


# ----- one_hot -----


def test_one_hot_matches_eye(device):
    idx = np.array([[0, 3], [2, 1]])
    out = F.one_hot(sg.tensor(idx, device=device), 5)
    assert out.dtype == sg.int64
    assert_close(out, np.eye(5, dtype=np.int64)[idx])


def test_one_hot_infers_num_classes_from_max():
    assert F.one_hot(sg.tensor([0, 2])).shape == (2, 3)


def test_one_hot_value_out_of_range_raises():
    with pytest.raises(IndexError, match="class value 5 is out of range for num_classes=3"):
        F.one_hot(sg.tensor([0, 5]), 3)


# ----- layer_norm -----


def layer_norm_np(x, dims, w=None, b=None, eps=1e-5):
    mean = x.mean(axis=dims, keepdims=True)
    var = x.var(axis=dims, keepdims=True)
    out = (x - mean) / np.sqrt(var + eps)
    return out * (1 if w is None else w) + (0 if b is None else b)


def test_layer_norm_matches_numpy(device):
    x, w, b = rand(2, 3, 4, seed=1), rand(4, seed=2), rand(4, seed=3)
    xs, ws, bs = on(device, x, w, b)
    assert_close(F.layer_norm(xs, 4, ws, bs), layer_norm_np(x, (2,), w, b), atol=1e-5)


def test_layer_norm_over_two_dims_without_affine(device):
    x = rand(2, 3, 4)
    (xs,) = on(device, x)
    assert_close(F.layer_norm(xs, (3, 4)), layer_norm_np(x, (1, 2)), atol=1e-5)


def test_layer_norm_gradients():
    gradcheck(lambda x, w, b: F.layer_norm(x, (4,), w, b, eps=1e-3), rand(3, 4, seed=1), rand(4, seed=2), rand(4, seed=3))


def test_layer_norm_shape_mismatch_error():
    with pytest.raises(RuntimeError, match=r"expected input with shape \[\*, 5\]"):
        F.layer_norm(sg.zeros(2, 4), (5,))
    with pytest.raises(RuntimeError, match=r"layer_norm: weight of shape \(3,\) does not match normalized_shape \(4,\)"):
        F.layer_norm(sg.zeros(2, 4), (4,), sg.ones(3))


@pytest.mark.parametrize("affine", [(True, True), (True, False), (False, True), (False, False)])
def test_layer_norm_gradients_with_either_parameter(affine):
    def fn(x, *params):
        it = iter(params)
        w = next(it) if affine[0] else None
        b = next(it) if affine[1] else None
        return F.layer_norm(x, (3, 4), w, b, eps=1e-3)

    params = [rand(3, 4, seed=2 + i) for i, on_ in enumerate(affine) if on_]
    gradcheck(fn, rand(2, 3, 4, seed=1), *params)


def test_layer_norm_gradients_on_webgpu_match_numpy(webgpu):
    x, w, b, g = rand(6, 5, seed=1), rand(5, seed=2), rand(5, seed=3), rand(6, 5, seed=4)
    grads = []
    for device in ("numpy", webgpu):
        ts = [sg.tensor(a, device=device, requires_grad=True) for a in (x, w, b)]
        (F.layer_norm(ts[0], 5, ts[1], ts[2]) * sg.tensor(g, device=device)).sum().backward()
        grads.append([t.grad.numpy() for t in ts])
    for got, ref in zip(grads[1], grads[0]):
        assert_close(got, ref, rtol=1e-4, atol=1e-5)


def test_layer_norm_keeps_only_its_input_and_row_statistics_for_backward():
    # composed of ops, autograd also kept the centred input, its square and the normalised output
    x = sg.tensor(rand(64, 32), requires_grad=True)
    ln = sg.nn.LayerNorm(32)
    saved = ln(x)._ctx.saved_tensors
    assert saved[0] is x
    assert [t.shape for t in saved[1:]] == [(64, 1), (64, 1), (32,)]  # mean, 1/sqrt(var + eps), weight


# ----- dropout -----


def test_dropout_zeroes_about_p_and_scales_the_rest(device):
    x = sg.ones(100, 100, device=device)
    out = F.dropout(x, 0.3).numpy()
    assert set(np.unique(out)).issubset({0.0, np.float32(1 / 0.7)})
    assert abs((out == 0).mean() - 0.3) < 0.03


def test_dropout_is_reproducible_with_manual_seed():
    sg.manual_seed(5)
    a = F.dropout(sg.ones(50), 0.5).numpy()
    sg.manual_seed(5)
    np.testing.assert_array_equal(F.dropout(sg.ones(50), 0.5).numpy(), a)


def test_dropout_not_training_is_identity():
    x = sg.tensor(rand(3, 3))
    assert F.dropout(x, 0.5, training=False) is x


def test_dropout_p_one_gives_zeros():
    assert_close(F.dropout(sg.ones(4), 1.0), np.zeros(4, np.float32))


def test_dropout_gradient_is_the_mask_times_scale():
    x = sg.tensor(rand(20, 20), requires_grad=True)
    out = F.dropout(x, 0.25)
    out.sum().backward()
    expected = np.where(out.detach().numpy() != 0, 1 / 0.75, 0.0)
    assert_close(x.grad, expected.astype(np.float32))


def test_dropout_invalid_probability_raises():
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.dropout(sg.ones(2), 1.5)


# ----- pad (existing) with negative values crops -----


def test_pad_last_two_dims(device):
    a = rand(2, 3, 4)
    (x,) = on(device, a)
    assert_close(F.pad(x, (1, 2, 0, 1), value=-1.0), np.pad(a, ((0, 0), (0, 1), (1, 2)), constant_values=-1.0))
