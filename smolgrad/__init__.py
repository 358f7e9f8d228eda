"""smolgrad: a small deep-learning library whose tensors live in WebGPU buffers,
with a NumPy fallback device and PyTorch's names and semantics."""

from __future__ import annotations

from . import autograd
from .autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .autograd import inference_mode, is_inference_mode_enabled
from .creation import (
    cat,
    empty,
    empty_like,
    eye,
    full,
    full_like,
    generator,
    initial_seed,
    linspace,
    logspace,
    manual_seed,
    meshgrid,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    seed,
    stack,
    tensor,
    zeros,
    zeros_like,
)
from .creation import atleast_1d, atleast_2d, atleast_3d, broadcast_tensors
from .creation import column_stack, dstack, hstack, row_stack, vstack
from .creation import randperm, tril_indices, triu_indices
from .tensor_reduce import std_mean, var_mean
from .device import default_device, devices, set_default_device
from .dtypes import DType, bool_, float16, float32, float64, int32, int64
from .tensor import Tensor, arange, broadcast_shapes, where
from .tensor import erf, masked_fill, tril, triu  # functional forms of Tensor methods nn adds
from .tensor import index_add, index_copy, index_fill, scatter, scatter_add, scatter_reduce
from .random import Generator, default_generator
from .einsum import einsum
from . import linalg
from .autocast_mode import autocast, get_autocast_dtype, is_autocast_enabled
from . import amp

bool = bool_  # noqa: A001  (torch.bool)
float = float32  # noqa: A001  (torch.float)
double = float64
half = float16
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
from .compiled import CompiledFunction, compile  # noqa: E402,A004  (torch.compile)


def stats(device: str | None = None) -> dict[str, int]:
    """Counters since start or the last `reset_stats()`: kernels, dispatches,
    kernels_compiled, pipeline_cache_hits, bytes_allocated, peak_bytes, submits,
    pool_hits, readbacks. For one device, or summed over every device used so far."""
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


def empty_cache(device: str | None = None) -> None:
    """Release the unused buffers the device's allocator keeps for reuse (torch.cuda.empty_cache);
    of one device, or of every device used so far. Buffers in use are not touched."""
    from .device import _backends, canonical, get_backend

    backends = [get_backend(canonical(device))] if device is not None else list(_backends.values())
    for backend in backends:
        backend.empty_cache()


def _unary(name):
    def fn(x: Tensor, *args, **kwargs) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"{name}(): argument 'input' must be Tensor, not {type(x).__name__}")
        return getattr(x, name)(*args, **kwargs)

    fn.__name__ = name
    fn.__doc__ = f"Functional form of Tensor.{name}."
    return fn


for _name in (
    "exp log sqrt rsqrt reciprocal sin cos tanh sigmoid relu abs sign neg square clamp clip "
    "sum mean max min amax amin var std logsumexp argmax argmin softmax log_softmax "
    "matmul reshape permute transpose unsqueeze squeeze flatten flip gather chunk split narrow "
    "maximum minimum add sub mul div dot t "
    "clone topk sort argsort msort multinomial cumsum cumprod index_select tile roll take_along_dim "
    "outer ger bmm mm addmm baddbmm diag diagonal trace norm dist prod all any count_nonzero "
    "isnan isinf isfinite isposinf isneginf nan_to_num allclose isclose lerp fmod floor_divide "
    "floor ceil round trunc fix frac log1p expm1 log2 log10 exp2 atan2 arctan2 asin acos atan arcsin arccos arctan "
    "sinh cosh asinh acosh atanh arcsinh arccosh arctanh hypot logaddexp "
    "nonzero argwhere masked_select unique bincount histc unflatten movedim moveaxis swapaxes swapdims "
    "eq ne lt le gt ge greater less greater_equal less_equal not_equal "
    "logical_not logical_and logical_or logical_xor unbind numel tan logit addcmul addcdiv "
    "broadcast_to diff nansum nanmean tensor_split"
).split():
    globals()[_name] = _unary(_name)
del _name


def is_tensor(obj) -> bool:
    """Whether obj is a smolgrad Tensor (torch.is_tensor)."""
    return isinstance(obj, Tensor)


def pow(input, exponent) -> Tensor:  # noqa: A001
    """input ** exponent elementwise; either may be a Python number (torch.pow)."""
    if isinstance(input, Tensor):
        return input.pow(exponent)
    if not isinstance(exponent, Tensor):
        raise TypeError("pow: at least one of input and exponent must be a Tensor")
    return exponent.__rpow__(input)


def remainder(input, other) -> Tensor:
    """The remainder of input / other with the sign of other (Python's %); input may be a number."""
    if isinstance(input, Tensor):
        return input.remainder(other)
    if not isinstance(other, Tensor):
        raise TypeError("remainder: at least one of input and other must be a Tensor")
    return other.__rmod__(input)


def repeat_interleave(input: Tensor, repeats=None, dim=None, *, output_size=None) -> Tensor:
    """Each element repeated `repeats` times along dim; with only an integer tensor of
    repeats r, the indices 0..len(r)-1 each repeated r[i] times (reads r back to the host)."""
    if repeats is None:
        return arange(input.shape[0] if input.ndim else 1, device=input.device).repeat_interleave(input)
    return input.repeat_interleave(repeats, dim, output_size=output_size)

from . import nn  # noqa: E402  (nn imports Tensor from here)
from . import data  # noqa: E402
from . import optim  # noqa: E402
from . import utils  # noqa: E402  (smolgrad.utils.data: PyTorch's path to smolgrad.data)
from .serialization import load, save  # noqa: E402
