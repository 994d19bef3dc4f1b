"""A tiny, deterministic, learnable dataset for tests and smoke runs (no files needed).

Each of the 10 classes has a fixed smooth random prototype (4x4 noise upsampled bilinearly). An
image is a randomly shifted 16x16 window of its class prototype plus a brightness offset and
per-pixel noise, stored as uint8. Everything is drawn from one seeded ``torch.Generator``; global
RNG is never touched, so the data is identical on every load and machine.

The noise level is chosen so that the set is learnable but not trivial: a small ConvNet trained on
all 500 images reaches about 99% test accuracy, on the first image of each class about 60%, on the
first ten about 90% (measured when the generator was written), which leaves room for distillation
methods to differ.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from benchsuite.data.base import DataSources, Located, RawSplits, Source

SYNTHETIC_SEED = 1234
SYNTHETIC_VERSION = 1  # bump when the generator changes, so caches and results say which data it was
NUM_CLASSES = 10
CHANNELS = 3
SIZE = 16
TRAIN_PER_CLASS = 50
TEST_PER_CLASS = 20
_SHIFT = 3  # maximum shift in pixels, each direction
_LOW_RES = 4
_NOISE_STD = 64.0
_BRIGHTNESS_STD = 10.0


def _draw(protos: torch.Tensor, per_class: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    k, c, big, _ = protos.shape
    n = per_class * k
    labels = torch.arange(n) % k  # classes interleaved, so any prefix is balanced
    dy = torch.randint(0, 2 * _SHIFT + 1, (n,), generator=g)
    dx = torch.randint(0, 2 * _SHIFT + 1, (n,), generator=g)
    ar = torch.arange(SIZE)
    rows = (dy[:, None] + ar)[:, None, :, None]
    cols = (dx[:, None] + ar)[:, None, None, :]
    crop = protos[labels[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]
    noise = torch.randn(n, c, SIZE, SIZE, generator=g) * _NOISE_STD
    bright = torch.randn(n, 1, 1, 1, generator=g) * _BRIGHTNESS_STD
    x = (crop + noise + bright).round().clamp_(0, 255).to(torch.uint8)
    return x, labels.to(torch.int64)


def make_synthetic(seed: int = SYNTHETIC_SEED) -> RawSplits:
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(NUM_CLASSES, CHANNELS, _LOW_RES, _LOW_RES, generator=g)
    big = SIZE + 2 * _SHIFT
    protos = 40.0 + 175.0 * F.interpolate(low, size=(big, big), mode="bilinear", align_corners=False)
    x_train, y_train = _draw(protos, TRAIN_PER_CLASS, g)
    x_test, y_test = _draw(protos, TEST_PER_CLASS, g)
    return RawSplits(x_train, y_train, x_test, y_test, provenance=_provenance(seed))


def _provenance(seed: int) -> str:
    return f"synthetic:seed={seed},v{SYNTHETIC_VERSION}"


def synthetic_source(seed: int = SYNTHETIC_SEED) -> Source:
    def find(ds: DataSources) -> Located:
        return Located(
            provenance=_provenance(seed), fingerprint=_provenance(seed), read=lambda: make_synthetic(seed), cacheable=False
        )

    return Source(name="generated", how="always available (generated in memory)", find=find)


__all__ = ["make_synthetic", "synthetic_source", "SYNTHETIC_SEED"]
