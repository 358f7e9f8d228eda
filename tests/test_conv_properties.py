"""Property test: conv2d, max_pool2d and avg_pool2d with random sizes, strides, padding,
dilation, groups and ceil_mode against the NumPy loops of test_nn_conv, on each device;
and conv2d's gradients on webgpu against numpy's."""

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import smolgrad as sg
import smolgrad.nn.functional as F
from test_nn_conv import conv2d_ref, out_size, pool_ref


@st.composite
def convs(draw):
    groups = draw(st.integers(1, 3))
    c = groups * draw(st.integers(1, 2))
    oc = groups * draw(st.integers(1, 2))
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    p = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    return dict(n=draw(st.integers(1, 2)), c=c, oc=oc, h=h, w=w, k=k, s=s, d=d, p=p, groups=groups,
                bias=draw(st.booleans()), seed=draw(st.integers(0, 2**16)))


def conv_inputs(case) -> list[np.ndarray]:
    """Input, weight and bias of a case whose output is not empty (hypothesis drops the others)."""
    k, s, p, d = case["k"], case["s"], case["p"], case["d"]
    assume(out_size(case["h"], k[0], s[0], p[0], d[0]) >= 1 and out_size(case["w"], k[1], s[1], p[1], d[1]) >= 1)
    rng = np.random.default_rng(case["seed"])
    return [rng.uniform(-1, 1, (case["n"], case["c"], case["h"], case["w"])).astype(np.float32),
            rng.uniform(-1, 1, (case["oc"], case["c"] // case["groups"], *k)).astype(np.float32),
            rng.uniform(-1, 1, case["oc"]).astype(np.float32)]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=convs())
def test_conv2d_matches_numpy(device, case):
    s, p, d = case["s"], case["p"], case["d"]
    x, wt, b = conv_inputs(case)
    b = b if case["bias"] else None
    got = F.conv2d(*(sg.tensor(a, device=device) for a in (x, wt)), None if b is None else sg.tensor(b, device=device),
                   stride=s, padding=p, dilation=d, groups=case["groups"])
    want = conv2d_ref(x.astype(np.float64), wt.astype(np.float64), b, s, p, d, case["groups"])
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=1e-5)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=convs(), kind=st.sampled_from(["max", "avg"]), ceil_mode=st.booleans(), include_pad=st.booleans())
def test_pools_match_numpy(device, case, kind, ceil_mode, include_pad):
    k, s, p = case["k"], case["s"], case["p"]
    d = case["d"] if kind == "max" else (1, 1)  # (avg_pool2d has no dilation)
    assume(out_size(case["h"], k[0], s[0], p[0], d[0], ceil_mode) >= 1)
    assume(out_size(case["w"], k[1], s[1], p[1], d[1], ceil_mode) >= 1)
    rng = np.random.default_rng(case["seed"])
    x = rng.uniform(-1, 1, (case["n"], case["c"], case["h"], case["w"])).astype(np.float32)
    xt = sg.tensor(x, device=device)
    if kind == "max":
        got = F.max_pool2d(xt, k, s, p, dilation=d, ceil_mode=ceil_mode)
        want = pool_ref(x.astype(np.float64), k, s, p, d, ceil_mode, "max")
    else:
        got = F.avg_pool2d(xt, k, s, p, ceil_mode=ceil_mode, count_include_pad=include_pad)
        want = pool_ref(x.astype(np.float64), k, s, p, (1, 1), ceil_mode, "avg", include_pad)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=convs())
def test_conv2d_gradients_on_webgpu_match_numpy(webgpu, case):
    s, p, d = case["s"], case["p"], case["d"]
    arrays = conv_inputs(case)
    grads = {}
    for device in ("numpy", webgpu):
        ts = [sg.tensor(a, device=device, requires_grad=True) for a in arrays]
        out = F.conv2d(*ts, stride=s, padding=p, dilation=d, groups=case["groups"])
        g = np.random.default_rng(1).uniform(-1, 1, out.shape).astype(np.float32)
        (out * sg.tensor(g, device=device)).sum().backward()
        grads[device] = [t.grad.numpy() for t in ts]
    for got, want in zip(grads[webgpu], grads["numpy"]):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_max_pool_window_wholly_in_the_padding_is_minus_inf(device):
    """A dilated window that reads only padding gives -inf, as in torch."""
    x = sg.tensor(np.full((1, 1, 1, 1), 0.7, np.float32), device=device)
    got = F.max_pool2d(x, (1, 2), (1, 1), (0, 1), dilation=(1, 2)).numpy()
    np.testing.assert_array_equal(got, np.full((1, 1, 1, 1), -np.inf, np.float32))
