"""Differentiable ops: each forward in primitive LazyBuffer ops, with its VJP (`backward`)
and JVP (`jvp`) beside it, both written in Tensor ops so that they are lazy, fused, and
differentiable again (higher-order gradients, forward-over-reverse).

Shapes, dtypes and devices are checked and broadcast by Tensor before these run, so the
inputs of an elementwise op share one shape and dtype.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .autograd import Function, forward_ad, is_grad_enabled
from .dtypes import DType
from .lazy import LazyBuffer
from .ops import Op

if TYPE_CHECKING:
    from .tensor import Tensor


def _zeros(like) -> Tensor:
    """A constant zero tensor shaped like `like` (a Tensor): no memory, inlined into kernels."""
    from .tensor import Tensor

    return Tensor._from_lazy(LazyBuffer.const(0, like.shape, like.dtype, like.device))


def _mT(x):
    """x with its last two dims swapped (a view)."""
    order = (*range(x.ndim - 2), x.ndim - 1, x.ndim - 2)
    return Permute.apply(x, order=order)


# ----- unary -----


class Alias(Function):
    """The identity: a new tensor with the input's value and history (make_dual, func)."""

    def forward(self, x: LazyBuffer) -> LazyBuffer:
        return x

    def backward(self, g):
        return g

    def jvp(self, t):
        return t


class Neg(Function):
    def forward(self, x: LazyBuffer) -> LazyBuffer:
        return x.e(Op.NEG)

    def backward(self, g):
        return -g

    def jvp(self, t):
        return -t


class Exp(Function):
    def forward(self, x: LazyBuffer) -> LazyBuffer:
        out = x.e(Op.EXP)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        (out,) = self.saved_tensors
        return g * out

    def jvp(self, t):
        (out,) = self.saved_tensors
        return t * out


class Log(Function):
    def forward(self, x: LazyBuffer) -> LazyBuffer:
        self.save_for_backward(x)
        return x.e(Op.LOG)

    def backward(self, g):
        (x,) = self.saved_tensors
        return g / x

    def jvp(self, t):
        (x,) = self.saved_tensors
        return t / x


class Sqrt(Function):
    def forward(self, x: LazyBuffer) -> LazyBuffer:
        out = x.e(Op.SQRT)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        (out,) = self.saved_tensors
        return g / (out * 2.0)

    def jvp(self, t):
        (out,) = self.saved_tensors
        return t / (out * 2.0)


class Reciprocal(Function):
    def forward(self, x: LazyBuffer) -> LazyBuffer:
        out = x.e(Op.RECIP)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        (out,) = self.saved_tensors
        return -(g * (out * out))

    def jvp(self, t):
        (out,) = self.saved_tensors
        return -(t * (out * out))


class _Smooth(Function):
    """A unary op whose VJP and JVP both multiply by its derivative at the saved input."""

    op: Op

    def forward(self, x: LazyBuffer) -> LazyBuffer:
        self.save_for_backward(x)
        return x.e(self.op)

    def derivative(self, x):
        raise NotImplementedError

    def backward(self, g):
        return g * self.derivative(self.saved_tensors[0])

    def jvp(self, t):
        return t * self.derivative(self.saved_tensors[0])


class Sin(_Smooth):
    op = Op.SIN

    def derivative(self, x):
        return x.cos()


class Cos(_Smooth):
    op = Op.COS

    def derivative(self, x):
        return -x.sin()


class Tanh(Function):
    def forward(self, x: LazyBuffer) -> LazyBuffer:
        out = x.e(Op.TANH)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        (out,) = self.saved_tensors
        return g * (1.0 - out * out)

    def jvp(self, t):
        (out,) = self.saved_tensors
        return t * (1.0 - out * out)


class Sigmoid(Function):
    def forward(self, x: LazyBuffer) -> LazyBuffer:
        out = x.e(Op.SIGMOID)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        (out,) = self.saved_tensors
        return g * (out * (1.0 - out))

    def jvp(self, t):
        (out,) = self.saved_tensors
        return t * (out * (1.0 - out))


class Relu(Function):
    def forward(self, x: LazyBuffer) -> LazyBuffer:
        out = x.e(Op.MAX, x.const_like(0))
        self.save_for_backward(out)
        return out

    # the mask comes from the output (out > 0 exactly where x > 0), which is stored
    # anyway, so backward never needs the input recomputed
    def backward(self, g):
        (out,) = self.saved_tensors
        return Where.apply(out > 0, g, _zeros(g))

    def jvp(self, t):
        (out,) = self.saved_tensors
        return Where.apply(out > 0, t, _zeros(t))


class Abs(_Smooth):
    op = Op.ABS

    def derivative(self, x):
        return x.sign()


class Sign(Function):
    def forward(self, x: LazyBuffer) -> LazyBuffer:
        return x.e(Op.SIGN)

    def backward(self, g):
        return _zeros(g)

    def jvp(self, t):
        return _zeros(t)


class Cast(Function):
    """A float-to-float dtype change (integer casts are not differentiable)."""

    def forward(self, x: LazyBuffer, dtype: DType) -> LazyBuffer:
        self.in_dtype, self.dtype = x.dtype, dtype
        return x.cast(dtype)

    def backward(self, g):
        return Cast.apply(g, dtype=self.in_dtype)

    def jvp(self, t):
        return Cast.apply(t, dtype=self.dtype)


class Contiguous(Function):
    def forward(self, x: LazyBuffer) -> LazyBuffer:
        return x.contiguous()

    def backward(self, g):
        return g

    def jvp(self, t):
        return Contiguous.apply(t)


# erfc(z) ~ t exp(-z^2 + c0 + t (c1 + t (... + t c9))), t = 1 / (1 + z / 2)
_ERFC_COEFFS = (
    -1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806,
    0.27886807, -1.13520398, 1.48851587, -0.82215223, 0.17087277,
)  # fmt: skip


def _erf(x: LazyBuffer) -> LazyBuffer:
    """erf(x) from the rational approximation of erfc in Numerical Recipes (erfcc:
    fractional error below 1.2e-7 everywhere)."""
    z = x.e(Op.ABS)
    t = x.const_like(1.0).e(Op.DIV, x.const_like(1.0).e(Op.ADD, z.e(Op.MUL, x.const_like(0.5))))
    poly = x.const_like(_ERFC_COEFFS[-1])
    for c in reversed(_ERFC_COEFFS[:-1]):  # Horner: c0 + t*(c1 + t*(... + t*c9))
        poly = poly.e(Op.MUL, t).e(Op.ADD, x.const_like(c))
    erfc = t.e(Op.MUL, poly.e(Op.SUB, z.e(Op.MUL, z)).e(Op.EXP))
    return x.e(Op.SIGN).e(Op.MUL, x.const_like(1.0).e(Op.SUB, erfc))


class Erf(Function):
    """The error function (see _erf); the gradient is the exact 2/sqrt(pi) * exp(-x^2)."""

    def forward(self, x: LazyBuffer) -> LazyBuffer:
        self.save_for_backward(x)
        return _erf(x)

    def _density(self):
        (x,) = self.saved_tensors
        return (-(x * x)).exp() * 1.1283791670955126

    def backward(self, g):
        return g * self._density()

    def jvp(self, t):
        return t * self._density()


class Gelu(_Smooth):
    """GELU as one op that saves only its input (composed of ops, autograd would keep
    every intermediate for the backward pass: six arrays the size of the input):
    - approximate "none": x Phi(x) = x/2 (1 + erf(x/sqrt 2)), derivative Phi(x) + x phi(x);
    - approximate "tanh": x/2 (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3), derivative
      (1 + tanh u)/2 + x/2 (1 - tanh^2 u) sqrt(2/pi) (1 + 3 * 0.044715 x^2)."""

    K = 0.7978845608028654  # sqrt(2/pi)
    A = 0.044715

    def forward(self, x: LazyBuffer, *, approximate: str) -> LazyBuffer:
        self.approximate = approximate
        self.save_for_backward(x)
        half_x = x.e(Op.MUL, x.const_like(0.5))
        if approximate == "tanh":  # u = x (K + K A x^2)
            ka_x2 = x.e(Op.MUL, x).e(Op.MUL, x.const_like(self.K * self.A))
            phi = x.e(Op.MUL, ka_x2.e(Op.ADD, x.const_like(self.K))).e(Op.TANH)
        else:
            phi = _erf(x.e(Op.MUL, x.const_like(0.7071067811865476)))
        return half_x.e(Op.MUL, x.const_like(1.0).e(Op.ADD, phi))

    def derivative(self, x):
        if self.approximate == "tanh":  # (written with few ops: each is a pass over x on the numpy device)
            x2 = x * x
            t = (x * (self.K * self.A * x2 + self.K)).tanh()
            return 0.5 * t + 0.5 + x * (1.0 - t * t) * (1.5 * self.K * self.A * x2 + 0.5 * self.K)
        cdf = 0.5 * (1.0 + (x * 0.7071067811865476).erf())
        return cdf + x * (-0.5 * x * x).exp() * 0.3989422804014327  # phi(x) = exp(-x^2/2) / sqrt(2 pi)


# ----- binary -----


class Add(Function):
    def forward(self, x: LazyBuffer, y: LazyBuffer) -> LazyBuffer:
        return x.e(Op.ADD, y)

    def backward(self, g):
        return g, g

    def jvp(self, tx, ty):
        return tx + ty


class Sub(Function):
    def forward(self, x: LazyBuffer, y: LazyBuffer) -> LazyBuffer:
        return x.e(Op.SUB, y)

    def backward(self, g):
        return g, (-g if self.needs_input_grad[1] else None)

    def jvp(self, tx, ty):
        return tx - ty


class Mul(Function):
    def forward(self, x: LazyBuffer, y: LazyBuffer) -> LazyBuffer:
        self.save_for_backward(self.needed_for(x, 1), self.needed_for(y, 0))
        return x.e(Op.MUL, y)

    def backward(self, g):
        x, y = self.saved_tensors
        gx = g * y if self.needs_input_grad[0] else None
        gy = g * x if self.needs_input_grad[1] else None
        return gx, gy

    def jvp(self, tx, ty):
        x, y = self.saved_tensors
        return tx * y + x * ty


class Div(Function):
    def forward(self, x: LazyBuffer, y: LazyBuffer) -> LazyBuffer:
        self.save_for_backward(self.needed_for(x, 1), y)
        return x.e(Op.DIV, y)

    def backward(self, g):
        x, y = self.saved_tensors
        gx = g / y if self.needs_input_grad[0] else None
        gy = -(g * x / (y * y)) if self.needs_input_grad[1] else None  # d(x/y)/dy = -x / y^2
        return gx, gy

    def jvp(self, tx, ty):
        x, y = self.saved_tensors
        return tx / y - x * ty / (y * y)


class Pow(Function):
    def forward(self, x: LazyBuffer, y: LazyBuffer) -> LazyBuffer:
        out = x.e(Op.POW, y)
        self.save_for_backward(x, y, out)
        return out

    def _dx(self):
        """d(x^y)/dx = y * x^(y-1), and 0 where y == 0 (not 0 * inf at x = 0), like torch."""
        from .tensor import where

        x, y, _ = self.saved_tensors
        return where(y == 0, 0.0, y * x ** (y - 1.0))

    def _dy(self):
        """d(x^y)/dy = x^y * log(x), taken as 0 where x == 0, like torch."""
        from .tensor import where

        x, _, out = self.saved_tensors
        return where(x == 0, 0.0, out * x.log())

    def backward(self, g):
        gx = g * self._dx() if self.needs_input_grad[0] else None
        gy = g * self._dy() if self.needs_input_grad[1] else None
        return gx, gy

    def jvp(self, tx, ty):
        # a missing tangent contributes nothing, even where its partial is nan (log(x) for x < 0)
        if not self.has_tangent[1]:
            return tx * self._dx()
        return ty * self._dy() if not self.has_tangent[0] else tx * self._dx() + ty * self._dy()


class Maximum(Function):
    """Elementwise max; on ties the gradient is split evenly, as in PyTorch."""

    op = Op.MAX

    def forward(self, x: LazyBuffer, y: LazyBuffer) -> LazyBuffer:
        self.save_for_backward(x, y)
        return x.e(self.op, y)

    def _shares(self):
        """How much of the gradient each input gets: 1 where it wins, 1/2 on a tie."""
        x, y = self.saved_tensors
        tie = (x == y) * 0.5
        x_wins, y_wins = (x > y, y > x) if self.op is Op.MAX else (x < y, y < x)
        return x_wins + tie, y_wins + tie

    def backward(self, g):
        x_share, y_share = self._shares()
        return g * x_share, g * y_share

    def jvp(self, tx, ty):
        x_share, y_share = self._shares()
        return tx * x_share + ty * y_share


class Minimum(Maximum):
    op = Op.MIN


class Where(Function):
    def forward(self, cond: LazyBuffer, x: LazyBuffer, y: LazyBuffer) -> LazyBuffer:
        self.save_for_backward(cond)
        return cond.e(Op.WHERE, x, y)

    def backward(self, g):
        (cond,) = self.saved_tensors
        zero = _zeros(g)
        gx = Where.apply(cond, g, zero) if self.needs_input_grad[1] else None
        gy = Where.apply(cond, zero, g) if self.needs_input_grad[2] else None
        return None, gx, gy

    def jvp(self, _, tx, ty):
        (cond,) = self.saved_tensors
        return Where.apply(cond, tx, ty)


# ----- reductions (the output keeps the reduced dims, as size 1) -----


class Sum(Function):
    def forward(self, x: LazyBuffer, axes: tuple[int, ...]) -> LazyBuffer:
        self.in_shape, self.axes = x.shape, axes
        return x.r(Op.SUM, axes)

    def backward(self, g):
        return Expand.apply(g, shape=self.in_shape)

    def jvp(self, t):
        return Sum.apply(t, axes=self.axes)


class Max(Function):
    """amax/amin over axes; the gradient is split evenly among tied maxima."""

    def forward(self, x: LazyBuffer, axes: tuple[int, ...], op: Op = Op.RMAX) -> LazyBuffer:
        self.axes = axes
        out = x.r(op, axes)
        self.save_for_backward(x, out)
        return out

    def _share(self):
        x, out = self.saved_tensors
        hit = (x == Expand.apply(out.detach(), shape=x.shape)).type(x.dtype)
        return hit / Sum.apply(hit, axes=self.axes)

    def backward(self, g):
        return self._share() * Expand.apply(g, shape=self.saved_tensors[0].shape)

    def jvp(self, t):
        return Sum.apply(t * self._share(), axes=self.axes)


# ----- matmul, linear, cross-entropy, gather -----


class Matmul(Function):
    """a @ b for a (*B, M, K) and b (*B, K, N) with equal batch dims."""

    def forward(self, a: LazyBuffer, b: LazyBuffer) -> LazyBuffer:
        self.save_for_backward(self.needed_for(a, 1), self.needed_for(b, 0))
        return a.matmul(b)

    def backward(self, g):
        a, b = self.saved_tensors
        ga = Matmul.apply(g, _mT(b)) if self.needs_input_grad[0] else None
        gb = Matmul.apply(_mT(a), g) if self.needs_input_grad[1] else None
        return ga, gb

    def jvp(self, ta, tb):
        a, b = self.saved_tensors
        return Matmul.apply(ta, b) + Matmul.apply(a, tb)


class Linear(Function):
    """x @ w.T (+ b) for a 2-D x and a weight of shape (out_features, in_features).

    One op rather than permute, matmul, expand and add: fewer graph nodes per layer, and
    its backward computes the weight's gradient as g.T @ x, in the weight's own layout.
    (Matmul's backward would give (x.T @ g).T, a transposed view that every optimizer
    kernel then reads with a large stride: 3.5x slower on the NumPy backend.)"""

    def forward(self, x: LazyBuffer, w: LazyBuffer, b: LazyBuffer | None = None) -> LazyBuffer:
        self.save_for_backward(self.needed_for(x, 1), self.needed_for(w, 0))
        self.out_features = w.shape[0]
        out = x.matmul(w.permute((1, 0)))
        if b is not None:
            out = out.e(Op.ADD, b.reshape((1, w.shape[0])).expand(out.shape))
        return out

    def backward(self, g):
        x, w = self.saved_tensors
        gx = Matmul.apply(g, w) if self.needs_input_grad[0] else None
        gw = Matmul.apply(_mT(g), x) if self.needs_input_grad[1] else None
        if len(self.needs_input_grad) == 2:
            return gx, gw
        gb = Reshape.apply(Sum.apply(g, axes=(0,)), shape=(self.out_features,)) if self.needs_input_grad[2] else None
        return gx, gw, gb

    def jvp(self, tx, tw, tb=None):
        x, w = self.saved_tensors
        return Linear.apply(tx, w, *([] if tb is None else [tb])) + Linear.apply(x, tw)


class LayerNorm(Function):
    """(x - mean) / sqrt(var + eps) over the trailing dims `dims` (biased variance), times
    a weight and plus a bias when `affine` says so; srcs (x[, weight][, bias]).

    It keeps x and the per-row mean and 1/sqrt(var + eps) for the backward pass, and
    recomputes the normalised x there (composed of ops, autograd kept the centred input,
    its square and the normalised output too, and its VJP took twice the passes). With
    xhat the normalised x and gy the gradient times the weight:
        dx = rstd * (gy - mean(gy) - xhat * mean(gy * xhat)),  dweight = sum(g * xhat),
        dbias = sum(g), summed over the leading dims.
    The map from a change of x to the change of xhat is the same linear map (it is
    symmetric), so the JVP uses it too. A VJP that must be differentiable again
    (create_graph) recomputes the row statistics with ops, so they depend on x."""

    def forward(self, x: LazyBuffer, *params: LazyBuffer, dims: tuple[int, ...], eps: float, affine: tuple[bool, bool]):
        self.dims, self.eps, self.affine = dims, eps, affine
        inv_n = 1.0 / math.prod(x.shape[d] for d in dims)
        total = x.r(Op.SUM, dims)
        mean = total.e(Op.MUL, total.const_like(inv_n))
        centered = x.e(Op.SUB, mean.expand(x.shape))
        squares = centered.e(Op.MUL, centered).r(Op.SUM, dims)
        var = squares.e(Op.MUL, squares.const_like(inv_n))
        rstd = var.e(Op.ADD, var.const_like(eps)).e(Op.SQRT).e(Op.RECIP)
        out = centered.e(Op.MUL, rstd.expand(x.shape))
        weight = params[0] if affine[0] else None
        bias = params[-1] if affine[1] else None
        ones = (1,) * (len(x.shape) - len(dims))  # (the leading dims, for broadcasting)
        if weight is not None:
            out = out.e(Op.MUL, weight.reshape(ones + weight.shape).expand(x.shape))
        if bias is not None:
            out = out.e(Op.ADD, bias.reshape(ones + bias.shape).expand(x.shape))
        self.save_for_backward(x, mean, rstd, weight)
        return out

    def _stats(self):
        """x, its row mean and 1/sqrt(var + eps), and the weight (or None); the statistics
        recomputed with ops when gradients of this VJP are wanted."""
        x, mean, rstd, weight = self.saved_tensors
        if is_grad_enabled():
            mean = x.mean(self.dims, keepdim=True)
            centered = x - mean
            rstd = ((centered * centered).mean(self.dims, keepdim=True) + self.eps).rsqrt()
        return x, mean, rstd, weight

    def _normalised_change(self, t, xhat, rstd):
        """How xhat changes with x changing by t (also the VJP of xhat, the map is symmetric)."""
        return rstd * (t - t.mean(self.dims, keepdim=True) - xhat * (t * xhat).mean(self.dims, keepdim=True))

    def backward(self, g):
        x, mean, rstd, weight = self._stats()
        xhat = (x - mean) * rstd
        lead = tuple(range(x.ndim - len(self.dims)))
        grads = [self._normalised_change(g if weight is None else g * weight, xhat, rstd)]
        if weight is not None:
            grads.append((g * xhat).sum(lead) if lead else g * xhat)
        if self.affine[1]:
            grads.append(g.sum(lead) if lead else g)
        return tuple(grads)

    def jvp(self, tx, *tparams):
        x, mean, rstd, weight = self.saved_tensors
        xhat = (x - mean) * rstd
        out = self._normalised_change(tx, xhat, rstd)
        if weight is not None:
            out = out * weight + xhat * tparams[0]
        if self.affine[1]:
            out = out + tparams[-1]
        return out


GATHER_CLASSES = 64  # classes from which CrossEntropy gathers the target logits (see _nll_total)


class CrossEntropy(Function):
    """Cross-entropy of logits x (N, C) against class indices t (N,), each row weighted by
    w (N,) (its class's weight, 0 for an ignored target: nn.functional works these out);
    reduction "mean" (divided by the sum of the weights), "sum" or "none".

    One op for log-softmax and the pick of the target's log-probability: the forward is
    the log-sum-exp of each row and the pick (see _nll_total), its backward
    (softmax(x) - one_hot(t)) * w * g one fused kernel, where the composite records about
    twenty ops (and as many Tensors) per call."""

    def forward(self, x: LazyBuffer, t: LazyBuffer, w: LazyBuffer, reduction: str) -> LazyBuffer:
        n, c = x.shape
        self.reduction = reduction
        row_max = x.r(Op.RMAX, (1,))
        # log-sum-exp from x - max: exact for logits of any magnitude
        shifted = x.e(Op.SUB, row_max.expand((n, c)))
        lse = shifted.e(Op.EXP).r(Op.SUM, (1,)).e(Op.LOG).e(Op.ADD, row_max)  # (n, 1)
        classes = LazyBuffer.load(np.arange(c), t.dtype, t.device).reshape((1, c)).expand((n, c))
        targets = t.reshape((n, 1)).expand((n, c))
        row_weights = w.reshape((n, 1)).expand((n, c))
        total_weight = w.r(Op.SUM, (0,)).reshape(()) if reduction == "mean" else None
        self.save_for_backward(x, classes, targets, row_weights, total_weight, lse)
        if reduction == "none":
            picked = classes.e(Op.EQ, targets).e(Op.WHERE, x, x.const_like(0.0)).r(Op.SUM, (1,))
            return lse.e(Op.SUB, picked).reshape((n,)).e(Op.MUL, w)
        total = self._nll_total(x, t, w, lse, classes, targets, row_weights)
        return total if reduction == "sum" else total.e(Op.DIV, total_weight)

    @staticmethod
    def _nll_total(x, t, w, lse, classes, targets, row_weights) -> LazyBuffer:
        """The sum of -log_softmax(x) at the targets, weighted: a reduction over every logit,
        a row's target picked by a one-hot match; from GATHER_CLASSES classes, each row's
        target logit is gathered instead (a pass over n values, not n * c, for one more
        kernel). An ignored target (out of range: nn.functional checked the others)
        counts 0 either way."""
        n, c = x.shape
        if c < GATHER_CLASSES:  # (n, c): every logit, counted where it is the row's target
            counted = classes.e(Op.EQ, targets)
            nll = lse.expand((n, c)).e(Op.SUB, x).e(Op.MUL, row_weights)
        else:  # (n, 1): each row's target logit, counted where the target is in range
            valid = t.e(Op.GE, t.const_like(0))
            valid = valid.e(Op.WHERE, t.e(Op.LT, t.const_like(c)), valid)
            index = valid.e(Op.WHERE, t, t.const_like(0)).reshape((n, 1))  # (an ignored target reads class 0)
            counted = valid.reshape((n, 1))
            nll = lse.e(Op.SUB, x.gather(index, 1)).e(Op.MUL, w.reshape((n, 1)))
        return counted.e(Op.WHERE, nll, nll.const_like(0.0)).r(Op.SUM, (0, 1)).reshape(())

    def _softmax_minus_one_hot(self):
        """d loss_row / d x, before the row's weight."""
        x, classes, targets, _, _, lse = self.saved_tensors
        if is_grad_enabled() or forward_ad.has_tangent(x):  # log_softmax recomputed from x: differentiable again
            log_softmax = x.log_softmax(1)
        else:  # first order: reuse forward's log-sum-exp
            log_softmax = x - lse
        return log_softmax.exp() - (classes == targets).type(x.dtype)

    def backward(self, g):
        _, _, _, row_weights, total_weight, _ = self.saved_tensors
        if self.reduction == "none":
            g = g.reshape(-1, 1)
        elif self.reduction == "mean":
            g = g / total_weight
        return self._softmax_minus_one_hot() * (row_weights * g), None, None

    def jvp(self, tx, _, __):
        _, _, _, row_weights, total_weight, _ = self.saved_tensors
        per_row = (self._softmax_minus_one_hot() * tx * row_weights).sum(1)
        if self.reduction == "none":
            return per_row
        return per_row.sum() if self.reduction == "sum" else per_row.sum() / total_weight


class Gather(Function):
    """out[..., i, ...] = x[..., index[..., i, ...], ...] along dim (index: an integer tensor)."""

    def forward(self, x: LazyBuffer, index: LazyBuffer, dim: int) -> LazyBuffer:
        self.in_shape, self.dim = x.shape, dim
        self.save_for_backward(index)
        return x.gather(index, dim)

    def backward(self, g):
        (index,) = self.saved_tensors
        return ScatterAdd.apply(g, index, dim=self.dim, shape=self.in_shape), None

    def jvp(self, t, _):
        (index,) = self.saved_tensors
        return Gather.apply(t, index, dim=self.dim)


class ScatterAdd(Function):
    """zeros(shape) with src[i] added at index[i] along dim (the adjoint of Gather)."""

    def forward(self, src: LazyBuffer, index: LazyBuffer, dim: int, shape: tuple[int, ...]) -> LazyBuffer:
        self.dim, self.shape = dim, shape
        self.save_for_backward(index)
        return src.scatter_add(index, dim, shape)

    def backward(self, g):
        (index,) = self.saved_tensors
        return Gather.apply(g, index, dim=self.dim), None

    def jvp(self, t, _):
        (index,) = self.saved_tensors
        return ScatterAdd.apply(t, index, dim=self.dim, shape=self.shape)


# ----- movement (all linear: each JVP is the op itself on the tangent) -----


class Reshape(Function):
    def forward(self, x: LazyBuffer, shape: tuple[int, ...]) -> LazyBuffer:
        self.in_shape, self.shape = x.shape, shape
        return x.reshape(shape)

    def backward(self, g):
        return Reshape.apply(g, shape=self.in_shape)

    def jvp(self, t):
        return Reshape.apply(t, shape=self.shape)


class Permute(Function):
    def forward(self, x: LazyBuffer, order: tuple[int, ...]) -> LazyBuffer:
        self.order = order
        return x.permute(order)

    def backward(self, g):
        inverse = [0] * len(self.order)
        for i, o in enumerate(self.order):
            inverse[o] = i
        return Permute.apply(g, order=tuple(inverse))

    def jvp(self, t):
        return Permute.apply(t, order=self.order)


class Expand(Function):
    """Broadcast size-1 dims to `shape` (same rank); the VJP sums over them."""

    def forward(self, x: LazyBuffer, shape: tuple[int, ...]) -> LazyBuffer:
        self.in_shape, self.shape = x.shape, shape
        return x.expand(shape)

    def backward(self, g):
        axes = tuple(i for i, (a, b) in enumerate(zip(self.in_shape, g.shape)) if a != b)
        return Sum.apply(g, axes=axes) if axes else g

    def jvp(self, t):
        return Expand.apply(t, shape=self.shape)


class Flip(Function):
    def forward(self, x: LazyBuffer, axes: tuple[int, ...]) -> LazyBuffer:
        self.axes = axes
        return x.flip(axes)

    def backward(self, g):
        return Flip.apply(g, axes=self.axes)

    def jvp(self, t):
        return Flip.apply(t, axes=self.axes)


class Pad(Function):
    def forward(self, x: LazyBuffer, pads: tuple[tuple[int, int], ...], value=0.0) -> LazyBuffer:
        self.pads = pads
        self.bounds = tuple((lo, lo + n, 1) for n, (lo, _) in zip(x.shape, pads))
        return x.pad(pads, value)

    def backward(self, g):
        return Slice.apply(g, bounds=self.bounds)

    def jvp(self, t):
        return Pad.apply(t, pads=self.pads, value=0.0)  # the padding is constant: tangent 0


class Slice(Function):
    """x[start:stop:step] per dim (0 <= start <= stop <= size, step > 0); VJP: Unslice."""

    def forward(self, x: LazyBuffer, bounds: tuple[tuple[int, int, int], ...]) -> LazyBuffer:
        self.in_shape, self.bounds = x.shape, bounds
        return x.slice(bounds)

    def backward(self, g):
        return Unslice.apply(g, bounds=self.bounds, shape=self.in_shape)

    def jvp(self, t):
        return Slice.apply(t, bounds=self.bounds)


class Unslice(Function):
    """Zeros of `shape` with x placed at the positions that Slice(bounds) reads."""

    def forward(self, x: LazyBuffer, bounds: tuple[tuple[int, int, int], ...], shape: tuple[int, ...]) -> LazyBuffer:
        self.bounds, self.shape = bounds, shape
        if 0 in x.shape:
            return LazyBuffer.const(0, shape, x.dtype, x.device)
        # Undo one dim at a time: interleave zeros for the step, then pad back to size.
        for d, ((start, _, step), n) in enumerate(zip(bounds, shape)):
            m = x.shape[d]
            if step > 1:
                s = x.shape
                x = x.reshape((*s[: d + 1], 1, *s[d + 1 :]))
                pads = [(0, 0)] * len(x.shape)
                pads[d + 1] = (0, step - 1)
                x = x.pad(tuple(pads)).reshape((*s[:d], m * step, *s[d + 1 :]))
            length = min(x.shape[d], n - start)
            if length < x.shape[d]:
                x = x.slice(tuple((0, length if i == d else s, 1) for i, s in enumerate(x.shape)))
            if start or n - start - length:
                pads = [(0, 0)] * len(x.shape)
                pads[d] = (start, n - start - length)
                x = x.pad(tuple(pads))
        return x

    def backward(self, g):
        return Slice.apply(g, bounds=self.bounds)

    def jvp(self, t):
        return Unslice.apply(t, bounds=self.bounds, shape=self.shape)


# ----- sliding windows (conv and pooling) -----


class Windows(Function):
    """Sliding windows over `dims` as one zero-copy strided view.

    The output has x's shape with each window dim replaced by its number of windows,
    then one trailing axis per window dim holding the window's taps: for x of shape
    (N, C, H, W) and dims (2, 3) that is (N, C, OH, OW, KH, KW), where
    out[n, c, i, j, p, q] = x[n, c, i*sH + p*dH, j*sW + q*dW]. Windows overlap when the
    stride is smaller than the dilated kernel; the view reads the same element twice.
    The VJP is its adjoint, WindowSum (col2im)."""

    def forward(
        self,
        x: LazyBuffer,
        dims: tuple[int, ...],
        kernel: tuple[int, ...],
        stride: tuple[int, ...],
        dilation: tuple[int, ...],
    ) -> LazyBuffer:
        self.in_shape, self.geometry = x.shape, dict(dims=dims, kernel=kernel, stride=stride, dilation=dilation)
        return x._view(x.view.windows(dims, kernel, stride, dilation))

    def backward(self, g):
        return WindowSum.apply(g, in_shape=self.in_shape, **self.geometry)

    def jvp(self, t):
        return Windows.apply(t, **self.geometry)


class WindowSum(Function):
    """The adjoint of Windows (col2im): each tap's value added back to the element it read.

    It runs as one pad and one sum: the windows are laid out as (..., K, O, ...) per window
    dim, zero-interleaved by the stride and padded to a row length M = W' + d (one PAD),
    then the (K, M) block is reinterpreted as (K, W'): row k of that view starts k*d
    elements further right, so tap k lands on input position o*s + k*d. Summing over the
    K axes (one reduction) gives the result, of shape `in_shape`."""

    def forward(self, g: LazyBuffer, in_shape, dims, kernel, stride, dilation) -> LazyBuffer:
        self.geometry = dict(dims=dims, kernel=kernel, stride=stride, dilation=dilation)
        self.in_shape = in_shape
        n, out_shape = len(in_shape), g.shape
        which = {d: i for i, d in enumerate(dims)}
        # (..., O_i, ..., K_0, K_1, ...) -> (..., K_i, O_i, 1, ...): each tap axis before its window axis
        order: list[int] = []
        for a in range(n):
            order += [n + which[a], a] if a in which else [a]
        g = g.permute(tuple(order))
        shape: list[int] = []
        pads: list[tuple[int, int]] = []
        rows: dict[int, tuple[int, int]] = {}  # window dim -> (M, W')
        for a in range(n):
            if a not in which:
                shape.append(in_shape[a])
                pads.append((0, 0))
                continue
            i = which[a]
            k, s, dl, length = kernel[i], stride[i], dilation[i], in_shape[a]
            o = out_shape[a]
            m = -(-(length + dl) // s) * s  # the smallest multiple of s >= length + d (and >= o*s)
            rows[a] = (m, m - dl)
            shape += [k, o, 1]
            pads += [(0, 0), (0, m // s - o), (0, s - 1)]
        g = g.reshape(tuple(shape)).pad(tuple(pads))  # zero-interleave by the stride, pad rows to M
        merged: list[int] = []
        for a in range(n):
            merged += [kernel[which[a]], rows[a][0]] if a in which else [in_shape[a]]
        g = g.reshape(tuple(merged))
        # shift tap row k right by k*d: view each (K, M) block as (K, W') with W' = M - d
        axis = 0
        for a in range(n):
            if a not in which:
                axis += 1
                continue
            k, (m, w) = kernel[which[a]], rows[a]
            shp = g.shape
            g = g.reshape((*shp[:axis], k * m, *shp[axis + 2 :]))
            g = g.slice(tuple((0, k * w, 1) if j == axis else (0, size, 1) for j, size in enumerate(g.shape)))
            g = g.reshape((*shp[:axis], k, w, *shp[axis + 2 :]))
            axis += 2
        tap_axes = []
        axis = 0
        for a in range(n):
            if a in which:
                tap_axes.append(axis)
            axis += 2 if a in which else 1
        g = g.r(Op.SUM, tuple(tap_axes))
        g = g.reshape(tuple(s for j, s in enumerate(g.shape) if j not in tap_axes))
        return g.slice(tuple((0, length, 1) for length in in_shape))

    def backward(self, g):
        return Windows.apply(g, **self.geometry)

    def jvp(self, t):
        return WindowSum.apply(t, in_shape=self.in_shape, **self.geometry)


# ----- tensor ops of issue 12 (rounding, inverse trig, log1p/expm1, atan2, clone) -----


class Clone(Function):
    """A copy of x as a new value (torch.clone): the same numbers, a node of its own."""

    def forward(self, x: LazyBuffer) -> LazyBuffer:
        return x.e(Op.COPY)

    def backward(self, g):
        return g

    def jvp(self, t):
        return Clone.apply(t)


class Rounding(Function):
    """floor, ceil, round (half to even) or trunc (`op`): piecewise constant, so the
    gradient and tangent are zero, as in PyTorch."""

    def forward(self, x: LazyBuffer, op: Op) -> LazyBuffer:
        return x.e(op)

    def backward(self, g):
        return _zeros(g)

    def jvp(self, t):
        return _zeros(t)


class Asin(_Smooth):
    op = Op.ASIN

    def derivative(self, x):
        return (1.0 - x * x).rsqrt()


class Acos(_Smooth):
    op = Op.ACOS

    def derivative(self, x):
        return -(1.0 - x * x).rsqrt()


class Atan(_Smooth):
    op = Op.ATAN

    def derivative(self, x):
        return (1.0 + x * x).reciprocal()


class Log1p(_Smooth):
    op = Op.LOG1P

    def derivative(self, x):
        return (1.0 + x).reciprocal()


class Expm1(Function):
    def forward(self, x: LazyBuffer) -> LazyBuffer:
        out = x.e(Op.EXPM1)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        (out,) = self.saved_tensors
        return g * (out + 1.0)

    def jvp(self, t):
        (out,) = self.saved_tensors
        return t * (out + 1.0)


class Atan2(Function):
    """atan2(y, x), the angle of the point (x, y): d/dy = x / r^2, d/dx = -y / r^2."""

    def forward(self, y: LazyBuffer, x: LazyBuffer) -> LazyBuffer:
        self.save_for_backward(y, x)
        return y.e(Op.ATAN2, x)

    def _partials(self):
        y, x = self.saved_tensors
        r2 = x * x + y * y
        return x / r2, -y / r2

    def backward(self, g):
        dy, dx = self._partials()
        return (g * dy if self.needs_input_grad[0] else None), (g * dx if self.needs_input_grad[1] else None)

    def jvp(self, ty, tx):
        dy, dx = self._partials()
        return ty * dy + tx * dx
