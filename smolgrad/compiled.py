"""`smolgrad.compile` (this module is smolgrad.compiled): record a training step once, then replay it with no Python per op.

    @smolgrad.compile
    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

The first calls run eagerly and record every kernel the step runs (forward, backward,
optimizer update, the returned values) through the engine's capture (engine/capture.py).
Once two consecutive recordings agree, later calls whose guards match replay the
recording: the inputs' buffers are bound, the kernels run (on webgpu over a static memory
plan, in one command buffer and one submit), and the results are bound back to Python: the
returned tensors, the new values and grads of the state the step changed, and the
train/eval mode of the modules it set (`model.train()` inside the step).

Guards (a miss records again, at most `max_recordings` times per function): the tensor
arguments' shapes, dtypes, devices, layouts and requires_grad; the other arguments'
values; the identity, layout and grad of every parameter, buffer and optimizer state
tensor reachable from the arguments, the function's closure and the globals it names
(modules, optimizers, schedulers, lists, dicts, users' objects); the Python numbers and
strings among those globals, the closure and the modules' and objects' attributes (a
kernel may have baked them in); the optimizers' options but lr (weight decay, betas...);
the modules' train/eval mode; grad mode and fusion.

What a replay does not do, by design (as with CUDA graphs and TinyJit):
- it runs no Python of the step: values the step computes on the host each call must
  reach the kernels as tensors. The optimizers' learning rate and bias corrections do
  (fed uploads, recomputed at each replay), and so do dropout's random keys.
- returned tensors carry no autograd history.
A host read inside the step (`.item()`, `.numpy()`, printing a tensor, a data-dependent
shape) cannot be replayed: the step then runs eagerly, with a warning saying why. So does
a step that changes an optimizer's hyperparameters (a scheduler stepped inside it: step
schedulers after the compiled call, as the examples do), and a step whose recordings
keep disagreeing (a Python value that changes between calls and is baked into a kernel:
pass it as a 0-d tensor).
"""

from __future__ import annotations

import functools
import os
import sys
import types
import warnings
from collections import OrderedDict
from typing import Any, Callable, Hashable, Sequence

import numpy as np

from .autograd import is_grad_enabled, no_grad
from .device import get_backend
from .engine import realize as engine
from .engine.capture import Program, Recorder
from .engine.schedule import fusion_enabled
from .lazy import LazyBuffer, realize
from .storage import rebind, value_unshared
from .ops import Op
from .tensor import Tensor

__all__ = ["compile", "CompiledFunction", "Replay"]


def _debug(message: str) -> None:
    if os.environ.get("SMOLGRAD_DEBUG", "0") not in ("", "0"):
        print(f"[smolgrad compile] {message}", file=sys.stderr)


def _result_node(buffers: list, slot: int, shape, dtype, device: str, view) -> LazyBuffer:
    node = LazyBuffer(shape, dtype, device, Op.LOAD, realized=buffers[slot])
    return node if view is None else node._view(view)


def _layout(lb: LazyBuffer) -> tuple:
    return (lb.base.shape, lb.dtype, lb.device, lb.arg if lb.op is Op.VIEW else None)


# --------------------------------------------------------------------------- Replay
class Replay:
    """Replays a pure function of tensors, under caller-given keys (the optimizers' update).

    `replay(key, fn, tensors)` returns fn(*tensors) as a list of realized tensors. The key
    must determine everything fn does besides the tensors' values; the inputs' layouts and
    devices are added to it here. A recording that reads a buffer other than the inputs,
    uploads, or reads the host is not kept: such a function runs eagerly every time.
    Inside a `compile` recording it runs eagerly, so that the recording sees its kernels."""

    def __init__(self, max_entries: int = 16):
        self.max_entries = max_entries
        self._programs: OrderedDict[Hashable, tuple | None] = OrderedDict()
        self.recorded = 0
        self.replayed = 0

    def __call__(self, key: Hashable, fn: Callable[..., Sequence[Tensor]], tensors: Sequence[Tensor]) -> list[Tensor]:
        lbs = [t.lazydata for t in tensors]
        realize(*lbs)
        device = lbs[0].device if lbs else None
        if engine.observers or any(lb.base.realized is None for lb in lbs) or any(lb.device != device for lb in lbs):
            return self._eager(fn, tensors)  # recording a step, a constant input, or mixed devices
        bases: list[LazyBuffer] = []  # the inputs' distinct buffers
        index: dict[int, int] = {}  # id(base) -> its position in bases
        for lb in lbs:
            if id(lb.base) not in index:
                index[id(lb.base)] = len(bases)
                bases.append(lb.base)
        sharing = tuple(index[id(lb.base)] for lb in lbs)
        full_key = (key, device, fusion_enabled(), sharing, tuple(_layout(lb) for lb in lbs))
        entry = self._programs.get(full_key)
        if entry is not None:
            self._programs.move_to_end(full_key)
            self.replayed += 1
            return self._run(entry, bases, device)
        outs, entry = self._record(fn, tensors, index, device)
        self._programs[full_key] = entry
        if len(self._programs) > self.max_entries:
            self._programs.popitem(last=False)
        return outs

    @staticmethod
    def _eager(fn, tensors) -> list[Tensor]:
        with no_grad():
            outs = list(fn(*tensors))
        realize(*[o.lazydata for o in outs])
        return outs

    def _record(self, fn, tensors, index: dict[int, int], device: str):
        self.recorded += 1
        with Recorder() as rec, no_grad():
            outs = list(fn(*tensors))
            realize(*[o.lazydata for o in outs])
        if rec.reads or rec.uploads or rec.devices - {device}:
            return outs, None
        given = []  # (slot, input position) of each external slot
        for slot in rec.external:
            position = index.get(id(rec.nodes[slot]))
            if position is None:
                return outs, None  # reads a buffer that is not an input
            given.append((slot, position))
        results, keep = [], set()
        for o in outs:
            lb = o.lazydata
            slot = rec.slot(lb.base)
            if id(lb.base) in index:  # an input, passed through
                results.append((None, index[id(lb.base)], lb))
            elif slot is None or lb.device != device:
                return outs, None  # a constant
            else:
                results.append((slot, None, lb))
                keep.add(slot)
        program = Program(rec.kernels, len(rec.nodes), rec.external, keep, device)
        layouts = tuple((s, p, lb.base.shape, lb.dtype, lb.arg if lb.op is Op.VIEW else None) for s, p, lb in results)
        return outs, (program, tuple(given), layouts)

    def _run(self, entry, bases: list[LazyBuffer], device: str) -> list[Tensor]:
        program, given, layouts = entry
        buffers = program.run({slot: bases[p].realized for slot, p in given})
        out = []
        for slot, position, shape, dtype, view in layouts:
            if slot is None:
                node = bases[position] if view is None else bases[position]._view(view)
            else:
                node = _result_node(buffers, slot, shape, dtype, device, view)
            out.append(Tensor._from_lazy(node))
        return out


# --------------------------------------------------------------------------- state
def _roots(fn: Callable, args: tuple, kwargs: dict) -> list:
    """What the step can reach: its arguments, its closure, the globals its code names,
    and the object of a bound method."""
    roots = [*args, *kwargs.values()]
    target = fn
    while isinstance(target, functools.partial):
        roots += [*target.args, *target.keywords.values()]
        target = target.func
    if isinstance(target, types.MethodType):
        roots.append(target.__self__)
        target = target.__func__
    code = getattr(target, "__code__", None)
    if code is not None:
        roots += [c.cell_contents for c in (target.__closure__ or ()) if _filled(c)]
        names = set(code.co_names)
        for const in code.co_consts:  # nested functions and lambdas
            if isinstance(const, types.CodeType):
                names.update(const.co_names)
        glob = target.__globals__
        roots += [glob[n] for n in sorted(names) if n in glob]
    return roots


def _filled(cell) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


MAX_WALK_DEPTH = 6  # how deep the walk goes into containers and objects
MAX_WALK_ITEMS = 10_000  # longer containers are not looked into (data, not state)
_OPAQUE = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType,
           functools.partial, np.ndarray, str, bytes)


_SCALARS = (int, float, bool, complex, str, type(None))


def _walk(roots: list) -> tuple[list[Tensor], list, list, list]:
    """The tensors (parameters, buffers, optimizer state, tensors held by objects and
    containers), the modules, the Python scalars (the closure's and named globals', and
    modules' and users' objects' attributes), and the optimizers and learning-rate
    schedulers reachable from `roots`, in a deterministic order. A scalar a kernel may
    have baked in is a guard: a new value records again rather than replaying the old
    one. (Optimizers and schedulers are looked into for their tensors only: their
    changing lr reaches kernels as a tensor; see _host_options and _host_state.)"""
    from .nn.module import Module
    from .optim.lr_scheduler import LRScheduler
    from .optim.optimizer import Optimizer

    tensors: list[Tensor] = []
    modules: list = []
    scalars: list = []
    hosts: list = []  # optimizers and schedulers
    seen: set[int] = set()
    stack = [(r, 0, True) for r in reversed(roots)]  # (object, depth, whether a scalar there is guarded)
    while stack:
        obj, depth, guarded = stack.pop()
        if isinstance(obj, _SCALARS):
            if guarded:
                scalars.append(repr(obj) if isinstance(obj, float) else obj)
            continue
        if id(obj) in seen or depth > MAX_WALK_DEPTH:
            continue
        seen.add(id(obj))
        attributes = False  # whether the children are an object's attributes (their scalars guarded)
        if isinstance(obj, Tensor):
            tensors.append(obj)  # (its grad is tracked through it)
            continue
        if isinstance(obj, Module):
            modules.append(obj)
            children = [*obj._parameters.values(), *obj._buffers.values(), *obj._modules.values()]
            children += [v for k, v in vars(obj).items() if k not in ("_parameters", "_buffers", "_modules")]
            attributes = True
        elif isinstance(obj, Optimizer):
            hosts.append(obj)
            children = [p for g in obj.param_groups for p in g["params"]]
            children += [v for state in obj.state.values() for v in state.values() if isinstance(v, Tensor)]
        elif isinstance(obj, LRScheduler):
            hosts.append(obj)
            children = [obj.optimizer]
        elif isinstance(obj, (list, tuple)):
            children = list(obj) if len(obj) <= MAX_WALK_ITEMS else []
        elif isinstance(obj, dict):
            children = list(obj.values()) if len(obj) <= MAX_WALK_ITEMS else []
        elif isinstance(obj, _OPAQUE) or isinstance(obj, (CompiledFunction, Replay)) or not hasattr(obj, "__dict__"):
            continue
        else:  # an object of the user's: the tensors it holds are state too (self.w in a method)
            children = list(vars(obj).values())
            attributes = True
        stack += [(c, depth + 1, attributes) for c in reversed(children)]
    return tensors, modules, scalars, hosts


def _host_options(hosts: list) -> tuple:
    """What the optimizers among `hosts` may bake into their update kernels (each group's
    options but lr; see Optimizer._options): a guard, so that a changed weight decay or
    momentum records again."""
    from .optim.optimizer import Optimizer

    return tuple((id(h), tuple(h._options(g) for g in h.param_groups)) for h in hosts if isinstance(h, Optimizer))


def _host_state(hosts: list) -> tuple:
    """The optimizers' hyperparameters (lr included) and the schedulers' step counts. A
    step that changes them (a scheduler stepped inside it) does host work that a replay
    would skip, so it runs eagerly."""
    from .optim.optimizer import Optimizer

    out = []
    for h in hosts:
        if isinstance(h, Optimizer):
            out.append(tuple(tuple((k, _value_guard(v)) for k, v in sorted(g.items()) if k != "params") for g in h.param_groups))
        else:
            out.append(getattr(h, "last_epoch", None))
    return tuple(out)


def _hooks(state: list[Tensor]) -> tuple:
    """The gradient hooks registered on the state tensors (register_hook and
    register_post_accumulate_grad_hook), by handle: a guard, so that adding or removing one
    records again (the recording ran the hooks there were)."""
    out = []
    for i, t in enumerate(state):
        hooks = getattr(t, "_backward_hooks", None), getattr(t, "_post_accumulate_grad_hooks", None)
        if hooks[0] or hooks[1]:
            out.append((i, tuple(hooks[0] or ()), tuple(hooks[1] or ())))
    return tuple(out)


def _tensor_guard(t: Tensor) -> tuple:
    return (*_layout(t.lazydata), t.requires_grad)


def _value_guard(value) -> Hashable:
    if isinstance(value, Tensor):
        return ("tensor", _tensor_guard(value))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_value_guard(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple((k, _value_guard(v)) for k, v in value.items()))
    try:
        hash(value)
    except TypeError:
        return ("object", id(value))
    if isinstance(value, (int, float, str, bool, type(None))):
        return ("value", type(value).__name__, value)
    return ("object", id(value))


def _flatten(value, out: list) -> Any:
    """The structure of a returned value with each tensor replaced by its index in `out`."""
    if isinstance(value, Tensor):
        out.append(value)
        return ("tensor", len(out) - 1)
    if isinstance(value, (list, tuple)):
        return (type(value), [_flatten(v, out) for v in value])
    if isinstance(value, dict):
        return (dict, {k: _flatten(v, out) for k, v in value.items()})
    return ("value", value)


def _unflatten(spec, tensors: list[Tensor]) -> Any:
    kind, content = spec
    if kind == "tensor":
        return tensors[content]
    if kind == "value":
        return content
    if kind is dict:
        return {k: _unflatten(v, tensors) for k, v in content.items()}
    items = [_unflatten(v, tensors) for v in content]
    return tuple(items) if kind is tuple else kind(items) if kind is list else kind(*items)


class _Uncapturable(Exception):
    """A step the capture cannot replay; the message says why."""


class _Step:
    """One recording of a step, resolved against Python: where each external buffer comes
    from and where each result goes."""

    def __init__(self, rec: Recorder, device: str, args: list[Tensor], state: list[Tensor], before: dict, returned: list[Tensor], spec,
                 modes: list[tuple] = ()):
        """`modes`: (module, training) of the modules whose train/eval mode the step set
        (`model.train()` inside it): a replay sets them the same way."""
        if rec.reads:
            raise _Uncapturable(f"the step reads a tensor on the host ({rec.reads[0]}: .item(), .numpy(), printing, "
                                "or a data-dependent shape); return the tensor from the step and read it afterwards")
        if len(rec.devices) > 1:
            raise _Uncapturable(f"the step runs on several devices ({', '.join(sorted(rec.devices))})")
        arg_of = {}
        for i, t in enumerate(args):
            arg_of.setdefault(id(t.lazydata.base), i)
        state_of, grad_of = {}, {}
        for i, t in enumerate(state):
            value, grad = before[id(t)]
            state_of.setdefault(id(value.base), i)
            if grad is not None:
                grad_of.setdefault(id(grad.base), i)
        self.sources = []  # (slot, kind, index or object)
        for slot in rec.external:
            node = rec.nodes[slot]
            if id(node) in rec.feeds:
                self.sources.append((slot, "feed", (rec.feeds[id(node)], node.dtype)))
            elif id(node) in arg_of:
                self.sources.append((slot, "arg", arg_of[id(node)]))
            elif id(node) in state_of:
                self.sources.append((slot, "state", state_of[id(node)]))
            elif id(node) in grad_of:
                self.sources.append((slot, "grad", grad_of[id(node)]))
            elif id(node) in rec.uploads:  # uploaded by the step: kept if the same every call
                self.sources.append((slot, "upload", node))
            else:  # a computed buffer from outside the step (buffers never change)
                self.sources.append((slot, "captured", node))
        self.uploads = {id(n): rec.uploads[id(n)] for _, kind, n in self.sources if kind == "upload"}
        self.fed: dict[int, Any] = {}  # slot -> the buffer its fed values are written into
        keep: set[int] = set()

        def result(lb: LazyBuffer) -> tuple:
            slot = rec.slot(lb.base)
            view = lb.arg if lb.op is Op.VIEW else None
            if slot is not None and lb.base.realized is not None and lb.device == device:
                if slot not in rec.external:
                    keep.add(slot)
                return ("slot", slot, lb.base.shape, lb.dtype, view)
            if id(lb.base) in arg_of:
                return ("arg", arg_of[id(lb.base)], view)
            return ("node", lb)  # a constant, or a buffer from before the step: the same every call

        self.returned = [result(t.lazydata) for t in returned]
        self.spec = spec
        self.values, self.grads = [], []  # (state index, result) of changed values and grads
        for i, t in enumerate(state):
            value, grad = before[id(t)]
            if t.lazydata is not value:
                self.values.append((i, result(t.lazydata)))
            now = None if t.grad is None else t.grad.lazydata
            if now is not grad:
                self.grads.append((i, None if now is None else result(now)))
        self.device = device
        # new parameter and optimizer-state values alternate between two buffers (they are
        # read only by the next step, through their tensors' storage); grads and returned
        # tensors get new buffers each step, as they would eagerly (a grad or a loss held
        # from an earlier step keeps its value)
        returned = {r[1] for r in self.returned if r[0] == "slot"}
        double = {r[1] for _, r in self.values if r[0] == "slot"} - returned
        # a new value that replaces its state's whole old value may be written into the old
        # value's buffer (webgpu: one copy of the state instead of two; see replay)
        state_slot = {what: slot for slot, kind, what in self.sources if kind == "state"}
        updates = {r[1]: state_slot[i] for i, r in self.values if r[0] == "slot" and r[4] is None and i in state_slot}
        self.program = Program(rec.kernels, len(rec.nodes), rec.external, keep - double, device, double, updates)
        state_of = {slot: i for i, slot in state_slot.items()}
        self.in_place = [(new, state_of[old]) for new, old in self.program.in_place.items()] if self.program.planned else []
        # grads the step replaces without reading: dropped before a replay runs (as the
        # step's zero_grad would have), so that old and new grads are not held at once
        read = {what for _, kind, what in self.sources if kind == "grad"}
        self.dropped_grads = [i for i, r in self.grads if i not in read]
        self.modes = list(modes)
        self.signature = self._signature(rec)

    def _signature(self, rec: Recorder) -> tuple:
        """Equal for two recordings that replay alike."""
        wiring = tuple((k.key, tuple(o.slot for o in k.outs), tuple(s.slot for s in k.srcs)) for k in rec.kernels)
        sources = []
        for slot, kind, what in self.sources:
            if kind == "upload":
                data = self.uploads[id(what)]
                sources.append((slot, kind, data.dtype.str, data.shape, data.tobytes()))
            elif kind == "captured":
                sources.append((slot, kind, id(what)))
            elif kind == "feed":
                sources.append((slot, kind))
            else:
                sources.append((slot, kind, what))

        def described(r):
            return (r[0], id(r[1])) if r is not None and r[0] == "node" else r

        return (
            wiring,
            tuple(sources),
            tuple(described(r) for r in self.returned),
            tuple((i, described(r)) for i, r in self.values),
            tuple((i, described(r)) for i, r in self.grads),
            tuple((id(m), training) for m, training in self.modes),
        )

    def replay(self, args: list[Tensor], state: list[Tensor]):
        backend = get_backend(self.device)
        given = {}
        for slot, kind, what in self.sources:
            if kind == "arg":
                given[slot] = args[what].lazydata.base.realized
            elif kind == "state":
                given[slot] = state[what].lazydata.base.realized
            elif kind == "grad":
                given[slot] = state[what].grad.lazydata.base.realized
            elif kind == "feed":  # into the same buffer every replay (its bind groups stay valid)
                producer, dtype = what
                values = np.asarray(producer(), dtype=dtype.np).reshape(-1)
                if slot in self.fed:
                    backend.write(self.fed[slot], values, dtype)
                else:
                    self.fed[slot] = backend.upload(values, dtype)
                given[slot] = self.fed[slot]
            else:
                given[slot] = what.realized
        for i in self.dropped_grads:
            state[i].grad = None
        # in place where nothing but the state tensor (and its views) holds its old value:
        # a lazy computation or another tensor reading it keeps it, in its own buffer
        in_place = {new for new, i in self.in_place if value_unshared(state[i])}
        buffers = self.program.run(given, in_place)

        def value(r) -> LazyBuffer:
            if r[0] == "slot":
                _, slot, shape, dtype, view = r
                return _result_node(buffers, slot, shape, dtype, self.device, view)
            if r[0] == "arg":
                base = args[r[1]].lazydata.base
                return base if r[2] is None else base._view(r[2])
            return r[1]

        for i, r in self.values:  # (state[i].data = the new value; shapes and dtypes match by recording)
            rebind(state[i], value(r))
        for i, r in self.grads:
            state[i].grad = None if r is None else Tensor._from_lazy(value(r))
        for module, training in self.modes:
            module.training = training
        return _unflatten(self.spec, [Tensor._from_lazy(value(r)) for r in self.returned])


class CompiledFunction:
    """A step function with capture and replay (see the module docstring). `recordings`
    and `replays` count what it did; `eager_reason` says why it runs eagerly, if it does."""

    def __init__(self, fn: Callable, max_recordings: int = 8):
        if not callable(fn):
            raise TypeError(f"smolgrad.compile expects a function, got {type(fn).__name__}")
        if max_recordings < 2:
            raise ValueError(f"smolgrad.compile: max_recordings must be at least 2 (a step is replayed once two "
                             f"recordings agree), got {max_recordings}")
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.max_recordings = max_recordings
        self.recordings = 0
        self.replays = 0
        self.eager_reason: str | None = None
        self._steps: dict[Hashable, _Step | None] = {}  # guard key -> the replayable step
        self._last: dict[Hashable, tuple] = {}  # guard key -> signature of its last recording

    def __get__(self, obj, objtype=None):  # used as a method decorator
        return self if obj is None else functools.partial(self, obj)

    def __call__(self, *args, **kwargs):
        if self.eager_reason is not None or engine.observers:
            return self.fn(*args, **kwargs)  # (a compiled function inside a recording is recorded as part of it)
        state, modules, scalars, hosts = _walk(_roots(self.fn, args, kwargs))
        arg_tensors: list[Tensor] = []
        _flatten((args, kwargs), arg_tensors)
        realize(*[t.lazydata for t in arg_tensors], *[t.lazydata for t in state])
        key = self._guard(args, kwargs, state, modules, arg_tensors, scalars, hosts)
        step = self._steps.get(key)
        if step is not None:
            self.replays += 1
            return step.replay(arg_tensors, state)
        return self._record(key, args, kwargs, arg_tensors, state, hosts, modules)

    @staticmethod
    def _identity(t: Tensor, args_by_id: dict[int, int]) -> tuple:
        """A state tensor's identity in the guard; an argument's is its position (a new batch
        each call is the same input)."""
        return ("arg", args_by_id[id(t)]) if id(t) in args_by_id else ("state", id(t))

    def _guard(self, args, kwargs, state: list[Tensor], modules: list, arg_tensors: list[Tensor], scalars: list,
               hosts: list) -> Hashable:
        args_by_id = {id(t): i for i, t in enumerate(arg_tensors)}
        return (
            is_grad_enabled(),
            fusion_enabled(),
            _value_guard(args),
            _value_guard(tuple(sorted(kwargs.items()))),
            tuple((self._identity(t, args_by_id), _tensor_guard(t), None if t.grad is None else _tensor_guard(t.grad)) for t in state),
            tuple((id(m), m.training) for m in modules),
            tuple(scalars),
            _host_options(hosts),
            _hooks(state),
        )

    def _record(self, key, args, kwargs, arg_tensors: list[Tensor], state: list[Tensor], hosts: list, modules: list):
        if self.recordings >= self.max_recordings:
            self._give_up(f"it was recorded {self.recordings} times (max_recordings) without a replayable recording "
                          "for these guards: its inputs' shapes, modes or state keep changing")
            return self.fn(*args, **kwargs)
        self.recordings += 1
        _debug(f"{self.__name__}: recording ({'guard miss' if key not in self._last else 'confirming'}, "
               f"recording {self.recordings} of at most {self.max_recordings})")
        before = {id(t): (t.lazydata, None if t.grad is None else t.grad.lazydata) for t in state}
        host_before = _host_state(hosts)
        modes_before = [m.training for m in modules]
        with Recorder() as rec:
            result = self.fn(*args, **kwargs)
            returned: list[Tensor] = []
            spec = _flatten(result, returned)
            changed = [t.lazydata for t in state if t.lazydata is not before[id(t)][0]]
            grads = [t.grad.lazydata for t in state if t.grad is not None and t.grad.lazydata is not before[id(t)][1]]
            realize(*[t.lazydata for t in returned], *changed, *grads)
        if _host_state(hosts) != host_before:
            self._give_up("the step changes an optimizer's hyperparameters or a learning-rate scheduler's step count "
                          "on the host (a scheduler stepped inside it?), which a replay would not do; step the "
                          "scheduler outside the compiled function")
            return result
        device = next(iter(rec.devices), None)
        if device is None:
            return result  # nothing ran on a device: nothing to replay, record again next time
        try:
            modes = [(m, m.training) for m, was in zip(modules, modes_before) if m.training != was]
            step = _Step(rec, device, arg_tensors, state, before, returned, spec, modes)
        except _Uncapturable as e:
            self._give_up(str(e))
            return result
        previous = self._last.get(key)
        self._last[key] = step.signature
        if previous == step.signature:
            self._steps[key] = step
            _debug(f"{self.__name__}: two recordings agree; replaying from now on ({len(step.program.kernels)} kernels)")
        return result

    def _give_up(self, reason: str) -> None:
        self.eager_reason = reason
        self._steps.clear()
        warnings.warn(f"smolgrad.compile({self.__name__}): running eagerly: {reason}", RuntimeWarning, stacklevel=3)


def compile(fn: Callable | None = None, *, max_recordings: int = 8):
    """Capture `fn` (a training or inference step) and replay it: the first calls run
    eagerly and record their kernels; later calls with matching guards run the recording
    with no Python per op. Also a decorator, with or without arguments. Returned tensors
    are realized and have no autograd history; see smolgrad/compiled.py for the guards and
    what cannot be captured."""
    if fn is None:
        return lambda f: CompiledFunction(f, max_recordings)
    return CompiledFunction(fn, max_recordings)
