"""The matmul autotuner of the WebGPU backend: which tiling (wgsl.MATMUL_VARIANTS) to use
for a matmul, per adapter and shape class.

The first time a large enough matmul of a new shape class (dtype, the power-of-two buckets
of batch, M, N and K, and whether A or B is stored transposed) is run, every variant is
compiled and timed on random operands of that class (the fastest of three dispatches; GPU
timestamps where the adapter has `timestamp-query`, else the wall clock; M, N and K capped
at 512 on a CPU adapter, 4096 on a GPU), and the fastest is kept, in memory and on disk in
`~/.cache/smolgrad/autotune-<adapter>.json`. Small matmuls use a fixed rule instead: timing
them would cost more than it could save.

The "subgroup" variants (wgsl.MATMUL_VARIANTS) assume subgroups of wgsl.SUBGROUP_LANES lanes
numbered as the workgroup's invocations (a software adapter's SIMD lanes): they are candidates
only on a software adapter where a probe dispatch finds exactly that (see subgroup_variants_ok),
and there, being faster everywhere, the only ones besides tiled64.

`SMOLGRAD_AUTOTUNE=0` turns tuning off (the fixed rule everywhere; cached choices unused);
`SMOLGRAD_AUTOTUNE_CACHE=<folder>` keeps the cache file there instead. `forced(name)` makes
every matmul use one variant (tests run each variant that way).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from pathlib import Path
from typing import Iterator

import numpy as np

from ..dtypes import float32
from ..engine.kernel import Acc
from ..view import View
from . import wgsl

TUNE_MIN_FLOPS = 2 * 256**3  # smaller matmuls take the fixed rule
CPU_MAX_DIM = 512  # a tuning run's M, N and K are at most this on a CPU (software) adapter ...
GPU_MAX_DIM = 4096  # ... and this on a GPU
TUNE_MAX_FLOPS = {"CPU": 2 * 512**3, "GPU": 2 * 4096**3}  # batch is cut to stay under this
CACHE_VERSION = 1

# one workgroup of 32: 1 for each invocation whose subgroup has SUBGROUP_LANES lanes and that is
# lane lid % SUBGROUP_LANES of it (what the subgroup variants assume)
SUBGROUP_PROBE = """@group(0) @binding(0) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(32)
fn main(
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(subgroup_size) size: u32,
) {
    out[lid] = select(0u, 1u, size == LANESu && lane == lid % LANESu);
}
""".replace("LANES", str(wgsl.SUBGROUP_LANES))

_forced: str | None = None


@contextlib.contextmanager
def forced(name: str) -> Iterator[None]:
    """Use matmul variant `name` for every matmul in this block (for tests and benchmarks)."""
    global _forced
    if name not in wgsl.MATMUL_VARIANTS:
        raise ValueError(f"unknown matmul variant {name!r}; the variants are {sorted(wgsl.MATMUL_VARIANTS)}")
    saved, _forced = _forced, name
    try:
        yield
    finally:
        _forced = saved


def enabled() -> bool:
    return os.environ.get("SMOLGRAD_AUTOTUNE", "1") != "0"


def cache_dir() -> Path:
    folder = os.environ.get("SMOLGRAD_AUTOTUNE_CACHE")
    return Path(folder) if folder else Path.home() / ".cache" / "smolgrad"


def cache_path(adapter_info: dict) -> Path:
    name = f"{adapter_info.get('device', '')}-{adapter_info.get('backend_type', '')}-{adapter_info.get('driver', '')}"
    slug = re.sub(r"[^A-Za-z0-9.]+", "-", name).strip("-").lower() or "adapter"
    return cache_dir() / f"autotune-{slug[:100]}.json"


def _bucket(x: int, cap: int) -> int:
    """ceil(log2(min(x, cap))): the shape class of one dimension."""
    return max(0, math.ceil(math.log2(max(1, min(x, cap)))))


def subgroup_variants_ok(backend) -> bool:
    """Whether the adapter runs subgroups as the subgroup variants assume (a probe dispatch):
    its `subgroup` feature, SUBGROUP_LANES lanes each, numbered as the workgroup's invocations."""
    if "subgroup" not in backend.device.features:
        return False
    import wgpu  # (only the webgpu backend gets here)

    device = backend.device
    buf = device.create_buffer(size=32 * 4, usage=wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_SRC)
    try:
        pipeline = backend.pipeline(SUBGROUP_PROBE, 1, 0)
        bgl, _ = backend._layout(1, 0)
        group = device.create_bind_group(layout=bgl, entries=[{"binding": 0, "resource": {"buffer": buf, "offset": 0, "size": buf.size}}])
        encoder = device.create_command_encoder()
        compute = encoder.begin_compute_pass()
        compute.set_pipeline(pipeline)
        compute.set_bind_group(0, group)
        compute.dispatch_workgroups(1, 1, 1)
        compute.end()
        device.queue.submit([encoder.finish()])
        flags = np.frombuffer(device.queue.read_buffer(buf), dtype=np.uint32)
        return bool(np.all(flags == 1))
    except Exception:  # a driver that cannot compile the probe cannot run the variants either
        return False
    finally:
        buf.destroy()


def fixed_rule(m: int, n: int, k: int, batch: int, software: bool, subgroups: bool = False) -> str:
    """The variant used without tuning (`subgroups`: the subgroup variants can run)."""
    if software:  # a CPU runs threads as SIMD lanes: big register blocks, vec4 loads, no barriers
        # (small ones keep the tiled kernel: it compiles several times faster on lavapipe, and
        # a changing fused epilogue means a new compile per step)
        if 2 * m * n * k * batch < TUNE_MIN_FLOPS:
            return "tiled64"
        return "subgroup1_16x8v" if subgroups else "direct16x1_16x8v"
    if m * batch <= 32 or n <= 32:
        return "tiled32"
    return "tiled64"


class MatmulTuner:
    """Chooses (and remembers) a matmul variant for each shape class on one WebGPU backend."""

    def __init__(self, backend):
        self.backend = backend
        info = backend.adapter_info
        self.software = info.get("adapter_type") == "CPU"
        self.max_dim = CPU_MAX_DIM if self.software else GPU_MAX_DIM
        self.max_flops = TUNE_MAX_FLOPS["CPU" if self.software else "GPU"]
        self.path = cache_path(info)
        self.choices: dict[str, str] | None = None  # loaded on first use
        self.timings: dict[str, dict[str, float]] = {}  # class -> variant -> seconds (this process)
        self._candidates: dict[str, wgsl.MatmulVariant] | None = None

    @property
    def candidates(self) -> dict[str, wgsl.MatmulVariant]:
        """The variants tuned and run on this adapter: on a software adapter where the probe
        allows the subgroup ones, only those and DEFAULT_MATMUL (on lavapipe
        every direct variant lost to a subgroup one at every shape tried, from N = 8 to
        M = 8, and each candidate costs a compile of about a second when a class is tuned)."""
        if self._candidates is None:
            # (software adapters only: a GPU's compiler may pick another subgroup size for
            # another shader than the probe's)
            ok = self.software and subgroup_variants_ok(self.backend)
            variants = wgsl.MATMUL_VARIANTS
            if ok:
                keep = {name for name, v in variants.items() if v.kind == "subgroup"} | {wgsl.DEFAULT_MATMUL}
            else:
                keep = {name for name, v in variants.items() if v.kind != "subgroup"}
            self._candidates = {name: v for name, v in variants.items() if name in keep}
        return self._candidates

    @property
    def subgroups(self) -> bool:
        """Whether the subgroup variants are among the candidates."""
        return any(v.kind == "subgroup" for v in self.candidates.values())

    def key(self, m: int, n: int, k: int, batch: int, t: str, transposed: tuple[bool, bool] = (False, False)) -> str:
        b = [_bucket(x, self.max_dim) for x in (batch, m, n, k)]
        return f"{t} b{b[0]} m{b[1]} n{b[2]} k{b[3]}" + (" aT" if transposed[0] else "") + (" bT" if transposed[1] else "")

    def variant(self, m: int, n: int, k: int, batch: int, t: str, transposed: tuple[bool, bool] = (False, False)) -> wgsl.MatmulVariant:
        """The variant for this matmul: forced, tuned (cached) or by the fixed rule.
        `transposed`: whether A and B are stored column by column (nn.Linear's weight and its
        gradient's g^T), which the variants read differently."""
        if _forced is not None:
            if wgsl.MATMUL_VARIANTS[_forced].kind == "subgroup" and not self.subgroups:
                raise RuntimeError(
                    f"matmul variant {_forced!r} needs subgroups of {wgsl.SUBGROUP_LANES} lanes, which this adapter "
                    f"({self.backend.adapter_info.get('device', '?')}) does not have; use one of {sorted(self.candidates)}"
                )
            return wgsl.MATMUL_VARIANTS[_forced]
        big = 2 * m * n * k * batch >= TUNE_MIN_FLOPS
        rule = fixed_rule(m, n, k, batch, self.software, big and self.software and self.subgroups)
        if not enabled() or t != "f32" or not big:
            return wgsl.MATMUL_VARIANTS[rule]
        key = self.key(m, n, k, batch, t, transposed)
        choices = self._load()
        name = choices.get(key)
        if name not in self.candidates:
            name = self.tune(m, n, k, batch, transposed)
            choices[key] = name
            self._save()
        return wgsl.MATMUL_VARIANTS[name]

    # ----- the cache file
    def _load(self) -> dict[str, str]:
        if self.choices is None:
            self.choices = {}
            try:
                data = json.loads(self.path.read_text())
                # choices made among other variants (an older smolgrad) are tuned again
                if data.get("version") == CACHE_VERSION and data.get("variants") == sorted(self.candidates):
                    self.choices = {str(k): str(v) for k, v in data.get("choices", {}).items()}
            except (OSError, ValueError, AttributeError):
                pass  # no cache yet, or an unreadable one: tune again
        return self.choices

    def _save(self) -> None:
        data = {
            "version": CACHE_VERSION,
            "adapter": self.backend.adapter_info.get("device", ""),
            "variants": sorted(self.candidates),
            "choices": self.choices,
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
            tmp.replace(self.path)
        except OSError:
            pass  # a read-only home: keep the choice for this process only

    # ----- timing
    def tune(self, m: int, n: int, k: int, batch: int, transposed: tuple[bool, bool] = (False, False)) -> str:
        """Time every candidate (the fastest of three rounds) on a shape of this class; the fastest one's name."""
        m, n, k = (min(x, self.max_dim) for x in (m, n, k))
        batch = max(1, min(batch, self.max_flops // (2 * m * n * k)))
        rng = np.random.default_rng(0)
        a = rng.standard_normal(batch * m * k).astype(np.float32)
        b = rng.standard_normal(batch * k * n).astype(np.float32)
        runs = {name: (tuning_source(v, (batch, m, n), k, transposed), v.grid(m, n, batch)) for name, v in self.candidates.items()}
        times = {name: math.inf for name in runs}
        for _ in range(3):  # in rounds over all variants: a change in the machine's load hits them all
            for name, (src, grid) in runs.items():
                times[name] = min(times[name], self.backend.time_dispatch(src, [a, b], batch * m * n * 4, grid))
        self.timings[self.key(m, n, k, batch, "f32", transposed)] = times
        return min(times, key=times.get)


def tuning_source(
    v: wgsl.MatmulVariant, shape: tuple[int, int, int], k: int, transposed: tuple[bool, bool] = (False, False)
) -> str:
    """The shader of variant `v` for float32 operands (batch, m, k) @ (batch, k, n), row-major
    or, where `transposed` says, column-major."""
    batch, m, n = shape
    a_view = View((batch, m, k), (m * k, 1, m)) if transposed[0] else View.contiguous((batch, m, k))
    a = wgsl.Input("in1", a_view, float32)
    b_view = View((batch, k, n), (k * n, 1, k)) if transposed[1] else View.contiguous((batch, k, n))
    b = wgsl.Input("in2", b_view, float32)
    epilogue = wgsl.matmul_epilogue_fn(Acc(float32), [], shape, "f32")
    bindings = wgsl.bindings_code(["f32"], [("in1", "f32"), ("in2", "f32")])
    return wgsl.matmul_source(a, b, shape, epilogue, bindings, "autotune", v)

