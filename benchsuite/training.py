"""The suite's supervised training loops, below the evaluator and the methods that both use them.

:func:`train_model` trains evaluation models (and DC's inner network updates) on a tensor set with
the DC recipe's schedule; :func:`train_epochs` trains on a :class:`LabeledData` with an optimizer
the caller owns, optionally on a per-epoch visible subset (experts, difficulty scoring). They draw
their random numbers differently (the first skips the permutation when the whole set is one batch),
which is why recorded results depend on which one a caller uses; merging them would change
numbers and is done, if ever, with the golden test updated on purpose.
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
    """Train ``model`` in place with SGD; returns the last batch's loss.

    ``targets`` are class indices ``[N]`` or probabilities ``[N, K]`` (soft labels). The lr is
    multiplied by ``lr_decay_factor`` once, after ``lr_decay_at`` of the epochs (DC recipe: x0.1 at
    half). Augmentation draws independent parameters per sample from ``generator``.
    With ``chunk``, each minibatch's gradient is accumulated over
    chunks of that many images: the same mean gradient for networks whose outputs are per-sample
    (no BatchNorm in train mode), and on the CPU about 30% faster for 100-image batches (README,
    "Evaluator speed"); callers pass it only for such networks.
    """
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    n = images.shape[0]
    decay_epoch = int(round(epochs * lr_decay_at)) if lr_decay_at else None
    loss = torch.zeros((), device=images.device)
    single_batch = n <= batch_size
    steps_per_epoch = -(-n // batch_size)
    total_steps = epochs * steps_per_epoch
    step = 0
    for epoch in range(epochs):
        if decay_epoch is not None and epoch == decay_epoch:
            for group in opt.param_groups:
                group["lr"] = lr * lr_decay_factor
        if single_batch:
            # The whole set is one batch: a permutation would only reorder it.
            batches = [(images, targets)]
        else:
            perm = torch.randperm(n, generator=generator).to(images.device)
            batches = [(images[ix], targets[ix]) for ix in perm.split(batch_size)]
        for xb, yb in batches:
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
            if progress is not None:
                # In steps, not epochs: one epoch of the whole train set is minutes on a CPU.
                progress(step, total_steps, epoch=f"{epoch + 1}/{epochs}")
    return float(loss.detach())



def train_epochs(model: nn.Module, data: LabeledData, opt: torch.optim.Optimizer, epochs: int, batch_size: int,
                 generator: torch.Generator, augment: DSA | None = None,
                 visible: Callable[[int], Tensor] | None = None,
                 on_epoch: Callable[[int], None] | None = None,
                 on_step: Callable[[], None] | None = None) -> None:
    """Plain minibatch training, ``epochs`` passes over ``visible(epoch)`` (default: all samples).

    On the CPU each minibatch's gradient is accumulated over chunks of 16 images: the same mean
    gradient for networks without BatchNorm (per-sample outputs), measurably faster there
    (:func:`~benchsuite.ops.matching.forward_chunk`).
    """
    model.train()
    chunk = None if has_batchnorm(model) else forward_chunk(data.device, data.image_shape)
    everything = torch.arange(len(data))
    for epoch in range(epochs):
        idx = visible(epoch).cpu() if visible is not None else everything
        perm = idx[torch.randperm(len(idx), generator=generator)].to(data.device)
        for batch in perm.split(batch_size):
            x, y = data.images[batch], data.labels[batch]
            if augment is not None:
                x = augment(x, generator)
            opt.zero_grad(set_to_none=True)
            if chunk is None or len(x) <= chunk:
                F.cross_entropy(model(x), y).backward()
            else:
                for xc, yc in zip(x.split(chunk), y.split(chunk)):
                    (F.cross_entropy(model(xc), yc, reduction="sum") / len(x)).backward()
            opt.step()
            if on_step is not None:
                on_step()
        if on_epoch is not None:
            on_epoch(epoch)
