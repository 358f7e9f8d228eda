"""Devices: names, the default, moving tensors, and what each device supports."""

import numpy as np
import pytest

import smolgrad as sg
from smolgrad import device as device_mod
from helpers import assert_close


def test_cpu_is_an_alias_of_numpy():
    assert sg.ones(2, device="cpu").device == "numpy"


def test_unknown_device_name_raises():
    with pytest.raises(ValueError, match="unknown device 'cuda'"):
        sg.ones(2, device="cuda")


def test_devices_lists_numpy_and_marks_one_in_use():
    infos = sg.devices()
    assert infos[0]["device"] == "numpy"
    assert sum(1 for d in infos if d["in_use"]) == 1
    for d in infos:
        assert {"device", "name", "backend", "type", "in_use"} <= set(d)


def test_devices_lists_the_webgpu_adapter(webgpu):
    adapters = [d for d in sg.devices() if d["device"] == "webgpu" and d["backend"]]
    assert adapters and all(d["type"] for d in adapters)


def test_env_var_overrides_default(monkeypatch):
    monkeypatch.setattr(device_mod, "_default", None)
    monkeypatch.setenv("SMOLGRAD_DEVICE", "cpu")
    assert device_mod.default_device() == "numpy"


def test_cpu_only_adapter_defaults_to_numpy(monkeypatch, capsys):
    fake = [{"name": "llvmpipe", "backend": "Vulkan", "type": "CPU", "selected": True}]
    monkeypatch.setattr(device_mod, "_adapters", lambda: fake)
    monkeypatch.setattr(device_mod, "_default", None)
    monkeypatch.delenv("SMOLGRAD_DEVICE", raising=False)
    assert device_mod.default_device() == "numpy"
    assert "software renderer" in capsys.readouterr().err
    device_mod.default_device()
    assert capsys.readouterr().err == ""  # said once


def test_hardware_adapter_defaults_to_webgpu(monkeypatch):
    fake = [
        {"name": "llvmpipe", "backend": "Vulkan", "type": "CPU", "selected": False},
        {"name": "Some GPU", "backend": "Vulkan", "type": "DiscreteGPU", "selected": True},
    ]
    monkeypatch.setattr(device_mod, "_adapters", lambda: fake)
    monkeypatch.setattr(device_mod, "_default", None)
    monkeypatch.delenv("SMOLGRAD_DEVICE", raising=False)
    assert device_mod.default_device() == "webgpu"


def test_no_adapter_defaults_to_numpy(monkeypatch):
    monkeypatch.setattr(device_mod, "_adapters", lambda: [{"error": "none"}])
    monkeypatch.setattr(device_mod, "_default", None)
    monkeypatch.delenv("SMOLGRAD_DEVICE", raising=False)
    assert device_mod.default_device() == "numpy"


def test_to_moves_values_between_devices(webgpu):
    x = sg.tensor([[1.0, 2.0], [3.0, 4.0]], device="numpy")
    y = x.to(webgpu)
    assert y.device == "webgpu"
    assert_close(y * 2, [[2.0, 4.0], [6.0, 8.0]])
    assert y.to("cpu").device == "numpy"


def test_to_device_is_differentiable(webgpu):
    x = sg.tensor([1.0, 2.0], device="numpy", requires_grad=True)
    (x.to(webgpu) * 3).sum().backward()
    assert x.grad.device == "numpy"
    assert_close(x.grad, [3.0, 3.0])


def test_mixing_devices_raises(webgpu):
    a = sg.ones(2, device="numpy")
    b = sg.ones(2, device=webgpu)
    with pytest.raises(RuntimeError, match="same device.*numpy and webgpu.*add"):
        a + b
    with pytest.raises(RuntimeError, match="same device"):
        a @ b


def test_float64_is_refused_on_webgpu_with_a_hint(webgpu):
    with pytest.raises(TypeError, match="float64.*numpy"):
        sg.tensor(np.array([1.0, 2.0]), device=webgpu)
    with pytest.raises(TypeError, match="float64"):
        sg.tensor([1.0], dtype=sg.float64, device="numpy").to(webgpu)


def test_int64_is_stored_as_32_bit_on_webgpu_and_range_checked(webgpu):
    x = sg.tensor([1, -2, 2**31 - 1], device=webgpu)
    assert x.dtype == sg.int64
    assert x.tolist() == [1, -2, 2**31 - 1]
    assert x.numpy().dtype == np.int64
    with pytest.raises((OverflowError, ValueError), match="2"):
        sg.tensor([2**31], device=webgpu)


def test_float64_works_on_numpy():
    x = sg.tensor(np.array([1.0, 2.0]), device="numpy")
    assert x.dtype == sg.float64 and (x * 2).numpy().dtype == np.float64


def test_tensor_past_the_binding_limit_raises_clearly(webgpu):
    limit = sg.device.get_backend(webgpu).max_binding
    n = limit // 4 + 1
    with pytest.raises((ValueError, MemoryError, RuntimeError), match="limit|binding|large"):
        (sg.zeros(n, device=webgpu) + 1).realize()


def test_empty_cache_releases_pooled_buffers_only(device):
    import gc

    kept = (sg.randn(64, 64, device=device) * 2).realize()
    dropped = (sg.randn(256, 256, device=device) * 2).realize()
    del dropped
    gc.collect()
    before = sg.stats(device)["bytes_allocated"]
    sg.empty_cache(device)
    after = sg.stats(device)["bytes_allocated"]
    if device == "webgpu":  # (pooled buffers count as allocated there; numpy counts live arrays only)
        assert after <= before - 256 * 256 * 4
    assert after >= kept.numel() * 4
    np.testing.assert_allclose((kept * 0.5).numpy(), kept.numpy() * 0.5, rtol=1e-6)  # buffers in use survive
