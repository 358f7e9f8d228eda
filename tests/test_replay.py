"""Replay: a pure function's kernel list is recorded once and rerun on new inputs."""

import numpy as np
import pytest

import smolgrad as sg
from smolgrad.compiled import Replay


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def fused(a, b, s):
    return [(a * b + s).exp(), (a - b).sum(0), a.T * 2.0]


def fused_reference(a, b, s):
    return [np.exp(a * b + s), (a - b).sum(0), a.T * 2.0]


def test_replay_matches_eager_and_records_once(device):
    replay = Replay()
    for step in range(4):
        a, b, s = rand(3, 4, seed=step), rand(3, 4, seed=10 + step), np.float32(0.1 * step)
        outs = replay("k", fused, [sg.tensor(x, device=device) for x in (a, b, s)])
        for got, want in zip(outs, fused_reference(a, b, s)):
            assert got.lazydata.is_realized()
            np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)
    assert (replay.recorded, replay.replayed) == (1, 3)


def test_replayed_outputs_are_new_buffers_and_inputs_stay(device):
    replay = Replay()
    a_np = rand(2, 3)
    a = sg.tensor(a_np, device=device)
    first = replay("k", lambda x: [x + 1.0, x], [a])
    second = replay("k", lambda x: [x + 1.0, x], [a])
    assert second[1] is not a and second[1].lazydata is a.lazydata  # an output may be an input
    assert second[0].lazydata.base is not first[0].lazydata.base
    np.testing.assert_array_equal(first[0].numpy(), a_np + 1.0)
    np.testing.assert_array_equal(second[0].numpy(), a_np + 1.0)
    np.testing.assert_array_equal(a.numpy(), a_np)


def test_layouts_and_sharing_select_recordings():
    replay = Replay()

    def fn(a, b):
        return [a * 2.0 + b]

    x, y = rand(3, 3), rand(3, 3, seed=1)
    cases = [
        ([sg.tensor(x), sg.tensor(y)], x * 2 + y),
        ([sg.tensor(x).T, sg.tensor(y)], x.T * 2 + y),  # a transposed view: another layout
        ([sg.tensor(x)] * 2, x * 3),  # one buffer passed twice: another sharing
        ([sg.tensor(y), sg.tensor(x)], y * 2 + x),  # the first layout again
    ]
    for inputs, want in cases:
        (got,) = replay("k", fn, inputs)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-6)
    assert (replay.recorded, replay.replayed) == (3, 1)
    replay("other key", fn, [sg.tensor(x), sg.tensor(y)])
    assert replay.recorded == 4


def test_a_function_reading_other_tensors_is_never_replayed(device):
    """Replaying would read the captured buffer of the first call: it runs eagerly instead."""
    replay = Replay()
    captured = {"c": sg.tensor(rand(4), device=device)}
    x = rand(4, seed=3)
    for step in range(3):
        captured["c"] = sg.tensor(np.full(4, step, dtype=np.float32), device=device)
        (got,) = replay("k", lambda a: [a + captured["c"]], [sg.tensor(x, device=device)])
        np.testing.assert_allclose(got.numpy(), x + step, rtol=1e-6)
    assert replay.replayed == 0 and replay.recorded == 3


def test_constant_inputs_run_eagerly():
    replay = Replay()
    for value in (1.0, 2.0):
        (got,) = replay("k", lambda a: [a * 3.0], [sg.full((2, 2), value)])
        np.testing.assert_array_equal(got.numpy(), np.full((2, 2), 3 * value, dtype=np.float32))
    assert (replay.recorded, replay.replayed) == (0, 0)


def test_replay_runs_no_scheduler_and_compiles_nothing(device, monkeypatch):
    """A replay neither schedules nor compiles: on numpy too, where kernels_compiled counts
    the kernel plans built (a plan is looked up by the kernel's structural key)."""
    import smolgrad.engine.realize as realize_module
    import smolgrad.engine.schedule as scheduler

    replay = Replay()
    inputs = [sg.tensor(x, device=device) for x in (rand(7, 13), rand(7, 13, seed=1), np.float32(0.5))]
    sg.reset_stats()
    replay("k", fused, inputs)
    assert sg.stats(device)["kernels_compiled"] >= 1  # the recording compiled its kernels: the counter moves
    sg.reset_stats()
    for module in (scheduler, realize_module):
        monkeypatch.setattr(module, "schedule", lambda *a, **k: pytest.fail("replay must not schedule"))
    outs = replay("k", fused, inputs)
    stats = sg.stats(device)
    assert stats["kernels"] >= 1
    assert stats["kernels_compiled"] == 0
    np.testing.assert_allclose(outs[0].numpy(), np.exp(rand(7, 13) * rand(7, 13, seed=1) + 0.5), rtol=1e-5)


