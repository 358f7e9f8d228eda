"""The GPT example (examples/train_gpt.py, sample_gpt.py, gpt.py): a short training run
on four TinyStories stories learns; attention is causal; sampling with the KV cache
gives the full forward's logits; offline without data it trains on the built-in
template stories; and a few steps on webgpu agree with numpy."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import smolgrad as sg
from smolgrad.data import load_stories, split_stories, template_stories

pytest.importorskip("tokenizers", reason="the GPT example needs `tokenizers` (pip install -e \".[dev]\")")

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
sys.path.insert(0, str(EXAMPLES))
from gpt import (CONFIGS, GPT, GPTConfig, KVCache, eval_batches, generate, lr_lambda, param_groups,  # noqa: E402
                 split_train_val)

ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def tiny_stories_file() -> Path | None:
    for folder in (os.environ.get("SMOLGRAD_DATA"), REPO.parent / "shared" / "data"):
        if folder and (Path(folder) / "tinystories" / "tiny_4_stories.txt").is_file():
            return Path(folder) / "tinystories" / "tiny_4_stories.txt"
    return None


def run(script: str, *args: str, env=None, expect: int = 0) -> str:
    result = subprocess.run([sys.executable, str(EXAMPLES / script), "--no-progress", *args],
                            capture_output=True, text=True, timeout=600, env=env or ENV)
    assert result.returncode == expect, f"exit status {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def val_losses(output: str) -> list[float]:
    found = [float(v) for v in re.findall(r"val loss ([\d.]+)", output)]
    assert found, output
    return found


# ----- the model -----

def small_model(seed: int = 0, device: str = "numpy") -> GPT:
    sg.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=64, context=16, dim=32, n_layers=2, n_heads=4)).to(device)


def test_changing_a_future_token_leaves_earlier_logits_unchanged():
    model = small_model()
    ids = np.random.default_rng(0).integers(0, 64, size=(2, 12))
    changed = ids.copy()
    changed[:, 7] = (changed[:, 7] + 1) % 64
    with sg.no_grad():
        a, b = model(sg.tensor(ids)).numpy(), model(sg.tensor(changed)).numpy()
    np.testing.assert_array_equal(a[:, :7], b[:, :7])
    assert np.abs(a[:, 7:] - b[:, 7:]).max() > 1e-4  # later positions do see it


def test_kv_cache_gives_the_full_forward_logits():
    model = small_model()
    ids = np.random.default_rng(1).integers(0, 64, size=(1, 16))
    with sg.no_grad():
        full = model(sg.tensor(ids)).numpy()
        caches = [KVCache(model.config) for _ in model.blocks]
        parts = [model(sg.tensor(ids[:, :5]), caches).numpy()]           # the prompt in one go
        for t in range(5, 16):                                           # then one position at a time
            parts.append(model(sg.tensor(ids[:, t:t + 1]), caches, sg.tensor([t])).numpy())
    assert caches[0].k.shape == (1, 4, 16, 8)  # fixed size: the context
    np.testing.assert_allclose(np.concatenate(parts, axis=1), full, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("compiled", [True, False], ids=["captured", "eager"])
def test_greedy_generation_matches_argmax_of_full_forward_and_runs_past_the_context(device, compiled):
    model = small_model().to(device)
    prompt = [3, 1, 4]
    out = list(generate(model, prompt, max_new_tokens=20, temperature=0.0, device=device, compiled=compiled))
    assert len(out) == 20  # 23 tokens > context 16: the cache restarted once
    ids = prompt + out
    with sg.no_grad():
        logits = model(sg.tensor([ids[:16]], device=device)).numpy()[0]
    np.testing.assert_array_equal(logits[len(prompt) - 1:15].argmax(-1), ids[len(prompt):16])


def test_captured_decoding_compiles_nothing_after_the_first_tokens(device):
    model = small_model().to(device)
    tokens = generate(model, [5], max_new_tokens=12, temperature=0.0, device=device)
    for _ in range(5):  # the prompt, then tokens recorded until two recordings agree
        next(tokens)
    sg.reset_stats()
    rest = list(tokens)
    stats = sg.stats(device)
    assert len(rest) == 7 and stats["kernels"] > 0
    assert stats["kernels_compiled"] == 0
    if device == "webgpu":
        assert stats["submits"] <= 2 * len(rest)  # one replay and one readback of the logits per token


def test_output_head_is_tied_and_decay_only_on_matrices():
    model = small_model()
    names = [n for n, _ in model.named_parameters()]
    assert not any("head" in n for n in names)  # no separate output matrix
    decay, no_decay = param_groups(model, 0.1)
    assert all(p.ndim == 2 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0


def test_named_configs():
    assert CONFIGS["260k"] == GPTConfig(vocab_size=512, context=512, dim=64, n_layers=5, n_heads=8)
    n = GPT(CONFIGS["default"]).num_parameters()
    assert 500_000 <= n <= 1_000_000


def test_schedule_warms_up_linearly_then_decays_by_cosine():
    f = lr_lambda(warmup=10, total=110, min_ratio=0.1)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.55) and f(110) == pytest.approx(0.1)
    assert all(f(s) >= f(s + 1) for s in range(10, 120))


# ----- data -----

def test_stories_split_on_endoftext_lines_and_last_tenth_is_held_out():
    stories = split_stories("one\n<|endoftext|>\ntwo\nlines\n<|endoftext|>\n\n<|endoftext|>\nthree")
    assert stories == ["one", "two\nlines", "three"]
    train, val = split_train_val([str(i) for i in range(20)])
    assert train == [str(i) for i in range(18)] and val == ["18", "19"]


def test_eval_batches_cover_short_data_with_a_shorter_window():
    (x, y), = eval_batches(np.arange(10, dtype=np.int32), batch_size=4, context=32, max_batches=2)
    np.testing.assert_array_equal(x[0], np.arange(9))
    np.testing.assert_array_equal(y[0], np.arange(1, 10))


def test_template_stories_are_deterministic_and_varied():
    a, b = template_stories(200), template_stories(200)
    assert a == b and len(set(a)) > 150
    assert all(s and "<|endoftext|>" not in s for s in a)


def test_offline_without_data_falls_back_to_template_stories(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("SMOLGRAD_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    stories, source = load_stories(download_ok=False)
    assert source == "template" and stories == template_stories()
    out = capsys.readouterr().out
    assert "built-in corpus" in out and "TinyStories-valid.txt" in out


# ----- the scripts -----

@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    """30 steps of the default config on four stories, then sample_gpt.py's input."""
    data = tiny_stories_file()
    if data is None:
        pytest.skip("tiny_4_stories.txt is not here: set SMOLGRAD_DATA to ../shared/data")
    folder = tmp_path_factory.mktemp("gpt")
    checkpoint = folder / "gpt.safetensors"
    out = run("train_gpt.py", "--device", "numpy", "--data", str(data), "--steps", "30", "--batch-size", "8",
              "--eval-every", "10", "--checkpoint", str(checkpoint), "--samples", "1", "--max-new-tokens", "20")
    return out, checkpoint


def test_short_training_run_lowers_the_validation_loss(short_run):
    # Measured: 6.25 at step 0, 5.2 after 30 steps.
    out, checkpoint = short_run
    losses = val_losses(out)
    assert len(losses) == 4 and losses[-1] < losses[0] - 0.7, out
    assert "--- sample 1" in out
    state = sg.load(checkpoint, device="numpy")
    assert state["step"] == 30 and state["config"]["dim"] == 128 and state["optimizer"]["state"]
    assert Path(state["tokenizer"]).is_file()
    rows = [json.loads(line) for line in checkpoint.with_suffix(".metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(31)) and all("tokens_per_s" in r for r in rows[1:])


def test_sample_script_streams_a_story_from_the_checkpoint(short_run):
    _, checkpoint = short_run
    out = run("sample_gpt.py", "--device", "numpy", "--checkpoint", str(checkpoint), "--prompt", "Ben",
              "--max-new-tokens", "15", "--temperature", "0.5")
    assert "GPT after 30 steps" in out and "\nBen" in out


def test_resume_continues_exactly_where_the_run_stopped(tmp_path):
    data = tiny_stories_file()
    if data is None:
        pytest.skip("tiny_4_stories.txt is not here")
    args = ["--device", "numpy", "--data", str(data), "--config", "tiny", "--batch-size", "4", "--samples", "0",
            "--eval-every", "4"]
    straight, resumed = tmp_path / "a" / "gpt.safetensors", tmp_path / "b" / "gpt.safetensors"
    run("train_gpt.py", *args, "--steps", "8", "--checkpoint", str(straight))
    run("train_gpt.py", *args, "--steps", "8", "--stop-at", "4", "--checkpoint", str(resumed))
    out = run("train_gpt.py", *args, "--steps", "8", "--resume", "--checkpoint", str(resumed))
    assert "resuming after step 4" in out
    a, b = sg.load(straight, device="numpy"), sg.load(resumed, device="numpy")
    for name in a["model"]:
        np.testing.assert_allclose(a["model"][name].numpy(), b["model"][name].numpy(), rtol=1e-6, atol=1e-7, err_msg=name)


def test_train_script_offline_without_data_says_so_and_trains_on_template_stories(tmp_path):
    env = {k: v for k, v in ENV.items() if k != "SMOLGRAD_DATA"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    out = run("train_gpt.py", "--device", "numpy", "--offline", "--config", "tiny", "--steps", "3", "--samples", "0",
              "--checkpoint", str(tmp_path / "gpt.safetensors"), env=env)
    assert "built-in corpus" in out and "from template" in out
    assert len(val_losses(out)) == 2


def test_a_few_steps_on_webgpu_match_numpy(webgpu, tmp_path):
    data = tiny_stories_file()
    if data is None:
        pytest.skip("tiny_4_stories.txt is not here")
    args = ["--data", str(data), "--config", "tiny", "--steps", "2", "--batch-size", "2", "--eval-batches", "1",
            "--samples", "0"]
    on_gpu = val_losses(run("train_gpt.py", "--device", webgpu, *args, "--checkpoint", str(tmp_path / "g.safetensors")))
    on_numpy = val_losses(run("train_gpt.py", "--device", "numpy", *args, "--checkpoint", str(tmp_path / "n.safetensors")))
    assert on_gpu == pytest.approx(on_numpy, abs=2e-3)
