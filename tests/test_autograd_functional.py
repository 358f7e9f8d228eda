"""autograd.functional (jacobian, hessian, vjp, jvp, hvp, vhp), smolgrad.func, forward_ad's
API, and higher-order reverse mode (create_graph)."""

from __future__ import annotations

import numpy as np
import pytest

import smolgrad as sg
import smolgrad.autograd.functional as AF
from smolgrad import func
from smolgrad.autograd import forward_ad as fwAD

from helpers import assert_close


def t64(a, **kw):
    return sg.tensor(np.asarray(a, dtype=np.float64), dtype=sg.float64, **kw)


def f_vec(x):  # R^3 -> R^2
    return sg.stack([(x * x).sum(), (x[0] * x[1]).sin() + x[2]])


def jac_f_vec(x):
    return np.array([2 * x, [np.cos(x[0] * x[1]) * x[1], np.cos(x[0] * x[1]) * x[0], 1.0]])


def f_scalar(x):
    return (x.tanh() * x * x).sum()


def hess_f_scalar(x):
    t = np.tanh(x)
    s = 1 - t**2
    return np.diag(2 * t + 4 * x * s - 2 * x * x * t * s)


X = np.array([0.3, -0.7, 1.1])


def test_jacobian_reverse_and_forward_mode_agree_with_the_formula():
    for strategy in ("reverse-mode", "forward-mode"):
        assert_close(AF.jacobian(f_vec, t64(X), strategy=strategy), jac_f_vec(X), rtol=1e-12, atol=1e-12)


def test_jacobian_of_tuple_inputs_and_outputs_has_pytorchs_nesting():
    a, b = t64([1.0, 2.0]), t64([3.0, 4.0, 5.0])
    jac = AF.jacobian(lambda x, y: (x.sum() * y, x * 2), (a, b))
    assert isinstance(jac, tuple) and len(jac) == 2 and all(isinstance(row, tuple) for row in jac)
    assert [j.shape for j in jac[0]] == [(3, 2), (3, 3)] and [j.shape for j in jac[1]] == [(2, 2), (2, 3)]
    assert_close(jac[0][0], np.tile(b.numpy()[:, None], (1, 2)))
    assert_close(jac[1][1], np.zeros((2, 3)))


def test_hessian_hvp_vhp():
    x, v = t64(X), t64([1.0, -2.0, 0.5])
    h = hess_f_scalar(X)
    assert_close(AF.hessian(f_scalar, x), h, rtol=1e-10, atol=1e-12)
    assert_close(AF.hessian(f_scalar, x, outer_jacobian_strategy="forward-mode"), h, rtol=1e-10, atol=1e-12)
    value, hv = AF.hvp(f_scalar, x, v)
    assert value.item() == pytest.approx(f_scalar(x).item())
    assert_close(hv, h @ v.numpy(), rtol=1e-10, atol=1e-12)
    assert_close(AF.vhp(f_scalar, x, v)[1], v.numpy() @ h, rtol=1e-10, atol=1e-12)


def test_vjp_and_jvp():
    x, u, v = t64(X), t64([1.0, 2.0]), t64([0.5, 0.1, -1.0])
    out, vjp = AF.vjp(f_vec, x, u)
    assert_close(out, f_vec(x).numpy())
    assert_close(vjp, u.numpy() @ jac_f_vec(X), rtol=1e-12, atol=1e-12)
    out, jvp = AF.jvp(f_vec, x, v)
    assert_close(jvp, jac_f_vec(X) @ v.numpy(), rtol=1e-12, atol=1e-12)
    assert not out.requires_grad and not jvp.requires_grad


def test_functional_errors():
    with pytest.raises(RuntimeError, match="v can only be None"):
        AF.vjp(f_vec, t64(X))
    with pytest.raises(RuntimeError, match="independent of input 1"):
        AF.vjp(lambda a, b: a.sum(), (t64(X), t64(X)), strict=True)
    with pytest.raises(RuntimeError, match="single element"):
        AF.hessian(f_vec, t64(X))
    assert_close(AF.vjp(lambda a, b: a.sum(), (t64(X), t64(X)))[1][1], np.zeros(3))


def test_create_graph_makes_functional_results_differentiable():
    x = t64(X, requires_grad=True)
    _, hv = AF.hvp(f_scalar, x, t64([1.0, 0.0, 0.0]), create_graph=True)
    assert hv.requires_grad
    (g,) = sg.autograd.grad(hv[0], x)  # a third derivative
    eps = 1e-5
    plus = AF.hvp(f_scalar, t64(X + [eps, 0, 0]), t64([1.0, 0, 0]))[1][0].item()
    minus = AF.hvp(f_scalar, t64(X - [eps, 0, 0]), t64([1.0, 0, 0]))[1][0].item()
    assert g.numpy()[0] == pytest.approx((plus - minus) / (2 * eps), rel=1e-6)


def test_func_grad_nests_to_any_order():
    f = lambda x: (x**5).sum()
    x = t64(2.0)
    assert func.grad(f)(x).item() == pytest.approx(80.0)
    assert func.grad(func.grad(f))(x).item() == pytest.approx(160.0)
    assert func.grad(func.grad(func.grad(f)))(x).item() == pytest.approx(240.0)
    assert not func.grad(f)(x).requires_grad


def test_func_grad_argnums_aux_and_value():
    f = lambda a, b: ((a * b).sum(), "aux")
    a, b = t64([1.0, 2.0]), t64([3.0, 4.0])
    (ga, gb), (value, aux) = func.grad_and_value(f, argnums=(0, 1), has_aux=True)(a, b)
    assert_close(ga, b.numpy()) and assert_close(gb, a.numpy())
    assert value.item() == 11.0 and aux == "aux"
    with pytest.raises(RuntimeError, match="scalar"):
        func.grad(lambda a: a * 2)(a)


def test_func_jacrev_equals_jacfwd_and_hessian():
    x = t64(X)
    assert_close(func.jacrev(f_vec)(x), jac_f_vec(X), rtol=1e-12, atol=1e-12)
    assert_close(func.jacfwd(f_vec)(x), jac_f_vec(X), rtol=1e-12, atol=1e-12)
    assert_close(func.hessian(f_scalar)(x), hess_f_scalar(X), rtol=1e-10, atol=1e-12)
    assert_close(func.jacrev(func.jacrev(f_scalar))(x), hess_f_scalar(X), rtol=1e-10, atol=1e-12)


def test_func_vjp_and_jvp():
    x = t64(X)
    out, vjp_fn = func.vjp(f_vec, x)
    assert_close(out, f_vec(x).numpy())
    (g,) = vjp_fn(t64([1.0, -1.0]))
    assert_close(g, np.array([1.0, -1.0]) @ jac_f_vec(X), rtol=1e-12, atol=1e-12)
    out, tangent = func.jvp(f_vec, (x,), (t64([0.0, 1.0, 0.0]),))
    assert_close(tangent, jac_f_vec(X)[:, 1], rtol=1e-12, atol=1e-12)


def test_forward_ad_api():
    x = t64(X)
    with pytest.raises(RuntimeError, match="dual_level"):
        fwAD.make_dual(x, x)
    with fwAD.dual_level():
        with pytest.raises(RuntimeError, match="Nested"):
            fwAD.enter_dual_level()
        with pytest.raises(ValueError, match="must match"):
            fwAD.make_dual(x, t64([1.0, 2.0]))
        d = fwAD.make_dual(x, t64([1.0, 1.0, 1.0]))
        y = d * 3.0
        assert fwAD.unpack_dual(x).tangent is None
        primal, tangent = fwAD.unpack_dual(y)
        assert fwAD.unpack_dual(primal).tangent is None
        assert_close(tangent, np.full(3, 3.0))
    assert fwAD.unpack_dual(y).tangent is None  # the level is gone


def test_forward_mode_through_a_network_matches_reverse_mode(device):
    sg.manual_seed(0)
    net = sg.nn.Sequential(sg.nn.Linear(4, 8), sg.nn.Tanh(), sg.nn.Linear(8, 3)).to(device)
    x = sg.randn(5, 4, device=device)
    v = sg.randn(5, 4, device=device)
    _, jv = func.jvp(net, (x,), (v,))
    _, vjp_fn = func.vjp(net, x)
    u = sg.randn(5, 3, device=device)
    (ju,) = vjp_fn(u)
    assert (u * jv).sum().item() == pytest.approx((ju * v).sum().item(), rel=1e-4)


def test_backward_create_graph_gives_a_gradient_penalty(device):
    w = sg.tensor([0.5, -1.5, 2.0], device=device, requires_grad=True)
    x = sg.tensor([1.0, 2.0, 3.0], device=device)
    y = ((w * x).tanh()).sum()
    (g,) = sg.autograd.grad(y, w, create_graph=True)
    penalty = (g * g).sum()
    penalty.backward()
    wn, xn = w.detach().numpy(), x.numpy()
    s = 1 - np.tanh(wn * xn) ** 2  # g = x * s; d(g^2)/dw = 2 g * x * (-2 tanh * s * x)
    expected = 2 * (xn * s) * xn * (-2 * np.tanh(wn * xn) * s * xn)
    assert_close(w.grad, expected, rtol=1e-4, atol=1e-5)


def test_backward_create_graph_leaves_differentiable_grads():
    x = t64([1.0, 2.0], requires_grad=True)
    (x**3).sum().backward(create_graph=True)
    assert x.grad.requires_grad
    (gg,) = sg.autograd.grad(x.grad.sum(), x)
    assert_close(gg, 6 * np.array([1.0, 2.0]))


def test_backward_inputs_limits_accumulation():
    a, b = t64([1.0], requires_grad=True), t64([2.0], requires_grad=True)
    (a * b).sum().backward(inputs=[a])
    assert_close(a.grad, [2.0]) and b.grad is None


def test_grad_of_an_unused_input():
    a, b = t64([1.0], requires_grad=True), t64([2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="allow_unused=True"):
        sg.autograd.grad((a * 2).sum(), [a, b])
    assert sg.autograd.grad((a * 2).sum(), [a, b], allow_unused=True)[1] is None
    assert_close(sg.autograd.grad((a * 2).sum(), [a, b], materialize_grads=True)[1], [0.0])


def test_saved_tensors_are_declared_not_scanned():
    """Naming a temporary on a Function does not make the scheduler store it."""
    from smolgrad import function as Fn

    x = sg.randn(4, requires_grad=True)
    y = Fn.Exp.apply(x)
    assert len(y._ctx.saved_tensors) == 1 and y._ctx.saved_tensors[0] is y
    z = x * x
    assert all(s is x for s in z._ctx.saved_tensors)


def test_retain_grad_keeps_a_non_leaf_gradient(device):
    x = sg.tensor([1.0, -2.0, 3.0], device=device, requires_grad=True)
    y = x * 2
    y.retain_grad()
    assert y.retains_grad and not (x * 3).retains_grad
    (y * y).sum().backward()
    assert_close(y.grad, 2 * y.detach().numpy())
    assert_close(x.grad, 8 * x.detach().numpy())
    with pytest.raises(RuntimeError, match="requires_grad=False"):
        sg.ones(2).retain_grad()
