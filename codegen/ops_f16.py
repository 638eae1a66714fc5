"""The f16 form of a float node's C: the same call on the *_f16 kernel (kernels_c/tte_f16.h),
with the accumulation flag appended where the kernel sums."""
from __future__ import annotations

import re

from tte.errors import UnsupportedError
from tte.ir.graph import Node

# the f16 kernels that sum, and so take acc32 last
SUMMING = {"conv2d", "conv2d_grad_input", "depthwise_grad_input", "conv2d_grad_weight",
           "conv2d_grad_weight_sgd", "channel_sum", "channel_sum_sgd", "linear",
           "linear_grad_input", "linear_grad_weight", "linear_grad_weight_sgd", "avg_pool2d",
           "global_avg_pool"}
# the f16 kernels that exist, by IR op
KERNELS = SUMMING | {"add", "relu", "relu_grad", "clip", "clip_grad", "avg_pool2d_grad",
                     "max_pool2d", "max_pool2d_grad", "unreduce", "sgd_update", "reshape",
                     "slice_channels", "softmax_cross_entropy", "softmax_cross_entropy_grad"}
_CALL = re.compile(r"\b(tte_\w+)_f32\(")


def to_f16(node: Node, lines: list[str], acc32: bool) -> list[str]:
    """acc32: the node sums in float (tte.ir.precision.accumulate_fp32)."""
    if node.op not in KERNELS:
        raise UnsupportedError(f"the C backend has no f16 kernel for op {node.op!r}")
    acc = int(acc32)
    out = []
    for line in lines:
        line = _CALL.sub(r"\1_f16(", line)
        if node.op in SUMMING and line.endswith(");"):
            line = f"{line[:-2]}, {acc});"
        out.append(line)
    return out
