"""torch.einsum: Einstein summation, composed of diagonal, sum, permute, reshape and matmul.

Operands are contracted left to right, two at a time; each pairwise contraction is one
batched matmul (indices in both operands and kept are the batch, those in both and not
kept are summed by the matmul), so nothing larger than the operands and the result is
built. Indices that only one operand has and nothing later needs are summed first."""

from __future__ import annotations

import math
import string

from .shapes import broadcast_shapes
from .tensor import Tensor


def _parse(equation: str, operands) -> tuple[list[str], str]:
    """Input subscripts (one letter per dim, '...' expanded) and the output subscript."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    inputs = lhs.split(",")
    if len(inputs) != len(operands):
        raise ValueError(f"einsum(): {len(inputs)} operands in the equation {equation!r} but {len(operands)} tensors given")
    free = iter(c for c in string.ascii_letters if c not in eq)
    n_ellipsis = 0
    for subs, x in zip(inputs, operands):
        if subs.count("...") > 1 or "." in subs.replace("...", ""):
            raise ValueError(f"einsum(): invalid subscript {subs!r} in {equation!r} (at most one '...')")
        letters = len(subs.replace("...", ""))
        if ("..." in subs and letters > x.ndim) or ("..." not in subs and letters != x.ndim):
            raise RuntimeError(
                f"einsum(): the number of subscripts in {subs!r} does not match the number of dimensions "
                f"({x.ndim}) of operand of shape {x.shape}"
            )
        if "..." in subs:
            n_ellipsis = max(n_ellipsis, x.ndim - letters)
    ell = "".join(next(free) for _ in range(n_ellipsis))
    expanded = []
    for subs, x in zip(inputs, operands):
        k = x.ndim - len(subs.replace("...", "")) if "..." in subs else 0
        expanded.append(subs.replace("...", ell[len(ell) - k :]))
    for subs in expanded:
        bad = [c for c in subs if c not in string.ascii_letters]
        if bad:
            raise ValueError(f"einsum(): subscripts must be letters, got {bad[0]!r} in {equation!r}")
    if arrow:
        if "..." not in rhs and ell and any("..." in s for s in inputs):
            raise ValueError(f"einsum(): output subscript {rhs!r} must contain '...' since the inputs do")
        out = rhs.replace("...", ell)
        if len(set(out)) != len(out):
            raise ValueError(f"einsum(): output subscript {rhs!r} includes a letter more than once")
        missing = [c for c in out if not any(c in s for s in expanded)]
        if missing or any(c not in string.ascii_letters for c in out):
            raise ValueError(f"einsum(): output subscript {rhs!r} has {missing or rhs!r} which no input has")
    else:  # implicit: the ellipsis dims, then the letters seen once, in alphabetical order
        counts = "".join(expanded)
        out = ell + "".join(sorted(c for c in set(counts) if counts.count(c) == 1 and c not in ell))
    return expanded, out


def _take_diagonals(x: Tensor, subs: str) -> tuple[Tensor, str]:
    """Repeated letters in one operand ('ii') become one dim: its diagonal."""
    while len(set(subs)) != len(subs):
        c = next(c for c in subs if subs.count(c) > 1)
        i, j = subs.index(c), subs.index(c, subs.index(c) + 1)
        if x.shape[i] != x.shape[j]:
            raise RuntimeError(f"einsum(): subscript {c!r} is repeated for operand of shape {x.shape} but the sizes differ")
        x = x.diagonal(0, i, j)
        subs = subs[:i] + subs[i + 1 : j] + subs[j + 1 :] + c
    return x, subs


def _sum_out(x: Tensor, subs: str, keep: set[str]) -> tuple[Tensor, str]:
    dims = [i for i, c in enumerate(subs) if c not in keep]
    if not dims:
        return x, subs
    return x.sum(tuple(dims)), "".join(c for c in subs if c in keep)


def _contract(a: Tensor, sa: str, b: Tensor, sb: str, keep: set[str]) -> tuple[Tensor, str]:
    """a and b multiplied, summing the letters they share that are not in `keep`."""
    batch = [c for c in sa if c in sb and c in keep]
    summed = [c for c in sa if c in sb and c not in keep]
    left = [c for c in sa if c not in sb]
    right = [c for c in sb if c not in sa]
    size = {c: n for s, x in ((sa, a), (sb, b)) for c, n in zip(s, x.shape)}
    for c in batch + summed:  # shared letters broadcast (size 1 against n)
        size[c] = broadcast_shapes((a.shape[sa.index(c)],), (b.shape[sb.index(c)],), op="einsum")[0]
    if not summed or not a.dtype.is_floating_point or not b.dtype.is_floating_point:
        order = batch + left + right + summed  # broadcast multiply, then sum
        out = _aligned(a, sa, order) * _aligned(b, sb, order)
        if summed:
            out = out.sum(tuple(range(len(order) - len(summed), len(order))))
        return out, "".join(batch + left + right)
    nb, nl, nr, ns = (math.prod(size[c] for c in g) for g in (batch, left, right, summed))
    a2 = a.permute([sa.index(c) for c in batch + left + summed])
    a2 = a2.expand([size[c] if c in batch + summed else -1 for c in batch + left + summed]).reshape(nb, nl, ns)
    b2 = b.permute([sb.index(c) for c in batch + summed + right])
    b2 = b2.expand([size[c] if c in batch + summed else -1 for c in batch + summed + right]).reshape(nb, ns, nr)
    out = (a2 @ b2).reshape([size[c] for c in batch + left + right])
    return out, "".join(batch + left + right)


def _aligned(x: Tensor, subs: str, order: list[str]) -> Tensor:
    """x permuted to the letters' order in `order`, with size-1 dims for letters it lacks."""
    mine = [c for c in order if c in subs]
    x = x.permute([subs.index(c) for c in mine])
    return x.reshape([x.shape[mine.index(c)] if c in subs else 1 for c in order])


def einsum(equation: str, *operands: Tensor) -> Tensor:
    """Sum of products of the operands' elements over the indices that the equation does not
    keep (torch.einsum), e.g. einsum('bij,bjk->bik', a, b); '...' and implicit output supported."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not operands or not all(isinstance(x, Tensor) for x in operands):
        raise TypeError("einsum(): expected one or more Tensor operands after the equation")
    for x in operands[1:]:
        if x.device != operands[0].device:
            raise RuntimeError(f"einsum(): all operands must be on one device, got {operands[0].device} and {x.device}")
    subs, out = _parse(equation, operands)
    terms = [_take_diagonals(x, s) for x, s in zip(operands, subs)]
    for c in out:
        sizes = [x.shape[s.index(c)] for x, s in terms if c in s]
        broadcast_shapes(*[(n,) for n in sizes], op=f"einsum() (subscript {c!r})")
    acc, sacc = None, ""
    for i, (x, s) in enumerate(terms):
        later = set(out).union(*[t[1] for t in terms[i + 1 :]])
        x, s = _sum_out(x, s, later | set(sacc))
        if acc is None:
            acc, sacc = x, s
            continue
        acc, sacc = _sum_out(acc, sacc, later | set(s))
        acc, sacc = _contract(acc, sacc, x, s, later)
    acc, sacc = _sum_out(acc, sacc, set(out))
    return acc.permute([sacc.index(c) for c in out]) if out else acc


__all__ = ["einsum"]
