"""Patch-based execution of a graph's first, high-resolution layers (as in MCUNetV2).

The first `nodes` nodes of a graph form the stage: spatial ops (convolutions incl. depthwise,
pooling, constant pads, elementwise ops, residual adds) with one value that leaves it. The
stage output is cut into a tiles x tiles grid; for each tile, the region every stage value
needs is computed backwards (the bounding box over its consumers, clipped to the map), that
region of each stage input is cropped, every stage op runs on its region with padding only
on the sides where its window leaves the real map (so each output element sees exactly what
the whole-map op gives it), and the tile is pasted into the stage output in place. Only the
stage output and the current tile's small maps are alive at once; the receptive-field
overlap between tiles is recomputed, never stored.

Legal only when no value inside the stage is read after it (a saved activation or clamp mask
of the backward pass, a graph output): find_stage checks that.
"""
from __future__ import annotations

from dataclasses import dataclass

from tte.errors import TTEError
from tte.ir.graph import Graph, Node
from tte.ir.verify import verify

Region = tuple[int, int, int, int]  # h0, h1, w0, w1 (half-open)
Pads = list[int]                   # top, left, bottom, right

WINDOW_OPS = {"conv2d", "conv2d_s8", "avg_pool2d", "max_pool2d", "avg_pool2d_s8",
              "max_pool2d_s8", "pad"}
# ops whose output element (h, w) reads element (h, w) of the first input (the others are
# per-channel parameters) or of every input ("all": same-shape activations, broadcast params)
POINTWISE_OPS = {"relu": "first", "clip": "first", "sigmoid": "first", "tanh": "first",
                 "hard_sigmoid": "first", "hard_swish": "first", "neg": "first",
                 "quantize": "first", "dequantize": "first", "batch_norm": "first",
                 "add": "all", "sub": "all", "mul": "all", "div": "all", "add_s8": "all",
                 "concat": "all"}


@dataclass(frozen=True)
class Stage:
    nodes: int          # the stage is g.nodes[:nodes]
    output: str         # the one stage value read after the stage
    inputs: list[str]   # maps read by the stage and produced before it (cropped per tile)


@dataclass(frozen=True)
class PatchInfo:
    nodes: int
    tiles: int
    output: str
    macs_before: int    # of the stage on the whole map
    macs_after: int     # of all tiles together

    @property
    def overhead(self) -> float:
        """Recomputed MACs in % of the whole-map stage."""
        return 100.0 * (self.macs_after - self.macs_before) / max(self.macs_before, 1)


# --- geometry -------------------------------------------------------------------------------

def _window(g: Graph, node: Node) -> list[tuple[int, int, int, int]]:
    """(kernel, stride, pad before, dilation) along H and W of a window op."""
    a = node.attrs
    if node.op == "pad":
        p = a["pads"]
        return [(1, 1, p[2], 1), (1, 1, p[3], 1)]
    k = g.values[node.inputs[1]].shape[2:] if node.op.startswith("conv") else a["kernel"]
    d = a.get("dilations", [1, 1])
    return [(k[i], a["strides"][i], a["pads"][i], d[i]) for i in range(2)]


def _axis(o0: int, o1: int, k: int, s: int, p: int, d: int, size: int) -> tuple[int, ...]:
    """Input rows [i0, i1) that outputs [o0, o1) read, and the padding before and after."""
    lo, hi = o0 * s - p, (o1 - 1) * s - p + (k - 1) * d + 1
    i0, i1 = max(lo, 0), min(hi, size)
    return i0, i1, i0 - lo, hi - i1


def input_regions(g: Graph, node: Node, r: Region) -> list[tuple[int, Region, Pads | None]]:
    """(input index, region it needs, tile padding) per spatial input for output region r."""
    if node.op in WINDOW_OPS:
        h, w = g.values[node.inputs[0]].shape[2:]
        (kh, sh, ph, dh), (kw, sw, pw, dw) = _window(g, node)
        h0, h1, pt, pb = _axis(r[0], r[1], kh, sh, ph, dh, h)
        w0, w1, pl, pr = _axis(r[2], r[3], kw, sw, pw, dw, w)
        if h0 >= h1 or w0 >= w1:
            raise TTEError(f"{node.op} {node.outputs[0]}: a tile's windows lie wholly in the "
                           "padding; use fewer tiles")
        return [(0, (h0, h1, w0, w1), [pt, pl, pb, pr])]
    return [(k, r, None) for k in _spatial_inputs(g, node)]


def _spatial_inputs(g: Graph, node: Node) -> list[int]:
    if node.op in WINDOW_OPS or POINTWISE_OPS[node.op] == "first":
        return [0]
    return [k for k, v in enumerate(node.inputs) if v and not g.values[v].role.persistent]


def _check_node(g: Graph, node: Node) -> str | None:
    """Why node i cannot run on tiles, or None."""
    a = node.attrs
    if node.op not in WINDOW_OPS and node.op not in POINTWISE_OPS:
        return f"{node.op} is not a spatial op"
    y = g.values[node.outputs[0]]
    if len(y.shape) != 4:
        return "its output is not an NCHW map"
    if a.get("ceil_mode"):
        return "ceil_mode pooling"
    if node.op == "pad" and (a["mode"] != "constant" or any(a["pads"][k] for k in (0, 1, 4, 5))):
        return "a pad along batch or channels, or not constant"
    if node.op == "concat" and a["axis"] not in (1, -3):
        return "a concat that is not along channels"
    spatial = _spatial_inputs(g, node)
    for k, v in enumerate(node.inputs):
        if not v:
            continue
        x = g.values[v]
        if k in spatial:
            if len(x.shape) != 4 or (node.op not in WINDOW_OPS and x.shape[2:] != y.shape[2:]):
                return f"input {v} is not a map of the output's size"
        elif not x.role.persistent:
            return f"input {v} is a computed value in a parameter slot"
        elif node.op in ("add", "sub", "mul", "div") and x.size != 1 and \
                (len(x.shape) < 2 or x.shape[-2:] != (1, 1)):
            return f"parameter {v} varies over the map"
    return None


def macs(g: Graph, nodes: list[Node]) -> int:
    """Multiply-accumulates of convolutions (and window visits of pooling)."""
    total = 0
    for node in nodes:
        if node.op in WINDOW_OPS and node.op != "pad":
            y = g.values[node.outputs[0]].size
            if node.op.startswith("conv"):
                o, cg, kh, kw = g.values[node.inputs[1]].shape
                total += y * cg * kh * kw
            else:
                total += y * node.attrs["kernel"][0] * node.attrs["kernel"][1]
    return total


# --- the stage ------------------------------------------------------------------------------

def find_stage(g: Graph, nodes: int) -> Stage:
    """The stage g.nodes[:nodes], or a TTEError saying why it cannot run tile by tile."""
    if not 0 < nodes <= len(g.nodes):
        raise TTEError(f"a patch stage of {nodes} nodes: the graph has {len(g.nodes)}")
    stage = g.nodes[:nodes]
    for i, node in enumerate(stage):
        why = _check_node(g, node)
        if why:
            raise TTEError(f"node {i} ({node.op} -> {node.outputs[0]}) cannot run tile by "
                           f"tile: {why}")
    produced = [o for n in stage for o in n.outputs]
    uses = g.consumers()
    late = [v for v in produced if v in g.outputs or any(u >= nodes for u in uses.get(v, []))]
    if len(late) != 1:
        names = ", ".join(late[:4]) + (", ..." if len(late) > 4 else "")
        raise TTEError(f"the first {nodes} nodes hand on {len(late)} values ({names}); a patch "
                       "stage must hand on exactly one (values saved for the backward pass of "
                       "trained layers keep a stage whole)")
    out = late[0]
    if not any(n.outputs[0] == out for n in stage):
        raise TTEError(f"the stage hands on {out}, which is not a map")
    mine = set(produced)
    inputs = list(dict.fromkeys(n.inputs[k] for n in stage for k in _spatial_inputs(g, n)
                                if n.inputs[k] not in mine))
    return Stage(nodes, out, inputs)


def _union(a: Region | None, b: Region) -> Region:
    if a is None:
        return b
    return min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])


def needed_regions(g: Graph, st: Stage, tile: Region) -> dict[str, Region]:
    """Region of every stage value (and stage input) that output tile `tile` needs."""
    need: dict[str, Region] = {st.output: tile}
    for node in reversed(g.nodes[:st.nodes]):
        r = need.get(node.outputs[0])
        if r is None:
            continue  # feeds nothing the tile needs
        for k, reg, _ in input_regions(g, node, r):
            need[node.inputs[k]] = _union(need.get(node.inputs[k]), reg)
    return need


def tile_edges(size: int, tiles: int) -> list[int]:
    return [i * size // tiles for i in range(tiles + 1)]


class _TileBuilder:
    """Appends one tile's nodes to g; geometry comes from `orig`, the graph before the pass."""

    def __init__(self, g: Graph, orig: Graph, st: Stage) -> None:
        self.g, self.orig, self.st = g, orig, st

    def emit(self, op: str, inputs: list[str], attrs: dict, like: str, phase: str,
             outputs: list[str] | None = None) -> str:
        """A node whose output is a tile (or all) of the original value `like`."""
        name = self.g.add_node(op, inputs, attrs, outputs=outputs, name_hint=f"{like}.t",
                               phase=phase)[0]
        src = self.orig.values[like]
        self.g.values[name].quant, self.g.values[name].meta = src.quant, dict(src.meta)
        return name

    def tile(self, region: Region) -> str:
        """Compute the stage output's `region`; returns the value holding it."""
        need = needed_regions(self.orig, self.st, region)
        self.have: dict[str, tuple[str, Region]] = {}
        self.crops: dict[tuple[str, Region], str] = {}
        for node in self.orig.nodes[:self.st.nodes]:
            y = node.outputs[0]
            if y not in need:
                continue
            ins, attrs = list(node.inputs), dict(node.attrs)
            for k, reg, pads in input_regions(self.orig, node, need[y]):
                ins[k] = self.region_of(node.inputs[k], reg, node.phase)
                if pads is not None:
                    attrs["pads"] = [0, 0, pads[0], pads[1], 0, 0, pads[2], pads[3]] \
                        if node.op == "pad" else pads
            if "mask" in attrs:
                attrs["mask"] = False  # find_stage made sure nothing reads the mask
            self.have[y] = (self.emit(node.op, ins, attrs, y, node.phase), need[y])
        return self.region_of(self.st.output, region, self.orig.nodes[0].phase)

    def region_of(self, v: str, reg: Region, phase: str) -> str:
        """A value holding region reg of v: its tile, or a crop of its tile or whole map."""
        if v in self.have:
            name, at = self.have[v]
        else:
            h, w = self.orig.values[v].shape[2:]
            name, at = v, (0, h, 0, w)
        if at == reg:
            return name
        if (v, reg) not in self.crops:
            rel = [reg[0] - at[0], reg[1] - at[0], reg[2] - at[2], reg[3] - at[2]]
            self.crops[v, reg] = self.emit("crop", [name], {"region": rel}, v, phase)
        return self.crops[v, reg]


def patch_stage(g: Graph, nodes: int, tiles: int) -> PatchInfo:
    """Run g's first `nodes` nodes tile by tile on a tiles x tiles grid of their output."""
    st = find_stage(g, nodes)
    h, w = g.values[st.output].shape[2:]
    if not 2 <= tiles <= min(h, w):
        raise TTEError(f"a {tiles}x{tiles} tile grid on the {h}x{w} stage output "
                       f"{st.output}: use 2 to {min(h, w)} tiles per side")
    orig = g.copy()
    rest = g.nodes[nodes:]
    for node in g.nodes[:nodes]:
        for o in node.outputs:
            del g.values[o]
    g.nodes = []
    build = _TileBuilder(g, orig, st)
    hs, ws = tile_edges(h, tiles), tile_edges(w, tiles)
    dest: list[str] = []
    for i in range(tiles):
        for j in range(tiles):
            tile = build.tile((hs[i], hs[i + 1], ws[j], ws[j + 1]))
            last = (i, j) == (tiles - 1, tiles - 1)
            dest = [build.emit("paste", [tile] + dest,
                               {"shape": list(orig.values[st.output].shape),
                                "at": [hs[i], ws[j]]}, st.output, orig.nodes[nodes - 1].phase,
                               outputs=[st.output] if last else None)]
    added = g.nodes
    g.nodes = added + rest
    verify(g)
    return PatchInfo(nodes, tiles, st.output, macs(orig, orig.nodes[:nodes]), macs(g, added))


# --- choosing the split -----------------------------------------------------------------------

MAX_TILES = 8  # tiles per side tried by choose_patch
MIN_SCALE = 8  # candidate stages end at an output side of at least 1/8 of the input's


def candidate_stages(g: Graph) -> list[Stage]:
    """Legal stages of spatial ops from the first node until the map's side falls below
    1/MIN_SCALE of the stage input's (deeper stages recompute more than they save)."""
    first = g.values[g.nodes[0].inputs[0]] if g.nodes and g.nodes[0].inputs else None
    if first is None or len(first.shape) != 4:
        return []
    side = min(first.shape[2:])
    stages = []
    for k, node in enumerate(g.nodes, 1):
        if _check_node(g, node) or min(g.values[node.outputs[0]].shape[2:]) * MIN_SCALE \
                < side:
            break
        try:
            stages.append(find_stage(g, k))
        except TTEError:
            continue  # e.g. a residual branch is open here
    return stages


def choose_patch(g: Graph) -> tuple[int, int] | None:
    """(nodes, tiles) giving g the smallest arena, ties broken by the fewest recomputed
    MACs, then the shorter stage and fewer tiles; None when no split beats the whole map."""
    from tte.memory import plan_memory
    best, best_key = None, (plan_memory(g).arena_bytes, 0)
    for st in candidate_stages(g):
        for tiles in range(2, min(MAX_TILES, *g.values[st.output].shape[2:]) + 1):
            trial = g.copy()
            info = patch_stage(trial, st.nodes, tiles)
            key = (plan_memory(trial).arena_bytes, info.macs_after - info.macs_before)
            if key < best_key:
                best, best_key = (st.nodes, tiles), key
    return best


# --- the compile option -----------------------------------------------------------------------

PATCH_HELP = "patch='auto', None or {'nodes': K, 'tiles': N} (CLI: --patch auto or K:N)"


def parse_patch(spec: object) -> tuple[int, int] | str:
    """'auto' or (nodes, tiles) from a patch= argument (a dict, or 'K:N' text)."""
    if spec == "auto":
        return "auto"
    if isinstance(spec, str):
        k, sep, n = spec.partition(":")
        if sep and k.isdigit() and n.isdigit():
            return int(k), int(n)
    elif isinstance(spec, dict) and set(spec) == {"nodes", "tiles"} and all(
            isinstance(v, int) and not isinstance(v, bool) for v in spec.values()):
        return spec["nodes"], spec["tiles"]
    raise TTEError(f"patch={spec!r} is not understood; use {PATCH_HELP}")


def patch_graphs(graphs: dict[str, Graph], spec: object) -> dict:
    """Patch each graph in place (by name, e.g. training and inference) as spec says; returns
    the report's patch section: per graph the split, MACs and arena before and after, or why
    it stayed whole. 'auto' chooses per graph (choose_patch); an explicit (nodes, tiles)
    applies to every graph where it is legal and must be legal in one."""
    from tte.memory import plan_memory
    choice = parse_patch(spec)
    if choice == "auto" and not any(candidate_stages(g) for g in graphs.values()):
        first = next(iter(graphs.values())).nodes[0]
        raise TTEError(f"patch='auto': no stage of the model can run tile by tile (it must "
                       f"start with spatial ops on an NCHW map; node 0 is {first.op})")
    section, errors = {}, []
    for name, g in graphs.items():
        before = plan_memory(g).arena_bytes
        split = choose_patch(g) if choice == "auto" else choice
        if split is None:
            section[name] = {"applied": False, "arena_bytes": before,
                             "reason": "no split makes the arena smaller"}
            continue
        try:
            info = patch_stage(g, *split)
        except TTEError as e:
            errors.append(f"{name}: {e}")
            section[name] = {"applied": False, "arena_bytes": before, "reason": str(e)}
            continue
        section[name] = {"applied": True, "nodes": info.nodes, "tiles": info.tiles,
                         "stage_output": info.output, "arena_bytes_before": before,
                         "arena_bytes": plan_memory(g).arena_bytes,
                         "macs_before": info.macs_before, "macs_after": info.macs_after,
                         "macs_overhead_pct": round(info.overhead, 2)}
    if choice != "auto" and len(errors) == len(graphs):
        raise TTEError(f"patch={spec!r} cannot be applied: {errors[-1]}")
    return {"spec": spec if choice == "auto" else {"nodes": choice[0], "tiles": choice[1]},
            **section}
