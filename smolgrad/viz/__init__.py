"""smolgrad.viz: seeing training (DESIGN.md layer 6, a frontend module): the live view
and graph drawings."""

from .graph import graph
from .live import LiveView
from .window import LiveViewUnavailable

__all__ = ["LiveView", "LiveViewUnavailable", "graph"]
