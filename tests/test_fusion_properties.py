"""Property test: random graphs of elementwise ops, views, reductions and row ops
(softmax, log-softmax, logsumexp, layer norm) over inputs stored contiguous, permuted or
strided give the same values fused, on each device, as unfused (one kernel per op) on numpy."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import smolgrad as sg
from smolgrad.device import get_backend

UNARY = {
    "neg": (lambda t: -t, lambda a: -a),
    "tanh": (lambda t: t.tanh(), np.tanh),
    "exp_tanh": (lambda t: t.tanh().exp(), lambda a: np.exp(np.tanh(a))),
    "sqrt_abs": (lambda t: t.abs().sqrt(), lambda a: np.sqrt(np.abs(a))),
    "relu": (lambda t: t.relu(), lambda a: np.maximum(a, 0)),
    "sigmoid": (lambda t: t.sigmoid(), lambda a: 1 / (1 + np.exp(-a))),
    "scale": (lambda t: t * 0.5 + 1, lambda a: a * 0.5 + 1),
}
BINARY = {
    "add": (lambda a, b: a + b, np.add),
    "sub": (lambda a, b: a - b, np.subtract),
    "mul": (lambda a, b: a * b, np.multiply),
    "max": (lambda a, b: a.maximum(b), np.maximum),
    "where": (lambda a, b: sg.where(a > b, a, b * 2), lambda a, b: np.where(a > b, a, b * 2)),
}


LAYOUTS = ("contiguous", "permuted", "strided")


@st.composite
def programs(draw):
    """Input shapes (mutually broadcastable) with their storage layouts, and a list of
    instructions over values."""
    rank = draw(st.integers(1, 3))
    full = tuple(draw(st.integers(2, 5)) for _ in range(rank))
    inputs = []
    for _ in range(draw(st.integers(1, 3))):
        shape = tuple(n if draw(st.booleans()) else 1 for n in full)
        layout = draw(st.sampled_from(LAYOUTS))
        order = tuple(draw(st.permutations(range(rank))))
        inputs.append((shape, layout, order))
    steps = []
    for _ in range(draw(st.integers(1, 10))):
        kind = draw(st.sampled_from(["unary", "binary", "binary", "view", "reduce", "row"]))
        a = draw(st.integers(0, 1000))  # operand choice, taken modulo the live values
        if kind == "unary":
            steps.append(("unary", draw(st.sampled_from(sorted(UNARY))), a))
        elif kind == "binary":
            steps.append(("binary", draw(st.sampled_from(sorted(BINARY))), a, draw(st.integers(0, 1000))))
        elif kind == "view":
            steps.append(("view", draw(st.sampled_from(["flip", "transpose", "slice", "expand"])), a))
        elif kind == "reduce":
            steps.append(("reduce", draw(st.sampled_from(["sum", "amax"])), a, draw(st.integers(0, 2))))
        else:
            steps.append(("row", draw(st.sampled_from(sorted(ROW))), a, draw(st.integers(0, 2))))
    outputs = draw(st.integers(1, 3))
    return inputs, steps, outputs


def _softmax(a, dim):
    e = np.exp(a - a.max(dim, keepdims=True))
    return e / e.sum(dim, keepdims=True)


def _logsumexp(a, dim):
    m = a.max(dim, keepdims=True)
    return np.log(np.exp(a - m).sum(dim, keepdims=True)) + m


def _layer_norm(a):
    centered = a - a.mean(-1, keepdims=True)
    return centered / np.sqrt((centered**2).mean(-1, keepdims=True) + 1e-5)


ROW = {  # (smolgrad, numpy) of a value and a dim
    "softmax": (lambda t, d: t.softmax(d), _softmax),
    "log_softmax": (lambda t, d: t.log_softmax(d), lambda a, d: a - _logsumexp(a, d)),
    "logsumexp": (lambda t, d: t.logsumexp(d, keepdim=True), _logsumexp),
    "layer_norm": (lambda t, d: sg.nn.functional.layer_norm(t, t.shape[-1:]), lambda a, d: _layer_norm(a)),
}


def make_input(a: np.ndarray, layout: str, order: tuple[int, ...], device: str) -> sg.Tensor:
    """A tensor with `a`'s values stored as `layout` says: contiguous, with its dims in
    `order` (then permuted back), or every other row of a larger buffer at an offset."""
    if layout == "permuted":
        back = tuple(np.argsort(order))
        return sg.tensor(np.ascontiguousarray(a.transpose(order)), device=device).permute(*back)
    if layout == "strided":
        big = np.zeros((2 * a.shape[0] + 1, *a.shape[1:]), np.float32)
        big[1::2] = a
        return sg.tensor(big, device=device)[1::2]
    return sg.tensor(a, device=device)


def run(program, arrays, device):
    """Interpret `program` with smolgrad on `device` and in NumPy side by side."""
    specs, steps, n_out = program
    vals = [(make_input(a, layout, order, device), a) for a, (_, layout, order) in zip(arrays, specs)]
    for step in steps:
        kind, name, i = step[0], step[1], step[2] % len(vals)
        t, a = vals[i]
        if kind == "unary":
            f, g = UNARY[name]
            vals.append((f(t), g(a)))
        elif kind == "binary":
            u, b = vals[step[3] % len(vals)]
            try:
                np.broadcast_shapes(a.shape, b.shape)
            except ValueError:
                continue
            f, g = BINARY[name]
            vals.append((f(t, u), g(a, b).astype(np.float32)))
        elif kind == "view":
            if name == "flip":
                vals.append((t.flip(0), a[::-1]))
            elif name == "transpose" and a.ndim >= 2:
                vals.append((t.transpose(0, -1), np.swapaxes(a, 0, -1)))
            elif name == "slice" and a.shape[0] > 1:
                vals.append((t[1:], a[1:]))
            elif name == "expand":
                vals.append((t.unsqueeze(0).expand(2, *a.shape), np.broadcast_to(a[None], (2, *a.shape))))
        elif kind == "reduce":
            dim = step[3] % a.ndim
            if name == "sum":
                vals.append((t.sum(dim, keepdim=True), a.sum(dim, keepdims=True)))
            else:
                vals.append((t.amax(dim, keepdim=True), a.max(dim, keepdims=True)))
        else:
            dim = step[3] % a.ndim
            f, g = ROW[name]
            vals.append((f(t, dim), g(a.astype(np.float64), dim).astype(np.float32)))
    outs = vals[-n_out:]
    sg.realize(*[t for t, _ in outs])
    return [t.numpy() for t, _ in outs], [r for _, r in outs]


@pytest.fixture
def set_reduce_work(device, monkeypatch):
    """Sets the values per reduction lane on webgpu (1 and 4 give workgroup trees and two
    passes at these small sizes; None the adapter's default); nothing on numpy."""
    if device != "webgpu":
        return lambda work: None
    backend = get_backend("webgpu")
    default = backend.reduce_work
    return lambda work: monkeypatch.setattr(backend, "reduce_work", work or default)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(program=programs(), seed=st.integers(0, 2**16), work=st.sampled_from([1, 4, None]))
def test_fused_matches_unfused_numpy(device, monkeypatch, set_reduce_work, program, seed, work):
    set_reduce_work(work)
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(shape).astype(np.float32) for shape, _, _ in program[0]]
    monkeypatch.setenv("SMOLGRAD_FUSION", "0")
    unfused, expected = run(program, arrays, "numpy")
    monkeypatch.setenv("SMOLGRAD_FUSION", "1")
    fused, _ = run(program, arrays, device)
    for got, want, ref in zip(fused, unfused, expected):
        np.testing.assert_allclose(want, ref, rtol=1e-4, atol=1e-5)  # the interpreter itself is right
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
