"""onnx's own backend node tests, run through load_onnx and the reference interpreter.

Every case whose ops are all in SUPPORTED_ONNX_OPS runs; a case the frontend
rejects with UnsupportedError (float64 inputs, an attribute TTE lacks, ...) is
skipped and tallied by reason (see the terminal summary), not failed. Wheels
that ship without backend/test/data/node get the same cases from onnx's
generator, onnx.backend.test.case.node, in memory.

The node tests feed shapes, axes, pads and clip bounds as graph inputs; TTE
needs them at build time, so a graph input used only in such a slot is baked
into an initializer with the case's value, as an exporter would write it.
"""
from __future__ import annotations

import glob
import os
import warnings
from collections import defaultdict

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from tte.errors import UnsupportedError
from tte.frontends.onnx_frontend import SUPPORTED_ONNX_OPS, load_onnx
from tte.interpreter import run

NODE_DIR = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "node")
Case = tuple[str, onnx.ModelProto, list[np.ndarray], list[np.ndarray]]
# onnx stores hand-rounded expected outputs (4 decimals) for these; onnx.reference
# agrees with us to float precision
ATOL = {"test_averagepool_2d_ceil_last_window_starts_on_pad": 1e-4}


CONSTANT_SLOTS = {"Clip": {1, 2}, "Dropout": {1, 2}, "Pad": {1, 2, 3}, "ReduceMean": {1},
                  "ReduceSum": {1}, "Reshape": {1}, "Slice": {1, 2, 3, 4}, "Split": {1},
                  "Squeeze": {1}, "Unsqueeze": {1}}


def _bake(model: onnx.ModelProto, inputs: list[np.ndarray]) -> tuple[onnx.ModelProto, list]:
    """Turn graph inputs that only feed constant slots into initializers."""
    slots = defaultdict(set)
    for node in model.graph.node:
        for k, name in enumerate(node.input):
            slots[name].add(k in CONSTANT_SLOTS.get(node.op_type, ()))
    baked = {v.name: x for v, x in zip(model.graph.input, inputs) if slots[v.name] == {True}}
    if not baked:
        return model, inputs
    out = onnx.ModelProto()
    out.CopyFrom(model)
    keep = [v for v in model.graph.input if v.name not in baked]
    del out.graph.input[:]
    out.graph.input.extend(keep)
    out.graph.initializer.extend(numpy_helper.from_array(x, n) for n, x in baked.items())
    return out, [x for v, x in zip(model.graph.input, inputs) if v.name not in baked]


def _supported(model: onnx.ModelProto) -> bool:
    return all(n.domain in ("", "ai.onnx") and n.op_type in SUPPORTED_ONNX_OPS
               for n in model.graph.node)


def _read_tensor(path: str) -> np.ndarray:
    tensor = onnx.TensorProto()
    with open(path, "rb") as f:
        tensor.ParseFromString(f.read())
    return numpy_helper.to_array(tensor)


def _cases_from_disk() -> list[Case]:
    cases = []
    for path in sorted(glob.glob(os.path.join(NODE_DIR, "*", "model.onnx"))):
        model = onnx.load(path)
        if not _supported(model):
            continue
        data = os.path.join(os.path.dirname(path), "test_data_set_0")
        tensors = [[_read_tensor(p) for p in sorted(glob.glob(os.path.join(data, f"{kind}_*.pb")),
                                                     key=lambda p: int(p[:-3].rsplit("_", 1)[1]))]
                   for kind in ("input", "output")]
        cases.append((os.path.basename(os.path.dirname(path)), model, *tensors))
    return cases


def _cases_generated() -> list[Case]:
    from onnx.backend.test.case import node as node_cases
    with warnings.catch_warnings():  # the generators overflow casts on purpose
        warnings.simplefilter("ignore")
        generated = node_cases.collect_testcases()

    def arrays(xs: list) -> list[np.ndarray]:
        return [numpy_helper.to_array(x) if isinstance(x, onnx.TensorProto) else np.asarray(x)
                for x in xs]
    return sorted((c.name, c.model, *map(arrays, c.data_sets[0])) for c in generated
                  if _supported(c.model))


CASES = _cases_from_disk() if os.path.isdir(NODE_DIR) else _cases_generated()


def test_cases_found():
    assert len(CASES) > 100


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_node_case(case: Case, onnx_node_tally: dict) -> None:
    name, model, inputs, outputs = case
    model, inputs = _bake(model, inputs)
    try:
        g = load_onnx(model)
    except UnsupportedError as exc:
        onnx_node_tally["rejected"][getattr(exc, "reason", type(exc).__name__)] += 1
        pytest.skip(f"rejected: {exc}")
    try:
        got = run(g, {v.name: x for v, x in zip(model.graph.input, inputs)})
        assert len(g.outputs) == len(outputs)
        for out, want in zip(g.outputs, outputs):
            assert (got[out].shape, got[out].dtype) == (want.shape, want.dtype), out
            np.testing.assert_allclose(got[out], want, rtol=1e-5, atol=ATOL.get(name, 1e-6),
                                       err_msg=out)
    except Exception:
        onnx_node_tally["failed"] += 1
        raise
    onnx_node_tally["passed"] += 1
