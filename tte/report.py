"""report.json: what the compiled training step contains and where its bytes go.

program_report() builds it (with the memory section of the planned graphs), load_report()
reads it back with its structure checked, and format_memory() prints its memory table.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from typing import TYPE_CHECKING, Any

from tte.errors import TTEError

if TYPE_CHECKING:
    from codegen.project import CProject
    from tte.program import Program

REPORT_FILE = "report.json"


def program_report(prog: "Program", project: "CProject | None" = None) -> dict:
    """The report of prog. Its memory section is project.memory when the C project was
    generated (the numbers the C code uses), else the same memory_report computed here."""
    g = prog.training_graph
    if project is not None:
        memory = project.memory
    else:  # the same figures the C project would report, without writing it
        from codegen.project import constant_tables_bytes
        from tte.memory import memory_report, plan_memory, with_constant_tables
        plans = plan_memory(g), plan_memory(prog.forward_graph)
        memory = with_constant_tables(memory_report(g, *plans), constant_tables_bytes(
            g, prog.forward_graph, *plans))
    report: dict[str, Any] = {
        "model": g.name,
        "target": prog.target,
        "loss": prog.loss,
        "optimizer": prog.optimizer,
        "inputs": {n: list(g.values[n].shape) for n in g.inputs},
        "nodes": dict(Counter(n.phase for n in g.nodes)),
        "trainable": prog.trainable,
        # persistent tensors (flash or SRAM); the arena's tensors are in memory.arena_tensors
        "tensors": [{"name": v.name, "shape": list(v.shape), "dtype": v.dtype.value,
                     "role": v.role.value, "bytes": v.nbytes}
                    for v in g.values.values() if v.role.persistent],
        "updates": updated_tensors(g),
        "memory": memory,
        # the training step's node order: arena_tensors' first_node/last_node index it
        "schedule": [_scheduled(g, n) for n in g.nodes],
    }
    if getattr(prog, "patch", None):
        report["patch"] = prog.patch  # tte.passes.patch.patch_graphs' summary
    if project is not None:
        report["c"] = {"name": project.name, "header": project.header.name,
                       "source": project.source.name}
    return report


def _scheduled(g, node) -> dict:
    """A node of the schedule: its op, phase, direction, layer kind and MACs (tte.cost); a
    half kernel that sums says how (tte.ir.precision)."""
    from codegen.ops_f16 import SUMMING
    from tte.cost import direction, layer_kind
    from tte.ir.precision import accumulate_fp32
    from tte.ir.types import DType
    from tte.ops.registry import node_macs
    entry = {"op": node.op, "phase": node.phase, "direction": direction(node),
             "layer": layer_kind(g, node), "macs": node_macs(g, node)}
    if node.op in SUMMING and any(g.values[v].dtype == DType.f16 for v in node.inputs if v):
        entry["accumulate"] = "fp32" if accumulate_fp32(g, node) else "fp16"
    return entry


def updated_tensors(g) -> list[dict]:
    """What each updated tensor costs in SRAM: the tensor itself (int8 weight, int32 bias or
    fp32), plus its fp32 master copy or momentum buffer when it has one; of a partially
    trained weight (its trained_channels given) only the trained channels count."""
    from tte.memory.report import sram_bytes
    from tte.ops.registry import get_op
    rows = []
    for node in g.nodes:
        targets = [node.inputs[k] for k in get_op(node.op).mutates
                   if k < len(node.inputs) and node.inputs[k]]
        if not targets:
            continue
        param, extra = g.values[targets[0]], [g.values[t] for t in targets[1:]]
        # an fp32 state of an integer tensor is its master copy; of a float one, momentum
        kind = "momentum_bytes" if param.dtype.is_float else "master_copy_bytes"
        extra_bytes = sum(sram_bytes(v) for v in extra)
        row = {"name": param.name, "dtype": param.dtype.value, "shape": list(param.shape),
               "update": node.op, "bytes": sram_bytes(param), kind: extra_bytes,
               "sram_bytes": sram_bytes(param) + extra_bytes}
        if "train_channels" in param.meta:
            part = param.meta["train_channels"]
            row["trained_channels"] = {"axis": part["axis"], "channels": part["channels"]}
        rows.append(row)
    return rows


# --- reading it back -----------------------------------------------------------------

_MEMORY_INTS = ("arena_bytes", "training_arena_bytes", "training_lower_bound_bytes",
                "inference_arena_bytes", "flash_bytes", "sram_bytes")
_SRAM_PARTS = ("arena", "trainable_parameters", "optimizer_state", "inputs")
_TENSOR_INTS = ("offset", "bytes", "first_node", "last_node")


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _problem(report: Any) -> str | None:
    """What is wrong with a parsed report.json, or None."""
    if not isinstance(report, dict):
        return "it is not a JSON object"
    if not isinstance(report.get("model"), str):
        return "it has no model name"
    mem = report.get("memory")
    if not isinstance(mem, dict):
        return "it has no memory section (written by an older tte?)"
    for key in _MEMORY_INTS:
        if not _is_int(mem.get(key)):
            return f"memory.{key} is missing or not an integer"
    sram = mem.get("sram")
    if not isinstance(sram, dict) or not all(_is_int(sram.get(k)) for k in _SRAM_PARTS):
        return "memory.sram must give " + ", ".join(_SRAM_PARTS) + " in bytes"
    tensors = mem.get("arena_tensors")
    if not isinstance(tensors, list):
        return "memory.arena_tensors is missing"
    for i, t in enumerate(tensors):
        if not (isinstance(t, dict) and isinstance(t.get("name"), str)
                and all(_is_int(t.get(k)) for k in _TENSOR_INTS)
                and isinstance(t.get("shares", []), list)):
            return f"memory.arena_tensors[{i}] needs name, " + ", ".join(_TENSOR_INTS)
    patch = report.get("patch", {})
    if not (isinstance(patch, dict) and all(isinstance(patch.get(k, {}), dict)
                                            for k in ("training", "inference"))):
        return "patch must map training and inference to their splits"
    schedule = report.get("schedule", [])
    if not (isinstance(schedule, list) and all(isinstance(s, dict) for s in schedule)):
        return "schedule must be a list of nodes"
    return None


def load_report(directory: str) -> dict:
    """DIR/report.json as written by `tte compile`, or a TTEError saying what is wrong."""
    path = os.path.join(directory, REPORT_FILE)
    if not os.path.isdir(directory):
        raise TTEError(f"{directory!r} is not a directory; pass the output directory of "
                       "`tte compile MODEL -o DIR`")
    try:
        with open(path, encoding="utf-8") as f:
            report = json.load(f)
    except FileNotFoundError:
        raise TTEError(f"{path} does not exist; run `tte compile MODEL -o {directory}` "
                       "first") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TTEError(f"cannot read {path}: {e}") from None
    problem = _problem(report)
    if problem:
        raise TTEError(f"{path} is not a tte report: {problem}; recompile with `tte compile`")
    return report


# --- the memory table ----------------------------------------------------------------

SORT_KEYS = ("offset", "size", "first")


def nbytes(n: int) -> str:
    """12,345 B (12.1 KiB)."""
    if n < 1024:
        return f"{n:,} B"
    unit, div = ("MiB", 1 << 20) if n >= 1 << 20 else ("KiB", 1 << 10)
    return f"{n:,} B ({n / div:.1f} {unit})"


def producer_phase(report: dict, t: dict) -> str | None:
    """Phase of the node that first writes arena tensor t, if the report has the schedule."""
    schedule = report.get("schedule") or []
    if 0 <= t["first_node"] < len(schedule):
        phase = schedule[t["first_node"]].get("phase")
        return phase if isinstance(phase, str) else None
    return None


def format_memory(report: dict, sort: str = "offset") -> str:
    """Memory totals and one row per arena buffer of the training step."""
    mem = report["memory"]
    sram = mem["sram"]
    lb, train = mem["training_lower_bound_bytes"], mem["training_arena_bytes"]
    over = f"+{(train - lb) / lb:.1%}" if lb else "n/a"
    rows = [
        ("flash: frozen weights and constants", mem["flash_bytes"]),
        ("SRAM total", mem["sram_bytes"]),
        ("  arena", sram["arena"]),
        ("  trainable parameters", sram["trainable_parameters"]),
        ("  optimizer state", sram["optimizer_state"]),
        ("  inputs", sram["inputs"]),
        ("arena (training step and inference share it)", mem["arena_bytes"]),
        ("  training step", train),
        ("  training step lower bound", lb),
        ("  inference", mem["inference_arena_bytes"]),
    ]
    texts = [nbytes(n) for _, n in rows]
    lw, nw = max(len(r[0]) for r in rows), max(len(t.split(" (")[0]) for t in texts)
    lines = [f"{report['model']}: memory of the compiled training step", ""]
    for (label, _), text in zip(rows, texts):
        num, _, rest = text.partition(" (")
        line = f"  {label:<{lw}}  {num:>{nw}}" + (f" ({rest}" if rest else "")
        if label == "  training step":
            line += f"   {over} over the lower bound"
        lines.append(line)

    updates = report.get("updates", [])
    if updates:
        lines += ["", f"updated tensors ({len(updates)}): SRAM each costs (tensor + master copy "
                      "or momentum)"]
        for u in updates:
            extra = u.get("master_copy_bytes") or u.get("momentum_bytes") or 0
            what = " + fp32 master copy" if u.get("master_copy_bytes") else \
                " + momentum" if extra else ""
            lines.append(f"  {u['name']:<{max(len(v['name']) for v in updates)}}  "
                         f"{u['dtype']:>3} {u['bytes']:>9,} B{what and f'{what} {extra:,} B'}"
                         f"  = {u['sram_bytes']:,} B")
    tensors = list(mem["arena_tensors"])
    key = {"offset": lambda t: (t["offset"], t["first_node"]),
           "size": lambda t: (-t["bytes"], t["offset"]),
           "first": lambda t: (t["first_node"], t["offset"])}[sort]
    tensors.sort(key=key)
    order = {"offset": "by offset", "size": "largest first", "first": "by first node"}[sort]
    lines += ["", f"arena buffers of the training step, {order} ({len(tensors)} buffers)",
              "  nodes: first write..last read; shares: values written in place into it"]
    table = [("offset", "bytes", "end", "nodes", "phase", "name")]
    for t in tensors:
        name = t["name"] + (f"  shares: {', '.join(t['shares'])}" if t.get("shares") else "")
        table.append((f"{t['offset']:,}", f"{t['bytes']:,}", f"{t['offset'] + t['bytes']:,}",
                      f"{t['first_node']}..{t['last_node']}",
                      producer_phase(report, t) or "", name))
    widths = [max(len(r[i]) for r in table) for i in range(5)]
    for r in table:
        lines.append("  " + "  ".join(c.rjust(w) if i < 3 else c.ljust(w)
                                      for i, (c, w) in enumerate(zip(r, widths))) + "  " + r[5])
    return "\n".join(line.rstrip() for line in lines)


def format_patch(patch: dict) -> str:
    """The patch section: per graph the split, its arena and its recomputation."""
    lines = [f"patch-based first stage (patch={json.dumps(patch.get('spec'))}):"]
    for name in ("training", "inference"):
        p = patch.get(name)
        if not p:
            continue
        if not p.get("applied"):
            lines.append(f"  {name:<9}  whole maps, arena {p.get('arena_bytes', 0):,} B "
                         f"({p.get('reason', '')})")
            continue
        before, after = p["arena_bytes_before"], p["arena_bytes"]
        lines.append(f"  {name:<9}  first {p['nodes']} nodes (up to {p['stage_output']}) on "
                     f"{p['tiles']}x{p['tiles']} tiles: arena {before:,} -> {after:,} B "
                     f"({(after - before) / max(before, 1):+.1%}), stage MACs "
                     f"{p['macs_before']:,} -> {p['macs_after']:,} "
                     f"(+{p['macs_overhead_pct']:.1f}% recomputed)")
    return "\n".join(lines)
