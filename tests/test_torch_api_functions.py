"""Top-level functions and Tensor methods of torch that smolgrad lacked: comparison aliases,
logical_and/or/xor, tan, logit, addcmul/addcdiv (and in place), broadcast_to/broadcast_tensors,
atleast_*d and the *stack family, diff, nansum, nanmean, var_mean/std_mean, tensor_split,
tril/triu_indices, randperm, inference_mode, is_tensor and small metadata methods. Forward
against NumPy references of torch's documented formulas, gradients by finite differences,
both devices."""

from __future__ import annotations

import numpy as np
import pytest

import smolgrad as sg
from helpers import assert_close, gradcheck, noncontiguous_tensor, on, rand

NAN = np.nan

# ----- functional forms of existing methods and the comparison aliases -----

COMPARISONS = {
    "eq": np.equal,
    "ne": np.not_equal,
    "lt": np.less,
    "le": np.less_equal,
    "gt": np.greater,
    "ge": np.greater_equal,
    "greater": np.greater,
    "less": np.less,
    "greater_equal": np.greater_equal,
    "less_equal": np.less_equal,
    "not_equal": np.not_equal,
}


@pytest.mark.parametrize("name", sorted(COMPARISONS))
def test_comparisons_function_method_and_numpy_agree(name, device):
    a = np.array([[1.0, 2.0, NAN], [0.0, -1.0, 3.0]], np.float32)
    b = np.array([2.0, 2.0, NAN], np.float32)
    x, y = on(device, a, b)
    expected = COMPARISONS[name](a, b)  # broadcast; nan compares unequal to everything
    assert_close(getattr(sg, name)(x, y), expected)
    assert_close(getattr(x, name)(y), expected)
    assert_close(getattr(sg, name)(x, 2), COMPARISONS[name](a, 2))
    assert_close(getattr(sg, name)(noncontiguous_tensor(a, device), y), expected)


def test_logical_not_unbind_numel_functional_forms(device):
    a = np.array([[0.0, 2.0, NAN], [-0.0, 1.0, 0.5]], np.float32)
    (x,) = on(device, a)
    assert_close(sg.logical_not(x), np.logical_not(a))
    assert_close(sg.logical_not(sg.tensor([3, 0, -1], device=device)), np.array([False, True, False]))
    parts = sg.unbind(x, 1)
    assert len(parts) == 3
    for i, p in enumerate(parts):
        assert_close(p, a[:, i])
    assert sg.numel(x) == 6 and sg.numel(sg.tensor(1.0, device=device)) == 1


def test_functional_forms_refuse_a_non_tensor_input():
    with pytest.raises(TypeError, match=r"logical_not\(\): argument 'input' must be Tensor, not list"):
        sg.logical_not([1, 0])
    with pytest.raises(TypeError, match=r"eq\(\): argument 'input' must be Tensor, not int"):
        sg.eq(1, sg.tensor([1]))


# ----- logical_and / logical_or / logical_xor -----

LOGICAL = {"logical_and": np.logical_and, "logical_or": np.logical_or, "logical_xor": np.logical_xor}


@pytest.mark.parametrize("name", sorted(LOGICAL))
def test_logical_ops_any_dtype_in_bool_out_broadcasting(name, device):
    a = np.array([[0.0, 1.5, NAN, -0.0], [2.0, 0.0, -3.0, NAN]], np.float32)
    b = np.array([0, 7, 0, -1], np.int64)
    x = sg.tensor(a, device=device)
    y = sg.tensor(b, device=device)
    ref = LOGICAL[name]
    expected = ref(a != 0, b != 0)  # nonzero (nan included) is True
    out = getattr(sg, name)(x, y)
    assert out.dtype == sg.bool
    assert_close(out, expected)
    assert_close(getattr(x, name)(y), expected)
    assert_close(getattr(y, name)(x), expected)
    bools = sg.tensor([True, False, True, False], device=device)
    assert_close(getattr(sg, name)(x, bools), ref(a != 0, [True, False, True, False]))
    assert_close(getattr(noncontiguous_tensor(a, device), name)(y), expected)
    assert_close(getattr(sg, name)(sg.tensor(1, device=device), y), ref(True, b != 0))  # 0-d


def test_logical_ops_bad_inputs(device):
    x = sg.tensor([1.0, 0.0], device=device)
    with pytest.raises(TypeError, match=r"logical_and\(\): argument 'other' must be Tensor, not int"):
        x.logical_and(1)
    with pytest.raises(RuntimeError, match="logical_or"):
        sg.logical_or(x, sg.tensor([1.0, 0.0, 1.0], device=device))


# ----- tan and logit -----


def test_tan_matches_numpy_and_gradient(device):
    a = np.array([-1.4, -0.7, 0.0, 0.3, 1.2, 1.5], np.float32)
    (x,) = on(device, a)
    assert_close(sg.tan(x), np.tan(a.astype(np.float64)).astype(np.float32), rtol=1e-5, atol=1e-6)
    assert_close(x.tan(), np.tan(a), rtol=1e-5, atol=1e-6)
    ints = sg.tensor([0, 1, -1], device=device).tan()
    assert ints.dtype == sg.float32
    assert_close(ints, np.tan([0.0, 1.0, -1.0]).astype(np.float32), rtol=1e-5)
    assert_close(noncontiguous_tensor(a.reshape(2, 3), device).tan(), np.tan(a.reshape(2, 3)), rtol=1e-5, atol=1e-6)
    gradcheck(lambda t: t.tan(), rand(2, 3, seed=3), noncontiguous=True)


def test_logit_matches_numpy_with_and_without_eps(device):
    p = np.array([0.0, 1e-3, 0.2, 0.5, 0.9, 1.0, 1.2, NAN], np.float32)
    (x,) = on(device, p)
    with np.errstate(all="ignore"):
        assert_close(sg.logit(x), np.log(p / (1 - p)), rtol=1e-5, atol=1e-5)
        q = np.clip(p, 0.05, 0.95)
        assert_close(x.logit(eps=0.05), np.log(q / (1 - q)), rtol=1e-5, atol=1e-5)
    assert sg.tensor([0, 1], device=device).logit().dtype == sg.float32
    gradcheck(lambda t: t.logit(), rand(2, 3, low=0.1, high=0.9, seed=4), noncontiguous=True)
    # with eps: the gradient is 0 where p was clamped (as torch's logit_backward)
    gradcheck(lambda t: t.logit(eps=0.2), np.array([0.05, 0.3, 0.6, 0.95]))


# ----- addcmul / addcdiv -----


def test_addcmul_addcdiv_match_numpy_and_broadcast(device):
    a, b, c = rand(2, 3, seed=5), rand(3, seed=6), rand(2, 1, low=0.5, high=2.0, seed=7)
    x, t1, t2 = on(device, a, b, c)
    assert_close(sg.addcmul(x, t1, t2), a + b * c)
    assert_close(x.addcmul(t1, t2, value=0.5), a + 0.5 * b * c)
    assert_close(sg.addcdiv(x, t1, t2, value=-2), a - 2 * b / c)
    assert_close(x.addcdiv(t1, t2), a + b / c)
    # the output takes the broadcast shape of all three
    assert_close(sg.addcmul(t1, x, t2), b + a * c)
    assert_close(noncontiguous_tensor(a, device).addcdiv(t1, noncontiguous_tensor(c, device), value=3), a + 3 * b / c)
    ints = sg.tensor([1, 2, 3], device=device)
    out = ints.addcmul(ints, ints, value=2)
    assert out.dtype == sg.int64
    assert_close(out, np.array([3, 10, 21]))


def test_addcmul_addcdiv_gradients():
    a, b, c = rand(2, 3, seed=8), rand(1, 3, seed=9), rand(2, 1, low=0.5, high=2.0, seed=10)
    gradcheck(lambda x, y, z: x.addcmul(y, z, value=0.7), a, b, c, noncontiguous=True)
    gradcheck(lambda x, y, z: sg.addcdiv(x, y, z, value=-1.5), a, b, c, noncontiguous=True)


def test_addcmul_addcdiv_bad_inputs(device):
    ints = sg.tensor([1, 2], device=device)
    x = sg.tensor([1.0, 2.0], device=device)
    with pytest.raises(RuntimeError, match="addcdiv: Integer division with addcdiv is no longer supported"):
        x.addcdiv(ints, ints)
    with pytest.raises(RuntimeError, match="addcmul: For integral input tensors, argument value must not be a floating point"):
        ints.addcmul(ints, ints, value=0.5)
    with pytest.raises(RuntimeError, match="addcmul"):
        x.addcmul(x, sg.tensor([1.0, 2.0, 3.0], device=device))
    with pytest.raises(TypeError, match=r"addcmul\(\): argument 'tensor2' must be Tensor, not float"):
        x.addcmul(x, 2.0)


def test_addcmul_addcdiv_in_place(device):
    a, b, c = rand(2, 3, seed=11), rand(3, seed=12), rand(2, 3, low=0.5, high=2.0, seed=13)
    x, t1, t2 = on(device, a, b, c)
    view = x[:, 1]
    version = x._version
    assert x.addcmul_(t1, t2, value=2) is x
    assert x._version > version
    assert_close(x, a + 2 * b * c)
    assert_close(view, (a + 2 * b * c)[:, 1])  # views see the write
    x.addcdiv_(t1, t2)
    assert_close(x, a + 2 * b * c + b / c)
    # in place into a non-contiguous view
    (y,) = on(device, a)
    y.T.addcmul_(t2.T, t2.T)
    assert_close(y, a + c * c)
    with pytest.raises(RuntimeError, match="addcmul_: output with shape"):
        t1.addcmul_(x, t2)  # (3,) cannot hold the (2, 3) result
    with pytest.raises(RuntimeError, match="addcdiv_: result type Float can't be cast"):
        sg.tensor([1, 2, 3], device=device).addcdiv_(t1, t1)
    leaf = sg.tensor(a, device=device, requires_grad=True)
    with pytest.raises(RuntimeError, match="addcmul_: a leaf Variable that requires grad"):
        leaf.addcmul_(t1, t2)


def test_addcmul_in_place_gradient():
    a, b, c = rand(2, 3, seed=14), rand(2, 3, seed=15), rand(2, 3, low=0.5, high=2.0, seed=16)

    def fn(x, y, z):
        out = x * 1.0
        out.addcdiv_(y, z, value=0.5)
        return out.addcmul_(y, z)

    gradcheck(fn, a, b, c)


# ----- broadcast_to / broadcast_tensors -----


def test_broadcast_to_and_broadcast_tensors(device):
    a, b = rand(3, 1, seed=17), rand(4, seed=18)
    x, y = on(device, a, b)
    assert_close(sg.broadcast_to(x, (2, 3, 4)), np.broadcast_to(a, (2, 3, 4)))
    assert_close(x.broadcast_to(-1, 4), np.broadcast_to(a, (3, 4)))
    bx, by = sg.broadcast_tensors(x, y)
    ex, ey = np.broadcast_arrays(a, b)
    assert_close(bx, ex)
    assert_close(by, ey)
    (only,) = sg.broadcast_tensors(x)
    assert only.shape == x.shape
    assert len(sg.broadcast_tensors([x, y, sg.tensor(1.0, device=device)])) == 3
    assert_close(noncontiguous_tensor(a.T, device).broadcast_to((2, 1, 3)), np.broadcast_to(a.T, (2, 1, 3)))
    gradcheck(lambda t: sg.broadcast_to(t, (2, 3, 4)), a)
    gradcheck(lambda s, t: sum(sg.broadcast_tensors(s, t)), a, b)
    with pytest.raises(RuntimeError, match=r"broadcast_to: cannot broadcast shape \(3, 1\) to \(3, 5, 2\)"):
        x.broadcast_to((3, 5, 2))
    with pytest.raises(RuntimeError, match="broadcast_to"):
        sg.broadcast_to(x, (2,))
    with pytest.raises(RuntimeError, match="broadcast_tensors"):
        sg.broadcast_tensors(x, sg.tensor(rand(2, 4), device=device))


# ----- atleast_*d and the *stack family -----


def test_atleast_nd(device):
    arrays = [np.float32(2.0), rand(3, seed=19), rand(2, 3, seed=20), rand(2, 3, 2, seed=21)]
    tensors = [sg.tensor(a, device=device) for a in arrays]
    for fn, ref in ((sg.atleast_1d, np.atleast_1d), (sg.atleast_2d, np.atleast_2d), (sg.atleast_3d, np.atleast_3d)):
        for t, a in zip(tensors, arrays):
            assert_close(fn(t), ref(a))
        many = fn(*tensors)
        assert isinstance(many, tuple) and len(many) == 4
        for got, a in zip(many, arrays):
            assert_close(got, ref(a))
        assert isinstance(fn(tensors[:1]), tuple)  # a list in: a tuple out
    with pytest.raises(TypeError, match="atleast_2d"):
        sg.atleast_2d([1, 2])


def test_stacks_match_numpy(device):
    cases = {
        "hstack": (np.hstack, [[rand(3, seed=1), rand(2, seed=2)], [rand(2, 1, seed=3), rand(2, 3, seed=4)]]),
        "vstack": (np.vstack, [[rand(3, seed=5), rand(3, seed=6)], [rand(1, 3, seed=7), rand(2, 3, seed=8), rand(3, seed=9)]]),
        "row_stack": (np.vstack, [[rand(2, 2, seed=10), rand(2, seed=11)]]),
        "dstack": (np.dstack, [[rand(3, seed=12), rand(3, seed=13)], [rand(2, 3, seed=14), rand(2, 3, 2, seed=15)]]),
        "column_stack": (np.column_stack, [[rand(3, seed=16), rand(3, 2, seed=17)], [np.float32(1.0), rand(1, 2, seed=18)]]),
    }
    for name, (ref, groups) in cases.items():
        for arrays in groups:
            tensors = [sg.tensor(a, device=device) for a in arrays]
            assert_close(getattr(sg, name)(tensors), ref(arrays))
            assert_close(getattr(sg, name)(tuple(tensors)), ref(arrays))
    a, b = rand(3, 2, seed=19), rand(3, 2, seed=20)
    assert_close(sg.hstack([noncontiguous_tensor(a, device), sg.tensor(b, device=device)]), np.hstack([a, b]))
    assert sg.hstack([sg.tensor([1], device=device), sg.tensor([2.5], device=device)]).dtype == sg.float32
    gradcheck(lambda s, t: sg.dstack([s, t]), a, b)
    gradcheck(lambda s, t: sg.column_stack([s, t]), rand(3, seed=21), b)
    with pytest.raises(TypeError, match=r"vstack\(\): argument 'tensors' must be a tuple or list of Tensors"):
        sg.vstack(sg.tensor(a, device=device))
    with pytest.raises(RuntimeError, match=r"hstack\(\): expected a non-empty list"):
        sg.hstack([])
    with pytest.raises(RuntimeError, match="Sizes of tensors must match"):
        sg.vstack([sg.tensor(a, device=device), sg.tensor(rand(3), device=device)])


# ----- diff -----


def test_diff_matches_numpy(device):
    a = rand(3, 5, seed=22)
    (x,) = on(device, a)
    assert_close(sg.diff(x), np.diff(a))
    assert_close(x.diff(n=2, dim=0), np.diff(a, n=2, axis=0))
    assert_close(x.diff(n=3), np.diff(a, n=3))
    assert_close(x.diff(n=7), np.diff(a, n=7))  # n past the length: empty along dim
    assert_close(x.diff(n=0), a)
    pre, post = rand(3, 2, seed=23), rand(3, 1, seed=24)
    p, q = on(device, pre, post)
    assert_close(x.diff(prepend=p, append=q), np.diff(a, prepend=pre, append=post))
    assert_close(sg.diff(x, 2, -1, None, q), np.diff(a, n=2, append=post))
    assert_close(noncontiguous_tensor(a, device).diff(dim=0), np.diff(a, axis=0))
    ints = np.array([1, 4, 9, 16, 25])
    assert_close(sg.diff(sg.tensor(ints, device=device), 2), np.diff(ints, 2))
    flags = np.array([True, True, False, True])
    out = sg.tensor(flags, device=device).diff()
    assert out.dtype == sg.bool
    assert_close(out, flags[1:] != flags[:-1])  # torch: logical_xor for bool
    gradcheck(lambda t: t.diff(n=2), a, noncontiguous=True)
    gradcheck(lambda t, u, v: t.diff(dim=1, prepend=u, append=v), a, pre, post)


def test_diff_bad_inputs(device):
    x = sg.tensor(rand(2, 3), device=device)
    with pytest.raises(RuntimeError, match="diff expects input to be at least one-dimensional"):
        sg.tensor(1.0, device=device).diff()
    with pytest.raises(RuntimeError, match="diff expects n to be a non-negative int"):
        x.diff(n=-1)
    with pytest.raises(RuntimeError, match="diff expects prepend or append to be the same dimension"):
        x.diff(prepend=sg.tensor([1.0, 2.0], device=device))
    with pytest.raises(TypeError, match=r"diff\(\): argument 'append' must be Tensor"):
        x.diff(append=1.0)
    with pytest.raises(IndexError, match="diff: dimension out of range"):
        x.diff(dim=2)


# ----- nansum / nanmean -----


def test_nansum_nanmean_match_numpy(device):
    a = np.array([[1.0, NAN, 2.5], [NAN, NAN, NAN], [-1.0, 4.0, 0.5]], np.float32)
    (x,) = on(device, a)
    assert_close(sg.nansum(x), np.nansum(a))
    assert_close(x.nansum(1), np.nansum(a, 1))
    assert_close(x.nansum(0, keepdim=True), np.nansum(a, 0, keepdims=True))
    assert_close(x.nansum((0, 1)), np.nansum(a))
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        ref_rows = np.nanmean(a, 1)  # all-nan row: nan
    assert_close(sg.nanmean(x, 1), ref_rows)
    assert_close(x.nanmean(), np.nanmean(a))
    assert_close(x.nanmean(0, keepdim=True), np.nanmean(a, 0, keepdims=True))
    assert_close(noncontiguous_tensor(a, device).nansum(1), np.nansum(a, 1))
    ints = sg.tensor([[1, 2], [3, 4]], device=device)
    assert_close(ints.nansum(0), np.array([4, 6]))  # ints: the plain sum, int64
    assert_close(ints.nanmean(dtype=sg.float32), np.float32(2.5))
    assert_close(x.nansum(dtype=sg.float32), np.nansum(a))


def test_nansum_nanmean_gradients_and_errors():
    a = rand(3, 4, seed=25).astype(np.float64)
    gradcheck(lambda t: t.nansum(1), a, noncontiguous=True)
    gradcheck(lambda t: t.nanmean(0), a, noncontiguous=True)
    # the gradient is 0 at the nans and, for nanmean, 1 / (count of non-nans) elsewhere
    x = sg.tensor([[1.0, NAN, 3.0], [NAN, 2.0, 5.0]], dtype=sg.float64, requires_grad=True)
    x.nanmean(1).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [[0.5, 0, 0.5], [0, 0.5, 0.5]])
    with pytest.raises(RuntimeError, match=r"nanmean\(\): expected input to have floating point dtype but got int64"):
        sg.tensor([1, 2]).nanmean()


# ----- var_mean / std_mean -----


def test_var_mean_std_mean(device):
    a = rand(3, 4, seed=26)
    (x,) = on(device, a)
    cases = [  # (args, kwargs, dims, ddof, keepdims)
        ((), {}, None, 1, False),
        ((1,), {}, 1, 1, False),
        ((0, False), {}, 0, 0, False),
        ((True,), {}, None, 1, False),  # the (input, unbiased) overload
        ((False,), {}, None, 0, False),
        (((0, 1),), {"correction": 0, "keepdim": True}, (0, 1), 0, True),
        ((), {"dim": 1, "correction": 2, "keepdim": True}, 1, 2, True),
    ]
    for args, kwargs, dims, ddof, keep in cases:
        v, m = sg.var_mean(x, *args, **kwargs)
        s, m2 = sg.std_mean(x, *args, **kwargs)
        assert_close(v, np.var(a, axis=dims, ddof=ddof, keepdims=keep))
        assert_close(s, np.std(a, axis=dims, ddof=ddof, keepdims=keep))
        assert_close(m, np.mean(a, axis=dims, keepdims=keep))
        assert_close(m2, np.mean(a, axis=dims, keepdims=keep))
    v, m = sg.var_mean(noncontiguous_tensor(a, device), 0)
    assert_close(v, np.var(a, 0, ddof=1))
    gradcheck(lambda t: sum(sg.var_mean(t, 1)), a, noncontiguous=True)
    gradcheck(lambda t: sg.std_mean(t, 0, correction=0)[0] * sg.std_mean(t, 0)[1], a)
    with pytest.raises(RuntimeError, match="var_mean: pass either unbiased or correction"):
        sg.var_mean(x, 0, True, correction=0)


# ----- tensor_split -----


def test_tensor_split_sections_and_indices(device):
    a = rand(7, 3, seed=27)
    (x,) = on(device, a)
    for sections in (1, 3, 7, 9):  # torch's rule: the first size % n parts are one longer (numpy's array_split)
        got = sg.tensor_split(x, sections)
        want = np.array_split(a, sections)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert_close(g, w)
    for indices in ([2, 5], [0, 3, 3, 10], [4, 1], [-2], (1,), []):
        got = x.tensor_split(indices)
        edges = [0] + [min(max(i + 7 if i < 0 else i, 0), 7) for i in indices] + [7]
        want = [a[s:e] for s, e in zip(edges[:-1], edges[1:])]
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert_close(g, w)
    for g, w in zip(x.tensor_split(2, dim=1), np.array_split(a, 2, axis=1)):
        assert_close(g, w)
    for g, w in zip(x.tensor_split(sg.tensor([1, 4]), dim=0), [a[:1], a[1:4], a[4:]]):
        assert_close(g, w)
    for g, w in zip(x.tensor_split(sg.tensor(2), dim=-1), np.array_split(a, 2, axis=1)):
        assert_close(g, w)
    for g, w in zip(noncontiguous_tensor(a, device).tensor_split(3), np.array_split(a, 3)):
        assert_close(g, w)
    gradcheck(lambda t: sg.cat([p * (i + 1) for i, p in enumerate(t.tensor_split(3))]), a, noncontiguous=True)


def test_tensor_split_bad_inputs(device):
    x = sg.tensor(rand(4), device=device)
    with pytest.raises(RuntimeError, match="tensor_split: number of sections must be larger than 0, got 0"):
        x.tensor_split(0)
    with pytest.raises(RuntimeError, match="tensor_split expected at least a 1-dimensional tensor"):
        sg.tensor(1.0, device=device).tensor_split(2)
    with pytest.raises(TypeError, match="tensor_split"):
        x.tensor_split(1.5)
    with pytest.raises(RuntimeError, match="tensor_split expected tensor_indices_or_sections"):
        x.tensor_split(sg.tensor([1.0]))
    with pytest.raises(IndexError, match="tensor_split: dimension out of range"):
        x.tensor_split(2, dim=1)


# ----- tril_indices / triu_indices -----


def test_tril_triu_indices_match_numpy(device):
    for row, col, offset in ((3, 3, 0), (4, 3, 0), (3, 5, 1), (4, 4, -2), (3, 4, 10), (3, 4, -10), (0, 3, 0)):
        for fn, ref in ((sg.tril_indices, np.tril_indices), (sg.triu_indices, np.triu_indices)):
            out = fn(row, col, offset, device=device)
            assert out.dtype == sg.int64 and out.device == device
            assert_close(out, np.stack(ref(row, offset, col)).reshape(2, -1).astype(np.int64))
    assert sg.tril_indices(3, 3, dtype=sg.int32).dtype == sg.int32
    with pytest.raises(RuntimeError, match="tril_indices: row and col must be non-negative"):
        sg.tril_indices(-1, 3)
    with pytest.raises(RuntimeError, match="triu_indices: dtype must be int32 or int64"):
        sg.triu_indices(3, 3, dtype=sg.float32)
    with pytest.raises(TypeError, match=r"triu_indices\(\): argument 'col' must be int"):
        sg.triu_indices(3, 2.0)


# ----- randperm -----


def test_randperm_is_a_reproducible_permutation(device):
    for n in (0, 1, 2, 17, 300):
        p = sg.randperm(n, device=device)
        assert p.dtype == sg.int64 and p.device == device and p.shape == (n,)
        np.testing.assert_array_equal(np.sort(p.numpy()), np.arange(n))
    sg.manual_seed(5)
    first = sg.randperm(50, device=device).numpy()
    second = sg.randperm(50, device=device).numpy()
    sg.manual_seed(5)
    np.testing.assert_array_equal(sg.randperm(50, device=device).numpy(), first)
    assert not np.array_equal(first, second)  # consecutive draws differ (chance 1/50!)
    gen = sg.Generator().manual_seed(3)
    a = sg.randperm(40, generator=gen, device=device).numpy()
    gen.manual_seed(3)
    np.testing.assert_array_equal(sg.randperm(40, generator=gen, device=device).numpy(), a)
    f = sg.randperm(6, dtype=sg.float32, device=device, requires_grad=True)
    assert f.dtype == sg.float32 and f.requires_grad
    np.testing.assert_array_equal(np.sort(f.detach().numpy()), np.arange(6, dtype=np.float32))
    assert sg.randperm(5, dtype=sg.int32, device=device).dtype == sg.int32


def test_randperm_is_the_same_on_both_devices_and_roughly_uniform(webgpu):
    sg.manual_seed(11)
    on_numpy = sg.randperm(64, device="numpy").numpy()
    sg.manual_seed(11)
    np.testing.assert_array_equal(sg.randperm(64, device=webgpu).numpy(), on_numpy)
    sg.manual_seed(0)
    firsts = np.bincount([int(sg.randperm(4, device="numpy")[0].item()) for _ in range(400)], minlength=4)
    assert firsts.min() > 60, firsts  # each of 4 values first about 100 times in 400


def test_randperm_bad_inputs():
    with pytest.raises(RuntimeError, match="randperm: n must be non-negative, got -1"):
        sg.randperm(-1)
    with pytest.raises(TypeError, match=r"randperm\(\): argument 'n' must be int"):
        sg.randperm(3.0)
    with pytest.raises(RuntimeError, match="randperm: only Tensors of floating point dtype can require gradients"):
        sg.randperm(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="randperm: n=3000 values do not fit in dtype float16"):
        sg.randperm(3000, dtype=sg.float16)
    with pytest.raises(TypeError, match="generator"):
        sg.randperm(3, generator=1)


# ----- inference_mode -----


def test_inference_mode_context_and_decorators(device):
    w = sg.tensor([1.0, 2.0], device=device, requires_grad=True)
    assert not sg.is_inference_mode_enabled()
    with sg.inference_mode():
        assert sg.is_inference_mode_enabled() and not sg.is_grad_enabled()
        y = w * 2
    assert not y.requires_grad and y.grad_fn is None
    assert sg.is_grad_enabled() and not sg.is_inference_mode_enabled()

    @sg.inference_mode
    def bare():
        return (w * 3, sg.is_inference_mode_enabled())

    @sg.inference_mode()
    def called():
        return w * 3

    @sg.inference_mode(False)
    def off():
        return w * 3

    out, flag = bare()
    assert flag and not out.requires_grad
    assert not called().requires_grad
    assert off().requires_grad
    assert bare.__name__ == "bare"
    with sg.inference_mode(False):
        assert not sg.is_inference_mode_enabled()
        assert (w * 2).requires_grad
    with sg.inference_mode(True):
        with sg.inference_mode(False):  # as in torch: inference off and grad mode on again inside
            assert not sg.is_inference_mode_enabled() and sg.is_grad_enabled()
        assert sg.is_inference_mode_enabled() and not sg.is_grad_enabled()
    with sg.no_grad():
        with sg.inference_mode(False):
            assert sg.is_grad_enabled()
        assert not sg.is_grad_enabled()
    with pytest.raises(ValueError):
        with sg.inference_mode():
            raise ValueError("restores the modes on an exception")
    assert sg.is_grad_enabled() and not sg.is_inference_mode_enabled()
    assert sg.autograd.inference_mode is sg.inference_mode


# ----- is_tensor and metadata methods -----


def test_is_tensor_type_as_and_metadata(device):
    x = sg.tensor(rand(2, 3), device=device)
    assert sg.is_tensor(x) and sg.is_tensor(sg.nn.Parameter(x)) and not sg.is_tensor(x.numpy()) and not sg.is_tensor(1.0)
    i = sg.tensor([1, 2], device=device)
    assert x.type_as(i).dtype == sg.int64 and i.type_as(x).dtype == sg.float32
    assert_close(i.type_as(x), np.array([1.0, 2.0], np.float32))
    assert x.nelement() == 6 == x.numel() and x.ndimension() == 2 == x.dim()
    assert sg.tensor(1.0, device=device).ndimension() == 0
    sizes = {sg.float32: 4, sg.int64: 8, sg.int32: 4, sg.bool: 1, sg.float16: 2}
    for dt, size in sizes.items():
        assert sg.zeros(2, dtype=dt, device=device).element_size() == size
    assert x.is_floating_point() and not i.is_floating_point()
    w = sg.tensor(rand(3), dtype=sg.float64, requires_grad=True)
    w.type_as(x).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), np.ones(3))


# ----- forward mode: the compositions carry JVPs -----

JVP_CASES = {
    "tan": lambda x, y: x.tan() * y,
    "logit": lambda x, y: sg.logit(x.sigmoid()) + y,
    "addcmul": lambda x, y: sg.addcmul(x, y, y, value=0.5),
    "addcdiv": lambda x, y: x.addcdiv(x, y + 3.0, value=2),
    "diff": lambda x, y: sg.diff(x * y, n=2, dim=0),
    "nanmean": lambda x, y: (x * y).nanmean(1),
    "var_mean": lambda x, y: sg.var_mean(x * y, 0)[0],
}


@pytest.mark.parametrize("name", sorted(JVP_CASES))
def test_jvp_matches_finite_differences(name):
    fn = JVP_CASES[name]
    a, b = rand(3, 4, seed=30).astype(np.float64), rand(3, 4, seed=31).astype(np.float64)
    va, vb = rand(3, 4, seed=32).astype(np.float64), rand(3, 4, seed=33).astype(np.float64)
    x, y = (sg.tensor(t) for t in (a, b))
    _, tangent = sg.autograd.functional.jvp(fn, (x, y), (sg.tensor(va), sg.tensor(vb)))
    eps = 1e-6

    def at(s):
        return fn(sg.tensor(a + s * va), sg.tensor(b + s * vb)).numpy()

    np.testing.assert_allclose(tangent.numpy(), (at(eps) - at(-eps)) / (2 * eps), rtol=1e-5, atol=1e-7)
