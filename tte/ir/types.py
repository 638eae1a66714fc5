"""Value-level types of the IR: dtypes, quantization parameters, roles, values."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np


class DType(str, enum.Enum):
    f32 = "f32"
    f16 = "f16"
    i8 = "i8"
    i32 = "i32"
    u8 = "u8"  # bit-packed masks and raw bytes

    @property
    def numpy(self) -> np.dtype:
        return np.dtype(_NUMPY[self])

    @property
    def itemsize(self) -> int:
        return self.numpy.itemsize

    @property
    def is_float(self) -> bool:
        return self in (DType.f32, DType.f16)

    @staticmethod
    def from_numpy(dt: np.dtype) -> "DType":
        for k, v in _NUMPY.items():
            if np.dtype(v) == np.dtype(dt):
                return k
        raise KeyError(str(dt))


_NUMPY = {DType.f32: "float32", DType.f16: "float16", DType.i8: "int8",
          DType.i32: "int32", DType.u8: "uint8"}


@dataclass(frozen=True)
class QuantParams:
    """Affine quantization: real = scale * (q - zero_point); per channel when axis is set."""
    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int | None = None

    def __post_init__(self) -> None:
        if self.axis is None and (len(self.scale) != 1 or len(self.zero_point) != 1):
            raise ValueError("per-tensor quantization takes one scale and one zero point")

    @property
    def per_channel(self) -> bool:
        return self.axis is not None


class Role(str, enum.Enum):
    """Where a value lives and who may change it."""
    input = "input"            # fed by the caller every step (image, label)
    activation = "activation"  # produced by a node, lives in the arena
    frozen = "frozen"          # parameter never updated: flash, const
    trainable = "trainable"    # parameter updated in place: SRAM
    partial = "partial"        # meta["train_channels"] of one axis in SRAM, the rest in flash
    state = "state"            # optimizer state (momentum): SRAM, persists across steps
    const = "const"            # compile-time constant that is not a model parameter

    @property
    def is_param(self) -> bool:
        return self in (Role.frozen, Role.trainable, Role.partial)

    @property
    def persistent(self) -> bool:
        return self in (Role.frozen, Role.trainable, Role.partial, Role.state, Role.const)


@dataclass
class Value:
    name: str
    shape: tuple[int, ...]
    dtype: DType = DType.f32
    role: Role = Role.activation
    quant: QuantParams | None = None
    meta: dict = field(default_factory=dict)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def type_str(self) -> str:
        dims = "x".join(str(d) for d in self.shape) if self.shape else "scalar"
        q = ""
        if self.quant is not None:
            q = f" q(axis={self.quant.axis})" if self.quant.per_channel else \
                f" q({self.quant.scale[0]:.4g},{self.quant.zero_point[0]})"
        return f"{self.dtype.value}[{dims}]{q}"
