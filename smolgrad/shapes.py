"""Shape arithmetic shared by Tensor and its op modules: argument parsing, dim
normalisation and broadcasting. A leaf module: it imports nothing of smolgrad."""

from __future__ import annotations


def shape_arg(shape, allow_negative: bool = False) -> tuple[int, ...]:
    """Accept f(2, 3), f((2, 3)) and f([2, 3])."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    out = tuple(int(s) for s in shape)
    if not allow_negative and any(s < 0 for s in out):
        raise ValueError(f"negative dimension in shape {out}")
    return out


def _norm_dim(dim: int, ndim: int, op: str) -> int:
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"{op}: dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {dim})")
    return dim % n


def _norm_dims(dim, ndim: int, op: str) -> tuple[int, ...]:
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    out = tuple(_norm_dim(d, ndim, op) for d in dims)
    if len(set(out)) != len(out):
        raise RuntimeError(f"{op}: dim {dims} appears multiple times in the list of dims")
    return out if ndim else ()  # a 0-d tensor accepts dim 0 / -1 and has nothing to reduce


def broadcast_shapes(*shapes: tuple[int, ...], op: str = "broadcast") -> tuple[int, ...]:
    ndim = max(len(s) for s in shapes)
    padded = [(1,) * (ndim - len(s)) + tuple(s) for s in shapes]
    out = []
    for sizes in zip(*padded):
        big = max(sizes)
        if any(s not in (1, big) for s in sizes):
            raise RuntimeError(
                f"{op}: shapes {' and '.join(str(tuple(s)) for s in shapes)} cannot be broadcast together "
                f"(sizes {sizes} differ and none of them is 1)"
            )
        out.append(0 if 0 in sizes else big)
    return tuple(out)


def _broadcasts_to(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """Whether `shape` broadcasts to exactly `target`."""
    if len(shape) > len(target):
        return False
    return all(s in (1, t) for s, t in zip(reversed(shape), reversed(target)))
