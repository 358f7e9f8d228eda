"""ExponentialLR, MultiStepLR, PolynomialLR, CosineAnnealingWarmRestarts, OneCycleLR and
ReduceLROnPlateau against re-implementations of PyTorch's recurrences, their state dicts,
and OneCycleLR's cycled momentum reaching replayed optimizer steps."""

import math

import numpy as np
import pytest

import smolgrad as sg
from smolgrad.optim import SGD, Adam, Adagrad, RMSprop, NAdam
from smolgrad.optim.lr_scheduler import (
    CosineAnnealingWarmRestarts,
    ExponentialLR,
    LRScheduler,
    MultiStepLR,
    OneCycleLR,
    PolynomialLR,
    ReduceLROnPlateau,
)

from helpers import lrs_over


def optimizer(lrs=(0.1,), cls=SGD, **options):
    groups = [{"params": [sg.zeros(2, requires_grad=True, device="numpy")], "lr": lr} for lr in lrs]
    return cls(groups, lr=lrs[0], **options)


def assert_lrs(got, expected, rel=1e-12):
    assert len(got) == len(expected)
    for step, (g, e) in enumerate(zip(got, expected)):
        assert g == pytest.approx(e, rel=rel, abs=1e-15), f"step {step}: {g} != {e}"


# --------------------------------------------------------------------------- recurrences
def test_exponential_lr_multiplies_by_gamma_each_step():
    expected, lrs = [], [0.1, 0.4]
    for _ in range(8):  # PyTorch's recurrence: lr <- lr * gamma
        expected.append(list(lrs))
        lrs = [lr * 0.8 for lr in lrs]
    assert_lrs(lrs_over(ExponentialLR(optimizer((0.1, 0.4)), gamma=0.8), 8), expected)


def test_multistep_lr_decays_at_each_milestone_counting_repeats():
    milestones = [2, 5, 5, 7]
    expected, lr = [], 0.5
    for epoch in range(10):  # PyTorch: lr *= gamma ** milestones.count(epoch) at each epoch
        lr *= 0.5 ** milestones.count(epoch)
        expected.append([lr])
    assert_lrs(lrs_over(MultiStepLR(optimizer((0.5,)), milestones=[7, 5, 2, 5], gamma=0.5), 10), expected)


def test_multistep_lr_default_gamma_is_a_tenth():
    sched = MultiStepLR(optimizer((1.0,)), milestones=[1])
    lrs_over(sched, 2)
    assert sched.get_last_lr() == pytest.approx([0.1])


@pytest.mark.parametrize("power", [1.0, 2.0, 0.5])
def test_polynomial_lr_follows_pytorchs_recurrence(power):
    total = 4
    expected, lr = [], 0.3
    for epoch in range(8):  # PyTorch's chainable form
        if 0 < epoch <= total:
            lr *= ((1 - epoch / total) / (1 - (epoch - 1) / total)) ** power
        expected.append([lr])
    assert_lrs(lrs_over(PolynomialLR(optimizer((0.3,)), total_iters=total, power=power), 8), expected)


def test_polynomial_lr_defaults():
    sched = PolynomialLR(optimizer((1.0,)))
    assert (sched.total_iters, sched.power) == (5, 1.0)
    assert_lrs(lrs_over(sched, 7), [[1 - min(e, 5) / 5] for e in range(7)])


def warm_restarts_reference(base, T_0, T_mult, eta_min, epochs):
    """The lr at each epoch, from walking the restart periods."""
    out = []
    for epoch in epochs:
        t_cur, t_i = epoch, T_0
        while t_cur >= t_i:
            t_cur -= t_i
            t_i *= T_mult
        out.append(eta_min + (base - eta_min) * (1 + math.cos(math.pi * t_cur / t_i)) / 2)
    return out


@pytest.mark.parametrize("T_0, T_mult", [(3, 1), (2, 2), (1, 3)])
def test_cosine_warm_restarts_restart_every_period(T_0, T_mult):
    sched = CosineAnnealingWarmRestarts(optimizer((0.1, 0.3)), T_0=T_0, T_mult=T_mult, eta_min=0.01)
    expected = [[a, b] for a, b in zip(*(warm_restarts_reference(base, T_0, T_mult, 0.01, range(20)) for base in (0.1, 0.3)))]
    assert_lrs(lrs_over(sched, 20), expected)


@pytest.mark.parametrize("T_mult", [1, 2])
def test_cosine_warm_restarts_take_fractional_epochs(T_mult):
    sched = CosineAnnealingWarmRestarts(optimizer((0.2,)), T_0=2, T_mult=T_mult)
    epochs = [e + i / 4 for e in range(9) for i in range(4)]
    got = []
    for epoch in epochs:
        sched.step(epoch)
        got.append(sched.get_last_lr())
    expected = [[lr] for lr in warm_restarts_reference(0.2, 2, T_mult, 0.0, epochs)]
    assert_lrs(got, expected, rel=1e-9)
    assert sched.last_epoch == 8


def one_cycle_reference(total, max_lr, pct_start=0.3, anneal="cos", div=25.0, final_div=1e4, three_phase=False,
                        base_m=0.85, max_m=0.95):
    """(lr, momentum) at each step 0..total-1, from the phase list in PyTorch's docs."""
    lo, hi = max_lr / div, max_lr
    low = lo / final_div
    up = pct_start * total - 1
    if three_phase:
        phases = [(up, lo, hi, max_m, base_m), (2 * pct_start * total - 2, hi, lo, base_m, max_m), (total - 1, lo, low, max_m, max_m)]
    else:
        phases = [(up, lo, hi, max_m, base_m), (total - 1, hi, low, base_m, max_m)]

    def anneal_fn(a, b, pct):
        return b + (a - b) / 2 * (1 + np.cos(np.pi * pct)) if anneal == "cos" else a + (b - a) * pct

    out = []
    for step in range(total):
        start = 0.0
        for i, (end, lr0, lr1, m0, m1) in enumerate(phases):
            if step <= end or i == len(phases) - 1:
                pct = (step - start) / (end - start)
                out.append((anneal_fn(lr0, lr1, pct), anneal_fn(m0, m1, pct)))
                break
            start = end
    return out


@pytest.mark.parametrize(
    "options",
    [dict(), dict(anneal_strategy="linear"), dict(three_phase=True), dict(pct_start=0.5, div_factor=10.0, final_div_factor=100.0)],
    ids=["cos", "linear", "three-phase", "options"],
)
def test_one_cycle_lr_and_momentum_follow_the_phases(options):
    opt = optimizer((0.1,), momentum=0.9)
    sched = OneCycleLR(opt, max_lr=1.0, total_steps=20, **options)
    ref_options = {
        "pct_start": options.get("pct_start", 0.3),
        "anneal": options.get("anneal_strategy", "cos"),
        "div": options.get("div_factor", 25.0),
        "final_div": options.get("final_div_factor", 1e4),
        "three_phase": options.get("three_phase", False),
    }
    ref = one_cycle_reference(20, 1.0, **ref_options)
    got_lr, got_m = [], []
    for step in range(20):
        got_lr.append([opt.param_groups[0]["lr"]])
        got_m.append([opt.param_groups[0]["momentum"]])
        opt.step()
        if step < 19:  # a 21st lr would be past total_steps
            sched.step()
    assert_lrs(got_lr, [[lr] for lr, _ in ref], rel=1e-9)
    assert_lrs(got_m, [[m] for _, m in ref], rel=1e-9)
    assert got_lr[0][0] == pytest.approx(1.0 / ref_options["div"])
    assert max(x[0] for x in got_lr) == pytest.approx(1.0, rel=0.05)


def test_one_cycle_takes_epochs_and_steps_per_epoch_and_cycles_beta1():
    opt = optimizer((0.1, 0.2), cls=Adam, betas=(0.9, 0.99))
    sched = OneCycleLR(opt, max_lr=[1.0, 2.0], epochs=2, steps_per_epoch=5, cycle_momentum=True)
    assert sched.total_steps == 10
    assert [g["initial_lr"] for g in opt.param_groups] == pytest.approx([0.04, 0.08])
    assert [g["min_lr"] for g in opt.param_groups] == pytest.approx([0.04e-4, 0.08e-4])
    ref = one_cycle_reference(10, 1.0)
    for step in range(10):
        assert opt.param_groups[0]["betas"] == pytest.approx((ref[step][1], 0.99))
        assert opt.param_groups[1]["lr"] == pytest.approx(2 * ref[step][0])
        opt.step()
        if step < 9:
            sched.step()


def test_one_cycle_steps_past_total_steps_is_a_clear_error():
    sched = OneCycleLR(optimizer(momentum=0.9), max_lr=0.1, total_steps=3)
    sched.step()
    sched.step()
    sched.step()
    with pytest.raises(ValueError, match="Tried to step 4 times. The specified number of total steps is 3"):
        sched.step()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda o: OneCycleLR(o, max_lr=0.1), "either total_steps OR"),
        (lambda o: OneCycleLR(o, max_lr=0.1, epochs=3), "either total_steps OR"),
        (lambda o: OneCycleLR(o, max_lr=0.1, total_steps=0), "positive integer total_steps"),
        (lambda o: OneCycleLR(o, max_lr=0.1, epochs=2, steps_per_epoch=-1), "positive integer steps_per_epoch"),
        (lambda o: OneCycleLR(o, max_lr=0.1, total_steps=5, pct_start=1.5), "pct_start"),
        (lambda o: OneCycleLR(o, max_lr=0.1, total_steps=5, anneal_strategy="exp"), "anneal_strategy"),
        (lambda o: OneCycleLR(o, max_lr=[0.1, 0.2], total_steps=5), "one per parameter group"),
        (lambda o: CosineAnnealingWarmRestarts(o, T_0=0), "positive integer T_0"),
        (lambda o: CosineAnnealingWarmRestarts(o, T_0=2, T_mult=0), "T_mult"),
        (lambda o: PolynomialLR(o, total_iters=0), "total_iters"),
        (lambda o: MultiStepLR(o, milestones=[1.5]), "integers"),
        (lambda o: ReduceLROnPlateau(o, factor=1.0), "Factor should be < 1.0"),
        (lambda o: ReduceLROnPlateau(o, mode="up"), "mode 'up' is unknown"),
        (lambda o: ReduceLROnPlateau(o, threshold_mode="pct"), "threshold mode 'pct' is unknown"),
        (lambda o: ReduceLROnPlateau(o, min_lr=[0.0, 0.1]), "one per parameter group"),
    ],
)
def test_bad_arguments_are_clear_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make(optimizer(momentum=0.9))


def test_one_cycle_needs_momentum_or_betas_to_cycle():
    with pytest.raises(ValueError, match="support momentum or beta1.*cycle_momentum=False"):
        OneCycleLR(optimizer(cls=Adagrad), max_lr=0.1, total_steps=5)
    OneCycleLR(optimizer(cls=Adagrad), max_lr=0.1, total_steps=5, cycle_momentum=False)


# --------------------------------------------------------------------------- OneCycleLR drives replayed steps
def test_one_cycle_with_sgd_momentum_is_replayed_and_matches_the_reference(device):
    """The cycled momentum reaches the kernels as a step scalar: one recording, and the
    values of SGD with a per-step momentum and lr."""
    rng = np.random.default_rng(0)
    start = rng.standard_normal((3, 4)).astype(np.float32)
    grads = [rng.standard_normal((3, 4)).astype(np.float32) for _ in range(8)]
    p = sg.tensor(start, device=device, requires_grad=True)
    opt = SGD([p], lr=0.1, momentum=0.9, nesterov=True)
    sched = OneCycleLR(opt, max_lr=0.5, total_steps=8)
    ref = one_cycle_reference(8, 0.5)
    x, buf = start.astype(np.float64), None
    for step, g in enumerate(grads):
        p.grad = sg.tensor(g, device=device)
        opt.step()
        if step < 7:
            sched.step()
        lr, m = ref[step]
        buf = g.copy() if buf is None else m * buf + g
        x = x - lr * (g + m * buf)
        np.testing.assert_allclose(p.detach().numpy(), x, rtol=1e-5, atol=1e-6, err_msg=f"step {step}")
    assert (opt._replay.recorded, opt._replay.replayed) == (1, 7)


@pytest.mark.parametrize("cls", [Adam, NAdam], ids=["adam", "nadam"])
def test_one_cycle_with_adam_beta1_is_replayed_and_matches_the_reference(device, cls):
    rng = np.random.default_rng(1)
    start = rng.standard_normal((5,)).astype(np.float32)
    grads = [rng.standard_normal((5,)).astype(np.float32) for _ in range(6)]
    p = sg.tensor(start, device=device, requires_grad=True)
    opt = cls([p], lr=0.1)
    sched = OneCycleLR(opt, max_lr=0.05, total_steps=6)
    ref = one_cycle_reference(6, 0.05)
    x, m, v, mu_product = start.astype(np.float64), np.zeros(5), np.zeros(5), 1.0
    for t, g in enumerate(grads, start=1):
        p.grad = sg.tensor(g, device=device)
        opt.step()
        if t < 6:
            sched.step()
        lr, b1 = ref[t - 1]
        m = b1 * m + (1 - b1) * g
        v = 0.999 * v + 0.001 * g * g
        if cls is Adam:  # the bias correction uses the current beta1, as PyTorch's does
            x = x - lr / (1 - b1**t) * m / (np.sqrt(v) / math.sqrt(1 - 0.999**t) + 1e-8)
        else:
            mu = b1 * (1 - 0.5 * 0.96 ** (t * 4e-3))
            mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * 4e-3))
            mu_product *= mu
            d = np.sqrt(v / (1 - 0.999**t)) + 1e-8
            x = x - lr * (1 - mu) / (1 - mu_product) * g / d - lr * mu_next / (1 - mu_product * mu_next) * m / d
        np.testing.assert_allclose(p.detach().numpy(), x, rtol=1e-5, atol=1e-6, err_msg=f"step {t}")
    assert (opt._replay.recorded, opt._replay.replayed) == (1, 5)


def test_one_cycle_momentum_changes_compile_no_new_kernels(webgpu):
    from smolgrad.device import get_backend

    stats = get_backend("webgpu").stats
    p = sg.tensor(np.ones((4, 3), np.float32), device=webgpu, requires_grad=True)
    opt = RMSprop([p], lr=0.01, momentum=0.5)
    sched = OneCycleLR(opt, max_lr=0.1, total_steps=4)
    compiled = []
    for _ in range(4):
        p.grad = sg.ones(4, 3, device=webgpu)
        before = stats["kernels_compiled"]
        opt.step()
        compiled.append(stats["kernels_compiled"] - before)
        if len(compiled) < 4:
            sched.step()
    assert compiled[1:] == [0, 0, 0], f"kernels compiled per step: {compiled}"


# --------------------------------------------------------------------------- ReduceLROnPlateau
def plateau_reference(metrics, lr, mode="min", factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel",
                      cooldown=0, min_lr=0.0, eps=1e-8):
    """The lr after each step(metric), following PyTorch's ReduceLROnPlateau.step."""
    best = math.inf if mode == "min" else -math.inf
    bad = cool = 0
    out = []
    for x in metrics:
        if mode == "min":
            better = x < (best * (1 - threshold) if threshold_mode == "rel" else best - threshold)
        else:
            better = x > (best * (1 + threshold) if threshold_mode == "rel" else best + threshold)
        if better:
            best, bad = x, 0
        else:
            bad += 1
        if cool > 0:
            cool, bad = cool - 1, 0
        if bad > patience:
            new = max(lr * factor, min_lr)
            if lr - new > eps:
                lr = new
            cool, bad = cooldown, 0
        out.append(lr)
    return out


def test_reduce_on_plateau_by_hand():
    opt = optimizer((1.0,))
    sched = ReduceLROnPlateau(opt, patience=2, factor=0.5)
    got = []
    for metric in [5.0, 4.0, 4.0, 4.0, 4.0, 3.0, 3.5, 3.5, 3.5]:
        sched.step(metric)
        got.append(opt.param_groups[0]["lr"])
    # bad epochs 1, 2, 3 after the 4.0: the third (> patience 2) halves the lr; 3.0 improves
    assert got == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25]
    assert sched.get_last_lr() == [0.25]


@pytest.mark.parametrize(
    "options",
    [
        dict(patience=1),
        dict(mode="max", patience=2, factor=0.5),
        dict(threshold_mode="abs", threshold=0.05, patience=1, cooldown=2),
        dict(patience=0, min_lr=0.02, factor=0.3),
        dict(patience=0, eps=0.05, factor=0.5),  # 0.2 -> 0.1, then 0.1 -> 0.05 is within eps: skipped
    ],
    ids=["min", "max", "abs-cooldown", "min_lr", "eps"],
)
def test_reduce_on_plateau_matches_pytorchs_rules(options):
    metrics = np.random.default_rng(0).uniform(0, 1, 40).cumsum()[::-1] % 1.3  # noisy, with plateaus
    opt = optimizer((0.2,))
    sched = ReduceLROnPlateau(opt, **options)
    got = []
    for x in metrics:
        sched.step(sg.tensor(float(x)))  # a 0-d tensor works as well as a float
        got.append(opt.param_groups[0]["lr"])
    expected = plateau_reference(metrics, 0.2, **options)
    assert got == pytest.approx(expected, rel=1e-12)
    assert len(set(got)) > 1, "the metrics should trigger at least one reduction"


def test_reduce_on_plateau_min_lr_per_group():
    opt = optimizer((1.0, 1.0))
    sched = ReduceLROnPlateau(opt, patience=0, min_lr=[0.5, 0.01])
    for x in (1.0, 1.0, 1.0, 1.0):
        sched.step(x)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.5, 0.01])


def test_reduce_on_plateau_is_an_lr_scheduler():
    assert isinstance(ReduceLROnPlateau(optimizer()), LRScheduler)


# --------------------------------------------------------------------------- state dicts
@pytest.mark.parametrize(
    "make",
    [
        lambda o: ExponentialLR(o, gamma=0.9),
        lambda o: MultiStepLR(o, milestones=[2, 4, 4], gamma=0.5),
        lambda o: PolynomialLR(o, total_iters=6, power=2.0),
        lambda o: CosineAnnealingWarmRestarts(o, T_0=2, T_mult=2, eta_min=0.001),
        lambda o: OneCycleLR(o, max_lr=[0.5, 1.0], total_steps=10, three_phase=True),
    ],
    ids=["exponential", "multistep", "polynomial", "warm-restarts", "one-cycle"],
)
def test_state_dict_resumes_the_schedule(make):
    a = make(optimizer((0.1, 0.5), momentum=0.9))
    lrs_over(a, 3)
    state = a.state_dict()
    assert "optimizer" not in state
    b = make(optimizer((0.1, 0.5), momentum=0.9))
    b.optimizer.load_state_dict(a.optimizer.state_dict())
    b.load_state_dict(state)
    assert_lrs(lrs_over(b, 6), lrs_over(a, 6))
    assert [g.get("momentum") for g in a.optimizer.param_groups] == [g.get("momentum") for g in b.optimizer.param_groups]


def test_reduce_on_plateau_state_dict_resumes():
    metrics = [1.0, 0.9, 0.95, 0.95, 0.95, 0.8, 0.85, 0.85, 0.85, 0.85]
    a = ReduceLROnPlateau(optimizer((0.1,)), patience=1, cooldown=1)
    for x in metrics[:4]:
        a.step(x)
    state = a.state_dict()
    assert "optimizer" not in state and state["num_bad_epochs"] == a.num_bad_epochs
    b = ReduceLROnPlateau(optimizer((0.1,)))
    b.optimizer.load_state_dict(a.optimizer.state_dict())
    b.load_state_dict(state)
    for x in metrics[4:]:
        a.step(x)
        b.step(x)
        assert b.get_last_lr() == a.get_last_lr()
    assert (b.patience, b.cooldown) == (1, 1)
