"""DESIGN.md's layers: data flows down, and nothing below imports from above.

Every import in the package (module level or inside a function; not those under
`if TYPE_CHECKING:`) is checked against the layer of the importing module. Leaf modules
(dtypes, ops, view, the kernel IR, ...) may be imported from any layer and import only
leaves themselves. A new module must be given a layer here."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "smolgrad"

LEAVES = {
    "smolgrad.dtypes", "smolgrad.ops", "smolgrad.view", "smolgrad.shapes", "smolgrad.graph", "smolgrad.philox",
    "smolgrad.random", "smolgrad.profiler", "smolgrad.engine", "smolgrad.engine.kernel",
}
# (module name or package prefix, layer): 1 frontend, 2 tensor and autograd, 3 lazy graph,
# 4 engine, 5 backends and devices. The longest matching entry wins.
LAYERS = [
    ("smolgrad.nn", 1), ("smolgrad.optim", 1), ("smolgrad.data", 1), ("smolgrad.utils", 1), ("smolgrad.viz", 1),
    ("smolgrad.serialization", 1), ("smolgrad.compiled", 1), ("smolgrad.distributed", 1), ("smolgrad.amp", 1),
    ("smolgrad.tensor", 2), ("smolgrad.tensor_", 2), ("smolgrad.indexing", 2), ("smolgrad.creation", 2),
    ("smolgrad.function", 2), ("smolgrad.autograd", 2), ("smolgrad.storage", 2), ("smolgrad.linalg", 2),
    ("smolgrad.einsum", 2), ("smolgrad.func", 2), ("smolgrad.autocast_mode", 2), ("smolgrad.fused_attention", 2),
    ("smolgrad.lazy", 3), ("smolgrad.batching", 3),
    ("smolgrad.engine", 4),
    ("smolgrad.backend", 5), ("smolgrad.device", 5), ("smolgrad.shaders", 5),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(name: str) -> int | None:
    matches = [(len(prefix), layer) for prefix, layer in LAYERS if name == prefix or name.startswith(prefix)]
    return max(matches)[1] if matches else None


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every smolgrad import in the file, TYPE_CHECKING ones left out."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for n in ast.walk(node))
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("smolgrad")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("smolgrad"):
                continue
            if node.module is None or node.level and not node.module:
                found += [(node.lineno, f"{target}.{a.name}") for a in node.names]  # `from . import x`
            else:
                found += [(node.lineno, target)]
    return found


def resolve(name: str) -> str:
    """The module an imported name refers to (`smolgrad.engine.realize` for a module,
    the package for a name imported from its __init__)."""
    path = PACKAGE.parent / Path(*name.split("."))
    if path.with_suffix(".py").exists() or (path / "__init__.py").exists():
        return name
    return name.rpartition(".")[0]


SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if module_name(p) != "smolgrad")


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: module_name(p))
def test_no_import_from_a_higher_layer(path):
    name = module_name(path)
    leaf = name in LEAVES
    layer = layer_of(name)
    assert leaf or layer is not None, f"{name} has no layer: add it to LAYERS (or LEAVES) in tests/test_layers.py"
    bad = []
    for line, imported in imports(path):
        target = resolve(imported)
        if target == "smolgrad" or target == name:
            continue
        if target in LEAVES:
            continue
        if leaf:
            bad.append(f"line {line}: leaf module {name} imports {target}")
            continue
        target_layer = layer_of(target)
        if target_layer is None:
            bad.append(f"line {line}: {target} has no layer")
        elif target_layer < layer:
            bad.append(f"line {line}: {name} (layer {layer}) imports {target} (layer {target_layer}), which is above it")
    assert not bad, "\n".join(bad)
