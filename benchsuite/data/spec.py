"""What the suite knows about a dataset: shape, classes, normalisation, and where to find it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset's fixed facts. ``load`` is filled by the source module that knows how to read it.

    ``digits`` marks datasets whose classes are not mirror-symmetric (MNIST, SVHN): augmentation
    must not flip them (DSA paper).
    """

    name: str
    channels: int
    image_size: int
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: tuple[str, ...] = ()
    digits: bool = False
    description: str = ""
    aliases: tuple[str, ...] = field(default=())
    # The smallest class of the official train split, when known: the largest IPC the runner
    # accepts before loading anything (a copy with fewer images is caught when it loads).
    min_train_per_class: int | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.image_size, self.image_size)

    @property
    def dsa_strategy(self) -> str:
        """The published DSA strategy: no flip for digit datasets (docs/augmentation.md, "Strategies")."""
        return "color_crop_cutout_scale_rotate" if self.digits else "color_crop_cutout_flip_scale_rotate"
