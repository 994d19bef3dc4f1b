"""The per-step objectives of DC/DSA and DM, shared by the pixel methods (``plugins/dc.py``,
``plugins/dm.py``) and the methods that optimise another parameterisation through the same
objectives (GLaD, H-PD: ``plugins/glad/latents.py``). See docs/methods/dc.md and docs/methods/dm.md.

Each step takes the synthetic images as a leaf tensor and an optimiser-like object with
``zero_grad()`` and ``step()``: a pixel method passes its SGD over the pixels; a latent method
passes the GLaD family's ``LatentImages``, whose ``step`` carries the image gradient
back into the latents.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor, nn

from benchsuite.api import LabeledData
from benchsuite.ops.dsa import DSA
from benchsuite.ops.matching import (
    classwise_mean_embedding_distance,
    embed_chunked,
    gradient_distance,
    has_batchnorm,
    loss_gradients,
    matched_parameters,
    siamese_per_class,
)
from benchsuite.ops.sampling import sample_classes
from benchsuite.training import train_model

__all__ = ["DCStepSettings", "freeze_bn_statistics", "match_step", "dc_outer_step", "dm_step"]


class DCStepSettings(Protocol):
    """What a DC outer iteration reads from a method's config (``DCConfig`` has all of it)."""

    outer_loop: int
    inner_loop: int
    lr_net: float
    batch_real: int
    batch_train: int
    dis_metric: str
    bn_real_per_class: int


def freeze_bn_statistics(net: nn.Module, real: LabeledData, per_class: int, generator: torch.Generator) -> None:
    """Set every BatchNorm's running statistics to those of ``per_class`` real images of each class
    (one train-mode forward) and put the BN layers in eval mode, so tiny synthetic batches are
    normalised with real statistics (docs/methods/dc.md, "Deviations from the paper and the official code")."""
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    xr, _ = sample_classes(real, per_class, generator)
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: after one batch, exactly that batch's statistics
    net.train()
    with torch.no_grad():
        net(xr)
    for m, momentum in zip(bns, momenta):
        m.momentum = momentum
        m.eval()


def match_step(net: nn.Module, params: list[Tensor], syn: Tensor, opt_img: torch.optim.Optimizer,
               real: LabeledData, ipc: int, cfg: DCStepSettings, dsa: DSA | None, generator: torch.Generator,
               chunk: int | None) -> Tensor:
    """One matching step on the current ``net``: Σ_c d(∇CE(S_c), ∇CE(T_c)), one SGD step on ``syn``.

    Each class's distance is back-propagated as soon as it is computed (the gradients add up in
    ``syn.grad``), so only one class's second-order graph is alive at a time. Returns the summed
    distance (detached).
    """
    k = real.num_classes
    xr, n = sample_classes(real, cfg.batch_real, generator)
    opt_img.zero_grad(set_to_none=True)
    total = syn.new_zeros(())
    for c in range(k):
        r = xr[c * n:(c + 1) * n]
        s = syn[c * ipc:(c + 1) * ipc]
        if dsa is not None:
            r, s = dsa.siamese(r, s, generator=generator)
        g_real = loss_gradients(net, params, r, torch.full((n,), c, device=r.device), chunk=chunk)
        g_syn = loss_gradients(net, params, s, torch.full((ipc,), c, device=s.device), create_graph=True)
        dist = gradient_distance(g_syn, g_real, cfg.dis_metric)
        dist.backward(inputs=[syn])
        total = total + dist.detach()
    opt_img.step()
    return total


def dc_outer_step(net: nn.Module, syn: Tensor, labels: Tensor, opt_img: torch.optim.Optimizer,
                  real: LabeledData, ipc: int, cfg: DCStepSettings, dsa: DSA | None, generator: torch.Generator,
                  chunk: int | None, on_match=None) -> Tensor:
    """One outer iteration with the fresh network ``net``: ``outer_loop`` matching steps, with
    ``inner_loop`` epochs of training ``net`` on the synthetic set between them.

    ``on_match(ol, loss)`` is called after each matching step. Returns the mean matching loss.
    """
    params = matched_parameters(net, cfg.dis_metric)
    bn = has_batchnorm(net)
    net.train()
    losses = []
    for ol in range(cfg.outer_loop):
        if bn:
            freeze_bn_statistics(net, real, cfg.bn_real_per_class, generator)
        loss = match_step(net, params, syn, opt_img, real, ipc, cfg, dsa, generator, chunk)
        losses.append(loss)
        if on_match is not None:
            on_match(ol, loss)
        if ol == cfg.outer_loop - 1:
            break
        # DSA: independent per-sample augmentation while training the network (§2.6); DC: none.
        train_model(net, syn.detach(), labels, epochs=cfg.inner_loop, lr=cfg.lr_net, generator=generator,
                    momentum=0.0, weight_decay=0.0, batch_size=cfg.batch_train, lr_decay_at=None,
                    augment=dsa)
    return torch.stack(losses).mean()


def dm_step(net: nn.Module, syn: Tensor, opt: torch.optim.Optimizer, real: LabeledData, ipc: int,
            batch_real: int, dsa: DSA | None, generator: torch.Generator, chunk: int | None) -> Tensor:
    """One DM iteration with the fresh network ``net``: sample, augment, embed, one step on ``syn``.

    ``syn`` is the leaf tensor ``[C·ipc, ...]`` (class-major) that ``opt`` updates. Returns the loss
    (a detached 0-d tensor, not read back, so an accelerator is not synchronised).
    """
    net.train()  # BatchNorm: batch statistics of the multi-class batch (docs/methods/dm.md, "Algorithm")
    for p in net.parameters():
        p.requires_grad_(False)
    k = real.num_classes
    xr, _ = sample_classes(real, batch_real, generator)
    xr, xs = siamese_per_class(dsa, xr, syn, k, generator)
    with torch.no_grad():
        emb_real = embed_chunked(net.embed, xr, None if has_batchnorm(net) else chunk)
    emb_syn = net.embed(xs)
    loss = classwise_mean_embedding_distance(emb_real, emb_syn, k)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()
