"""The network zoo: DC-lineage ConvNets and cross-architecture nets, plus any timm model.

Every model maps ``forward(x) -> logits [N, C]`` and ``embed(x) -> [N, D]`` (the flattened feature
fed to the final classifier; DM and herding use it). A factory takes
``(channels, num_classes, image_size)`` and returns a freshly, default-initialised model; weights
come from the current torch RNG, so callers that need reproducibility wrap the call (for example
in ``torch.random.fork_rng`` with a seed drawn from their generator). Nothing here seeds anything.
"""

from __future__ import annotations

import difflib
from functools import partial
from typing import Callable

from torch import nn

from benchsuite.archs.classic import MLP, VGG11, AlexNet, LeNet
from benchsuite.archs.convnet import ConvNet
from benchsuite.archs.resnet import ResNet18
from benchsuite.archs.timm_models import TimmNet, build_timm
from benchsuite.errors import UnknownNameError

ArchFactory = Callable[[int, int, int], nn.Module]

TIMM_PREFIX = "timm:"


def _convnet(**kw) -> ArchFactory:
    return partial(_build_convnet, kw)


def _build_convnet(kw: dict, channels: int, num_classes: int, image_size: int) -> nn.Module:
    return ConvNet(channels, num_classes, image_size, **kw)


def _fixed(cls: type, **kw) -> ArchFactory:
    def factory(channels: int, num_classes: int, image_size: int) -> nn.Module:
        return cls(channels, num_classes, image_size, **kw)

    return factory


_ZOO: list[tuple[str, ArchFactory, str]] = [
    ("convnet", _convnet(), "ConvNet-3: width 128, instance norm, ReLU, avg-pool (DC/DM/MTT default)"),
    ("convnet-bn", _convnet(norm="batch"), "ConvNet-3 with BatchNorm"),
    ("convnet-ln", _convnet(norm="layer"), "ConvNet-3 with LayerNorm over [C,H,W]"),
    ("convnet-gn", _convnet(norm="group"), "ConvNet-3 with GroupNorm(4, C)"),
    ("convnet-nn", _convnet(norm="none"), "ConvNet-3 without normalisation"),
    *[(f"convnet-d{d}", _convnet(depth=d), f"ConvNet with depth {d} (instance norm)") for d in range(1, 6)],
    *[(f"convnet-w{w}", _convnet(width=w), f"ConvNet-3 with width {w}") for w in (32, 64, 256)],
    ("convnet-mp", _convnet(pool="max"), "ConvNet-3 with max-pooling"),
    ("convnet-np", _convnet(pool="none"), "ConvNet-3 without pooling"),
    ("convnet-sigmoid", _convnet(act="sigmoid"), "ConvNet-3 with sigmoid activations"),
    ("convnet-leakyrelu", _convnet(act="leakyrelu"), "ConvNet-3 with LeakyReLU(0.01)"),
    ("convnet-swish-bn", _convnet(act="swish", norm="batch"), "ConvNet-3 with Swish and BatchNorm (DM's ConvNetASwishBN)"),
    ("resnet18", _fixed(ResNet18, norm="instance"), "ResNet-18, small-image stem, instance norm (DC zoo default)"),
    ("resnet18bn", _fixed(ResNet18, norm="batch"), "ResNet-18, small-image stem, BatchNorm"),
    ("resnet18bn-ap", _fixed(ResNet18, norm="batch", avgpool_downsample=True),
     "ResNet-18 BN with avg-pool downsampling (MTT's ResNet18_AP); FC on 512*h*w"),
    ("vgg11", _fixed(VGG11, norm="instance"), "VGG-11, instance norm (DC zoo default); needs >= 28 px"),
    ("vgg11bn", _fixed(VGG11, norm="batch"), "VGG-11 with BatchNorm; needs >= 28 px"),
    ("alexnet", _fixed(AlexNet, norm="none"), "DC's small-image AlexNet, no normalisation"),
    ("alexnetbn", _fixed(AlexNet, norm="batch"), "DC's small-image AlexNet with BatchNorm after every conv"),
    ("lenet", _fixed(LeNet), "LeNet-5 style: two conv5x5 + three FC layers"),
    ("mlp", _fixed(MLP), "MLP: flatten -> 128 -> 128 -> classes, ReLU"),
]

BUILTIN_ARCHS: dict[str, ArchFactory] = {name: f for name, f, _ in _ZOO}
ARCH_DESCRIPTIONS: dict[str, str] = {name: d for name, _, d in _ZOO}


def arch_names() -> list[str]:
    """Built-in architecture names (timm models are addressed as ``timm:<name>``)."""
    return list(BUILTIN_ARCHS)


def build_arch(name: str, channels: int, num_classes: int, image_size: int) -> nn.Module:
    """A fresh model for a built-in name or ``timm:<name>``; unknown names list close matches."""
    if name.startswith(TIMM_PREFIX):
        return build_timm(name[len(TIMM_PREFIX):], channels, num_classes, image_size)
    key = name.lower()
    if key not in BUILTIN_ARCHS:
        close = difflib.get_close_matches(key, list(BUILTIN_ARCHS), n=3, cutoff=0.5)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UnknownNameError(
            f"unknown architecture {name!r}{hint}. Known: {', '.join(BUILTIN_ARCHS)}, or timm:<name>"
        )
    return BUILTIN_ARCHS[key](channels, num_classes, image_size)


__all__ = [
    "ARCH_DESCRIPTIONS",
    "AlexNet",
    "ArchFactory",
    "BUILTIN_ARCHS",
    "ConvNet",
    "LeNet",
    "MLP",
    "ResNet18",
    "TIMM_PREFIX",
    "TimmNet",
    "VGG11",
    "arch_names",
    "build_arch",
    "build_timm",
]
