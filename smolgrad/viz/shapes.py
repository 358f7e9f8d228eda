"""Host-side geometry for the live view: rectangles, lines and text as coloured
triangles (x, y in pixels, then r, g, b, a), batched into one vertex array per frame."""

from __future__ import annotations

import numpy as np

from . import font
from .layout import Rect

FLOATS_PER_VERTEX = 6  # x, y, r, g, b, a
Color = tuple[float, float, float, float]


class Shapes:
    """Collects coloured triangles; `vertices()` returns them as one float32 array."""

    def __init__(self) -> None:
        self._parts: list[np.ndarray] = []

    def _quads(self, corners: np.ndarray, color: Color) -> None:
        """corners: (n, 4, 2) in order a, b, c, d around each quad."""
        if len(corners) == 0:
            return
        tri = corners[:, [0, 1, 2, 0, 2, 3], :].reshape(-1, 2)
        colors = np.broadcast_to(np.asarray(color, np.float32), (len(tri), 4))
        self._parts.append(np.concatenate([tri.astype(np.float32), colors], axis=1))

    def rects(self, x0, y0, x1, y1, color: Color) -> None:
        """Filled axis-aligned rectangles [x0, x1) x [y0, y1) (arrays or numbers)."""
        x0, y0, x1, y1 = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, np.float64)) for v in (x0, y0, x1, y1)))
        corners = np.stack([np.stack([x0, y0], -1), np.stack([x1, y0], -1), np.stack([x1, y1], -1), np.stack([x0, y1], -1)], 1)
        self._quads(corners, color)

    def rect(self, r: Rect, color: Color) -> None:
        self.rects(r.x, r.y, r.x + r.w, r.y + r.h, color)

    def outline(self, r: Rect, color: Color, width: float = 1.0) -> None:
        x0, y0, x1, y1 = r.x, r.y, r.x + r.w, r.y + r.h
        self.rects([x0, x0, x0, x1 - width], [y0, y1 - width, y0, y0], [x1, x1, x0 + width, x1], [y0 + width, y1, y1, y1], color)

    def polyline(self, xs, ys, color: Color, width: float = 1.5) -> None:
        """A line through the points (xs[i], ys[i]), as one quad per segment."""
        p = np.stack([np.asarray(xs, np.float64), np.asarray(ys, np.float64)], -1)
        if len(p) == 1:
            p = np.concatenate([p, p + [1.0, 0.0]])
        if len(p) < 2:
            return
        a, b = p[:-1], p[1:]
        d = b - a
        length = np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-9)[:, None]
        normal = np.stack([-d[:, 1], d[:, 0]], -1) / length * (width / 2)
        self._quads(np.stack([a + normal, b + normal, b - normal, a - normal], 1), color)

    def text(self, s: str, x: float, y: float, color: Color, scale: int = 1) -> None:
        """`s` on one line with its top-left corner at (x, y), each font pixel scale x scale."""
        px, py = font.text_pixels(s)
        x0, y0 = x + px * scale, y + py * scale
        self.rects(x0, y0, x0 + scale, y0 + scale, color)

    def vertices(self) -> np.ndarray:
        if not self._parts:
            return np.zeros((0, FLOATS_PER_VERTEX), np.float32)
        return np.concatenate(self._parts)
