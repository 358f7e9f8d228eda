"""nn.Bilinear and F.bilinear against a NumPy reference of torch's formula
y[..., o] = x1 A_o x2 + b_o."""

import math

import numpy as np
import pytest
from helpers import assert_close, gradcheck, on, rand

import smolgrad as sg
import smolgrad.nn.functional as F
from smolgrad import nn


def bilinear_ref(x1, x2, w, b=None):
    out = np.einsum("...i,oij,...j->...o", x1.astype(np.float64), w.astype(np.float64), x2.astype(np.float64))
    return out + b if b is not None else out


@pytest.mark.parametrize("lead", [(), (5,), (2, 3)])
def test_bilinear_matches_reference(device, lead):
    x1, x2, w, b = rand(*lead, 3, seed=1), rand(*lead, 4, seed=2), rand(5, 3, 4, seed=3), rand(5, seed=4)
    got = F.bilinear(*on(device, x1, x2, w, b))
    assert got.shape == (*lead, 5)
    assert_close(got, bilinear_ref(x1, x2, w, b), rtol=1e-5, atol=1e-5)
    assert_close(F.bilinear(*on(device, x1, x2, w)), bilinear_ref(x1, x2, w), rtol=1e-5, atol=1e-5)


def test_bilinear_non_contiguous_inputs(device):
    x1, x2, w = rand(3, 6, seed=1), rand(4, 6, seed=2), rand(2, 3, 4, seed=3)
    a, c, ww = on(device, x1, x2, w)
    assert_close(F.bilinear(a.t(), c.t(), ww), bilinear_ref(x1.T, x2.T, w), rtol=1e-5, atol=1e-5)


def test_bilinear_gradients_match_finite_differences():
    gradcheck(F.bilinear, rand(4, 3, seed=1), rand(4, 2, seed=2), rand(5, 3, 2, seed=3), rand(5, seed=4))


def test_bilinear_module_keys_init_and_forward(device):
    sg.manual_seed(0)
    m = nn.Bilinear(3, 4, 5)
    assert list(m.state_dict()) == ["weight", "bias"] and m.weight.shape == (5, 3, 4)
    bound = 1 / math.sqrt(3)
    w, b = m.weight.detach().numpy(), m.bias.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound and w.std() > bound / 3
    assert "bias" not in nn.Bilinear(3, 4, 5, bias=False).state_dict()
    assert repr(m) == "Bilinear(in1_features=3, in2_features=4, out_features=5, bias=True)"
    m = m.to(device)
    x1, x2 = rand(6, 3, seed=1), rand(6, 4, seed=2)
    assert_close(m(*on(device, x1, x2)), bilinear_ref(x1, x2, w, b), rtol=1e-5, atol=1e-5)


def test_bilinear_bad_shapes_are_clear():
    w = sg.rand(5, 3, 4)
    with pytest.raises(RuntimeError, match="input batch dimensions do not match"):
        F.bilinear(sg.rand(2, 3), sg.rand(3, 4), w)
    with pytest.raises(RuntimeError, match="input1 size does not match weight size: got 4 but expected 3"):
        F.bilinear(sg.rand(2, 4), sg.rand(2, 4), w)
    with pytest.raises(RuntimeError, match="input2 size does not match weight size: got 5 but expected 4"):
        F.bilinear(sg.rand(2, 3), sg.rand(2, 5), w)
    with pytest.raises(RuntimeError, match="weight must be 3-D"):
        F.bilinear(sg.rand(2, 3), sg.rand(2, 4), sg.rand(3, 4))
