"""The suite's supervised training loop, below the evaluator and the methods that use it.

:func:`run_epochs` is the one epoch loop: minibatches of a tensor set (optionally of a per-epoch
visible subset), augmented per sample, with gradients accumulated over chunks for networks whose
outputs are per-sample. :func:`train_model` is it with the DC recipe (SGD, one lr decay; the
evaluator's models and DC's inner network updates); :func:`train_epochs` is it with an optimizer
the caller owns, on a :class:`LabeledData` (experts, difficulty scoring). They differ in one
random draw: ``train_model`` does not shuffle a set that is a single batch, ``train_epochs`` does,
as the results recorded with each were made. HMN's network update draws a fixed number of images
with replacement and mixes them (CutMix); it is one pass, not epochs, and stays in its plugin.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchsuite.api import LabeledData
from benchsuite.ops.dsa import DSA
from benchsuite.ops.matching import forward_chunk, has_batchnorm

ProgressFn = Callable[..., None]


def run_epochs(model: nn.Module, opt: torch.optim.Optimizer, images: Tensor, targets: Tensor, *, epochs: int,
               batch_size: int, generator: torch.Generator, augment: DSA | None = None, chunk: int | None = None,
               visible: Callable[[int], Tensor] | None = None, shuffle_one_batch: bool = True,
               before_epoch: Callable[[int], None] | None = None,
               on_step: Callable[[int, int], None] | None = None,
               on_epoch: Callable[[int], None] | None = None) -> Tensor:
    """Train ``model`` in place for ``epochs`` passes; returns the last minibatch's loss.

    ``targets`` are class indices ``[N]`` or probabilities ``[N, K]``. Each epoch shuffles
    ``visible(epoch)`` (default: every sample) with ``generator``; with ``shuffle_one_batch`` off,
    a whole set that fits in one batch is used as it is (a permutation would only reorder it).
    With ``chunk``, each minibatch's gradient is accumulated over chunks of that many images: the
    same mean gradient for networks whose outputs are per-sample (no BatchNorm in train mode), and
    faster on the CPU (docs/performance.md). ``on_step(step, epoch)`` follows every update.
    """
    model.train()
    n = images.shape[0]
    loss = torch.zeros((), device=images.device)
    step = 0
    for epoch in range(epochs):
        if before_epoch is not None:
            before_epoch(epoch)
        idx = visible(epoch).cpu() if visible is not None else None
        count = n if idx is None else len(idx)
        if idx is None and count <= batch_size and not shuffle_one_batch:
            batches: list[Tensor | None] = [None]
        else:
            order = torch.randperm(count, generator=generator)
            perm = (idx[order] if idx is not None else order).to(images.device)
            batches = list(perm.split(batch_size))
        for ix in batches:
            xb, yb = (images, targets) if ix is None else (images[ix], targets[ix])
            if augment is not None:
                xb = augment(xb, generator)
            opt.zero_grad(set_to_none=True)
            if chunk is None or xb.shape[0] <= chunk:
                loss = F.cross_entropy(model(xb), yb)
                loss.backward()
            else:
                loss = torch.zeros((), device=xb.device)
                for xc, yc in zip(xb.split(chunk), yb.split(chunk)):
                    part = F.cross_entropy(model(xc), yc, reduction="sum") / xb.shape[0]
                    part.backward()
                    loss = loss + part.detach()
            opt.step()
            step += 1
            if on_step is not None:
                on_step(step, epoch)
        if on_epoch is not None:
            on_epoch(epoch)
    return loss.detach()


def train_model(
    model: nn.Module,
    images: Tensor,
    targets: Tensor,
    *,
    epochs: int,
    lr: float,
    generator: torch.Generator,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    batch_size: int = 256,
    lr_decay_at: float | None = 0.5,
    lr_decay_factor: float = 0.1,
    augment: DSA | None = None,
    progress: ProgressFn | None = None,
    chunk: int | None = None,
) -> float:
    """Train ``model`` in place with SGD and the DC recipe's schedule; returns the last batch's loss.

    The lr is multiplied by ``lr_decay_factor`` once, after ``lr_decay_at`` of the epochs (DC
    recipe: x0.1 at half). Augmentation draws independent parameters per sample from
    ``generator``. ``chunk``: see :func:`run_epochs`; callers pass it only for networks without
    BatchNorm.
    """
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    decay_epoch = int(round(epochs * lr_decay_at)) if lr_decay_at else None
    total_steps = epochs * -(-images.shape[0] // batch_size)

    def before_epoch(epoch: int) -> None:
        if decay_epoch is not None and epoch == decay_epoch:
            for group in opt.param_groups:
                group["lr"] = lr * lr_decay_factor

    def report(step: int, epoch: int) -> None:
        # In steps, not epochs: one epoch of the whole train set is minutes on a CPU.
        progress(step, total_steps, epoch=f"{epoch + 1}/{epochs}")

    loss = run_epochs(model, opt, images, targets, epochs=epochs, batch_size=batch_size, generator=generator,
                      augment=augment, chunk=chunk, shuffle_one_batch=False, before_epoch=before_epoch,
                      on_step=report if progress is not None else None)
    return float(loss)


def train_epochs(model: nn.Module, data: LabeledData, opt: torch.optim.Optimizer, epochs: int, batch_size: int,
                 generator: torch.Generator, augment: DSA | None = None,
                 visible: Callable[[int], Tensor] | None = None,
                 on_epoch: Callable[[int], None] | None = None,
                 on_step: Callable[[], None] | None = None) -> None:
    """Plain minibatch training, ``epochs`` passes over ``visible(epoch)`` (default: all samples),
    with the caller's optimizer. On the CPU gradients are accumulated over chunks of 16 images
    for networks without BatchNorm (:func:`~benchsuite.ops.matching.forward_chunk`)."""
    chunk = None if has_batchnorm(model) else forward_chunk(data.device, data.image_shape)
    run_epochs(model, opt, data.images, data.labels, epochs=epochs, batch_size=batch_size, generator=generator,
               augment=augment, chunk=chunk, visible=visible, shuffle_one_batch=True, on_epoch=on_epoch,
               on_step=(lambda step, epoch: on_step()) if on_step is not None else None)
