"""The live view's panels. Each draws a background and a title, then its content in its plot
area: host-side triangles for curves and text, and for tensor panels a `TensorDraw` whose
shader reads the tensor's buffer on the webgpu device."""

from __future__ import annotations

import math
import textwrap
from typing import Callable, Union

import numpy as np

from .. import creation, dtypes
from ..autograd import no_grad
from ..lazy import realize
from ..ops import Op
from ..tensor import Tensor
from . import font
from .layout import PAD, TITLE_SCALE, Rect, curve_box, plot_area
from .render import TensorDraw
from .shapes import Shapes

PANEL_BACKGROUND = (0.10, 0.11, 0.14, 1.0)
TITLE_COLOR = (0.92, 0.93, 0.95, 1.0)
LABEL_COLOR = (0.62, 0.65, 0.70, 1.0)
AXIS_COLOR = (0.32, 0.34, 0.40, 1.0)
SERIES_COLORS = ((0.35, 0.65, 0.95, 1.0), (0.98, 0.60, 0.20, 1.0), (0.50, 0.85, 0.40, 1.0), (0.85, 0.45, 0.85, 1.0))
MAX_POINTS = 2000  # points per curve drawn; longer series are thinned evenly

TensorSource = Union[Tensor, Callable[[], "Tensor | None"]]


class Panel:
    """A titled rectangle of the view."""

    def __init__(self, title: str):
        self.title = title

    def header(self) -> str:
        return self.title

    def draw(self, rect: Rect, shapes: Shapes, draws: list[TensorDraw]) -> None:
        shapes.rect(rect, PANEL_BACKGROUND)
        self.draw_content(plot_area(rect), shapes, draws)  # first: it may update the header
        title, room = self.header(), rect.w - 2 * PAD
        scale = TITLE_SCALE if font.text_width(title, TITLE_SCALE) <= room else 1  # small print for long titles
        shapes.text(title[: max(int(room // (font.ADVANCE * scale)), 0)], rect.x + PAD, rect.y + PAD, TITLE_COLOR, scale)

    def draw_content(self, area: Rect, shapes: Shapes, draws: list[TensorDraw]) -> None:
        raise NotImplementedError


def format_value(v: float) -> str:
    """A number in at most 8 characters."""
    return f"{v:.3g}" if math.isfinite(v) else str(v)


class CurvePanel(Panel):
    """Scalar series against the step (loss and validation loss, learning rate, tokens/s)."""

    def __init__(self, title: str, log: bool = False):
        super().__init__(title)
        self.log = log
        self.series: dict[str, tuple[list[float], list[float]]] = {}

    def add(self, name: str, step: float, value: float) -> None:
        steps, values = self.series.setdefault(name, ([], []))
        steps.append(float(step))
        values.append(float(value))

    def header(self) -> str:
        return self.title + (" (log)" if self.log else "")

    def _points(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        out = {}
        for name, (steps, values) in self.series.items():
            x, y = np.asarray(steps), np.asarray(values)
            keep = np.isfinite(y) & (y > 0) if self.log else np.isfinite(y)
            x, y = x[keep], y[keep]
            if len(x) > MAX_POINTS:
                pick = np.unique(np.linspace(0, len(x) - 1, MAX_POINTS).astype(np.int64))
                x, y = x[pick], y[pick]
            if len(x):
                out[name] = (x, np.log10(y) if self.log else y)
        return out

    def draw_content(self, area: Rect, shapes: Shapes, draws: list[TensorDraw]) -> None:
        box = curve_box(area)
        shapes.outline(box, AXIS_COLOR)
        points = self._points()
        if not points:
            shapes.text("no data yet", box.x + 4, box.y + 4, LABEL_COLOR)
            return
        xs = np.concatenate([x for x, _ in points.values()])
        ys = np.concatenate([y for _, y in points.values()])
        x0, x1 = xs.min(), xs.max()
        y0, y1 = ys.min(), ys.max()
        if x1 == x0:
            x1 = x0 + 1
        pad = (y1 - y0) * 0.05 or max(abs(y0) * 0.05, 0.5 if self.log else 1e-3)
        y0, y1 = y0 - pad, y1 + pad
        inner = Rect(box.x + 1, box.y + 1, box.w - 2, box.h - 2)
        for i, (name, (x, y)) in enumerate(points.items()):
            color = SERIES_COLORS[i % len(SERIES_COLORS)]
            px = inner.x + (x - x0) / (x1 - x0) * inner.w
            py = inner.y + inner.h - (y - y0) / (y1 - y0) * inner.h
            shapes.polyline(px, py, color)
            legend = f"{name} {format_value(self.series[name][1][-1])}"[: max(int((box.w - 8) // font.ADVANCE), 0)]
            shapes.text(legend, box.x + box.w - font.text_width(legend) - 4, box.y + 4 + i * font.LINE, color)
        top, bottom = (10**y1, 10**y0) if self.log else (y1, y0)
        shapes.text(format_value(top), area.x, box.y, LABEL_COLOR)
        shapes.text(format_value(bottom), area.x, box.y + box.h - font.HEIGHT, LABEL_COLOR)
        below = box.y + box.h + 2
        shapes.text(f"{x0:g}", box.x, below, LABEL_COLOR)
        last = f"step {x1:g}"
        shapes.text(last, box.x + box.w - font.text_width(last), below, LABEL_COLOR)


# --------------------------------------------------------------------------- tensors on the drawing device
def drawing_tensor(t: Tensor) -> Tensor:
    """`t`'s value as float32 on the webgpu device: a view of the same buffer when it is
    already there, else a copy uploaded from the host (the numpy device)."""
    t = t.detach()
    if t.device != "webgpu":
        return t.float().to("webgpu")
    return t.float()


def realized_view(t: Tensor, dense: bool = False):
    """(WebGPUBuffer, View) of a webgpu tensor: its computed storage and how `t` reads it.
    With `dense`, the buffer starts with `t`'s values in order (copied on the device if needed)."""
    lb = t.lazydata
    if dense and not lb.view.is_identity:
        lb = lb.e(Op.COPY)
    realize(lb)
    if lb.base.realized is None:  # a broadcast constant that no kernel computed
        lb = lb.e(Op.COPY)
        realize(lb)
    return lb.base.realized, lb.view


def dense_buffer(t: Tensor):
    """A WebGPUBuffer whose first elements are `t`'s values in order."""
    return realized_view(t, dense=True)[0]


def resolve(source: TensorSource | None) -> Tensor | None:
    return source() if callable(source) and not isinstance(source, Tensor) else source


class TensorPanel(Panel):
    """A panel that draws a tensor (or what a callable returns when drawn) from its buffer."""

    def __init__(self, title: str, source: TensorSource):
        super().__init__(title)
        self.source = source
        self.shape: tuple[int, ...] | None = None
        if isinstance(source, Tensor):
            self.check(source)
        elif not callable(source):
            raise TypeError(f"{type(self).__name__} '{title}': expected a Tensor or a callable returning one, got {type(source).__name__}")

    def check(self, t: Tensor) -> None:
        """Raise a clear error when the panel cannot draw `t`."""

    def header(self) -> str:
        return self.title if self.shape is None else f"{self.title} {tuple(self.shape)}"

    def draw_content(self, area: Rect, shapes: Shapes, draws: list[TensorDraw]) -> None:
        with no_grad():  # a callable may compute the tensor (an attention map): record nothing
            t = resolve(self.source)
            if t is None:
                shapes.text("no data yet", area.x + 4, area.y + 4, LABEL_COLOR)
                return
            if not isinstance(t, Tensor):
                raise TypeError(f"{type(self).__name__} '{self.title}': the callable returned {type(t).__name__}, not a Tensor")
            self.check(t)
            self.shape = tuple(t.shape)
            draws.append(self.tensor_draw(drawing_tensor(t), area))

    def tensor_draw(self, t: Tensor, area: Rect) -> TensorDraw:
        raise NotImplementedError


class HeatmapPanel(TensorPanel):
    """A matrix as colours: diverging blue-white-red around zero when it has both signs,
    else dark-to-bright from its minimum to its maximum."""

    def check(self, t: Tensor) -> None:
        if t.ndim not in (1, 2) or t.numel() == 0:
            raise ValueError(
                f"heatmap '{self.title}' draws a non-empty 1-D or 2-D tensor, got shape {tuple(t.shape)}; "
                "select one matrix (e.g. attn[0, head] for an attention map of shape (B, H, T, T))"
            )

    def tensor_draw(self, t: Tensor, area: Rect) -> TensorDraw:
        if t.ndim == 1:
            t = t.unsqueeze(0)
        value_range = creation.stack([t.min(), t.max()])
        buf, view = realized_view(t)
        range_buf = dense_buffer(value_range)
        rows, cols = t.shape
        return TensorDraw(
            "heatmap", area, (rows, cols, 0, 0), (view.offset, view.strides[0], view.strides[1], 0),
            [buf.buffer, range_buf.buffer], keep=[buf, range_buf],
        )


class HistogramPanel(TensorPanel):
    """The distribution of a tensor's values in `bins` equal bins from its min to its max
    (counted on the device by tensor ops: nothing is read back)."""

    def __init__(self, title: str, source: TensorSource, bins: int = 30):
        if not isinstance(bins, int) or bins < 1:
            raise ValueError(f"histogram '{title}': bins must be a positive int, got {bins!r}")
        self.bins = bins
        super().__init__(title, source)

    def check(self, t: Tensor) -> None:
        if t.numel() == 0:
            raise ValueError(f"histogram '{self.title}' needs a non-empty tensor, got shape {tuple(t.shape)}")

    def header(self) -> str:
        if self.shape is None:
            return self.title
        return f"{self.title} ({math.prod(self.shape)} values)"

    def counts(self, t: Tensor) -> Tensor:
        """How many of `t`'s values fall in each bin (float32, on t's device)."""
        x = t.reshape(-1)
        lo, hi = x.min(), x.max()
        width = (hi - lo).clamp(min=1e-30)
        index = ((x - lo) / width * self.bins).floor().clamp(0, self.bins - 1).long()
        ones = creation.ones(x.shape[0], device=t.device)
        return creation.zeros(self.bins, device=t.device).scatter_add(0, index, ones)

    def tensor_draw(self, t: Tensor, area: Rect) -> TensorDraw:
        counts = self.counts(t)
        counts_buf, peak_buf = dense_buffer(counts), dense_buffer(counts.max())
        return TensorDraw(
            "histogram", area, (self.bins, 0, 0, 0), (0, 0, 0, 0), [counts_buf.buffer, peak_buf.buffer],
            keep=[counts_buf, peak_buf],
        )


class ImageGridPanel(TensorPanel):
    """A grid of grey images (e.g. MNIST digits), each with its predicted label below it:
    green where it equals the target, red where not (white without targets)."""

    def __init__(self, title: str, source: TensorSource, labels=None, targets=None, image_shape=None, max_images: int = 64):
        self.labels, self.targets = labels, targets
        self.image_shape = tuple(image_shape) if image_shape is not None else None
        self.max_images = max_images
        super().__init__(title, source)

    def images(self, t: Tensor) -> Tensor:
        if self.image_shape is not None:
            t = t.reshape(-1, *self.image_shape)
        if t.ndim == 4 and t.shape[1] == 1:
            t = t[:, 0]
        return t

    def check(self, t: Tensor) -> None:
        if self.image_shape is not None and (t.ndim < 1 or t.numel() % math.prod(self.image_shape)):
            raise ValueError(f"images '{self.title}': shape {tuple(t.shape)} does not split into images of shape {self.image_shape}")
        shape = self.images(t).shape
        if len(shape) != 3 or 0 in shape:
            raise ValueError(
                f"images '{self.title}' draws grey images of shape (N, H, W) or (N, 1, H, W), got {tuple(t.shape)}; "
                "pass image_shape=(H, W) for flattened images such as (N, 784)"
            )

    def _label_buffer(self, source, n: int):
        """(WebGPUBuffer, offset, stride) of the first n labels as int32 on webgpu, or None."""
        labels = resolve(source)
        if labels is None:
            return None
        if not isinstance(labels, Tensor):
            labels = creation.tensor(np.asarray(labels).reshape(-1), dtype=dtypes.int32, device="webgpu")
        labels = labels.detach().reshape(-1)[:n]
        if labels.device != "webgpu":
            labels = labels.to("webgpu")
        buf, view = realized_view(labels.int())
        return buf, view.offset, view.strides[0]

    def tensor_draw(self, t: Tensor, area: Rect) -> TensorDraw:
        images = self.images(t)[: self.max_images]
        n, h, w = images.shape
        columns = max(1, min(n, round(math.sqrt(n * area.w / max(area.h, 1)))))
        value_range = creation.stack([images.min(), images.max()])
        buf, view = realized_view(images)
        range_buf = dense_buffer(value_range)
        buffers, keep, extra = [buf.buffer, range_buf.buffer], [buf, range_buf], [0, -1, 0, -1]
        for slot, source in ((0, self.labels), (2, self.targets)):
            found = self._label_buffer(source, n)
            if found is None:
                buffers.append(None)
                continue
            label_buf, offset, stride = found
            buffers.append(label_buf.buffer)
            keep.append(label_buf)
            extra[slot : slot + 2] = [offset, stride]
        return TensorDraw("images", area, (n, h, w, columns), (view.offset, *view.strides), buffers, tuple(extra), keep)


class TextPanel(Panel):
    """The latest text sample, wrapped to the panel's width."""

    def __init__(self, title: str, text: str = ""):
        super().__init__(title)
        self.text = text

    def draw_content(self, area: Rect, shapes: Shapes, draws: list[TensorDraw]) -> None:
        scale = 2 if area.w >= 40 * font.ADVANCE * 2 else 1  # large print where 40 characters fit
        per_line = max(int(area.w // (font.ADVANCE * scale)), 1)
        lines = []
        for paragraph in self.text.splitlines() or [""]:
            lines.extend(textwrap.wrap(paragraph, per_line) or [""])
        for i, line in enumerate(lines[: max(int(area.h // (font.LINE * scale)), 0)]):
            shapes.text(line, area.x, area.y + i * font.LINE * scale, TITLE_COLOR, scale)
