"""Compile C sources into a Python extension with cffi, cached by content hash."""
from __future__ import annotations

import hashlib
import importlib.util
import itertools
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

from cffi import FFI

KERNELS_DIR = Path(__file__).resolve().parents[2] / "kernels_c"
# -ffp-contract=off: no fused multiply-adds, so float and double results equal numpy's
STRICT_FLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off"]
_LOAD_DIR = tempfile.TemporaryDirectory(prefix="tte-load-")  # private copies, removed at exit
_copies = itertools.count()
CACHE_DIR = Path(os.environ.get("TTE_BUILD_CACHE", Path.home() / ".cache" / "tte" / "cffi"))


def build_c(cdef: str, sources: Sequence[Path], *, header: str, extra_flags: Sequence[str] = (),
            include_dirs: Sequence[Path] = (), link_flags: Sequence[str] = ()) -> tuple[FFI, Any]:
    """Build (or reuse) an extension exposing `cdef` from `sources`; returns (ffi, lib).

    `header` is C text placed before the declarations (normally #include lines). The cache
    key is the content of everything compiled, not where it lies, and every call loads a
    private copy of the library, so two callers never share its static state.
    """
    flags = STRICT_FLAGS + list(extra_flags)
    dirs = [str(KERNELS_DIR)] + [str(d) for d in include_dirs]
    digest = hashlib.sha256()
    for part in [cdef, header, " ".join(flags), " ".join(link_flags)]:
        digest.update(part.encode())
    for src in sorted(Path(s) for s in sources):
        digest.update(src.read_bytes())
    for h in sorted(p for d in dirs for g in ("*.h", "*.inc") for p in Path(d).glob(g)):
        digest.update(h.read_bytes())
    name = f"_tte_{digest.hexdigest()[:16]}"
    out = CACHE_DIR / name
    built = sorted(out.glob(f"{name}*.so")) if out.exists() else []
    if not built:
        ffi = FFI()
        ffi.cdef(cdef)
        ffi.set_source(name, header, sources=[str(s) for s in sources], include_dirs=dirs,
                       extra_compile_args=flags, extra_link_args=list(link_flags))
        out.mkdir(parents=True, exist_ok=True)
        built = [Path(ffi.compile(tmpdir=str(out), verbose=False))]
    copy = next(_copies)
    private = Path(_LOAD_DIR.name) / f"{copy}-{built[0].name}"  # new file: new static storage
    shutil.copyfile(built[0], private)
    spec = importlib.util.spec_from_file_location(name, private)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[f"{name}.{copy}"] = module  # findable (module.__file__) for inspection
    return module.ffi, module.lib
