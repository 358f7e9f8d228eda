"""Property test: random sequences of in-place writes through random views (basic
indexing: ints, stepped slices, None, transposes; views kept and written later), setitem
and reads in between give the same values as the same operations on a NumPy array, on
each device."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import smolgrad as sg

OPS = ("iadd", "imul", "fill", "setitem", "setitem_scalar", "read", "transposed_iadd", "hold", "held_iadd")


@st.composite
def basic_keys(draw, shape):
    """A basic index of `shape`: per dim an int, a slice (step 1 to 3) or nothing, maybe a None."""
    key = []
    for n in shape:
        kind = draw(st.sampled_from(["int", "slice", "slice", "all"]))
        if kind == "int":
            key.append(draw(st.integers(-n, n - 1)))
        elif kind == "slice":
            start = draw(st.integers(0, n - 1))
            key.append(slice(start, draw(st.integers(start + 1, n)), draw(st.integers(1, 3))))
        else:
            key.append(slice(None))
    if draw(st.booleans()):
        key.insert(draw(st.integers(0, len(key))), None)
    return tuple(key)


@st.composite
def programs(draw):
    shape = tuple(draw(st.integers(1, 5)) for _ in range(draw(st.integers(1, 3))))
    steps = []
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(OPS))
        steps.append((op, draw(basic_keys(shape)), draw(st.integers(0, 2**16))))
    return shape, steps


def _apply(op, key, seed, x, a, held):
    """One step on tensor x and array a alike; `held`: views kept (with their keys)."""
    rng = np.random.default_rng(seed)
    if op == "hold":  # a view kept: later writes to x show in it, and its writes in x
        held.append((x[key], key))
        return
    if op == "held_iadd" and held:
        view, key = held[seed % len(held)]
        v = rng.integers(-3, 4, a[key].shape).astype(np.float32)
        view += sg.tensor(v, device=x.device)
        a[key] += v
        return
    target = a[key]
    if op == "read":
        np.testing.assert_array_equal(x[key].numpy(), target)
        return
    v = rng.integers(-3, 4, target.shape).astype(np.float32)
    vt = sg.tensor(v, device=x.device)
    if op == "iadd":
        view = x[key]
        view += vt
        a[key] += v
    elif op == "imul":
        view = x[key]
        view *= 2.0
        a[key] *= 2.0
    elif op == "fill":
        x[key].fill_(float(v.flat[0]) if v.size else 0.0)
        a[key] = v.flat[0] if v.size else 0.0
    elif op == "setitem":
        x[key] = vt
        a[key] = v
    elif op == "setitem_scalar":
        x[key] = -1.5
        a[key] = -1.5
    elif op == "transposed_iadd" and target.ndim >= 2:
        view = x[key].transpose(0, -1)
        view += vt.transpose(0, -1)
        a[key] += v


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(program=programs(), seed=st.integers(0, 2**16))
def test_in_place_writes_through_views_match_numpy(device, program, seed):
    shape, steps = program
    a = np.random.default_rng(seed).integers(-5, 6, shape).astype(np.float32)
    x = sg.tensor(a, device=device)
    held = []
    for op, key, step_seed in steps:
        _apply(op, key, step_seed, x, a, held)
    np.testing.assert_array_equal(x.numpy(), a)
    for view, key in held:
        np.testing.assert_array_equal(view.numpy(), a[key])
