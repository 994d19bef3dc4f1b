"""PAD: Prioritize Alignment in Dataset Distillation (Li, Guo et al., 2024); docs/methods/pad.md.

Trajectory matching (MTT's loop, DATM's start-epoch schedule) with PAD's two filters:

1. FIEX: experts are trained on a difficulty-scheduled view of the data. Every sample is scored
   by EL2N under briefly trained networks; each class is ordered easy → hard; an epoch sees the
   easiest 75% at first, growing to all data by epoch AEE, and later loses its easiest 10% / 20%
   (:class:`~benchsuite.ops.difficulty.DifficultySchedule`). ``schedule=false`` trains plain experts.
2. FIEM: the matching loss ignores the shallow-layer parameters: the first ``mask_ratio`` share of
   the flattened parameters, as the paper describes (depth-based). The released code's
   loss-ranked mask is ``mask="loss"``; it is not the default.

Deviations, stated (docs/methods/pad.md, "Deviations"): experts use plain SGD (the released code
trains them with GSAM, FTD's sharpness-aware optimiser; the filters do not depend on the optimiser,
but absolute numbers differ from the published ones). DATM's soft
labels are an option (``soft_labels=true``, learned label logits started from the experts' mean
logits); they are off by default because the closed division evaluates with hard labels, and an
open-division protocol is where a soft-label PAD belongs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

import benchsuite
from benchsuite.errors import ConfigError, MethodError
from benchsuite.ops.difficulty import DifficultySchedule, easy_to_hard, el2n
from benchsuite.training import train_epochs
from benchsuite.ops.matching import published_dsa_strategy
from benchsuite.ops.sampling import init_synthetic
from benchsuite.ops.trajectory import MASKS, UNROLL_MODES, ParamLayout
from benchsuite.ops.trajectory_matching import (
    MatchSettings,
    MethodSpace,
    average_logits,
    correctly_classified,
    method_experts,
    match_trajectories,
    published_row,
)
from benchsuite.ops.zca import DEFAULT_EPS

PAPER_SOURCE = ("PAD paper Table 7 (docs/methods/pad.md, 'Published hyperparameters'); "
                "NUS-HPC-AI-Lab/PAD configs/*/ConvIN/IPC*.yaml where the "
                "paper is silent: expansion_end_epoch 1000, threshold 1.1 for CIFAR-10 IPC 1 else 1.0)")


@dataclass(frozen=True)
class PADConfig:
    iterations: int = 10_000
    syn_steps: int = 80              # N
    expert_epochs: int = 2           # M
    min_start_epoch: int = 0         # T⁻
    current_max_start_epoch: int = 10  # T (sequential generation starts here)
    max_start_epoch: int = 20        # T⁺
    expansion_end: int = 1000        # iterations for the start-epoch bound to grow from T to T⁺
    batch_syn: int = 100
    lr_img: float = 100.0
    lr_lr: float = 1e-5
    lr_teacher: float = 0.01
    lr_label: float = 2.0
    threshold: float = 1.0           # no update when the loss exceeds it (0 = never skip)
    mask_ratio: float = 0.25         # FIEM: share of leading (shallow) parameters ignored
    mask: str = "depth"
    schedule: bool = True            # FIEX: difficulty-scheduled experts
    initial_ratio: float = 0.75
    add_end_epoch: int = 20
    rm_epoch_first: int = 40
    rm_epoch_second: int = 60
    rm_easy_ratio_first: float = 0.1
    rm_easy_ratio_second: float = 0.2
    el2n_models: int = 10            # EL2N: mean over networks trained briefly (Paul et al.: epoch 20)
    el2n_epochs: int = 20
    soft_labels: bool = False
    zca: bool = True
    zca_eps: float = DEFAULT_EPS
    num_experts: int = 100
    expert_train_epochs: int = 100
    expert_subset_per_class: int = 0
    expert_batch: int = 256
    init: str = "correct"            # 'correct': real images expert 0's final checkpoint gets right; 'real'
    dsa_strategy: str = "auto"
    unroll: str = "full"
    arch: str | None = None
    source: str = PAPER_SOURCE

    def __post_init__(self) -> None:
        if self.iterations < 0:
            raise ConfigError(f"pad.iterations must be >= 0, got {self.iterations}")
        if self.mask not in MASKS:
            raise ConfigError(f"pad.mask must be one of {list(MASKS)}, got {self.mask!r}")
        if self.unroll not in UNROLL_MODES:
            raise ConfigError(f"pad.unroll must be one of {list(UNROLL_MODES)}, got {self.unroll!r}")
        if self.init not in ("correct", "real"):
            raise ConfigError(f"pad.init must be 'correct' or 'real', got {self.init!r}")
        if self.el2n_models < 1 or self.el2n_epochs < 1:
            raise ConfigError("pad.el2n_models and pad.el2n_epochs must be >= 1")
        if self.max_start_epoch - 1 + self.expert_epochs > self.expert_train_epochs:
            raise ConfigError(
                f"pad: max_start_epoch - 1 + expert_epochs ({self.max_start_epoch - 1 + self.expert_epochs}) "
                f"must not exceed expert_train_epochs ({self.expert_train_epochs})")

    def settings(self) -> MatchSettings:
        return MatchSettings(
            iterations=self.iterations, syn_steps=self.syn_steps, expert_epochs=self.expert_epochs,
            min_start=self.min_start_epoch, max_start=self.max_start_epoch,
            current_max_start=self.current_max_start_epoch, expansion_end=self.expansion_end,
            batch_syn=self.batch_syn, lr_img=self.lr_img, lr_lr=self.lr_lr, lr_teacher=self.lr_teacher,
            lr_label=self.lr_label if self.soft_labels else 0.0, mask_ratio=self.mask_ratio, mask=self.mask,
            unroll=self.unroll, threshold=self.threshold)

    def difficulty_schedule(self) -> DifficultySchedule:
        return DifficultySchedule(self.initial_ratio, self.add_end_epoch, self.rm_epoch_first,
                                  self.rm_epoch_second, self.rm_easy_ratio_first, self.rm_easy_ratio_second)


# (dataset, ipc) -> (mask α, N, M, T⁻, T, T⁺, batch_syn, lr_label, lr_img, lr_lr): paper Table 7.
PAPER_TABLE: dict[tuple[str, int], tuple] = {
    ("cifar10", 1): (0.0, 80, 2, 0, 4, 4, 10, 5.0, 100.0, 1e-7),
    ("cifar10", 10): (0.25, 80, 2, 0, 10, 20, 100, 2.0, 100.0, 1e-5),
    ("cifar10", 50): (0.25, 80, 2, 0, 20, 40, 500, 2.0, 1000.0, 1e-5),
    ("cifar10", 500): (0.5, 80, 2, 40, 60, 60, 1000, 10.0, 50.0, 1e-5),
    ("cifar10", 1000): (0.75, 80, 2, 40, 60, 60, 1000, 10.0, 50.0, 1e-5),
    ("cifar100", 1): (0.0, 40, 3, 0, 10, 20, 100, 10.0, 1000.0, 1e-5),
    ("cifar100", 10): (0.25, 80, 2, 0, 20, 40, 1000, 10.0, 1000.0, 1e-5),
    ("cifar100", 50): (0.5, 80, 2, 40, 60, 80, 1000, 10.0, 1000.0, 1e-5),
    ("cifar100", 100): (0.5, 80, 2, 40, 80, 80, 1000, 10.0, 50.0, 1e-5),
    ("tinyimagenet", 1): (0.0, 60, 2, 0, 15, 30, 200, 10.0, 10000.0, 1e-4),
    ("tinyimagenet", 10): (0.25, 60, 2, 0, 20, 40, 250, 10.0, 100.0, 1e-4),
    ("tinyimagenet", 50): (0.5, 80, 2, 20, 40, 60, 250, 10.0, 100.0, 1e-4),
}

# Fashion-MNIST (quick) on the 2-core CPU: the MTT quick budget (same experts' size and student
# unroll, so the two are compared at equal cost), with PAD's filters scaled to 5-epoch experts:
# the easy-first view grows from 75% to all data by epoch 3 (AEE 20 of 100 epochs in the paper),
# and the removal of easy samples comes after the matched segment, as at small IPC in the paper.
# EL2N from 2 networks after 2 epochs on the experts' data.
QUICK = {
    1: dict(iterations=100, syn_steps=20, expert_epochs=2, min_start_epoch=0, current_max_start_epoch=3,
            max_start_epoch=3, expansion_end=0, batch_syn=0, mask_ratio=0.0),
    10: dict(iterations=100, syn_steps=10, expert_epochs=2, min_start_epoch=0, current_max_start_epoch=2,
             max_start_epoch=3, expansion_end=50, batch_syn=20, mask_ratio=0.25),
}
QUICK_EXPERTS = dict(num_experts=5, expert_train_epochs=5, expert_subset_per_class=500, add_end_epoch=3,
                     rm_epoch_first=4, rm_epoch_second=5, el2n_models=2, el2n_epochs=2, unroll="checkpoint")
SMOKE = PADConfig(iterations=3, syn_steps=3, expert_epochs=1, min_start_epoch=0, current_max_start_epoch=1,
                  max_start_epoch=2, expansion_end=2, batch_syn=0, lr_img=100.0, lr_lr=1e-5, mask_ratio=0.25,
                  num_experts=2, expert_train_epochs=2, expert_subset_per_class=8, expert_batch=16,
                  add_end_epoch=1, rm_epoch_first=1, rm_epoch_second=2, el2n_models=1, el2n_epochs=1,
                  # the skip rule off: a 3-step unroll's loss sits above 1.0, and a smoke run must
                  # exercise the update path, not return its initialisation
                  threshold=0.0, source="smoke")


def paper_config(dataset: str, ipc: int) -> PADConfig:
    """The paper's row for (dataset, IPC); unpublished datasets take CIFAR-10's nearest row."""
    row, source = published_row(PAPER_TABLE, dataset, ipc, PAPER_SOURCE)
    mask, n, m, tmin, tcur, tmax, batch, lr_y, lr_img, lr_lr = row
    return PADConfig(
        iterations=10_000, syn_steps=n, expert_epochs=m, min_start_epoch=tmin, current_max_start_epoch=tcur,
        max_start_epoch=tmax, expansion_end=1000, batch_syn=batch, lr_img=lr_img, lr_lr=lr_lr, lr_label=lr_y,
        # the released CIFAR-10 IPC-1 config's threshold; AEE 40 for CIFAR-100 and Tiny, else 20
        threshold=1.1 if row is PAPER_TABLE[("cifar10", 1)] else 1.0, mask_ratio=mask,
        add_end_epoch=40 if dataset in ("cifar100", "tinyimagenet") else 20, num_experts=100, expert_train_epochs=100,
        dsa_strategy=published_dsa_strategy(dataset), source=source)


def quick_config(dataset: str, ipc: int) -> PADConfig:
    """The published row scaled down in iterations, unrolled steps and experts; on the datasets of
    PAD's Table 7 it keeps the row's rates (image lr, lr of the learned step size), elsewhere the
    ones measured for the MTT quick budget on Fashion-MNIST (docs/methods/pad.md)."""
    paper = paper_config(dataset, ipc)
    near = min(QUICK, key=lambda i: (abs(i - ipc), i))
    reported = dataset in {d for d, _ in PAPER_TABLE}
    # On Table 7's datasets the released threshold is tuned to the published 80-step unroll over
    # 100-epoch experts; at this budget's 20-step unroll the CIFAR-10 IPC 1 loss starts near 5.5 and
    # every update was skipped (measured, docs/methods/pad.md), so the skip rule is off there. The
    # Fashion-MNIST quick run keeps it: its loss stays near 0.4 (1 of 100 updates skipped).
    rates = {"threshold": 0.0} if reported else {"lr_img": 100.0, "lr_lr": 1e-5}
    why = "the published row's rates, no skip rule" if reported else "rates measured on Fashion-MNIST"
    return PADConfig(**{**paper.__dict__, **QUICK[near], **QUICK_EXPERTS, **rates,
                        "source": f"quick budget (docs/methods/pad.md, 'Budgets in the suite'); {why}; "
                        + paper.source})


class PAD(benchsuite.Method):
    name = "pad"
    version = "1"
    kind = "distill"
    Config = PADConfig
    description = ("trajectory matching with difficulty-scheduled experts and shallow-layer masking "
                   "(docs/methods/pad.md)")

    budgets = {"smoke": lambda dataset, ipc, protocol: SMOKE,
               "quick": lambda dataset, ipc, protocol: quick_config(dataset, ipc),
               "paper": lambda dataset, ipc, protocol: paper_config(dataset, ipc)}

    def _experts(self, real, ctx):
        """The difficulty-scheduled experts (EL2N scoring runs only when one must be trained)."""
        cfg = self.config
        space = MethodSpace.of(real, ctx, cfg)
        data = space.expert_data

        def order():
            return easy_to_hard(self._el2n(data, ctx, space.augment), data)

        return method_experts(ctx, real, cfg, space, schedule=cfg.difficulty_schedule() if cfg.schedule else None,
                              schedule_info={"score": "el2n", "models": cfg.el2n_models, "epochs": cfg.el2n_epochs},
                              order=order)

    def prepare(self, real, ipc, ctx):
        return {"experts": self._experts(real, ctx)[1].describe()}

    def distill(self, real, ipc, ctx):
        cfg = self.config
        ms, store, trajectories = self._experts(real, ctx)
        space, zca, augment = ms.space, ms.zca, ms.augment
        images, labels, init_info = self._init(space, ipc, ctx, trajectories)
        targets = labels
        if cfg.soft_labels:
            model = ctx.model(cfg.arch, torch.Generator().manual_seed(0))
            targets = average_logits(model, ParamLayout.of(model), [t[-1] for t in trajectories], images, labels)
        syn, out_targets, alpha, stats = match_trajectories(ctx, self.name, cfg.settings(), trajectories, cfg.arch,
                                                            images, targets, augment)
        out_labels = torch.softmax(out_targets, dim=1) if cfg.soft_labels else labels
        return benchsuite.SyntheticSet(
            syn.clone(), out_labels, learned_lr=alpha,
            transform=zca.describe() if zca is not None else None,
            extra={"experts": store.describe(), **stats, **init_info, "unroll": cfg.unroll,
                   "fiex": cfg.schedule, "fiem": {"mask": cfg.mask, "ratio": cfg.mask_ratio}},
        )

    def _el2n(self, data, ctx, augment) -> torch.Tensor:
        """Mean EL2N over ``el2n_models`` networks trained ``el2n_epochs`` epochs (SGD lr 0.01,
        momentum 0.9, DSA; their own generators, so the scores do not depend on the cell)."""
        cfg = self.config
        total = torch.zeros(len(data))
        for i in range(cfg.el2n_models):
            g = torch.Generator().manual_seed(10_000 + i)
            model = ctx.model(cfg.arch, g)
            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            ctx.progress(i, cfg.el2n_models, phase=f"EL2N scoring {i + 1}/{cfg.el2n_models}")
            train_epochs(model, data, opt, cfg.el2n_epochs, cfg.expert_batch, g, augment)
            total += el2n(model, data)
        return total / cfg.el2n_models

    def _init(self, space, ipc, ctx, trajectories):
        """PAD's ``samples_predicted_correctly`` start (or plain random real images)."""
        k = space.num_classes
        labels = torch.arange(k, device=space.device).repeat_interleave(ipc)
        if self.config.init == "real":
            images, labels = init_synthetic(space, ipc, "real", ctx.generator)
            return images, labels, {"init": "real"}
        model = ctx.model(self.config.arch, torch.Generator().manual_seed(0))
        right = correctly_classified(model, ParamLayout.of(model), trajectories[0][-1], space)
        picks, short = [], []
        for c, idx in enumerate(space.class_indices()):
            good = idx[right[idx]]
            pool = good if len(good) >= ipc else idx
            if len(good) < ipc:
                short.append(c)
            if len(pool) < ipc:
                raise MethodError(f"pad: class {c} has {len(pool)} images, fewer than IPC {ipc}")
            picks.append(pool[torch.randperm(len(pool), generator=ctx.generator)[:ipc].to(pool.device)])
        images = space.images[torch.cat(picks)].clone()
        return images, labels, {"init": "correct", "init_classes_without_enough_correct": short}


@benchsuite.hookimpl
def register_methods(register):
    register(PAD)
