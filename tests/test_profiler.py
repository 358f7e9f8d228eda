"""smolgrad.profile(): kernels that ran, with their times, shares and bytes."""

import numpy as np
import pytest

import smolgrad as sg
from smolgrad import profiler
from smolgrad.device import get_backend
from helpers import assert_close


@pytest.fixture(autouse=True)
def fused(monkeypatch):
    monkeypatch.setenv("SMOLGRAD_FUSION", "1")  # the kernel names below are the fused ones


def test_profile_attributes_time_to_the_kernels_that_ran(device):
    x = sg.tensor(np.arange(64, dtype=np.float32) / 64, device=device)
    w = sg.tensor(np.eye(8, dtype=np.float32), device=device)
    with sg.profile() as prof:
        a = (x * 2).exp().sum()
        b = (w @ w + 1).relu()
        sg.realize(a, b)
    rows = {r["name"]: r for r in prof.summary()}
    assert set(rows) == {"R_mul_exp_sum", "MM_matmul_add_max"}
    for r in rows.values():
        assert r["device"] == device and r["calls"] == 1 and r["total_s"] > 0 and r["bytes"] > 0
    assert sum(r["share"] for r in rows.values()) == pytest.approx(1.0)
    assert rows["MM_matmul_add_max"]["ops"] == ["matmul", "add", "max"]
    assert_close(a, np.exp(np.arange(64) / 64 * 2.0).sum(), rtol=1e-5)


def test_profile_counts_calls_of_the_same_kernel(device):
    x = sg.tensor(np.ones(16, dtype=np.float32), device=device)
    with sg.profile() as prof:
        for i in range(3):
            (x * 2 + 1).realize()
    (rows,) = prof.summary()
    assert rows["name"] == "E_mul_add" and rows["calls"] == 3
    assert rows["bytes"] == 3 * (16 * 4 + 16 * 4)  # each call reads x and writes the result


def test_kernels_outside_the_block_are_not_recorded(device):
    x = sg.tensor(np.ones(4, dtype=np.float32), device=device)
    with sg.profile() as prof:
        pass
    (x + 1).realize()
    assert prof.events == [] and not profiler.is_active()
    assert "total: 0.000 ms in 0 kernels" in prof.table()


def test_timing_method_is_reported(device):
    x = sg.tensor(np.ones(4, dtype=np.float32), device=device)
    with sg.profile() as prof:
        (x - 1).realize()
    if device == "numpy":
        assert prof.timing == profiler.WALL_CLOCK_NUMPY
    elif "timestamp-query" in get_backend(device).device.features:
        assert prof.timing == profiler.GPU_TIMESTAMPS
    else:
        assert prof.timing == profiler.WALL_CLOCK_SYNCED
    assert prof.table().startswith(f"timing: {prof.timing}")


def test_webgpu_profile_without_timestamps_times_each_kernel_alone(webgpu, monkeypatch):
    backend = get_backend(webgpu)
    monkeypatch.setattr(type(backend.device), "features", property(lambda self: set()))
    x = sg.tensor(np.ones(32, dtype=np.float32), device=webgpu)
    with sg.profile() as prof:
        y = (x * 3).sum()
        z = x.exp()
        sg.realize(y, z)
    assert prof.timing == profiler.WALL_CLOCK_SYNCED
    assert sorted(r["name"] for r in prof.summary()) == ["E_exp", "R_mul_sum"]
    assert_close(y, 96.0)
