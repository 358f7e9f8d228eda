"""Property tests: random chains of views feeding ops agree with NumPy on both devices."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import smolgrad as sg
from helpers import assert_close

shapes = st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple)


@st.composite
def view_chains(draw):
    """A shape and a list of movement ops that are valid one after another."""
    shape = draw(shapes)
    ops, cur = [], shape
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["permute", "slice", "flip", "expand", "reshape"]))
        if kind == "permute":
            order = tuple(draw(st.permutations(range(len(cur)))))
            ops.append((kind, order))
            cur = tuple(cur[i] for i in order)
        elif kind == "slice":
            d = draw(st.integers(0, len(cur) - 1))
            start = draw(st.integers(0, cur[d] - 1))
            step = draw(st.integers(1, 3))
            ops.append((kind, (d, start, step)))
            cur = cur[:d] + (len(range(start, cur[d], step)),) + cur[d + 1 :]
        elif kind == "flip":
            d = draw(st.integers(0, len(cur) - 1))
            ops.append((kind, d))
        elif kind == "expand":
            ones = [i for i, n in enumerate(cur) if n == 1]
            if ones:
                d = draw(st.sampled_from(ones))
                n = draw(st.integers(2, 4))
                ops.append((kind, (d, n)))
                cur = cur[:d] + (n,) + cur[d + 1 :]
        else:
            new = (int(np.prod(cur)),) if draw(st.booleans()) else cur + (1,)
            ops.append((kind, new))
            cur = new
    return shape, ops


def apply(x, ops, is_numpy: bool):
    for kind, arg in ops:
        if kind == "permute":
            x = np.transpose(x, arg) if is_numpy else x.permute(arg)
        elif kind == "slice":
            d, start, step = arg
            key = (slice(None),) * d + (slice(start, None, step),)
            x = x[key]
        elif kind == "flip":
            x = np.flip(x, arg) if is_numpy else x.flip(arg)
        elif kind == "expand":
            d, n = arg
            shape = x.shape[:d] + (n,) + x.shape[d + 1 :]
            x = np.broadcast_to(x, shape) if is_numpy else x.expand(shape)
        else:
            x = x.reshape(arg)
    return x


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chain=view_chains(), reduce_last=st.booleans())
def test_view_chains_match_numpy(device, chain, reduce_last):
    shape, ops = chain
    a = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    x = sg.tensor(a, device=device).realize()
    got, expected = apply(x, ops, False), apply(a, ops, True)
    assert got.lazydata.base is x.lazydata or any(k == "reshape" for k, _ in ops)
    if reduce_last:
        assert_close((got * 2 + 1).sum(-1), (expected * 2 + 1).sum(-1), rtol=1e-5, atol=1e-5)
    else:
        assert_close(got.exp(), np.exp(expected), rtol=1e-5, atol=1e-6)
