"""Functional forms of layers, activations and losses (torch.nn.functional).

Everything here is written in Tensor ops (DESIGN.md layer 1). Values that change from
step to step enter as tensors; Python floats here are constant hyperparameters."""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np

from .. import dtypes
from ..autocast_mode import autocast_op
from ..function import CrossEntropy as CrossEntropyOp
from ..function import Gelu as GeluOp
from ..function import LayerNorm as LayerNormOp
from ..function import Linear as LinearOp
from ..function import Windows
from ..tensor import Tensor, arange, check_same_device, where

# ----- padding -----


def pad(input: Tensor, pad: Sequence[int], mode: str = "constant", value: float = 0.0) -> Tensor:
    """Pad the last len(pad)//2 dims: pad = (last_lo, last_hi, second_last_lo, ...), like torch.

    Negative amounts crop. Modes: 'constant' (value), 'reflect', 'replicate', 'circular'."""
    if mode not in ("constant", "reflect", "replicate", "circular"):
        raise NotImplementedError(
            f"pad: mode {mode!r} is not supported; use 'constant', 'reflect', 'replicate' or 'circular'"
        )
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise RuntimeError(
            f"pad: padding length {len(pad)} must be even and at most 2 * the {input.ndim} dims of the input"
        )
    if mode != "constant":
        return _pad_nonconstant(input, pad, mode, value)
    pairs = [(0, 0)] * input.ndim
    for i in range(len(pad) // 2):
        pairs[input.ndim - 1 - i] = (int(pad[2 * i]), int(pad[2 * i + 1]))
    return input.pad(pairs, 0.0 if value is None else value)


# ----- activations -----


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    return relu_(input) if inplace else input.relu()


def sigmoid(input: Tensor) -> Tensor:
    return input.sigmoid()


def tanh(input: Tensor) -> Tensor:
    return input.tanh()


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """x * sigmoid(x) (also called swish)."""
    if inplace:
        return _write_inplace("silu_", input, silu)
    return input * input.sigmoid()


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """x * Phi(x), Phi the standard normal CDF (approximate='none'), or the tanh
    approximation 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (approximate='tanh')."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    x = input if input.dtype.is_floating_point else input.float()
    return GeluOp.apply(x, approximate=approximate)


@autocast_op("float32")
def softmax(input: Tensor, dim: int, dtype=None) -> Tensor:
    """exp(x) / sum(exp(x)) along dim, computed with the maximum subtracted (stable)."""
    return (input.type(dtype) if dtype is not None else input).softmax(dim)


@autocast_op("float32")
def log_softmax(input: Tensor, dim: int, dtype=None) -> Tensor:
    """x - logsumexp(x) along dim, computed with the maximum subtracted (stable)."""
    return (input.type(dtype) if dtype is not None else input).log_softmax(dim)


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1-p), in training.

    The mask is drawn on the device, in the kernel that applies it (Philox, seeded by
    smolgrad.manual_seed): only a 12-byte key is uploaded per call. Backward multiplies
    by the same mask."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    if inplace:
        return _write_inplace("dropout_", input, lambda s: dropout(s, p, training))
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


@autocast_op("lower")
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


def bilinear(input1: Tensor, input2: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y[..., o] = sum_ij input1[..., i] * weight[o, i, j] * input2[..., j] + bias[o], with
    weight of shape (out_features, in1_features, in2_features)."""
    if weight.ndim != 3:
        raise RuntimeError(f"bilinear(): weight must be 3-D (out, in1, in2), got shape {weight.shape}")
    if input1.shape[:-1] != input2.shape[:-1]:
        raise RuntimeError(f"bilinear(): input batch dimensions do not match: got {input1.shape[:-1]} and "
                           f"{input2.shape[:-1]}")
    for name, x, want in (("input1", input1, weight.shape[1]), ("input2", input2, weight.shape[2])):
        if x.ndim == 0 or x.shape[-1] != want:
            raise RuntimeError(f"bilinear(): {name} size does not match weight size: got {x.shape[-1] if x.ndim else 0} "
                               f"but expected {want}")
    out_features, in1, in2 = weight.shape
    # x1 @ W as one matrix product: (..., in1) @ (in1, out * in2), then the sum over j with x2
    mixed = linear(input1, weight.permute(0, 2, 1).reshape(out_features * in2, in1))
    out = (mixed.reshape(*input1.shape[:-1], out_features, in2) * input2.unsqueeze(-2)).sum(-1)
    return out + bias if bias is not None else out


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


@autocast_op("float32")
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
    for name, param in (("weight", weight), ("bias", bias)):
        if param is not None and param.shape != shape:
            raise RuntimeError(f"layer_norm: {name} of shape {param.shape} does not match normalized_shape {shape}")
    x = input if input.dtype.is_floating_point else input.float()
    params = [p.type(x.dtype) for p in (weight, bias) if p is not None]
    for p in params:
        check_same_device(x, p, "layer_norm")
    return LayerNormOp.apply(x, *params, dims=dims, eps=float(eps), affine=(weight is not None, bias is not None))


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


@autocast_op("lower")
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
    if not index.lazydata.value_known() or index.numel() == 0:
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


def _target_weights(target: Tensor, weight: Tensor | None, ignore_index: int, dtype) -> Tensor:
    """Each target's weight in the loss: its class's weight (1 without `weight`), and 0 for
    ignore_index. 'mean' divides by the sum of these (nll_loss and cross_entropy alike)."""
    valid = target != ignore_index
    if weight is None:
        return valid.type(dtype)
    safe = where(valid, target, 0).long()
    return where(valid, weight.gather(0, safe.reshape(-1)).reshape(target.shape), 0.0)


def _weighted_reduce(loss: Tensor, target_weights: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.sum() / target_weights.sum()


def _pick(logp: Tensor, target: Tensor, class_dim: int, ignore_index: int) -> Tensor:
    """logp at each target's class, with the class dim removed (0 at ignored targets)."""
    safe = where(target != ignore_index, target, 0).long()
    # a one-hot mask instead of gather: compare, select and sum fuse into one reduction,
    # and its backward is elementwise (gather's would be a scatter-add)
    classes = arange(logp.shape[class_dim], device=logp.device)
    classes = classes.reshape(tuple(-1 if d == class_dim else 1 for d in range(logp.ndim)))
    return where(classes == safe.unsqueeze(class_dim), logp, 0.0).sum(class_dim)


@autocast_op("float32")
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
    target_weights = _target_weights(target, w, ignore_index, input.dtype)
    loss = -_pick(input, target, class_dim, ignore_index) * target_weights
    return _weighted_reduce(loss, target_weights, reduction)


@autocast_op("float32")
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
    if not input.dtype.is_floating_point:
        raise RuntimeError(f"cross_entropy: expected floating point logits, got {input.dtype.name}")
    class_dim = 1 if input.ndim >= 2 else 0
    if target.dtype.is_floating_point:
        return _soft_cross_entropy(input.log_softmax(class_dim), target, weight, reduction, label_smoothing, class_dim)
    _class_targets("cross_entropy", input, target, ignore_index)
    w = _class_weight(weight, input, class_dim, "cross_entropy")
    n_classes = input.shape[class_dim]
    # one row of logits per target: (N, C, d1, ...) -> (N * d1 * ..., C)
    if input.ndim != 2:
        rows = input.permute(*[d for d in range(input.ndim) if d != class_dim], class_dim).reshape(-1, n_classes)
    else:
        rows = input
    flat_target = target.reshape(-1)
    target_weights = _target_weights(flat_target, w, ignore_index, input.dtype).detach()
    if label_smoothing == 0.0:
        loss = CrossEntropyOp.apply(rows, flat_target, target_weights, reduction=reduction)
        return loss.reshape(target.shape) if reduction == "none" else loss
    # torch: (1 - eps) * nll + eps / C * sum over classes of -weight_c * logp_c, per target
    logp = rows.log_softmax(1)
    nll = -_pick(logp, flat_target, 1, ignore_index) * target_weights
    smooth = -(logp * w if w is not None else logp).sum(1)
    smooth = where(flat_target != ignore_index, smooth, 0.0)
    loss = (1.0 - label_smoothing) * nll + (label_smoothing / n_classes) * smooth
    loss = _weighted_reduce(loss, target_weights, reduction)
    return loss.reshape(target.shape) if reduction == "none" else loss


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


@autocast_op("float32")
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


@autocast_op("float32")
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
    # softplus(-x) = log(1 + exp(-x)) as m + log(exp(-m) + exp(-x - m)) with m = max(-x, 0):
    # no exponent above 0, and (unlike relu(-x) + log1p(exp(-|x|)), whose kinks at 0 both give
    # a zero subgradient) the gradient is exact at x = 0 too: -sigmoid(-x)
    m = (-input).clamp(min=0.0)
    softplus_neg = m + ((-m).exp() + (-input - m).exp()).log()
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


# ===== activations, distances and losses (issue 12: LeakyReLU ... TripletMarginLoss) =====
# Kept in one block; the private helpers (_log1p, _expm1, _vector_norm, _xlogy) stand in for
# Tensor methods that do not exist yet. `inplace=True` writes the result into the input
# (through the in-place forms in the nnact block below).

from ..tensor import _norm_dim, broadcast_shapes  # noqa: E402

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _float_input(op: str, input: Tensor) -> Tensor:
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: expected a Tensor as input, got {type(input).__name__}")
    if not input.dtype.is_floating_point:
        raise RuntimeError(f"{op}: expected a floating point input, got {input.dtype.name}; convert it with .float()")
    return input


def _log1p(x: Tensor) -> Tensor:
    """log(1 + x), accurate for small |x| (a Taylor series below 1e-2, where 1 + x rounds)."""
    small = x.abs() < 1e-2
    series = x * (1.0 - x * (1 / 2 - x * (1 / 3 - x * (1 / 4 - x * (1 / 5 - x * (1 / 6 - x * (1 / 7 - x / 8)))))))
    return where(small, series, (where(small, 0.0, x) + 1.0).log())


def _expm1(x: Tensor) -> Tensor:
    """exp(x) - 1, accurate for small |x| (a Taylor series below 1e-2)."""
    small = x.abs() < 1e-2
    series = x * (1.0 + x * (1 / 2 + x * (1 / 6 + x * (1 / 24 + x * (1 / 120 + x * (1 / 720 + x / 5040))))))
    return where(small, series, x.exp() - 1.0)


def _softplus(x: Tensor) -> Tensor:
    """log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)): finite for any x."""
    # maximum splits the gradient at the tie x = 0, giving sigmoid(0) = 1/2 (relu would give 0)
    return x.maximum(0.0) + _log1p((-x.abs()).exp())


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """x where x > 0, else negative_slope * x."""
    if inplace:
        return leaky_relu_(input, negative_slope)
    x = _float_input("leaky_relu", input)
    return where(x > 0, x, x * negative_slope)


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x where x > 0, else alpha * (exp(x) - 1)."""
    if inplace:
        return elu_(input, alpha)
    x = _float_input("elu", input)
    return where(x > 0, x, alpha * _expm1(x.clamp(max=0.0)))  # clamp: no exp overflow in the unused branch


def selu(input: Tensor, inplace: bool = False) -> Tensor:
    """scale * elu(x, alpha) with the self-normalising constants alpha ~ 1.6733, scale ~ 1.0507."""
    if inplace:
        return selu_(input)
    return _SELU_SCALE * elu(_float_input("selu", input), _SELU_ALPHA)


def celu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """max(0, x) + min(0, alpha * (exp(x / alpha) - 1))."""
    if inplace:
        return celu_(input, alpha)
    x = _float_input("celu", input)
    if alpha == 0:
        raise ValueError("celu: alpha must be nonzero (the formula divides by it)")
    return where(x > 0, x, alpha * _expm1((x / alpha).clamp(max=0.0)))


@autocast_op("float32")
def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta * x)) / beta, and x itself where beta * x > threshold (like torch);
    finite for inputs of any magnitude."""
    x = _float_input("softplus", input)
    bx = x * beta if beta != 1.0 else x
    soft = _softplus(bx) / beta if beta != 1.0 else _softplus(bx)
    return where(bx > threshold, x, soft)


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    """x * tanh(softplus(x))."""
    if inplace:
        return _write_inplace("mish_", _float_input("mish_", input), mish)
    x = _float_input("mish", input)
    return x * _softplus(x).tanh()


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Tensor:
    """x clamped to [min_val, max_val]; the gradient is zero at and beyond the bounds (like torch)."""
    if inplace:
        return hardtanh_(input, min_val, max_val)
    x = _float_input("hardtanh", input)
    if max_val < min_val:
        raise ValueError(f"hardtanh: max_val ({max_val}) must be greater than or equal to min_val ({min_val})")
    return where(x <= min_val, min_val, where(x >= max_val, max_val, x))


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    """min(max(0, x), 6)."""
    return hardtanh(_float_input("relu6", input), 0.0, 6.0, inplace)


def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    """0 for x <= -3, 1 for x >= 3, else x / 6 + 1 / 2."""
    if inplace:
        return _write_inplace("hardsigmoid_", _float_input("hardsigmoid_", input), hardsigmoid)
    x = _float_input("hardsigmoid", input)
    return where(x <= -3.0, 0.0, where(x >= 3.0, 1.0, x / 6.0 + 0.5))


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    """0 for x <= -3, x for x >= 3, else x * (x + 3) / 6 (torch's gradient at +-3 included)."""
    if inplace:
        return _write_inplace("hardswish_", _float_input("hardswish_", input), hardswish)
    x = _float_input("hardswish", input)
    return where(x < -3.0, 0.0, where(x <= 3.0, x * (x + 3.0) / 6.0, x))


def prelu(input: Tensor, weight: Tensor) -> Tensor:
    """x where x > 0, else weight * x, with one weight shared or one per channel (dim 1)."""
    x = _float_input("prelu", input)
    n = weight.numel()
    channels = x.shape[1] if x.ndim >= 2 else 1
    if weight.ndim > 1 or n not in (1, channels):
        raise RuntimeError(
            f"prelu: weight must be 1-D with 1 or {channels} (the input's channels, dim 1) entries; "
            f"got weight of shape {weight.shape} for input of shape {x.shape}"
        )
    check_same_device(x, weight, "prelu")
    w = weight.type(x.dtype)
    if n > 1:
        w = w.reshape((1, n) + (1,) * (x.ndim - 2))
    elif x.ndim:
        w = w.reshape((1,) * x.ndim)
    else:
        w = w.reshape(())
    return where(x > 0, x, w * x)


def logsigmoid(input: Tensor) -> Tensor:
    """log(sigmoid(x)) = min(x, 0) - log1p(exp(-|x|)): finite for any x."""
    x = _float_input("logsigmoid", input)
    return -_softplus(-x)


def softsign(input: Tensor) -> Tensor:
    """x / (1 + |x|)."""
    x = _float_input("softsign", input)
    return x / (x.abs() + 1.0)


def tanhshrink(input: Tensor) -> Tensor:
    """x - tanh(x)."""
    x = _float_input("tanhshrink", input)
    return x - x.tanh()


# ----- distances -----


def _vector_norm(x: Tensor, p: float, dim: int, keepdim: bool = False) -> Tensor:
    """The p-norm along dim: (sum |x|^p)^(1/p), max |x| for p=inf, min |x| for p=-inf, the
    count of nonzeros for p=0. The gradient at a zero vector is 0, as in torch."""
    a = x.abs()
    if p == math.inf:
        return a.amax(dim, keepdim=keepdim)
    if p == -math.inf:
        return a.amin(dim, keepdim=keepdim)
    if p == 0:
        return (a != 0).type(x.dtype).sum(dim, keepdim=keepdim)
    if p == 1:
        return a.sum(dim, keepdim=keepdim)
    total = (x * x if p == 2 else a**p).sum(dim, keepdim=keepdim)
    nonzero = total > 0
    safe = where(nonzero, total, 1.0)  # the unused branch's gradient must not be 0 * inf
    root = safe.sqrt() if p == 2 else safe ** (1.0 / p)
    return where(nonzero, root, 0.0)


def _check_pair(op: str, x1: Tensor, x2: Tensor) -> tuple[int, ...]:
    for t in (x1, x2):
        _float_input(op, t)
    check_same_device(x1, x2, op)
    return _broadcast_shape(op, x1, x2)


def _broadcast_shape(op: str, *tensors: Tensor) -> tuple[int, ...]:
    return broadcast_shapes(*(t.shape for t in tensors), op=op)


def _check_p(op: str, p: float) -> None:
    if p < 0:
        raise ValueError(f"{op}: p must be non-negative (or math.inf), got {p}")


def pairwise_distance(x1: Tensor, x2: Tensor, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False) -> Tensor:
    """The p-norm of x1 - x2 + eps along the last dim (torch's formula, eps inside)."""
    _check_p("pairwise_distance", p)
    shape = _check_pair("pairwise_distance", x1, x2)
    if not shape:
        raise RuntimeError("pairwise_distance: expected inputs with at least 1 dim, got two 0-d tensors")
    return _vector_norm(x1 - x2 + eps, p, len(shape) - 1, keepdim)


@autocast_op("float32")
def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """sum(x1 * x2) / (max(||x1||, eps) * max(||x2||, eps)) along dim, inputs broadcast."""
    shape = _check_pair("cosine_similarity", x1, x2)
    d = _norm_dim(dim, len(shape), "cosine_similarity")
    x1, x2 = x1._broadcast_to(shape), x2._broadcast_to(shape)
    return ((x1 / _clamped_l2_norm(x1, d, eps)) * (x2 / _clamped_l2_norm(x2, d, eps))).sum(d)


def _clamped_l2_norm(x: Tensor, dim: int, eps: float) -> Tensor:
    """max(||x||_2, eps) along dim (kept), as sqrt(max(sum x^2, eps^2)): finite gradient at x = 0."""
    squares = (x * x).sum(dim, keepdim=True)
    return where(squares < eps * eps, eps * eps, squares).sqrt()


@autocast_op("float32")
def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12, out: Tensor | None = None) -> Tensor:
    """input / max(||input||_p, eps) along dim."""
    x = _float_input("normalize", input)
    if out is not None:
        raise NotImplementedError("normalize: out= is not supported; use the returned tensor")
    _check_p("normalize", p)
    d = _norm_dim(dim, x.ndim, "normalize")
    return x / _vector_norm(x, p, d, keepdim=True).clamp(min=eps)


# ----- losses -----


def _legacy_reduction(size_average: bool | None, reduce: bool | None, reduction: str) -> str:
    """torch's rule for the deprecated size_average/reduce arguments (None: use `reduction`)."""
    if size_average is None and reduce is None:
        return reduction
    warnings.warn("size_average and reduce args will be deprecated, please use reduction='mean', 'sum' or 'none' instead.", stacklevel=3)
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    return "none" if not reduce else ("mean" if size_average else "sum")


def _check_loss_pair(op: str, input: Tensor, target: Tensor, warn: bool = True) -> None:
    """Float input, target on its device and broadcastable to it; torch's warning when the
    shapes differ (a broadcast that is usually a bug, e.g. (N, 1) against (N,))."""
    _float_input(op, input)
    if not isinstance(target, Tensor):
        raise TypeError(f"{op}: expected a Tensor as target, got {type(target).__name__}")
    check_same_device(input, target, op)
    _broadcast_shape(op, input, target)
    if warn and target.shape != input.shape:
        warnings.warn(
            f"{op}: target size {target.shape} is different from the input size {input.shape}; they will be "
            "broadcast, which is likely not what you want. Make sure they have the same size.",
            stacklevel=3,
        )


@autocast_op("float32")
def l1_loss(input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean") -> Tensor:
    """Mean (or sum) of |input - target|."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    _check_loss_pair("l1_loss", input, target)
    return _reduce((input - target).abs(), reduction)


@autocast_op("float32")
def smooth_l1_loss(
    input: Tensor, target: Tensor, size_average=None, reduce=None, reduction: str = "mean", beta: float = 1.0
) -> Tensor:
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta, with d = input - target (L1 for beta=0)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    _check_loss_pair("smooth_l1_loss", input, target)
    if beta < 0:
        raise ValueError(f"smooth_l1_loss does not support negative values for beta, got {beta}")
    d = (input - target).abs()
    if beta == 0:
        return _reduce(d, reduction)
    return _reduce(where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta), reduction)


@autocast_op("float32")
def huber_loss(input: Tensor, target: Tensor, reduction: str = "mean", delta: float = 1.0) -> Tensor:
    """0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta), with d = input - target."""
    _check_reduction(reduction)
    _check_loss_pair("huber_loss", input, target)
    if delta <= 0:
        raise ValueError(f"huber_loss does not support non-positive values for delta, got {delta}")
    d = (input - target).abs()
    return _reduce(where(d < delta, 0.5 * d * d, delta * (d - 0.5 * delta)), reduction)


def _xlogy(x: Tensor, y: Tensor) -> Tensor:
    """x * log(y), and 0 where x == 0 (torch.xlogy), with finite gradients there."""
    zero = x == 0
    return where(zero, 0.0, x * where(zero, 1.0, y).log())


@autocast_op("float32")
def kl_div(
    input: Tensor,
    target: Tensor,
    size_average=None,
    reduce=None,
    reduction: str = "mean",
    log_target: bool = False,
) -> Tensor:
    """Pointwise KL divergence target * (log(target) - input), input being log-probabilities
    (target too when log_target). 'batchmean' divides the sum by the batch size (the true KL);
    'mean' divides by the number of elements, as torch (which warns about it)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if reduction not in ("mean", "batchmean", "sum", "none"):
        raise ValueError(f"{reduction!r} is not a valid value for reduction; use 'mean', 'batchmean', 'sum' or 'none'")
    _check_loss_pair("kl_div", input, target, warn=False)
    if reduction == "mean":
        warnings.warn(
            "reduction: 'mean' divides the total loss by both the batch size and the support size. 'batchmean' "
            "divides only by the batch size, and aligns with the KL div math definition. 'mean' will be changed "
            "to behave the same as 'batchmean' in the next major release.",
            stacklevel=2,
        )
    target = target.type(input.dtype)
    if log_target:
        loss = target.exp() * (target - input)
    else:
        loss = _xlogy(target, target) - target * input
    if reduction == "batchmean":
        return loss.sum() / input.shape[0] if input.ndim else loss.sum()
    return _reduce(loss, reduction)


def _check_probabilities(op: str, input: Tensor) -> None:
    """Raise for values outside [0, 1] that are already realized (computed ones are not forced)."""
    if not input.lazydata.value_known() or input.numel() == 0:
        return
    vals = input.detach().numpy()
    if ((vals < 0) | (vals > 1)).any() or np.isnan(vals).any():
        raise RuntimeError(f"{op}: all elements of input should be between 0 and 1 (probabilities; apply sigmoid first, or use binary_cross_entropy_with_logits)")


def _clamped_log(x: Tensor) -> Tensor:
    """log(x) clamped to >= -100 (torch's BCE), so x = 0 gives a finite loss and gradient."""
    positive = x > 0
    return where(positive, where(positive, x, 1.0).log().clamp(min=-100.0), -100.0)


def binary_cross_entropy(
    input: Tensor, target: Tensor, weight: Tensor | None = None, size_average=None, reduce=None, reduction: str = "mean"
) -> Tensor:
    """-weight * (target log(input) + (1 - target) log(1 - input)), input being probabilities;
    the logs are clamped to >= -100 like torch."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    _float_input("binary_cross_entropy", input)
    if target.shape != input.shape:
        raise ValueError(
            f"binary_cross_entropy: using a target size ({target.shape}) that is different to the input size "
            f"({input.shape}) is deprecated. Please ensure they have the same size."
        )
    check_same_device(input, target, "binary_cross_entropy")
    _check_probabilities("binary_cross_entropy", input)
    target = target.type(input.dtype)
    loss = -(target * _clamped_log(input) + (1.0 - target) * _clamped_log(1.0 - input))
    if weight is not None:
        check_same_device(input, weight, "binary_cross_entropy")
        if _broadcast_shape("binary_cross_entropy", weight, input) != input.shape:
            raise RuntimeError(f"binary_cross_entropy: weight of shape {weight.shape} must broadcast to the input's shape {input.shape}")
        loss = loss * weight.type(input.dtype)
    return _reduce(loss, reduction)


def poisson_nll_loss(
    input: Tensor,
    target: Tensor,
    log_input: bool = True,
    full: bool = False,
    size_average=None,
    eps: float = 1e-8,
    reduce=None,
    reduction: str = "mean",
) -> Tensor:
    """Poisson negative log-likelihood: exp(input) - target * input (log_input), or
    input - target * log(input + eps); full adds Stirling's approximation of log(target!)
    where target > 1."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    _check_loss_pair("poisson_nll_loss", input, target, warn=False)
    target = target.type(input.dtype)
    if log_input:
        loss = input.exp() - target * input
    else:
        loss = input - target * (input + eps).log()
    if full:
        big = target > 1
        t = where(big, target, 2.0)  # the log of the unused branch stays finite
        stirling = t * t.log() - t + 0.5 * (2 * math.pi * t).log()
        loss = loss + where(big, stirling, 0.0)
    return _reduce(loss, reduction)


def _check_target_rows(op: str, input1: Tensor, input2: Tensor, target: Tensor) -> None:
    """cosine_embedding_loss's shapes: (N, D) inputs with an (N,) target, or (D,) with a 0-d one."""
    _check_pair(op, input1, input2)
    check_same_device(input1, target, op)
    if target.ndim not in (0, 1):
        raise RuntimeError(f"{op}: 0D or 1D target tensor expected, multi-target not supported; got shape {target.shape}")
    want = target.ndim + 1
    if input1.ndim != want or input2.ndim != want:
        raise RuntimeError(
            f"{op}: {target.ndim}D target tensor expects {want}D input tensors, but found inputs with sizes "
            f"{input1.shape} and {input2.shape}"
        )
    if input1.shape != input2.shape or input1.shape[:-1] != target.shape:
        raise RuntimeError(
            f"{op}: input1 {input1.shape}, input2 {input2.shape} and target {target.shape} must agree: "
            "(N, D), (N, D) and (N,), or (D,), (D,) and ()"
        )


def cosine_embedding_loss(
    input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0, size_average=None, reduce=None, reduction: str = "mean"
) -> Tensor:
    """1 - cos(x1, x2) where target == 1, max(0, cos(x1, x2) - margin) where target == -1."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    op = "cosine_embedding_loss"
    _check_target_rows(op, input1, input2, target)
    d = target.ndim  # the feature dim
    dot = (input1 * input2).sum(d)
    # torch's formula: eps 1e-12 added to each squared magnitude
    cos = dot / (((input1 * input1).sum(d) + 1e-12) * ((input2 * input2).sum(d) + 1e-12)).sqrt()
    loss = where(target == 1, 1.0 - cos, 0.0) + where(target == -1, (cos - margin).clamp(min=0.0), 0.0)
    return _reduce(loss, reduction)


def margin_ranking_loss(
    input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0, size_average=None, reduce=None, reduction: str = "mean"
) -> Tensor:
    """max(0, -target * (input1 - input2) + margin), target being 1 or -1."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    op = "margin_ranking_loss"
    _check_pair(op, input1, input2)
    check_same_device(input1, target, op)
    if not input1.ndim == input2.ndim == target.ndim:
        raise RuntimeError(
            f"{op}: all input tensors should have the same number of dims but got sizes: input1: {input1.shape}, "
            f"input2: {input2.shape}, target: {target.shape}"
        )
    _broadcast_shape(op, input1, input2, target)
    loss = (-target.type(input1.dtype) * (input1 - input2) + margin).clamp(min=0.0)
    return _reduce(loss, reduction)


def triplet_margin_loss(
    anchor: Tensor,
    positive: Tensor,
    negative: Tensor,
    margin: float = 1.0,
    p: float = 2,
    eps: float = 1e-6,
    swap: bool = False,
    size_average=None,
    reduce=None,
    reduction: str = "mean",
) -> Tensor:
    """max(d(a, p) - d(a, n) + margin, 0) with d the pairwise p-norm distance (eps inside);
    swap uses min(d(a, n), d(p, n)) as the negative distance."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    op = "triplet_margin_loss"
    if not anchor.ndim == positive.ndim == negative.ndim:
        raise RuntimeError(
            f"{op}: the anchor, positive, and negative tensors are expected to have the same number of dimensions, "
            f"but got: anchor {anchor.ndim}D, positive {positive.ndim}D, and negative {negative.ndim}D inputs"
        )
    _check_p(op, p)
    for t in (positive, negative):
        _check_pair(op, anchor, t)
    d_pos = pairwise_distance(anchor, positive, p, eps)
    d_neg = pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_neg = d_neg.minimum(pairwise_distance(positive, negative, p, eps))
    return _reduce((margin + d_pos - d_neg).clamp(min=0.0), reduction)


__all__ += [
    "leaky_relu",
    "elu",
    "selu",
    "celu",
    "softplus",
    "mish",
    "hardtanh",
    "relu6",
    "hardsigmoid",
    "hardswish",
    "prelu",
    "logsigmoid",
    "softsign",
    "tanhshrink",
    "pairwise_distance",
    "cosine_similarity",
    "normalize",
    "l1_loss",
    "smooth_l1_loss",
    "huber_loss",
    "kl_div",
    "binary_cross_entropy",
    "poisson_nll_loss",
    "cosine_embedding_loss",
    "margin_ranking_loss",
    "triplet_margin_loss",
]

# ----- attention (defined in attention.py, which builds on the functions above) -----

from .attention import multi_head_attention_forward, scaled_dot_product_attention  # noqa: E402

__all__ += ["scaled_dot_product_attention", "multi_head_attention_forward"]

# ===== normalisation, conv1d and transposed convs, 1-d and adaptive pooling, resampling =====
# (issue 12; one block so merges with the other nn additions stay easy)


def _stat_shape(input: Tensor) -> tuple[int, ...]:
    """(1, C, 1, ...): a per-channel tensor broadcast against an (N, C, *) input."""
    return (1, input.shape[1]) + (1,) * (input.ndim - 2)


def _check_per_channel(op: str, input: Tensor, **tensors: Tensor | None) -> None:
    c = input.shape[1]
    for name, t in tensors.items():
        if t is not None and t.shape != (c,):
            raise RuntimeError(
                f"{op}: {name} should have shape ({c},), one entry per channel of the input of shape {input.shape}, "
                f"got {t.shape}"
            )
        if t is not None and t.device != input.device:
            raise RuntimeError(f"{op}: input is on {input.device} but {name} is on {t.device}; move them to one device")


def _affine(out: Tensor, weight: Tensor | None, bias: Tensor | None, shape: tuple[int, ...]) -> Tensor:
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return out


def _update_running(running: Tensor | None, stat: Tensor, momentum) -> None:
    """running = (1 - momentum) * running + momentum * stat, as a lazy rebinding of the buffer."""
    if running is None:
        return
    from ..autograd import no_grad

    with no_grad():
        stat = stat.detach().type(running.dtype)
        if isinstance(momentum, Tensor):
            momentum = momentum.detach().type(running.dtype)
        running.copy_(running + (stat - running) * momentum)


def batch_norm(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float | Tensor = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise each channel of an (N, C, *) input: (x - mean) / sqrt(var + eps) * weight + bias.

    training=True uses the batch's statistics (biased variance) and, where running_mean /
    running_var are given, updates them in place (lazily) with
    running = (1 - momentum) * running + momentum * batch_stat (unbiased variance).
    training=False uses running_mean and running_var. momentum may be a 0-d tensor (how
    BatchNorm passes 1 / num_batches_tracked for momentum=None)."""
    if input.ndim < 2:
        raise ValueError(f"batch_norm: expected an input of shape (N, C, *) with at least 2 dims, got shape {input.shape}")
    _check_per_channel("batch_norm", input, running_mean=running_mean, running_var=running_var, weight=weight, bias=bias)
    shape = _stat_shape(input)
    if training:
        count = input.numel() // max(input.shape[1], 1)
        if count <= 1:
            raise ValueError(f"batch_norm: expected more than 1 value per channel when training, got input of shape {input.shape}")
        dims = (0,) + tuple(range(2, input.ndim))
        # var = E[x^2] - E[x]^2 with x shifted by one sample per channel (the shifted-data method:
        # no catastrophic cancellation when |mean| >> std). The output is then x * scale + shift with
        # per-channel scale and shift, so forward reads x in two reductions and one elementwise pass,
        # and backward needs just two reductions (sum dy, sum dy * x) and one elementwise pass.
        # The shift is detached: the result does not depend on it, so the gradient stays exact.
        shift = input[(0, slice(None)) + (0,) * (input.ndim - 2)].detach().reshape(shape)
        x = input - shift
        mean = x.mean(dims, keepdim=True)
        var = ((x * x).mean(dims, keepdim=True) - mean * mean).relu()  # relu: rounding can dip below 0
        scale = (var + eps).rsqrt()
        if weight is not None:
            scale = scale * weight.reshape(shape)
        offset = -mean * scale
        if bias is not None:
            offset = offset + bias.reshape(shape)
        _update_running(running_mean, (mean + shift).reshape(-1), momentum)
        _update_running(running_var, var.reshape(-1) * (count / (count - 1)), momentum)
        return x * scale + offset
    else:
        if running_mean is None or running_var is None:
            raise RuntimeError("batch_norm: running_mean and running_var are needed when training=False")
        scale = (running_var.type(input.dtype) + eps).rsqrt()
        out = (input - running_mean.type(input.dtype).reshape(shape)) * scale.reshape(shape)
    return _affine(out, weight, bias, shape)


def instance_norm(
    input: Tensor,
    running_mean: Tensor | None = None,
    running_var: Tensor | None = None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    use_input_stats: bool = True,
    momentum: float | Tensor = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise each channel of each sample of an (N, C, *) input over its spatial dims.

    With use_input_stats the per-instance statistics are used, and running_mean /
    running_var (when given) move toward their mean over the batch (unbiased variance),
    as torch does; otherwise the running statistics are used."""
    if input.ndim < 3:
        raise ValueError(f"instance_norm: expected an input of shape (N, C, *) with at least 3 dims, got shape {input.shape}")
    _check_per_channel("instance_norm", input, running_mean=running_mean, running_var=running_var, weight=weight, bias=bias)
    shape = _stat_shape(input)
    if not use_input_stats:
        if running_mean is None or running_var is None:
            raise RuntimeError("instance_norm: running_mean and running_var are needed when use_input_stats=False")
        return batch_norm(input, running_mean, running_var, weight, bias, False, momentum, eps)
    count = math.prod(input.shape[2:])
    if count <= 1:
        raise ValueError(f"instance_norm: expected more than 1 spatial element per channel when training, got input of shape {input.shape}")
    dims = tuple(range(2, input.ndim))
    mean = input.mean(dims, keepdim=True)
    centered = input - mean
    var = (centered * centered).mean(dims, keepdim=True)
    out = centered * (var + eps).rsqrt()
    if running_mean is not None or running_var is not None:
        c = input.shape[1]
        _update_running(running_mean, mean.reshape(-1, c).mean(0), momentum)
        _update_running(running_var, (var * (count / (count - 1))).reshape(-1, c).mean(0), momentum)
    return _affine(out, weight, bias, shape)


@autocast_op("float32")
def group_norm(
    input: Tensor, num_groups: int, weight: Tensor | None = None, bias: Tensor | None = None, eps: float = 1e-5
) -> Tensor:
    """Split the C channels of an (N, C, *) input into num_groups groups and normalise each
    group of each sample (biased variance), then scale and shift per channel."""
    if input.ndim < 2:
        raise RuntimeError(f"group_norm: expected an input of shape (N, C, *) with at least 2 dims, got shape {input.shape}")
    n, c = input.shape[:2]
    if num_groups < 1 or c % num_groups:
        raise RuntimeError(f"group_norm: the {c} channels of the input of shape {input.shape} must be divisible by num_groups={num_groups}")
    _check_per_channel("group_norm", input, weight=weight, bias=bias)
    x = input.reshape(n, num_groups, -1)
    mean = x.mean(2, keepdim=True)
    centered = x - mean
    var = (centered * centered).mean(2, keepdim=True)
    out = (centered * (var + eps).rsqrt()).reshape(input.shape)
    return _affine(out, weight, bias, _stat_shape(input))


def rms_norm(
    input: Tensor, normalized_shape: int | Sequence[int], weight: Tensor | None = None, eps: float | None = None
) -> Tensor:
    """x / sqrt(mean(x^2) + eps) * weight over the last len(normalized_shape) dims;
    eps=None means the machine epsilon of the input's dtype."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if len(shape) > input.ndim or input.shape[input.ndim - len(shape) :] != shape:
        raise RuntimeError(f"rms_norm: expected input with shape [*, {', '.join(map(str, shape))}], but got input of size {input.shape}")
    if weight is not None and weight.shape != shape:
        raise RuntimeError(f"rms_norm: weight should have shape {shape}, got {weight.shape}")
    if eps is None:
        eps = float(np.finfo(input.dtype.np).eps)
    dims = tuple(range(input.ndim - len(shape), input.ndim))
    out = input * ((input * input).mean(dims, keepdim=True) + eps).rsqrt()
    return out * weight if weight is not None else out


# ----- 1-d convolution and transposed convolutions -----


def _single(value, name: str) -> int:
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if not isinstance(value, int):
        raise ValueError(f"{name} must be an int or a 1-tuple of ints, got {value!r}")
    return value


def _check_1d_input(op: str, input: Tensor, weight: Tensor | None = None) -> None:
    if input.ndim not in (2, 3):
        raise RuntimeError(f"{op}: expected a 2-D (C, L) or 3-D (N, C, L) input, got shape {input.shape}")
    if weight is not None and weight.ndim != 3:
        raise RuntimeError(f"{op}: weight must be 3-D, got shape {weight.shape}")


@autocast_op("lower")
def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1, groups: int = 1) -> Tensor:
    """1-D cross-correlation of (N, C, L) input with (OC, C/groups, K) weight (conv2d over a height of 1)."""
    _check_1d_input("conv1d", input, weight)
    c, cg = input.shape[-2], weight.shape[1]
    if groups < 1 or c != cg * groups or weight.shape[0] % groups:
        raise RuntimeError(
            f"conv1d: given groups={groups}, weight of size {list(weight.shape)}, expected input{list(input.shape)} to have "
            f"{cg * groups} channels, but got {c} channels instead (out_channels must also be divisible by groups)"
        )
    stride, dilation = _single(stride, "stride"), _single(dilation, "dilation")
    if not isinstance(padding, str):
        p = _single(padding, "padding")
        _window_geometry("conv1d", input.shape[-1:], weight.shape[-1:], (stride,), [(p, p)], (dilation,))  # size errors name conv1d
        padding = (0, p)
    out = conv2d(input.unsqueeze(-2), weight.unsqueeze(2), bias, (1, stride), padding, (1, dilation), groups)
    return out.squeeze(-2)


def _zero_interleave(x: Tensor, stride: tuple[int, ...]) -> Tensor:
    """Insert stride-1 zeros between neighbours along the trailing len(stride) dims."""
    lead = x.ndim - len(stride)
    for i, s in enumerate(stride):
        if s == 1:
            continue
        d = lead + i
        n = x.shape[d]
        x = x.unsqueeze(d + 1).pad([(0, 0)] * (d + 1) + [(0, s - 1)] + [(0, 0)] * (x.ndim - d - 1))
        x = x.reshape(*x.shape[:d], n * s, *x.shape[d + 2 :]).narrow(d, 0, (n - 1) * s + 1)
    return x


def _conv_transpose(op: str, x: Tensor, weight: Tensor, bias, stride, padding, output_padding, groups, dilation) -> Tensor:
    """Transposed convolution of a 4-D (N, C, H, W) x with (C, OC/groups, KH, KW) weight:
    a stride-1 conv2d of the zero-interleaved, padded input with the flipped kernel."""
    n, c, h, w = x.shape
    cin, ocg, kh, kw = weight.shape
    if groups < 1 or c != cin or cin % groups:
        raise RuntimeError(
            f"{op}: weight of shape {list(weight.shape)} expects {cin} input channels (divisible by groups={groups}), "
            f"but the input of shape {list(x.shape)} has {c}"
        )
    _check_same_place(op, x, weight, bias)
    if bias is not None and bias.shape != (ocg * groups,):
        raise RuntimeError(f"{op}: bias must have shape ({ocg * groups},), got {bias.shape}")
    pads = []
    for name, (size, k, s, p, op_, d) in zip(("height", "width"), zip((h, w), (kh, kw), stride, padding, output_padding, dilation)):
        if s < 1 or d < 1 or p < 0 or op_ < 0:
            raise ValueError(f"{op}: stride and dilation must be positive and padding, output_padding non-negative")
        if op_ >= max(s, d):
            raise ValueError(f"{op}: output_padding ({op_}) must be smaller than either stride ({s}) or dilation ({d})")
        out = (size - 1) * s - 2 * p + d * (k - 1) + op_ + 1
        if out < 1:
            raise RuntimeError(f"{op}: the output {name} would be {out} for input size {size}, kernel {k}, stride {s}, padding {p}")
        edge = d * (k - 1) - p
        pads.append((edge, edge + op_))
    x = _zero_interleave(x, stride).pad([(0, 0), (0, 0)] + pads)
    g = groups
    flipped = weight.reshape(g, cin // g, ocg, kh, kw).permute(0, 2, 1, 3, 4).reshape(g * ocg, cin // g, kh, kw).flip((2, 3))
    return conv2d(x, flipped, bias, 1, 0, dilation, g)


@autocast_op("lower")
def conv_transpose2d(
    input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, output_padding=0, groups: int = 1, dilation=1
) -> Tensor:
    """2-D transposed convolution ("deconvolution") of (N, C, H, W) input with weight
    (C, OC/groups, KH, KW); output size (H-1)*stride - 2*padding + dilation*(K-1) + output_padding + 1."""
    if input.ndim not in (3, 4):
        raise RuntimeError(f"conv_transpose2d: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape {input.shape}")
    if weight.ndim != 4:
        raise RuntimeError(f"conv_transpose2d: weight must be 4-D (in_channels, out_channels/groups, kH, kW), got shape {weight.shape}")
    x = input.unsqueeze(0) if input.ndim == 3 else input
    args = [_pair(v, name) for v, name in ((stride, "stride"), (padding, "padding"), (output_padding, "output_padding"), (dilation, "dilation"))]
    out = _conv_transpose("conv_transpose2d", x, weight, bias, args[0], args[1], args[2], groups, args[3])
    return out.squeeze(0) if input.ndim == 3 else out


@autocast_op("lower")
def conv_transpose1d(
    input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, output_padding=0, groups: int = 1, dilation=1
) -> Tensor:
    """1-D transposed convolution of (N, C, L) input with weight (C, OC/groups, K)."""
    _check_1d_input("conv_transpose1d", input, weight)
    x = input.unsqueeze(-2)
    x = x.unsqueeze(0) if input.ndim == 2 else x
    args = [(1, _single(v, name)) for v, name in ((stride, "stride"), (output_padding, "output_padding"), (dilation, "dilation"))]
    pad = (0, _single(padding, "padding"))
    out = _conv_transpose("conv_transpose1d", x, weight.unsqueeze(2), bias, args[0], pad, (0, args[1][1]), groups, args[2])
    out = out.squeeze(-2)
    return out.squeeze(0) if input.ndim == 2 else out


# ----- 1-d pooling -----


def _pool1d(op: str, input: Tensor, kernel_size, stride, padding, dilation, ceil_mode):
    """Validate a 1-d pool's arguments under its own name; return (input with a height of 1, 2-d arguments)."""
    if input.ndim not in (2, 3):
        raise RuntimeError(f"{op}: expected a 2-D (C, L) or 3-D (N, C, L) input, got shape {input.shape}")
    k = _single(kernel_size, "kernel_size")
    s = k if stride is None or stride == [] else _single(stride, "stride")
    p, d = _single(padding, "padding"), _single(dilation, "dilation")
    if p > k // 2:
        raise RuntimeError(f"{op}: pad should be at most half of the kernel size, but got pad={p} and kernel_size={k}")
    _window_geometry(op, input.shape[-1:], (k,), (s,), [(p, p)], (d,), ceil_mode)
    return input.unsqueeze(-2), (1, k), (1, s), (0, p), (1, d)


def max_pool1d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False, return_indices: bool = False) -> Tensor:
    """The maximum of each (dilated) window along the last dim of an (N, C, L) input."""
    if return_indices:
        raise NotImplementedError("max_pool1d: return_indices=True is not supported")
    x, k, s, p, d = _pool1d("max_pool1d", input, kernel_size, stride, padding, dilation, ceil_mode)
    return max_pool2d(x, k, s, p, d, ceil_mode).squeeze(-2)


def avg_pool1d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True) -> Tensor:
    """The mean of each window along the last dim of an (N, C, L) input (avg_pool2d's divisor rules)."""
    x, k, s, p, _ = _pool1d("avg_pool1d", input, kernel_size, stride, padding, 1, ceil_mode)
    return avg_pool2d(x, k, s, p, ceil_mode, count_include_pad).squeeze(-2)


# ----- adaptive pooling -----


def _adaptive_size(op: str, output_size, size: tuple[int, ...]) -> tuple[int, ...]:
    """Output size per spatial dim; None entries keep the input's size."""
    n = len(size)
    out = (output_size,) * n if output_size is None or isinstance(output_size, int) else tuple(output_size)
    if len(out) != n or not all(o is None or (isinstance(o, int) and o > 0) for o in out):
        raise ValueError(f"{op}: output_size must be a positive int or a tuple of {n} positive ints / None, got {output_size!r}")
    return tuple(s if o is None else o for s, o in zip(size, out))


def _adaptive_bins(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """torch's bins: start = floor(i * in / out), end = ceil((i + 1) * in / out)."""
    i = np.arange(n_out)
    return (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)


def _check_spatial(op: str, input: Tensor, spatial: int) -> tuple[Tensor, bool]:
    if input.ndim == spatial + 1:
        return input.unsqueeze(0), True
    if input.ndim != spatial + 2:
        names = "(C, H, W) or 4-D (N, C, H, W)" if spatial == 2 else "(C, L) or 3-D (N, C, L)"
        raise RuntimeError(f"{op}: expected a {spatial + 1}-D {names} input, got shape {input.shape}")
    if any(s == 0 for s in input.shape[2:]):
        raise RuntimeError(f"{op}: the spatial dims of the input must be non-empty, got shape {input.shape}")
    return input, False


def _adaptive_avg_dim(x: Tensor, dim: int, n_out: int) -> Tensor:
    n_in = x.shape[dim]
    if n_in == n_out:
        return x
    if n_in % n_out == 0:  # equal bins: a reshape and a mean
        return x.reshape(*x.shape[:dim], n_out, n_in // n_out, *x.shape[dim + 1 :]).mean(dim + 1)
    start, end = _adaptive_bins(n_in, n_out)
    cols = np.arange(n_in)
    avg = ((cols >= start[:, None]) & (cols < end[:, None])) / (end - start)[:, None]  # (out, in)
    a = Tensor(avg.astype(x.dtype.np), dtype=x.dtype, device=x.device)
    moved = x.transpose(dim, -1)
    return moved.matmul(a.T).transpose(dim, -1)


def _adaptive_max_dim(x: Tensor, dim: int, n_out: int) -> Tensor:
    n_in = x.shape[dim]
    if n_in == n_out:
        return x
    if n_in % n_out == 0:
        return x.reshape(*x.shape[:dim], n_out, n_in // n_out, *x.shape[dim + 1 :]).amax(dim + 1)
    start, end = _adaptive_bins(n_in, n_out)
    width = int((end - start).max())
    # each bin's indices, padded by repeating its last one (a repeat does not change a max)
    idx = np.minimum(start[:, None] + np.arange(width), end[:, None] - 1)
    picked = x[(slice(None),) * dim + (Tensor(idx, device=x.device),)]  # (..., out, width, ...)
    return picked.amax(dim + 1)


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    """The mean over torch's adaptive bins, giving an (N, C, *output_size) output."""
    x, unbatched = _check_spatial("adaptive_avg_pool2d", input, 2)
    oh, ow = _adaptive_size("adaptive_avg_pool2d", output_size, x.shape[2:])
    out = _adaptive_avg_dim(_adaptive_avg_dim(x, 2, oh), 3, ow)
    return out.squeeze(0) if unbatched else out


def adaptive_max_pool2d(input: Tensor, output_size, return_indices: bool = False) -> Tensor:
    """The maximum over torch's adaptive bins (ties share the gradient, as in max_pool2d)."""
    if return_indices:
        raise NotImplementedError("adaptive_max_pool2d: return_indices=True is not supported")
    x, unbatched = _check_spatial("adaptive_max_pool2d", input, 2)
    oh, ow = _adaptive_size("adaptive_max_pool2d", output_size, x.shape[2:])
    out = _adaptive_max_dim(_adaptive_max_dim(x, 2, oh), 3, ow)
    return out.squeeze(0) if unbatched else out


def adaptive_avg_pool1d(input: Tensor, output_size) -> Tensor:
    """The mean over torch's adaptive bins along the last dim of an (N, C, L) input."""
    x, unbatched = _check_spatial("adaptive_avg_pool1d", input, 1)
    (o,) = _adaptive_size("adaptive_avg_pool1d", output_size, x.shape[2:])
    out = _adaptive_avg_dim(x, 2, o)
    return out.squeeze(0) if unbatched else out


def adaptive_max_pool1d(input: Tensor, output_size, return_indices: bool = False) -> Tensor:
    """The maximum over torch's adaptive bins along the last dim of an (N, C, L) input."""
    if return_indices:
        raise NotImplementedError("adaptive_max_pool1d: return_indices=True is not supported")
    x, unbatched = _check_spatial("adaptive_max_pool1d", input, 1)
    (o,) = _adaptive_size("adaptive_max_pool1d", output_size, x.shape[2:])
    out = _adaptive_max_dim(x, 2, o)
    return out.squeeze(0) if unbatched else out


# ----- resampling -----

_LINEAR_MODES = {"linear": 1, "bilinear": 2, "trilinear": 3}


def _interp_sizes(input: Tensor, size, scale_factor, recompute_scale_factor):
    """(output sizes, the scale per dim that maps output to input coordinates, or None = in/out)."""
    spatial = input.shape[2:]
    n = len(spatial)
    if (size is None) == (scale_factor is None):
        raise ValueError("interpolate: exactly one of size or scale_factor must be given")
    if size is not None:
        sizes = (size,) * n if isinstance(size, int) else tuple(size)
        if len(sizes) != n or not all(isinstance(s, int) and s > 0 for s in sizes):
            raise ValueError(f"interpolate: size must be a positive int or a tuple of {n} positive ints for input of shape {input.shape}, got {size!r}")
        if recompute_scale_factor:
            raise ValueError("interpolate: recompute_scale_factor is only meaningful with scale_factor, not with size")
        return sizes, (None,) * n
    factors = (scale_factor,) * n if isinstance(scale_factor, (int, float)) else tuple(scale_factor)
    if len(factors) != n or not all(isinstance(f, (int, float)) and f > 0 for f in factors):
        raise ValueError(f"interpolate: scale_factor must be a positive number or a tuple of {n} for input of shape {input.shape}, got {scale_factor!r}")
    sizes = tuple(int(math.floor(s * f)) for s, f in zip(spatial, factors))
    if any(s < 1 for s in sizes):
        raise ValueError(f"interpolate: scale_factor {scale_factor!r} makes an empty output from input of shape {input.shape}")
    return sizes, (None,) * n if recompute_scale_factor else tuple(1.0 / f for f in factors)


def _take(x: Tensor, dim: int, idx: np.ndarray) -> Tensor:
    return x[(slice(None),) * dim + (Tensor(idx.astype(np.int64), device=x.device),)]


def _nearest_dim(x: Tensor, dim: int, n_out: int, scale, exact: bool) -> Tensor:
    n_in = x.shape[dim]
    scale = n_in / n_out if scale is None else scale
    if n_in == n_out and scale == 1.0:
        return x
    k = n_out // n_in
    if not exact and n_out == k * n_in and scale == 1.0 / k:  # integer upsampling: repeat each element k times
        shape = x.shape
        x = x.unsqueeze(dim + 1).expand(*shape[: dim + 1], k, *shape[dim + 1 :])
        return x.reshape(*shape[:dim], n_out, *shape[dim + 1 :])
    dst = np.arange(n_out, dtype=np.float32)
    src = np.floor((dst + 0.5) * np.float32(scale)) if exact else np.floor(dst * np.float32(scale))
    return _take(x, dim, np.minimum(src.astype(np.int64), n_in - 1))


def _linear_dim(x: Tensor, dim: int, n_out: int, scale, align_corners: bool) -> Tensor:
    n_in = x.shape[dim]
    dst = np.arange(n_out, dtype=np.float64)
    if align_corners:
        src = dst * ((n_in - 1) / (n_out - 1)) if n_out > 1 else np.zeros(n_out)
    else:
        scale = n_in / n_out if scale is None else scale
        src = np.maximum((dst + 0.5) * scale - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    lam = (src - i0).astype(x.dtype.np).reshape((n_out,) + (1,) * (x.ndim - dim - 1))
    lam = Tensor(lam, dtype=x.dtype, device=x.device)
    return _take(x, dim, i0) * (1.0 - lam) + _take(x, dim, i1) * lam


def interpolate(
    input: Tensor,
    size=None,
    scale_factor=None,
    mode: str = "nearest",
    align_corners: bool | None = None,
    recompute_scale_factor: bool | None = None,
    antialias: bool = False,
) -> Tensor:
    """Resize the spatial dims of an (N, C, *spatial) input to `size` or by `scale_factor`.

    Modes: 'nearest' (src = floor(dst * scale)), 'nearest-exact' (floor((dst + 0.5) * scale)),
    'linear' (3-D), 'bilinear' (4-D) and 'trilinear' (5-D) with torch's source-index formulas
    for align_corners False (src = (dst + 0.5) * scale - 0.5, clamped at 0) and True
    (src = dst * (in - 1) / (out - 1)), and 'area' (adaptive average pooling). scale is
    1 / scale_factor when scale_factor is given (unless recompute_scale_factor), else in / out."""
    if input.ndim < 3 or input.ndim > 5:
        raise ValueError(f"interpolate: expected a 3-D, 4-D or 5-D (N, C, *spatial) input, got shape {input.shape}")
    if antialias:
        raise NotImplementedError("interpolate: antialias=True is not supported")
    linear = mode in _LINEAR_MODES
    if linear and _LINEAR_MODES[mode] != input.ndim - 2:
        raise ValueError(f"interpolate: mode {mode!r} needs a {_LINEAR_MODES[mode] + 2}-D input, got shape {input.shape}")
    if not linear and mode not in ("nearest", "nearest-exact", "area"):
        raise NotImplementedError(f"interpolate: mode {mode!r} is not supported; use nearest, nearest-exact, linear, bilinear, trilinear or area")
    if align_corners is not None and not linear:
        raise ValueError("interpolate: align_corners can only be set with the interpolating modes linear | bilinear | trilinear")
    if not input.dtype.is_floating_point:
        raise RuntimeError(f"interpolate: expected a floating point input, got {input.dtype.name}")
    sizes, scales = _interp_sizes(input, size, scale_factor, recompute_scale_factor)
    x = input
    for i, (n_out, scale) in enumerate(zip(sizes, scales)):
        d = 2 + i
        if mode == "area":
            x = _adaptive_avg_dim(x, d, n_out)
        elif linear:
            x = _linear_dim(x, d, n_out, scale, bool(align_corners))
        else:
            x = _nearest_dim(x, d, n_out, scale, mode == "nearest-exact")
    return x


def upsample(input: Tensor, size=None, scale_factor=None, mode: str = "nearest", align_corners: bool | None = None) -> Tensor:
    """Deprecated alias of interpolate (kept for old torch code)."""
    return interpolate(input, size, scale_factor, mode, align_corners)


def pixel_shuffle(input: Tensor, upscale_factor: int) -> Tensor:
    """(*, C * r^2, H, W) -> (*, C, H * r, W * r): out[c, h*r + i, w*r + j] = in[c*r^2 + i*r + j, h, w]."""
    r = upscale_factor
    if input.ndim < 3:
        raise RuntimeError(f"pixel_shuffle: expected an input with at least 3 dims (*, C, H, W), got shape {input.shape}")
    if not isinstance(r, int) or r < 1:
        raise ValueError(f"pixel_shuffle: upscale_factor must be a positive int, got {r!r}")
    *lead, c, h, w = input.shape
    if c % (r * r):
        raise RuntimeError(f"pixel_shuffle: the {c} channels of the input of shape {input.shape} must be divisible by upscale_factor^2 = {r * r}")
    k = len(lead)
    x = input.reshape(*lead, c // (r * r), r, r, h, w)
    x = x.permute(*range(k), k, k + 3, k + 1, k + 4, k + 2)
    return x.reshape(*lead, c // (r * r), h * r, w * r)


def pixel_unshuffle(input: Tensor, downscale_factor: int) -> Tensor:
    """(*, C, H * r, W * r) -> (*, C * r^2, H, W), the inverse of pixel_shuffle."""
    r = downscale_factor
    if input.ndim < 3:
        raise RuntimeError(f"pixel_unshuffle: expected an input with at least 3 dims (*, C, H, W), got shape {input.shape}")
    if not isinstance(r, int) or r < 1:
        raise ValueError(f"pixel_unshuffle: downscale_factor must be a positive int, got {r!r}")
    *lead, c, h, w = input.shape
    if h % r or w % r:
        raise RuntimeError(f"pixel_unshuffle: the height {h} and width {w} of the input of shape {input.shape} must be divisible by downscale_factor={r}")
    k = len(lead)
    x = input.reshape(*lead, c, h // r, r, w // r, r)
    x = x.permute(*range(k), k, k + 2, k + 4, k + 1, k + 3)
    return x.reshape(*lead, c * r * r, h // r, w // r)


__all__ += [
    "batch_norm",
    "instance_norm",
    "group_norm",
    "rms_norm",
    "conv1d",
    "conv_transpose1d",
    "conv_transpose2d",
    "max_pool1d",
    "avg_pool1d",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "interpolate",
    "upsample",
    "pixel_shuffle",
    "pixel_unshuffle",
]


# ===== more activations, in-place activations, padding modes, channel dropout (nnact) =====
# In-place forms go through Tensor._inplace (tensor_inplace.py): the tensor object is the
# result, its views see the new value, and autograd treats it as torch treats in-place ops.

from ..creation import cat  # noqa: E402


def _check_tensor(op: str, input) -> None:
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: expected a Tensor as input, got {type(input).__name__}")


def _write_inplace(op: str, input: Tensor, fn) -> Tensor:
    """Set input's value to fn(input's value), in place (torch's in-place op `op`)."""
    _check_tensor(op, input)
    return input._inplace(op, fn)


def relu_(input: Tensor) -> Tensor:
    """relu, in place."""
    _check_tensor("relu_", input)
    return input.relu_()


def elu_(input: Tensor, alpha: float = 1.0) -> Tensor:
    """elu, in place."""
    return _write_inplace("elu_", _float_input("elu_", input), lambda s: elu(s, alpha))


def leaky_relu_(input: Tensor, negative_slope: float = 0.01) -> Tensor:
    """leaky_relu, in place."""
    return _write_inplace("leaky_relu_", _float_input("leaky_relu_", input), lambda s: leaky_relu(s, negative_slope))


def hardtanh_(input: Tensor, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:
    """hardtanh, in place."""
    if max_val < min_val:
        raise ValueError(f"hardtanh_: max_val ({max_val}) must be greater than or equal to min_val ({min_val})")
    return _write_inplace("hardtanh_", _float_input("hardtanh_", input), lambda s: hardtanh(s, min_val, max_val))


def selu_(input: Tensor) -> Tensor:
    """selu, in place."""
    return _write_inplace("selu_", _float_input("selu_", input), selu)


def celu_(input: Tensor, alpha: float = 1.0) -> Tensor:
    """celu, in place."""
    if alpha == 0:
        raise ValueError("celu_: alpha must be nonzero (the formula divides by it)")
    return _write_inplace("celu_", _float_input("celu_", input), lambda s: celu(s, alpha))


def threshold(input: Tensor, threshold: float, value: float, inplace: bool = False) -> Tensor:
    """x where x > threshold, else value."""
    if inplace:
        return threshold_(input, threshold, value)
    _check_tensor("threshold", input)
    return where(input > threshold, input, value).type(input.dtype)


def threshold_(input: Tensor, threshold: float, value: float) -> Tensor:
    """threshold, in place."""
    return _write_inplace("threshold_", input, lambda s: where(s > threshold, s, value).type(s.dtype))


def hardshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    """x where |x| > lambd, else 0."""
    x = _float_input("hardshrink", input)
    return where(x.abs() > lambd, x, 0.0).type(x.dtype)


def softshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    """x - lambd where x > lambd, x + lambd where x < -lambd, else 0."""
    x = _float_input("softshrink", input)
    if lambd < 0:
        raise RuntimeError(f"softshrink: lambda must be greater or equal to 0, but found to be {lambd}")
    return where(x > lambd, x - lambd, where(x < -lambd, x + lambd, 0.0)).type(x.dtype)


def glu(input: Tensor, dim: int = -1) -> Tensor:
    """a * sigmoid(b), where a and b are the two halves of input along dim."""
    x = _float_input("glu", input)
    if x.ndim == 0:
        raise RuntimeError("glu: does not support scalars (0-d tensors) because halving size must be even")
    d = _norm_dim(dim, x.ndim, "glu")
    n = x.shape[d]
    if n % 2:
        raise RuntimeError(
            f"glu: Halving dimension must be even, but dimension {d} is size {n} (input of shape {x.shape})"
        )
    a, b = x.narrow(d, 0, n // 2), x.narrow(d, n // 2, n // 2)
    return a * b.sigmoid()


def _implicit_softmax_dim(op: str, ndim: int) -> int:
    warnings.warn(
        f"Implicit dimension choice for {op} has been deprecated. Change the call to include dim=X as an argument.",
        UserWarning,
        stacklevel=3,
    )
    return 0 if ndim in (0, 1, 3) else 1


def softmin(input: Tensor, dim: int | None = None, dtype=None) -> Tensor:
    """softmax(-x) along dim (stable)."""
    _check_tensor("softmin", input)
    x = _float_input("softmin", input if dtype is None else input.type(dtype))
    if dim is None:
        dim = _implicit_softmax_dim("softmin", x.ndim)
    return softmax(-x, dim)


# ----- padding modes: reflect, replicate, circular (movement ops and one cat per dim) -----


def _pad_dim(x: Tensor, d: int, lo: int, hi: int, mode: str) -> Tensor:
    """x padded along dim d: out[i] = x[m(i - lo)], m the mode's index map onto [0, n)."""
    n = x.shape[d]
    crop_lo, crop_hi = max(0, -lo), max(0, -hi)
    pieces = []
    if lo > 0:
        if mode == "reflect":
            pieces.append(x.narrow(d, 1, lo).flip(d))
        elif mode == "replicate":
            pieces.append(x.narrow(d, 0, 1).expand(*x.shape[:d], lo, *x.shape[d + 1 :]))
        else:  # circular
            pieces.append(x.narrow(d, n - lo, lo))
    if n - crop_lo - crop_hi > 0:
        pieces.append(x.narrow(d, crop_lo, n - crop_lo - crop_hi))
    if hi > 0:
        if mode == "reflect":
            pieces.append(x.narrow(d, n - 1 - hi, hi).flip(d))
        elif mode == "replicate":
            pieces.append(x.narrow(d, n - 1, 1).expand(*x.shape[:d], hi, *x.shape[d + 1 :]))
        else:
            pieces.append(x.narrow(d, 0, hi))
    return pieces[0] if len(pieces) == 1 else cat(pieces, d)


def _pad_nonconstant(input: Tensor, pad: Sequence[int], mode: str, value) -> Tensor:
    """F.pad's 'reflect', 'replicate' and 'circular' modes (torch's checks and index maps)."""
    if value is not None and value != 0:
        raise RuntimeError(f'pad: padding mode "{mode}" doesn\'t take in value argument (got value={value})')
    k = len(pad) // 2
    if len(pad) not in (2, 4, 6) or input.ndim not in (k + 1, k + 2):
        raise NotImplementedError(
            f"pad: mode {mode!r} pads the last 1, 2 or 3 dims of an input with those dims, a channel dim and an "
            f"optional batch dim; got padding of length {len(pad)} for an input of shape {input.shape}"
        )
    x = input
    for i in range(k):
        d = input.ndim - 1 - i
        lo, hi, n = int(pad[2 * i]), int(pad[2 * i + 1]), input.shape[d]
        if mode == "reflect" and (lo >= n or hi >= n):
            raise RuntimeError(
                f"pad: reflect padding size should be less than the corresponding input dimension, but got "
                f"padding ({lo}, {hi}) at dimension {d} of input of shape {input.shape}"
            )
        if mode == "circular" and (lo > n or hi > n):
            raise RuntimeError(
                f"pad: circular padding ({lo}, {hi}) at dimension {d} of input of shape {input.shape} "
                "wraps around more than once; it must be at most the size of that dimension"
            )
        if n == 0 or max(0, -lo) + max(0, -hi) > n or n + lo + hi <= 0:
            raise RuntimeError(
                f"pad: padding ({lo}, {hi}) at dimension {d} of input of shape {input.shape} "
                f"gives an empty or negative output size in mode {mode!r}"
            )
        x = _pad_dim(x, d, lo, hi, mode)
    return x


# ----- channel dropout (dropout1d / 2d / 3d) -----


def _check_dropout_p(p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def _feature_dropout(op: str, input: Tensor, p: float, training: bool, inplace: bool, unbatched: bool) -> Tensor:
    """Zero whole channels (dims 0 and 1, or dim 0 of an unbatched input) with probability p and
    scale the rest by 1/(1-p), the channel mask drawn on the device from smolgrad's streams."""
    _check_dropout_p(p)
    if not training or p == 0.0:
        return input
    x = _float_input(op, input)
    if x.ndim < 2:
        raise RuntimeError(f"{op}: feature dropout requires at least 2 dimensions in the input, got shape {x.shape}")
    lead = 1 if unbatched else 2
    mask_shape = x.shape[:lead] + (1,) * (x.ndim - lead)
    if p == 1.0:
        scale = x.new_zeros(mask_shape)
    else:
        from ..creation import uniform_lazy

        (u,) = uniform_lazy(mask_shape, x.dtype, x.device)
        scale = where(Tensor._from_lazy(u) >= p, 1.0 / (1.0 - p), 0.0).type(x.dtype)
    if inplace:
        return _write_inplace(op + "_", x, lambda s: s * scale)
    return x * scale


def dropout1d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels of an (N, C, L) or (C, L) input with probability p, scaling the rest by 1/(1-p)."""
    _check_dropout_p(p)
    _check_tensor("dropout1d", input)
    if input.ndim not in (2, 3):
        raise RuntimeError(
            f"dropout1d: Expected 2D or 3D input, but received input of shape {input.shape}. "
            "dropout1d zeroes channels of (N, C, L) or (C, L) inputs"
        )
    return _feature_dropout("dropout1d", input, p, training, inplace, unbatched=input.ndim == 2)


def _warn_dropout_dims(op: str, ndim: int, expected: str) -> None:
    warnings.warn(
        f"{op}: Received a {ndim}-D input to {op}, which is deprecated and will result in an error in a future "
        f"release. {op} expects {expected} inputs; the input is treated as (N, C, *)",
        UserWarning,
        stacklevel=3,
    )


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels of an (N, C, H, W) or (C, H, W) input with probability p, scaling the rest by 1/(1-p)."""
    _check_dropout_p(p)
    _check_tensor("dropout2d", input)
    if input.ndim not in (3, 4):
        _warn_dropout_dims("dropout2d", input.ndim, "3-D (C, H, W) or 4-D (N, C, H, W)")
    return _feature_dropout("dropout2d", input, p, training, inplace, unbatched=input.ndim == 3)


def dropout3d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels of an (N, C, D, H, W) or (C, D, H, W) input with probability p, scaling the rest by 1/(1-p)."""
    _check_dropout_p(p)
    _check_tensor("dropout3d", input)
    if input.ndim not in (4, 5):
        _warn_dropout_dims("dropout3d", input.ndim, "4-D (C, D, H, W) or 5-D (N, C, D, H, W)")
    return _feature_dropout("dropout3d", input, p, training, inplace, unbatched=input.ndim == 4)
