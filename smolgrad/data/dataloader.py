"""DataLoader: batches of samples from a map-style data set, collated into tensors,
loaded in this process or in worker processes."""

from __future__ import annotations

import copy
import multiprocessing
import numbers
import pickle
import queue
import sys
import time
from typing import Callable

import numpy as np

from .collate import collate_numpy, default_collate, to_tensors
from .sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler, as_generator
from .worker import WorkerError, worker_loop

_rng = as_generator  # (the name random_split and older code import)

__all__ = ["DataLoader", "default_collate"]


class DataLoader:
    """Iterate over `dataset` in batches, like torch.utils.data.DataLoader.

    - batch_size: samples per batch; drop_last: drop the last batch when it is smaller;
    - shuffle: a new random order every epoch, drawn from `generator` (an int seed or a
      numpy.random.Generator; by default smolgrad's global generator, so
      smolgrad.manual_seed makes the order reproducible);
    - sampler: the indices to visit, in order (instead of shuffle); batch_sampler: lists
      of indices, one per batch (instead of batch_size, shuffle, sampler, drop_last);
    - collate_fn: turns a list of samples into a batch (default: default_collate);
    - num_workers: load and collate batches in that many worker processes (0: in this
      one). Batches come in the same order as with 0. With the default collate, workers
      make NumPy arrays and this process makes the tensors; a custom collate_fn runs in
      the worker, so it should return picklable values (NumPy arrays, numbers). An
      exception in a worker is raised here with the worker's traceback. Each worker
      seeds `random`, `numpy.random` and smolgrad's generator with its own seed (see
      get_worker_info()), then calls worker_init_fn(worker_id);
    - prefetch_factor: batches each worker loads ahead (default 2); timeout: seconds to
      wait for a worker's batch before raising (0: forever); persistent_workers: keep the
      workers between epochs; multiprocessing_context: "fork", "spawn", "forkserver" or a
      context (default "fork" where available: the data set needs no pickling);
    - pin_memory, pin_memory_device: accepted and ignored (there is no pinned memory);
    - device: where the default collate puts the batch tensors (default: smolgrad's
      default device), a smolgrad addition."""

    def __init__(
        self,
        dataset,
        batch_size: int | None = 1,
        shuffle: bool | None = None,
        sampler: Sampler | None = None,
        batch_sampler: Sampler | None = None,
        num_workers: int = 0,
        collate_fn: Callable | None = None,
        pin_memory: bool = False,
        drop_last: bool = False,
        timeout: float = 0,
        worker_init_fn: Callable[[int], None] | None = None,
        multiprocessing_context=None,
        generator=None,
        *,
        prefetch_factor: int | None = None,
        persistent_workers: bool = False,
        pin_memory_device: str = "",
        device=None,
    ):
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
            raise ValueError(f"batch_size should be a positive integer, got {batch_size!r}")
        if isinstance(num_workers, bool) or not isinstance(num_workers, numbers.Integral) or num_workers < 0:
            raise ValueError(
                f"num_workers option should be non-negative; use num_workers=0 to disable multiprocessing, "
                f"got {num_workers!r}"
            )
        if timeout < 0:
            raise ValueError(f"timeout option should be non-negative, got {timeout!r}")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError(
                "prefetch_factor option could only be specified in multiprocessing; let num_workers > 0 to "
                "enable multiprocessing, otherwise set prefetch_factor to None"
            )
        if prefetch_factor is not None and (isinstance(prefetch_factor, bool) or prefetch_factor < 1):
            raise ValueError(f"prefetch_factor option should be a positive integer, got {prefetch_factor!r}")
        if persistent_workers and num_workers == 0:
            raise ValueError("persistent_workers option needs num_workers > 0")
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None and (batch_size != 1 or shuffle or sampler is not None or drop_last):
            raise ValueError("batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, and drop_last")
        self.dataset = dataset
        self.num_workers = int(num_workers)
        self.prefetch_factor = prefetch_factor if prefetch_factor is not None or num_workers == 0 else 2
        self.pin_memory = pin_memory
        self.pin_memory_device = pin_memory_device
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.persistent_workers = persistent_workers
        self.collate_fn = collate_fn
        self.device = device
        # Made once, so that successive epochs draw successive (different) orders.
        self.generator = as_generator(generator) if generator is not None else None
        if batch_sampler is None:
            if sampler is None:
                sampler = RandomSampler(dataset, generator=self.generator) if shuffle else SequentialSampler(dataset)
            batch_sampler = BatchSampler(sampler, int(batch_size), bool(drop_last))
            self.batch_size, self.drop_last = int(batch_size), bool(drop_last)
        else:
            self.batch_size, self.drop_last = None, False
        self.shuffle = bool(shuffle)
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self._pool: _WorkerPool | None = None  # kept between epochs with persistent_workers
        self._epoch = 0

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __iter__(self):
        self._epoch += 1
        if self.num_workers == 0:
            return self._single_process()
        if self._pool is not None and self._pool.alive():
            pool = self._pool
        else:
            pool = _WorkerPool(self, self._worker_seed())
            if self.persistent_workers:
                self._pool = pool
        return pool.epoch(iter(self.batch_sampler), self._epoch, owns_pool=not self.persistent_workers)

    def _single_process(self):
        for indices in self.batch_sampler:
            samples = [self.dataset[i] for i in indices]
            yield self.collate_fn(samples) if self.collate_fn is not None else default_collate(samples, self.device)

    def _worker_seed(self) -> int:
        """A base seed for the workers of this epoch: reproducible from the generator's
        state (or manual_seed) without drawing from it, so the order of the batches stays
        that of num_workers=0; mixed with the epoch count, so each epoch differs."""
        peek = int(copy.deepcopy(as_generator(self.generator)).integers(2**63))
        return int(np.random.SeedSequence([peek, self._epoch]).generate_state(2, np.uint64)[0] >> np.uint64(1))

    def __del__(self):
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown()


def _context(spec):
    if spec is None:
        methods = multiprocessing.get_all_start_methods()
        return multiprocessing.get_context("fork" if "fork" in methods and sys.platform != "darwin" else None)
    if isinstance(spec, str):
        if spec not in multiprocessing.get_all_start_methods():
            raise ValueError(
                f"multiprocessing_context {spec!r} is not available here; choose one of "
                f"{multiprocessing.get_all_start_methods()}"
            )
        return multiprocessing.get_context(spec)
    return spec


class _WorkerPool:
    """The worker processes of a DataLoader, their task queues and the shared result queue."""

    def __init__(self, loader: DataLoader, seed: int):
        self.closed, self.index_queues, self.workers = True, [], []  # (for __del__ if this fails)
        ctx = _context(loader.multiprocessing_context)
        # the loader's settings, not the loader: a persistent pool must not keep it alive
        self.prefetch = loader.prefetch_factor * loader.num_workers
        self.timeout = loader.timeout
        self.device = loader.device
        self.default_collate = loader.collate_fn is None
        self.collate_in_worker = loader.collate_fn if loader.collate_fn is not None else collate_numpy
        self.result_queue = ctx.Queue()
        for worker_id in range(loader.num_workers):
            index_queue = ctx.Queue()
            index_queue.cancel_join_thread()
            w = ctx.Process(
                target=worker_loop,
                args=(loader.dataset, index_queue, self.result_queue, self.collate_in_worker, worker_id,
                      loader.num_workers, seed + worker_id, loader.worker_init_fn),
                daemon=True,
            )
            w.start()
            self.index_queues.append(index_queue)
            self.workers.append(w)
        self.closed = False

    def alive(self) -> bool:
        return not self.closed and all(w.is_alive() for w in self.workers)

    def epoch(self, batches, epoch: int, owns_pool: bool):
        """Yield the batches of one epoch, in order. The pool shuts down on an error, and
        at the end of the epoch (finished or abandoned) if the epoch owns it."""
        try:
            yield from self._ordered(batches, epoch)
        except GeneratorExit:  # the loop over the loader stopped early
            if owns_pool:
                self.shutdown()
            raise
        except BaseException:
            self.shutdown()
            raise
        if owns_pool:
            self.shutdown()

    def _ordered(self, batches, epoch: int):
        n = len(self.workers)
        sent = done = 0
        waiting: dict[int, object] = {}  # results that came early, by task number
        exhausted = False
        while True:
            while not exhausted and sent - done < self.prefetch:
                indices = next(batches, None)
                if indices is None:
                    exhausted = True
                    break
                self.index_queues[sent % n].put((epoch, sent, list(indices)))
                sent += 1
            if done == sent:
                return
            while done not in waiting:
                result_epoch, task, batch = self._next_result()
                if result_epoch == epoch:  # (else from an earlier epoch left unfinished)
                    waiting[task] = batch
            batch = waiting.pop(done)
            done += 1
            if isinstance(batch, WorkerError):
                batch.reraise()
            batch = pickle.loads(batch)
            yield to_tensors(batch, self.device) if self.default_collate else batch

    def _next_result(self):
        """The next (epoch, task, batch) from any worker; an error if a worker died or
        the loader's timeout passed."""
        deadline = time.monotonic() + self.timeout if self.timeout > 0 else None
        while True:
            wait = 1.0 if deadline is None else min(1.0, max(deadline - time.monotonic(), 0.0))
            try:
                return self.result_queue.get(timeout=wait)
            except queue.Empty:
                pass
            dead = [w for w in self.workers if not w.is_alive()]
            if dead:
                w = dead[0]
                self.shutdown()
                raise RuntimeError(
                    f"DataLoader worker (pid {w.pid}) exited unexpectedly with exit code {w.exitcode}; "
                    "it may have been killed for lack of memory, or crashed in native code. "
                    "Try num_workers=0 to see the error in this process."
                )
            if deadline is not None and time.monotonic() >= deadline:
                self.shutdown()
                raise RuntimeError(f"DataLoader timed out after {self.timeout} seconds waiting for a batch")

    def shutdown(self) -> None:
        """Stop the workers: ask them to finish, then terminate any that do not."""
        if self.closed:
            return
        self.closed = True
        for q in self.index_queues:
            try:
                q.put(None)
            except (OSError, ValueError):
                pass
        for w in self.workers:
            w.join(timeout=1.0)
            if w.is_alive():
                w.terminate()
                w.join(timeout=1.0)
        for q in self.index_queues + [self.result_queue]:
            q.cancel_join_thread()
            q.close()

    def __del__(self):
        self.shutdown()
