"""Tensor: the user's handle on a lazy value, with PyTorch's names and semantics."""

from __future__ import annotations

import math
from collections import namedtuple
from typing import Callable, Sequence

import numpy as np

from . import dtypes
from . import function as F
from . import storage
from .autograd import run_backward
from .autocast_mode import autocast_op
from .device import canonical
from .dtypes import DType
from .lazy import LazyBuffer, realize
from .ops import Op
from .shapes import _broadcasts_to, _norm_dim, _norm_dims, broadcast_shapes, shape_arg  # noqa: F401  (re-exported)
from .tensor_inplace import InPlaceOps
from .tensor_linalg import LinalgOps
from .tensor_math import MathOps
from .tensor_reduce import ReduceOps
from .tensor_select import SelectOps
from .tensor_shape import ShapeOps
from .tensor_sorting import SortingOps

MinMax = namedtuple("MinMax", ["values", "indices"])


class RemovableHandle:
    """What registering a hook returns: `remove()` unregisters it (torch.utils.hooks.RemovableHandle)."""

    _next_id = 0

    def __init__(self, hooks: dict, hook: Callable):
        RemovableHandle._next_id += 1
        self.hooks_dict, self.id = hooks, RemovableHandle._next_id
        hooks[self.id] = hook

    def remove(self) -> None:
        self.hooks_dict.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def check_same_device(a: Tensor, b: Tensor, op: str) -> None:
    """PyTorch's error for an op given tensors on two devices."""
    if a.device != b.device:
        raise RuntimeError(
            f"Expected all tensors to be on the same device, but found at least two devices, "
            f"{a.device} and {b.device}! (in {op})"
        )


class Tensor(MathOps, ReduceOps, SortingOps, SelectOps, ShapeOps, LinalgOps, InPlaceOps):
    """An n-dimensional array on a device ('webgpu' or 'numpy'), lazily computed,
    with reverse-mode automatic differentiation."""

    # _storage: the Storage this tensor is the root of, or views (None until a view or an
    # in-place op needs one); _view: how a view derives from its root (storage.ViewInfo);
    # _fw: (forward-AD level, tangent) while a dual_level is active
    # _post_accumulate_grad_hooks: dict of hooks a leaf runs after backward accumulates its .grad
    # _backward_hooks: a leaf's register_hook hooks (a non-leaf's live on its Function, _ctx)
    __slots__ = (
        "lazydata", "requires_grad", "grad", "_ctx", "_storage", "_view", "_fw", "_post_accumulate_grad_hooks",
        "_backward_hooks", "__weakref__",
    )
    __array_priority__ = 1000  # numpy_array + tensor goes to Tensor.__radd__

    def __init__(self, data, dtype=None, device=None, requires_grad: bool = False):
        device = canonical(device)
        if isinstance(data, Tensor):
            data = data.detach().numpy()
        if isinstance(data, LazyBuffer):
            lb = data
        else:
            arr = np.asarray(data)
            if dtype is not None:
                dt = dtypes.to_dtype(dtype)
            elif isinstance(data, (np.ndarray, np.generic)):
                dt = dtypes.to_dtype(arr.dtype)
            elif arr.dtype.kind == "f":
                dt = dtypes.default_float
            else:
                dt = dtypes.to_dtype(arr.dtype)
            if arr.dtype.kind not in "biuf":
                raise TypeError(f"can't convert data of NumPy dtype {arr.dtype} to a tensor")
            lb = LazyBuffer.load(arr, dt, device)
        self.lazydata: LazyBuffer = lb
        self.grad: Tensor | None = None
        self._ctx = None
        self._storage = self._view = self._fw = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @staticmethod
    def _from_lazy(lb: LazyBuffer, requires_grad: bool = False) -> Tensor:
        t = Tensor.__new__(Tensor)
        t.lazydata, t.grad, t._ctx, t.requires_grad = lb, None, None, requires_grad
        t._storage = t._view = t._fw = None
        return t

    # ----- properties -----
    @property
    def shape(self) -> tuple[int, ...]:
        return self.lazydata.shape

    @property
    def dtype(self) -> DType:
        return self.lazydata.dtype

    @property
    def device(self) -> str:
        return self.lazydata.device

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def grad_fn(self):
        return self._ctx

    @property
    def _version(self) -> int:
        """How many in-place ops have changed this tensor's storage (torch's version counter)."""
        root = self if self._view is None else self._view.root
        return 0 if root._storage is None else root._storage.version

    @property
    def _base(self) -> Tensor | None:
        """The tensor whose storage this view shares, or None when it is not a view."""
        info = self._view
        if info is None or all(kind == "detach" for kind, _ in info.chain):
            return None
        return info.root

    def stride(self, dim: int | None = None):
        """Elements to step in the storage to the next index along each dim (or along
        `dim`), as torch reports them: a view's are its base's (a transpose swaps them,
        an expanded dim has 0); a computed tensor's are C order."""
        strides = storage.storage_view(self).strides
        if dim is None:
            return tuple(strides)
        if self.ndim == 0:
            raise IndexError(f"stride: dimension specified as {dim} but tensor has no dimensions")
        return strides[_norm_dim(dim, self.ndim, "stride")]

    def storage_offset(self) -> int:
        """Where this tensor's first element sits in its storage, in elements."""
        return storage.storage_view(self).offset

    def is_contiguous(self, memory_format=None) -> bool:
        """Whether the elements sit in C order in the storage, with no gaps (size-1 dims and
        empty tensors count as contiguous, as in torch)."""
        if memory_format is not None:
            raise NotImplementedError(f"is_contiguous: memory_format={memory_format!r}: smolgrad tracks only C order")
        return self.numel() == 0 or storage.storage_view(self).is_contiguous

    @property
    def T(self) -> Tensor:
        return self.permute(tuple(reversed(range(self.ndim))))

    @property
    def mT(self) -> Tensor:
        return self.transpose(-2, -1)

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[_norm_dim(dim, self.ndim, "size")]

    def dim(self) -> int:
        return self.ndim

    def numel(self) -> int:
        return math.prod(self.shape)

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def is_floating_point(self) -> bool:
        return self.dtype.is_floating_point

    # ----- autograd -----
    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and not self.dtype.is_floating_point:
            raise RuntimeError(f"only Tensors of floating point dtype can require gradients (got {self.dtype.name})")
        if not requires_grad and not self.is_leaf:
            raise RuntimeError("you can only change requires_grad flags of leaf variables; use detach() instead")
        self.requires_grad = requires_grad
        return self

    def retain_grad(self) -> None:
        """Keep this non-leaf tensor's gradient in `.grad` after backward (leaves always do)."""
        if not self.requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        if self._ctx is not None:
            self._ctx.retained = self  # the backward engine accumulates into its .grad

    @property
    def retains_grad(self) -> bool:
        return self._ctx is not None and getattr(self._ctx, "retained", None) is self

    def detach(self) -> Tensor:
        """A tensor outside autograd sharing this one's storage (in-place changes show in both)."""
        return storage.register_view(self, Tensor._from_lazy(self.lazydata), ("detach", None))

    def _value(self) -> Tensor:
        """The current value as a new tensor outside autograd, for reading inside smolgrad
        (not a view: later in-place changes of either do not show in the other)."""
        return Tensor._from_lazy(self.lazydata)

    @property
    def data(self) -> Tensor:
        """This tensor's storage as a tensor outside autograd (like torch's .data)."""
        return self.detach()

    @data.setter
    def data(self, value: Tensor) -> None:
        """Replace the value, keeping this tensor's identity, grad and requires_grad
        (how optimizers update parameters). Shape, dtype and device must match."""
        if not isinstance(value, Tensor):
            raise TypeError(f"Tensor.data must be set to a Tensor, got {type(value).__name__}")
        if (value.shape, value.dtype, value.device) != (self.shape, self.dtype, self.device):
            raise RuntimeError(
                f"Tensor.data: new value has shape {value.shape}, dtype {value.dtype.name}, device {value.device} "
                f"but the tensor has shape {self.shape}, dtype {self.dtype.name}, device {self.device}; "
                "convert it first (reshape, .to(dtype), .to(device))"
            )
        storage.alias(self, value)

    def backward(self, gradient=None, retain_graph: bool | None = None, create_graph: bool = False, inputs=None) -> None:
        """Accumulate d(self)/d(leaf) into `.grad` of every leaf that requires grad (or only of
        `inputs`); with `create_graph=True` the gradients are differentiable again."""
        inputs = None if inputs is None else ([inputs] if isinstance(inputs, Tensor) else list(inputs))
        run_backward([self], [gradient], retain_graph, create_graph, inputs)

    def register_hook(self, hook: Callable[[Tensor], Tensor | None]) -> RemovableHandle:
        """Call `hook(grad)` each time a gradient with respect to this tensor is computed; a
        returned tensor replaces the gradient. Returns a handle whose `remove()` unregisters it."""
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        node = self if self._ctx is None else self._ctx  # where backward collects this tensor's gradient
        hooks = getattr(node, "_backward_hooks", None)
        if hooks is None:
            hooks = node._backward_hooks = {}
        return RemovableHandle(hooks, hook)

    def register_post_accumulate_grad_hook(self, hook: Callable[[Tensor], None]) -> RemovableHandle:
        """Call `hook(self)` each time backward has accumulated a gradient into this leaf's
        `.grad`; returns a handle whose `remove()` unregisters it."""
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self._ctx is not None:
            raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf tensors")
        hooks = getattr(self, "_post_accumulate_grad_hooks", None)
        if hooks is None:
            hooks = self._post_accumulate_grad_hooks = {}
        return RemovableHandle(hooks, hook)

    def _accumulate_grad(self, g: Tensor, create_graph: bool = False) -> None:
        if g.dtype != self.dtype:
            g = g.type(self.dtype)
        if create_graph:  # keep the gradient's history (a new tensor object, so grads don't alias)
            self.grad = F.Alias.apply(g) if self.grad is None else self.grad + g
        else:
            g = g.lazydata
            self.grad = Tensor._from_lazy(g if self.grad is None else self.grad.lazydata.e(Op.ADD, g))

    # ----- evaluation -----
    def realize(self) -> Tensor:
        realize(self.lazydata)
        return self

    def numpy(self) -> np.ndarray:
        if self.requires_grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        return self.lazydata.numpy()

    def item(self):
        if self.numel() != 1:
            raise RuntimeError(f"a Tensor with {self.numel()} elements cannot be converted to a Python scalar")
        return self.lazydata.numpy().reshape(()).item()

    def tolist(self):
        return self.lazydata.numpy().tolist()

    def __bool__(self) -> bool:
        if self.numel() != 1:
            raise RuntimeError(f"Boolean value of Tensor with {self.numel()} elements is ambiguous")
        return bool(self.item())

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self.dtype.is_floating_point or self.numel() != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __repr__(self) -> str:
        arr = self.lazydata.numpy()
        if self.dtype.is_floating_point:
            body = np.array2string(
                arr, separator=", ", prefix="tensor(", precision=4, floatmode="maxprec_equal", suppress_small=False
            )
        else:
            body = np.array2string(arr, separator=", ", prefix="tensor(")
        extras = []
        if self.device != "numpy":
            extras.append(f"device='{self.device}'")
        if self.dtype not in (dtypes.float32, dtypes.int64, dtypes.bool_) or 0 in self.shape:
            extras.append(f"dtype={self.dtype!r}")
        if self._ctx is not None:
            extras.append(f"grad_fn={self._ctx!r}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body, *extras]) + ")"

    def __hash__(self) -> int:
        return id(self)

    def __deepcopy__(self, memo) -> Tensor:
        """A tensor with this value in a storage of its own, the same requires_grad and a copy
        of .grad (copy.deepcopy, e.g. of a module). Like torch, only leaves can be copied."""
        if not self.is_leaf:
            raise RuntimeError(
                "Only Tensors created explicitly by the user (graph leaves) support the deepcopy protocol at the "
                "moment; detach() it first"
            )
        if id(self) not in memo:
            new = type(self).__new__(type(self))  # (values are immutable lazy nodes: sharing one is a copy)
            new.lazydata, new.requires_grad, new._ctx = self.lazydata, self.requires_grad, None
            new._storage = new._view = new._fw = None
            memo[id(self)] = new
            new.grad = None if self.grad is None else self.grad.__deepcopy__(memo)
        return memo[id(self)]

    def __setitem__(self, key, value) -> None:
        """x[key] = value in place: ints, slices, None, ..., bool masks, integer tensors."""
        indexing.setitem(self, key, value)

    # ----- device and dtype -----
    def to(self, *args, **kwargs) -> Tensor:
        """to(device), to(dtype) or to(device, dtype), like torch.Tensor.to."""
        device = kwargs.pop("device", None)
        dtype = kwargs.pop("dtype", None)
        if kwargs:
            raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
        for a in args:
            if isinstance(a, (DType, type)) or (isinstance(a, str) and a not in ("cpu", "numpy", "webgpu", "gpu", "wgpu")):
                dtype = a
            else:
                device = a
        out = self
        if dtype is not None:
            out = out.type(dtype)
        if device is not None and canonical(device) != out.device:
            out = ToDevice.apply(out, device=canonical(device))
        return out

    def cpu(self) -> Tensor:
        return self.to("numpy")

    def type(self, dtype) -> Tensor:
        dtype = dtypes.to_dtype(dtype)
        if dtype == self.dtype:
            return self
        if dtype.is_floating_point and self.dtype.is_floating_point:
            return F.Cast.apply(self, dtype=dtype)
        return Tensor._from_lazy(self.lazydata.cast(dtype))

    def float(self) -> Tensor:
        return self.type(dtypes.float32)

    def double(self) -> Tensor:
        return self.type(dtypes.float64)

    def half(self) -> Tensor:
        """This tensor as float16 (stored in 16 bits, computed in float32)."""
        return self.type(dtypes.float16)

    def int(self) -> Tensor:
        return self.type(dtypes.int32)

    def long(self) -> Tensor:
        return self.type(dtypes.int64)

    def bool(self) -> Tensor:
        return self.type(dtypes.bool_)

    # ----- broadcasting helpers -----
    def _operands(self, other, op: str, reverse: bool = False, float_result: bool = False):
        """(a, b) of one dtype and device, broadcast to one shape."""
        if (
            type(other) is Tensor
            and other.lazydata.shape == self.lazydata.shape
            and other.dtype is self.dtype
            and other.device == self.device
            and (self.dtype.is_floating_point or not float_result)
        ):  # the common case (and every backward formula): nothing to convert
            return (other, self) if reverse else (self, other)
        if isinstance(other, Tensor):
            check_same_device(self, other, op)
            dt = dtypes.promote(self.dtype, other.dtype)
        elif isinstance(other, (bool, int, float)) or isinstance(other, np.generic):
            other = other.item() if isinstance(other, np.generic) else other
            dt = dtypes.promote_scalar(self.dtype, other)
        else:
            other = Tensor(other, device=self.device)
            return self._operands(other, op, reverse, float_result)
        if float_result and not dt.is_floating_point:
            dt = dtypes.default_float
        a = self.type(dt)
        if not isinstance(other, Tensor):
            b = Tensor._from_lazy(LazyBuffer.const(other, a.shape, dt, a.device))
        else:
            b = other.type(dt)
            shape = broadcast_shapes(a.shape, b.shape, op=op)
            a, b = a._broadcast_to(shape), b._broadcast_to(shape)
        return (b, a) if reverse else (a, b)

    def _broadcast_to(self, shape: tuple[int, ...]) -> Tensor:
        if self.shape == shape:
            return self
        x = self._reshape((1,) * (len(shape) - self.ndim) + self.shape) if self.ndim < len(shape) else self
        return F.Expand.apply(x, shape=shape)

    def _reshape(self, shape: tuple[int, ...]) -> Tensor:
        """reshape for internal use: the result is not registered as a view."""
        return self if shape == self.shape else F.Reshape.apply(self, shape=shape)

    # ----- elementwise: arithmetic -----
    def add(self, other, alpha=None) -> Tensor:
        if alpha is not None:
            other = other * alpha
        return F.Add.apply(*self._operands(other, "add"))

    def sub(self, other, alpha=None) -> Tensor:
        if alpha is not None:
            other = other * alpha
        return F.Sub.apply(*self._operands(other, "sub"))

    def mul(self, other) -> Tensor:
        return F.Mul.apply(*self._operands(other, "mul"))

    def div(self, other) -> Tensor:
        return F.Div.apply(*self._operands(other, "div", float_result=True))

    def pow(self, exponent) -> Tensor:
        return self._pow(exponent, reverse=False)

    def __rpow__(self, base) -> Tensor:
        return self._pow(base, reverse=True)

    def _pow(self, other, reverse: bool) -> Tensor:
        a, b = self._operands(other, "pow", reverse=reverse)
        if a.dtype.is_floating_point:
            return F.Pow.apply(a, b)
        if not reverse and isinstance(other, int) and not isinstance(other, bool) and other < 0:
            raise RuntimeError("Integers to negative integer powers are not allowed; use a float base (x.float() ** n)")
        return F.Pow.apply(a.float(), b.float()).type(a.dtype)  # integer powers, computed in float

    def neg(self) -> Tensor:
        return F.Neg.apply(self)

    __add__ = add
    __sub__ = sub
    __mul__ = mul
    __truediv__ = div
    __pow__ = pow
    __neg__ = neg

    def __radd__(self, other) -> Tensor:
        return F.Add.apply(*self._operands(other, "add", reverse=True))

    def __rsub__(self, other) -> Tensor:
        return F.Sub.apply(*self._operands(other, "sub", reverse=True))

    def __rmul__(self, other) -> Tensor:
        return F.Mul.apply(*self._operands(other, "mul", reverse=True))

    def __rtruediv__(self, other) -> Tensor:
        return F.Div.apply(*self._operands(other, "div", reverse=True, float_result=True))

    def __matmul__(self, other) -> Tensor:
        return self.matmul(other)

    def __rmatmul__(self, other) -> Tensor:
        return Tensor(other, device=self.device).matmul(self)

    def maximum(self, other) -> Tensor:
        return F.Maximum.apply(*self._operands(other, "maximum"))

    def minimum(self, other) -> Tensor:
        return F.Minimum.apply(*self._operands(other, "minimum"))

    def clamp(self, min=None, max=None) -> Tensor:
        """Limit values to [min, max]; the gradient flows where min <= x <= max."""
        if min is None and max is None:
            raise RuntimeError("clamp: at least one of 'min' or 'max' must not be None")
        out = self
        if min is not None:
            out = where(out < min, min, out)
        if max is not None:
            out = where(out > max, max, out)
        return out

    clip = clamp

    # ----- elementwise: comparisons (no gradient) -----
    def _compare(self, other, op: Op, name: str) -> Tensor:
        a, b = self._operands(other, name)
        return Tensor._from_lazy(a.lazydata.e(op, b.lazydata))

    def __lt__(self, other) -> Tensor:
        return self._compare(other, Op.LT, "lt")

    def __le__(self, other) -> Tensor:
        return self._compare(other, Op.LE, "le")

    def __gt__(self, other) -> Tensor:
        return self._compare(other, Op.GT, "gt")

    def __ge__(self, other) -> Tensor:
        return self._compare(other, Op.GE, "ge")

    def __eq__(self, other) -> Tensor:  # type: ignore[override]
        return self._compare(other, Op.EQ, "eq")

    def __ne__(self, other) -> Tensor:  # type: ignore[override]
        return self._compare(other, Op.NE, "ne")

    lt, le, gt, ge, eq, ne = __lt__, __le__, __gt__, __ge__, __eq__, __ne__

    def logical_not(self) -> Tensor:
        return self == 0

    def __invert__(self) -> Tensor:
        if not self.dtype.is_bool:
            raise TypeError(f"~ is only supported for bool tensors here, got {self.dtype.name}")
        return self.logical_not()

    def __and__(self, other) -> Tensor:
        return (self.bool().long() * Tensor._coerce(other, self).bool().long()).bool()

    def __or__(self, other) -> Tensor:
        return (self.bool().long() + Tensor._coerce(other, self).bool().long()).bool()

    @staticmethod
    def _coerce(x, like: Tensor) -> Tensor:
        return x if isinstance(x, Tensor) else Tensor(x, device=like.device)

    # ----- elementwise: unary math -----
    def _float_unary(self, fn) -> Tensor:
        x = self if self.dtype.is_floating_point else self.float()
        return fn.apply(x)

    def exp(self) -> Tensor:
        return self._float_unary(F.Exp)

    def log(self) -> Tensor:
        return self._float_unary(F.Log)

    def sqrt(self) -> Tensor:
        return self._float_unary(F.Sqrt)

    def rsqrt(self) -> Tensor:
        return self.sqrt().reciprocal()

    def reciprocal(self) -> Tensor:
        return self._float_unary(F.Reciprocal)

    def sin(self) -> Tensor:
        return self._float_unary(F.Sin)

    def cos(self) -> Tensor:
        return self._float_unary(F.Cos)

    def tanh(self) -> Tensor:
        return self._float_unary(F.Tanh)

    def sigmoid(self) -> Tensor:
        return self._float_unary(F.Sigmoid)

    def relu(self) -> Tensor:
        return F.Relu.apply(self)

    def abs(self) -> Tensor:
        return F.Abs.apply(self)

    def sign(self) -> Tensor:
        return F.Sign.apply(self)

    def square(self) -> Tensor:
        return self * self

    def contiguous(self) -> Tensor:
        """self when its elements are already in order in its storage, else a copy (torch's rule)."""
        if storage.is_storage_contiguous(self) and self.lazydata.view.is_contiguous:
            return self
        return F.Contiguous.apply(self)

    # ----- reductions -----
    def _reduce_shape(self, out: Tensor, axes: tuple[int, ...], keepdim: bool) -> Tensor:
        if keepdim:
            return out
        return out._reshape(tuple(n for i, n in enumerate(self.shape) if i not in axes))

    @autocast_op("float32")
    def sum(self, dim=None, keepdim: bool = False, dtype=None) -> Tensor:
        x = self.type(dtype) if dtype is not None else self
        if not x.dtype.is_floating_point and x.dtype != dtypes.int64:
            x = x.long()  # torch sums bool and int32 into int64
        axes = _norm_dims(dim, self.ndim, "sum")
        return x._reduce_shape(F.Sum.apply(x, axes=axes), axes, keepdim)

    @autocast_op("keep")  # (its sum stays in the input's dtype, as torch's mean)
    def mean(self, dim=None, keepdim: bool = False) -> Tensor:
        if not self.dtype.is_floating_point:
            raise RuntimeError(
                f"mean(): could not infer output dtype. Input dtype must be a floating point dtype, got "
                f"{self.dtype.name}; call .float() first"
            )
        axes = _norm_dims(dim, self.ndim, "mean")
        n = math.prod(self.shape[a] for a in axes)
        return self.sum(dim=axes, keepdim=keepdim) / n if n else self.sum(dim=axes, keepdim=keepdim) * math.nan

    def _minmax(self, op: Op, dim, keepdim: bool, name: str) -> Tensor:
        axes = _norm_dims(dim, self.ndim, name)
        if any(self.shape[a] == 0 for a in axes):
            raise RuntimeError(f"{name}(): Expected reduction dim to have a nonzero size, got shape {self.shape}")
        return self._reduce_shape(F.Max.apply(self, axes=axes, op=op), axes, keepdim)

    def amax(self, dim=None, keepdim: bool = False) -> Tensor:
        return self._minmax(Op.RMAX, dim, keepdim, "amax")

    def amin(self, dim=None, keepdim: bool = False) -> Tensor:
        return self._minmax(Op.RMIN, dim, keepdim, "amin")

    def max(self, dim=None, keepdim: bool = False):
        """max() -> the largest value; max(dim) -> (values, indices); max(tensor) -> maximum."""
        if isinstance(dim, Tensor):
            return self.maximum(dim)
        if dim is None:
            return self.amax()
        return self._extreme_along(dim, keepdim, largest=True)

    def min(self, dim=None, keepdim: bool = False):
        """min() -> the smallest value; min(dim) -> (values, indices); min(tensor) -> minimum."""
        if isinstance(dim, Tensor):
            return self.minimum(dim)
        if dim is None:
            return self.amin()
        return self._extreme_along(dim, keepdim, largest=False)

    def _extreme_along(self, dim: int, keepdim: bool, largest: bool) -> MinMax:
        """(values, indices) of max/min along dim; the gradient goes to the returned index."""
        name = "max" if largest else "min"
        indices = self._arg_extreme(dim, True, largest, name)
        if self.ndim == 0:
            return MinMax(self, indices)
        dim = _norm_dim(dim, self.ndim, name)
        values = self.gather(dim, indices)
        if not keepdim:
            values, indices = values.squeeze(dim), indices.squeeze(dim)
        return MinMax(values, indices)

    def _arg_extreme(self, dim, keepdim: bool, largest: bool, name: str) -> Tensor:
        """Index of the first largest (smallest) value along dim; NaN counts as extreme, like torch."""
        if dim is None:
            idx = self.detach().reshape(-1)._arg_extreme(0, False, largest, name)
            return idx.reshape((1,) * self.ndim) if keepdim else idx
        dim = _norm_dim(dim, self.ndim, name)
        if self.ndim == 0:
            return Tensor._from_lazy(LazyBuffer.const(0, (), dtypes.int64, self.device))
        x = self.detach()
        n = x.shape[dim]
        if n == 0:
            raise RuntimeError(f"{name}(): Expected reduction dim {dim} to have a nonzero size, got shape {x.shape}")
        best = x.amax(dim, keepdim=True) if largest else x.amin(dim, keepdim=True)
        positions = arange(n, dtype=dtypes.int32, device=self.device)
        positions = positions.reshape(tuple(n if i == dim else 1 for i in range(x.ndim)))
        hit = where(x != x, True, x == best)
        return where(hit, positions, n).amin(dim, keepdim=keepdim).long()

    def argmax(self, dim=None, keepdim: bool = False) -> Tensor:
        return self._arg_extreme(dim, keepdim, True, "argmax")

    def argmin(self, dim=None, keepdim: bool = False) -> Tensor:
        return self._arg_extreme(dim, keepdim, False, "argmin")

    @autocast_op("keep")
    def var(self, dim=None, keepdim: bool = False, correction: int = 1, unbiased: bool | None = None) -> Tensor:
        if unbiased is not None:
            correction = 1 if unbiased else 0
        axes = _norm_dims(dim, self.ndim, "var")
        n = math.prod(self.shape[a] for a in axes)
        centered = self - self.mean(axes, keepdim=True)
        return (centered * centered).sum(axes, keepdim=keepdim) / max(n - correction, 0)

    def std(self, dim=None, keepdim: bool = False, correction: int = 1, unbiased: bool | None = None) -> Tensor:
        return self.var(dim, keepdim, correction, unbiased).sqrt()

    @autocast_op("float32")
    def logsumexp(self, dim, keepdim: bool = False) -> Tensor:
        """log(sum(exp(x))) computed stably by subtracting the maximum."""
        axes = _norm_dims(dim, self.ndim, "logsumexp")
        m = self.detach().amax(axes, keepdim=True)
        m = where(m.abs() == math.inf, 0.0, m)  # all -inf rows stay -inf, not nan
        out = (self - m).exp().sum(axes, keepdim=True).log() + m
        return self._reduce_shape(out, axes, keepdim)

    @autocast_op("float32")
    def softmax(self, dim: int) -> Tensor:
        e = (self - self.detach().amax(dim, keepdim=True)).exp()
        return e / e.sum(dim, keepdim=True)

    @autocast_op("float32")
    def log_softmax(self, dim: int) -> Tensor:
        # (x - max) - log(sum(exp(x - max))): subtracting the max first keeps float32's
        # precision for large logits (x - logsumexp(x) rounds at the scale of x)
        shifted = self - self.detach().amax(dim, keepdim=True)
        return shifted - shifted.exp().sum(dim, keepdim=True).log()

    # ----- matmul -----
    @autocast_op("lower")
    def matmul(self, other) -> Tensor:
        """Matrix product with PyTorch's rules for 1-D, 2-D, batched and broadcast operands."""
        other = Tensor._coerce(other, self)
        check_same_device(self, other, "matmul")
        if self.ndim == 0 or other.ndim == 0:
            raise RuntimeError(f"matmul: both arguments need at least 1 dimension, got shapes {self.shape} and {other.shape}")
        dt = dtypes.promote(self.dtype, other.dtype)
        if not dt.is_floating_point:
            raise TypeError(f"matmul: expected floating point tensors, got {self.dtype.name} and {other.dtype.name}")
        a, b = self.type(dt), other.type(dt)
        a2 = a.unsqueeze(0) if a.ndim == 1 else a
        b2 = b.unsqueeze(-1) if b.ndim == 1 else b
        if a2.shape[-1] != b2.shape[-2]:
            raise RuntimeError(
                f"matmul: shapes {self.shape} and {other.shape} cannot be multiplied "
                f"({a2.shape[-2]}x{a2.shape[-1]} and {b2.shape[-2]}x{b2.shape[-1]})"
            )
        batch = broadcast_shapes(a2.shape[:-2], b2.shape[:-2], op="matmul")
        a2 = a2._broadcast_to((*batch, *a2.shape[-2:]))
        b2 = b2._broadcast_to((*batch, *b2.shape[-2:]))
        out = F.Matmul.apply(a2, b2)
        if a.ndim == 1:
            out = out.squeeze(-2)
        if b.ndim == 1:
            out = out.squeeze(-1)
        return out

    def dot(self, other) -> Tensor:
        if self.ndim != 1 or Tensor._coerce(other, self).ndim != 1:
            raise RuntimeError("dot: 1D tensors expected")
        return self.matmul(other)

    # ----- movement -----
    def reshape(self, *shape) -> Tensor:
        shape = shape_arg(shape, allow_negative=True)
        if shape.count(-1) > 1:
            raise RuntimeError("reshape: only one dimension can be inferred (-1)")
        known = math.prod(s for s in shape if s != -1)
        if -1 in shape:
            if known == 0 or self.numel() % known:
                raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {self.numel()}")
            shape = tuple(self.numel() // known if s == -1 else s for s in shape)
        if math.prod(shape) != self.numel() or any(s < 0 for s in shape):
            raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {self.numel()}")
        if shape == self.shape:
            return self
        out = F.Reshape.apply(self, shape=shape)
        # a view when strides can express it (as torch decides), else a copy with its own storage
        return storage.register_view(self, out, ("reshape", shape)) if storage.reshape_is_view(self, shape) else out

    def view(self, *shape) -> Tensor:
        """Like reshape, but never copies: raises when the strides cannot express it."""
        out = self.reshape(*shape)
        if out is not self and out._view is None:
            raise RuntimeError(
                f"view size is not compatible with input tensor's size and stride (shape {self.shape} -> "
                f"{out.shape}); at least one dimension spans across two contiguous subspaces. Use .reshape(...) instead."
            )
        return out

    def permute(self, *dims) -> Tensor:
        dims = dims[0] if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
        order = tuple(_norm_dim(d, self.ndim, "permute") for d in dims)
        if sorted(order) != list(range(self.ndim)):
            raise RuntimeError(f"permute: dims {tuple(dims)} are not a permutation of the {self.ndim} dims of {self.shape}")
        if order == tuple(range(self.ndim)):
            return self
        return storage.register_view(self, F.Permute.apply(self, order=order), ("permute", order))

    def transpose(self, dim0: int, dim1: int) -> Tensor:
        order = list(range(self.ndim))
        d0, d1 = _norm_dim(dim0, self.ndim, "transpose"), _norm_dim(dim1, self.ndim, "transpose")
        order[d0], order[d1] = order[d1], order[d0]
        return self.permute(order)

    def t(self) -> Tensor:
        if self.ndim > 2:
            raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {self.ndim}D")
        return self.T

    def expand(self, *shape) -> Tensor:
        shape = shape_arg(shape, allow_negative=True)
        if len(shape) < self.ndim:
            raise RuntimeError(f"expand: the number of sizes provided ({len(shape)}) must be >= the number of dims ({self.ndim})")
        src = (1,) * (len(shape) - self.ndim) + self.shape
        target = tuple(s if n == -1 else n for s, n in zip(src, shape))
        for s, n in zip(src, target):
            if s != 1 and s != n:
                raise RuntimeError(f"expand: the expanded size {n} must match the existing size {s} (shape {self.shape} -> {shape})")
        out = self._broadcast_to(target)
        if out is self:
            return self
        entries = (("expand", target),)
        if len(target) > self.ndim:
            entries = (("reshape", (1,) * (len(target) - self.ndim) + self.shape), *entries)
        return storage.register_view(self, out, *entries)

    def expand_as(self, other: Tensor) -> Tensor:
        return self.expand(other.shape)

    def unsqueeze(self, dim: int) -> Tensor:
        dim = _norm_dim(dim, self.ndim + 1, "unsqueeze")
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def squeeze(self, dim=None) -> Tensor:
        if dim is None:
            return self.reshape(tuple(n for n in self.shape if n != 1))
        axes = _norm_dims(dim, self.ndim, "squeeze")
        return self.reshape(tuple(n for i, n in enumerate(self.shape) if not (i in axes and n == 1)))

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        if self.ndim == 0:
            return self.reshape(1)
        s, e = _norm_dim(start_dim, self.ndim, "flatten"), _norm_dim(end_dim, self.ndim, "flatten")
        if s > e:
            raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
        return self.reshape(self.shape[:s] + (math.prod(self.shape[s : e + 1]),) + self.shape[e + 1 :])

    def flip(self, dims) -> Tensor:
        axes = _norm_dims(dims, self.ndim, "flip")
        return F.Flip.apply(self, axes=axes) if axes else self

    def _slice(self, bounds) -> Tensor:
        """self[bounds] for internal use (not registered as a view; see _slice_view)."""
        if all(b == (0, n, 1) for b, n in zip(bounds, self.shape)):
            return self
        return F.Slice.apply(self, bounds=tuple(bounds))

    def _slice_view(self, bounds) -> Tensor:
        """self[bounds] as a view sharing this tensor's storage."""
        bounds = tuple(tuple(b) for b in bounds)
        return storage.register_view(self, self._slice(bounds), ("slice", bounds))

    def narrow(self, dim: int, start: int, length: int) -> Tensor:
        dim = _norm_dim(dim, self.ndim, "narrow")
        if start < 0:
            start += self.shape[dim]
        if not (0 <= start and start + length <= self.shape[dim] and length >= 0):
            raise IndexError(f"narrow: start {start} + length {length} exceeds dimension {dim} of size {self.shape[dim]}")
        return self._slice_view([(start, start + length, 1) if i == dim else (0, n, 1) for i, n in enumerate(self.shape)])

    def select(self, dim: int, index: int) -> Tensor:
        """The slice at `index` along `dim`, that dim removed: a view (x.select(0, i) is x[i])."""
        d = _norm_dim(dim, self.ndim, "select")
        n = self.shape[d]
        if not -n <= index < n:
            raise IndexError(f"select(): index {index} out of range for tensor of size {self.shape} at dimension {d}")
        return self.narrow(d, index % n, 1).squeeze(d)

    def unbind(self, dim: int = 0) -> tuple[Tensor, ...]:
        """Every slice along `dim`, that dim removed, as views."""
        d = _norm_dim(dim, self.ndim, "unbind")
        return tuple(self.select(d, i) for i in range(self.shape[d]))

    def split(self, split_size_or_sections, dim: int = 0) -> tuple[Tensor, ...]:
        dim = _norm_dim(dim, self.ndim, "split")
        n = self.shape[dim]
        if isinstance(split_size_or_sections, int):
            if split_size_or_sections <= 0:
                raise ValueError(f"split: split_size must be positive, got {split_size_or_sections}")
            sizes = [min(split_size_or_sections, n - s) for s in range(0, n, split_size_or_sections)] or [0]
        else:
            sizes = list(split_size_or_sections)
            if sum(sizes) != n:
                raise RuntimeError(f"split: sizes {sizes} do not sum to the size {n} of dimension {dim}")
        out, start = [], 0
        for s in sizes:
            out.append(self.narrow(dim, start, s))
            start += s
        return tuple(out)

    def chunk(self, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
        if chunks <= 0:
            raise ValueError(f"chunk: chunks must be positive, got {chunks}")
        n = self.shape[_norm_dim(dim, self.ndim, "chunk")]
        return self.split(max(1, -(-n // chunks)), dim)

    def pad(self, pads: Sequence[tuple[int, int]], value=0.0) -> Tensor:
        """Pad every dim by (before, after); negative amounts crop."""
        crop = [(max(-lo, 0), n - max(-hi, 0), 1) for n, (lo, hi) in zip(self.shape, pads)]
        if any(start > stop for start, stop, _ in crop):
            raise RuntimeError(f"pad: cropping {tuple(pads)} removes more than the whole of shape {self.shape}")
        x = self._slice(crop)
        grow = tuple((max(lo, 0), max(hi, 0)) for lo, hi in pads)
        if not any(lo or hi for lo, hi in grow):
            return x
        return F.Pad.apply(x, pads=grow, value=value)

    # ----- indexing -----
    def __getitem__(self, key) -> Tensor:
        return indexing.getitem(self, key)

    def gather(self, dim: int, index: Tensor) -> Tensor:
        """out[i][j][k] = self[index[i][j][k]][j][k] (for dim=0), like torch.gather."""
        dim = _norm_dim(dim, self.ndim, "gather")
        if not isinstance(index, Tensor) or index.dtype.is_floating_point or index.dtype.is_bool:
            raise RuntimeError("gather(): Expected dtype int64 or int32 for index")
        if index.ndim != self.ndim:
            raise RuntimeError(f"gather(): Index tensor must have the same number of dimensions as input tensor ({index.shape} vs {self.shape})")
        for d in range(self.ndim):
            if d != dim and index.shape[d] > self.shape[d]:
                raise RuntimeError(
                    f"gather(): Size does not match at dimension {d} expected index {index.shape} to be smaller "
                    f"than self {self.shape} apart from dimension {dim}"
                )
        if index.device != self.device:
            raise RuntimeError(f"gather(): index is on {index.device} but self is on {self.device}")
        _check_index_range(index, self.shape[dim], "gather", allow_negative=False)
        return F.Gather.apply(self, index.detach(), dim=dim)

    # ----- masks, triangles, sliding windows, erf -----
    def masked_fill(self, mask: Tensor, value) -> Tensor:
        """A copy with `value` where the bool `mask` (broadcast to this shape) is True."""
        if not isinstance(mask, Tensor) or not mask.dtype.is_bool:
            got = mask.dtype.name if isinstance(mask, Tensor) else type(mask).__name__
            raise RuntimeError(f"masked_fill: expected a bool tensor as mask, got {got}; build one with a comparison (x == 0)")
        if mask.device != self.device:
            raise RuntimeError(f"masked_fill: mask is on {mask.device} but the tensor is on {self.device}")
        if not _broadcasts_to(mask.shape, self.shape):
            raise RuntimeError(f"masked_fill: mask of shape {mask.shape} does not broadcast to the tensor's shape {self.shape}")
        if isinstance(value, Tensor) and value.ndim != 0:
            raise RuntimeError(f"masked_fill only supports a 0-dimensional value tensor, but got one with {value.ndim} dims")
        return where(mask, value, self).type(self.dtype)

    def triu(self, diagonal: int = 0) -> Tensor:
        """The upper triangle of the last two dims (elements with col - row >= diagonal); others 0."""
        return self._triangle(diagonal, upper=True)

    def tril(self, diagonal: int = 0) -> Tensor:
        """The lower triangle of the last two dims (elements with col - row <= diagonal); others 0."""
        return self._triangle(diagonal, upper=False)

    def _triangle(self, diagonal: int, upper: bool) -> Tensor:
        if self.ndim < 2:
            raise RuntimeError(f"{'triu' if upper else 'tril'}: input tensor must have at least 2 dimensions, got shape {self.shape}")
        keep = Tensor._from_lazy(_triangle_mask(self.shape[-2], self.shape[-1], int(diagonal), upper, self.device))
        out = where(keep, self, 0)
        return out if out.dtype == self.dtype else out.type(self.dtype)  # a bool input stays bool, as in torch

    def unfold(self, dimension: int, size: int, step: int) -> Tensor:
        """All windows of `size` elements, `step` apart, along `dimension`, as a zero-copy view
        (torch.Tensor.unfold): that dim becomes the number of windows and a new last dim of
        `size` holds each window."""
        dim = _norm_dim(dimension, self.ndim, "unfold")
        if step <= 0:
            raise RuntimeError(f"unfold: step is {step} but must be > 0")
        if not 0 <= size <= self.shape[dim]:
            raise RuntimeError(f"unfold: maximum size for tensor at dimension {dim} is {self.shape[dim]} but size is {size}")
        arg = ((dim,), (size,), (step,), (1,))
        out = F.Windows.apply(self, dims=arg[0], kernel=arg[1], stride=arg[2], dilation=arg[3])
        return storage.register_view(self, out, ("windows", arg))

    def erf(self) -> Tensor:
        """The error function (accurate to about 1.2e-7; the gradient is exact)."""
        return self._float_unary(F.Erf)


def _check_index_range(index: Tensor, size: int, op: str, allow_negative: bool = True) -> None:
    """Raise IndexError for out-of-range indices whose values are already known.

    Computed, not-yet-realized indices are not forced here (the GPU clamps them
    instead of reading out of bounds)."""
    if not index.lazydata.value_known() or index.numel() == 0:
        return
    vals = index.lazydata.numpy()
    lo, hi = int(vals.min()), int(vals.max())
    lowest = -size if allow_negative else 0
    if lo < lowest or hi >= size:
        bad = lo if lo < lowest else hi
        raise IndexError(f"{op}: index {bad} is out of bounds for dimension with size {size}")


_TRIANGLES: dict = {}


def _triangle_mask(n: int, m: int, diagonal: int, upper: bool, device: str) -> LazyBuffer:
    """The bool (n, m) mask of triu/tril, uploaded once per shape and device and reused
    (so a training loop does not upload it every step)."""
    key = (n, m, diagonal, upper, device)
    if key not in _TRIANGLES:
        mask = ~np.tri(n, m, diagonal - 1, dtype=bool) if upper else np.tri(n, m, diagonal, dtype=bool)
        if len(_TRIANGLES) >= 64:
            _TRIANGLES.clear()
        _TRIANGLES[key] = LazyBuffer.load(mask, dtypes.bool_, device)
    return _TRIANGLES[key]


class ToDevice(F.Function):
    def forward(self, x: LazyBuffer, device: str) -> LazyBuffer:
        self.src_device, self.device = x.device, device
        if x.dtype == dtypes.float64 and device == "webgpu":
            raise TypeError("float64 is only supported on the numpy device; call .float() before .to('webgpu')")
        return LazyBuffer.load(x.numpy(), x.dtype, device)

    def backward(self, g: Tensor) -> Tensor:
        return ToDevice.apply(g, device=self.src_device)

    def jvp(self, t: Tensor) -> Tensor:
        return ToDevice.apply(t, device=self.device)


# ----- free functions that Tensor methods use (the rest are in creation.py) -----


def where(condition, input, other) -> Tensor:
    """Elementwise `input if condition else other`, broadcasting all three."""
    ref = next((t for t in (condition, input, other) if isinstance(t, Tensor)), None)
    if ref is None:
        raise TypeError("where: at least one argument must be a Tensor")
    cond = Tensor._coerce(condition, ref)
    if cond.dtype != dtypes.bool_:
        cond = cond != 0
    if isinstance(input, Tensor):
        a, b = input._operands(other, "where")
    elif isinstance(other, Tensor):
        a, b = other._operands(input, "where", reverse=True)
    else:
        dt = dtypes.promote_scalar(dtypes.promote_scalar(dtypes.bool_, input), other)
        a = Tensor._from_lazy(LazyBuffer.const(input, (), dt, cond.device))
        b = Tensor._from_lazy(LazyBuffer.const(other, (), dt, cond.device))
    if cond.device != a.device:
        raise RuntimeError(f"where: condition is on {cond.device} but the values are on {a.device}")
    shape = broadcast_shapes(cond.shape, a.shape, b.shape, op="where")
    return F.Where.apply(cond._broadcast_to(shape), a._broadcast_to(shape), b._broadcast_to(shape))


def triu(input: Tensor, diagonal: int = 0) -> Tensor:
    """The upper triangle of the last two dims; the rest zeroed (torch.triu)."""
    return input.triu(diagonal)


def tril(input: Tensor, diagonal: int = 0) -> Tensor:
    """The lower triangle of the last two dims; the rest zeroed (torch.tril)."""
    return input.tril(diagonal)


def erf(input: Tensor) -> Tensor:
    """The error function, elementwise (torch.erf)."""
    return input.erf()


def masked_fill(input: Tensor, mask: Tensor, value) -> Tensor:
    """`input` with `value` where `mask` is True (torch.masked_fill)."""
    return input.masked_fill(mask, value)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Values from start to end (exclusive) in steps, like torch.arange."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    if dtype is None:
        dtype = dtypes.default_float if any(isinstance(v, float) for v in (start, end, step)) else dtypes.int64
    dtype = dtypes.to_dtype(dtype)
    n = max(0, math.ceil((end - start) / step))
    values = start + np.arange(n, dtype=np.float64) * step
    return Tensor(values.astype(dtype.np), dtype=dtype, device=device, requires_grad=requires_grad)


from . import indexing  # noqa: E402  (indexing builds on Tensor)


def scatter(input: Tensor, dim: int, index: Tensor, src=None, value=None, reduce: str | None = None) -> Tensor:
    """`input` with src (or value) written at index along dim (torch.scatter)."""
    return input.scatter(dim, index, src, value=value, reduce=reduce)


def scatter_add(input: Tensor, dim: int, index: Tensor, src: Tensor) -> Tensor:
    """`input` with src added at index along dim (torch.scatter_add)."""
    return input.scatter_add(dim, index, src)


def scatter_reduce(input: Tensor, dim: int, index: Tensor, src: Tensor, reduce: str, *, include_self: bool = True) -> Tensor:
    """`input` with src reduced into it at index along dim (torch.scatter_reduce)."""
    return input.scatter_reduce(dim, index, src, reduce, include_self=include_self)


def index_add(input: Tensor, dim: int, index: Tensor, source: Tensor, alpha=1) -> Tensor:
    """`input` with alpha * source added at the rows index along dim (torch.index_add)."""
    return input.index_add(dim, index, source, alpha=alpha)


def index_copy(input: Tensor, dim: int, index: Tensor, source: Tensor) -> Tensor:
    """`input` with source copied into the rows index along dim (torch.index_copy)."""
    return input.index_copy(dim, index, source)


def index_fill(input: Tensor, dim: int, index: Tensor, value) -> Tensor:
    """`input` with the rows index along dim set to value (torch.index_fill)."""
    return input.index_fill(dim, index, value)


__all__ = ["Tensor", "where", "scatter", "scatter_add", "index_add", "index_copy", "index_fill", "arange", "broadcast_shapes", "MinMax", "triu", "tril", "erf", "masked_fill"]
