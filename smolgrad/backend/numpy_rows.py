"""The "rows" kernel kind on the NumPy device: its parts in turn (see engine.kernel.RowsArg).

NumPy gains nothing from keeping a row in registers, so a row kernel runs as the
reductions and the elementwise kernel it was fused from, exactly as without the fusion."""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

from ..engine.kernel import Kernel, local_slots

PLAN_CACHE_SIZE = 256
_plans: OrderedDict = OrderedDict()  # part's code -> its plan (see numpy_backend._Plan)


def run_rows(k: Kernel, buffers: list, run_kernel: Callable, make_plan: Callable, empty) -> list:
    """The output buffers of row kernel `k` (in k.outs' order): `run_kernel(part, local
    buffers, plan, empty)` runs each part over the kernel's local slots."""
    local = [buffers[s] for s in local_slots(k.outs, k.srcs)]
    for part in k.arg.parts:
        for o, buf in zip(part.outs, run_kernel(part, local, _plan(part, make_plan), empty)):
            local[o.slot] = buf
    return local[: len(k.outs)]


def _plan(part: Kernel, make_plan: Callable):
    plan = _plans.get(part.code)
    if plan is None:
        plan = _plans[part.code] = make_plan(part)
        if len(_plans) > PLAN_CACHE_SIZE:
            _plans.popitem(last=False)
    else:
        _plans.move_to_end(part.code)
    return plan
