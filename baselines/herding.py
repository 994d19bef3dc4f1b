"""Herding: greedy class-mean matching in the embedding of a randomly initialised network."""

from __future__ import annotations

from dataclasses import dataclass

import benchsuite
from benchsuite.ops.selection import herding, random_network_features, select_per_class


@dataclass(frozen=True)
class HerdingConfig:
    arch: str | None = None  # embedding network; None = the protocol's distillation arch (ConvNet-3)
    embed_batch: int = 1000  # images per forward when embedding the train set


class Herding(benchsuite.Method):
    name = "herding"
    version = "1"
    kind = "select"
    Config = HerdingConfig
    description = "herding (argmin, as in IDC) in a random ConvNet's embedding (METHODS.md §1.5)"

    def distill(self, real, ipc, ctx):
        feats = random_network_features(real, ctx, self.config.arch, self.config.embed_batch)
        return select_per_class(real, ipc, lambda c, idx: herding(feats[idx], ipc))


@benchsuite.hookimpl
def register_methods(register):
    register(Herding)
