"""Property test: random training steps (parameters of random shapes, a random loss built
from matmuls, cat, slices, activations and reductions, a random optimizer, clipping,
an lr schedule, reads of parameter views kept between steps) captured with
smolgrad.compile give eager's losses and parameters after every step: bit for bit on
numpy, float32-close on webgpu."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import smolgrad as sg
from smolgrad import nn, optim

OPS = ("tanh", "relu", "cat", "slice", "square", "softmax", "matmul", "scale")


@st.composite
def cases(draw):
    n = draw(st.integers(1, 4))  # batch
    d = draw(st.integers(1, 5))  # features
    ops = draw(st.lists(st.sampled_from(OPS), min_size=1, max_size=5))
    return dict(
        n=n,
        d=d,
        ops=ops,
        optimizer=draw(st.sampled_from(["sgd", "momentum", "adam", "adamw"])),
        clip=draw(st.booleans()),
        schedule=draw(st.booleans()),
        held=draw(st.booleans()),
        seed=draw(st.integers(0, 2**16)),
    )


def make(case, device):
    rng = np.random.default_rng(case["seed"])
    d = case["d"]
    w = nn.Parameter(sg.tensor(rng.standard_normal((d, d)).astype(np.float32) * 0.5, device=device))
    b = nn.Parameter(sg.tensor(rng.standard_normal(d).astype(np.float32) * 0.1, device=device))
    params = [w, b]
    kind = case["optimizer"]
    if kind == "sgd":
        opt = optim.SGD(params, lr=0.1)
    elif kind == "momentum":
        opt = optim.SGD(params, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)
    elif kind == "adam":
        opt = optim.Adam(params, lr=0.01)
    else:
        opt = optim.AdamW(params, lr=0.01, weight_decay=0.1)
    sched = optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5) if case["schedule"] else None
    return w, b, opt, sched


def loss_of(case, w, b, x):
    h = x @ w + b
    for op in case["ops"]:
        if op == "tanh":
            h = h.tanh()
        elif op == "relu":
            h = h.relu() + h * 0.1
        elif op == "cat":
            h = sg.cat([h, h * 2, h[:, :1]], 1)[:, : h.shape[1]]
        elif op == "slice":
            h = h[:, ::2].sum(1, keepdim=True) + h
        elif op == "square":
            h = h * h
        elif op == "softmax":
            h = h.softmax(-1)
        elif op == "matmul":
            h = h @ w.T if h.shape[1] == w.shape[0] else h
        else:
            h = h * 0.5 - 1
    return h.square().mean()


def run(case, device, data, compiled):
    w, b, opt, sched = make(case, device)

    def step(x):
        opt.zero_grad()
        loss = loss_of(case, w, b, x)
        loss.backward()
        if case["clip"]:
            nn.utils.clip_grad_norm_([w, b], 0.5)
        opt.step()
        return loss

    if compiled:
        step = sg.compile(step)
    view = w[0] if case["held"] else None  # (a view of a parameter held across steps: its value as eagerly)
    history = []
    for x in data:
        loss = step(x)
        if sched is not None:
            sched.step()
        values = [loss.detach().numpy(), w.detach().numpy(), b.detach().numpy()]
        if view is not None:
            values.append(view.detach().numpy())
        history.append(values)
    return history, step


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases())
def test_captured_steps_equal_eager(device, case):
    rng = np.random.default_rng(case["seed"] + 1)
    data = [sg.tensor(rng.standard_normal((case["n"], case["d"])).astype(np.float32), device=device) for _ in range(6)]
    eager, _ = run(case, device, data, compiled=False)
    captured, step = run(case, device, data, compiled=True)
    assert step.eager_reason is None and step.replays >= 3
    for got_step, want_step in zip(captured, eager):
        for got, want in zip(got_step, want_step):
            if device == "numpy":
                np.testing.assert_array_equal(got, want)
            else:
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
