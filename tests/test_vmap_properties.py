"""Property test: func.vmap of random programs (elementwise ops, slices, cat and stack
(several-source pads), pads, flips, reductions, matmul with a weight, softmax, the
gradient of slices) equals a Python loop over the examples, on each device."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import smolgrad as sg
from smolgrad import func

STEPS = ("tanh", "cat", "stack_sum", "slice", "pad", "flip", "sum_keep", "matmul", "softmax", "slices_grad")


def apply(op: str, h, weight):
    if op == "tanh":
        return (h * 0.7).tanh()
    if op == "cat":
        return sg.cat([h[..., :1] * 2, h, h.flip(-1)], -1)[..., : h.shape[-1]] + h
    if op == "stack_sum":
        return sg.stack([h, h * h, -h], 0).sum(0)
    if op == "slice":
        return h[..., ::2].sum(-1, keepdim=True) * h
    if op == "pad":
        return sg.nn.functional.pad(h, (1, 1), value=0.5)[..., 1:-1] * h
    if op == "flip":
        return h.flip(-1) - h
    if op == "sum_keep":
        return h - h.mean(-1, keepdim=True)
    if op == "matmul":
        return h @ weight
    if op == "softmax":
        return h.softmax(-1)
    # the gradient of a weighted sum of two overlapping slices (pads added, some placed together)
    x = h.detach().requires_grad_()
    with sg.enable_grad():
        total = (x[..., :2] * 2).sum() + (x[..., 1:] ** 2).sum()
        (g,) = sg.autograd.grad(total, x)
    return g + h


@st.composite
def programs(draw):
    return (
        draw(st.integers(1, 4)),
        draw(st.integers(2, 5)),
        draw(st.lists(st.sampled_from(STEPS), min_size=1, max_size=4)),
        draw(st.integers(0, 2**16)),
    )


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(program=programs())
def test_vmap_of_random_programs_equals_a_loop(device, program):
    batch, d, steps, seed = program
    rng = np.random.default_rng(seed)
    x = sg.tensor(rng.uniform(-1, 1, (batch, d)).astype(np.float32), device=device)
    weight = sg.tensor(rng.uniform(-1, 1, (d, d)).astype(np.float32), device=device)

    def f(v):
        for op in steps:
            v = apply(op, v, weight)
        return v

    want = np.stack([f(x[i]).numpy() for i in range(batch)])
    np.testing.assert_allclose(func.vmap(f)(x).numpy(), want, rtol=1e-5, atol=1e-6)
