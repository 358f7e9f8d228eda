"""Several processes training one model (torch.distributed), over MPI.

    import smolgrad.distributed as dist
    dist.init_process_group("mpi")          # under: mpiexec -n 2 python train.py
    dist.all_reduce(t, op=dist.ReduceOp.AVG)

The "mpi" backend needs `pip install "smolgrad[dist]"` (mpi4py and the mpich wheel);
the "single" backend runs the same code in one process without it."""

from .process_group import (
    DistributedError,
    ReduceOp,
    Work,
    all_gather,
    all_reduce,
    barrier,
    broadcast,
    destroy_process_group,
    get_backend,
    get_rank,
    get_world_size,
    init_process_group,
    is_available,
    is_initialized,
)

__all__ = [
    "DistributedError",
    "ReduceOp",
    "Work",
    "all_gather",
    "all_reduce",
    "barrier",
    "broadcast",
    "destroy_process_group",
    "get_backend",
    "get_rank",
    "get_world_size",
    "init_process_group",
    "is_available",
    "is_initialized",
]
