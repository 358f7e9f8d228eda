"""The Optimizer base class: parameter groups, zero_grad, step, state_dict.

A step is written in Tensor ops under no_grad. Each subclass turns (parameter, grad,
state) into (new parameter, new state) without touching anything; the base class then
computes every new value of every group together and swaps them in with
`p.data = new`, so the graph never grows across steps and a failing step changes
nothing.

The update is a pure function of tensors (parameters, grads, state tensors, and this
step's scalars such as the bias-corrected learning rate, passed as 0-d tensors), with
the same structure every step. So it runs through a `Replay`: the first step records its
kernel list, and later steps run those kernels on the new buffers without building or
scheduling a graph (about 1.5 ms of Python per step for an MNIST MLP with Adam).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable, Iterable

import numpy as np

from ..autograd import enable_grad, no_grad
from ..creation import zeros
from ..engine import realize as engine
from ..compiled import Replay
from ..tensor import Tensor
from ..view import View


def _frozen(value):
    """A hashable stand-in for an option value (lists become tuples)."""
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


def _pack_scalars(values: list[tuple[float, tuple]]) -> tuple[dict[tuple, np.ndarray], list[tuple[tuple, int]]]:
    """The step's scalars packed per (device, dtype) of the parameter each is paired with,
    given as (value, (device, dtype)): ({key: host array}, the (key, index) of each value)."""
    packed: dict[tuple, list[float]] = {}
    slots = []
    for value, key in values:
        same = packed.get(key)
        if same is None:
            same = packed[key] = []
        slots.append((key, len(same)))
        same.append(value)
    return {key: np.array(vals, dtype=key[1].np) for key, vals in packed.items()}, slots


def _step_scalars(values: list[tuple[float, tuple]], feed: Callable[[tuple], Callable] | None = None) -> list[Tensor]:
    """0-d tensors for the values of one step that change between steps (the current
    lr, bias corrections), each of the dtype and device of the parameter it is paired with
    (given as (value, (device, dtype))).

    The code generator bakes Python scalars into the kernel source, so a learning rate
    passed as a float would compile a new kernel whenever a scheduler changes it (and a
    replayed update would keep the old value). A 0-d tensor is a buffer the kernel
    reads: the source stays the same, and each kernel compiles once. Constant
    hyperparameters (betas, eps) may stay floats.

    All scalars of one dtype and device are packed in one buffer, each a 0-d view of it:
    one upload per step, and one binding however many scalars a kernel reads (so an Adam
    update of a parameter and its two moments fits in one kernel under WebGPU's default
    limit of 8 storage buffers). `feed(key)`, if given, makes the producer of the next
    step's array for a captured step (smolgrad.compile)."""
    arrays, slots = _pack_scalars(values)
    buffers = {}
    for key, array in arrays.items():
        buffers[key] = Tensor(array, device=key[0]).lazydata
        if feed is not None and engine.observers:
            engine.note_feed(buffers[key], feed(key))
    return [Tensor._from_lazy(buffers[key]._view(View.contiguous((), i))) for key, i in slots]


class _ScalarFeed:
    """The scalars of the next step, for a captured step (smolgrad.compile) that replays
    this optimizer's update: computed on the host as step() computes them, advancing the
    same counters, once per replay for all packed buffers (their producers run in order)."""

    def __init__(self, optimizer: Optimizer, params: list[tuple[int, Tensor]]):
        self.optimizer, self.params = optimizer, params
        self.pending: dict[tuple, np.ndarray] = {}

    def producer(self, key: tuple) -> Callable[[], np.ndarray]:
        def produce() -> np.ndarray:
            if not self.pending:
                self.pending = self.optimizer._next_scalars(self.params)
            return self.pending.pop(key)

        return produce


def check_nonnegative(group: dict[str, Any], *names: str) -> None:
    """Raise ValueError naming the first option in `names` that is negative (or NaN)."""
    labels = {"lr": "learning rate", "eps": "epsilon value"}
    for name in names:
        if not group[name] >= 0.0:
            raise ValueError(f"Invalid {labels.get(name, name + ' value')}: {group[name]} (it must be >= 0)")


def check_betas(group: dict[str, Any]) -> None:
    """Raise ValueError unless group["betas"] is a pair of numbers in [0, 1)."""
    betas = group["betas"]
    if len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    for i, b in enumerate(betas):
        if not 0.0 <= b < 1.0:
            raise ValueError(f"Invalid beta parameter at index {i}: {b} (it must be in [0, 1))")


class Optimizer:
    """Base class of the optimizers, with PyTorch's interface.

    `params` is an iterable of tensors, or of dicts that each hold a "params" list and
    options overriding `defaults` for that group. Subclasses implement `_update` and
    list in `_state_keys` the per-parameter state tensors shaped like the parameter.

    A subclass implements `_prepare` (state bookkeeping in Python, returning the step's
    changing scalars) and `_update` (the math, in lazy Tensor ops). `_update` may use
    group options other than "lr" as Python numbers: they are part of the replay key.
    Anything that changes from step to step must come in through `scalars`: so do
    "momentum" and beta1 ("beta1") while a scheduler cycles them (`_cycled_options`)."""

    _state_keys: tuple[str, ...] = ()
    _state_scalars: tuple[str, ...] = ()  # per-parameter state numbers, such as "step"

    def __init__(self, params: Iterable, defaults: dict[str, Any]):
        self.defaults = dict(defaults)
        self.state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        if isinstance(params, Tensor):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors or dicts, "
                f"but got a single Tensor of shape {params.shape}; wrap it in a list: [tensor]"
            )
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)
        self._replay = Replay()
        # Options a scheduler changes every step (OneCycleLR cycles "momentum" or beta1 of
        # "betas"): `_update` gets their current values as step scalars ("momentum",
        # "beta1") instead of baking them into the kernels, so the steps still replay.
        self._cycled_options: set[str] = set()

    # ----- parameter groups -----
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters (with its own options) to optimize from now on."""
        if not isinstance(param_group, dict):
            raise TypeError(f"a parameter group must be a dict with a 'params' entry, got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError("a parameter group must have a 'params' entry (a list of tensors)")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but the ordering of "
                "tensors in sets changes between runs; use a list"
            )
        params = list(params)
        seen: set[int] = set()
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but parameter {i} is a {type(p).__name__}")
            if not p.dtype.is_floating_point:
                raise TypeError(f"optimizer can only optimize floating-point tensors, but parameter {i} is {p.dtype.name}")
            if not p.is_leaf:
                raise ValueError(f"can't optimize a non-leaf Tensor (parameter {i}); optimize the leaf it was computed from")
            if id(p) in seen:
                raise ValueError(f"parameter {i} appears twice in one parameter group; list each parameter once")
            seen.add(id(p))
        for other in self.param_groups:
            if seen & {id(p) for p in other["params"]}:
                raise ValueError("some parameters appear in more than one parameter group")
        group = dict(param_group)
        group["params"] = params
        for name, default in self.defaults.items():
            group.setdefault(name, default)
        self._check_group(group)
        self.param_groups.append(group)

    def _check_group(self, group: dict[str, Any]) -> None:
        """Raise ValueError for an invalid option value (subclasses override)."""

    # ----- gradients and steps -----
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of all parameters: to None (the default), or to zeros."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad = zeros(p.grad.shape, dtype=p.grad.dtype, device=p.grad.device)

    def step(self, closure: Callable[[], Any] | None = None):
        """Update every parameter that has a grad; return closure()'s loss if given.

        All new parameters and state tensors are computed in one backend run."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            work = []
            for gi, group in enumerate(self.param_groups):
                for pi, p in enumerate(group["params"]):
                    if p.grad is None:
                        continue
                    grad = self._checked_grad(p, gi, pi)
                    state = dict(self.state.get(p, {}))  # committed only once the step has run
                    values = self._step_values(p, state, group)
                    keys = tuple(k for k in self._state_keys if k in state)
                    work.append((p, grad, gi, state, keys, values))
            if not work:
                return loss
            layout, pairs = [], []
            for p, _, gi, _, keys, values in work:
                names = tuple(sorted(values))
                layout.append((gi, keys, names))
                like = (p.device, p.dtype)
                pairs += [(values[n], like) for n in names]
            feed = _ScalarFeed(self, [(gi, p) for p, _, gi, _, _, _ in work])
            scalars = iter(_step_scalars(pairs, feed.producer))
            tensors: list[Tensor] = []
            for (p, grad, _, state, keys, _), (_, _, names) in zip(work, layout):
                tensors += [p._value(), grad, *(state[k] for k in keys), *(next(scalars) for _ in names)]
            options = tuple(self._options(g) for g in self.param_groups)
            key = (type(self), tuple(layout), options, tuple(sorted(self._cycled_options)))
            new = iter(self._replay(key, lambda *ts: self._update_all(layout, ts), tensors))
            for p, _, _, state, keys, _ in work:
                p.data = next(new)
                committed = self.state[p]
                for name, value in state.items():
                    if name not in keys:
                        committed[name] = value
                for name in keys:  # state tensors are updated in place, as in PyTorch
                    value = next(new)
                    if isinstance(committed.get(name), Tensor):
                        committed[name].data = value
                    else:
                        committed[name] = value
        return loss

    def _step_values(self, p: Tensor, state: dict[str, Any], group: dict[str, Any]) -> dict[str, float]:
        """This step's changing scalars of parameter p (advancing the counters in `state`)."""
        values = self._prepare(p, state, group)
        values.update(self._cycled_values(group))
        return values

    def _next_scalars(self, params: list[tuple[int, Tensor]]) -> dict[tuple, np.ndarray]:
        """The packed scalars of the next step of `params` (group index, parameter), with
        the counters advanced and committed: what step() computes on the host, for a
        replayed step (see _ScalarFeed)."""
        pairs = []
        for gi, p in params:
            state = self.state[p]
            values = self._step_values(p, state, self.param_groups[gi])
            like = (p.device, p.dtype)
            pairs += [(values[n], like) for n in sorted(values)]
        return _pack_scalars(pairs)[0]

    def _options(self, group: dict[str, Any]) -> tuple:
        """The group's options that `_update` may bake into kernels (all but lr and the
        cycled ones; of cycled betas, beta2 stays)."""
        out = []
        for name in sorted(self.defaults):
            if name == "lr" or (name in self._cycled_options and name != "betas"):
                continue
            value = group[name][1:] if name == "betas" and name in self._cycled_options else group[name]
            out.append((name, _frozen(value)))
        return tuple(out)

    def _cycled_values(self, group: dict[str, Any]) -> dict[str, float]:
        """This step's values of the cycled options, as step scalars by name."""
        out = {}
        if "momentum" in self._cycled_options:
            out["momentum"] = group["momentum"]
        if "betas" in self._cycled_options:
            out["beta1"] = group["betas"][0]
        return out

    def _update_all(self, layout, tensors) -> list[Tensor]:
        """New parameters and state tensors of every parameter in `layout`, in order."""
        out: list[Tensor] = []
        i = 0
        for gi, keys, names in layout:
            p, grad = tensors[i], tensors[i + 1]
            state = dict(zip(keys, tensors[i + 2 : i + 2 + len(keys)]))
            i += 2 + len(keys)
            scalars = dict(zip(names, tensors[i : i + len(names)]))
            i += len(names)
            new_p, new_state = self._update(p, grad, state, self.param_groups[gi], scalars)
            out += [new_p, *(new_state[k] for k in keys)]
        return out

    @staticmethod
    def _checked_grad(p: Tensor, gi: int, pi: int) -> Tensor:
        g = p.grad
        where = f"parameter {pi} of parameter group {gi}"
        if not isinstance(g, Tensor):
            raise TypeError(f"the grad of {where} is a {type(g).__name__}, expected a Tensor or None")
        if g.device != p.device:
            raise RuntimeError(
                f"the grad of {where} is on device {g.device} but the parameter is on {p.device}; "
                f"move the grad with .to('{p.device}') or keep parameter and grad on one device"
            )
        if g.dtype != p.dtype:
            raise RuntimeError(
                f"the grad of {where} has dtype {g.dtype.name} but the parameter has dtype {p.dtype.name}; "
                f"convert it with .to(smolgrad.{p.dtype.name})"
            )
        if g.shape != p.shape:
            raise RuntimeError(f"the grad of {where} has shape {g.shape} but the parameter has shape {p.shape}")
        return g._value()

    def _prepare(self, param: Tensor, state: dict[str, Any], group: dict[str, Any]) -> dict[str, float]:
        """Create missing state tensors in `state`, advance its counters, and return the
        scalars of this step that change between steps (the lr among them), by name."""
        raise NotImplementedError(f"{type(self).__name__}._prepare")

    def _update(
        self, param: Tensor, grad: Tensor, state: dict[str, Tensor], group: dict[str, Any], scalars: dict[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """(new parameter value, new state tensors) for one parameter: lazy Tensor ops
        only, on these arguments only (see the class docstring)."""
        raise NotImplementedError(f"{type(self).__name__}._update")

    @staticmethod
    def _zeros_state(param: Tensor) -> Tensor:
        """A zero buffer shaped like `param`: a real buffer, not a broadcast constant, so the
        first step runs the same kernels as the later ones."""
        return Tensor(np.zeros(param.shape, dtype=param.dtype.np), dtype=param.dtype, device=param.device)

    # ----- state dicts -----
    def state_dict(self) -> dict[str, Any]:
        """{"state": {index: {...}}, "param_groups": [{options..., "params": [indices]}]},
        with parameters numbered in group order, as in PyTorch."""
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append(packed)
        # a snapshot: the state tensors are updated in place by later steps, but values are
        # immutable, so a tensor of today's value is free (no copy)
        state = {
            index[id(p)]: {k: Tensor._from_lazy(v.lazydata) if isinstance(v, Tensor) else v for k, v in s.items()}
            for p, s in self.state.items()
            if id(p) in index
        }
        return {"state": dict(sorted(state.items())), "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load options and state saved by `state_dict()` of an optimizer of this class
        over parameters of the same shapes. Nothing changes if the state dict does not fit."""
        name = type(self).__name__
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            got = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__
            raise ValueError(f"an optimizer state dict has exactly the keys 'state' and 'param_groups', got {got}")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"loaded state dict has {len(saved_groups)} parameter groups, but {name} has {len(self.param_groups)}"
            )
        by_index: dict[int, Tensor] = {}
        new_groups = []
        for gi, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"parameter group {gi} has {len(saved['params'])} parameters in the loaded state dict "
                    f"but {len(group['params'])} in {name}"
                )
            missing = sorted(set(self.defaults) - set(saved))
            if missing:
                raise ValueError(
                    f"parameter group {gi} of the loaded state dict lacks the options {missing} that {name} uses; "
                    "was it saved by a different optimizer class?"
                )
            for i, p in zip(saved["params"], group["params"]):
                by_index[int(i)] = p
            new_group = {k: v for k, v in saved.items() if k != "params"}
            new_group["params"] = group["params"]
            self._check_group(new_group)
            new_groups.append(new_group)
        new_state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        for key, value in state_dict["state"].items():
            index = int(key) if isinstance(key, int) or (isinstance(key, str) and key.isdigit()) else None
            if index not in by_index:
                raise ValueError(
                    f"the loaded state dict has state for parameter index {key!r}, but its parameter groups "
                    f"list only the indices {sorted(by_index)}"
                )
            new_state[by_index[index]] = self._load_param_state(by_index[index], index, value)
        self.param_groups = new_groups
        self.state = new_state

    def _load_param_state(self, p: Tensor, index: int, saved: Any) -> dict[str, Any]:
        name = type(self).__name__
        if not isinstance(saved, dict):
            raise ValueError(f"the state of parameter {index} must be a dict, got {type(saved).__name__}")
        unknown = sorted(set(saved) - set(self._state_keys) - set(self._state_scalars))
        if unknown:
            raise ValueError(
                f"the state of parameter {index} has the entries {unknown}, which {name} does not use "
                f"(it keeps {sorted(self._state_keys + self._state_scalars)}); was it saved by a different optimizer?"
            )
        out: dict[str, Any] = {}
        for key, value in saved.items():
            if key in self._state_scalars:  # "step" counts; others (NAdam's mu_product) are floats
                number = value.item() if isinstance(value, Tensor) else value
                out[key] = int(number) if key == "step" else float(number)
                continue
            if not isinstance(value, Tensor):
                raise ValueError(f"state '{key}' of parameter {index} must be a Tensor, got {type(value).__name__}")
            if value.shape != p.shape:
                raise ValueError(
                    f"state '{key}' of parameter {index} has shape {value.shape} but the parameter has shape "
                    f"{p.shape}; the state dict belongs to a different model"
                )
            out[key] = value.detach().to(p.device).to(p.dtype)
        return out

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(k for k in group if k != "params"):
                lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)
