"""Shape, indexing, matrix and creation ops of issue 12: repeat, tile, repeat_interleave,
roll, index_select, take_along_dim, movedim, swapaxes, unflatten, view_as, reshape_as,
new_*, *_like; mm, bmm, addmm, baddbmm, outer, diag, diagonal, trace, einsum; linspace,
logspace, meshgrid."""

from __future__ import annotations

import numpy as np
import pytest

import smolgrad as sg
from helpers import assert_close, gradcheck, on, rand

# ----- repeating and rolling -----


def test_repeat_and_tile(device):
    a = rand(2, 3, seed=1)
    (t,) = on(device, a)
    assert_close(t.repeat(2, 1), np.tile(a, (2, 1)))
    assert_close(t.repeat((3, 2, 2)), np.tile(a, (3, 2, 2)))
    assert_close(t.T.repeat(1, 2), np.tile(a.T, (1, 2)))
    assert_close(sg.tile(t, (2,)), np.tile(a, (2,)))
    assert_close(t.tile(2, 1, 1), np.tile(a, (2, 1, 1)))
    gradcheck(lambda x: x.repeat(2, 3), a)
    with pytest.raises(RuntimeError, match="repeat"):
        t.repeat(2)


def test_repeat_interleave(device):
    a = rand(2, 3, seed=2)
    (t,) = on(device, a)
    assert_close(t.repeat_interleave(2), np.repeat(a, 2))
    assert_close(t.repeat_interleave(3, dim=1), np.repeat(a, 3, axis=1))
    assert_close(t.repeat_interleave(sg.tensor([1, 0, 2], device=device), dim=1), np.repeat(a, [1, 0, 2], axis=1))
    assert_close(t.repeat_interleave(sg.tensor(2, device=device), dim=0), np.repeat(a, 2, axis=0))
    assert_close(sg.repeat_interleave(sg.tensor([2, 1, 3], device=device)), np.repeat([0, 1, 2], [2, 1, 3]))
    gradcheck(lambda x: x.repeat_interleave(2, dim=0), a)
    with pytest.raises(RuntimeError, match="repeat_interleave"):
        t.repeat_interleave(sg.tensor([1, 2], device=device), dim=1)


def test_roll(device):
    a = rand(3, 4, seed=3)
    (t,) = on(device, a)
    assert_close(t.roll(1), np.roll(a, 1))
    assert_close(t.roll(-1, 0), np.roll(a, -1, 0))
    assert_close(sg.roll(t, (1, 6), (0, 1)), np.roll(a, (1, 6), (0, 1)))
    assert_close(t.T.roll(2, 1), np.roll(a.T, 2, 1))
    gradcheck(lambda x: x.roll(1, 1) * x, a)
    with pytest.raises(RuntimeError, match="roll"):
        t.roll((1, 2), 0)


# ----- indexing -----


def test_index_select_and_take_along_dim(device):
    a = rand(3, 4, seed=4)
    (t,) = on(device, a)
    idx = sg.tensor([2, 0, 2], device=device)
    assert_close(t.index_select(0, idx), a[[2, 0, 2]])
    assert_close(sg.index_select(t.T, 1, idx), a.T[:, [2, 0, 2]])
    gradcheck(lambda x: x.index_select(1, sg.tensor([3, 3, 0])), a)
    ind = np.array([[0, 3], [1, 1], [2, 0]])
    assert_close(t.take_along_dim(sg.tensor(ind, device=device), 1), np.take_along_axis(a, ind, 1))
    assert_close(sg.take_along_dim(t, sg.tensor([[1, 2, 0, 0]], device=device), 0), np.take_along_axis(a, np.array([[1, 2, 0, 0]]), 0))
    assert_close(t.take_along_dim(sg.tensor([5, 0], device=device)), a.reshape(-1)[[5, 0]])
    order = t.argsort(1)
    assert_close(t.take_along_dim(order, 1), np.sort(a, 1))


def test_index_ops_bad_inputs(device):
    t = sg.ones(3, 4, device=device)
    with pytest.raises(IndexError, match="index_select.*out of bounds"):
        t.index_select(0, sg.tensor([3], device=device))
    with pytest.raises(RuntimeError, match="index_select.*integer"):
        t.index_select(0, sg.tensor([1.0], device=device))
    with pytest.raises(IndexError, match="index_select.*vector"):
        t.index_select(0, sg.tensor([[1]], device=device))
    with pytest.raises(RuntimeError, match="take_along_dim"):
        t.take_along_dim(sg.tensor([1], device=device), 1)


# ----- dims -----


def test_movedim_swapaxes_unflatten_view_as(device):
    a = rand(2, 3, 4, seed=5)
    (t,) = on(device, a)
    assert_close(t.movedim(0, -1), np.moveaxis(a, 0, -1))
    assert_close(sg.movedim(t, (0, 1), (2, 0)), np.moveaxis(a, (0, 1), (2, 0)))
    assert_close(t.moveaxis(-1, 0), np.moveaxis(a, -1, 0))
    assert_close(t.swapaxes(0, 2), np.swapaxes(a, 0, 2))
    assert_close(sg.swapdims(t, 1, 2), np.swapaxes(a, 1, 2))
    assert_close(t.unflatten(2, (2, 2)), a.reshape(2, 3, 2, 2))
    assert_close(t.unflatten(-1, (-1, 1)), a.reshape(2, 3, 4, 1))
    other = sg.zeros(6, 4, device=device)
    assert_close(t.view_as(other), a.reshape(6, 4))
    assert_close(t.T.reshape_as(other.T), a.T.reshape(4, 6))
    with pytest.raises(RuntimeError, match="unflatten"):
        t.unflatten(2, (3, 2))
    with pytest.raises(RuntimeError, match="movedim"):
        t.movedim((0, 1), 2)


def test_new_creators_and_like_arguments(device):
    t = sg.tensor([1.0, 2.0], device=device)
    z = t.new_zeros(2, 3)
    assert z.shape == (2, 3) and z.dtype == sg.float32 and z.device == device
    assert_close(t.new_ones((2,), dtype=sg.int64), np.ones(2, np.int64))
    assert_close(t.new_full((2, 2), 7.0), np.full((2, 2), 7.0, np.float32))
    assert_close(t.new_empty(3), np.zeros(3, np.float32))
    n = t.new_tensor([[1, 2]])
    assert n.dtype == sg.float32 and n.device == device
    assert t.new_zeros(2, requires_grad=True).requires_grad
    assert sg.zeros_like(t, dtype=sg.int64).dtype == sg.int64
    assert sg.ones_like(t, device="numpy").device == "numpy"
    assert sg.full_like(t, 3, dtype=sg.int32).dtype == sg.int32


# ----- matrices -----


def test_mm_bmm_addmm_baddbmm_outer(device):
    a, b, c = rand(2, 3, seed=6), rand(3, 4, seed=7), rand(4, seed=8)
    ta, tb, tc = on(device, a, b, c)
    assert_close(ta.mm(tb), a @ b, rtol=1e-5)
    assert_close(sg.addmm(tc, ta, tb, beta=0.5, alpha=2.0), 0.5 * c + 2.0 * (a @ b), rtol=1e-5)
    assert_close(sg.outer(tc, tc[:3]), np.outer(c, c[:3]))
    assert_close(sg.tensor([1, 2], device=device).outer(sg.tensor([3, 4], device=device)), np.outer([1, 2], [3, 4]))
    x, y, z = rand(2, 3, 4, seed=9), rand(2, 4, 5, seed=10), rand(2, 3, 5, seed=11)
    tx, ty, tz = on(device, x, y, z)
    assert_close(sg.bmm(tx, ty), x @ y, rtol=1e-5)
    assert_close(tz.baddbmm(tx, ty, alpha=-1.0), z - x @ y, rtol=1e-5)
    nan_input = sg.full((2, 4), float("nan"), device=device)
    assert_close(nan_input.addmm(ta, tb, beta=0), a @ b, rtol=1e-5)  # beta=0 ignores the input
    gradcheck(lambda i, m1, m2: i.addmm(m1, m2, beta=0.5, alpha=2.0), c, a, b)
    gradcheck(lambda i, m1, m2: i.baddbmm(m1, m2), z, x, y)


def test_matrix_ops_bad_shapes():
    with pytest.raises(RuntimeError, match="mm: self must be a 2D"):
        sg.ones(3).mm(sg.ones(3, 3))
    with pytest.raises(RuntimeError, match="bmm.*same number of batches"):
        sg.ones(2, 3, 3).bmm(sg.ones(3, 3, 3))
    with pytest.raises(RuntimeError, match="matmul"):
        sg.ones(2, 3).mm(sg.ones(2, 3))
    with pytest.raises(RuntimeError, match="addmm"):
        sg.ones(3, 3).addmm(sg.ones(2, 2), sg.ones(2, 2))
    with pytest.raises(RuntimeError, match="outer"):
        sg.ones(2, 2).outer(sg.ones(2))


@pytest.mark.parametrize("offset", [0, 1, -1, 3, -4])
def test_diagonal_diag_trace(offset, device):
    a = rand(3, 4, seed=12)
    (t,) = on(device, a)
    assert_close(t.diagonal(offset), np.diagonal(a, offset))
    assert_close(sg.diag(t, offset), np.diag(a, offset))
    v = rand(3, seed=13)
    (tv,) = on(device, v)
    assert_close(tv.diag(offset), np.diag(v, offset))
    gradcheck(lambda x: x.diagonal(offset) * 2, a)
    gradcheck(lambda x: x.diag(offset), v)


def test_diagonal_of_batched_and_permuted_dims_and_trace(device):
    a = rand(2, 3, 4, seed=14)
    (t,) = on(device, a)
    assert_close(t.diagonal(0, 0, 2), np.diagonal(a, 0, 0, 2))
    assert_close(t.diagonal(1, -1, -2), np.diagonal(a, 1, -1, -2))
    assert_close(t[0].T.diagonal(), np.diagonal(a[0].T))
    assert_close(t[1].trace(), np.trace(a[1]), rtol=1e-5)
    assert_close(sg.trace(sg.tensor([[1, 2], [3, 4]], device=device)), np.array(5))
    with pytest.raises(RuntimeError, match="diagonal dimensions cannot be identical"):
        t.diagonal(0, 1, 1)
    with pytest.raises(RuntimeError, match="trace"):
        t.trace()


# ----- einsum -----

EINSUM = [
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)]),
    ("ij->ji", [(2, 3)]),
    ("ii->i", [(3, 3)]),
    ("ii", [(3, 3)]),
    ("ij->", [(2, 3)]),
    ("i,j->ij", [(3,), (4,)]),
    ("i,i->", [(5,), (5,)]),
    ("ij,ij->ij", [(2, 3), (2, 3)]),
    ("ij,jk", [(2, 3), (3, 4)]),
    ("ba,ca", [(2, 3), (4, 3)]),
    ("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)]),
    ("i...->...", [(3, 2, 2)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("abc,cd,a->bd", [(2, 3, 4), (4, 5), (2,)]),
    ("iij,jk->ik", [(3, 3, 4), (4, 2)]),
    ("ij,kj->", [(2, 3), (4, 3)]),
    ("bn,anm,bm->ba", [(2, 3), (4, 3, 5), (2, 5)]),
]


@pytest.mark.parametrize("eq,shapes", EINSUM, ids=[e for e, _ in EINSUM])
def test_einsum_matches_numpy(eq, shapes, device):
    arrays = [rand(*s, seed=i) for i, s in enumerate(shapes)]
    out = sg.einsum(eq, *on(device, *arrays))
    assert_close(out, np.einsum(eq, *arrays), rtol=1e-5, atol=1e-5)


def test_einsum_list_operands_integers_and_gradients(device):
    a, b = rand(2, 3, seed=1), rand(3, 4, seed=2)
    assert_close(sg.einsum("ij,jk->ik", on(device, a, b)), a @ b, rtol=1e-5)
    i = sg.tensor([[1, 2], [3, 4]], device=device)
    assert_close(sg.einsum("ij,jk->ik", i, i), np.array([[7, 10], [15, 22]]))
    gradcheck(lambda x, y: sg.einsum("ij,kj->ik", x, y), a, b.T.copy())
    gradcheck(lambda x: sg.einsum("ii->i", x) * 2, rand(3, 3, seed=3))
    gradcheck(lambda x, y, z: sg.einsum("bn,anm,bm->ba", x, y, z), rand(2, 3, seed=4), rand(4, 3, 5, seed=5), rand(2, 5, seed=6))


def test_einsum_bad_equations():
    a = sg.ones(2, 3)
    with pytest.raises(ValueError, match="2 operands in the equation"):
        sg.einsum("ij,jk->ik", a)
    with pytest.raises(RuntimeError, match="number of subscripts"):
        sg.einsum("ijk->i", a)
    with pytest.raises(ValueError, match="output subscript"):
        sg.einsum("ij->iz", a)
    with pytest.raises(ValueError, match="more than once"):
        sg.einsum("ij->ii", a)
    with pytest.raises(RuntimeError, match="einsum"):
        sg.einsum("ij,ij->ij", a, sg.ones(2, 4))
    with pytest.raises(RuntimeError, match="sizes differ"):
        sg.einsum("ii->i", a)


# ----- creation -----


@pytest.mark.parametrize("steps", [0, 1, 2, 5, 10])
def test_linspace_and_logspace(steps, device):
    assert_close(sg.linspace(-1, 2, steps, device=device), np.linspace(-1, 2, steps).astype(np.float32))
    assert_close(sg.logspace(0, 3, steps, device=device), np.logspace(0, 3, steps).astype(np.float32), rtol=1e-6)
    assert_close(sg.logspace(0, 3, steps, base=2, device=device), np.logspace(0, 3, steps, base=2).astype(np.float32))


def test_linspace_dtypes_and_errors():
    assert_close(sg.linspace(0, 10, 5, dtype=sg.int64), np.array([0, 2, 5, 7, 10]))
    assert sg.linspace(0, 1, 3, dtype=sg.float64).dtype == sg.float64
    with pytest.raises(RuntimeError, match="linspace"):
        sg.linspace(0, 1, -1)


@pytest.mark.parametrize("indexing", ["ij", "xy"])
def test_meshgrid(indexing, device):
    x, y, z = np.arange(3.0), np.arange(4.0) * 2, np.arange(2.0) - 1
    grids = sg.meshgrid(*on(device, x, y, z), indexing=indexing)
    for got, want in zip(grids, np.meshgrid(x, y, z, indexing=indexing)):
        assert_close(got, want.astype(np.float32))
    with pytest.raises(RuntimeError, match="indexing"):
        sg.meshgrid(sg.ones(2), indexing="ji")
