"""Recurrent layers: RNN, LSTM, GRU and their single-step cells (torch.nn names,
parameters, gate order and initialisation).

Each layer projects the whole input sequence with one matmul, then steps through time
in a Python loop; the lazy graph fuses each step's elementwise gate arithmetic."""

from __future__ import annotations

import math
import warnings

from .. import creation
from ..creation import stack
from ..tensor import Tensor
from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


# ----- one time step: x_proj = W_ih x + b_ih (precomputed), h (and c) the state -----


def _rnn_step(x_proj: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None, relu: bool) -> Tensor:
    pre = x_proj + F.linear(h, w_hh, b_hh)
    return pre.relu() if relu else pre.tanh()


def _lstm_step(x_proj: Tensor, h: Tensor, c: Tensor, w_hh: Tensor, b_hh: Tensor | None) -> tuple[Tensor, Tensor]:
    i, f, g, o = (x_proj + F.linear(h, w_hh, b_hh)).chunk(4, -1)
    c = f.sigmoid() * c + i.sigmoid() * g.tanh()
    return o.sigmoid() * c.tanh(), c


def _gru_step(x_proj: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None) -> Tensor:
    x_r, x_z, x_n = x_proj.chunk(3, -1)
    h_r, h_z, h_n = F.linear(h, w_hh, b_hh).chunk(3, -1)
    r, z = (x_r + h_r).sigmoid(), (x_z + h_z).sigmoid()
    n = (x_n + r * h_n).tanh()
    return n + z * (h - n)  # (1 - z) * n + z * h


def _check_input_tensor(op: str, input, ndims: tuple[int, ...], input_size: int) -> None:
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(input).__name__} (PackedSequence is not supported)")
    if input.ndim not in ndims:
        dims = " or ".join(f"{d}-D" for d in ndims)
        raise RuntimeError(f"{op}: expected input to be {dims}, got a {input.ndim}-D tensor of shape {input.shape}")
    if not input.dtype.is_floating_point:
        raise TypeError(f"{op}: input must be a floating point tensor, got {input.dtype.name}")
    if input.shape[-1] != input_size:
        raise RuntimeError(
            f"{op}: input.size(-1) must be equal to input_size. Expected {input_size}, got {input.shape[-1]} (input shape {input.shape})"
        )


def _check_state(op: str, name: str, state, expected: tuple[int, ...], input: Tensor) -> None:
    if not isinstance(state, Tensor):
        raise TypeError(f"{op}: {name} must be a Tensor, got {type(state).__name__}")
    if state.shape != expected:
        raise RuntimeError(f"{op}: expected {name} of size {expected}, got {state.shape}")
    if state.device != input.device:
        raise RuntimeError(f"{op}: {name} is on {state.device} but the input is on {input.device}")


def _stack(tensors: list[Tensor]) -> Tensor:
    """stack(tensors, 0) joined pairwise in a tree: cat pads each piece to the full
    result, so a flat stack of L steps would cost O(L^2); the tree costs O(L log L)."""
    if len(tensors) <= 2:
        return stack(tensors, 0)
    half = len(tensors) // 2
    return creation.cat([_stack(tensors[:half]), _stack(tensors[half:])], 0)


def _unstack(t: Tensor) -> list[Tensor]:
    """t[0], t[1], ... sliced pairwise in a tree: the gradient of a slice is padded to
    its source's size, so L flat slices would cost O(L^2) in backward; the tree O(L log L)."""
    n = t.shape[0]
    if n <= 2:
        return [t[i] for i in range(n)]
    half = n // 2
    return _unstack(t.narrow(0, 0, half)) + _unstack(t.narrow(0, half, n - half))


# ----- full-sequence layers -----


class RNNBase(Module):
    """The shared parameters and time loop of RNN, LSTM and GRU."""

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device=None,
        dtype=None,
    ):
        super().__init__()
        if mode not in _GATES:
            raise ValueError(f"RNNBase: unrecognized mode {mode!r}; expected one of {', '.join(_GATES)}")
        name = {"RNN_TANH": "RNN", "RNN_RELU": "RNN"}.get(mode, mode)
        if not isinstance(hidden_size, int) or hidden_size <= 0:
            raise ValueError(f"{name}: hidden_size must be a positive integer, got {hidden_size!r}")
        if not isinstance(num_layers, int) or num_layers <= 0:
            raise ValueError(f"{name}: num_layers must be a positive integer, got {num_layers!r}")
        if isinstance(dropout, bool) or not 0 <= dropout <= 1:
            raise ValueError(f"{name}: dropout should be a number in range [0, 1] representing the probability of an element being zeroed, got {dropout!r}")
        if proj_size != 0:
            raise NotImplementedError(f"{name}: proj_size={proj_size} is not supported (only proj_size=0)")
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                f"{name}: dropout option adds dropout after all but last recurrent layer, so non-zero dropout expects "
                f"num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}"
            )
        self.mode, self.input_size, self.hidden_size, self.num_layers = mode, input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.proj_size = bidirectional, proj_size
        self._name = name
        gate_size = _GATES[mode] * hidden_size
        directions = 2 if bidirectional else 1
        self._flat_weights_names: list[str] = []
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * directions
            for direction in range(directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                shapes = {"weight_ih": (gate_size, layer_input), "weight_hh": (gate_size, hidden_size)}
                if bias:
                    shapes.update(bias_ih=(gate_size,), bias_hh=(gate_size,))
                for kind, shape in shapes.items():
                    setattr(self, kind + suffix, Parameter(creation.empty(*shape, device=device, dtype=dtype)))
                    self._flat_weights_names.append(kind + suffix)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every weight and bias from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def flatten_parameters(self) -> None:
        """Does nothing: torch compacts weights for cuDNN here; smolgrad keeps them as they are."""

    @property
    def all_weights(self) -> list[list[Parameter]]:
        """The parameters grouped per layer and direction, as torch lists them."""
        per = 4 if self.bias else 2
        flat = [getattr(self, n) for n in self._flat_weights_names]
        return [flat[i : i + per] for i in range(0, len(flat), per)]

    def _layer_params(self, layer: int, direction: int) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        suffix = f"_l{layer}" + ("_reverse" if direction else "")
        w_ih, w_hh = getattr(self, "weight_ih" + suffix), getattr(self, "weight_hh" + suffix)
        if not self.bias:
            return w_ih, w_hh, None, None
        return w_ih, w_hh, getattr(self, "bias_ih" + suffix), getattr(self, "bias_hh" + suffix)

    def _states(self, hx, input: Tensor) -> tuple[list[Tensor], list[Tensor] | None]:
        """The initial h (and c for LSTM) per layer and direction, each (N, H), from hx
        of shape (D*num_layers, N, H) (or zeros when hx is None)."""
        directions = 2 if self.bidirectional else 1
        shape = (self.num_layers * directions, input.shape[1], self.hidden_size)
        lstm = self.mode == "LSTM"
        if hx is None:
            zeros = creation.zeros(*shape, dtype=input.dtype, device=input.device)
            return _unstack(zeros), (_unstack(zeros) if lstm else None)
        if lstm:
            h0, c0 = hx
            _check_state("LSTM", "h_0", h0, shape, input)
            _check_state("LSTM", "c_0", c0, shape, input)
            return _unstack(h0.type(input.dtype)), _unstack(c0.type(input.dtype))
        _check_state(self._name, "hx", hx, shape, input)
        return _unstack(hx.type(input.dtype)), None

    def _batch_hx(self, hx, batched: bool):
        """hx with a batch dim of 1 added for unbatched input (after checking its dims)."""
        if hx is None:
            return None
        states = hx if self.mode == "LSTM" else (hx,)
        if self.mode == "LSTM" and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError(f"LSTM: hx must be a tuple (h_0, c_0), got {type(hx).__name__}")
        want = 3 if batched else 2
        for s in states:
            if not isinstance(s, Tensor):
                raise TypeError(f"{self._name}: the initial state must be a Tensor, got {type(s).__name__}")
            if s.ndim != want:
                kind = "batched 3-D" if batched else "unbatched 2-D"
                raise RuntimeError(f"{self._name}: for {kind} input, hx should also be {want}-D but got a {s.ndim}-D tensor of shape {s.shape}")
        if batched:
            return hx
        return tuple(s.unsqueeze(1) for s in states) if self.mode == "LSTM" else hx.unsqueeze(1)

    def forward(self, input: Tensor, hx=None):
        """output (L, N, D*H) ((N, L, D*H) with batch_first; (L, D*H) unbatched) and
        h_n (D*num_layers, N, H), or (h_n, c_n) for LSTM."""
        _check_input_tensor(self._name, input, (2, 3), self.input_size)
        batched = input.ndim == 3
        hx = self._batch_hx(hx, batched)
        if not batched:
            input = input.unsqueeze(1)
        elif self.batch_first:
            input = input.transpose(0, 1)
        if input.shape[0] == 0:
            raise RuntimeError(f"{self._name}: expected sequence length to be larger than 0, got input of shape {input.shape}")
        hs, cs = self._states(hx, input)
        directions = 2 if self.bidirectional else 1
        h_n, c_n = [], []
        x = input
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(directions):
                k = layer * directions + direction
                out, h, c = self._run_direction(x, layer, direction, hs[k], cs[k] if cs is not None else None)
                outputs.append(out)
                h_n.append(h)
                c_n.append(c)
            x = outputs[0] if directions == 1 else creation.cat(outputs, -1)
            if layer < self.num_layers - 1 and self.dropout > 0 and self.training:
                x = F.dropout(x, self.dropout, training=True)
        state = (stack(h_n, 0), stack(c_n, 0)) if self.mode == "LSTM" else stack(h_n, 0)
        if not batched:
            x = x.squeeze(1)
            state = tuple(s.squeeze(1) for s in state) if self.mode == "LSTM" else state.squeeze(1)
        elif self.batch_first:
            x = x.transpose(0, 1)
        return x, state

    def _run_direction(self, x: Tensor, layer: int, direction: int, h: Tensor, c: Tensor | None):
        """One layer in one direction over (L, N, in): (output (L, N, H), h_n, c_n or None)."""
        w_ih, w_hh, b_ih, b_hh = self._layer_params(layer, direction)
        x_proj = F.linear(x, w_ih, b_ih)  # every step's input projection in one matmul
        x_steps = _unstack(x_proj)
        steps = range(x.shape[0] - 1, -1, -1) if direction else range(x.shape[0])
        outputs: list[Tensor | None] = [None] * x.shape[0]
        for t in steps:
            if self.mode == "LSTM":
                h, c = _lstm_step(x_steps[t], h, c, w_hh, b_hh)
            elif self.mode == "GRU":
                h = _gru_step(x_steps[t], h, w_hh, b_hh)
            else:
                h = _rnn_step(x_steps[t], h, w_hh, b_hh, relu=self.mode == "RNN_RELU")
            outputs[t] = h
        return _stack(outputs), h, c

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.mode == "RNN_RELU":
            s += ", nonlinearity='relu'"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s


class RNN(RNNBase):
    """Elman RNN: h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh) (or relu)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
    ):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: unknown nonlinearity {nonlinearity!r}; select from 'tanh' or 'relu'")
        mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        super().__init__(mode, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, device=device, dtype=dtype)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """Long short-term memory, torch's gate order i, f, g, o:
    c_t = f * c_{t-1} + i * g, h_t = o * tanh(c_t). forward returns (output, (h_n, c_n))."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device=None,
        dtype=None,
    ):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, proj_size, device, dtype)


class GRU(RNNBase):
    """Gated recurrent unit, torch's gate order r, z, n:
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h_t = (1 - z) * n + z * h_{t-1}."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
    ):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, device=device, dtype=dtype)


# ----- single-step cells -----


class RNNCellBase(Module):
    """The parameters of one recurrent step: weight_ih, weight_hh, bias_ih, bias_hh."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool, num_chunks: int, device=None, dtype=None):
        super().__init__()
        if not isinstance(hidden_size, int) or hidden_size <= 0:
            raise ValueError(f"{type(self).__name__}: hidden_size must be a positive integer, got {hidden_size!r}")
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        gate_size = num_chunks * hidden_size
        self.weight_ih = Parameter(creation.empty(gate_size, input_size, device=device, dtype=dtype))
        self.weight_hh = Parameter(creation.empty(gate_size, hidden_size, device=device, dtype=dtype))
        if bias:
            self.bias_ih = Parameter(creation.empty(gate_size, device=device, dtype=dtype))
            self.bias_hh = Parameter(creation.empty(gate_size, device=device, dtype=dtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every weight and bias from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def _prepare(self, input: Tensor, states: tuple) -> tuple[Tensor, list[Tensor], bool]:
        """(input as (N, in), the states as (N, H) (zeros when None), whether batched)."""
        op = type(self).__name__
        _check_input_tensor(op, input, (1, 2), self.input_size)
        batched = input.ndim == 2
        x = input if batched else input.unsqueeze(0)
        shape = (x.shape[0], self.hidden_size)
        out = []
        for name, s in states:
            if s is None:
                out.append(creation.zeros(*shape, dtype=x.dtype, device=x.device))
                continue
            if isinstance(s, Tensor) and s.ndim != input.ndim:
                raise RuntimeError(f"{op}: {name} must be {input.ndim}-D like the input {input.shape}, got shape {s.shape}")
            s = s if batched or not isinstance(s, Tensor) else s.unsqueeze(0)
            _check_state(op, name, s, shape, x)
            out.append(s.type(x.dtype))
        return x, out, batched

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity!r}"
        return s


class RNNCell(RNNCellBase):
    """One Elman RNN step: h' = tanh(W_ih x + b_ih + W_hh h + b_hh) (or relu)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh", device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: unknown nonlinearity {nonlinearity!r}; select from 'tanh' or 'relu'")
        super().__init__(input_size, hidden_size, bias, 1, device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        """h' of shape (N, H), or (H,) for an unbatched (input_size,) input."""
        x, (h,), batched = self._prepare(input, (("hx", hx),))
        h = _rnn_step(F.linear(x, self.weight_ih, self.bias_ih), h, self.weight_hh, self.bias_hh, self.nonlinearity == "relu")
        return h if batched else h.squeeze(0)


class LSTMCell(RNNCellBase):
    """One LSTM step (gates i, f, g, o): returns (h', c')."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 4, device, dtype)

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """(h', c'), each (N, H), or (H,) for an unbatched (input_size,) input."""
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError(f"LSTMCell: hx must be a tuple (h_0, c_0), got {type(hx).__name__}")
        h0, c0 = hx if hx is not None else (None, None)
        x, (h, c), batched = self._prepare(input, (("h_0", h0), ("c_0", c0)))
        h, c = _lstm_step(F.linear(x, self.weight_ih, self.bias_ih), h, c, self.weight_hh, self.bias_hh)
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))


class GRUCell(RNNCellBase):
    """One GRU step (gates r, z, n): h' = (1 - z) * n + z * h."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 3, device, dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        """h' of shape (N, H), or (H,) for an unbatched (input_size,) input."""
        x, (h,), batched = self._prepare(input, (("hx", hx),))
        h = _gru_step(F.linear(x, self.weight_ih, self.bias_ih), h, self.weight_hh, self.bias_hh)
        return h if batched else h.squeeze(0)


__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]
