"""Slice writes that update the root's buffer in place (Op.ASSIGN, smolgrad/storage.py
`write_in_place`): only the written region is computed and stored, when nothing else can
still read the old value; every hazard falls back to the copying where() path.

"In place" is checked by the root's buffer object: the same one after the write and
realize (no new buffer, the untouched part not copied), and by the kernels run."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_close

import smolgrad as sg
from smolgrad.lazy import LazyBuffer
from smolgrad.ops import Op


@pytest.fixture(autouse=True)
def fusion_on(monkeypatch):
    """The in-place path is a fused-mode one (CI reruns the suite with SMOLGRAD_FUSION=0,
    where test_fusion_off_copies turns it off again)."""
    monkeypatch.setenv("SMOLGRAD_FUSION", "1")


def realized(a: np.ndarray, device: str) -> sg.Tensor:
    return sg.tensor(a, device=device).realize()


def write(x: sg.Tensor, key, value) -> tuple[bool, list[str]]:
    """x[key] = value, then realize x: (x kept its buffer, names of the kernels run)."""
    buf = x.lazydata.base.realized
    assert buf is not None
    x[key] = value
    with sg.profile() as prof:
        x.realize()
    return x.lazydata.base.realized is buf, [e.name for e in prof.events]


def expect_in_place(x: sg.Tensor, key, value, n_kernels: int = 1) -> None:
    same, names = write(x, key, value)
    assert same, f"x[{key!r}] = ... did not update x's buffer in place (kernels {names})"
    assert len(names) == n_kernels and names[-1].startswith("ASSIGN"), names


def expect_copy(x: sg.Tensor, key, value) -> None:
    same, names = write(x, key, value)
    assert not same, f"x[{key!r}] = ... wrote in place but should have copied (kernels {names})"
    assert not any(n.startswith("ASSIGN") for n in names), names


# ----- values -----

KEYS = [
    ("int", 2),
    ("negative int", -1),
    ("int pair", (1, -2)),
    ("slice", slice(1, 4)),
    ("step", slice(None, None, 2)),
    ("start and step", (slice(1, 6, 3), slice(0, 5, 2))),
    ("column", (slice(None), 3)),
    ("ellipsis", (Ellipsis, 1)),
    ("empty", slice(3, 1)),
]


@pytest.mark.parametrize("name,key", KEYS, ids=[k[0] for k in KEYS])
@pytest.mark.parametrize("dtype", [np.float32, np.int32])
def test_basic_keys_write_in_place(device, name, key, dtype):
    a = (np.arange(30).reshape(6, 5) - 7).astype(dtype)
    x = realized(a, device)
    ref = a.copy()
    value = (np.arange(np.asarray(ref[key]).size).reshape(np.shape(ref[key])) * 3 + 100).astype(dtype)
    ref[key] = value
    expect_in_place(x, key, sg.tensor(value, device=device))  # (empty: a kernel with nothing to do)
    assert_close(x, ref)
    assert x._version == 1


def test_scalar_and_broadcast_values(device):
    a = np.arange(24, dtype=np.float32).reshape(4, 6)
    x = realized(a, device)
    ref = a.copy()
    expect_in_place(x, 1, 5.0)
    ref[1] = 5.0
    column = np.array([[1.0], [2.0], [3.0], [4.0]], np.float32)
    expect_in_place(x, (slice(None), slice(0, 6, 2)), sg.tensor(column, device=device))
    ref[:, 0:6:2] = [[1.0], [2.0], [3.0], [4.0]]
    assert_close(x, ref)


def test_bool_tensor_and_a_value_of_another_dtype(device):
    b = np.zeros((3, 4), dtype=bool)
    x = realized(b, device)
    expect_in_place(x, 1, True)
    b[1] = True
    assert_close(x, b)
    f = np.zeros((3, 4), np.float32)
    y = realized(f, device)
    expect_in_place(y, (slice(None), 2), sg.tensor(np.array([1, 2, 3], np.int32), device=device))
    f[:, 2] = [1, 2, 3]
    assert_close(y, f)


def test_views_of_views(device):
    a = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    x = realized(a, device)
    ref = a.copy()
    v = x.permute(2, 0, 1)[1:4]  # (3, 3, 4) over x, strided
    w = v.reshape(3, 12)[:, ::5]  # (3, 3)
    value = np.arange(9, dtype=np.float32).reshape(3, 3) - 50
    pos = np.arange(60).reshape(3, 4, 5).transpose(2, 0, 1)[1:4].reshape(3, 12)[:, ::5]
    ref.reshape(-1)[pos.reshape(-1)] = value.reshape(-1)
    buf = x.lazydata.realized
    w[...] = sg.tensor(value, device=device)
    assert x.lazydata.op is Op.ASSIGN
    assert_close(x, ref)
    assert_close(v, ref.transpose(2, 0, 1)[1:4])
    assert x.lazydata.realized is buf


def test_write_through_a_transposed_view_and_a_strided_value(device):
    a = np.arange(20, dtype=np.float32).reshape(4, 5)
    x = realized(a, device)
    src = np.arange(12, dtype=np.float32).reshape(4, 3) * -1
    s = realized(src, device)
    expect_in_place(x.T, slice(1, 4), s.T)  # rows 1..3 of x.T: columns 1..3 of x
    ref = a.copy()
    ref[:, 1:4] = src
    assert_close(x, ref)


def test_the_value_is_computed_in_the_writing_kernel(device):
    a = np.zeros((5, 6), np.float32)
    x = realized(a, device)
    r = np.arange(6, dtype=np.float32)
    row = realized(r, device)
    expect_in_place(x, 3, (row * 2 + 1).exp() - row)  # one kernel: the elementwise chain fuses in
    a[3] = np.exp(r * 2 + 1) - r
    assert_close(x, a, rtol=1e-5)


def test_a_reduction_or_matmul_value(device):
    a = np.zeros((4, 3), np.float32)
    m = np.arange(12, dtype=np.float32).reshape(4, 3)
    x, y = realized(a, device), realized(m, device)
    expect_in_place(x, 0, y.sum(0), n_kernels=2)
    expect_in_place(x, 1, (y.T @ y)[0], n_kernels=2)
    a[0] = m.sum(0)
    a[1] = (m.T @ m)[0]
    assert_close(x, a)


def test_data_alias_and_detach_see_the_write(device):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    x = realized(a, device)
    d, alias, row = x.detach(), x.data, x[1]
    expect_in_place(x, (slice(None), 0), -1.0)
    a[:, 0] = -1
    assert_close(d, a)
    assert_close(alias, a)
    assert_close(row, a[1])
    expect_in_place(d, 2, 9.0)  # a write through the detached alias updates x as well
    a[2] = 9
    assert_close(x, a)
    assert x._version == d._version == 2


def test_repeated_writes_before_a_realize(device):
    a = np.zeros((4, 5), np.float32)
    x = realized(a, device)
    buf = x.lazydata.realized
    for i in range(4):
        x[i, i] = float(i + 1)
        a[i, i] = i + 1
    x[:, 4] = sg.tensor(np.arange(4, dtype=np.float32), device=device)
    a[:, 4] = np.arange(4)
    with sg.profile() as prof:
        x.realize()
    assert [e.name[:6] for e in prof.events] == ["ASSIGN"] * 5
    assert x.lazydata.realized is buf
    assert_close(x, a)


def test_kv_cache_loop(device):
    """cache[:, t] = k_t with a realize each step (and a reader realized each step)."""
    heads, steps, dim = 2, 6, 4
    rng = np.random.default_rng(0)
    cache = realized(np.zeros((heads, steps, dim), np.float32), device)
    ref = np.zeros((heads, steps, dim), np.float32)
    buf = cache.lazydata.realized
    for t in range(steps):
        k = rng.standard_normal((heads, dim)).astype(np.float32)
        cache[:, t] = sg.tensor(k, device=device)
        ref[:, t] = k
        q = sg.tensor(rng.standard_normal((heads, 1, dim)).astype(np.float32), device=device)
        scores = (q @ cache[:, : t + 1].transpose(1, 2)).realize()  # reads the cache after the write
        expected = np.einsum("hd,htd->ht", q.numpy()[:, 0], ref[:, : t + 1])
        np.testing.assert_allclose(scores.numpy()[:, 0], expected, rtol=1e-5, atol=1e-5)
        assert cache.lazydata.realized is buf
    assert_close(cache, ref)


# ----- what stays on the copying path -----


def test_masks_and_integer_indices_copy(device):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    x = realized(a, device)
    mask = a > 5
    expect_copy(x, sg.tensor(mask, device=device), 0.0)
    a[mask] = 0
    expect_copy(x, [0, 2], 7.0)
    a[[0, 2]] = 7
    assert_close(x, a)


def test_whole_tensor_write_rebinds(device):
    a = np.ones((3, 4), np.float32)
    x = realized(a, device)
    expect_copy(x, Ellipsis, 2.0)  # nothing untouched to keep: just the new value
    assert_close(x, np.full((3, 4), 2.0))


def test_a_lazy_reader_sees_the_old_value(device):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    x = realized(a, device)
    y = x * 2
    row = x[1] + 0  # reads x through a view node
    expect_copy(x, 0, 5.0)
    assert_close(y, a * 2)
    assert_close(row, a[1])
    b = a.copy()
    b[0] = 5
    assert_close(x, b)
    expect_in_place(x, 1, 6.0)  # the readers are realized now: nothing reads the old value
    b[1] = 6
    assert_close(x, b)
    assert_close(y, a * 2)


def test_a_pending_reader_of_a_pending_write(device):
    a = np.zeros((3, 3), np.float32)
    x = realized(a, device)
    x[0] = 1.0
    y = x.sum()
    x[1] = 2.0  # y reads the first write's value: the second copies
    assert x.lazydata.op is Op.WHERE
    assert y.item() == 3.0
    assert_close(x, np.array([[1, 1, 1], [2, 2, 2], [0, 0, 0]], np.float32))


def test_a_value_read_from_the_tensor_itself(device):
    a = np.arange(12, dtype=np.float32).reshape(4, 3)
    x = realized(a, device)
    expect_copy(x, slice(1, None), x[:-1])  # overlapping read and write
    a[1:] = a[:-1].copy()
    expect_copy(x, 0, x[3] * 2)
    a[0] = a[3] * 2
    assert_close(x, a)
    x[2].add_(1)  # an in-place op reads the old value: copies
    a[2] += 1
    assert_close(x, a)


def test_a_clone_keeps_the_old_value(device):
    a = np.arange(6, dtype=np.float32)
    x = realized(a, device)
    c = x.clone()
    expect_copy(x, 0, 9.0)  # the clone is not computed yet
    assert_close(c, a)
    c2 = x.clone().realize()  # (a clone of a computed tensor may share its node: then x copies)
    x[1] = 8.0
    assert_close(c2, np.array([9, 1, 2, 3, 4, 5], np.float32))
    assert_close(x, np.array([9, 8, 2, 3, 4, 5], np.float32))
    del c2
    expect_in_place(x, 2, 7.0)  # nothing else holds x's value now
    assert_close(x, np.array([9, 8, 7, 3, 4, 5], np.float32))


def test_another_tensor_object_on_the_same_value_copies(device):
    a = np.arange(6, dtype=np.float32)
    x = realized(a, device)
    other = sg.Tensor._from_lazy(x.lazydata)  # shares the node, not the storage
    expect_copy(x, 0, 9.0)
    assert_close(other, a)


class _TimesSavedBase(sg.autograd.Function):
    """w * 1, whose gradient is g * sum(base of the view input): saves that base node,
    which backward reads under a Tensor object of its own."""

    def forward(self, view: LazyBuffer, w: LazyBuffer) -> LazyBuffer:
        self.save_for_backward(view.base)
        return w.e(Op.MUL, w.const_like(1.0))

    def backward(self, g):
        (base,) = self.saved_tensors
        return None, g * base.sum()


def test_a_value_saved_for_backward_keeps_the_old_value(device):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    x = realized(a, device)
    w = sg.tensor(np.ones(3, np.float32), device=device, requires_grad=True)
    out = _TimesSavedBase.apply(x[0], w)
    out.realize()
    with sg.no_grad():
        expect_copy(x, 1, 100.0)
    out.sum().backward()
    assert_close(w.grad, np.full(3, a.sum()))


def test_a_tensor_saved_by_autograd_still_raises_on_version(device):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    x = realized(a, device)
    w = sg.tensor(np.ones((2, 3), np.float32), device=device, requires_grad=True)
    y = (x * w).sum()
    y.realize()
    with sg.no_grad():
        expect_in_place(x, 0, 5.0)  # nothing reads the old node; x itself is saved, at its version
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()


def test_recorded_writes_copy_and_differentiate(device):
    a = np.zeros((3, 4), np.float32)
    x = realized(a, device)
    w = sg.tensor(np.arange(4, dtype=np.float32), device=device, requires_grad=True)
    expect_copy(x, 1, w * 2)
    assert x.requires_grad
    (x * 3).sum().backward()
    assert_close(w.grad, np.full(4, 6.0))
    h = (w * 1).reshape(1, 4).expand(2, 4).contiguous().realize()  # a non-leaf that requires grad
    expect_copy(h, 0, 0.0)
    w.grad = None
    h.sum().backward()
    assert_close(w.grad, np.ones(4))
    with sg.no_grad():  # the same write unrecorded: in place
        expect_in_place(h, 1, 0.0)
    assert_close(h, np.zeros((2, 4)))


def test_a_pending_reader_on_another_device(device):
    other = "numpy" if device == "webgpu" else "webgpu"
    if other == "webgpu":
        from conftest import require_webgpu

        require_webgpu()
    a = np.arange(6, dtype=np.float32)
    x = realized(a, device)
    y = x.to(other) * 2  # pending on the other device
    expect_in_place(x, 0, -1.0)  # .to copied x's value: nothing on this device reads it
    assert_close(y, a * 2)
    z = realized(a, other)
    pending = z.to(device) + x  # pending on this device, reads x
    expect_copy(x, 1, -2.0)
    assert_close(pending, a + np.array([-1, 1, 2, 3, 4, 5]))


def test_fusion_off_copies(device, monkeypatch):
    monkeypatch.setenv("SMOLGRAD_FUSION", "0")
    a = np.zeros((3, 3), np.float32)
    x = realized(a, device)
    expect_copy(x, 1, 4.0)
    a[1] = 4
    assert_close(x, a)


def test_unfold_windows_copy(device):
    a = np.arange(6, dtype=np.float32)
    x = realized(a, device)
    v = x.unfold(0, 2, 2)  # non-overlapping windows, still the copying path
    v[1] = sg.tensor(np.array([7.0, 8.0], np.float32), device=device)
    assert x.lazydata.op is not Op.ASSIGN
    assert_close(x, np.array([0, 1, 7, 8, 4, 5], np.float32))


def test_forward_ad_copies():
    import smolgrad.autograd.forward_ad as fwAD

    x = realized(np.zeros(3, np.float32), "numpy")
    with fwAD.dual_level():
        v = fwAD.make_dual(sg.tensor(np.float32(2.0)), sg.tensor(np.float32(1.0)))
        x[1] = v
        assert x.lazydata.op is not Op.ASSIGN
    assert_close(x, np.array([0, 2, 0], np.float32))


def test_float64_on_numpy():
    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    x = realized(a, "numpy")
    expect_in_place(x, (1, slice(None, None, 2)), 0.5)
    a[1, ::2] = 0.5
    assert_close(x, a)
    assert x.dtype == sg.float64


def test_no_replay_of_an_in_place_write():
    from smolgrad.compiled import Replay

    replay = Replay()
    a = np.arange(4, dtype=np.float32)

    def fn(t):
        u = (t * 1).realize()
        u[0] = 10.0  # in place into a buffer made inside fn
        return [u * 2]

    for _ in range(3):
        (out,) = replay("k", fn, [realized(a, "numpy")])
        assert_close(out, np.array([20, 2, 4, 6], np.float32))


def test_the_kernel_moves_only_the_region(device):
    x = realized(np.zeros((64, 64), np.float32), device)
    row = realized(np.ones(64, np.float32), device)
    x[5] = row
    sg.reset_stats(device)
    with sg.profile() as prof:
        x.realize()
    (event,) = prof.events
    assert event.bytes == 2 * 64 * 4  # the row read, the row written: not 64 x 64
    stats = sg.stats(device)
    assert stats["peak_bytes"] == stats["bytes_allocated"]  # no buffer allocated for the result
    assert device != "webgpu" or stats["pool_hits"] == 0
    assert_close(x[5], np.ones(64, np.float32))
