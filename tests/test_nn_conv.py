"""conv2d, max_pool2d and avg_pool2d (functional and modules) against NumPy loops that
follow PyTorch's documented definitions, with finite-difference gradient checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

import smolgrad as sg
import smolgrad.nn.functional as F
from smolgrad import nn
from smolgrad.engine.schedule import schedule
from helpers import assert_close, gradcheck, on, rand

# ----- NumPy references -----


def out_size(n, k, s, p, d, ceil_mode=False):
    span = n + 2 * p - d * (k - 1) - 1
    out = (math.ceil(span / s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def conv2d_ref(x, w, b=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    n, c, h, wd = x.shape
    oc, cg, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    oh, ow = out_size(h, kh, sh, ph, dh), out_size(wd, kw, sw, pw, dw)
    out = np.zeros((n, oc, oh, ow), dtype=np.float64)
    ocg = oc // groups
    for g in range(groups):
        for i in range(oh):
            for j in range(ow):
                patch = xp[:, g * cg : (g + 1) * cg, i * sh : i * sh + dh * (kh - 1) + 1 : dh, j * sw : j * sw + dw * (kw - 1) + 1 : dw]
                out[:, g * ocg : (g + 1) * ocg, i, j] = np.einsum("nckl,ockl->no", patch, w[g * ocg : (g + 1) * ocg])
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out


def pool_ref(x, k, s, p, d=(1, 1), ceil_mode=False, kind="max", count_include_pad=True, divisor=None):
    n, c, h, w = x.shape
    oh, ow = out_size(h, k[0], s[0], p[0], d[0], ceil_mode), out_size(w, k[1], s[1], p[1], d[1], ceil_mode)
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            if kind == "max":
                rows = [i * s[0] - p[0] + a * d[0] for a in range(k[0])]
                cols = [j * s[1] - p[1] + b * d[1] for b in range(k[1])]
                rows = [r for r in rows if 0 <= r < h]
                cols = [q for q in cols if 0 <= q < w]
                # (a dilated window may fall wholly in the padding: -inf, as in torch)
                out[:, :, i, j] = x[:, :, rows][:, :, :, cols].max(axis=(2, 3)) if rows and cols else -np.inf
            else:  # torch's avg_pool2d divisor rule
                h0, w0 = i * s[0] - p[0], j * s[1] - p[1]
                h1, w1 = min(h0 + k[0], h + p[0]), min(w0 + k[1], w + p[1])
                size = (h1 - h0) * (w1 - w0)
                h0, w0, h1, w1 = max(h0, 0), max(w0, 0), min(h1, h), min(w1, w)
                total = x[:, :, h0:h1, w0:w1].sum(axis=(2, 3))
                div = divisor or (size if count_include_pad else (h1 - h0) * (w1 - w0))
                out[:, :, i, j] = total / div
    return out


def distinct(*shape, seed=0):
    n = int(np.prod(shape))
    return (np.random.default_rng(seed).permutation(n) * 0.1 - n * 0.05).reshape(shape)


# ----- conv2d forward -----

CONV_CASES = [
    dict(),
    dict(stride=(2, 2)),
    dict(padding=(1, 1)),
    dict(padding=(2, 1), stride=(2, 3)),
    dict(dilation=(2, 1), padding=(1, 0)),
    dict(stride=(2, 1), dilation=(2, 2), padding=(2, 2)),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=[str(c) for c in CONV_CASES])
def test_conv2d_matches_numpy(device, case):
    x, w, b = rand(2, 3, 7, 8, seed=1), rand(4, 3, 3, 2, seed=2), rand(4, seed=3)
    xs, ws, bs = on(device, x, w, b)
    out = F.conv2d(xs, ws, bs, **case)
    expected = conv2d_ref(x.astype(np.float64), w, b, **{k: v for k, v in case.items()})
    assert_close(out, expected.astype(np.float32), rtol=1e-4, atol=1e-5)


def test_conv2d_groups_matches_numpy(device):
    x, w = rand(2, 4, 5, 5, seed=1), rand(6, 2, 3, 3, seed=2)
    xs, ws = on(device, x, w)
    assert_close(F.conv2d(xs, ws, groups=2), conv2d_ref(x, w, groups=2).astype(np.float32), rtol=1e-4, atol=1e-5)


def test_conv2d_without_bias_and_int_arguments():
    x, w = rand(1, 2, 6, 6, seed=1), rand(3, 2, 3, 3, seed=2)
    out = F.conv2d(sg.tensor(x), sg.tensor(w), stride=2, padding=1, dilation=1)
    assert_close(out, conv2d_ref(x, w, stride=(2, 2), padding=(1, 1)).astype(np.float32), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("k", [3, 4])
def test_conv2d_same_padding_keeps_size_and_pads_extra_on_the_right(k):
    x, w = rand(1, 1, 6, 7, seed=1), rand(1, 1, k, k, seed=2)
    out = F.conv2d(sg.tensor(x), sg.tensor(w), padding="same")
    assert out.shape == (1, 1, 6, 7)
    total = k - 1
    xp = np.pad(x, ((0, 0), (0, 0), (total // 2, total - total // 2), (total // 2, total - total // 2)))
    assert_close(out, conv2d_ref(xp, w).astype(np.float32), rtol=1e-4, atol=1e-5)


def test_conv2d_valid_padding_is_no_padding():
    x, w = rand(1, 2, 5, 5), rand(2, 2, 3, 3)
    assert F.conv2d(sg.tensor(x), sg.tensor(w), padding="valid").shape == (1, 2, 3, 3)


def test_conv2d_unbatched_input():
    x, w = rand(2, 5, 5, seed=1), rand(3, 2, 3, 3, seed=2)
    out = F.conv2d(sg.tensor(x), sg.tensor(w))
    assert_close(out, conv2d_ref(x[None], w)[0].astype(np.float32), rtol=1e-4, atol=1e-5)


def test_conv2d_channel_mismatch_error_names_shapes():
    with pytest.raises(RuntimeError, match=r"weight of size \[4, 3, 3, 3\].*to have 3 channels, but got 2"):
        F.conv2d(sg.zeros(1, 2, 5, 5), sg.zeros(4, 3, 3, 3))


def test_conv2d_input_smaller_than_kernel_raises():
    with pytest.raises(RuntimeError, match="too small"):
        F.conv2d(sg.zeros(1, 1, 2, 2), sg.zeros(1, 1, 3, 3))


def test_conv2d_device_mismatch_raises(webgpu):
    with pytest.raises(RuntimeError, match="device"):
        F.conv2d(sg.zeros(1, 1, 4, 4, device="numpy"), sg.zeros(1, 1, 3, 3, device=webgpu))


# ----- conv2d gradients -----


@pytest.mark.parametrize("case", CONV_CASES, ids=[str(c) for c in CONV_CASES])
def test_conv2d_gradients(case):
    gradcheck(lambda x, w, b: F.conv2d(x, w, b, **case), rand(2, 2, 6, 7, seed=1), rand(3, 2, 3, 2, seed=2), rand(3, seed=3))


def test_conv2d_groups_gradients():
    gradcheck(lambda x, w: F.conv2d(x, w, groups=2, padding=1), rand(1, 4, 4, 4, seed=1), rand(4, 2, 2, 3, seed=2))


def test_conv2d_stacked_gradients_through_two_layers():
    def net(x, w1, w2):
        return F.conv2d(F.conv2d(x, w1, padding=1).tanh(), w2, stride=2)

    gradcheck(net, rand(1, 1, 6, 6, seed=1), rand(2, 1, 3, 3, seed=2), rand(2, 2, 3, 3, seed=3))


def test_conv2d_backward_on_webgpu_matches_numpy(webgpu):
    x, w, b = rand(2, 2, 6, 6, seed=1), rand(3, 2, 3, 3, seed=2), rand(3, seed=3)
    grads = {}
    for dev in ("numpy", webgpu):
        ts = [sg.tensor(a, device=dev, requires_grad=True) for a in (x, w, b)]
        F.conv2d(*ts, stride=2, padding=1).square().sum().backward()
        grads[dev] = [t.grad.numpy() for t in ts]
    for a, b_ in zip(grads["numpy"], grads[webgpu]):
        np.testing.assert_allclose(b_, a, rtol=1e-4, atol=1e-4)


# ----- the window view and its backward -----


def test_conv2d_reads_input_through_a_zero_copy_window_view():
    x = sg.tensor(rand(1, 2, 5, 5)).realize()
    cols = F._windows(x, [((0, 0), 3), ((0, 0), 3)], (3, 3), (1, 1), (1, 1))
    assert cols.shape == (1, 2, 3, 3, 3, 3)
    assert cols.lazydata.base is x.lazydata


def test_window_backward_is_one_pad_and_one_sum():
    x = sg.tensor(rand(2, 3, 9, 9), requires_grad=True)
    cols = F._windows(x, [((0, 0), 4), ((0, 0), 4)], (3, 3), (2, 2), (1, 1))
    g = sg.tensor(rand(*cols.shape)).realize()
    cols.backward(g)
    kernels = schedule([x.grad.lazydata.base]).kernels
    assert len(kernels) <= 2, [k.name for k in kernels]


# ----- Conv2d module -----


def test_conv2d_module_forward_uses_its_parameters():
    conv = nn.Conv2d(2, 3, (3, 2), stride=2, padding=1, dilation=1)
    assert conv.weight.shape == (3, 2, 3, 2) and conv.bias.shape == (3,)
    x = rand(1, 2, 6, 6)
    expected = conv2d_ref(x, conv.weight.detach().numpy(), conv.bias.detach().numpy(), stride=(2, 2), padding=(1, 1))
    assert_close(conv(sg.tensor(x)), expected.astype(np.float32), rtol=1e-4, atol=1e-5)


def test_conv2d_module_repr():
    assert repr(nn.Conv2d(1, 32, 3)) == "Conv2d(1, 32, kernel_size=(3, 3), stride=(1, 1))"
    assert (
        repr(nn.Conv2d(4, 8, 3, stride=2, padding=1, dilation=2, groups=2, bias=False))
        == "Conv2d(4, 8, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), dilation=(2, 2), groups=2, bias=False)"
    )


def test_conv2d_module_without_bias_has_one_parameter():
    conv = nn.Conv2d(1, 2, 3, bias=False)
    assert conv.bias is None
    assert [n for n, _ in conv.named_parameters()] == ["weight"]


# ----- max_pool2d -----

POOL_CASES = [
    dict(k=(2, 2), s=(2, 2), p=(0, 0)),
    dict(k=(3, 3), s=(2, 2), p=(1, 1)),
    dict(k=(3, 2), s=(1, 2), p=(1, 0)),
    dict(k=(2, 2), s=(2, 2), p=(0, 0), ceil_mode=True),
    dict(k=(3, 3), s=(2, 2), p=(1, 1), ceil_mode=True),
]


@pytest.mark.parametrize("case", POOL_CASES, ids=[str(c) for c in POOL_CASES])
def test_max_pool2d_matches_numpy(device, case):
    x = rand(2, 3, 7, 6)
    (xs,) = on(device, x)
    out = F.max_pool2d(xs, case["k"], case["s"], case["p"], ceil_mode=case.get("ceil_mode", False))
    assert_close(out, pool_ref(x, case["k"], case["s"], case["p"], ceil_mode=case.get("ceil_mode", False)).astype(np.float32))


def test_max_pool2d_dilation_matches_numpy():
    x = rand(1, 2, 7, 7)
    out = F.max_pool2d(sg.tensor(x), 2, stride=1, padding=1, dilation=2)
    assert_close(out, pool_ref(x, (2, 2), (1, 1), (1, 1), d=(2, 2)).astype(np.float32))


def test_max_pool2d_stride_defaults_to_kernel_size():
    assert F.max_pool2d(sg.zeros(1, 1, 8, 6), 2).shape == (1, 1, 4, 3)
    assert nn.MaxPool2d(3)(sg.zeros(1, 1, 9, 9)).shape == (1, 1, 3, 3)


@pytest.mark.parametrize("case", POOL_CASES, ids=[str(c) for c in POOL_CASES])
def test_max_pool2d_gradients(case):
    gradcheck(lambda x: F.max_pool2d(x, case["k"], case["s"], case["p"], ceil_mode=case.get("ceil_mode", False)), distinct(1, 2, 5, 6))


def test_max_pool2d_splits_gradient_evenly_among_tied_maxima():
    x = sg.tensor(np.array([[[[1.0, 1.0], [0.0, 1.0]]]]), requires_grad=True)
    F.max_pool2d(x, 2).sum().backward()
    assert_close(x.grad, np.array([[[[1 / 3, 1 / 3], [0.0, 1 / 3]]]], np.float32))


def test_max_pool2d_padding_larger_than_half_kernel_raises():
    with pytest.raises(RuntimeError, match="pad should be at most half"):
        F.max_pool2d(sg.zeros(1, 1, 4, 4), 2, padding=2)


# ----- avg_pool2d -----

AVG_CASES = [
    dict(k=(2, 2), s=(2, 2), p=(0, 0)),
    dict(k=(3, 3), s=(2, 2), p=(1, 1)),
    dict(k=(3, 3), s=(2, 2), p=(1, 1), count_include_pad=False),
    dict(k=(3, 2), s=(2, 1), p=(1, 1), ceil_mode=True),
    dict(k=(3, 3), s=(2, 2), p=(1, 1), ceil_mode=True, count_include_pad=False),
]


@pytest.mark.parametrize("case", AVG_CASES, ids=[str(c) for c in AVG_CASES])
def test_avg_pool2d_matches_numpy(device, case):
    x = rand(2, 2, 7, 6)
    (xs,) = on(device, x)
    ceil, cip = case.get("ceil_mode", False), case.get("count_include_pad", True)
    out = F.avg_pool2d(xs, case["k"], case["s"], case["p"], ceil_mode=ceil, count_include_pad=cip)
    expected = pool_ref(x, case["k"], case["s"], case["p"], ceil_mode=ceil, kind="avg", count_include_pad=cip)
    assert_close(out, expected.astype(np.float32))


def test_avg_pool2d_divisor_override():
    x = rand(1, 1, 4, 4)
    out = F.avg_pool2d(sg.tensor(x), 2, divisor_override=3)
    assert_close(out, pool_ref(x, (2, 2), (2, 2), (0, 0), kind="avg", divisor=3).astype(np.float32))


@pytest.mark.parametrize("case", AVG_CASES, ids=[str(c) for c in AVG_CASES])
def test_avg_pool2d_gradients(case):
    ceil, cip = case.get("ceil_mode", False), case.get("count_include_pad", True)
    gradcheck(lambda x: F.avg_pool2d(x, case["k"], case["s"], case["p"], ceil_mode=ceil, count_include_pad=cip), rand(1, 2, 5, 6))


def test_pool_modules_match_functional():
    x = sg.tensor(rand(1, 2, 6, 6))
    assert_close(nn.MaxPool2d(3, stride=2, padding=1)(x), F.max_pool2d(x, 3, 2, 1).numpy())
    assert_close(nn.AvgPool2d(2)(x), F.avg_pool2d(x, 2).numpy())
    assert repr(nn.MaxPool2d(2)) == "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)"
    assert repr(nn.AvgPool2d(2)) == "AvgPool2d(kernel_size=2, stride=2, padding=0)"


# ----- a small CNN end to end -----


def test_small_cnn_forward_and_backward_on_device(device):
    sg.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(4, 3)
    ).to(device)
    x = sg.randn(2, 1, 8, 8, device=device)
    loss = F.cross_entropy(net(x), sg.tensor([0, 2], device=device))
    loss.backward()
    assert np.isfinite(loss.item())
    assert all(p.grad is not None and p.grad.shape == p.shape for p in net.parameters())
