"""Building models reproducibly from a generator, without touching the caller's global RNG."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from benchsuite.archs import TIMM_PREFIX, build_timm
from benchsuite.data.spec import DatasetSpec
from benchsuite.registry import Registry


def draw_seed(generator: torch.Generator) -> int:
    """A 62-bit seed from ``generator``: how sub-streams (model init, helpers) are derived."""
    return int(torch.randint(0, 2**62, (1,), generator=generator).item())


def child_generator(generator: torch.Generator) -> torch.Generator:
    return torch.Generator().manual_seed(draw_seed(generator))


def model_factory(archs: Registry, spec: DatasetSpec) -> Callable[[str, torch.Generator], nn.Module]:
    """``make(arch, generator)`` for this dataset's shape.

    Layers initialise from torch's global RNG, so the construction runs inside ``fork_rng`` seeded
    from ``generator``: the model depends only on the generator, and the caller's global RNG state
    is restored afterwards. Models are built on the CPU; callers move them.
    """

    def make(arch: str, generator: torch.Generator) -> nn.Module:
        seed = draw_seed(generator)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if arch.startswith(TIMM_PREFIX):
                return build_timm(arch[len(TIMM_PREFIX):], spec.channels, spec.num_classes, spec.image_size)
            return archs.get(arch)(spec.channels, spec.num_classes, spec.image_size)

    return make
