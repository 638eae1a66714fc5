"""Loader for the int8 ImageNet backbones of the on-device training paper.

The three files of mit-han-lab/tiny-training (`algorithm/assets/mcu_models/`:
mcunet-5fps, mbv2-w0.35, proxyless-w0.3) are zip archives whose member
`archive/data.pkl` is a pickle of plain Python values and numpy arrays (see
../shared/models/README.md, section "mcu_imagenet", for the format and the
int8 forward semantics). `load_mcu_pickle` turns one into an `McuModel`.

Loading never runs code from the file. A pickle may name any Python callable
("global") and call it, so the unpickler here resolves exactly four names and
nothing else, and none of them hands file data to numpy's own unpickling code:

* `numpy.core.multiarray._reconstruct` (and the numpy 2 spelling
  `numpy._core.multiarray._reconstruct`) becomes `_reconstruct_array`, which
  only accepts the `numpy.ndarray` marker below and returns an `_ArrayState`
  placeholder; the placeholder's `__setstate__` checks the state (shape,
  dtype, byte string of the right length) and builds the array with
  `np.frombuffer`.
* `numpy.ndarray` becomes a non-callable marker that `_reconstruct_array`
  accepts as the array type.
* `numpy.dtype` becomes `_make_dtype`, which accepts only the numeric type
  codes in `_DTYPE_CODES` (no object, string or structured dtypes) and returns
  a `_DtypeState` placeholder whose `__setstate__` accepts only a byte order.
* `_codecs.encode` (protocol 2 stores bytes as `encode(text, "latin1")`)
  becomes `_latin1_encode`, which accepts only a str and the latin-1 codec,
  so no codec module is looked up by a name taken from the file.

Any other global, and any persistent id (torch's way to point at tensor
storage), is refused with a TTEError naming it. The opcodes that call
something (REDUCE, BUILD, NEWOBJ, OBJ, ...) can then only reach these
wrappers and the builtin containers.
"""
from __future__ import annotations

import _compat_pickle
import io
import math
import os
import pickle
import zipfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tte.errors import TTEError, UnsupportedError

__all__ = ["McuConv", "McuIdentityResidual", "McuConvResidual", "McuBlock", "McuModel",
           "load_mcu_pickle"]

DATA_MEMBER = "archive/data.pkl"
MAX_PICKLE_BYTES = 256 * 1024 * 1024  # the published files hold 0.6-1.0 MB
DEFAULT_INPUT_SIZE = 128

# --------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class McuConv:
    """One int8 convolution with its quantization parameters (per-channel weights).

    Forward (published semantics): acc = conv(x - x_zero, weight) + bias,
    y = clamp(round(acc * x_scale * w_scales[c] / y_scale) + y_zero, -128, 127),
    zero padding of `padding` pixels in the shifted (x - x_zero) domain.
    Arrays are read-only copies of the file's data.
    """
    name: str                      # "first_conv", "blocks.3.depthwise", "classifier", ...
    in_channels: int
    out_channels: int
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    groups: int
    depthwise: bool                # groups == in_channels == out_channels (> 1)
    padding: tuple[int, int]       # ((kh - 1) // 2, (kw - 1) // 2)
    weight: np.ndarray             # int8, (out, in // groups, kh, kw), zero point 0
    bias: np.ndarray               # int32, (out,)
    w_scales: np.ndarray           # float64, (out,) (float32 in the files, widened exactly)
    x_scale: float
    x_zero: int
    y_scale: float
    y_zero: int
    in_size: int | None = None     # spatial size recorded in the file, if any
    out_size: int | None = None

    @property
    def kind(self) -> str:
        """'depthwise', 'pointwise' (1x1, groups 1), 'grouped' or 'conv'."""
        if self.depthwise:
            return "depthwise"
        if self.groups > 1:
            return "grouped"
        return "pointwise" if self.kernel_size == (1, 1) else "conv"

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        return (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1

    @property
    def num_params(self) -> int:
        return int(self.weight.size + self.bias.size)


@dataclass(frozen=True)
class McuIdentityResidual:
    """y = clamp(round(((x - x_zero) * x_scale + (b - zb) * sb) / y_scale) + y_zero)
    where x is the block input and b (scale sb, zero zb) the block's last conv output."""
    x_scale: float
    x_zero: int
    y_scale: float
    y_zero: int


@dataclass(frozen=True, eq=False)
class McuConvResidual:
    """A conv shortcut: a = conv(block input); the sum uses a's scale (conv.y_scale,
    conv.y_zero) and is requantized to (out_scale, out_zero)."""
    conv: McuConv
    out_scale: float
    out_zero: int


@dataclass(frozen=True, eq=False)
class McuBlock:
    index: int
    pointwise1: McuConv | None
    depthwise: McuConv | None
    pointwise2: McuConv | None
    residual: McuIdentityResidual | McuConvResidual | None

    def main_convs(self) -> list[McuConv]:
        return [c for c in (self.pointwise1, self.depthwise, self.pointwise2) if c is not None]

    def convs(self) -> list[McuConv]:
        """Convolutions in tiny-training's module order: pointwise1, depthwise,
        pointwise2, then the shortcut conv (QuantizedMbBlock registers `conv`
        before `residual_conv`, and runs it first too)."""
        extra = [self.residual.conv] if isinstance(self.residual, McuConvResidual) else []
        return self.main_convs() + extra


@dataclass(frozen=True, eq=False)
class McuModel:
    name: str
    first_conv: McuConv
    blocks: tuple[McuBlock, ...]
    feature_mix: McuConv | None
    classifier: McuConv
    input_shape: tuple[int, int, int] = (3, DEFAULT_INPUT_SIZE, DEFAULT_INPUT_SIZE)
    source: str = field(default="", repr=False)

    @property
    def num_classes(self) -> int:
        return self.classifier.out_channels

    def conv_layers(self) -> list[McuConv]:
        """All convolutions, index = layer number, in execution order.

        first_conv, each block's pointwise1 / depthwise / pointwise2 (absent ones
        skipped; a conv shortcut after pointwise2), feature_mix, classifier. This
        is the order of `get_all_conv_ops` (model.modules() filtered on Conv2d) in
        tiny-training's algorithm/core/utils/partial_backward.py, so the published
        sparse-update schemes (n_bias_update, manual_weight_idx,
        weight_update_ratio) index this list directly. In tiny-training's training
        code the classifier is replaced by a float Linear head and is not counted
        there; the compiler side (compilation/) keeps it as the last conv.
        """
        layers = [self.first_conv]
        for block in self.blocks:
            layers.extend(block.convs())
        if self.feature_mix is not None:
            layers.append(self.feature_mix)
        layers.append(self.classifier)
        return layers

    @property
    def num_params(self) -> int:
        return sum(c.num_params for c in self.conv_layers())

    @property
    def weight_bytes(self) -> int:
        """Bytes of int8 weights (biases and scales not included)."""
        return sum(int(c.weight.nbytes) for c in self.conv_layers())


# --------------------------------------------------------------------------------------
# the restricted unpickler
# --------------------------------------------------------------------------------------

# numeric dtypes an array in these files may have, by the codes numpy pickles use
_DTYPE_CODES = frozenset({"b1", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8",
                          "f2", "f4", "f8"})
_BYTE_ORDERS = frozenset({"<", ">", "|", "="})


class _Marker:
    """Stands for `numpy.ndarray` inside the pickle; cannot be called."""
    __slots__ = ()

    def __repr__(self) -> str:
        return "<numpy.ndarray marker>"


_NDARRAY = _Marker()


class _Refused(Exception):
    """A pickle step that a well-formed file never takes; becomes a TTEError."""


class _DtypeState:
    """What `numpy.dtype(code, align, copy)` produced: a numeric dtype, then BUILD
    gives its byte order."""
    __slots__ = ("dtype",)

    def __init__(self, code: str):
        self.dtype = np.dtype(code)

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) >= 5 and isinstance(state[1], str)
                and state[1] in _BYTE_ORDERS and state[2] is None and state[3] is None
                and state[4] is None):
            raise _Refused(f"dtype state {_short(state)} is not that of a plain numeric dtype")
        if state[1] in "<>" and self.dtype.itemsize > 1:
            self.dtype = self.dtype.newbyteorder(state[1])


class _ArrayState:
    """What `_reconstruct(ndarray, ...)` produced; BUILD fills in the array."""
    __slots__ = ("array",)

    def __init__(self) -> None:
        self.array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) == 5):
            raise _Refused(f"array state {_short(state)} is not (version, shape, dtype, "
                           "fortran, data)")
        _, shape, dtype, fortran, data = state
        if not (isinstance(shape, tuple) and all(_is_int(n) and n >= 0 for n in shape)):
            raise _Refused(f"array shape {_short(shape)} is not a tuple of sizes")
        if not isinstance(dtype, _DtypeState):
            raise _Refused(f"array dtype {_short(dtype)} was not made by numpy.dtype")
        if not isinstance(fortran, bool) or not isinstance(data, bytes):
            raise _Refused("array data is not a byte string")
        count = math.prod(shape)
        if len(data) != count * dtype.dtype.itemsize:
            raise _Refused(f"array of shape {shape} and dtype {dtype.dtype} needs "
                           f"{count * dtype.dtype.itemsize} bytes, the file gives {len(data)}")
        flat = np.frombuffer(data, dtype=dtype.dtype, count=count)
        array = flat.reshape(shape, order="F" if fortran else "C")
        self.array = np.ascontiguousarray(array.astype(dtype.dtype.newbyteorder("="),
                                                       copy=True))


def _reconstruct_array(subtype: Any, shape: Any, typecode: Any) -> _ArrayState:
    if subtype is not _NDARRAY:
        raise _Refused(f"_reconstruct is asked to build {_short(subtype)}, not numpy.ndarray")
    if not isinstance(shape, tuple) or not isinstance(typecode, (bytes, str)):
        raise _Refused("_reconstruct called with unexpected arguments")
    return _ArrayState()


def _make_dtype(code: Any, align: Any = False, copy: Any = False) -> _DtypeState:
    if not isinstance(code, str) or code not in _DTYPE_CODES:
        raise _Refused(f"numpy.dtype({_short(code)}) is not a plain numeric dtype")
    if not isinstance(align, bool) or not isinstance(copy, bool):
        raise _Refused("numpy.dtype called with unexpected arguments")
    return _DtypeState(code)


def _latin1_encode(text: Any, encoding: Any = "utf-8", errors: Any = "strict") -> bytes:
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
        raise _Refused(f"_codecs.encode with {type(text).__name__} and codec "
                       f"{_short(encoding)}; only encode(text, 'latin1') is allowed")
    return text.encode("latin-1")


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct_array,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct_array,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _make_dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class _RefusedGlobal(Exception):
    def __init__(self, what: str):
        super().__init__(what)
        self.what = what


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except (KeyError, TypeError):
            raise _RefusedGlobal(_python3_name(module, name)) from None

    def persistent_load(self, pid: Any) -> Any:
        raise _RefusedGlobal(f"persistent id {_short(pid)} (data stored outside the pickle, "
                             "as torch tensors are)")


def _python3_name(module: str, name: str) -> str:
    """The name a protocol 0-2 pickle's Python 2 spelling stands for (__builtin__.eval
    is builtins.eval), for the error message only: the allowlist matches exact names."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    else:
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    return f"{module}.{name}"


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --------------------------------------------------------------------------------------
# reading the file
# --------------------------------------------------------------------------------------


def load_mcu_pickle(path: str | os.PathLike) -> McuModel:
    """Load one of tiny-training's int8 model files (zip with archive/data.pkl).

    Raises TTEError when the file cannot be read, is not such an archive, is
    truncated, asks the unpickler for anything but numpy arrays and plain
    values, or does not hold the expected structure (keys, dtypes, shapes).
    """
    source = os.fspath(path)
    data = _read_member(source)
    try:
        root = _RestrictedUnpickler(io.BytesIO(data)).load()
    except _RefusedGlobal as exc:
        raise TTEError(f"refusing to load {source}: the pickle asks for {exc.what}, which "
                       "could run code; TTE loads only numpy arrays and plain Python "
                       "values") from None
    except _Refused as exc:
        raise TTEError(f"refusing to load {source}: {exc}; TTE loads only numpy arrays and "
                       "plain Python values") from None
    except (EOFError, pickle.UnpicklingError) as exc:
        raise TTEError(f"{source}: {DATA_MEMBER} is truncated or corrupt ({exc})") from None
    except (MemoryError, RecursionError) as exc:
        raise TTEError(f"{source}: {DATA_MEMBER} is too large or too deeply nested to "
                       f"load ({type(exc).__name__})") from None
    except Exception as exc:  # a malformed opcode sequence: wrong stack contents etc.
        raise TTEError(f"{source}: {DATA_MEMBER} is corrupt: unpickling failed with "
                       f"{type(exc).__name__}: {exc}") from None
    name = os.path.splitext(os.path.basename(source))[0]
    return _Builder(source, name).model(root)


def _read_member(source: str) -> bytes:
    try:
        with open(source, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise TTEError(f"cannot read {source}: {exc.strerror or exc}") from None
    if not raw.startswith(b"PK\x03\x04") and not raw.startswith(b"PK\x05\x06"):
        kind = "a bare pickle" if raw[:1] == b"\x80" else f"starts with {raw[:4]!r}"
        raise TTEError(f"{source} is not an mcu model file: not a zip archive ({kind}); "
                       f"expected a zip holding {DATA_MEMBER}")
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            names = archive.namelist()
            member = _find_data_member(source, names)
            info = archive.getinfo(member)
            if info.file_size > MAX_PICKLE_BYTES:
                raise TTEError(f"{source}: {member} is {info.file_size} bytes, more than "
                               f"the {MAX_PICKLE_BYTES} a model file of this kind may hold")
            return archive.read(member)
    except TTEError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError,
            NotImplementedError, RuntimeError) as exc:
        raise TTEError(f"{source} is truncated or corrupt: the zip archive cannot be read "
                       f"({exc})") from None


def _find_data_member(source: str, names: list[str]) -> str:
    if DATA_MEMBER in names:
        return DATA_MEMBER
    # torch.save names the top folder after the archive; accept one such member
    candidates = [n for n in names if n.count("/") == 1 and n.endswith("/data.pkl")]
    if len(candidates) == 1:
        return candidates[0]
    shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "") if names else "none"
    raise TTEError(f"{source} has no {DATA_MEMBER} (members: {shown}); it is not an mcu "
                   "model file")


# --------------------------------------------------------------------------------------
# checking the structure and building the model
# --------------------------------------------------------------------------------------

_CONV_PARAMS = ("weight", "bias", "w_scales", "x_scale", "x_zero", "y_scale", "y_zero")


class _Builder:
    def __init__(self, source: str, name: str):
        self.source, self.name = source, name

    def fail(self, where: str, problem: str) -> TTEError:
        return TTEError(f"{self.source}: unexpected structure: {where} {problem}")

    # --- plain values -------------------------------------------------------------------

    def get(self, d: Any, key: str, where: str) -> Any:
        if not isinstance(d, dict):
            raise self.fail(where, f"is {type(d).__name__}, expected a dict")
        if key not in d:
            keys = ", ".join(sorted(map(str, d))) or "none"
            raise self.fail(where, f"has no key {key!r} (keys: {keys})")
        return d[key]

    def positive_int(self, value: Any, where: str) -> int:
        if not _is_int(value) or value <= 0:
            raise self.fail(where, f"is {_short(value)}, expected a positive integer")
        return int(value)

    def pair(self, value: Any, where: str) -> tuple[int, int]:
        if _is_int(value):
            value = (value, value)
        if (not isinstance(value, (tuple, list)) or len(value) != 2
                or not all(_is_int(v) and v > 0 for v in value)):
            raise self.fail(where, f"is {_short(value)}, expected a positive int or a pair")
        return int(value[0]), int(value[1])

    def scale(self, value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or value <= 0:
            raise self.fail(where, f"is {_short(value)}, expected a positive finite number")
        return float(value)

    def zero_point(self, value: Any, where: str) -> int:
        if not _is_int(value) or not -128 <= value <= 127:
            raise self.fail(where, f"is {_short(value)}, expected an int8 zero point")
        return int(value)

    def array(self, value: Any, where: str, kinds: tuple[str, ...], shape: tuple[int, ...]
              ) -> np.ndarray:
        if not isinstance(value, _ArrayState) or value.array is None:
            raise self.fail(where, f"is {type(value).__name__}, expected a numpy array")
        array = value.array
        if str(array.dtype) not in kinds:
            raise self.fail(where, f"has dtype {array.dtype}, expected {' or '.join(kinds)}")
        if array.shape != shape:
            raise self.fail(where, f"has shape {array.shape}, expected {shape}")
        return array

    # --- layers -------------------------------------------------------------------------

    def conv(self, d: Any, where: str, name: str, extra: tuple[str, ...] = ()) -> McuConv:
        cin = self.positive_int(self.get(d, "in_channel", where), f"{where}['in_channel']")
        cout = self.positive_int(self.get(d, "out_channel", where), f"{where}['out_channel']")
        kernel = self.pair(self.get(d, "kernel_size", where), f"{where}['kernel_size']")
        stride = self.pair(self.get(d, "stride", where), f"{where}['stride']")
        groups = self.positive_int(self.get(d, "groups", where), f"{where}['groups']")
        if cin % groups or cout % groups:
            raise self.fail(where, f"has groups {groups}, which does not divide in_channel "
                                   f"{cin} and out_channel {cout}")
        depthwise = groups == cin == cout and groups > 1
        flag = d.get("depthwise", False)
        if not isinstance(flag, bool):
            raise self.fail(f"{where}['depthwise']", f"is {_short(flag)}, expected a bool")
        if flag != depthwise:
            raise self.fail(where, f"says depthwise={flag}, but groups {groups}, in_channel "
                                   f"{cin}, out_channel {cout} make it "
                                   f"{'' if depthwise else 'not '}depthwise")
        sizes = {}
        for key in ("in_shape", "out_shape"):
            if d.get(key) is not None:
                sizes[key] = self.positive_int(d[key], f"{where}[{key!r}]")
        pw = f"{where}['params']"
        params = self.get(d, "params", where)
        for key in _CONV_PARAMS + extra:
            self.get(params, key, pw)
        weight = self.array(params["weight"], f"{pw}['weight']", ("int8",),
                            (cout, cin // groups, *kernel))
        bias = self.array(params["bias"], f"{pw}['bias']", ("int32",), (cout,))
        w_scales = self.array(params["w_scales"], f"{pw}['w_scales']",
                              ("float32", "float64"), (cout,)).astype(np.float64)
        if not (np.all(np.isfinite(w_scales)) and np.all(w_scales > 0)):
            raise self.fail(f"{pw}['w_scales']", "has a value that is not positive and finite")
        for a in (weight, bias, w_scales):
            a.flags.writeable = False
        return McuConv(
            name=name, in_channels=cin, out_channels=cout, kernel_size=kernel, stride=stride,
            groups=groups, depthwise=depthwise,
            padding=((kernel[0] - 1) // 2, (kernel[1] - 1) // 2),
            weight=weight, bias=bias, w_scales=w_scales,
            x_scale=self.scale(params["x_scale"], f"{pw}['x_scale']"),
            x_zero=self.zero_point(params["x_zero"], f"{pw}['x_zero']"),
            y_scale=self.scale(params["y_scale"], f"{pw}['y_scale']"),
            y_zero=self.zero_point(params["y_zero"], f"{pw}['y_zero']"),
            in_size=sizes.get("in_shape"), out_size=sizes.get("out_shape"))

    def residual(self, d: Any, where: str, index: int
                 ) -> McuIdentityResidual | McuConvResidual | None:
        if d is None:
            return None
        if not isinstance(d, dict):
            raise self.fail(where, f"is {type(d).__name__}, expected a dict or None")
        pw = f"{where}['params']"
        if "kernel_size" in d:
            conv = self.conv(d, where, f"blocks.{index}.residual", extra=("out_scale", "out_zero"))
            return McuConvResidual(conv, self.scale(d["params"]["out_scale"], f"{pw}['out_scale']"),
                                   self.zero_point(d["params"]["out_zero"], f"{pw}['out_zero']"))
        params = self.get(d, "params", where)
        for key in ("x_scale", "x_zero", "y_scale", "y_zero"):
            self.get(params, key, pw)
        return McuIdentityResidual(
            x_scale=self.scale(params["x_scale"], f"{pw}['x_scale']"),
            x_zero=self.zero_point(params["x_zero"], f"{pw}['x_zero']"),
            y_scale=self.scale(params["y_scale"], f"{pw}['y_scale']"),
            y_zero=self.zero_point(params["y_zero"], f"{pw}['y_zero']"))

    def block(self, d: Any, index: int) -> McuBlock:
        where = f"blocks[{index}]"
        convs = {}
        for key in ("pointwise1", "depthwise", "pointwise2"):
            value = self.get(d, key, where)
            convs[key] = None if value is None else \
                self.conv(value, f"{where}[{key!r}]", f"blocks.{index}.{key}")
        if d.get("se") is not None:
            raise UnsupportedError(f"{self.source}: {where} has a squeeze-and-excitation "
                                   "module ('se'), which TTE does not support (nor does "
                                   "tiny-training's builder)")
        if not any(convs.values()):
            raise self.fail(where, "has no convolution")
        residual = self.residual(self.get(d, "residual", where), f"{where}['residual']", index)
        return McuBlock(index, convs["pointwise1"], convs["depthwise"], convs["pointwise2"],
                        residual)

    # --- the network --------------------------------------------------------------------

    def model(self, root: Any) -> McuModel:
        if not isinstance(root, dict):
            raise self.fail("the pickled value", f"is {type(root).__name__}, expected a dict")
        first = self.conv(self.get(root, "first_conv", "the model dict"), "['first_conv']",
                          "first_conv")
        blocks_raw = self.get(root, "blocks", "the model dict")
        if not isinstance(blocks_raw, (list, tuple)):
            raise self.fail("['blocks']", f"is {type(blocks_raw).__name__}, expected a list")
        blocks = tuple(self.block(b, i) for i, b in enumerate(blocks_raw))
        mix_raw = self.get(root, "feature_mix", "the model dict")
        mix = None if mix_raw is None else self.conv(mix_raw, "['feature_mix']", "feature_mix")
        classifier = self.conv(self.get(root, "classifier", "the model dict"),
                               "['classifier']", "classifier")
        size = first.in_size or DEFAULT_INPUT_SIZE
        model = McuModel(self.name, first, blocks, mix, classifier, (first.in_channels, size, size),
                         self.source)
        self.check_wiring(model)
        return model

    def check_wiring(self, model: McuModel) -> None:
        """Channels chain from layer to layer; spatial sizes recorded in the file
        agree with the ones the strides and paddings give; residuals add equal shapes."""
        c, h, w = model.input_shape

        def through(conv: McuConv, c: int, h: int, w: int) -> tuple[int, int, int]:
            if conv.in_channels != c:
                raise self.fail(conv.name, f"takes {conv.in_channels} channels, but its input "
                                           f"has {c}")
            if conv.in_size is not None and conv.in_size != h:
                raise self.fail(conv.name, f"records input size {conv.in_size}, but its input "
                                           f"is {h}x{w}")
            h, w = conv.output_size(h, w)
            if h < 1 or w < 1:
                raise self.fail(conv.name, "produces an empty feature map")
            if conv.out_size is not None and conv.out_size != h:
                raise self.fail(conv.name, f"records output size {conv.out_size}, but "
                                           f"computes {h}x{w}")
            return conv.out_channels, h, w

        c, h, w = through(model.first_conv, c, h, w)
        for block in model.blocks:
            shape_in = (c, h, w)
            for conv in block.main_convs():
                c, h, w = through(conv, c, h, w)
            if isinstance(block.residual, McuConvResidual):
                shortcut = through(block.residual.conv, *shape_in)
                if shortcut != (c, h, w):
                    raise self.fail(f"blocks[{block.index}]", f"adds a shortcut of shape "
                                    f"{shortcut} to a branch of shape {(c, h, w)}")
            elif block.residual is not None and shape_in != (c, h, w):
                raise self.fail(f"blocks[{block.index}]", f"has an identity residual but maps "
                                f"{shape_in} to {(c, h, w)}")
        if model.feature_mix is not None:
            c, h, w = through(model.feature_mix, c, h, w)
        # global average pool, then the classifier runs on a 1x1 map
        if model.classifier.kernel_size != (1, 1) or model.classifier.stride != (1, 1) \
                or model.classifier.groups != 1:
            raise self.fail("classifier", "is not a 1x1 convolution with stride 1 and groups 1")
        through(model.classifier, c, 1, 1)
