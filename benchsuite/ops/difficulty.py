"""Sample difficulty (EL2N) and PAD's difficulty-scheduled view of the train set (docs/methods/pad.md).

EL2N (Paul et al., 2021): the L2 norm of softmax(f(x)) − onehot(y) under briefly trained networks,
averaged over a few of them; higher is harder. PAD orders each class easy → hard by it and lets
expert training see only part of the order per epoch (:class:`DifficultySchedule`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchsuite.api import LabeledData
from benchsuite.errors import ConfigError

__all__ = ["el2n", "easy_to_hard", "DifficultySchedule"]


@torch.no_grad()
def el2n(model: nn.Module, data: LabeledData, batch: int = 1000) -> Tensor:
    """EL2N of every sample of ``data`` under ``model`` (eval mode, no augmentation), ``[N]`` on CPU."""
    model.eval()
    scores = []
    for xb, yb in zip(data.images.split(batch), data.labels.split(batch)):
        p = F.softmax(model(xb), dim=1)
        scores.append((p - F.one_hot(yb, data.num_classes).to(p.dtype)).norm(dim=1).cpu())
    model.train()
    return torch.cat(scores)


def easy_to_hard(scores: Tensor, data: LabeledData) -> list[Tensor]:
    """Per class, the sample indices of ``data`` sorted by ascending score (easiest first).

    Ties keep the data order (stable sort), so the order is a deterministic function of the scores.
    """
    if scores.shape != (len(data),):
        raise ConfigError(f"need one score per sample ({len(data)}), got shape {tuple(scores.shape)}")
    out = []
    for idx in data.class_indices():
        s = scores[idx.cpu()]
        out.append(idx[torch.argsort(s, stable=True).to(idx.device)])
    return out


@dataclass(frozen=True)
class DifficultySchedule:
    """Which share of each class (easy → hard order) expert training sees in an epoch (PAD's FIEX).

    Epoch e (0-based) sees the order's slice [drop(e), grow(e)): grow(e) = min(1, IR + (1 − IR)·e/AEE)
    (``initial_ratio`` IR, ``add_end_epoch`` AEE); from ``rm_epoch_first`` the easiest
    ``rm_easy_ratio_first`` are removed, from ``rm_epoch_second`` the easiest ``rm_easy_ratio_second``.
    Defaults: the PAD README command for CIFAR-10 (IR 0.75, AEE 20, removal at epochs 40 and 60 of
    10% and 20%; docs/methods/pad.md, "Published hyperparameters").
    """

    initial_ratio: float = 0.75
    add_end_epoch: int = 20
    rm_epoch_first: int = 40
    rm_epoch_second: int = 60
    rm_easy_ratio_first: float = 0.1
    rm_easy_ratio_second: float = 0.2

    def __post_init__(self) -> None:
        if not 0.0 < self.initial_ratio <= 1.0:
            raise ConfigError(f"initial_ratio must be in (0, 1], got {self.initial_ratio}")
        if self.add_end_epoch < 1:
            raise ConfigError(f"add_end_epoch must be >= 1, got {self.add_end_epoch}")
        if not (0 <= self.rm_easy_ratio_first < 1 and 0 <= self.rm_easy_ratio_second < 1):
            raise ConfigError("the removed easy shares must be in [0, 1)")
        if self.rm_epoch_second < self.rm_epoch_first:
            raise ConfigError("rm_epoch_second must not come before rm_epoch_first")

    def window(self, epoch: int) -> tuple[float, float]:
        """``(drop, keep_upto)`` as shares of the class: the epoch sees order[drop·n : keep_upto·n]."""
        grow = min(1.0, self.initial_ratio + (1.0 - self.initial_ratio) * epoch / self.add_end_epoch)
        drop = 0.0
        if epoch >= self.rm_epoch_second:
            drop = self.rm_easy_ratio_second
        elif epoch >= self.rm_epoch_first:
            drop = self.rm_easy_ratio_first
        return drop, grow

    def visible(self, order: list[Tensor], epoch: int) -> Tensor:
        """Indices visible in ``epoch``: the window of every class's easy → hard ``order``."""
        drop, grow = self.window(epoch)
        parts = []
        for idx in order:
            n = len(idx)
            lo, hi = int(round(drop * n)), max(1, int(round(grow * n)))
            parts.append(idx[lo:max(hi, lo + 1)])
        return torch.cat(parts)

    def describe(self) -> dict:
        return asdict(self)


VisibleFn = Callable[[int], Tensor]
