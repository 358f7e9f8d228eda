"""Sorting and sampling of issue 12: sort, argsort, topk, multinomial and Generator; and the
data-dependent ops: nonzero, argwhere, masked_select, unique, bincount, histc."""

from __future__ import annotations

import numpy as np
import pytest

import smolgrad as sg
from helpers import assert_close, gradcheck, on, rand

TIES = np.array([[3.0, 1.0, 3.0, np.nan, -0.0, 0.0, 1.0], [2.0, 2.0, -5.0, 7.0, 2.0, np.inf, -np.inf]], np.float32)


def _stable_desc(a, axis=-1):
    """numpy reference: descending, ties in original order, nan first (as torch)."""
    key = np.where(np.isnan(a), np.inf, a)
    rank_nan = np.isnan(a)
    return np.lexsort((np.broadcast_to(np.arange(a.shape[axis]), a.shape), -key, ~rank_nan), axis=axis)


def test_sort_ascending_and_descending_are_stable(device):
    (t,) = on(device, TIES)
    values, indices = t.sort()
    expected = np.argsort(TIES, axis=-1, kind="stable")
    assert_close(indices, expected)
    assert_close(values, np.take_along_axis(TIES, expected, -1))
    v, i = sg.sort(t, dim=1, descending=True)
    expected = np.stack([_stable_desc(row) for row in TIES])
    assert_close(i, expected)
    assert_close(v, np.take_along_axis(TIES, expected, -1))
    assert_close(t.argsort(dim=0, descending=True), np.stack([_stable_desc(col) for col in TIES.T]).T)


def test_sort_noncontiguous_integer_and_0d(device):
    a = np.array([[5, 1, 4], [2, 8, 2]])
    t = sg.tensor(a, device=device)
    assert_close(t.T.sort(dim=1).values, np.sort(a.T, 1))
    assert_close(sg.argsort(t, dim=0), np.argsort(a, 0, kind="stable"))
    v, i = sg.tensor(2.5, device=device).sort()
    assert_close(v, np.float32(2.5))
    assert_close(i, np.int64(0))


def test_sort_and_topk_gradients_go_to_the_picked_elements():
    a = rand(3, 5, seed=1)
    gradcheck(lambda t: t.sort(1, descending=True).values, a)
    gradcheck(lambda t: t.topk(2, dim=0).values * 3, a)


@pytest.mark.parametrize("largest", [True, False])
def test_topk_matches_sorted_prefix(largest, device):
    (t,) = on(device, TIES)
    v, i = t.topk(3, largest=largest)
    order = np.stack([_stable_desc(r) for r in TIES]) if largest else np.argsort(TIES, -1, kind="stable")
    assert_close(i, order[:, :3])
    assert_close(v, np.take_along_axis(TIES, order[:, :3], -1))
    a = rand(4, 6, seed=2)
    (x,) = on(device, a)
    values = sg.topk(x, 2, dim=0).values
    assert_close(values, -np.sort(-a, 0)[:2])
    assert x.topk(0).values.shape == (4, 0)


def test_topk_bad_k():
    with pytest.raises(RuntimeError, match="topk.*out of range"):
        sg.ones(2, 3).topk(4)
    with pytest.raises(IndexError, match="topk"):
        sg.ones(2, 3).topk(1, dim=2)


# ----- multinomial and Generator -----

PROBS = np.array([0.1, 0.0, 0.6, 0.3], np.float32)


def _frequencies(samples, n):
    return np.bincount(samples.reshape(-1), minlength=n) / samples.size


def test_multinomial_with_replacement_frequencies(device):
    """20000 draws: each frequency within 0.015 of its probability (> 4 standard deviations)."""
    sg.manual_seed(0)
    p = sg.tensor(PROBS * 5, device=device)  # unnormalised weights are fine
    s = p.multinomial(20000, replacement=True)
    assert s.dtype == sg.int64 and s.shape == (20000,)
    freq = _frequencies(s.numpy(), 4)
    assert freq[1] == 0  # a zero-probability category is never drawn
    np.testing.assert_allclose(freq, PROBS, atol=0.015)


def test_multinomial_rows_and_without_replacement(device):
    rows = sg.tensor(np.stack([PROBS, PROBS[::-1].copy()]), device=device)
    s = sg.multinomial(rows, 3).numpy()  # without replacement: distinct, all with p > 0
    assert s.shape == (2, 3)
    for r, row in zip(s, (PROBS, PROBS[::-1])):
        assert len(set(r)) == 3 and (row[r] > 0).all()


def test_multinomial_without_replacement_first_draw_frequencies():
    """The first of two draws without replacement follows p (tolerance 0.02 over 4000 rows)."""
    sg.manual_seed(1)
    p = sg.tensor(np.tile(PROBS, (4000, 1)))
    s = p.multinomial(2).numpy()
    np.testing.assert_allclose(_frequencies(s[:, 0], 4), PROBS, atol=0.02)
    # the second draw: P(second = j) = sum_i p_i p_j / (1 - p_i)
    second = [sum(PROBS[i] * PROBS[j] / (1 - PROBS[i]) for i in range(4) if i != j) for j in range(4)]
    np.testing.assert_allclose(_frequencies(s[:, 1], 4), second, atol=0.02)


def test_multinomial_is_reproducible_from_seeds_and_generators():
    p = sg.tensor(PROBS)
    sg.manual_seed(5)
    a = p.multinomial(50, True).numpy()
    sg.manual_seed(5)
    b = p.multinomial(50, True).numpy()
    np.testing.assert_array_equal(a, b)
    g = sg.Generator().manual_seed(7)
    c = p.multinomial(50, True, generator=g).numpy()
    d = p.multinomial(50, True, generator=sg.Generator().manual_seed(7)).numpy()
    np.testing.assert_array_equal(c, d)
    assert g.initial_seed() == 7
    state = g.get_state()
    e = p.multinomial(20, True, generator=g).numpy()
    g.set_state(state)
    np.testing.assert_array_equal(p.multinomial(20, True, generator=g).numpy(), e)
    s = g.seed()
    assert g.initial_seed() == s and sg.manual_seed(3).initial_seed() == sg.initial_seed() == 3


def test_multinomial_bad_inputs():
    with pytest.raises(RuntimeError, match="inf.*nan.*< 0"):
        sg.tensor([0.5, -0.1]).multinomial(1)
    with pytest.raises(RuntimeError, match="inf.*nan"):
        sg.tensor([0.5, float("nan")]).multinomial(1)
    with pytest.raises(RuntimeError, match="sum of probabilities"):
        sg.tensor([[0.5, 0.5], [0.0, 0.0]]).multinomial(1)
    with pytest.raises(RuntimeError, match="without replacement"):
        sg.tensor([0.5, 0.5]).multinomial(3)
    with pytest.raises(RuntimeError, match="not enough categories"):
        sg.tensor([0.5, 0.0, 0.5]).multinomial(3)
    with pytest.raises(RuntimeError, match="1 or 2 dim"):
        sg.ones(2, 2, 2).multinomial(1)
    with pytest.raises(RuntimeError, match="floating point"):
        sg.tensor([1, 2]).multinomial(1)
    with pytest.raises(TypeError, match="Generator"):
        sg.tensor([0.5, 0.5]).multinomial(1, generator=np.random.default_rng(0))


# ----- data-dependent shapes -----


def test_nonzero_and_argwhere(device):
    a = np.array([[0, 1.5, 0], [2, 0, -1]], np.float32)
    (t,) = on(device, a)
    assert_close(t.nonzero(), np.argwhere(a))
    assert_close(sg.argwhere(t.T), np.argwhere(a.T))
    rows, cols = t.nonzero(as_tuple=True)
    assert_close(rows, np.nonzero(a)[0])
    assert_close(cols, np.nonzero(a)[1])
    assert sg.zeros(3, device=device).nonzero().shape == (0, 1)


def test_masked_select_broadcasts_and_is_differentiable(device):
    a = rand(3, 4, seed=3)
    mask = np.array([True, False, True, True])
    (t,) = on(device, a)
    m = sg.tensor(mask, device=device)
    assert_close(t.masked_select(m), a[np.broadcast_to(mask, a.shape)])
    assert_close(sg.masked_select(t.T, t.T > 0), a.T[a.T > 0])
    gradcheck(lambda x: x.masked_select(sg.tensor(mask)) ** 2, a)
    with pytest.raises(RuntimeError, match="masked_select.*bool"):
        t.masked_select(sg.tensor([1, 0, 1, 1], device=device))
    with pytest.raises(RuntimeError, match="masked_select"):
        t.masked_select(sg.tensor([True, False], device=device))


def test_unique(device):
    a = np.array([[3, 1, 3], [2, 1, 7]])
    t = sg.tensor(a, device=device)
    assert_close(t.unique(), np.unique(a))
    values, inverse, counts = sg.unique(t, return_inverse=True, return_counts=True)
    u, inv, cnt = np.unique(a, return_inverse=True, return_counts=True)
    assert_close(values, u)
    assert_close(inverse, inv.reshape(a.shape))
    assert_close(counts, cnt)
    rows = sg.tensor([[1, 2], [0, 5], [1, 2]], device=device)
    assert_close(rows.unique(dim=0), np.array([[0, 5], [1, 2]]))
    assert_close(sg.tensor([2.5, -1.0, 2.5], device=device).unique(), np.array([-1.0, 2.5], np.float32))


def test_bincount(device):
    x = sg.tensor([1, 3, 1, 0, 3, 3], device=device)
    assert_close(x.bincount(), np.bincount([1, 3, 1, 0, 3, 3]))
    assert_close(sg.bincount(x, minlength=6), np.bincount([1, 3, 1, 0, 3, 3], minlength=6))
    w = np.array([0.5, 1.0, 2.0, 0.25, 1.0, 3.0], np.float32)
    assert_close(x.bincount(sg.tensor(w, device=device)), np.bincount([1, 3, 1, 0, 3, 3], w).astype(np.float32))
    assert_close(sg.tensor([], dtype=sg.int64, device=device).bincount(), np.zeros(0, np.int64))
    gradcheck(lambda ww: sg.tensor([1, 3, 1, 0]).bincount(ww) ** 2, np.array([0.5, 1.0, 2.0, 0.25]))
    with pytest.raises(RuntimeError, match="non-negative"):
        sg.tensor([1, -1], device=device).bincount()
    with pytest.raises(RuntimeError, match="bincount.*1-d"):
        sg.tensor([[1]], device=device).bincount()


def test_histc(device):
    a = np.array([0.0, 0.1, 0.5, 0.99, 1.0, 1.5, -0.2, 0.5], np.float32)
    (t,) = on(device, a)
    assert_close(t.histc(bins=4, min=0, max=1), np.histogram(a, bins=4, range=(0, 1))[0].astype(np.float32))
    assert_close(sg.histc(t, bins=5), np.histogram(a, bins=5)[0].astype(np.float32))
    with pytest.raises(RuntimeError, match="histc"):
        sg.tensor([1, 2], device=device).histc()
    with pytest.raises(RuntimeError, match="larger than min"):
        t.histc(bins=3, min=2, max=1)
