"""The transfer experiment's data sets: the loader lives in tte/datasets.py (`tte search`
uses it too); this module keeps the names the benchmark and its tests import."""
from tte.datasets import DATASETS, Split, _raw, load_dataset, resize_bilinear

__all__ = ["DATASETS", "Split", "_raw", "load_dataset", "resize_bilinear"]
