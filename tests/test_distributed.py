"""smolgrad.distributed, DistributedDataParallel and DistributedSampler.

The multi-process tests start 2 ranks with the mpich wheel's mpiexec (the `dist` extra,
part of `dev`) running tests/distributed_worker.py; the sampler and the "single" backend
run in this process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import smolgrad as sg
import smolgrad.distributed as dist
from smolgrad import nn, optim
from smolgrad.data import DistributedSampler

HERE = Path(__file__).resolve().parent
WORKER = HERE / "distributed_worker.py"
sys.path.insert(0, str(HERE))
import distributed_worker as worker  # noqa: E402

FAULT_BOUND_S = 10.0  # a dead, failed or hung rank ends the job within this (timeout=3 s in the worker)


def mpiexec() -> str:
    """The mpiexec next to this Python (the mpich wheel installs it there), else on PATH."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        pytest.fail('mpi4py is missing: pip install "smolgrad[dist]" (or the dev extra, which includes it)')
    for candidate in (Path(sys.executable).parent / "mpiexec", shutil.which("mpiexec")):
        if candidate and os.access(candidate, os.X_OK):
            return str(candidate)
    pytest.fail('no mpiexec found: pip install "smolgrad[dist]" installs MPICH\'s')


def launch(case: str, device: str, outdir: Path, timeout: float = 60) -> tuple[subprocess.CompletedProcess, float]:
    """Run the worker on 2 ranks; (the finished process, seconds it took)."""
    root = str(Path(sg.__file__).resolve().parent.parent)  # the smolgrad under test
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    start = time.monotonic()
    proc = subprocess.run([mpiexec(), "-n", "2", sys.executable, str(WORKER), case, device, str(outdir)],
                          capture_output=True, text=True, timeout=timeout, env=env)
    return proc, time.monotonic() - start


def reference(device: str):
    """One process, the whole batch: final state, then the no_sync gradients (local
    accumulation on each half, and the synced average)."""
    x, y = worker.data(device)
    sg.manual_seed(100)  # rank 0's seed: its weights are the ones DDP broadcasts
    net = worker.Net().to(device)
    optimizer = optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    worker.train(net, optimizer, x, y, device)
    final = {k: v.numpy() for k, v in net.state_dict().items()}

    def grads(xb, yb) -> list[np.ndarray]:
        for p in net.parameters():
            p.grad = None
        nn.functional.mse_loss(net(sg.tensor(xb, device=device)), sg.tensor(yb, device=device)).backward()
        return [p.grad.numpy() for p in net.parameters()]

    halves = [slice(0, 4), slice(4, 8)]
    local = []  # per rank: the two micro-batches' gradients, summed
    for h in halves:
        a, b = grads(x[h][:2], y[h][:2]), grads(x[h][2:], y[h][2:])
        local.append([ga + gb for ga, gb in zip(a, b)])
    synced = []
    for i, g in enumerate(grads(x[halves[0]], y[halves[0]])):
        g1 = grads(x[halves[1]], y[halves[1]])[i]
        synced.append((local[0][i] + g + local[1][i] + g1) / 2)
    return final, local, synced


def test_collectives_and_ddp_match_one_process(device, tmp_path):
    proc, _ = launch("train", device, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    final, local, synced = reference(device)
    for rank in range(2):
        got = np.load(tmp_path / f"rank{rank}.npz")
        for k, v in final.items():  # 2 ranks on half batches == 1 process on the whole batch
            np.testing.assert_allclose(got[f"final.{k}"], v, rtol=1e-5, atol=1e-6, err_msg=f"rank {rank}: {k}")
        for i, g in enumerate(local[rank]):  # inside no_sync: this rank's own accumulated gradients
            np.testing.assert_allclose(got[f"local.{i}"], g, rtol=1e-5, atol=1e-6, err_msg=f"rank {rank}: local {i}")
        for i, g in enumerate(synced):  # after the synced backward: the average of all accumulated
            np.testing.assert_allclose(got[f"synced.{i}"], g, rtol=1e-5, atol=1e-6, err_msg=f"rank {rank}: synced {i}")


@pytest.mark.parametrize("kind", ["die", "raise", "hang"])
def test_a_failed_rank_ends_the_job(kind, tmp_path):
    proc, seconds = launch(kind, "numpy", tmp_path, timeout=60)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "should have failed" not in out
    assert seconds < FAULT_BOUND_S, f"the job took {seconds:.1f} s to end\n{out}"
    if kind == "die":  # mpiexec names the dead process; rank 0's first line maps pids to ranks
        assert "BAD TERMINATION" in out and "rank 1 = pid" in out, out
    elif kind == "raise":
        assert "rank 1 of 2 raised an uncaught exception" in out and "fails on purpose" in out, out
    else:
        assert "rank 0 timed out after 3 s waiting for DistributedDataParallel's all-reduce" in out, out


# ----- in one process -----


@pytest.fixture
def single():
    dist.init_process_group("single")
    yield
    dist.destroy_process_group()


def test_single_backend(device, single):
    assert dist.is_initialized() and (dist.get_rank(), dist.get_world_size(), dist.get_backend()) == (0, 1, "single")
    t = sg.tensor([1.0, -2.0], device=device)
    for op in dist.ReduceOp:
        assert dist.all_reduce(t, op=op) is None
    np.testing.assert_allclose(t.numpy(), [1.0, -2.0])
    out = [sg.zeros(2, device=device)]
    dist.all_gather(out, t)
    np.testing.assert_allclose(out[0].numpy(), [1.0, -2.0])
    dist.broadcast(t, 0)
    dist.barrier()
    with pytest.raises(RuntimeError, match="twice"):
        dist.init_process_group("single")

    # DDP in one process trains exactly like the bare model
    x, y = worker.data(device)
    sg.manual_seed(3)
    plain = worker.Net().to(device)
    sg.manual_seed(3)
    wrapped = nn.parallel.DistributedDataParallel(worker.Net().to(device))
    for model in (plain, wrapped):
        worker.train(model, optim.SGD(model.parameters(), lr=0.1, momentum=0.9), x, y, device)
    for (k, a), (k2, b) in zip(plain.state_dict().items(), wrapped.state_dict().items()):
        assert k2 == "module." + k
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-6, atol=1e-7)
    assert wrapped.module is wrapped._modules["module"]
    wrapped.load_state_dict(wrapped.state_dict())
    with pytest.raises(RuntimeError):  # the bare model's keys lack the prefix
        wrapped.load_state_dict(plain.state_dict())


def test_errors(single):
    t = sg.tensor([1, 2])
    with pytest.raises(ValueError, match="AVG needs a floating-point"):
        dist.all_reduce(t, op=dist.ReduceOp.AVG)
    with pytest.raises(ValueError, match="ReduceOp"):
        dist.all_reduce(t, op="sum")
    with pytest.raises(ValueError, match="src=3"):
        dist.broadcast(t, src=3)
    with pytest.raises(ValueError, match="tensor_list has 2 tensors but the world size is 1"):
        dist.all_gather([sg.zeros(2), sg.zeros(2)], t)
    with pytest.raises(ValueError, match=r"tensor_list\[0\] is \[3\]"):
        dist.all_gather([sg.zeros(3)], t)
    with pytest.raises(TypeError, match="expected a smolgrad Tensor"):
        dist.all_reduce(np.ones(2))
    with pytest.raises(ValueError, match="device_ids"):
        nn.parallel.DistributedDataParallel(nn.Linear(2, 2), device_ids=[0, 1])
    with pytest.raises(ValueError, match="bucket_cap_mb"):
        nn.parallel.DistributedDataParallel(nn.Linear(2, 2), bucket_cap_mb=0)


def test_errors_without_a_group():
    assert not dist.is_initialized()
    for call in (dist.get_rank, dist.get_world_size, lambda: dist.all_reduce(sg.ones(2)),
                 lambda: nn.parallel.DistributedDataParallel(nn.Linear(2, 2))):
        with pytest.raises(RuntimeError, match="Default process group has not been initialized"):
            call()
    with pytest.raises(ValueError, match="unknown backend 'nccl'"):
        dist.init_process_group("nccl")
    with pytest.raises(ValueError, match="world_size=4 was given"):
        dist.init_process_group("single", world_size=4)
    with pytest.raises(ValueError, match="store not supported"):
        dist.init_process_group("single", store=object())
    with pytest.raises(TypeError, match="unexpected keyword arguments"):
        dist.init_process_group("single", ranks=2)
    assert not dist.is_initialized()


def test_missing_mpi4py_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py raises ImportError
    with pytest.raises(ImportError, match=r'pip install "smolgrad\[dist\]"'):
        dist.init_process_group("mpi")
    assert not dist.is_initialized()


# ----- DistributedSampler (no MPI needed: num_replicas and rank given) -----


def shards(n: int, replicas: int, epoch: int = 0, **kw) -> list[list[int]]:
    out = []
    for r in range(replicas):
        s = DistributedSampler(range(n), num_replicas=replicas, rank=r, **kw)
        s.set_epoch(epoch)
        out.append(list(s))
        assert len(s) == len(out[-1])
    return out


@pytest.mark.parametrize("n,replicas", [(10, 3), (12, 4), (5, 2), (2, 3)])
def test_sampler_shards_cover_and_pad(n, replicas):
    parts = shards(n, replicas)
    per = -(-n // replicas)  # ceil: the last indices repeat to even out the shards
    assert all(len(p) == per for p in parts)
    flat = [i for p in parts for i in p]
    assert set(flat) == set(range(n))
    assert len(flat) - len(set(flat)) == per * replicas - n  # only the padding repeats
    # without shuffle: rank r takes indices r, r + replicas, ... of range(n) padded from its start
    padded = (list(range(n)) * (per * replicas // n + 1))[: per * replicas]
    assert shards(n, replicas, shuffle=False) == [padded[r::replicas] for r in range(replicas)]


@pytest.mark.parametrize("n,replicas", [(10, 3), (12, 4), (5, 2)])
def test_sampler_drop_last_is_disjoint(n, replicas):
    parts = shards(n, replicas, drop_last=True)
    per = n // replicas
    assert all(len(p) == per for p in parts)
    flat = [i for p in parts for i in p]
    assert len(set(flat)) == len(flat) == per * replicas


def test_sampler_reshuffles_per_epoch_and_agrees_across_ranks():
    e0, e0_again, e1 = shards(100, 4, epoch=0), shards(100, 4, epoch=0), shards(100, 4, epoch=1)
    assert e0 == e0_again  # every rank derives the same permutation from (seed, epoch)
    assert e0 != e1
    assert sorted(i for p in e1 for i in p) == list(range(100))
    assert shards(100, 4, seed=5) != e0


def test_sampler_in_a_dataloader_and_errors(single):
    ds = sg.data.TensorDataset(np.arange(10, dtype=np.float32))
    s = DistributedSampler(ds)  # num_replicas and rank from the process group
    assert (s.num_replicas, s.rank) == (1, 0)
    loader = sg.data.DataLoader(ds, batch_size=4, sampler=s)
    assert sorted(int(v) for (b,) in loader for v in b.numpy()) == list(range(10))
    with pytest.raises(ValueError, match="Invalid rank 3"):
        DistributedSampler(ds, num_replicas=2, rank=3)


def test_mpi_waits_notice_a_dead_local_rank_and_time_out():
    """The MPI backend's waits, in this process (MPI's singleton: world size 1), with a
    request that never completes: a dead process posing as rank 1 on this machine is noticed
    within about a second, and the timeout ends the wait otherwise."""
    from datetime import timedelta

    from smolgrad.distributed.mpi import MPIGroup

    mpiexec()  # (fails with the install hint without mpi4py)
    group = MPIGroup(timeout=timedelta(seconds=0.5))
    try:
        never = group.comm.Irecv(np.empty(1), source=0, tag=77)  # nothing is ever sent
        start = time.monotonic()
        with pytest.raises(dist.DistributedError, match=r"timed out after 0.5 s waiting for a test receive"):
            group.wait(never, "a test receive")
        assert time.monotonic() - start < 2
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        group.local_peers = [(1, dead.pid)]
        group._next_check = 0.0
        with pytest.raises(dist.DistributedError, match=rf"rank 1 \(pid {dead.pid}\) died; rank 0 stops waiting"):
            group.wait(never, "a test receive", timeout=timedelta(seconds=30))
        never.Cancel()
        never.Wait()
    finally:
        group.close()


# ----- the adapter each rank uses -----


class FakeAdapter:
    def __init__(self, name: str, backend: str = "Vulkan", kind: str = "DiscreteGPU"):
        self.info = {"device": name, "backend_type": backend, "adapter_type": kind, "description": ""}


def test_rank_r_uses_adapter_r_mod_n_and_SMOLGRAD_ADAPTER_overrides(monkeypatch):
    pytest.importorskip("wgpu")
    from smolgrad.backend import webgpu_backend as wb

    gpus = [FakeAdapter("iGPU", kind="IntegratedGPU"), FakeAdapter("GPU A"), FakeAdapter("GPU B"),
            FakeAdapter("GPU A", backend="OpenGL")]
    monkeypatch.setattr(wb, "_all_adapters", lambda: gpus)
    for name in (*wb.LOCAL_RANK_VARIABLES, *wb.RANK_VARIABLES, "SMOLGRAD_ADAPTER"):
        monkeypatch.delenv(name, raising=False)
    assert wb._choose_adapter() is gpus[1]  # rank 0 (no launcher)
    for rank, expected in ((0, 1), (1, 2), (2, 1), (5, 2)):  # the two discrete Vulkan GPUs, alternately
        monkeypatch.setenv("MPI_LOCALRANKID", str(rank))
        assert wb._choose_adapter() is gpus[expected]
        assert [a["selected"] for a in wb.enumerate_adapters()] == [i == expected for i in range(4)]
    monkeypatch.setenv("SMOLGRAD_ADAPTER", "0")
    assert wb._choose_adapter() is gpus[0]
    monkeypatch.setenv("SMOLGRAD_ADAPTER", "opengl")
    assert wb._choose_adapter() is gpus[3]
    monkeypatch.setenv("SMOLGRAD_ADAPTER", "gpu b")
    assert wb._choose_adapter() is gpus[2]
    monkeypatch.setenv("SMOLGRAD_ADAPTER", "9")
    with pytest.raises(RuntimeError, match=r"SMOLGRAD_ADAPTER='9' matches no WebGPU adapter; the adapters are: 0: iGPU"):
        wb._choose_adapter()


# ----- the examples under mpiexec -----

EXAMPLES = HERE.parent / "examples"
SHARED_DATA = HERE.parent.parent / "shared" / "data"


def run_example(script: str, *args: str, ranks: int = 1) -> str:
    root = str(Path(sg.__file__).resolve().parent.parent)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, str(EXAMPLES / script), "--no-progress", *args]
    if ranks > 1:
        command = [mpiexec(), "-n", str(ranks), *command]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def data_file(path: str) -> Path:
    for folder in (os.environ.get("SMOLGRAD_DATA"), SHARED_DATA):
        if folder and (Path(folder) / path).is_file():
            return Path(folder) / path
    pytest.skip(f"{path} is not here: set SMOLGRAD_DATA to ../shared/data")


def test_train_gpt_on_2_ranks_resumes_on_1_exactly(tmp_path):
    """2 ranks for 2 steps, then 1 rank to step 4 == 1 rank for 4 steps (the global batches
    are the same for any number of ranks); only rank 0 prints."""
    data = data_file("tinystories/tiny_4_stories.txt")
    args = ["--device", "numpy", "--data", str(data), "--config", "tiny", "--batch-size", "4", "--samples", "0",
            "--eval-every", "2", "--steps", "4"]
    straight, split = tmp_path / "a" / "gpt.safetensors", tmp_path / "b" / "gpt.safetensors"
    run_example("train_gpt.py", *args, "--checkpoint", str(straight))
    out = run_example("train_gpt.py", *args, "--stop-at", "2", "--checkpoint", str(split), ranks=2)
    assert out.count("step     0/4  val loss") == 1 and "2 ranks with 2 sequences each per step" in out, out
    run_example("train_gpt.py", *args, "--resume", "--checkpoint", str(split))
    a, b = sg.load(straight, device="numpy"), sg.load(split, device="numpy")
    assert b["step"] == 4
    for name in a["model"]:
        # float32 sums in another order; Adam's normalised steps (2e-3) magnify those differences
        np.testing.assert_allclose(b["model"][name].numpy(), a["model"][name].numpy(), rtol=1e-4, atol=2e-5, err_msg=name)


def test_mnist_mlp_on_2_ranks_matches_1(tmp_path):
    data = data_file("mnist/t10k-images-idx3-ubyte.gz").parent.parent
    args = ["--device", "numpy", "--data", str(data), "--train-size", "512", "--test-size", "200", "--epochs", "1"]
    one = run_example("mnist_mlp.py", *args, "--checkpoint", str(tmp_path / "1.safetensors"))
    two = run_example("mnist_mlp.py", *args, "--checkpoint", str(tmp_path / "2.safetensors"), ranks=2)
    assert "2 ranks with 64 images each per batch" in two and two.count("epoch  1/1") == 1, two
    line = [l for l in one.splitlines() if l.startswith("epoch")][0]
    assert line.rsplit("|", 1)[0] == [l for l in two.splitlines() if l.startswith("epoch")][0].rsplit("|", 1)[0]
