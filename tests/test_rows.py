"""Row kernels (engine.kernel.RowsArg): reductions along the last axis and the elementwise work
that reads them (softmax, log-softmax, layer norm...) as one kernel, on both devices,
against NumPy; the WebGPU layouts (registers per lane, subgroups or a tree, one lane per
row), rows too long for one pass, 2-D grids, strided and float16 inputs, gradients."""

import numpy as np
import pytest

import smolgrad as sg
import smolgrad.autograd.forward_ad as fwAD
import smolgrad.nn.functional as F
from smolgrad.backend import wgsl_rows
from smolgrad.device import get_backend
from smolgrad.engine.schedule import schedule
from helpers import assert_close, gradcheck, noncontiguous_tensor


@pytest.fixture(autouse=True)
def fused(monkeypatch):
    monkeypatch.setenv("SMOLGRAD_FUSION", "1")
    monkeypatch.setenv("SMOLGRAD_ROW_FUSION", "1")


def rand(*shape, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def np_softmax(a):
    with np.errstate(invalid="ignore"):  # (fully masked rows: nan)
        e = np.exp(a - a.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)


def np_log_softmax(a):
    m = a.max(-1, keepdims=True)
    with np.errstate(invalid="ignore"):
        return a - m - np.log(np.exp(a - m).sum(-1, keepdims=True))


def np_layer_norm(a, w=None, b=None, eps=1e-5):
    y = (a - a.mean(-1, keepdims=True)) / np.sqrt(a.var(-1, keepdims=True) + eps)
    return y * (1 if w is None else w) + (0 if b is None else b)


OPS = {
    "softmax": (lambda x: x.softmax(-1), np_softmax),
    "log_softmax": (lambda x: x.log_softmax(-1), np_log_softmax),
    "layer_norm": (lambda x: F.layer_norm(x, x.shape[-1:]), np_layer_norm),
    "rms_norm": (lambda x: x * (x * x).mean(-1, keepdim=True).add(1e-6).rsqrt(),
                 lambda a: a / np.sqrt((a * a).mean(-1, keepdims=True) + 1e-6)),
}


def count(device, *tensors) -> dict:
    sg.reset_stats(device)
    sg.realize(*tensors)
    return sg.stats(device)


@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("shape", [(1, 1), (3, 1), (5, 7), (7, 300), (2, 3, 33), (1, 1030)])
def test_row_ops_are_one_kernel_and_match_numpy(device, name, shape):
    fn, ref = OPS[name]
    a = rand(*shape, seed=len(shape), scale=3.0)
    out = fn(sg.tensor(a, device=device))
    kernels = count(device, out)["kernels"]
    # (rows of 1: the last reduction is the core of the elementwise kernel already)
    assert kernels == 1 if shape[-1] > 1 else kernels <= 2
    assert_close(out, ref(a.astype(np.float64)).astype(np.float32), rtol=1e-4, atol=1e-5)


def test_kernel_is_of_the_rows_kind_and_writes_the_row_values():
    x = sg.tensor(rand(4, 6), device="numpy")
    (k,) = schedule([x.softmax(-1).lazydata.base]).kernels
    assert k.kind == "rows" and k.name.startswith("ROWS_rmax")
    assert [o.shape for o in k.outs] == [(4, 6), (4, 1), (4, 1)]  # softmax, then its max and its sum
    assert [p.kind for p in k.arg.parts] == ["reduce", "reduce", "elementwise"]


def test_row_fusion_can_be_turned_off(device, monkeypatch):
    monkeypatch.setenv("SMOLGRAD_ROW_FUSION", "0")
    a = rand(8, 50)
    out = sg.tensor(a, device=device).softmax(-1)
    assert count(device, out)["kernels"] == 3
    assert_close(out, np_softmax(a), rtol=1e-5)


@pytest.mark.parametrize("name", ["softmax", "layer_norm"])
def test_strided_inputs(device, name):
    fn, ref = OPS[name]
    a = rand(9, 13, seed=3)
    t = noncontiguous_tensor(a, device)  # x.T of a contiguous buffer
    assert_close(fn(t), ref(a), rtol=1e-4, atol=1e-5)
    b = rand(4, 20, seed=4)
    sliced = sg.tensor(b, device=device)[1:, 2:17:2]
    assert_close(fn(sliced), ref(b[1:, 2:17:2]), rtol=1e-4, atol=1e-5)
    row = sg.tensor(b[0], device=device).expand(5, 20)
    assert_close(fn(row), ref(np.broadcast_to(b[0], (5, 20))), rtol=1e-4, atol=1e-5)


def test_masked_rows_and_fully_masked_rows_give_nan(device):
    a = rand(4, 6, seed=5)
    mask = np.zeros((4, 6), bool)
    mask[0, 3:] = True
    mask[2, :] = True  # a fully masked row: nan, as torch gives
    x = sg.tensor(a, device=device).masked_fill(sg.tensor(mask, device=device), float("-inf"))
    out = x.softmax(-1).numpy()
    ref = np_softmax(np.where(mask, -np.inf, a))
    assert np.isnan(out[2]).all() and np.isnan(ref[2]).all()
    assert_close(out, ref, rtol=1e-5, atol=1e-6)
    assert_close(x.log_softmax(-1), np_log_softmax(np.where(mask, -np.inf, a)), rtol=1e-5, atol=1e-5)


def test_large_logits_stay_finite(device):
    a = np.array([[1e4, -1e4, 0.0, 5e3], [3.0, 3.0, 3.0, 3.0]], np.float32)
    assert_close(sg.tensor(a, device=device).log_softmax(-1), np_log_softmax(a.astype(np.float64)), rtol=1e-5)


def test_a_reduction_read_between_stays_a_kernel(device):
    """The max is read by a kernel that comes before the divide: it is not moved into the
    row kernel (it would come too late), the rest still is."""
    a = rand(6, 10, seed=6)
    x = sg.tensor(a, device=device)
    m = x.amax(-1, keepdim=True)
    side = (m * 2).exp()  # (6, 1), its own kernel, before the row kernel
    out = (x - m).exp() / (x - m).exp().sum(-1, keepdim=True) + side
    ref = np_softmax(a) + np.exp(a.max(-1, keepdims=True) * 2)
    assert_close(out, ref, rtol=1e-5, atol=1e-5)
    assert_close(side, np.exp(a.max(-1, keepdims=True) * 2), rtol=1e-5)


def test_row_value_read_at_another_row_is_not_fused(device):
    a = rand(5, 8, seed=7)
    x = sg.tensor(a, device=device)
    out = x - x.amax(-1, keepdim=True).flip(0)
    assert_close(out, a - a.max(-1, keepdims=True)[::-1], rtol=1e-6)


def test_row_values_are_outputs_for_other_readers(device):
    a = rand(6, 9, seed=8)
    x = sg.tensor(a, device=device)
    m = x.amax(-1, keepdim=True)
    out = (x - m).exp()
    later = m * 3  # reads the max after the row kernel
    sg.realize(out, later)
    assert_close(out, np.exp(a - a.max(-1, keepdims=True)), rtol=1e-5)
    assert_close(later, a.max(-1, keepdims=True) * 3, rtol=1e-6)


def test_cross_entropy(device):
    a = rand(7, 11, seed=9, scale=2.0)
    target = np.array([0, 3, 10, 5, 5, 1, 2])
    loss = F.cross_entropy(sg.tensor(a, device=device), sg.tensor(target, device=device))
    ref = -np_log_softmax(a.astype(np.float64))[np.arange(7), target].mean()
    assert_close(loss, np.float32(ref), rtol=1e-5)


@pytest.mark.parametrize("name", list(OPS))
def test_gradients_match_finite_differences(name):
    gradcheck(OPS[name][0], rand(3, 7, seed=10))
    gradcheck(OPS[name][0], rand(3, 7, seed=11), noncontiguous=True)


def test_layer_norm_with_affine_gradcheck():
    gradcheck(lambda x, w, b: F.layer_norm(x, (5,), w, b), rand(4, 5, seed=12), rand(5, seed=13), rand(5, seed=14))


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "layer_norm"])
def test_backward_on_webgpu_matches_numpy(webgpu, name):
    fn = OPS[name][0]
    a, g = rand(6, 37, seed=15), rand(6, 37, seed=16)
    grads = []
    for device in ("numpy", webgpu):
        x = sg.tensor(a, device=device, requires_grad=True)
        (fn(x) * sg.tensor(g, device=device)).sum().backward()
        grads.append(x.grad.numpy())
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["softmax", "layer_norm"])
def test_jvp(device, name):
    fn, ref = OPS[name]
    a, t = rand(3, 8, seed=17), rand(3, 8, seed=18)
    with fwAD.dual_level():
        out = fn(fwAD.make_dual(sg.tensor(a, device=device), sg.tensor(t, device=device)))
        primal, tangent = fwAD.unpack_dual(out)
        primal, tangent = primal.numpy(), tangent.numpy()
    eps = 1e-3
    a64, t64 = a.astype(np.float64), t.astype(np.float64)
    fd = (ref(a64 + eps * t64) - ref(a64 - eps * t64)) / (2 * eps)
    np.testing.assert_allclose(primal, ref(a64), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(tangent, fd, rtol=1e-3, atol=1e-4)


def test_float16_storage(webgpu):
    if "shader-f16" not in get_backend(webgpu).device.features:
        pytest.skip("the adapter has no shader-f16")
    a = rand(5, 40, seed=19, scale=2.0)
    for name in ("softmax", "layer_norm"):
        fn, ref = OPS[name]
        half = fn(sg.tensor(a, device=webgpu).half())
        on_numpy = fn(sg.tensor(a, device="numpy").half())
        assert half.dtype == sg.float16
        assert_close(half.float(), ref(a), rtol=5e-3, atol=5e-3)
        assert_close(half.float(), on_numpy.float().numpy(), rtol=2e-3, atol=2e-3)


# --------------------------------------------------------------------------- WebGPU layouts
@pytest.mark.parametrize("layout", ["cpu", "gpu"])
@pytest.mark.parametrize("subgroups", [True, False])
@pytest.mark.parametrize("shape", [(3, 2), (5, 7), (9, 100), (2, 1030), (3, 4096)])
def test_webgpu_layouts(webgpu, monkeypatch, layout, subgroups, shape):
    """Both row layouts (the software adapter's and a GPU's: many lanes per row, registers),
    with subgroup shuffles and with the workgroup-memory tree."""
    backend = get_backend(webgpu)
    monkeypatch.setattr(backend, "row_layout", wgsl_rows.CPU_LAYOUT if layout == "cpu" else wgsl_rows.GPU_LAYOUT)
    monkeypatch.setattr(backend, "subgroups", subgroups and backend.subgroups)
    a = rand(*shape, seed=20, scale=2.0)
    x = sg.tensor(a, device=webgpu)
    stats = count(webgpu, x.softmax(-1), F.layer_norm(x, shape[-1:]))
    assert stats["dispatches"] == 2
    assert_close(x.softmax(-1), np_softmax(a), rtol=1e-4, atol=1e-6)
    assert_close(F.layer_norm(x, shape[-1:]), np_layer_norm(a), rtol=1e-3, atol=1e-4)


def test_rows_too_long_for_one_pass_run_their_parts(webgpu, monkeypatch):
    monkeypatch.setattr(get_backend(webgpu), "row_layout", wgsl_rows.GPU_LAYOUT)  # (rows of up to 4096)
    a = rand(3, 5000, seed=21)
    x = sg.tensor(a, device=webgpu)
    out = x.softmax(-1)
    stats = count(webgpu, out)
    assert stats["kernels"] == 1 and stats["dispatches"] == 3
    assert_close(out, np_softmax(a), rtol=1e-4, atol=1e-7)


def test_grid_folds_into_two_dimensions(webgpu, monkeypatch):
    monkeypatch.setattr(get_backend(webgpu), "max_groups", 3)
    a = rand(2000, 9, seed=22)
    assert_close(sg.tensor(a, device=webgpu).softmax(-1), np_softmax(a), rtol=1e-5, atol=1e-7)


def test_shader_reads_the_row_once(webgpu):
    backend = get_backend(webgpu)
    x = sg.tensor(rand(6, 300, seed=23), device=webgpu)
    x.softmax(-1).numpy()
    src = [s for s in backend._sources.values() if "row kernel" in s and "6 rows of 300" in s][-1]
    # x is loaded into registers before the first reduction, and never again; exp(x - max)
    # is computed once (by the sum), and the divide reads it back
    assert "in1[" in src and src.rindex("in1[") < src.index("var acc0")
    divide = src[src.index("var red1") :]
    assert "exp(" not in divide and "sg_div(y0[0], red1)" in divide


def test_in_place_write_after_the_reductions_is_seen_only_after(device):
    """A row reduction read before an in-place write of its input keeps the old values."""
    a = rand(4, 6, seed=24)
    x = sg.tensor(a, device=device)
    m = x.amax(-1, keepdim=True)
    e = (x - m).exp()
    x[1:3] = 50.0
    out = e / e.sum(-1, keepdim=True)
    sg.realize(out, x)
    assert_close(out, np_softmax(a), rtol=1e-5, atol=1e-7)
    b = a.copy()
    b[1:3] = 50.0
    assert_close(x, b)
    assert_close(x.softmax(-1), np_softmax(b), rtol=1e-5, atol=1e-7)


def test_integer_and_bool_row_reductions(device):
    a = rand(5, 9, seed=25)
    x = sg.tensor(a, device=device)
    positive = x > 0
    out = x / positive.sum(-1, keepdim=True).clamp(min=1) + positive.any(-1, keepdim=True).float()
    count_ = np.maximum((a > 0).sum(-1, keepdims=True), 1)
    assert_close(out, a / count_ + (a > 0).any(-1, keepdims=True), rtol=1e-6)


def test_layer_norm_module_and_cross_entropy_backward_on_webgpu(webgpu):
    a, t = rand(6, 24, seed=26), np.array([1, 0, 23, 5, 7, 7])
    grads = []
    for device in ("numpy", webgpu):
        sg.manual_seed(0)
        norm = sg.nn.LayerNorm(24).to(device)
        x = sg.tensor(a, device=device, requires_grad=True)
        loss = F.cross_entropy(norm(x) * 2, sg.tensor(t, device=device))
        loss.backward()
        grads.append((loss.detach().numpy(), x.grad.numpy(), norm.weight.grad.numpy()))
    for got, want in zip(grads[1], grads[0]):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def _composed_layer_norm(x, w):
    """Layer norm of ordinary ops, as users write it (F.layer_norm is one Function)."""
    centered = x - x.mean(-1, keepdim=True)
    return centered * ((centered * centered).mean(-1, keepdim=True) + 1e-5).rsqrt() * w


def test_per_row_values_between_come_along(device):
    """Layer norm composed of ops, under autograd, stores its mean, x - mean and
    1 / sqrt(var + eps): the per-row elementwise kernel (the reciprocal) is a part of the
    row kernel that reads it, so the forward is two row kernels, and values and gradients
    are right."""
    a, g = rand(5, 12, seed=27), rand(5, 12, seed=28)
    x = sg.tensor(a, device=device, requires_grad=True)
    w = sg.tensor(rand(12, seed=29), device=device, requires_grad=True)
    out = _composed_layer_norm(x, w)
    assert count(device, out)["kernels"] == 2
    assert_close(out, np_layer_norm(a, w.detach().numpy()), rtol=1e-4, atol=1e-5)
    (out * sg.tensor(g, device=device)).sum().backward()
    x64 = sg.tensor(a.astype(np.float64), device="numpy", requires_grad=True)
    w64 = sg.tensor(w.detach().numpy().astype(np.float64), device="numpy", requires_grad=True)
    (_composed_layer_norm(x64, w64) * sg.tensor(g.astype(np.float64), device="numpy")).sum().backward()
    assert_close(x.grad, x64.grad.numpy().astype(np.float32), rtol=1e-4, atol=1e-5)
    assert_close(w.grad, w64.grad.numpy().astype(np.float32), rtol=1e-4, atol=1e-5)


def test_layer_norm_forward_is_one_row_kernel(device):
    x = sg.tensor(rand(5, 12, seed=27), device=device, requires_grad=True)
    w = sg.tensor(rand(12, seed=29), device=device, requires_grad=True)
    out = F.layer_norm(x, (12,), w)  # (its mean and 1/sqrt(var + eps) are kept for backward)
    assert count(device, out)["kernels"] == 1
    assert_close(out, np_layer_norm(rand(5, 12, seed=27), w.detach().numpy()), rtol=1e-4, atol=1e-5)


def test_per_row_values_alone_are_not_a_row_kernel(device):
    a, b = rand(4, 7, seed=30), rand(4, 1, seed=31)
    x, r = sg.tensor(a, device=device), sg.tensor(b, device=device)
    out = x * (r.exp() + 1)  # a per-row value, but no reduction: an ordinary elementwise kernel
    sg.realize(out)
    assert_close(out, a * (np.exp(b) + 1), rtol=1e-6)


def test_random_numbers_in_a_row_kernel_match_the_unfused_kernels(device, monkeypatch):
    """Dropout after softmax, and noise added before it: the random numbers are those of
    each element's own counter, as without row fusion."""
    a = rand(6, 40, seed=32)

    def run():
        sg.manual_seed(3)
        x = sg.tensor(a, device=device)
        y = (x + sg.rand(6, 40, device=device)).softmax(-1)
        return F.dropout(y, 0.5, training=True).numpy()

    fused = run()
    monkeypatch.setenv("SMOLGRAD_ROW_FUSION", "0")
    np.testing.assert_allclose(fused, run(), rtol=1e-5, atol=1e-7)
    assert (fused == 0).any() and (fused != 0).any()
