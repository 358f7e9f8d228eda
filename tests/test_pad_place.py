"""Zero pads added together become one PAD placing several sources (cat, and the gradient
of slices of one tensor), and a permuted copy of a PAD becomes a PAD of the permuted
sources (see lazy._placed_sum and lazy._permuted_pad): values, kernels and gradients."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import smolgrad as sg
from smolgrad import func
from smolgrad.lazy import MAX_PLACED
from smolgrad.ops import Op
from helpers import assert_close, gradcheck, rand


def count(device, *tensors) -> dict:
    sg.reset_stats(device)
    sg.realize(*tensors)
    return sg.stats(device)


def node(t: sg.Tensor):
    return t.lazydata.base


@pytest.fixture(autouse=True)
def fused(monkeypatch):
    monkeypatch.setenv("SMOLGRAD_FUSION", "1")


def test_cat_is_one_pad_of_its_sources(device):
    arrays = [rand(2, 3, seed=0), rand(2, 1, seed=1), rand(2, 4, seed=2)]
    ts = [sg.tensor(a, device=device) for a in arrays]
    out = sg.cat(ts, 1)
    n = node(out)
    assert n.op is Op.PAD and len(n.srcs) == 3
    assert count(device, out)["dispatches"] == 1
    assert_close(out, np.concatenate(arrays, 1), rtol=0, atol=0)


def test_cat_keeps_negative_zero_and_nan(device):
    a = np.array([[-0.0, 1.0]], np.float32)
    b = np.array([[np.nan, -0.0, 2.0]], np.float32)
    got = sg.cat([sg.tensor(a, device=device), sg.tensor(b, device=device)], 1).numpy()
    want = np.concatenate([a, b], 1)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [sg.int32, sg.float32])
def test_cat_of_many_tensors_and_dims(device, dtype):
    rng = np.random.default_rng(0)
    for dim in (0, 1, 2):
        arrays = [rng.integers(-5, 5, (2, 3, 4)).astype(dtype.np) for _ in range(MAX_PLACED + 3)]
        got = sg.cat([sg.tensor(a, device=device) for a in arrays], dim)
        assert_close(got, np.concatenate(arrays, dim), rtol=0, atol=0)


def test_stack_of_views(device):
    x = rand(3, 4, seed=3)
    t = sg.tensor(x, device=device)
    got = sg.stack([t.T, t.flip(0).T, t.flip(1).T], 1)
    assert_close(got, np.stack([x.T, x[::-1].T, x[:, ::-1].T], 1), rtol=0, atol=0)


def test_overlapping_pads_are_added(device):
    x, y = rand(3, seed=4), rand(3, seed=5)
    a = sg.tensor(x, device=device).pad([(0, 2)])
    b = sg.tensor(y, device=device).pad([(1, 1)])
    out = a + b
    assert node(out).op is Op.ADD
    want = np.pad(x, (0, 2)) + np.pad(y, (1, 1))
    assert_close(out, want)


def test_pads_of_another_value_are_added(device):
    x, y = rand(2, seed=6), rand(2, seed=7)
    a = sg.tensor(x, device=device).pad([(0, 2)], value=1.0)
    b = sg.tensor(y, device=device).pad([(2, 0)])
    out = a + b
    assert node(out).op is Op.ADD
    assert_close(out, np.pad(x, (0, 2), constant_values=1.0) + np.pad(y, (2, 0)))


def test_pads_that_leave_gaps_are_placed_with_zeros_between(device):
    x, y = rand(2, 2, seed=8), rand(1, 3, seed=9)
    a = sg.tensor(x, device=device).pad([(0, 3), (1, 2)])
    b = sg.tensor(y, device=device).pad([(4, 0), (2, 0)])
    out = a + b
    assert node(out).op is Op.PAD
    assert_close(out, np.pad(x, ((0, 3), (1, 2))) + np.pad(y, ((4, 0), (2, 0))), rtol=0, atol=0)


def test_a_realized_pad_is_added_not_recomputed(device):
    x, y = rand(2, seed=10), rand(2, seed=11)
    a = sg.tensor(x, device=device).pad([(0, 2)])
    a.realize()
    out = a + sg.tensor(y, device=device).pad([(2, 0)])
    assert node(out).op is Op.ADD
    assert_close(out, np.concatenate([x, y]))


def test_permuted_copy_of_a_pad_is_a_pad(device):
    x = rand(2, 3, 4, seed=12)
    padded = sg.tensor(x, device=device).pad([(1, 0), (0, 2), (3, 1)])
    out = padded.permute(2, 0, 1).contiguous()
    n = node(out)
    assert n.op is Op.PAD and n.shape == (8, 3, 5)
    want = np.pad(x, ((1, 0), (0, 2), (3, 1)))
    assert_close(out, want.transpose(2, 0, 1), rtol=0, atol=0)
    # a permute with a reshape that strides cannot express copies the same way
    reshaped = padded.permute(1, 0, 2).reshape(5, 24)
    assert node(reshaped).op is Op.PAD
    assert_close(reshaped, want.transpose(1, 0, 2).reshape(5, 24), rtol=0, atol=0)


def test_gradient_of_slices_of_a_permuted_projection(device):
    """The GPT's q, k, v: slices of a permuted qkv projection, whose gradient is one pad
    written in the projection's own layout."""
    B, T, H, d = 2, 3, 2, 4
    x = rand(B, T, 3 * H * d, seed=13)
    w = rand(B, T, H, d, seed=14)
    t = sg.tensor(x, device=device, requires_grad=True)
    qkv = t.reshape(B, T, 3, H, d).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    weights = sg.tensor(w.transpose(0, 2, 1, 3), device=device)
    (q * weights + k * 2 * weights + v * 3 * weights).sum().backward()
    g = np.zeros((B, T, 3, H, d), np.float32)
    for i in range(3):
        g[:, :, i] = (i + 1) * w
    assert_close(t.grad, g.reshape(B, T, 3 * H * d))


def test_cat_gradient_float64():
    gradcheck(lambda a, b, c: sg.cat([a, b.T, c], 0), rand(2, 3, seed=15), rand(3, 1, seed=16), rand(3, 3, seed=17))


def test_unbind_gradient_float64():
    def fn(x):
        a, b, c = x.permute(1, 0, 2).unbind(0)
        return a * 2 + b.exp() - c * b

    gradcheck(fn, rand(2, 3, 4, seed=18))


def test_vmap_of_cat(device):
    x, y = rand(4, 2, seed=19), rand(4, 3, seed=20)
    got = func.vmap(lambda a, b: sg.cat([a, b * 2, a], 0))(sg.tensor(x, device=device), sg.tensor(y, device=device))
    assert_close(got, np.concatenate([x, y * 2, x], 1))


def test_compiled_step_with_cat_matches_eager(device):
    def step(a, b):
        return (sg.cat([a, b], 1) * 2).sum(0)

    compiled = sg.compile(step)
    rng = np.random.default_rng(21)
    for _ in range(4):
        a, b = (sg.tensor(rng.standard_normal(s).astype(np.float32), device=device) for s in ((3, 2), (3, 5)))
        assert_close(compiled(a, b), step(a, b).numpy(), rtol=0, atol=0)


def test_cat_of_many_tensors_places_them_a_group_at_a_time(device):
    arrays = [rand(2, 1 + i % 3, seed=30 + i) for i in range(2 * MAX_PLACED + 1)]
    out = sg.cat([sg.tensor(a, device=device) for a in arrays], 1)
    # three PADs (7, 7 and 1 sources) and one add of the three
    assert count(device, out)["kernels"] == 4
    assert_close(out, np.concatenate(arrays, 1), rtol=0, atol=0)


@st.composite
def pad_sums(draw):
    """A shape, and pads of values of smaller shapes into it (some overlapping, some of
    another value), added in the order given; and a permutation of the sum's dims."""
    rank = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(1, 5)) for _ in range(rank))
    pieces = []
    for _ in range(draw(st.integers(1, MAX_PLACED + 3))):
        size = tuple(draw(st.integers(0, n)) for n in shape)
        lo = tuple(draw(st.integers(0, n - m)) for n, m in zip(shape, size))
        value = draw(st.sampled_from([0.0, 0.0, 0.0, -0.0, 1.5]))
        pieces.append((size, lo, value))
    return shape, pieces, tuple(draw(st.permutations(range(rank))))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=pad_sums(), seed=st.integers(0, 2**16))
def test_sums_of_pads_match_numpy(device, case, seed):
    """Whatever pads are placed together, the sum and a permuted copy of it equal NumPy's
    sum of np.pad (bit for bit but for the sign of a zero, which placing keeps)."""
    shape, pieces, order = case
    rng = np.random.default_rng(seed)
    total = want = None
    for size, lo, value in pieces:
        a = rng.standard_normal(size).astype(np.float32)
        pads = [(l, n - m - l) for n, m, l in zip(shape, size, lo)]
        piece = sg.tensor(a, device=device).pad(pads, value=value)
        padded = np.pad(a, pads, constant_values=value)
        total = piece if total is None else total + piece
        want = padded if want is None else want + padded
    np.testing.assert_allclose(total.numpy(), want, rtol=0, atol=0)
    np.testing.assert_allclose(total.permute(*order).contiguous().numpy(), want.transpose(order), rtol=0, atol=0)


def test_pads_and_cats_of_empty_tensors(device):
    # (an output dim of size 1 makes the shader's index into an empty source a negative constant)
    assert_close(sg.tensor(np.zeros(0, np.float32), device=device).pad([(1, 0)]), np.zeros(1, np.float32))
    empty = sg.tensor(np.zeros((0, 3), np.float32), device=device)
    assert_close(empty.pad([(1, 1), (0, 0)], value=2.0), np.full((2, 3), 2.0, np.float32), rtol=0, atol=0)
    x = rand(2, 3, seed=40)
    assert_close(sg.cat([empty, sg.tensor(x, device=device), empty], 0), x, rtol=0, atol=0)


@st.composite
def slicings(draw):
    """A shape, and slices of it (basic: start, stop, step per dim; some overlapping),
    each with a weight, and whether each is taken before or after a permute."""
    rank = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(1, 5)) for _ in range(rank))
    cuts = []
    for _ in range(draw(st.integers(1, 6))):
        key = []
        for n in shape:
            start = draw(st.integers(0, n - 1))
            stop = draw(st.integers(start + 1, n))
            key.append(slice(start, stop, draw(st.sampled_from([1, 1, 2]))))
        cuts.append((tuple(key), draw(st.sampled_from([1.0, -2.0, 0.5]))))
    return shape, cuts, tuple(draw(st.permutations(range(rank))))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=slicings(), seed=st.integers(0, 2**16))
def test_gradient_of_slices_matches_numpy(device, case, seed):
    """The gradient of a weighted sum of slices (the slices' pads placed or added, then
    copied through a permute) equals NumPy's sum of the weights over each slice."""
    shape, cuts, order = case
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shape).astype(np.float32)
    x = sg.tensor(a, device=device, requires_grad=True)
    xp = x.permute(*order)
    total, want = None, np.zeros(shape, np.float32)
    for key, weight in cuts:
        g = rng.standard_normal(a[key].shape).astype(np.float32)
        term = (x[key] * sg.tensor(g, device=device) * weight).sum()
        total = term if total is None else total + term
        want[key] += g * np.float32(weight)
    # and one read through the permuted view, whose gradient is permuted back
    gp = rng.standard_normal(a.transpose(order).shape).astype(np.float32)
    total = total + (xp * sg.tensor(gp, device=device)).sum()
    want += gp.transpose(np.argsort(order))
    total.backward()
    np.testing.assert_allclose(x.grad.numpy(), want, rtol=1e-5, atol=1e-5)
