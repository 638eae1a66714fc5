"""Compile and link TTE firmware for an MCU target: ELF, .bin, .hex."""
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

from targets.firmware import FIRMWARE_DIR, ProjectInfo, write_sources
from targets.firmware.target import McuTarget, Part
from tte.errors import TTEError

KERNELS_DIR = FIRMWARE_DIR.parents[1] / "kernels_c"
# -fstack-usage: a generated train_step's frame is about 1 KB, the int8/fp32 kernels' under
# 300 B, the fp16 conv's about 4.3 KB; the stack is reserved in the link, so SRAM counts it
STACK_BYTES = 8192
CACHE_DIR = Path(os.environ.get("TTE_BUILD_CACHE", Path.home() / ".cache" / "tte")) / "mcu"


@dataclass
class Firmware:
    elf: Path
    bin: Path
    hex: Path
    target: McuTarget
    part: Part
    model_symbols: set[str]  # the data symbols the generated <name>.c defines
    profile: bool            # built with per-node instruction counters (TTE_PROFILE)


def _run(cmd: Sequence[str], what: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(cmd), capture_output=True, text=True)
    if proc.returncode != 0:
        raise TTEError(f"{what} failed:\n{(proc.stderr or proc.stdout).strip()[-3000:]}")
    return proc


def _compile(target: McuTarget, src: Path, include_dirs: Sequence[Path],
             defines: Sequence[str]) -> Path:
    """One object, cached by the content of the source, every header (or included .inc body)
    it may include and the command, so a rebuild only compiles what changed (the model's
    source is the slow one)."""
    probe = target.compile_command(src, Path("OBJ"), include_dirs, defines)
    digest = hashlib.sha256(" ".join(probe).encode() + src.read_bytes())
    for h in sorted(p for d in include_dirs for g in ("*.h", "*.inc") for p in Path(d).glob(g)):
        digest.update(h.read_bytes())
    obj = CACHE_DIR / f"{src.stem}-{digest.hexdigest()[:16]}.o"
    if not obj.exists():
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = obj.with_suffix(f".{os.getpid()}.tmp")
        _run(target.compile_command(src, tmp, include_dirs, defines), f"compiling {src.name}")
        os.replace(tmp, obj)
    return obj


def linker_script(target: McuTarget, part: Part, out: Path) -> Path:
    text = (target.directory / "link.ld.in").read_text()
    for key, value in {"PART": part.name, "FLASH_ORIGIN": f"0x{part.flash_origin:08x}",
                       "FLASH_KB": str(part.flash_kb), "RAM_ORIGIN": f"0x{part.ram_origin:08x}",
                       "RAM_KB": str(part.ram_kb), "STACK": str(STACK_BYTES)}.items():
        text = text.replace(f"@{key}@", value)
    path = out / "link.ld"
    path.write_text(text)
    return path


def _overflow_error(stderr: str, part: Part, model: str) -> TTEError | None:
    """GNU ld says "region `RAM' overflowed by N bytes", ld.lld "section '.bss' will not
    fit in region 'RAM': overflowed by N bytes"."""
    over: dict[str, int] = {}
    for m in re.finditer(r"region [`'](\w+)'[^\n]*?overflowed by (\d+) bytes", stderr):
        over[m.group(1)] = max(over.get(m.group(1), 0), int(m.group(2)))
    if not over:
        return None
    size = {"FLASH": f"{part.flash_kb} KB flash", "RAM": f"{part.ram_kb} KB SRAM"}
    parts = [f"{size.get(r, r)} by {n:,} bytes" for r, n in over.items()]
    return TTEError(f"{model} does not fit the {part.name}: it overflows the "
                    f"{' and the '.join(parts)} (SRAM holds the arena, trainable tensors, "
                    f"optimizer state and a {STACK_BYTES:,} B stack; flash the code, frozen "
                    f"weights and samples). Train fewer tensors (a sparse-update scheme), "
                    f"use --patch auto, or a smaller input")


def build_firmware(info: ProjectInfo, target: McuTarget, xs: np.ndarray, labels: np.ndarray,
                   steps: int, out_dir: Path, part: Part | None = None, *,
                   profile: bool = False, defines: Sequence[str] = (),
                   forward_xs: np.ndarray | None = None) -> Firmware:
    """Build firmware that trains `steps` steps over (xs, labels), checked by
    targets.firmware.check_samples, then runs the forward pass on forward_xs (same checks);
    writes its sources and images into out_dir. profile:
    count each node's instructions in the last step (TTE_PROFILE); defines: extra -D
    macros for every source (e.g. TTE_NO_DSP to take the kernels' portable paths)."""
    part = part or target.part
    out_dir.mkdir(parents=True, exist_ok=True)
    main, samples = write_sources(info, xs, labels, steps, out_dir, forward_xs)
    kernels = sorted(KERNELS_DIR.glob("*.c"))
    incs = [info.directory, KERNELS_DIR, FIRMWARE_DIR]
    defs = [*defines, *(["TTE_PROFILE"] if profile else [])]
    jobs = [info.source, target.directory / "startup.c", main, samples, *kernels]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        objs = list(pool.map(lambda s: _compile(target, s, incs, defs), jobs))
    elf = out_dir / "firmware.elf"
    link = target.link_command(objs, linker_script(target, part, out_dir), elf,
                               out_dir / "firmware.map")
    proc = subprocess.run(link, capture_output=True, text=True)
    if proc.returncode != 0:
        raise _overflow_error(proc.stderr, part, info.name) or \
            TTEError(f"linking the firmware failed:\n{proc.stderr.strip()[-3000:]}")
    bin_, hex_ = elf.with_suffix(".bin"), elf.with_suffix(".hex")
    _run([target.tool("objcopy"), "-O", "binary", str(elf), str(bin_)], "objcopy")
    _run([target.tool("objcopy"), "-O", "ihex", str(elf), str(hex_)], "objcopy")
    nm = _run([target.tool("nm"), str(objs[0])], "nm").stdout
    symbols = {p[2] for p in (line.split() for line in nm.splitlines()) if len(p) == 3}
    return Firmware(elf, bin_, hex_, target, part, symbols, profile)
