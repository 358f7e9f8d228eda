"""nn.init: PyTorch's gain and fan rules, the distributions' ranges and moments, and
reproducibility under smolgrad.manual_seed."""

from __future__ import annotations

import math

import numpy as np
import pytest

import smolgrad as sg
from smolgrad import nn
from smolgrad.nn import init


@pytest.mark.parametrize(
    "name,param,expected",
    [
        ("linear", None, 1.0),
        ("conv2d", None, 1.0),
        ("sigmoid", None, 1.0),
        ("tanh", None, 5 / 3),
        ("relu", None, math.sqrt(2)),
        ("leaky_relu", None, math.sqrt(2 / (1 + 0.01**2))),
        ("leaky_relu", math.sqrt(5), math.sqrt(1 / 3)),
        ("selu", None, 0.75),
    ],
)
def test_calculate_gain(name, param, expected):
    assert init.calculate_gain(name, param) == pytest.approx(expected)


def test_calculate_gain_unknown_nonlinearity_raises():
    with pytest.raises(ValueError, match="Unsupported nonlinearity softsign"):
        init.calculate_gain("softsign")


def test_fans_of_linear_and_conv_weights():
    assert init._calculate_fan_in_and_fan_out(sg.zeros(5, 3)) == (3, 5)
    assert init._calculate_fan_in_and_fan_out(sg.zeros(8, 4, 3, 2)) == (4 * 6, 8 * 6)


def test_fans_of_1d_tensor_raise():
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.kaiming_uniform_(sg.zeros(5))


def big(*shape):
    return sg.zeros(*shape)


def test_kaiming_uniform_bound_uses_fan_in_and_gain():
    w = init.kaiming_uniform_(big(64, 32, 3, 3), nonlinearity="relu").numpy()
    bound = math.sqrt(2) * math.sqrt(3 / (32 * 9))
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert w.std() == pytest.approx(bound / math.sqrt(3), rel=0.03)


def test_kaiming_uniform_fan_out_mode():
    w = init.kaiming_uniform_(big(16, 400), mode="fan_out", nonlinearity="relu").numpy()
    bound = math.sqrt(2) * math.sqrt(3 / 16)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound


def test_kaiming_normal_std():
    w = init.kaiming_normal_(big(200, 300), nonlinearity="relu").numpy()
    assert w.std() == pytest.approx(math.sqrt(2) / math.sqrt(300), rel=0.02)
    assert abs(w.mean()) < 0.002


def test_xavier_uniform_bound():
    w = init.xavier_uniform_(big(100, 300), gain=2.0).numpy()
    bound = 2.0 * math.sqrt(6 / 400)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound


def test_xavier_normal_std():
    w = init.xavier_normal_(big(200, 300, 2)).numpy()
    assert w.std() == pytest.approx(math.sqrt(2 / (600 + 400)), rel=0.02)


def test_uniform_normal_constant_zeros_ones():
    assert init.uniform_(big(1000), -1, 2).numpy().min() >= -1
    assert init.normal_(big(20000), 3.0, 0.1).numpy().mean() == pytest.approx(3.0, abs=0.005)
    np.testing.assert_array_equal(init.constant_(big(3), 0.5).numpy(), [0.5] * 3)
    np.testing.assert_array_equal(init.zeros_(sg.ones(2)).numpy(), [0.0, 0.0])
    np.testing.assert_array_equal(init.ones_(big(2)).numpy(), [1.0, 1.0])


def test_invalid_mode_raises():
    with pytest.raises(ValueError, match="fan_in, fan_out"):
        init.kaiming_normal_(big(2, 2), mode="fan_avg")


def test_init_fills_a_parameter_in_place_and_returns_it():
    p = nn.Parameter(sg.zeros(4, 4))
    assert init.xavier_uniform_(p) is p
    assert p.requires_grad and p.is_leaf and np.abs(p.detach().numpy()).max() > 0


def test_init_is_reproducible_with_manual_seed(device):
    sg.manual_seed(42)
    a = nn.Linear(5, 3, device=device).weight.detach().numpy()
    sg.manual_seed(42)
    b = nn.Linear(5, 3, device=device).weight.detach().numpy()
    np.testing.assert_array_equal(a, b)
