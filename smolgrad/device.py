"""Device names, the default device, and the backend behind each device."""

from __future__ import annotations

import os
import sys

from .backend.base import Backend

DEVICES = ("webgpu", "numpy")
ALIASES = {"cpu": "numpy", "numpy": "numpy", "webgpu": "webgpu", "gpu": "webgpu", "wgpu": "webgpu"}
HARDWARE_TYPES = ("DiscreteGPU", "IntegratedGPU", "VirtualGPU")

_backends: dict[str, Backend] = {}
_default: str | None = None


def canonical(device) -> str:
    """'cpu' -> 'numpy'; raise a clear error for unknown names."""
    if device is None:
        return default_device()
    name = str(device).lower()
    if name not in ALIASES:
        raise ValueError(f"unknown device {device!r}; expected one of 'webgpu', 'numpy' (alias 'cpu')")
    return ALIASES[name]


def get_backend(device: str) -> Backend:
    """The backend object of a canonical device name, created on first use."""
    if device not in _backends:
        if device == "numpy":
            from .backend.numpy_backend import NumpyBackend

            _backends[device] = NumpyBackend()
        elif device == "webgpu":
            from .backend.webgpu_backend import WebGPUBackend

            _backends[device] = WebGPUBackend()
        else:
            raise ValueError(f"unknown device {device!r}")
    return _backends[device]


def _adapters() -> list[dict]:
    try:
        from .backend.webgpu_backend import enumerate_adapters
    except ImportError as e:  # wgpu missing or its native library failed to load
        return [{"error": f"wgpu unavailable: {e}"}]
    try:
        return enumerate_adapters()
    except Exception as e:  # no Vulkan/Metal/DX12 loader, broken driver, ...
        return [{"error": f"adapter enumeration failed: {e}"}]


def _choose_default() -> tuple[str, str | None]:
    """(device, reason to tell the user); no reason when the user chose it."""
    env = os.environ.get("SMOLGRAD_DEVICE")
    if env:
        return canonical(env), None
    adapters = [a for a in _adapters() if "error" not in a]
    hardware = [a for a in adapters if a["type"] in HARDWARE_TYPES]
    if hardware:
        a = hardware[0]
        return "webgpu", f"found GPU adapter {a['name']} ({a['backend']}, {a['type']})"
    if adapters:
        a = adapters[0]
        return "numpy", (
            f"the only WebGPU adapter is a {a['type']} software renderer ({a['name']}), about 100x slower "
            "than NumPy; pass device='webgpu' or set SMOLGRAD_DEVICE=webgpu to use it anyway"
        )
    return "numpy", "no WebGPU adapter found; install a GPU driver with Vulkan, Metal or DX12 support"


def default_device() -> str:
    """The device used when none is given: decided once, and said once on stderr."""
    global _default
    if _default is None:
        _default, reason = _choose_default()
        if reason:
            print(f"smolgrad: using device '{_default}': {reason}", file=sys.stderr)
    return _default


def set_default_device(device: str) -> None:
    """Make `device` the default for tensors created without `device=`."""
    global _default
    _default = canonical(device)


def devices() -> list[dict]:
    """Every device smolgrad can use: name, backend, type, and whether it is the default."""
    current = default_device()
    out = [{"device": "numpy", "name": "NumPy (CPU)", "backend": "numpy", "type": "CPU", "in_use": current == "numpy"}]
    for a in _adapters():
        if "error" in a:
            out.append({"device": "webgpu", "name": a["error"], "backend": None, "type": None, "in_use": False})
        else:
            in_use = current == "webgpu" and a.get("selected", False)
            out.append({"device": "webgpu", **a, "in_use": in_use})
    return out
