"""Gradients of every differentiable op against central finite differences
(float64, numpy device; see helpers.gradcheck)."""

from __future__ import annotations

import numpy as np
import pytest

import smolgrad as sg
import smolgrad.nn.functional as F
from helpers import gradcheck


def r(*shape, low=-1.0, high=1.0, seed=0):
    return np.random.default_rng(seed).uniform(low, high, size=shape)


def distinct(*shape, seed=0):
    """Values with no ties (and gaps >= 0.1), for max/min-style ops."""
    n = int(np.prod(shape))
    vals = np.random.default_rng(seed).permutation(n) * 0.1 - n * 0.05
    return vals.reshape(shape)


def pos(*shape, seed=0):
    return r(*shape, low=0.5, high=2.0, seed=seed)


def idx(values, device="numpy"):
    return sg.tensor(np.asarray(values, np.int64), device=device)


# ----- elementwise binary, with broadcasting -----

BINARY = [
    ("add", lambda a, b: a + b),
    ("sub", lambda a, b: a - b),
    ("mul", lambda a, b: a * b),
    ("div", lambda a, b: a / b),
    ("pow", lambda a, b: a**b),
    ("maximum", lambda a, b: a.maximum(b)),
    ("minimum", lambda a, b: a.minimum(b)),
]


@pytest.mark.parametrize("name,fn", BINARY, ids=[b[0] for b in BINARY])
def test_grad_binary_same_shape(name, fn):
    gradcheck(fn, pos(3, 4, seed=1), pos(3, 4, seed=2))


@pytest.mark.parametrize("name,fn", BINARY, ids=[b[0] for b in BINARY])
def test_grad_binary_broadcast_sums_over_expanded_dims(name, fn):
    gradcheck(fn, pos(3, 1, 4, seed=3), pos(2, 1, seed=4))


@pytest.mark.parametrize("name,fn", BINARY, ids=[b[0] for b in BINARY])
def test_grad_binary_with_scalar_tensor(name, fn):
    gradcheck(fn, pos(2, 3, seed=5), pos(seed=6).reshape(()))


SCALAR_FORMS = [
    ("x+2", lambda x: x + 2),
    ("2+x", lambda x: 2 + x),
    ("x-2", lambda x: x - 2),
    ("2-x", lambda x: 2 - x),
    ("x*3", lambda x: x * 3),
    ("3*x", lambda x: 3 * x),
    ("x/3", lambda x: x / 3),
    ("2/x", lambda x: 2 / x),
    ("x**2", lambda x: x**2),
    ("x**2.5", lambda x: x**2.5),
    ("x**-1.5", lambda x: x**-1.5),
    ("2**x", lambda x: 2**x),
    ("0.5**x", lambda x: 0.5**x),
    ("-x", lambda x: -x),
]


@pytest.mark.parametrize("name,fn", SCALAR_FORMS, ids=[s[0] for s in SCALAR_FORMS])
def test_grad_with_python_scalar(name, fn):
    gradcheck(fn, pos(3, 4, seed=7))


def test_grad_pow_negative_base_integer_exponent():
    gradcheck(lambda x: x**3, r(5, seed=8))


def test_grad_maximum_minimum_ties_split_evenly():
    a = np.array([1.0, 2.0, 3.0])
    for fn, share in [(lambda x, y: x.maximum(y), 0.5), (lambda x, y: x.minimum(y), 0.5)]:
        x = sg.tensor(a, requires_grad=True)
        y = sg.tensor(a.copy(), requires_grad=True)
        fn(x, y).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), np.full(3, share))
        np.testing.assert_allclose(y.grad.numpy(), np.full(3, share))


def test_grad_same_tensor_used_twice_accumulates():
    gradcheck(lambda x: x * x + x, r(6, seed=9))


# ----- unary -----

UNARY = [
    ("exp", lambda x: x.exp(), r),
    ("log", lambda x: x.log(), pos),
    ("sqrt", lambda x: x.sqrt(), pos),
    ("rsqrt", lambda x: x.rsqrt(), pos),
    ("reciprocal", lambda x: x.reciprocal(), pos),
    ("sin", lambda x: x.sin(), lambda *s, seed: r(*s, low=-3, high=3, seed=seed)),
    ("cos", lambda x: x.cos(), lambda *s, seed: r(*s, low=-3, high=3, seed=seed)),
    ("tanh", lambda x: x.tanh(), lambda *s, seed: r(*s, low=-2, high=2, seed=seed)),
    ("sigmoid", lambda x: x.sigmoid(), lambda *s, seed: r(*s, low=-4, high=4, seed=seed)),
    ("relu", lambda x: x.relu(), distinct),
    ("abs", lambda x: x.abs(), distinct),
    ("sign", lambda x: x.sign(), distinct),
    ("square", lambda x: x.square(), r),
    ("neg", lambda x: x.neg(), r),
]


@pytest.mark.parametrize("name,fn,gen", UNARY, ids=[u[0] for u in UNARY])
def test_grad_unary(name, fn, gen):
    a = gen(3, 5, seed=10)
    if name in ("relu", "abs", "sign"):
        a = a + 0.03  # keep every value away from the kink at 0
    gradcheck(fn, a)


@pytest.mark.parametrize("kw", [{"min": -0.3}, {"max": 0.2}, {"min": -0.3, "max": 0.2}], ids=["min", "max", "both"])
def test_grad_clamp_away_from_bounds(kw):
    a = distinct(4, 5, seed=11) + 0.03  # -0.97..0.93 in steps of 0.1: never on a bound
    gradcheck(lambda x: x.clamp(**kw), a)


def test_grad_clamp_is_zero_outside_and_one_inside():
    x = sg.tensor(np.array([-2.0, 0.0, 2.0]), requires_grad=True)
    x.clamp(-1, 1).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 1.0, 0.0])


def test_grad_where_flows_to_both_branches():
    cond = sg.tensor(np.array([[True, False, True], [False, True, False]]))
    gradcheck(lambda x, y: sg.where(cond, x, y), r(2, 3, seed=12), r(2, 3, seed=13))


def test_grad_where_broadcast_branches():
    cond = sg.tensor(np.array([True, False, False, True]))
    gradcheck(lambda x, y: sg.where(cond, x, y), r(3, 1, seed=14), r(4, seed=15))


def test_grad_where_with_scalar_branch():
    gradcheck(lambda x: sg.where(x > 0, x, 0.1 * x), distinct(3, 4, seed=16) + 0.03)
    gradcheck(lambda x: sg.where(x > 0, 2.0, x * x), distinct(3, 4, seed=17) + 0.03)


def test_grad_of_cast_to_float32_and_back():
    gradcheck(lambda x: (x.float() * 2).double(), r(4, seed=18), eps=1e-3, rtol=1e-3, atol=1e-4)


def test_grad_contiguous():
    gradcheck(lambda x: x.T.contiguous() * 2, r(3, 4, seed=19))


# ----- reductions -----

DIMS = [
    pytest.param(None, False, id="all"),
    pytest.param(1, False, id="dim1"),
    pytest.param(-1, True, id="dim-1_keep"),
    pytest.param((0, 2), False, id="dims0,2"),
    pytest.param((0, 2), True, id="dims0,2_keep"),
]

REDUCE = [
    ("sum", lambda x, d, k: x.sum(d, keepdim=k)),
    ("mean", lambda x, d, k: x.mean(d, keepdim=k)),
    ("amax", lambda x, d, k: x.amax(d, keepdim=k)),
    ("amin", lambda x, d, k: x.amin(d, keepdim=k)),
    ("var", lambda x, d, k: x.var(d, keepdim=k)),
    ("var0", lambda x, d, k: x.var(d, keepdim=k, correction=0)),
    ("std", lambda x, d, k: x.std(d, keepdim=k)),
    ("logsumexp", lambda x, d, k: x.logsumexp(d if d is not None else (0, 1, 2), keepdim=k)),
]


@pytest.mark.parametrize("dim,keepdim", DIMS)
@pytest.mark.parametrize("name,fn", REDUCE, ids=[x[0] for x in REDUCE])
def test_grad_reduce(name, fn, dim, keepdim):
    gradcheck(lambda x: fn(x, dim, keepdim), distinct(2, 3, 4, seed=20))


@pytest.mark.parametrize("which", ["max", "min"])
def test_grad_max_min_values_along_dim(which):
    gradcheck(lambda x: getattr(x, which)(1).values, distinct(3, 4, seed=21))
    gradcheck(lambda x: getattr(x, which)(), distinct(3, 4, seed=22))


def test_grad_amax_ties_split_evenly():
    x = sg.tensor(np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 0.0]]), requires_grad=True)
    x.amax(1).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]])


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_grad_softmax(dim):
    gradcheck(lambda x: x.softmax(dim), r(3, 4, low=-2, high=2, seed=23))


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_grad_log_softmax(dim):
    gradcheck(lambda x: x.log_softmax(dim), r(3, 4, low=-2, high=2, seed=24))


def test_grad_functional_softmax_log_softmax():
    gradcheck(lambda x: F.softmax(x, 1) + F.log_softmax(x, 0), r(3, 4, seed=25))


def test_grad_logsumexp_of_large_values():
    gradcheck(lambda x: x.logsumexp(1), r(2, 3, seed=26) * 3 + 1e3)


# ----- matmul -----

MATMUL = [
    pytest.param((4,), (4,), id="1d@1d"),
    pytest.param((3,), (3, 4), id="1d@2d"),
    pytest.param((4, 3), (3,), id="2d@1d"),
    pytest.param((3, 4), (4, 2), id="2d@2d"),
    pytest.param((2, 3, 4), (2, 4, 2), id="batched"),
    pytest.param((2, 1, 2, 3), (3, 3, 2), id="broadcast_batched"),
    pytest.param((3, 4), (2, 4, 2), id="2d@3d"),
    pytest.param((2, 2, 3), (3,), id="3d@1d"),
]


@pytest.mark.parametrize("sa,sb", MATMUL)
def test_grad_matmul(sa, sb):
    gradcheck(lambda a, b: a @ b, r(*sa, seed=27), r(*sb, seed=28))


def test_grad_matmul_of_transposed_operands():
    gradcheck(lambda a, b: a.T @ b.T, r(4, 3, seed=29), r(5, 4, seed=30))


def test_grad_matmul_same_operand_twice():
    gradcheck(lambda a: a @ a, r(3, 3, seed=31))


# ----- movement -----

MOVEMENT = [
    ("reshape", lambda x: x.reshape(4, 6)),
    ("reshape_-1", lambda x: x.reshape(-1, 3)),
    ("view", lambda x: x.view(6, 4)),
    ("reshape_of_transposed", lambda x: x.transpose(0, 2).reshape(-1)),
    ("permute", lambda x: x.permute(2, 0, 1)),
    ("transpose", lambda x: x.transpose(0, 1)),
    ("T", lambda x: x.T),
    ("expand", lambda x: x[:, :1].expand(3, 2, 2, 4)),
    ("flip", lambda x: x.flip((0, 2))),
    ("slice_step_offset", lambda x: x[1:, ::2, 1::2]),
    ("slice_neg_bounds", lambda x: x[:, -2:, :-1]),
    ("slice_step3_partial", lambda x: x[:, :, 1::3]),
    ("int_index", lambda x: x[1, :, -1]),
    ("ellipsis_None", lambda x: x[..., None, 0]),
    ("unsqueeze", lambda x: x.unsqueeze(1)),
    ("squeeze", lambda x: x[:, :1].squeeze(1)),
    ("squeeze_all", lambda x: x[:1, :, :1].squeeze()),
    ("flatten", lambda x: x.flatten(1)),
    ("narrow", lambda x: x.narrow(2, 1, 2)),
    ("contiguous_view_chain", lambda x: x.T.flip(0)[1:].contiguous()),
]


@pytest.mark.parametrize("name,fn", MOVEMENT, ids=[m[0] for m in MOVEMENT])
def test_grad_movement(name, fn):
    gradcheck(fn, r(2, 3, 4, seed=32))


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_grad_cat(dim):
    gradcheck(lambda a, b, c: sg.cat([a, b, c], dim), r(2, 3, seed=33), r(2, 3, seed=34), r(2, 3, seed=35))


def test_grad_cat_differing_sizes_and_views():
    gradcheck(lambda a, b: sg.cat([a, b.T, a[:, ::2]], 1), r(2, 3, seed=36), r(1, 2, seed=37))


@pytest.mark.parametrize("dim", [0, 1, 2])
def test_grad_stack(dim):
    gradcheck(lambda a, b: sg.stack([a, b, a], dim), r(2, 3, seed=38), r(2, 3, seed=39))


def test_grad_split_int():
    gradcheck(lambda x: sg.cat([p * (i + 1) for i, p in enumerate(x.split(2, 1))], 1), r(2, 5, seed=40))


def test_grad_split_list_uses_only_some_pieces():
    gradcheck(lambda x: x.split([1, 3, 1], 0)[1] * 2, r(5, 2, seed=41))


def test_grad_chunk_uneven():
    gradcheck(lambda x: x.chunk(3, 0)[0] * x.chunk(3, 0)[2][:1].expand(3, 2), r(7, 2, seed=42))


@pytest.mark.parametrize(
    "pad", [(1, 2), (1, 0, 0, 2), (-1, 1, 2, -1), (0, 0, 1, 1, 1, 0)], ids=["last", "two_dims", "crop", "three_dims"]
)
def test_grad_pad(pad):
    gradcheck(lambda x: F.pad(x, pad, value=0.5), r(2, 3, 4, seed=43))


def test_grad_gather_dim0():
    index = idx([[3, 0, 1], [2, 2, 0]])
    gradcheck(lambda x: x.gather(0, index), r(4, 3, seed=44))


def test_grad_gather_dim1_with_repeats_and_smaller_index():
    index = idx([[4, 4, 0], [1, 3, 1]])
    gradcheck(lambda x: x.gather(1, index), r(3, 5, seed=45))


def test_grad_index_rows_1d():
    index = idx([2, 0, 3])
    gradcheck(lambda w: w[index], r(5, 3, seed=46))


def test_grad_index_rows_repeated_indices_accumulate():
    index = idx([[1, 1, 4], [1, -1, 0]])
    gradcheck(lambda w: w[index], r(5, 3, seed=47))


def test_grad_index_rows_repeated_exact_counts():
    w = sg.tensor(np.zeros((4, 2)), requires_grad=True)
    w[idx([2, 2, 2, 0, -2])].sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [[1, 1], [0, 0], [4, 4], [0, 0]])


def test_grad_index_along_later_dim():
    index = idx([3, 0, 3])
    gradcheck(lambda w: w[:, index], r(2, 4, seed=48))


# ----- a composite, as a model would use it -----


def test_grad_small_mlp_with_cross_entropy():
    targets = idx([1, 0, 2])

    def loss(x, w1, b1, w2):
        h = (x @ w1 + b1).tanh()
        logp = (h @ w2).log_softmax(1)
        return -logp.gather(1, targets.reshape(3, 1)).mean()

    gradcheck(loss, r(3, 4, seed=49), r(4, 5, seed=50), r(5, seed=51), r(5, 3, seed=52))


# ----- autograd bookkeeping -----


def test_grad_accumulates_across_backward_calls():
    x = sg.tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * 3).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [6.0, 6.0])


def test_grad_not_tracked_under_no_grad():
    x = sg.tensor(np.array([1.0, 2.0]), requires_grad=True)
    with sg.no_grad():
        y = x * 2
    assert not y.requires_grad


def test_grad_detach_blocks_gradient():
    x = sg.tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * x.detach()).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 2.0])


# ----- backward on webgpu matches backward on numpy -----


def _idx_on(values, like):
    return sg.tensor(np.asarray(values, np.int64), device=like.device)


BACKWARD = [
    ("broadcast_arith", lambda a, b: (a + b) * a / (b * b + 1), [(3, 1, 4), (2, 1)]),
    ("pow_unary", lambda a: (a.abs() + 0.5) ** 1.5 + a.exp() + a.tanh() + a.sigmoid() + (a + 2).log(), [(3, 5)]),
    ("max_min_where_clamp", lambda a, b: a.maximum(b) + sg.where(a > 0, a, b) + a.clamp(-0.3, 0.2), [(3, 4), (3, 4)]),
    (
        "reductions",
        lambda a: a.sum((0, 2), keepdim=True) + a.amax(1, keepdim=True) + a.var(0) + a.logsumexp(2, keepdim=True),
        [(2, 3, 4)],
    ),
    ("softmax", lambda a: a.softmax(1) + a.log_softmax(0), [(3, 4)]),
    ("matmul_broadcast_batched", lambda a, b: a @ b, [(2, 1, 2, 3), (3, 3, 2)]),
    ("matmul_65x33x17", lambda a, b: a @ b, [(65, 33), (33, 17)]),
    ("movement", lambda a: a.permute(2, 0, 1).flip(1)[1:, :, ::2].reshape(-1), [(2, 3, 4)]),
    (
        "cat_stack_pad",
        lambda a, b: F.pad(sg.cat([a, b.T, a[:, ::2]], 1), (1, -1)) * 2 + sg.stack([a, a * 3], 2).sum(2)[:, :1],
        [(2, 3), (1, 2)],
    ),
    ("gather", lambda a: a.gather(1, _idx_on([[4, 4, 0], [1, 3, 1]], a)), [(3, 5)]),
    ("index_rows_repeated", lambda a: a[_idx_on(np.zeros(300, np.int64).tolist() + [1, -1], a)], [(5, 3)]),
]


@pytest.mark.parametrize("name,fn,shapes", BACKWARD, ids=[b[0] for b in BACKWARD])
def test_backward_on_webgpu_matches_numpy(webgpu, name, fn, shapes):
    arrays = [r(*s, seed=60 + i).astype(np.float32) for i, s in enumerate(shapes)]

    def grads(device):
        ts = [sg.tensor(a, device=device, requires_grad=True) for a in arrays]
        out = fn(*ts)
        w = np.random.default_rng(1).standard_normal(out.shape).astype(np.float32)
        (out * sg.tensor(w, device=device)).sum().backward()
        return [t.grad.numpy() for t in ts]

    for g_np, g_gpu in zip(grads("numpy"), grads(webgpu)):
        np.testing.assert_allclose(g_gpu, g_np, rtol=1e-4, atol=1e-5)


# ----- PyTorch gradient conventions at special points -----


def test_grad_pow_zero_exponent_at_zero_base_is_zero():
    x = sg.tensor(np.array([0.0, 2.0]), requires_grad=True)
    (x**0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0])


def test_grad_pow_at_zero_base():
    x = sg.tensor(np.array([0.0]), requires_grad=True)
    (x**1 + x**2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0])  # d(x)/dx = 1, d(x^2)/dx = 0 at 0, like torch
    y = sg.tensor(np.array([2.0, 0.0]), requires_grad=True)
    (sg.tensor(np.zeros(2)) ** y).sum().backward()
    np.testing.assert_array_equal(y.grad.numpy(), [0.0, 0.0])  # d(0^y)/dy taken as 0, like torch


@pytest.mark.parametrize("which", ["max", "min"])
def test_grad_max_min_dim_goes_to_the_returned_index(which):
    x = sg.tensor(np.array([[3.0, 3.0, 1.0], [1.0, 1.0, 3.0]]), requires_grad=True)
    out = getattr(x, which)(1)
    out.values.sum().backward()
    expected = np.zeros((2, 3))
    expected[np.arange(2), out.indices.numpy()] = 1.0
    np.testing.assert_array_equal(x.grad.numpy(), expected)
