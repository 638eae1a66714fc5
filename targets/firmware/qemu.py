"""Run firmware on QEMU and measure the linked ELF."""
from __future__ import annotations

import subprocess

from targets.firmware import FirmwareResult, parse_output
from targets.firmware.build import Firmware
from tte.errors import TTEError

FLASH_SECTIONS = {".isr_vector", ".text", ".rodata", ".ARM.exidx", ".data"}
RAM_SECTIONS = {".data", ".bss", ".stack"}


def run_firmware(fw: Firmware, num_trainable: int, timeout: float = 600) -> FirmwareResult:
    """Boot the ELF on the target's emulated board (under -icount shift=0, so instruction
    counts are exact and runs repeatable); semihosting carries its output and exit status."""
    t = fw.target
    cmd = t.qemu_command(fw.elf, icount=True)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise TTEError(f"{fw.elf} did not finish within {timeout:.0f} s on QEMU "
                       f"({' '.join(t.qemu_args)})") from None
    result = parse_output(proc.stdout + proc.stderr, num_trainable, t.counter_scale)
    if proc.returncode != result.status:
        raise TTEError(f"QEMU exited with {proc.returncode}, the firmware reported "
                       f"{result.status}:\n{proc.stderr.strip()[-2000:]}")
    return result


def elf_sizes(fw: Firmware) -> dict[str, int]:
    """Bytes per allocated section (`size -A`), and flash (what is stored: code, read-only
    data, .data's initial values) and SRAM (.data, .bss and the reserved stack) totals."""
    out = subprocess.run([fw.target.tool("size"), "-A", str(fw.elf)], capture_output=True,
                         text=True, check=True).stdout
    sections = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].startswith(".") and parts[1].isdigit():
            sections[parts[0]] = int(parts[1])
    return {"sections": sections,
            "flash": sum(n for s, n in sections.items() if s in FLASH_SECTIONS),
            "sram": sum(sections.get(s, 0) for s in RAM_SECTIONS)}


def model_bytes(fw: Firmware) -> dict[str, int]:
    """The linked bytes of the generated project's own arrays, by their codegen prefix:
    arena, trainable (t_), optimizer state (s_), frozen weights (w_) and constants (k_),
    to set beside report.json's memory section."""
    out = subprocess.run([fw.target.tool("nm"), "-S", str(fw.elf)], capture_output=True,
                         text=True, check=True).stdout
    kinds = {"arena": "arena", "t": "trainable", "s": "state", "w": "frozen", "k": "consts"}
    sizes = dict.fromkeys(kinds.values(), 0)
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "bBdDrRgGsS" and parts[3] in fw.model_symbols:
            kind = kinds.get(parts[3] if parts[3] == "arena" else parts[3].split("_")[0])
            if kind:
                sizes[kind] += int(parts[1], 16)
    return sizes
