"""Containers: Sequential, ModuleList, ModuleDict, ParameterList, ParameterDict."""

from __future__ import annotations

import operator
from collections import OrderedDict
from typing import Any, Iterable, Iterator, Mapping

from ..tensor import Tensor
from .module import Module
from .parameter import Parameter


def _index(idx: int, n: int, kind: str) -> int:
    if not isinstance(idx, int):
        raise TypeError(f"{kind} indices must be integers or slices, not {type(idx).__name__}")
    if not -n <= idx < n:
        raise IndexError(f"index {idx} is out of range for a {kind} of length {n}")
    return idx % n


def _replace(container: Module, key: str, module: Module) -> None:
    """Put `module` under an existing key, keeping its position."""
    if not isinstance(module, Module):
        raise TypeError(f"{type(module).__name__} is not a Module subclass")
    container._modules[key] = module


class Sequential(Module):
    """Modules applied in order: Sequential(a, b, c)(x) == c(b(a(x))).

    Also accepts one OrderedDict of name -> module."""

    def __init__(self, *args: Module):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for name, module in args[0].items():
                self.add_module(name, module)
        else:
            for i, module in enumerate(args):
                self.add_module(str(i), module)

    def forward(self, input):
        for module in self._modules.values():
            input = module(input)
        return input

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return Sequential(OrderedDict(list(self._modules.items())[idx]))
        return list(self._modules.values())[_index(idx, len(self), "Sequential")]

    def __setitem__(self, idx: int, module: Module) -> None:
        _replace(self, list(self._modules)[_index(idx, len(self), "Sequential")], module)

    def __delitem__(self, idx) -> None:
        keys = list(self._modules)
        for key in keys[idx] if isinstance(idx, slice) else [keys[_index(idx, len(self), "Sequential")]]:
            del self._modules[key]
        if all(k.isdigit() for k in keys):  # keep numbering 0..n-1, like torch
            modules = list(self._modules.values())
            self._modules.clear()
            for i, m in enumerate(modules):
                self._modules[str(i)] = m

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def append(self, module: Module) -> Sequential:
        self.add_module(str(len(self)), module)
        return self


class ModuleList(Module):
    """A list of modules whose parameters are registered (a plain list's would not be)."""

    def __init__(self, modules: Iterable[Module] | None = None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _items(self) -> list[Module]:
        return list(self._modules.values())

    def _renumber(self, modules: list[Module]) -> None:
        self._modules.clear()
        for i, m in enumerate(modules):
            self.add_module(str(i), m)

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return ModuleList(self._items()[idx])
        return self._items()[_index(idx, len(self), "ModuleList")]

    def __setitem__(self, idx: int, module: Module) -> None:
        _replace(self, str(_index(idx, len(self), "ModuleList")), module)

    def __delitem__(self, idx) -> None:
        items = self._items()
        del items[idx if isinstance(idx, slice) else _index(idx, len(self), "ModuleList")]
        self._renumber(items)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._items())

    def append(self, module: Module) -> ModuleList:
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> None:
        items = self._items()
        items.insert(index, module)
        self._renumber(items)

    def __iadd__(self, modules: Iterable[Module]) -> ModuleList:
        return self.extend(modules)

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleList has no forward(); iterate over it and call the modules")


class ModuleDict(Module):
    """A dict of modules (insertion-ordered) whose parameters are registered."""

    def __init__(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]] | None = None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        if key not in self._modules:
            raise KeyError(f"ModuleDict has no key {key!r} (keys: {list(self._modules)})")
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        if key in self._modules:
            _replace(self, key, module)
        else:
            self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __contains__(self, key: str) -> bool:
        return key in self._modules

    def keys(self):
        return self._modules.keys()

    def items(self):
        return self._modules.items()

    def values(self):
        return self._modules.values()

    def pop(self, key: str) -> Module:
        module = self[key]
        del self[key]
        return module

    def clear(self) -> None:
        self._modules.clear()

    def update(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]]) -> None:
        pairs = modules.items() if hasattr(modules, "items") else modules
        for key, module in pairs:
            self[key] = module

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleDict has no forward(); look up a module by key and call it")


# ----- parameter containers -----
def _set_entry(container: Module, name: str, value: Any) -> None:
    """Store `value` as the entry `name`, as torch's setattr does: a plain tensor becomes a
    Parameter, a Parameter or Module is registered, anything else is a plain attribute."""
    if isinstance(value, Tensor) and not isinstance(value, Parameter):
        value = Parameter(value)  # (checks the dtype before anything changes)
    _drop_entry(container, name)
    setattr(container, name, value)


def _drop_entry(container: Module, name: str) -> None:
    for registry in ("_parameters", "_buffers", "_modules"):
        container.__dict__[registry].pop(name, None)
    container.__dict__.pop(name, None)


def _entries_repr(container: Module, items: Iterable[tuple[str, Any]]) -> str:
    """torch's ParameterList/ParameterDict repr: one line per entry, parameters by dtype and size."""
    lines = []
    for key, value in items:
        if isinstance(value, Tensor):
            kind = "Parameter" if isinstance(value, Parameter) else "Tensor"
            device = f" ({value.device})" if value.device != "numpy" else ""
            size = "x".join(str(n) for n in value.shape)
            lines.append(f"({key}): {kind} containing: [{value.dtype.name} of size {size}{device}]")
        else:
            lines.append(f"({key}): Object of type: {type(value).__name__}")
    body = "\n  " + "\n  ".join(lines) + "\n" if lines else ""
    return f"{type(container).__name__}({body})"


class ParameterList(Module):
    """A list of parameters registered under "0", "1", ... (tensors are wrapped in
    Parameter; other values are kept as they are, as in torch)."""

    def __init__(self, values: Iterable[Any] | None = None):
        super().__init__()
        self._size = 0
        if values is not None:
            self += values

    def _name(self, idx) -> str:
        try:
            i = operator.index(idx)
        except TypeError:
            raise TypeError(f"ParameterList indices must be integers or slices, not {type(idx).__name__}") from None
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} is out of range for a ParameterList of length {len(self)}")
        return str(i % len(self))

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return ParameterList([self[i] for i in range(*idx.indices(len(self)))])
        return getattr(self, self._name(idx))

    def __setitem__(self, idx: int, value: Any) -> None:
        _set_entry(self, self._name(idx), value)

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[Any]:
        return iter([self[i] for i in range(len(self))])

    def __iadd__(self, values: Iterable[Any]) -> ParameterList:
        return self.extend(values)

    def append(self, value: Any) -> ParameterList:
        """Add `value` at the end (a tensor is wrapped in Parameter)."""
        _set_entry(self, str(self._size), value)
        self._size += 1
        return self

    def extend(self, values: Iterable[Any]) -> ParameterList:
        """Append each of `values`."""
        if isinstance(values, Tensor) or not isinstance(values, Iterable):
            raise TypeError(f"ParameterList.extend should be called with an iterable, but got {type(values).__name__}")
        for value in list(values):
            self.append(value)
        return self

    def insert(self, index: int, value: Any) -> None:
        """Insert `value` before position `index`, renumbering the entries after it."""
        if isinstance(value, Tensor) and not isinstance(value, Parameter):
            value = Parameter(value)  # before the entries are renumbered: a bad tensor changes nothing
        items = list(self)
        items.insert(operator.index(index), value)
        for i in range(len(items)):
            _drop_entry(self, str(i))
        self._size = 0
        for item in items:
            self.append(item)

    def forward(self, *args, **kwargs):
        raise RuntimeError("ParameterList should not be called.")

    def __repr__(self) -> str:
        return _entries_repr(self, ((str(i), v) for i, v in enumerate(self)))


class ParameterDict(Module):
    """An insertion-ordered dict of parameters registered under its string keys (tensors
    are wrapped in Parameter; other values are kept as they are, as in torch)."""

    def __init__(self, parameters: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None):
        super().__init__()
        self._keys: dict[str, None] = {}
        if parameters is not None:
            self.update(parameters)

    def _check_key(self, key) -> None:
        if not isinstance(key, str):
            raise TypeError(
                f"Index given to ParameterDict cannot be used as a key as it is not a string (type is "
                f"'{type(key).__name__}')"
            )
        if not key or "." in key:
            raise KeyError(f'ParameterDict key can\'t be empty or contain ".", got {key!r}')
        if key not in self._keys and hasattr(self, key):
            raise KeyError(f"attribute '{key}' already exists (ParameterDict keys can't shadow its attributes)")

    def __getitem__(self, key: str) -> Any:
        if key not in self._keys:
            self._check_key(key)
            raise KeyError(f"ParameterDict has no key {key!r} (keys: {list(self._keys)})")
        return getattr(self, key)

    def __setitem__(self, key: str, value: Any) -> None:
        self._check_key(key)
        _set_entry(self, key, value)
        self._keys[key] = None

    def __delitem__(self, key: str) -> None:
        if key not in self._keys:
            raise KeyError(f"ParameterDict has no key {key!r} (keys: {list(self._keys)})")
        del self._keys[key]
        _drop_entry(self, key)

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._keys))

    def __reversed__(self) -> Iterator[str]:
        return reversed(list(self._keys))

    def __contains__(self, key) -> bool:
        return key in self._keys

    def keys(self):
        return self._keys.keys()

    def values(self) -> Iterator[Any]:
        return (self[k] for k in list(self._keys))

    def items(self) -> Iterator[tuple[str, Any]]:
        return ((k, self[k]) for k in list(self._keys))

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self else default

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def pop(self, key: str) -> Any:
        """Remove `key` and return its value."""
        value = self[key]
        del self[key]
        return value

    def popitem(self) -> tuple[str, Any]:
        """Remove and return the last (key, value) pair."""
        if not self._keys:
            raise KeyError("popitem(): ParameterDict is empty")
        key = next(reversed(self._keys))
        return key, self.pop(key)

    def clear(self) -> None:
        for key in list(self._keys):
            del self[key]

    def copy(self) -> ParameterDict:
        """A new ParameterDict holding the same parameters."""
        return ParameterDict(OrderedDict(self.items()))

    def fromkeys(self, keys: Iterable[str], default: Any = None) -> ParameterDict:
        return ParameterDict((k, default) for k in keys)

    def update(self, parameters: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> None:
        """Add or replace entries from a mapping or (key, value) pairs. As in torch, a plain
        dict's keys are added in sorted order (an OrderedDict's or ParameterDict's in theirs)."""
        if isinstance(parameters, (OrderedDict, ParameterDict)):
            pairs = list(parameters.items())
        elif isinstance(parameters, Mapping):
            pairs = sorted(parameters.items())
        elif isinstance(parameters, Iterable) and not isinstance(parameters, (str, Tensor)):
            pairs = []
            for j, p in enumerate(parameters):
                if isinstance(p, (str, Tensor)) or not isinstance(p, Iterable):
                    raise TypeError(f"ParameterDict update sequence element #{j} should be a (key, value) pair; "
                                    f"is {type(p).__name__}")
                p = tuple(p)
                if len(p) != 2:
                    raise ValueError(f"ParameterDict update sequence element #{j} has length {len(p)}; 2 is required")
                pairs.append(p)
        else:
            raise TypeError("ParameterDict.update should be called with an iterable of key/value pairs, but got "
                            + type(parameters).__name__)
        for key, _ in pairs:  # check every key first, so a bad one changes nothing
            self._check_key(key)
        for key, value in pairs:
            self[key] = value

    def __or__(self, other: ParameterDict) -> ParameterDict:
        out = self.copy()
        out.update(other)
        return out

    def __ror__(self, other: ParameterDict) -> ParameterDict:
        out = other.copy()
        out.update(self)
        return out

    def __ior__(self, other: ParameterDict) -> ParameterDict:
        self.update(other)
        return self

    def forward(self, *args, **kwargs):
        raise RuntimeError("ParameterDict should not be called.")

    def __repr__(self) -> str:
        return _entries_repr(self, self.items())
