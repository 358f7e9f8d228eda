"""MaxPool1d, AvgPool1d, adaptive pools, interpolate / Upsample, PixelShuffle / PixelUnshuffle
and Unflatten against NumPy loops that follow PyTorch's documented formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

import smolgrad as sg
import smolgrad.nn.functional as F
from smolgrad import nn
from helpers import assert_close, gradcheck, on, rand


def distinct(*shape, seed=0):
    """Values without ties (max-pool gradients are only comparable then)."""
    n = int(np.prod(shape))
    return (np.random.default_rng(seed).permutation(n) * 0.1 - n * 0.05).reshape(shape)


# ----- NumPy references -----


def pool1d_ref(x, k, s, p, d=1, ceil_mode=False, kind="max", count_include_pad=True):
    n_in = x.shape[-1]
    span = n_in + 2 * p - d * (k - 1) - 1
    out = (math.ceil(span / s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= n_in + p:
        out -= 1
    res = np.zeros(x.shape[:-1] + (out,))
    for i in range(out):
        if kind == "max":
            idx = [i * s - p + a * d for a in range(k)]
            res[..., i] = x[..., [j for j in idx if 0 <= j < n_in]].max(-1)
        else:
            lo = i * s - p
            hi = min(lo + k, n_in + p)
            size = hi - lo
            lo, hi = max(lo, 0), min(hi, n_in)
            res[..., i] = x[..., lo:hi].sum(-1) / (size if count_include_pad else hi - lo)
    return res


def adaptive_ref(x, out_size, kind="avg"):
    h, w = x.shape[-2:]
    oh, ow = out_size
    res = np.zeros(x.shape[:-2] + (oh, ow))
    for i in range(oh):
        h0, h1 = math.floor(i * h / oh), math.ceil((i + 1) * h / oh)
        for j in range(ow):
            w0, w1 = math.floor(j * w / ow), math.ceil((j + 1) * w / ow)
            patch = x[..., h0:h1, w0:w1]
            res[..., i, j] = patch.mean((-2, -1)) if kind == "avg" else patch.max((-2, -1))
    return res


def nearest_ref(x, size, scales=(None, None), exact=False):
    out = x
    for axis, (n_out, scale) in enumerate(zip(size, scales)):
        dim = x.ndim - len(size) + axis
        n_in = x.shape[dim]
        scale = np.float32(n_in / n_out if scale is None else scale)
        dst = np.arange(n_out, dtype=np.float32)
        src = np.floor((dst + np.float32(0.5)) * scale if exact else dst * scale).astype(int)
        out = np.take(out, np.minimum(src, n_in - 1), axis=dim)
    return out


def bilinear_ref(x, size, align_corners, scales=(None, None)):
    """Per output pixel: the weighted sum of its four neighbours (not separable on purpose)."""
    h, w = x.shape[-2:]
    oh, ow = size

    def src(dst, n_in, n_out, scale):
        if align_corners:
            return dst * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
        scale = n_in / n_out if scale is None else scale
        return max((dst + 0.5) * scale - 0.5, 0.0)

    res = np.zeros(x.shape[:-2] + (oh, ow))
    for i in range(oh):
        sy = src(i, h, oh, scales[0])
        y0 = min(int(math.floor(sy)), h - 1)
        y1, ly = min(y0 + 1, h - 1), sy - y0
        for j in range(ow):
            sx = src(j, w, ow, scales[1])
            x0 = min(int(math.floor(sx)), w - 1)
            x1, lx = min(x0 + 1, w - 1), sx - x0
            res[..., i, j] = (
                (1 - ly) * ((1 - lx) * x[..., y0, x0] + lx * x[..., y0, x1]) + ly * ((1 - lx) * x[..., y1, x0] + lx * x[..., y1, x1])
            )
    return res


def pixel_shuffle_ref(x, r):
    *lead, c, h, w = x.shape
    out = np.zeros((*lead, c // (r * r), h * r, w * r), dtype=x.dtype)
    for co in range(c // (r * r)):
        for i in range(r):
            for j in range(r):
                out[..., co, i::r, j::r] = x[..., co * r * r + i * r + j, :, :]
    return out


# ----- MaxPool1d / AvgPool1d -----

POOL1D_CASES = [
    dict(k=2, s=2, p=0),
    dict(k=3, s=2, p=1),
    dict(k=3, s=1, p=0, d=2),
    dict(k=2, s=3, p=1, ceil_mode=True),
    dict(k=3, s=2, p=0, ceil_mode=True),
]


@pytest.mark.parametrize("c", POOL1D_CASES)
def test_max_pool1d(device, c):
    x = distinct(2, 3, 9)
    d = c.get("d", 1)
    m = nn.MaxPool1d(c["k"], c["s"], c["p"], dilation=d, ceil_mode=c.get("ceil_mode", False))
    ref = pool1d_ref(x, c["k"], c["s"], c["p"], d, c.get("ceil_mode", False))
    assert_close(m(on(device, x)[0]), ref, rtol=1e-5, atol=1e-5)
    assert_close(m(on(device, x[0])[0]), ref[0], rtol=1e-5, atol=1e-5)  # unbatched (C, L)


@pytest.mark.parametrize("c", [c for c in POOL1D_CASES if "d" not in c])  # avg_pool1d has no dilation
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool1d(device, c, count_include_pad):
    x = rand(2, 3, 9, seed=1)
    m = nn.AvgPool1d(c["k"], c["s"], c["p"], ceil_mode=c.get("ceil_mode", False), count_include_pad=count_include_pad)
    ref = pool1d_ref(x, c["k"], c["s"], c["p"], 1, c.get("ceil_mode", False), "avg", count_include_pad)
    assert_close(m(on(device, x)[0]), ref, rtol=1e-5, atol=1e-5)


def test_pool1d_defaults_non_contiguous_and_gradients(device):
    x = distinct(7, 2, 3, seed=2)  # (L, C, N) -> (N, C, L)
    xt = on(device, x)[0].permute(2, 1, 0)
    xn = x.transpose(2, 1, 0)
    assert_close(F.max_pool1d(xt, 2), pool1d_ref(xn, 2, 2, 0), rtol=1e-5, atol=1e-5)  # stride defaults to kernel_size
    assert_close(F.avg_pool1d(xt, 3, 1), pool1d_ref(xn, 3, 1, 0, kind="avg"), rtol=1e-5, atol=1e-5)
    if device == "numpy":
        gradcheck(lambda x: F.max_pool1d(x, 3, 2, 1), distinct(2, 2, 7, seed=3))
        gradcheck(lambda x: F.avg_pool1d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False), rand(2, 2, 8, seed=4))


def test_pool1d_errors():
    with pytest.raises(RuntimeError, match="max_pool1d: expected a 2-D \\(C, L\\) or 3-D"):
        nn.MaxPool1d(2)(sg.zeros(1, 2, 3, 4))
    with pytest.raises(RuntimeError, match="avg_pool1d: pad should be at most half"):
        nn.AvgPool1d(2, padding=2)(sg.zeros(1, 2, 8))
    with pytest.raises(RuntimeError, match="max_pool1d: input spatial size \\(2,\\).* too small"):
        nn.MaxPool1d(3)(sg.zeros(1, 2, 2))
    with pytest.raises(NotImplementedError, match="return_indices"):
        nn.MaxPool1d(2, return_indices=True)


# ----- adaptive pooling -----

ADAPTIVE_CASES = [((7, 5), (3, 2)), ((6, 9), (3, 3)), ((5, 5), (1, 1)), ((4, 3), (5, 7)), ((7, 6), (7, None))]


@pytest.mark.parametrize("size,out", ADAPTIVE_CASES)
def test_adaptive_avg_pool2d(device, size, out):
    x = rand(2, 3, *size, seed=1)
    full = tuple(s if o is None else o for s, o in zip(size, out))
    m = nn.AdaptiveAvgPool2d(out)
    assert_close(m(on(device, x)[0]), adaptive_ref(x.astype(np.float64), full), rtol=1e-5, atol=1e-5)
    assert_close(m(on(device, x[0])[0]), adaptive_ref(x[0].astype(np.float64), full), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size,out", ADAPTIVE_CASES)
def test_adaptive_max_pool2d(device, size, out):
    x = distinct(2, 3, *size, seed=2)
    full = tuple(s if o is None else o for s, o in zip(size, out))
    assert_close(nn.AdaptiveMaxPool2d(out)(on(device, x)[0]), adaptive_ref(x, full, "max"), rtol=1e-5, atol=1e-5)


def test_adaptive_pool_int_size_1d_and_non_contiguous(device):
    x = rand(5, 7, 2, 3, seed=3)  # (H, W, C, N) -> (N, C, W, H) = (3, 2, 7, 5)
    xt = on(device, x)[0].permute(3, 2, 1, 0)
    xn = x.transpose(3, 2, 1, 0).astype(np.float64)
    assert_close(F.adaptive_avg_pool2d(xt, 3), adaptive_ref(xn, (3, 3)), rtol=1e-5, atol=1e-5)
    y = distinct(2, 3, 10, seed=4)
    ref = adaptive_ref(y[:, :, None, :], (1, 4), "max")[:, :, 0]
    assert_close(nn.AdaptiveMaxPool1d(4)(on(device, y)[0]), ref, rtol=1e-5, atol=1e-5)
    ref = adaptive_ref(y[:, :, None, :], (1, 3))[:, :, 0]
    assert_close(nn.AdaptiveAvgPool1d(3)(on(device, y)[0]), ref, rtol=1e-5, atol=1e-5)


def test_adaptive_pool_gradients_and_errors():
    gradcheck(lambda x: F.adaptive_avg_pool2d(x, (3, 2)), rand(1, 2, 7, 5, seed=5))
    gradcheck(lambda x: F.adaptive_max_pool2d(x, (3, 4)), distinct(1, 2, 7, 5, seed=6))
    with pytest.raises(RuntimeError, match="adaptive_avg_pool2d: expected a 3-D \\(C, H, W\\) or 4-D"):
        nn.AdaptiveAvgPool2d(2)(sg.zeros(2, 3))
    with pytest.raises(ValueError, match="adaptive_max_pool2d: output_size must be"):
        F.adaptive_max_pool2d(sg.zeros(1, 2, 4, 4), (2, 0))
    with pytest.raises(ValueError, match="adaptive_avg_pool2d: output_size must be"):
        F.adaptive_avg_pool2d(sg.zeros(1, 2, 4, 4), (2, 2, 2))
    with pytest.raises(NotImplementedError, match="return_indices"):
        nn.AdaptiveMaxPool2d(2, return_indices=True)


# ----- interpolate / Upsample -----

NEAREST_CASES = [
    dict(scale_factor=2),
    dict(scale_factor=(3, 2)),
    dict(size=(7, 4)),
    dict(size=(2, 9)),
    dict(scale_factor=1.7),
    dict(scale_factor=0.5),
]


def _sizes_and_scales(shape, kw):
    if "size" in kw:
        return kw["size"], (None, None)
    sf = kw["scale_factor"]
    sf = (sf, sf) if isinstance(sf, (int, float)) else sf
    return tuple(int(math.floor(n * f)) for n, f in zip(shape, sf)), tuple(1.0 / f for f in sf)


@pytest.mark.parametrize("kw", NEAREST_CASES)
@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
def test_interpolate_nearest(device, kw, mode):
    x = rand(2, 3, 5, 6, seed=1)
    size, scales = _sizes_and_scales((5, 6), kw)
    assert_close(F.interpolate(on(device, x)[0], mode=mode, **kw), nearest_ref(x, size, scales, mode == "nearest-exact"))


@pytest.mark.parametrize("kw", NEAREST_CASES)
@pytest.mark.parametrize("align_corners", [False, True])
def test_interpolate_bilinear(device, kw, align_corners):
    x = rand(2, 3, 5, 6, seed=2)
    size, scales = _sizes_and_scales((5, 6), kw)
    got = F.interpolate(on(device, x)[0], mode="bilinear", align_corners=align_corners, **kw)
    assert_close(got, bilinear_ref(x.astype(np.float64), size, align_corners, scales), rtol=1e-5, atol=1e-5)


def test_interpolate_1d_recompute_and_area(device):
    x = rand(2, 3, 7, seed=3)
    ref = bilinear_ref(x[:, :, None, :].astype(np.float64), (1, 10), False)[:, :, 0]
    assert_close(F.interpolate(on(device, x)[0], size=10, mode="linear"), ref, rtol=1e-5, atol=1e-5)
    ref = nearest_ref(x, (11,), (None,))  # recompute_scale_factor: scale = in/out, not 1/scale_factor
    assert_close(F.interpolate(on(device, x)[0], scale_factor=1.6, recompute_scale_factor=True), ref)
    ref = nearest_ref(x, (11,), (1 / 1.6,))
    assert_close(F.interpolate(on(device, x)[0], scale_factor=1.6), ref)
    y = rand(1, 2, 7, 5, seed=4)
    assert_close(F.interpolate(on(device, y)[0], size=(3, 2), mode="area"), adaptive_ref(y.astype(np.float64), (3, 2)), rtol=1e-5, atol=1e-5)


def test_upsample_module_and_non_contiguous(device):
    x = rand(6, 5, 2, 1, seed=5)  # (W, H, C, N) -> (N, C, H, W) = (1, 2, 5, 6)
    xt = on(device, x)[0].permute(3, 2, 1, 0)
    xn = x.transpose(3, 2, 1, 0).astype(np.float64)
    up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
    assert list(up.state_dict()) == []
    assert_close(up(xt), bilinear_ref(xn, (10, 12), True), rtol=1e-5, atol=1e-5)
    assert_close(nn.Upsample(size=(4, 4))(xt), nearest_ref(xn, (4, 4)))
    assert repr(nn.Upsample(scale_factor=2)) == "Upsample(scale_factor=2.0, mode='nearest')"


def test_interpolate_gradients():
    gradcheck(lambda x: F.interpolate(x, size=(4, 7), mode="bilinear"), rand(1, 2, 3, 5, seed=6))
    gradcheck(lambda x: F.interpolate(x, scale_factor=1.5, mode="bilinear", align_corners=True), rand(1, 1, 3, 4, seed=7))
    gradcheck(lambda x: F.interpolate(x, scale_factor=2), rand(1, 2, 2, 3, seed=8))
    gradcheck(lambda x: F.interpolate(x, size=(5, 2)), rand(1, 2, 3, 3, seed=9))


def test_interpolate_errors():
    x = sg.zeros(1, 2, 4, 4)
    with pytest.raises(ValueError, match="exactly one of size or scale_factor"):
        F.interpolate(x)
    with pytest.raises(ValueError, match="exactly one of size or scale_factor"):
        F.interpolate(x, size=2, scale_factor=2)
    with pytest.raises(ValueError, match="mode 'bilinear' needs a 4-D input"):
        F.interpolate(sg.zeros(1, 2, 4), size=3, mode="bilinear")
    with pytest.raises(ValueError, match="align_corners can only be set with the interpolating modes"):
        F.interpolate(x, size=3, align_corners=True)
    with pytest.raises(NotImplementedError, match="mode 'bicubic' is not supported"):
        F.interpolate(x, size=3, mode="bicubic")
    with pytest.raises(ValueError, match="size must be a positive int or a tuple of 2"):
        F.interpolate(x, size=(2, 2, 2))
    with pytest.raises(ValueError, match="interpolate: expected a 3-D, 4-D or 5-D"):
        nn.Upsample(scale_factor=2)(sg.zeros(4, 4))


# ----- PixelShuffle / PixelUnshuffle -----


def test_pixel_shuffle(device):
    x = rand(2, 8, 3, 5, seed=1)
    out = nn.PixelShuffle(2)(on(device, x)[0])
    assert_close(out, pixel_shuffle_ref(x, 2))
    assert_close(nn.PixelUnshuffle(2)(out), x)
    y = rand(3, 2, 9, 2, 4, seed=2)  # extra leading dims, r = 3
    assert_close(F.pixel_shuffle(on(device, y)[0], 3), pixel_shuffle_ref(y, 3))
    z = rand(4, 3, 2, seed=3)  # non-contiguous (2, 4, 3) -> unbatched (C=4... via permute)
    zt = on(device, z)[0].permute(0, 2, 1)  # (4, 2, 3)
    assert_close(F.pixel_shuffle(zt, 2), pixel_shuffle_ref(z.transpose(0, 2, 1), 2))


def test_pixel_shuffle_gradients_and_errors():
    gradcheck(lambda x: F.pixel_shuffle(x, 2), rand(1, 4, 2, 3, seed=4))
    gradcheck(lambda x: F.pixel_unshuffle(x, 2), rand(1, 1, 4, 2, seed=5))
    with pytest.raises(RuntimeError, match="pixel_shuffle: the 6 channels .* divisible by upscale_factor\\^2 = 4"):
        nn.PixelShuffle(2)(sg.zeros(1, 6, 2, 2))
    with pytest.raises(RuntimeError, match="pixel_unshuffle: the height 3 and width 4"):
        nn.PixelUnshuffle(2)(sg.zeros(1, 1, 3, 4))
    with pytest.raises(RuntimeError, match="pixel_shuffle: expected an input with at least 3 dims"):
        F.pixel_shuffle(sg.zeros(4, 4), 2)


# ----- Unflatten -----


def test_unflatten(device):
    x = rand(2, 12, 3, seed=1)
    xt = on(device, x)[0]
    assert_close(nn.Unflatten(1, (3, 4))(xt), x.reshape(2, 3, 4, 3))
    assert_close(nn.Unflatten(-2, (2, -1))(xt), x.reshape(2, 2, 6, 3))
    assert_close(nn.Unflatten(1, [2, 3])(xt.transpose(0, 2)[:, ::2]), x.transpose(2, 1, 0)[:, ::2].reshape(3, 2, 3, 2))
    assert repr(nn.Unflatten(1, (3, 4))) == "Unflatten(dim=1, unflattened_size=(3, 4))"
    with pytest.raises(RuntimeError, match="Unflatten: unflattened_size \\(5, 2\\) does not match the size 12"):
        nn.Unflatten(1, (5, 2))(xt)
    with pytest.raises(IndexError, match="Unflatten: dim 3 is out of range"):
        nn.Unflatten(3, (1, 3))(xt)
    with pytest.raises(TypeError, match="Unflatten: unflattened_size must be a tuple or list of ints"):
        nn.Unflatten(1, 12)
