"""RMSprop, Adagrad, Adadelta, Adamax, NAdam and RAdam against NumPy re-implementations
of PyTorch's documented algorithms, their state dicts, and the properties of a step
(replayed kernels, one kernel per parameter, a changing lr taking effect)."""

import math

import numpy as np
import pytest

import smolgrad as sg
from smolgrad.optim import RMSprop, Adagrad, Adadelta, Adamax, NAdam, RAdam
from smolgrad.optim.lr_scheduler import LambdaLR

from helpers import check_against, run_steps

STEPS = 7  # RAdam's rectified branch starts at step 6 (rho_t > 5)
SHAPES = [(3, 4), (5,)]


# --------------------------------------------------------------------------- NumPy references
# Each takes the initial parameter, the grads and lr of each step and the options, and
# returns the parameter after each step, in float64, following torch.optim's docs.
def _wd(g, p, weight_decay, maximize):
    g = -g if maximize else g
    return g + weight_decay * p if weight_decay else g


def rmsprop_ref(p, grads, lrs, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False, maximize=False):
    p = p.astype(np.float64)
    v, a, b, out = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p), []
    for g, lr in zip(grads, lrs):
        g = _wd(g, p, weight_decay, maximize)
        v = alpha * v + (1 - alpha) * g * g
        if centered:
            a = alpha * a + (1 - alpha) * g
            avg = np.sqrt(v - a * a) + eps
        else:
            avg = np.sqrt(v) + eps
        if momentum > 0:
            b = momentum * b + g / avg
            p = p - lr * b
        else:
            p = p - lr * g / avg
        out.append(p)
    return out


def adagrad_ref(p, grads, lrs, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10, maximize=False):
    p = p.astype(np.float64)
    s, out = np.full_like(p, initial_accumulator_value), []
    for t, (g, lr) in enumerate(zip(grads, lrs), start=1):
        g = _wd(g, p, weight_decay, maximize)
        clr = lr / (1 + (t - 1) * lr_decay)
        s = s + g * g
        p = p - clr * g / (np.sqrt(s) + eps)
        out.append(p)
    return out


def adadelta_ref(p, grads, lrs, rho=0.9, eps=1e-6, weight_decay=0.0, maximize=False):
    p = p.astype(np.float64)
    v, u, out = np.zeros_like(p), np.zeros_like(p), []
    for g, lr in zip(grads, lrs):
        g = _wd(g, p, weight_decay, maximize)
        v = rho * v + (1 - rho) * g * g
        delta = np.sqrt(u + eps) / np.sqrt(v + eps) * g
        u = rho * u + (1 - rho) * delta * delta
        p = p - lr * delta
        out.append(p)
    return out


def adamax_ref(p, grads, lrs, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, maximize=False):
    b1, b2 = betas
    p = p.astype(np.float64)
    m, u, out = np.zeros_like(p), np.zeros_like(p), []
    for t, (g, lr) in enumerate(zip(grads, lrs), start=1):
        g = _wd(g, p, weight_decay, maximize)
        m = b1 * m + (1 - b1) * g
        u = np.maximum(b2 * u, np.abs(g) + eps)
        p = p - lr / (1 - b1**t) * m / u
        out.append(p)
    return out


def nadam_ref(p, grads, lrs, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, momentum_decay=4e-3,
              decoupled_weight_decay=False, maximize=False):
    b1, b2 = betas
    p = p.astype(np.float64)
    m, v, mu_product, out = np.zeros_like(p), np.zeros_like(p), 1.0, []
    for t, (g, lr) in enumerate(zip(grads, lrs), start=1):
        g = -g if maximize else g
        if weight_decay and decoupled_weight_decay:
            p = p * (1 - lr * weight_decay)
        elif weight_decay:
            g = g + weight_decay * p
        mu = b1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))
        mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
        mu_product *= mu
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        denom = np.sqrt(v / (1 - b2**t)) + eps
        p = p - lr * (1 - mu) / (1 - mu_product) * g / denom
        p = p - lr * mu_next / (1 - mu_product * mu_next) * m / denom
        out.append(p)
    return out


def radam_ref(p, grads, lrs, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled_weight_decay=False, maximize=False):
    b1, b2 = betas
    p = p.astype(np.float64)
    m, v, out = np.zeros_like(p), np.zeros_like(p), []
    rho_inf = 2 / (1 - b2) - 1
    for t, (g, lr) in enumerate(zip(grads, lrs), start=1):
        g = -g if maximize else g
        if weight_decay and decoupled_weight_decay:
            p = p * (1 - lr * weight_decay)
        elif weight_decay:
            g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1**t)
        rho_t = rho_inf - 2 * t * b2**t / (1 - b2**t)
        if rho_t > 5:
            r = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
            p = p - lr * m_hat * r * math.sqrt(1 - b2**t) / (np.sqrt(v) + eps)
        else:
            p = p - lr * m_hat
        out.append(p)
    return out


# (optimizer class, reference, lr, options) per case
CASES = {
    "rmsprop": (RMSprop, rmsprop_ref, 0.01, dict()),
    "rmsprop-momentum-wd": (RMSprop, rmsprop_ref, 0.01, dict(momentum=0.9, weight_decay=0.1, alpha=0.9)),
    "rmsprop-centered": (RMSprop, rmsprop_ref, 0.01, dict(centered=True, eps=1e-3)),
    "rmsprop-centered-momentum": (RMSprop, rmsprop_ref, 0.01, dict(centered=True, momentum=0.5, maximize=True)),
    "adagrad": (Adagrad, adagrad_ref, 0.1, dict()),
    "adagrad-decay-init": (Adagrad, adagrad_ref, 0.1, dict(lr_decay=0.3, initial_accumulator_value=0.5, weight_decay=0.1)),
    "adagrad-maximize": (Adagrad, adagrad_ref, 0.1, dict(maximize=True, eps=1e-3)),
    "adadelta": (Adadelta, adadelta_ref, 1.0, dict()),
    "adadelta-options": (Adadelta, adadelta_ref, 0.5, dict(rho=0.5, eps=1e-3, weight_decay=0.2, maximize=True)),
    "adamax": (Adamax, adamax_ref, 0.02, dict()),
    "adamax-options": (Adamax, adamax_ref, 0.02, dict(betas=(0.8, 0.9), weight_decay=0.1, maximize=True)),
    "nadam": (NAdam, nadam_ref, 0.02, dict()),
    "nadam-wd": (NAdam, nadam_ref, 0.02, dict(weight_decay=0.1, momentum_decay=0.1, betas=(0.8, 0.95))),
    "nadam-decoupled": (NAdam, nadam_ref, 0.02, dict(weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    "radam": (RAdam, radam_ref, 0.02, dict()),
    # rho_t > 5 from step 6 on: steps 1-5 take the plain branch, 6-7 the rectified one
    "radam-both-branches": (RAdam, radam_ref, 0.02, dict(betas=(0.9, 0.9), weight_decay=0.1)),
    "radam-decoupled": (RAdam, radam_ref, 0.02, dict(betas=(0.8, 0.9), weight_decay=0.1, decoupled_weight_decay=True)),
}


def make_params(device, shapes=SHAPES, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s).astype(dtype) for s in shapes]
    return arrays, [sg.tensor(a, device=device, requires_grad=True) for a in arrays]


def grad_sequence(shapes=SHAPES, steps=STEPS, seed=1, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(steps)]


def references(ref, arrays, grads, lrs, options):
    return [ref(a, [g[i] for g in grads], lrs, **options) for i, a in enumerate(arrays)]


# --------------------------------------------------------------------------- the algorithms
@pytest.mark.parametrize("case", CASES)
def test_matches_pytorch_algorithm(device, case):
    cls, ref, lr, options = CASES[case]
    arrays, params = make_params(device)
    grads = grad_sequence()
    history = run_steps(cls(params, lr=lr, **options), params, grads, device)
    check_against(history, references(ref, arrays, grads, [lr] * STEPS, options), rtol=2e-5, atol=2e-6)


def test_radam_case_takes_both_branches():
    """The RAdam cases really cross rho_t = 5 within their steps."""
    b2 = 0.9
    rho_inf = 2 / (1 - b2) - 1
    rho = [rho_inf - 2 * t * b2**t / (1 - b2**t) for t in range(1, STEPS + 1)]
    assert min(rho) <= 5 < max(rho)


@pytest.mark.parametrize("case", ["rmsprop-centered", "adagrad-decay-init", "adadelta", "adamax", "nadam-wd", "radam-both-branches"])
def test_float64_matches_the_reference_closely(case):
    cls, ref, lr, options = CASES[case]
    arrays, params = make_params("numpy", dtype=np.float64)
    grads = grad_sequence(dtype=np.float64)
    opt = cls(params, lr=lr, **options)
    history = run_steps(opt, params, grads, "numpy")
    assert all(p.dtype == sg.float64 for p in params)
    assert all(v.dtype == sg.float64 for s in opt.state.values() for v in s.values() if isinstance(v, sg.Tensor))
    check_against(history, references(ref, arrays, grads, [lr] * STEPS, options), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("case", ["rmsprop-momentum-wd", "adagrad-decay-init", "adadelta", "adamax", "nadam-decoupled", "radam-decoupled"])
def test_a_scheduled_lr_takes_effect_and_steps_are_replayed(device, case):
    cls, ref, lr, options = CASES[case]
    arrays, params = make_params(device)
    grads = grad_sequence(steps=6)
    opt = cls(params, lr=lr, **options)
    sched = LambdaLR(opt, lambda epoch: 1.0 / (1 + epoch))
    history = run_steps(opt, params, grads, device, sched)
    check_against(history, references(ref, arrays, grads, [lr / (1 + t) for t in range(6)], options), rtol=2e-5, atol=2e-6)
    assert (opt._replay.recorded, opt._replay.replayed) == (1, 5)


ONE_KERNEL = [c for c in CASES if c != "rmsprop-centered-momentum"]


@pytest.mark.parametrize("case", ONE_KERNEL)
def test_update_of_a_parameter_and_its_state_is_one_kernel(device, case, monkeypatch):
    monkeypatch.setenv("SMOLGRAD_FUSION", "1")
    cls, _, lr, options = CASES[case]
    _, params = make_params(device)
    opt = cls(params, lr=lr, **options)
    for _ in range(3):
        for p in params:
            p.grad = sg.tensor(np.ones(p.shape, dtype=np.float32), device=device)
            p.grad.lazydata.realize()
        sg.reset_stats()
        opt.step()
        assert sg.stats(device)["kernels"] == len(params)


def test_centered_rmsprop_with_momentum_fits_the_buffer_limit(device, monkeypatch):
    """It binds 10 buffers (param, grad, 3 states, scalars in; param, 3 states out): one
    kernel where the device allows 10 (most adapters), else the scheduler splits it in
    two (WebGPU's default of 8, which the numpy device keeps to). Replayed either way."""
    from smolgrad.device import get_backend

    monkeypatch.setenv("SMOLGRAD_FUSION", "1")
    expected = 1 if get_backend(device).max_storage_buffers >= 10 else 2
    _, params = make_params(device, shapes=[(3, 4)])
    opt = RMSprop(params, lr=0.01, centered=True, momentum=0.5)
    for _ in range(2):
        params[0].grad = sg.tensor(np.ones((3, 4), dtype=np.float32), device=device)
        params[0].grad.lazydata.realize()
        sg.reset_stats()
        opt.step()
        assert sg.stats(device)["kernels"] == expected
    assert opt._replay.replayed == 1


def test_changing_lr_compiles_no_new_kernels_after_the_first_step(webgpu):
    from smolgrad.device import get_backend
    from smolgrad.optim.lr_scheduler import StepLR

    stats = get_backend("webgpu").stats
    _, params = make_params(webgpu, shapes=[(7, 3)], seed=3)
    opt = NAdam(params, lr=0.1, weight_decay=0.1, decoupled_weight_decay=True)
    sched = StepLR(opt, step_size=1, gamma=0.7)
    compiled = []
    for step_grads in grad_sequence(shapes=[(7, 3)], steps=3, seed=4):
        params[0].grad = sg.tensor(step_grads[0], device=webgpu)
        before = stats["kernels_compiled"]
        opt.step()
        sched.step()
        compiled.append(stats["kernels_compiled"] - before)
    assert compiled[1:] == [0, 0], f"kernels compiled per step: {compiled}"


def test_each_optimizer_trains_a_least_squares_fit():
    rng = np.random.default_rng(0)
    x = sg.tensor(rng.standard_normal((16, 3)).astype(np.float32))
    y = x @ sg.tensor(np.array([[1.5], [-2.0], [0.5]], dtype=np.float32))
    for make in (
        lambda ps: RMSprop(ps, lr=0.05),
        lambda ps: Adagrad(ps, lr=0.5),
        lambda ps: Adadelta(ps, lr=10.0),
        lambda ps: Adamax(ps, lr=0.1),
        lambda ps: NAdam(ps, lr=0.1),
        lambda ps: RAdam(ps, lr=0.1),
    ):
        w = sg.zeros(3, 1, requires_grad=True, device="numpy")
        opt = make([w])
        losses = []
        for _ in range(100):
            opt.zero_grad()
            loss = ((x @ w - y) ** 2).mean()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert losses[-1] < 0.05 * losses[0], (type(opt).__name__, losses[::20])


# --------------------------------------------------------------------------- state
STATE_KEYS = {
    "rmsprop": {"step", "square_avg"},
    "rmsprop-centered-momentum": {"step", "square_avg", "momentum_buffer", "grad_avg"},
    "adagrad": {"step", "sum"},
    "adadelta": {"step", "square_avg", "acc_delta"},
    "adamax": {"step", "exp_avg", "exp_inf"},
    "nadam": {"step", "mu_product", "exp_avg", "exp_avg_sq"},
    "radam": {"step", "exp_avg", "exp_avg_sq"},
}


@pytest.mark.parametrize("case", STATE_KEYS)
def test_state_has_pytorch_names(case):
    cls, _, lr, options = CASES[case]
    _, params = make_params("numpy")
    opt = cls(params, lr=lr, **options)
    run_steps(opt, params, grad_sequence(steps=2), "numpy")
    sd = opt.state_dict()
    assert set(sd["state"]) == {0, 1}
    assert set(sd["state"][0]) == STATE_KEYS[case]
    assert sd["state"][0]["step"] == 2
    for key in STATE_KEYS[case] - {"step", "mu_product"}:
        assert sd["state"][1][key].shape == SHAPES[1]
    assert set(sd["param_groups"][0]) == set(opt.defaults) | {"params"}


def test_nadam_mu_product_is_the_product_of_the_mus():
    _, params = make_params("numpy")
    opt = NAdam(params, lr=0.01, momentum_decay=0.01)
    run_steps(opt, params, grad_sequence(steps=3), "numpy")
    mus = [0.9 * (1 - 0.5 * 0.96 ** (t * 0.01)) for t in (1, 2, 3)]
    assert opt.state[params[0]]["mu_product"] == pytest.approx(math.prod(mus), rel=1e-14)


def test_adagrad_creates_its_state_with_the_optimizer_like_pytorch():
    _, params = make_params("numpy")
    opt = Adagrad(params, initial_accumulator_value=0.25)
    sd = opt.state_dict()
    assert set(sd["state"]) == {0, 1} and sd["state"][0]["step"] == 0
    np.testing.assert_array_equal(sd["state"][0]["sum"].numpy(), np.full(SHAPES[0], 0.25, np.float32))


@pytest.mark.parametrize("case", ["rmsprop-centered-momentum", "adagrad-decay-init", "adadelta", "adamax", "nadam", "radam-both-branches"])
def test_load_state_dict_resumes_exactly(device, case):
    cls, _, lr, options = CASES[case]
    a_arrays, a = make_params(device)
    grads = grad_sequence(steps=5)
    opt_a = cls(a, lr=lr, **options)
    run_steps(opt_a, a, grads[:2], device)
    b = [sg.tensor(p.detach().numpy(), device=device, requires_grad=True) for p in a]
    opt_b = cls(b, lr=123.0)  # the loaded state dict brings the options
    opt_b.load_state_dict(opt_a.state_dict())
    assert opt_b.param_groups[0]["lr"] == lr
    ha = run_steps(opt_a, a, grads[2:], device)
    hb = run_steps(opt_b, b, grads[2:], device)
    for va, vb in zip(ha, hb):
        for x, y in zip(va, vb):
            np.testing.assert_array_equal(x, y)


def test_load_state_dict_accepts_tensor_step_and_mu_product_as_pytorch_saves_them():
    _, a = make_params("numpy")
    opt_a = NAdam(a, lr=0.01)
    run_steps(opt_a, a, grad_sequence(steps=2), "numpy")
    sd = opt_a.state_dict()
    for s in sd["state"].values():
        s["step"] = sg.tensor(float(s["step"]))
        s["mu_product"] = sg.tensor(s["mu_product"], dtype=sg.float64)
    _, b = make_params("numpy")
    opt_b = NAdam(b, lr=0.01)
    opt_b.load_state_dict(sd)
    state = opt_b.state[b[0]]
    assert state["step"] == 2 and isinstance(state["step"], int)
    assert state["mu_product"] == pytest.approx(opt_a.state[a[0]]["mu_product"]) and isinstance(state["mu_product"], float)


def test_load_state_dict_rejects_state_of_another_optimizer():
    _, a = make_params("numpy")
    opt = NAdam(a)  # its options are a superset of RAdam's; its state is not
    run_steps(opt, a, grad_sequence(steps=1), "numpy")
    with pytest.raises(ValueError, match="mu_product.*different optimizer"):
        RAdam(make_params("numpy")[1]).load_state_dict(opt.state_dict())


def test_failed_step_changes_nothing():
    arrays, params = make_params("numpy")
    opt = NAdam(params, lr=0.1)
    params[0].grad = sg.ones(SHAPES[0], device="numpy")
    params[1].grad = sg.ones(3, device="numpy")
    with pytest.raises(RuntimeError, match="shape"):
        opt.step()
    assert opt.state == {}
    for p, a in zip(params, arrays):
        np.testing.assert_array_equal(p.detach().numpy(), a)


# --------------------------------------------------------------------------- construction
def test_defaults_are_pytorchs():
    ps = make_params("numpy")[1]
    assert RMSprop(ps).defaults == dict(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False, maximize=False)
    assert Adagrad(ps).defaults == dict(lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10, maximize=False)
    assert Adadelta(ps).defaults == dict(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, maximize=False)
    assert Adamax(ps).defaults == dict(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, maximize=False)
    assert NAdam(ps).defaults == dict(
        lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, momentum_decay=4e-3, decoupled_weight_decay=False, maximize=False
    )
    assert RAdam(ps).defaults == dict(
        lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, decoupled_weight_decay=False, maximize=False
    )


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda ps: RMSprop(ps, lr=-1.0), "Invalid learning rate: -1.0"),
        (lambda ps: RMSprop(ps, alpha=-0.1), "Invalid alpha value"),
        (lambda ps: RMSprop(ps, momentum=-0.1), "Invalid momentum value"),
        (lambda ps: Adagrad(ps, lr_decay=-1), "Invalid lr_decay value"),
        (lambda ps: Adagrad(ps, initial_accumulator_value=-1), "Invalid initial_accumulator_value value"),
        (lambda ps: Adadelta(ps, rho=1.5), "Invalid rho value"),
        (lambda ps: Adadelta(ps, eps=-1), "Invalid epsilon value"),
        (lambda ps: Adamax(ps, betas=(1.0, 0.9)), "beta parameter at index 0"),
        (lambda ps: NAdam(ps, momentum_decay=-1), "Invalid momentum_decay value"),
        (lambda ps: NAdam(ps, betas=(0.9, 1.0)), "beta parameter at index 1"),
        (lambda ps: RAdam(ps, weight_decay=-0.1), "Invalid weight_decay value"),
        (lambda ps: RAdam([{"params": ps, "lr": float("nan")}]), "Invalid learning rate"),
    ],
)
def test_invalid_hyperparameters_are_rejected(make, message):
    with pytest.raises(ValueError, match=message):
        make(make_params("numpy")[1])
