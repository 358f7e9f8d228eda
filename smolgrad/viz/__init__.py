"""Seeing what smolgrad does: graph drawings (and the live training view)."""

from .graph import graph
