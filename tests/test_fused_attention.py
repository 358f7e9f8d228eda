"""The fused attention op (smolgrad.fused_attention; a flash-attention kernel on webgpu)
against a NumPy reference of torch's formula and against the unfused composition:
forward and backward, causal and masked, odd sizes, strided inputs, both devices."""

from __future__ import annotations

import numpy as np
import pytest

import smolgrad as sg
import smolgrad.nn.functional as F
from smolgrad import func, fused_attention
from smolgrad.ops import Op

from helpers import assert_close, gradcheck, on, rand

ATOL = 2e-5


def reference(q, k, v, mask=None, causal=False, scale=None):
    """softmax(q k^T * scale + mask) v in float64, mask bool (True = may attend) or additive."""
    q, k, v = (np.asarray(x, np.float64) for x in (q, k, v))
    scale = 1 / np.sqrt(q.shape[-1]) if scale is None else scale
    s = q @ np.swapaxes(k, -1, -2) * scale
    if causal:
        s = np.where(np.tri(s.shape[-2], s.shape[-1], dtype=bool), s, -np.inf)
    if mask is not None:
        s = np.where(mask, s, -np.inf) if mask.dtype == bool else s + mask
    s = s - s.max(-1, keepdims=True)
    p = np.exp(s)
    return (p / p.sum(-1, keepdims=True)) @ v


def is_fused(t: sg.Tensor) -> bool:
    return t.lazydata.base.op is Op.ATTENTION


def mask_for(L, S, seed=0):
    m = np.random.default_rng(seed).random((L, S)) > 0.4
    m[:, 0] = True  # no fully masked row
    return m


# (batch, L, S, D, Dv): rows of 1, odd sizes, more rows than a workgroup (64) and more keys than a tile (32)
# head dims multiples of 4 are read as vec4s on webgpu, others one float at a time
SHAPES = [((2, 3), 5, 7, 4, 6), ((1,), 1, 1, 3, 2), ((2,), 1, 9, 4, 8), ((1, 2), 70, 45, 8, 3), ((3,), 33, 67, 1, 4),
          ((2,), 37, 70, 8, 4)]


@pytest.mark.parametrize("batch,L,S,D,Dv", SHAPES)
@pytest.mark.parametrize("kind", ["plain", "causal", "bool mask", "float mask"])
def test_forward_matches_reference(device, batch, L, S, D, Dv, kind):
    q, k, v = rand(*batch, L, D, seed=1), rand(*batch, S, D, seed=2), rand(*batch, S, Dv, seed=3)
    qt, kt, vt = on(device, q, k, v)
    mask, kw = None, {}
    if kind == "causal":
        kw = {"is_causal": True}
    elif kind == "bool mask":
        mask = mask_for(L, S)
        kw = {"attn_mask": sg.tensor(mask, device=device)}
    elif kind == "float mask":
        mask = rand(L, S, seed=4) * 3
        kw = {"attn_mask": sg.tensor(mask, device=device)}
    out = F.scaled_dot_product_attention(qt, kt, vt, **kw)
    assert is_fused(out)
    assert_close(out, reference(q, k, v, mask, kind == "causal").astype(np.float32), atol=ATOL, rtol=1e-4)


def grads(device, arrays, fused: bool, monkeypatch, dtype=sg.float32, **kw):
    monkeypatch.setenv("SMOLGRAD_FUSED_ATTENTION", "1" if fused else "0")
    q, k, v = (sg.tensor(a, dtype=dtype, device=device, requires_grad=True) for a in arrays)
    out = F.scaled_dot_product_attention(q, k, v, **kw)
    assert is_fused(out) == fused
    weights = np.random.default_rng(7).standard_normal(out.shape)
    (out * sg.tensor(weights, dtype=dtype, device=device)).sum().backward()
    return [out.detach().numpy()] + [x.grad.numpy() for x in (q, k, v)]


@pytest.mark.parametrize("batch,L,S,D,Dv", SHAPES)
@pytest.mark.parametrize("kind", ["plain", "causal", "mask"])
def test_backward_matches_unfused(device, batch, L, S, D, Dv, kind, monkeypatch):
    arrays = rand(*batch, L, D, seed=1), rand(*batch, S, D, seed=2), rand(*batch, S, Dv, seed=3)
    kw = {"is_causal": kind == "causal"}
    if kind == "mask":
        kw = {"attn_mask": sg.tensor(mask_for(L, S), device=device)}
    fused = grads(device, arrays, True, monkeypatch, **kw)
    unfused = grads(device, arrays, False, monkeypatch, **kw)
    for a, b in zip(fused, unfused):
        np.testing.assert_allclose(a, b, atol=ATOL, rtol=1e-4)


@pytest.mark.parametrize("kind", ["plain", "causal", "mask"])
def test_gradcheck(kind):
    L, S = (4, 4) if kind == "causal" else (3, 5)
    mask = sg.tensor(mask_for(L, S), device="numpy")
    kw = {"is_causal": True} if kind == "causal" else {"attn_mask": mask} if kind == "mask" else {}

    def fn(q, k, v):
        out = F.scaled_dot_product_attention(q, k, v, scale=0.7, **kw)
        assert is_fused(out)
        return out

    gradcheck(fn, rand(2, L, 3, seed=1), rand(2, S, 3, seed=2), rand(2, S, 2, seed=3))


@pytest.mark.parametrize("hd", [5, 8])
def test_strided_inputs_like_the_gpt(device, monkeypatch, hd):
    """q, k, v as permuted slices of one qkv projection (read in place), a broadcast mask."""
    B, T, H = 2, 37, 3
    x = rand(B, T, 3, H, hd, seed=5)
    mask = mask_for(T, T)

    def run(fused: bool):
        monkeypatch.setenv("SMOLGRAD_FUSED_ATTENTION", "1" if fused else "0")
        xt = sg.tensor(x, device=device, requires_grad=True)
        qkv = xt.permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=sg.tensor(mask, device=device))
        out.transpose(1, 2).sum().backward()
        return out.detach().numpy(), xt.grad.numpy()

    fused, unfused = run(True), run(False)
    for a, b in zip(fused, unfused):
        np.testing.assert_allclose(a, b, atol=ATOL, rtol=1e-4)
    p = np.transpose(x, (2, 0, 3, 1, 4))
    np.testing.assert_allclose(fused[0], reference(p[0], p[1], p[2], mask), atol=ATOL, rtol=1e-4)


def test_broadcast_batch_dims(device):
    q, k, v = rand(2, 3, 4, 5, seed=1), rand(1, 3, 6, 5, seed=2), rand(3, 6, 2, seed=3)
    out = F.scaled_dot_product_attention(*on(device, q, k, v), is_causal=True)
    assert is_fused(out)
    assert_close(out, reference(q, k, v, causal=True).astype(np.float32), atol=ATOL, rtol=1e-4)


def test_fully_masked_row_is_nan_like_unfused(device, monkeypatch):
    q, k, v = rand(1, 3, 4, seed=1), rand(1, 5, 4, seed=2), rand(1, 5, 4, seed=3)
    mask = mask_for(3, 5)
    mask[1] = False
    outs = []
    for flag in ("1", "0"):
        monkeypatch.setenv("SMOLGRAD_FUSED_ATTENTION", flag)
        outs.append(F.scaled_dot_product_attention(*on(device, q, k, v), attn_mask=sg.tensor(mask, device=device)).numpy())
    assert np.isnan(outs[0][0, 1]).all() and np.isnan(outs[1][0, 1]).all()
    np.testing.assert_allclose(outs[0][0, [0, 2]], outs[1][0, [0, 2]], atol=ATOL, rtol=1e-4)


def test_double_backward_and_jvp_match_unfused(monkeypatch):
    arrays = rand(2, 4, 3, seed=1), rand(2, 5, 3, seed=2), rand(2, 5, 2, seed=3)
    tangents = rand(2, 4, 3, seed=4), rand(2, 5, 3, seed=5), rand(2, 5, 2, seed=6)
    results = []
    for flag in ("1", "0"):
        monkeypatch.setenv("SMOLGRAD_FUSED_ATTENTION", flag)
        q, k, v = (sg.tensor(a, dtype=sg.float64, device="numpy", requires_grad=True) for a in arrays)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        (gq,) = sg.autograd.grad((out * out).sum(), [q], create_graph=True)
        (gq * gq).sum().backward()
        _, tangent = func.jvp(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, is_causal=True),
                                 [sg.tensor(a, dtype=sg.float64, device="numpy") for a in arrays],
                                 [sg.tensor(t, dtype=sg.float64, device="numpy") for t in tangents])
        results.append([gq.detach().numpy(), k.grad.numpy(), v.grad.numpy(), tangent.numpy()])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, atol=1e-10, rtol=1e-8)


def test_falls_back_past_the_head_dim_limit(device):
    d = fused_attention.MAX_HEAD_DIM + 1
    q, k, v = rand(1, 2, d, seed=1), rand(1, 3, d, seed=2), rand(1, 3, 2, seed=3)
    out = F.scaled_dot_product_attention(*on(device, q, k, v))
    assert is_fused(out) == (device == "numpy")
    assert_close(out, reference(q, k, v).astype(np.float32), atol=ATOL, rtol=1e-4)


def test_dropout_and_learned_bias_use_the_composition(device):
    q, k, v = on(device, rand(1, 3, 4, seed=1), rand(1, 3, 4, seed=2), rand(1, 3, 4, seed=3))
    assert not is_fused(F.scaled_dot_product_attention(q, k, v, dropout_p=0.5))
    bias = sg.tensor(rand(3, 3), device=device, requires_grad=True)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    assert not is_fused(out)
    out.sum().backward()
    assert bias.grad is not None


def test_errors_name_the_op(device):
    q, k, v = on(device, rand(1, 3, 4), rand(1, 3, 4), rand(1, 3, 4))
    with pytest.raises(RuntimeError, match="scaled_dot_product_attention.*is_causal"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=sg.tensor(mask_for(3, 3), device=device), is_causal=True)
    with pytest.raises(RuntimeError, match="scaled_dot_product_attention.*broadcast"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=sg.tensor(mask_for(2, 3), device=device))


def test_numpy_computes_both_backward_parts_once(monkeypatch):
    from smolgrad.backend import numpy_attention

    calls = []
    backward = numpy_attention._backward
    monkeypatch.setattr(numpy_attention, "_backward", lambda arg, xs: calls.append(arg.part) or backward(arg, xs))
    q, k, v = (sg.tensor(rand(2, 3, 5, 4, seed=i), requires_grad=True) for i in range(3))
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    (out * sg.tensor(rand(2, 3, 5, 4, seed=7))).sum().backward()
    sg.realize(q.grad, k.grad, v.grad)
    assert calls == ["backward_kv"] or calls == ["backward_q"]  # the first part run computes both
    # the same gradients as each part computed on its own
    arg = numpy_attention.AttentionArg("backward_q", 0.5, True, False)
    xs = [rand(3, 5, 4, seed=i) for i in range(3)]
    lse, delta, dout = rand(3, 5, 1, seed=4), rand(3, 5, 1, seed=5), rand(3, 5, 4, seed=6)
    both = backward(arg, xs + [lse, delta, dout])
    for part in ("backward_q", "backward_kv"):
        alone = numpy_attention.attention(arg._replace(part=part), xs + [lse, delta, dout])
        np.testing.assert_array_equal(both[part], alone)
