"""Where the bytes go: arena, parameters in SRAM and flash, per tensor."""
from __future__ import annotations

from tte.ir.graph import Graph
from tte.ir.types import Role, Value
from tte.memory.planner import MemoryPlan
from tte.ops.slice_channels import trained_size


def sram_bytes(v: Value) -> int:
    """SRAM bytes of a trainable parameter or optimizer state: for a partially trained weight
    and its state only the trained channels (the rest of the weight stays in flash)."""
    return trained_size(v) * v.dtype.itemsize


def _bytes(g: Graph, *roles: Role) -> int:
    return sum(sram_bytes(v) for v in g.values.values() if v.role in roles)


def memory_report(train: Graph, train_plan: MemoryPlan, forward_plan: MemoryPlan) -> dict:
    """The arena is shared by the training step and inference, so it is the larger plan."""
    arena = max(train_plan.arena_bytes, forward_plan.arena_bytes)
    sram = {
        "arena": arena,
        "trainable_parameters": _bytes(train, Role.trainable, Role.partial),
        "optimizer_state": _bytes(train, Role.state),
        # the sample sits in the arena (tte.memory.planner); what else the step takes
        "inputs": sum(train.values[n].nbytes for n in train.inputs if n not in train_plan.offsets),
    }
    return {
        "arena_bytes": arena,
        "training_arena_bytes": train_plan.arena_bytes,
        "training_lower_bound_bytes": train_plan.lower_bound,
        "inference_arena_bytes": forward_plan.arena_bytes,
        "flash_bytes": _bytes(train, Role.frozen, Role.const) + sum(
            v.nbytes - sram_bytes(v) for v in train.values.values() if v.role is Role.partial),
        "sram": sram,
        "sram_bytes": sum(sram.values()),
        "arena_tensors": [
            {"name": b.values[0], "shares": b.values[1:], "offset": b.offset, "bytes": b.size,
             "first_node": b.start, "last_node": b.end}
            for b in train_plan.buffers],
    }


def with_constant_tables(memory: dict, nbytes: int) -> dict:
    """memory with the C project's constant tables added to flash: per-channel requantization
    multipliers, scales and QAS factors are decided by the C emitters, not stored in the IR."""
    return {**memory, "constant_tables_bytes": nbytes, "flash_bytes": memory["flash_bytes"] + nbytes}
