"""Graph walking shared by the scheduler (LazyBuffers) and autograd (Tensors)."""

from __future__ import annotations

from typing import Callable, Iterable, TypeVar

T = TypeVar("T")


def postorder(roots: Iterable[T], children: Callable[[T], Iterable[T]]) -> list[T]:
    """Every node reachable from `roots` via `children`, each after its children.

    Iterative DFS, so graphs of any depth are fine; nodes are compared by identity."""
    order: list[T] = []
    visited: set[int] = set()
    stack: list[tuple[T, bool]] = [(r, False) for r in reversed(list(roots))]
    while stack:
        node, children_done = stack.pop()
        if children_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        for child in reversed(list(children(node))):
            if id(child) not in visited:
                stack.append((child, False))
    return order
