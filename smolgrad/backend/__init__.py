"""Backends (DESIGN.md layer 5): one small interface, two implementations."""

from .base import Backend

__all__ = ["Backend"]
