"""Version counters and saved tensors: backward refuses a tensor that an in-place op changed
after an op saved it, as PyTorch does.

These need the autograd engine's side of the contract (Function.save_for_backward records
each saved tensor's `_version`, and each recorded op keeps its inputs' histories as they
were when it ran), which lands with the autograd rewrite; they fail until then."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_close

import smolgrad as sg

MODIFIED = "one of the variables needed for gradient computation has been modified by an inplace operation"


def test_modifying_a_saved_input_raises_at_backward(device):
    x = sg.tensor([1.0, 2.0, 3.0], device=device, requires_grad=True)
    w = sg.tensor([4.0, 5.0, 6.0], device=device, requires_grad=True)
    y = x * 1
    z = y * w  # saves y for w's gradient
    y.add_(1)
    with pytest.raises(RuntimeError, match=MODIFIED) as err:
        z.sum().backward()
    assert "is at version 1; expected version 0 instead" in str(err.value)
    assert "MulBackward" in str(err.value)


def test_modifying_a_saved_output_raises_at_backward(device):
    x = sg.tensor([0.5, 1.0], device=device, requires_grad=True)
    y = x.exp()  # saves its output
    y.mul_(2)
    with pytest.raises(RuntimeError, match=MODIFIED):
        y.sum().backward()


def test_modifying_through_a_view_bumps_the_shared_version_and_raises(device):
    x = sg.tensor([1.0, 2.0, 3.0], device=device, requires_grad=True)
    y = x * 1
    z = y.sin()  # saves y
    y[1:].zero_()
    assert y._version == 1
    with pytest.raises(RuntimeError, match=MODIFIED):
        z.sum().backward()


def test_modifying_a_tensor_nothing_saved_is_fine(device):
    x = sg.tensor([1.0, 2.0, 3.0], device=device, requires_grad=True)
    y = x * 2
    z = y + 1  # add saves nothing
    y.mul_(5)
    (z.sum() + y.sum()).backward()
    assert_close(x.grad, np.full(3, 12.0, np.float32))


def test_an_earlier_consumer_keeps_the_history_it_saw(device):
    x = sg.tensor([1.0, 2.0], device=device, requires_grad=True)
    y = x * 2
    z = y * 5  # recorded before y changes: dz/dx = 10
    y.mul_(3)  # dy/dx = 6 now
    (z.sum() + y.sum()).backward()
    assert_close(x.grad, np.full(2, 16.0, np.float32))


def test_an_operand_sharing_the_storage(device):
    x = sg.tensor([1.0, 2.0, 3.0], device=device, requires_grad=True)
    y = x * 2
    y.add_(y)  # y = 4x
    y[1:].add_(y[:-1])  # y = [4x0, 4x1 + 4x0, 4x2 + 4x1]
    y.sum().backward()
    assert_close(x.grad, np.array([8.0, 8.0, 4.0], np.float32))


def test_version_of_a_saved_leaf_changed_under_no_grad_raises(device):
    w = sg.tensor([1.0, 2.0], device=device, requires_grad=True)
    x = sg.tensor([3.0, 4.0], device=device, requires_grad=True)
    loss = (w * x).sum()  # saves w and x
    with sg.no_grad():
        w.sub_(0.1)
    assert w._version == 1
    with pytest.raises(RuntimeError, match=MODIFIED):
        loss.backward()
