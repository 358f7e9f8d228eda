"""scatter_reduce: sum, mean, amax, amin, with and without self, against a NumPy loop."""

from __future__ import annotations

import numpy as np
import pytest

import smolgrad as sg

from helpers import assert_close, gradcheck


def reference(x, dim, index, src, reduce, include_self):
    out = x.astype(np.float64).copy()
    sent: dict = {}
    for pos in np.ndindex(*index.shape):
        target = list(pos)
        target[dim] = index[pos]
        sent.setdefault(tuple(target), []).append(src[pos])
    for target, values in sent.items():
        values = ([x[target]] if include_self else []) + values
        out[target] = {"sum": np.sum, "mean": np.mean, "amax": np.max, "amin": np.min}[reduce](values)
    return out


X = np.arange(12, dtype=np.float64).reshape(3, 4) / 3 - 1
SRC = np.random.default_rng(0).standard_normal((3, 3))
INDEX = np.array([[0, 3, 0], [1, 1, 2], [3, 3, 3]])


@pytest.mark.parametrize("reduce", ["sum", "mean", "amax", "amin"])
@pytest.mark.parametrize("include_self", [True, False])
def test_scatter_reduce_matches_a_loop(device, reduce, include_self):
    x, src = (sg.tensor(a, dtype=sg.float32, device=device) for a in (X, SRC))
    out = x.scatter_reduce(1, sg.tensor(INDEX, device=device), src, reduce, include_self=include_self)
    assert_close(out, reference(X, 1, INDEX, SRC, reduce, include_self).astype(np.float32), rtol=1e-5, atol=1e-6)
    assert_close(x, X.astype(np.float32))  # out of place


@pytest.mark.parametrize("reduce", ["sum", "mean", "amax", "amin"])
def test_scatter_reduce_gradients(reduce):
    index = sg.tensor(INDEX)
    gradcheck(lambda x, s: x.scatter_reduce(1, index, s, reduce) * 1.5, X, SRC)
    gradcheck(lambda x, s: sg.scatter_reduce(x, 1, index, s, reduce, include_self=False), X, SRC)


def test_scatter_reduce_in_place_and_errors():
    x = sg.zeros(4)
    x.scatter_reduce_(0, sg.tensor([1, 1, 3]), sg.tensor([2.0, 5.0, -1.0]), "amax", include_self=False)
    assert x.tolist() == [0.0, 5.0, 0.0, -1.0] and x._version == 1
    with pytest.raises(RuntimeError, match="reduce must be one of"):
        x.scatter_reduce(0, sg.tensor([0]), sg.tensor([1.0]), "max")
    with pytest.raises(RuntimeError, match="out of bounds"):
        x.scatter_reduce(0, sg.tensor([4]), sg.tensor([1.0]), "sum")
