"""The data the perf benchmarks time on: real Fashion-MNIST when the shared data folder is beside
the repo, else random tensors of the same shape (timings depend on shapes, not values)."""

from __future__ import annotations

import torch

from benchsuite.api import LabeledData
from benchsuite.data import DataSources, builtin_entry, load_dataset


def fashionmnist(cache_dir, fallback_train: int, fallback_test: int = 0) -> tuple[LabeledData, LabeledData | None]:
    """(train, test) of Fashion-MNIST; without the shared folder, random stand-ins of the given sizes."""
    from conftest import SHARED_DATA

    if (SHARED_DATA / "fashion_mnist").exists():
        d = load_dataset(builtin_entry("fashionmnist"), DataSources(root=SHARED_DATA, allow_download=False),
                         cache_dir, torch.device("cpu"))
        return d.train, d.test
    g = torch.Generator().manual_seed(0)

    def fake(n: int) -> LabeledData:
        return LabeledData(torch.randn(n, 1, 28, 28, generator=g), torch.arange(n) % 10, 10)

    return fake(fallback_train), (fake(fallback_test) if fallback_test else None)
