"""Firmware shared by the MCU targets: what a generated C project needs to become a program
that trains on samples in flash, and how to read what it prints.

A target (targets/cortex_m, targets/riscv) supplies fw_io.h's functions in its startup
code, the compiler, the linker script and the emulator (targets/firmware/target.py);
everything here is target-neutral.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tte.errors import TTEError

FIRMWARE_DIR = Path(__file__).resolve().parent
CTYPE_NUMPY = {"float": np.float32, "tte_f16": np.float16, "int8_t": np.int8,
               "int32_t": np.int32, "uint8_t": np.uint8}
DTYPE_BYTES = {"f32": 4, "f16": 2, "i32": 4, "i8": 1, "u8": 1}


@dataclass
class ProjectInfo:
    """What the firmware needs to know of one generated C project."""
    name: str                   # C prefix: tte_<name>_train_step
    directory: Path
    source: Path
    x_ctype: str                # C element type of the sample
    x_shape: tuple[int, ...]
    y_ctype: str                # C element type of the forward pass's output
    cross_entropy: bool         # else MSE with a float target of out_shape
    out_shape: tuple[int, ...]
    classes: int
    trainable: list[str]
    elem_bytes: list[int]       # per trainable tensor
    memory: dict                # report.json's memory section

    @property
    def x_dtype(self) -> np.dtype:
        return np.dtype(CTYPE_NUMPY[self.x_ctype])


def _ctypes(header: Path, name: str) -> tuple[str, str]:
    """The C element types of the sample and of the forward pass's output."""
    m = re.search(rf"int tte_{name}_forward\(const (\w+) \*x, (\w+) \*logits\)",
                  header.read_text())
    if not m or not {m.group(1), m.group(2)} <= set(CTYPE_NUMPY):
        raise TTEError(f"{header} does not declare tte_{name}_forward(const T *x, U *logits)")
    return m.group(1), m.group(2)


def info_from_program(prog: Any, project: Any) -> ProjectInfo:
    """From a tte.Program and the codegen.CProject it generated."""
    fwd, train = prog.forward_graph, prog.training_graph
    out = fwd.values[fwd.outputs[0]].shape
    x_t, y_t = _ctypes(project.header, project.name)
    return ProjectInfo(project.name, project.directory, project.source,
                       x_t, fwd.values[fwd.inputs[0]].shape, y_t, prog.loss == "cross_entropy", out, out[-1], list(project.trainable),
                       [train.values[t].dtype.itemsize for t in project.trainable],
                       project.memory)


def info_from_dir(directory: str | Path) -> ProjectInfo:
    """From the output directory of `tte compile` (the C project and report.json)."""
    from tte.report import load_report
    d = Path(directory).resolve()
    report = load_report(str(d))
    if "c" not in report:
        raise TTEError(f"{d} holds no C project (report.json has no 'c' entry); run "
                       f"`tte compile MODEL -o {directory}` first")
    name = report["c"]["name"]
    header, source = d / report["c"]["header"], d / report["c"]["source"]
    for f in (header, source):
        if not f.exists():
            raise TTEError(f"{f} is missing; run `tte compile MODEL -o {directory}` again")
    dtypes = {t["name"]: t["dtype"] for t in report["tensors"]}
    x_shape, target_shape = (tuple(s) for s in list(report["inputs"].values())[:2])
    xent = report["loss"] == "cross_entropy"
    classes = _classes_from_header(header, name)
    out = (x_shape[0], classes) if xent else target_shape
    x_t, y_t = _ctypes(header, name)
    return ProjectInfo(name, d, source, x_t, x_shape, y_t, xent, out, classes,
                       report["trainable"], [DTYPE_BYTES[dtypes[t]] for t in report["trainable"]],
                       report["memory"])


def _classes_from_header(header: Path, name: str) -> int:
    m = re.search(rf"#define TTE_{name.upper()}_OUTPUT_SIZE (\d+)", header.read_text())
    if not m:
        raise TTEError(f"{header} does not define TTE_{name.upper()}_OUTPUT_SIZE")
    return int(m.group(1))


def default_samples(info: ProjectInfo, count: int = 4, seed: int = 0) -> tuple[np.ndarray,
                                                                                np.ndarray]:
    """Deterministic pseudo-random samples, for a firmware built without a data set."""
    rng = np.random.default_rng(seed)
    shape = (count,) + info.x_shape[1:]
    if info.x_dtype.kind == "f":
        xs = rng.uniform(-1, 1, shape).astype(np.float32)
    else:
        info_i = np.iinfo(info.x_dtype)
        xs = rng.integers(info_i.min, info_i.max + 1, shape).astype(info.x_dtype)
    if info.cross_entropy:
        return xs, (np.arange(count) % info.classes).astype(np.int32)
    return xs, rng.uniform(-1, 1, (count,) + info.out_shape[1:]).astype(np.float32)


def load_samples(path: str | Path, info: ProjectInfo) -> tuple[np.ndarray, np.ndarray]:
    """An .npz with `x` (samples, with or without the batch axis of 1) and `labels`
    (class indices, or MSE targets)."""
    try:
        data = np.load(path)
        xs, labels = data["x"], data["labels"]
    except (OSError, ValueError, KeyError) as e:
        raise TTEError(f"cannot read samples from {path}: need an .npz with arrays 'x' and "
                       f"'labels' ({e})") from None
    return xs, labels


def check_samples(info: ProjectInfo, xs: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """xs as (N,) + the sample shape without its batch axis, in the C type; labels as (N,)
    int32 class indices or (N, ...) float32 targets."""
    xs = np.asarray(xs)
    one = info.x_shape[1:]
    if xs.shape[1:] == info.x_shape:
        xs = xs.reshape((xs.shape[0],) + one)
    if xs.ndim == 0 or xs.shape[1:] != one or len(xs) == 0:
        raise TTEError(f"samples have shape {xs.shape}; expected (N,) + {one}")
    labels = np.asarray(labels)
    if info.cross_entropy:
        labels = labels.reshape(-1)
        if labels.dtype.kind == "f" and np.any(labels != np.round(labels)):
            raise TTEError("labels must be integer class indices")
        if np.any((labels < 0) | (labels >= info.classes)):
            raise TTEError(f"labels must lie in [0, {info.classes})")
        labels = labels.astype(np.int32)
    else:
        labels = labels.astype(np.float32).reshape((len(xs),) + info.out_shape[1:])
    if len(labels) != len(xs):
        raise TTEError(f"{len(xs)} samples but {len(labels)} labels")
    return np.ascontiguousarray(xs, info.x_dtype), labels


def _c_values(arr: np.ndarray) -> str:
    flat = arr.reshape(-1)
    if flat.dtype.kind == "f":  # hex floats: exact (a half's value is a float's too)
        items = [f"{float(v).hex()}f" for v in flat]
    else:
        items = [str(int(v)) for v in flat]
    return ",\n".join(", ".join(items[i:i + 16]) for i in range(0, len(items), 16))


def _target_decl(info: ProjectInfo, count: int) -> str:
    if info.cross_entropy:
        return f"int32_t fw_samples_label[{count}]"
    return f"float fw_samples_target[{count * int(np.prod(info.out_shape))}]"


def write_sources(info: ProjectInfo, xs: np.ndarray, labels: np.ndarray, steps: int,
                  out_dir: Path, forward_xs: np.ndarray | None = None) -> list[Path]:
    """main.c and samples.c for `steps` training steps over the samples (in a loop), then
    the forward pass on each of forward_xs (checked like xs)."""
    n, size = len(xs), int(np.prod(info.x_shape))
    forward_xs = np.zeros((0,) + xs.shape[1:], xs.dtype) if forward_xs is None else forward_xs
    samples = out_dir / "samples.c"
    f16 = '#include "tte_f16.h"\n\n' if info.x_ctype == "tte_f16" else ""
    fwd = f"\nconst {info.x_ctype} fw_forward_x[{len(forward_xs) * size}] = {{\n" \
          f"{_c_values(forward_xs)}}};\n" if len(forward_xs) else ""
    samples.write_text(
        f"/* {n} training samples in flash, generated by TTE. */\n#include <stdint.h>\n\n{f16}"
        f"const {info.x_ctype} fw_samples_x[{n * size}] = {{\n"
        f"{_c_values(xs)}}};\n\nconst {_target_decl(info, n)} = {{\n{_c_values(labels)}}};\n"
        f"{fwd}")
    arg = "fw_samples_label[i % NUM_SAMPLES]" if info.cross_entropy else \
        f"fw_samples_target + (i % NUM_SAMPLES) * {int(np.prod(info.out_shape))}"
    subst = {"NAME": info.name, "NAME_UPPER": info.name.upper(), "STEPS": str(steps),
             "NUM_SAMPLES": str(n), "FORWARD_COUNT": str(len(forward_xs)),
             "X_T": info.x_ctype, "Y_T": info.y_ctype, "TARGET_DECL": _target_decl(info, n),
             "TARGET_ARG": arg, "ELEM_BYTES": ", ".join(map(str, info.elem_bytes)) or "0"}
    text = (FIRMWARE_DIR / "main.c.in").read_text()
    for key, value in subst.items():
        text = text.replace(f"@{key}@", value)
    main = out_dir / "main.c"
    main.write_text(text)
    return [main, samples]


@dataclass
class FirmwareResult:
    """What one firmware run printed."""
    losses: np.ndarray          # float32, one per step
    params: list[bytes]         # the trainable tensors' bytes after the last step
    checksum: int               # FNV-1a over params, as computed on the device
    status: int                 # the exit status the firmware reported
    output: str
    step_instructions: np.ndarray  # per step (int64), counter readings x the target's scale
    # with TTE_PROFILE: per training-graph node, its instructions in the last step, less
    # the measured cost of an empty begin/end pair
    node_instructions: dict[int, int] | None = None
    logits: list[bytes] | None = None  # the forward pass's output per forward sample


def fnv1a(chunks: Sequence[bytes]) -> int:
    """FNV-1a (32 bit) over the concatenated bytes, as the firmware computes it."""
    h = 2166136261
    for chunk in chunks:
        for b in chunk:
            h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def parse_output(text: str, num_trainable: int, counter_scale: int = 1) -> FirmwareResult:
    """Read the lines main.c.in prints; raises TTEError if the run did not finish."""
    bits, counts, params = [], [], [bytearray() for _ in range(num_trainable)]
    logits: dict[int, bytearray] = {}
    checksum = status = overhead = None
    nodes: dict[int, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 7 and parts[0] == "step" and parts[2] == "loss":
            bits.append(int(parts[3], 16))
            counts.append(int(parts[6]))
        elif len(parts) == 2 and parts[0] == "overhead":
            overhead = int(parts[1])
        elif len(parts) == 3 and parts[0] == "node":
            nodes[int(parts[1])] = int(parts[2])
        elif len(parts) == 3 and parts[0] == "param":
            params[int(parts[1])] += bytes.fromhex(parts[2])
        elif len(parts) == 3 and parts[0] == "logits":
            logits.setdefault(int(parts[1]), bytearray()).extend(bytes.fromhex(parts[2]))
        elif len(parts) == 2 and parts[0] == "checksum":
            checksum = int(parts[1], 16)
        elif len(parts) == 2 and parts[0] == "exit":
            status = int(parts[1])
    if checksum is None or status is None:
        tail = "\n".join(text.splitlines()[-5:])
        raise TTEError(f"the firmware did not finish; its last output:\n{tail}")
    profile = None if overhead is None else \
        {k: max(n - overhead, 0) * counter_scale for k, n in nodes.items()}
    return FirmwareResult(np.array(bits, np.uint32).view(np.float32),
                          [bytes(p) for p in params], checksum, status, text,
                          np.array(counts, np.int64) * counter_scale, profile,
                          [bytes(logits[k]) for k in sorted(logits)])
