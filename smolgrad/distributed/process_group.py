"""The default process group and its collectives (torch.distributed's functions).

Tensors pass through host memory: a collective downloads the tensor (`numpy()`), hands
the NumPy buffer to the backend, and writes the result back into the tensor in place
(`copy_` under no_grad, so views, `.grad` and optimizer references see it).
"""

from __future__ import annotations

import enum
import os
from datetime import timedelta
from typing import Callable

import numpy as np

from ..autograd import no_grad
from ..tensor import Tensor

DEFAULT_TIMEOUT = timedelta(minutes=30)  # torch's default for its CPU backend
LAUNCHER_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS")


class ReduceOp(enum.Enum):
    """How all_reduce combines the ranks' values (torch.distributed.ReduceOp)."""

    SUM = "sum"
    AVG = "avg"
    PRODUCT = "product"
    MIN = "min"
    MAX = "max"


class DistributedError(RuntimeError):
    """A collective could not complete: a rank died or stopped answering."""


class Work:
    """The handle of a collective started with `async_op=True`: `wait()` blocks until it
    has finished and the result is in the tensor(s); `is_completed()` polls."""

    def __init__(self, group, request, what: str, finish: Callable[[], None] | None = None):
        self._group, self._request, self._what, self._finish = group, request, what, finish
        self._done = False

    def is_completed(self) -> bool:
        """Whether the communication has finished (the result is written by `wait()`)."""
        return self._done or self._group.test(self._request)

    def wait(self, timeout: timedelta | None = None) -> bool:
        """Block until the collective has finished and write its result; raises
        DistributedError when a rank died or the timeout passed."""
        if not self._done:
            self._group.wait(self._request, self._what, timeout)
            self._done = True
            if self._finish is not None:
                self._finish()
        return True


class _Done:
    """A request that has already completed (the single-process backend's)."""


class SingleGroup:
    """The "single" backend: one process, rank 0 of 1; every collective is the identity."""

    name = "single"
    rank, size = 0, 1

    def iallreduce(self, buf: np.ndarray, op: ReduceOp):
        return _Done()

    def ibcast(self, buf: np.ndarray, src: int):
        return _Done()

    def iallgather(self, buf: np.ndarray, out: np.ndarray):
        out[0] = buf
        return _Done()

    def ibarrier(self):
        return _Done()

    def test(self, request) -> bool:
        return True

    def wait(self, request, what: str, timeout: timedelta | None = None) -> None:
        pass

    def close(self) -> None:
        pass


_group = None  # the default process group, set by init_process_group


def is_available() -> bool:
    """True: smolgrad.distributed is always importable (the MPI backend needs mpi4py)."""
    return True


def is_initialized() -> bool:
    """Whether init_process_group has been called (and destroy_process_group not since)."""
    return _group is not None


def launched_by_mpi() -> bool:
    """Whether this process was started by an MPI launcher (mpiexec/mpirun)."""
    return any(v in os.environ for v in LAUNCHER_SIZE_VARIABLES)


def init_process_group(
    backend: str | None = None,
    init_method: str | None = None,
    timeout: timedelta | None = None,
    world_size: int = -1,
    rank: int = -1,
    **kwargs,
) -> None:
    """Join the default process group. backend "mpi": rank and world size come from the MPI
    launcher (`mpiexec -n 2 python train.py`); "single": one process, rank 0 of 1, so the
    same script runs without a launcher. None picks "mpi" under an MPI launcher, else "single".
    `timeout` bounds every wait on a collective (default 30 minutes, or $SMOLGRAD_DIST_TIMEOUT
    seconds); a rank that died on this machine is detected within about a second."""
    global _group
    if _group is not None:
        raise RuntimeError("trying to initialize the default process group twice! (call destroy_process_group() first)")
    unknown = sorted(k for k in kwargs if k not in ("store", "group_name", "pg_options", "device_id"))
    if unknown:
        raise TypeError(f"init_process_group() got unexpected keyword arguments {unknown}")
    unsupported = sorted(k for k, v in kwargs.items() if v not in (None, ""))
    if unsupported:
        raise ValueError(
            f"init_process_group: {', '.join(unsupported)} not supported (the MPI launcher connects the ranks, and "
            "each rank picks its device: SMOLGRAD_ADAPTER)"
        )
    if init_method not in (None, "env://"):
        raise ValueError(f"init_process_group: init_method {init_method!r} is not supported; the MPI launcher connects the ranks")
    if backend is None:
        backend = "mpi" if launched_by_mpi() else "single"
    backend = str(backend).lower()
    if timeout is None:
        env = os.environ.get("SMOLGRAD_DIST_TIMEOUT")
        timeout = timedelta(seconds=float(env)) if env else DEFAULT_TIMEOUT
    if backend == "single":
        group = SingleGroup()
    elif backend == "mpi":
        from .mpi import MPIGroup

        group = MPIGroup(timeout)
    else:
        raise ValueError(f"init_process_group: unknown backend {backend!r}; expected 'mpi' or 'single'")
    for name, given, actual in (("world_size", world_size, group.size), ("rank", rank, group.rank)):
        if given not in (-1, None) and given != actual:
            group.close()
            raise ValueError(
                f"init_process_group: {name}={given} was given but the {backend} backend has {name} {actual} "
                f"(the launcher decides it: mpiexec -n N); leave {name} out"
            )
    _group = group


def destroy_process_group(group=None) -> None:
    """Leave the default process group (init_process_group may be called again)."""
    global _group
    if _group is not None:
        _group.close()
    _group = None


def _default_group():
    if _group is None:
        raise RuntimeError(
            "Default process group has not been initialized, please make sure to call init_process_group."
        )
    return _group


def _check_group(group, op: str):
    if group is not None and group is not _group:
        raise ValueError(f"{op}: only the default process group (group=None) is supported")
    return _default_group()


def get_rank(group=None) -> int:
    """This process's rank in the default group, 0 .. world_size - 1."""
    return _check_group(group, "get_rank").rank


def get_world_size(group=None) -> int:
    """The number of processes in the default group."""
    return _check_group(group, "get_world_size").size


def get_backend(group=None) -> str:
    """The default group's backend: "mpi" or "single"."""
    return _check_group(group, "get_backend").name


def _host_copy(tensor, op: str) -> np.ndarray:
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{op}: expected a smolgrad Tensor, got {type(tensor).__name__}")
    return np.ascontiguousarray(tensor.detach().numpy()).copy()


def _write_back(tensor: Tensor, value: np.ndarray) -> None:
    """Set `tensor`'s value to `value` in place (not recorded by autograd)."""
    with no_grad():
        tensor.copy_(Tensor(value.reshape(tensor.shape), dtype=tensor.dtype, device=tensor.device))


def _run(work: Work, async_op: bool) -> Work | None:
    if async_op:
        return work
    work.wait()
    return None


def all_reduce(tensor: Tensor, op: ReduceOp = ReduceOp.SUM, group=None, async_op: bool = False) -> Work | None:
    """Combine `tensor` across all ranks with `op` and leave the result in `tensor` on every
    rank, in place. With async_op, returns a Work; the tensor holds the result after wait()."""
    g = _check_group(group, "all_reduce")
    if not isinstance(op, ReduceOp):
        raise ValueError(f"all_reduce: op must be a smolgrad.distributed.ReduceOp (SUM, AVG, PRODUCT, MIN, MAX), got {op!r}")
    buf = _host_copy(tensor, "all_reduce")
    if op is ReduceOp.AVG and not tensor.dtype.is_floating_point:
        raise ValueError(f"all_reduce: ReduceOp.AVG needs a floating-point tensor, got {tensor.dtype.name}; use SUM")

    def finish():
        _write_back(tensor, buf / g.size if op is ReduceOp.AVG else buf)

    return _run(Work(g, g.iallreduce(buf, op), f"all_reduce({op.name}) of a {list(tensor.shape)} tensor", finish), async_op)


def broadcast(tensor: Tensor, src: int, group=None, async_op: bool = False) -> Work | None:
    """Copy rank `src`'s `tensor` into `tensor` on every other rank, in place."""
    g = _check_group(group, "broadcast")
    if not 0 <= src < g.size:
        raise ValueError(f"broadcast: src={src} is not a rank of the group (0 .. {g.size - 1})")
    buf = _host_copy(tensor, "broadcast")

    def finish():
        if g.rank != src:
            _write_back(tensor, buf)

    return _run(Work(g, g.ibcast(buf, src), f"broadcast from rank {src} of a {list(tensor.shape)} tensor", finish), async_op)


def all_gather(tensor_list: list[Tensor], tensor: Tensor, group=None, async_op: bool = False) -> Work | None:
    """Fill `tensor_list[r]` with rank r's `tensor`, on every rank (the list holds
    world_size tensors of tensor's shape)."""
    g = _check_group(group, "all_gather")
    buf = _host_copy(tensor, "all_gather")
    if len(tensor_list) != g.size:
        raise ValueError(f"all_gather: tensor_list has {len(tensor_list)} tensors but the world size is {g.size}")
    for i, t in enumerate(tensor_list):
        if not isinstance(t, Tensor) or t.shape != tensor.shape:
            got = list(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(f"all_gather: tensor_list[{i}] is {got}; every entry must be a tensor of shape {list(tensor.shape)}")
    out = np.empty((g.size, *buf.shape), dtype=buf.dtype)

    def finish():
        for t, value in zip(tensor_list, out):
            _write_back(t, value)

    return _run(Work(g, g.iallgather(buf, out), f"all_gather of a {list(tensor.shape)} tensor", finish), async_op)


def barrier(group=None, async_op: bool = False, device_ids=None) -> Work | None:
    """Wait until every rank has reached this barrier."""
    g = _check_group(group, "barrier")
    return _run(Work(g, g.ibarrier(), "barrier"), async_op)


def all_reduce_buffer(buf: np.ndarray, what: str):
    """Start an in-place SUM all-reduce of a NumPy buffer; returns its Work (for DDP's buckets)."""
    g = _default_group()
    return Work(g, g.iallreduce(buf, ReduceOp.SUM), what)
