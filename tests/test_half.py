"""float16 (half precision), autocast and GradScaler (issue 14, half precision).

float16 is stored in 16 bits (f16 WebGPU buffers, np.float16 arrays on numpy), computed
in float32 and rounded where a kernel stores it or casts to it; reductions and matmul
accumulate in float32. References: NumPy on the float16-rounded inputs in float32,
rounded to float16 once. Stated tolerances: float16 against its exact reference within
1e-3 relative (one float16 ulp is 2**-10 ~ 9.8e-4 relative); float16 against float32
within 2e-3 relative for single ops, 1e-2 for a Linear layer's gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import assert_close, gradcheck, on, rand

import smolgrad as sg
from smolgrad import nn
from smolgrad.nn import functional as F

F16 = np.float16
ULP = 1e-3  # relative: float16 has an 11-bit significand


def f16(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float32).astype(F16)


def half_on(device, *arrays) -> list[sg.Tensor]:
    return on(device, *arrays, dtype=sg.float16)


def exact(fn, *xs) -> np.ndarray:
    """fn in float32 on the float16 values, rounded to float16 once (smolgrad's semantics)."""
    return np.asarray(fn(*[x.astype(np.float32) for x in xs])).astype(F16)


# ----- the dtype -----


def test_float16_names_and_promotion():
    assert sg.half is sg.float16 and repr(sg.float16) == "smolgrad.float16"
    assert sg.dtypes.to_dtype("half") is sg.float16 and sg.dtypes.to_dtype(np.float16) is sg.float16
    assert sg.float16.is_floating_point and sg.float16.itemsize == 2
    promote = sg.dtypes.promote
    assert promote(sg.float16, sg.float32) is sg.float32 and promote(sg.int64, sg.float16) is sg.float16
    assert sg.dtypes.promote_scalar(sg.float16, 0.5) is sg.float16


def test_creation_with_dtype_half(device):
    assert sg.zeros(3, dtype=sg.float16, device=device).dtype is sg.float16
    assert sg.randn(2, 3, dtype="float16", device=device).dtype is sg.float16
    t = sg.tensor(np.array([1.5, -2.0], dtype=F16), device=device)
    assert t.dtype is sg.float16
    assert_close(sg.full((2, 3), 0.1, dtype=sg.half, device=device), np.full((2, 3), 0.1, dtype=F16), rtol=0, atol=0)
    assert_close(sg.arange(5, device=device).half(), np.arange(5, dtype=F16), rtol=0, atol=0)


def test_casts_both_ways_round_like_numpy(device):
    x = np.concatenate([rand(37) * 100, [70000.0, -70000.0, 1e-8, 0.1, np.nan]]).astype(np.float32)
    with np.errstate(over="ignore"):
        x16 = x.astype(F16)
    t = sg.tensor(x, device=device)
    h = t.half()
    assert h.dtype is sg.float16 and h.numpy().dtype == F16
    np.testing.assert_array_equal(h.numpy(), x16)  # round to nearest even, overflow to inf
    np.testing.assert_array_equal(h.float().numpy(), x16.astype(np.float32))
    np.testing.assert_array_equal(t.to(sg.float16).numpy(), x16)
    np.testing.assert_array_equal(t.to("float16").numpy(), x16)
    # a cast to half inside a fused kernel rounds too
    np.testing.assert_array_equal((t.half().float() - t).numpy(), x16.astype(np.float32) - x)
    ints = sg.tensor([3, -7, 2049], device=device)
    np.testing.assert_array_equal(ints.half().numpy(), np.array([3, -7, 2048], dtype=F16))
    np.testing.assert_array_equal(sg.tensor([2.7, -1.5], device=device).half().long().numpy(), [2, -1])
    np.testing.assert_array_equal(sg.tensor([0.0, 0.5], device=device).half().bool().numpy(), [False, True])


def test_cast_gradient_flows_back_in_the_source_dtype(device):
    w = sg.tensor(rand(4, 3), device=device, requires_grad=True)
    (w.half() * 3.0).sum().backward()
    assert w.grad.dtype is sg.float32
    assert_close(w.grad, np.full((4, 3), 3.0, np.float32))


# ----- ops against their references -----


@pytest.mark.parametrize(
    "name, fn",
    [
        ("add_mul_const", lambda a, b: a * b + 0.1),
        ("div", lambda a, b: a / (b.abs() + 0.5)),
        ("exp_tanh", lambda a, b: a.exp() - b.tanh()),
        ("sqrt_log", lambda a, b: (a.abs() + 1.0).sqrt() * (b.abs() + 0.1).log()),
        ("where_max", lambda a, b: sg.where(a > b, a, b * 2.0).maximum(a)),
    ],
)
def test_elementwise_half_against_float32_reference(device, name, fn, monkeypatch):
    # one fused kernel computes in float32 and rounds once; unfused, every op's result is
    # stored as float16 and rounded again (CI also runs the suite with fusion off)
    monkeypatch.setenv("SMOLGRAD_FUSION", "1")
    a, b = f16(rand(7, 13, seed=1) * 3), f16(rand(7, 13, seed=2) * 3)
    ta, tb = half_on(device, a, b)
    out = fn(ta, tb)
    assert out.dtype is sg.float16
    ref32 = fn(*on("numpy", a.astype(np.float32), b.astype(np.float32))).numpy()
    assert_close(out, ref32.astype(F16), rtol=ULP, atol=1e-3)  # computed in float32, rounded once
    assert_close(out.float(), ref32, rtol=2e-3, atol=2e-3)


def test_elementwise_half_non_contiguous(device):
    a = f16(rand(6, 10) * 4)
    t = sg.tensor(a, device=device)
    views = [(t.T, a.T), (t[1:5, ::3], a[1:5, ::3]), (t[:, 2:3].expand(6, 4), np.broadcast_to(a[:, 2:3], (6, 4)))]
    for v, ref in views:
        assert_close(v * 2.0 + v.exp(), exact(lambda x: x * 2.0 + np.exp(x), np.ascontiguousarray(ref)), rtol=ULP, atol=1e-3)


def test_mixed_half_and_float_promotes_to_float(device):
    h, f = sg.tensor(f16([1.0, 2.0]), device=device), sg.tensor([0.25, 0.5], device=device)
    out = h + f
    assert out.dtype is sg.float32
    assert_close(out, np.array([1.25, 2.5], np.float32))


def test_reductions_accumulate_in_float32(device):
    # 4096 ones: a float16 accumulator stops at 2048 (2048 + 1 rounds back to 2048)
    ones = sg.ones(4096, dtype=sg.float16, device=device)
    assert ones.sum().dtype is sg.float16 and ones.sum().item() == 4096.0
    x = f16(rand(3, 5000))  # few long rows: webgpu's two-pass reduction
    t = sg.tensor(x, device=device)
    assert_close(t.sum(1), exact(lambda v: v.sum(1), x), rtol=ULP, atol=0.05)
    assert_close(t.mean(1), exact(lambda v: v.mean(1), x), rtol=ULP, atol=1e-3)
    np.testing.assert_array_equal(t.amax(1).numpy(), x.max(1))
    y = f16(rand(9, 33, 5))  # odd shapes, middle axis
    assert_close(sg.tensor(y, device=device).sum(1), exact(lambda v: v.sum(1), y), rtol=ULP, atol=0.01)
    assert_close(sg.tensor(y, device=device).sum(), exact(np.sum, y), rtol=ULP, atol=0.05)


def test_matmul_half_accumulates_in_float32(device):
    a, b = f16(rand(17, 33)), f16(rand(33, 9))
    out = sg.tensor(a, device=device) @ sg.tensor(b, device=device)
    assert out.dtype is sg.float16
    assert_close(out, exact(np.matmul, a, b), rtol=ULP, atol=2e-3)
    assert_close(out.float(), a.astype(np.float32) @ b.astype(np.float32), rtol=2e-3, atol=5e-3)
    k = sg.ones(1, 4096, dtype=sg.float16, device=device) @ sg.ones(4096, 1, dtype=sg.float16, device=device)
    assert k.item() == 4096.0
    # transposed and batch-broadcast operands
    c, d = f16(rand(2, 5, 7)), f16(rand(6, 7))
    tc, td = half_on(device, c, d)
    assert_close(tc @ td.T, exact(lambda u, v: u @ v.T, c, d), rtol=ULP, atol=2e-3)


def test_softmax_half_against_float32(device):
    x = f16(rand(5, 37) * 8)
    out = sg.tensor(x, device=device).softmax(-1)
    assert out.dtype is sg.float16
    ref = np.exp(x.astype(np.float32) - x.astype(np.float32).max(-1, keepdims=True))
    ref /= ref.sum(-1, keepdims=True)
    assert_close(out.float(), ref, rtol=2e-3, atol=1e-4)
    assert_close(sg.tensor(x, device=device).log_softmax(-1).float(), np.log(ref), rtol=2e-3, atol=2e-3)


def test_linear_half_forward_backward_against_float32(device):
    sg.manual_seed(3)
    layer = nn.Linear(12, 5).to(device)
    x = rand(8, 12)
    w32, b32 = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    layer.half()
    assert layer.weight.dtype is sg.float16 and layer.bias.dtype is sg.float16
    xt = sg.tensor(x, device=device).half().requires_grad_()
    out = layer(xt)
    assert out.dtype is sg.float16
    assert_close(out.float(), x @ w32.T + b32, rtol=1e-2, atol=1e-2)
    (out.float() ** 2).sum().backward()
    g = 2 * (x @ w32.T + b32)
    assert layer.weight.grad.dtype is sg.float16 and xt.grad.dtype is sg.float16
    assert_close(layer.weight.grad.float(), g.T @ x, rtol=1e-2, atol=2e-2)
    assert_close(layer.bias.grad.float(), g.sum(0), rtol=1e-2, atol=2e-2)
    assert_close(xt.grad.float(), g @ w32, rtol=1e-2, atol=2e-2)


def test_embedding_half_backward_sums_in_float32(device):
    emb = nn.Embedding(4, 3).to(device).half()
    idx = sg.tensor(np.array([1, 1, 3] + [2] * 3000), device=device)
    emb(idx).float().sum().backward()
    assert emb.weight.grad.dtype is sg.float16
    np.testing.assert_array_equal(emb.weight.grad.numpy()[:, 0], np.array([0, 2, 3000, 1], F16))


def test_webgpu_agrees_with_numpy_on_a_half_chain(webgpu):
    x, w = f16(rand(6, 20) * 2), f16(rand(20, 7))

    def chain(device):
        tx, tw = half_on(device, x, w)
        h = (tx @ tw).tanh() * 1.7 + tx[:, :7].sigmoid()
        return h.softmax(-1).numpy(), h.sum(0).numpy()

    for got, ref in zip(chain("webgpu"), chain("numpy")):
        assert got.dtype == F16
        np.testing.assert_allclose(got.astype(np.float32), ref.astype(np.float32), rtol=ULP, atol=1e-3)


def test_half_views_of_odd_length_read_back(device):
    x = f16(np.arange(11) * 0.5)
    t = sg.tensor(x, device=device)
    np.testing.assert_array_equal(t[3:8].numpy(), x[3:8])
    np.testing.assert_array_equal(t[1::2].numpy(), x[1::2])
    np.testing.assert_array_equal(t[5:6].numpy(), x[5:6])
    t[2:5] = 7.25
    x[2:5] = 7.25
    np.testing.assert_array_equal(t.numpy(), x)


def test_webgpu_half_buffers_hold_two_bytes_per_element(webgpu):
    from smolgrad.backend import wgsl

    t = sg.tensor(f16(np.ones(7)), device=webgpu)
    t.numpy()
    assert t.lazydata.realized.nbytes == 16  # 14 bytes, padded to a 4-byte multiple
    u = (t * 2.0).contiguous()
    u.numpy()
    assert u.lazydata.realized.nbytes == 16
    assert wgsl.uses_f16("var<storage, read> in1: array<f16>;") and not wgsl.uses_f16("array<f32>")
    assert wgsl.storage_type(sg.float16) == "f16" and wgsl.wgsl_type(sg.float16) == "f32"


def test_only_kernels_touching_half_enable_f16(webgpu, monkeypatch):
    """`enable f16;` (which fails to compile without shader-f16) only where needed."""
    from smolgrad.backend import wgsl
    from smolgrad.device import get_backend

    backend = get_backend(webgpu)
    compile_ = backend.pipeline
    seen: list[str] = []
    monkeypatch.setattr(backend, "pipeline", lambda src, n_out, n_in: (seen.append(src), compile_(src, n_out, n_in))[1])

    def kernels(dtype) -> list[str]:
        seen.clear()
        x = sg.tensor(rand(5, 70), device=webgpu).type(dtype)
        w = sg.tensor(rand(70, 3), device=webgpu).type(dtype)
        emb = sg.tensor(rand(6, 4), device=webgpu).type(dtype)
        outs = [x @ w, x.softmax(-1), x.sum(), F.pad(x, (1, 1)), emb[sg.tensor([1, 5], device=webgpu)]]
        sg.realize(*outs)
        return list(seen)

    full, half = kernels(sg.float32), kernels(sg.float16)
    assert len(full) >= 5 and not any(wgsl.uses_f16(src) for src in full)
    touching = [src for src in half if wgsl.uses_f16(src)]  # (not the index arithmetic of the gather)
    assert len(touching) >= 5 and all("array<f16>" in src for src in touching)


def test_without_shader_f16_the_error_names_the_feature(webgpu):
    from smolgrad.backend.webgpu_backend import WebGPUBackend

    class NoF16:
        device = type("Device", (), {"features": frozenset({"timestamp-query"})})()
        adapter_info = {"device": "an old GPU"}

    with pytest.raises(TypeError, match="shader-f16.*an old GPU"):
        WebGPUBackend.check_dtype(NoF16(), sg.float16)
    WebGPUBackend.check_dtype(NoF16(), sg.float32)  # float32 needs nothing


# ----- modules and checkpoints -----


def test_module_half_and_state_dict_round_trip(device, tmp_path):
    sg.manual_seed(1)
    model = nn.Sequential(nn.Linear(5, 4), nn.LayerNorm(4), nn.Linear(4, 3)).to(device).half()
    assert all(p.dtype is sg.float16 for p in model.parameters())
    path = tmp_path / "half.safetensors"
    sg.save(model.state_dict(), path)
    header_len = int.from_bytes(path.read_bytes()[:8], "little")
    assert '"F16"' in path.read_bytes()[8 : 8 + header_len].decode()
    for target in ("numpy", device):
        loaded = sg.load(path, device=target)
        for name, value in model.state_dict().items():
            assert loaded[name].dtype is sg.float16 and loaded[name].device == target
            np.testing.assert_array_equal(loaded[name].numpy(), value.detach().numpy())
    fresh = nn.Sequential(nn.Linear(5, 4), nn.LayerNorm(4), nn.Linear(4, 3)).to(device).half()
    fresh.load_state_dict(sg.load(path, device=device))
    x = sg.tensor(rand(2, 5), device=device).half()
    np.testing.assert_array_equal(fresh(x).detach().numpy(), model(x).detach().numpy())


def test_load_state_dict_keeps_each_parameter_dtype(device):
    # as torch's param.copy_(value): a float16 checkpoint into a float32 module stays float32
    full, half = nn.Linear(3, 2).to(device), nn.Linear(3, 2).to(device).half()
    full.load_state_dict(half.state_dict())
    assert full.weight.dtype is sg.float32
    np.testing.assert_array_equal(full.weight.detach().numpy(), half.weight.detach().numpy().astype(np.float32))
    half.load_state_dict(nn.Linear(3, 2).to(device).state_dict())
    assert half.weight.dtype is sg.float16


@pytest.mark.parametrize("make", [lambda ps: sg.optim.SGD(ps, lr=0.1, momentum=0.9), lambda ps: sg.optim.AdamW(ps, lr=0.1)])
def test_optimizers_step_float16_parameters_alike_on_both_devices(webgpu, make):
    start, x_host = nn.Linear(3, 2).state_dict(), f16(rand(4, 3))

    def run(device):
        model = nn.Linear(3, 2)
        model.load_state_dict(start)
        model.to(device).half()
        opt = make(model.parameters())
        x = sg.tensor(x_host, device=device)
        for _ in range(3):
            opt.zero_grad()
            model(x).float().pow(2).sum().backward()
            opt.step()
        assert all(v.dtype is sg.float16 for v in opt.state[model.weight].values() if isinstance(v, sg.Tensor))
        return model.weight.detach().numpy()

    got, ref = run(webgpu), run("numpy")
    assert got.dtype == F16
    np.testing.assert_allclose(got.astype(np.float32), ref.astype(np.float32), rtol=ULP, atol=1e-3)


# ----- autocast -----


def test_autocast_op_policy(device):
    x = sg.tensor(rand(4, 6), device=device)
    w = sg.tensor(rand(3, 6), device=device)
    img, kernel = sg.tensor(rand(1, 2, 5, 5), device=device), sg.tensor(rand(3, 2, 3, 3), device=device)
    q = sg.tensor(rand(1, 2, 4, 8), device=device)
    target = sg.tensor(np.array([0, 1, 2, 1]), device=device)
    with sg.autocast(device_type=device):
        assert sg.is_autocast_enabled(device) and sg.get_autocast_dtype(device) is sg.float16
        lowered = {
            "matmul": x @ w.T,
            "linear": F.linear(x, w),
            "conv2d": F.conv2d(img, kernel),
            "attention": F.scaled_dot_product_attention(q, q, q, is_causal=True),
            "mm": x.mm(w.T),
        }
        h = lowered["linear"]
        widened = {
            "softmax": h.softmax(-1),
            "log_softmax": F.log_softmax(h, -1),
            "layer_norm": F.layer_norm(h, (3,)),
            "cross_entropy": F.cross_entropy(h, target),
            "mse_loss": F.mse_loss(h, h.detach() * 0.5),
            "sum": h.sum(),
        }
        promoted = h + x[:, :3]  # other ops: the promoted input dtype
        same = h.relu()
        kept = {"mean": h.mean(), "var": h.var(0), "gelu": F.gelu(h)}
        widened["norm"] = h.norm()
        f64 = F.linear(x.double(), w.double()) if device == "numpy" else None
    assert all(v.dtype is sg.float16 for v in lowered.values()), {k: v.dtype for k, v in lowered.items()}
    assert all(v.dtype is sg.float32 for v in widened.values()), {k: v.dtype for k, v in widened.items()}
    assert promoted.dtype is sg.float32 and same.dtype is sg.float16
    assert all(v.dtype is sg.float16 for v in kept.values()), {k: v.dtype for k, v in kept.items()}
    if f64 is not None:
        assert f64.dtype is sg.float64  # float64 is never cast
    assert_close(lowered["linear"].float(), x.numpy() @ w.numpy().T, rtol=2e-3, atol=5e-3)
    assert (x @ w.T).dtype is sg.float32 and not sg.is_autocast_enabled(device)


def test_autocast_enabled_flag_nesting_device_and_decorator(device):
    other = "numpy" if device == "webgpu" else "webgpu"
    x = sg.tensor(rand(2, 3), device=device)
    with sg.autocast(device, enabled=False):
        assert (x @ x.T).dtype is sg.float32
    with sg.autocast(device):
        with sg.autocast(device, enabled=False):
            assert (x @ x.T).dtype is sg.float32
        assert (x @ x.T).dtype is sg.float16
    with sg.autocast(other):  # another device's autocast leaves these tensors alone
        assert (x @ x.T).dtype is sg.float32 and not sg.is_autocast_enabled(device)

    @sg.autocast(device)
    def product(a):
        return a @ a.T

    assert product(x).dtype is sg.float16
    assert sg.amp.autocast is sg.autocast


def test_autocast_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="float16"):
        sg.autocast("numpy", dtype=sg.float32)
    with pytest.raises(ValueError, match="unknown device"):
        sg.autocast("tpu")
    with pytest.raises(ValueError, match="device_type"):
        sg.autocast(None)


def test_autocast_keeps_float32_master_weights_and_float32_grads(device):
    sg.manual_seed(2)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).to(device)
    x, y = sg.tensor(rand(5, 6), device=device), sg.tensor(np.array([0, 2, 1, 1, 0]), device=device)
    with sg.autocast(device):
        logits = model(x)
        loss = F.cross_entropy(logits, y)
    assert logits.dtype is sg.float16 and loss.dtype is sg.float32
    loss.backward()
    ref = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).to(device)
    ref.load_state_dict(model.state_dict())
    F.cross_entropy(ref(x), y).backward()
    for p, q in zip(model.parameters(), ref.parameters()):
        assert p.dtype is sg.float32 and p.grad.dtype is sg.float32
        assert_close(p.grad, q.grad.numpy(), rtol=2e-2, atol=2e-3)


def test_float64_gradcheck_under_autocast_is_untouched():
    # autocast never casts float64, so gradients through its ops stay exact
    def fn(x, w):
        with sg.autocast("numpy"):
            return F.linear(x, w).softmax(-1)

    gradcheck(fn, rand(3, 4), rand(2, 4))


# ----- GradScaler -----


def _one_param_setup(device, grad_value):
    p = nn.Parameter(sg.tensor([1.0, 2.0], device=device))
    opt = sg.optim.SGD([p], lr=0.1)
    scaler = sg.amp.GradScaler(device, init_scale=8.0, growth_interval=2)

    def backward():
        opt.zero_grad()
        scaler.scale((p * sg.tensor(grad_value, device=device)).sum()).backward()

    return p, opt, scaler, backward


def test_grad_scaler_unscales_and_steps(device):
    p, opt, scaler, backward = _one_param_setup(device, [1.0, -2.0])
    backward()
    assert_close(p.grad, np.array([8.0, -16.0], np.float32))  # scaled
    scaler.step(opt)
    assert_close(p.grad, np.array([1.0, -2.0], np.float32))  # unscaled in place
    assert_close(p, np.array([0.9, 2.2], np.float32))
    scaler.update()
    assert scaler.get_scale() == 8.0
    backward()
    scaler.step(opt)
    scaler.update()
    assert scaler.get_scale() == 16.0  # grown after growth_interval clean steps
    assert scaler.state_dict() == {
        "scale": 16.0,
        "growth_factor": 2.0,
        "backoff_factor": 0.5,
        "growth_interval": 2,
        "_growth_tracker": 0,
    }


@pytest.mark.parametrize("bad", [math.inf, math.nan])
def test_grad_scaler_skips_the_step_on_inf_or_nan_and_backs_off(device, bad):
    p, opt, scaler, backward = _one_param_setup(device, [1.0, bad])
    backward()
    assert scaler.step(opt) is None
    assert_close(p, np.array([1.0, 2.0], np.float32))  # not updated
    scaler.update()
    assert scaler.get_scale() == 4.0 and scaler.state_dict()["_growth_tracker"] == 0


def test_grad_scaler_scale_is_float32_and_does_not_overflow_half():
    scaler = sg.amp.GradScaler("numpy")
    loss = sg.tensor(4.0, dtype=sg.float16)
    scaled = scaler.scale(loss)
    assert scaled.dtype is sg.float32 and scaled.item() == 4.0 * 2**16
    a, b = scaler.scale([loss, loss])
    assert a.item() == b.item() == 4.0 * 2**16


def test_grad_scaler_state_dict_round_trip_and_disabled():
    a = sg.amp.GradScaler("numpy", init_scale=1024.0, growth_interval=7)
    b = sg.amp.GradScaler("numpy")
    b.load_state_dict(a.state_dict())
    assert b.state_dict() == a.state_dict() and b.get_scale() == 1024.0 and b.get_growth_interval() == 7
    off = sg.amp.GradScaler("numpy", enabled=False)
    loss = sg.tensor(3.0)
    assert off.scale(loss) is loss and off.get_scale() == 1.0 and off.state_dict() == {} and not off.is_enabled()
    with pytest.raises(RuntimeError, match="empty"):
        b.load_state_dict({})


def test_grad_scaler_misuse_is_a_clear_error():
    p, opt, scaler, backward = _one_param_setup("numpy", [1.0, 1.0])
    with pytest.raises(RuntimeError, match="No inf checks"):
        scaler.update()
    backward()
    scaler.unscale_(opt)
    with pytest.raises(RuntimeError, match="already been called"):
        scaler.unscale_(opt)
    scaler.step(opt)
    with pytest.raises(RuntimeError, match="step\\(\\) has already been called"):
        scaler.step(opt)
    with pytest.raises(RuntimeError, match="after step"):
        scaler.unscale_(opt)
    scaler.update()
    with pytest.raises(ValueError, match="growth_factor"):
        sg.amp.GradScaler("numpy", growth_factor=0.5)
    with pytest.raises(ValueError, match="backoff_factor"):
        sg.amp.GradScaler("numpy", backoff_factor=2.0)
    half = nn.Parameter(sg.tensor([1.0]).half())
    half_opt = sg.optim.SGD([half], lr=0.1)
    (half * 2.0).sum().backward()
    with pytest.raises(ValueError, match="FP16 gradients"):
        sg.amp.GradScaler("numpy").unscale_(half_opt)


def test_mlp_trained_under_autocast_converges_like_float32(device):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = (x[:, :1] * x[:, 1:2] > 0).astype(np.int64).reshape(-1)  # xor-like quadrants

    def train(amp: bool) -> list[float]:
        sg.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 2)).to(device)
        opt = sg.optim.Adam(model.parameters(), lr=0.05)
        scaler = sg.amp.GradScaler(device, enabled=amp)
        xt, yt = sg.tensor(x, device=device), sg.tensor(y, device=device)
        losses = []
        for _ in range(40):
            with sg.autocast(device, enabled=amp):
                loss = F.cross_entropy(model(xt), yt)
            opt.zero_grad()
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            losses.append(loss.item())
        assert all(p.dtype is sg.float32 for p in model.parameters())
        return losses

    half, full = train(True), train(False)
    assert half[-1] < 0.5 * half[0], half
    assert abs(half[-1] - full[-1]) < 0.1 * full[0], (half[-1], full[-1])
    np.testing.assert_allclose(half[:5], full[:5], rtol=2e-2)


def test_train_gpt_with_dtype_float16_learns(tmp_path):
    """examples/train_gpt.py --dtype float16: autocast + GradScaler, float32 weights."""
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("tokenizers", reason="the GPT example needs `tokenizers`")
    repo = Path(__file__).resolve().parents[1]
    folders = [os.environ.get("SMOLGRAD_DATA"), repo.parent / "shared" / "data"]
    data = next((Path(f) / "tinystories" / "tiny_4_stories.txt" for f in folders
                 if f and (Path(f) / "tinystories" / "tiny_4_stories.txt").is_file()), None)
    if data is None:
        pytest.skip("tiny_4_stories.txt is not here: set SMOLGRAD_DATA to ../shared/data")
    checkpoint = tmp_path / "gpt.safetensors"
    args = ["--no-progress", "--device", "numpy", "--data", str(data), "--config", "tiny", "--steps", "16",
            "--batch-size", "8", "--eval-every", "8", "--eval-batches", "2", "--samples", "0",
            "--checkpoint", str(checkpoint), "--dtype", "float16"]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(repo / "examples" / "train_gpt.py"), *args],
                            capture_output=True, text=True, timeout=600, env=env)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    losses = [float(v) for v in re.findall(r"val loss ([\d.]+)", out)]
    assert len(losses) == 3 and losses[-1] < losses[0] - 0.2, out
    state = sg.load(checkpoint, device="numpy")
    assert 0 < state["scaler"]["scale"] <= 2.0**16 and state["scaler"]["_growth_tracker"] >= 0
    assert all(v.dtype is sg.float32 for v in state["model"].values())
