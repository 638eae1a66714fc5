"""Build every C kernel in kernels_c/ into one cffi module for host tests.

`load()` compiles all kernels_c/*.c (strict flags, cached by content hash in
targets/host/cbuild.py) against a cdef made from all kernels_c/*.h, so a new kernel family
is picked up by adding its .h/.c pair; nothing here needs editing. The cdef is the headers
run through the C preprocessor (include guards, `extern "C"` blocks and `#if` target
branches resolved as the host compile sees them; system headers stubbed out, cffi knows
<stdint.h>/<stddef.h> types), plus every `#define NAME <integer>` as a cffi constant.
Headers must therefore hold declarations only (no inline function bodies).
"""
from __future__ import annotations

import functools
import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from targets.host.cbuild import KERNELS_DIR, build_c

COMMON = "tte_common.h"
_SYS_INCLUDE = re.compile(r"^\s*#\s*include\s*<([^>]+)>", re.M)
_INT_DEFINE = re.compile(r"^\s*#\s*define\s+([A-Za-z_]\w*)\s+\(?\s*(-?(?:0[xX][0-9a-fA-F]+|\d+))"
                         r"[uUlL]*\s*\)?\s*(?:/\*.*?\*/\s*|//.*)?$", re.M)


def headers(kernels_dir: Path = KERNELS_DIR) -> list[Path]:
    """All kernel headers, tte_common.h first (it declares the shared structs)."""
    # cffi cannot parse _Float16: tests/test_fp16.py runs the half kernels in generated projects
    return sorted((h for h in kernels_dir.glob("*.h") if h.name != "tte_f16.h"),
                  key=lambda p: (p.name != COMMON, p.name))


def sources(kernels_dir: Path = KERNELS_DIR) -> list[Path]:
    return sorted(kernels_dir.glob("*.c"))


def cdef_text(kernels_dir: Path = KERNELS_DIR, defines: Sequence[str] = ()) -> str:
    """Declarations of every header, each struct once, for cffi's cdef."""
    hs = headers(kernels_dir)
    texts = [h.read_text() for h in hs]
    cc = os.environ.get("CC", "gcc")
    with tempfile.TemporaryDirectory() as tmp:
        stubs = Path(tmp, "stubs")
        for name in {m for t in texts for m in _SYS_INCLUDE.findall(t)}:
            (stubs / name).parent.mkdir(parents=True, exist_ok=True)
            (stubs / name).write_text("")
        stubs.mkdir(exist_ok=True)
        umbrella = Path(tmp, "all.h")
        umbrella.write_text("".join(f'#include "{h.name}"\n' for h in hs))
        run = subprocess.run([cc, "-E", "-P", "-std=c99", "-nostdinc", "-I", str(stubs),
                              "-I", str(kernels_dir), *defines, str(umbrella)],
                             capture_output=True, text=True)
        if run.returncode:
            raise RuntimeError(f"preprocessing kernel headers failed:\n{run.stderr}")
    consts: dict[str, str] = {}
    for t in texts:
        for name, value in _INT_DEFINE.findall(t):
            consts.setdefault(name, value)
    return "".join(f"#define {k} {v}\n" for k, v in consts.items()) + run.stdout


@functools.lru_cache(maxsize=None)
def load() -> tuple[Any, Any]:
    """(ffi, lib) with every kernel; built once per process, cached on disk."""
    header = "".join(f'#include "{h.name}"\n' for h in headers())
    return build_c(cdef_text(), sources(), header=header)


def fptr(ffi: Any, a: np.ndarray) -> Any:
    """float * into a C-contiguous float32 array (no copy; writes land in `a`)."""
    if a.dtype != np.float32 or not a.flags.c_contiguous:
        raise TypeError("expected a C-contiguous float32 array")
    return ffi.cast("float *", a.ctypes.data)


def dims4(shape: Sequence[int]) -> dict[str, int]:
    """tte_dims4 argument (cffi converts the dict) for a shape of rank 4, or of rank 2
    [N, M] as {N, M, 1, 1}."""
    n, c, h, w = (tuple(int(s) for s in shape) + (1, 1))[:4]
    return {"n": n, "c": c, "h": h, "w": w}


def window(kernel: Sequence[int], strides: Sequence[int] = (1, 1),
           pads: Sequence[int] = (0, 0, 0, 0), dilations: Sequence[int] = (1, 1),
           group: int = 1) -> dict[str, int]:
    """tte_window argument from ONNX-style attributes (pads = top, left, bottom, right)."""
    return {
        "kernel_h": kernel[0], "kernel_w": kernel[1], "stride_h": strides[0],
        "stride_w": strides[1], "pad_top": pads[0], "pad_left": pads[1],
        "pad_bottom": pads[2], "pad_right": pads[3], "dilation_h": dilations[0],
        "dilation_w": dilations[1], "groups": group}
