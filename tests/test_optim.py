"""SGD, Adam and AdamW against NumPy re-implementations of PyTorch's update formulas,
and the properties of a step: one backend run replaying recorded kernels, one kernel per
parameter, no growing graphs, kernels compiled once."""

import math

import numpy as np
import pytest

import smolgrad as sg
from smolgrad.optim import SGD, Adam, AdamW
from smolgrad.optim.lr_scheduler import StepLR

from helpers import check_against, run_steps

STEPS = 4
SHAPES = [(3, 4), (5,)]


# --------------------------------------------------------------------------- NumPy references
def sgd_reference(p, grads, lrs, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False):
    """torch.optim.SGD's documented algorithm, in float64; the value after each step."""
    p, buf, out = p.astype(np.float64), None, []
    for g, lr in zip(grads, lrs):
        g = -g if maximize else g
        if weight_decay:
            g = g + weight_decay * p
        if momentum:
            buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        p = p - lr * g
        out.append(p)
    return out


def adam_reference(p, grads, lrs, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False, decoupled=False):
    """torch.optim.Adam (decoupled=False) or AdamW (True), in float64; the value after each step."""
    b1, b2 = betas
    p = p.astype(np.float64)
    m, v, vmax, out = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p), []
    for t, (g, lr) in enumerate(zip(grads, lrs), start=1):
        g = -g if maximize else g
        if weight_decay and decoupled:
            p = p * (1 - lr * weight_decay)
        elif weight_decay:
            g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        if amsgrad:
            vmax = np.maximum(vmax, v)
        denom = np.sqrt(vmax if amsgrad else v) / math.sqrt(1 - b2**t) + eps
        p = p - lr / (1 - b1**t) * m / denom
        out.append(p)
    return out


# --------------------------------------------------------------------------- helpers
def make_params(device, shapes=SHAPES, seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    return arrays, [sg.tensor(a, device=device, requires_grad=True) for a in arrays]


def grad_sequence(shapes=SHAPES, steps=STEPS, seed=1):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(steps)]


SGD_CONFIGS = {
    "plain": dict(),
    "momentum": dict(momentum=0.9),
    "dampening": dict(momentum=0.9, dampening=0.3),
    "nesterov": dict(momentum=0.8, nesterov=True),
    "weight_decay": dict(momentum=0.9, weight_decay=0.05),
    "maximize": dict(momentum=0.5, weight_decay=0.1, maximize=True),
}


@pytest.mark.parametrize("name", SGD_CONFIGS)
def test_sgd_matches_pytorch_formula(device, name):
    config = SGD_CONFIGS[name]
    arrays, params = make_params(device)
    grads = grad_sequence()
    opt = SGD(params, lr=0.1, **config)
    history = run_steps(opt, params, grads, device)
    refs = [sgd_reference(a, [g[i] for g in grads], [0.1] * STEPS, **config) for i, a in enumerate(arrays)]
    check_against(history, refs)


ADAM_CONFIGS = {
    "default": dict(),
    "weight_decay": dict(weight_decay=0.1),
    "amsgrad": dict(amsgrad=True, betas=(0.8, 0.9)),
    "maximize": dict(maximize=True, eps=1e-3),
}


@pytest.mark.parametrize("name", ADAM_CONFIGS)
def test_adam_matches_pytorch_formula(device, name):
    config = ADAM_CONFIGS[name]
    arrays, params = make_params(device)
    grads = grad_sequence()
    opt = Adam(params, lr=0.01, **config)
    history = run_steps(opt, params, grads, device)
    refs = [adam_reference(a, [g[i] for g in grads], [0.01] * STEPS, **config) for i, a in enumerate(arrays)]
    check_against(history, refs)


@pytest.mark.parametrize("config", [dict(), dict(weight_decay=0.2, amsgrad=True)], ids=["default", "amsgrad"])
def test_adamw_matches_pytorch_formula(device, config):
    arrays, params = make_params(device)
    grads = grad_sequence()
    opt = AdamW(params, lr=0.05, **config)
    history = run_steps(opt, params, grads, device)
    wd = config.get("weight_decay", 1e-2)  # AdamW's default
    kwargs = {k: v for k, v in config.items() if k != "weight_decay"}
    refs = [
        adam_reference(a, [g[i] for g in grads], [0.05] * STEPS, weight_decay=wd, decoupled=True, **kwargs)
        for i, a in enumerate(arrays)
    ]
    check_against(history, refs)


def test_adamw_decay_differs_from_adam_l2_penalty():
    arrays, params = make_params("numpy", shapes=[(4,)])
    grads = grad_sequence(shapes=[(4,)], steps=2)
    a_w = run_steps(AdamW(params, lr=0.1, weight_decay=0.5), params, grads, "numpy")[-1][0]
    _, params = make_params("numpy", shapes=[(4,)])
    a_l2 = run_steps(Adam(params, lr=0.1, weight_decay=0.5), params, grads, "numpy")[-1][0]
    assert not np.allclose(a_w, a_l2, atol=1e-4)


def test_scheduled_lr_is_used_by_each_step(device):
    arrays, params = make_params(device)
    grads = grad_sequence()
    opt = SGD(params, lr=0.4, momentum=0.9)
    history = run_steps(opt, params, grads, device, scheduler=StepLR(opt, step_size=1, gamma=0.5))
    lrs = [0.4 * 0.5**k for k in range(STEPS)]
    refs = [sgd_reference(a, [g[i] for g in grads], lrs, momentum=0.9) for i, a in enumerate(arrays)]
    check_against(history, refs)


def test_param_groups_use_their_own_options(device):
    arrays, params = make_params(device)
    grads = grad_sequence()
    opt = SGD([{"params": [params[0]]}, {"params": [params[1]], "lr": 0.5, "momentum": 0.9}], lr=0.1)
    history = run_steps(opt, params, grads, device)
    refs = [
        sgd_reference(arrays[0], [g[0] for g in grads], [0.1] * STEPS),
        sgd_reference(arrays[1], [g[1] for g in grads], [0.5] * STEPS, momentum=0.9),
    ]
    check_against(history, refs)


def test_parameters_without_grad_are_skipped(device):
    arrays, params = make_params(device)
    opt = Adam(params, lr=0.1)
    params[0].grad = sg.ones(*SHAPES[0], device=device)
    opt.step()
    np.testing.assert_array_equal(params[1].detach().numpy(), arrays[1])
    assert params[1] not in opt.state
    assert opt.state[params[0]]["step"] == 1
    assert not np.allclose(params[0].detach().numpy(), arrays[0])


def test_step_count_is_per_parameter():
    _, params = make_params("numpy")
    opt = Adam(params, lr=0.1)
    for k in range(3):
        params[0].grad = sg.ones(*SHAPES[0], device="numpy")
        params[1].grad = sg.ones(*SHAPES[1], device="numpy") if k == 2 else None
        opt.step()
    assert (opt.state[params[0]]["step"], opt.state[params[1]]["step"]) == (3, 1)


def test_step_runs_the_backward_graph_and_trains(device):
    """Fit y = x @ w_true with Adam from loss.backward(); the loss must fall far."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 3)).astype(np.float32)
    y = x @ np.array([[1.5], [-2.0], [0.5]], dtype=np.float32)
    xs, ys = sg.tensor(x, device=device), sg.tensor(y, device=device)
    w = sg.zeros(3, 1, device=device, requires_grad=True)
    opt = Adam([w], lr=0.1)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = ((xs @ w - ys) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 1e-3 * losses[0], losses[::10]


def test_step_returns_the_closure_loss_computed_with_grad():
    w = sg.tensor([1.0, 2.0], requires_grad=True, device="numpy")
    opt = SGD([w], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    with sg.no_grad():
        loss = opt.step(closure)
    assert loss.item() == pytest.approx(5.0)
    np.testing.assert_allclose(w.detach().numpy(), [0.8, 1.6], rtol=1e-6)


def test_step_keeps_parameter_identity_and_requires_grad(device):
    _, params = make_params(device)
    before = [id(p) for p in params]
    opt = SGD(params, lr=0.1)
    for p in params:
        p.grad = sg.ones(p.shape, device=device)
    opt.step()
    assert [id(p) for p in params] == before
    assert all(p.requires_grad and p.is_leaf for p in params)


def test_step_runs_everything_in_one_backend_run(monkeypatch):
    from smolgrad.device import get_backend

    backend = get_backend("numpy")
    runs = []
    for name in ("run", "run_program"):  # (an eager step's kernels, a replayed one's)
        real = getattr(backend, name)
        monkeypatch.setattr(backend, name, lambda kernels, buffers, *rest, real=real: (
            real(kernels, buffers, *rest), runs.append({id(b) for b in buffers})))
    _, params = make_params("numpy")
    opt = Adam([{"params": [params[0]]}, {"params": [params[1]], "lr": 0.5}], lr=0.1, amsgrad=True)
    for step in range(3):
        for p in params:
            p.grad = sg.tensor(np.ones(p.shape, dtype=np.float32))
        runs.clear()
        opt.step()
        assert len(runs) == 1, f"step {step + 1}"
        # per parameter: the value, exp_avg, exp_avg_sq, max_exp_avg_sq
        new = [p.lazydata.base for p in params] + [v.lazydata.base for p in params for k, v in opt.state[p].items() if k != "step"]
        assert len(new) == 8 and {id(b.realized) for b in new} <= runs[0]
    assert (opt._replay.recorded, opt._replay.replayed) == (1, 2)


@pytest.mark.parametrize(
    "make_opt",
    [lambda ps: Adam(ps, lr=0.1), lambda ps: AdamW(ps, lr=0.1), lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True)],
    ids=["adam", "adamw", "sgd-nesterov"],
)
def test_update_of_a_parameter_and_its_state_is_one_kernel(device, make_opt, monkeypatch):
    """The step's scalars share one buffer, so a parameter's whole update fits in one
    kernel under the WebGPU default of 8 storage buffers."""
    monkeypatch.setenv("SMOLGRAD_FUSION", "1")  # (CI also runs the suite with fusion off)
    _, params = make_params(device)
    opt = make_opt(params)
    for _ in range(2):
        for p in params:
            p.grad = sg.tensor(np.ones(p.shape, dtype=np.float32), device=device)
            p.grad.lazydata.realize()
        sg.reset_stats()
        opt.step()
        assert sg.stats(device)["kernels"] == len(params)


def test_step_replays_its_kernels_and_follows_the_lr(device):
    """After the first step, steps rerun the recorded kernels (no graph, no scheduling);
    the lr, changed by a scheduler every step, still takes effect."""
    from smolgrad.optim.lr_scheduler import LambdaLR

    arrays, params = make_params(device)
    grads = grad_sequence(steps=6)
    opt = Adam(params, lr=0.1)
    sched = LambdaLR(opt, lambda epoch: 1.0 / (1 + epoch))
    history = run_steps(opt, params, grads, device, sched)
    lrs = [0.1 / (1 + t) for t in range(6)]
    refs = [adam_reference(a, [g[i] for g in grads], lrs) for i, a in enumerate(arrays)]
    check_against(history, refs)
    assert (opt._replay.recorded, opt._replay.replayed) == (1, 5)


def test_step_records_again_when_the_options_or_the_grads_change():
    arrays, params = make_params("numpy")
    opt = SGD(params, lr=0.1, momentum=0.9)
    grads = grad_sequence(steps=5)
    run_steps(opt, params, grads[:2], "numpy")
    assert opt._replay.recorded == 1  # the first step (b = g) differs in its scalars, not its kernels
    opt.param_groups[0]["momentum"] = 0.5  # baked into the kernels: a new recording
    run_steps(opt, params, grads[2:3], "numpy")
    assert opt._replay.recorded == 2
    params[1].grad = None  # a parameter without grad is skipped: another layout
    params[0].grad = sg.tensor(grads[3][0])
    before = params[1].detach().numpy()
    opt.step()
    assert opt._replay.recorded == 3
    np.testing.assert_array_equal(params[1].detach().numpy(), before)


def test_step_leaves_no_graph_behind(device):
    _, params = make_params(device)
    opt = Adam(params, lr=0.1)
    for _ in range(3):
        for p in params:
            p.grad = sg.ones(p.shape, device=device) * 2.0
        opt.step()
    for p in params:
        assert p.lazydata.is_realized() and p.lazydata.base.srcs == ()
        for value in opt.state[p].values():
            if isinstance(value, sg.Tensor):
                assert value.lazydata.is_realized() and value.lazydata.base.srcs == ()


@pytest.mark.parametrize(
    "make_opt",
    [
        lambda ps: AdamW(ps, lr=0.1, weight_decay=0.1),
        lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    ],
    ids=["adamw", "sgd_nesterov"],
)
def test_changing_lr_compiles_no_new_kernels_after_first_step(webgpu, make_opt):
    from smolgrad.device import get_backend

    stats = get_backend("webgpu").stats
    _, params = make_params(webgpu, shapes=[(7, 3)], seed=3)
    opt = make_opt(params)
    sched = StepLR(opt, step_size=1, gamma=0.7)
    compiled = []
    for step_grads in grad_sequence(shapes=[(7, 3)], steps=3, seed=4):
        params[0].grad = sg.tensor(step_grads[0], device=webgpu)
        before = stats["kernels_compiled"]
        opt.step()
        sched.step()
        compiled.append(stats["kernels_compiled"] - before)
    assert opt.param_groups[0]["lr"] != 0.1
    assert compiled[1:] == [0, 0], f"kernels compiled per step: {compiled}"


def test_zero_grad_sets_grads_to_none():
    _, params = make_params("numpy")
    opt = SGD(params, lr=0.1)
    for p in params:
        p.grad = sg.ones(p.shape, device="numpy")
    opt.zero_grad()
    assert all(p.grad is None for p in params)


def test_zero_grad_without_set_to_none_gives_zeros(device):
    _, params = make_params(device)
    opt = SGD(params, lr=0.1)
    params[0].grad = sg.ones(params[0].shape, device=device)
    opt.zero_grad(set_to_none=False)
    assert params[0].grad.device == device
    np.testing.assert_array_equal(params[0].grad.numpy(), np.zeros(SHAPES[0], np.float32))
    assert params[1].grad is None


def test_float64_parameters_keep_their_dtype():
    p = sg.tensor(np.arange(4.0), dtype=sg.float64, requires_grad=True, device="numpy")
    opt = Adam([p], lr=0.1)
    p.grad = sg.ones(4, dtype=sg.float64, device="numpy")
    opt.step()
    assert p.dtype == sg.float64 and opt.state[p]["exp_avg"].dtype == sg.float64
    expected = adam_reference(np.arange(4.0), [np.ones(4)], [0.1])[0]
    np.testing.assert_allclose(p.detach().numpy(), expected, rtol=1e-14)
