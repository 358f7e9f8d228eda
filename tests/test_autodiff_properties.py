"""Property test: random differentiable programs (elementwise ops, broadcasting, views,
cat, reductions, matmul, softmax) in float64 on numpy. Their reverse-mode gradient,
forward-mode JVP (func.jvp) and second derivative (double backward: a Hessian-vector
product) agree with central finite differences."""

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import smolgrad as sg
from smolgrad import func

UNARY = ("tanh", "sigmoid", "exp_small", "square", "sin", "softplus")
STEPS = UNARY + ("add_self_t", "cat_flip", "slice_pad", "sum_keep", "softmax", "matmul", "mul_bias")


def apply(op: str, h, bias):
    if op == "tanh":
        return h.tanh()
    if op == "sigmoid":
        return h.sigmoid()
    if op == "exp_small":
        return (h * 0.3).exp()
    if op == "square":
        return h * h * 0.5
    if op == "sin":
        return h.sin()
    if op == "softplus":
        return sg.nn.functional.softplus(h)
    if op == "add_self_t":  # a view read twice: transposed and as it is
        return h + h.T * 0.5 if h.shape[0] == h.shape[1] else h + h.flip(0) * 0.5
    if op == "cat_flip":
        return sg.cat([h, h.flip(1) * 2], 1)[:, : h.shape[1]] + h[:, :1]
    if op == "slice_pad":
        return h + h[:, ::2].sum(1, keepdim=True)
    if op == "sum_keep":
        return h - h.mean(0, keepdim=True)
    if op == "softmax":
        return h.softmax(-1) * 3
    if op == "matmul":
        return h @ h.T @ h * 0.2
    return h * bias  # mul_bias: broadcast along the rows


@st.composite
def programs(draw):
    return (
        draw(st.integers(1, 4)),
        draw(st.integers(1, 4)),
        draw(st.lists(st.sampled_from(STEPS), min_size=1, max_size=5)),
        draw(st.integers(0, 2**16)),
    )


def make(steps, bias):
    def f(x):
        h = x
        for op in steps:
            h = apply(op, h, bias)
        return (h * h).sum()

    return f


def numeric_directional(f, x: np.ndarray, v: np.ndarray, eps: float = 1e-6) -> float:
    plus = f(sg.tensor(x + eps * v, device="numpy")).item()
    minus = f(sg.tensor(x - eps * v, device="numpy")).item()
    return (plus - minus) / (2 * eps)


@settings(max_examples=60, deadline=None)
@given(program=programs())
def test_gradient_jvp_and_hessian_vector_product_match_finite_differences(program):
    n, d, steps, seed = program
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, d))
    v = rng.uniform(-1, 1, (n, d))
    bias = sg.tensor(rng.uniform(0.5, 1.5, d), device="numpy")
    f = make(steps, bias)
    # a chain of growing steps into exp overflows, or is too steep for finite differences
    want = numeric_directional(f, x, v)
    assume(abs(f(sg.tensor(x, device="numpy")).item()) < 1e3 and abs(want) < 1e3)

    # reverse mode: <grad f(x), v> against the directional difference
    xt = sg.tensor(x, device="numpy", requires_grad=True)
    (g,) = sg.autograd.grad(f(xt), xt, create_graph=True)
    np.testing.assert_allclose((g.detach().numpy() * v).sum(), want, rtol=1e-5, atol=1e-6)

    # forward mode: the JVP's tangent is the same directional derivative
    _, tangent = func.jvp(f, (sg.tensor(x, device="numpy"),), (sg.tensor(v, device="numpy"),))
    np.testing.assert_allclose(tangent.item(), want, rtol=1e-5, atol=1e-6)

    # double backward: H v = d/dx <grad f(x), v>, against differences of the gradient
    (hv,) = sg.autograd.grad((g * sg.tensor(v, device="numpy")).sum(), xt)

    def grad_at(a):
        at = sg.tensor(a, device="numpy", requires_grad=True)
        return sg.autograd.grad(f(at), at)[0].numpy()

    eps = 1e-5
    numeric = (grad_at(x + eps * v) - grad_at(x - eps * v)) / (2 * eps)
    np.testing.assert_allclose(hv.numpy(), numeric, rtol=1e-4, atol=1e-5)
