"""The threads the NumPy device shares a large kernel's work out to (`each`).

NumPy lets go of the GIL inside each ufunc and matmul call, so the pieces of one kernel
run on several cores. `SMOLGRAD_NUMPY_THREADS` sets how many threads ("auto": the CPUs
this process may run on, at most 8; the default)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np


def default_threads() -> int:
    """SMOLGRAD_NUMPY_THREADS: a count, or "auto" (the default): the CPUs this process may
    run on, at most 8.

    On a 2-core machine with nothing else running, two threads ran the default GPT's
    captured training step in 207 ms against 251 ms on one (the large matrix products
    and attention's chunks in parallel), and the MNIST MLP's step (whose products are
    too small to split) in the same time. On a machine busy with other work they cost
    little: `each` never waits for a piece no thread has started."""
    value = os.environ.get("SMOLGRAD_NUMPY_THREADS", "auto")
    if value == "auto":
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return min(8, cpus)
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"SMOLGRAD_NUMPY_THREADS must be a positive integer or 'auto', got {value!r}")
    return int(value)


THREADS = default_threads()  # threads that evaluate a large kernel's pieces (see each)
_workers: ThreadPoolExecutor | None = None


def each(fn, items: list) -> None:
    """fn(item) for every item, shared out between this thread and up to THREADS - 1 pool
    threads (NumPy lets go of the GIL inside each ufunc call, so the pieces of one kernel
    use the machine's cores). Each takes the next item until none is left, so a pool
    thread that the OS does not run soon (a busy machine) holds nothing up: this thread
    then does its share, and waits only for items already under way. Each fn writes its
    own part of the outputs; the first exception raised is raised here."""
    global _workers
    n = min(THREADS, len(items))
    if n <= 1:
        for item in items:
            fn(item)
        return
    if _workers is None:
        _workers = ThreadPoolExecutor(THREADS - 1, thread_name_prefix="smolgrad-numpy")
    # next() on a list iterator is atomic under the GIL, and an exhausted one lets go of
    # its list: a cancelled task left in the pool's queue keeps no kernel's arrays alive
    queue = iter([(fn, item) for item in items])
    futures = [_workers.submit(_work, queue) for _ in range(n - 1)]
    try:
        _work(queue)
    finally:
        for f in futures:
            if not f.cancel():  # not started yet: nothing left for it
                f.result()


def _work(queue) -> None:
    with np.errstate(all="ignore"):  # (errstate is per thread)
        for fn, item in queue:
            fn(item)
