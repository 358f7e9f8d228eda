"""The GPU report (`python -m benchmarks --gpu-report [--small]`, issue 14): one run, one page.

Prints the measured copy bandwidth and every memory-bound kernel's share of it; matmul
GFLOP/s and its share of the adapter's published float32 peak at 1024, 2048 and 4096 and
at the GPT's shapes; attention fused against unfused; and the default GPT's training
tokens/s against PyTorch CUDA eager in the same run (when torch with CUDA is installed).
Sized to finish in under 8 minutes on a GPU; `--small` shrinks every case (a minute or so
on lavapipe: the test suite runs it). Results go to a JSON file as well (`--out`)."""

from __future__ import annotations

import datetime
import json
import math
import time

from . import kernels, steps
from .case import Case
from .kernels import K, M
from .runner import DEFAULT_OUT, add_roofline_and_ratios, published_peak, run_case, versions
from .targets import SmolgradTarget, TorchTarget


def report_cases(small: bool) -> dict[str, list[Case]]:
    """The report's cases by section (`small`: sizes for a software adapter)."""
    n = 256 * K if small else 16 * M
    rows = (256, 256) if small else (8192, 1024)
    memory = [kernels.copy_case(n)]
    memory += [kernels.elementwise_case(n, length) for length in (1, 4, 16)]
    memory += [kernels.reduce_full_case(n), kernels.reduce_rows_case(n)]
    memory += [kernels.softmax_case(*rows), kernels.layernorm_case(rows[0], 768 if not small else 256)]
    memory += [kernels.adamw_case(n)]
    if small:
        matmul = [kernels.square_matmul_case(64)]
        matmul += [kernels.transformer_matmul_case(512, 128, "tiny GPT, B*T=512")]
        lengths, bh = (64,), (1, 2)
    else:
        matmul = [kernels.square_matmul_case(s) for s in (1024, 2048, 4096)]
        matmul += [kernels.transformer_matmul_case(2048, 128, "GPT default, B16 T128"),
                   kernels.transformer_matmul_case(1024, 768, "GPT-2 small, B1 T1024")]
        lengths, bh = (128, 512, 1024), (4, 8)
    attention = []
    for t_len in lengths:
        attention += [kernels.attention_case(bh[0], bh[1], t_len, 32, "unfused"),
                      kernels.fused_attention_case(bh[0], bh[1], t_len, 32, "")]
    step = steps.gpt_step_case("tiny" if small else "default", 4 if small else 16)
    return {"memory": memory, "matmul": matmul, "attention": attention,
            "gpt": [step] if isinstance(step, Case) else []}


def _pct(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{100 * x:5.1f}%"


def main(args, log=print) -> int:
    """Run the report with the runner's parsed `args` (repeat, warmup, budget, out, small, no_torch)."""
    started = time.perf_counter()
    targets = [SmolgradTarget("webgpu")]
    notes = []
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            notes.append("PyTorch is not installed: no PyTorch CUDA columns")
        else:
            if torch.cuda.is_available():
                targets.append(TorchTarget(torch, "cuda"))
            else:
                notes.append("PyTorch has no CUDA device here: no PyTorch CUDA columns")
    sections = report_cases(args.small)
    infos = {t.label: t.info() for t in targets}
    ours = targets[0].label
    adapter = infos[ours]["adapter"].get("name", "")
    log(f"smolgrad GPU report {datetime.datetime.now().isoformat(timespec='seconds')}: {adapter} "
        f"[{infos[ours]['timing']}]" + (" (small sizes)" if args.small else ""))
    for n in notes:
        log(f"  note: {n}")
    if targets[0].software() and not args.small:
        log("  note: this is a software adapter: the full report takes long here; --small shrinks it")

    results, failures = [], []
    for section, cases in sections.items():
        for case in cases:
            for t in targets:
                if t is not targets[0] and section == "memory":
                    continue  # the roofline is smolgrad's own
                try:
                    results.append(run_case(case, t, args))
                except Exception as e:  # report it and go on
                    failures.append({"id": case.id, "target": t.label, "error": f"{type(e).__name__}: {e}"})
                    log(f"  FAILED {case.id} on {t.label}: {type(e).__name__}: {e}")

    copies = {r["target"]: r["gbps"] for r in results if r["suite"] == "copy"}
    peaks = {label: published_peak(info["adapter"].get("name", "")) for label, info in infos.items()}
    add_roofline_and_ratios(results, copies, peaks)
    by = {(r["id"], r["target"]): r for r in results}

    copy = copies.get(ours)
    log("")
    log(f"copy bandwidth (measured): {copy:.2f} GB/s" if copy else "copy bandwidth: not measured")
    peak = peaks[ours]
    log(f"published peak: {peak['name']}: {peak['GBps']:.0f} GB/s, {peak['GFLOPs'] / 1e3:.1f} fp32 TFLOP/s"
        if peak else "published peak: unknown adapter (add it to benchmarks/runner.py PUBLISHED)")
    log("")
    log(f"{'memory-bound kernel':44s} {'ms':>9s} {'GB/s':>9s} {'of copy':>8s}")
    for case in sections["memory"]:
        r = by.get((case.id, ours))
        if r:
            log(f"{case.name:44s} {r['seconds'] * 1e3:9.3f} {r['gbps']:9.2f} {_pct(r['roofline']['fraction_of_measured_bw']):>8s}")
    log("")
    log(f"{'matmul':44s} {'ms':>9s} {'GFLOP/s':>9s} {'of peak':>8s}" + ("  torch-cuda GFLOP/s" if len(targets) > 1 else ""))
    for case in sections["matmul"]:
        r = by.get((case.id, ours))
        if r:
            line = f"{case.name:44s} {r['seconds'] * 1e3:9.3f} {r['gflops']:9.1f} {_pct(r['roofline']['fraction_of_published_flops']):>8s}"
            other = by.get((case.id, "torch-cuda"))
            log(line + (f"  {other['gflops']:9.1f}" if other else ""))
    log("")
    log(f"{'attention (causal, d32)':44s} {'unfused ms':>11s} {'fused ms':>9s} {'speedup':>8s}" + ("  torch-cuda sdpa ms" if len(targets) > 1 else ""))
    pairs = sections["attention"]
    for unfused, fused in zip(pairs[::2], pairs[1::2]):
        a, b = by.get((unfused.id, ours)), by.get((fused.id, ours))
        if a and b:
            other = by.get((fused.id, "torch-cuda"))
            shape = fused.name.split(" ", 1)[1].strip()
            log(f"{shape:44s} {a['seconds'] * 1e3:11.3f} {b['seconds'] * 1e3:9.3f} {a['seconds'] / b['seconds']:7.2f}x"
                + (f"  {other['seconds'] * 1e3:9.3f}" if other else ""))
    log("")
    for case in sections["gpt"]:
        r, other = by.get((case.id, ours)), by.get((case.id, "torch-cuda"))
        if r:
            line = f"{case.name}: smolgrad {r['items_per_second']:.0f} tokens/s ({r['seconds'] * 1e3:.1f} ms/step)"
            if other:
                line += f", PyTorch CUDA eager {other['items_per_second']:.0f} tokens/s: {other['seconds'] / r['seconds']:.2f}x"
            log(line)
    if not sections["gpt"]:
        log("GPT step: examples/gpt.py is not available here")

    report = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "small": args.small,
              "versions": versions(), "targets": infos, "notes": notes, "results": results, "failures": failures,
              "elapsed_seconds": time.perf_counter() - started}
    out = args.out if args.out != DEFAULT_OUT else DEFAULT_OUT.with_name("gpu_report.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    log(f"results: {out}")
    log(f"done in {report['elapsed_seconds']:.1f} s")
    return 1 if failures else 0
