"""The WebGPU backend: buffers in GPU memory, kernels as generated WGSL compute shaders.

One `run()` encodes all of its kernels into one command encoder and one compute pass
and submits once. Pipelines are cached by source text; buffers released by the
garbage collector go back to a pool keyed by size class; readback goes through one
persistent MAP_READ staging buffer.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import tempfile
import time
import weakref
from collections import OrderedDict
from typing import Any

import numpy as np

from .. import profiler
from ..dtypes import DType, float32
from ..engine.kernel import Kernel, Load, Operand, local_slots
from ..view import View
from . import autotune, wgsl, wgsl_attention, wgsl_rows
from .base import Backend, index_out_of_range

try:
    import wgpu
except ImportError as e:  # pragma: no cover - device.py reports this
    raise ImportError(f"the webgpu device needs the wgpu package (pip install wgpu): {e}") from e

MIN_BYTES = 4  # zero-size tensors still get a (tiny) buffer
MAX_GROUPS_DEFAULT = 65535
BIND_GROUP_CACHE_SIZE = 2048
RECENT_BIND_GROUPS = 3  # bind groups a captured step's dispatch remembers (double buffers alternate)
SOURCE_CACHE_SIZE = 1024  # generated WGSL texts kept (see WebGPUBackend._source)
REDUCE_WORK_GPU = 8  # values per lane of a reduction (see wgsl.reduce_plan)
REDUCE_WORK_CPU = 128
PROFILE_CHUNK = 256  # kernels per submit while profiling (bounds the timestamp query set)
BACKEND_RANK = {"Vulkan": 0, "Metal": 0, "D3D12": 0, "DX12": 0, "OpenGL": 2, "OpenGLES": 2}
TYPE_RANK = {"DiscreteGPU": 0, "IntegratedGPU": 1, "VirtualGPU": 2, "CPU": 3, "Unknown": 4}


class ShaderCompileError(RuntimeError):
    """A generated WGSL shader failed to compile; the message includes the source."""


# --------------------------------------------------------------------------- adapters
NOISE = ("XDG_RUNTIME_DIR is invalid",)


@contextlib.contextmanager
def _quiet_driver_stderr():
    """Drop known harmless driver chatter (Mesa prints 'error: XDG_RUNTIME_DIR is
    invalid...' when probing window-system support, which compute never uses) from
    the C-level stderr while adapters are probed; any other output is passed on."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real fd 2 (embedded interpreters)
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode(errors="replace")
            kept = [line for line in text.splitlines() if not any(n in line for n in NOISE)]
            if kept:
                print("\n".join(kept), file=sys.stderr)


_adapters_cache: list | None = None


def _all_adapters() -> list:
    """Every adapter wgpu finds, probed once per process."""
    global _adapters_cache
    if _adapters_cache is None:
        with _quiet_driver_stderr():
            _adapters_cache = list(wgpu.gpu.enumerate_adapters_sync())
    return _adapters_cache


def _adapter_rank(adapter) -> tuple[int, int]:
    info = adapter.info
    return (BACKEND_RANK.get(info.get("backend_type", ""), 1), TYPE_RANK.get(info.get("adapter_type", ""), 4))


LOCAL_RANK_VARIABLES = ("MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "LOCAL_RANK")  # MPICH, Open MPI, torchrun
RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "RANK")


def process_rank() -> int:
    """This process's rank on its machine as the launcher (mpiexec, torchrun) set it in the
    environment (else its global rank; 0 when not launched as one of several)."""
    for name in (*LOCAL_RANK_VARIABLES, *RANK_VARIABLES):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 0


def _choose_adapter():
    """The adapter WebGPUBackend uses: $SMOLGRAD_ADAPTER when set; else among the adapters
    of the best kind (primary backend, discrete before integrated before software), the
    (rank mod their number)-th, so that the ranks of a job on one machine spread over its GPUs."""
    adapters = _all_adapters()
    if not adapters:
        return None
    choice = os.environ.get("SMOLGRAD_ADAPTER")
    if choice:
        return _adapter_named(adapters, choice)
    best = min(_adapter_rank(a) for a in adapters)
    candidates = [a for a in adapters if _adapter_rank(a) == best]
    return candidates[process_rank() % len(candidates)]


def _adapter_named(adapters: list, choice: str):
    """SMOLGRAD_ADAPTER: an index into the adapters (in smolgrad.devices()' order) or a
    case-insensitive part of one's name, backend or description."""
    names = [f"{i}: {a.info.get('device', '')} ({a.info.get('backend_type', '')})" for i, a in enumerate(adapters)]
    if choice.strip().isdigit():
        i = int(choice)
        if i < len(adapters):
            return adapters[i]
    else:
        for a in adapters:
            info = a.info
            if choice.lower() in f"{info.get('device', '')} {info.get('backend_type', '')} {info.get('description', '')}".lower():
                return a
    raise RuntimeError(f"SMOLGRAD_ADAPTER={choice!r} matches no WebGPU adapter; the adapters are: {'; '.join(names)}")


def enumerate_adapters() -> list[dict]:
    """Every WebGPU adapter: name, backend, type, vendor, description, and `selected`
    for the one WebGPUBackend uses."""
    adapters = _all_adapters()
    chosen = _choose_adapter()
    out = []
    for a in adapters:
        info = a.info
        out.append(
            {
                "name": info.get("device", "") or info.get("description", ""),
                "backend": info.get("backend_type", ""),
                "type": info.get("adapter_type", ""),
                "vendor": info.get("vendor", ""),
                "description": info.get("description", ""),
                "selected": a is chosen,
            }
        )
    return out


# --------------------------------------------------------------------------- buffers
def size_class(nbytes: int) -> int:
    """Round a byte size up to its pool size class: 4-byte aligned, and above 4 KiB
    a multiple of a quarter of the enclosing power of two (at most 25% waste)."""
    nbytes = max(MIN_BYTES, (nbytes + 3) // 4 * 4)
    if nbytes <= 4096:
        return 1 << (nbytes - 1).bit_length()
    quarter = 1 << ((nbytes - 1).bit_length() - 2)
    return -(-nbytes // quarter) * quarter


class WebGPUBuffer:
    """A tensor's storage: a pooled GPU buffer holding `nbytes` of 4-byte elements.
    When the handle is garbage-collected its GPU buffer returns to the pool."""

    __slots__ = ("buffer", "nbytes", "capacity", "_pool", "error", "__weakref__")

    def __init__(self, buffer, nbytes: int, capacity: int, pool: BufferPool):
        self.buffer = buffer
        self.nbytes = nbytes
        self.capacity = capacity
        self._pool = weakref.ref(pool)
        self.error: IndexError | None = None  # set when computed from a flagged out-of-range index

    def __repr__(self) -> str:
        return f"<WebGPUBuffer {self.nbytes} bytes>"

    def __del__(self):
        pool = self._pool() if self._pool is not None else None
        if pool is not None:
            pool.release(self.buffer, self.capacity)


class BufferPool:
    """Reuses GPU storage buffers by size class."""

    def __init__(self, device, stats: dict, max_binding: int):
        self.device = device
        self.stats = stats
        self.max_binding = max_binding
        self.free: dict[int, list] = {}
        # Every GPU buffer made, held here so that it is never garbage itself: when a
        # reference cycle holding a WebGPUBuffer is collected, wgpu could otherwise
        # release the GPU buffer before WebGPUBuffer.__del__ returns it to the pool.
        self.owned: dict[int, Any] = {}
        self.usage = wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_SRC | wgpu.BufferUsage.COPY_DST

    def allocate(self, nbytes: int, what: str = "tensor") -> WebGPUBuffer:
        if nbytes > self.max_binding:
            raise MemoryError(
                f"{what} needs {nbytes} bytes ({nbytes / 2**20:.1f} MiB) but this WebGPU device binds at most "
                f"{self.max_binding} bytes ({self.max_binding / 2**20:.0f} MiB, max_storage_buffer_binding_size) "
                "per buffer; split the tensor into smaller chunks or use device='numpy'"
            )
        capacity = size_class(nbytes)
        bucket = self.free.get(capacity)
        if bucket:
            buffer = bucket.pop()
            self.stats["pool_hits"] += 1
        else:
            buffer = self.device.create_buffer(size=capacity, usage=self.usage)
            self.owned[id(buffer)] = buffer
            self.stats["bytes_allocated"] += capacity
            self.stats["peak_bytes"] = max(self.stats["peak_bytes"], self.stats["bytes_allocated"])
        return WebGPUBuffer(buffer, max(MIN_BYTES, (nbytes + 3) // 4 * 4), capacity, self)

    def release(self, buffer, capacity: int) -> None:
        self.free.setdefault(capacity, []).append(buffer)

    def clear(self) -> None:
        """Destroy every pooled (unused) buffer."""
        for capacity, buffers in self.free.items():
            for b in buffers:
                del self.owned[id(b)]
                b.destroy()
                self.stats["bytes_allocated"] -= capacity
        self.free.clear()


# --------------------------------------------------------------------------- backend
class WebGPUBackend(Backend):
    """Runs kernel lists as WGSL compute shaders on a wgpu device."""

    name = "webgpu"

    def __init__(self):
        adapter = _choose_adapter()
        if adapter is None:
            raise RuntimeError(
                "no WebGPU adapter found: install a GPU driver with Vulkan, Metal or DX12 support "
                "(or Mesa's lavapipe, package mesa-vulkan-drivers), or use device='numpy'"
            )
        self.adapter = adapter
        self.adapter_info = dict(adapter.info)
        features = [f for f in ("timestamp-query", "shader-f16", "subgroup") if f in adapter.features]
        # omitting required_limits gives the device the adapter's maximum limits
        with _quiet_driver_stderr():
            self.device = adapter.request_device_sync(required_features=features)
        limits = self.device.limits
        self.max_groups = int(limits.get("max-compute-workgroups-per-dimension", MAX_GROUPS_DEFAULT))
        self.max_binding = int(limits.get("max-storage-buffer-binding-size", 128 * 2**20))
        self.max_storage_buffers = int(limits.get("max-storage-buffers-per-shader-stage", 8))
        # reductions combine a row's lanes with subgroup shuffles where the device has them
        # (SMOLGRAD_SUBGROUPS=0, or setting this False, forces the workgroup-memory path)
        self.subgroups = "subgroup" in self.device.features and os.environ.get("SMOLGRAD_SUBGROUPS", "1") != "0"
        # values each reduction lane reads: a CPU adapter runs lanes as SIMD loops, so
        # more work per lane and fewer combining steps pay there
        software = self.adapter_info.get("adapter_type") == "CPU"
        self.reduce_work = REDUCE_WORK_CPU if software else REDUCE_WORK_GPU
        self.row_layout = wgsl_rows.CPU_LAYOUT if software else wgsl_rows.GPU_LAYOUT
        self.workgroup_bytes = int(limits.get("max-compute-workgroup-storage-size", 16384))
        self.matmul_tuner = autotune.MatmulTuner(self)
        super().__init__()  # self.stats
        self.pool = BufferPool(self.device, self.stats, self.max_binding)
        self._pipelines: dict[str, Any] = {}
        self._layouts: dict[int, tuple] = {}
        self._bind_groups: OrderedDict = OrderedDict()
        self._staging = None
        self._staging_size = 0
        self._timer: _DispatchTimer | None = None  # set while a profiled run is encoded
        self._dispatch_log: list | None = None  # set while run_program records its dispatches
        self._sources: OrderedDict = OrderedDict()  # see _source
        self._errors: WebGPUBuffer | None = None  # device error flags (see wgsl.ERROR_FLAGS)
        self._errors_pending = False  # a kernel that may flag an error ran since the last check
        # buffers computed since then from a gather/scatter-add output: if the check finds
        # an error they are poisoned (reading them raises it again), else forgotten
        self._suspects: weakref.WeakSet = weakref.WeakSet()
        self._poisoned = False  # some buffer was poisoned (then kernels propagate it)

    # ----- info
    def info(self) -> dict:
        i = self.adapter_info
        return {
            "name": i.get("device", ""),
            "backend": i.get("backend_type", ""),
            "type": i.get("adapter_type", ""),
            "vendor": i.get("vendor", ""),
            "description": i.get("description", ""),
            "max_storage_buffer_binding_size": self.max_binding,
            "max_storage_buffers_per_shader_stage": self.max_storage_buffers,
        }

    # ----- host transfer
    def check_dtype(self, dtype: DType) -> None:
        """A clear error for a dtype this device cannot hold (float64; float16 without
        the adapter's `shader-f16` feature)."""
        wgsl.wgsl_type(dtype)
        if wgsl.is_half(dtype) and "shader-f16" not in self.device.features:
            raise TypeError(
                f"float16 on webgpu needs the adapter feature 'shader-f16', which "
                f"{self.adapter_info.get('device') or 'this adapter'} does not have; "
                "use float32, or float16 on device='numpy'"
            )

    def upload(self, flat: np.ndarray, dtype: DType) -> WebGPUBuffer:
        self.check_dtype(dtype)
        data = to_device_array(np.asarray(flat).reshape(-1), dtype)
        buf = self.pool.allocate(data.nbytes, f"tensor of {data.size} {dtype.name} elements")
        self._write_words(buf, data)
        return buf

    def write(self, buf: WebGPUBuffer, flat: np.ndarray, dtype: DType) -> None:
        self._write_words(buf, to_device_array(np.asarray(flat).reshape(-1), dtype))

    def _write_words(self, buf: WebGPUBuffer, data: np.ndarray) -> None:
        """Copy `data` (already in the device representation) into the start of `buf`."""
        if data.nbytes % 4:  # copies move whole 4-byte words (an odd count of float16)
            data = np.concatenate([data, np.zeros(1, data.dtype)])
        if data.nbytes:  # (a queue operation: after the submits before it, before those after)
            self.device.queue.write_buffer(buf.buffer, 0, data)

    def download(self, buf: WebGPUBuffer, dtype: DType, offset: int, count: int) -> np.ndarray:
        wgsl.wgsl_type(dtype)
        if count <= 0:
            return np.zeros(0, dtype=dtype.np)
        size = device_np_dtype(dtype).itemsize
        # copies move whole 4-byte words: read the words around 2-byte elements
        begin, end = offset * size // 4 * 4, -(-(offset + count) * size // 4) * 4
        raw = self._read_back(buf.buffer, begin, end - begin)
        if buf.error is not None:  # computed from an out-of-range index found earlier
            raise IndexError(*buf.error.args)
        skip = offset * size - begin
        return from_device_array(np.frombuffer(raw, dtype=device_np_dtype(dtype), count=count, offset=skip), dtype)

    def _read_back(self, buffer, offset: int, nbytes: int) -> bytes:
        """Copy bytes [offset, offset + nbytes) of a GPU buffer to the host, in one submit
        and map. The device error flags ride along when a kernel may have set them since
        the last check (so checking them costs no extra round trip); a set flag raises."""
        check = self._errors_pending
        flag_bytes = wgsl.ERROR_FLAGS * 4 if check else 0
        staging = self._staging_buffer(nbytes + flag_bytes)
        encoder = self.device.create_command_encoder()
        if nbytes:
            encoder.copy_buffer_to_buffer(buffer, offset, staging, 0, nbytes)
        if check:
            encoder.copy_buffer_to_buffer(self._errors.buffer, 0, staging, nbytes, flag_bytes)
        self.device.queue.submit([encoder.finish()])
        self.stats["submits"] += 1
        self.stats["readbacks"] += 1
        staging.map_sync(wgpu.MapMode.READ, 0, nbytes + flag_bytes)
        try:
            raw = staging.read_mapped(0, nbytes + flag_bytes)  # a copy
        finally:
            staging.unmap()
        if check:
            self._errors_pending = False
            suspects = list(self._suspects)
            self._suspects.clear()
            self._raise_device_error(np.frombuffer(raw[nbytes:], dtype=np.uint32), suspects)
        return raw[:nbytes]

    def _error_flags(self) -> WebGPUBuffer:
        """The device error flags buffer that gather and scatter-add kernels write."""
        if self._errors is None:
            self._errors = self.pool.allocate(wgsl.ERROR_FLAGS * 4, "device error flags")
            self.device.queue.write_buffer(self._errors.buffer, 0, np.zeros(wgsl.ERROR_FLAGS, np.uint32))
        self._errors_pending = True
        return self._errors

    def _raise_device_error(self, flags: np.ndarray, suspects: list[WebGPUBuffer]) -> None:
        """Raise the error a kernel recorded in the flags, if any, after clearing them and
        poisoning the buffers that may have been computed from its clamped values."""
        count, op, dim, size, index = (int(x) for x in flags)
        if count == 0:
            return
        self.device.queue.write_buffer(self._errors.buffer, 0, np.zeros(wgsl.ERROR_FLAGS, np.uint32))
        index = index - 2**32 if index >= 2**31 else index  # the i32 it was
        name = wgsl.ERROR_OPS.get(op, "a gather or scatter kernel")
        error = index_out_of_range(name, dim, size, index, on_device=True)
        for b in suspects:
            b.error = error
        self._poisoned = self._poisoned or bool(suspects)
        raise error

    def _track_suspects(self, k: Kernel, outs: list[WebGPUBuffer], buffers: list) -> None:
        """Outputs of gather/scatter-add, and of kernels reading such outputs (or poisoned
        buffers), since the last error check: the values a flagged index would make wrong."""
        if k.kind not in ("gather", "scatter_add") and not self._suspects and not self._poisoned:
            return  # the common case: nothing to track
        inputs = [buffers[s.slot] for s in k.srcs]
        if self._poisoned:
            error = next((b.error for b in inputs if getattr(b, "error", None) is not None), None)
            if error is not None:
                for o in outs:
                    o.error = error
                return
        if k.kind in ("gather", "scatter_add") or any(b in self._suspects for b in inputs):
            self._suspects.update(outs)

    def _staging_buffer(self, nbytes: int):
        if self._staging is None or self._staging_size < nbytes:
            if self._staging is not None:
                self._staging.destroy()
            self._staging_size = max(size_class(nbytes), 64 * 1024)
            self._staging = self.device.create_buffer(
                size=self._staging_size, usage=wgpu.BufferUsage.MAP_READ | wgpu.BufferUsage.COPY_DST
            )
        return self._staging

    def empty_cache(self) -> None:
        self.pool.clear()

    def synchronize(self) -> None:
        """Wait for all submitted work (a copy submitted after it, then a map); raise the
        error a kernel flagged in it, if any."""
        scratch = self.pool.allocate(4, "sync scratch")
        self._read_back(scratch.buffer, 0, 4)

    # ----- pipelines and bind groups
    def _layout(self, n_outputs: int, n_inputs: int) -> tuple:
        """(bind group layout, pipeline layout) for n read-write outputs + n read-only inputs."""
        if n_outputs + n_inputs > self.max_storage_buffers:
            raise RuntimeError(
                f"kernel needs {n_outputs + n_inputs} storage buffers but this device allows "
                f"{self.max_storage_buffers} per shader stage"
            )
        key = (n_outputs, n_inputs)
        if key not in self._layouts:
            entries = [
                {
                    "binding": i,
                    "visibility": wgpu.ShaderStage.COMPUTE,
                    "buffer": {
                        "type": wgpu.BufferBindingType.storage
                        if i < n_outputs
                        else wgpu.BufferBindingType.read_only_storage
                    },
                }
                for i in range(n_outputs + n_inputs)
            ]
            bgl = self.device.create_bind_group_layout(entries=entries)
            self._layouts[key] = (bgl, self.device.create_pipeline_layout(bind_group_layouts=[bgl]))
        return self._layouts[key]

    def pipeline(self, source: str, n_outputs: int, n_inputs: int):
        """The compute pipeline of a WGSL source, compiled once and cached."""
        key = (source, n_outputs, n_inputs)
        pipe = self._pipelines.get(key)
        if pipe is not None:
            self.stats["pipeline_cache_hits"] += 1
            return pipe
        _, layout = self._layout(n_outputs, n_inputs)
        if wgsl.uses_f16(source):
            source = "enable f16;\n" + source
        try:
            module = self.device.create_shader_module(code=source)
            pipe = self.device.create_compute_pipeline(layout=layout, compute={"module": module, "entry_point": "main"})
        except Exception as e:
            numbered = "\n".join(f"{i + 1:4d}  {line}" for i, line in enumerate(source.splitlines()))
            raise ShaderCompileError(f"WGSL shader failed to compile: {e}\n--- source ---\n{numbered}") from e
        self.stats["kernels_compiled"] += 1
        self._pipelines[key] = pipe
        return pipe

    def _bind_group(self, buffers: list[WebGPUBuffer], n_outputs: int):
        key = (n_outputs, *((id(b.buffer), b.nbytes) for b in buffers))
        entry = self._bind_groups.get(key)
        if entry is not None:
            self._bind_groups.move_to_end(key)
            return entry[0]
        bgl, _ = self._layout(n_outputs, len(buffers) - n_outputs)
        entries = [
            {"binding": i, "resource": {"buffer": b.buffer, "offset": 0, "size": b.nbytes}}
            for i, b in enumerate(buffers)
        ]
        group = self.device.create_bind_group(layout=bgl, entries=entries)
        # keep the GPU buffers referenced so their ids stay unique while cached
        self._bind_groups[key] = (group, [b.buffer for b in buffers])
        if len(self._bind_groups) > BIND_GROUP_CACHE_SIZE:
            self._bind_groups.popitem(last=False)
        return group

    def _grid(self, groups: int) -> tuple[int, int, int]:
        """Fold a 1-D workgroup count into x * y <= max per dimension."""
        if groups <= self.max_groups:
            return (groups, 1, 1)
        y = -(-groups // self.max_groups)
        if y > self.max_groups:
            raise RuntimeError(f"dispatch of {groups} workgroups is too large")
        return (-(-groups // y), y, 1)

    # ----- running kernels
    def run(self, kernels: list[Kernel], buffers: list) -> None:
        """Encode every kernel into one compute pass and submit once."""
        if profiler.is_active():
            self._run_profiled(kernels, buffers)
            return
        encoder = self.device.create_command_encoder()
        compute = encoder.begin_compute_pass()
        keep_alive = []  # temporaries that must live until the submit
        for k in kernels:
            self._encode_kernel(compute, k, keep_alive, buffers)
        compute.end()
        self.device.queue.submit([encoder.finish()])
        self.stats["submits"] += 1

    def run_program(self, kernels: list[Kernel], buffers: list, memo: dict) -> None:
        """Run a captured step: the first run encodes as `run` does and records each
        kernel's dispatches (pipeline, bound buffers by slot, grid); later runs replay
        that list into one compute pass and one submit, generating and looking up nothing
        but the bind groups of buffers that changed."""
        plan = memo.get("dispatches")
        if plan is None or profiler.is_active():
            log: list = []
            self._dispatch_log = log
            try:
                self.run(kernels, buffers)
            finally:
                self._dispatch_log = None
            if plan is None:
                memo["dispatches"] = self._dispatch_plan(kernels, buffers, log)
            return
        encoder = self.device.create_command_encoder()
        compute = encoder.begin_compute_pass()
        pipeline = None
        for k, dispatches in plan:
            for o, buf in zip(k.outs, self._outputs(k, buffers)):
                buffers[o.slot] = buf
            if k.kind in ("gather", "scatter_add"):
                self._errors_pending = True
            for d in dispatches:  # [pipeline, bindings, outputs, grid, recent bind groups]
                bound = [buffers[ref] if type(ref) is int else ref for ref in d[1]]
                raw = [b.buffer for b in bound]  # (pooled GPU buffers: a recycled one is the same)
                group = next((g for seen, g in d[4] if all(a is b for a, b in zip(raw, seen))), None)
                if group is None:  # (planned buffers are the same every run; double buffers alternate)
                    group = self._bind_group(bound, d[2])
                    d[4] = [(raw, group), *d[4][: RECENT_BIND_GROUPS - 1]]
                if d[0] is not pipeline:  # (an optimizer's kernels, say, run one pipeline in a row)
                    pipeline = d[0]
                    compute.set_pipeline(pipeline)
                compute.set_bind_group(0, group)
                compute.dispatch_workgroups(*d[3])
            self.stats["dispatches"] += len(dispatches)
            self.stats["kernels"] += 1
        compute.end()
        self.device.queue.submit([encoder.finish()])
        self.stats["submits"] += 1

    @staticmethod
    def _dispatch_plan(kernels: list[Kernel], buffers: list, log: list) -> list:
        """[(kernel, [(pipeline, bound buffers as slots or fixed buffers, outputs, grid)])]
        from the dispatches logged while the kernels ran over `buffers`."""
        slot_of: dict[int, int] = {}
        for i, b in enumerate(buffers):  # (the lowest slot: an assign's output shares its target's buffer)
            if b is not None:
                slot_of.setdefault(id(b), i)
        by_kernel: dict[int, list] = {id(k): [] for k in kernels}
        for k, pipeline, bound, n_outputs, grid in log:
            refs = [slot_of.get(id(b), b) for b in bound]  # a temporary (reduction partials, error flags) stays fixed
            by_kernel[id(k)].append([pipeline, refs, n_outputs, grid, []])
        return [(k, by_kernel[id(k)]) for k in kernels]

    def _encode_kernel(self, compute, k: Kernel, keep_alive: list, buffers: list) -> None:
        for o in k.outs:
            self.check_dtype(o.dtype)  # raises a clear TypeError for float64 (and float16 without shader-f16)
        for s in k.srcs:
            self.check_dtype(s.dtype)
        outs = self._outputs(k, buffers)
        self._encode(compute, k, outs, keep_alive, buffers)
        self._track_suspects(k, outs, buffers)
        for o, buf in zip(k.outs, outs):
            buffers[o.slot] = buf
        self.stats["kernels"] += 1

    def _outputs(self, k: Kernel, buffers: list) -> list:
        """The buffers kernel `k` writes: an assign's target (updated in place), else each
        output slot's planned buffer (step capture) or a new one."""
        if k.kind == "assign":
            return [buffers[k.srcs[0].slot]]
        return [
            buffers[o.slot]
            or self.pool.allocate(math.prod(o.shape) * element_size(o.dtype), f"{k.name} output of shape {o.shape}")
            for o in k.outs
        ]

    def _run_profiled(self, kernels: list[Kernel], buffers: list) -> None:
        """Run while a profile is active: with timestamp-query, each dispatch gets its own
        compute pass between two GPU timestamps; without, each kernel is submitted alone
        and waited for."""
        if "timestamp-query" not in self.device.features:
            for k in kernels:
                with profiler.span("wait"):
                    self.synchronize()
                start = time.perf_counter()
                with profiler.span("encode"):
                    encoder = self.device.create_command_encoder()
                    compute = encoder.begin_compute_pass()
                    keep_alive: list = []
                    self._encode_kernel(compute, k, keep_alive, buffers)
                    compute.end()
                with profiler.span("submit"):
                    self.device.queue.submit([encoder.finish()])
                    self.stats["submits"] += 1
                with profiler.span("wait"):
                    self.synchronize()
                self._record(k, time.perf_counter() - start, 1, profiler.WALL_CLOCK_SYNCED, start)
            return
        for first in range(0, len(kernels), PROFILE_CHUNK):
            chunk = kernels[first : first + PROFILE_CHUNK]
            with profiler.span("encode"):
                encoder = self.device.create_command_encoder()
                self._timer = _DispatchTimer(self.device, encoder, 2 * len(chunk))
                spans, keep_alive = [], []
                try:
                    for k in chunk:
                        before = self._timer.count
                        self._encode_kernel(None, k, keep_alive, buffers)
                        spans.append((k, before, self._timer.count))
                finally:
                    timer, self._timer = self._timer, None
                staging = self._staging_buffer(timer.count * 16)
                timer.resolve_into(staging)
            with profiler.span("submit"):
                submitted = time.perf_counter()
                self.device.queue.submit([encoder.finish()])
                self.stats["submits"] += 1
            with profiler.span("wait"):
                begins, seconds = timer.read_spans(staging)
            for k, a, b in spans:
                # GPU clock -> host clock: offsets from the submit's first dispatch, from the submit
                start = submitted + float(begins[a] - begins[0]) if b > a else None
                self._record(k, float(sum(seconds[a:b])), b - a, profiler.GPU_TIMESTAMPS, start)

    def _record(self, k: Kernel, seconds: float, dispatches: int, timing: str, start: float | None = None) -> None:
        event = profiler.KernelEvent(
            "webgpu", k.name, tuple(k.fused_ops), seconds, profiler.bytes_moved(k, element_size), dispatches, timing, start
        )
        profiler.record(event)

    def _dispatch(self, compute, k: Kernel, source: str, outs: list, inputs: list, threads: int, grid) -> None:
        pipeline = self.pipeline(source, len(outs), len(inputs))
        group = self._bind_group([*outs, *inputs], len(outs))
        if self._dispatch_log is not None:
            self._dispatch_log.append((k, pipeline, [*outs, *inputs], len(outs), grid))
        if self._timer is not None:  # profiling: this dispatch in its own timed pass
            compute = self._timer.begin_pass()
        compute.set_pipeline(pipeline)
        compute.set_bind_group(0, group)
        compute.dispatch_workgroups(*grid)
        if self._timer is not None:
            compute.end()
        self.stats["dispatches"] += 1
        self.log_kernel(k, threads, None, source)

    @staticmethod
    def _bind(srcs, used: list[int], buffers: list, in_place: dict | None = None) -> tuple[list, list[tuple[str, str]], list[WebGPUBuffer]]:
        """Generator inputs for the operands `used` (aligned with srcs, None elsewhere),
        with deduplicated bindings: operands that share a buffer share one binding (a
        buffer is never bound twice in a dispatch). `in_place`: id of an output buffer ->
        its binding name, for an elementwise kernel whose operands may be its own outputs
        (see _in_place)."""
        inputs: list = [None] * len(srcs)
        decls, bound, names = [], [], dict(in_place or {})
        for i in used:
            s = srcs[i]
            buf = buffers[s.slot]
            if id(buf) not in names:
                names[id(buf)] = f"in{len(bound) + 1}"
                decls.append((names[id(buf)], wgsl.storage_type(s.dtype)))
                bound.append(buf)
            inputs[i] = wgsl.Input(names[id(buf)], s.view, s.dtype)
        return inputs, decls, bound

    def _source(self, k: Kernel, part: str, inputs: list, make) -> str:
        """The WGSL of `part` of kernel `k`, generated by `make()` once per distinct kernel.

        The text depends only on the kernel's structural key (which fixes shapes, views,
        dtypes and which operands share a buffer) and on the bindings, so a training step
        regenerates no source."""
        key = (part, k.code, tuple(x.binding if x is not None else None for x in inputs))
        src = self._sources.get(key)
        if src is None:
            src = make()
            self._sources[key] = src
            if len(self._sources) > SOURCE_CACHE_SIZE:
                self._sources.popitem(last=False)
        else:
            self._sources.move_to_end(key)
        return src

    @staticmethod
    def _in_place(k: Kernel, outs: list, buffers: list) -> dict | None:
        """id(buffer) -> output binding name for the outputs of elementwise kernel `k` that
        are also its operands (step capture writes a parameter's new value into its old
        one's buffer). WebGPU forbids binding a buffer twice when one binding is writable,
        so such an operand is read through the output's binding, at the element each
        thread writes: the operand must be the whole buffer, contiguous."""
        ids = {id(b): name for name, b in zip(wgsl.output_names(len(outs)), outs)}
        found = None
        for s in k.srcs:
            if id(buffers[s.slot]) in ids:
                view = s.view
                if not (view.shape == k.shape and view.is_contiguous and view.offset == 0):
                    raise RuntimeError(f"internal: {k.name} reads its output buffer through the view {view}")
                found = ids
        return found

    def _encode(self, compute, k: Kernel, outs: list, keep_alive: list, buffers: list) -> None:
        numel = math.prod(k.shape)
        if k.kind == "elementwise":
            if numel:
                in_place = self._in_place(k, outs, buffers)
                inputs, decls, bound = self._bind(k.srcs, wgsl.loads_in(k.exprs), buffers, in_place)
                src = self._source(k, "elementwise", inputs, lambda: wgsl.elementwise_source(k, inputs, decls))
                self._dispatch(compute, k, src, outs, bound, numel, self._grid(wgsl.groups_for(numel)))
        elif k.kind == "assign":
            region = k.arg.numel
            if region:
                inputs, decls, bound = self._bind(k.srcs, wgsl.loads_in(k.exprs), buffers)
                if any(b.buffer is outs[0].buffer for b in bound):  # storage.write_in_place rules this out
                    raise RuntimeError(f"internal: in-place write {k.name} reads the buffer it writes")
                src = self._source(k, ("assign", k.arg), inputs, lambda: wgsl.assign_source(k, inputs, decls))
                self._dispatch(compute, k, src, outs, bound, region, self._grid(wgsl.groups_for(region)))
        elif k.kind == "reduce":
            self._encode_reduce(compute, k, outs, keep_alive, buffers)
        elif k.kind == "matmul":
            self._encode_matmul(compute, k, outs, buffers)
        elif k.kind == "gather":
            if numel:
                inputs, decls, bound = self._bind(k.srcs, [0, 1], buffers)
                src = wgsl.gather_source(inputs[0], inputs[1], k.arg, k.out.dtype, decls)
                flagged = [*outs, self._error_flags()]
                self._dispatch(compute, k, src, flagged, bound, numel, self._grid(wgsl.groups_for(numel)))
        elif k.kind == "scatter_add":
            self._encode_scatter_add(compute, k, outs, buffers)
        elif k.kind == "pad":
            if numel:
                inputs, decls, bound = self._bind(k.srcs, list(range(len(k.srcs))), buffers)
                pads, value = k.arg
                src = wgsl.pad_source(inputs, pads, value, k.shape, k.out.dtype, decls)
                self._dispatch(compute, k, src, outs, bound, numel, self._grid(wgsl.groups_for(numel)))
        elif k.kind == "attention":
            self._encode_attention(compute, k, outs, buffers)
        elif k.kind == "rows":
            self._encode_rows(compute, k, outs, keep_alive, buffers)
        else:
            raise NotImplementedError(f"webgpu: no kernel for {k.kind}")

    def _encode_reduce(self, compute, k: Kernel, outs: list, keep_alive: list, buffers: list) -> None:
        axes, in_shape = tuple(k.arg), k.pre_shape
        outputs = math.prod(k.shape)
        if outputs == 0:
            return
        check_index_range(k.name, in_shape)
        t = wgsl.wgsl_type(k.pre.dtype)
        out_types = [wgsl.storage_type(k.out.dtype)]
        detail = wgsl.kernel_detail(k)
        pre_used, epi_used = wgsl.loads_in([k.pre]), wgsl.loads_in(k.exprs)
        fast = wgsl.fast_dim(in_shape, [k.srcs[i].view for i in pre_used])
        plan = wgsl.reduce_plan(in_shape, axes, self.reduce_work, self.subgroups, fast=fast)
        if plan.chunks == 1:
            inputs, decls, bound = self._bind(k.srcs, sorted(set(pre_used) | set(epi_used)), buffers)

            def one_pass() -> str:
                functions = "\n\n".join(
                    [
                        wgsl.input_value_fn(k.pre, inputs, in_shape, axes),
                        wgsl.reduce_epilogue_fn(k.exprs[0], inputs, k.shape, t),
                    ]
                )
                bindings = wgsl.bindings_code(out_types, decls)
                return wgsl.reduce_source(k.name, k.op, t, functions, bindings, in_shape, axes, plan, True, detail)

            src = self._source(k, ("reduce", plan), inputs, one_pass)
            self._dispatch_reduce(compute, k, src, outs, bound, outputs, plan)
            return
        # pass 1: outputs x chunks partials of the prologue; pass 2: reduce them + epilogue
        segments = outputs * plan.chunks
        partials = self.pool.allocate(segments * 4, "reduction partials")
        keep_alive.append(partials)
        inputs, decls, bound = self._bind(k.srcs, pre_used, buffers)

        def first_pass() -> str:
            functions = wgsl.input_value_fn(k.pre, inputs, in_shape, axes)
            bindings = wgsl.bindings_code([t], decls)
            return wgsl.reduce_source(k.name, k.op, t, functions, bindings, in_shape, axes, plan, False, detail)

        src = self._source(k, ("reduce pass 1", plan), inputs, first_pass)
        self._dispatch_reduce(compute, k, src, [partials], bound, segments, plan)

        part_shape = (outputs, plan.chunks)
        partial_dtype = float32 if wgsl.is_half(k.pre.dtype) else k.pre.dtype  # (partials are of type t)
        srcs = (*k.srcs, Operand(len(buffers), View.contiguous(part_shape), partial_dtype))
        second = Load(len(k.srcs), partial_dtype)
        inputs, decls, bound = self._bind(srcs, [*epi_used, len(k.srcs)], [*buffers, partials])
        plan2 = wgsl.reduce_plan(part_shape, (1,), self.reduce_work, self.subgroups, split=False)

        def second_pass() -> str:
            functions = "\n\n".join(
                [
                    wgsl.input_value_fn(second, inputs, part_shape, (1,)),
                    wgsl.reduce_epilogue_fn(k.exprs[0], inputs, k.shape, t),
                ]
            )
            bindings = wgsl.bindings_code(out_types, decls)
            return wgsl.reduce_source(k.name, k.op, t, functions, bindings, part_shape, (1,), plan2, True, detail)

        src = self._source(k, ("reduce pass 2", plan2), inputs, second_pass)
        self._dispatch_reduce(compute, k, src, outs, bound, outputs, plan2)

    def _dispatch_reduce(self, compute, k: Kernel, src: str, outs: list, bound: list, segments: int, plan) -> None:
        """Dispatch a reduce pass: plan.per_group segments per workgroup, the grid folded."""
        groups = -(-segments // plan.per_group)
        self._dispatch(compute, k, src, outs, bound, segments * plan.lanes, self._grid(groups))

    def _encode_matmul(self, compute, k: Kernel, outs: list, buffers: list) -> None:
        m, n = k.shape[-2], k.shape[-1]
        batch = math.prod(k.shape[:-2])
        if m == 0 or n == 0 or batch == 0:
            return
        t = wgsl.wgsl_type(k.srcs[0].dtype)
        transposed = tuple(s.view.strides[-1] != 1 and s.view.strides[-2] == 1 for s in k.srcs[:2])
        variant = self.matmul_tuner.variant(m, n, k.srcs[0].view.shape[-1], batch, t, transposed)
        grid = variant.grid(m, n, batch)
        if max(grid) > self.max_groups:
            raise RuntimeError(f"matmul of shape {k.shape} needs a grid {grid} beyond {self.max_groups} per dimension")
        inputs, decls, bound = self._bind(k.srcs, sorted({0, 1} | set(wgsl.loads_in(k.exprs))), buffers)

        def make() -> str:
            epilogue = wgsl.matmul_epilogue_fn(k.exprs[0], inputs, k.shape, t)
            bindings = wgsl.bindings_code([wgsl.storage_type(k.out.dtype)], decls)
            return wgsl.matmul_source(inputs[0], inputs[1], k.shape, epilogue, bindings, wgsl.kernel_detail(k), variant)

        src = self._source(k, ("matmul", variant.name), inputs, make)
        self._dispatch(compute, k, src, outs, bound, m * n * batch, grid)

    def time_dispatch(self, source: str, arrays: list[np.ndarray], out_bytes: int, grid) -> float:
        """Seconds one dispatch of `source` takes (output binding 0 of `out_bytes`, then the
        arrays as inputs), timed once after a warm-up: by GPU timestamps where the adapter
        has them, else by the wall clock. It runs on buffers of its own, submitted apart
        from any kernels being encoded (the autotuner calls it while encoding)."""
        usage = wgpu.BufferUsage.STORAGE
        buffers = [self.device.create_buffer(size=max(MIN_BYTES, out_bytes), usage=usage)]
        buffers += [self.device.create_buffer_with_data(data=a, usage=usage) for a in arrays]
        pipeline = self.pipeline(source, 1, len(arrays))
        bgl, _ = self._layout(1, len(arrays))
        entries = [{"binding": i, "resource": {"buffer": b, "offset": 0, "size": b.size}} for i, b in enumerate(buffers)]
        group = self.device.create_bind_group(layout=bgl, entries=entries)

        def submit(timed: bool):
            encoder = self.device.create_command_encoder()
            timer = _DispatchTimer(self.device, encoder, 1) if timed else None
            compute = timer.begin_pass() if timer else encoder.begin_compute_pass()
            compute.set_pipeline(pipeline)
            compute.set_bind_group(0, group)
            compute.dispatch_workgroups(*grid)
            compute.end()
            if timer:
                timer.resolve_into(self._staging_buffer(16))
            self.device.queue.submit([encoder.finish()])
            return timer

        try:
            submit(False)  # warm-up
            if "timestamp-query" in self.device.features:
                return float(submit(True).read(self._staging_buffer(16))[0])
            start = time.perf_counter()
            submit(False)
            self.synchronize()
            return time.perf_counter() - start
        finally:
            for b in buffers:
                b.destroy()

    def _encode_attention(self, compute, k: Kernel, outs: list, buffers: list) -> None:
        if math.prod(k.shape) == 0:
            return
        grid = wgsl_attention.grid(k.arg, k.shape)
        if max(grid) > self.max_groups:
            raise RuntimeError(
                f"scaled_dot_product_attention: output {k.shape} needs a grid {grid} beyond {self.max_groups} "
                "workgroups per dimension; split the batch"
            )
        inputs, decls, bound = self._bind(k.srcs, list(range(len(k.srcs))), buffers)
        floats = self.workgroup_bytes // 4

        def make() -> str:
            return wgsl_attention.attention_source(k.arg, inputs, decls, wgsl.kernel_detail(k), floats)

        src = self._source(k, ("attention", k.arg, k.shape), inputs, make)
        self._dispatch(compute, k, src, outs, bound, math.prod(k.shape), grid)

    def _encode_rows(self, compute, k: Kernel, outs: list, keep_alive: list, buffers: list) -> None:
        """A row kernel (kernel.RowsArg): one dispatch reading each row once when a row fits
        in a workgroup's registers, else its parts one by one."""
        if math.prod(k.shape) == 0:
            return
        check_index_range(k.name, k.shape)
        layout = self.row_layout
        if not wgsl_rows.fits(k, layout):
            local = [buffers[s] for s in local_slots(k.outs, k.srcs)]
            local[: len(outs)] = outs
            for part in k.arg.parts:
                self._encode(compute, part, [local[o.slot] for o in part.outs], keep_alive, local)
            return
        inputs, decls, bound = self._bind(k.srcs, list(range(len(k.srcs))), buffers)
        subgroups = self.subgroups

        def make() -> str:
            return wgsl_rows.rows_source(k, inputs, decls, subgroups, layout)

        src = self._source(k, ("rows", subgroups, layout), inputs, make)
        self._dispatch(compute, k, src, outs, bound, math.prod(k.shape), self._grid(wgsl_rows.groups(k, layout)))

    def _encode_scatter_add(self, compute, k: Kernel, outs: list, buffers: list) -> None:
        numel = math.prod(k.shape)
        if numel == 0:
            return
        zero = wgsl.fill_source(k.shape, k.out.dtype, 0)
        self._dispatch(compute, k, zero, outs, [], numel, self._grid(wgsl.groups_for(numel)))
        inputs, decls, bound = self._bind(k.srcs, [0, 1], buffers)
        n_index = math.prod(inputs[1].view.shape)
        if n_index:
            src = wgsl.scatter_add_source(inputs[0], inputs[1], k.arg, k.shape, k.out.dtype, decls)
            flagged = [*outs, self._error_flags()]
            self._dispatch(compute, k, src, flagged, bound, n_index, self._grid(wgsl.groups_for(n_index)))


class _DispatchTimer:
    """GPU timestamps around each dispatch of one command encoder (for profiling)."""

    def __init__(self, device, encoder, capacity: int):
        self.encoder = encoder
        self.count = 0  # dispatches timed so far
        self.capacity = capacity
        self.queries = device.create_query_set(type=wgpu.QueryType.timestamp, count=2 * capacity)
        self.resolved = device.create_buffer(
            size=16 * capacity, usage=wgpu.BufferUsage.QUERY_RESOLVE | wgpu.BufferUsage.COPY_SRC
        )

    def begin_pass(self):
        if self.count >= self.capacity:
            raise RuntimeError("internal: more dispatches than timestamp slots while profiling")
        writes = {
            "query_set": self.queries,
            "beginning_of_pass_write_index": 2 * self.count,
            "end_of_pass_write_index": 2 * self.count + 1,
        }
        self.count += 1
        return self.encoder.begin_compute_pass(timestamp_writes=writes)

    def resolve_into(self, staging) -> None:
        if self.count:
            self.encoder.resolve_query_set(self.queries, 0, 2 * self.count, self.resolved, 0)
            self.encoder.copy_buffer_to_buffer(self.resolved, 0, staging, 0, 16 * self.count)

    def read(self, staging) -> np.ndarray:
        """Seconds per timed dispatch (after the submit; waits for the GPU)."""
        return self.read_spans(staging)[1]

    def read_spans(self, staging) -> tuple[np.ndarray, np.ndarray]:
        """(begin, duration) of each timed dispatch in seconds, begins counted from the first
        dispatch's on the GPU's clock (after the submit; waits for the GPU)."""
        if not self.count:
            return np.zeros(0), np.zeros(0)
        staging.map_sync(wgpu.MapMode.READ, 0, 16 * self.count)
        try:
            ticks = np.frombuffer(staging.read_mapped(0, 16 * self.count), dtype=np.uint64).reshape(-1, 2)
        finally:
            staging.unmap()
        # WebGPU timestamps are nanoseconds (subtracted as integers: float64 would round
        # large counter values); a reset counter can make end < begin
        ticks = ticks.astype(np.int64) - np.int64(ticks[0, 0])
        begins = ticks[:, 0].astype(np.float64) / 1e9
        return begins, np.maximum(ticks[:, 1] - ticks[:, 0], 0).astype(np.float64) / 1e9


def check_index_range(what: str, shape: tuple[int, ...]) -> None:
    """Refuse a reduction whose lane positions (up to numel + a workgroup, as its loops
    step past the end) would overflow WGSL's 32-bit signed indices."""
    numel = math.prod(shape)
    if numel > wgsl.INT_MAX - wgsl.WORKGROUP:
        raise RuntimeError(
            f"webgpu: reduction {what} over shape {tuple(shape)} covers {numel} elements, past the "
            f"{wgsl.INT_MAX - wgsl.WORKGROUP} that its 32-bit indices reach; reduce in pieces (e.g. sum "
            "slices, then sum the results) or use device='numpy'"
        )


# --------------------------------------------------------------------------- dtype conversion
DEVICE_NP = {"f16": np.dtype(np.float16), "f32": np.dtype(np.float32), "i32": np.dtype(np.int32), "u32": np.dtype(np.uint32)}


def device_np_dtype(dtype: DType) -> np.dtype:
    return DEVICE_NP[wgsl.storage_type(dtype)]


def element_size(dtype: DType) -> int:
    """Bytes per element in a device buffer (2 for float16, else 4)."""
    return DEVICE_NP[wgsl.storage_type(dtype)].itemsize


def to_device_array(flat: np.ndarray, dtype: DType) -> np.ndarray:
    """The host array in its 32-bit device representation (int64 range-checked)."""
    wgsl.wgsl_type(dtype)  # float64: clear TypeError
    if dtype.is_bool:
        return np.ascontiguousarray(flat != 0, dtype=np.uint32)
    if dtype.is_int:
        if flat.size and flat.dtype.itemsize > 4:
            lo, hi = int(flat.min()), int(flat.max())
            if lo < wgsl.INT_MIN or hi > wgsl.INT_MAX:
                bad = lo if lo < wgsl.INT_MIN else hi
                raise OverflowError(
                    f"value {bad} does not fit in 32 bits: the webgpu device stores {dtype.name} as int32 "
                    f"(range {wgsl.INT_MIN}..{wgsl.INT_MAX}); use device='numpy' for larger integers"
                )
        return np.ascontiguousarray(flat, dtype=np.int32)
    return np.ascontiguousarray(flat, dtype=device_np_dtype(dtype))


def from_device_array(raw: np.ndarray, dtype: DType) -> np.ndarray:
    if dtype.is_bool:
        return raw != 0
    return raw.astype(dtype.np, copy=True)
