"""The trajectory-matching distillation loop shared by MTT and PAD (docs/methods/mtt.md, docs/methods/pad.md).

Learned: the synthetic pixels (SGD, momentum 0.5), the student step size α (SGD, momentum 0.5,
started at the experts' lr) and, for DATM/PAD's soft labels, the label logits (SGD, momentum 0.9).
Each iteration takes the next expert (a fresh random order per pass over the experts), a start
epoch t, unrolls N student steps from θ*_t and matches θ*_{t+M} (:mod:`benchsuite.ops.trajectory`).

Start epochs: t ~ U{T⁻, …, U−1} with U = T⁺ (MTT), or, with DATM's sequential generation, U growing
linearly from T to T⁺ over ``expansion_end`` iterations (PAD). PAD's skip rule (no update when the
loss exceeds ``threshold``) is counted and reported, so a stalled run is visible.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor, nn

from benchsuite.api import LabeledData, RunContext
from benchsuite.errors import ConfigError, MethodError
from benchsuite.ops.difficulty import DifficultySchedule
from benchsuite.ops.dsa import DSA
from benchsuite.ops.experts import ExpertSpec, ExpertStore, data_fingerprint
from benchsuite.ops.matching import LossMonitor, make_augment
from benchsuite.ops.trajectory import (
    MASKS,
    UNROLL_MODES,
    FunctionalStudent,
    ParamLayout,
    plan_steps,
    unroll_backward,
)
from benchsuite.ops.zca import ZCA, fit_zca

__all__ = ["MatchSettings", "MethodSpace", "published_row", "whiten", "expert_subset", "load_experts", "match_trajectories", "start_epoch_bound",
           "PixelImages", "TrajectoryMatcher", "MTT_QUICK", "MTT_QUICK_EXPERTS"]


@dataclass(frozen=True)
class MatchSettings:
    iterations: int
    syn_steps: int            # N
    expert_epochs: int        # M
    min_start: int            # T⁻
    max_start: int            # T⁺ (exclusive upper bound of t)
    current_max_start: int    # T: the first upper bound under sequential generation (= T⁺ for MTT)
    expansion_end: int        # iterations over which U grows from T to T⁺ (0: U = T⁺ throughout)
    batch_syn: int            # images per student step; 0 = the whole set
    lr_img: float
    lr_lr: float
    lr_teacher: float         # α₀
    lr_label: float = 0.0     # soft-label logits (PAD/DATM); 0 = labels fixed
    momentum_img: float = 0.5
    momentum_lr: float = 0.5
    momentum_label: float = 0.9
    mask_ratio: float = 0.0
    mask: str = "depth"
    unroll: str = "full"
    threshold: float = 0.0    # skip the update when the loss exceeds it; 0 = never skip

    def check(self, expert_train_epochs: int) -> None:
        if self.syn_steps < 1 or self.expert_epochs < 1:
            raise ConfigError("syn_steps and expert_epochs must be >= 1")
        if not 0 <= self.min_start < self.max_start:
            raise ConfigError(f"need 0 <= min_start < max_start, got {self.min_start} and {self.max_start}")
        if not self.min_start < self.current_max_start <= self.max_start:
            raise ConfigError("need min_start < current_max_start <= max_start")
        if self.max_start - 1 + self.expert_epochs > expert_train_epochs:
            raise ConfigError(
                f"max_start ({self.max_start}) - 1 + expert_epochs ({self.expert_epochs}) exceeds the experts' "
                f"{expert_train_epochs} training epochs (docs/methods/mtt.md); train longer experts or lower max_start")
        if self.mask not in MASKS:
            raise ConfigError(f"mask must be one of {list(MASKS)}, got {self.mask!r}")
        if self.unroll not in UNROLL_MODES:
            raise ConfigError(f"unroll must be one of {list(UNROLL_MODES)}, got {self.unroll!r}")
        if not 0.0 <= self.mask_ratio < 1.0:
            raise ConfigError(f"mask_ratio must be in [0, 1), got {self.mask_ratio}")
        if self.lr_teacher <= 0:
            raise ConfigError(f"the initial step size must be > 0, got {self.lr_teacher}")


# MTT's quick budget (also glad-mtt's and hpd-mtt's, so one set of cached experts serves all three).
# Fashion-MNIST (quick) on the 2-core CPU, ConvNet-3 (tests/perf/test_perf_trajectory.py; docs/methods/mtt.md,
# "Measured in the suite"): one unrolled image-step (forward, backward, and the backward through it)
# costs about 18 ms, an expert epoch on 500 images per class about 10 s. So: 5 experts x 5 epochs
# on 500 images per class; the student unrolls 20 steps of all 10 images at IPC 1 and 10 steps of
# 20 images at IPC 10 (MTT's batch_syn < C·IPC), measured 2.3-2.4 s per iteration with per-step
# recomputation (`unroll="checkpoint"`: the full graph of 10 steps x 100 images is 3 GiB on the CPU,
# 375 MiB recomputed), 100 iterations. lr_img 100 and lr_lr 1e-5 (PAD's CIFAR-10 rows; MTT's
# community rerun) were checked with one 60-iteration probe per IPC, one 300-epoch model each:
# 72.4% at IPC 1 and 78.1% at IPC 10 (random: 50.8 / 74.8).
MTT_QUICK = {
    1: dict(iterations=100, syn_steps=20, expert_epochs=2, max_start_epoch=3, batch_syn=0),
    10: dict(iterations=100, syn_steps=10, expert_epochs=2, max_start_epoch=3, batch_syn=20),
}
MTT_QUICK_EXPERTS = dict(num_experts=5, expert_train_epochs=5, expert_subset_per_class=500, unroll="checkpoint")


def start_epoch_bound(s: MatchSettings, iteration: int) -> int:
    """U(it): the exclusive upper bound of the start epoch at ``iteration`` (0-based)."""
    if s.expansion_end <= 0 or s.current_max_start >= s.max_start:
        return s.max_start
    frac = min(1.0, iteration / s.expansion_end)
    return int(s.current_max_start + (s.max_start - s.current_max_start) * frac)


def whiten(real: LabeledData, zca_eps: float | None) -> tuple[LabeledData, ZCA | None]:
    """The train set in the method's input space: ZCA-whitened when ``zca_eps`` is set."""
    if not zca_eps:
        return real, None
    zca = fit_zca(real.images, zca_eps)
    return LabeledData(zca.apply(real.images), real.labels, real.num_classes, real.spec), zca


def published_row(table: dict[tuple[str, int], tuple], dataset: str, ipc: int, source: str) -> tuple[tuple, str]:
    """The row of a (dataset, IPC) hyperparameter table for this cell, and its source. A dataset the
    paper did not report takes CIFAR-10's rows, and an IPC not in the table the nearest one; the
    returned source then says which row stood in."""
    base = dataset if any(d == dataset for d, _ in table) else "cifar10"
    rows = {i: r for (d, i), r in table.items() if d == base}
    near = min(rows, key=lambda i: (abs(i - ipc), i))
    if (base, near) != (dataset, ipc):
        source += f"; {dataset} IPC {ipc} is not published: the {base} IPC {near} row"
    return rows[near], source


@dataclass(frozen=True)
class MethodSpace:
    """Where a trajectory method works: the (whitened) train set, its ZCA fit, the augmentation,
    and the subset the experts train on."""

    space: LabeledData
    zca: ZCA | None
    augment: DSA | None
    expert_data: LabeledData
    subset: dict

    @classmethod
    def of(cls, real: LabeledData, ctx: RunContext, cfg) -> "MethodSpace":
        """From a config with ``zca``, ``zca_eps``, ``dsa_strategy`` and ``expert_subset_per_class``."""
        space, zca = whiten(real, cfg.zca_eps if cfg.zca else None)
        augment = make_augment(cfg.dsa_strategy, ctx.dataset)
        subset = {"per_class": cfg.expert_subset_per_class, "seed": 0}
        return cls(space, zca, augment, expert_subset(space, cfg.expert_subset_per_class, seed=0), subset)

    @property
    def zca_eps(self) -> float | None:
        return self.zca.eps if self.zca is not None else None


def expert_subset(real: LabeledData, per_class: int, seed: int) -> LabeledData:
    """``per_class`` random images of every class (0 = all): the data experts are trained on."""
    if per_class <= 0:
        return real
    g = torch.Generator().manual_seed(seed)
    parts = [ix[torch.randperm(len(ix), generator=g)[:per_class].to(ix.device)] for ix in real.class_indices()]
    return real.subset(torch.sort(torch.cat(parts)).values)


def load_experts(ctx: RunContext, data: LabeledData, arch: str | None, *, count: int, epochs: int,
                 augment: DSA | None, zca_eps: float | None, subset: dict, lr: float = 0.01,
                 batch_size: int = 256, schedule: DifficultySchedule | None = None,
                 schedule_info: dict | None = None, order: Callable[[], list[Tensor]] | None = None,
                 seed: int = 0) -> tuple[ExpertStore, list[Tensor]]:
    """The ``count`` cached experts for this setting, training the missing ones (with progress).

    With a difficulty ``schedule``, ``order()`` gives every class's easy → hard indices; it is only
    called when an expert has to be trained (scoring costs training networks of its own).
    """
    arch = arch or ctx.default_arch
    probe = ctx.model(arch, torch.Generator().manual_seed(0))
    layout = ParamLayout.of(probe)
    spec = ExpertSpec(
        dataset=ctx.dataset.name, fingerprint=data_fingerprint(data), arch=arch,
        layout=json.dumps(layout.describe()),
        epochs=epochs, lr=lr, batch_size=batch_size, augment=augment.strategy if augment else "none",
        zca_eps=zca_eps, subset=subset,
        schedule=({**schedule.describe(), **(schedule_info or {})} if schedule else {}), seed=seed,
    )
    store = ExpertStore(ctx.cache_dir, spec)
    visible = None
    if schedule is not None:
        if order is None:
            raise ConfigError("a difficulty schedule needs the easy-to-hard order of the samples")
        memo: list[list[Tensor]] = []

        def scheduled(epoch: int) -> Tensor:
            # The order is computed only when an expert is actually trained (not on a cache hit).
            if not memo:
                memo.append(order())
            return schedule.visible(memo[0], epoch)

        visible = scheduled
    trajectories = store.ensure(count, lambda g: ctx.model(arch, g), data, augment, visible, ctx.progress)
    return store, trajectories


def method_experts(ctx: RunContext, real: LabeledData, cfg, space: MethodSpace | None = None, **schedule: Any
                   ) -> tuple[MethodSpace, ExpertStore, list[Tensor]]:
    """A trajectory method's space and its cached experts, from a config with the MTT fields
    (``zca``, ``zca_eps``, ``dsa_strategy``, ``expert_subset_per_class``, ``arch``,
    ``num_experts``, ``expert_train_epochs``, ``lr_teacher``, ``expert_batch``); ``schedule``
    passes PAD's difficulty schedule to :func:`load_experts`; ``space``, when the caller has it
    already, saves computing it (the ZCA fit) again."""
    ms = space if space is not None else MethodSpace.of(real, ctx, cfg)
    store, trajectories = load_experts(
        ctx, ms.expert_data, cfg.arch, count=cfg.num_experts, epochs=cfg.expert_train_epochs, augment=ms.augment,
        zca_eps=ms.zca_eps, subset=ms.subset, lr=cfg.lr_teacher, batch_size=cfg.expert_batch, **schedule)
    return ms, store, trajectories


class PixelImages:
    """The synthetic images as learned pixels: a leaf tensor and SGD with momentum over it. Latent
    parameterisations (``plugins/glad/latents.py``, ``LatentImages``) offer the same ``images``/``zero_grad``/``step``,
    so the loop below optimises either."""

    def __init__(self, images: Tensor, lr: float, momentum: float):
        self.images = images.detach().clone().requires_grad_(True)
        self.opt = torch.optim.SGD([self.images], lr=lr, momentum=momentum)

    def zero_grad(self) -> None:
        self.opt.zero_grad(set_to_none=True)

    def step(self) -> None:
        self.opt.step()


class TrajectoryMatcher:
    """The state of the matching loop besides the images: the student, the learned step size α
    (and its optimiser), the targets, the expert order and the skip count. ``step`` runs one
    iteration against any image parameterisation with ``images``/``zero_grad``/``step``."""

    def __init__(self, ctx: RunContext, method: str, settings: MatchSettings, trajectories: list[Tensor],
                 arch: str | None, targets: Tensor, augment: DSA | None):
        settings.check(trajectories[0].shape[0] - 1)
        self.ctx, self.method, self.settings, self.trajectories, self.augment = ctx, method, settings, trajectories, augment
        self.student = FunctionalStudent(ctx.model(arch or ctx.default_arch, torch.Generator().manual_seed(0)))
        if self.student.layout.total != trajectories[0].shape[1]:
            raise MethodError(f"the experts have {trajectories[0].shape[1]} parameters but the student "
                              f"{self.student.layout.total}: expert and student architectures differ")
        device = ctx.device
        self.alpha = torch.tensor(float(settings.lr_teacher), device=device, requires_grad=True)
        self.opt_lr = torch.optim.SGD([self.alpha], lr=settings.lr_lr, momentum=settings.momentum_lr)
        learn_labels = settings.lr_label > 0 and targets.ndim == 2
        self.targets = targets.detach().clone().to(device)
        self.opt_label = None
        if learn_labels:
            self.targets.requires_grad_(True)
            self.opt_label = torch.optim.SGD([self.targets], lr=settings.lr_label, momentum=settings.momentum_label)
        self.order: list[int] = []
        self.skipped = 0
        self.steps = 0

    def step(self, it: int, syn) -> tuple[Tensor, int]:
        """Iteration ``it`` (0-based, drives the start-epoch bound): returns (loss, start epoch)."""
        s, g, device = self.settings, self.ctx.generator, self.ctx.device
        if not self.order:
            self.order = torch.randperm(len(self.trajectories), generator=g).tolist()
        traj = self.trajectories[self.order.pop()]
        t = int(torch.randint(s.min_start, start_epoch_bound(s, it), (1,), generator=g))
        start = traj[t].to(device)
        target = traj[t + s.expert_epochs].to(device)
        plans = plan_steps(syn.images.shape[0], s.syn_steps, s.batch_syn, self.augment, g, device)
        syn.zero_grad()
        for opt in (self.opt_lr, self.opt_label):
            if opt is not None:
                opt.zero_grad(set_to_none=True)
        loss = unroll_backward(self.student, start, target, syn.images, self.targets, self.alpha, plans, self.augment,
                               mask_ratio=s.mask_ratio, mask=s.mask, mode=s.unroll)
        self.steps += 1
        if s.threshold and float(loss) > s.threshold:
            self.skipped += 1
        else:
            syn.step()
            for opt in (self.opt_lr, self.opt_label):
                if opt is not None:
                    opt.step()
        a = self.learned_lr
        if not (a > 0 and a == a and a != float("inf")):
            raise MethodError(f"method {self.method!r}: the learned step size became {a} at iteration {it + 1}; "
                              f"lower lr_lr (or the image/latent lr), e.g. --set {self.method}.lr_lr=...")
        return loss, t

    def check_progress(self, last_loss: float | None) -> None:
        """A run whose every update was skipped returns its initialisation untouched: that is a
        failed distillation, not a result to rank."""
        if self.steps and self.skipped == self.steps:
            loss = f" (the last loss {last_loss:.3g})" if last_loss is not None else ""
            raise MethodError(
                f"method {self.method!r}: every one of the {self.steps} updates was skipped because the loss stayed "
                f"above threshold {self.settings.threshold}{loss}, so nothing was distilled; raise the threshold "
                f"or turn the skip off with --set {self.method}.threshold=0")

    @property
    def learned_lr(self) -> float:
        return float(self.alpha.detach())


def match_trajectories(ctx: RunContext, method: str, settings: MatchSettings, trajectories: list[Tensor],
                       arch: str | None, images: Tensor, targets: Tensor, augment: DSA | None,
                       on_iteration: Callable[[int, dict], None] | None = None) -> tuple[Tensor, Tensor, float, dict]:
    """Run the loop on learned pixels; returns (images, targets, learned α, stats). ``targets`` are
    hard labels (fixed) or label logits (learned when ``settings.lr_label > 0``)."""
    matcher = TrajectoryMatcher(ctx, method, settings, trajectories, arch, targets, augment)
    syn = PixelImages(images.to(ctx.device), settings.lr_img, settings.momentum_img)
    monitor = LossMonitor(method, settings.iterations, ctx.progress, ctx.device, hint="lower lr_img or lr_lr")
    monitor.start()
    for it in range(settings.iterations):
        loss, t = matcher.step(it, syn)
        a = matcher.learned_lr
        monitor.update(it + 1, loss, start=t, alpha=f"{a:.4g}", skipped=matcher.skipped)
        if on_iteration is not None:
            on_iteration(it, {"loss": float(loss), "alpha": a, "start": t})
    monitor.check_images(syn.images)
    matcher.check_progress(monitor.last)
    stats = {"skipped_updates": matcher.skipped, "final_loss": monitor.last, "learned_lr": matcher.learned_lr}
    return syn.images.detach(), matcher.targets.detach(), matcher.learned_lr, stats


def correctly_classified(model: nn.Module, layout: ParamLayout, final: Tensor, data: LabeledData,
                         batch: int = 1000) -> Tensor:
    """Boolean ``[N]``: which samples the network with parameters ``final`` classifies correctly."""
    layout.load_into(model, final)
    model.eval()
    out = []
    with torch.no_grad():
        for xb, yb in zip(data.images.split(batch), data.labels.split(batch)):
            out.append(model(xb).argmax(1) == yb)
    return torch.cat(out)


def average_logits(model: nn.Module, layout: ParamLayout, finals: list[Tensor], images: Tensor,
                   labels: Tensor) -> Tensor:
    """DATM's soft-label start: per image, the mean logits of the experts' final checkpoints that
    classify it correctly (of all experts, for an image none gets right)."""
    model.eval()
    logits_all = []
    with torch.no_grad():
        for final in finals:
            layout.load_into(model, final)
            logits_all.append(model(images))
    stacked = torch.stack(logits_all)                       # [E, N, K]
    right = (stacked.argmax(-1) == labels).float()          # [E, N]
    weight = torch.where(right.sum(0, keepdim=True) > 0, right, torch.ones_like(right))
    return (stacked * weight[..., None]).sum(0) / weight.sum(0)[:, None]
