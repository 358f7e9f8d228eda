"""Autograd semantics: accumulation, retain_graph, no_grad, detach, functional grad."""

import numpy as np
import pytest

import smolgrad as sg
from helpers import assert_close


def test_grad_accumulates_across_backward_calls(device):
    x = sg.tensor([1.0, 2.0, 3.0], device=device, requires_grad=True)
    (x * x).sum().backward()
    (x * 3).sum().backward()
    assert_close(x.grad, 2 * np.array([1.0, 2.0, 3.0]) + 3)


def test_backward_with_explicit_gradient(device):
    x = sg.tensor([[1.0, 2.0], [3.0, 4.0]], device=device, requires_grad=True)
    y = x * 2
    y.backward(gradient=sg.tensor([[1.0, 0.0], [0.5, 2.0]], device=device))
    assert_close(x.grad, [[2.0, 0.0], [1.0, 4.0]])


def test_backward_on_non_scalar_without_gradient_raises():
    x = sg.ones(3, requires_grad=True, device="numpy")
    with pytest.raises(RuntimeError, match="scalar outputs"):
        (x * 2).backward()


def test_backward_gradient_shape_mismatch_raises():
    x = sg.ones(3, requires_grad=True, device="numpy")
    with pytest.raises(RuntimeError, match=r"\(2,\)"):
        (x * 2).backward(gradient=sg.ones(2, device="numpy"))


def test_second_backward_without_retain_graph_raises():
    x = sg.tensor([1.0, 2.0], requires_grad=True, device="numpy")
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_retain_graph_allows_second_backward_and_accumulates(device):
    x = sg.tensor([1.0, 2.0], requires_grad=True, device=device)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert_close(x.grad, 4 * np.array([1.0, 2.0]))


def test_backward_on_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        sg.ones(2, device="numpy").sum().backward()


def test_no_grad_context_records_nothing():
    x = sg.ones(2, requires_grad=True, device="numpy")
    with sg.no_grad():
        y = x * 2
    assert not y.requires_grad and y.grad_fn is None
    assert sg.is_grad_enabled()


def test_no_grad_as_decorator():
    @sg.no_grad()
    def f(t):
        return t * 2

    x = sg.ones(2, requires_grad=True, device="numpy")
    assert not f(x).requires_grad
    assert (x * 2).requires_grad


def test_enable_grad_inside_no_grad():
    x = sg.ones(2, requires_grad=True, device="numpy")
    with sg.no_grad():
        with sg.enable_grad():
            y = x * 2
    assert y.requires_grad


def test_detach_cuts_the_graph(device):
    x = sg.tensor([1.0, 2.0], requires_grad=True, device=device)
    y = (x.detach() * x).sum()
    y.backward()
    assert_close(x.grad, [1.0, 2.0])
    assert not x.detach().requires_grad


def test_requires_grad_on_integer_tensor_raises():
    with pytest.raises(RuntimeError, match="floating point"):
        sg.tensor([1, 2], device="numpy", requires_grad=True)


def test_requires_grad_underscore_returns_self_and_sets_flag():
    x = sg.zeros(2, device="numpy")
    assert x.requires_grad_() is x and x.requires_grad and x.is_leaf


def test_fan_out_gradients_are_summed(device):
    x = sg.tensor([2.0, -1.0], requires_grad=True, device=device)
    a = x * 3
    y = (a * a + a).sum()  # d/dx = (2a + 1) * 3
    y.backward()
    assert_close(x.grad, (2 * 3 * np.array([2.0, -1.0]) + 1) * 3)


def test_only_leaves_get_grad():
    x = sg.tensor([1.0], requires_grad=True, device="numpy")
    h = x * 2
    (h * 3).sum().backward()
    assert h.grad is None and x.grad is not None


def test_branch_without_grad_is_not_recorded():
    x = sg.ones(3, requires_grad=True, device="numpy")
    c = sg.ones(3, device="numpy")
    branch = (c * 2).exp()
    y = x + branch
    assert branch.grad_fn is None and not branch.requires_grad
    assert y.grad_fn is not None


def test_autograd_grad_returns_gradients_without_touching_dot_grad(device):
    x = sg.tensor([1.0, 2.0], requires_grad=True, device=device)
    w = sg.tensor([3.0, 4.0], requires_grad=True, device=device)
    y = (x * w).sum()
    gx, gw = sg.autograd.grad(y, [x, w])
    assert_close(gx, [3.0, 4.0])
    assert_close(gw, [1.0, 2.0])
    assert x.grad is None and w.grad is None


def test_autograd_grad_of_intermediate_tensor():
    x = sg.tensor([1.0, 2.0], requires_grad=True, device="numpy")
    h = x * x
    y = (h * 3).sum()
    (gh,) = sg.autograd.grad(y, h)
    assert_close(gh, [3.0, 3.0])


def test_autograd_grad_unused_input_raises_unless_allowed():
    x = sg.ones(2, requires_grad=True, device="numpy")
    z = sg.ones(2, requires_grad=True, device="numpy")
    with pytest.raises(RuntimeError, match="allow_unused"):
        sg.autograd.grad((x * 2).sum(), [x, z], retain_graph=True)
    gx, gz = sg.autograd.grad((x * 2).sum(), [x, z], allow_unused=True)
    assert gz is None
    assert_close(gx, [2.0, 2.0])


def test_gradient_of_int_cast_stops():
    x = sg.tensor([1.5, 2.5], requires_grad=True, device="numpy")
    y = x.long()
    assert not y.requires_grad


def test_float64_gradients_stay_float64():
    x = sg.tensor(np.array([1.0, 2.0]), requires_grad=True, device="numpy")
    assert x.dtype == sg.float64
    (x * x).sum().backward()
    assert x.grad.dtype == sg.float64


def test_deep_chain_backprops_without_recursion_error():
    x = sg.tensor(1.0, requires_grad=True, device="numpy")
    y = x
    for _ in range(50_000):
        y = y * 1.00001
    y.backward()
    assert x.grad.item() == pytest.approx(1.00001**50_000, rel=1e-3)


def test_data_setter_replaces_value_keeps_identity(device):
    w = sg.tensor([1.0, 2.0], device=device, requires_grad=True)
    (w * 3).sum().backward()
    w.data = sg.tensor([5.0, 6.0], device=device)
    assert w.requires_grad and w.grad is not None
    np.testing.assert_allclose(w.detach().numpy(), [5.0, 6.0])
    assert w.data.requires_grad is False


def test_data_setter_rejects_mismatched_shape(device):
    w = sg.tensor([1.0, 2.0], device=device)
    with pytest.raises(RuntimeError, match="shape"):
        w.data = sg.tensor([1.0, 2.0, 3.0], device=device)
