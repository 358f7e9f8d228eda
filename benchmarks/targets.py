"""Where a benchmark case runs: smolgrad on a device, or PyTorch on the CPU or CUDA.

A Target gives the cases one PyTorch-like surface (`lib`, `nn`, `F`, `optim`,
`tensor(array)`), finishes the work a step started (smolgrad realises its lazy outputs
and synchronises; PyTorch synchronises CUDA), and times a step: the median over repeats
after warm-up.

Timing: smolgrad on WebGPU uses `smolgrad.profile()` for kernel cases, which reports
GPU timestamp queries when the adapter has `timestamp-query` (the sum of the kernels'
GPU time, without Python and submit overhead); when the profile falls back to wall
clock, or for end-to-end steps, the time is the wall clock from a synchronised start
to a synchronised finish. NumPy and PyTorch are always timed by the wall clock.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

import smolgrad as sg

WALL = "wall clock around a synchronised submit"
WALL_CPU = "wall clock"
GPU_TIMESTAMPS = "gpu timestamps (smolgrad.profile)"


@dataclass
class Measurement:
    """Median seconds of a step (the figure that throughput is computed from), how it
    was timed, and every repeat's wall and (where measured) GPU time."""

    seconds: float
    timing: str
    repeats: int
    wall_times: list[float] = field(default_factory=list)
    gpu_times: list[float] | None = None

    @property
    def wall_seconds(self) -> float:
        return statistics.median(self.wall_times)

    @property
    def gpu_seconds(self) -> float | None:
        return statistics.median(self.gpu_times) if self.gpu_times else None


class Target:
    """Base class; see the module docstring."""

    label: str          # short name used in tables and JSON: webgpu, numpy, torch-cpu, torch-cuda
    framework: str      # "smolgrad" or "torch"
    device: str
    lib: Any
    nn: Any
    F: Any
    optim: Any

    def tensor(self, array: np.ndarray, requires_grad: bool = False):
        raise NotImplementedError

    def finish(self, outputs) -> None:
        """Make sure the work behind `outputs` (a tensor, a list of them, or None) is done."""
        raise NotImplementedError

    def info(self) -> dict:
        raise NotImplementedError

    def software(self) -> bool:
        """True for a software renderer (lavapipe and the like): sizes are capped there."""
        return False

    def _wall(self, step: Callable[[], Any]) -> float:
        self.finish(None)
        start = time.perf_counter()
        self.finish(step())
        return time.perf_counter() - start

    def measure(self, step: Callable[[], Any], repeat: int, warmup: int, budget_s: float,
                gpu_time: bool = True) -> Measurement:
        """Median over `repeat` runs of `step` after `warmup` runs, fewer repeats (at
        least one) when one run would push the case past `budget_s` seconds."""
        first = None
        for _ in range(max(1, warmup)):
            first = self._wall(step)
        repeats = max(1, min(repeat, int(budget_s / max(first, 1e-9))))
        times = [self._wall(step) for _ in range(repeats)]
        return Measurement(statistics.median(times), self.timing_label(), repeats, times)

    def timing_label(self) -> str:
        return WALL_CPU


class SmolgradTarget(Target):
    framework = "smolgrad"

    def __init__(self, device: str):
        from smolgrad import nn, optim
        from smolgrad.device import get_backend

        self.device = device
        self.label = device
        self.lib, self.nn, self.F, self.optim = sg, nn, nn.functional, optim
        self.backend = get_backend(device)  # raises with a clear message when the device is missing
        self._gpu_timing: str | None = None  # learnt from the first profile

    def tensor(self, array: np.ndarray, requires_grad: bool = False):
        t = sg.tensor(array, device=self.device)
        t.realize()
        return t.requires_grad_() if requires_grad else t

    def finish(self, outputs) -> None:
        if outputs is not None:
            outs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
            outs = [o for o in outs if isinstance(o, sg.Tensor)]
            if outs:
                sg.realize(*outs)
        sg.synchronize(self.device)

    def software(self) -> bool:
        return self.device == "webgpu" and self.backend.info().get("type") == "CPU"

    def has_timestamps(self) -> bool:
        return self.device == "webgpu" and "timestamp-query" in self.backend.device.features

    def info(self) -> dict:
        info = {"label": self.label, "framework": "smolgrad", "version": sg.__version__, "device": self.device}
        info["adapter"] = self.backend.info() if self.device == "webgpu" else {"name": "NumPy (CPU)", "numpy": np.__version__}
        if self.device == "webgpu":
            info["timestamp_query"] = self.has_timestamps()
        info["timing"] = self.timing_label()
        return info

    def timing_label(self) -> str:
        if self.device != "webgpu":
            return WALL_CPU
        if self._gpu_timing is not None:
            return self._gpu_timing
        return GPU_TIMESTAMPS if self.has_timestamps() and hasattr(sg, "profile") else WALL

    def measure(self, step, repeat, warmup, budget_s, gpu_time=True) -> Measurement:
        if not (gpu_time and self.device == "webgpu" and self.has_timestamps() and hasattr(sg, "profile")):
            m = super().measure(step, repeat, warmup, budget_s)
            m.timing = WALL if self.device == "webgpu" else WALL_CPU
            return m
        first = None
        for _ in range(max(1, warmup)):
            first = self._wall(step)
        repeats = max(1, min(repeat, int(budget_s / max(first, 1e-9))))
        walls, gpus = [], []
        for _ in range(repeats):
            self.finish(None)
            with sg.profile() as prof:
                start = time.perf_counter()
                self.finish(step())
                walls.append(time.perf_counter() - start)
            if prof.timing != "gpu timestamps":  # the profiler fell back: trust the wall clock instead
                self._gpu_timing = WALL
                return Measurement(statistics.median(walls), WALL, len(walls), walls)
            gpus.append(prof.total_seconds)
        self._gpu_timing = GPU_TIMESTAMPS
        return Measurement(statistics.median(gpus), GPU_TIMESTAMPS, repeats, walls, gpus)


class TorchTarget(Target):
    framework = "torch"

    def __init__(self, torch, device: str):
        self.torch = torch
        self.device = device
        self.label = f"torch-{device}"
        self.lib, self.nn, self.F, self.optim = torch, torch.nn, torch.nn.functional, torch.optim

    def tensor(self, array: np.ndarray, requires_grad: bool = False):
        t = self.torch.from_numpy(np.ascontiguousarray(array)).to(self.device)
        return t.requires_grad_() if requires_grad else t

    def finish(self, outputs) -> None:
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def info(self) -> dict:
        name = self.torch.cuda.get_device_name() if self.device == "cuda" else "CPU"
        return {"label": self.label, "framework": "torch", "version": self.torch.__version__, "device": self.device,
                "adapter": {"name": name, "threads": self.torch.get_num_threads()}, "timing": WALL_CPU}

    def timing_label(self) -> str:
        return WALL + " (torch.cuda.synchronize)" if self.device == "cuda" else WALL_CPU


def make_targets(device: str, use_torch: bool) -> tuple[list[Target], list[str]]:
    """The targets for `--device webgpu|numpy|all`, plus PyTorch when installed and
    wanted. Also returns notes on what was left out and why."""
    notes: list[str] = []
    names = ["webgpu", "numpy"] if device == "all" else [device]
    targets: list[Target] = []
    for name in names:
        try:
            targets.append(SmolgradTarget(name))
        except Exception as e:  # no adapter, no driver
            if device != "all":
                raise RuntimeError(f"device {name!r} is not available: {e}") from e
            notes.append(f"smolgrad on {name} skipped: {type(e).__name__}: {e}")
    if use_torch:
        try:
            import torch
        except ImportError:
            notes.append("PyTorch is not installed (pip install torch): no PyTorch columns")
        else:
            targets.append(TorchTarget(torch, "cpu"))
            if torch.cuda.is_available():
                targets.append(TorchTarget(torch, "cuda"))
    return targets, notes
