"""Trajectory matching (MTT, docs/methods/mtt.md; PAD's masked variant, docs/methods/pad.md): a functional student
unrolled from an expert checkpoint, and the normalised parameter distance to a later checkpoint.

* :class:`ParamLayout` flattens a network's parameters in registration order (shallow → deep, the
  order PAD's depth mask relies on) and views a flat vector back as named tensors.
* :class:`FunctionalStudent` runs the *same* module with a flat parameter vector through
  ``torch.func.functional_call``, so the student is exactly the expert's architecture (norm
  included; docs/methods/mtt.md, "Deviations"), not a re-implementation.
* :func:`plan_steps` draws the randomness of every student step up front (minibatch indices and a
  DSA draw, independent per sample, not siamese), so that a recomputation replays the same steps.
* :func:`unroll_backward` unrolls N SGD steps θ_{n+1} = θ_n − α∇CE(θ_n; A(X_b), y_b) and
  back-propagates :func:`trajectory_loss` into the synthetic images and α, either through the
  whole unrolled graph (``mode="full"``, memory grows with N × batch) or step by step with
  recomputation (``mode="checkpoint"``: the forward keeps only the N flat parameter vectors; the
  backward rebuilds one step's graph at a time, so memory is that of one step for about 1.3× the
  compute). Both give the same gradients (tested).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from benchsuite.errors import ConfigError
from benchsuite.ops.dsa import DSA, Draw

__all__ = [
    "ParamLayout",
    "FunctionalStudent",
    "StepPlan",
    "plan_steps",
    "student_step",
    "trajectory_loss",
    "mask_start",
    "unroll_backward",
    "UNROLL_MODES",
    "MASKS",
]

UNROLL_MODES: tuple[str, ...] = ("full", "checkpoint")
MASKS: tuple[str, ...] = ("depth", "loss")


@dataclass(frozen=True)
class ParamLayout:
    """Names and shapes of a module's parameters in ``named_parameters()`` order."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    @classmethod
    def of(cls, model: nn.Module) -> "ParamLayout":
        named = list(model.named_parameters())
        return cls(tuple(n for n, _ in named), tuple(tuple(p.shape) for _, p in named))

    @property
    def numels(self) -> list[int]:
        return [int(torch.Size(s).numel()) for s in self.shapes]

    @property
    def total(self) -> int:
        return sum(self.numels)

    def describe(self) -> list[list]:
        """A JSON-able description, stored with expert trajectories to check they fit a student."""
        return [[n, list(s)] for n, s in zip(self.names, self.shapes)]

    @staticmethod
    def flatten(model: nn.Module) -> Tensor:
        """The current parameters as one detached flat vector (a copy)."""
        return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).clone()

    def unflatten(self, flat: Tensor) -> dict[str, Tensor]:
        if flat.shape != (self.total,):
            raise ConfigError(f"flat parameters have shape {tuple(flat.shape)}, the network needs ({self.total},)")
        return {n: t.view(s) for n, t, s in zip(self.names, flat.split(self.numels), self.shapes)}

    def load_into(self, model: nn.Module, flat: Tensor) -> nn.Module:
        """Copy ``flat`` into ``model``'s parameters (e.g. an expert's final checkpoint)."""
        with torch.no_grad():
            for p, t in zip(model.parameters(), flat.to(next(model.parameters()).device).split(self.numels)):
                p.copy_(t.view_as(p))
        return model


class FunctionalStudent:
    """``student(flat, x)``: the module's forward with its parameters taken from ``flat``."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.layout = ParamLayout.of(model)
        self.buffers = dict(model.named_buffers())
        model.train()

    def __call__(self, flat: Tensor, x: Tensor) -> Tensor:
        return functional_call(self.model, (self.layout.unflatten(flat), self.buffers), (x,))


@dataclass(frozen=True)
class StepPlan:
    index: Tensor        # rows of the synthetic set used by this step (on the images' device)
    draw: Draw | None    # DSA parameters for those rows; None without augmentation


def plan_steps(num_images: int, steps: int, batch: int, augment: DSA | None, generator: torch.Generator,
               device: torch.device | str) -> list[StepPlan]:
    """The minibatches and augmentation draws of ``steps`` student steps.

    As MTT: the synthetic set is cycled through in random permutations, ``batch`` images a step
    (the whole set when ``batch >= num_images``); augmentation parameters are independent per image.
    """
    if steps < 1:
        raise ConfigError(f"the student needs at least one step, got syn_steps={steps}")
    batch = min(int(batch), num_images) if batch and batch > 0 else num_images
    plans: list[StepPlan] = []
    queue = torch.empty(0, dtype=torch.long)
    for _ in range(steps):
        if queue.numel() < batch:
            queue = torch.cat([queue, torch.randperm(num_images, generator=generator)])
        index, queue = queue[:batch], queue[batch:]
        draw = augment.draw(batch, generator) if augment is not None else None
        plans.append(StepPlan(index.to(device), draw))
    return plans


def soft_cross_entropy(logits: Tensor, target_logits: Tensor) -> Tensor:
    """−Σ_j softmax(y)_j log softmax(z)_j, averaged over the batch (DATM/PAD's student loss)."""
    return -(F.softmax(target_logits, dim=1) * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def student_step(student: FunctionalStudent, theta: Tensor, images: Tensor, targets: Tensor, lr: Tensor,
                 plan: StepPlan, augment: DSA | None, create_graph: bool) -> Tensor:
    """θ − lr · ∇_θ loss(student(θ, A(X_b)), y_b) for one planned minibatch.

    ``targets`` are hard labels ``[N]`` or label logits ``[N, K]`` (soft cross-entropy).
    """
    x = images[plan.index]
    if augment is not None and plan.draw is not None:
        x = augment.apply(x, plan.draw)
    out = student(theta, x)
    y = targets[plan.index]
    loss = soft_cross_entropy(out, y) if y.ndim == 2 else F.cross_entropy(out, y)
    (grad,) = torch.autograd.grad(loss, theta, create_graph=create_graph)
    return theta - lr * grad


def mask_start(total: int, ratio: float) -> int:
    """How many leading (shallowest) entries PAD's depth mask drops: ⌊ratio · total⌋."""
    if not 0.0 <= ratio < 1.0:
        raise ConfigError(f"the parameter mask ratio must be in [0, 1), got {ratio}")
    return int(ratio * total)


def trajectory_loss(final: Tensor, start: Tensor, target: Tensor, mask_ratio: float = 0.0,
                    mask: str = "depth") -> Tensor:
    """‖(θ̂_N − θ*_{t+M})[keep]‖² / ‖(θ*_t − θ*_{t+M})[keep]‖² (MTT; PAD masks ``keep``).

    ``mask="depth"`` (PAD as its paper describes) drops the first ``mask_ratio`` share of the flat
    vector, i.e. the shallow layers; ``mask="loss"`` (the released PAD.py) drops the ``mask_ratio``
    share of entries with the smallest matching error, chosen without gradient.
    """
    if mask not in MASKS:
        raise ConfigError(f"unknown parameter mask {mask!r}; choose one of {list(MASKS)}")
    if mask == "depth" or mask_ratio == 0.0:
        k = mask_start(final.numel(), mask_ratio)
        num = (final[k:] - target[k:]).pow(2).sum()
        den = (start[k:] - target[k:]).pow(2).sum()
        return num / den
    err = (final - target).pow(2)
    drop = mask_start(final.numel(), mask_ratio)
    with torch.no_grad():
        keep = torch.topk(err.detach(), final.numel() - drop, sorted=False).indices
    return err[keep].sum() / (start[keep] - target[keep]).pow(2).sum()


def unroll_backward(student: FunctionalStudent, start: Tensor, target: Tensor, images: Tensor, targets: Tensor,
                    lr: Tensor, plans: list[StepPlan], augment: DSA | None, *, mask_ratio: float = 0.0,
                    mask: str = "depth", mode: Literal["full", "checkpoint"] = "full") -> Tensor:
    """Unroll the student over ``plans`` from ``start``, compute :func:`trajectory_loss` against
    ``target`` and accumulate its gradients into ``images``, ``targets`` (when they require grad,
    e.g. PAD's learnable label logits) and ``lr`` (``.grad``). Returns the detached loss."""
    if mode not in UNROLL_MODES:
        raise ConfigError(f"unknown unroll mode {mode!r}; choose one of {list(UNROLL_MODES)}")
    start = start.detach()
    target = target.detach()
    if mode == "full":
        theta = start.clone().requires_grad_(True)
        for plan in plans:
            theta = student_step(student, theta, images, targets, lr, plan, augment, create_graph=True)
        loss = trajectory_loss(theta, start, target, mask_ratio, mask)
        loss.backward()
        return loss.detach()

    # Checkpointed: forward without the second-order graph, keeping each θ_n ...
    thetas = [start]
    theta = start
    lr_value = lr.detach()
    for plan in plans:
        theta_n = theta.detach().requires_grad_(True)
        theta = student_step(student, theta_n, images.detach(), targets.detach(), lr_value, plan, augment,
                             create_graph=False).detach()
        thetas.append(theta)
    final = thetas[-1].requires_grad_(True)
    loss = trajectory_loss(final, start, target, mask_ratio, mask)
    (adjoint,) = torch.autograd.grad(loss, final)
    # ... then walk back one step at a time, rebuilding that step's graph.
    for n in range(len(plans) - 1, -1, -1):
        theta_n = thetas[n].detach().requires_grad_(True)
        nxt = student_step(student, theta_n, images, targets, lr, plans[n], augment, create_graph=True)
        torch.autograd.backward(nxt, adjoint)
        adjoint = theta_n.grad
    return loss.detach()
