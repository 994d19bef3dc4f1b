"""Datasets: specs, the sources they can be read from, and the cached loading path.

>>> entry = builtin_entry("fashionmnist")
>>> data = load_dataset(entry, DataSources.resolve(), cache_dir, torch.device("cpu"))  # doctest: +SKIP
"""

from benchsuite.data.base import (
    DATA_ROOT_ENV,
    DataSources,
    DatasetEntry,
    Located,
    LoadedDataset,
    RawSplits,
    Source,
    SourceMiss,
)
from benchsuite.data.builtin import BUILTIN_DATASETS, builtin_entry
from benchsuite.data.idx_source import parse_idx, read_idx
from benchsuite.data.loading import load_dataset
from benchsuite.data.spec import DatasetSpec

__all__ = [
    "BUILTIN_DATASETS",
    "DATA_ROOT_ENV",
    "DataSources",
    "DatasetEntry",
    "DatasetSpec",
    "LoadedDataset",
    "Located",
    "RawSplits",
    "Source",
    "SourceMiss",
    "builtin_entry",
    "load_dataset",
    "parse_idx",
    "read_idx",
]
