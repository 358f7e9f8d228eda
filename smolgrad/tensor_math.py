"""Elementwise math of Tensor beyond the basics in tensor.py: rounding, inverse and
hyperbolic trig, log1p/expm1 and friends, remainders and floor division, float tests
(isnan, isclose, ...), lerp, hypot, logaddexp and clone. A mixin of Tensor."""

from __future__ import annotations

import math

import numpy as np

from .ops import Op

LN2 = math.log(2.0)
LN10 = math.log(10.0)


def _tensor():
    from .tensor import Tensor, where

    return Tensor, where


def _int_div(a, b):
    """Integer division rounding toward zero (the DIV primitive on integer dtypes)."""
    Tensor, _ = _tensor()
    return Tensor._from_lazy(a.lazydata.e(Op.DIV, b.lazydata))


def _check_int_divisor(b, op: str) -> None:
    """Integer division by zero raises (as torch does on the CPU) where the divisor is known."""
    base = b.lazydata.base
    if b.dtype.is_floating_point or b.numel() == 0:
        return
    if base.op is Op.CONST:  # a Python number: no device read
        zero = base.arg == 0
    else:  # an uploaded tensor: read back; a computed one is not forced (x // 0 is then 0, or -1
        # for x < 0, and x % 0 is x, on every device)
        zero = b.lazydata.value_known() and bool((b.detach().numpy() == 0).any())
    if zero:
        raise ZeroDivisionError(f"{op}: integer division by zero; use a float tensor to get inf/nan instead")


class MathOps:
    """Elementwise math methods of Tensor."""

    __slots__ = ()

    # ----- copies -----
    def clone(self, memory_format=None):
        """A copy with the same value, dtype and device; gradients flow back to self."""
        from . import function as F

        return F.Clone.apply(self)

    # ----- rounding (zero gradient; integer tensors are returned unchanged, as in torch) -----
    def _rounding(self, op: Op):
        from . import function as F

        return F.Rounding.apply(self, op=op) if self.dtype.is_floating_point else self.clone()

    def floor(self):
        """The largest integer <= x, elementwise."""
        return self._rounding(Op.FLOOR)

    def ceil(self):
        """The smallest integer >= x, elementwise."""
        return self._rounding(Op.CEIL)

    def trunc(self):
        """x rounded toward zero, elementwise."""
        return self._rounding(Op.TRUNC)

    fix = trunc

    def round(self, decimals: int = 0):
        """x rounded to `decimals` decimal places, halves to even (torch.round)."""
        if decimals == 0 or not self.dtype.is_floating_point:
            return self._rounding(Op.ROUND)
        scale = 10.0**decimals
        return (self * scale)._rounding(Op.ROUND) / scale

    def frac(self):
        """The fractional part x - trunc(x), with the sign of x."""
        if not self.dtype.is_floating_point:
            raise RuntimeError(f"frac: expected a floating point tensor, got {self.dtype.name}")
        return self - self.trunc()

    # ----- exponentials and logarithms -----
    def log1p(self):
        """log(1 + x), accurate for small x."""
        from . import function as F

        return self._float_unary(F.Log1p)

    def expm1(self):
        """exp(x) - 1, accurate for small x."""
        from . import function as F

        return self._float_unary(F.Expm1)

    def log2(self):
        """The base-2 logarithm, elementwise."""
        return self.log() * (1.0 / LN2)

    def log10(self):
        """The base-10 logarithm, elementwise."""
        return self.log() * (1.0 / LN10)

    def exp2(self):
        """2 ** x, elementwise."""
        return (self._as_float() * LN2).exp()

    def logaddexp(self, other):
        """log(exp(x) + exp(y)), computed without overflow."""
        x, y = self._pair(other, "logaddexp", float_result=True)
        _, where = _tensor()
        m = x.maximum(y)
        out = m + (-(x - y).abs()).exp().log1p()
        return where((x == y) & (m.abs() == math.inf), m, out)  # inf-inf would be nan

    # ----- trigonometry -----
    def asin(self):
        """The inverse sine, elementwise (nan outside [-1, 1])."""
        from . import function as F

        return self._float_unary(F.Asin)

    def acos(self):
        """The inverse cosine, elementwise (nan outside [-1, 1])."""
        from . import function as F

        return self._float_unary(F.Acos)

    def atan(self):
        """The inverse tangent, elementwise."""
        from . import function as F

        return self._float_unary(F.Atan)

    def atan2(self, other):
        """The angle of the point (other, self) in (-pi, pi], elementwise (torch.atan2)."""
        from . import function as F

        return F.Atan2.apply(*self._pair(other, "atan2", float_result=True))

    arcsin, arccos, arctan, arctan2 = asin, acos, atan, atan2

    def sinh(self):
        """The hyperbolic sine, elementwise ((expm1(x) - expm1(-x)) / 2: accurate near 0)."""
        x = self._as_float()
        return (x.expm1() - (-x).expm1()) * 0.5

    def cosh(self):
        """The hyperbolic cosine, elementwise."""
        x = self._as_float()
        return (x.exp() + (-x).exp()) * 0.5

    def asinh(self):
        """The inverse hyperbolic sine, elementwise."""
        _, where = _tensor()
        x = self._as_float()

        def positive(z):  # asinh(z) = log1p(z + z^2 / (1 + sqrt(1 + z^2))), accurate for z >= 0
            return (z + z * z / ((z * z + 1.0).sqrt() + 1.0)).log1p()

        return where(x < 0, -positive(-x), positive(x))

    def acosh(self):
        """The inverse hyperbolic cosine, elementwise (nan below 1)."""
        x = self._as_float()
        return (x + (x * x - 1.0).sqrt()).log()

    def atanh(self):
        """The inverse hyperbolic tangent, elementwise (nan outside [-1, 1])."""
        x = self._as_float()
        return (x * 2.0 / (1.0 - x)).log1p() * 0.5

    arcsinh, arccosh, arctanh = asinh, acosh, atanh

    def hypot(self, other):
        """sqrt(x^2 + y^2), elementwise."""
        x, y = self._pair(other, "hypot", float_result=True)
        return (x * x + y * y).sqrt()

    # ----- remainders and floor division -----
    def fmod(self, other):
        """The remainder of x / y with the sign of x (C's fmod): x - trunc(x / y) * y, in the
        tensor's precision (where x / y rounds to an integer it can differ from the exact
        remainder by a multiple of y)."""
        a, b = self._pair(other, "fmod")
        if a.dtype.is_floating_point:
            _, where = _tensor()
            r = a - (a / b).trunc().detach() * b
            # where a / b rounded up to an integer, r has the wrong sign: one more |b| fixes it
            r = where((r != 0) & ((r < 0) != (a < 0)), r + b.abs() * a.sign(), r)
            return where(b == 0, math.nan, r)  # (drivers may fold inf * 0 to 0)
        _check_int_divisor(b, "fmod")
        return a - _int_div(a, b) * b

    def remainder(self, other):
        """The remainder of x / y with the sign of y (Python's %): x - floor(x / y) * y, as torch
        documents it (floats: in the tensor's precision, see fmod)."""
        return self._remainder(*self._pair(other, "remainder"))

    def __mod__(self, other):
        return self._remainder(*self._pair(other, "remainder"))

    def __rmod__(self, other):
        return self._remainder(*self._pair(other, "remainder", reverse=True))

    @staticmethod
    def _remainder(a, b):
        _, where = _tensor()
        if a.dtype.is_floating_point:
            r = a - (a / b).floor().detach() * b
        else:
            _check_int_divisor(b, "remainder")
            r = a - _int_div(a, b) * b
        # the sign of b (for floats: also where a / b rounded up to an integer)
        r = where((r != 0) & ((r < 0) != (b < 0)), r + b, r)
        return where(b == 0, math.nan, r) if a.dtype.is_floating_point else r

    def floor_divide(self, other):
        """x / y rounded down (Python's //); integer for integer inputs. Not differentiable."""
        return self._floor_divide(*self._pair(other, "floor_divide"))

    def __floordiv__(self, other):
        return self._floor_divide(*self._pair(other, "floor_divide"))

    def __rfloordiv__(self, other):
        return self._floor_divide(*self._pair(other, "floor_divide", reverse=True))

    @staticmethod
    def _floor_divide(a, b):
        if a.dtype.is_floating_point:
            return (a.detach() / b.detach()).floor()
        _check_int_divisor(b, "floor_divide")
        _, where = _tensor()
        q = _int_div(a, b)
        r = a - q * b
        return where((r != 0) & ((r < 0) != (b < 0)), q - 1, q)

    # ----- floating point tests (bool results) -----
    def isnan(self):
        """True where x is nan."""
        return self != self if self.dtype.is_floating_point else self._all_bool(False)

    def isinf(self):
        """True where x is +inf or -inf."""
        return self.abs() == math.inf if self.dtype.is_floating_point else self._all_bool(False)

    def isposinf(self):
        """True where x is +inf."""
        return self == math.inf if self.dtype.is_floating_point else self._all_bool(False)

    def isneginf(self):
        """True where x is -inf."""
        return self == -math.inf if self.dtype.is_floating_point else self._all_bool(False)

    def isfinite(self):
        """True where x is neither inf nor nan."""
        return self.abs() < math.inf if self.dtype.is_floating_point else self._all_bool(True)

    def _all_bool(self, value: bool):
        from .creation import full

        return full(self.shape, value, dtype="bool", device=self.device)

    def nan_to_num(self, nan: float = 0.0, posinf: float | None = None, neginf: float | None = None):
        """x with nan, +inf and -inf replaced (by default: 0 and the dtype's largest and
        lowest finite values)."""
        if not self.dtype.is_floating_point:
            return self.clone()
        _, where = _tensor()
        info = np.finfo(self.dtype.np)
        posinf = float(info.max) if posinf is None else posinf
        neginf = float(info.min) if neginf is None else neginf
        out = where(self.isnan(), nan, self)
        out = where(self == math.inf, posinf, out)
        return where(self == -math.inf, neginf, out).type(self.dtype)

    def isclose(self, other, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False):
        """|x - y| <= atol + rtol * |y| elementwise (equal infinities are close; nan only with equal_nan)."""
        if rtol < 0 or atol < 0:
            raise RuntimeError(f"isclose: rtol and atol must be non-negative, got rtol={rtol} and atol={atol}")
        a, b = self._pair(other, "isclose")
        close = a == b
        if not a.dtype.is_floating_point:
            a, b = a.double() if a.device == "numpy" else a.float(), b.double() if b.device == "numpy" else b.float()
        elif equal_nan:
            close = close | (a.isnan() & b.isnan())
        error = (a - b).abs()
        return close | (error.isfinite() & (error <= atol + rtol * b.abs()))

    def allclose(self, other, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> bool:
        """Whether every element is close (isclose); reads the answer back to the host."""
        return bool(self.isclose(other, rtol, atol, equal_nan).all().item())

    # ----- interpolation -----
    def lerp(self, end, weight):
        """start + weight * (end - start), elementwise (torch.lerp)."""
        start, end = self._pair(end, "lerp")
        if not start.dtype.is_floating_point:
            raise RuntimeError(f"lerp: expected floating point tensors, got {start.dtype.name}")
        return start + weight * (end - start)

    # ----- torch aliases, logical ops, tan, logit, addcmul/addcdiv -----
    def greater(self, other):
        """self > other elementwise (alias of gt)."""
        return self.gt(other)

    def less(self, other):
        """self < other elementwise (alias of lt)."""
        return self.lt(other)

    def greater_equal(self, other):
        """self >= other elementwise (alias of ge)."""
        return self.ge(other)

    def less_equal(self, other):
        """self <= other elementwise (alias of le)."""
        return self.le(other)

    def not_equal(self, other):
        """self != other elementwise (alias of ne)."""
        return self.ne(other)

    def _logical(self, other, op: str):
        """(self != 0, other != 0) as bool tensors of one broadcast shape."""
        Tensor, _ = _tensor()
        if not isinstance(other, Tensor):
            raise TypeError(f"{op}(): argument 'other' must be Tensor, not {type(other).__name__}")
        a, b = (t if t.dtype.is_bool else t != 0 for t in (self, other))  # nan counts as True
        return a._operands(b, op)

    def logical_and(self, other):
        """Elementwise AND of the truth values (nonzero is True) of two tensors; bool result."""
        a, b = self._logical(other, "logical_and")
        return (a.long() * b.long()).bool()

    def logical_or(self, other):
        """Elementwise OR of the truth values (nonzero is True) of two tensors; bool result."""
        a, b = self._logical(other, "logical_or")
        return (a.long() + b.long()).bool()

    def logical_xor(self, other):
        """Elementwise XOR of the truth values (nonzero is True) of two tensors; bool result."""
        a, b = self._logical(other, "logical_xor")
        return a != b

    def tan(self):
        """The tangent, elementwise (sin / cos; integers give floats)."""
        x = self._as_float()
        return x.sin() / x.cos()

    def logit(self, eps: float | None = None):
        """log(p / (1 - p)), with p clamped to [eps, 1 - eps] when eps is given (torch.logit)."""
        x = self._as_float()
        if eps is not None:
            x = x.clamp(eps, 1.0 - eps)
        return (x / (1.0 - x)).log()

    def _addc(self, tensor1, tensor2, value, op: str):
        """(self, tensor1, tensor2) of one promoted dtype and broadcast shape, with value checked."""
        Tensor, _ = _tensor()
        for name, t in (("tensor1", tensor1), ("tensor2", tensor2)):
            if not isinstance(t, Tensor):
                raise TypeError(f"{op}(): argument '{name}' must be Tensor, not {type(t).__name__}")
        if not isinstance(value, (bool, int, float)):
            raise TypeError(f"{op}(): argument 'value' must be a Python number, not {type(value).__name__}")
        t1, t2 = tensor1._operands(tensor2, op)
        x, t1 = self._operands(t1, op)
        _, t2 = x._operands(t2, op)
        if not x.dtype.is_floating_point and isinstance(value, float):
            raise RuntimeError(f"{op}: For integral input tensors, argument value must not be a floating point number.")
        return x, t1, t2

    def addcmul(self, tensor1, tensor2, *, value=1):
        """self + value * tensor1 * tensor2, broadcast (torch.addcmul)."""
        x, t1, t2 = self._addc(tensor1, tensor2, value, "addcmul")
        return x + value * t1 * t2

    def addcdiv(self, tensor1, tensor2, *, value=1):
        """self + value * tensor1 / tensor2, broadcast (torch.addcdiv); integer tensor1 and
        tensor2 are refused, as in torch."""
        Tensor, _ = _tensor()
        if all(isinstance(t, Tensor) and not t.dtype.is_floating_point for t in (tensor1, tensor2)):
            raise RuntimeError(
                "addcdiv: Integer division with addcdiv is no longer supported. Use "
                "(input + value * torch.trunc(tensor1 / tensor2)).to(input.dtype) for the historic integer "
                "behavior, or convert tensor1 or tensor2 to a floating point dtype for true division."
            )
        x, t1, t2 = self._addc(tensor1, tensor2, value, "addcdiv")
        return x + value * (t1 / t2)

    # ----- helpers -----
    def _as_float(self):
        return self if self.dtype.is_floating_point else self.float()

    def _pair(self, other, op: str, reverse: bool = False, float_result: bool = False):
        """(self, other), or (other, self) with `reverse`, of one dtype, device and shape."""
        return self._operands(other, op, reverse=reverse, float_result=float_result)
