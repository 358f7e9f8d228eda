"""Step capture against eager, side by side in one run: host (main-thread CPU) time per
training step, wall time, submits and kernels per step, and peak memory.

    python -m benchmarks.capture                       # GPT tiny and default, MNIST MLP; both devices
    python -m benchmarks.capture --device webgpu --model "GPT tiny" --steps 20
    python -m benchmarks.capture --sampling             # tokens/s of GPT sampling (fixed KV cache)

Host time is `time.thread_time()` around the step (the Python thread's CPU time: graph
building, scheduling, encoding; on the numpy device it includes the kernels themselves,
which run on that thread). Each step ends with a synchronise, outside the timed host
span, so the next step starts on an idle device. The peak is smolgrad.stats()'s
peak_bytes over the timed steps, the allocators' caches emptied before them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import smolgrad as sg
from smolgrad import nn, optim
from smolgrad.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))


def gpt_step(config: str, batch: int, device: str):
    import gpt

    cfg = gpt.CONFIGS[config]
    sg.manual_seed(0)
    model = gpt.GPT(cfg).to(device)
    opt = optim.AdamW(gpt.param_groups(model, 0.1), lr=3e-4, betas=(0.9, 0.95))
    rng = np.random.default_rng(0)

    def batches():
        while True:
            idx = rng.integers(0, cfg.vocab_size, (batch, cfg.context + 1))
            yield sg.tensor(idx[:, :-1], device=device), sg.tensor(idx[:, 1:].reshape(-1), device=device)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x).reshape(-1, cfg.vocab_size), y)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss

    return step, batches()


def mlp_step(batch: int, device: str):
    sg.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 32),
                          nn.ReLU(), nn.Linear(32, 10)).to(device)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)

    def batches():
        while True:
            yield (sg.tensor(rng.standard_normal((batch, 784), dtype=np.float32), device=device),
                   sg.tensor(rng.integers(0, 10, batch), device=device))

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return step, batches()


MODELS = {
    "GPT tiny": lambda device: gpt_step("tiny", 4, device),
    "GPT default": lambda device: gpt_step("default", 16, device),
    "MNIST MLP": lambda device: mlp_step(128, device),
}


def measure(name: str, device: str, compiled: bool, steps: int, warmup: int) -> dict:
    step, batches = MODELS[name](device)
    if compiled:
        step = sg.compile(step)
    for _ in range(warmup):
        step(*next(batches)).item()
    sg.synchronize(device)
    sg.empty_cache(device)  # so that the peak is what the timed steps hold, not what earlier ones left pooled
    sg.reset_stats()
    host, wall = [], []
    for _ in range(steps):
        x, y = next(batches)
        t0, c0 = time.perf_counter(), time.thread_time()
        loss = step(x, y)
        host.append(time.thread_time() - c0)
        loss.item()
        wall.append(time.perf_counter() - t0)
    stats = sg.stats(device)
    out = {"host_ms": 1e3 * statistics.median(host), "wall_ms": 1e3 * statistics.median(wall),
           "submits": stats["submits"] / steps, "kernels": stats["kernels"] / steps, "peak_mb": stats["peak_bytes"] / 2**20}
    if compiled:
        out["replays"] = step.replays
        out["eager_reason"] = step.eager_reason
    return out


def sampling(config: str, device: str, compiled: bool, tokens: int) -> float:
    """Tokens per second of examples/gpt.py's generate (one position per token, a fixed
    KV cache), after the first 8 tokens (the prompt, and the captured step's recordings)."""
    import gpt

    sg.manual_seed(0)
    model = gpt.GPT(gpt.CONFIGS[config]).to(device)
    stream = gpt.generate(model, [1, 2, 3], tokens + 8, temperature=0.8, device=device, compiled=compiled)
    for _ in range(8):
        next(stream)
    t0 = time.perf_counter()
    n = sum(1 for _ in stream)
    return n / (time.perf_counter() - t0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="all", choices=["numpy", "webgpu", "all"])
    p.add_argument("--model", default=None, help=f"one of {sorted(MODELS)} (default: all)")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=10,
                   help="untimed steps first (compile records in the first 2-3; on webgpu the pool's recycled buffers "
                        "and their bind groups settle in the next few)")
    p.add_argument("--sampling", action="store_true", help="measure GPT sampling (tokens/s) instead of training steps")
    args = p.parse_args(argv)
    devices = ["numpy", "webgpu"] if args.device == "all" else [args.device]
    if args.sampling:
        print(f"{'config':<8} {'device':<7} {'eager tok/s':>12} {'captured tok/s':>15}")
        for config in ("tiny", "default"):
            for device in devices:
                eager, captured = (sampling(config, device, c, 60 if config == "default" else 120) for c in (False, True))
                print(f"{config:<8} {device:<7} {eager:12.1f} {captured:15.1f}")
        return 0
    models = [args.model] if args.model else list(MODELS)
    print(f"{'model':<12} {'device':<7} {'mode':<9} {'host ms':>8} {'wall ms':>8} {'submits':>8} {'kernels':>8} {'peak MB':>8}  host ratio")
    for name in models:
        for device in devices:
            rows = {mode: measure(name, device, mode == "compiled", args.steps, args.warmup) for mode in ("eager", "compiled")}
            for mode, r in rows.items():
                ratio = r["host_ms"] / rows["eager"]["host_ms"]
                note = f"  ({r['eager_reason']})" if r.get("eager_reason") else ""
                print(f"{name:<12} {device:<7} {mode:<9} {r['host_ms']:8.2f} {r['wall_ms']:8.2f} {r['submits']:8.1f} "
                      f"{r['kernels']:8.1f} {r['peak_mb']:8.2f}  {ratio:.2f}{note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
