"""Differentiable ops: each forward in primitive LazyBuffer ops, its backward beside it.

Shapes, dtypes and devices are checked and broadcast by Tensor before these run.
"""

from __future__ import annotations

import numpy as np

from .autograd import Function
from .dtypes import DType
from .lazy import LazyBuffer
from .ops import Op

# ----- unary -----


class Neg(Function):
    def forward(self, x: LazyBuffer) -> LazyBuffer:
        return x.e(Op.NEG)

    def backward(self, g: LazyBuffer) -> LazyBuffer:
        return g.e(Op.NEG)


class Exp(Function):
    def forward(self, x: LazyBuffer) -> LazyBuffer:
        self.out = x.e(Op.EXP)
        return self.out

    def backward(self, g: LazyBuffer) -> LazyBuffer:
        return g.e(Op.MUL, self.out)


class Log(Function):
    def forward(self, x: LazyBuffer) -> LazyBuffer:
        self.x = x
        return x.e(Op.LOG)

    def backward(self, g: LazyBuffer) -> LazyBuffer:
        return g.e(Op.DIV, self.x)


class Sqrt(Function):
    def forward(self, x: LazyBuffer) -> LazyBuffer:
        self.out = x.e(Op.SQRT)
        return self.out

    def backward(self, g: LazyBuffer) -> LazyBuffer:
        return g.e(Op.DIV, self.out.e(Op.MUL, self.out.const_like(2.0)))


class Reciprocal(Function):
    def forward(self, x: LazyBuffer) -> LazyBuffer:
        self.out = x.e(Op.RECIP)
        return self.out

    def backward(self, g: LazyBuffer) -> LazyBuffer:
        return g.e(Op.MUL, self.out.e(Op.MUL, self.out)).e(Op.NEG)


class Sin(Function):
    def forward(self, x: LazyBuffer) -> LazyBuffer:
        self.x = x
        return x.e(Op.SIN)

    def backward(self, g: LazyBuffer) -> LazyBuffer:
        return g.e(Op.MUL, self.x.e(Op.COS))


class Cos(Function):
    def forward(self, x: LazyBuffer) -> LazyBuffer:
        self.x = x
        return x.e(Op.COS)

    def backward(self, g: LazyBuffer) -> LazyBuffer:
        return g.e(Op.MUL, self.x.e(Op.SIN)).e(Op.NEG)


class Tanh(Function):
    def forward(self, x: LazyBuffer) -> LazyBuffer:
        self.out = x.e(Op.TANH)
        return self.out

    def backward(self, g: LazyBuffer) -> LazyBuffer:
        one = self.out.const_like(1.0)
        return g.e(Op.MUL, one.e(Op.SUB, self.out.e(Op.MUL, self.out)))


class Sigmoid(Function):
    def forward(self, x: LazyBuffer) -> LazyBuffer:
        self.out = x.e(Op.SIGMOID)
        return self.out

    def backward(self, g: LazyBuffer) -> LazyBuffer:
        one = self.out.const_like(1.0)
        return g.e(Op.MUL, self.out.e(Op.MUL, one.e(Op.SUB, self.out)))


class Relu(Function):
    def forward(self, x: LazyBuffer) -> LazyBuffer:
        self.out = x.e(Op.MAX, x.const_like(0))
        return self.out

    def backward(self, g: LazyBuffer) -> LazyBuffer:
        # the mask comes from the output (out > 0 exactly where x > 0), which is stored
        # anyway, so backward never needs the input recomputed
        mask = self.out.e(Op.GT, self.out.const_like(0)).cast(g.dtype)
        return g.e(Op.MUL, mask)


class Abs(Function):
    def forward(self, x: LazyBuffer) -> LazyBuffer:
        self.x = x
        return x.e(Op.ABS)

    def backward(self, g: LazyBuffer) -> LazyBuffer:
        return g.e(Op.MUL, self.x.e(Op.SIGN))


class Sign(Function):
    def forward(self, x: LazyBuffer) -> LazyBuffer:
        return x.e(Op.SIGN)

    def backward(self, g: LazyBuffer) -> LazyBuffer:
        return g.const_like(0)


class Cast(Function):
    def forward(self, x: LazyBuffer, dtype: DType) -> LazyBuffer:
        self.in_dtype = x.dtype
        return x.cast(dtype)

    def backward(self, g: LazyBuffer) -> LazyBuffer:
        return g.cast(self.in_dtype)


class Contiguous(Function):
    def forward(self, x: LazyBuffer) -> LazyBuffer:
        return x.contiguous()

    def backward(self, g: LazyBuffer) -> LazyBuffer:
        return g


# ----- binary -----


class Add(Function):
    def forward(self, x: LazyBuffer, y: LazyBuffer) -> LazyBuffer:
        return x.e(Op.ADD, y)

    def backward(self, g: LazyBuffer):
        return g, g


class Sub(Function):
    def forward(self, x: LazyBuffer, y: LazyBuffer) -> LazyBuffer:
        return x.e(Op.SUB, y)

    def backward(self, g: LazyBuffer):
        return g, (g.e(Op.NEG) if self.needs_input_grad[1] else None)


class Mul(Function):
    def forward(self, x: LazyBuffer, y: LazyBuffer) -> LazyBuffer:
        self.x, self.y = x, y
        return x.e(Op.MUL, y)

    def backward(self, g: LazyBuffer):
        gx = g.e(Op.MUL, self.y) if self.needs_input_grad[0] else None
        gy = g.e(Op.MUL, self.x) if self.needs_input_grad[1] else None
        return gx, gy


class Div(Function):
    def forward(self, x: LazyBuffer, y: LazyBuffer) -> LazyBuffer:
        self.x, self.y = x, y
        return x.e(Op.DIV, y)

    def backward(self, g: LazyBuffer):
        gx = g.e(Op.DIV, self.y) if self.needs_input_grad[0] else None
        gy = None
        if self.needs_input_grad[1]:  # d(x/y)/dy = -x / y^2
            gy = g.e(Op.MUL, self.x).e(Op.DIV, self.y.e(Op.MUL, self.y)).e(Op.NEG)
        return gx, gy


class Pow(Function):
    def forward(self, x: LazyBuffer, y: LazyBuffer) -> LazyBuffer:
        self.x, self.y = x, y
        self.out = x.e(Op.POW, y)
        return self.out

    def backward(self, g: LazyBuffer):
        x, y = self.x, self.y
        gx = gy = None
        if self.needs_input_grad[0]:  # y * x^(y-1), and 0 where y == 0 (not 0 * inf at x=0), like torch
            dx = y.e(Op.MUL, x.e(Op.POW, y.e(Op.SUB, y.const_like(1.0))))
            gx = g.e(Op.MUL, y.e(Op.EQ, y.const_like(0.0)).e(Op.WHERE, y.const_like(0.0), dx))
        if self.needs_input_grad[1]:  # x^y * log(x), taken as 0 where x == 0 like torch
            log_x = x.e(Op.LOG)
            safe = x.e(Op.EQ, x.const_like(0.0)).e(Op.WHERE, x.const_like(0.0), self.out.e(Op.MUL, log_x))
            gy = g.e(Op.MUL, safe)
        return gx, gy


class Maximum(Function):
    """Elementwise max; on ties the gradient is split evenly, as in PyTorch."""

    op = Op.MAX
    win = Op.GT

    def forward(self, x: LazyBuffer, y: LazyBuffer) -> LazyBuffer:
        self.x, self.y = x, y
        return x.e(self.op, y)

    def backward(self, g: LazyBuffer):
        x, y = self.x, self.y
        half = x.const_like(0.5)
        tie = x.e(Op.EQ, y).cast(x.dtype).e(Op.MUL, half)
        x_share = x.e(self.win, y).cast(x.dtype).e(Op.ADD, tie)
        y_share = y.e(self.win, x).cast(x.dtype).e(Op.ADD, tie)
        return g.e(Op.MUL, x_share), g.e(Op.MUL, y_share)


class Minimum(Maximum):
    op = Op.MIN
    win = Op.LT


class Where(Function):
    def forward(self, cond: LazyBuffer, x: LazyBuffer, y: LazyBuffer) -> LazyBuffer:
        self.cond = cond
        return cond.e(Op.WHERE, x, y)

    def backward(self, g: LazyBuffer):
        zero = g.const_like(0)
        gx = self.cond.e(Op.WHERE, g, zero) if self.needs_input_grad[1] else None
        gy = self.cond.e(Op.WHERE, zero, g) if self.needs_input_grad[2] else None
        return None, gx, gy


# ----- reductions -----


class Sum(Function):
    def forward(self, x: LazyBuffer, axes: tuple[int, ...]) -> LazyBuffer:
        self.in_shape = x.shape
        return x.r(Op.SUM, axes)

    def backward(self, g: LazyBuffer) -> LazyBuffer:
        return g.expand(self.in_shape)


class Max(Function):
    """amax/amin over axes; the gradient is split evenly among tied maxima."""

    def forward(self, x: LazyBuffer, axes: tuple[int, ...], op: Op = Op.RMAX) -> LazyBuffer:
        self.x, self.axes = x, axes
        self.out = x.r(op, axes)
        return self.out

    def backward(self, g: LazyBuffer) -> LazyBuffer:
        mask = self.x.e(Op.EQ, self.out.expand(self.x.shape)).cast(self.x.dtype)
        count = mask.r(Op.SUM, self.axes).expand(self.x.shape)
        return mask.e(Op.DIV, count).e(Op.MUL, g.expand(self.x.shape))


# ----- matmul, gather -----


def transpose_last(x: LazyBuffer) -> LazyBuffer:
    order = (*range(len(x.shape) - 2), len(x.shape) - 1, len(x.shape) - 2)
    return x.permute(order)


class Matmul(Function):
    def forward(self, a: LazyBuffer, b: LazyBuffer) -> LazyBuffer:
        self.a, self.b = a, b
        return a.matmul(b)

    def backward(self, g: LazyBuffer):
        ga = g.matmul(transpose_last(self.b)) if self.needs_input_grad[0] else None
        gb = transpose_last(self.a).matmul(g) if self.needs_input_grad[1] else None
        return ga, gb


class Linear(Function):
    """x @ w.T (+ b) for a 2-D x and a weight of shape (out_features, in_features).

    One op rather than permute, matmul, expand and add: fewer graph nodes per layer, and
    its backward computes the weight's gradient as g.T @ x, in the weight's own layout.
    (Matmul's backward would give (x.T @ g).T, a transposed view that every optimizer
    kernel then reads with a large stride: 3.5x slower on the NumPy backend.)"""

    def forward(self, x: LazyBuffer, w: LazyBuffer, b: LazyBuffer | None = None) -> LazyBuffer:
        self.x, self.w, self.has_bias = x, w, b is not None
        out = x.matmul(transpose_last(w))
        if b is not None:
            out = out.e(Op.ADD, b.reshape((1, w.shape[0])).expand(out.shape))
        return out

    def backward(self, g: LazyBuffer):
        gx = g.matmul(self.w) if self.needs_input_grad[0] else None
        gw = transpose_last(g).matmul(self.x) if self.needs_input_grad[1] else None
        if not self.has_bias:
            return gx, gw
        gb = g.r(Op.SUM, (0,)).reshape((self.w.shape[0],)) if self.needs_input_grad[2] else None
        return gx, gw, gb


class CrossEntropy(Function):
    """Cross-entropy of logits x (N, C) against class indices t (N,), skipping targets
    equal to `ignore_index`; reduction "mean", "sum" or "none".

    One op for log-softmax and the pick of the target's log-probability: its backward
    is (softmax(x) - one_hot(t)) * scale, one fused kernel, where the composite records
    about twenty ops (and as many Tensors) per call."""

    def forward(self, x: LazyBuffer, t: LazyBuffer, ignore_index: int, reduction: str) -> LazyBuffer:
        n, c = x.shape
        self.t, self.reduction = t, reduction
        self.x, self.row_max = x, x.r(Op.RMAX, (1,))
        # log-sum-exp and the pick both use x - max: exact for logits of any magnitude
        shifted = x.e(Op.SUB, self.row_max.expand((n, c)))
        self.log_sum = shifted.e(Op.EXP).r(Op.SUM, (1,)).e(Op.LOG)
        self.classes = LazyBuffer.load(np.arange(c), t.dtype, t.device)
        self.valid = t.e(Op.NE, LazyBuffer.const(ignore_index, (n,), t.dtype, t.device))
        if reduction == "none":
            picked = self._one_hot().e(Op.WHERE, shifted, shifted.const_like(0.0)).r(Op.SUM, (1,))
            nll = self.log_sum.e(Op.SUB, picked).reshape((n,))
            return self.valid.e(Op.WHERE, nll, nll.const_like(0.0))
        # -log_softmax at the counted targets, summed over both dims: one reduction
        counted = self.valid.reshape((n, 1)).expand((n, c))
        counted = counted.e(Op.WHERE, self._one_hot(), counted.const_like(False))
        nll = self.log_sum.expand((n, c)).e(Op.SUB, shifted)
        total = counted.e(Op.WHERE, nll, nll.const_like(0.0)).r(Op.SUM, (0, 1)).reshape(())
        if reduction == "sum":
            return total
        self.count = self.valid.cast(x.dtype).r(Op.SUM, (0,)).reshape(())
        return total.e(Op.DIV, self.count)

    def _one_hot(self) -> LazyBuffer:
        n, c = self.t.shape[0], self.classes.shape[0]
        return self.classes.reshape((1, c)).expand((n, c)).e(Op.EQ, self.t.reshape((n, 1)).expand((n, c)))

    def backward(self, g: LazyBuffer):
        n, c = self.x.shape
        log_softmax = self.x.e(Op.SUB, self.row_max.expand((n, c))).e(Op.SUB, self.log_sum.expand((n, c)))
        diff = log_softmax.e(Op.EXP).e(Op.SUB, self._one_hot().cast(self.x.dtype))
        if self.reduction == "mean":
            g = g.e(Op.DIV, self.count)
        scale = g if self.reduction == "none" else g.reshape((1,)).expand((n,))
        scale = self.valid.e(Op.WHERE, scale, scale.const_like(0.0))
        return diff.e(Op.MUL, scale.reshape((n, 1)).expand((n, c))), None


class Gather(Function):
    def forward(self, x: LazyBuffer, index: LazyBuffer, dim: int) -> LazyBuffer:
        self.index, self.dim, self.in_shape = index, dim, x.shape
        return x.gather(index, dim)

    def backward(self, g: LazyBuffer):
        return g.scatter_add(self.index, self.dim, self.in_shape), None


# ----- movement -----


class Reshape(Function):
    def forward(self, x: LazyBuffer, shape: tuple[int, ...]) -> LazyBuffer:
        self.in_shape = x.shape
        return x.reshape(shape)

    def backward(self, g: LazyBuffer) -> LazyBuffer:
        return g.reshape(self.in_shape)


class Permute(Function):
    def forward(self, x: LazyBuffer, order: tuple[int, ...]) -> LazyBuffer:
        self.order = order
        return x.permute(order)

    def backward(self, g: LazyBuffer) -> LazyBuffer:
        inverse = [0] * len(self.order)
        for i, o in enumerate(self.order):
            inverse[o] = i
        return g.permute(tuple(inverse))


class Expand(Function):
    def forward(self, x: LazyBuffer, shape: tuple[int, ...]) -> LazyBuffer:
        self.in_shape = x.shape
        return x.expand(shape)

    def backward(self, g: LazyBuffer) -> LazyBuffer:
        axes = tuple(i for i, (a, b) in enumerate(zip(self.in_shape, g.shape)) if a != b)
        return g.r(Op.SUM, axes)


class Flip(Function):
    def forward(self, x: LazyBuffer, axes: tuple[int, ...]) -> LazyBuffer:
        self.axes = axes
        return x.flip(axes)

    def backward(self, g: LazyBuffer) -> LazyBuffer:
        return g.flip(self.axes)


class Pad(Function):
    def forward(self, x: LazyBuffer, pads: tuple[tuple[int, int], ...], value=0.0) -> LazyBuffer:
        self.bounds = tuple((lo, lo + n, 1) for n, (lo, _) in zip(x.shape, pads))
        return x.pad(pads, value)

    def backward(self, g: LazyBuffer) -> LazyBuffer:
        return g.slice(self.bounds)


class Slice(Function):
    """x[start:stop:step] per dim (0 <= start <= stop <= size, step > 0)."""

    def forward(self, x: LazyBuffer, bounds: tuple[tuple[int, int, int], ...]) -> LazyBuffer:
        self.in_shape, self.bounds = x.shape, bounds
        return x.slice(bounds)

    def backward(self, g: LazyBuffer) -> LazyBuffer:
        if 0 in g.shape:
            return LazyBuffer.const(0, self.in_shape, g.dtype, g.device)
        # Undo one dim at a time: interleave zeros for the step, then pad back to size.
        for d, ((start, _, step), n) in enumerate(zip(self.bounds, self.in_shape)):
            m = g.shape[d]
            if step > 1:
                shape = g.shape
                g = g.reshape((*shape[: d + 1], 1, *shape[d + 1 :]))
                pads = [(0, 0)] * len(g.shape)
                pads[d + 1] = (0, step - 1)
                g = g.pad(tuple(pads)).reshape((*shape[:d], m * step, *shape[d + 1 :]))
            length = min(g.shape[d], n - start)
            if length < g.shape[d]:
                g = g.slice(tuple((0, length if i == d else s, 1) for i, s in enumerate(g.shape)))
            if start or n - start - length:
                pads = [(0, 0)] * len(g.shape)
                pads[d] = (start, n - start - length)
                g = g.pad(tuple(pads))
        return g



# ----- sliding windows (conv and pooling), erf -----


class Windows(Function):
    """Sliding windows over `dims` as one zero-copy strided view.

    The output has x's shape with each window dim replaced by its number of windows,
    then one trailing axis per window dim holding the window's taps: for x of shape
    (N, C, H, W) and dims (2, 3) that is (N, C, OH, OW, KH, KW), where
    out[n, c, i, j, p, q] = x[n, c, i*sH + p*dH, j*sW + q*dW]. Windows overlap when the
    stride is smaller than the dilated kernel; the view reads the same element twice.

    The backward (col2im) adds each tap's gradient back to the element it read. It runs
    as one pad and one sum: the gradient is laid out as (..., K, O, ...) per window dim,
    zero-interleaved by the stride and padded to a row length M = W' + d (one PAD), then
    the (K, M) block is reinterpreted as (K, W'): row k of that view starts k*d elements
    further right, so tap k lands on input position o*s + k*d. Summing over the K axes
    (one reduction) gives the input's gradient.
    """

    def forward(
        self,
        x: LazyBuffer,
        dims: tuple[int, ...],
        kernel: tuple[int, ...],
        stride: tuple[int, ...],
        dilation: tuple[int, ...],
    ) -> LazyBuffer:
        from .view import View

        self.in_shape, self.dims, self.kernel, self.stride, self.dilation = x.shape, dims, kernel, stride, dilation
        v = x.view
        shape, strides = list(x.shape), list(v.strides)
        for d, k, s, dl in zip(dims, kernel, stride, dilation):
            shape[d] = (x.shape[d] - dl * (k - 1) - 1) // s + 1
            strides[d] = v.strides[d] * s
        shape += list(kernel)
        strides += [v.strides[d] * dl for d, dl in zip(dims, dilation)]
        self.out_shape = tuple(shape)
        return x._view(View(tuple(shape), tuple(strides), v.offset))

    def backward(self, g: LazyBuffer) -> LazyBuffer:
        n, dims = len(self.in_shape), self.dims
        which = {d: i for i, d in enumerate(dims)}
        # (..., O_i, ..., K_0, K_1, ...) -> (..., K_i, O_i, 1, ...): each tap axis before its window axis
        order: list[int] = []
        for a in range(n):
            if a in which:
                order += [n + which[a], a]
            else:
                order.append(a)
        g = g.permute(tuple(order))
        shape: list[int] = []
        pads: list[tuple[int, int]] = []
        rows: dict[int, tuple[int, int]] = {}  # window dim -> (M, W')
        for a in range(n):
            if a not in which:
                shape.append(self.in_shape[a])
                pads.append((0, 0))
                continue
            i = which[a]
            k, s, dl, length = self.kernel[i], self.stride[i], self.dilation[i], self.in_shape[a]
            o = self.out_shape[a]
            m = -(-(length + dl) // s) * s  # the smallest multiple of s >= length + d (and >= o*s)
            rows[a] = (m, m - dl)
            shape += [k, o, 1]
            pads += [(0, 0), (0, m // s - o), (0, s - 1)]
        g = g.reshape(tuple(shape)).pad(tuple(pads))  # zero-interleave by the stride, pad rows to M
        merged: list[int] = []
        for a in range(n):
            if a in which:
                merged += [self.kernel[which[a]], rows[a][0]]
            else:
                merged.append(self.in_shape[a])
        g = g.reshape(tuple(merged))
        # shift tap row k right by k*d: view each (K, M) block as (K, W') with W' = M - d
        axis = 0
        for a in range(n):
            if a not in which:
                axis += 1
                continue
            k, (m, w) = self.kernel[which[a]], rows[a]
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
                axis += 2
            else:
                axis += 1
        g = g.r(Op.SUM, tuple(tap_axes))
        g = g.reshape(tuple(s for j, s in enumerate(g.shape) if j not in tap_axes))
        return g.slice(tuple((0, length, 1) for length in self.in_shape))


class Erf(Function):
    """The error function, from the rational approximation of erfc in Numerical Recipes
    (erfcc: fractional error below 1.2e-7 everywhere); the gradient is the exact
    2/sqrt(pi) * exp(-x^2)."""

    COEFFS = (
        -1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806,
        0.27886807, -1.13520398, 1.48851587, -0.82215223, 0.17087277,
    )  # fmt: skip

    def forward(self, x: LazyBuffer) -> LazyBuffer:
        self.x = x
        z = x.e(Op.ABS)
        t = x.const_like(1.0).e(Op.DIV, x.const_like(1.0).e(Op.ADD, z.e(Op.MUL, x.const_like(0.5))))
        poly = x.const_like(self.COEFFS[-1])
        for c in reversed(self.COEFFS[:-1]):  # Horner: c0 + t*(c1 + t*(... + t*c9))
            poly = poly.e(Op.MUL, t).e(Op.ADD, x.const_like(c))
        erfc = t.e(Op.MUL, poly.e(Op.SUB, z.e(Op.MUL, z)).e(Op.EXP))
        return x.e(Op.SIGN).e(Op.MUL, x.const_like(1.0).e(Op.SUB, erfc))

    def backward(self, g: LazyBuffer) -> LazyBuffer:
        x = self.x
        density = x.e(Op.MUL, x).e(Op.NEG).e(Op.EXP).e(Op.MUL, x.const_like(1.1283791670955126))
        return g.e(Op.MUL, density)
