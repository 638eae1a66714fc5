"""Cost of a training step on a target: the instructions each node took (a profiled firmware
run, FirmwareResult.node_instructions) beside its multiply-accumulates (tte.cost), summed
per layer kind and direction."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CostRow:
    kind: str
    direction: str
    nodes: int
    macs: int
    instructions: int

    @property
    def macs_per_instruction(self) -> float:
        return self.macs / self.instructions if self.instructions else 0.0


def cost_rows(nodes: list[dict], node_instructions: dict[int, int]) -> list[CostRow]:
    """One row per (layer kind, direction), in order of first appearance; nodes are
    tte.cost.node_costs(graph) or report.json's schedule."""
    rows: dict[tuple[str, str], CostRow] = {}
    for i, node in enumerate(nodes):
        key = (node["layer"], node["direction"])
        row = rows.setdefault(key, CostRow(*key, 0, 0, 0))
        row.nodes += 1
        row.macs += node["macs"]
        row.instructions += node_instructions.get(i, 0)
    return list(rows.values())


def format_rows(rows: list[CostRow], step: int) -> list[str]:
    """A text table, the rows over 0.5% of the step (or with MACs) first-appearance order."""
    lines = [f"{'layer':<12} {'direction':<16} {'nodes':>5} {'MACs':>12} "
             f"{'instructions':>14} {'MAC/instr':>9}"]
    for r in rows:
        if r.macs or r.instructions >= 0.005 * step:
            mpi = f"{r.macs_per_instruction:9.3f}" if r.macs else ""
            lines.append(f"{r.kind:<12} {r.direction:<16} {r.nodes:>5} {r.macs:>12,} "
                         f"{r.instructions:>14,} {mpi}")
    return lines
