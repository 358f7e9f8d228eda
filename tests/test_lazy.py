"""Laziness: ops build graph nodes, values are computed only when asked for."""

import numpy as np
import pytest

import smolgrad as sg
from smolgrad.device import get_backend
from helpers import assert_close


@pytest.fixture
def kernel_log(device, monkeypatch):
    """Every kernel list the device's backend runs, in order (the names are fused ones,
    so fusion is on here whatever the environment says)."""
    monkeypatch.setenv("SMOLGRAD_FUSION", "1")
    backend = get_backend(device)
    runs = []
    original = backend.run

    def run(kernels, buffers, *rest):
        runs.append([k.name for k in kernels])
        return original(kernels, buffers, *rest)

    monkeypatch.setattr(backend, "run", run)
    return runs


def test_ops_do_not_compute_until_asked(device, kernel_log):
    x = sg.tensor([1.0, 2.0, 3.0], device=device)
    y = (x * 2 + 1).exp()
    assert not y.lazydata.is_realized()
    assert kernel_log == []
    assert_close(y, np.exp(np.array([1.0, 2.0, 3.0]) * 2 + 1), rtol=1e-5)
    assert len(kernel_log) == 1


def test_one_realisation_runs_one_kernel_list(device, kernel_log):
    x = sg.tensor(np.arange(6, dtype=np.float32).reshape(2, 3), device=device)
    a, b = (x + 1).sum(1), (x * 3).amax(0)
    sg.realize(a, b)
    assert kernel_log == [["R_add_sum", "R_mul_rmax"]]  # each reduction fused with the op before it
    assert a.lazydata.is_realized() and b.lazydata.is_realized()


def test_dead_branch_is_never_computed(device, kernel_log):
    x = sg.tensor([1.0, 2.0], device=device)
    unused = (x * 100).exp().sum()  # noqa: F841  nothing asks for it
    wanted = x + 1
    wanted.numpy()
    assert kernel_log == [["E_add"]]


def test_realized_values_are_reused_not_recomputed(device, kernel_log):
    x = sg.tensor([1.0, 2.0], device=device)
    y = x * 2
    y.realize()
    (y + 1).numpy()
    assert kernel_log == [["E_mul"], ["E_add"]]


def test_views_are_zero_copy(device, kernel_log):
    x = sg.tensor(np.arange(24, dtype=np.float32).reshape(2, 3, 4), device=device).realize()
    views = [x.T, x.permute(2, 0, 1), x[1:, ::2, None, -1], x.flip(1), x.unsqueeze(0).expand(3, 2, 3, 4), x.reshape(6, 4)]
    for v in views:
        assert v.lazydata.base is x.lazydata
    assert kernel_log == []


def test_reshape_of_incompatible_view_copies(device):
    x = sg.tensor(np.arange(6, dtype=np.float32).reshape(2, 3), device=device).realize()
    y = x.T.reshape(6)
    assert y.lazydata.base is not x.lazydata
    assert_close(y, np.arange(6).reshape(2, 3).T.reshape(6).astype(np.float32))


def test_realize_returns_tensor_and_is_idempotent(device, kernel_log):
    y = sg.tensor([1.0], device=device) + 1
    assert y.realize() is y
    y.realize()
    assert len(kernel_log) == 1


def test_constants_are_stored_as_one_broadcast_value(device, kernel_log):
    z = sg.zeros(1000, 1000, device=device)
    assert z.lazydata.base.op.name == "CONST" and z.lazydata.base.shape == ()
    assert (z + 1).sum().item() == 1e6
    assert kernel_log == [["R_add_sum"]]  # the constant is inlined in the fused add


def test_reducing_a_constant_reads_no_buffer(device, kernel_log):
    assert sg.ones(300, 7, device=device).sum().item() == 2100.0
    assert kernel_log == [["R_sum"]]


def test_matmul_operand_constant_is_filled_into_a_buffer(device, kernel_log):
    x = sg.tensor(np.ones((2, 3), dtype=np.float32), device=device)
    assert_close(x @ sg.full((3, 2), 0.5, device=device), np.full((2, 2), 1.5))
    assert kernel_log == [["E", "MM_matmul"]]  # E: the fill kernel of the constant


def test_intermediate_graph_is_released_after_realisation(device):
    x = sg.tensor([1.0, 2.0], device=device)
    y = (x * 2) + 1
    y.realize()
    assert y.lazydata.srcs == ()


def test_webgpu_realisation_is_one_submit(webgpu):
    backend = get_backend(webgpu)
    x = sg.tensor(np.ones(64, dtype=np.float32), device=webgpu)
    y = ((x * 2).exp() + x).sum()
    before = backend.stats["submits"]
    y.realize()
    assert backend.stats["submits"] == before + 1


def test_webgpu_pipeline_cache_hits_for_repeated_shapes(webgpu):
    backend = get_backend(webgpu)
    x = sg.tensor(np.ones(33, dtype=np.float32), device=webgpu)
    (x * 3 + 1).numpy()
    compiled = backend.stats["kernels_compiled"]
    for _ in range(3):
        (sg.tensor(np.ones(33, dtype=np.float32), device=webgpu) * 3 + 1).numpy()
    assert backend.stats["kernels_compiled"] == compiled


def test_webgpu_buffer_pool_reuses_freed_buffers(webgpu):
    backend = get_backend(webgpu)
    (sg.tensor(np.ones(1000, dtype=np.float32), device=webgpu) * 2).numpy()  # warm the pool
    hits = backend.stats["pool_hits"]
    for _ in range(3):
        (sg.tensor(np.ones(1000, dtype=np.float32), device=webgpu) * 2).numpy()
    assert backend.stats["pool_hits"] > hits
