"""How many threads NumPy's BLAS may use, changed around one product.

OpenBLAS splits every product of more than about 2^18 multiply-adds over all its
threads. For products of a few million multiply-adds (an MLP's layers, attention's
per-head matrices), waking the other threads costs more than it saves, and far more
on a machine whose cores are busy with other work (an idle OpenBLAS thread also spins
for a while, taking a core from the rest of the step): on a shared 2-core machine the
MNIST MLP's kernels ran 7-15x slower with two BLAS threads than with one, and the
default GPT step 3x slower. The NumPy backend runs such products on one thread (see
`one_thread` and numpy_backend.SMALL_GEMM).

Only NumPy's own OpenBLAS (the one in its wheel) is looked for; with any other BLAS
`one_thread` does nothing."""

from __future__ import annotations

import ctypes
import glob
import os

import numpy as np

# (get, set) function names in the OpenBLAS builds NumPy's wheels ship
_NAMES = (
    ("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
    ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
    ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
    ("openblas_get_num_threads", "openblas_set_num_threads"),
)


def _find():
    """(get, set) of the OpenBLAS that NumPy loaded, or None."""
    site = os.path.dirname(os.path.dirname(np.__file__))
    paths = glob.glob(os.path.join(site, "numpy.libs", "*openblas*")) + glob.glob(
        os.path.join(site, "numpy", ".dylibs", "*openblas*")
    )
    for path in paths:
        try:
            lib = ctypes.CDLL(path)  # (already loaded by NumPy: the same library)
        except OSError:
            continue
        for get, set_ in _NAMES:
            if hasattr(lib, get) and hasattr(lib, set_):
                return getattr(lib, get), getattr(lib, set_)
    return None


_FUNCS = _find()


def available() -> bool:
    """Whether NumPy's BLAS threads can be set."""
    return _FUNCS is not None


def one_thread() -> int | None:
    """Let BLAS use one thread; return the count to give back to `restore` (None: nothing
    was changed)."""
    if _FUNCS is None:
        return None
    get, set_ = _FUNCS
    n = get()
    if n <= 1:
        return None
    set_(1)
    return n


def restore(n: int | None) -> None:
    """Undo `one_thread`."""
    if n is not None:
        _FUNCS[1](n)
