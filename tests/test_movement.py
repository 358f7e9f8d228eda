"""Movement, joining and indexing ops against NumPy, on every device: reshape/view,
permute/transpose, (un)squeeze, expand, flatten, flip, slicing, cat/stack/chunk/split,
pad, integer-tensor row indexing, gather, and which of them are zero-copy views."""

from __future__ import annotations

import numpy as np
import pytest

import smolgrad as sg
import smolgrad.nn.functional as F
from helpers import assert_close, on, rand


def arange_np(*shape):
    return np.arange(np.prod(shape), dtype=np.float32).reshape(shape)


# ----- reshape and view -----


@pytest.mark.parametrize("shape", [(6, 4), (2, -1), (-1,), (4, 3, 2), (1, 24, 1), (-1, 2, 3)])
def test_reshape(device, shape):
    a = arange_np(2, 3, 4)
    (x,) = on(device, a)
    assert_close(x.reshape(shape), a.reshape(shape))
    assert_close(x.reshape(*shape), a.reshape(shape))


def test_reshape_of_non_contiguous_view_copies_in_logical_order(device):
    a = arange_np(3, 4)
    (x,) = on(device, a)
    assert_close(x.T.reshape(12), a.T.reshape(12))
    assert_close(x[:, ::2].reshape(-1), a[:, ::2].reshape(-1))
    assert_close(x.flip(1).reshape(2, 6), a[:, ::-1].reshape(2, 6))


@pytest.mark.parametrize("shape", [(5, 5), (-1, -1), (7,)])
def test_reshape_invalid_raises(device, shape):
    (x,) = on(device, arange_np(3, 4))
    with pytest.raises(RuntimeError):
        x.reshape(shape)


def test_view_of_contiguous(device):
    a = arange_np(2, 6)
    (x,) = on(device, a)
    assert_close(x.view(3, 4), a.reshape(3, 4))
    assert_close(x.view(-1), a.reshape(-1))


def test_view_that_strides_can_express(device):
    a = arange_np(2, 3, 4)
    (x,) = on(device, a)
    t = x.permute(1, 0, 2)  # (3, 2, 4): merging the last two dims is not expressible, splitting is
    assert_close(t.view(3, 2, 2, 2), a.transpose(1, 0, 2).reshape(3, 2, 2, 2))


def test_view_that_needs_a_copy_raises(device):
    (x,) = on(device, arange_np(3, 4))
    with pytest.raises(RuntimeError, match="view"):
        x.T.view(12)


# ----- permute, transpose, T -----


def test_permute(device):
    a = arange_np(2, 3, 4)
    (x,) = on(device, a)
    assert_close(x.permute(2, 0, 1), a.transpose(2, 0, 1))
    assert_close(x.permute((1, 2, 0)), a.transpose(1, 2, 0))
    assert_close(x.permute(-1, 0, 1), a.transpose(2, 0, 1))


def test_permute_invalid_raises(device):
    (x,) = on(device, arange_np(2, 3))
    with pytest.raises(RuntimeError):
        x.permute(0, 0)


def test_transpose_and_T(device):
    a = arange_np(2, 3, 4)
    (x,) = on(device, a)
    assert_close(x.transpose(0, 2), a.swapaxes(0, 2))
    assert_close(x.transpose(-1, -2), a.swapaxes(-1, -2))
    assert_close(x.T, a.T)
    assert_close(x.mT, a.swapaxes(-1, -2))
    assert_close(x[0].t(), a[0].T)


# ----- unsqueeze, squeeze, expand, flatten -----


@pytest.mark.parametrize("dim", [0, 1, 2, -1, -3])
def test_unsqueeze(device, dim):
    a = arange_np(2, 3)
    (x,) = on(device, a)
    assert_close(x.unsqueeze(dim), np.expand_dims(a, dim))


def test_squeeze_all(device):
    a = arange_np(1, 3, 1, 2)
    (x,) = on(device, a)
    assert_close(x.squeeze(), a.squeeze())


def test_squeeze_one_dim(device):
    a = arange_np(1, 3, 1, 2)
    (x,) = on(device, a)
    assert_close(x.squeeze(2), a.squeeze(2))
    assert_close(x.squeeze(-4), a.squeeze(0))
    assert_close(x.squeeze(1), a)  # not of size 1: unchanged, like torch


def test_expand(device):
    a = arange_np(3, 1)
    (x,) = on(device, a)
    assert_close(x.expand(3, 4), np.broadcast_to(a, (3, 4)))
    assert_close(x.expand(2, 3, 4), np.broadcast_to(a, (2, 3, 4)))
    assert_close(x.expand(-1, 5), np.broadcast_to(a, (3, 5)))


def test_expand_non_singleton_raises(device):
    (x,) = on(device, arange_np(3, 2))
    with pytest.raises(RuntimeError):
        x.expand(3, 4)


def test_flatten(device):
    a = arange_np(2, 3, 4, 5)
    (x,) = on(device, a)
    assert_close(x.flatten(), a.reshape(-1))
    assert_close(x.flatten(1), a.reshape(2, -1))
    assert_close(x.flatten(1, 2), a.reshape(2, 12, 5))
    assert_close(x.flatten(-2), a.reshape(2, 3, 20))
    assert_close(x.T.flatten(), a.T.reshape(-1))


# ----- flip -----


@pytest.mark.parametrize("dims", [0, 1, (0, 2), (-1,)])
def test_flip(device, dims):
    a = arange_np(2, 3, 4)
    (x,) = on(device, a)
    assert_close(x.flip(dims), np.flip(a, dims))


def test_flip_of_slice(device):
    a = arange_np(5, 6)
    (x,) = on(device, a)
    assert_close(x[1:4, ::2].flip((0, 1)), a[1:4, ::2][::-1, ::-1])


# ----- basic indexing -----

BASIC_KEYS = [
    pytest.param(lambda x: x[1:, ::2, None, -1], id="slice_step_None_negint"),
    pytest.param(lambda x: x[..., 0], id="ellipsis_int"),
    pytest.param(lambda x: x[-1], id="negative_int"),
    pytest.param(lambda x: x[1, 2, 3], id="all_ints"),
    pytest.param(lambda x: x[:, 1:3], id="middle_slice"),
    pytest.param(lambda x: x[None, ..., None], id="None_ellipsis_None"),
    pytest.param(lambda x: x[::1, -3:-1, 1::2], id="negative_bounds_and_offset_steps"),
    pytest.param(lambda x: x[0, ..., 1:], id="int_ellipsis_slice"),
    pytest.param(lambda x: x[:, 5:], id="empty_slice"),
    pytest.param(lambda x: x[:, 1:100], id="slice_past_end"),
]


@pytest.mark.parametrize("key", BASIC_KEYS)
def test_basic_indexing(device, key):
    a = arange_np(3, 4, 5)
    (x,) = on(device, a)
    assert_close(key(x), key(a))


def test_indexing_a_view(device):
    a = arange_np(4, 6)
    (x,) = on(device, a)
    assert_close(x.T[1:, ::2][2], a.T[1:, ::2][2])


@pytest.mark.parametrize("key", [5, -6, (0, 7)], ids=["pos", "neg", "second_dim"])
def test_out_of_range_int_index_raises(device, key):
    (x,) = on(device, arange_np(5, 7))
    with pytest.raises(IndexError):
        x[key]


def test_too_many_indices_raises(device):
    (x,) = on(device, arange_np(2, 2))
    with pytest.raises(IndexError):
        x[0, 0, 0]


# ----- contiguous -----


def test_contiguous(device):
    a = arange_np(3, 4)
    (x,) = on(device, a)
    c = x.T.contiguous()
    assert_close(c, a.T)
    assert c.lazydata.view.is_contiguous


def test_contiguous_of_contiguous_is_no_copy(device):
    (x,) = on(device, arange_np(3, 4))
    x.realize()
    assert x.contiguous().lazydata.base is x.lazydata.base


# ----- zero-copy views -----

ZERO_COPY = [
    pytest.param(lambda x: x.T, id="T"),
    pytest.param(lambda x: x.permute(1, 0), id="permute"),
    pytest.param(lambda x: x.reshape(4, 3), id="reshape"),
    pytest.param(lambda x: x.view(2, 6), id="view"),
    pytest.param(lambda x: x.unsqueeze(1), id="unsqueeze"),
    pytest.param(lambda x: x[:1].expand(5, 4), id="expand"),
    pytest.param(lambda x: x.flip(0), id="flip"),
    pytest.param(lambda x: x[1:, ::2], id="slice"),
    pytest.param(lambda x: x[-1], id="int_index"),
    pytest.param(lambda x: x.T.flip(1)[1:], id="composed"),
    pytest.param(lambda x: x.split(2, 1)[1], id="split"),
]


@pytest.mark.parametrize("fn", ZERO_COPY)
def test_movement_is_zero_copy(device, fn):
    (x,) = on(device, arange_np(3, 4))
    x.realize()
    assert fn(x).lazydata.base is x.lazydata.base


def test_reshape_of_transposed_is_not_a_view_of_the_base(device):
    (x,) = on(device, arange_np(3, 4))
    x.realize()
    assert x.T.reshape(12).lazydata.base is not x.lazydata.base


# ----- cat and stack -----


@pytest.mark.parametrize("dim", [0, 1, 2, -1])
def test_cat_dims(device, dim):
    arrs = [rand(2, 3, 4, seed=i) for i in range(2)]
    ts = on(device, *arrs)
    assert_close(sg.cat(ts, dim), np.concatenate(arrs, dim))


def test_cat_three_tensors_of_differing_sizes(device):
    arrs = [rand(2, 1, seed=1), rand(2, 4, seed=2), rand(2, 2, seed=3)]
    ts = on(device, *arrs)
    assert_close(sg.cat(ts, 1), np.concatenate(arrs, 1))
    assert_close(sg.cat([t.T for t in ts], 0), np.concatenate([a.T for a in arrs], 0))


def test_cat_of_views(device):
    a, b = rand(3, 4, seed=4), rand(4, 3, seed=5)
    x, y = on(device, a, b)
    assert_close(sg.cat([x.flip(0), y.T, x[:, ::2].expand(3, 2)], 1), np.concatenate([a[::-1], b.T, a[:, ::2]], 1))


def test_cat_promotes_dtype(device):
    (x,) = on(device, np.array([1, 2], np.int64), dtype=sg.int64)
    (y,) = on(device, np.array([0.5], np.float32))
    out = sg.cat([x, y])
    assert out.dtype == sg.float32
    assert_close(out, np.array([1.0, 2.0, 0.5], np.float32))


def test_cat_of_int_tensors_stays_int(device):
    x, y = on(device, np.array([1, 2], np.int32), np.array([-3], np.int32), dtype=sg.int32)
    assert_close(sg.cat([x, y]), np.array([1, 2, -3], np.int32))


def test_cat_mismatched_sizes_raise(device):
    x, y = on(device, rand(2, 3), rand(3, 3))
    with pytest.raises(RuntimeError, match="tensor number 1"):
        sg.cat([x, y], 1)


@pytest.mark.parametrize("dim", [0, 1, 2, -1])
def test_stack(device, dim):
    arrs = [rand(2, 3, seed=i) for i in range(3)]
    ts = on(device, *arrs)
    assert_close(sg.stack(ts, dim), np.stack(arrs, dim))


def test_stack_mismatched_shapes_raise(device):
    x, y = on(device, rand(2, 3), rand(3, 2))
    with pytest.raises(RuntimeError):
        sg.stack([x, y])


# ----- chunk, split, narrow -----


def test_chunk_uneven(device):
    a = arange_np(7, 2)
    (x,) = on(device, a)
    parts = x.chunk(3)
    assert [p.shape for p in parts] == [(3, 2), (3, 2), (1, 2)]
    for p, e in zip(parts, [a[:3], a[3:6], a[6:]]):
        assert_close(p, e)


def test_chunk_more_chunks_than_elements(device):
    a = arange_np(2, 3)
    (x,) = on(device, a)
    parts = sg.chunk(x, 5, 1)
    assert [p.shape for p in parts] == [(2, 1)] * 3


def test_split_int(device):
    a = arange_np(3, 5)
    (x,) = on(device, a)
    parts = x.split(2, dim=1)
    assert [p.shape for p in parts] == [(3, 2), (3, 2), (3, 1)]
    for p, e in zip(parts, np.split(a, [2, 4], axis=1)):
        assert_close(p, e)


def test_split_list(device):
    a = arange_np(6, 2)
    (x,) = on(device, a)
    parts = x.split([1, 0, 3, 2])
    assert [p.shape for p in parts] == [(1, 2), (0, 2), (3, 2), (2, 2)]
    for p, e in zip(parts, np.split(a, [1, 1, 4], axis=0)):
        assert_close(p, e)


def test_split_list_wrong_total_raises(device):
    (x,) = on(device, arange_np(6))
    with pytest.raises(RuntimeError):
        x.split([2, 2])


def test_narrow(device):
    a = arange_np(4, 5)
    (x,) = on(device, a)
    assert_close(x.narrow(1, 1, 3), a[:, 1:4])
    assert_close(x.narrow(0, -2, 2), a[-2:])


# ----- pad -----


def test_pad_last_dim(device):
    a = arange_np(2, 3)
    (x,) = on(device, a)
    assert_close(F.pad(x, (1, 2)), np.pad(a, ((0, 0), (1, 2))))


def test_pad_torch_argument_order_last_dim_first(device):
    a = arange_np(2, 3, 4)
    (x,) = on(device, a)
    assert_close(F.pad(x, (1, 0, 0, 2)), np.pad(a, ((0, 0), (0, 2), (1, 0))))
    assert_close(F.pad(x, (0, 1, 2, 0, 1, 1)), np.pad(a, ((1, 1), (2, 0), (0, 1))))


def test_pad_value(device):
    a = arange_np(2, 2)
    (x,) = on(device, a)
    assert_close(F.pad(x, (1, 1, 1, 0), value=-7.5), np.pad(a, ((1, 0), (1, 1)), constant_values=-7.5))


def test_pad_negative_crops(device):
    a = arange_np(4, 5)
    (x,) = on(device, a)
    assert_close(F.pad(x, (-1, 2, 1, -2)), np.pad(a[:2, 1:], ((1, 0), (0, 2))))
    assert_close(F.pad(x, (-2, -1)), a[:, 2:4])


def test_pad_of_view(device):
    a = arange_np(3, 4)
    (x,) = on(device, a)
    assert_close(F.pad(x.T[::2], (1, 1)), np.pad(a.T[::2], ((0, 0), (1, 1))))


def test_pad_odd_length_raises(device):
    (x,) = on(device, arange_np(2, 2))
    with pytest.raises(RuntimeError):
        F.pad(x, (1, 1, 1))


# ----- integer-tensor indexing (embedding lookup) -----


def test_index_rows_with_1d_index(device):
    w = rand(10, 4, seed=6)
    (x,) = on(device, w)
    idx = np.array([3, 0, 9, 3], np.int64)
    assert_close(x[sg.tensor(idx, device=device)], w[idx])


def test_index_rows_with_2d_index(device):
    w = rand(10, 4, seed=7)
    (x,) = on(device, w)
    idx = np.array([[1, 2, 3], [9, 9, 0]], np.int64)
    out = x[sg.tensor(idx, device=device)]
    assert out.shape == (2, 3, 4)
    assert_close(out, w[idx])


def test_index_rows_with_negative_indices(device):
    w = rand(6, 3, seed=8)
    (x,) = on(device, w)
    idx = np.array([-1, 0, -6, 2], np.int64)
    assert_close(x[sg.tensor(idx, device=device)], w[idx])


def test_index_rows_with_int32_index_and_list(device):
    w = rand(5, 2, seed=9)
    (x,) = on(device, w)
    assert_close(x[sg.tensor(np.array([4, 1], np.int32), device=device)], w[[4, 1]])
    assert_close(x[[2, 2, 0]], w[[2, 2, 0]])


def test_index_along_a_later_dim(device):
    w = rand(3, 5, 2, seed=10)
    (x,) = on(device, w)
    idx = np.array([4, 0], np.int64)
    assert_close(x[:, sg.tensor(idx, device=device)], w[:, idx])
    assert_close(x[1:, sg.tensor(idx, device=device), 0], w[1:, idx, 0])


def test_index_with_computed_index(device):
    w = rand(8, 3, seed=11)
    (x,) = on(device, w)
    idx = sg.tensor(np.array([1, 2, 3], np.int64), device=device) * 2  # not yet realized
    assert_close(x[idx], w[[2, 4, 6]])


def test_index_rows_of_a_view(device):
    w = rand(4, 6, seed=12)
    (x,) = on(device, w)
    idx = np.array([5, 0, 2], np.int64)
    assert_close(x.T[sg.tensor(idx, device=device)], w.T[idx])


@pytest.mark.parametrize("bad", [10, -11], ids=["too_big", "too_negative"])
def test_index_rows_out_of_range_raises(device, bad):
    (x,) = on(device, rand(10, 4))
    idx = sg.tensor(np.array([0, bad], np.int64), device=device)
    with pytest.raises(IndexError):
        x[idx]


def test_index_with_float_tensor_raises(device):
    (x,) = on(device, rand(3, 2))
    with pytest.raises(IndexError):
        x[sg.tensor([0.0, 1.0], device=device)]


# ----- gather -----


def test_gather_dim0(device):
    a = rand(4, 3, seed=13)
    (x,) = on(device, a)
    idx = np.array([[3, 0, 1], [2, 2, 0]], np.int64)
    assert_close(x.gather(0, sg.tensor(idx, device=device)), np.take_along_axis(a, idx, 0))


def test_gather_dim1(device):
    a = rand(3, 5, seed=14)
    (x,) = on(device, a)
    idx = np.array([[4, 0], [1, 1], [0, 3]], np.int64)
    assert_close(sg.gather(x, 1, sg.tensor(idx, device=device)), np.take_along_axis(a, idx, 1))


def test_gather_index_smaller_than_src_on_other_dims(device):
    a = rand(4, 5, seed=15)
    (x,) = on(device, a)
    idx = np.array([[4, 0, 2], [1, 3, 3]], np.int64)  # (2, 3): fewer rows and used columns
    expected = np.take_along_axis(a[:2, :], idx, 1)
    assert_close(x.gather(1, sg.tensor(idx, device=device)), expected)
    idx0 = np.array([[3, 0], [1, 2], [0, 0]], np.int64)  # (3, 2) along dim 0 of (4, 5)
    assert_close(x.gather(0, sg.tensor(idx0, device=device)), np.take_along_axis(a[:, :2], idx0, 0))


def test_gather_of_non_contiguous_source(device):
    a = rand(5, 4, seed=16)
    (x,) = on(device, a)
    idx = np.array([[0, 4], [3, 1], [2, 2], [4, 0]], np.int64)
    assert_close(x.T.gather(1, sg.tensor(idx, device=device)), np.take_along_axis(a.T, idx, 1))


@pytest.mark.parametrize("bad", [4, -5])
def test_gather_out_of_range_raises(device, bad):
    (x,) = on(device, rand(4, 3))
    with pytest.raises(IndexError):
        x.gather(0, sg.tensor(np.array([[0, bad, 1]], np.int64), device=device))


def test_gather_negative_index_raises_when_called(device):
    (x,) = on(device, rand(4, 3))
    with pytest.raises(IndexError):
        x.gather(0, sg.tensor(np.array([[0, -1, 1]], np.int64), device=device))


def test_gather_wrong_rank_raises(device):
    (x,) = on(device, rand(4, 3))
    with pytest.raises(RuntimeError):
        x.gather(0, sg.tensor(np.array([0, 1], np.int64), device=device))


def test_gather_float_index_raises(device):
    (x,) = on(device, rand(4, 3))
    with pytest.raises(RuntimeError):
        x.gather(0, sg.tensor(np.zeros((1, 3), np.float32), device=device))
