"""--live and --snapshot in the examples: without a display --live says why and training goes
on; --snapshot leaves a PNG of the live view; the GPT's attention map is the one its forward
computes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import require_webgpu
from test_viz_live import read_png

import smolgrad as sg

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
sys.path.insert(0, str(EXAMPLES))


def headless_env(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "SMOLGRAD_DATA")}
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", XDG_CACHE_HOME=str(tmp_path / "cache"))
    return env


def run(script: str, *args: str, env: dict) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, str(EXAMPLES / script), "--no-progress", *args],
                            capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, f"exit status {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def test_train_gpt_live_without_a_display_says_why_and_the_snapshot_is_written(tmp_path):
    pytest.importorskip("tokenizers", reason="the GPT example needs `tokenizers`")
    require_webgpu()  # the view draws with WebGPU
    png = tmp_path / "view.png"
    result = run("train_gpt.py", "--device", "numpy", "--offline", "--config", "tiny", "--steps", "3", "--samples", "1",
                 "--max-new-tokens", "5", "--eval-every", "2", "--checkpoint", str(tmp_path / "gpt.safetensors"),
                 "--live", "--snapshot", str(png), env=headless_env(tmp_path))
    assert "no live window" in result.stderr and "training goes on" in result.stderr
    assert "final validation loss" in result.stdout and f"live view snapshot: {png}" in result.stdout
    image = read_png(png.read_bytes())
    assert image.shape == (640, 960, 4)
    assert len(np.unique(image.reshape(-1, 4), axis=0)) > 20  # panels drawn, not a blank frame


def test_mnist_snapshot_shows_the_training_panels(tmp_path):
    require_webgpu()
    data = next((Path(f) for f in (os.environ.get("SMOLGRAD_DATA"), REPO.parent / "shared" / "data")
                 if f and (Path(f) / "mnist" / "train-images-idx3-ubyte.gz").is_file()), None)
    if data is None:
        pytest.skip("the real MNIST files are not here: set SMOLGRAD_DATA to a folder with mnist/*.gz")
    png = tmp_path / "mnist.png"
    result = run("mnist_mlp.py", "--device", "numpy", "--data", str(data), "--train-size", "512", "--test-size", "100",
                 "--epochs", "1", "--checkpoint", str(tmp_path / "m.safetensors"), "--snapshot", str(png),
                 env=headless_env(tmp_path))
    assert "no live window" not in result.stderr  # --snapshot alone opens no window
    image = read_png(png.read_bytes())
    assert image.shape == (640, 960, 4) and len(np.unique(image.reshape(-1, 4), axis=0)) > 20


def test_attention_map_is_the_one_the_forward_computes():
    from gpt import GPT, GPTConfig, attention_probs

    sg.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=64, context=16, dim=32, n_layers=2, n_heads=4))
    idx = sg.tensor(np.random.default_rng(0).integers(0, 64, (2, 7)))
    with sg.no_grad():
        probs = attention_probs(model, idx, 1)
        assert probs.shape == (2, 4, 7, 7)
        p = probs.numpy()
        np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-5)
        assert np.all(np.triu(p, k=1) == 0)  # causal: no weight on later positions
        # the block's attention output from these weights equals its own forward
        x = model.tok_emb(idx) + model.pos_emb(sg.arange(7))
        x = model.blocks[0](x)
        block = model.blocks[1]
        h = block.ln1(x)
        attn = block.attn
        v = attn.qkv(h).reshape(2, 7, 3, 4, 8).permute(2, 0, 3, 1, 4)[2]
        y = attn.proj((probs @ v).transpose(1, 2).reshape(2, 7, 32))
        np.testing.assert_allclose(y.numpy(), attn(h).numpy(), rtol=1e-5, atol=1e-6)
