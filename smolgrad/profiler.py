"""`smolgrad.profile()`: which kernels ran, how long each took, and how many bytes moved.

    with smolgrad.profile() as prof:
        loss = model(x).square().mean()
        loss.backward()
    print(prof.table())

While a profile is active, the backends time every kernel: the WebGPU backend with GPU
timestamp queries when the adapter has `timestamp-query` (each dispatch in its own
compute pass), otherwise by submitting each kernel alone and waiting for it; the NumPy
backend with the wall clock. Profiling adds that synchronisation, so profile to see
where time goes, not to measure overall speed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

GPU_TIMESTAMPS = "gpu timestamps"
WALL_CLOCK_SYNCED = "wall clock per kernel (synchronised)"
WALL_CLOCK_NUMPY = "wall clock (numpy)"

_active: list[Profile] = []


@dataclass
class KernelEvent:
    """One kernel run: its device, fused name and ops, time, and estimated bytes moved
    (each output written once and each operand read once)."""

    device: str
    name: str
    ops: tuple[str, ...]
    seconds: float
    bytes: int
    dispatches: int
    timing: str


@dataclass
class Profile:
    """The kernels run while the profile was active (see the module docstring)."""

    events: list[KernelEvent] = field(default_factory=list)

    def __enter__(self) -> Profile:
        _active.append(self)
        return self

    def __exit__(self, *exc) -> bool:
        _active.remove(self)
        return False

    @property
    def timing(self) -> str:
        """How the kernels were timed (the methods used, joined, if devices differed)."""
        methods = sorted({e.timing for e in self.events})
        return " + ".join(methods) if methods else "nothing ran"

    @property
    def total_seconds(self) -> float:
        return sum(e.seconds for e in self.events)

    def summary(self) -> list[dict]:
        """One dict per (device, kernel name), the most total time first."""
        rows: dict[tuple[str, str], dict] = {}
        for e in self.events:
            row = rows.setdefault(
                (e.device, e.name),
                {"device": e.device, "name": e.name, "ops": list(e.ops), "calls": 0, "total_s": 0.0, "bytes": 0},
            )
            row["calls"] += 1
            row["total_s"] += e.seconds
            row["bytes"] += e.bytes
        total = self.total_seconds
        out = sorted(rows.values(), key=lambda r: -r["total_s"])
        for row in out:
            row["mean_s"] = row["total_s"] / row["calls"]
            row["share"] = row["total_s"] / total if total > 0 else 0.0
        return out

    def table(self, top: int | None = None) -> str:
        """The summary as a text table (the `top` kernels by total time, default all)."""
        rows = self.summary()[:top]
        head = f"{'kernel':<44} {'device':<7} {'calls':>6} {'total ms':>10} {'mean ms':>9} {'share':>6} {'MB moved':>9} {'GB/s':>7}"
        lines = [f"timing: {self.timing}", head, "-" * len(head)]
        for r in rows:
            gbs = r["bytes"] / r["total_s"] / 1e9 if r["total_s"] > 0 else math.nan
            lines.append(
                f"{r['name'][:44]:<44} {r['device']:<7} {r['calls']:>6} {r['total_s'] * 1e3:>10.3f} "
                f"{r['mean_s'] * 1e3:>9.3f} {r['share'] * 100:>5.1f}% {r['bytes'] / 1e6:>9.2f} {gbs:>7.2f}"
            )
        lines.append(f"total: {self.total_seconds * 1e3:.3f} ms in {len(self.events)} kernels")
        return "\n".join(lines)


def profile() -> Profile:
    """A context manager that records every kernel run inside it (see the module docstring)."""
    return Profile()


def is_active() -> bool:
    return bool(_active)


def record(event: KernelEvent) -> None:
    for p in _active:
        p.events.append(event)


def bytes_moved(kernel, itemsize=None) -> int:
    """Bytes a kernel reads and writes, counting each operand view and output once.
    `itemsize(dtype)` overrides the dtypes' sizes (the GPU stores most dtypes in 4 bytes)."""
    size = itemsize or (lambda dtype: dtype.np.itemsize)
    total = 0
    srcs = kernel.srcs
    if kernel.kind == "assign":  # writes its region of srcs[0]'s buffer, reads none of it
        srcs = srcs[1:]
        total += math.prod(kernel.arg.shape) * size(kernel.out.dtype)
    else:
        for out in kernel.outs:
            total += math.prod(out.shape) * size(out.dtype)
    for src in srcs:
        total += math.prod(src.view.shape) * size(src.dtype)
    return total
