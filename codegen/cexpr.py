"""Small C expression builders shared by the op emitters."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def flt(v: float) -> str:
    """A float literal that round-trips float32 exactly."""
    if math.isnan(v):
        return "NAN"
    if math.isinf(v):
        return "INFINITY" if v > 0 else "-INFINITY"
    return f"{float(np.float32(v))!r}f"


def ints(values: Sequence[int]) -> str:
    """A const int32_t array as a C99 compound literal (never empty)."""
    vals = [int(v) for v in values] or [1]
    return "(const int32_t[]){" + ", ".join(map(str, vals)) + "}"


def dims4(shape: Sequence[int]) -> str:
    """tte_dims4 for NCHW, or [N, C, rest...] folded to (N, C, prod(rest), 1)."""
    s = [int(d) for d in shape]
    n, c = (s + [1, 1])[:2]
    rest = int(np.prod(s[2:], dtype=np.int64)) if len(s) > 2 else 1
    h, w = (s[2], s[3]) if len(s) == 4 else (rest, 1)
    return f"(tte_dims4){{{n}, {c}, {h}, {w}}}"


def window(attrs: dict) -> str:
    k = attrs["kernel"] if "kernel" in attrs else attrs["weight_hw"]
    s, p = attrs["strides"], attrs["pads"]
    d = attrs.get("dilations", [1, 1])
    g = attrs.get("group", 1)
    vals = [k[0], k[1], s[0], s[1], p[0], p[1], p[2], p[3], d[0], d[1], g]
    return "(tte_window){" + ", ".join(str(int(v)) for v in vals) + "}"


def split3(shape: Sequence[int], first: int, last: int) -> tuple[int, int, int]:
    """(outer, axis_len, inner) for the contiguous axes first..last of shape."""
    p = lambda xs: int(np.prod(xs, dtype=np.int64))  # noqa: E731
    return p(shape[:first]), p(shape[first:last + 1]), p(shape[last + 1:])
