"""smolgrad.viz: seeing training (DESIGN.md layer 6, a frontend module)."""

from .live import LiveView
from .window import LiveViewUnavailable

__all__ = ["LiveView", "LiveViewUnavailable"]
