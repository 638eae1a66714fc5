"""Compile and link TTE firmware for a Cortex-M target: ELF, .bin, .hex, and its sizes."""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from targets.cortex_m import STM32F746_QEMU, CortexM, Part, tool
from targets.firmware import FIRMWARE_DIR, ProjectInfo, write_sources
from tte.errors import TTEError

HERE = Path(__file__).resolve().parent
KERNELS_DIR = HERE.parents[1] / "kernels_c"
# the host's flags (targets/host/cbuild.py), so the same C computes the same bits
C_FLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off",
           "-mthumb", "-mfloat-abi=hard", "-ffunction-sections", "-fdata-sections",
           "-mfp16-format=ieee")  # _Float16 (kernels_c/tte_f16.h) exists on Arm only with it
# -fstack-usage: a generated train_step's frame is about 1 KB, the int8/fp32 kernels' under
# 300 B, the fp16 conv's about 4.3 KB; the stack is reserved in the link, so SRAM counts it
STACK_BYTES = 8192
CACHE_DIR = Path(os.environ.get("TTE_BUILD_CACHE", Path.home() / ".cache" / "tte")) / "cortex_m"


@dataclass
class Firmware:
    elf: Path
    bin: Path
    hex: Path
    target: CortexM
    part: Part
    model_symbols: set[str]  # the data symbols the generated <name>.c defines


def _run(cmd: Sequence[str], what: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(cmd), capture_output=True, text=True)
    if proc.returncode != 0:
        raise TTEError(f"{what} failed:\n{(proc.stderr or proc.stdout).strip()[-3000:]}")
    return proc


def _compile(target: CortexM, src: Path, include_dirs: Sequence[Path]) -> Path:
    """One object, cached by the content of the source, every header it may include and the
    flags, so a rebuild only compiles what changed (the model's source is the slow one)."""
    flags = list(C_FLAGS) + list(target.cpu_flags) + [f"-I{d}" for d in include_dirs]
    digest = hashlib.sha256(" ".join(flags).encode() + src.read_bytes())
    for h in sorted(p for d in include_dirs for p in Path(d).glob("*.h")):
        digest.update(h.read_bytes())
    obj = CACHE_DIR / f"{src.stem}-{digest.hexdigest()[:16]}.o"
    if not obj.exists():
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = obj.with_suffix(f".{os.getpid()}.tmp")
        _run([tool("gcc"), *flags, "-c", str(src), "-o", str(tmp)], f"compiling {src.name}")
        os.replace(tmp, obj)
    return obj


def _linker_script(part: Part, out: Path) -> Path:
    text = (HERE / "link.ld.in").read_text()
    for key, value in {"PART": part.name, "FLASH_ORIGIN": f"0x{part.flash_origin:08x}",
                       "FLASH_KB": str(part.flash_kb), "RAM_ORIGIN": f"0x{part.ram_origin:08x}",
                       "RAM_KB": str(part.ram_kb), "STACK": str(STACK_BYTES)}.items():
        text = text.replace(f"@{key}@", value)
    path = out / "link.ld"
    path.write_text(text)
    return path


def _overflow_error(stderr: str, part: Part, model: str) -> TTEError | None:
    over = {m.group(1): int(m.group(2))
            for m in re.finditer(r"region `(\w+)' overflowed by (\d+) bytes", stderr)}
    if not over:
        return None
    size = {"FLASH": f"{part.flash_kb} KB flash", "RAM": f"{part.ram_kb} KB SRAM"}
    parts = [f"{size.get(r, r)} by {n:,} bytes" for r, n in over.items()]
    return TTEError(f"{model} does not fit the {part.name}: it overflows the "
                    f"{' and the '.join(parts)} (SRAM holds the arena, trainable tensors, "
                    f"optimizer state and a {STACK_BYTES:,} B stack; flash the code, frozen "
                    f"weights and samples). Train fewer tensors (a sparse-update scheme), "
                    f"use --patch auto, or a smaller input")


def build_firmware(info: ProjectInfo, target: CortexM, xs: np.ndarray, labels: np.ndarray,
                   steps: int, out_dir: Path, part: Part = STM32F746_QEMU) -> Firmware:
    """Build firmware that trains `steps` steps over (xs, labels), checked by
    targets.firmware.check_samples; writes its sources and images into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    main, samples = write_sources(info, xs, labels, steps, out_dir)
    kernels = sorted(KERNELS_DIR.glob("*.c"))
    incs = [info.directory, KERNELS_DIR, FIRMWARE_DIR]
    jobs = [info.source, HERE / "startup.c", main, samples, *kernels]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        objs = list(pool.map(lambda s: _compile(target, s, incs), jobs))
    elf = out_dir / "firmware.elf"
    link = [tool("gcc"), *C_FLAGS, *target.cpu_flags, "-nostartfiles", "--specs=nano.specs",
            "--specs=nosys.specs", f"-T{_linker_script(part, out_dir)}", "-Wl,--gc-sections",
            f"-Wl,-Map={out_dir / 'firmware.map'}", *map(str, objs), "-lm", "-o", str(elf)]
    proc = subprocess.run(link, capture_output=True, text=True)
    if proc.returncode != 0:
        raise _overflow_error(proc.stderr, part, info.name) or \
            TTEError(f"linking the firmware failed:\n{proc.stderr.strip()[-3000:]}")
    bin_, hex_ = elf.with_suffix(".bin"), elf.with_suffix(".hex")
    _run([tool("objcopy"), "-O", "binary", str(elf), str(bin_)], "objcopy")
    _run([tool("objcopy"), "-O", "ihex", str(elf), str(hex_)], "objcopy")
    nm = _run([tool("nm"), str(objs[0])], "nm").stdout
    symbols = {p[2] for p in (line.split() for line in nm.splitlines()) if len(p) == 3}
    return Firmware(elf, bin_, hex_, target, part, symbols)
