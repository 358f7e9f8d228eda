"""Neural-network building blocks. For now only the functional namespace."""

from . import functional

__all__ = ["functional"]
