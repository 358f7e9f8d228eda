"""Every matmul variant the autotuner can pick, against NumPy on webgpu (odd sizes, rows
of 1, more rows and columns than a workgroup covers, strided and batched operands, fused
epilogues, float16 storage), and the autotuner itself: its choice, its cache file, its switch,
and which variants an adapter can run."""

from __future__ import annotations

import json

import numpy as np
import pytest

import smolgrad as sg
import smolgrad.nn.functional as F
from smolgrad.backend import autotune, wgsl

from helpers import assert_close, rand

VARIANTS = sorted(wgsl.MATMUL_VARIANTS)
# (m, k, n): rows of 1, odd sizes, k and n multiples of 4 (vec4 loads) and not, past one block
SHAPES = [(1, 1, 1), (1, 8, 12), (3, 5, 7), (33, 12, 65), (130, 20, 68)]


@pytest.fixture(autouse=True)
def _tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SMOLGRAD_AUTOTUNE_CACHE", str(tmp_path))


def runnable(device: str, name: str) -> None:
    """Skip a variant this adapter cannot run (the subgroup ones need subgroups of 8 lanes)."""
    from smolgrad.device import get_backend

    if wgsl.MATMUL_VARIANTS[name].kind == "subgroup" and not get_backend(device).matmul_tuner.subgroups:
        pytest.skip(f"{name} needs subgroups of {wgsl.SUBGROUP_LANES} lanes, which this adapter lacks")


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("m,k,n", SHAPES)
def test_variant_matches_numpy(webgpu, name, m, k, n):
    runnable(webgpu, name)
    a, b = rand(m, k, seed=1), rand(k, n, seed=2)
    with autotune.forced(name):
        out = (sg.tensor(a, device=webgpu) @ sg.tensor(b, device=webgpu)).numpy()
    assert_close(out, a @ b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("m,k,n", SHAPES)
def test_variant_linear_matches_numpy(webgpu, name, m, k, n):
    """x @ w.T + b: the weight read transposed, in place (contiguous along K)."""
    runnable(webgpu, name)
    x, w, b = rand(m, k, seed=1), rand(n, k, seed=2), rand(n, seed=3)
    with autotune.forced(name):
        out = F.linear(*(sg.tensor(t, device=webgpu) for t in (x, w, b))).numpy()
    assert_close(out, x @ w.T + b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("m,k,n", [(4, 3, 8), (36, 5, 12), (12, 1, 66), (72, 6, 20)])
def test_variant_transposed_a_matches_numpy(webgpu, name, m, k, n):
    """g^T @ x (nn.Linear's weight gradient): A read transposed, in place (contiguous along M)."""
    runnable(webgpu, name)
    g, x = rand(k, m, seed=1), rand(k, n, seed=2)
    with autotune.forced(name):
        out = (sg.tensor(g, device=webgpu).transpose(0, 1) @ sg.tensor(x, device=webgpu)).numpy()
    assert_close(out, g.T @ x, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_strided_batched_and_epilogue(webgpu, name):
    runnable(webgpu, name)
    a, b, bias = rand(3, 8, 12, seed=1), rand(3, 16, 12, seed=2), rand(16, seed=3)
    ta, tb, tbias = (sg.tensor(x, device=webgpu) for x in (a, b, bias))
    x = rand(2, 6, 8, seed=4)  # x @ x^T + x[..., :6]: both operands and the epilogue read one buffer
    tx = sg.tensor(x, device=webgpu)
    with autotune.forced(name):
        out1 = (ta @ tb.transpose(-2, -1) + tbias).relu().numpy()  # transposed B, read in place
        out2 = (ta[:, 1:7, :] @ tb[1].transpose(0, 1)[:, ::2]).numpy()  # sliced, offset, broadcast batch
        out3 = (tx @ tx.transpose(-2, -1) + tx[..., :6]).numpy()
    assert_close(out1, np.maximum(a @ np.swapaxes(b, -1, -2) + bias, 0), atol=1e-5, rtol=1e-5)
    assert_close(out2, a[:, 1:7, :] @ b[1].T[:, ::2], atol=1e-5, rtol=1e-5)
    assert_close(out3, x @ np.swapaxes(x, -1, -2) + x[..., :6], atol=1e-5, rtol=1e-5)


def test_unknown_variant_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown matmul variant 'nope'"):
        with autotune.forced("nope"):
            pass


def test_autotuner_times_caches_and_reuses(webgpu, tmp_path, monkeypatch):
    from smolgrad.device import get_backend

    backend = get_backend(webgpu)
    tuner = autotune.MatmulTuner(backend)  # a fresh tuner: this test's cache folder
    monkeypatch.setattr(backend, "matmul_tuner", tuner)
    m, k, n = 256, 128, 512  # over TUNE_MIN_FLOPS: tuned
    a, b = rand(m, k, seed=1), rand(k, n, seed=2)
    out = (sg.tensor(a, device=webgpu) @ sg.tensor(b, device=webgpu)).numpy()
    assert_close(out, a @ b, atol=1e-4, rtol=1e-5)
    (key,) = tuner.timings
    assert set(tuner.timings[key]) == set(tuner.candidates)
    assert all(t > 0 for t in tuner.timings[key].values())
    saved = json.loads(tuner.path.read_text())
    assert tuner.path.parent == tmp_path and saved["choices"][key] in wgsl.MATMUL_VARIANTS
    # a new process (a new tuner) reads the choice back instead of timing again
    again = autotune.MatmulTuner(backend)
    monkeypatch.setattr(backend, "matmul_tuner", again)
    assert again.variant(m, n, k, 1, "f32").name == saved["choices"][key] and not again.timings
    # small matmuls and SMOLGRAD_AUTOTUNE=0 take the fixed rule without timing
    assert again.variant(8, 8, 8, 1, "f32").name == autotune.fixed_rule(8, 8, 8, 1, again.software)
    monkeypatch.setenv("SMOLGRAD_AUTOTUNE", "0")
    assert again.variant(m, n, k, 1, "f32").name == autotune.fixed_rule(m, n, k, 1, again.software, again.subgroups)
    assert not again.timings


def test_unreadable_cache_is_ignored(webgpu, tmp_path):
    from smolgrad.device import get_backend

    tuner = autotune.MatmulTuner(get_backend(webgpu))
    tuner.path.write_text("{not json")
    assert tuner._load() == {}


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_k_tail_and_half_storage(webgpu, name):
    """K not a multiple of 4 past the unrolled steps, rows of 1, and float16 operands (stored
    as f16, accumulated in f32), plain and with the weight read transposed."""
    runnable(webgpu, name)
    a, b = rand(37, 9, seed=1), rand(9, 70, seed=2)
    with autotune.forced(name):
        out = (sg.tensor(a, device=webgpu) @ sg.tensor(b, device=webgpu)).numpy()
        row = (sg.tensor(a[:1], device=webgpu) @ sg.tensor(b, device=webgpu)).numpy()
    assert_close(out, a @ b, atol=1e-5, rtol=1e-5)
    assert_close(row, a[:1] @ b, atol=1e-5, rtol=1e-5)
    from smolgrad.device import get_backend

    if "shader-f16" not in get_backend(webgpu).device.features:
        return  # (float16 on webgpu needs the feature; test_half checks the error without it)
    x, w = rand(33, 20, seed=3).astype(np.float16), rand(68, 20, seed=4).astype(np.float16)
    with autotune.forced(name):
        tx, tw = sg.tensor(x, device=webgpu), sg.tensor(w, device=webgpu)
        plain = (tx @ tw.transpose(0, 1).contiguous()).float().numpy()
        linear = (tx @ tw.transpose(0, 1)).float().numpy()
    exact = x.astype(np.float32) @ w.astype(np.float32).T
    assert_close(plain, exact, atol=2e-2, rtol=2e-3)  # (the result is rounded to float16)
    assert_close(linear, exact, atol=2e-2, rtol=2e-3)


def test_subgroup_variants_only_where_the_probe_allows(webgpu, monkeypatch):
    from smolgrad.device import get_backend

    backend = get_backend(webgpu)
    tuner = autotune.MatmulTuner(backend)
    ok = autotune.subgroup_variants_ok(backend)
    if backend.adapter_info.get("vendor") == "llvmpipe" and "subgroup" in backend.device.features:
        assert ok  # lavapipe: 8 lanes of 256-bit SIMD, numbered as the invocations
    subgroup = {n for n, v in wgsl.MATMUL_VARIANTS.items() if v.kind == "subgroup"}
    ok = ok and tuner.software  # (a GPU may size subgroups per shader: never there)
    assert (subgroup <= set(tuner.candidates)) == ok and tuner.subgroups == ok
    if ok:  # (the direct variants lose to them there: not tuned)
        assert set(tuner.candidates) == subgroup | {wgsl.DEFAULT_MATMUL}
    # an adapter without them: not tuned, not in the fixed rule, a clear error when forced
    monkeypatch.setattr(autotune, "subgroup_variants_ok", lambda b: False)
    without = autotune.MatmulTuner(backend)
    assert not subgroup & set(without.candidates) and not without.subgroups
    monkeypatch.setenv("SMOLGRAD_AUTOTUNE", "0")
    assert without.variant(512, 512, 512, 1, "f32").kind != "subgroup"
    name = sorted(subgroup)[0]
    with pytest.raises(RuntimeError, match=f"matmul variant '{name}' needs subgroups of 8 lanes"):
        with autotune.forced(name):
            without.variant(64, 64, 64, 1, "f32")
