"""Writing one row of a large tensor in place (`x[7] = row`, then realize) against a full
copy (`x * 1`, realized), on each device, side by side.

    python benchmarks/slice_write.py [--size 4096] [--repeat 5] [--device numpy webgpu]

When nothing else can still read x's old value (as here), the write updates x's buffer
in place: one kernel over the written row (Op.ASSIGN, see smolgrad/storage.py
`write_in_place`). Otherwise it rebinds x to where(mask, row placed, x), one kernel that
reads all of x and writes a whole new buffer: about the cost of a full copy (1.5x here,
measured before the in-place path existed).

Reports the median wall time per realize (after a warm-up) and, with smolgrad.profile(),
the kernels run and their summed time (GPU timestamps on webgpu where the adapter has
them)."""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

import smolgrad as sg


def measure(step, repeat: int) -> tuple[float, int, float]:
    """(median wall seconds, kernels, summed kernel seconds) of step() after a warm-up."""
    step()
    step()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    with sg.profile() as prof:
        step()
    return statistics.median(times), len(prof.events), sum(e.seconds for e in prof.events)


def run(device: str, n: int, repeat: int) -> dict[str, tuple[float, int, float]]:
    rng = np.random.default_rng(0)
    x = sg.tensor(rng.standard_normal((n, n), dtype=np.float32), device=device).realize()
    row = sg.tensor(rng.standard_normal(n, dtype=np.float32), device=device).realize()
    state = {"copy": x}

    def write_row():
        x[7] = row
        x.realize()

    def full_copy():
        state["copy"] = (x * 1).realize()

    return {"row write": measure(write_row, repeat), "full copy": measure(full_copy, repeat)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=4096, help="the tensor is size x size float32")
    p.add_argument("--repeat", type=int, default=5, help="timed runs per case (the median counts)")
    p.add_argument("--device", nargs="+", default=["numpy", "webgpu"])
    args = p.parse_args(argv)
    n = args.size
    print(f"one row of a {n}x{n} float32 tensor ({4 * n * n / 2**20:.0f} MiB) vs a full copy, median of {args.repeat}")
    print(f"{'device':8} {'case':10} {'wall ms':>9} {'kernels':>8} {'kernel ms':>10}  row write / copy")
    for device in args.device:
        try:
            results = run(device, n, args.repeat)
        except Exception as e:  # no adapter: say so and go on with the other devices
            print(f"{device:8} skipped: {type(e).__name__}: {e}")
            continue
        copy_wall = results["full copy"][0]
        for case, (wall, kernels, kernel_s) in results.items():
            ratio = f"{wall / copy_wall:6.2f}x" if case == "row write" else ""
            print(f"{device:8} {case:10} {1e3 * wall:9.2f} {kernels:8d} {1e3 * kernel_s:10.2f}  {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
