"""The DC-lineage ConvNet (docs/architectures.md, "ConvNet-3") and its ablation variants.

Each block is ``Conv3x3 → Norm → Act → Pool(2, 2)``; then flatten and ``Linear(width·h·w, C)``.
28×28 inputs are not resized: the first conv is padded by 3 so the map becomes 32×32.
Modules are registered in the order conv1, norm1, (act1, pool1), conv2, norm2, …, classifier, so
``parameters()`` flattens in the per-layer order of docs/architectures.md ("ConvNet-3"); PAD's
shallow-layer mask relies on it.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from benchsuite.archs.base import EmbeddingClassifier
from benchsuite.archs.norms import ACTS, NORMS, POOLS, check_size, conv_out, make_act, make_norm, make_pool
from benchsuite.errors import ConfigError


def first_conv_padding(image_size: int, normal: int) -> int:
    """28×28 inputs get 2 extra pixels of padding per side so the first map is 32×32 (for 3×3: 3)."""
    return normal + 2 if image_size == 28 else normal


class ConvNet(EmbeddingClassifier):
    def __init__(
        self,
        channels: int,
        num_classes: int,
        image_size: int,
        width: int = 128,
        depth: int = 3,
        act: str = "relu",
        norm: str = "instance",
        pool: str = "avg",
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ConfigError(f"ConvNet depth must be >= 1, got {depth}")
        if norm not in NORMS:
            raise ConfigError(f"unknown ConvNet norm {norm!r}; choose one of {list(NORMS)}")
        if act not in ACTS:
            raise ConfigError(f"unknown ConvNet activation {act!r}; choose one of {list(ACTS)}")
        if pool not in POOLS:
            raise ConfigError(f"unknown ConvNet pooling {pool!r}; choose one of {list(POOLS)}")
        self.width, self.depth = width, depth
        layers: "OrderedDict[str, nn.Module]" = OrderedDict()
        size, in_ch = image_size, channels
        for d in range(1, depth + 1):
            pad = first_conv_padding(image_size, 1) if d == 1 else 1
            size = conv_out(size, 3, pad)
            layers[f"conv{d}"] = nn.Conv2d(in_ch, width, kernel_size=3, padding=pad)
            layers[f"norm{d}"] = make_norm(norm, width, (size, size))
            layers[f"act{d}"] = make_act(act)
            layers[f"pool{d}"] = make_pool(pool)
            if pool != "none":
                size //= 2
            if size < 1:
                raise ConfigError(
                    f"ConvNet depth {depth} cannot take {image_size}x{image_size} images: after "
                    f"block {d} the feature map is 0x0 (each block halves it); use depth <= {d - 1} "
                    f"or larger images"
                )
            in_ch = width
        check_size(size, f"convnet-d{depth}", image_size, "before the classifier")
        self.features = nn.Sequential(layers)
        self.feature_shape = (width, size, size)
        self.embed_dim = width * size * size
        self.classifier = nn.Linear(self.embed_dim, num_classes)
