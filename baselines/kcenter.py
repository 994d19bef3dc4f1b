"""K-center: greedy farthest-point selection per class (Sener & Savarese 2018) in the penultimate
features of a ConvNet trained on the whole train set (docs/methods/baselines.md);
``embedding=random`` selects in a randomly initialised network's features instead."""

from __future__ import annotations

from dataclasses import dataclass

import benchsuite
from benchsuite.ops.selection import (
    SelectionConfig,
    kcenter,
    prepare_extractor,
    select_per_class,
    selection_budgets,
    selection_features,
)


@dataclass(frozen=True)
class KCenterConfig(SelectionConfig):
    pass


class KCenter(benchsuite.Method):
    name = "kcenter"
    version = "2"  # 2: a trained network's features by default (1: a random network's)
    kind = "select"
    Config = KCenterConfig
    description = "greedy k-center (Sener & Savarese 2018) in a trained ConvNet's features"
    budgets = selection_budgets(KCenterConfig)

    def prepare(self, real, ipc, ctx):
        return prepare_extractor(real, ctx, self.config)

    def distill(self, real, ipc, ctx):
        feats, info = selection_features(real, ctx, self.config)
        syn = select_per_class(real, ipc, lambda c, idx: kcenter(feats[idx], ipc, ctx.generator))
        syn.extra.update(info)
        return syn


@benchsuite.hookimpl
def register_methods(register):
    register(KCenter)
