"""Cortex-M4 / Cortex-M7 firmware: arm-none-eabi-gcc + newlib, linked for an STM32F746-sized
part, run on QEMU's MPS2 boards with semihosting.

Memory map. The STM32F746 has 1 MB of flash (at 0x08000000, aliased at 0) and 320 KB of
contiguous SRAM at 0x20000000. QEMU's mps2-an386 (Cortex-M4) and mps2-an500 (Cortex-M7)
have 4 MB of SSRAM at 0x00000000 (where they boot) and 4 MB at 0x20000000 (hw/arm/mps2.c).
So the QEMU firmware is linked with the F746's *sizes* at the boards' addresses: flash at
0x00000000 (1 MB), SRAM at 0x20000000 (320 KB); what fits the link fits the part. The
image for a real F746 (`tte flash`) is the same link with flash at 0x08000000.

Instruction counts. QEMU models no DWT cycle counter, so fw_counter() reads the SysTick,
clocked by the boards' 25 MHz system clock: under `-icount shift=0` every instruction takes
one virtual nanosecond, so one tick is 40 instructions (a measured interval is exact to
±40 instructions; tests/test_mcu_cost.py checks the scale on a loop of known length).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from targets.firmware.target import McuTarget, Part

STM32F746_QEMU = Part("STM32F746 (at the QEMU MPS2 addresses)", 0x00000000, 1024, 0x20000000, 320)
STM32F746 = Part("STM32F746", 0x08000000, 1024, 0x20000000, 320)
HOST_FLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off")


class CortexM(McuTarget):
    directory = Path(__file__).resolve().parent
    tools = {"cc": "arm-none-eabi-gcc", "objcopy": "arm-none-eabi-objcopy",
             "size": "arm-none-eabi-size", "nm": "arm-none-eabi-nm", "qemu": "qemu-system-arm"}
    packages = "gcc-arm-none-eabi, libnewlib-arm-none-eabi and qemu-system-arm"
    # the host's flags (targets/host/cbuild.py), so the same C computes the same bits;
    # _Float16 (kernels_c/tte_f16.h) exists on Arm only with -mfp16-format=ieee
    c_flags = HOST_FLAGS + ("-mthumb", "-mfloat-abi=hard", "-ffunction-sections",
                            "-fdata-sections", "-mfp16-format=ieee")
    counter_scale = 40
    counter_method = ("SysTick at the 25 MHz system clock under -icount shift=0 "
                      "(1 tick = 40 instructions)")

    def link_command(self, objs: Sequence[Path], script: Path, elf: Path,
                     map_file: Path) -> list[str]:
        return [self.tool("cc"), *self.c_flags, *self.cpu_flags, "-nostartfiles",
                "--specs=nano.specs", "--specs=nosys.specs", f"-T{script}", "-Wl,--gc-sections",
                f"-Wl,-Map={map_file}", *map(str, objs), "-lm", "-o", str(elf)]


TARGETS = {
    "cortex-m4": CortexM("cortex-m4", ("-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16"),
                         ("-machine", "mps2-an386", "-cpu", "cortex-m4"), STM32F746_QEMU,
                         None, None),
    # the F746's FPU is single precision (fpv5-sp-d16); QEMU's M7 runs that subset
    "cortex-m7": CortexM("cortex-m7", ("-mcpu=cortex-m7", "-mfpu=fpv5-sp-d16"),
                         ("-machine", "mps2-an500", "-cpu", "cortex-m7"), STM32F746_QEMU,
                         STM32F746, "stm32f746zg"),
}
