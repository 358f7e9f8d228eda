"""BatchNorm1d/2d, InstanceNorm1d/2d, GroupNorm and RMSNorm (LayerNorm is in layers.py)."""

from __future__ import annotations

import warnings

from .. import creation, dtypes
from ..autograd import no_grad
from ..lazy import realize
from ..tensor import Tensor
from . import functional as F
from . import init
from .module import Module
from .parameter import Parameter


class _NormBase(Module):
    """Parameters (weight, bias) and buffers (running_mean, running_var, num_batches_tracked)
    with torch's names, shapes and initial values."""

    _expected_dims: tuple[int, ...] = ()
    _input_names = ""
    _channel_error: type[Exception] = ValueError  # the exception torch raises for a wrong channel count

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device=None,
        dtype=None,
    ):
        super().__init__()
        if num_features < 1:
            raise ValueError(f"{type(self).__name__}: num_features must be positive, got {num_features}")
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = Parameter(creation.empty(num_features, device=device, dtype=dtype))
            self.bias = Parameter(creation.empty(num_features, device=device, dtype=dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", creation.zeros(num_features, device=device, dtype=dtype))
            self.register_buffer("running_var", creation.ones(num_features, device=device, dtype=dtype))
            self.register_buffer("num_batches_tracked", creation.zeros((), dtype=dtypes.int64, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            init.zeros_(self.running_mean)
            init.ones_(self.running_var)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def _check_input(self, input: Tensor) -> None:
        name = type(self).__name__
        if input.ndim not in self._expected_dims:
            raise ValueError(f"{name}: expected {self._input_names} input, got a {input.ndim}-D input of shape {input.shape}")
        c = input.shape[self._channel_dim(input)]
        if c == self.num_features:
            return
        if self.affine or self.track_running_stats:
            raise self._channel_error(
                f"{name}: expected {self.num_features} channels (num_features) in dim {self._channel_dim(input)} "
                f"of the input, got {c} (input shape {input.shape})"
            )
        warnings.warn(
            f"{name}: input has {c} channels but num_features is {self.num_features}; without affine "
            "parameters or running statistics num_features is not used",
            stacklevel=3,
        )

    def _channel_dim(self, input: Tensor) -> int:
        return 1

    def _finish_pending_update(self) -> None:
        """Compute last step's (lazy) running-stat update now.

        Without this each buffer's graph would chain every batch since the last time it was
        read, keeping all their activations alive; this keeps it one step deep."""
        pending = [b for b in self.buffers(recurse=False) if not b.lazydata.is_realized()]
        if pending:
            realize(*[b.lazydata for b in pending])

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"track_running_stats={self.track_running_stats}"
        )


class _BatchNorm(_NormBase):
    _channel_error = RuntimeError

    def forward(self, input: Tensor) -> Tensor:
        self._check_input(input)
        update = self.training and self.track_running_stats
        momentum = 0.0
        if update:
            self._finish_pending_update()
            momentum = self.momentum
            if momentum is None:  # a cumulative moving average: 1 / (batches so far), lazily (no read back)
                momentum = 1.0 / (self.num_batches_tracked + 1).type(self.running_mean.dtype)
        # batch statistics in training, or whenever there are no running ones
        use_batch = self.training or self.running_mean is None
        track = update or not self.training
        out = F.batch_norm(
            input,
            self.running_mean if track else None,
            self.running_var if track else None,
            self.weight,
            self.bias,
            use_batch,
            momentum,
            self.eps,
        )
        if update:  # counted only once the batch was accepted
            with no_grad():
                self.num_batches_tracked.copy_(self.num_batches_tracked + 1)
        return out


class BatchNorm1d(_BatchNorm):
    """Batch normalisation over an (N, C) or (N, C, L) input, per channel C.

    Training uses the batch's statistics and updates running_mean / running_var
    (momentum=None: a cumulative average); eval uses the running statistics."""

    _expected_dims, _input_names = (2, 3), "a 2-D (N, C) or 3-D (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation over an (N, C, H, W) input, per channel C (see BatchNorm1d)."""

    _expected_dims, _input_names = (4,), "a 4-D (N, C, H, W)"


class _InstanceNorm(_NormBase):
    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = False,
        track_running_stats: bool = False,
        device=None,
        dtype=None,
    ):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)

    def _channel_dim(self, input: Tensor) -> int:
        return 0 if input.ndim == self._expected_dims[0] else 1
    def forward(self, input: Tensor) -> Tensor:
        self._check_input(input)
        unbatched = input.ndim == self._expected_dims[0]
        x = input.unsqueeze(0) if unbatched else input
        use_input_stats = self.training or not self.track_running_stats
        momentum = 0.0
        if self.training and self.track_running_stats:
            # torch's instance norms neither count batches nor average cumulatively (momentum=None: no update)
            self._finish_pending_update()
            momentum = self.momentum if self.momentum is not None else 0.0
        out = F.instance_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, use_input_stats, momentum, self.eps
        )
        return out.squeeze(0) if unbatched else out


class InstanceNorm1d(_InstanceNorm):
    """Normalise each channel of each sample of an (N, C, L) or (C, L) input over L."""

    _expected_dims, _input_names = (2, 3), "a 2-D (C, L) or 3-D (N, C, L)"


class InstanceNorm2d(_InstanceNorm):
    """Normalise each channel of each sample of an (N, C, H, W) or (C, H, W) input over H, W.

    Defaults as torch: affine=False, track_running_stats=False."""

    _expected_dims, _input_names = (3, 4), "a 3-D (C, H, W) or 4-D (N, C, H, W)"


class GroupNorm(Module):
    """Normalise groups of channels of each sample of an (N, C, *) input, then scale and
    shift per channel (weight ones, bias zeros)."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True, device=None, dtype=None):
        super().__init__()
        if num_groups < 1 or num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by num_groups ({num_groups})")
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        if affine:
            self.weight = Parameter(creation.empty(num_channels, device=device, dtype=dtype))
            self.bias = Parameter(creation.empty(num_channels, device=device, dtype=dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def forward(self, input: Tensor) -> Tensor:
        if input.ndim < 2 or input.shape[1] != self.num_channels:
            raise RuntimeError(
                f"GroupNorm: expected an (N, {self.num_channels}, *) input ({self.num_channels} channels in dim 1), "
                f"got shape {input.shape}"
            )
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class RMSNorm(Module):
    """x / sqrt(mean(x^2) + eps) * weight over the last dims (normalized_shape);
    eps=None uses the input dtype's machine epsilon."""

    def __init__(self, normalized_shape, eps: float | None = None, elementwise_affine: bool = True, device=None, dtype=None):
        super().__init__()
        self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(creation.empty(self.normalized_shape, device=device, dtype=dtype))
        else:
            self.register_parameter("weight", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.weight is not None:
            init.ones_(self.weight)

    def forward(self, input: Tensor) -> Tensor:
        return F.rms_norm(input, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
