"""Distilled sets as pictures: pixels in [0, 1] (input transforms undone), one row per class.

`benchsuite show` and the leaderboard site both draw sets with :func:`save_grid`. A whitened set
(ZCA: MTT, PAD, the latent -mtt methods) is mapped back with the same fit on the train set, so
the dataset is loaded once per (dataset, data root) and kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from benchsuite.api import SyntheticSet
from benchsuite.data import DataSources, load_dataset


class Renderer:
    """Turns saved sets into image grids; remembers the train sets it loaded to undo ZCA."""

    def __init__(self, plugins: Any, data_root: str | None = None, cache_dir: Path | None = None) -> None:
        self.plugins = plugins
        self.data_root = data_root
        self.cache_dir = cache_dir
        self._train: dict[str, Tensor] = {}

    def _train_images(self, dataset: str) -> Tensor:
        if dataset not in self._train:
            from benchsuite.runner import default_cache_dir

            data = load_dataset(self.plugins.datasets.get(dataset),
                                DataSources.resolve(self.data_root, allow_download=False),
                                Path(self.cache_dir or default_cache_dir()), torch.device("cpu"))
            self._train = {dataset: data.train.images}  # one train set in memory at a time
        return self._train[dataset]

    def pixels(self, syn: SyntheticSet, dataset: str | None) -> tuple[Tensor, int, str | None]:
        """The set's images in [0, 1] sorted by class, the images per row, and a note of what was
        undone (``None`` when nothing was)."""
        images, note = syn.images.detach().cpu().float(), None
        known = dataset is not None and dataset in self.plugins.datasets
        if syn.transform and known:
            from benchsuite.ops.zca import zca_from_description

            images = zca_from_description(syn.transform, self._train_images(dataset)).inverse(images)
            note = f"un-whitened with the {syn.transform.get('name', 'input')} fit on the {dataset} train set"
        if known:
            spec = self.plugins.datasets.get(dataset).spec
            images = images * torch.tensor(spec.std).view(1, -1, 1, 1) + torch.tensor(spec.mean).view(1, -1, 1, 1)
        labels = syn.hard_labels().cpu()
        order = torch.argsort(labels, stable=True)
        counts = torch.bincount(labels)
        per_row = int(counts.max()) if len(counts) else 8
        return images[order].clamp(0, 1), per_row, note

    def save_grid(self, syn: SyntheticSet, dataset: str | None, out: Path, *, max_per_class: int | None = None,
                  scale: float = 1.0, classes_as_columns: bool = False) -> str | None:
        """Write a PNG grid (one row per class) of ``syn``; returns the note of :meth:`pixels`.
        ``max_per_class`` keeps the first images of each class (thumbnails); ``scale`` resizes;
        ``classes_as_columns`` puts one class per column instead (a wide strip for small IPC)."""
        from torchvision.utils import make_grid, save_image

        images, per_row, note = self.pixels(syn, dataset)
        if max_per_class is not None and per_row > max_per_class:
            labels = torch.sort(syn.hard_labels().cpu(), stable=True).values
            first = torch.cat([torch.nonzero(labels == c).flatten()[:max_per_class] for c in labels.unique()])
            images, per_row = images[first], max_per_class
        classes = len(images) // per_row if per_row else 0
        if classes_as_columns and classes * per_row == len(images):
            order = torch.arange(len(images)).view(classes, per_row).t().flatten()
            images, per_row = images[order], classes
        grid = make_grid(images, nrow=per_row, padding=1, pad_value=1.0)
        if scale != 1.0:
            size = [max(1, int(round(grid.shape[1] * scale))), max(1, int(round(grid.shape[2] * scale)))]
            grid = torch.nn.functional.interpolate(grid[None], size=size, mode="area" if scale < 1 else "nearest")[0]
        out.parent.mkdir(parents=True, exist_ok=True)
        save_image(grid, out)
        return note
