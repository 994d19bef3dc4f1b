"""DC augmentation: the per-image augmentation the DC paper's official code trains its MNIST
evaluation models with (VICO-UoE/DatasetCondensation, ``utils.py``, ``augment``), as the protocol
option ``augment = "dc"`` (docs/augmentation.md, "DC augmentation").

Each image independently gets **one** operation drawn uniformly from the strategy:

* ``crop``: pad 4 pixels on every side with the image's own per-channel mean, then crop a window of
  the original size at a random offset (0..8 in each direction), i.e. a shift of up to ±4 px;
* ``scale``: resize height and width by independent factors in [0.8, 1.2], then centre-crop or
  pad (with the image mean) back to the original size;
* ``rotate``: rotate by an angle in [−45°, 45°] about the centre, filling with the image mean;
* ``noise``: add Gaussian noise of standard deviation 0.001.

The published strategies: ``crop_scale_rotate`` for MNIST (the only dataset whose DC evaluation
uses it), ``crop_noise`` for BatchNorm ConvNets; other datasets train without augmentation.
Unlike DSA it is not siamese and not meant to be differentiated through; it is vectorised over
the batch and draws from an explicit generator, like :class:`~benchsuite.ops.dsa.DSA`.
Scale and rotate are resampled bilinearly (the official code uses scipy's spline rotation and
an interpolating resize per image), so the pixels differ slightly from the official ones.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from benchsuite.errors import ConfigError

DC_OPS = ("crop", "scale", "rotate", "noise")
STRATEGY_MNIST = "crop_scale_rotate"
CROP_PIXELS = 4
SCALE = 0.2
ROTATE_DEGREES = 45.0
NOISE_STD = 0.001


class DCAugment:
    """``aug(x, generator)``: each image of ``x`` [N, C, H, W] gets one op of the strategy."""

    def __init__(self, strategy: str = STRATEGY_MNIST) -> None:
        ops = tuple(strategy.split("_")) if strategy and strategy != "none" else ()
        bad = [op for op in ops if op not in DC_OPS]
        if bad:
            raise ConfigError(f"unknown DC augmentation op(s) {bad}; choose from {list(DC_OPS)}")
        self.strategy, self.ops = strategy, ops

    def __repr__(self) -> str:
        return f"DCAugment({self.strategy!r})"

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        if not self.ops or x.shape[0] == 0:
            return x
        n = x.shape[0]
        choice = torch.randint(len(self.ops), (n,), generator=generator)
        # every random number is drawn here, on the CPU, whatever ops the batch ends up using
        u = torch.rand((n, 4), generator=generator)
        noise = torch.randn(x.shape, generator=generator)
        out = x.clone()
        mean = x.mean(dim=(2, 3), keepdim=True)
        for k, op in enumerate(self.ops):
            rows = torch.nonzero(choice == k).flatten()
            if len(rows) == 0:
                continue
            sel = rows.to(x.device)
            xs, ms, us = x[sel], mean[sel], u[rows].to(x.device)
            if op == "noise":
                out[sel] = xs + NOISE_STD * noise[rows].to(x.device, x.dtype)
            elif op == "crop":
                shift = torch.floor(us[:, :2] * (2 * CROP_PIXELS + 1)) - CROP_PIXELS  # integer pixels
                out[sel] = _affine(xs, ms, torch.zeros(len(rows), device=x.device), torch.ones_like(shift), shift,
                                   mode="nearest")
            elif op == "scale":
                factors = 1 - SCALE + 2 * SCALE * us[:, :2]
                out[sel] = _affine(xs, ms, torch.zeros(len(rows), device=x.device), factors,
                                   torch.zeros_like(factors))
            elif op == "rotate":
                angle = (2 * us[:, 0] - 1) * math.radians(ROTATE_DEGREES)
                out[sel] = _affine(xs, ms, angle, torch.ones(len(rows), 2, device=x.device),
                                   torch.zeros(len(rows), 2, device=x.device))
        return out


def _affine(x: Tensor, fill: Tensor, angle: Tensor, scale: Tensor, shift: Tensor, mode: str = "bilinear") -> Tensor:
    """Rotate by ``angle`` (radians), scale by ``scale`` [N, 2] (x, y: >1 enlarges) and shift by
    ``shift`` [N, 2] pixels (x right, y down) about the image centre; outside pixels take ``fill``."""
    n, _, h, w = x.shape
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    # the grid maps output coordinates to input ones: the inverse of the transformation
    theta[:, 0, 0] = cos / scale[:, 0]
    theta[:, 0, 1] = sin / scale[:, 0]
    theta[:, 1, 0] = -sin / scale[:, 1]
    theta[:, 1, 1] = cos / scale[:, 1]
    theta[:, 0, 2] = -2 * shift[:, 0] / w
    theta[:, 1, 2] = -2 * shift[:, 1] / h
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    moved = F.grid_sample(x - fill, grid, mode=mode, padding_mode="zeros", align_corners=False)
    return moved + fill
