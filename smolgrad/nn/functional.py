"""Functional forms of layers, activations and losses (torch.nn.functional).

Everything here is written in Tensor ops (DESIGN.md layer 1). Values that change from
step to step enter as tensors; Python floats here are constant hyperparameters."""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np

from .. import dtypes
from ..function import CrossEntropy as CrossEntropyOp
from ..function import Linear as LinearOp
from ..function import Windows
from ..tensor import Tensor, arange, check_same_device, where

# ----- padding -----


def pad(input: Tensor, pad: Sequence[int], mode: str = "constant", value: float = 0.0) -> Tensor:
    """Pad the last len(pad)//2 dims: pad = (last_lo, last_hi, second_last_lo, ...), like torch.

    Negative amounts crop. Only mode='constant' is supported."""
    if mode != "constant":
        raise NotImplementedError(f"pad: mode {mode!r} is not supported; only 'constant'")
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise RuntimeError(
            f"pad: padding length {len(pad)} must be even and at most 2 * the {input.ndim} dims of the input"
        )
    pairs = [(0, 0)] * input.ndim
    for i in range(len(pad) // 2):
        pairs[input.ndim - 1 - i] = (int(pad[2 * i]), int(pad[2 * i + 1]))
    return input.pad(pairs, value)


# ----- activations -----


def relu(input: Tensor) -> Tensor:
    return input.relu()


def sigmoid(input: Tensor) -> Tensor:
    return input.sigmoid()


def tanh(input: Tensor) -> Tensor:
    return input.tanh()


def silu(input: Tensor) -> Tensor:
    """x * sigmoid(x) (also called swish)."""
    return input * input.sigmoid()


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """x * Phi(x), Phi the standard normal CDF (approximate='none'), or the tanh
    approximation 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (approximate='tanh')."""
    if approximate == "none":
        return 0.5 * input * (1.0 + (input * (1.0 / math.sqrt(2.0))).erf())
    if approximate == "tanh":
        inner = math.sqrt(2.0 / math.pi) * (input + 0.044715 * input * input * input)
        return 0.5 * input * (1.0 + inner.tanh())
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def softmax(input: Tensor, dim: int, dtype=None) -> Tensor:
    """exp(x) / sum(exp(x)) along dim, computed with the maximum subtracted (stable)."""
    return (input.type(dtype) if dtype is not None else input).softmax(dim)


def log_softmax(input: Tensor, dim: int, dtype=None) -> Tensor:
    """x - logsumexp(x) along dim, computed with the maximum subtracted (stable)."""
    return (input.type(dtype) if dtype is not None else input).log_softmax(dim)


def dropout(input: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1-p), in training.

    The mask is drawn on the device, in the kernel that applies it (Philox, seeded by
    smolgrad.manual_seed): only a 12-byte key is uploaded per call. Backward multiplies
    by the same mask."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    if not input.dtype.is_floating_point:
        raise TypeError(f"dropout: expected a floating point input, got {input.dtype.name}")
    from ..creation import uniform_lazy  # (creation imports nn-free modules only; no cycle)

    (u,) = uniform_lazy(input.shape, input.dtype, input.device)
    # keep with probability 1 - p: u is a multiple of 2^-24, so P(u >= p) = 1 - p up to 2^-24
    scale = where(Tensor._from_lazy(u) >= p, 1.0 / (1.0 - p), 0.0).type(input.dtype)
    return input * scale


# ----- linear, embedding, normalization -----


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """input @ weight.T + bias, with weight of shape (out_features, in_features)."""
    if weight.ndim != 2:
        raise RuntimeError(f"linear: weight must be 2-D (out_features, in_features), got shape {weight.shape}")
    if input.ndim == 0 or input.shape[-1] != weight.shape[1]:
        raise RuntimeError(
            f"linear: input of shape {input.shape} has {input.shape[-1] if input.ndim else 0} features in its last dim, "
            f"but the weight of shape {weight.shape} expects {weight.shape[1]}"
        )
    tensors = [input, weight] + ([bias] if bias is not None else [])
    dt = input.dtype
    for t in tensors[1:]:
        check_same_device(input, t, "linear")
        dt = dtypes.promote(dt, t.dtype)
    if not dt.is_floating_point:
        raise TypeError(f"linear: expected floating point tensors, got {', '.join(t.dtype.name for t in tensors)}")
    x, weight = input.type(dt), weight.type(dt)
    fused_bias = bias is not None and bias.shape == (weight.shape[0],)
    if x.ndim != 2:  # one 2-D matmul over all leading dims (not a broadcast batched one)
        x = x.reshape(-1, x.shape[-1])
    if fused_bias:
        out = LinearOp.apply(x, weight, bias.type(dt))
    else:
        out = LinearOp.apply(x, weight)
    if input.ndim != 2:
        out = out.reshape(*input.shape[:-1], weight.shape[0])
    return out + bias if bias is not None and not fused_bias else out


def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """Rows of `weight` picked by the integer tensor `input`: shape input.shape + (dim,).

    Row `padding_idx` gets no gradient."""
    if input.dtype.is_floating_point or input.dtype.is_bool:
        raise RuntimeError(
            f"embedding: expected an integer index tensor (int64 or int32), got {input.dtype.name}; use .long()"
        )
    if weight.ndim != 2:
        raise RuntimeError(f"embedding: weight must be 2-D (num_embeddings, embedding_dim), got shape {weight.shape}")
    n = weight.shape[0]
    _check_known_range(input, 0, n, "embedding: index {} is out of range for an embedding with {} rows".format)
    out = weight[input]
    if padding_idx is not None:
        padding_idx = padding_idx + n if padding_idx < 0 else padding_idx
        out = where((input != padding_idx).unsqueeze(-1), out, out.detach())
    return out


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """int64 tensor of shape tensor.shape + (num_classes,) with 1 at each value's position.

    num_classes=-1 uses max(tensor) + 1 (which reads the values back from the device)."""
    if tensor.dtype.is_floating_point or tensor.dtype.is_bool:
        raise RuntimeError(f"one_hot is only applicable to index tensors (int64 or int32), got {tensor.dtype.name}")
    if num_classes == -1:
        if tensor.numel() == 0:
            raise RuntimeError("one_hot: can not infer the total number of classes from an empty tensor; pass num_classes")
        num_classes = int(tensor.max().item()) + 1
    _check_known_range(tensor, 0, num_classes, "one_hot: class value {} is out of range for num_classes={}".format)
    classes = arange(num_classes, device=tensor.device)
    return (tensor.long().unsqueeze(-1) == classes).long()


def layer_norm(
    input: Tensor,
    normalized_shape: int | Sequence[int],
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """(x - mean) / sqrt(var + eps) * weight + bias over the last len(normalized_shape)
    dims (biased variance, like torch)."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if len(shape) > input.ndim or input.shape[input.ndim - len(shape) :] != shape:
        raise RuntimeError(
            f"layer_norm: expected input with shape [*, {', '.join(map(str, shape))}], but got input of size {input.shape}"
        )
    dims = tuple(range(input.ndim - len(shape), input.ndim))
    centered = input - input.mean(dims, keepdim=True)
    var = (centered * centered).mean(dims, keepdim=True)
    out = centered * (var + eps).rsqrt()
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


# ----- convolution and pooling -----


def _pair(value, name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) for v in pair):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return pair


def _window_geometry(op: str, size, kernel, stride, padding, dilation, ceil_mode=False):
    """Per spatial dim: ((pad_lo, pad_hi), out_size) for input sizes `size`."""
    result = []
    for n, k, s, (lo, hi), d in zip(size, kernel, stride, padding, dilation):
        if k <= 0 or s <= 0 or d <= 0 or lo < 0 or hi < 0:
            raise ValueError(f"{op}: kernel size, stride and dilation must be positive and padding non-negative")
        span = n + lo + hi - d * (k - 1) - 1
        out = (-(-span // s) if ceil_mode else span // s) + 1
        if ceil_mode and (out - 1) * s >= n + lo:  # the last window must start inside the input or left padding
            out -= 1
        if out < 1:
            raise RuntimeError(
                f"{op}: input spatial size {tuple(size)} (padded by {padding}) is too small for a kernel of "
                f"{tuple(kernel)} with dilation {tuple(dilation)}: the output size would be {out}"
            )
        result.append(((lo, max(hi, (out - 1) * s + d * (k - 1) + 1 - n - lo)), out))
    return result


def _windows(x: Tensor, geometry, kernel, stride, dilation, value: float = 0.0) -> Tensor:
    """Pad the last two dims once, then view them as (..., OH, OW, KH, KW) windows (zero-copy)."""
    pads = [(0, 0)] * (x.ndim - 2) + [g[0] for g in geometry]
    x = x.pad(pads, value)
    # the padding may leave rows/cols that no window reads (e.g. ceil_mode off with stride > 1)
    return Windows.apply(x, dims=(x.ndim - 2, x.ndim - 1), kernel=tuple(kernel), stride=tuple(stride), dilation=tuple(dilation))


def _conv_padding(padding, kernel, dilation, stride) -> list[tuple[int, int]]:
    if isinstance(padding, str):
        if padding == "valid":
            return [(0, 0), (0, 0)]
        if padding == "same":
            if stride != (1, 1):
                raise ValueError("padding='same' is not supported for strided convolutions; use an explicit padding")
            total = [d * (k - 1) for k, d in zip(kernel, dilation)]
            return [(t // 2, t - t // 2) for t in total]
        raise ValueError(f"padding must be an int, a pair of ints, 'valid' or 'same', got {padding!r}")
    ph, pw = _pair(padding, "padding")
    return [(ph, ph), (pw, pw)]


def _check_same_place(op: str, input: Tensor, *others: Tensor | None) -> None:
    for t in others:
        if t is None:
            continue
        if t.device != input.device:
            raise RuntimeError(f"{op}: input is on {input.device} but a weight is on {t.device}; move them to one device")
        if t.dtype != input.dtype:
            raise RuntimeError(f"{op}: input is {input.dtype.name} but a weight is {t.dtype.name}; convert one of them")


def _batched(op: str, input: Tensor, spatial: int = 2) -> tuple[Tensor, bool]:
    """(N, C, H, W) input; an unbatched (C, H, W) one gets a batch dim of 1."""
    if input.ndim == spatial + 1:
        return input.unsqueeze(0), True
    if input.ndim != spatial + 2:
        raise RuntimeError(f"{op}: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape {input.shape}")
    return input, False


def conv2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride=1,
    padding=0,
    dilation=1,
    groups: int = 1,
) -> Tensor:
    """2-D cross-correlation of (N, C, H, W) input with (OC, C/groups, KH, KW) weight.

    Pads once, views the input as sliding windows (zero-copy) and does one matmul."""
    x, unbatched = _batched("conv2d", input)
    if weight.ndim != 4:
        raise RuntimeError(f"conv2d: weight must be 4-D (out_channels, in_channels/groups, kH, kW), got shape {weight.shape}")
    _check_same_place("conv2d", x, weight, bias)
    oc, cg, kh, kw = weight.shape
    n, c, h, w = x.shape
    if groups < 1 or c != cg * groups or oc % groups:
        raise RuntimeError(
            f"conv2d: given groups={groups}, weight of size {list(weight.shape)}, expected input{list(x.shape)} to have "
            f"{cg * groups} channels, but got {c} channels instead (out_channels must also be divisible by groups)"
        )
    if bias is not None and bias.shape != (oc,):
        raise RuntimeError(f"conv2d: bias must have shape ({oc},), got {bias.shape}")
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
    pads = _conv_padding(padding, (kh, kw), dilation, stride)
    geometry = _window_geometry("conv2d", (h, w), (kh, kw), stride, pads, dilation)
    cols = _windows(x, geometry, (kh, kw), stride, dilation)  # (N, C, OH, OW, KH, KW), a view
    oh, ow = cols.shape[2], cols.shape[3]
    g = groups
    # im2col, K-major: (G, C/G * KH * KW, N * OH * OW). Copying the windows in this order reads
    # runs of OW contiguous input elements (several times faster on numpy than (N*OH*OW, K)).
    cols = cols.reshape(n, g, cg, oh, ow, kh, kw).permute(1, 2, 5, 6, 0, 3, 4).reshape(g, cg * kh * kw, n * oh * ow)
    out = weight.reshape(g, oc // g, cg * kh * kw).matmul(cols)  # (G, OC/G, N*OH*OW)
    out = out.reshape(oc, n, oh, ow).permute(1, 0, 2, 3)
    if bias is not None:
        out = out + bias.reshape(1, oc, 1, 1)
    return out.squeeze(0) if unbatched else out


def _pool_args(op, kernel_size, stride, padding, dilation):
    kernel = _pair(kernel_size, "kernel_size")
    stride = kernel if stride is None or stride == [] else _pair(stride, "stride")
    ph, pw = _pair(padding, "padding")
    if ph > kernel[0] // 2 or pw > kernel[1] // 2:
        raise RuntimeError(f"{op}: pad should be at most half of the effective kernel size, but got pad={padding} and kernel_size={kernel}")
    return kernel, stride, [(ph, ph), (pw, pw)], _pair(dilation, "dilation")


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False) -> Tensor:
    """The maximum of each (dilated) window; padding counts as -inf.

    Where several elements of a window tie for the maximum, the gradient is split evenly
    among them (torch gives it all to one of them); sums of gradients are the same."""
    x, unbatched = _batched("max_pool2d", input)
    kernel, stride, pads, dilation = _pool_args("max_pool2d", kernel_size, stride, padding, dilation)
    geometry = _window_geometry("max_pool2d", x.shape[2:], kernel, stride, pads, dilation, ceil_mode)
    out = _windows(x, geometry, kernel, stride, dilation, value=-math.inf).amax((4, 5))
    return out.squeeze(0) if unbatched else out


def avg_pool2d(
    input: Tensor,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """The mean of each window. Padding counts as zeros in the divisor when
    count_include_pad (the default); windows past the padded edge (ceil_mode) never do."""
    x, unbatched = _batched("avg_pool2d", input)
    kernel, stride, pads, _ = _pool_args("avg_pool2d", kernel_size, stride, padding, 1)
    h, w = x.shape[2:]
    geometry = _window_geometry("avg_pool2d", (h, w), kernel, stride, pads, (1, 1), ceil_mode)
    total = _windows(x, geometry, kernel, stride, (1, 1)).sum((4, 5))
    if divisor_override is not None:
        if divisor_override == 0:
            raise RuntimeError("avg_pool2d: divisor_override must be non-zero")
        out = total / divisor_override
    else:
        counts = []
        for size, k, s, (pad_lo, _), (_, out_size) in zip((h, w), kernel, stride, pads, geometry):
            counts.append(_pool_counts(size, k, s, pad_lo, out_size, count_include_pad))
        divisor = np.outer(counts[0], counts[1])
        if (divisor == divisor.flat[0]).all():
            out = total / float(divisor.flat[0])
        else:
            out = total / Tensor(divisor.astype(x.dtype.np), dtype=x.dtype, device=x.device)
    return out.squeeze(0) if unbatched else out


def _pool_counts(n: int, k: int, s: int, pad: int, out: int, count_include_pad: bool) -> np.ndarray:
    """How many elements each window along one dim divides by (torch's rule)."""
    start = np.arange(out) * s - pad
    end = np.minimum(start + k, n + pad)
    if count_include_pad:
        return end - start
    return np.minimum(end, n) - np.maximum(start, 0)


# ----- losses -----


def _check_reduction(reduction: str) -> None:
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{reduction!r} is not a valid value for reduction; use 'mean', 'sum' or 'none'")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    _check_reduction(reduction)
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _check_known_range(index: Tensor, low: int, high: int, message, allowed: int | None = None) -> None:
    """Raise for out-of-range values that are already on the host-visible side (realized);
    computed indices are not forced (that would cost a device round trip)."""
    if not index.lazydata.is_realized() or index.numel() == 0:
        return
    vals = index.detach().numpy()
    if allowed is not None:
        vals = vals[vals != allowed]
    bad = vals[(vals < low) | (vals >= high)]
    if bad.size:
        raise IndexError(message(int(bad.flat[0]), high))


def _class_targets(op: str, input: Tensor, target: Tensor, ignore_index: int) -> int:
    """Check (N, C, ...) input against (N, ...) integer targets; return the class dim."""
    if target.dtype.is_floating_point or target.dtype.is_bool:
        raise RuntimeError(f"{op}: expected integer class indices as target (int64), got {target.dtype.name}")
    class_dim = 1 if input.ndim >= 2 else 0
    expected = input.shape[:class_dim] + input.shape[class_dim + 1 :]
    if target.shape != expected:
        raise RuntimeError(
            f"{op}: input of shape {input.shape} (classes in dim {class_dim}) needs a target of shape {expected}, "
            f"got {target.shape}"
        )
    if target.device != input.device:
        raise RuntimeError(f"{op}: input is on {input.device} but target is on {target.device}")
    n = input.shape[class_dim]
    message = f"{op}: target {{}} is out of bounds for {{}} classes".format
    _check_known_range(target, 0, n, message, allowed=ignore_index)
    return class_dim


def _class_weight(weight: Tensor | None, input: Tensor, class_dim: int, op: str) -> Tensor | None:
    if weight is None:
        return None
    n = input.shape[class_dim]
    if weight.shape != (n,):
        raise RuntimeError(f"{op}: weight must have one entry per class, shape ({n},), got {weight.shape}")
    return weight.type(input.dtype)


def _pick(logp: Tensor, target: Tensor, class_dim: int, ignore_index: int):
    """(logp at the target class, mask of targets that count) with the class dim removed."""
    valid = target != ignore_index
    safe = where(valid, target, 0).long()
    # a one-hot mask instead of gather: compare, select and sum fuse into one reduction,
    # and its backward is elementwise (gather's would be a scatter-add)
    classes = arange(logp.shape[class_dim], device=logp.device)
    classes = classes.reshape(tuple(-1 if d == class_dim else 1 for d in range(logp.ndim)))
    picked = where(classes == safe.unsqueeze(class_dim), logp, 0.0).sum(class_dim)
    return picked, valid, safe


def nll_loss(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> Tensor:
    """-input[n, target[n]] * weight[target[n]] from log-probabilities of shape (N, C, ...).

    'mean' divides by the summed weights of the targets that are not ignore_index."""
    _check_reduction(reduction)
    class_dim = _class_targets("nll_loss", input, target, ignore_index)
    w = _class_weight(weight, input, class_dim, "nll_loss")
    picked, valid, safe = _pick(input, target, class_dim, ignore_index)
    per = valid.type(input.dtype) if w is None else where(valid, w[safe], 0.0)
    loss = -picked * per
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / per.sum()


def cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Cross-entropy of logits (N, C, ...) against class indices (N, ...) or class
    probabilities (same shape as input), with torch's rules for weight, ignore_index,
    label_smoothing and reduction. Stable: finite for logits of any magnitude."""
    _check_reduction(reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
    class_dim = 1 if input.ndim >= 2 else 0
    if input.ndim == 2 and not target.dtype.is_floating_point and weight is None and label_smoothing == 0.0:
        _class_targets("cross_entropy", input, target, ignore_index)
        if not input.dtype.is_floating_point:
            raise RuntimeError(f"cross_entropy: expected floating point logits, got {input.dtype.name}")
        return CrossEntropyOp.apply(input, target, ignore_index=ignore_index, reduction=reduction)
    logp = input.log_softmax(class_dim)
    n_classes = input.shape[class_dim]
    if target.dtype.is_floating_point:
        return _soft_cross_entropy(logp, target, weight, reduction, label_smoothing, class_dim)
    nll = nll_loss(logp, target, weight, ignore_index, reduction)
    if label_smoothing == 0.0:
        return nll
    w = _class_weight(weight, input, class_dim, "cross_entropy")
    bshape = tuple(n_classes if d == class_dim else 1 for d in range(input.ndim))
    smooth = -(logp * w.reshape(bshape) if w is not None else logp).sum(class_dim)
    valid = target != ignore_index
    smooth = where(valid, smooth, 0.0)
    if reduction == "mean":
        denom = valid.type(input.dtype).sum() if w is None else where(valid, w[where(valid, target, 0).long()], 0.0).sum()
        smooth = smooth.sum() / denom
    elif reduction == "sum":
        smooth = smooth.sum()
    return (1.0 - label_smoothing) * nll + smooth * (label_smoothing / n_classes)


def _soft_cross_entropy(logp, target, weight, reduction, label_smoothing, class_dim):
    if target.shape != logp.shape:
        raise RuntimeError(
            f"cross_entropy: a floating point target holds class probabilities and must have the input's shape "
            f"{logp.shape}, got {target.shape}; pass integer class indices (int64) otherwise"
        )
    n_classes = logp.shape[class_dim]
    target = target.type(logp.dtype)
    if label_smoothing > 0.0:
        target = target * (1.0 - label_smoothing) + label_smoothing / n_classes
    w = _class_weight(weight, logp, class_dim, "cross_entropy")
    if w is not None:
        target = target * w.reshape(tuple(n_classes if d == class_dim else 1 for d in range(logp.ndim)))
    loss = -(logp * target).sum(class_dim)
    if reduction == "mean":
        return loss.sum() / (loss.numel() if loss.numel() else math.nan)
    return _reduce(loss, reduction)


def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Mean (or sum) of the squared differences (input - target)^2."""
    _check_reduction(reduction)
    if target.shape != input.shape:
        warnings.warn(
            f"mse_loss: target size {target.shape} is different from the input size {input.shape}; they will be "
            "broadcast, which is likely not what you want. Make sure they have the same size.",
            stacklevel=2,
        )
    diff = input - target
    return _reduce(diff * diff, reduction)


def binary_cross_entropy_with_logits(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    reduction: str = "mean",
    pos_weight: Tensor | None = None,
) -> Tensor:
    """Binary cross-entropy of sigmoid(input) against target in [0, 1], computed from the
    logits stably: (1 - t) x + (1 + (pos_weight - 1) t) softplus(-x)."""
    _check_reduction(reduction)
    if target.shape != input.shape:
        raise ValueError(f"Target size ({target.shape}) must be the same as input size ({input.shape})")
    target = target.type(input.dtype)
    softplus_neg = (-input).relu() + (-input.abs()).exp().add(1.0).log()  # log(1 + exp(-x)), no overflow
    if pos_weight is not None:
        loss = (1.0 - target) * input + (1.0 + (pos_weight - 1.0) * target) * softplus_neg
    else:
        loss = (1.0 - target) * input + softplus_neg
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


__all__ = [
    "pad",
    "relu",
    "sigmoid",
    "tanh",
    "silu",
    "gelu",
    "softmax",
    "log_softmax",
    "dropout",
    "linear",
    "embedding",
    "one_hot",
    "layer_norm",
    "conv2d",
    "max_pool2d",
    "avg_pool2d",
    "nll_loss",
    "cross_entropy",
    "mse_loss",
    "binary_cross_entropy_with_logits",
]
