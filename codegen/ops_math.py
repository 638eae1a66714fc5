"""C emitters of the math ops (tte/ops/math.py), kernels in kernels_c/tte_math.h."""
from __future__ import annotations

from codegen.cexpr import ints
from codegen.ops import _bcast_strides, _reduce, _reshape, _softmax, _unary, emits
from tte.errors import UnsupportedError
from tte.ir.graph import Node
from tte.ir.types import DType
from tte.ops.math import COMPARISONS

BCAST_MAX_RANK = 6  # TTE_BCAST_MAX_RANK


# the same calls as for their counterparts: tte_<op>_f32(x, y, n), (x, y, outer, len, inner)
emits("exp", "log", "sqrt")(_unary)
emits("reduce_max")(_reduce)  # over the reduced axes (adjacent ones only)
emits("argmax")(_softmax)     # along attrs["axis"]; y is int32_t *
emits("stop_gradient")(_reshape)  # the same data: x's buffer when planned in place, or a copy


def _bcast_args(n: Node, c) -> str:
    """Each operand with its strides, then the output, its shape and rank."""
    y = n.outputs[0]
    sy = c.shape(y)
    if any(c.dtype(v) != DType.f32 for v in n.inputs):
        raise UnsupportedError(f"the C backend has {n.op} for f32 values only")
    if len(sy) > BCAST_MAX_RANK:
        raise UnsupportedError(f"the C backend broadcasts up to rank {BCAST_MAX_RANK}; "
                               f"{n.op} gives {list(sy)}")
    operands = "".join(f"{c.p(v)}, {ints(_bcast_strides(c.shape(v), sy))}, " for v in n.inputs)
    return f"{operands}{c.p(y)}, {ints(sy)}, {max(len(sy), 1)}"


@emits(*COMPARISONS)
def _compare(n, c):
    return [f"tte_compare_bcast_f32(TTE_CMP_{n.op.upper()}, {_bcast_args(n, c)});"]


@emits("maximum", "minimum", "where")
def _select(n, c):
    return [f"tte_{n.op}_bcast_f32({_bcast_args(n, c)});"]
