"""C emitters of the tile ops (tte/ops/tile.py) of patch-based execution."""
from __future__ import annotations

from codegen.cexpr import dims4
from codegen.ops import _in, emits
from tte.errors import UnsupportedError
from tte.ir.types import DType

_KIND = {DType.f32: "f32", DType.i8: "s8"}


def _kind(dtype: DType) -> str:
    if dtype not in _KIND:
        raise UnsupportedError(f"the C backend crops and pastes f32 and i8 maps, not "
                               f"{dtype.value}")
    return _KIND[dtype]


@emits("crop")
def _crop(n, c):
    x, y = n.inputs[0], n.outputs[0]
    h0, _, w0, _ = n.attrs["region"]
    return [f"tte_crop_{_kind(c.dtype(x))}({c.p(x)}, {dims4(c.shape(x))}, {int(h0)}, "
            f"{int(w0)}, {c.p(y)}, {dims4(c.shape(y))});"]


@emits("paste")
def _paste(n, c):
    t, dest, y = n.inputs[0], _in(n, 1), n.outputs[0]
    lines = []
    if dest and not c.same_buffer(dest, y):  # the planner could not reuse the map
        lines.append(f"memcpy({c.p(y)}, {c.p(dest)}, {c.n(y) * c.dtype(y).itemsize});")
    h0, w0 = n.attrs["at"]
    return lines + [f"tte_paste_{_kind(c.dtype(t))}({c.p(t)}, {dims4(c.shape(t))}, {c.p(y)}, "
                    f"{dims4(c.shape(y))}, {int(h0)}, {int(w0)});"]
