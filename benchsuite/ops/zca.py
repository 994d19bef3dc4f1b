"""ZCA whitening of images, as MTT and its successors use it (docs/methods/mtt.md, "ZCA whitening").

The transform is fit on the (normalised) train set: with X the flattened images and μ their mean,
Σ = (X − μ)ᵀ(X − μ)/(N − 1) = U diag(λ) Uᵀ and W = U diag(1/√(λ + ε)) Uᵀ; an image x maps to
(x − μ)W. ε = 0.1 is the regulariser of the kornia ``ZCAWhitening`` module MTT calls. A method that
whitens distills in the whitened space; its synthetic set then carries :meth:`ZCA.describe`, and
the evaluator whitens the test images with the same fit (the train set is the same), so models
are trained and tested in one space. :meth:`ZCA.inverse` maps whitened images back for pictures.

Fits are kept per process (a Fashion-MNIST fit is ~1 s, CIFAR-10 ~10 s on the 2-core CPU), keyed
by the data tensor and ε, so the method and the evaluator share one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from benchsuite.errors import ConfigError

__all__ = ["ZCA", "fit_zca", "zca_from_description", "DEFAULT_EPS"]

DEFAULT_EPS = 0.1  # kornia.enhance.ZCAWhitening(eps=0.1), the module MTT's buffer.py/distill.py use


@dataclass(frozen=True)
class ZCA:
    mean: Tensor       # [D]
    matrix: Tensor     # [D, D], symmetric
    inverse_matrix: Tensor
    eps: float

    def apply(self, images: Tensor, batch: int = 10_000) -> Tensor:
        """Whiten ``images [N, C, H, W]`` (differentiable; in row blocks to bound memory)."""
        shape = images.shape
        flat = images.reshape(shape[0], -1)
        mean, matrix = self.mean.to(images.device), self.matrix.to(images.device)
        if flat.shape[0] <= batch or flat.requires_grad:
            return ((flat - mean) @ matrix).reshape(shape)
        out = torch.empty_like(flat)
        for start in range(0, flat.shape[0], batch):
            out[start:start + batch] = (flat[start:start + batch] - mean) @ matrix
        return out.reshape(shape)

    def inverse(self, images: Tensor) -> Tensor:
        """Map whitened images back to the normalised space (for pictures)."""
        shape = images.shape
        flat = images.reshape(shape[0], -1)
        return (flat @ self.inverse_matrix.to(images.device) + self.mean.to(images.device)).reshape(shape)

    def describe(self) -> dict[str, Any]:
        """What a synthetic set records so the evaluator can rebuild the same transform."""
        return {"name": "zca", "eps": self.eps}


_FITS: dict[tuple, ZCA] = {}


def fit_zca(images: Tensor, eps: float = DEFAULT_EPS) -> ZCA:
    """Fit ZCA on ``images [N, C, H, W]`` (float64 covariance and eigendecomposition, stored float32)."""
    if eps <= 0:
        raise ConfigError(f"ZCA eps must be > 0, got {eps}")
    key = (images.data_ptr(), tuple(images.shape), str(images.device), float(eps))
    if key in _FITS:
        return _FITS[key]
    flat = images.reshape(images.shape[0], -1)
    n, d = flat.shape
    if n < 2:
        raise ConfigError("ZCA needs at least two images to fit")
    mean = flat.double().mean(dim=0)
    cov = torch.zeros((d, d), dtype=torch.float64, device=flat.device)
    for start in range(0, n, 8192):  # blocks: the float64 copy of all images would double memory
        block = flat[start:start + 8192].double() - mean
        cov += block.T @ block
    cov /= n - 1
    evals, evecs = torch.linalg.eigh(cov)
    evals = evals.clamp_min(0)
    matrix = (evecs * (evals + eps).rsqrt()) @ evecs.T
    inverse = (evecs * (evals + eps).sqrt()) @ evecs.T
    zca = ZCA(mean.float(), matrix.float(), inverse.float(), float(eps))
    if len(_FITS) > 4:
        _FITS.clear()
    _FITS[key] = zca
    return zca


def zca_from_description(description: dict[str, Any] | None, train_images: Tensor) -> ZCA | None:
    """The transform a synthetic set says it lives in (``None``: the normalised space)."""
    if not description:
        return None
    if description.get("name") != "zca":
        raise ConfigError(f"unknown input transform {description!r}; the suite knows 'zca'")
    return fit_zca(train_images, float(description.get("eps", DEFAULT_EPS)))
