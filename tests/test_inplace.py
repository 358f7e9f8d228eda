"""In-place ops with PyTorch's storage semantics: views, .data and .detach() share storage;
in-place ops rebind it lazily, bump the version and keep autograd right."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_close, gradcheck, on, rand

import smolgrad as sg


def close(t: sg.Tensor, expected, **kw) -> None:
    """assert_close, reading integer-valued expectations as floats for float tensors."""
    expected = np.asarray(expected)
    if t.dtype.is_floating_point and expected.dtype.kind in "iu":
        expected = expected.astype(np.float32)
    assert_close(t, expected, **kw)

# ----- storage sharing -----


def test_write_through_a_slice_view_changes_the_base(device):
    (x,) = on(device, np.arange(6.0))
    x[1:].add_(1)
    close(x, [0, 2, 3, 4, 5, 6])


def test_view_of_the_whole_tensor_zeroes_it(device):
    (x,) = on(device, rand(2, 3))
    y = x.view(-1)
    y.zero_()
    close(x, np.zeros((2, 3)))


def test_writing_the_base_refreshes_every_live_view(device):
    a = rand(3, 4, seed=1)
    (x,) = on(device, a)
    row, col, t = x[1], x[:, 2], x.T
    x.mul_(2)
    close(row, 2 * a[1])
    close(col, 2 * a[:, 2])
    close(t, 2 * a.T)


def test_a_view_write_shows_in_sibling_views(device):
    a = rand(4, 4, seed=2)
    (x,) = on(device, a)
    t, row = x.T, x[2]
    t[:, 2] = 7.0  # column 2 of x.T is row 2 of x
    expected = a.copy()
    expected[2] = 7
    close(x, expected)
    close(row, expected[2])


def test_views_of_views_permute_reshape_and_steps(device):
    a = np.arange(24.0).reshape(2, 3, 4).astype(np.float32)
    (x,) = on(device, a)
    v = x.permute(2, 0, 1)[1::2].reshape(2, 6)  # x[:, :, 1::2] as (2, 6)
    v.fill_(-1)
    expected = a.copy()
    expected[:, :, 1::2] = -1
    close(x, expected)


def test_data_and_detach_share_storage(device):
    (x,) = on(device, rand(3))
    x.data.fill_(2.0)
    close(x, [2, 2, 2])
    d = x.detach()
    d.add_(1)
    close(x, [3, 3, 3])
    x.mul_(2)
    close(d, [6, 6, 6])


def test_grad_data_zero_zeroes_the_grad(device):
    (a,) = on(device, rand(3))
    a.requires_grad_()
    (a * a).sum().backward()
    a.grad.data.zero_()
    close(a.grad, np.zeros(3))
    (a * 3).sum().backward()
    close(a.grad, [3, 3, 3])  # no stale gradient accumulated


def test_w_row_assignment(device):
    (w,) = on(device, np.ones((3, 4), np.float32))
    w[0, :] = 0
    close(w, np.r_[np.zeros((1, 4)), np.ones((2, 4))])


def test_copies_do_not_share_storage(device):
    a = rand(3, 4, seed=3)
    (x,) = on(device, a)
    copies = [x.flip(0), x.clone(), x * 1, x.T.contiguous(), x.T.reshape(-1), x[[0, 2]], x[x > 0], x.int(), x.pad(((1, 0), (0, 0)))]
    for c in copies:
        c.zero_()
    close(x, a)


def test_contiguous_of_a_contiguous_tensor_is_itself(device):
    (x,) = on(device, rand(2, 3))
    assert x.contiguous() is x
    assert x.T.contiguous()._base is None


def test_reshape_is_a_view_only_when_strides_allow(device):
    (x,) = on(device, rand(2, 3))
    assert x.reshape(3, 2)._base is x
    assert x.T.reshape(6)._base is None
    with pytest.raises(RuntimeError, match="view size is not compatible"):
        x.T.view(6)


def test_view_ops_share_storage(device):
    (x,) = on(device, np.zeros((2, 3, 4), np.float32))
    views = [
        x.view(6, 4), x.permute(1, 0, 2), x.transpose(0, 2), x.mT, x[0].T, x.narrow(1, 1, 2),
        x.split(1, dim=2)[1], x.chunk(2, dim=1)[0], x.unbind(0)[1], x.unsqueeze(1), x.flatten(1),
        x.unsqueeze(0).squeeze(0), x[None, ..., 1], x.select(0, 1), x.select(2, -1), x.expand(2, 2, 3, 4)[0],
        x.unfold(2, 2, 2),
    ]
    for v in views:
        assert v._base is x, v.shape
        before = x._version
        v.add_(1)
        assert x._version == before + 1
    assert float(x.sum().item()) > 0


def test_expanded_view_write_raises_and_leaves_tensor_unchanged(device):
    (x,) = on(device, rand(1, 3))
    e = x.expand(4, 3)
    with pytest.raises(RuntimeError, match="more than one element of the written-to tensor"):
        e.add_(1)
    assert x._version == 0


# ----- each in-place op against NumPy -----

CASES = [
    ("add_", lambda t, o: t.add_(o), lambda a, o: a + o),
    ("add_ alpha", lambda t, o: t.add_(o, alpha=2.0), lambda a, o: a + 2 * o),
    ("sub_ alpha", lambda t, o: t.sub_(o, alpha=0.5), lambda a, o: a - 0.5 * o),
    ("mul_", lambda t, o: t.mul_(o), lambda a, o: a * o),
    ("div_", lambda t, o: t.div_(o), lambda a, o: a / o),
    ("iadd", lambda t, o: t.__iadd__(o), lambda a, o: a + o),
    ("isub", lambda t, o: t.__isub__(o), lambda a, o: a - o),
    ("imul", lambda t, o: t.__imul__(o), lambda a, o: a * o),
    ("itruediv", lambda t, o: t.__itruediv__(o), lambda a, o: a / o),
    ("pow_", lambda t, o: t.abs_().pow_(2.0), lambda a, o: np.abs(a) ** 2),
    ("neg_", lambda t, o: t.neg_(), lambda a, o: -a),
    ("clamp_", lambda t, o: t.clamp_(-0.3, 0.4), lambda a, o: np.clip(a, -0.3, 0.4)),
    ("clip_", lambda t, o: t.clip_(min=0.0), lambda a, o: np.maximum(a, 0)),
    ("exp_", lambda t, o: t.exp_(), lambda a, o: np.exp(a)),
    ("sqrt_", lambda t, o: t.abs_().sqrt_(), lambda a, o: np.sqrt(np.abs(a))),
    ("abs_", lambda t, o: t.abs_(), lambda a, o: np.abs(a)),
    ("zero_", lambda t, o: t.zero_(), lambda a, o: np.zeros_like(a)),
    ("fill_", lambda t, o: t.fill_(1.5), lambda a, o: np.full_like(a, 1.5)),
    ("copy_", lambda t, o: t.copy_(o), lambda a, o: np.broadcast_to(o, a.shape)),
    ("masked_fill_", lambda t, o: t.masked_fill_(o > 0, -2.0), lambda a, o: np.where(o > 0, -2.0, a)),
]


@pytest.mark.parametrize("name,op,ref", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("layout", ["contiguous", "transposed view", "strided view"])
def test_inplace_op_matches_numpy(device, name, op, ref, layout):
    a, o = rand(4, 6, seed=4), rand(6, seed=5)  # o broadcasts along rows
    (base,) = on(device, a)
    (other,) = on(device, o)
    if layout == "contiguous":
        target, view_np = base, lambda arr: arr
    elif layout == "transposed view":
        target, view_np = base.T[:, :4].T, lambda arr: arr  # a non-contiguous view of everything
    else:
        target, view_np = base[::2], lambda arr: arr[::2]
    out = op(target, other)
    assert out is target
    expected = a.copy()
    expected_view = view_np(expected)
    expected_view[...] = ref(view_np(a).copy(), o)
    close(base, expected, rtol=1e-5, atol=1e-6)
    close(target, expected_view, rtol=1e-5, atol=1e-6)
    assert base._version >= 1


def test_inplace_keeps_the_dtype_and_refuses_float_into_int(device):
    (x,) = on(device, np.arange(4), dtype=sg.int32)
    x += 2
    x.mul_(3)
    assert x.dtype == sg.int32
    close(x, (np.arange(4) + 2) * 3)
    with pytest.raises(RuntimeError, match="result type Float can't be cast to the desired output type Int"):
        x.add_(0.5)
    with pytest.raises(RuntimeError, match="can't be cast"):
        x /= 2
    close(x, (np.arange(4) + 2) * 3)
    (f,) = on(device, np.ones(3))
    f.add_(on(device, np.arange(3), dtype=sg.int32)[0])
    assert f.dtype == sg.float32


def test_inplace_broadcast_mismatch_raises_and_leaves_tensor_unchanged(device):
    a = rand(3, seed=6)
    (x,) = on(device, a)
    (big,) = on(device, rand(2, 3))
    with pytest.raises(RuntimeError, match=r"output with shape \[3\] doesn't match the broadcast shape \[2, 3\]"):
        x.add_(big)
    close(x, a)
    assert x._version == 0


def test_uniform_and_normal_fill_in_place(device):
    (x,) = on(device, np.zeros((200,), np.float32))
    v = x[100:]
    x.uniform_(2.0, 3.0)
    got = x.numpy()
    assert got.min() >= 2.0 and got.max() <= 3.0
    close(v, got[100:])
    x.normal_(5.0, 0.1)
    assert abs(float(x.mean().item()) - 5.0) < 0.1


# ----- autograd safety -----


def test_inplace_on_a_leaf_that_requires_grad_raises():
    x = sg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place operation"):
        x.add_(1)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad"):
        x += 1
    with pytest.raises(RuntimeError, match="a view of a leaf Variable that requires grad is being used in an in-place"):
        x[0] = 5.0
    with pytest.raises(RuntimeError, match="a view of a leaf Variable"):
        x[1:].mul_(2)
    close(x.detach(), [1, 2])
    assert x._version == 0


def test_parameter_inplace_in_grad_mode_raises():
    p = sg.nn.Parameter(sg.tensor([1.0, 2.0]))
    with pytest.raises(RuntimeError, match="a leaf Variable"):
        p.zero_()
    with sg.no_grad():
        p.zero_()
    close(p.detach(), [0, 0])
    assert p.is_leaf and p.requires_grad


def test_parameter_shares_storage_with_its_data():
    t = sg.tensor([1.0, 2.0])
    p = sg.nn.Parameter(t)
    t.add_(1)
    close(p.detach(), [2, 3])
    with sg.no_grad():
        p.mul_(2)
    close(t, [4, 6])


def test_no_grad_update_keeps_the_leaf_and_its_grad(device):
    (x,) = on(device, np.array([1.0, -2.0, 3.0]))
    x.requires_grad_()
    (x * x).sum().backward()
    with sg.no_grad():
        x -= 0.1 * x.grad
    assert x.is_leaf and x.requires_grad and x.grad is not None and x.grad_fn is None
    close(x.detach(), [0.8, -1.6, 2.4])
    x.grad.zero_()
    close(x.grad, np.zeros(3))


def test_course_sgd_loop_converges_to_the_numpy_answer(device):
    rng = np.random.default_rng(0)
    A = rng.standard_normal((20, 3)).astype(np.float32)
    w_true = np.array([1.5, -2.0, 0.5], np.float32)
    b = A @ w_true
    (At, bt) = on(device, A, b)
    (x,) = on(device, np.zeros(3))
    x.requires_grad_()
    lr = 0.2
    x_np = np.zeros(3, np.float32)
    for _ in range(80):
        loss = ((At @ x - bt) ** 2).mean()
        loss.backward()
        with sg.no_grad():
            x -= lr * x.grad
        x.grad.zero_()
        x_np = x_np - lr * (2 / len(b)) * A.T @ (A @ x_np - b)
    close(x.detach(), x_np, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(x.detach().numpy(), w_true, atol=0.05)


def test_grad_mode_inplace_on_a_non_leaf_gives_the_right_gradient(device):
    (x,) = on(device, np.array([1.0, 2.0, 3.0, 4.0]))
    x.requires_grad_()
    y = x * 2
    y += 1
    y[0] = 0
    assert not y.is_leaf and y.grad_fn is not None
    y.sum().backward()
    close(x.grad, [0, 2, 2, 2])


def test_grad_mode_write_through_a_view_of_a_non_leaf(device):
    (x,) = on(device, np.array([1.0, 2.0, 3.0]))
    x.requires_grad_()
    y = x * 2
    v = y[1:]
    v.mul_(3)
    close(y.detach(), [2, 12, 18])
    (v.sum() * 10 + y.sum()).backward()
    close(x.grad, [2, 66, 66])


def test_writing_a_value_that_requires_grad_into_a_plain_tensor(device):
    (w,) = on(device, np.array([2.0, 3.0]))
    w.requires_grad_()
    (x,) = on(device, np.zeros((2, 2)))
    x[0] = w
    x[1, 1] = w[0] * w[1]
    assert not x.is_leaf and x.requires_grad
    x.sum().backward()
    close(w.grad, [1 + 3, 1 + 2])


def _twice_plus_one(x):
    y = x * 2
    y += 1
    y[0] = 0
    return y


def _view_mul(x):
    y = x * 2.0  # (x.exp() would save its output, and changing it in place is an error, as in torch)
    y[1:].mul_(x[:-1])
    return y.exp()


def _setitem_mask_and_index(x):
    y = x * 1
    y[y < 0] = 0  # relu, in place
    y[[0, 2]] = x[[1, 3]] ** 2
    return y


def _chain(x):
    y = x.reshape(2, 3) + 0
    y.T[1].add_(x[0])
    y[:, ::2].clamp_(-0.5, 0.5)
    y.div_(x[:3].abs() + 1)
    y.abs_()
    y.pow_(2)
    y.neg_()
    y.exp_()
    return y


@pytest.mark.parametrize("fn", [_twice_plus_one, _view_mul, _setitem_mask_and_index, _chain])
def test_grad_mode_inplace_against_finite_differences(fn):
    gradcheck(fn, np.array([0.3, -0.7, 1.1, -0.2, 0.5, 0.9]))


def test_scatter_family_in_place_gradients():
    idx = sg.tensor([[2, 0, 1]])

    def fn(x, src):
        y = x * 1
        y.scatter_(0, idx, src[:1])
        y.index_add_(1, sg.tensor([0, 0]), src[:, :2], alpha=2.0)
        return y

    gradcheck(fn, rand(3, 3, seed=7).astype(np.float64), rand(3, 3, seed=8).astype(np.float64))


# ----- versions -----


def test_version_counts_every_inplace_op_on_the_storage(device):
    (x,) = on(device, rand(3, 2))
    assert x._version == 0
    v, d = x[0], x.detach()
    x.add_(1)
    v.mul_(2)
    d.zero_()
    x[1] = 3.0
    assert x._version == v._version == d._version == 4
    assert (x * 2)._version == 0
    assert x.flip(0)._version == 0  # a copy starts its own count


def test_base_and_version_attributes():
    x = sg.tensor([1.0, 2.0, 3.0])
    assert x._base is None and x.detach()._base is None
    assert x[1:]._base is x and x[1:][1:]._base is x


def test_data_assignment_shares_the_new_value():
    p = sg.nn.Parameter(sg.tensor([1.0, 2.0]))
    old = p[0:1]
    t = sg.tensor([5.0, 6.0])
    p.data = t
    t.add_(1)
    close(p.detach(), [6, 7])
    assert p.is_leaf and p.requires_grad
    with sg.no_grad():
        old.fill_(9)  # a view of the old storage does not touch the parameter any more
    close(p.detach(), [6, 7])
    close(old, [9])


def test_deepcopy_gives_tensors_with_storages_of_their_own(device):
    import copy

    layer = sg.nn.Linear(3, 2).to(device)
    twin = copy.deepcopy(layer)
    assert twin.weight is not layer.weight and isinstance(twin.weight, sg.nn.Parameter) and twin.weight.requires_grad
    with sg.no_grad():
        twin.weight.zero_()
        twin.bias.copy_(sg.ones(2, device=device))
    assert_close(twin.weight, np.zeros((2, 3)))
    assert_close(twin.bias, np.ones(2))
    assert np.abs(layer.weight.detach().numpy()).sum() > 0  # the original is untouched
    with pytest.raises(RuntimeError, match="graph leaves"):
        copy.deepcopy(layer.weight * 2)


def test_in_place_writes_carry_forward_ad_tangents(device):
    from smolgrad.autograd import forward_ad as fwAD

    p = sg.tensor([1.0, 2.0, 3.0, 4.0], device=device)
    with fwAD.dual_level():
        x = fwAD.make_dual(p, sg.ones(4, device=device))
        y = x * 2
        view = y[2:]
        y[0] = 5.0
        y[1:3] = x[:2] * 3
        z = x * 1
        z.mul_(x)
        assert_close(fwAD.unpack_dual(y).tangent, [0.0, 3.0, 3.0, 2.0])
        assert_close(fwAD.unpack_dual(view).tangent, [3.0, 2.0])
        assert_close(fwAD.unpack_dual(z).tangent, 2 * p.numpy())
