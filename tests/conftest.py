"""Shared pytest fixtures and hooks."""
from __future__ import annotations

from collections import Counter

import pytest

_ONNX_NODE_TALLY = pytest.StashKey[dict]()


@pytest.fixture(scope="session")
def onnx_node_tally(pytestconfig: pytest.Config) -> dict:
    """Outcome counts of the onnx backend node cases, printed in the terminal summary."""
    return pytestconfig.stash.setdefault(
        _ONNX_NODE_TALLY, {"passed": 0, "failed": 0, "rejected": Counter()})


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    tally = config.stash.get(_ONNX_NODE_TALLY, None)
    if tally is None:
        return
    rejected: Counter = tally["rejected"]
    verdict = f"{tally['failed']} failed" if tally["failed"] else "all passed"
    reasons = ", ".join(f"{reason}: {n}" for reason, n in sorted(rejected.items()))
    terminalreporter.write_line(
        f"ONNX backend node cases: {tally['passed'] + tally['failed']} ran, {verdict}; "
        f"{sum(rejected.values())} rejected as unsupported ({reasons})")
