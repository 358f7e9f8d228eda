"""Test helpers: compare against NumPy and check gradients by finite differences."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

import smolgrad as sg


def assert_close(t, expected, rtol: float = 1e-5, atol: float = 1e-5) -> None:
    """Compare a smolgrad tensor (or array) with a NumPy value, shape and dtype kind included."""
    got = t.detach().numpy() if isinstance(t, sg.Tensor) else np.asarray(t)
    expected = np.asarray(expected)
    assert got.shape == expected.shape, f"shape {got.shape} != expected {expected.shape}"
    if expected.dtype == np.bool_:
        assert got.dtype == np.bool_, f"dtype {got.dtype}, expected bool"
        np.testing.assert_array_equal(got, expected)
    elif expected.dtype.kind in "iu":
        assert got.dtype.kind in "iu", f"dtype {got.dtype}, expected an integer dtype"
        np.testing.assert_array_equal(got, expected)
    else:
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol, equal_nan=True)


def noncontiguous_tensor(a: np.ndarray, device: str = "numpy", dtype=None) -> sg.Tensor:
    """A leaf tensor with `a`'s values stored out of order: a view over a buffer held with
    the dims reversed (2-D and up) or every other element (1-D). 0-d stays as it is."""
    a = np.asarray(a)
    if a.ndim == 0:
        return sg.tensor(a, device=device, dtype=dtype)
    if a.ndim == 1:
        spaced = np.zeros(2 * a.size, dtype=a.dtype)
        spaced[::2] = a
        view = sg.tensor(spaced, device=device, dtype=dtype)[::2]
    else:
        order = tuple(reversed(range(a.ndim)))
        view = sg.tensor(np.ascontiguousarray(a.transpose(order)), device=device, dtype=dtype).permute(order)
    return view.detach()


def gradcheck(
    fn: Callable[..., sg.Tensor],
    *arrays: np.ndarray,
    eps: float = 1e-6,
    rtol: float = 1e-4,
    atol: float = 1e-6,
    noncontiguous: bool = False,
) -> None:
    """Check fn's gradients against central finite differences, in float64 on numpy.

    The output is reduced with fixed random weights so every output element matters.
    With `noncontiguous`, every input is a strided view (see noncontiguous_tensor)."""
    inputs = [np.asarray(a, dtype=np.float64) for a in arrays]

    def make(a: np.ndarray) -> sg.Tensor:
        return noncontiguous_tensor(a) if noncontiguous else sg.tensor(a, device="numpy")

    probe = fn(*[make(a) for a in inputs])
    weights = np.random.default_rng(1).standard_normal(probe.shape)

    def loss(*xs: np.ndarray) -> float:
        out = fn(*[make(x) for x in xs])
        return float((out.detach().numpy().astype(np.float64) * weights).sum())

    tensors = [make(a).requires_grad_() for a in inputs]
    out = fn(*tensors)
    assert out.dtype == sg.float64, f"gradcheck expects a float64 output, got {out.dtype}"
    (out * sg.tensor(weights, device="numpy")).sum().backward()
    for i, (t, a) in enumerate(zip(tensors, inputs)):
        numeric = np.zeros_like(a)
        flat = a.reshape(-1)
        for j in range(flat.size):
            orig = flat[j]
            flat[j] = orig + eps
            plus = loss(*inputs)
            flat[j] = orig - eps
            minus = loss(*inputs)
            flat[j] = orig
            numeric.reshape(-1)[j] = (plus - minus) / (2 * eps)
        analytic = t.grad.numpy() if t.grad is not None else np.zeros_like(a)
        assert analytic.shape == a.shape, f"input {i}: grad shape {analytic.shape} != {a.shape}"
        np.testing.assert_allclose(analytic, numeric, rtol=rtol, atol=atol, err_msg=f"gradient of input {i}")


def on(device: str, *arrays: np.ndarray, dtype=None) -> list[sg.Tensor]:
    """The arrays as float32 (or `dtype`) tensors on `device`."""
    return [sg.tensor(a, dtype=dtype or sg.float32, device=device) for a in arrays]


def rand(*shape: int, low: float = -1.0, high: float = 1.0, seed: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(low, high, size=shape).astype(np.float32)


def strided_variants(a: np.ndarray) -> Sequence[tuple[str, Callable[[sg.Tensor], sg.Tensor], Callable]]:
    """Ways to turn a contiguous tensor into a non-contiguous view of the same values."""
    return [
        ("transposed", lambda t: t.T, lambda x: x.T),
        ("flipped", lambda t: t.flip(0), lambda x: x[::-1]),
        ("strided", lambda t: t[::2], lambda x: x[::2]),
    ]


# ----- optimizers and schedulers -----


def run_steps(opt, params, grads, device, scheduler=None):
    """Set each step's grads by hand, step, and record the parameter values."""
    history = []
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = sg.tensor(g, device=device)
        opt.step()
        if scheduler is not None:
            scheduler.step()
        history.append([p.detach().numpy() for p in params])
    return history


def check_against(history, references, rtol=1e-5, atol=1e-6):
    """Each step's parameter values (run_steps) against references[param][step]."""
    for step, values in enumerate(history):
        for i, got in enumerate(values):
            np.testing.assert_allclose(got, references[i][step], rtol=rtol, atol=atol, err_msg=f"param {i}, step {step + 1}")


def lrs_over(scheduler, steps):
    """The lr of each group before each of `steps` optimizer steps."""
    out = []
    for _ in range(steps):
        out.append([g["lr"] for g in scheduler.optimizer.param_groups])
        scheduler.optimizer.step()
        scheduler.step()
    return out


# ----- losses -----


def nll_np(logp, t, weight=None, ignore_index=-100, reduction="mean"):
    """torch's nll_loss of (N, C) log-probabilities, in NumPy."""
    c = logp.shape[1]
    w = np.ones(c) if weight is None else weight
    valid = t != ignore_index
    safe = np.where(valid, t, 0)
    picked = np.take_along_axis(logp, np.expand_dims(safe, 1), 1).squeeze(1)
    wt = w[safe] * valid
    loss = -picked * wt
    if reduction == "mean":
        return loss.sum() / wt.sum()
    return loss.sum() if reduction == "sum" else loss
