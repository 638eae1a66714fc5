"""Graph-to-graph passes; each is followed by the verifier."""
from tte.passes.core import eliminate_dead_nodes, run_passes, schedule_updates_early
from tte.passes.fuse import fuse_gradient_updates
from tte.passes.patch import choose_patch, find_stage, patch_stage

__all__ = ["choose_patch", "eliminate_dead_nodes", "find_stage", "fuse_gradient_updates",
           "patch_stage", "run_passes", "schedule_updates_early"]
