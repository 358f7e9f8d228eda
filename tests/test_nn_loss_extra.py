"""Distances (cosine_similarity, pairwise_distance, normalize) and the losses of issue 12
(l1, smooth_l1, huber, kl_div, binary_cross_entropy, poisson_nll, cosine_embedding,
margin_ranking, triplet_margin; cross_entropy/nll_loss with a negative ignore_index)
against NumPy versions of PyTorch's documented formulas."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import smolgrad as sg
import smolgrad.nn.functional as F
from smolgrad import nn
from helpers import assert_close, gradcheck, nll_np, on, rand

REDUCTIONS = ["mean", "sum", "none"]


def reduce_np(loss, reduction):
    return {"mean": loss.mean(), "sum": loss.sum(), "none": loss}[reduction]


def f32(a):
    return np.asarray(a, dtype=np.float32)


# ----- distances -----


def cosine_np(x1, x2, dim=1, eps=1e-8):
    n1 = np.maximum(np.sqrt((x1 * x1).sum(dim, keepdims=True)), eps)
    n2 = np.maximum(np.sqrt((x2 * x2).sum(dim, keepdims=True)), eps)
    return ((x1 / n1) * (x2 / n2)).sum(dim)


def pnorm_np(d, p, axis=-1, keepdims=False):
    a = np.abs(d)
    if p == math.inf:
        return a.max(axis, keepdims=keepdims)
    if p == 0:
        return (a != 0).sum(axis, keepdims=keepdims).astype(d.dtype)
    return (a**p).sum(axis, keepdims=keepdims) ** (1 / p)


@pytest.mark.parametrize("dim", [1, -1, 0])
def test_cosine_similarity_matches_formula(device, dim):
    a, b = rand(4, 5, 3), rand(4, 5, 3, seed=1)
    x1, x2 = on(device, a, b)
    assert_close(F.cosine_similarity(x1, x2, dim=dim), cosine_np(a, b, dim), atol=1e-6)
    assert_close(nn.CosineSimilarity(dim=dim)(x1, x2), cosine_np(a, b, dim), atol=1e-6)


def test_cosine_similarity_broadcasts_and_takes_views(device):
    a, b = rand(6, 5), rand(1, 5, seed=1)
    x1, x2 = on(device, a, b)
    assert_close(F.cosine_similarity(x1, x2), cosine_np(a, b), atol=1e-6)
    assert_close(F.cosine_similarity(x1.T, x1.T.flip(1), dim=0), cosine_np(a.T, a.T[:, ::-1], 0), atol=1e-6)


def test_cosine_similarity_gradients_and_zero_vector():
    gradcheck(lambda x, y: F.cosine_similarity(x, y, dim=1), rand(3, 4, seed=2), rand(3, 4, seed=3))
    x = sg.tensor(np.zeros((2, 3)), requires_grad=True)
    y = sg.tensor(rand(2, 3).astype(np.float64), requires_grad=True)
    out = F.cosine_similarity(x, y)
    out.sum().backward()
    assert_close(out, np.zeros(2))
    assert np.isfinite(x.grad.numpy()).all() and np.isfinite(y.grad.numpy()).all()


@pytest.mark.parametrize("p", [2.0, 1.0, 3.0, math.inf, 0.0])
@pytest.mark.parametrize("keepdim", [False, True])
def test_pairwise_distance_matches_formula(device, p, keepdim):
    a, b = rand(5, 7), rand(5, 7, seed=1)
    x1, x2 = on(device, a, b)
    expected = pnorm_np(a - b + 1e-6, p, keepdims=keepdim)
    assert_close(F.pairwise_distance(x1, x2, p=p, keepdim=keepdim), expected, rtol=1e-5, atol=1e-6)
    assert_close(nn.PairwiseDistance(p=p, keepdim=keepdim)(x1, x2), expected, rtol=1e-5, atol=1e-6)


def test_pairwise_distance_broadcasts_1d_and_non_contiguous(device):
    a, b = rand(4, 6), rand(6, seed=1)
    x1, x2 = on(device, a, b)
    assert_close(F.pairwise_distance(x1, x2), pnorm_np(a - b + 1e-6, 2), atol=1e-6)
    assert_close(F.pairwise_distance(x2, x2.flip(0)), pnorm_np(b - b[::-1] + 1e-6, 2), atol=1e-6)
    assert_close(F.pairwise_distance(x1.T, x1.T), pnorm_np(np.full((6, 4), 1e-6), 2), rtol=1e-4)


@pytest.mark.parametrize("p", [2.0, 1.0, 3.0, 1.5, math.inf])
def test_pairwise_distance_gradients(p):
    gradcheck(lambda x, y: F.pairwise_distance(x, y, p=p), rand(3, 4, seed=4), rand(3, 4, seed=5))


def test_pairwise_distance_rejects_bad_p_and_shapes():
    with pytest.raises(ValueError, match="pairwise_distance: p must be non-negative"):
        F.pairwise_distance(sg.zeros(2, 3), sg.zeros(2, 3), p=-1)
    with pytest.raises(RuntimeError, match="pairwise_distance: shapes"):
        F.pairwise_distance(sg.zeros(2, 3), sg.zeros(2, 4))


@pytest.mark.parametrize("p,dim", [(2.0, 1), (1.0, 1), (2.0, 0), (3.0, -1)])
def test_normalize_matches_formula(device, p, dim):
    a = rand(4, 5, 2)
    (x,) = on(device, a)
    expected = a / np.maximum(pnorm_np(a, p, axis=dim, keepdims=True), 1e-12)
    assert_close(F.normalize(x, p=p, dim=dim), expected, atol=1e-6)


def test_normalize_gradients_and_zero_rows_stay_finite():
    gradcheck(lambda x: F.normalize(x, dim=1), rand(3, 4, seed=6))
    gradcheck(lambda x: F.normalize(x, p=1.0, dim=0), rand(3, 4, seed=7))
    a = np.stack([np.zeros(3), [1.0, -2.0, 2.0]])
    x = sg.tensor(a, requires_grad=True)
    out = F.normalize(x)
    (out * sg.tensor(rand(2, 3).astype(np.float64))).sum().backward()
    assert_close(out, np.stack([np.zeros(3), a[1] / 3]))
    assert np.isfinite(x.grad.numpy()).all()


# ----- elementwise regression losses -----


def smooth_l1_np(x, t, beta=1.0):
    d = np.abs(x - t)
    return d if beta == 0 else np.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta)


def huber_np(x, t, delta=1.0):
    d = np.abs(x - t)
    return np.where(d < delta, 0.5 * d * d, delta * (d - 0.5 * delta))


REGRESSION = {
    "l1_loss": (lambda x, t, **kw: F.l1_loss(x, t, **kw), lambda x, t: np.abs(x - t), nn.L1Loss),
    "smooth_l1_loss": (F.smooth_l1_loss, smooth_l1_np, nn.SmoothL1Loss),
    "smooth_l1_loss_beta": (
        lambda x, t, **kw: F.smooth_l1_loss(x, t, beta=0.5, **kw),
        lambda x, t: smooth_l1_np(x, t, 0.5),
        lambda **kw: nn.SmoothL1Loss(beta=0.5, **kw),
    ),
    "smooth_l1_loss_beta0": (
        lambda x, t, **kw: F.smooth_l1_loss(x, t, beta=0.0, **kw),
        lambda x, t: smooth_l1_np(x, t, 0.0),
        lambda **kw: nn.SmoothL1Loss(beta=0.0, **kw),
    ),
    "huber_loss": (F.huber_loss, huber_np, nn.HuberLoss),
    "huber_loss_delta": (
        lambda x, t, **kw: F.huber_loss(x, t, delta=0.3, **kw),
        lambda x, t: huber_np(x, t, 0.3),
        lambda **kw: nn.HuberLoss(delta=0.3, **kw),
    ),
}


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", list(REGRESSION))
def test_regression_losses_match_formula(device, name, reduction):
    fn, ref, module = REGRESSION[name]
    a, b = rand(5, 3, low=-2, high=2), rand(5, 3, low=-2, high=2, seed=1)
    x, t = on(device, a, b)
    expected = reduce_np(ref(a.astype(np.float64), b), reduction).astype(np.float32)
    assert_close(fn(x, t, reduction=reduction), expected, atol=1e-6)
    assert_close(module(reduction=reduction)(x, t), expected, atol=1e-6)
    assert_close(fn(x.T, t.T, reduction=reduction), reduce_np(ref(a.T.astype(np.float64), b.T), reduction), atol=1e-6)


@pytest.mark.parametrize("name", list(REGRESSION))
def test_regression_loss_gradients(name):
    fn, _, _ = REGRESSION[name]
    a, b = rand(4, 3, low=-2, high=2, seed=2), rand(4, 3, low=-2, high=2, seed=3)
    gradcheck(lambda x, t: fn(x, t, reduction="none"), a, b)
    gradcheck(lambda x, t: fn(x, t), a, b)


@pytest.mark.parametrize("name", ["l1_loss", "smooth_l1_loss", "huber_loss"])
def test_regression_losses_warn_on_broadcast_and_name_the_loss_on_bad_shapes(name):
    fn = getattr(F, name)
    with pytest.warns(UserWarning, match=f"{name}: target size"):
        fn(sg.zeros(4, 1), sg.zeros(4))
    with pytest.raises(RuntimeError, match=f"{name}: shapes"):
        fn(sg.zeros(4, 3), sg.zeros(4, 2))
    with pytest.raises(ValueError, match="'avg' is not a valid value for reduction"):
        fn(sg.zeros(4), sg.zeros(4), reduction="avg")


def test_smooth_l1_and_huber_reject_bad_thresholds():
    with pytest.raises(ValueError, match="smooth_l1_loss does not support negative values for beta"):
        F.smooth_l1_loss(sg.zeros(2), sg.zeros(2), beta=-1.0)
    with pytest.raises(ValueError, match="huber_loss does not support non-positive values for delta"):
        F.huber_loss(sg.zeros(2), sg.zeros(2), delta=0.0)


def test_legacy_size_average_and_reduce_arguments():
    x, t = on("numpy", f32([1.0, -2.0, 4.0]), f32([0.0, 0.0, 0.0]))
    with pytest.warns(UserWarning, match="size_average and reduce args will be deprecated"):
        assert F.l1_loss(x, t, size_average=False).item() == 7.0
    with pytest.warns(UserWarning):
        assert_close(nn.L1Loss(reduce=False)(x, t), f32([1.0, 2.0, 4.0]))
    with pytest.warns(UserWarning):
        assert nn.MarginRankingLoss(0.0, False).reduction == "sum"


# ----- kl_div -----


def kl_np(inp, t, reduction, log_target=False):
    if log_target:
        loss = np.exp(t) * (t - inp)
    else:
        loss = np.where(t == 0, 0.0, t * np.log(np.where(t == 0, 1.0, t))) - t * inp
    if reduction == "batchmean":
        return loss.sum() / inp.shape[0]
    return reduce_np(loss, reduction)


@pytest.mark.parametrize("log_target", [False, True])
@pytest.mark.parametrize("reduction", ["batchmean", "sum", "none", "mean"])
def test_kl_div_matches_formula(device, reduction, log_target):
    logits = rand(4, 5, low=-2, high=2)
    inp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    p = np.exp(rand(4, 5, seed=1))
    p /= p.sum(1, keepdims=True)
    p[0, 1] = 0.0  # a zero probability counts as 0 * log(0) = 0
    t = np.log(p + 1e-30) if log_target else p
    x, tt = on(device, f32(inp), f32(t))
    expected = kl_np(inp.astype(np.float64), t.astype(np.float64), reduction, log_target).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_close(F.kl_div(x, tt, reduction=reduction, log_target=log_target), expected, atol=1e-6)
        assert_close(nn.KLDivLoss(reduction=reduction, log_target=log_target)(x, tt), expected, atol=1e-6)


def test_kl_div_mean_warns_like_torch_and_gradients():
    with pytest.warns(UserWarning, match="'batchmean' divides only by the batch size"):
        F.kl_div(sg.zeros(2, 3), sg.ones(2, 3) / 3)
    p = np.exp(rand(3, 4, seed=2).astype(np.float64))
    gradcheck(lambda x, t: F.kl_div(x, t, reduction="batchmean"), rand(3, 4, seed=3), p / p.sum(1, keepdims=True))
    gradcheck(lambda x, t: F.kl_div(x, t, reduction="sum", log_target=True), rand(3, 4, seed=3), rand(3, 4, seed=4))


def test_kl_div_rejects_bad_reduction_and_shapes():
    with pytest.raises(ValueError, match="'batch' is not a valid value for reduction"):
        F.kl_div(sg.zeros(2, 3), sg.zeros(2, 3), reduction="batch")
    with pytest.raises(ValueError, match="'batch' is not a valid value"):
        nn.KLDivLoss(reduction="batch")
    with pytest.raises(RuntimeError, match="kl_div: shapes"):
        F.kl_div(sg.zeros(2, 3), sg.zeros(2, 4), reduction="sum")


# ----- binary_cross_entropy -----


def bce_np(x, t, w=None):
    with np.errstate(divide="ignore"):
        loss = -(t * np.maximum(np.log(x), -100) + (1 - t) * np.maximum(np.log(1 - x), -100))
    return loss if w is None else loss * w


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_binary_cross_entropy_matches_formula(device, reduction, weighted):
    p, t = rand(4, 3, low=0.01, high=0.99), rand(4, 3, low=0, high=1, seed=1)
    w = rand(3, low=0.5, high=2, seed=2) if weighted else None
    x, tt = on(device, p, t)
    wt = on(device, w)[0] if weighted else None
    expected = reduce_np(bce_np(p.astype(np.float64), t, w), reduction).astype(np.float32)
    assert_close(F.binary_cross_entropy(x, tt, wt, reduction=reduction), expected, rtol=1e-5, atol=1e-6)
    assert_close(nn.BCELoss(weight=wt, reduction=reduction)(x, tt), expected, rtol=1e-5, atol=1e-6)


def test_binary_cross_entropy_clamps_log_at_minus_100(device):
    p, t = f32([0.0, 1.0, 0.0, 1.0, 0.5]), f32([1.0, 0.0, 0.0, 1.0, 1.0])
    x = sg.tensor(p, device=device, requires_grad=True)
    tt = sg.tensor(t, device=device)
    loss = F.binary_cross_entropy(x, tt, reduction="none")
    loss.sum().backward()
    assert_close(loss, f32([100.0, 100.0, 0.0, 0.0, math.log(2)]), atol=1e-6)
    assert np.isfinite(x.grad.numpy()).all()


def test_binary_cross_entropy_gradients():
    p, t = rand(3, 4, low=0.05, high=0.95, seed=3), rand(3, 4, low=0, high=1, seed=4)
    gradcheck(lambda x, tt: F.binary_cross_entropy(x, tt), p, t)
    gradcheck(lambda x, w: F.binary_cross_entropy(x, sg.tensor(t.astype(np.float64)), w), p, rand(4, low=0.5, high=2))


def test_binary_cross_entropy_equals_with_logits_on_sigmoid(device):
    a, t = rand(6, 2, low=-4, high=4), rand(6, 2, low=0, high=1, seed=5)
    x, tt = on(device, a, t)
    assert_close(F.binary_cross_entropy(x.sigmoid(), tt), F.binary_cross_entropy_with_logits(x, tt).numpy(), rtol=1e-5)


def test_binary_cross_entropy_rejects_bad_inputs():
    with pytest.raises(ValueError, match="binary_cross_entropy: using a target size"):
        F.binary_cross_entropy(sg.full((3,), 0.5), sg.zeros(3, 1))
    with pytest.raises(RuntimeError, match="binary_cross_entropy: all elements of input should be between 0 and 1"):
        F.binary_cross_entropy(sg.tensor([0.5, 1.5]), sg.zeros(2))
    with pytest.raises(RuntimeError, match="binary_cross_entropy: weight of shape"):
        F.binary_cross_entropy(sg.full((2, 3), 0.5), sg.zeros(2, 3), weight=sg.ones(4, 2, 3))


# ----- poisson_nll_loss -----


def poisson_np(x, t, log_input=True, full=False, eps=1e-8):
    loss = np.exp(x) - t * x if log_input else x - t * np.log(x + eps)
    if full:
        ts = np.where(t > 1, t, 2.0)
        loss = loss + np.where(t > 1, ts * np.log(ts) - ts + 0.5 * np.log(2 * np.pi * ts), 0.0)
    return loss


@pytest.mark.parametrize("log_input", [True, False])
@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_poisson_nll_loss_matches_formula(device, log_input, full, reduction):
    a = rand(4, 3, low=-1, high=1) if log_input else rand(4, 3, low=0.1, high=3)
    t = f32(np.random.default_rng(1).poisson(2.0, size=(4, 3)))
    x, tt = on(device, a, t)
    expected = reduce_np(poisson_np(a.astype(np.float64), t, log_input, full), reduction).astype(np.float32)
    got = F.poisson_nll_loss(x, tt, log_input=log_input, full=full, reduction=reduction)
    assert_close(got, expected, rtol=1e-5, atol=1e-5)
    module = nn.PoissonNLLLoss(log_input=log_input, full=full, reduction=reduction)
    assert_close(module(x, tt), expected, rtol=1e-5, atol=1e-5)


def test_poisson_nll_loss_gradients():
    t = np.array([[0.0, 1.0, 3.0], [2.0, 5.0, 0.0]])
    gradcheck(lambda x: F.poisson_nll_loss(x, sg.tensor(t), full=True), rand(2, 3, seed=6))
    gradcheck(lambda x: F.poisson_nll_loss(x, sg.tensor(t), log_input=False), rand(2, 3, low=0.5, high=2, seed=7))


def test_poisson_nll_loss_names_itself_on_bad_shapes():
    with pytest.raises(RuntimeError, match="poisson_nll_loss: shapes"):
        F.poisson_nll_loss(sg.zeros(2, 3), sg.zeros(3, 2))


# ----- cosine_embedding_loss, margin_ranking_loss, triplet_margin_loss -----


def cosine_embedding_np(x1, x2, y, margin=0.0):
    d = x1.ndim - 1
    cos = (x1 * x2).sum(d) / np.sqrt(((x1 * x1).sum(d) + 1e-12) * ((x2 * x2).sum(d) + 1e-12))
    return np.where(y == 1, 1 - cos, 0.0) + np.where(y == -1, np.maximum(cos - margin, 0), 0.0)


@pytest.mark.parametrize("margin", [0.0, 0.3])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cosine_embedding_loss_matches_formula(device, margin, reduction):
    a, b = rand(6, 4), rand(6, 4, seed=1)
    y = np.array([1, -1, 1, -1, -1, 1])
    x1, x2 = on(device, a, b)
    yt = sg.tensor(y, device=device)
    expected = reduce_np(cosine_embedding_np(a.astype(np.float64), b, y, margin), reduction).astype(np.float32)
    assert_close(F.cosine_embedding_loss(x1, x2, yt, margin, reduction=reduction), expected, atol=1e-6)
    assert_close(nn.CosineEmbeddingLoss(margin, reduction=reduction)(x1, x2, yt), expected, atol=1e-6)
    # a single pair: (D,) inputs and a 0-d target
    one = F.cosine_embedding_loss(x1[1], x2[1], sg.tensor(-1, device=device), margin)
    assert_close(one, cosine_embedding_np(a[1:2], b[1:2], y[1:2], margin)[0].astype(np.float32), atol=1e-6)


def test_cosine_embedding_loss_gradients_and_bad_shapes():
    y = sg.tensor(np.array([1.0, -1.0, -1.0]))
    gradcheck(lambda x1, x2: F.cosine_embedding_loss(x1, x2, y, 0.1, reduction="none"), rand(3, 4, seed=2), rand(3, 4, seed=3))
    with pytest.raises(RuntimeError, match="cosine_embedding_loss: 1D target tensor expects 2D input tensors"):
        F.cosine_embedding_loss(sg.zeros(2, 3, 4), sg.zeros(2, 3, 4), sg.ones(2))
    with pytest.raises(RuntimeError, match="cosine_embedding_loss: 0D or 1D target"):
        F.cosine_embedding_loss(sg.zeros(2, 3), sg.zeros(2, 3), sg.ones(2, 1))
    with pytest.raises(RuntimeError, match="cosine_embedding_loss: input1 .* must agree"):
        F.cosine_embedding_loss(sg.zeros(2, 3), sg.zeros(2, 3), sg.ones(3))


@pytest.mark.parametrize("margin", [0.0, 0.5])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_margin_ranking_loss_matches_formula(device, margin, reduction):
    a, b = rand(7), rand(7, seed=1)
    y = f32([1, -1, 1, 1, -1, -1, 1])
    x1, x2, yt = on(device, a, b, y)
    expected = reduce_np(np.maximum(0, -y * (a - b) + margin), reduction)
    assert_close(F.margin_ranking_loss(x1, x2, yt, margin, reduction=reduction), expected, atol=1e-6)
    assert_close(nn.MarginRankingLoss(margin, reduction=reduction)(x1, x2, yt), expected, atol=1e-6)


def test_margin_ranking_loss_gradients_and_bad_dims():
    y = sg.tensor(np.array([1.0, -1.0, 1.0, -1.0]))
    gradcheck(lambda a, b: F.margin_ranking_loss(a, b, y, 0.2, reduction="none"), rand(4, seed=2), rand(4, seed=3))
    with pytest.raises(RuntimeError, match="margin_ranking_loss: all input tensors should have the same number of dims"):
        F.margin_ranking_loss(sg.zeros(4), sg.zeros(4), sg.ones(4, 1))


def triplet_np(a, p, n, margin=1.0, norm=2.0, eps=1e-6, swap=False):
    d_pos = pnorm_np(a - p + eps, norm)
    d_neg = pnorm_np(a - n + eps, norm)
    if swap:
        d_neg = np.minimum(d_neg, pnorm_np(p - n + eps, norm))
    return np.maximum(margin + d_pos - d_neg, 0)


@pytest.mark.parametrize("kw", [dict(), dict(margin=0.5, p=1.0), dict(swap=True), dict(p=3.0, swap=True, margin=2.0)], ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_triplet_margin_loss_matches_formula(device, kw, reduction):
    a, p, n = rand(6, 5), rand(6, 5, seed=1), rand(6, 5, seed=2)
    ta, tp, tn = on(device, a, p, n)
    margs = dict(margin=kw.get("margin", 1.0), norm=kw.get("p", 2.0), swap=kw.get("swap", False))
    expected = reduce_np(triplet_np(a.astype(np.float64), p, n, **margs), reduction).astype(np.float32)
    assert_close(F.triplet_margin_loss(ta, tp, tn, reduction=reduction, **kw), expected, atol=1e-5)
    assert_close(nn.TripletMarginLoss(reduction=reduction, **kw)(ta, tp, tn), expected, atol=1e-5)


def test_triplet_margin_loss_gradients_and_bad_dims():
    a, p, n = rand(3, 4, seed=3), rand(3, 4, seed=4), rand(3, 4, seed=5)
    gradcheck(lambda x, y, z: F.triplet_margin_loss(x, y, z, margin=2.0, swap=True, reduction="none"), a, p, n)
    with pytest.raises(RuntimeError, match="triplet_margin_loss: the anchor, positive, and negative tensors"):
        F.triplet_margin_loss(sg.zeros(3, 4), sg.zeros(4), sg.zeros(3, 4))
    with pytest.raises(RuntimeError, match="triplet_margin_loss: shapes"):
        F.triplet_margin_loss(sg.zeros(3, 4), sg.zeros(3, 5), sg.zeros(3, 4))


def test_losses_reject_integer_inputs_and_mixed_devices(webgpu):
    with pytest.raises(RuntimeError, match="l1_loss: expected a floating point input"):
        F.l1_loss(sg.tensor([1, 2]), sg.tensor([1, 2]))
    with pytest.raises(RuntimeError, match="huber_loss"):
        F.huber_loss(sg.zeros(3, device="numpy"), sg.zeros(3, device=webgpu))


# ----- cross_entropy / nll_loss with a negative ignore_index -----


def ce_ignore_np(x, t, ignore_index, reduction, weight=None):
    m = x.max(1, keepdims=True)
    logp = x - m - np.log(np.exp(x - m).sum(1, keepdims=True))
    return nll_np(logp, t, weight, ignore_index, reduction)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("computed_target", [False, True])
def test_cross_entropy_with_ignore_index_minus_one(device, reduction, computed_target):
    # 2-D logits without weight take the fused CrossEntropy op; a target computed by a kernel
    # is not range-checked on the host, and -1 must still be ignored on the device
    a = rand(6, 4, low=-3, high=3)
    t = np.array([0, -1, 2, -1, 3, 1])
    x = sg.tensor(a, device=device, requires_grad=True)
    tt = sg.tensor(t + 1, device=device) - 1 if computed_target else sg.tensor(t, device=device)
    loss = F.cross_entropy(x, tt, ignore_index=-1, reduction=reduction)
    assert_close(loss, ce_ignore_np(a.astype(np.float64), t, -1, reduction).astype(np.float32), atol=1e-6)
    loss.sum().backward()
    grad = x.grad.numpy()
    assert (grad[t == -1] == 0).all() and np.abs(grad[t != -1]).sum() > 0


@pytest.mark.parametrize("kw", [dict(weight=True), dict(label_smoothing=0.0, spatial=True)], ids=str)
def test_cross_entropy_composite_path_with_ignore_index_minus_one(device, kw):
    spatial = kw.pop("spatial", False)
    w = f32([0.5, 2.0, 1.0, 3.0]) if kw.pop("weight", False) else None
    a = rand(3, 4, 2, low=-3, high=3) if spatial else rand(6, 4, low=-3, high=3)
    t = np.array([[0, -1], [-1, 3], [2, 1]]) if spatial else np.array([0, -1, 2, -1, 3, 1])
    x, tt = on(device, a)[0], sg.tensor(t, device=device)
    wt = sg.tensor(w, device=device) if w is not None else None
    ref_x = np.moveaxis(a, 1, -1).reshape(-1, 4) if spatial else a
    expected = ce_ignore_np(ref_x.astype(np.float64), t.reshape(-1), -1, "mean", w)
    assert_close(F.cross_entropy(x, tt, wt, ignore_index=-1), np.float32(expected), atol=1e-6)
    assert_close(nn.CrossEntropyLoss(wt, ignore_index=-1)(x, tt), np.float32(expected), atol=1e-6)
    logp = F.log_softmax(x, 1)
    assert_close(F.nll_loss(logp, tt, wt, ignore_index=-1), np.float32(expected), atol=1e-6)
    assert_close(nn.NLLLoss(wt, ignore_index=-1)(logp, tt), np.float32(expected), atol=1e-6)


def test_negative_targets_that_are_not_ignored_are_reported():
    with pytest.raises(IndexError, match="cross_entropy: target -1 is out of bounds for 4 classes"):
        F.cross_entropy(sg.zeros(3, 4), sg.tensor([0, -1, 2]))
    with pytest.raises(IndexError, match="nll_loss: target -2 is out of bounds"):
        F.nll_loss(sg.zeros(3, 4), sg.tensor([0, -2, -1]), ignore_index=-1)
