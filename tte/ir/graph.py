"""Nodes and graphs. A graph is an ordered node list; the order is the schedule."""
from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from tte.ir.types import DType, Role, Value


@dataclass
class Node:
    op: str
    inputs: list[str]           # "" marks an absent optional input
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    phase: str = "forward"      # forward | loss | backward | update: for printing and reports


class Graph:
    """Values by name, the ordered nodes, and the initial data of persistent values."""

    def __init__(self, name: str = "model") -> None:
        self.name = name
        self.values: dict[str, Value] = {}
        self.nodes: list[Node] = []
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.data: dict[str, np.ndarray] = {}
        self.phase = "forward"  # phase given to nodes added from now on
        # sums of an f16 graph: "fp16" (a half accumulator, as PULP-TrainLib) or "fp32"
        self.accumulate = "fp16"
        self._counter = itertools.count()

    # --- construction -------------------------------------------------------
    def fresh(self, prefix: str) -> str:
        """A value name not used yet, derived from prefix."""
        if prefix not in self.values:
            return prefix
        while True:
            name = f"{prefix}.{next(self._counter)}"
            if name not in self.values:
                return name

    def add_value(self, value: Value) -> Value:
        if value.name in self.values:
            raise ValueError(f"value {value.name!r} defined twice")
        self.values[value.name] = value
        return value

    def add_input(self, name: str, shape: Iterable[int], dtype: DType = DType.f32) -> str:
        self.add_value(Value(name, tuple(int(d) for d in shape), dtype, Role.input))
        self.inputs.append(name)
        return name

    def add_param(self, name: str, data: np.ndarray, role: Role = Role.frozen,
                  dtype: DType | None = None) -> str:
        dtype = dtype or DType.from_numpy(data.dtype)
        self.add_value(Value(name, tuple(data.shape), dtype, role))
        self.data[name] = np.asarray(data, dtype=dtype.numpy, order="C")  # keeps 0-d 0-d
        return name

    def add_node(self, op: str, inputs: list[str], attrs: dict | None = None,
                 outputs: list[str] | None = None, phase: str | None = None,
                 name_hint: str | None = None) -> list[str]:
        """Append a node; output values are created from the op's shape rule."""
        from tte.ops.registry import get_op
        opdef = get_op(op)
        attrs = opdef.full_attrs(attrs or {})
        in_vals = [self.values[i] if i else None for i in inputs]
        types = opdef.infer(in_vals, attrs)
        if outputs is None:
            hint = name_hint or op
            outputs = [self.fresh(hint if len(types) == 1 else f"{hint}.{k}")
                       for k in range(len(types))]
        for out, (shape, dtype) in zip(outputs, types):
            self.add_value(Value(out, tuple(int(d) for d in shape), dtype))
        self.nodes.append(Node(op, list(inputs), list(outputs), attrs, phase or self.phase))
        return list(outputs)

    def emit(self, op: str, inputs: list[str], attrs: dict | None = None, **kw: Any) -> str:
        """add_node for single-output ops; returns the output name."""
        outs = self.add_node(op, inputs, attrs, **kw)
        assert len(outs) == 1, op
        return outs[0]

    # --- queries ------------------------------------------------------------
    def params(self, *roles: Role) -> list[str]:
        roles = roles or (Role.frozen, Role.trainable, Role.partial)
        return [n for n, v in self.values.items() if v.role in roles]

    def producers(self) -> dict[str, int]:
        return {o: i for i, n in enumerate(self.nodes) for o in n.outputs}

    def consumers(self) -> dict[str, list[int]]:
        uses: dict[str, list[int]] = {}
        for i, n in enumerate(self.nodes):
            for v in n.inputs:
                if v:
                    uses.setdefault(v, []).append(i)
        return uses

    def copy(self) -> "Graph":
        g = Graph(self.name)
        g.values = copy.deepcopy(self.values)
        g.nodes = copy.deepcopy(self.nodes)
        g.inputs = list(self.inputs)
        g.outputs = list(self.outputs)
        g.phase = self.phase
        g.accumulate = self.accumulate
        g.data = dict(self.data)  # arrays are shared read-only; runners copy what they mutate
        return g

    def __str__(self) -> str:
        from tte.ir.printer import format_graph
        return format_graph(self)
