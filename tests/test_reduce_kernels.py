"""The cooperative reduce kernels on webgpu (wgsl.reduce_plan, shaders/reduce.wgsl): every
layout the planner picks (one thread per row, several rows per workgroup, a workgroup per
row, column order, two passes), with subgroup shuffles and with the workgroup-memory
tree, against NumPy at odd sizes; the row ops built on them (softmax, log-softmax,
layer norm, cross-entropy, logsumexp, argmax) forward and backward; limits."""

from __future__ import annotations

import re

import numpy as np
import pytest
from helpers import assert_close, gradcheck, noncontiguous_tensor, rand

import smolgrad as sg
import smolgrad.nn.functional as F
from smolgrad.backend import wgsl
from smolgrad.backend.wgsl import ReducePlan, reduce_plan
from smolgrad.device import get_backend


@pytest.fixture(params=["subgroups", "workgroup"])
def path(request, webgpu, monkeypatch):
    """The webgpu backend with lanes combined by subgroup shuffles or by a workgroup tree."""
    backend = get_backend("webgpu")
    if request.param == "subgroups" and "subgroup" not in backend.device.features:
        pytest.skip("this adapter has no subgroup feature")
    monkeypatch.setattr(backend, "subgroups", request.param == "subgroups")
    return backend


@pytest.fixture(params=[1, 4, None], ids=["work1", "work4", "default"])
def backend(request, path, monkeypatch):
    """`path`, with 1 or 4 values per lane (many lanes per row: trees, and two passes at
    small sizes) or the adapter's default."""
    if request.param is not None:
        monkeypatch.setattr(path, "reduce_work", request.param)
    return path


def reference(op: str, a: np.ndarray, axes) -> np.ndarray:
    a64 = a.astype(np.float64)
    return {"sum": a64.sum, "amax": a64.max, "amin": a64.min}[op](axis=axes)


def reduce_on(t: sg.Tensor, op: str, axes) -> sg.Tensor:
    return {"sum": t.sum, "amax": t.amax, "amin": t.amin}[op](axes)


CASES = [
    ((1, 1), (1,)),  # a row of one
    ((5, 1), (1,)),  # rows of one
    ((1, 300), (1,)),  # a row longer than a workgroup
    ((37, 70), (1,)),
    ((37, 70), (0,)),  # columns
    ((300, 5), (1,)),  # many short rows
    ((1000, 3), (0,)),  # few long columns
    ((3, 5001), (1,)),  # few long rows: two passes with few values per lane
    ((6, 5, 40, 3), (0, 2)),  # several axes, kept dims between them
    ((9001,), (0,)),  # a full reduction
]


@pytest.mark.parametrize("shape, axes", CASES, ids=[f"{s}-{a}" for s, a in CASES])
def test_reductions_match_numpy(backend, shape, axes):
    x = rand(*shape, seed=len(shape))
    t = sg.tensor(x, device="webgpu")
    for op in ("sum", "amax", "amin"):
        assert_close(reduce_on(t, op, axes), reference(op, x, axes), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "view, ref",
    [
        (lambda t: t.T, lambda a: a.T),  # the reduced dim 1 is adjacent in memory
        (lambda t: t.flip(1), lambda a: a[:, ::-1]),
        (lambda t: t[1:, ::3], lambda a: a[1:, ::3]),  # an offset and a stride
        (lambda t: t.unsqueeze(1).expand(40, 6, 50), lambda a: np.broadcast_to(a[:, None], (40, 6, 50))),
    ],
    ids=["transposed", "flipped", "strided", "expanded"],
)
@pytest.mark.parametrize("dim", [0, -1])
def test_reductions_of_views(backend, view, ref, dim):
    x = rand(40, 50, seed=3)
    t = view(sg.tensor(x, device="webgpu"))
    assert_close(t.sum(dim), ref(x).astype(np.float64).sum(dim), rtol=1e-4, atol=1e-4)
    assert_close(t.amax(dim), ref(x).max(dim))


def test_integer_and_bool_reductions(backend):
    i = np.random.default_rng(0).integers(-100, 100, (33, 300)).astype(np.int32)
    t = sg.tensor(i, dtype=sg.int32, device="webgpu")
    assert_close(t.sum(1), i.sum(1))
    assert_close(t.amax(0), i.max(0))
    assert_close(t.amin(1), i.min(1))
    b = sg.tensor(i > 90, device="webgpu")
    assert_close(b.any(1), (i > 90).any(1))
    assert_close(b.all(0), (i > 90).all(0))


def test_nan_propagates_through_max_and_min(backend):
    x = rand(7, 600, seed=4)
    x[2, 399] = np.nan
    t = sg.tensor(x, device="webgpu")
    assert_close(t.amax(1), x.max(1))
    assert_close(t.amin(1), x.min(1))
    assert_close(t.amax(), np.float32(np.nan))


@pytest.mark.parametrize("shape", [(1, 1), (37, 300), (300, 5), (1, 1000)])
def test_argmax_and_argmin(backend, shape):
    x = np.random.default_rng(5).permutation(np.prod(shape)).reshape(shape).astype(np.float32)
    t = sg.tensor(x, device="webgpu")
    for dim in (0, 1):
        assert_close(t.argmax(dim), x.argmax(dim))
        assert_close(t.argmin(dim), x.argmin(dim))
    assert_close(t.argmax(), x.argmax())
    x[0, -1] = np.nan  # nan counts as the largest and the smallest, like torch
    assert sg.tensor(x, device="webgpu").argmax(1).numpy()[0] == shape[1] - 1


ROW_OPS = {  # (x, weight, bias, target) -> a tensor
    "softmax": lambda x, w, b, tgt: x.softmax(-1),
    "log_softmax": lambda x, w, b, tgt: x.log_softmax(-1),
    "softmax_dim0": lambda x, w, b, tgt: x.softmax(0),
    "logsumexp": lambda x, w, b, tgt: x.logsumexp(-1),
    "layer_norm": lambda x, w, b, tgt: F.layer_norm(x, x.shape[-1:], w, b),
    "cross_entropy": lambda x, w, b, tgt: F.cross_entropy(x, tgt),
}


@pytest.mark.parametrize("name", sorted(ROW_OPS))
@pytest.mark.parametrize("shape", [(1, 1), (7, 1), (3, 300), (300, 7), (37, 70)])
def test_row_ops_forward_and_backward_match_numpy(backend, name, shape):
    """webgpu against the numpy device, values and gradients (a weighted sum's)."""
    fn = ROW_OPS[name]
    rng = np.random.default_rng(6)
    x = (rng.standard_normal(shape) * 3).astype(np.float32)
    w = rng.uniform(0.5, 1.5, shape[-1:]).astype(np.float32)
    b = rng.standard_normal(shape[-1:]).astype(np.float32)
    target = rng.integers(0, shape[-1], shape[0])
    results = {}
    for device in ("numpy", "webgpu"):
        xt, wt, bt = (sg.tensor(a, device=device, requires_grad=True) for a in (x, w, b))
        out = fn(xt, wt, bt, sg.tensor(target, device=device))
        probe = np.random.default_rng(7).standard_normal(out.shape).astype(np.float32)
        (out * sg.tensor(probe, device=device)).sum().backward()
        grads = [t.grad.numpy() if t.grad is not None else None for t in (xt, wt, bt)]
        results[device] = (out.detach().numpy(), grads)
    (want, want_grads), (got, got_grads) = results["numpy"], results["webgpu"]
    assert_close(got, want, rtol=1e-4, atol=1e-5)
    for g, h in zip(got_grads, want_grads):
        assert (g is None) == (h is None)
        if g is not None:
            assert_close(g, h, rtol=1e-3, atol=1e-4)


def test_softmax_of_large_logits_stays_finite(backend):
    x = rand(5, 700, seed=8) * 1e4
    t = sg.tensor(x, device="webgpu", requires_grad=True)
    out = t.log_softmax(-1)
    out.sum().backward()
    assert np.isfinite(out.detach().numpy()).all() and np.isfinite(t.grad.numpy()).all()


def test_rows_past_the_workgroup_limit_per_dimension(path, monkeypatch):
    """Row indices past 65535; then 65600 rows of a workgroup each: a 2-D grid."""
    x = rand(70000, 3, seed=9)
    t = sg.tensor(x, device="webgpu")
    assert_close(t.sum(1), x.astype(np.float64).sum(1), rtol=1e-5, atol=1e-5)
    e = np.exp(x - x.max(1, keepdims=True))
    assert_close(t.softmax(1), e / e.sum(1, keepdims=True), rtol=1e-5, atol=1e-6)
    monkeypatch.setattr(path, "reduce_work", 1)  # rows of 129: 256 lanes, one row per workgroup
    grids = []
    grid = path._grid
    monkeypatch.setattr(path, "_grid", lambda groups: grids.append(grid(groups)) or grids[-1])
    many = rand(65600, 129, seed=16)
    assert_close(sg.tensor(many, device="webgpu").amax(1), many.max(1))
    assert grids[-1][1] > 1 and grids[-1][0] * grids[-1][1] >= 65600


def test_grids_fold_into_two_dimensions(path, monkeypatch):
    """A device limit of 5 workgroups per dimension: the reduce dispatches fold into 2-D."""
    monkeypatch.setattr(path, "max_groups", 5)
    monkeypatch.setattr(path, "reduce_work", 1)
    grids = []
    grid = path._grid
    monkeypatch.setattr(path, "_grid", lambda groups: grids.append(grid(groups)) or grids[-1])
    x = rand(60, 40, seed=10)
    t = sg.tensor(x, device="webgpu")
    assert_close(t.sum(1), x.astype(np.float64).sum(1), rtol=1e-5, atol=1e-5)  # 15 groups of 4 rows
    big = rand(5003, seed=11)  # 20 chunks of 256
    assert_close(sg.tensor(big, device="webgpu").sum(), big.astype(np.float64).sum(), rtol=1e-4, atol=1e-3)
    assert sum(1 for g in grids if g[1] > 1) >= 2


def test_long_reduction_of_few_outputs_takes_two_passes(path, monkeypatch):
    monkeypatch.setenv("SMOLGRAD_FUSION", "1")  # (counts the dispatches of one fused kernel)
    monkeypatch.setattr(path, "reduce_work", 1)
    x = rand(2, 5003, seed=12)
    t = sg.tensor(x, device="webgpu")
    sg.realize(t)
    before = dict(path.stats)
    out = (t * 2).sum(1).sqrt()  # prologue in pass 1, epilogue in pass 2
    sg.realize(out)
    assert path.stats["kernels"] - before["kernels"] == 1
    assert path.stats["dispatches"] - before["dispatches"] == 2
    assert_close(out, np.sqrt((x.astype(np.float64) * 2).sum(1)), rtol=1e-5)


def test_shape_past_32_bit_indices_errors_clearly(webgpu):
    x = sg.tensor([1.0], device=webgpu).expand(2**31 - 1)  # a broadcast: no memory behind it
    with pytest.raises(RuntimeError, match="reduction R_sum over shape .* 32-bit indices"):
        x.sum().numpy()


def test_subgroups_can_be_turned_off_by_environment(webgpu, monkeypatch):
    from smolgrad.backend.webgpu_backend import WebGPUBackend

    monkeypatch.setenv("SMOLGRAD_SUBGROUPS", "0")
    assert WebGPUBackend().subgroups is False


# --------------------------------------------------------------------------- the planner
def test_plan_rows_columns_and_chunks():
    rows = reduce_plan((1024, 1024), (1,), work=8, subgroups=True)
    assert rows == ReducePlan(lanes=128, chunks=1, columns=False, subgroups=True)
    short = reduce_plan((8192, 5), (1,), work=8, subgroups=True)
    assert short.lanes == 1 and short.per_group == 256 and not short.subgroups
    cols = reduce_plan((1024, 1024), (0,), work=8, subgroups=True)
    assert cols.columns and not cols.subgroups and cols.per_group >= 32  # 32 adjacent columns
    transposed = reduce_plan((1024, 1024), (0,), work=8, subgroups=True, fast=0)
    assert not transposed.columns  # the reduced dim is the adjacent one in memory
    full = reduce_plan((1 << 22,), (0,), work=8, subgroups=False)
    assert full.chunks > 1 and full.lanes == 256
    assert not reduce_plan((1 << 22,), (0,), work=8, subgroups=False, split=False).chunks > 1
    for shape, axes in CASES:
        for work in (1, 8, 32):
            plan = reduce_plan(shape, axes, work, True)
            assert plan.lanes & (plan.lanes - 1) == 0 and plan.lanes * plan.per_group == wgsl.WORKGROUP


def test_fast_dim_follows_the_tensors_read_in_full():
    from smolgrad.view import View

    rows = View.contiguous((6, 5))
    transposed = View((6, 5), (1, 6), 0)
    row_max = View((6, 5), (1, 0), 0)  # a per-row value broadcast along the row
    assert wgsl.fast_dim((6, 5), [rows]) == 1
    assert wgsl.fast_dim((6, 5), [transposed]) == 0
    assert wgsl.fast_dim((6, 5), [row_max, rows]) == 1
    assert wgsl.fast_dim((6, 5), [row_max]) == 0
    assert wgsl.fast_dim((1, 5), []) == 1 and wgsl.fast_dim((1, 1), []) == -1


def test_source_uses_subgroup_shuffles_only_when_planned():
    def source(plan):
        fn = (
            "struct SegmentValues { unused: u32, }\n"
            "fn segment_values(o: i32) -> SegmentValues { return SegmentValues(0u); }\n"
            "fn input_value(o: i32, r: i32, s: SegmentValues) -> f32 { return in1[o * 300i + r]; }\n"
            "fn epilogue(acc: f32, o: i32) -> f32 { return acc; }"
        )
        bindings = wgsl.bindings_code(["f32"], [("in1", "f32")])
        return wgsl.reduce_source("R_sum", wgsl.Op.SUM, "f32", fn, bindings, (4, 300), (1,), plan, True, "test")

    assert "subgroupShuffleXor" in source(ReducePlan(64, subgroups=True))
    assert "subgroupShuffleXor" not in source(ReducePlan(64)) and "workgroupBarrier" in source(ReducePlan(64))
    assert "workgroupBarrier" not in source(ReducePlan(1))


def test_row_values_are_read_once_per_row(webgpu, monkeypatch):
    """softmax's sum of exp(x - max): the row's max is loaded once per segment, not per element."""
    monkeypatch.setenv("SMOLGRAD_FUSION", "1")  # (looks at the fused kernel's source)
    monkeypatch.setenv("SMOLGRAD_ROW_FUSION", "0")  # (the reduction kernels, not one row kernel)
    backend = get_backend(webgpu)
    x = sg.tensor(rand(6, 300, seed=15), device=webgpu)
    x.softmax(-1).numpy()
    mine = [s for s in backend._sources.values() if "kernel: R_sub_exp_sum" in s and "input (6, 300)" in s]
    src = mine[-1]
    per_element = src[src.index("fn input_value") : src.index("fn epilogue")]
    assert "s.h0" in per_element and re.findall(r"\bin\d+\[", per_element) == ["in1["]  # x only


# --------------------------------------------------------------------------- gradients of strided inputs
@pytest.mark.parametrize(
    "fn",
    [
        lambda x: x.softmax(-1),
        lambda x: x.log_softmax(0),
        lambda x: x.logsumexp(1),
        lambda x: F.layer_norm(x, (x.shape[-1],)),
        lambda x: x.sum(0) * x.amax(1).sum(),
    ],
    ids=["softmax", "log_softmax", "logsumexp", "layer_norm", "sum_amax"],
)
def test_gradcheck_of_noncontiguous_inputs(fn):
    gradcheck(fn, rand(4, 5, seed=13), noncontiguous=True)


def test_noncontiguous_inputs_are_views():
    t = noncontiguous_tensor(rand(3, 4))
    assert t.lazydata.view.strides == (1, 3)
    assert noncontiguous_tensor(rand(5)).lazydata.view.strides == (2,)


def test_gradcheck_of_cross_entropy_on_strided_logits():
    target = sg.tensor(np.array([1, 0, 3]), device="numpy")
    gradcheck(lambda x: F.cross_entropy(x, target), rand(3, 4, seed=14), noncontiguous=True)
