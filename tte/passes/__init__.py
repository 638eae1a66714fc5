"""Graph-to-graph passes; each is followed by the verifier."""
from tte.passes.core import eliminate_dead_nodes, run_passes, schedule_updates_early

__all__ = ["eliminate_dead_nodes", "run_passes", "schedule_updates_early"]
