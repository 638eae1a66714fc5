"""Tile movement for patch-based execution (tte/passes/patch.py): crop a window of a
feature map, paste a tile into a whole map. NCHW; any dtype."""
from __future__ import annotations

import numpy as np

from tte.ir.types import Value
from tte.ops.registry import OpDef, register


def _crop_infer(ins: list[Value | None], a: dict) -> list:
    x = ins[0]
    h0, h1, w0, w1 = a["region"]
    if len(x.shape) != 4 or not (0 <= h0 < h1 <= x.shape[2] and 0 <= w0 < w1 <= x.shape[3]):
        raise ValueError(f"crop: region {a['region']} is not inside {x.shape}")
    return [(x.shape[:2] + (h1 - h0, w1 - w0), x.dtype)]


def _crop_ref(x, *, region):
    h0, h1, w0, w1 = region
    return [np.ascontiguousarray(x[:, :, h0:h1, w0:w1])]


def _paste_infer(ins: list[Value | None], a: dict) -> list:
    tile, dest = (ins + [None])[:2]
    shape, (h0, w0) = tuple(a["shape"]), a["at"]
    if len(tile.shape) != 4 or tile.shape[:2] != shape[:2] or h0 < 0 or w0 < 0 \
            or h0 + tile.shape[2] > shape[2] or w0 + tile.shape[3] > shape[3]:
        raise ValueError(f"paste: tile {tile.shape} at {a['at']} does not fit in {shape}")
    if dest is not None and (dest.shape != shape or dest.dtype != tile.dtype):
        raise ValueError(f"paste: destination {dest.dtype.value}{list(dest.shape)} is not "
                         f"{tile.dtype.value}{list(shape)}")
    return [(shape, tile.dtype)]


def _paste_ref(tile, dest=None, *, shape, at):
    # without a destination the map starts here; the C kernel leaves the rest unwritten
    # (the pastes that follow cover it), the reference zeros it
    out = np.zeros(shape, tile.dtype) if dest is None else dest.copy()
    h0, w0 = at
    out[:, :, h0:h0 + tile.shape[2], w0:w0 + tile.shape[3]] = tile
    return [out]


register(OpDef("crop", _crop_infer, _crop_ref, kernel="tte_crop", attrs={"region": None},
               doc="window [h0:h1, w0:w1] of an NCHW map (x); region = [h0, h1, w0, w1]"))
register(OpDef("paste", _paste_infer, _paste_ref, kernel="tte_paste",
               attrs={"shape": None, "at": None}, inplace=1,
               doc="write a tile into a map of `shape` at [h0, w0] (tile, optional map), in "
                   "place; without a map, a new one whose other elements follow later"))
