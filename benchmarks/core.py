"""Core engine benchmarks: matmul throughput, per-op overhead, backward scaling.

Run: python benchmarks/core.py [--devices numpy,webgpu] [--sizes 256,1024] [--repeat 5]
Every figure is measured in the same run on each device so the ratios are fair.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import smolgrad as sg


def timed(fn, repeat: int, warmup: int = 1) -> float:
    """Median seconds of fn() over `repeat` runs after `warmup` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_gflops(device: str, n: int, repeat: int) -> float:
    rng = np.random.default_rng(0)
    a = sg.tensor(rng.standard_normal((n, n), dtype=np.float32), device=device)
    b = sg.tensor(rng.standard_normal((n, n), dtype=np.float32), device=device)

    def step():
        (a @ b).realize()
        sg.synchronize(device)

    return 2 * n**3 / timed(step, repeat) / 1e9


def numpy_matmul_gflops(n: int, repeat: int) -> float:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    return 2 * n**3 / timed(lambda: a @ b, repeat) / 1e9


def op_overhead_us(device: str, repeat: int) -> dict[str, float]:
    """Microseconds per small elementwise op realised one at a time."""
    x = sg.tensor(np.ones(16, dtype=np.float32), device=device).realize()

    def realize_one():
        (x + 1.0).realize()
        sg.synchronize(device)

    def readback_one():
        (x + 1.0).numpy()

    def build_only():
        x + 1.0

    n = 200
    return {
        "build graph node": timed(lambda: [build_only() for _ in range(n)], repeat) / n * 1e6,
        "realize + sync": timed(lambda: [realize_one() for _ in range(n)], repeat) / n * 1e6,
        "realize + read back": timed(lambda: [readback_one() for _ in range(n)], repeat) / n * 1e6,
    }


def backward_chain_seconds(length: int) -> float:
    x = sg.tensor(1.0, device="numpy", requires_grad=True)
    y = x
    for _ in range(length):
        y = y + 1.0
    start = time.perf_counter()
    y.backward()
    x.grad.realize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", default="numpy,webgpu", help="comma-separated devices to measure")
    parser.add_argument("--sizes", default="256,1024", help="comma-separated square matmul sizes")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    devices = args.devices.split(",")
    sizes = [int(s) for s in args.sizes.split(",")]

    for d in sg.devices():
        print(f"adapter: {d['device']:7s} {d['name']} ({d['backend']}, {d['type']})")
    print("\nmatmul GFLOP/s (float32, n x n @ n x n)")
    print(f"{'n':>6} {'NumPy (raw)':>12} " + " ".join(f"{d:>12}" for d in devices))
    for n in sizes:
        row = [numpy_matmul_gflops(n, args.repeat)] + [matmul_gflops(d, n, args.repeat) for d in devices]
        print(f"{n:>6} " + " ".join(f"{v:12.2f}" for v in row))

    print("\nper-op overhead, microseconds (x + 1.0 on 16 elements, one op at a time)")
    for d in devices:
        for what, us in op_overhead_us(d, args.repeat).items():
            print(f"  {d:7s} {what:20s} {us:9.1f} us")

    print("\nbackward through a chain of N adds (numpy device): seconds, and per op")
    for length in (5_000, 20_000, 50_000):
        s = backward_chain_seconds(length)
        print(f"  N={length:6d}: {s:6.3f} s  ({s / length * 1e6:5.1f} us/op)")


if __name__ == "__main__":
    main()
