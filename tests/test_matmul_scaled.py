"""The "scaled matmul operand" fusion rule: a matmul operand that is x * c, c * x or x / c
(c a constant) and read by nothing else needs no copy; the matmul reads x and scales its
result. Counted in dispatches on both devices, against NumPy."""

import numpy as np
import pytest

import smolgrad as sg
import smolgrad.nn.functional as F
from smolgrad.engine.schedule import schedule
from helpers import assert_close, gradcheck, rand


@pytest.fixture(autouse=True)
def fused(monkeypatch):
    monkeypatch.setenv("SMOLGRAD_FUSION", "1")


def dispatches(device, *tensors) -> int:
    sg.reset_stats(device)
    sg.realize(*tensors)
    return sg.stats(device)["dispatches"]


def swap(a):
    return np.swapaxes(a, -1, -2)


CASES = {
    # (q * scale) @ k^T: scaled and transposed, batched
    "scaled_a_transposed_b": (lambda q, k: (q * 0.35) @ k.transpose(-2, -1), lambda q, k: (q * 0.35) @ swap(k)),
    "divided_transposed_b": (lambda q, k: q @ (k.transpose(-2, -1) / 4), lambda q, k: q @ (swap(k) / 4)),
    # both operands scaled (constant first in one), with an epilogue
    "both_scaled_epilogue": (
        lambda q, k: ((2.0 * q) @ (k * -3).transpose(-2, -1) + 1).relu(),
        lambda q, k: np.maximum((2 * q) @ swap(k * -3) + 1, 0),
    ),
    # the scale before a transpose and a slice (views composed into the read)
    "scaled_then_viewed": (lambda q, k: q @ (k * 0.5).transpose(-2, -1)[..., 1:6], lambda q, k: q @ swap(k * 0.5)[..., 1:6]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_scaled_operand_is_read_in_place(device, name):
    build, ref = CASES[name]
    q, k = rand(2, 5, 8, seed=1), rand(2, 7, 8, seed=2)
    out = build(sg.tensor(q, device=device), sg.tensor(k, device=device))
    assert dispatches(device, out) == 1  # no kernel writes the scaled copy
    assert_close(out, ref(q, k), rtol=1e-5, atol=1e-5)


def test_scaled_operand_kernel_reads_the_unscaled_buffer():
    q, k = sg.tensor(rand(4, 3)), sg.tensor(rand(3, 5, seed=1))
    (kernel,) = schedule([((q * 0.5) @ k).lazydata]).kernels
    assert kernel.kind == "matmul" and kernel.fused_ops == ["matmul", "mul"]


def test_scaled_operand_used_elsewhere_is_stored(device):
    """A scaled value that something else reads too is computed once, as before."""
    x, w = rand(6, 4, seed=1), rand(4, 3, seed=2)
    tx, tw = sg.tensor(x, device=device), sg.tensor(w, device=device)
    s = tx * 0.25
    out, other = s @ tw, s.sum()
    assert dispatches(device, out, other) == 3  # the scaled copy, the matmul, the sum
    assert_close(out, (x * 0.25) @ w, rtol=1e-5, atol=1e-6)
    assert_close(other, (x * 0.25).sum(), rtol=1e-5, atol=1e-5)


def test_not_a_constant_scale_is_stored(device):
    """x * y for a tensor y (even a one-element one) is an ordinary operand."""
    x, w = rand(6, 4, seed=1), rand(4, 3, seed=2)
    tx, tw, ty = sg.tensor(x, device=device), sg.tensor(w, device=device), sg.tensor(np.float32(3.0), device=device)
    out = (tx * ty) @ tw
    assert dispatches(device, out) == 2
    assert_close(out, (x * 3) @ w, rtol=1e-5, atol=1e-5)
    out = (1.0 / tx.abs().clamp(min=0.5)) @ tw  # a constant divided by x is not a scale
    assert_close(out, (1 / np.maximum(np.abs(x), 0.5)) @ w, rtol=1e-5, atol=1e-5)


def test_scaled_operand_gradients():
    """Saved for backward, the scaled value is stored (the rule leaves it); the gradients
    (whose own scaled operands may take the rule) match finite differences."""
    gradcheck(lambda q, k: (q * 0.35) @ k.transpose(-2, -1), rand(2, 3, 4, seed=1), rand(2, 5, 4, seed=2))
    gradcheck(lambda x, w: F.linear(x / 3, w * 2.0), rand(3, 4, seed=3), rand(5, 4, seed=4))


def test_scaled_operand_gradients_webgpu_match_numpy(webgpu):
    q, k = rand(2, 3, 4, seed=1), rand(2, 5, 4, seed=2)
    grads = {}
    for device in ("numpy", webgpu):
        tq = sg.tensor(q, device=device, requires_grad=True)
        tk = sg.tensor(k, device=device, requires_grad=True)
        ((tq * 0.35) @ (tk / 2).transpose(-2, -1)).tanh().sum().backward()
        grads[device] = (tq.grad.numpy(), tk.grad.numpy())
    for a, b in zip(grads["numpy"], grads[webgpu]):
        assert_close(b, a, rtol=1e-5, atol=1e-5)


def test_scaled_half_operand_is_stored(device):
    """float16 keeps the copy: x @ w could overflow 65504 where (x * c) @ w would not."""
    from smolgrad.device import get_backend

    if device == "webgpu" and "shader-f16" not in get_backend(device).device.features:
        pytest.skip("float16 on webgpu needs the adapter feature shader-f16")
    x, w = rand(5, 8, seed=1).astype(np.float16), rand(8, 3, seed=2).astype(np.float16)
    out = (sg.tensor(x, device=device) * 0.5) @ sg.tensor(w, device=device)
    assert dispatches(device, out) == 2 and out.dtype is sg.float16
    exact = (x.astype(np.float32) * 0.5) @ w.astype(np.float32)
    assert_close(out.float(), exact, rtol=2e-3, atol=5e-3)


def test_fusion_off_keeps_the_copy(device, monkeypatch):
    monkeypatch.setenv("SMOLGRAD_FUSION", "0")
    q, k = rand(3, 4, seed=1), rand(4, 2, seed=2)
    out = (sg.tensor(q, device=device) * 0.5) @ sg.tensor(k, device=device)
    assert dispatches(device, out) == 2
    assert_close(out, (q * 0.5) @ k, rtol=1e-5, atol=1e-6)
