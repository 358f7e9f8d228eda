"""Function transforms after torch.func: `grad`, `grad_and_value`, `vjp`, `jvp`, `jacrev`,
`jacfwd`, `hessian`.

Each takes a function of Tensors and returns a new function. Inputs need not require grad.
Transforms nest: `grad(grad(f))`, `jacrev(jacrev(f))` (reverse over reverse) and
`jacfwd(jacrev(f))` (forward over reverse, what `hessian` uses). Forward mode cannot nest
inside itself (`jacfwd(jacfwd(f))`): one forward-AD level at a time, as in forward_ad.
Jacobians are built one row (jacrev) or one column (jacfwd) at a time.
"""

from __future__ import annotations

from typing import Callable, Sequence

from .autograd.engine import enable_grad, is_grad_enabled
from .autograd.functional import _forward, _grads, differentiable_input, jacobian
from .tensor import Tensor

__all__ = ["grad", "grad_and_value", "vjp", "jvp", "jacrev", "jacfwd", "hessian", "vmap"]


def _argnums(argnums, n: int, fn: str) -> tuple[tuple[int, ...], bool]:
    is_tuple = isinstance(argnums, (tuple, list))
    nums = tuple(argnums) if is_tuple else (argnums,)
    for a in nums:
        if not isinstance(a, int) or not -n <= a < n:
            raise RuntimeError(f"{fn}: got argnums={argnums!r} for a function called with {n} positional arguments")
    return tuple(a % n for a in nums), is_tuple


def _split_aux(out, has_aux: bool, fn: str):
    if not has_aux:
        return out, None
    if not (isinstance(out, tuple) and len(out) == 2):
        raise RuntimeError(f"{fn}(f, has_aux=True): f must return a (output, aux) tuple")
    return out


def _track(args: Sequence, nums: tuple[int, ...], fn: str) -> tuple[list, bool]:
    """args with those at `nums` made differentiable; whether an outer derivative needs the graph."""
    args = list(args)
    keep = any(isinstance(a, Tensor) and a.requires_grad for a in args)  # an outer transform is differentiating
    for i in nums:
        if not isinstance(args[i], Tensor):
            raise RuntimeError(f"{fn}: argument {i} must be a Tensor, got {type(args[i]).__name__}")
        args[i] = differentiable_input(args[i], keep)
    return args, keep and is_grad_enabled()


def _detach(t: Tensor, keep: bool) -> Tensor:
    return t if keep or not t.requires_grad else t.detach()


def grad_and_value(func: Callable, argnums=0, has_aux: bool = False) -> Callable:
    """A function returning (gradient of func's scalar output w.r.t. args[argnums], output)."""

    def wrapper(*args, **kwargs):
        nums, is_tuple = _argnums(argnums, len(args), "grad")
        with enable_grad():
            tracked, keep = _track(args, nums, "grad")
            out, aux = _split_aux(func(*tracked, **kwargs), has_aux, "grad")
            if not isinstance(out, Tensor) or out.numel() != 1:
                raise RuntimeError(
                    f"grad(f)(*args): Expected f(*args) to return a scalar Tensor, got "
                    f"{'a tensor of shape ' + str(out.shape) if isinstance(out, Tensor) else type(out).__name__}"
                )
            grads = _grads((out,), [tracked[i] for i in nums], None, keep, False, "grad")
        grads = tuple(_detach(g, keep) for g in grads)
        g = grads if is_tuple else grads[0]
        value = _detach(out, keep)
        return (g, (value, aux)) if has_aux else (g, value)

    return wrapper


def grad(func: Callable, argnums=0, has_aux: bool = False) -> Callable:
    """A function returning the gradient of func's scalar output w.r.t. args[argnums]."""
    both = grad_and_value(func, argnums, has_aux)

    def wrapper(*args, **kwargs):
        g, value = both(*args, **kwargs)
        return (g, value[1]) if has_aux else g

    return wrapper


def vjp(func: Callable, *primals: Tensor, has_aux: bool = False):
    """(func(*primals), vjp_fn[, aux]); vjp_fn(cotangent) gives one gradient per primal."""
    with enable_grad():
        tracked, keep = _track(primals, tuple(range(len(primals))), "vjp")
        out, aux = _split_aux(func(*tracked), has_aux, "vjp")
    outs = out if isinstance(out, tuple) else (out,)

    def vjp_fn(*cotangents):
        cts = cotangents[0] if len(cotangents) == 1 and isinstance(out, tuple) else cotangents
        if len(cts) != len(outs):
            raise RuntimeError(f"vjp_fn: expected {len(outs)} cotangents (one per output), got {len(cts)}")
        for o, c in zip(outs, cts):
            if c.shape != o.shape:
                raise RuntimeError(f"vjp_fn: cotangent of shape {c.shape} for an output of shape {o.shape}")
        with enable_grad():
            grads = _grads(outs, tracked, cts, keep, False, "vjp")
        return tuple(_detach(g, keep) for g in grads)

    result = tuple(_detach(o, keep) for o in outs)
    result = result if isinstance(out, tuple) else result[0]
    return (result, vjp_fn, aux) if has_aux else (result, vjp_fn)


def jvp(func: Callable, primals: Sequence[Tensor], tangents: Sequence[Tensor], *, strict: bool = False, has_aux: bool = False):
    """(func(*primals), J @ tangents[, aux]) by forward mode."""
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise RuntimeError("jvp(f, primals, tangents): Expected primals and tangents to be tuples")
    if len(primals) != len(tangents):
        raise RuntimeError(f"jvp: got {len(primals)} primals but {len(tangents)} tangents")
    aux = []

    def without_aux(*xs):
        out, extra = _split_aux(func(*xs), has_aux, "jvp")
        aux.append(extra)
        return out

    values, tans = _forward(without_aux, tuple(primals), tuple(tangents), strict, "jvp")
    if isinstance(values, tuple):
        return (values, tans, aux[-1]) if has_aux else (values, tans)
    return (values, tans[0], aux[-1]) if has_aux else (values, tans[0])


def _jacobian(func: Callable, argnums, has_aux: bool, fn: str, strategy: str) -> Callable:
    """jacrev/jacfwd: autograd.functional.jacobian of func as a function of args[argnums]."""

    def wrapper(*args, **kwargs):
        nums, is_tuple = _argnums(argnums, len(args), fn)
        for i in nums:
            if not isinstance(args[i], Tensor):
                raise RuntimeError(f"{fn}: argument {i} must be a Tensor, got {type(args[i]).__name__}")
        aux = []

        def of_differentiated(*xs):
            full = list(args)
            for i, x in zip(nums, xs):
                full[i] = x
            out, extra = _split_aux(func(*full, **kwargs), has_aux, fn)
            aux.append(extra)
            return out

        keep = is_grad_enabled() and any(isinstance(a, Tensor) and a.requires_grad for a in args)  # an outer transform
        inputs = tuple(args[i] for i in nums)
        jac = jacobian(of_differentiated, inputs if is_tuple else inputs[0], create_graph=keep, strategy=strategy)
        return (jac, aux[-1]) if has_aux else jac

    return wrapper


def jacrev(func: Callable, argnums=0, *, has_aux: bool = False, chunk_size=None) -> Callable:
    """A function returning the Jacobian of func w.r.t. args[argnums] by reverse mode,
    of shape output.shape + input.shape (one backward pass per output element)."""
    return _jacobian(func, argnums, has_aux, "jacrev", "reverse-mode")


def jacfwd(func: Callable, argnums=0, has_aux: bool = False, *, randomness: str = "error") -> Callable:
    """A function returning the Jacobian of func w.r.t. args[argnums] by forward mode,
    of shape output.shape + input.shape (one forward pass per input element)."""
    return _jacobian(func, argnums, has_aux, "jacfwd", "forward-mode")


def hessian(func: Callable, argnums=0) -> Callable:
    """The Hessian of a scalar func w.r.t. args[argnums]: jacfwd(jacrev(func)), forward over reverse."""
    return jacfwd(jacrev(func, argnums), argnums)


def vmap(func: Callable, in_dims=0, out_dims=0, randomness: str = "error", *, chunk_size=None) -> Callable:
    """`func` evaluated over a batch dimension of its inputs, as one batched graph.

    `func` is traced once on one example's shapes, and the lazy graph it builds is rewritten
    into one graph over the whole batch (smolgrad/batching.py: a batching rule per primitive
    op), so nothing runs per example. `in_dims`: an int or None (not batched) per positional
    argument, or one int for all; `out_dims`: where the batch dim goes in each output.
    Limits: the function cannot read values (`.item()`, control flow on tensors); its outputs
    carry no autograd history, so differentiate inside (`vmap(grad(f))` gives per-example
    gradients) — a function whose output requires grad is refused; random draws inside are
    the same for every example (PyTorch's randomness="same")."""
    from . import batching

    if chunk_size is not None:
        raise NotImplementedError("vmap: chunk_size is not supported (the whole batch is one graph)")

    def wrapper(*args):
        dims = tuple(in_dims) if isinstance(in_dims, (tuple, list)) else (in_dims,) * len(args)
        if len(dims) != len(args):
            raise ValueError(f"vmap: in_dims has {len(dims)} entries but the function got {len(args)} positional arguments")
        size, traced, inputs = None, [], {}
        for i, (a, d) in enumerate(zip(args, dims)):
            if d is None:
                traced.append(a)
                continue
            if not isinstance(a, Tensor):
                raise ValueError(f"vmap: got in_dim={d} for argument {i}, which is a {type(a).__name__}, not a Tensor; use None for it")
            if a.ndim == 0 or not -a.ndim <= d < a.ndim:
                raise ValueError(f"vmap: in_dim={d} is out of range for argument {i} of shape {a.shape}")
            if a.requires_grad:
                raise RuntimeError(
                    f"vmap: argument {i} requires grad, but vmap's outputs carry no autograd history; differentiate "
                    "inside the vmapped function (vmap(grad(f))) or pass a detached tensor"
                )
            d %= a.ndim
            if size is not None and a.shape[d] != size:
                raise ValueError(f"vmap: expected all batched arguments to have the same size {size} along their in_dim, argument {i} has {a.shape[d]}")
            size = a.shape[d]
            order = (d, *[k for k in range(a.ndim) if k != d])
            batched = a.lazydata.permute(order).contiguous()
            p = batching.placeholder(batched.shape[1:], a.dtype, a.device)
            inputs[id(p)] = batched
            traced.append(Tensor._from_lazy(p))
        if size is None:
            raise ValueError("vmap: at least one argument must be batched (in_dims all None)")
        batching.tracing += 1
        try:
            out = func(*traced)
        finally:
            batching.tracing -= 1
        is_tuple = isinstance(out, tuple)
        outs = out if is_tuple else (out,)
        for o in outs:
            if not isinstance(o, Tensor):
                raise ValueError(f"vmap: the function must return Tensors, got {type(o).__name__}")
            if o.requires_grad:
                raise RuntimeError(
                    "vmap: the function's output requires grad (it uses tensors that require grad, e.g. a model's "
                    "parameters), but vmap's outputs carry no autograd history; differentiate inside the vmapped "
                    "function (vmap(grad(f))) or run it under no_grad"
                )
        o_dims = tuple(out_dims) if isinstance(out_dims, (tuple, list)) else (out_dims,) * len(outs)
        results = []
        for lb, d in zip(batching.batch([o.lazydata for o in outs], inputs, size), o_dims):
            t = Tensor._from_lazy(lb)
            d %= t.ndim
            results.append(t if d == 0 else t.permute(*range(1, d + 1), 0, *range(d + 1, t.ndim)))
        return tuple(results) if is_tuple else results[0]

    return wrapper
