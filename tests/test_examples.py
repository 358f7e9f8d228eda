"""The examples run end to end and reach their stated result.

The MNIST examples run in a short mode (--train-size: a few hundred steps) on the real
MNIST files: from $SMOLGRAD_DATA, else ../shared/data next to the checkout; the tests
skip when neither has them. On webgpu (lavapipe is slow) only a handful of steps run,
and must agree with the same steps on numpy."""

from __future__ import annotations

import importlib.util
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import smolgrad as sg

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


def real_data_dir() -> Path | None:
    """$SMOLGRAD_DATA, else ../shared/data next to the checkout, if it has MNIST."""
    for folder in (os.environ.get("SMOLGRAD_DATA"), REPO.parent / "shared" / "data"):
        if folder and all((Path(folder) / "mnist" / f"{name}.gz").is_file() for name in (
                "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")):
            return Path(folder)
    return None


@pytest.fixture(scope="module")
def mnist_dir() -> Path:
    folder = real_data_dir()
    if folder is None:
        pytest.skip("the real MNIST files are not here: set SMOLGRAD_DATA to a folder with mnist/*.gz")
    return folder


# One BLAS thread: these matmuls are small, and on a busy 2-core machine OpenBLAS's
# threads wait on each other (measured: the MLP step 7 ms with one thread, 22 with two).
ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run(script: str, *args: str, expect: int = 0) -> str:
    """Run examples/<script> with `args`; returns its output, after checking the exit status."""
    result = subprocess.run([sys.executable, str(EXAMPLES / script), "--no-progress", *args],
                            capture_output=True, text=True, timeout=600, env=ENV)
    assert result.returncode == expect, f"exit status {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def metric(output: str, pattern: str) -> float:
    found = re.findall(pattern, output)
    assert found, f"no match for {pattern!r} in:\n{output}"
    return float(found[-1])


def accuracy_in(output: str) -> float:
    """The final test accuracy an MNIST example printed, as a fraction."""
    return metric(output, r"test accuracy ([\d.]+)%") / 100


def loss_in(output: str) -> float:
    """The last test loss an MNIST example printed."""
    return metric(output, r"test loss ([\d.]+)")


# ----- every example -----

@pytest.mark.parametrize("script", ["xor.py", "moons.py", "mnist_mlp.py", "mnist_cnn.py"])
def test_example_help_lists_device_and_seed(script):
    out = run(script, "--help")
    assert "--device" in out and "--seed" in out


def load_common():
    """examples/common.py as a module."""
    spec = importlib.util.spec_from_file_location("examples_common", EXAMPLES / "common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_draws_count_total_and_metrics_on_a_terminal():
    stream = Terminal()
    bar = load_common().Progress(range(3), desc="epoch 1", interval=0.0, stream=stream, tqdm=False)
    for _ in bar:
        bar.set_postfix(loss=0.5)
    last = stream.getvalue().split("\r")[-1]
    assert last.startswith("epoch 1 [########################] 3/3") and "loss 0.5" in last and last.endswith("\n")


def test_progress_bar_through_tqdm_keeps_count_eta_rate_and_metrics():
    pytest.importorskip("tqdm", reason="tqdm is not installed")
    stream = Terminal()
    bar = load_common().Progress(range(3), desc="train", interval=0.0, stream=stream)
    assert bar._tqdm is not None
    seen = []
    for i in bar:
        seen.append(i)
        bar.set_postfix(loss=0.123456, tok_s="1234")
    last = stream.getvalue().rstrip("\n").split("\r")[-1]
    assert seen == [0, 1, 2]
    assert last.startswith("train: 100%") and "3/3" in last and "it/s" in last, last
    assert "loss=0.1235" in last and "tok_s=1234" in last, last
    # mid-run, the bar shows the time left
    stream = Terminal()
    bar = load_common().Progress(range(4), desc="train", interval=0.0, stream=stream)
    for i in bar:
        if i == 2:
            assert re.search(r"2/4 \[\d\d:\d\d<\d\d:\d\d", stream.getvalue()), stream.getvalue()


def test_progress_bar_writes_nothing_when_not_on_a_terminal():
    for tqdm in (None, False):
        stream = io.StringIO()
        assert list(load_common().Progress(range(3), interval=0.0, stream=stream, tqdm=tqdm)) == [0, 1, 2]
        assert stream.getvalue() == ""


# ----- XOR and moons -----

def test_xor_example_learns_all_four_cases_on_numpy():
    out = run("xor.py", "--device", "numpy")
    assert "all four XOR cases are right" in out


def test_xor_example_learns_all_four_cases_on_webgpu(webgpu):
    out = run("xor.py", "--device", webgpu, "--steps", "100")
    assert "all four XOR cases are right" in out


def test_moons_example_reaches_full_train_accuracy(tmp_path):
    picture = tmp_path / "moons.png"
    out = run("moons.py", "--device", "numpy", "--plot", str(picture))
    assert "100% train accuracy" in out
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "matplotlib is not installed" in out and not picture.exists()
    else:
        assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ----- MNIST, short runs on numpy -----

def test_mnist_mlp_beats_90_percent_after_300_steps(mnist_dir, tmp_path):
    # 38,400 images at batch 128: 300 steps. Measured: 93.1% test accuracy.
    out = run("mnist_mlp.py", "--device", "numpy", "--data", str(mnist_dir), "--train-size", "38400",
              "--epochs", "1", "--checkpoint", str(tmp_path / "mlp.safetensors"))
    assert accuracy_in(out) > 0.90


def test_mnist_cnn_beats_85_percent_after_100_steps(mnist_dir, tmp_path):
    # 6,400 images at batch 64: 100 steps, scored on 2,000 test images. Measured: 91.0%.
    out = run("mnist_cnn.py", "--device", "numpy", "--data", str(mnist_dir), "--train-size", "6400",
              "--batch-size", "64", "--test-size", "2000", "--epochs", "1", "--checkpoint", str(tmp_path / "cnn.safetensors"))
    assert accuracy_in(out) > 0.85


# ----- checkpoints -----

def test_mnist_checkpoint_holds_model_optimizer_and_epoch(mnist_dir, tmp_path):
    checkpoint = tmp_path / "mlp.safetensors"
    run("mnist_mlp.py", "--device", "numpy", "--data", str(mnist_dir), "--train-size", "640", "--test-size", "500",
        "--epochs", "2", "--checkpoint", str(checkpoint))
    state = sg.load(checkpoint, device="numpy")
    assert state["epoch"] == 2
    assert state["model"]["net.0.weight"].shape == (128, 784)
    assert state["optimizer"]["state"]


def test_mnist_resume_continues_exactly_where_the_run_stopped(mnist_dir, tmp_path):
    args = ["--device", "numpy", "--data", str(mnist_dir), "--train-size", "640", "--test-size", "500"]
    straight, resumed = tmp_path / "straight.safetensors", tmp_path / "resumed.safetensors"
    run("mnist_mlp.py", *args, "--epochs", "2", "--checkpoint", str(straight))
    run("mnist_mlp.py", *args, "--epochs", "1", "--checkpoint", str(resumed))
    out = run("mnist_mlp.py", *args, "--epochs", "2", "--resume", "--checkpoint", str(resumed))
    assert "resuming after epoch 1" in out and "epoch  1/2" not in out
    a, b = sg.load(straight, device="numpy"), sg.load(resumed, device="numpy")
    assert a["model"].keys() == b["model"].keys() and b["epoch"] == 2
    for name in a["model"]:
        np.testing.assert_array_equal(a["model"][name].numpy(), b["model"][name].numpy(), err_msg=name)


def test_mnist_resume_without_a_checkpoint_says_so(mnist_dir, tmp_path):
    out = run("mnist_mlp.py", "--device", "numpy", "--data", str(mnist_dir), "--train-size", "128", "--resume",
              "--checkpoint", str(tmp_path / "missing.safetensors"), expect=1)
    assert "no checkpoint at" in out


# ----- MNIST on webgpu: a few steps, the same as on numpy -----

@pytest.mark.parametrize("script, size, batch", [("mnist_mlp.py", "256", "64"), ("mnist_cnn.py", "64", "32")])
def test_mnist_example_on_webgpu_matches_numpy(webgpu, mnist_dir, tmp_path, script, size, batch):
    args = ["--data", str(mnist_dir), "--train-size", size, "--test-size", size, "--batch-size", batch, "--epochs", "1",
            "--checkpoint", str(tmp_path / "model.safetensors")]
    on_gpu = run(script, "--device", webgpu, *args)
    on_numpy = run(script, "--device", "numpy", *args)
    assert loss_in(on_gpu) == pytest.approx(loss_in(on_numpy), abs=2e-3)


def test_autodiff_example_forward_and_reverse_mode_agree_and_newton_converges():
    result = subprocess.run([sys.executable, str(EXAMPLES / "autodiff.py"), "--n", "8", "--device", "numpy"],
                            capture_output=True, text=True, timeout=600, env=ENV)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    differences = [float(d) for d in re.findall(r"max difference ([0-9.e+-]+)", out)]
    assert len(differences) == 2 and max(differences) < 1e-6
    assert metric(out, r"reverse over reverse agrees to ([0-9.e+-]+)") < 1e-5
    newton = [float(v) for v in re.findall(r"Newton step \d: loss ([0-9.]+)", out)]
    gradient_descent = metric(out, r"gradient descent step 200: loss ([0-9.]+)")
    assert newton[-1] == pytest.approx(gradient_descent, abs=1e-4)  # the same minimum
    assert metric(out, r"Newton step 6: loss [0-9.]+, \|grad\| ([0-9.e+-]+)") < 1e-4  # quadratic convergence
