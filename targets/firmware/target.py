"""What an MCU target is: a toolchain that compiles and links firmware for a memory part, an
emulator that runs it, and the instruction counter the firmware reads. One subclass per
family (targets/cortex_m, targets/riscv); everything that uses them is family-neutral."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Sequence

from tte.errors import TTEError


@dataclass(frozen=True)
class Part:
    """The memory a link must fit."""
    name: str
    flash_origin: int
    flash_kb: int
    ram_origin: int
    ram_kb: int


@dataclass(frozen=True)
class McuTarget:
    name: str
    cpu_flags: tuple[str, ...]     # after the family's common flags
    qemu_args: tuple[str, ...]     # machine and CPU
    part: Part                     # the link QEMU runs
    flash_part: Part | None        # the link `tte flash` writes (None: no real part modelled)
    pyocd_target: str | None
    # the family's own files and tools, set by subclasses
    directory: ClassVar[Path]           # holds startup.c and link.ld.in
    tools: ClassVar[dict[str, str]]     # key -> executable (cc, objcopy, size, nm, qemu)
    packages: ClassVar[str]             # what `make toolchains` installs for the tools
    c_flags: ClassVar[tuple[str, ...]]  # the family's flags for every source
    # instructions per unit of fw_counter(): 1 where the core counts retired instructions
    counter_scale: ClassVar[int] = 1
    counter_method: ClassVar[str]       # how fw_counter() counts, for reports

    def tool(self, key: str) -> str:
        """The path of a tool, or a TTEError that says how to install it."""
        path = shutil.which(self.tools[key])
        if path is None:
            raise TTEError(f"{self.tools[key]} is not installed; `make toolchains` installs "
                           f"{self.packages}")
        return path

    def compile_command(self, src: Path, obj: Path, include_dirs: Sequence[Path],
                        defines: Sequence[str]) -> list[str]:
        return [self.tool("cc"), *self.c_flags, *self.cpu_flags,
                *[f"-D{d}" for d in defines], *[f"-I{d}" for d in include_dirs],
                "-c", str(src), "-o", str(obj)]

    def link_command(self, objs: Sequence[Path], script: Path, elf: Path,
                     map_file: Path) -> list[str]:
        raise NotImplementedError

    def qemu_command(self, elf: Path, *, icount: bool) -> list[str]:
        """-icount shift=0: one instruction per virtual nanosecond, so the counters (and
        runs) are deterministic."""
        return [self.tool("qemu"), *self.qemu_args, "-nographic", "-monitor", "none",
                "-semihosting-config", "enable=on,target=native",
                *(["-icount", "shift=0"] if icount else []), "-kernel", str(elf)]


def mcu_targets() -> dict[str, McuTarget]:
    from targets.cortex_m import TARGETS as ARM
    from targets.riscv import TARGETS as RISCV
    return {**ARM, **RISCV}


def get_target(name: str) -> McuTarget:
    targets = mcu_targets()
    if name not in targets:
        raise TTEError(f"target {name!r} is not known; MCU targets: {', '.join(targets)}")
    return targets[name]
