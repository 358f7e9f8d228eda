"""F.pad's reflect / replicate / circular modes and the padding layers (ZeroPad, ConstantPad,
ReflectionPad, ReplicationPad, CircularPad 1d/2d/3d) against np.pad; channel dropout
(Dropout1d/2d/3d, F.dropout1d/2d/3d) and in-place dropout."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_close, gradcheck, noncontiguous_tensor, on, rand

import smolgrad as sg
import smolgrad.nn.functional as F
from smolgrad import nn

NP_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def index_map(mode: str, j: np.ndarray, n: int) -> np.ndarray:
    """Where out[i] reads x from, j = i - lo (torch's kernels), for any sign of padding."""
    if mode == "reflect":
        j = np.abs(j)
        return np.where(j > n - 1, 2 * (n - 1) - j, j)
    if mode == "replicate":
        return np.clip(j, 0, n - 1)
    return j % n


def pad_np(a: np.ndarray, pad, mode: str, value: float = 0.0) -> np.ndarray:
    """torch's F.pad: pad = (last_lo, last_hi, second_last_lo, ...), negative amounts crop."""
    out = a
    for i in range(len(pad) // 2):
        d = a.ndim - 1 - i
        lo, hi, n = pad[2 * i], pad[2 * i + 1], a.shape[d]
        j = np.arange(-lo, n + hi)
        if mode == "constant":
            taken = np.take(out, np.clip(j, 0, n - 1), axis=d)
            inside = ((j >= 0) & (j < n)).reshape((-1,) + (1,) * (a.ndim - 1 - d))
            out = np.where(inside, taken, np.float32(value)).astype(a.dtype)
        else:
            out = np.take(out, index_map(mode, j, n), axis=d)
    return out


def test_pad_np_reference_agrees_with_np_pad():
    a = rand(2, 3, 4, 5, seed=0)
    for mode, np_mode in NP_MODE.items():
        for pad in [(1, 2), (2, 1, 0, 2), (1, 1, 2, 2, 1, 0)]:
            k = len(pad) // 2
            widths = [(0, 0)] * (a.ndim - k) + [(pad[2 * i], pad[2 * i + 1]) for i in reversed(range(k))]
            np.testing.assert_array_equal(pad_np(a, pad, mode), np.pad(a, widths, mode=np_mode))


# (input shape, padding): 1, 2 and 3 padded dims, batched and not, odd sizes, negative (crop) amounts
CASES = [
    ((2, 3, 5), (2, 3)),
    ((3, 5), (4, 1)),
    ((2, 3, 4, 5), (1, 2, 3, 0)),
    ((3, 4, 5), (-1, 2, 2, -1)),
    ((1, 2, 3, 4, 5), (1, 0, 2, 1, 2, 2)),
    ((2, 3, 4, 5), (2, -2, -1, 3, 0, 1)),
]


@pytest.mark.parametrize("mode", list(NP_MODE))
@pytest.mark.parametrize("shape,pad", CASES)
def test_pad_modes_forward(device, mode, shape, pad):
    a = rand(*shape, seed=1)
    (x,) = on(device, a)
    assert_close(F.pad(x, pad, mode=mode), pad_np(a, pad, mode), rtol=0, atol=0)
    xs = noncontiguous_tensor(a, device=device)
    assert_close(F.pad(xs, pad, mode=mode), pad_np(a, pad, mode), rtol=0, atol=0)


@pytest.mark.parametrize("mode", list(NP_MODE))
@pytest.mark.parametrize("shape,pad", [((2, 3, 4), (2, 3)), ((1, 3, 4), (-1, 2, 1, 2)), ((1, 2, 3, 3, 3), (1, 2, 0, 1, 2, 1))])
def test_pad_modes_gradients(mode, shape, pad):
    a = rand(*shape, seed=2).astype(np.float64)
    gradcheck(lambda t: F.pad(t, pad, mode=mode), a)
    gradcheck(lambda t: F.pad(t, pad, mode=mode), a, noncontiguous=True)


def test_pad_modes_gradient_sums_the_reused_edges():
    x = sg.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    F.pad(x, (2, 2), mode="replicate").sum().backward()
    assert_close(x.grad, np.array([[3.0, 1.0, 3.0]]))
    x.grad = None
    F.pad(x, (2, 2), mode="reflect").sum().backward()  # [3 2 | 1 2 3 | 2 1]
    assert_close(x.grad, np.array([[2.0, 3.0, 2.0]]))
    x.grad = None
    F.pad(x, (3, 1), mode="circular").sum().backward()  # [1 2 3 | 1 2 3 | 1]
    assert_close(x.grad, np.array([[3.0, 2.0, 2.0]]))


def test_pad_modes_webgpu_gradients_match_numpy(webgpu):
    a = rand(2, 3, 4, 5, seed=3)
    w = rand(2, 3, 7, 8, seed=4)
    grads = {}
    for dev in ("numpy", webgpu):
        x, wt = on(dev, a, w)
        x.requires_grad_()
        y = F.pad(x, (1, 2, 2, 1), mode="reflect") + F.pad(x, (3, 0, 0, 3), mode="replicate")
        y = y + F.pad(x, (2, 1, 1, 2), mode="circular")
        (y * wt).sum().backward()
        grads[dev] = x.grad.numpy()
    assert_close(grads[webgpu], grads["numpy"], rtol=1e-5, atol=1e-5)


def test_constant_pad_value_none_is_zero():
    assert_close(F.pad(sg.ones(1, 2), (1, 0), value=None), np.array([[0.0, 1.0, 1.0]], dtype=np.float32))


def test_pad_mode_errors():
    x = sg.zeros(1, 2, 3)
    with pytest.raises(RuntimeError, match=r"reflect padding size should be less than the corresponding input dimension.*\(3, 0\)"):
        F.pad(x, (3, 0), mode="reflect")
    with pytest.raises(RuntimeError, match="circular padding .* wraps around more than once"):
        F.pad(x, (0, 4), mode="circular")
    assert F.pad(x, (3, 3), mode="circular").shape == (1, 2, 9)  # once around is fine
    with pytest.raises(NotImplementedError, match="mode 'reflect' pads the last 1, 2 or 3 dims"):
        F.pad(sg.zeros(3), (1, 1), mode="reflect")
    with pytest.raises(NotImplementedError, match="padding of length 8"):
        F.pad(sg.zeros(1, 1, 2, 2, 2, 2), (1,) * 8, mode="replicate")
    with pytest.raises(RuntimeError, match="doesn't take in value argument"):
        F.pad(x, (1, 1), mode="replicate", value=1.0)
    with pytest.raises(RuntimeError, match="empty or negative output size"):
        F.pad(x, (-2, -2), mode="replicate")
    with pytest.raises(RuntimeError, match="empty or negative output size"):
        F.pad(sg.zeros(1, 2, 0), (1, 1), mode="replicate")
    with pytest.raises(NotImplementedError, match="'wrap' is not supported"):
        F.pad(x, (1, 1), mode="wrap")


# ----- padding layers -----

LAYERS = {
    "ZeroPad1d": (lambda p: nn.ZeroPad1d(p), "constant", 0.0, 1),
    "ZeroPad2d": (lambda p: nn.ZeroPad2d(p), "constant", 0.0, 2),
    "ZeroPad3d": (lambda p: nn.ZeroPad3d(p), "constant", 0.0, 3),
    "ConstantPad1d": (lambda p: nn.ConstantPad1d(p, 3.5), "constant", 3.5, 1),
    "ConstantPad2d": (lambda p: nn.ConstantPad2d(p, -1.0), "constant", -1.0, 2),
    "ConstantPad3d": (lambda p: nn.ConstantPad3d(p, 2.0), "constant", 2.0, 3),
    "ReflectionPad1d": (lambda p: nn.ReflectionPad1d(p), "reflect", 0.0, 1),
    "ReflectionPad2d": (lambda p: nn.ReflectionPad2d(p), "reflect", 0.0, 2),
    "ReflectionPad3d": (lambda p: nn.ReflectionPad3d(p), "reflect", 0.0, 3),
    "ReplicationPad1d": (lambda p: nn.ReplicationPad1d(p), "replicate", 0.0, 1),
    "ReplicationPad2d": (lambda p: nn.ReplicationPad2d(p), "replicate", 0.0, 2),
    "ReplicationPad3d": (lambda p: nn.ReplicationPad3d(p), "replicate", 0.0, 3),
    "CircularPad1d": (lambda p: nn.CircularPad1d(p), "circular", 0.0, 1),
    "CircularPad2d": (lambda p: nn.CircularPad2d(p), "circular", 0.0, 2),
    "CircularPad3d": (lambda p: nn.CircularPad3d(p), "circular", 0.0, 3),
}
TUPLES = {1: (2, 1), 2: (1, 2, 2, 0), 3: (1, 0, 2, 1, 0, 2)}


@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("batched", [True, False])
def test_padding_layers(device, name, batched):
    make, mode, value, dims = LAYERS[name]
    shape = ((2,) if batched else ()) + (3,) + (4, 5, 3)[:dims]
    a = rand(*shape, seed=5)
    (x,) = on(device, a)
    layer = make(TUPLES[dims])
    assert layer.padding == TUPLES[dims]
    assert_close(layer(x), pad_np(a, TUPLES[dims], mode, value), rtol=0, atol=0)
    layer = make(2)
    assert layer.padding == (2,) * (2 * dims)
    assert_close(layer(x), pad_np(a, (2,) * (2 * dims), mode, value), rtol=0, atol=0)


@pytest.mark.parametrize("name", LAYERS)
def test_padding_layer_gradients(name):
    make, _, _, dims = LAYERS[name]
    a = rand(*(1, 2, 3, 3, 3)[: dims + 2], seed=6).astype(np.float64)
    gradcheck(make(TUPLES[dims]), a)


def test_padding_layer_reprs():
    assert repr(nn.ZeroPad2d(1)) == "ZeroPad2d((1, 1, 1, 1))"
    assert repr(nn.ConstantPad1d((1, 2), 3.5)) == "ConstantPad1d(padding=(1, 2), value=3.5)"
    assert repr(nn.ReflectionPad1d(2)) == "ReflectionPad1d((2, 2))"
    assert repr(nn.ReplicationPad3d((1, 2, 3, 4, 5, 6))) == "ReplicationPad3d((1, 2, 3, 4, 5, 6))"
    assert repr(nn.CircularPad2d(1)) == "CircularPad2d((1, 1, 1, 1))"


def test_padding_layer_errors():
    with pytest.raises(ValueError, match=r"ZeroPad2d: padding must be an int or a tuple of 4 ints, got \(1, 2\)"):
        nn.ZeroPad2d((1, 2))
    with pytest.raises(ValueError, match="ReflectionPad1d: padding must be an int or a tuple of 2 ints"):
        nn.ReflectionPad1d(1.5)
    with pytest.raises(ValueError, match=r"ReflectionPad2d: expected 3D or 4D input \(got 2D input"):
        nn.ReflectionPad2d(1)(sg.zeros(3, 3))
    with pytest.raises(ValueError, match=r"CircularPad1d: expected 2D or 3D input \(got 4D input"):
        nn.CircularPad1d(1)(sg.zeros(1, 1, 3, 3))
    with pytest.raises(ValueError, match="ConstantPad3d: expected an input with at least 3 dims"):
        nn.ConstantPad3d(1, 0.0)(sg.zeros(3, 3))
    with pytest.raises(RuntimeError, match="reflect padding size should be less"):
        nn.ReflectionPad2d(3)(sg.zeros(1, 3, 3))
    assert nn.ZeroPad2d(1)(sg.zeros(3, 3)).shape == (5, 5)  # constant pads need only the padded dims


# ----- channel dropout -----

DROPOUTS = {
    "1d": (F.dropout1d, nn.Dropout1d, [(4, 6, 5), (6, 5)]),
    "2d": (F.dropout2d, nn.Dropout2d, [(4, 6, 3, 2), (6, 3, 2)]),
    "3d": (F.dropout3d, nn.Dropout3d, [(2, 6, 2, 3, 2), (6, 2, 3, 2)]),
}


def _channels(a: np.ndarray, batched: bool) -> np.ndarray:
    """a as (channels, elements per channel)."""
    lead = 2 if batched else 1
    return a.reshape(int(np.prod(a.shape[:lead])), -1)


@pytest.mark.parametrize("kind", DROPOUTS)
@pytest.mark.parametrize("batched", [True, False])
def test_channel_dropout_zeroes_whole_channels_and_scales(device, kind, batched):
    fn, module, shapes = DROPOUTS[kind]
    shape = shapes[0 if batched else 1]
    a = rand(*shape, low=0.5, high=1.5, seed=7)  # no zeros in the input
    (x,) = on(device, a)
    p = 0.4
    out = fn(x, p)
    o, ref = _channels(out.numpy(), batched), _channels(a, batched)
    kept = np.all(o != 0, axis=1)
    dropped = np.all(o == 0, axis=1)
    assert np.all(kept | dropped), "a channel was partly zeroed"
    assert 0 < kept.sum() < len(kept)
    np.testing.assert_allclose(o[kept], ref[kept] / (1 - p), rtol=1e-6)
    m = module(p)
    assert m.training
    o = _channels(m(x).numpy(), batched)
    assert np.all(np.all(o != 0, axis=1) | np.all(o == 0, axis=1))
    m.eval()
    assert m(x) is x
    assert fn(x, p, training=False) is x


@pytest.mark.parametrize("kind", DROPOUTS)
def test_channel_dropout_rate(kind):
    fn, _, _ = DROPOUTS[kind]
    shape = (200, 50) + (1,) * {"1d": 1, "2d": 2, "3d": 3}[kind]
    x = sg.ones(*shape)
    kept = (fn(x, 0.3).numpy().reshape(200 * 50) != 0).mean()
    assert abs(kept - 0.7) < 0.03  # 10000 channels: the standard deviation is 0.0046


def test_channel_dropout_uses_smolgrads_random_streams(device):
    (x,) = on(device, np.ones((3, 8, 4), dtype=np.float32))
    sg.manual_seed(123)
    first, second = F.dropout1d(x).numpy(), F.dropout1d(x).numpy()
    assert not np.array_equal(first, second)  # a new draw each call
    sg.manual_seed(123)
    np.testing.assert_array_equal(F.dropout1d(x).numpy(), first)
    np.testing.assert_array_equal(F.dropout1d(x).numpy(), second)


@pytest.mark.parametrize("kind", DROPOUTS)
def test_channel_dropout_gradient_uses_the_same_mask(kind):
    fn, _, shapes = DROPOUTS[kind]
    a = rand(*shapes[0], low=0.5, high=1.5, seed=8).astype(np.float64)
    w = rand(*shapes[0], seed=9).astype(np.float64)
    x = sg.tensor(a, requires_grad=True)
    out = fn(x, 0.5)
    (out * sg.tensor(w)).sum().backward()
    scale = out.detach().numpy() / a  # 0 or 2 per element
    np.testing.assert_allclose(x.grad.numpy(), w * scale, rtol=1e-12)
    assert set(np.unique(np.round(scale, 12))) <= {0.0, 2.0}


def test_channel_dropout_extremes(device):
    (x,) = on(device, rand(2, 3, 4, seed=10))
    assert_close(F.dropout1d(x, 1.0), np.zeros((2, 3, 4)))
    assert F.dropout1d(x, 0.0) is x


def test_channel_dropout_inplace(device):
    a = rand(4, 6, 3, 2, low=0.5, high=1.5, seed=11)
    (x,) = on(device, a)
    base = x.clone()
    view = base[1:]
    out = F.dropout2d(view, 0.5, inplace=True)
    assert out is view
    expected = a.copy()
    expected[1:] = out.numpy()
    assert_close(base, expected)
    ch = _channels(out.numpy(), True)
    assert np.all(np.all(ch != 0, axis=1) | np.all(ch == 0, axis=1))
    m = nn.Dropout3d(0.5, inplace=True)
    (y,) = on(device, rand(2, 3, 2, 2, 2, seed=12))
    assert m(y) is y
    assert repr(m) == "Dropout3d(p=0.5, inplace=True)"
    leaf = sg.ones(2, 3, 4, requires_grad=True)
    with pytest.raises(RuntimeError, match="dropout1d_: a leaf Variable that requires grad"):
        F.dropout1d(leaf, inplace=True)


def test_channel_dropout_errors():
    for fn, shape in ((F.dropout1d, (2, 3, 4)), (F.dropout2d, (2, 3, 4, 5)), (F.dropout3d, (2, 3, 4, 5, 6))):
        with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got 1.5"):
            fn(sg.zeros(*shape), 1.5)
    for module in (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.Dropout):
        with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got -0.1"):
            module(-0.1)
    with pytest.raises(RuntimeError, match=r"dropout1d: Expected 2D or 3D input, but received input of shape \(2, 3, 4, 5\)"):
        F.dropout1d(sg.zeros(2, 3, 4, 5))
    with pytest.raises(RuntimeError, match="dropout2d: expected a floating point input"):
        F.dropout2d(sg.zeros(2, 3, 4, dtype=sg.int32))
    with pytest.warns(UserWarning, match="dropout2d: Received a 5-D input"):
        out = F.dropout2d(sg.ones(2, 3, 2, 2, 2))
    ch = _channels(out.numpy(), True)  # treated as (N, C, *), as torch does
    assert np.all(np.all(ch != 0, axis=1) | np.all(ch == 0, axis=1))
    with pytest.warns(UserWarning, match="dropout3d: Received a 3-D input"):
        F.dropout3d(sg.ones(2, 3, 4))
    with pytest.raises(TypeError, match="dropout2d: expected a Tensor"):
        F.dropout2d(np.ones((2, 3, 4)))


def test_dropout_inplace(device):
    a = rand(5, 7, low=0.5, high=1.5, seed=13)
    (x,) = on(device, a)
    out = F.dropout(x, 0.5, inplace=True)
    assert out is x
    v = x.numpy()
    assert np.all((v == 0) | np.isclose(v, 2 * a, rtol=1e-6)) and 0 < (v == 0).sum() < v.size
    m = nn.Dropout(0.5, inplace=True)
    (y,) = on(device, a)
    assert m(y) is y
    assert repr(m) == "Dropout(p=0.5, inplace=True)"
    m.eval()
    assert m(y) is y
    with pytest.raises(RuntimeError, match="dropout_: a leaf Variable that requires grad"):
        F.dropout(sg.ones(3, requires_grad=True), inplace=True)


def test_dropout_inplace_gradient_matches_the_mask():
    a = rand(4, 5, low=0.5, high=1.5, seed=14).astype(np.float64)
    x = sg.tensor(a, requires_grad=True)
    y = x * 1.0
    F.dropout(y, 0.25, inplace=True)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), y.detach().numpy() / a, rtol=1e-12)
