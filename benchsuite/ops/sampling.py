"""Class-wise sampling of real images and initialisation of synthetic sets (docs/datasets.md,
"Real batches per class"; docs/methods/dc.md).

DC, DM and the methods built on them draw their real batches per class (a random permutation of
the class's indices, as the official ``get_images(c, n)``) and initialise the synthetic set with
real images or Gaussian noise. Every draw comes from an explicit CPU ``torch.Generator``; the
images are gathered from the device tensor with one indexing operation for all classes.
"""

from __future__ import annotations

import torch
from torch import Tensor

from benchsuite.api import LabeledData
from benchsuite.errors import ConfigError, MethodError

__all__ = ["class_batch_indices", "sample_classes", "init_synthetic", "INITS"]

INITS: tuple[str, ...] = ("real", "noise")


def class_batch_indices(real: LabeledData, n: int, generator: torch.Generator) -> Tensor:
    """Row indices ``[C·n']`` of ``n'`` random images of each class, class-major, drawn without
    replacement within a class; ``n' = min(n, smallest class)`` so every class gets the same count."""
    by_class = real.class_indices()
    counts = [len(ix) for ix in by_class]
    if min(counts) == 0:
        empty = [c for c, k in enumerate(counts) if k == 0]
        raise MethodError(f"class(es) {empty} have no training images")
    n = min(int(n), min(counts))
    picks = [ix[torch.randperm(len(ix), generator=generator)[:n].to(ix.device)] for ix in by_class]
    return torch.cat(picks)


def sample_classes(real: LabeledData, n: int, generator: torch.Generator) -> tuple[Tensor, int]:
    """``(images [C·n', ...], n')``: a real batch of every class, class-major, in one gather."""
    idx = class_batch_indices(real, n, generator)
    return real.images[idx], idx.shape[0] // real.num_classes


def init_synthetic(real: LabeledData, ipc: int, init: str, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``(images [C·ipc, ...], labels [C·ipc])`` in class order, on the real data's device.

    ``init="real"``: ``ipc`` distinct random real images per class (a copy); ``"noise"``: standard
    normal pixels in the normalised space (the DC code's default), drawn on the CPU then moved.
    """
    if init not in INITS:
        raise ConfigError(f"unknown init {init!r}; choose one of {list(INITS)}")
    k = real.num_classes
    labels = torch.arange(k, device=real.device).repeat_interleave(ipc)
    if init == "real":
        counts = real.class_counts()
        small = [c for c, n in enumerate(counts) if n < ipc]
        if small:
            raise MethodError(f"init='real' needs {ipc} images per class; class(es) {small} have fewer")
        images = real.images[class_batch_indices(real, ipc, generator)].clone()
    else:
        images = torch.randn((k * ipc, *real.image_shape), generator=generator).to(real.device)
    return images, labels


def learnable_synthetic(
    real: LabeledData, ipc: int, init: str, lr: float, momentum: float, generator: torch.Generator
) -> tuple[Tensor, Tensor, torch.optim.Optimizer]:
    """Initialised synthetic pixels that require grad, their labels, and the SGD optimiser on them:
    the common start of every pixel-parameterised method (DC, DSA, DM)."""
    syn, labels = init_synthetic(real, ipc, init, generator)
    syn.requires_grad_(True)
    return syn, labels, torch.optim.SGD([syn], lr=lr, momentum=momentum)
