"""Sparse-update schemes: which biases and which channels of which weights a step trains.

Layer numbering follows tiny-training (mit-han-lab), so its published schemes apply as they
are: the convolutions of the forward graph are numbered from 0 in execution order (first
conv, each block's pointwise1 / depthwise / pointwise2 and shortcut, feature mix, the
classifier when it is still a conv). A scheme:

    {"n_bias_update": 20,                 # the last 20 convolutions train their bias
     "weight_update_idx": [23, 24, 27],   # these convolutions train weights ...
     "weight_update_ratio": [0, 0.25, 1], # ... of this share of their channels (0: none)
     "head": true}                        # the fully connected layers after the last
                                          # convolution (a new linear head, a TFLite
                                          # model's int8 classifier) train fully (default)

    {"last_k_layers": 4}                  # weights and biases of the last 4 convolutions
                                          # (also "last:4" wherever a scheme is taken)

A ratio r < 1 trains k = max(1, round(r * C)) of the C channels along one weight axis: the
input channels of a (group-1) convolution, the channels of a depthwise one; other grouped
convolutions train all channels or none. Which k:

    "channels": "first"       # channels 0..k-1 (default; tiny-training's choice)
    "channels": "magnitude"   # the k with the largest L2 norm of their real-valued weights
                              # (int8 weights times their per-output-channel scales), ties
                              # to the lower index; deterministic, fixed at compile time

Such a partially trained weight keeps its k trained channels in SRAM and the rest in flash
(Role.partial), its gradient, master copy and momentum cover only the k channels, and the
forward saves only those k channels of the convolution's input for the backward (a
slice_channels node), which is all the weight gradient reads.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from tte.errors import TTEError
from tte.ir.graph import Graph, Node

CONV_OPS = ("conv2d", "conv2d_s8")
RATIOS = (0, 0.125, 0.25, 0.5, 1)
# after the last convolution: the head (a JAX dense layer is matmul + add)
HEAD_OPS = ("linear", "linear_s8", "matmul", "add")
KEYS = {"n_bias_update", "weight_update_idx", "weight_update_ratio", "head", "channels",
        "last_k_layers"}
LAST_K = re.compile(r"last:(\d+)")
CHANNEL_CHOICES = ("first", "magnitude")


@dataclass(frozen=True)
class UpdateScheme:
    n_bias_update: int = 0
    weight_update_idx: tuple[int, ...] = ()
    weight_update_ratio: tuple[float, ...] = ()
    head: bool = True
    channels: str = "first"
    last_k_layers: int = 0


@dataclass(frozen=True)
class PartialWeight:
    """Train `channels` (ascending) of `axis` of a weight (0: output, 1: input channels)."""
    axis: int
    channels: tuple[int, ...]

    @property
    def count(self) -> int:
        return len(self.channels)


def is_scheme(update: Any) -> bool:
    return isinstance(update, (dict, UpdateScheme)) or (
        isinstance(update, (str, os.PathLike)) and os.fspath(update).endswith(".json")) or (
        isinstance(update, str) and LAST_K.fullmatch(update) is not None)


def parse_scheme(update: Any) -> UpdateScheme:
    """A scheme from an UpdateScheme, a dict, a JSON file of one or "last:K"."""
    if isinstance(update, UpdateScheme):
        return update
    if isinstance(update, str) and (m := LAST_K.fullmatch(update)):
        update = {"last_k_layers": int(m.group(1))}
    if not isinstance(update, dict):
        path = os.fspath(update)
        try:
            with open(path) as f:
                update = json.load(f)
        except OSError as e:
            raise TTEError(f"cannot read the update scheme {path!r}: {e.strerror}") from None
        except json.JSONDecodeError as e:
            raise TTEError(f"update scheme {path!r} is not valid JSON: {e}") from None
        if not isinstance(update, dict):
            raise TTEError(f"update scheme {path!r} must hold a JSON object")
    unknown = set(update) - KEYS
    if unknown:
        raise TTEError(f"unknown update-scheme keys {sorted(unknown)}; known: {sorted(KEYS)}")
    channels = update.get("channels", "first")
    if channels not in CHANNEL_CHOICES:
        raise TTEError(f"update scheme: channels={channels!r} is not one of {CHANNEL_CHOICES}")
    idx = tuple(int(i) for i in update.get("weight_update_idx", ()))
    ratios = tuple(float(r) for r in update.get("weight_update_ratio", [1] * len(idx)))
    if len(ratios) != len(idx):
        raise TTEError(f"update scheme: {len(idx)} weight layers but {len(ratios)} ratios")
    bad = [r for r in ratios if r not in RATIOS]
    if bad:
        raise TTEError(f"update scheme: ratios {bad} are not in {RATIOS}")
    counts = {k: update.get(k, 0) for k in ("n_bias_update", "last_k_layers")}
    for key, n in counts.items():
        if not isinstance(n, int) or n < 0:
            raise TTEError(f"update scheme: {key}={n!r} must be an integer >= 0")
    return UpdateScheme(counts["n_bias_update"], idx, ratios, bool(update.get("head", True)),
                        channels, counts["last_k_layers"])


def conv_layers(g: Graph) -> list[Node]:
    """The convolutions of a forward graph in execution order: the scheme's layer numbers."""
    return [n for n in g.nodes if n.op in CONV_OPS]


def resolve(g: Graph, scheme: UpdateScheme) -> tuple[list[str], dict[str, PartialWeight]]:
    """(parameters to train, the partially trained weights among them)."""
    convs = conv_layers(g)
    for key in ("n_bias_update", "last_k_layers"):
        if getattr(scheme, key) > len(convs):
            raise TTEError(f"{key}={getattr(scheme, key)}, but the model has {len(convs)} "
                           "convolution layers")
    names: list[str] = []
    partial: dict[str, PartialWeight] = {}
    n_bias = max(scheme.n_bias_update, scheme.last_k_layers)
    for node in convs[len(convs) - n_bias:]:
        if len(node.inputs) > 2 and node.inputs[2]:
            names.append(node.inputs[2])
    producers = {o: n for n in g.nodes for o in n.outputs}
    names += [_source(producers, node.inputs[1])
              for node in convs[len(convs) - scheme.last_k_layers:]]
    for idx, ratio in zip(scheme.weight_update_idx, scheme.weight_update_ratio):
        if not 0 <= idx < len(convs):
            raise TTEError(f"weight_update_idx {idx} is not a convolution layer (0.."
                           f"{len(convs) - 1})")
        if ratio == 0:
            continue
        node = convs[idx]
        weight = _source(producers, node.inputs[1])
        names.append(weight)
        part = _partial(g, node, ratio, scheme.channels, idx)
        if part is not None:
            if weight != node.inputs[1]:
                raise TTEError(f"weight_update_ratio {ratio} of layer {idx}: its weight "
                               f"{weight!r} is transposed or reshaped before the convolution "
                               "(an HWIO weight from JAX?); partial updates need an OIHW "
                               "parameter, train it whole (ratio 1)")
            partial[weight] = part
    if scheme.head:
        last_conv = g.nodes.index(convs[-1]) if convs else -1
        names += [p for n in g.nodes[last_conv + 1:] if n.op in HEAD_OPS
                  for p in (_source(producers, v) for v in n.inputs if v)
                  if g.values[p].role.is_param]
    return list(dict.fromkeys(names)), partial


def _source(producers: dict[str, Node], v: str) -> str:
    """The value v is a transpose or reshape of (a parameter, for a JAX HWIO weight or a
    broadcast bias), else v."""
    while v in producers and producers[v].op in ("transpose", "reshape"):
        v = producers[v].inputs[0]
    return v


def _partial(g: Graph, conv: Node, ratio: float, choice: str, idx: int) -> PartialWeight | None:
    """The channels a ratio trains of conv's weight, or None when that is all of them."""
    shape = g.values[conv.inputs[1]].shape
    group = conv.attrs["group"]
    depthwise = group > 1 and shape[1] == 1
    axis = 0 if depthwise else 1
    count = max(1, round(ratio * shape[axis]))
    if count == shape[axis]:
        return None
    if group > 1 and not (depthwise and shape[0] == group):
        raise TTEError(f"weight_update_ratio {ratio} of layer {idx}: a partial update needs a "
                       f"group-1 or depthwise (multiplier 1) convolution, this one has group "
                       f"{group} and weight {list(shape)}")
    if choice == "first":
        return PartialWeight(axis, tuple(range(count)))
    w = g.data[conv.inputs[1]].astype(np.float64)
    if "w_scales" in conv.attrs:  # int8: compare real values, not stored integers
        w = w * np.asarray(conv.attrs["w_scales"], np.float64).reshape(-1, 1, 1, 1)
    norms = np.sqrt(np.sum(np.square(np.moveaxis(w, axis, 0)).reshape(shape[axis], -1),
                           axis=1))
    best = np.argsort(-norms, kind="stable")[:count]  # stable: ties to the lower index
    return PartialWeight(axis, tuple(int(c) for c in np.sort(best)))
