"""What the fusion pass buys, measured side by side in one run.

1. The 6-op chain ((x*y + 1).relu()*0.5 - y).exp().clamp(max=10) on 4M float32
   elements, fused vs SMOLGRAD_FUSION=0, median wall time of a realise + synchronise.
2. Dispatches per training step of a 784-128-64-10 MLP (forward + backward, then the
   Adam update), fused vs unfused.
3. Kernels compiled in each of 20 identical training steps (goal: none after the first).

    python benchmarks/fusion.py [--device webgpu] [--size 4194304] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

import smolgrad as sg
from smolgrad import nn


def fusion(on: bool) -> None:
    os.environ["SMOLGRAD_FUSION"] = "1" if on else "0"


def chain(x, y):
    return ((x * y + 1).relu() * 0.5 - y).exp().clamp(max=10)


def time_chain(device: str, size: int, repeat: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    x = sg.tensor(rng.standard_normal(size, dtype=np.float32), device=device)
    y = sg.tensor(rng.standard_normal(size, dtype=np.float32), device=device)
    times: dict[str, list[float]] = {"fused": [], "unfused": []}
    for _ in range(repeat + 1):  # the first round warms up (compiles, fills the pool)
        for mode in ("fused", "unfused"):  # interleaved so machine noise hits both alike
            fusion(mode == "fused")
            sg.synchronize(device)
            start = time.perf_counter()
            chain(x, y).realize()
            sg.synchronize(device)
            times[mode].append(time.perf_counter() - start)
    return {mode: statistics.median(t[1:]) for mode, t in times.items()}


def mlp_step_counts(device: str) -> dict[str, dict[str, int]]:
    """Dispatches of forward+backward and of the optimizer step, fused and unfused."""
    rng = np.random.default_rng(0)
    x = sg.tensor(rng.standard_normal((128, 784), dtype=np.float32), device=device)
    target = sg.tensor(rng.integers(0, 10, 128), device=device)
    out = {}
    for mode in ("fused", "unfused"):
        fusion(mode == "fused")
        sg.manual_seed(0)
        model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10)).to(device)
        opt = sg.optim.Adam(model.parameters(), lr=1e-3)
        for _ in range(2):  # the second step is the steady state (the first also creates Adam's state)
            opt.zero_grad()
            sg.reset_stats(device)
            loss = nn.functional.cross_entropy(model(x), target)
            loss.backward()
            sg.realize(loss, *[p.grad for p in model.parameters()])
            backward = sg.stats(device)["dispatches"]
            sg.reset_stats(device)
            opt.step()
            update = sg.stats(device)["dispatches"]
        out[mode] = {"forward+backward": backward, "adam step": update, "total": backward + update}
    return out


def compiles_per_step(device: str, steps: int = 20) -> list[int]:
    fusion(True)
    rng = np.random.default_rng(1)
    sg.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10)).to(device)
    opt = sg.optim.Adam(model.parameters(), lr=1e-3)
    sched = sg.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    counts = []
    for _ in range(steps):
        x = sg.tensor(rng.standard_normal((128, 784), dtype=np.float32), device=device)
        target = sg.tensor(rng.integers(0, 10, 128), device=device)
        before = sg.stats(device)["kernels_compiled"]
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), target)
        loss.backward()
        opt.step()
        sched.step()
        loss.item()
        counts.append(sg.stats(device)["kernels_compiled"] - before)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="webgpu")
    parser.add_argument("--size", type=int, default=4 * 1024 * 1024)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    saved = os.environ.get("SMOLGRAD_FUSION")
    try:
        t = time_chain(args.device, args.size, args.repeat)
        gbytes = 3 * 4 * args.size / 1e9  # fused: read x and y, write the result
        print(f"6-op chain on {args.size} float32 elements, {args.device}, median of {args.repeat}:")
        print(f"  fused   {t['fused'] * 1e3:9.2f} ms  ({gbytes / t['fused']:.2f} GB/s effective)")
        print(f"  unfused {t['unfused'] * 1e3:9.2f} ms")
        print(f"  unfused / fused = {t['unfused'] / t['fused']:.2f}x")
        counts = compiles_per_step(args.device)
        print(f"\nkernels compiled in each of {len(counts)} identical Adam steps (fused): {counts}")
        print(f"\nMLP 784-128-64-10, batch 128, dispatches per training step on {args.device}:")
        for mode, counts in mlp_step_counts(args.device).items():
            print(f"  {mode:8s} " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    finally:
        if saved is None:
            os.environ.pop("SMOLGRAD_FUSION", None)
        else:
            os.environ["SMOLGRAD_FUSION"] = saved


if __name__ == "__main__":
    main()
