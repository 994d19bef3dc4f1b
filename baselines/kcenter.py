"""K-center: greedy farthest-point selection per class in a random network's embedding."""

from __future__ import annotations

from dataclasses import dataclass

import benchsuite
from benchsuite.ops.selection import kcenter, random_network_features, select_per_class


@dataclass(frozen=True)
class KCenterConfig:
    arch: str | None = None  # embedding network; None = the protocol's distillation arch (ConvNet-3)
    embed_batch: int = 1000


class KCenter(benchsuite.Method):
    name = "kcenter"
    version = "1"
    kind = "select"
    Config = KCenterConfig
    description = "greedy k-center (Sener & Savarese 2018) in a random ConvNet's embedding"

    def distill(self, real, ipc, ctx):
        feats = random_network_features(real, ctx, self.config.arch, self.config.embed_batch)
        return select_per_class(real, ipc, lambda c, idx: kcenter(feats[idx], ipc, ctx.generator))


@benchsuite.hookimpl
def register_methods(register):
    register(KCenter)
