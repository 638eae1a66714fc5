"""Cortex-M4 / Cortex-M7 firmware: arm-none-eabi-gcc + newlib, linked for an STM32F746-sized
part, run on QEMU's MPS2 boards with semihosting.

Memory map. The STM32F746 has 1 MB of flash (at 0x08000000, aliased at 0) and 320 KB of
contiguous SRAM at 0x20000000. QEMU's mps2-an386 (Cortex-M4) and mps2-an500 (Cortex-M7)
have 4 MB of SSRAM at 0x00000000 (where they boot) and 4 MB at 0x20000000 (hw/arm/mps2.c).
So the QEMU firmware is linked with the F746's *sizes* at the boards' addresses: flash at
0x00000000 (1 MB), SRAM at 0x20000000 (320 KB); what fits the link fits the part. The
image for a real F746 (`tte flash`) is the same link with flash at 0x08000000.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass

from tte.errors import TTEError


@dataclass(frozen=True)
class Part:
    """The memory a link must fit."""
    name: str
    flash_origin: int
    flash_kb: int
    ram_origin: int
    ram_kb: int


STM32F746_QEMU = Part("STM32F746 (at the QEMU MPS2 addresses)", 0x00000000, 1024, 0x20000000, 320)
STM32F746 = Part("STM32F746", 0x08000000, 1024, 0x20000000, 320)


@dataclass(frozen=True)
class CortexM:
    name: str
    cpu_flags: tuple[str, ...]
    qemu_machine: str
    qemu_cpu: str
    pyocd_target: str | None  # the real part `tte flash` writes, None if none is modelled


TARGETS = {
    "cortex-m4": CortexM("cortex-m4", ("-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16"),
                         "mps2-an386", "cortex-m4", None),
    # the F746's FPU is single precision (fpv5-sp-d16); QEMU's M7 runs that subset
    "cortex-m7": CortexM("cortex-m7", ("-mcpu=cortex-m7", "-mfpu=fpv5-sp-d16"),
                         "mps2-an500", "cortex-m7", "stm32f746zg"),
}
TOOLS = {"gcc": "arm-none-eabi-gcc", "objcopy": "arm-none-eabi-objcopy",
         "size": "arm-none-eabi-size", "nm": "arm-none-eabi-nm", "qemu": "qemu-system-arm"}


def get_target(name: str) -> CortexM:
    if name not in TARGETS:
        raise TTEError(f"target {name!r} is not known; MCU targets: {', '.join(TARGETS)}")
    return TARGETS[name]


def tool(key: str) -> str:
    """The path of a cross tool, or a TTEError that says how to install it."""
    path = shutil.which(TOOLS[key])
    if path is None:
        raise TTEError(f"{TOOLS[key]} is not installed; `make toolchains` installs "
                       f"gcc-arm-none-eabi, libnewlib-arm-none-eabi and qemu-system-arm")
    return path
