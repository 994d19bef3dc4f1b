"""VGG11, AlexNet, LeNet and MLP from the DC cross-architecture zoo (docs/architectures.md,
"Cross-architecture networks").

28×28 inputs are not resized: the first conv gets extra padding so the first map is 32×32
(VGG pad 3, AlexNet pad 4) or 28×28 (LeNet pad 2). ``embed`` is the flattened input of the final
linear layer.
"""

from __future__ import annotations

from torch import Tensor, nn

from benchsuite.archs.convnet import first_conv_padding
from benchsuite.archs.base import EmbeddingClassifier
from benchsuite.archs.norms import check_size, conv_out, make_norm

VGG11_CFG: list[int | str] = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]


class VGG11(EmbeddingClassifier):
    """Conv3x3 (pad 1) + Norm + ReLU per entry, MaxPool2 at each "M"; FC (512·h·w)→C.

    Instance norm (``GroupNorm(C, C)``) is the DC default; ``norm='batch'`` gives VGG11BN.
    Five max-pools need inputs of at least 32 px (28 px is padded to 32).
    """

    def __init__(self, channels: int, num_classes: int, image_size: int, norm: str = "instance") -> None:
        super().__init__()
        arch = "vgg11bn" if norm == "batch" else "vgg11"
        layers: list[nn.Module] = []
        in_ch, size, first = channels, image_size, True
        for v in VGG11_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                size //= 2
                check_size(size, arch, image_size, "after one of its five max-pools (VGG11 needs >= 32 px inputs, or 28 px, which is padded to 32)")
                continue
            pad = first_conv_padding(image_size, 1) if first else 1
            first = False
            size = conv_out(size, 3, pad)
            layers += [nn.Conv2d(in_ch, int(v), kernel_size=3, padding=pad), make_norm(norm, int(v)), nn.ReLU(inplace=True)]
            in_ch = int(v)
        self.features = nn.Sequential(*layers)
        self.embed_dim = in_ch * size * size
        self.classifier = nn.Linear(self.embed_dim, num_classes)


class AlexNet(EmbeddingClassifier):
    """DC's small-image AlexNet; ``norm='batch'`` gives AlexNetBN (BN after every conv)."""

    def __init__(self, channels: int, num_classes: int, image_size: int, norm: str = "none") -> None:
        super().__init__()
        arch = "alexnetbn" if norm == "batch" else "alexnet"
        # (out_channels, kernel, padding, max-pool after)
        spec = [(128, 5, 2, True), (192, 5, 2, True), (256, 3, 1, False), (192, 3, 1, False), (192, 3, 1, True)]
        layers: list[nn.Module] = []
        in_ch, size = channels, image_size
        for i, (out_ch, k, pad, pool) in enumerate(spec):
            if i == 0:
                pad = first_conv_padding(image_size, pad)  # 28 px: pad 4 -> 32x32
            size = conv_out(size, k, pad)
            check_size(size, arch, image_size, f"after conv {i + 1}")
            layers.append(nn.Conv2d(in_ch, out_ch, kernel_size=k, padding=pad))
            if norm != "none":
                layers.append(make_norm(norm, out_ch))
            layers.append(nn.ReLU(inplace=True))
            if pool:
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                size //= 2
                check_size(size, arch, image_size, f"after the max-pool following conv {i + 1}")
            in_ch = out_ch
        self.features = nn.Sequential(*layers)
        self.embed_dim = in_ch * size * size
        self.classifier = nn.Linear(self.embed_dim, num_classes)


class LeNet(EmbeddingClassifier):
    """conv5x5(→6)→ReLU→MaxPool2 → conv5x5(6→16)→ReLU→MaxPool2 → FC →120→84→C (ReLU between)."""

    def __init__(self, channels: int, num_classes: int, image_size: int) -> None:
        super().__init__()
        pad = 2 if image_size == 28 else 0
        size = image_size
        for i, p in enumerate((pad, 0)):
            size = conv_out(size, 5, p)
            check_size(size, "lenet", image_size, f"after conv {i + 1}")
            size //= 2
            check_size(size, "lenet", image_size, f"after max-pool {i + 1}")
        self.features = nn.Sequential(
            nn.Conv2d(channels, 6, kernel_size=5, padding=pad),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
        )
        self.hidden = nn.Sequential(
            nn.Linear(16 * size * size, 120),
            nn.ReLU(inplace=True),
            nn.Linear(120, 84),
            nn.ReLU(inplace=True),
        )
        self.embed_dim = 84
        self.classifier = nn.Linear(84, num_classes)

    def embed(self, x: Tensor) -> Tensor:
        return self.hidden(self.features(x).flatten(1))


class MLP(EmbeddingClassifier):
    """flatten → Linear(C·H·W, 128) → ReLU → Linear(128, 128) → ReLU → Linear(128, classes)."""

    def __init__(self, channels: int, num_classes: int, image_size: int, hidden: int = 128) -> None:
        super().__init__()
        self.hidden = nn.Sequential(
            nn.Flatten(1),
            nn.Linear(channels * image_size * image_size, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
        )
        self.embed_dim = hidden
        self.classifier = nn.Linear(hidden, num_classes)

    def embed(self, x: Tensor) -> Tensor:
        return self.hidden(x)
