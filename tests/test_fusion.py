"""The fusion pass: which work shares a kernel, counted in dispatches on both devices."""

import numpy as np
import pytest

import smolgrad as sg
from smolgrad.device import get_backend
from smolgrad.engine.schedule import MAX_DEPTH, schedule
from helpers import assert_close


@pytest.fixture(autouse=True)
def fused(monkeypatch):
    """These tests are about fusion, so it is on whatever the environment says."""
    monkeypatch.setenv("SMOLGRAD_FUSION", "1")


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def count(device, *tensors) -> dict:
    """Realise the tensors together and return the device's counters for it."""
    sg.reset_stats(device)
    sg.realize(*tensors)
    return sg.stats(device)


def chain(x, y):
    return ((x * y + 1).relu() * 0.5 - y).exp().clamp(max=10)


def chain_ref(x, y):
    return np.minimum(np.exp(np.maximum(x * y + 1, 0) * 0.5 - y), 10)


def test_elementwise_chain_is_one_dispatch(device):
    x, y = rand(1000), rand(1000, seed=1)
    out = chain(sg.tensor(x, device=device), sg.tensor(y, device=device))
    assert count(device, out)["dispatches"] == 1
    assert_close(out, chain_ref(x, y), rtol=1e-5)


def test_elementwise_chain_unfused_is_one_dispatch_per_op(device, monkeypatch):
    monkeypatch.setenv("SMOLGRAD_FUSION", "0")
    x, y = rand(1000), rand(1000, seed=1)
    out = chain(sg.tensor(x, device=device), sg.tensor(y, device=device))
    assert count(device, out)["dispatches"] == 8  # mul add max mul sub exp; clamp is gt + where
    assert_close(out, chain_ref(x, y), rtol=1e-5)


def test_saved_intermediates_are_extra_outputs_not_extra_dispatches(device):
    x = sg.tensor(rand(1000), device=device, requires_grad=True)
    y = sg.tensor(rand(1000, seed=1), device=device)
    out = chain(x, y)  # relu and exp save their outputs for backward
    assert count(device, out)["dispatches"] == 1
    out.sum().backward()
    assert x.grad.shape == (1000,)


def test_multiply_then_sum_is_one_kernel(device):
    x, y = rand(3000), rand(3000, seed=1)
    out = (sg.tensor(x, device=device) * sg.tensor(y, device=device)).sum()
    assert count(device, out)["dispatches"] == 1
    assert_close(out, (x * y).sum(), rtol=1e-4)


def test_large_reduction_is_one_kernel_in_two_passes_on_webgpu(webgpu):
    a, b = rand(1 << 20), rand(1 << 20, seed=1)
    out = ((sg.tensor(a, device=webgpu) - sg.tensor(b, device=webgpu)) ** 2).mean()
    stats = count(webgpu, out)
    assert stats["kernels"] == 1 and stats["dispatches"] == 2  # partial sums, then their sum + epilogue
    assert_close(out, ((a.astype(np.float64) - b) ** 2).mean(), rtol=1e-4)


@pytest.mark.parametrize(
    "build, ref",
    [
        (lambda a, b: ((a - b) ** 2).mean(), lambda a, b: ((a - b) ** 2).mean()),
        (lambda a, b: a.exp().sum(1), lambda a, b: np.exp(a).sum(1)),
        (lambda a, b: (a * b).sum(-1).abs().sqrt(), lambda a, b: np.sqrt(np.abs((a * b).sum(-1)))),
    ],
    ids=["squared-error-mean", "exp-sum", "dot-abs-sqrt"],
)
def test_prologue_and_epilogue_fuse_into_the_reduction(device, build, ref):
    a, b = rand(16, 70), rand(16, 70, seed=1)
    out = build(sg.tensor(a, device=device), sg.tensor(b, device=device))
    assert count(device, out)["dispatches"] == 1
    assert_close(out, ref(a, b), rtol=1e-4)


def test_linear_relu_forward_is_one_matmul_dispatch(device):
    x, w, b = rand(32, 20), rand(10, 20, seed=1), rand(10, seed=2)
    out = (sg.tensor(x, device=device) @ sg.tensor(w, device=device).T + sg.tensor(b, device=device)).relu()
    assert count(device, out)["dispatches"] == 1
    assert_close(out, np.maximum(x @ w.T + b, 0), rtol=1e-4, atol=1e-5)


def test_batched_matmul_epilogue_reads_broadcast_operands(device):
    a, w, bias = rand(3, 5, 4), rand(4, 6, seed=1), rand(6, seed=2)
    out = (sg.tensor(a, device=device) @ sg.tensor(w, device=device) + sg.tensor(bias, device=device)).tanh()
    assert count(device, out)["dispatches"] == 1
    assert_close(out, np.tanh(a @ w + bias), rtol=1e-4, atol=1e-5)


def test_softmax_is_three_kernels_without_row_fusion(device, monkeypatch):
    monkeypatch.setenv("SMOLGRAD_ROW_FUSION", "0")  # (with it: one row kernel, see test_rows.py)
    x = rand(8, 50)
    out = sg.tensor(x, device=device).softmax(1)
    assert count(device, out)["kernels"] == 3  # row max; exp-sum; exp-divide (exp recomputed)
    e = np.exp(x - x.max(1, keepdims=True))
    assert_close(out, e / e.sum(1, keepdims=True), rtol=1e-5)


def test_value_needed_by_many_kernels_is_stored_once(device):
    x = rand(6, 7)
    e = sg.tensor(x, device=device).exp()
    outs = [e.sum(0), e.sum(1), e.amax(0), e.amax(1)]
    assert count(device, *outs)["kernels"] == 5  # exp stored, then four reductions read it
    for o, r in zip(outs, [np.exp(x).sum(0), np.exp(x).sum(1), np.exp(x).max(0), np.exp(x).max(1)]):
        assert_close(o, r, rtol=1e-5)


def test_value_needed_by_two_kernels_is_recomputed(device):
    x = rand(6, 7)
    e = sg.tensor(x, device=device).exp()
    outs = [e.sum(0), e.sum(1)]
    assert count(device, *outs)["kernels"] == 2
    assert_close(outs[1], np.exp(x).sum(1), rtol=1e-5)


def test_views_between_ops_fuse_through(device):
    x = rand(4, 6)
    out = (sg.tensor(x, device=device) + 1).T.flip(0)[1:, ::2].unsqueeze(0) * 2
    assert count(device, out)["dispatches"] == 1
    assert_close(out, (x + 1).T[::-1][None, 1:, ::2] * 2)


def test_view_that_cannot_be_folded_stores_the_value_first(device):
    x = rand(2, 3)
    # y = x.T + 1 is computed in (3, 2) order from a transposed read; its flat view
    # (6,) cannot index that read with strides, so y is stored and then read back
    out = (sg.tensor(x, device=device).T + 1).reshape(6).flip(0) * 2
    assert count(device, out)["kernels"] == 2
    assert_close(out, (x.T + 1).reshape(6)[::-1] * 2)


def test_long_chains_are_cut_every_max_depth_ops(device):
    x = sg.tensor(rand(10), device=device)
    y = x
    for _ in range(3 * MAX_DEPTH):
        y = y * 1.001
    assert count(device, y)["kernels"] == 3
    assert_close(y, rand(10) * 1.001 ** (3 * MAX_DEPTH), rtol=1e-4)


def test_kernels_never_bind_more_buffers_than_the_limit():
    xs = [sg.tensor(rand(5, seed=i), device="numpy") for i in range(12)]
    total = xs[0]
    for x in xs[1:]:
        total = total + x * 2
    kernels = schedule([total.lazydata.base], max_buffers=4).kernels
    for k in kernels:
        assert len({s.slot for s in k.srcs}) + len(k.outs) <= 4
    assert len(kernels) > 1


def test_buffer_limit_gives_the_same_values(device, monkeypatch):
    monkeypatch.setattr(get_backend(device), "max_storage_buffers", 4)
    arrays = [rand(5, seed=i) for i in range(12)]
    total = sg.tensor(arrays[0], device=device)
    for a in arrays[1:]:
        total = total + sg.tensor(a, device=device).exp()
    assert_close(total, arrays[0] + sum(np.exp(a) for a in arrays[1:]), rtol=1e-5)


def test_optimizer_like_update_is_one_kernel_with_three_outputs(device):
    p, g = sg.tensor(rand(100), device=device), sg.tensor(rand(100, seed=1), device=device)
    m, v = sg.zeros(100, device=device).realize(), sg.zeros(100, device=device).realize()
    m2 = m * 0.9 + g * 0.1
    v2 = v * 0.999 + g * g * 0.001
    p2 = p - 0.01 * m2 / (v2.sqrt() + 1e-8)
    stats = count(device, p2, m2, v2)
    assert stats["dispatches"] == 1
    gn = rand(100, seed=1)
    assert_close(p2, rand(100) - 0.01 * (0.1 * gn) / (np.sqrt(0.001 * gn * gn) + 1e-8), rtol=1e-4)


def test_training_step_compiles_nothing_after_the_first(webgpu):
    rng = np.random.default_rng(0)
    w = sg.tensor(rng.standard_normal((8, 4)).astype(np.float32), device=webgpu, requires_grad=True)
    compiled = []
    for step in range(4):
        x = sg.tensor(rng.standard_normal((16, 8)).astype(np.float32), device=webgpu)
        loss = ((x @ w).relu() - 1).square().mean()
        loss.backward()
        with sg.no_grad():
            w.data = w - sg.tensor(0.1 / (step + 1), device=webgpu) * w.grad
        w.grad = None
        sg.realize(w, loss)
        compiled.append(sg.stats(webgpu)["kernels_compiled"])
    assert compiled[1] == compiled[2] == compiled[3]


def test_debug_prints_one_line_per_dispatch(device, monkeypatch, capsys):
    monkeypatch.setenv("SMOLGRAD_DEBUG", "1")
    x = sg.tensor(rand(10), device=device)
    ((x * 2 + 1).exp()).sum().realize()
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("[smolgrad")]
    assert len(lines) == 1
    assert "R_mul_add_exp_sum" in lines[0] and "ops=mul,add,exp,sum" in lines[0] and "global=1" in lines[0]


def test_debug_2_prints_readable_wgsl(webgpu, monkeypatch, capsys):
    monkeypatch.setenv("SMOLGRAD_DEBUG", "2")
    x = sg.tensor(rand(10), device=webgpu)
    (x * 2 + 1).exp().realize()
    err = capsys.readouterr().err
    assert "// smolgrad kernel: E_mul_add_exp" in err and "// fused ops: mul, add, exp" in err
    assert "let v1 = (v0 * 2.0f);" in err and "fn main(" in err


def test_stats_keys_and_reset(device):
    sg.reset_stats(device)
    assert sg.stats(device)["dispatches"] == 0
    kept = (sg.tensor(rand(4), device=device) + 1).realize()
    stats = sg.stats(device)
    assert {"dispatches", "kernels_compiled", "pipeline_cache_hits", "bytes_allocated", "peak_bytes"} <= set(stats)
    assert stats["dispatches"] == 1 and stats["peak_bytes"] >= stats["bytes_allocated"] > 0
    assert sg.stats()["dispatches"] >= 1  # summed over devices
    assert kept.shape == (4,)


def test_same_structure_reuses_the_schedule_with_new_nodes(device):
    from smolgrad.engine import schedule as scheduler

    scheduler._schedule_cache.clear()
    a, b = rand(6, 5), rand(6, 5, seed=1)
    x = sg.tensor(a, device=device)
    first = ((x * 2).exp().sum(1) + 1).realize()
    size = len(scheduler._schedule_cache)
    y = sg.tensor(b, device=device)
    second = ((y * 2).exp().sum(1) + 1).realize()
    assert len(scheduler._schedule_cache) == size  # a hit: nothing new cached
    assert_close(first, np.exp(a * 2).sum(1) + 1, rtol=1e-5)
    assert_close(second, np.exp(b * 2).sum(1) + 1, rtol=1e-5)
    third = ((y * 3).exp().sum(1) + 1).realize()  # another constant is another structure
    assert len(scheduler._schedule_cache) == size + 1
    assert_close(third, np.exp(b * 3).sum(1) + 1, rtol=1e-5)


def test_schedule_cache_tells_signed_zeros_apart():
    # numpy only: WGSL compilers may fold x * -0.0 to +0.0 (lavapipe does), so the
    # sign of a zero product is not portable on webgpu
    x = sg.tensor(np.ones(3, dtype=np.float32), device="numpy")
    assert (1 / (x * 0.0)).tolist() == [np.inf] * 3
    assert (1 / (x * -0.0)).tolist() == [-np.inf] * 3


def test_schedule_cache_reuses_nan_constants(device):
    from smolgrad.engine import schedule as scheduler

    scheduler._schedule_cache.clear()
    x = sg.tensor(np.ones(3, dtype=np.float32), device=device)
    assert np.isnan((x * np.nan).numpy()).all()
    size = len(scheduler._schedule_cache)
    assert np.isnan((x * np.nan).numpy()).all()
    assert len(scheduler._schedule_cache) == size
