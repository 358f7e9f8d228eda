"""Out-of-range indices computed by a kernel: both devices raise IndexError naming the op.

The numpy device finds them when the gather/scatter-add runs; the webgpu one flags them in a
small device buffer that the next readback (or synchronize) reads along with its data, like
CUDA's device-side assert. The kernel still clamps, so nothing is read or written out of
bounds, and values computed from the flagged kernel raise again when read."""

import numpy as np
import pytest

import smolgrad as sg
import smolgrad.nn.functional as F
from smolgrad.device import get_backend
from smolgrad.function import ScatterAdd
from helpers import assert_close


def table(device, rows=10, cols=4):
    x = sg.tensor(np.arange(rows * cols, dtype=np.float32).reshape(rows, cols), device=device)
    sg.realize(x)
    return x


def computed(values, device, factor=1):
    """An index tensor that exists only as the output of a kernel (never on the host).
    (The factor is a 0-d tensor, so kernels do not change with its value.)"""
    idx = sg.tensor(np.array(values, np.int64), device=device) * sg.tensor(factor, device=device)
    assert not idx.lazydata.is_realized()
    return idx


def message(device, op, size, index, dim=0) -> str:
    text = rf"index out of range in {op} \(dimension size {size}\): index {index} is out of bounds"
    text += rf" for dimension {dim} with size {size}"
    return text + (", detected on the device" if device == "webgpu" else "")


def test_computed_index_too_large_raises(device):
    x = table(device)
    y = x[computed([1, 2, 3], device, factor=4)]  # rows 4, 8, 12 of 10
    with pytest.raises(IndexError, match=message(device, "gather", 10, 12)):
        y.numpy()


def test_computed_negative_gather_index_raises(device):
    x = table(device, 5, 3)
    idx = computed([[0, 1, -1]], device, factor=3)  # (0, 3, -3) along dim 0 of size 5
    y = x.gather(0, idx)
    with pytest.raises(IndexError, match=message(device, "gather", 5, -3)):
        y.numpy()


def test_computed_index_along_dim_1_of_a_view(device):
    x = table(device, 6, 7).T  # (7, 6), non-contiguous
    idx = computed([[1, 1], [0, 3], [1, 1]], device, factor=3)  # one 9 along dim 1 of size 6
    with pytest.raises(IndexError, match=message(device, "gather", 6, 9, dim=1)):
        x.gather(1, idx).numpy()


def test_computed_embedding_index_raises(device):
    weight = sg.tensor(np.ones((8, 3), np.float32), device=device)
    ids = computed([[1, 5], [7, 2]], device, factor=2)  # 10 and 14 of 8 rows
    with pytest.raises(IndexError, match=r"index out of range in gather \(dimension size 8\)"):
        F.embedding(ids, weight).sum().item()


def test_computed_scatter_add_index_raises(device):
    src = sg.tensor(np.ones(4, np.float32), device=device)
    idx = computed([0, 1, 2, 3], device, factor=2)  # 6 of size 5
    out = ScatterAdd.apply(src, idx, dim=0, shape=(5,))
    with pytest.raises(IndexError, match=message(device, "scatter_add", 5, 6)):
        out.numpy()


def test_in_range_computed_indices_work(device):
    x = table(device)
    y = x[computed([1, 2, 0], device, factor=4)]  # rows 4, 8, 0
    assert_close(y, np.arange(40, dtype=np.float32).reshape(10, 4)[[4, 8, 0]])
    sg.synchronize(device)  # nothing flagged


def test_device_stays_usable_and_bad_values_keep_raising(device):
    x = table(device)
    bad = x[computed([3], device, factor=5)] * 2.0  # row 15 of 10
    good = x.sum(0) + 1.0
    with pytest.raises(IndexError):
        sg.realize(bad, good)  # numpy raises here, running the gather
        good.numpy()  # webgpu at the first readback, whatever it reads (like CUDA)
    assert_close(good, np.arange(40, dtype=np.float32).reshape(10, 4).sum(0) + 1)
    for value in (bad, bad.sum()):  # the bad value, and what is computed from it
        with pytest.raises(IndexError, match=r"index out of range in gather \(dimension size 10\)"):
            value.numpy()
    assert_close(x[computed([1], device, factor=3)], np.arange(40, dtype=np.float32).reshape(10, 4)[[3]])


def test_realize_then_synchronize_reports_it(webgpu):
    x = table(webgpu)
    y = x[computed([2], webgpu, factor=6)]
    sg.realize(y)  # runs without waiting: nothing known yet
    with pytest.raises(IndexError, match=message(webgpu, "gather", 10, 12)):
        sg.synchronize(webgpu)
    sg.synchronize(webgpu)  # reported once; the flags are clear again


def test_the_check_rides_along_with_the_readback(webgpu):
    x = table(webgpu)
    y = x[computed([1, 2], webgpu, factor=2)] + 1.0
    backend = get_backend(webgpu)
    before = backend.stats["submits"]
    y.numpy()
    assert backend.stats["submits"] - before == 2  # the run and the readback; no extra round trip


def test_checked_gathers_compile_once(webgpu):
    x = table(webgpu)

    def step(k):
        return (x[computed([0, 1, 2], webgpu, factor=k)] * 2.0).sum().item()

    step(1)
    compiled = sg.stats(webgpu)["kernels_compiled"]
    assert step(2) == 2 * (np.arange(40).reshape(10, 4)[[0, 2, 4]].sum())
    with pytest.raises(IndexError):
        step(5)
    assert sg.stats(webgpu)["kernels_compiled"] == compiled  # the bound and sizes are in the source already
