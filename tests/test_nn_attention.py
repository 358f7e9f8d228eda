"""Attention: F.scaled_dot_product_attention, nn.MultiheadAttention and the transformer
encoder, against NumPy references written from PyTorch's documented formulas, with
weights loaded through load_state_dict under PyTorch's key names."""

from __future__ import annotations

import math

import numpy as np
import pytest

import smolgrad as sg
import smolgrad.nn.functional as F
from smolgrad import nn
from smolgrad.nn.transformer import generate_square_subsequent_mask
from helpers import assert_close, gradcheck, on, rand

# ----- NumPy references -----


def softmax_ref(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def sdpa_ref(q, k, v, attn_mask=None, is_causal=False, scale=None):
    """torch's documented reference: bool True = take part, float = added."""
    L, S = q.shape[-2], k.shape[-2]
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    bias = np.zeros((L, S), q.dtype)
    if is_causal:
        bias[~np.tril(np.ones((L, S), bool))] = -np.inf
    if attn_mask is not None:
        bias = np.where(attn_mask, bias, -np.inf) if attn_mask.dtype == bool else bias + attn_mask
    return softmax_ref(q @ np.swapaxes(k, -1, -2) * scale + bias) @ v


def mha_ref(q, k, v, sd, num_heads, attn_mask=None, key_padding_mask=None, average=True):
    """Multi-head attention on (L, N, E) inputs: (output, weights); bool masks True = masked."""
    L, N, E = q.shape
    S, hd = k.shape[0], E // num_heads
    if "in_proj_weight" in sd:
        wq, wk, wv = np.split(sd["in_proj_weight"], 3)
    else:
        wq, wk, wv = sd["q_proj_weight"], sd["k_proj_weight"], sd["v_proj_weight"]
    bq, bk, bv = np.split(sd["in_proj_bias"], 3) if "in_proj_bias" in sd else (0, 0, 0)

    def heads(x, w, b, n):  # (n, N, *) -> (N, H, n, hd)
        return (x @ w.T + b).reshape(n, N, num_heads, hd).transpose(1, 2, 0, 3)

    Q, K, V = heads(q, wq, bq, L), heads(k, wk, bk, S), heads(v, wv, bv, S)
    scores = Q @ K.transpose(0, 1, 3, 2) / math.sqrt(hd)
    if attn_mask is not None:
        m = np.where(attn_mask, -np.inf, 0.0) if attn_mask.dtype == bool else attn_mask
        scores = scores + (m.reshape(N, num_heads, L, S) if m.ndim == 3 else m)
    if key_padding_mask is not None:
        m = np.where(key_padding_mask, -np.inf, 0.0) if key_padding_mask.dtype == bool else key_padding_mask
        scores = scores + m[:, None, None, :]
    p = softmax_ref(scores)
    out = (p @ V).transpose(2, 0, 1, 3).reshape(L, N, E) @ sd["out_proj.weight"].T
    out = out + sd.get("out_proj.bias", 0)
    return out, (p.mean(1) if average else p)


def layer_norm_ref(x, w, b, eps=1e-5):
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def encoder_layer_ref(x, sd, nhead, norm_first=False, activation=lambda a: np.maximum(a, 0), mask=None, kpm=None):
    """TransformerEncoderLayer in eval mode on (S, N, E)."""
    attn = {k[len("self_attn."):]: v for k, v in sd.items() if k.startswith("self_attn.")}

    def sa(y):
        return mha_ref(y, y, y, attn, nhead, mask, kpm)[0]

    def ff(y):
        return activation(y @ sd["linear1.weight"].T + sd["linear1.bias"]) @ sd["linear2.weight"].T + sd["linear2.bias"]

    n1 = lambda y: layer_norm_ref(y, sd["norm1.weight"], sd["norm1.bias"])  # noqa: E731
    n2 = lambda y: layer_norm_ref(y, sd["norm2.weight"], sd["norm2.bias"])  # noqa: E731
    if norm_first:
        x = x + sa(n1(x))
        return x + ff(n2(x))
    x = n1(x + sa(x))
    return n2(x + ff(x))


def random_state(module: nn.Module, seed: int = 0, scale: float = 0.5) -> dict[str, np.ndarray]:
    """Random values for every state_dict key (so biases are nonzero), as float32 arrays."""
    rng = np.random.default_rng(seed)
    return {k: (rng.standard_normal(v.shape) * scale).astype(np.float32) for k, v in module.state_dict().items()}


def loaded(module: nn.Module, device: str, seed: int = 0):
    sd = random_state(module, seed)
    module.load_state_dict(sd)
    return module.to(device), sd


# ----- scaled_dot_product_attention -----


def test_sdpa_matches_reference_with_odd_shapes(device):
    q, k, v = rand(2, 3, 5, 7, seed=1), rand(2, 3, 4, 7, seed=2), rand(2, 3, 4, 6, seed=3)
    assert_close(F.scaled_dot_product_attention(*on(device, q, k, v)), sdpa_ref(q, k, v))


def test_sdpa_bool_mask_true_takes_part_and_broadcasts(device):
    q, k, v = rand(2, 2, 3, 4, seed=1), rand(2, 2, 5, 4, seed=2), rand(2, 2, 5, 3, seed=3)
    mask = np.random.default_rng(4).random((3, 5)) > 0.4
    mask[:, 0] = True  # every row keeps one key
    out = F.scaled_dot_product_attention(*on(device, q, k, v), attn_mask=sg.tensor(mask, device=device))
    assert_close(out, sdpa_ref(q, k, v, attn_mask=mask))


def test_sdpa_additive_float_mask(device):
    q, k, v = rand(2, 1, 3, 4, seed=1), rand(2, 1, 5, 4, seed=2), rand(2, 1, 5, 4, seed=3)
    mask = rand(2, 1, 1, 5, seed=4) * 3
    out = F.scaled_dot_product_attention(*on(device, q, k, v, mask))
    assert_close(out, sdpa_ref(q, k, v, attn_mask=mask))


@pytest.mark.parametrize("L,S", [(4, 4), (3, 5), (5, 3)])
def test_sdpa_is_causal_is_top_left_aligned(device, L, S):
    q, k, v = rand(2, L, 4, seed=1), rand(2, S, 4, seed=2), rand(2, S, 3, seed=3)
    out = F.scaled_dot_product_attention(*on(device, q, k, v), is_causal=True)
    assert_close(out, sdpa_ref(q, k, v, is_causal=True))


def test_sdpa_scale_and_non_contiguous_inputs(device):
    q, k, v = rand(3, 4, 2, seed=1), rand(3, 4, 5, seed=2), rand(5, 3, 3, seed=3)
    tq, tk, tv = on(device, q, k, v)
    # (B, L, E) views built by transposing: q from (B, E, L), k flipped, v with batch swapped
    out = F.scaled_dot_product_attention(tq.transpose(1, 2), tk.transpose(1, 2).flip(1), tv.transpose(0, 1), scale=0.3)
    expected = sdpa_ref(q.transpose(0, 2, 1), k.transpose(0, 2, 1)[:, ::-1], v.transpose(1, 0, 2), scale=0.3)
    assert_close(out, expected)


def test_sdpa_enable_gqa_repeats_key_value_heads(device):
    q, k, v = rand(1, 4, 3, 2, seed=1), rand(1, 2, 5, 2, seed=2), rand(1, 2, 5, 3, seed=3)
    out = F.scaled_dot_product_attention(*on(device, q, k, v), enable_gqa=True)
    assert_close(out, sdpa_ref(q, np.repeat(k, 2, axis=1), np.repeat(v, 2, axis=1)))


def test_sdpa_dropout_zeroes_and_rescales_weights(device):
    q, k = rand(2, 6, 3, seed=1), rand(2, 5, 3, seed=2)
    v = np.broadcast_to(np.eye(5, dtype=np.float32), (2, 5, 5)).copy()  # output = attention weights
    p = 0.4
    got = F.scaled_dot_product_attention(*on(device, q, k, v), dropout_p=p).numpy()
    weights = softmax_ref(q @ k.transpose(0, 2, 1) / math.sqrt(3))
    kept = got != 0
    assert 0 < kept.mean() < 1
    np.testing.assert_allclose(got[kept], weights[kept] / (1 - p), rtol=1e-5)


def test_sdpa_gradients_match_finite_differences():
    q, k, v = rand(2, 3, 4, seed=1), rand(2, 5, 4, seed=2), rand(2, 5, 3, seed=3)
    mask = rand(3, 5, seed=4)
    gradcheck(lambda a, b, c, m: F.scaled_dot_product_attention(a, b, c, attn_mask=m), q, k, v, mask)
    gradcheck(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, is_causal=True), q, k, v)


def test_sdpa_gradients_on_webgpu_match_numpy(webgpu):
    arrays = rand(2, 3, 4, seed=1), rand(2, 5, 4, seed=2), rand(2, 5, 3, seed=3)
    grads = {}
    for dev in ("numpy", webgpu):
        ts = [sg.tensor(a, device=dev, requires_grad=True) for a in arrays]
        (F.scaled_dot_product_attention(*ts, is_causal=True) * sg.tensor(rand(2, 3, 3, seed=9), device=dev)).sum().backward()
        grads[dev] = [t.grad.numpy() for t in ts]
    for a, b in zip(grads["numpy"], grads[webgpu]):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)


def test_sdpa_bad_inputs_name_the_op():
    q, k, v = (sg.tensor(a) for a in (rand(2, 3, 4), rand(2, 5, 4), rand(2, 5, 3)))
    with pytest.raises(RuntimeError, match="scaled_dot_product_attention.*last dim"):
        F.scaled_dot_product_attention(q, sg.tensor(rand(2, 5, 3)), v)
    with pytest.raises(RuntimeError, match="scaled_dot_product_attention.*sequence length"):
        F.scaled_dot_product_attention(q, k, sg.tensor(rand(2, 4, 3)))
    with pytest.raises(RuntimeError, match="attn_mask should not be set when is_causal"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=sg.ones(3, 5, dtype="bool"), is_causal=True)
    with pytest.raises(TypeError, match="scaled_dot_product_attention.*bool or floating"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=sg.ones(3, 5, dtype="int64"))
    with pytest.raises(RuntimeError, match="scaled_dot_product_attention.*does not broadcast"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=sg.ones(3, 4, dtype="bool"))
    with pytest.raises(ValueError, match="dropout_p"):
        F.scaled_dot_product_attention(q, k, v, dropout_p=1.5)
    with pytest.raises(TypeError, match="floating point"):
        F.scaled_dot_product_attention(q.long(), k, v)
    with pytest.raises(RuntimeError, match="multiple of the key/value heads"):
        F.scaled_dot_product_attention(sg.randn(1, 3, 2, 2), sg.randn(1, 2, 2, 2), sg.randn(1, 2, 2, 2), enable_gqa=True)


# ----- MultiheadAttention -----


def test_mha_parameters_keys_and_init_follow_torch():
    mha = nn.MultiheadAttention(8, 2)
    shapes = {k: v.shape for k, v in mha.state_dict().items()}
    assert shapes == {"in_proj_weight": (24, 8), "in_proj_bias": (24,), "out_proj.weight": (8, 8), "out_proj.bias": (8,)}
    assert type(mha.out_proj).__name__ == "NonDynamicallyQuantizableLinear" and isinstance(mha.out_proj, nn.Linear)
    w = mha.in_proj_weight.detach().numpy()
    bound = math.sqrt(6 / (24 + 8))  # xavier_uniform_ on the (3E, E) weight
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert not mha.in_proj_bias.detach().numpy().any() and not mha.out_proj.bias.detach().numpy().any()
    sep = nn.MultiheadAttention(6, 3, kdim=4, vdim=5, bias=False)
    assert {k: v.shape for k, v in sep.state_dict().items()} == {
        "q_proj_weight": (6, 6), "k_proj_weight": (6, 4), "v_proj_weight": (6, 5), "out_proj.weight": (6, 6),
    }  # fmt: skip
    assert sep.in_proj_weight is None and sep.in_proj_bias is None and sep.out_proj.bias is None


def test_mha_self_attention_matches_reference_with_weights(device):
    mha, sd = loaded(nn.MultiheadAttention(6, 3), device)
    x = rand(5, 2, 6, seed=1)
    out, weights = mha(*on(device, x, x, x))
    ref_out, ref_w = mha_ref(x, x, x, sd, 3)
    assert_close(out, ref_out, rtol=1e-4, atol=1e-5)
    assert_close(weights, ref_w, rtol=1e-4, atol=1e-5)
    out, weights = mha(*on(device, x, x, x), average_attn_weights=False)
    assert_close(weights, mha_ref(x, x, x, sd, 3, average=False)[1], rtol=1e-4, atol=1e-5)
    assert mha(*on(device, x, x, x), need_weights=False)[1] is None


def test_mha_cross_attention_with_kdim_vdim_and_batch_first(device):
    mha, sd = loaded(nn.MultiheadAttention(4, 2, kdim=3, vdim=5, batch_first=True), device)
    q, k, v = rand(2, 3, 4, seed=1), rand(2, 6, 3, seed=2), rand(2, 6, 5, seed=3)
    out, weights = mha(*on(device, q, k, v))
    tr = lambda a: a.transpose(1, 0, 2)  # noqa: E731
    ref_out, ref_w = mha_ref(tr(q), tr(k), tr(v), sd, 2)
    assert_close(out, tr(ref_out), rtol=1e-4, atol=1e-5)
    assert_close(weights, ref_w, rtol=1e-4, atol=1e-5)


def test_mha_unbatched_input(device):
    mha, sd = loaded(nn.MultiheadAttention(4, 2), device)
    q, k = rand(3, 4, seed=1), rand(5, 4, seed=2)
    out, weights = mha(*on(device, q, k, k), average_attn_weights=False)
    ref_out, ref_w = mha_ref(q[:, None], k[:, None], k[:, None], sd, 2, average=False)
    assert_close(out, ref_out[:, 0], rtol=1e-4, atol=1e-5)
    assert_close(weights, ref_w[0], rtol=1e-4, atol=1e-5)


def test_mha_bool_attn_mask_and_key_padding_mask_mean_masked(device):
    mha, sd = loaded(nn.MultiheadAttention(4, 2), device)
    x = rand(4, 3, 4, seed=1)
    attn_mask = np.triu(np.ones((4, 4), bool), 1)  # True = may not attend (the future)
    kpm = np.zeros((3, 4), bool)
    kpm[1, 3] = kpm[2, 2:] = True
    out, weights = mha(*on(device, x, x, x), attn_mask=sg.tensor(attn_mask, device=device),
                       key_padding_mask=sg.tensor(kpm, device=device))  # fmt: skip
    ref_out, ref_w = mha_ref(x, x, x, sd, 2, attn_mask=attn_mask, key_padding_mask=kpm)
    assert_close(out, ref_out, rtol=1e-4, atol=1e-5)
    assert_close(weights, ref_w, rtol=1e-4, atol=1e-5)
    assert np.all(weights.detach().numpy()[2][:, 2:] == 0)


def test_mha_float_masks_are_added_and_3d_masks_are_per_head(device):
    mha, sd = loaded(nn.MultiheadAttention(4, 2), device)
    q, k = rand(3, 2, 4, seed=1), rand(5, 2, 4, seed=2)
    attn_mask, kpm = rand(2 * 2, 3, 5, seed=3), rand(2, 5, seed=4)
    out, weights = mha(*on(device, q, k, k, attn_mask, kpm)[:3], attn_mask=on(device, attn_mask)[0],
                       key_padding_mask=on(device, kpm)[0], average_attn_weights=False)  # fmt: skip
    ref_out, ref_w = mha_ref(q, k, k, sd, 2, attn_mask=attn_mask, key_padding_mask=kpm, average=False)
    assert_close(out, ref_out, rtol=1e-4, atol=1e-5)
    assert_close(weights, ref_w, rtol=1e-4, atol=1e-5)


def test_mha_is_causal_is_a_hint_that_needs_the_mask(device):
    mha, sd = loaded(nn.MultiheadAttention(4, 1), device)
    x = rand(3, 2, 4, seed=1)
    mask = generate_square_subsequent_mask(3, device=device)
    out, _ = mha(*on(device, x, x, x), attn_mask=mask, is_causal=True)
    assert_close(out, mha_ref(x, x, x, sd, 1, attn_mask=np.triu(np.ones((3, 3), bool), 1))[0], rtol=1e-4, atol=1e-5)
    with pytest.raises(RuntimeError, match="is_causal=True is a hint and needs the causal attn_mask"):
        mha(*on(device, x, x, x), is_causal=True)


def test_mha_dropout_only_in_training():
    mha = nn.MultiheadAttention(4, 2, dropout=0.5)
    x = sg.tensor(rand(3, 2, 4, seed=1))
    mha.eval()
    w_eval = mha(x, x, x)[1].detach().numpy()
    np.testing.assert_allclose(w_eval.sum(-1), 1, rtol=1e-5)
    mha.train()
    w_train = mha(x, x, x, average_attn_weights=False)[1].detach().numpy()
    assert (w_train == 0).any()


def test_mha_gradients_match_finite_differences():
    E, H = 4, 2
    q, k, v = rand(3, 2, E, seed=1), rand(4, 2, E, seed=2), rand(4, 2, E, seed=3)
    w_in, b_in, w_out, b_out = rand(3 * E, E, seed=4), rand(3 * E, seed=5), rand(E, E, seed=6), rand(E, seed=7)
    kpm = sg.tensor(np.array([[False, False, True, False], [False, False, False, False]]), device="numpy")

    def fn(q, k, v, w_in, b_in, w_out, b_out):
        return F.multi_head_attention_forward(q, k, v, E, H, w_in, b_in, None, None, False, 0.0, w_out, b_out,
                                              key_padding_mask=kpm)[0]  # fmt: skip

    gradcheck(fn, q, k, v, w_in, b_in, w_out, b_out)


def test_mha_gradients_on_webgpu_match_numpy(webgpu):
    grads = {}
    x = rand(4, 2, 4, seed=1)
    for dev in ("numpy", webgpu):
        sg.manual_seed(0)
        mha = nn.MultiheadAttention(4, 2).to(dev)
        xt = sg.tensor(x, device=dev, requires_grad=True)
        out, w = mha(xt, xt, xt)
        ((out * out).sum() + (w * w).sum()).backward()
        grads[dev] = [xt.grad.numpy()] + [p.grad.numpy() for p in mha.parameters()]
    for a, b in zip(grads["numpy"], grads[webgpu]):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)


def test_mha_bad_arguments_are_clear():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        nn.MultiheadAttention(6, 4)
    with pytest.raises(NotImplementedError, match="add_bias_kv"):
        nn.MultiheadAttention(4, 2, add_bias_kv=True)
    mha = nn.MultiheadAttention(4, 2)
    x = sg.randn(3, 2, 4)
    with pytest.raises(RuntimeError, match="query should be unbatched 2-D or batched 3-D"):
        mha(x[None], x[None], x[None])
    with pytest.raises(RuntimeError, match="key and value must also be 3-D"):
        mha(x, x[:, 0], x[:, 0])
    with pytest.raises(RuntimeError, match="expecting embedding dimension of 4, but got 5"):
        mha(sg.randn(3, 2, 5), x, x)
    with pytest.raises(RuntimeError, match=r"key_padding_mask shape of \(2, 3\)"):
        mha(x, x, x, key_padding_mask=sg.zeros(2, 4, dtype="bool"))
    with pytest.raises(RuntimeError, match=r"2-D attn_mask is \(3, 4\), but should be \(3, 3\)"):
        mha(x, x, x, attn_mask=sg.zeros(3, 4, dtype="bool"))
    with pytest.raises(RuntimeError, match=r"3-D attn_mask is \(2, 3, 3\), but should be \(4, 3, 3\)"):
        mha(x, x, x, attn_mask=sg.zeros(2, 3, 3))
    with pytest.raises(TypeError, match="bool or floating point"):
        mha(x, x, x, attn_mask=sg.zeros(3, 3, dtype="int64"))
    with pytest.raises(RuntimeError, match="batch sizes differ"):
        mha(x, sg.randn(3, 1, 4), sg.randn(3, 1, 4))


# ----- transformer encoder -----


def test_encoder_layer_submodules_and_keys_follow_torch():
    layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16)
    names = [n for n, _ in layer.named_children()]
    assert names == ["self_attn", "linear1", "dropout", "linear2", "norm1", "norm2", "dropout1", "dropout2"]
    assert list(layer.state_dict()) == [
        "self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight", "self_attn.out_proj.bias",
        "linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias",
        "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias",
    ]  # fmt: skip
    assert layer.dropout.p == 0.1 and layer.norm1.eps == 1e-5
    assert "norm1.bias" not in nn.TransformerEncoderLayer(8, 2, 16, bias=False).state_dict()


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_matches_reference(device, norm_first):
    layer, sd = loaded(nn.TransformerEncoderLayer(4, 2, dim_feedforward=6, norm_first=norm_first), device)
    layer.eval()
    x = rand(5, 2, 4, seed=1)
    assert_close(layer(on(device, x)[0]), encoder_layer_ref(x, sd, 2, norm_first), rtol=1e-4, atol=1e-4)


def test_encoder_layer_gelu_batch_first_and_masks(device):
    layer, sd = loaded(nn.TransformerEncoderLayer(4, 2, 6, activation="gelu", batch_first=True), device)
    layer.eval()
    x = rand(2, 5, 4, seed=1)
    mask = np.triu(np.full((5, 5), -np.inf, np.float32), 1)
    kpm = np.array([[False] * 5, [False, False, False, True, True]])
    from math import erf

    gelu = np.vectorize(lambda a: 0.5 * a * (1 + erf(a / math.sqrt(2))))
    out = layer(on(device, x)[0], src_mask=on(device, mask)[0], src_key_padding_mask=sg.tensor(kpm, device=device), is_causal=True)
    ref = encoder_layer_ref(x.transpose(1, 0, 2), sd, 2, activation=gelu, mask=mask, kpm=kpm).transpose(1, 0, 2)
    assert_close(out, ref, rtol=1e-4, atol=1e-4)


def test_encoder_layer_callable_activation_and_bad_string():
    layer = nn.TransformerEncoderLayer(4, 2, 6, activation=nn.GELU())
    assert "activation" in dict(layer.named_children())
    with pytest.raises(RuntimeError, match="activation should be relu/gelu"):
        nn.TransformerEncoderLayer(4, 2, activation="swish")


def test_encoder_layer_input_gradient_matches_finite_differences():
    layer, _ = loaded(nn.TransformerEncoderLayer(4, 2, 6, dropout=0.0), "numpy")
    layer.double()
    gradcheck(lambda x: layer(x), rand(3, 2, 4, seed=1), rtol=1e-4, atol=1e-5)


def test_encoder_stacks_deep_copies_and_applies_norm(device):
    base = nn.TransformerEncoderLayer(4, 2, 6)
    enc = nn.TransformerEncoder(base, num_layers=2, norm=nn.LayerNorm(4))
    keys = list(enc.state_dict())
    assert keys[0] == "layers.0.self_attn.in_proj_weight" and "layers.1.norm2.bias" in keys and keys[-1] == "norm.bias"
    assert enc.layers[0].linear1.weight is not enc.layers[1].linear1.weight is not base.linear1.weight
    enc, sd = loaded(enc, device)
    enc.eval()
    x = rand(3, 2, 4, seed=1)
    kpm = np.array([[False, False, True], [False, False, False]])
    y = x
    for i in range(2):
        layer_sd = {k[len(f"layers.{i}."):]: v for k, v in sd.items() if k.startswith(f"layers.{i}.")}
        y = encoder_layer_ref(y, layer_sd, 2, kpm=kpm)
    ref = layer_norm_ref(y, sd["norm.weight"], sd["norm.bias"])
    assert_close(enc(on(device, x)[0], src_key_padding_mask=sg.tensor(kpm, device=device)), ref, rtol=1e-4, atol=1e-4)


def test_generate_square_subsequent_mask():
    m = generate_square_subsequent_mask(3).numpy()
    np.testing.assert_array_equal(m, np.array([[0, -np.inf, -np.inf], [0, 0, -np.inf], [0, 0, 0]], np.float32))
