"""Reverse mode: the Function base class, grad mode, and the backward engine.

A Function's forward works on LazyBuffers (primitive ops); its backward (the VJP) and its
jvp (forward mode) are written in Tensor ops. So the backward pass is lazy and fused like
the forward, and with `create_graph=True` it is recorded too: gradients are themselves
differentiable, to any order. Forward mode lives in `forward_ad`.

The recorded graph: each Function that needs a gradient keeps, per input, the node that
the input's gradient goes to (the input's own Function, or the leaf tensor itself), taken
when the op runs, so rebinding a tensor in place later does not rewire earlier ops.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Iterable, Sequence

from .. import autocast_mode
from ..graph import postorder
from ..lazy import LazyBuffer
from . import forward_ad

if TYPE_CHECKING:
    from ..tensor import Tensor

_state = threading.local()


def is_grad_enabled() -> bool:
    return getattr(_state, "enabled", True)


def set_grad_enabled(mode: bool) -> None:
    _state.enabled = bool(mode)


class _GradMode(contextlib.ContextDecorator):
    """Sets grad mode to `enabled` inside a `with` block or a decorated function."""

    enabled: bool

    def __enter__(self):
        self._prev = is_grad_enabled()
        set_grad_enabled(self.enabled)
        return self

    def __exit__(self, *exc):
        set_grad_enabled(self._prev)
        return False


class no_grad(_GradMode):
    """Context manager and decorator that stops ops from being recorded for backward."""

    enabled = False


class enable_grad(_GradMode):
    """Context manager and decorator that turns recording back on inside no_grad."""

    enabled = True


class Function:
    """A differentiable op.

    - `forward(*lazybuffers, **kwargs)` computes the output from primitive LazyBuffer ops and
      declares what backward needs with `self.save_for_backward(...)` (inputs or the output);
    - `backward(grad)` returns one gradient (a Tensor, or None) per tensor input, in Tensor ops,
      reading `self.saved_tensors`;
    - `jvp(*tangents)` returns the output's tangent from one tangent per input (zeros for
      inputs without one; `self.has_tangent` says which were given), in Tensor ops.
    """

    released = False  # set by release() after backward
    _to_save: tuple = ()
    _backward_hooks: dict | None = None  # Tensor.register_hook on this Function's output

    def forward(self, *args, **kwargs) -> LazyBuffer:
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, grad: Tensor):
        raise NotImplementedError(f"{type(self).__name__}.backward")

    def jvp(self, *tangents: Tensor) -> Tensor:
        raise RuntimeError(
            f"Trying to use forward AD with {type(self).__name__}, which has no JVP rule (forward-mode "
            "derivative) yet; compute this derivative with reverse mode (autograd.grad) instead"
        )

    def needed_for(self, value: LazyBuffer, *inputs: int) -> LazyBuffer | None:
        """`value` if the gradient of one of `inputs` (by position) needs it, or forward AD
        is on; else None. Saving only what is needed, as PyTorch does, means changing the
        rest in place later is allowed."""
        if forward_ad._current is not None or any(self.needs_input_grad[i] for i in inputs):
            return value
        return None

    def save_for_backward(self, *values: LazyBuffer | None) -> None:
        """Keep these for backward/jvp: any of forward's inputs, its output, other values, or None."""
        self._to_save = values

    @property
    def saved_tensors(self) -> tuple[Tensor, ...]:
        """What forward saved, as Tensors; raises if one was modified in place since."""
        if self.released:
            raise RuntimeError(
                "Trying to backward through the graph a second time (or directly access saved tensors after "
                "they have already been freed). Specify retain_graph=True if you need to backward through the "
                "graph a second time or if you need to access saved tensors after calling backward."
            )
        for t, version in zip(self._saved, self._versions):
            if t is not None and t._version != version:
                made_by = f"output 0 of {t._ctx.name}" if t._ctx is not None else "a leaf tensor"
                raise RuntimeError(
                    "one of the variables needed for gradient computation has been modified by an inplace "
                    f"operation: [{t.dtype.name} tensor of shape {list(t.shape)}], saved by {self.name} and "
                    f"{made_by}, is at version {t._version}; expected version {version} instead. Hint: "
                    "clone() the tensor before changing it in place, or change it out of place."
                )
        return self._saved

    @classmethod
    def apply(cls, *tensors: Tensor, **kwargs) -> Tensor:
        """Run the op on `tensors`; record it for backward when an input requires grad in grad
        mode; give the output a tangent when an input has one (forward AD)."""
        ctx = cls.__new__(cls)  # (no __init__: this is the hottest path of graph building)
        ctx.needs_input_grad = needs = tuple([t.requires_grad for t in tensors])
        ctx.requires_grad = requires_grad = True in needs and is_grad_enabled()
        in_lbs = [t.lazydata for t in tensors]
        out = _tensor_class()._from_lazy(ctx.forward(*in_lbs, **kwargs), requires_grad)
        tangents = forward_ad.input_tangents(tensors) if forward_ad._current is not None else None
        if requires_grad:
            # where each input's gradient goes: its Function, the leaf itself, or None
            ctx.next = tuple([(t._ctx or t) if t.requires_grad else None for t in tensors])
            ctx.out_shape = out.lazydata.shape  # for drawing the graph (smolgrad.viz.graph)
            out._ctx = ctx
        if requires_grad or tangents is not None:
            ctx._pack(tensors, in_lbs, out)
        if tangents is not None:
            forward_ad.set_output_tangent(out, ctx, tensors, tangents)
        return out

    def _pack(self, tensors: Sequence[Tensor], in_lbs: list[LazyBuffer], out: Tensor) -> None:
        """Turn what forward saved into Tensors: the input or output tensor itself where it is
        one (so double backward sees its history), a constant otherwise."""
        Tensor = _tensor_class()
        saved = []
        for lb in self._to_save:
            if lb is None:
                saved.append(None)
                continue
            if lb is out.lazydata:
                t = out
            else:
                t = next((x for x, x_lb in zip(tensors, in_lbs) if x_lb is lb), None)
                if t is None:
                    t = Tensor._from_lazy(lb)
            if self.requires_grad:
                lb.base.saved = True  # backward will read it: store it, don't fuse it away
            saved.append(t)
        self._saved = tuple(saved)
        self._versions = tuple(t._version if t is not None else 0 for t in saved)
        self._to_save = ()

    def release(self) -> None:
        """Drop what backward needed (like PyTorch freeing saved tensors)."""
        keep = {"needs_input_grad", "requires_grad", "retained"}
        for k in [k for k in self.__dict__ if k not in keep]:
            del self.__dict__[k]
        self.next = ()
        self.released = True

    @property
    def name(self) -> str:
        return type(self).__name__ + "Backward"

    def __repr__(self) -> str:
        return f"<{self.name}>"


_TENSOR = None


def _tensor_class():
    """smolgrad.tensor.Tensor (imported on first use: tensor.py imports this module)."""
    global _TENSOR
    if _TENSOR is None:
        from ..tensor import Tensor

        _TENSOR = Tensor
    return _TENSOR


def _node(t: Tensor):
    """The graph node a gradient for `t` is collected at: its Function, or itself (a leaf)."""
    return t._ctx if t._ctx is not None else t


def _toposort(roots: Sequence) -> list:
    """Graph nodes (Functions and leaf Tensors) reachable from `roots`, inputs before outputs."""

    def next_nodes(node) -> list:
        if not isinstance(node, Function):
            return []
        if node.released:
            raise RuntimeError(
                "Trying to backward through the graph a second time (or directly access saved tensors after "
                "they have already been freed). Specify retain_graph=True if you need to backward through the "
                "graph a second time."
            )
        return [n for n in node.next if n is not None]

    return postorder(roots, next_nodes)


def _initial_grad(out: Tensor, grad) -> Tensor:
    from ..creation import ones_like
    from ..tensor import Tensor

    if grad is None:
        if out.numel() != 1:
            raise RuntimeError(
                f"grad can be implicitly created only for scalar outputs; got shape {out.shape}. "
                "Pass gradient=... (a tensor of the output's shape) to backward()."
            )
        return ones_like(out)
    if not isinstance(grad, Tensor):
        grad = Tensor(grad, dtype=out.dtype, device=out.device)
    if grad.shape != out.shape:
        raise RuntimeError(f"backward: gradient has shape {grad.shape} but the output has shape {out.shape}")
    if grad.device != out.device:
        raise RuntimeError(f"backward: gradient is on {grad.device} but the output is on {out.device}")
    return grad.type(out.dtype)


def run_backward(
    outputs: Sequence[Tensor],
    grad_outputs: Sequence,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    inputs: Sequence[Tensor] | None = None,
    accumulate: bool = True,
) -> dict[int, Tensor]:
    """Propagate gradients from `outputs` back through the recorded graph.

    With `accumulate`, gradients reaching leaf tensors (all of them, or only `inputs` when
    given) are added to their `.grad`; otherwise the gradients reaching `inputs` are returned,
    keyed by the id of each input's graph node, and `.grad` is untouched. With `create_graph`,
    the backward formulas are recorded, so the gradients can be differentiated again."""
    if retain_graph is None:
        retain_graph = create_graph
    for i, o in enumerate(outputs):
        if not o.requires_grad:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not have a grad_fn")
    outer_callbacks = getattr(_state, "callbacks", None)
    _state.callbacks = callbacks = []
    try:
        captured = _propagate(outputs, grad_outputs, retain_graph, create_graph, inputs, accumulate)
    finally:
        _state.callbacks = outer_callbacks
    for callback in callbacks:  # queue_callback: after the whole pass, in the order queued
        callback()
    return captured


def queue_callback(callback) -> None:
    """Run `callback()` once the current backward pass has finished (torch's
    `Variable._execution_engine.queue_callback`); only callable during backward, e.g. from a hook."""
    callbacks = getattr(_state, "callbacks", None)
    if callbacks is None:
        raise RuntimeError("queue_callback: no backward pass is running; call it from a hook during backward()")
    callbacks.append(callback)


def _propagate(outputs, grad_outputs, retain_graph, create_graph, inputs, accumulate) -> dict[int, Tensor]:
    """run_backward's walk over the graph (see there)."""
    grads: dict[int, Tensor] = {}
    roots = []
    with set_grad_mode(create_graph), autocast_mode.suspended():  # backward runs the forward's dtypes
        for o, g in zip(outputs, grad_outputs):
            node, g = _node(o), _initial_grad(o, g)
            grads[id(node)] = grads[id(node)] + g if id(node) in grads else g
            roots.append(node)
        wanted = {id(_node(t)) for t in inputs} if inputs is not None else None
        captured: dict[int, Tensor] = {}
        for node in reversed(_toposort(roots)):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            hooks = getattr(node, "_backward_hooks", None)
            if hooks:  # Tensor.register_hook: on the node's total gradient, before it is captured or used
                g = _run_tensor_hooks(hooks, g)
            if wanted is not None and id(node) in wanted:
                captured[id(node)] = g
            if not isinstance(node, Function):  # a leaf
                if accumulate and (wanted is None or id(node) in wanted):
                    node._accumulate_grad(g, create_graph)
                    hooks = getattr(node, "_post_accumulate_grad_hooks", None)
                    for hook in list(hooks.values()) if hooks else ():  # Tensor.register_post_accumulate_grad_hook
                        hook(node)
                continue
            retained = getattr(node, "retained", None)
            if retained is not None and accumulate:  # Tensor.retain_grad()
                retained._accumulate_grad(g, create_graph)
            in_grads = node.backward(g)
            if not isinstance(in_grads, tuple):
                in_grads = (in_grads,)
            for nxt, pg in zip(node.next, in_grads):
                if pg is None or nxt is None:
                    continue
                grads[id(nxt)] = grads[id(nxt)] + pg if id(nxt) in grads else pg
            if not retain_graph:
                node.release()
    return captured


def _run_tensor_hooks(hooks: dict, g: Tensor) -> Tensor:
    """Run Tensor.register_hook's hooks in registration order, each on the previous one's
    result; a hook returning a tensor replaces the gradient, one returning None keeps it."""
    Tensor = _tensor_class()
    for hook in list(hooks.values()):
        out = hook(g)
        if out is None:
            continue
        name = getattr(hook, "__name__", type(hook).__name__)
        if not isinstance(out, Tensor):
            raise TypeError(f"hook '{name}' (registered with Tensor.register_hook) returned a {type(out).__name__}; "
                            "a tensor hook must return a Tensor (the new gradient) or None")
        for what, was, got in (("size", list(g.shape), list(out.shape)), ("type", g.dtype.name, out.dtype.name),
                               ("device", g.device, out.device)):
            if was != got:
                raise RuntimeError(f"hook '{name}' has changed the {what} of value (was {was} got {got}); a tensor "
                                   "hook must return a gradient of the tensor's shape, dtype and device")
        g = out
    return g


class set_grad_mode(_GradMode):
    """Grad mode set to `mode` inside the block (torch.set_grad_enabled as a context)."""

    def __init__(self, mode: bool):
        self.enabled = bool(mode)


def _as_list(x) -> list:
    from ..tensor import Tensor

    return [x] if isinstance(x, Tensor) else list(x)


def grad(
    outputs: Tensor | Sequence[Tensor],
    inputs: Tensor | Sequence[Tensor],
    grad_outputs=None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    allow_unused: bool | None = None,
    materialize_grads: bool = False,
) -> tuple[Tensor | None, ...]:
    """Gradients of `outputs` with respect to `inputs`, returned (not stored in .grad).

    With `create_graph=True` the returned gradients are differentiable (higher-order
    derivatives, gradient penalties, Hessian-vector products)."""
    from ..creation import zeros_like

    outputs, inputs = _as_list(outputs), _as_list(inputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    else:
        grad_outputs = _as_list(grad_outputs)
        if len(grad_outputs) != len(outputs):
            raise RuntimeError(f"grad requires one grad_output per output: got {len(grad_outputs)} for {len(outputs)}")
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            raise RuntimeError(f"One of the differentiated Tensors (input {i}) does not require grad")
    allow_unused = materialize_grads if allow_unused is None else allow_unused
    captured = run_backward(outputs, grad_outputs, retain_graph, create_graph, inputs, accumulate=False)
    result = []
    for i, t in enumerate(inputs):
        g = captured.get(id(_node(t)))
        if g is None:
            if not allow_unused:
                raise RuntimeError(
                    f"One of the differentiated Tensors (input {i}) appears to not have been used in the graph. "
                    "Set allow_unused=True if this is the desired behavior."
                )
            if materialize_grads:
                g = zeros_like(t)
        result.append(g)
    return tuple(result)


def backward(
    tensors: Tensor | Iterable[Tensor],
    grad_tensors=None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    inputs=None,
) -> None:
    """Accumulate gradients of `tensors` into the leaves' `.grad` (torch.autograd.backward)."""
    tensors = _as_list(tensors)
    grad_tensors = [None] * len(tensors) if grad_tensors is None else _as_list(grad_tensors)
    inputs = None if inputs is None else _as_list(inputs)
    run_backward(tensors, grad_tensors, retain_graph, create_graph, inputs)

