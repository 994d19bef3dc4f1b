"""Synthetic sets parameterised by a generator's latents (GLaD, H-PD): docs/methods/glad.md
("Algorithm") and docs/methods/hpd.md.

A :class:`LatentSet` holds, per synthetic image, a W+ code ``ws`` ``[num_ws, w_dim]`` and the
feature map ``f`` = F_k at synthesis layer k; the frozen generator renders them to images.

:class:`LatentImages` gives the pixel methods' objectives (DC's matching step, DM's step, MTT's
trajectory loss) what they expect, a leaf image tensor and an optimiser with ``zero_grad`` and
``step``, while the optimisation happens on the latents, with GLaD's two-stage backward
(docs/methods/glad.md, "The two-stage backward"): the objective back-propagates into the rendered
images only; ``step`` then re-renders each chunk of ``chunk`` images with a graph and
back-propagates the image gradient into ``ws`` and ``f``, takes one SGD step on them, and
re-renders the images. Memory is that of one chunk through the
generator, whatever the objective.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from benchsuite.api import tensor_bytes

from .priors import StyleGenerator

__all__ = ["LatentSet", "LatentImages"]


class LatentSet:
    def __init__(self, G: StyleGenerator, layer: int, ws: Tensor, f: Tensor, chunk: int = 10,
                 transform: Callable[[Tensor], Tensor] | None = None):
        """``transform``: a differentiable map applied to every rendered image (ZCA whitening for
        a trajectory objective whose experts trained on whitened images)."""
        if not 0 <= layer < G.num_layers:
            raise ValueError(f"layer must be in [0, {G.num_layers - 1}], got {layer}")
        self.G, self.layer, self.chunk, self.transform = G, int(layer), int(chunk), transform
        self.ws = ws.detach().clone().requires_grad_(True)
        self.f = f.detach().clone().requires_grad_(True)

    @classmethod
    def from_noise(cls, G: StyleGenerator, labels: Tensor, layer: int, generator: torch.Generator,
                   chunk: int = 10, transform: Callable[[Tensor], Tensor] | None = None) -> "LatentSet":
        """GLaD's initialisation: w = Mapping(z ~ N(0, I), class), the same w for every layer, and
        F_k from running the generator up to layer k (non-finite values zeroed, clipped to ±10)."""
        z = torch.randn((labels.shape[0], G.cfg.z_dim), generator=generator).to(labels.device)
        with torch.no_grad():
            ws = G.broadcast(G.map(z, labels)).contiguous()
            f = torch.cat([G.features(layer, w) for w in ws.split(chunk)])
        return cls(G, layer, ws, torch.nan_to_num(f).clamp(-10, 10), chunk, transform)

    def parameters(self) -> list[Tensor]:
        return [self.ws, self.f]

    def storage_floats(self) -> int:
        return int(self.ws.numel() + self.f.numel())

    def storage_bytes(self) -> int:
        """Bytes of the latents as stored (their dtype's size, not an assumed float32)."""
        return tensor_bytes(self.ws) + tensor_bytes(self.f)

    def render(self) -> Tensor:
        """All images, without a graph, ``chunk`` at a time."""
        with torch.no_grad():
            return torch.cat([self._render(f, w) for f, w in zip(self.f.split(self.chunk), self.ws.split(self.chunk))])

    def _render(self, f: Tensor, ws: Tensor) -> Tensor:
        images = self.G.render(self.layer, f, ws)
        return images if self.transform is None else self.transform(images)

    def backward(self, image_grad: Tensor) -> None:
        """Accumulate ∂L/∂ws and ∂L/∂f from ∂L/∂images, re-rendering one chunk at a time."""
        for i in range(0, image_grad.shape[0], self.chunk):
            sl = slice(i, i + self.chunk)
            images = self._render(self.f[sl], self.ws[sl])
            images.backward(image_grad[sl], inputs=[self.ws, self.f])

    def push(self) -> None:
        """Move one layer deeper (H-PD): F_{k+1} = L_{k+1}(F_k) under the current styles; the
        rendered images are unchanged."""
        if self.layer + 1 >= self.G.num_layers:
            raise ValueError("already at the last synthesis layer")
        with torch.no_grad():
            f = torch.cat([self.G.push(self.layer, f, w)
                           for f, w in zip(self.f.split(self.chunk), self.ws.split(self.chunk))])
        self.layer += 1
        self.f = f.requires_grad_(True)


class LatentImages:
    """The rendered images as a leaf tensor, and an optimiser-like object over the latents.

    ``images`` is what an objective differentiates; ``zero_grad()`` and ``step()`` have the
    meaning they have for a pixel optimiser. SGD with momentum on ``ws`` (``lr_w``) and ``f``
    (``lr_f``), as GLaD.
    """

    def __init__(self, latents: LatentSet, lr_w: float, lr_f: float, momentum: float = 0.5):
        self.latents = latents
        self.images = latents.render().requires_grad_(True)
        self.opt = torch.optim.SGD([{"params": [latents.ws], "lr": lr_w}, {"params": [latents.f], "lr": lr_f}],
                                   momentum=momentum)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.images.grad = None
        self.opt.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        if self.images.grad is None:
            return
        self.latents.backward(self.images.grad)
        self.opt.step()
        with torch.no_grad():
            self.images.copy_(self.latents.render())
