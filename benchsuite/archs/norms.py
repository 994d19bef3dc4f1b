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


def _block_mean(x: Tensor) -> Tensor:
    """Mean of each 2×2 block (odd trailing rows/columns dropped, as ``avg_pool2d`` does).

    The four strided views are summed in ``avg_pool2d``'s order and scaled by the exact 0.25, so
    the result is bitwise that of ``avg_pool2d(x, 2, 2)``; it is 3-4× faster on the CPU for NCHW
    maps (``avg_pool2d``'s kernel there is a scalar loop; docs/performance.md).
    """
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    return (x[..., 0:h:2, 0:w:2] + x[..., 0:h:2, 1:w:2] + x[..., 1:h:2, 0:w:2]
            + x[..., 1:h:2, 1:w:2]) * 0.25


def _block_spread(g: Tensor, size: tuple[int, int]) -> Tensor:
    """The adjoint of ``_block_mean``: each value times 0.25 copied over its 2×2 block, zero in
    the dropped rows/columns of a map of spatial ``size``."""
    h, w = g.shape[-2], g.shape[-1]
    lead = g.shape[:-2]
    quarter = g * 0.25
    # Two stacks (columns, then rows) copy 3-4x faster on the CPU than one expand over both.
    rows = torch.stack([quarter, quarter], dim=-1).reshape(*lead, h, 2 * w)
    out = torch.stack([rows, rows], dim=-2).reshape(*lead, 2 * h, 2 * w)
    if (2 * h, 2 * w) != tuple(size):
        out = torch.nn.functional.pad(out, (0, size[1] - 2 * w, 0, size[0] - 2 * h))
    return out


class _BlockMean(torch.autograd.Function):
    # Autograd through the four slices would allocate and zero four input-sized gradients; this
    # backward writes one. Each function's derivative is the other, so double backward (DC's and
    # MTT's matching) stays exact too.
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        ctx.size = (x.shape[-2], x.shape[-1])
        return _block_mean(x)

    @staticmethod
    def backward(ctx, g: Tensor) -> Tensor:  # type: ignore[override]
        return _BlockSpread.apply(g, ctx.size)


class _BlockSpread(torch.autograd.Function):
    @staticmethod
    def forward(ctx, g: Tensor, size: tuple[int, int]) -> Tensor:  # type: ignore[override]
        return _block_spread(g, size)

    @staticmethod
    def backward(ctx, gg: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        return _BlockMean.apply(gg), None


class AvgPool2x2(nn.AvgPool2d):
    """``nn.AvgPool2d(2, 2)`` with the same results, computed faster on the CPU (``_block_mean``).

    Other devices keep ``avg_pool2d``: on a GPU it is one kernel where the block mean is four.
    """

    def __init__(self) -> None:
        super().__init__(kernel_size=2, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type != "cpu":
            return super().forward(x)
        if x.requires_grad and torch.is_grad_enabled():
            return _BlockMean.apply(x)
        return _block_mean(x)


def make_pool(kind: str) -> nn.Module:
    if kind == "avg":
        return AvgPool2x2()
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
