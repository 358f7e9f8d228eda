"""nn.TransformerDecoderLayer, nn.TransformerDecoder and nn.Transformer against NumPy
references written from PyTorch's documented formulas, with weights loaded through
load_state_dict under PyTorch's key names."""

from __future__ import annotations

import math

import numpy as np
import pytest

import smolgrad as sg
from smolgrad import nn
from helpers import assert_close, gradcheck, on, rand
from test_nn_attention import encoder_layer_ref, layer_norm_ref, loaded, mha_ref


def decoder_layer_ref(x, mem, sd, nhead, norm_first=False, activation=lambda a: np.maximum(a, 0),
                      tgt_mask=None, tgt_kpm=None, memory_mask=None, memory_kpm=None):
    """TransformerDecoderLayer in eval mode on (T, N, E) targets and (S, N, E) memory."""
    def part(prefix):
        return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}

    def sa(y):
        return mha_ref(y, y, y, part("self_attn."), nhead, tgt_mask, tgt_kpm)[0]

    def ca(y):
        return mha_ref(y, mem, mem, part("multihead_attn."), nhead, memory_mask, memory_kpm)[0]

    def ff(y):
        return activation(y @ sd["linear1.weight"].T + sd["linear1.bias"]) @ sd["linear2.weight"].T + sd["linear2.bias"]

    def norm(i):
        return lambda y: layer_norm_ref(y, sd[f"norm{i}.weight"], sd[f"norm{i}.bias"])

    if norm_first:
        x = x + sa(norm(1)(x))
        x = x + ca(norm(2)(x))
        return x + ff(norm(3)(x))
    x = norm(1)(x + sa(x))
    x = norm(2)(x + ca(x))
    return norm(3)(x + ff(x))


def stack_ref(layer_ref, x, sd, num_layers, prefix="layers"):
    for i in range(num_layers):
        x = layer_ref(x, {k[len(f"{prefix}.{i}."):]: v for k, v in sd.items() if k.startswith(f"{prefix}.{i}.")})
    return x


def test_decoder_layer_submodules_and_keys_follow_torch():
    layer = nn.TransformerDecoderLayer(8, 2, dim_feedforward=16)
    names = [n for n, _ in layer.named_children()]
    assert names == ["self_attn", "multihead_attn", "linear1", "dropout", "linear2",
                     "norm1", "norm2", "norm3", "dropout1", "dropout2", "dropout3"]  # fmt: skip
    attn = ["in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"]
    assert list(layer.state_dict()) == [
        *[f"self_attn.{k}" for k in attn], *[f"multihead_attn.{k}" for k in attn],
        "linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias",
        "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias", "norm3.weight", "norm3.bias",
    ]  # fmt: skip
    assert layer.dropout.p == 0.1 and layer.norm3.eps == 1e-5 and not layer.norm_first
    assert "norm3.bias" not in nn.TransformerDecoderLayer(8, 2, 16, bias=False).state_dict()


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_matches_reference(device, norm_first):
    layer, sd = loaded(nn.TransformerDecoderLayer(4, 2, dim_feedforward=6, norm_first=norm_first), device)
    layer.eval()
    x, mem = rand(5, 2, 4, seed=1), rand(3, 2, 4, seed=2)
    out = layer(on(device, x)[0], on(device, mem)[0])
    assert out.shape == (5, 2, 4)
    assert_close(out, decoder_layer_ref(x, mem, sd, 2, norm_first), rtol=1e-4, atol=1e-4)


def test_decoder_layer_masks_gelu_and_batch_first(device):
    layer, sd = loaded(nn.TransformerDecoderLayer(4, 2, 6, activation="gelu", batch_first=True), device)
    layer.eval()
    x, mem = rand(2, 5, 4, seed=1), rand(2, 3, 4, seed=2)
    tgt_mask = np.triu(np.full((5, 5), -np.inf, np.float32), 1)
    tgt_kpm = np.array([[False] * 5, [False, False, False, True, True]])
    memory_mask = np.array([[False, False, True]] * 5)  # (bool: True is masked) the last memory entry for all
    memory_kpm = np.array([[False, True, False], [False, False, False]])
    out = layer(
        on(device, x)[0], on(device, mem)[0], tgt_mask=on(device, tgt_mask)[0],
        memory_mask=sg.tensor(memory_mask, device=device), tgt_key_padding_mask=sg.tensor(tgt_kpm, device=device),
        memory_key_padding_mask=sg.tensor(memory_kpm, device=device), tgt_is_causal=True,
    )  # fmt: skip
    gelu = np.vectorize(lambda a: 0.5 * a * (1 + math.erf(a / math.sqrt(2))))
    ref = decoder_layer_ref(x.transpose(1, 0, 2), mem.transpose(1, 0, 2), sd, 2, activation=gelu, tgt_mask=tgt_mask,
                            tgt_kpm=tgt_kpm, memory_mask=memory_mask, memory_kpm=memory_kpm)
    assert_close(out, ref.transpose(1, 0, 2), rtol=1e-4, atol=1e-4)


def test_decoder_layer_unbatched_input(device):
    layer, sd = loaded(nn.TransformerDecoderLayer(4, 2, 6), device)
    layer.eval()
    x, mem = rand(5, 4, seed=1), rand(3, 4, seed=2)
    ref = decoder_layer_ref(x[:, None], mem[:, None], sd, 2)[:, 0]
    assert_close(layer(on(device, x)[0], on(device, mem)[0]), ref, rtol=1e-4, atol=1e-4)


def test_decoder_layer_gradients_match_finite_differences():
    layer, _ = loaded(nn.TransformerDecoderLayer(4, 2, 6, dropout=0.0), "numpy")
    layer.double()
    gradcheck(lambda x, mem: layer(x, mem), rand(3, 2, 4, seed=1), rand(2, 2, 4, seed=2), rtol=1e-4, atol=1e-5)


def test_decoder_layer_dropout_only_in_training():
    layer = nn.TransformerDecoderLayer(4, 2, 6, dropout=0.5)
    x, mem = sg.tensor(rand(5, 2, 4, seed=1)), sg.tensor(rand(3, 2, 4, seed=2))
    layer.eval()
    np.testing.assert_array_equal(layer(x, mem).detach().numpy(), layer(x, mem).detach().numpy())
    layer.train()
    assert not np.array_equal(layer(x, mem).detach().numpy(), layer(x, mem).detach().numpy())


def test_decoder_stacks_deep_copies_and_applies_norm(device):
    base = nn.TransformerDecoderLayer(4, 2, 6)
    dec = nn.TransformerDecoder(base, num_layers=2, norm=nn.LayerNorm(4))
    keys = list(dec.state_dict())
    assert keys[0] == "layers.0.self_attn.in_proj_weight" and "layers.1.norm3.bias" in keys and keys[-1] == "norm.bias"
    assert dec.layers[0].linear1.weight is not dec.layers[1].linear1.weight is not base.linear1.weight
    dec, sd = loaded(dec, device)
    dec.eval()
    x, mem = rand(3, 2, 4, seed=1), rand(4, 2, 4, seed=2)
    tgt_mask = np.triu(np.full((3, 3), -np.inf, np.float32), 1)
    y = stack_ref(lambda y, s: decoder_layer_ref(y, mem, s, 2, tgt_mask=tgt_mask), x, sd, 2)
    ref = layer_norm_ref(y, sd["norm.weight"], sd["norm.bias"])
    out = dec(on(device, x)[0], on(device, mem)[0], tgt_mask=on(device, tgt_mask)[0], tgt_is_causal=True)
    assert_close(out, ref, rtol=1e-4, atol=1e-4)


def test_transformer_keys_init_and_forward_match_reference(device):
    model = nn.Transformer(d_model=4, nhead=2, num_encoder_layers=2, num_decoder_layers=1, dim_feedforward=6)
    keys = list(model.state_dict())
    assert keys[0] == "encoder.layers.0.self_attn.in_proj_weight" and "encoder.norm.weight" in keys
    assert "decoder.layers.0.multihead_attn.out_proj.bias" in keys and keys[-1] == "decoder.norm.bias"
    assert (model.d_model, model.nhead, model.batch_first) == (4, 2, False)
    w = model.encoder.layers[0].linear1.weight.detach().numpy()  # xavier_uniform_: |w| <= sqrt(6 / (fan_in + fan_out))
    assert np.abs(w).max() <= math.sqrt(6 / (4 + 6)) and model.encoder.layers[0].linear1.bias.detach().numpy().any()
    model, sd = loaded(model, device)
    model.eval()
    src, tgt = rand(5, 2, 4, seed=1), rand(3, 2, 4, seed=2)
    src_kpm = np.array([[False] * 5, [False, False, False, False, True]])
    tgt_mask = nn.Transformer.generate_square_subsequent_mask(3).numpy()
    mem = stack_ref(lambda y, s: encoder_layer_ref(y, s, 2, kpm=src_kpm), src, sd, 2, "encoder.layers")
    mem = layer_norm_ref(mem, sd["encoder.norm.weight"], sd["encoder.norm.bias"])
    y = stack_ref(lambda y, s: decoder_layer_ref(y, mem, s, 2, tgt_mask=tgt_mask, memory_kpm=src_kpm), tgt, sd, 1,
                  "decoder.layers")
    ref = layer_norm_ref(y, sd["decoder.norm.weight"], sd["decoder.norm.bias"])
    kpm = sg.tensor(src_kpm, device=device)
    out = model(on(device, src)[0], on(device, tgt)[0], tgt_mask=on(device, tgt_mask)[0],
                src_key_padding_mask=kpm, memory_key_padding_mask=kpm)
    assert_close(out, ref, rtol=1e-4, atol=1e-4)


def test_transformer_learns_to_copy_a_sequence():
    """With learned positions, an encoder-decoder learns to copy its source: the loss falls
    from chance (log 4) to near zero, which needs the decoder's attention to the memory."""
    sg.manual_seed(0)
    model = nn.Transformer(d_model=16, nhead=2, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=32,
                           dropout=0.0, batch_first=True)
    embed, pos, head = nn.Embedding(5, 16), nn.Embedding(4, 16), nn.Linear(16, 5)
    params = [*model.parameters(), *embed.parameters(), *pos.parameters(), *head.parameters()]
    opt = sg.optim.Adam(params, lr=1e-2)
    rng = np.random.default_rng(0)
    mask, at = nn.Transformer.generate_square_subsequent_mask(4), sg.arange(4)
    losses = []
    for _ in range(100):
        seq = sg.tensor(rng.integers(1, 5, (8, 4)))  # tokens 1-4; 0 starts the decoder's input
        tgt_in = sg.cat([sg.zeros(8, 1, dtype=sg.int64), seq[:, :-1]], dim=1)
        logits = head(model(embed(seq) + pos(at), embed(tgt_in) + pos(at), tgt_mask=mask))
        loss = nn.functional.cross_entropy(logits.reshape(-1, 5), seq.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[:5]) > 1.0 and np.mean(losses[-5:]) < 0.1


def test_transformer_bad_inputs_are_clear():
    model = nn.Transformer(d_model=4, nhead=2, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=6)
    with pytest.raises(RuntimeError, match="batch number of src and tgt must be equal"):
        model(sg.randn(5, 2, 4), sg.randn(3, 3, 4))
    with pytest.raises(RuntimeError, match="feature number of src and tgt must be equal to d_model"):
        model(sg.randn(5, 2, 4), sg.randn(3, 2, 5))
    with pytest.raises(RuntimeError, match="batched"):
        model(sg.randn(5, 2, 4), sg.randn(3, 4))
    with pytest.raises(RuntimeError, match="activation should be relu/gelu"):
        nn.TransformerDecoderLayer(4, 2, activation="swish")
    with pytest.raises(TypeError, match="decoder_layer must be a Module"):
        nn.TransformerDecoder("layer", 2)


def test_transformer_custom_encoder_and_decoder_are_used():
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(4, 2, 6), 1)
    dec = nn.TransformerDecoder(nn.TransformerDecoderLayer(4, 2, 6), 1)
    model = nn.Transformer(d_model=4, nhead=2, custom_encoder=enc, custom_decoder=dec)
    assert model.encoder is enc and model.decoder is dec
    assert "encoder.norm.weight" not in model.state_dict()
