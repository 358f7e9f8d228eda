"""Finds the hand-written WGSL templates of the top-level `shaders/` folder.

In a wheel they are installed as `smolgrad/shaders/`; in a source checkout or an
editable install they sit next to the package, in `<repo>/shaders/`."""

from __future__ import annotations

import functools
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def shader_dir() -> Path:
    for candidate in (_PACKAGE / "shaders", _PACKAGE.parent / "shaders"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"smolgrad's WGSL shaders were not found in {_PACKAGE / 'shaders'} or {_PACKAGE.parent / 'shaders'}; "
        "reinstall the package (pip install --force-reinstall smolgrad)"
    )


@functools.cache
def load_shader(name: str) -> str:
    """The text of shaders/<name>.wgsl."""
    return (shader_dir() / f"{name}.wgsl").read_text()
