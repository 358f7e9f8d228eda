"""x[key] = value with every key kind, advanced getitem, and the scatter / index_add family,
against NumPy on both devices."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_close, gradcheck, on, rand

import smolgrad as sg


def check_setitem(device, shape, key, value, np_key=None, dtype=np.float32):
    """x[key] = value in smolgrad and NumPy agree (value: a scalar or an array)."""
    a = (np.arange(np.prod(shape)).reshape(shape) - 3).astype(dtype)
    x = sg.tensor(a, device=device)
    v = value if np.isscalar(value) else sg.tensor(np.asarray(value, dtype=dtype), device=device)
    x[key] = v
    expected = a.copy()
    k = key if np_key is None else np_key
    val = np.asarray(value)
    while val.ndim > expected[k].ndim and val.shape[0] == 1:  # torch drops leading size-1 dims
        val = val[0]
    expected[k] = val
    assert_close(x, expected)
    assert x._version == 1


BASIC = [
    ("int", (4, 3), 1, 7.0),
    ("negative int", (4, 3), -1, 7.0),
    ("int pair", (4, 3), (2, -3), 7.0),
    ("slice", (5, 3), slice(1, 4), 7.0),
    ("step", (7, 3), slice(None, None, 2), 7.0),
    ("step and start", (7, 3), slice(1, 6, 3), 7.0),
    ("negative bounds", (6, 3), slice(-4, -1), 7.0),
    ("clipped bounds", (4, 3), slice(2, 100), 7.0),
    ("empty slice", (4, 3), slice(3, 1), 7.0),
    ("column", (4, 3), (slice(None), 1), 7.0),
    ("ellipsis", (2, 3, 4), (Ellipsis, 2), 7.0),
    ("ellipsis middle", (2, 3, 4), (1, Ellipsis, slice(1, 3)), 7.0),
    ("None", (4, 3), (None, 1), 7.0),
    ("row value", (4, 3), 2, [1.0, 2.0, 3.0]),
    ("broadcast row value", (4, 3), slice(1, 3), [1.0, 2.0, 3.0]),
    ("broadcast column value", (4, 3), slice(None, None, 2), [[1.0], [2.0]]),
    ("leading ones in value", (4, 3), 1, [[[1.0, 2.0, 3.0]]]),
    ("everything", (2, 3), Ellipsis, 4.0),
    ("3-d steps", (4, 5, 6), (slice(None, None, 2), slice(1, None, 3), slice(0, 5, 2)), 9.0),
]


@pytest.mark.parametrize("name,shape,key,value", BASIC, ids=[b[0] for b in BASIC])
def test_setitem_basic(device, name, shape, key, value):
    np_key = tuple(k for k in key if k is not None) if isinstance(key, tuple) and None in key else None
    check_setitem(device, shape, key, value, np_key)


ADVANCED = [
    ("list", (5, 3), [0, 3], 7.0, None),
    ("negative list", (5, 3), [-1, 1], [1.0, 2.0, 3.0], None),
    ("int tensor", (5, 3), "t[4, 0]", 7.0, [4, 0]),
    ("list then slice", (5, 3), ([1, 2], slice(0, 2)), [[1.0, 2.0], [3.0, 4.0]], None),
    ("slice then list", (3, 5), (slice(None), [4, 0]), [[1.0, 2.0]], None),
    ("two lists", (4, 5), ([0, 3], [1, 4]), [8.0, 9.0], None),
    ("int and list", (3, 4, 5), (1, slice(None), [0, 2]), 5.0, None),
    ("2-d index", (5,), "t[[0, 1], [3, 4]]", [[1.0, 2.0], [3.0, 4.0]], [[0, 1], [3, 4]]),
]


@pytest.mark.parametrize("name,shape,key,value,np_key", ADVANCED, ids=[a[0] for a in ADVANCED])
def test_setitem_advanced(device, name, shape, key, value, np_key):
    if isinstance(key, str):  # an integer tensor key, built on the test's device
        key = sg.tensor(np.array(np_key), device=device)
        np_key = np.array(np_key)
    check_setitem(device, shape, key, value, np_key)


def test_setitem_int_tensor_with_slice_matches_numpy(device):
    a = rand(4, 6, seed=1)
    (x,) = on(device, a)
    idx = sg.tensor([3, 1], device=device)
    x[1:3, idx] = -1.0
    expected = a.copy()
    expected[1:3, [3, 1]] = -1
    assert_close(x, expected)


def test_setitem_repeated_index_last_write_wins(device):
    (x,) = on(device, np.zeros(4))
    x[[1, 1, 2]] = sg.tensor([5.0, 6.0, 7.0], device=device)
    assert_close(x, np.array([0, 6, 7, 0], np.float32))


def test_setitem_bool_mask(device):
    a = rand(3, 4, seed=2)
    (x,) = on(device, a)
    x[x < 0] = 0
    assert_close(x, np.maximum(a, 0))


def test_setitem_topk_style_mask_with_inf(device):
    logits = rand(2, 5, seed=3)
    (x,) = on(device, logits)
    v = sg.tensor(np.sort(logits, axis=1)[:, ::-1][:, :3].copy(), device=device)  # top 3, descending
    x[x < v[:, [-1]]] = -float("inf")
    expected = logits.copy()
    expected[expected < np.sort(logits, axis=1)[:, -3:][:, :1]] = -np.inf
    assert_close(x, expected)


def test_setitem_row_mask_with_row_value_and_with_values_per_hit(device):
    a = rand(4, 3, seed=4)
    (x,) = on(device, a)
    rows = sg.tensor([True, False, True, False], device=device)
    x[rows] = sg.tensor([1.0, 2.0, 3.0], device=device)
    expected = a.copy()
    expected[[True, False, True, False]] = [1, 2, 3]
    assert_close(x, expected)
    (y,) = on(device, a)
    y[y > 0] = sg.tensor(np.arange(int((a > 0).sum()), dtype=np.float32), device=device)
    expected = a.copy()
    expected[a > 0] = np.arange(int((a > 0).sum()))
    assert_close(y, expected)


def test_setitem_casts_the_value_to_the_tensor_dtype(device):
    (x,) = on(device, np.zeros(3), dtype=sg.int32)
    x[1] = 2.7  # copy_ semantics: truncated like torch
    x[2] = sg.tensor(5.0, device=device)
    assert x.dtype == sg.int32
    assert_close(x, np.array([0, 2, 5]))


@pytest.mark.parametrize("key", [4, -5, (0, 3), [0, 4], "tensor"])
def test_setitem_out_of_range_raises_index_error(device, key):
    a = rand(4, 3, seed=5)
    (x,) = on(device, a)
    if key == "tensor":
        key = sg.tensor([1, 7], device=device)
    with pytest.raises(IndexError, match="out of bounds"):
        x[key] = 1.0
    assert_close(x, a)
    assert x._version == 0


@pytest.mark.parametrize("key,value_shape", [(0, (4,)), (slice(0, 2), (3, 3)), ([0, 1], (2,)), (Ellipsis, (2, 4, 3))])
def test_setitem_unbroadcastable_value_raises_and_leaves_tensor_unchanged(device, key, value_shape):
    a = rand(4, 3, seed=6)
    (x,) = on(device, a)
    view = x[1:]
    with pytest.raises(RuntimeError, match="shape mismatch"):
        x[key] = sg.tensor(np.ones(value_shape, np.float32), device=device)
    assert_close(x, a)
    assert_close(view, a[1:])
    assert x._version == 0


def test_setitem_bad_mask_shape_raises(device):
    (x,) = on(device, rand(4, 3))
    with pytest.raises(IndexError, match="shape of the mask"):
        x[sg.tensor([True, False], device=device)] = 0.0


def test_setitem_is_differentiable_in_value_and_tensor():
    def fn(x, v):
        y = x * 1
        y[1:, ::2] = v
        y[0, [0, 2]] = v[0] * 3
        return y

    gradcheck(fn, rand(3, 4, seed=7).astype(np.float64), rand(2, 2, seed=8).astype(np.float64))


# ----- advanced getitem -----


@pytest.mark.parametrize(
    "key",
    [([0, 2], [1, 3]), (slice(None), [3, 0, 3]), (1, [0, 2]), ([[0], [2]], [1, 3]), "mask", "row mask"],
)
def test_getitem_advanced_matches_numpy(device, key):
    a = rand(3, 4, seed=9)
    (x,) = on(device, a)
    if key == "mask":
        key, np_key = x > 0, a > 0
    elif key == "row mask":
        key, np_key = sg.tensor([True, False, True], device=device), np.array([True, False, True])
    else:
        np_key = key
    assert_close(x[key], a[np_key])


def test_getitem_advanced_is_differentiable():
    gradcheck(lambda x: x[[0, 2, 0], [1, 1, 3]] * x[x.detach() > 0].sum(), rand(3, 4, seed=10).astype(np.float64))


# ----- scatter, scatter_add, index_add, index_copy, index_fill -----


def np_scatter(a, dim, idx, src, add=False):
    out = a.copy()
    for pos in np.ndindex(*idx.shape):
        target = list(pos)
        target[dim] = idx[pos]
        if add:
            out[tuple(target)] += src[pos]
        else:
            out[tuple(target)] = src[pos]
    return out


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_scatter_and_scatter_add_match_numpy(device, dim):
    a, src = rand(3, 5, seed=11), rand(4, 6, seed=12)
    idx = np.array([[0, 2, 1], [2, 0, 0]]) if dim == 0 else np.array([[4, 0, 2], [1, 3, 0]])
    (x, s) = on(device, a, src)
    i = sg.tensor(idx, device=device)
    assert_close(x.scatter(dim, i, s), np_scatter(a, dim % 2, idx, src[:2, :3]))
    assert_close(x.scatter_add(dim, i, s), np_scatter(a, dim % 2, idx, src[:2, :3], add=True))
    assert_close(sg.scatter_add(x, dim, i, s), np_scatter(a, dim % 2, idx, src[:2, :3], add=True))
    assert_close(x.scatter(dim, i, value=2.5), np_scatter(a, dim % 2, idx, np.full((2, 3), 2.5)))
    assert_close(x, a)  # out of place


def test_scatter_with_unique_targets_matches_numpy(device):
    a, src = rand(3, 4, seed=13), rand(2, 4, seed=14)
    idx = np.array([[2, 0, 1, 2], [0, 1, 2, 1]])
    (x, s) = on(device, a, src)
    assert_close(sg.scatter(x, 0, sg.tensor(idx, device=device), s), np_scatter(a, 0, idx, src))
    x.scatter_(0, sg.tensor(idx, device=device), s)
    assert_close(x, np_scatter(a, 0, idx, src))
    assert x._version == 1


def test_scatter_add_in_place_with_reduce_add(device):
    a, src = rand(3, 4, seed=15), rand(2, 4, seed=16)
    idx = np.array([[2, 0, 2, 2], [2, 1, 2, 1]])
    (x, s) = on(device, a, src)
    x.scatter_(0, sg.tensor(idx, device=device), s, reduce="add")
    assert_close(x, np_scatter(a, 0, idx, src, add=True))
    x.scatter_add_(0, sg.tensor(idx, device=device), s)
    assert_close(x, np_scatter(np_scatter(a, 0, idx, src, add=True), 0, idx, src, add=True), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dim", [0, 1])
def test_index_add_copy_fill_match_numpy(device, dim):
    a = rand(4, 5, seed=17)
    index = np.array([3, 0, 3]) if dim == 0 else np.array([4, 1, 1])
    src = rand(3, 5, seed=18) if dim == 0 else rand(4, 3, seed=18)
    (x, s) = on(device, a, src)
    i = sg.tensor(index, device=device)
    added = a.copy()
    np.add.at(added, (index,) if dim == 0 else (slice(None), index), 2.0 * src)
    assert_close(x.index_add(dim, i, s, alpha=2.0), added)
    unique = np.array([3, 0, 1]) if dim == 0 else np.array([4, 1, 0])
    u = sg.tensor(unique, device=device)
    copied = a.copy()
    if dim == 0:
        copied[unique] = src
    else:
        copied[:, unique] = src
    assert_close(x.index_copy(dim, u, s), copied)
    filled = a.copy()
    if dim == 0:
        filled[index] = -1
    else:
        filled[:, index] = -1
    assert_close(x.index_fill(dim, i, -1.0), filled)
    x.index_add_(dim, i, s, alpha=2.0)
    assert_close(x, added)
    x.index_copy_(dim, u, s)
    x.index_fill_(dim, i, sg.tensor(-1.0, device=device))
    assert x._version == 3


def test_scatter_family_gradients():
    idx = sg.tensor([[1, 0, 2], [2, 1, 0]])
    gradcheck(lambda x, s: x.scatter(1, idx, s), rand(2, 3, seed=19).astype(np.float64), rand(2, 4, seed=20).astype(np.float64))
    gradcheck(lambda x, s: x.scatter_add(0, sg.tensor([[1, 0, 1]]), s), rand(2, 3).astype(np.float64), rand(1, 3).astype(np.float64))
    gradcheck(lambda x, s: x.index_add(0, sg.tensor([1, 1]), s, alpha=3.0), rand(2, 3).astype(np.float64), rand(2, 3).astype(np.float64))
    gradcheck(lambda x, s: x.index_copy(1, sg.tensor([2, 0]), s), rand(2, 3).astype(np.float64), rand(2, 2).astype(np.float64))
    gradcheck(lambda x: x.index_fill(1, sg.tensor([1]), 0.5), rand(2, 3).astype(np.float64))


def test_scatter_family_bad_inputs_raise(device):
    (x, s) = on(device, rand(3, 4), rand(3, 4))
    with pytest.raises(RuntimeError, match="scatter\\(\\): index 5 is out of bounds"):
        x.scatter(1, sg.tensor([[5]], device=device), s)
    with pytest.raises(RuntimeError, match="Expected dtype int64 for index"):
        x.scatter_add(0, sg.tensor([[0.5]], device=device), s)
    with pytest.raises(RuntimeError, match="same number of dimensions"):
        x.scatter_add(0, sg.tensor([0], device=device), s)
    with pytest.raises(RuntimeError, match="smaller than self"):
        x.scatter(0, sg.tensor(np.zeros((2, 5), np.int64), device=device), sg.tensor(rand(3, 5), device=device))
    with pytest.raises(RuntimeError, match="reduce argument"):
        x.scatter(0, sg.tensor([[0]], device=device), s, reduce="multiply")
    with pytest.raises(IndexError, match="Index is supposed to be a vector"):
        x.index_add(0, sg.tensor([[0]], device=device), s)
    with pytest.raises(RuntimeError, match="source of shape"):
        x.index_copy(0, sg.tensor([0, 1], device=device), s)
    with pytest.raises(IndexError, match="out of bounds"):
        x.index_add(0, sg.tensor([0, 3, 1], device=device), s)
    (i,) = on(device, np.zeros(3), dtype=sg.int32)
    with pytest.raises(RuntimeError, match="Expected self.dtype to be equal to src.dtype"):
        i.index_add_(0, sg.tensor([0], device=device), sg.tensor([0.5], device=device))
