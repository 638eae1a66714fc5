"""Emit the C project of one compiled model: <name>.h, <name>.c (code, weights, arena)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codegen.cexpr import flt
import codegen.ops_s8  # noqa: F401  (registers the int8 emitters)
from codegen.ops import EMITTERS, positions_table
from codegen.ops_f16 import to_f16
from tte.errors import UnsupportedError
from tte.ir.graph import Graph
from tte.ir.precision import accumulate_fp32
from tte.ir.types import DType, Role
from tte.memory import ALIGN, MemoryPlan, memory_report, plan_memory, with_constant_tables
from tte.ops.slice_channels import split, trained_size

KERNELS_DIR = Path(__file__).resolve().parents[1] / "kernels_c"
# tte_f16.h (a GNU C type) comes with the header of a model that has f16 tensors
KERNEL_HEADERS = tuple(sorted(h.name for h in KERNELS_DIR.glob("*.h") if h.name != "tte_f16.h"))
CTYPES = {DType.f32: "float", DType.f16: "tte_f16", DType.i32: "int32_t", DType.i8: "int8_t", DType.u8: "uint8_t"}
_STORAGE = {Role.frozen: ("static const", "w"), Role.const: ("static const", "k"),
            Role.trainable: ("static", "t"), Role.partial: ("static", "t"),
            Role.state: ("static", "s")}


@dataclass
class CProject:
    name: str                  # C prefix: functions are tte_<name>_train_step, ...
    directory: Path
    header: Path
    source: Path
    cdef: str                  # the header's declarations, for cffi
    trainable: list[str]       # IR names, in the order of tte_<name>_trainable_data(i)
    memory: dict               # memory_report of the planned graphs


def c_identifier(text: str) -> str:
    ident = re.sub(r"\W", "_", text)
    return ident if ident and not ident[0].isdigit() else f"m_{ident}"


def _c_string(text: str) -> str:
    out = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\?' else
                  "".join(f"\\{b:03o}" for b in ch.encode()) for ch in text)
    return f'"{out}"'


def ctype(dtype: DType) -> str:
    if dtype not in CTYPES:
        raise UnsupportedError(f"the C backend has no {dtype.value} tensors")
    return CTYPES[dtype]


def _array_body(arr: np.ndarray) -> str:
    flat = arr.reshape(-1)
    if flat.dtype == np.float32:
        items = [flt(v) for v in flat]
    elif flat.dtype == np.float16:  # every half is a float: the cast is exact
        items = [f"(tte_f16){flt(v)}" for v in flat]
    elif flat.dtype == np.float64:
        items = [repr(float(v)) for v in flat]
    elif flat.dtype == np.int32:
        items = [str(int(v)) if v > -(1 << 31) else "INT32_MIN" for v in flat]
    else:
        items = [str(int(v)) for v in flat]
    rows = [", ".join(items[i:i + 8]) for i in range(0, len(items), 8)]
    return "{\n    " + ",\n    ".join(rows) + "\n}" if rows else "{0}"


class _Names:
    """A unique C symbol for every persistent value (weights, trainable parameters, state),
    and for the flash part of each partially trained weight (tte/ops/slice_channels.py)."""

    def __init__(self, train: Graph) -> None:
        self.symbol: dict[str, str] = {}
        self.frozen: dict[str, str] = {}
        self.taken: set[str] = set()
        for name, v in train.values.items():
            if v.role.persistent:
                self.symbol[name] = self._new(f"{_STORAGE[v.role][1]}_{c_identifier(name)}")
                if v.role is Role.partial:
                    self.frozen[name] = self._new(f"w_{c_identifier(name)}_frozen")
        self.split = {name: train.values[name].meta["train_channels"] for name in self.frozen}

    def _new(self, base: str) -> str:
        sym, k = base, 1
        while sym in self.taken:
            sym, k = f"{base}_{k}", k + 1
        self.taken.add(sym)
        return sym


class _Consts:
    """File-scope `static const` arrays requested by emitters (per-channel multipliers,
    scales), shared between functions and deduplicated by content."""

    def __init__(self) -> None:
        self.decls: list[str] = []
        self.by_key: dict[tuple, str] = {}
        self.nbytes = 0  # flash they take

    def symbol(self, arr: np.ndarray) -> str:
        arr = np.ascontiguousarray(arr)
        key = (arr.dtype.str, arr.tobytes())
        if key not in self.by_key:
            sym = f"k_const{len(self.by_key)}"
            ct = {"float32": "float", "float64": "double", "int32": "int32_t"}[arr.dtype.name]
            self.decls.append(f"static const {ct} {sym}[{max(arr.size, 1)}] = "
                              f"{_array_body(arr)};")
            self.by_key[key] = sym
            self.nbytes += max(arr.size, 1) * arr.itemsize
        return self.by_key[key]


class _Ctx:
    """Ctx of codegen.ops for one graph and its memory plan."""

    def __init__(self, g: Graph, plan: MemoryPlan, names: _Names, io: dict[str, str],
                 consts: _Consts) -> None:
        self.g, self.plan, self.names, self.io, self.consts = g, plan, names, io, consts

    def p(self, name: str) -> str:
        if not name:
            return "NULL"
        if name in self.io:
            return self.io[name]
        if name in self.names.symbol:
            return self.names.symbol[name]
        dtype = self.g.values[name].dtype
        addr = f"arena + {self.plan.offsets[name] // 4}"
        return f"({addr})" if dtype == DType.f32 else f"(({ctype(dtype)} *)({addr}))"

    def const(self, values, dtype: str) -> str:
        return self.consts.symbol(np.asarray(values, dtype))

    def dtype(self, name: str) -> DType:
        return self.g.values[name].dtype

    def split(self, name: str) -> str:
        part = self.names.split.get(name)
        if part is None:
            return "TTE_SPLIT_NONE"
        table = positions_table(self, part["channels"], self.shape(name)[part["axis"]])
        return f"(tte_split){{{self.names.frozen[name]}, {table}, {part['axis']}, " \
               f"{part['count']}}}"

    def shape(self, name: str) -> tuple[int, ...]:
        return self.g.values[name].shape

    def n(self, name: str) -> int:
        return self.g.values[name].size

    def same_buffer(self, a: str, b: str) -> bool:
        return a in self.plan.offsets and self.plan.offsets.get(a) == self.plan.offsets.get(b)


def _body(g: Graph, plan: MemoryPlan, names: _Names, io: dict[str, str],
          consts: _Consts, profile: bool = False) -> list[str]:
    """The nodes' C statements; profile: each node between TTE_PROFILE_BEGIN/END(index)."""
    ctx = _Ctx(g, plan, names, io, consts)
    lines = []
    for i, node in enumerate(g.nodes):
        emit = EMITTERS.get(node.op)
        if emit is None:
            raise UnsupportedError(f"the C backend has no kernel for op {node.op!r}")
        for v in node.inputs + node.outputs:
            if v:
                ctype(g.values[v].dtype)
        lines.append(f"    /* {i}: {node.op} ({node.phase}) */")
        out = emit(node, ctx)
        if any(g.values[v].dtype == DType.f16 for v in node.inputs if v):
            out = to_f16(node, out, accumulate_fp32(g, node))
        if profile:
            out = [f"TTE_PROFILE_BEGIN({i});", *out, f"TTE_PROFILE_END({i});"]
        lines += [f"    {line}" for line in out]
    return lines


def generate(train: Graph, forward: Graph, out_dir: str | Path, *, loss: str,
             name: str | None = None) -> CProject:
    """Write <name>.h and <name>.c into out_dir for this training graph and its forward graph."""
    name = c_identifier(name or train.name).lower()
    out = Path(out_dir).resolve()  # the C compiler may run from another directory
    out.mkdir(parents=True, exist_ok=True)
    train_plan, fwd_plan = plan_memory(train), plan_memory(forward)
    memory = memory_report(train, train_plan, fwd_plan)
    names = _Names(train)
    x, logits = forward.inputs[0], forward.outputs[0]
    target = train.inputs[1]
    is_xent = loss == "cross_entropy"
    target_arg = "int32_t label" if is_xent else "const float *target"
    x_t, y_t = ctype(forward.values[x].dtype), ctype(forward.values[logits].dtype)
    trainable = train.params(Role.trainable, Role.partial)
    prefix = f"tte_{name}"
    macro = prefix.upper()

    protos = [f"{x_t} *{prefix}_input(void);",
              f"int {prefix}_train_step(const {x_t} *x, {target_arg}, float *loss);",
              f"int {prefix}_forward(const {x_t} *x, {y_t} *logits);",
              f"int32_t {prefix}_num_trainable(void);",
              f"const char *{prefix}_trainable_name(int32_t i);",
              f"void *{prefix}_trainable_data(int32_t i);",
              f"int32_t {prefix}_trainable_size(int32_t i);"]
    header = "\n".join([
        f"/* {name}: training step and inference generated by TTE. Do not edit. */",
        f"#ifndef {macro}_H", f"#define {macro}_H", "", "#include <stdint.h>",
        *(['#include "tte_f16.h"'] if "tte_f16" in (x_t, y_t) else []), "",
        f"#define {macro}_INPUT_SIZE {forward.values[x].size}",
        f"#define {macro}_OUTPUT_SIZE {forward.values[logits].size}",
        f"#define {macro}_ARENA_BYTES {memory['arena_bytes']}",
        f"#define {macro}_NUM_TRAINABLE {len(trainable)}",
        f"#define {macro}_TRAIN_NODES {len(train.nodes)}", "",
        "/* The sample lives in the arena at input(): write it there and pass input() as x",
        "   to save the copy (the step then consumes it), or pass any other buffer.",
        "   One SGD step on one sample; *loss gets the loss before the update.",
        "   Returns 0, or TTE_EBADLABEL (1) without changing anything for a bad label.",
        "   trainable_data(i) points at trainable tensor i (its C type as in the source),",
        "   trainable_size(i) is its number of elements (of a partially trained weight: its",
        "   trained channels, which are all it holds). */",
        *protos, "", "#endif", ""])

    src = [f"/* {name}: generated by TTE. Every shape, offset and constant is resolved. */",
           "#include <math.h>", "#include <stddef.h>", "#include <string.h>",
           f'#include "{name}.h"',
           *[f'#include "{h}"' for h in KERNEL_HEADERS], "",
           f"/* every activation of both functions, at offsets fixed by the planner "
           f"(aligned to {ALIGN} bytes) */",
           f"static float arena[{max(memory['arena_bytes'] // 4, 1)}];", ""]
    for pname, v in train.values.items():
        if v.role.persistent:
            src += _persistent(pname, v, train, names)
    src.append("")

    consts = _Consts()
    io = {target: "labels" if is_xent else "target"}
    train_body = _load_sample(train, train_plan) + _body(train, train_plan, names, io, consts,
                                                         profile=True)
    fwd_body = _load_sample(forward, fwd_plan) + _body(forward, fwd_plan, names, {}, consts)
    memory = with_constant_tables(memory, consts.nbytes)
    src += consts.decls + [""]
    uses_rc = any("rc = " in line for line in train_body)
    src += [f"int {prefix}_train_step(const {x_t} *x, {target_arg}, float *loss)", "{"]
    if is_xent:
        src.append("    const int32_t *labels = &label;")
    if uses_rc:
        src.append("    int rc;")
    src += train_body
    src += [f"    *loss = *{_Ctx(train, train_plan, names, io, consts).p(train.outputs[0])};",
            "    return TTE_OK;", "}", ""]
    fwd_ctx = _Ctx(forward, fwd_plan, names, {}, consts)
    src += [f"int {prefix}_forward(const {x_t} *x, {y_t} *logits)", "{"]
    src += fwd_body
    src += [f"    memcpy(logits, {fwd_ctx.p(logits)}, {forward.values[logits].nbytes});",
            "    return TTE_OK;", "}", ""]
    src += [f"{x_t} *{prefix}_input(void) {{ return ({x_t} *)arena; }}", ""]
    src += _accessors(prefix, trainable, names, train)

    header_path, source_path = out / f"{name}.h", out / f"{name}.c"
    header_path.write_text(header)
    source_path.write_text("\n".join(src))
    # cffi cannot parse _Float16; its callers pass half buffers as void pointers
    cdef = "\n".join(protos).replace("tte_f16 *", "void *")
    return CProject(name, out, header_path, source_path, cdef, trainable, memory)


def _persistent(pname: str, v, g: Graph, names: _Names) -> list[str]:
    """The C array(s) of a persistent value. A partially trained weight is two: its trained
    channels (SRAM) and the rest (flash, static const); its optimizer state covers the
    trained channels only."""
    qual = _STORAGE[v.role][0]
    where = {Role.frozen: "flash", Role.const: "flash"}.get(v.role, "SRAM")
    part = v.meta.get("train_channels")
    data = g.data.get(pname)
    trained = data
    lines = []
    if part is not None and data is not None:
        trained, frozen = split(data, part["axis"], part["channels"])
        if v.role is Role.partial:
            lines += [f"/* {pname}: untrained channels of a partial weight, flash */",
                      f"static const {ctype(v.dtype)} {names.frozen[pname]}[{frozen.size}] = "
                      f"{_array_body(frozen)};"]
    decl = f"{qual} {ctype(v.dtype)} {names.symbol[pname]}[{max(trained_size(v), 1)}]"
    if trained is None:
        return lines + [f"{decl}; /* {pname}: optimizer state, SRAM, starts at zero */"]
    what = f", trained channels {part['channels']} of axis {part['axis']}" if part else ""
    return lines + [f"/* {pname}: {v.role.value} {list(v.shape)}{what}, {where} */",
                    f"{decl} = {_array_body(trained)};"]


def constant_tables_bytes(train: Graph, forward: Graph, train_plan: MemoryPlan,
                          fwd_plan: MemoryPlan) -> int:
    """Flash bytes of the constant tables the emitters ask for (requantization multipliers,
    scales, QAS factors, channel tables), without writing a project."""
    names, consts = _Names(train), _Consts()
    _body(train, train_plan, names, {train.inputs[1]: "target"}, consts)
    _body(forward, fwd_plan, names, {}, consts)
    return consts.nbytes


def _load_sample(g: Graph, plan: MemoryPlan) -> list[str]:
    """Copy the caller's sample to its arena place (offset 0) unless it is already there."""
    x = g.inputs[0]
    if x not in plan.offsets:
        return []
    assert plan.offsets[x] == 0, "the planner pins the sample at offset 0"
    return [f"    if ((const void *)x != (const void *)arena) "
            f"memcpy(arena, x, {g.values[x].nbytes});"]


def _accessors(prefix: str, trainable: list[str], names: _Names, g: Graph) -> list[str]:
    k = len(trainable)
    lines = [f"int32_t {prefix}_num_trainable(void) {{ return {k}; }}", ""]
    if not k:
        return lines + [f"const char *{prefix}_trainable_name(int32_t i) {{ (void)i; return NULL; }}",
                        f"void *{prefix}_trainable_data(int32_t i) {{ (void)i; return NULL; }}",
                        f"int32_t {prefix}_trainable_size(int32_t i) {{ (void)i; return 0; }}", ""]
    return lines + [
        "static const char *const trainable_names[] = {"
        + ", ".join(_c_string(t) for t in trainable) + "};",
        "static void *const trainable_data[] = {"
        + ", ".join(names.symbol[t] for t in trainable) + "};",
        "static const int32_t trainable_sizes[] = {"
        + ", ".join(str(trained_size(g.values[t])) for t in trainable) + "};",
        f"const char *{prefix}_trainable_name(int32_t i) "
        f"{{ return i >= 0 && i < {k} ? trainable_names[i] : NULL; }}",
        f"void *{prefix}_trainable_data(int32_t i) "
        f"{{ return i >= 0 && i < {k} ? trainable_data[i] : NULL; }}",
        f"int32_t {prefix}_trainable_size(int32_t i) "
        f"{{ return i >= 0 && i < {k} ? trainable_sizes[i] : 0; }}", ""]
