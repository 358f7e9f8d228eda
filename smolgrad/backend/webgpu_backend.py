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
import weakref
from collections import OrderedDict
from typing import Any

import numpy as np

from ..dtypes import DType
from ..ops import ELEMENTWISE, REDUCE, Op
from ..scheduler import Kernel, Operand
from ..view import View
from . import wgsl
from .base import Backend

try:
    import wgpu
except ImportError as e:  # pragma: no cover - device.py reports this
    raise ImportError(f"the webgpu device needs the wgpu package (pip install wgpu): {e}") from e

MIN_BYTES = 4  # zero-size tensors still get a (tiny) buffer
MAX_GROUPS_DEFAULT = 65535
BIND_GROUP_CACHE_SIZE = 2048
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


def _choose_adapter():
    """The adapter WebGPUBackend uses: high-performance, primary backends first."""
    adapters = _all_adapters()
    if not adapters:
        return None
    return min(adapters, key=_adapter_rank)


def _adapter_key(info) -> tuple:
    return (info.get("device"), info.get("backend_type"), info.get("adapter_type"), info.get("description"))


def enumerate_adapters() -> list[dict]:
    """Every WebGPU adapter: name, backend, type, vendor, description, and `selected`
    for the one WebGPUBackend uses."""
    adapters = _all_adapters()
    chosen = min(adapters, key=_adapter_rank) if adapters else None
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
                "selected": chosen is not None and _adapter_key(info) == _adapter_key(chosen.info),
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

    __slots__ = ("buffer", "nbytes", "capacity", "_pool", "__weakref__")

    def __init__(self, buffer, nbytes: int, capacity: int, pool: BufferPool):
        self.buffer = buffer
        self.nbytes = nbytes
        self.capacity = capacity
        self._pool = weakref.ref(pool)

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
            self.stats["bytes_allocated"] += capacity
            self.stats["peak_bytes"] = max(self.stats["peak_bytes"], self.stats["bytes_allocated"])
        return WebGPUBuffer(buffer, max(MIN_BYTES, (nbytes + 3) // 4 * 4), capacity, self)

    def release(self, buffer, capacity: int) -> None:
        self.free.setdefault(capacity, []).append(buffer)

    def clear(self) -> None:
        """Destroy every pooled (unused) buffer."""
        for capacity, buffers in self.free.items():
            for b in buffers:
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
        features = [f for f in ("timestamp-query",) if f in adapter.features]
        # omitting required_limits gives the device the adapter's maximum limits
        with _quiet_driver_stderr():
            self.device = adapter.request_device_sync(required_features=features)
        limits = self.device.limits
        self.max_groups = int(limits.get("max-compute-workgroups-per-dimension", MAX_GROUPS_DEFAULT))
        self.max_binding = int(limits.get("max-storage-buffer-binding-size", 128 * 2**20))
        self.max_storage_buffers = int(limits.get("max-storage-buffers-per-shader-stage", 8))
        self.stats = {
            "dispatches": 0,
            "submits": 0,
            "kernels_compiled": 0,
            "pipeline_cache_hits": 0,
            "bytes_allocated": 0,  # bytes of GPU storage buffers that exist (in use or pooled)
            "peak_bytes": 0,
            "pool_hits": 0,
        }
        self.pool = BufferPool(self.device, self.stats, self.max_binding)
        self._pipelines: dict[str, Any] = {}
        self._layouts: dict[int, tuple] = {}
        self._bind_groups: OrderedDict = OrderedDict()
        self._staging = None
        self._staging_size = 0

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
    def upload(self, flat: np.ndarray, dtype: DType) -> WebGPUBuffer:
        data = to_device_array(np.asarray(flat).reshape(-1), dtype)
        buf = self.pool.allocate(data.nbytes, f"tensor of {data.size} {dtype.name} elements")
        if data.nbytes:
            self.device.queue.write_buffer(buf.buffer, 0, data)
        return buf

    def download(self, buf: WebGPUBuffer, dtype: DType, offset: int, count: int) -> np.ndarray:
        wgsl.wgsl_type(dtype)
        if count <= 0:
            return np.zeros(0, dtype=dtype.np)
        nbytes = count * 4
        staging = self._staging_buffer(nbytes)
        encoder = self.device.create_command_encoder()
        encoder.copy_buffer_to_buffer(buf.buffer, offset * 4, staging, 0, nbytes)
        self.device.queue.submit([encoder.finish()])
        self.stats["submits"] += 1
        staging.map_sync(wgpu.MapMode.READ, 0, nbytes)
        try:
            raw = staging.read_mapped(0, nbytes)  # a copy
        finally:
            staging.unmap()
        return from_device_array(np.frombuffer(raw, dtype=device_np_dtype(dtype)), dtype)

    def _staging_buffer(self, nbytes: int):
        if self._staging is None or self._staging_size < nbytes:
            if self._staging is not None:
                self._staging.destroy()
            self._staging_size = max(size_class(nbytes), 64 * 1024)
            self._staging = self.device.create_buffer(
                size=self._staging_size, usage=wgpu.BufferUsage.MAP_READ | wgpu.BufferUsage.COPY_DST
            )
        return self._staging

    def synchronize(self) -> None:
        """Wait for all submitted work: a copy submitted after it, then a map."""
        staging = self._staging_buffer(4)
        scratch = self.pool.allocate(4, "sync scratch")
        encoder = self.device.create_command_encoder()
        encoder.copy_buffer_to_buffer(scratch.buffer, 0, staging, 0, 4)
        self.device.queue.submit([encoder.finish()])
        staging.map_sync(wgpu.MapMode.READ, 0, 4)
        staging.unmap()

    # ----- pipelines and bind groups
    def _layout(self, n_inputs: int) -> tuple:
        """(bind group layout, pipeline layout) for 1 output + n read-only inputs."""
        if n_inputs + 1 > self.max_storage_buffers:
            raise RuntimeError(
                f"kernel needs {n_inputs + 1} storage buffers but this device allows "
                f"{self.max_storage_buffers} per shader stage"
            )
        if n_inputs not in self._layouts:
            entries = [
                {
                    "binding": i,
                    "visibility": wgpu.ShaderStage.COMPUTE,
                    "buffer": {
                        "type": wgpu.BufferBindingType.storage if i == 0 else wgpu.BufferBindingType.read_only_storage
                    },
                }
                for i in range(n_inputs + 1)
            ]
            bgl = self.device.create_bind_group_layout(entries=entries)
            self._layouts[n_inputs] = (bgl, self.device.create_pipeline_layout(bind_group_layouts=[bgl]))
        return self._layouts[n_inputs]

    def pipeline(self, source: str, n_inputs: int):
        """The compute pipeline of a WGSL source, compiled once and cached."""
        key = (source, n_inputs)
        pipe = self._pipelines.get(key)
        if pipe is not None:
            self.stats["pipeline_cache_hits"] += 1
            return pipe
        _, layout = self._layout(n_inputs)
        try:
            module = self.device.create_shader_module(code=source)
            pipe = self.device.create_compute_pipeline(layout=layout, compute={"module": module, "entry_point": "main"})
        except Exception as e:
            numbered = "\n".join(f"{i + 1:4d}  {line}" for i, line in enumerate(source.splitlines()))
            raise ShaderCompileError(f"WGSL shader failed to compile: {e}\n--- source ---\n{numbered}") from e
        self.stats["kernels_compiled"] += 1
        self._pipelines[key] = pipe
        return pipe

    def _bind_group(self, buffers: list[WebGPUBuffer]):
        key = tuple((id(b.buffer), b.nbytes) for b in buffers)
        entry = self._bind_groups.get(key)
        if entry is not None:
            self._bind_groups.move_to_end(key)
            return entry[0]
        bgl, _ = self._layout(len(buffers) - 1)
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
    def run(self, kernels: list[Kernel]) -> None:
        """Encode every kernel into one compute pass and submit once."""
        encoder = self.device.create_command_encoder()
        compute = encoder.begin_compute_pass()
        keep_alive = []  # temporaries that must live until the submit
        for k in kernels:
            out = self.pool.allocate(math.prod(k.out.shape) * 4, f"{k.name} output of shape {k.out.shape}")
            wgsl.wgsl_type(k.out.dtype)  # raises a clear TypeError for float64
            self._encode(compute, k, out, keep_alive)
            k.out.realized = out
        compute.end()
        self.device.queue.submit([encoder.finish()])
        self.stats["submits"] += 1

    def _dispatch(self, compute, source: str, buffers: list[WebGPUBuffer], grid: tuple[int, int, int]) -> None:
        compute.set_pipeline(self.pipeline(source, len(buffers) - 1))
        compute.set_bind_group(0, self._bind_group(buffers))
        compute.dispatch_workgroups(*grid)
        self.stats["dispatches"] += 1

    def _inputs(self, srcs: tuple[Operand, ...]) -> tuple[list[wgsl.Input], list[tuple[str, str]], list[WebGPUBuffer]]:
        """Generator inputs with deduplicated bindings: operands that share a buffer
        share one binding (one buffer is never bound twice in a dispatch)."""
        inputs, decls, buffers, names = [], [], [], {}
        for s in srcs:
            if s.is_const:
                inputs.append(wgsl.Input(None, s.view, s.dtype, s.const))
                continue
            buf = s.node.realized
            if id(buf) not in names:
                names[id(buf)] = f"in{len(buffers) + 1}"
                decls.append((names[id(buf)], wgsl.wgsl_type(s.dtype)))
                buffers.append(buf)
            inputs.append(wgsl.Input(names[id(buf)], s.view, s.dtype))
        return inputs, decls, buffers

    def _materialise_consts(self, compute, k: Kernel, keep_alive: list) -> tuple[Operand, ...]:
        """Constant operands of non-elementwise kernels (e.g. the sum of an expanded
        constant) become small filled buffers, so those templates only read buffers."""
        srcs = []
        for s in k.srcs:
            if s.is_const:
                shape = s.view.shape
                filled = self.pool.allocate(math.prod(shape) * 4, f"constant of shape {shape}")
                keep_alive.append(filled)
                if math.prod(shape):
                    src = wgsl.elementwise_source(Op.CONST, shape, s.dtype, [], [], s.const)
                    self._dispatch(compute, src, [filled], self._grid(wgsl.groups_for(math.prod(shape))))
                node = _Realized(filled)
                keep_alive.append(node)
                s = Operand(node, View.contiguous(shape), s.dtype)
            srcs.append(s)
        return tuple(srcs)

    def _encode(self, compute, k: Kernel, out: WebGPUBuffer, keep_alive: list) -> None:
        numel = math.prod(k.out.shape)
        srcs = k.srcs
        if k.op is not Op.CONST and k.op not in ELEMENTWISE and any(s.is_const for s in srcs):
            srcs = self._materialise_consts(compute, k, keep_alive)
        inputs, decls, buffers = self._inputs(srcs)
        if k.op is Op.CONST or k.op in ELEMENTWISE:
            if numel:
                src = wgsl.elementwise_source(k.op, k.out.shape, k.out.dtype, inputs, decls, k.arg)
                self._dispatch(compute, src, [out, *buffers], self._grid(wgsl.groups_for(numel)))
        elif k.op in REDUCE:
            self._encode_reduce(compute, k, inputs[0], decls, buffers, out, keep_alive)
        elif k.op is Op.MATMUL:
            self._encode_matmul(compute, k, inputs, buffers, out)
        elif k.op is Op.GATHER:
            if numel:
                src = wgsl.gather_source(inputs[0], inputs[1], k.arg, k.out.dtype, decls)
                self._dispatch(compute, src, [out, *buffers], self._grid(wgsl.groups_for(numel)))
        elif k.op is Op.SCATTER_ADD:
            self._encode_scatter_add(compute, k, inputs, decls, buffers, out)
        elif k.op is Op.PAD:
            if numel:
                pads, value = k.arg
                src = wgsl.pad_source(inputs[0], pads, value, k.out.shape, k.out.dtype, decls)
                self._dispatch(compute, src, [out, *buffers], self._grid(wgsl.groups_for(numel)))
        else:
            raise NotImplementedError(f"webgpu: no kernel for {k.op.name}")

    def _encode_reduce(self, compute, k, x: wgsl.Input, decls, buffers, out, keep_alive) -> None:
        axes = tuple(k.arg)
        outputs = math.prod(k.out.shape)
        extent = math.prod(x.view.shape[d] for d in axes)
        if outputs == 0:
            return
        out_type = wgsl.wgsl_type(k.out.dtype)
        if extent <= 64 or outputs >= 4096:
            src, _, _ = wgsl.reduce_source(k.op, x, axes, out_type, 1, one_thread=True)
            self._dispatch(compute, src, [out, *buffers], self._grid(wgsl.groups_for(outputs)))
            return
        chunks = 1 if outputs >= 64 else min(1024, -(-extent // 4096))
        if chunks == 1:
            src, _, _ = wgsl.reduce_source(k.op, x, axes, out_type, 1, one_thread=False)
            self._dispatch(compute, src, [out, *buffers], self._grid(outputs))
            return
        # pass 1: outputs x chunks partials; pass 2: reduce the chunks of each output
        partials = self.pool.allocate(outputs * chunks * 4, "reduction partials")
        keep_alive.append(partials)
        src, _, _ = wgsl.reduce_source(k.op, x, axes, out_type, chunks, one_thread=False)
        self._dispatch(compute, src, [partials, *buffers], self._grid(outputs * chunks))
        second = wgsl.Input("in1", View.contiguous((outputs, chunks)), k.out.dtype)
        src, _, _ = wgsl.reduce_source(k.op, second, (1,), out_type, 1, one_thread=chunks <= 64)
        groups = wgsl.groups_for(outputs) if chunks <= 64 else outputs
        self._dispatch(compute, src, [out, partials], self._grid(groups))

    def _encode_matmul(self, compute, k, inputs, buffers, out) -> None:
        a, b = inputs
        m, n = k.out.shape[-2], k.out.shape[-1]
        batch = math.prod(k.out.shape[:-2])
        if m == 0 or n == 0 or batch == 0:
            return
        grid = (-(-n // 64), -(-m // 64), batch)
        if max(grid) > self.max_groups:
            raise RuntimeError(f"matmul of shape {k.out.shape} needs a grid {grid} beyond {self.max_groups} per dimension")
        src = wgsl.matmul_source(a, b, k.out.shape, k.out.dtype)
        self._dispatch(compute, src, [out, *buffers], grid)

    def _encode_scatter_add(self, compute, k, inputs, decls, buffers, out) -> None:
        numel = math.prod(k.out.shape)
        if numel == 0:
            return
        zero = wgsl.elementwise_source(Op.CONST, k.out.shape, k.out.dtype, [], [], 0)
        self._dispatch(compute, zero, [out], self._grid(wgsl.groups_for(numel)))
        n_index = math.prod(inputs[1].view.shape)
        if n_index:
            src = wgsl.scatter_add_source(inputs[0], inputs[1], k.arg, k.out.shape, k.out.dtype, decls)
            self._dispatch(compute, src, [out, *buffers], self._grid(wgsl.groups_for(n_index)))


class _Realized:
    """Stands in for a computed node: what an Operand needs of it is `.realized`."""

    __slots__ = ("realized",)

    def __init__(self, realized: WebGPUBuffer):
        self.realized = realized


# --------------------------------------------------------------------------- dtype conversion
def device_np_dtype(dtype: DType) -> np.dtype:
    return {"f32": np.dtype(np.float32), "i32": np.dtype(np.int32), "u32": np.dtype(np.uint32)}[wgsl.wgsl_type(dtype)]


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
    return np.ascontiguousarray(flat, dtype=np.float32)


def from_device_array(raw: np.ndarray, dtype: DType) -> np.ndarray:
    if dtype.is_bool:
        return raw != 0
    return raw.astype(dtype.np, copy=True)
