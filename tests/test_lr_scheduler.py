"""Learning-rate schedules against PyTorch's closed forms."""

import math

import pytest

import smolgrad as sg
from smolgrad.optim import SGD
from smolgrad.optim.lr_scheduler import CosineAnnealingLR, LambdaLR, LinearLR, SequentialLR, StepLR

from helpers import lrs_over


def optimizer(lrs=(0.1,)):
    groups = [{"params": [sg.zeros(2, requires_grad=True, device="numpy")], "lr": lr} for lr in lrs]
    return SGD(groups, lr=lrs[0])


def assert_lrs(got, expected):
    assert len(got) == len(expected)
    for step, (g, e) in enumerate(zip(got, expected)):
        assert g == pytest.approx(e, rel=1e-12, abs=1e-15), f"step {step}: {g} != {e}"


def test_step_lr_decays_by_gamma_every_step_size():
    sched = StepLR(optimizer((0.1, 1.0)), step_size=3, gamma=0.5)
    expected = [[base * 0.5 ** (e // 3) for base in (0.1, 1.0)] for e in range(10)]
    assert_lrs(lrs_over(sched, 10), expected)


def test_cosine_annealing_follows_the_closed_form():
    sched = CosineAnnealingLR(optimizer((0.1, 0.4)), T_max=8, eta_min=0.01)
    expected = [[0.01 + (b - 0.01) * (1 + math.cos(math.pi * e / 8)) / 2 for b in (0.1, 0.4)] for e in range(9)]
    assert_lrs(lrs_over(sched, 9), expected)


def test_cosine_annealing_reaches_eta_min_at_t_max():
    sched = CosineAnnealingLR(optimizer(), T_max=5, eta_min=0.002)
    lrs_over(sched, 5)
    assert sched.get_last_lr()[0] == pytest.approx(0.002, rel=1e-12)


def test_lambda_lr_scales_each_group_by_its_function():
    sched = LambdaLR(optimizer((0.1, 0.2)), lr_lambda=[lambda e: 0.9**e, lambda e: 1 / (e + 1)])
    expected = [[0.1 * 0.9**e, 0.2 / (e + 1)] for e in range(6)]
    assert_lrs(lrs_over(sched, 6), expected)


def test_linear_lr_warms_up_then_stays():
    sched = LinearLR(optimizer(), start_factor=0.25, end_factor=1.0, total_iters=4)
    expected = [[0.1 * (0.25 + 0.75 * min(e, 4) / 4)] for e in range(7)]
    assert_lrs(lrs_over(sched, 7), expected)


def test_sequential_lr_runs_warmup_then_cosine():
    opt = optimizer((0.2,))
    warm = LinearLR(opt, start_factor=0.1, total_iters=3)
    cos = CosineAnnealingLR(opt, T_max=5, eta_min=0.0)
    sched = SequentialLR(opt, [warm, cos], milestones=[3])
    expected = [[0.2 * (0.1 + 0.9 * e / 3)] for e in range(3)]
    expected += [[0.2 * (1 + math.cos(math.pi * e / 5)) / 2] for e in range(6)]
    assert_lrs(lrs_over(sched, 9), expected)


def test_get_last_lr_is_the_lr_the_optimizer_uses():
    opt = optimizer((0.1, 0.3))
    sched = StepLR(opt, step_size=1, gamma=0.5)
    lrs_over(sched, 2)
    assert sched.get_last_lr() == [g["lr"] for g in opt.param_groups] == pytest.approx([0.025, 0.075])


def test_scheduler_records_initial_lr_in_the_groups():
    opt = optimizer((0.1, 0.3))
    StepLR(opt, step_size=1, gamma=0.5)
    assert [g["initial_lr"] for g in opt.param_groups] == [0.1, 0.3]


@pytest.mark.parametrize(
    "make",
    [
        lambda o: StepLR(o, step_size=2, gamma=0.3),
        lambda o: CosineAnnealingLR(o, T_max=6, eta_min=0.001),
        lambda o: LinearLR(o, start_factor=0.5, total_iters=4),
        lambda o: LambdaLR(o, lambda e: 1.0 / (1 + e)),
        lambda o: SequentialLR(o, [LinearLR(o, start_factor=0.2, total_iters=2), CosineAnnealingLR(o, T_max=4)], [2]),
    ],
    ids=["step", "cosine", "linear", "lambda", "sequential"],
)
def test_state_dict_resumes_the_schedule(make):
    a = make(optimizer((0.1, 0.5)))
    lrs_over(a, 3)
    state = a.state_dict()
    assert "optimizer" not in state
    b = make(optimizer((0.1, 0.5)))  # the usual resume order: build both, then load both
    b.optimizer.load_state_dict(a.optimizer.state_dict())
    b.load_state_dict(state)
    assert_lrs(lrs_over(b, 4), lrs_over(a, 4))


def test_resuming_without_initial_lr_is_a_clear_error():
    with pytest.raises(KeyError, match="initial_lr"):
        StepLR(optimizer(), step_size=2, last_epoch=4)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda o: StepLR(o, step_size=0), "step_size"),
        (lambda o: CosineAnnealingLR(o, T_max=0), "T_max"),
        (lambda o: LinearLR(o, start_factor=0.0), "start_factor"),
        (lambda o: LinearLR(o, end_factor=1.5), "end_factor"),
        (lambda o: LambdaLR(o, [lambda e: 1.0, lambda e: 1.0]), "one per parameter group"),
        (lambda o: SequentialLR(o, [StepLR(o, 1), StepLR(o, 1)], milestones=[]), "one milestone fewer"),
    ],
)
def test_invalid_schedule_arguments_are_rejected(make, message):
    with pytest.raises(ValueError, match=message):
        make(optimizer())


def test_sequential_lr_rejects_a_scheduler_of_another_optimizer():
    opt, other = optimizer(), optimizer()
    with pytest.raises(ValueError, match="different optimizer"):
        SequentialLR(opt, [StepLR(opt, 1), StepLR(other, 1)], milestones=[2])


def test_scheduler_needs_an_optimizer():
    with pytest.raises(TypeError, match="not an Optimizer"):
        StepLR([sg.zeros(2)], step_size=1)
