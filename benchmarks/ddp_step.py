"""Data-parallel step time and where it goes: run once plainly and once under mpiexec.

    python benchmarks/ddp_step.py --model gpt                   # 1 process, the whole batch
    mpiexec -n 2 python benchmarks/ddp_step.py --model gpt      # 2 ranks, half the batch each

Prints the median training step (forward, backward, AdamW step, realized) and, with
several ranks, DistributedDataParallel's time per step: computing each gradient bucket
(`realize`, backward work that the bucket forces), copying it to host memory and starting
its all-reduce (`copy`), waiting at the end of backward for the all-reduces (`wait`: the
communication backward did not hide) and writing the averaged gradients back (`write`);
and, for comparison, one blocking all-reduce of all the gradients at once (`alone`),
measured outside the training step; and the share of the gradient bytes whose all-reduce had
finished when backward ended (the overlapped part). `wait` includes the time this rank
waits for a slower one (skew), so it can exceed `alone`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
import smolgrad as sg  # noqa: E402
import smolgrad.distributed as dist  # noqa: E402
from smolgrad import nn, optim  # noqa: E402
from smolgrad.distributed.process_group import all_reduce_buffer  # noqa: E402
from smolgrad.nn import functional as F  # noqa: E402


def build(name: str, device: str):
    """(model, loss(net, rank, world, step): this rank's loss on its part of the step's batch)."""
    if name == "mlp":
        from common import MLP

        model, batch = MLP(784, [128, 64, 32, 10]).to(device), 128

        def loss(net, rank, world, step):
            rng = np.random.default_rng(step)
            x = rng.standard_normal((batch, 784)).astype(np.float32)[rank::world]
            y = rng.integers(0, 10, batch)[rank::world]
            return F.cross_entropy(net(sg.tensor(x, device=device)), sg.tensor(y, device=device))

        return model, loss
    from gpt import CONFIGS, GPT

    config = CONFIGS["default"]
    model, batch = GPT(config).to(device), 16

    def loss(net, rank, world, step):
        ids = np.random.default_rng(step).integers(0, config.vocab_size, (batch, config.context + 1))[rank::world]
        logits = net(sg.tensor(ids[:, :-1], device=device))
        return F.cross_entropy(logits.reshape(-1, config.vocab_size), sg.tensor(ids[:, 1:], device=device).reshape(-1))

    return model, loss


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["mlp", "gpt"], default="gpt")
    p.add_argument("--device", default="numpy")
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--bucket-cap-mb", type=float, default=None)
    args = p.parse_args()
    dist.init_process_group()
    rank, world = dist.get_rank(), dist.get_world_size()
    sg.manual_seed(0)
    model, loss = build(args.model, args.device)
    net = nn.parallel.DistributedDataParallel(model, bucket_cap_mb=args.bucket_cap_mb) if world > 1 else model
    optimizer = optim.AdamW(model.parameters(), lr=1e-3)
    times = []
    for step in range(args.warmup + args.steps):
        if step == args.warmup and world > 1:
            net._comm_stats = {k: 0 * v for k, v in net._comm_stats.items()}
        start = time.perf_counter()
        value = loss(net, rank, world, step)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        sg.realize(*model.parameters())
        times.append(time.perf_counter() - start)
    median = statistics.median(times[args.warmup:]) * 1e3
    params = sum(p.numel() for p in model.parameters())
    line = f"{args.model} ({params:,} parameters) on {args.device}, {world} rank(s): step {median:.1f} ms (median of {args.steps})"
    if world > 1:
        s = net._comm_stats
        per = {k: 1e3 * s[k] / s["steps"] for k in ("realize_s", "copy_s", "wait_s", "write_s")}
        flat = np.zeros(params, dtype=np.float32)
        alone = []
        for _ in range(10):
            dist.barrier()
            t0 = time.perf_counter()
            all_reduce_buffer(flat, "benchmark").wait()
            alone.append(time.perf_counter() - t0)
        alone_ms = statistics.median(alone) * 1e3
        line += (f"; per step: {s['buckets'] // s['steps']} buckets, realize {per['realize_s']:.1f} ms, "
                 f"copy+start {per['copy_s']:.1f} ms, wait {per['wait_s']:.1f} ms, write {per['write_s']:.1f} ms; "
                 f"one blocking all-reduce of all {4 * params / 1e6:.1f} MB: {alone_ms:.1f} ms; "
                 f"all-reduced before backward ended: {100 * s['overlapped_bytes'] / s['bytes']:.0f}% of the bytes")
    if rank == 0:
        print(line, flush=True)


if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    main()
