"""`smolgrad.profile()`: which kernels ran, how long each took, and how many bytes moved.

    with smolgrad.profile() as prof:
        loss = model(x).square().mean()
        loss.backward()
    print(prof.table())
    prof.export_chrome_trace("trace.json")   # open in https://ui.perfetto.dev or chrome://tracing

While a profile is active, the backends time every kernel: the WebGPU backend with GPU
timestamp queries when the adapter has `timestamp-query` (each dispatch in its own
compute pass), otherwise by submitting each kernel alone and waiting for it; the NumPy
backend with the wall clock. Profiling adds that synchronisation, so profile to see
where time goes, not to measure overall speed.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
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
    start: float | None = None  # time.perf_counter() at its start (GPU time mapped to the host clock)


@dataclass
class Span:
    """A stretch of host-side work (graph build, schedule, encode, submit, wait), perf_counter seconds."""

    name: str
    start: float
    end: float


@dataclass
class Profile:
    """The kernels run while the profile was active (see the module docstring)."""

    events: list[KernelEvent] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    started: float = 0.0  # perf_counter at __enter__: time zero of the trace

    def __enter__(self) -> Profile:
        self.started = time.perf_counter()
        _active.append(self)
        global _mark
        _mark = self.started
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

    def export_chrome_trace(self, path: str | os.PathLike) -> None:
        """Write the profile as Chrome/Perfetto trace-event JSON (torch.profiler's name): one
        complete event per kernel, on a track per device, with its fused ops and bytes as
        args, and the host-side spans on a track of their own. Times are microseconds from
        the start of the profile; a GPU-timestamped kernel has its GPU duration, placed by
        its offset from the first dispatch of its submit, counted from that submit."""
        events = [_meta("process_name", 0, None, "python"), _meta("thread_name", 0, 0, "host spans")]
        pids: dict[str, int] = {}
        cursor: dict[str, float] = {}  # where an event without a start time goes: after the last
        for e in self.events:
            if e.device not in pids:
                pids[e.device] = len(pids) + 1
                events.append(_meta("process_name", pids[e.device], None, e.device))
                events.append(_meta("thread_name", pids[e.device], 0, "kernels"))
            start = e.start if e.start is not None else cursor.get(e.device, self.started)
            cursor[e.device] = start + e.seconds
            events.append({
                "name": e.name, "cat": "kernel", "ph": "X", "pid": pids[e.device], "tid": 0,
                "ts": (start - self.started) * 1e6, "dur": e.seconds * 1e6,
                "args": {"ops": list(e.ops), "bytes": e.bytes, "dispatches": e.dispatches, "timing": e.timing},
            })
        for sp in self.spans:
            events.append({"name": sp.name, "cat": "host", "ph": "X", "pid": 0, "tid": 0,
                           "ts": (sp.start - self.started) * 1e6, "dur": (sp.end - sp.start) * 1e6})
        with open(path, "w") as f:
            json.dump({"traceEvents": events, "displayTimeUnit": "ms"}, f)


def _meta(kind: str, pid: int, tid: int | None, name: str) -> dict:
    event = {"name": kind, "ph": "M", "pid": pid, "args": {"name": name}}
    if tid is not None:
        event["tid"] = tid
    return event


def profile() -> Profile:
    """A context manager that records every kernel run inside it (see the module docstring)."""
    return Profile()


def is_active() -> bool:
    return bool(_active)


def record(event: KernelEvent) -> None:
    for p in _active:
        p.events.append(event)


_mark = 0.0  # the end of the last host span: "graph build" runs from there to the next realize
_NO_SPAN = contextlib.nullcontext()


class _SpanTimer:
    __slots__ = ("name", "start")

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        self.start = time.perf_counter()

    def __exit__(self, *exc):
        global _mark
        _mark = end = time.perf_counter()
        for p in _active:
            p.spans.append(Span(self.name, self.start, end))
        return False


def span(name: str):
    """A `with` block timed as a host span of the active profiles; a shared no-op when no
    profile is active, so the engine can mark its phases at no cost."""
    return _SpanTimer(name) if _active else _NO_SPAN


def mark_graph_build() -> None:
    """Record the host time since the last span (building the lazy graph, in user code) as
    a "graph build" span; called when a realization starts."""
    if _active:
        now = time.perf_counter()
        if now > _mark:
            for p in _active:
                p.spans.append(Span("graph build", max(_mark, p.started), now))


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
