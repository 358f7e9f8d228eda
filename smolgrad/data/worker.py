"""DataLoader worker processes: each loads and collates the batches it is sent into
NumPy arrays and sends them back; errors travel back with their traceback text."""

from __future__ import annotations

import pickle
import queue
import random
import traceback
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np


@dataclass(frozen=True)
class WorkerInfo:
    """What `get_worker_info()` tells code running in a DataLoader worker."""

    id: int
    num_workers: int
    seed: int
    dataset: Any


_info: WorkerInfo | None = None


def get_worker_info() -> WorkerInfo | None:
    """In a DataLoader worker process: its WorkerInfo (id, num_workers, seed, dataset,
    the worker's own copy); in the main process: None."""
    return _info


@dataclass
class WorkerError:
    """An exception raised in a worker, as it travels back to the main process."""

    worker_id: int
    exc_type: type | None  # None if the type could not be sent (not picklable)
    type_name: str
    text: str  # the formatted traceback

    @classmethod
    def current(cls, worker_id: int) -> "WorkerError":
        import sys

        exc_type = sys.exc_info()[0]
        try:
            pickle.dumps(exc_type)
        except Exception:  # a class defined in a function, say
            exc_type = None
        name = sys.exc_info()[0].__name__
        return cls(worker_id, exc_type, name, traceback.format_exc())

    def reraise(self):
        """Raise the worker's exception in this process, with its traceback text."""
        message = (
            f"Caught {self.type_name} in DataLoader worker process {self.worker_id}.\n"
            f"Original Traceback (most recent call last) in the worker:\n{self.text}"
        )
        try:
            error = self.exc_type(message) if self.exc_type is not None else None
        except Exception:  # an exception type whose constructor wants other arguments
            error = None
        raise error if isinstance(error, BaseException) else RuntimeError(message)


def worker_loop(
    dataset,
    index_queue,
    result_queue,
    collate: Callable,
    worker_id: int,
    num_workers: int,
    seed: int,
    worker_init_fn: Callable[[int], None] | None,
) -> None:
    """Run in a worker process: take (epoch, task, indices) from index_queue until None,
    put (epoch, task, pickled batch or WorkerError) on result_queue."""
    global _info
    import multiprocessing
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    parent = multiprocessing.parent_process()
    try:
        from ..creation import manual_seed

        random.seed(seed)
        np.random.seed(seed % 2**32)
        manual_seed(seed % 2**63)
        _info = WorkerInfo(worker_id, num_workers, seed, dataset)
        if worker_init_fn is not None:
            worker_init_fn(worker_id)
        init_error = None
    except Exception:
        init_error = WorkerError.current(worker_id)
    while True:
        try:
            job = index_queue.get(timeout=5.0)
        except queue.Empty:
            if parent is not None and not parent.is_alive():
                return
            continue
        except (EOFError, OSError, KeyboardInterrupt):  # the main process is gone
            return
        if job is None:
            break
        epoch, task, indices = job
        if init_error is not None:
            result_queue.put((epoch, task, init_error))
            continue
        try:
            # pickled here rather than in the queue's feeder thread, where a failure would
            # only be printed and the batch lost
            batch = pickle.dumps(collate([dataset[i] for i in indices]), pickle.HIGHEST_PROTOCOL)
        except Exception:
            batch = WorkerError.current(worker_id)
        result_queue.put((epoch, task, batch))
    result_queue.cancel_join_thread()
