"""Run a float graph in half precision: every f32 value becomes f16, its data rounded."""
from __future__ import annotations

import numpy as np

from tte.errors import TTEError
from tte.ir.graph import Graph
from tte.ir.types import DType

ACCUMULATE = ("fp16", "fp32")


def to_fp16(fwd: Graph, accumulate: str = "fp16") -> Graph:
    """A copy of the forward graph with f16 activations and parameters (so its gradients,
    updates and optimizer state are f16 too). accumulate: how f16 kernels sum, in a half
    accumulator ("fp16", PULP-TrainLib's choice) or in float ("fp32")."""
    if accumulate not in ACCUMULATE:
        raise TTEError(f"accumulate={accumulate!r}: choose one of {ACCUMULATE}")
    if any(v.dtype not in (DType.f32, DType.i32) or v.quant is not None
           for v in fwd.values.values()):
        raise TTEError("precision='fp16' converts float models; this one has int8 tensors "
                       "(an MCU backbone converts from precision='fp32' weights)")
    g = fwd.copy()
    g.accumulate = accumulate
    for name, v in g.values.items():
        if v.dtype == DType.f32:
            v.dtype = DType.f16
            if name in g.data:
                g.data[name] = g.data[name].astype(np.float16)
    return g
