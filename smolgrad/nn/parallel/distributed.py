"""DistributedDataParallel: the same model on every rank, gradients averaged across ranks
in buckets while backward runs (torch.nn.parallel.DistributedDataParallel)."""

from __future__ import annotations

import contextlib
import time
from typing import Iterator

import numpy as np

from ... import distributed as dist
from ...autograd import is_grad_enabled, no_grad
from ...autograd.engine import queue_callback
from ...distributed.process_group import _default_group, _write_back, all_reduce_buffer
from ...lazy import realize
from ...tensor import Tensor
from ..module import Module

MB = 1024 * 1024
FIRST_BUCKET_BYTES = 1 * MB  # torch's: a small first bucket starts communication early


class _Bucket:
    """Parameters whose gradients are all-reduced together in one flat host buffer."""

    def __init__(self, index: int, params: list):
        self.index, self.params = index, params
        self.dtype = params[0].dtype.np
        self.sizes = [p.numel() for p in params]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(int).tolist()
        self.numel = self.offsets[-1]


def _buckets(params: list, cap_bytes: int) -> list[_Bucket]:
    """Parameters in reverse registration order (roughly the order backward produces their
    gradients), cut into buckets of at most cap_bytes (the first at most 1 MB) of one dtype
    and device each; a larger parameter gets a bucket of its own."""
    buckets, current, size = [], [], 0
    limit = min(cap_bytes, FIRST_BUCKET_BYTES)
    for p in reversed(params):
        nbytes = p.numel() * p.dtype.np.itemsize
        if current and (size + nbytes > limit or (p.dtype, p.device) != (current[0].dtype, current[0].device)):
            buckets.append(_Bucket(len(buckets), current))
            current, size, limit = [], 0, cap_bytes
        current.append(p)
        size += nbytes
    if current:
        buckets.append(_Bucket(len(buckets), current))
    return buckets


class DistributedDataParallel(Module):
    """Data-parallel training: wrap the model on every rank, give each rank its own part of
    the batch, and after `loss.backward()` every parameter's `.grad` holds the gradient
    averaged over all ranks, as if one process had computed it on the whole batch (for a
    loss that is a mean over the batch).

    At construction the parameters and buffers are broadcast from rank 0, and the buffers
    again before each forward in grad mode (a no_grad forward, such as an evaluation on
    rank 0 alone, communicates nothing). During backward
    the gradients are gathered into buckets (`bucket_cap_mb`, default 25 MB; reverse
    parameter order), each all-reduced without blocking as soon as it is complete, so
    communication overlaps the rest of backward; the end of backward waits for all of them.
    `no_sync()` skips the averaging (gradient accumulation). `state_dict` keys carry the
    `module.` prefix, as in torch.

    smolgrad runs one device per process (see smolgrad.devices and SMOLGRAD_ADAPTER), so
    device_ids, output_device and dim are accepted for torch code, with at most one device.
    Unused parameters are always handled (their gradient counts as zero on that rank; one
    unused on every rank keeps .grad None), so find_unused_parameters changes nothing;
    check_reduction, gradient_as_bucket_view and static_graph change nothing either."""

    def __init__(
        self,
        module: Module,
        device_ids=None,
        output_device=None,
        dim: int = 0,
        broadcast_buffers: bool = True,
        init_sync: bool = True,
        process_group=None,
        bucket_cap_mb: float | None = None,
        find_unused_parameters: bool = False,
        check_reduction: bool = False,
        gradient_as_bucket_view: bool = False,
        static_graph: bool = False,
    ):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: module must be an nn.Module, got {type(module).__name__}")
        if device_ids is not None and len(device_ids) > 1:
            raise ValueError(
                f"DistributedDataParallel: device_ids={device_ids!r}; smolgrad uses one device per process "
                "(run one rank per GPU: rank r uses adapter r mod n, or set SMOLGRAD_ADAPTER)"
            )
        if process_group is not None and process_group is not dist.process_group._group:
            raise ValueError("DistributedDataParallel: only the default process group (process_group=None) is supported")
        bucket_cap_mb = 25 if bucket_cap_mb is None else bucket_cap_mb
        if not bucket_cap_mb > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be positive, got {bucket_cap_mb}")
        group = _default_group()
        self.module = module
        self.broadcast_buffers = broadcast_buffers
        self.require_backward_grad_sync = True
        self.find_unused_parameters = find_unused_parameters
        self.world_size, self.rank = group.size, group.rank
        params = [p for p in module.parameters() if p.requires_grad]
        if init_sync:
            _broadcast_coalesced([*module.parameters(), *module.buffers()])
        self._buckets = _buckets(params, int(bucket_cap_mb * MB))
        self._bucket_of = {id(p): b for b in self._buckets for p in b.params}
        self._hooks = [p.register_post_accumulate_grad_hook(self._grad_ready) for p in params]
        self._syncing = False  # a backward pass with gradient sync is under way
        # seconds spent per phase, summed over steps (benchmarks/ddp_step.py reports them)
        self._comm_stats = {"steps": 0, "buckets": 0, "bytes": 0, "overlapped_bytes": 0, "realize_s": 0.0, "copy_s": 0.0, "wait_s": 0.0, "write_s": 0.0}

    def forward(self, *inputs, **kwargs):
        if self._syncing:  # the last backward stopped with an error before its end
            self._syncing, self._works = False, []
        if self.broadcast_buffers and self.world_size > 1 and is_grad_enabled():
            buffers = list(self.module.buffers())
            if buffers:
                _broadcast_coalesced(buffers)
        return self.module(*inputs, **kwargs)

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Inside this block backward only accumulates local gradients; the first backward
        after it averages the accumulated gradients."""
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    # ----- during backward -----
    def _grad_ready(self, param: Tensor) -> None:
        """A parameter's gradient is final for this backward: launch every bucket that is
        complete, in bucket order (so all ranks start the same collectives in the same order)."""
        if not self.require_backward_grad_sync:
            return
        if not self._syncing:
            self._syncing = True
            self._ready = [0] * len(self._buckets)
            self._works: list = []
            queue_callback(self._finish)
        self._ready[self._bucket_of[id(param)].index] += 1
        while len(self._works) < len(self._buckets):
            b = self._buckets[len(self._works)]
            if self._ready[b.index] < len(b.params):
                break
            self._launch(b)

    def _launch(self, bucket: _Bucket) -> None:
        """Compute the bucket's gradients, copy them into one host buffer, and start its
        non-blocking all-reduce (a gradient missing on this rank counts as zero)."""
        start = time.perf_counter()
        grads = [p.grad for p in bucket.params]
        realize(*[g.lazydata for g in grads if g is not None])
        computed = time.perf_counter()
        flat = np.zeros(bucket.numel, dtype=bucket.dtype)
        for g, lo, hi in zip(grads, bucket.offsets, bucket.offsets[1:]):
            if g is not None:
                flat[lo:hi] = g.numpy().reshape(-1)
        for w, _ in self._works:  # poll the earlier buckets: it drives MPI's progress
            w.is_completed()
        work = all_reduce_buffer(flat, f"DistributedDataParallel's all-reduce of gradient bucket {bucket.index}")
        self._works.append((work, flat))
        stats = self._comm_stats
        stats["buckets"] += 1
        stats["bytes"] += flat.nbytes
        stats["realize_s"] += computed - start
        stats["copy_s"] += time.perf_counter() - computed

    def _finish(self) -> None:
        """End of backward: launch what is left, wait for every bucket, and write the averaged
        gradients into `.grad`."""
        self._syncing = False
        stats = self._comm_stats
        for b in self._buckets[len(self._works):]:
            self._launch(b)
        stats["overlapped_bytes"] += sum(flat.nbytes for work, flat in self._works if work.is_completed())
        start = time.perf_counter()
        for work, _ in self._works:
            work.wait()
        waited = time.perf_counter()
        with no_grad():
            for b, (_, flat) in zip(self._buckets, self._works):
                flat /= self.world_size
                for p, lo, hi in zip(b.params, b.offsets, b.offsets[1:]):
                    value = flat[lo:hi].reshape(p.shape)
                    if p.grad is not None:
                        _write_back(p.grad, value)
                    elif np.any(value):  # unused here, used on another rank
                        p.grad = Tensor(value, dtype=p.dtype, device=p.device)
        self._works = []
        stats["steps"] += 1
        stats["wait_s"] += waited - start
        stats["write_s"] += time.perf_counter() - waited


def _broadcast_coalesced(tensors: list[Tensor]) -> None:
    """Broadcast `tensors` from rank 0, one flat buffer per dtype."""
    by_dtype: dict = {}
    for t in tensors:
        by_dtype.setdefault(t.dtype, []).append(t)
    for ts in by_dtype.values():
        flat = np.concatenate([t.detach().numpy().reshape(-1) for t in ts])
        group = _default_group()
        group.wait(group.ibcast(flat, 0), f"DistributedDataParallel's broadcast of {len(ts)} parameters/buffers")
        if group.rank != 0:
            offset = 0
            for t in ts:
                _write_back(t, flat[offset : offset + t.numel()])
                offset += t.numel()
