"""Where the live view puts its panels: a grid of equal cells, each with a title strip
above its plot area."""

from __future__ import annotations

import math
from typing import NamedTuple

from . import font

MARGIN = 6  # pixels between panels and around the window's edge
TITLE_SCALE = 2  # the title's font scale
PAD = 6  # pixels between a panel's border and its plot area


class Rect(NamedTuple):
    """A rectangle in pixels; (x, y) is the top-left corner, y grows downwards."""

    x: float
    y: float
    w: float
    h: float

    def contains(self, px: float, py: float) -> bool:
        return self.x <= px < self.x + self.w and self.y <= py < self.y + self.h


def grid_columns(n: int, width: int, height: int) -> int:
    """How many columns the grid has for `n` panels in a width x height window (cells near 4:3)."""
    if n <= 1:
        return 1
    return max(1, min(n, round(math.sqrt(n * width / height * 3 / 4))))


def panel_rects(n: int, width: int, height: int) -> list[Rect]:
    """The rectangles of `n` panels, row by row, in a width x height window."""
    if n == 0:
        return []
    cols = grid_columns(n, width, height)
    rows = math.ceil(n / cols)
    cw = (width - MARGIN) / cols
    ch = (height - MARGIN) / rows
    return [Rect(MARGIN + (i % cols) * cw, MARGIN + (i // cols) * ch, cw - MARGIN, ch - MARGIN) for i in range(n)]


def title_height() -> int:
    return font.LINE * TITLE_SCALE


def plot_area(panel: Rect) -> Rect:
    """The part of a panel below its title where its content is drawn."""
    top = PAD + title_height()
    return Rect(panel.x + PAD, panel.y + top, max(panel.w - 2 * PAD, 1), max(panel.h - top - PAD, 1))


LABEL_WIDTH = 8 * font.ADVANCE + 4  # room left of a curve for its y labels


def curve_box(plot: Rect) -> Rect:
    """The frame a curve panel draws its lines in: its plot area less room for the labels."""
    return Rect(plot.x + LABEL_WIDTH, plot.y, max(plot.w - LABEL_WIDTH, 1), max(plot.h - font.LINE - 2, 1))
