"""Attention as one op: softmax(q k^T * scale + bias, causal) v without the scores in memory.

`Attention` is a Function whose forward is one ATTENTION node (on webgpu a flash-attention
kernel: an online softmax over key blocks staged in workgroup memory) and whose VJP is two
more (dq over query rows; dk and dv over key rows), recomputing the probabilities from the
saved log-sum-exp rather than storing them. Its JVP, and its VJP when `create_graph` asks
for a differentiable one, are composed of ordinary ops.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING

from .autograd import Function, is_grad_enabled
from .lazy import LazyBuffer
from .ops import AttentionArg
from .shapes import broadcast_shapes

if TYPE_CHECKING:
    from .tensor import Tensor

MAX_HEAD_DIM = 256  # webgpu keeps a query row and an output row per thread in registers
MAX_BATCH = 65535  # webgpu runs one row of workgroups per batch element (the WebGPU default limit)


def fused_attention_enabled() -> bool:
    """Whether scaled_dot_product_attention may use the fused op (`SMOLGRAD_FUSED_ATTENTION=0` turns it off)."""
    return os.environ.get("SMOLGRAD_FUSED_ATTENTION", "1") != "0"


def _batch(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None) -> tuple[int, ...]:
    return broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2], () if bias is None else bias.shape[:-2])


def supports(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None) -> bool:
    """Whether the fused op can compute this attention (else compose it of ordinary ops)."""
    if not fused_attention_enabled() or q.dtype != k.dtype or q.dtype != v.dtype:
        return False
    if bias is not None and (bias.requires_grad or bias.dtype != q.dtype):
        return False  # a learned bias's gradient needs the scores: the composition has them
    if q.device == "webgpu":
        if max(q.shape[-1], v.shape[-1]) > MAX_HEAD_DIM or math.prod(_batch(q, k, v, bias)) > MAX_BATCH:
            return False
    return min(q.shape[-2], k.shape[-2], q.shape[-1], v.shape[-1]) > 0


def attention(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None, scale: float, causal: bool) -> Tensor:
    """softmax(q k^T * scale + bias) v (top-left causal mask when `causal`) as one fused op;
    q (*B, L, D), k (*B, S, D), v (*B, S, Dv) with broadcastable batch dims, bias
    broadcastable to (*B, L, S) or None."""
    batch = _batch(q, k, v, bias)
    L, S = q.shape[-2], k.shape[-2]
    q, k, v = (x.expand(*batch, *x.shape[-2:]) for x in (q, k, v))
    tensors = [q, k, v]
    if bias is not None:
        tensors.append(bias.expand(*batch, L, S))
    return Attention.apply(*tensors, scale=float(scale), causal=bool(causal))


def _scores(q: Tensor, k: Tensor, bias: Tensor | None, scale: float, causal: bool) -> Tensor:
    """q k^T * scale + bias, -inf above the diagonal when causal (ordinary ops)."""
    from . import creation

    s = (q @ k.transpose(-2, -1)) * scale
    if bias is not None:
        s = s + bias
    if causal:
        allowed = creation.ones(s.shape[-2], s.shape[-1], dtype="bool", device=s.device).tril()
        s = s.masked_fill(allowed.logical_not(), float("-inf"))
    return s


class Attention(Function):
    """softmax(q k^T * scale + bias) v over (*B, L, D), (*B, S, D), (*B, S, Dv) [and bias
    (*B, L, S)], equal batch dims."""

    def forward(
        self, q: LazyBuffer, k: LazyBuffer, v: LazyBuffer, bias: LazyBuffer | None = None, *, scale: float, causal: bool
    ) -> LazyBuffer:
        self.scale, self.causal = scale, causal
        srcs = (q, k, v) if bias is None else (q, k, v, bias)
        packed = LazyBuffer.attention(srcs, AttentionArg("forward", scale, causal, bias is not None))
        dv = v.shape[-1]
        whole = tuple((0, n, 1) for n in packed.shape[:-1])
        out = packed.slice((*whole, (0, dv, 1)))
        lse = packed.slice((*whole, (dv, dv + 1, 1)))
        self.save_for_backward(q, k, v, bias, out, lse)
        return out

    def _probs(self) -> Tensor:
        q, k, _, bias, _, _ = self.saved_tensors
        return _scores(q, k, bias, self.scale, self.causal).softmax(-1)

    def backward(self, g: Tensor):
        q, k, v, bias, out, lse = self.saved_tensors
        if is_grad_enabled():  # create_graph: a VJP that is itself differentiable
            p = self._probs()
            dp = g @ v.transpose(-2, -1)
            ds = p * (dp - (dp * p).sum(-1, keepdim=True))
            gq, gk, gv = (ds @ k) * self.scale, (ds.transpose(-2, -1) @ q) * self.scale, p.transpose(-2, -1) @ g
        else:
            from .tensor import Tensor

            delta = (g * out).sum(-1, keepdim=True)
            srcs = tuple(x.lazydata for x in (q, k, v, lse, delta, g) + (() if bias is None else (bias,)))

            def part(name: str) -> Tensor:
                arg = AttentionArg(name, self.scale, self.causal, bias is not None)
                return Tensor._from_lazy(LazyBuffer.attention(srcs, arg))

            gq, kv = part("backward_q"), part("backward_kv")
            d = q.shape[-1]
            gk, gv = kv[..., :d], kv[..., d:]
        grads = (gq, gk, gv)
        return grads if bias is None else (*grads, None)

    def jvp(self, tq, tk, tv, tb=None):
        q, k, v, _, _, _ = self.saved_tensors
        p = self._probs()
        ts = (tq @ k.transpose(-2, -1) + q @ tk.transpose(-2, -1)) * self.scale
        if tb is not None:
            ts = ts + tb
        tp = p * (ts - (p * ts).sum(-1, keepdim=True))
        return tp @ v + p @ tv


__all__ = ["attention", "supports", "fused_attention_enabled", "Attention"]
