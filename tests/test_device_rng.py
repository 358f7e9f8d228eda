"""Random numbers drawn on the device: Op.RAND (Philox 4x32-10), rand/randn, and dropout.

Statistical checks use tolerances of about 5 standard errors (stated at each), so a
correct generator fails them with negligible probability; the seeds are fixed anyway."""

import math

import numpy as np
import pytest

import smolgrad as sg
import smolgrad.nn.functional as F
from smolgrad import nn, philox
from smolgrad.device import get_backend
from helpers import assert_close, gradcheck


@pytest.fixture(autouse=True)
def fused(monkeypatch):
    monkeypatch.setenv("SMOLGRAD_FUSION", "1")


def reference_uniform(seed: int, offset: int, n: int, stream: int = 0) -> np.ndarray:
    """The (seed, offset) Philox stream, from the plain generator: element i is word i % 4
    of the block at counter (i // 4, offset, stream, 0)."""
    blocks = philox.philox4x32(np.arange(-(-n // 4)), offset, stream, 0, seed & 0xFFFFFFFF, seed >> 32)
    return philox.uniform(np.stack(blocks, axis=1).reshape(-1)[:n])


# ----- the generator itself -----


@pytest.mark.parametrize(
    "counter, key, expected",
    [  # known-answer vectors of Random123 (kat_vectors, philox4x32_10)
        ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
        ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
        (
            (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
            (0xA4093822, 0x299F31D0),
            (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
        ),
    ],
)
def test_philox_known_answers(counter, key, expected):
    assert tuple(int(w) for w in philox.philox4x32(*counter, *key)) == expected


@pytest.mark.parametrize("start, stop", [(0, 1), (0, 9), (3, 70001), (5, 6)])
def test_stream_words_match_the_plain_generator(start, stop):
    got = philox.stream_words(start, stop, 7, 1, 0xDEADBEEF, 12345)
    blocks = philox.philox4x32(np.arange(-(-stop // 4)), 7, 1, 0, 0xDEADBEEF, 12345)
    np.testing.assert_array_equal(got, np.stack(blocks, axis=1).reshape(-1)[start:stop])


def device_rng_state() -> tuple[int, int]:
    """(seed, offset) of the global generator's next device-side draw."""
    state = sg.default_generator.get_state()
    return state["seed"], state["device_offset"]


def test_rand_is_the_seed_offset_stream_on_both_devices(device):
    sg.manual_seed(2**40 + 123)  # a seed with both 32-bit halves set
    assert device_rng_state() == (2**40 + 123, 0)
    a = sg.rand(7, 13, device=device).numpy()
    b = sg.rand(7, 13, device=device).numpy()
    assert device_rng_state() == (2**40 + 123, 2)
    np.testing.assert_array_equal(a, reference_uniform(2**40 + 123, 0, 91).reshape(7, 13))
    np.testing.assert_array_equal(b, reference_uniform(2**40 + 123, 1, 91).reshape(7, 13))


def test_randn_is_box_muller_of_two_streams(device):
    sg.manual_seed(21)
    z = sg.randn(3, 11, device=device).numpy()
    u1, u2 = (reference_uniform(21, 0, 33, stream).astype(np.float64) for stream in (0, 1))
    expected = np.sqrt(-2 * np.log(1 - u1)) * np.cos(2 * np.pi * u2)
    np.testing.assert_allclose(z, expected.reshape(3, 11), rtol=1e-5, atol=1e-5)
    assert device_rng_state() == (21, 1)  # one draw


def test_rand_values_do_not_depend_on_how_they_are_fused(device):
    """The counter is the element's own index, whatever view or kernel reads it."""
    sg.manual_seed(9)
    expected = reference_uniform(9, 0, 5 * 6).reshape(5, 6)
    w = np.arange(6 * 4, dtype=np.float32).reshape(6, 4) / 10
    ones = sg.tensor(np.ones((5, 6), np.float32), device=device)
    sg.manual_seed(9)
    r = sg.rand(5, 6, device=device)
    uses = {
        "transposed": (r.T * 2.0, expected.T * 2),
        "sliced": (r[1:, ::2] + 1.0, expected[1:, ::2] + 1),
        "flipped": (r.flip(0) - 0.5, expected[::-1] - 0.5),
        "reduced": (r.sum(1), expected.sum(1)),
        "matmul_epilogue": (ones @ sg.tensor(w, device=device) + r[:, :4], np.ones((5, 6)) @ w + expected[:, :4]),
    }
    names = list(uses)
    for group in (names[:3], names[3:]):  # (more than 3 consumers would store r instead)
        sg.realize(*[uses[n][0] for n in group])  # each use recomputes r in its own kernel
        assert not r.lazydata.is_realized()  # fused everywhere: r itself was never stored
    for t, ref in uses.values():
        assert_close(t, ref.astype(np.float32), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(r.numpy(), expected)


def test_rand_without_fusion_gives_the_same_values(device, monkeypatch):
    sg.manual_seed(4)
    fused = (sg.rand(3, 8, device=device).T * 3.0).numpy()
    monkeypatch.setenv("SMOLGRAD_FUSION", "0")
    sg.manual_seed(4)
    np.testing.assert_array_equal((sg.rand(3, 8, device=device).T * 3.0).numpy(), fused)


def test_rand_draws_in_the_kernel_that_uses_it(device):
    x = sg.tensor(np.ones(1000, np.float32), device=device)
    sg.realize(x)
    y = x * sg.rand(1000, device=device) + 1.0
    sg.reset_stats(device)
    sg.realize(y)
    assert sg.stats(device)["dispatches"] == 1


def test_uniform_statistics(device):
    n = 40000
    u = sg.rand(n, device=device).numpy()
    assert u.dtype == np.float32 and u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 5 * math.sqrt(1 / 12 / n)  # 5 standard errors of the mean
    counts = np.histogram(u, bins=10, range=(0, 1))[0]
    expected, sd = n / 10, math.sqrt(n * 0.1 * 0.9)
    assert np.all(np.abs(counts - expected) < 5 * sd), counts
    # neighbouring elements are uncorrelated (|r| < 5 / sqrt(n))
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 5 / math.sqrt(n)


def test_normal_statistics(device):
    n = 40000
    z = sg.randn(200, 200, device=device).numpy().reshape(-1)
    assert z.dtype == np.float32 and np.isfinite(z).all()
    assert abs(z.mean()) < 5 / math.sqrt(n)
    assert abs(z.std() - 1) < 5 * math.sqrt(0.5 / n)  # standard error of the sd: 1/sqrt(2n)
    within = np.mean(np.abs(z) < 1)
    assert abs(within - 0.682689) < 5 * math.sqrt(0.6827 * 0.3173 / n)
    assert abs(np.corrcoef(z[:-1], z[1:])[0, 1]) < 5 / math.sqrt(n)


def test_rand_shapes_and_dtypes(device):
    assert sg.rand(device=device).shape == () and 0 <= sg.rand(device=device).item() < 1
    assert sg.rand(0, 3, device=device).numpy().shape == (0, 3)
    assert sg.randn(2, 3, device=device, requires_grad=True).requires_grad
    like = sg.zeros(4, 1, device=device)
    assert sg.rand_like(like).shape == (4, 1) and sg.randn_like(like).device == device
    d = sg.rand(5, dtype=sg.float64, device="numpy")
    assert d.dtype == sg.float64 and (d.numpy() < 1).all()


def test_rand_bad_dtypes_raise(device):
    with pytest.raises(TypeError, match=r"rand: expected a floating point dtype, got int64"):
        sg.rand(3, dtype=sg.int64, device=device)
    with pytest.raises(TypeError, match=r"randn: expected a floating point dtype, got bool"):
        sg.randn(3, dtype=sg.bool, device=device)


def test_rand_float64_on_webgpu_raises(webgpu):
    with pytest.raises(TypeError, match="randn: float64 is only supported on the numpy device"):
        sg.randn(3, dtype=sg.float64, device=webgpu)


# ----- dropout -----


def test_dropout_keep_rate_and_scale(device):
    n, p = 40000, 0.3
    x = sg.tensor(np.linspace(0.5, 2.0, n, dtype=np.float32).reshape(200, 200), device=device)
    out = F.dropout(x, p).numpy()
    kept = out != 0
    assert abs(kept.mean() - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)  # 5 standard errors
    np.testing.assert_allclose(out[kept], x.numpy()[kept] / (1 - p), rtol=1e-6)
    # inverted dropout keeps the expectation: E[out] = E[x]
    assert abs(out.mean() - x.numpy().mean()) < 5 * x.numpy().std() * math.sqrt(p / (1 - p) / n) + 0.02


def test_dropout_same_seed_same_mask_different_seed_different_mask(device):
    x = sg.ones(64, 64, device=device)
    sg.manual_seed(5)
    a = F.dropout(x, 0.5).numpy()
    sg.manual_seed(5)
    b = F.dropout(x, 0.5).numpy()
    sg.manual_seed(6)
    c = F.dropout(x, 0.5).numpy()
    np.testing.assert_array_equal(a, b)
    agree = np.mean((a != 0) == (c != 0))
    assert abs(agree - 0.5) < 5 * math.sqrt(0.25 / a.size)  # independent masks agree half the time


def test_dropout_masks_of_successive_calls_are_independent(device):
    n, p = 40000, 0.4
    x = sg.ones(n, device=device)
    m1 = F.dropout(x, p).numpy() != 0
    m2 = F.dropout(x, p).numpy() != 0
    assert abs(np.corrcoef(m1, m2)[0, 1]) < 5 / math.sqrt(n)
    both = np.mean(m1 & m2)  # P(kept twice) = (1-p)^2 for independent masks
    assert abs(both - (1 - p) ** 2) < 5 * math.sqrt((1 - p) ** 2 * (1 - (1 - p) ** 2) / n)


def test_dropout_same_mask_on_both_devices(webgpu):
    sg.manual_seed(11)
    a = F.dropout(sg.ones(9, 31, device="numpy"), 0.35).numpy()
    sg.manual_seed(11)
    b = F.dropout(sg.ones(9, 31, device=webgpu), 0.35).numpy()
    np.testing.assert_array_equal(a, b)


def test_dropout_gradient_uses_the_forward_mask(device):
    rng = np.random.default_rng(0)
    xv = rng.uniform(0.5, 1.5, (17, 23)).astype(np.float32)  # nonzero, so a zero output means dropped
    gv = rng.standard_normal((17, 23)).astype(np.float32)
    x = sg.tensor(xv, device=device, requires_grad=True)
    out = F.dropout(x.T, 0.25)  # through a non-contiguous view
    out.backward(sg.tensor(gv.T, device=device))
    mask = out.detach().numpy().T != 0
    assert 0.6 < mask.mean() < 0.9
    assert_close(x.grad, np.where(mask, gv / 0.75, 0.0).astype(np.float32))
    assert_close(out, np.where(mask, xv / 0.75, 0.0).T.astype(np.float32))


def test_dropout_gradcheck_float64():
    def fn(x):
        sg.manual_seed(3)  # the same mask on every call, as finite differences need
        return F.dropout(x * 1.5, 0.4)

    gradcheck(fn, np.random.default_rng(1).uniform(-1, 1, (4, 5)))


def test_dropout_float64_on_numpy():
    out = F.dropout(sg.ones(100, dtype=sg.float64), 0.5)
    assert out.dtype == sg.float64 and set(np.unique(out.numpy())) <= {0.0, 2.0}


def test_dropout_uploads_only_its_key(device, monkeypatch):
    backend = get_backend(device)
    x = sg.tensor(np.ones((64, 32), np.float32), device=device, requires_grad=True)
    sg.realize(x)
    uploaded = []
    original = type(backend).upload

    def counting_upload(self, flat, dtype):
        uploaded.append(np.asarray(flat).nbytes)
        return original(self, flat, dtype)

    monkeypatch.setattr(type(backend), "upload", counting_upload)
    out = F.dropout(x, 0.5)
    out.sum().backward()
    sg.realize(out, x.grad)
    assert uploaded == [12]  # (seed low, seed high, offset) as int32; the mask is never uploaded


def test_dropout_steps_compile_nothing_new(webgpu):
    """The seed reaches the kernel as a buffer: later steps reuse the compiled pipelines."""
    lin = nn.Linear(16, 16).to(webgpu)
    x = sg.randn(8, 16, device=webgpu)

    def step():
        out = F.dropout(lin(x), 0.2).relu().sum()
        out.backward()
        return out.item()

    values = [step(), step()]
    compiled = sg.stats(webgpu)["kernels_compiled"]
    values.append(step())
    assert sg.stats(webgpu)["kernels_compiled"] == compiled
    assert len(set(values)) == 3  # a new mask each step


def test_dropout_module_on_device(device):
    drop = nn.Dropout(0.5)
    x = sg.ones(50, 40, device=device)
    out = drop(x).numpy()
    assert set(np.unique(out)) <= {0.0, 2.0} and 0.4 < (out == 0).mean() < 0.6
    drop.eval()
    assert drop(x) is x


def test_dropout_bad_inputs(device):
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got -0.1"):
        F.dropout(sg.ones(2, device=device), -0.1)
    with pytest.raises(TypeError, match="dropout: expected a floating point input, got int64"):
        F.dropout(sg.tensor([1, 2], device=device), 0.5)


# ----- generator= (torch.rand(..., generator=g)) -----


def test_rand_randn_randint_draw_from_the_generator_given(device):
    """Draws from a Generator depend on its seed alone: the global generator's draws in
    between change nothing, and they do not advance the global stream."""
    def draws(g):
        return (sg.rand(5, generator=g, device=device).numpy(), sg.randn(2, 3, generator=g, device=device).numpy(),
                sg.randint(0, 100, (6,), generator=g, device=device).numpy())

    first = draws(sg.Generator().manual_seed(7))
    sg.manual_seed(0)
    expected_global = sg.rand(4, device=device).numpy()
    sg.manual_seed(0)
    g = sg.Generator().manual_seed(7)
    again = draws(g)
    assert_close(sg.rand(4, device=device), expected_global)  # the global stream did not move
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    u = sg.rand(5, generator=sg.Generator().manual_seed(7), device=device).numpy()
    np.testing.assert_array_equal(u, reference_uniform(7, 0, 5).astype(np.float32))  # its own (seed, offset) stream
    assert not np.array_equal(draws(g)[0], first[0])  # and it advances


def test_generator_must_be_a_smolgrad_generator():
    with pytest.raises(TypeError, match="generator must be a smolgrad.Generator"):
        sg.randn(3, generator=np.random.default_rng(0))


@pytest.mark.parametrize("init", ["uniform_", "normal_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
                                  "kaiming_normal_"])
def test_nn_init_takes_a_generator(device, init):
    """torch.nn.init's generator= argument: the same seed fills the same values, whatever
    the global generator did in between."""
    fill = getattr(nn.init, init)
    a, b = sg.zeros(8, 6, device=device), sg.zeros(8, 6, device=device)
    fill(a, generator=sg.Generator().manual_seed(5))
    sg.rand(3, device=device)  # (a global draw in between)
    fill(b, generator=sg.Generator().manual_seed(5))
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert np.unique(a.numpy()).size > 40  # (random values, not a constant)
    c = sg.zeros(8, 6, device=device).uniform_(generator=sg.Generator().manual_seed(5))
    d = sg.zeros(8, 6, device=device).normal_(generator=sg.Generator().manual_seed(5))
    assert not np.array_equal(c.numpy(), d.numpy())
