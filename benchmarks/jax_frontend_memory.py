#!/usr/bin/env python
"""What tracing costs: the six test models written in JAX (tests/jax_models.py) against the
same models built as ONNX (tests/models.py), trained with update "full", SGD + momentum,
batch 1: IR nodes of the forward graph and the training step's planned arena, with the
ONNX batch-norms folded (TTE's default) and unfolded (as JAX models keep them: their scale
and bias are the user's parameters).

    python benchmarks/jax_frontend_memory.py   # a few seconds; writes results/jax_frontend_memory.md
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tte  # noqa: E402
from tests import jax_models, models  # noqa: E402

OPTIMIZER = {"lr": 0.01, "momentum": 0.9}


def arena(model, **kw) -> int:
    return tte.compile(model, optimizer=OPTIMIZER, **kw).report()["memory"]["arena_bytes"]


def main() -> None:
    rows = ["| model | JAX nodes | ONNX nodes | JAX arena | ONNX arena (BN folded) | "
            "ONNX arena (BN unfolded) |", "|---|---|---|---|---|---|"]
    for name, build in jax_models.MODELS.items():
        m = build()
        g = tte.from_jax(m.apply, m.params, np.zeros(m.input_shape, np.float32), name=name)
        onnx_model = models.MODELS[name]()
        rows.append(f"| {name} | {len(g.nodes)} | {len(tte.load_model(onnx_model).nodes)} | "
                    f"{arena(g):,} | {arena(onnx_model):,} | "
                    f"{arena(onnx_model, fold_batchnorm=False):,} |")
    table = "\n".join(rows)
    print(table)
    out = ROOT / "benchmarks" / "results" / "jax_frontend_memory.md"
    out.write_text(__doc__.split("\n\n")[0] + "\n\n" + table + "\n")


if __name__ == "__main__":
    main()
