"""func.vmap: one batched graph, equal to a Python loop over the slices."""

from __future__ import annotations

import numpy as np
import pytest

import smolgrad as sg
from smolgrad import func
from smolgrad.nn import functional as F

from helpers import assert_close, rand


def loop(f, *args, in_dims=0):
    dims = in_dims if isinstance(in_dims, tuple) else (in_dims,) * len(args)
    n = next(a.shape[d] for a, d in zip(args, dims) if d is not None)
    outs = []
    for i in range(n):
        sliced = [a if d is None else a.select(d, i) if hasattr(a, "select") else a[(slice(None),) * d + (i,)] for a, d in zip(args, dims)]
        outs.append(f(*sliced).numpy())
    return np.stack(outs)


W = rand(3, 4, seed=1)
FUNCTIONS = {
    "elementwise": lambda v: (v * 2.0 - 1.0).exp() / (1.0 + v * v),
    "reduction": lambda v: v.sum() + v.amax() * v.mean(),
    "matmul_with_a_weight": lambda v: (v @ sg.tensor(W, device=v.device)).tanh(),
    "views": lambda v: v.flip(0)[1:] * v[:-1] + v.reshape(3, 1).expand(3, 2).sum(1)[1:],
    "softmax": lambda v: v.softmax(0) * v.log_softmax(0),
    "layer_norm": lambda v: F.layer_norm(v, (3,)),
    "gather": lambda v: v[sg.tensor([2, 0, 0], device=v.device)] * v,
    "pad": lambda v: F.pad(v, (1, 2), value=0.5),
    "where": lambda v: sg.where(v > 0, v, -v * 0.1),
    "cross_entropy": lambda v: F.cross_entropy(v.reshape(1, 3), sg.tensor([1], device=v.device)),
}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_vmap_equals_a_loop_over_slices(name, device):
    x = sg.tensor(rand(5, 3, seed=0), device=device)
    f = FUNCTIONS[name]
    assert_close(func.vmap(f)(x), loop(f, x), rtol=1e-5, atol=1e-6)


def test_vmap_runs_one_batched_graph_not_a_loop(device):
    x = sg.tensor(rand(64, 3), device=device)
    f = FUNCTIONS["matmul_with_a_weight"]
    sg.realize(f(x[0]))  # the weight's upload, and compiling the per-example kernels
    sg.reset_stats()
    sg.realize(f(x[0]))
    per_example = sg.stats()["dispatches"]
    sg.reset_stats()
    sg.realize(func.vmap(f)(x))
    assert sg.stats()["dispatches"] <= per_example + 1  # (+1: the input made contiguous)


def test_vmap_in_dims_out_dims_and_unbatched_arguments(device):
    x = sg.tensor(rand(3, 5), device=device)
    w = sg.tensor(rand(3), device=device)
    out = func.vmap(lambda a, b: a * b, in_dims=(1, None), out_dims=1)(x, w)
    assert out.shape == (3, 5)
    assert_close(out, x.numpy() * w.numpy()[:, None], rtol=1e-6, atol=1e-6)
    pair = func.vmap(lambda a: (a.sum(), a * 2))(x)
    assert isinstance(pair, tuple) and pair[0].shape == (3,) and pair[1].shape == (3, 5)


def test_vmap_of_grad_gives_per_example_gradients(device):
    w = sg.tensor(rand(3, 2, seed=2), device=device)
    xs = sg.tensor(rand(6, 3, seed=3), device=device)
    loss = lambda wt, v: ((v @ wt).tanh() ** 2).sum()
    per_example = func.vmap(func.grad(loss), in_dims=(None, 0))(w, xs)
    assert per_example.shape == (6, 3, 2)
    assert_close(per_example, loop(lambda v: func.grad(loss)(w, v), xs), rtol=1e-5, atol=1e-6)


def test_nested_vmap(device):
    a, b = sg.tensor(rand(2, 3, 4), device=device), sg.tensor(rand(3, 4), device=device)
    out = func.vmap(func.vmap(lambda x, y: (x * y).sum()), in_dims=(0, None))(a, b)
    assert_close(out, (a.numpy() * b.numpy()).sum(-1), rtol=1e-5, atol=1e-6)


def test_vmap_refuses_what_it_cannot_batch():
    x = sg.randn(4, 3)
    with pytest.raises(RuntimeError, match="read a value"):
        func.vmap(lambda v: v * v.sum().item())(x)
    with pytest.raises(RuntimeError, match="autograd history"):
        func.vmap(lambda v: v * 2)(sg.randn(4, 3, requires_grad=True))
    with pytest.raises(RuntimeError, match="requires grad"):
        w = sg.randn(3, requires_grad=True)
        func.vmap(lambda v: v * w)(x)
    with pytest.raises(ValueError, match="same size"):
        func.vmap(lambda a, b: a + b)(x, sg.randn(5, 3))
    with pytest.raises(ValueError, match="not a Tensor"):
        func.vmap(lambda a, n: a * n)(x, 3)
    assert func.vmap(lambda a, n: a * n, in_dims=(0, None))(x, 3).shape == (4, 3)
