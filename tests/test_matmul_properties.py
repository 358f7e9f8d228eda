"""Property test: matrix products of random sizes, batch dims (broadcast or not), operand
layouts (transposed, sliced, scaled) and epilogues (bias, activation) against NumPy, on
each device and, on webgpu, with each matmul variant the autotuner can pick."""

import contextlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import smolgrad as sg
from smolgrad.backend import autotune, wgsl

VARIANTS = sorted(wgsl.MATMUL_VARIANTS)


@pytest.fixture(autouse=True)
def _tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SMOLGRAD_AUTOTUNE_CACHE", str(tmp_path))


@st.composite
def products(draw):
    m, k, n = (draw(st.integers(1, 70)) for _ in range(3))
    batch = tuple(draw(st.integers(1, 3)) for _ in range(draw(st.integers(0, 2))))
    return dict(
        m=m, k=k, n=n, batch=batch,
        a_layout=draw(st.sampled_from(["contiguous", "transposed", "sliced"])),
        b_layout=draw(st.sampled_from(["contiguous", "transposed", "sliced", "broadcast"])),
        scale=draw(st.sampled_from([None, 0.5, -3.0])),
        epilogue=draw(st.sampled_from(["none", "bias", "bias_relu", "tanh"])),
        variant=draw(st.sampled_from([None, *VARIANTS])),
        seed=draw(st.integers(0, 2**16)),
    )


def operand(rng, shape, layout, device):
    """(tensor, array) of `shape` stored as `layout` says."""
    a = rng.uniform(-1, 1, shape).astype(np.float32)
    if layout == "transposed":
        t = sg.tensor(np.ascontiguousarray(np.swapaxes(a, -1, -2)), device=device).transpose(-1, -2)
    elif layout == "sliced":  # every other column of a wider array
        wide = np.zeros((*shape[:-1], 2 * shape[-1]), np.float32)
        wide[..., ::2] = a
        t = sg.tensor(wide, device=device)[..., ::2]
    else:
        t = sg.tensor(a, device=device)
    return t, a


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=products())
def test_products_match_numpy(device, case):
    from smolgrad.device import get_backend

    variant = case["variant"] if device == "webgpu" else None
    if variant and wgsl.MATMUL_VARIANTS[variant].kind == "subgroup" and not get_backend(device).matmul_tuner.subgroups:
        variant = None  # (this adapter cannot run the subgroup variants)
    rng = np.random.default_rng(case["seed"])
    m, k, n, batch = case["m"], case["k"], case["n"], case["batch"]
    x, a = operand(rng, (*batch, m, k), case["a_layout"], device)
    if case["b_layout"] == "broadcast":  # one weight for every batch entry
        w, b = operand(rng, (k, n), "contiguous", device)
    else:
        w, b = operand(rng, (*batch, k, n), case["b_layout"], device)
    bias = rng.uniform(-1, 1, n).astype(np.float32)
    if case["scale"] is not None:  # a scaled operand (the scheduler scales the product instead)
        x, a = x * case["scale"], a * np.float32(case["scale"])
    with autotune.forced(variant) if variant else contextlib.nullcontext():
        out = x @ w
        want = a.astype(np.float64) @ b.astype(np.float64)
        if case["epilogue"] in ("bias", "bias_relu"):
            out, want = out + sg.tensor(bias, device=device), want + bias
        if case["epilogue"] == "bias_relu":
            out, want = out.relu(), np.maximum(want, 0)
        if case["epilogue"] == "tanh":
            out, want = out.tanh(), np.tanh(want)
        got = out.numpy()
    np.testing.assert_allclose(got, want.astype(np.float32), rtol=1e-4, atol=1e-4)
