"""smolgrad.compile: a captured step gives eager's results, replays without scheduling or
compiling, records again on a guard miss, and refuses what it cannot replay."""

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_close

import smolgrad as sg
from smolgrad import nn, optim
from smolgrad.engine.capture import plan_memory
from smolgrad.nn import functional as F

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def check_equal(got, want, device):
    """Bit-identical on numpy (the same kernels over the same values); float32-close on webgpu."""
    got, want = np.asarray(got), np.asarray(want)
    if device == "numpy":
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def mlp(device):
    sg.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 4)).to(device)
    opt = optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    sched = optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))
    return model, opt, sched


def cnn(device):
    sg.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 3)
    ).to(device)
    opt = optim.Adam(model.parameters(), lr=1e-2)
    return model, opt, None


def batches(shape, classes, n, device, seed=0):
    rng = np.random.default_rng(seed)
    return [
        (sg.tensor(rng.standard_normal(shape).astype(np.float32), device=device),
         sg.tensor(rng.integers(0, classes, shape[0]), device=device))
        for _ in range(n)
    ]


def train(make, data, device, compiled: bool, clip: bool = False):
    model, opt, sched = make(device)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        if clip:
            nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        opt.step()
        return loss

    if compiled:
        step = sg.compile(step)
    losses = []
    for x, y in data:
        losses.append(step(x, y))
        if sched is not None:
            sched.step()
    values = [t.detach().numpy() for t in [*model.parameters(), *model.buffers()]]
    return [float(l.item()) for l in losses], values, step


@pytest.mark.parametrize("make, shape, classes, clip", [(mlp, (8, 12), 4, True), (cnn, (6, 1, 8, 8), 3, False)],
                         ids=["mlp-adamw-dropout-schedule-clip", "cnn-batchnorm-adam"])
def test_captured_training_equals_eager(device, make, shape, classes, clip):
    data = batches(shape, classes, 7, device)
    eager_losses, eager_values, _ = train(make, data, device, False, clip)
    losses, values, step = train(make, data, device, True, clip)
    assert step.replays >= 4 and step.eager_reason is None  # it really replayed
    check_equal(losses, eager_losses, device)
    for got, want in zip(values, eager_values):  # parameters and BatchNorm's running statistics
        check_equal(got, want, device)


def test_captured_gpt_equals_eager(device):
    sys.path.insert(0, str(EXAMPLES))
    import gpt

    cfg = gpt.CONFIGS["tiny"]
    rng = np.random.default_rng(0)
    data = [rng.integers(0, cfg.vocab_size, (2, cfg.context + 1)) for _ in range(5)]
    results = []
    for compiled in (False, True):
        sg.manual_seed(0)
        model = gpt.GPT(cfg).to(device)
        opt = optim.AdamW(gpt.param_groups(model, 0.1), lr=3e-3)

        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x).reshape(-1, cfg.vocab_size), y)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            return loss

        run = sg.compile(step) if compiled else step
        losses = [run(sg.tensor(d[:, :-1], device=device), sg.tensor(d[:, 1:].reshape(-1), device=device)).item()
                  for d in data]
        if compiled:
            assert run.replays == 2
        results.append((losses, [p.detach().numpy() for p in model.parameters()]))
    check_equal(results[1][0], results[0][0], device)
    for got, want in zip(results[1][1], results[0][1]):
        check_equal(got, want, device)


def simple_step(device):
    sg.manual_seed(0)
    w = sg.randn(5, 3, device=device, requires_grad=True)
    opt = optim.SGD([w], lr=0.1, momentum=0.9)

    def step(x):
        opt.zero_grad()
        loss = (x @ w).square().mean()
        loss.backward()
        opt.step()
        return loss

    return w, step


def test_replay_neither_schedules_nor_compiles_and_submits_once(device, monkeypatch):
    import smolgrad.engine.realize as realize_module
    import smolgrad.engine.schedule as schedule_module

    w, step = simple_step(device)
    step = sg.compile(step)
    x = sg.randn(4, 5, device=device)
    for _ in range(4):  # 1: makes the momentum buffer; 2 and 3: two recordings agree; 4: a replay
        step(x)
    assert step.replays == 1
    for module in (schedule_module, realize_module):
        monkeypatch.setattr(module, "schedule", lambda *a, **k: pytest.fail("a replay must not schedule"))
    sg.reset_stats()
    loss = step(x)
    stats = sg.stats(device)
    assert stats["kernels_compiled"] == 0 and stats["kernels"] > 0
    if device == "webgpu":
        assert stats["submits"] == 1
    assert loss.lazydata.is_realized() and not loss.requires_grad and loss.grad_fn is None


def test_returned_tensors_stay_valid_after_later_calls(device):
    w, step = simple_step(device)
    step = sg.compile(step)
    x = sg.randn(4, 5, device=device)
    losses = [step(x) for _ in range(6)]
    values = [l.item() for l in losses]
    w2, eager = simple_step(device)
    check_equal(values, [eager(x).item() for _ in range(6)], device)
    assert len(set(values)) == 6  # the loss falls: each returned tensor kept its own value


def test_a_parameter_value_read_lazily_steps_later_is_not_overwritten(device):
    """A lazy computation reading a parameter (an EMA of the weights, a snapshot) that
    runs several replays later reads the value it was built from: on webgpu the new
    values alternate between two buffers, and a buffer whose old value is still held is
    not written again."""
    sg.manual_seed(0)
    model = nn.Linear(4, 3).to(device)
    opt = optim.SGD(model.parameters(), lr=0.1)

    @sg.compile
    def step(x, y):
        loss = ((model(x) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    rng = np.random.default_rng(0)
    lazy, values = [], []
    for _ in range(8):
        lazy.append(model.weight.detach() * 1)  # not computed until .numpy() below
        values.append(model.weight.detach().numpy().copy())
        x, y = (sg.tensor(rng.standard_normal(s).astype(np.float32), device=device) for s in ((5, 4), (5, 3)))
        step(x, y).item()
    for got, want in zip(lazy, values):
        np.testing.assert_array_equal(got.numpy(), want)


def test_captured_updates_write_parameters_and_state_in_place_on_webgpu(webgpu):
    """On webgpu a replay writes each parameter's and optimizer state's new value into
    its old value's buffer (one copy of the state, as a PyTorch optimizer's in-place
    update), and the parameters match an eager run's."""
    def train(compiled):
        sg.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2)).to(webgpu)
        opt = optim.Adam(model.parameters(), lr=1e-2)

        def step(x, y):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss

        step = sg.compile(step) if compiled else step
        rng = np.random.default_rng(0)
        buffers = []
        for _ in range(6):
            step(sg.tensor(rng.standard_normal((4, 6)).astype(np.float32), device=webgpu),
                 sg.tensor(rng.integers(0, 2, 4), device=webgpu)).item()
            buffers.append([p.lazydata.base.realized for p in model.parameters()])
        return [p.detach().numpy() for p in model.parameters()], buffers

    eager, _ = train(False)
    captured, buffers = train(True)
    for got, want in zip(captured, eager):
        check_equal(got, want, "webgpu")
    assert all(a is b for a, b in zip(buffers[-1], buffers[-2])) and all(a is b for a, b in zip(buffers[-2], buffers[-3]))


def test_a_view_of_a_parameter_keeps_its_value_as_eagerly(device):
    """A live view of a parameter (not a lazy computation: a tensor sharing its storage)
    keeps the value it had when `p.data` was replaced, as eagerly; the captured update
    then does not write into that buffer."""
    def run(compiled):
        w, fn = simple_step(device)
        fn = sg.compile(fn) if compiled else fn
        x = sg.tensor(np.random.default_rng(1).standard_normal((4, 5)).astype(np.float32), device=device)
        rows = []
        for _ in range(5):
            rows.append(w[0])
            fn(x).item()
        return [r.detach().numpy() for r in rows], w.detach().numpy()

    (eager_rows, eager_w), (rows, w) = run(False), run(True)
    check_equal(w, eager_w, device)
    for got, want in zip(rows, eager_rows):
        check_equal(got, want, device)


def test_a_parameter_shares_storage_after_replays_as_after_eager_steps(device):
    """After replayed steps a parameter is bound to its new value as `p.data = new` binds
    it eagerly: its .data and its views share its storage (an in-place change through
    them shows in it), views taken before keep their old values, and training goes on."""
    def run(compiled):
        w, fn = simple_step(device)
        fn = sg.compile(fn) if compiled else fn
        x = sg.tensor(np.random.default_rng(2).standard_normal((4, 5)).astype(np.float32), device=device)
        losses = [fn(x).item() for _ in range(4)]
        before = w.detach()[1]
        held = before.numpy().copy()
        with sg.no_grad():
            w.data[0].mul_(0.0)  # through .data: w's storage
            w.detach()[2].add_(1.0)  # through a view
        values = [w.detach().numpy().copy(), before.numpy().copy()]
        losses += [fn(x).item() for _ in range(3)]
        return losses, values, w.detach().numpy(), held

    (eager_losses, eager_values, eager_w, held), (losses, values, w, _) = run(False), run(True)
    assert np.all(values[0][0] == 0) and np.all(eager_values[0][0] == 0)
    check_equal(values[1], held, device)  # (the view of row 1 saw only the row-2 change, not row 1)
    check_equal(losses, eager_losses, device)
    for got, want in zip(values, eager_values):
        check_equal(got, want, device)
    check_equal(w, eager_w, device)


def test_a_guard_miss_records_again(device):
    w, fn = simple_step(device)
    step = sg.compile(fn)
    w_ref, ref = simple_step(device)
    # rows 4: the momentum buffer is made, then two recordings agree, then a replay; rows 6:
    # a guard miss, recorded twice, then replayed; rows 4 again: the old recording is kept
    for rows in (4, 4, 4, 4, 6, 6, 6, 4):
        x = sg.tensor(np.arange(rows * 5, dtype=np.float32).reshape(rows, 5) / 10, device=device)
        check_equal(step(x).item(), ref(x).item(), device)
    assert step.recordings == 5 and step.replays == 3
    check_equal(w.detach().numpy(), w_ref.detach().numpy(), device)


def test_train_and_eval_mode_are_guards(device):
    sg.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5)).to(device)

    @sg.compile
    def forward(x):
        with sg.no_grad():
            return model(x)

    x = sg.tensor(np.ones((3, 4), np.float32), device=device)
    for _ in range(3):
        forward(x)
    model.eval()
    out = forward(x)  # a guard miss: eval mode records again, and has no dropout
    with sg.no_grad():
        check_equal(out.numpy(), model(x).numpy(), device)
    assert forward.recordings == 3


def test_a_mode_set_inside_the_step_is_set_by_replays_too(device):
    """A step that calls model.train() itself leaves the model in train mode; so does each
    replay (it runs none of the step's Python), so an eager forward after it matches."""
    def run(compiled):
        sg.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 8), nn.Dropout(0.5), nn.Linear(8, 3)).to(device)
        opt = optim.SGD(model.parameters(), lr=0.1)

        def step(x, y):
            model.train()
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss

        fn = sg.compile(step) if compiled else step
        out = []
        for x, y in batches((8, 6), 3, 8, device):
            out.append(fn(x, y).item())
            out.append(model.training)
            with sg.no_grad():
                out.append(model(x).numpy())  # dropout on in train mode
            model.eval()
        return out, fn

    (eager, _), (captured, fn) = run(False), run(True)
    assert fn.replays > 0
    for got, want in zip(captured, eager):
        check_equal(got, want, device)


def test_a_hook_added_or_removed_after_replays_start_records_again(device):
    """Gradient hooks on parameters are a guard: a hook registered (or removed) between
    calls takes effect at the next call, as eagerly."""
    def run(compiled):
        w, fn = simple_step(device)
        fn = sg.compile(fn) if compiled else fn
        x = sg.tensor(np.random.default_rng(3).standard_normal((4, 5)).astype(np.float32), device=device)
        losses, handle = [], None
        for i in range(10):
            if i == 5:
                handle = w.register_hook(lambda g: g * 0)  # freezes w from now on
            if i == 8:
                handle.remove()
            losses.append(fn(x).item())
        return losses, w.detach().numpy(), fn

    (eager_losses, eager_w, _), (losses, w, fn) = run(False), run(True)
    assert fn.replays > 0
    check_equal(losses, eager_losses, device)
    check_equal(w, eager_w, device)


def test_a_host_read_inside_the_step_runs_eagerly_with_a_warning(device):
    w, fn = simple_step(device)

    def step(x):
        return fn(x).item()  # a host read: cannot be replayed

    compiled = sg.compile(step)
    w_ref, ref = simple_step(device)
    x = sg.randn(4, 5, device=device)
    with pytest.warns(RuntimeWarning, match="reads a tensor on the host"):
        compiled(x)
    ref(x)
    for _ in range(3):  # eager from now on, and still right
        check_equal(compiled(x), ref(x).item(), device)
    assert compiled.replays == 0 and "host" in compiled.eager_reason


def optimizer_run(device, compiled, sched_inside=False, change=None, steps=8):
    """Losses and parameters of `steps` steps of a small MLP with AdamW and a StepLR
    schedule (stepped inside the step function with sched_inside, else after each call);
    change(opt, i) runs before call i."""
    sg.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).to(device)
    opt = optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    sched = optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        if sched_inside:
            sched.step()
        return loss

    fn = sg.compile(step) if compiled else step
    losses = []
    for i, (x, y) in enumerate(batches((8, 6), 3, steps, device)):
        if change is not None:
            change(opt, i)
        losses.append(fn(x, y).item())
        if not sched_inside:
            sched.step()
    return losses, [p.detach().numpy() for p in model.parameters()], fn


def test_a_scheduler_stepped_inside_the_step_runs_eagerly_with_a_warning(device):
    """A replay runs none of the step's Python: a scheduler stepped inside it would never
    change the lr again. The step runs eagerly instead, with a warning saying why."""
    eager_losses, eager_params, _ = optimizer_run(device, False, sched_inside=True)
    with pytest.warns(RuntimeWarning, match="scheduler"):
        losses, params, fn = optimizer_run(device, True, sched_inside=True)
    assert fn.replays == 0 and "scheduler" in fn.eager_reason
    check_equal(losses, eager_losses, device)
    for got, want in zip(params, eager_params):
        check_equal(got, want, device)


def test_a_changed_optimizer_option_records_again(device):
    """An option the update may bake into its kernels (weight decay here, which also adds
    a step scalar) is a guard: changing it after replays have started records again."""
    def change(opt, i):
        if i == 6:
            opt.param_groups[0]["weight_decay"] = 0.5

    eager_losses, eager_params, _ = optimizer_run(device, False, change=change, steps=10)
    losses, params, fn = optimizer_run(device, True, change=change, steps=10)
    assert fn.replays > 0 and fn.recordings > 2 and fn.eager_reason is None
    check_equal(losses, eager_losses, device)
    for got, want in zip(params, eager_params):
        check_equal(got, want, device)


def test_a_baked_python_value_that_changes_is_never_replayed(device):
    scale = {"value": 1.0}

    def step(x):
        return x * scale["value"]  # a Python float baked into the kernel, changing every call

    compiled = sg.compile(step, max_recordings=3)
    x = sg.ones(3, device=device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(6):
            scale["value"] = float(i)
            check_equal(compiled(x).numpy(), np.full(3, float(i), np.float32), device)
    assert compiled.replays == 0
    assert any("max_recordings" in str(w.message) for w in caught)


SCALE = 2.0


def test_a_python_number_changed_after_replays_start_records_again(device):
    """A global (or closure, or attribute) number baked into a kernel is a guard: changing it
    once the step replays gives the new value, never the recorded one."""
    global SCALE

    @sg.compile
    def scaled(x):
        return x * SCALE

    x = sg.tensor(np.arange(3, dtype=np.float32), device=device)
    try:
        for _ in range(4):
            assert_close(scaled(x), np.arange(3) * 2.0)
        assert scaled.replays >= 1
        SCALE = 5.0
        for _ in range(3):
            assert_close(scaled(x), np.arange(3) * 5.0)
    finally:
        SCALE = 2.0


def test_decorator_forms_and_methods(device):
    class Trainer:
        def __init__(self):
            self.w = sg.ones(3, device=device)

        @sg.compile(max_recordings=4)
        def scaled(self, x):
            return x * self.w * 2

    t = Trainer()
    x = sg.tensor([1.0, 2.0, 3.0], device=device)
    for _ in range(4):
        assert_close(t.scaled(x), [2.0, 4.0, 6.0])
    t.w = sg.full((3,), 2.0, device=device)  # a new tensor in the object: a guard miss
    assert_close(t.scaled(x), [4.0, 8.0, 12.0])
    with pytest.raises(TypeError, match="expects a function"):
        sg.compile(3)
    with pytest.raises(ValueError, match="max_recordings"):
        sg.compile(lambda: None, max_recordings=1)


def test_random_draws_differ_between_replays_like_eager(device):
    @sg.compile
    def noisy(x):
        return F.dropout(x, 0.5)

    x = sg.ones(64, device=device)
    sg.manual_seed(3)
    got = [noisy(x).numpy() for _ in range(5)]
    sg.manual_seed(3)
    want = [F.dropout(x, 0.5).numpy() for _ in range(5)]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    assert not np.array_equal(got[3], got[4])


def test_the_static_plan_never_shares_a_buffer_between_live_values(device):
    """Every pair of slots given one arena buffer has disjoint lifetimes [written, last read]."""
    w, fn = simple_step(device)
    sys.path.insert(0, str(EXAMPLES))
    import gpt

    cfg = gpt.CONFIGS["tiny"]
    sg.manual_seed(0)
    model = gpt.GPT(cfg).to(device)
    opt = optim.AdamW(model.parameters(), lr=1e-3)

    @sg.compile
    def step(idx):
        opt.zero_grad()
        loss = F.cross_entropy(model(idx).reshape(-1, cfg.vocab_size), idx.reshape(-1))
        loss.backward()
        opt.step()
        return loss

    idx = sg.tensor(np.arange(2 * cfg.context).reshape(2, cfg.context) % cfg.vocab_size, device=device)
    for _ in range(3):
        step(idx)
    (program_step,) = step._steps.values()
    kernels = program_step.program.kernels
    plan, arena = plan_memory(kernels, program_step.program.slots, set(program_step.program.external))
    assert len(arena) < len(plan)  # buffers are reused
    life = {}
    for i, k in enumerate(kernels):
        for o in k.outs:
            life.setdefault(o.slot, [i, i])
        for s in k.srcs:
            if s.slot in life:
                life[s.slot][1] = i
    by_buffer = {}
    for slot, b in plan.items():
        by_buffer.setdefault(b, []).append(life[slot])
    for spans in by_buffer.values():
        spans.sort()
        for (_, end), (start, _) in zip(spans, spans[1:]):
            assert end < start, spans
        assert all(arena[b] >= 4 for b in by_buffer)
