"""Recurrent layers (RNN, LSTM, GRU) and cells against NumPy references written from
PyTorch's documented equations, with weights loaded under PyTorch's key names; gradients
by finite differences; webgpu against numpy; and a small LSTM tagger trained on both
devices with the same loss curve."""

from __future__ import annotations

import math

import numpy as np
import pytest

import smolgrad as sg
import smolgrad.nn.functional as F
from smolgrad import nn
from helpers import assert_close, gradcheck, on, rand

# ----- NumPy references (torch's documented equations) -----


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def step_ref(mode, x, h, c, w_ih, w_hh, b_ih=0.0, b_hh=0.0):
    """One step: (h', c') (c' None except for LSTM)."""
    gi, gh = x @ w_ih.T + b_ih, h @ w_hh.T + b_hh
    if mode == "tanh":
        return np.tanh(gi + gh), None
    if mode == "relu":
        return np.maximum(gi + gh, 0), None
    if mode == "lstm":
        i, f, g, o = np.split(gi + gh, 4, -1)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        return sigmoid(o) * np.tanh(c), c
    ir, iz, i_n = np.split(gi, 3, -1)
    hr, hz, h_n = np.split(gh, 3, -1)
    r, z = sigmoid(ir + hr), sigmoid(iz + hz)
    n = np.tanh(i_n + r * h_n)
    return (1 - z) * n + z * h, None


def rnn_ref(mode, x, sd, hidden, num_layers=1, bidirectional=False, h0=None, c0=None):
    """(output (L, N, D*H), h_n, c_n) for a (L, N, in) input."""
    L, N = x.shape[:2]
    D = 2 if bidirectional else 1
    h_n, c_n = [], []
    for layer in range(num_layers):
        outs = []
        for d in range(D):
            k, sfx = layer * D + d, f"_l{layer}" + ("_reverse" if d else "")
            h = h0[k] if h0 is not None else np.zeros((N, hidden))
            c = c0[k] if c0 is not None else np.zeros((N, hidden))
            params = [sd[f"weight_ih{sfx}"], sd[f"weight_hh{sfx}"], sd.get(f"bias_ih{sfx}", 0.0), sd.get(f"bias_hh{sfx}", 0.0)]
            out = np.zeros((L, N, hidden))
            for t in reversed(range(L)) if d else range(L):
                h, c = step_ref(mode, x[t], h, c, *params)
                out[t] = h
            outs.append(out)
            h_n.append(h)
            c_n.append(c)
        x = np.concatenate(outs, -1)
    return x, np.stack(h_n), (np.stack(c_n) if mode == "lstm" else None)


def random_state(module: nn.Module, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.uniform(-0.8, 0.8, v.shape).astype(np.float32) for k, v in module.state_dict().items()}


def loaded(module: nn.Module, device: str, seed: int = 0):
    sd = random_state(module, seed)
    module.load_state_dict(sd)
    return module.to(device), sd


def check_param_grads(module: nn.Module, loss_fn, eps: float = 1e-6) -> None:
    """Every parameter's .grad from loss_fn().backward() against central differences
    (module in float64 on numpy)."""
    module.zero_grad()
    loss_fn().backward()
    for name, p in module.named_parameters():
        base = p.detach().numpy().copy()
        numeric = np.zeros_like(base)
        for j in range(base.size):
            values = []
            for delta in (eps, -eps):
                arr = base.copy()
                arr.flat[j] += delta
                module.load_state_dict({name: arr}, strict=False)
                values.append(loss_fn().item())
            numeric.flat[j] = (values[0] - values[1]) / (2 * eps)
        module.load_state_dict({name: base}, strict=False)
        np.testing.assert_allclose(p.grad.numpy(), numeric, rtol=1e-4, atol=1e-6, err_msg=f"gradient of {name}")


MODES = {"tanh": lambda **kw: nn.RNN(**kw), "relu": lambda **kw: nn.RNN(nonlinearity="relu", **kw),
         "lstm": lambda **kw: nn.LSTM(**kw), "gru": lambda **kw: nn.GRU(**kw)}  # fmt: skip
GATES = {"tanh": 1, "relu": 1, "lstm": 4, "gru": 3}


# ----- parameters -----


@pytest.mark.parametrize("mode", list(MODES))
def test_parameter_names_shapes_and_order_follow_torch(mode):
    m = MODES[mode](input_size=3, hidden_size=5, num_layers=2, bidirectional=True)
    g = GATES[mode] * 5
    expected = []
    for layer, in_size in ((0, 3), (1, 10)):
        for sfx in (f"_l{layer}", f"_l{layer}_reverse"):
            expected += [(f"weight_ih{sfx}", (g, in_size)), (f"weight_hh{sfx}", (g, 5)), (f"bias_ih{sfx}", (g,)), (f"bias_hh{sfx}", (g,))]
    assert [(k, v.shape) for k, v in m.state_dict().items()] == expected
    assert list(nn.GRU(3, 5, bias=False).state_dict()) == ["weight_ih_l0", "weight_hh_l0"]


def test_init_is_uniform_within_one_over_sqrt_hidden():
    lstm = nn.LSTM(20, 64, num_layers=2)
    bound = 1 / math.sqrt(64)
    values = np.concatenate([p.detach().numpy().ravel() for p in lstm.parameters()])
    assert np.abs(values).max() <= bound and np.abs(values).max() > 0.99 * bound
    assert values.std() == pytest.approx(bound / math.sqrt(3), rel=0.02)
    cell = nn.GRUCell(4, 16)
    assert np.abs(cell.weight_hh.detach().numpy()).max() <= 1 / 4


def test_all_weights_groups_parameters_per_layer_and_direction():
    gru = nn.GRU(3, 2, num_layers=2, bidirectional=True)
    groups = gru.all_weights
    assert len(groups) == 4 and groups[1][0] is gru.weight_ih_l0_reverse and groups[3][3] is gru.bias_hh_l1_reverse
    assert [len(g) for g in nn.LSTM(3, 2, bias=False).all_weights] == [2]


def test_repr_matches_torch():
    assert repr(nn.LSTM(10, 20, num_layers=2, batch_first=True, bidirectional=True)) == (
        "LSTM(10, 20, num_layers=2, batch_first=True, bidirectional=True)"
    )
    assert repr(nn.RNN(3, 4, nonlinearity="relu", bias=False)) == "RNN(3, 4, nonlinearity='relu', bias=False)"
    assert repr(nn.GRUCell(3, 4)) == "GRUCell(3, 4)"


# ----- forward against the references -----


@pytest.mark.parametrize("mode", list(MODES))
def test_single_layer_matches_reference(device, mode):
    m, sd = loaded(MODES[mode](input_size=3, hidden_size=4), device)
    x = rand(5, 2, 3, seed=1)
    out, state = m(on(device, x)[0])
    ref_out, ref_h, ref_c = rnn_ref(mode, x, sd, 4)
    assert_close(out, ref_out, rtol=1e-4, atol=1e-5)
    if mode == "lstm":
        assert_close(state[0], ref_h, rtol=1e-4, atol=1e-5)
        assert_close(state[1], ref_c, rtol=1e-4, atol=1e-5)
    else:
        assert_close(state, ref_h, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode", ["lstm", "gru", "tanh"])
def test_multi_layer_bidirectional_batch_first_with_initial_state(device, mode):
    m, sd = loaded(MODES[mode](input_size=3, hidden_size=2, num_layers=2, bidirectional=True, batch_first=True), device)
    x, h0, c0 = rand(3, 4, 3, seed=1), rand(4, 3, 2, seed=2), rand(4, 3, 2, seed=3)
    hx = (on(device, h0)[0], on(device, c0)[0]) if mode == "lstm" else on(device, h0)[0]
    out, state = m(on(device, x)[0], hx)
    ref_out, ref_h, ref_c = rnn_ref(mode, x.transpose(1, 0, 2), sd, 2, 2, True, h0, c0)
    assert_close(out, ref_out.transpose(1, 0, 2), rtol=1e-4, atol=1e-5)
    assert_close(state[0] if mode == "lstm" else state, ref_h, rtol=1e-4, atol=1e-5)
    if mode == "lstm":
        assert_close(state[1], ref_c, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode", ["lstm", "gru", "relu"])
def test_unbatched_input_and_state(device, mode):
    m, sd = loaded(MODES[mode](input_size=3, hidden_size=2, num_layers=2), device)
    x, h0, c0 = rand(4, 3, seed=1), rand(2, 2, seed=2), rand(2, 2, seed=3)
    hx = (on(device, h0)[0], on(device, c0)[0]) if mode == "lstm" else on(device, h0)[0]
    out, state = m(on(device, x)[0], hx)
    ref_out, ref_h, ref_c = rnn_ref(mode, x[:, None], sd, 2, 2, False, h0[:, None], c0[:, None])
    assert_close(out, ref_out[:, 0], rtol=1e-4, atol=1e-5)
    assert_close(state[0] if mode == "lstm" else state, ref_h[:, 0], rtol=1e-4, atol=1e-5)


def test_without_bias_and_non_contiguous_input(device):
    m, sd = loaded(nn.GRU(3, 2, bias=False), device)
    x = rand(2, 5, 3, seed=1)  # fed as its (5, 2, 3) transpose: a non-contiguous view
    out, h = m(on(device, x)[0].transpose(0, 1))
    ref_out, ref_h, _ = rnn_ref("gru", x.transpose(1, 0, 2), sd, 2)
    assert_close(out, ref_out, rtol=1e-4, atol=1e-5)
    assert_close(h, ref_h, rtol=1e-4, atol=1e-5)


def test_dropout_between_layers_only_in_training():
    m, sd = loaded(nn.LSTM(3, 2, num_layers=2, dropout=1.0), "numpy")
    x = rand(4, 2, 3, seed=1)
    m.eval()
    assert_close(m(sg.tensor(x))[0], rnn_ref("lstm", x, sd, 2, 2)[0], rtol=1e-4, atol=1e-5)
    m.train()  # p=1 zeroes the first layer's output: the second layer sees zeros
    second = {k.replace("_l1", "_l0"): v for k, v in sd.items() if "_l1" in k}
    ref = rnn_ref("lstm", np.zeros((4, 2, 2), np.float32), second, 2)[0]
    assert_close(m(sg.tensor(x))[0], ref, rtol=1e-4, atol=1e-5)


def test_dropout_with_one_layer_warns_like_torch():
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
        nn.GRU(3, 2, dropout=0.5)


# ----- cells -----


@pytest.mark.parametrize("cls,mode", [(nn.RNNCell, "tanh"), (nn.LSTMCell, "lstm"), (nn.GRUCell, "gru")])
def test_cells_match_one_reference_step(device, cls, mode):
    cell, sd = loaded(cls(3, 4), device)
    x, h, c = rand(2, 3, seed=1), rand(2, 4, seed=2), rand(2, 4, seed=3)
    params = [sd["weight_ih"], sd["weight_hh"], sd["bias_ih"], sd["bias_hh"]]
    ref_h, ref_c = step_ref(mode, x, h, c, *params)
    if mode == "lstm":
        got_h, got_c = cell(*on(device, x), tuple(on(device, h, c)))
        assert_close(got_c, ref_c, rtol=1e-4, atol=1e-5)
        zero_h, _ = cell(on(device, x[0])[0])  # unbatched, zero initial state
        assert_close(zero_h, step_ref(mode, x[0], 0 * h[0], 0 * c[0], *params)[0], rtol=1e-4, atol=1e-5)
    else:
        got_h = cell(*on(device, x, h))
        zero_h = cell(on(device, x[0])[0])
        assert_close(zero_h, step_ref(mode, x[0], 0 * h[0], None, *params)[0], rtol=1e-4, atol=1e-5)
    assert_close(got_h, ref_h, rtol=1e-4, atol=1e-5)


def test_rnn_cell_relu_without_bias(device):
    cell, sd = loaded(nn.RNNCell(3, 2, bias=False, nonlinearity="relu"), device)
    x, h = rand(4, 3, seed=1), rand(4, 2, seed=2)
    assert list(sd) == ["weight_ih", "weight_hh"]
    assert_close(cell(*on(device, x, h)), step_ref("relu", x, h, None, sd["weight_ih"], sd["weight_hh"])[0], rtol=1e-4, atol=1e-5)


# ----- gradients -----


@pytest.mark.parametrize("mode", ["lstm", "gru", "tanh"])
def test_input_and_state_gradients_match_finite_differences(mode):
    m, _ = loaded(MODES[mode](input_size=2, hidden_size=2, num_layers=2, bidirectional=True), "numpy")
    m.double()
    if mode == "lstm":
        def fn(x, h0, c0):
            out, (h, c) = m(x, (h0, c0))
            return sg.cat([out.reshape(-1), h.reshape(-1), c.reshape(-1)])

        gradcheck(fn, rand(3, 2, 2, seed=1), rand(4, 2, 2, seed=2), rand(4, 2, 2, seed=3))
    else:
        def fn(x, h0):
            out, h = m(x, h0)
            return sg.cat([out.reshape(-1), h.reshape(-1)])

        gradcheck(fn, rand(3, 2, 2, seed=1), rand(4, 2, 2, seed=2))


@pytest.mark.parametrize("mode", ["lstm", "gru", "relu"])
def test_parameter_gradients_match_finite_differences(mode):
    m, _ = loaded(MODES[mode](input_size=2, hidden_size=2, bidirectional=True), "numpy")
    m.double()
    x = sg.tensor(rand(3, 2, 2, seed=1), dtype=sg.float64)
    w = sg.tensor(rand(3, 2, 4, seed=2), dtype=sg.float64)

    def loss():
        out, state = m(x)
        h = state[1] if mode == "lstm" else state
        return (out * w).sum() + (h * h).sum()

    check_param_grads(m, loss)


@pytest.mark.parametrize("cls", [nn.RNNCell, nn.LSTMCell, nn.GRUCell])
def test_cell_gradients_match_finite_differences(cls):
    cell, _ = loaded(cls(2, 3), "numpy")
    cell.double()
    if cls is nn.LSTMCell:
        gradcheck(lambda x, h, c: sg.cat(list(cell(x, (h, c))), -1), rand(2, 2, seed=1), rand(2, 3, seed=2), rand(2, 3, seed=3))
    else:
        gradcheck(lambda x, h: cell(x, h), rand(2, 2, seed=1), rand(2, 3, seed=2))
    x = sg.tensor(rand(2, 2, seed=1), dtype=sg.float64)
    check_param_grads(cell, lambda: (cell(x)[0] if cls is nn.LSTMCell else cell(x)).sin().sum())


@pytest.mark.parametrize("mode", ["lstm", "gru"])
def test_gradients_on_webgpu_match_numpy(webgpu, mode):
    grads = {}
    x = rand(2, 4, 3, seed=1)
    for dev in ("numpy", webgpu):
        m, _ = loaded(MODES[mode](input_size=3, hidden_size=2, num_layers=2, bidirectional=True, batch_first=True), dev)
        xt = sg.tensor(x, device=dev, requires_grad=True)
        out, state = m(xt)
        h = state[0] if mode == "lstm" else state
        ((out * out).sum() + h.sum()).backward()
        grads[dev] = [xt.grad.numpy()] + [p.grad.numpy() for p in m.parameters()]
    for a, b in zip(grads["numpy"], grads[webgpu]):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)


# ----- bad inputs -----


def test_bad_constructor_arguments_are_clear():
    with pytest.raises(NotImplementedError, match="proj_size=3 is not supported"):
        nn.LSTM(4, 5, proj_size=3)
    with pytest.raises(ValueError, match="unknown nonlinearity 'gelu'"):
        nn.RNN(4, 5, nonlinearity="gelu")
    with pytest.raises(ValueError, match="unknown nonlinearity"):
        nn.RNNCell(4, 5, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="hidden_size must be a positive integer"):
        nn.GRU(4, 0)
    with pytest.raises(ValueError, match="dropout should be a number in range"):
        nn.LSTM(4, 5, num_layers=2, dropout=1.5)


def test_bad_inputs_and_states_are_clear():
    lstm, gru = nn.LSTM(3, 2, num_layers=2), nn.GRU(3, 2)
    x = sg.randn(4, 5, 3)
    with pytest.raises(RuntimeError, match="input.size\\(-1\\) must be equal to input_size. Expected 3, got 4"):
        gru(sg.randn(4, 5, 4))
    with pytest.raises(RuntimeError, match="GRU: expected input to be 2-D or 3-D, got a 4-D"):
        gru(sg.randn(1, 4, 5, 3))
    with pytest.raises(TypeError, match="GRU: input must be a floating point tensor"):
        gru(sg.zeros(4, 5, 3, dtype="int64"))
    with pytest.raises(RuntimeError, match=r"GRU: expected hx of size \(1, 5, 2\), got \(1, 4, 2\)"):
        gru(x, sg.zeros(1, 4, 2))
    with pytest.raises(RuntimeError, match="for batched 3-D input, hx should also be 3-D"):
        gru(x, sg.zeros(5, 2))
    with pytest.raises(RuntimeError, match="for unbatched 2-D input, hx should also be 2-D"):
        gru(x[:, 0], sg.zeros(1, 1, 2))
    with pytest.raises(TypeError, match="LSTM: hx must be a tuple"):
        lstm(x, sg.zeros(2, 5, 2))
    with pytest.raises(RuntimeError, match=r"LSTM: expected c_0 of size \(2, 5, 2\)"):
        lstm(x, (sg.zeros(2, 5, 2), sg.zeros(1, 5, 2)))
    with pytest.raises(RuntimeError, match="GRU: expected sequence length to be larger than 0"):
        gru(sg.zeros(0, 5, 3))
    with pytest.raises(TypeError, match="PackedSequence is not supported"):
        lstm([x])
    with pytest.raises(RuntimeError, match="LSTMCell: expected input to be 1-D or 2-D"):
        nn.LSTMCell(3, 2)(x)
    with pytest.raises(RuntimeError, match=r"GRUCell: expected hx of size \(5, 2\), got \(4, 2\)"):
        nn.GRUCell(3, 2)(x[0], sg.zeros(4, 2))


def test_wrong_device_state_is_refused(webgpu):
    gru = nn.GRU(3, 2)
    with pytest.raises(RuntimeError, match="GRU: hx is on webgpu but the input is on numpy"):
        gru(sg.randn(4, 1, 3, device="numpy"), sg.zeros(1, 1, 2, device=webgpu))


# ----- end to end: a small LSTM tagger trains the same on both devices -----


class Tagger(nn.Module):
    def __init__(self, vocab: int, tags: int, embed: int = 6, hidden: int = 5):
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, tags)

    def forward(self, tokens):
        out, _ = self.lstm(self.embedding(tokens))
        return self.head(out)


def train_tagger(device: str, state: dict, tokens: np.ndarray, tags: np.ndarray, steps: int = 6) -> list[float]:
    model = Tagger(9, 4)
    model.load_state_dict(state)
    model.to(device)
    opt = sg.optim.Adam(model.parameters(), lr=0.05)
    x, y = sg.tensor(tokens, device=device), sg.tensor(tags, device=device)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, 4), y.reshape(-1))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_lstm_tagger_trains_with_the_same_loss_curve_on_both_devices(webgpu):
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 9, size=(4, 7))
    tags = tokens % 4  # a tag each token determines: learnable
    state = {k: v.detach().numpy().copy() for k, v in Tagger(9, 4).state_dict().items()}
    cpu = train_tagger("numpy", state, tokens, tags)
    gpu = train_tagger(webgpu, state, tokens, tags)
    assert cpu[-1] < 0.8 * cpu[0], f"the loss should fall: {cpu}"
    np.testing.assert_allclose(gpu, cpu, rtol=2e-4, atol=1e-5)
