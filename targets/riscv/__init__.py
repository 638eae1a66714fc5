"""RV32 firmware: clang 16 + ld.lld + picolibc (GCC 12 has no _Float16 on RISC-V), run on
QEMU's `virt` machine with semihosting.

rv32:  rv32imafc + Zfh (scalar half precision); the fp16 kernels' v2f16 pairs compile to
       scalar Zfh instructions.
rv32v: the same plus the vector extension and clang 16's experimental Zvfh (fp16
       vectors): the kernels' RVV paths (`#if TTE_RVV`, on where __riscv_zvfh is
       defined and TTE_SCALAR is not). QEMU 7.2 runs RVV 1.0 once the
       startup code sets mstatus.VS; it aborts (a decode_save_opc assertion) on vector
       conversions with a static rounding mode (vfcvt.rtz.*), which clang's
       auto-vectoriser emits for float-to-int casts, so rv32v builds with
       -fno-vectorize -fno-slp-vectorize and vectors come only from the kernels' intrinsics.

Memory. No RV32 part with Zfh is as common as the F746, so the link uses the F746's sizes
(1 MB flash, 320 KB SRAM) for the same fits/does-not-fit verdict on every target, placed
in the virt machine's RAM at 0x80000000 (flash) and 0x80100000 (SRAM).

Instruction counts. fw_counter() reads minstret: under `-icount shift=0` QEMU retires
instructions one per virtual nanosecond and the count is exact.

Linking: ld.lld 16 crashes relaxing RVV objects (riscvFinalizeRelax), so every object is
compiled with -mno-relax.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from targets.cortex_m import HOST_FLAGS
from targets.firmware.target import McuTarget, Part

PICOLIBC = Path("/usr/lib/picolibc/riscv64-unknown-elf")
LIBGCC = Path("/usr/lib/gcc/riscv64-unknown-elf/12.2.0")  # soft double, 64-bit division
MULTILIB = "rv32imafc/ilp32f"
RV32_QEMU = Part("RV32 MCU with the STM32F746's sizes (at the QEMU virt addresses)",
                 0x80000000, 1024, 0x80100000, 320)


class RiscV(McuTarget):
    directory = Path(__file__).resolve().parent
    tools = {"cc": "clang-16", "ld": "ld.lld-16", "objcopy": "riscv64-unknown-elf-objcopy",
             "size": "riscv64-unknown-elf-size", "nm": "riscv64-unknown-elf-nm",
             "qemu": "qemu-system-riscv32"}
    packages = ("clang-16, lld-16, picolibc-riscv64-unknown-elf (with binutils and libgcc "
                "for riscv64-unknown-elf) and qemu-system-misc")
    c_flags = HOST_FLAGS + ("--target=riscv32-unknown-elf", "-mabi=ilp32f", "-mno-relax",
                            "-mcmodel=medany", "-ffunction-sections", "-fdata-sections",
                            f"-isystem{PICOLIBC / 'include'}")
    counter_method = "minstret under -icount shift=0 (exact)"

    def link_command(self, objs: Sequence[Path], script: Path, elf: Path,
                     map_file: Path) -> list[str]:
        return [self.tool("ld"), f"-T{script}", "--gc-sections", f"-Map={map_file}",
                *map(str, objs), str(PICOLIBC / "lib" / MULTILIB / "libc.a"),
                str(LIBGCC / MULTILIB / "libgcc.a"), "-o", str(elf)]


TARGETS = {
    "rv32": RiscV("rv32", ("-march=rv32imafc_zfh",),
                  ("-machine", "virt", "-bios", "none", "-cpu", "rv32,Zfh=true"),
                  RV32_QEMU, None, None),
    "rv32v": RiscV("rv32v", ("-menable-experimental-extensions",
                             "-march=rv32imafcv_zfh_zvfh0p1",
                             "-fno-vectorize", "-fno-slp-vectorize"),
                   ("-machine", "virt", "-bios", "none",
                    "-cpu", "rv32,v=true,vext_spec=v1.0,Zfh=true"), RV32_QEMU, None, None),
}
