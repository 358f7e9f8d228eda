"""One epoch of the MNIST MLP (784-128-64-32-10, ReLU, Adam, batch 128) in smolgrad and
in PyTorch on the CPU, side by side in one run, and where a smolgrad step's time goes.

    python benchmarks/mnist_mlp_torch.py [--data DIR] [--device numpy] [--threads N] [--batches N]

Both frameworks see the same shuffled batches, as NumPy arrays converted to each one's
tensors every step, and read the loss every step. Without torch only smolgrad runs.

smolgrad's step is captured with smolgrad.compile, as the examples run it (--no-compile:
eager). The step breakdown wraps smolgrad's scheduler (`smolgrad.engine.realize.schedule`) and the
backend's `run` with timers: Python work = graph building and the rest of the step's
Python (forward, backward, the optimizer's bookkeeping and replay, tensor creation,
reading the loss: everything outside those two) + scheduling; backend = running the
kernels. (The optimizer update reruns recorded kernels, so it builds no graph.)"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict


def _threads_from_argv() -> str | None:
    for i, arg in enumerate(sys.argv):
        if arg == "--threads" and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if arg.startswith("--threads="):
            return arg.split("=", 1)[1]
    return None


# BLAS reads its thread count when NumPy is imported, so --threads is applied before that.
if _threads_from_argv():
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "SMOLGRAD_NUMPY_THREADS"):
        os.environ[_var] = _threads_from_argv()

import numpy as np  # noqa: E402

import smolgrad as sg  # noqa: E402
from smolgrad import nn as snn
from smolgrad import optim as soptim  # noqa: E402
from smolgrad.data import MNIST  # noqa: E402
from smolgrad.backend import numpy_threads  # noqa: E402

MEAN, STD = 0.1307, 0.3081


def mnist(root) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    out = []
    for train in (True, False):
        ds = MNIST(root, train=train)
        out += [((ds.data.reshape(len(ds), -1).astype(np.float32) / 255 - MEAN) / STD), ds.targets]
    return tuple(out)


def batches(n: int, batch_size: int, seed: int, limit: int | None) -> list[np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    out = [order[i:i + batch_size] for i in range(0, n, batch_size)]
    return out[:limit] if limit else out


# ----- smolgrad -----

def smolgrad_model(device: str):
    model = snn.Sequential(snn.Linear(784, 128), snn.ReLU(), snn.Linear(128, 64), snn.ReLU(),
                           snn.Linear(64, 32), snn.ReLU(), snn.Linear(32, 10)).to(device)
    return model, soptim.Adam(model.parameters(), lr=1e-3)


def smolgrad_step(model, opt, compiled: bool):
    """The training step, step(x, y) -> loss for NumPy batches; captured with smolgrad.compile
    (as the examples run it) unless `compiled` is False."""

    def train(x, y):
        loss = snn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    train = sg.compile(train) if compiled else train
    device = next(iter(model.parameters())).device
    return lambda x, y: train(sg.tensor(x, device=device), sg.tensor(y, device=device)).item()


def smolgrad_epoch(data, order, device: str, compiled: bool = True) -> tuple[float, float]:
    xtr, ytr, xte, yte = data
    sg.manual_seed(0)
    model, opt = smolgrad_model(device)
    step = smolgrad_step(model, opt, compiled)
    start = time.perf_counter()
    for idx in order:
        step(xtr[idx], ytr[idx])
    sg.synchronize(device)
    seconds = time.perf_counter() - start
    with sg.no_grad():
        pred = model(sg.tensor(xte, device=device)).argmax(dim=1).numpy()
    return seconds, float((pred == yte).mean())


class Timers:
    """Wrap the scheduler and the backend's runs (`run`, and `run_program`: a captured
    step's) with perf_counter timers; a run inside another (a captured step's first run
    goes through `run`) is counted once."""

    def __init__(self, device: str):
        import smolgrad.engine.realize as scheduler  # (the realize loop calls schedule through this module)
        from smolgrad.device import get_backend

        self.scheduler, self.backend = scheduler, get_backend(device)
        self.totals: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)
        self._kernels = 0
        self._depth = 0

    def _wrap(self, owner, name: str, label: str, kernels: bool = False):
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            if self._depth:
                return original(*args, **kwargs)
            self._depth += 1
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.totals[label] += time.perf_counter() - t0
                self.counts[label] += 1
                if kernels:
                    self._kernels += len(args[0])
                self._depth -= 1

        setattr(owner, name, timed)

    def __enter__(self):
        self._schedule = self.scheduler.schedule
        self._wrap(self.scheduler, "schedule", "scheduling")
        for name in ("run", "run_program"):
            self._wrap(self.backend, name, "backend", kernels=True)
        return self

    def __exit__(self, *exc):
        self.scheduler.schedule = self._schedule
        del self.backend.run, self.backend.run_program  # back to the class's methods
        return False


def smolgrad_breakdown(data, order, device: str, steps: int, compiled: bool) -> dict:
    """Per-step milliseconds: total, scheduling, backend, and the rest (graph building)."""
    xtr, ytr, _, _ = data
    sg.manual_seed(0)
    model, opt = smolgrad_model(device)
    step = smolgrad_step(model, opt, compiled)
    for idx in order[:5]:  # warm-up (pipeline caches on webgpu; a captured step's recordings)
        step(xtr[idx], ytr[idx])
    with Timers(device) as timers:
        start = time.perf_counter()
        for idx in order[5:5 + steps]:
            step(xtr[idx], ytr[idx])
        sg.synchronize(device)
        total = time.perf_counter() - start
    n = len(order[5:5 + steps])
    sched, backend = timers.totals["scheduling"], timers.totals["backend"]
    return {
        "steps": n, "step_ms": 1e3 * total / n, "graph_ms": 1e3 * (total - sched - backend) / n,
        "schedule_ms": 1e3 * sched / n, "backend_ms": 1e3 * backend / n,
        "runs_per_step": timers.counts["backend"] / n, "kernels_per_step": timers._kernels / n,
    }


# ----- PyTorch -----

def torch_epoch(torch, data, order) -> tuple[float, float]:
    xtr, ytr, xte, yte = data
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64), torch.nn.ReLU(),
                                torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    start = time.perf_counter()
    for idx in order:
        logits = model(torch.from_numpy(xtr[idx]))
        loss = loss_fn(logits, torch.from_numpy(ytr[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()
    seconds = time.perf_counter() - start
    with torch.no_grad():
        pred = model(torch.from_numpy(xte)).argmax(dim=1).numpy()
    return seconds, float((pred == yte).mean())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default=None, help="folder with mnist/*.gz (default: $SMOLGRAD_DATA or ~/.cache/smolgrad)")
    p.add_argument("--device", default="numpy", help="smolgrad device")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--batches", type=int, default=None, help="time only the first N batches (default: a whole epoch)")
    p.add_argument("--profile-steps", type=int, default=100, help="steps timed for the smolgrad breakdown")
    p.add_argument("--threads", type=int, default=None,
                   help="BLAS and smolgrad's numpy-device threads, and intra-op threads for torch (default: each library's own)")
    p.add_argument("--repeat", type=int, default=1, help="epochs timed per framework (alternating); the best counts")
    p.add_argument("--no-compile", action="store_true", help="smolgrad's steps eagerly (default: captured with smolgrad.compile)")
    args = p.parse_args(argv)

    data = mnist(args.data)
    order = batches(len(data[0]), args.batch_size, 0, args.batches)
    try:
        import torch
    except ImportError:
        torch = None
        print("PyTorch is not installed (pip install torch): timing smolgrad only", file=sys.stderr)

    if torch and args.threads:
        torch.set_num_threads(args.threads)
    print(f"MNIST MLP 784-128-64-32-10, Adam, batch {args.batch_size}, {len(order)} steps per epoch; "
          f"{os.cpu_count()} CPUs, NumPy {np.__version__} (BLAS threads: {os.environ.get('OPENBLAS_NUM_THREADS', 'default')}, "
          f"smolgrad numpy threads: {numpy_threads.THREADS})" + (f", torch {torch.__version__} "
          f"({torch.get_num_threads()} threads)" if torch else ""))
    compiled = not args.no_compile
    smolgrad_epoch(data, order[:5], args.device, compiled)  # warm-up
    if torch:
        torch_epoch(torch, data, order[:5])
    best_sg = best_torch = None
    for _ in range(args.repeat):
        sg_time, sg_acc = smolgrad_epoch(data, order, args.device, compiled)
        best_sg = min(best_sg or sg_time, sg_time)
        print(f"smolgrad ({args.device}{', captured' if compiled else ', eager'}): {sg_time:7.2f} s per epoch, {1e3 * sg_time / len(order):6.2f} ms per step, "
              f"test accuracy {100 * sg_acc:.2f}%")
        if torch:
            t_time, t_acc = torch_epoch(torch, data, order)
            best_torch = min(best_torch or t_time, t_time)
            print(f"PyTorch (CPU):     {t_time:7.2f} s per epoch, {1e3 * t_time / len(order):6.2f} ms per step, "
                  f"test accuracy {100 * t_acc:.2f}%")
    if torch:
        print(f"ratio smolgrad / PyTorch: {best_sg / best_torch:.2f}x")

    b = smolgrad_breakdown(data, order, args.device, args.profile_steps, compiled)
    python = b["graph_ms"] + b["schedule_ms"]
    print(f"\nwhere a smolgrad step goes ({b['steps']} steps, {b['kernels_per_step']:.0f} kernels in "
          f"{b['runs_per_step']:.1f} backend runs per step):")
    print(f"  step                         {b['step_ms']:7.2f} ms")
    print(f"  graph building, other Python {b['graph_ms']:7.2f} ms  {100 * b['graph_ms'] / b['step_ms']:5.1f}%")
    print(f"  scheduling (Python)          {b['schedule_ms']:7.2f} ms  {100 * b['schedule_ms'] / b['step_ms']:5.1f}%")
    print(f"  backend run (kernels)        {b['backend_ms']:7.2f} ms  {100 * b['backend_ms'] / b['step_ms']:5.1f}%")
    print(f"  Python work: {100 * python / b['step_ms']:.1f}% of a step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
