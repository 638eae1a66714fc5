"""`tte build`, `tte run` and `tte flash` on the output directory of `tte compile`."""
from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

from targets.firmware import (ProjectInfo, check_samples, default_samples, info_from_dir,
                              load_samples)
from targets.firmware.build import Firmware, build_firmware
from targets.firmware.cost import cost_rows, format_rows
from targets.firmware.qemu import elf_sizes, run_firmware
from targets.firmware.target import get_target, mcu_targets
from tte.errors import TTEError


def _build(args: argparse.Namespace, flash: bool = False) -> tuple[ProjectInfo, Firmware]:
    info = info_from_dir(args.dir)
    xs, labels = load_samples(args.samples, info) if args.samples else default_samples(info)
    xs, labels = check_samples(info, xs, labels)
    if args.steps < 1:
        raise TTEError(f"--steps must be at least 1, got {args.steps}")
    target = get_target(args.target)
    out = Path(args.dir) / (f"{target.name}-flash" if flash else target.name)
    fw = build_firmware(info, target, xs, labels, args.steps, out,
                        target.flash_part if flash else target.part,
                        profile=getattr(args, "profile", False))
    return info, fw


def size_lines(info: ProjectInfo, fw: Firmware) -> list[str]:
    """The ELF's flash and SRAM next to report.json's."""
    sizes, mem = elf_sizes(fw), info.memory
    s = sizes["sections"]
    return [f"ELF: flash {sizes['flash']:,} B (.text {s.get('.text', 0):,}, .rodata "
            f"{s.get('.rodata', 0):,}, .data {s.get('.data', 0):,}), SRAM {sizes['sram']:,} B "
            f"(.data {s.get('.data', 0):,}, .bss {s.get('.bss', 0):,}, stack "
            f"{s.get('.stack', 0):,}) of {fw.part.flash_kb} KB / {fw.part.ram_kb} KB",
            f"report.json: flash {mem['flash_bytes']:,} B of weights, SRAM {mem['sram_bytes']:,} B"
            f" (the ELF adds code, constants, samples, newlib and the stack)"]


def _cmd_build(args: argparse.Namespace) -> None:
    info, fw = _build(args)
    print("\n".join(size_lines(info, fw)))
    print(f"wrote {fw.elf}, {fw.bin.name}, {fw.hex.name}")


def _cmd_run(args: argparse.Namespace) -> None:
    info, fw = _build(args)
    result = run_firmware(fw, len(info.trainable), args.timeout)
    for i, loss in enumerate(result.losses):
        print(f"step {i} loss {float(loss):.7g} (0x{loss.view('uint32'):08x}), "
              f"{int(result.step_instructions[i]):,} instructions")
    print(f"parameter checksum 0x{result.checksum:08x} (FNV-1a over "
          f"{sum(map(len, result.params)):,} B), exit status {result.status}")
    if result.status:
        raise TTEError(f"the firmware's train_step returned error {result.status}")
    if args.profile:
        from tte.report import load_report
        schedule = load_report(args.dir)["schedule"]
        print(f"\nlast step by layer kind and direction ({fw.target.counter_method}):")
        rows = cost_rows(schedule, result.node_instructions)
        print("\n".join(format_rows(rows, int(result.step_instructions[-1]))))


def _cmd_flash(args: argparse.Namespace) -> None:
    target = get_target(args.target)
    if target.pyocd_target is None:
        raise TTEError(f"no real part is modelled for {target.name}; flash supports "
                       f"{', '.join(t for t, v in mcu_targets().items() if v.pyocd_target)}")
    pyocd = shutil.which("pyocd")
    if pyocd is None:
        raise TTEError("pyocd is not installed: `pip install pyocd` (and connect the board)")
    _, fw = _build(args, flash=True)
    cmd = [pyocd, "flash", "-t", args.pyocd_target or target.pyocd_target, str(fw.hex)]
    if subprocess.run(cmd).returncode != 0:
        raise TTEError(f"{' '.join(cmd)} failed")
    print(f"flashed {fw.hex}; its output comes through semihosting: "
          f"`pyocd gdbserver -t {target.pyocd_target} --semihosting` while it runs")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    for name, run, text in [
            ("build", _cmd_build, "build firmware (ELF, .bin, .hex) into DIR/TARGET/ and print "
             "its flash and SRAM next to report.json's"),
            ("run", _cmd_run, "build the firmware and run it on QEMU (MPS2 boards for "
             "Cortex-M, virt for RISC-V): the loss and instruction count of each step and a "
             "checksum of the trained parameters"),
            ("flash", _cmd_flash, "build the firmware for a real STM32F746 (flash at "
             "0x08000000) and write it through pyocd")]:
        s = sub.add_parser(name, help=text.split(":")[0], description=text[0].upper() + text[1:]
                           + ". DIR is the output directory of `tte compile`.")
        s.add_argument("dir", metavar="DIR", help="output directory of `tte compile`")
        s.add_argument("--target", required=True, choices=list(mcu_targets()))
        s.add_argument("--steps", type=int, default=4, help="training steps (default 4)")
        s.add_argument("--samples", metavar="FILE.npz", help="arrays 'x' (samples) and "
                       "'labels', linked into flash and used in a loop (default: 4 "
                       "pseudo-random samples)")
        if name == "run":
            s.add_argument("--timeout", type=float, default=600, help="seconds (default 600)")
            s.add_argument("--profile", action="store_true", help="count every node's "
                           "instructions and print them by layer kind and direction with "
                           "their MACs")
        if name == "flash":
            s.add_argument("--pyocd-target", help="pyocd's name of the part (default "
                           "stm32f746zg)")
        s.set_defaults(run=run)
