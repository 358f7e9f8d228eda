"""Parameter: a tensor that a Module registers as one of its learnable weights."""

from __future__ import annotations

from .. import storage
from ..tensor import Tensor


class Parameter(Tensor):
    """A Tensor that requires grad by default and is registered by the Module it is
    assigned to (`self.weight = Parameter(...)`). It shares the value of `data`."""

    __slots__ = ()

    def __init__(self, data: Tensor | None = None, requires_grad: bool = True):
        if data is None:
            data = Tensor([])
        elif not isinstance(data, Tensor):
            data = Tensor(data)
        self.lazydata = data.lazydata
        self.grad = None
        self._ctx = None
        self._storage = self._view = self._fw = None
        self.requires_grad = False
        storage.register_view(data, self, ("detach", None))  # shares data's storage, as in torch
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()
