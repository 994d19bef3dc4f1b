"""ResNet-18 for small images, as in the DC zoo (instance norm by default; BN and AP variants).

Stem: conv3x3(ch→64, stride 1, pad 1) + norm + ReLU (no max-pool), then four stages of two
BasicBlocks (64, 128/s2, 256/s2, 512/s2) and FC 512→C. DC uses ``avg_pool2d(out, 4)``, which at
32 px (a 4×4 final map) is exactly global average pooling; we use adaptive average pooling to 1×1
so 28, 32 and 64 px inputs all work with the same 512-d feature.

The ``_AP`` variant (MTT's ResNet18_AP) replaces every stride-2 conv with a stride-1 conv followed
by AvgPool2 and the downsampling shortcut with conv1x1 + AvgPool2; it keeps the final spatial map
(DC's trivial 1×1 average pool), so its FC input is 512·h·w (512·4·4 at 32 px).
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from benchsuite.archs.base import EmbeddingClassifier
from benchsuite.archs.norms import check_size, make_norm


class BasicBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int, norm: str, avgpool_downsample: bool = False) -> None:
        super().__init__()
        self.pool_after_conv1 = avgpool_downsample and stride != 1
        conv_stride = 1 if avgpool_downsample else stride
        self.conv1 = nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=conv_stride, padding=1, bias=False)
        self.bn1 = make_norm(norm, out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = make_norm(norm, out_ch)
        if stride != 1 or in_ch != out_ch:
            if avgpool_downsample:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=1, bias=False),
                    nn.AvgPool2d(kernel_size=2, stride=2),
                    make_norm(norm, out_ch),
                )
            else:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False),
                    make_norm(norm, out_ch),
                )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        if self.pool_after_conv1:
            out = F.avg_pool2d(out, kernel_size=2, stride=2)
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(EmbeddingClassifier):
    def __init__(
        self,
        channels: int,
        num_classes: int,
        image_size: int,
        norm: str = "instance",
        avgpool_downsample: bool = False,
    ) -> None:
        super().__init__()
        arch = "resnet18bn-ap" if avgpool_downsample else ("resnet18bn" if norm == "batch" else "resnet18")
        self.conv1 = nn.Conv2d(channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = make_norm(norm, 64)
        stages = []
        in_ch, size = 64, image_size
        for i, (out_ch, stride) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)]):
            blocks = [
                BasicBlock(in_ch, out_ch, stride, norm, avgpool_downsample),
                BasicBlock(out_ch, out_ch, 1, norm, avgpool_downsample),
            ]
            stages.append(nn.Sequential(*blocks))
            in_ch = out_ch
            if stride != 1:
                # strided 3x3 conv (pad 1): ceil(size/2); AvgPool2: floor(size/2)
                size = size // 2 if avgpool_downsample else (size + 1) // 2
            check_size(size, arch, image_size, f"in stage {i + 1}")
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.global_pool = not avgpool_downsample
        self.embed_dim = 512 if self.global_pool else 512 * size * size
        self.classifier = nn.Linear(self.embed_dim, num_classes)

    def embed(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        if self.global_pool:
            out = F.adaptive_avg_pool2d(out, 1)
        return out.flatten(1)
