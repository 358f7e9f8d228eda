"""The benchmark runner (python -m benchmarks): its quick mode writes a JSON file of the
documented schema, and --filter selects cases. PyTorch is left out (--no-torch)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # appended: the installed smolgrad must still win (CI checks that)
    sys.path.append(str(ROOT))

from benchmarks import kernels, runner  # noqa: E402
from benchmarks.targets import GPU_TIMESTAMPS, WALL, WALL_CPU  # noqa: E402

TIMINGS = {GPU_TIMESTAMPS, WALL, WALL_CPU}

RESULT_TYPES = {
    "suite": str, "case": str, "id": str, "series": str, "target": str, "framework": str, "device": str,
    "size": int, "shape": list, "seconds": float, "min_seconds": float, "wall_seconds": float, "times": list,
    "repeats": int, "warmup": int, "timing": str, "unit": str, "model": str, "throughput": float,
    "roofline": dict, "ratios": dict,
}


def positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "results.json"
    lines: list[str] = []
    status = runner.main(["--quick", "--filter", "elementwise", "--no-torch", "--repeat", "2",
                          "--out", str(out)], log=lines.append)
    assert status == 0, "\n".join(lines)
    return json.loads(out.read_text()), "\n".join(lines), out


def test_quick_json_schema(quick_report):
    report, _, _ = quick_report
    for key, typ in {"schema": int, "date": str, "versions": dict, "targets": dict, "timing": dict,
                     "results": list, "skipped": list, "failures": list, "notes": list}.items():
        assert isinstance(report[key], typ), key
    assert report["quick"] is True and report["failures"] == []
    assert report["versions"]["smolgrad"] and report["versions"]["numpy"]
    assert "numpy" in report["targets"]
    for label, info in report["targets"].items():
        assert report["timing"][label] in TIMINGS
        assert positive(info["copy_bandwidth_GBps"])
        assert "name" in info["adapter"]
    assert report["results"]
    for r in report["results"]:
        for key, typ in RESULT_TYPES.items():
            assert isinstance(r[key], typ), (key, r[key])
        assert r["timing"] in TIMINGS and r["target"] in report["targets"]
        assert 1 <= r["repeats"] <= 2 and len(r["times"]) == r["repeats"]
        for key in ("seconds", "min_seconds", "wall_seconds", "throughput", "gbps", "bytes", "size"):
            assert positive(r[key]), (key, r[key])
        assert all(positive(t) for t in r["times"])
        assert r["unit"] == "GB/s" and r["throughput"] == r["gbps"]
        assert positive(r["roofline"]["measured_copy_GBps"])
        assert positive(r["roofline"]["fraction_of_measured_bw"])
        for other, ratio in r["ratios"].items():
            assert other in report["targets"] and positive(ratio)
        if r["gpu_seconds"] is not None:  # GPU timestamps: the figure is the GPU time
            assert r["timing"] == GPU_TIMESTAMPS and r["seconds"] == r["gpu_seconds"]


def test_quick_filter_selects(quick_report):
    report, log, out = quick_report
    assert {r["suite"] for r in report["results"]} == {"elementwise"}
    lengths = sorted({r["series"] for r in report["results"]})
    assert lengths == ["chain of 1 ops", "chain of 16 ops", "chain of 4 ops"]
    assert "timing:" in log and "webgpu/numpy" in log or report["targets"].keys() == {"numpy"}
    # every target ran every selected case
    assert len(report["results"]) == 3 * len(report["targets"])


def test_filter_and_quick_subset():
    everything = kernels.cases(quick=False)
    quick = kernels.cases(quick=True)
    assert set(c.id for c in quick) < set(c.id for c in everything)
    picked = runner.select(everything, "MATMUL/square")
    assert picked and all(c.id.startswith("matmul/square") for c in picked)
    assert runner.select(everything, "no such case") == []
    lines: list[str] = []
    assert runner.main(["--filter", "no such case", "--no-torch"], log=lines.append) == 1
    assert "no case matches" in lines[-1]


def test_published_peaks():
    assert runner.published_peak("NVIDIA H100 80GB HBM3")["name"] == "NVIDIA H100 SXM"
    assert runner.published_peak("NVIDIA H100 PCIe")["GBps"] == 2000
    assert runner.published_peak("llvmpipe (LLVM 15.0.6, 256 bits)") is None


def test_mnist_mlp_against_torch_script_runs_and_breaks_a_step_down(capsys):
    import os

    data = Path(os.environ.get("SMOLGRAD_DATA") or ROOT.parent / "shared" / "data")
    if not (data / "mnist" / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("the real MNIST files are not here: set SMOLGRAD_DATA to a folder with mnist/*.gz")
    from benchmarks import mnist_mlp_torch

    assert mnist_mlp_torch.main(["--data", str(data), "--batches", "8", "--profile-steps", "3"]) == 0
    out = capsys.readouterr().out
    assert "smolgrad (numpy, captured):" in out and "per step" in out
    for part in ("graph building, other Python", "scheduling (Python)", "backend run (kernels)", "Python work:"):
        assert part in out


def test_gpu_report_small(tmp_path, monkeypatch):
    """`--gpu-report --small` on whatever adapter is here: every section printed, JSON written."""
    pytest.importorskip("wgpu")
    from conftest import require_webgpu

    require_webgpu()
    monkeypatch.setenv("SMOLGRAD_AUTOTUNE_CACHE", str(tmp_path / "autotune"))
    out = tmp_path / "report.json"
    lines: list[str] = []
    status = runner.main(["--gpu-report", "--small", "--no-torch", "--repeat", "1", "--out", str(out)], log=lines.append)
    text = "\n".join(lines)
    assert status == 0, text
    for heading in ("copy bandwidth (measured)", "memory-bound kernel", "of copy", "matmul", "of peak",
                    "unfused ms", "fused ms", "speedup", "tokens/s"):
        assert heading in text, heading
    report = json.loads(out.read_text())
    assert report["small"] is True and report["failures"] == []
    ids = {r["id"] for r in report["results"]}
    assert any(i.startswith("attention/fused") for i in ids) and any(i.startswith("matmul/") for i in ids)
    assert all(positive(r["seconds"]) for r in report["results"])
