"""Herding: greedy class-mean matching (argmin, as in IDC) in the penultimate features of a ConvNet
trained on the whole train set (docs/methods/baselines.md); ``embedding=random`` selects in a
randomly initialised network's features instead."""

from __future__ import annotations

from dataclasses import dataclass

import benchsuite
from benchsuite.ops.selection import (
    SelectionConfig,
    herding,
    prepare_extractor,
    select_per_class,
    selection_budgets,
    selection_features,
)


@dataclass(frozen=True)
class HerdingConfig(SelectionConfig):
    pass


class Herding(benchsuite.Method):
    name = "herding"
    version = "2"  # 2: a trained network's features by default (1: a random network's)
    kind = "select"
    Config = HerdingConfig
    description = "herding (argmin, as in IDC) in a trained ConvNet's features (docs/methods/baselines.md)"
    budgets = selection_budgets(HerdingConfig)

    def prepare(self, real, ipc, ctx):
        return prepare_extractor(real, ctx, self.config)

    def distill(self, real, ipc, ctx):
        feats, info = selection_features(real, ctx, self.config)
        syn = select_per_class(real, ipc, lambda c, idx: herding(feats[idx], ipc))
        syn.extra.update(info)
        return syn


@benchsuite.hookimpl
def register_methods(register):
    register(Herding)
