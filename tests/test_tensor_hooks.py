"""Tensor.register_hook: hooks on a tensor's gradient (torch semantics: they run on the total
gradient, in registration order, before retain_grad's capture; a returned tensor replaces it)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from helpers import assert_close, gradcheck, rand

import smolgrad as sg
from smolgrad import nn, optim


def leaf(a, device, dtype=np.float32):
    return sg.tensor(np.asarray(a, dtype=dtype), device=device, requires_grad=True)


def test_leaf_hook_replaces_what_is_accumulated(device):
    a = rand(2, 3, seed=1)
    x = leaf(a, device)
    seen = []

    def double(g):
        seen.append(g.numpy().copy())
        return g * 2

    x.register_hook(double)
    (x * x).sum().backward()
    np.testing.assert_allclose(seen[0], 2 * a, rtol=1e-6)  # the hook sees d/dx sum(x^2)
    assert_close(x.grad, 4 * a)
    (x * 3).sum().backward()  # every backward: the hook's result accumulates into .grad
    assert len(seen) == 2
    assert_close(x.grad, 4 * a + 6)


def test_non_leaf_hook_changes_what_flows_to_the_inputs(device):
    a = rand(5, seed=2)
    x = leaf(a, device)
    y = x.exp()
    y.register_hook(lambda g: g.clamp(-0.5, 0.5))  # clipping
    z = y * sg.tensor(np.linspace(-2, 2, 5).astype(np.float32), device=device)
    z.sum().backward()
    assert_close(x.grad, np.clip(np.linspace(-2, 2, 5), -0.5, 0.5) * np.exp(a))
    assert y.grad is None  # a non-leaf keeps no .grad unless retain_grad()


def test_hooks_run_in_registration_order_on_the_previous_result(device):
    x = leaf([1.0, -2.0, 3.0], device)
    y = x * 1.0
    order = []

    def add_one(g):
        order.append("add_one")
        return g + 1

    def log(g):
        order.append(("log", g.numpy().tolist()))  # returns None: the gradient is unchanged

    def times_two(g):
        order.append("times_two")
        return g * 2

    for h in (add_one, log, times_two):
        y.register_hook(h)
    (y * 3).sum().backward()
    assert order == ["add_one", ("log", [4.0, 4.0, 4.0]), "times_two"]
    assert_close(x.grad, [8.0, 8.0, 8.0])


def test_removed_hooks_no_longer_run(device):
    x = leaf([1.0, 2.0], device)
    calls = []
    h1 = x.register_hook(lambda g: calls.append(1) or g * 10)
    x.register_hook(lambda g: calls.append(2))
    x.sum().backward()
    assert calls == [1, 2]
    assert_close(x.grad, [10.0, 10.0])
    h1.remove()
    h1.remove()  # removing twice is harmless, as in torch
    x.grad = None
    x.sum().backward()
    assert calls == [1, 2, 2]
    assert_close(x.grad, [1.0, 1.0])
    with x.register_hook(lambda g: g * 0):  # a handle is also a context manager
        x.grad = None
        x.sum().backward()
        assert_close(x.grad, [0.0, 0.0])
    x.grad = None
    x.sum().backward()
    assert_close(x.grad, [1.0, 1.0])


def test_an_intermediate_used_twice_gets_one_call_with_the_summed_grad(device):
    a = rand(4, seed=3)
    x = leaf(a, device)
    y = x * 2
    seen = []
    y.register_hook(lambda g: seen.append(g.numpy().copy()))
    (y * y + 3 * y).sum().backward()
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], 2 * (2 * a) + 3, rtol=1e-5)
    assert_close(x.grad, 2 * (4 * a + 3))


@pytest.mark.parametrize("retain_first", [True, False])
def test_retain_grad_stores_the_hooked_grad_whatever_the_order(device, retain_first):
    """Current torch runs retain_grad's capture after all other tensor hooks."""
    a = rand(3, seed=4)
    x = leaf(a, device)
    y = x * 3
    if retain_first:
        y.retain_grad()
    y.register_hook(lambda g: g * 2)
    if not retain_first:
        y.retain_grad()
    (y * y).sum().backward()
    assert_close(y.grad, 2 * (2 * 3 * a))
    assert_close(x.grad, 3 * 2 * (2 * 3 * a))


def test_hook_on_the_output_changes_the_initial_gradient(device):
    x = leaf([1.0, 2.0], device)
    loss = (x * x).sum()
    loss.register_hook(lambda g: g * 3)
    loss.backward()
    assert_close(x.grad, [6.0, 12.0])


def test_leaf_hook_runs_before_post_accumulate_hooks(device):
    x = leaf([1.0, 2.0], device)
    events = []
    x.register_post_accumulate_grad_hook(lambda t: events.append(("post", t.grad.numpy().tolist())))
    x.register_hook(lambda g: events.append("hook") or g * 2)
    x.sum().backward()
    assert events == ["hook", ("post", [2.0, 2.0])]


def test_hook_on_a_view_sees_the_views_grad(device):
    a = rand(2, 3, seed=5)
    x = leaf(a, device)
    v = x.T  # a non-contiguous view
    shapes = []
    v.register_hook(lambda g: shapes.append(g.shape) or g * sg.tensor(np.arange(6, dtype=np.float32).reshape(3, 2), device=device))
    (v * 2).sum().backward()
    assert shapes == [(3, 2)]
    assert_close(x.grad, 2 * np.arange(6, dtype=np.float32).reshape(3, 2).T)
    w = leaf(a, device)
    s = w[:, 1:]  # a sliced view
    s.register_hook(lambda g: g + 1)
    s.sum().backward()
    assert_close(w.grad, [[0.0, 2.0, 2.0], [0.0, 2.0, 2.0]])


def test_hooks_run_in_autograd_grad_and_leave_grad_alone(device):
    a = rand(3, seed=6)
    x = leaf(a, device)
    y = x.sin()
    calls = []
    x.register_hook(lambda g: calls.append("x") or g * 2)
    y.register_hook(lambda g: calls.append("y") or g + 1)
    out = (y * y).sum()
    gx, gy = sg.autograd.grad(out, [x, y], retain_graph=True)
    assert sorted(calls) == ["x", "y"]
    assert_close(gy, 2 * np.sin(a) + 1)  # what autograd.grad returns for an input is hooked too
    assert_close(gx, 2 * np.cos(a) * (2 * np.sin(a) + 1))
    assert x.grad is None
    out.backward()  # retain_graph: the graph (and its hooks) run again
    assert len(calls) == 4
    assert_close(x.grad, 2 * np.cos(a) * (2 * np.sin(a) + 1))


def test_create_graph_gives_the_hook_a_differentiable_grad():
    a = rand(4, seed=7).astype(np.float64)
    x = sg.tensor(a, dtype=sg.float64, requires_grad=True)
    flags = []

    def times_x(g):
        flags.append(g.requires_grad)
        return g * x  # recorded: second derivatives see it

    x.register_hook(times_x)
    (gx,) = sg.autograd.grad((x**3).sum(), x, create_graph=True)
    assert flags == [True]
    np.testing.assert_allclose(gx.detach().numpy(), 3 * a**3, rtol=1e-12)
    gx.sum().backward()  # d/dx sum(3x^2 * x), then the hook again on that gradient: * x
    np.testing.assert_allclose(x.grad.numpy(), 9 * a**2 * a, rtol=1e-12)


def test_a_hooked_gradient_matches_finite_differences_of_the_scaled_function():
    """A hook scaling an intermediate's gradient by s is the gradient of f with that
    intermediate's contribution scaled by s: check it against finite differences in float64."""
    a = rand(3, 2, seed=8).astype(np.float64)
    x = sg.tensor(a, dtype=sg.float64, requires_grad=True)
    y = x.tanh()
    y.register_hook(lambda g: g * 0.5)
    (y * y).sum().backward()

    def scaled(t):  # the same gradient: d/dx of 0.5 * sum(tanh(x)^2)
        return (t.tanh() * t.tanh()).sum() * 0.5

    gradcheck(scaled, [a])
    x2 = sg.tensor(a, dtype=sg.float64, requires_grad=True)
    scaled(x2).backward()
    np.testing.assert_allclose(x.grad.numpy(), x2.grad.numpy(), rtol=1e-12)


def test_hooks_registered_before_an_in_place_op_see_the_old_values_grad(device):
    """As in torch: a hook registered before y.mul_(3) gets the gradient with respect to the
    value before the change, one registered after it the gradient with respect to the new one."""
    x = leaf([1.0, 2.0], device)
    y = x * 1
    seen = []
    y.register_hook(lambda g: seen.append(("before", g.numpy().tolist())))
    y.mul_(3)
    y.register_hook(lambda g: seen.append(("after", g.numpy().tolist())))
    (y * y).sum().backward()
    assert seen == [("after", [6.0, 12.0]), ("before", [18.0, 36.0])]
    assert_close(x.grad, [18.0, 36.0])


def test_register_hook_errors(device):
    with pytest.raises(RuntimeError, match="cannot register a hook on a tensor that doesn't require gradient"):
        sg.ones(2, device=device).register_hook(lambda g: g)
    with sg.no_grad():
        y = leaf([1.0], device) * 2
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        y.register_hook(lambda g: g)

    x = leaf([1.0, 2.0], device)
    h = x.register_hook(lambda g: g.sum())
    with pytest.raises(RuntimeError, match=r"hook '<lambda>' has changed the size of value \(was \[2\] got \[\]\)"):
        x.sum().backward()
    assert x.grad is None  # nothing was accumulated
    h.remove()
    h = x.register_hook(lambda g: 1.0)
    with pytest.raises(TypeError, match="returned a float.*Tensor .*or None"):
        x.sum().backward()
    h.remove()

    def to_double(g):
        return g.double()

    if device == "numpy":
        x.register_hook(to_double)
        with pytest.raises(RuntimeError, match="hook 'to_double' has changed the type of value"):
            x.sum().backward()


def test_hooked_parameters_train_as_with_scaled_gradients(device):
    """A hook on a parameter scaling its gradient by 0.5 with SGD equals halving its lr."""

    def run(hooked):
        sg.manual_seed(0)
        model = nn.Linear(3, 2).to(device)
        if hooked:
            model.weight.register_hook(lambda g: g * 0.5)
            opt = optim.SGD(model.parameters(), lr=0.1)
        else:
            opt = optim.SGD([{"params": [model.weight], "lr": 0.05}, {"params": [model.bias]}], lr=0.1)
        x = sg.tensor(rand(4, 3, seed=9), device=device)
        for _ in range(3):
            opt.zero_grad()
            ((model(x) - 1) ** 2).mean().backward()
            opt.step()
        return [p.detach().numpy() for p in model.parameters()]

    for got, want in zip(run(True), run(False)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def _compiled_run(device, hook, compiled, steps=5):
    sg.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2)).to(device)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = sg.tensor(rand(5, 4, seed=10), device=device)
    model[2].weight.register_hook(lambda g: g * 0.5)  # on state, registered before: recorded too

    def step(x):
        opt.zero_grad()
        h = model[0](x)
        h.register_hook(hook)  # registered inside the step: part of what is recorded
        loss = (model[2](h.relu()) ** 2).mean()
        loss.backward()
        opt.step()
        return loss

    fn = sg.compile(step) if compiled else step
    losses = [fn(x).item() for _ in range(steps)]
    return losses, [p.detach().numpy() for p in model.parameters()], fn


def test_compile_records_and_replays_a_tensor_op_hook(device):
    def clip(g):
        return g.clamp(-0.01, 0.01) * 3

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        losses, params, fn = _compiled_run(device, clip, compiled=True)
    ref_losses, ref_params, _ = _compiled_run(device, clip, compiled=False)
    assert fn.replays >= 1 and fn.eager_reason is None
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)
    for got, want in zip(params, ref_params):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # and the hook mattered: without it training goes elsewhere
    plain_losses, _, _ = _compiled_run(device, lambda g: None, compiled=False)
    assert not np.allclose(plain_losses[1:], ref_losses[1:])


def test_compile_runs_a_step_whose_hook_reads_the_host_eagerly(device):
    norms = []

    def log_norm(g):
        norms.append((g * g).sum().item())  # a host read: cannot be replayed

    with pytest.warns(RuntimeWarning, match="reads a tensor on the host"):
        losses, params, fn = _compiled_run(device, log_norm, compiled=True)
    ref_losses, ref_params, _ = _compiled_run(device, lambda g: None, compiled=False)
    assert fn.replays == 0 and "host" in fn.eager_reason
    assert len(norms) == 5  # the hook ran every step (eagerly)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)
    for got, want in zip(params, ref_params):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
