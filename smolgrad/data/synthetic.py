"""Toy data sets generated with NumPy (scikit-learn's make_moons)."""

from __future__ import annotations

import numbers

import numpy as np


def _random_state(random_state) -> np.random.RandomState:
    """scikit-learn's check_random_state: None -> NumPy's global RandomState,
    int -> a new RandomState(seed), RandomState -> itself."""
    if random_state is None:
        return np.random.mtrand._rand
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return np.random.RandomState(int(random_state))
    if isinstance(random_state, np.random.RandomState):
        return random_state
    raise ValueError(f"random_state must be None, an int or a numpy.random.RandomState, got {random_state!r}")


def make_moons(n_samples=100, *, shuffle: bool = True, noise: float | None = None, random_state=None):
    """Two interleaving half circles, with scikit-learn's semantics and values.

    n_samples: the total number of points (split as evenly as possible, the outer moon
    getting the smaller half), or a pair (n_outer, n_inner). Returns X, float64 of
    shape (n_samples, 2), and y, int64 labels 0 (outer moon) and 1 (inner moon). With
    the same random_state the result equals sklearn.datasets.make_moons's."""
    if isinstance(n_samples, numbers.Integral):
        if n_samples < 0:
            raise ValueError(f"make_moons: n_samples must be non-negative, got {n_samples}")
        n_out = n_samples // 2
        n_in = n_samples - n_out
    else:
        try:
            n_out, n_in = (int(n) for n in n_samples)
        except (TypeError, ValueError):
            raise ValueError(
                f"make_moons: n_samples must be an int or a pair (n_outer, n_inner), got {n_samples!r}"
            ) from None
    rng = _random_state(random_state)

    outer = np.linspace(0, np.pi, n_out)
    inner = np.linspace(0, np.pi, n_in)
    X = np.vstack([
        np.append(np.cos(outer), 1 - np.cos(inner)),
        np.append(np.sin(outer), 1 - np.sin(inner) - 0.5),
    ]).T
    y = np.hstack([np.zeros(n_out, dtype=np.int64), np.ones(n_in, dtype=np.int64)])
    if shuffle:
        order = np.arange(len(y))
        rng.shuffle(order)
        X, y = X[order], y[order]
    if noise is not None:
        X = X + rng.normal(scale=noise, size=X.shape)
    return X, y
