"""The live view's WebGPU render pipelines, on the same wgpu device as the tensors.

A frame is one render pass: the host-built triangles (backgrounds, text, curves) in one
draw, then one quad per tensor panel whose fragment shader reads the tensor's storage
buffer (see shaders.py). `render_to_array` draws a frame offscreen and reads the pixels."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np
import wgpu

from . import font, shaders
from .layout import Rect
from .shapes import FLOATS_PER_VERTEX

BACKGROUND = (0.06, 0.07, 0.09, 1.0)
OFFSCREEN_FORMAT = "rgba8unorm"
TENSOR_SHADERS = {"heatmap": shaders.HEATMAP, "histogram": shaders.HISTOGRAM, "images": shaders.IMAGES}


@dataclass
class TensorDraw:
    """One tensor panel's quad: which shader, where, its uniform fields and its storage buffers
    (wgpu buffers, bound in order from binding 1). `keep` holds what must outlive the submit."""

    kind: str
    rect: Rect
    shape: tuple[int, int, int, int]
    strides: tuple[int, int, int, int]
    buffers: list
    extra: tuple[int, int, int, int] = (0, -1, 0, -1)
    keep: list = field(default_factory=list)

    def uniform(self, width: int, height: int) -> bytes:
        return struct.pack("<8f4I4i4i", *self.rect, width, height, 0, 0, *self.shape, *self.strides, *self.extra)


class Renderer:
    """The pipelines for one render-target format on one device."""

    def __init__(self, device, target_format: str):
        self.device = device
        self.format = target_format
        self._shapes = self._shapes_pipeline()
        self._tensor_pipelines = {kind: self._panel_pipeline(src) for kind, src in TENSOR_SHADERS.items()}
        self._frame = device.create_buffer(size=16, usage=wgpu.BufferUsage.UNIFORM | wgpu.BufferUsage.COPY_DST)
        self._frame_group = device.create_bind_group(
            layout=self._shapes.get_bind_group_layout(0), entries=[{"binding": 0, "resource": {"buffer": self._frame}}]
        )
        self._vertices = None
        self._vertex_capacity = 0
        self.font = device.create_buffer_with_data(data=font.ROWS.reshape(-1), usage=wgpu.BufferUsage.STORAGE)
        self.empty = device.create_buffer_with_data(data=np.zeros(4, np.int32), usage=wgpu.BufferUsage.STORAGE)

    def _module(self, source: str):
        return self.device.create_shader_module(code=source)

    def _shapes_pipeline(self):
        module = self._module(shaders.SHAPES)
        blend = {
            "color": {"src_factor": "src-alpha", "dst_factor": "one-minus-src-alpha", "operation": "add"},
            "alpha": {"src_factor": "one", "dst_factor": "one-minus-src-alpha", "operation": "add"},
        }
        return self.device.create_render_pipeline(
            layout="auto",
            vertex={
                "module": module,
                "entry_point": "vs_main",
                "buffers": [
                    {
                        "array_stride": FLOATS_PER_VERTEX * 4,
                        "step_mode": "vertex",
                        "attributes": [
                            {"format": "float32x2", "offset": 0, "shader_location": 0},
                            {"format": "float32x4", "offset": 8, "shader_location": 1},
                        ],
                    }
                ],
            },
            primitive={"topology": "triangle-list"},
            fragment={"module": module, "entry_point": "fs_main", "targets": [{"format": self.format, "blend": blend}]},
        )

    def _panel_pipeline(self, source: str):
        module = self._module(source)
        return self.device.create_render_pipeline(
            layout="auto",
            vertex={"module": module, "entry_point": "vs_main", "buffers": []},
            primitive={"topology": "triangle-strip"},
            fragment={"module": module, "entry_point": "fs_main", "targets": [{"format": self.format}]},
        )

    def _upload_vertices(self, vertices: np.ndarray) -> None:
        nbytes = max(vertices.nbytes, 4)
        if nbytes > self._vertex_capacity:
            self._vertex_capacity = max(nbytes, 2 * self._vertex_capacity, 64 * 1024)
            self._vertices = self.device.create_buffer(
                size=self._vertex_capacity, usage=wgpu.BufferUsage.VERTEX | wgpu.BufferUsage.COPY_DST
            )
        if vertices.nbytes:
            self.device.queue.write_buffer(self._vertices, 0, np.ascontiguousarray(vertices, np.float32))

    def _bind_group(self, draw: TensorDraw, width: int, height: int):
        pipeline = self._tensor_pipelines[draw.kind]
        uniform = self.device.create_buffer_with_data(data=draw.uniform(width, height), usage=wgpu.BufferUsage.UNIFORM)
        entries = [{"binding": 0, "resource": {"buffer": uniform}}]
        buffers = [*draw.buffers, self.font] if draw.kind == "images" else draw.buffers  # labels are drawn in the shader
        for i, buf in enumerate(buffers, start=1):
            buf = self.empty if buf is None else buf  # an optional input the panel lacks
            entries.append({"binding": i, "resource": {"buffer": buf, "offset": 0, "size": buf.size}})
        return self.device.create_bind_group(layout=pipeline.get_bind_group_layout(0), entries=entries)

    def encode(self, encoder, target, width: int, height: int, vertices: np.ndarray, draws: list[TensorDraw]) -> None:
        """Record a frame into `encoder`: clear, the triangles, then the tensor panels."""
        self.device.queue.write_buffer(self._frame, 0, np.array([width, height, 0, 0], np.float32))
        self._upload_vertices(vertices)
        groups = [self._bind_group(d, width, height) for d in draws]
        render = encoder.begin_render_pass(
            color_attachments=[{"view": target, "clear_value": BACKGROUND, "load_op": "clear", "store_op": "store"}]
        )
        if len(vertices):
            render.set_pipeline(self._shapes)
            render.set_bind_group(0, self._frame_group)
            render.set_vertex_buffer(0, self._vertices)
            render.draw(len(vertices))
        for d, group in zip(draws, groups):
            render.set_pipeline(self._tensor_pipelines[d.kind])
            render.set_bind_group(0, group)
            render.draw(4)
        render.end()


def copy_texture_to_array(device, encoder, texture, width: int, height: int) -> np.ndarray:
    """Finish `encoder` with a copy of `texture` to the host, submit, and return the
    (height, width, 4) uint8 pixels in the texture's channel order."""
    row = (width * 4 + 255) // 256 * 256  # bytes_per_row must be a multiple of 256
    staging = device.create_buffer(size=row * height, usage=wgpu.BufferUsage.COPY_DST | wgpu.BufferUsage.MAP_READ)
    encoder.copy_texture_to_buffer(
        {"texture": texture}, {"buffer": staging, "bytes_per_row": row, "rows_per_image": height}, (width, height, 1)
    )
    device.queue.submit([encoder.finish()])
    staging.map_sync(wgpu.MapMode.READ)
    try:
        raw = np.frombuffer(staging.read_mapped(), np.uint8).reshape(height, row)
        pixels = raw[:, : width * 4].reshape(height, width, 4).copy()
    finally:
        staging.unmap()
        staging.destroy()
    return pixels


def render_to_array(renderer: Renderer, width: int, height: int, vertices: np.ndarray, draws: list[TensorDraw]) -> np.ndarray:
    """Draw a frame offscreen into an rgba8unorm texture and return its RGBA pixels."""
    device = renderer.device
    texture = device.create_texture(
        size=(width, height, 1),
        format=renderer.format,
        usage=wgpu.TextureUsage.RENDER_ATTACHMENT | wgpu.TextureUsage.COPY_SRC,
    )
    encoder = device.create_command_encoder()
    renderer.encode(encoder, texture.create_view(), width, height, vertices, draws)
    pixels = copy_texture_to_array(device, encoder, texture, width, height)
    texture.destroy()
    return pixels
