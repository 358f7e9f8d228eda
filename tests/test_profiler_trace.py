"""Profile.export_chrome_trace: Chrome/Perfetto trace-event JSON of kernels and host spans."""

import json
import re

import numpy as np
import pytest

import smolgrad as sg
from smolgrad import nn, profiler
from smolgrad.device import get_backend


@pytest.fixture(autouse=True)
def fused(monkeypatch):
    monkeypatch.setenv("SMOLGRAD_FUSION", "1")


def profiled_step(device):
    model = nn.Sequential(nn.Linear(3, 7), nn.Tanh(), nn.Linear(7, 2)).to(device)
    x = sg.tensor(np.linspace(-1, 1, 15, dtype=np.float32).reshape(5, 3), device=device)
    sg.realize(*model.parameters())
    sg.reset_stats()
    with sg.profile() as prof:
        loss = model(x).square().mean()
        loss.backward()
        sg.realize(*[p.grad for p in model.parameters()])
        loss.item()
    return prof


def test_the_trace_has_one_event_per_kernel_and_its_durations_sum_to_the_table_total(device, tmp_path):
    prof = profiled_step(device)
    path = tmp_path / "trace.json"
    prof.export_chrome_trace(path)
    trace = json.loads(path.read_text())
    kernels = [e for e in trace["traceEvents"] if e.get("cat") == "kernel"]
    assert len(kernels) == len(prof.events) == sg.stats()["kernels"] >= 4
    assert [e["name"] for e in kernels] == [e.name for e in prof.events]
    for event, k in zip(kernels, prof.events):
        assert event["ph"] == "X" and event["dur"] >= 0 and event["ts"] >= 0
        assert event["args"]["ops"] == list(k.ops) and event["args"]["bytes"] == k.bytes > 0
        assert event["args"]["timing"] == k.timing and event["args"]["dispatches"] == k.dispatches
    total_ms = float(re.search(r"total: ([\d.]+) ms", prof.table()).group(1))
    assert sum(e["dur"] for e in kernels) / 1e3 == pytest.approx(total_ms, abs=1e-3)
    # the kernels of one device sit on one track, in the order they ran, not overlapping
    starts = [e["ts"] for e in kernels]
    assert starts == sorted(starts)
    for a, b in zip(kernels, kernels[1:]):
        assert a["ts"] + a["dur"] <= b["ts"] + 1.0  # (1 us of slack for clock rounding)
    names = {(e["pid"], e.get("tid"), e["args"]["name"]) for e in trace["traceEvents"] if e["ph"] == "M"}
    assert (kernels[0]["pid"], None, device) in names and (0, None, "python") in names


def test_host_spans_sit_on_their_own_track(device, tmp_path):
    prof = profiled_step(device)
    prof.export_chrome_trace(tmp_path / "t.json")
    events = json.loads((tmp_path / "t.json").read_text())["traceEvents"]
    spans = [e for e in events if e.get("cat") == "host"]
    kernel_pids = {e["pid"] for e in events if e.get("cat") == "kernel"}
    assert spans and {e["pid"] for e in spans} == {0} and 0 not in kernel_pids
    found = {e["name"] for e in spans}
    assert {"graph build", "schedule", "wait (read back)"} <= found
    if device == "webgpu":
        assert {"encode", "submit", "wait"} <= found
    assert all(e["dur"] >= 0 and e["ts"] >= 0 for e in spans)
    # graph build then schedule: the first realize's build span comes first
    first = sorted(spans, key=lambda e: e["ts"])[:2]
    assert [e["name"] for e in first] == ["graph build", "schedule"]


def test_spans_cost_nothing_and_record_nothing_outside_a_profile(device):
    assert profiler.span("schedule") is profiler.span("encode")  # the shared no-op
    x = sg.ones(8, device=device)
    with sg.profile() as prof:
        (x + 1).realize()
    n_spans, n_events = len(prof.spans), len(prof.events)
    (x * 3).numpy()
    assert (len(prof.spans), len(prof.events)) == (n_spans, n_events)


def test_an_empty_profile_writes_a_valid_trace(tmp_path):
    with sg.profile() as prof:
        pass
    prof.export_chrome_trace(tmp_path / "empty.json")
    events = json.loads((tmp_path / "empty.json").read_text())["traceEvents"]
    assert [e for e in events if e["ph"] == "X"] == []
