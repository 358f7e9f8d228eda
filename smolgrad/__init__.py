"""smolgrad: a small deep-learning library whose tensors live in WebGPU buffers,
with a NumPy fallback device and PyTorch's names and semantics."""

from __future__ import annotations

from . import autograd
from .autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .creation import (
    cat,
    empty,
    empty_like,
    eye,
    full,
    full_like,
    generator,
    manual_seed,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    stack,
    tensor,
    zeros,
    zeros_like,
)
from .device import default_device, devices, set_default_device
from .dtypes import DType, bool_, float32, float64, int32, int64
from .tensor import Tensor, arange, broadcast_shapes, where
from .tensor import erf, masked_fill, tril, triu  # functional forms of Tensor methods nn adds
from .tensor import index_add, index_copy, index_fill, scatter, scatter_add

bool = bool_  # noqa: A001  (torch.bool)
float = float32  # noqa: A001  (torch.float)
double = float64
long = int64
int = int32  # noqa: A001  (torch.int)

__version__ = "0.1.0"


def realize(*tensors: Tensor) -> None:
    """Compute the given tensors now (in one backend run per device)."""
    from .lazy import realize as _realize

    _realize(*[t.lazydata for t in tensors])


def synchronize(device: str | None = None) -> None:
    """Wait until the device has finished all submitted work."""
    from .device import canonical, get_backend

    get_backend(canonical(device)).synchronize()


from .profiler import profile  # noqa: E402


def stats(device: str | None = None) -> dict[str, int]:
    """Counters since start or the last `reset_stats()`: kernels, dispatches,
    kernels_compiled, pipeline_cache_hits, bytes_allocated, peak_bytes, submits,
    pool_hits. For one device, or summed over every device used so far."""
    from .backend.base import STAT_KEYS
    from .device import _backends, canonical, get_backend

    if device is not None:
        return dict(get_backend(canonical(device)).stats)
    total = dict.fromkeys(STAT_KEYS, 0)
    for backend in _backends.values():
        for key in STAT_KEYS:
            total[key] += backend.stats[key]
    return total


def reset_stats(device: str | None = None) -> None:
    """Zero the counters of `stats()` (of one device, or of every device used so far)."""
    from .device import _backends, canonical, get_backend

    backends = [get_backend(canonical(device))] if device is not None else list(_backends.values())
    for backend in backends:
        backend.reset_stats()


def _unary(name):
    def fn(x: Tensor, *args, **kwargs) -> Tensor:
        return getattr(x, name)(*args, **kwargs)

    fn.__name__ = name
    fn.__doc__ = f"Functional form of Tensor.{name}."
    return fn


for _name in (
    "exp log sqrt rsqrt reciprocal sin cos tanh sigmoid relu abs sign neg square clamp clip "
    "sum mean max min amax amin var std logsumexp argmax argmin softmax log_softmax "
    "matmul reshape permute transpose unsqueeze squeeze flatten flip gather chunk split narrow "
    "maximum minimum add sub mul div pow dot t"
).split():
    globals()[_name] = _unary(_name)
del _name

from . import nn  # noqa: E402  (nn imports Tensor from here)
from . import data  # noqa: E402
from . import optim  # noqa: E402
from . import utils  # noqa: E402  (smolgrad.utils.data: PyTorch's path to smolgrad.data)
from .serialization import load, save  # noqa: E402
