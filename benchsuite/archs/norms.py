"""Normalisation, activation and pooling layers shared by the DC-lineage networks.

"Instance norm" in the DC zoo is ``GroupNorm(C, C, affine=True)``: one group per channel, affine
parameters, no running statistics. It behaves well with tiny synthetic batches, which is why it is
the default of ConvNet, VGG11 and ResNet18.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from benchsuite.errors import ConfigError

NORMS = ("instance", "batch", "layer", "group", "none")
ACTS = ("relu", "sigmoid", "leakyrelu", "swish")
POOLS = ("avg", "max", "none")


class Swish(nn.Module):
    """``x * sigmoid(x)`` (DC's Swish; identical to SiLU)."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(x)


def make_norm(kind: str, channels: int, spatial: tuple[int, int] | None = None) -> nn.Module:
    """A 2-D normalisation layer for ``channels`` feature maps.

    ``spatial`` (H, W) is required for ``'layer'``, whose LayerNorm normalises over ``[C, H, W]``.
    """
    if kind == "instance":
        return nn.GroupNorm(channels, channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        if spatial is None:
            raise ConfigError("layer norm needs the feature map's spatial size (H, W)")
        return nn.LayerNorm([channels, spatial[0], spatial[1]])
    if kind == "group":
        if channels % 4:
            raise ConfigError(f"group norm uses 4 groups; width {channels} is not divisible by 4")
        return nn.GroupNorm(4, channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ConfigError(f"unknown norm {kind!r}; choose one of {list(NORMS)}")


def make_act(kind: str) -> nn.Module:
    if kind == "relu":
        return nn.ReLU(inplace=True)
    if kind == "sigmoid":
        return nn.Sigmoid()
    if kind == "leakyrelu":
        return nn.LeakyReLU(negative_slope=0.01)
    if kind == "swish":
        return Swish()
    raise ConfigError(f"unknown activation {kind!r}; choose one of {list(ACTS)}")


def make_pool(kind: str) -> nn.Module:
    if kind == "avg":
        return nn.AvgPool2d(kernel_size=2, stride=2)
    if kind == "max":
        return nn.MaxPool2d(kernel_size=2, stride=2)
    if kind == "none":
        return nn.Identity()
    raise ConfigError(f"unknown pooling {kind!r}; choose one of {list(POOLS)}")


def conv_out(size: int, kernel: int, padding: int, stride: int = 1) -> int:
    """Spatial size after a convolution (or pooling, with padding 0)."""
    return (size + 2 * padding - kernel) // stride + 1


def check_size(size: int, arch: str, image_size: int, where: str) -> None:
    """Raise a ConfigError naming the arch and input size if a feature map has vanished."""
    if size < 1:
        raise ConfigError(
            f"architecture {arch!r} cannot take {image_size}x{image_size} images: the feature map "
            f"shrinks to nothing {where}; use larger images or a shallower network"
        )
