"""The whole training set: the upper bound every distilled set is compared with."""

from __future__ import annotations

from dataclasses import dataclass

import benchsuite


@dataclass(frozen=True)
class FullConfig:
    """No hyperparameters. The protocol's ``eval.full_epochs`` sets how long it trains."""


class FullDataset(benchsuite.Method):
    name = "full"
    version = "1"
    kind = "select"
    ipc_independent = True
    Config = FullConfig
    description = "the whole training set (upper bound); ignores IPC, trained for eval.full_epochs"

    def distill(self, real, ipc, ctx):
        return benchsuite.SyntheticSet(
            images=real.images, labels=real.labels, extra={"full_dataset": True}
        )


@benchsuite.hookimpl
def register_methods(register):
    register(FullDataset)
