"""Partially trained weights: the channel arithmetic they share, and the slice_channels op.

A partial weight trains the channels `train_channels` (ascending) of its axis `train_axis`
(1: input channels of a group-1 convolution, 0: channels of a depthwise one). Its gradient,
master copy and momentum cover only those channels ("trained layout": channel j of the axis
is weight channel train_channels[j]); the reference interpreter keeps the full weight and
updates the trained channels in it. In C the trained channels sit in SRAM and the rest in
flash; `positions` gives each channel's place in that storage.

slice_channels copies the trained channels of a convolution's input activation, so that
only they are kept for the weight gradient. It has no gradient: nothing flows back through
it (the forward convolution reads the full activation).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from tte.ir.types import Value
from tte.ops.registry import OpDef, register

# attributes of the ops that compute or apply a partial weight's gradient (None: all train)
TRAIN_CHANNELS = {"train_axis": 0, "train_channels": None}


def trained_shape(shape: Sequence[int], axis: int, channels: Sequence[int] | None) -> tuple:
    """Shape of the trained part (the whole shape when channels is None)."""
    s = tuple(int(d) for d in shape)
    return s if channels is None else s[:axis] + (len(channels),) + s[axis + 1:]


def trained_size(v: Value) -> int:
    """Elements of a persistent value held in SRAM: for a partial weight and its optimizer
    state (meta "train_channels") those of the trained channels, else all."""
    part = v.meta.get("train_channels")
    return v.size if part is None else v.size // v.shape[part["axis"]] * part["count"]


def positions(channels: Sequence[int], total: int) -> np.ndarray:
    """Storage position of each of `total` channels: the trained ones first (in order),
    then the others (in order)."""
    rest = np.setdiff1d(np.arange(total), channels)
    pos = np.empty(total, np.int32)
    pos[np.concatenate([np.asarray(channels, np.int64), rest])] = np.arange(total)
    return pos


def split(arr: np.ndarray, axis: int, channels: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(trained channels, the other channels) of arr along axis, each in order."""
    rest = np.setdiff1d(np.arange(arr.shape[axis]), channels)
    return np.take(arr, list(channels), axis=axis), np.take(arr, rest, axis=axis)


def join(full: np.ndarray, trained: np.ndarray, axis: int, channels: Sequence[int]) -> np.ndarray:
    """A copy of full with its trained channels replaced by `trained` (trained layout)."""
    out = np.array(full, copy=True)
    index = [slice(None)] * out.ndim
    index[axis] = list(channels)
    out[tuple(index)] = trained.reshape(trained_shape(out.shape, axis, channels))
    return out


def on_trained(step: Callable[..., list], arrays: Sequence[np.ndarray | None], axis: int,
               channels: Sequence[int] | None) -> list:
    """step(*trained parts) -> their new contents, written back into the full arrays (None
    entries pass through); untrained channels keep their values bit for bit."""
    if channels is None:
        return step(*arrays)
    parts = [None if a is None else np.take(a, list(channels), axis=axis) for a in arrays]
    new = step(*parts)
    return [join(a, n, axis, channels) for a, n in zip([a for a in arrays if a is not None], new)]


def _infer(ins: list[Value | None], a: dict) -> list:
    x = ins[0]
    ch = a["channels"]
    if len(x.shape) != 4 or not ch or list(ch) != sorted(set(ch)) or ch[-1] >= x.shape[1] \
            or ch[0] < 0:
        raise ValueError(f"slice_channels: channels {ch} of an NCHW input {x.shape}")
    return [((x.shape[0], len(ch)) + x.shape[2:], x.dtype)]


register(OpDef("slice_channels", _infer, lambda x, channels: [np.ascontiguousarray(
               x[:, list(channels)])], kernel="tte_slice_channels", attrs={"channels": None},
               doc="copy of channels (ascending) of an NCHW tensor: a partial weight's input, "
                   "kept for its gradient; not differentiated"))
