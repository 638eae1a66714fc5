"""Run Cortex-M firmware on QEMU's MPS2 boards and measure the linked ELF."""
from __future__ import annotations

import subprocess
from pathlib import Path

from targets.cortex_m import tool
from targets.cortex_m.build import Firmware
from targets.firmware import FirmwareResult, parse_output
from tte.errors import TTEError


def run_firmware(fw: Firmware, num_trainable: int, timeout: float = 600) -> FirmwareResult:
    """Boot the ELF on the target's board; semihosting carries its output and exit status."""
    t = fw.target
    cmd = [tool("qemu"), "-machine", t.qemu_machine, "-cpu", t.qemu_cpu, "-nographic",
           "-monitor", "none", "-semihosting-config", "enable=on,target=native",
           "-kernel", str(fw.elf)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise TTEError(f"{fw.elf} did not finish within {timeout:.0f} s on QEMU "
                       f"{t.qemu_machine}") from None
    result = parse_output(proc.stdout + proc.stderr, num_trainable)
    if proc.returncode != result.status:
        raise TTEError(f"QEMU exited with {proc.returncode}, the firmware reported "
                       f"{result.status}:\n{proc.stderr.strip()[-2000:]}")
    return result


def elf_sizes(elf: Path) -> dict[str, int]:
    """Bytes per allocated section (`size -A`), and flash (what is stored: code, read-only
    data, .data's initial values) and SRAM (.data, .bss and the reserved stack) totals."""
    out = subprocess.run([tool("size"), "-A", str(elf)], capture_output=True, text=True,
                         check=True).stdout
    sections = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].startswith(".") and parts[1].isdigit():
            sections[parts[0]] = int(parts[1])
    ram = {".data", ".bss", ".stack"}
    flash = sum(n for s, n in sections.items()
                if s in {".isr_vector", ".text", ".rodata", ".ARM.exidx", ".data"})
    return {"sections": sections, "flash": flash, "sram": sum(sections.get(s, 0) for s in ram)}


def model_bytes(elf: Path, model_symbols: set[str]) -> dict[str, int]:
    """The linked bytes of the generated project's own arrays, by their codegen prefix:
    arena, trainable (t_), optimizer state (s_), frozen weights (w_) and constants (k_),
    to set beside report.json's memory section."""
    out = subprocess.run([tool("nm"), "-S", str(elf)], capture_output=True, text=True,
                         check=True).stdout
    kinds = {"arena": "arena", "t": "trainable", "s": "state", "w": "frozen", "k": "consts"}
    sizes = dict.fromkeys(kinds.values(), 0)
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "bBdDrR" and parts[3] in model_symbols:
            kind = kinds.get(parts[3] if parts[3] == "arena" else parts[3].split("_")[0])
            if kind:
                sizes[kind] += int(parts[1], 16)
    return sizes
