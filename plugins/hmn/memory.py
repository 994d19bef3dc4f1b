"""The Hierarchical Memory Network container of HMN (Zheng et al., ECCV'24): docs/methods/hmn.md.

No official code exists, so the layer sizes are this suite's design, following the paper's
description (docs/methods/hmn.md, "The container" and "The suite's container"):

* a dataset-level memory ``m_D`` ``[c_d, s, s]`` shared by every image;
* class-level memories ``m_C`` ``[K, c_c, s, s]``;
* instance-level memories ``m_I`` ``[K, G, c_i, s, s]``, one per generated image (``G`` per class);
* a class-specific feature extractor ``f_c``: one ``k×k`` convolution ``c_d → c_f`` per class;
* one decoder ``D`` shared by all classes: ``conv3×3 → ×2 up → conv3×3 → ×2 up → conv3×3`` from
  ``c_f + c_c + c_i`` channels at ``s × s`` (``s = H / 4``) to the image, LeakyReLU(0.2) between.

Image ``i`` of class ``c`` is ``D(concat[f_c(m_D), m_C[c], m_I[c, i]])``, in the suite's
normalised pixel space. Every parameter counts toward the storage budget (IPC × K × C × H × W
float32; docs/methods/hmn.md, "The suite's container"); :func:`instances_per_class` turns the
budget left after the shared parts into the number of generated images per class (GIPC). Pruning
deletes instance memories only (:meth:`HierarchicalMemory.keep_instances`); the shared memories,
extractors and decoder are untouched, which is what makes HMN's instance-level pruning possible
(docs/methods/hmn.md, "Over-budget condensation and instance-level pruning").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchsuite.api import tensor_bytes
from benchsuite.errors import ConfigError

__all__ = ["MemoryLayout", "HierarchicalMemory", "instances_per_class", "budget_floats",
           "area_under_margin", "double_end_prune"]


@dataclass(frozen=True)
class MemoryLayout:
    """Channel sizes of the container (documented per dataset and IPC in ``__init__.py`` beside this module)."""

    dataset_channels: int      # c_d
    class_channels: int        # c_c
    instance_channels: int     # c_i
    extractor_channels: int    # c_f
    extractor_kernel: int      # k (odd)
    decoder_width: int         # channels inside the decoder

    def __post_init__(self) -> None:
        for name in ("dataset_channels", "class_channels", "instance_channels", "extractor_channels",
                     "extractor_kernel", "decoder_width"):
            if getattr(self, name) < 1:
                raise ConfigError(f"hmn.{name} must be >= 1, got {getattr(self, name)}")
        if self.extractor_kernel % 2 == 0:
            raise ConfigError(f"hmn.extractor_kernel must be odd (same padding), got {self.extractor_kernel}")


def memory_side(image_shape: tuple[int, int, int]) -> int:
    _, h, w = image_shape
    if h != w or h % 4:
        raise ConfigError(f"hmn decodes square images whose side is a multiple of 4 (two x2 upsamplings); "
                          f"got {h}x{w}")
    return h // 4


def budget_floats(ipc: int, num_classes: int, image_shape: tuple[int, int, int]) -> int:
    """The storage budget in float32 values: IPC images per class of the dataset's shape."""
    c, h, w = image_shape
    return int(ipc) * int(num_classes) * c * h * w


class HierarchicalMemory(nn.Module):
    def __init__(self, layout: MemoryLayout, num_classes: int, per_class: int,
                 image_shape: tuple[int, int, int], generator: torch.Generator) -> None:
        super().__init__()
        if per_class < 1:
            raise ConfigError(f"hmn needs at least one instance memory per class, got {per_class}")
        self.layout, self.num_classes, self.image_shape = layout, int(num_classes), tuple(image_shape)
        s = memory_side(self.image_shape)
        L, K = layout, self.num_classes

        def randn(*shape: int) -> Tensor:
            return torch.randn(shape, generator=generator)

        # Unit-variance memories, as a latent would be; the decoder sets the scale of the images.
        self.dataset_memory = nn.Parameter(randn(L.dataset_channels, s, s))
        self.class_memory = nn.Parameter(randn(K, L.class_channels, s, s))
        self.instance_memory = nn.Parameter(randn(K, per_class, L.instance_channels, s, s))
        fan_in = L.dataset_channels * L.extractor_kernel ** 2
        self.extractor_weight = nn.Parameter(
            randn(K, L.extractor_channels, L.dataset_channels, L.extractor_kernel, L.extractor_kernel)
            * (2.0 / fan_in) ** 0.5)
        self.extractor_bias = nn.Parameter(torch.zeros(K, L.extractor_channels))
        w = L.decoder_width
        c_in = L.extractor_channels + L.class_channels + L.instance_channels
        # skip_init: nn.Conv2d's own init would draw from the global RNG, which methods must not touch.
        self.decoder = nn.ModuleList([nn.utils.skip_init(nn.Conv2d, a, b, 3, padding=1)
                                      for a, b in ((c_in, w), (w, w), (w, self.image_shape[0]))])
        for conv in self.decoder:  # Kaiming-normal init from the method's own generator
            fan = conv.in_channels * 9
            with torch.no_grad():
                conv.weight.copy_(randn(*conv.weight.shape) * (2.0 / fan) ** 0.5)
                conv.bias.zero_()

    @property
    def per_class(self) -> int:
        return int(self.instance_memory.shape[1])

    def storage_floats(self) -> int:
        return int(sum(p.numel() for p in self.parameters()))

    def storage_bytes(self) -> int:
        """Bytes of every parameter as stored (its dtype's size, not an assumed float32)."""
        return sum(tensor_bytes(p) for p in self.parameters())

    def shared_floats(self) -> int:
        return self.storage_floats() - int(self.instance_memory.numel())

    def class_features(self, classes: Tensor) -> Tensor:
        """``f_c(m_D)`` for each class in ``classes`` ``[n]``: ``[n, c_f, s, s]``, one grouped conv."""
        L = self.layout
        n = classes.numel()
        weight = self.extractor_weight[classes].reshape(n * L.extractor_channels, L.dataset_channels,
                                                         L.extractor_kernel, L.extractor_kernel)
        x = self.dataset_memory.unsqueeze(0).expand(n, -1, -1, -1).reshape(1, n * L.dataset_channels,
                                                                            *self.dataset_memory.shape[1:])
        out = F.conv2d(x, weight, self.extractor_bias[classes].reshape(-1), padding=L.extractor_kernel // 2,
                       groups=n)
        return out.reshape(n, L.extractor_channels, *out.shape[2:])

    def decode(self, codes: Tensor) -> Tensor:
        h = codes
        for i, conv in enumerate(self.decoder):
            h = conv(h)
            if i < len(self.decoder) - 1:
                h = F.leaky_relu(h, 0.2)
                h = F.interpolate(h, scale_factor=2, mode="nearest")
        return h

    def generate_class(self, c: int, index: Tensor | None = None) -> Tensor:
        """Images of class ``c`` (all its instances, or those in ``index``): ``[n, C, H, W]``.
        Gradients reach m_D, f_c, m_C[c], the chosen m_I[c, i] and the decoder."""
        inst = self.instance_memory[c] if index is None else self.instance_memory[c, index]
        n = inst.shape[0]
        cls = torch.tensor([c], device=inst.device)
        shared = torch.cat([self.class_features(cls), self.class_memory[c:c + 1]], dim=1)
        return self.decode(torch.cat([shared.expand(n, -1, -1, -1), inst], dim=1))

    def generate(self) -> tuple[Tensor, Tensor]:
        """Every generated image, class-major, and its label."""
        images = torch.cat([self.generate_class(c) for c in range(self.num_classes)])
        labels = torch.arange(self.num_classes, device=images.device).repeat_interleave(self.per_class)
        return images, labels

    def keep_instances(self, keep: Tensor) -> None:
        """Keep the instance memories ``keep`` ``[K, G']`` (indices per class) and delete the rest.
        Nothing else changes."""
        if keep.ndim != 2 or keep.shape[0] != self.num_classes:
            raise ValueError(f"keep must be [num_classes, G'], got {tuple(keep.shape)}")
        kept = torch.gather(self.instance_memory.detach(), 1,
                            keep.to(self.instance_memory.device)[:, :, None, None, None]
                            .expand(-1, -1, *self.instance_memory.shape[2:]))
        self.instance_memory = nn.Parameter(kept.clone())


def instances_per_class(layout: MemoryLayout, num_classes: int, image_shape: tuple[int, int, int],
                        budget: int) -> int:
    """The most instance memories per class for which the whole container fits ``budget`` floats.
    Raises ConfigError when the shared parts alone leave no room for one image per class."""
    probe = HierarchicalMemory(layout, num_classes, 1, image_shape, torch.Generator().manual_seed(0))
    shared = probe.shared_floats()
    per_instance = layout.instance_channels * memory_side(image_shape) ** 2
    g = (budget - shared) // (num_classes * per_instance)
    if g < 1:
        raise ConfigError(
            f"hmn: the shared memories, extractors and decoder take {shared} floats, which leaves no "
            f"room for one {per_instance}-float instance memory per class within the budget of {budget} "
            f"floats; choose smaller channel sizes (e.g. --set hmn.decoder_width=8 --set hmn.dataset_channels=2)")
    return int(g)


def area_under_margin(margins: Tensor) -> Tensor:
    """AUM (Pleiss et al., 2020): the mean over recorded epochs of each sample's margin
    ``z_y − max_{k≠y} z_k``; ``margins`` is ``[epochs, N]``."""
    return margins.mean(dim=0)


def margins(logits: Tensor, labels: Tensor) -> Tensor:
    """``z_y − max_{k≠y} z_k`` per row."""
    assigned = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], float("-inf")).amax(dim=1)
    return assigned - others


def double_end_prune(aum: Tensor, drop: int, beta: float) -> Tensor:
    """Indices (sorted) to keep out of ``aum`` ``[G]`` (one class) after dropping ``drop`` images:
    the ``floor(beta·drop)`` lowest-AUM (hardest, likely mislabelled) and the rest of ``drop`` from
    the highest-AUM end (easiest, redundant); docs/methods/hmn.md, "Over-budget condensation and
    instance-level pruning"."""
    g = aum.numel()
    if not 0 <= drop < g:
        raise ValueError(f"cannot drop {drop} of {g} images")
    if not 0.0 <= beta <= 1.0:
        raise ConfigError(f"hmn.beta must be in [0, 1], got {beta}")
    hard = int(beta * drop)
    order = torch.argsort(aum, stable=True)  # ascending AUM: hardest first
    kept = order[hard:g - (drop - hard)]
    return torch.sort(kept).values
