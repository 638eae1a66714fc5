"""Graph-to-graph passes; each is followed by the verifier."""
from tte.passes.core import eliminate_dead_nodes, run_passes, schedule_updates_early
from tte.passes.fuse import fuse_gradient_updates

__all__ = ["eliminate_dead_nodes", "fuse_gradient_updates", "run_passes", "schedule_updates_early"]
