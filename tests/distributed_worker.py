"""One rank of the multi-process tests in test_distributed.py, started there with
`mpiexec -n 2 python tests/distributed_worker.py CASE DEVICE OUTDIR`.

Cases:
- train: collectives checked here (an assertion failure aborts the job), then
  DistributedDataParallel training with each rank on its half of the batch, and a no_sync
  accumulation; each rank saves what it ended with to OUTDIR/rank{r}.npz for the test.
- die / raise / hang: rank 1 is SIGKILLed / raises / hangs during training; rank 0 waits
  for it in an all-reduce.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from datetime import timedelta

import numpy as np

import smolgrad as sg
import smolgrad.distributed as dist
from smolgrad import nn, optim

BATCH, STEPS = 8, 3


class Net(nn.Module):
    """A small MLP with a buffer (so the broadcast of buffers is checked too)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(5, 7)
        self.fc2 = nn.Linear(7, 3)
        self.register_buffer("scale", sg.rand(3))

    def forward(self, x):
        return self.fc2(self.fc1(x).tanh()) * self.scale


def data(device: str):
    """The global batch, the same in every process."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((BATCH, 5)).astype(np.float32)
    y = rng.standard_normal((BATCH, 3)).astype(np.float32)
    return x, y


def train(model, optimizer, x, y, device, steps: int = STEPS):
    for _ in range(steps):
        loss = nn.functional.mse_loss(model(sg.tensor(x, device=device)), sg.tensor(y, device=device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def check_collectives(device: str, rank: int, n: int) -> None:
    t = sg.tensor([1.0 + rank, -2.0 * rank, 3.0], device=device)
    dist.all_reduce(t)
    np.testing.assert_allclose(t.numpy(), [n * (n + 1) / 2, -n * (n - 1), 3.0 * n])
    for op, expected in ((dist.ReduceOp.AVG, [(n + 1) / 2, -(n - 1), 3.0]),
                         (dist.ReduceOp.MAX, [n, 0.0, 3.0]), (dist.ReduceOp.MIN, [1.0, -2.0 * (n - 1), 3.0])):
        t = sg.tensor([1.0 + rank, -2.0 * rank, 3.0], device=device)
        dist.all_reduce(t, op=op)
        np.testing.assert_allclose(t.numpy(), expected, err_msg=op.name)
    # in place through a non-contiguous view: only the viewed elements change
    base = sg.arange(12, device=device).float().reshape(3, 4) * (rank + 1)
    view = base.t()[1:3]  # 2x3, non-contiguous
    dist.all_reduce(view)
    expected = np.arange(12, dtype=np.float32).reshape(3, 4) * (rank + 1)
    expected.T[1:3] = np.arange(12, dtype=np.float32).reshape(3, 4).T[1:3] * n * (n + 1) / 2
    np.testing.assert_allclose(base.numpy(), expected)
    # async
    t = sg.full((2, 3), float(rank), device=device)
    work = dist.all_reduce(t, async_op=True)
    assert work.wait() and work.is_completed()
    np.testing.assert_allclose(t.numpy(), np.full((2, 3), n * (n - 1) / 2))
    # broadcast from the last rank; all_gather, also of int tensors
    t = sg.tensor([[rank, 2 * rank + 1]], device=device).float()
    dist.broadcast(t, src=n - 1)
    np.testing.assert_allclose(t.numpy(), [[n - 1, 2 * n - 1]])
    out = [sg.zeros(2, 2, device=device) for _ in range(n)]
    dist.all_gather(out, sg.full((2, 2), 10.0 * rank + 1, device=device))
    for r, o in enumerate(out):
        np.testing.assert_allclose(o.numpy(), np.full((2, 2), 10.0 * r + 1))
    out = [sg.zeros(3, dtype=sg.int32, device=device) for _ in range(n)]
    dist.all_gather(out, sg.tensor([rank, rank, -rank], dtype=sg.int32, device=device))
    assert [o.tolist() for o in out] == [[r, r, -r] for r in range(n)]
    dist.barrier()


def case_train(device: str, outdir: str) -> None:
    dist.init_process_group("mpi")
    rank, n = dist.get_rank(), dist.get_world_size()
    assert (rank, n) == (int(os.environ["PMI_RANK"]), 2) and dist.is_initialized() and dist.get_backend() == "mpi"
    check_collectives(device, rank, n)

    x, y = data(device)
    half = slice(rank * BATCH // n, (rank + 1) * BATCH // n)
    sg.manual_seed(100 + rank)  # different initial weights: DDP must broadcast rank 0's
    net = Net().to(device)
    ddp = nn.parallel.DistributedDataParallel(net, bucket_cap_mb=64 / 2**20)  # 64-byte buckets: several of them
    assert list(ddp.state_dict()) == ["module." + k for k in net.state_dict()]
    optimizer = optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
    train(ddp, optimizer, x[half], y[half], device)
    buckets = ddp._comm_stats["buckets"]
    assert buckets >= 3 * STEPS, f"expected several buckets per step, got {buckets} in {STEPS} steps"
    final = {k: v.numpy() for k, v in net.state_dict().items()}

    # no_sync: two local backwards, then one synced: the average over ranks of the sums
    for p in net.parameters():
        p.grad = None
    micro = [(x[half][:2], y[half][:2]), (x[half][2:], y[half][2:]), (x[half], y[half])]
    local = []
    for i, (xb, yb) in enumerate(micro):
        context = ddp.no_sync() if i < 2 else contextlib.nullcontext()
        with context:
            loss = nn.functional.mse_loss(ddp(sg.tensor(xb, device=device)), sg.tensor(yb, device=device))
            loss.backward()
        if i == 1:
            local = [p.grad.numpy().copy() for p in net.parameters()]
    synced = [p.grad.numpy() for p in net.parameters()]

    # unused parameters: `extra` is used on rank 1 only, `idle` on no rank
    parts = nn.ModuleDict({"always": nn.Linear(3, 1), "extra": nn.Linear(3, 1), "idle": nn.Linear(3, 1)}).to(device)
    ddp_parts = nn.parallel.DistributedDataParallel(parts)
    ones = sg.ones(2, 3, device=device)
    loss = parts["always"](ones).sum() + (parts["extra"](ones).sum() if rank == 1 else 0.0)
    loss.backward()
    np.testing.assert_allclose(parts["extra"].weight.grad.numpy(), [[1.0, 1.0, 1.0]])  # (2 on rank 1 + 0) / 2
    np.testing.assert_allclose(parts["extra"].bias.grad.numpy(), [1.0])
    np.testing.assert_allclose(parts["always"].weight.grad.numpy(), [[2.0, 2.0, 2.0]])
    assert parts["idle"].weight.grad is None and parts["idle"].bias.grad is None
    del ddp_parts
    np.savez(os.path.join(outdir, f"rank{rank}.npz"),
             **{f"final.{k}": v for k, v in final.items()},
             **{f"local.{i}": g for i, g in enumerate(local)}, **{f"synced.{i}": g for i, g in enumerate(synced)})
    dist.destroy_process_group()


def case_fault(kind: str, device: str, outdir: str) -> None:
    dist.init_process_group("mpi", timeout=timedelta(seconds=3))
    rank = dist.get_rank()
    net = nn.parallel.DistributedDataParallel(Net().to(device))
    optimizer = optim.SGD(net.parameters(), lr=0.1)
    x, y = data(device)
    train(net, optimizer, x, y, device, steps=2)
    if rank == 1:
        if kind == "die":
            os.kill(os.getpid(), signal.SIGKILL)
        elif kind == "raise":
            raise ValueError("rank 1 fails on purpose")
        elif kind == "hang":
            time.sleep(60)
    train(net, optimizer, x, y, device, steps=2)
    print(f"rank {rank} finished, but it should have failed", flush=True)


if __name__ == "__main__":
    case, device, outdir = sys.argv[1:4]
    if case == "train":
        case_train(device, outdir)
    else:
        case_fault(case, device, outdir)
