"""Attention: F.scaled_dot_product_attention, F.multi_head_attention_forward and
nn.MultiheadAttention.

scaled_dot_product_attention without dropout runs as one fused op (smolgrad.fused_attention:
a flash-attention kernel on webgpu); with dropout, and where the fused op cannot run, it is
composed of Tensor ops (matmul, softmax, where, dropout), the reference the fused op is
tested against."""

from __future__ import annotations

import math

from .. import creation, fused_attention
from ..autocast_mode import autocast_op
from ..tensor import Tensor, where
from . import init
from .functional import dropout, linear
from .linear import Linear
from .module import Module
from .parameter import Parameter

# ----- helpers -----


def _check_float(op: str, name: str, t: Tensor) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{op}: {name} must be a Tensor, got {type(t).__name__}")
    if not t.dtype.is_floating_point:
        raise TypeError(f"{op}: {name} must be a floating point tensor, got {t.dtype.name}")


def _mask_bias(op: str, mask: Tensor, like: Tensor, masked_when: bool) -> Tensor:
    """An additive float mask in like's dtype: a bool mask becomes -inf where it equals
    `masked_when` and 0 elsewhere; a float mask is used as it is."""
    if not isinstance(mask, Tensor):
        raise TypeError(f"{op}: a mask must be a Tensor (bool or float), got {type(mask).__name__}")
    if mask.device != like.device:
        raise RuntimeError(f"{op}: a mask is on {mask.device} but the query is on {like.device}; move it with .to()")
    if mask.dtype.is_bool:
        return where(mask if masked_when else mask.logical_not(), float("-inf"), 0.0).type(like.dtype)
    if not mask.dtype.is_floating_point:
        raise TypeError(f"{op}: a mask must be bool or floating point (additive), got {mask.dtype.name}")
    return mask.type(like.dtype)


def _attend(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None, dropout_p: float, scale: float) -> tuple[Tensor, Tensor]:
    """softmax(q @ k^T * scale + bias) (with dropout) @ v, and those attention weights."""
    scores = (q * scale) @ k.transpose(-2, -1)
    if bias is not None:
        scores = scores + bias
    weights = scores.softmax(-1)
    if dropout_p > 0.0:
        weights = dropout(weights, dropout_p, training=True)
    return weights @ v, weights


def _repeat_heads(t: Tensor, groups: int) -> Tensor:
    """Repeat each head (dim -3) `groups` times in place: repeat_interleave(groups, -3)."""
    if groups == 1:
        return t
    shape = t.shape
    expanded = t.unsqueeze(-3).expand(*shape[:-2], groups, *shape[-2:])
    return expanded.reshape(*shape[:-3], shape[-3] * groups, *shape[-2:])


# ----- functional -----


@autocast_op("lower")
def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask: Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> Tensor:
    """softmax(Q K^T * scale + mask) V over the last two dims, like torch's reference.

    attn_mask: bool (True = may attend) or additive float, broadcastable to (..., L, S).
    is_causal masks with a top-left aligned lower triangle (no attn_mask allowed then).
    scale defaults to 1/sqrt(E). dropout_p applies whenever it is > 0 (pass
    `p if self.training else 0.0`, as with torch). enable_gqa repeats key/value heads
    (dim -3) to match the query's."""
    op = "scaled_dot_product_attention"
    for name, t in (("query", query), ("key", key), ("value", value)):
        _check_float(op, name, t)
        if t.ndim < 2:
            raise RuntimeError(f"{op}: {name} must have at least 2 dims (..., seq, features), got shape {t.shape}")
        if t.device != query.device:
            raise RuntimeError(f"{op}: {name} is on {t.device} but query is on {query.device}")
    if query.shape[-1] != key.shape[-1]:
        raise RuntimeError(
            f"{op}: query's last dim ({query.shape[-1]}) must equal key's ({key.shape[-1]}); shapes {query.shape} and {key.shape}"
        )
    if key.shape[-2] != value.shape[-2]:
        raise RuntimeError(
            f"{op}: key and value need the same sequence length (dim -2), got shapes {key.shape} and {value.shape}"
        )
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"{op}: dropout_p must be between 0 and 1, got {dropout_p}")
    if enable_gqa:
        if query.ndim < 3 or key.ndim < 3 or value.ndim < 3:
            raise RuntimeError(f"{op}: enable_gqa needs a heads dim (-3) in query, key and value")
        hq, hk, hv = query.shape[-3], key.shape[-3], value.shape[-3]
        if hk != hv or hq % hk:
            raise RuntimeError(
                f"{op}: with enable_gqa the query heads ({hq}) must be a multiple of the key/value heads ({hk}, {hv})"
            )
        key, value = _repeat_heads(key, hq // hk), _repeat_heads(value, hq // hv)
    L, S = query.shape[-2], key.shape[-2]
    bias = None
    if is_causal and attn_mask is not None:
        raise RuntimeError(f"{op}: an explicit attn_mask should not be set when is_causal=True")
    if attn_mask is not None:
        bias = _mask_bias(op, attn_mask, query, masked_when=False)
        if bias.ndim > 0 and (bias.shape[-1] not in (1, S) or (bias.ndim > 1 and bias.shape[-2] not in (1, L))):
            raise RuntimeError(f"{op}: attn_mask of shape {attn_mask.shape} does not broadcast to the scores' (..., {L}, {S})")
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
    if dropout_p == 0.0 and fused_attention.supports(query, key, value, bias):
        return fused_attention.attention(query, key, value, bias, scale, is_causal)
    if is_causal:
        causal = creation.ones(L, S, dtype="bool", device=query.device).tril()
        bias = _mask_bias(op, causal, query, masked_when=False)
    return _attend(query, key, value, bias, dropout_p, scale)[0]


def multi_head_attention_forward(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    embed_dim_to_check: int,
    num_heads: int,
    in_proj_weight: Tensor | None,
    in_proj_bias: Tensor | None,
    bias_k: Tensor | None,
    bias_v: Tensor | None,
    add_zero_attn: bool,
    dropout_p: float,
    out_proj_weight: Tensor,
    out_proj_bias: Tensor | None,
    training: bool = True,
    key_padding_mask: Tensor | None = None,
    need_weights: bool = True,
    attn_mask: Tensor | None = None,
    use_separate_proj_weight: bool = False,
    q_proj_weight: Tensor | None = None,
    k_proj_weight: Tensor | None = None,
    v_proj_weight: Tensor | None = None,
    static_k: Tensor | None = None,
    static_v: Tensor | None = None,
    average_attn_weights: bool = True,
    is_causal: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """Multi-head attention on (L, N, E) query / (S, N, E) key and value (or unbatched
    (L, E) / (S, E)), as torch.nn.functional.multi_head_attention_forward.

    Masks follow MultiheadAttention: a bool True in attn_mask or key_padding_mask means
    "may NOT attend"; float masks are added. bias_k/bias_v, add_zero_attn and
    static_k/static_v are not supported."""
    op = "multi_head_attention_forward"
    if bias_k is not None or bias_v is not None:
        raise NotImplementedError(f"{op}: bias_k/bias_v (add_bias_kv=True) are not supported")
    if add_zero_attn:
        raise NotImplementedError(f"{op}: add_zero_attn=True is not supported")
    if static_k is not None or static_v is not None:
        raise NotImplementedError(f"{op}: static_k/static_v are not supported")
    for name, t in (("query", query), ("key", key), ("value", value)):
        _check_float(op, name, t)
    batched = _check_mha_shapes(op, query, key, value, key_padding_mask, attn_mask, num_heads)
    if not batched:
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
    L, N, E = query.shape
    S = key.shape[0]
    if E != embed_dim_to_check:
        raise RuntimeError(f"{op}: was expecting embedding dimension of {embed_dim_to_check}, but got {E}")
    if E % num_heads:
        raise RuntimeError(f"{op}: embed_dim {E} not divisible by num_heads {num_heads}")
    head_dim = E // num_heads
    if use_separate_proj_weight:
        if key.shape[:2] != value.shape[:2]:
            raise RuntimeError(f"{op}: key's sequence and batch dims {key.shape[:2]} do not match value's {value.shape[:2]}")
    elif key.shape != value.shape:
        raise RuntimeError(f"{op}: key shape {key.shape} does not match value shape {value.shape}")
    if is_causal and attn_mask is None:
        raise RuntimeError(
            f"{op}: is_causal=True is a hint and needs the causal attn_mask as well; build it with "
            "smolgrad.nn.transformer.generate_square_subsequent_mask(L)"
        )

    if use_separate_proj_weight:
        if q_proj_weight is None or k_proj_weight is None or v_proj_weight is None:
            raise RuntimeError(f"{op}: use_separate_proj_weight=True needs q_proj_weight, k_proj_weight and v_proj_weight")
        w_q, w_k, w_v = q_proj_weight, k_proj_weight, v_proj_weight
    else:
        if in_proj_weight is None:
            raise RuntimeError(f"{op}: in_proj_weight is None; pass it or use_separate_proj_weight=True")
        w_q, w_k, w_v = in_proj_weight.chunk(3)
    b_q = b_k = b_v = None
    if in_proj_bias is not None:
        b_q, b_k, b_v = in_proj_bias.chunk(3)
    q, k, v = linear(query, w_q, b_q), linear(key, w_k, b_k), linear(value, w_v, b_v)

    def heads(t: Tensor, length: int) -> Tensor:  # (len, N, E) -> (N, heads, len, head_dim)
        return t.reshape(length, N, num_heads, head_dim).permute(1, 2, 0, 3)

    bias = None
    if attn_mask is not None:
        bias = _mask_bias(op, attn_mask, q, masked_when=True)
        if bias.ndim == 3:
            bias = bias.reshape(N, num_heads, L, S)
    if key_padding_mask is not None:
        padding = _mask_bias(op, key_padding_mask, q, masked_when=True).reshape(N, 1, 1, S)
        bias = padding if bias is None else bias + padding
    dropout_p = dropout_p if training else 0.0
    out, weights = _attend(heads(q, L), heads(k, S), heads(v, S), bias, dropout_p, 1.0 / math.sqrt(head_dim))
    out = linear(out.permute(2, 0, 1, 3).reshape(L, N, E), out_proj_weight, out_proj_bias)
    if not need_weights:
        weights = None
    elif average_attn_weights:
        weights = weights.mean(1)
    if not batched:
        out = out.squeeze(1)
        weights = weights.squeeze(0) if weights is not None else None
    return out, weights


def _check_mha_shapes(op, query, key, value, key_padding_mask, attn_mask, num_heads) -> bool:
    """Whether the inputs are batched (3-D) or unbatched (2-D); raise on any mismatch."""
    if query.ndim == 3:
        batched = True
        if key.ndim != 3 or value.ndim != 3:
            raise RuntimeError(
                f"{op}: for batched (3-D) query, key and value must also be 3-D, got {key.ndim}-D and {value.ndim}-D"
            )
        if key_padding_mask is not None and key_padding_mask.ndim != 2:
            raise RuntimeError(f"{op}: for batched (3-D) query, key_padding_mask must be 2-D (N, S), got shape {key_padding_mask.shape}")
    elif query.ndim == 2:
        batched = False
        if key.ndim != 2 or value.ndim != 2:
            raise RuntimeError(
                f"{op}: for unbatched (2-D) query, key and value must also be 2-D, got {key.ndim}-D and {value.ndim}-D"
            )
        if key_padding_mask is not None and key_padding_mask.ndim != 1:
            raise RuntimeError(f"{op}: for unbatched (2-D) query, key_padding_mask must be 1-D (S,), got shape {key_padding_mask.shape}")
    else:
        raise RuntimeError(f"{op}: query should be unbatched 2-D or batched 3-D, got a {query.ndim}-D tensor of shape {query.shape}")
    L, S = query.shape[0], key.shape[0]
    N = query.shape[1] if batched else 1
    if batched and (key.shape[1] != N or value.shape[1] != N):
        raise RuntimeError(f"{op}: batch sizes differ: query {query.shape}, key {key.shape}, value {value.shape} (dim 1 is the batch)")
    if key_padding_mask is not None:
        expected = (N, S) if batched else (S,)
        if tuple(key_padding_mask.shape) != expected:
            raise RuntimeError(f"{op}: expecting key_padding_mask shape of {expected}, but got {key_padding_mask.shape}")
    if attn_mask is not None:
        if not isinstance(attn_mask, Tensor):
            raise TypeError(f"{op}: attn_mask must be a Tensor (bool or float), got {type(attn_mask).__name__}")
        expected3 = (N * num_heads, L, S) if batched else (num_heads, L, S)
        if attn_mask.ndim == 2 and attn_mask.shape != (L, S):
            raise RuntimeError(f"{op}: the shape of the 2-D attn_mask is {attn_mask.shape}, but should be {(L, S)}")
        if attn_mask.ndim == 3 and attn_mask.shape != expected3:
            raise RuntimeError(f"{op}: the shape of the 3-D attn_mask is {attn_mask.shape}, but should be {expected3}")
        if attn_mask.ndim not in (2, 3):
            raise RuntimeError(f"{op}: attn_mask must be 2-D (L, S) or 3-D (N * num_heads, L, S), got shape {attn_mask.shape}")
    return batched


# ----- module -----


class NonDynamicallyQuantizableLinear(Linear):
    """A Linear under the class name PyTorch gives MultiheadAttention.out_proj."""


class MultiheadAttention(Module):
    """Multi-head attention (torch.nn.MultiheadAttention): project query, key and value,
    attend per head, concatenate and project out.

    Parameters as torch: in_proj_weight (3E, E) when kdim == vdim == embed_dim, else
    q_proj_weight (E, E), k_proj_weight (E, kdim), v_proj_weight (E, vdim); in_proj_bias
    (3E); out_proj.weight, out_proj.bias. Masks: bool True = may NOT attend, float = added."""

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = False,
        device=None,
        dtype=None,
    ):
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(
                f"MultiheadAttention: embed_dim and num_heads must be greater than 0, got embed_dim={embed_dim} "
                f"and num_heads={num_heads} instead"
            )
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
        if add_bias_kv:
            raise NotImplementedError("MultiheadAttention: add_bias_kv=True is not supported")
        if add_zero_attn:
            raise NotImplementedError("MultiheadAttention: add_zero_attn=True is not supported")
        self.embed_dim, self.num_heads, self.dropout, self.batch_first = embed_dim, num_heads, dropout, batch_first
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.head_dim = embed_dim // num_heads
        self.add_zero_attn = add_zero_attn

        def weight(*shape):
            return Parameter(creation.empty(*shape, device=device, dtype=dtype))

        if self._qkv_same_embed_dim:
            self.in_proj_weight = weight(3 * embed_dim, embed_dim)
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        else:
            self.q_proj_weight = weight(embed_dim, embed_dim)
            self.k_proj_weight = weight(embed_dim, self.kdim)
            self.v_proj_weight = weight(embed_dim, self.vdim)
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = weight(3 * embed_dim)
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = NonDynamicallyQuantizableLinear(embed_dim, embed_dim, bias=bias, device=device, dtype=dtype)
        self.bias_k = self.bias_v = None
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        """torch's init: xavier_uniform_ on the input projections, zeros on the biases."""
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            init.xavier_uniform_(self.q_proj_weight)
            init.xavier_uniform_(self.k_proj_weight)
            init.xavier_uniform_(self.v_proj_weight)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = True,
        attn_mask: Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """(attn_output, attn_weights or None); inputs (L, N, E) ((N, L, E) with
        batch_first) or unbatched (L, E). Weights are (N, L, S), or (N, heads, L, S)
        with average_attn_weights=False."""
        for name, t in (("query", query), ("key", key), ("value", value)):
            _check_float("MultiheadAttention", name, t)
        batched = query.ndim == 3
        if self.batch_first and batched:
            query, key, value = (t.transpose(0, 1) if t.ndim == 3 else t for t in (query, key, value))
        out, weights = multi_head_attention_forward(
            query, key, value, self.embed_dim, self.num_heads,
            self.in_proj_weight, self.in_proj_bias, None, None, self.add_zero_attn, self.dropout,
            self.out_proj.weight, self.out_proj.bias,
            training=self.training, key_padding_mask=key_padding_mask, need_weights=need_weights,
            attn_mask=attn_mask, use_separate_proj_weight=not self._qkv_same_embed_dim,
            q_proj_weight=self.q_proj_weight, k_proj_weight=self.k_proj_weight, v_proj_weight=self.v_proj_weight,
            average_attn_weights=average_attn_weights, is_causal=is_causal,
        )  # fmt: skip
        if self.batch_first and batched:
            out = out.transpose(0, 1)
        return out, weights


__all__ = ["scaled_dot_product_attention", "multi_head_attention_forward", "MultiheadAttention", "NonDynamicallyQuantizableLinear"]
