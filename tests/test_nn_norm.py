"""BatchNorm1d/2d, InstanceNorm1d/2d, GroupNorm and RMSNorm (modules and functional forms)
against NumPy references of PyTorch's documented formulas, with finite-difference gradients."""

from __future__ import annotations

import numpy as np
import pytest

import smolgrad as sg
import smolgrad.nn.functional as F
from smolgrad import nn
from helpers import assert_close, gradcheck, on, rand

# ----- NumPy references -----


def bn_ref(x, mean, var, w=None, b=None, eps=1e-5):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    out = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    if w is not None:
        out = out * w.reshape(shape)
    if b is not None:
        out = out + b.reshape(shape)
    return out


def batch_stats(x):
    dims = (0,) + tuple(range(2, x.ndim))
    n = x.size // x.shape[1]
    return x.mean(dims), x.var(dims), x.var(dims) * n / (n - 1)


def group_ref(x, g, w=None, b=None, eps=1e-5):
    n = x.shape[0]
    xg = x.reshape(n, g, -1)
    out = ((xg - xg.mean(2, keepdims=True)) / np.sqrt(xg.var(2, keepdims=True) + eps)).reshape(x.shape)
    return bn_ref(out, np.zeros(x.shape[1]), np.ones(x.shape[1]) - 1e-5, w, b, eps=1e-5)


def instance_ref(x, w=None, b=None, eps=1e-5):
    dims = tuple(range(2, x.ndim))
    out = (x - x.mean(dims, keepdims=True)) / np.sqrt(x.var(dims, keepdims=True) + eps)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    if w is not None:
        out = out * w.reshape(shape) + b.reshape(shape)
    return out


def rms_ref(x, ndims, w=None, eps=None):
    eps = np.finfo(x.dtype).eps if eps is None else eps
    dims = tuple(range(x.ndim - ndims, x.ndim))
    out = x / np.sqrt((x * x).mean(dims, keepdims=True) + eps)
    return out * w if w is not None else out


# ----- BatchNorm -----


@pytest.mark.parametrize("shape", [(5, 3), (4, 3, 7), (3, 2, 5, 3)])
def test_batch_norm_train_forward(device, shape):
    x, w, b = rand(*shape, seed=1) * 3 + 1, rand(shape[1], seed=2), rand(shape[1], seed=3)
    mean, var, _ = batch_stats(x.astype(np.float64))
    xt, wt, bt = on(device, x, w, b)
    out = F.batch_norm(xt, None, None, wt, bt, training=True)
    assert_close(out, bn_ref(x.astype(np.float64), mean, var, w, b), rtol=1e-4, atol=1e-4)


def test_batch_norm_module_running_stats_vs_numpy(device):
    bn = nn.BatchNorm2d(3).to(device)
    rm, rv = np.zeros(3), np.ones(3)
    for step in range(3):
        x = rand(4, 3, 3, 5, seed=step) * (step + 1) + step
        out = bn(on(device, x)[0])
        mean, var, unbiased = batch_stats(x.astype(np.float64))
        assert_close(out, bn_ref(x, mean, var), rtol=1e-4, atol=1e-4)
        rm, rv = 0.9 * rm + 0.1 * mean, 0.9 * rv + 0.1 * unbiased
    assert_close(bn.running_mean, rm, rtol=1e-5, atol=1e-5)
    assert_close(bn.running_var, rv, rtol=1e-5, atol=1e-5)
    assert bn.num_batches_tracked.item() == 3 and bn.num_batches_tracked.dtype == sg.int64
    # eval: the running statistics, and nothing moves
    bn.eval()
    x = rand(2, 3, 4, 4, seed=9)
    assert_close(bn(on(device, x)[0]), bn_ref(x, rm, rv), rtol=1e-4, atol=1e-4)
    assert_close(bn.running_mean, rm, rtol=1e-5, atol=1e-5)
    assert bn.num_batches_tracked.item() == 3


def test_batch_norm_cumulative_average(device):
    bn = nn.BatchNorm1d(4, momentum=None).to(device)
    xs = [rand(6, 4, seed=s) + s for s in range(3)]
    for x in xs:
        bn(on(device, x)[0])
    stats = [batch_stats(x.astype(np.float64)) for x in xs]
    assert_close(bn.running_mean, np.mean([s[0] for s in stats], axis=0), rtol=1e-5, atol=1e-5)
    # the first batch replaces the initial ones entirely (factor 1/1), then plain averages
    assert_close(bn.running_var, np.mean([s[2] for s in stats], axis=0), rtol=1e-5, atol=1e-5)


def test_batch_norm_update_stays_one_step_deep():
    bn = nn.BatchNorm1d(2)
    x = sg.tensor(rand(5, 2, seed=0))
    bn(x)
    first = bn.running_mean.lazydata
    assert not first.is_realized()  # lazy until needed...
    bn(x)
    assert first.is_realized()  # ...and realized by the next training step, so the graph never chains


def test_batch_norm_no_tracking_and_no_affine(device):
    bn = nn.BatchNorm2d(2, affine=False, track_running_stats=False).to(device)
    assert list(bn.state_dict()) == []
    assert bn.running_mean is None and bn.weight is None
    x = rand(3, 2, 2, 3, seed=4)
    mean, var, _ = batch_stats(x.astype(np.float64))
    bn.eval()  # still batch statistics: there are no running ones
    assert_close(bn(on(device, x)[0]), bn_ref(x, mean, var), rtol=1e-4, atol=1e-4)


def test_batch_norm_state_dict_like_torch(device):
    bn = nn.BatchNorm2d(5).to(device)
    sd = bn.state_dict()
    assert list(sd) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert [tuple(v.shape) for v in sd.values()] == [(5,), (5,), (5,), (5,), ()]
    assert sd["num_batches_tracked"].dtype == sg.int64
    assert_close(sd["weight"], np.ones(5, np.float32))
    assert_close(sd["running_var"], np.ones(5, np.float32))
    assert [n for n, _ in bn.named_parameters()] == ["weight", "bias"]
    # a checkpoint with torch's keys loads, and eval output follows it
    w, b, rm, rv = rand(5, seed=1), rand(5, seed=2), rand(5, seed=3), rand(5, seed=4, low=0.5, high=2.0)
    bn.load_state_dict({"weight": w, "bias": b, "running_mean": rm, "running_var": rv, "num_batches_tracked": np.array(7)})
    bn.eval()
    x = rand(2, 5, 3, 3, seed=5)
    assert_close(bn(on(device, x)[0]), bn_ref(x, rm, rv, w, b), rtol=1e-4, atol=1e-4)
    assert bn.num_batches_tracked.item() == 7
    seq = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    assert list(seq.state_dict()) == [
        "0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked",
    ]


def test_batch_norm_non_contiguous_odd(device):
    x = rand(3, 5, 7, 2, seed=6)  # viewed as (N=3, C=2, H=7, W=5) through a permute
    xt = on(device, x)[0].permute(0, 3, 2, 1)
    xn = x.transpose(0, 3, 2, 1)
    bn = nn.BatchNorm2d(2).to(device)
    mean, var, _ = batch_stats(xn.astype(np.float64))
    assert_close(bn(xt), bn_ref(xn, mean, var), rtol=1e-4, atol=1e-4)


def test_batch_norm_stable_for_a_large_mean_and_a_constant_channel(device):
    x = (rand(8, 2, 3, 3, seed=15) * 0.5 + 1e4).astype(np.float32)  # E[x^2] - E[x]^2 unshifted would lose it all
    x[:, 1] = 3.0  # a constant channel: variance 0, output 0 (not NaN)
    bn = nn.BatchNorm2d(2).to(device)
    out = bn(on(device, x)[0])
    mean, var, unbiased = batch_stats(x.astype(np.float64))
    assert_close(out, bn_ref(x.astype(np.float64), mean, var), rtol=1e-3, atol=2e-3)
    assert_close(bn.running_var, 0.9 + 0.1 * unbiased, rtol=1e-3, atol=1e-5)
    assert_close(bn.running_mean, 0.1 * mean, rtol=1e-5, atol=1e-5)


def test_batch_norm_gradients():
    x, w, b = rand(4, 3, 5, seed=7), rand(3, seed=8), rand(3, seed=9)
    gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), x, w, b)
    rm, rv = rand(3, seed=10), rand(3, seed=11, low=0.5, high=1.5)
    gradcheck(lambda x, w, b: F.batch_norm(x, sg.tensor(rm), sg.tensor(rv), w, b, training=False), x, w, b)
    bn = nn.BatchNorm2d(2).double()
    gradcheck(lambda x: bn(x), rand(3, 2, 2, 3, seed=12))


def test_batch_norm_module_backward_matches_functional(device):
    bn = nn.BatchNorm1d(3).to(device)
    x = on(device, rand(6, 3, 4, seed=13))[0].requires_grad_()
    (bn(x) * on(device, rand(6, 3, 4, seed=14))[0]).sum().backward()
    x64 = sg.tensor(rand(6, 3, 4, seed=13).astype(np.float64), requires_grad=True)
    w64 = sg.tensor(np.ones(3), requires_grad=True)
    (F.batch_norm(x64, None, None, w64, None, training=True) * sg.tensor(rand(6, 3, 4, seed=14).astype(np.float64))).sum().backward()
    assert_close(x.grad, x64.grad.numpy().astype(np.float32), rtol=1e-3, atol=1e-4)
    assert_close(bn.weight.grad, w64.grad.numpy().astype(np.float32), rtol=1e-3, atol=1e-4)


def test_batch_norm_errors():
    with pytest.raises(ValueError, match="BatchNorm2d.*4-D"):
        nn.BatchNorm2d(3)(sg.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="BatchNorm1d.*2-D"):
        nn.BatchNorm1d(3)(sg.zeros(2, 3, 4, 4))
    with pytest.raises(RuntimeError, match="BatchNorm2d: expected 3 channels.*got 4"):
        nn.BatchNorm2d(3)(sg.zeros(2, 4, 4, 4))
    with pytest.raises(ValueError, match="batch_norm: expected more than 1 value per channel"):
        nn.BatchNorm1d(3)(sg.zeros(1, 3))
    with pytest.raises(RuntimeError, match="batch_norm: running_mean should have shape \\(3,\\)"):
        F.batch_norm(sg.zeros(2, 3), sg.zeros(4), sg.ones(3))
    with pytest.raises(RuntimeError, match="batch_norm: running_mean and running_var are needed"):
        F.batch_norm(sg.zeros(2, 3), None, None, training=False)


def test_batch_norm_rejected_batch_changes_nothing(webgpu):
    bn = nn.BatchNorm1d(3)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn(sg.zeros(1, 3))
    with pytest.raises(RuntimeError, match="batch_norm: input is on webgpu but running_mean is on numpy"):
        bn(sg.ones(2, 3, device=webgpu))
    assert bn.num_batches_tracked.item() == 0  # a rejected batch is not counted (torch counts the first)
    assert_close(bn.running_mean, np.zeros(3, np.float32))


# ----- InstanceNorm -----


def test_instance_norm_forward(device):
    x = rand(2, 3, 4, 5, seed=1) * 2 + 1
    m = nn.InstanceNorm2d(3).to(device)
    assert list(m.state_dict()) == []
    assert_close(m(on(device, x)[0]), instance_ref(x.astype(np.float64)), rtol=1e-4, atol=1e-4)
    assert_close(m(on(device, x[0])[0]), instance_ref(x[:1].astype(np.float64))[0], rtol=1e-4, atol=1e-4)
    m1 = nn.InstanceNorm1d(3, affine=True).to(device)
    assert list(m1.state_dict()) == ["weight", "bias"]
    y = rand(2, 3, 6, seed=2)
    assert_close(m1(on(device, y)[0]), instance_ref(y.astype(np.float64), np.ones(3), np.zeros(3)), rtol=1e-4, atol=1e-4)


def test_instance_norm_running_stats(device):
    m = nn.InstanceNorm2d(2, track_running_stats=True).to(device)
    assert list(m.state_dict()) == ["running_mean", "running_var", "num_batches_tracked"]
    rm, rv = np.zeros(2), np.ones(2)
    for s in range(2):
        x = rand(3, 2, 3, 4, seed=s).astype(np.float64) + s
        m(on(device, x)[0])
        rm = 0.9 * rm + 0.1 * x.mean((2, 3)).mean(0)
        rv = 0.9 * rv + 0.1 * x.var((2, 3), ddof=1).mean(0)
    assert_close(m.running_mean, rm, rtol=1e-5, atol=1e-5)
    assert_close(m.running_var, rv, rtol=1e-5, atol=1e-5)
    m.eval()
    x = rand(1, 2, 3, 3, seed=5)
    assert_close(m(on(device, x)[0]), bn_ref(x, rm, rv), rtol=1e-4, atol=1e-4)


def test_instance_norm_gradients_and_errors():
    w, b = rand(3, seed=3), rand(3, seed=4)
    gradcheck(lambda x, w, b: F.instance_norm(x, weight=w, bias=b), rand(2, 3, 5, seed=2), w, b)
    with pytest.raises(ValueError, match="InstanceNorm2d.*3-D \\(C, H, W\\) or 4-D"):
        nn.InstanceNorm2d(3)(sg.zeros(2, 3))
    with pytest.raises(ValueError, match="InstanceNorm2d: expected 3 channels"):
        nn.InstanceNorm2d(3, affine=True)(sg.zeros(2, 4, 3, 3))
    with pytest.warns(UserWarning, match="num_features"):
        nn.InstanceNorm2d(3)(sg.zeros(2, 4, 3, 3))
    with pytest.raises(ValueError, match="instance_norm: expected more than 1 spatial element"):
        F.instance_norm(sg.zeros(2, 3, 1))


# ----- GroupNorm -----


@pytest.mark.parametrize("shape,groups", [((2, 6, 5), 3), ((3, 4, 3, 5), 2), ((2, 3, 7), 1), ((2, 4), 4)])
def test_group_norm_forward(device, shape, groups):
    x, w, b = rand(*shape, seed=1) * 2, rand(shape[1], seed=2), rand(shape[1], seed=3)
    m = nn.GroupNorm(groups, shape[1]).to(device)
    assert list(m.state_dict()) == ["weight", "bias"]
    m.load_state_dict({"weight": w, "bias": b})
    assert_close(m(on(device, x)[0]), group_ref(x.astype(np.float64), groups, w, b), rtol=1e-4, atol=1e-4)


def test_group_norm_non_contiguous(device):
    x = rand(5, 4, 2, seed=4)
    xt = on(device, x)[0].permute(2, 1, 0)  # (2, 4, 5)
    assert_close(F.group_norm(xt, 2), group_ref(x.transpose(2, 1, 0).astype(np.float64), 2), rtol=1e-4, atol=1e-4)


def test_group_norm_gradients_and_errors():
    gradcheck(lambda x, w, b: F.group_norm(x, 2, w, b), rand(2, 4, 3, seed=5), rand(4, seed=6), rand(4, seed=7))
    with pytest.raises(ValueError, match="GroupNorm: num_channels \\(5\\) must be divisible by num_groups \\(2\\)"):
        nn.GroupNorm(2, 5)
    with pytest.raises(RuntimeError, match="GroupNorm: expected an \\(N, 4, \\*\\) input"):
        nn.GroupNorm(2, 4)(sg.zeros(2, 6, 3))
    with pytest.raises(RuntimeError, match="group_norm: the 6 channels"):
        F.group_norm(sg.zeros(2, 6, 3), 4)


# ----- RMSNorm -----


def test_rms_norm_forward(device):
    x = rand(3, 4, 5, seed=1) * 3
    m = nn.RMSNorm(5).to(device)
    assert list(m.state_dict()) == ["weight"] and m.weight.shape == (5,)
    w = rand(5, seed=2)
    m.load_state_dict({"weight": w})
    assert_close(m(on(device, x)[0]), rms_ref(x, 1, w), rtol=1e-5, atol=1e-5)
    m2 = nn.RMSNorm([4, 5], eps=1e-3, elementwise_affine=False).to(device)
    assert list(m2.state_dict()) == []
    assert_close(m2(on(device, x)[0]), rms_ref(x.astype(np.float64), 2, eps=1e-3), rtol=1e-5, atol=1e-5)
    xt = on(device, x)[0].transpose(0, 2)  # non-contiguous (5, 4, 3)
    assert_close(F.rms_norm(xt, (3,)), rms_ref(x.transpose(2, 1, 0), 1), rtol=1e-5, atol=1e-5)


def test_rms_norm_eps_default_is_dtype_epsilon():
    x = np.zeros((2, 3))
    assert_close(F.rms_norm(sg.tensor(x + 1e-9), 3), rms_ref(x + 1e-9, 1), rtol=1e-6, atol=0)  # float64 eps
    x32 = np.full((2, 3), 1e-4, np.float32)
    assert_close(F.rms_norm(sg.tensor(x32), 3), rms_ref(x32, 1), rtol=1e-5, atol=0)  # float32 eps (1.19e-7)


def test_rms_norm_gradients_and_errors():
    gradcheck(lambda x, w: F.rms_norm(x, (4,), w), rand(3, 4, seed=3), rand(4, seed=4))
    with pytest.raises(RuntimeError, match="rms_norm: expected input with shape \\[\\*, 4\\]"):
        nn.RMSNorm(4)(sg.zeros(2, 5))
    with pytest.raises(RuntimeError, match="rms_norm: weight should have shape"):
        F.rms_norm(sg.zeros(2, 4), 4, sg.ones(3))


# ----- training with BatchNorm: the same loss curve on both devices -----


def test_cnn_with_batch_norm_trains_the_same_on_both_devices(webgpu):
    from smolgrad import optim

    def run(device):
        sg.manual_seed(0)
        model = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(4 * 3 * 3, 3), nn.BatchNorm1d(3),
        ).to(device)
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        x, y = on(device, rand(8, 1, 6, 6, seed=1))[0], sg.tensor(np.arange(8) % 3, device=device)
        losses = []
        for _ in range(4):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        model.eval()
        return losses, model(x).detach().numpy(), model[1].running_var.numpy()

    (l_np, out_np, rv_np), (l_gpu, out_gpu, rv_gpu) = run("numpy"), run(webgpu)
    assert l_np[-1] < l_np[0]
    np.testing.assert_allclose(l_gpu, l_np, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out_gpu, out_np, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(rv_gpu, rv_np, rtol=1e-4, atol=1e-5)
