"""Random selection: IPC real images per class, uniformly without replacement (class-balanced)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

import benchsuite
from benchsuite.ops.selection import select_per_class


@dataclass(frozen=True)
class RandomConfig:
    """No hyperparameters: the selection depends only on the seed."""


class RandomSelection(benchsuite.Method):
    name = "random"
    version = "1"
    kind = "select"
    Config = RandomConfig
    description = "class-balanced uniform random real images (DC paper baseline)"

    def distill(self, real, ipc, ctx):
        def pick(c, idx):
            return torch.randperm(len(idx), generator=ctx.generator)[:ipc].to(idx.device)

        return select_per_class(real, ipc, pick)


@benchsuite.hookimpl
def register_methods(register):
    register(RandomSelection)
