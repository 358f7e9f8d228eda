"""Losses (functional and modules) against NumPy versions of PyTorch's formulas:
cross_entropy (class indices or probabilities, weight, ignore_index, label_smoothing,
reductions), nll_loss, mse_loss, binary_cross_entropy_with_logits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import smolgrad as sg
import smolgrad.nn.functional as F
from smolgrad import nn
from smolgrad.function import GATHER_CLASSES
from helpers import assert_close, gradcheck, nll_np, on, rand


def log_softmax_np(x, axis):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def cross_entropy_np(x, t, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """torch's cross_entropy for class indices (aten cross_entropy_loss_label_smoothing)."""
    logp = log_softmax_np(x, 1)
    c = x.shape[1]
    nll = nll_np(logp, t, weight, ignore_index, reduction)
    w = np.ones(c) if weight is None else weight
    valid = t != ignore_index
    smooth = -(logp * w.reshape((1, c) + (1,) * (x.ndim - 2))).sum(1) * valid
    if reduction == "mean":
        smooth = smooth.sum() / (w[np.where(valid, t, 0)] * valid).sum()
    elif reduction == "sum":
        smooth = smooth.sum()
    return (1 - label_smoothing) * nll + smooth * label_smoothing / c


def f32(a):
    return np.asarray(a, dtype=np.float32)


# ----- cross_entropy -----

CE_CASES = [
    dict(),
    dict(reduction="sum"),
    dict(reduction="none"),
    dict(ignore_index=1),
    dict(label_smoothing=0.1),
    dict(label_smoothing=0.2, ignore_index=2, reduction="sum"),
    dict(weight=True),
    dict(weight=True, label_smoothing=0.3, ignore_index=0),
    dict(weight=True, label_smoothing=0.3, reduction="none"),
]


def _ce_args(case):
    kw = dict(case)
    w = np.array([0.5, 2.0, 1.0, 3.0]) if kw.pop("weight", False) else None
    return kw, w


@pytest.mark.parametrize("case", CE_CASES, ids=[str(c) for c in CE_CASES])
def test_cross_entropy_matches_torch_formula(device, case):
    x = rand(5, 4, low=-3, high=3)
    t = np.array([0, 1, 2, 3, 1])
    kw, w = _ce_args(case)
    xs = on(device, x)[0]
    ws = sg.tensor(f32(w), device=device) if w is not None else None
    out = F.cross_entropy(xs, sg.tensor(t, device=device), weight=ws, **kw)
    assert_close(out, f32(cross_entropy_np(x.astype(np.float64), t, w, **kw)), atol=1e-5)


@pytest.mark.parametrize("case", CE_CASES, ids=[str(c) for c in CE_CASES])
def test_cross_entropy_gradients(case):
    t = sg.tensor([0, 1, 2, 3, 1, 2])
    kw, w = _ce_args(case)
    ws = sg.tensor(w) if w is not None else None
    gradcheck(lambda x: F.cross_entropy(x, t, weight=ws, **kw), rand(6, 4, low=-2, high=2))


@pytest.mark.parametrize("classes", [4, GATHER_CLASSES + 6])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("computed_target", [False, True])
def test_cross_entropy_of_few_and_many_classes(device, classes, reduction, computed_target):
    """Below GATHER_CLASSES the loss picks the targets with a one-hot pass, from it by a
    gather: both with weights and ignored targets (-100 and a computed one, which the
    host does not check)."""
    rng = np.random.default_rng(classes)
    x = rng.uniform(-3, 3, (7, classes)).astype(np.float32)
    t = rng.integers(0, classes, 7)
    t[[1, 4]] = -100
    w = rng.uniform(0.5, 2.0, classes).astype(np.float32)
    tt = sg.tensor(t + 100, device=device) - 100 if computed_target else sg.tensor(t, device=device)
    xs = sg.tensor(x, device=device, requires_grad=True)
    out = F.cross_entropy(xs, tt, weight=sg.tensor(w, device=device), reduction=reduction)
    assert_close(out, f32(cross_entropy_np(x.astype(np.float64), t, w.astype(np.float64), reduction=reduction)), atol=1e-5)
    out.backward()
    assert (xs.grad.numpy()[[1, 4]] == 0).all()


def test_cross_entropy_gradients_of_many_classes():
    t = sg.tensor([0, 5, GATHER_CLASSES, -100, 3])
    w = sg.tensor(np.linspace(0.5, 2.0, GATHER_CLASSES + 1))
    gradcheck(lambda x: F.cross_entropy(x, t, weight=w), rand(5, GATHER_CLASSES + 1, low=-2, high=2))


def test_cross_entropy_over_extra_dims(device):
    x = rand(2, 3, 4, 5)
    t = np.random.default_rng(0).integers(0, 3, size=(2, 4, 5))
    t[0, 0, 0] = -100
    (xs,) = on(device, x)
    out = F.cross_entropy(xs, sg.tensor(t, device=device), label_smoothing=0.1)
    assert_close(out, f32(cross_entropy_np(x.astype(np.float64), t, label_smoothing=0.1)), atol=1e-5)


def test_cross_entropy_unbatched_input():
    x = rand(4)
    out = F.cross_entropy(sg.tensor(x), sg.tensor(2))
    assert_close(out, f32(-log_softmax_np(x.astype(np.float64), 0)[2]), atol=1e-6)


def test_cross_entropy_with_class_probabilities(device):
    x = rand(3, 4)
    p = np.random.default_rng(1).dirichlet(np.ones(4), size=3)
    (xs,) = on(device, x)
    out = F.cross_entropy(xs, sg.tensor(f32(p), device=device), label_smoothing=0.2)
    target = p * 0.8 + 0.2 / 4
    assert_close(out, f32(-(log_softmax_np(x.astype(np.float64), 1) * target).sum(1).mean()), atol=1e-5)


def test_cross_entropy_is_finite_with_finite_gradients_for_logits_of_magnitude_1e4(device):
    x = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5e3], [3e3, -2e3, 1e4]], np.float32)
    t = np.array([1, 0, 2])
    xs = sg.tensor(x, device=device, requires_grad=True)
    loss = F.cross_entropy(xs, sg.tensor(t, device=device))
    loss.backward()
    assert_close(loss.detach(), f32(cross_entropy_np(x.astype(np.float64), t)), rtol=1e-6)
    probs = np.exp(log_softmax_np(x.astype(np.float64), 1))
    assert_close(xs.grad, f32((probs - np.eye(3)[t]) / 3), atol=1e-6)


def test_cross_entropy_all_targets_ignored_is_nan_like_torch():
    assert np.isnan(F.cross_entropy(sg.tensor(rand(2, 3)), sg.tensor([-100, -100])).item())


def test_cross_entropy_target_out_of_range_raises():
    with pytest.raises(IndexError, match="target 3 is out of bounds for 3 classes"):
        F.cross_entropy(sg.zeros(2, 3), sg.tensor([0, 3]))


def test_cross_entropy_target_shape_mismatch_raises():
    with pytest.raises(RuntimeError, match=r"needs a target of shape \(2,\)"):
        F.cross_entropy(sg.zeros(2, 3), sg.tensor([[0, 1]]))


def test_cross_entropy_invalid_reduction_raises():
    with pytest.raises(ValueError, match="'avg' is not a valid value for reduction"):
        F.cross_entropy(sg.zeros(2, 3), sg.tensor([0, 1]), reduction="avg")


def test_cross_entropy_loss_module_passes_options():
    x, t = rand(4, 3), np.array([0, 2, 1, 2])
    w = np.array([1.0, 2.0, 0.5])
    loss = nn.CrossEntropyLoss(weight=sg.tensor(f32(w)), ignore_index=1, label_smoothing=0.1, reduction="sum")
    assert_close(loss(sg.tensor(x), sg.tensor(t)), f32(cross_entropy_np(x, t, w, 1, "sum", 0.1)), atol=1e-5)
    assert [n for n, _ in loss.named_buffers()] == ["weight"]


# ----- nll_loss -----


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss_matches_formula(device, reduction):
    logp = log_softmax_np(rand(5, 3).astype(np.float64), 1)
    t = np.array([0, 2, 1, -100, 2])
    w = np.array([1.0, 0.5, 2.0])
    (ls,) = on(device, logp)
    out = F.nll_loss(ls, sg.tensor(t, device=device), weight=sg.tensor(f32(w), device=device), reduction=reduction)
    assert_close(out, f32(nll_np(logp, t, w, -100, reduction)), atol=1e-6)


def test_nll_loss_gradients():
    t = sg.tensor([1, 0, 2])
    gradcheck(lambda x: F.nll_loss(x, t, weight=sg.tensor([1.0, 2.0, 3.0], dtype=sg.float64)), rand(3, 3))


def test_nll_loss_module_matches_functional():
    x, t = sg.tensor(rand(4, 3)), sg.tensor([0, 1, 2, 1])
    assert_close(nn.NLLLoss(reduction="sum")(x, t), F.nll_loss(x, t, reduction="sum").numpy())


# ----- mse_loss -----


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_matches_formula(device, reduction):
    a, b = rand(3, 4, seed=1), rand(3, 4, seed=2)
    xs, ys = on(device, a, b)
    sq = (a - b) ** 2
    expected = {"mean": sq.mean(), "sum": sq.sum(), "none": sq}[reduction]
    assert_close(nn.MSELoss(reduction=reduction)(xs, ys), f32(expected), atol=1e-6)


def test_mse_loss_gradients():
    gradcheck(F.mse_loss, rand(3, 4, seed=1), rand(3, 4, seed=2))


def test_mse_loss_warns_when_shapes_broadcast():
    with pytest.warns(UserWarning, match="broadcast"):
        F.mse_loss(sg.zeros(3, 1), sg.zeros(3))


# ----- binary_cross_entropy_with_logits -----


def bce_np(x, t, weight=None, pos_weight=None):
    max_val = np.clip(-x, 0, None)
    lw = 1 if pos_weight is None else 1 + (pos_weight - 1) * t
    loss = (1 - t) * x + lw * (np.log(np.exp(-max_val) + np.exp(-x - max_val)) + max_val)
    return loss * (1 if weight is None else weight)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_with_logits_matches_formula(device, reduction):
    x = rand(4, 3, low=-4, high=4)
    t = np.random.default_rng(2).uniform(0, 1, size=(4, 3)).astype(np.float32)
    xs, ts = on(device, x, t)
    loss = bce_np(x.astype(np.float64), t)
    expected = {"mean": loss.mean(), "sum": loss.sum(), "none": loss}[reduction]
    assert_close(F.binary_cross_entropy_with_logits(xs, ts, reduction=reduction), f32(expected), atol=1e-6)


def test_bce_with_logits_weight_and_pos_weight(device):
    x, t = rand(4, 3, low=-3, high=3), (rand(4, 3, seed=5) > 0).astype(np.float32)
    w, pw = rand(3, low=0.5, high=2, seed=6), rand(3, low=0.5, high=3, seed=7)
    xs, ts, ws, pws = on(device, x, t, w, pw)
    out = nn.BCEWithLogitsLoss(weight=ws, pos_weight=pws)(xs, ts)
    assert_close(out, f32(bce_np(x.astype(np.float64), t, w, pw).mean()), atol=1e-6)


def test_bce_with_logits_is_finite_for_huge_logits(device):
    x = np.array([1e4, -1e4, 50.0, -50.0], np.float32)
    t = np.array([0.0, 1.0, 1.0, 0.0], np.float32)
    xs = sg.tensor(x, device=device, requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(xs, sg.tensor(t, device=device), reduction="sum")
    loss.backward()
    assert_close(loss.detach(), f32(2e4), rtol=1e-6)
    assert np.isfinite(xs.grad.numpy()).all()


def test_bce_with_logits_gradients():
    t = sg.tensor(np.array([[0.0, 1.0, 0.3], [1.0, 0.0, 0.8]]))
    pw = sg.tensor(np.array([2.0, 0.5, 1.5]))
    gradcheck(lambda x: F.binary_cross_entropy_with_logits(x, t, pos_weight=pw), rand(2, 3, low=-3, high=3))


def test_bce_with_logits_gradient_is_exact_at_zero_logits(device):
    """The gradient is (sigmoid(x) - t) / n at x = 0 too, where relu(-x) + log1p(exp(-|x|))
    would give autograd two zero subgradients (a model initialised at zero learned wrong)."""
    t = np.array([0.0, 1.0, 1.0, 0.25], np.float32)
    x = sg.zeros(4, device=device, requires_grad=True)
    F.binary_cross_entropy_with_logits(x, sg.tensor(t, device=device)).backward()
    assert_close(x.grad, (0.5 - t) / 4, rtol=1e-6, atol=1e-7)


def test_bce_with_logits_shape_mismatch_raises():
    with pytest.raises(ValueError, match="Target size"):
        F.binary_cross_entropy_with_logits(sg.zeros(3), sg.zeros(3, 1))


def test_loss_module_repr_shows_non_default_reduction():
    assert repr(nn.MSELoss()) == "MSELoss()"
    assert repr(nn.MSELoss(reduction="sum")) == "MSELoss(reduction='sum')"


def test_cross_entropy_of_class_indices_is_one_recorded_op(device):
    """(N, C) logits with class indices take the fused op; int32 targets give the same."""
    x = rand(6, 5, low=-3, high=3)
    t = np.array([0, 4, -100, 3, 1, 4])
    results = []
    for dtype in (np.int64, np.int32):
        xs = sg.tensor(x, device=device, requires_grad=True)
        loss = F.cross_entropy(xs, sg.tensor(t.astype(dtype), device=device))
        assert loss.grad_fn.name == "CrossEntropyBackward"
        loss.backward()
        results.append((loss.item(), xs.grad.numpy()))
    want = cross_entropy_np(x.astype(np.float64), t)
    for value, grad in results:
        assert value == pytest.approx(want, rel=1e-5)
        assert np.all(grad[2] == 0)  # an ignored target gets no gradient
    np.testing.assert_array_equal(results[0][1], results[1][1])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(1, 9),
    classes=st.sampled_from([1, 2, 7, GATHER_CLASSES - 1, GATHER_CLASSES, GATHER_CLASSES + 9]),
    reduction=st.sampled_from(["mean", "sum", "none"]),
    weighted=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_cross_entropy_property(device, n, classes, reduction, weighted, seed):
    """Random logits, targets (some ignored) and class weights, on either side of
    GATHER_CLASSES: the loss and its gradient against NumPy."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-4, 4, (n, classes)).astype(np.float32)
    t = rng.integers(0, classes, n)
    t[rng.random(n) < 0.3] = -100
    if reduction == "mean" and (t == -100).all():
        t[0] = 0  # (all ignored: a mean of nothing, nan as in torch, tested elsewhere)
    w = rng.uniform(0.5, 2.0, classes).astype(np.float32) if weighted else None
    xs = sg.tensor(x, device=device, requires_grad=True)
    out = F.cross_entropy(xs, sg.tensor(t, device=device), weight=None if w is None else sg.tensor(w, device=device),
                          reduction=reduction)
    want = cross_entropy_np(x.astype(np.float64), t, None if w is None else w.astype(np.float64), reduction=reduction)
    assert_close(out, f32(want), rtol=1e-5, atol=1e-5)
    gx = rng.standard_normal(out.shape).astype(np.float32)
    (out * sg.tensor(gx, device=device)).sum().backward()
    logp = log_softmax_np(x.astype(np.float64), 1)
    valid = t != -100
    safe = np.where(valid, t, 0)
    wt = (np.ones(classes) if w is None else w.astype(np.float64))[safe] * valid
    scale = wt * (gx if reduction == "none" else float(gx)) / (wt.sum() if reduction == "mean" else 1.0)
    grad = (np.exp(logp) - np.eye(classes)[safe]) * scale[:, None]
    assert_close(xs.grad, f32(grad), rtol=1e-4, atol=1e-5)
