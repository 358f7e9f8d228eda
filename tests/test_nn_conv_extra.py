"""Conv1d, ConvTranspose1d and ConvTranspose2d (functional and modules) against NumPy loops
that follow PyTorch's documented definitions, with finite-difference gradient checks."""

from __future__ import annotations

import numpy as np
import pytest

import smolgrad as sg
import smolgrad.nn.functional as F
from smolgrad import nn
from helpers import assert_close, gradcheck, on, rand

# ----- NumPy references -----


def conv1d_ref(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    n, c, length = x.shape
    oc, cg, k = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding)))
    out_len = (length + 2 * padding - dilation * (k - 1) - 1) // stride + 1
    out = np.zeros((n, oc, out_len))
    ocg = oc // groups
    for g in range(groups):
        for i in range(out_len):
            patch = xp[:, g * cg : (g + 1) * cg, i * stride : i * stride + dilation * (k - 1) + 1 : dilation]
            out[:, g * ocg : (g + 1) * ocg, i] = np.einsum("nck,ock->no", patch, w[g * ocg : (g + 1) * ocg])
    return out if b is None else out + b.reshape(1, -1, 1)


def conv_transpose2d_ref(x, w, b=None, stride=(1, 1), padding=(0, 0), output_padding=(0, 0), groups=1, dilation=(1, 1)):
    """Each input element scatters its kernel-weighted copy: out[i*s - p + a*d] += x[i] * w[a]."""
    n, c, h, wd = x.shape
    _, ocg, kh, kw = w.shape
    cg = c // groups
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = stride, padding, output_padding, dilation
    full_h, full_w = (h - 1) * sh + dh * (kh - 1) + 1 + oph, (wd - 1) * sw + dw * (kw - 1) + 1 + opw
    full = np.zeros((n, ocg * groups, full_h, full_w))
    for g in range(groups):
        for i in range(h):
            for j in range(wd):
                for a in range(kh):
                    for q in range(kw):
                        contrib = x[:, g * cg : (g + 1) * cg, i, j] @ w[g * cg : (g + 1) * cg, :, a, q]  # (n, ocg)
                        full[:, g * ocg : (g + 1) * ocg, i * sh + a * dh, j * sw + q * dw] += contrib
    out = full[:, :, ph : full_h - ph, pw : full_w - pw]
    return out if b is None else out + b.reshape(1, -1, 1, 1)


def conv_transpose1d_ref(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    out = conv_transpose2d_ref(x[:, :, None], w[:, :, None], b, (1, stride), (0, padding), (0, output_padding), groups, (1, dilation))
    return out[:, :, 0]


# ----- Conv1d -----

CONV1D_CASES = [
    dict(),
    dict(stride=2),
    dict(padding=2),
    dict(padding=1, stride=3, dilation=2),
    dict(groups=2),
    dict(padding="same", dilation=2),
]


@pytest.mark.parametrize("kw", CONV1D_CASES)
def test_conv1d_forward(device, kw):
    groups = kw.get("groups", 1)
    x, w, b = rand(2, 4, 11, seed=1), rand(6, 4 // groups, 3, seed=2), rand(6, seed=3)
    ref_kw = dict(kw)
    if ref_kw.get("padding") == "same":
        ref_kw["padding"] = kw.get("dilation", 1) * (3 - 1) // 2
    xt, wt, bt = on(device, x, w, b)
    assert_close(F.conv1d(xt, wt, bt, **kw), conv1d_ref(x, w, b, **ref_kw), rtol=1e-4, atol=1e-5)


def test_conv1d_module(device):
    m = nn.Conv1d(3, 5, 4, stride=2, padding=1, bias=True).to(device)
    assert m.weight.shape == (5, 3, 4) and m.bias.shape == (5,)
    assert m.kernel_size == (4,) and m.stride == (2,) and m.padding == (1,) and m.dilation == (1,)
    assert list(m.state_dict()) == ["weight", "bias"]
    bound = 1 / np.sqrt(3 * 4)
    assert np.abs(m.weight.detach().numpy()).max() <= bound + 1e-6  # kaiming_uniform(a=sqrt(5)) bound
    w, b = rand(5, 3, 4, seed=4), rand(5, seed=5)
    m.load_state_dict({"weight": w, "bias": b})
    x = rand(2, 3, 9, seed=6)
    assert_close(m(on(device, x)[0]), conv1d_ref(x, w, b, 2, 1), rtol=1e-4, atol=1e-5)
    assert_close(m(on(device, x[0])[0]), conv1d_ref(x[:1], w, b, 2, 1)[0], rtol=1e-4, atol=1e-5)  # unbatched (C, L)
    assert repr(m) == "Conv1d(3, 5, kernel_size=(4,), stride=(2,), padding=(1,))"


def test_conv1d_non_contiguous(device):
    x = rand(7, 3, 2, seed=7)  # (L, C, N) permuted to (N, C, L)
    w = rand(4, 3, 2, seed=8)
    xt, wt = on(device, x, w)
    assert_close(F.conv1d(xt.permute(2, 1, 0), wt, stride=2), conv1d_ref(x.transpose(2, 1, 0), w, stride=2), rtol=1e-4, atol=1e-5)


def test_conv1d_gradients():
    gradcheck(lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=1, dilation=2), rand(2, 2, 7, seed=1), rand(3, 2, 2, seed=2), rand(3, seed=3))
    gradcheck(lambda x, w: F.conv1d(x, w, groups=2), rand(1, 4, 5, seed=4), rand(2, 2, 3, seed=5))


def test_conv1d_errors():
    with pytest.raises(RuntimeError, match="conv1d: expected a 2-D \\(C, L\\) or 3-D"):
        F.conv1d(sg.zeros(1, 2, 3, 4), sg.zeros(2, 2, 3))
    with pytest.raises(RuntimeError, match="conv1d: weight must be 3-D"):
        F.conv1d(sg.zeros(1, 2, 5), sg.zeros(2, 2, 3, 3))
    with pytest.raises(RuntimeError, match="conv1d: .*expected input\\[1, 3, 5\\] to have 2 channels"):
        nn.Conv1d(2, 4, 3)(sg.zeros(1, 3, 5))
    with pytest.raises(RuntimeError, match="conv1d: input spatial size .* too small"):
        nn.Conv1d(2, 4, 5)(sg.zeros(1, 2, 3))
    with pytest.raises(ValueError, match="Conv1d: in_channels \\(3\\) and out_channels \\(4\\) must be divisible by groups \\(2\\)"):
        nn.Conv1d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="padding='same' is not supported for strided"):
        nn.Conv1d(2, 2, 3, stride=2, padding="same")


# ----- ConvTranspose2d / ConvTranspose1d -----

CT2_CASES = [
    dict(),
    dict(stride=(2, 2)),
    dict(stride=(2, 3), padding=(1, 0)),
    dict(stride=(2, 2), padding=(1, 1), output_padding=(1, 0)),
    dict(dilation=(2, 1), padding=(2, 1)),
    dict(groups=2, stride=(3, 1), output_padding=(2, 0)),
    dict(padding=(0, 2)),  # padding larger than the dilated kernel edge: crops
]


@pytest.mark.parametrize("kw", CT2_CASES)
def test_conv_transpose2d_forward(device, kw):
    groups = kw.get("groups", 1)
    x, w, b = rand(2, 4, 3, 5, seed=1), rand(4, 6 // groups, 3, 2, seed=2), rand(6, seed=3)
    xt, wt, bt = on(device, x, w, b)
    assert_close(F.conv_transpose2d(xt, wt, bt, **kw), conv_transpose2d_ref(x, w, b, **kw), rtol=1e-4, atol=1e-5)


def test_conv_transpose2d_module_and_state_dict(device):
    m = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2).to(device)
    assert m.weight.shape == (4, 3, 3, 3) and m.bias.shape == (6,)  # (in, out/groups, kH, kW), as torch
    assert list(m.state_dict()) == ["weight", "bias"]
    assert m.output_padding == (1, 1) and m.transposed
    bound = 1 / np.sqrt(3 * 9)  # torch's fan_in of a transposed weight: size(1) * kernel
    assert np.abs(m.weight.detach().numpy()).max() <= bound + 1e-6
    w, b = rand(4, 3, 3, 3, seed=4), rand(6, seed=5)
    m.load_state_dict({"weight": w, "bias": b})
    x = rand(2, 4, 3, 4, seed=6)
    ref = conv_transpose2d_ref(x, w, b, (2, 2), (1, 1), (1, 1), 2)
    assert ref.shape == (2, 6, 6, 8)
    assert_close(m(on(device, x)[0]), ref, rtol=1e-4, atol=1e-5)
    assert_close(m(on(device, x[0])[0]), ref[0], rtol=1e-4, atol=1e-5)
    assert "output_padding=(1, 1), groups=2" in repr(m)


def test_conv_transpose_output_size(device):
    m = nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1).to(device)
    x = on(device, rand(1, 2, 4, 5, seed=1))[0]
    assert m(x).shape == (1, 3, 7, 9)
    assert m(x, output_size=(8, 10)).shape == (1, 3, 8, 10)
    assert m(x, output_size=[1, 3, 8, 9]).shape == (1, 3, 8, 9)
    with pytest.raises(ValueError, match="ConvTranspose2d: requested an output size of \\(9, 9\\).*range from 7 to 8"):
        m(x, output_size=(9, 9))
    m1 = nn.ConvTranspose1d(2, 3, 3, stride=3).to(device)
    assert m1(on(device, rand(1, 2, 4))[0], output_size=[14]).shape == (1, 3, 14)


def test_conv_transpose2d_non_contiguous(device):
    x, w = rand(3, 4, 2, 2, seed=1), rand(2, 3, 2, 2, seed=2)  # x permuted to (N=2, C=2, H=4, W=3)
    xt, wt = on(device, x, w)
    got = F.conv_transpose2d(xt.permute(3, 2, 1, 0), wt, stride=2)
    assert_close(got, conv_transpose2d_ref(x.transpose(3, 2, 1, 0), w, stride=(2, 2)), rtol=1e-4, atol=1e-5)


CT1_CASES = [dict(), dict(stride=2, padding=1, output_padding=1), dict(dilation=2, groups=2), dict(stride=3, padding=2)]


@pytest.mark.parametrize("kw", CT1_CASES)
def test_conv_transpose1d_forward(device, kw):
    groups = kw.get("groups", 1)
    x, w, b = rand(2, 4, 5, seed=1), rand(4, 6 // groups, 3, seed=2), rand(6, seed=3)
    xt, wt, bt = on(device, x, w, b)
    assert_close(F.conv_transpose1d(xt, wt, bt, **kw), conv_transpose1d_ref(x, w, b, **kw), rtol=1e-4, atol=1e-5)
    m = nn.ConvTranspose1d(4, 6, 3, bias=False, **kw).to(device)
    assert m.weight.shape == (4, 6 // groups, 3) and m.bias is None and list(m.state_dict()) == ["weight"]
    m.load_state_dict({"weight": w})
    assert_close(m(xt[0]), conv_transpose1d_ref(x[:1], w, **kw)[0], rtol=1e-4, atol=1e-5)  # unbatched


def test_conv_transpose_is_the_adjoint_of_conv():
    """<conv(x), y> == <x, conv_transpose(y)> for the same weight (the defining property)."""
    x, w, y = rand(2, 3, 7, 6, seed=1).astype(np.float64), rand(4, 3, 3, 2, seed=2).astype(np.float64), None
    conv = F.conv2d(sg.tensor(x), sg.tensor(w), stride=2, padding=1).numpy()
    y = rand(*conv.shape, seed=3).astype(np.float64)
    back = F.conv_transpose2d(sg.tensor(y), sg.tensor(w), stride=2, padding=1).numpy()
    assert back.shape == x.shape
    np.testing.assert_allclose((conv * y).sum(), (x * back).sum(), rtol=1e-10)


def test_conv_transpose_gradients():
    gradcheck(
        lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1),
        rand(1, 2, 2, 3, seed=1), rand(2, 2, 3, 2, seed=2), rand(2, seed=3),
    )
    gradcheck(lambda x, w: F.conv_transpose2d(x, w, groups=2, dilation=2), rand(1, 4, 2, 2, seed=4), rand(4, 1, 2, 2, seed=5))
    gradcheck(lambda x, w: F.conv_transpose1d(x, w, stride=3, padding=1), rand(2, 2, 3, seed=6), rand(2, 3, 3, seed=7))


def test_conv_transpose_errors():
    with pytest.raises(RuntimeError, match="conv_transpose2d: weight of shape \\[3, 2, 3, 3\\] expects 3 input channels"):
        nn.ConvTranspose2d(3, 2, 3)(sg.zeros(1, 4, 5, 5))
    with pytest.raises(RuntimeError, match="conv_transpose2d: expected a 3-D \\(C, H, W\\) or 4-D"):
        F.conv_transpose2d(sg.zeros(2, 5), sg.zeros(2, 2, 3, 3))
    with pytest.raises(ValueError, match="output_padding \\(2\\) must be smaller than either stride \\(2\\) or dilation \\(1\\)"):
        F.conv_transpose2d(sg.zeros(1, 2, 3, 3), sg.zeros(2, 2, 3, 3), stride=2, output_padding=2)
    with pytest.raises(RuntimeError, match="conv_transpose1d: the output width would be"):
        F.conv_transpose1d(sg.zeros(1, 2, 1), sg.zeros(2, 2, 1), padding=1)
    with pytest.raises(ValueError, match="ConvTranspose1d: padding must be an int"):
        nn.ConvTranspose1d(2, 2, 3, padding="same")
    with pytest.raises(RuntimeError, match="conv_transpose1d: expected a 2-D \\(C, L\\) or 3-D"):
        F.conv_transpose1d(sg.zeros(1, 2, 3, 3), sg.zeros(2, 2, 3))
