"""Numpy reference interpreter: executes any IR graph node by node with the ops' references."""
from __future__ import annotations

from typing import Mapping

import numpy as np

from tte.errors import TTEError
from tte.ir.graph import Graph
from tte.ops.registry import get_op


def initial_state(graph: Graph, dtype: np.dtype | None = None) -> dict[str, np.ndarray]:
    """Fresh copies of every persistent value; optimizer state starts at zero."""
    state = {}
    for name, v in graph.values.items():
        if not v.role.persistent:
            continue
        arr = graph.data[name] if name in graph.data else np.zeros(v.shape, v.dtype.numpy)
        state[name] = cast(arr, dtype).copy()
    return state


def cast(arr: np.ndarray, dtype: np.dtype | None) -> np.ndarray:
    """Float arrays to dtype (for a high-precision run); integer arrays unchanged."""
    if dtype is None or not np.issubdtype(arr.dtype, np.floating):
        return arr
    return arr.astype(dtype, copy=False)


def run(graph: Graph, feeds: Mapping[str, np.ndarray], state: dict[str, np.ndarray] | None = None,
        dtype: np.dtype | None = None) -> dict[str, np.ndarray]:
    """Execute graph; in-place updates go to `state` (a fresh copy of graph.data if None)."""
    if state is None:
        state = initial_state(graph, dtype)
    env: dict[str, np.ndarray] = dict(state)
    for name in graph.inputs:
        if name not in feeds:
            raise TTEError(f"missing input {name!r}; the graph takes {graph.inputs}")
        v = graph.values[name]
        arr = np.asarray(feeds[name])
        if tuple(arr.shape) != v.shape:
            raise TTEError(f"input {name!r} has shape {tuple(arr.shape)}, expected {v.shape}")
        env[name] = cast(arr.astype(v.dtype.numpy, copy=False), dtype)
    for node in graph.nodes:
        opdef = get_op(node.op)
        args = list(node.inputs)
        while args and not args[-1]:
            args.pop()
        ins = [env[a] if a else None for a in args]
        half = any(x is not None and x.dtype == np.float16 for x in ins)
        if half:  # f16 kernels compute in float and round what they store
            ins = [cast(x, np.float32) if x is not None else None for x in ins]
        results = opdef.ref(*ins, **node.attrs)
        if opdef.mutates:
            targets = [node.inputs[k] for k in opdef.mutates if k < len(args) and args[k]]
        else:
            targets = node.outputs
        for name, new in zip(targets, results):
            if half:
                new = cast(new, graph.values[name].dtype.numpy)
            env[name] = new
            if opdef.mutates:
                state[name] = new
    return {name: env[name] for name in graph.outputs}
