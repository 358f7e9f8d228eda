"""Higher-level autodiff of Python functions (torch.autograd.functional): `vjp`, `jvp`,
`jacobian`, `hessian`, `hvp`, `vhp`, with PyTorch's signatures and output structure.

`inputs` is a Tensor or a tuple of Tensors and `func` takes them as positional arguments;
results mirror that structure (a Tensor for a Tensor, a tuple for a tuple). Unless
`create_graph=True`, results are detached. Jacobians are built one row (reverse mode) or
one column (forward mode) at a time, as PyTorch does with `vectorize=False`.
"""

from __future__ import annotations

from typing import Callable

from . import forward_ad
from .engine import enable_grad, grad, no_grad


def _as_tuple(x, what: str, fn: str) -> tuple[bool, tuple]:
    from ..tensor import Tensor

    is_tuple = isinstance(x, (tuple, list))
    xs = tuple(x) if is_tuple else (x,)
    for i, t in enumerate(xs):
        if not isinstance(t, Tensor):
            raise TypeError(f"The {what} given to {fn} must be either a Tensor or a tuple of Tensors but the value at index {i} has type {type(t).__name__}.")
    return is_tuple, xs


def differentiable_input(x, keep_history: bool):
    """`x` as a tensor that requires grad. With `keep_history`, a tensor already in a graph
    keeps it (so an outer derivative sees through); a forward-AD tangent is always kept
    (forward over reverse); otherwise it is a fresh leaf."""
    from ..function import Alias

    if not x.dtype.is_floating_point:
        raise TypeError(f"only floating point tensors can be differentiated, got {x.dtype.name}")
    if keep_history and x.requires_grad:
        return Alias.apply(x)
    if x._fw is not None:
        with no_grad():  # a leaf with x's value and tangent
            y = Alias.apply(x)
        return y.requires_grad_(True)
    return x.detach().requires_grad_(True)


def _prepare_inputs(xs: tuple, create_graph: bool) -> tuple:
    return tuple(differentiable_input(x, create_graph) for x in xs)


def _finish(ts: tuple, is_tuple: bool, create_graph: bool):
    """Results detached from the graph unless create_graph (tangents, if any, are kept)."""
    ts = tuple(t.detach() if t is not None and t.requires_grad and not create_graph else t for t in ts)
    return ts if is_tuple else ts[0]


def _check_v(v, like: tuple, name: str, fn: str) -> tuple:
    """`v` as a tuple matching `like` (shapes); None only when every tensor has one element."""
    from ..creation import ones_like

    if v is None:
        if any(t.numel() != 1 for t in like):
            raise RuntimeError(f"The vector v can only be None if the {name} to the user-provided function is a single Tensor with a single element.")
        return tuple(ones_like(t.detach()) for t in like)
    _, vs = _as_tuple(v, "v", fn)
    if len(vs) != len(like):
        raise RuntimeError(f"{fn}: v has {len(vs)} tensors but the {name} has {len(like)}")
    for i, (a, b) in enumerate(zip(vs, like)):
        if a.shape != b.shape:
            raise RuntimeError(f"{fn}: mismatch in shape: entry {i} of v has shape {a.shape} but the {name} has shape {b.shape}")
    return vs


def _grads(outputs: tuple, inputs: tuple, grad_outputs, create_graph: bool, strict: bool, fn: str) -> tuple:
    """autograd.grad with unused inputs (and outputs outside the graph) giving zeros."""
    from ..creation import zeros_like

    pairs = [(o, g) for o, g in zip(outputs, grad_outputs)] if grad_outputs is not None else [(o, None) for o in outputs]
    pairs = [(o, g) for o, g in pairs if o.requires_grad]
    result = [None] * len(inputs)
    if pairs:
        result = list(
            grad([o for o, _ in pairs], inputs, [g for _, g in pairs] if grad_outputs is not None else None,
                 retain_graph=True, create_graph=create_graph, allow_unused=True)
        )  # fmt: skip
    for i, g in enumerate(result):
        if g is None:
            if strict:
                raise RuntimeError(
                    f"The output of the user-provided function is independent of input {i}. This is not allowed in "
                    f"strict mode ({fn})."
                )
            result[i] = zeros_like(inputs[i].detach())
    return tuple(result)


def vjp(func: Callable, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(inputs), v^T J): the vector-Jacobian product at `inputs`."""
    with enable_grad():
        in_tuple, xs = _as_tuple(inputs, "inputs", "vjp")
        xs = _prepare_inputs(xs, create_graph)
        out_tuple, ys = _as_tuple(func(*xs), "outputs of the user-provided function", "vjp")
        vs = _check_v(v, ys, "output", "vjp")
        result = _grads(ys, xs, vs, create_graph, strict, "vjp")
    return _finish(ys, out_tuple, create_graph), _finish(result, in_tuple, create_graph)


def jvp(func: Callable, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(inputs), J v): the Jacobian-vector product at `inputs`, by forward mode."""
    with enable_grad():
        in_tuple, xs = _as_tuple(inputs, "inputs", "jvp")
        xs = _prepare_inputs(xs, create_graph)
        vs = _check_v(v, xs, "input", "jvp")
        ys, tangents = _forward(func, xs, vs, strict, "jvp")
        out_tuple = isinstance(ys, tuple)
        ys = ys if out_tuple else (ys,)
    return _finish(ys, out_tuple, create_graph), _finish(tangents, out_tuple, create_graph)


def _forward(func: Callable, xs: tuple, vs: tuple, strict: bool, fn: str):
    """func's outputs and their tangents for input tangents `vs` (zeros where none flows)."""
    from ..creation import zeros_like

    with forward_ad.dual_level():
        outputs = func(*[forward_ad.make_dual(x, v) for x, v in zip(xs, vs)])
        out_tuple, ys = _as_tuple(outputs, "outputs of the user-provided function", fn)
        unpacked = [forward_ad.unpack_dual(y) for y in ys]
    tangents = []
    for i, (y, (primal, tangent)) in enumerate(zip(ys, unpacked)):
        if tangent is None:
            if strict:
                raise RuntimeError(f"The output {i} of the user-provided function does not depend on the inputs ({fn}, strict mode).")
            tangent = zeros_like(y.detach())
        tangents.append(tangent)
    primals = tuple(p for p, _ in unpacked)
    return (primals if out_tuple else primals[0]), tuple(tangents)


def jacobian(
    func: Callable,
    inputs,
    create_graph: bool = False,
    strict: bool = False,
    vectorize: bool = False,
    strategy: str = "reverse-mode",
):
    """d func / d inputs. Entry [i][j] has shape outputs[i].shape + inputs[j].shape; a Tensor
    input or output drops its level of nesting, as in PyTorch."""
    from ..creation import eye, stack, zeros

    if strategy not in ("reverse-mode", "forward-mode"):
        raise ValueError(f'Expected strategy to be either "forward-mode" or "reverse-mode", got {strategy!r}')
    with enable_grad():
        in_tuple, xs = _as_tuple(inputs, "inputs", "jacobian")
        if strategy == "reverse-mode" or create_graph:  # (forward mode needs no reverse graph otherwise)
            xs = _prepare_inputs(xs, create_graph)
        if strategy == "reverse-mode":
            out_tuple, ys = _as_tuple(func(*xs), "outputs of the user-provided function", "jacobian")
            blocks = []
            for y in ys:
                rows = [_grads((y.reshape(-1)[k],), xs, None, create_graph, strict, "jacobian") for k in range(y.numel())]
                blocks.append(tuple(
                    (stack([r[j] for r in rows]) if rows else zeros(0, *x.shape, dtype=x.dtype, device=x.device)).reshape(*y.shape, *x.shape)
                    for j, x in enumerate(xs)
                ))  # fmt: skip
        else:
            if not any(x.numel() for x in xs):
                raise RuntimeError("jacobian: the inputs have no elements (forward mode needs one to evaluate func)")
            columns = []  # per input: per element, the tuple of output tangents
            for j, x in enumerate(xs):
                basis = eye(x.numel(), dtype=x.dtype, device=x.device)
                cols = []
                for k in range(x.numel()):
                    vs = tuple(basis[k].reshape(x.shape) if i == j else _zero_like(xi) for i, xi in enumerate(xs))
                    ys, tangents = _forward(func, xs, vs, False, "jacobian")
                    cols.append(tangents)
                columns.append(cols)
            out_tuple = isinstance(ys, tuple)
            ys = ys if out_tuple else (ys,)
            blocks = tuple(
                tuple(stack([c[i] for c in columns[j]], dim=-1).reshape(*y.shape, *x.shape) for j, x in enumerate(xs))
                for i, y in enumerate(ys)
            )
    blocks = tuple(_finish(b, in_tuple, create_graph) for b in blocks)
    return blocks if out_tuple else blocks[0]


def _zero_like(x):
    from ..creation import zeros_like

    return zeros_like(x.detach())


def _scalar_output(func: Callable, xs: tuple, fn: str):
    out_tuple, ys = _as_tuple(func(*xs), "outputs of the user-provided function", fn)
    if out_tuple and len(ys) != 1 or ys[0].numel() != 1:
        raise RuntimeError(f"The function given to {fn} should return a single Tensor with a single element")
    return ys[0]


def hessian(
    func: Callable,
    inputs,
    create_graph: bool = False,
    strict: bool = False,
    vectorize: bool = False,
    outer_jacobian_strategy: str = "reverse-mode",
):
    """The Hessian of a scalar `func`: entry [i][j] has shape inputs[i].shape + inputs[j].shape."""
    in_tuple, xs = _as_tuple(inputs, "inputs", "hessian")

    def gradient(*args):
        args = _prepare_inputs(args, True)  # (forward mode hands in tangent-carrying inputs, not leaves)
        y = _scalar_output(func, args, "hessian")
        return _grads((y,), args, None, True, strict, "hessian")

    result = jacobian(gradient, xs, create_graph, strict, vectorize, outer_jacobian_strategy)
    return result if in_tuple else result[0][0]


def vhp(func: Callable, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(inputs), v^T H) for a scalar `func`, by double backward."""
    with enable_grad():
        in_tuple, xs = _as_tuple(inputs, "inputs", "vhp")
        xs = _prepare_inputs(xs, create_graph)
        vs = _check_v(v, xs, "input", "vhp")
        y = _scalar_output(func, xs, "vhp")
        gs = _grads((y,), xs, None, True, strict, "vhp")
        result = _grads(gs, xs, vs, create_graph, strict, "vhp")
    return _finish((y,), False, create_graph), _finish(result, in_tuple, create_graph)


def hvp(func: Callable, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(inputs), H v) for a scalar `func`, by forward mode over reverse mode."""
    with enable_grad():
        in_tuple, xs = _as_tuple(inputs, "inputs", "hvp")
        xs = _prepare_inputs(xs, create_graph)
        vs = _check_v(v, xs, "input", "hvp")

        def gradient(*args):
            y = _scalar_output(func, args, "hvp")
            gradient.value = y
            return _grads((y,), args, None, create_graph, strict, "hvp")

        _, result = _forward(gradient, xs, vs, strict, "hvp")
    return _finish((gradient.value,), False, create_graph), _finish(result, in_tuple, create_graph)
