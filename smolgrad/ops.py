"""The primitive op set of the lazy graph (DESIGN.md layer 3).

Everything a Tensor can do is composed from these. Backends implement each one.
"""

from __future__ import annotations

from enum import Enum, auto
from typing import NamedTuple


class Op(Enum):
    # Enum hashes members by name, in Python; graph building tests op-set membership for
    # every node, so hash by identity in C instead (members are singletons; equality is identity)
    __hash__ = object.__hash__

    # sources
    LOAD = auto()  # data uploaded from the host; always realized
    CONST = auto()  # a scalar (arg=value) of shape (), expanded by a view; inlined into kernels
    VIEW = auto()  # zero-copy movement: srcs=(base,), arg=View
    # unary elementwise
    NEG = auto()
    EXP = auto()
    LOG = auto()
    SQRT = auto()
    RECIP = auto()
    SIN = auto()
    COS = auto()
    TANH = auto()
    SIGMOID = auto()
    ABS = auto()
    SIGN = auto()
    FLOOR = auto()
    CEIL = auto()
    ROUND = auto()  # half to even, like torch.round
    TRUNC = auto()
    ASIN = auto()
    ACOS = auto()
    ATAN = auto()
    LOG1P = auto()  # log(1 + x), accurate for small x
    EXPM1 = auto()  # exp(x) - 1, accurate for small x
    CAST = auto()  # arg=target DType
    COPY = auto()  # identity: materialises a view contiguously
    # binary elementwise
    ADD = auto()
    SUB = auto()
    MUL = auto()
    DIV = auto()
    POW = auto()
    ATAN2 = auto()  # atan2(a, b): the angle of the point (b, a)
    MAX = auto()
    MIN = auto()
    LT = auto()
    LE = auto()
    GT = auto()
    GE = auto()
    EQ = auto()
    NE = auto()
    # ternary elementwise
    WHERE = auto()  # srcs=(cond: bool, a, b)
    # reductions over arg=axes (tuple), output keeps reduced dims as size 1
    SUM = auto()
    RMAX = auto()
    RMIN = auto()
    # others
    MATMUL = auto()  # srcs=(a: (*B, M, K), b: (*B, K, N)) with equal batch dims
    GATHER = auto()  # srcs=(src, index), arg=dim; out.shape == index.shape
    SCATTER_ADD = auto()  # srcs=(src, index), arg=dim; out = zeros(out.shape) then += at index
    PAD = auto()  # srcs=(x, ...), arg=(pads of each src: (((lo, hi), ...), ...), value); regions disjoint
    # srcs=(target, value), arg=View of value's shape into target: target with `value` written
    # at the view's positions, computed IN PLACE in target's buffer (storage.py decides when
    # that is safe: nothing else may read target's value any more)
    ASSIGN = auto()
    # fused attention (one kernel, the T x T scores never stored): arg=AttentionArg, see below
    ATTENTION = auto()
    # random numbers drawn on the device (counter-based: see smolgrad/philox.py)
    RAND = auto()  # srcs=(key0, key1, offset): int32 scalars expanded; arg=stream; floats in [0, 1)


UNARY = frozenset(
    {Op.NEG, Op.EXP, Op.LOG, Op.SQRT, Op.RECIP, Op.SIN, Op.COS, Op.TANH, Op.SIGMOID, Op.ABS, Op.SIGN, Op.CAST, Op.COPY}
    | {Op.FLOOR, Op.CEIL, Op.ROUND, Op.TRUNC, Op.ASIN, Op.ACOS, Op.ATAN, Op.LOG1P, Op.EXPM1}
)
COMPARE = frozenset({Op.LT, Op.LE, Op.GT, Op.GE, Op.EQ, Op.NE})
BINARY = frozenset({Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.POW, Op.ATAN2, Op.MAX, Op.MIN}) | COMPARE
TERNARY = frozenset({Op.WHERE})
# RAND computes each element from its own index and three scalars, so it fuses into its
# consumers like an elementwise op (recomputing it anywhere gives the same values)
RANDOM = frozenset({Op.RAND})
ELEMENTWISE = UNARY | BINARY | TERNARY | RANDOM
REDUCE = frozenset({Op.SUM, Op.RMAX, Op.RMIN})


class AttentionArg(NamedTuple):
    """What an ATTENTION node computes, over q (*B, L, D), k (*B, S, D), v (*B, S, Dv), with
    s = q k^T * scale (+ bias (*B, L, S) when `bias`) (j > i masked when `causal`) and
    p = softmax(s) over S:
    - part "forward": srcs (q, k, v[, bias]) -> (*B, L, Dv + 1): p v, then logsumexp(s);
    - part "backward_q": srcs (q, k, v, lse, delta, dout[, bias]) -> dq (*B, L, D);
    - part "backward_kv": the same srcs -> (*B, S, D + Dv): dk, then dv.
    lse and delta (rowsum(dout * out)) are (*B, L, 1)."""

    part: str
    scale: float
    causal: bool
    bias: bool
