"""smolgrad's shader benchmark runner: `python -m benchmarks --help`.

Runs the kernel suites (benchmarks/kernels.py) and the end-to-end training steps
(benchmarks/steps.py) on smolgrad's devices and, when it is installed, in PyTorch, side
by side in one run; prints a table, writes every result to JSON and, with matplotlib,
plots throughput against size.

Roofline: the copy suite (`x * 1`) measures each target's bandwidth; every case with a
byte count reports the fraction of that bandwidth it reached, and, where the adapter is
in PUBLISHED, the fraction of its published bandwidth or FLOP/s.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np

import smolgrad as sg

from . import kernels, steps
from .case import SOFTWARE_MAX_ELEMENTS, Case
from .targets import Target, make_targets

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "latest.json"
SCHEMA_VERSION = 1

# Published peaks of a few GPUs: (substring of the adapter name, lower case, most specific
# first; the name; memory bandwidth in GB/s; float32 FLOP/s without tensor cores, in GFLOP/s).
PUBLISHED = [
    ("h200", "NVIDIA H200 SXM", 4800, 67_000),
    ("h100 pcie", "NVIDIA H100 PCIe", 2000, 51_000),
    ("h100", "NVIDIA H100 SXM", 3350, 67_000),
    ("a100-sxm4-80gb", "NVIDIA A100 SXM 80GB", 2039, 19_500),
    ("a100", "NVIDIA A100 40GB", 1555, 19_500),
    ("l4", "NVIDIA L4", 300, 30_300),
    ("tesla t4", "NVIDIA T4", 320, 8_100),
    ("rtx 4090", "NVIDIA GeForce RTX 4090", 1008, 82_600),
    ("rtx 3090", "NVIDIA GeForce RTX 3090", 936, 35_600),
    ("apple m1 max", "Apple M1 Max", 400, 10_400),
    ("apple m1 pro", "Apple M1 Pro", 200, 5_200),
    ("apple m1", "Apple M1", 68, 2_600),
    ("apple m2", "Apple M2", 100, 3_600),
]


def published_peak(adapter_name: str) -> dict | None:
    """The published peak of a known adapter (by name substring), or None."""
    name = adapter_name.lower()
    for key, label, gbps, gflops in PUBLISHED:
        if key in name:
            return {"name": label, "GBps": float(gbps), "GFLOPs": float(gflops)}
    return None


# ----- selection -----

def select(all_cases: list[Case], pattern: str | None) -> list[Case]:
    if not pattern:
        return all_cases
    p = pattern.lower()
    return [c for c in all_cases if p in c.id.lower()]


def skip_reason(case: Case, target: Target, quick: bool) -> str | None:
    if target.software() and not quick and case.elements > SOFTWARE_MAX_ELEMENTS:
        return f"capped: over {SOFTWARE_MAX_ELEMENTS // 2**20}M elements on a software adapter"
    return case.skip(target)


# ----- running -----

def run_case(case: Case, target: Target, args) -> dict:
    """Build and time one case on one target; a result dict (see `result_keys`)."""
    step = case.build(target)
    m = target.measure(step, args.repeat, args.warmup, args.budget, case.gpu_time)
    del step
    gc.collect()
    s = m.seconds
    result = {
        "suite": case.suite, "case": case.name, "id": case.id, "series": case.series, "target": target.label,
        "framework": target.framework, "device": target.device, "size": case.size, "shape": list(case.shape),
        "seconds": s, "min_seconds": min(m.gpu_times or m.wall_times), "wall_seconds": m.wall_seconds, "gpu_seconds": m.gpu_seconds,
        "times": m.gpu_times or m.wall_times, "repeats": m.repeats, "warmup": args.warmup, "timing": m.timing,
        "unit": case.unit, "model": case.model, "flops": case.flops, "bytes": case.bytes,
        "gflops": case.flops / s / 1e9 if case.flops else None,
        "gbps": case.bytes / s / 1e9 if case.bytes else None,
    }
    result["throughput"] = result["gflops"] if case.unit == "GFLOP/s" else result["gbps"]
    if case.items:
        result["items_per_second"] = case.items / s
        result["item_name"] = case.item_name
    return result


def calibrate_copy(target: Target, args) -> float:
    """Measured copy bandwidth (GB/s) when the copy suite was filtered out."""
    n = 4 * 2**20
    case = kernels.copy_case(n)
    return run_case(case, target, args)["gbps"]


def add_roofline_and_ratios(results: list[dict], bandwidth: dict[str, float], peaks: dict[str, dict | None]) -> None:
    """Fill each result's `roofline` and `ratios` (throughput ratio against every other
    target that ran the same case: other seconds / this seconds, > 1 means faster)."""
    by_case: dict[str, list[dict]] = {}
    for r in results:
        by_case.setdefault(r["id"], []).append(r)
    for r in results:
        bw = bandwidth.get(r["target"])
        peak = peaks.get(r["target"])
        roof = {"measured_copy_GBps": bw, "fraction_of_measured_bw": None, "published": peak,
                "fraction_of_published_bw": None, "fraction_of_published_flops": None}
        if r["gbps"] is not None and bw:
            roof["fraction_of_measured_bw"] = r["gbps"] / bw
        if peak and r["gbps"] is not None:
            roof["fraction_of_published_bw"] = r["gbps"] / peak["GBps"]
        if peak and r["gflops"] is not None:
            roof["fraction_of_published_flops"] = r["gflops"] / peak["GFLOPs"]
        r["roofline"] = roof
        r["ratios"] = {o["target"]: o["seconds"] / r["seconds"] for o in by_case[r["id"]] if o is not r}


# ----- output -----

def _fmt(v: float | None, width: int, digits: int = 2) -> str:
    if v is None or not math.isfinite(v):
        return f"{'-':>{width}}"
    if v != 0 and abs(v) < 10 ** -(digits):
        return f"{v:>{width}.1e}"
    return f"{v:>{width}.{digits}f}"


def format_table(results: list[dict], skipped: list[dict], labels: list[str], case_order: list[str] | None = None) -> str:
    """One row per case: per target ms and throughput; for the first target its
    roofline fractions and its throughput ratio against the others."""
    main = labels[0]
    others = labels[1:]
    head = f"{'case':<44}{'unit':>8}"
    for t in labels:
        head += f" | {t + ' ms':>14}{'thru':>9}"
    head += f" | {'%copy':>6}{'%peak':>6}"
    for o in others:
        head += f" | {main + '/' + o:>17}"
    lines = [head, "-" * len(head)]
    rows: dict[str, dict[str, dict]] = {}
    order: list[str] = []
    for r in results:
        if r["id"] not in rows:
            rows[r["id"]] = {}
            order.append(r["id"])
        rows[r["id"]][r["target"]] = r
    if case_order:  # the cases' own order (suite by suite), not the order targets ran them
        rank = {cid: i for i, cid in enumerate(case_order)}
        order.sort(key=lambda cid: rank.get(cid, len(rank)))
    skipped_by = {(s["id"], s["target"]): s for s in skipped}
    suite = None
    for cid in order:
        per = rows[cid]
        any_r = next(iter(per.values()))
        if any_r["suite"] != suite:
            suite = any_r["suite"]
            lines.append(f"[{suite}]")
        line = f"{any_r['case'][:44]:<44}{any_r['unit']:>8}"
        for t in labels:
            r = per.get(t)
            if r is None:
                why = "capped" if (cid, t) in skipped_by and "capped" in skipped_by[(cid, t)]["reason"] else "-"
                line += f" | {why:>14}{'':>9}"
            else:
                line += f" | {_fmt(r['seconds'] * 1e3, 14, 3)}{_fmt(r['throughput'], 9)}"
        r = per.get(main)
        if r is None:
            line += f" | {'-':>6}{'-':>6}"
        else:
            roof = r["roofline"]
            frac_peak = roof["fraction_of_published_flops"] if r["unit"] == "GFLOP/s" else roof["fraction_of_published_bw"]
            pct = [roof["fraction_of_measured_bw"], frac_peak]
            line += " | " + "".join(_fmt(None if p is None else 100 * p, 6, 1) for p in pct)
        for o in others:
            ratio = r["ratios"].get(o) if r is not None else None
            line += f" | {_fmt(ratio, 16, 3)}x" if ratio is not None else f" | {'-':>17}"
        lines.append(line)
    lines.append("")
    lines.append("ms: median time per step; thru: the unit's throughput (GFLOP/s or GB/s, models in the JSON);")
    lines.append(f"%copy: {main}'s GB/s as a share of its measured copy bandwidth; %peak: of the published peak "
                 "(FLOP/s for GFLOP/s cases, bandwidth for GB/s cases), '-' when the adapter is unknown;")
    lines.append(f"{main}/other: throughput ratio (other's time / {main}'s time; > 1 means {main} is faster).")
    return "\n".join(lines)


XLABELS = {"matmul": "m * k * n", "attention": "B * H * T^2 (score elements)", "adamw": "parameters"}


def write_plot(results: list[dict], path: Path) -> str:
    """Throughput against size, one panel per suite, one line per (target, series)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install matplotlib): no plot"
    suites = [s for s in dict.fromkeys(r["suite"] for r in results) if s != "steps"]
    if not suites:
        return "nothing to plot (only end-to-end steps ran)"
    cols = min(3, len(suites))
    rows = math.ceil(len(suites) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 4 * rows), squeeze=False)
    for ax, suite in zip(axes.flat, suites):
        lines: dict[tuple[str, str], list[tuple[int, float]]] = {}
        unit = ""
        for r in results:
            if r["suite"] == suite:
                lines.setdefault((r["target"], r["series"]), []).append((r["size"], r["throughput"]))
                unit = r["unit"]
        for (target, series), pts in lines.items():
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{target}: {series}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(suite)
        ax.set_xlabel(XLABELS.get(suite, "elements"))
        ax.set_ylabel(unit)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(suites):]:
        ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"plot: {path}"


def versions() -> dict:
    out = {"python": platform.python_version(), "smolgrad": sg.__version__, "numpy": np.__version__}
    try:
        import wgpu

        out["wgpu"] = wgpu.__version__
    except ImportError:
        out["wgpu"] = None
    torch = sys.modules.get("torch")
    out["torch"] = torch.__version__ if torch is not None else None
    return out


# ----- CLI -----

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a small subset (well under a minute on lavapipe; CI runs it)")
    p.add_argument("--filter", default=None, help="run only cases whose 'suite/name' contains this (case-insensitive)")
    p.add_argument("--device", default="all", choices=["webgpu", "numpy", "all"], help="smolgrad device(s)")
    p.add_argument("--repeat", type=int, default=None, help="timed repeats per case (default: 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs before the repeats")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds per case and target: fewer repeats (at least 1) for cases slower than this allows "
                        "(default: 20, --quick: 2)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file of all results (the PNG goes beside it)")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out even when it is installed")
    p.add_argument("--no-compile", action="store_true",
                   help="run smolgrad's training-step cases eagerly (default: captured with smolgrad.compile)")
    p.add_argument("--no-plot", action="store_true", help="write no PNG")
    p.add_argument("--torch-threads", type=int, default=None,
                   help="torch.set_num_threads for the PyTorch CPU columns (default: torch's own)")
    p.add_argument("--list", action="store_true", help="list the selected cases and exit")
    p.add_argument("--gpu-report", action="store_true",
                   help="the one-page GPU report instead (benchmarks/gpu_report.py): roofline shares, matmul against "
                        "the published peak, attention fused against unfused, GPT tokens/s against PyTorch CUDA")
    p.add_argument("--small", action="store_true", help="with --gpu-report: small sizes (for a software adapter)")
    args = p.parse_args(argv)
    if args.repeat is None:
        args.repeat = 5
    if args.budget is None:
        args.budget = 2.0 if args.quick else 20.0
    if args.repeat < 1 or args.warmup < 0:
        p.error("--repeat must be at least 1 and --warmup at least 0")
    return args


def main(argv: list[str] | None = None, log=print) -> int:
    """Run the benchmarks; returns the exit status (1 when a case failed)."""
    args = parse_args(argv)
    if args.gpu_report:
        from . import gpu_report

        return gpu_report.main(args, log)
    step_cases, notes = steps.cases(args.quick)
    selected = select(kernels.cases(args.quick) + step_cases, args.filter)
    if args.list:
        for c in selected:
            log(f"{c.id:60s} {c.model}")
        return 0
    if not selected:
        log(f"no case matches --filter {args.filter!r} (see --list)")
        return 1

    targets, target_notes = make_targets(args.device, not args.no_torch)
    for t in targets:
        t.compile = not args.no_compile  # (smolgrad's step cases; PyTorch's stay eager)
    if args.torch_threads and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(args.torch_threads)
    notes = target_notes + notes
    if any(t.software() for t in targets) and not args.quick:
        notes.append(f"sizes capped on the software adapter: cases over {SOFTWARE_MAX_ELEMENTS // 2**20}M elements "
                     "are not run on webgpu (lavapipe); run on a GPU for the full range (16M)")
    started = time.perf_counter()
    log(f"smolgrad benchmarks {datetime.datetime.now().isoformat(timespec='seconds')}: {len(selected)} cases, "
        f"{len(targets)} targets, median of {args.repeat} after {args.warmup} warm-up")
    infos = {}
    for t in targets:
        info = t.info()
        infos[t.label] = info
        log(f"  {t.label:10s} {info['adapter'].get('name', '')}  [timing: {info['timing']}]")
    for n in notes:
        log(f"  note: {n}")

    results: list[dict] = []
    skipped: list[dict] = []
    failures: list[dict] = []
    # Target by target, not case by case: switching between libraries' thread pools
    # (lavapipe's, BLAS's, torch's OpenMP) case by case adds their spin-down to the timings.
    for t in targets:
        for case in selected:
            reason = skip_reason(case, t, args.quick)
            if reason:
                skipped.append({"id": case.id, "target": t.label, "reason": reason})
                continue
            try:
                r = run_case(case, t, args)
            except Exception as e:  # report and go on with the other cases
                failures.append({"id": case.id, "target": t.label, "error": f"{type(e).__name__}: {e}"})
                log(f"  FAILED {case.id} on {t.label}: {type(e).__name__}: {e}")
                continue
            results.append(r)
            log(f"  {case.id:52s} {t.label:10s} {r['seconds'] * 1e3:10.3f} ms {r['throughput']:9.3f} {case.unit}")

    bandwidth: dict[str, float] = {}
    for t in targets:
        copies = [r["gbps"] for r in results if r["suite"] == "copy" and r["target"] == t.label]
        if not copies:
            try:
                copies = [calibrate_copy(t, args)]
            except Exception as e:
                log(f"  copy calibration failed on {t.label}: {type(e).__name__}: {e}")
                continue
        bandwidth[t.label] = max(copies)
        infos[t.label]["copy_bandwidth_GBps"] = bandwidth[t.label]
    peaks = {label: published_peak(info["adapter"].get("name", "")) for label, info in infos.items()}
    for label, peak in peaks.items():
        infos[label]["published_peak"] = peak
    add_roofline_and_ratios(results, bandwidth, peaks)

    labels = [t.label for t in targets if any(r["target"] == t.label for r in results)]
    if results:
        log("")
        log(format_table(results, skipped, labels, [c.id for c in selected]))
        log("")
        log("measured copy bandwidth: " + ", ".join(f"{k} {v:.2f} GB/s" for k, v in bandwidth.items()))
        for r in results:
            if r.get("items_per_second"):
                log(f"{r['case']} on {r['target']}: {r['seconds'] * 1e3:.2f} ms/step, "
                    f"{r['items_per_second']:.0f} {r['item_name']}/s")

    report = {
        "schema": SCHEMA_VERSION,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "argv": sys.argv[1:] if argv is None else list(argv),
        "quick": args.quick, "filter": args.filter, "repeat": args.repeat, "warmup": args.warmup,
        "platform": platform.platform(), "versions": versions(),
        "targets": infos,
        "timing": {label: info["timing"] for label, info in infos.items()},
        "notes": notes, "results": results, "skipped": skipped, "failures": failures,
        "elapsed_seconds": time.perf_counter() - started,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    log(f"results: {args.out}")
    if not args.no_plot and results:
        log(write_plot(results, args.out.with_suffix(".png")))
    log(f"done in {report['elapsed_seconds']:.1f} s")
    return 1 if failures else 0
