"""Draw the arena over time from a report.json: one rectangle per buffer and its lifetime."""
from __future__ import annotations

import os

from tte.errors import TTEError

PHASE_COLORS = {"forward": "#4C78A8", "loss": "#B279A2", "backward": "#F58518",
                "update": "#54A24B"}


def plot_arena(report: dict, path: str) -> None:
    """PNG of the training step's arena: x = node index, y = byte offset."""
    try:
        from matplotlib.figure import Figure  # no pyplot: no global backend state
        from matplotlib.patches import Patch
        from matplotlib.ticker import FuncFormatter, MaxNLocator
    except ImportError:
        raise TTEError("--plot needs matplotlib: pip install matplotlib") from None
    from tte.report import producer_phase

    mem = report["memory"]
    tensors = mem["arena_tensors"]
    schedule = report.get("schedule") or []
    steps = max([1, len(schedule)] + [t["last_node"] + 1 for t in tensors])
    arena, lb = mem["arena_bytes"], mem["training_lower_bound_bytes"]
    phases = [producer_phase(report, t) for t in tensors]
    by_phase = all(p in PHASE_COLORS for p in phases)

    fig = Figure(figsize=(11, 6.5), layout="constrained")
    if schedule:
        ax, strip = fig.subplots(2, 1, sharex=True, height_ratios=[14, 1])
    else:
        ax, strip = fig.subplots(), None
    if by_phase:
        colors = [PHASE_COLORS[p] for p in phases]
    else:  # no schedule to tell the phase: color by size
        from matplotlib import colormaps
        biggest = max((t["bytes"] for t in tensors), default=1)
        colors = [colormaps["viridis"](0.15 + 0.8 * t["bytes"] / biggest) for t in tensors]
    ax.bar([t["first_node"] for t in tensors],
           [t["bytes"] for t in tensors],
           width=[t["last_node"] - t["first_node"] + 1 for t in tensors],
           bottom=[t["offset"] for t in tensors], align="edge", color=colors, alpha=0.85,
           edgecolor="black", linewidth=0.6)
    for t in tensors:  # name the buffers big enough to hold a label
        w, h = t["last_node"] - t["first_node"] + 1, t["bytes"]
        if arena and h >= 0.045 * arena and w >= 0.12 * steps:
            ax.text(t["first_node"] + w / 2, t["offset"] + h / 2, _short(t["name"], w, steps),
                    ha="center", va="center", fontsize=8, clip_on=True)

    ax.axhline(lb, color="crimson", linestyle="--", linewidth=1.3,
               label=f"lower bound {lb:,} B")
    if mem["training_arena_bytes"] != arena:
        ax.axhline(mem["training_arena_bytes"], color="gray", linestyle=":", linewidth=1,
                   label=f"training step's arena {mem['training_arena_bytes']:,} B")
    ax.axhline(arena, color="black", linewidth=0.8, label=f"arena {arena:,} B")
    ax.set_xlim(0, steps)
    ax.set_ylim(0, max(arena, 1) * 1.04)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{int(y):,}"))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("byte offset in the arena")
    ax.text(1.005, 0, "color: phase of the node\nthat writes the buffer" if by_phase else
            "color: buffer size\n(yellow: largest)", fontsize=8, transform=ax.transAxes,
            va="bottom")
    ax.grid(axis="y", alpha=0.3)
    handles, _ = ax.get_legend_handles_labels()
    if by_phase:
        seen = set(phases) | {s.get("phase") for s in schedule}
        handles += [Patch(color=c, label=p) for p, c in PHASE_COLORS.items() if p in seen]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.005, 1), fontsize=8,
              frameon=False)
    ax.set_title(f"{report['model']}: arena {arena:,} B "
                 f"(training step {mem['training_arena_bytes']:,} B, lower bound {lb:,} B, "
                 f"inference {mem['inference_arena_bytes']:,} B)", fontsize=10)
    last = strip if strip is not None else ax
    if strip is not None:
        strip.bar(range(len(schedule)), [1] * len(schedule), width=1, align="edge",
                  color=[PHASE_COLORS.get(s.get("phase"), "lightgray") for s in schedule])
        strip.set_yticks([])
        strip.set_ylabel("phase", rotation=0, ha="right", va="center", fontsize=8)
    last.set_xlabel("node index in the training step (a buffer spans first write..last read)")
    try:
        # a name without an extension still gets a PNG, at exactly that path
        fig.savefig(path, dpi=110, format=None if os.path.splitext(path)[1] else "png")
    except (OSError, ValueError) as e:
        raise TTEError(f"cannot write the plot {path!r}: {e}") from None


def _short(name: str, width: float, steps: int) -> str:
    room = max(6, int(120 * width / max(steps, 1)))
    return name if len(name) <= room else name[:room - 1] + "…"

