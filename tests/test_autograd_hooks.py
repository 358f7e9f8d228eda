"""Tensor.register_post_accumulate_grad_hook and autograd's queue_callback (what
DistributedDataParallel builds on)."""

from __future__ import annotations

import numpy as np
import pytest

import smolgrad as sg
from smolgrad.autograd.engine import queue_callback


def test_post_accumulate_grad_hook_sees_the_accumulated_grad(device):
    w = sg.tensor([1.0, 2.0], device=device, requires_grad=True)
    b = sg.tensor([0.5], device=device, requires_grad=True)
    seen = []
    handle = w.register_post_accumulate_grad_hook(lambda t: seen.append(("w", t.grad.numpy().copy())))
    b.register_post_accumulate_grad_hook(lambda t: seen.append(("b", t.grad.numpy().copy())))
    # w is used twice: its hook runs once, after both contributions are summed
    ((w * w).sum() + (w * 3).sum() + b.sum()).backward()
    assert [name for name, _ in seen].count("w") == 1
    np.testing.assert_allclose(dict(seen)["w"], [5.0, 7.0])
    (w * 2).sum().backward()  # accumulates into .grad: the hook sees the total
    np.testing.assert_allclose(seen[-1][1], [7.0, 9.0])
    handle.remove()
    (w * 2).sum().backward()
    assert len(seen) == 3
    # autograd.grad does not touch .grad, so no hook runs
    sg.autograd.grad((w * w).sum(), [w])
    assert len(seen) == 3


def test_post_accumulate_grad_hook_errors():
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        sg.ones(2).register_post_accumulate_grad_hook(lambda t: None)
    x = sg.ones(2, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match="non-leaf"):
        x.register_post_accumulate_grad_hook(lambda t: None)


def test_queue_callback_runs_after_the_whole_backward():
    w1 = sg.tensor([1.0], requires_grad=True)
    w2 = sg.tensor([2.0], requires_grad=True)
    events = []
    queued = []

    def callback():
        events.append(("callback", w1.grad is not None and w2.grad is not None))
        queued.clear()

    def hook(t):
        events.append("hook")
        if not queued:  # the first hook of a pass queues the callback
            queued.append(True)
            queue_callback(callback)

    w1.register_post_accumulate_grad_hook(hook)
    w2.register_post_accumulate_grad_hook(hook)
    (w1 * w2).sum().backward()
    assert events == ["hook", "hook", ("callback", True)]
    (w1 * w2).sum().backward()  # callbacks are per backward pass: queued again, run once
    assert events[3:] == ["hook", "hook", ("callback", True)]
    with pytest.raises(RuntimeError, match="no backward pass is running"):
        queue_callback(lambda: None)
